#pragma once
// Value types of the RTM SDK: results, error codes, events, configuration.
// No MQTT library appears here: the SDK keeps Paho behind its own walls.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rtm::sdk {

// The gateway's error codes (docs/protocol.md). Local failures use the same codes:
// `timeout` when no answer came in time, `unavailable` when the broker link is down.
enum class ErrorCode : int {
  ok = 0,
  internal = 1,
  bad_request = 2,
  not_joined = 3,
  not_logged_in = 4,
  unknown_operation = 5,
  missing_msg_id = 6,
  bad_json = 7,
  invalid_name = 8,
  payload_too_large = 9,
  duplicate_parameter = 10,
  missing_parameter = 11,
  invalid_parameter = 12,
  invalid_uri = 13,
  msg_id_reused = 14,
  not_subscribed = 15,
  not_watched = 16,
  not_publisher = 17,
  forbidden = 18,
  topic_too_long = 19,
  token_invalid = 20,
  token_bad_signature = 21,
  token_expired = 22,
  token_uid_mismatch = 23,
  token_unsupported_alg = 24,
  token_not_yet_valid = 25,
  limit_channels = 30,
  limit_topics = 31,
  limit_members = 32,
  limit_subscriptions = 33,
  limit_watch = 34,
  no_route = 40,
  timeout = 41,
  backend_error = 42,
  rate_limited = 43,
  unavailable = 44,
  major_revision_mismatch = 45,
  item_revision_mismatch = 46,
  item_not_found = 47,
  limit_metadata = 48,
  limit_metadata_subscriptions = 49,
  limit_state = 50,
  lock_not_found = 51,
  lock_exists = 52,
  lock_held = 53,
  not_lock_holder = 54,
  limit_locks = 55,
  peer_offline = 56,
  limit_inbox = 57,
  no_history = 58,
  invitation_not_found = 59,
  invitation_wrong_side = 60,
  limit_invitations = 61,
  // Local to the SDK (never answered by the gateway): a QoS 1 message does not fit in the send
  // queue while reconnecting (ClientConfig::max_send_queue, max_send_queue_bytes).
  limit_send_queue = 62,
  channel_token_required = 66,
  token_channel_mismatch = 67,
};

// "NOT_JOINED" for 3, ...; "UNKNOWN" for a code this SDK does not know.
std::string_view error_name(int code);

// The outcome of an operation: the gateway's code, error name and message, or a local
// TIMEOUT / UNAVAILABLE / INVALID_NAME / NOT_JOINED.
class Status {
 public:
  Status() = default;  // OK
  Status(int code, std::string error, std::string message)
      : code_(code), error_(std::move(error)), message_(std::move(message)) {}
  Status(ErrorCode code, std::string message)
      : Status(static_cast<int>(code), std::string(error_name(static_cast<int>(code))),
               std::move(message)) {}

  int code() const { return code_; }
  const std::string& error() const { return error_; }  // "OK", "NOT_JOINED", ...
  const std::string& message() const { return message_; }
  bool ok() const { return code_ == 0; }
  bool is(ErrorCode c) const { return code_ == static_cast<int>(c); }
  explicit operator bool() const { return ok(); }
  // "OK" or "NOT_JOINED (3): alice has not joined channel room-42".
  std::string to_string() const;

 private:
  int code_ = 0;
  std::string error_ = "OK";
  std::string message_;
};

