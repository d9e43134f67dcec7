#include "control.hpp"
#include "rtm/sdk/net.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common.hpp"
#include "rtm/util/random.hpp"

namespace rtm::bench {
namespace {

constexpr int kOps = 5;
constexpr const char* kOpNames[kOps] = {"login", "join", "join_topic", "subscribe", "leave"};
// The metadata workload: ops 0 and 1 once, then 2, 3, 4 in a loop.
constexpr const char* kMetadataOpNames[kOps] = {"login", "join", "set_channel_metadata",
                                                "set_user_metadata", "get_channel_metadata"};
constexpr int kFirstMetadataLoopOp = 2;

bool metadata_workload(const ControlOptions& o) {
  return o.workload == "metadata";
}
const char* op_name(const ControlOptions& o, int op) {
  return metadata_workload(o) ? kMetadataOpNames[op] : kOpNames[op];
}

// The revision a metadata answer gave the client's own key ("revision":N), or -1.
std::int64_t answered_revision(std::string_view answer) {
  const auto at = answer.rfind("\"revision\":");
  if (at == std::string_view::npos) return -1;
  std::int64_t v = 0;
  for (std::size_t i = at + 11; i < answer.size() && answer[i] >= '0' && answer[i] <= '9'; ++i) {
    v = v * 10 + (answer[i] - '0');
  }
  return v;
}
constexpr int kGroup = 5;  // clients per channel

std::string client_uid(const ControlOptions& o, int i) {
  return "cp" + std::to_string(i) + "-" + o.tag;
}

// ------------------------------------------------------------------ one client process

class Worker {
 public:
  Worker(const ControlOptions& o, int first, int last) : o_(o) {
    for (int i = first; i < last; ++i) {
      auto c = std::make_unique<Cp>();
      c->uid = client_uid(o, i);
      c->token = token_for(c->uid, o.secret.empty() ? std::string(32, 'x') : o.secret);
      const int group = i / kGroup;
      c->channel = "cp-" + o.tag + "-" + std::to_string(group);
      const int peer = group * kGroup + (i % kGroup + 1) % kGroup;
      c->peer = client_uid(o, peer);
      c->client = make_client(o.broker, "ctl-" + c->uid);
      Cp* raw = c.get();
      c->client->set_message_callback(
          [this, raw](mqtt::const_message_ptr m) { on_answer(*raw, m); });
      clients_.push_back(std::move(c));
    }
    std::vector<mqtt::token_ptr> pending;
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(true);
    opts.set_keep_alive_interval(60);
    for (auto& c : clients_) pending.push_back(c->client->connect(opts));
    for (auto& t : pending) {
      if (!t->wait_for(20s)) throw std::runtime_error("control: connect timed out");
    }
    if (o.nodelay) rtm::sdk::enable_tcp_nodelay_to(o.broker);
    for (auto& c : clients_) subscribe(*c->client, o.prefix + "/u/" + c->uid + "/res/#", 1);
    for (auto& s : samples_) s.reserve(200000);
  }

  ~Worker() {
    for (auto& c : clients_) disconnect(*c->client);
  }

