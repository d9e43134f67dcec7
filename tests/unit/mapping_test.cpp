// Table-driven tests of rtm/mapping/rules.hpp: compiling rule sets (every error kind, loop
// detection), routing messages through the transforms, filter overlap and the echo guard.
#include <doctest/doctest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "rtm/mapping/rules.hpp"
#include "rtm/topics/names.hpp"

namespace {

using rtm::mapping::Decision;
using rtm::mapping::Direction;
using rtm::mapping::EchoGuard;
using rtm::mapping::EnvelopeField;
using rtm::mapping::filters_overlap;
using rtm::mapping::PresenceRuleSpec;
using rtm::mapping::RuleError;
using rtm::mapping::RuleSet;
using rtm::mapping::RuleSpec;
using rtm::mapping::TransformKind;

constexpr std::int64_t kNow = 1700000000123;

// The gateway's own subscriptions under the prefix "rtm".
const std::vector<std::string> kReserved = {"rtm/req/+/#", "rtm/presence/+"};

// Printable form of bytes for failure messages.
std::string show(const std::string& bytes) {
  std::string shown = "\"";
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F && byte != '\\') {
      shown.push_back(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(byte));
      shown += escaped;
    }
  }
  return shown + "\"";
}

// One line per decision, so that a whole routing result compares as one vector.
std::string render(const Decision& decision) {
  switch (decision.kind) {
    case Decision::Kind::publish:
      return "publish " + decision.topic + " " + show(decision.payload) +
             (decision.qos != 0 ? " qos" + std::to_string(decision.qos) : "") +
             (decision.retain ? " retain" : "");
    case Decision::Kind::drop:
      return "drop " + decision.reason;
    case Decision::Kind::presence:
      return "presence " + decision.uid + (decision.online ? " online" : " offline");
  }
  return "?";
}

std::vector<std::string> render(const std::vector<Decision>& decisions) {
  std::vector<std::string> lines;
  for (const Decision& decision : decisions) lines.push_back(render(decision));
  return lines;
}

std::string describe(const std::vector<RuleError>& errors) {
  std::string text;
  for (const RuleError& error : errors) text += error.path + ": " + error.message + "\n";
  return text;
}

RuleSpec inbound_to_channel(std::string name, std::string device_topic, std::string channel,
                            std::string topic, std::string publisher) {
  RuleSpec rule;
  rule.name = std::move(name);
  rule.direction = Direction::inbound;
  rule.source.device_topic = std::move(device_topic);
  rule.target.channel = std::move(channel);
  rule.target.topic = std::move(topic);
  rule.target.publisher = std::move(publisher);
  return rule;
}

RuleSpec inbound_to_inbox(std::string name, std::string device_topic, std::string to,
                          std::string from) {
  RuleSpec rule;
  rule.name = std::move(name);
  rule.direction = Direction::inbound;
  rule.source.device_topic = std::move(device_topic);
  rule.target.inbox_to = std::move(to);
  rule.target.inbox_from = std::move(from);
  return rule;
}

RuleSpec outbound_from_channel(std::string name, std::string channel, std::string topic,
                               std::string publisher, std::string device_topic) {
  RuleSpec rule;
  rule.name = std::move(name);
  rule.direction = Direction::outbound;
  rule.source.channel = std::move(channel);
  rule.source.topic = std::move(topic);
  rule.source.publisher = std::move(publisher);
  rule.target.device_topic = std::move(device_topic);
  return rule;
}

RuleSpec outbound_from_inbox(std::string name, std::string to, std::string from,
                             std::string device_topic) {
  RuleSpec rule;
  rule.name = std::move(name);
  rule.direction = Direction::outbound;
  rule.source.inbox_to = std::move(to);
  rule.source.inbox_from = std::move(from);
  rule.target.device_topic = std::move(device_topic);
  return rule;
}

RuleSpec with_envelope(RuleSpec rule, std::vector<EnvelopeField> fields) {
  rule.transform.kind = TransformKind::envelope;
  rule.transform.fields = std::move(fields);
  return rule;
}

RuleSpec with_extract(RuleSpec rule, std::string pointer) {
  rule.transform.kind = TransformKind::extract;
  rule.transform.pointer = std::move(pointer);
  return rule;
}

PresenceRuleSpec presence_rule(std::string name, std::string source, std::string uid) {
  PresenceRuleSpec rule;
  rule.name = std::move(name);
  rule.source = std::move(source);
  rule.uid = std::move(uid);
  return rule;
}

RuleSet compile_ok(const std::vector<RuleSpec>& rules,
                   const std::vector<PresenceRuleSpec>& presence = {},
                   const std::string& prefix = "rtm") {
  auto compiled = RuleSet::compile(rules, presence, prefix, kReserved);
  if (!compiled) FAIL("unexpected errors:\n" << describe(compiled.error()));
  return std::move(compiled).value();
}

std::vector<RuleError> compile_errors(const std::vector<RuleSpec>& rules,
                                      const std::vector<PresenceRuleSpec>& presence = {},
                                      const std::string& prefix = "rtm",
                                      const std::vector<std::string>& reserved = kReserved) {
  auto compiled = RuleSet::compile(rules, presence, prefix, reserved);
  if (compiled) return {};
  return compiled.error();
}

// The coplay scenario of the brief: controller input in, host state out.
std::vector<RuleSpec> coplay_rules() {
  RuleSpec input = inbound_to_channel("controller-input", "coplay/{room}/{player}/input", "{room}",
                                      "input", "{player}");
  RuleSpec state =
      outbound_from_channel("host-state", "{room}", "state", "+", "coplay/{room}/state");
  state.qos = 1;
  state.retain = true;
  return {input, state};
}

}  // namespace

TEST_CASE("coplay rules carry controller input in and host state out") {
  const RuleSet rules = compile_ok(coplay_rules());
  struct Case {
    std::string topic;
    std::string payload;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"coplay/room-42/p2/input", "frame-1", {"publish rtm/ch/room-42/input/p2 \"frame-1\""}},
      {"coplay/room-7/host/input", "", {"publish rtm/ch/room-7/input/host \"\""}},
      {"rtm/ch/room-42/state/alice",
       "{\"hp\":3}",
       {"publish coplay/room-42/state \"{\"hp\":3}\" qos1 retain"}},
      {"rtm/ch/room-42/input/p2", "x", {}},  // the rules' own output is not read again
      {"coplay/room-42/p2/input/extra", "x", {}},
      {"coplay/room-42/input", "x", {}},
      {"other/room-42/p2/input", "x", {}},
      {"rtm/ch/room-42/state", "x", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CHECK(render(rules.route(c.topic, c.payload, kNow)) == c.expected);
  }
  CHECK(rules.subscriptions() == std::vector<std::string>{"coplay/+/+/input", "rtm/ch/+/state/+"});
  CHECK_FALSE(rules.empty());
}

