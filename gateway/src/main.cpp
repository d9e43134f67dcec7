// rtm-gateway: thin entry point. Parses the command line, loads the config, and runs
// the gateway (or checks the config, or prints a token).
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/gateway.hpp"
#include "rtm/gateway/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace {

using namespace rtm::gateway;

int run_gateway(const Config& config) {
  spdlog::set_level(spdlog::level::from_str(config.log.level));
  // Signals are taken by one thread with sigwait, so no handler runs inside the loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Gateway gateway(config, make_broker_link(config.broker));
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != 0) spdlog::info("gateway: signal {} received", sig);
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
  auto console = spdlog::stderr_color_mt("rtm");
  spdlog::set_default_logger(console);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"rtm-mqtt-gateway: real-time messaging concepts for plain MQTT clients"};
  std::string config_path = "config.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file (YAML)")->capture_default_str();
  std::string broker_override;
  app.add_option("--broker", broker_override, "broker URI, overriding broker.uri of the config");
  app.add_flag("--check-config", check_only, "check the configuration file and exit (0 = valid)");
  app.set_version_flag("--version", std::string(RTM_VERSION));

  auto* token_cmd = app.add_subcommand("token", "print a login token signed with auth.token_secret");
  std::string uid;
  long long ttl = 3600;
  token_cmd->add_option("--uid", uid, "the user id the token is for")->required();
  token_cmd->add_option("--ttl", ttl, "seconds until the token expires")->capture_default_str();
  token_cmd->add_option("-c,--config", config_path, "configuration file (YAML)");

  CLI11_PARSE(app, argc, argv);

  Config config;
  try {
    config = load_config_file(config_path);
  } catch (const ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << problem << "\n";
    std::cerr << "configuration is not valid\n";
    return 1;
  }
  if (!broker_override.empty()) {
    if (auto why = broker_uri_error(broker_override)) {
      std::cerr << "--broker: " << *why << "\n";
      return 1;
    }
    config.broker.uri = broker_override;
  }
  if (check_only) {
    std::cout << config_path << ": ok\n";
    return 0;
  }
  if (token_cmd->parsed()) {
    if (auto why = rtm::topics::name_error(uid, "uid")) {
      std::cerr << "--uid: " << *why << "\n";
      return 1;
    }
    if (ttl < 1 || ttl > config.auth.max_token_ttl_s) {
      std::cerr << "--ttl: must be between 1 and auth.max_token_ttl_s ("
                << config.auth.max_token_ttl_s << "), got " << ttl << "\n";
      return 1;
    }
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::cout << sign_token({uid, now, now + ttl, std::nullopt}, config.auth.token_secret) << "\n";
    return 0;
  }
  try {
    return run_gateway(config);
  } catch (const std::exception& e) {
    spdlog::critical("gateway stopped: {}", e.what());
    return 2;
  }
}