  void run(std::int64_t start, std::int64_t warm_end, std::int64_t end) {
    warm_end_ = warm_end;
    end_ = end;
    std::this_thread::sleep_until(from_ns(start));
    for (auto& c : clients_) {
      std::lock_guard<std::mutex> lock(mutex_);
      send_next(*c);
    }
    std::this_thread::sleep_until(from_ns(end));
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (outstanding_ == 0) break;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  // Binary report: kOps counts, errors, unanswered, then the samples of each op.
  void report(FILE* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::uint64_t head[kOps + 2];
    for (int k = 0; k < kOps; ++k) head[k] = samples_[k].size();
    head[kOps] = errors_;
    head[kOps + 1] = static_cast<std::uint64_t>(outstanding_);
    std::fwrite(head, sizeof head, 1, out);
    for (auto& s : samples_) std::fwrite(s.data(), sizeof(std::int64_t), s.size(), out);
    std::fflush(out);
    if (!first_error_.empty())
      std::fprintf(stderr, "control: first error answer: %s\n", first_error_.c_str());
  }

 private:
  struct Cp {
    std::string uid, token, channel, peer;
    std::unique_ptr<mqtt::async_client> client;
    int op = 0;
    std::int64_t revision = 0;  // metadata: the revision of its channel key (0: not written)
    std::uint64_t n = 0;
    std::int64_t sent_ns = 0;
    std::string expect;  // the response topic of the request in flight
  };

  // The request of the client's current op: its URI and body.
  std::pair<std::string, std::string> request_of(const Cp& c, const std::string& msg_id) const {
    const bool metadata = metadata_workload(o_) && c.op >= kFirstMetadataLoopOp;
    const std::string value = std::to_string(c.n);
    switch (metadata ? c.op + kOps : c.op) {
      case 0:
        return {"login?" + msg_id, "{\"token\":\"" + c.token + "\"}"};
      case 1:
        return {"join?channel=" + c.channel + "&" + msg_id, ""};
      case 2:
        return {"join_topic?channel=" + c.channel + "&topic=input&" + msg_id, ""};
      case 3:
        return {"subscribe?channel=" + c.channel + "&topic=input&users=" + c.peer + "&" + msg_id,
                ""};
      case 4:
        return {"leave?channel=" + c.channel + "&" + msg_id, ""};
      case kOps + 2:  // its own key, compare-and-set on the revision it last wrote
        return {"set_channel_metadata?channel=" + c.channel + "&" + msg_id,
                "{\"items\":[{\"key\":\"" + c.uid + "\",\"value\":\"" + value +
                    "\",\"revision\":" + std::to_string(c.revision) + "}]}"};
      case kOps + 3:
        return {"set_user_metadata?" + msg_id,
                "{\"items\":[{\"key\":\"score\",\"value\":\"" + value + "\"}]}"};
      default:
        return {"get_channel_metadata?channel=" + c.channel + "&" + msg_id, ""};
    }
  }

  // Caller holds mutex_.
  void send_next(Cp& c) {
    const std::string msg_id = "msg_id=" + c.uid + "x" + std::to_string(++c.n);
    const auto [uri, body] = request_of(c, msg_id);
    c.expect = o_.prefix + "/u/" + c.uid + "/res/" + uri;
    ++outstanding_;
    c.sent_ns = now_ns();
    try {
      c.client->publish(o_.prefix + "/req/" + c.uid + "/" + uri, body.data(), body.size(), 1,
                        false);
    } catch (const std::exception& e) {
      --outstanding_;
      ++errors_;
      if (first_error_.empty()) first_error_ = std::string("publish: ") + e.what();
    }
  }

  void on_answer(Cp& c, const mqtt::const_message_ptr& m) {
    const std::int64_t recv = now_ns();
    std::lock_guard<std::mutex> lock(mutex_);
    if (m->get_topic() != c.expect) return;
    c.expect.clear();
    --outstanding_;
    const auto& payload = m->get_payload_ref();
    const std::string_view text(payload.data(), payload.size());
    if (text.find("\"code\":0,") == std::string_view::npos) {
      ++errors_;
      if (first_error_.empty()) first_error_ = std::string(text);
    } else if (recv >= warm_end_ && recv <= end_) {
      samples_[c.op].push_back(recv - c.sent_ns);
    }
    if (!metadata_workload(o_)) {
      c.op = (c.op + 1) % kOps;
    } else {
      // The echo baseline answers no revision: it keeps -1 (no check) there.
      if (c.op == 2) c.revision = answered_revision(text);
      c.op = c.op + 1 < kOps ? c.op + 1 : kFirstMetadataLoopOp;
    }
    if (recv < end_) send_next(c);
  }

  const ControlOptions& o_;
  std::vector<std::unique_ptr<Cp>> clients_;
  std::mutex mutex_;
  std::vector<std::int64_t> samples_[kOps];
  std::uint64_t errors_ = 0;
  std::int64_t outstanding_ = 0;
  std::string first_error_;
  std::int64_t warm_end_ = 0, end_ = 0;
};

struct Child {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
};

}  // namespace

int run_control(const ControlOptions& o) {
  if (o.clients < 1 || o.procs < 1 || o.seconds <= 0)
    throw std::runtime_error("bad control options");
  const int procs = std::min(o.procs, o.clients);
  std::cout.flush();
  std::cerr.flush();
  std::vector<Child> children;
  for (int p = 0; p < procs; ++p) {
    const int first = o.clients * p / procs, last = o.clients * (p + 1) / procs;
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
        Worker w(o, first, last);
        std::fprintf(out, "READY\n");
        std::fflush(out);
        long long start = 0, warm_end = 0, end = 0;
        char line[128];
        if (!std::fgets(line, sizeof line, in) ||
            std::sscanf(line, "GO %lld %lld %lld", &start, &warm_end, &end) != 3) {
          ::_exit(1);
        }
        w.run(start, warm_end, end);
        w.report(out);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "control worker %d: %s\n", p, e.what());
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
      throw std::runtime_error("a control worker did not start");
    }
  }
  const std::int64_t start = now_ns() + 50'000'000;
  const std::int64_t warm_end = start + static_cast<std::int64_t>(o.warmup_s * 1e9);
  const std::int64_t end = warm_end + static_cast<std::int64_t>(o.seconds * 1e9);
  for (auto& c : children) {
    std::fprintf(c.to, "GO %lld %lld %lld\n", static_cast<long long>(start),
                 static_cast<long long>(warm_end), static_cast<long long>(end));
    std::fflush(c.to);
  }
  std::this_thread::sleep_until(from_ns(warm_end));
  CpuMeter broker_cpu(o.broker_pid), responder_cpu(o.gateway_pid), redis_cpu(o.redis_pid);
  std::vector<CpuMeter> more_cpu;
  for (const int pid : o.more_responder_pids) more_cpu.emplace_back(pid);
  std::this_thread::sleep_until(from_ns(end));
  const double broker_cpu_s = broker_cpu.elapsed_cpu_s();
  double responder_cpu_s = responder_cpu.elapsed_cpu_s();
  for (const auto& m : more_cpu) responder_cpu_s += m.elapsed_cpu_s();
  const double redis_cpu_s = o.redis_pid > 0 ? redis_cpu.elapsed_cpu_s() : 0;

