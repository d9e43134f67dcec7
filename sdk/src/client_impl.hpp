#pragma once
// The SDK's machinery (internal): one Paho connection, request correlation by msg_id with
// deadlines, the connection loop with session restore, and routing of what arrives.
//
// Threads:
//  - Paho's own threads call on_mqtt_message / on_connection_lost; they do only quick
//    work: complete pending requests, update state, and post events to the dispatcher;
//  - the connector thread (re)connects, disconnects and restores the session; it may block;
//  - the timer thread fails requests whose deadline passed with TIMEOUT;
//  - the dispatcher thread runs the app's callbacks.
// `done` continuations of internal operations run on any of the first three, exactly once,
// never under `mutex_`; they must not block.
#include <mqtt/async_client.h>
#include <rapidjson/document.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dispatcher.hpp"
#include "rtm/sdk/client.hpp"

namespace rtm::sdk::detail {

using Clock = std::chrono::steady_clock;

// A gateway answer, or a local failure.
struct Reply {
  Status status;
  std::shared_ptr<rapidjson::Document> doc;  // the whole answer; empty for local failures
  const rapidjson::Value& result() const;    // doc["result"], or an empty object
};
using ReplyFn = std::function<void(Reply)>;

// An invitation as the gateway sends it (an `invitation` event or an `invitations` entry).
InvitationEvent parse_invitation(const rapidjson::Value& v);

// The type of a channel event named `name` ("member_joined", ...); none for other names.
std::optional<ChannelEventType> channel_event_type(std::string_view name);

class ClientImpl {
 public:
  explicit ClientImpl(ClientConfig config);
  ~ClientImpl();
  void shutdown();

  const ClientConfig& config() const { return config_; }
  // name_error, then the broker's own rule (ClientConfig::broker_profile).
  std::optional<std::string> name_problem(std::string_view what, std::string_view name) const;
  ConnectionState state() const;
  std::string session_id() const;

  template <class E>
  using HandlerPtr = std::shared_ptr<const std::function<void(const E&)>>;
  void set_handler(std::function<void(const ConnectionStateEvent&)> h);
  void set_handler(std::function<void(const MessageEvent&)> h);
  void set_handler(std::function<void(const InboxMessage&)> h);
  void set_handler(std::function<void(const ReceiptEvent&)> h);
  void set_handler(std::function<void(const ChannelEvent&)> h);
  void set_handler(std::function<void(const PresenceEvent&)> h);
  void set_handler(std::function<void(const TokenEvent&)> h);
  void set_handler(std::function<void(const SessionEvent&)> h);
  void set_handler(std::function<void(const StorageEvent&)> h);
  void set_handler(std::function<void(const PresenceStateEvent&)> h);
  void set_handler(std::function<void(const LockEvent&)> h);
  void set_handler(std::function<void(const RecoveryEvent&)> h);
  void set_handler(std::function<void(const InvitationEvent&)> h);
  void set_handler(std::function<void(const ChannelMessageEvent&)> h);

  // ---- operations; `done` runs once, on an internal thread (see above)
  void login(std::string token, Callback<LoginInfo> done);
  void logout(Callback<void> done);
  void renew_token(std::string token, Callback<std::int64_t> done);
  Result<void> publish_inbox(const std::string& user, std::string_view payload, int qos);
  void send_message(const std::string& user, std::string_view payload, const SendOptions& options,
                    Callback<SendResult> done);
  void inbox_history(const InboxHistoryOptions& options, Callback<InboxHistory> done);
  void watch(const std::vector<std::string>& users, bool unwatch,
             Callback<std::vector<UserPresence>> done);
  void who_now(const std::string& channel, Callback<std::vector<std::string>> done);
  void where_now(const std::string& uid, Callback<std::vector<std::string>> done);
  void raw_request(const std::string& uri, const std::string& body, Callback<std::string> done);

