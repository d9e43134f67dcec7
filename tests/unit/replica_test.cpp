// The replica rows (rtm/gateway/replica.hpp): a model X changed by random operations, its
// changed rows read, encoded, and applied to a model Y, which must then be the same model
// (rows, queries, indexes) and go on the same way under new operations; the encoding round
// trip; bad rows skipped with a message.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rtm/gateway/replica.hpp"
#include "state_backends.hpp"

namespace {

namespace gw = rtm::gateway;
namespace replica = rtm::gateway::replica;

const std::vector<std::string> kUsers = {"amy", "bob", "cleo", "dan", "ünï", "eve"};
const std::vector<std::string> kChannels = {"lobby", "κανάλι", "room"};
const std::vector<std::string> kTopics = {"t1", "chat"};
const std::vector<std::string> kMessageChannels = {"news", "feed"};
const std::vector<std::string> kLocks = {"door", "pen"};

gw::LimitsConfig small_limits() {
  gw::LimitsConfig limits;
  limits.channels_per_user = 2;
  limits.members_per_channel = 4;
  limits.topics_per_channel = 2;
  limits.publishers_per_subscription = 3;
  limits.subscribed_topics_per_channel = 2;
  limits.watched_users = 3;
  limits.message_channels_per_user = 1;
  limits.subscribers_per_message_channel = 3;
  return limits;
}

void small_sub_limits(gw::MemoryStore& s) {
  rtm::storage::LockLimits locks;
  locks.max_channels = 2;
  locks.min_ttl_s = 1;
  s.locks().set_limits(locks);
  gw::InboxLimits inbox;
  inbox.max_messages_per_user = 3;
  inbox.max_age_ms = 2000;
  s.inbox().set_limits(inbox);
  rtm::invitations::Limits invitations;
  invitations.ack_timeout_ms = 300;
  invitations.expire_ms = 600;
  invitations.max_per_caller = 2;
  s.invitations().set_limits(invitations);
}

// A model whose changes are noted, as a shared backend notes them (SqliteStore's listeners).
struct Source {
  explicit Source(const gw::LimitsConfig& limits) : store(limits) {
    store.track_rows(&changes, true);
    small_sub_limits(store);
  }
  ~Source() {
    store.track_rows(nullptr, false);
  }
  gw::MemoryStore store;
  gw::ChangeSet changes;
};

std::string code(const gw::Failure& f) {
  return "E" + std::to_string(static_cast<int>(f.code));
}

std::string results(const std::vector<gw::UserResult>& rs) {
  std::string out;
  for (const auto& r : rs) out += " " + r.uid + (r.error ? "!" + code(*r.error) : "");
  return out;
}

template <class T>
std::string storage_outcome(const rtm::storage::Result<T>& r) {
  return r ? "ok" : "E" + std::to_string(static_cast<int>(r.error().code));
}

// One random operation on `s` (the same draws give the same operation on any store); what
// it answered, as text. `changes` (if given) notes presence as well (a store tracking its
// rows notes it too, MemoryStore::track_rows).
std::string run_op(gw::MemoryStore& s, std::mt19937& rng, std::int64_t now,
                   gw::ChangeSet* changes) {
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  auto some_users = [&]() {
    std::vector<std::string> out;
    const auto n = rng() % 3;
    for (std::uint32_t i = 0; i < n; ++i) out.push_back(pick(kUsers));
    return out;
  };
  const std::string uid = pick(kUsers);
  const std::string channel = pick(kChannels);
  const std::string topic = pick(kTopics);
  switch (rng() % 30) {
    case 0:
    case 1: {
      if (s.has_session(uid) && rng() % 4 != 0) return "start: has one";  // joins stay longer
      auto gone = s.end_session(uid);
      s.invitations().session_ended(uid);
      for (const auto& d : gone) s.locks().holder_left(d.channel, uid, now);
      s.start_session(uid, "sid-" + std::to_string(now), now, now + 5000);
      return "start " + std::to_string(gone.size());
    }
    case 2:
      s.renew_session(uid, now + 7000);
      return "renew";
    case 3: {
      if (rng() % 2 == 0) return "end: not now";
      const auto gone = s.end_session(uid);
      s.invitations().session_ended(uid);
      for (const auto& d : gone) s.locks().holder_left(d.channel, uid, now);
      return "end " + std::to_string(gone.size());
    }
    case 4:
    case 5:
    case 6: {
      bool joined = false;
      auto r = s.join(uid, channel, &joined);
      if (!r) return "join " + code(r.error());
      std::string out = "join " + std::to_string(joined);
      for (const auto& m : r.value().members) out += " " + m;
      if (joined) s.locks().holder_returned(channel, uid);
      return out;
    }
    case 7: {
      auto r = s.leave(uid, channel);
      if (r) s.locks().holder_left(channel, uid, now);
      return r ? "leave " + std::to_string(r.value().topics_left.size())
               : "leave " + code(r.error());
    }
    case 8:
    case 9: {
      auto r = s.join_topic(uid, channel, topic);
      return r ? "join_topic " + std::to_string(r.value().added) +
                     results(r.value().all_subscribers)
               : "join_topic " + code(r.error());
    }
    case 10: {
      auto r = s.leave_topic(uid, channel, topic);
      return r ? "leave_topic " + std::to_string(r.value()) : "leave_topic " + code(r.error());
    }
    case 11:
    case 12: {
      auto r = s.subscribe(uid, channel, topic, some_users());
      return r ? "subscribe" + results(r.value()) : "subscribe " + code(r.error());
    }
    case 13: {
      auto r = s.unsubscribe(uid, channel, topic, some_users());
      return r ? "unsubscribe" + results(r.value()) : "unsubscribe " + code(r.error());
    }
    case 14: {
      auto r = s.subscribe_all(uid, channel, topic);
      return r ? "subscribe_all" + results(r.value()) : "subscribe_all " + code(r.error());
    }
    case 15: {
      auto r = s.unsubscribe_all(uid, channel, topic);
      return r ? "unsubscribe_all" + results(r.value()) : "unsubscribe_all " + code(r.error());
    }
    case 16: {
      auto r = s.watch(uid, some_users());
      return r ? "watch" + results(r.value()) : "watch " + code(r.error());
    }
    case 17:
      return "unwatch" + results(s.unwatch(uid, some_users()));
    case 18: {
      gw::MessageChannelSubscription sub{pick(kMessageChannels), rng() % 2 == 0,
                                         static_cast<std::int64_t>(rng() % 3) * 1000};
      auto r = s.subscribe_channel(uid, sub);
      return r ? "subscribe_channel " + std::to_string(r.value())
               : "subscribe_channel " + code(r.error());
    }
    case 19: {
      auto r = s.unsubscribe_channel(uid, pick(kMessageChannels));
      return r ? "unsubscribe_channel " + r.value().channel
               : "unsubscribe_channel " + code(r.error());
    }
    case 20:
      return "token " + std::to_string(s.set_member_token(uid, channel, now + 100 * (rng() % 3)));
    case 21: {
      const bool forget = rng() % 3 == 0;
      if (forget) {
        s.forget_presence(uid);
      } else {
        s.set_presence(uid, rng() % 2 == 0, "conn-" + std::to_string(rng() % 4));
      }
      if (changes) changes->presence.insert(uid);
      return "presence";
    }
    case 22: {
      rtm::storage::Write w;
      w.kind = rng() % 4 == 0 ? rtm::storage::WriteKind::remove : rtm::storage::WriteKind::set;
      w.record_author = rng() % 2 == 0;
      w.record_ts = true;
      // Opaque bytes: sometimes not UTF-8, with a NUL.
      std::string value = rng() % 3 == 0 ? std::string("\xff\x00\xfe", 3) : "vä" + uid;
      w.items.push_back({pick(kTopics), value});
      const auto scope = rng() % 2 == 0 ? gw::MetadataScope::user : gw::MetadataScope::channel;
      return "metadata " + storage_outcome(s.metadata().write(scope, pick(kUsers), w, {uid, now}));
    }
    case 23: {
      if (rng() % 3 == 0)
        return "metadata_unsubscribe " +
               std::to_string(s.metadata().unsubscribe(uid, pick(kUsers)));
      if (!s.has_session(uid)) return "metadata_subscribe no session";
      auto r = s.metadata().subscribe(uid, pick(kUsers), 2);
      return r ? "metadata_subscribe " + std::to_string(r.value())
               : "metadata_subscribe " + code(r.error());
    }
    case 24: {
      const std::string lock = pick(kLocks);
      switch (rng() % 5) {
        case 0:
          return "set_lock " + storage_outcome(s.locks().set_lock(channel, lock, 1 + rng() % 2));
        case 1:
        case 2:
          if (!s.is_member(uid, channel)) return "acquire not a member";
          return "acquire " +
                 storage_outcome(s.locks().acquire(channel, lock, uid, rng() % 2 == 0, now));
        case 3:
          return "release " + storage_outcome(s.locks().release(channel, lock, uid, now));
        default:
          return "remove_lock " + storage_outcome(s.locks().remove(channel, lock, now));
      }
    }
    case 25:
    case 26: {
      if (rng() % 3 == 0) {
        const auto taken = s.inbox().take(uid, s.inbox().next_id(now));
        return "take " + std::to_string(taken.size());
      }
      gw::PeerMessage m;
      m.id = s.inbox().next_id(now);
      m.from = pick(kUsers);
      m.to = uid;
      m.ts_ms = now;
      m.binary = rng() % 2 == 0;
      m.receipt = rng() % 2 == 0;
      m.payload = m.binary ? std::string("\x00\x01\x80\xff", 4) : u8"héllo ✓";
      auto r = s.inbox().put(m);
      return "put " + std::to_string(m.id) + (r ? " ok" : " " + code(r.error()));
    }
    case 27: {
      auto r = s.invitations().invite(uid, pick(kUsers), u8"call ☎", rng() % 2 ? channel : "",
                                      s.has_session(uid) || rng() % 2 == 0, now);
      return r ? "invite " + std::to_string(r.value().id) + " " +
                     std::to_string(r.value().changed.size())
               : "invite E" + std::to_string(static_cast<int>(r.error().code));
    }
    case 28: {
      const auto mine = s.invitations().of(uid);
      if (mine.empty()) return "answer none";
      const auto id = mine[rng() % mine.size()].id;
      switch (rng() % 4) {
        case 0:
          return "ack " + std::to_string(static_cast<bool>(s.invitations().ack(uid, id, now)));
        case 1:
          return "accept " +
                 std::to_string(static_cast<bool>(s.invitations().accept(uid, id, "yes", now)));
        case 2:
          return "refuse " +
                 std::to_string(static_cast<bool>(s.invitations().refuse(uid, id, "no", now)));
        default:
          return "cancel " +
                 std::to_string(static_cast<bool>(s.invitations().cancel(uid, id, now)));
      }
    }
    default: {
      // Time passes: locks, invitations and kept messages expire.
      const auto locks = s.locks().due(now);
      const auto invitations = s.invitations().due(now);
      const auto expired = s.inbox().expire(now);
      return "due " + std::to_string(locks.size()) + " " +
             std::to_string(invitations.events.size()) + " " + std::to_string(expired.size());
    }
  }
}

std::vector<replica::Row> all_rows(const gw::MemoryStore& s) {
  std::vector<replica::Row> rows;
  replica::for_each_row(s, [&](replica::Row row) { rows.push_back(std::move(row)); });
  std::sort(rows.begin(), rows.end(),
            [](const replica::Row& a, const replica::Row& b) { return a.field < b.field; });
  return rows;
}

std::string sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  std::string out;
  for (const auto& x : v) out += x + ",";
  return out;
}