  std::vector<std::int64_t> per_op[kOps];
  std::uint64_t errors = 0, unanswered = 0;
  for (auto& c : children) {
    std::uint64_t head[kOps + 2];
    if (std::fread(head, sizeof head, 1, c.from) != 1)
      throw std::runtime_error("a control worker failed");
    for (int k = 0; k < kOps; ++k) {
      const auto at = per_op[k].size();
      per_op[k].resize(at + head[k]);
      if (head[k] &&
          std::fread(per_op[k].data() + at, sizeof(std::int64_t), head[k], c.from) != head[k]) {
        throw std::runtime_error("a control worker's report is short");
      }
    }
    errors += head[kOps];
    unanswered += head[kOps + 1];
    std::fclose(c.to);
    std::fclose(c.from);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
  }
  std::vector<std::int64_t> all;
  for (auto& v : per_op) all.insert(all.end(), v.begin(), v.end());
  const double ops_per_s = static_cast<double>(all.size()) / o.seconds;
  auto s = summarize(all);

  Results r;
  r.set("benchmark", "control");
  r.set("workload", o.workload);
  r.set("label", o.label);
  r.set("clients", o.clients);
  r.set("procs", procs);
  r.set("nodelay", o.nodelay ? 1.0 : 0.0);
  r.set("seconds", o.seconds);
  r.set("ops_per_s", ops_per_s);
  r.set("errors", static_cast<double>(errors));
  r.set("unanswered", static_cast<double>(unanswered));
  r.add_summary("latency", s);
  r.set("cpu.broker_s", broker_cpu_s);
  r.set("cpu.responder_s", responder_cpu_s);
  // CPU of the responder (the gateway) per answered operation: what it takes from the broker
  // on the same machine.
  const double us_per_op =
      all.empty() ? 0 : responder_cpu_s * 1e6 / static_cast<double>(all.size());
  r.set("cpu.responder_us_per_op", us_per_op);
  r.set("responders", static_cast<double>(1 + o.more_responder_pids.size()));
  if (o.redis_pid > 0) {
    r.set("cpu.redis_s", redis_cpu_s);
    r.set("cpu.redis_us_per_op",
          all.empty() ? 0 : redis_cpu_s * 1e6 / static_cast<double>(all.size()));
  }
  std::cout << "control " << o.label << ": " << o.clients << " clients, "
            << static_cast<long>(ops_per_s) << " ops/s, " << format_summary(s) << ", errors "
            << errors << ", unanswered " << unanswered << "; cpu broker " << broker_cpu_s << " s, "
            << o.label << " " << responder_cpu_s << " s over " << o.seconds << " s (" << us_per_op
            << " us per op)\n";
  for (int k = 0; k < kOps; ++k) {
    auto ks = summarize(per_op[k]);
    r.add_summary(std::string("op.") + op_name(o, k), ks);
    r.set(std::string("op.") + op_name(o, k) + ".per_s",
          static_cast<double>(per_op[k].size()) / o.seconds);
    std::cout << "  " << op_name(o, k) << ": " << static_cast<long>(per_op[k].size() / o.seconds)
              << "/s, " << format_summary(ks) << "\n";
  }
  r.write(o.json_out);
  return errors == 0 ? 0 : 1;
}

