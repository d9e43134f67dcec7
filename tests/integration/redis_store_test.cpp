// The "redis" state backend without a broker: two RedisStores in one process play two
// gateways of a cluster on a real redis-server (started by the test on a free port), turn by
// turn, as the gateway loop drives them (begin_turn, changes, commit).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/gateway/redis.hpp"
#include "rtm/gateway/redis_store.hpp"

using namespace rtm::test;
using namespace rtm::gateway;

namespace {

Config cluster_config(const Redis& redis) {
  Config c;
  c.state.backend = "redis";
  c.state.redis.uri = redis.uri();
  c.state.redis.command_timeout_ms = 500;
  c.cluster.enabled = true;
  return c;
}

// A turn as the loop runs it; `changes` runs inside. Returns the commit's result.
bool turn(RedisStore& store, const std::function<void()>& changes,
          std::vector<StoredAnswer>* answers = nullptr) {
  std::vector<StoredAnswer> ignored;
  REQUIRE(store.begin_turn(answers ? answers : &ignored));
  changes();
  bool result = false;
  store.commit([&](bool ok) { result = ok; });
  return result;
}

// Everything a reader of the model would compare, as text (lines sorted: the model's maps
// have no order of their own).
std::string dump(const StateStore& store) {
  std::vector<std::string> lines;
  std::string out;
  store.for_each_session([&](const StoredSession& s) {
    out += "session " + s.uid + " " + s.info.session_id + " " +
           std::to_string(s.info.expires_at_ms) + " watching";
    for (const auto& w : s.watching) out += " " + w;
    lines.push_back(out);
    out.clear();
  });
  store.for_each_member(
      [&](const std::string& channel, const std::string& uid, const StoredMember& m) {
        out += "member " + channel + "/" + uid + " seq " + std::to_string(m.seq) + " publishing";
        for (const auto& t : m.publishing) out += " " + t;
        for (const auto& sub : m.subscriptions) {
          out += " sub " + sub.topic + (sub.all ? " all" : "");
          for (const auto& p : sub.publishers) out += " " + p;
        }
        lines.push_back(out);
        out.clear();
      });
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Begins a turn as the loop would after Redis came back: it tries again (the connection
// backs off) until a turn begins or the deadline passes; then commits it.
bool next_turn(RedisStore& store) {
  std::vector<StoredAnswer> answers;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!store.begin_turn(&answers)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  bool ok = false;
  store.commit([&](bool result) { ok = result; });
  return ok;
}

redis::Connection admin(const Redis& redis) {
  redis::ConnectionOptions o;
  o.endpoint = *redis::parse_uri(redis.uri());
  return redis::Connection(o);
}

}  // namespace

TEST_CASE("redis store: a change on one gateway is in the other's model at its next turn") {
  Redis redis;
  const auto config = cluster_config(redis);
  RedisStore a(config, "a");
  RedisStore b(config, "b");
  CHECK(turn(a, [&] {
    a.start_session("alice", "s-1", 1000, 9'000'000'000'000);
    a.start_session("bob", "s-2", 1000, 9'000'000'000'000);
    bool joined = false;
    REQUIRE(a.join("alice", "room", &joined));
    REQUIRE(a.join("bob", "room", &joined));
    REQUIRE(a.join_topic("alice", "room", "input"));
    REQUIRE(a.subscribe("bob", "room", "input", {"alice"}));
  }));
  CHECK(turn(b, [] {}));
  CHECK(b.has_session("alice"));
  CHECK(b.publishers("room", "input") == std::vector<std::string>{"alice"});
  CHECK(dump(b) == dump(a));
  // And back: b's change reaches a; a join on a after it gets a later sequence.
  CHECK(turn(b, [&] { REQUIRE(b.leave("alice", "room")); }));
  CHECK(turn(a, [&] {
    bool joined = false;
    REQUIRE(a.join("alice", "lobby", &joined));
    CHECK(joined);
  }));
  CHECK(turn(b, [] {}));
  CHECK(dump(b) == dump(a));
  CHECK(b.version() == a.version());
  CHECK(b.counters().entries_applied >= 2);
}

TEST_CASE("redis store: a turn that lost its lease is discarded and the model reloaded") {
  Redis redis;
  const auto config = cluster_config(redis);
  RedisStore a(config, "a");
  RedisStore b(config, "b");
  auto r = admin(redis);
  std::vector<StoredAnswer> answers;
  REQUIRE(a.begin_turn(&answers));
  a.start_session("alice", "s-1", 1000, 9'000'000'000'000);
  // a stalls past its lease (dropped here rather than waited for); b takes the turn.
  REQUIRE(r.command({"DEL", "{rtm}:turn"}));
  CHECK(turn(b, [&] { b.start_session("bob", "s-2", 1000, 9'000'000'000'000); }));
  bool committed = true;
  a.commit([&](bool ok) { committed = ok; });
  CHECK_FALSE(committed);
  CHECK(a.counters().discarded_turns == 1);
  // Its next turn reloads: alice (never committed) is gone, bob is there.
  CHECK(turn(a, [] {}));
  CHECK_FALSE(a.has_session("alice"));
  CHECK(a.has_session("bob"));
  CHECK(dump(a) == dump(b));
}

TEST_CASE("redis store: answers travel with the commit, and the log catches up in batches") {
  Redis redis;
  const auto config = cluster_config(redis);
  RedisStore a(config, "a");
  RedisStore b(config, "b");
  CHECK(turn(b, [] {}));
  const int commits = static_cast<int>(RedisStore::kCatchUpBatch) * 2 + 17;
  for (int i = 0; i < commits; ++i) {
    CHECK(turn(a, [&] {
      a.start_session("u" + std::to_string(i), "s", 1, 9'000'000'000'000);
      a.remember_answer(
          {"u" + std::to_string(i), "m" + std::to_string(i), 42, "{\"ok\":1}", 1000 + i});
    }));
  }
  std::vector<StoredAnswer> answers;
  CHECK(turn(
      b, [] {}, &answers));
  CHECK(b.session_count() == static_cast<std::size_t>(commits));
  REQUIRE(answers.size() == static_cast<std::size_t>(commits));
  CHECK(answers.back().uid == "u" + std::to_string(commits - 1));
  CHECK(answers.back().fingerprint == 42);
  CHECK(answers.back().payload == "{\"ok\":1}");
  CHECK(b.counters().reloads == 1);  // its first load, at start-up
}

TEST_CASE("redis store: a trimmed log, an emptied Redis, an unreachable Redis") {
  Redis redis("", "appendonly yes\n");
  const auto config = cluster_config(redis);
  RedisStore a(config, "a");
  RedisStore b(config, "b");
  auto r = admin(redis);
  CHECK(turn(b, [] {}));
  CHECK(turn(a, [&] { a.start_session("alice", "s-1", 1000, 9'000'000'000'000); }));
  // b was away longer than the retention: the entries it lacks are gone; it reloads.
  REQUIRE(r.command({"XTRIM", "{rtm}:log", "MAXLEN", "0"}));
  CHECK(turn(a, [&] { a.start_session("bob", "s-2", 1000, 9'000'000'000'000); }));
  REQUIRE(r.command({"XTRIM", "{rtm}:log", "MAXLEN", "0"}));
  const auto reloads = b.counters().reloads;
  CHECK(turn(b, [] {}));
  CHECK(b.counters().reloads == reloads + 1);
  CHECK(dump(b) == dump(a));

  // Redis loses everything: the next gateway to take a turn writes its model back.
  REQUIRE(r.command({"FLUSHALL"}));
  CHECK(turn(a, [] {}));
  RedisStore c(config, "c");
  CHECK(c.has_session("alice"));
  CHECK(c.has_session("bob"));

  // Unreachable: no turn, nothing changes, no exception; back: the state is there.
  redis.stop();
  std::vector<StoredAnswer> answers;
  CHECK_FALSE(a.begin_turn(&answers));
  bool committed = false;
  a.commit([&](bool ok) { committed = ok; });
  CHECK(committed);  // nothing to commit outside a turn
  CHECK(a.counters().unavailable >= 1);
  redis.start();
  REQUIRE(next_turn(a));
  REQUIRE(next_turn(b));
  CHECK(a.has_session("alice"));
  CHECK(a.claim_once("warn:alice:1", 10'000));
  CHECK_FALSE(b.claim_once("warn:alice:1", 10'000));
}
