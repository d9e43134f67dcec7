// Tests of rtm/gateway/jwt.hpp: base64url, HS256 signing against an external vector, and
// every way verify_token refuses a token, each with its error code.
//
// The hard-coded tokens below were computed outside the code under test, with
//   b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
//   H=$(echo -n '{"alg":"HS256","typ":"JWT"}' | b64u); P=$(echo -n '<claims>' | b64u)
//   S=$(echo -n "$H.$P" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64u); echo "$H.$P.$S"
// (and cross-checked with Python's hmac/base64), secret kSecret.
#include <doctest/doctest.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rtm/tokens/jwt.hpp"
#include "rtm/util/base64.hpp"

namespace {

using rtm::util::base64url_decode;
using rtm::util::base64url_encode;
using rtm::gateway::ErrorCode;
using rtm::gateway::error_name;
using rtm::gateway::sign_token;
using rtm::gateway::TokenClaims;
using rtm::gateway::verify_token;

const std::string kSecret = "demo-secret-change-me-0123456789abcdef";
const std::string kOtherSecret = "another-secret-0123456789abcdef-0123456789";
constexpr std::int64_t kIat = 1700000000;
constexpr std::int64_t kExp = 1700003600;

// {"alg":"HS256","typ":"JWT"} . {"sub":"alice","iat":1700000000,"exp":1700003600}
const std::string kAliceToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"
    ".lPj4SeX9IbSkifHfgiqUeRtI2u4qpJbz97G4sDXkqZw";

TokenClaims alice(std::int64_t iat = kIat, std::int64_t exp = kExp) {
  TokenClaims c;
  c.sub = "alice";
  c.iat = iat;
  c.exp = exp;
  return c;
}

// The code of a refused token; fails the test when the token is accepted.
ErrorCode refusal(const std::string& token, const std::string& secret, std::int64_t now_s) {
  auto r = verify_token(token, secret, now_s);
  if (r.ok()) {
    FAIL_CHECK("token accepted: " << token);
    return ErrorCode::ok;
  }
  // The message is for humans and logs: never the token, never the secret.
  CHECK(!r.error().message.empty());
  if (token.size() > 8) CHECK(r.error().message.find(token) == std::string::npos);
  if (!secret.empty()) CHECK(r.error().message.find(secret) == std::string::npos);
  return r.error().code;
}

std::vector<std::string> split_dots(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

}  // namespace

TEST_CASE("jwt: base64url known vectors (RFC 4648 §10, URL-safe alphabet, no padding)") {
  struct Case {
    std::string bytes;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"f", "Zg"},
      {"fo", "Zm8"},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy"},
      {std::string("\xfb\xff", 2), "-_8"},
      {std::string("\xff\xff\xff", 3), "____"},
      {std::string("\x00\x00\x00", 3), "AAAA"},
      {std::string("\xfb\xef\xbe", 3), "----"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(base64url_encode(c.bytes) == c.text);
    auto decoded = base64url_decode(c.text);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == c.bytes);
  }
}

