// Runtime state that follows rows applied from another gateway of a cluster
// (ReplicaListener, issue 19): the token timers re-arm, cancel and re-check what the rows
// say, and the "will expire" warnings are claimed once across the cluster. The other
// gateway is simulated: the test changes the shared store directly, as applying its rows
// would, and tells the listeners.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "rtm_harness.hpp"

namespace {

using rtm::gateway::ChangeSet;
using rtm::gateway::Config;
using rtm::gateway::MemoryStore;
using rtm::gateway::ReplicaListener;
using rtm::test::harness_config;
using rtm::test::kHarnessStart;
using rtm::test::RtmHarness;

// A memory store with the cluster's hooks: listeners told of applied rows, and claims
// that the test may have "another gateway" take first.
class ClusterStore final : public MemoryStore {
 public:
  explicit ClusterStore(const Config& config) : MemoryStore(config.limits) {}
  void add_replica_listener(ReplicaListener* l) override { listeners.push_back(l); }
  void remove_replica_listener(ReplicaListener* l) override {
    listeners.erase(std::remove(listeners.begin(), listeners.end(), l), listeners.end());
  }
  bool claim_once(const std::string& key, std::int64_t ttl_ms) override {
    CHECK(ttl_ms > 0);
    tried.push_back(key);
    return claimed.insert(key).second;
  }
  void replicate(const ChangeSet& applied) {
    for (auto* l : listeners) l->replicated(applied);
  }
  std::vector<ReplicaListener*> listeners;
  std::set<std::string> claimed;
  std::vector<std::string> tried;
};

struct Cluster {
  Cluster()
      : store(std::make_shared<ClusterStore>(harness_config())),
        h(harness_config(), kHarnessStart, store) {}
  // The token events sent to uid from `from` on: "state@expires_at".
  std::vector<std::string> token_events(const std::string& uid, std::size_t from = 0) const {
    std::vector<std::string> out;
    for (auto i : h.sent_to("rtm/u/" + uid + "/events/token", from)) {
      auto doc = rtm::test::parse_json(h.outbox.sent[i].payload);
      out.push_back(std::string(doc["state"].GetString()) + "@" +
                    std::to_string(doc["expires_at"].GetInt64()));
    }
    return out;
  }
  std::shared_ptr<ClusterStore> store;
  RtmHarness h;
};

constexpr std::int64_t kStartS = kHarnessStart / 1000;

}  // namespace

TEST_CASE("replica: every service registers and unregisters its listener") {
  auto store = std::make_shared<ClusterStore>(harness_config());
  {
    RtmHarness h(harness_config(), kHarnessStart, store);
    // rtm, locks, inbox, invitations (no grant feed without enforcement).
    CHECK(store->listeners.size() == 4);
  }
  CHECK(store->listeners.empty());
}

