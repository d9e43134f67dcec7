// Restarts nobody notices, tried as users and an operator would: a real Mosquitto with
// persistence, the gateway with its shipped state backend (sqlite), plain MQTT clients. The
// gateway is killed with SIGKILL (no clean stop) and started again on the same file.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace rtm::test;

namespace {

// The "result" of an answer as JSON text, or the whole answer when it failed.
std::string result_of(const rapidjson::Document& d) {
  return answered_ok(d) ? json_text(d["result"]) : "failed: " + json_text(d);
}

// Mosquitto keeps the gateway's session (its subscriptions and the QoS 1 messages queued
// for it) while the gateway is down, and on disk across its own restarts.
struct PersistentBroker {
  TempDir data;
  Mosquitto broker;
  PersistentBroker() : broker(persistence_config(data)) {}
  static std::string persistence_config(const TempDir& dir) {
    std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
    return "persistence true\npersistence_location " + dir.path().string() +
           "/\nautosave_interval 1\nmax_queued_messages 10000\n";
  }
};

GatewayOptions sqlite_gateway(const TempDir& dir) {
  GatewayOptions o;
  o.extra_yaml = "state:\n  backend: sqlite\n  path: " + (dir.path() / "state.db").string() +
                 "\nauth:\n  token_warn_before_s: 1\n";
  return o;
}

// The broker with persistence and a ready gateway on its own sqlite state file.
struct Stack {
  PersistentBroker pb;
  TempDir state_dir;
  GatewayProcess gw{pb.broker.uri(), sqlite_gateway(state_dir)};
  Stack() { REQUIRE(wait_gateway_ready(pb.broker.uri())); }
};

// A plain MQTT client of a user: subscribed to its own subtree, online in its retained
// presence (its Will says offline).
std::unique_ptr<Client> device(const std::string& uri, const std::string& uid) {
  Client::Options o;
  o.will_topic = "rtm/presence/" + uid;
  o.will_payload = "{\"state\":\"offline\",\"session\":\"" + uid + "-conn\"}";
  auto c = std::make_unique<Client>(uri, unique_id(uid), o);
  c->connect();
  c->subscribe("rtm/u/" + uid + "/#");
  c->publish("rtm/presence/" + uid, "{\"state\":\"online\",\"session\":\"" + uid + "-conn\"}", 1,
             true);
  return c;
}

void login(Client& c, const std::string& uid, std::int64_t ttl_s = 3600) {
  auto d = request(c, uid, "login?msg_id=login-" + unique_id(uid),
                   "{\"token\":\"" + token_for(uid, ttl_s) + "\"}");
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
}

void must(Client& c, const std::string& uid, const std::string& uri) {
  auto d = request(c, uid, uri);
  REQUIRE_MESSAGE(answered_ok(d), uri << ": " << json_text(d));
}

}  // namespace

TEST_CASE("restart: after kill -9 sessions, members, subscriptions and watches are back") {
  Stack stack;
  auto& pb = stack.pb;
  auto& gw = stack.gw;

  auto alice = device(pb.broker.uri(), "alice");
  auto bob = device(pb.broker.uri(), "bob");
  login(*alice, "alice");
  login(*bob, "bob");
  for (auto [c, uid] : {std::make_pair(alice.get(), "alice"), std::make_pair(bob.get(), "bob")}) {
    must(*c, uid, "join?channel=room-1&msg_id=j1");
    must(*c, uid, "join?channel=room-2&msg_id=j2");
    must(*c, uid, "join_topic?channel=room-1&topic=input&msg_id=t1");
  }
  must(*alice, "alice", "subscribe?channel=room-1&topic=input&msg_id=s1");  // every publisher
  must(*bob, "bob", "subscribe?channel=room-1&topic=input&msg_id=s2&users=alice");
  must(*alice, "alice", "watch?msg_id=w1&users=bob");
  alice->subscribe("rtm/events/room-1");

  auto answers = [&](int round) {
    const std::string r = "-" + std::to_string(round);
    std::vector<std::string> out;
    out.push_back(result_of(request(*alice, "alice", "who_now?channel=room-1&msg_id=a" + r)));
    out.push_back(result_of(request(*alice, "alice", "who_now?channel=room-2&msg_id=b" + r)));
    out.push_back(result_of(request(*alice, "alice", "where_now?uid=bob&msg_id=c" + r)));
    out.push_back(result_of(request(*bob, "bob", "where_now?uid=alice&msg_id=d" + r)));
    out.push_back(
        result_of(request(*alice, "alice", "subscribed?channel=room-1&topic=input&msg_id=e" + r)));
    out.push_back(
        result_of(request(*bob, "bob", "subscribed?channel=room-1&topic=input&msg_id=f" + r)));
    return out;
  };
  const auto before = answers(1);
  CHECK(before[0].find("\"alice\"") != std::string::npos);
  CHECK(before[0].find("\"bob\"") != std::string::npos);
  CHECK(before[4].find("bob") != std::string::npos);  // alice follows every publisher: bob

  gw.kill_hard();
  gw.start();
  REQUIRE(wait_gateway_ready(pb.broker.uri()));
  CHECK(gw.log().find("state: restored 2 sessions") != std::string::npos);

  const auto after = answers(2);
  for (std::size_t i = 0; i < before.size(); ++i) {
    CAPTURE(i);
    CHECK(after[i] == before[i]);
  }

  // Channel events continue: a newcomer joins and publishes; alice's "every publisher"
  // subscription takes carol in as before.
  auto carol = device(pb.broker.uri(), "carol");
  login(*carol, "carol");
  must(*carol, "carol", "join?channel=room-1&msg_id=j1");
  auto joined = wait_event(*alice, "rtm/events/room-1", "member_joined");
  REQUIRE_MESSAGE(joined, gw.log());
  CHECK(std::string((*joined)["uid"].GetString()) == "carol");
  must(*carol, "carol", "join_topic?channel=room-1&topic=input&msg_id=t1");
  auto subscribed = request(*alice, "alice", "subscribed?channel=room-1&topic=input&msg_id=g");
  CHECK(result_of(subscribed).find("carol") != std::string::npos);

  // The watch holds: bob's connection drops (its Will), alice is told.
  bob->publish("rtm/presence/bob", "{\"state\":\"offline\",\"session\":\"bob-conn\"}", 1, true);
  auto presence = wait_event(*alice, "rtm/u/alice/events/presence", "presence", "offline");
  REQUIRE_MESSAGE(presence, gw.log());
  CHECK(std::string((*presence)["uid"].GetString()) == "bob");
  CHECK(std::string((*presence)["state"].GetString()) == "offline");
}

