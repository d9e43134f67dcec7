#pragma once
// The RTM state behind one seam: sessions, channels, topic publishers, subscriptions,
// watches and connection presence. StateStore is what the RTM operations use; it takes
// values and returns values and error values, never pointers into its maps. Backends
// (docs/state.md): MemoryStore (this file) holds the model; SqliteStore
// (sqlite_store.hpp) is a MemoryStore that makes every change durable in an SQLite file
// before the answers that report it go out. make_state_store() picks one by config.
// No I/O in the model and no clock: callers pass the time and turn the returned changes
// into events. User names are interned to small ids, so a subscription costs a few
// bytes, not a string.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rtm/gateway/change_set.hpp"
#include "rtm/gateway/config.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/gateway/inbox_store.hpp"
#include "rtm/gateway/invitation_store.hpp"
#include "rtm/gateway/lock_store.hpp"
#include "rtm/gateway/metadata_store.hpp"
#include "rtm/gateway/presence_state_store.hpp"
#include "rtm/gateway/request.hpp"

namespace rtm::gateway {

using UserId = std::uint32_t;

// Strings to small ids with reference counts; an id is reused once released.
class Interner {
 public:
  UserId acquire(const std::string& name);
  UserId retain(UserId id) {  // one more reference to a live id
    ++entries_[id].refs;
    return id;
  }
  void release(UserId id);
  std::optional<UserId> find(const std::string& name) const;
  const std::string& name(UserId id) const { return entries_[id].name; }
  std::size_t live() const { return index_.size(); }
  // Every live id with its references (tests check them against the model).
  std::vector<std::pair<UserId, std::uint32_t>> live_refs() const {
    std::vector<std::pair<UserId, std::uint32_t>> out;
    for (const auto& [name, id] : index_) out.emplace_back(id, entries_[id].refs);
    return out;
  }

 private:
  struct Entry {
    std::string name;
    std::uint32_t refs = 0;
  };
  std::vector<Entry> entries_;
  std::vector<UserId> free_;
  std::unordered_map<std::string, UserId> index_;
};

// A session as the store keeps it: values only. Runtime handles (timers) belong to the
// operations, not to the stored data.
struct SessionInfo {
  std::string session_id;
  std::int64_t started_ms = 0;
  std::int64_t expires_at_ms = 0;
};

struct TopicInfo {
  std::string topic;
  std::vector<std::string> publishers;
};

struct Snapshot {
  std::vector<std::string> members;
  std::vector<TopicInfo> topics;
};

// What leaving a channel took away, for the events that tell others.
struct Departure {
  std::string channel;
  std::vector<std::string> topics_left;  // topics the user stopped publishing in
};

struct UserResult {
  std::string uid;
  std::optional<Failure> error;  // nullopt: done
};

// What join_topic did: whether uid is a new publisher, and what became of it in the
// "all publishers" subscriptions of the topic (one result per subscriber, by name:
// added, or refused with LIMIT_SUBSCRIPTIONS when that subscription was full).
struct TopicJoin {
  bool added = false;
  std::vector<UserResult> all_subscribers;
};

struct PresenceRecord {
  bool connected = false;      // per the user's retained presence message
  std::string connection;      // session id of the connection that said so
};

// The stored form of one channel member, for a backend that persists the model: its join
// sequence (orders members and a user's channels), the topics it publishes in, and its
// subscriptions. Names only; lists in the model's order.
struct StoredSubscription {
  std::string topic;
  bool all = false;                     // "all publishers" mode
  std::vector<std::string> publishers;  // sorted by name
  std::vector<std::string> automatic;   // those added by "all" mode, sorted by name
};
struct StoredMember {
  std::uint64_t seq = 0;
  std::int64_t token_expires_at_ms = 0;  // the channel token's expiry; 0: joined without one
  std::vector<std::string> publishing;
  std::vector<StoredSubscription> subscriptions;
};
// A subscription to a message channel (RTM 2): no join, no topics; it belongs to the
// subscriber's session. With `presence` the subscriber is one of the channel's presence
// subscribers (listed, and told when others come and go); without, it only reads messages.
struct MessageChannelSubscription {
  std::string channel;
  bool presence = false;
  std::int64_t token_expires_at_ms = 0;  // the channel token's expiry; 0: none
  bool operator==(const MessageChannelSubscription& o) const {
    return channel == o.channel && presence == o.presence &&
           token_expires_at_ms == o.token_expires_at_ms;
  }
};

struct StoredSession {
  std::string uid;
  SessionInfo info;
  std::vector<std::string> watching;  // sorted by name
  std::vector<MessageChannelSubscription> message_channels;  // in subscription order
};

// Told when the store applied rows that another gateway of the cluster changed (a shared
// backend, docs/cluster.md), at the start of a turn and before anything of the turn runs:
// runtime state derived from rows (token timers, lock and inbox deadlines) follows them.
// ChangeListeners are not told: the gateway that made a change publishes what follows
// from it (events, grants).
class ReplicaListener {
 public:
  virtual ~ReplicaListener() = default;
  virtual void replicated(const ChangeSet& applied) = 0;
};

// Sizes for metrics and the state benchmark.
struct StoreStats {
  std::string backend;             // "memory", "sqlite"
  std::uint64_t file_bytes = 0;    // on disk (database and write-ahead log), 0 for memory
  std::uint64_t commits = 0;       // transactions written
  std::uint64_t commit_failures = 0;
  double last_commit_ms = 0;
};

// The seam. Everything runs on the gateway loop. Changes apply at once to the model that
// reads are served from; Durability::commit (core.hpp) makes them durable, and the core
// holds a turn's answers and events until it reports back, so that nothing a client was
// told is lost in a crash. A networked backend completes commit when its server
// acknowledges; the operations do not change.
class StateStore : public Durability {
 public:
  ~StateStore() override = default;
  // New limits apply to what comes next; nothing held now is taken away.
  virtual void set_limits(const LimitsConfig& limits) = 0;
  virtual StoreStats stats() const = 0;
  // True when changes outlive the process (the core then holds answers for commit).
  virtual bool durable() const = 0;

