// The RTM operations (BRIEF §3): sessions and tokens, channels, topics, subscriptions,
// watches, presence; and the events they cause. State lives behind the StateStore seam
// (state.hpp); this file turns requests into state changes and state changes into events.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <unordered_set>

#include "rtm/gateway/connection_states.hpp"
#include "rtm/gateway/enforcement.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/mapping/json.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::gateway {
namespace {

using json::Document;

// Why a user left a channel or went offline; words used in events.
constexpr const char* kLeft = "left";
constexpr const char* kLoggedOut = "logged_out";
constexpr const char* kTokenExpired = "token_expired";
constexpr const char* kReplaced = "replaced";
constexpr const char* kConnectionLost = "connection_lost";
constexpr const char* kKicked = "kicked";
constexpr std::int64_t kNeverMs = INT64_MAX / 4;  // device sessions carry no token
// A "will expire" warning is claimed across a cluster until this long after the expiry it
// warns of (StateStore::claim_once): longer than the gateways' clocks and turns drift.
constexpr std::int64_t kWarningClaimMarginMs = 60'000;
const std::string kDeviceSession = "device-";     // session id prefix of bridged devices

class RtmService final : public RtmApi,
                         public SessionDirectory,
                         public MessageHandler,
                         public BrokerSessionObserver,
                         public ReplicaListener {
 public:
  RtmService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), rng_(std::random_device{}()) {
    state_.add_replica_listener(this);
  }
  // The core owns this service and its timers alike, and destroys its timers first.
  ~RtmService() override { state_.remove_replica_listener(this); }
  RtmService(const RtmService&) = delete;
  RtmService& operator=(const RtmService&) = delete;

  void install() {
    add("login", false, {"token"}, &RtmService::login);
    add("logout", true, {}, &RtmService::logout);
    add("renew_token", true, {"token"}, &RtmService::renew_token);
    add("join", true, {"channel", "token"}, &RtmService::join);
    add("leave", true, {"channel"}, &RtmService::leave);
    add("join_topic", true, {"channel", "topic"}, &RtmService::join_topic);
    add("leave_topic", true, {"channel", "topic"}, &RtmService::leave_topic);
    add("subscribe", true, {"channel", "topic", "users"}, &RtmService::subscribe);
    add("unsubscribe", true, {"channel", "topic", "users"}, &RtmService::unsubscribe);
    add("subscribed", true, {"channel", "topic"}, &RtmService::subscribed);
    add("watch", true, {"users"}, &RtmService::watch);
    add("unwatch", true, {"users"}, &RtmService::unwatch);
    add("who_now", true, {"channel", "include_state"}, &RtmService::who_now);
    add("where_now", true, {"uid"}, &RtmService::where_now);
    add("kick", true, {"uid"}, &RtmService::kick_op);
    add("subscribe_channel", true, {"channel", "with_presence", "token"},
        &RtmService::subscribe_channel);
    add("unsubscribe_channel", true, {"channel"}, &RtmService::unsubscribe_channel);
    add("renew_channel_token", true, {"channel", "token"}, &RtmService::renew_channel_token);
  }

  // The broker's side of sessions (the grant feed), when enforcement is on.
  void set_connection_control(std::shared_ptr<ConnectionControl> control) {
    control_ = std::move(control);
  }
  void set_grant_feed(std::shared_ptr<GrantFeed> feed) { feed_ = std::move(feed); }

  StateStore& state() { return state_; }

  // SessionDirectory
  bool has_live_session(const std::string& uid) override {
    unconfirmed_.erase(uid);  // a request from the user shows it is there
    restored_.erase(uid);
    return state_.has_session(uid);
  }

  // MessageHandler: the retained presence of every user (see on_presence).
  std::vector<std::string> filters() const override { return {core_.tree().presence_filter()}; }
  bool on_message(const Message& m) override { return on_presence(m); }

  // After a restart: the sessions the store brought back get their token timers again (an
  // expiry that passed while the gateway was down fires at once, with the usual events),
  // and each is reconciled with its retained presence as it arrives (see on_presence).
  void resume() {
    for (const auto& uid : state_.session_uids()) {
      const auto s = state_.session(uid);
      if (!s || is_device_session(*s)) continue;
      restored_.insert(uid);
      schedule_timers(uid, s->expires_at_ms / 1000);
      for (const auto& channel : state_.channels_of(uid)) {
        const auto exp = state_.member_token(uid, channel);
        if (exp > 0) schedule_channel_timers({ChannelKind::stream, uid, channel}, exp / 1000);
      }
      for (const auto& sub : state_.message_channels_of(uid)) {
        if (sub.token_expires_at_ms > 0) {
          schedule_channel_timers({ChannelKind::message, uid, sub.channel},
                                  sub.token_expires_at_ms / 1000);
        }
      }
    }
    if (!restored_.empty()) {
      spdlog::info("state: {} sessions resumed; token timers armed again", restored_.size());
    }
  }

  // ReplicaListener: rows another gateway of the cluster changed, applied before this turn.
  // The token timers follow them as resume() arms them after a restart: a token renewed
  // there re-arms here at its new expiry, an ended session or membership cancels.
  void replicated(const ChangeSet& applied) override {
    // Publishers may have gone: the bridge's fast path checks its registrations again.
    if (!applied.sessions.empty() || !applied.members.empty()) removing();
    for (const auto& uid : applied.sessions) follow_session(uid);
    for (const auto& [channel, uid] : applied.members) {
      follow_channel_token({ChannelKind::stream, uid, channel});
    }
    // The presence filter is shared: a user that showed itself to another gateway counts
    // as seen here too (a request it sent there changes no row, so only this is seen).
    for (const auto& uid : applied.presence) {
      unconfirmed_.erase(uid);
      restored_.erase(uid);
    }
  }

