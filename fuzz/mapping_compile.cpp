// Fuzz target: compiling mapping rules from fuzzed specs (RuleSet::compile), then routing
// messages through whatever compiled. compile must refuse a bad rule set with a located
// reason and never throw; a compiled set must keep the promises of its documentation
// (valid subscriptions, no loops, the rules' names), checked on every routed message.
//
// Input: one directive per line, "KEY VALUE" (VALUE is the rest of the line):
//   rule NAME | presence NAME      start a rule (inbound unless "out") / a presence rule
//   out                            the rule is outbound
//   src T | src.channel T | src.topic T | src.publisher T | src.to T | src.from T
//   dst.channel T | dst.topic T | dst.publisher T | dst.to T | dst.from T | dst.device T
//   envelope | field NAME=TEMPLATE | extract POINTER | qos N | retain
//   uid T | online P | offline P   (presence rules)
//   prefix P | reserved FILTER     (default prefix "rtm", reserved "rtm/req/+/#")
//   payload P | route TOPIC        route TOPIC with the last payload given
#include <cstdint>
#include <string>
#include <vector>

#include "check.hpp"
#include "mapping_checks.hpp"

namespace {

using rtm::mapping::Direction;
using rtm::mapping::PresenceRuleSpec;
using rtm::mapping::RuleSet;
using rtm::mapping::RuleSpec;
using rtm::mapping::TransformKind;

constexpr std::int64_t kNowMs = 1700000000123;

struct Spec {
  std::vector<RuleSpec> rules;
  std::vector<PresenceRuleSpec> presence;
  std::vector<std::string> names;  // in the order compile keeps: rules, then presence rules
  std::string prefix = "rtm";
  std::vector<std::string> reserved;
  std::vector<std::pair<std::string, std::string>> routes;  // topic, payload
};

int small_int(std::string_view text) {
  int value = 0;
  bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  for (char c : text) {
    if (c < '0' || c > '9' || value > 1000) break;
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

Spec parse(std::string_view input) {
  Spec spec;
  bool in_presence = false;
  std::string payload;
  bool reserved_given = false;
  while (!input.empty()) {
    const auto [line, rest] = rtm::fuzz::split_line(input);
    input = rest;
    const std::size_t space = line.find(' ');
    const std::string_view key = line.substr(0, space);
    const std::string value(space == std::string_view::npos ? std::string_view()
                                                            : line.substr(space + 1));
    RuleSpec* rule = (!in_presence && !spec.rules.empty()) ? &spec.rules.back() : nullptr;
    PresenceRuleSpec* presence =
        (in_presence && !spec.presence.empty()) ? &spec.presence.back() : nullptr;
    if (key == "rule") {
      spec.rules.emplace_back().name = value;
      in_presence = false;
    } else if (key == "presence") {
      spec.presence.emplace_back().name = value;
      in_presence = true;
    } else if (key == "prefix") {
      spec.prefix = value;
    } else if (key == "reserved") {
      spec.reserved.push_back(value);
      reserved_given = true;
    } else if (key == "payload") {
      payload = value;
    } else if (key == "route") {
      spec.routes.emplace_back(value, payload);
    } else if (presence) {
      if (key == "src") presence->source = value;
      if (key == "uid") presence->uid = value;
      if (key == "online") presence->online_payload = value;
      if (key == "offline") presence->offline_payload = value;
    } else if (rule) {
      if (key == "out") rule->direction = Direction::outbound;
      if (key == "src") rule->source.device_topic = value;
      if (key == "src.channel") rule->source.channel = value;
      if (key == "src.topic") rule->source.topic = value;
      if (key == "src.publisher") rule->source.publisher = value;
      if (key == "src.to") rule->source.inbox_to = value;
      if (key == "src.from") rule->source.inbox_from = value;
      if (key == "dst.channel") rule->target.channel = value;
      if (key == "dst.topic") rule->target.topic = value;
      if (key == "dst.publisher") rule->target.publisher = value;
      if (key == "dst.to") rule->target.inbox_to = value;
      if (key == "dst.from") rule->target.inbox_from = value;
      if (key == "dst.device") rule->target.device_topic = value;
      if (key == "envelope") rule->transform.kind = TransformKind::envelope;
      if (key == "extract") {
        rule->transform.kind = TransformKind::extract;
        rule->transform.pointer = value;
      }
      if (key == "field") {
        const std::size_t equals = value.find('=');
        rule->transform.fields.push_back({value.substr(0, equals), equals == std::string::npos
                                                                       ? std::string()
                                                                       : value.substr(equals + 1)});
      }
      if (key == "qos") rule->qos = small_int(value);
      if (key == "retain") rule->retain = true;
    }
  }
  if (!reserved_given) spec.reserved = {spec.prefix + "/req/+/#"};
  for (const RuleSpec& r : spec.rules) spec.names.push_back(r.name);
  for (const PresenceRuleSpec& p : spec.presence) spec.names.push_back(p.name);
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = rtm::fuzz::text(data, size);
  const Spec spec = parse(input);
  auto compiled = RuleSet::compile(spec.rules, spec.presence, spec.prefix, spec.reserved);
  if (!compiled) {
    RTM_FUZZ_CHECK(!compiled.error().empty(), "a refusal lists its problems");
    for (const rtm::mapping::RuleError& error : compiled.error()) {
      RTM_FUZZ_CHECK(!error.path.empty() && !error.message.empty(),
                     "each problem has a key path and a message");
      // Configuration errors are printed and logged (also as JSON): from UTF-8 specs, as
      // YAML gives them, they stay UTF-8.
      if (rtm::topics::is_valid_utf8(input)) {
        RTM_FUZZ_CHECK(rtm::topics::is_valid_utf8(error.message), "a problem is valid UTF-8");
      }
    }
    return 0;
  }
  const RuleSet& rules = *compiled;
  RTM_FUZZ_CHECK(rules.rule_names() == spec.names, "the rule set keeps the rules' names in order");
  RTM_FUZZ_CHECK(rules.empty() == spec.names.empty(), "empty() when there are no rules");
  for (const std::string& name : spec.names) {
    RTM_FUZZ_CHECK(!rtm::topics::name_error(name), "a compiled rule's name is a valid name");
  }
  for (const std::string& filter : rules.subscriptions()) {
    RTM_FUZZ_CHECK(!rtm::topics::topic_filter_error(filter), "a subscription is a valid filter");
  }
  for (const auto& [topic, payload] : spec.routes) {
    if (rtm::topics::topic_name_error(topic)) continue;  // the broker delivers valid names only
    const auto decisions = rules.route(topic, payload, kNowMs);
    rtm::fuzz::check_decisions(rules, spec.prefix, spec.reserved, topic, decisions);
  }
  return 0;
}
