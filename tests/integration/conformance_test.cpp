// The broker conformance suite (issue 14): the contract the gateway defines, run against
// each supported broker, started by the test on free ports. Mosquitto starts per test;
// RabbitMQ (10-20 s to start) once per test binary. Tried as a user of each broker would.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "harness.hpp"

using namespace rtm::test;

namespace {

// A plain MQTT user: its own subtree, its requests.
struct Peer {
  Peer(const std::string& uri, std::string id) : uid(std::move(id)) {
    client = std::make_unique<Client>(uri, uid + "/" + unique_id("c"));
    client->connect();
    REQUIRE(client->subscribe("rtm/u/" + uid + "/#") == 1);
  }
  rapidjson::Document op(const std::string& name, const std::string& query = "",
                         const std::string& body = "") {
    const std::string uri =
        name + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + unique_id("m");
    auto doc = request(*client, uid, uri, body);
    REQUIRE_MESSAGE(doc.IsObject(), "no answer to " << uid << " " << uri);
    return doc;
  }
  void ok(const std::string& name, const std::string& query = "", const std::string& body = "") {
    auto doc = op(name, query, body);
    REQUIRE_MESSAGE(doc["code"].GetInt() == 0, uid << " " << name << " " << query);
  }
  std::string error(const std::string& name, const std::string& query = "",
                    const std::string& body = "") {
    auto doc = op(name, query, body);
    return doc["code"].GetInt() == 0 ? "OK" : doc["error"].GetString();
  }
  std::string uid;
  std::unique_ptr<Client> client;
};

// The gateway as an anonymous client: each broker's default user (RabbitMQ's MQTT plugin
// maps an anonymous login to mqtt.default_user; a username it does not know is refused
// with CONNACK 4).
GatewayOptions anonymous_gateway() {
  GatewayOptions o;
  o.username = "";
  return o;
}

// The RTM flow with plain names: login, join, topics, subscribe, data, inbox, leave, logout.
void rtm_flow(const std::string& uri) {
  GatewayProcess gateway(uri, anonymous_gateway());
  REQUIRE_MESSAGE(wait_gateway_ready(uri, 60000ms), gateway.log());
  const std::string room = unique_id("room");
  Peer host(uri, unique_id("host")), player(uri, unique_id("player"));
  host.ok("login", "", "{\"token\":\"" + token_for(host.uid) + "\"}");
  player.ok("login", "", "{\"token\":\"" + token_for(player.uid) + "\"}");
  host.ok("join", "channel=" + room);
  player.ok("join", "channel=" + room);
  player.ok("join_topic", "channel=" + room + "&topic=input");
  host.ok("subscribe", "channel=" + room + "&topic=input", "{\"users\":[\"" + player.uid + "\"]}");
  const std::string data = "rtm/ch/" + room + "/input/" + player.uid;
  REQUIRE(host.client->subscribe(data) == 1);
  for (int i = 0; i < 10; ++i) player.client->publish(data, "frame-" + std::to_string(i), 1);
  for (int i = 0; i < 10; ++i) {
    auto m = host.client->wait_for(data);
    REQUIRE_MESSAGE(m, "frame " << i << " missing");
    CHECK(m->payload == "frame-" + std::to_string(i));
  }
  player.client->publish("rtm/u/" + host.uid + "/inbox/" + player.uid, "good game", 1);
  auto dm = host.client->wait_for("rtm/u/" + host.uid + "/inbox/#");
  REQUIRE(dm);
  CHECK(dm->payload == "good game");
  auto who = host.op("who_now", "channel=" + room);
  CHECK(who["result"]["members"].Size() == 2);
  player.ok("leave", "channel=" + room);
  player.ok("logout");
  CHECK(player.error("join", "channel=" + room) == "NOT_LOGGED_IN");
}

// A channel named '*' (a wildcard on AMQP-based brokers) is refused, never joined.
void star_refused(const std::string& uri) {
  GatewayProcess gateway(uri, anonymous_gateway());
  REQUIRE_MESSAGE(wait_gateway_ready(uri, 60000ms), gateway.log());
  Peer mallory(uri, unique_id("mallory"));
  mallory.ok("login", "", "{\"token\":\"" + token_for(mallory.uid) + "\"}");
  // In the body, or percent-encoded in the topic: RabbitMQ turns a '*' in a topic into '+'.
  CHECK(mallory.error("join", "", R"({"channel":"*"})") == "INVALID_NAME");
  CHECK(mallory.error("join", "channel=a%2Ab") == "INVALID_NAME");
}

}  // namespace

TEST_CASE("conformance (mosquitto): the RTM flow with plain names") {
  Mosquitto broker;
  rtm_flow(broker.uri());
}

TEST_CASE("conformance (rabbitmq): the RTM flow with plain names") {
  rtm_flow(RabbitMq::shared().uri());
}

TEST_CASE("conformance (mosquitto): a channel named '*' is refused") {
  Mosquitto broker;
  star_refused(broker.uri());
}

TEST_CASE("conformance (rabbitmq): a channel named '*' is refused") {
  star_refused(RabbitMq::shared().uri());
}
