// Tests of module RPC (rtm/gateway/modules.hpp, http_proxy.hpp): the config keys of
// `modules` and `http_backends`, the routing rules on the pure node directory, the whole
// worker protocol through a Core with a fake outbox and a fake clock, and the pure parts
// of the HTTP proxy (building calls, the mqant-style answer).
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/gateway/http_proxy.hpp"
#include "rtm/gateway/modules.hpp"

namespace {

using rtm::gateway::Config;
using rtm::gateway::ConfigError;
using rtm::gateway::Core;
using rtm::gateway::ErrorCode;
using rtm::gateway::HttpBackendConfig;
using rtm::gateway::load_config_text;
using rtm::gateway::Message;
using rtm::gateway::Outbox;
using rtm::gateway::modules::Directory;
namespace modules = rtm::gateway::modules;
namespace http = rtm::gateway::http;

const std::string kAuth = "auth:\n  token_secret: \"unit-test-secret-0123456789abcdef-xyz\"\n";

std::vector<std::string> problems_of(const std::string& yaml) {
  try {
    load_config_text(yaml);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  FAIL("config was accepted:\n" << yaml);
  return {};
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  [" + l + "]\n";
  return out;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  REQUIRE_MESSAGE(!d.HasParseError(), text);
  return d;
}

std::string str(const rapidjson::Value& v) {
  REQUIRE(v.IsString());
  return std::string(v.GetString(), v.GetStringLength());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// config

TEST_CASE("modules config: defaults without the sections") {
  const Config c = load_config_text(kAuth);
  CHECK(c.modules.timeout_ms == 10000);
  CHECK(c.modules.max_pending == 10000);
  CHECK(c.modules.max_pending_per_user == 32);
  CHECK(c.modules.max_result_bytes == 1048576);
  CHECK(c.modules.cache_max_entries == 100000);
  CHECK(c.modules.http_threads == 4);
  CHECK(c.http_backends.empty());
  CHECK(load_config_text(kAuth + "modules:\nhttp_backends:\n").http_backends.empty());
  CHECK(load_config_text(kAuth + "http_backends: {}\n").http_backends.empty());
}

TEST_CASE("modules config: the shipped config.yaml has the documented defaults") {
  const Config shipped =
      rtm::gateway::load_config_file(std::string(RTM_SOURCE_DIR) + "/config.yaml");
  const Config defaults = load_config_text(kAuth);
  CHECK(shipped.modules.timeout_ms == defaults.modules.timeout_ms);
  CHECK(shipped.modules.max_pending == defaults.modules.max_pending);
  CHECK(shipped.modules.max_pending_per_user == defaults.modules.max_pending_per_user);
  CHECK(shipped.modules.max_result_bytes == defaults.modules.max_result_bytes);
  CHECK(shipped.modules.cache_max_entries == defaults.modules.cache_max_entries);
  CHECK(shipped.modules.http_threads == defaults.modules.http_threads);
  CHECK(shipped.modules.announce_wait_ms == defaults.modules.announce_wait_ms);
  CHECK(defaults.modules.announce_wait_ms == 3000);
  CHECK(shipped.http_backends.empty());
}

TEST_CASE("modules config: every key is read") {
  const Config c = load_config_text(kAuth + R"(
modules:
  timeout_ms: 2500
  max_pending: 50
  max_pending_per_user: 5
  max_result_bytes: 4096
  cache_max_entries: 0
  http_threads: 2
  announce_wait_ms: 0
http_backends:
  billing:
    base_url: https://billing.example.com:8443/api/v1/
    timeout_ms: 1500
    headers:
      X-Api-Key: k-123
      Accept: application/json
    pass_headers: [Content-Type, X-Trace-Id]
    uid_header: X-User
  local-2:
    base_url: http://127.0.0.1
  v6:
    base_url: http://[::1]:8080
)");
  CHECK(c.modules.timeout_ms == 2500);
  CHECK(c.modules.max_pending == 50);
  CHECK(c.modules.max_pending_per_user == 5);
  CHECK(c.modules.max_result_bytes == 4096);
  CHECK(c.modules.cache_max_entries == 0);
  CHECK(c.modules.http_threads == 2);
  CHECK(c.modules.announce_wait_ms == 0);
  REQUIRE(c.http_backends.size() == 3);
  const auto& b = c.http_backends.at("billing");
  CHECK(b.base_url == "https://billing.example.com:8443/api/v1/");
  CHECK(b.scheme == "https");
  CHECK(b.host == "billing.example.com");
  CHECK(b.port == 8443);
  CHECK(b.base_path == "/api/v1");
  CHECK(b.timeout_ms == 1500);
  REQUIRE(b.headers.size() == 2);
  CHECK(b.headers[0] == std::pair<std::string, std::string>("X-Api-Key", "k-123"));
  CHECK(b.headers[1] == std::pair<std::string, std::string>("Accept", "application/json"));
  CHECK(b.pass_headers == std::vector<std::string>{"Content-Type", "X-Trace-Id"});
  CHECK(b.uid_header == "X-User");
  const auto& l = c.http_backends.at("local-2");
  CHECK(l.scheme == "http");
  CHECK(l.host == "127.0.0.1");
  CHECK(l.port == 80);
  CHECK(l.base_path.empty());
  CHECK(l.timeout_ms == 10000);
  CHECK(l.uid_header == "X-RTM-Uid");
  CHECK(l.pass_headers == std::vector<std::string>{"Content-Type", "Accept"});
  CHECK(l.headers.empty());
  CHECK(c.http_backends.at("v6").host == "[::1]");
  CHECK(c.http_backends.at("v6").port == 8080);
}

TEST_CASE("modules config: each bad value gives its exact problem line") {
  struct Case {
    const char* what;
    std::string yaml;
    std::string problem;
  };
  const std::string b = kAuth + "http_backends:\n  billing:\n    base_url: http://h:1\n";
  const std::vector<Case> cases = {
      {"ftp base url", kAuth + "http_backends:\n  billing:\n    base_url: ftp://x\n",
       "http_backends.billing.base_url: expected http(s)://host[:port][/path], got \"ftp://x\""},
      {"query in base url", kAuth + "http_backends:\n  billing:\n    base_url: http://x/a?b=1\n",
       "http_backends.billing.base_url: expected http(s)://host[:port][/path], got "
       "\"http://x/a?b=1\""},
      {"port 0", kAuth + "http_backends:\n  billing:\n    base_url: http://x:0\n",
       "http_backends.billing.base_url: expected http(s)://host[:port][/path], got \"http://x:0\""},
      {"port 70000", kAuth + "http_backends:\n  billing:\n    base_url: http://x:70000/\n",
       "http_backends.billing.base_url: expected http(s)://host[:port][/path], got "
       "\"http://x:70000/\""},
      {"user in base url", kAuth + "http_backends:\n  billing:\n    base_url: http://u:p@x/\n",
       "http_backends.billing.base_url: expected http(s)://host[:port][/path], got "
       "\"http://u:p@x/\""},
      {"missing base url", kAuth + "http_backends:\n  billing:\n    timeout_ms: 5\n",
       "http_backends.billing.base_url: is required"},
      {"upper-case name", kAuth + "http_backends:\n  Billing:\n    base_url: http://h:1\n",
       "http_backends.Billing: a backend name is the host of http://NAME/...: 1-64 lower-case "
       "letters, digits, '-', '.', '_' or '~'"},
      {"backend not a mapping", kAuth + "http_backends:\n  billing: http://h:1\n",
       "http_backends.billing: expected a mapping with base_url, got \"http://h:1\""},
      {"backends a list", kAuth + "http_backends: [a]\n",
       "http_backends: expected a mapping of NAME: {base_url: ...}, got a list"},
      {"unknown backend key", b + "    retries: 3\n", "http_backends.billing.retries: unknown key"},
      {"timeout 0", b + "    timeout_ms: 0\n",
       "http_backends.billing.timeout_ms: must be between 1 and 600000, got 0"},
      {"headers a list", b + "    headers: [a]\n",
       "http_backends.billing.headers: expected a mapping of name: value, got a list"},
      {"bad header name", b + "    headers:\n      \"X Key\": v\n",
       "http_backends.billing.headers.X Key: expected an HTTP header name"},
      {"header sets the uid", b + "    headers:\n      x-rtm-uid: admin\n",
       "http_backends.billing.headers.x-rtm-uid: is the uid header, which the gateway sets itself"},
      {"pass Host", b + "    pass_headers: [Accept, Host]\n",
       "http_backends.billing.pass_headers[1]: Host is set by the HTTP client, not passed"},
      {"pass the uid header", b + "    pass_headers: [X-RTM-Uid]\n",
       "http_backends.billing.pass_headers[0]: is the uid header, which callers may never set"},
      {"pass_headers a string", b + "    pass_headers: Accept\n",
       "http_backends.billing.pass_headers: expected a list of header names, got \"Accept\""},
      {"bad uid header", b + "    uid_header: \"a b\"\n",
       "http_backends.billing.uid_header: expected an HTTP header name, got \"a b\""},
      {"ca_file for http", b + "    ca_file: /etc/hosts\n",
       "http_backends.billing.ca_file: is only for https:// backends"},
      {"unreadable ca_file",
       kAuth + "http_backends:\n  billing:\n    base_url: https://h\n    ca_file: "
               "/nonexistent/ca.pem\n",
       "http_backends.billing.ca_file: cannot be read: \"/nonexistent/ca.pem\""},
      {"http_threads 0", kAuth + "modules:\n  http_threads: 0\n",
       "modules.http_threads: must be between 1 and 64, got 0"},
      {"timeout_ms text", kAuth + "modules:\n  timeout_ms: soon\n",
       "modules.timeout_ms: expected a whole number, got \"soon\""},
      {"max_pending_per_user 0", kAuth + "modules:\n  max_pending_per_user: 0\n",
       "modules.max_pending_per_user: must be between 1 and 1000000, got 0"},
      {"unknown modules key", kAuth + "modules:\n  timeout: 5\n", "modules.timeout: unknown key"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto problems = problems_of(c.yaml);
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == c.problem);
  }
}

// ---------------------------------------------------------------------------------------------
// names and the stable hash

TEST_CASE("modules: FNV-1a 64 matches the published test vectors") {
  CHECK(modules::fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(modules::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(modules::fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("modules: module names and node ids") {
  for (const char* ok : {"im", "chat.v2", "a-b", "x1"}) {
    CAPTURE(ok);
    CHECK_FALSE(modules::module_name_error(ok));
  }
  for (const char* bad : {"", "Im", "1im", "i+m", "i_m", "http", "https", "i/m"}) {
    CAPTURE(bad);
    CHECK(modules::module_name_error(bad));
  }
  CHECK(*modules::module_name_error("http") ==
        "module name \"http\" is reserved for the HTTP proxy");
  for (const char* ok : {"im-1", "node_2", "10.0.0.1", "a"}) {
    CAPTURE(ok);
    CHECK_FALSE(modules::node_id_error(ok));
  }
  for (const char* bad : {"", "Im-1", "modulus", "random", "cache", "a/b", "a+b", "a b", "a~b"}) {
    CAPTURE(bad);
    CHECK(modules::node_id_error(bad));
  }
  CHECK(modules::node_id_error(std::string(65, 'a')));
  CHECK(modules::topic_level("rtm-gateway") == "rtm-gateway");
  CHECK(modules::topic_level("a/b+c#d") == "a_b_c_d");
  CHECK(modules::topic_level("") == "_");
}

// ---------------------------------------------------------------------------------------------
// routing rules

TEST_CASE("routing: modulus is nodes[fnv1a64(uid) % n] over the sorted ids, whatever the order") {
  Directory a(100), b(100);
  for (const char* n : {"n1", "n2", "n3"}) a.up("im", n, "s");
  for (const char* n : {"n3", "n1", "n2"}) b.up("im", n, "s");
  const std::vector<std::string> sorted{"n1", "n2", "n3"};
  CHECK(a.nodes("im") == sorted);
  std::map<std::string, int> load;
  for (int i = 0; i < 3000; ++i) {
    const std::string uid = "user-" + std::to_string(i);
    const auto pa = a.route("im", "modulus", uid);
    REQUIRE(pa);
    CHECK(*pa == sorted[modules::fnv1a64(uid) % 3]);
    CHECK(*pa == *b.route("im", "modulus", uid));
    CHECK(*pa == *a.route("im", "modulus", uid));  // stable while the set holds
    ++load[*pa];
  }
  REQUIRE(load.size() == 3);
  for (const auto& [node, n] : load) {
    CAPTURE(node);
    CHECK(n > 800);  // 1000 expected each
  }
  // A node going away changes the set: its users move, the formula stays.
  a.down("im", "n2", "");
  for (int i = 0; i < 100; ++i) {
    const std::string uid = "user-" + std::to_string(i);
    const std::vector<std::string> two{"n1", "n3"};
    CHECK(*a.route("im", "modulus", uid) == two[modules::fnv1a64(uid) % 2]);
  }
}

TEST_CASE("routing: random picks only live nodes and reaches each of them") {
  Directory d(100, 42);
  for (const char* n : {"n1", "n2", "n3"}) d.up("im", n, "s");
  d.down("im", "n2", "");
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) seen.insert(*d.route("im", "random", "alice"));
  CHECK(seen == std::set<std::string>{"n1", "n3"});
}

TEST_CASE("routing: cache keeps the node that last served the uid, else modulus") {
  Directory d(100);
  d.up("im", "n1", "s");
  d.up("im", "n2", "s");
  // A uid whose modulus node is n1.
  std::string uid;
  for (int i = 0; uid.empty(); ++i) {
    const std::string u = "u" + std::to_string(i);
    if (*d.route("im", "modulus", u) == "n1") uid = u;
  }
  CHECK(*d.route("im", "cache", uid) == "n1");  // nothing cached: modulus
  d.served("im", uid, "n2");
  CHECK(*d.cached("im", uid) == "n2");
  CHECK(*d.route("im", "cache", uid) == "n2");
  CHECK(d.cached("chat", uid) == nullptr);  // per module
  d.down("im", "n2", "");
  CHECK(*d.route("im", "cache", uid) == "n1");  // the cached node is gone: modulus
  d.up("im", "n2", "s2");
  CHECK(*d.route("im", "cache", uid) == "n2");  // back: the memory still holds
}

TEST_CASE("routing: the cache is bounded, least recently used first out") {
  Directory d(2);
  d.up("im", "n1", "s");
  d.served("im", "a", "n1");
  d.served("im", "b", "n1");
  d.served("im", "a", "n1");  // a is now the most recent
  d.served("im", "c", "n1");  // evicts b
  CHECK(d.cache_size() == 2);
  CHECK(d.cached("im", "a"));
  CHECK_FALSE(d.cached("im", "b"));
  CHECK(d.cached("im", "c"));
  Directory none(0);
  none.served("im", "a", "n1");
  CHECK(none.cache_size() == 0);
}

TEST_CASE("routing: a literal node id, and NO_ROUTE") {
  Directory d(10);
  auto r = d.route("im", "modulus", "alice");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::no_route);
  CHECK(r.error().message == "no live node of module \"im\"");
  d.up("im", "n1", "s");
  d.up("im", "n2", "s");
  CHECK(*d.route("im", "n2", "alice") == "n2");
  auto gone = d.route("im", "n9", "alice");
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == ErrorCode::no_route);
  CHECK_FALSE(d.route("chat", "n1", "alice"));
}

TEST_CASE("routing: sessions tell a restart and an old Will from a live node") {
  Directory d(10);
  CHECK_FALSE(d.up("im", "n1", "s1"));
  CHECK_FALSE(d.up("im", "n1", "s1"));                                // repeated announcement
  CHECK(d.up("im", "n1", "s2") == std::optional<std::string>("s1"));  // restarted
  CHECK_FALSE(d.down("im", "n1", "s1"));  // the old incarnation's Will: ignored
  CHECK(*d.session("im", "n1") == "s2");
  CHECK(d.down("im", "n1", "s2"));
  CHECK(d.session("im", "n1") == nullptr);
  d.up("im", "n1", "s3");
  CHECK(d.down("im", "n1", ""));  // cleared announcement: always down
  CHECK(d.node_count() == 0);
}

// ---------------------------------------------------------------------------------------------
// the worker protocol through the Core

namespace {

struct Sent {
  std::string topic;
  std::string payload;
  int qos;
  bool retain;
};

class FakeOutbox : public Outbox {
 public:
  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    if (fail) return false;
    sent.push_back({topic, std::string(payload), qos, retain});
    return true;
  }
  std::vector<Sent> sent;
  bool fail = false;
};

constexpr std::int64_t kStart = 1700000000000;

struct Rig {
  explicit Rig(const std::function<void(Config&)>& adjust = {}) {
    config.auth.token_secret = "0123456789abcdef0123456789abcdef";
    config.modules.require_login = false;  // sessions are the RTM module's; tested in core
    config.modules.timeout_ms = 1000;
    config.modules.announce_wait_ms = 0;  // NO_ROUTE at once; the wait is tested on its own
    if (adjust) adjust(config);
    core = std::make_unique<Core>(config, outbox, [this] { return now; });
    rtm::gateway::register_module_rpc(*core);
  }

  void deliver(const std::string& topic, const std::string& payload) {
    core->on_message(Message{topic, payload, 1, false});
  }
  void node(const std::string& module, const std::string& node, const std::string& state,
            const std::string& session = "s1") {
    deliver("rtm/nodes/" + module + "/" + node,
            "{\"state\":\"" + state + "\",\"session\":\"" + session + "\"}");
  }
  // Sends a request; returns what the core published because of it.
  std::vector<Sent> send(const std::string& uid, const std::string& uri,
                         const std::string& payload = "") {
    const auto before = outbox.sent.size();
    deliver("rtm/req/" + uid + "/" + uri, payload);
    return {outbox.sent.begin() + static_cast<std::ptrdiff_t>(before), outbox.sent.end()};
  }
  // A request that must go to a worker: returns its envelope.
  rapidjson::Document routed(const std::string& uid, const std::string& uri,
                             const std::string& payload = "", std::string* topic = nullptr) {
    auto out = send(uid, uri, payload);
    INFO("request " << uri);
    REQUIRE(out.size() == 1);
    CHECK(out[0].topic.rfind("rtm/rpc/", 0) == 0);
    CHECK(out[0].qos == 1);
    if (topic) *topic = out[0].topic;
    return parse(out[0].payload);
  }
  // The answer the core published last, for uid and uri.
  rapidjson::Document answer(const std::string& uid, const std::string& uri) {
    REQUIRE(!outbox.sent.empty());
    CHECK(outbox.sent.back().topic == "rtm/u/" + uid + "/res/" + uri);
    return parse(outbox.sent.back().payload);
  }
  std::string error_of(const std::string& uid, const std::string& uri,
                       const std::string& payload = "") {
    auto out = send(uid, uri, payload);
    REQUIRE(out.size() == 1);
    auto d = parse(out[0].payload);
    CHECK(out[0].topic == "rtm/u/" + uid + "/res/" + uri);
    return d.HasMember("error") ? str(d["error"]) : "OK";
  }
  void reply(const std::string& module, const std::string& payload) {
    deliver("rtm/rpc-reply/rtm-gateway/" + module, payload);
  }
  void advance(std::int64_t ms) {
    now += ms;
    core->run_due();
  }

  Config config;
  FakeOutbox outbox;
  std::int64_t now = kStart;
  std::unique_ptr<Core> core;
};

}  // namespace

TEST_CASE("module rpc: subscriptions for announcements and answers") {
  Rig r;
  const auto subs = r.core->subscriptions();
  CHECK(std::find(subs.begin(), subs.end(), "rtm/nodes/+/+") != subs.end());
  CHECK(std::find(subs.begin(), subs.end(), "rtm/rpc-reply/rtm-gateway/+") != subs.end());
}

TEST_CASE("module rpc: the envelope a worker receives, and the relayed answer") {
  Rig r;
  r.node("im", "n1", "up");
  std::string topic;
  const std::string uri = "im://modulus/remove_feeds_member?feeds=f%201&msg_id=1002";
  auto env = r.routed("alice", uri, "{\"member\":\"bob\",\"uid\":\"mallory\"}", &topic);
  CHECK(topic == "rtm/rpc/im/n1");
  CHECK(str(env["uid"]) == "alice");  // from the topic, whatever the body says
  CHECK(str(env["module"]) == "im");
  CHECK(str(env["node"]) == "n1");
  CHECK(str(env["method"]) == "remove_feeds_member");
  CHECK(str(env["msg_id"]) == "1002");
  CHECK(str(env["reply_to"]) == "rtm/rpc-reply/rtm-gateway/im");
  CHECK(env["deadline_ms"].GetInt64() == kStart + 1000);
  REQUIRE(env["params"].IsObject());
  CHECK(env["params"].MemberCount() == 1);  // msg_id is not a parameter
  CHECK(str(env["params"]["feeds"]) == "f 1");
  CHECK(str(env["body"]["member"]) == "bob");
  CHECK(str(env["body"]["uid"]) == "mallory");
  const std::string id = str(env["id"]);

  r.reply("im", "{\"id\":\"" + id +
                    "\",\"result\":{\"Trace\":\"t1\",\"Error\":\"\",\"Result\":\"success\"}}");
  auto answer = r.answer("alice", uri);
  CHECK(str(answer["msg_id"]) == "1002");
  CHECK(answer["code"].GetInt() == 0);
  CHECK(str(answer["result"]["Result"]) == "success");
  CHECK(str(answer["result"]["Trace"]) == "t1");
  CHECK(r.outbox.sent.back().qos == 1);

  // The same answer again (QoS 1 redelivery by the broker) publishes nothing more.
  const auto before = r.outbox.sent.size();
  r.reply("im", "{\"id\":\"" + id + "\",\"result\":1}");
  CHECK(r.outbox.sent.size() == before);
  // The request again (QoS 1 redelivery by the device) is answered from the dedup cache.
  auto again = r.send("alice", uri, "{\"member\":\"bob\",\"uid\":\"mallory\"}");
  REQUIRE(again.size() == 1);
  CHECK(again[0].topic == "rtm/u/alice/res/" + uri);
}

TEST_CASE("module rpc: an empty body is {}, a bad one BAD_JSON, and URI checks") {
  Rig r;
  r.node("im", "n1", "up");
  auto env = r.routed("alice", "im://n1/x?msg_id=1");
  CHECK(env["body"].IsObject());
  CHECK(env["body"].MemberCount() == 0);
  CHECK(r.error_of("alice", "im://n1/x?msg_id=2", "[1]") == "BAD_JSON");
  CHECK(r.error_of("alice", "im://n1/x?msg_id=3", "{bad") == "BAD_JSON");
  CHECK(r.error_of("alice", "im://n1/?msg_id=4") == "INVALID_URI");
  CHECK(r.error_of("alice", "im://u:p@n1/x?msg_id=5") == "INVALID_URI");
  CHECK(r.error_of("alice", "im://n1:80/x?msg_id=6") == "INVALID_URI");
  CHECK(r.error_of("alice", "im://n1/x;p=1?msg_id=7") == "INVALID_URI");
  CHECK(r.error_of("alice", "i.m-2://n1/x?msg_id=8") == "NO_ROUTE");
  CHECK(r.error_of("alice", "chat://modulus/x?msg_id=9") == "NO_ROUTE");
  CHECK(r.error_of("alice", "im://n2/x?msg_id=10") == "NO_ROUTE");
}

TEST_CASE("module rpc: worker errors, empty error fields, bad and oversize answers") {
  Rig r([](Config& c) { c.modules.max_result_bytes = 64; });
  r.node("im", "n1", "up");
  auto id_of = [&](const std::string& msg_id) {
    return str(r.routed("alice", "im://n1/x?msg_id=" + msg_id)["id"]);
  };
  std::string id = id_of("1");
  r.reply("im", "{\"id\":\"" + id + "\",\"error\":\"database down\"}");
  auto a = r.answer("alice", "im://n1/x?msg_id=1");
  CHECK(str(a["error"]) == "BACKEND_ERROR");
  CHECK(str(a["message"]) == "node n1 of module im failed: database down");

  id = id_of("2");
  r.reply("im", "{\"id\":\"" + id + "\",\"error\":\"\",\"result\":[1,2]}");
  a = r.answer("alice", "im://n1/x?msg_id=2");
  CHECK(a["code"].GetInt() == 0);
  CHECK(a["result"].IsArray());

  id = id_of("3");
  r.reply("im", "{\"id\":\"" + id + "\"}");
  CHECK(str(r.answer("alice", "im://n1/x?msg_id=3")["error"]) == "BACKEND_ERROR");

  id = id_of("4");
  r.reply("im", "{\"id\":\"" + id + "\",\"result\":\"" + std::string(100, 'x') + "\"}");
  a = r.answer("alice", "im://n1/x?msg_id=4");
  CHECK(str(a["error"]) == "BACKEND_ERROR");
  CHECK(str(a["message"]).find("modules.max_result_bytes") != std::string::npos);

  // Not JSON, or without an id: nothing to answer; the request waits for its timeout.
  id = id_of("5");
  const auto before = r.outbox.sent.size();
  r.reply("im", "not json");
  r.reply("im", "{\"result\":1}");
  CHECK(r.outbox.sent.size() == before);
  r.advance(1000);
  CHECK(str(r.answer("alice", "im://n1/x?msg_id=5")["error"]) == "TIMEOUT");
}

TEST_CASE("module rpc: an answer on another module's topic is not taken") {
  Rig r;
  r.node("im", "n1", "up");
  const std::string id = str(r.routed("alice", "im://n1/x?msg_id=1")["id"]);
  const auto before = r.outbox.sent.size();
  r.reply("chat", "{\"id\":\"" + id + "\",\"result\":\"forged\"}");
  r.reply("", "{\"id\":\"" + id + "\",\"result\":\"forged\"}");
  CHECK(r.outbox.sent.size() == before);
  r.reply("im", "{\"id\":\"" + id + "\",\"result\":\"real\"}");
  CHECK(str(r.answer("alice", "im://n1/x?msg_id=1")["result"]) == "real");
}

TEST_CASE("module rpc: TIMEOUT at modules.timeout_ms, and a late answer is dropped") {
  Rig r;
  r.node("im", "n1", "up");
  const std::string id = str(r.routed("alice", "im://modulus/sleep?msg_id=1")["id"]);
  const auto before = r.outbox.sent.size();
  r.advance(999);
  CHECK(r.outbox.sent.size() == before);
  r.advance(1);
  auto a = r.answer("alice", "im://modulus/sleep?msg_id=1");
  CHECK(str(a["error"]) == "TIMEOUT");
  CHECK(str(a["message"]) == "node n1 of module im did not answer within 1000 ms");
  const auto after = r.outbox.sent.size();
  r.reply("im", "{\"id\":\"" + id + "\",\"result\":1}");
  CHECK(r.outbox.sent.size() == after);
  CHECK(r.core->timers().size() == 0);
}

TEST_CASE("module rpc: after a connect, a request waits for a node to announce itself") {
  Rig r([](Config& c) { c.modules.announce_wait_ms = 3000; });
  // No node known yet (a broker that hands no retained announcement to the gateway's
  // wildcard subscription): the request waits instead of NO_ROUTE.
  CHECK(r.send("alice", "im://modulus/whoami?msg_id=1").empty());
  CHECK(r.send("bob", "im://modulus/whoami?msg_id=2").empty());
  r.advance(100);
  // The node announces itself again on the gateway's online status: both are routed, in
  // the order they came.
  const auto before = r.outbox.sent.size();
  r.node("im", "n1", "up");
  REQUIRE(r.outbox.sent.size() == before + 2);
  const auto first = parse(r.outbox.sent[before].payload);
  const auto second = parse(r.outbox.sent[before + 1].payload);
  CHECK(r.outbox.sent[before].topic == "rtm/rpc/im/n1");
  CHECK(str(first["uid"]) == "alice");
  CHECK(str(second["uid"]) == "bob");
  r.reply("im", "{\"id\":\"" + str(first["id"]) + "\",\"result\":7}");
  auto a = r.answer("alice", "im://modulus/whoami?msg_id=1");
  CHECK(a["code"].GetInt() == 0);
  CHECK(a["result"].GetInt() == 7);

  // Another module nobody serves: NO_ROUTE when the wait is over, not before.
  CHECK(r.send("carol", "im2://modulus/x?msg_id=3").empty());
  r.advance(2899);
  CHECK(r.outbox.sent.back().topic != "rtm/u/carol/res/im2://modulus/x?msg_id=3");
  r.advance(1);
  auto none = r.answer("carol", "im2://modulus/x?msg_id=3");
  CHECK(str(none["error"]) == "NO_ROUTE");
  // After the wait, NO_ROUTE comes at once again, until the next connect.
  CHECK(r.error_of("carol", "im2://modulus/x?msg_id=4") == "NO_ROUTE");
  r.core->broker_connected();
  CHECK(r.send("carol", "im2://modulus/x?msg_id=5").empty());
  r.advance(3000);
  CHECK(str(r.answer("carol", "im2://modulus/x?msg_id=5")["error"]) == "NO_ROUTE");
}

TEST_CASE("module rpc: waiting requests count against the pending bounds") {
  Rig r([](Config& c) {
    c.modules.announce_wait_ms = 3000;
    c.modules.max_pending_per_user = 2;
  });
  CHECK(r.send("alice", "im://modulus/a?msg_id=1").empty());
  CHECK(r.send("alice", "im://modulus/b?msg_id=2").empty());
  CHECK(r.error_of("alice", "im://modulus/c?msg_id=3") == "RATE_LIMITED");
  r.advance(3000);  // both answered NO_ROUTE; the bound is free again
  CHECK(r.error_of("alice", "im://modulus/d?msg_id=4") == "NO_ROUTE");
}

TEST_CASE("module rpc: announce_wait_ms 0 answers NO_ROUTE at once after a connect") {
  Rig r([](Config& c) { c.modules.announce_wait_ms = 0; });
  r.core->broker_connected();
  CHECK(r.error_of("alice", "im://modulus/whoami?msg_id=1") == "NO_ROUTE");
}

TEST_CASE("module rpc: a node that goes down fails its requests at once") {
  Rig r;
  r.node("im", "n1", "up");
  r.node("im", "n2", "up");
  r.routed("alice", "im://n1/x?msg_id=1");
  r.routed("bob", "im://n1/x?msg_id=2");
  r.routed("carol", "im://n2/x?msg_id=3");
  const auto before = r.outbox.sent.size();

  SUBCASE("by its Will") {
    r.node("im", "n1", "down", "s1");
  }
  SUBCASE("by a cleared announcement") {
    r.deliver("rtm/nodes/im/n1", "");
  }
  SUBCASE("by a restart (a new session)") {
    r.node("im", "n1", "up", "s2");
  }
  REQUIRE(r.outbox.sent.size() == before + 2);
  std::set<std::string> failed;
  for (std::size_t i = before; i < r.outbox.sent.size(); ++i) {
    auto d = parse(r.outbox.sent[i].payload);
    CHECK(str(d["error"]) == "BACKEND_ERROR");
    failed.insert(r.outbox.sent[i].topic);
  }
  CHECK(failed == std::set<std::string>{"rtm/u/alice/res/im://n1/x?msg_id=1",
                                        "rtm/u/bob/res/im://n1/x?msg_id=2"});
  CHECK(r.core->timers().size() == 1);  // carol's request still waits
}

TEST_CASE("module rpc: an old incarnation's Will does not take the node down") {
  Rig r;
  r.node("im", "n1", "up", "old");
  r.node("im", "n1", "up", "new");
  r.routed("alice", "im://n1/x?msg_id=1");
  const auto before = r.outbox.sent.size();
  r.node("im", "n1", "down", "old");
  CHECK(r.outbox.sent.size() == before);
  r.routed("alice", "im://n1/x?msg_id=2");  // still routed
}

TEST_CASE("module rpc: bad announcements are ignored") {
  Rig r;
  r.deliver("rtm/nodes/IM/n1", "{\"state\":\"up\"}");
  r.deliver("rtm/nodes/im/N1", "{\"state\":\"up\"}");
  r.deliver("rtm/nodes/im/modulus", "{\"state\":\"up\"}");
  r.deliver("rtm/nodes/im/n1", "up");
  r.deliver("rtm/nodes/im/n1", "{\"state\":\"sideways\"}");
  CHECK(r.error_of("alice", "im://modulus/x?msg_id=1") == "NO_ROUTE");
  r.deliver("rtm/nodes/im/n1", "{\"state\":\"up\"}");  // no session: fine
  r.routed("alice", "im://modulus/x?msg_id=2");
}

TEST_CASE("module rpc: pending requests are bounded per user and in all") {
  Rig r([](Config& c) {
    c.modules.max_pending_per_user = 2;
    c.modules.max_pending = 3;
  });
  r.node("im", "n1", "up");
  const std::string first = str(r.routed("alice", "im://n1/x?msg_id=1")["id"]);
  r.routed("alice", "im://n1/x?msg_id=2");
  CHECK(r.error_of("alice", "im://n1/x?msg_id=3") == "RATE_LIMITED");
  r.routed("bob", "im://n1/x?msg_id=1");
  CHECK(r.error_of("carol", "im://n1/x?msg_id=1") == "UNAVAILABLE");
  r.reply("im", "{\"id\":\"" + first + "\",\"result\":1}");
  r.routed("alice", "im://n1/x?msg_id=4");  // room again
}

TEST_CASE("module rpc: the broker link down means UNAVAILABLE") {
  Rig r;
  r.node("im", "n1", "up");
  r.outbox.fail = true;
  r.deliver("rtm/req/alice/im://n1/x?msg_id=1", "");
  CHECK(r.core->timers().size() == 0);
  r.outbox.fail = false;
  // Answered (though the answer could not be published): a retry gets it from the cache.
  auto out = r.send("alice", "im://n1/x?msg_id=1");
  REQUIRE(out.size() == 1);
  CHECK(str(parse(out[0].payload)["error"]) == "UNAVAILABLE");
}

TEST_CASE("module rpc: cache routing follows the node that answered") {
  Rig r;
  r.node("im", "n1", "up");
  r.node("im", "n2", "up");
  std::string uid;
  for (int i = 0; uid.empty(); ++i) {
    const std::string u = "u" + std::to_string(i);
    if (modules::fnv1a64(u) % 2 == 0) uid = u;  // modulus: n1
  }
  std::string topic;
  r.routed(uid, "im://cache/x?msg_id=1", "", &topic);
  CHECK(topic == "rtm/rpc/im/n1");
  r.advance(1000);  // timed out: n1 never served
  const std::string id = str(r.routed(uid, "im://n2/x?msg_id=2")["id"]);
  r.reply("im", "{\"id\":\"" + id + "\",\"result\":1}");
  r.routed(uid, "im://cache/x?msg_id=3", "", &topic);
  CHECK(topic == "rtm/rpc/im/n2");
}

TEST_CASE("module rpc: HTTP hosts that are not allow-listed get NO_ROUTE") {
  Rig r([](Config& c) {
    HttpBackendConfig b;
    b.base_url = "http://127.0.0.1:9";
    b.scheme = "http";
    b.host = "127.0.0.1";
    b.port = 9;
    c.http_backends["billing"] = b;
  });
  CHECK(r.error_of("alice", "http://evil.example.com/x?msg_id=1") == "NO_ROUTE");
  CHECK(r.error_of("alice", "http://127.0.0.1/x?msg_id=2") == "NO_ROUTE");
  CHECK(r.error_of("alice", "https://billing/x?msg_id=3") == "NO_ROUTE");
  CHECK(r.error_of("alice", "http://billing:80/x?msg_id=4") == "INVALID_URI");
  CHECK(r.error_of("alice", "http://billing/../x?msg_id=5") == "INVALID_URI");
  CHECK(r.error_of("alice", "http://billing/x?msg_id=6", "{\"Method\":\"BREW\"}") ==
        "INVALID_PARAMETER");
}

// ---------------------------------------------------------------------------------------------
// HTTP proxy: building calls and answers

namespace {

HttpBackendConfig backend() {
  HttpBackendConfig b;
  b.base_url = "http://127.0.0.1:8080/api";
  b.scheme = "http";
  b.host = "127.0.0.1";
  b.port = 8080;
  b.base_path = "/api";
  b.timeout_ms = 1500;
  b.headers = {{"X-Api-Key", "k"}};
  b.pass_headers = {"Content-Type", "X-Trace"};
  return b;
}

rtm::gateway::Outcome<http::Call> build(const std::string& uri, const std::string& payload = "") {
  auto parsed = rtm::topics::parse_uri(uri);
  REQUIRE(parsed);
  return http::build_call("billing", backend(), *parsed, payload, "alice", 1000);
}

std::vector<std::string> values(const http::Call& call, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& h : call.headers) {
    if (h.first == name) out.push_back(h.second);
  }
  return out;
}

}  // namespace

TEST_CASE("http proxy: target, method and body of a call") {
  auto c = build("http://billing/pay/one.json?a=1&msg_id=9&b=x%20y");
  REQUIRE(c);
  CHECK(c->backend == "billing");
  CHECK(c->method == "GET");
  CHECK(c->target == "/api/pay/one.json?a=1&b=x%20y");
  CHECK(c->timeout_ms == 1500);
  CHECK(c->max_body_bytes == 1000);
  CHECK(c->body.empty());
  CHECK(build("http://billing?msg_id=1")->target == "/api");
  CHECK(build("http://billing/?msg_id=1")->target == "/api/");
  CHECK(build("http://billing/a%2Fb/c d?msg_id=1&q=\xc3\xa9")->target ==
        "/api/a%2Fb/c%20d?q=%C3%A9");
  CHECK(build("http://billing/x?msg%5Fid=1")->target == "/api/x");
  // '.' written %2E (as on RabbitMQ, where a raw '.' becomes a level separator) reaches the
  // backend as '.', like every escaped unreserved character; other escapes stay.
  CHECK(build("http://billing/pay/one%2Ejson?a=b%2ec&msg_id=1&t=%7E%2F")->target ==
        "/api/pay/one.json?a=b.c&t=~%2F");
  CHECK_FALSE(build("http://billing/%2E%2E/admin?msg_id=1"));  // still a dot segment

  c = build("http://billing/pay?msg_id=1", R"({"Method":"post","Body":"a=1"})");
  REQUIRE(c);
  CHECK(c->method == "POST");
  CHECK(c->body == "a=1");
  CHECK(values(*c, "Content-Type").empty());

  c = build("http://billing/pay?msg_id=1", R"({"Method":"PUT","Body":{"n":1}})");
  REQUIRE(c);
  CHECK(c->body == R"({"n":1})");
  CHECK(values(*c, "Content-Type") == std::vector<std::string>{"application/json"});
}

TEST_CASE("http proxy: headers pass only when allowed, and the uid header is the gateway's") {
  auto c = build("http://billing/x?msg_id=1", R"({"Header":{
      "Content-Type":"text/plain", "X-Trace":["t1","t2"], "Cookie":"secret",
      "X-RTM-Uid":"admin", "x-api-key":"forged"}})");
  REQUIRE(c);
  CHECK(values(*c, "Content-Type") == std::vector<std::string>{"text/plain"});
  CHECK(values(*c, "X-Trace") == std::vector<std::string>{"t1", "t2"});
  CHECK(values(*c, "Cookie").empty());
  CHECK(values(*c, "X-RTM-Uid") == std::vector<std::string>{"alice"});
  CHECK(values(*c, "x-api-key").empty());
  CHECK(values(*c, "X-Api-Key") == std::vector<std::string>{"k"});
}

