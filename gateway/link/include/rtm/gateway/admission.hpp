#pragma once
// What the gateway lets in from one user, before any work is done for it: a token bucket
// per uid for requests (RateLimiter), and a queue that serves users in turn (FairQueue),
// so that one user's flood neither grows memory nor delays the others. Pure: no threads,
// no clock of its own; the caller passes the time.
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "rtm/gateway/broker_link.hpp"

namespace rtm::gateway {

struct RateLimits {
  double rate_per_s = 50;       // requests refilled per second
  double burst = 200;           // bucket size
  double refusals_per_s = 5;    // RATE_LIMITED answers per second; beyond, dropped unanswered
  std::size_t max_users = 100000;  // buckets kept; idle ones are dropped to make room
};

// Thread-safe (one mutex; the broker link's thread is its only hot caller).
class RateLimiter {
 public:
  enum class Verdict { admit, refuse, drop };
  explicit RateLimiter(RateLimits limits) : limits_(limits) {}
  Verdict check(std::string_view uid, std::int64_t now_us);
  void set_limits(const RateLimits& limits);
  RateLimits limits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return limits_;
  }
  std::size_t users() const;

 private:
  struct Bucket {
    double tokens;
    double refusals;
    std::int64_t last_us;
  };
  void make_room(std::int64_t now_us);

  mutable std::mutex mutex_;
  RateLimits limits_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// Messages waiting for the gateway loop, one FIFO per key (a uid, or "" for the rest),
// taken in turns: a few from each key per round. Bounded in messages and bytes by the
// caller (see count()/bytes()). Not thread-safe: the caller holds its lock.
class FairQueue {
 public:
  void push(std::string key, Message&& message);
  // Moves up to `per_key` messages of each waiting key, round after round, until `max`
  // messages are taken or nothing waits. Keys keep their turn order across calls.
  void take(std::size_t per_key, std::size_t max, std::deque<Message>& out);
  // Drops the oldest message that `droppable` allows, from the key holding the most;
  // false when there is none.
  template <class Pred>
  bool drop_one(Pred droppable);
  std::size_t count() const { return count_; }
  std::size_t bytes() const { return bytes_; }
  std::size_t keys() const { return queues_.size(); }
  bool empty() const { return count_ == 0; }

  static std::size_t cost(const Message& m) { return m.topic.size() + m.payload.size() + 64; }

 private:
  struct Queue {
    std::deque<Message> messages;
    bool scheduled = false;
  };
  std::unordered_map<std::string, Queue> queues_;
  std::deque<std::string> turns_;  // keys with messages, in turn order
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

template <class Pred>
bool FairQueue::drop_one(Pred droppable) {
  Queue* fullest = nullptr;
  for (auto& [key, q] : queues_) {
    if (!q.messages.empty() && droppable(q.messages.front()) &&
        (!fullest || q.messages.size() > fullest->messages.size())) {
      fullest = &q;
    }
  }
  if (!fullest) return false;
  bytes_ -= cost(fullest->messages.front());
  --count_;
  fullest->messages.pop_front();
  return true;
}

// The uid a message belongs to for admission: P/req/{uid}/... and P/presence/{uid};
// empty for every other topic.
std::string_view owner_of(std::string_view topic, std::string_view prefix);

}  // namespace rtm::gateway
