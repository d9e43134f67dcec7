// The bridge, tried as a fleet operator would: the coplay example's rules, a legacy
// controller that only knows its old topics, a host that speaks RTM, all through a real
// Mosquitto and the real gateway.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "harness.hpp"
#include "rtm/tokens/jwt.hpp"

using namespace rtm::test;

namespace {

// The mapping section of the shipped example, so the test proves what users run.
std::string coplay_mapping() {
  const std::string text = read_file(std::string(RTM_SOURCE_DIR) + "/examples/coplay/gateway.yaml");
  const auto at = text.find("\nmapping:");
  REQUIRE(at != std::string::npos);
  return text.substr(at + 1);
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

struct Setup {
  Mosquitto broker;
  GatewayProcess gateway;
  explicit Setup(const std::string& mapping)
      : gateway(broker.uri(),
                GatewayOptions{mapping + "ops:\n  uids: [host-a]\n", "rtm", "rtm-gateway", "", "info", {}}) {
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  }
};

struct RtmUser {
  std::string uid;
  Client client;
  int next = 1;
  RtmUser(const Setup& s, std::string name) : uid(std::move(name)), client(s.broker.uri(), unique_id(uid)) {
    client.connect();
    client.subscribe("rtm/u/" + uid + "/#");
  }
  rapidjson::Document ok(const std::string& op, const std::string& query = "",
                         const std::string& body = "") {
    const std::string uri = op + "?" + (query.empty() ? "" : query + "&") + "msg_id=" +
                            uid + "-" + std::to_string(next++);
    auto doc = request(client, uid, uri, body);
    REQUIRE_MESSAGE(doc.IsObject(), "no answer to " << uri);
    REQUIRE_MESSAGE(doc["code"].GetInt() == 0, uri << ": " << doc["message"].GetString());
    return doc;
  }
};

std::optional<rapidjson::Document> wait_channel_event(Client& c, const std::string& channel,
                                                      const std::string& name,
                                                      const std::string& uid) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    auto got = c.wait_for("rtm/events/" + channel, 10s);
    if (!got) break;
    auto doc = parse(got->payload);
    if (doc["event"].GetString() == name && doc["uid"].GetString() == uid) return doc;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("coplay: every controller frame reaches the host in order, intact, state goes back out") {
  Setup s(coplay_mapping());
  RtmUser host(s, "host-a");
  host.ok("login", "", "{\"token\":\"" + token_for("host-a") + "\"}");
  host.ok("join", "channel=room-42");
  Client events(s.broker.uri(), "events-watcher");
  events.connect();
  events.subscribe("rtm/events/room-42");

  // A subscription may come before the publisher exists (RTM 2 rule).
  auto sub = host.ok("subscribe", "channel=room-42&topic=input&users=p2");
  const std::string input_topic = sub["result"]["users"][0]["topic"].GetString();
  CHECK(input_topic == "rtm/ch/room-42/input/p2");
  host.client.subscribe(input_topic, 1);

  Client controller(s.broker.uri(), "legacy-controller-p2");
  controller.connect();
  controller.subscribe("coplay/room-42/state");
  const int frames = 1000;
  for (int i = 0; i < frames; ++i) {
    // Binary frames: sequence number, then bytes that are not text.
    std::string frame = "seq=" + std::to_string(i) + ";";
    frame += std::string("\x00\xff\x7f", 3);
    controller.publish("coplay/room-42/p2/input", frame, 1);  // each waits for its PUBACK
  }
  for (int i = 0; i < frames; ++i) {
    auto got = host.client.wait_for(input_topic);
    REQUIRE_MESSAGE(got, "frame " << i << " did not arrive");
    std::string expected = "seq=" + std::to_string(i) + ";";
    expected += std::string("\x00\xff\x7f", 3);
    REQUIRE(got->payload == expected);
  }

  // The controller appears as a publisher of topic input, with the channel events.
  REQUIRE(wait_channel_event(events, "room-42", "member_joined", "p2"));
  REQUIRE(wait_channel_event(events, "room-42", "publisher_joined", "p2"));
  RtmUser late(s, "late-c");
  late.ok("login", "", "{\"token\":\"" + token_for("late-c") + "\"}");
  auto snap = late.ok("join", "channel=room-42");
  const auto& topics = snap["result"]["snapshot"]["topics"];
  REQUIRE(topics.Size() == 1);
  CHECK(std::string(topics[0]["publishers"][0].GetString()) == "p2");

  // Outbound: the host's state reaches the legacy devices of the room.
  auto state = host.ok("join_topic", "channel=room-42&topic=state");
  const std::string state_topic = state["result"]["publish_to"].GetString();
  for (int i = 0; i < 100; ++i) host.client.publish(state_topic, "state-" + std::to_string(i), 1);
  for (int i = 0; i < 100; ++i) {
    auto got = controller.wait_for("coplay/room-42/state");
    REQUIRE_MESSAGE(got, "state " << i << " did not arrive");
    CHECK(got->payload == "state-" + std::to_string(i));
  }

  auto stats = host.ok("stats");
  CHECK(stats["result"]["bridge"]["relayed"].GetUint64() == frames + 100);
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 0);
}

TEST_CASE("coplay: a controller's status topic is its presence") {
  Setup s(coplay_mapping());
  RtmUser host(s, "host-a");
  host.ok("login", "", "{\"token\":\"" + token_for("host-a") + "\"}");
  host.ok("join", "channel=room-7");
  auto watched = host.ok("watch", "users=p3");
  CHECK(std::string(watched["result"]["users"][0]["state"].GetString()) == "offline");
  Client events(s.broker.uri(), "events-7");
  events.connect();
  events.subscribe("rtm/events/room-7");

  // The controller, as a separate process with a Will, as a real device.
  const std::string port = std::to_string(s.broker.port());
  TempDir dir;
  Process device({find_program("mosquitto_sub"), "-p", port, "-i", "controller-p3", "-t",
                  "coplay/room-7/state", "--will-topic", "coplay/room-7/p3/status",
                  "--will-payload", "offline", "--will-retain", "--will-qos", "1"},
                 dir.path() / "device.log");
  run_command({"mosquitto_pub", "-p", port, "-t", "coplay/room-7/p3/status", "-r", "-q", "1", "-m",
               "online"});
  auto online = host.client.wait_for("rtm/u/host-a/events/presence");
  REQUIRE(online);
  CHECK(parse(online->payload)["state"].GetString() == std::string("online"));
  run_command({"mosquitto_pub", "-p", port, "-t", "coplay/room-7/p3/input", "-q", "1", "-m", "x"});
  REQUIRE(wait_channel_event(events, "room-7", "publisher_joined", "p3"));

  device.kill_hard();  // no DISCONNECT: the broker publishes the Will "offline"
  REQUIRE(wait_channel_event(events, "room-7", "member_timed_out", "p3"));
  auto offline = host.client.wait_for("rtm/u/host-a/events/presence");
  REQUIRE(offline);
  CHECK(parse(offline->payload)["state"].GetString() == std::string("offline"));
  CHECK(host.ok("who_now", "channel=room-7")["result"]["members"].Size() == 1);
}

TEST_CASE("bridge: a message a rule cannot carry is dropped and counted, the rest flow on") {
  Setup s(coplay_mapping());
  RtmUser host(s, "host-a");
  host.ok("login", "", "{\"token\":\"" + token_for("host-a") + "\"}");
  host.ok("join", "channel=room-42");
  host.ok("subscribe", "channel=room-42&topic=input&users=p2");
  host.client.subscribe("rtm/ch/room-42/input/+", 1);
  Client controller(s.broker.uri(), "legacy");
  controller.connect();
  // "p 2" is a fine MQTT topic level but not a legal publisher name.
  controller.publish("coplay/room-42/p 2/input", "bad", 1);
  controller.publish("coplay/room-42/p2/input", "good", 1);
  auto got = host.client.wait_for("rtm/ch/room-42/input/+");
  REQUIRE(got);
  CHECK(got->payload == "good");
  auto stats = host.ok("stats");
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 1);
  CHECK(stats["result"]["bridge"]["relayed"].GetUint64() == 1);
  CHECK(s.gateway.log().find("controller-input") != std::string::npos);
}

