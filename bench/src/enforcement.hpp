#pragma once
// Broker-enforced channels (issue 13): what the grants cost and how fast they reach the
// broker. scripts/bench.sh (group `enforcement`) runs these against Mosquitto with and
// without the project's plugin (rtm_mosquitto_auth), and against Mosquitto's own dynamic
// security plugin for comparison.
#include <cstdint>
#include <string>
#include <vector>

#include "rtm/grants/records.hpp"

namespace rtm::bench {

// Who feeds grant records: the gateway's service user (plugin_opt_grants_from), as the
// integration tests do. An empty password: no grants are fed.
struct GrantFeedLogin {
  std::string user = "rtm-gateway";
  std::string password;
  bool enabled() const { return !password.empty(); }
};

// Publishes the messages of `writer` on {prefix}/gateway/grants as the service user at QoS 1
// and waits for every PUBACK (the plugin applies records before it acknowledges them).
// Returns the milliseconds from the first write to the last PUBACK.
double feed_grants(const std::string& broker, const std::string& prefix, const GrantFeedLogin& login,
                   rtm::grants::RecordWriter& writer);

// `count` other users with a session, in channels of 20 members; each publishes `input`
// and reads `reads_each` other members' input: so that the broker's table is not a toy one
// while a benchmark's own grants are checked. Names start with `fill-{tag}-`.
void add_population(rtm::grants::RecordWriter& writer, int count, int reads_each, const std::string& tag);

// The time from a `subscribe` request (and from its answer) to the first message delivered
// from the publisher it grants, with the real gateway publishing grants (enforcement on).
struct PropagationOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string secret;
  int repeats = 200;
  int period_us = 1000;  // the publisher sends one message per period (QoS 0)
  int quiet_ms = 30;     // after unsubscribe: this long without a message ends the round
  int broker_pid = 0;
  int gateway_pid = 0;
  std::string json_out;
  std::string tag;
};
int run_propagation(const PropagationOptions& options);

// What one grant change costs: through our plugin (a grant record, then a marker the new
// grant lets through) or through Mosquitto's dynamic security plugin (addRoleACL /
// removeRoleACL on $CONTROL/dynamic-security/v1, timed to its response), with `grants`
// grants in place.
struct GrantChangeOptions {
  std::string system = "records";  // records | dynsec
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string user;      // records: the grants user (default rtm-gateway); dynsec: its admin
  std::string password;
  std::string secret;    // records: token of the marker's reader
  int grants = 1000;     // grants in place (dynsec: made beforehand, see scripts/bench.sh)
  int changes = 100;
  std::string file;      // dynsec: its config file (size reported)
  int broker_pid = 0;
  std::string json_out;
  std::string tag;
};
int run_grant_changes(const GrantChangeOptions& options);

}  // namespace rtm::bench
