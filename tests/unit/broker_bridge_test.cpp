// The zero-hop bridge's contract without a broker: the records both sides exchange, read
// back as written and refused with the path of what is wrong; the plugin's book of device
// publishers, which holds a new device's messages until the gateway answers.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/broker_bridge/device_book.hpp"
#include "rtm/broker_bridge/records.hpp"

using namespace rtm;
using namespace rtm::broker_bridge;

namespace {

RulesRecord coplay_rules() {
  RulesRecord r;
  r.id = "";
  r.instance = "gw-1";
  r.prefix = "rtm";
  mapping::RuleSpec in;
  in.name = "controller-input";
  in.source.device_topic = "coplay/{room}/{player}/input";
  in.target.channel = "{room}";
  in.target.topic = "input";
  in.target.publisher = "{player}";
  in.qos = 1;
  in.retain = true;
  mapping::RuleSpec env;
  env.name = "temps";
  env.source.device_topic = "factory/{line}/temp";
  env.target.inbox_to = "operator";
  env.target.inbox_from = "{line}";
  env.transform.kind = mapping::TransformKind::envelope;
  env.transform.fields = {{"line", "{line}"}, {"at", "{timestamp}"}};
  mapping::RuleSpec out;
  out.name = "state";
  out.direction = mapping::Direction::outbound;
  out.source.channel = "{room}";
  out.source.topic = "state";
  out.source.publisher = "+";
  out.target.device_topic = "coplay/{room}/state";
  out.transform.kind = mapping::TransformKind::extract;
  out.transform.pointer = "/frame";
  r.rules = {in, env, out};
  r.presence = {{"status", "coplay/{room}/{player}/status", "{player}", "up", "down"}};
  r.id = rules_id(r.rules, r.presence);
  return r;
}

HeldMessage message(std::string payload) {
  return HeldMessage{"controller-input", "rtm/ch/room-1/input/p2", std::move(payload), 0, false};
}

}  // namespace

TEST_CASE("broker bridge records: a rule set reads back as written and compiles the same") {
  const auto sent = coplay_rules();
  auto got = decode_control(encode(sent));
  REQUIRE(got);
  REQUIRE(got->kind == Record::Kind::rules);
  const auto& r = got->rules;
  CHECK(r.id == sent.id);
  CHECK(r.instance == "gw-1");
  CHECK(r.prefix == "rtm");
  REQUIRE(r.rules.size() == 3);
  CHECK(rules_id(r.rules, r.presence) == sent.id);  // nothing lost or changed on the way
  CHECK(r.rules[0].qos == 1);
  CHECK(r.rules[0].retain);
  CHECK(r.rules[1].transform.kind == mapping::TransformKind::envelope);
  CHECK(r.rules[1].transform.fields[1].value == "{timestamp}");
  CHECK(r.rules[2].direction == mapping::Direction::outbound);
  CHECK(r.rules[2].transform.pointer == "/frame");
  CHECK(r.presence[0].offline_payload == "down");
  auto a = compile_rules(sent.rules, sent.presence, "rtm");
  auto b = compile_rules(r.rules, r.presence, "rtm");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->rule_names() == b->rule_names());
  const auto da = a->route("coplay/room-1/p2/input", "x", 1);
  const auto db = b->route("coplay/room-1/p2/input", "x", 1);
  REQUIRE(da.size() == 1);
  REQUIRE(db.size() == 1);
  CHECK(da[0].topic == db[0].topic);
  CHECK(db[0].topic == "rtm/ch/room-1/input/p2");
  CHECK(db[0].publisher == "p2");
}

TEST_CASE("broker bridge records: a different rule set has a different id") {
  auto a = coplay_rules();
  auto b = a;
  b.rules[0].qos = 0;
  CHECK(rules_id(a.rules, a.presence) != rules_id(b.rules, b.presence));
}

