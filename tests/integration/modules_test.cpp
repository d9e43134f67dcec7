// Module RPC and the HTTP proxy end to end: a real Mosquitto on a free port, the real
// rtm-gateway binary, real im-worker processes (examples/im-worker) and a real local HTTP
// server (cpp-httplib) started by the test. Every wait has a deadline; no fixed sleeps.
#include <doctest/doctest.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/gateway/modules.hpp"

using namespace rtm::test;

namespace {

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

std::string str(const rapidjson::Value& v) {
  return v.IsString() ? v.GetString() : "";
}

std::string error_of(const rapidjson::Document& d) {
  return d.IsObject() && d.HasMember("error") ? str(d["error"]) : "OK";
}

std::int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A broker, a gateway with `extra_yaml`, im-worker processes, and one client that sends
// requests as any uid and reads every response (the broker of the tests is open).
struct Rig {
  Mosquitto broker;
  TempDir logs;
  Client caller;
  std::unique_ptr<GatewayProcess> gateway;
  std::map<std::string, std::unique_ptr<Process>> workers;
  int next_id = 0;

  explicit Rig(const std::string& extra_yaml) : caller(broker.uri(), unique_id("caller")) {
    GatewayOptions options;
    // One caller uid sends a few hundred requests in a burst here: above the per-uid rate
    // limit, which the hardening tests cover.
    options.extra_yaml = extra_yaml + "requests:\n  rate_per_s: 100000\n  burst: 100000\n";
    gateway = std::make_unique<GatewayProcess>(broker.uri(), options);
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway->log());
    caller.connect();
    caller.subscribe("rtm/u/+/res/#");
  }

