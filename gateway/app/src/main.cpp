// rtm-gateway: thin entry point. Parses the command line, loads the config, and runs
// the gateway (or checks the config, or prints a token).
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/gateway.hpp"
#include "rtm/gateway/links.hpp"
#include "rtm/gateway/logging.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace {

using namespace rtm::gateway;

// What the command line sets over the file; applied again at each reload.
struct Overrides {
  std::string broker;
  std::string ops_listen;
  bool ops_listen_set = false;
  std::string broker_username;
  bool broker_username_set = false;  // --broker-username "" connects without a username
  std::string broker_password_file;
  bool publish_grants = false;
  std::string broker_profile;
  std::string rabbitmq_http_auth_key_file;
  std::string mapping_mode;
};

// The content of a secret file, as broker.password_file reads it (one trailing line break
// dropped); read again at each reload, like the file of the config.
std::string read_secret_file(const std::string& option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError({option + ": cannot read \"" + path + "\": " + std::strerror(errno)});
  }
  std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (!value.empty() && value.back() == '\r') value.pop_back();
  return value;
}

Config load(const std::string& path, const Overrides& overrides) {
  Config config = load_config_file(path);
  if (!overrides.broker.empty()) config.broker.uri = overrides.broker;
  if (overrides.ops_listen_set) config.ops.http_listen = overrides.ops_listen;
  if (overrides.broker_username_set) config.broker.username = overrides.broker_username;
  if (!overrides.broker_password_file.empty()) {
    config.broker.password =
        read_secret_file("--broker-password-file", overrides.broker_password_file);
  }
  if (overrides.publish_grants) config.enforcement.publish_grants = true;
  if (!overrides.broker_profile.empty()) {
    // Checked in main() before the first load.
    config.broker.profile = *rtm::topics::parse_broker_profile(overrides.broker_profile);
  }
  if (!overrides.mapping_mode.empty()) {
    if (overrides.mapping_mode != "relay" && overrides.mapping_mode != "broker") {
      throw ConfigError(
          {"--mapping-mode: relay or broker, got \"" + overrides.mapping_mode + "\""});
    }
    config.mapping.mode =
        overrides.mapping_mode == "broker" ? BridgeMode::broker : BridgeMode::relay;
    if (config.mapping.mode == BridgeMode::broker &&
        config.broker.profile != rtm::topics::BrokerProfile::mosquitto) {
      throw ConfigError(
          {"--mapping-mode broker: needs Mosquitto with the project's plugin "
           "(broker.profile mosquitto)"});
    }
  }
  if (!overrides.rabbitmq_http_auth_key_file.empty()) {
    // The checks load_config_file makes of enforcement.rabbitmq_http_auth, on the result.
    const std::string option = "--rabbitmq-http-auth-key-file";
    std::string key = read_secret_file(option, overrides.rabbitmq_http_auth_key_file);
    if (key.size() < kMinApiKeyBytes) {
      throw ConfigError(
          {option + ": the key must be at least " + std::to_string(kMinApiKeyBytes) + " bytes"});
    }
    if (config.ops.http_listen.empty()) {
      throw ConfigError({option + ": needs ops.http_listen or --ops-listen (the endpoints are "
                                  "served there)"});
    }
    if (config.topics.prefix.find('.') != std::string::npos) {
      throw ConfigError({option + ": topics.prefix contains '.', a level separator on RabbitMQ"});
    }
    config.enforcement.rabbitmq_http_auth = true;
    config.ops.api_keys.push_back(std::move(key));
  }
  return config;
}

