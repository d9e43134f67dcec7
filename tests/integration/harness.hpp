#pragma once
// Real parts for integration tests: a Mosquitto the test starts on a free port with its
// own config, the real rtm-gateway binary, and real Paho clients. Waiting is always for
// an event with a deadline, never a fixed sleep.
#include <mqtt/async_client.h>
#include <rapidjson/document.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rtm::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

int free_port();
// Full path of an installed program (PATH, then the sbin directories).
std::string find_program(const std::string& name);
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);

// A child process with its output in a log file.
class Process {
 public:
  Process() = default;
  Process(const std::vector<std::string>& argv, const std::filesystem::path& log_path);
  ~Process();
  Process(Process&&) = delete;
  bool running();
  // SIGTERM (or `sig`), then wait up to `grace` before SIGKILL. Returns the exit status.
  int stop(int sig = 15, std::chrono::milliseconds grace = 5000ms);
  void kill_hard() { stop(9, 0ms); }
  int pid() const { return pid_; }
  std::string log() const;

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_path_;
};

// Runs a command to completion; returns exit code and combined output.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = 30000ms);

class Mosquitto {
 public:
  // `extra_config` lines are appended to the generated mosquitto.conf. Files it names
  // (plugin, acl_file, password_file, ...) are handed to the broker as copies in its own
  // temp dir: see readable_copies() in harness.cpp.
  // `websockets` adds an MQTT-over-WebSockets listener on a second free port, with the same
  // settings (logins, plugin, ACL) as the TCP one.
  explicit Mosquitto(std::string extra_config = "", bool allow_anonymous = true,
                     bool websockets = false);
  ~Mosquitto();
  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int ws_port() const { return ws_port_; }  // 0 without a WebSockets listener
  std::string ws_uri() const { return "ws://127.0.0.1:" + std::to_string(ws_port_); }
  void start();  // (re)starts on the same port, waits until it accepts connections
  void kill_hard();
  void stop();
  int pid() const { return process_ ? process_->pid() : -1; }
  std::string log() const;
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  int port_;
  int ws_port_ = 0;
  std::string extra_config_;
  bool allow_anonymous_;
  std::unique_ptr<Process> process_;
};

// A private, throw-away RabbitMQ node (Debian's rabbitmq-server 3.10) with its MQTT plugin,
// as root, on free ports, with its data, logs and a private epmd in its own temp dir; the
// system's node (if any) is never touched. Starting takes 10-20 s (a fixed wait of the MQTT
// plugin among it): share one per test binary.
struct RabbitMqOptions {
  std::vector<std::string> plugins;  // enabled besides rabbitmq_mqtt
  std::string extra_config;          // rabbitmq.conf lines appended to the generated ones
  // MQTT over WebSockets (rabbitmq_web_mqtt) on a free port, at path /mqtt as on Mosquitto.
  bool websockets = false;
};

class RabbitMq {
 public:
  RabbitMq() : RabbitMq(RabbitMqOptions{}) {}
  // A node of its own (e.g. with rabbitmq_auth_backend_http): the shared one stays plain.
  explicit RabbitMq(RabbitMqOptions options);
  ~RabbitMq();
  int port() const { return mqtt_port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(mqtt_port_); }
  // With options.websockets (the shared node has it).
  std::string ws_uri() const { return "ws://127.0.0.1:" + std::to_string(ws_port_) + "/mqtt"; }
  void start();  // (re)starts on the same ports, waits until MQTT accepts connections
  void stop();
  std::string log() const;
  // The node as the tests share it; started on first use.
  static RabbitMq& shared();

 private:
  TempDir dir_;
  RabbitMqOptions options_;
  int mqtt_port_, amqp_port_, dist_port_, epmd_port_;
  int ws_port_ = 0;
  std::unique_ptr<Process> process_;
};

// A private Redis (Debian's redis-server) on a free port of 127.0.0.1, with its own config:
// no persistence unless `extra_config` asks for it (its files in its temp dir), `requirepass`
// when `password` is set. Starts in well under a second: one per test.
class Redis {
 public:
  explicit Redis(std::string password = "", std::string extra_config = "");
  ~Redis();
  Redis(Redis&&) = delete;
  int port() const { return port_; }
  std::string uri() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  void start();  // (re)starts on the same port, waits until it accepts connections
  void stop();
  void kill_hard();
  std::string log() const;

 private:
  TempDir dir_;
  int port_;
  std::string password_;
  std::string extra_config_;
  std::unique_ptr<Process> process_;
};

// A private Aedes (examples/aedes/broker.mjs, a Node broker, everything in memory) on a free
// port. It runs from BUILD_DIR/aedes, where the ctest fixture `aedes_npm_ci`
// (scripts/aedes-deps.sh) put the script and its locked npm dependencies. Starts in well under
// a second: one per test, like Mosquitto. `no_delay` false leaves Nagle on (measurements only).
class Aedes {
 public:
  explicit Aedes(bool no_delay = true);
  ~Aedes();
  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  void start();  // (re)starts on the same port, waits until it accepts connections
  void kill_hard();
  void stop();
  int pid() const { return process_ ? process_->pid() : -1; }
  std::string log() const;
  // Where the fixture installs it (BUILD_DIR/aedes).
  static std::filesystem::path install_dir();

