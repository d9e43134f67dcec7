// The coplay latency runner. Pairs are split between worker processes (Paho C serves all
// the connections of a process from one send and one receive thread and polls every socket
// at each wake-up, so 200 connections in one process cost the client more CPU than the
// broker spends); each worker sends its players' frames on the common absolute schedule and
// records what its hosts receive; this process merges the results.
#include "latency.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common.hpp"

namespace rtm::bench {
namespace {

constexpr std::uint32_t kMagic = 0x52544d46;  // "RTMF"

// The start of every frame; the rest is padding up to frame_bytes.
struct FrameHeader {
  std::uint32_t magic;
  std::uint32_t pair;
  std::uint32_t seq;
  std::uint32_t reserved;
  std::int64_t send_ns;
};
static_assert(sizeof(FrameHeader) == 24);

struct PairState {
  std::mutex mutex;
  std::vector<std::int64_t> latencies;  // measured frames only
  std::vector<std::uint8_t> seen;       // by seq
  std::int64_t max_seq = -1;
  std::uint64_t received = 0;  // unique frames, all of them
  std::uint64_t measured = 0;  // unique frames past the warm-up
  std::uint64_t reordered = 0;
  std::uint64_t duplicates = 0;
};

// What a worker sends back (binary, through a pipe): counters, then the samples.
struct WorkerHead {
  std::uint64_t latencies, lateness, measured, reordered, duplicates, misrouted, malformed;
  double cpu_s;
};

std::unique_ptr<LatencyPath> make_path(const LatencyOptions& o) {
  if (o.path == "direct" || o.path == "bridge" || o.path == "p2p") return make_mqtt_path(o);
#ifdef RTM_BENCH_HAVE_SDK
  if (o.path == "sdk") return make_sdk_path(o);
#else
  if (o.path == "sdk") throw std::runtime_error("this build has no SDK (rtm::sdk): path sdk is not available");
#endif
  throw std::runtime_error("unknown path " + o.path + " (direct, bridge, p2p, sdk)");
}

double own_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One worker: pairs [first, last) of o.pairs.
void run_worker(const LatencyOptions& o, int first, int last, FILE* in, FILE* out) {
  const int frame_bytes = std::max<int>(o.frame_bytes, sizeof(FrameHeader));
  const auto warmup_frames = static_cast<std::uint32_t>(std::llround(o.warmup_s * o.hz));
  const auto frames_per_pair = warmup_frames + static_cast<std::uint32_t>(std::llround(o.seconds * o.hz));
  const int mine = last - first;
  std::vector<PairState> pairs(static_cast<std::size_t>(mine));
  for (auto& p : pairs) {
    p.seen.assign(frames_per_pair, 0);
    p.latencies.reserve(frames_per_pair);
  }
  std::atomic<std::uint64_t> misrouted{0}, malformed{0}, total_received{0};

  auto path = make_path(o);
  path->open(first, last, [&](int host_pair, std::string_view payload, std::int64_t recv_ns) {
    FrameHeader h;
    if (payload.size() < sizeof h) {
      ++malformed;
      return;
    }
    std::memcpy(&h, payload.data(), sizeof h);
    if (h.magic != kMagic || static_cast<int>(h.pair) < first || static_cast<int>(h.pair) >= last ||
        h.seq >= frames_per_pair) {
      ++malformed;
      return;
    }
    if (static_cast<int>(h.pair) != host_pair) ++misrouted;
    auto& p = pairs[h.pair - static_cast<std::uint32_t>(first)];
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.seen[h.seq]) {
      ++p.duplicates;
      return;
    }
    p.seen[h.seq] = 1;
    ++p.received;
    if (static_cast<std::int64_t>(h.seq) < p.max_seq) ++p.reordered;
    p.max_seq = std::max<std::int64_t>(p.max_seq, h.seq);
    if (h.seq >= warmup_frames) {
      ++p.measured;
      p.latencies.push_back(recv_ns - h.send_ns);
    }
    total_received.fetch_add(1, std::memory_order_relaxed);
  });
  std::fprintf(out, "READY\n");
  std::fflush(out);
  long long t0 = 0;
  char line[64];
  if (!std::fgets(line, sizeof line, in) || std::sscanf(line, "GO %lld", &t0) != 1) ::_exit(1);

  // Absolute schedule: frame n of pair i is due at t0 + n * period + i * period / P, so the
  // pairs are spread evenly over each period (players are not in lock-step) and no error
  // accumulates. Each worker sends its own pairs' frames.
  ::prctl(PR_SET_TIMERSLACK, 1UL);
  const double period_ns = 1e9 / o.hz;
  const double spacing_ns = period_ns / o.pairs;
  std::vector<std::int64_t> lateness;
  lateness.reserve(static_cast<std::size_t>(frames_per_pair) * mine);
  std::string frame(static_cast<std::size_t>(frame_bytes), '\0');
  double cpu_start = 0;
  for (std::uint32_t seq = 0; seq < frames_per_pair; ++seq) {
    if (seq == warmup_frames) cpu_start = own_cpu_s();
    for (int pair = first; pair < last; ++pair) {
      const std::int64_t due = t0 + static_cast<std::int64_t>(std::llround(seq * period_ns + pair * spacing_ns));
      std::this_thread::sleep_until(from_ns(due));
      FrameHeader h{kMagic, static_cast<std::uint32_t>(pair), seq, 0, now_ns()};
      if (seq >= warmup_frames) lateness.push_back(h.send_ns - due);
      std::memcpy(frame.data(), &h, sizeof h);
      path->send(pair, frame);
    }
  }
  const double cpu_s = own_cpu_s() - cpu_start;

