// The RTM rules enforced by the broker, end to end: the shipped secure set-up (Mosquitto
// with the rtm_mosquitto_auth plugin enforcing grants, the shipped ACL, a password_file for
// the gateway) and the gateway publishing its grants. Each case is tried as a hostile
// logged-in user would, next to its legitimate counterpart.
//
// A message the broker drops leaves no trace, so every "cannot" is shown with a marker: the
// forbidden message goes first, then the same connection publishes its presence, which the
// reader also receives; per-connection order means that once the marker has arrived, the
// forbidden message would have arrived before it. No sleeps: every wait has a deadline.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "harness.hpp"
#include "secure.hpp"

using namespace rtm::test;

namespace {

constexpr const char* kApiKey = "ops-key-for-the-tests-0123456789";

// A user's connection (token login, its own subtree and everyone's presence) and its
// requests.
struct User {
  User(const std::string& uri, std::string id, std::int64_t ttl_s = 600) : uid(std::move(id)) {
    client = std::make_unique<Client>(uri, uid + "/" + unique_id("c"),
                                      login_as(uid, signed_token(uid, ttl_s)));
    client->connect();
    REQUIRE(client->subscribe("rtm/u/" + uid + "/#") == 1);
    REQUIRE(client->subscribe("rtm/presence/+") == 1);
  }
  rapidjson::Document op(const std::string& name, const std::string& query = "",
                         const std::string& body = "") {
    const std::string uri = name + "?" + (query.empty() ? "" : query + "&") +
                            "msg_id=" + unique_id(uid);  // unique: repeats are deduplicated
    return request(*client, uid, uri, body);
  }
  void ok(const std::string& name, const std::string& query = "", const std::string& body = "") {
    auto doc = op(name, query, body);
    REQUIRE_MESSAGE(answered_ok(doc), uid << " " << name << " " << query << " " << body);
  }
  void login() { ok("login", "", login_body(uid)); }
  void enter(const std::string& channel) {
    login();
    ok("join", "channel=" + channel);
  }
  void publish(const std::string& topic, const std::string& payload) {
    client->publish(topic, payload, 1);
  }
  Client* operator->() { return client.get(); }

  std::string uid;
  std::unique_ptr<Client> client;
};

void marker(User& from, User& to) { presence_marker(*from.client, from.uid, *to.client); }


std::optional<std::string> payload_of(Client& c, const std::string& topic) {
  auto m = c.wait_for(topic);
  if (!m) return std::nullopt;
  return m->payload;
}

// The coplay room: alice publishes input, bob subscribes to her.
struct Room {
  explicit Room(const std::string& uri) : alice(uri, "alice"), bob(uri, "bob") {
    alice.enter("room");
    alice.ok("join_topic", "channel=room&topic=input");
    bob.enter("room");
    bob.ok("subscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  }
  User alice, bob;
};

}  // namespace

TEST_CASE("enforced: a logged-in user reads only the channel data and events it was granted") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  User alice(uri, "alice"), bob(uri, "bob"), carol(uri, "carol"), dave(uri, "dave");
  alice.enter("room");
  alice.ok("join_topic", "channel=room&topic=input");
  bob.enter("room");
  dave.enter("room");  // a member that did not subscribe
  carol.login();        // logged in, never joined
  for (User* u : {&carol, &dave}) {
    REQUIRE((*u)->subscribe("rtm/ch/#") == 1);
    REQUIRE((*u)->subscribe("rtm/ch/room/input/alice") == 1);
  }
  REQUIRE(carol->subscribe("rtm/events/#") == 1);
  REQUIRE(bob->subscribe("rtm/ch/room/input/alice") == 1);
  REQUIRE(bob->subscribe("rtm/events/room") == 1);

