// The contract of the StateStore seam (rtm/gateway/state.hpp), run against every backend:
// the Interner, and the rules for sessions, channels, topic publishers, subscriptions (by
// name and "all publishers"), watches and presence (BRIEF §3), each rule on its own,
// table-driven where it fits, then a long seeded random sequence of operations checked
// step by step against a plain std::map/std::set model kept in the test. The sqlite backend
// also proves at the end of every test that its file, opened again, restores exactly the
// state the test left (every row the model holds, in order). Last, the subscription operations as clients see them: requests through a
// Core with a fake outbox and a fake clock (no broker).
//
// Lists are compared as comma-joined strings so that a failure prints both sides.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/gateway/sqlite_store.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm_harness.hpp"
#include "state_backends.hpp"

namespace {

using rtm::gateway::Departure;
using rtm::gateway::error_name;
using rtm::gateway::ErrorCode;
using rtm::gateway::Interner;
using rtm::gateway::LimitsConfig;
using rtm::gateway::MessageChannelSubscription;
using rtm::gateway::Outcome;
using rtm::gateway::PresenceRecord;
using rtm::gateway::Snapshot;
using rtm::gateway::StateStore;
using rtm::gateway::UserId;
using rtm::gateway::UserResult;
using rtm::test::MemoryBackend;
using rtm::test::SqliteBackend;
using Strings = std::vector<std::string>;

constexpr std::int64_t kNow = 1700000000000;  // ms
constexpr std::int64_t kHour = 3600 * 1000;

// ---------------------------------------------------------------- helpers

template <class Range>
std::string str(const Range& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

Strings sorted(Strings v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::string code_name(ErrorCode code) { return std::string(error_name(code)); }

// "OK" or the error name of an outcome.
template <class T>
std::string code_of(const Outcome<T>& o) {
  return o.ok() ? "OK" : code_name(o.error().code);
}

// Per-user results as "amy=OK,bob=LIMIT_SUBSCRIPTIONS".
std::string results(const std::vector<UserResult>& rs) {
  Strings parts;
  for (const auto& r : rs) parts.push_back(r.uid + "=" + (r.error ? code_name(r.error->code) : "OK"));
  return str(parts);
}

std::string results(const Outcome<std::vector<UserResult>>& o) {
  if (!o.ok()) return "failed:" + code_name(o.error().code);
  return results(o.value());
}

// A snapshot as "members=[a,b] t1=[p,q] t2=[r]".
std::string snap_str(const Snapshot& s) {
  std::string out = "members=[" + str(s.members) + "]";
  for (const auto& t : s.topics) out += " " + t.topic + "=[" + str(t.publishers) + "]";
  return out;
}

// Departures as "c1:[t1,t2] c2:[]", by channel, topics sorted.
std::string departures_str(const std::vector<Departure>& ds) {
  std::map<std::string, Strings> by_channel;
  for (const auto& d : ds) by_channel[d.channel] = sorted(d.topics_left);
  std::string out;
  for (const auto& [ch, topics] : by_channel) {
    if (!out.empty()) out += ' ';
    out += ch + ":[" + str(topics) + "]";
  }
  return out;
}

void login(StateStore& s, const std::string& uid) {
  s.start_session(uid, "sess-" + uid, kNow, kNow + kHour);
}

Snapshot must_join(StateStore& s, const std::string& uid, const std::string& channel) {
  bool joined = false;
  auto r = s.join(uid, channel, &joined);
  REQUIRE_MESSAGE(r.ok(), uid << " joining " << channel << ": " << code_of(r));
  CHECK(joined);
  return r.value();
}

void must_join_topic(StateStore& s, const std::string& uid, const std::string& channel,
                     const std::string& topic) {
  auto r = s.join_topic(uid, channel, topic);
  REQUIRE_MESSAGE(r.ok(), uid << " joining " << channel << "/" << topic << ": " << code_of(r));
  CHECK(r.value().added);
}

std::string members_str(const StateStore& s, const std::string& channel) {
  auto m = s.members(channel);
  return m.ok() ? str(m.value()) : "failed:" + code_of(m);
}

std::string subscribed_str(const StateStore& s, const std::string& uid, const std::string& channel,
                           const std::string& topic) {
  auto r = s.subscribed(uid, channel, topic);
  return r.ok() ? str(r.value()) : "failed:" + code_of(r);
}

std::string watchers_str(const StateStore& s, const std::string& uid) {
  return str(sorted(s.watchers_of(uid)));
}

LimitsConfig tight_limits() {
  LimitsConfig l;
  l.channels_per_user = 3;
  l.topics_per_channel = 2;
  l.members_per_channel = 6;
  l.publishers_per_subscription = 3;
  l.watched_users = 4;
  return l;
}

}  // namespace

TEST_SUITE("gateway state") {

// ================================================================= Interner

TEST_CASE("state: Interner acquire gives one id per name, release frees it at zero refs") {
  Interner in;
  CHECK(in.live() == 0);
  CHECK_FALSE(in.find("amy").has_value());

  const UserId amy = in.acquire("amy");
  const UserId bob = in.acquire("bob");
  CHECK(amy != bob);
  CHECK(in.acquire("amy") == amy);  // second reference, same id
  CHECK(in.live() == 2);
  CHECK(in.name(amy) == "amy");
  CHECK(in.name(bob) == "bob");
  REQUIRE(in.find("amy").has_value());
  CHECK(*in.find("amy") == amy);

  in.release(amy);  // one reference left
  REQUIRE(in.find("amy").has_value());
  CHECK(*in.find("amy") == amy);
  CHECK(in.live() == 2);

  in.release(amy);  // last reference
  CHECK_FALSE(in.find("amy").has_value());
  CHECK(in.live() == 1);
  CHECK(*in.find("bob") == bob);

  in.release(bob);
  CHECK_FALSE(in.find("bob").has_value());
  CHECK(in.live() == 0);
}

TEST_CASE("state: Interner reuses released ids before growing") {
  struct Row {
    int names;
    std::vector<int> released;  // indexes into the acquired ids
  };
  const std::vector<Row> rows = {
      {1, {0}}, {3, {1}}, {5, {0, 4}}, {5, {4, 2, 0}}, {8, {0, 1, 2, 3, 4, 5, 6, 7}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.names);
    CAPTURE(row.released.size());
    Interner in;
    std::vector<UserId> ids;
    for (int i = 0; i < row.names; ++i) ids.push_back(in.acquire("old" + std::to_string(i)));
    CHECK(std::set<UserId>(ids.begin(), ids.end()).size() == ids.size());
    const UserId max_id = *std::max_element(ids.begin(), ids.end());

    std::set<UserId> freed;
    for (int i : row.released) {
      in.release(ids[i]);
      freed.insert(ids[i]);
      CHECK_FALSE(in.find("old" + std::to_string(i)).has_value());
    }
    CHECK(in.live() == ids.size() - freed.size());

    std::set<UserId> reused;
    for (std::size_t i = 0; i < freed.size(); ++i) {
      const std::string name = "new" + std::to_string(i);
      const UserId id = in.acquire(name);
      CHECK(freed.count(id) == 1);  // a released id, not a fresh one
      CHECK(in.name(id) == name);
      CHECK(*in.find(name) == id);
      reused.insert(id);
    }
    CHECK(reused == freed);  // each released id handed out once
    CHECK(in.acquire("fresh") == max_id + 1);
    CHECK(in.live() == ids.size() + 1);
  }
}

TEST_CASE("state: Interner release of an id already at zero refs does not free it twice") {
  Interner in;
  const UserId a = in.acquire("a");
  in.acquire("b");
  in.release(a);
  in.release(a);  // no references left: must not put `a` on the free list again
  const UserId x = in.acquire("x");
  const UserId y = in.acquire("y");
  CHECK(x != y);
  CHECK(in.name(x) == "x");
  CHECK(in.name(y) == "y");
  CHECK(in.live() == 3);
}

TEST_CASE("state: Interner refcounts follow a random sequence (model)") {
  std::mt19937 rng(7);
  Interner in;
  std::map<std::string, std::pair<UserId, int>> model;  // name -> (id, refs)
  const Strings names = {"amy", "bob", "Cy", "dee", "Eli", "fox", "gil", "Hu"};
  for (int step = 0; step < 4000; ++step) {
    const std::string& name = names[rng() % names.size()];
    auto it = model.find(name);
    if (it == model.end() || rng() % 2 == 0) {
      const UserId id = in.acquire(name);
      if (it == model.end()) {
        for (const auto& [other, entry] : model) REQUIRE(entry.first != id);  // unique
        model[name] = {id, 1};
      } else {
        REQUIRE(id == it->second.first);
        ++it->second.second;
      }
    } else {
      in.release(it->second.first);
      if (--it->second.second == 0) model.erase(it);
    }
    REQUIRE(in.live() == model.size());
    for (const auto& n : names) {
      auto m = model.find(n);
      auto found = in.find(n);
      REQUIRE(found.has_value() == (m != model.end()));
      if (found) {
        REQUIRE(*found == m->second.first);
        REQUIRE(in.name(*found) == n);
      }
    }
    for (const auto& [n, entry] : model) REQUIRE(entry.first < names.size());  // ids stay dense
  }
}

// ================================================================= sessions

TEST_CASE_TEMPLATE("state: start, renew and end a session, online follows the session", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  CHECK_FALSE(s.session("amy"));
  CHECK_FALSE(s.online("amy"));
  CHECK(s.session_count() == 0);

  s.start_session("amy", "sid-1", kNow, kNow + kHour);
  const auto sess = s.session("amy");
  REQUIRE(sess);
  CHECK(sess->session_id == "sid-1");
  CHECK(sess->started_ms == kNow);
  CHECK(sess->expires_at_ms == kNow + kHour);
  CHECK(s.channels_of("amy").empty());
  CHECK(s.online("amy"));
  CHECK_FALSE(s.online("bob"));
  CHECK(s.session_count() == 1);

  s.renew_session("amy", kNow + 2 * kHour);
  CHECK(s.session("amy")->expires_at_ms == kNow + 2 * kHour);
  CHECK(s.session("amy")->started_ms == kNow);

  s.renew_session("bob", kNow + kHour);  // no session: nothing is created
  CHECK_FALSE(s.session("bob"));
  CHECK(s.session_count() == 1);

  login(s, "bob");
  CHECK(s.session_count() == 2);

  CHECK(s.end_session("amy").empty());
  CHECK_FALSE(s.session("amy"));
  CHECK_FALSE(s.online("amy"));
  CHECK(s.session_count() == 1);

  CHECK(s.end_session("amy").empty());    // again: nothing to do
  CHECK(s.end_session("nobody").empty());  // never logged in
  CHECK(s.session_count() == 1);

  // A replacement, as the login handler does it: end the old session, start the new one.
  must_join(s, "bob", "lobby");
  CHECK(departures_str(s.end_session("bob")) == "lobby:[]");
  s.start_session("bob", "sid-2", kNow + 5, kNow + kHour);
  CHECK(s.session("bob")->session_id == "sid-2");
  CHECK(s.channels_of("bob").empty());
  CHECK(members_str(s, "lobby") == "");
}

TEST_CASE_TEMPLATE("state: end_session leaves every channel and drops roles, subscriptions and watches", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"amy", "bob", "cy"}) login(s, u);
  must_join(s, "amy", "c1");
  must_join(s, "amy", "c2");
  must_join(s, "amy", "c3");
  must_join(s, "bob", "c1");
  must_join(s, "bob", "c2");
  must_join_topic(s, "amy", "c1", "video");
  must_join_topic(s, "amy", "c1", "audio");
  must_join_topic(s, "amy", "c2", "input");
  must_join_topic(s, "bob", "c1", "video");
  REQUIRE(results(s.subscribe("amy", "c1", "video", {"bob", "cy"})) == "bob=OK,cy=OK");
  REQUIRE(results(s.subscribe("amy", "c2", "chat", {"bob"})) == "bob=OK");
  REQUIRE(results(s.subscribe("bob", "c1", "video", {"amy"})) == "amy=OK");
  REQUIRE(results(s.watch("amy", {"bob", "cy"})) == "bob=OK,cy=OK");
  REQUIRE(results(s.watch("bob", {"amy"})) == "amy=OK");
  REQUIRE(s.subscription_count() == 4);

  const auto gone = s.end_session("amy");
  CHECK(gone.size() == 3);
  CHECK(departures_str(gone) == "c1:[audio,video] c2:[input] c3:[]");

  CHECK_FALSE(s.session("amy"));
  CHECK(s.channels_of("amy").empty());
  CHECK(members_str(s, "c1") == "bob");
  CHECK(members_str(s, "c2") == "bob");
  CHECK(members_str(s, "c3") == "");
  for (const auto* c : {"c1", "c2", "c3"}) CHECK_FALSE(s.is_member("amy", c));
  CHECK(str(s.publishers("c1", "video")) == "bob");
  CHECK(str(s.publishers("c1", "audio")) == "");
  CHECK(str(s.publishers("c2", "input")) == "");
  CHECK(subscribed_str(s, "amy", "c1", "video") == "failed:NOT_JOINED");
  CHECK(subscribed_str(s, "bob", "c1", "video") == "amy");  // bob's own subscription holds
  CHECK(s.subscription_count() == 1);
  CHECK(watchers_str(s, "bob") == "");
  CHECK(watchers_str(s, "cy") == "");
  CHECK(watchers_str(s, "amy") == "bob");  // bob's watch of amy belongs to bob's session
  CHECK(snap_str(s.snapshot("c1")) == "members=[bob] video=[bob]");
  CHECK(snap_str(s.snapshot("c2")) == "members=[bob]");

  // amy comes back with a clean slate.
  login(s, "amy");
  CHECK(s.unwatch("amy", {"bob"})[0].error);  // watches nobody
  CHECK(s.channels_of("amy").empty());
  CHECK(snap_str(must_join(s, "amy", "c1")) == "members=[bob,amy] video=[bob]");
  CHECK(subscribed_str(s, "amy", "c1", "video") == "");
}

// ================================================================= join

TEST_CASE_TEMPLATE("state: join needs a session", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  bool joined = true;
  auto r = s.join("amy", "lobby", &joined);
  CHECK(code_of(r) == "NOT_LOGGED_IN");
  CHECK_FALSE(joined);
  CHECK(members_str(s, "lobby") == "");
  CHECK_FALSE(s.is_member("amy", "lobby"));

  login(s, "amy");
  must_join(s, "amy", "lobby");
  s.end_session("amy");
  joined = true;
  CHECK(code_of(s.join("amy", "lobby", &joined)) == "NOT_LOGGED_IN");
  CHECK_FALSE(joined);
  CHECK(members_str(s, "lobby") == "");

  // A connected presence record is not a session.
  s.set_presence("bob", true, "conn-1");
  CHECK(code_of(s.join("bob", "lobby", &joined)) == "NOT_LOGGED_IN");
}

TEST_CASE_TEMPLATE("state: a second join is idempotent and answers the same snapshot", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  must_join(s, "amy", "room-42");
  must_join(s, "bob", "room-42");
  must_join_topic(s, "bob", "room-42", "input");
  must_join(s, "amy", "other");

  const auto before = s.snapshot("room-42");
  bool joined = true;
  auto again = s.join("amy", "room-42", &joined);
  REQUIRE(again.ok());
  CHECK_FALSE(joined);
  CHECK(snap_str(again.value()) == snap_str(before));
  CHECK(snap_str(again.value()) == "members=[amy,bob] input=[bob]");
  CHECK(str(s.channels_of("amy")) == "room-42,other");  // not listed twice
  CHECK(members_str(s, "room-42") == "amy,bob");        // not listed twice

  // Leaving once is enough after joining twice.
  REQUIRE(s.leave("amy", "room-42").ok());
  CHECK(members_str(s, "room-42") == "bob");
  CHECK(str(s.channels_of("amy")) == "other");
}

TEST_CASE_TEMPLATE("state: the join snapshot lists members in join order and topics with sorted publishers", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"zoe", "mia", "amy", "Bob", "kai"}) login(s, u);
  CHECK(snap_str(must_join(s, "zoe", "c")) == "members=[zoe]");
  CHECK(snap_str(must_join(s, "mia", "c")) == "members=[zoe,mia]");
  must_join(s, "amy", "c");
  must_join_topic(s, "mia", "c", "video");
  must_join_topic(s, "zoe", "c", "video");
  must_join_topic(s, "amy", "c", "video");
  must_join_topic(s, "zoe", "c", "audio");
  must_join_topic(s, "amy", "c", "Chat");
  // A topic that only has subscriptions has no publishers to list.
  REQUIRE(results(s.subscribe("mia", "c", "input", {"zoe"})) == "zoe=OK");

  const auto snap = must_join(s, "Bob", "c");
  CHECK(snap_str(snap) == "members=[zoe,mia,amy,Bob] Chat=[amy] audio=[zoe] video=[amy,mia,zoe]");
  CHECK(snap_str(s.snapshot("c")) == snap_str(snap));
  CHECK(members_str(s, "c") == "zoe,mia,amy,Bob");

  // Leaving and joining again moves a member to the end.
  REQUIRE(s.leave("mia", "c").ok());
  must_join(s, "mia", "c");
  CHECK(members_str(s, "c") == "zoe,amy,Bob,mia");
  CHECK(snap_str(s.snapshot("c")) == "members=[zoe,amy,Bob,mia] Chat=[amy] audio=[zoe] video=[amy,zoe]");

  CHECK(snap_str(s.snapshot("nowhere")) == "members=[]");
  CHECK(members_str(s, "nowhere") == "");
}

