#include "flood.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "common.hpp"
#include "lean_mqtt.hpp"
#include "rtm/sdk/net.hpp"

namespace rtm::bench {
namespace {

// The victim: one ping at a time, each answer awaited, at a fixed rate.
class Victim {
 public:
  Victim(const FloodOptions& o) : o_(o), uid_("victim-" + o.tag) {
    client_ = make_client(o.broker, "flood-" + uid_);
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (m->get_topic() == expect_) {
        answered_ = true;
        cv_.notify_all();
      }
    });
    connect(*client_);
    rtm::sdk::enable_tcp_nodelay_to(o.broker);
    subscribe(*client_, o.prefix + "/u/" + uid_ + "/res/#", 1);
  }
  ~Victim() { disconnect(*client_); }

  // Pings for `seconds` (or until `count` pings, when not 0); returns the round trips in ns,
  // and counts the unanswered.
  std::vector<std::int64_t> run(double seconds, std::size_t* lost, std::size_t count = 0) {
    std::vector<std::int64_t> samples;
    const auto period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / o_.ping_hz));
    auto next = Clock::now();
    const auto end = next + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end && (count == 0 || samples.size() + *lost < count)) {
      std::this_thread::sleep_until(next);
      next += period;
      const std::string uri = "ping?msg_id=" + std::to_string(++seq_);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        expect_ = o_.prefix + "/u/" + uid_ + "/res/" + uri;
        answered_ = false;
      }
      const auto sent = now_ns();
      client_->publish(o_.prefix + "/req/" + uid_ + "/" + uri, "", 0, 1, false);
      std::unique_lock<std::mutex> lock(mutex_);
      if (cv_.wait_for(lock, 5s, [this] { return answered_; })) {
        samples.push_back(now_ns() - sent);
      } else {
        ++*lost;
      }
    }
    return samples;
  }

 private:
  const FloodOptions& o_;
  std::string uid_;
  std::unique_ptr<mqtt::async_client> client_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string expect_;
  bool answered_ = false;
  std::uint64_t seq_ = 0;
};

// The flooder: malformed requests ("{" as JSON) under one uid, as fast as its socket takes
// them. A lean connection of its own (no Paho): Paho runs all clients of a process on one
// thread, and a flood through it would delay the victim inside this process, not in the
// gateway.
class Flooder {
 public:
  Flooder(const FloodOptions& o, int n)
      : o_(o), conn_(o.broker, "flood-" + std::to_string(n) + "-" + o.tag) {}
  ~Flooder() { stop(); }
  void start() {
    thread_ = std::thread([this] {
      namespace codec = rtm::gateway::mqtt_codec;
      const std::string base = o_.prefix + "/req/mallory-" + o_.tag + "/garbage?msg_id=";
      std::uint64_t i = 0;
      while (!stop_.load(std::memory_order_relaxed)) {
        if (conn_.pending() < (1 << 20)) {
          for (int k = 0; k < 256; ++k, ++i) {
            if (codec::append_publish(conn_.out(), base + std::to_string(i), "{", 0, false, 0)) {
              sent_.fetch_add(1, std::memory_order_relaxed);
            }
          }
        }
        conn_.flush();
        if (conn_.pending() > 0) conn_.wait(10, false, true);
        conn_.read_some();
        conn_.for_each_packet([](const auto&) {});
        conn_.ping_if_idle(20);
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t sent() const { return sent_; }

 private:
  const FloodOptions& o_;
  LeanConnection conn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
};

}  // namespace

int run_flood(const FloodOptions& o) {
  Victim victim(o);
  Results results;
  std::size_t lost_quiet = 0, lost_flood = 0;
  victim.run(1, &lost_quiet);  // warm-up
  lost_quiet = 0;
  CpuMeter gw_quiet(o.gateway_pid);
  auto quiet = victim.run(o.seconds, &lost_quiet);
  const double gw_quiet_cpu = gw_quiet.elapsed_cpu_s();

  std::vector<std::unique_ptr<Flooder>> flooders;
  for (int i = 0; i < o.flooders; ++i) flooders.push_back(std::make_unique<Flooder>(o, i));
  for (auto& f : flooders) f->start();
  CpuMeter gw_flood(o.gateway_pid), broker_flood(o.broker_pid);
  const auto flood_start = now_ns();
  auto flooded = victim.run(o.seconds, &lost_flood);
  const double flood_s = static_cast<double>(now_ns() - flood_start) / 1e9;
  const double gw_flood_cpu = gw_flood.elapsed_cpu_s();
  const double broker_cpu = broker_flood.elapsed_cpu_s();
  std::uint64_t sent = 0;
  for (auto& f : flooders) {
    f->stop();
    sent += f->sent();
  }

  const auto q = summarize(quiet);
  const auto f = summarize(flooded);
  const double ratio = q.p99_ms > 0 ? f.p99_ms / q.p99_ms : 0;
  std::printf("victim without flood: %s, lost %zu\n", format_summary(q).c_str(), lost_quiet);
  std::printf("victim with flood:    %s, lost %zu\n", format_summary(f).c_str(), lost_flood);
  std::printf("flood: %.0f garbage requests/s from one uid (%d connection(s)); gateway CPU %.0f%% "
              "(quiet %.0f%%), broker CPU %.0f%%\n",
              static_cast<double>(sent) / flood_s, o.flooders, 100 * gw_flood_cpu / flood_s,
              100 * gw_quiet_cpu / o.seconds, 100 * broker_cpu / flood_s);
  std::printf("victim p99 with / without flood: %.2fx (target <= 2x)\n", ratio);
  results.add_summary("quiet", q);
  results.add_summary("flood", f);
  results.set("quiet.lost", static_cast<double>(lost_quiet));
  results.set("flood.lost", static_cast<double>(lost_flood));
  results.set("flood.rate", static_cast<double>(sent) / flood_s);
  results.set("flood.gateway_cpu", gw_flood_cpu / flood_s);
  results.set("flood.broker_cpu", broker_cpu / flood_s);
  results.set("quiet.gateway_cpu", gw_quiet_cpu / o.seconds);
  results.set("p99_ratio", ratio);
  results.write(o.json_out);
  return 0;
}

int run_ping(const PingOptions& o) {
  FloodOptions f;
  f.broker = o.broker;
  f.prefix = o.prefix;
  f.ping_hz = o.hz;
  f.tag = o.tag;
  Victim victim(f);
  std::size_t lost = 0;
  victim.run(1, &lost, 20);  // warm-up: connections, the gateway's first session
  lost = 0;
  auto samples = victim.run(o.max_seconds, &lost, o.count);
  const auto s = summarize(samples);
  std::printf("%s ping round trip: %s, lost %zu\n", o.label.c_str(), format_summary(s).c_str(),
              lost);
  Results results;
  results.add_summary("ping", s);
  results.set("ping.lost", static_cast<double>(lost));
  results.write(o.json_out);
  return 0;
}

}  // namespace rtm::bench
