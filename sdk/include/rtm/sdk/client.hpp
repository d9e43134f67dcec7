#pragma once
// The RTM SDK: the programming model of Agora RTM 2 (stream channels, topics, publishers,
// subscriptions, peer-to-peer inboxes, presence, tokens, connection states, and storage:
// metadata, presence states, locks) over plain MQTT 3.1.1 and the rtm-mqtt-gateway
// (docs/protocol.md).
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
//   client.storage().set_channel_metadata("room-42", {{"seat/2", "alice", 0}});  // only if free
//   client.lock().acquire_lock("room-42", "host", {true});  // waits until the lock is ours
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
#include <utility>
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
class Storage;
class Presence;
class Locks;
class Invitations;

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
  // The send queue that holds publishes while reconnecting (ClientConfig::max_send_queue).
  SendQueueStats send_queue_stats() const;

  // ---- handlers: set any time (before login to see everything); run on the dispatcher.
  void on_connection_state(std::function<void(const ConnectionStateEvent&)> handler);
  void on_message(std::function<void(const MessageEvent&)> handler);  // channel topics
  void on_inbox(std::function<void(const InboxMessage&)> handler);    // peer-to-peer
  void on_receipt(std::function<void(const ReceiptEvent&)> handler);  // of send_message
  void on_channel_event(std::function<void(const ChannelEvent&)> handler);
  void on_presence(std::function<void(const PresenceEvent&)> handler);  // watched users
  void on_token(std::function<void(const TokenEvent&)> handler);        // will expire, expired
  void on_session(std::function<void(const SessionEvent&)> handler);    // logged in, replaced, ended
  // Metadata: of users subscribed to (Storage::subscribe_user_metadata) and of joined channels.
  void on_storage_event(std::function<void(const StorageEvent&)> handler);
  // Presence states of the members of joined channels (state_changed).
  void on_presence_state(std::function<void(const PresenceStateEvent&)> handler);
  // Locks of joined channels.
  void on_lock_event(std::function<void(const LockEvent&)> handler);
  // After a reconnect, per subscribed stream with history: recovery done, complete or not.
  void on_recovery(std::function<void(const RecoveryEvent&)> handler);
  // Call invitations sent and received (Invitations): each state change, both sides. The
  // SDK acknowledges a received invitation itself before this runs.
  void on_invitation(std::function<void(const InvitationEvent&)> handler);
  // Messages of the message channels this client subscribes to (subscribe_channel).
  void on_channel_message(std::function<void(const ChannelMessageEvent&)> handler);

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
  // With the gateway's inbox.offline, a message to a user without a live session is kept and
  // delivered at its next login (on_inbox, offline set).
  Result<void> publish(const std::string& user, std::string_view payload,
                       PublishOptions options = PublishOptions{1});
  // ---- peer-to-peer through the gateway (send_message): with an id, a type, the server's
  // time, delivery receipts, and kept for an offline peer unless options.store is false.
  Result<SendResult> send_message(const std::string& user, std::string_view payload,
                                  const SendOptions& options = {});
  void send_message_async(const std::string& user, std::string_view payload,
                          const SendOptions& options, Callback<SendResult> done);
  // The messages kept for this user (inbox_history), for apps that pull them.
  Result<InboxHistory> inbox_history(const InboxHistoryOptions& options = {});
  void inbox_history_async(const InboxHistoryOptions& options, Callback<InboxHistory> done);

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

  // ---- message channels (RTM 2): publish needs no subscription and no join; straight
  // to P/mc/{channel}/{uid}[/string] on the broker (QoS 0 by default), with its type.
  Result<void> publish(const std::string& channel, std::string_view payload, MessageType type,
                       PublishOptions options = {});
  // Reads a message channel (no join): its messages arrive in on_channel_message, from
  // every publisher but this user. The subscription belongs to the session and is restored
  // after a reconnect.
  Result<MessageChannelInfo> subscribe_channel(const std::string& channel,
                                               const SubscribeChannelOptions& options = {});
  void subscribe_channel_async(const std::string& channel, const SubscribeChannelOptions& options,
                               Callback<MessageChannelInfo> done);
  Result<void> unsubscribe_channel(const std::string& channel);
  void unsubscribe_channel_async(const std::string& channel, Callback<void> done);
  // A new channel token for a joined stream channel and/or a subscribed message channel of
  // that name; the result is its expires_at. Its will-expire event comes in on_token.
  Result<std::int64_t> renew_channel_token(const std::string& channel, const std::string& token);
  void renew_channel_token_async(const std::string& channel, const std::string& token,
                                 Callback<std::int64_t> done);

  // ---- stream channels
  StreamChannel stream_channel(const std::string& name);

  // ---- storage (user and channel metadata), presence states, locks: cheap handles, as
  // RTM 2's client.Storage(), client.Presence(), client.Lock().
  Storage storage();
  Presence presence();
  Locks lock();
  // Call invitations (anyRTC's LocalInvitation / RemoteInvitation): a cheap handle.
  Invitations invitations();

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
  // With a channel token (RTM 2's JoinChannelOptions token): needed where the gateway's
  // channels.stream_token_required says so; its expiry leaves the channel.
  Result<ChannelSnapshot> join(const std::string& token);
  void join_async(const std::string& token, Callback<ChannelSnapshot> done);
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
  // The stream's history (a topic the gateway keeps history for: history.streams; members
  // read it). Without since/after: the oldest kept first, or with reverse the latest.
  Result<HistoryPage> history(const std::string& topic, const HistoryQuery& query = {});
  void history_async(const std::string& topic, const HistoryQuery& query,
                     Callback<HistoryPage> done);

 private:
  friend class Client;
  StreamChannel(std::shared_ptr<detail::ClientImpl> impl, std::string name)
      : impl_(std::move(impl)), name_(std::move(name)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
  std::string name_;
};

