// Broker-enforced channels (issue 13): the grant feed of the benchmarks, grant propagation
// through the real gateway, and the cost of one grant change with our grant records against
// Mosquitto's dynamic security plugin. Every client here is a lean connection
// (lean_mqtt.hpp: TCP_NODELAY, the gateway's codec, receive times taken right after recv()).
#include "enforcement.hpp"

#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <random>
#include <stdexcept>
#include <thread>

#include "common.hpp"
#include "lean_mqtt.hpp"
#include "rtm/util/random.hpp"

namespace rtm::bench {
namespace {
namespace codec = gateway::mqtt_codec;

constexpr std::int64_t kSecond = 1'000'000'000;

// Reads what has arrived (waiting up to timeout_ms for something) and hands every packet to
// f(packet, receive time). One receive time per read: taken right after it.
template <class F>
void pump(LeanConnection& c, int timeout_ms, F&& f) {
  c.flush();
  if (!(c.wait(timeout_ms, true, false) & (POLLIN | POLLERR | POLLHUP))) return;
  while (c.read_some() > 0) {
    const std::int64_t t = now_ns();
    c.for_each_packet([&](const codec::Packet& p) { f(p, t); });
  }
}

// A QoS 0 PUBLISH written now.
void publish0(LeanConnection& c, const std::string& topic, std::string_view payload) {
  if (!codec::append_publish(c.out(), topic, payload, 0, false, 0)) {
    throw std::runtime_error("cannot encode a PUBLISH on " + topic);
  }
  c.flush();
}

// A user of the gateway on a lean connection: token login at the broker, its own answers
// subscribed, one request at a time (QoS 0 both ways).
class RtmUser {
 public:
  RtmUser(const PropagationOptions& o, std::string uid)
      : o_(o), uid_(std::move(uid)),
        conn_(o.broker, uid_ + "/bench", LeanLogin{uid_, token_for(uid_, o.secret)}) {
    conn_.subscribe({{o.prefix + "/u/" + uid_ + "/res/#", 0}});
  }
  const std::string& uid() const { return uid_; }
  LeanConnection& conn() { return conn_; }

  // Sends the request; returns the answer's receive time and whether its code was 0.
  // Other messages that arrive meanwhile go to `other`.
  template <class F>
  std::pair<std::int64_t, bool> request(const std::string& op, const std::string& query,
                                        const std::string& body, F&& other) {
    const std::string msg_id = std::to_string(++next_id_);
    const std::string uri = op + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + msg_id;
    publish0(conn_, o_.prefix + "/req/" + uid_ + "/" + uri, body);
    const std::string answer_topic = o_.prefix + "/u/" + uid_ + "/res/" + uri;
    const std::int64_t deadline = now_ns() + 10 * kSecond;
    std::int64_t got = 0;
    bool ok = false;
    while (got == 0) {
      if (now_ns() > deadline) throw std::runtime_error(uid_ + ": no answer to " + uri);
      pump(conn_, 100, [&](const codec::Packet& p, std::int64_t t) {
        if (p.type != codec::PacketType::publish) return;
        if (p.topic == answer_topic) {
          got = t;
          ok = p.payload.find("\"code\":0") != std::string_view::npos;
          if (!ok) std::cerr << uid_ << " " << op << ": " << p.payload << "\n";
          return;
        }
        other(p, t);
      });
    }
    return {got, ok};
  }
  void ok(const std::string& op, const std::string& query, const std::string& body = "") {
    auto [t, good] = request(op, query, body, [](const codec::Packet&, std::int64_t) {});
    if (!good) throw std::runtime_error(uid_ + ": " + op + " failed");
  }
  void login() { ok("login", "", "{\"token\":\"" + token_for(uid_, o_.secret) + "\"}"); }

