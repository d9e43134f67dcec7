// Operating the gateway, tried as an operator would: health and readiness probes while the
// broker goes away and comes back, Prometheus metrics read by a Prometheus parser, SIGHUP
// with a changed and with a broken file, secrets in files, JSON logs, and the retained
// status that tells devices and other gateways who is serving a prefix.
#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.hpp"
#include "rtm/tokens/jwt.hpp"

using namespace rtm::test;

namespace {

// A gateway the test configures fully (the harness's GatewayProcess writes its own config).
struct OpsGateway {
  TempDir dir;
  int http_port = free_port();
  std::string client_id = unique_id("gw");
  std::unique_ptr<Process> process;

  std::filesystem::path config() const { return dir.path() / "config.yaml"; }

  // The config: broker, the test secret, the ops listener, then `extra` top-level YAML.
  std::string yaml(const std::string& broker_uri, const std::string& extra,
                   const std::string& log = "  level: info\n") const {
    return "broker:\n  uri: " + broker_uri + "\n  client_id: " + client_id +
           "\n  reconnect_min_ms: 50\n  reconnect_max_ms: 500\n"
           "auth:\n  token_secret: " +
           std::string(GatewayProcess::kSecret) +
           "\n"
           "log:\n" +
           log +
           "  stats_interval_s: 0\n"
           "ops:\n  http_listen: 127.0.0.1:" +
           std::to_string(http_port) + "\n" + extra;
  }

  void start() {
    process = std::make_unique<Process>(
        std::vector<std::string>{gateway_binary(), "--config", config().string()},
        dir.path() / "gateway.log");
  }
  std::string log() const { return process ? process->log() : ""; }
  void hup() { ::kill(process->pid(), SIGHUP); }

  // GET path: (status, body); status -1 when nothing answers.
  std::pair<int, std::string> get(const std::string& path) const {
    httplib::Client http("127.0.0.1", http_port);
    http.set_connection_timeout(2, 0);
    http.set_read_timeout(10, 0);
    auto res = http.Get(path);
    if (!res) return {-1, ""};
    return {res->status, res->body};
  }

  // Waits until GET path answers `status`.
  bool wait_status(const std::string& path, int status,
                   std::chrono::milliseconds timeout = 20000ms) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (get(path).first == status) return true;
      std::this_thread::sleep_for(20ms);  // polling an endpoint, not waiting for time
    }
    return false;
  }

  // Waits until the log holds `text` (after `from` bytes); returns where it ends.
  std::optional<std::size_t> wait_log(const std::string& text, std::size_t from = 0) const {
    return wait_for_text([this] { return log(); }, text, from);
  }
};

struct User {
  std::string uid;
  Client client;
  int next = 1;
  User(const std::string& broker_uri, std::string name)
      : uid(std::move(name)), client(broker_uri, unique_id(uid)) {
    client.connect();
    client.subscribe("rtm/u/" + uid + "/#");
  }
  rapidjson::Document call(const std::string& op, const std::string& body = "") {
    const auto sep = op.find('?') == std::string::npos ? "?" : "&";
    auto doc =
        request(client, uid, op + sep + "msg_id=" + uid + "-" + std::to_string(next++), body);
    REQUIRE_MESSAGE(doc.IsObject(), "no answer to " << op);
    return doc;
  }
  std::string error(const std::string& op) {
    auto doc = call(op);
    return doc["code"].GetInt() == 0 ? "OK" : doc["error"].GetString();
  }
};

// The metric families of a Prometheus text, as Prometheus' own Python parser reads them:
// one line per sample, "name{labels} value", sorted; a parse error fails the test.
std::string parse_prometheus(const std::filesystem::path& file) {
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "out = []\n"
      "for fam in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    for s in fam.samples:\n"
      "        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))\n"
      "        out.append('%s{%s} %r' % (s.name, labels, s.value))\n"
      "print('\\n'.join(sorted(out)))\n";
  // Debian's python3, whose python3-prometheus-client scripts/packages.txt installs (a
  // python3 earlier on PATH may be another installation without it).
  auto r = run_command({"/usr/bin/python3", "-c", script, file.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, "not valid Prometheus text: " << r.output);
  return r.output;
}

}  // namespace