TEST_CASE_TEMPLATE("state: LIMIT_CHANNELS at limits.channels_per_user", Backend, MemoryBackend, SqliteBackend) {
  for (int limit : {1, 2, 5}) {
    CAPTURE(limit);
    LimitsConfig l;
    l.channels_per_user = limit;
    RTM_STORE(s, l);
    login(s, "amy");
    Strings joined_channels;
    for (int i = 0; i < limit; ++i) {
      joined_channels.push_back("c" + std::to_string(i));
      must_join(s, "amy", joined_channels.back());
    }
    bool joined = true;
    CHECK(code_of(s.join("amy", "extra", &joined)) == "LIMIT_CHANNELS");
    CHECK_FALSE(joined);
    CHECK(members_str(s, "extra") == "");
    CHECK_FALSE(s.is_member("amy", "extra"));
    CHECK(str(s.channels_of("amy")) == str(joined_channels));

    // At the limit, joining a channel already joined still answers its snapshot.
    auto again = s.join("amy", "c0", &joined);
    CHECK(again.ok());
    CHECK_FALSE(joined);

    // Another user is not affected.
    login(s, "bob");
    must_join(s, "bob", "extra");

    REQUIRE(s.leave("amy", "c0").ok());
    must_join(s, "amy", "extra");
    CHECK(members_str(s, "extra") == "bob,amy");
  }
}

TEST_CASE_TEMPLATE("state: LIMIT_MEMBERS at limits.members_per_channel", Backend, MemoryBackend, SqliteBackend) {
  for (int limit : {1, 3, 10}) {
    CAPTURE(limit);
    LimitsConfig l;
    l.members_per_channel = limit;
    RTM_STORE(s, l);
    Strings in;
    for (int i = 0; i < limit; ++i) {
      in.push_back("u" + std::to_string(i));
      login(s, in.back());
      must_join(s, in.back(), "hall");
    }
    login(s, "late");
    bool joined = true;
    CHECK(code_of(s.join("late", "hall", &joined)) == "LIMIT_MEMBERS");
    CHECK_FALSE(joined);
    CHECK(s.channels_of("late").empty());
    CHECK(members_str(s, "hall") == str(in));

    // A member joining again is not refused; another channel is not affected.
    CHECK(s.join(in.front(), "hall", &joined).ok());
    CHECK_FALSE(joined);
    must_join(s, "late", "annex");

    REQUIRE(s.leave(in.front(), "hall").ok());
    must_join(s, "late", "hall");
    CHECK(s.is_member("late", "hall"));
  }
}

// ================================================================= leave

TEST_CASE_TEMPLATE("state: leave of a channel not joined is NOT_JOINED", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  login(s, "cy");
  must_join(s, "amy", "lobby");
  must_join(s, "cy", "lobby");
  REQUIRE(s.leave("cy", "lobby").ok());

  struct Row {
    const char* uid;
    const char* channel;
    const char* why;
  };
  const std::vector<Row> rows = {
      {"bob", "lobby", "logged in, not a member"},
      {"amy", "nowhere", "channel does not exist"},
      {"ghost", "lobby", "never seen"},
      {"cy", "lobby", "left already"},
      {"amy", "Lobby", "names are case-sensitive"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.why);
    auto r = s.leave(row.uid, row.channel);
    CHECK(code_of(r) == "NOT_JOINED");
  }
  CHECK(members_str(s, "lobby") == "amy");
}

TEST_CASE_TEMPLATE("state: leave drops the user's publisher roles and subscriptions in that channel only", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"amy", "bob", "zoe"}) login(s, u);
  for (const auto* c : {"c1", "c2"}) {
    must_join(s, "bob", c);
    must_join(s, "amy", c);
  }
  must_join_topic(s, "amy", "c1", "t1");
  must_join_topic(s, "amy", "c1", "t2");
  must_join_topic(s, "bob", "c1", "t1");
  must_join_topic(s, "amy", "c2", "t1");
  REQUIRE(results(s.subscribe("amy", "c1", "t1", {"bob", "zoe"})) == "bob=OK,zoe=OK");
  REQUIRE(results(s.subscribe("amy", "c1", "t3", {"bob"})) == "bob=OK");
  REQUIRE(results(s.subscribe("amy", "c2", "t1", {"bob"})) == "bob=OK");
  REQUIRE(results(s.subscribe("bob", "c1", "t1", {"amy"})) == "amy=OK");
  REQUIRE(s.subscription_count() == 5);

  auto d = s.leave("amy", "c1");
  REQUIRE(d.ok());
  CHECK(d.value().channel == "c1");
  CHECK(str(sorted(d.value().topics_left)) == "t1,t2");

  CHECK_FALSE(s.is_member("amy", "c1"));
  CHECK(str(s.channels_of("amy")) == "c2");
  CHECK(str(s.publishers("c1", "t1")) == "bob");
  CHECK(str(s.publishers("c1", "t2")) == "");
  CHECK(subscribed_str(s, "amy", "c1", "t1") == "failed:NOT_JOINED");
  CHECK(subscribed_str(s, "amy", "c1", "t3") == "failed:NOT_JOINED");
  CHECK(s.subscription_count() == 2);
  CHECK(snap_str(s.snapshot("c1")) == "members=[bob] t1=[bob]");
  // bob's subscription to amy is bob's, and holds (as one made before amy publishes would).
  CHECK(subscribed_str(s, "bob", "c1", "t1") == "amy");
  // c2 is untouched.
  CHECK(str(s.publishers("c2", "t1")) == "amy");
  CHECK(subscribed_str(s, "amy", "c2", "t1") == "bob");

  // Rejoining c1 does not bring anything back.
  CHECK(snap_str(must_join(s, "amy", "c1")) == "members=[bob,amy] t1=[bob]");
  CHECK(subscribed_str(s, "amy", "c1", "t1") == "");
  CHECK(subscribed_str(s, "amy", "c1", "t3") == "");
  CHECK(s.subscription_count() == 2);
}

TEST_CASE_TEMPLATE("state: the last member leaving deletes the channel", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  must_join(s, "amy", "room");
  must_join(s, "bob", "room");
  must_join_topic(s, "amy", "room", "input");
  must_join_topic(s, "bob", "room", "video");
  REQUIRE(results(s.subscribe("amy", "room", "video", {"bob"})) == "bob=OK");
  REQUIRE(results(s.subscribe("bob", "room", "input", {"amy", "ghost"})) == "amy=OK,ghost=OK");

  auto first = s.leave("amy", "room");
  REQUIRE(first.ok());
  CHECK(str(first.value().topics_left) == "input");
  auto last = s.leave("bob", "room");
  REQUIRE(last.ok());
  CHECK(str(last.value().topics_left) == "video");

  CHECK(members_str(s, "room") == "");
  CHECK(snap_str(s.snapshot("room")) == "members=[]");
  CHECK(str(s.publishers("room", "input")) == "");
  CHECK(str(s.publishers("room", "video")) == "");
  CHECK(s.subscription_count() == 0);

  // Rejoining finds an empty channel: only the joiner, no topics, no subscriptions.
  CHECK(snap_str(must_join(s, "bob", "room")) == "members=[bob]");
  CHECK(subscribed_str(s, "bob", "room", "input") == "");
}

// ================================================================= topics

TEST_CASE_TEMPLATE("state: join_topic and leave_topic outside the channel are NOT_JOINED", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  must_join(s, "amy", "c1");
  struct Row {
    const char* uid;
    const char* channel;
    const char* why;
  };
  const std::vector<Row> rows = {
      {"bob", "c1", "logged in, not a member"},
      {"amy", "c2", "member of another channel"},
      {"ghost", "c1", "not logged in"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.why);
    CHECK(code_of(s.join_topic(row.uid, row.channel, "t")) == "NOT_JOINED");
    CHECK(code_of(s.leave_topic(row.uid, row.channel, "t")) == "NOT_JOINED");
    CHECK(str(s.publishers(row.channel, "t")) == "");
  }
}

TEST_CASE_TEMPLATE("state: join_topic adds once, leave_topic removes once", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"zoe", "amy", "Kim"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  struct Step {
    const char* op;  // "join" or "leave"
    const char* uid;
    const char* topic;
    bool changed;
    const char* publishers_after;  // of the topic
  };
  const std::vector<Step> steps = {
      {"join", "zoe", "t", true, "zoe"},     {"join", "zoe", "t", false, "zoe"},
      {"join", "amy", "t", true, "amy,zoe"}, {"join", "Kim", "t", true, "Kim,amy,zoe"},
      {"leave", "amy", "t", true, "Kim,zoe"}, {"leave", "amy", "t", false, "Kim,zoe"},
      {"leave", "amy", "u", false, ""},      {"join", "amy", "u", true, "amy"},
      {"leave", "zoe", "t", true, "Kim"},    {"leave", "Kim", "t", true, ""},
      {"leave", "Kim", "t", false, ""},      {"join", "Kim", "t", true, "Kim"},
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& st = steps[i];
    CAPTURE(i);
    if (std::string(st.op) == "join") {
      auto r = s.join_topic(st.uid, "c", st.topic);
      REQUIRE(r.ok());
      CHECK(r.value().added == st.changed);
      CHECK(r.value().all_subscribers.empty());
    } else {
      auto r = s.leave_topic(st.uid, "c", st.topic);
      REQUIRE(r.ok());
      CHECK(r.value() == st.changed);
    }
    CHECK(str(s.publishers("c", st.topic)) == st.publishers_after);
  }
  CHECK(snap_str(s.snapshot("c")) == "members=[zoe,amy,Kim] t=[Kim] u=[amy]");
  CHECK(str(s.publishers("c", "never")) == "");
  CHECK(str(s.publishers("no-channel", "t")) == "");
}

TEST_CASE_TEMPLATE("state: LIMIT_TOPICS at limits.topics_per_channel", Backend, MemoryBackend, SqliteBackend) {
  for (int limit : {1, 2, 8}) {
    CAPTURE(limit);
    LimitsConfig l;
    l.topics_per_channel = limit;
    RTM_STORE(s, l);
    login(s, "amy");
    login(s, "bob");
    must_join(s, "amy", "c1");
    must_join(s, "amy", "c2");
    must_join(s, "bob", "c1");
    for (int i = 0; i < limit; ++i) must_join_topic(s, "amy", "c1", "t" + std::to_string(i));

    CHECK(code_of(s.join_topic("amy", "c1", "extra")) == "LIMIT_TOPICS");
    CHECK(str(s.publishers("c1", "extra")) == "");
    // A topic already joined is not refused at the limit.
    auto again = s.join_topic("amy", "c1", "t0");
    REQUIRE(again.ok());
    CHECK_FALSE(again.value().added);
    // The limit is per user and per channel.
    must_join_topic(s, "amy", "c2", "extra");
    must_join_topic(s, "bob", "c1", "extra");
    // Leaving a topic makes room.
    auto left = s.leave_topic("amy", "c1", "t0");
    REQUIRE(left.ok());
    CHECK(left.value());
    must_join_topic(s, "amy", "c1", "extra");
    CHECK(str(s.publishers("c1", "extra")) == "amy,bob");
  }
}

