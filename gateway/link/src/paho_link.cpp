#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/links.hpp"

namespace rtm::gateway {
namespace {

// Paho's own automatic reconnect does not cover a failed first connect, so one thread
// of ours owns (re)connecting with exponential backoff and re-subscribing.
class PahoLink final : public BrokerLink {
 public:
  explicit PahoLink(const BrokerConfig& config)
      : config_(config),
        client_(normalise_uri(config.uri), config.client_id,
                mqtt::create_options(MQTTVERSION_3_1_1, 1000000)) {}

  ~PahoLink() override { stop(); }

  void start(Listener* listener) override {
    listener_ = listener;
    client_.set_message_callback([this](mqtt::const_message_ptr msg) {
      if (msg->get_payload_ref().size() > config_.max_message_bytes) {
        // Paho took it already; the gateway does not (the same rule as the native link).
        skipped_.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("broker: skipped a message of {} bytes on {}: over broker.max_message_bytes",
                      msg->get_payload_ref().size(), msg->get_topic());
        return;
      }
      Message m;
      m.topic = msg->get_topic();
      m.payload = msg->get_payload_str();
      m.qos = msg->get_qos();
      m.retained = msg->is_retained();
      listener_->on_message(std::move(m));
    });
    client_.set_connection_lost_handler([this](const std::string& cause) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        connected_ = false;
      }
      lost_.fetch_add(1, std::memory_order_relaxed);
      wake_.notify_all();
      listener_->on_connection_lost(cause.empty() ? "connection lost" : cause);
    });
    worker_ = std::thread([this] { connect_loop(); });
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
    try {
      if (client_.is_connected()) client_.disconnect(1000)->wait_for(std::chrono::seconds(2));
    } catch (const std::exception& e) {
      spdlog::debug("broker: disconnect: {}", e.what());
    }
    client_.set_message_callback([](mqtt::const_message_ptr) {});
    client_.set_connection_lost_handler([](const std::string&) {});
  }

