// The bridge, tried as a fleet operator would: the coplay example's rules, a legacy
// controller that only knows its old topics, a host that speaks RTM, all through a real
// Mosquitto and the real gateway. Every case runs twice: with the gateway relaying
// (mapping.mode relay) and with the rules carried out inside the broker by the project's
// plugin (mapping.mode broker, plugin_opt_bridge true); the user sees the same either way.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>

#include "harness.hpp"
#include "rtm/broker_bridge/records.hpp"
#include "rtm/tokens/jwt.hpp"
#include "secure.hpp"

using namespace rtm::test;

namespace {

enum class Mode { relay, broker };

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

// Mosquitto as the zero-hop bridge needs it: the plugin with its bridge on, the gateway's
// user in a password_file (only it may send the rules); devices connect anonymously, as
// legacy devices do.
std::string broker_mode_config(const std::string& password_file) {
  return bridge_plugin_config(password_file);
}

std::string with_mode(std::string mapping, Mode mode) {
  if (mode == Mode::broker) {
    const auto at = mapping.find("mapping:\n");
    REQUIRE(at != std::string::npos);
    mapping.insert(at + 9, "  mode: broker\n");
  }
  return mapping;
}

GatewayOptions options_for(const std::string& mapping, Mode mode) {
  GatewayOptions o{
      with_mode(mapping, mode) + "ops:\n  uids: [host-a]\n", "rtm", "rtm-gateway", "", "info", {}};
  if (mode == Mode::broker) o.password = kGatewayPassword;
  return o;
}

struct Setup {
  Mode mode;
  TempDir dir;
  Mosquitto broker;
  GatewayProcess gateway;
  Setup(const std::string& mapping, Mode m)
      : mode(m),
        broker(m == Mode::broker ? broker_mode_config(password_file_in(dir)) : ""),
        gateway(broker.uri(), options_for(mapping, m)) {
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
    if (mode == Mode::broker) {
      // The bridge carries messages once the plugin has taken the gateway's rules.
      REQUIRE_MESSAGE(
          wait_for_text([this] { return gateway.log(); }, "the broker's plugin carries rule set"),
          gateway.log() << broker.log());
    }
  }
  // Where the bridge logs a dropped message: the gateway, or the broker (its plugin).
  std::string bridge_log() const { return mode == Mode::broker ? broker.log() : gateway.log(); }
  void reload_gateway(const std::string& mapping) {
    std::string text = read_file(gateway.config_path());
    const auto at = text.find("\nmapping:");
    REQUIRE(at != std::string::npos);
    const auto end = text.find("\nops:", at);
    text.replace(at + 1, end == std::string::npos ? std::string::npos : end - at,
                 with_mode(mapping, mode));
    write_file(gateway.config_path(), text);
    ::kill(gateway.pid(), SIGHUP);
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

// The bridge's counters as `stats` shows them, once `field` reads `expected` (the broker's
// plugin reports its counters to the gateway at most once a second); the last read otherwise.
rapidjson::Document wait_stats(RtmUser& op, const char* field, std::uint64_t expected) {
  const auto deadline = Clock::now() + 10s;
  for (;;) {
    auto stats = op.ok("stats");
    if (stats["result"]["bridge"][field].GetUint64() == expected || Clock::now() >= deadline) {
      return stats;
    }
    std::this_thread::sleep_for(50ms);  // polling a counter, not waiting for time
  }
}

}  // namespace

// Each case runs in both modes, as two test cases.
#define BRIDGE_CASE(name, body)       \
  static void body(Mode mode);        \
  TEST_CASE("relay bridge: " name) {  \
    body(Mode::relay);                \
  }                                   \
  TEST_CASE("broker bridge: " name) { \
    body(Mode::broker);               \
  }                                   \
  static void body(Mode mode)

BRIDGE_CASE("coplay, every controller frame reaches the host in order, intact, state goes back out",
            coplay_frames) {
  Setup s(coplay_mapping(), mode);
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

  // Each frame and state carried exactly once: none seen again and carried twice (echoes).
  auto stats = wait_stats(host, "relayed", frames + 100);
  CHECK(stats["result"]["bridge"]["relayed"].GetUint64() == frames + 100);
  CHECK(stats["result"]["bridge"]["received"].GetUint64() == frames + 100);
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 0);
  CHECK_FALSE(controller.wait_for("coplay/room-42/state", 200ms));  // and no state twice
}

BRIDGE_CASE("coplay, a controller's status topic is its presence", controller_presence) {
  Setup s(coplay_mapping(), mode);
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

BRIDGE_CASE("a message a rule cannot carry is dropped and counted, the rest flow on", bad_capture) {
  Setup s(coplay_mapping(), mode);
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
  auto stats = wait_stats(host, "relayed", 1);
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 1);
  CHECK(stats["result"]["bridge"]["relayed"].GetUint64() == 1);
  CHECK(wait_for_text([&] { return s.bridge_log(); }, "controller-input"));
}

BRIDGE_CASE("envelope and extract transforms, inbox targets", transforms) {
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
  Setup s(mapping, mode);
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

BRIDGE_CASE("a rule set that would loop is refused at config check, naming both rules",
            loop_refused) {
  TempDir dir;
  write_file(dir.path() / "loop.yaml", std::string(R"(auth:
  token_secret: "integration-test-secret-0123456789abcdef"
mapping:
)") + (mode == Mode::broker ? "  mode: broker\n" : "") +
                                           R"(  rules:
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

BRIDGE_CASE("a device topic never speaks for a logged-in user", no_impersonation) {
  Setup s(coplay_mapping(), mode);
  RtmUser host(s, "host-a");
  host.ok("login", "", "{\"token\":\"" + token_for("host-a") + "\"}");
  host.ok("join", "channel=room-42");
  host.client.subscribe("rtm/ch/room-42/input/+", 1);
  Client controller(s.broker.uri(), "legacy-impostor");
  controller.connect();
  controller.publish("coplay/room-42/host-a/input", "as host-a", 1);
  controller.publish("coplay/room-42/p2/input", "as p2", 1);
  auto got = host.client.wait_for("rtm/ch/room-42/input/+");
  REQUIRE(got);
  CHECK(got->topic == "rtm/ch/room-42/input/p2");  // host-a's never came
  CHECK(got->payload == "as p2");
  auto stats = wait_stats(host, "dropped", 1);
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 1);
  CHECK(host.ok("who_now", "channel=room-42")["result"]["members"].Size() == 2);  // host-a, p2
}

// ------------------------------------------------------------------ broker mode only

namespace {

namespace bb = rtm::broker_bridge;
namespace mapping = rtm::mapping;

// A client of the gateway's own user: it may write bridge records, as the gateway does.
std::unique_ptr<Client> gateway_user_client(const Setup& s) {
  auto c = std::make_unique<Client>(s.broker.uri(), unique_id("as-gateway"),
                                    login_as(kGatewayUser, kGatewayPassword));
  c->connect();
  return c;
}

bb::RulesRecord loop_rules() {
  bb::RulesRecord r;
  r.id = "test-loop";
  r.instance = "test";
  r.prefix = "rtm";
  mapping::RuleSpec in;
  in.name = "in";
  in.source.device_topic = "dev/{room}/{p}/input";
  in.target.channel = "{room}";
  in.target.topic = "input";
  in.target.publisher = "{p}";
  mapping::RuleSpec out;
  out.name = "out";
  out.direction = mapping::Direction::outbound;
  out.source.channel = "{room}";
  out.source.topic = "input";
  out.source.publisher = "{p}";
  out.target.device_topic = "dev/{room}/{p}/input";
  r.rules = {in, out};
  return r;
}

}  // namespace

TEST_CASE(
    "broker bridge: a rule set that would loop is refused by the plugin too, with key paths, "
    "and the rules in force stay") {
  Setup s(coplay_mapping(), Mode::broker);
  auto as_gateway = gateway_user_client(s);
  as_gateway->subscribe(bb::plugin_topic("rtm"), 1);
  as_gateway->publish(bb::control_topic("rtm"), bb::encode(loop_rules()), 1);
  std::optional<bb::RulesAnswer> answer;
  const auto deadline = Clock::now() + 10s;
  while (!answer && Clock::now() < deadline) {
    auto got = as_gateway->wait_for(bb::plugin_topic("rtm"), 10s);
    if (!got) break;
    auto record = bb::decode_plugin(got->payload);
    REQUIRE(record);
    if (record->kind == bb::Record::Kind::rules_answer && record->rules_answer.id == "test-loop") {
      answer = record->rules_answer;
    }
  }
  REQUIRE_MESSAGE(answer, s.broker.log());
  CHECK_FALSE(answer->ok);
  REQUIRE_FALSE(answer->errors.empty());
  std::string all;
  for (const auto& e : answer->errors) {
    CHECK(e.path.rfind("rules[", 0) == 0);
    all += e.path + ": " + e.message + "\n";
  }
  CHECK_MESSAGE(all.find("\"in\"") != std::string::npos, all);
  CHECK_MESSAGE(all.find("\"out\"") != std::string::npos, all);
  CHECK_MESSAGE(all.find("loop") != std::string::npos, all);
  CHECK(wait_for_text([&] { return s.broker.log(); }, "rule set test-loop refused"));

  // The coplay rules still carry.
  Client host(s.broker.uri(), "host-view");
  host.connect();
  host.subscribe("rtm/ch/room-9/input/+", 1);
  Client controller(s.broker.uri(), "legacy-9");
  controller.connect();
  controller.publish("coplay/room-9/p1/input", "still", 1);
  auto got = host.wait_for("rtm/ch/room-9/input/+");
  REQUIRE(got);
  CHECK(got->payload == "still");
}

TEST_CASE(
    "broker bridge: only the gateway's user changes the rules, and nobody speaks for the plugin") {
  Setup s(coplay_mapping(), Mode::broker);
  Client events(s.broker.uri(), "events-5");
  events.connect();
  events.subscribe("rtm/events/room-5");
  Client intruder(s.broker.uri(), "intruder");  // anonymous, as any device may be
  intruder.connect();
  bb::RulesRecord rules;
  rules.id = "forged";
  rules.prefix = "rtm";
  mapping::RuleSpec grab;
  grab.name = "grab";
  grab.source.device_topic = "secret/{x}";
  grab.target.channel = "loot";
  grab.target.topic = "all";
  grab.target.publisher = "{x}";
  rules.rules = {grab};
  intruder.publish(bb::control_topic("rtm"), bb::encode(rules), 1);
  // A forged announcement would make the gateway register a publisher nobody is.
  intruder.publish(bb::plugin_topic("rtm"), bb::encode_announce({{"ghost", "room-5", "input"}}), 1);

  Client reader(s.broker.uri(), "loot-reader");
  reader.connect();
  reader.subscribe("rtm/ch/loot/all/+", 1);
  reader.subscribe("rtm/ch/room-5/input/+", 1);
  Client device(s.broker.uri(), "secret-keeper");
  device.connect();
  device.publish("secret/k1", "not for you", 1);
  // A real controller's frame is the marker: it went through the plugin after all the above.
  device.publish("coplay/room-5/p1/input", "marker", 1);
  auto got = reader.wait_for("rtm/ch/#");
  REQUIRE(got);
  CHECK(got->topic == "rtm/ch/room-5/input/p1");
  auto joined = wait_channel_event(events, "room-5", "publisher_joined", "p1");
  REQUIRE(joined);
  CHECK(wait_for_text([&] { return s.broker.log(); }, "not from the gateway's user"));
  CHECK(wait_for_text([&] { return s.broker.log(); }, "only the plugin writes there"));
  RtmUser probe(s, "probe-5");
  probe.ok("login", "", "{\"token\":\"" + token_for("probe-5") + "\"}");
  auto snap = probe.ok("join", "channel=room-5");
  const auto& topics = snap["result"]["snapshot"]["topics"];
  REQUIRE(topics.Size() == 1);
  REQUIRE(topics[0]["publishers"].Size() == 1);
  CHECK(std::string(topics[0]["publishers"][0].GetString()) == "p1");  // no ghost
}

TEST_CASE(
    "broker bridge: SIGHUP in the gateway brings new rules to the plugin, a broken file "
    "changes neither, the broker's own reload asks for the rules again") {
  Setup s(coplay_mapping(), Mode::broker);
  Client reader(s.broker.uri(), "temps-reader");
  reader.connect();
  reader.subscribe("rtm/ch/hall/temp/+", 1);
  Client sensor(s.broker.uri(), "sensor-1");
  sensor.connect();

  // The coplay rules list ends before "presence:": the new rule goes into that list.
  std::string with_temps = coplay_mapping();
  const auto presence_at = with_temps.find("\n  presence:");
  REQUIRE(presence_at != std::string::npos);
  with_temps.insert(presence_at + 1,
                    "    - name: temps\n      source: \"factory/{hall}/{sensor}/temp\"\n"
                    "      target: {channel: \"{hall}\", topic: temp, publisher: \"{sensor}\"}\n");
  const auto before = s.gateway.log().size();
  s.reload_gateway(with_temps);
  auto mark = wait_for_text([&] { return s.gateway.log(); }, "the broker's plugin carries rule set",
                            before);
  REQUIRE_MESSAGE(mark, s.gateway.log());
  sensor.publish("factory/hall/s1/temp", "21.0", 1);
  auto got = reader.wait_for("rtm/ch/hall/temp/+");
  REQUIRE_MESSAGE(got, s.broker.log());
  CHECK(got->topic == "rtm/ch/hall/temp/s1");

  // A file that loops: the gateway refuses it, so the plugin never hears of it.
  std::string looping = with_temps;
  looping.insert(looping.find("\n  presence:") + 1,
                 "    - name: back\n      direction: outbound\n"
                 "      source: {channel: \"{hall}\", topic: temp, publisher: \"{sensor}\"}\n"
                 "      target: \"factory/{hall}/{sensor}/temp\"\n");
  const auto before_bad = s.gateway.log().size();
  s.reload_gateway(looping);
  REQUIRE(wait_for_text([&] { return s.gateway.log(); }, "the running configuration stays",
                        before_bad));
  sensor.publish("factory/hall/s1/temp", "22.0", 1);
  got = reader.wait_for("rtm/ch/hall/temp/+");
  REQUIRE(got);
  CHECK(got->payload == "22.0");
  // Carried once: the looping rule is in force nowhere.
  CHECK_FALSE(reader.wait_for("rtm/ch/hall/temp/+", 300ms));

  const auto before_hup = s.gateway.log().size();
  ::kill(s.broker.pid(), SIGHUP);
  REQUIRE_MESSAGE(
      wait_for_text([&] { return s.gateway.log(); }, "the broker's plugin (re)loaded", before_hup),
      s.gateway.log());
  REQUIRE(wait_for_text([&] { return s.gateway.log(); }, "the broker's plugin carries rule set",
                        before_hup));
  sensor.publish("factory/hall/s1/temp", "23.0", 1);
  got = reader.wait_for("rtm/ch/hall/temp/+");
  REQUIRE(got);
  CHECK(got->payload == "23.0");
}

TEST_CASE(
    "broker bridge: keep_source false moves the message itself to its target, in order, "
    "its payload transformed, retained there") {
  const std::string mapping = R"(mapping:
  rules:
    - name: moved
      source: "meter/{site}/{id}/reading"
      target: {channel: "{site}", topic: reading, publisher: "{id}"}
      qos: 1
      retain: true
      keep_source: false
    - name: moved-wrapped
      source: "meter/{site}/{id}/alarm"
      target: {channel: "{site}", topic: alarm, publisher: "{id}"}
      qos: 1
      keep_source: false
      transform:
        type: envelope
        fields: {id: "{id}", raw: "{payload}"}
)";
  Setup s(mapping, Mode::broker);
  Client reader(s.broker.uri(), "site-reader");
  reader.connect();
  reader.subscribe("rtm/ch/north/+/+", 1);
  Client source_reader(s.broker.uri(), "source-reader");  // reads the device topics themselves
  source_reader.connect();
  source_reader.subscribe("meter/#", 1);
  Client meter(s.broker.uri(), "meter-7");
  meter.connect();
  const int n = 500;
  for (int i = 0; i < n; ++i) meter.publish("meter/north/m7/reading", std::to_string(i), 1);
  for (int i = 0; i < n; ++i) {
    auto got = reader.wait_for("rtm/ch/north/+/+");
    REQUIRE_MESSAGE(got, "reading " << i << " did not arrive");
    CHECK(got->topic == "rtm/ch/north/reading/m7");
    REQUIRE(got->payload == std::to_string(i));
  }
  // Moved, not copied: the device topic's own subscriber got at most the first messages, the
  // ones held until the gateway had registered m7 (those go out as copies).
  std::size_t on_source = 0;
  while (source_reader.wait_for("meter/#", 200ms)) ++on_source;
  CHECK(on_source < static_cast<std::size_t>(n) / 2);
  // m7 as a publisher of topic alarm is a new registration: its first alarm is held (and its
  // original delivered); the second is moved.
  for (const char* text : {"battery low", "battery empty"}) {
    meter.publish("meter/north/m7/alarm", text, 1);
    auto alarm = reader.wait_for("rtm/ch/north/+/+");
    REQUIRE(alarm);
    CHECK(alarm->topic == "rtm/ch/north/alarm/m7");
    auto doc = parse(alarm->payload);
    REQUIRE(doc.IsObject());
    CHECK(std::string(doc["raw"].GetString()) == text);
    CHECK(std::string(doc["id"].GetString()) == "m7");
    if (std::string(text) == "battery low") {
      while (source_reader.wait_for("meter/#", 200ms)) {
      }
    }
  }
  CHECK_FALSE(source_reader.wait_for("meter/#", 200ms));
  // Retained under the target: a late reader gets the last reading.
  Client late(s.broker.uri(), "late-reader");
  late.connect();
  late.subscribe("rtm/ch/north/reading/m7", 1);
  auto retained = late.wait_for("rtm/ch/north/reading/m7");
  REQUIRE(retained);
  CHECK(retained->payload == std::to_string(n - 1));
  RtmUser op(s, "host-a");
  auto stats = wait_stats(op, "relayed", n + 2);
  CHECK(stats["result"]["bridge"]["relayed"].GetUint64() == n + 2);
  CHECK(stats["result"]["bridge"]["dropped"].GetUint64() == 0);
}
