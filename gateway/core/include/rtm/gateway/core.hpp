#pragma once
// The gateway's logic without threads or sockets: it takes broker messages and the
// time, and publishes through an Outbox. Everything here runs on one thread (the
// gateway loop), so the state needs no locks.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/config.hpp"
#include "rtm/gateway/dedup.hpp"
#include "rtm/gateway/metrics.hpp"
#include "rtm/gateway/request.hpp"
#include "rtm/gateway/timers.hpp"
#include "rtm/topics/tree.hpp"

namespace rtm::gateway {

class Outbox {
 public:
  virtual ~Outbox() = default;
  // false when the message could not be queued for the broker.
  virtual bool publish(const std::string& topic, std::string_view payload, int qos,
                       bool retain) = 0;
  // Messages handed over and not yet sent (see BrokerLink::in_flight).
  virtual std::size_t in_flight() const { return 0; }
};

// An answer kept for the dedup window, as a durable state backend stores it.
struct StoredAnswer {
  std::string uid;
  std::string msg_id;
  std::uint64_t fingerprint = 0;
  std::string payload;
  std::int64_t at_ms = 0;
};

// Where the changes of a loop turn become durable before its messages go out (the state
// backends implement it, docs/state.md). Loop thread only.
class Durability {
 public:
  virtual ~Durability() = default;
  // An answer to remember across a restart, with the turn's other changes.
  virtual void remember_answer(const StoredAnswer& answer) = 0;
  // Makes every change since the last commit durable, then calls done, now or later but
  // on the loop thread; done(false): it could not (logged and counted by the backend).
  virtual void commit(std::function<void(bool ok)> done) = 0;
  // Answers remembered at or after since_ms, oldest first (read once, at start-up).
  virtual std::vector<StoredAnswer> stored_answers(std::int64_t since_ms) = 0;
};

using Clock = std::function<std::int64_t()>;  // milliseconds since the Unix epoch
Clock system_clock();

// One request in the hands of its handler.
struct Call {
  const std::string& uid;
  const topics::Uri& uri;
  const Params& params;
  std::int64_t now_ms;
};

// A request whose answer comes later (module RPC, HTTP proxy): what is needed to answer it.
struct PendingRequest {
  std::string uid;
  std::string msg_id;
  std::string response_topic;
  std::uint64_t fingerprint = 0;
  std::chrono::steady_clock::time_point received{};  // for the latency metric
};

// Handles absolute-URI requests. Returns the answer now, or nullopt when it will call
// Core::complete(pending, outcome) later (on the loop thread; see Core::post).
using AbsoluteHandler = std::function<std::optional<Outcome<json::Document>>(
    Call& call, const std::string& payload, const PendingRequest& pending)>;

struct Operation {
  std::string name;
  bool needs_session = true;
  std::vector<std::string_view> params;  // the parameter names it accepts
  std::function<Outcome<json::Document>(Call&)> handle;
  std::size_t metrics_slot = 0;  // set by Core::add_operation
};

// A part whose settings SIGHUP may change (see restart_only_changes for those it cannot).
class Reloadable {
 public:
  virtual ~Reloadable() = default;
  // On the loop thread, with the new configuration already checked.
  virtual void reload(const Config& next) = 0;
};

struct Counters {
  std::uint64_t requests = 0;
  std::uint64_t answered_ok = 0;
  std::uint64_t answered_error = 0;
  std::uint64_t replayed = 0;  // answered again from the dedup cache
  std::uint64_t publish_failed = 0;
  std::uint64_t dropped_inbound = 0;  // queue full before the loop saw them
};

// What a fast path did with a message on the broker link's own thread.
enum class FastResult {
  not_mine,  // not a bridge message: the loop handles it
  handled,   // relayed (or dropped) already: nothing left to do
  deferred,  // a bridge message that needs the loop (registration, presence, full queues)
};

// A part that must know when the broker lost the gateway's MQTT session, and with it the
// Wills and the QoS 1 messages it held (the broker restarted without persistence).
class BrokerSessionObserver {
 public:
  virtual ~BrokerSessionObserver() = default;
  virtual void on_broker_session_lost() = 0;  // loop thread
};

class Core final : public MetricsSource {
 public:
  Core(const Config& config, Outbox& outbox, Clock clock = system_clock());
  ~Core();

