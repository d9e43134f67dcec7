#include "rtm/gateway/state.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace rtm::gateway {
namespace {

template <class T>
bool sorted_insert(std::vector<T>& v, const T& x) {
  auto it = std::lower_bound(v.begin(), v.end(), x);
  if (it != v.end() && *it == x) return false;
  v.insert(it, x);
  return true;
}

template <class T>
bool sorted_erase(std::vector<T>& v, const T& x) {
  auto it = std::lower_bound(v.begin(), v.end(), x);
  if (it == v.end() || *it != x) return false;
  v.erase(it);
  return true;
}

bool erase_value(std::vector<std::string>& v, const std::string& x) {
  auto it = std::find(v.begin(), v.end(), x);
  if (it == v.end()) return false;
  v.erase(it);
  return true;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool contains_channel(const std::vector<MessageChannelSubscription>& v, const std::string& c) {
  return std::any_of(v.begin(), v.end(), [&](const auto& s) { return s.channel == c; });
}

Failure not_joined(const std::string& uid, const std::string& channel) {
  return failure(ErrorCode::not_joined, uid + " has not joined channel " + channel);
}

}  // namespace

// ---------------------------------------------------------------- Interner

UserId Interner::acquire(const std::string& name) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    ++entries_[it->second].refs;
    return it->second;
  }
  UserId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<UserId>(entries_.size());
    entries_.emplace_back();
  }
  entries_[id].name = name;
  entries_[id].refs = 1;
  index_.emplace(name, id);
  return id;
}

void Interner::release(UserId id) {
  auto& e = entries_[id];
  if (e.refs == 0) return;
  if (--e.refs == 0) {
    index_.erase(e.name);
    e.name = std::string();  // give the memory back
    free_.push_back(id);
  }
}

std::optional<UserId> Interner::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------- sessions

std::optional<SessionInfo> MemoryStore::session(const std::string& uid) const {
  auto it = sessions_.find(uid);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.info;
}

bool MemoryStore::online(const std::string& uid) const {
  if (sessions_.count(uid)) return true;
  auto it = presence_.find(uid);
  return it != presence_.end() && it->second.connected;
}

void MemoryStore::start_session(const std::string& uid, std::string session_id,
                                std::int64_t now_ms, std::int64_t expires_at_ms) {
  // Callers end a replaced session first (with its events); this keeps the state whole
  // if one ever does not.
  if (sessions_.count(uid)) end_session(uid);
  auto& s = sessions_[uid];
  s = Session{};
  s.info.session_id = std::move(session_id);
  s.info.started_ms = now_ms;
  s.info.expires_at_ms = expires_at_ms;
  note_session(uid);
}

void MemoryStore::renew_session(const std::string& uid, std::int64_t expires_at_ms) {
  auto it = sessions_.find(uid);
  if (it == sessions_.end()) return;
  it->second.info.expires_at_ms = expires_at_ms;
  note_session(uid);
}

std::vector<Departure> MemoryStore::end_session(const std::string& uid) {
  std::vector<Departure> gone;
  auto it = sessions_.find(uid);
  if (it == sessions_.end()) return gone;
  const auto channels = it->second.channels;
  for (const auto& channel : channels) {
    auto d = leave(uid, channel);
    if (d) gone.push_back(std::move(d.value()));
  }
  remove_watches(uid, it->second);
  for (const auto& sub : it->second.message_channels) {
    auto subs = message_channels_.find(sub.channel);
    if (subs == message_channels_.end()) continue;
    erase_value(subs->second, uid);
    if (subs->second.empty()) message_channels_.erase(subs);
  }
  metadata_.drop_subscriptions(uid);
  sessions_.erase(it);
  note_session(uid);
  return gone;
}

// ---------------------------------------------------------------- channels

MemoryStore::Channel* MemoryStore::find_channel(const std::string& channel) {
  auto it = channels_.find(channel);
  return it == channels_.end() ? nullptr : &it->second;
}

const MemoryStore::Channel* MemoryStore::find_channel(const std::string& channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? nullptr : &it->second;
}

Outcome<MemoryStore::Member*> MemoryStore::membership(const std::string& uid, const std::string& channel,
                                          Channel** out) {
  auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  if (!ch || !id) return not_joined(uid, channel);
  auto m = ch->members.find(*id);
  if (m == ch->members.end()) return not_joined(uid, channel);
  *out = ch;
  return &m->second;
}

bool MemoryStore::is_member(const std::string& uid, const std::string& channel) const {
  const auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  return ch && id && ch->members.count(*id);
}

Snapshot MemoryStore::snapshot(const std::string& channel) const {
  Snapshot snap;
  const auto* ch = find_channel(channel);
  if (!ch) return snap;
  snap.members.reserve(ch->join_order.size());
  for (auto id : ch->join_order) snap.members.push_back(users_.name(id));
  for (const auto& [name, topic] : ch->topics) {
    if (topic.publishers.empty()) continue;
    TopicInfo info{name, {}};
    for (auto id : topic.publishers) info.publishers.push_back(users_.name(id));
    std::sort(info.publishers.begin(), info.publishers.end());
    snap.topics.push_back(std::move(info));
  }
  std::sort(snap.topics.begin(), snap.topics.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.topic < b.topic; });
  return snap;
}

Outcome<Snapshot> MemoryStore::join(const std::string& uid, const std::string& channel, bool* joined) {
  *joined = false;
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return failure(ErrorCode::not_logged_in, uid + " is not logged in");
  if (is_member(uid, channel)) return snapshot(channel);
  if (static_cast<int>(s->second.channels.size()) >= limits_.channels_per_user) {
    return failure(ErrorCode::limit_channels,
                   uid + " is in " + std::to_string(s->second.channels.size()) +
                       " channels already, the limit (limits.channels_per_user)");
  }
  auto* existing = find_channel(channel);
  if (existing && static_cast<int>(existing->members.size()) >= limits_.members_per_channel) {
    return failure(ErrorCode::limit_members,
                   "channel " + channel + " has " + std::to_string(existing->members.size()) +
                       " members already, the limit (limits.members_per_channel)");
  }
  auto& ch = channels_[channel];
  const UserId id = users_.acquire(uid);
  Member member;
  member.seq = next_seq_++;
  ch.members.emplace(id, std::move(member));
  ch.join_order.push_back(id);
  s->second.channels.push_back(channel);
  *joined = true;
  note_member(channel, id);
  return snapshot(channel);
}

