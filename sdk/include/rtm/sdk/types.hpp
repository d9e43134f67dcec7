#pragma once
// Value types of the RTM SDK: results, error codes, events, configuration.
// No MQTT library appears here: the SDK keeps Paho behind its own walls.
#include <chrono>
#include <cstdint>
#include <functional>
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

// ------------------------------------------------------------------ events

enum class ConnectionState {
  disconnected,  // not connected (before login, after logout)
  connecting,    // login in progress
  connected,     // logged in, ready
  reconnecting,  // the broker link dropped; the SDK is reconnecting
  restored,      // reconnected, and the session (login, joins, topics, subscriptions, watches) restored
  failed,        // the session is over and will not come back by itself (replaced, token expired, ...)
};
std::string_view to_string(ConnectionState state);

struct ConnectionStateEvent {
  ConnectionState state = ConnectionState::disconnected;
  std::string reason;
};

// A message on a channel topic, from one publisher, straight from the broker.
struct MessageEvent {
  std::string channel;
  std::string topic;
  std::string publisher;
  std::string payload;  // raw bytes
  int qos = 0;
};

// A peer-to-peer message to this user's inbox.
struct InboxMessage {
  std::string from;
  std::string payload;  // raw bytes
  int qos = 0;
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
};

struct PresenceEvent {
  std::string uid;
  bool online = false;
  std::int64_t ts = 0;
};

struct TokenEvent {
  enum class State { will_expire, expired } state = State::will_expire;
  std::int64_t expires_at = 0;
};

struct SessionEvent {
  std::string state;       // logged_in, replaced, ended
  std::string reason;      // e.g. "logged in elsewhere", "logged_out", "token_expired"
  std::string session_id;  // the session the event is about
  bool current = false;    // it is about this client's session
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
  // Called from SDK threads (not the dispatcher); must be thread-safe and quick, and must
  // not call the SDK. Empty: no logging.
  Logger logger;
};

}  // namespace rtm::sdk