TEST_CASE("ops: /readyz follows the broker link and /healthz the process and /metrics parses") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.config(), gw.yaml(broker.uri(), ""));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  CHECK(gw.get("/healthz").first == 200);

  User alice(broker.uri(), "alice");
  CHECK(alice.error("ping") == "OK");
  CHECK(alice.error("no_such_op") == "UNKNOWN_OPERATION");
  CHECK(alice.error("join?channel=room-1") == "NOT_LOGGED_IN");

  auto [status, text] = gw.get("/metrics");
  REQUIRE(status == 200);
  write_file(gw.dir.path() / "metrics.txt", text);
  const auto samples = parse_prometheus(gw.dir.path() / "metrics.txt");
  INFO(samples);
  CHECK(samples.find("rtm_requests_total{code=OK,op=ping} 1.0") != std::string::npos);
  CHECK(samples.find("rtm_requests_total{code=UNKNOWN_OPERATION,op=unknown} 1.0") !=
        std::string::npos);
  CHECK(samples.find("rtm_requests_total{code=NOT_LOGGED_IN,op=join} 1.0") != std::string::npos);
  CHECK(samples.find("rtm_request_duration_seconds_count{} 3.0") != std::string::npos);
  CHECK(samples.find("rtm_broker_connected{} 1.0") != std::string::npos);
  CHECK(samples.find("rtm_sessions{} 0.0") != std::string::npos);
  CHECK(samples.find("rtm_dedup_entries{} 3.0") != std::string::npos);
  CHECK(samples.find("rtm_dedup_bytes{}") != std::string::npos);
  CHECK(samples.find("rtm_bridge_messages_total") == std::string::npos);  // no rules, no samples

  broker.stop();
  CHECK_MESSAGE(gw.wait_status("/readyz", 503), gw.log());
  CHECK(gw.get("/readyz").second.find("broker connection lost") != std::string::npos);
  CHECK(gw.get("/healthz").first == 200);  // the process is fine: no reason to restart it
  broker.start();
  CHECK_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  const auto after = gw.get("/metrics").second;
  CHECK(after.find("rtm_broker_connection_lost_total 1\n") != std::string::npos);
  CHECK(after.find("rtm_broker_connects_total 2\n") != std::string::npos);
}

TEST_CASE("ops: SIGHUP applies a changed file but a broken file changes nothing") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.config(), gw.yaml(broker.uri(), ""));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  User ops(broker.uri(), "ops");
  CHECK(ops.error("stats") == "FORBIDDEN");  // not in ops.uids
  CHECK(ops.error("nope") == "UNKNOWN_OPERATION");
  CHECK(gw.log().find("failed: UNKNOWN_OPERATION") == std::string::npos);  // info level

  write_file(gw.config(), gw.yaml(broker.uri(), "  uids: [ops]\n", "  level: debug\n"));
  gw.hup();
  auto mark = gw.wait_log("config: reloaded");
  REQUIRE_MESSAGE(mark, gw.log());
  CHECK(ops.error("stats") == "OK");
  CHECK(ops.error("nope") == "UNKNOWN_OPERATION");
  CHECK(gw.wait_log("failed: UNKNOWN_OPERATION", *mark));  // debug lines now

  // A broken file: each problem logged with its key path; the running config stays.
  write_file(gw.config(),
             gw.yaml(broker.uri(), "  uids: [ops]\n", "  level: loud\n") + "limits:\n  bogus: 1\n");
  gw.hup();
  auto refused = gw.wait_log("the running configuration stays", *mark);
  REQUIRE_MESSAGE(refused, gw.log());
  const auto l = gw.log();
  CHECK(l.find("log.level: expected one of") != std::string::npos);
  CHECK(l.find("limits.bogus: unknown key") != std::string::npos);
  CHECK(gw.process->running());
  CHECK(ops.error("stats") == "OK");
  const auto before = gw.log().size();
  CHECK(ops.error("nope") == "UNKNOWN_OPERATION");
  CHECK(gw.wait_log("failed: UNKNOWN_OPERATION", before));  // still at debug
  const auto metrics = gw.get("/metrics").second;
  CHECK(metrics.find("rtm_config_reloads_total{result=\"applied\"} 1\n") != std::string::npos);
  CHECK(metrics.find("rtm_config_reloads_total{result=\"refused\"} 1\n") != std::string::npos);

  // A restart-only key is named, and keeps its running value.
  write_file(gw.config(), gw.yaml(broker.uri(), "  uids: [ops]\n", "  level: debug\n") +
                              "topics:\n  prefix: other\n");
  gw.hup();
  CHECK(gw.wait_log("topics.prefix changed; it takes effect only after a restart", *refused));
  CHECK(ops.error("ping") == "OK");  // still on prefix rtm
  CHECK(gw.process->stop() == 0);    // and SIGTERM still stops it cleanly
}