TEST_CASE("replica: a token renewed on another gateway re-arms the timers at the new expiry") {
  Cluster c;
  c.h.login("alice", 100);  // warns at +70 s, expires at +100 s
  const std::int64_t renewed_s = kStartS + 500;
  c.store->renew_session("alice", renewed_s * 1000);
  ChangeSet applied;
  applied.sessions.insert("alice");
  c.store->replicate(applied);

  c.h.advance_to(kHarnessStart + 200'000);  // past the old expiry: nothing
  CHECK(c.token_events("alice").empty());
  CHECK(c.h.store->has_session("alice"));
  c.h.advance_to((renewed_s - 30) * 1000);
  CHECK(c.token_events("alice") ==
        std::vector<std::string>{"will_expire@" + std::to_string(renewed_s)});
  c.h.advance_to(renewed_s * 1000);
  CHECK(c.token_events("alice") ==
        std::vector<std::string>{"will_expire@" + std::to_string(renewed_s),
                                 "expired@" + std::to_string(renewed_s)});
  CHECK_FALSE(c.h.store->has_session("alice"));
}

TEST_CASE("replica: a timer re-checks the rows when it fires") {
  // Rows applied without a word to the listeners (or before it re-armed): the expiry
  // timer finds the renewed token and re-arms instead of ending the session.
  Cluster c;
  c.h.login("alice", 100);
  c.h.advance_to(kHarnessStart + 70'000);
  CHECK(c.token_events("alice") ==
        std::vector<std::string>{"will_expire@" + std::to_string(kStartS + 100)});
  const std::int64_t renewed_s = kStartS + 300;
  c.store->renew_session("alice", renewed_s * 1000);
  c.h.advance_to(kHarnessStart + 100'000);
  CHECK(c.token_events("alice").size() == 1);
  CHECK(c.h.store->has_session("alice"));
  c.h.advance_to(renewed_s * 1000);
  CHECK(c.token_events("alice").back() == "expired@" + std::to_string(renewed_s));
  CHECK_FALSE(c.h.store->has_session("alice"));
}

TEST_CASE("replica: a session ended on another gateway cancels its timers") {
  Cluster c;
  c.h.login("alice", 100);
  const auto timers_before = c.h.core->timers().size();
  (void)c.store->end_session("alice");
  ChangeSet applied;
  applied.sessions.insert("alice");
  c.store->replicate(applied);
  CHECK(c.h.core->timers().size() < timers_before);
  const auto from = c.h.outbox.sent.size();
  c.h.advance_to(kHarnessStart + 200'000);
  CHECK(c.token_events("alice", from).empty());
  CHECK(c.h.sent_to("rtm/u/alice/events/session", from).empty());
}

TEST_CASE("replica: a session started on another gateway gets its timers here") {
  Cluster c;
  const std::int64_t exp_s = kStartS + 100;
  c.store->start_session("bob", "s-1", kHarnessStart, exp_s * 1000);
  ChangeSet applied;
  applied.sessions.insert("bob");
  c.store->replicate(applied);
  // The other gateway claimed the warning first: this one stays silent, and still ends
  // the session at the expiry (a change of rows: one gateway's turn does it).
  c.store->claimed.insert("warn:bob:" + std::to_string(exp_s));
  c.h.advance_to(kHarnessStart + 80'000);
  CHECK(c.token_events("bob").empty());
  CHECK(c.store->tried == std::vector<std::string>{"warn:bob:" + std::to_string(exp_s)});
  c.h.advance_to(exp_s * 1000);
  CHECK(c.token_events("bob") == std::vector<std::string>{"expired@" + std::to_string(exp_s)});
}

TEST_CASE("replica: the will-expire warning is claimed once, keyed by uid and expiry") {
  Cluster c;
  c.h.login("alice", 100);
  c.h.advance_to(kHarnessStart + 70'000);
  CHECK(c.store->tried == std::vector<std::string>{"warn:alice:" + std::to_string(kStartS + 100)});
  CHECK(c.token_events("alice").size() == 1);
}

TEST_CASE("replica: channel tokens follow members changed on another gateway") {
  Cluster c;
  c.h.login("alice", 3600);
  const std::int64_t exp_s = kStartS + 100;
  const auto token = rtm::gateway::sign_token(
      {"alice", kStartS, exp_s, std::nullopt, std::string("room")}, c.h.config.auth.token_secret);
  c.h.ok("alice", "join", "channel=room", "{\"token\":\"" + token + "\"}");
  // Renewed elsewhere.
  const std::int64_t renewed_s = kStartS + 400;
  c.store->set_member_token("alice", "room", renewed_s * 1000);
  ChangeSet applied;
  applied.members.emplace("room", "alice");
  c.store->replicate(applied);
  c.h.advance_to(kHarnessStart + 200'000);
  CHECK(c.h.store->is_member("alice", "room"));
  CHECK(std::find(c.store->tried.begin(), c.store->tried.end(),
                  "warn:alice/stream/room:" + std::to_string(exp_s)) == c.store->tried.end());
  c.h.advance_to((renewed_s - 30) * 1000);
  CHECK(std::find(c.store->tried.begin(), c.store->tried.end(),
                  "warn:alice/stream/room:" + std::to_string(renewed_s)) != c.store->tried.end());
  c.h.advance_to(renewed_s * 1000);
  CHECK_FALSE(c.h.store->is_member("alice", "room"));
  // Left elsewhere: the timer goes.
  c.h.ok("alice", "join", "channel=room",
         "{\"token\":\"" +
             rtm::gateway::sign_token(
                 {"alice", kStartS, renewed_s + 100, std::nullopt, std::string("room")},
                 c.h.config.auth.token_secret) +
             "\"}");
  (void)c.store->leave("alice", "room");
  const auto timers = c.h.core->timers().size();
  c.store->replicate(applied);
  CHECK(c.h.core->timers().size() == timers - 1);
}

TEST_CASE("replica: after the broker lost the session, a user seen by another gateway stays") {
  Cluster c;
  c.h.login("alice", 3600);
  c.h.login("bob", 3600);
  c.h.core->broker_session_lost();  // every session must show itself within the grace
  // alice's request went to another gateway (the request filter is shared): a watch
  // there changed her session's row. bob's presence came there too.
  (void)c.store->watch("alice", {"carol"});
  c.store->set_presence("bob", true, "conn-2");
  ChangeSet applied;
  applied.sessions.insert("alice");
  applied.presence.insert("bob");
  c.store->replicate(applied);
  c.h.advance_to(kHarnessStart + (c.h.config.presence.reaffirm_grace_s + 1) * 1000LL);
  CHECK(c.h.store->has_session("alice"));
  CHECK(c.h.store->has_session("bob"));
}

TEST_CASE("replica: EMQX's HTTP authorization follows grants made on another gateway") {
  auto config = harness_config();
  config.enforcement.http_authz = true;  // a local table, nothing published
  auto store = std::make_shared<ClusterStore>(config);
  RtmHarness h(config, kHarnessStart, store);
  CHECK(store->listeners.size() == 5);  // the grant feed too
  auto ask = [&](const std::string& user, const std::string& topic, bool publish) {
    return h.api->authorize({user, topic, publish});
  };
  // dave logged in, joined and became a publisher on another gateway: its rows arrive.
  store->start_session("dave", "s-1", kHarnessStart, kHarnessStart + 3'600'000);
  bool joined = false;
  REQUIRE(store->join("dave", "room", &joined));
  REQUIRE(store->join_topic("dave", "room", "input"));
  CHECK(ask("dave", "rtm/ch/room/input/dave", true) == "deny");  // not applied yet
  ChangeSet applied;
  applied.sessions.insert("dave");
  applied.members.emplace("room", "dave");
  store->replicate(applied);
  CHECK(ask("dave", "rtm/ch/room/input/dave", true) == "allow");
  // And left there.
  (void)store->leave("dave", "room");
  store->replicate(applied);
  CHECK(ask("dave", "rtm/ch/room/input/dave", true) == "deny");
}
