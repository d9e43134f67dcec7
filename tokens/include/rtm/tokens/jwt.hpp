#pragma once
// JWT (HS256) tokens: claims sub = uid, iat, exp (and nbf when present). The same
// tokens can be checked by EMQX's JWT authentication at CONNECT.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rtm/gateway/errors.hpp"
#include "rtm/topics/expected.hpp"

namespace rtm::gateway {

struct TokenClaims {
  std::string sub;
  std::int64_t iat = 0;
  std::int64_t exp = 0;
  std::optional<std::int64_t> nbf;
  // A channel token names the channel it admits to (join, subscribe_channel).
  std::optional<std::string> channel;
};

struct TokenFailure {
  ErrorCode code;       // token_invalid, token_unsupported_alg, token_bad_signature, ...
  std::string message;  // human, never contains the token or the secret
};

std::string sign_token(const TokenClaims& claims, std::string_view secret);

// Checks form, algorithm (HS256 only), signature, exp and nbf against `now_s`.
Expected<TokenClaims, TokenFailure> verify_token(std::string_view token, std::string_view secret,
                                                 std::int64_t now_s);

}  // namespace rtm::gateway
