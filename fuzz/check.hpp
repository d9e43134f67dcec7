#pragma once
// Property checks for the fuzz targets: a violated property aborts, so that libFuzzer
// keeps the input as a crash, whatever the build's NDEBUG.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

#define RTM_FUZZ_CHECK(condition, what)                                                          \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "property violated at %s:%d: %s\n  (%s)\n", __FILE__, __LINE__, what, \
                   #condition);                                                                  \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace rtm::fuzz {

// The fuzz input as text.
inline std::string_view text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits at the first '\n': {before, after}; after is empty when there is none.
inline std::pair<std::string_view, std::string_view> split_line(std::string_view input) {
  const std::size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return {input, {}};
  return {input.substr(0, newline), input.substr(newline + 1)};
}

}  // namespace rtm::fuzz
