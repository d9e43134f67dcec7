// Fuzz target: routing device and RTM messages through a fixed, realistic rule set
// (mapping/src/rules.cpp): the coplay rules of examples/coplay/gateway.yaml and the
// factory, alarm and inbox rules of docs/mapping.md's kind. Besides the properties of every
// decision (mapping_checks.hpp), the coplay rules' decisions are predicted exactly.
//
// Input: the first line is the topic, the rest is the payload.
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <vector>

#include "check.hpp"
#include "mapping_checks.hpp"

namespace {

using rtm::mapping::Decision;
using rtm::mapping::Direction;
using rtm::mapping::PresenceRuleSpec;
using rtm::mapping::RuleSet;
using rtm::mapping::RuleSpec;
using rtm::mapping::TransformKind;

constexpr std::int64_t kNowMs = 1700000000123;
const std::string kPrefix = "rtm";
const std::vector<std::string> kReserved = {"rtm/req/+/#", "rtm/presence/+"};

RuleSpec to_channel(std::string name, std::string source, std::string channel, std::string topic,
                    std::string publisher) {
  RuleSpec rule;
  rule.name = std::move(name);
  rule.source.device_topic = std::move(source);
  rule.target.channel = std::move(channel);
  rule.target.topic = std::move(topic);
  rule.target.publisher = std::move(publisher);
  return rule;
}

const RuleSet& rules() {
  static const RuleSet set = [] {
    std::vector<RuleSpec> specs;
    // examples/coplay/gateway.yaml
    specs.push_back(to_channel("controller-input", "coplay/{room}/{player}/input", "{room}",
                               "input", "{player}"));
    RuleSpec state;
    state.name = "host-state";
    state.direction = Direction::outbound;
    state.source.channel = "{room}";
    state.source.topic = "state";
    state.source.publisher = "+";
    state.target.device_topic = "coplay/{room}/state";
    specs.push_back(state);
    // A factory: readings wrapped with their line and time, or one value taken out.
    RuleSpec temp = to_channel("factory-temp", "factory/{line}/temp", "factory", "temp", "{line}");
    temp.transform.kind = TransformKind::envelope;
    temp.transform.fields = {{"line", "{line}"},
                             {"ts", "{timestamp}"},
                             {"value", "{payload_json}"},
                             {"from", "{topic}"}};
    specs.push_back(temp);
    RuleSpec reading =
        to_channel("factory-reading", "factory/{line}/reading", "factory", "reading", "{line}");
    reading.transform.kind = TransformKind::extract;
    reading.transform.pointer = "/temp";
    reading.qos = 1;
    specs.push_back(reading);
    // Alarms to the ops inbox, binary safe; names mixing text and captures.
    RuleSpec alarm;
    alarm.name = "alarm-to-ops";
    alarm.source.device_topic = "alarms/{site}/{device}";
    alarm.target.inbox_to = "ops";
    alarm.target.inbox_from = "{site}-{device}";
    alarm.transform.kind = TransformKind::envelope;
    alarm.transform.fields = {
        {"device", "dev {device} at {site}"}, {"data", "{payload_base64}"}, {"text", "{payload}"}};
    specs.push_back(alarm);
    specs.push_back(to_channel("sensors", "sensors/{site}/#", "site-{site}", "raw", "gw"));
    RuleSpec boiler;
    boiler.name = "boiler-inbox";
    boiler.direction = Direction::outbound;
    boiler.source.inbox_to = "boiler-2";
    boiler.source.inbox_from = "{from}";
    boiler.target.device_topic = "devices/boiler-2/rx/{from}";
    boiler.qos = 1;
    specs.push_back(boiler);

    PresenceRuleSpec status;
    status.name = "controller-status";
    status.source = "coplay/{room}/{player}/status";
    status.uid = "{player}";
    auto compiled = RuleSet::compile(specs, {status}, kPrefix, kReserved);
    RTM_FUZZ_CHECK(compiled.ok(), "the fixed rule set compiles");
    return std::move(compiled).value();
  }();
  return set;
}

std::vector<std::string_view> levels(std::string_view topic) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t slash; (slash = topic.find('/', start)) != std::string_view::npos;
       start = slash + 1) {
    out.push_back(topic.substr(start, slash - start));
  }
  out.push_back(topic.substr(start));
  return out;
}

bool legal(std::string_view name) {
  return !rtm::topics::name_error(name);
}

