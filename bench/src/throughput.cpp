// Bridge throughput. Publishers run in child processes; this process holds the subscribers
// and steps the rate. Two kinds of clients (--client):
//   lean (default): the bench's own MQTT connections (lean_mqtt.hpp: one non-blocking socket
//     with TCP_NODELAY, the gateway's codec). A publisher wakes once per tick (1 ms), appends
//     every PUBLISH that is due into one buffer and writes it with one send(); at QoS 1 it
//     reads the PUBACKs from the same socket between ticks and keeps at most `window`
//     messages unacknowledged. A subscriber thread per connection recv()s large chunks,
//     decodes every packet in them, answers QoS 1 with one write of all their PUBACKs, and
//     pauses briefly (sub_pause_us) so that the next wake-up finds many messages.
//     So neither side is the bottleneck, and the direct rate is the broker's.
//   paho: Paho MQTT C++ clients (Paho C serves all the clients of a process with one send
//     thread and one receive thread, so publishers and subscribers are in separate
//     processes). One Paho connection publishes at about a third of what Mosquitto takes.
// Method (written to results.md too):
//   1. probe: closed loop for probe_s, each publisher connection keeping at most
//      closed_window messages sent and not yet received; gives a first estimate C;
//   2. steps: open loop at a fixed rate (absolute schedule per connection) for step_s,
//      starting at C, x factor per step while clean, /factor from the start while not;
//      then one step between the last clean and the first failed rate;
//   3. a step is clean when every message arrived (no loss), the publishers reached 97% of
//      the rate, the system kept up (the median latency of the messages sent in the last
//      quarter of the step is at most 2x + 10 ms that of the second quarter: a growing queue
//      shows there) and the last message arrived within max(100 ms, 10% of the step) of the
//      last send. The result is the last clean step.
#include "throughput.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common.hpp"
#include "lean_mqtt.hpp"

namespace rtm::bench {
namespace {
namespace codec = gateway::mqtt_codec;

constexpr std::uint32_t kMagic = 0x52544d54;  // "RTMT"
constexpr int kMaxPublishers = 256;

struct Header {
  std::uint32_t magic;
  std::uint32_t run;
  std::uint32_t pub;
  std::uint32_t reserved;
  std::uint64_t seq;
  std::int64_t send_ns;
};
static_assert(sizeof(Header) == 32);

// Shared between this process and the publisher processes (anonymous shared mapping made
// before fork): the current run and, per publisher connection, what has been received.
struct Shared {
  std::atomic<std::uint32_t> run;
  std::atomic<std::uint64_t> received[kMaxPublishers];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

std::string source_topic(const ThroughputOptions& o, const std::string& pub) {
  if (o.path == "direct") return o.prefix + "/ch/tput/input/" + pub;
  return (o.qos == 0 ? "coplay/tput/" : "coplay-q1/tput/") + pub + "/input";
}
std::string data_topic(const ThroughputOptions& o, const std::string& pub) {
  return o.prefix + "/ch/tput/input/" + pub;
}
std::string pub_name(const ThroughputOptions& o, int g) {
  return "t" + std::to_string(g) + "-" + o.tag;
}
std::string sub_name(const ThroughputOptions& o, int s) {
  return "ts" + std::to_string(s) + "-" + o.tag;
}
// A lean connection as `uid` (token login with a secret) or anonymous with `anonymous_id`.
std::unique_ptr<LeanConnection> lean_as(const ThroughputOptions& o, const std::string& uid,
                                        const std::string& anonymous_id) {
  if (o.secret.empty()) return std::make_unique<LeanConnection>(o.broker, anonymous_id);
  return std::make_unique<LeanConnection>(o.broker, uid + "/tput", LeanLogin{uid, token_for(uid, o.secret)});
}

struct StepCommand {
  std::uint32_t run = 0;
  double rate_per_conn = 0;  // 0 with closed = true
  std::int64_t start_ns = 0;
  std::int64_t duration_ns = 0;
  bool closed = false;
};

struct StepReport {
  std::uint64_t sent = 0;
  std::uint64_t refused = 0;
  std::uint64_t failed = 0;
  std::int64_t last_send_ns = 0;
};

// ------------------------------------------------------------------ publisher process

class PublisherProcess {
 public:
  PublisherProcess(const ThroughputOptions& o, int proc, Shared* shared)
      : o_(o), proc_(proc), shared_(shared) {}