// User and channel metadata (RTM 2 storage): key/value items with revisions, written with
// compare-and-set (MetadataOptions::major_revision, MetadataItem::revision). An empty `uid`
// is this client's own. A user writes its own metadata, members their channel's (the
// gateway's storage.*_metadata_writers); anyone logged in reads user metadata, members read
// their channel's.
class Storage {
 public:
  // set: adds new keys and overwrites the keys named; other items stay.
  Result<Metadata> set_user_metadata(const std::string& uid, const std::vector<MetadataItem>& items,
                                     const MetadataOptions& options = {});
  void set_user_metadata_async(const std::string& uid, const std::vector<MetadataItem>& items,
                               const MetadataOptions& options, Callback<Metadata> done);
  // update: overwrites existing keys only (ITEM_NOT_FOUND for a new one).
  Result<Metadata> update_user_metadata(const std::string& uid,
                                        const std::vector<MetadataItem>& items,
                                        const MetadataOptions& options = {});
  void update_user_metadata_async(const std::string& uid, const std::vector<MetadataItem>& items,
                                  const MetadataOptions& options, Callback<Metadata> done);
  // remove: the keys of `items` (their revisions checked), or every item when empty; the
  // result holds the removed items as they were.
  Result<Metadata> remove_user_metadata(const std::string& uid,
                                        const std::vector<MetadataItem>& items = {},
                                        const MetadataOptions& options = {});
  void remove_user_metadata_async(const std::string& uid, const std::vector<MetadataItem>& items,
                                  const MetadataOptions& options, Callback<Metadata> done);
  // get: the items of `keys`, or every item when empty.
  Result<Metadata> get_user_metadata(const std::string& uid,
                                     const std::vector<std::string>& keys = {});
  void get_user_metadata_async(const std::string& uid, const std::vector<std::string>& keys,
                               Callback<Metadata> done);
  // Changes of `uid`'s metadata arrive in on_storage_event: first a snapshot, then each
  // change. The subscription belongs to the session; the SDK renews it after a restore
  // (another snapshot follows).
  Result<void> subscribe_user_metadata(const std::string& uid);
  void subscribe_user_metadata_async(const std::string& uid, Callback<void> done);
  Result<void> unsubscribe_user_metadata(const std::string& uid);
  void unsubscribe_user_metadata_async(const std::string& uid, Callback<void> done);

