// State scale: the state model (rtm::gateway::MemoryStore) with 100k sessions and 1M subscriptions.
//
// BM_Populate builds the population once and reports memory per item, from the heap in use
// (mallinfo2) and from the resident set (/proc/self/statm):
//   100k sessions (start_session, as login does; uids "user-000123", 16-hex session ids),
//   each joins one channel of 20 members (5,000 channels) and publishes in topic "input",
//   each subscribes to the next 10 members' input: 1,000,000 subscriptions.
// The other benchmarks run single operations against that population and undo them in the
// same iteration (so the population stays the same size); counters split the two halves.
// BM_HashFind is the baseline: one lookup in a std::unordered_map of 100k strings, the floor
// of any operation that finds a user or a channel by name.
//
// `rtm-bench-state --write-sqlite PATH` instead writes the same population with the sqlite
// backend (one commit), prints the file's size per session and per subscription, and
// times a restore of it in this process; scripts/bench.sh then starts the gateway on the
// file and times its first answer.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/enforcement.hpp"
#include "rtm/gateway/sqlite_store.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/grants/table.hpp"

namespace {

using rtm::gateway::LimitsConfig;
using GwState = rtm::gateway::MemoryStore;
using SteadyClock = std::chrono::steady_clock;

constexpr int kSessions = 100000;
constexpr int kChannelSize = 20;
constexpr int kChannels = kSessions / kChannelSize;
constexpr int kSubsPerUser = 10;

std::string uid(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user-%06d", i);
  return buf;
}
std::string channel(int c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "room-%05d", c);
  return buf;
}
std::string session_id(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", 0x9e3779b97f4a7c15ULL * static_cast<unsigned long long>(i + 1));
  return buf;
}

struct Memory {
  double heap = 0;  // bytes malloc has handed out
  double rss = 0;   // resident bytes
};
Memory memory() {
  Memory m;
  const auto mi = ::mallinfo2();
  m.heap = static_cast<double>(mi.uordblks + mi.hblkhd);
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  m.rss = static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  return m;
}

struct Population {
  std::unique_ptr<GwState> state;
  std::vector<std::string> uids;  // made before measuring: the caller's strings
  std::vector<std::string> channels;
  std::vector<std::vector<std::string>> subscribe_to;  // per user: the next 10 members
  // measured while building
  double bytes_session_heap = 0, bytes_session_rss = 0;
  double bytes_join_heap = 0, bytes_join_rss = 0;
  double bytes_publisher_heap = 0;
  double bytes_subscription_heap = 0, bytes_subscription_rss = 0;
  double ns_start_session = 0, ns_join = 0, ns_join_topic = 0, ns_subscribe10 = 0;
  double total_heap = 0, total_rss = 0;
  std::size_t subscriptions = 0;
};

LimitsConfig limits() {
  LimitsConfig l;  // the gateway's defaults (config.yaml)
  return l;
}