TEST_CASE("restart: QoS 1 requests sent while the gateway is down are answered exactly once") {
  Stack stack;
  auto& pb = stack.pb;
  auto& gw = stack.gw;
  auto alice = device(pb.broker.uri(), "alice");
  login(*alice, "alice");
  must(*alice, "alice", "join?channel=room-0&msg_id=j0");
  // Answered before the crash: a redelivery after it must get this answer, not a second run.
  auto left = request(*alice, "alice", "leave?channel=room-0&msg_id=l0");
  REQUIRE(answered_ok(left));

  gw.kill_hard();
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    alice->publish("rtm/req/alice/join?channel=room-" + std::to_string(i) +
                       "&msg_id=down-" + std::to_string(i),
                   "", 1);
  }
  gw.start();
  for (int i = 0; i < kRequests; ++i) {
    CAPTURE(i);
    auto m = alice->wait_for("rtm/u/alice/res/#", 20000ms);
    REQUIRE_MESSAGE(m, gw.log());
    auto d = parse_json(m->payload);
    CHECK(answered_ok(d));
  }
  // A QoS 1 redelivery of a request answered before the crash: the same answer again.
  alice->publish("rtm/req/alice/leave?channel=room-0&msg_id=l0", "", 1);
  auto replay = alice->wait_for("rtm/u/alice/res/#", 10000ms);
  REQUIRE(replay);
  CHECK(parse_json(replay->payload) == left);
  // Everything is answered in order; a ping after them shows no second answer is pending.
  auto ping = request(*alice, "alice", "ping?msg_id=after");
  CHECK(answered_ok(ping));
  CHECK(alice->take("rtm/u/alice/res/#").empty());
  auto where = request(*alice, "alice", "where_now?uid=alice&msg_id=w");
  REQUIRE(answered_ok(where));
  CHECK(where["result"]["channels"].Size() == kRequests);
}

TEST_CASE("restart: a token that expires while the gateway is down ends its session at once") {
  Stack stack;
  auto& pb = stack.pb;
  auto& gw = stack.gw;
  auto alice = device(pb.broker.uri(), "alice");
  auto bob = device(pb.broker.uri(), "bob");
  login(*alice, "alice", /*ttl_s=*/4);
  login(*bob, "bob");
  must(*alice, "alice", "join?channel=room-1&msg_id=j");
  must(*bob, "bob", "join?channel=room-1&msg_id=j");
  bob->subscribe("rtm/events/room-1");

  gw.kill_hard();
  // The token's expiry passes while the gateway is down.
  const auto expired_at = Clock::now() + 5s;
  while (Clock::now() < expired_at) std::this_thread::sleep_for(100ms);
  gw.start();
  auto token = wait_event(*alice, "rtm/u/alice/events/token", "token", "expired");
  REQUIRE_MESSAGE(token, gw.log());
  auto ended = wait_event(*alice, "rtm/u/alice/events/session", "session", "ended");
  REQUIRE(ended);
  CHECK(std::string((*ended)["reason"].GetString()) == "token_expired");
  auto left = wait_event(*bob, "rtm/events/room-1", "member_left");
  REQUIRE(left);
  CHECK(std::string((*left)["uid"].GetString()) == "alice");
  auto who = request(*bob, "bob", "who_now?channel=room-1&msg_id=w");
  REQUIRE(answered_ok(who));
  CHECK(result_of(who).find("alice") == std::string::npos);
}