  // ---- sessions
  virtual bool has_session(const std::string& uid) const = 0;
  virtual std::optional<SessionInfo> session(const std::string& uid) const = 0;
  // Online: a session, or a connection that says so (retained presence).
  virtual bool online(const std::string& uid) const = 0;
  // Starts (or replaces) uid's session. A replaced session must be ended first.
  virtual void start_session(const std::string& uid, std::string session_id, std::int64_t now_ms,
                             std::int64_t expires_at_ms) = 0;
  virtual void renew_session(const std::string& uid, std::int64_t expires_at_ms) = 0;
  // Ends uid's session: leaves every channel and drops its watches.
  virtual std::vector<Departure> end_session(const std::string& uid) = 0;
  virtual std::size_t session_count() const = 0;
  virtual std::vector<std::string> session_uids() const = 0;

  // ---- channels (the caller checks the session)
  // Joins (idempotent: a second join answers the snapshot again). `joined` tells if new.
  virtual Outcome<Snapshot> join(const std::string& uid, const std::string& channel,
                                 bool* joined) = 0;
  virtual Outcome<Departure> leave(const std::string& uid, const std::string& channel) = 0;
  virtual bool is_member(const std::string& uid, const std::string& channel) const = 0;
  virtual Outcome<std::vector<std::string>> members(const std::string& channel) const = 0;
  virtual std::vector<std::string> channels_of(const std::string& uid) const = 0;
  virtual Snapshot snapshot(const std::string& channel) const = 0;
  virtual std::size_t channel_count() const = 0;
  // The channel token of a member (0: none); false when uid is not a member.
  virtual bool set_member_token(const std::string& uid, const std::string& channel,
                                std::int64_t expires_at_ms) = 0;
  virtual std::int64_t member_token(const std::string& uid, const std::string& channel) const = 0;

  // ---- message channels (RTM 2): subscriptions of a session, no join. A subscription
  // again replaces the first (presence, token) and answers false; a new one answers true.
  // Limits: limits.message_channels_per_user (LIMIT_CHANNELS),
  // limits.subscribers_per_message_channel (LIMIT_MEMBERS). Ended with the session.
  virtual Outcome<bool> subscribe_channel(const std::string& uid,
                                          const MessageChannelSubscription& subscription) = 0;
  // What the subscription was; NOT_SUBSCRIBED when there is none.
  virtual Outcome<MessageChannelSubscription> unsubscribe_channel(const std::string& uid,
                                                                  const std::string& channel) = 0;
  virtual std::optional<MessageChannelSubscription> message_channel(
      const std::string& uid, const std::string& channel) const = 0;
  virtual std::vector<MessageChannelSubscription> message_channels_of(
      const std::string& uid) const = 0;
  // The channel's subscribers in subscription order; only those with presence if asked.
  virtual std::vector<std::string> channel_subscribers(const std::string& channel,
                                                       bool presence_only) const = 0;
  virtual std::size_t message_channel_count() const = 0;

