#include "rtm/storage/keys.hpp"

#include <cstdint>

namespace rtm::storage {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0; `cp` receives the code point.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t n = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::optional<std::string> key_problem(std::string_view key, std::size_t max_bytes) {
  if (key.empty()) return std::string("is empty");
  if (key.size() > max_bytes) {
    return "is " + std::to_string(key.size()) + " bytes, longer than " + std::to_string(max_bytes);
  }
  for (std::size_t i = 0; i < key.size();) {
    std::uint32_t cp = 0;
    const auto n = utf8_sequence(key, i, cp);
    if (n == 0) return "is not valid UTF-8 at byte " + std::to_string(i);
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return "has a control character at byte " + std::to_string(i);
    }
    i += n;
  }
  return std::nullopt;
}

}  // namespace rtm::storage