// ================================================================= subscriptions

TEST_CASE_TEMPLATE("state: subscribe, unsubscribe and subscribed outside the channel are NOT_JOINED", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  must_join(s, "amy", "c1");
  must_join(s, "bob", "c1");
  must_join_topic(s, "bob", "c1", "t");
  struct Row {
    const char* uid;
    const char* channel;
    const char* why;
  };
  const std::vector<Row> rows = {
      {"amy", "c2", "member of another channel"},
      {"ghost", "c1", "not logged in"},
      {"amy", "nowhere", "no such channel"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.why);
    CHECK(results(s.subscribe(row.uid, row.channel, "t", {"bob"})) == "failed:NOT_JOINED");
    CHECK(results(s.unsubscribe(row.uid, row.channel, "t", {"bob"})) == "failed:NOT_JOINED");
    CHECK(subscribed_str(s, row.uid, row.channel, "t") == "failed:NOT_JOINED");
  }
  CHECK(s.subscription_count() == 0);
  login(s, "cy");  // logged in, never joined
  CHECK(results(s.subscribe("cy", "c1", "t", {"bob"})) == "failed:NOT_JOINED");
  CHECK(subscribed_str(s, "cy", "c1", "t") == "failed:NOT_JOINED");
  CHECK(s.subscription_count() == 0);
}

TEST_CASE_TEMPLATE("state: a subscription made before the publisher joins the topic holds", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "bob");
  must_join(s, "amy", "room-42");
  // bob is not even in the channel yet.
  CHECK(results(s.subscribe("amy", "room-42", "input", {"bob"})) == "bob=OK");
  CHECK(subscribed_str(s, "amy", "room-42", "input") == "bob");
  CHECK(str(s.publishers("room-42", "input")) == "");
  CHECK(snap_str(s.snapshot("room-42")) == "members=[amy]");

  must_join(s, "bob", "room-42");
  must_join_topic(s, "bob", "room-42", "input");
  CHECK(str(s.publishers("room-42", "input")) == "bob");
  CHECK(subscribed_str(s, "amy", "room-42", "input") == "bob");

  // And it survives the publisher leaving the topic and coming back.
  REQUIRE(s.leave_topic("bob", "room-42", "input").ok());
  CHECK(subscribed_str(s, "amy", "room-42", "input") == "bob");
  must_join_topic(s, "bob", "room-42", "input");
  CHECK(subscribed_str(s, "amy", "room-42", "input") == "bob");
  CHECK(s.subscription_count() == 1);
}

TEST_CASE_TEMPLATE("state: subscribe is idempotent per user", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  must_join(s, "amy", "c");
  CHECK(results(s.subscribe("amy", "c", "t", {"bob", "bob", "zoe"})) == "bob=OK,bob=OK,zoe=OK");
  CHECK(s.subscription_count() == 2);
  CHECK(results(s.subscribe("amy", "c", "t", {"zoe", "bob"})) == "zoe=OK,bob=OK");
  CHECK(s.subscription_count() == 2);
  CHECK(subscribed_str(s, "amy", "c", "t") == "bob,zoe");
  // An empty list changes nothing and leaves no record behind.
  CHECK(results(s.subscribe("amy", "c", "t", {})) == "");
  CHECK(results(s.subscribe("amy", "c", "other", {})) == "");
  CHECK(subscribed_str(s, "amy", "c", "other") == "");
  CHECK(s.subscription_count() == 2);
}

TEST_CASE_TEMPLATE("state: the 65th publisher is refused with LIMIT_SUBSCRIPTIONS", Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig l;
  REQUIRE(l.publishers_per_subscription == 64);  // the documented default
  RTM_STORE(s, l);
  login(s, "host");
  must_join(s, "host", "room");
  Strings players;
  for (int i = 0; i < 70; ++i) players.push_back("p" + std::to_string(100 + i));

  // 70 at once: the first 64 in list order are taken, the rest refused, one result each.
  auto r = s.subscribe("host", "room", "input", players);
  REQUIRE(r.ok());
  REQUIRE(r.value().size() == 70);
  for (std::size_t i = 0; i < 70; ++i) {
    CAPTURE(i);
    CHECK(r.value()[i].uid == players[i]);
    if (i < 64) {
      CHECK_FALSE(r.value()[i].error.has_value());
    } else {
      REQUIRE(r.value()[i].error.has_value());
      CHECK(code_name(r.value()[i].error->code) == "LIMIT_SUBSCRIPTIONS");
      CHECK_FALSE(r.value()[i].error->message.empty());
    }
  }
  CHECK(s.subscription_count() == 64);
  const Strings first64(players.begin(), players.begin() + 64);
  CHECK(subscribed_str(s, "host", "room", "input") == str(first64));

  // At the limit: the 65th alone is refused, one already subscribed is still fine.
  CHECK(results(s.subscribe("host", "room", "input", {"p164"})) == "p164=LIMIT_SUBSCRIPTIONS");
  CHECK(results(s.subscribe("host", "room", "input", {"p100", "p165"})) ==
        "p100=OK,p165=LIMIT_SUBSCRIPTIONS");
  CHECK(s.subscription_count() == 64);

  // One unsubscribed makes room for exactly one.
  CHECK(results(s.unsubscribe("host", "room", "input", {"p130"})) == "p130=OK");
  CHECK(results(s.subscribe("host", "room", "input", {"p164", "p165"})) ==
        "p164=OK,p165=LIMIT_SUBSCRIPTIONS");
  CHECK(s.subscription_count() == 64);
}

TEST_CASE_TEMPLATE("state: a smaller limits.publishers_per_subscription is applied", Backend, MemoryBackend, SqliteBackend) {
  for (int limit : {1, 2, 5}) {
    CAPTURE(limit);
    LimitsConfig l;
    l.publishers_per_subscription = limit;
    RTM_STORE(s, l);
    login(s, "amy");
    must_join(s, "amy", "c");
    Strings want;
    Strings users;
    for (int i = 0; i <= limit; ++i) {
      users.push_back("u" + std::to_string(i));
      want.push_back(users.back() + (i < limit ? "=OK" : "=LIMIT_SUBSCRIPTIONS"));
    }
    CHECK(results(s.subscribe("amy", "c", "t", users)) == str(want));
    CHECK(s.subscription_count() == static_cast<std::size_t>(limit));
    CHECK(results(s.subscribe("amy", "c", "t", {"u0"})) == "u0=OK");
    CHECK(results(s.subscribe("amy", "c", "t", {"late"})) == "late=LIMIT_SUBSCRIPTIONS");
    CHECK(s.subscription_count() == static_cast<std::size_t>(limit));
  }
}

TEST_CASE_TEMPLATE("state: the subscription limit is per subscriber, channel and topic", Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig l;
  l.publishers_per_subscription = 2;
  RTM_STORE(s, l);
  for (const auto* u : {"amy", "bob"}) {
    login(s, u);
    must_join(s, u, "c1");
    must_join(s, u, "c2");
  }
  CHECK(results(s.subscribe("amy", "c1", "t1", {"x", "y", "z"})) == "x=OK,y=OK,z=LIMIT_SUBSCRIPTIONS");
  CHECK(results(s.subscribe("amy", "c1", "t2", {"x", "y", "z"})) == "x=OK,y=OK,z=LIMIT_SUBSCRIPTIONS");
  CHECK(results(s.subscribe("amy", "c2", "t1", {"z", "y"})) == "z=OK,y=OK");
  CHECK(results(s.subscribe("bob", "c1", "t1", {"z", "x"})) == "z=OK,x=OK");
  CHECK(s.subscription_count() == 8);
  CHECK(subscribed_str(s, "amy", "c1", "t1") == "x,y");
  CHECK(subscribed_str(s, "amy", "c1", "t2") == "x,y");
  CHECK(subscribed_str(s, "amy", "c2", "t1") == "y,z");
  CHECK(subscribed_str(s, "bob", "c1", "t1") == "x,z");
  CHECK(subscribed_str(s, "bob", "c1", "t2") == "");
}

TEST_CASE_TEMPLATE("state: subscribed lists the publishers sorted by name", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"zoe", "mia", "amy", "Bob"}) {
    login(s, u);
    must_join(s, u, "c");  // interned in this order, which is not name order
  }
  CHECK(results(s.subscribe("amy", "c", "t", {"zoe", "mia"})) == "zoe=OK,mia=OK");
  CHECK(results(s.subscribe("amy", "c", "t", {"Bob", "amy", "eve"})) == "Bob=OK,amy=OK,eve=OK");
  CHECK(subscribed_str(s, "amy", "c", "t") == "Bob,amy,eve,mia,zoe");
  CHECK(subscribed_str(s, "amy", "c", "never") == "");
  CHECK(subscribed_str(s, "zoe", "c", "t") == "");
}

TEST_CASE_TEMPLATE("state: unsubscribe answers a per-user error for users not subscribed", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  login(s, "zoe");
  must_join(s, "amy", "c");
  must_join(s, "zoe", "c");
  REQUIRE(results(s.subscribe("amy", "c", "t", {"bob", "cy"})) == "bob=OK,cy=OK");
  REQUIRE(results(s.subscribe("amy", "c", "u", {"zoe"})) == "zoe=OK");
  REQUIRE(s.subscription_count() == 3);

  // bob: subscribed; ghost: never seen; zoe: known, subscribed in another topic only;
  // bob again: just unsubscribed.
  CHECK(results(s.unsubscribe("amy", "c", "t", {"bob", "ghost", "zoe", "bob"})) ==
        "bob=OK,ghost=NOT_SUBSCRIBED,zoe=NOT_SUBSCRIBED,bob=NOT_SUBSCRIBED");
  CHECK(s.subscription_count() == 2);
  CHECK(subscribed_str(s, "amy", "c", "t") == "cy");
  CHECK(subscribed_str(s, "amy", "c", "u") == "zoe");

  auto r = s.unsubscribe("amy", "c", "t", {"ghost"});
  REQUIRE(r.ok());
  REQUIRE(r.value().size() == 1);
  REQUIRE(r.value()[0].error.has_value());
  CHECK_FALSE(r.value()[0].error->message.empty());

  // A topic with no subscription at all: every user an error.
  CHECK(results(s.unsubscribe("amy", "c", "none", {"cy", "zoe"})) ==
        "cy=NOT_SUBSCRIBED,zoe=NOT_SUBSCRIBED");
  // Another subscriber's subscription is not ours to drop.
  CHECK(results(s.unsubscribe("zoe", "c", "t", {"cy"})) == "cy=NOT_SUBSCRIBED");
  CHECK(subscribed_str(s, "amy", "c", "t") == "cy");

  CHECK(results(s.unsubscribe("amy", "c", "t", {"cy"})) == "cy=OK");
  CHECK(subscribed_str(s, "amy", "c", "t") == "");
  CHECK(results(s.unsubscribe("amy", "c", "t", {"cy"})) == "cy=NOT_SUBSCRIBED");
  CHECK(s.subscription_count() == 1);
}

TEST_CASE_TEMPLATE("state: subscription_count stays exact through every operation", Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig l;
  l.publishers_per_subscription = 3;
  RTM_STORE(s, l);
  for (const auto* u : {"amy", "bob", "cy"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  must_join(s, "amy", "d");
  struct Step {
    const char* what;
    std::function<void()> run;
    std::size_t count_after;
  };
  const std::vector<Step> steps = {
      {"amy subscribes 2", [&] { s.subscribe("amy", "c", "t", {"bob", "cy"}); }, 2},
      {"re-subscribe", [&] { s.subscribe("amy", "c", "t", {"bob", "cy", "cy"}); }, 2},
      {"over the limit", [&] { s.subscribe("amy", "c", "t", {"x", "y", "z"}); }, 3},
      {"refused only", [&] { s.subscribe("amy", "c", "t", {"w"}); }, 3},
      {"other topic", [&] { s.subscribe("amy", "c", "u", {"bob"}); }, 4},
      {"other channel", [&] { s.subscribe("amy", "d", "t", {"bob", "cy"}); }, 6},
      {"bob subscribes", [&] { s.subscribe("bob", "c", "t", {"amy", "cy"}); }, 8},
      {"not joined", [&] { s.subscribe("cy", "d", "t", {"amy"}); }, 8},
      {"unsubscribe mixed", [&] { s.unsubscribe("amy", "c", "t", {"bob", "nobody", "bob"}); }, 7},
      {"publisher leaves", [&] { s.leave("cy", "c"); }, 7},
      {"subscriber leaves", [&] { s.leave("bob", "c"); }, 5},
      {"end session", [&] { s.end_session("amy"); }, 0},
  };
  for (const auto& st : steps) {
    CAPTURE(st.what);
    st.run();
    CHECK(s.subscription_count() == st.count_after);
  }
}

// ================================================================= "all publishers" subscriptions

TEST_CASE_TEMPLATE("state: subscribe_all takes in the current publishers but the caller, in name order", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"zoe", "amy", "mia", "Bob"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  must_join_topic(s, "zoe", "c", "t");
  must_join_topic(s, "amy", "c", "t");
  must_join_topic(s, "Bob", "c", "t");
  must_join_topic(s, "mia", "c", "other");
  CHECK_FALSE(s.subscribes_all("amy", "c", "t"));
  CHECK(results(s.subscribe_all("amy", "c", "t")) == "Bob=OK,zoe=OK");
  CHECK(s.subscribes_all("amy", "c", "t"));
  CHECK_FALSE(s.subscribes_all("amy", "c", "other"));
  CHECK_FALSE(s.subscribes_all("zoe", "c", "t"));
  CHECK(subscribed_str(s, "amy", "c", "t") == "Bob,zoe");
  CHECK(s.subscription_count() == 2);
  // Again: idempotent.
  CHECK(results(s.subscribe_all("amy", "c", "t")) == "Bob=OK,zoe=OK");
  CHECK(s.subscription_count() == 2);
  // A topic nobody publishes in: the mode holds with no publisher yet.
  CHECK(results(s.subscribe_all("mia", "c", "empty")) == "");
  CHECK(s.subscribes_all("mia", "c", "empty"));
  CHECK(subscribed_str(s, "mia", "c", "empty") == "");
  // Outside the channel: NOT_JOINED, nothing recorded.
  login(s, "out");
  CHECK(results(s.subscribe_all("out", "c", "t")) == "failed:NOT_JOINED");
  CHECK(results(s.unsubscribe_all("out", "c", "t")) == "failed:NOT_JOINED");
  CHECK(results(s.subscribe_all("ghost", "c", "t")) == "failed:NOT_JOINED");
  CHECK_FALSE(s.subscribes_all("out", "c", "t"));
}

TEST_CASE_TEMPLATE(
    "state: a publisher that joins later is in every all subscription when join_topic returns", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"tap", "zed", "amy", "pub"}) {
    login(s, u);
    must_join(s, u, "lobby");
  }
  REQUIRE(results(s.subscribe_all("tap", "lobby", "chat")) == "");
  REQUIRE(results(s.subscribe_all("zed", "lobby", "chat")) == "");
  REQUIRE(results(s.subscribe("amy", "lobby", "chat", {"nobody"})) == "nobody=OK");  // by name only

  auto joined = s.join_topic("pub", "lobby", "chat");
  REQUIRE(joined.ok());
  CHECK(joined.value().added);
  CHECK(results(joined.value().all_subscribers) == "tap=OK,zed=OK");
  CHECK(subscribed_str(s, "tap", "lobby", "chat") == "pub");
  CHECK(subscribed_str(s, "zed", "lobby", "chat") == "pub");
  CHECK(subscribed_str(s, "amy", "lobby", "chat") == "nobody");
  // The subscriber itself publishing is not added to its own subscription.
  auto self = s.join_topic("tap", "lobby", "chat");
  REQUIRE(self.ok());
  CHECK(results(self.value().all_subscribers) == "zed=OK");
  CHECK(subscribed_str(s, "tap", "lobby", "chat") == "pub");
  CHECK(subscribed_str(s, "zed", "lobby", "chat") == "pub,tap");
  // Joining a topic already joined changes nothing.
  auto again = s.join_topic("pub", "lobby", "chat");
  REQUIRE(again.ok());
  CHECK_FALSE(again.value().added);
  CHECK(again.value().all_subscribers.empty());
  // Another topic of the channel is not covered.
  auto other = s.join_topic("pub", "lobby", "video");
  REQUIRE(other.ok());
  CHECK(other.value().all_subscribers.empty());
  CHECK(subscribed_str(s, "tap", "lobby", "video") == "");
  CHECK(s.subscription_count() == 4);
}