  // ---- topics: `added`/`removed` tell whether anything changed. A new publisher joins
  // every "all publishers" subscription of the topic that has room, before this returns.
  virtual Outcome<TopicJoin> join_topic(const std::string& uid, const std::string& channel,
                                        const std::string& topic) = 0;
  virtual Outcome<bool> leave_topic(const std::string& uid, const std::string& channel,
                                    const std::string& topic) = 0;
  virtual std::vector<std::string> publishers(const std::string& channel,
                                              const std::string& topic) const = 0;
  virtual bool is_publisher(const std::string& uid, const std::string& channel,
                            const std::string& topic) const = 0;

  // ---- subscriptions: at most limits.publishers_per_subscription per (uid, channel, topic)
  virtual Outcome<std::vector<UserResult>> subscribe(const std::string& uid,
                                                     const std::string& channel,
                                                     const std::string& topic,
                                                     const std::vector<std::string>& users) = 0;
  virtual Outcome<std::vector<UserResult>> unsubscribe(const std::string& uid,
                                                       const std::string& channel,
                                                       const std::string& topic,
                                                       const std::vector<std::string>& users) = 0;
  virtual Outcome<std::vector<std::string>> subscribed(const std::string& uid,
                                                       const std::string& channel,
                                                       const std::string& topic) const = 0;
  // "All publishers" mode: every publisher of the topic but uid itself, now and later, as
  // long as the subscription has room. Results are per current publisher, in name order.
  // A publisher added this way leaves the subscription when it stops publishing there;
  // one subscribed to by name stays (as with subscribe).
  virtual Outcome<std::vector<UserResult>> subscribe_all(const std::string& uid,
                                                         const std::string& channel,
                                                         const std::string& topic) = 0;
  // Ends "all" mode and removes every publisher of the subscription (one result each).
  virtual Outcome<std::vector<UserResult>> unsubscribe_all(const std::string& uid,
                                                           const std::string& channel,
                                                           const std::string& topic) = 0;
  virtual bool subscribes_all(const std::string& uid, const std::string& channel,
                              const std::string& topic) const = 0;
  virtual std::size_t subscription_count() const = 0;

  // ---- presence watches (belong to the watcher's session)
  virtual Outcome<std::vector<UserResult>> watch(const std::string& uid,
                                                 const std::vector<std::string>& users) = 0;
  virtual std::vector<UserResult> unwatch(const std::string& uid,
                                          const std::vector<std::string>& users) = 0;
  virtual std::vector<std::string> watchers_of(const std::string& uid) const = 0;

  // ---- connection presence (retained P/presence/{uid}): not stored, the broker keeps it
  // and the gateway reads it again at start-up.
  virtual std::optional<PresenceRecord> presence(const std::string& uid) const = 0;
  virtual void set_presence(const std::string& uid, bool connected, std::string connection) = 0;
  virtual void forget_presence(const std::string& uid) = 0;

  // ---- user and channel metadata (metadata_store.hpp), in the same commits as the rest;
  // subscriptions to a user's metadata end with the subscriber's session.
  virtual MetadataStore& metadata() = 0;
  virtual const MetadataStore& metadata() const = 0;
  // ---- presence states (presence_state_store.hpp): in memory only, ended with membership.
  virtual PresenceStateStore& states() = 0;
  virtual const PresenceStateStore& states() const = 0;

  // ---- the locks of each channel (lock_store.hpp), in the same commits as the rest; the
  // lock operations keep their holders and waiters members (docs/protocol.md, "Locks").
  virtual LockStore& locks() = 0;
  virtual const LockStore& locks() const = 0;

  // ---- peer messages kept for users without a live session (inbox_store.hpp), in the
  // same commits as the rest.
  virtual InboxStore& inbox() = 0;
  virtual const InboxStore& inbox() const = 0;

  // ---- call invitations in flight (invitation_store.hpp), in the same commits as the rest.
  virtual InvitationStore& invitations() = 0;
  virtual const InvitationStore& invitations() const = 0;