Population& population() {
  static Population* p = [] {
    auto* pop = new Population;
    pop->uids.reserve(kSessions);
    for (int i = 0; i < kSessions; ++i) pop->uids.push_back(uid(i));
    for (int c = 0; c < kChannels; ++c) pop->channels.push_back(channel(c));
    pop->subscribe_to.resize(kSessions);
    for (int i = 0; i < kSessions; ++i) {
      const int base = i / kChannelSize * kChannelSize;
      for (int k = 1; k <= kSubsPerUser; ++k) {
        pop->subscribe_to[i].push_back(pop->uids[base + (i % kChannelSize + k) % kChannelSize]);
      }
    }
    auto per_op_ns = [](SteadyClock::time_point t0, int n) {
      return std::chrono::duration<double, std::nano>(SteadyClock::now() - t0).count() / n;
    };

    const Memory m0 = memory();
    pop->state = std::make_unique<GwState>(limits());
    auto& s = *pop->state;
    auto t0 = SteadyClock::now();
    for (int i = 0; i < kSessions; ++i) s.start_session(pop->uids[i], session_id(i), 1, 1LL << 50);
    pop->ns_start_session = per_op_ns(t0, kSessions);
    const Memory m1 = memory();

    t0 = SteadyClock::now();
    for (int i = 0; i < kSessions; ++i) {
      bool joined = false;
      auto r = s.join(pop->uids[i], pop->channels[i / kChannelSize], &joined);
      if (!r || !joined) std::abort();
    }
    pop->ns_join = per_op_ns(t0, kSessions);
    const Memory m2 = memory();

    t0 = SteadyClock::now();
    for (int i = 0; i < kSessions; ++i) {
      if (!s.join_topic(pop->uids[i], pop->channels[i / kChannelSize], "input")) std::abort();
    }
    pop->ns_join_topic = per_op_ns(t0, kSessions);
    const Memory m3 = memory();

    t0 = SteadyClock::now();
    for (int i = 0; i < kSessions; ++i) {
      if (!s.subscribe(pop->uids[i], pop->channels[i / kChannelSize], "input", pop->subscribe_to[i])) std::abort();
    }
    pop->ns_subscribe10 = per_op_ns(t0, kSessions);
    const Memory m4 = memory();
    pop->subscriptions = s.subscription_count();

    pop->bytes_session_heap = (m1.heap - m0.heap) / kSessions;
    pop->bytes_session_rss = (m1.rss - m0.rss) / kSessions;
    pop->bytes_join_heap = (m2.heap - m1.heap) / kSessions;
    pop->bytes_join_rss = (m2.rss - m1.rss) / kSessions;
    pop->bytes_publisher_heap = (m3.heap - m2.heap) / kSessions;
    pop->bytes_subscription_heap = (m4.heap - m3.heap) / static_cast<double>(pop->subscriptions);
    pop->bytes_subscription_rss = (m4.rss - m3.rss) / static_cast<double>(pop->subscriptions);
    pop->total_heap = m4.heap - m0.heap;
    pop->total_rss = m4.rss - m0.rss;
    return pop;
  }();
  return *p;
}

void BM_Populate(benchmark::State& st) {
  for (auto _ : st) {
    benchmark::DoNotOptimize(population());
  }
  const auto& p = population();
  st.counters["sessions"] = kSessions;
  st.counters["subscriptions"] = static_cast<double>(p.subscriptions);
  st.counters["B_per_session_heap"] = p.bytes_session_heap;
  st.counters["B_per_session_rss"] = p.bytes_session_rss;
  st.counters["B_per_join_heap"] = p.bytes_join_heap;
  st.counters["B_per_join_rss"] = p.bytes_join_rss;
  st.counters["B_per_publisher_heap"] = p.bytes_publisher_heap;
  st.counters["B_per_subscription_heap"] = p.bytes_subscription_heap;
  st.counters["B_per_subscription_rss"] = p.bytes_subscription_rss;
  st.counters["MB_total_heap"] = p.total_heap / 1e6;
  st.counters["MB_total_rss"] = p.total_rss / 1e6;
  st.counters["ns_build_start_session"] = p.ns_start_session;
  st.counters["ns_build_join"] = p.ns_join;
  st.counters["ns_build_join_topic"] = p.ns_join_topic;
  st.counters["ns_build_subscribe10"] = p.ns_subscribe10;
}
BENCHMARK(BM_Populate)->Iterations(1)->Unit(benchmark::kMillisecond);

// The full grant set the gateway sends the broker's plugin after every connect, for the
// whole population: writing it from the state (the gateway's loop), and applying it to the
// plugin's table (the broker's thread), with the table's memory.
void BM_GrantFullSet(benchmark::State& st) {
  const auto& p = population();
  std::size_t records = 0, bytes = 0, messages = 0;
  double write_ms = 0, apply_ms = 0, table_heap = 0;
  auto ms_since = [](SteadyClock::time_point t0) {
    return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  };
  for (auto _ : st) {
    rtm::grants::RecordWriter writer;
    auto t0 = SteadyClock::now();
    rtm::gateway::write_full_set(*p.state, 1, writer);
    records = writer.records();
    const auto out = writer.take();
    write_ms = ms_since(t0);
    messages = out.size();
    bytes = 0;
    for (const auto& m : out) bytes += m.size();
    const Memory before = memory();
    auto table = std::make_unique<rtm::grants::Table>("rtm");
    t0 = SteadyClock::now();
    for (const auto& m : out) table->apply_message(m);
    apply_ms = ms_since(t0);
    table_heap = memory().heap - before.heap;
    if (!table->synced() || table->stats().read_grants != p.subscriptions) std::abort();
  }
  st.counters["records"] = static_cast<double>(records);
  st.counters["messages"] = static_cast<double>(messages);
  st.counters["MB"] = static_cast<double>(bytes) / 1e6;
  st.counters["ms_write"] = write_ms;
  st.counters["ms_apply_plugin"] = apply_ms;
  st.counters["MB_plugin_table"] = table_heap / 1e6;
}
BENCHMARK(BM_GrantFullSet)->Iterations(1)->Unit(benchmark::kMillisecond);