TEST_CASE_TEMPLATE("state: an all subscription stops at the limit and later publishers are refused", Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig l;
  l.publishers_per_subscription = 3;
  RTM_STORE(s, l);
  for (const auto* u : {"host", "p1", "p2", "p3", "p4", "p5", "p6", "p7"}) {
    login(s, u);
    must_join(s, u, "room");
  }
  for (const auto* p : {"p1", "p2", "p3", "p4"}) must_join_topic(s, p, "room", "input");
  CHECK(results(s.subscribe_all("host", "room", "input")) ==
        "p1=OK,p2=OK,p3=OK,p4=LIMIT_SUBSCRIPTIONS");
  auto full = s.subscribe_all("host", "room", "input");
  REQUIRE(full.ok());
  REQUIRE(full.value().back().error.has_value());
  CHECK(full.value().back().error->message.find("limits.publishers_per_subscription") !=
        std::string::npos);

  auto p5 = s.join_topic("p5", "room", "input");
  REQUIRE(p5.ok());
  CHECK(results(p5.value().all_subscribers) == "host=LIMIT_SUBSCRIPTIONS");
  REQUIRE(p5.value().all_subscribers[0].error.has_value());
  CHECK(p5.value().all_subscribers[0].error->message.find("p5") != std::string::npos);
  CHECK(subscribed_str(s, "host", "room", "input") == "p1,p2,p3");

  // p2 stops publishing: its place is free; p4 and p5 (refused before) are not taken in by
  // themselves, the next publisher to join is.
  REQUIRE(s.leave_topic("p2", "room", "input").ok());
  CHECK(subscribed_str(s, "host", "room", "input") == "p1,p3");
  auto p6 = s.join_topic("p6", "room", "input");
  REQUIRE(p6.ok());
  CHECK(results(p6.value().all_subscribers) == "host=OK");
  CHECK(subscribed_str(s, "host", "room", "input") == "p1,p3,p6");
  // Leaving the channel and ending the session free places too.
  REQUIRE(s.leave("p1", "room").ok());
  CHECK(subscribed_str(s, "host", "room", "input") == "p3,p6");
  s.end_session("p3");
  CHECK(subscribed_str(s, "host", "room", "input") == "p6");
  // Subscribing again takes in the current publishers up to the limit, in name order.
  CHECK(results(s.subscribe_all("host", "room", "input")) == "p4=OK,p5=OK,p6=OK");
  CHECK(s.subscription_count() == 3);
  // A refused publisher that joins again while there is room is taken in.
  REQUIRE(s.leave_topic("p4", "room", "input").ok());
  CHECK(subscribed_str(s, "host", "room", "input") == "p5,p6");
  auto p7 = s.join_topic("p7", "room", "input");
  REQUIRE(p7.ok());
  CHECK(results(p7.value().all_subscribers) == "host=OK");
  auto p4 = s.join_topic("p4", "room", "input");
  REQUIRE(p4.ok());
  CHECK(results(p4.value().all_subscribers) == "host=LIMIT_SUBSCRIPTIONS");
  CHECK(subscribed_str(s, "host", "room", "input") == "p5,p6,p7");
  CHECK(s.subscription_count() == 3);
}

TEST_CASE_TEMPLATE("state: publishers subscribed to by name stay when they stop publishing, added ones go", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"host", "named", "auto", "both"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  REQUIRE(results(s.subscribe("host", "c", "t", {"named"})) == "named=OK");
  for (const auto* p : {"named", "auto", "both"}) must_join_topic(s, p, "c", "t");
  CHECK(results(s.subscribe_all("host", "c", "t")) == "auto=OK,both=OK,named=OK");
  // Asking for "both" by name makes it a by-name subscription.
  CHECK(results(s.subscribe("host", "c", "t", {"both"})) == "both=OK");
  CHECK(s.subscription_count() == 3);
  for (const auto* p : {"named", "auto", "both"}) REQUIRE(s.leave_topic(p, "c", "t").ok());
  CHECK(subscribed_str(s, "host", "c", "t") == "both,named");
  CHECK(s.subscribes_all("host", "c", "t"));
  CHECK(s.subscription_count() == 2);
  // They come back: the named ones are there already, the other is added again.
  auto back = s.join_topic("auto", "c", "t");
  REQUIRE(back.ok());
  CHECK(results(back.value().all_subscribers) == "host=OK");
  CHECK(subscribed_str(s, "host", "c", "t") == "auto,both,named");
}

TEST_CASE_TEMPLATE("state: unsubscribe by name in all mode holds until the publisher joins again", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"host", "bob", "cy"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  must_join_topic(s, "bob", "c", "t");
  must_join_topic(s, "cy", "c", "t");
  REQUIRE(results(s.subscribe_all("host", "c", "t")) == "bob=OK,cy=OK");
  CHECK(results(s.unsubscribe("host", "c", "t", {"bob", "bob"})) == "bob=OK,bob=NOT_SUBSCRIBED");
  CHECK(subscribed_str(s, "host", "c", "t") == "cy");
  CHECK(s.subscribes_all("host", "c", "t"));
  // Unsubscribing the last one keeps the mode (and the record).
  CHECK(results(s.unsubscribe("host", "c", "t", {"cy"})) == "cy=OK");
  CHECK(subscribed_str(s, "host", "c", "t") == "");
  CHECK(s.subscribes_all("host", "c", "t"));
  CHECK(s.subscription_count() == 0);
  REQUIRE(s.leave_topic("bob", "c", "t").ok());
  must_join_topic(s, "bob", "c", "t");
  CHECK(subscribed_str(s, "host", "c", "t") == "bob");
}

TEST_CASE_TEMPLATE("state: unsubscribe_all ends the mode and removes every publisher", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"host", "bob", "cy", "dan"}) {
    login(s, u);
    must_join(s, u, "c");
  }
  must_join_topic(s, "bob", "c", "t");
  REQUIRE(results(s.subscribe("host", "c", "t", {"dan"})) == "dan=OK");
  REQUIRE(results(s.subscribe_all("host", "c", "t")) == "bob=OK");
  CHECK(results(s.unsubscribe_all("host", "c", "t")) == "bob=OK,dan=OK");
  CHECK_FALSE(s.subscribes_all("host", "c", "t"));
  CHECK(subscribed_str(s, "host", "c", "t") == "");
  CHECK(s.subscription_count() == 0);
  // Later publishers are not added any more; a second unsubscribe_all is fine and empty.
  auto cy = s.join_topic("cy", "c", "t");
  REQUIRE(cy.ok());
  CHECK(cy.value().all_subscribers.empty());
  CHECK(subscribed_str(s, "host", "c", "t") == "");
  CHECK(results(s.unsubscribe_all("host", "c", "t")) == "");
  CHECK(results(s.unsubscribe_all("host", "c", "never")) == "");
  // The subscriber leaving ends its mode too; the channel empties cleanly.
  REQUIRE(results(s.subscribe_all("host", "c", "t")) == "bob=OK,cy=OK");
  REQUIRE(s.leave("host", "c").ok());
  must_join(s, "host", "c");
  CHECK_FALSE(s.subscribes_all("host", "c", "t"));
  CHECK(s.subscription_count() == 0);
  for (const auto* u : {"host", "bob", "cy", "dan"}) s.end_session(u);
  CHECK(snap_str(s.snapshot("c")) == "members=[]");
}

TEST_CASE_TEMPLATE("state: an all subscription counts towards limits.subscribed_topics_per_channel", Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig l;
  l.subscribed_topics_per_channel = 2;
  RTM_STORE(s, l);
  login(s, "amy");
  must_join(s, "amy", "c");
  REQUIRE(results(s.subscribe_all("amy", "c", "t1")) == "");
  REQUIRE(results(s.subscribe("amy", "c", "t2", {"bob"})) == "bob=OK");
  CHECK(results(s.subscribe_all("amy", "c", "t3")) == "failed:LIMIT_SUBSCRIPTIONS");
  CHECK_FALSE(s.subscribes_all("amy", "c", "t3"));
  CHECK(results(s.subscribe_all("amy", "c", "t1")) == "");  // the same topic again is fine
  REQUIRE(results(s.unsubscribe_all("amy", "c", "t1")) == "");
  CHECK(results(s.subscribe_all("amy", "c", "t3")) == "");
}

// ================================================================= watches

TEST_CASE_TEMPLATE("state: watch needs a session, unwatch without one answers per-user errors", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  CHECK(results(s.watch("amy", {"bob"})) == "failed:NOT_LOGGED_IN");
  s.set_presence("amy", true, "conn-1");  // connected, but no session
  CHECK(results(s.watch("amy", {"bob"})) == "failed:NOT_LOGGED_IN");
  CHECK(watchers_str(s, "bob") == "");
  CHECK(results(s.unwatch("amy", {"bob"})) == "bob=NOT_WATCHED");
}

TEST_CASE_TEMPLATE("state: watch, watchers_of and unwatch", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"zoe", "amy", "bob"}) login(s, u);
  CHECK(results(s.watch("zoe", {"bob", "amy", "bob"})) == "bob=OK,amy=OK,bob=OK");
  CHECK(results(s.watch("amy", {"bob", "ghost"})) == "bob=OK,ghost=OK");  // offline users too
  CHECK(results(s.watch("bob", {})) == "");
  CHECK(watchers_str(s, "bob") == "amy,zoe");
  CHECK(watchers_str(s, "amy") == "zoe");
  CHECK(watchers_str(s, "ghost") == "amy");
  CHECK(watchers_str(s, "zoe") == "");

  // amy: watched; cy: never seen; zoe: known, but zoe does not watch herself; amy again: gone.
  CHECK(results(s.unwatch("zoe", {"amy", "cy", "zoe", "amy"})) ==
        "amy=OK,cy=NOT_WATCHED,zoe=NOT_WATCHED,amy=NOT_WATCHED");
  CHECK(watchers_str(s, "amy") == "");
  CHECK(watchers_str(s, "bob") == "amy,zoe");
  CHECK(results(s.unwatch("bob", {"ghost"})) == "ghost=NOT_WATCHED");  // amy's watch
  CHECK(watchers_str(s, "ghost") == "amy");
  CHECK(results(s.unwatch("amy", {"ghost", "bob"})) == "ghost=OK,bob=OK");
  CHECK(watchers_str(s, "ghost") == "");
  CHECK(watchers_str(s, "bob") == "zoe");
  CHECK(results(s.watch("zoe", {"zoe"})) == "zoe=OK");  // watching oneself is allowed
  CHECK(watchers_str(s, "zoe") == "zoe");
}

TEST_CASE_TEMPLATE("state: LIMIT_WATCH at limits.watched_users", Backend, MemoryBackend, SqliteBackend) {
  for (int limit : {1, 3}) {
    CAPTURE(limit);
    LimitsConfig l;
    l.watched_users = limit;
    RTM_STORE(s, l);
    login(s, "amy");
    login(s, "bob");
    Strings users;
    Strings want;
    for (int i = 0; i <= limit; ++i) {
      users.push_back("w" + std::to_string(i));
      want.push_back(users.back() + (i < limit ? "=OK" : "=LIMIT_WATCH"));
    }
    CHECK(results(s.watch("amy", users)) == str(want));
    CHECK(watchers_str(s, users.back()) == "");
    CHECK(results(s.watch("amy", {"w0"})) == "w0=OK");  // already watched: fine at the limit
    CHECK(results(s.watch("amy", {"late"})) == "late=LIMIT_WATCH");
    CHECK(results(s.watch("bob", {"late"})) == "late=OK");  // per watcher
    CHECK(results(s.unwatch("amy", {"w0"})) == "w0=OK");
    CHECK(results(s.watch("amy", {"late"})) == "late=OK");
    CHECK(watchers_str(s, "late") == "amy,bob");
  }
}

