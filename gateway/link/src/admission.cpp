#include "rtm/gateway/admission.hpp"

#include <algorithm>

namespace rtm::gateway {

RateLimiter::Verdict RateLimiter::check(std::string_view uid, std::int64_t now_us) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = buckets_.find(std::string(uid));
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_users) make_room(now_us);
    if (buckets_.size() >= limits_.max_users) return Verdict::admit;  // all busy: fail open
    it = buckets_.emplace(std::string(uid), Bucket{limits_.burst, limits_.refusals_per_s, now_us})
             .first;
  }
  Bucket& b = it->second;
  const double elapsed_s = static_cast<double>(std::max<std::int64_t>(0, now_us - b.last_us)) / 1e6;
  b.last_us = now_us;
  b.tokens = std::min(limits_.burst, b.tokens + elapsed_s * limits_.rate_per_s);
  // Up to a second's worth of refusals can be saved up.
  b.refusals = std::min(std::max(1.0, limits_.refusals_per_s),
                        b.refusals + elapsed_s * limits_.refusals_per_s);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return Verdict::admit;
  }
  if (b.refusals >= 1) {
    b.refusals -= 1;
    return Verdict::refuse;
  }
  return Verdict::drop;
}

void RateLimiter::make_room(std::int64_t now_us) {
  // A bucket that has refilled completely says nothing a fresh one would not.
  const double refill_s = limits_.burst / limits_.rate_per_s;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double idle_s = static_cast<double>(now_us - it->second.last_us) / 1e6;
    if (it->second.tokens + idle_s * limits_.rate_per_s >= limits_.burst || idle_s >= refill_s) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

void RateLimiter::set_limits(const RateLimits& limits) {
  std::lock_guard<std::mutex> lock(mutex_);
  limits_ = limits;
  for (auto& [uid, b] : buckets_) b.tokens = std::min(b.tokens, limits_.burst);
}

std::size_t RateLimiter::users() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buckets_.size();
}

void FairQueue::push(std::string key, Message&& message) {
  bytes_ += cost(message);
  ++count_;
  auto& q = queues_[key];
  q.messages.push_back(std::move(message));
  if (!q.scheduled) {
    q.scheduled = true;
    turns_.push_back(std::move(key));
  }
}

void FairQueue::take(std::size_t per_key, std::size_t max, std::deque<Message>& out) {
  std::size_t taken = 0;
  // One pass over the keys waiting now; a key with more left goes to the back.
  std::size_t rounds = turns_.size();
  while (taken < max && rounds-- > 0 && !turns_.empty()) {
    std::string key = std::move(turns_.front());
    turns_.pop_front();
    auto it = queues_.find(key);
    if (it == queues_.end()) continue;
    auto& q = it->second;
    for (std::size_t n = 0; n < per_key && taken < max && !q.messages.empty(); ++n, ++taken) {
      bytes_ -= cost(q.messages.front());
      --count_;
      out.push_back(std::move(q.messages.front()));
      q.messages.pop_front();
    }
    if (q.messages.empty()) {
      queues_.erase(it);
    } else {
      turns_.push_back(std::move(key));
    }
  }
}

std::string_view owner_of(std::string_view topic, std::string_view prefix) {
  if (topic.size() <= prefix.size() + 1 || topic.compare(0, prefix.size(), prefix) != 0 ||
      topic[prefix.size()] != '/') {
    return {};
  }
  std::string_view rest = topic.substr(prefix.size() + 1);
  std::string_view branch;
  if (rest.rfind("req/", 0) == 0) {
    branch = rest.substr(4);
  } else if (rest.rfind("presence/", 0) == 0) {
    branch = rest.substr(9);
  } else {
    return {};
  }
  return branch.substr(0, branch.find('/'));
}

}  // namespace rtm::gateway