  // ---- for readers of whole rows (durable backends, the broker's grant feed)
  // Tells `listener` of every change by key from now on (not owned; it must outlive its
  // registration); remove_change_listener ends that.
  virtual void add_change_listener(ChangeListener* listener) = 0;
  virtual void remove_change_listener(ChangeListener* listener) = 0;
  // Rows applied from other gateways (shared backends only; the others never call it).
  virtual void add_replica_listener(ReplicaListener* listener) { (void)listener; }
  virtual void remove_replica_listener(ReplicaListener* listener) { (void)listener; }
  // Work that is not a change of rows but must happen once across a cluster (a "will
  // expire" warning that every gateway's timer sees): true for the first caller of `key`
  // within ttl_ms. A store of one gateway always answers true.
  virtual bool claim_once(const std::string& key, std::int64_t ttl_ms) {
    (void)key;
    (void)ttl_ms;
    return true;
  }
  virtual std::optional<StoredSession> stored_session(const std::string& uid) const = 0;
  virtual std::optional<StoredMember> stored_member(const std::string& channel,
                                                    const std::string& uid) const = 0;
  // Every stored row, in an order that restores the same model (tests, full rewrites).
  virtual void for_each_session(const std::function<void(const StoredSession&)>& visit) const = 0;
  virtual void for_each_member(
      const std::function<void(const std::string& channel, const std::string& uid,
                               const StoredMember&)>& visit) const = 0;
};

// The model in memory; the "memory" backend. A durable backend builds on it: it listens
// to its changes, reads the changed rows back, and restores it at start-up.
class MemoryStore : public StateStore {
 public:
  explicit MemoryStore(const LimitsConfig& limits) : limits_(limits) {}

  void set_limits(const LimitsConfig& limits) override { limits_ = limits; }
  StoreStats stats() const override { return {"memory", 0, 0, 0, 0}; }
  bool durable() const override { return false; }
  void remember_answer(StoredAnswer) override {}
  void commit(std::function<void(bool ok)> done) override { done(true); }
  std::vector<StoredAnswer> stored_answers(std::int64_t) override { return {}; }

  bool has_session(const std::string& uid) const override { return sessions_.count(uid) != 0; }
  std::optional<SessionInfo> session(const std::string& uid) const override;
  bool online(const std::string& uid) const override;
  void start_session(const std::string& uid, std::string session_id, std::int64_t now_ms,
                     std::int64_t expires_at_ms) override;
  void renew_session(const std::string& uid, std::int64_t expires_at_ms) override;
  std::vector<Departure> end_session(const std::string& uid) override;
  std::size_t session_count() const override { return sessions_.size(); }
  std::vector<std::string> session_uids() const override;

  Outcome<Snapshot> join(const std::string& uid, const std::string& channel,
                         bool* joined) override;
  Outcome<Departure> leave(const std::string& uid, const std::string& channel) override;
  bool is_member(const std::string& uid, const std::string& channel) const override;
  Outcome<std::vector<std::string>> members(const std::string& channel) const override;
  std::vector<std::string> channels_of(const std::string& uid) const override;
  Snapshot snapshot(const std::string& channel) const override;
  std::size_t channel_count() const override { return channels_.size(); }
  bool set_member_token(const std::string& uid, const std::string& channel,
                        std::int64_t expires_at_ms) override;
  std::int64_t member_token(const std::string& uid, const std::string& channel) const override;

  Outcome<bool> subscribe_channel(const std::string& uid,
                                  const MessageChannelSubscription& subscription) override;
  Outcome<MessageChannelSubscription> unsubscribe_channel(const std::string& uid,
                                                          const std::string& channel) override;
  std::optional<MessageChannelSubscription> message_channel(
      const std::string& uid, const std::string& channel) const override;
  std::vector<MessageChannelSubscription> message_channels_of(
      const std::string& uid) const override;
  std::vector<std::string> channel_subscribers(const std::string& channel,
                                               bool presence_only) const override;
  std::size_t message_channel_count() const override { return message_channels_.size(); }

  Outcome<TopicJoin> join_topic(const std::string& uid, const std::string& channel,
                                const std::string& topic) override;
  Outcome<bool> leave_topic(const std::string& uid, const std::string& channel,
                            const std::string& topic) override;
  std::vector<std::string> publishers(const std::string& channel,
                                      const std::string& topic) const override;
  bool is_publisher(const std::string& uid, const std::string& channel,
                    const std::string& topic) const override;

