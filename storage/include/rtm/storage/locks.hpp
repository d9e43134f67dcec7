#pragma once
// The locks of one channel in the manner of RTM 2 (setLock, acquireLock with retry,
// releaseLock, revokeLock, removeLock, getLocks): a pure state machine. Every transition
// returns the events it causes, as values, for the caller to publish on the channel.
//
// Semantics (README.md has the reasons and what RTM 2 documents):
// - set_lock creates a lock with a ttl of [10, 300] s; a name already set is lock_exists.
// - acquire: a free lock goes to the uid (event acquired). Held by another uid: lock_held,
//   or with retry the uid joins the lock's FIFO queue (no event). The holder acquiring
//   again, or a waiter asking again, changes nothing (a retried request is harmless).
// - release by the holder frees the lock (released) and hands it to the first waiter
//   (acquired). release by a waiter withdraws it from the queue. Anyone else:
//   not_lock_holder.
// - revoke(name, uid): takes the lock from its holder uid (released) and hands it on, like
//   release but called by someone else; the gateway decides who may.
// - remove deletes the lock (removed), dropping holder and queue; the event lists the
//   dropped waiters so the gateway can answer them.
// - holder_session_ended(uid, now): uid leaves every queue at once (a waiter must be
//   live), and each lock it holds stays its own for ttl more seconds; holder_returned(uid)
//   within that time keeps them, otherwise due(now) expires them (expired) and hands each
//   to its next waiter (acquired). RTM 2 keeps a lock for a holder that comes back to the
//   channel within the ttl and releases it otherwise.
// - Every call that takes now_ms first applies the expirations already due, so a stale
//   holder never blocks a caller whose timer has not fired yet; next_deadline() tells the
//   caller when to arm its single timer. A call that fails changes nothing at all.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/storage/errors.hpp"
#include "rtm/storage/keys.hpp"

namespace rtm::storage {

struct LockLimits {
  static constexpr std::string_view kMinTtlKey = "storage.lock_min_ttl_s";
  static constexpr std::string_view kMaxTtlKey = "storage.lock_max_ttl_s";
  static constexpr std::string_view kMaxLocksKey = "storage.max_locks_per_channel";
  static constexpr std::string_view kMaxWaitersKey = "storage.max_lock_waiters";
  static constexpr std::string_view kMaxChannelsKey = "storage.max_lock_channels";

  std::int64_t min_ttl_s = 10;  // RTM 2's range
  std::int64_t max_ttl_s = 300;
  std::size_t max_locks = 64;    // per channel
  std::size_t max_waiters = 64;  // per lock
  // Channels with locks, in all: a store's bound (a channel's locks stay until removed).
  std::size_t max_channels = 100000;
  std::size_t max_name_bytes = kDefaultMaxKeyBytes;
};

// One lock, as get_locks shows it and as a store writes it (its record).
struct LockState {
  std::string name;
  std::int64_t ttl_s = 0;
  std::optional<std::string> holder;
  // Set while the holder's session is gone: when the lock expires unless it comes back.
  std::optional<std::int64_t> expires_at_ms;
  std::vector<std::string> waiters;  // FIFO, first in line first
  bool operator==(const LockState& o) const {
    return name == o.name && ttl_s == o.ttl_s && holder == o.holder &&
           expires_at_ms == o.expires_at_ms && waiters == o.waiters;
  }
};

enum class LockEventKind { set, removed, acquired, released, expired };
std::string_view lock_event_name(LockEventKind kind);  // "set", "removed", ...

struct LockEvent {
  LockEventKind kind{};
  std::string lock;
  std::string uid;         // acquired: the new holder; released/expired/removed: the old one
  std::int64_t ttl_s = 0;  // set
  std::vector<std::string> dropped_waiters;  // removed
  bool operator==(const LockEvent& o) const {
    return kind == o.kind && lock == o.lock && uid == o.uid && ttl_s == o.ttl_s &&
           dropped_waiters == o.dropped_waiters;
  }
};

enum class AcquireStatus { acquired, already_held, queued, already_queued };

struct AcquireOutcome {
  AcquireStatus status{};
  std::size_t position = 0;  // queued/already_queued: place in line, 1 = next
  std::vector<LockEvent> events;
};

struct SessionEnded {
  std::vector<std::string> held;         // locks uid holds, now expiring unless it comes back
  std::vector<std::string> left_queues;  // locks uid no longer waits for
};

class Locks {
 public:
  explicit Locks(LockLimits limits = {}) : limits_(limits) {}
  // Restores the locks a store wrote (records()); the names must be distinct.
  Locks(LockLimits limits, const std::vector<LockState>& records);

  Result<std::vector<LockEvent>> set_lock(const std::string& name, std::int64_t ttl_s);
  Result<AcquireOutcome> acquire(const std::string& name, const std::string& uid, bool retry,
                                 std::int64_t now_ms);
  Result<std::vector<LockEvent>> release(const std::string& name, const std::string& uid,
                                         std::int64_t now_ms);
  Result<std::vector<LockEvent>> revoke(const std::string& name, const std::string& holder,
                                        std::int64_t now_ms);
  Result<std::vector<LockEvent>> remove(const std::string& name, std::int64_t now_ms);

  SessionEnded holder_session_ended(const std::string& uid, std::int64_t now_ms);
  // The locks uid still holds whose countdown stopped.
  std::vector<std::string> holder_returned(const std::string& uid);

  // Expirations due at now_ms: expired and the next holders' acquired, by deadline.
  std::vector<LockEvent> due(std::int64_t now_ms);
  std::optional<std::int64_t> next_deadline() const;

  std::vector<LockState> get_locks() const;  // by name; also the records to store
  std::vector<LockState> records() const { return get_locks(); }
  std::optional<LockState> find(const std::string& name) const;
  bool held_by(const std::string& name, const std::string& uid) const;

  const LockLimits& limits() const { return limits_; }

 private:
  // Hands a free lock to its first waiter (acquired), if any.
  void pass_on(LockState& lock, std::vector<LockEvent>& events);
  Result<LockState*> existing(const std::string& name);
  template <class T, class Step>
  Result<T> on_draft(Step step);
  Result<AcquireOutcome> acquire_now(const std::string& name, const std::string& uid, bool retry,
                                     std::int64_t now_ms);
  Result<std::vector<LockEvent>> release_now(const std::string& name, const std::string& uid,
                                             std::int64_t now_ms);
  Result<std::vector<LockEvent>> revoke_now(const std::string& name, const std::string& holder,
                                            std::int64_t now_ms);
  Result<std::vector<LockEvent>> remove_now(const std::string& name, std::int64_t now_ms);

  LockLimits limits_;
  std::map<std::string, LockState> locks_;
};

}  // namespace rtm::storage
