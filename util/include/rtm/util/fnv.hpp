#pragma once
// FNV-1a, 64 bits: a cheap, stable hash (the same on every platform and build). Not for
// anything an attacker must not be able to collide.
#include <cstdint>
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

}  // namespace rtm::util