int run_gateway(const Config& config, const std::string& config_path, const Overrides& overrides) {
  setup_logging(config.log);
  // Signals are taken by one thread with sigwait, so no handler runs inside the loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Gateway gateway(config, make_broker_link(config.broker));
  gateway.start_ops_http();
  std::thread signal_thread([&] {
    while (true) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig != SIGHUP) {
        if (sig != 0) spdlog::info("gateway: signal {} received", sig);
        break;
      }
      // SIGHUP: check the file first; a bad one changes nothing.
      try {
        auto next = load(config_path, overrides);
        spdlog::info("config: SIGHUP: {} is valid; applying it", config_path);
        gateway.reload(std::move(next));
      } catch (const ConfigError& e) {
        gateway.reload_refused();
        for (const auto& problem : e.problems()) spdlog::error("config: {}", problem);
        spdlog::error("config: SIGHUP: {} is not valid; the running configuration stays",
                      config_path);
      }
    }
    gateway.stop();
  });
  spdlog::info("rtm-gateway {} starting: broker {}, prefix {}", RTM_VERSION, config.broker.uri,
               config.topics.prefix);
  gateway.run();
  pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes sigwait when stop came another way
  signal_thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Every request builds a few RapidJSON documents, each with a 64 KB memory pool that is
  // freed at the end of the request. With glibc's default (dynamic) trim threshold the top
  // of the heap is given back and taken again request after request: brk/mprotect calls
  // and page faults on the hot path. Keep up to 16 MB of free heap top instead.
  ::mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  setup_logging(LogConfig{});

  CLI::App app{"rtm-mqtt-gateway: real-time messaging concepts for plain MQTT clients"};
  std::string config_path = "config.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file (YAML)")->capture_default_str();
  Overrides overrides;
  app.add_option("--broker", overrides.broker, "broker URI, overriding broker.uri of the config");
  app.add_option("--ops-listen", overrides.ops_listen,
                 "host:port of the operations HTTP listener, overriding ops.http_listen "
                 "(\"\" for none)");
  app.add_option("--broker-username", overrides.broker_username,
                 "MQTT username of the gateway, overriding broker.username (\"\": none, an "
                 "anonymous connection)");
  app.add_option("--broker-password-file", overrides.broker_password_file,
                 "file holding the gateway's MQTT password (one trailing line break dropped), "
                 "overriding broker.password / broker.password_file; a secret never goes on the "
                 "command line");
  app.add_flag("--publish-grants", overrides.publish_grants,
               "publish grant records for the broker's plugin, as enforcement.publish_grants: "
               "true (docs/security.md, \"Broker-enforced channels\")");
  app.add_option("--mapping-mode", overrides.mapping_mode,
                 "relay or broker, overriding mapping.mode (broker: the project's Mosquitto "
                 "plugin carries the mapping rules out, docs/mapping.md)");
  app.add_option("--broker-profile", overrides.broker_profile,
                 "mosquitto, emqx, rabbitmq or generic, overriding broker.profile");
  app.add_option("--rabbitmq-http-auth-key-file", overrides.rabbitmq_http_auth_key_file,
                 "answer RabbitMQ's HTTP auth backend (enforcement.rabbitmq_http_auth: true) "
                 "with the key in this file added to ops.api_keys (docs/security.md, "
                 "\"RabbitMQ\"); a secret never goes on the command line");
  app.add_flag("--check-config", check_only, "check the configuration file and exit (0 = valid)");
  app.set_version_flag("--version", std::string(RTM_VERSION));

  auto* token_cmd = app.add_subcommand("token", "print a login token signed with auth.token_secret");
  std::string uid;
  long long ttl = 3600;
  token_cmd->add_option("--uid", uid, "the user id the token is for")->required();
  token_cmd->add_option("--ttl", ttl, "seconds until the token expires")->capture_default_str();
  std::string token_channel;
  token_cmd->add_option("--channel", token_channel,
                        "a channel token for this channel (join, subscribe_channel)");
  token_cmd->add_option("-c,--config", config_path, "configuration file (YAML)");

  CLI11_PARSE(app, argc, argv);
  overrides.ops_listen_set = app.count("--ops-listen") > 0;
  overrides.broker_username_set = app.count("--broker-username") > 0;
  if (!overrides.broker_profile.empty() &&
      !rtm::topics::parse_broker_profile(overrides.broker_profile)) {
    std::cerr << "--broker-profile: expected mosquitto, emqx, rabbitmq or generic, got \""
              << overrides.broker_profile << "\"\n";
    return 1;
  }

  if (!overrides.broker.empty()) {
    if (auto why = broker_uri_error(overrides.broker)) {
      std::cerr << "--broker: " << *why << "\n";
      return 1;
    }
  }
  if (auto why = host_port_error(overrides.ops_listen)) {
    std::cerr << "--ops-listen: " << *why << "\n";
    return 1;
  }
  Config config;
  try {
    config = load(config_path, overrides);
  } catch (const ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << problem << "\n";
    std::cerr << "configuration is not valid\n";
    return 1;
  }
  if (check_only) {
    std::cout << config_path << ": ok\n";
    return 0;
  }
  if (token_cmd->parsed()) {
    // A uid the broker cannot carry gets no token (broker.profile: rabbitmq refuses '.').
    if (auto why = rtm::topics::name_error(uid, "uid",
                                           rtm::topics::name_rules_for(config.broker.profile))) {
      std::cerr << "--uid: " << *why << "\n";
      return 1;
    }
    if (ttl < 1 || ttl > config.auth.max_token_ttl_s) {
      std::cerr << "--ttl: must be between 1 and auth.max_token_ttl_s ("
                << config.auth.max_token_ttl_s << "), got " << ttl << "\n";
      return 1;
    }
    std::optional<std::string> channel;
    if (!token_channel.empty()) {
      if (auto why = rtm::topics::name_error(token_channel, "channel",
                                             rtm::topics::name_rules_for(config.broker.profile))) {
        std::cerr << "--channel: " << *why << "\n";
        return 1;
      }
      channel = token_channel;
    }
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::cout << sign_token({uid, now, now + ttl, std::nullopt, channel}, config.auth.token_secret)
              << "\n";
    return 0;
  }
  try {
    return run_gateway(config, config_path, overrides);
  } catch (const std::exception& e) {
    spdlog::critical("gateway stopped: {}", e.what());
    return 2;
  }
}
