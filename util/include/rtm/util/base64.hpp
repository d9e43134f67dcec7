#pragma once
// Base64 (RFC 4648): the standard alphabet with padding (§4), and base64url without
// padding (§5, as in JWTs).
#include <optional>
#include <string>
#include <string_view>

namespace rtm::util {

// Standard alphabet, padded with '='.
std::string base64_encode(std::string_view bytes);
// The same, appended to `out`.
void append_base64(std::string& out, std::string_view bytes);

// Strict standard base64: padded to a multiple of 4, no white space, zero trailing bits.
std::optional<std::string> base64_decode(std::string_view text);

// URL-safe alphabet ('-', '_'), no padding.
std::string base64url_encode(std::string_view bytes);
// Strict: no padding, no standard alphabet, no white space, and unused trailing bits must be
// zero, so that every byte string has exactly one spelling.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace rtm::util
