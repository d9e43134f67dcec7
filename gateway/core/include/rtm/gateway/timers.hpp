#pragma once
// Deadline-ordered callbacks run by the gateway loop. Cancelling is by id, so that a
// session can drop its expiry timer when the token is renewed.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>

namespace rtm::gateway {

class Timers {
 public:
  using Id = std::uint64_t;
  Id at(std::int64_t due_ms, std::function<void()> fn);
  void cancel(Id id);
  // Runs every timer due at or before now_ms (including ones added while running).
  void run_due(std::int64_t now_ms);
  std::int64_t next_due() const;  // -1 when none
  std::size_t size() const { return by_id_.size(); }

 private:
  using Queue = std::multimap<std::int64_t, std::pair<Id, std::function<void()>>>;
  Queue queue_;
  std::unordered_map<Id, Queue::iterator> by_id_;
  Id next_id_ = 1;
};

// One timer at a moving deadline (the earliest of many expiries): arm() moves it when the
// deadline changes and leaves it when it does not.
class DeadlineTimer {
 public:
  // `fn` at `due` on `timers` (none: no timer). The owner outlives the timer.
  void arm(Timers& timers, std::optional<std::int64_t> due, std::function<void()> fn);

 private:
  std::optional<Timers::Id> id_;
  std::optional<std::int64_t> at_;
};

}  // namespace rtm::gateway
