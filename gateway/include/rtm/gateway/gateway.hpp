#pragma once
// The running gateway: a broker link feeding one loop thread that owns the Core.
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/config.hpp"
#include "rtm/gateway/core.hpp"

namespace rtm::gateway {

class Gateway final : public BrokerLink::Listener, public Outbox {
 public:
  Gateway(const Config& config, std::unique_ptr<BrokerLink> link);
  ~Gateway() override;

  Core& core() { return *core_; }

  // Runs the loop on the calling thread until stop().
  void run();
  // Thread-safe; run() returns soon after.
  void stop();

  // BrokerLink::Listener (link threads)
  void on_connected() override;
  void on_connection_lost(const std::string& why) override;
  void on_message(Message&& message) override;
  void on_drained() override;

  // Outbox (loop thread)
  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override;
  std::size_t in_flight() const override;

 private:
  void log_stats();

  Config config_;
  std::unique_ptr<BrokerLink> link_;
  std::unique_ptr<Core> core_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable space_;  // the inbox has room again
  std::deque<Message> inbox_;
  std::deque<std::function<void()>> tasks_;  // posted from other threads (Core::post)
  bool stopping_ = false;
  bool drained_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_logged_ = 0;
};

}  // namespace rtm::gateway
