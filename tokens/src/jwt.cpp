#include "rtm/tokens/jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "rtm/util/base64.hpp"

namespace rtm::gateway {
namespace {

using util::base64url_decode;
using util::base64url_encode;

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

TokenFailure fail(ErrorCode code, std::string message) { return {code, std::move(message)}; }

bool read_int64(const rapidjson::Value& obj, const char* key, std::int64_t& out) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return false;
  if (it->value.IsInt64()) {
    out = it->value.GetInt64();
    return true;
  }
  if (it->value.IsDouble()) {  // NumericDate may carry fractions
    const double d = it->value.GetDouble();
    if (!(d > -9.0e15 && d < 9.0e15)) return false;  // also refuses NaN
    out = static_cast<std::int64_t>(d);
    return true;
  }
  return false;
}

// The alg of a refused token for its message, which is answered to the client: the header
// is not authenticated yet, so only a short printable ASCII name is quoted (never bytes that
// are not UTF-8, never kilobytes).
std::string shown_alg(std::string_view alg) {
  constexpr std::size_t kMaxShown = 32;
  bool printable = !alg.empty() && alg.size() <= kMaxShown;
  for (char c : alg) printable = printable && c >= 0x20 && c < 0x7F;
  if (!printable) return "(" + std::to_string(alg.size()) + " bytes, not a short ASCII name)";
  return "\"" + std::string(alg) + "\"";
}

}  // namespace

std::string sign_token(const TokenClaims& claims, std::string_view secret) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("sub");
  w.String(claims.sub.data(), static_cast<rapidjson::SizeType>(claims.sub.size()));
  w.Key("iat");
  w.Int64(claims.iat);
  w.Key("exp");
  w.Int64(claims.exp);
  if (claims.nbf) {
    w.Key("nbf");
    w.Int64(*claims.nbf);
  }
  if (claims.channel) {
    w.Key("channel");
    w.String(claims.channel->data(), static_cast<rapidjson::SizeType>(claims.channel->size()));
  }
  w.EndObject();
  std::string signing_input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                              base64url_encode(std::string_view(buf.GetString(), buf.GetSize()));
  return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

Expected<TokenClaims, TokenFailure> verify_token(std::string_view token, std::string_view secret,
                                                 std::int64_t now_s) {
  if (token.empty()) return fail(ErrorCode::token_invalid, "token is empty");
  if (token.size() > 8192) return fail(ErrorCode::token_invalid, "token is longer than 8192 bytes");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(ErrorCode::token_invalid, "token must have three dot-separated parts");
  }
  auto header_text = base64url_decode(token.substr(0, dot1));
  auto payload_text = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !payload_text || !signature) {
    return fail(ErrorCode::token_invalid, "token part is not base64url");
  }

  rapidjson::Document header;
  // Iterative: a token is client input, and a deep one must not exhaust the stack.
  header.Parse<rapidjson::kParseIterativeFlag>(header_text->data(), header_text->size());
  if (header.HasParseError() || !header.IsObject()) {
    return fail(ErrorCode::token_invalid, "token header is not a JSON object");
  }
  auto alg = header.FindMember("alg");
  if (alg == header.MemberEnd() || !alg->value.IsString()) {
    return fail(ErrorCode::token_invalid, "token header has no alg");
  }
  const std::string_view alg_name(alg->value.GetString(), alg->value.GetStringLength());
  if (alg_name != "HS256") {
    return fail(ErrorCode::token_unsupported_alg,
                "token alg " + shown_alg(alg_name) + " is not accepted, only HS256");
  }

  const auto expected = hmac_sha256(secret, token.substr(0, dot2));
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return fail(ErrorCode::token_bad_signature, "token signature does not match");
  }

  rapidjson::Document payload;
  payload.Parse<rapidjson::kParseIterativeFlag>(payload_text->data(), payload_text->size());
  if (payload.HasParseError() || !payload.IsObject()) {
    return fail(ErrorCode::token_invalid, "token payload is not a JSON object");
  }
  TokenClaims claims;
  auto sub = payload.FindMember("sub");
  if (sub == payload.MemberEnd() || !sub->value.IsString()) {
    return fail(ErrorCode::token_invalid, "token has no sub claim");
  }
  claims.sub.assign(sub->value.GetString(), sub->value.GetStringLength());
  if (!read_int64(payload, "exp", claims.exp)) {
    return fail(ErrorCode::token_invalid, "token has no numeric exp claim");
  }
  read_int64(payload, "iat", claims.iat);
  if (const auto channel = payload.FindMember("channel"); channel != payload.MemberEnd()) {
    if (!channel->value.IsString()) {
      return fail(ErrorCode::token_invalid, "token channel claim is not a string");
    }
    claims.channel.emplace(channel->value.GetString(), channel->value.GetStringLength());
  }
  std::int64_t nbf = 0;
  if (payload.HasMember("nbf")) {
    if (!read_int64(payload, "nbf", nbf)) {
      return fail(ErrorCode::token_invalid, "token nbf claim is not a number");
    }
    claims.nbf = nbf;
  }
  // A signed token may carry any int64 times: the differences are taken in uint64, where
  // (later - earlier) is exact and cannot overflow as a signed subtraction would.
  if (claims.exp <= now_s) {
    const std::uint64_t ago =
        static_cast<std::uint64_t>(now_s) - static_cast<std::uint64_t>(claims.exp);
    return fail(ErrorCode::token_expired, "token expired " + std::to_string(ago) + " s ago");
  }
  if (claims.nbf && *claims.nbf > now_s) {
    const std::uint64_t wait =
        static_cast<std::uint64_t>(*claims.nbf) - static_cast<std::uint64_t>(now_s);
    return fail(ErrorCode::token_not_yet_valid,
                "token is not valid for another " + std::to_string(wait) + " s");
  }
  return claims;
}

}  // namespace rtm::gateway