Outcome<Departure> MemoryStore::leave(const std::string& uid, const std::string& channel) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  const UserId id = *users_.find(uid);
  Departure d{channel, {}};
  Member member = std::move(*m.value());
  for (const auto& topic : member.publishing) {
    if (remove_publisher(channel, *ch, topic, id)) d.topics_left.push_back(topic);
  }
  for (const auto& topic : member.subscribing) drop_subscription(*ch, topic, id);
  note_member(channel, id);  // before its name may be released
  drop_membership(*ch, channel, uid, id);
  return d;
}

// The last of a member: its states, its place in the channel and the session's list, its
// reference to the name, and the channel when it was the last member.
void MemoryStore::drop_membership(Channel& ch, const std::string& channel, const std::string& uid,
                                  UserId id) {
  states_.membership_ended(channel, uid);
  ch.members.erase(id);
  ch.join_order.erase(std::find(ch.join_order.begin(), ch.join_order.end(), id));
  users_.release(id);
  if (ch.members.empty()) channels_.erase(channel);
  if (auto s = sessions_.find(uid); s != sessions_.end()) erase_value(s->second.channels, channel);
}

Outcome<std::vector<std::string>> MemoryStore::members(const std::string& channel) const {
  std::vector<std::string> out;
  if (const auto* ch = find_channel(channel)) {
    for (auto id : ch->join_order) out.push_back(users_.name(id));
  }
  return out;
}

std::vector<std::string> MemoryStore::channels_of(const std::string& uid) const {
  auto s = sessions_.find(uid);
  return s == sessions_.end() ? std::vector<std::string>{} : s->second.channels;
}

// ---------------------------------------------------------------- topics

Outcome<TopicJoin> MemoryStore::join_topic(const std::string& uid, const std::string& channel,
                                     const std::string& topic) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  Member& member = *m.value();
  TopicJoin out;
  if (contains(member.publishing, topic)) return out;
  if (static_cast<int>(member.publishing.size()) >= limits_.topics_per_channel) {
    return failure(ErrorCode::limit_topics,
                   uid + " publishes in " + std::to_string(member.publishing.size()) +
                       " topics of channel " + channel +
                       " already, the limit (limits.topics_per_channel)");
  }
  member.publishing.push_back(topic);
  const UserId id = users_.acquire(uid);
  Topic& t = ch->topics[topic];
  sorted_insert(t.publishers, id);
  out.added = true;
  out.all_subscribers = add_to_all(channel, t, id);
  note_member(channel, id);
  return out;
}

Outcome<bool> MemoryStore::leave_topic(const std::string& uid, const std::string& channel,
                                 const std::string& topic) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  if (!erase_value(m.value()->publishing, topic)) return false;
  const UserId id = *users_.find(uid);
  note_member(channel, id);
  remove_publisher(channel, *ch, topic, id);
  return true;
}

// Takes `publisher` out of the topic's publishers and out of the "all" subscriptions that
// added it; subscriptions by name stay. False if it was not a publisher there.
bool MemoryStore::remove_publisher(const std::string& channel, Channel& ch,
                                   const std::string& topic, UserId publisher) {
  auto t = ch.topics.find(topic);
  if (t == ch.topics.end()) return false;
  const bool was = sorted_erase(t->second.publishers, publisher);
  if (was) users_.release(publisher);
  std::vector<UserId> emptied;
  for (auto& [subscriber, sub] : t->second.subscriptions) {
    if (!sorted_erase(sub.automatic, publisher)) continue;
    sorted_erase(sub.publishers, publisher);
    users_.release(publisher);
    --subscription_count_;
    note_member(channel, subscriber);
    if (sub.empty()) emptied.push_back(subscriber);
  }
  for (auto subscriber : emptied) {
    if (auto member = ch.members.find(subscriber); member != ch.members.end()) {
      erase_value(member->second.subscribing, topic);
    }
    drop_subscription(ch, topic, subscriber);  // may erase the topic
  }
  if (emptied.empty() && t->second.empty()) ch.topics.erase(t);
  return was;
}

