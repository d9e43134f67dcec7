#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "rtm/sdk/net.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  for (int i = 0; i < 100; ++i) {
    auto candidate = fs::temp_directory_path() / ("rtm-test-" + std::to_string(rd()));
    if (fs::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind to a free port failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

static bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Waits until `process` accepts connections on every port of `ports` (0: none there); throws,
// with the server's log, when it exits first or at the deadline.
static void wait_accepting(Process& process, std::initializer_list<int> ports,
                           std::chrono::milliseconds timeout, const std::string& name,
                           const std::function<std::string()>& log) {
  const auto accepting = [&] {
    return std::all_of(ports.begin(), ports.end(), [](int p) { return p == 0 || port_accepts(p); });
  };
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!process.running()) throw std::runtime_error(name + " exited at start: " + log());
    if (accepting()) return;
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error(name + " did not accept connections within " +
                           std::to_string(timeout.count() / 1000) + " s: " + log());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string find_program(const std::string& name) {
  std::vector<std::string> dirs{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"};
  if (const char* path = std::getenv("PATH")) {
    std::stringstream s(path);
    std::string dir;
    while (std::getline(s, dir, ':')) dirs.insert(dirs.begin(), dir);
  }
  for (const auto& dir : dirs) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  throw std::runtime_error(name + " not found (is it installed?)");
}

Process::Process(const std::vector<std::string>& argv, const fs::path& log_path)
    : log_path_(log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (running()) stop(SIGKILL, 0ms);
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

int Process::stop(int sig, std::chrono::milliseconds grace) {
  if (running()) {
    ::kill(pid_, sig);
    const auto deadline = Clock::now() + grace;
    while (running() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    if (running()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = status;
    }
  }
  if (!status_) return -1;
  return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : 128 + WTERMSIG(*status_);
}

std::string Process::log() const {
  return read_file(log_path_);
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir dir;
  std::vector<std::string> full = argv;
  if (full[0].find('/') == std::string::npos) full[0] = find_program(full[0]);
  Process p(full, dir.path() / "out.log");
  const auto deadline = Clock::now() + timeout;
  while (p.running() && Clock::now() < deadline) std::this_thread::sleep_for(2ms);
  int code = p.stop(SIGKILL, 0ms);
  return {code, p.log()};
}

Mosquitto::Mosquitto(std::string extra_config, bool allow_anonymous, bool websockets)
    : port_(free_port()),
      extra_config_(std::move(extra_config)),
      allow_anonymous_(allow_anonymous) {
  while (websockets && (ws_port_ == 0 || ws_port_ == port_)) ws_port_ = free_port();
  start();
}

Mosquitto::~Mosquitto() {
  stop();
}

// Mosquitto started as root switches to the `mosquitto` user before it loads plugins and
// reads its ACL and password files. A checkout in a private directory (0700, such as root's
// home) would make those files unreadable ("Permission denied"), so the broker gets copies
// in its own temp dir, readable by everyone: tests never depend on where the checkout sits.
static std::string readable_copies(const std::string& config, const fs::path& dir) {
  static const std::set<std::string> file_directives{"plugin", "auth_plugin", "acl_file",
                                                     "password_file", "psk_file"};
  const fs::path files = dir / "files";
  fs::create_directories(files);
  fs::permissions(files, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  std::istringstream in(config);
  std::ostringstream out;
  std::string line;
  for (int n = 0; std::getline(in, line); ++n) {
    const auto space = line.find(' ');
    const std::string directive = line.substr(0, space);
    const bool names_file = file_directives.count(directive) > 0 ||
                            (directive.rfind("plugin_opt_", 0) == 0 && directive.size() > 16 &&
                             directive.compare(directive.size() - 5, 5, "_file") == 0);
    if (!names_file || space == std::string::npos) {
      out << line << "\n";
      continue;
    }
    const fs::path source = line.substr(space + 1);
    const fs::path copy = files / (std::to_string(n) + "-" + source.filename().string());
    fs::copy_file(source, copy, fs::copy_options::overwrite_existing);
    fs::permissions(copy, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read);
    out << directive << " " << copy.string() << "\n";
  }
  return out.str();
}

void Mosquitto::start() {
  // The broker's dir must be traversable by the `mosquitto` user (see readable_copies).
  fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
  std::ostringstream conf;
  conf << "listener " << port_ << " 127.0.0.1\n";
  if (ws_port_ != 0) conf << "listener " << ws_port_ << " 127.0.0.1\nprotocol websockets\n";
  conf << "allow_anonymous " << (allow_anonymous_ ? "true" : "false") << "\n"
       << "set_tcp_nodelay true\n"
       // Off unless the test's own lines turn it on (Mosquitto takes the first value).
       << (extra_config_.find("persistence true") == std::string::npos ? "persistence false\n" : "")
       << "log_dest stdout\n"
       << "log_type error\nlog_type warning\nlog_type notice\n"
       << readable_copies(extra_config_, dir_.path());
  write_file(dir_.path() / "mosquitto.conf", conf.str());
  // Line-buffered stdout (stdbuf execs the broker: same pid): a broker writing to a file
  // keeps its log lines, the plugin's among them, in a buffer until it fills.
  process_ = std::make_unique<Process>(
      std::vector<std::string>{find_program("stdbuf"), "-oL", find_program("mosquitto"), "-c",
                               (dir_.path() / "mosquitto.conf").string()},
      dir_.path() / "mosquitto.log");
  wait_accepting(*process_, {port_, ws_port_}, 10s, "mosquitto", [this] { return log(); });
}

void Mosquitto::kill_hard() {
  if (process_) process_->kill_hard();
}

void Mosquitto::stop() {
  if (process_) process_->stop();
}

std::string Mosquitto::log() const {
  return read_file(dir_.path() / "mosquitto.log");
}

namespace {

constexpr const char* kRabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server";
constexpr auto kRabbitStartDeadline = 90s;  // 10-20 s on 2 cores; more under load

}  // namespace

RabbitMq::RabbitMq(RabbitMqOptions options)
    : options_(std::move(options)),
      mqtt_port_(free_port()),
      amqp_port_(free_port()),
      dist_port_(free_port()),
      epmd_port_(free_port()) {
  if (options_.websockets) {
    options_.plugins.push_back("rabbitmq_web_mqtt");
    ws_port_ = free_port();
  }
  start();
}

RabbitMq::~RabbitMq() {
  stop();
}

RabbitMq& RabbitMq::shared() {
  static RabbitMq node(RabbitMqOptions{{}, "", /*websockets=*/true});
  return node;
}

void RabbitMq::start() {
  if (!fs::exists(kRabbitServer)) {
    throw std::runtime_error(std::string(kRabbitServer) +
                             " is missing: install rabbitmq-server (scripts/install-deps.sh)");
  }
  const fs::path d = dir_.path();
  for (const char* sub : {"mnesia", "log", "home"}) fs::create_directories(d / sub);
  std::string plugins = "[rabbitmq_mqtt";
  for (const auto& p : options_.plugins) plugins += "," + p;
  write_file(d / "enabled_plugins", plugins + "].\n");
  write_file(d / "rabbitmq-env.conf", "");  // keeps /etc/rabbitmq/rabbitmq-env.conf out
  std::ostringstream conf;
  conf << "listeners.tcp.default = 127.0.0.1:" << amqp_port_ << "\n"
       << "mqtt.listeners.tcp.default = 127.0.0.1:" << mqtt_port_ << "\n"
       << "mqtt.allow_anonymous = true\nmqtt.default_user = guest\nmqtt.default_pass = guest\n"
       << "mqtt.vhost = /\nmqtt.exchange = amq.topic\nloopback_users = none\n"
       << "log.console = false\nlog.file.level = info\ndisk_free_limit.absolute = 10MB\n";
  if (ws_port_ != 0) {
    conf << "web_mqtt.tcp.ip = 127.0.0.1\nweb_mqtt.tcp.port = " << ws_port_
         << "\nweb_mqtt.ws_path = /mqtt\n";
  }
  conf << options_.extra_config;
  write_file(d / "rabbitmq.conf", conf.str());
  // env(1) sets the node's environment and execs the server script, which (with
  // RABBITMQ_ALLOW_INPUT) execs erl: the process is the node itself.
  const std::vector<std::string> argv{
      "/usr/bin/env",
      "HOME=" + (d / "home").string(),
      "ERL_EPMD_PORT=" + std::to_string(epmd_port_),
      "ERL_EPMD_ADDRESS=127.0.0.1",
      "RABBITMQ_NODENAME=rtm-test-" + std::to_string(mqtt_port_) + "@localhost",
      "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
      "RABBITMQ_NODE_PORT=" + std::to_string(amqp_port_),
      "RABBITMQ_DIST_PORT=" + std::to_string(dist_port_),
      "RABBITMQ_CONF_ENV_FILE=" + (d / "rabbitmq-env.conf").string(),
      "RABBITMQ_CONFIG_FILE=" + (d / "rabbitmq.conf").string(),
      "RABBITMQ_ADVANCED_CONFIG_FILE=" + (d / "advanced.config").string(),
      "RABBITMQ_ENABLED_PLUGINS_FILE=" + (d / "enabled_plugins").string(),
      "RABBITMQ_MNESIA_BASE=" + (d / "mnesia").string(),
      "RABBITMQ_LOG_BASE=" + (d / "log").string(),
      "RABBITMQ_PID_FILE=" + (d / "rabbit.pid").string(),
      "RABBITMQ_ALLOW_INPUT=1",
      "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -kernel inet_dist_use_interface {127,0,0,1}",
      kRabbitServer};
  process_ = std::make_unique<Process>(argv, d / "log" / "stdout.log");
  wait_accepting(*process_, {mqtt_port_, ws_port_}, kRabbitStartDeadline, "rabbitmq",
                 [this] { return log(); });
}

void RabbitMq::stop() {
  if (process_) process_->stop(SIGTERM, 10000ms);
  // The node's private epmd outlives it.
  run_command({"/usr/bin/env", "ERL_EPMD_PORT=" + std::to_string(epmd_port_), find_program("epmd"),
               "-port", std::to_string(epmd_port_), "-kill"},
              5000ms);
}

std::string RabbitMq::log() const {
  std::string text;
  for (const auto& entry : fs::directory_iterator(dir_.path() / "log")) {
    if (entry.is_regular_file()) text += read_file(entry.path());
  }
  return text;
}

Redis::Redis(std::string password, std::string extra_config)
    : port_(free_port()), password_(std::move(password)), extra_config_(std::move(extra_config)) {
  start();
}

Redis::~Redis() {
  stop();
}

void Redis::start() {
  std::ostringstream conf;
  conf << "port " << port_ << "\nbind 127.0.0.1\nprotected-mode yes\ndaemonize no\n"
       << "dir " << dir_.path().string() << "\nsave \"\"\nappendonly no\nlogfile \"\"\n";
  if (!password_.empty()) conf << "requirepass " << password_ << "\n";
  conf << extra_config_;
  write_file(dir_.path() / "redis.conf", conf.str());
  process_ = std::make_unique<Process>(
      std::vector<std::string>{find_program("redis-server"), (dir_.path() / "redis.conf").string()},
      dir_.path() / "redis.log");
  wait_accepting(*process_, {port_}, 10s, "redis-server", [this] { return log(); });
}

void Redis::stop() {
  if (process_) process_->stop();
}

void Redis::kill_hard() {
  if (process_) process_->kill_hard();
}

std::string Redis::log() const {
  return read_file(dir_.path() / "redis.log");
}

Aedes::Aedes(bool no_delay) : port_(free_port()), no_delay_(no_delay) {
  start();
}

Aedes::~Aedes() {
  stop();
}

fs::path Aedes::install_dir() {
  return RTM_AEDES_DIR;
}

void Aedes::start() {
  const fs::path dir = install_dir();
  if (!fs::exists(dir / "broker.mjs") || !fs::exists(dir / "node_modules" / "aedes")) {
    throw std::runtime_error("Aedes is not installed in " + dir.string() +
                             ": run `ctest -R aedes_npm_ci` (scripts/aedes-deps.sh " +
                             dir.string() + ")");
  }
  std::vector<std::string> argv{find_program("node"), (dir / "broker.mjs").string(), "--port",
                                std::to_string(port_)};
  if (!no_delay_) argv.push_back("--no-nodelay");
  process_ = std::make_unique<Process>(argv, dir_.path() / "aedes.log");
  wait_accepting(*process_, {port_}, 20s, "aedes", [this] { return log(); });
}

void Aedes::kill_hard() {
  if (process_) process_->kill_hard();
}

void Aedes::stop() {
  if (process_) process_->stop();
}

std::string Aedes::log() const {
  return read_file(dir_.path() / "aedes.log");
}

std::string gateway_binary() {
  return RTM_GATEWAY_BIN;
}

GatewayProcess::GatewayProcess(const std::string& broker_uri, GatewayOptions options) {
  config_path_ = dir_.path() / "config.yaml";
  std::ostringstream yaml;
  yaml << "broker:\n  uri: " << broker_uri << "\n  client_id: " << unique_id("gw")
       << "\n  username: \"" << options.username << "\"\n  password: \"" << options.password
       << "\"\n  reconnect_min_ms: 50\n  reconnect_max_ms: 500\n"
       << (options.broker_profile.empty() ? "" : "  profile: " + options.broker_profile + "\n")
       << "topics:\n  prefix: " << options.prefix << "\n"
       << "auth:\n  token_secret: " << kSecret << "\n"
       << options.auth_yaml << "log:\n  level: " << options.log_level << "\n  stats_interval_s: 1\n"
       << options.extra_yaml;
  write_file(config_path_, yaml.str());
  args_ = std::move(options.args);
  start();
}

GatewayProcess::~GatewayProcess() {
  if (process_) process_->stop();
}

void GatewayProcess::start() {
  std::vector<std::string> argv{gateway_binary(), "--config", config_path_.string()};
  argv.insert(argv.end(), args_.begin(), args_.end());
  process_ = std::make_unique<Process>(std::move(argv), dir_.path() / "gateway.log");
}

std::mutex& Client::live_clients_mutex() {
  static std::mutex m;
  return m;
}

std::set<Client*>& Client::live_clients() {
  static std::set<Client*> clients;
  return clients;
}

Client::Client(const std::string& uri, const std::string& client_id, Options options)
    : uri_(uri), options_(std::move(options)) {
  {
    std::lock_guard<std::mutex> lock(live_clients_mutex());
    live_clients().insert(this);
  }
  client_ = std::make_unique<mqtt::async_client>(uri, client_id,
                                                 mqtt::create_options(MQTTVERSION_3_1_1, 100000));
  client_->set_message_callback([this](mqtt::const_message_ptr m) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back({m->get_topic(), m->get_payload_str(), m->is_retained()});
    }
    cv_.notify_all();
  });
}

Client::~Client() {
  {
    std::lock_guard<std::mutex> lock(live_clients_mutex());
    live_clients().erase(this);
  }
  try {
    if (client_->is_connected()) client_->disconnect(0)->wait_for(2s);
  } catch (...) {
  }
}

void Client::connect(std::chrono::milliseconds timeout) {
  mqtt::connect_options opts;
  opts.set_mqtt_version(MQTTVERSION_3_1_1);
  opts.set_clean_session(options_.clean_session);
  opts.set_keep_alive_interval(30);
  if (!options_.username.empty()) opts.set_user_name(options_.username);
  if (!options_.password.empty()) opts.set_password(options_.password);
  if (!options_.will_topic.empty()) {
    opts.set_will(
        mqtt::will_options(options_.will_topic, options_.will_payload, 1, options_.will_retain));
  }
  auto tok = client_->connect(opts);
  // Paho C 1.3.12's shared receive thread notices a new socket only after up to two 1 s
  // waits (paho.mqtt.c #1039, #1430) unless a packet arrives on a socket it already
  // watches: another live client of the process asks for an UNSUBACK meanwhile.
  const auto deadline = Clock::now() + timeout;
  bool done = tok->wait_for(std::chrono::milliseconds(2));
  while (!done && Clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(live_clients_mutex());
      for (auto* other : live_clients()) {
        if (other == this) continue;
        try {
          if (other->client_->is_connected()) {
            other->client_->unsubscribe("rtm-test/paho-wake");
            break;
          }
        } catch (const std::exception&) {
        }
      }
    }
    done = tok->wait_for(std::chrono::milliseconds(3));
  }
  if (!done) throw std::runtime_error("connect timed out");
  rtm::sdk::enable_tcp_nodelay_to(uri_);  // as a real app would: no 40 ms Nagle waits
}

int Client::subscribe(const std::string& filter, int qos) {
  auto tok = client_->subscribe(filter, qos);
  if (!tok->wait_for(10s)) throw std::runtime_error("subscribe timed out");
  auto rsp = tok->get_subscribe_response();
  return rsp.get_reason_codes().empty() ? -1 : static_cast<int>(rsp.get_reason_codes()[0]);
}

void Client::unsubscribe(const std::string& filter) {
  client_->unsubscribe(filter)->wait_for(10s);
}

void Client::publish(const std::string& topic, const std::string& payload, int qos, bool retain) {
  auto tok = client_->publish(topic, payload.data(), payload.size(), qos, retain);
  if (qos > 0) tok->wait_for(10s);
}

void Client::disconnect() {
  if (client_->is_connected()) client_->disconnect()->wait_for(5s);
}

bool Client::connected() {
  return client_->is_connected();
}

std::optional<Received> Client::wait_for(const std::string& filter,
                                         std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    for (auto it = messages_.begin(); it != messages_.end(); ++it) {
      if (topics::filter_matches(filter, it->topic)) {
        Received r = std::move(*it);
        messages_.erase(it);
        return r;
      }
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      // one last look after the deadline
      for (auto it = messages_.begin(); it != messages_.end(); ++it) {
        if (topics::filter_matches(filter, it->topic)) {
          Received r = std::move(*it);
          messages_.erase(it);
          return r;
        }
      }
      return std::nullopt;
    }
  }
}

std::vector<Received> Client::take(const std::string& filter) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Received> out;
  for (auto it = messages_.begin(); it != messages_.end();) {
    if (topics::filter_matches(filter, it->topic)) {
      out.push_back(std::move(*it));
      it = messages_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::size_t Client::buffered() {
  std::lock_guard<std::mutex> lock(mutex_);
  return messages_.size();
}

rapidjson::Document request(Client& client, const std::string& uid, const std::string& uri,
                            const std::string& payload, const std::string& prefix,
                            std::chrono::milliseconds timeout) {
  client.publish(prefix + "/req/" + uid + "/" + uri, payload, 1);
  rapidjson::Document doc;
  auto got = client.wait_for(prefix + "/u/" + uid + "/res/" + uri, timeout);
  if (!got) {
    doc.SetNull();
    return doc;
  }
  doc.Parse(got->payload.c_str());
  return doc;
}

bool wait_gateway_ready(const std::string& broker_uri, std::chrono::milliseconds timeout,
                        const std::string& prefix) {
  const std::string uid = unique_id("probe");
  Client probe(broker_uri, uid);
  probe.connect();
  probe.subscribe(prefix + "/u/" + uid + "/#");
  const auto deadline = Clock::now() + timeout;
  for (int i = 1; Clock::now() < deadline; ++i) {
    auto doc = request(probe, uid, "ping?msg_id=ready-" + std::to_string(i), "", prefix, 200ms);
    if (doc.IsObject() && doc.HasMember("code") && doc["code"].GetInt() == 0) return true;
  }
  return false;
}

std::string token_for(const std::string& uid, std::int64_t ttl_s) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return rtm::gateway::sign_token({uid, now, now + ttl_s, std::nullopt, std::nullopt},
                                  GatewayProcess::kSecret);
}

std::optional<std::size_t> wait_for_text(const std::function<std::string()>& read,
                                         const std::string& text, std::size_t from,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto now = read();
    const auto at = now.find(text, std::min(from, now.size()));
    if (at != std::string::npos) return at + text.size();
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);  // polling a file, not waiting for time
  }
}

std::string unique_id(const std::string& base) {
  static std::atomic<int> counter{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

std::optional<rapidjson::Document> wait_event(Client& c, const std::string& filter,
                                              const std::string& name, const std::string& state,
                                              std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto m = c.wait_for(
        filter, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!m) break;
    rapidjson::Document d;
    d.Parse(m->payload.c_str());
    if (d.IsObject() && d.HasMember("event") && d["event"].IsString() &&
        name == d["event"].GetString() &&
        (state.empty() ||
         (d.HasMember("state") && d["state"].IsString() && state == d["state"].GetString()))) {
      return d;
    }
  }
  return std::nullopt;
}

}  // namespace rtm::test

namespace rtm::test {

std::string json_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  v.Accept(writer);
  return out.GetString();
}

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

bool answered_ok(const rapidjson::Document& answer) {
  return answer.IsObject() && answer.HasMember("code") && answer["code"].IsInt() &&
         answer["code"].GetInt() == 0;
}

}  // namespace rtm::test
