// Fuzz target: JWT (HS256) tokens (tokens/src/jwt.cpp). verify_token takes anything a
// client sends at login; it must refuse all but a token signed with the secret, with a
// message that is valid UTF-8 (it is answered) and never holds the secret. Tokens signed
// from fuzzed claims must verify back to the same claims, exactly as exp and nbf allow,
// and stop verifying once any one character changes. base64url must be canonical.
//
// Input: the whole input is a token to verify, and also (through FuzzedDataProvider) the
// claims, the clock and the character to change of the round trip.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "check.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"

namespace {

using rtm::gateway::ErrorCode;
using rtm::gateway::TokenClaims;

const std::string kSecret = "fuzz-secret-0123456789abcdef0123456789";
const std::string kOtherSecret = "fuzz-secret-0123456789abcdef0123456788";
constexpr std::int64_t kNowS = 1700000000;

bool is_token_failure(ErrorCode code) {
  switch (code) {
    case ErrorCode::token_invalid:
    case ErrorCode::token_bad_signature:
    case ErrorCode::token_expired:
    case ErrorCode::token_unsupported_alg:
    case ErrorCode::token_not_yet_valid:
      return true;
    default:
      return false;
  }
}

// The decoded header and payload, where the fuzzer may have written the secret itself.
std::string decoded_parts(std::string_view token) {
  std::string parts;
  std::size_t start = 0;
  while (start <= token.size()) {
    std::size_t dot = token.find('.', start);
    if (dot == std::string_view::npos) dot = token.size();
    if (auto part = rtm::util::base64url_decode(token.substr(start, dot - start))) {
      parts += *part;
    }
    start = dot + 1;
  }
  return parts;
}

void check_verify(std::string_view token) {
  const auto verified = rtm::gateway::verify_token(token, kSecret, kNowS);
  if (verified) {
    // Only a token signed with the secret gets here: it fails under any other secret.
    RTM_FUZZ_CHECK(verified->exp > kNowS && (!verified->nbf || *verified->nbf <= kNowS),
                   "an accepted token is within exp and nbf");
    const auto other = rtm::gateway::verify_token(token, kOtherSecret, kNowS);
    RTM_FUZZ_CHECK(!other && other.error().code == ErrorCode::token_bad_signature,
                   "an accepted token fails under another secret");
    return;
  }
  const auto& failure = verified.error();
  RTM_FUZZ_CHECK(is_token_failure(failure.code), "a refusal has a token error code");
  RTM_FUZZ_CHECK(!failure.message.empty(), "a refusal says why");
  // The message is answered to the client as a JSON string.
  RTM_FUZZ_CHECK(rtm::topics::is_valid_utf8(failure.message), "a refusal is valid UTF-8");
  if (decoded_parts(token).find(kSecret) == std::string::npos) {
    RTM_FUZZ_CHECK(failure.message.find(kSecret) == std::string::npos,
                   "a refusal never holds the secret");
  }
  // Shorter tokens may be a piece of a fixed message ("e three dot-separated ").
  if (token.size() >= 128) {
    RTM_FUZZ_CHECK(failure.message.find(token) == std::string::npos,
                   "a refusal never holds the token");
  }
}

void check_base64url(std::string_view bytes) {
  const std::string encoded = rtm::util::base64url_encode(bytes);
  const auto decoded = rtm::util::base64url_decode(encoded);
  RTM_FUZZ_CHECK(decoded && *decoded == bytes, "base64url round-trips");
  // Canonical: text that decodes is the encoding of what it decodes to.
  if (const auto back = rtm::util::base64url_decode(bytes)) {
    RTM_FUZZ_CHECK(rtm::util::base64url_encode(*back) == bytes, "base64url is canonical");
  }
}

void check_round_trip(FuzzedDataProvider& in) {
  TokenClaims claims;
  claims.iat = in.ConsumeIntegral<std::int64_t>();
  claims.exp = in.ConsumeBool() ? kNowS + in.ConsumeIntegralInRange<std::int64_t>(-100000, 100000)
                                : in.ConsumeIntegral<std::int64_t>();
  if (in.ConsumeBool()) {
    claims.nbf = in.ConsumeBool() ? kNowS + in.ConsumeIntegralInRange<std::int64_t>(-100000, 100000)
                                  : in.ConsumeIntegral<std::int64_t>();
  }
  const std::size_t flip_at = in.ConsumeIntegral<std::uint16_t>();
  const char flip_to = in.ConsumeIntegral<char>();
  claims.sub = in.ConsumeRandomLengthString(256);

  const std::string token = rtm::gateway::sign_token(claims, kSecret);
  const auto verified = rtm::gateway::verify_token(token, kSecret, kNowS);
  const bool live = claims.exp > kNowS && (!claims.nbf || *claims.nbf <= kNowS);
  if (token.size() > 8192) {
    RTM_FUZZ_CHECK(!verified, "an oversize token is refused");
    return;
  }
  RTM_FUZZ_CHECK(verified.ok() == live, "a signed token verifies exactly within exp and nbf");
  if (verified) {
    RTM_FUZZ_CHECK(verified->sub == claims.sub && verified->iat == claims.iat &&
                       verified->exp == claims.exp && verified->nbf == claims.nbf,
                   "a signed token gives back its claims");
  } else {
    RTM_FUZZ_CHECK(verified.error().code == (claims.exp <= kNowS ? ErrorCode::token_expired
                                                                 : ErrorCode::token_not_yet_valid),
                   "a signed token is refused only for its time");
    RTM_FUZZ_CHECK(rtm::topics::is_valid_utf8(verified.error().message), "valid UTF-8");
  }
  const auto other = rtm::gateway::verify_token(token, kOtherSecret, kNowS);
  RTM_FUZZ_CHECK(!other && other.error().code == ErrorCode::token_bad_signature,
                 "a token fails under another secret");

  std::string changed = token;
  const std::size_t at = flip_at % changed.size();
  if (changed[at] != flip_to) {
    changed[at] = flip_to;
    RTM_FUZZ_CHECK(!rtm::gateway::verify_token(changed, kSecret, kNowS),
                   "a token with one character changed is refused");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = rtm::fuzz::text(data, size);
  check_verify(input);
  check_base64url(input);
  FuzzedDataProvider provider(data, size);
  check_round_trip(provider);
  return 0;
}