std::vector<std::string> MemoryStore::publishers(const std::string& channel,
                                           const std::string& topic) const {
  std::vector<std::string> out;
  const auto* ch = find_channel(channel);
  if (!ch) return out;
  auto t = ch->topics.find(topic);
  if (t == ch->topics.end()) return out;
  for (auto id : t->second.publishers) out.push_back(users_.name(id));
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- subscriptions

void MemoryStore::drop_subscription(Channel& ch, const std::string& topic, UserId subscriber) {
  auto t = ch.topics.find(topic);
  if (t == ch.topics.end()) return;
  auto s = t->second.subscriptions.find(subscriber);
  if (s == t->second.subscriptions.end()) return;
  for (auto p : s->second.publishers) users_.release(p);
  subscription_count_ -= s->second.publishers.size();
  t->second.subscriptions.erase(s);
  users_.release(subscriber);
  if (t->second.empty()) ch.topics.erase(t);
}

Failure MemoryStore::subscription_full(const std::string& uid, const std::string& channel,
                                 const std::string& topic, std::size_t size) const {
  return failure(ErrorCode::limit_subscriptions,
                 uid + " subscribes to " + std::to_string(size) + " publishers of " + channel +
                     "/" + topic + " already, the limit (limits.publishers_per_subscription)");
}

// The caller's subscription record for (channel, topic), made if new (within
// limits.subscribed_topics_per_channel). The caller drops it again if it stays empty.
Outcome<MemoryStore::Subscription*> MemoryStore::open_subscription(const std::string& uid,
                                                       const std::string& channel,
                                                       const std::string& topic, Member& member,
                                                       Channel& ch) {
  if (!contains(member.subscribing, topic) &&
      static_cast<int>(member.subscribing.size()) >= limits_.subscribed_topics_per_channel) {
    return failure(ErrorCode::limit_subscriptions,
                   uid + " subscribes in " + std::to_string(member.subscribing.size()) +
                       " topics of channel " + channel +
                       " already, the limit (limits.subscribed_topics_per_channel)");
  }
  const UserId self = *users_.find(uid);
  auto [sub, created] = ch.topics[topic].subscriptions.try_emplace(self);
  if (created) {
    users_.acquire(uid);
    member.subscribing.push_back(topic);
  }
  return &sub->second;
}

// A new publisher of `t` joins its "all" subscriptions that have room (not its own).
std::vector<UserResult> MemoryStore::add_to_all(const std::string& channel, Topic& t,
                                                UserId publisher) {
  std::vector<UserResult> results;
  for (auto& [subscriber, sub] : t.subscriptions) {
    if (!sub.all || subscriber == publisher) continue;
    UserResult r{users_.name(subscriber), std::nullopt};
    if (std::binary_search(sub.publishers.begin(), sub.publishers.end(), publisher)) {
      results.push_back(std::move(r));  // subscribed to by name already
      continue;
    }
    if (static_cast<int>(sub.publishers.size()) >= limits_.publishers_per_subscription) {
      r.error = failure(ErrorCode::limit_subscriptions,
                        "not subscribed to " + users_.name(publisher) + ": " + r.uid +
                            " subscribes to " + std::to_string(sub.publishers.size()) +
                            " publishers of this topic already, the limit "
                            "(limits.publishers_per_subscription)");
    } else {
      sorted_insert(sub.publishers, users_.retain(publisher));
      sorted_insert(sub.automatic, publisher);
      ++subscription_count_;
      note_member(channel, subscriber);
    }
    results.push_back(std::move(r));
  }
  std::sort(results.begin(), results.end(),
            [](const UserResult& a, const UserResult& b) { return a.uid < b.uid; });
  return results;
}

Outcome<std::vector<UserResult>> MemoryStore::subscribe(const std::string& uid,
                                                  const std::string& channel,
                                                  const std::string& topic,
                                                  const std::vector<std::string>& users) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  note_member(channel, *users_.find(uid));
  Member& member = *m.value();
  auto opened = open_subscription(uid, channel, topic, member, *ch);
  if (!opened) return opened.error();
  Subscription& sub = *opened.value();
  std::vector<UserResult> results;
  for (const auto& user : users) {
    UserResult r{user, std::nullopt};
    auto existing = users_.find(user);
    if (existing && std::binary_search(sub.publishers.begin(), sub.publishers.end(), *existing)) {
      sorted_erase(sub.automatic, *existing);  // asked for by name: it stays
      results.push_back(std::move(r));         // already subscribed: idempotent
      continue;
    }
    if (static_cast<int>(sub.publishers.size()) >= limits_.publishers_per_subscription) {
      r.error = subscription_full(uid, channel, topic, sub.publishers.size());
    } else {
      sorted_insert(sub.publishers, users_.acquire(user));
      ++subscription_count_;
    }
    results.push_back(std::move(r));
  }
  if (sub.empty()) {  // every user refused: keep no empty record
    drop_subscription(*ch, topic, *users_.find(uid));
    erase_value(member.subscribing, topic);
  }
  return results;
}

Outcome<std::vector<UserResult>> MemoryStore::subscribe_all(const std::string& uid,
                                                      const std::string& channel,
                                                      const std::string& topic) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  note_member(channel, *users_.find(uid));
  auto opened = open_subscription(uid, channel, topic, *m.value(), *ch);
  if (!opened) return opened.error();
  Subscription& sub = *opened.value();
  sub.all = true;
  const UserId self = *users_.find(uid);
  std::vector<std::pair<std::string, UserId>> current;
  for (auto id : ch->topics[topic].publishers) {
    if (id != self) current.emplace_back(users_.name(id), id);
  }
  std::sort(current.begin(), current.end());
  std::vector<UserResult> results;
  for (const auto& [name, id] : current) {
    UserResult r{name, std::nullopt};
    if (std::binary_search(sub.publishers.begin(), sub.publishers.end(), id)) {
      results.push_back(std::move(r));
      continue;
    }
    if (static_cast<int>(sub.publishers.size()) >= limits_.publishers_per_subscription) {
      r.error = subscription_full(uid, channel, topic, sub.publishers.size());
    } else {
      sorted_insert(sub.publishers, users_.acquire(name));
      sorted_insert(sub.automatic, id);
      ++subscription_count_;
    }
    results.push_back(std::move(r));
  }
  return results;
}

Outcome<std::vector<UserResult>> MemoryStore::unsubscribe(const std::string& uid,
                                                    const std::string& channel,
                                                    const std::string& topic,
                                                    const std::vector<std::string>& users) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  note_member(channel, *users_.find(uid));
  std::vector<UserResult> results;
  const UserId self = *users_.find(uid);
  auto t = ch->topics.find(topic);
  Subscription* sub = nullptr;
  if (t != ch->topics.end()) {
    auto s = t->second.subscriptions.find(self);
    if (s != t->second.subscriptions.end()) sub = &s->second;
  }
  for (const auto& user : users) {
    UserResult r{user, std::nullopt};
    auto id = users_.find(user);
    if (!sub || !id || !sorted_erase(sub->publishers, *id)) {
      r.error = failure(ErrorCode::not_subscribed,
                        uid + " does not subscribe to " + user + " in " + channel + "/" + topic);
    } else {
      sorted_erase(sub->automatic, *id);
      users_.release(*id);
      --subscription_count_;
    }
    results.push_back(std::move(r));
  }
  if (sub && sub->empty()) {
    drop_subscription(*ch, topic, self);
    erase_value(m.value()->subscribing, topic);
  }
  return results;
}

