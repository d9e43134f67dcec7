#include "rtm/gateway/lock_store.hpp"

#include <utility>

namespace rtm::gateway {

namespace st = rtm::storage;

void MemoryLockStore::set_limits(const st::LockLimits& limits) {
  limits_ = limits;
  for (auto& [channel, locks] : channels_) locks = st::Locks(limits_, locks.records());
}

template <class T, class Step>
st::Result<T> MemoryLockStore::on_channel(const std::string& channel, Step step) {
  auto [it, created] = channels_.try_emplace(channel, limits_);
  auto result = step(it->second);
  if (result) {
    changed(channel);
  } else if (created) {
    channels_.erase(it);
  }
  return result;
}

void MemoryLockStore::changed(const std::string& channel) {
  if (auto d = deadline_of_.find(channel); d != deadline_of_.end()) {
    deadlines_.erase({d->second, channel});
    deadline_of_.erase(d);
  }
  auto& count = count_of_[channel];
  lock_count_ -= count;
  count = 0;
  auto it = channels_.find(channel);
  if (it != channels_.end()) {
    count = it->second.get_locks().size();
    if (const auto next = it->second.next_deadline()) {
      deadlines_.emplace(*next, channel);
      deadline_of_[channel] = *next;
    }
    if (count == 0) channels_.erase(it);  // no record for a channel without locks
  }
  lock_count_ += count;
  if (count == 0) count_of_.erase(channel);
  if (listener_) listener_->locks_changed(channel);
}

st::Result<std::vector<st::LockEvent>> MemoryLockStore::set_lock(const std::string& channel,
                                                                 const std::string& name,
                                                                 std::int64_t ttl_s) {
  if (channels_.size() >= limits_.max_channels && channels_.count(channel) == 0) {
    return st::make_error(st::ErrorCode::too_many_locks,
                          std::to_string(limits_.max_channels) + " channels have locks already",
                          st::LockLimits::kMaxChannelsKey, name);
  }
  return on_channel<std::vector<st::LockEvent>>(
      channel, [&](st::Locks& locks) { return locks.set_lock(name, ttl_s); });
}

st::Result<st::AcquireOutcome> MemoryLockStore::acquire(const std::string& channel,
                                                        const std::string& name,
                                                        const std::string& uid, bool retry,
                                                        std::int64_t now_ms) {
  return on_channel<st::AcquireOutcome>(
      channel, [&](st::Locks& locks) { return locks.acquire(name, uid, retry, now_ms); });
}

st::Result<std::vector<st::LockEvent>> MemoryLockStore::release(const std::string& channel,
                                                                const std::string& name,
                                                                const std::string& uid,
                                                                std::int64_t now_ms) {
  return on_channel<std::vector<st::LockEvent>>(
      channel, [&](st::Locks& locks) { return locks.release(name, uid, now_ms); });
}

st::Result<std::vector<st::LockEvent>> MemoryLockStore::revoke(const std::string& channel,
                                                               const std::string& name,
                                                               const std::string& holder,
                                                               std::int64_t now_ms) {
  return on_channel<std::vector<st::LockEvent>>(
      channel, [&](st::Locks& locks) { return locks.revoke(name, holder, now_ms); });
}

st::Result<std::vector<st::LockEvent>> MemoryLockStore::remove(const std::string& channel,
                                                               const std::string& name,
                                                               std::int64_t now_ms) {
  return on_channel<std::vector<st::LockEvent>>(
      channel, [&](st::Locks& locks) { return locks.remove(name, now_ms); });
}

st::SessionEnded MemoryLockStore::holder_left(const std::string& channel, const std::string& uid,
                                              std::int64_t now_ms) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return {};
  auto out = it->second.holder_session_ended(uid, now_ms);
  if (!out.held.empty() || !out.left_queues.empty()) changed(channel);
  return out;
}

std::vector<std::string> MemoryLockStore::holder_returned(const std::string& channel,
                                                          const std::string& uid) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return {};
  auto kept = it->second.holder_returned(uid);
  if (!kept.empty()) changed(channel);
  return kept;
}

std::vector<ChannelLockEvents> MemoryLockStore::due(std::int64_t now_ms) {
  std::vector<std::string> due_channels;
  for (const auto& [deadline, channel] : deadlines_) {
    if (deadline > now_ms) break;
    due_channels.push_back(channel);
  }
  std::vector<ChannelLockEvents> out;
  for (const auto& channel : due_channels) {
    auto events = channels_.at(channel).due(now_ms);
    changed(channel);
    if (!events.empty()) out.push_back({channel, std::move(events)});
  }
  return out;
}

std::optional<std::int64_t> MemoryLockStore::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

std::vector<st::LockState> MemoryLockStore::get_locks(const std::string& channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? std::vector<st::LockState>{} : it->second.get_locks();
}

std::optional<st::LockState> MemoryLockStore::find(const std::string& channel,
                                                   const std::string& name) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? std::nullopt : it->second.find(name);
}

std::vector<std::string> MemoryLockStore::channels() const {
  std::vector<std::string> out;
  out.reserve(channels_.size());
  for (const auto& [channel, locks] : channels_) out.push_back(channel);
  return out;
}

void MemoryLockStore::restore(const std::string& channel,
                              const std::vector<st::LockState>& records) {
  channels_.insert_or_assign(channel, st::Locks(limits_, records));
  auto* listener = listener_;
  listener_ = nullptr;  // restoring writes nothing back
  changed(channel);
  listener_ = listener;
}

void MemoryLockStore::clear() {
  channels_.clear();
  deadlines_.clear();
  deadline_of_.clear();
  count_of_.clear();
  lock_count_ = 0;
}

}  // namespace rtm::gateway
