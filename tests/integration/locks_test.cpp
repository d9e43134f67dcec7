// Locks (issue 15) through plain MQTT: a real Mosquitto, the real gateway on its sqlite
// state, Paho clients and a device process with a Will. Two users contend for a lock, the
// holder's connection drops and after the ttl the lock passes to the waiter; locks, holders
// and queues survive kill -9.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace rtm::test;

namespace {

// On sqlite, with locks of a ttl down to 1 s so that the countdown is quick.
GatewayOptions lock_gateway(const TempDir& dir) {
  GatewayOptions o;
  o.extra_yaml = "state:\n  backend: sqlite\n  path: " + (dir.path() / "state.db").string() +
                 "\nstorage:\n  lock_min_ttl_s: 1\n";
  return o;
}

struct Stack {
  Mosquitto broker;
  TempDir state_dir;
  GatewayProcess gw{broker.uri(), lock_gateway(state_dir)};
  Stack() { REQUIRE(wait_gateway_ready(broker.uri())); }
};

// A plain MQTT client of a user, subscribed to its own subtree and to the channel's
// events, logged in and joined.
std::unique_ptr<Client> member(const std::string& uri, const std::string& uid,
                               const std::string& channel) {
  auto c = std::make_unique<Client>(uri, unique_id(uid));
  c->connect();
  c->subscribe("rtm/u/" + uid + "/#");
  c->subscribe("rtm/events/" + channel);
  auto d = request(*c, uid, "login?msg_id=login-" + unique_id(uid),
                   "{\"token\":\"" + token_for(uid) + "\"}");
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
  d = request(*c, uid, "join?channel=" + channel + "&msg_id=join-" + unique_id(uid));
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
  return c;
}

rapidjson::Document must(Client& c, const std::string& uid, const std::string& uri,
                         const std::string& body = "") {
  auto d = request(c, uid, uri, body);
  REQUIRE_MESSAGE(answered_ok(d), uri << ": " << json_text(d));
  return d;
}

std::string field(const rapidjson::Value& v, const char* key) {
  return v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

// The next `lock` event of `kind` about `uid` on the channel, skipping others; nullopt at
// the deadline.
std::optional<rapidjson::Document> wait_lock_event(Client& c, const std::string& channel,
                                                   const std::string& kind, const std::string& uid,
                                                   std::chrono::milliseconds timeout = 10000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto e =
        wait_event(c, "rtm/events/" + channel, "lock", "",
                   std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!e) break;
    if (field(*e, "kind") == kind && field(*e, "uid") == uid) return e;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("locks: the second user queues and gets the lock after the holder's connection drops") {
  Stack s;
  const std::string port = std::to_string(s.broker.port());
  auto carol = member(s.broker.uri(), "carol", "game");

  // bob's device: a separate process with a Will, as a real device has; bob's requests go
  // through another connection that says online for the same connection id.
  TempDir dir;
  const std::string device_id = unique_id("bob-device");
  Process device(
      {find_program("mosquitto_sub"), "-p", port, "-i", device_id, "-t", "rtm/u/bob/#",
       "--will-topic", "rtm/presence/bob", "--will-payload",
       R"({"state":"offline","session":"bob-conn"})", "--will-retain", "--will-qos", "1"},
      dir.path() / "device.log");
  auto bob = member(s.broker.uri(), "bob", "game");
  bob->publish("rtm/presence/bob", R"({"state":"online","session":"bob-conn"})", 1, true);

  must(*bob, "bob", "set_lock?channel=game&lock=host&ttl=2&msg_id=lk-set");
  auto got = must(*bob, "bob", "acquire_lock?channel=game&lock=host&msg_id=lk-a1");
  CHECK(field(got["result"], "status") == "acquired");
  // carol contends: without retry she is refused, with retry she queues.
  auto held = request(*carol, "carol", "acquire_lock?channel=game&lock=host&msg_id=lk-c1");
  CHECK(field(held, "error") == "LOCK_HELD");
  auto queued =
      must(*carol, "carol", "acquire_lock?channel=game&lock=host&retry=true&msg_id=lk-c2");
  CHECK(field(queued["result"], "status") == "queued");
  CHECK(queued["result"]["position"].GetInt64() == 1);
  REQUIRE(wait_lock_event(*carol, "game", "acquired", "bob"));

  // The Will exists once the device is connected: wait until it reads a probe (its output
  // is a file, polled with a deadline), then kill it without DISCONNECT.
  const auto connected_by = Clock::now() + 10s;
  while (device.log().find("probe") == std::string::npos && Clock::now() < connected_by) {
    bob->publish("rtm/u/bob/probe", "probe", 0);
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE_MESSAGE(device.log().find("probe") != std::string::npos, device.log());
  device.kill_hard();

  auto gone = wait_event(*carol, "rtm/events/game", "member_timed_out");
  REQUIRE_MESSAGE(gone, s.gw.log());
  CHECK(field(*gone, "uid") == "bob");
  auto expired = wait_lock_event(*carol, "game", "expired", "bob");
  REQUIRE_MESSAGE(expired, s.gw.log());
  // Not before the ttl (2 s) from the session's end, by the gateway's clock.
  CHECK((*expired)["ts"].GetInt64() - (*gone)["ts"].GetInt64() >= 2000);
  REQUIRE(wait_lock_event(*carol, "game", "acquired", "carol"));
  auto locks = must(*carol, "carol", "get_locks?channel=game&msg_id=lk-g1");
  const auto& host = locks["result"]["locks"][0];
  CHECK(field(host, "owner") == "carol");
  CHECK(host["waiters"].Size() == 0);
}

TEST_CASE("locks: locks, holders and queues survive kill -9 and a restart on sqlite") {
  Stack s;
  auto alice = member(s.broker.uri(), "alice", "room");
  auto bob = member(s.broker.uri(), "bob", "room");
  must(*alice, "alice", "set_lock?channel=room&lock=seat&ttl=30&msg_id=lr-set");
  must(*alice, "alice", "set_lock?channel=room&lock=spare&ttl=60&msg_id=lr-set2");
  must(*alice, "alice", "acquire_lock?channel=room&lock=seat&msg_id=lr-a1");
  must(*bob, "bob", "acquire_lock?channel=room&lock=seat&retry=true&msg_id=lr-b1");

  s.gw.kill_hard();
  s.gw.start();
  REQUIRE(wait_gateway_ready(s.broker.uri()));

  auto locks = must(*bob, "bob", "get_locks?channel=room&msg_id=lr-g1");
  REQUIRE_MESSAGE(locks["result"]["locks"].Size() == 2, json_text(locks));
  const auto& seat = locks["result"]["locks"][0];
  CHECK(field(seat, "lock") == "seat");
  CHECK(seat["ttl"].GetInt64() == 30);
  CHECK(field(seat, "owner") == "alice");
  CHECK_FALSE(seat.HasMember("expires_at"));  // alice's session came back with the gateway
  REQUIRE(seat["waiters"].Size() == 1);
  CHECK(std::string(seat["waiters"][0].GetString()) == "bob");
  CHECK(field(locks["result"]["locks"][1], "lock") == "spare");
  // The set name is still taken, and the queue still moves.
  auto again = request(*alice, "alice", "set_lock?channel=room&lock=seat&ttl=30&msg_id=lr-set3");
  CHECK(field(again, "error") == "LOCK_EXISTS");
  must(*alice, "alice", "release_lock?channel=room&lock=seat&msg_id=lr-r1");
  REQUIRE(wait_lock_event(*bob, "room", "released", "alice"));
  REQUIRE(wait_lock_event(*bob, "room", "acquired", "bob"));
}