  void serve(FILE* in, FILE* out) {
    for (int c = 0; c < o_.pub_conns; ++c) {
      const int g = proc_ * o_.pub_conns + c;
      auto conn = std::make_unique<Conn>();
      conn->global = g;
      conn->local = c;
      conn->topic = source_topic(o_, pub_name(o_, g));
      const std::string id = "tput-" + o_.tag + "-pub-" + std::to_string(g);
      if (o_.client == "lean") {
        conn->lean = lean_as(o_, pub_name(o_, g), id);
        conn->outstanding.assign(65536, 0);
      } else {
        conn->client = make_client(o_.broker, id);
        connect(*conn->client);
      }
      conns_.push_back(std::move(conn));
    }
    std::fprintf(out, "READY\n");
    std::fflush(out);
    char line[256];
    while (std::fgets(line, sizeof line, in)) {
      StepCommand cmd;
      int closed = 0;
      long long start = 0, duration = 0;
      if (std::sscanf(line, "RUN %u %lf %lld %lld %d", &cmd.run, &cmd.rate_per_conn, &start,
                      &duration, &closed) != 5) {
        break;  // QUIT or EOF
      }
      cmd.start_ns = start;
      cmd.duration_ns = duration;
      cmd.closed = closed != 0;
      StepReport total;
      std::vector<StepReport> reports(conns_.size());
      std::vector<std::thread> threads;
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        threads.emplace_back([&, i] {
          try {
            reports[i] = conns_[i]->lean ? run_conn_lean(*conns_[i], cmd) : run_conn(*conns_[i], cmd);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "throughput publisher %d: %s\n", conns_[i]->global, e.what());
            std::fflush(stderr);
            ::_exit(1);  // the parent sees the process end
          }
        });
      }
      for (auto& t : threads) t.join();
      for (const auto& r : reports) {
        total.sent += r.sent;
        total.refused += r.refused;
        total.failed += r.failed;
        total.last_send_ns = std::max(total.last_send_ns, r.last_send_ns);
      }
      std::fprintf(out, "DONE %llu %llu %llu %lld\n", static_cast<unsigned long long>(total.sent),
                   static_cast<unsigned long long>(total.refused),
                   static_cast<unsigned long long>(total.failed),
                   static_cast<long long>(total.last_send_ns));
      std::fflush(out);
    }
    for (auto& c : conns_) {
      if (c->client) disconnect(*c->client);
    }
    conns_.clear();  // lean connections send DISCONNECT
  }

 private:
  struct Conn {
    int global = 0;
    int local = 0;  // index in this process
    std::string topic;
    std::unique_ptr<mqtt::async_client> client;  // paho
    InFlight flight;
    std::unique_ptr<LeanConnection> lean;        // lean
    std::vector<std::uint8_t> outstanding;       // lean QoS 1: packet id -> not yet acknowledged
    std::int64_t unacked = 0;
    std::uint16_t next_id = 0;
  };