 private:
  TempDir dir_;
  int port_;
  bool no_delay_;
  std::unique_ptr<Process> process_;
};

// Path of a built binary (set by CMake).
std::string gateway_binary();

struct GatewayOptions {
  std::string extra_yaml;  // top-level sections appended to the generated config
  std::string prefix = "rtm";
  std::string username = "rtm-gateway";  // the gateway's broker credentials
  std::string password;
  std::string log_level = "debug";
  std::vector<std::string> args;  // command-line options after --config FILE
  std::string broker_profile = {};  // broker.profile; empty: the gateway's default
  std::string auth_yaml = {};       // more keys of the generated auth section ("  key: value\n")
};

class GatewayProcess {
 public:
  GatewayProcess(const std::string& broker_uri, GatewayOptions options);
  explicit GatewayProcess(const std::string& broker_uri)
      : GatewayProcess(broker_uri, GatewayOptions{}) {}
  ~GatewayProcess();
  void start();
  int stop() { return process_ ? process_->stop() : -1; }
  // SIGKILL: no clean stop, no goodbye (the crash the state must survive).
  void kill_hard() {
    if (process_) process_->kill_hard();
  }
  int pid() const { return process_ ? process_->pid() : -1; }
  bool running() { return process_ && process_->running(); }
  std::string log() const { return process_ ? process_->log() : ""; }
  const std::filesystem::path& config_path() const { return config_path_; }
  static constexpr const char* kSecret = "integration-test-secret-0123456789abcdef";

 private:
  TempDir dir_;
  std::filesystem::path config_path_;
  std::vector<std::string> args_;
  std::unique_ptr<Process> process_;
};

struct Received {
  std::string topic;
  std::string payload;
  bool retained = false;
};

// A real Paho client that collects what it receives.
class Client {
 public:
  struct Options {
    std::string username;
    std::string password;
    std::string will_topic;
    std::string will_payload;
    bool will_retain = true;
    bool clean_session = true;
  };
  Client(const std::string& uri, const std::string& client_id, Options options);
  Client(const std::string& uri, const std::string& client_id)
      : Client(uri, client_id, Options{}) {}
  ~Client();

  // Connects; throws on failure.
  void connect(std::chrono::milliseconds timeout = 10000ms);
  // Waits for the SUBACK; returns the granted QoS (128 = refused by the broker).
  int subscribe(const std::string& filter, int qos = 1);
  void unsubscribe(const std::string& filter);
  void publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false);
  void disconnect();
  bool connected();

  // The first received message (in arrival order) whose topic matches `filter`,
  // removed from the buffer; nullopt at the deadline.
  std::optional<Received> wait_for(const std::string& filter,
                                   std::chrono::milliseconds timeout = 10000ms);
  // Everything matching `filter` received so far, removed from the buffer.
  std::vector<Received> take(const std::string& filter);
  // How many messages are buffered.
  std::size_t buffered();

 private:
  static std::mutex& live_clients_mutex();
  static std::set<Client*>& live_clients();

  std::string uri_;
  Options options_;
  std::unique_ptr<mqtt::async_client> client_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Received> messages_;
};

// Sends a request as `uid` and waits for its response: P/req/{uid}/{uri} → P/u/{uid}/res/{uri}.
// The client must be subscribed to P/u/{uid}/#.
rapidjson::Document request(Client& client, const std::string& uid, const std::string& uri,
                            const std::string& payload = "", const std::string& prefix = "rtm",
                            std::chrono::milliseconds timeout = 10000ms);

// An answer or event as compact JSON text (for messages); a JSON text parsed (not an object
// when it does not parse); whether an answer says code 0.
std::string json_text(const rapidjson::Value& v);
rapidjson::Document parse_json(const std::string& text);
bool answered_ok(const rapidjson::Document& answer);

// Pings as `uid` until the gateway answers (or the deadline passes): the gateway is ready.
bool wait_gateway_ready(const std::string& broker_uri, std::chrono::milliseconds timeout = 20000ms,
                        const std::string& prefix = "rtm");

std::string unique_id(const std::string& base);

// The next JSON event on `filter` whose "event" is `name` (and whose "state" is `state`, when
// given), skipping and consuming others; nullopt at the deadline.
std::optional<rapidjson::Document> wait_event(Client& c, const std::string& filter,
                                              const std::string& name,
                                              const std::string& state = "",
                                              std::chrono::milliseconds timeout = 10000ms);

// Waits until read() (a log, read again each time) holds `text` at or after byte `from`;
// returns where the text ends there, nullopt at the deadline.
std::optional<std::size_t> wait_for_text(const std::function<std::string()>& read,
                                         const std::string& text, std::size_t from = 0,
                                         std::chrono::milliseconds timeout = 10000ms);

// A login token for `uid`, valid for `ttl_s`, signed with GatewayProcess::kSecret (the secret
// of every gateway the tests start), as an app's backend would make it.
std::string token_for(const std::string& uid, std::int64_t ttl_s = 3600);

}  // namespace rtm::test
