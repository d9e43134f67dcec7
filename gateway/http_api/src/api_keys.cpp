#include <algorithm>
#include <chrono>

#include "rtm/gateway/http_api.hpp"
#include "rtm/util/secret.hpp"

namespace rtm::gateway {
namespace {

constexpr std::string_view kBearer = "Bearer ";

using util::same_secret;

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ApiKeys::ApiKeys(std::vector<HttpApiKey> keys, double rate_per_s, int burst)
    : keys_(std::move(keys)),
      rate_per_s_(rate_per_s),
      burst_(static_cast<double>(std::max(burst, 1))),
      buckets_(keys_.size(), Bucket{burst_, steady_us()}) {}

ApiKeys::Verdict ApiKeys::check(std::string_view authorization, unsigned right) {
  if (authorization.substr(0, kBearer.size()) != kBearer) return Verdict::no_key;
  const std::string_view key = authorization.substr(kBearer.size());
  // Every key is compared, so that the time says nothing of which one matched.
  std::size_t found = keys_.size();
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (same_secret(key, keys_[i].key) && found == keys_.size()) found = i;
  }
  if (found == keys_.size()) return Verdict::bad_key;
  const unsigned rights = keys_[found].rights;
  if (!(rights & kRightAdmin) && !(rights & right)) return Verdict::no_right;
  if (rate_per_s_ <= 0) return Verdict::ok;
  std::lock_guard<std::mutex> lock(mutex_);
  auto& bucket = buckets_[found];
  const std::int64_t now = steady_us();
  bucket.tokens =
      std::min(burst_, bucket.tokens + static_cast<double>(now - bucket.at_us) * rate_per_s_ / 1e6);
  bucket.at_us = now;
  if (bucket.tokens < 1) return Verdict::rate_limited;
  bucket.tokens -= 1;
  return Verdict::ok;
}

}  // namespace rtm::gateway