  // The lean publisher: once per tick, every message that is due goes into one buffer and
  // out with one send(). QoS 1 PUBACKs are read from the same socket between ticks.
  StepReport run_conn_lean(Conn& c, const StepCommand& cmd) {
    ::prctl(PR_SET_TIMERSLACK, 1UL);
    StepReport r;
    LeanConnection& link = *c.lean;
    const std::int64_t window = o_.window > 0 ? o_.window : (o_.qos == 0 ? 5000 : 1000);
    std::string payload(static_cast<std::size_t>(std::max<int>(o_.size, sizeof(Header))), 'x');
    Header h{kMagic, cmd.run, static_cast<std::uint32_t>(c.global), 0, 0, 0};
    std::size_t packet_bytes = 0;
    {
      std::string one;
      if (!codec::append_publish(one, c.topic, payload, o_.qos, false, 1)) {
        throw std::runtime_error("cannot encode a PUBLISH on " + c.topic);
      }
      packet_bytes = one.size();
    }
    const std::int64_t end = cmd.start_ns + cmd.duration_ns;
    const double ns_per_msg = cmd.rate_per_conn > 0 ? 1e9 / cmd.rate_per_conn : 0;
    const auto tick = std::max<std::int64_t>(10'000, static_cast<std::int64_t>(o_.tick_ms * 1e6));
    // The connections of a process tick at different moments, spread over the tick.
    const std::int64_t phase = tick * c.local / std::max(1, o_.pub_conns);
    link.ping_if_idle(20);
    std::this_thread::sleep_until(from_ns(cmd.start_ns));

    auto read_acks = [&] {
      while (link.read_some() > 0) {
        link.for_each_packet([&](const codec::Packet& p) {
          if (p.type == codec::PacketType::puback && c.outstanding[p.packet_id]) {
            c.outstanding[p.packet_id] = 0;
            --c.unacked;
          }
        });
      }
    };
    auto room = [&]() -> std::int64_t {
      if (o_.qos > 0) return window - c.unacked;
      return window - static_cast<std::int64_t>(link.pending() / packet_bytes);
    };
    auto append = [&](std::int64_t n) {
      h.send_ns = now_ns();
      std::string& out = link.out();
      out.reserve(out.size() + static_cast<std::size_t>(n) * packet_bytes);
      for (; n > 0; --n) {
        std::uint16_t id = 0;
        if (o_.qos > 0) {
          id = static_cast<std::uint16_t>(c.next_id % 65535 + 1);  // 1..65535
          if (c.outstanding[id]) break;  // only with a window near 65535
          c.next_id = id;
          c.outstanding[id] = 1;
          ++c.unacked;
        }
        h.seq = r.sent;
        std::memcpy(payload.data(), &h, sizeof h);
        if (!codec::append_publish(out, c.topic, payload, o_.qos, false, id)) break;  // sized above
        ++r.sent;
      }
      r.last_send_ns = h.send_ns;
    };

    while (true) {
      const std::int64_t now = now_ns();
      if (now >= end) break;
      if (o_.qos > 0) read_acks();  // QoS 0: nothing to read but PINGRESPs, read at the end
      if (cmd.closed) {
        const auto got = shared_->received[c.global].load(std::memory_order_acquire);
        const std::int64_t allowed = std::min<std::int64_t>(
            static_cast<std::int64_t>(got) + o_.closed_window - static_cast<std::int64_t>(r.sent), room());
        if (allowed > 0) append(allowed);
        link.flush();
        if (allowed <= 0) std::this_thread::sleep_for(50us);
        continue;
      }
      const auto due = static_cast<std::int64_t>(static_cast<double>(now - cmd.start_ns) / ns_per_msg) + 1;
      const std::int64_t n = std::min(due - static_cast<std::int64_t>(r.sent), room());
      if (n > 0) append(n);
      link.flush();
      if (static_cast<std::int64_t>(r.sent) < due) {
        // Held back by the window (QoS 1: wait for PUBACKs) or by the socket.
        if (o_.qos > 0 || link.pending() > 0) link.wait(1, o_.qos > 0, link.pending() > 0);
      } else {
        const std::int64_t since = now - cmd.start_ns - phase;
        const std::int64_t next = cmd.start_ns + phase + (since < 0 ? 0 : (since / tick + 1) * tick);
        std::this_thread::sleep_until(from_ns(std::min(next, end)));
      }
    }
    // Write what is left (QoS 0) and collect the acknowledgements (QoS 1).
    const std::int64_t deadline = now_ns() + 10'000'000'000;
    link.flush_until(deadline);
    read_acks();
    while (c.unacked > 0 && now_ns() < deadline) {
      link.wait(10, true, false);
      read_acks();
    }
    r.failed = static_cast<std::uint64_t>(c.unacked) + (link.pending() + packet_bytes - 1) / packet_bytes;
    return r;
  }

  StepReport run_conn(Conn& c, const StepCommand& cmd) {
    ::prctl(PR_SET_TIMERSLACK, 1UL);
    StepReport r;
    const std::int64_t window = o_.window > 0 ? o_.window : (o_.qos == 0 ? 5000 : 1000);
    const std::uint64_t failed_before = c.flight.failed();
    std::string payload(static_cast<std::size_t>(std::max<int>(o_.size, sizeof(Header))), 'x');
    Header h{kMagic, cmd.run, static_cast<std::uint32_t>(c.global), 0, 0, 0};
    const std::int64_t end = cmd.start_ns + cmd.duration_ns;
    const double ns_per_msg = cmd.rate_per_conn > 0 ? 1e9 / cmd.rate_per_conn : 0;
    std::this_thread::sleep_until(from_ns(cmd.start_ns));
    auto send_one = [&]() {
      h.seq = r.sent;
      h.send_ns = now_ns();
      std::memcpy(payload.data(), &h, sizeof h);
      if (publish_counted(*c.client, c.flight, c.topic, payload, o_.qos)) {
        ++r.sent;
        r.last_send_ns = h.send_ns;
        return true;
      }
      ++r.refused;
      return false;
    };
    while (true) {
      const std::int64_t now = now_ns();
      if (now >= end) break;
      if (cmd.closed) {
        const auto got = shared_->received[c.global].load(std::memory_order_acquire);
        std::int64_t allowed = static_cast<std::int64_t>(got) + o_.closed_window -
                               static_cast<std::int64_t>(r.sent);
        if (allowed <= 0 || c.flight.count() >= window) {
          std::this_thread::sleep_for(20us);
          continue;
        }
        for (; allowed > 0; --allowed) {
          if (!send_one()) break;
        }
        continue;
      }
      const auto due = static_cast<std::uint64_t>(static_cast<double>(now - cmd.start_ns) / ns_per_msg) + 1;
      bool blocked = false;
      while (r.sent < due) {
        if (c.flight.count() >= window || !send_one()) {
          blocked = true;
          break;
        }
      }
      if (blocked) {
        std::this_thread::sleep_for(20us);
      } else {
        const auto next = cmd.start_ns + static_cast<std::int64_t>(static_cast<double>(r.sent) * ns_per_msg);
        std::this_thread::sleep_until(from_ns(std::min(next, end)));
      }
    }
    // Let Paho finish writing (QoS 0) or collect the acknowledgements (QoS 1).
    const auto deadline = Clock::now() + 10s;
    while (c.flight.count() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    r.failed = c.flight.failed() - failed_before;
    return r;
  }

  const ThroughputOptions& o_;
  int proc_;
  Shared* shared_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
};

Child spawn_publisher(const ThroughputOptions& o, int proc, Shared* shared) {
  int down[2], up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) throw std::runtime_error("pipe failed");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::close(down[1]);
    ::close(up[0]);
    FILE* in = ::fdopen(down[0], "r");
    FILE* out = ::fdopen(up[1], "w");
    int code = 0;
    try {
      PublisherProcess(o, proc, shared).serve(in, out);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "throughput publisher %d: %s\n", proc, e.what());
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::close(down[0]);
  ::close(up[1]);
  return Child{pid, ::fdopen(down[1], "w"), ::fdopen(up[0], "r")};
}

std::string read_line(FILE* f) {
  char line[256];
  if (!std::fgets(line, sizeof line, f)) throw std::runtime_error("a publisher process ended");
  return line;
}

// ------------------------------------------------------------------ subscribers

class Subscribers {
 public:
  Subscribers(const ThroughputOptions& o, Shared* shared, int publishers)
      : o_(o), shared_(shared), last_seq_(static_cast<std::size_t>(publishers)) {
    for (int s = 0; s < o.subscribers; ++s) {
      const std::string id = "tput-" + o.tag + "-sub-" + std::to_string(s);
      if (o.client == "lean") {
        auto c = lean_as(o, sub_name(o, s), id);
        std::vector<std::pair<std::string, int>> filters;
        for (int g = s; g < publishers; g += o.subscribers) {
          filters.emplace_back(data_topic(o, pub_name(o, g)), o.qos);
        }
        c->subscribe(filters);
        lean_.push_back(std::move(c));
        continue;
      }
      auto c = make_client(o.broker, id);
      c->set_message_callback([this](mqtt::const_message_ptr m) { on_message(m); });
      connect(*c);
      for (int g = s; g < publishers; g += o.subscribers) {
        subscribe(*c, data_topic(o, pub_name(o, g)), o.qos);
      }
      clients_.push_back(std::move(c));
    }
    for (auto& c : lean_) {
      threads_.emplace_back([this, conn = c.get()] { read_lean(*conn); });
    }
  }
  ~Subscribers() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
    lean_.clear();
    for (auto& c : clients_) disconnect(*c);
  }

