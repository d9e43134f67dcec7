// The Redis connection against a real redis-server started by the test: commands, pipelines,
// MULTI/EXEC with WATCH, Lua scripts across a script flush, passwords and databases, replies
// over the bound, a command that outlives its timeout, and the server killed and restarted
// under the connection: every failure is an error value, never a crash, and the connection
// comes back by itself after its backoff.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.hpp"
#include "rtm/gateway/redis.hpp"

using namespace rtm::test;
namespace redis = rtm::gateway::redis;

namespace {

redis::ConnectionOptions options_for(const Redis& server, std::string password = "") {
  redis::ConnectionOptions o;
  o.endpoint = redis::parse_uri(server.uri()).value();
  o.endpoint.password = std::move(password);
  o.backoff_min = 20ms;
  o.backoff_max = 100ms;
  return o;
}

// Calls `ping` until it succeeds; false at the deadline.
bool back_within(redis::Connection& c, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (c.command({"PING"})) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

}  // namespace

TEST_CASE("redis: commands, pipelines and transactions against a real server") {
  Redis server;
  redis::Connection c(options_for(server));
  auto set = c.command({"SET", "greeting", std::string("hi\0there", 8)});
  REQUIRE_MESSAGE(set, set.error().message);
  CHECK(set->text == "OK");
  CHECK(c.command({"GET", "greeting"})->text == std::string("hi\0there", 8));
  CHECK(c.command({"GET", "missing"})->is_nil());
  auto wrong = c.command({"LPUSH", "greeting", "x"});
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().kind == redis::Failure::refused);
  CHECK(wrong.error().message.rfind("WRONGTYPE", 0) == 0);
  CHECK(c.connected());  // a refused command keeps the connection

  // One round trip for many commands, error replies included as values.
  const auto before = c.stats().round_trips;
  auto replies =
      c.pipeline({{"INCR", "n"}, {"INCR", "n"}, {"LPUSH", "greeting", "x"}, {"GET", "n"}});
  REQUIRE(replies);
  CHECK(c.stats().round_trips == before + 1);
  CHECK(replies->at(1).integer == 2);
  CHECK(replies->at(2).is_error());
  CHECK(replies->at(3).text == "2");

  // WATCH: a transaction whose key another client changed is not executed (EXEC -> nil).
  redis::Connection other(options_for(server));
  REQUIRE(c.command({"WATCH", "n"}));
  REQUIRE(other.command({"SET", "n", "100"}));
  auto tx = c.pipeline({{"MULTI"}, {"SET", "n", "3"}, {"EXEC"}});
  REQUIRE(tx);
  CHECK(tx->at(2).is_nil());
  CHECK(c.command({"GET", "n"})->text == "100");
  auto tx2 = c.pipeline({{"WATCH", "n"}, {"MULTI"}, {"SET", "n", "3"}, {"EXEC"}});
  REQUIRE(tx2);
  CHECK(tx2->at(3).type == redis::Reply::Type::array);
  CHECK(c.command({"GET", "n"})->text == "3");
}

TEST_CASE("redis: Lua scripts run by digest, and are sent again after a script flush") {
  Redis server;
  redis::Connection c(options_for(server));
  const auto cas = redis::Script::from(
      "local v = redis.call('GET', KEYS[1]) "
      "if (v or '') ~= ARGV[1] then return {0, v or false} end "
      "redis.call('SET', KEYS[1], ARGV[2]) return {1, ARGV[2]}");
  auto first = c.eval(cas, {"rev"}, {"", "1"});
  REQUIRE_MESSAGE(first, first.error().message);
  CHECK(first->elements.at(0).integer == 1);
  CHECK(c.stats().script_loads == 1);  // the first EVALSHA meets NOSCRIPT
  auto stale = c.eval(cas, {"rev"}, {"", "2"});
  REQUIRE(stale);
  CHECK(stale->elements.at(0).integer == 0);
  CHECK(stale->elements.at(1).text == "1");
  CHECK(c.stats().script_loads == 1);  // by digest now
  REQUIRE(c.command({"SCRIPT", "FLUSH"}));
  auto again = c.eval(cas, {"rev"}, {"1", "2"});
  REQUIRE(again);
  CHECK(again->elements.at(0).integer == 1);
  CHECK(c.stats().script_loads == 2);
  auto broken = c.eval(redis::Script::from("return redis.call('NOSUCHCOMMAND')"), {}, {});
  REQUIRE_FALSE(broken);
  CHECK(broken.error().kind == redis::Failure::refused);
  CHECK(c.connected());
}

TEST_CASE("redis: passwords and databases are used at every connection") {
  Redis server("test-password-1234");
  {
    redis::Connection wrong(options_for(server, "not-it"));
    auto r = wrong.command({"PING"});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == redis::Failure::unavailable);
    CHECK(r.error().message.find("AUTH refused") != std::string::npos);
  }
  auto o = options_for(server, "test-password-1234");
  o.endpoint.db = 3;
  redis::Connection c(o);
  REQUIRE(c.command({"SET", "where", "db3"}));
  auto o0 = options_for(server, "test-password-1234");
  redis::Connection c0(o0);
  CHECK(c0.command({"GET", "where"})->is_nil());
  CHECK(c0.command({"SELECT", "3"}));
  CHECK(c0.command({"GET", "where"})->text == "db3");
}

TEST_CASE("redis: a reply over the bound and a command over its timeout drop the connection only") {
  Redis server;
  auto o = options_for(server);
  o.max_reply_bytes = 1 << 20;
  o.command_timeout = 300ms;
  redis::Connection c(o);
  REQUIRE(c.command({"SET", "big", std::string(2 << 20, 'x')}));
  auto big = c.command({"GET", "big"});
  REQUIRE_FALSE(big);
  CHECK(big.error().kind == redis::Failure::too_large);
  CHECK_FALSE(c.connected());
  REQUIRE(back_within(c, 5s));
  auto blocked = c.command({"BLPOP", "nothing-comes", "5"});
  REQUIRE_FALSE(blocked);
  CHECK(blocked.error().kind == redis::Failure::timeout);
  REQUIRE(back_within(c, 5s));
  CHECK(c.command({"STRLEN", "big"})->integer == (2 << 20));
}

TEST_CASE("redis: the server killed and restarted under the connection") {
  Redis server;
  redis::Connection c(options_for(server));
  REQUIRE(c.command({"SET", "k", "v"}));
  server.kill_hard();
  auto down = c.command({"GET", "k"});
  REQUIRE_FALSE(down);
  CHECK(down.error().kind == redis::Failure::unavailable);
  // While it is down every call fails fast: no connect timeout per call.
  const auto t0 = Clock::now();
  for (int i = 0; i < 100; ++i) CHECK_FALSE(c.command({"PING"}));
  CHECK(Clock::now() - t0 < 2s);
  server.start();  // no persistence: the data is gone, the connection comes back
  REQUIRE(back_within(c, 5s));
  CHECK(c.command({"GET", "k"})->is_nil());
  CHECK(c.stats().connects >= 2);
}
