#pragma once
// The zero-hop bridge (plugin_opt_bridge true; the gateway's mapping.mode broker): the
// gateway's mapping rules carried out inside the broker. On MOSQ_EVT_MESSAGE each message a
// rule matches is routed with the same rtm::mapping library as the gateway's relay and its
// targets are published from inside the broker (mosquitto_broker_publish): one crossing of
// the broker instead of two. The gateway keeps the RTM side: it sends the rules, registers a
// device as a publisher when the plugin announces it (once per device), and handles device
// status topics (presence) itself. docs/mapping.md, "Zero-hop bridge", has the design.
//
// Every callback here runs on Mosquitto's single broker thread.
#include <mosquitto.h>
#include <mosquitto_broker.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "common.hpp"
#include "rtm/broker_bridge/device_book.hpp"
#include "rtm/broker_bridge/records.hpp"
#include "rtm/grants/connections.hpp"
#include "rtm/mapping/rules.hpp"
#include "rtm/topics/tree.hpp"

namespace rtm::plugin {

struct BridgeSettings {
  std::string prefix = "rtm";                // plugin_opt_topic_prefix
  std::string gateway_user = "rtm-gateway";  // plugin_opt_grants_from: who sends the rules
  bool enforce = false;                      // grants enforced: a channel write was checked already
};

class Bridge {
 public:
  Bridge(BridgeSettings settings, const NameSet& service_users);

  // MOSQ_EVT_MESSAGE: control records are applied and taken (kConsumeMessage); a message
  // a rule matches is carried out; the original is always delivered as usual.
  int message(mosquitto_evt_message& event);
  // MOSQ_EVT_TICK: announcements the gateway did not answer, counters.
  void tick();
  // MOSQ_EVT_RELOAD (the broker's SIGHUP): asks the gateway for its rules again.
  void reload();

  const std::string& control_topic() const { return control_topic_; }

 private:
  struct RuleCounts {
    std::uint64_t relayed = 0, dropped = 0;
  };
  void count_relayed(const std::string& rule);
  void apply_control(const mosquitto_evt_message& event);
  void apply_rules(const broker_bridge::RulesRecord& record);
  void apply_devices(const broker_bridge::DevicesAnswer& answer);
  void update_held();
  void route(mosquitto_evt_message& event);
  // A rule with keep_source false whose one target can take the message as it is: the
  // message itself goes there (its topic, payload and retain changed in place), no copy.
  bool move(mosquitto_evt_message& event, const mapping::Decision& d, std::int64_t now);
  // The bytes a decision publishes: its own, or the source's when unchanged.
  static std::string_view payload_of(const mapping::Decision& d, std::string_view source) {
    return d.payload_unchanged ? source : std::string_view(d.payload);
  }
  // The RTM user whose message an outbound rule carries, when the gateway must vouch for it
  // (not a service user; the grants not enforced by this broker).
  std::optional<broker_bridge::DeviceKey> sender_to_check(const mosquitto_evt_message& event,
                                                          std::string_view topic) const;
  // Carries out one publish decision, or holds it in `book` (announced to the gateway) until
  // `key` is confirmed.
  // `payload` is the decision's, or the source's when the rule passed it unchanged.
  void carry_or_hold(broker_bridge::DeviceBook& book, const broker_bridge::DeviceKey& key,
                     bool senders, mapping::Decision& d, std::string_view payload,
                     std::int64_t now);
  void publish(const std::string& rule, const std::string& topic, std::string_view payload,
               int qos, bool retain);
  void dropped(const std::string& rule, const std::string& why);
  void tell_gateway(const std::string& record);
  std::int64_t now_ms() const;

  BridgeSettings settings_;
  const NameSet& service_users_;
  topics::TopicTree tree_;
  std::string control_topic_, plugin_topic_, prefix_slash_;
  std::shared_ptr<const mapping::RuleSet> rules_;  // nullptr until the gateway sends them
  std::string rules_id_, instance_;
  broker_bridge::DeviceBook book_;     // device publishers (inbound rules)
  broker_bridge::DeviceBook senders_;  // RTM senders (outbound rules)
  std::unordered_map<std::string, RuleCounts> per_rule_;
  RuleCounts& counts(const std::string& rule);
  const std::string* last_rule_ = nullptr;  // the last rule counted, and its counts
  RuleCounts* last_counts_ = nullptr;
  broker_bridge::Counters counters_;
  std::uint64_t counters_sent_change_ = 0, changes_ = 0;
  std::int64_t counters_sent_ms_ = 0;
  rtm::grants::LogBudget drop_log_{5, 60};
  rtm::grants::LogBudget control_log_{5, 60};
};

}  // namespace rtm::plugin