  // The grant is in place when the subscribe answer arrives: the very next frame is read.
  bob.ok("subscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  alice.publish("rtm/ch/room/input/alice", "frame-1");
  CHECK(payload_of(*bob.client, "rtm/ch/room/input/alice") == "frame-1");
  marker(alice, carol);
  marker(alice, dave);
  CHECK(carol->take("rtm/ch/#").empty());
  CHECK(dave->take("rtm/ch/#").empty());

  // Channel events reach members only; carol's own answer comes after the event.
  User eve(uri, "eve");
  eve.enter("room");
  auto joined = bob->wait_for("rtm/events/room");
  REQUIRE(joined);
  CHECK(joined->payload.find("\"eve\"") != std::string::npos);
  carol.ok("ping");
  CHECK(carol->take("rtm/events/#").empty());

  // who_now of a channel not joined is refused.
  auto who = carol.op("who_now", "channel=room");
  CHECK(std::string(who["error"].GetString()) == "NOT_JOINED");
  CHECK(answered_ok(dave.op("who_now", "channel=room")));
}

TEST_CASE("enforced: a 65th publisher is not delivered, even through a wildcard") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  User host(uri, "host"), p0(uri, "p0"), p64(uri, "p64");
  host.enter("arena");
  std::string users;
  for (int i = 0; i < 64; ++i) users += std::string(i ? "," : "") + "\"p" + std::to_string(i) + "\"";
  host.ok("subscribe", "channel=arena&topic=input", "{\"users\":[" + users + "]}");
  auto over = host.op("subscribe", "channel=arena&topic=input", R"({"users":["p64"]})");
  REQUIRE(answered_ok(over));
  CHECK(std::string(over["result"]["users"][0]["error"].GetString()) == "LIMIT_SUBSCRIPTIONS");
  REQUIRE(host->subscribe("rtm/ch/arena/input/+") == 1);
  for (User* p : {&p0, &p64}) {
    p->enter("arena");
    p->ok("join_topic", "channel=arena&topic=input");
  }
  p64.publish("rtm/ch/arena/input/p64", "from the 65th");
  marker(p64, host);
  p0.publish("rtm/ch/arena/input/p0", "from the first");
  auto got = host->wait_for("rtm/ch/arena/input/+");
  REQUIRE(got);
  CHECK(got->topic == "rtm/ch/arena/input/p0");
  CHECK(host->take("rtm/ch/#").empty());
}

TEST_CASE("enforced: only a registered publisher of a topic writes to it") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  User bob(uri, "bob"), mallory(uri, "mallory");
  mallory.enter("room");  // a member, not a publisher of "input"
  bob.enter("room");
  bob.ok("subscribe", "channel=room&topic=input", R"({"users":["mallory"]})");
  REQUIRE(bob->subscribe("rtm/ch/room/#") == 1);

  mallory.publish("rtm/ch/room/input/mallory", "not a publisher yet");
  mallory.publish("rtm/ch/room/chat/mallory", "a topic nobody granted");
  marker(mallory, bob);
  CHECK(bob->take("rtm/ch/#").empty());

  mallory.ok("join_topic", "channel=room&topic=input");
  mallory.publish("rtm/ch/room/input/mallory", "a publisher now");
  CHECK(payload_of(*bob.client, "rtm/ch/room/input/mallory") == "a publisher now");

  mallory.ok("leave_topic", "channel=room&topic=input");
  mallory.publish("rtm/ch/room/input/mallory", "after leave_topic");
  marker(mallory, bob);
  CHECK(bob->take("rtm/ch/#").empty());
}