  const Config& config() const { return config_; }
  const topics::TopicTree& tree() const { return tree_; }
  Timers& timers() { return timers_; }
  Counters& counters() { return counters_; }
  std::int64_t now_ms() const { return clock_(); }

  // Filters the broker link must keep subscribed.
  std::vector<std::string> subscriptions() const;
  // Parts with filters of their own that a reload may change (the bridge).
  void add_filter_source(std::function<std::vector<std::string>()> source) {
    filter_sources_.push_back(std::move(source));
  }

  // Takes the settings that may change at run time from `next` (checked already) and
  // tells every Reloadable. Loop thread only.
  void reload(const Config& next);
  void add_reloadable(std::shared_ptr<Reloadable> part) { reloadables_.push_back(std::move(part)); }
  void add_broker_session_observer(std::shared_ptr<BrokerSessionObserver> o) {
    session_observers_.push_back(std::move(o));
  }
  // The broker connected us without our session: tells every observer. Loop thread only.
  void broker_session_lost() {
    for (auto& o : session_observers_) o->on_broker_session_lost();
  }

  // Metrics of the core (requests by operation and code, latency, dedup) and of every
  // registered source. Loop thread only.
  void write_metrics(MetricsWriter& out) const override;
  void add_metrics_source(std::shared_ptr<const MetricsSource> source) {
    metrics_sources_.push_back(std::move(source));
  }
  void write_all_metrics(MetricsWriter& out) const;

  void add_operation(Operation op);
  // Hook for operations: does uid have a live session? (Set by the session module.)
  void set_session_check(std::function<bool(const std::string& uid)> check);
  // Hook for other topics the gateway reads (presence, bridge): the handler returns
  // true when the message was its own. `filter` is added to the broker subscriptions.
  void add_message_handler(std::string filter, std::function<bool(const Message&)> handler);
  // Adds a filter to the broker subscriptions.
  void add_subscription(std::string filter) { extra_subscriptions_.push_back(std::move(filter)); }
  // Keeps a module (the owner of registered handlers) alive as long as the core.
  void keep(std::shared_ptr<void> module) { modules_.push_back(std::move(module)); }

  // Absolute URIs (scheme://host/...) go here; without a handler they get NO_ROUTE.
  void set_absolute_handler(AbsoluteHandler handler) { absolute_handler_ = std::move(handler); }
  // Answers a request that an AbsoluteHandler deferred. Loop thread only.
  void complete(const PendingRequest& pending, const Outcome<json::Document>& outcome);
  // Answers a deferred request with a payload already serialised as JSON (a worker's
  // answer relayed as the result). Loop thread only.
  void complete_raw(const PendingRequest& pending, std::string_view result_json);

  // Runs `task` on the loop thread soon; callable from any thread. The Gateway installs
  // its queue here; without one, tasks run at once (unit tests).
  void post(std::function<void()> task);
  void set_poster(std::function<void(std::function<void()>)> poster) { poster_ = std::move(poster); }

  void on_message(const Message& message);

  // A handler that runs on the broker link's thread, before a message is queued for the
  // loop, so that the bridge's hot path skips a thread hop. It must be thread-safe and may
  // only use the Outbox (thread-safe) and its own synchronised state.
  void set_fast_path(std::function<FastResult(const Message&)> handler) {
    fast_path_ = std::move(handler);
  }
  FastResult fast_path(const Message& message) {
    return fast_path_ ? fast_path_(message) : FastResult::not_mine;
  }
  Outbox& outbox() { return outbox_; }
  // Hooks run by the loop after each batch of messages (the bridge pumps its queues).
  void add_idle_hook(std::function<void()> hook) { idle_hooks_.push_back(std::move(hook)); }
  void run_idle_hooks();
  // While any of these says true, the loop takes no new messages (the bridge's QoS 1
  // queue is full): the broker then holds them, and nothing is dropped in between.
  void add_backpressure(std::function<bool()> check) { backpressure_.push_back(std::move(check)); }
  bool backpressured() const;
  std::size_t in_flight() const { return outbox_.in_flight(); }
  // Extra lines for the periodic stats log (the bridge's counters).
  void add_stats_line(std::function<std::string()> line) { stats_lines_.push_back(std::move(line)); }
  std::vector<std::string> stats_lines() const;
  // Runs timers that are due; returns the next deadline (ms since epoch) or -1.
  std::int64_t run_due();

