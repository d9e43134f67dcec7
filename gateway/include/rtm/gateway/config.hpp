#pragma once
// Gateway configuration: loaded from YAML, validated with the key path in every
// message, then used. Defaults here are the documented defaults of config.yaml.
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rtm::gateway {

struct BrokerConfig {
  std::string uri = "tcp://127.0.0.1:1883";
  std::string client_id = "rtm-gateway";
  std::string username = "rtm-gateway";
  std::string password;
  int keepalive_s = 30;
  int connect_timeout_s = 5;
  int reconnect_min_ms = 100;
  int reconnect_max_ms = 5000;
};

struct TopicsConfig {
  std::string prefix = "rtm";
};

struct AuthConfig {
  std::string token_secret;  // required, >= 32 bytes
  int token_warn_before_s = 30;
  int max_token_ttl_s = 7 * 24 * 3600;  // `rtm-gateway token` refuses longer
};

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error
  int stats_interval_s = 60;   // 0 turns the periodic counters line off
};

struct RequestsConfig {
  std::size_t max_payload_bytes = 65536;
  int dedup_window_s = 30;
  std::size_t dedup_max_entries = 100000;
  std::size_t queue_capacity = 100000;  // inbound messages waiting for the loop
};

struct LimitsConfig {
  int channels_per_user = 50;
  int topics_per_channel = 8;  // topics one user publishes in, per channel
  int members_per_channel = 10000;
  int publishers_per_subscription = 64;  // per (subscriber, channel, topic)
  int watched_users = 1000;
};

struct Config {
  BrokerConfig broker;
  TopicsConfig topics;
  AuthConfig auth;
  LogConfig log;
  RequestsConfig requests;
  LimitsConfig limits;
};

// Thrown at start-up when a config cannot be used; one message per problem, each
// starting with the key path ("broker.uri: expected tcp://host:port, got \"x\"").
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// nullopt when `uri` is a broker URI the gateway can use (tcp://host:port, ssl://host:port).
std::optional<std::string> broker_uri_error(const std::string& uri);

Config load_config_file(const std::string& path);
Config load_config_text(const std::string& yaml_text);

}  // namespace rtm::gateway