TEST_CASE("inbound channel decisions name the channel, topic and publisher") {
  const RuleSet rules = compile_ok(coplay_rules());
  const auto decisions = rules.route("coplay/room-42/p2/input", "x", kNow);
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].rule == "controller-input");
  CHECK(decisions[0].channel == "room-42");
  CHECK(decisions[0].topic_name == "input");
  CHECK(decisions[0].publisher == "p2");
  CHECK(decisions[0].qos == 0);
  CHECK_FALSE(decisions[0].retain);

  const auto outbound = rules.route("rtm/ch/room-42/state/alice", "s", kNow);
  REQUIRE(outbound.size() == 1);
  CHECK(outbound[0].channel.empty());
  CHECK(outbound[0].publisher.empty());
}

TEST_CASE("names in targets may mix text and captures") {
  const RuleSet rules = compile_ok(
      {inbound_to_channel("mixed", "plant/{site}/{sensor}/value", "plant-{site}", "values",
                          "sensor-{sensor}"),
       outbound_from_channel("commands", "{site}", "cmd", "{who}", "plant-cmd/{site}/from-{who}")});
  struct Case {
    std::string topic;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"plant/a/t1/value", {"publish rtm/ch/plant-a/values/sensor-t1 \"v\""}},
      {"rtm/ch/b/cmd/op", {"publish plant-cmd/b/from-op \"v\""}},
      {"rtm/ch/b/other/op", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CHECK(render(rules.route(c.topic, "v", kNow)) == c.expected);
  }
}

TEST_CASE("inbox targets in both directions") {
  // An outbound rule reading every inbox would read the alarms too: a loop. So the
  // outbound rules read the inboxes of given devices.
  const RuleSet rules = compile_ok(
      {inbound_to_inbox("alarm-to-ops", "alarms/{device}", "ops", "{device}"),
       outbound_from_inbox("boiler-inbox", "boiler-2", "{from}", "devices/boiler-2/rx/{from}"),
       outbound_from_inbox("panel-all", "panel-1", "+", "panel/1/all"),
       outbound_from_inbox("panel-bob", "panel-1", "bob", "panel/1/bob")});
  struct Case {
    std::string topic;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"alarms/boiler-2", {"publish rtm/u/ops/inbox/boiler-2 \"m\""}},
      {"rtm/u/boiler-2/inbox/alice", {"publish devices/boiler-2/rx/alice \"m\""}},
      {"rtm/u/panel-1/inbox/bob", {"publish panel/1/all \"m\"", "publish panel/1/bob \"m\""}},
      {"rtm/u/panel-1/inbox/carol", {"publish panel/1/all \"m\""}},
      {"rtm/u/ops/inbox/boiler-2", {}},
      {"rtm/u/boiler-2/res/join", {}},
      {"rtm/u/boiler-2/inbox", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CHECK(render(rules.route(c.topic, "m", kNow)) == c.expected);
  }
  CHECK(rules.subscriptions() ==
        std::vector<std::string>{"alarms/+", "rtm/u/boiler-2/inbox/+", "rtm/u/panel-1/inbox/+"});
}

TEST_CASE("factory envelope wraps captures, timestamp and payload JSON") {
  const RuleSet rules = compile_ok(
      {with_envelope(
           inbound_to_channel("factory-temp", "factory/{line}/temp", "factory", "temp", "{line}"),
           {{"line", "{line}"}, {"ts", "{timestamp}"}, {"value", "{payload_json}"}}),
       with_extract(inbound_to_channel("factory-reading", "factory/{line}/reading", "factory",
                                       "reading", "{line}"),
                    "/temp")});
  struct Case {
    std::string topic;
    std::string payload;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"factory/line-3/temp",
       "{\"temp\": 21.5}",
       {"publish rtm/ch/factory/temp/line-3 "
        "\"{\"line\":\"line-3\",\"ts\":1700000000123,\"value\":{\"temp\":21.5}}\""}},
      {"factory/line-3/temp",
       " 42 ",
       {"publish rtm/ch/factory/temp/line-3 "
        "\"{\"line\":\"line-3\",\"ts\":1700000000123,\"value\":42}\""}},
      {"factory/line-3/reading",
       "{\"temp\": 21.5, \"unit\": \"C\"}",
       {"publish rtm/ch/factory/reading/line-3 \"21.5\""}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CAPTURE(c.payload);
    CHECK(render(rules.route(c.topic, c.payload, kNow)) == c.expected);
  }
}

TEST_CASE("envelope fields give strings, numbers, base64 and JSON in spec order") {
  struct Case {
    std::string value;  // the one field's template
    std::string payload;
    std::string expected;  // the envelope
  };
  const std::vector<Case> cases = {
      {"{payload}", "hello \"you\"", "{\"f\":\"hello \\\"you\\\"\"}"},
      {"{payload}", std::string("a\0b", 3), "{\"f\":\"a\\u0000b\"}"},
      {"{payload}", "gr\xC3\xBC\xC3\x9F", "{\"f\":\"gr\xC3\xBC\xC3\x9F\"}"},
      {"{payload_base64}", "", "{\"f\":\"\"}"},
      {"{payload_base64}", "f", "{\"f\":\"Zg==\"}"},
      {"{payload_base64}", "fo", "{\"f\":\"Zm8=\"}"},
      {"{payload_base64}", "foo", "{\"f\":\"Zm9v\"}"},
      {"{payload_base64}", "foobar", "{\"f\":\"Zm9vYmFy\"}"},
      {"{payload_base64}", std::string("\x00\xff\xfe\x80", 4), "{\"f\":\"AP/+gA==\"}"},
      {"{payload_json}", "[1, {\"a\": null}, \"s\"]", "{\"f\":[1,{\"a\":null},\"s\"]}"},
      {"{topic}", "x", "{\"f\":\"dev/d1/out\"}"},
      {"{timestamp}", "x", "{\"f\":1700000000123}"},
      {"device {id} says", "x", "{\"f\":\"device d1 says\"}"},
      {"", "x", "{\"f\":\"\"}"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.value);
    CAPTURE(show(c.payload));
    const RuleSet rules = compile_ok({with_envelope(
        inbound_to_channel("dev", "dev/{id}/out", "devices", "out", "{id}"), {{"f", c.value}})});
    const auto decisions = rules.route("dev/d1/out", c.payload, kNow);
    REQUIRE(decisions.size() == 1);
    CHECK(render(decisions[0]) == "publish rtm/ch/devices/out/d1 " + show(c.expected));
  }

  const RuleSet ordered = compile_ok({with_envelope(
      inbound_to_channel("dev", "dev/{id}/out", "devices", "out", "{id}"),
      {{"z", "{id}"}, {"a", "{timestamp}"}, {"m", "{payload_base64}"}, {"b", "const"}})});
  const auto decisions = ordered.route("dev/d1/out", "hi", kNow);
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].payload ==
        "{\"z\":\"d1\",\"a\":1700000000123,\"m\":\"aGk=\",\"b\":\"const\"}");
}