// ------------------------------------------------------------------ echo responder

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}
}  // namespace

int run_echo(const std::string& broker, const std::string& prefix) {
  ::signal(SIGINT, on_signal);
  ::signal(SIGTERM, on_signal);
  auto client = make_client(broker, "echo-responder-" + util::random_hex(6));
  const std::string req = prefix + "/req/";
  client->set_message_callback([&](mqtt::const_message_ptr m) {
    const std::string& topic = m->get_topic();
    if (topic.compare(0, req.size(), req) != 0) return;
    const auto rest = topic.substr(req.size());  // {uid}/{uri}
    const auto slash = rest.find('/');
    if (slash == std::string::npos) return;
    std::string msg_id;
    const auto at = rest.find("msg_id=", slash);
    if (at != std::string::npos) msg_id = rest.substr(at + 7, rest.find('&', at) - (at + 7));
    const std::string answer = "{\"msg_id\":\"" + msg_id + "\",\"code\":0,\"result\":{}}";
    try {
      client->publish(prefix + "/u/" + rest.substr(0, slash) + "/res/" + rest.substr(slash + 1),
                      answer.data(), answer.size(), 1, false);
    } catch (const std::exception& e) {
      std::cerr << "echo: publish failed: " << e.what() << "\n";
    }
  });
  connect(*client);
  rtm::sdk::enable_tcp_nodelay_to(broker);
  subscribe(*client, prefix + "/req/#", 1);
  std::cout << "READY" << std::endl;
  while (!g_stop) std::this_thread::sleep_for(50ms);
  disconnect(*client);
  return 0;
}

