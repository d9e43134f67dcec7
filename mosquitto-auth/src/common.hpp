#pragma once
// What every part of the plugin shares: its log tag and client text made safe for a log line.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

namespace rtm::plugin {

inline constexpr const char* kLogTag = "rtm-auth";
inline constexpr std::size_t kMaxLoggedChars = 80;

using NameSet = std::set<std::string, std::less<>>;

// Client-supplied text made safe for one log line: printable ASCII only, bounded length.
std::string loggable(const char* text);
inline std::string loggable(const std::string& text) { return loggable(text.c_str()); }

// Wall-clock seconds (token expiries are wall-clock times).
std::int64_t now_s();

}  // namespace rtm::plugin
