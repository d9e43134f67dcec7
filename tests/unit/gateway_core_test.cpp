// Tests of rtm/gateway/core.hpp (request handling, error answers, dedup of redeliveries)
// with a fake Outbox and a fake clock, and of Timers and Dedup on their own.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/dedup.hpp"
#include "rtm/gateway/timers.hpp"

namespace {

using rtm::gateway::Call;
using rtm::gateway::Config;
using rtm::gateway::Core;
using rtm::gateway::Dedup;
using rtm::gateway::ErrorCode;
using rtm::gateway::Message;
using rtm::gateway::Operation;
using rtm::gateway::Outbox;
using rtm::gateway::Outcome;
using rtm::gateway::Timers;
namespace json = rtm::gateway::json;

constexpr std::int64_t kStart = 1700000000000;  // ms

struct Published {
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
  std::vector<Published> sent;
  bool fail = false;
};

// A session directory that knows one fixed rule.
class Sessions final : public rtm::gateway::SessionDirectory {
 public:
  explicit Sessions(std::function<bool(const std::string&)> live) : live_(std::move(live)) {}
  bool has_live_session(const std::string& uid) override { return live_(uid); }

 private:
  std::function<bool(const std::string&)> live_;
};

// A handler of one filter that records what it is offered.
class Recorder final : public rtm::gateway::MessageHandler {
 public:
  explicit Recorder(std::string filter, bool per_gateway = false)
      : filter_(std::move(filter)), per_gateway_(per_gateway) {}
  std::vector<std::string> filters() const override { return {filter_}; }
  bool per_gateway() const override { return per_gateway_; }
  bool on_message(const Message& m) override {
    seen.push_back(m.topic);
    return m.topic.rfind("rtm/presence/", 0) == 0;
  }
  std::vector<std::string> seen;

 private:
  std::string filter_;
  bool per_gateway_;
};

// A published response, parsed.
struct Response {
  std::string topic;
  std::string raw;
  int qos = -1;
  std::string msg_id;
  int code = -1;
  std::string error;    // "" on success
  std::string message;  // "" on success
  rapidjson::Document doc;

  const rapidjson::Value& result() const {
    REQUIRE(doc.HasMember("result"));
    return doc["result"];
  }
};

Response parse_response(const Published& p) {
  Response r;
  r.topic = p.topic;
  r.raw = p.payload;
  r.qos = p.qos;
  CHECK_FALSE(p.retain);
  r.doc.Parse(p.payload.data(), p.payload.size());
  INFO("payload: " << p.payload);
  REQUIRE_FALSE(r.doc.HasParseError());
  REQUIRE(r.doc.IsObject());
  REQUIRE(r.doc.HasMember("msg_id"));
  REQUIRE(r.doc["msg_id"].IsString());
  r.msg_id = r.doc["msg_id"].GetString();
  REQUIRE(r.doc.HasMember("code"));
  REQUIRE(r.doc["code"].IsInt());
  r.code = r.doc["code"].GetInt();
  if (r.code == 0) {
    CHECK(r.doc.HasMember("result"));
    CHECK_FALSE(r.doc.HasMember("error"));
  } else {
    REQUIRE(r.doc.HasMember("error"));
    REQUIRE(r.doc.HasMember("message"));
    r.error = r.doc["error"].GetString();
    r.message = r.doc["message"].GetString();
    CHECK_FALSE(r.doc.HasMember("result"));
  }
  return r;
}

std::string str(const rapidjson::Value& v) {
  REQUIRE(v.IsString());
  return std::string(v.GetString(), v.GetStringLength());
}

// A Core with the basic operations and the test operations:
//   echo   (no session) channel, users, n  -> returns them
//   secret (session)   no parameters       -> {"ok":true}
//   boom   (no session) throws std::runtime_error
//   refuse (no session) returns NOT_JOINED
struct Harness {
  explicit Harness(const std::function<void(Config&)>& adjust = {}) {
    config.auth.token_secret = "0123456789abcdef0123456789abcdef";
    if (adjust) adjust(config);
    core = std::make_unique<Core>(config, outbox, [this] { return now; });
    rtm::gateway::register_basic_operations(*core);
    core->add_operation(
        {"echo", false, {"channel", "users", "n"}, [this](Call& call) -> Outcome<json::Document> {
           ++echo_calls;
           auto channel = call.params.name("channel");
           if (!channel) return channel.error();
           auto users = call.params.names("users");
           if (!users) return users.error();
           auto n = call.params.integer("n", 0, 1000);
           if (!n) return n.error();
           auto result = json::object();
           json::set(result, "channel", *channel);
           json::set(result, "users", json::string_array(*users, result.GetAllocator()));
           json::set_int(result, "n", *n);
           json::set(result, "uid", call.uid);
           return result;
         }});
    core->add_operation({"secret", true, {}, [this](Call&) -> Outcome<json::Document> {
                           ++secret_calls;
                           auto result = json::object();
                           json::set_bool(result, "ok", true);
                           return result;
                         }});
    core->add_operation({"boom", false, {}, [this](Call&) -> Outcome<json::Document> {
                           ++boom_calls;
                           throw std::runtime_error("handler bug");
                         }});
    core->add_operation({"refuse", false, {}, [](Call&) -> Outcome<json::Document> {
                           return rtm::gateway::failure(ErrorCode::not_joined, "not in room");
                         }});
  }

