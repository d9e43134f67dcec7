#pragma once
// The RTM SDK: the programming model of Agora RTM 2 (stream channels, topics, publishers,
// subscriptions, peer-to-peer inboxes, presence, tokens, connection states) over plain
// MQTT 3.1.1 and the rtm-mqtt-gateway (docs/protocol.md).
//
//   rtm::sdk::ClientConfig config;
//   config.broker_uri = "tcp://127.0.0.1:1883";
//   config.uid = "alice";
//   config.token = token;
//   rtm::sdk::Client client(config);
//   client.on_message([](const rtm::sdk::MessageEvent& m) { ... });
//   client.login().value();                   // throws rtm::sdk::Error on failure
//   auto room = client.stream_channel("room-42");
//   auto snapshot = room.join();              // Result<ChannelSnapshot>
//   room.join_topic("input");
//   room.publish_topic("input", "frame");     // straight to the broker, QoS 0
//   room.subscribe_topic("input", {"bob"});   // bob's frames arrive in on_message
//   room.subscribe_topic("input");            // or every publisher's, now and later
//
// Threads. Every call may be made from any thread. Blocking calls wait for the gateway's
// answer (at most ClientConfig::request_timeout); each has an `_async` twin that returns at
// once and calls back later. Callbacks (handlers and async results) run one at a time on
// the client's own dispatcher thread, never on the MQTT library's threads and never while
// the SDK holds a lock, so a callback may call the SDK again, blocking calls included (a
// blocking call inside a callback holds up later callbacks until it returns).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/sdk/types.hpp"

namespace rtm::sdk {

namespace detail {
class ClientImpl;
}

struct PublishOptions {
  int qos = 0;  // 0 or 1
};

class StreamChannel;

class Client {
 public:
  explicit Client(ClientConfig config);
  // Leaves cleanly: marks the user offline (so the gateway ends the session and tells
  // the channels) and disconnects. Do not destroy a Client from inside its own callbacks.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& uid() const;
  const std::string& prefix() const;
  ConnectionState state() const;
  std::string session_id() const;

  // ---- handlers: set any time (before login to see everything); run on the dispatcher.
  void on_connection_state(std::function<void(const ConnectionStateEvent&)> handler);
  void on_message(std::function<void(const MessageEvent&)> handler);  // channel topics
  void on_inbox(std::function<void(const InboxMessage&)> handler);    // peer-to-peer
  void on_channel_event(std::function<void(const ChannelEvent&)> handler);
  void on_presence(std::function<void(const PresenceEvent&)> handler);  // watched users
  void on_token(std::function<void(const TokenEvent&)> handler);        // will expire, expired
  void on_session(std::function<void(const SessionEvent&)> handler);    // logged in, replaced, ended

  // ---- session
  // Connects to the broker (presence Will set, online published) and logs in with the
  // configured token, or with `token`. Connection states: connecting, then connected.
  Result<LoginInfo> login();
  Result<LoginInfo> login(const std::string& token);
  void login_async(Callback<LoginInfo> done);
  void login_async(const std::string& token, Callback<LoginInfo> done);
  // Logs out (leaving every channel), marks the user offline and disconnects.
  Result<void> logout();
  void logout_async(Callback<void> done);
  // Moves the session's expiry; the new token is also used for later reconnects.
  Result<std::int64_t> renew_token(const std::string& token);  // the new expires_at
  void renew_token_async(const std::string& token, Callback<std::int64_t> done);

  // ---- peer-to-peer: straight to P/u/{user}/inbox/{uid} on the broker (no gateway hop).
  Result<void> publish(const std::string& user, std::string_view payload,
                       PublishOptions options = PublishOptions{1});

  // ---- presence
  Result<std::vector<UserPresence>> watch(const std::vector<std::string>& users);
  void watch_async(const std::vector<std::string>& users, Callback<std::vector<UserPresence>> done);
  Result<std::vector<UserPresence>> unwatch(const std::vector<std::string>& users);
  void unwatch_async(const std::vector<std::string>& users,
                     Callback<std::vector<UserPresence>> done);
  Result<std::vector<std::string>> who_now(const std::string& channel);  // members
  void who_now_async(const std::string& channel, Callback<std::vector<std::string>> done);
  Result<std::vector<std::string>> where_now(const std::string& uid);  // channels
  void where_now_async(const std::string& uid, Callback<std::vector<std::string>> done);