TEST_CASE("extract takes the value at a JSON pointer") {
  struct Case {
    std::string pointer;
    std::string payload;
    std::string expected;
  };
  const std::string doc =
      "{\"temp\": 21.5, \"name\": \"b\\u00fcro \\\"2\\\"\", \"buttons\": [true, false], "
      "\"nested\": {\"a\": [1, 2]}, \"a/b\": 1, \"m~n\": 2, \"nul\": null, \"big\": "
      "12345678901234}";
  const std::vector<Case> cases = {
      {"/temp", doc, "21.5"},
      {"/name", doc, "b\xC3\xBCro \"2\""},  // a string gives its raw text
      {"/buttons/0", doc, "true"},
      {"/buttons", doc, "[true,false]"},
      {"/nested", doc, "{\"a\":[1,2]}"},
      {"/a~1b", doc, "1"},
      {"/m~0n", doc, "2"},
      {"/nul", doc, "null"},
      {"/big", doc, "12345678901234"},
      {"/0", "[\"first\"]", "first"},
      {"/s", "{\"s\": \"with\\u0000nul\"}", std::string("with\0nul", 8)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pointer);
    const RuleSet rules = compile_ok(
        {with_extract(inbound_to_channel("x", "dev/{id}", "devices", "v", "{id}"), c.pointer)});
    const auto decisions = rules.route("dev/d1", c.payload, kNow);
    REQUIRE(decisions.size() == 1);
    CHECK(render(decisions[0]) == "publish rtm/ch/devices/v/d1 " + show(c.expected));
  }
}

TEST_CASE("pass-through is binary safe") {
  const RuleSet rules = compile_ok(coplay_rules());
  std::string payload;
  for (int i = 0; i < 256; ++i) payload.push_back(static_cast<char>(i));
  payload += std::string("\0\0\0", 3);
  const auto decisions = rules.route("coplay/r/p/input", payload, kNow);
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].payload.size() == payload.size());
  CHECK(decisions[0].payload == payload);
}

TEST_CASE("a message a rule cannot carry is dropped with a precise reason") {
  const std::vector<RuleSpec> rules = {
      inbound_to_channel("controller-input", "coplay/{room}/{player}/input", "{room}", "input",
                         "{player}"),
      with_envelope(inbound_to_channel("raw", "raw/{id}", "raw", "in", "dev-{id}"),
                    {{"text", "{payload}"}, {"topic", "{topic}"}}),
      with_envelope(inbound_to_channel("json", "json/{id}", "json", "in", "{id}"),
                    {{"v", "{payload_json}"}}),
      with_extract(inbound_to_channel("extract", "extract/{id}", "ex", "in", "{id}"), "/temp"),
      outbound_from_channel("out", "{room}", "state", "+", "out/{room}/state"),
      inbound_to_inbox("inbox", "mail/{to}/{from}", "{to}", "{from}"),
  };
  const RuleSet set = compile_ok(rules);
  struct Case {
    std::string topic;
    std::string payload;
    std::string reason;  // the whole reason, or a part of it when `partial`
    bool partial = false;
  };
  const std::vector<Case> cases = {
      {"coplay/room-42/p 2/input", "x",
       "rule \"controller-input\": capture {player} = \"p 2\" is not a legal publisher name: "
       "publisher contains a space at byte 1"},
      {"coplay/room$/p2/input", "x",
       "rule \"controller-input\": capture {room} = \"room$\" is not a legal channel name: "
       "channel contains '$' at byte 4"},
      {"coplay//p2/input", "x",
       "rule \"controller-input\": capture {room} = \"\" is not a legal channel name: channel "
       "must be 1-64 bytes, got 0"},
      {"coplay/" + std::string(65, 'r') + "/p2/input", "x",
       "is not a legal channel name: channel must be 1-64 bytes, got 65", true},
      {"coplay/r\xC3\xBC/p2/input", "x",
       "rule \"controller-input\": capture {room} = \"r\\xc3\\xbc\" is not a legal channel name: "
       "channel contains non-ASCII byte 0xc3 at byte 1 (names are printable ASCII)"},
      // Each part is a legal name but together they are too long.
      {"raw/" + std::string(61, 'd'), "x", "rule \"raw\": publisher \"dev-ddd", true},
      {"raw/d1", "caf\xC3",
       "rule \"raw\": payload is not valid UTF-8 at byte 3, so it cannot be the string field "
       "\"text\" (use {payload_base64} for binary payloads)"},
      {"json/d1", "{\"temp\":", "rule \"json\": payload is not valid JSON: ", true},
      {"json/d1", "", "rule \"json\": payload is not valid JSON: ", true},
      {"json/d1", "{} {}", "rule \"json\": payload is not valid JSON: ", true},
      {"json/d1", std::string("{}\0junk", 7),
       "rule \"json\": payload is not valid JSON: NUL byte at byte 2"},
      {"json/d1", "\"\xff\"", "rule \"json\": payload is not valid JSON: ", true},
      {"json/d1", std::string(200, '[') + std::string(200, ']'),
       "rule \"json\": payload JSON is nested deeper than 128 levels"},
      // Beyond a double's range: the parser takes some as infinity, which no JSON can carry.
      {"json/d1", "{\"a\": [2, 2.5e309, null]}",
       "rule \"json\": payload is not valid JSON: a number is beyond the range of a double"},
      {"json/d1", "{\"a\": 1.7976931348623159e308}",
       "rule \"json\": payload is not valid JSON: a number is beyond the range of a double"},
      {"extract/d1", "{\"pressure\": 1}",
       "rule \"extract\": payload has no value at JSON pointer /temp"},
      {"extract/d1", "[1,2]", "rule \"extract\": payload has no value at JSON pointer /temp"},
      {"extract/d1", "not json", "rule \"extract\": payload is not valid JSON: ", true},
      {"mail/bob/al ice", "x",
       "rule \"inbox\": capture {from} = \"al ice\" is not a legal uid name: uid contains a "
       "space at byte 2"},
      {"rtm/ch/room\xFF/state/host", "x",
       "rule \"out\": target topic \"out/room\\xff/state\" is not a valid topic name: topic "
       "name is not valid UTF-8 at byte 8"},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.topic));
    CAPTURE(show(c.payload));
    const auto decisions = set.route(c.topic, c.payload, kNow);
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0].kind == Decision::Kind::drop);
    CHECK_FALSE(decisions[0].rule.empty());
    CHECK(decisions[0].payload.empty());
    if (c.partial) {
      CHECK_MESSAGE(decisions[0].reason.find(c.reason) != std::string::npos, decisions[0].reason);
    } else {
      CHECK(decisions[0].reason == c.reason);
    }
  }
}