  void start_worker(const std::string& node, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{RTM_IM_WORKER, "--broker",  broker.uri(), "--node",
                                  node,          "--threads", "8"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers[node] = std::make_unique<Process>(argv, logs.path() / (node + ".log"));
  }
  Process& worker(const std::string& node) { return *workers.at(node); }

  // Module requests need a session (modules.require_login): each caller logs in once.
  void login_once(const std::string& uid) {
    if (!logged_in.insert(uid).second) return;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string token = rtm::gateway::sign_token(
        {uid, now, now + 3600, std::nullopt, std::nullopt}, GatewayProcess::kSecret);
    const std::string full = "login?msg_id=login-" + std::to_string(++next_id);
    caller.publish("rtm/req/" + uid + "/" + full, "{\"token\":\"" + token + "\"}", 1);
    auto got = caller.wait_for("rtm/u/" + uid + "/res/" + full, 10s);
    REQUIRE_MESSAGE(got, "no answer to the login of " << uid);
    REQUIRE_MESSAGE(got->payload.find("\"code\":0") != std::string::npos, got->payload);
  }
  std::set<std::string> logged_in;

  std::string uri_with_id(const std::string& uri) {
    return uri + (uri.find('?') == std::string::npos ? "?" : "&") + "msg_id=m" +
           std::to_string(++next_id);
  }

  // Publishes a request; returns the full URI (with msg_id) to wait on.
  std::string send(const std::string& uid, const std::string& uri, const std::string& body = "") {
    login_once(uid);
    const std::string full = uri_with_id(uri);
    caller.publish("rtm/req/" + uid + "/" + full, body, 1);
    return full;
  }
  rapidjson::Document answer(const std::string& uid, const std::string& full,
                             std::chrono::milliseconds timeout = 10000ms) {
    auto got = caller.wait_for("rtm/u/" + uid + "/res/" + full, timeout);
    rapidjson::Document d;
    if (got) d.Parse(got->payload.c_str());
    return d;
  }
  rapidjson::Document call(const std::string& uid, const std::string& uri,
                           const std::string& body = "",
                           std::chrono::milliseconds timeout = 10000ms) {
    const std::string full = send(uid, uri, body);
    auto d = answer(uid, full, timeout);
    REQUIRE_MESSAGE(d.IsObject(), "no answer to " << full << "\n" << gateway->log());
    return d;
  }
  // The node that served `uri` (a whoami request) for uid.
  std::string served_by(const std::string& uid, const std::string& uri) {
    auto d = call(uid, uri);
    REQUIRE_MESSAGE(d["code"].GetInt() == 0, "whoami failed: " << str(d["message"]));
    return str(d["result"]["Result"]["node"]);
  }

  // Waits until the gateway routes to `node` (its announcement has arrived).
  void wait_node_up(const std::string& node) {
    const auto deadline = Clock::now() + 15s;
    while (Clock::now() < deadline) {
      const std::string full = send("probe", "im://" + node + "/whoami");
      auto d = answer("probe", full, 2000ms);
      if (d.IsObject() && d["code"].GetInt() == 0) return;
    }
    FAIL("node " << node << " never came up\n" << gateway->log() << "\n" << worker(node).log());
  }
  // Waits until `uri` is answered with NO_ROUTE (a node's Will has arrived).
  void wait_no_route(const std::string& uri) {
    const auto deadline = Clock::now() + 15s;
    while (Clock::now() < deadline) {
      const std::string full = send("probe", uri);
      auto d = answer("probe", full, 2000ms);
      if (error_of(d) == "NO_ROUTE") return;
    }
    FAIL(uri << " never got NO_ROUTE\n" << gateway->log());
  }
};

const std::vector<std::string> kNodes{"im-1", "im-2"};  // sorted

// Two workers, both routed to.
struct TwoNodes : Rig {
  explicit TwoNodes(const std::string& extra_yaml = "") : Rig(extra_yaml) {
    for (const auto& n : kNodes) start_worker(n);
    for (const auto& n : kNodes) wait_node_up(n);
  }
};

// A uid whose modulus node is `node`.
std::string uid_on(const std::string& node, const std::string& base = "user") {
  for (int i = 0;; ++i) {
    const std::string uid = base + std::to_string(i);
    if (*rtm::gateway::modules::modulus_pick(kNodes, uid) == node) return uid;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// module RPC over MQTT

TEST_CASE("module rpc: modulus keeps each uid on one node and spreads uids over both") {
  TwoNodes rig;
  std::set<std::string> used;
  for (int i = 0; i < 12; ++i) {
    const std::string uid = "player-" + std::to_string(i);
    const std::string first = rig.served_by(uid, "im://modulus/whoami");
    CHECK(first == *rtm::gateway::modules::modulus_pick(kNodes, uid));
    for (int k = 0; k < 2; ++k) CHECK(rig.served_by(uid, "im://modulus/whoami") == first);
    used.insert(first);
  }
  CHECK(used == std::set<std::string>(kNodes.begin(), kNodes.end()));
}

TEST_CASE("module rpc: literal node ids, random and cache") {
  TwoNodes rig;
  CHECK(rig.served_by("alice", "im://im-2/whoami") == "im-2");
  CHECK(rig.served_by("alice", "im://im-1/whoami") == "im-1");
  CHECK(error_of(rig.call("alice", "im://im-9/whoami")) == "NO_ROUTE");
  CHECK(error_of(rig.call("alice", "chat://modulus/whoami")) == "NO_ROUTE");

  std::set<std::string> seen;
  for (int i = 0; i < 24 && seen.size() < 2; ++i)
    seen.insert(rig.served_by("alice", "im://random/whoami"));
  CHECK(seen.size() == 2);  // each round misses a node with probability 1/2: 2^-23 for all

  // cache: the node that last served this uid, even against modulus.
  const std::string uid = uid_on("im-1", "cached-");
  CHECK(rig.served_by(uid, "im://cache/whoami") == "im-1");  // nothing cached yet: modulus
  CHECK(rig.served_by(uid, "im://im-2/whoami") == "im-2");
  CHECK(rig.served_by(uid, "im://cache/whoami") == "im-2");
  CHECK(rig.served_by(uid, "im://cache/whoami") == "im-2");
  CHECK(rig.served_by(uid, "im://modulus/whoami") == "im-1");
}

TEST_CASE("module rpc: the worker gets the trusted uid, params without msg_id and the body") {
  TwoNodes rig;
  for (const char* method : {"remove_feeds_member", "agree_join_feeds"}) {
    CAPTURE(method);
    auto d = rig.call("alice", std::string("im://modulus/") + method, R"({"feeds_id":"f1"})");
    REQUIRE(d["code"].GetInt() == 0);
    const auto& r = d["result"];
    CHECK(str(r["Result"]) == "success");
    CHECK(str(r["Error"]).empty());
    CHECK_FALSE(str(r["Trace"]).empty());
  }
  // The answer topic mirrors the request URI, msg_id included.
  const std::string full =
      rig.send("alice", "im://modulus/whoami?room=r%2042", R"({"uid":"mallory","n":7})");
  auto d = rig.answer("alice", full);
  REQUIRE(d.IsObject());
  CHECK(str(d["msg_id"]) == full.substr(full.find("msg_id=") + 7));
  const auto& who = d["result"]["Result"];
  CHECK(str(who["uid"]) == "alice");  // from the request topic, not from the body
  CHECK(str(who["method"]) == "whoami");
  CHECK(str(who["params"]["room"]) == "r 42");
  CHECK_FALSE(who["params"].HasMember("msg_id"));
  CHECK(str(who["body"]["uid"]) == "mallory");
  CHECK(who["body"]["n"].GetInt() == 7);

  auto failed = rig.call("alice", "im://modulus/fail");
  CHECK(error_of(failed) == "BACKEND_ERROR");
  CHECK(str(failed["message"]).find("failed on purpose") != std::string::npos);
  auto unknown = rig.call("alice", "im://modulus/no_such_method");
  CHECK(unknown["code"].GetInt() == 0);  // mqant style: the module's error is in the result
  CHECK(str(unknown["result"]["Error"]) == "unknown method no_such_method");
  CHECK(error_of(rig.call("alice", "im://modulus/whoami", "[1,2]")) == "BAD_JSON");
}

TEST_CASE(
    "module rpc: a node killed with SIGKILL fails its request at once, then the other serves, then "
    "NO_ROUTE") {
  TwoNodes rig("modules:\n  timeout_ms: 20000\n");
  const std::string full = rig.send("alice", "im://im-1/sleep?ms=15000");
  // The worker has the request once whoami of the same node is answered after it (FIFO
  // per connection, several threads): then kill it mid-request.
  CHECK(rig.served_by("bob", "im://im-1/whoami") == "im-1");
  const auto killed = Clock::now();
  rig.worker("im-1").kill_hard();
  auto d = rig.answer("alice", full, 10000ms);
  REQUIRE_MESSAGE(d.IsObject(), rig.gateway->log());
  CHECK(error_of(d) == "BACKEND_ERROR");
  CHECK(str(d["message"]) == "node im-1 of module im went down before answering");
  CHECK(ms_since(killed) < 5000);  // by its Will, long before the 20 s timeout

  // The Will took im-1 out of the node set: every uid goes to im-2 now.
  for (int i = 0; i < 6; ++i) {
    CHECK(rig.served_by("user" + std::to_string(i), "im://modulus/whoami") == "im-2");
  }
  CHECK(error_of(rig.call("alice", "im://im-1/whoami")) == "NO_ROUTE");
  rig.worker("im-2").kill_hard();
  rig.wait_no_route("im://modulus/whoami");
  auto none = rig.call("alice", "im://random/whoami");
  CHECK(error_of(none) == "NO_ROUTE");
  CHECK(str(none["message"]) == "no live node of module \"im\"");

  // A node coming back under the same id is routed to again.
  rig.start_worker("im-1");
  rig.wait_node_up("im-1");
  CHECK(rig.served_by("alice", "im://modulus/whoami") == "im-1");
}

TEST_CASE(
    "module rpc: no answer within modules.timeout_ms is TIMEOUT, and pending requests are "
    "bounded") {
  TwoNodes rig("modules:\n  timeout_ms: 800\n  max_pending_per_user: 2\n");
  const auto start = Clock::now();
  auto d = rig.call("alice", "im://im-1/sleep?ms=4000");
  const auto took = ms_since(start);
  CHECK(error_of(d) == "TIMEOUT");
  CHECK(str(d["message"]) == "node im-1 of module im did not answer within 800 ms");
  CHECK(took >= 700);
  CHECK(took < 4000);
  // The node still answers others meanwhile.
  CHECK(rig.served_by("bob", "im://im-1/whoami") == "im-1");

  // Two requests of carol wait; a third is refused at once.
  const std::string a = rig.send("carol", "im://im-2/sleep?ms=3000");
  const std::string b = rig.send("carol", "im://im-2/sleep?ms=3000");
  auto third = rig.call("carol", "im://im-2/whoami");
  CHECK(error_of(third) == "RATE_LIMITED");
  CHECK(error_of(rig.answer("carol", a)) == "TIMEOUT");
  CHECK(error_of(rig.answer("carol", b)) == "TIMEOUT");
  CHECK(rig.served_by("carol", "im://im-2/whoami") == "im-2");  // room again
}

TEST_CASE("module rpc: a slow worker (--slow-ms) times out, then its late answer is dropped") {
  Rig rig("modules:\n  timeout_ms: 500\n");
  rig.start_worker("slow-1", {"--slow-ms", "1500"});
  // Readiness through a literal route that tolerates the delay.
  const auto deadline = Clock::now() + 15s;
  bool up = false;
  while (!up && Clock::now() < deadline) {
    auto d = rig.call("probe", "im://slow-1/whoami", "", 3000ms);
    up = error_of(d) == "TIMEOUT";  // routed (not NO_ROUTE), and too slow
  }
  REQUIRE(up);
  const std::string full = rig.send("alice", "im://slow-1/agree_join_feeds");
  CHECK(error_of(rig.answer("alice", full)) == "TIMEOUT");
  // Its late answer reaches the gateway, which drops it: no second response. The gateway
  // logs (debug) the correlation id it gave the request, and the drop of a late answer.
  const std::string sent = full + " from alice -> rtm/rpc/im/slow-1 as ";
  const std::string log = rig.gateway->log();
  const auto at = log.find(sent);
  REQUIRE_MESSAGE(at != std::string::npos, log);
  const std::string id = log.substr(at + sent.size(), log.find('\n', at) - at - sent.size());
  const auto drop_deadline = Clock::now() + 10s;
  const std::string drop = "late or unknown answer " + id;
  while (rig.gateway->log().find(drop) == std::string::npos && Clock::now() < drop_deadline) {
    std::this_thread::sleep_for(20ms);  // polling the log, with a deadline
  }
  REQUIRE_MESSAGE(rig.gateway->log().find(drop) != std::string::npos, rig.gateway->log());
  CHECK_FALSE(rig.caller.wait_for("rtm/u/alice/res/" + full, 300ms));
}

TEST_CASE("module rpc: a worker pushes to a user on P/u/{uid}/push/{module}/...") {
  TwoNodes rig;
  Client bob(rig.broker.uri(), unique_id("bob"));
  bob.connect();
  bob.subscribe("rtm/u/bob/#");
  auto d = rig.call("alice", "im://modulus/push?to=bob&topic=news",
                    R"({"message":{"text":"hello bob","from":"alice"}})");
  REQUIRE(d["code"].GetInt() == 0);
  auto pushed = bob.wait_for("rtm/u/bob/push/im/news");
  REQUIRE(pushed);
  auto msg = parse(pushed->payload);
  CHECK(str(msg["text"]) == "hello bob");
  CHECK(str(msg["from"]) == "alice");
}

// ---------------------------------------------------------------------------------------------
// HTTP proxy

namespace {

// A local HTTP server: /api/echo describes the request it got, /api/status/N answers N,
// /api/hang waits until released.
struct Backend {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> hanging{0};

  Backend() {
    server.new_task_queue = [] { return new httplib::ThreadPool(32); };
    auto echo = [](const httplib::Request& req, httplib::Response& res) {
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      w.StartObject();
      w.Key("method");
      w.String(req.method.c_str());
      w.Key("path");
      w.String(req.path.c_str());
      w.Key("query");
      w.StartObject();
      for (const auto& [k, v] : req.params) {
        w.Key(k.c_str());
        w.String(v.c_str());
      }
      w.EndObject();
      w.Key("headers");
      w.StartObject();
      for (const char* h : {"X-RTM-Uid", "X-Api-Key", "X-Trace", "Cookie", "Content-Type"}) {
        if (req.has_header(h)) {
          w.Key(h);
          w.String(req.get_header_value(h).c_str());
        }
      }
      w.EndObject();
      w.Key("body");
      w.String(req.body.c_str());
      w.EndObject();
      res.set_content(buf.GetString(), "application/json");
      res.set_header("X-Backend", "echo");
    };
    server.Get("/api/echo", echo);
    server.Post("/api/echo", echo);
    server.Get(R"(/api/status/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      res.status = std::stoi(req.matches[1]);
      res.set_content("status " + std::string(req.matches[1]), "text/plain");
    });
    server.Get("/api/hang", [this](const httplib::Request&, httplib::Response& res) {
      ++hanging;
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait_for(lock, 20s, [this] { return released; });
      --hanging;
      res.set_content("late", "text/plain");
    });
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~Backend() {
    release();
    server.stop();
    thread.join();
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      released = true;
    }
    cv.notify_all();
  }
  bool wait_hanging(int n, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (hanging >= n) return true;
      std::this_thread::sleep_for(5ms);  // polling a counter, with a deadline
    }
    return hanging >= n;
  }
};

std::string backends_yaml(int port) {
  const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/api";
  return "http_backends:\n"
         "  local:\n"
         "    base_url: " +
         base +
         "\n"
         "    timeout_ms: 5000\n"
         "    headers:\n"
         "      X-Api-Key: test-key\n"
         "    pass_headers: [Content-Type, X-Trace]\n"
         "  slow:\n"
         "    base_url: " +
         base +
         "\n"
         "    timeout_ms: 600\n"
         "  patient:\n"
         "    base_url: " +
         base +
         "\n"
         "    timeout_ms: 15000\n";
}

struct HttpRig {
  Backend backend;
  Rig rig{backends_yaml(backend.port)};
};

}  // namespace

TEST_CASE(
    "http proxy: a call reaches the allow-listed backend with the uid header and without msg_id") {
  HttpRig h;
  const std::string full = h.rig.send(
      "alice", "http://local/echo?a=1&b=x%20y",
      R"({"Method":"POST","Header":{"X-Trace":"t-1","Cookie":"stolen=1","X-RTM-Uid":"admin"},)"
      R"("Body":{"amount":5}})");
  auto d = h.rig.answer("alice", full);
  REQUIRE_MESSAGE(d.IsObject(), h.rig.gateway->log());
  REQUIRE_MESSAGE(d["code"].GetInt() == 0, str(d["message"]));
  const auto& r = d["result"];
  CHECK(r["StatusCode"].GetInt() == 200);
  CHECK(str(r["Err"]).empty());
  CHECK(str(r["Header"]["X-Backend"]) == "echo");
  auto echo = parse(str(r["Body"]));
  REQUIRE(echo.IsObject());
  CHECK(str(echo["method"]) == "POST");
  CHECK(str(echo["path"]) == "/api/echo");
  CHECK(str(echo["query"]["a"]) == "1");
  CHECK(str(echo["query"]["b"]) == "x y");
  CHECK_FALSE(echo["query"].HasMember("msg_id"));
  CHECK(str(echo["headers"]["X-RTM-Uid"]) == "alice");
  CHECK(str(echo["headers"]["X-Api-Key"]) == "test-key");
  CHECK(str(echo["headers"]["X-Trace"]) == "t-1");
  CHECK_FALSE(echo["headers"].HasMember("Cookie"));
  CHECK(str(echo["headers"]["Content-Type"]) == "application/json");
  CHECK(str(echo["body"]) == R"({"amount":5})");

  // GET with an empty payload.
  auto get = h.rig.call("bob", "http://local/echo");
  REQUIRE(get["code"].GetInt() == 0);
  auto echo2 = parse(str(get["result"]["Body"]));
  CHECK(str(echo2["method"]) == "GET");
  CHECK(str(echo2["headers"]["X-RTM-Uid"]) == "bob");
}

TEST_CASE("http proxy: 4xx and 5xx are relayed as StatusCode") {
  HttpRig h;
  for (int status : {404, 418, 500, 503}) {
    CAPTURE(status);
    auto d = h.rig.call("alice", "http://local/status/" + std::to_string(status));
    REQUIRE(d["code"].GetInt() == 0);
    CHECK(d["result"]["StatusCode"].GetInt() == status);
    CHECK(str(d["result"]["Body"]) == "status " + std::to_string(status));
  }
  auto missing = h.rig.call("alice", "http://local/no/such/path");
  CHECK(missing["result"]["StatusCode"].GetInt() == 404);
}

TEST_CASE("http proxy: a hanging backend gives TIMEOUT, and hosts not allow-listed get NO_ROUTE") {
  HttpRig h;
  const auto start = Clock::now();
  auto d = h.rig.call("alice", "http://slow/hang");
  const auto took = ms_since(start);
  CHECK(error_of(d) == "TIMEOUT");
  CHECK(str(d["message"]) == "HTTP backend slow did not answer within 600 ms");
  CHECK(took >= 500);
  CHECK(took < 5000);

  const std::string port = std::to_string(h.backend.port);
  for (const std::string uri : {"http://nobody/echo", "https://local/echo",
                                "http://127.0.0.1/api/echo", "http://localhost/api/echo"}) {
    CAPTURE(uri);
    CHECK(error_of(h.rig.call("alice", uri)) == "NO_ROUTE");
  }
  CHECK(error_of(h.rig.call("alice", "http://127.0.0.1:" + port + "/api/echo")) == "NO_ROUTE");
  CHECK(error_of(h.rig.call("alice", "http://local/../echo")) == "INVALID_URI");
}

TEST_CASE("http proxy: eight hanging calls never stall the loop: a ping is answered at once") {
  HttpRig h;
  std::vector<std::string> hanging;
  for (int i = 0; i < 8; ++i)
    hanging.push_back(h.rig.send("user" + std::to_string(i), "http://patient/hang"));
  // All four HTTP threads (modules.http_threads) are blocked in calls.
  REQUIRE_MESSAGE(h.backend.wait_hanging(4, 10000ms), h.rig.gateway->log());
  for (int round = 0; round < 3; ++round) {
    const auto start = Clock::now();
    auto pong = h.rig.call("alice", "ping");
    CHECK(pong["code"].GetInt() == 0);
    CHECK(ms_since(start) < 500);
  }
  CHECK(h.backend.hanging == 4);  // the other four wait in the pool's queue
  h.backend.release();
  for (int i = 0; i < 8; ++i) {
    auto d = h.rig.answer("user" + std::to_string(i), hanging[i]);
    REQUIRE(d.IsObject());
    CHECK(d["code"].GetInt() == 0);
    CHECK(str(d["result"]["Body"]) == "late");
  }
}

// ---------------------------------------------------------------------------------------------
// broker ACL for workers

namespace {

// The ACL block for `im-worker` exactly as docs/modules.md gives it.
std::string documented_worker_acl() {
  const std::string doc = read_file(std::string(RTM_SOURCE_DIR) + "/docs/modules.md");
  const auto start = doc.find("```\nuser im-worker\n");
  REQUIRE(start != std::string::npos);
  const auto end = doc.find("```", start + 3);
  REQUIRE(end != std::string::npos);
  return doc.substr(start + 4, end - start - 4);
}

Client::Options as_user(const std::string& name) {
  Client::Options o;
  o.username = name;
  o.password = name + "-password";
  return o;
}

}  // namespace

TEST_CASE(
    "module rpc: the worker ACL of docs/modules.md is enough, and keeps a worker to its module") {
  TempDir dir;
  const std::string passwd = (dir.path() / "passwd").string();
  for (const char* user : {"rtm-gateway", "im-worker", "alice", "bob"}) {
    std::vector<std::string> argv{"mosquitto_passwd", "-b", passwd, user,
                                  std::string(user) + "-password"};
    if (std::string(user) == "rtm-gateway") argv.insert(argv.begin() + 2, "-c");
    auto made = run_command(argv);
    REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  }
  const std::string acl = (dir.path() / "acl").string();
  write_file(acl, read_file(std::string(RTM_SOURCE_DIR) + "/docker/mosquitto/acl") + "\n" +
                      documented_worker_acl());
  Mosquitto broker("password_file " + passwd + "\nacl_file " + acl + "\n", false);
  GatewayOptions options;
  options.password = "rtm-gateway-password";
  options.extra_yaml = "modules:\n  timeout_ms: 300\n";
  GatewayProcess gateway(broker.uri(), options);

  Client alice(broker.uri(), unique_id("alice"), as_user("alice"));
  alice.connect();
  alice.subscribe("rtm/u/alice/#");
  Client bob(broker.uri(), unique_id("bob"), as_user("bob"));
  bob.connect();
  bob.subscribe("rtm/u/bob/#");
  {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string token = rtm::gateway::sign_token(
        {"alice", now, now + 3600, std::nullopt, std::nullopt}, GatewayProcess::kSecret);
    // The gateway may not be subscribed yet: the login is repeated until it is answered.
    rapidjson::Document login;
    const auto deadline = Clock::now() + 20s;
    for (int attempt = 1; Clock::now() < deadline && !login.IsObject(); ++attempt) {
      login = request(alice, "alice", "login?msg_id=a-login-" + std::to_string(attempt),
                      "{\"token\":\"" + token + "\"}", "rtm", 300ms);
    }
    REQUIRE_MESSAGE(login.IsObject(), "no answer to alice's login\n" << gateway.log());
    REQUIRE(login["code"].GetInt() == 0);
  }
  int next = 0;
  auto call = [&](const std::string& uri, const std::string& body = "",
                  std::chrono::milliseconds timeout = 10000ms) {
    return request(alice, "alice", uri + "msg_id=a" + std::to_string(++next), body, "rtm", timeout);
  };
  auto wait_for_code = [&](const std::string& uri, const std::string& wanted) {
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      if (error_of(call(uri, "", 1000ms)) == wanted) return true;
    }
    return false;
  };