// Times two halves of an iteration separately (each with its clock reads, ~20 ns).
class Split {
 public:
  void first_done() { t1_ = SteadyClock::now(); }
  void start() { t0_ = SteadyClock::now(); }
  void second_done() {
    const auto t2 = SteadyClock::now();
    a_ += std::chrono::duration<double, std::nano>(t1_ - t0_).count();
    b_ += std::chrono::duration<double, std::nano>(t2 - t1_).count();
  }
  void report(benchmark::State& st, const char* a, const char* b) const {
    st.counters[a] = benchmark::Counter(a_, benchmark::Counter::kAvgIterations);
    st.counters[b] = benchmark::Counter(b_, benchmark::Counter::kAvgIterations);
  }

 private:
  SteadyClock::time_point t0_, t1_;
  double a_ = 0, b_ = 0;
};

// Login-like: a new session among 100k, then its end.
void BM_StartEndSession(benchmark::State& st) {
  auto& s = *population().state;
  std::vector<std::string> names;
  for (int i = 0; i < 4096; ++i) names.push_back("extra-" + std::to_string(i));
  Split split;
  std::size_t k = 0;
  for (auto _ : st) {
    const auto& name = names[k++ % names.size()];
    split.start();
    s.start_session(name, "0123456789abcdef", 1, 1LL << 50);
    split.first_done();
    s.end_session(name);
    split.second_done();
  }
  split.report(st, "start_session_ns", "end_session_ns");
}
BENCHMARK(BM_StartEndSession);

// A logged-in user joins a channel of `range(0)` members (each a publisher of "input") and
// leaves it. join answers the channel's snapshot, so its cost grows with the channel.
void BM_JoinLeave(benchmark::State& st) {
  auto& s = *population().state;
  const int size = static_cast<int>(st.range(0));
  std::vector<std::string> rooms;
  if (size == kChannelSize) {
    rooms = population().channels;  // the population's own channels
  } else {
    const std::string room = "big-" + std::to_string(size);
    for (int i = 0; i < size; ++i) {
      const std::string member = "big" + std::to_string(size) + "-" + std::to_string(i);
      if (s.session(member)) continue;
      s.start_session(member, "0123456789abcdef", 1, 1LL << 50);
      bool joined = false;
      (void)s.join(member, room, &joined);
      (void)s.join_topic(member, room, "input");
    }
    rooms.push_back(room);
  }
  const std::string who = "joiner-" + std::to_string(size);
  if (!s.session(who)) s.start_session(who, "0123456789abcdef", 1, 1LL << 50);
  Split split;
  std::size_t k = 0;
  for (auto _ : st) {
    const auto& room = rooms[k++ % rooms.size()];
    bool joined = false;
    split.start();
    auto snap = s.join(who, room, &joined);
    split.first_done();
    auto gone = s.leave(who, room);
    split.second_done();
    benchmark::DoNotOptimize(snap);
    benchmark::DoNotOptimize(gone);
  }
  split.report(st, "join_ns", "leave_ns");
  st.counters["members"] = size;
}
BENCHMARK(BM_JoinLeave)->Arg(kChannelSize)->Arg(1000)->Arg(5000);

// A member subscribes to one more publisher of its channel's input, then unsubscribes.
void BM_SubscribeUnsubscribe(benchmark::State& st) {
  auto& p = population();
  auto& s = *p.state;
  Split split;
  std::size_t k = 0;
  for (auto _ : st) {
    const int i = static_cast<int>((k++ * 7919) % kSessions);
    const int base = i / kChannelSize * kChannelSize;
    const std::vector<std::string> one{p.uids[base + (i % kChannelSize + 15) % kChannelSize]};
    const auto& room = p.channels[i / kChannelSize];
    split.start();
    auto a = s.subscribe(p.uids[i], room, "input", one);
    split.first_done();
    auto b = s.unsubscribe(p.uids[i], room, "input", one);
    split.second_done();
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  }
  split.report(st, "subscribe_ns", "unsubscribe_ns");
}
BENCHMARK(BM_SubscribeUnsubscribe);