TEST_CASE_TEMPLATE("state: end_session drops the user's watches, not the watches of it", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  for (const auto* u : {"amy", "bob", "cy"}) login(s, u);
  REQUIRE(results(s.watch("amy", {"bob", "cy", "ghost"})) == "bob=OK,cy=OK,ghost=OK");
  REQUIRE(results(s.watch("bob", {"amy", "cy"})) == "amy=OK,cy=OK");
  s.end_session("amy");
  CHECK(watchers_str(s, "bob") == "");
  CHECK(watchers_str(s, "cy") == "bob");
  CHECK(watchers_str(s, "ghost") == "");
  CHECK(watchers_str(s, "amy") == "bob");
  CHECK(results(s.unwatch("amy", {"bob"})) == "bob=NOT_WATCHED");
  s.end_session("bob");
  CHECK(watchers_str(s, "amy") == "");
  CHECK(watchers_str(s, "cy") == "");
  // A new session starts without watches, and the limit counts from zero again.
  login(s, "amy");
  CHECK(s.unwatch("amy", {"bob"})[0].error);  // watches nobody
  CHECK(results(s.unwatch("amy", {"cy"})) == "cy=NOT_WATCHED");
}

// ================================================================= presence

TEST_CASE_TEMPLATE("state: presence records and online", Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  CHECK_FALSE(s.presence("amy"));
  CHECK_FALSE(s.online("amy"));

  struct Row {
    bool connected;
    const char* connection;
    bool online;
  };
  const std::vector<Row> rows = {
      {true, "conn-1", true},
      {false, "conn-1", false},
      {true, "conn-2", true},
      {false, "conn-old", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.connection);
    s.set_presence("amy", row.connected, row.connection);
    const auto p = s.presence("amy");
    REQUIRE(p);
    CHECK(p->connected == row.connected);
    CHECK(p->connection == row.connection);
    CHECK(s.online("amy") == row.online);  // no session: online only when connected
    CHECK_FALSE(s.session("amy"));
  }
  CHECK_FALSE(s.presence("bob"));

  s.set_presence("amy", true, "conn-3");
  s.forget_presence("amy");
  CHECK_FALSE(s.presence("amy"));
  CHECK_FALSE(s.online("amy"));
  s.forget_presence("amy");  // twice is harmless

  // A session is online whatever the presence says; presence is not touched by sessions.
  login(s, "amy");
  s.set_presence("amy", false, "conn-4");
  CHECK(s.online("amy"));
  s.end_session("amy");
  CHECK_FALSE(s.online("amy"));
  REQUIRE(s.presence("amy"));
  CHECK(s.presence("amy")->connection == "conn-4");
  s.set_presence("amy", true, "conn-5");
  CHECK(s.online("amy"));
}

// ================================================================= model-based

namespace {

// The rules of State written the plain way, with std::map/std::set.
struct Model {
  LimitsConfig limits;
  std::set<std::string> sessions;
  std::map<std::string, Strings> channels_of;  // uid -> channels, in join order
  std::map<std::string, Strings> members;      // channel -> members, in join order
  std::map<std::pair<std::string, std::string>, std::set<std::string>> publishers;  // (ch, topic)
  using SubKey = std::tuple<std::string, std::string, std::string>;  // (subscriber, ch, topic)
  std::map<SubKey, std::set<std::string>> subs;                      // -> publishers
  std::map<SubKey, std::set<std::string>> autos;          // -> those of subs added by "all" mode
  std::set<SubKey> alls;                                  // subscriptions in "all" mode
  std::map<std::string, std::set<std::string>> watching;  // watcher -> watched
  std::map<std::string, PresenceRecord> presence;

  static bool has(const Strings& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  }
  Strings chans(const std::string& uid) const {
    auto it = channels_of.find(uid);
    return it == channels_of.end() ? Strings{} : it->second;
  }
  Strings mems(const std::string& channel) const {
    auto it = members.find(channel);
    return it == members.end() ? Strings{} : it->second;
  }
  bool is_member(const std::string& uid, const std::string& channel) const {
    return has(mems(channel), uid);
  }
  Strings pubs(const std::string& channel, const std::string& topic) const {
    auto it = publishers.find({channel, topic});
    return it == publishers.end() ? Strings{} : Strings(it->second.begin(), it->second.end());
  }
  std::set<std::string> subscribed(const std::string& uid, const std::string& channel,
                                    const std::string& topic) const {
    auto it = subs.find({uid, channel, topic});
    return it == subs.end() ? std::set<std::string>{} : it->second;
  }
  std::size_t topics_published(const std::string& uid, const std::string& channel) const {
    std::size_t n = 0;
    for (const auto& [key, who] : publishers) n += key.first == channel && who.count(uid);
    return n;
  }
  std::size_t subscription_count() const {
    std::size_t n = 0;
    for (const auto& [key, who] : subs) n += who.size();
    return n;
  }
  std::set<std::string> watched_by(const std::string& watcher) const {
    auto it = watching.find(watcher);
    return it == watching.end() ? std::set<std::string>{} : it->second;
  }
  Strings watchers_of(const std::string& uid) const {
    Strings out;
    for (const auto& [watcher, watched] : watching) {
      if (watched.count(uid)) out.push_back(watcher);
    }
    return out;  // std::map order: sorted
  }
  bool online(const std::string& uid) const {
    auto p = presence.find(uid);
    return sessions.count(uid) || (p != presence.end() && p->second.connected);
  }
  std::string snapshot(const std::string& channel) const {
    std::string out = "members=[" + str(mems(channel)) + "]";
    for (const auto& [key, who] : publishers) {
      if (key.first == channel && !who.empty()) out += " " + key.second + "=[" + str(who) + "]";
    }
    return out;
  }

  // Precondition: uid is a member. Answers the topics it stopped publishing in.
  std::set<std::string> leave(const std::string& uid, const std::string& channel) {
    auto& m = members[channel];
    m.erase(std::find(m.begin(), m.end(), uid));
    if (m.empty()) members.erase(channel);
    auto& c = channels_of[uid];
    c.erase(std::find(c.begin(), c.end(), channel));
    std::set<std::string> left;
    for (auto it = publishers.begin(); it != publishers.end();) {
      if (it->first.first == channel && it->second.erase(uid)) left.insert(it->first.second);
      it = it->second.empty() ? publishers.erase(it) : std::next(it);
    }
    for (const auto& topic : left) unpublish(uid, channel, topic);
    for (auto it = subs.begin(); it != subs.end();) {
      const bool mine = std::get<0>(it->first) == uid && std::get<1>(it->first) == channel;
      if (mine) {
        autos.erase(it->first);
        alls.erase(it->first);
      }
      it = mine ? subs.erase(it) : std::next(it);
    }
    return left;
  }

  // A record with no publishers and not in "all" mode is no record.
  void tidy(const SubKey& k) {
    if (autos.count(k) && autos[k].empty()) autos.erase(k);
    if (subs.count(k) && subs[k].empty() && !alls.count(k)) subs.erase(k);
  }

  // uid stopped publishing in (channel, topic): it leaves the "all" subscriptions that added it.
  void unpublish(const std::string& uid, const std::string& channel, const std::string& topic) {
    std::vector<SubKey> keys;
    for (const auto& [k, who] : autos) {
      if (std::get<1>(k) == channel && std::get<2>(k) == topic && who.count(uid)) keys.push_back(k);
    }
    for (const auto& k : keys) {
      autos[k].erase(uid);
      subs[k].erase(uid);
      tidy(k);
    }
  }

  // A new publisher joins the "all" subscriptions of the topic: "sub=OK,sub2=LIMIT_SUBSCRIPTIONS".
  std::string publish(const std::string& uid, const std::string& channel,
                      const std::string& topic) {
    Strings parts;
    for (const auto& k : alls) {  // std::set order: by subscriber name for one (channel, topic)
      if (std::get<1>(k) != channel || std::get<2>(k) != topic || std::get<0>(k) == uid) continue;
      auto& set = subs[k];
      if (set.count(uid)) {
        parts.push_back(std::get<0>(k) + "=OK");
      } else if (static_cast<int>(set.size()) >= limits.publishers_per_subscription) {
        parts.push_back(std::get<0>(k) + "=LIMIT_SUBSCRIPTIONS");
      } else {
        set.insert(uid);
        autos[k].insert(uid);
        parts.push_back(std::get<0>(k) + "=OK");
      }
    }
    return str(parts);
  }

  // Departures as departures_str() prints them.
  std::string end_session(const std::string& uid) {
    std::string out;
    if (!sessions.count(uid)) return out;
    std::map<std::string, std::set<std::string>> gone;
    for (const auto& channel : chans(uid)) gone[channel] = leave(uid, channel);
    for (const auto& [channel, topics] : gone) {
      if (!out.empty()) out += ' ';
      out += channel + ":[" + str(topics) + "]";
    }
    channels_of.erase(uid);
    watching.erase(uid);
    sessions.erase(uid);
    return out;
  }
};

struct RandomRun {
  RandomRun(std::uint32_t seed, const LimitsConfig& limits,
            std::unique_ptr<rtm::test::StoreUnderTest> store)
      : under_test(std::move(store)), state(under_test->store()), rng(seed) {
    model.limits = limits;
  }

  const Strings users = {"Zara", "amy",  "bob_2", "Chloe", "dan.k", "eve", "Finn",
                         "gus-1", "hal",  "Ivy",   "jo",    "Kai",   "lu",  "Max",
                         "nia",   "Oz",   "pam",   "Quinn", "ray",   "Sam"};
  const Strings ghosts = {"ghost", "X-ray"};  // never log in, only subscribed to and watched
  const Strings channels = {"lobby", "room-42", "Arena", "c4", "zz"};
  const Strings topics = {"input", "video", "Chat"};

  std::unique_ptr<rtm::test::StoreUnderTest> under_test;
  StateStore& state;
  Model model;
  std::mt19937 rng;
  std::string problems;             // mismatches found in this step
  std::map<std::string, int> seen;  // outcomes seen, to know the run covered the rules
  int connection_counter = 0;

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  const std::string& pick(const Strings& v) { return v[below(v.size())]; }
  const std::string& any_user() { return below(10) == 0 ? pick(ghosts) : pick(users); }
  Strings some_users(std::size_t max) {
    Strings out;
    const std::size_t n = below(max + 1);
    for (std::size_t i = 0; i < n; ++i) out.push_back(any_user());  // duplicates allowed
    return out;
  }

  void expect(const std::string& what, const std::string& got, const std::string& want) {
    if (got != want) problems += what + ": got [" + got + "], want [" + want + "]\n";
  }
  void expect_code(const std::string& what, const std::string& got, const std::string& want) {
    expect(what, got, want);
    ++seen[what.substr(0, what.find(' ')) + ":" + want];
  }

  // ---- operations: each predicts its answer from the model, runs it, updates the model

  std::string op_login(const std::string& u) {
    if (model.sessions.count(u)) {  // the replacement flow: end, then start again
      expect("replace departures " + u, departures_str(state.end_session(u)), model.end_session(u));
      ++seen["replace"];
    }
    const std::string sid = "sid-" + std::to_string(++connection_counter);
    state.start_session(u, sid, kNow, kNow + kHour);
    model.sessions.insert(u);
    const auto sess = state.session(u);
    expect("session id " + u, sess ? sess->session_id : "(none)", sid);
    return "login " + u;
  }

  std::string op_end_session(const std::string& u) {
    expect("end_session departures " + u, departures_str(state.end_session(u)),
           model.end_session(u));
    return "end_session " + u;
  }

  std::string op_join(const std::string& u, const std::string& c) {
    std::string want = "OK";
    bool want_joined = false;
    if (!model.sessions.count(u)) {
      want = "NOT_LOGGED_IN";
    } else if (!model.is_member(u, c)) {
      if (static_cast<int>(model.chans(u).size()) >= model.limits.channels_per_user) {
        want = "LIMIT_CHANNELS";
      } else if (static_cast<int>(model.mems(c).size()) >= model.limits.members_per_channel) {
        want = "LIMIT_MEMBERS";
      } else {
        want_joined = true;
        model.members[c].push_back(u);
        model.channels_of[u].push_back(c);
      }
    }
    bool joined = !want_joined;
    auto r = state.join(u, c, &joined);
    expect_code("join " + u + " " + c, code_of(r), want);
    expect("join flag " + u + " " + c, joined ? "new" : "not new", want_joined ? "new" : "not new");
    if (r.ok()) expect("join snapshot " + c, snap_str(r.value()), model.snapshot(c));
    if (want == "OK") ++seen[want_joined ? "join:new" : "join:again"];
    return "join " + u + " " + c;
  }

  std::string op_leave(const std::string& u, const std::string& c) {
    const bool member = model.is_member(u, c);
    std::string want_topics;
    if (member) {
      want_topics = str(model.leave(u, c));
      if (model.mems(c).empty()) ++seen["channel deleted"];
    }
    auto r = state.leave(u, c);
    expect_code("leave " + u + " " + c, code_of(r), member ? "OK" : "NOT_JOINED");
    if (r.ok()) {
      expect("leave channel", r.value().channel, c);
      expect("leave topics_left " + u + " " + c, str(sorted(r.value().topics_left)), want_topics);
    }
    return "leave " + u + " " + c;
  }

  std::string op_join_topic(const std::string& u, const std::string& c, const std::string& t) {
    std::string want = "OK";
    bool want_added = false;
    if (!model.is_member(u, c)) {
      want = "NOT_JOINED";
    } else if (!model.publishers[{c, t}].count(u)) {
      if (static_cast<int>(model.topics_published(u, c)) >= model.limits.topics_per_channel) {
        want = "LIMIT_TOPICS";
      } else {
        want_added = true;
        model.publishers[{c, t}].insert(u);
      }
    }
    if (model.publishers[{c, t}].empty()) model.publishers.erase({c, t});
    const std::string want_all = want_added ? model.publish(u, c, t) : "";
    auto r = state.join_topic(u, c, t);
    expect_code("join_topic " + u + " " + c + "/" + t, code_of(r), want);
    if (r.ok()) {
      expect("join_topic added", r.value().added ? "yes" : "no", want_added ? "yes" : "no");
      const std::string got_all = results(r.value().all_subscribers);
      expect("join_topic all subscribers", got_all, want_all);
      if (got_all.find("=OK") != std::string::npos) ++seen["join_topic:all added"];
      if (got_all.find("=LIMIT") != std::string::npos) ++seen["join_topic:all full"];
    }
    return "join_topic " + u + " " + c + "/" + t;
  }