  bool ensure_device_publisher(const std::string& uid, const std::string& channel,
                               const std::string& topic, std::string* why) override {
    if (const auto s = state_.session(uid); s && !is_device_session(*s)) {
      // A device topic is no credential: it never acts in a logged-in user's name.
      *why = uid + " is a logged-in user; a bridged device cannot publish in its name";
      return false;
    }
    if (!state_.has_session(uid)) {
      const bool was_online = state_.online(uid);
      state_.start_session(uid, kDeviceSession + new_session_id(), now_ms(), kNeverMs);
      presence_changed(uid, was_online);
    }
    if (!state_.is_member(uid, channel)) {
      bool joined = false;
      auto snap = state_.join(uid, channel, &joined);
      if (!snap) {
        *why = snap.error().message;
        return false;
      }
      if (joined) channel_event(channel, "member_joined", uid);
    }
    auto joined = state_.join_topic(uid, channel, topic);
    if (!joined) {
      *why = joined.error().message;
      return false;
    }
    if (joined->added) publisher_joined(channel, topic, uid, *joined);
    return true;
  }

  std::uint64_t generation() const override {
    return generation_.load(std::memory_order_acquire);
  }

  bool is_publisher(const std::string& uid, const std::string& channel,
                    const std::string& topic) const override {
    return state_.is_publisher(uid, channel, topic);
  }

  bool has_session(const std::string& uid) const override { return state_.has_session(uid); }

  bool kick(const std::string& uid) override {
    const bool had = state_.has_session(uid);
    if (had) {
      spdlog::info("session of {} ended: kicked by an operator", uid);
      end_session(uid, kKicked, true);
    } else if (control_) {
      control_->session_ended(uid, SessionEnd::kicked);  // its connections all the same
    }
    return had;
  }

  std::string authorize(const AuthzQuestion& question) const override {
    return feed_ ? std::string(feed_->authorize(question)) : std::string("ignore");
  }
  bool authorize_rabbitmq(const AuthzQuestion& question) const override {
    return feed_ && feed_->authorize_rabbitmq(question);
  }

  bool device_presence(const std::string& uid, bool online) override {
    if (const auto s = state_.session(uid); s && !is_device_session(*s)) {
      // A device's status topic never ends or changes a logged-in user's session.
      return false;
    }
    const bool was_online = state_.online(uid);
    if (online) {
      state_.set_presence(uid, true, "");
      presence_changed(uid, was_online);
    } else {
      state_.forget_presence(uid);
      if (state_.has_session(uid)) {
        end_session(uid, kConnectionLost, true);  // tells watchers too
      } else {
        presence_changed(uid, was_online);
      }
    }
    return true;
  }

 private:
  static bool is_device_session(const SessionInfo& s) { return s.session_id.rfind(kDeviceSession, 0) == 0; }

  using Method = Outcome<Document> (RtmService::*)(Call&);
  void add(const char* name, bool needs_session, std::vector<std::string_view> params, Method m) {
    core_.add_operation({name, needs_session, std::move(params),
                         [this, m](Call& call) { return (this->*m)(call); }});
  }

  std::int64_t now_ms() const { return core_.now_ms(); }

