#pragma once
// The rule for metadata keys, state keys and lock names: 1 to max_bytes bytes of valid
// UTF-8 without control characters (C0, DEL, C1). Keys travel only inside JSON bodies,
// never as topic levels, so '/', '+', '#' and spaces are harmless and allowed (apps use
// keys like "player/2" or "seat 3"); invalid UTF-8 cannot be carried as a JSON string,
// and control characters make logs and CLI output ambiguous.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rtm::storage {

inline constexpr std::size_t kDefaultMaxKeyBytes = 64;

// Why `key` breaks the rule ("is empty", "is 70 bytes, longer than 64", ...), or nothing.
std::optional<std::string> key_problem(std::string_view key, std::size_t max_bytes);

}  // namespace rtm::storage