int run_wait_ready(const std::string& broker, const std::string& prefix, double timeout_s,
                   const std::string& secret) {
  const std::string uid = "probe-" + util::random_hex(6);
  auto client = make_client(broker, secret.empty() ? uid : uid + "/ready");
  std::mutex mutex;
  std::string got;
  client->set_message_callback([&](mqtt::const_message_ptr m) {
    std::lock_guard<std::mutex> lock(mutex);
    got = m->get_payload_str();
  });
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  while (true) {
    try {
      if (secret.empty()) {
        connect(*client, 1s);
      } else {
        connect(*client, 1s, uid, token_for(uid, secret));
      }
      break;
    } catch (const std::exception&) {
      if (Clock::now() > deadline) {
        std::cerr << "wait-ready: cannot connect to " << broker << "\n";
        return 1;
      }
      std::this_thread::sleep_for(100ms);
    }
  }
  subscribe(*client, prefix + "/u/" + uid + "/res/#", 1);
  for (int i = 1; Clock::now() < deadline; ++i) {
    client->publish(prefix + "/req/" + uid + "/ping?msg_id=ready-" + std::to_string(i), "", 0, 1,
                    false);
    const auto until = Clock::now() + 200ms;
    while (Clock::now() < until) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (got.find("\"code\":0") != std::string::npos) {
          disconnect(*client);
          return 0;
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  std::cerr << "wait-ready: no answer on " << prefix << "/u/" << uid << "/res/...\n";
  disconnect(*client);
  return 1;
}

// ------------------------------------------------------------------ idle sessions

int run_sessions(const SessionsOptions& o) {
  if (o.gateway_pid <= 0) throw std::runtime_error("sessions: --gateway-pid is needed");
  auto client = make_client(o.broker, "sessions-" + o.tag);
  std::mutex mutex;
  std::condition_variable cv;
  std::uint64_t answered = 0, errors = 0;
  std::string first_error;
  client->set_message_callback([&](mqtt::const_message_ptr m) {
    std::lock_guard<std::mutex> lock(mutex);
    ++answered;
    if (m->get_payload_str().find("\"code\":0,") == std::string::npos) {
      ++errors;
      if (first_error.empty()) first_error = m->get_payload_str();
    }
    cv.notify_all();
  });
  connect(*client);
  subscribe(*client, o.prefix + "/u/+/res/#", 1);
  std::vector<std::string> tokens;
  tokens.reserve(static_cast<std::size_t>(o.count));
  for (int i = 0; i < o.count; ++i)
    tokens.push_back(token_for("idle" + std::to_string(i) + "-" + o.tag, o.secret));

  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(o.settle_s * 1000)));
  const auto before = read_proc(o.gateway_pid);
  if (!before) throw std::runtime_error("sessions: cannot read /proc of the gateway");
  const auto t0 = Clock::now();
  for (int i = 0; i < o.count; ++i) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait_for(lock, 10s, [&] {
        return static_cast<std::uint64_t>(i) - answered < static_cast<std::uint64_t>(o.window);
      });
    }
    const std::string uid = "idle" + std::to_string(i) + "-" + o.tag;
    const std::string body = "{\"token\":\"" + tokens[static_cast<std::size_t>(i)] + "\"}";
    client->publish(o.prefix + "/req/" + uid + "/login?msg_id=1", body.data(), body.size(), 1,
                    false);
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait_for(lock, 30s, [&] { return answered >= static_cast<std::uint64_t>(o.count); });
  }
  const double login_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(o.settle_s * 1000)));
  const auto after = read_proc(o.gateway_pid);
  disconnect(*client);
  if (!after) throw std::runtime_error("sessions: the gateway is gone");

  const double per_session = static_cast<double>(after->rss_kb - before->rss_kb) * 1024.0 / o.count;
  Results r;
  r.set("benchmark", "sessions");
  r.set("count", o.count);
  r.set("answered", static_cast<double>(answered));
  r.set("errors", static_cast<double>(errors));
  r.set("rss_before_kb", static_cast<double>(before->rss_kb));
  r.set("rss_after_kb", static_cast<double>(after->rss_kb));
  r.set("bytes_per_session", per_session);
  r.set("login_s", login_s);
  r.write(o.json_out);
  std::cout << "sessions: " << answered << "/" << o.count << " logins answered (" << errors
            << " errors) in " << login_s << " s; gateway RSS " << before->rss_kb << " kB -> "
            << after->rss_kb << " kB: " << static_cast<long>(per_session)
            << " bytes per idle session\n";
  if (!first_error.empty()) std::cerr << "sessions: first error answer: " << first_error << "\n";
  return errors == 0 && answered >= static_cast<std::uint64_t>(o.count) ? 0 : 1;
}

}  // namespace rtm::bench