  Outcome<std::vector<UserResult>> subscribe(const std::string& uid, const std::string& channel,
                                             const std::string& topic,
                                             const std::vector<std::string>& users) override;
  Outcome<std::vector<UserResult>> unsubscribe(const std::string& uid,
                                               const std::string& channel,
                                               const std::string& topic,
                                               const std::vector<std::string>& users) override;
  Outcome<std::vector<std::string>> subscribed(const std::string& uid, const std::string& channel,
                                               const std::string& topic) const override;
  Outcome<std::vector<UserResult>> subscribe_all(const std::string& uid,
                                                 const std::string& channel,
                                                 const std::string& topic) override;
  Outcome<std::vector<UserResult>> unsubscribe_all(const std::string& uid,
                                                   const std::string& channel,
                                                   const std::string& topic) override;
  bool subscribes_all(const std::string& uid, const std::string& channel,
                      const std::string& topic) const override;
  std::size_t subscription_count() const override { return subscription_count_; }

  Outcome<std::vector<UserResult>> watch(const std::string& uid,
                                         const std::vector<std::string>& users) override;
  std::vector<UserResult> unwatch(const std::string& uid,
                                  const std::vector<std::string>& users) override;
  std::vector<std::string> watchers_of(const std::string& uid) const override;

  std::optional<PresenceRecord> presence(const std::string& uid) const override;
  void set_presence(const std::string& uid, bool connected, std::string connection) override;
  void forget_presence(const std::string& uid) override;

  MetadataStore& metadata() override { return metadata_; }
  const MetadataStore& metadata() const override { return metadata_; }
  PresenceStateStore& states() override { return states_; }
  const PresenceStateStore& states() const override { return states_; }
  LockStore& locks() override { return locks_; }
  const LockStore& locks() const override { return locks_; }
  InboxStore& inbox() override { return inbox_; }
  const InboxStore& inbox() const override { return inbox_; }
  InvitationStore& invitations() override { return invitations_; }
  const InvitationStore& invitations() const override { return invitations_; }

  void add_change_listener(ChangeListener* listener) override { listeners_.push_back(listener); }
  void remove_change_listener(ChangeListener* listener) override;
  std::optional<StoredSession> stored_session(const std::string& uid) const override;
  std::optional<StoredMember> stored_member(const std::string& channel,
                                            const std::string& uid) const override;
  void for_each_session(const std::function<void(const StoredSession&)>& visit) const override;
  void for_each_member(
      const std::function<void(const std::string& channel, const std::string& uid,
                               const StoredMember&)>& visit) const override;
  // Every connection presence record (tests compare stored and restored models).
  void for_each_presence(
      const std::function<void(const std::string& uid, const PresenceRecord&)>& visit) const {
    for (const auto& [uid, record] : presence_) visit(uid, record);
  }

  // ---- for durable and shared backends
  // Notes in `keys` the key of every row that changes from now on (nullptr: no longer): the
  // model's, its sub-stores' and connection presence; presence states only when asked (a
  // shared backend sends them to the other gateways, one on disk does not keep them).
  void track_rows(ChangeSet* keys, bool presence_states);
  // A connection presence record as another gateway holds it (none: forgotten), unnoted.
  void apply_presence(const std::string& uid, const std::optional<PresenceRecord>& record);

  // Restoring at start-up, without limits or events: sessions first (their watches may
  // name users not restored yet), then members in sequence order. False (and nothing
  // changed) when a member's session is missing.
  void restore_session(const StoredSession& session);
  bool restore_member(const std::string& channel, const std::string& uid,
                      const StoredMember& member);

  // ---- for shared backends (rtm/gateway/replica.hpp): replace or erase one row as another
  // gateway wrote it, without limits, events or listeners, keeping every index whole.
  // Session: info, watches and message channels (its channels follow its member rows);
  // erasing it erases its members and metadata subscriptions too.
  void apply_session(const std::string& uid, const std::optional<StoredSession>& session);
  // Member: only this member's own data (seq, token, topics, its subscriptions); other
  // members' subscriptions come in their own rows. False (nothing changed) when the put
  // names a user without a session.
  bool apply_member(const std::string& channel, const std::string& uid,
                    const std::optional<StoredMember>& member);
  // Empties the model but the limits and listeners; presence states go too (like a restart).
  void clear_model();
  // The sub-stores' models, for shared backends that read and replace their rows.
  MemoryMetadataStore& metadata_model() { return metadata_; }
  const MemoryMetadataStore& metadata_model() const { return metadata_; }
  MemoryLockStore& locks_model() { return locks_; }
  const MemoryLockStore& locks_model() const { return locks_; }
  MemoryInboxStore& inbox_model() { return inbox_; }
  const MemoryInboxStore& inbox_model() const { return inbox_; }
  MemoryInvitationStore& invitations_model() { return invitations_; }
  const MemoryInvitationStore& invitations_model() const { return invitations_; }
  MemoryPresenceStateStore& states_model() { return states_; }
  const MemoryPresenceStateStore& states_model() const { return states_; }
  // What is inconsistent among the model's indexes (interned names and their references,
  // watchers, message channel subscribers, join orders, topics, counts); empty: nothing.
  // For tests.
  std::vector<std::string> index_problems() const;

