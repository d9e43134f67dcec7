#include "rtm/gateway/gateway.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "rtm/gateway/bridge.hpp"
#include "rtm/gateway/modules.hpp"
#include "rtm/gateway/operations.hpp"

namespace rtm::gateway {

Gateway::Gateway(const Config& config, std::unique_ptr<BrokerLink> link)
    : config_(config), link_(std::move(link)), core_(std::make_unique<Core>(config_, *this)) {
  core_->set_poster([this](std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  });
  register_basic_operations(*core_);
  auto rtm = register_rtm_operations(*core_);
  register_bridge(*core_, rtm);
  register_module_rpc(*core_);
}

Gateway::~Gateway() {
  link_->stop();
  // Modules may run threads that post to the loop's queue (the HTTP proxy): end them while
  // the queue still exists.
  core_.reset();
}

void Gateway::on_connected() {
  spdlog::info("gateway: serving requests on {}", core_->tree().request_filter());
}

void Gateway::on_connection_lost(const std::string& why) {
  spdlog::warn("gateway: broker connection lost ({}); reconnecting", why);
}

void Gateway::on_message(Message&& message) {
  switch (core_->fast_path(message)) {
    case FastResult::handled:
      return;
    case FastResult::deferred:
      message.deferred = true;
      break;
    case FastResult::not_mine:
      break;
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (inbox_.size() >= config_.requests.queue_capacity) {
      // QoS 1 is never dropped, nor a message the bridge's fast path is waiting for.
      auto droppable = [](const Message& m) { return m.qos == 0 && !m.deferred; };
      if (!droppable(message)) {
        // Hold the link's thread, so that the broker keeps the rest meanwhile.
        space_.wait(lock, [this] {
          return stopping_ || inbox_.size() < config_.requests.queue_capacity;
        });
        if (stopping_) return;
      } else if (droppable(inbox_.front())) {
        inbox_.pop_front();  // QoS 0: the oldest goes first, fresh data matters more
        ++dropped_;
      } else {
        ++dropped_;
        return;
      }
    }
    inbox_.push_back(std::move(message));
  }
  wake_.notify_one();
}

void Gateway::on_drained() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    drained_ = true;
  }
  wake_.notify_one();
}

std::size_t Gateway::in_flight() const { return link_->in_flight(); }

bool Gateway::publish(const std::string& topic, std::string_view payload, int qos, bool retain) {
  return link_->publish(topic, payload, qos, retain);
}

void Gateway::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  space_.notify_all();
}

void Gateway::log_stats() {
  const auto& c = core_->counters();
  spdlog::info("stats: requests={} ok={} errors={} replayed={} publish_failed={} dropped_inbound={}",
               c.requests, c.answered_ok, c.answered_error, c.replayed, c.publish_failed,
               c.dropped_inbound);
  for (const auto& line : core_->stats_lines()) spdlog::info("stats: {}", line);
}

void Gateway::run() {
  link_->set_drain_mark(config_.mapping.max_in_flight / 2);
  link_->subscribe(core_->subscriptions(), 1);
  link_->start(this);
  const auto stats_every = std::chrono::seconds(config_.log.stats_interval_s);
  auto next_stats = std::chrono::steady_clock::now() + stats_every;
  std::deque<Message> batch;
  std::deque<std::function<void()>> tasks;
  auto next_drop_log = std::chrono::steady_clock::now();
  while (true) {
    const std::int64_t next_due = core_->run_due();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const bool hold = core_->backpressured();
      auto ready = [this, hold] {
        return stopping_ || drained_ || !tasks_.empty() || (!hold && !inbox_.empty());
      };
      // Held back, the loop still looks often: the link may drain without telling us
      // (for example when the connection drops and its counters reset).
      std::int64_t wait_ms = hold ? 10 : 1000;
      if (next_due >= 0) {
        wait_ms = std::min<std::int64_t>(wait_ms, std::max<std::int64_t>(0, next_due - core_->now_ms()));
      }
      wake_.wait_for(lock, std::chrono::milliseconds(wait_ms), ready);
      if (stopping_) break;
      drained_ = false;
      if (!hold) batch.swap(inbox_);
      tasks.swap(tasks_);
      core_->counters().dropped_inbound += dropped_;
      dropped_ = 0;
    }
    const auto now = std::chrono::steady_clock::now();
    if (core_->counters().dropped_inbound > dropped_logged_ && now >= next_drop_log) {
      spdlog::warn("gateway: inbound queue full (capacity {}): {} messages dropped so far",
                   config_.requests.queue_capacity, core_->counters().dropped_inbound);
      dropped_logged_ = core_->counters().dropped_inbound;
      next_drop_log = now + std::chrono::seconds(5);
    }
    if (!batch.empty()) space_.notify_all();
    for (auto& message : batch) {
      core_->on_message(message);
    }
    batch.clear();
    for (auto& task : tasks) {
      try {
        task();
      } catch (const std::exception& e) {
        spdlog::error("gateway: posted task failed: {}", e.what());
      }
    }
    tasks.clear();
    core_->run_idle_hooks();
    if (config_.log.stats_interval_s > 0 && std::chrono::steady_clock::now() >= next_stats) {
      log_stats();
      next_stats = std::chrono::steady_clock::now() + stats_every;
    }
  }
  spdlog::info("gateway: stopping");
  link_->stop();
  log_stats();
}

}  // namespace rtm::gateway