  void reset(std::uint32_t run) {
    std::lock_guard<std::mutex> lock(mutex_);
    shared_->run.store(run, std::memory_order_release);
    for (auto& r : shared_->received) r.store(0, std::memory_order_relaxed);
    for (auto& s : last_seq_) s = -1;
    latencies_.clear();
    sent_at_.clear();
    out_of_order_ = 0;
    last_recv_ns_.store(0);
  }

  std::uint64_t received(int publishers) const {
    std::uint64_t n = 0;
    for (int g = 0; g < publishers; ++g) n += shared_->received[g].load(std::memory_order_relaxed);
    return n;
  }
  std::int64_t last_recv_ns() const { return last_recv_ns_.load(); }
  std::uint64_t out_of_order() {
    std::lock_guard<std::mutex> lock(mutex_);
    return out_of_order_;
  }
  std::uint64_t stale() const { return stale_.load(); }
  // Median latency of the messages sent in [from, to) (steady clock ns), in ms.
  double median_sent_between(std::int64_t from, std::int64_t to) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::int64_t> v;
    for (std::size_t i = 0; i < sent_at_.size(); ++i) {
      if (sent_at_[i] >= from && sent_at_[i] < to) v.push_back(latencies_[i]);
    }
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return static_cast<double>(v[v.size() / 2]) / 1e6;
  }
  Summary latency() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto copy = latencies_;
    return summarize(copy);
  }

 private:
  void on_message(const mqtt::const_message_ptr& m) {
    const std::int64_t recv = now_ns();
    const auto& p = m->get_payload_ref();
    std::lock_guard<std::mutex> lock(mutex_);
    record_locked(std::string_view(p.data(), p.size()), recv);
  }

  // A lean subscriber connection: recv() what is there, decode every packet, count them
  // under one lock, and answer QoS 1 with one write of all the PUBACKs.
  void read_lean(LeanConnection& link) {
    try {
      while (!stop_.load(std::memory_order_relaxed)) {
        const short ev = link.wait(100, true, link.pending() > 0);
        if (ev & (POLLIN | POLLERR | POLLHUP)) {
          // One recv() takes what the socket holds (up to megabytes), so there is no
          // second recv() to find it empty: back to poll().
          if (link.read_some() > 0) {
            const std::int64_t recv = now_ns();
            std::lock_guard<std::mutex> lock(mutex_);
            link.for_each_packet([&](const codec::Packet& p) {
              if (p.type != codec::PacketType::publish) return;
              if (p.qos > 0) codec::append_puback(link.out(), p.packet_id);
              record_locked(p.payload, recv);
            });
          }
        }
        link.flush();
        // A short pause after each read lets the next messages gather in the socket, so that
        // one wake-up reads many of them: without it a subscriber (and the broker, which
        // pays for waking it) spent ~10 µs of kernel time per message, one wake-up each.
        // It adds at most this much to a message's measured latency.
        if (o_.sub_pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(o_.sub_pause_us));
        link.ping_if_idle(20);
      }
    } catch (const std::exception& e) {
      std::cerr << "throughput subscriber: " << e.what() << "\n";
    }
  }

  void record_locked(std::string_view p, std::int64_t recv) {
    Header h;
    if (p.size() < sizeof h) return;
    std::memcpy(&h, p.data(), sizeof h);
    if (h.magic != kMagic || h.pub >= last_seq_.size()) return;
    if (h.run != shared_->run.load(std::memory_order_acquire)) {
      ++stale_;
      return;
    }
    auto& last = last_seq_[h.pub];
    if (static_cast<std::int64_t>(h.seq) <= last) {
      ++out_of_order_;  // a duplicate (QoS 1 redelivery) or a late one: not counted again
      return;
    }
    last = static_cast<std::int64_t>(h.seq);
    shared_->received[h.pub].fetch_add(1, std::memory_order_release);
    latencies_.push_back(recv - h.send_ns);
    sent_at_.push_back(h.send_ns);
    last_recv_ns_.store(recv, std::memory_order_relaxed);
  }

  const ThroughputOptions& o_;
  Shared* shared_;
  std::vector<std::unique_ptr<mqtt::async_client>> clients_;
  std::vector<std::unique_ptr<LeanConnection>> lean_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::int64_t> last_seq_;
  std::vector<std::int64_t> latencies_;
  std::vector<std::int64_t> sent_at_;
  std::uint64_t out_of_order_ = 0;
  std::atomic<std::uint64_t> stale_{0};
  std::atomic<std::int64_t> last_recv_ns_{0};
};