TEST_CASE("http proxy: requests refused before any call") {
  struct Case {
    const char* uri;
    const char* payload;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"http://billing/../admin?msg_id=1", "", ErrorCode::invalid_uri},
      {"http://billing/a/%2e%2E/admin?msg_id=1", "", ErrorCode::invalid_uri},
      {"http://billing/a/..;x/admin?msg_id=1", "", ErrorCode::invalid_uri},
      {"http://billing/./x?msg_id=1", "", ErrorCode::invalid_uri},
      {"http://billing/x?msg_id=1", "[]", ErrorCode::bad_json},
      {"http://billing/x?msg_id=1", "{", ErrorCode::bad_json},
      {"http://billing/x?msg_id=1", R"({"method":"GET"})", ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Method":1})", ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Method":"CONNECT"})", ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Header":"x"})", ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Header":{"X-Trace":"a\r\nHost: evil"}})",
       ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Header":{"Bad Name":"v"}})", ErrorCode::invalid_parameter},
      {"http://billing/x?msg_id=1", R"({"Header":{"X-Trace":[1]}})", ErrorCode::invalid_parameter},
  };
  for (const auto& c : cases) {
    CAPTURE(c.uri);
    CAPTURE(c.payload);
    auto r = build(c.uri, c.payload);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == c.code);
  }
  CHECK(build("http://billing/a..b/.x?msg_id=1"));  // dots inside a segment are fine
}