TEST_CASE("ops: SIGHUP brings in a mapping rule without a restart") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.config(), gw.yaml(broker.uri(), ""));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  Client host(broker.uri(), unique_id("host"));
  host.connect();
  host.subscribe("rtm/ch/hall/temp/+");
  Client device(broker.uri(), unique_id("sensor"));
  device.connect();

  device.publish("factory/hall/s1/temp", "20.5", 1);
  CHECK_FALSE(host.wait_for("rtm/ch/hall/temp/+", 300ms));  // no rule yet: nothing bridged

  const std::string rule =
      "mapping:\n  rules:\n    - name: temps\n      source: \"factory/{hall}/{sensor}/temp\"\n"
      "      target: {channel: \"{hall}\", topic: temp, publisher: \"{sensor}\"}\n";
  write_file(gw.config(), gw.yaml(broker.uri(), "", "  level: info\n") + rule);
  gw.hup();
  REQUIRE_MESSAGE(gw.wait_log("config: reloaded"), gw.log());
  // The subscription to the new source is in place once the reload is logged and a ping
  // made a round trip through the loop after it.
  User probe(broker.uri(), "probe");
  CHECK(probe.error("ping") == "OK");
  device.publish("factory/hall/s1/temp", "21.0", 1);
  auto got = host.wait_for("rtm/ch/hall/temp/+");
  REQUIRE_MESSAGE(got, gw.log());
  CHECK(got->topic == "rtm/ch/hall/temp/s1");
  CHECK(got->payload == "21.0");
  const auto metrics = gw.get("/metrics").second;
  CHECK(metrics.find("rtm_bridge_messages_total{rule=\"temps\",result=\"relayed\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("ops: secrets from files and the public demo secret only where the config says demo") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.dir.path() / "token.secret", std::string(GatewayProcess::kSecret) + "\n");
  std::string text = gw.yaml(broker.uri(), "");
  const auto at = text.find("  token_secret: ");
  text.replace(at, text.find('\n', at) - at, "  token_secret_file: token.secret");  // relative
  write_file(gw.config(), text);
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  User alice(broker.uri(), "alice");
  CHECK(alice.error("login?token=" + token_for("alice")) == "OK");  // the file's secret

  TempDir dir;
  const auto demo = dir.path() / "demo.yaml";
  write_file(demo, "auth:\n  token_secret: \"demo-secret-change-me-0123456789abcdef\"\n");
  auto refused = run_command({gateway_binary(), "--check-config", "--config", demo.string()});
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("auth.token_secret: is the public demo secret") != std::string::npos);
  write_file(demo,
             "auth:\n  token_secret: \"demo-secret-change-me-0123456789abcdef\"\n"
             "  allow_demo_secret: true\n");
  CHECK(run_command({gateway_binary(), "--check-config", "--config", demo.string()}).exit_code ==
        0);

  write_file(demo, "auth:\n  token_secret_file: missing.secret\n");
  auto missing = run_command({gateway_binary(), "--check-config", "--config", demo.string()});
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("auth.token_secret_file: cannot read \"" +
                            (dir.path() / "missing.secret").string() +
                            "\": No such file or directory") != std::string::npos);

  // Run from another folder with no config: the message says where it looked and what to do.
  auto none =
      run_command({"/bin/sh", "-c",
                   "cd " + dir.path().string() + " && " + gateway_binary() + " token --uid alice"});
  CHECK(none.exit_code == 1);
  CHECK(none.output.find("config.yaml: cannot be read: No such file or directory (relative to "
                         "the working directory") != std::string::npos);
}