 private:
  struct Session {
    SessionInfo info;
    std::vector<std::string> channels;  // joined, in join order
    std::vector<UserId> watching;       // sorted
    std::vector<MessageChannelSubscription> message_channels;  // in subscription order
  };
  struct Subscription {
    std::vector<UserId> publishers;  // sorted
    std::vector<UserId> automatic;   // sorted, part of publishers: added by "all" mode
    bool all = false;
    bool empty() const { return publishers.empty() && !all; }
  };
  struct Topic {
    std::vector<UserId> publishers;                         // sorted
    std::unordered_map<UserId, Subscription> subscriptions;  // by subscriber
    bool empty() const { return publishers.empty() && subscriptions.empty(); }
  };
  struct Member {
    std::uint64_t seq = 0;                 // join order, across channels
    std::int64_t token_expires_at_ms = 0;  // channel token, 0: none
    std::vector<std::string> publishing;   // topics
    std::vector<std::string> subscribing;  // topics with a subscription of this member
  };
  struct Channel {
    std::unordered_map<UserId, Member> members;
    std::vector<UserId> join_order;  // for stable snapshots
    std::unordered_map<std::string, Topic> topics;
  };

  Channel* find_channel(const std::string& channel);
  const Channel* find_channel(const std::string& channel) const;
  Outcome<Member*> membership(const std::string& uid, const std::string& channel, Channel** out);
  void drop_subscription(Channel& ch, const std::string& topic, UserId subscriber);
  void drop_membership(Channel& ch, const std::string& channel, const std::string& uid, UserId id);
  Outcome<Subscription*> open_subscription(const std::string& uid, const std::string& channel,
                                           const std::string& topic, Member& member, Channel& ch);
  std::vector<UserResult> add_to_all(const std::string& channel, Topic& t, UserId publisher);
  bool remove_publisher(const std::string& channel, Channel& ch, const std::string& topic,
                        UserId publisher);
  Failure subscription_full(const std::string& uid, const std::string& channel,
                            const std::string& topic, std::size_t size) const;
  void remove_watches(const std::string& uid, Session& session);
  void erase_member(const std::string& channel, const std::string& uid);
  void replace_watches(const std::string& uid, Session& session,
                       const std::vector<std::string>& watching);
  void replace_message_channels(const std::string& uid, Session& session,
                                const std::vector<MessageChannelSubscription>& subscriptions);
  void place_member(Channel& ch, const std::string& channel, UserId id, std::uint64_t seq,
                    Session& session);
  std::vector<std::string> names(const std::vector<UserId>& ids) const;
  void note_session(const std::string& uid) {
    for (auto* l : listeners_) l->session_changed(uid);
  }
  void note_member(const std::string& channel, UserId uid) {
    for (auto* l : listeners_) l->member_changed(channel, users_.name(uid));
  }

  LimitsConfig limits_;
  Interner users_;
  std::unordered_map<std::string, Session> sessions_;
  std::unordered_map<std::string, Channel> channels_;
  std::unordered_map<UserId, std::vector<UserId>> watchers_;  // watched -> watchers
  std::unordered_map<std::string, PresenceRecord> presence_;
  // message channel -> its subscribers, in subscription order
  std::unordered_map<std::string, std::vector<std::string>> message_channels_;
  std::size_t subscription_count_ = 0;
  std::uint64_t next_seq_ = 1;
  std::vector<ChangeListener*> listeners_;
  ChangeSet* tracked_ = nullptr;  // see track_rows

 protected:
  MemoryMetadataStore metadata_;
  MemoryPresenceStateStore states_;
  MemoryLockStore locks_;
  MemoryInboxStore inbox_;
  MemoryInvitationStore invitations_;
};

// Builds the backend that config.state names (memory, sqlite; redis: RedisStore), restored from
// what it stored. Throws std::runtime_error at start-up when it cannot (a corrupt or newer file, no
// access).
std::shared_ptr<StateStore> make_state_store(const Config& config);
// The limits of config (limits, storage, inbox, invitations) on every part of `store`.
void set_store_limits(StateStore& store, const Config& config);

}  // namespace rtm::gateway
