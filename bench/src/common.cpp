#include "common.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "rtm/tokens/jwt.hpp"

namespace rtm::bench {

double quantile_ms(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  if (rank == 0) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

Summary summarize(std::vector<std::int64_t>& samples) {
  Summary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  long double sum = 0;
  for (auto v : samples) sum += v;
  s.mean_ms = static_cast<double>(sum / samples.size()) / 1e6;
  s.p50_ms = quantile_ms(samples, 0.50);
  s.p90_ms = quantile_ms(samples, 0.90);
  s.p99_ms = quantile_ms(samples, 0.99);
  s.p999_ms = quantile_ms(samples, 0.999);
  s.max_ms = static_cast<double>(samples.back()) / 1e6;
  return s;
}

std::string format_summary(const Summary& s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  (n=%zu)", s.p50_ms,
                s.p99_ms, s.p999_ms, s.max_ms, s.count);
  return buf;
}

std::optional<ProcSample> read_proc(int pid) {
  if (pid <= 0) return std::nullopt;
  ProcSample out;
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) return std::nullopt;
    // The command name (field 2) may hold spaces: fields count from after its ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) {
        stime = std::stoull(field);
        break;
      }
    }
    out.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) out.rss_kb = std::stol(line.substr(6));
  }
  return out;
}

std::optional<std::uint64_t> cpu_stall_us() {
  std::ifstream in("/proc/pressure/cpu");
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("total=");
    if (line.rfind("some ", 0) == 0 && at != std::string::npos)
      return std::stoull(line.substr(at + 6));
  }
  return std::nullopt;
}

void CpuMeter::reset() {
  auto s = read_proc(pid_);
  start_ = s ? s->cpu_s : 0;
}

double CpuMeter::elapsed_cpu_s() const {
  auto s = read_proc(pid_);
  return s ? s->cpu_s - start_ : 0;
}

std::unique_ptr<mqtt::async_client> make_client(const std::string& uri, const std::string& id) {
  return std::make_unique<mqtt::async_client>(uri, id,
                                              mqtt::create_options(MQTTVERSION_3_1_1, 1000000));
}

void connect(mqtt::async_client& client, std::chrono::milliseconds timeout, const std::string& username,
             const std::string& password) {
  mqtt::connect_options opts;
  if (!username.empty()) {
    opts.set_user_name(username);
    opts.set_password(password);
  }
  opts.set_mqtt_version(MQTTVERSION_3_1_1);
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(60);
  opts.set_max_inflight(65535);
  auto tok = client.connect(opts);
  if (!tok->wait_for(timeout)) throw std::runtime_error("connect to " + client.get_server_uri() + " timed out");
}

void subscribe(mqtt::async_client& client, const std::string& filter, int qos) {
  auto tok = client.subscribe(filter, qos);
  if (!tok->wait_for(10s)) throw std::runtime_error("subscribe " + filter + " timed out");
  auto codes = tok->get_subscribe_response().get_reason_codes();
  if (!codes.empty() && codes[0] >= 0x80) throw std::runtime_error("broker refused " + filter);
}

void disconnect(mqtt::async_client& client) {
  try {
    if (client.is_connected()) client.disconnect(1000)->wait_for(3s);
  } catch (const std::exception&) {
  }
}


bool publish_counted(mqtt::async_client& client, InFlight& flight, const std::string& topic,
                     std::string_view payload, int qos) {
  flight.add();
  try {
    client.publish(topic, payload.data(), payload.size(), qos, false, nullptr, flight);
    return true;
  } catch (const std::exception&) {
    flight.refused();
    return false;
  }
}

namespace {
std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace

void Results::set(const std::string& key, double value) {
  if (!std::isfinite(value)) {
    values_[key] = "null";
    return;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  values_[key] = buf;
}

void Results::set(const std::string& key, const std::string& value) { values_[key] = json_quote(value); }

void Results::add_summary(const std::string& prefix, const Summary& s) {
  set(prefix + ".count", static_cast<double>(s.count));
  set(prefix + ".mean_ms", s.mean_ms);
  set(prefix + ".p50_ms", s.p50_ms);
  set(prefix + ".p90_ms", s.p90_ms);
  set(prefix + ".p99_ms", s.p99_ms);
  set(prefix + ".p999_ms", s.p999_ms);
  set(prefix + ".max_ms", s.max_ms);
}

void Results::write(const std::string& path) const {
  if (path.empty()) return;
  std::ofstream out(path);
  out << "{\n";
  bool first = true;
  for (const auto& [k, v] : values_) {
    if (!first) out << ",\n";
    first = false;
    out << "  " << json_quote(k) << ": " << v;
  }
  out << "\n}\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string token_for(const std::string& uid, const std::string& secret, int ttl_s) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return gateway::sign_token({uid, now, now + ttl_s, std::nullopt, std::nullopt}, secret);
}

}  // namespace rtm::bench