Outcome<std::vector<UserResult>> MemoryStore::unsubscribe_all(const std::string& uid,
                                                        const std::string& channel,
                                                        const std::string& topic) {
  Channel* ch = nullptr;
  auto m = membership(uid, channel, &ch);
  if (!m) return m.error();
  note_member(channel, *users_.find(uid));
  std::vector<UserResult> results;
  const UserId self = *users_.find(uid);
  auto t = ch->topics.find(topic);
  if (t == ch->topics.end()) return results;
  auto s = t->second.subscriptions.find(self);
  if (s == t->second.subscriptions.end()) return results;
  for (auto id : s->second.publishers) results.push_back({users_.name(id), std::nullopt});
  std::sort(results.begin(), results.end(),
            [](const UserResult& a, const UserResult& b) { return a.uid < b.uid; });
  drop_subscription(*ch, topic, self);
  erase_value(m.value()->subscribing, topic);
  return results;
}

Outcome<std::vector<std::string>> MemoryStore::subscribed(const std::string& uid,
                                                    const std::string& channel,
                                                    const std::string& topic) const {
  const auto* ch = find_channel(channel);
  auto self = users_.find(uid);
  if (!ch || !self || !ch->members.count(*self)) return not_joined(uid, channel);
  std::vector<std::string> out;
  auto t = ch->topics.find(topic);
  if (t == ch->topics.end()) return out;
  auto s = t->second.subscriptions.find(*self);
  if (s == t->second.subscriptions.end()) return out;
  for (auto id : s->second.publishers) out.push_back(users_.name(id));
  std::sort(out.begin(), out.end());
  return out;
}

bool MemoryStore::subscribes_all(const std::string& uid, const std::string& channel,
                           const std::string& topic) const {
  const auto* ch = find_channel(channel);
  auto self = users_.find(uid);
  if (!ch || !self) return false;
  auto t = ch->topics.find(topic);
  if (t == ch->topics.end()) return false;
  auto s = t->second.subscriptions.find(*self);
  return s != t->second.subscriptions.end() && s->second.all;
}

// ---------------------------------------------------------------- watches

Outcome<std::vector<UserResult>> MemoryStore::watch(const std::string& uid,
                                              const std::vector<std::string>& users) {
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return failure(ErrorCode::not_logged_in, uid + " is not logged in");
  note_session(uid);
  std::vector<UserResult> results;
  for (const auto& user : users) {
    UserResult r{user, std::nullopt};
    auto existing = users_.find(user);
    if (existing && std::binary_search(s->second.watching.begin(), s->second.watching.end(),
                                       *existing)) {
      results.push_back(std::move(r));
      continue;
    }
    if (static_cast<int>(s->second.watching.size()) >= limits_.watched_users) {
      r.error = failure(ErrorCode::limit_watch, uid + " watches " +
                                                    std::to_string(s->second.watching.size()) +
                                                    " users already, the limit (limits.watched_users)");
    } else {
      const UserId target = users_.acquire(user);
      sorted_insert(s->second.watching, target);
      sorted_insert(watchers_[target], users_.acquire(uid));
    }
    results.push_back(std::move(r));
  }
  return results;
}

std::vector<UserResult> MemoryStore::unwatch(const std::string& uid,
                                       const std::vector<std::string>& users) {
  std::vector<UserResult> results;
  auto s = sessions_.find(uid);
  auto self = users_.find(uid);
  if (s != sessions_.end()) note_session(uid);
  for (const auto& user : users) {
    UserResult r{user, std::nullopt};
    auto target = users_.find(user);
    if (s == sessions_.end() || !target || !self ||
        !sorted_erase(s->second.watching, *target)) {
      r.error = failure(ErrorCode::not_watched, uid + " does not watch " + user);
    } else {
      auto w = watchers_.find(*target);
      if (w != watchers_.end() && sorted_erase(w->second, *self)) {
        users_.release(*self);
        if (w->second.empty()) watchers_.erase(w);
      }
      users_.release(*target);
    }
    results.push_back(std::move(r));
  }
  return results;
}

void MemoryStore::remove_watches(const std::string& uid, Session& session) {
  std::vector<std::string> names;
  for (auto id : session.watching) names.push_back(users_.name(id));
  unwatch(uid, names);
}

