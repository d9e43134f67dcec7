#pragma once
// Shared parts of the benchmark programs: clocks, percentiles, /proc readings, Paho
// clients, and a small JSON result writer.
#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtm::bench {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: comparable across processes
using namespace std::chrono_literals;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}
inline Clock::time_point from_ns(std::int64_t ns) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// Percentiles of a set of samples in nanoseconds (nearest rank).
struct Summary {
  std::size_t count = 0;
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};
// Sorts `samples`.
Summary summarize(std::vector<std::int64_t>& samples);
// The value at quantile q (0..1) of sorted samples, in ms.
double quantile_ms(const std::vector<std::int64_t>& sorted, double q);
std::string format_summary(const Summary& s);

// CPU time (user + system) and resident memory of a process, from /proc.
struct ProcSample {
  double cpu_s = 0;
  long rss_kb = 0;
};
std::optional<ProcSample> read_proc(int pid);

// CPU seconds a process spent between two samples (0 without a pid).
class CpuMeter {
 public:
  explicit CpuMeter(int pid) : pid_(pid) { reset(); }
  void reset();
  double elapsed_cpu_s() const;

 private:
  int pid_;
  double start_ = 0;
};

// Microseconds in which some runnable task of the machine waited for a CPU (PSI,
// /proc/pressure/cpu "some" total); nullopt where the kernel has no PSI. Over an interval,
// its growth divided by the interval says how much the run queued for the CPUs.
std::optional<std::uint64_t> cpu_stall_us();

// A Paho client with a large send buffer, connected with a clean session (3.1.1).
std::unique_ptr<mqtt::async_client> make_client(const std::string& uri, const std::string& id);
// With a username, it logs in with it and `password` (a token login: see token_for).
void connect(mqtt::async_client& client, std::chrono::milliseconds timeout = 10s,
             const std::string& username = "", const std::string& password = "");
// Subscribes and waits for the SUBACK; throws if the broker refuses.
void subscribe(mqtt::async_client& client, const std::string& filter, int qos);
void disconnect(mqtt::async_client& client);

// Counts publishes handed to Paho and not yet written (QoS 0) or acknowledged (QoS 1),
// so that a sender can bound what it has in flight.
class InFlight final : public mqtt::iaction_listener {
 public:
  std::int64_t count() const { return count_.load(std::memory_order_acquire); }
  void add() { count_.fetch_add(1, std::memory_order_acq_rel); }
  void on_success(const mqtt::token&) override { count_.fetch_sub(1, std::memory_order_acq_rel); }
  void on_failure(const mqtt::token&) override {
    failed_.fetch_add(1, std::memory_order_relaxed);
    count_.fetch_sub(1, std::memory_order_acq_rel);
  }
  std::uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // The publish never reached Paho (it threw).
  void refused() {
    failed_.fetch_add(1, std::memory_order_relaxed);
    count_.fetch_sub(1, std::memory_order_acq_rel);
  }

 private:
  std::atomic<std::int64_t> count_{0};
  std::atomic<std::uint64_t> failed_{0};
};

// Publishes through `client`, counting the message in `flight`; false if Paho refused it.
bool publish_counted(mqtt::async_client& client, InFlight& flight, const std::string& topic,
                     std::string_view payload, int qos);

// A flat JSON object of results, written at the end of a run: {"key": value, ...} with
// nested objects by "a.b" keys kept flat on purpose (easy to read back in the report).
class Results {
 public:
  void set(const std::string& key, double value);
  void set(const std::string& key, const std::string& value);
  void add_summary(const std::string& prefix, const Summary& s);
  void write(const std::string& path) const;  // no-op when path is empty

 private:
  std::map<std::string, std::string> values_;  // key -> JSON text
};

std::string token_for(const std::string& uid, const std::string& secret, int ttl_s = 3600);

}  // namespace rtm::bench
