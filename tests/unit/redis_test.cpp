// The Redis connection without a server: URIs, script digests, the bounded conversion of
// replies (fed as RESP bytes to hiredis' own reader), and the backoff against a closed port
// on the test's clock.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <string>

#include "rtm/gateway/redis.hpp"

using namespace rtm::gateway::redis;
using namespace std::chrono_literals;

namespace {

// The reply hiredis reads from `resp`, converted with the given bound.
bool read_reply(const std::string& resp, std::size_t max_bytes, Reply& out) {
  redisReader* reader = redisReaderCreate();
  REQUIRE(redisReaderFeed(reader, resp.data(), resp.size()) == REDIS_OK);
  void* raw = nullptr;
  REQUIRE(redisReaderGetReply(reader, &raw) == REDIS_OK);
  REQUIRE(raw != nullptr);
  const bool ok = convert_reply(*static_cast<redisReply*>(raw), max_bytes, out);
  freeReplyObject(raw);
  redisReaderFree(reader);
  return ok;
}

}  // namespace

TEST_CASE("redis: URIs name a host, port, database and password, or a Unix socket") {
  auto plain = parse_uri("redis://10.0.0.5");
  REQUIRE(plain);
  CHECK(plain->host == "10.0.0.5");
  CHECK(plain->port == 6379);
  CHECK(plain->db == 0);
  auto full = parse_uri("redis://:s3cret@redis.internal:6380/2");
  REQUIRE(full);
  CHECK(full->host == "redis.internal");
  CHECK(full->port == 6380);
  CHECK(full->db == 2);
  CHECK(full->password == "s3cret");
  auto sock = parse_uri("unix:///run/redis/redis.sock?db=3");
  REQUIRE(sock);
  CHECK(sock->unix_path == "/run/redis/redis.sock");
  CHECK(sock->db == 3);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:70000", "redis://h:x",
                          "redis://h/-1", "redis://h/a", "unix://relative.sock", "unix:///s?x=1"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_uri(bad));
  }
}

TEST_CASE("redis: a script's digest is the SHA-1 Redis uses for EVALSHA") {
  CHECK(Script::from("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  CHECK(Script::from("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST_CASE("redis: replies are converted to values, within their byte bound") {
  Reply r;
  REQUIRE(read_reply("*4\r\n$5\r\nhello\r\n:42\r\n$-1\r\n*1\r\n+OK\r\n", 1024, r));
  REQUIRE(r.type == Reply::Type::array);
  REQUIRE(r.elements.size() == 4);
  CHECK(r.elements[0].type == Reply::Type::string);
  CHECK(r.elements[0].text == "hello");
  CHECK(r.elements[1].integer == 42);
  CHECK(r.elements[2].is_nil());
  CHECK(r.elements[3].elements.at(0).type == Reply::Type::status);
  CHECK(r.elements[3].elements.at(0).text == "OK");

  Reply e;
  REQUIRE(read_reply("-WRONGTYPE Operation against a key\r\n", 1024, e));
  CHECK(e.is_error());
  CHECK(e.text.rfind("WRONGTYPE", 0) == 0);

  Reply binary;
  REQUIRE(read_reply(std::string("$3\r\na\0b\r\n", 9), 1024, binary));
  CHECK(binary.text == std::string("a\0b", 3));

  // Over the bound: a long string, or many small elements.
  Reply big;
  CHECK_FALSE(read_reply("$10\r\n0123456789\r\n", 9, big));
  std::string many = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) many += ":1\r\n";
  Reply lots;
  CHECK_FALSE(read_reply(many, 1000, lots));
  CHECK(read_reply(many, 1000 * sizeof(Reply), lots));
}

TEST_CASE("redis: an unreachable server fails at once and is retried after a doubling backoff") {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  ConnectionOptions o;
  o.endpoint = parse_uri("redis://127.0.0.1:1").value();  // nothing listens on port 1
  o.backoff_min = 100ms;
  o.backoff_max = 400ms;
  Connection c(o, [&] { return now; });
  auto first = c.command({"PING"});
  REQUIRE_FALSE(first);
  CHECK(first.error().kind == Failure::unavailable);
  CHECK(first.error().message.find("127.0.0.1:1") != std::string::npos);
  // Within the backoff: no attempt, the same answer.
  auto failed_at = now;
  now += 50ms;
  auto waiting = c.command({"PING"});
  REQUIRE_FALSE(waiting);
  CHECK(waiting.error().message.find("after the backoff") != std::string::npos);
  // After it: a new attempt, which fails and doubles the wait (100, 200, 400, 400 ms).
  for (auto wait : {100ms, 200ms, 400ms, 400ms}) {
    CAPTURE(wait.count());
    now = failed_at + wait - 1ms;
    CHECK(c.command({"PING"}).error().message.find("after the backoff") != std::string::npos);
    now = failed_at + wait;
    CHECK(c.command({"PING"}).error().message.find("after the backoff") == std::string::npos);
    failed_at = now;
  }
  CHECK(c.stats().connects == 0);
  CHECK_FALSE(c.connected());
  CHECK(c.command({}).error().kind == Failure::invalid);
}
