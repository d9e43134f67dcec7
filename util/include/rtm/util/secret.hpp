#pragma once
// Comparing secrets (API keys) without telling an attacker, by the time it takes, how many
// leading bytes were right.
#include <cstddef>
#include <string_view>

namespace rtm::util {

// true when a == b; the time depends on the lengths only, not on where they differ.
inline bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace rtm::util