TEST_CASE("ops: log.format json writes one JSON object per line with the request's uid") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.config(), gw.yaml(broker.uri(), "", "  level: debug\n  format: json\n"));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  User alice(broker.uri(), "alice");
  CHECK(alice.error("join?channel=lobby") == "NOT_LOGGED_IN");
  REQUIRE(gw.wait_log("\"msg_id\":\"alice-1\""));
  CHECK(gw.process->stop() == 0);

  int lines = 0;
  bool request_line = false;
  std::istringstream in(gw.log());
  for (std::string line; std::getline(in, line);) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    REQUIRE_MESSAGE(doc.IsObject(), "not a JSON object: " << line);
    CHECK(doc["time"].IsString());
    CHECK(doc["level"].IsString());
    CHECK(doc["msg"].IsString());
    ++lines;
    if (doc.HasMember("uid") && std::string(doc["uid"].GetString()) == "alice" &&
        std::string(doc["msg_id"].GetString()) == "alice-1") {
      request_line = true;
      CHECK(std::string(doc["level"].GetString()) == "debug");
    }
    if (line.find("serving requests") != std::string::npos) {
      CHECK(std::string(doc["event"].GetString()) == "gateway");
    }
  }
  CHECK(lines > 3);
  CHECK(request_line);
}

TEST_CASE("ops: P/gateway/status tells who serves and a second gateway on the prefix is named") {
  Mosquitto broker;
  Client watcher(broker.uri(), unique_id("watcher"));
  watcher.connect();
  watcher.subscribe("rtm/gateway/status");

  OpsGateway first;
  write_file(first.config(), first.yaml(broker.uri(), ""));
  first.start();
  auto online = watcher.wait_for("rtm/gateway/status");
  REQUIRE_MESSAGE(online, first.log());
  rapidjson::Document status;
  status.Parse(online->payload.c_str());
  REQUIRE(status.IsObject());
  CHECK(std::string(status["state"].GetString()) == "online");
  CHECK(std::string(status["client_id"].GetString()) == first.client_id);
  CHECK(status["started_at"].IsInt64());
  const std::string instance = status["instance"].GetString();
  CHECK(instance.size() == 16);

  SUBCASE("another client id: both say that requests get two answers") {
    OpsGateway second;
    write_file(second.config(), second.yaml(broker.uri(), ""));
    second.start();
    CHECK_MESSAGE(second.wait_log("answers requests on prefix \"rtm\" too"), second.log());
    CHECK_MESSAGE(first.wait_log("answers requests on prefix \"rtm\" too"), first.log());
    CHECK(second.log().find("instance " + instance) != std::string::npos);
  }
  SUBCASE("the same client id: the take-over is named, and reconnects back off") {
    OpsGateway second;
    second.client_id = first.client_id;
    write_file(second.config(), second.yaml(broker.uri(), ""));
    second.start();
    const auto said = wait_for_text([&] { return first.log() + second.log(); },
                                    "broker.client_id \"" + first.client_id + "\"", 0, 15s);
    CHECK_MESSAGE(said, first.log() << "\n---\n" << second.log());
  }
  SUBCASE("a clean stop says offline, retained") {
    CHECK(first.process->stop() == 0);
    auto offline = watcher.wait_for("rtm/gateway/status");
    REQUIRE(offline);
    rapidjson::Document bye;
    bye.Parse(offline->payload.c_str());
    CHECK(std::string(bye["state"].GetString()) == "offline");
    CHECK(std::string(bye["reason"].GetString()) == "stopped");
    CHECK(std::string(bye["instance"].GetString()) == instance);
    Client late(broker.uri(), unique_id("late"));
    late.connect();
    late.subscribe("rtm/gateway/status");
    auto kept = late.wait_for("rtm/gateway/status");
    REQUIRE(kept);
    CHECK(kept->retained);
    CHECK(kept->payload == offline->payload);
  }
  SUBCASE("a crash: the broker publishes the Will, offline") {
    first.process->kill_hard();
    auto will = watcher.wait_for("rtm/gateway/status");
    REQUIRE(will);
    rapidjson::Document bye;
    bye.Parse(will->payload.c_str());
    CHECK(std::string(bye["state"].GetString()) == "offline");
    CHECK(std::string(bye["reason"].GetString()) == "connection_lost");
  }
}

