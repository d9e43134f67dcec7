#include "rtm/util/base64.hpp"

#include <cstdint>

namespace rtm::util {
namespace {

constexpr char kStandard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void append(std::string& out, std::string_view bytes, const char* alphabet, bool pad) {
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  const auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(alphabet[(group >> 18) & 63]);
    out.push_back(alphabet[(group >> 12) & 63]);
    out.push_back(alphabet[(group >> 6) & 63]);
    out.push_back(alphabet[group & 63]);
  }
  const std::size_t left = bytes.size() - i;
  if (left == 0) return;
  std::uint32_t group = byte(i) << 16;
  if (left == 2) group |= byte(i + 1) << 8;
  out.push_back(alphabet[(group >> 18) & 63]);
  out.push_back(alphabet[(group >> 12) & 63]);
  if (left == 2) out.push_back(alphabet[(group >> 6) & 63]);
  if (pad) out.append(left == 1 ? "==" : "=");
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  append(out, bytes, kStandard, true);
  return out;
}

void append_base64(std::string& out, std::string_view bytes) {
  append(out, bytes, kStandard, true);
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  append(out, bytes, kUrl, false);
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  std::string body(text.substr(0, text.size() - pad));
  for (char& c : body) {
    if (c == '-' || c == '_') return std::nullopt;
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return base64url_decode(body);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return std::nullopt;  // no padding, no standard alphabet
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero: otherwise two different strings decode to the same bytes.
  if (bits > 0 && (buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace rtm::util
