#pragma once
// FNV-1a, 64 bits: a cheap, stable hash (the same on every platform and build). Not for
// anything an attacker must not be able to collide.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rtm::util {

inline constexpr std::uint64_t kFnv1a64Offset = 14695981039346656037ULL;
inline constexpr std::uint64_t kFnv1a64Prime = 1099511628211ULL;

// Hashes `text` on from `hash` (the offset basis for a fresh hash; a previous result to go on).
constexpr std::uint64_t fnv1a64(std::string_view text, std::uint64_t hash = kFnv1a64Offset) {
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnv1a64Prime;
  }
  return hash;
}

// Folds one more byte into `hash`.
constexpr std::uint64_t fnv1a64_byte(std::uint64_t hash, unsigned char byte) {
  return (hash ^ byte) * kFnv1a64Prime;
}

// A 64-bit hash as 16 lower-case hex digits (as history positions carry it), and back.
inline std::string hash_hex(std::uint64_t hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) out[static_cast<std::size_t>(i)] = kHex[hash & 15];
  return out;
}
inline std::optional<std::uint64_t> parse_hash_hex(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value << 4 | static_cast<std::uint64_t>(digit);
  }
  return value;
}
}  // namespace rtm::util