  bool joined(const std::string& channel) const;
  void join(const std::string& channel, Callback<ChannelSnapshot> done,
            const std::string& token = "");
  void leave(const std::string& channel, Callback<void> done);
  void join_topic(const std::string& channel, const std::string& topic, Callback<void> done);
  void leave_topic(const std::string& channel, const std::string& topic, Callback<void> done);
  Result<void> publish_topic(const std::string& channel, const std::string& topic,
                             std::string_view payload, int qos);
  void subscribe(const std::string& channel, const std::string& topic,
                 const std::vector<std::string>& users, bool unsubscribe,
                 Callback<SubscribeResult> done);
  // Every-publisher mode on (subscribe without users) or off (unsubscribe without users).
  void subscribe_all(const std::string& channel, const std::string& topic, bool unsubscribe,
                     Callback<SubscribeResult> done);
  void subscribed(const std::string& channel, const std::string& topic,
                  Callback<std::vector<std::string>> done);

  // ---- storage, presence states, locks (client_storage.cpp)
  enum class MetadataWrite { set, update, remove };
  // `target`: a uid (empty: this user) or a channel.
  void write_metadata(StorageScope scope, const std::string& target, MetadataWrite kind,
                      const std::vector<MetadataItem>& items, const MetadataOptions& options,
                      Callback<Metadata> done);
  void get_metadata(StorageScope scope, const std::string& target,
                    const std::vector<std::string>& keys, Callback<Metadata> done);
  void subscribe_metadata(const std::string& uid, bool unsubscribe, Callback<void> done);
  void set_state(const std::string& channel, const StateMap& states, Callback<StateMap> done);
  void remove_state(const std::string& channel, const std::vector<std::string>& keys,
                    Callback<StateMap> done);
  void get_state(const std::string& channel, const std::string& uid, Callback<UserState> done);
  void who_now_states(const std::string& channel, bool include_state, Callback<WhoNowResult> done);
  // set_lock (ttl_s > 0), release_lock, revoke_lock (uid), remove_lock.
  void lock_op(const char* op, const std::string& channel, const std::string& name,
               const std::string& uid, std::int64_t ttl_s, Callback<void> done);
  void acquire_lock(const std::string& channel, const std::string& name,
                    const AcquireLockOptions& options, Callback<AcquireStatus> done);
  void get_locks(const std::string& channel, Callback<std::vector<LockInfo>> done);

  // ---- call invitations (client_invitations.cpp)
  // invite, ack/accept/refuse/cancel_invitation: the answer's id, state and reason.
  void invitation_op(const char* op, std::string body, Callback<InvitationEvent> done);
  void list_invitations(Callback<std::vector<InvitationEvent>> done);
  // A personal `invitation` event: acknowledged when received, then handed to the app.
  void on_invitation_event(const rapidjson::Value& doc);

  // ---- message channels and channel tokens (client_message_channels.cpp)
  void subscribe_channel(const std::string& channel, const SubscribeChannelOptions& options,
                         Callback<MessageChannelInfo> done);
  void unsubscribe_channel(const std::string& channel, Callback<void> done);
  Result<void> publish_channel(const std::string& channel, std::string_view payload,
                               MessageType type, int qos);
  void renew_channel_token(const std::string& channel, const std::string& token,
                           Callback<std::int64_t> done);
  // P/mc/... (rest: after "mc/") and P/mcevents/{channel}
  void on_message_channel_message(const mqtt::const_message_ptr& msg, std::string_view rest);
  void on_message_channel_event(const std::string& payload);
  // A `token` event that names a channel.
  void on_channel_token_event(const rapidjson::Document& doc);
  // ---- across a reconnect (client_reconnect.cpp)
  SendQueueStats send_queue_stats() const;

  // ---- history and recovery (client_recovery.cpp)
  void history(const std::string& channel, const std::string& topic, const HistoryQuery& query,
               Callback<HistoryPage> done);

  // ---- for the public layer
  // Wraps an app callback so that it runs on the dispatcher.
  template <class T>
  Callback<T> on_dispatcher(Callback<T> cb) {
    return [d = dispatcher_, cb = std::move(cb)](Result<T> r) {
      if (!cb) return;
      d->post([cb, r = std::move(r)]() { cb(r); }, false);
    };
  }
  // Starts an operation and waits for its result. Safe on the dispatcher thread: internal
  // completions never need the dispatcher.
  template <class T>
  static Result<T> wait(const std::function<void(Callback<T>)>& start) {
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto future = promise->get_future();
    start([promise](Result<T> r) { promise->set_value(std::move(r)); });
    return future.get();
  }

