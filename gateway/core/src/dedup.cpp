#include "rtm/gateway/dedup.hpp"

namespace rtm::gateway {

void Dedup::set_limits(std::int64_t window_ms, std::size_t max_entries, std::size_t max_bytes,
                       std::size_t max_bytes_per_uid) {
  window_ms_ = window_ms;
  max_entries_ = max_entries;
  max_bytes_ = max_bytes;
  max_bytes_per_uid_ = max_bytes_per_uid;
}

std::size_t Dedup::bytes_of(const std::string& uid) const {
  auto it = per_uid_.find(uid);
  return it == per_uid_.end() ? 0 : it->second.bytes;
}

void Dedup::account(const std::string& uid, std::size_t add, std::size_t remove) {
  auto& user = per_uid_[uid];
  heaviest_.erase({user.bytes, uid});
  user.bytes = user.bytes + add - remove;
  bytes_ = bytes_ + add - remove;
  if (user.bytes > 0) {
    heaviest_.insert({user.bytes, uid});
  } else {
    per_uid_.erase(uid);
  }
}

void Dedup::erase(std::unordered_map<std::string, Entry>::iterator it) {
  const std::string uid = it->second.uid;
  const std::size_t bytes = it->second.bytes;
  entries_.erase(it);
  account(uid, 0, bytes);
}

bool Dedup::evict_oldest_of(const std::string& uid) {
  auto user = per_uid_.find(uid);
  while (user != per_uid_.end() && !user->second.keys.empty()) {
    auto [seq, k] = std::move(user->second.keys.front());
    user->second.keys.pop_front();
    auto it = entries_.find(k);
    if (it == entries_.end() || it->second.seq != seq) continue;  // a stale slot
    erase(it);
    ++evicted_;
    return true;
  }
  return false;
}

void Dedup::expire(std::int64_t now_ms) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front().second);
    const bool stale = it == entries_.end() || it->second.seq != order_.front().first;
    if (!stale && it->second.expires_ms > now_ms && entries_.size() <= max_entries_) break;
    if (!stale) erase(it);
    order_.pop_front();
  }
}

void Dedup::drop_stale_slots(const std::string& uid) {
  // A user's queue keeps the slots of entries that left by expiry; they are its oldest.
  auto user = per_uid_.find(uid);
  if (user == per_uid_.end()) return;
  auto& keys = user->second.keys;
  while (!keys.empty()) {
    auto it = entries_.find(keys.front().second);
    if (it != entries_.end() && it->second.seq == keys.front().first) break;
    keys.pop_front();
  }
}

const Dedup::Seen* Dedup::find(const std::string& uid, const std::string& msg_id,
                               std::int64_t now_ms) {
  auto it = entries_.find(key(uid, msg_id));
  if (it == entries_.end()) return nullptr;
  if (it->second.expires_ms <= now_ms) {
    erase(it);
    return nullptr;
  }
  return &it->second.seen;
}

void Dedup::forget(const std::string& uid, const std::string& msg_id) {
  // Its slots in the queues go stale and are skipped, as after an expiry.
  if (auto it = entries_.find(key(uid, msg_id)); it != entries_.end()) erase(it);
}

void Dedup::remember(const std::string& uid, const std::string& msg_id, std::uint64_t fingerprint,
                     std::optional<std::string> response, std::int64_t now_ms) {
  if (window_ms_ <= 0 || max_entries_ == 0) return;
  auto k = key(uid, msg_id);
  const std::size_t answer_bytes = response ? response->size() : 0;
  const std::size_t cost = kEntryOverhead + 3 * k.size() + uid.size() + answer_bytes;
  auto existing = entries_.find(k);
  if (cost > max_bytes_per_uid_ || cost > max_bytes_) {
    if (existing != entries_.end()) erase(existing);  // a pending entry whose answer is too big
    return;
  }
  if (existing != entries_.end()) {
    // A pending entry completed: same slot, same expiry, new size.
    Entry& e = existing->second;
    e.seen.fingerprint = fingerprint;
    e.seen.pending = !response.has_value();
    e.seen.response = response ? std::move(*response) : std::string();
    const std::size_t before = e.bytes;
    e.bytes = cost;
    account(uid, cost, before);
  } else {
    const std::uint64_t seq = ++next_seq_;
    Entry e{{fingerprint, !response.has_value(), response ? std::move(*response) : std::string()},
            now_ms + window_ms_, seq, uid, cost};
    entries_.emplace(k, std::move(e));
    order_.emplace_back(seq, k);
    per_uid_[uid].keys.emplace_back(seq, std::move(k));
    account(uid, cost, 0);
  }
  // This user's share first, then the total from whoever holds the most.
  while (bytes_of(uid) > max_bytes_per_uid_ && evict_oldest_of(uid)) {
  }
  while (bytes_ > max_bytes_ && !heaviest_.empty()) {
    if (!evict_oldest_of(std::prev(heaviest_.end())->second)) break;
  }
  expire(now_ms);
  drop_stale_slots(uid);
}

}  // namespace rtm::gateway
