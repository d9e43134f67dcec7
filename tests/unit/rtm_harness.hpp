#pragma once
// The RTM operations and the bridge in a Core, as the Gateway wires them, driven the way a
// broker drives them: messages in (requests, presence, device topics), and every answer and
// event recorded by a fake Outbox, in order; the clock is the test's. No broker, no threads.
// Each message is one loop turn (Core::end_turn after it), so that with the sqlite backend
// the answers go out after their commit, as in the gateway.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/bridge.hpp"
#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/gateway/inbox.hpp"
#include "rtm/gateway/invitations.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/gateway/storage_operations.hpp"
#include "rtm/tokens/jwt.hpp"

namespace rtm::test {

inline constexpr std::int64_t kHarnessStart = 1700000000000;  // ms
inline constexpr const char* kHarnessSecret = "0123456789abcdef0123456789abcdef";

struct Sent {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

class RecordingOutbox : public gateway::Outbox {
 public:
  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    sent.push_back({topic, std::string(payload), qos, retain});
    return true;
  }
  std::vector<Sent> sent;
};

inline rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  REQUIRE_MESSAGE(doc.IsObject(), text);
  return doc;
}

// A config with the harness's token secret.
// The string member `key` of a JSON object (a test failure when it is missing or not a string).
inline std::string text(const rapidjson::Value& v, const char* key) {
  REQUIRE_MESSAGE(v.HasMember(key), "no " << key);
  REQUIRE(v[key].IsString());
  return v[key].GetString();
}

inline gateway::Config harness_config() {
  gateway::Config config;
  config.auth.token_secret = kHarnessSecret;
  return config;
}

// A sqlite state file in a folder of its own under the system temp dir, removed at the end;
// `config` is `base` with the sqlite backend on that file.
struct SqliteStateDir {
  explicit SqliteStateDir(gateway::Config base = harness_config()) : config(std::move(base)) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "rtm-unit-state-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) FAIL("mkdtemp failed");
    dir = pattern;
    config.state.backend = "sqlite";
    config.state.path = dir + "/state.db";
  }
  ~SqliteStateDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  SqliteStateDir(const SqliteStateDir&) = delete;
  SqliteStateDir& operator=(const SqliteStateDir&) = delete;
  std::string dir;
  gateway::Config config;
};

struct RtmHarness {
  explicit RtmHarness(gateway::Config c = harness_config(), std::int64_t start = kHarnessStart,
                      std::shared_ptr<gateway::StateStore> given_store = nullptr)
      : config(std::move(c)), now(start), given_store_(std::move(given_store)) {
    start_core();
  }

  // Builds the Core and its parts as the Gateway does (without module RPC).
  void start_core() {
    core = std::make_unique<gateway::Core>(config, outbox, [this] { return now; });
    gateway::register_basic_operations(*core);
    // A store given to the harness (a test's own backend) lives on across a restart.
    store = given_store_ ? given_store_ : gateway::make_state_store(config);
    api = gateway::register_rtm_operations(*core, store);
    gateway::register_storage_operations(*core, store);
    inbox = gateway::register_inbox(*core, store);
    gateway::register_invitations(*core, store);
    gateway::register_bridge(*core, api);
  }

  // The gateway stops and starts again at `at` (its state backend reopened); what was
  // published stays recorded.
  void restart(std::int64_t at) {
    api.reset();
    inbox.reset();
    core.reset();
    store.reset();  // a sqlite file's lock goes with its last owner
    now = at;
    start_core();
  }

  // One loop turn with one message from the broker.
  void deliver(const gateway::Message& m) {
    core->on_message(m);
    core->end_turn();
  }
  // The clock moves; the timers due run in one loop turn.
  void advance_to(std::int64_t at) {
    now = at;
    core->run_due();
    core->end_turn();
  }

  std::string token(const std::string& uid, std::int64_t ttl_s = 3600) const {
    return gateway::sign_token({uid, now / 1000, now / 1000 + ttl_s, std::nullopt, std::nullopt},
                               config.auth.token_secret);
  }

  // Sends a request; returns the index in outbox.sent of its answer.
  std::size_t send(const std::string& uid, const std::string& op, const std::string& query,
                   const std::string& body = "") {
    const std::string uri =
        op + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + std::to_string(++msg_id);
    deliver(gateway::Message{"rtm/req/" + uid + "/" + uri, body, 1, false});
    const std::string answer_topic = "rtm/u/" + uid + "/res/" + uri;
    for (std::size_t i = outbox.sent.size(); i-- > 0;) {
      if (outbox.sent[i].topic == answer_topic) return i;
    }
    FAIL("no answer to " << uid << " " << uri);
    return 0;
  }

  // The answer's result; the request must succeed.
  rapidjson::Document ok(const std::string& uid, const std::string& op, const std::string& query,
                         const std::string& body = "") {
    const auto& text = outbox.sent[send(uid, op, query, body)].payload;
    auto doc = parse_json(text);
    REQUIRE_MESSAGE(doc["code"].GetInt() == 0, uid << " " << op << " " << query << ": " << text);
    rapidjson::Document result;
    result.CopyFrom(doc["result"], result.GetAllocator());
    return result;
  }

  // The error name of a request that must fail ("OK" when it did not).
  std::string error(const std::string& uid, const std::string& op, const std::string& query,
                    const std::string& body = "") {
    auto doc = parse_json(outbox.sent[send(uid, op, query, body)].payload);
    return doc.HasMember("error") ? doc["error"].GetString() : "OK";
  }

  rapidjson::Document login(const std::string& uid, std::int64_t ttl_s = 3600) {
    return ok(uid, "login", "", "{\"token\":\"" + token(uid, ttl_s) + "\"}");
  }

  void enter(const std::string& uid, const std::string& channel) {
    login(uid);
    ok(uid, "join", "channel=" + channel);
  }

  // Indices of messages sent to `topic` from `from` on.
  std::vector<std::size_t> sent_to(const std::string& topic, std::size_t from = 0) const {
    std::vector<std::size_t> out;
    for (std::size_t i = from; i < outbox.sent.size(); ++i) {
      if (outbox.sent[i].topic == topic) out.push_back(i);
    }
    return out;
  }

  // The one message sent to `topic` from `from` on, parsed.
  rapidjson::Document only(const std::string& topic, std::size_t from = 0) const {
    const auto at = sent_to(topic, from);
    REQUIRE_MESSAGE(at.size() == 1, topic << " got " << at.size() << " messages");
    return parse_json(outbox.sent[at[0]].payload);
  }

  gateway::Config config;
  RecordingOutbox outbox;
  std::int64_t now;
  std::unique_ptr<gateway::Core> core;
  std::shared_ptr<gateway::RtmApi> api;
  std::shared_ptr<gateway::PeerInbox> inbox;
  std::shared_ptr<gateway::StateStore> store;
  int msg_id = 0;

 private:
  std::shared_ptr<gateway::StateStore> given_store_;
};

}  // namespace rtm::test
