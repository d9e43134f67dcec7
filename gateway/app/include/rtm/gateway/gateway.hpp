#pragma once
// The running gateway: a broker link feeding one loop thread that owns the Core.
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "rtm/gateway/admission.hpp"
#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/config.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/gateway/http_api.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/gateway/ops_http.hpp"

namespace rtm::gateway {

class StateStore;

class Gateway final : public BrokerLink::Listener,
                      public Outbox,
                      public TaskQueue,
                      public OpsProbe,
                      public LoopRunner {
 public:
  Gateway(const Config& config, std::unique_ptr<BrokerLink> link);
  ~Gateway() override;

  Core& core() { return *core_; }

  // Runs the loop on the calling thread until stop().
  void run();
  // Thread-safe; run() returns soon after.
  void stop();
  // Thread-safe: applies what may change at run time from `next` (already checked) on the
  // loop, and logs the keys that only a restart applies.
  void reload(Config next);
  // Thread-safe: counts a reload refused because the file was not valid.
  void reload_refused() { reloads_refused_.fetch_add(1, std::memory_order_relaxed); }
  // Serves ops.http_listen (when set) from now on; throws when it cannot bind.
  void start_ops_http();
  int ops_http_port() const { return ops_http_ ? ops_http_->port() : 0; }

  // BrokerLink::Listener (link threads)
  void on_connected(bool session_present) override;
  void on_connection_lost(const std::string& why) override;
  void on_message(Message&& message) override;
  void on_drained() override;
  void on_batch_begin() override { in_batch_ = true; }
  void on_batch_end() override;

  // Outbox (loop thread)
  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override;
  std::size_t in_flight() const override;

  // TaskQueue (any thread): the task runs on the loop thread, after the turn's messages.
  void post(std::function<void()> task) override;

  // OpsProbe (HTTP threads)
  bool live(std::string* why) const override;
  bool ready(std::string* why) const override;
  std::optional<std::string> metrics() override;
  std::optional<Answer> kick(const std::string& uid) override;
  std::optional<Answer> authorize(const AuthzQuestion& question) override;
  std::optional<Answer> rabbitmq(rabbitmq::Endpoint endpoint, const std::string& body,
                                 const std::string& peer) override;

  // LoopRunner (HTTP threads): the server HTTP API's work, answered after its commit.
  std::optional<ApiOutcome> run_on_loop(std::function<ApiOutcome()> work) override;

 private:
  class StatusWatch;  // reads P/gateway/status for the Core (see on_status)

  void log_stats();
  std::shared_ptr<StateStore> make_store();
  void park(std::deque<Message>& batch, std::deque<std::function<void()>>& tasks,
            std::deque<Message>& parked);
  std::string status_payload(bool online, std::string_view reason) const;
  bool on_status(const Message& message);
  void apply_reload(const Config& next);
  void write_metrics(MetricsWriter& out) const;
  // Runs `work` on the loop and waits for its answer (the operator endpoints).
  std::optional<Answer> on_loop(std::function<Answer()> work);

  Config config_;
  std::unique_ptr<BrokerLink> link_;
  std::unique_ptr<Core> core_;
  std::shared_ptr<RtmApi> rtm_;
  // The server HTTP API (http_api.*): its keys (HTTP threads) and its work (loop thread).
  std::unique_ptr<ApiKeys> api_keys_;
  std::unique_ptr<ServerApi> server_api_;
  std::unique_ptr<OpsHttpServer> ops_http_;
  // enforcement.rabbitmq_http_auth: immutable after start, used on the HTTP threads.
  std::unique_ptr<const rabbitmq::Authenticator> rabbit_;
  // Answers per endpoint: allowed, denied, malformed; and refused peers.
  std::array<std::array<std::atomic<std::uint64_t>, 3>, rabbitmq::kEndpoints> rabbit_answers_{};
  std::atomic<std::uint64_t> rabbit_refused_peers_{0};

  // This run of the gateway, as P/gateway/status tells it.
  std::string instance_;
  std::int64_t started_at_ms_ = 0;
  std::string status_topic_;
  std::map<std::string, std::int64_t> other_gateways_logged_;  // instance -> when (loop)
  std::uint64_t other_gateways_seen_ = 0;                      // loop

  std::atomic<bool> ready_{false};
  std::atomic<std::int64_t> last_turn_ms_{0};  // steady clock, for /healthz
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> reloads_refused_{0};
  mutable std::mutex why_mutex_;
  std::string not_ready_why_ = "not connected to the broker yet";
  // Another instance with our client id whose offline Will we found at connect: if the
  // broker then closes our fresh connection, that instance took the id back.
  std::string same_id_suspect_;          // under why_mutex_
  std::uint64_t early_closes_seen_ = 0;  // link thread
  // Inside a read batch of the link (on_batch_begin/end), the loop is woken once at its end.
  bool in_batch_ = false;        // link thread
  bool wake_at_batch_end_ = false;  // link thread

  // Per-uid admission on the link thread (see admission.hpp).
  RateLimiter limiter_;
  std::atomic<std::uint64_t> refused_{0};  // answered RATE_LIMITED
  std::atomic<std::uint64_t> shed_{0};     // over the limit, dropped unanswered
  std::atomic<std::uint64_t> refused_topics_{0};  // not valid for the broker, not published
  void refuse(const Message& message, std::string_view uid);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable space_;  // the inbox has room again
  FairQueue inbox_;
  std::deque<std::function<void()>> tasks_;  // posted from other threads (Core::post)
  bool stopping_ = false;
  bool drained_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_logged_ = 0;
};

}  // namespace rtm::gateway
