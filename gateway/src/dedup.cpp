#include "rtm/gateway/dedup.hpp"

namespace rtm::gateway {

void Dedup::expire(std::int64_t now_ms) {
  while (!order_.empty() && (order_.front().first <= now_ms || entries_.size() > max_entries_)) {
    auto it = entries_.find(order_.front().second);
    if (it != entries_.end()) {
      bytes_ -= 2 * it->first.size() + it->second.response.size();
      entries_.erase(it);
    }
    order_.pop_front();
  }
}

const Dedup::Seen* Dedup::find(const std::string& uid, const std::string& msg_id,
                               std::int64_t now_ms) {
  expire(now_ms);
  auto it = entries_.find(key(uid, msg_id));
  return it == entries_.end() ? nullptr : &it->second;
}

void Dedup::remember(const std::string& uid, const std::string& msg_id, std::uint64_t fingerprint,
                     std::optional<std::string> response, std::int64_t now_ms) {
  if (window_ms_ <= 0 || max_entries_ == 0) return;
  auto k = key(uid, msg_id);
  auto [it, inserted] = entries_.try_emplace(k);
  if (inserted) bytes_ += 2 * k.size();  // the map's key and the expiry queue's copy
  bytes_ -= it->second.response.size();
  it->second.fingerprint = fingerprint;
  it->second.pending = !response.has_value();
  it->second.response = response ? std::move(*response) : std::string();
  bytes_ += it->second.response.size();
  if (inserted) order_.emplace_back(now_ms + window_ms_, std::move(k));
  expire(now_ms);
}

}  // namespace rtm::gateway