  // Drain: everything arrived, or nothing new for a second (the rest is lost).
  const std::uint64_t sent = static_cast<std::uint64_t>(frames_per_pair) * mine;
  std::uint64_t last_n = total_received.load();
  auto last_change = Clock::now();
  const auto give_up = Clock::now() + 10s;
  while (total_received.load() < sent && Clock::now() < give_up && Clock::now() - last_change < 1s) {
    std::this_thread::sleep_for(10ms);
    const auto n = total_received.load();
    if (n != last_n) {
      last_n = n;
      last_change = Clock::now();
    }
  }
  path->close();

  WorkerHead head{};
  std::vector<std::int64_t> all;
  for (auto& p : pairs) {
    std::lock_guard<std::mutex> lock(p.mutex);
    all.insert(all.end(), p.latencies.begin(), p.latencies.end());
    head.measured += p.measured;
    head.reordered += p.reordered;
    head.duplicates += p.duplicates;
  }
  head.latencies = all.size();
  head.lateness = lateness.size();
  head.misrouted = misrouted;
  head.malformed = malformed;
  head.cpu_s = cpu_s;
  std::fwrite(&head, sizeof head, 1, out);
  std::fwrite(all.data(), sizeof(std::int64_t), all.size(), out);
  std::fwrite(lateness.data(), sizeof(std::int64_t), lateness.size(), out);
  std::fflush(out);
}

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
};

}  // namespace

