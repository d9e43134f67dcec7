#pragma once
// The shipped secure set-up for integration tests: Mosquitto with the rtm_mosquitto_auth
// plugin (username = uid, password = login token), a password_file for the gateway's user,
// the shipped ACL (docker/mosquitto/acl), anonymous clients refused; and the gateway
// logged in as its broker user. Clients log in as users do, with tokens.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "harness.hpp"

namespace rtm::test {

inline constexpr const char* kGatewayUser = "rtm-gateway";
inline constexpr const char* kGatewayPassword = "gateway-password-for-tests";
inline constexpr int kNotAuthorized = 5;  // CONNACK return code of MQTT 3.1.1

std::int64_t now_s();
std::string signed_token(const std::string& uid, std::int64_t ttl_s = 600,
                         std::string_view secret = GatewayProcess::kSecret);
std::string password_file_in(const TempDir& dir);
std::string inline_secret();
// The set-up of docker/mosquitto/mosquitto.secure.conf with test paths (the broker enforces
// the gateway's grants, as shipped; enforce_grants false: token logins and the ACL only).
std::string secure_config(const std::string& password_file, const std::string& secret_option,
                          bool enforce_grants = true);
// The zero-hop bridge's set-up (mapping.mode broker): the plugin with plugin_opt_bridge true,
// token logins, the gateway's user in the password_file; no ACL, anonymous devices allowed.
std::string bridge_plugin_config(const std::string& password_file);
Client::Options login_as(const std::string& username, const std::string& password);
// 0 when the broker accepts the CONNECT, else the CONNACK return code (5 = not authorised).
int connect_outcome(const std::string& uri, const std::string& username,
                    const std::string& password, std::string client_id = "");
// A user's client, logged in to the broker with a fresh token, subscribed to its own subtree.
std::unique_ptr<Client> user_client(const std::string& uri, const std::string& uid);
// A probe that logs in with a token pings itself until the gateway answers.
bool wait_ready_with_token(const std::string& uri);
std::string login_body(const std::string& uid);

// A message the broker drops leaves no trace, so a refusal is shown with a marker: `from`
// publishes the presence of `uid` (its own, or any for a service user) and this returns once
// `to` (subscribed to P/presence/+) has it. Per-connection order: whatever `from` published
// to `to` before has arrived by then. FAILs at the deadline.
void presence_marker(Client& from, const std::string& uid, Client& to);
// Polls until the client has lost its connection; false at the deadline.
bool lost_within(Client& client, std::chrono::milliseconds timeout);

struct SecureBroker {
  TempDir dir;
  std::string password_file = password_file_in(dir);
  Mosquitto broker{secure_config(password_file, inline_secret()), /*allow_anonymous=*/false};
};

GatewayOptions secure_gateway_options(std::string extra_yaml = "");

struct SecureSetup : SecureBroker {
  GatewayProcess gateway;
  explicit SecureSetup(std::string extra_yaml = "");
};

}  // namespace rtm::test
