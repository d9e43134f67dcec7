#pragma once
// Remembers the answer to each (uid, msg_id) for a window, so that a QoS 1
// redelivery is answered again rather than executed twice. Bounded in entries and in
// bytes, in total and per uid: one user's requests evict that user's oldest answers
// first, and when the total is over, the user holding the most goes first, so that no
// user can push the others' answers out.
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

namespace rtm::gateway {

class Dedup {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();
  // What an entry costs besides its key and answer: map node, queue slots, bookkeeping.
  static constexpr std::size_t kEntryOverhead = 128;

  Dedup(std::int64_t window_ms, std::size_t max_entries, std::size_t max_bytes = kUnbounded,
        std::size_t max_bytes_per_uid = kUnbounded)
      : window_ms_(window_ms),
        max_entries_(max_entries),
        max_bytes_(max_bytes),
        max_bytes_per_uid_(max_bytes_per_uid) {}

  struct Seen {
    std::uint64_t fingerprint;  // of the request (URI and payload)
    bool pending;               // answer not known yet (asynchronous operation)
    std::string response;       // payload answered
  };

  // The entry for (uid, msg_id) if it is still inside the window.
  const Seen* find(const std::string& uid, const std::string& msg_id, std::int64_t now_ms);
  // Remembers an answer (or a pending request). An answer bigger than a user's share is
  // not kept: a redelivery then runs again (only read operations answer that much).
  void remember(const std::string& uid, const std::string& msg_id, std::uint64_t fingerprint,
                std::optional<std::string> response, std::int64_t now_ms);
  // Drops the entry (an answer whose turn was discarded: a redelivery runs again).
  void forget(const std::string& uid, const std::string& msg_id);
  std::size_t size() const { return entries_.size(); }
  // Bytes held, overhead included.
  std::size_t bytes() const { return bytes_; }
  std::size_t bytes_of(const std::string& uid) const;
  std::size_t evicted() const { return evicted_; }
  void set_limits(std::int64_t window_ms, std::size_t max_entries, std::size_t max_bytes,
                  std::size_t max_bytes_per_uid);

 private:
  struct Entry {
    Seen seen;
    std::int64_t expires_ms = 0;
    std::uint64_t seq = 0;  // tells a live entry from a stale queue slot with its key
    std::string uid;
    std::size_t bytes = 0;
  };
  struct PerUid {
    std::size_t bytes = 0;
    std::deque<std::pair<std::uint64_t, std::string>> keys;  // (seq, key), oldest first
  };

  void expire(std::int64_t now_ms);
  void erase(std::unordered_map<std::string, Entry>::iterator it);
  void account(const std::string& uid, std::size_t add, std::size_t remove);
  bool evict_oldest_of(const std::string& uid);
  void drop_stale_slots(const std::string& uid);
  static std::string key(const std::string& uid, const std::string& msg_id) {
    std::string k = uid;
    k += '\0';  // a decoded msg_id never holds NUL (%00 is refused), so keys cannot collide
    k += msg_id;
    return k;
  }

  std::int64_t window_ms_;
  std::size_t max_entries_;
  std::size_t max_bytes_;
  std::size_t max_bytes_per_uid_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::pair<std::uint64_t, std::string>> order_;  // (seq, key), oldest first
  std::unordered_map<std::string, PerUid> per_uid_;
  std::set<std::pair<std::size_t, std::string>> heaviest_;  // (bytes, uid)
  std::size_t bytes_ = 0;
  std::uint64_t next_seq_ = 0;
  std::size_t evicted_ = 0;
};

}  // namespace rtm::gateway
