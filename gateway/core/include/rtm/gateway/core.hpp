#pragma once
// The gateway's logic without threads or sockets: it takes broker messages and the
// time, and publishes through an Outbox. Everything here runs on one thread (the
// gateway loop), so the state needs no locks.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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
  // An answer to remember across a restart, with the turn's other changes (by value: the
  // backend keeps it until the commit).
  virtual void remember_answer(StoredAnswer answer) = 0;
  // Makes every change since the last commit durable, then calls done, now or later but
  // on the loop thread; done(false): it could not (logged and counted by the backend).
  virtual void commit(std::function<void(bool ok)> done) = 0;
  // Answers remembered at or after since_ms, oldest first (read once, at start-up).
  virtual std::vector<StoredAnswer> stored_answers(std::int64_t since_ms) = 0;
  // Before a turn changes anything. A shared backend (several gateways on one state) takes
  // the cluster's turn here and applies what the other gateways changed; the answers they
  // gave come back in `answers`, so that a request redelivered to this gateway is answered
  // from them, not executed again. False: the shared state cannot be reached, and the turn
  // must change nothing (requests are answered UNAVAILABLE, other work waits).
  virtual bool begin_turn(std::vector<StoredAnswer>* answers) {
    (void)answers;
    return true;
  }
  // True when a failed commit means the turn did not happen (a shared backend lost its turn
  // to another gateway): its messages are dropped, not sent. False: the model serves on and
  // the messages go out.
  virtual bool discards_failed_turns() const { return false; }
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
  std::uint64_t discarded_messages = 0;  // answers and events of turns that did not commit
};

// A part that must know when the broker lost the gateway's MQTT session, and with it the
// Wills and the QoS 1 messages it held (the broker restarted without persistence).
class BrokerSessionObserver {
 public:
  virtual ~BrokerSessionObserver() = default;
  virtual void on_broker_session_lost() = 0;  // loop thread
  // The link (re)connected and subscribed, whether or not the broker kept the session.
  virtual void on_broker_connected() {}  // loop thread
};

class Core;

// A part whose messages must reach the broker before any message that reports the same
// change: the grant feed tells the broker of a subscriber's grant before the subscribe
// answer goes out, and of a revocation before the unsubscribe answer. The core calls it
// before each message it publishes and at the end of each turn.
class PublishBarrier {
 public:
  virtual ~PublishBarrier() = default;
  // Publishes what is pending through core.publish (which does not call back). Loop thread.
  virtual void flush(Core& core) = 0;
};

// Who is logged in. The core asks before it runs an operation that needs a session (and a
// module request when modules.require_login), so that it need not know where sessions live.
class SessionDirectory {
 public:
  virtual ~SessionDirectory() = default;
  // Has uid a live session? A request from uid is also a sign that it is still there.
  virtual bool has_live_session(const std::string& uid) = 0;  // loop thread
};

// A part that acts when a user logs in (the inbox hands over the messages it kept). Called
// by the login operation once the session is started, before its answer is published:
// what must follow the answer is posted (Core::post) to run in a later turn.
class LoginObserver {
 public:
  virtual ~LoginObserver() = default;
  virtual void on_login(const std::string& uid) = 0;  // loop thread
};

// A reader of broker messages outside the request branch (presence, worker answers, the
// bridge, other gateways' status): the core offers each such message to the handlers in
// the order they were added, until one takes it.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  // The filters the broker link must keep subscribed for it; asked again after a reload.
  virtual std::vector<std::string> filters() const = 0;
  // With cluster.enabled, a handler's filters are shared by the gateways of the group
  // ($share/{group}/{filter}: each message reaches one of them, for work that must happen
  // once) unless it says they are per gateway (each gateway must see every message: other
  // gateways' status, module nodes' announcements, answers addressed to this gateway).
  virtual bool per_gateway() const { return false; }
  // True when the message was its own: no later handler sees it. Loop thread.
  virtual bool on_message(const Message& message) = 0;
};

// What a fast path did with a message on the broker link's own thread.
enum class FastResult {
  not_mine,  // not a bridge message: the loop handles it
  handled,   // relayed (or dropped) already: nothing left to do
  deferred,  // a bridge message that needs the loop (registration, presence, full queues)
};

// Routes messages on the broker link's thread, before they are queued for the loop, so
// that the bridge's hot path skips a thread hop. It must be thread-safe and may only use
// the Outbox (thread-safe) and its own synchronised state.
class FastPath {
 public:
  virtual ~FastPath() = default;
  virtual FastResult on_link_thread(const Message& message) = 0;
};

