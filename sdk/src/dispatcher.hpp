#pragma once
// The thread that runs the app's callbacks, one at a time, in the order they were posted.
// Its state is shared with its thread, so that the thread may outlive the client when the
// last handle to the client is dropped from inside a callback.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "rtm/sdk/types.hpp"

namespace rtm::sdk::detail {

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
 public:
  static std::shared_ptr<Dispatcher> create(std::size_t max_queued, Logger logger) {
    std::shared_ptr<Dispatcher> d(new Dispatcher(max_queued, std::move(logger)));
    d->thread_ = std::thread([self = d] { self->run(); });
    d->thread_id_ = d->thread_.get_id();  // before anyone can post
    return d;
  }

  // Queues `fn`. A `droppable` item (a channel or inbox message) is dropped when the queue
  // is full; returns false then, or when the dispatcher has stopped.
  bool post(std::function<void()> fn, bool droppable) {
    std::size_t dropped = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return false;
      if (droppable && queue_.size() >= max_queued_) {
        dropped = ++dropped_;
      } else {
        queue_.push_back(std::move(fn));
      }
    }
    if (dropped) {
      if (logger_ && (dropped == 1 || dropped % 10000 == 0)) {
        logger_(LogLevel::warn, "rtm sdk: callbacks are too slow: " + std::to_string(dropped) +
                                    " messages dropped so far (ClientConfig::max_queued_events)");
      }
      return false;
    }
    cv_.notify_one();
    return true;
  }

  bool on_dispatcher_thread() const { return std::this_thread::get_id() == thread_id_; }

  // Runs what is queued, then ends. From the dispatcher thread itself (a callback that
  // dropped the last client handle), the thread finishes on its own.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    if (on_dispatcher_thread()) {
      thread_.detach();
    } else if (thread_.joinable()) {
      thread_.join();
    }
  }

  ~Dispatcher() {
    if (thread_.joinable()) thread_.detach();  // only when stop() was never called
  }

 private:
  Dispatcher(std::size_t max_queued, Logger logger)
      : max_queued_(max_queued), logger_(std::move(logger)) {}

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      try {
        fn();
      } catch (const std::exception& e) {
        if (logger_) logger_(LogLevel::error, std::string("rtm sdk: a callback threw: ") + e.what());
      } catch (...) {
        if (logger_) logger_(LogLevel::error, "rtm sdk: a callback threw");
      }
      fn = nullptr;  // destroy captures outside the lock
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::size_t max_queued_;
  std::size_t dropped_ = 0;
  Logger logger_;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace rtm::sdk::detail
