#include "secure.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "rtm/tokens/jwt.hpp"

namespace rtm::test {

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string signed_token(const std::string& uid, std::int64_t ttl_s, std::string_view secret) {
  const auto now = now_s();
  return rtm::gateway::sign_token({uid, now, now + ttl_s, std::nullopt, std::nullopt}, secret);
}

std::string password_file_in(const TempDir& dir) {
  const auto path = (dir.path() / "passwd").string();
  auto made = run_command({"mosquitto_passwd", "-b", "-c", path, kGatewayUser, kGatewayPassword});
  if (made.exit_code != 0) throw std::runtime_error("mosquitto_passwd: " + made.output);
  return path;
}

std::string inline_secret() {
  return std::string("plugin_opt_token_secret ") + GatewayProcess::kSecret;
}

std::string secure_config(const std::string& password_file, const std::string& secret_option,
                          bool enforce_grants) {
  std::string config = std::string("plugin ") + RTM_AUTH_PLUGIN + "\n";
  config += secret_option + "\n";
  if (enforce_grants) config += "plugin_opt_enforce_grants true\n";
  config += "password_file " + password_file + "\n";
  config += std::string("acl_file ") + RTM_SOURCE_DIR + "/docker/mosquitto/acl\n";
  return config;
}

std::string bridge_plugin_config(const std::string& password_file) {
  return std::string("plugin ") + RTM_AUTH_PLUGIN + "\n" + inline_secret() +
         "\nplugin_opt_bridge true\npassword_file " + password_file + "\n";
}

Client::Options login_as(const std::string& username, const std::string& password) {
  Client::Options options;
  options.username = username;
  options.password = password;
  return options;
}

int connect_outcome(const std::string& uri, const std::string& username,
                    const std::string& password, std::string client_id) {
  if (client_id.empty()) client_id = username + "/" + unique_id("c");  // the uid-prefix rule
  Client client(uri, client_id, login_as(username, password));
  try {
    client.connect();
    return 0;
  } catch (const mqtt::exception& e) {
    return e.get_return_code();
  }
}

std::unique_ptr<Client> user_client(const std::string& uri, const std::string& uid) {
  auto client =
      std::make_unique<Client>(uri, uid + "/" + unique_id("c"), login_as(uid, signed_token(uid)));
  client->connect();
  if (client->subscribe("rtm/u/" + uid + "/#") != 1) {
    throw std::runtime_error("the broker refused " + uid + " its own subtree");
  }
  return client;
}

// wait_gateway_ready() connects anonymously, which this broker refuses.
bool wait_ready_with_token(const std::string& uri) {
  const std::string uid = unique_id("probe");
  auto probe = user_client(uri, uid);
  const auto deadline = Clock::now() + 20s;
  for (int i = 1; Clock::now() < deadline; ++i) {
    if (answered_ok(
            request(*probe, uid, "ping?msg_id=ready-" + std::to_string(i), "", "rtm", 200ms))) {
      return true;
    }
  }
  return false;
}

void presence_marker(Client& from, const std::string& uid, Client& to) {
  const std::string topic = "rtm/presence/" + uid;
  const std::string payload = "{\"state\":\"online\",\"session\":\"" + unique_id("m") + "\"}";
  from.publish(topic, payload);
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {  // earlier markers may still be buffered: this one
    auto got = to.wait_for(topic, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - Clock::now()));
    if (got && got->payload == payload) return;
  }
  FAIL("the marker from " << uid << " did not arrive");
}

bool lost_within(Client& client, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (client.connected()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);  // polling the client's state, not waiting for time
  }
  return true;
}

std::string login_body(const std::string& uid) {
  return "{\"token\":\"" + signed_token(uid) + "\"}";
}

GatewayOptions secure_gateway_options(std::string extra_yaml) {
  GatewayOptions options;
  options.username = kGatewayUser;
  options.password = kGatewayPassword;
  // As the shipped docker/gateway.yaml: the broker enforces the gateway's grants.
  options.extra_yaml = "enforcement:\n  publish_grants: true\n" + extra_yaml;
  return options;
}

SecureSetup::SecureSetup(std::string extra_yaml)
    : gateway(broker.uri(), secure_gateway_options(std::move(extra_yaml))) {
  if (!wait_ready_with_token(broker.uri())) {
    throw std::runtime_error("the gateway did not answer: " + gateway.log());
  }
}

}  // namespace rtm::test