  // The same for a channel's metadata; changes reach its members as StorageEvents of scope
  // channel. MetadataOptions::lock: write only while holding that lock of the channel.
  Result<Metadata> set_channel_metadata(const std::string& channel,
                                        const std::vector<MetadataItem>& items,
                                        const MetadataOptions& options = {});
  void set_channel_metadata_async(const std::string& channel,
                                  const std::vector<MetadataItem>& items,
                                  const MetadataOptions& options, Callback<Metadata> done);
  Result<Metadata> update_channel_metadata(const std::string& channel,
                                           const std::vector<MetadataItem>& items,
                                           const MetadataOptions& options = {});
  void update_channel_metadata_async(const std::string& channel,
                                     const std::vector<MetadataItem>& items,
                                     const MetadataOptions& options, Callback<Metadata> done);
  Result<Metadata> remove_channel_metadata(const std::string& channel,
                                           const std::vector<MetadataItem>& items = {},
                                           const MetadataOptions& options = {});
  void remove_channel_metadata_async(const std::string& channel,
                                     const std::vector<MetadataItem>& items,
                                     const MetadataOptions& options, Callback<Metadata> done);
  Result<Metadata> get_channel_metadata(const std::string& channel,
                                        const std::vector<std::string>& keys = {});
  void get_channel_metadata_async(const std::string& channel, const std::vector<std::string>& keys,
                                  Callback<Metadata> done);

 private:
  friend class Client;
  explicit Storage(std::shared_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
};

// Presence states: temporary key/values of a member in a channel (RTM 2's setState). They
// go when the member leaves the channel or its session ends; the SDK sets them again after
// it restores a session. Changes arrive in on_presence_state.
class Presence {
 public:
  // Merges `states` into this user's states in `channel`; the result is all of them.
  Result<StateMap> set_state(const std::string& channel, const StateMap& states);
  void set_state_async(const std::string& channel, const StateMap& states, Callback<StateMap> done);
  // Removes `keys` (every state when empty); the result is what is left.
  Result<StateMap> remove_state(const std::string& channel,
                                const std::vector<std::string>& keys = {});
  void remove_state_async(const std::string& channel, const std::vector<std::string>& keys,
                          Callback<StateMap> done);
  // `uid`'s states in `channel` (empty uid: this user's).
  Result<UserState> get_state(const std::string& channel, const std::string& uid = "");
  void get_state_async(const std::string& channel, const std::string& uid,
                       Callback<UserState> done);
  // The members of `channel`, and with include_state their states.
  Result<WhoNowResult> who_now(const std::string& channel, bool include_state = true);
  void who_now_async(const std::string& channel, bool include_state, Callback<WhoNowResult> done);

 private:
  friend class Client;
  explicit Presence(std::shared_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
};

// Named locks of a channel (RTM 2's lock API): one holder, a FIFO queue of waiters, a ttl
// that keeps the lock for a holder whose session ended for that long. Every call needs
// membership of the channel. Changes arrive in on_lock_event.
class Locks {
 public:
  Result<void> set_lock(const std::string& channel, const std::string& name,
                        std::chrono::seconds ttl);
  void set_lock_async(const std::string& channel, const std::string& name, std::chrono::seconds ttl,
                      Callback<void> done);
  // Without retry: acquired, already_held, or LOCK_HELD. With retry: see AcquireLockOptions.
  Result<AcquireStatus> acquire_lock(const std::string& channel, const std::string& name,
                                     const AcquireLockOptions& options = {});
  void acquire_lock_async(const std::string& channel, const std::string& name,
                          const AcquireLockOptions& options, Callback<AcquireStatus> done);
  // Releases the lock (or leaves its queue); the next waiter gets it.
  Result<void> release_lock(const std::string& channel, const std::string& name);
  void release_lock_async(const std::string& channel, const std::string& name, Callback<void> done);
  // Takes the lock from its holder `uid`.
  Result<void> revoke_lock(const std::string& channel, const std::string& name,
                           const std::string& uid);
  void revoke_lock_async(const std::string& channel, const std::string& name,
                         const std::string& uid, Callback<void> done);
  Result<std::vector<LockInfo>> get_locks(const std::string& channel);
  void get_locks_async(const std::string& channel, Callback<std::vector<LockInfo>> done);
  Result<void> remove_lock(const std::string& channel, const std::string& name);
  void remove_lock_async(const std::string& channel, const std::string& name, Callback<void> done);

