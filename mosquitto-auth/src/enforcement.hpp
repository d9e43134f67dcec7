#pragma once
// Broker-enforced channels (docs/security.md, "Broker-enforced channels"): the gateway's
// grant records decide who may read and write each channel level, and connections follow
// the session (token expiry, K/k/T records). The Mosquitto glue around rtm::grants::Table
// and rtm::grants::ConnectionBook; the decisions themselves live in those pure classes.
//
// Every callback here runs on Mosquitto's single broker thread.
#include <mosquitto_broker.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "rtm/grants/connections.hpp"
#include "rtm/grants/table.hpp"

namespace rtm::plugin {

struct EnforcementSettings {
  std::string prefix = "rtm";              // plugin_opt_topic_prefix
  std::string grants_from = "rtm-gateway"; // plugin_opt_grants_from
  bool tree_rules = true;                  // plugin_opt_tree_rules
};

// What MOSQ_EVT_MESSAGE returns for a message the plugin takes for itself: Mosquitto
// 2.0.11 acknowledges it and delivers it to nobody, and the sender stays connected
// (tests/integration/enforcement_test.cpp shows it).
extern const int kConsumeMessage;

class Enforcement {
 public:
  Enforcement(EnforcementSettings settings, const NameSet& service_users);

  // MOSQ_EVT_ACL_CHECK: MOSQ_ERR_ACL_DENIED or MOSQ_ERR_PLUGIN_DEFER (never a grant: the
  // acl_file still applies its own rules after us). Allocates nothing once warm.
  int acl_check(const mosquitto_evt_acl_check& event);
  // MOSQ_EVT_MESSAGE: grant records are applied and consumed; login requests are noted.
  int message(const mosquitto_evt_message& event);
  // MOSQ_EVT_TICK: closes the connections whose token expired.
  void tick();
  // MOSQ_EVT_DISCONNECT: forgets the connection.
  void disconnect(const mosquitto_evt_disconnect& event);
  // A token login was accepted; false when no more connections can be tracked (the login
  // is then refused: a connection the broker could not close at expiry must not open).
  bool token_login(mosquitto* client, const char* uid, std::int64_t expires_at_s);

  const std::string& grants_topic() const { return grants_topic_; }

 private:
  bool is_service_user(const char* username) const;
  void apply_grants(const mosquitto_evt_message& event);
  void carry_out(const std::vector<rtm::grants::ConnectionAction>& actions);
  void refuse_grants_writer(mosquitto* client, const char* username);

  EnforcementSettings settings_;
  const NameSet& service_users_;
  rtm::grants::Table table_;
  rtm::grants::ConnectionBook book_;
  std::string prefix_slash_;   // "{prefix}/"
  std::string grants_topic_;   // "{prefix}/gateway/grants"
  std::string req_head_;       // "{prefix}/req/"
  std::vector<std::string> expired_;  // reused by tick()
  rtm::grants::LogBudget forged_log_{5, 60};
  rtm::grants::LogBudget skipped_log_{5, 60};
  rtm::grants::LogBudget full_log_{5, 60};
  rtm::grants::LogBudget error_log_{5, 60};
};

// Whether the broker's configuration names an acl_file: read from the config file the
// broker was started with (-c), and the include_dir files it names. nullopt when that
// cannot be told (no -c, an unreadable file); `where` says what was read.
std::optional<bool> broker_config_has_acl_file(std::string& where);

}  // namespace rtm::plugin