TEST_CASE("http proxy: the mqant-style answer") {
  http::Result r;
  r.kind = http::Result::Kind::completed;
  r.status = 404;
  r.headers = {{"Content-Type", "text/plain"},
               {"Set-Cookie", "a=1"},
               {"set-cookie", "b=2"},
               {"Connection", "keep-alive"},
               {"Transfer-Encoding", "chunked"}};
  r.body = "not found";
  auto d = parse(http::answer_json(r));
  CHECK(d["StatusCode"].GetInt() == 404);
  CHECK(str(d["Header"]["Content-Type"]) == "text/plain");
  CHECK(str(d["Header"]["Set-Cookie"]) == "a=1, b=2");
  CHECK_FALSE(d["Header"].HasMember("Connection"));
  CHECK_FALSE(d["Header"].HasMember("Transfer-Encoding"));
  CHECK(str(d["Body"]) == "not found");
  CHECK_FALSE(d.HasMember("BodyEncoding"));
  CHECK(str(d["Err"]).empty());

  r.body = std::string("\xff\x00\x01", 3);
  d = parse(http::answer_json(r));
  CHECK(str(d["Body"]) == "/wAB");
  CHECK(str(d["BodyEncoding"]) == "base64");
  r.body = "ab";
  CHECK(str(parse(http::answer_json(r))["Body"]) == "ab");
}
