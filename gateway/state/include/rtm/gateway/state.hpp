#pragma once
// RTM state as plain data: sessions, channels, topic publishers, subscriptions,
// watches and presence. No I/O and no clock: callers pass the time and turn the
// returned changes into events. User names are interned to small ids, so a
// subscription costs a few bytes, not a string.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/config.hpp"
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

 private:
  struct Entry {
    std::string name;
    std::uint32_t refs = 0;
  };
  std::vector<Entry> entries_;
  std::vector<UserId> free_;
  std::unordered_map<std::string, UserId> index_;
};

struct Session {
  std::string session_id;
  std::int64_t started_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::vector<std::string> channels;  // joined, in join order
  std::vector<UserId> watching;       // sorted
  std::uint64_t timer = 0;            // the token timer of the session (Timers::Id), 0: none
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

class State {
 public:
  explicit State(const LimitsConfig& limits) : limits_(limits) {}
  // New limits apply to what comes next; nothing held now is taken away.
  void set_limits(const LimitsConfig& limits) { limits_ = limits; }
  std::size_t channel_count() const { return channels_.size(); }

  // ---- sessions
  const Session* session(const std::string& uid) const;
  Session* mutable_session(const std::string& uid);
  bool online(const std::string& uid) const;
  // Starts (or replaces) uid's session. A replaced session must be ended first.
  Session& start_session(const std::string& uid, std::string session_id, std::int64_t now_ms,
                         std::int64_t expires_at_ms);
  void renew_session(const std::string& uid, std::int64_t expires_at_ms);
  // Ends uid's session: leaves every channel and drops its watches.
  std::vector<Departure> end_session(const std::string& uid);
  std::size_t session_count() const { return sessions_.size(); }
  std::vector<std::string> session_uids() const;

  // ---- channels (the caller checks the session)
  // Joins (idempotent: a second join answers the snapshot again). `joined` tells if new.
  Outcome<Snapshot> join(const std::string& uid, const std::string& channel, bool* joined);
  Outcome<Departure> leave(const std::string& uid, const std::string& channel);
  bool is_member(const std::string& uid, const std::string& channel) const;
  Outcome<std::vector<std::string>> members(const std::string& channel) const;
  std::vector<std::string> channels_of(const std::string& uid) const;
  Snapshot snapshot(const std::string& channel) const;

  // ---- topics: `added`/`removed` tell whether anything changed. A new publisher joins
  // every "all publishers" subscription of the topic that has room, before this returns.
  Outcome<TopicJoin> join_topic(const std::string& uid, const std::string& channel,
                                const std::string& topic);
  Outcome<bool> leave_topic(const std::string& uid, const std::string& channel,
                            const std::string& topic);
  std::vector<std::string> publishers(const std::string& channel, const std::string& topic) const;

  // ---- subscriptions: at most limits.publishers_per_subscription per (uid, channel, topic)
  Outcome<std::vector<UserResult>> subscribe(const std::string& uid, const std::string& channel,
                                             const std::string& topic,
                                             const std::vector<std::string>& users);
  Outcome<std::vector<UserResult>> unsubscribe(const std::string& uid, const std::string& channel,
                                               const std::string& topic,
                                               const std::vector<std::string>& users);
  Outcome<std::vector<std::string>> subscribed(const std::string& uid, const std::string& channel,
                                               const std::string& topic) const;
  // "All publishers" mode: every publisher of the topic but uid itself, now and later, as
  // long as the subscription has room. Results are per current publisher, in name order.
  // A publisher added this way leaves the subscription when it stops publishing there;
  // one subscribed to by name stays (as with subscribe).
  Outcome<std::vector<UserResult>> subscribe_all(const std::string& uid, const std::string& channel,
                                                 const std::string& topic);
  // Ends "all" mode and removes every publisher of the subscription (one result each).
  Outcome<std::vector<UserResult>> unsubscribe_all(const std::string& uid,
                                                   const std::string& channel,
                                                   const std::string& topic);
  bool subscribes_all(const std::string& uid, const std::string& channel,
                      const std::string& topic) const;
  std::size_t subscription_count() const { return subscription_count_; }

  // ---- presence watches (belong to the watcher's session)
  Outcome<std::vector<UserResult>> watch(const std::string& uid,
                                         const std::vector<std::string>& users);
  std::vector<UserResult> unwatch(const std::string& uid, const std::vector<std::string>& users);
  std::vector<std::string> watchers_of(const std::string& uid) const;

  // ---- connection presence (retained P/presence/{uid})
  const PresenceRecord* presence(const std::string& uid) const;
  void set_presence(const std::string& uid, bool connected, std::string connection);
  void forget_presence(const std::string& uid) { presence_.erase(uid); }

 private:
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
  Outcome<Subscription*> open_subscription(const std::string& uid, const std::string& channel,
                                           const std::string& topic, Member& member, Channel& ch);
  std::vector<UserResult> add_to_all(Topic& t, UserId publisher);
  bool remove_publisher(Channel& ch, const std::string& topic, UserId publisher);
  Failure subscription_full(const std::string& uid, const std::string& channel,
                            const std::string& topic, std::size_t size) const;
  void remove_watches(const std::string& uid, Session& session);

  LimitsConfig limits_;
  Interner users_;
  std::unordered_map<std::string, Session> sessions_;
  std::unordered_map<std::string, Channel> channels_;
  std::unordered_map<UserId, std::vector<UserId>> watchers_;  // watched -> watchers
  std::unordered_map<std::string, PresenceRecord> presence_;
  std::size_t subscription_count_ = 0;
};

}  // namespace rtm::gateway