TEST_CASE("ops: EMQX's HTTP authorization and the kick endpoint need an operator key") {
  Mosquitto broker;
  OpsGateway gw;
  const std::string key = "operator-key-0123456789abcdef";
  // yaml() ends inside the ops section: the first lines continue it.
  write_file(gw.config(), gw.yaml(broker.uri(), "  uids: [ops]\n  api_keys: [\"" + key +
                                                     "\"]\nenforcement:\n  http_authz: true\n"));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());

  User alice(broker.uri(), "alice");
  User bob(broker.uri(), "bob");
  for (User* u : {&alice, &bob}) {
    const std::string token = rtm::gateway::sign_token(
        {u->uid, 0, 4102444800, std::nullopt, std::nullopt}, GatewayProcess::kSecret);
    REQUIRE(u->call("login", "{\"token\":\"" + token + "\"}")["code"].GetInt() == 0);
    REQUIRE(u->error("join?channel=room") == "OK");
  }
  REQUIRE(alice.error("join_topic?channel=room&topic=input") == "OK");
  REQUIRE(bob.call("subscribe?channel=room&topic=input", R"({"users":["alice"]})")["code"].GetInt() == 0);

  httplib::Client http("127.0.0.1", gw.http_port);
  http.set_read_timeout(10, 0);
  const httplib::Headers auth{{"Authorization", "Bearer " + key}};
  // As EMQX's HTTP authorizer sends it (body template with username, clientid, topic, action).
  auto ask = [&](const std::string& username, const std::string& topic, const std::string& action) {
    const std::string body = R"({"username":")" + username + R"(","clientid":")" + username +
                             R"(/phone","topic":")" + topic + R"(","action":")" + action + "\"}";
    auto res = http.Post("/v1/authz", auth, body, "application/json");
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 200, res->body);
    return res->body;
  };
  CHECK(ask("bob", "rtm/ch/room/input/alice", "subscribe") == R"({"result":"allow"})");
  CHECK(ask("carol", "rtm/ch/room/input/alice", "subscribe") == R"({"result":"deny"})");
  CHECK(ask("bob", "rtm/ch/#", "subscribe") == R"({"result":"deny"})");
  CHECK(ask("bob", "rtm/events/room", "subscribe") == R"({"result":"allow"})");
  CHECK(ask("alice", "rtm/ch/room/input/alice", "publish") == R"({"result":"allow"})");
  CHECK(ask("bob", "rtm/ch/room/input/bob", "publish") == R"({"result":"deny"})");
  CHECK(ask("bob", "rtm/u/alice/inbox/bob", "publish") == R"({"result":"allow"})");
  CHECK(ask("bob", "rtm/u/bob/#", "subscribe") == R"({"result":"ignore"})");

  // A revocation is answered at once.
  REQUIRE(bob.call("unsubscribe?channel=room&topic=input", R"({"users":["alice"]})")["code"].GetInt() == 0);
  CHECK(ask("bob", "rtm/ch/room/input/alice", "subscribe") == R"({"result":"deny"})");

  // Keys and bodies are checked.
  auto no_key = http.Post("/v1/authz", R"({"username":"bob","topic":"t","action":"publish"})",
                          "application/json");
  REQUIRE(no_key);
  CHECK(no_key->status == 401);
  const httplib::Headers wrong{{"Authorization", "Bearer operator-key-0123456789abcdeX"}};
  auto bad_key = http.Post("/v1/kick", wrong, R"({"uid":"bob"})", "application/json");
  REQUIRE(bad_key);
  CHECK(bad_key->status == 401);
  auto bad_action = http.Post("/v1/authz", auth, R"({"username":"bob","topic":"t","action":"all"})",
                              "application/json");
  REQUIRE(bad_action);
  CHECK(bad_action->status == 400);
  auto not_json = http.Post("/v1/kick", auth, "uid=bob", "text/plain");
  REQUIRE(not_json);
  CHECK(not_json->status == 400);
  auto huge = http.Post("/v1/kick", auth, std::string(64 * 1024, ' '), "application/json");
  REQUIRE(huge);
  CHECK(huge->status == 413);

  // The kick ends bob's session (he is told why).
  auto kicked = http.Post("/v1/kick", auth, R"({"uid":"bob"})", "application/json");
  REQUIRE(kicked);
  CHECK(kicked->status == 200);
  CHECK(kicked->body == R"({"uid":"bob","had_session":true})");
  bool told = false;
  while (!told) {
    auto event = bob.client.wait_for("rtm/u/bob/events/session");
    REQUIRE(event);
    told = event->payload.find("\"reason\":\"kicked\"") != std::string::npos;
  }
  CHECK(bob.error("ping") == "OK");
  CHECK(bob.error("join?channel=room") == "NOT_LOGGED_IN");
}