  const std::vector<std::string> worker{RTM_IM_WORKER, "--broker",   broker.uri(),
                                        "--node",      "im-1",       "--username",
                                        "im-worker",   "--password", "im-worker-password"};
  Process im(worker, dir.path() / "im-1.log");
  REQUIRE_MESSAGE(wait_for_code("im://im-1/whoami?", "OK"), gateway.log() << "\n" << im.log());

  // Requests, answers and server push under the worker's rights.
  auto pushed = call("im://modulus/push?to=bob&topic=news&", R"({"message":{"text":"hi bob"}})");
  CHECK(pushed["code"].GetInt() == 0);
  auto got = bob.wait_for("rtm/u/bob/push/im/news");
  REQUIRE(got);
  CHECK(str(parse(got->payload)["text"]) == "hi bob");

  // The same user cannot announce a node of another module. On one connection it announces
  // chat/c-1, then im/marker-1: once the gateway knows the marker, it would have seen c-1
  // before it (per-connection order), so NO_ROUTE for c-1 means the broker dropped it.
  Client as_worker(broker.uri(), unique_id("as-worker"), as_user("im-worker"));
  as_worker.connect();
  as_worker.publish("rtm/nodes/chat/c-1", R"({"state":"up","session":"x"})", 1, true);
  as_worker.publish("rtm/nodes/im/marker-1", R"({"state":"up","session":"x"})", 1, true);
  CHECK(wait_for_code("im://marker-1/whoami?", "TIMEOUT"));  // routed: nobody answers
  CHECK(error_of(call("chat://c-1/whoami?")) == "NO_ROUTE");
  as_worker.publish("rtm/nodes/im/marker-1", R"({"state":"down","session":"x"})", 1, true);

  // The Will is allowed: a killed worker leaves the node set.
  im.kill_hard();
  CHECK(wait_for_code("im://im-1/whoami?", "NO_ROUTE"));
}