  std::string op_leave_topic(const std::string& u, const std::string& c, const std::string& t) {
    std::string want = "OK";
    bool want_removed = false;
    if (!model.is_member(u, c)) {
      want = "NOT_JOINED";
    } else {
      auto it = model.publishers.find({c, t});
      if (it != model.publishers.end() && it->second.erase(u)) {
        want_removed = true;
        if (it->second.empty()) model.publishers.erase(it);
        const auto before = model.subscription_count();
        model.unpublish(u, c, t);
        if (model.subscription_count() < before) ++seen["leave_topic:all removed"];
      }
    }
    auto r = state.leave_topic(u, c, t);
    expect_code("leave_topic " + u + " " + c + "/" + t, code_of(r), want);
    if (r.ok()) {
      expect("leave_topic removed", r.value() ? "yes" : "no", want_removed ? "yes" : "no");
    }
    return "leave_topic " + u + " " + c + "/" + t;
  }

  std::string op_subscribe(const std::string& u, const std::string& c, const std::string& t) {
    const Strings targets = some_users(5);
    std::string want;
    if (!model.is_member(u, c)) {
      want = "failed:NOT_JOINED";
      ++seen["subscribe:NOT_JOINED"];
    } else {
      auto& set = model.subs[{u, c, t}];
      Strings parts;
      for (const auto& p : targets) {
        if (set.count(p)) {
          model.autos[{u, c, t}].erase(p);
          parts.push_back(p + "=OK");
        } else if (static_cast<int>(set.size()) >= model.limits.publishers_per_subscription) {
          parts.push_back(p + "=LIMIT_SUBSCRIPTIONS");
          ++seen["subscribe:LIMIT_SUBSCRIPTIONS"];
        } else {
          set.insert(p);
          parts.push_back(p + "=OK");
          ++seen["subscribe:new"];
        }
      }
      model.tidy({u, c, t});
      want = str(parts);
    }
    expect("subscribe " + u + " " + c + "/" + t + " [" + str(targets) + "]",
           results(state.subscribe(u, c, t, targets)), want);
    return "subscribe " + u + " " + c + "/" + t + " [" + str(targets) + "]";
  }

  std::string op_unsubscribe(const std::string& u, const std::string& c, const std::string& t) {
    // Mostly users actually subscribed to, so that removals happen.
    Strings targets = some_users(3);
    const auto current = model.subscribed(u, c, t);
    for (const auto& p : current) {
      if (below(2) == 0) targets.insert(targets.begin() + below(targets.size() + 1), p);
    }
    std::string want;
    if (!model.is_member(u, c)) {
      want = "failed:NOT_JOINED";
    } else {
      auto& set = model.subs[{u, c, t}];
      Strings parts;
      for (const auto& p : targets) {
        const bool removed = set.erase(p) > 0;
        model.autos[{u, c, t}].erase(p);
        parts.push_back(p + (removed ? "=OK" : "=NOT_SUBSCRIBED"));
        ++seen[removed ? "unsubscribe:OK" : "unsubscribe:NOT_SUBSCRIBED"];
      }
      model.tidy({u, c, t});
      want = str(parts);
    }
    expect("unsubscribe " + u + " " + c + "/" + t + " [" + str(targets) + "]",
           results(state.unsubscribe(u, c, t, targets)), want);
    return "unsubscribe " + u + " " + c + "/" + t + " [" + str(targets) + "]";
  }

  std::string op_subscribe_all(const std::string& u, const std::string& c, const std::string& t) {
    std::string want;
    if (!model.is_member(u, c)) {
      want = "failed:NOT_JOINED";
    } else {
      const Model::SubKey k{u, c, t};
      model.alls.insert(k);
      auto& set = model.subs[k];
      Strings parts;
      for (const auto& p : model.pubs(c, t)) {  // sorted
        if (p == u) continue;
        if (set.count(p)) {
          parts.push_back(p + "=OK");
        } else if (static_cast<int>(set.size()) >= model.limits.publishers_per_subscription) {
          parts.push_back(p + "=LIMIT_SUBSCRIPTIONS");
          ++seen["subscribe_all:LIMIT_SUBSCRIPTIONS"];
        } else {
          set.insert(p);
          model.autos[k].insert(p);
          parts.push_back(p + "=OK");
          ++seen["subscribe_all:new"];
        }
      }
      want = str(parts);
    }
    expect("subscribe_all " + u + " " + c + "/" + t, results(state.subscribe_all(u, c, t)), want);
    return "subscribe_all " + u + " " + c + "/" + t;
  }

  std::string op_unsubscribe_all(const std::string& u, std::string c, std::string t) {
    // Half the time a subscription of u that is in "all" mode, so that the mode gets ended.
    std::vector<Model::SubKey> mine;
    for (const auto& k : model.alls) {
      if (std::get<0>(k) == u) mine.push_back(k);
    }
    if (!mine.empty() && below(2) == 0) {
      const auto& k = mine[below(mine.size())];
      c = std::get<1>(k);
      t = std::get<2>(k);
    }
    std::string want;
    if (!model.is_member(u, c)) {
      want = "failed:NOT_JOINED";
    } else {
      const Model::SubKey k{u, c, t};
      Strings parts;
      for (const auto& p : model.subscribed(u, c, t)) parts.push_back(p + "=OK");
      if (model.alls.count(k)) ++seen["unsubscribe_all:was all"];
      model.subs.erase(k);
      model.autos.erase(k);
      model.alls.erase(k);
      want = str(parts);
    }
    expect("unsubscribe_all " + u + " " + c + "/" + t, results(state.unsubscribe_all(u, c, t)),
           want);
    return "unsubscribe_all " + u + " " + c + "/" + t;
  }

  std::string op_watch(const std::string& u) {
    const Strings targets = some_users(3);
    std::string want;
    if (!model.sessions.count(u)) {
      want = "failed:NOT_LOGGED_IN";
      ++seen["watch:NOT_LOGGED_IN"];
    } else {
      auto& set = model.watching[u];
      Strings parts;
      for (const auto& w : targets) {
        if (set.count(w)) {
          parts.push_back(w + "=OK");
        } else if (static_cast<int>(set.size()) >= model.limits.watched_users) {
          parts.push_back(w + "=LIMIT_WATCH");
          ++seen["watch:LIMIT_WATCH"];
        } else {
          set.insert(w);
          parts.push_back(w + "=OK");
        }
      }
      if (set.empty()) model.watching.erase(u);
      want = str(parts);
    }
    expect("watch " + u + " [" + str(targets) + "]", results(state.watch(u, targets)), want);
    return "watch " + u + " [" + str(targets) + "]";
  }

  std::string op_unwatch(const std::string& u) {
    Strings targets = some_users(2);
    for (const auto& w : model.watched_by(u)) {
      if (below(2) == 0) targets.push_back(w);
    }
    Strings parts;
    for (const auto& w : targets) {
      auto it = model.watching.find(u);
      const bool removed = it != model.watching.end() && it->second.erase(w) > 0;
      if (it != model.watching.end() && it->second.empty()) model.watching.erase(it);
      parts.push_back(w + (removed ? "=OK" : "=NOT_WATCHED"));
      ++seen[removed ? "unwatch:OK" : "unwatch:NOT_WATCHED"];
    }
    expect("unwatch " + u + " [" + str(targets) + "]", results(state.unwatch(u, targets)),
           str(parts));
    return "unwatch " + u + " [" + str(targets) + "]";
  }

  std::string op_presence(const std::string& u) {
    if (below(4) == 0) {
      state.forget_presence(u);
      model.presence.erase(u);
      return "forget_presence " + u;
    }
    const bool connected = below(2) == 0;
    const std::string conn = "conn-" + std::to_string(++connection_counter);
    state.set_presence(u, connected, conn);
    model.presence[u] = PresenceRecord{connected, conn};
    return "set_presence " + u + (connected ? " online" : " offline");
  }

  std::string op_renew(const std::string& u) {
    const std::int64_t exp = kNow + static_cast<std::int64_t>(below(1000)) * 1000;
    state.renew_session(u, exp);
    const auto sess = state.session(u);
    expect("renew keeps session " + u, sess ? "session" : "none",
           model.sessions.count(u) ? "session" : "none");
    if (sess) expect("renewed expiry " + u, std::to_string(sess->expires_at_ms), std::to_string(exp));
    return "renew " + u;
  }

  std::string step() {
    // Weights: joins and topic/subscription work dominate; logins and logouts are rarer.
    static const std::vector<double> weights = {6, 2, 16, 7, 16, 7, 20, 10, 5, 4, 3, 2, 8, 2};
    std::discrete_distribution<int> which(weights.begin(), weights.end());
    const std::string u = pick(users);
    // Mostly a channel the user is in, so that the rules past NOT_JOINED get exercised.
    const Strings mine = model.chans(u);
    const std::string c = !mine.empty() && below(5) != 0 ? pick(mine) : pick(channels);
    const std::string t = pick(topics);
    switch (which(rng)) {
      case 0: return op_login(u);
      case 1: return op_end_session(u);
      case 2: return op_join(u, pick(channels));
      case 3: return op_leave(u, c);
      case 4: return op_join_topic(u, c, t);
      case 5: return op_leave_topic(u, c, t);
      case 6: return op_subscribe(u, c, t);
      case 7: return op_unsubscribe(u, c, t);
      case 8: return op_watch(u);
      case 9: return op_unwatch(u);
      case 10: return op_presence(below(4) == 0 ? pick(ghosts) : u);
      case 11:
        return op_renew(u);
      case 12:
        return op_subscribe_all(u, c, t);
      default:
        return op_unsubscribe_all(u, c, t);
    }
  }

  // Every query of State against the model.
  void verify() {
    expect("session_count", std::to_string(state.session_count()),
           std::to_string(model.sessions.size()));
    expect("subscription_count", std::to_string(state.subscription_count()),
           std::to_string(model.subscription_count()));
    Strings everyone = users;
    everyone.insert(everyone.end(), ghosts.begin(), ghosts.end());
    for (const auto& u : everyone) {
      expect("session " + u, state.session(u) ? "yes" : "no", model.sessions.count(u) ? "yes" : "no");
      expect("online " + u, state.online(u) ? "yes" : "no", model.online(u) ? "yes" : "no");
      expect("channels_of " + u, str(state.channels_of(u)), str(model.chans(u)));
      if (const auto stored = under_test->model().stored_session(u)) {
        expect("session watching " + u, str(stored->watching), str(model.watched_by(u)));
      }
      expect("watchers_of " + u, str(sorted(state.watchers_of(u))), str(model.watchers_of(u)));
      const auto p = state.presence(u);
      auto mp = model.presence.find(u);
      expect("presence " + u,
             p ? std::string(p->connected ? "on:" : "off:") + p->connection : "none",
             mp == model.presence.end()
                 ? "none"
                 : std::string(mp->second.connected ? "on:" : "off:") + mp->second.connection);
    }
    for (const auto& c : channels) {
      expect("members " + c, members_str(state, c), str(model.mems(c)));
      expect("snapshot " + c, snap_str(state.snapshot(c)), model.snapshot(c));
      for (const auto& u : everyone) {
        expect("is_member " + u + " " + c, state.is_member(u, c) ? "yes" : "no",
               model.is_member(u, c) ? "yes" : "no");
      }
      for (const auto& t : topics) {
        expect("publishers " + c + "/" + t, str(state.publishers(c, t)), str(model.pubs(c, t)));
        for (const auto& u : everyone) {
          expect("subscribed " + u + " " + c + "/" + t, subscribed_str(state, u, c, t),
                 model.is_member(u, c) ? str(model.subscribed(u, c, t)) : "failed:NOT_JOINED");
          expect("subscribes_all " + u + " " + c + "/" + t,
                 state.subscribes_all(u, c, t) ? "yes" : "no",
                 model.alls.count({u, c, t}) ? "yes" : "no");
        }
      }
    }
  }
};

struct RandomCase {
  std::uint32_t seed;
  LimitsConfig limits;
  int ops;
  bool tight;  // small limits: every limit must have been hit
};

}  // namespace

TEST_CASE_TEMPLATE("state: a long random sequence matches the model and ends empty", Backend,
                   MemoryBackend, SqliteBackend) {
  LimitsConfig defaults;
  const std::vector<RandomCase> cases = {
      {1, tight_limits(), 5000, true},
      {20240601, tight_limits(), 5000, true},
      {99, defaults, 4000, false},
  };
  for (const auto& rc : cases) {
    CAPTURE(rc.seed);
    RandomRun run(rc.seed, rc.limits, Backend::make(rc.limits));
    // Most users start logged in.
    for (const auto& u : run.users) {
      if (run.below(4) != 0) run.op_login(u);
    }
    run.verify();
    REQUIRE_MESSAGE(run.problems.empty(), "after the first logins:\n" << run.problems);

    std::string op;
    for (int i = 0; i < rc.ops; ++i) {
      op = run.step();
      run.verify();
      if (!run.problems.empty()) {
        FAIL("seed " << rc.seed << ", step " << i << ": " << op << "\n" << run.problems);
      }
      // A durable backend restores every state the run passes through.
      if (i % 500 == 499) run.under_test->check_restores();
    }

    // Everyone logs out, in a random order; the state must be empty.
    Strings order = run.users;
    std::shuffle(order.begin(), order.end(), run.rng);
    for (const auto& u : order) {
      op = run.op_end_session(u);
      run.verify();
      if (!run.problems.empty()) FAIL("seed " << rc.seed << ", final " << op << "\n" << run.problems);
    }
    CHECK(run.state.session_count() == 0);
    CHECK(run.state.subscription_count() == 0);
    for (const auto& c : run.channels) {
      CAPTURE(c);
      CHECK(members_str(run.state, c) == "");
      CHECK(snap_str(run.state.snapshot(c)) == "members=[]");
      for (const auto& t : run.topics) CHECK(str(run.state.publishers(c, t)) == "");
    }
    for (const auto& u : run.users) {
      CAPTURE(u);
      CHECK(run.state.channels_of(u).empty());
      CHECK(run.state.watchers_of(u).empty());
    }
    for (const auto& g : run.ghosts) CHECK(run.state.watchers_of(g).empty());

    // The run covered the rules it claims to test.
    std::string seen;
    for (const auto& [what, n] : run.seen) seen += what + "=" + std::to_string(n) + " ";
    CAPTURE(seen);
    const Strings always = {"join:new",
                            "join:again",
                            "join:NOT_LOGGED_IN",
                            "leave:OK",
                            "leave:NOT_JOINED",
                            "channel deleted",
                            "join_topic:OK",
                            "join_topic:NOT_JOINED",
                            "leave_topic:OK",
                            "subscribe:new",
                            "subscribe:NOT_JOINED",
                            "unsubscribe:OK",
                            "unsubscribe:NOT_SUBSCRIBED",
                            "watch:NOT_LOGGED_IN",
                            "unwatch:OK",
                            "unwatch:NOT_WATCHED",
                            "replace",
                            "subscribe_all:new",
                            "join_topic:all added",
                            "leave_topic:all removed",
                            "unsubscribe_all:was all"};
    for (const auto& what : always) {
      CAPTURE(what);
      CHECK(run.seen[what] > 0);
    }
    if (rc.tight) {
      const Strings limits = {"join:LIMIT_CHANNELS",     "join:LIMIT_MEMBERS",
                              "join_topic:LIMIT_TOPICS", "subscribe:LIMIT_SUBSCRIPTIONS",
                              "watch:LIMIT_WATCH",       "subscribe_all:LIMIT_SUBSCRIPTIONS",
                              "join_topic:all full"};
      for (const auto& what : limits) {
        CAPTURE(what);
        CHECK(run.seen[what] > 0);
      }
    }
  }
}