int run_latency(const LatencyOptions& o) {
  if (o.pairs < 1 || o.hz <= 0 || o.seconds <= 0) throw std::runtime_error("bad latency options");
  const int procs = std::clamp(o.procs > 0 ? o.procs : (o.pairs + 9) / 10, 1, o.pairs);
  const auto warmup_frames = static_cast<std::uint32_t>(std::llround(o.warmup_s * o.hz));
  const auto frames_per_pair = warmup_frames + static_cast<std::uint32_t>(std::llround(o.seconds * o.hz));
  std::string describe = make_path(o)->describe() + "; " + std::to_string(procs) +
                         " client process(es), " + std::to_string((o.pairs + procs - 1) / procs) +
                         " pair(s) each";
  std::cerr << "latency " << o.path << ": " << o.pairs << " pair(s), " << o.hz << " Hz, " << o.warmup_s
            << " s warm-up + " << o.seconds << " s; " << describe << "\n";

  if (o.token_login && o.secret.empty()) throw std::runtime_error("latency: token logins need --secret");
  if (o.grants.enabled()) {
    // The full set, as the gateway would send it for these rooms.
    rtm::grants::RecordWriter w;
    const auto epoch = static_cast<std::uint64_t>(now_ns() / 1000);
    w.sync_begin(epoch);
    for (int i = 0; i < o.pairs; ++i) {
      w.session(latency_player(o, i), true);
      w.session(latency_host(o, i), true);
      w.member(latency_room(o, i), latency_player(o, i), rtm::grants::MemberGrants{{"input"}, {}});
      w.member(latency_room(o, i), latency_host(o, i), rtm::grants::MemberGrants{{}, {{"input", {latency_player(o, i)}}}});
    }
    add_population(w, o.grants_population, 10, o.tag);
    w.sync_end(epoch);
    const auto records = w.records();
    const double ms = feed_grants(o.broker, o.prefix, o.grants, w);
    std::cerr << "grants: a full set of " << records << " records applied in " << ms << " ms\n";
  }
  std::cout.flush();
  std::cerr.flush();
  std::vector<Child> children;
  for (int w = 0; w < procs; ++w) {
    const int first = o.pairs * w / procs, last = o.pairs * (w + 1) / procs;
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
      int code = 0;
      try {
        run_worker(o, first, last, ::fdopen(down[0], "r"), ::fdopen(up[1], "w"));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "latency worker %d: %s\n", w, e.what());
        code = 1;
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    ::close(down[0]);
    ::close(up[1]);
    children.push_back({pid, ::fdopen(down[1], "w"), ::fdopen(up[0], "r")});
  }
  for (auto& c : children) {
    char line[64];
    if (!std::fgets(line, sizeof line, c.from) || std::strncmp(line, "READY", 5) != 0) {
      throw std::runtime_error("a latency worker did not start (see above)");
    }
  }
  const std::int64_t t0 = now_ns() + 100'000'000;
  for (auto& c : children) {
    std::fprintf(c.to, "GO %lld\n", static_cast<long long>(t0));
    std::fflush(c.to);
  }
  // CPU of the broker and the gateway over the measured part.
  const std::int64_t measure_from = t0 + static_cast<std::int64_t>(warmup_frames * 1e9 / o.hz);
  const std::int64_t measure_to = t0 + static_cast<std::int64_t>(frames_per_pair * 1e9 / o.hz);
  std::this_thread::sleep_until(from_ns(measure_from));
  CpuMeter broker_cpu(o.broker_pid), gateway_cpu(o.gateway_pid);
  const auto stall_from = cpu_stall_us();
  std::this_thread::sleep_until(from_ns(measure_to));
  const double broker_cpu_s = broker_cpu.elapsed_cpu_s();
  const double gateway_cpu_s = gateway_cpu.elapsed_cpu_s();
  const auto stall_to = cpu_stall_us();
  const double wall_s = static_cast<double>(measure_to - measure_from) / 1e9;

  std::vector<std::int64_t> all, lateness;
  WorkerHead sum{};
  for (auto& c : children) {
    WorkerHead h{};
    if (std::fread(&h, sizeof h, 1, c.from) != 1) throw std::runtime_error("a latency worker failed");
    const auto a = all.size(), l = lateness.size();
    all.resize(a + h.latencies);
    lateness.resize(l + h.lateness);
    if (std::fread(all.data() + a, sizeof(std::int64_t), h.latencies, c.from) != h.latencies ||
        std::fread(lateness.data() + l, sizeof(std::int64_t), h.lateness, c.from) != h.lateness) {
      throw std::runtime_error("a latency worker's report is short");
    }
    sum.measured += h.measured;
    sum.reordered += h.reordered;
    sum.duplicates += h.duplicates;
    sum.misrouted += h.misrouted;
    sum.malformed += h.malformed;
    sum.cpu_s += h.cpu_s;
    std::fclose(c.to);
    std::fclose(c.from);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
  }

  const std::uint64_t expected = static_cast<std::uint64_t>(frames_per_pair - warmup_frames) * o.pairs;
  const std::uint64_t lost = expected - std::min(expected, sum.measured);
  auto s = summarize(all);
  auto late = summarize(lateness);

  std::cout << "latency " << o.path << " " << o.pairs << " pair(s): " << format_summary(s) << "  lost "
            << lost << "/" << expected << "  reordered " << sum.reordered << "  duplicates "
            << sum.duplicates << "\n";
  std::cout << "  sender lateness p99 " << late.p99_ms << " ms, max " << late.max_ms << " ms; cpu over "
            << wall_s << " s: broker " << broker_cpu_s << " s, gateway " << gateway_cpu_s
            << " s, bench clients " << sum.cpu_s << " s\n";
  if (sum.misrouted || sum.malformed) {
    std::cout << "  WARNING: " << sum.misrouted << " frame(s) reached the wrong host, " << sum.malformed
              << " malformed\n";
  }

  Results r;
  r.set("benchmark", "latency");
  r.set("path", o.path);
  r.set("describe", describe);
  r.set("pairs", o.pairs);
  r.set("token_logins", o.token_login ? 1 : 0);
  r.set("grants_population", o.grants.enabled() ? o.grants_population : 0);
  r.set("procs", procs);
  r.set("hz", o.hz);
  r.set("seconds", o.seconds);
  r.set("frame_bytes", std::max<int>(o.frame_bytes, sizeof(FrameHeader)));
  r.add_summary("latency", s);
  r.set("expected", static_cast<double>(expected));
  r.set("lost", static_cast<double>(lost));
  r.set("reordered", static_cast<double>(sum.reordered));
  r.set("duplicates", static_cast<double>(sum.duplicates));
  r.set("misrouted", static_cast<double>(sum.misrouted));
  r.set("malformed", static_cast<double>(sum.malformed));
  r.add_summary("sender_lateness", late);
  r.set("cpu.broker_s", broker_cpu_s);
  r.set("cpu.gateway_s", gateway_cpu_s);
  r.set("cpu.bench_s", sum.cpu_s);
  r.set("cpu.wall_s", wall_s);
  if (stall_from && stall_to) {  // share of the measured part in which some task waited for a CPU
    r.set("machine.cpu_wait_measured", static_cast<double>(*stall_to - *stall_from) / 1e6 / wall_s);
  }
  r.write(o.json_out);

  if (!o.curve_out.empty() && !all.empty()) {
    // Latency by percentile on a "nines" scale: x = -log10(1 - p), 0 (p0) .. 5 (p99.999),
    // as far as the sample count resolves, then the maximum.
    std::ofstream out(o.curve_out);
    out << "path,pairs,percentile,nines,latency_ms\n";
    const double max_nines = std::log10(static_cast<double>(all.size()));
    for (double x = 0; x <= std::min(5.0, max_nines) + 1e-9; x += 0.02) {
      const double p = 1 - std::pow(10.0, -x);
      out << o.path << "," << o.pairs << "," << p * 100 << "," << x << "," << quantile_ms(all, p) << "\n";
    }
    out << o.path << "," << o.pairs << ",100," << max_nines << "," << s.max_ms << "\n";
  }
  return 0;  // loss is a result, not a failure of the program
}

}  // namespace rtm::bench