// A part with queues of its own in front of the broker link (the bridge): the loop lets
// it work them off after each batch, and takes no new messages while it holds back (the
// broker then keeps them, and nothing is dropped in between).
class IdleWork {
 public:
  virtual ~IdleWork() = default;
  virtual void on_idle() = 0;                        // loop thread, after each batch
  virtual bool holds_back() const { return false; }  // loop thread
};

// A line of counters for the periodic stats log, from a part with counters of its own.
class StatsSource {
 public:
  virtual ~StatsSource() = default;
  virtual std::string stats_line() const = 0;  // loop thread
};

// Where tasks from other threads (an HTTP answer, a reload) wait for the loop thread.
class TaskQueue {
 public:
  virtual ~TaskQueue() = default;
  // Callable from any thread; the task runs on the loop thread soon.
  virtual void post(std::function<void()> task) = 0;
};

// The caller of the server's own calls (Core::invoke, the server HTTP API). Not a valid
// uid ('$'), so no MQTT client can be it; it counts as an operator.
inline constexpr std::string_view kServerCaller = "$server";

class Core final : public MetricsSource {
 public:
  Core(const Config& config, Outbox& outbox, Clock clock = system_clock());
  ~Core();

  const Config& config() const { return config_; }
  // Is uid an operator (ops.uids, as the last reload left them)?
  bool is_operator(const std::string& uid) const;
  const topics::TopicTree& tree() const { return tree_; }
  Timers& timers() { return timers_; }
  Counters& counters() { return counters_; }
  std::int64_t now_ms() const { return clock_(); }

  // Filters the broker link must keep subscribed: the request branch's, then every
  // MessageHandler's; with cluster.enabled the shared ones as $share/{group}/{filter}.
  // Messages still arrive on their real topics, which handlers match as before.
  std::vector<std::string> subscriptions() const;

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
  // The link is up again (after broker_session_lost, when that applies). Loop thread only.
  void broker_connected() {
    for (auto& o : session_observers_) o->on_broker_connected();
  }
  void add_publish_barrier(std::shared_ptr<PublishBarrier> barrier) {
    barriers_.push_back(std::move(barrier));
  }

  // Metrics of the core (requests by operation and code, latency, dedup) and of every
  // registered source. Loop thread only.
  void write_metrics(MetricsWriter& out) const override;
  void add_metrics_source(std::shared_ptr<const MetricsSource> source) {
    metrics_sources_.push_back(std::move(source));
  }
  void write_all_metrics(MetricsWriter& out) const;

  void add_operation(Operation op);
  // The registered operation `name`, or nullptr: a part may wrap another's handler (history
  // adds its baseline to subscribe's answer) by adding it again with the same name.
  const Operation* operation(const std::string& name) const {
    auto it = operations_.find(name);
    return it == operations_.end() ? nullptr : &it->second;
  }
  // Runs the registered operation `name` for the server (the HTTP API of app servers) with
  // `params` (a JSON object, as a request's body): the caller is kServerCaller, an operator
  // without a session. The same handler, checks and events as over MQTT; counted in the
  // metrics under the operation. Loop thread only.
  Outcome<json::Document> invoke(const std::string& name, std::string_view params);
  // Calls `done` once this turn's changes are durable and its messages handed to the broker
  // (at the end of the turn without a Durability). Loop thread only.
  void after_commit(std::function<void()> done) { after_commit_.push_back(std::move(done)); }
  // Without one, every operation that needs a session answers NOT_LOGGED_IN.
  void set_session_directory(std::shared_ptr<SessionDirectory> sessions) {
    sessions_ = std::move(sessions);
  }
  void add_login_observer(std::shared_ptr<LoginObserver> observer) {
    login_observers_.push_back(std::move(observer));
  }
  // uid has just logged in (a new session): tells every LoginObserver. Loop thread only.
  void logged_in(const std::string& uid) {
    for (auto& o : login_observers_) o->on_login(uid);
  }
  void add_message_handler(std::shared_ptr<MessageHandler> handler) {
    message_handlers_.push_back(std::move(handler));
  }

  // Absolute URIs (scheme://host/...) go here; without a handler they get NO_ROUTE.
  void set_absolute_handler(AbsoluteHandler handler) { absolute_handler_ = std::move(handler); }
  // Answers a request that an AbsoluteHandler deferred. Loop thread only.
  void complete(const PendingRequest& pending, const Outcome<json::Document>& outcome);
  // Answers a deferred request with a payload already serialised as JSON (a worker's
  // answer relayed as the result). Loop thread only.
  void complete_raw(const PendingRequest& pending, std::string_view result_json);