  std::string new_session_id() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id(16, '0');
    for (auto& c : id) c = kHex[rng_() & 15];
    return id;
  }

  // ------------------------------------------------------------ events

  Document event(const char* name) {
    auto e = json::object();
    json::set(e, "event", name);
    json::set_int(e, "ts", now_ms());
    return e;
  }

  void channel_event(const std::string& channel, const char* name, const std::string& uid,
                     const std::string* topic = nullptr, const char* reason = nullptr) {
    auto e = event(name);
    json::set(e, "channel", channel);
    json::set(e, "uid", uid);
    if (topic) json::set(e, "topic", *topic);
    if (reason) json::set(e, "reason", reason);
    core_.publish(core_.tree().channel_events(channel), json::dump(e), 1, false);
  }

  void session_event(const std::string& uid, const char* state, const std::string& session_id,
                     const char* reason) {
    auto e = event("session");
    json::set(e, "state", state);
    json::set(e, "session_id", session_id);
    if (reason) json::set(e, "reason", reason);
    // The same change as codes and names (docs/protocol.md, "Connection states").
    const auto change = session_change(state, reason ? reason : "");
    json::set_int(e, "reason_code", static_cast<int>(change.reason));
    json::set(e, "reason_name", std::string(connection_reason_name(change.reason)));
    json::set_int(e, "connection_state", static_cast<int>(change.state));
    json::set(e, "connection_state_name", std::string(connection_state_name(change.state)));
    core_.publish_user_event(uid, "session", e);
  }

  void token_event(const std::string& uid, const char* state, std::int64_t expires_at_s) {
    auto e = event("token");
    json::set(e, "state", state);
    json::set_int(e, "expires_at", expires_at_s);
    core_.publish_user_event(uid, "token", e);
  }

  // A new publisher: the channel hears of it, and each "all publishers" subscription that
  // had no room for it is told (those with room took it in silently).
  void publisher_joined(const std::string& channel, const std::string& topic,
                        const std::string& uid, const TopicJoin& joined) {
    channel_event(channel, "publisher_joined", uid, &topic);
    for (const auto& r : joined.all_subscribers) {
      if (!r.error) continue;
      auto e = event("subscription");
      json::set(e, "channel", channel);
      json::set(e, "topic", topic);
      json::set(e, "uid", uid);
      json::set_bool(e, "ok", false);
      json::set_int(e, "code", static_cast<int>(r.error->code));
      json::set(e, "error", std::string(error_name(r.error->code)));
      json::set(e, "message", r.error->message);
      core_.publish_user_event(r.uid, "subscription", e);
    }
  }

  // Tells watchers when uid's online state changed since `was_online`.
  void presence_changed(const std::string& uid, bool was_online) {
    const bool is_online = state_.online(uid);
    if (is_online == was_online) return;
    for (const auto& watcher : state_.watchers_of(uid)) {
      auto e = event("presence");
      json::set(e, "uid", uid);
      json::set(e, "state", is_online ? "online" : "offline");
      core_.publish_user_event(watcher, "presence", e);
    }
  }

  void departures(const std::string& uid, const std::vector<Departure>& gone, const char* reason) {
    const bool timed_out = std::string_view(reason) == kConnectionLost;
    for (const auto& d : gone) {
      for (const auto& topic : d.topics_left) {
        channel_event(d.channel, "publisher_left", uid, &topic, reason);
      }
      channel_event(d.channel, timed_out ? "member_timed_out" : "member_left", uid, nullptr,
                    reason);
    }
  }

  // Ends uid's session with events to the user, its channels and its watchers.
  void end_session(const std::string& uid, const char* reason, bool tell_user) {
    const auto s = state_.session(uid);
    if (!s) return;
    const bool was_online = state_.online(uid);
    const std::string session_id = s->session_id;
    removing();
    cancel_timers(uid);
    cancel_channel_timers(uid);
    const auto message_channels = state_.message_channels_of(uid);
    departures(uid, state_.end_session(uid), reason);
    for (const auto& sub : message_channels) message_channel_departure(uid, sub, reason);
    if (tell_user) session_event(uid, "ended", session_id, reason);
    if (std::string_view(reason) != kReplaced && std::string_view(reason) != kConnectionLost) {
      mark_offline(uid, reason);
    }
    presence_changed(uid, was_online);
    if (control_ && !is_device_session(*s)) control_->session_ended(uid, session_end(reason));
  }

  static SessionEnd session_end(std::string_view reason) {
    if (reason == kTokenExpired) return SessionEnd::token_expired;
    if (reason == kReplaced) return SessionEnd::replaced;
    if (reason == kKicked) return SessionEnd::kicked;
    if (reason == kLoggedOut) return SessionEnd::logged_out;
    return SessionEnd::connection_lost;
  }

  // After logout or expiry the user is offline even if its connection stays up; the
  // retained presence says so too, so that readers of P/presence/{uid} agree.
  void mark_offline(const std::string& uid, const char* reason) {
    const auto p = state_.presence(uid);
    if (!p || !p->connected) return;
    const std::string connection = p->connection;
    state_.set_presence(uid, false, connection);
    auto e = json::object();
    json::set(e, "state", "offline");
    json::set(e, "session", connection);
    json::set(e, "by", "gateway");
    json::set(e, "reason", reason);
    core_.publish(core_.tree().presence(uid), json::dump(e), 1, true);
  }

  void mark_online_again(const std::string& uid) {
    const auto p = state_.presence(uid);
    if (!p || p->connected) return;
    const std::string connection = p->connection;
    state_.set_presence(uid, true, connection);
    auto e = json::object();
    json::set(e, "state", "online");
    json::set(e, "session", connection);
    json::set(e, "by", "gateway");
    core_.publish(core_.tree().presence(uid), json::dump(e), 1, true);
  }

  // ------------------------------------------------------------ token timers

  // One timer per session (its id kept here, not in the stored session): it fires first
  // for the "will expire" warning and then re-arms itself for the expiry. Memory per idle
  // session counts.
  struct ArmedTimer {
    Timers::Id id = 0;
    std::int64_t expires_at_s = 0;  // the token expiry it was armed for
  };

  void cancel_timers(const std::string& uid) {
    auto it = token_timers_.find(uid);
    if (it == token_timers_.end()) return;
    core_.timers().cancel(it->second.id);
    token_timers_.erase(it);
  }

  void schedule_timers(const std::string& uid, std::int64_t expires_at_s) {
    cancel_timers(uid);
    if (!state_.has_session(uid)) return;
    const std::int64_t expires_ms = expires_at_s * 1000;
    const std::int64_t warn_ms = expires_ms - core_.config().auth.token_warn_before_s * 1000LL;
    auto expire_fn = [this, uid, expires_at_s] {
      if (session_token_current(uid, expires_at_s)) expire(uid, expires_at_s);
    };
    Timers::Id id = 0;
    if (core_.config().auth.token_warn_before_s > 0 && warn_ms < expires_ms) {
      id = core_.timers().at(std::max(warn_ms, now_ms()), [this, uid, expires_at_s, expire_fn] {
        if (!session_token_current(uid, expires_at_s)) return;
        if (claim_warning("warn:" + uid + ":" + std::to_string(expires_at_s), expires_at_s)) {
          token_event(uid, "will_expire", expires_at_s);
        }
        token_timers_[uid] = {core_.timers().at(expires_at_s * 1000, expire_fn), expires_at_s};
      });
    } else {
      id = core_.timers().at(expires_ms, expire_fn);
    }
    token_timers_[uid] = {id, expires_at_s};
  }

  // Does uid's session still expire at expires_at_s? A timer armed for another expiry (a
  // token renewed, or the session ended, by another gateway of the cluster) must not act:
  // it re-arms for the session as the rows say, or drops out.
  bool session_token_current(const std::string& uid, std::int64_t expires_at_s) {
    const auto s = state_.session(uid);
    if (s && s->expires_at_ms / 1000 == expires_at_s) return true;
    if (s && !is_device_session(*s)) {
      schedule_timers(uid, s->expires_at_ms / 1000);
    } else {
      token_timers_.erase(uid);
    }
    return false;
  }

  // A "will expire" warning changes no row: in a cluster every gateway's timer finds it
  // due, and only the first to claim it sends it. A single gateway always may.
  bool claim_warning(const std::string& key, std::int64_t expires_at_s) {
    const std::int64_t ttl_ms =
        std::max<std::int64_t>(expires_at_s * 1000 - now_ms(), 0) + kWarningClaimMarginMs;
    return state_.claim_once(key, ttl_ms);
  }

  // A session another gateway changed: its timers as the rows say now.
  void follow_session(const std::string& uid) {
    const auto s = state_.session(uid);
    restored_.erase(uid);  // not restored here: the rows came from a live gateway
    // Only the user's own requests (login, renew, watch, ...) or its device's messages
    // change its session's row: it is still there, whichever gateway heard it.
    if (s) unconfirmed_.erase(uid);
    if (!s || is_device_session(*s)) {
      cancel_timers(uid);
      cancel_channel_timers(uid);
      return;
    }
    const std::int64_t expires_at_s = s->expires_at_ms / 1000;
    const auto armed = token_timers_.find(uid);
    if (armed == token_timers_.end() || armed->second.expires_at_s != expires_at_s) {
      schedule_timers(uid, expires_at_s);
    }
    // Message channel subscriptions are part of the session's row.
    std::set<std::string> subscribed;
    for (const auto& sub : state_.message_channels_of(uid)) {
      subscribed.insert(sub.channel);
      follow_channel_token({ChannelKind::message, uid, sub.channel});
    }
    auto it = channel_timers_.lower_bound(ChannelKey{ChannelKind::stream, uid, ""});
    while (it != channel_timers_.end() && it->first.uid == uid) {
      if (it->first.kind == ChannelKind::message && !subscribed.count(it->first.channel)) {
        core_.timers().cancel(it->second.id);
        it = channel_timers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void expire(const std::string& uid, std::int64_t expires_at_s) {
    token_timers_.erase(uid);
    spdlog::info("session of {} ended: token expired", uid);
    token_event(uid, "expired", expires_at_s);
    end_session(uid, kTokenExpired, true);
  }

  Outcome<TokenClaims> check_token(Call& call) {
    auto token = call.params.string("token");
    if (!token) return token.error();
    auto claims = verify_token(*token, core_.config().auth.token_secret, call.now_ms / 1000);
    if (!claims) return failure(claims.error().code, claims.error().message);
    if (claims->sub != call.uid) {
      return failure(ErrorCode::token_uid_mismatch,
                     "token is for uid \"" + claims->sub + "\", not " + call.uid);
    }
    // A correctly signed token may still name an absurd expiry: kept within what the
    // timers and the stored milliseconds can hold.
    claims->exp = std::min<std::int64_t>(claims->exp, kNeverMs / 1000);
    return std::move(claims).value();
  }

  // ------------------------------------------------------------ operations

  Outcome<Document> login(Call& call) {
    unconfirmed_.erase(call.uid);
    auto claims = check_token(call);
    if (!claims) return claims.error();
    const std::string& uid = call.uid;
    const bool was_online = state_.online(uid);
    if (const auto old = state_.session(uid)) {
      const std::string old_id = old->session_id;
      spdlog::info("session {} of {} replaced by a new login", old_id, uid);
      session_event(uid, "replaced", old_id, "logged in elsewhere");
      end_session(uid, kReplaced, false);
    }
    const std::string session_id = new_session_id();
    state_.start_session(uid, session_id, call.now_ms, claims->exp * 1000);
    schedule_timers(uid, claims->exp);
    // The login's token may outlive the one the connection was opened with.
    if (control_) control_->token_renewed(uid, claims->exp);
    mark_online_again(uid);
    presence_changed(uid, was_online);
    session_event(uid, "logged_in", session_id, nullptr);
    core_.logged_in(uid);

    auto result = json::object();
    json::set(result, "uid", uid);
    json::set(result, "session_id", session_id);
    json::set_int(result, "expires_at", claims->exp);
    return result;
  }

  Outcome<Document> logout(Call& call) {
    end_session(call.uid, kLoggedOut, true);
    return json::object();
  }

  Outcome<Document> renew_token(Call& call) {
    auto claims = check_token(call);
    if (!claims) return claims.error();
    state_.renew_session(call.uid, claims->exp * 1000);
    schedule_timers(call.uid, claims->exp);
    if (control_) control_->token_renewed(call.uid, claims->exp);
    auto result = json::object();
    json::set_int(result, "expires_at", claims->exp);
    return result;
  }

  Document snapshot_json(const Snapshot& snap, Document& doc) {
    auto& a = doc.GetAllocator();
    json::Value s(rapidjson::kObjectType);
    s.AddMember("members", json::string_array(snap.members, a), a);
    json::Value topics(rapidjson::kArrayType);
    for (const auto& t : snap.topics) {
      json::Value item(rapidjson::kObjectType);
      item.AddMember("topic", json::str(t.topic, a), a);
      item.AddMember("publishers", json::string_array(t.publishers, a), a);
      topics.PushBack(item, a);
    }
    s.AddMember("topics", topics, a);
    json::set(doc, "snapshot", std::move(s));
    return std::move(doc);
  }

  Outcome<Document> join(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    // A member joins again without a token: the one it joined with still stands.
    auto token = channel_token(
        call, *channel,
        core_.config().channels.stream_token_required && !state_.is_member(call.uid, *channel)
            ? "channels.stream_token_required"
            : nullptr);
    if (!token) return token.error();
    bool joined = false;
    auto snap = state_.join(call.uid, *channel, &joined);
    if (!snap) return snap.error();
    if (joined) channel_event(*channel, "member_joined", call.uid);
    // A join again without a token keeps the token it had.
    if (*token > 0 || joined) {
      state_.set_member_token(call.uid, *channel, *token * 1000);
      schedule_channel_timers({ChannelKind::stream, call.uid, *channel}, *token);
    }
    auto result = json::object();
    json::set(result, "channel", *channel);
    if (*token > 0) json::set_int(result, "token_expires_at", *token);
    json::set(result, "events_topic", core_.tree().channel_events(*channel));
    return snapshot_json(*snap, result);
  }

  Outcome<Document> leave(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    removing();
    auto gone = state_.leave(call.uid, *channel);
    if (!gone) return gone.error();
    cancel_channel_timer({ChannelKind::stream, call.uid, *channel});
    departures(call.uid, {*gone}, kLeft);
    auto result = json::object();
    json::set(result, "channel", *channel);
    return result;
  }

  struct ChannelTopic {
    std::string channel, topic;
  };
  Outcome<ChannelTopic> channel_topic(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    auto topic = call.params.name("topic");
    if (!topic) return topic.error();
    return ChannelTopic{*channel, *topic};
  }

  Outcome<Document> join_topic(Call& call) {
    auto ct = channel_topic(call);
    if (!ct) return ct.error();
    // The "all publishers" subscriptions take the new publisher in before this answer, so
    // everything it publishes after the answer is theirs.
    auto joined = state_.join_topic(call.uid, ct->channel, ct->topic);
    if (!joined) return joined.error();
    if (joined->added) publisher_joined(ct->channel, ct->topic, call.uid, *joined);
    auto result = json::object();
    json::set(result, "channel", ct->channel);
    json::set(result, "topic", ct->topic);
    json::set(result, "publish_to", core_.tree().channel_message(ct->channel, ct->topic, call.uid));
    return result;
  }

  Outcome<Document> leave_topic(Call& call) {
    auto ct = channel_topic(call);
    if (!ct) return ct.error();
    removing();
    auto removed = state_.leave_topic(call.uid, ct->channel, ct->topic);
    if (!removed) return removed.error();
    if (!*removed) {
      return failure(ErrorCode::not_publisher, call.uid + " is not a publisher of " +
                                                       ct->channel + "/" + ct->topic);
    }
    channel_event(ct->channel, "publisher_left", call.uid, &ct->topic, kLeft);
    auto result = json::object();
    json::set(result, "channel", ct->channel);
    json::set(result, "topic", ct->topic);
    return result;
  }

  // {"users":[{"uid":"bob","ok":true,...extra},{"uid":"x","ok":false,"code":..,"error":..,"message":..}]}
  Document user_results(const std::vector<UserResult>& results,
                        const std::function<void(const std::string&, json::Value&,
                                                 Document::AllocatorType&)>& extra = {}) {
    auto doc = json::object();
    auto& a = doc.GetAllocator();
    json::Value users(rapidjson::kArrayType);
    for (const auto& r : results) {
      json::Value item(rapidjson::kObjectType);
      item.AddMember("uid", json::str(r.uid, a), a);
      item.AddMember("ok", !r.error.has_value(), a);
      if (r.error) {
        item.AddMember("code", static_cast<int>(r.error->code), a);
        item.AddMember("error", json::str(error_name(r.error->code), a), a);
        item.AddMember("message", json::str(r.error->message, a), a);
      } else if (extra) {
        extra(r.uid, item, a);
      }
      users.PushBack(item, a);
    }
    json::set(doc, "users", std::move(users));
    return doc;
  }

  using SubscriptionChange = Outcome<std::vector<UserResult>> (StateStore::*)(
      const std::string&, const std::string&, const std::string&, const std::vector<std::string>&);

  using AllChange = Outcome<std::vector<UserResult>> (StateStore::*)(const std::string&,
                                                                const std::string&,
                                                                const std::string&);

  // subscribe / unsubscribe: per-user results, each naming the MQTT topic of that
  // publisher, because the data plane stays on the broker. Without `users`: the "all
  // publishers" mode, whose answer also names the MQTT filter that covers them all.
  Outcome<Document> change_subscription(Call& call, SubscriptionChange change, AllChange all) {
    auto ct = channel_topic(call);
    if (!ct) return ct.error();
    Outcome<std::vector<UserResult>> results = std::vector<UserResult>{};
    const bool every = !call.params.has("users");
    if (every) {
      results = (state_.*all)(call.uid, ct->channel, ct->topic);
    } else {
      auto users = call.params.names("users");
      if (!users) return users.error();
      results = (state_.*change)(call.uid, ct->channel, ct->topic, *users);
    }
    if (!results) return results.error();
    auto doc = user_results(*results, [&](const std::string& user, json::Value& item, auto& a) {
      item.AddMember("topic",
                     json::str(core_.tree().channel_message(ct->channel, ct->topic, user), a), a);
    });
    json::set(doc, "channel", ct->channel);
    json::set(doc, "topic", ct->topic);
    if (every) {
      json::set_bool(doc, "all", state_.subscribes_all(call.uid, ct->channel, ct->topic));
      json::set(doc, "filter", core_.tree().channel_message(ct->channel, ct->topic, "+"));
    }
    return doc;
  }

  Outcome<Document> subscribe(Call& call) {
    return change_subscription(call, &StateStore::subscribe, &StateStore::subscribe_all);
  }
  Outcome<Document> unsubscribe(Call& call) {
    return change_subscription(call, &StateStore::unsubscribe, &StateStore::unsubscribe_all);
  }

  Outcome<Document> subscribed(Call& call) {
    auto ct = channel_topic(call);
    if (!ct) return ct.error();
    auto users = state_.subscribed(call.uid, ct->channel, ct->topic);
    if (!users) return users.error();
    auto doc = json::object();
    json::set(doc, "channel", ct->channel);
    json::set(doc, "topic", ct->topic);
    json::set(doc, "users", json::string_array(*users, doc.GetAllocator()));
    json::set_bool(doc, "all", state_.subscribes_all(call.uid, ct->channel, ct->topic));
    return doc;
  }

  Outcome<Document> watch(Call& call) {
    auto users = call.params.names("users");
    if (!users) return users.error();
    auto results = state_.watch(call.uid, *users);
    if (!results) return results.error();
    return user_results(*results, [&](const std::string& user, json::Value& item, auto& a) {
      item.AddMember("state", json::str(state_.online(user) ? "online" : "offline", a), a);
    });
  }

  Outcome<Document> unwatch(Call& call) {
    auto users = call.params.names("users");
    if (!users) return users.error();
    return user_results(state_.unwatch(call.uid, *users));
  }


  bool public_presence(const std::string& channel) const {
    for (const auto& pattern : core_.config().channels.public_presence) {
      if (topics::name_matches(pattern, channel)) return true;
    }
    return false;
  }

  // who_now: members, and anyone for a channel with public presence.
  Outcome<Document> who_now(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    if (!state_.is_member(call.uid, *channel) && !public_presence(*channel) &&
        !core_.is_operator(call.uid)) {
      return failure(ErrorCode::not_joined,
                     call.uid + " has not joined channel " + *channel +
                         " (who_now answers members; see channels.public_presence)");
    }
    auto include_state = call.params.flag("include_state");
    if (!include_state) return include_state.error();
    auto members = state_.members(*channel);
    auto doc = json::object();
    json::set(doc, "channel", *channel);
    json::set(doc, "members", json::string_array(*members, doc.GetAllocator()));
    if (*include_state) {
      // Members with presence states (docs/protocol.md, "Presence states").
      auto& a = doc.GetAllocator();
      json::Value states(rapidjson::kObjectType);
      for (const auto& [uid, items] : state_.states().channel_states(*channel)) {
        states.AddMember(json::str(uid, a), json::string_map(items, a), a);
      }
      json::set(doc, "states", std::move(states));
    }
    return doc;
  }

  // where_now: all of one's own channels; of another user, only the channels the asker is
  // a member of too, and those with public presence.
  Outcome<Document> where_now(Call& call) {
    auto uid = call.params.name("uid");
    if (!uid) return uid.error();
    auto channels = state_.channels_of(*uid);
    if (*uid != call.uid && !core_.is_operator(call.uid)) {
      channels.erase(std::remove_if(channels.begin(), channels.end(),
                                    [&](const std::string& c) {
                                      return !state_.is_member(call.uid, c) && !public_presence(c);
                                    }),
                     channels.end());
    }
    auto doc = json::object();
    json::set(doc, "uid", *uid);
    json::set(doc, "channels", json::string_array(channels, doc.GetAllocator()));
    return doc;
  }

  // kick: an operator (ops.uids) ends a user's session and has the broker close its
  // connections (where grants are enforced).
  Outcome<Document> kick_op(Call& call) {
    if (!core_.is_operator(call.uid)) {
      return failure(ErrorCode::forbidden, call.uid + " is not in ops.uids");
    }
    auto uid = call.params.name("uid");
    if (!uid) return uid.error();
    auto doc = json::object();
    json::set(doc, "uid", *uid);
    json::set_bool(doc, "had_session", kick(*uid));
    return doc;
  }

  // ------------------------------------------------------------ channel tokens

  enum class ChannelKind { stream, message };
  struct ChannelKey {
    ChannelKind kind;
    std::string uid, channel;
    bool operator<(const ChannelKey& o) const {
      return std::tie(uid, channel, kind) < std::tie(o.uid, o.channel, o.kind);
    }
  };
  static const char* kind_name(ChannelKind kind) {
    return kind == ChannelKind::stream ? "stream" : "message";
  }

  // The channel token of a request: its expiry (s since the epoch), 0 when the request
  // carries none and none is required. The token is a login token of the caller whose
  // `channel` claim names the channel.
  // `required_by`: the config key (or operation) that requires one; nullptr: optional.
  Outcome<std::int64_t> channel_token(Call& call, const std::string& channel,
                                      const char* required_by) {
    if (!call.params.has("token")) {
      if (!required_by) return std::int64_t{0};
      return failure(
          ErrorCode::channel_token_required,
          "channel " + channel + " needs a channel token (" + required_by + "): pass \"token\"");
    }
    auto claims = check_token(call);
    if (!claims) return claims.error();
    if (!claims->channel || *claims->channel != channel) {
      return failure(ErrorCode::token_channel_mismatch,
                     claims->channel
                         ? "the token is for channel \"" + *claims->channel + "\", not " + channel
                         : "the token has no channel claim (channel " + channel + ")");
    }
    return std::max<std::int64_t>(claims->exp, 1);
  }

  void channel_token_event(const ChannelKey& key, const char* state, std::int64_t expires_at_s) {
    auto e = event("token");
    json::set(e, "state", state);
    json::set(e, "channel", key.channel);
    json::set(e, "channel_type", kind_name(key.kind));
    json::set_int(e, "expires_at", expires_at_s);
    core_.publish_user_event(key.uid, "token", e);
  }

  void cancel_channel_timer(const ChannelKey& key) {
    auto it = channel_timers_.find(key);
    if (it == channel_timers_.end()) return;
    core_.timers().cancel(it->second.id);
    channel_timers_.erase(it);
  }

  void cancel_channel_timers(const std::string& uid) {
    auto it = channel_timers_.lower_bound(ChannelKey{ChannelKind::stream, uid, ""});
    while (it != channel_timers_.end() && it->first.uid == uid) {
      core_.timers().cancel(it->second.id);
      it = channel_timers_.erase(it);
    }
  }

  // The channel token's expiry as the rows say (s since the epoch), 0: none, or no longer
  // a member or subscriber.
  std::int64_t channel_token_expiry_s(const ChannelKey& key) const {
    if (key.kind == ChannelKind::stream) {
      return state_.is_member(key.uid, key.channel)
                 ? state_.member_token(key.uid, key.channel) / 1000
                 : 0;
    }
    const auto sub = state_.message_channel(key.uid, key.channel);
    return sub ? sub->token_expires_at_ms / 1000 : 0;
  }

  // As session_token_current, for a channel token.
  bool channel_token_current(const ChannelKey& key, std::int64_t expires_at_s) {
    const std::int64_t now_s = channel_token_expiry_s(key);
    if (now_s == expires_at_s) return true;
    if (now_s > 0) {
      schedule_channel_timers(key, now_s);
    } else {
      channel_timers_.erase(key);
    }
    return false;
  }

  // A membership or subscription another gateway changed: its timer as the rows say.
  void follow_channel_token(const ChannelKey& key) {
    const std::int64_t expires_at_s = channel_token_expiry_s(key);
    if (expires_at_s <= 0) return cancel_channel_timer(key);
    const auto armed = channel_timers_.find(key);
    if (armed == channel_timers_.end() || armed->second.expires_at_s != expires_at_s) {
      schedule_channel_timers(key, expires_at_s);
    }
  }

  void warn_channel_token(const ChannelKey& key, std::int64_t expires_at_s) {
    const std::string claim = "warn:" + key.uid + "/" + kind_name(key.kind) + "/" + key.channel +
                              ":" + std::to_string(expires_at_s);
    if (claim_warning(claim, expires_at_s)) channel_token_event(key, "will_expire", expires_at_s);
  }

  // As the session's timer: a "will expire" warning auth.token_warn_before_s ahead, then
  // the expiry, which leaves the channel. 0: no token, no timer.
  void schedule_channel_timers(const ChannelKey& key, std::int64_t expires_at_s) {
    cancel_channel_timer(key);
    if (expires_at_s <= 0) return;
    const std::int64_t expires_ms = expires_at_s * 1000;
    const std::int64_t warn_ms = expires_ms - core_.config().auth.token_warn_before_s * 1000LL;
    auto expire_fn = [this, key, expires_at_s] {
      if (channel_token_current(key, expires_at_s)) channel_token_expired(key, expires_at_s);
    };
    auto warn_fn = [this, key, expires_at_s, expire_fn] {
      if (!channel_token_current(key, expires_at_s)) return;
      warn_channel_token(key, expires_at_s);
      channel_timers_[key] = {core_.timers().at(expires_at_s * 1000, expire_fn), expires_at_s};
    };
    if (core_.config().auth.token_warn_before_s > 0 && warn_ms < expires_ms && warn_ms > now_ms()) {
      channel_timers_[key] = {core_.timers().at(warn_ms, warn_fn), expires_at_s};
    } else {
      if (core_.config().auth.token_warn_before_s > 0 && expires_ms > now_ms()) {
        warn_channel_token(key, expires_at_s);
      }
      channel_timers_[key] = {core_.timers().at(expires_ms, expire_fn), expires_at_s};
    }
  }

  void channel_token_expired(const ChannelKey& key, std::int64_t expires_at_s) {
    channel_timers_.erase(key);
    spdlog::info("{} left {} channel {}: its channel token expired", key.uid, kind_name(key.kind),
                 key.channel);
    channel_token_event(key, "expired", expires_at_s);
    removing();
    if (key.kind == ChannelKind::stream) {
      if (auto gone = state_.leave(key.uid, key.channel)) {
        departures(key.uid, {*gone}, kTokenExpired);
      }
    } else if (auto was = state_.unsubscribe_channel(key.uid, key.channel)) {
      message_channel_departure(key.uid, *was, kTokenExpired);
    }
  }

  Outcome<Document> renew_channel_token(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    const bool member = state_.is_member(call.uid, *channel);
    auto sub = state_.message_channel(call.uid, *channel);
    if (!member && !sub) {
      return failure(ErrorCode::not_joined, call.uid + " has neither joined stream channel " +
                                                *channel + " nor subscribed to message channel " +
                                                *channel);
    }
    auto token = channel_token(call, *channel, "renew_channel_token");
    if (!token) return token.error();
    auto result = json::object();
    json::set(result, "channel", *channel);
    json::set_int(result, "expires_at", *token);
    if (member) {
      state_.set_member_token(call.uid, *channel, *token * 1000);
      schedule_channel_timers({ChannelKind::stream, call.uid, *channel}, *token);
    }
    if (sub) {
      sub->token_expires_at_ms = *token * 1000;
      (void)state_.subscribe_channel(call.uid, *sub);
      schedule_channel_timers({ChannelKind::message, call.uid, *channel}, *token);
    }
    json::set_bool(result, "stream", member);
    json::set_bool(result, "message", sub.has_value());
    return result;
  }

  // ------------------------------------------------------------ message channels (RTM 2)

  void message_channel_event(const std::string& channel, const char* name, const std::string& uid,
                             const char* reason = nullptr) {
    auto e = event(name);
    json::set(e, "channel", channel);
    json::set(e, "channel_type", "message");
    json::set(e, "uid", uid);
    if (reason) json::set(e, "reason", reason);
    core_.publish(core_.tree().message_channel_events(channel), json::dump(e), 1, false);
  }

  // A subscription that ended: its presence subscribers hear of a presence subscriber.
  void message_channel_departure(const std::string& uid, const MessageChannelSubscription& sub,
                                 const char* reason) {
    cancel_channel_timer({ChannelKind::message, uid, sub.channel});
    if (!sub.presence) return;
    const bool timed_out = std::string_view(reason) == kConnectionLost;
    message_channel_event(sub.channel, timed_out ? "member_timed_out" : "member_left", uid, reason);
  }

  // subscribe_channel: reads a message channel without a join; `with_presence` makes the
  // subscriber a listed presence subscriber that hears the others come and go.
  Outcome<Document> subscribe_channel(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    auto presence = call.params.flag("with_presence");
    if (!presence) return presence.error();
    const auto before = state_.message_channel(call.uid, *channel);
    auto token = channel_token(call, *channel,
                               core_.config().channels.message_token_required && !before
                                   ? "channels.message_token_required"
                                   : nullptr);
    if (!token) return token.error();
    MessageChannelSubscription sub{*channel, *presence, *token * 1000};
    // Subscribing again without a token keeps the token the subscription had.
    if (before && *token == 0) sub.token_expires_at_ms = before->token_expires_at_ms;
    auto added = state_.subscribe_channel(call.uid, sub);
    if (!added) return added.error();
    const bool was_present = before && before->presence;
    if (*presence && !was_present) {
      message_channel_event(*channel, "member_joined", call.uid);
    } else if (!*presence && was_present) {
      message_channel_event(*channel, "member_left", call.uid, "presence_off");
    }
    if (*token > 0) {
      schedule_channel_timers({ChannelKind::message, call.uid, *channel}, *token);
    }
    auto result = json::object();
    json::set(result, "channel", *channel);
    json::set(result, "filter", core_.tree().message_channel_filter(*channel));
    json::set(result, "publish_to", core_.tree().message_channel(*channel, call.uid));
    json::set_bool(result, "with_presence", *presence);
    if (sub.token_expires_at_ms > 0) {
      json::set_int(result, "token_expires_at", sub.token_expires_at_ms / 1000);
    }
    if (*presence) {
      json::set(result, "events_topic", core_.tree().message_channel_events(*channel));
      json::set(
          result, "members",
          json::string_array(state_.channel_subscribers(*channel, true), result.GetAllocator()));
    }
    return result;
  }

  Outcome<Document> unsubscribe_channel(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    removing();
    auto was = state_.unsubscribe_channel(call.uid, *channel);
    if (!was) return was.error();
    message_channel_departure(call.uid, *was, kLeft);
    auto result = json::object();
    json::set(result, "channel", *channel);
    return result;
  }

  // ------------------------------------------------------------ presence topic

  bool on_presence(const Message& m) {
    auto parsed = core_.tree().parse(m.topic);
    if (!parsed || parsed->kind != topics::TopicKind::presence) return false;
    const std::string& uid = parsed->uid;
    if (topics::name_error(uid)) return true;
    if (m.payload.empty()) return true;  // a cleared retained message
    Document doc;
    (void)mapping::parse_untrusted_json(m.payload, doc);  // a refused one stays null
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("state") ||
        !doc["state"].IsString()) {
      spdlog::debug("presence of {}: ignored payload that is not {{\"state\":...}}", uid);
      return true;
    }
    const std::string state = doc["state"].GetString();
    std::string connection;
    if (doc.HasMember("session") && doc["session"].IsString()) {
      connection = doc["session"].GetString();
    }
    const bool by_gateway = doc.HasMember("by") && doc["by"].IsString() &&
                            std::string_view(doc["by"].GetString()) == "gateway";
    // Our own corrections come back to us; they were applied when sent. Retained ones
    // are read at start-up, when they are the state to rebuild.
    if (by_gateway && !m.retained) return true;

    const bool was_online = state_.online(uid);
    // A session restored at start-up meets its retained presence here: offline means the
    // user went away while the gateway was down.
    const bool restored = restored_.erase(uid) > 0;
    if (state == "online") {
      unconfirmed_.erase(uid);
      state_.set_presence(uid, true, connection);
    } else if (state == "offline") {
      const auto known = state_.presence(uid);
      if (known && !known->connection.empty() && !connection.empty() &&
          known->connection != connection) {
        spdlog::debug("presence of {}: offline from older connection {} ignored (current {})", uid,
                      connection, known->connection);
        return true;
      }
      state_.forget_presence(uid);
      if ((!m.retained || restored) && state_.has_session(uid)) {
        spdlog::info("{} went offline (connection {}): ending its session", uid, connection);
        end_session(uid, kConnectionLost, true);  // tells watchers itself
        return true;
      }
    } else {
      spdlog::debug("presence of {}: unknown state \"{}\"", uid, state);
      return true;
    }
    presence_changed(uid, was_online);
    return true;
  }

  // ------------------------------------------------------------ broker lost our session

  // Every session must show it is alive within presence.reaffirm_grace_s (a presence
  // "online", or any request), or it ends as timed out: its Will may have been lost with
  // the broker's state, and it would otherwise stay a member until its token expires.
  void on_broker_session_lost() override {
    const auto uids = state_.session_uids();
    if (uids.empty()) return;
    unconfirmed_.insert(uids.begin(), uids.end());
    const int grace_s = core_.config().presence.reaffirm_grace_s;
    spdlog::warn("presence: the broker lost the gateway's session (restarted without persistence?): "
                 "{} session(s) must show they are alive within {} s",
                 uids.size(), grace_s);
    if (reaffirm_timer_) core_.timers().cancel(reaffirm_timer_);
    reaffirm_timer_ = core_.timers().at(now_ms() + grace_s * 1000LL, [this] {
      reaffirm_timer_ = 0;
      std::vector<std::string> gone(unconfirmed_.begin(), unconfirmed_.end());
      unconfirmed_.clear();
      std::size_t ended = 0;
      for (const auto& uid : gone) {
        if (!state_.has_session(uid)) continue;
        end_session(uid, kConnectionLost, true);
        ++ended;
      }
      if (ended > 0) spdlog::info("presence: {} session(s) did not show up again: ended as timed out", ended);
    });
  }

  // Bumped before every removal from the state (see RtmApi::generation).
  void removing() { generation_.fetch_add(1, std::memory_order_acq_rel); }

  Core& core_;
  std::unordered_set<std::string> unconfirmed_;  // sessions to re-affirm (see above)
  Timers::Id reaffirm_timer_ = 0;
  std::atomic<std::uint64_t> generation_{1};
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  std::shared_ptr<ConnectionControl> control_;
  std::shared_ptr<GrantFeed> feed_;
  std::unordered_map<std::string, ArmedTimer> token_timers_;  // runtime, not stored
  std::map<ChannelKey, ArmedTimer> channel_timers_;           // channel tokens, runtime
  // Sessions restored at start-up that have not shown themselves since (see on_presence).
  std::unordered_set<std::string> restored_;
  std::mt19937_64 rng_;
};

// The RTM state's numbers for the metrics, and its limits for a reload.
class RtmOperations final : public Reloadable, public MetricsSource {
 public:
  explicit RtmOperations(std::shared_ptr<RtmService> service) : service_(std::move(service)) {}
  void reload(const Config& next) override { service_->state().set_limits(next.limits); }
  void write_metrics(MetricsWriter& out) const override {
    const auto& state = service_->state();
    out.gauge("rtm_sessions", "Live sessions (logged-in users and bridged devices)",
              static_cast<double>(state.session_count()));
    out.gauge("rtm_channels", "Channels with at least one member or topic",
              static_cast<double>(state.channel_count()));
    out.gauge("rtm_subscriptions", "Subscriptions to publishers, (subscriber, publisher) pairs",
              static_cast<double>(state.subscription_count()));
  }

 private:
  std::shared_ptr<RtmService> service_;
};

}  // namespace

