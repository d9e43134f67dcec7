#pragma once
// The locks of every channel behind one seam (issue 15): one storage::Locks per channel.
// The storage model decides what each call does; a store applies it to the channel's
// record atomically and keeps the result. Values in, values and error values out; loop
// thread only.
//
// The record is per channel (storage::encode_locks: every lock of the channel, holders,
// queues and countdown deadlines), because one transition may touch several locks of a
// channel at once (a holder that leaves, expirations due together). A networked backend
// does each call as one compare-and-set on that record: read it with its version, run the
// transition here, write it back only if the version is still the one read (Redis: a
// hash {record, version} per channel and a short script "if HGET version == expected then
// HSET record, HINCRBY version"), and on a conflict read again and run the transition
// again (the model is pure, so that is safe). docs/state.md has the sqlite form.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rtm/storage/locks.hpp"

namespace rtm::gateway {

// The events of one channel's locks, for the `lock` channel events.
struct ChannelLockEvents {
  std::string channel;
  std::vector<storage::LockEvent> events;
};

// Which channels' records a durable backend must write again.
class LockListener {
 public:
  virtual ~LockListener() = default;
  virtual void locks_changed(const std::string& channel) = 0;
};

class LockStore {
 public:
  virtual ~LockStore() = default;
  // New limits apply to the next calls; locks and waiters held now stay.
  virtual void set_limits(const storage::LockLimits& limits) = 0;

  // The storage model's calls on one channel's locks (storage/locks.hpp): the events, or
  // an error value and nothing changed.
  virtual storage::Result<std::vector<storage::LockEvent>> set_lock(const std::string& channel,
                                                                    const std::string& name,
                                                                    std::int64_t ttl_s) = 0;
  virtual storage::Result<storage::AcquireOutcome> acquire(const std::string& channel,
                                                           const std::string& name,
                                                           const std::string& uid, bool retry,
                                                           std::int64_t now_ms) = 0;
  virtual storage::Result<std::vector<storage::LockEvent>> release(const std::string& channel,
                                                                   const std::string& name,
                                                                   const std::string& uid,
                                                                   std::int64_t now_ms) = 0;
  virtual storage::Result<std::vector<storage::LockEvent>> revoke(const std::string& channel,
                                                                  const std::string& name,
                                                                  const std::string& holder,
                                                                  std::int64_t now_ms) = 0;
  virtual storage::Result<std::vector<storage::LockEvent>> remove(const std::string& channel,
                                                                  const std::string& name,
                                                                  std::int64_t now_ms) = 0;

  // uid is no longer a member of channel (it left, or its session ended): it leaves the
  // channel's queues and the locks it holds there start their ttl countdown.
  virtual storage::SessionEnded holder_left(const std::string& channel, const std::string& uid,
                                            std::int64_t now_ms) = 0;
  // uid is a member of channel again: its countdowns there stop (the locks it kept).
  virtual std::vector<std::string> holder_returned(const std::string& channel,
                                                   const std::string& uid) = 0;
  // Expirations due at now_ms in every channel, by channel.
  virtual std::vector<ChannelLockEvents> due(std::int64_t now_ms) = 0;
  // The earliest countdown deadline of any channel.
  virtual std::optional<std::int64_t> next_deadline() const = 0;

  // Reads. get_locks: by name; empty for a channel without locks.
  virtual std::vector<storage::LockState> get_locks(const std::string& channel) const = 0;
  virtual std::optional<storage::LockState> find(const std::string& channel,
                                                 const std::string& name) const = 0;
  virtual std::vector<std::string> channels() const = 0;  // with locks, by name
  virtual bool has_locks(const std::string& channel) const = 0;
  virtual std::size_t lock_count() const = 0;             // in every channel
};

// The model in memory; durable backends listen to its changes and write those records.
class MemoryLockStore final : public LockStore {
 public:
  explicit MemoryLockStore(storage::LockLimits limits = {}) : limits_(limits) {}

  void set_limits(const storage::LockLimits& limits) override;
  storage::Result<std::vector<storage::LockEvent>> set_lock(const std::string& channel,
                                                            const std::string& name,
                                                            std::int64_t ttl_s) override;
  storage::Result<storage::AcquireOutcome> acquire(const std::string& channel,
                                                   const std::string& name, const std::string& uid,
                                                   bool retry, std::int64_t now_ms) override;
  storage::Result<std::vector<storage::LockEvent>> release(const std::string& channel,
                                                           const std::string& name,
                                                           const std::string& uid,
                                                           std::int64_t now_ms) override;
  storage::Result<std::vector<storage::LockEvent>> revoke(const std::string& channel,
                                                          const std::string& name,
                                                          const std::string& holder,
                                                          std::int64_t now_ms) override;
  storage::Result<std::vector<storage::LockEvent>> remove(const std::string& channel,
                                                          const std::string& name,
                                                          std::int64_t now_ms) override;
  storage::SessionEnded holder_left(const std::string& channel, const std::string& uid,
                                    std::int64_t now_ms) override;
  std::vector<std::string> holder_returned(const std::string& channel,
                                           const std::string& uid) override;
  std::vector<ChannelLockEvents> due(std::int64_t now_ms) override;
  std::optional<std::int64_t> next_deadline() const override;
  std::vector<storage::LockState> get_locks(const std::string& channel) const override;
  std::optional<storage::LockState> find(const std::string& channel,
                                         const std::string& name) const override;
  std::vector<std::string> channels() const override;
  bool has_locks(const std::string& channel) const override { return channels_.count(channel) > 0; }
  std::size_t lock_count() const override { return lock_count_; }

  // ---- for durable backends: one listener (not owned), and restoring without events.
  void set_listener(LockListener* listener) { listener_ = listener; }
  void restore(const std::string& channel, const std::vector<storage::LockState>& records);
  // The channel's records now (empty: no locks, the backend deletes its record).
  std::vector<storage::LockState> records(const std::string& channel) const {
    return get_locks(channel);
  }
  // No locks anywhere (a full reload; restore(channel, {}) erases one channel's).
  void clear();

 private:
  // Runs `step` on the channel's locks (a new, empty one when it has none); when it
  // succeeds and changed the records, keeps them and tells the listener.
  template <class T, class Step>
  storage::Result<T> on_channel(const std::string& channel, Step step);
  // After the channel's locks changed: the deadline index, the count, the listener.
  void changed(const std::string& channel);

  storage::LockLimits limits_;
  std::map<std::string, storage::Locks> channels_;
  std::set<std::pair<std::int64_t, std::string>> deadlines_;  // (deadline, channel)
  std::map<std::string, std::int64_t> deadline_of_;           // channel -> its entry above
  std::map<std::string, std::size_t> count_of_;               // channel -> its locks
  std::size_t lock_count_ = 0;
  LockListener* listener_ = nullptr;
};

}  // namespace rtm::gateway
