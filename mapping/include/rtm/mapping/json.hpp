#pragma once
// The one way the project parses JSON that clients, devices or workers sent: no NUL byte
// (rapidjson reads one as the end of the text, so "{}\0junk" would pass as "{}"), nesting
// bounded before parsing (rapidjson's parser and writer recurse per level: a deep document
// would exhaust the stack), and strings checked to be UTF-8.
#include <rapidjson/document.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rtm::mapping {

inline constexpr std::size_t kMaxJsonDepth = 128;

// Parses `text` into `document`; the reason when it is not acceptable JSON ("payload is not
// valid JSON: ... at byte N", "payload JSON is nested deeper than 128 levels").
std::optional<std::string> parse_untrusted_json(std::string_view text, rapidjson::Document& document);

}  // namespace rtm::mapping