std::shared_ptr<RtmApi> register_rtm_operations(Core& core) {
  return register_rtm_operations(core, make_state_store(core.config()));
}

std::shared_ptr<RtmApi> register_rtm_operations(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<RtmService>(core, store);
  service->install();
  if (store->durable()) core.set_durability(store);
  const auto& enforcement = core.config().enforcement;
  // EMQX's and RabbitMQ's HTTP answers both come from a table kept here.
  const bool keep_table = enforcement.http_authz || enforcement.rabbitmq_http_auth;
  if (enforcement.publish_grants || keep_table) {
    auto feed = std::make_shared<GrantFeed>(core, store, enforcement.publish_grants, keep_table);
    // The local table starts from the restored state; the broker gets its full set at
    // every connect.
    if (keep_table) feed->send_full_set();
    core.add_publish_barrier(feed);
    core.add_broker_session_observer(feed);
    core.add_metrics_source(feed);
    service->set_connection_control(feed);
    service->set_grant_feed(feed);
  }
  service->resume();
  core.set_session_directory(service);
  core.add_message_handler(service);
  core.add_broker_session_observer(service);
  auto ops = std::make_shared<RtmOperations>(service);
  core.add_reloadable(ops);
  core.add_metrics_source(ops);
  return service;
}

}  // namespace rtm::gateway