std::string locks_text(const std::vector<rtm::storage::LockState>& locks) {
  std::string out;
  for (const auto& l : locks) {
    out += l.name + ":" + std::to_string(l.ttl_s) + ":" + l.holder.value_or("-") + ":" +
           std::to_string(l.expires_at_ms.value_or(-1)) + ":";
    for (const auto& w : l.waiters) out += w + ";";
    out += " ";
  }
  return out;
}

std::string messages_text(const std::vector<gw::PeerMessage>& messages) {
  std::string out;
  for (const auto& m : messages) {
    out += std::to_string(m.id) + ":" + m.from + ">" + m.to + ":" + std::to_string(m.ts_ms) + ":" +
           std::to_string(m.binary) + std::to_string(m.receipt) + ":" + m.payload + " ";
  }
  return out;
}

std::string invitations_text(const std::vector<rtm::invitations::Invitation>& list) {
  std::string out;
  for (const auto& i : list) {
    out += std::to_string(i.id) + ":" + i.caller + ">" + i.callee + ":" + i.content + ":" +
           i.channel_id + ":" + std::to_string(static_cast<int>(i.phase)) + ":" +
           std::to_string(i.created_ms) + ":" + std::to_string(i.deadline_ms) + " ";
  }
  return out;
}

// Everything a reader of the model can see, as text (message channel subscribers sorted:
// their order across users is not part of the rows).
std::string observed(const gw::MemoryStore& s) {
  std::string out = rtm::test::dump(s);
  out += "counts " + std::to_string(s.session_count()) + " " + std::to_string(s.channel_count()) +
         " " + std::to_string(s.subscription_count()) + " " +
         std::to_string(s.message_channel_count()) + "\n";
  for (const auto& channel : kChannels) {
    out += "channel " + channel;
    const auto members = s.members(channel);
    for (const auto& m : members.value()) out += " " + m;
    const auto snap = s.snapshot(channel);
    for (const auto& t : snap.topics) out += " [" + t.topic + " " + sorted(t.publishers) + "]";
    out += "\n";
    for (const auto& topic : kTopics) {
      out += " topic " + topic + " " + sorted(s.publishers(channel, topic)) + "\n";
      for (const auto& uid : kUsers) {
        const auto subscribed = s.subscribed(uid, channel, topic);
        out += "  " + uid + " member " + std::to_string(s.is_member(uid, channel)) + " token " +
               std::to_string(s.member_token(uid, channel)) + " publisher " +
               std::to_string(s.is_publisher(uid, channel, topic)) + " all " +
               std::to_string(s.subscribes_all(uid, channel, topic)) + " subscribed " +
               (subscribed ? sorted(subscribed.value()) : code(subscribed.error())) + "\n";
      }
    }
    out += " locks " + locks_text(s.locks().get_locks(channel)) + "\n";
  }
  for (const auto& mc : kMessageChannels) {
    out += "message channel " + mc + " " + sorted(s.channel_subscribers(mc, false)) + " " +
           sorted(s.channel_subscribers(mc, true)) + "\n";
  }
  for (const auto& uid : kUsers) {
    const auto session = s.session(uid);
    out += "user " + uid + " online " + std::to_string(s.online(uid)) + " session " +
           (session ? session->session_id + "@" + std::to_string(session->expires_at_ms) : "-") +
           " channels";
    for (const auto& c : s.channels_of(uid)) out += " " + c;
    out += " watchers " + sorted(s.watchers_of(uid)) + " message_channels";
    for (const auto& m : s.message_channels_of(uid)) {
      out += " " + m.channel + std::to_string(m.presence) + std::to_string(m.token_expires_at_ms);
    }
    const auto presence = s.presence(uid);
    out += " presence " + (presence ? std::to_string(presence->connected) + presence->connection
                                    : std::string("-"));
    for (auto scope : {gw::MetadataScope::user, gw::MetadataScope::channel}) {
      const auto m = s.metadata().read(scope, uid);
      out += " metadata " + std::to_string(m.major_revision);
      for (const auto& [key, item] : m.items) {
        out += " " + key + "=" + item.value + "@" + std::to_string(item.revision) + "/" +
               item.author.value_or("-") + "/" + std::to_string(item.updated_at_ms.value_or(-1));
      }
    }
    out += " metadata_subscribers " + sorted(s.metadata().subscribers_of(uid)) +
           " metadata_subscriptions " + sorted(s.metadata().subscriptions_of(uid));
    out += " inbox " + messages_text(s.inbox().list(uid, 0, 1000)) + " count " +
           std::to_string(s.inbox().count(uid));
    out += " invitations " + invitations_text(s.invitations().of(uid)) + " involves " +
           std::to_string(s.invitations().involves(uid)) + "\n";
  }
  out += "metadata_count " + std::to_string(s.metadata().metadata_count()) + " locks " +
         std::to_string(s.locks().lock_count()) + " " +
         std::to_string(s.locks().next_deadline().value_or(-1)) + " " +
         sorted(s.locks().channels()) + " inbox " + std::to_string(s.inbox().message_count()) +
         " " + std::to_string(s.inbox().bytes()) + " " + std::to_string(s.inbox().user_count()) +
         " " + std::to_string(s.inbox().next_expiry().value_or(-1)) + " invitations " +
         std::to_string(s.invitations().size()) + " " +
         std::to_string(s.invitations().next_deadline().value_or(-1)) + "\n";
  return out;
}