struct StepResult {
  double target = 0;        // msg/s asked for (0: closed loop)
  double sent_rate = 0;     // msg/s the publishers managed
  double recv_rate = 0;     // received / (last receive - start)
  std::uint64_t sent = 0, received = 0, lost = 0, refused = 0, out_of_order = 0;
  double backlog_ms = 0;    // last receive - last send
  double growth_ms = 0;     // median latency, last quarter - second quarter of the step
  bool clean = false;
  std::string why;          // when not clean
  double broker_cpu_s = 0, gateway_cpu_s = 0;
  double clients_cpu_s = 0;  // this process and the publisher processes
  Summary latency;
};

}  // namespace

int run_throughput(const ThroughputOptions& o) {
  const int publishers = o.pub_procs * o.pub_conns;
  if (publishers < 1 || publishers > kMaxPublishers || o.subscribers < 1 || o.qos < 0 || o.qos > 1 ||
      (o.path != "direct" && o.path != "bridge") || (o.client != "lean" && o.client != "paho") ||
      o.tick_ms <= 0 || o.sub_pause_us < 0) {
    throw std::runtime_error("bad throughput options");
  }
  if ((!o.secret.empty() || o.grants.enabled()) && o.client != "lean") {
    throw std::runtime_error("token logins and grants: lean clients only");
  }
  if (o.grants.enabled()) {
    // The full set, as the gateway would send it: each publisher writes its stream, each
    // subscriber reads the streams it subscribes to (publisher g goes to subscriber
    // g % subscribers), next to a population of other users.
    rtm::grants::RecordWriter w;
    const auto epoch = static_cast<std::uint64_t>(now_ns() / 1000);
    w.sync_begin(epoch);
    for (int g = 0; g < publishers; ++g) {
      w.session(pub_name(o, g), true);
      w.member("tput", pub_name(o, g), rtm::grants::MemberGrants{{"input"}, {}});
    }
    for (int s = 0; s < o.subscribers; ++s) {
      std::vector<std::string> reads;
      for (int g = s; g < publishers; g += o.subscribers) reads.push_back(pub_name(o, g));
      std::sort(reads.begin(), reads.end());
      w.session(sub_name(o, s), true);
      w.member("tput", sub_name(o, s), rtm::grants::MemberGrants{{}, {{"input", reads}}});
    }
    add_population(w, o.grants_population, 10, o.tag);
    w.sync_end(epoch);
    const auto records = w.records();
    const double ms = feed_grants(o.broker, o.prefix, o.grants, w);
    std::cerr << "grants: a full set of " << records << " records applied in " << ms << " ms\n";
  }
  // Fork before this process makes any Paho client.
  std::cout.flush();
  std::cerr.flush();
  void* mem = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* shared = new (mem) Shared{};
  std::vector<Child> children;
  for (int p = 0; p < o.pub_procs; ++p) children.push_back(spawn_publisher(o, p, shared));
  for (auto& c : children) {
    if (read_line(c.from).rfind("READY", 0) != 0) throw std::runtime_error("publisher not ready");
  }
  Subscribers subs(o, shared, publishers);
  std::uint32_t run = 0;

  auto step = [&](double rate, double seconds, bool closed) {
    StepResult r;
    r.target = closed ? 0 : rate;
    subs.reset(++run);
    CpuMeter broker_cpu(o.broker_pid), gateway_cpu(o.gateway_pid);
    std::vector<CpuMeter> client_cpu{CpuMeter(static_cast<int>(::getpid()))};
    for (const auto& c : children) client_cpu.emplace_back(static_cast<int>(c.pid));
    const std::int64_t start = now_ns() + 50'000'000;
    const auto duration = static_cast<std::int64_t>(seconds * 1e9);
    for (auto& c : children) {
      std::fprintf(c.to, "RUN %u %.3f %lld %lld %d\n", run, closed ? 0.0 : rate / publishers,
                   static_cast<long long>(start), static_cast<long long>(duration), closed ? 1 : 0);
      std::fflush(c.to);
    }
    std::int64_t last_send = 0;
    for (auto& c : children) {
      unsigned long long sent = 0, refused = 0, failed = 0;
      long long last = 0;
      const auto line = read_line(c.from);
      if (std::sscanf(line.c_str(), "DONE %llu %llu %llu %lld", &sent, &refused, &failed, &last) != 4) {
        throw std::runtime_error("bad publisher report: " + line);
      }
      r.sent += sent;
      r.refused += refused + failed;
      last_send = std::max<std::int64_t>(last_send, last);
    }
    // Drain: all arrived, or nothing new for 500 ms.
    auto last_n = subs.received(publishers);
    auto last_change = Clock::now();
    const auto give_up = Clock::now() + 10s;
    while (last_n < r.sent && Clock::now() - last_change < 500ms && Clock::now() < give_up) {
      std::this_thread::sleep_for(5ms);
      const auto n = subs.received(publishers);
      if (n != last_n) {
        last_n = n;
        last_change = Clock::now();
      }
    }
    r.broker_cpu_s = broker_cpu.elapsed_cpu_s();
    r.gateway_cpu_s = gateway_cpu.elapsed_cpu_s();
    for (const auto& m : client_cpu) r.clients_cpu_s += m.elapsed_cpu_s();
    r.received = subs.received(publishers);
    r.lost = r.sent - std::min(r.sent, r.received);
    r.out_of_order = subs.out_of_order();
    r.sent_rate = static_cast<double>(r.sent) / seconds;
    const auto last_recv = subs.last_recv_ns();
    r.recv_rate = last_recv > start ? static_cast<double>(r.received) / (static_cast<double>(last_recv - start) / 1e9) : 0;
    r.backlog_ms = last_recv > 0 && last_send > 0 ? static_cast<double>(last_recv - last_send) / 1e6 : 0;
    r.latency = subs.latency();
    // Keeping up: the latency of what was sent in the last quarter of the step is not much
    // above that of the second quarter (a queue that grows shows here first), and nothing
    // is left far behind at the end.
    const double q2 = subs.median_sent_between(start + duration / 4, start + duration / 2);
    const double q4 = subs.median_sent_between(start + duration * 3 / 4, start + duration);
    r.growth_ms = q4 - q2;
    const double backlog_limit_ms = std::max(100.0, seconds * 100);  // 10% of the step
    if (r.lost > 0) {
      r.why = "lost " + std::to_string(r.lost);
    } else if (!closed && r.sent_rate < 0.97 * rate) {
      r.why = "publishers reached only " + std::to_string(static_cast<long>(r.sent_rate)) + " msg/s";
    } else if (!closed && q4 > 2 * q2 + 10) {
      r.why = "latency grows: median " + std::to_string(q2).substr(0, 5) + " -> " +
              std::to_string(q4).substr(0, 5) + " ms";
    } else if (!closed && r.backlog_ms > backlog_limit_ms) {
      r.why = "backlog " + std::to_string(static_cast<long>(r.backlog_ms)) + " ms";
    } else {
      r.clean = true;
    }
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "  %-6s %8.0f msg/s: sent %8.0f/s recv %8.0f/s lost %llu backlog %.0f ms, "
                  "p50 %.2f p99 %.2f ms, cpu broker %.2f gateway %.2f clients %.2f s%s%s\n",
                  closed ? "probe" : "step", r.target, r.sent_rate, r.recv_rate,
                  static_cast<unsigned long long>(r.lost), r.backlog_ms, r.latency.p50_ms,
                  r.latency.p99_ms, r.broker_cpu_s, r.gateway_cpu_s, r.clients_cpu_s, r.clean ? "" : "  -> ",
                  r.why.c_str());
    std::cerr << buf;
    if (r.out_of_order > 0 || r.refused > 0 || subs.stale() > 0) {
      std::cerr << "         out of order or duplicate " << r.out_of_order << ", not sent or not acknowledged "
                << r.refused << ", stale so far " << subs.stale() << "\n";
    }
    return r;
  };

  std::cerr << "throughput " << o.path << " QoS " << o.qos << " " << o.size << " B, " << o.client
            << " clients: " << o.pub_procs << " publisher process(es) x " << o.pub_conns
            << " connection(s), " << o.subscribers << " subscriber connection(s)\n";
  // Warm-up (connections, the bridge's device registration), not counted.
  step(1000, 0.3, false);
  double rate = o.start_rate;
  StepResult probe;
  if (rate <= 0) {
    probe = step(0, o.probe_s, true);
    rate = std::max(1000.0, probe.recv_rate);
  }
  std::vector<StepResult> steps;
  std::optional<StepResult> best;
  std::optional<double> first_failed;
  for (int i = 0; i < o.max_steps; ++i) {
    auto r = step(rate, o.step_s, false);
    steps.push_back(r);
    if (r.clean) {
      best = r;
      if (first_failed) break;  // came down to a clean rate
      rate *= o.factor;
    } else {
      first_failed = first_failed ? std::min(*first_failed, rate) : rate;
      if (best) break;
      rate /= o.factor;  // the first step already failed: come down
    }
  }
  if (best && first_failed && *first_failed > best->target * 1.05) {
    // One more step between the last clean and the first failed rate.
    auto r = step(std::sqrt(best->target * *first_failed), o.step_s, false);
    steps.push_back(r);
    if (r.clean) best = r;
  }

  Results out;
  out.set("benchmark", "throughput");
  out.set("path", o.path);
  out.set("client", o.client);
  if (o.client == "lean") {
    out.set("tick_ms", o.tick_ms);
    out.set("sub_pause_us", o.sub_pause_us);
  }
  out.set("qos", o.qos);
  out.set("size", o.size);
  out.set("token_logins", o.secret.empty() ? 0 : 1);
  out.set("grants_population", o.grants.enabled() ? o.grants_population : 0);
  out.set("publishers", publishers);
  out.set("pub_procs", o.pub_procs);
  out.set("subscribers", o.subscribers);
  out.set("step_s", o.step_s);
  out.set("probe_rate", probe.recv_rate);
  std::ostringstream trail;
  for (const auto& s : steps) {
    trail << static_cast<long>(s.target) << (s.clean ? " ok" : " fail (" + s.why + ")") << "; ";
  }
  out.set("steps", trail.str());
  if (best) {
    out.set("rate", best->target);
    out.set("recv_rate", best->recv_rate);
    out.add_summary("latency", best->latency);
    const double per100k = best->received > 0 ? 1e5 / static_cast<double>(best->received) : 0;
    out.set("cpu.broker_s_per_100k", best->broker_cpu_s * per100k);
    out.set("cpu.gateway_s_per_100k", best->gateway_cpu_s * per100k);
    out.set("cpu.clients_s_per_100k", best->clients_cpu_s * per100k);
  } else {
    out.set("rate", 0.0);
  }
  out.write(o.json_out);
  std::cout << "throughput " << o.path << " QoS " << o.qos << " " << o.size << " B: "
            << (best ? std::to_string(static_cast<long>(best->target)) : std::string("none"))
            << " msg/s with no loss (probe " << static_cast<long>(probe.recv_rate) << " msg/s)\n";

  for (auto& c : children) {
    std::fprintf(c.to, "QUIT\n");
    std::fclose(c.to);
  }
  for (auto& c : children) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    std::fclose(c.from);
  }
  return best ? 0 : 1;
}

}  // namespace rtm::bench
