#pragma once
// Remembers the answer to each (uid, msg_id) for a window, so that a QoS 1
// redelivery is answered again rather than executed twice. Bounded in entries.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

namespace rtm::gateway {

class Dedup {
 public:
  Dedup(std::int64_t window_ms, std::size_t max_entries)
      : window_ms_(window_ms), max_entries_(max_entries) {}

  struct Seen {
    std::uint64_t fingerprint;  // of the request (URI and payload)
    bool pending;               // answer not known yet (asynchronous operation)
    std::string response;       // payload answered
  };

  // The entry for (uid, msg_id) if it is still inside the window.
  const Seen* find(const std::string& uid, const std::string& msg_id, std::int64_t now_ms);
  void remember(const std::string& uid, const std::string& msg_id, std::uint64_t fingerprint,
                std::optional<std::string> response, std::int64_t now_ms);
  std::size_t size() const { return entries_.size(); }
  // Bytes held in keys and answers (not counting the containers' own overhead).
  std::size_t bytes() const { return bytes_; }
  void set_limits(std::int64_t window_ms, std::size_t max_entries) {
    window_ms_ = window_ms;
    max_entries_ = max_entries;
  }

 private:
  void expire(std::int64_t now_ms);
  static std::string key(const std::string& uid, const std::string& msg_id) {
    std::string k = uid;
    k += '\0';  // a decoded msg_id never holds NUL (%00 is refused), so keys cannot collide
    k += msg_id;
    return k;
  }

  std::int64_t window_ms_;
  std::size_t max_entries_;
  std::unordered_map<std::string, Seen> entries_;
  std::deque<std::pair<std::int64_t, std::string>> order_;  // (expiry, key), oldest first
  std::size_t bytes_ = 0;
};

}  // namespace rtm::gateway