// Control bytes (binary values) shown as \xNN, so that a failure prints whole.
std::string printable(const std::string& text) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : text) {
    if (c < 0x20 && c != '\n') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// The rows with every member's seq left out.
std::vector<replica::Row> rows_without_seqs(const gw::MemoryStore& s) {
  static const std::regex kSeq("\"seq\":[0-9]+");
  auto rows = all_rows(s);
  for (auto& row : rows) {
    if (row.value) row.value = std::regex_replace(*row.value, kSeq, "\"seq\":_");
  }
  return rows;
}

void check_same(const gw::MemoryStore& x, const gw::MemoryStore& y, bool same_seqs) {
  CHECK(x.index_problems() == std::vector<std::string>{});
  CHECK(y.index_problems() == std::vector<std::string>{});
  CHECK(printable(observed(x)) == printable(observed(y)));
  if (same_seqs) {
    CHECK(all_rows(x) == all_rows(y));
  } else {
    CHECK(rows_without_seqs(x) == rows_without_seqs(y));
  }
}

// The most of each thing the model held at once, to show what a run exercised.
void note_peaks(const gw::MemoryStore& s, std::map<std::string, std::size_t>& peak) {
  auto note = [&](const char* what, std::size_t n) { peak[what] = std::max(peak[what], n); };
  note("sessions", s.session_count());
  note("channels", s.channel_count());
  note("subscriptions", s.subscription_count());
  note("message channels", s.message_channel_count());
  note("metadata", s.metadata().metadata_count());
  note("locks", s.locks().lock_count());
  note("kept messages", s.inbox().message_count());
  note("invitations", s.invitations().size());
  std::size_t members = 0, publishing = 0, automatic = 0, all = 0, watches = 0;
  s.for_each_member([&](const std::string&, const std::string&, const gw::StoredMember& m) {
    ++members;
    publishing += m.publishing.size();
    for (const auto& sub : m.subscriptions) {
      automatic += sub.automatic.size();
      all += sub.all;
    }
  });
  s.for_each_session([&](const gw::StoredSession& session) { watches += session.watching.size(); });
  note("members", members);
  note("publishing", publishing);
  note("automatic", automatic);
  note("all", all);
  note("watches", watches);
}

void run_model(std::uint32_t seed) {
  CAPTURE(seed);
  Source x(small_limits());
  gw::MemoryStore y(small_limits());
  small_sub_limits(y);
  gw::MemoryStore reloaded(small_limits());  // now and then rebuilt from every row of x
  small_sub_limits(reloaded);
  std::mt19937 rng(seed);
  std::int64_t now = 1000000;
  int since_sync = 0;
  std::map<std::string, std::size_t> peak;
  int syncs = 0;
  int reloads = 0;
  for (int step = 0; step < 1500; ++step) {
    CAPTURE(step);
    now += 1 + rng() % 40;
    run_op(x.store, rng, now, &x.changes);
    if (++since_sync < static_cast<int>(1 + rng() % 6)) continue;
    since_sync = 0;
    const auto rows = replica::read_rows(x.store, x.changes);
    x.changes.clear();
    gw::ChangeSet applied;
    REQUIRE(replica::apply_rows(y, rows, &applied) == std::vector<std::string>{});
    CHECK(applied.size() >= rows.size() - (applied.inbox_last_id ? 1 : 0));
    check_same(x.store, y, true);
    note_peaks(x.store, peak);
    if (++syncs % 20 == 0) {
      replica::clear(reloaded);
      std::vector<replica::Row> every;
      replica::for_each_row(x.store, [&](replica::Row r) { every.push_back(std::move(r)); });
      REQUIRE(replica::apply_rows(reloaded, every, nullptr) == std::vector<std::string>{});
      check_same(x.store, reloaded, true);
      ++reloads;
    }
  }
  CHECK(reloads >= 5);
  for (const auto& [what, n] : peak) {
    CAPTURE(what);
    CHECK(n >= 1);
  }
  // Y goes on as X does: the same operations, the same answers (ids, snapshots, limits).
  const auto rows = replica::read_rows(x.store, x.changes);
  x.changes.clear();
  REQUIRE(replica::apply_rows(y, rows, nullptr) == std::vector<std::string>{});
  for (int step = 0; step < 400; ++step) {
    CAPTURE(step);
    now += 1 + rng() % 40;
    const auto state = rng();
    std::mt19937 rx(state);
    std::mt19937 ry(state);
    const auto answer_x = run_op(x.store, rx, now, nullptr);
    const auto answer_y = run_op(y, ry, now, nullptr);
    REQUIRE(answer_x == answer_y);
    // Sequences may differ (a member that joined and left between two reads leaves no row),
    // but their order may not: the index checks compare join orders with seqs.
    check_same(x.store, y, false);
  }
}

}  // namespace

