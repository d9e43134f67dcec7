// Tests of the operations pieces without a broker: the Prometheus text writer, JSON log
// lines, the core's request metrics, and what a reload changes in the core.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/logging.hpp"
#include "rtm/gateway/metrics.hpp"

namespace {

using namespace rtm::gateway;

class FakeOutbox : public Outbox {
 public:
  bool publish(const std::string& topic, std::string_view payload, int, bool) override {
    sent.emplace_back(topic, std::string(payload));
    return true;
  }
  std::vector<std::pair<std::string, std::string>> sent;
};

struct CountingReloadable : Reloadable {
  void reload(const Config& next) override {
    ++calls;
    last_level = next.log.level;
  }
  int calls = 0;
  std::string last_level;
};

}  // namespace

TEST_CASE("metrics: families and labels with escapes and a histogram in Prometheus text") {
  MetricsWriter out;
  out.counter("a_total", "Things\\done\nlater", 3);
  out.family("b", MetricsWriter::Type::gauge, "Bees");
  out.sample(1.5, {{"k", "v\"q\\"}, {"z", "line\nbreak"}});
  out.sample(2, {{"k", "w"}});
  LatencyHistogram h;
  h.observe(0.0002);
  h.observe(0.003);
  h.observe(20);
  out.histogram("lat_seconds", "Latency", h);
  const std::string& t = out.text();
  CHECK(t.rfind("# HELP a_total Things\\\\done\\nlater\n# TYPE a_total counter\na_total 3\n", 0) ==
        0);
  CHECK(t.find("# TYPE b gauge\nb{k=\"v\\\"q\\\\\",z=\"line\\nbreak\"} 1.5\nb{k=\"w\"} 2\n") !=
        std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"0.0001\"} 0\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"0.00025\"} 1\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"0.005\"} 2\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"10\"} 2\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(t.find("lat_seconds_sum 20.0032\n") != std::string::npos);
  CHECK(t.find("lat_seconds_count 3\n") != std::string::npos);
}

TEST_CASE("logging: a JSON line has the component as event and stays valid UTF-8") {
  CHECK(
      json_log_line("2026-01-01T00:00:00.000Z", "info", "broker: connected to x", "", "") ==
      R"({"time":"2026-01-01T00:00:00.000Z","level":"info","event":"broker","msg":"connected to x"})");
  CHECK(json_log_line("t", "debug", "request failed", "alice", "7") ==
        R"({"time":"t","level":"debug","msg":"request failed","uid":"alice","msg_id":"7"})");
  // Bytes a client sent that are not UTF-8 (a lone continuation byte, an overlong '/',
  // a surrogate) come out as U+FFFD; quotes and control characters are escaped.
  CHECK(json_log_line("t", "warn", std::string("bad \x80 \xC0\xAF \xED\xA0\x80 \"q\"\n"), "", "") ==
        "{\"time\":\"t\",\"level\":\"warn\",\"msg\":\"bad \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD "
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \\\"q\\\"\\n\"}");
  CHECK(json_log_line("t", "info", "Two Words: not an event", "", "").find("\"event\"") ==
        std::string::npos);
}

TEST_CASE("core: requests are counted by operation and code with a fixed label set") {
  Config config;
  config.auth.token_secret = "0123456789abcdef0123456789abcdef";
  FakeOutbox outbox;
  Core core(config, outbox, [] { return std::int64_t{1700000000000}; });
  register_basic_operations(core);
  auto send = [&](const std::string& uri) {
    core.on_message(Message{"rtm/req/alice/" + uri, "", 1, false});
  };
  send("ping?msg_id=1");
  send("ping?msg_id=2");
  send("ping?msg_id=2");  // a replay: not a second answer
  send("whatever-a-client-sends?msg_id=3");
  send("ping");  // no msg_id
  send("im://modulus/x?msg_id=4");
  MetricsWriter out;
  core.write_metrics(out);
  const std::string& t = out.text();
  INFO(t);
  CHECK(t.find("rtm_requests_total{op=\"ping\",code=\"OK\"} 2\n") != std::string::npos);
  CHECK(t.find("rtm_requests_total{op=\"unknown\",code=\"UNKNOWN_OPERATION\"} 1\n") !=
        std::string::npos);
  CHECK(t.find("rtm_requests_total{op=\"invalid\",code=\"MISSING_MSG_ID\"} 1\n") !=
        std::string::npos);
  CHECK(t.find("rtm_requests_total{op=\"module\",code=\"NO_ROUTE\"} 1\n") != std::string::npos);
  CHECK(t.find("whatever") == std::string::npos);  // a client cannot make new label values
  CHECK(t.find("rtm_requests_replayed_total 1\n") != std::string::npos);
  CHECK(t.find("rtm_request_duration_seconds_count 5\n") != std::string::npos);
  CHECK(t.find("rtm_dedup_entries 4\n") != std::string::npos);
}

TEST_CASE("core: a reload changes the limits it owns and tells every Reloadable") {
  Config config;
  config.auth.token_secret = "0123456789abcdef0123456789abcdef";
  FakeOutbox outbox;
  Core core(config, outbox, [] { return std::int64_t{1700000000000}; });
  register_basic_operations(core);
  auto part = std::make_shared<CountingReloadable>();
  core.add_reloadable(part);

  core.on_message(Message{"rtm/req/alice/ping?msg_id=1", std::string(100, ' '), 1, false});
  CHECK(outbox.sent.back().second.find("\"code\":0") != std::string::npos);

  Config next = config;
  next.requests.max_payload_bytes = 50;
  next.log.level = "debug";
  next.topics.prefix = "other";  // restart-only: the core keeps its tree
  next.ops.uids = {"ops"};
  core.reload(next);
  CHECK(part->calls == 1);
  CHECK(part->last_level == "debug");
  CHECK(core.config().ops.uids == std::vector<std::string>{"ops"});
  CHECK(core.config().topics.prefix == "rtm");
  core.on_message(Message{"rtm/req/alice/ping?msg_id=2", std::string(100, ' '), 1, false});
  CHECK(outbox.sent.back().first == "rtm/u/alice/res/ping?msg_id=2");
  CHECK(outbox.sent.back().second.find("PAYLOAD_TOO_LARGE") != std::string::npos);
}