TEST_CASE("restart: a user who went offline while the gateway was down is ended as timed out") {
  Stack stack;
  auto& pb = stack.pb;
  auto& gw = stack.gw;
  auto alice = device(pb.broker.uri(), "alice");
  auto bob = device(pb.broker.uri(), "bob");
  login(*alice, "alice");
  login(*bob, "bob");
  must(*alice, "alice", "join?channel=room-1&msg_id=j");
  must(*bob, "bob", "join?channel=room-1&msg_id=j");
  alice->subscribe("rtm/events/room-1");

  gw.kill_hard();
  // Bob's connection ends while nobody is there to see it: the broker keeps his Will.
  bob->publish("rtm/presence/bob", "{\"state\":\"offline\",\"session\":\"bob-conn\"}", 1, true);
  bob->disconnect();
  gw.start();
  auto gone = wait_event(*alice, "rtm/events/room-1", "member_timed_out");
  REQUIRE_MESSAGE(gone, gw.log());
  CHECK(std::string((*gone)["uid"].GetString()) == "bob");
  auto who = request(*alice, "alice", "who_now?channel=room-1&msg_id=w");
  REQUIRE(answered_ok(who));
  CHECK(result_of(who) == "{\"channel\":\"room-1\",\"members\":[\"alice\"]}");
}

TEST_CASE("restart: a state file that is not the gateway's, or is corrupt, is refused with its path") {
  Mosquitto broker;
  TempDir dir;
  const auto path = dir.path() / "state.db";
  write_file(path, std::string(8192, 'x'));  // not a database
  GatewayOptions o;
  o.extra_yaml = "state:\n  backend: sqlite\n  path: " + path.string() + "\n";
  GatewayProcess gw(broker.uri(), o);
  const auto refused = wait_for_text([&gw] { return gw.log(); }, "file is not a database");
  REQUIRE_MESSAGE(refused, gw.log());
  CHECK(gw.log().find("state file " + path.string()) != std::string::npos);
  CHECK(gw.stop() != 0);  // it exited with an error, or would have to be stopped: either way
  CHECK(read_file(path) == std::string(8192, 'x'));  // never silently replaced
}

TEST_CASE("restart: what the gateway published when the broker died is sent again after it returns") {
  Stack stack;
  auto& pb = stack.pb;
  auto& gw = stack.gw;
  // alice's device keeps its MQTT session in the broker (clean session off), as the gateway does.
  Client::Options keep;
  keep.clean_session = false;
  const std::string alice_id = unique_id("alice");
  auto alice = std::make_unique<Client>(pb.broker.uri(), alice_id, keep);
  alice->connect();
  alice->subscribe("rtm/u/alice/#");
  login(*alice, "alice", /*ttl_s=*/3);
  // The broker writes its sessions to disk every second (autosave_interval 1): wait for a
  // save that began after alice's session was complete.
  const auto db = pb.data.path() / "mosquitto.db";
  const auto after = std::filesystem::file_time_type::clock::now();
  const auto save_deadline = Clock::now() + 10s;
  std::error_code ec;
  while (Clock::now() < save_deadline &&
         !(std::filesystem::exists(db, ec) &&
           std::filesystem::last_write_time(db, ec) > after + std::chrono::milliseconds(100))) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(std::filesystem::last_write_time(db, ec) > after);

  // The broker freezes: the expiry the gateway publishes now is never acknowledged...
  REQUIRE(::kill(pb.broker.pid(), SIGSTOP) == 0);
  REQUIRE_MESSAGE(wait_for_text([&] { return gw.log(); }, "session of alice ended: token expired", 0,
                                10000ms),
                  gw.log());
  // ...and dies with it unread.
  pb.broker.kill_hard();
  alice.reset();
  pb.broker.start();
  alice = std::make_unique<Client>(pb.broker.uri(), alice_id, keep);
  alice->connect();  // the broker kept alice's subscription
  REQUIRE_MESSAGE(wait_for_text([&] { return gw.log(); }, "unacknowledged QoS 1 messages again", 0,
                                15000ms),
                  gw.log());
  auto expired = wait_event(*alice, "rtm/u/alice/events/token", "token", "expired", 15000ms);
  REQUIRE_MESSAGE(expired, gw.log());
  auto ended = wait_event(*alice, "rtm/u/alice/events/session", "session", "ended");
  REQUIRE(ended);
  CHECK(std::string((*ended)["reason"].GetString()) == "token_expired");
}