TEST_CASE("replica: random operations on X, their rows applied to Y, give the same model") {
  for (std::uint32_t seed : {1u, 2u, 3u, 17u, 4242u}) run_model(seed);
}

TEST_CASE("replica: every row survives encode and decode exactly") {
  Source x(gw::LimitsConfig{});
  auto& s = x.store;
  s.start_session(u8"ünï", "", 0, 0);  // empty session id, zero times
  s.start_session("amy", "s1", 1, 9223372036854775807LL);
  bool joined = false;
  REQUIRE(s.join("amy", u8"κανάλι", &joined));
  REQUIRE(s.join(u8"ünï", u8"κανάλι", &joined));
  REQUIRE(s.join_topic("amy", u8"κανάλι", u8"тема"));
  REQUIRE(s.subscribe(u8"ünï", u8"κανάλι", u8"тема", {"amy", "ghost"}));
  REQUIRE(s.subscribe_all("amy", u8"κανάλι", "empty"));  // all mode, no publishers
  REQUIRE(s.watch("amy", {u8"ünï", "nobody"}));
  REQUIRE(s.subscribe_channel("amy", {"news", true, -5}));
  s.set_presence("amy", true, "");
  s.set_presence("zed", false, u8"conn ✓");
  rtm::storage::Write w;
  w.items.push_back({"bin", std::string("\x00\xff\x80", 3)});
  w.items.push_back({u8"ключ", u8"значение"});
  w.record_author = true;
  REQUIRE(s.metadata().write(gw::MetadataScope::user, "amy", w, {"amy", 5}));
  REQUIRE(s.metadata().write(gw::MetadataScope::channel, u8"κανάλι", w, {"amy", 6}));
  REQUIRE(s.metadata().subscribe("amy", u8"ünï", 10));
  REQUIRE(s.locks().set_lock(u8"κανάλι", "door", 10));
  REQUIRE(s.locks().acquire(u8"κανάλι", "door", "amy", false, 7));
  REQUIRE(s.locks().acquire(u8"κανάλι", "door", u8"ünï", true, 7));
  s.locks().holder_left(u8"κανάλι", "amy", 8);
  gw::PeerMessage m;
  m.id = s.inbox().next_id(10);
  m.from = "amy";
  m.to = u8"ünï";
  m.binary = true;
  m.payload = std::string("\x00\x01\xfe\xff\"\\", 6);
  REQUIRE(s.inbox().put(m));
  m.id = s.inbox().next_id(11);
  m.binary = false;
  m.payload = "";
  REQUIRE(s.inbox().put(m));
  REQUIRE(s.invitations().invite("amy", u8"ünï", std::string("\xff\x00", 2), "", true, 12));
  REQUIRE(s.invitations().invite(u8"ünï", "amy", "", u8"κανάλι", true, 13));

  const auto rows = all_rows(s);
  gw::MemoryStore y(gw::LimitsConfig{});
  small_sub_limits(y);
  REQUIRE(replica::apply_rows(y, rows, nullptr) == std::vector<std::string>{});
  CHECK(all_rows(y) == rows);
  check_same(s, y, true);
  CHECK(y.inbox().list(u8"ünï", 0, 10).front().payload == std::string("\x00\x01\xfe\xff\"\\", 6));
  CHECK(y.metadata().read(gw::MetadataScope::user, "amy").items.at("bin").value ==
        std::string("\x00\xff\x80", 3));
  CHECK(y.invitations().of("amy").front().content == std::string("\xff\x00", 2));
  CHECK(y.stored_member(u8"κανάλι", "amy")->subscriptions.front().publishers.empty());

  // The changed rows of X are the same values as its whole rows.
  std::vector<replica::Row> changed = replica::read_rows(s, x.changes);
  for (const auto& row : changed) {
    if (!row.value) continue;
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const replica::Row& r) { return r.field == row.field; });
    if (row.field.rfind("p:", 0) == 0) continue;  // presence is noted by backends
    REQUIRE(it != rows.end());
    CHECK(*it == row);
  }
}

