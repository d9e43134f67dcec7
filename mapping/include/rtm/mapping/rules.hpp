#pragma once
// Mapping rules: carry existing device topics into the RTM tree and back. A pure
// library: (topic, payload, time) in, a list of decisions out. No broker, no clock,
// no logging; the gateway carries the decisions out.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/topics/expected.hpp"

namespace rtm::mapping {

enum class Direction { inbound, outbound };

// Patterns and templates use {name} for a named capture (a whole topic level), and '+'
// or '#' (last level only) where no name is needed.
//   inbound source:  a device topic pattern, e.g. "coplay/{room}/{player}/input"
//   outbound source: an RTM channel topic (channel/topic/publisher, each a literal,
//                    a {capture} or "+") or an inbox (to/from likewise)
struct SourceSpec {
  std::string device_topic;  // inbound
  std::string channel, topic, publisher;  // outbound from a channel topic
  std::string inbox_to, inbox_from;       // outbound from an inbox
};

// Where a message goes; fields are templates over the source's captures.
//   inbound:  a channel message (channel, topic, publisher) or an inbox (to, from)
//   outbound: a device topic ("coplay/{room}/state")
struct TargetSpec {
  std::string channel, topic, publisher;
  std::string inbox_to, inbox_from;
  std::string device_topic;
};

enum class TransformKind {
  pass,      // the payload unchanged, binary safe (default)
  envelope,  // a JSON object with chosen fields
  extract,   // the value at a JSON pointer of a JSON payload
};

struct EnvelopeField {
  std::string name;
  // A template: literal text with {capture}s gives a JSON string; exactly one of the
  // special values gives: "{timestamp}" a number (ms since epoch), "{payload}" the
  // payload as a string (must be UTF-8), "{payload_base64}" base64 of the payload,
  // "{payload_json}" the payload parsed as JSON, "{topic}" the source topic.
  std::string value;
};

struct TransformSpec {
  TransformKind kind = TransformKind::pass;
  std::vector<EnvelopeField> fields;  // envelope
  std::string pointer;                // extract: RFC 6901, e.g. "/buttons/0"
};

struct RuleSpec {
  std::string name;  // unique; used in errors, counters and logs
  Direction direction = Direction::inbound;
  SourceSpec source;
  TargetSpec target;
  TransformSpec transform;
  int qos = 0;  // QoS of the published message
  bool retain = false;
  // False: the device topic's own subscribers need not get the message. The broker's
  // plugin (mapping.mode broker) then moves the message to its target instead of
  // publishing a copy; the relay cannot withhold it (the broker delivered it already).
  bool keep_source = true;
};

// A device's status topic (its Will) mapped to presence, e.g. source
// "factory/{device}/status", uid "{device}", payload "online" / "offline".
struct PresenceRuleSpec {
  std::string name;
  std::string source;  // device topic pattern
  std::string uid;     // template
  std::string online_payload = "online";
  std::string offline_payload = "offline";
};

// A problem in the rule set, with the path of the key inside the mapping section
// ("rules[2].target.channel") and what is wrong.
struct RuleError {
  std::string path;
  std::string message;
};

struct Decision {
  enum class Kind {
    publish,   // publish `payload` to `topic` with qos/retain
    drop,      // a rule matched but the message cannot be carried: `reason`
    presence,  // a mapped device went online/offline: `uid`, `online`
  };
  Kind kind = Kind::publish;
  std::string rule;  // the name of the rule that decided
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  bool keep_source = true;  // the rule's keep_source
  // The payload is the source's, unchanged (transform pass). With
  // PayloadCopy::unless_unchanged, `payload` is then left empty: the caller has the bytes.
  bool payload_unchanged = false;
  std::string reason;
  // For inbound channel messages: the RTM names, so that the gateway can register the
  // device as a publisher of the topic. Empty otherwise.
  std::string channel, topic_name, publisher;
  // presence
  std::string uid;
  bool online = false;
};

// Whether route() copies a payload that a rule passes unchanged into its decision.
enum class PayloadCopy { always, unless_unchanged };

class RuleSet {
 public:
  RuleSet() = default;

  // Checks and compiles rules for the tree with `prefix`. Refused: duplicate or empty
  // names, bad patterns (not a valid filter, '#' not last, captures not a whole level,
  // a capture used twice in one source), a target using a capture its source lacks, a
  // target whose literal parts are not valid names / topic levels, the wrong target kind
  // for the direction, an invalid JSON pointer, an unknown {special} in an envelope,
  // qos outside 0..1, and loops: any rule whose output can match any rule's source
  // (including its own) — the error names both rules — or can match one of
  // `reserved_filters` (the gateway's own subscriptions, e.g. "rtm/req/+/#").
  static Expected<RuleSet, std::vector<RuleError>> compile(
      const std::vector<RuleSpec>& rules, const std::vector<PresenceRuleSpec>& presence_rules,
      const std::string& prefix, const std::vector<std::string>& reserved_filters);

  // The MQTT filters the gateway must subscribe to for these rules.
  std::vector<std::string> subscriptions() const;
  bool empty() const;
  // The names of the rules and presence rules, in their order.
  std::vector<std::string> rule_names() const;

  // True when some rule's source matches `topic` (no decision is made; cheap).
  bool matches_any(std::string_view topic) const;

  // What to do with an incoming message. Empty when no rule matches. A rule that matches
  // but cannot carry the message (invalid JSON for a JSON transform, a capture that is
  // not a legal name, a topic that is not a valid MQTT topic) yields a drop with a
  // precise reason; never throws.
  std::vector<Decision> route(std::string_view topic, std::string_view payload,
                              std::int64_t now_ms,
                              PayloadCopy copy = PayloadCopy::always) const;

 private:
  struct Compiled;
  struct Index;  // which rules a topic's first level can reach
  std::vector<std::shared_ptr<const Compiled>> rules_;
  std::shared_ptr<const Index> index_;
  std::string prefix_;
};

// True when some topic could match both filters (each may hold '+' and '#').
bool filters_overlap(std::string_view a, std::string_view b);

// Remembers what the gateway itself published for a short time, so that a message
// coming back to it (MQTT 3.1.1 has no No-Local) is recognised and not consumed again.
class EchoGuard {
 public:
  EchoGuard(std::int64_t ttl_ms, std::size_t max_entries);
  void published(std::string_view topic, std::string_view payload, std::int64_t now_ms);
  // True (and forgets one entry) when this message is one we published.
  bool is_echo(std::string_view topic, std::string_view payload, std::int64_t now_ms);
  std::size_t size() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace rtm::mapping