  // ---- any request: a built-in operation ("ping") or module RPC ("im://modulus/x").
  // `body` is a JSON object (empty = {}); the result is the answer's "result", as JSON text.
  Result<std::string> request(const std::string& uri, const std::string& body = "");
  void request_async(const std::string& uri, const std::string& body, Callback<std::string> done);

  // ---- stream channels
  StreamChannel stream_channel(const std::string& name);

 private:
  std::shared_ptr<detail::ClientImpl> impl_;
};

// A stream channel by name: a cheap handle; copies name the same channel of the same client.
class StreamChannel {
 public:
  const std::string& name() const { return name_; }
  bool joined() const;

  // Joins the channel and follows its events (on_channel_event); the result is the
  // snapshot of members and topic publishers.
  Result<ChannelSnapshot> join();
  void join_async(Callback<ChannelSnapshot> done);
  // Leaves the channel, its topics and its subscriptions.
  Result<void> leave();
  void leave_async(Callback<void> done);

  // Becomes a publisher of `topic` (needed before publish_topic).
  Result<void> join_topic(const std::string& topic);
  void join_topic_async(const std::string& topic, Callback<void> done);
  Result<void> leave_topic(const std::string& topic);
  void leave_topic_async(const std::string& topic, Callback<void> done);
  // Publishes on the data plane: straight to P/ch/{channel}/{topic}/{uid} on the broker.
  // Returns once the message is handed to the MQTT library (QoS 0 by default).
  Result<void> publish_topic(const std::string& topic, std::string_view payload,
                             PublishOptions options = {});

  // Subscribes to publishers of `topic` (at most 64 per topic): the gateway records it and
  // the SDK subscribes to their data topics; messages arrive in on_message.
  Result<SubscribeResult> subscribe_topic(const std::string& topic,
                                          const std::vector<std::string>& users);
  void subscribe_topic_async(const std::string& topic, const std::vector<std::string>& users,
                             Callback<SubscribeResult> done);
  Result<SubscribeResult> unsubscribe_topic(const std::string& topic,
                                            const std::vector<std::string>& users);
  void unsubscribe_topic_async(const std::string& topic, const std::vector<std::string>& users,
                               Callback<SubscribeResult> done);
  // Subscribes to every publisher of `topic` but this user, current and later, at most 64
  // (Agora RTM 2's subscribeTopic without users). The gateway adds a new publisher before
  // it answers that publisher's join_topic, so once this returns, nothing a publisher sends
  // after joining the topic is missed. A publisher beyond the limit is not added: a
  // ChannelEvent subscription_refused says so. The result answers for the current
  // publishers (per user), with `all` set.
  Result<SubscribeResult> subscribe_topic(const std::string& topic);
  void subscribe_topic_async(const std::string& topic, Callback<SubscribeResult> done);
  // Ends the every-publisher mode and every subscription of `topic` (by name too); the
  // result lists the publishers removed.
  Result<SubscribeResult> unsubscribe_topic(const std::string& topic);
  void unsubscribe_topic_async(const std::string& topic, Callback<SubscribeResult> done);
  // Who this user subscribes to in `topic` (by name, and added by the every-publisher mode).
  Result<std::vector<std::string>> subscribed_users(const std::string& topic);
  void subscribed_users_async(const std::string& topic, Callback<std::vector<std::string>> done);
  Result<std::vector<std::string>> who_now();
  void who_now_async(Callback<std::vector<std::string>> done);

 private:
  friend class Client;
  StreamChannel(std::shared_ptr<detail::ClientImpl> impl, std::string name)
      : impl_(std::move(impl)), name_(std::move(name)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
  std::string name_;
};

}  // namespace rtm::sdk