TEST_CASE("enforced: after unsubscribe, leave and logout the reader receives nothing more") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  Room r(uri);
  REQUIRE(r.bob->subscribe("rtm/ch/#") == 1);
  auto delivered = [&](const std::string& frame) {
    r.alice.publish("rtm/ch/room/input/alice", frame);
    marker(r.alice, r.bob);
    const auto got = r.bob->take("rtm/ch/#");
    return got.size() == 1 && got[0].payload == frame;
  };
  CHECK(delivered("subscribed"));
  r.bob.ok("unsubscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  CHECK_FALSE(delivered("after unsubscribe"));
  r.bob.ok("subscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  CHECK(delivered("subscribed again"));
  r.bob.ok("leave", "channel=room");
  CHECK_FALSE(delivered("after leave"));
  r.bob.ok("join", "channel=room");
  r.bob.ok("subscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  CHECK(delivered("member again"));

  // Logout: the broker closes bob's connection, and a new one reads nothing.
  r.bob.ok("logout");
  CHECK(lost_within(*r.bob.client, 5s));
  User again(uri, "bob");
  REQUIRE(again->subscribe("rtm/ch/#") == 1);
  r.alice.publish("rtm/ch/room/input/alice", "after logout");
  marker(r.alice, again);
  CHECK(again->take("rtm/ch/#").empty());
  // Inbox messages need a live session too.
  again.publish("rtm/u/alice/inbox/bob", "not logged in");
  marker(again, r.alice);
  CHECK(r.alice->take("rtm/u/alice/inbox/#").empty());
  again.login();
  again.publish("rtm/u/alice/inbox/bob", "logged in");
  CHECK(payload_of(*r.alice.client, "rtm/u/alice/inbox/bob") == "logged in");
}

TEST_CASE("enforced: an operator's kick and an expired token close the connection") {
  const int http_port = free_port();
  SecureSetup s("ops:\n  uids: [ops]\n  http_listen: 127.0.0.1:" + std::to_string(http_port) +
                "\n  api_keys: [" + kApiKey + "]\n");
  const auto uri = s.broker.uri();
  User ops(uri, "ops"), alice(uri, "alice"), bob(uri, "bob"), mallory(uri, "mallory");
  for (User* u : {&ops, &alice, &bob, &mallory}) u->login();

  auto refused = mallory.op("kick", "uid=alice");
  CHECK(std::string(refused["error"].GetString()) == "FORBIDDEN");
  CHECK(alice->connected());
  ops.ok("kick", "uid=alice");
  CHECK(lost_within(*alice.client, 5s));

  // Over HTTP, with the operator key.
  httplib::Client http("127.0.0.1", http_port);
  http.set_read_timeout(10, 0);
  auto no_key = http.Post("/v1/kick", R"({"uid":"bob"})", "application/json");
  REQUIRE(no_key);
  CHECK(no_key->status == 401);
  CHECK(bob->connected());
  httplib::Headers auth{{"Authorization", std::string("Bearer ") + kApiKey}};
  auto kicked = http.Post("/v1/kick", auth, R"({"uid":"bob"})", "application/json");
  REQUIRE(kicked);
  CHECK(kicked->status == 200);
  CHECK(kicked->body.find("\"had_session\":true") != std::string::npos);
  CHECK(lost_within(*bob.client, 5s));

  // Tokens of 2 s: one expires and its connection is closed by the broker; the other was
  // renewed (the gateway told the broker) and stays.
  User short_lived(uri, "carol", 2), renewed(uri, "dave", 2);
  short_lived.ok("login", "", R"({"token":")" + signed_token("carol", 2) + "\"}");
  renewed.ok("login", "", R"({"token":")" + signed_token("dave", 2) + "\"}");
  renewed.ok("renew_token", "", R"({"token":")" + signed_token("dave", 600) + "\"}");
  CHECK(lost_within(*short_lived.client, 10s));
  CHECK(renewed->connected());
  CHECK(answered_ok(renewed.op("ping")));
}

TEST_CASE("enforced: a login elsewhere closes the older connection and keeps the new one") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  User phone(uri, "alice"), laptop(uri, "alice");
  phone.login();
  laptop.login();
  CHECK(lost_within(*phone.client, 5s));
  CHECK(laptop->connected());
  CHECK(answered_ok(laptop.op("ping")));
  laptop.ok("join", "channel=room");  // the session is the laptop's
}