// Baseline: one lookup of a 11-byte key in an unordered_map of 100k strings.
void BM_HashFind(benchmark::State& st) {
  static const auto* map = [] {
    auto* m = new std::unordered_map<std::string, std::uint32_t>;
    for (int i = 0; i < kSessions; ++i) m->emplace(uid(i), static_cast<std::uint32_t>(i));
    return m;
  }();
  const auto& uids = population().uids;
  std::size_t k = 0;
  for (auto _ : st) {
    auto it = map->find(uids[(k++ * 7919) % kSessions]);
    benchmark::DoNotOptimize(it);
  }
}
BENCHMARK(BM_HashFind);

double millis_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

std::uintmax_t file_bytes(const std::string& path) {
  std::uintmax_t total = 0;
  for (const std::string& f : {path, path + "-wal"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(f, ec);
    if (!ec) total += n;
  }
  return total;
}

// Builds the population in a SqliteStore on `path` (sessions only, or the whole of it),
// commits it once and checkpoints the write-ahead log into the file.
double write_population(const std::string& path, bool with_channels) {
  for (const std::string& f : {path, path + "-wal", path + "-shm"}) std::filesystem::remove(f);
  rtm::gateway::StateConfig config;
  config.backend = "sqlite";
  config.path = path;
  rtm::gateway::SqliteStore s(config, limits(), 60000);
  for (int i = 0; i < kSessions; ++i) s.start_session(uid(i), session_id(i), 1, 1LL << 50);
  if (with_channels) {
    for (int i = 0; i < kSessions; ++i) {
      bool joined = false;
      const std::string room = channel(i / kChannelSize);
      if (!s.join(uid(i), room, &joined)) std::abort();
      if (!s.join_topic(uid(i), room, "input")) std::abort();
      std::vector<std::string> to;
      const int base = i / kChannelSize * kChannelSize;
      for (int k = 1; k <= kSubsPerUser; ++k) to.push_back(uid(base + (i % kChannelSize + k) % kChannelSize));
      if (!s.subscribe(uid(i), room, "input", to)) std::abort();
    }
  }
  const auto t0 = SteadyClock::now();
  bool ok = false;
  s.commit([&](bool done) { ok = done; });
  if (!ok) std::abort();
  return millis_since(t0);
}

int write_sqlite(const std::string& path) {
  const std::string sessions_only = path + ".sessions";
  write_population(sessions_only, false);
  const double session_file = static_cast<double>(file_bytes(sessions_only));
  for (const std::string& f : {sessions_only, sessions_only + "-wal"}) std::filesystem::remove(f);
  const double commit_ms = write_population(path, true);
  const double full_file = static_cast<double>(file_bytes(path));

  rtm::gateway::StateConfig config;
  config.backend = "sqlite";
  config.path = path;
  const auto t0 = SteadyClock::now();
  std::size_t subscriptions = 0;
  double restore_ms = 0;
  {
    rtm::gateway::SqliteStore restored(config, limits(), 60000);
    restore_ms = millis_since(t0);
    subscriptions = restored.subscription_count();
    if (restored.session_count() != static_cast<std::size_t>(kSessions)) std::abort();
  }
  std::printf("sqlite state file: %d sessions, %zu subscriptions (%d channels of %d)\n", kSessions,
              subscriptions, kChannels, kChannelSize);
  std::printf("  written in one commit: %.0f ms\n", commit_ms);
  std::printf("  file: %.1f MB; %.0f B per session (a file of sessions only), %.1f B per "
              "subscription (the rest, with channel members and publishers)\n",
              full_file / 1e6, session_file / kSessions,
              (full_file - session_file) / static_cast<double>(subscriptions));
  std::printf("  restore in process (open, read, rebuild the model): %.0f ms\n", restore_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--write-sqlite") == 0) return write_sqlite(argv[i + 1]);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
