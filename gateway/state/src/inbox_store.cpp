#include "rtm/gateway/inbox_store.hpp"

#include <algorithm>
#include <utility>

namespace rtm::gateway {

namespace {
// Ids are now_ms * kIdsPerMs at least: they grow with time across restarts even when the
// stored counter was lost with the last message, and leave room for bursts in one ms.
constexpr std::uint64_t kIdsPerMs = 1024;

bool id_less(const PeerMessage& m, std::uint64_t id) {
  return m.id < id;
}
}  // namespace

InboxLimits inbox_limits(const InboxConfig& config) {
  InboxLimits limits;
  limits.max_messages_per_user = static_cast<std::size_t>(config.max_messages_per_user);
  limits.max_age_ms = config.max_age_s * 1000;
  limits.max_message_bytes = static_cast<std::size_t>(config.max_message_bytes);
  limits.max_total_bytes = static_cast<std::size_t>(config.max_total_bytes);
  return limits;
}

std::uint64_t MemoryInboxStore::next_id(std::int64_t now_ms) {
  const std::uint64_t floor = now_ms > 0 ? static_cast<std::uint64_t>(now_ms) * kIdsPerMs : 0;
  last_id_ = std::max(last_id_ + 1, floor);
  if (listener_) listener_->inbox_id_used(last_id_);
  return last_id_;
}

Outcome<InboxPut> MemoryInboxStore::put(PeerMessage message) {
  if (message.payload.size() > limits_.max_message_bytes) {
    return failure(ErrorCode::limit_inbox, "the message has " +
                                               std::to_string(message.payload.size()) +
                                               " bytes, over inbox.max_message_bytes (" +
                                               std::to_string(limits_.max_message_bytes) + ")");
  }
  InboxPut out;
  // The user's oldest make room first: they would go anyway, so they count as free.
  std::size_t freed = 0;
  std::size_t evict = 0;
  if (auto it = users_.find(message.to); it != users_.end()) {
    const auto& queue = it->second;
    while (queue.size() - evict >= std::max<std::size_t>(limits_.max_messages_per_user, 1)) {
      freed += inbox_bytes(queue[evict]);
      ++evict;
    }
  }
  if (bytes_ - freed + inbox_bytes(message) > limits_.max_total_bytes) {
    return failure(ErrorCode::limit_inbox,
                   "the inboxes hold " + std::to_string(bytes_) +
                       " bytes, the message would pass inbox.max_total_bytes (" +
                       std::to_string(limits_.max_total_bytes) + ")");
  }
  for (std::size_t i = 0; i < evict; ++i) out.evicted.push_back(remove_front(message.to));
  insert(std::move(message));
  return out;
}

void MemoryInboxStore::insert(PeerMessage message) {
  const auto id = message.id;
  bytes_ += inbox_bytes(message);
  index_.emplace(id, message.to);
  auto& queue = users_[message.to];
  if (queue.empty() || queue.back().id < id) {
    queue.push_back(std::move(message));
  } else {  // restored out of order
    queue.insert(std::lower_bound(queue.begin(), queue.end(), id, id_less), std::move(message));
  }
  last_id_ = std::max(last_id_, id);
  if (listener_) listener_->inbox_changed(id);
}

PeerMessage MemoryInboxStore::remove_front(const std::string& uid) {
  auto it = users_.find(uid);
  PeerMessage m = std::move(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) users_.erase(it);
  index_.erase(m.id);
  bytes_ -= inbox_bytes(m);
  if (listener_) listener_->inbox_changed(m.id);
  return m;
}

std::vector<PeerMessage> MemoryInboxStore::list(const std::string& uid, std::uint64_t after,
                                                std::size_t limit) const {
  std::vector<PeerMessage> out;
  auto it = users_.find(uid);
  if (it == users_.end()) return out;
  const auto& queue = it->second;
  for (auto m = std::lower_bound(queue.begin(), queue.end(), after + 1, id_less);
       m != queue.end() && out.size() < limit; ++m) {
    out.push_back(*m);
  }
  return out;
}

std::vector<PeerMessage> MemoryInboxStore::take(const std::string& uid, std::uint64_t through) {
  std::vector<PeerMessage> out;
  while (true) {
    auto it = users_.find(uid);
    if (it == users_.end() || it->second.front().id > through) break;
    out.push_back(remove_front(uid));
  }
  return out;
}

// Ids grow with the clock, so the oldest message is the first of the index (a clock that
// went back may leave a younger one before an older one for a while: it then expires late).
std::vector<PeerMessage> MemoryInboxStore::expire(std::int64_t now_ms) {
  std::vector<PeerMessage> out;
  const std::int64_t cutoff = now_ms - limits_.max_age_ms;
  while (!index_.empty()) {
    const auto& [id, uid] = *index_.begin();
    const auto& queue = users_.at(uid);
    if (queue.front().id != id || queue.front().ts_ms > cutoff) break;
    out.push_back(remove_front(std::string(uid)));
  }
  return out;
}

std::optional<std::int64_t> MemoryInboxStore::next_expiry() const {
  if (index_.empty()) return std::nullopt;
  const auto& [id, uid] = *index_.begin();
  return users_.at(uid).front().ts_ms + limits_.max_age_ms;
}

std::size_t MemoryInboxStore::count(const std::string& uid) const {
  auto it = users_.find(uid);
  return it == users_.end() ? 0 : it->second.size();
}

void MemoryInboxStore::restore(PeerMessage message) {
  auto* listener = listener_;
  listener_ = nullptr;  // restoring writes nothing back
  insert(std::move(message));
  listener_ = listener;
}

std::optional<PeerMessage> MemoryInboxStore::find(std::uint64_t id) const {
  auto at = index_.find(id);
  if (at == index_.end()) return std::nullopt;
  const auto& queue = users_.at(at->second);
  auto m = std::lower_bound(queue.begin(), queue.end(), id, id_less);
  if (m == queue.end() || m->id != id) return std::nullopt;
  return *m;
}

void MemoryInboxStore::replace(PeerMessage message) {
  erase(message.id);
  restore(std::move(message));
}

void MemoryInboxStore::erase(std::uint64_t id) {
  auto at = index_.find(id);
  if (at == index_.end()) return;
  auto user = users_.find(at->second);
  index_.erase(at);
  if (user == users_.end()) return;
  auto& queue = user->second;
  auto m = std::lower_bound(queue.begin(), queue.end(), id, id_less);
  if (m == queue.end() || m->id != id) return;
  bytes_ -= inbox_bytes(*m);
  queue.erase(m);
  if (queue.empty()) users_.erase(user);
}

void MemoryInboxStore::for_each(const std::function<void(const PeerMessage&)>& visit) const {
  for (const auto& [id, uid] : index_) {
    if (auto m = find(id)) visit(*m);
  }
}

void MemoryInboxStore::clear() {
  users_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace rtm::gateway