TEST_CASE("presence rules turn a device status into online and offline") {
  PresenceRuleSpec custom = presence_rule("gate-status", "gates/{gate}/will", "gate-{gate}");
  custom.online_payload = "{\"up\":true}";
  custom.offline_payload = "";
  const RuleSet rules = compile_ok(
      {}, {presence_rule("device-status", "factory/{device}/status", "{device}"), custom});
  struct Case {
    std::string topic;
    std::string payload;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"factory/press-1/status", "online", {"presence press-1 online"}},
      {"factory/press-1/status", "offline", {"presence press-1 offline"}},
      {"factory/press-1/status",
       "ONLINE",
       {"drop rule \"device-status\": payload \"ONLINE\" is neither the online payload "
        "\"online\" nor the offline payload \"offline\""}},
      {"factory/press 1/status",
       "online",
       {"drop rule \"device-status\": capture {device} = \"press 1\" is not a legal uid name: "
        "uid contains a space at byte 5"}},
      {"gates/g7/will", "{\"up\":true}", {"presence gate-g7 online"}},
      {"gates/g7/will", "", {"presence gate-g7 offline"}},
      {"factory/press-1/other", "online", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CAPTURE(c.payload);
    CHECK(render(rules.route(c.topic, c.payload, kNow)) == c.expected);
  }
  const auto decisions = rules.route("factory/press-1/status", "online", kNow);
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].rule == "device-status");
  CHECK(decisions[0].uid == "press-1");
}

TEST_CASE("one message can match several rules, decided in rule order") {
  const RuleSet rules = compile_ok(
      {inbound_to_channel("all-status", "+/{device}/status", "status", "all", "{device}"),
       inbound_to_channel("factory-status", "factory/{device}/status", "factory", "status",
                          "{device}")},
      {presence_rule("presence", "factory/{device}/status", "{device}")});
  CHECK(render(rules.route("factory/press-1/status", "online", kNow)) ==
        std::vector<std::string>{"publish rtm/ch/status/all/press-1 \"online\"",
                                 "publish rtm/ch/factory/status/press-1 \"online\"",
                                 "presence press-1 online"});
  CHECK(render(rules.route("garage/door/status", "x", kNow)) ==
        std::vector<std::string>{"publish rtm/ch/status/all/door \"x\""});
  // MQTT's rule: a pattern starting with a wildcard does not match '$' topics.
  CHECK(rules.route("$SYS/door/status", "x", kNow).empty());
  CHECK(rules.subscriptions() == std::vector<std::string>{"+/+/status"});
}

TEST_CASE("wildcards in sources: plus, hash and the parent level") {
  const RuleSet rules =
      compile_ok({inbound_to_channel("tree", "tree/{branch}/#", "trees", "{branch}", "gw"),
                  inbound_to_channel("plus", "plus/+/{leaf}", "plus", "{leaf}", "gw")});
  struct Case {
    std::string topic;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"tree/oak", {"publish rtm/ch/trees/oak/gw \"p\""}},
      {"tree/oak/a/b/c", {"publish rtm/ch/trees/oak/gw \"p\""}},
      {"tree", {}},
      {"plus/x/leaf-1", {"publish rtm/ch/plus/leaf-1/gw \"p\""}},
      {"plus/x", {}},
      {"plus/x/y/z", {}},
      {"", {}},
      {"/", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CHECK(render(rules.route(c.topic, "p", kNow)) == c.expected);
  }
}