TEST_CASE("ops: without api_keys the operator endpoints are off") {
  Mosquitto broker;
  OpsGateway gw;
  write_file(gw.config(), gw.yaml(broker.uri(), ""));
  gw.start();
  REQUIRE_MESSAGE(gw.wait_status("/readyz", 200), gw.log());
  httplib::Client http("127.0.0.1", gw.http_port);
  const httplib::Headers auth{{"Authorization", "Bearer anything-at-all-0123456789"}};
  auto res = http.Post("/v1/kick", auth, R"({"uid":"bob"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
}

TEST_CASE("ops: the command line sets the broker profile and RabbitMQ's HTTP auth, checked") {
  // What `RTM_BROKER=rabbitmq scripts/run.sh` (RTM_SECURE=1) adds to config.yaml's settings.
  TempDir dir;
  const auto config = dir.path() / "gw.yaml";
  write_file(config, "auth:\n  token_secret: \"" + std::string(GatewayProcess::kSecret) +
                         "\"\nops:\n  http_listen: \"127.0.0.1:1\"\n");
  const auto key = dir.path() / "key";
  auto check = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{gateway_binary(), "--check-config", "--config", config.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  auto profile = check({"--broker-profile", "rabbit"});
  CHECK(profile.exit_code == 1);
  CHECK_MESSAGE(profile.output.find("--broker-profile: expected mosquitto, emqx, rabbitmq or "
                                    "generic, got \"rabbit\"") != std::string::npos,
                profile.output);
  CHECK(check({"--broker-profile", "rabbitmq", "--broker-username", ""}).exit_code == 0);

  write_file(key, "short\n");
  auto short_key = check({"--rabbitmq-http-auth-key-file", key.string()});
  CHECK(short_key.exit_code == 1);
  CHECK_MESSAGE(short_key.output.find("--rabbitmq-http-auth-key-file: the key must be at least 16 "
                                      "bytes") != std::string::npos,
                short_key.output);
  write_file(key, "0123456789abcdef0123\n");
  auto no_listener = check({"--rabbitmq-http-auth-key-file", key.string(), "--ops-listen", ""});
  CHECK(no_listener.exit_code == 1);
  CHECK_MESSAGE(no_listener.output.find("needs ops.http_listen") != std::string::npos,
                no_listener.output);
  CHECK(check({"--rabbitmq-http-auth-key-file", key.string()}).exit_code == 0);
  // The key never shows in a message.
  CHECK(short_key.output.find("short") == std::string::npos);
}
