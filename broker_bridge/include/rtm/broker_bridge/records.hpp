#pragma once
// The records of the zero-hop bridge (mapping.mode broker). The gateway and the broker's
// plugin speak JSON over two topics of the gateway's own subtree:
//   {prefix}/gateway/bridge/control  gateway -> plugin (the plugin takes them; never delivered)
//     {"v":1,"kind":"rules","id":..,"instance":..,"prefix":..,"rules":[..],"presence":[..]}
//     {"v":1,"kind":"devices","confirmed":[[uid,channel,topic],..],
//                             "refused":[[uid,channel,topic,reason],..],"removed":[..]}
//     {"v":1,"kind":"senders",...}  the same for senders (below)
//   {prefix}/gateway/bridge/plugin   plugin -> gateway
//     {"v":1,"kind":"hello"}                       the plugin (re)loaded: send the rules
//     {"v":1,"kind":"rules","id":..,"ok":true}      or "ok":false,"errors":[{"path","message"}]
//     {"v":1,"kind":"devices","announce":[[uid,channel,topic],..]}
//     {"v":1,"kind":"senders","announce":[[uid,channel,topic],..]}
// Devices are device publishers to register (inbound rules to a channel topic); senders are
// RTM users whose messages an outbound rule carries to devices, only while the user is a
// publisher of that channel topic (or, for an inbox message, channel and topic empty, has a
// session): the gateway checks, the plugin remembers the answer until told otherwise.
//     {"v":1,"kind":"counters","received":..,"relayed":..,"dropped":..,"held":..,
//      "rules":[[name,relayed,dropped],..]}     at most once a second, when they changed
// Every decoder bounds its input and never throws.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/mapping/rules.hpp"
#include "rtm/topics/expected.hpp"

namespace rtm::broker_bridge {

inline constexpr int kRecordVersion = 1;
inline constexpr std::size_t kMaxRecordBytes = 1 << 20;  // a rule set or a batch of devices
inline constexpr std::size_t kMaxDevicesPerRecord = 10000;

std::string control_topic(const std::string& prefix);  // {prefix}/gateway/bridge/control
std::string plugin_topic(const std::string& prefix);   // {prefix}/gateway/bridge/plugin

// A device registered (or to register) as a publisher of a channel topic.
struct DeviceKey {
  std::string uid, channel, topic;
  bool operator==(const DeviceKey& o) const {
    return uid == o.uid && channel == o.channel && topic == o.topic;
  }
};

// The rule set as the gateway read it from its configuration: the same specs both sides
// compile with mapping::RuleSet::compile.
struct RulesRecord {
  std::string id;        // a digest of the rules: the plugin's answer names it
  std::string instance;  // the gateway process that sent them (a new one may have lost state)
  std::string prefix;    // topics.prefix: the plugin refuses a set for another prefix
  std::vector<mapping::RuleSpec> rules;
  std::vector<mapping::PresenceRuleSpec> presence;
};

struct RulesAnswer {
  std::string id;
  bool ok = false;
  std::vector<mapping::RuleError> errors;  // paths inside the mapping section
};

struct RefusedDevice {
  DeviceKey device;
  std::string reason;
};

// Gateway -> plugin: what became of announced devices, and registrations that ended.
struct DevicesAnswer {
  bool senders = false;  // about senders, not devices
  std::vector<DeviceKey> confirmed;
  std::vector<RefusedDevice> refused;
  std::vector<DeviceKey> removed;
};

// The plugin's bridge counters (totals since the broker started), for the gateway's
// `stats` operation and metrics.
struct Counters {
  std::uint64_t received = 0;  // messages that matched a rule
  std::uint64_t relayed = 0;   // published to their target
  std::uint64_t dropped = 0;   // refused by a rule, a refused device, or a full book
  std::uint64_t held = 0;      // waiting for their device's registration now
  struct PerRule {
    std::string name;
    std::uint64_t relayed = 0, dropped = 0;
  };
  std::vector<PerRule> rules;
};

// What a record on either topic holds; `kind` says which member is filled.
struct Record {
  enum class Kind { rules, devices, hello, rules_answer, announce, counters };
  Kind kind = Kind::hello;
  RulesRecord rules;
  DevicesAnswer devices;
  RulesAnswer rules_answer;
  std::vector<DeviceKey> announce;
  bool senders = false;  // announce: senders to check, not devices to register
  Counters counters;
};

// The digest of a rule set (its canonical encoding, FNV-1a): equal rules, equal id.
std::string rules_id(const std::vector<mapping::RuleSpec>& rules,
                     const std::vector<mapping::PresenceRuleSpec>& presence);

std::string encode(const RulesRecord& record);
std::string encode(const RulesAnswer& answer);
std::string encode(const DevicesAnswer& answer);
std::string encode_hello();
std::string encode_announce(const std::vector<DeviceKey>& devices, bool senders = false);
std::string encode(const Counters& counters);

// The one way both sides compile a rule set: for the tree with `prefix`, with the tree's
// request and presence topics reserved (no rule may write there).
Expected<mapping::RuleSet, std::vector<mapping::RuleError>> compile_rules(
    const std::vector<mapping::RuleSpec>& rules,
    const std::vector<mapping::PresenceRuleSpec>& presence, const std::string& prefix);

// A control record (rules, devices) or a plugin record (hello, rules answer, announce).
// The error says what is wrong, with the path of the field ("rules[2].transform.type").
Expected<Record, Error> decode_control(std::string_view payload);
Expected<Record, Error> decode_plugin(std::string_view payload);

}  // namespace rtm::broker_bridge