// Thrown by Result::value() when there is no value.
class Error : public std::runtime_error {
 public:
  explicit Error(Status status) : std::runtime_error(status.to_string()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

// A value or the Status saying why there is none.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)), has_value_(true) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {}            // NOLINT
  Result(ErrorCode code, std::string message) : status_(code, std::move(message)) {}

  bool ok() const { return has_value_ && status_.ok(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }
  int code() const { return status_.code(); }
  const std::string& error() const { return status_.error(); }
  const std::string& message() const { return status_.message(); }

  const T& value() const& { check(); return value_; }
  T& value() & { check(); return value_; }
  T&& value() && { check(); return std::move(value_); }
  const T* operator->() const { check(); return &value_; }
  const T& operator*() const& { check(); return value_; }

 private:
  void check() const {
    if (!ok()) throw Error(status_.ok() ? Status(ErrorCode::internal, "no value") : status_);
  }
  Status status_;
  T value_{};
  bool has_value_ = false;
};

template <>
class Result<void> {
 public:
  Result() = default;
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(ErrorCode code, std::string message) : status_(code, std::move(message)) {}
  bool ok() const { return status_.ok(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }
  int code() const { return status_.code(); }
  const std::string& error() const { return status_.error(); }
  const std::string& message() const { return status_.message(); }
  void value() const {
    if (!ok()) throw Error(status_);
  }

 private:
  Status status_;
};

// Async results arrive through a callback, on the SDK's dispatcher thread.
template <class T>
using Callback = std::function<void(Result<T>)>;

// ------------------------------------------------------------------ results

struct LoginInfo {
  std::string uid;
  std::string session_id;
  std::int64_t expires_at = 0;  // the token's exp, seconds since the Unix epoch
};

struct TopicPublishers {
  std::string topic;
  std::vector<std::string> publishers;
};

struct ChannelSnapshot {
  std::string channel;
  std::vector<std::string> members;  // in join order
  std::vector<TopicPublishers> topics;
};

// One user's part of a subscribe / unsubscribe / watch answer.
struct UserResult {
  std::string uid;
  Status status;
};

struct SubscribeResult {
  std::string channel;
  std::string topic;
  std::vector<UserResult> users;
  // Every-publisher mode (subscribe_topic without users): on after subscribing, off after
  // unsubscribing; false for subscriptions by name.
  bool all = false;
  bool all_ok() const;
  std::vector<std::string> succeeded() const;
};

struct UserPresence {
  std::string uid;
  Status status;        // per user: e.g. LIMIT_WATCH
  bool online = false;  // watch: the state now
};

// ---- storage (metadata), presence states, locks (issue 15; docs/protocol.md)

// One metadata item. In a write, `revision` is the compare-and-set check: -1 checks nothing,
// 0 means "only if the key is absent", any other value must equal the key's revision. In
// results and events it is the item's revision; `author` and `updated_at` (ms since the Unix
// epoch) are there when the write that stored the item asked to record them.
struct MetadataItem {
  std::string key;
  std::string value;
  std::int64_t revision = -1;
  std::optional<std::string> author;
  std::optional<std::int64_t> updated_at;
};

// A user's or a channel's metadata (or the part of it a call wrote or removed).
struct Metadata {
  std::int64_t major_revision = 0;  // 0: never written
  std::vector<MetadataItem> items;
  // The value of `key`, or nullptr.
  const MetadataItem* find(std::string_view key) const;
};

// Options of set / update / remove metadata (RTM 2's MetadataOptions).
struct MetadataOptions {
  // Compare-and-set on the whole metadata: -1 checks nothing, 0 writes only if it was never
  // written, any other value must equal its major revision (MAJOR_REVISION_MISMATCH).
  std::int64_t major_revision = -1;
  bool record_author = false;  // store the writer's uid with each item written
  bool record_ts = false;      // store the time of the write with each item written
  // Channel metadata only: write only while holding this lock (NOT_LOCK_HOLDER).
  std::string lock;
};

// Presence states: a user's temporary key/values in one channel.
using StateMap = std::map<std::string, std::string>;

struct UserState {
  std::string channel;
  std::string uid;
  StateMap states;
};

// who_now with include_state: the members, and the states of those that have any.
struct WhoNowResult {
  std::string channel;
  std::vector<std::string> members;
  std::map<std::string, StateMap> states;  // uid -> states
};

struct AcquireLockOptions {
  // Wait in the lock's queue while someone else holds it: the call then completes when this
  // user actually gets the lock (the gateway's `lock` event), LOCK_NOT_FOUND when the lock
  // is removed meanwhile, or TIMEOUT after `wait` (the SDK then leaves the queue).
  bool retry = false;
  std::chrono::milliseconds wait{60000};
};

enum class AcquireStatus {
  acquired,      // got it now (or, with retry, after waiting)
  already_held,  // this user held it already
};

struct LockInfo {
  std::string name;
  std::int64_t ttl = 0;              // seconds
  std::string owner;                 // empty: free
  std::vector<std::string> waiters;  // the queue, next first
  std::int64_t expires_at = 0;  // ms since the epoch while the owner's session is gone; 0 otherwise
};

// ------------------------------------------------------------------ events

// Connection states and the reasons they change: the codes and names of docs/protocol.md
// ("Connection states"), which the gateway's `session` events carry too. The numbers are
// anyRTC's where they fit (its ABORTED is `failed` here).
enum class ConnectionState : int {
  disconnected = 1,  // not connected (before login, after logout)
  connecting = 2,    // login in progress
  connected = 3,     // logged in, ready
  // the broker link (or the session) was lost; the SDK is reconnecting. Blocking calls made
  // now wait for the restore (each within the request timeout); messages are queued
  // (ClientConfig::max_send_queue).
  reconnecting = 4,
  // the session is over and will not come back by itself (replaced, token expired, ...)
  failed = 5,
  // reconnected, and the session restored: login, joins, topics, subscriptions, watches,
  // metadata subscriptions (a snapshot StorageEvent each) and presence states
  restored = 6,
};
// "reconnecting", ...
std::string_view to_string(ConnectionState state);
// The table's name: "RECONNECTING", "ABORTED" (failed), ...
std::string_view state_name(ConnectionState state);

// Why the connection state changed.
enum class ConnectionChangeReason : int {
  none = 0,
  login = 1,             // login() was called (connecting)
  login_success = 2,     // the gateway accepted the login (connected)
  login_failure = 3,     // the broker refused the connection or the gateway the login (failed)
  login_timeout = 4,     // no connection or no login answer within the timeouts (failed)
  interrupted = 5,       // the broker link dropped (reconnecting)
  logout = 6,            // logged out (disconnected; or failed: logged out elsewhere)
  banned_by_server = 7,  // the broker refused to take the client back: not authorized (failed)
  remote_login = 8,      // a login of the same uid elsewhere replaced the session (failed)
  token_expired = 9,     // the token expired: the gateway ended the session (failed)
  kicked = 10,           // an operator ended the session (failed)
  restored = 11,         // reconnected and the session restored (restored)
  session_lost = 12,     // the gateway timed the session out; logging in again (reconnecting)
};
// "TOKEN_EXPIRED", ...; "UNKNOWN" for a number this SDK does not know.
std::string_view to_string(ConnectionChangeReason reason);

struct ConnectionStateEvent {
  ConnectionState state = ConnectionState::disconnected;
  ConnectionChangeReason reason = ConnectionChangeReason::none;
  std::string message;  // for people: what happened, what was restored, what failed
};
// "reconnecting (INTERRUPTED): connection to the broker lost"
std::string to_string(const ConnectionStateEvent& event);

// A message on a channel topic, from one publisher, straight from the broker (or, after a
// reconnect, from the stream's history: `recovered`).
struct MessageEvent {
  std::string channel;
  std::string topic;
  std::string publisher;
  std::string payload;  // raw bytes
  int qos = 0;
  bool recovered = false;    // missed while disconnected, read back from the history
  std::uint64_t offset = 0;  // recovered: its offset in the stream
  std::int64_t ts = 0;       // recovered: when the gateway read it (ms since the Unix epoch)
};

// After a reconnect, for each subscribed stream that keeps history (the gateway's
// history.streams): what was missed has been delivered (MessageEvent::recovered) before any
// newer live message, and whether that was everything (as Centrifugo's recovered flag).
struct RecoveryEvent {
  std::string channel;
  std::string topic;
  bool complete = true;       // false: messages were lost (history too short, a gateway restart)
  std::size_t recovered = 0;  // messages delivered from the history
  std::string reason;         // why it is incomplete
};

// One message of a stream's history (StreamChannel::history).
struct HistoryMessage {
  std::uint64_t offset = 0;
  std::string publisher;
  std::uint64_t seq = 0;  // the publisher's own count in the stream
  std::int64_t ts = 0;    // when the gateway read it (ms since the Unix epoch)
  std::string payload;
  bool too_large = false;  // over the stream's max_message_bytes: its payload was not kept
};

struct HistoryQuery {
  std::optional<std::uint64_t> since;    // messages after this offset
  std::optional<std::int64_t> since_ts;  // messages after this time (ms since the Unix epoch)
  std::string epoch;                     // the epoch `since` is from (empty: any)
  std::vector<std::string> publishers;   // only these (empty: all)
  std::size_t limit = 100;
  bool reverse = false;                 // newest first (the latest `limit`)
  std::optional<std::uint64_t> after;   // page cursor forward (the last offset read)
  std::optional<std::uint64_t> before;  // page cursor backward
};

struct HistoryPage {
  std::string epoch;
  std::uint64_t top = 0;     // the newest offset
  std::uint64_t oldest = 0;  // the oldest offset kept
  bool complete = true;      // nothing after `since` was lost (same epoch, still kept)
  bool more = false;         // ask again with after (or before) = the last offset
  std::vector<HistoryMessage> messages;
};

// What a peer message carries: text (UTF-8), binary (any bytes), or raw: published straight
// to the inbox topic by the sender (no properties; type unknown).
enum class PeerMessageType { text, binary, raw };
std::string_view to_string(PeerMessageType type);

// A peer-to-peer message to this user: straight from the sender's publish (type raw), or a
// `message` event of the gateway (send_message, or kept while this user was offline) with
// the properties of anyRTC's MessageFromPeer.
struct InboxMessage {
  std::string from;
  std::string payload;  // the bytes (a binary message's base64 is decoded)
  int qos = 0;
  std::string id;  // the gateway's id; empty for raw
  PeerMessageType type = PeerMessageType::raw;
  std::int64_t server_ts = 0;  // ms since the Unix epoch when the gateway took it; 0 for raw
  bool offline = false;        // kept while this user had no session, delivered at login
};

// How a message sent with send_message reached its peer.
enum class DeliveryStatus { delivered, stored };
std::string_view to_string(DeliveryStatus status);

struct SendOptions {
  PeerMessageType type = PeerMessageType::text;  // text or binary
  bool receipt = false;  // ReceiptEvents: stored, and delivered when the peer gets it
  bool store = true;     // keep it when the peer is offline (false: PEER_OFFLINE instead)
};

struct SendResult {
  std::string id;
  std::int64_t ts = 0;  // the gateway's time
  DeliveryStatus status = DeliveryStatus::delivered;
};

// A delivery receipt for a message this user sent with SendOptions::receipt.
struct ReceiptEvent {
  std::string id;
  std::string to;
  DeliveryStatus status = DeliveryStatus::delivered;
  std::int64_t ts = 0;
};

struct InboxHistoryOptions {
  int limit = 50;     // at most 500
  std::string after;  // only messages with a larger id ("" from the oldest)
  std::string ack;    // first remove the messages up to this id (delivered)
};

// The messages kept for this user and not yet delivered, oldest first.
struct InboxHistory {
  std::vector<InboxMessage> messages;
  bool more = false;  // more after the last one: ask again with after = its id
};

enum class ChannelEventType {
  snapshot,  // after a restore: the channel as it is now (members, topics)
  member_joined,
  member_left,
  member_timed_out,
  publisher_joined,
  publisher_left,
  // To this user only: a new publisher of `topic` (`uid`) was not added to this user's
  // every-publisher subscription (`reason`: why, e.g. the 64-publisher limit).
  subscription_refused,
};
std::string_view to_string(ChannelEventType type);

struct ChannelEvent {
  ChannelEventType type = ChannelEventType::member_joined;
  std::string channel;
  std::string uid;      // who joined/left (empty for snapshot)
  std::string topic;    // publisher_joined / publisher_left
  std::string reason;   // left, logged_out, token_expired, replaced, connection_lost, restored
  std::int64_t ts = 0;  // ms since the Unix epoch (gateway clock)
  ChannelSnapshot snapshot;  // type == snapshot
  bool message_channel = false;  // about a message channel's presence subscribers
};

struct PresenceEvent {
  std::string uid;
  bool online = false;
  std::int64_t ts = 0;
};

struct TokenEvent {
  enum class State { will_expire, expired } state = State::will_expire;
  std::int64_t expires_at = 0;
  // A channel token's event (RTM 2's channel token will-expire): the channel, and
  // "stream" or "message". Empty for the session's token. At `expired` the gateway has
  // left the channel (or ended the subscription) already.
  std::string channel;
  std::string channel_type;
};

// RTM 2's message type of a message channel message (WithMessageType): how its payload
// is meant. It travels in the topic (docs/protocol.md, "Message channels"); a message from
// a raw MQTT client without the type level is binary.
enum class MessageType { binary, string };
std::string_view to_string(MessageType type);

// A message of a message channel this client subscribes to (Client::subscribe_channel).
struct ChannelMessageEvent {
  std::string channel;
  std::string publisher;
  std::string payload;  // raw bytes
  MessageType type = MessageType::binary;
  int qos = 0;
};

struct SubscribeChannelOptions {
  // Be a presence subscriber: listed in the channel's members, and told (on_channel_event,
  // ChannelEvent::message_channel) when other presence subscribers come and go.
  bool with_presence = false;
  std::string token;  // a channel token (needed where the gateway requires one)
};

struct MessageChannelInfo {
  std::string channel;
  bool with_presence = false;
  std::vector<std::string> members;   // with_presence: the presence subscribers now
  std::int64_t token_expires_at = 0;  // the channel token's expiry; 0: none
};

struct SessionEvent {
  std::string state;       // logged_in, replaced, ended
  std::string reason;      // e.g. "logged in elsewhere", "logged_out", "token_expired"
  // The event's reason as a code (LOGIN_SUCCESS, REMOTE_LOGIN, LOGOUT, TOKEN_EXPIRED, KICKED,
  // INTERRUPTED), and the connection state it puts the session's client in.
  ConnectionChangeReason reason_code = ConnectionChangeReason::none;
  ConnectionState connection_state = ConnectionState::disconnected;
  std::string session_id;  // the session the event is about
  bool current = false;    // it is about this client's session
};

enum class StorageScope { user, channel };
enum class StorageEventType {
  snapshot,  // user metadata: sent once at subscribe_user_metadata (and after a restore)
  set,
  update,
  remove,
};
std::string_view to_string(StorageEventType type);

// A change of metadata: of a user this client subscribed to (scope user, after
// subscribe_user_metadata), or of a channel this client has joined (scope channel).
struct StorageEvent {
  StorageScope scope = StorageScope::user;
  StorageEventType type = StorageEventType::set;
  std::string uid;      // scope user: whose metadata
  std::string channel;  // scope channel: the channel
  std::string by;       // who wrote it (empty for a snapshot)
  // major_revision after the change; items: all of them (snapshot), those written
  // (set, update) or those removed, as they were (remove).
  Metadata metadata;
  std::int64_t ts = 0;
};

// A member's presence states changed in a joined channel (not sent when the member leaves:
// its states go with it, and member_left / member_timed_out says so).
struct PresenceStateEvent {
  std::string channel;
  std::string uid;
  StateMap states;                   // all of the member's states after the change
  std::vector<std::string> written;  // keys set by the change
  std::vector<std::string> removed;  // keys removed by the change
  std::int64_t ts = 0;
};

enum class LockEventType { set, removed, acquired, released, expired };
std::string_view to_string(LockEventType type);

// A lock of a joined channel changed.
struct LockEvent {
  LockEventType type = LockEventType::set;
  std::string channel;
  std::string lock;
  std::string uid;       // acquired: the new holder; released, expired, removed: the old one
  std::int64_t ttl = 0;  // set: seconds
  std::int64_t ts = 0;
};

// ------------------------------------------------------------------ call invitations

// Which side of an invitation an event is about: this user sent it (local, anyRTC's
// LocalInvitation) or received it (remote, anyRTC's RemoteInvitation).
enum class InvitationSide { local, remote };

// A change of an invitation (docs/protocol.md, "Call invitations"). States by side:
// local SENT_TO_REMOTE, RECEIVED_BY_REMOTE, ACCEPTED_BY_REMOTE, REFUSED_BY_REMOTE,
// CANCELED, FAILURE; remote RECEIVED, ACCEPTED, REFUSED, CANCELED, FAILURE. Reasons (with
// FAILURE): PEER_OFFLINE, PEER_NO_RESPONSE, INVITATION_EXPIRE, NOT_LOGGEDIN, OTHER; else OK.
struct InvitationEvent {
  std::string id;
  InvitationSide side = InvitationSide::local;
  std::string state;
  int state_code = 0;
  std::string reason = "OK";
  int reason_code = 0;
  std::string caller;
  std::string callee;
  std::string content;
  std::string channel_id;
  std::string response;  // the callee's, with ACCEPTED / REFUSED
  std::int64_t ts = 0;
  // The invitation ended with this event (every state but SENT_TO_REMOTE,
  // RECEIVED_BY_REMOTE and RECEIVED).
  bool ended() const {
    return state != "SENT_TO_REMOTE" && state != "RECEIVED_BY_REMOTE" && state != "RECEIVED";
  }
};

// The send queue (ClientConfig::max_send_queue): what waits now, and what was dropped.
struct SendQueueStats {
  std::size_t queued = 0;        // messages waiting for the restore
  std::size_t queued_bytes = 0;  // their payload bytes
  std::uint64_t sent = 0;        // sent after a restore, since the client was made
  std::uint64_t dropped = 0;     // QoS 0 dropped past the bound, or left when the session ended
};

// ------------------------------------------------------------------ configuration

enum class LogLevel { debug, info, warn, error };
using Logger = std::function<void(LogLevel, const std::string&)>;

struct ClientConfig {
  std::string broker_uri = "tcp://127.0.0.1:1883";  // tcp://, ssl://, mqtt:// or host:port
  std::string uid;
  std::string token;  // login token (JWT); also the MQTT password (brokers with the auth plugin)
  std::string prefix = "rtm";
  std::string client_id;  // MQTT client id; default "{uid}/{random}" (what the auth plugin allows)
  // Send the uid and token as the MQTT username and password (brokers that check tokens:
  // the project's Mosquitto plugin, EMQX, RabbitMQ with its HTTP auth backend). false
  // connects anonymously, for a broker that checks no tokens and refuses unknown users
  // (RabbitMQ's MQTT plugin with only its default user).
  bool broker_credentials = true;
  // The broker's name rules, as the gateway's broker.profile: "rabbitmq" and "generic"
  // refuse '.' in uids, channels and topics here, before anything is sent (RabbitMQ turns
  // a '.' in a topic into a level separator). Empty or "mosquitto"/"emqx": no extra rule.
  std::string broker_profile;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::seconds keepalive{30};
  std::chrono::milliseconds reconnect_min{100};  // backoff between reconnect attempts
  std::chrono::milliseconds reconnect_max{5000};
  // Events and messages waiting for the app's callbacks; beyond it channel and inbox
  // messages are dropped (and counted), so a stuck callback cannot eat all memory.
  std::size_t max_queued_events = 1000000;
  // After a reconnect, deliver what subscribed streams with history missed (RecoveryEvent).
  bool recover_streams = true;
  // Live messages held while a stream recovers; beyond it the oldest go (incomplete).
  std::size_t max_recovery_buffer = 100000;
  // While reconnecting, channel publishes and peer messages (publish) wait in a send queue and
  // go out in order after the restore. Past either bound a QoS 0 message makes room by
  // dropping the oldest QoS 0 ones (counted: send_queue_stats()); a QoS 1 message that does
  // not fit is refused with LIMIT_SEND_QUEUE. Calls made while reconnecting wait too, at most
  // max_send_queue of them (UNAVAILABLE past it), each within request_timeout.
  std::size_t max_send_queue = 1000;               // messages
  std::size_t max_send_queue_bytes = 1024 * 1024;  // payload bytes
  // Called from SDK threads (not the dispatcher); must be thread-safe and quick, and must
  // not call the SDK. Empty: no logging.
  Logger logger;
};

}  // namespace rtm::sdk