 private:
  struct Pending {
    std::string what;  // for messages: "join room-42"
    ReplyFn done;
    Clock::time_point deadline;
    std::chrono::milliseconds timeout;
    // Not sent yet: made while reconnecting, it waits for the restore (parked_ has its order).
    // Empty topic: a login waiting for the connection.
    bool parked = false;
    std::string topic;
    std::string body;
  };
  struct ChannelState {
    std::map<std::string, std::string> topics;                 // joined as publisher -> publish_to
    std::map<std::string, std::set<std::string>> subscribed;   // topic -> publishers by name
    // Topics in every-publisher mode -> publishers of the topic the gateway did not add
    // (refused at the limit, unsubscribed by name), whose messages the wildcard still brings.
    std::map<std::string, std::set<std::string>> all;
    StateMap states;  // this user's presence states here, set again at a restore
    std::string token;  // the channel token it was joined with, for a login again
  };
  struct MessageChannelState {
    bool presence = false;
    std::string token;  // for a login again
  };
  // The MQTT filters of a message channel subscription.
  std::vector<std::string> message_channel_filters(const std::string& channel, bool presence) const;
  // In restore(): the message channel subscriptions again. False: retry the restore.
  bool restore_message_channels(std::vector<std::string>& problems);

  // requests
  std::string next_msg_id();
  void send_request(const std::string& op, std::string body, std::string what, ReplyFn done,
                    bool internal = false, std::chrono::milliseconds timeout = {});
  Reply call_sync(const std::string& op, std::string body, std::string what,
                  std::chrono::milliseconds timeout);
  void complete(const std::string& id, Reply reply);
  // Fails the requests in flight; with keep_parked those waiting for a restore stay.
  void fail_all_pending(const Status& status, bool keep_parked = false);
  void timer_loop();

  // connection
  void connector_loop();
  bool try_connect(std::string* error, bool* refused);
  void wait_connected(const mqtt::token_ptr& token);
  bool wake_paho();
  void do_disconnect(bool publish_offline, const std::string& connection_id);
  enum class RestoreOutcome { done, retry, failed };
  RestoreOutcome restore();
  void on_connection_lost(const std::string& cause);
  void set_state_locked(ConnectionState state, ConnectionChangeReason reason, std::string message);
  void end_session_locked(ConnectionState state, ConnectionChangeReason reason,
                          std::string message);
  std::vector<std::string> mqtt_filters_locked() const;
  void mqtt_subscribe(const std::vector<std::string>& filters);
  void mqtt_unsubscribe(const std::vector<std::string>& filters);

  // what arrives
  void on_mqtt_message(const mqtt::const_message_ptr& msg);
  void on_response(const std::string& payload);
  void on_personal_event(std::string_view kind, const std::string& payload);
  void on_channel_event(const std::string& payload);
  // metadata_changed, state_changed and lock (client_storage.cpp); false for other events.
  bool on_storage_channel_event(const std::string& name, const rapidjson::Document& doc);
  void on_metadata_event(const rapidjson::Document& doc);
  ReplyFn own_states_reply(const std::string& channel, Callback<StateMap> done);
  // Restore of metadata subscriptions and presence states; false: retry the restore.
  bool restore_storage(std::vector<std::string>& problems, std::size_t& n_metadata);
  // The synthetic pending entry of an acquire_lock with retry (see acquire_lock).
  void finish_lock_waits(const std::string& channel, const std::string& name, const Reply& reply);
  bool wanted_locked(const std::string& mqtt_topic, const std::string& channel,
                     const std::string& topic, const std::string& publisher) const;
  std::vector<std::string> channel_filters_locked(const std::string& channel,
                                                  const ChannelState& ch);