TEST_CASE("replica: bad rows are skipped with a message, the others applied") {
  gw::MemoryStore y(gw::LimitsConfig{});
  const std::string session =
      R"({"v":1,"session_id":"s","started_ms":1,"expires_at_ms":2,"watching":[],"message_channels":[]})";
  std::vector<replica::Row> rows = {
      {"s:amy", session},
      {"x:amy", session},                                // unknown kind
      {"s", session},                                    // no kind
      {"s:", session},                                   // no name
      {"s:bob", std::string("{\"v\":1,")},               // not JSON
      {"s:bob", std::string("[1,2]")},                   // not an object
      {"s:bob", std::string("{\"session_id\":\"s\"}")},  // no version
      {"s:bob",
       R"({"v":2,"session_id":"s","started_ms":1,"expires_at_ms":2,"watching":[],"message_channels":[]})"},
      {"s:bob",
       R"({"v":1,"session_id":"s","started_ms":1e400,"expires_at_ms":2,"watching":[],"message_channels":[]})"},
      {"s:bob",
       R"({"v":1,"session_id":"s","started_ms":99999999999999999999,"expires_at_ms":2,"watching":[],"message_channels":[]})"},
      {"s:bob",
       R"({"v":1,"session_id":5,"started_ms":1,"expires_at_ms":2,"watching":[],"message_channels":[]})"},
      {"s:bob",
       R"({"v":1,"session_id":"s","started_ms":1,"expires_at_ms":2,"watching":[3],"message_channels":[]})"},
      {"s:bob",
       R"({"v":1,"session_id_b64":"!!","started_ms":1,"expires_at_ms":2,"watching":[],"message_channels":[]})"},
      {"s:bob", std::string("{\"v\":1,\"session_id\":\"\xff\"}")},  // not UTF-8
      {"m:room/amy",
       R"({"v":1,"seq":18446744073709551615,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"},
      {"m:room/amy",
       R"({"v":1,"seq":-1,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"},
      {"m:room/amy",
       R"({"v":1,"seq":0,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"},
      {"m:roomamy",
       R"({"v":1,"seq":3,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"},
      {"m:room/nobody",
       R"({"v":1,"seq":3,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"},  // no
                                                                                          // session
      {"m:room/amy",
       R"({"v":1,"seq":3,"token_expires_at_ms":0,"publishing":["t"],"subscriptions":[{"topic":"t","all":true,"publishers":[],"automatic":"x"}]})"},
      {"i:01", R"({"v":1})"},
      {"i:99999999999999999999", R"({"v":1})"},
      {"v:abc", R"({"v":1})"},
      {"v:7",
       R"({"v":1,"caller":"a","callee":"b","content":"","channel_id":"","phase":5,"created_ms":0,"deadline_ms":0})"},
      {"d:x/amy", R"({"v":1,"record":""})"},
      {"d:u/amy", R"({"v":1,"record":"rtm-metadata 9\n"})"},
      {"l:room", R"({"v":1,"record":"garbage"})"},
      {"n:", R"({"v":1,"last_id":1e30})"},
      {"n:x", R"({"v":1,"last_id":1})"},
      {"m:room/amy",
       R"({"v":1,"seq":4,"token_expires_at_ms":0,"publishing":["t"],"subscriptions":[]})"},
      {"p:amy", R"({"v":1,"connected":true,"connection":"c","future_field":[1,2]})"},
  };
  const auto errors = replica::apply_rows(y, rows, nullptr);
  const std::size_t good = 3;
  CHECK(errors.size() == rows.size() - good);
  for (const auto& e : errors) CHECK(e.find("skipped") != std::string::npos);
  CHECK(std::any_of(errors.begin(), errors.end(), [](const std::string& e) {
    return e.find("newer gateway") != std::string::npos;
  }));
  CHECK(y.has_session("amy"));
  CHECK(!y.has_session("bob"));
  CHECK(y.is_publisher("amy", "room", "t"));
  CHECK(y.stored_member("room", "amy")->seq == 4);
  CHECK(y.presence("amy").has_value());
  CHECK(y.index_problems() == std::vector<std::string>{});
}