TEST_CASE("broker bridge records: devices, answers, hello and counters read back") {
  DevicesAnswer answer;
  answer.confirmed = {{"p2", "room-1", "input"}};
  answer.refused = {{{"host-a", "room-1", "input"}, "host-a is a logged-in user"}};
  answer.removed = {{"p3", "room-2", "input"}};
  auto got = decode_control(encode(answer));
  REQUIRE(got);
  REQUIRE(got->kind == Record::Kind::devices);
  CHECK(got->devices.confirmed == answer.confirmed);
  REQUIRE(got->devices.refused.size() == 1);
  CHECK(got->devices.refused[0].device == answer.refused[0].device);
  CHECK(got->devices.refused[0].reason == "host-a is a logged-in user");
  CHECK(got->devices.removed == answer.removed);

  auto hello = decode_plugin(encode_hello());
  REQUIRE(hello);
  CHECK(hello->kind == Record::Kind::hello);
  auto announce = decode_plugin(encode_announce({{"p2", "room-1", "input"}}));
  REQUIRE(announce);
  CHECK(announce->kind == Record::Kind::announce);
  CHECK(announce->announce == std::vector<DeviceKey>{{"p2", "room-1", "input"}});
  RulesAnswer refused{"abc", false, {{"rules[1].source", "loops into \"in\""}}};
  auto ans = decode_plugin(encode(refused));
  REQUIRE(ans);
  CHECK(ans->kind == Record::Kind::rules_answer);
  CHECK_FALSE(ans->rules_answer.ok);
  CHECK(ans->rules_answer.errors[0].path == "rules[1].source");
  Counters c;
  c.received = 5;
  c.relayed = 4;
  c.dropped = 1;
  c.rules = {{"controller-input", 4, 1}};
  auto counted = decode_plugin(encode(c));
  REQUIRE(counted);
  CHECK(counted->kind == Record::Kind::counters);
  CHECK(counted->counters.relayed == 4);
  CHECK(counted->counters.rules[0].name == "controller-input");
}

TEST_CASE("broker bridge records: what is wrong is refused with its path, never thrown") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "JSON"},
      {"[1]", "not a JSON object"},
      {R"({"v":2,"kind":"rules"})", "version"},
      {R"({"v":1})", "no kind"},
      {R"({"v":1,"kind":"teleport"})", "unknown control record kind"},
      {R"({"v":1,"kind":"rules","id":"x"})", "prefix is missing"},
      {R"({"v":1,"kind":"rules","id":"x","prefix":"rtm","rules":{}})", "rules must be a list"},
      {R"({"v":1,"kind":"rules","id":"x","prefix":"rtm","rules":[{"name":"a","direction":"sideways"}]})",
       "rules[0].direction must be inbound or outbound"},
      {R"({"v":1,"kind":"rules","id":"x","prefix":"rtm","rules":[{"name":"a","direction":"inbound","source":{},"target":{},"transform":{"type":"zip"}}]})",
       "rules[0].transform.type must be pass, envelope or extract"},
      {R"({"v":1,"kind":"rules","id":"x","prefix":"rtm","rules":[{"name":"a","direction":"inbound","source":{},"target":{},"transform":{},"qos":2}]})",
       "rules[0].qos must be an integer from 0 to 1"},
      {R"({"v":1,"kind":"devices","confirmed":[["a","b"]]})",
       "confirmed[0] must be [uid, channel, topic]"},
      {R"({"v":1,"kind":"devices","refused":[["a","b","c"]]})",
       "refused[0] must be [uid, channel, topic, reason]"},
  };
  for (const auto& [text, why] : bad) {
    auto got = decode_control(text);
    REQUIRE_MESSAGE(!got, text);
    CHECK_MESSAGE(got.error().message.find(why) != std::string::npos,
                  text << " -> " << got.error().message);
  }
  CHECK_FALSE(decode_control(std::string(kMaxRecordBytes + 1, ' ')));
  CHECK_FALSE(decode_plugin(std::string(2000, '[') + std::string(2000, ']')));  // too deep
  CHECK_FALSE(decode_plugin(R"({"v":1,"kind":"counters","relayed":-1})"));
  CHECK_FALSE(decode_plugin(R"({"v":1,"kind":"devices","announce":[[1,2,3]]})"));
}

