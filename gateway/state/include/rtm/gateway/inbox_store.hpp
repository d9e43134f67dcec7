#pragma once
// Peer messages kept for users without a live session (docs/protocol.md, "Peer-to-peer";
// docs/state.md, "Inbox"): the InboxStore seam of the state store, in the same commits as
// the rest. One record per message, keyed by its id: a gateway-assigned number that grows
// with time and never repeats, also across restarts (max(last + 1, now_ms * 1024), the
// last one stored with the messages). Bounded per user (the oldest go first) and in total
// bytes (a message past it is refused); expired ones are dropped by `expire`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/request.hpp"

namespace rtm::gateway {

// One kept peer message.
struct PeerMessage {
  std::uint64_t id = 0;
  std::string from;
  std::string to;
  std::int64_t ts_ms = 0;  // server time it was taken
  bool binary = false;     // the payload is not valid UTF-8 (it travels base64-encoded)
  bool receipt = false;    // the sender asked for a `delivered` receipt
  std::string payload;
};

struct InboxLimits {
  std::size_t max_messages_per_user = 100;
  std::int64_t max_age_ms = 604800LL * 1000;
  std::size_t max_message_bytes = 32768;
  std::size_t max_total_bytes = 64u * 1024 * 1024;
};

// The limits of the `inbox` config section.
InboxLimits inbox_limits(const InboxConfig& config);

// The bytes a message counts for inbox.max_total_bytes: its payload, names and a fixed
// share for its record.
inline constexpr std::size_t kInboxRecordOverhead = 64;
inline std::size_t inbox_bytes(const PeerMessage& m) {
  return m.payload.size() + m.from.size() + m.to.size() + kInboxRecordOverhead;
}

// What put() did besides keeping the message.
struct InboxPut {
  std::vector<PeerMessage> evicted;  // the user's oldest, over max_messages_per_user
};

// Which messages a durable backend must write (present) or delete (gone).
class InboxListener {
 public:
  virtual ~InboxListener() = default;
  virtual void inbox_changed(std::uint64_t id) = 0;
  virtual void inbox_id_used(std::uint64_t last_id) = 0;  // the counter moved
};

class InboxStore {
 public:
  virtual ~InboxStore() = default;
  // New limits apply to the next put; messages kept now stay (expire applies the age).
  virtual void set_limits(const InboxLimits& limits) = 0;
  // A new id, larger than every id given before (also before a restart).
  virtual std::uint64_t next_id(std::int64_t now_ms) = 0;
  // Keeps `message` (its id from next_id). LIMIT_INBOX naming the key when it is too big
  // or the inboxes are full; nothing changed then.
  virtual Outcome<InboxPut> put(PeerMessage message) = 0;
  // Up to `limit` messages of `uid` with an id above `after`, oldest first.
  virtual std::vector<PeerMessage> list(const std::string& uid, std::uint64_t after,
                                        std::size_t limit) const = 0;
  // Removes `uid`'s messages with an id up to `through`; returns them, oldest first.
  virtual std::vector<PeerMessage> take(const std::string& uid, std::uint64_t through) = 0;
  // Removes the messages taken before now_ms - max_age; returns them.
  virtual std::vector<PeerMessage> expire(std::int64_t now_ms) = 0;
  // When the oldest message expires (nullopt: none kept).
  virtual std::optional<std::int64_t> next_expiry() const = 0;
  virtual std::size_t count(const std::string& uid) const = 0;
  virtual std::size_t message_count() const = 0;
  virtual std::size_t bytes() const = 0;
  virtual std::size_t user_count() const = 0;
};

// The model in memory; durable backends listen to its changes and write those records.
class MemoryInboxStore final : public InboxStore {
 public:
  explicit MemoryInboxStore(InboxLimits limits = {}) : limits_(limits) {}

  void set_limits(const InboxLimits& limits) override { limits_ = limits; }
  std::uint64_t next_id(std::int64_t now_ms) override;
  Outcome<InboxPut> put(PeerMessage message) override;
  std::vector<PeerMessage> list(const std::string& uid, std::uint64_t after,
                                std::size_t limit) const override;
  std::vector<PeerMessage> take(const std::string& uid, std::uint64_t through) override;
  std::vector<PeerMessage> expire(std::int64_t now_ms) override;
  std::optional<std::int64_t> next_expiry() const override;
  std::size_t count(const std::string& uid) const override;
  std::size_t message_count() const override { return index_.size(); }
  std::size_t bytes() const override { return bytes_; }
  std::size_t user_count() const override { return users_.size(); }

  // ---- for durable backends: one listener (not owned), and restoring without limits.
  void set_listener(InboxListener* listener) { listener_ = listener; }
  void restore(PeerMessage message);
  void restore_last_id(std::uint64_t last_id) { last_id_ = std::max(last_id_, last_id); }
  std::uint64_t last_id() const { return last_id_; }
  // The message of `id` now (nullopt: gone, the backend deletes its record).
  std::optional<PeerMessage> find(std::uint64_t id) const;
  // ---- for shared backends (replicated rows): without limits or listener. replace keeps
  // `message` in place of one of the same id; erase drops the message of `id`, if any.
  void replace(PeerMessage message);
  void erase(std::uint64_t id);
  void for_each(const std::function<void(const PeerMessage&)>& visit) const;
  // No messages (a full reload); the last id stays, so that ids never repeat.
  void clear();

 private:
  void insert(PeerMessage message);
  PeerMessage remove_front(const std::string& uid);

  InboxLimits limits_;
  std::unordered_map<std::string, std::deque<PeerMessage>> users_;  // by recipient, by id
  std::map<std::uint64_t, std::string> index_;                      // id -> recipient
  std::size_t bytes_ = 0;
  std::uint64_t last_id_ = 0;
  InboxListener* listener_ = nullptr;
};

}  // namespace rtm::gateway