  // With a Durability set, the turn's messages wait for its commit (see end_turn).
  bool publish(const std::string& topic, std::string_view payload, int qos = 0,
               bool retain = false);
  // Makes the answers and events of this turn durable first: restores the remembered
  // answers now, and from then on holds every message published until end_turn's commit
  // reports back. Without one (the memory backend), messages go out at once.
  void set_durability(std::shared_ptr<Durability> durability);
  // The loop calls this after each turn (messages, tasks and timers): commits the turn's
  // changes and then publishes what they held back.
  void end_turn();
  std::size_t held_messages() const { return held_.size(); }
  // Publishes an event JSON to P/u/{uid}/events/{kind}.
  void publish_user_event(const std::string& uid, std::string_view kind,
                          const json::Document& event);

 private:
  // Answers are counted per operation: the registered ones, and these for the rest (a
  // label from a fixed set, whatever a client sends).
  enum FixedSlot : std::size_t { kInvalidSlot = 0, kUnknownSlot = 1, kModuleSlot = 2, kFixedSlots = 3 };
  struct Answered {
    std::size_t slot = kInvalidSlot;
    std::chrono::steady_clock::time_point received{};
  };

  void handle_request(const topics::ParsedTopic& parsed, const Message& message);
  bool answer_topic_without_uri(const Message& message);
  void answer(const std::string& uid, const std::string& response_topic,
              const std::string& msg_id, const Outcome<json::Document>& outcome,
              std::uint64_t fingerprint, bool cache, Answered how);
  void count_answer(const Answered& how, ErrorCode code);

  struct Held {
    std::string topic;
    std::string payload;
    int qos;
    bool retain;
  };
  void send(const std::string& topic, std::string_view payload, int qos, bool retain);

  std::shared_ptr<Durability> durability_;
  std::vector<Held> held_;
  AbsoluteHandler absolute_handler_;
  std::function<FastResult(const Message&)> fast_path_;
  std::function<void(std::function<void()>)> poster_;
  Config config_;
  Outbox& outbox_;
  Clock clock_;
  topics::TopicTree tree_;
  Timers timers_;
  Dedup dedup_;
  Counters counters_;
  std::unordered_map<std::string, Operation> operations_;
  std::function<bool(const std::string&)> session_check_;
  std::vector<std::function<bool(const Message&)>> message_handlers_;
  std::vector<std::string> extra_subscriptions_;
  std::vector<std::function<void()>> idle_hooks_;
  std::vector<std::function<bool()>> backpressure_;
  std::vector<std::function<std::string()>> stats_lines_;
  std::vector<std::shared_ptr<void>> modules_;
  std::vector<std::function<std::vector<std::string>()>> filter_sources_;
  std::vector<std::shared_ptr<Reloadable>> reloadables_;
  std::vector<std::shared_ptr<BrokerSessionObserver>> session_observers_;
  std::vector<std::shared_ptr<const MetricsSource>> metrics_sources_;
  // Per metrics slot: its label and answers by error code.
  std::vector<std::string> slot_names_{"invalid", "unknown", "module"};
  std::vector<std::vector<std::uint64_t>> answers_by_code_{kFixedSlots};
  LatencyHistogram latency_;
};

// Serialises a response: {"msg_id":..,"code":0,"result":..} or with error/message.
std::string response_payload(const std::string& msg_id, const Outcome<json::Document>& outcome);

// Registers the operations that need no session (ping).
void register_basic_operations(Core& core);

}  // namespace rtm::gateway