TEST_CASE("compile errors name the key path") {
  struct Case {
    std::string description;
    std::vector<RuleSpec> rules;
    std::vector<PresenceRuleSpec> presence;
    std::vector<std::string> expected;  // "path: message"
  };
  const RuleSpec good = inbound_to_channel("good", "dev/{id}/out", "devices", "out", "{id}");
  auto renamed = [](RuleSpec rule, std::string name) {
    rule.name = std::move(name);
    return rule;
  };
  RuleSpec qos_two = good;
  qos_two.qos = 2;
  RuleSpec qos_negative = good;
  qos_negative.qos = -1;
  RuleSpec inbound_with_device_target = good;
  inbound_with_device_target.target.device_topic = "x/y";
  RuleSpec inbound_with_channel_source = good;
  inbound_with_channel_source.source.channel = "room";
  RuleSpec outbound_with_device_source = outbound_from_channel("o", "c", "t", "+", "o/t");
  outbound_with_device_source.source.device_topic = "dev/x";
  RuleSpec outbound_with_channel_target = outbound_from_channel("o", "c", "t", "+", "o/t");
  outbound_with_channel_target.target.channel = "c2";
  RuleSpec outbound_empty_source = outbound_from_channel("o", "", "", "", "o/t");
  RuleSpec outbound_both_sources = outbound_from_channel("o", "c", "t", "+", "o/t");
  outbound_both_sources.source.inbox_to = "bob";
  RuleSpec inbound_both_targets = good;
  inbound_both_targets.target.inbox_to = "bob";
  RuleSpec inbound_no_target = good;
  inbound_no_target.target = {};
  RuleSpec pass_with_fields = good;
  pass_with_fields.transform.fields = {{"a", "b"}};
  RuleSpec envelope_with_pointer = with_envelope(good, {{"a", "b"}});
  envelope_with_pointer.transform.pointer = "/a";
  std::vector<RuleSpec> seventeen_captures(1, good);
  {
    std::string pattern = "many";
    for (int i = 0; i < 17; ++i) pattern += "/{c" + std::to_string(i) + "}";
    seventeen_captures[0].source.device_topic = pattern;
  }

  const std::vector<Case> cases = {
      {"empty name",
       {renamed(good, "")},
       {},
       {"rules[0].name: is empty: every rule needs a unique name"}},
      {"illegal name",
       {renamed(good, "my rule")},
       {},
       {"rules[0].name: rule name contains a space at byte 2"}},
      {"duplicate name",
       {good, renamed(outbound_from_channel("x", "c", "t", "+", "o/t"), "good")},
       {presence_rule("good", "s/{d}", "{d}")},
       {"rules[1].name: \"good\" is already the name of rules[0]",
        "presence[0].name: \"good\" is already the name of rules[0]"}},
      {"qos 2", {qos_two}, {}, {"rules[0].qos: must be 0 or 1, got 2"}},
      {"qos -1", {qos_negative}, {}, {"rules[0].qos: must be 0 or 1, got -1"}},
      {"empty source",
       {inbound_to_channel("r", "", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: is empty"}},
      {"capture not a whole level",
       {inbound_to_channel("r", "dev/a{x}/out", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: a capture must fill a whole level, not \"a{x}\" at byte 4"}},
      {"hash not last",
       {inbound_to_channel("r", "dev/#/out", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: '#' at byte 4 must be the last level"}},
      {"plus inside a level",
       {inbound_to_channel("r", "dev/a+/out", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: '+' at byte 5 must fill a whole level"}},
      {"bad capture name",
       {inbound_to_channel("r", "dev/{1x}/out", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: capture {1x} at byte 4 has an invalid name (letters, "
        "digits and '_', not starting with a digit)"}},
      {"stray brace",
       {inbound_to_channel("r", "dev/{id/out", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: level \"{id\" at byte 4 has a '{' or '}' that is not "
        "part of a {capture}"}},
      {"capture twice",
       {inbound_to_channel("r", "dev/{id}/{id}", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: capture {id} appears twice"}},
      {"reserved capture name",
       {inbound_to_channel("r", "dev/{topic}", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: capture {topic} uses a name reserved for envelope "
        "fields; choose another"}},
      {"too many captures",
       seventeen_captures,
       {},
       {"rules[0].source.device_topic: has more than 16 captures"}},
      {"invalid UTF-8 in a source",
       {inbound_to_channel("r", "dev/\xC3", "c", "t", "p")},
       {},
       {"rules[0].source.device_topic: is not valid UTF-8 at byte 4"}},
      {"target uses an unknown capture",
       {inbound_to_channel("r", "dev/{id}", "c", "t", "{who}")},
       {},
       {"rules[0].target.publisher: uses {who}, which the source does not capture (it has "
        "{id})"}},
      {"target literal not a name",
       {inbound_to_channel("r", "dev/{id}", "room 7", "t", "{id}")},
       {},
       {"rules[0].target.channel: is not a legal channel name: channel contains a space at byte "
        "4"}},
      {"target text not part of a name",
       {inbound_to_channel("r", "dev/{id}", "c", "t", "dev/{id}")},
       {},
       {"rules[0].target.publisher: text \"dev/\" cannot be part of a publisher name: publisher "
        "contains '/' at byte 3"}},
      {"target always too long",
       {inbound_to_channel("r", "dev/{id}", "c", "t", std::string(64, 'x') + "{id}")},
       {},
       {"rules[0].target.publisher: always gives more than 64 bytes, the publisher name limit"}},
      {"target with a stray brace",
       {inbound_to_channel("r", "dev/{id}", "c", "t", "{id")},
       {},
       {"rules[0].target.publisher: has a '{' without a '}' at byte 0"}},
      {"target missing a part",
       {inbound_to_channel("r", "dev/{id}", "c", "t", "")},
       {},
       {"rules[0].target.publisher: is empty: a channel target needs channel, topic and "
        "publisher"}},
      {"inbox target missing a part",
       {inbound_to_inbox("r", "dev/{id}", "", "{id}")},
       {},
       {"rules[0].target.inbox_to: is empty: an inbox target needs inbox_to and inbox_from"}},
      {"device target with a wildcard",
       {outbound_from_channel("o", "{room}", "state", "+", "out/{room}/+")},
       {},
       {"rules[0].target.device_topic: text \"/+\" has a wildcard or NUL: a target is a topic "
        "name, not a filter"}},
      {"device target with a dollar",
       {outbound_from_channel("o", "c", "t", "+", "$SYS/x")},
       {},
       {"rules[0].target.device_topic: starts with '$', which brokers reserve for their own "
        "topics"}},
      {"device target empty",
       {outbound_from_channel("o", "c", "t", "+", "")},
       {},
       {"rules[0].target.device_topic: is empty: an outbound rule needs a device topic"}},
      {"inbound rule with a device target",
       {inbound_with_device_target},
       {},
       {"rules[0].target.device_topic: is for outbound rules; an inbound rule targets a "
        "channel (channel, topic, publisher) or an inbox (inbox_to, inbox_from)"}},
      {"inbound rule with a channel source",
       {inbound_with_channel_source},
       {},
       {"rules[0].source.channel: is for outbound rules; an inbound rule reads "
        "source.device_topic"}},
      {"outbound rule with a device source",
       {outbound_with_device_source},
       {},
       {"rules[0].source.device_topic: is for inbound rules; an outbound rule reads a channel "
        "topic (channel, topic, publisher) or an inbox (inbox_to, inbox_from)"}},
      {"outbound rule with a channel target",
       {outbound_with_channel_target},
       {},
       {"rules[0].target.channel: is for inbound rules; an outbound rule targets "
        "target.device_topic"}},
      {"outbound rule without a source",
       {outbound_empty_source},
       {},
       {"rules[0].source: is empty: an outbound rule reads a channel topic (channel, topic, "
        "publisher) or an inbox (inbox_to, inbox_from)"}},
      {"outbound rule with two sources",
       {outbound_both_sources},
       {},
       {"rules[0].source: names both a channel topic and an inbox; an outbound rule reads one"}},
      {"inbound rule with two targets",
       {inbound_both_targets},
       {},
       {"rules[0].target: names both a channel and an inbox; a rule has one target"}},
      {"inbound rule without a target",
       {inbound_no_target},
       {},
       {"rules[0].target: is empty: an inbound rule targets a channel (channel, topic, "
        "publisher) or an inbox (inbox_to, inbox_from)"}},
      {"outbound source part mixes text and a capture",
       {outbound_from_channel("o", "room-{x}", "t", "+", "o/t")},
       {},
       {"rules[0].source.channel: a capture must be the whole channel, not \"room-{x}\""}},
      {"outbound source part with a hash",
       {outbound_from_channel("o", "c", "t", "#", "o/t")},
       {},
       {"rules[0].source.publisher: is not a publisher name, a {capture} or \"+\": publisher "
        "contains '#' at byte 0"}},
      {"outbound source part empty",
       {outbound_from_channel("o", "c", "", "+", "o/t")},
       {},
       {"rules[0].source.topic: is empty (use a topic name, a {capture} or \"+\")"}},
      {"outbound source capture twice",
       {outbound_from_inbox("o", "{who}", "{who}", "o/{who}")},
       {},
       {"rules[0].source.inbox_from: capture {who} appears twice"}},
      {"pointer without a slash",
       {with_extract(good, "temp")},
       {},
       {"rules[0].transform.pointer: \"temp\" is not a JSON pointer: it must start with '/'"}},
      {"pointer with a bad escape",
       {with_extract(good, "/a~2")},
       {},
       {"rules[0].transform.pointer: \"/a~2\" is not a valid JSON pointer (RFC 6901) at byte 3: "
        "'~' must be followed by 0 or 1"}},
      {"extract without a pointer",
       {with_extract(good, "")},
       {},
       {"rules[0].transform.pointer: is empty: an extract transform needs a JSON pointer"}},
      {"pointer on another transform",
       {envelope_with_pointer},
       {},
       {"rules[0].transform.pointer: only an extract transform has a pointer"}},
      {"fields on a pass-through",
       {pass_with_fields},
       {},
       {"rules[0].transform.fields: only an envelope transform has fields"}},
      {"envelope without fields",
       {with_envelope(good, {})},
       {},
       {"rules[0].transform.fields: is empty: an envelope needs at least one field"}},
      {"unknown special",
       {with_envelope(good, {{"t", "{time}"}})},
       {},
       {"rules[0].transform.fields[0].value: uses {time}, which the source does not capture (it "
        "has {id}); the special values are {timestamp}, {payload}, {payload_base64}, "
        "{payload_json}, {topic}"}},
      {"special inside text",
       {with_envelope(good, {{"t", "at {timestamp}"}})},
       {},
       {"rules[0].transform.fields[0].value: {timestamp} must be the whole value, not part of "
        "\"at {timestamp}\""}},
      {"duplicate and empty field names",
       {with_envelope(good, {{"a", "1"}, {"a", "2"}, {"", "3"}})},
       {},
       {"rules[0].transform.fields[1].name: \"a\" is already the name of "
        "rules[0].transform.fields[0]",
        "rules[0].transform.fields[2].name: is empty"}},
      {"presence without uid",
       {},
       {presence_rule("p", "dev/{id}/status", "")},
       {"presence[0].uid: is empty: a presence rule needs the uid of the device"}},
      {"presence uid with an unknown capture",
       {},
       {presence_rule("p", "dev/{id}/status", "{x}")},
       {"presence[0].uid: uses {x}, which the source does not capture (it has {id})"}},
      {"presence uid literal not a name",
       {},
       {presence_rule("p", "dev/status", "a b")},
       {"presence[0].uid: is not a legal uid name: uid contains a space at byte 1"}},
      {"presence bad source",
       {},
       {presence_rule("p", "dev/#/status", "x")},
       {"presence[0].source: '#' at byte 4 must be the last level"}},
      {"presence payloads equal",
       {},
       {[] {
         PresenceRuleSpec same = presence_rule("p", "dev/{id}/status", "{id}");
         same.offline_payload = "online";
         return same;
       }()},
       {"presence[0].offline_payload: equals online_payload \"online\": the two states must "
        "differ"}},
      {"several broken rules are all reported",
       {inbound_to_channel("a", "x/{y", "c", "t", "p"), good,
        inbound_to_channel("b", "z/{id}", "c", "t", "{nope}"), renamed(qos_two, "c")},
       {},
       {"rules[0].source.device_topic: level \"{y\" at byte 2 has a '{' or '}' that is not part "
        "of a {capture}",
        "rules[2].target.publisher: uses {nope}, which the source does not capture (it has {id})",
        "rules[3].qos: must be 0 or 1, got 2"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    const auto errors = compile_errors(c.rules, c.presence);
    std::vector<std::string> lines;
    for (const RuleError& error : errors) lines.push_back(error.path + ": " + error.message);
    CHECK(lines == c.expected);
  }
}

TEST_CASE("the prefix and reserved filters are checked") {
  struct Case {
    std::string prefix;
    std::vector<std::string> reserved;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"", {}, "prefix: prefix is empty"},
      {"a/+",
       {},
       "prefix: prefix is not a valid topic: topic name contains '+' at byte 2 "
       "(wildcards are only allowed in filters)"},
      {"rtm",
       {"rtm/req/#/x"},
       "reserved_filters[0]: topic filter has '#' at byte 8 that is not the last level"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.prefix);
    const auto errors = compile_errors(coplay_rules(), {}, c.prefix, c.reserved);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path + ": " + errors[0].message == c.expected);
  }
}

TEST_CASE("a prefix of several levels builds sources and targets") {
  const RuleSet rules = compile_ok(coplay_rules(), {}, "acme/rtm");
  CHECK(render(rules.route("coplay/r1/p2/input", "x", kNow)) ==
        std::vector<std::string>{"publish acme/rtm/ch/r1/input/p2 \"x\""});
  CHECK(render(rules.route("acme/rtm/ch/r1/state/host", "s", kNow)) ==
        std::vector<std::string>{"publish coplay/r1/state \"s\" qos1 retain"});
  CHECK(rules.route("rtm/ch/r1/state/host", "s", kNow).empty());
}

TEST_CASE("rule sets whose outputs feed their inputs are refused") {
  struct Case {
    std::string description;
    std::vector<RuleSpec> rules;
    std::vector<PresenceRuleSpec> presence;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"two rules feed each other",
       {inbound_to_channel("controller-input", "coplay/{room}/{player}", "{room}", "input",
                           "{player}"),
        outbound_from_channel("host-state", "{room}", "state", "+", "coplay/{room}/state")},
       {},
       {"rules[1].target: output \"coplay/+/state\" can match the source of rule "
        "\"controller-input\" (rules[0].source): that would loop"}},
      {"a rule feeds itself",
       {outbound_from_channel("echo", "{room}", "{topic_}", "{who}", "rtm/ch/{room}/{topic_}/gw")},
       {},
       {"rules[0].target: output \"rtm/ch/+/+/gw\" can match the source of rule \"echo\" "
        "(rules[0].source): that would loop"}},
      {"an inbound rule whose source covers the tree",
       {inbound_to_channel("everything", "rtm/#", "all", "t", "gw")},
       {},
       {"rules[0].target: output \"rtm/ch/all/t/gw\" can match the source of rule "
        "\"everything\" (rules[0].source): that would loop"}},
      {"an output into the gateway's requests",
       {outbound_from_channel("sneaky", "c", "t", "{who}", "rtm/req/{who}/join")},
       {},
       {"rules[0].target: output \"rtm/req/+/join\" can match \"rtm/req/+/#\" "
        "(reserved_filters[0]), which the gateway reads itself: that would loop"}},
      {"an output into a presence rule",
       {outbound_from_channel("status", "c", "t", "{who}", "dev/{who}/status")},
       {presence_rule("dev-presence", "dev/{id}/status", "{id}")},
       {"rules[0].target: output \"dev/+/status\" can match the source of rule \"dev-presence\" "
        "(presence[0].source): that would loop"}},
      {"a hash source catches a mixed level",
       {inbound_to_channel("in", "plant/#", "plant", "in", "gw"),
        outbound_from_channel("out", "plant", "cmd", "{who}", "plant/cmd-{who}/x")},
       {},
       {"rules[1].target: output \"plant/+/x\" can match the source of rule \"in\" "
        "(rules[0].source): that would loop"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    const auto errors = compile_errors(c.rules, c.presence);
    std::vector<std::string> lines;
    for (const RuleError& error : errors) lines.push_back(error.path + ": " + error.message);
    CHECK(lines == c.expected);
  }
  // The coplay rules share the "coplay/" subtree and the channel, but not a topic.
  CHECK(compile_errors(coplay_rules()).empty());
}

TEST_CASE("filters_overlap decides whether one topic can match both filters") {
  struct Case {
    std::string a;
    std::string b;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a/b", "a/b/c", false},
      {"a/+", "a/b", true},
      {"a/+", "+/b", true},
      {"a/+", "b/+", false},
      {"+/+", "a/b/c", false},
      {"+", "a", true},
      {"+", "a/b", false},
      {"#", "a/b/c", true},
      {"#", "+", true},
      {"a/#", "a", true},
      {"a/#", "a/b/c", true},
      {"a/#", "b/c", false},
      {"a/b/#", "a/+", true},
      {"a/+/c", "a/b/#", true},
      {"a/+/c", "a/b/d", false},
      {"+/+/c", "a/#", true},
      {"coplay/+/state", "coplay/+/+/input", false},
      {"coplay/+/state", "coplay/+/+", true},
      {"a//b", "a/+/b", true},
      {"a//b", "a/x/b", false},
      {"a/", "a/+", true},
      {"a", "a/", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    CHECK(filters_overlap(c.a, c.b) == c.expected);
    CHECK(filters_overlap(c.b, c.a) == c.expected);  // symmetric
  }
}

TEST_CASE("subscriptions list each source filter once, without covered ones") {
  const RuleSet rules = compile_ok({inbound_to_channel("a", "dev/{id}/temp", "c", "temp", "{id}"),
                                    inbound_to_channel("b", "dev/{id}/temp", "c2", "temp", "{id}"),
                                    inbound_to_channel("c", "dev/+/#", "c3", "any", "gw"),
                                    inbound_to_channel("d", "other/x", "c", "x", "gw")},
                                   {presence_rule("p", "dev/{id}/status", "{id}")});
  CHECK(rules.subscriptions() == std::vector<std::string>{"dev/+/#", "other/x"});
}

TEST_CASE("an empty rule set routes nothing") {
  const RuleSet rules = compile_ok({});
  CHECK(rules.empty());
  CHECK(rules.subscriptions().empty());
  CHECK(rules.route("coplay/r/p/input", "x", kNow).empty());
  const RuleSet defaulted;
  CHECK(defaulted.empty());
  CHECK(defaulted.route("a", "x", kNow).empty());
}

TEST_CASE("EchoGuard recognises what was published until it expires") {
  EchoGuard guard(1000, 100);
  guard.published("rtm/ch/c/t/p", "payload", 0);
  CHECK(guard.size() == 1);
  CHECK_FALSE(guard.is_echo("rtm/ch/c/t/p", "other payload", 10));
  CHECK_FALSE(guard.is_echo("rtm/ch/c/t/q", "payload", 10));
  CHECK(guard.is_echo("rtm/ch/c/t/p", "payload", 10));
  CHECK(guard.size() == 0);
  CHECK_FALSE(guard.is_echo("rtm/ch/c/t/p", "payload", 20));  // forgotten once recognised

  guard.published("a", "x", 100);
  CHECK(guard.is_echo("a", "x", 1099));
  guard.published("a", "x", 100);
  CHECK_FALSE(guard.is_echo("a", "x", 1100));  // expired at publish time + ttl
  CHECK(guard.size() == 0);
}

TEST_CASE("EchoGuard counts repeated messages as a multiset") {
  EchoGuard guard(1000, 100);
  for (int i = 0; i < 3; ++i) guard.published("a", "x", i);
  guard.published("a", std::string("x\0", 2), 3);
  CHECK(guard.size() == 4);
  CHECK(guard.is_echo("a", "x", 10));
  CHECK(guard.is_echo("a", "x", 10));
  CHECK(guard.is_echo("a", std::string("x\0", 2), 10));
  CHECK(guard.is_echo("a", "x", 10));
  CHECK_FALSE(guard.is_echo("a", "x", 10));
  CHECK(guard.size() == 0);

  // Entries expire one by one, oldest first, even after some were recognised.
  guard.published("b", "y", 100);
  guard.published("b", "y", 200);
  guard.published("b", "y", 300);
  CHECK(guard.is_echo("b", "y", 150));  // forgets one entry
  CHECK(guard.size() == 2);
  CHECK(guard.is_echo("b", "y", 1150));  // the 100 one is gone (forgotten), 200 and 300 live
  CHECK(guard.is_echo("b", "y", 1250));
  CHECK_FALSE(guard.is_echo("b", "y", 1300));
}

TEST_CASE("EchoGuard evicts the oldest entries beyond its maximum size") {
  EchoGuard guard(1000000, 3);
  for (int i = 0; i < 5; ++i) guard.published("t/" + std::to_string(i), "x", i);
  CHECK(guard.size() == 3);
  struct Case {
    std::string topic;
    bool echo;
  };
  const std::vector<Case> cases = {
      {"t/0", false}, {"t/1", false}, {"t/2", true}, {"t/3", true}, {"t/4", true}};
  for (const Case& c : cases) {
    CAPTURE(c.topic);
    CHECK(guard.is_echo(c.topic, "x", 10) == c.echo);
  }

  // Recognised entries do not let memory grow without bound either.
  EchoGuard busy(1000000, 2);
  for (int i = 0; i < 10000; ++i) {
    busy.published("t", std::to_string(i), i);
    CHECK(busy.is_echo("t", std::to_string(i), i));
  }
  CHECK(busy.size() == 0);

  EchoGuard disabled(1000, 0);
  disabled.published("t", "x", 0);
  CHECK(disabled.size() == 0);
  CHECK_FALSE(disabled.is_echo("t", "x", 0));
}

TEST_CASE("route never throws on random topics and payloads") {
  std::vector<RuleSpec> rules = coplay_rules();
  rules.push_back(
      with_envelope(inbound_to_channel("env", "factory/{line}/temp", "factory", "temp", "{line}"),
                    {{"line", "{line}"},
                     {"ts", "{timestamp}"},
                     {"json", "{payload_json}"},
                     {"text", "{payload}"},
                     {"raw", "{payload_base64}"},
                     {"topic", "{topic}"},
                     {"mixed", "line {line}"}}));
  rules.push_back(with_extract(
      inbound_to_channel("extract", "factory/{line}/json", "factory", "json", "{line}"), "/a/0"));
  rules.push_back(inbound_to_inbox("mail", "+/{to}/mail", "{to}", "mailer"));
  rules.push_back(outbound_from_inbox("out-inbox", "{to}", "app", "dev/{to}/app"));
  const RuleSet set =
      compile_ok(rules, {presence_rule("presence", "factory/{device}/status", "dev-{device}")});

  // Topics follow the rules' shapes ("*" a random level) or are random altogether.
  const std::vector<std::string> shapes = {"coplay/*/*/input", "factory/*/temp", "factory/*/json",
                                           "factory/*/status", "*/*/mail",       "rtm/ch/*/state/*",
                                           "rtm/u/*/inbox/app"};
  const std::vector<std::string> levels = {"coplay",
                                           "factory",
                                           "rtm",
                                           "ch",
                                           "u",
                                           "inbox",
                                           "input",
                                           "state",
                                           "temp",
                                           "json",
                                           "status",
                                           "mail",
                                           "app",
                                           "+",
                                           "#",
                                           "",
                                           "$SYS",
                                           "room 1",
                                           "p2",
                                           "a\xFF",
                                           "\xC3",
                                           "x{y}",
                                           "ok",
                                           "fine-1",
                                           std::string(70, 'l'),
                                           std::string("n\0l", 3)};
  const std::vector<std::string> whole_payloads = {"online",          "offline", "{\"a\":[1]}",
                                                   "{\"a\":[\"s\"]}", "[]",      "plain"};
  const std::vector<std::string> payload_parts = {
      "{",           "}",      "[",    "]",        "\"",
      "\\",          "a",      "1",    ",",        ":",
      "null",        "online", "\xFF", "\xC3\xA9", std::string(1, '\0'),
      "{\"a\":[1]}", " "};
  std::mt19937 random(12345);
  auto pick = [&](std::size_t size) {
    return std::uniform_int_distribution<std::size_t>(0, size - 1)(random);
  };
  std::size_t publishes = 0;
  std::size_t drops = 0;
  std::size_t presences = 0;
  std::size_t thrown = 0;
  std::size_t malformed = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string topic;
    if (pick(5) == 0) {
      const std::size_t level_count = 1 + pick(6);
      for (std::size_t k = 0; k < level_count; ++k) {
        if (k > 0) topic.push_back('/');
        topic += levels[pick(levels.size())];
      }
    } else {
      for (char c : shapes[pick(shapes.size())]) {
        if (c == '*') {
          topic += levels[pick(levels.size())];
        } else {
          topic.push_back(c);
        }
      }
    }
    std::string payload;
    if (pick(3) == 0) {
      payload = whole_payloads[pick(whole_payloads.size())];
    } else {
      const std::size_t part_count = pick(12);
      for (std::size_t k = 0; k < part_count; ++k) {
        payload += payload_parts[pick(payload_parts.size())];
      }
    }
    try {
      for (const Decision& decision : set.route(topic, payload, i)) {
        switch (decision.kind) {
          case Decision::Kind::publish:
            ++publishes;
            if (rtm::topics::topic_name_error(decision.topic)) ++malformed;
            if (!decision.channel.empty() && (!rtm::topics::is_valid_name(decision.channel) ||
                                              !rtm::topics::is_valid_name(decision.topic_name) ||
                                              !rtm::topics::is_valid_name(decision.publisher))) {
              ++malformed;
            }
            break;
          case Decision::Kind::drop:
            ++drops;
            if (decision.reason.rfind("rule \"", 0) != 0) ++malformed;
            break;
          case Decision::Kind::presence:
            ++presences;
            if (!rtm::topics::is_valid_name(decision.uid)) ++malformed;
            break;
        }
      }
    } catch (...) {
      ++thrown;
    }
  }
  MESSAGE("publishes " << publishes << ", drops " << drops << ", presences " << presences);
  CHECK(thrown == 0);
  CHECK(malformed == 0);
  // The generator reaches every kind of decision.
  CHECK(publishes > 100);
  CHECK(drops > 100);
  CHECK(presences > 10);
}

TEST_CASE("route: a payload passed unchanged can be left to the caller") {
  rtm::mapping::RuleSpec in;
  in.name = "in";
  in.source.device_topic = "dev/{id}/x";
  in.target.channel = "c";
  in.target.topic = "t";
  in.target.publisher = "{id}";
  rtm::mapping::RuleSpec wrapped = in;
  wrapped.name = "wrapped";
  wrapped.source.device_topic = "dev/{id}/y";
  wrapped.transform.kind = rtm::mapping::TransformKind::envelope;
  wrapped.transform.fields = {{"raw", "{payload}"}};
  auto rules = rtm::mapping::RuleSet::compile({in, wrapped}, {}, "rtm", {});
  REQUIRE(rules);
  auto copied = rules->route("dev/d1/x", "frame", 1);
  REQUIRE(copied.size() == 1);
  CHECK(copied[0].payload_unchanged);
  CHECK(copied[0].payload == "frame");
  auto left = rules->route("dev/d1/x", "frame", 1, rtm::mapping::PayloadCopy::unless_unchanged);
  REQUIRE(left.size() == 1);
  CHECK(left[0].payload_unchanged);
  CHECK(left[0].payload.empty());
  CHECK(left[0].topic == "rtm/ch/c/t/d1");
  auto changed = rules->route("dev/d1/y", "frame", 1, rtm::mapping::PayloadCopy::unless_unchanged);
  REQUIRE(changed.size() == 1);
  CHECK_FALSE(changed[0].payload_unchanged);
  CHECK(changed[0].payload == "{\"raw\":\"frame\"}");
}
