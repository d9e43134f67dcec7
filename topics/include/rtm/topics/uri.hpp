#pragma once
// URI references carried in request topics: relative ("join?channel=a&msg_id=7") and
// absolute ("im://modulus/remove_feeds_member?msg_id=1002"), possibly spanning several
// topic levels. Pure parsing, no I/O.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/topics/expected.hpp"

namespace rtm::topics {

struct QueryParam {
  std::string key;    // percent-decoded
  std::string value;  // percent-decoded
};

struct Uri {
  std::string raw;      // the reference exactly as received
  bool absolute = false;  // true when it starts with "scheme:"
  std::string scheme;   // lower-cased; empty for relative references
  std::string userinfo; // "user:password" before '@', if any (absolute only)
  std::string host;     // lower-cased; absolute only
  std::optional<int> port;  // absolute only
  std::string path;     // relative: the operation ("join", "room/list");
                        // absolute: the path without the leading '/' ("remove_feeds_member")
  std::string path_params;  // text after ';' in the path (mqant "params"), raw
  std::string query;        // raw query text after '?', without the '?'
  std::vector<QueryParam> params;  // decoded, in order of appearance
  std::string msg_id;       // decoded value of the msg_id parameter; empty if absent

  // Decoded value of a query parameter, or nullptr.
  const std::string* param(std::string_view key) const;
};

// Percent-decodes `text`. Errors: '%' not followed by two hex digits ("%" at the end,
// "%zz"), a decoded NUL ("%00"), or a result that is not valid UTF-8.
Expected<std::string> percent_decode(std::string_view text);

// Parses a URI reference. Errors (with a precise message): empty reference, empty path
// of a relative reference, a '#' fragment, an invalid scheme, an empty host in an
// absolute URI, a bad port, bad percent-escapes, an empty or duplicated query key,
// a query parameter without '=' is allowed (value ""), and text that is not valid UTF-8.
Expected<Uri> parse_uri(std::string_view reference);

}  // namespace rtm::topics