// ================================================================= the operations

namespace {

// The RTM operations in a Core, driven by requests as a client sends them.
struct Ops : rtm::test::RtmHarness {
  explicit Ops(const LimitsConfig& limits = LimitsConfig{}) : RtmHarness(with(limits), kNow) {}
  static rtm::gateway::Config with(const LimitsConfig& limits) {
    auto config = rtm::test::harness_config();
    config.limits = limits;
    return config;
  }

  Strings subscribed(const std::string& uid, const std::string& channel, const std::string& topic,
                     bool* all = nullptr) {
    auto r = ok(uid, "subscribed", "channel=" + channel + "&topic=" + topic);
    if (all) *all = r["all"].GetBool();
    Strings out;
    for (const auto& u : r["users"].GetArray()) out.push_back(u.GetString());
    return out;
  }

  // The per-user part of a subscribe / unsubscribe answer: "bob=OK,p4=LIMIT_SUBSCRIPTIONS".
  static std::string users_of(const rapidjson::Document& result) {
    Strings parts;
    for (const auto& u : result["users"].GetArray()) {
      parts.push_back(std::string(u["uid"].GetString()) + "=" +
                      (u["ok"].GetBool() ? "OK" : u["error"].GetString()));
    }
    return str(parts);
  }
};

}  // namespace

TEST_CASE(
    "operations: subscribe without users follows every publisher, added before join_topic is "
    "answered") {
  Ops g;
  g.enter("tap", "lobby");
  g.enter("bob", "lobby");
  g.enter("carol", "lobby");
  g.ok("bob", "join_topic", "channel=lobby&topic=chat");

  auto sub = g.ok("tap", "subscribe", "channel=lobby&topic=chat");
  CHECK(Ops::users_of(sub) == "bob=OK");
  CHECK(sub["all"].GetBool());
  CHECK(std::string(sub["filter"].GetString()) == "rtm/ch/lobby/chat/+");
  CHECK(std::string(sub["users"][0]["topic"].GetString()) == "rtm/ch/lobby/chat/bob");
  CHECK(std::string(sub["channel"].GetString()) == "lobby");
  CHECK(std::string(sub["topic"].GetString()) == "chat");
  bool all = false;
  CHECK(str(g.subscribed("tap", "lobby", "chat", &all)) == "bob");
  CHECK(all);

  // carol joins the topic: the subscription holds her when her join_topic is answered, and
  // no personal event is needed for it.
  const auto before = g.outbox.sent.size();
  auto answer = g.send("carol", "join_topic", "channel=lobby&topic=chat");
  CHECK(g.sent_to("rtm/u/tap/events/subscription", before).empty());
  const auto joined_event = g.sent_to("rtm/events/lobby", before);
  REQUIRE(joined_event.size() == 1);
  CHECK(joined_event[0] < answer);
  CHECK(str(g.subscribed("tap", "lobby", "chat", &all)) == "bob,carol");
  CHECK(all);
  // The other users' subscriptions are untouched; the caller is never in its own.
  CHECK(str(g.subscribed("bob", "lobby", "chat")) == "");
  g.ok("tap", "join_topic", "channel=lobby&topic=chat");
  CHECK(str(g.subscribed("tap", "lobby", "chat")) == "bob,carol");

  // A bridge device that starts publishing is added the same way.
  std::string why;
  REQUIRE(g.api->ensure_device_publisher("sensor-1", "lobby", "chat", &why));
  CHECK(str(g.subscribed("tap", "lobby", "chat")) == "bob,carol,sensor-1");

  // A publisher that leaves the topic leaves the subscription.
  g.ok("bob", "leave_topic", "channel=lobby&topic=chat");
  CHECK(str(g.subscribed("tap", "lobby", "chat")) == "carol,sensor-1");
}

TEST_CASE("operations: beyond the limit a new publisher is refused with a subscription event") {
  LimitsConfig l;
  l.publishers_per_subscription = 2;
  Ops g(l);
  for (const auto* u : {"host", "p1", "p2", "p3", "p4"}) g.enter(u, "room");
  g.ok("p1", "join_topic", "channel=room&topic=input");
  g.ok("p2", "join_topic", "channel=room&topic=input");
  g.ok("p3", "join_topic", "channel=room&topic=input");
  auto sub = g.ok("host", "subscribe", "channel=room&topic=input");
  CHECK(Ops::users_of(sub) == "p1=OK,p2=OK,p3=LIMIT_SUBSCRIPTIONS");
  CHECK(sub["users"][2]["code"].GetInt() == 33);

  const auto before = g.outbox.sent.size();
  const auto answer = g.send("p4", "join_topic", "channel=room&topic=input");
  const auto events = g.sent_to("rtm/u/host/events/subscription", before);
  REQUIRE(events.size() == 1);
  CHECK(events[0] < answer);  // told before the publisher can publish
  rapidjson::Document e;
  e.Parse(g.outbox.sent[events[0]].payload.c_str());
  REQUIRE(e.IsObject());
  CHECK(std::string(e["event"].GetString()) == "subscription");
  CHECK(std::string(e["channel"].GetString()) == "room");
  CHECK(std::string(e["topic"].GetString()) == "input");
  CHECK(std::string(e["uid"].GetString()) == "p4");
  CHECK_FALSE(e["ok"].GetBool());
  CHECK(e["code"].GetInt() == 33);
  CHECK(std::string(e["error"].GetString()) == "LIMIT_SUBSCRIPTIONS");
  CHECK(std::string(e["message"].GetString()).find("limits.publishers_per_subscription") !=
        std::string::npos);
  CHECK(e["ts"].GetInt64() == kNow);
  CHECK(str(g.subscribed("host", "room", "input")) == "p1,p2");
  // Nobody else hears of it.
  for (const auto* u : {"p1", "p2", "p3", "p4"}) {
    CHECK(g.sent_to("rtm/u/" + std::string(u) + "/events/subscription", before).empty());
  }
}

TEST_CASE("operations: unsubscribe without users ends the mode and an empty users list is refused") {
  Ops g;
  for (const auto* u : {"tap", "bob", "cy"}) g.enter(u, "c");
  g.ok("bob", "join_topic", "channel=c&topic=t");
  g.ok("tap", "subscribe", "channel=c&topic=t", R"({"users":["cy"]})");
  CHECK(Ops::users_of(g.ok("tap", "subscribe", "channel=c&topic=t")) == "bob=OK");
  auto un = g.ok("tap", "unsubscribe", "channel=c&topic=t");
  CHECK(Ops::users_of(un) == "bob=OK,cy=OK");
  CHECK_FALSE(un["all"].GetBool());
  CHECK(std::string(un["filter"].GetString()) == "rtm/ch/c/t/+");
  bool all = true;
  CHECK(str(g.subscribed("tap", "c", "t", &all)) == "");
  CHECK_FALSE(all);
  g.ok("cy", "join_topic", "channel=c&topic=t");
  CHECK(str(g.subscribed("tap", "c", "t")) == "");
  CHECK(Ops::users_of(g.ok("tap", "unsubscribe", "channel=c&topic=t")) == "");

  // users given but empty, or as an empty query value: an error, never "all".
  CHECK(g.error("tap", "subscribe", "channel=c&topic=t", R"({"users":[]})") == "INVALID_PARAMETER");
  CHECK(g.error("tap", "subscribe", "channel=c&topic=t&users=") == "INVALID_NAME");
  CHECK(g.error("tap", "unsubscribe", "channel=c&topic=t", R"({"users":[]})") ==
        "INVALID_PARAMETER");
  CHECK_FALSE(g.ok("tap", "subscribed", "channel=c&topic=t")["all"].GetBool());
  // Outside the channel.
  g.login("out");
  CHECK(g.error("out", "subscribe", "channel=c&topic=t") == "NOT_JOINED");
  CHECK(g.error("out", "unsubscribe", "channel=c&topic=t") == "NOT_JOINED");
}

}  // TEST_SUITE

// ================================================================= the sqlite file

