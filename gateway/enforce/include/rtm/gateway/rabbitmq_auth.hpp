#pragma once
// RabbitMQ's HTTP auth backend (rabbitmq_auth_backend_http), answered by the gateway
// (docs/security.md, "RabbitMQ"). RabbitMQ POSTs form-encoded questions to four paths
// (user, vhost, resource, topic) and reads the body "allow" or "deny". Token users log in
// with uid and token as at Mosquitto; service users (the gateway, module workers) with a
// password checked against a mosquitto_passwd file. Topic questions carry AMQP routing
// keys, turned back into MQTT topics and decided by the same grants as the Mosquitto plugin
// and EMQX's authorizer (grants::Table). Everything here is pure: no sockets, no clock.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rtm/grants/table.hpp"
#include "rtm/topics/expected.hpp"

namespace rtm::gateway::rabbitmq {

// More fields than any request of RabbitMQ 3.10 carries (the topic request has 9).
inline constexpr std::size_t kMaxFormFields = 32;
// The exchange RabbitMQ's MQTT plugin publishes to (mqtt.exchange).
inline constexpr std::string_view kTopicExchange = "amq.topic";
// Its queue for a client's subscriptions: kQueuePrefix + client id + "qos0" | "qos1".
inline constexpr std::string_view kQueuePrefix = "mqtt-subscription-";

enum class Endpoint { user, vhost, resource, topic };
inline constexpr std::size_t kEndpoints = 4;
std::optional<Endpoint> endpoint_from_name(std::string_view name);
std::string_view endpoint_name(Endpoint endpoint);

// An application/x-www-form-urlencoded body, read strictly: every field is key=value,
// percent escapes are two hex digits, '+' is a space, and no key occurs twice.
struct Form {
  std::vector<std::pair<std::string, std::string>> fields;
  const std::string* get(std::string_view key) const;
};
Expected<Form, std::string> parse_form(std::string_view body);

// The MQTT topic (filter = false: a PUBLISH's routing key) or topic filter (filter = true:
// a SUBSCRIBE's binding key) behind an AMQP routing key of RabbitMQ's MQTT plugin ('.' for
// '/', '*' for '+'). nullopt when no unambiguous MQTT form exists: a '/' or '+' in the key,
// a wildcard inside a word or in a topic name, '#' before the last level, control bytes.
// A '.' inside an MQTT level cannot be told from a level separator: those topics come
// back with an extra level and are then refused by the tree's level counts.
std::optional<std::string> topic_from_routing_key(std::string_view key, bool filter);

// The decision for a token user: may `username` publish `topic` (write) or subscribe to
// `topic_or_filter` (read)? The grants (channel levels, events, inbox) and the tree's own
// rights (its requests, responses, events, presence) allow; everything else is refused
// (RabbitMQ has no ACL file behind this answer). Wildcard filters that reach a channel
// level are refused, as for EMQX.
bool topic_allowed(const grants::Table& table, std::string_view username,
                   std::string_view topic_or_filter, bool write);

// Service users' passwords in mosquitto_passwd's format ("user:$7$iterations$salt$hash",
// PBKDF2-SHA512, or "user:$6$salt$hash", salted SHA-512), so one tool makes both brokers'
// files. Passwords are compared as derived hashes, in constant time.
class PasswordFile {
 public:
  // Throws std::runtime_error naming the line (start-up only).
  static PasswordFile parse(std::string_view text, const std::string& source);
  static PasswordFile load(const std::string& path);
  // Adds (or replaces) a user by its plain password, hashed here with a random salt.
  void add_plain(const std::string& user, std::string_view password);
  bool contains(std::string_view user) const { return entries_.find(user) != entries_.end(); }
  bool check(std::string_view user, std::string_view password) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int iterations = 0;  // 0: "$6$", one round of SHA-512
    std::string salt;
    std::string hash;
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

struct Settings {
  std::string vhost = "/";   // the one vhost token users may use (mqtt.vhost)
  std::string token_secret;  // auth.token_secret
  PasswordFile service_users;
};

// One answer, with why for the gateway's debug log. `malformed`: the request itself was
// wrong (not a form, missing or repeated fields); counted apart from plain refusals.
struct Decision {
  bool allow = false;
  bool malformed = false;
  std::string why;
};

// Asks the grants about a token user's topic: true allow, false deny, nullopt when no
// answer came in time (refused).
using TopicDecider = std::function<std::optional<bool>(const std::string& username,
                                                       const std::string& topic, bool write)>;

class Authenticator {
 public:
  explicit Authenticator(Settings settings) : settings_(std::move(settings)) {}
  // Parses `body` and answers the endpoint's question; `now_s` checks token expiry.
  Decision answer(Endpoint endpoint, std::string_view body, std::int64_t now_s,
                  const TopicDecider& decide_topic) const;

  Decision user(const Form& form, std::int64_t now_s) const;
  Decision vhost(const Form& form) const;
  Decision resource(const Form& form) const;
  Decision topic(const Form& form, const TopicDecider& decide_topic) const;
  bool is_service_user(std::string_view username) const {
    return settings_.service_users.contains(username);
  }

 private:
  Settings settings_;
};

}  // namespace rtm::gateway::rabbitmq
