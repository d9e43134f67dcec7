#include "rtm/storage/locks.hpp"

#include <algorithm>
#include <utility>

namespace rtm::storage {

namespace {

constexpr std::int64_t kMsPerSecond = 1000;

LockEvent event(LockEventKind kind, const std::string& lock, const std::string& uid) {
  LockEvent e;
  e.kind = kind;
  e.lock = lock;
  e.uid = uid;
  return e;
}

}  // namespace

std::string_view lock_event_name(LockEventKind kind) {
  switch (kind) {
    case LockEventKind::set:
      return "set";
    case LockEventKind::removed:
      return "removed";
    case LockEventKind::acquired:
      return "acquired";
    case LockEventKind::released:
      return "released";
    case LockEventKind::expired:
      return "expired";
  }
  return "unknown";
}

Locks::Locks(LockLimits limits, const std::vector<LockState>& records) : limits_(limits) {
  for (const auto& record : records) locks_[record.name] = record;
}

Result<LockState*> Locks::existing(const std::string& name) {
  const auto found = locks_.find(name);
  if (found == locks_.end()) {
    return make_error(ErrorCode::lock_not_found, "lock \"" + name + "\" is not set", {}, name);
  }
  return &found->second;
}

void Locks::pass_on(LockState& lock, std::vector<LockEvent>& events) {
  lock.holder.reset();
  lock.expires_at_ms.reset();
  if (lock.waiters.empty()) return;
  lock.holder = lock.waiters.front();
  lock.waiters.erase(lock.waiters.begin());
  events.push_back(event(LockEventKind::acquired, lock.name, *lock.holder));
}

Result<std::vector<LockEvent>> Locks::set_lock(const std::string& name, std::int64_t ttl_s) {
  if (auto problem = key_problem(name, limits_.max_name_bytes)) {
    return make_error(ErrorCode::invalid_key, "lock name \"" + name + "\" " + *problem, {}, name);
  }
  if (ttl_s < limits_.min_ttl_s || ttl_s > limits_.max_ttl_s) {
    return make_error(ErrorCode::invalid_ttl,
                 "ttl " + std::to_string(ttl_s) + " s of lock \"" + name + "\" is outside [" +
                     std::to_string(limits_.min_ttl_s) + ", " + std::to_string(limits_.max_ttl_s) +
                     "]",
                 ttl_s < limits_.min_ttl_s ? LockLimits::kMinTtlKey : LockLimits::kMaxTtlKey, name);
  }
  if (locks_.count(name) > 0) {
    return make_error(ErrorCode::lock_exists, "lock \"" + name + "\" is already set", {}, name);
  }
  if (locks_.size() >= limits_.max_locks) {
    return make_error(
        ErrorCode::too_many_locks,
        "the channel already has " + std::to_string(locks_.size()) + " locks, the most allowed",
        LockLimits::kMaxLocksKey, name);
  }
  locks_[name] = LockState{name, ttl_s, std::nullopt, std::nullopt, {}};
  auto e = event(LockEventKind::set, name, "");
  e.ttl_s = ttl_s;
  return std::vector<LockEvent>{e};
}

Result<AcquireOutcome> Locks::acquire_now(const std::string& name, const std::string& uid,
                                          bool retry, std::int64_t now_ms) {
  AcquireOutcome out;
  out.events = due(now_ms);
  auto lock_or = existing(name);
  if (!lock_or) return lock_or.error();
  LockState& lock = **lock_or;
  if (!lock.holder) {
    lock.holder = uid;
    out.status = AcquireStatus::acquired;
    out.events.push_back(event(LockEventKind::acquired, name, uid));
    return out;
  }
  if (*lock.holder == uid) {
    lock.expires_at_ms.reset();  // a holder asking again is back
    out.status = AcquireStatus::already_held;
    return out;
  }
  const auto in_line = std::find(lock.waiters.begin(), lock.waiters.end(), uid);
  if (in_line != lock.waiters.end()) {
    out.status = AcquireStatus::already_queued;
    out.position = static_cast<std::size_t>(in_line - lock.waiters.begin()) + 1;
    return out;
  }
  if (!retry) {
    auto e =
        make_error(ErrorCode::lock_held, "lock \"" + name + "\" is held by " + *lock.holder, {}, name);
    return e;
  }
  if (lock.waiters.size() >= limits_.max_waiters) {
    return make_error(ErrorCode::too_many_waiters,
                 "lock \"" + name + "\" already has " + std::to_string(lock.waiters.size()) +
                     " waiters, the most allowed",
                 LockLimits::kMaxWaitersKey, name);
  }
  lock.waiters.push_back(uid);
  out.status = AcquireStatus::queued;
  out.position = lock.waiters.size();
  return out;
}

Result<std::vector<LockEvent>> Locks::release_now(const std::string& name, const std::string& uid,
                                                  std::int64_t now_ms) {
  auto events = due(now_ms);
  auto lock_or = existing(name);
  if (!lock_or) return lock_or.error();
  LockState& lock = **lock_or;
  if (lock.holder == uid) {
    events.push_back(event(LockEventKind::released, name, uid));
    pass_on(lock, events);
    return events;
  }
  const auto in_line = std::find(lock.waiters.begin(), lock.waiters.end(), uid);
  if (in_line != lock.waiters.end()) {
    lock.waiters.erase(in_line);  // a waiter giving up: nothing public changes
    return events;
  }
  return make_error(ErrorCode::not_lock_holder,
               uid + " neither holds nor waits for lock \"" + name + "\"", {}, name);
}

Result<std::vector<LockEvent>> Locks::revoke_now(const std::string& name, const std::string& holder,
                                                 std::int64_t now_ms) {
  auto events = due(now_ms);
  auto lock_or = existing(name);
  if (!lock_or) return lock_or.error();
  LockState& lock = **lock_or;
  if (lock.holder != holder) {
    return make_error(ErrorCode::not_lock_holder, holder + " does not hold lock \"" + name + "\"", {},
                 name);
  }
  events.push_back(event(LockEventKind::released, name, holder));
  pass_on(lock, events);
  return events;
}

Result<std::vector<LockEvent>> Locks::remove_now(const std::string& name, std::int64_t now_ms) {
  auto events = due(now_ms);
  const auto found = locks_.find(name);
  if (found == locks_.end()) {
    return make_error(ErrorCode::lock_not_found, "lock \"" + name + "\" is not set", {}, name);
  }
  auto e = event(LockEventKind::removed, name, found->second.holder.value_or(""));
  e.dropped_waiters = std::move(found->second.waiters);
  locks_.erase(found);
  events.push_back(std::move(e));
  return events;
}

// The calls that take now_ms work on a draft and keep it only on success, so that an error
// changes nothing, not even the expirations the call applied first (their events would be
// lost with the error); the caller's timer applies those through due().
template <class T, class Step>
Result<T> Locks::on_draft(Step step) {
  Locks draft = *this;
  auto result = step(draft);
  if (result) *this = std::move(draft);
  return result;
}

Result<AcquireOutcome> Locks::acquire(const std::string& name, const std::string& uid, bool retry,
                                      std::int64_t now_ms) {
  return on_draft<AcquireOutcome>(
      [&](Locks& draft) { return draft.acquire_now(name, uid, retry, now_ms); });
}

Result<std::vector<LockEvent>> Locks::release(const std::string& name, const std::string& uid,
                                              std::int64_t now_ms) {
  return on_draft<std::vector<LockEvent>>(
      [&](Locks& draft) { return draft.release_now(name, uid, now_ms); });
}

Result<std::vector<LockEvent>> Locks::revoke(const std::string& name, const std::string& holder,
                                             std::int64_t now_ms) {
  return on_draft<std::vector<LockEvent>>(
      [&](Locks& draft) { return draft.revoke_now(name, holder, now_ms); });
}

Result<std::vector<LockEvent>> Locks::remove(const std::string& name, std::int64_t now_ms) {
  return on_draft<std::vector<LockEvent>>(
      [&](Locks& draft) { return draft.remove_now(name, now_ms); });
}

SessionEnded Locks::holder_session_ended(const std::string& uid, std::int64_t now_ms) {
  SessionEnded out;
  for (auto& [name, lock] : locks_) {
    if (lock.holder == uid) {
      // A second end (another session) does not push the deadline further out.
      if (!lock.expires_at_ms) lock.expires_at_ms = now_ms + lock.ttl_s * kMsPerSecond;
      out.held.push_back(name);
    }
    const auto in_line = std::find(lock.waiters.begin(), lock.waiters.end(), uid);
    if (in_line != lock.waiters.end()) {
      lock.waiters.erase(in_line);
      out.left_queues.push_back(name);
    }
  }
  return out;
}

std::vector<std::string> Locks::holder_returned(const std::string& uid) {
  std::vector<std::string> kept;
  for (auto& [name, lock] : locks_) {
    if (lock.holder == uid && lock.expires_at_ms) {
      lock.expires_at_ms.reset();
      kept.push_back(name);
    }
  }
  return kept;
}

std::vector<LockEvent> Locks::due(std::int64_t now_ms) {
  std::vector<std::pair<std::int64_t, std::string>> expiring;
  for (const auto& [name, lock] : locks_) {
    if (lock.expires_at_ms && *lock.expires_at_ms <= now_ms) {
      expiring.emplace_back(*lock.expires_at_ms, name);
    }
  }
  std::sort(expiring.begin(), expiring.end());
  std::vector<LockEvent> events;
  for (const auto& [deadline, name] : expiring) {
    LockState& lock = locks_.at(name);
    events.push_back(event(LockEventKind::expired, name, *lock.holder));
    pass_on(lock, events);
  }
  return events;
}

std::optional<std::int64_t> Locks::next_deadline() const {
  std::optional<std::int64_t> next;
  for (const auto& [name, lock] : locks_) {
    if (lock.expires_at_ms && (!next || *lock.expires_at_ms < *next)) next = lock.expires_at_ms;
  }
  return next;
}

std::vector<LockState> Locks::get_locks() const {
  std::vector<LockState> out;
  for (const auto& [name, lock] : locks_) out.push_back(lock);
  return out;
}

std::optional<LockState> Locks::find(const std::string& name) const {
  const auto found = locks_.find(name);
  if (found == locks_.end()) return std::nullopt;
  return found->second;
}

bool Locks::held_by(const std::string& name, const std::string& uid) const {
  const auto found = locks_.find(name);
  return found != locks_.end() && found->second.holder == uid;
}

}  // namespace rtm::storage