std::vector<std::string> MemoryStore::watchers_of(const std::string& uid) const {
  std::vector<std::string> out;
  auto id = users_.find(uid);
  if (!id) return out;
  auto w = watchers_.find(*id);
  if (w == watchers_.end()) return out;
  for (auto watcher : w->second) out.push_back(users_.name(watcher));
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- presence

std::optional<PresenceRecord> MemoryStore::presence(const std::string& uid) const {
  auto it = presence_.find(uid);
  if (it == presence_.end()) return std::nullopt;
  return it->second;
}

void MemoryStore::set_presence(const std::string& uid, bool connected, std::string connection) {
  auto& p = presence_[uid];
  p.connected = connected;
  p.connection = std::move(connection);
  if (tracked_) tracked_->presence.insert(uid);
}

void MemoryStore::forget_presence(const std::string& uid) {
  presence_.erase(uid);
  if (tracked_) tracked_->presence.insert(uid);
}

void MemoryStore::apply_presence(const std::string& uid,
                                 const std::optional<PresenceRecord>& record) {
  if (record) {
    presence_[uid] = *record;
  } else {
    presence_.erase(uid);
  }
}

void MemoryStore::track_rows(ChangeSet* keys, bool presence_states) {
  if (tracked_) remove_change_listener(tracked_);
  tracked_ = keys;
  if (keys) add_change_listener(keys);
  metadata_.set_listener(keys);
  locks_.set_listener(keys);
  inbox_.set_listener(keys);
  invitations_.set_listener(keys);
  states_.set_listener(presence_states ? keys : nullptr);
}

std::vector<std::string> MemoryStore::session_uids() const {
  std::vector<std::string> uids;
  uids.reserve(sessions_.size());
  for (const auto& [uid, session] : sessions_) uids.push_back(uid);
  return uids;
}

bool MemoryStore::is_publisher(const std::string& uid, const std::string& channel,
                               const std::string& topic) const {
  const auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  if (!ch || !id) return false;
  auto t = ch->topics.find(topic);
  return t != ch->topics.end() &&
         std::binary_search(t->second.publishers.begin(), t->second.publishers.end(), *id);
}

bool MemoryStore::set_member_token(const std::string& uid, const std::string& channel,
                                   std::int64_t expires_at_ms) {
  auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  if (!ch || !id) return false;
  auto m = ch->members.find(*id);
  if (m == ch->members.end()) return false;
  if (m->second.token_expires_at_ms != expires_at_ms) {
    m->second.token_expires_at_ms = expires_at_ms;
    note_member(channel, *id);
  }
  return true;
}

std::int64_t MemoryStore::member_token(const std::string& uid, const std::string& channel) const {
  const auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  if (!ch || !id) return 0;
  auto m = ch->members.find(*id);
  return m == ch->members.end() ? 0 : m->second.token_expires_at_ms;
}

// ---------------------------------------------------------------- message channels

Outcome<bool> MemoryStore::subscribe_channel(const std::string& uid,
                                             const MessageChannelSubscription& subscription) {
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return failure(ErrorCode::not_logged_in, uid + " has no session");
  auto& mine = s->second.message_channels;
  for (auto& sub : mine) {
    if (sub.channel != subscription.channel) continue;
    if (!(sub == subscription)) {
      sub = subscription;
      note_session(uid);
    }
    return false;
  }
  if (static_cast<int>(mine.size()) >= limits_.message_channels_per_user) {
    return failure(ErrorCode::limit_channels,
                   uid + " subscribes to " + std::to_string(mine.size()) +
                       " message channels already (limits.message_channels_per_user)");
  }
  auto& subscribers = message_channels_[subscription.channel];
  if (static_cast<int>(subscribers.size()) >= limits_.subscribers_per_message_channel) {
    return failure(ErrorCode::limit_members,
                   "message channel " + subscription.channel + " has " +
                       std::to_string(subscribers.size()) +
                       " subscribers already (limits.subscribers_per_message_channel)");
  }
  subscribers.push_back(uid);
  mine.push_back(subscription);
  note_session(uid);
  return true;
}

Outcome<MessageChannelSubscription> MemoryStore::unsubscribe_channel(const std::string& uid,
                                                                     const std::string& channel) {
  auto s = sessions_.find(uid);
  if (s != sessions_.end()) {
    auto& mine = s->second.message_channels;
    for (auto it = mine.begin(); it != mine.end(); ++it) {
      if (it->channel != channel) continue;
      MessageChannelSubscription was = std::move(*it);
      mine.erase(it);
      auto subs = message_channels_.find(channel);
      if (subs != message_channels_.end()) {
        erase_value(subs->second, uid);
        if (subs->second.empty()) message_channels_.erase(subs);
      }
      note_session(uid);
      return was;
    }
  }
  return failure(ErrorCode::not_subscribed,
                 uid + " is not subscribed to message channel " + channel);
}

std::optional<MessageChannelSubscription> MemoryStore::message_channel(
    const std::string& uid, const std::string& channel) const {
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return std::nullopt;
  for (const auto& sub : s->second.message_channels) {
    if (sub.channel == channel) return sub;
  }
  return std::nullopt;
}

std::vector<MessageChannelSubscription> MemoryStore::message_channels_of(
    const std::string& uid) const {
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return {};
  return s->second.message_channels;
}

std::vector<std::string> MemoryStore::channel_subscribers(const std::string& channel,
                                                          bool presence_only) const {
  auto subs = message_channels_.find(channel);
  if (subs == message_channels_.end()) return {};
  if (!presence_only) return subs->second;
  std::vector<std::string> out;
  for (const auto& uid : subs->second) {
    const auto sub = message_channel(uid, channel);
    if (sub && sub->presence) out.push_back(uid);
  }
  return out;
}

// ---------------------------------------------------------------- stored rows

std::vector<std::string> MemoryStore::names(const std::vector<UserId>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(users_.name(id));
  std::sort(out.begin(), out.end());
  return out;
}

void MemoryStore::remove_change_listener(ChangeListener* listener) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

std::optional<StoredSession> MemoryStore::stored_session(const std::string& uid) const {
  auto it = sessions_.find(uid);
  if (it == sessions_.end()) return std::nullopt;
  return StoredSession{uid, it->second.info, names(it->second.watching),
                       it->second.message_channels};
}

std::optional<StoredMember> MemoryStore::stored_member(const std::string& channel,
                                                       const std::string& uid) const {
  const auto* ch = find_channel(channel);
  auto id = users_.find(uid);
  if (!ch || !id) return std::nullopt;
  auto m = ch->members.find(*id);
  if (m == ch->members.end()) return std::nullopt;
  StoredMember out;
  out.seq = m->second.seq;
  out.token_expires_at_ms = m->second.token_expires_at_ms;
  out.publishing = m->second.publishing;
  for (const auto& topic : m->second.subscribing) {
    auto t = ch->topics.find(topic);
    if (t == ch->topics.end()) continue;
    auto sub = t->second.subscriptions.find(*id);
    if (sub == t->second.subscriptions.end()) continue;
    out.subscriptions.push_back(
        {topic, sub->second.all, names(sub->second.publishers), names(sub->second.automatic)});
  }
  return out;
}

void MemoryStore::for_each_session(
    const std::function<void(const StoredSession&)>& visit) const {
  for (const auto& [uid, session] : sessions_) visit(*stored_session(uid));
}

void MemoryStore::for_each_member(
    const std::function<void(const std::string&, const std::string&, const StoredMember&)>& visit)
    const {
  for (const auto& [channel, ch] : channels_) {
    for (auto id : ch.join_order) {
      const std::string& uid = users_.name(id);
      visit(channel, uid, *stored_member(channel, uid));
    }
  }
}

void MemoryStore::restore_session(const StoredSession& stored) {
  auto& s = sessions_[stored.uid];
  s = Session{};
  s.info = stored.info;
  const UserId self_ref = users_.acquire(stored.uid);
  for (const auto& name : stored.watching) {
    const UserId target = users_.acquire(name);
    sorted_insert(s.watching, target);
    sorted_insert(watchers_[target], users_.retain(self_ref));
  }
  users_.release(self_ref);
  for (const auto& sub : stored.message_channels) {
    if (contains_channel(s.message_channels, sub.channel)) continue;
    s.message_channels.push_back(sub);
    message_channels_[sub.channel].push_back(stored.uid);
  }
}

bool MemoryStore::restore_member(const std::string& channel, const std::string& uid,
                                 const StoredMember& stored) {
  auto s = sessions_.find(uid);
  if (s == sessions_.end() || is_member(uid, channel)) return false;
  auto& ch = channels_[channel];
  const UserId id = users_.acquire(uid);
  Member member;
  member.seq = stored.seq;
  member.token_expires_at_ms = stored.token_expires_at_ms;
  next_seq_ = std::max(next_seq_, stored.seq + 1);
  for (const auto& topic : stored.publishing) {
    if (contains(member.publishing, topic)) continue;
    member.publishing.push_back(topic);
    if (sorted_insert(ch.topics[topic].publishers, id)) users_.retain(id);
  }
  for (const auto& stored_sub : stored.subscriptions) {
    if (contains(member.subscribing, stored_sub.topic)) continue;
    auto [sub, created] = ch.topics[stored_sub.topic].subscriptions.try_emplace(id);
    if (!created) continue;
    users_.retain(id);
    member.subscribing.push_back(stored_sub.topic);
    sub->second.all = stored_sub.all;
    for (const auto& name : stored_sub.publishers) {
      const UserId p = users_.acquire(name);
      if (!sorted_insert(sub->second.publishers, p)) {
        users_.release(p);
        continue;
      }
      ++subscription_count_;
      if (std::binary_search(stored_sub.automatic.begin(), stored_sub.automatic.end(), name)) {
        sorted_insert(sub->second.automatic, p);
      }
    }
  }
  ch.members.emplace(id, std::move(member));
  // Members come in sequence order, so appending keeps the channel's join order.
  ch.join_order.push_back(id);
  s->second.channels.push_back(channel);
  return true;
}

// ---------------------------------------------------------------- replicated rows

void MemoryStore::apply_session(const std::string& uid,
                                const std::optional<StoredSession>& stored) {
  if (!stored) {
    auto it = sessions_.find(uid);
    if (it == sessions_.end()) return;
    // Members whose rows did not come (a writer always sends them) go with the session.
    const auto channels = it->second.channels;
    for (const auto& channel : channels) erase_member(channel, uid);
    replace_watches(uid, it->second, {});
    replace_message_channels(uid, it->second, {});
    metadata_.replace_subscriptions(uid, {});
    sessions_.erase(it);
    return;
  }
  auto& session = sessions_[uid];
  session.info = stored->info;
  replace_watches(uid, session, stored->watching);
  replace_message_channels(uid, session, stored->message_channels);
}

void MemoryStore::replace_watches(const std::string& uid, Session& session,
                                  const std::vector<std::string>& watching) {
  std::vector<std::string> wanted = watching;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (const auto& name : names(session.watching)) {
    if (std::binary_search(wanted.begin(), wanted.end(), name)) continue;
    const UserId target = *users_.find(name);
    const UserId self = *users_.find(uid);  // held by the watchers index
    sorted_erase(session.watching, target);
    auto w = watchers_.find(target);
    if (w != watchers_.end() && sorted_erase(w->second, self)) {
      users_.release(self);
      if (w->second.empty()) watchers_.erase(w);
    }
    users_.release(target);
  }
  for (const auto& name : wanted) {
    const auto existing = users_.find(name);
    if (existing &&
        std::binary_search(session.watching.begin(), session.watching.end(), *existing)) {
      continue;
    }
    const UserId target = users_.acquire(name);
    sorted_insert(session.watching, target);
    sorted_insert(watchers_[target], users_.acquire(uid));
  }
}

// Subscriptions the session keeps stay where they are among the channel's subscribers; new
// ones come last, as a new subscription does.
void MemoryStore::replace_message_channels(
    const std::string& uid, Session& session,
    const std::vector<MessageChannelSubscription>& subscriptions) {
  std::vector<MessageChannelSubscription> wanted;
  for (const auto& sub : subscriptions) {
    if (!contains_channel(wanted, sub.channel)) wanted.push_back(sub);
  }
  for (const auto& old : session.message_channels) {
    if (contains_channel(wanted, old.channel)) continue;
    auto subs = message_channels_.find(old.channel);
    if (subs == message_channels_.end()) continue;
    erase_value(subs->second, uid);
    if (subs->second.empty()) message_channels_.erase(subs);
  }
  for (const auto& sub : wanted) {
    if (!contains_channel(session.message_channels, sub.channel)) {
      message_channels_[sub.channel].push_back(uid);
    }
  }
  session.message_channels = std::move(wanted);
}

// Leaving without its effects on others: the topics lose this publisher, but the "all"
// subscriptions of other members that held it change by their own rows.
void MemoryStore::erase_member(const std::string& channel, const std::string& uid) {
  auto* ch = find_channel(channel);
  const auto found = users_.find(uid);
  if (!ch || !found) return;
  const UserId id = *found;
  auto m = ch->members.find(id);
  if (m == ch->members.end()) return;
  const Member member = std::move(m->second);
  for (const auto& topic : member.publishing) {
    auto t = ch->topics.find(topic);
    if (t == ch->topics.end() || !sorted_erase(t->second.publishers, id)) continue;
    users_.release(id);  // the member's own reference keeps the id until the end
    if (t->second.empty()) ch->topics.erase(t);
  }
  for (const auto& topic : member.subscribing) drop_subscription(*ch, topic, id);
  drop_membership(*ch, channel, uid, id);
}

// Puts the member at its sequence among the channel's join order and the session's channels
// (rows of several gateways may come in any order).
void MemoryStore::place_member(Channel& ch, const std::string& channel, UserId id,
                               std::uint64_t seq, Session& session) {
  ch.members.at(id).seq = seq;
  auto& order = ch.join_order;
  if (auto at = std::find(order.begin(), order.end(), id); at != order.end()) order.erase(at);
  auto before = std::find_if(order.begin(), order.end(),
                             [&](UserId other) { return ch.members.at(other).seq > seq; });
  order.insert(before, id);
  auto& channels = session.channels;
  erase_value(channels, channel);
  auto later = std::find_if(channels.begin(), channels.end(), [&](const std::string& other) {
    return channels_.at(other).members.at(id).seq > seq;
  });
  channels.insert(later, channel);
  if (seq < std::numeric_limits<std::uint64_t>::max()) next_seq_ = std::max(next_seq_, seq + 1);
}

bool MemoryStore::apply_member(const std::string& channel, const std::string& uid,
                               const std::optional<StoredMember>& stored) {
  if (!stored) {
    erase_member(channel, uid);
    return true;
  }
  auto s = sessions_.find(uid);
  if (s == sessions_.end()) return false;
  auto& ch = channels_[channel];
  const UserId id = users_.acquire(uid);
  auto [m, created] = ch.members.try_emplace(id);
  if (!created) users_.release(id);  // the member holds its reference already
  Member& member = m->second;
  // Another sequence: it left and joined again, and leaving ends its presence states.
  if (!created && member.seq != stored->seq) states_.membership_ended(channel, uid);
  member.token_expires_at_ms = stored->token_expires_at_ms;

  std::vector<std::string> publishing;
  for (const auto& topic : stored->publishing) {
    if (!contains(publishing, topic)) publishing.push_back(topic);
  }
  for (const auto& topic : member.publishing) {
    if (contains(publishing, topic)) continue;
    auto t = ch.topics.find(topic);
    if (t == ch.topics.end() || !sorted_erase(t->second.publishers, id)) continue;
    users_.release(id);
    if (t->second.empty()) ch.topics.erase(t);
  }
  for (const auto& topic : publishing) {
    if (contains(member.publishing, topic)) continue;
    if (sorted_insert(ch.topics[topic].publishers, id)) users_.retain(id);
  }
  member.publishing = std::move(publishing);

  // The model keeps no empty subscription, and one per topic.
  std::vector<const StoredSubscription*> wanted;
  for (const auto& sub : stored->subscriptions) {
    if (sub.publishers.empty() && !sub.all) continue;
    if (std::any_of(wanted.begin(), wanted.end(),
                    [&](const StoredSubscription* w) { return w->topic == sub.topic; })) {
      continue;
    }
    wanted.push_back(&sub);
  }
  for (const auto& topic : member.subscribing) {
    if (std::none_of(wanted.begin(), wanted.end(),
                     [&](const StoredSubscription* w) { return w->topic == topic; })) {
      drop_subscription(ch, topic, id);
    }
  }
  std::vector<std::string> subscribing;
  for (const auto* w : wanted) {
    auto [entry, opened] = ch.topics[w->topic].subscriptions.try_emplace(id);
    if (opened) users_.retain(id);
    Subscription& sub = entry->second;
    std::vector<UserId> publishers;
    for (const auto& name : w->publishers) {
      const UserId p = users_.acquire(name);
      if (!sorted_insert(publishers, p)) users_.release(p);
    }
    std::vector<UserId> automatic;
    for (const auto& name : w->automatic) {
      const auto p = users_.find(name);
      if (p && std::binary_search(publishers.begin(), publishers.end(), *p)) {
        sorted_insert(automatic, *p);
      }
    }
    for (auto p : sub.publishers) users_.release(p);  // after the new ones took theirs
    subscription_count_ = subscription_count_ - sub.publishers.size() + publishers.size();
    sub.publishers = std::move(publishers);
    sub.automatic = std::move(automatic);
    sub.all = w->all;
    subscribing.push_back(w->topic);
  }
  member.subscribing = std::move(subscribing);

  if (created || member.seq != stored->seq) {
    place_member(ch, channel, id, stored->seq, s->second);
  }
  return true;
}

void MemoryStore::clear_model() {
  // The sequence and the id counters only grow: ids stay unique across a reload.
  users_ = Interner();
  sessions_.clear();
  channels_.clear();
  watchers_.clear();
  presence_.clear();
  message_channels_.clear();
  subscription_count_ = 0;
  metadata_.clear();
  states_.clear();
  locks_.clear();
  inbox_.clear();
  invitations_.clear();
}

std::vector<std::string> MemoryStore::index_problems() const {
  std::vector<std::string> problems;
  auto problem = [&](std::string text) { problems.push_back(std::move(text)); };
  std::map<UserId, std::uint32_t> refs;
  auto name_of = [&](UserId id) {
    return "user#" + std::to_string(id) + "(" + users_.name(id) + ")";
  };
  for (const auto& [uid, session] : sessions_) {
    for (auto target : session.watching) {
      ++refs[target];
      auto w = watchers_.find(target);
      const auto self = users_.find(uid);
      if (!self || w == watchers_.end() ||
          !std::binary_search(w->second.begin(), w->second.end(), *self)) {
        problem(uid + " watches " + name_of(target) + " but is not among its watchers");
      }
    }
    for (const auto& sub : session.message_channels) {
      auto subs = message_channels_.find(sub.channel);
      if (subs == message_channels_.end() ||
          std::count(subs->second.begin(), subs->second.end(), uid) != 1) {
        problem(uid + " subscribes to message channel " + sub.channel + " but is not listed");
      }
    }
    std::uint64_t last_seq = 0;
    for (const auto& channel : session.channels) {
      const auto* ch = find_channel(channel);
      const auto id = users_.find(uid);
      if (!ch || !id || !ch->members.count(*id)) {
        problem(uid + " lists channel " + channel + " without being a member");
        continue;
      }
      const auto seq = ch->members.at(*id).seq;
      if (seq <= last_seq) problem(uid + "'s channels are not in join order at " + channel);
      last_seq = seq;
    }
  }
  std::size_t watch_entries = 0;
  for (const auto& [target, watchers] : watchers_) {
    if (watchers.empty()) problem("an empty watchers entry of " + name_of(target));
    for (auto watcher : watchers) {
      ++refs[watcher];
      ++watch_entries;
      auto s = sessions_.find(users_.name(watcher));
      if (s == sessions_.end() ||
          !std::binary_search(s->second.watching.begin(), s->second.watching.end(), target)) {
        problem(name_of(watcher) + " is a watcher of " + name_of(target) + " without watching");
      }
    }
  }
  std::size_t watching_entries = 0;
  for (const auto& [uid, session] : sessions_) watching_entries += session.watching.size();
  if (watch_entries != watching_entries) problem("watchers and watches differ in number");
  for (const auto& [channel, subscribers] : message_channels_) {
    if (subscribers.empty()) problem("an empty subscriber list of message channel " + channel);
    for (const auto& uid : subscribers) {
      if (!message_channel(uid, channel)) {
        problem(uid + " is listed in message channel " + channel + " without subscribing");
      }
    }
  }
  std::size_t subscriptions = 0;
  for (const auto& [channel, ch] : channels_) {
    if (ch.members.empty()) problem("channel " + channel + " has no members");
    if (ch.join_order.size() != ch.members.size()) {
      problem("channel " + channel + "'s join order and members differ");
    }
    std::uint64_t last_seq = 0;
    for (auto id : ch.join_order) {
      auto m = ch.members.find(id);
      if (m == ch.members.end()) {
        problem("channel " + channel + " orders a non-member " + name_of(id));
        continue;
      }
      if (m->second.seq <= last_seq) problem("channel " + channel + " is not in seq order");
      last_seq = m->second.seq;
    }
    for (const auto& [id, member] : ch.members) {
      ++refs[id];
      auto s = sessions_.find(users_.name(id));
      if (s == sessions_.end() ||
          std::count(s->second.channels.begin(), s->second.channels.end(), channel) != 1) {
        problem(name_of(id) + " is a member of " + channel + " without its session listing it");
      }
      if (member.seq >= next_seq_) problem(name_of(id) + "'s seq is not below the next one");
      for (const auto& topic : member.publishing) {
        auto t = ch.topics.find(topic);
        if (t == ch.topics.end() ||
            !std::binary_search(t->second.publishers.begin(), t->second.publishers.end(), id)) {
          problem(name_of(id) + " publishes in " + channel + "/" + topic + " unlisted");
        }
      }
      for (const auto& topic : member.subscribing) {
        auto t = ch.topics.find(topic);
        if (t == ch.topics.end() || !t->second.subscriptions.count(id)) {
          problem(name_of(id) + " subscribes in " + channel + "/" + topic + " without a record");
        }
      }
    }
    for (const auto& [topic, t] : ch.topics) {
      if (t.empty()) problem("an empty topic " + channel + "/" + topic);
      for (auto p : t.publishers) {
        ++refs[p];
        auto m = ch.members.find(p);
        if (m == ch.members.end() || !contains(m->second.publishing, topic)) {
          problem(name_of(p) + " is listed as a publisher of " + channel + "/" + topic);
        }
      }
      for (const auto& [subscriber, sub] : t.subscriptions) {
        ++refs[subscriber];
        auto m = ch.members.find(subscriber);
        if (m == ch.members.end() || !contains(m->second.subscribing, topic)) {
          problem(name_of(subscriber) + " has a subscription record in " + channel + "/" + topic +
                  " it does not list");
        }
        if (sub.empty()) problem("an empty subscription in " + channel + "/" + topic);
        for (auto p : sub.publishers) ++refs[p];
        subscriptions += sub.publishers.size();
        for (auto a : sub.automatic) {
          if (!std::binary_search(sub.publishers.begin(), sub.publishers.end(), a)) {
            problem("an automatic entry that is not a publisher in " + channel + "/" + topic);
          }
        }
      }
    }
  }
  if (subscriptions != subscription_count_) {
    problem("subscription_count " + std::to_string(subscription_count_) + ", counted " +
            std::to_string(subscriptions));
  }
  std::map<UserId, std::uint32_t> interned;
  for (const auto& [id, count] : users_.live_refs()) interned[id] = count;
  if (interned != refs) {
    for (const auto& [id, count] : refs) {
      auto it = interned.find(id);
      if (it == interned.end() || it->second != count) {
        problem(name_of(id) + " has " + std::to_string(it == interned.end() ? 0 : it->second) +
                " references, " + std::to_string(count) + " expected");
      }
    }
    for (const auto& [id, count] : interned) {
      if (!refs.count(id)) problem(name_of(id) + " is interned without a reference");
    }
  }
  return problems;
}

}  // namespace rtm::gateway