 private:
  const PropagationOptions& o_;
  std::string uid_;
  LeanConnection conn_;
  std::uint64_t next_id_ = 0;
};

std::string dynsec_command(const std::string& json_fields, const std::string& correlation) {
  return "{\"commands\":[{" + json_fields + ",\"correlationData\":\"" + correlation + "\"}]}";
}

}  // namespace

// ------------------------------------------------------------------ grant feed

double feed_grants(const std::string& broker, const std::string& prefix, const GrantFeedLogin& login,
                   rtm::grants::RecordWriter& writer) {
  LeanConnection gw(broker, "bench-grants-" + util::random_hex(4), LeanLogin{login.user, login.password});
  const auto messages = writer.take();
  const std::string topic = prefix + "/gateway/grants";
  const std::int64_t start = now_ns();
  std::uint16_t id = 0;
  std::size_t unacked = 0;
  for (const auto& m : messages) {
    if (!codec::append_publish(gw.out(), topic, m, 1, false, ++id)) {
      throw std::runtime_error("a grant message does not fit in one PUBLISH");
    }
    ++unacked;
  }
  const std::int64_t deadline = start + 60 * kSecond;
  if (!gw.flush_until(deadline)) throw std::runtime_error("grant records: write timed out");
  while (unacked > 0) {
    if (now_ns() > deadline) throw std::runtime_error("grant records: not all acknowledged");
    pump(gw, 100, [&](const codec::Packet& p, std::int64_t) {
      if (p.type == codec::PacketType::puback) --unacked;
    });
  }
  return static_cast<double>(now_ns() - start) / 1e6;
}

void add_population(rtm::grants::RecordWriter& w, int count, int reads_each, const std::string& tag) {
  constexpr int kMembers = 20;
  auto uid = [&](int i) { return "fill-" + tag + "-" + std::to_string(i); };
  for (int i = 0; i < count; ++i) w.session(uid(i), true);
  for (int i = 0; i < count; ++i) {
    const int base = i / kMembers * kMembers;
    const int size = std::min(kMembers, count - base);
    rtm::grants::MemberGrants g;
    g.writes = {"input"};
    std::vector<std::string> readers;
    for (int k = 1; k <= std::min(reads_each, size - 1); ++k) readers.push_back(uid(base + (i - base + k) % size));
    std::sort(readers.begin(), readers.end());
    if (!readers.empty()) g.reads.emplace_back("input", std::move(readers));
    w.member("fch-" + tag + "-" + std::to_string(i / kMembers), uid(i), g);
  }
}

// ------------------------------------------------------------------ propagation

int run_propagation(const PropagationOptions& o) {
  if (o.secret.empty() || o.repeats < 1 || o.period_us < 10) throw std::runtime_error("bad propagation options");
  const std::string channel = "prop-" + o.tag;
  RtmUser pub(o, "pp-" + o.tag), sub(o, "ps-" + o.tag);
  const std::string data_topic = o.prefix + "/ch/" + channel + "/input/" + pub.uid();
  pub.login();
  pub.ok("join", "channel=" + channel);
  pub.ok("join_topic", "channel=" + channel + "&topic=input");
  sub.login();
  sub.ok("join", "channel=" + channel);
  sub.conn().subscribe({{data_topic, 0}});  // delivered only while the grant is in place

  // The publisher: one QoS 0 message per period on an absolute schedule, on its own thread.
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    LeanConnection& c = pub.conn();
    std::uint64_t seq = 0;
    std::int64_t next = now_ns();
    char payload[16];
    while (!stop.load(std::memory_order_relaxed)) {
      next += static_cast<std::int64_t>(o.period_us) * 1000;
      std::this_thread::sleep_until(from_ns(next));
      const std::int64_t t = now_ns();
      std::memcpy(payload, &seq, 8);
      std::memcpy(payload + 8, &t, 8);
      ++seq;
      (void)codec::append_publish(c.out(), data_topic, std::string_view(payload, sizeof payload), 0, false, 0);
      c.flush();
      c.read_some();  // nothing is expected: keep the socket's input empty
      c.for_each_packet([](const codec::Packet&) {});
    }
  });

  std::vector<std::int64_t> from_answer, from_request, revoke_lag;
  std::uint64_t missing = 0, early = 0, after_revoke = 0;
  CpuMeter broker_cpu(o.broker_pid), gateway_cpu(o.gateway_pid);
  const std::int64_t started = now_ns();
  const std::string query = "channel=" + channel + "&topic=input";
  const std::string body = "{\"users\":[\"" + pub.uid() + "\"]}";
  try {
    for (int i = 0; i < o.repeats; ++i) {
      std::int64_t first = 0;
      auto on_data = [&](const codec::Packet& p, std::int64_t t) {
        if (p.type == codec::PacketType::publish && p.topic == data_topic && first == 0) first = t;
      };
      const std::int64_t t0 = now_ns();
      auto [answered, ok] = sub.request("subscribe", query, body, on_data);
      if (!ok) throw std::runtime_error("subscribe failed");
      if (first != 0) ++early;  // delivered before the answer arrived (the grant goes first)
      const std::int64_t deadline = now_ns() + 2 * kSecond;
      while (first == 0 && now_ns() < deadline) pump(sub.conn(), 50, on_data);
      if (first == 0) {
        ++missing;
      } else {
        from_answer.push_back(first - answered);
        from_request.push_back(first - t0);
      }
      // Revoke, and wait until the stream has stopped: quiet_ms without a message.
      std::int64_t last = 0;
      auto on_late = [&](const codec::Packet& p, std::int64_t t) {
        if (p.type == codec::PacketType::publish && p.topic == data_topic) last = t;
      };
      auto [revoked, ok2] = sub.request("unsubscribe", query, body, on_late);
      if (!ok2) throw std::runtime_error("unsubscribe failed");
      last = 0;  // what came before the answer does not count
      std::int64_t quiet_since = now_ns();
      while (now_ns() - quiet_since < static_cast<std::int64_t>(o.quiet_ms) * 1'000'000) {
        const std::int64_t before = last;
        pump(sub.conn(), 5, on_late);
        if (last != before) {
          ++after_revoke;
          quiet_since = last;
        }
      }
      revoke_lag.push_back(last > 0 ? last - revoked : 0);
    }
  } catch (...) {
    stop = true;
    sender.join();
    throw;
  }
  const double seconds = static_cast<double>(now_ns() - started) / 1e9;
  const double broker_s = broker_cpu.elapsed_cpu_s(), gateway_s = gateway_cpu.elapsed_cpu_s();
  stop = true;
  sender.join();

  // Answer -> first message may be negative: the grant is in force before the answer goes out.
  auto a = summarize(from_answer), r = summarize(from_request), v = summarize(revoke_lag);
  std::cout << "grant propagation, " << o.repeats << " subscribe/unsubscribe rounds, publisher every "
            << o.period_us << " us:\n  subscribe answer -> first message: " << format_summary(a)
            << "\n  subscribe request -> first message: " << format_summary(r)
            << "\n  unsubscribe answer -> last message: " << format_summary(v) << "\n  missing " << missing
            << ", first message before the answer " << early << ", messages after an unsubscribe answer "
            << after_revoke << "\n";
  Results out;
  out.set("benchmark", "propagation");
  out.set("repeats", o.repeats);
  out.set("period_us", o.period_us);
  out.add_summary("from_answer", a);
  out.add_summary("from_request", r);
  out.add_summary("revoke_lag", v);
  out.set("missing", static_cast<double>(missing));
  out.set("early", static_cast<double>(early));
  out.set("after_revoke", static_cast<double>(after_revoke));
  out.set("seconds", seconds);
  out.set("cpu.broker_s", broker_s);
  out.set("cpu.gateway_s", gateway_s);
  out.write(o.json_out);
  return missing == 0 ? 0 : 1;
}