  // History positions (client_recovery.cpp). Where this user is in a stream with history:
  // per publisher the seq it reached (counted since a baseline the gateway gave) and the
  // hash of the last payload, which lets the gateway correct a count that is off.
  struct PublisherPosition {
    std::optional<std::uint64_t> seq;
    std::optional<std::uint64_t> hash;
  };
  struct StreamPosition {
    bool baseline = false;  // the subscribe answer's baseline is applied
    // Before it: the hashes of what each publisher sent (the every-publisher filter is
    // subscribed before the request), to place the baseline among them.
    std::map<std::string, std::vector<std::uint64_t>> before_baseline;
    std::string epoch;        // empty until the gateway's baseline answer
    std::uint64_t since = 0;  // offset covered for publishers not in `publishers`
    std::map<std::string, PublisherPosition> publishers;
    bool recovering = false;  // live messages wait in `held` (after a reconnect)
    std::vector<MessageEvent> held;
    bool overflowed = false;  // `held` lost messages beyond max_recovery_buffer
  };
  using StreamKey = std::pair<std::string, std::string>;  // channel, topic
  // Before a subscribe whose filter is in place first: count from now on.
  void expect_stream_locked(const std::string& channel, const std::string& topic);
  // After a subscribe: its answer's `history` baseline (none: the stream keeps no history).
  void track_stream(const std::string& channel, const std::string& topic,
                    const rapidjson::Value& result);
  // A live message of a tracked stream: counted, or held while the stream recovers. False
  // when it is held (not to be delivered now).
  bool on_stream_message_locked(const MessageEvent& ev, bool retained);
  // Every tracked stream is about to miss messages: hold live ones until it recovers.
  void hold_streams_locked();
  // Does this user subscribe to the stream (by name, or in every-publisher mode)?
  bool subscribed_locked(const StreamKey& key) const;
  // Forgets the positions of the channel's streams this user no longer subscribes to.
  void untrack_streams_locked(const std::string& channel);
  // In restore(): reads what each tracked stream missed, delivers it and the held live
  // messages in order. False: retry the restore (the link failed).
  bool recover_streams(std::vector<std::string>& problems);
  std::map<StreamKey, StreamPosition> streams_;

  // Across a reconnect (client_reconnect.cpp).
  // Should a publish wait in the send queue (reconnecting, restoring, or the queue not yet
  // flushed)?
  bool queue_publishes_locked() const;
  // Queues a publish; LIMIT_SEND_QUEUE for a QoS 1 message that does not fit.
  Status enqueue_locked(std::string topic, std::string_view payload, int qos);
  // A message to the broker: sent now, or queued while reconnecting (called without mutex_).
  Result<void> publish_or_queue(const std::string& topic, std::string_view payload, int qos);
  // After the restore: the queued messages, then the parked requests, in order; true when
  // everything went out (false: the link dropped again; what is left waits).
  bool flush_after_restore(std::string* report);
  // The session is over: queued messages go (counted as dropped), parked requests fail.
  void drop_queue_locked(const std::string& why);
  // Parks an app request while reconnecting (it keeps its deadline).
  void park_locked(const std::string& id, Pending pending);
  // Did the login token expire (by this host's clock)?
  bool token_expired_locked() const;
  // The states the restore's watch answer gives, against those known before: a
  // PresenceEvent for each difference.
  void report_presence_changes(const std::vector<std::pair<std::string, bool>>& now);
  // The invitations in flight now (the `invitations` operation) against those known before:
  // events for those that changed, ended (while this client was away) or arrived meanwhile.
  // False: retry the restore (the link failed).
  bool recheck_invitations(bool relogin, std::vector<std::string>& problems);
  // Keeps track of the invitations in flight from their events.
  void track_invitation(const InvitationEvent& e);
  struct Queued {
    std::string topic;
    std::string payload;
    int qos = 0;
  };
  std::deque<Queued> send_queue_;
  std::size_t send_queue_bytes_ = 0;
  bool flushing_ = false;  // the queue is being sent after a restore: new publishes queue
  std::uint64_t send_queue_sent_ = 0;
  std::uint64_t send_queue_dropped_ = 0;
  std::vector<std::string> parked_;    // ids of parked requests, oldest first
  std::int64_t token_expires_at_ = 0;  // the session's token exp (s since the epoch); 0: unknown
  std::map<std::string, bool> watched_online_;          // watched uid -> online, as last told
  std::map<std::string, InvitationEvent> invitations_;  // in flight, by id

  template <class E>
  void emit(const HandlerPtr<E>& handler, E event, bool droppable = false);
  template <class E>
  HandlerPtr<E> handler_of() const;

  // names
  std::string events_topic(const std::string& channel) const;
  std::string data_topic(const std::string& channel, const std::string& topic,
                         const std::string& user) const;
  std::string presence_topic() const;
  std::string presence_payload(bool online, const std::string& connection_id) const;
  void log(LogLevel level, const std::string& text) const;