// What the coplay rules must decide, from the documented rules alone.
void check_coplay(std::string_view topic, std::string_view payload,
                  const std::vector<Decision>& decisions) {
  const auto parts = levels(topic);
  if (parts.size() == 4 && parts[0] == "coplay" && parts[3] == "input") {
    RTM_FUZZ_CHECK(decisions.size() == 1 && decisions[0].rule == "controller-input",
                   "controller input meets one rule");
    const Decision& d = decisions[0];
    if (legal(parts[1]) && legal(parts[2])) {
      RTM_FUZZ_CHECK(
          d.kind == Decision::Kind::publish &&
              d.topic == "rtm/ch/" + std::string(parts[1]) + "/input/" + std::string(parts[2]) &&
              d.payload == payload && d.qos == 0 && !d.retain,
          "controller input goes to its channel as it came");
    } else {
      RTM_FUZZ_CHECK(d.kind == Decision::Kind::drop, "input from a bad room or player is dropped");
    }
  }
  if (parts.size() == 4 && parts[0] == "coplay" && parts[3] == "status") {
    RTM_FUZZ_CHECK(decisions.size() == 1 && decisions[0].rule == "controller-status",
                   "a controller status meets one rule");
    const Decision& d = decisions[0];
    if (legal(parts[2]) && (payload == "online" || payload == "offline")) {
      RTM_FUZZ_CHECK(d.kind == Decision::Kind::presence && d.uid == parts[2] &&
                         d.online == (payload == "online"),
                     "a controller status is its presence");
    } else {
      RTM_FUZZ_CHECK(d.kind == Decision::Kind::drop, "a bad status is dropped");
    }
  }
  if (parts.size() == 5 && parts[0] == "rtm" && parts[1] == "ch" && parts[3] == "state") {
    RTM_FUZZ_CHECK(decisions.size() == 1 && decisions[0].rule == "host-state",
                   "host state meets one rule");
    const Decision& d = decisions[0];
    RTM_FUZZ_CHECK(d.kind == Decision::Kind::publish &&
                       d.topic == "coplay/" + std::string(parts[2]) + "/state" &&
                       d.payload == payload,
                   "host state goes out to the room's devices as it came");
  }
}

// Envelopes and extracts: valid JSON built from the payload as documented.
void check_transforms(std::string_view payload, const std::vector<Decision>& decisions) {
  for (const Decision& d : decisions) {
    if (d.kind != Decision::Kind::publish) continue;
    if (d.rule == "factory-temp" || d.rule == "alarm-to-ops") {
      RTM_FUZZ_CHECK(rtm::fuzz::strict_json(d.payload), "an envelope is valid JSON and UTF-8");
      rapidjson::Document doc;
      doc.Parse(d.payload.data(), d.payload.size());
      RTM_FUZZ_CHECK(doc.IsObject() && doc.MemberCount() == (d.rule == "factory-temp" ? 4u : 3u),
                     "an envelope has its fields");
      if (d.rule == "alarm-to-ops") {
        RTM_FUZZ_CHECK(
            doc["text"].IsString() &&
                std::string_view(doc["text"].GetString(), doc["text"].GetStringLength()) == payload,
            "{payload} is the payload as a string");
      } else {
        RTM_FUZZ_CHECK(doc["ts"].IsInt64() && doc["ts"].GetInt64() == kNowMs, "{timestamp}");
      }
    }
    if (d.rule == "factory-reading") {
      // The value at /temp: a string as its text, anything else as JSON.
      std::string text(payload);
      rapidjson::Document doc;
      doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
      RTM_FUZZ_CHECK(!doc.HasParseError(), "an extract publishes only from valid JSON");
      const rapidjson::Value* value = rapidjson::Pointer("/temp").Get(doc);
      RTM_FUZZ_CHECK(value != nullptr, "an extract publishes only an existing value");
      if (value->IsString()) {
        RTM_FUZZ_CHECK(d.payload == std::string_view(value->GetString(), value->GetStringLength()),
                       "a string is extracted as its text");
      } else {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
        value->Accept(writer);
        RTM_FUZZ_CHECK(d.payload == std::string_view(buffer.GetString(), buffer.GetSize()),
                       "a value is extracted as JSON");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto [topic, payload] = rtm::fuzz::split_line(rtm::fuzz::text(data, size));
  if (rtm::topics::topic_name_error(topic)) return 0;  // the broker delivers valid names only
  const RuleSet& set = rules();
  const auto decisions = set.route(topic, payload, kNowMs);
  rtm::fuzz::check_decisions(set, kPrefix, kReserved, topic, decisions);
  check_coplay(topic, payload, decisions);
  check_transforms(payload, decisions);
  return 0;
}
