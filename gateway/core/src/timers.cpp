#include "rtm/gateway/timers.hpp"

namespace rtm::gateway {

Timers::Id Timers::at(std::int64_t due_ms, std::function<void()> fn) {
  const Id id = next_id_++;
  auto it = queue_.emplace(due_ms, std::make_pair(id, std::move(fn)));
  by_id_.emplace(id, it);
  return id;
}

void Timers::cancel(Id id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  queue_.erase(it->second);
  by_id_.erase(it);
}

void Timers::run_due(std::int64_t now_ms) {
  while (!queue_.empty() && queue_.begin()->first <= now_ms) {
    auto it = queue_.begin();
    auto fn = std::move(it->second.second);
    by_id_.erase(it->second.first);
    queue_.erase(it);
    fn();
  }
}

std::int64_t Timers::next_due() const { return queue_.empty() ? -1 : queue_.begin()->first; }

void DeadlineTimer::arm(Timers& timers, std::optional<std::int64_t> due, std::function<void()> fn) {
  if (id_ && due == at_) return;
  if (id_) timers.cancel(*id_);
  id_.reset();
  at_ = due;
  if (!due) return;
  id_ = timers.at(*due, [this, fn = std::move(fn)] {
    id_.reset();
    at_.reset();
    fn();
  });
}

}  // namespace rtm::gateway