TEST_CASE("replica: a session deleted with its members still present leaves the model whole") {
  Source x(gw::LimitsConfig{});
  auto& s = x.store;
  for (const auto& u : {"amy", "bob"}) s.start_session(u, "s", 0, 0);
  bool joined = false;
  REQUIRE(s.join("amy", "room", &joined));
  REQUIRE(s.join("bob", "room", &joined));
  REQUIRE(s.join_topic("amy", "room", "t"));
  REQUIRE(s.subscribe_all("bob", "room", "t"));
  REQUIRE(s.subscribe("amy", "room", "t", {"bob"}));
  REQUIRE(s.watch("bob", {"amy"}));
  REQUIRE(s.metadata().subscribe("amy", "bob", 5));
  gw::MemoryStore y(gw::LimitsConfig{});
  REQUIRE(replica::apply_rows(y, all_rows(s), nullptr).empty());
  REQUIRE(y.states().set("room", "amy", {{"mood", "ok"}}));
  REQUIRE(y.states().set("room", "bob", {{"mood", "ok"}}));
  gw::ChangeSet applied;
  REQUIRE(replica::apply_rows(y, {{"s:amy", std::nullopt}}, &applied).empty());
  CHECK(applied.members.count({"room", "amy"}) == 1);
  CHECK(applied.metadata_subscribers.count("amy") == 1);
  CHECK(!y.is_member("amy", "room"));
  CHECK(y.states().get("room", "amy").empty());
  CHECK(!y.states().get("room", "bob").empty());
  // bob's subscription keeps amy (its own row says so), amy is no publisher any more.
  CHECK(y.subscribed("bob", "room", "t").value() == std::vector<std::string>{"amy"});
  CHECK(y.publishers("room", "t").empty());
  CHECK(y.watchers_of("amy") == std::vector<std::string>{"bob"});
  CHECK(y.metadata().subscriptions_of("amy").empty());
  CHECK(y.index_problems() == std::vector<std::string>{});
}