TEST_CASE("jwt: base64url round trip of 0..5 bytes over all byte values") {
  for (std::size_t length = 0; length <= 5; ++length) {
    for (int start = 0; start < 256; ++start) {
      std::string bytes;
      for (std::size_t i = 0; i < length; ++i) {
        bytes.push_back(static_cast<char>((start + static_cast<int>(i) * 97) & 0xff));
      }
      const auto text = base64url_encode(bytes);
      CAPTURE(length);
      CAPTURE(start);
      REQUIRE(text.size() == (length * 4 + 2) / 3);  // no padding
      REQUIRE(text.find_first_of("=+/") == std::string::npos);
      auto back = base64url_decode(text);
      REQUIRE(back.has_value());
      REQUIRE(*back == bytes);
    }
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  auto back = base64url_decode(base64url_encode(all));
  REQUIRE(back.has_value());
  CHECK(*back == all);
}

TEST_CASE("jwt: base64url decode refuses padding, the standard alphabet and bad lengths") {
  for (const char* text : {"Zg==", "Zm8=", "Zg=", "+w", "/w", "ab+/", "A", "AAAAA", "Zm9vY",
                           "Zm 9v", "Zm.9", "Zm9v\n", "\xc3\xbf\xc3\xbf"}) {
    CAPTURE(text);
    CHECK_FALSE(base64url_decode(text).has_value());
  }
  CHECK_FALSE(base64url_decode(std::string("Zm\0v", 4)).has_value());
}

TEST_CASE("jwt: sign_token matches the externally computed HS256 vector") {
  CHECK(sign_token(alice(), kSecret) == kAliceToken);
  // The header and claims decode to exactly the documented JSON.
  const auto parts = split_dots(kAliceToken);
  REQUIRE(parts.size() == 3);
  CHECK(base64url_decode(parts[0]) == std::string(R"({"alg":"HS256","typ":"JWT"})"));
  CHECK(base64url_decode(parts[1]) ==
        std::string(R"({"sub":"alice","iat":1700000000,"exp":1700003600})"));
  CHECK(base64url_decode(parts[2])->size() == 32);
}

TEST_CASE("jwt: the external vector verifies and yields its claims") {
  auto r = verify_token(kAliceToken, kSecret, kIat);
  REQUIRE(r.ok());
  CHECK(r->sub == "alice");
  CHECK(r->iat == kIat);
  CHECK(r->exp == kExp);
  CHECK_FALSE(r->nbf.has_value());
}

TEST_CASE("jwt: sign then verify round trip") {
  SUBCASE("plain claims") {
    TokenClaims c = alice(100, 200);
    c.sub = "bob-42_x.y";
    auto r = verify_token(sign_token(c, kOtherSecret), kOtherSecret, 150);
    REQUIRE(r.ok());
    CHECK(r->sub == c.sub);
    CHECK(r->iat == 100);
    CHECK(r->exp == 200);
    CHECK_FALSE(r->nbf.has_value());
  }
  SUBCASE("with nbf") {
    TokenClaims c = alice(100, 200);
    c.nbf = 120;
    auto r = verify_token(sign_token(c, kSecret), kSecret, 120);  // nbf == now is valid
    REQUIRE(r.ok());
    REQUIRE(r->nbf.has_value());
    CHECK(*r->nbf == 120);
  }
  SUBCASE("a sub that needs JSON escaping") {
    TokenClaims c = alice();
    c.sub = "q\"uote\\back\x01";
    auto r = verify_token(sign_token(c, kSecret), kSecret, kIat);
    REQUIRE(r.ok());
    CHECK(r->sub == c.sub);
  }
  SUBCASE("large timestamps") {
    TokenClaims c = alice(0, INT64_C(253402300799));  // 9999-12-31
    auto r = verify_token(sign_token(c, kSecret), kSecret, kIat);
    REQUIRE(r.ok());
    CHECK(r->exp == INT64_C(253402300799));
  }
}

TEST_CASE("jwt: expiry and not-before against now") {
  const auto token = sign_token(alice(kIat, kExp), kSecret);
  CHECK(verify_token(token, kSecret, kExp - 1).ok());
  CHECK(refusal(token, kSecret, kExp) == ErrorCode::token_expired);  // exp exactly now
  CHECK(refusal(token, kSecret, kExp + 1) == ErrorCode::token_expired);
  CHECK(refusal(token, kSecret, kExp + 86400) == ErrorCode::token_expired);

  TokenClaims c = alice(kIat, kExp);
  c.nbf = kIat + 100;
  const auto later = sign_token(c, kSecret);
  CHECK(refusal(later, kSecret, kIat) == ErrorCode::token_not_yet_valid);
  CHECK(refusal(later, kSecret, kIat + 99) == ErrorCode::token_not_yet_valid);
  CHECK(verify_token(later, kSecret, kIat + 100).ok());
  CHECK(refusal(later, kSecret, kExp) == ErrorCode::token_expired);
}

TEST_CASE("jwt: times at the ends of int64 are refused with exact differences") {
  // Found by fuzz/jwt.cpp: now - exp overflowed as a signed subtraction.
  constexpr std::int64_t kMin = INT64_MIN;
  constexpr std::int64_t kMax = INT64_MAX;
  auto expired = verify_token(sign_token(alice(kIat, kMin), kSecret), kSecret, kIat);
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.error().code == ErrorCode::token_expired);
  CHECK(expired.error().message == "token expired 9223372038554775808 s ago");

  TokenClaims c = alice(kIat, kMax);
  c.nbf = kMax;
  auto early = verify_token(sign_token(c, kSecret), kSecret, kMin);
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().code == ErrorCode::token_not_yet_valid);
  CHECK(early.error().message == "token is not valid for another 18446744073709551615 s");
}