// ------------------------------------------------------------------ one grant change

namespace {

struct ChangeResult {
  std::vector<std::int64_t> change, baseline;
  double broker_cpu_s = 0;  // over the changes (dynsec) or the bulk records
  int bulk_records = 0;     // records: CPU measured over this many records in a row
  double setup_ms = 0;
};

// Our plugin: `grants` read grants in place (a full set); each change is one M record that
// moves the reader's grant to another publisher, written together with a marker on that
// publisher's stream from the same connection; the marker reaches the reader only once the
// record is applied. Baseline: the marker alone on the stream already granted.
ChangeResult records_changes(const GrantChangeOptions& o) {
  ChangeResult res;
  const std::string channel = "gc-" + o.tag, reader = "gr-" + o.tag;
  auto publisher = [&](int i) { return "gp-" + o.tag + "-" + std::to_string(i); };
  rtm::grants::RecordWriter w;
  const std::uint64_t epoch = static_cast<std::uint64_t>(now_ns() / 1000);
  w.sync_begin(epoch);
  w.session(reader, true);
  w.member(channel, reader, rtm::grants::MemberGrants{{}, {{"input", {publisher(0)}}}});
  add_population(w, std::max(0, o.grants - 1), 1, o.tag);  // one read grant each
  w.sync_end(epoch);
  GrantFeedLogin login{o.user.empty() ? "rtm-gateway" : o.user, o.password};
  res.setup_ms = feed_grants(o.broker, o.prefix, login, w);

  LeanConnection gw(o.broker, "bench-gc-" + o.tag, LeanLogin{login.user, login.password});
  LeanConnection rd(o.broker, reader + "/bench", LeanLogin{reader, token_for(reader, o.secret)});
  rd.subscribe({{o.prefix + "/ch/" + channel + "/input/#", 0}});
  const std::string grants_topic = o.prefix + "/gateway/grants";
  int current = 0;
  auto wait_marker = [&](const std::string& marker) -> std::int64_t {
    const std::int64_t deadline = now_ns() + 5 * kSecond;
    std::int64_t got = 0;
    while (got == 0) {
      if (now_ns() > deadline) throw std::runtime_error("grant changes: the marker did not arrive");
      pump(rd, 50, [&](const codec::Packet& p, std::int64_t t) {
        if (p.type == codec::PacketType::publish && p.payload == marker) got = t;
      });
    }
    return got;
  };
  for (int i = 0; i < o.changes; ++i) {
    // Baseline: a marker on the granted stream.
    {
      const std::string marker = "base-" + std::to_string(i);
      const std::int64_t t0 = now_ns();
      publish0(gw, o.prefix + "/ch/" + channel + "/input/" + publisher(current), marker);
      res.baseline.push_back(wait_marker(marker) - t0);
    }
    // A change: the grant moves to the next publisher; the marker goes on that stream.
    const int next = (current + 1) % 1000;
    rtm::grants::RecordWriter change;
    change.member(channel, reader, rtm::grants::MemberGrants{{}, {{"input", {publisher(next)}}}});
    const auto messages = change.take();
    const std::string marker = "change-" + std::to_string(i);
    const std::int64_t t0 = now_ns();
    for (const auto& m : messages) (void)codec::append_publish(gw.out(), grants_topic, m, 0, false, 0);
    (void)codec::append_publish(gw.out(), o.prefix + "/ch/" + channel + "/input/" + publisher(next), marker, 0,
                                false, 0);
    gw.flush();
    res.change.push_back(wait_marker(marker) - t0);
    current = next;
  }
  // The broker's CPU per record, from many: /proc counts in 10 ms ticks, and one record takes
  // microseconds. Each change is a message of its own, as a single change goes out from the
  // gateway; a marker behind the last one tells when all were applied.
  const int bulk = std::max(5000, o.changes * 200);
  CpuMeter bulk_cpu(o.broker_pid);
  for (int i = 0; i < bulk; ++i) {
    current = (current + 1) % 1000;
    rtm::grants::RecordWriter change;
    change.member(channel, reader, rtm::grants::MemberGrants{{}, {{"input", {publisher(current)}}}});
    for (const auto& m : change.take()) (void)codec::append_publish(gw.out(), grants_topic, m, 0, false, 0);
    if (gw.pending() > (1u << 20)) gw.flush_until(now_ns() + 10 * kSecond);
  }
  const std::string last_marker = "bulk-done";
  (void)codec::append_publish(gw.out(), o.prefix + "/ch/" + channel + "/input/" + publisher(current), last_marker,
                              0, false, 0);
  gw.flush_until(now_ns() + 10 * kSecond);
  wait_marker(last_marker);
  res.bulk_records = bulk;
  res.broker_cpu_s = bulk_cpu.elapsed_cpu_s();
  return res;
}

// Mosquitto's dynamic security plugin: `grants` roles with one ACL each are in its config
// file already (scripts/bench.sh writes it before the broker starts); each change is an
// addRoleACL or a removeRoleACL on one of them, timed to its response. Baseline: getRole,
// a command that changes nothing.
ChangeResult dynsec_changes(const GrantChangeOptions& o) {
  ChangeResult res;
  LeanConnection admin(o.broker, o.user + "-" + o.tag, LeanLogin{o.user, o.password});
  admin.subscribe({{"$CONTROL/dynamic-security/v1/response", 0}});
  const std::string control = "$CONTROL/dynamic-security/v1";
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, std::max(0, o.grants - 1));
  auto command = [&](const std::string& fields, const std::string& correlation) -> std::int64_t {
    const std::int64_t t0 = now_ns();
    publish0(admin, control, dynsec_command(fields, correlation));
    const std::int64_t deadline = t0 + 60 * kSecond;
    std::int64_t got = 0;
    while (got == 0) {
      if (now_ns() > deadline) throw std::runtime_error("dynsec: no response to " + fields);
      pump(admin, 100, [&](const codec::Packet& p, std::int64_t t) {
        if (p.type != codec::PacketType::publish ||
            p.payload.find("\"" + correlation + "\"") == std::string_view::npos) {
          return;
        }
        if (p.payload.find("\"error\"") != std::string_view::npos) {
          throw std::runtime_error("dynsec: " + std::string(p.payload));
        }
        got = t;
      });
    }
    return got - t0;
  };
  CpuMeter cpu(o.broker_pid);
  double baseline_cpu = 0;
  std::string role, acl;
  for (int i = 0; i < o.changes; ++i) {
    // Even changes add a grant to a role, odd ones take it away again: the count stays at
    // `grants` (+1).
    if (i % 2 == 0) {
      role = "r" + std::to_string(pick(rng));
      acl = "\"rolename\":\"" + role + "\",\"acltype\":\"publishClientReceive\",\"topic\":\"" + o.prefix +
            "/ch/bench-" + o.tag + "/input/p" + std::to_string(i) + "\"";
    }
    {
      CpuMeter one(o.broker_pid);
      res.baseline.push_back(
          command("\"command\":\"getRole\",\"rolename\":\"" + role + "\"", "get-" + o.tag + "-" + std::to_string(i)));
      baseline_cpu += one.elapsed_cpu_s();
    }
    const std::string correlation = "chg-" + o.tag + "-" + std::to_string(i);
    res.change.push_back(i % 2 == 0 ? command("\"command\":\"addRoleACL\"," + acl + ",\"priority\":0,\"allow\":true", correlation)
                                    : command("\"command\":\"removeRoleACL\"," + acl, correlation));
  }
  res.broker_cpu_s = cpu.elapsed_cpu_s() - baseline_cpu;
  return res;
}

}  // namespace

