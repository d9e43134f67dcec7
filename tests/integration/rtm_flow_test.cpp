// The RTM flow over plain MQTT, tried as an app would with real Paho clients and a real
// Mosquitto: login, channels, topics, subscriptions, peer-to-peer, presence, tokens.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/util/base64.hpp"

using namespace rtm::test;

namespace {

struct Setup {
  Mosquitto broker;
  GatewayProcess gateway;
  explicit Setup(GatewayOptions options = {}) : gateway(broker.uri(), std::move(options)) {
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  }
};

// A user: one MQTT connection subscribed to everything addressed to it.
struct User {
  std::string uid;
  Client client;
  std::string connection = unique_id("c");  // msg_ids are unique per connection, as an SDK makes them
  int next_id = 1;
  User(const Setup& s, std::string name, Client::Options options = {})
      : uid(std::move(name)), client(s.broker.uri(), unique_id(uid), std::move(options)) {
    client.connect();
    client.subscribe("rtm/u/" + uid + "/#");
  }
  rapidjson::Document call(const std::string& op, const std::string& query = "",
                           const std::string& body = "") {
    std::string uri = op + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + connection +
                      "-" + std::to_string(next_id++);
    auto doc = request(client, uid, uri, body);
    REQUIRE_MESSAGE(doc.IsObject(), "no answer to " << uri);
    return doc;
  }
  rapidjson::Document ok(const std::string& op, const std::string& query = "",
                         const std::string& body = "") {
    auto doc = call(op, query, body);
    REQUIRE_MESSAGE(doc["code"].GetInt() == 0, op << " failed: " << doc["message"].GetString());
    return doc;
  }
  void login(std::int64_t ttl_s = 3600) {
    ok("login", "", "{\"token\":\"" + token_for(uid, ttl_s) + "\"}");
  }
};

std::string error_of(const rapidjson::Document& doc) {
  return doc.HasMember("error") ? doc["error"].GetString() : "OK";
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

// Waits for a channel event with the given name (and uid), skipping others.
std::optional<rapidjson::Document> wait_channel_event(Client& c, const std::string& channel,
                                                      const std::string& name,
                                                      const std::string& uid,
                                                      std::chrono::milliseconds timeout = 10000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto got = c.wait_for("rtm/events/" + channel,
                          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!got) break;
    auto doc = parse(got->payload);
    if (doc["event"].GetString() == name && doc["uid"].GetString() == uid) return doc;
  }
  return std::nullopt;
}

std::optional<rapidjson::Document> wait_user_event(Client& c, const std::string& uid,
                                                   const std::string& kind,
                                                   const std::string& field,
                                                   const std::string& value,
                                                   std::chrono::milliseconds timeout = 10000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto got = c.wait_for("rtm/u/" + uid + "/events/" + kind,
                          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!got) break;
    auto doc = parse(got->payload);
    if (doc.HasMember(field.c_str()) && doc[field.c_str()].GetString() == value) return doc;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("the whole RTM flow: login, join, topics, subscribe, messages, leave, logout") {
  Setup s;
  User host(s, "host-a");
  User player(s, "player-b");
  Client watcher(s.broker.uri(), "channel-watcher");
  watcher.connect();
  watcher.subscribe("rtm/events/room-42");

  CHECK(error_of(host.call("join", "channel=room-42")) == "NOT_LOGGED_IN");
  host.login();
  player.login();

  auto joined = host.ok("join", "channel=room-42");
  CHECK(std::string(joined["result"]["events_topic"].GetString()) == "rtm/events/room-42");
  CHECK(joined["result"]["snapshot"]["members"].Size() == 1);
  REQUIRE(wait_channel_event(watcher, "room-42", "member_joined", "host-a"));

  player.ok("join", "channel=room-42");
  REQUIRE(wait_channel_event(watcher, "room-42", "member_joined", "player-b"));
  auto topic = player.ok("join_topic", "channel=room-42&topic=input");
  const std::string publish_to = topic["result"]["publish_to"].GetString();
  CHECK(publish_to == "rtm/ch/room-42/input/player-b");
  auto pj = wait_channel_event(watcher, "room-42", "publisher_joined", "player-b");
  REQUIRE(pj);
  CHECK(std::string((*pj)["topic"].GetString()) == "input");

  // A late joiner's snapshot shows members and publishers.
  User late(s, "late-c");
  late.login();
  auto snap = late.ok("join", "channel=room-42");
  const auto& topics = snap["result"]["snapshot"]["topics"];
  REQUIRE(topics.Size() == 1);
  CHECK(std::string(topics[0]["topic"].GetString()) == "input");
  CHECK(std::string(topics[0]["publishers"][0].GetString()) == "player-b");
  CHECK(snap["result"]["snapshot"]["members"].Size() == 3);

  auto sub = host.ok("subscribe", "", R"({"channel":"room-42","topic":"input","users":["player-b"]})");
  const auto& users = sub["result"]["users"];
  REQUIRE(users.Size() == 1);
  CHECK(users[0]["ok"].GetBool());
  const std::string data_topic = users[0]["topic"].GetString();
  CHECK(data_topic == publish_to);
  auto listed = host.ok("subscribed", "channel=room-42&topic=input");
  REQUIRE(listed["result"]["users"].Size() == 1);

  // Data plane: straight through the broker, in order, intact.
  host.client.subscribe(data_topic);
  for (int i = 0; i < 50; ++i) {
    std::string frame = "frame-" + std::to_string(i) + std::string("\0\x01\xff", 3);
    player.client.publish(publish_to, frame, 1);
  }
  for (int i = 0; i < 50; ++i) {
    auto got = host.client.wait_for(data_topic);
    REQUIRE(got);
    CHECK(got->payload == "frame-" + std::to_string(i) + std::string("\0\x01\xff", 3));
  }

  auto unsub = host.ok("unsubscribe", "channel=room-42&topic=input&users=player-b");
  CHECK(unsub["result"]["users"][0]["ok"].GetBool());
  CHECK(host.ok("subscribed", "channel=room-42&topic=input")["result"]["users"].Size() == 0);

  player.ok("leave_topic", "channel=room-42&topic=input");
  REQUIRE(wait_channel_event(watcher, "room-42", "publisher_left", "player-b"));
  auto who = host.ok("who_now", "channel=room-42");
  CHECK(who["result"]["members"].Size() == 3);
  auto where = host.ok("where_now", "uid=player-b");
  CHECK(std::string(where["result"]["channels"][0].GetString()) == "room-42");

  player.ok("leave", "channel=room-42");
  auto left = wait_channel_event(watcher, "room-42", "member_left", "player-b");
  REQUIRE(left);
  CHECK(std::string((*left)["reason"].GetString()) == "left");
  CHECK(error_of(player.call("join_topic", "channel=room-42&topic=input")) == "NOT_JOINED");

  host.ok("logout");
  auto ended = wait_user_event(host.client, "host-a", "session", "state", "ended");
  REQUIRE(ended);
  CHECK(std::string((*ended)["reason"].GetString()) == "logged_out");
  auto host_left = wait_channel_event(watcher, "room-42", "member_left", "host-a");
  REQUIRE(host_left);
  CHECK(std::string((*host_left)["reason"].GetString()) == "logged_out");
  CHECK(error_of(host.call("who_now", "channel=room-42")) == "NOT_LOGGED_IN");
}

TEST_CASE("login refuses bad tokens, each with its own error") {
  Setup s;
  User u(s, "dana");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string expired = rtm::gateway::sign_token(
      {"dana", now - 100, now - 10, std::nullopt, std::nullopt}, GatewayProcess::kSecret);
  const std::string future = rtm::gateway::sign_token(
      {"dana", now, now + 100, now + 50, std::nullopt}, GatewayProcess::kSecret);
  const std::string other_secret =
      rtm::gateway::sign_token({"dana", now, now + 100, std::nullopt, std::nullopt},
                               "another-secret-another-secret-0123456789");
  const std::string none_alg = rtm::util::base64url_encode(R"({"alg":"none","typ":"JWT"})") +
                               "." +
                               rtm::util::base64url_encode(
                                   R"({"sub":"dana","exp":9999999999})") +
                               ".";
  struct Case {
    std::string token, error;
  } cases[] = {
      {token_for("erin"), "TOKEN_UID_MISMATCH"},
      {expired, "TOKEN_EXPIRED"},
      {future, "TOKEN_NOT_YET_VALID"},
      {other_secret, "TOKEN_BAD_SIGNATURE"},
      {none_alg, "TOKEN_UNSUPPORTED_ALG"},
      {"not-a-jwt", "TOKEN_INVALID"},
      {"a.b!.c", "TOKEN_INVALID"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.error);
    CHECK(error_of(u.call("login", "", "{\"token\":\"" + c.token + "\"}")) == c.error);
  }
  CHECK(error_of(u.call("login")) == "MISSING_PARAMETER");
  CHECK(error_of(u.call("join", "channel=x")) == "NOT_LOGGED_IN");
  u.login();
  CHECK(error_of(u.call("join", "channel=bad/name")) == "INVALID_NAME");
  CHECK(error_of(u.call("join", "", R"({"channel":"bad name"})")) == "INVALID_NAME");
  CHECK(error_of(u.call("join", "", R"({"channel":7})")) == "INVALID_PARAMETER");
}

TEST_CASE("a second login replaces the first session, which is told why") {
  Setup s;
  User first(s, "frank");
  first.login();
  first.ok("join", "channel=lobby");
  Client watcher(s.broker.uri(), "lobby-watcher");
  watcher.connect();
  watcher.subscribe("rtm/events/lobby");

  User second(s, "frank");
  second.login();
  auto replaced = wait_user_event(first.client, "frank", "session", "state", "replaced");
  REQUIRE(replaced);
  CHECK(std::string((*replaced)["reason"].GetString()) == "logged in elsewhere");
  auto left = wait_channel_event(watcher, "lobby", "member_left", "frank");
  REQUIRE(left);
  CHECK(std::string((*left)["reason"].GetString()) == "replaced");
  CHECK(second.ok("where_now", "uid=frank")["result"]["channels"].Size() == 0);
}

TEST_CASE("peer-to-peer: a message to a user inbox arrives with its sender") {
  Setup s;
  User alice(s, "alice");
  User bob(s, "bob");
  alice.client.publish("rtm/u/bob/inbox/alice", "hello bob", 1);
  auto got = bob.client.wait_for("rtm/u/bob/inbox/+");
  REQUIRE(got);
  CHECK(got->topic == "rtm/u/bob/inbox/alice");
  CHECK(got->payload == "hello bob");
}

TEST_CASE("at most 64 publishers per subscription: the 65th is refused") {
  Setup s;
  User host(s, "host");
  host.login();
  host.ok("join", "channel=big");
  std::string users;
  for (int i = 1; i <= 64; ++i) users += (i > 1 ? "," : "") + std::string("p") + std::to_string(i);
  auto first = host.ok("subscribe", "channel=big&topic=input&users=" + users);
  for (const auto& r : first["result"]["users"].GetArray()) CHECK(r["ok"].GetBool());
  auto more = host.ok("subscribe", "channel=big&topic=input&users=p1,p65");
  const auto& results = more["result"]["users"];
  CHECK(results[0]["ok"].GetBool());  // already subscribed: fine
  CHECK_FALSE(results[1]["ok"].GetBool());
  CHECK(std::string(results[1]["error"].GetString()) == "LIMIT_SUBSCRIPTIONS");
  CHECK(host.ok("subscribed", "channel=big&topic=input")["result"]["users"].Size() == 64);
  // Another topic has its own 64.
  CHECK(host.ok("subscribe", "channel=big&topic=voice&users=p65")["result"]["users"][0]["ok"].GetBool());
}

TEST_CASE("token expiry: a warning first, then the session ends with events") {
  Setup s;
  User u(s, "gina");
  User other(s, "hank");
  other.login();
  other.ok("join", "channel=short");
  u.login(4);  // expires in 4 s; the default warning is 30 s ahead, so it comes at once
  u.ok("join", "channel=short");
  Client watcher(s.broker.uri(), "short-watcher");
  watcher.connect();
  watcher.subscribe("rtm/events/short");
  auto warn = wait_user_event(u.client, "gina", "token", "state", "will_expire");
  REQUIRE(warn);
  auto expired = wait_user_event(u.client, "gina", "token", "state", "expired", 10000ms);
  REQUIRE(expired);
  auto ended = wait_user_event(u.client, "gina", "session", "state", "ended");
  REQUIRE(ended);
  CHECK(std::string((*ended)["reason"].GetString()) == "token_expired");
  auto left = wait_channel_event(watcher, "short", "member_left", "gina");
  REQUIRE(left);
  CHECK(std::string((*left)["reason"].GetString()) == "token_expired");
  CHECK(error_of(u.call("join", "channel=short")) == "NOT_LOGGED_IN");
}

TEST_CASE("renew_token keeps the session past the first token's expiry") {
  Setup s;
  User u(s, "ivan");
  u.login(3);
  auto renewed = u.ok("renew_token", "", "{\"token\":\"" + token_for("ivan", 3600) + "\"}");
  CHECK(renewed["result"]["expires_at"].GetInt64() > 0);
  // What is tested is the passing of time itself: wait past the first token's expiry.
  std::this_thread::sleep_for(4s);
  CHECK(u.ok("where_now", "uid=ivan")["code"].GetInt() == 0);
  for (const auto& e : u.client.take("rtm/u/ivan/events/session")) {
    CHECK(e.payload.find("ended") == std::string::npos);
  }
}

TEST_CASE("presence: a client killed without DISCONNECT goes offline, watchers and channels hear it") {
  Setup s;
  User alice(s, "alice");
  alice.login();
  alice.ok("join", "channel=room");
  Client watcher(s.broker.uri(), "room-watcher");
  watcher.connect();
  watcher.subscribe("rtm/events/room");

  // bob's device: a separate process with a Will, as a real device would have.
  const std::string port = std::to_string(s.broker.port());
  TempDir dir;
  Process device({find_program("mosquitto_sub"), "-p", port, "-i", "bob-device", "-t",
                  "rtm/u/bob/#", "--will-topic", "rtm/presence/bob", "--will-payload",
                  R"({"state":"offline","session":"conn-1"})", "--will-retain", "--will-qos", "1"},
                 dir.path() / "device.log");
  Client bob_requests(s.broker.uri(), "bob-app");
  bob_requests.connect();
  bob_requests.subscribe("rtm/u/bob/#");
  bob_requests.publish("rtm/presence/bob", R"({"state":"online","session":"conn-1"})", 1, true);
  auto login = request(bob_requests, "bob", "login?msg_id=1",
                       "{\"token\":\"" + token_for("bob") + "\"}");
  REQUIRE(login["code"].GetInt() == 0);
  REQUIRE(request(bob_requests, "bob", "join?channel=room&msg_id=2")["code"].GetInt() == 0);

  auto watched = alice.ok("watch", "users=bob");
  CHECK(std::string(watched["result"]["users"][0]["state"].GetString()) == "online");

  // The Will exists only once the device is connected: wait until it reads a probe (its
  // output is a file, polled with a deadline), then kill it.
  const auto connected_by = Clock::now() + 10s;
  while (device.log().find("probe") == std::string::npos && Clock::now() < connected_by) {
    bob_requests.publish("rtm/u/bob/probe", "probe", 0);
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE_MESSAGE(device.log().find("probe") != std::string::npos, device.log());
  device.kill_hard();  // no DISCONNECT: the broker publishes the Will
  auto offline = wait_user_event(alice.client, "alice", "presence", "state", "offline");
  REQUIRE(offline);
  CHECK(std::string((*offline)["uid"].GetString()) == "bob");
  auto timed_out = wait_channel_event(watcher, "room", "member_timed_out", "bob");
  REQUIRE(timed_out);
  CHECK(alice.ok("who_now", "channel=room")["result"]["members"].Size() == 1);
}

TEST_CASE("an offline Will from an older connection does not end a newer session") {
  Setup s;
  User alice(s, "alice");
  alice.login();
  alice.ok("watch", "users=bob");
  Client bob(s.broker.uri(), "bob-app");
  bob.connect();
  bob.subscribe("rtm/u/bob/#");
  bob.publish("rtm/presence/bob", R"({"state":"online","session":"old"})", 1, true);
  bob.publish("rtm/presence/bob", R"({"state":"online","session":"new"})", 1, true);
  REQUIRE(request(bob, "bob", "login?msg_id=1", "{\"token\":\"" + token_for("bob") + "\"}")["code"]
              .GetInt() == 0);
  REQUIRE(request(bob, "bob", "join?channel=room&msg_id=2")["code"].GetInt() == 0);
  // The old connection's Will arrives late.
  bob.publish("rtm/presence/bob", R"({"state":"offline","session":"old"})", 1, true);
  // A later request proves the Will was processed (one loop, in order) and ignored.
  auto who = request(bob, "bob", "who_now?channel=room&msg_id=3");
  REQUIRE(who["code"].GetInt() == 0);
  CHECK(who["result"]["members"].Size() == 1);
  for (const auto& e : alice.client.take("rtm/u/alice/events/presence")) {
    CHECK(e.payload.find("offline") == std::string::npos);
  }
}

TEST_CASE("after a gateway restart, presence is rebuilt from the retained messages") {
  Mosquitto broker;
  Client bob(broker.uri(), "bob-device");
  bob.connect();
  bob.publish("rtm/presence/bob", R"({"state":"online","session":"c1"})", 1, true);
  {
    GatewayProcess first(broker.uri());
    REQUIRE(wait_gateway_ready(broker.uri()));
  }
  GatewayProcess second(broker.uri());
  REQUIRE(wait_gateway_ready(broker.uri()));
  Client alice(broker.uri(), "alice-app");
  alice.connect();
  alice.subscribe("rtm/u/alice/#");
  REQUIRE(request(alice, "alice", "login?msg_id=1", "{\"token\":\"" + token_for("alice") + "\"}")
              ["code"].GetInt() == 0);
  auto watched = request(alice, "alice", "watch?users=bob&msg_id=2");
  REQUIRE(watched["code"].GetInt() == 0);
  CHECK(std::string(watched["result"]["users"][0]["state"].GetString()) == "online");
}