namespace {

struct StateFile {
  StateFile() {
    char pattern[] = "/tmp/rtm-state-file-XXXXXX";
    dir = mkdtemp(pattern);
    config.backend = "sqlite";
    config.path = dir + "/state.db";
  }
  ~StateFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::unique_ptr<rtm::gateway::SqliteStore> open() {
    return std::make_unique<rtm::gateway::SqliteStore>(config, LimitsConfig{}, kWindowMs);
  }
  // Opening fails with a message holding every piece of `expected`.
  void refused(std::initializer_list<std::string> expected) {
    try {
      open();
      FAIL("the file was accepted");
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      for (const auto& piece : expected) CHECK_MESSAGE(what.find(piece) != std::string::npos, what);
    }
  }
  std::string bytes() const {
    std::ifstream in(config.path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static constexpr std::int64_t kWindowMs = 60000;
  std::string dir;
  rtm::gateway::StateConfig config;
};

void sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &error);
  INFO((error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

// The tables of a released schema version (1 to 3) as that release created them, for the
// migration tests.
std::string released_schema(int version) {
  std::string out =
      "CREATE TABLE sessions(uid TEXT PRIMARY KEY, session_id TEXT NOT NULL, started_ms INTEGER "
      "NOT NULL, expires_at_ms INTEGER NOT NULL, watching TEXT NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE members(channel TEXT NOT NULL, uid TEXT NOT NULL, seq INTEGER NOT NULL, "
      "publishing TEXT NOT NULL, PRIMARY KEY(channel, uid)) WITHOUT ROWID;"
      "CREATE TABLE subscriptions(channel TEXT NOT NULL, uid TEXT NOT NULL, topic TEXT NOT NULL, "
      "all_publishers INTEGER NOT NULL, publishers TEXT NOT NULL, automatic TEXT NOT NULL, "
      "PRIMARY KEY(channel, uid, topic)) WITHOUT ROWID;"
      "CREATE TABLE answers(uid TEXT NOT NULL, msg_id TEXT NOT NULL, fingerprint INTEGER NOT "
      "NULL, payload BLOB NOT NULL, at_ms INTEGER NOT NULL);";
  if (version >= 2) {
    out +=
        "CREATE TABLE presence(uid TEXT PRIMARY KEY, connected INTEGER NOT NULL, connection TEXT "
        "NOT NULL) WITHOUT ROWID;";
  }
  if (version >= 3) {
    out +=
        "CREATE TABLE metadata(scope TEXT NOT NULL, name TEXT NOT NULL, record BLOB NOT NULL, "
        "PRIMARY KEY(scope, name)) WITHOUT ROWID;"
        "CREATE TABLE metadata_subscriptions(subscriber TEXT NOT NULL, target TEXT NOT NULL, "
        "PRIMARY KEY(subscriber, target)) WITHOUT ROWID;";
  }
  return out;
}

}  // namespace

TEST_CASE("sqlite: a corrupt file is refused with its path and SQLite's words, and left alone") {
  StateFile f;
  {
    std::ofstream out(f.config.path, std::ios::binary);
    out << std::string(4096, 'x');
  }
  f.refused({f.config.path, "file is not a database"});
  CHECK(f.bytes() == std::string(4096, 'x'));
}

TEST_CASE("sqlite: another application's database is refused, not written into") {
  StateFile f;
  sql(f.config.path, "CREATE TABLE notes(text TEXT); INSERT INTO notes VALUES('keep me');");
  const std::string before = f.bytes();
  f.refused({f.config.path, "not an rtm-mqtt-gateway state file"});
  CHECK(f.bytes() == before);
}

TEST_CASE("sqlite: a file of a newer schema is refused, one of ours opens again") {
  StateFile f;
  {
    auto s = f.open();
    s->start_session("amy", "sid-1", kNow, kNow + kHour);
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  {
    auto s = f.open();  // the same version: restored
    CHECK(s->session("amy"));
    CHECK(s->restored().sessions == 1);
  }
  sql(f.config.path, "PRAGMA user_version=" +
                         std::to_string(rtm::gateway::SqliteStore::kSchemaVersion + 1));
  f.refused({f.config.path, "written by a newer gateway"});
}

TEST_CASE("sqlite: a file of schema 1 is migrated in place and keeps its rows") {
  StateFile f;
  // Schema 1 as the first release wrote it: no presence table.
  sql(f.config.path, released_schema(1) +
                         "INSERT INTO sessions VALUES('amy', 'sid-1', 1, 9999999999999, 'bob');"
                         "PRAGMA application_id=" +
                         std::to_string(rtm::gateway::SqliteStore::kApplicationId) +
                         "; PRAGMA user_version=1;");
  {
    auto s = f.open();
    CHECK(s->session("amy"));
    CHECK(s->watchers_of("bob") == std::vector<std::string>{"amy"});
    s->set_presence("bob", true, "conn-1");
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  CHECK(s->session("amy"));
  REQUIRE(s->presence("bob"));
  CHECK(s->presence("bob")->connection == "conn-1");
  CHECK(s->restored().presence == 1);
}

TEST_CASE("sqlite: a file of schema 2 is migrated in place to 3 and keeps its rows") {
  StateFile f;
  // Schema 2 as it was released: schema 1 and the presence table, no metadata tables.
  sql(f.config.path, released_schema(2) +
                         "INSERT INTO sessions VALUES('amy', 'sid-1', 1, 9999999999999, '');"
                         "INSERT INTO members VALUES('room', 'amy', 1, 'input');"
                         "INSERT INTO presence VALUES('amy', 1, 'conn-1');"
                         "PRAGMA application_id=" +
                         std::to_string(rtm::gateway::SqliteStore::kApplicationId) +
                         "; PRAGMA user_version=2;");
  {
    auto s = f.open();
    CHECK(s->session("amy"));
    CHECK(s->is_publisher("amy", "room", "input"));
    REQUIRE(s->presence("amy"));
    rtm::storage::Write w;
    w.items.push_back({"seat", "3", rtm::storage::kNoCheck});
    REQUIRE(s->metadata().write(rtm::gateway::MetadataScope::user, "amy", w, {"amy", kNow}));
    REQUIRE(s->metadata().subscribe("amy", "bob", 10));
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  CHECK(s->session("amy"));
  CHECK(s->is_member("amy", "room"));
  const auto m = s->metadata().read(rtm::gateway::MetadataScope::user, "amy");
  CHECK(m.major_revision == 1);
  REQUIRE(m.items.count("seat"));
  CHECK(m.items.at("seat").value == "3");
  CHECK(s->metadata().subscribers_of("bob") == std::vector<std::string>{"amy"});
  CHECK(s->restored().metadata == 1);
  CHECK(s->restored().metadata_subscriptions == 1);
}

TEST_CASE("sqlite: a file of schema 3 is migrated in place to 4 and keeps its rows") {
  StateFile f;
  // Schema 3 as it was released: schema 2 and the metadata tables, no locks table.
  sql(f.config.path, released_schema(3) +
                         "INSERT INTO sessions VALUES('amy', 'sid-1', 1, 9999999999999, '');"
                         "INSERT INTO members VALUES('room', 'amy', 1, '');"
                         "INSERT INTO metadata_subscriptions VALUES('amy', 'bob');"
                         "PRAGMA application_id=" +
                         std::to_string(rtm::gateway::SqliteStore::kApplicationId) +
                         "; PRAGMA user_version=3;");
  {
    auto s = f.open();
    CHECK(s->is_member("amy", "room"));
    CHECK(s->metadata().subscribers_of("bob") == std::vector<std::string>{"amy"});
    REQUIRE(s->locks().set_lock("room", "host", 10));
    REQUIRE(s->locks().acquire("room", "host", "amy", false, kNow));
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  CHECK(s->is_member("amy", "room"));
  const auto host = s->locks().find("room", "host");
  REQUIRE(host);
  CHECK(host->holder == std::optional<std::string>("amy"));
  CHECK(s->restored().lock_channels == 1);
}

TEST_CASE("sqlite: the locks of a channel are one record with holders, queues and deadlines") {
  StateFile f;
  using rtm::storage::LockState;
  {
    auto s = f.open();
    auto& locks = s->locks();
    REQUIRE(locks.set_lock("room", "host", 10));
    REQUIRE(locks.set_lock("room", "seat 2", 30));
    REQUIRE(locks.set_lock("hall", "x", 10));
    REQUIRE(locks.acquire("room", "host", "amy", false, kNow));
    REQUIRE(locks.acquire("room", "host", "bob", true, kNow));
    REQUIRE(locks.acquire("room", "host", "cid", true, kNow));
    REQUIRE(locks.acquire("room", "seat 2", "bob", false, kNow));
    CHECK(locks.holder_left("room", "amy", kNow).held == std::vector<std::string>{"host"});
    s->commit([](bool ok) { REQUIRE(ok); });
    // The last lock of a channel removed: its record goes.
    REQUIRE(locks.remove("hall", "x", kNow));
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  CHECK(s->restored().lock_channels == 1);
  CHECK(s->locks().channels() == std::vector<std::string>{"room"});
  CHECK(s->locks().get_locks("room") ==
        std::vector<LockState>{{"host", 10, std::string("amy"), kNow + 10000, {"bob", "cid"}},
                               {"seat 2", 30, std::string("bob"), std::nullopt, {}}});
  CHECK(s->locks().next_deadline() == kNow + 10000);
  CHECK(s->locks().lock_count() == 2);
}

TEST_CASE("sqlite: a corrupt locks record is refused at start-up, naming the channel") {
  StateFile f;
  {
    auto s = f.open();
    REQUIRE(s->locks().set_lock("room", "host", 10));
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  sql(f.config.path, "UPDATE locks SET record = 'rtm-locks 1\n2:xx' WHERE channel = 'room';");
  f.refused({f.config.path, "the locks of channel room are corrupt"});
}

TEST_CASE("sqlite: metadata is stored by scope, and metadata subscriptions end with the session") {
  using rtm::gateway::MetadataScope;
  StateFile f;
  {
    auto s = f.open();
    s->start_session("amy", "sid-1", kNow, kNow + kHour);
    s->start_session("bob", "sid-2", kNow, kNow + kHour);
    rtm::storage::Write w;
    w.items.push_back({"k", std::string("bin\0ary", 7), rtm::storage::kNoCheck});
    w.record_author = true;
    REQUIRE(s->metadata().write(MetadataScope::user, "room", w, {"amy", kNow}));
    w.items[0].value = "channel";
    REQUIRE(s->metadata().write(MetadataScope::channel, "room", w, {"amy", kNow}));
    REQUIRE(s->metadata().write(MetadataScope::channel, "room", w, {"amy", kNow}));
    REQUIRE(s->metadata().subscribe("amy", "room", 10));
    REQUIRE(s->metadata().subscribe("bob", "room", 10));
    s->commit([](bool ok) { REQUIRE(ok); });
    s->end_session("bob");
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  const auto user = s->metadata().read(MetadataScope::user, "room");
  REQUIRE(user.items.count("k"));
  CHECK(user.items.at("k").value == std::string("bin\0ary", 7));
  CHECK(user.items.at("k").author == std::optional<std::string>("amy"));
  const auto channel = s->metadata().read(MetadataScope::channel, "room");
  CHECK(channel.major_revision == 2);
  CHECK(channel.items.at("k").value == "channel");
  CHECK(s->metadata().subscribers_of("room") == std::vector<std::string>{"amy"});
}

TEST_CASE("sqlite: presence records are stored, changed and forgotten across restarts") {
  StateFile f;
  {
    auto s = f.open();
    s->set_presence("amy", true, "conn-1");
    s->set_presence("bob", false, "conn-2");
    s->set_presence("cid", true, "conn-3");
    s->commit([](bool ok) { REQUIRE(ok); });
    s->forget_presence("cid");
    s->set_presence("amy", true, "conn-4");
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  REQUIRE(s->presence("amy"));
  CHECK(s->presence("amy")->connected);
  CHECK(s->presence("amy")->connection == "conn-4");
  REQUIRE(s->presence("bob"));
  CHECK_FALSE(s->presence("bob")->connected);
  CHECK_FALSE(s->presence("cid"));
  CHECK(s->online("amy"));
  CHECK_FALSE(s->online("bob"));
}

TEST_CASE("sqlite: a second store on a file in use is refused") {
  StateFile f;
  auto first = f.open();
  f.refused({f.config.path, "another gateway"});
  first->start_session("amy", "sid-1", kNow, kNow + kHour);
  bool ok = false;
  first->commit([&](bool done) { ok = done; });
  CHECK(ok);  // the first goes on
}

TEST_CASE("sqlite: answers come back for the dedup window, older ones are pruned") {
  StateFile f;
  {
    auto s = f.open();
    s->remember_answer({"amy", "m-old", 7, "{\"old\":1}", kNow - 2 * StateFile::kWindowMs});
    s->commit([](bool ok) { REQUIRE(ok); });
    s->remember_answer({"amy", "m1", 42, "{\"msg_id\":\"m1\"}", kNow});
    s->remember_answer({"bob", "m1", 43, "{\"msg_id\":\"m1\",\"b\":1}", kNow + 1});
    s->commit([](bool ok) { REQUIRE(ok); });  // prunes what is older than the window
  }
  auto s = f.open();
  const auto all = s->stored_answers(0);
  REQUIRE(all.size() == 2);
  CHECK(all[0].uid == "amy");
  CHECK(all[0].msg_id == "m1");
  CHECK(all[0].fingerprint == 42);
  CHECK(all[0].payload == "{\"msg_id\":\"m1\"}");
  CHECK(all[0].at_ms == kNow);
  CHECK(all[1].uid == "bob");
  CHECK(s->stored_answers(kNow + 1).size() == 1);
}

TEST_CASE("sqlite: a commit with nothing changed writes nothing") {
  StateFile f;
  auto s = f.open();
  const auto before = s->stats().commits;
  bool called = false;
  s->commit([&](bool ok) { called = ok; });
  CHECK(called);
  CHECK(s->stats().commits == before);
  s->start_session("amy", "sid-1", kNow, kNow + kHour);
  s->commit([](bool) {});
  CHECK(s->stats().commits == before + 1);
  CHECK(s->stats().backend == "sqlite");
  CHECK(s->stats().file_bytes > 0);
}

TEST_CASE_TEMPLATE("state: message channel subscriptions belong to the session, bounded, stored",
                   Backend, MemoryBackend, SqliteBackend) {
  LimitsConfig limits;
  limits.message_channels_per_user = 2;
  limits.subscribers_per_message_channel = 2;
  RTM_STORE(s, limits);
  CHECK(code_of(s.subscribe_channel("amy", {"news", false, 0})) == "NOT_LOGGED_IN");
  login(s, "amy");
  login(s, "bob");
  login(s, "cid");
  auto first = s.subscribe_channel("amy", {"news", true, kNow + kHour});
  REQUIRE(first.ok());
  CHECK(*first);
  // Again: replaced (presence, token), not added.
  auto again = s.subscribe_channel("amy", {"news", false, 0});
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  REQUIRE(s.message_channel("amy", "news"));
  CHECK_FALSE(s.message_channel("amy", "news")->presence);
  REQUIRE(s.subscribe_channel("amy", {"news", true, kNow + kHour}).ok());
  REQUIRE(s.subscribe_channel("amy", {"lobby", false, 0}).ok());
  CHECK(code_of(s.subscribe_channel("amy", {"third", false, 0})) == "LIMIT_CHANNELS");
  REQUIRE(s.subscribe_channel("bob", {"news", false, 0}).ok());
  CHECK(code_of(s.subscribe_channel("cid", {"news", true, 0})) == "LIMIT_MEMBERS");
  CHECK(s.channel_subscribers("news", false) == Strings{"amy", "bob"});
  CHECK(s.channel_subscribers("news", true) == Strings{"amy"});
  CHECK(s.message_channel_count() == 2);
  // No join: stream channels know nothing of it.
  CHECK(s.channels_of("amy").empty());
  CHECK(s.channel_count() == 0);

  // Stored and restored (sqlite), with presence and token, in subscription order.
  const auto stored = s.stored_session("amy");
  REQUIRE(stored);
  REQUIRE(stored->message_channels.size() == 2);
  CHECK(stored->message_channels[0] == MessageChannelSubscription{"news", true, kNow + kHour});
  CHECK(stored->message_channels[1].channel == "lobby");
  s_under_test->check_restores();

  auto gone = s.unsubscribe_channel("bob", "news");
  REQUIRE(gone.ok());
  CHECK(gone->channel == "news");
  CHECK(code_of(s.unsubscribe_channel("bob", "news")) == "NOT_SUBSCRIBED");
  REQUIRE(s.subscribe_channel("cid", {"news", true, 0}).ok());  // room again
  // The session's end takes its subscriptions.
  s.end_session("amy");
  CHECK(s.message_channels_of("amy").empty());
  CHECK(s.channel_subscribers("news", false) == Strings{"cid"});
  CHECK(s.message_channel_count() == 1);
}

TEST_CASE_TEMPLATE("state: a member's channel token is kept with the member and goes with it",
                   Backend, MemoryBackend, SqliteBackend) {
  RTM_STORE(s, LimitsConfig{});
  login(s, "amy");
  CHECK_FALSE(s.set_member_token("amy", "room", kNow));  // not a member
  must_join(s, "amy", "room");
  CHECK(s.member_token("amy", "room") == 0);
  CHECK(s.set_member_token("amy", "room", kNow + kHour));
  CHECK(s.member_token("amy", "room") == kNow + kHour);
  CHECK(s.stored_member("room", "amy")->token_expires_at_ms == kNow + kHour);
  s_under_test->check_restores();
  REQUIRE(s.leave("amy", "room").ok());
  CHECK(s.member_token("amy", "room") == 0);
  must_join(s, "amy", "room");
  CHECK(s.member_token("amy", "room") == 0);  // a new membership starts without one
}

TEST_CASE("sqlite: a file of schema 6 is migrated in place to 7 and keeps its rows") {
  StateFile f;
  {
    auto s = f.open();
    s->start_session("amy", "sid-1", kNow, kNow + kHour);
    must_join(*s, "amy", "room");
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  // What a gateway before message channels wrote: no such table, no member token column.
  sql(f.config.path,
      "DROP TABLE message_channels; ALTER TABLE members DROP COLUMN token_expires_at_ms; "
      "PRAGMA user_version=6;");
  {
    auto s = f.open();
    CHECK(s->is_member("amy", "room"));
    CHECK(s->member_token("amy", "room") == 0);
    CHECK(s->set_member_token("amy", "room", kNow + kHour));
    REQUIRE(s->subscribe_channel("amy", {"news", true, kNow + kHour}).ok());
    s->commit([](bool ok) { REQUIRE(ok); });
  }
  auto s = f.open();
  CHECK(s->member_token("amy", "room") == kNow + kHour);
  REQUIRE(s->message_channels_of("amy").size() == 1);
  CHECK(s->message_channels_of("amy")[0] == MessageChannelSubscription{"news", true, kNow + kHour});
  CHECK(s->restored().message_channels == 1);
}