int run_grant_changes(const GrantChangeOptions& o) {
  if (o.grants < 1 || o.changes < 1 || (o.system != "records" && o.system != "dynsec")) {
    throw std::runtime_error("bad grant-changes options");
  }
  auto res = o.system == "records" ? records_changes(o) : dynsec_changes(o);
  auto c = summarize(res.change), b = summarize(res.baseline);
  long file_bytes = 0;
  struct stat st {};
  if (!o.file.empty() && ::stat(o.file.c_str(), &st) == 0) file_bytes = static_cast<long>(st.st_size);
  const double counted = res.bulk_records > 0 ? res.bulk_records : static_cast<double>(res.change.size());
  const double cpu_ms_per_change = counted > 0 ? res.broker_cpu_s * 1e3 / counted : 0;
  std::cout << "grant changes, " << o.system << ", " << o.grants << " grants in place: " << res.change.size()
            << " changes\n  change: " << format_summary(c) << "\n  baseline ("
            << (o.system == "records" ? "a marker alone" : "getRole, no change") << "): " << format_summary(b)
            << "\n  broker CPU per change " << cpu_ms_per_change << " ms (over " << counted << ")"
            << (file_bytes ? ", config file " + std::to_string(file_bytes) + " B" : std::string())
            << (res.setup_ms > 0 ? ", full set applied in " + std::to_string(res.setup_ms) + " ms" : std::string())
            << "\n";
  Results out;
  out.set("benchmark", "grant_changes");
  out.set("system", o.system);
  out.set("grants", o.grants);
  out.add_summary("change", c);
  out.add_summary("baseline", b);
  out.set("cpu.broker_ms_per_change", cpu_ms_per_change);
  out.set("file_bytes", static_cast<double>(file_bytes));
  out.set("setup_ms", res.setup_ms);
  out.set("cpu.counted_changes", counted);
  out.write(o.json_out);
  return 0;
}

}  // namespace rtm::bench
