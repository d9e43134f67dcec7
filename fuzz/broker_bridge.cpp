// Fuzz target: the zero-hop bridge's records (broker_bridge/src/records.cpp), which the
// Mosquitto plugin reads inside the broker and the gateway reads from the broker. Any input
// must be refused with a reason or read; what is read is written again and read back the
// same; a rule set read compiles (or is refused with key paths) without a crash.
//
// Input: the whole input, as a control record and as a plugin record.
#include <cstdint>
#include <string>

#include "check.hpp"
#include "rtm/broker_bridge/records.hpp"

namespace {

namespace bb = rtm::broker_bridge;

bool same_devices(const std::vector<bb::DeviceKey>& a, const std::vector<bb::DeviceKey>& b) {
  return a == b;
}

void control(std::string_view input) {
  auto record = bb::decode_control(input);
  if (!record) {
    RTM_FUZZ_CHECK(!record.error().message.empty(), "a refusal says why");
    return;
  }
  if (record->kind == bb::Record::Kind::rules) {
    const auto& r = record->rules;
    auto again = bb::decode_control(bb::encode(r));
    RTM_FUZZ_CHECK(again && again->kind == bb::Record::Kind::rules, "a rule set reads back");
    RTM_FUZZ_CHECK(bb::rules_id(r.rules, r.presence) ==
                       bb::rules_id(again->rules.rules, again->rules.presence),
                   "the same rules after a round trip");
    RTM_FUZZ_CHECK(again->rules.id == r.id && again->rules.prefix == r.prefix,
                   "id and prefix kept");
    auto compiled = bb::compile_rules(r.rules, r.presence, "rtm");
    if (!compiled) {
      for (const auto& e : compiled.error()) {
        RTM_FUZZ_CHECK(!e.message.empty(), "every problem says what is wrong");
      }
    }
    return;
  }
  RTM_FUZZ_CHECK(record->kind == bb::Record::Kind::devices, "a control record is rules or devices");
  const auto& d = record->devices;
  auto again = bb::decode_control(bb::encode(d));
  RTM_FUZZ_CHECK(again && again->kind == bb::Record::Kind::devices, "a devices record reads back");
  RTM_FUZZ_CHECK(again->devices.senders == d.senders, "senders kept");
  RTM_FUZZ_CHECK(same_devices(again->devices.confirmed, d.confirmed), "confirmed kept");
  RTM_FUZZ_CHECK(same_devices(again->devices.removed, d.removed), "removed kept");
  RTM_FUZZ_CHECK(again->devices.refused.size() == d.refused.size(), "refused kept");
}

void plugin(std::string_view input) {
  auto record = bb::decode_plugin(input);
  if (!record) {
    RTM_FUZZ_CHECK(!record.error().message.empty(), "a refusal says why");
    return;
  }
  std::string text;
  switch (record->kind) {
    case bb::Record::Kind::hello:
      text = bb::encode_hello();
      break;
    case bb::Record::Kind::rules_answer:
      text = bb::encode(record->rules_answer);
      break;
    case bb::Record::Kind::announce:
      text = bb::encode_announce(record->announce, record->senders);
      break;
    case bb::Record::Kind::counters:
      text = bb::encode(record->counters);
      break;
    default:
      RTM_FUZZ_CHECK(false, "a plugin record is hello, rules, devices, senders or counters");
  }
  auto again = bb::decode_plugin(text);
  RTM_FUZZ_CHECK(again && again->kind == record->kind, "a plugin record reads back");
  if (record->kind == bb::Record::Kind::announce) {
    RTM_FUZZ_CHECK(same_devices(again->announce, record->announce), "announced devices kept");
  }
  if (record->kind == bb::Record::Kind::counters) {
    RTM_FUZZ_CHECK(again->counters.relayed == record->counters.relayed &&
                       again->counters.rules.size() == record->counters.rules.size(),
                   "counters kept");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = rtm::fuzz::text(data, size);
  control(input);
  plugin(input);
  return 0;
}