  bool connected() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return connected_;
  }

  void subscribe(const std::vector<std::string>& filters, int qos) override {
    bool now;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& f : filters) subscriptions_.emplace_back(f, qos);
      now = connected_;
    }
    if (now) {
      for (const auto& f : filters) {
        try {
          client_.subscribe(f, qos);
        } catch (const std::exception& e) {
          spdlog::warn("broker: subscribe {}: {}", f, e.what());
        }
      }
    }
  }

  void unsubscribe(const std::vector<std::string>& filters) override {
    bool now;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& f : filters) {
        subscriptions_.erase(std::remove_if(subscriptions_.begin(), subscriptions_.end(),
                                            [&f](const auto& s) { return s.first == f; }),
                             subscriptions_.end());
      }
      now = connected_;
    }
    if (!now) return;
    for (const auto& f : filters) {
      try {
        client_.unsubscribe(f);
      } catch (const std::exception& e) {
        spdlog::warn("broker: unsubscribe {}: {}", f, e.what());
      }
    }
  }

  void set_will(Will will) override {
    std::lock_guard<std::mutex> lock(mutex_);
    will_ = std::move(will);
  }

  LinkStats stats() const override {
    return {connects_.load(std::memory_order_relaxed), lost_.load(std::memory_order_relaxed), 0,
            skipped_.load(std::memory_order_relaxed)};
  }

  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    try {
      client_.publish(topic, payload.data(), payload.size(), qos, retain, nullptr, completions_);
      return true;
    } catch (const std::exception& e) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      spdlog::debug("broker: publish to {} failed: {}", topic, e.what());
      return false;
    }
  }

  std::size_t in_flight() const override {
    const auto n = in_flight_.load(std::memory_order_relaxed);
    return n > 0 ? static_cast<std::size_t>(n) : 0;  // late completions after a reset
  }
  void set_drain_mark(std::size_t mark) override { drain_mark_ = static_cast<long long>(mark); }

 private:
  static std::string normalise_uri(std::string uri) {
    if (uri.rfind("mqtt://", 0) == 0) uri = "tcp://" + uri.substr(7);
    if (uri.rfind("mqtts://", 0) == 0) uri = "ssl://" + uri.substr(8);
    return uri;
  }

  void connect_loop() {
    auto backoff = std::chrono::milliseconds(config_.reconnect_min_ms);
    const auto max_backoff = std::chrono::milliseconds(config_.reconnect_max_ms);
    bool logged_failure = false;
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      if (connected_) {
        wake_.wait(lock, [this] { return stopping_ || !connected_; });
        continue;
      }
      lock.unlock();
      const bool ok = try_connect(logged_failure);
      lock.lock();
      if (ok) {
        connected_ = true;
        backoff = std::chrono::milliseconds(config_.reconnect_min_ms);
        logged_failure = false;
        lock.unlock();
        listener_->on_connected(session_present_);
        lock.lock();
        continue;
      }
      logged_failure = true;
      wake_.wait_for(lock, backoff, [this] { return stopping_; });
      backoff = std::min(backoff * 2, max_backoff);
    }
  }

  bool try_connect(bool quiet) {
    mqtt::connect_options options;
    options.set_mqtt_version(MQTTVERSION_3_1_1);
    options.set_clean_session(!config_.persistent_session);
    options.set_keep_alive_interval(config_.keepalive_s);
    options.set_connect_timeout(config_.connect_timeout_s);
    options.set_automatic_reconnect(false);
    options.set_max_inflight(65535);
    if (!config_.username.empty()) options.set_user_name(config_.username);
    if (!config_.password.empty()) options.set_password(config_.password);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!will_.topic.empty()) {
        options.set_will(mqtt::will_options(will_.topic, will_.payload.data(), will_.payload.size(),
                                            will_.qos, will_.retain));
      }
    }
    try {
      auto token = client_.connect(options);
      if (!token->wait_for(std::chrono::seconds(config_.connect_timeout_s + 1))) {
        throw std::runtime_error("timed out");
      }
      session_present_ = token->get_connect_response().is_session_present();
      std::vector<std::pair<std::string, int>> subs;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        subs = subscriptions_;
      }
      for (const auto& [filter, qos] : subs) {
        client_.subscribe(filter, qos)->wait_for(std::chrono::seconds(config_.connect_timeout_s));
      }
      // A clean session starts with nothing in flight; completions lost with the old
      // connection must not keep callers throttled forever.
      in_flight_.store(0, std::memory_order_relaxed);
      connects_.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("broker: connected to {} as {}", config_.uri, config_.client_id);
      return true;
    } catch (const std::exception& e) {
      if (quiet) {
        spdlog::debug("broker: connect to {} failed: {}", config_.uri, e.what());
      } else {
        spdlog::warn("broker: connect to {} failed: {}; retrying", config_.uri, e.what());
      }
      try {
        if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(1));
      } catch (const std::exception&) {
      }
      return false;
    }
  }

  // Counts each publish out when Paho has written (QoS 0) or delivered (QoS 1) it, or
  // given up on it, so that callers can bound what they hand over.
  class Completions final : public mqtt::iaction_listener {
   public:
    explicit Completions(PahoLink& link) : link_(link) {}
    void on_success(const mqtt::token&) override { link_.completed(); }
    void on_failure(const mqtt::token&) override { link_.completed(); }

   private:
    PahoLink& link_;
  };

  void completed() {
    const auto left = in_flight_.fetch_sub(1, std::memory_order_relaxed) - 1;
    if (left == drain_mark_ && listener_) listener_->on_drained();
  }

  BrokerConfig config_;
  std::atomic<long long> in_flight_{0};
  long long drain_mark_ = 0;
  Completions completions_{*this};
  mqtt::async_client client_;
  Listener* listener_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool connected_ = false;
  bool stopping_ = false;
  std::vector<std::pair<std::string, int>> subscriptions_;
  Will will_;
  bool session_present_ = false;  // the connect thread's
  std::atomic<std::uint64_t> connects_{0}, lost_{0}, skipped_{0};
  std::thread worker_;
};

}  // namespace

std::unique_ptr<BrokerLink> make_paho_link(const BrokerConfig& config) {
  return std::make_unique<PahoLink>(config);
}

std::unique_ptr<BrokerLink> make_broker_link(const BrokerConfig& config) {
  const bool tls = config.uri.rfind("ssl://", 0) == 0 || config.uri.rfind("mqtts://", 0) == 0;
  if (config.client == "paho" || (config.client.empty() && tls)) {
    spdlog::info("broker link: paho (Eclipse Paho MQTT C++)");
    return make_paho_link(config);
  }
  spdlog::info("broker link: native");
  return make_native_link(config);
}

}  // namespace rtm::gateway