TEST_CASE("enforced: a gateway restart keeps the grants and a broker restart restores them") {
  SecureSetup s("state:\n  backend: sqlite\n  path: state.db\n");
  const auto uri = s.broker.uri();
  {
    Room r(uri);
    User carol(uri, "carol");
    carol.login();
    REQUIRE(r.bob->subscribe("rtm/ch/#") == 1);
    REQUIRE(carol->subscribe("rtm/ch/#") == 1);

    // The gateway dies: the broker keeps the grants it had.
    s.gateway.kill_hard();
    r.alice.publish("rtm/ch/room/input/alice", "while the gateway is down");
    CHECK(payload_of(*r.bob.client, "rtm/ch/room/input/alice") == "while the gateway is down");
    s.gateway.start();
    REQUIRE(wait_ready_with_token(uri));
    r.alice.publish("rtm/ch/room/input/alice", "after the restart");
    CHECK(payload_of(*r.bob.client, "rtm/ch/room/input/alice") == "after the restart");
    marker(r.alice, carol);
    CHECK(carol->take("rtm/ch/#").empty());
  }
  // The broker restarts with an empty table; the gateway reconnects and sends its full set
  // before it answers again.
  s.broker.stop();
  s.broker.start();
  REQUIRE(wait_ready_with_token(uri));
  User alice(uri, "alice"), bob(uri, "bob"), carol(uri, "carol");
  REQUIRE(bob->subscribe("rtm/ch/#") == 1);
  REQUIRE(carol->subscribe("rtm/ch/#") == 1);
  alice.publish("rtm/ch/room/input/alice", "after the broker restart");
  CHECK(payload_of(*bob.client, "rtm/ch/room/input/alice") == "after the broker restart");
  marker(alice, carol);
  CHECK(carol->take("rtm/ch/#").empty());
}

TEST_CASE("enforced: bridged devices are publishers like any other and readers need a grant") {
  // The operator's additions for the bridge: a device user in the password_file with rights
  // on the device topics, and those topics for the gateway's user too.
  TempDir dir;
  const std::string passwd = password_file_in(dir);
  auto added = run_command({"mosquitto_passwd", "-b", passwd, "controller", "controller-password"});
  REQUIRE_MESSAGE(added.exit_code == 0, added.output);
  const auto acl_path = dir.path() / "acl";
  {
    std::ofstream acl(acl_path);
    acl << read_file(std::string(RTM_SOURCE_DIR) + "/docker/mosquitto/acl")
        << "\nuser rtm-gateway\ntopic readwrite coplay/#\n"
        << "user controller\ntopic readwrite coplay/#\n";
  }
  std::string config = secure_config(passwd, inline_secret());
  config.replace(config.find("acl_file "), std::string::npos, "acl_file " + acl_path.string() + "\n");
  Mosquitto broker(config, /*allow_anonymous=*/false);
  const auto text = read_file(std::string(RTM_SOURCE_DIR) + "/examples/coplay/gateway.yaml");
  GatewayProcess gateway(broker.uri(),
                         secure_gateway_options(text.substr(text.find("\nmapping:") + 1)));
  const auto uri = broker.uri();
  REQUIRE(wait_ready_with_token(uri));

  User host(uri, "host"), carol(uri, "carol");
  host.enter("room-42");
  carol.login();
  REQUIRE(host->subscribe("rtm/events/room-42") == 1);
  REQUIRE(host->subscribe("rtm/ch/room-42/input/+") == 1);
  REQUIRE(carol->subscribe("rtm/ch/#") == 1);
  Client controller(uri, unique_id("controller"), login_as("controller", "controller-password"));
  controller.connect();

  controller.publish("coplay/room-42/p2/input", "A pressed", 1);
  for (bool joined = false; !joined;) {  // the device appears as a publisher
    auto e = host->wait_for("rtm/events/room-42");
    REQUIRE(e);
    joined = e->payload.find("publisher_joined") != std::string::npos &&
             e->payload.find("\"p2\"") != std::string::npos;
  }
  host.ok("subscribe", "channel=room-42&topic=input", R"({"users":["p2"]})");
  controller.publish("coplay/room-42/p2/input", "B pressed", 1);
  CHECK(payload_of(*host.client, "rtm/ch/room-42/input/p2") == "B pressed");
  // The relayed frames went out before carol's answer (one gateway connection): none for her.
  carol.ok("ping");
  CHECK(carol->take("rtm/ch/#").empty());
  CHECK(host->take("rtm/ch/#").empty());  // "A pressed" was before the grant: not delivered
}