 private:
  friend class Client;
  explicit Locks(std::shared_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
};

// An invitation this user sent (anyRTC LocalInvitation), as send() returned it; later
// states arrive in Client::on_invitation (side local).
class LocalInvitation {
 public:
  LocalInvitation() = default;  // empty: its calls answer NOT_LOGGED_IN
  const std::string& id() const { return event_.id; }
  const std::string& callee() const { return event_.callee; }
  const std::string& content() const { return event_.content; }
  const std::string& channel_id() const { return event_.channel_id; }
  // At send: SENT_TO_REMOTE, or FAILURE with reason PEER_OFFLINE (the callee has no session).
  const std::string& state() const { return event_.state; }
  const std::string& reason() const { return event_.reason; }
  // Ends it: both sides get CANCELED. INVITATION_NOT_FOUND once it has ended.
  Result<void> cancel();
  void cancel_async(Callback<void> done);

 private:
  friend class Invitations;
  LocalInvitation(std::shared_ptr<detail::ClientImpl> impl, InvitationEvent event)
      : impl_(std::move(impl)), event_(std::move(event)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
  InvitationEvent event_;
};

// An invitation this user received (anyRTC RemoteInvitation), from its RECEIVED event.
class RemoteInvitation {
 public:
  RemoteInvitation() = default;  // empty: its calls answer NOT_LOGGED_IN
  const std::string& id() const { return event_.id; }
  const std::string& caller() const { return event_.caller; }
  const std::string& content() const { return event_.content; }
  const std::string& channel_id() const { return event_.channel_id; }
  // Both sides are told (ACCEPTED_BY_REMOTE / ACCEPTED, REFUSED_BY_REMOTE / REFUSED), with
  // `response`. INVITATION_NOT_FOUND once it has ended (canceled, expired).
  Result<void> accept(const std::string& response = "");
  Result<void> refuse(const std::string& response = "");
  void accept_async(const std::string& response, Callback<void> done);
  void refuse_async(const std::string& response, Callback<void> done);

 private:
  friend class Invitations;
  RemoteInvitation(std::shared_ptr<detail::ClientImpl> impl, InvitationEvent event)
      : impl_(std::move(impl)), event_(std::move(event)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
  InvitationEvent event_;
};

// Call invitations. The callee must have a live session; an invitation it does not
// acknowledge within the gateway's invitations.ack_timeout_s (30 s) fails with
// PEER_NO_RESPONSE, one it does not answer invitations.expire_s (60 s) after receiving it
// with INVITATION_EXPIRE.
class Invitations {
 public:
  Result<LocalInvitation> send(const std::string& callee, const std::string& content = "",
                               const std::string& channel_id = "");
  void send_async(const std::string& callee, const std::string& content,
                  const std::string& channel_id, Callback<LocalInvitation> done);
  // The object of a received invitation, from its event (side remote).
  RemoteInvitation remote(const InvitationEvent& received) const {
    return RemoteInvitation(impl_, received);
  }
  // By id, for apps that keep only ids.
  Result<void> cancel(const std::string& id);
  Result<void> accept(const std::string& id, const std::string& response = "");
  Result<void> refuse(const std::string& id, const std::string& response = "");
  // The invitations in flight this user sent or received, with their current states.
  Result<std::vector<InvitationEvent>> list();
  // Client::on_invitation.
  void on_event(std::function<void(const InvitationEvent&)> handler);

 private:
  friend class Client;
  friend class LocalInvitation;
  friend class RemoteInvitation;
  explicit Invitations(std::shared_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::ClientImpl> impl_;
};

}  // namespace rtm::sdk