TEST_CASE("jwt: a refused alg is named only when it is short printable ASCII") {
  // Found by fuzz/jwt.cpp: the unauthenticated alg was echoed raw into the message, which
  // is answered to the client, so the answer was not valid UTF-8.
  const std::string p = base64url_encode(R"({"sub":"alice","exp":1700003600})");
  auto refused = [&](const std::string& header) {
    auto r = verify_token(base64url_encode(header) + "." + p + ".AAAA", kSecret, kIat);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::token_unsupported_alg);
    return r.error().message;
  };
  CHECK(refused(R"({"alg":"none"})") == "token alg \"none\" is not accepted, only HS256");
  CHECK(refused("{\"alg\":\"\xff\xfeHS\"}") ==
        "token alg (4 bytes, not a short ASCII name) is not accepted, only HS256");
  CHECK(refused(R"({"alg":")" + std::string(5000, 'x') + R"("})") ==
        "token alg (5000 bytes, not a short ASCII name) is not accepted, only HS256");
  // A NUL inside the name no longer cuts it short to "HS256".
  CHECK(refused(R"({"alg":"HS256\u0000x"})") ==
        "token alg (7 bytes, not a short ASCII name) is not accepted, only HS256");
}

TEST_CASE("jwt: externally signed tokens with odd claims") {
  SUBCASE("nbf in the future") {
    const std::string t =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjox"
        "NzAwMDAzNjAwLCJuYmYiOjE3MDAwMDAxMDB9.pLcq_yp_zjjoQSXPtFJghiqVcKyaqzLAsLDWLR6lqmc";
    CHECK(refusal(t, kSecret, kIat) == ErrorCode::token_not_yet_valid);
    auto r = verify_token(t, kSecret, kIat + 100);
    REQUIRE(r.ok());
    CHECK(r->nbf == std::optional<std::int64_t>(1700000100));
  }
  SUBCASE("fractional exp (NumericDate may carry fractions)") {
    const std::string t =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMzYwMC43NX0"
        ".LnitgaAWb1lnqdV_JNFHOl4BYp876fuNiOBrYdSqDpE";
    auto r = verify_token(t, kSecret, kIat);
    REQUIRE(r.ok());
    CHECK(r->exp == kExp);
    CHECK(r->iat == 0);  // absent iat
  }
}