TEST_CASE("replica: a member row replaces only its own data") {
  Source x(gw::LimitsConfig{});
  auto& s = x.store;
  for (const auto& u : {"amy", "bob", "cleo"}) s.start_session(u, "s", 0, 0);
  bool joined = false;
  for (const auto& u : {"amy", "bob", "cleo"}) REQUIRE(s.join(u, "room", &joined));
  REQUIRE(s.join_topic("amy", "room", "t"));
  REQUIRE(s.subscribe_all("bob", "room", "t"));
  REQUIRE(s.subscribe("cleo", "room", "t", {"amy"}));
  gw::MemoryStore y(gw::LimitsConfig{});
  REQUIRE(replica::apply_rows(y, all_rows(s), nullptr).empty());
  x.changes.clear();
  REQUIRE(s.leave_topic("amy", "room", "t"));
  // Only amy's row: bob's "all" subscription keeps amy until bob's own row comes.
  auto rows = replica::read_rows(s, x.changes);
  std::vector<replica::Row> amy_only;
  for (const auto& r : rows) {
    if (r.field == "m:room/amy") amy_only.push_back(r);
  }
  REQUIRE(amy_only.size() == 1);
  REQUIRE(replica::apply_rows(y, amy_only, nullptr).empty());
  CHECK(y.publishers("room", "t").empty());
  CHECK(y.subscribed("bob", "room", "t").value() == std::vector<std::string>{"amy"});
  CHECK(y.subscribed("cleo", "room", "t").value() == std::vector<std::string>{"amy"});
  CHECK(y.index_problems() == std::vector<std::string>{});
  REQUIRE(replica::apply_rows(y, rows, nullptr).empty());
  check_same(s, y, true);
  CHECK(y.subscribed("bob", "room", "t").value().empty());
}

