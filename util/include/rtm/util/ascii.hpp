#pragma once
// ASCII case, independent of the locale (std::tolower is not).
#include <string>
#include <string_view>

namespace rtm::util {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// `text` with 'A'..'Z' lower-cased; every other byte (also non-ASCII) unchanged.
std::string ascii_lower(std::string_view text);
void ascii_lower_in_place(std::string& text);

}  // namespace rtm::util