  // Runs `task` on the loop thread soon; callable from any thread. Through the queue set
  // here (the Gateway's; it owns the core and outlives it); without one, tasks run at
  // once (unit tests).
  void post(std::function<void()> task);
  void set_task_queue(TaskQueue* queue) { task_queue_ = queue; }

  void on_message(const Message& message);

  // Set before the broker link starts; fast_path() is then called on the link's thread.
  void set_fast_path(std::shared_ptr<FastPath> fast_path) { fast_path_ = std::move(fast_path); }
  FastResult fast_path(const Message& message) {
    if (!fast_path_ || loop_must_see(message.topic)) return FastResult::not_mine;
    return fast_path_->on_link_thread(message);
  }
  // Topics a loop handler must see although the fast path could take them (channel history
  // and the offline inbox keep what the bridge relays): those matching `owner`'s `filters`
  // skip the fast path. Each owner's set replaces its previous one. Any thread.
  void set_loop_filters(const std::string& owner, std::vector<std::string> filters);
  Outbox& outbox() { return outbox_; }
  void add_idle_work(std::shared_ptr<IdleWork> work) { idle_work_.push_back(std::move(work)); }
  // Every IdleWork's on_idle, in the order they were added.
  void run_idle_work();
  // Does any IdleWork hold back new messages?
  bool backpressured() const;
  std::size_t in_flight() const { return outbox_.in_flight(); }
  void add_stats_source(std::shared_ptr<const StatsSource> source) {
    stats_sources_.push_back(std::move(source));
  }
  // The StatsSources' lines, for the periodic stats log.
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
  // The loop calls this before a turn (messages, tasks and timers) changes anything: a
  // shared state backend takes the cluster's turn and catches up (Durability::begin_turn).
  // False: it cannot; the turn must change nothing, and requests handed to on_message are
  // answered UNAVAILABLE until the next turn that begins.
  bool begin_turn();
  // Is a message on this topic a request (it gets an answer even when no turn began)?
  bool is_request(const std::string& topic) const;
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
  bool has_live_session(const std::string& uid);

  struct Held {
    std::string topic;
    std::string payload;
    int qos;
    bool retain;
  };
  void send(const std::string& topic, std::string_view payload, int qos, bool retain);

  void flush_barriers();
  bool loop_must_see(std::string_view topic) const;

  std::shared_ptr<Durability> durability_;
  bool turn_ok_ = true;  // the last begin_turn succeeded
  // (uid, msg_id) of the answers remembered this turn: forgotten if the turn is discarded.
  std::vector<std::pair<std::string, std::string>> turn_answers_;
  std::vector<Held> held_;
  std::vector<std::function<void()>> after_commit_;
  std::vector<std::shared_ptr<PublishBarrier>> barriers_;
  bool in_barrier_ = false;
  AbsoluteHandler absolute_handler_;
  std::shared_ptr<FastPath> fast_path_;
  mutable std::mutex loop_filters_mutex_;
  std::map<std::string, std::vector<std::string>> loop_filters_by_owner_;  // under the mutex
  std::shared_ptr<const std::vector<std::string>> loop_filters_;
  TaskQueue* task_queue_ = nullptr;
  Config config_;
  Outbox& outbox_;
  Clock clock_;
  topics::TopicTree tree_;
  Timers timers_;
  Dedup dedup_;
  Counters counters_;
  std::unordered_map<std::string, Operation> operations_;
  std::shared_ptr<SessionDirectory> sessions_;
  std::vector<std::shared_ptr<MessageHandler>> message_handlers_;
  std::vector<std::shared_ptr<LoginObserver>> login_observers_;
  std::vector<std::shared_ptr<IdleWork>> idle_work_;
  std::vector<std::shared_ptr<const StatsSource>> stats_sources_;
  std::vector<std::shared_ptr<Reloadable>> reloadables_;
  std::vector<std::shared_ptr<BrokerSessionObserver>> session_observers_;
  std::vector<std::shared_ptr<const MetricsSource>> metrics_sources_;
  // Per metrics slot: its label and answers by error code.
  std::vector<std::string> slot_names_{"invalid", "unknown", "module"};
  std::vector<std::vector<std::uint64_t>> answers_by_code_{kFixedSlots};
  LatencyHistogram latency_;
};

// "$share/{group}/{filter}": the filter shared by the gateways of a cluster (MQTT 5's form,
// which Mosquitto 2 and EMQX also take from MQTT 3.1.1 clients).
std::string shared_filter(std::string_view group, std::string_view filter);

// Serialises a response: {"msg_id":..,"code":0,"result":..} or with error/message.
std::string response_payload(const std::string& msg_id, const Outcome<json::Document>& outcome);

// Registers the operations that need no session (ping).
void register_basic_operations(Core& core);

}  // namespace rtm::gateway