  // Publishes a request on P/req/{uid}/{uri}; returns how many messages the core published.
  std::size_t send(const std::string& uid, const std::string& uri, const std::string& payload = "") {
    const auto before = outbox.sent.size();
    core->on_message(Message{config.topics.prefix + "/req/" + uid + "/" + uri, payload, 1, false});
    return outbox.sent.size() - before;
  }

  // Sends a request that must be answered with exactly one message, and parses it.
  Response request(const std::string& uid, const std::string& uri, const std::string& payload = "") {
    INFO("request " << uid << " " << uri << " payload " << payload);
    REQUIRE(send(uid, uri, payload) == 1);
    Response r = parse_response(outbox.sent.back());
    CHECK(r.topic == config.topics.prefix + "/u/" + uid + "/res/" + uri);
    CHECK(r.qos == 1);
    return r;
  }

  Config config;
  FakeOutbox outbox;
  std::int64_t now = kStart;
  std::unique_ptr<Core> core;
  int echo_calls = 0;
  int secret_calls = 0;
  int boom_calls = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Core: successful requests

TEST_CASE("core: ping answers on the mirrored topic with the fake clock and the version") {
  Harness h;
  h.now = kStart + 1234;
  const Response r = h.request("alice", "ping?msg_id=7", "");
  CHECK(r.topic == "rtm/u/alice/res/ping?msg_id=7");
  CHECK(r.msg_id == "7");
  CHECK(r.code == 0);
  REQUIRE(r.result().IsObject());
  REQUIRE(r.result()["time_ms"].IsInt64());
  CHECK(r.result()["time_ms"].GetInt64() == kStart + 1234);
  CHECK(str(r.result()["version"]) == RTM_VERSION);
  CHECK(str(r.result()["uid"]) == "alice");
  // An empty JSON object or whitespace is an empty body, too.
  CHECK(h.request("alice", "ping?msg_id=8", "{}").code == 0);
  CHECK(h.request("alice", "ping?msg_id=9", " \r\n\t").code == 0);
  CHECK(h.core->counters().requests == 3);
  CHECK(h.core->counters().answered_ok == 3);
  CHECK(h.core->counters().answered_error == 0);
}

TEST_CASE("core: query-only parameters work, percent-decoded") {
  Harness h;
  SUBCASE("plain") {
    const Response r = h.request("alice", "echo?channel=room-42&users=bob,carol&n=5&msg_id=3");
    REQUIRE(r.code == 0);
    CHECK(r.msg_id == "3");
    CHECK(str(r.result()["channel"]) == "room-42");
    REQUIRE(r.result()["users"].IsArray());
    REQUIRE(r.result()["users"].Size() == 2);
    CHECK(str(r.result()["users"][0]) == "bob");
    CHECK(str(r.result()["users"][1]) == "carol");
    CHECK(r.result()["n"].GetInt64() == 5);
    CHECK(str(r.result()["uid"]) == "alice");
  }
  SUBCASE("percent-encoded values, keys and msg_id") {
    const Response r =
        h.request("alice", "echo?ch%61nnel=room%2D42&users=bob%2Ccarol&n=%35&msg_id=%33%34");
    REQUIRE(r.code == 0);
    CHECK(r.msg_id == "34");
    CHECK(str(r.result()["channel"]) == "room-42");
    REQUIRE(r.result()["users"].Size() == 2);
    CHECK(str(r.result()["users"][1]) == "carol");
    CHECK(r.result()["n"].GetInt64() == 5);
  }
  SUBCASE("the same parameters in a JSON body") {
    const Response r =
        h.request("alice", "echo?msg_id=4", R"({"channel":"room-42","users":["bob","carol"],"n":5})");
    REQUIRE(r.code == 0);
    CHECK(str(r.result()["channel"]) == "room-42");
    CHECK(r.result()["users"].Size() == 2);
    CHECK(r.result()["n"].GetInt64() == 5);
  }
  SUBCASE("split between query and body") {
    const Response r = h.request("alice", "echo?channel=room-42&msg_id=5", R"({"users":["bob"],"n":0})");
    REQUIRE(r.code == 0);
    CHECK(str(r.result()["channel"]) == "room-42");
  }
  CHECK(h.echo_calls == 1);
}

TEST_CASE("core: a session-needing operation answers NOT_LOGGED_IN without a live session") {
  Harness h;
  SUBCASE("no session directory set") {
    const Response r = h.request("alice", "secret?msg_id=1");
    CHECK(r.code == 4);
    CHECK(r.error == "NOT_LOGGED_IN");
    CHECK(h.secret_calls == 0);
  }
  SUBCASE("a session directory set") {
    h.core->set_session_directory(
        std::make_shared<Sessions>([](const std::string& uid) { return uid == "alice"; }));
    CHECK(h.request("alice", "secret?msg_id=1").code == 0);
    CHECK(h.secret_calls == 1);
    const Response r = h.request("bob", "secret?msg_id=1");
    CHECK(r.code == 4);
    CHECK(r.error == "NOT_LOGGED_IN");
    CHECK(r.message.find("bob") != std::string::npos);
    CHECK(h.secret_calls == 1);
  }
}

TEST_CASE("core: a multi-level prefix is used for requests and responses") {
  Harness h([](Config& c) { c.topics.prefix = "acme/rtm"; });
  CHECK(h.core->subscriptions() == std::vector<std::string>{"acme/rtm/req/+/#"});
  const Response r = h.request("alice", "ping?msg_id=1");
  CHECK(r.topic == "acme/rtm/u/alice/res/ping?msg_id=1");
  CHECK(r.code == 0);
  // A request under another prefix is not ours: no answer.
  h.core->on_message(Message{"rtm/req/alice/ping?msg_id=2", "", 1, false});
  CHECK(h.outbox.sent.size() == 1);
}

// ---------------------------------------------------------------------------------------------
// Core: malformed requests, each answered with its code on the mirrored topic

TEST_CASE("core: each malformed request gets its error code") {
  struct Case {
    const char* what;
    std::string uid;
    std::string uri;
    std::string payload;
    int code;
    std::string name;
    std::string msg_id;  // expected in the response
  };
  const std::string long_uid(65, 'a');
  const std::vector<Case> cases = {
      {"bad JSON", "alice", "ping?msg_id=1", "{", 7, "BAD_JSON", "1"},
      {"bad JSON (trailing text)", "alice", "ping?msg_id=1", "{} x", 7, "BAD_JSON", "1"},
      {"JSON array payload", "alice", "ping?msg_id=1", "[]", 7, "BAD_JSON", "1"},
      {"JSON string payload", "alice", "ping?msg_id=1", "\"x\"", 7, "BAD_JSON", "1"},
      {"JSON null payload", "alice", "ping?msg_id=1", "null", 7, "BAD_JSON", "1"},
      {"missing msg_id (no query)", "alice", "ping", "", 6, "MISSING_MSG_ID", ""},
      {"missing msg_id (other query)", "alice", "echo?channel=a", "", 6, "MISSING_MSG_ID", ""},
      {"empty msg_id", "alice", "ping?msg_id=", "", 6, "MISSING_MSG_ID", ""},
      {"msg_id only in the body", "alice", "ping", R"({"msg_id":"1"})", 6, "MISSING_MSG_ID", ""},
      {"unknown operation", "alice", "nope?msg_id=1", "", 5, "UNKNOWN_OPERATION", "1"},
      {"unknown multi-level operation", "alice", "room/list?msg_id=1", "", 5, "UNKNOWN_OPERATION", "1"},
      {"uid of 65 bytes", long_uid, "ping?msg_id=1", "", 8, "INVALID_NAME", "1"},
      {"uid with '$'", "a$b", "ping?msg_id=1", "", 8, "INVALID_NAME", "1"},
      {"uid with '\"'", "a\"b", "ping?msg_id=1", "", 8, "INVALID_NAME", "1"},
      {"channel with '/' (query)", "alice", "echo?channel=a/b&users=bob&n=1&msg_id=1", "", 8,
       "INVALID_NAME", "1"},
      {"channel with encoded '/' (query)", "alice", "echo?channel=a%2Fb&users=bob&n=1&msg_id=1", "",
       8, "INVALID_NAME", "1"},
      {"channel with a space (body)", "alice", "echo?msg_id=1",
       R"({"channel":"a b","users":["bob"],"n":1})", 8, "INVALID_NAME", "1"},
      {"channel of 65 bytes", "alice", "echo?msg_id=1",
       R"({"channel":")" + long_uid + R"(","users":["bob"],"n":1})", 8, "INVALID_NAME", "1"},
      {"bad user in a list", "alice", "echo?channel=a&users=bob,c$d&n=1&msg_id=1", "", 8,
       "INVALID_NAME", "1"},
      {"empty user in a list", "alice", "echo?channel=a&users=bob,,carol&n=1&msg_id=1", "", 8,
       "INVALID_NAME", "1"},
      {"parameter in query and body", "alice", "echo?channel=a&msg_id=1",
       R"({"channel":"b","users":["bob"],"n":1})", 10, "DUPLICATE_PARAMETER", "1"},
      {"msg_id in query and body", "alice", "ping?msg_id=1", R"({"msg_id":"1"})", 10,
       "DUPLICATE_PARAMETER", "1"},
      {"missing parameter", "alice", "echo?users=bob&n=1&msg_id=1", "", 11, "MISSING_PARAMETER", "1"},
      {"unknown parameter (body)", "alice", "echo?msg_id=1", R"({"bogus":1})", 12,
       "INVALID_PARAMETER", "1"},
      {"unknown parameter (query)", "alice", "ping?bogus=1&msg_id=1", "", 12, "INVALID_PARAMETER",
       "1"},
      {"channel not a string", "alice", "echo?msg_id=1", R"({"channel":5,"users":["b"],"n":1})", 12,
       "INVALID_PARAMETER", "1"},
      {"users not an array", "alice", "echo?msg_id=1", R"({"channel":"a","users":{},"n":1})", 12,
       "INVALID_PARAMETER", "1"},
      {"users an empty array", "alice", "echo?msg_id=1", R"({"channel":"a","users":[],"n":1})", 12,
       "INVALID_PARAMETER", "1"},
      {"n out of range", "alice", "echo?channel=a&users=b&n=1001&msg_id=1", "", 12,
       "INVALID_PARAMETER", "1"},
      {"n not digits", "alice", "echo?channel=a&users=b&n=5x&msg_id=1", "", 12, "INVALID_PARAMETER",
       "1"},
      {"n a fraction (body)", "alice", "echo?msg_id=1", R"({"channel":"a","users":["b"],"n":1.5})",
       12, "INVALID_PARAMETER", "1"},
      {"bad percent escape in a query value", "alice", "ping?msg_id=1&x=%zz", "", 13, "INVALID_URI",
       "1"},
      {"bad percent escape in the path", "alice", "pi%zzng?msg_id=1", "", 13, "INVALID_URI", "1"},
      {"truncated percent escape", "alice", "ping?msg_id=1%2", "", 13, "INVALID_URI", ""},
      {"%00 in the uri", "alice", "ping?msg_id=1%00", "", 13, "INVALID_URI", ""},
      {"query key given twice", "alice", "ping?msg_id=1&msg_id=2", "", 13, "INVALID_URI", "1"},
      {"empty path", "alice", "?msg_id=1", "", 13, "INVALID_URI", "1"},
      {"absolute URI", "alice", "im://modulus/remove_feeds_member?msg_id=1002", "", 40, "NO_ROUTE",
       "1002"},
      {"absolute http URI", "alice", "http://billing/pay/one.json?msg_id=9", R"({"a":1})", 40,
       "NO_ROUTE", "9"},
      {"handler failure", "alice", "refuse?msg_id=1", "", 3, "NOT_JOINED", "1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    Harness h;
    const Response r = h.request(c.uid, c.uri, c.payload);
    CHECK(r.code == c.code);
    CHECK(r.error == c.name);
    CHECK(r.msg_id == c.msg_id);
    CHECK_FALSE(r.message.empty());
    // Only these reach the echo handler (which validates its own parameters).
    const std::set<std::string> in_echo = {
        "channel with '/' (query)", "channel with encoded '/' (query)", "channel with a space (body)",
        "channel of 65 bytes", "bad user in a list", "empty user in a list", "missing parameter",
        "channel not a string", "users not an array", "users an empty array", "n out of range",
        "n not digits", "n a fraction (body)"};
    CHECK(h.echo_calls == (in_echo.count(c.what) ? 1 : 0));
    CHECK(h.core->counters().answered_error == 1);
  }
}

TEST_CASE("core: payload size limit is requests.max_payload_bytes") {
  Harness h([](Config& c) { c.requests.max_payload_bytes = 32; });
  // 32 bytes exactly: accepted.
  std::string body = R"({"users":["bob"],"n":1})";
  body += std::string(32 - body.size(), ' ');
  REQUIRE(body.size() == 32);
  const Response ok = h.request("alice", "echo?channel=a&msg_id=1", body);
  CHECK(ok.code == 0);
  // 33 bytes: refused, whatever the content.
  const Response big = h.request("alice", "echo?channel=a&msg_id=2", body + " ");
  CHECK(big.code == 9);
  CHECK(big.error == "PAYLOAD_TOO_LARGE");
  CHECK(big.msg_id == "2");
  CHECK(big.message.find("33") != std::string::npos);
  CHECK(h.request("alice", "ping?msg_id=3", std::string(1000, 'x')).code == 9);
  CHECK(h.echo_calls == 1);
}

TEST_CASE("core: a handler that throws answers INTERNAL and the next request is served") {
  // The core logs the exception at error level; keep the test output quiet.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  struct Restore {
    spdlog::level::level_enum level;
    ~Restore() { spdlog::set_level(level); }
  } restore{level};
  Harness h;
  const Response r = h.request("alice", "boom?msg_id=1");
  CHECK(r.code == 1);
  CHECK(r.error == "INTERNAL");
  CHECK(r.message.find("handler bug") == std::string::npos);  // no internals to the caller
  CHECK(h.boom_calls == 1);
  CHECK(h.request("alice", "ping?msg_id=2").code == 0);
  CHECK(h.request("bob", "boom?msg_id=1").code == 1);
  CHECK(h.request("bob", "echo?channel=a&users=b&n=1&msg_id=2").code == 0);
  CHECK(h.boom_calls == 2);
}

TEST_CASE("core: a request topic without a URI is answered on P/u/{uid}/res") {
  Harness h;
  h.core->on_message(Message{"rtm/req/alice", "", 1, false});
  h.core->on_message(Message{"rtm/req/bob/", "", 1, false});
  h.core->on_message(Message{"rtm/req/b$d", "", 1, false});  // no valid uid: nowhere to answer
  REQUIRE(h.outbox.sent.size() == 2);
  CHECK(h.outbox.sent[0].topic == "rtm/u/alice/res");
  CHECK(h.outbox.sent[0].payload.find("INVALID_URI") != std::string::npos);
  CHECK(h.outbox.sent[1].topic == "rtm/u/bob/res");
}

TEST_CASE("core: messages outside the request branch are not answered") {
  Harness h;
  auto recorder = std::make_shared<Recorder>("rtm/presence/+");
  h.core->add_message_handler(recorder);
  const auto& seen = recorder->seen;
  h.core->on_message(Message{"rtm/presence/alice", R"({"state":"online"})", 1, true});
  h.core->on_message(Message{"rtm/u/alice/res/ping?msg_id=1", "{}", 1, false});
  h.core->on_message(Message{"other/req/alice/ping?msg_id=1", "", 1, false});
  CHECK(h.outbox.sent.empty());
  CHECK(seen == std::vector<std::string>{"rtm/presence/alice", "rtm/u/alice/res/ping?msg_id=1",
                                         "other/req/alice/ping?msg_id=1"});
  CHECK(h.core->counters().requests == 0);
  // The handler's filter joins the subscriptions.
  CHECK(h.core->subscriptions() == std::vector<std::string>{"rtm/req/+/#", "rtm/presence/+"});
}

TEST_CASE(
    "core: with cluster.enabled shared filters are $share/{group}/..., per-gateway ones plain") {
  Harness h([](Config& c) {
    c.cluster.enabled = true;
    c.cluster.group = "gw";
  });
  auto presence = std::make_shared<Recorder>("rtm/presence/+");
  auto status = std::make_shared<Recorder>("rtm/gateway/status", true);
  h.core->add_message_handler(presence);
  h.core->add_message_handler(status);
  CHECK(h.core->subscriptions() == std::vector<std::string>{"$share/gw/rtm/req/+/#",
                                                            "$share/gw/rtm/presence/+",
                                                            "rtm/gateway/status"});
  // The broker delivers the real topic: requests and handlers match it unwrapped.
  CHECK(h.request("alice", "ping?msg_id=1").code == 0);
  h.core->on_message(Message{"rtm/presence/alice", R"({"state":"online"})", 1, false});
  h.core->on_message(Message{"rtm/gateway/status", R"({"state":"online"})", 1, true});
  // (Handlers are offered a message in turn until one takes it: presence first.)
  CHECK(presence->seen == std::vector<std::string>{"rtm/presence/alice", "rtm/gateway/status"});
  CHECK(status->seen == std::vector<std::string>{"rtm/gateway/status"});
  // The loop filters (the bridge's fast path must leave these to the loop) are matched
  // unwrapped against the real topics too.
  struct TakeAll final : rtm::gateway::FastPath {
    rtm::gateway::FastResult on_link_thread(const Message&) override {
      return rtm::gateway::FastResult::handled;
    }
  };
  h.core->set_fast_path(std::make_shared<TakeAll>());
  h.core->set_loop_filters("inbox", {"rtm/u/+/inbox/+"});
  CHECK(h.core->fast_path(Message{"rtm/u/bob/inbox/alice", "hi", 1, false}) ==
        rtm::gateway::FastResult::not_mine);
  CHECK(h.core->fast_path(Message{"factory/line-3/temp", "21", 0, false}) ==
        rtm::gateway::FastResult::handled);
  CHECK(rtm::gateway::shared_filter("g", "a/#") == "$share/g/a/#");
}

TEST_CASE("core: without cluster.enabled every filter is plain") {
  Harness h([](Config& c) { c.cluster.group = "gw"; });
  h.core->add_message_handler(std::make_shared<Recorder>("rtm/presence/+"));
  h.core->add_message_handler(std::make_shared<Recorder>("rtm/gateway/status", true));
  CHECK(h.core->subscriptions() ==
        std::vector<std::string>{"rtm/req/+/#", "rtm/presence/+", "rtm/gateway/status"});
}

TEST_CASE("core: publish failures are counted, events go to P/u/{uid}/events/{kind}") {
  Harness h;
  auto event = json::object();
  json::set(event, "state", "will_expire");
  h.core->publish_user_event("alice", "token", event);
  REQUIRE(h.outbox.sent.size() == 1);
  CHECK(h.outbox.sent[0].topic == "rtm/u/alice/events/token");
  CHECK(h.outbox.sent[0].payload == R"({"state":"will_expire"})");
  CHECK(h.outbox.sent[0].qos == 1);
  CHECK_FALSE(h.outbox.sent[0].retain);

  h.outbox.fail = true;
  h.send("alice", "ping?msg_id=1");
  CHECK(h.core->counters().publish_failed == 1);
  CHECK(h.core->counters().answered_ok == 1);
  h.outbox.fail = false;
  // The answer was cached: a redelivery gets it now.
  REQUIRE(h.send("alice", "ping?msg_id=1") == 1);
  CHECK(parse_response(h.outbox.sent.back()).code == 0);
}

TEST_CASE("core: run_due runs timers by the fake clock") {
  Harness h;
  std::vector<int> fired;
  h.core->timers().at(kStart + 100, [&] { fired.push_back(1); });
  h.core->timers().at(kStart + 50, [&] { fired.push_back(2); });
  CHECK(h.core->run_due() == kStart + 50);
  CHECK(fired.empty());
  h.now = kStart + 60;
  CHECK(h.core->run_due() == kStart + 100);
  CHECK(fired == std::vector<int>{2});
  h.now = kStart + 100;
  CHECK(h.core->run_due() == -1);
  CHECK(fired == std::vector<int>{2, 1});
  CHECK(h.core->now_ms() == kStart + 100);
}

// ---------------------------------------------------------------------------------------------
// Core: dedup of (uid, msg_id)

TEST_CASE("core: a redelivered request runs once and is answered twice") {
  Harness h;
  const std::string uri = "echo?channel=room-42&msg_id=11";
  const std::string body = R"({"users":["bob"],"n":2})";
  REQUIRE(h.send("alice", uri, body) == 1);
  h.now += 1000;
  REQUIRE(h.send("alice", uri, body) == 1);
  CHECK(h.echo_calls == 1);
  REQUIRE(h.outbox.sent.size() == 2);
  CHECK(h.outbox.sent[0].topic == h.outbox.sent[1].topic);
  CHECK(h.outbox.sent[0].payload == h.outbox.sent[1].payload);
  CHECK(h.outbox.sent[1].qos == 1);
  CHECK(parse_response(h.outbox.sent[1]).code == 0);
  CHECK(h.core->counters().replayed == 1);
  CHECK(h.core->counters().requests == 2);

  SUBCASE("another uid with the same msg_id is another request") {
    REQUIRE(h.send("bob", uri, body) == 1);
    CHECK(h.echo_calls == 2);
    CHECK(h.outbox.sent.back().topic == "rtm/u/bob/res/" + uri);
  }
  SUBCASE("error answers are replayed too") {
    const Response first = h.request("alice", "nope?msg_id=12");
    const Response again = h.request("alice", "nope?msg_id=12");
    CHECK(first.code == 5);
    CHECK(first.raw == again.raw);
    CHECK(h.core->counters().replayed == 2);
  }
  SUBCASE("time ping answered from the cache keeps its first time") {
    const Response first = h.request("alice", "ping?msg_id=13");
    h.now += 5000;
    const Response again = h.request("alice", "ping?msg_id=13");
    CHECK(first.raw == again.raw);
  }
}

TEST_CASE("core: the same msg_id for a different request is MSG_ID_REUSED") {
  Harness h;
  const Response first = h.request("alice", "echo?channel=a&users=b&n=1&msg_id=5");
  REQUIRE(first.code == 0);

  SUBCASE("different payload") {
    const Response r = h.request("alice", "echo?channel=a&users=b&n=1&msg_id=5", "{}  ");
    CHECK(r.code == 14);
    CHECK(r.error == "MSG_ID_REUSED");
    CHECK(r.msg_id == "5");
  }
  SUBCASE("different parameters") {
    const Response r = h.request("alice", "echo?channel=a&users=b&n=2&msg_id=5");
    CHECK(r.code == 14);
  }
  SUBCASE("different operation") {
    const Response r = h.request("alice", "ping?msg_id=5");
    CHECK(r.code == 14);
    CHECK(r.topic == "rtm/u/alice/res/ping?msg_id=5");
  }
  CHECK(h.echo_calls == 1);
  // The first answer stays cached: the original request is still answered from it.
  const Response again = h.request("alice", "echo?channel=a&users=b&n=1&msg_id=5");
  CHECK(again.raw == first.raw);
  CHECK(h.echo_calls == 1);
}

TEST_CASE("core: after requests.dedup_window_s the same request runs again") {
  Harness h([](Config& c) { c.requests.dedup_window_s = 10; });
  const std::string uri = "echo?channel=a&users=b&n=1&msg_id=1";
  h.request("alice", uri);
  h.now = kStart + 9999;  // still inside the window
  h.request("alice", uri);
  CHECK(h.echo_calls == 1);
  h.now = kStart + 10001;
  h.request("alice", uri);
  CHECK(h.echo_calls == 2);
  // And a different request may now use that msg_id.
  h.now = kStart + 20002;
  CHECK(h.request("alice", "ping?msg_id=1").code == 0);
}

TEST_CASE("core: dedup_window_s 0 turns dedup off") {
  Harness h([](Config& c) { c.requests.dedup_window_s = 0; });
  const std::string uri = "echo?channel=a&users=b&n=1&msg_id=1";
  h.request("alice", uri);
  h.request("alice", uri);
  CHECK(h.echo_calls == 2);
  CHECK(h.request("alice", "ping?msg_id=1").code == 0);
}

TEST_CASE("core: dedup_max_entries bounds the cache") {
  Harness h([](Config& c) { c.requests.dedup_max_entries = 3; });
  for (int i = 1; i <= 10; ++i) {
    h.request("alice", "echo?channel=a&users=b&n=1&msg_id=" + std::to_string(i));
  }
  CHECK(h.echo_calls == 10);
  // The newest ones are still cached...
  h.request("alice", "echo?channel=a&users=b&n=1&msg_id=10");
  h.request("alice", "echo?channel=a&users=b&n=1&msg_id=8");
  CHECK(h.echo_calls == 10);
  // ...the first has been evicted, so it runs again.
  h.request("alice", "echo?channel=a&users=b&n=1&msg_id=1");
  CHECK(h.echo_calls == 11);
}

// ---------------------------------------------------------------------------------------------
// Timers

TEST_CASE("timers: run in deadline order, ties in insertion order") {
  Timers t;
  std::vector<std::string> order;
  CHECK(t.next_due() == -1);
  t.at(30, [&] { order.push_back("30"); });
  t.at(10, [&] { order.push_back("10a"); });
  t.at(20, [&] { order.push_back("20"); });
  t.at(10, [&] { order.push_back("10b"); });
  CHECK(t.size() == 4);
  CHECK(t.next_due() == 10);
  t.run_due(9);
  CHECK(order.empty());
  t.run_due(20);  // due at or before now
  CHECK(order == std::vector<std::string>{"10a", "10b", "20"});
  CHECK(t.size() == 1);
  CHECK(t.next_due() == 30);
  t.run_due(1000);
  CHECK(order.back() == "30");
  CHECK(t.size() == 0);
  CHECK(t.next_due() == -1);
  t.run_due(2000);  // nothing left: no effect
  CHECK(order.size() == 4);
}

TEST_CASE("timers: ids are distinct and cancel removes only that timer") {
  Timers t;
  int a = 0, b = 0;
  const auto ia = t.at(10, [&] { ++a; });
  const auto ib = t.at(10, [&] { ++b; });
  CHECK(ia != ib);
  t.cancel(ia);
  CHECK(t.size() == 1);
  t.cancel(ia);      // twice: no effect
  t.cancel(999999);  // unknown: no effect
  CHECK(t.size() == 1);
  t.run_due(10);
  CHECK(a == 0);
  CHECK(b == 1);
  t.cancel(ib);  // already run: no effect
  CHECK(t.size() == 0);
}

TEST_CASE("timers: a callback may cancel another due timer or itself") {
  Timers t;
  std::vector<int> ran;
  Timers::Id second = 0;
  Timers::Id first = t.at(5, [&] {
    ran.push_back(1);
    t.cancel(second);
    t.cancel(first);  // itself: already removed, no effect
  });
  second = t.at(5, [&] { ran.push_back(2); });
  t.at(6, [&] { ran.push_back(3); });
  t.run_due(10);
  CHECK(ran == std::vector<int>{1, 3});
  CHECK(t.size() == 0);
}

TEST_CASE("timers: timers added while running run if due, else wait") {
  Timers t;
  std::vector<std::string> ran;
  t.at(10, [&] {
    ran.push_back("first");
    t.at(10, [&] { ran.push_back("added-now"); });
    t.at(5, [&] { ran.push_back("added-past"); });
    t.at(50, [&] { ran.push_back("added-later"); });
  });
  t.at(20, [&] { ran.push_back("second"); });
  t.run_due(20);
  CHECK(ran == std::vector<std::string>{"first", "added-past", "added-now", "second"});
  CHECK(t.size() == 1);
  CHECK(t.next_due() == 50);
  t.run_due(50);
  CHECK(ran.back() == "added-later");
}

TEST_CASE("timers: a chain of re-armed timers runs up to now, not beyond") {
  Timers t;
  int ticks = 0;
  std::function<void()> tick;
  std::int64_t due = 0;
  tick = [&] {
    ++ticks;
    due += 10;
    t.at(due, tick);
  };
  t.at(due, tick);
  t.run_due(35);  // runs at 0, 10, 20, 30
  CHECK(ticks == 4);
  CHECK(t.next_due() == 40);
  CHECK(t.size() == 1);
}

// ---------------------------------------------------------------------------------------------
// Dedup

TEST_CASE("dedup: remembers an answer for the window") {
  Dedup d(1000, 10);
  CHECK(d.find("alice", "1", 0) == nullptr);
  d.remember("alice", "1", 42, std::string("answer"), 0);
  CHECK(d.size() == 1);
  const auto* seen = d.find("alice", "1", 999);
  REQUIRE(seen != nullptr);
  CHECK(seen->fingerprint == 42);
  CHECK_FALSE(seen->pending);
  CHECK(seen->response == "answer");
  CHECK(d.find("bob", "1", 999) == nullptr);
  CHECK(d.find("alice", "2", 999) == nullptr);
  CHECK(d.find("alice", "1", 1000) == nullptr);  // the window is [t, t + window)
  CHECK(d.size() == 0);
  // Remembered again after expiry.
  d.remember("alice", "1", 43, std::string("again"), 2000);
  REQUIRE(d.find("alice", "1", 2000) != nullptr);
  CHECK(d.find("alice", "1", 2000)->fingerprint == 43);
}

TEST_CASE("dedup: a pending entry is completed in place") {
  Dedup d(1000, 10);
  d.remember("alice", "1", 7, std::nullopt, 0);
  REQUIRE(d.find("alice", "1", 10) != nullptr);
  CHECK(d.find("alice", "1", 10)->pending);
  d.remember("alice", "1", 7, std::string("done"), 500);
  CHECK(d.size() == 1);
  const auto* seen = d.find("alice", "1", 600);
  REQUIRE(seen != nullptr);
  CHECK_FALSE(seen->pending);
  CHECK(seen->response == "done");
  // The entry keeps the expiry of its first sighting.
  CHECK(d.find("alice", "1", 1000) == nullptr);
  CHECK(d.size() == 0);
}

TEST_CASE("dedup: bounded in entries, oldest evicted first") {
  Dedup d(100000, 3);
  for (int i = 1; i <= 5; ++i) d.remember("u", std::to_string(i), i, std::string("r"), i);
  CHECK(d.size() == 3);
  CHECK(d.find("u", "1", 10) == nullptr);
  CHECK(d.find("u", "2", 10) == nullptr);
  CHECK(d.find("u", "3", 10) != nullptr);
  CHECK(d.find("u", "5", 10) != nullptr);
}

TEST_CASE("dedup: a zero window or zero entries remembers nothing") {
  Dedup off(0, 10);
  off.remember("u", "1", 1, std::string("r"), 0);
  CHECK(off.size() == 0);
  CHECK(off.find("u", "1", 0) == nullptr);
  Dedup none(1000, 0);
  none.remember("u", "1", 1, std::string("r"), 0);
  CHECK(none.size() == 0);
  CHECK(none.find("u", "1", 0) == nullptr);
}

TEST_CASE("core: module requests need a session unless modules.require_login is false") {
  int calls = 0;
  auto handler = [&calls](rtm::gateway::Call&, const std::string&, const rtm::gateway::PendingRequest&)
      -> std::optional<rtm::gateway::Outcome<json::Document>> {
    ++calls;
    return rtm::gateway::Outcome<json::Document>(json::object());
  };
  {
    Harness h;
    h.core->set_absolute_handler(handler);
    h.core->set_session_directory(
        std::make_shared<Sessions>([](const std::string& uid) { return uid == "alice"; }));
    CHECK(h.request("bob", "im://modulus/hello?msg_id=1").error == "NOT_LOGGED_IN");
    CHECK(calls == 0);
    CHECK(h.request("alice", "im://modulus/hello?msg_id=2").code == 0);
    CHECK(calls == 1);
  }
  {
    Harness h([](Config& c) { c.modules.require_login = false; });
    h.core->set_absolute_handler(handler);
    h.core->set_session_directory(
        std::make_shared<Sessions>([](const std::string&) { return false; }));
    CHECK(h.request("bob", "im://modulus/hello?msg_id=3").code == 0);
    CHECK(calls == 2);
  }
}

TEST_CASE("core: invoke runs an operation for the server as an operator without a session") {
  Harness h;
  CHECK(h.core->is_operator(std::string(rtm::gateway::kServerCaller)));
  CHECK_FALSE(rtm::topics::is_valid_name(rtm::gateway::kServerCaller));
  auto ok = h.core->invoke("echo", R"({"channel":"room","users":["a"],"n":3})");
  REQUIRE(ok);
  CHECK(json::dump(*ok) == R"({"channel":"room","users":["a"],"n":3,"uid":"$server"})");
  // No session directory: a session-needing operation still runs for the server.
  REQUIRE(h.core->invoke("secret", ""));
  CHECK(h.secret_calls == 1);
  // The operation's own checks and the parameter rules hold; nothing is published.
  auto bad = h.core->invoke("echo", R"({"channel":"a/b","users":[],"n":1})");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == ErrorCode::invalid_name);
  CHECK(h.core->invoke("echo", R"({"color":"red"})").error().code == ErrorCode::invalid_parameter);
  CHECK(h.core->invoke("nope", "").error().code == ErrorCode::unknown_operation);
  CHECK(h.core->invoke("boom", "").error().code == ErrorCode::internal);
  CHECK(h.outbox.sent.empty());
  // An after_commit callback runs at the end of the turn (no Durability: at once there).
  bool done = false;
  h.core->after_commit([&done] { done = true; });
  CHECK_FALSE(done);
  h.core->end_turn();
  CHECK(done);
}