  const ClientConfig config_;
  const std::string base_;        // "rtm/"
  const std::string user_base_;   // "u/alice/" (after base_)
  const std::string req_base_;    // "rtm/req/alice/"
  std::string msg_id_prefix_;
  std::atomic<std::uint64_t> msg_counter_{0};

  std::shared_ptr<Dispatcher> dispatcher_;

  mutable std::mutex handlers_mutex_;
  HandlerPtr<ConnectionStateEvent> on_state_;
  HandlerPtr<MessageEvent> on_message_;
  HandlerPtr<InboxMessage> on_inbox_;
  HandlerPtr<ReceiptEvent> on_receipt_;
  HandlerPtr<ChannelEvent> on_channel_;
  HandlerPtr<PresenceEvent> on_presence_;
  HandlerPtr<TokenEvent> on_token_;
  HandlerPtr<SessionEvent> on_session_;
  HandlerPtr<StorageEvent> on_storage_;
  HandlerPtr<PresenceStateEvent> on_state_changed_;
  HandlerPtr<LockEvent> on_lock_;
  HandlerPtr<RecoveryEvent> on_recovery_;
  HandlerPtr<InvitationEvent> on_invitation_;
  HandlerPtr<ChannelMessageEvent> on_channel_message_;

  mutable std::mutex mutex_;
  std::condition_variable connector_cv_;
  std::condition_variable timer_cv_;
  // connection
  bool want_online_ = false;    // login asked for a connection, no logout / failure since
  bool connected_ = false;      // MQTT up, base subscriptions made, online published
  bool ready_ = false;          // connected and not restoring: app requests go out
  bool had_connection_ = false; // connected at least once since want_online_ became true
  bool need_restore_ = false;
  bool publish_offline_ = true;  // at the next deliberate disconnect
  bool closing_ = false;
  bool closed_ = false;
  bool timer_stop_ = false;
  std::string connection_id_;
  std::vector<std::function<void(Status)>> connect_waiters_;
  std::vector<std::function<void()>> disconnect_waiters_;
  ConnectionState state_ = ConnectionState::disconnected;
  // session
  bool logged_in_ = false;
  int login_in_flight_ = 0;
  bool logging_out_ = false;
  std::string token_;
  std::string session_id_;
  std::map<std::string, ChannelState> channels_;
  std::set<std::string> watched_;
  std::set<std::string> metadata_subscriptions_;  // uids, renewed at a restore
  std::map<std::string, MessageChannelState> message_channels_;
  // acquire_lock calls with retry waiting for their lock: (channel, lock) -> pending ids
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> lock_waits_;
  std::unordered_set<std::string> data_topics_;  // MQTT data topics whose messages we deliver
  std::unordered_set<std::string>
      all_filters_;  // P/ch/{channel}/{topic}/+ of every-publisher topics
  // requests
  std::unordered_map<std::string, Pending> pending_;

  std::thread connector_;
  std::thread timer_;
  std::atomic<int> active_callbacks_{0};
  std::atomic<bool> paho_closed_{false};

  class SubscribeLogger;
  std::unique_ptr<SubscribeLogger> subscribe_logger_;
  // Last: destroyed first, so Paho stops before the state above goes away.
  std::unique_ptr<mqtt::async_client> client_;
};

template <class E>
void ClientImpl::emit(const HandlerPtr<E>& handler, E event, bool droppable) {
  if (!handler) return;
  dispatcher_->post([handler, e = std::move(event)]() { (*handler)(e); }, droppable);
}

// Defined with the handlers in client_impl.cpp; used by client_storage.cpp too.
template <>
ClientImpl::HandlerPtr<StorageEvent> ClientImpl::handler_of<StorageEvent>() const;
template <>
ClientImpl::HandlerPtr<PresenceStateEvent> ClientImpl::handler_of<PresenceStateEvent>() const;
template <>
ClientImpl::HandlerPtr<LockEvent> ClientImpl::handler_of<LockEvent>() const;

// A local TIMEOUT / UNAVAILABLE: the link, not the gateway, failed the request.
inline bool transport_failure(const Status& s) {
  return s.is(ErrorCode::timeout) || s.is(ErrorCode::unavailable);
}

// uid / channel / topic names (docs/protocol.md): nullopt when valid.
std::optional<std::string> name_error(std::string_view what, std::string_view name);

}  // namespace rtm::sdk::detail
