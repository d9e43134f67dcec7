#pragma once
// Properties every routing decision of a compiled RuleSet must have, whatever the rules
// (shared by the mapping fuzz targets).
#include <rapidjson/document.h>

#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"
#include "rtm/mapping/rules.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::fuzz {

// One JSON text, valid UTF-8, without NUL bytes (which rapidjson would take for the end).
inline bool strict_json(const std::string& text) {
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
  if (!topics::is_valid_utf8(text)) return false;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

inline bool is_rtm_name(const std::string& name) {
  return !topics::name_error(name);
}

// `topic` is a valid topic name (as the broker delivers); `reserved` are the gateway's own
// subscriptions given to compile.
inline void check_decisions(const mapping::RuleSet& rules, const std::string& prefix,
                            const std::vector<std::string>& reserved, std::string_view topic,
                            const std::vector<mapping::Decision>& decisions) {
  using mapping::Decision;
  const bool matched = rules.matches_any(topic);
  RTM_FUZZ_CHECK(matched == !decisions.empty(), "matches_any agrees with route");
  bool subscribed = false;
  for (const std::string& filter : rules.subscriptions()) {
    subscribed = subscribed || topics::filter_matches(filter, topic);
  }
  // The broker delivers what the subscriptions match; a rule must see all of it, and a
  // subscription must not bring what no rule takes.
  RTM_FUZZ_CHECK(subscribed == matched, "the subscriptions match what the rules take");

  const auto names = rules.rule_names();
  for (const Decision& d : decisions) {
    bool known = false;
    for (const std::string& name : names) known = known || name == d.rule;
    RTM_FUZZ_CHECK(known, "a decision names one of the rules");
    switch (d.kind) {
      case Decision::Kind::publish: {
        RTM_FUZZ_CHECK(!topics::topic_name_error(d.topic), "a publish goes to a valid topic");
        RTM_FUZZ_CHECK(d.topic.front() != '$', "a publish never goes to a '$' topic");
        RTM_FUZZ_CHECK(d.qos == 0 || d.qos == 1, "QoS 0 or 1");
        // The loop check of compile: no output is read again, by a rule or by the gateway.
        RTM_FUZZ_CHECK(!rules.matches_any(d.topic), "an output never matches a rule's source");
        for (const std::string& filter : reserved) {
          RTM_FUZZ_CHECK(!topics::filter_matches(filter, d.topic),
                         "an output never matches the gateway's own subscriptions");
        }
        const std::string channel_root = prefix + "/ch/";
        if (!d.channel.empty()) {
          RTM_FUZZ_CHECK(
              is_rtm_name(d.channel) && is_rtm_name(d.topic_name) && is_rtm_name(d.publisher),
              "a channel decision names a channel, topic and publisher");
          RTM_FUZZ_CHECK(
              d.topic == channel_root + d.channel + "/" + d.topic_name + "/" + d.publisher,
              "a channel decision publishes on P/ch/{channel}/{topic}/{publisher}");
        }
        break;
      }
      case Decision::Kind::drop:
        RTM_FUZZ_CHECK(!d.reason.empty(), "a drop says why");
        break;
      case Decision::Kind::presence:
        RTM_FUZZ_CHECK(is_rtm_name(d.uid), "a presence decision names a valid uid");
        break;
    }
  }
}

}  // namespace rtm::fuzz