TEST_CASE("jwt: each refusal has its error code") {
  struct Case {
    const char* what;
    std::string token;
    ErrorCode code;
  };
  const auto parts = split_dots(kAliceToken);
  const std::string& h = parts[0];
  const std::string& p = parts[1];
  const std::string& s = parts[2];
  // A middle character of the signature changed (the last one only carries 4 bits plus 2
  // unused ones, so change one that is all signature).
  std::string flipped_sig = s;
  flipped_sig[10] = flipped_sig[10] == 'A' ? 'B' : 'A';
  std::string flipped_payload = p;
  flipped_payload[5] = flipped_payload[5] == 'A' ? 'B' : 'A';

  const std::vector<Case> cases = {
      {"empty", "", ErrorCode::token_invalid},
      {"one part", h, ErrorCode::token_invalid},
      {"two parts", h + "." + p, ErrorCode::token_invalid},
      {"four parts", kAliceToken + "." + s, ErrorCode::token_invalid},
      {"trailing dot", kAliceToken + ".", ErrorCode::token_invalid},
      {"only dots", "..", ErrorCode::token_invalid},
      {"non-base64 header", "e*J." + p + "." + s, ErrorCode::token_invalid},
      {"non-base64 payload", h + ".eyJ=." + s, ErrorCode::token_invalid},
      {"non-base64 signature", h + "." + p + ".ab+/", ErrorCode::token_invalid},
      {"bad base64 length", h + "." + p + ".A", ErrorCode::token_invalid},
      {"header not JSON",
       "bm90IGpzb24.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"
       ".ce-JQZEBLi47hE_Tw_hfIXnymPv_lq5u9lnRRlQ-61o",
       ErrorCode::token_invalid},
      {"header without alg",
       "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"
       ".u9ibgpzS25AQhnLNnQAAjzh-TD2Bs9gd2g1-XPVM9g0",
       ErrorCode::token_invalid},
      {"alg none, no signature", base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + p + ".",
       ErrorCode::token_unsupported_alg},
      {"alg none, signed",
       "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjox"
       "NzAwMDAzNjAwfQ.zJtDo6AoP5eNTxbp_8VCodkLQpq0zjy35CRvQL1PB8k",
       ErrorCode::token_unsupported_alg},
      {"alg HS512",
       "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjox"
       "NzAwMDAzNjAwfQ.EogSHiNk033hUa8CckMDAyE_WRAIUOm1oUWIJ_9wneU",
       ErrorCode::token_unsupported_alg},
      {"alg hs256 (case matters)",
       "eyJhbGciOiJoczI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjox"
       "NzAwMDAzNjAwfQ.hBk-7u3XMmCGDQoQbRxJQXTNqOPfsHqNMTZV-nzVT7c",
       ErrorCode::token_unsupported_alg},
      {"signed with another secret", sign_token(alice(), kOtherSecret),
       ErrorCode::token_bad_signature},
      {"flipped signature character", h + "." + p + "." + flipped_sig,
       ErrorCode::token_bad_signature},
      {"flipped payload character", h + "." + flipped_payload + "." + s,
       ErrorCode::token_bad_signature},
      {"empty signature", h + "." + p + ".", ErrorCode::token_bad_signature},
      {"truncated signature", h + "." + p + "." + s.substr(0, 40), ErrorCode::token_bad_signature},
      {"signature of another token", h + "." + p + "." + split_dots(sign_token(alice(1, 2), kSecret))[2],
       ErrorCode::token_bad_signature},
      {"payload not JSON",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.aGVsbG8.xBWiHRWBppQtLd6fnmT0y7asx_Ny8iviyueSxwK7KLk",
       ErrorCode::token_invalid},
      {"payload a JSON array",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.WyJhbGljZSJd.EBjWSWV7-L6FJtUeiy0jEjks2pVyREItpYvlErE4e74",
       ErrorCode::token_invalid},
      {"payload without sub",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0"
       ".L9U68z4UAdirMvVJxbxrBGrK4tB873xLMPeu-Jqt2Ec",
       ErrorCode::token_invalid},
      {"sub not a string",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOjQyLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAw"
       "MzYwMH0.xqP8h-aCzOAmci13IjgF0P2zRGotFXkPxByRuLOqUMg",
       ErrorCode::token_invalid},
      {"payload without exp",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMH0"
       ".1pDwOw3gTUcuyq38S7wF4jp8r08nxJpKmMWYdqaXzxI",
       ErrorCode::token_invalid},
      {"exp a string",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoi"
       "MTcwMDAwMzYwMCJ9.8ymfQ60jyFKVBzNBhQhpTnGjeCS6gi12jLANZGUZgec",
       ErrorCode::token_invalid},
      {"nbf a string",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMzYwMCwibmJmIjoi"
       "c29vbiJ9.NXj9EqcVUdTgdbVWqhAnuPcMIE7S7hgjJuJk53NHdwo",
       ErrorCode::token_invalid},
      {"longer than 8192 bytes", kAliceToken + std::string(8200, 'A'), ErrorCode::token_invalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const ErrorCode got = refusal(c.token, kSecret, kIat);
    CHECK_MESSAGE(got == c.code, "got " << error_name(got) << ", expected " << error_name(c.code));
  }
}

TEST_CASE("jwt: an empty secret never verifies a token signed with the real one") {
  CHECK(refusal(kAliceToken, "", kIat) == ErrorCode::token_bad_signature);
}

TEST_CASE("jwt: a channel token carries its channel claim, a login token none") {
  auto claims = alice(kIat, kExp);
  claims.channel = "room-42";
  const auto token = sign_token(claims, kSecret);
  auto r = verify_token(token, kSecret, kIat + 1);
  REQUIRE(r);
  REQUIRE(r->channel);
  CHECK(*r->channel == "room-42");
  CHECK(r->sub == "alice");
  auto plain = verify_token(kAliceToken, kSecret, kIat + 1);
  REQUIRE(plain);
  CHECK_FALSE(plain->channel);
  // The claim is part of what is signed: the payload of another token does not pass.
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  const std::string forged =
      token.substr(0, dot1) +
      kAliceToken.substr(kAliceToken.find('.'), kAliceToken.rfind('.') - kAliceToken.find('.')) +
      token.substr(dot2);
  CHECK(refusal(forged, kSecret, kIat + 1) == ErrorCode::token_bad_signature);
}