TEST_CASE("bridge: envelope and extract transforms, inbox targets") {
  const std::string mapping = R"(mapping:
  rules:
    - name: line-temp
      direction: inbound
      source: "factory/{line}/temp"
      target: {channel: "factory", topic: temp, publisher: "{line}"}
      transform:
        type: envelope
        fields:
          line: "{line}"
          at: "{timestamp}"
          reading: "{payload_json}"
    - name: alarm-to-inbox
      direction: inbound
      source: "factory/{line}/alarm"
      target: {to: "operator", from: "{line}"}
      transform: {type: extract, pointer: /message}
)";
  Setup s(mapping);
  Client op(s.broker.uri(), "operator-app");
  op.connect();
  op.subscribe("rtm/u/operator/#");
  op.subscribe("rtm/ch/factory/temp/+");
  Client device(s.broker.uri(), "line-3");
  device.connect();
  device.publish("factory/line-3/temp", R"({"celsius":21.5})", 1);
  auto temp = op.wait_for("rtm/ch/factory/temp/line-3");
  REQUIRE(temp);
  auto doc = parse(temp->payload);
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc["line"].GetString()) == "line-3");
  CHECK(doc["at"].GetInt64() > 1700000000000LL);
  CHECK(doc["reading"]["celsius"].GetDouble() == 21.5);
  device.publish("factory/line-3/alarm", R"({"message":"belt stopped","level":2})", 1);
  auto alarm = op.wait_for("rtm/u/operator/inbox/+");
  REQUIRE(alarm);
  CHECK(alarm->topic == "rtm/u/operator/inbox/line-3");
  CHECK(alarm->payload == "belt stopped");
}

TEST_CASE("bridge: a rule set that would loop is refused at config check, naming both rules") {
  TempDir dir;
  write_file(dir.path() / "loop.yaml", R"(auth:
  token_secret: "integration-test-secret-0123456789abcdef"
mapping:
  rules:
    - name: in
      source: "dev/{room}/{p}/input"
      target: {channel: "{room}", topic: input, publisher: "{p}"}
    - name: out
      direction: outbound
      source: {channel: "{room}", topic: input, publisher: "{p}"}
      target: "dev/{room}/{p}/input"
)");
  auto r = run_command({gateway_binary(), "--check-config", "--config", (dir.path() / "loop.yaml").string()});
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("\"in\"") != std::string::npos);
  CHECK(r.output.find("\"out\"") != std::string::npos);
  CHECK(r.output.find("loop") != std::string::npos);
}