TEST_CASE("device book: a new device's messages wait, in order, until the gateway confirms it") {
  DeviceBook book;
  const DeviceKey p2{"p2", "room-1", "input"};
  CHECK(book.status("p2", "room-1", "input", 0) == DeviceBook::Status::unknown);
  CHECK(book.hold(p2, message("a"), 0) == DeviceBook::Held::held_announce);  // announced once
  CHECK(book.status("p2", "room-1", "input", 1) == DeviceBook::Status::pending);
  CHECK(book.hold(p2, message("b"), 1) == DeviceBook::Held::held);
  CHECK(book.hold(p2, message("c"), 2) == DeviceBook::Held::held);
  CHECK(book.held_messages() == 3);
  auto released = book.confirm(p2);
  REQUIRE(released.size() == 3);
  CHECK(released[0].payload == "a");
  CHECK(released[2].payload == "c");
  CHECK(book.held_messages() == 0);
  CHECK(book.held_bytes() == 0);
  CHECK(book.status("p2", "room-1", "input", 3) == DeviceBook::Status::registered);
  // Another topic of the same device is another registration.
  CHECK(book.status("p2", "room-1", "status", 3) == DeviceBook::Status::unknown);
}

TEST_CASE("device book: a refused device is dropped for a while, then asked again") {
  BookLimits limits;
  limits.refused_retry_ms = 1000;
  DeviceBook book(limits);
  const DeviceKey host{"host-a", "room-1", "input"};
  book.hold(host, message("x"), 0);
  book.hold(host, message("y"), 0);
  CHECK(book.refuse(host, "host-a is a logged-in user", 10) == 2);
  CHECK(book.held_messages() == 0);
  CHECK(book.status("host-a", "room-1", "input", 500) == DeviceBook::Status::refused);
  CHECK(book.reason("host-a", "room-1", "input") == "host-a is a logged-in user");
  CHECK(book.status("host-a", "room-1", "input", 1010) == DeviceBook::Status::unknown);
  CHECK(book.hold(host, message("z"), 1010) == DeviceBook::Held::held_announce);
}

TEST_CASE("device book: an unanswered announcement is repeated, a new gateway asks again") {
  BookLimits limits;
  limits.announce_retry_ms = 2000;
  DeviceBook book(limits);
  const DeviceKey p2{"p2", "room-1", "input"};
  const DeviceKey p3{"p3", "room-1", "input"};
  book.hold(p2, message("a"), 0);
  book.confirm(p3);  // confirmed without waiting messages: registered
  CHECK(book.due(1000).empty());
  auto due = book.due(2000);
  REQUIRE(due.size() == 1);
  CHECK(due[0] == p2);
  CHECK(book.due(2500).empty());  // announced again at 2000
  book.forget_registrations();
  CHECK(book.status("p3", "room-1", "input", 2600) == DeviceBook::Status::unknown);
  CHECK(book.status("p2", "room-1", "input", 2600) == DeviceBook::Status::pending);
  CHECK(book.due(2600).size() == 1);  // pending ones are announced to the new gateway at once
  book.confirm(p3);
  book.remove(p3);  // the registration ended: asked again at the next message
  CHECK(book.status("p3", "room-1", "input", 2700) == DeviceBook::Status::unknown);
}

TEST_CASE("device book: bounded in messages per device, bytes and devices") {
  BookLimits limits;
  limits.max_held_per_device = 3;
  limits.max_held_bytes = 200;
  limits.max_devices = 4;
  DeviceBook book(limits);
  const DeviceKey p2{"p2", "room-1", "input"};
  for (int i = 0; i < 3; ++i)
    CHECK(book.hold(p2, message("m"), 0) != DeviceBook::Held::dropped_full);
  CHECK(book.hold(p2, message("m"), 0) == DeviceBook::Held::dropped_full);
  const DeviceKey big{"big", "room-1", "input"};
  CHECK(book.hold(big, message(std::string(300, 'x')), 0) == DeviceBook::Held::dropped_full);
  // Devices: registered ones make room for new ones; pending ones are never pushed out.
  for (int i = 0; i < 3; ++i) book.confirm({"r" + std::to_string(i), "room-1", "input"});
  CHECK(book.devices() == 4);
  CHECK(book.hold({"new", "room-1", "input"}, message("n"), 0) == DeviceBook::Held::held_announce);
  CHECK(book.devices() == 4);
  CHECK(book.status("p2", "room-1", "input", 0) == DeviceBook::Status::pending);
  DeviceBook full(limits);
  for (int i = 0; i < 4; ++i) full.hold({"d" + std::to_string(i), "c", "t"}, message("m"), 0);
  CHECK(full.hold({"d9", "c", "t"}, message("m"), 0) == DeviceBook::Held::dropped_full);
}