TEST_CASE("replica: members of several gateways take their places by seq") {
  gw::MemoryStore y(gw::LimitsConfig{});
  auto session = [](const std::string& uid) {
    return replica::Row{
        "s:" + uid,
        R"({"v":1,"session_id":"s","started_ms":1,"expires_at_ms":2,"watching":[],"message_channels":[]})"};
  };
  auto member = [](const std::string& channel, const std::string& uid, int seq) {
    return replica::Row{"m:" + channel + "/" + uid,
                        R"({"v":1,"seq":)" + std::to_string(seq) +
                            R"(,"token_expires_at_ms":0,"publishing":[],"subscriptions":[]})"};
  };
  REQUIRE(replica::apply_rows(
              y, {session("amy"), session("bob"), member("b", "amy", 7), member("a", "bob", 9)},
              nullptr)
              .empty());
  // Later batches with earlier seqs (another gateway's rows) still land in order.
  REQUIRE(replica::apply_rows(y, {member("a", "amy", 3)}, nullptr).empty());
  REQUIRE(replica::apply_rows(y, {member("b", "bob", 2)}, nullptr).empty());
  CHECK(y.members("a").value() == std::vector<std::string>{"amy", "bob"});
  CHECK(y.members("b").value() == std::vector<std::string>{"bob", "amy"});
  CHECK(y.channels_of("amy") == std::vector<std::string>{"a", "b"});
  CHECK(y.channels_of("bob") == std::vector<std::string>{"b", "a"});
  bool joined = false;
  REQUIRE(y.join("amy", "c", &joined));
  CHECK(y.stored_member("c", "amy")->seq == 10);
  CHECK(y.index_problems() == std::vector<std::string>{});
}

TEST_CASE("replica: id counters and seqs follow the rows, also of records already gone") {
  Source x(gw::LimitsConfig{});
  auto& s = x.store;
  gw::MemoryStore y(gw::LimitsConfig{});
  small_sub_limits(y);
  for (const auto& u : {"amy", "bob"}) s.start_session(u, "s", 0, 0);
  constexpr std::int64_t kNow = 5;  // one millisecond: ids come from the counters alone
  // An invitation and a kept message that end before any row is read.
  auto invited = s.invitations().invite("amy", "bob", "", "", true, kNow);
  REQUIRE(invited);
  REQUIRE(s.invitations().cancel("amy", invited.value().id, kNow));
  gw::PeerMessage m;
  m.id = s.inbox().next_id(kNow);
  m.to = "bob";
  REQUIRE(s.inbox().put(m));
  CHECK(s.inbox().take("bob", m.id).size() == 1);
  bool joined = false;
  REQUIRE(s.join("amy", "room", &joined));
  REQUIRE(replica::apply_rows(y, replica::read_rows(s, x.changes), nullptr).empty());
  x.changes.clear();
  CHECK(y.invitations().size() == 0);
  CHECK(y.inbox().message_count() == 0);
  auto again_x = s.invitations().invite("bob", "amy", "", "", true, kNow);
  auto again_y = y.invitations().invite("bob", "amy", "", "", true, kNow);
  REQUIRE(again_x);
  REQUIRE(again_y);
  CHECK(again_y.value().id == again_x.value().id);
  CHECK(y.inbox().next_id(kNow) == s.inbox().next_id(kNow));
  REQUIRE(y.join("bob", "room", &joined));
  REQUIRE(s.join("bob", "room", &joined));
  CHECK(y.stored_member("room", "bob")->seq == s.stored_member("room", "bob")->seq);
}

TEST_CASE("replica: presence states travel as rows, and go with the membership") {
  Source x(gw::LimitsConfig{});
  auto& s = x.store;
  s.start_session("amy", "s", 0, 0);
  bool joined = false;
  REQUIRE(s.join("amy", "room", &joined));
  REQUIRE(s.states().set("room", "amy", {{"mood", "ready"}, {"bin", std::string("\0\xff", 2)}}));
  gw::MemoryStore y(gw::LimitsConfig{});
  REQUIRE(replica::apply_rows(y, replica::read_rows(s, x.changes), nullptr).empty());
  CHECK(y.states().get("room", "amy") == s.states().get("room", "amy"));
  CHECK(y.states().get("room", "amy").at("bin") == std::string("\0\xff", 2));
  x.changes.clear();
  REQUIRE(s.states().remove("room", "amy", {"mood"}));
  gw::ChangeSet applied;
  REQUIRE(replica::apply_rows(y, replica::read_rows(s, x.changes), &applied).empty());
  CHECK(applied.states.count({"room", "amy"}) == 1);
  CHECK(y.states().get("room", "amy").count("mood") == 0);
  x.changes.clear();
  REQUIRE(s.leave("amy", "room"));
  REQUIRE(replica::apply_rows(y, replica::read_rows(s, x.changes), nullptr).empty());
  CHECK(y.states().get("room", "amy").empty());
  CHECK(y.states().holder_count() == 0);
  // A full copy carries them too.
  REQUIRE(s.join("amy", "room", &joined));
  REQUIRE(s.states().set("room", "amy", {{"seat", "3"}}));
  gw::MemoryStore z(gw::LimitsConfig{});
  REQUIRE(replica::apply_rows(z, all_rows(s), nullptr).empty());
  CHECK(z.states().get("room", "amy") == s.states().get("room", "amy"));
}
