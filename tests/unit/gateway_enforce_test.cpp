// Broker-side enforcement, without a broker: the grant records the gateway publishes for
// the Mosquitto plugin are read back into the plugin's own table (rtm::grants::Table) and
// checked as the broker would check them, tried as a hostile logged-in user would.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <random>

#include "rtm/grants/table.hpp"
#include "rtm_harness.hpp"

using namespace rtm;
using rtm::grants::Access;
using rtm::grants::Verdict;

namespace {

gateway::Config enforcing_config() {
  auto config = test::harness_config();
  config.enforcement.publish_grants = true;
  config.enforcement.http_authz = true;
  config.ops.uids = {"ops"};
  return config;
}

// The broker's side: a table fed with every grant message in publish order.
struct Broker {
  explicit Broker(test::RtmHarness& h) : h(h) {}
  void catch_up() {
    for (; next < h.outbox.sent.size(); ++next) {
      const auto& m = h.outbox.sent[next];
      if (m.topic != "rtm/gateway/grants") continue;
      CHECK(m.qos == 1);
      CHECK_FALSE(m.retain);
      for (auto& a : table.apply_message(m.payload)) actions.push_back(std::move(a));
    }
  }
  Verdict read(const std::string& uid, const std::string& topic) {
    catch_up();
    return table.decide(uid, topic, Access::read);
  }
  Verdict write(const std::string& uid, const std::string& topic) {
    catch_up();
    return table.decide(uid, topic, Access::write);
  }
  test::RtmHarness& h;
  grants::Table table{"rtm"};
  std::vector<grants::ConnectionAction> actions;
  std::size_t next = 0;
};

// Index of the first grant message after `from`, or npos.
std::size_t first_grant(const test::RtmHarness& h, std::size_t from) {
  for (std::size_t i = from; i < h.outbox.sent.size(); ++i) {
    if (h.outbox.sent[i].topic == "rtm/gateway/grants") return i;
  }
  return std::string::npos;
}

}  // namespace

TEST_CASE("enforcement: a full set goes out at every connect and the broker fails closed before") {
  auto config = enforcing_config();
  config.enforcement.http_authz = false;  // which would also send one at start
  test::RtmHarness h(config);
  Broker broker(h);
  CHECK(broker.read("bob", "rtm/ch/room/input/alice") == Verdict::deny);
  h.enter("alice", "room");
  h.ok("alice", "join_topic", "channel=room&topic=input");
  CHECK_FALSE(broker.table.synced());
  h.core->broker_connected();
  h.core->end_turn();
  CHECK(broker.write("alice", "rtm/ch/room/input/alice") == Verdict::allow);
  CHECK(broker.read("alice", "rtm/events/room") == Verdict::allow);
  // The broker restarts: a fresh table is closed until the gateway connects again.
  Broker fresh(h);
  fresh.next = h.outbox.sent.size();
  CHECK(fresh.write("alice", "rtm/ch/room/input/alice") == Verdict::deny);
  h.core->broker_connected();
  h.core->end_turn();
  CHECK(fresh.write("alice", "rtm/ch/room/input/alice") == Verdict::allow);
}

TEST_CASE("enforcement: a grant reaches the broker before the answer and a revocation too") {
  test::RtmHarness h(enforcing_config());
  Broker broker(h);
  h.core->broker_connected();
  h.core->end_turn();
  h.enter("alice", "room");
  h.ok("alice", "join_topic", "channel=room&topic=input");
  h.enter("bob", "room");
  const std::size_t before = h.outbox.sent.size();
  const std::size_t answer = h.send("bob", "subscribe", "channel=room&topic=input",
                                    R"({"users":["alice"]})");
  CHECK(first_grant(h, before) < answer);
  CHECK(broker.read("bob", "rtm/ch/room/input/alice") == Verdict::allow);
  CHECK(broker.read("carol", "rtm/ch/room/input/alice") == Verdict::deny);
  CHECK(broker.write("bob", "rtm/ch/room/input/bob") == Verdict::deny);

  const std::size_t before_unsub = h.outbox.sent.size();
  const std::size_t unsub = h.send("bob", "unsubscribe", "channel=room&topic=input",
                                   R"({"users":["alice"]})");
  CHECK(first_grant(h, before_unsub) < unsub);
  CHECK(broker.read("bob", "rtm/ch/room/input/alice") == Verdict::deny);
  CHECK(broker.read("bob", "rtm/events/room") == Verdict::allow);

  h.ok("alice", "leave_topic", "channel=room&topic=input");
  CHECK(broker.write("alice", "rtm/ch/room/input/alice") == Verdict::deny);
  h.ok("bob", "leave", "channel=room");
  CHECK(broker.read("bob", "rtm/events/room") == Verdict::deny);
  CHECK(broker.write("bob", "rtm/u/alice/inbox/bob") == Verdict::allow);
  h.ok("bob", "logout", "");
  CHECK(broker.write("bob", "rtm/u/alice/inbox/bob") == Verdict::deny);
}

TEST_CASE("enforcement: the 64-publisher limit holds at the broker and 'all publishers' follows joins") {
  test::RtmHarness h(enforcing_config());
  Broker broker(h);
  h.core->broker_connected();
  h.core->end_turn();
  h.enter("host", "arena");
  h.ok("host", "subscribe", "channel=arena&topic=input");  // all publishers
  for (int i = 0; i < 65; ++i) {
    const std::string p = "p" + std::to_string(i);
    h.enter(p, "arena");
    h.ok(p, "join_topic", "channel=arena&topic=input");
  }
  int readable = 0;
  for (int i = 0; i < 65; ++i) {
    readable += broker.read("host", "rtm/ch/arena/input/p" + std::to_string(i)) == Verdict::allow;
  }
  CHECK(readable == 64);
  CHECK(broker.read("host", "rtm/ch/arena/input/p64") == Verdict::deny);
}

TEST_CASE("enforcement: the broker's table always equals a full set of the state (random operations)") {
  for (const char* backend : {"memory", "sqlite"}) {
    CAPTURE(backend);
    auto config = enforcing_config();
    std::string path;
    if (std::string(backend) == "sqlite") {
      path = "enforce-test-" + std::to_string(::getpid()) + ".db";
      std::remove(path.c_str());
      config.state.backend = "sqlite";
      config.state.path = path;
    }
    test::RtmHarness h(config);
    Broker broker(h);
    h.core->broker_connected();
    h.core->end_turn();
    const std::vector<std::string> users{"u0", "u1", "u2", "u3"};
    const std::vector<std::string> channels{"c0", "c1"};
    const std::vector<std::string> topics{"t0", "t1"};
    std::mt19937 rng(7);
    auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
    for (int step = 0; step < 400; ++step) {
      const auto u = pick(users), c = pick(channels), t = pick(topics), other = pick(users);
      const std::string ct = "channel=" + c + "&topic=" + t;
      switch (rng() % 9) {
        case 0: h.send(u, "login", "", "{\"token\":\"" + h.token(u) + "\"}"); break;
        case 1: h.send(u, "logout", ""); break;
        case 2: h.send(u, "join", "channel=" + c); break;
        case 3: h.send(u, "leave", "channel=" + c); break;
        case 4: h.send(u, "join_topic", ct); break;
        case 5: h.send(u, "leave_topic", ct); break;
        case 6: h.send(u, "subscribe", ct, "{\"users\":[\"" + other + "\"]}"); break;
        case 7: h.send(u, "unsubscribe", ct, "{\"users\":[\"" + other + "\"]}"); break;
        case 8: h.send(u, rng() % 2 ? "subscribe" : "unsubscribe", ct); break;
      }
      if (step % 50 != 49) continue;
      // A second broker that only sees a full set now must decide every question the same.
      Broker fresh(h);
      fresh.next = h.outbox.sent.size();
      h.core->broker_connected();
      h.core->end_turn();
      for (const auto& reader : users) {
        for (const auto& ch : channels) {
          CHECK(broker.read(reader, "rtm/events/" + ch) == fresh.read(reader, "rtm/events/" + ch));
          for (const auto& tp : topics) {
            for (const auto& p : users) {
              const std::string topic = "rtm/ch/" + ch + "/" + tp + "/" + p;
              CHECK(broker.read(reader, topic) == fresh.read(reader, topic));
              CHECK(broker.write(p, topic) == fresh.write(p, topic));
            }
          }
        }
        CHECK(broker.write(reader, "rtm/u/x/inbox/" + reader) ==
              fresh.write(reader, "rtm/u/x/inbox/" + reader));
      }
    }
    if (!path.empty()) {
      h.api.reset();
      h.core.reset();
      std::remove(path.c_str());
      std::remove((path + "-wal").c_str());
      std::remove((path + "-shm").c_str());
    }
  }
}

TEST_CASE("enforcement: sessions that end close their connections at the broker") {
  test::RtmHarness h(enforcing_config());
  Broker broker(h);
  h.core->broker_connected();
  h.core->end_turn();
  auto kinds = [&] {
    broker.catch_up();
    std::vector<std::string> out;
    for (const auto& a : broker.actions) {
      out.push_back((a.kind == grants::RecordKind::kick          ? "K "
                     : a.kind == grants::RecordKind::kick_others ? "k "
                                                                 : "T ") +
                    a.uid);
    }
    broker.actions.clear();
    return out;
  };
  h.login("alice", 60);
  CHECK(kinds() == std::vector<std::string>{"T alice"});
  h.login("alice", 60);  // replaced by a login elsewhere: the others close a little later
  CHECK(kinds() == std::vector<std::string>{"T alice"});
  h.advance_to(h.now + gateway::kSessionCloseDelayMs);
  CHECK(kinds() == std::vector<std::string>{"k alice"});
  h.ok("alice", "renew_token", "", "{\"token\":\"" + h.token("alice", 600) + "\"}");
  CHECK(kinds() == std::vector<std::string>{"T alice"});
  h.advance_to(h.now + 601 * 1000);  // the token expires
  CHECK(kinds() == std::vector<std::string>{"K alice"});

  // A logout closes the connection shortly after its answer, unless it logged in again.
  h.login("bob");
  kinds();
  h.ok("bob", "logout", "");
  CHECK(kinds().empty());
  h.advance_to(h.now + gateway::kSessionCloseDelayMs);
  CHECK(kinds() == std::vector<std::string>{"K bob"});
  h.login("bob");
  h.ok("bob", "logout", "");
  h.login("bob");
  kinds();
  h.advance_to(h.now + gateway::kSessionCloseDelayMs);
  CHECK(kinds().empty());
}

TEST_CASE("enforcement: an operator kicks a user and nobody else may") {
  test::RtmHarness h(enforcing_config());
  Broker broker(h);
  h.core->broker_connected();
  h.core->end_turn();
  h.enter("alice", "room");
  h.login("ops");
  h.login("mallory");
  CHECK(h.error("mallory", "kick", "uid=alice") == "FORBIDDEN");
  CHECK(broker.read("alice", "rtm/events/room") == Verdict::allow);
  const std::size_t before = h.outbox.sent.size();
  auto result = h.ok("ops", "kick", "uid=alice");
  CHECK(result["had_session"].GetBool());
  auto ended = h.only("rtm/u/alice/events/session", before);
  CHECK(std::string(ended["reason"].GetString()) == "kicked");
  CHECK(broker.read("alice", "rtm/events/room") == Verdict::deny);
  // The connections close after the session event had time to arrive.
  broker.catch_up();
  broker.actions.clear();
  h.advance_to(h.now + gateway::kSessionCloseDelayMs);
  broker.catch_up();
  REQUIRE_FALSE(broker.actions.empty());
  CHECK(broker.actions.back().kind == grants::RecordKind::kick);
  CHECK(broker.actions.back().uid == "alice");
  // A user without a session: its connections are closed all the same.
  result = h.ok("ops", "kick", "uid=ghost");
  CHECK_FALSE(result["had_session"].GetBool());
}

TEST_CASE("enforcement: EMQX's HTTP authorization answers from the same grants") {
  test::RtmHarness h(enforcing_config());
  h.enter("alice", "room");
  h.ok("alice", "join_topic", "channel=room&topic=input");
  h.enter("bob", "room");
  h.ok("bob", "subscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  auto ask = [&](const std::string& user, const std::string& topic, bool publish) {
    return h.api->authorize({user, topic, publish});
  };
  CHECK(ask("bob", "rtm/ch/room/input/alice", false) == "allow");
  CHECK(ask("carol", "rtm/ch/room/input/alice", false) == "deny");
  CHECK(ask("bob", "rtm/ch/#", false) == "deny");
  CHECK(ask("alice", "rtm/ch/room/input/alice", true) == "allow");
  CHECK(ask("bob", "rtm/ch/room/input/bob", true) == "deny");
  CHECK(ask("bob", "rtm/u/bob/#", false) == "ignore");
  CHECK(ask("rtm-gateway", "rtm/ch/room/input/alice", true) == "ignore");
  h.ok("bob", "unsubscribe", "channel=room&topic=input", R"({"users":["alice"]})");
  CHECK(ask("bob", "rtm/ch/room/input/alice", false) == "deny");
}

TEST_CASE("who_now and where_now answer members only unless a channel's presence is public") {
  auto config = test::harness_config();
  config.channels.public_presence = {"lobby-*"};
  test::RtmHarness h(config);
  h.enter("alice", "secret");
  h.enter("bob", "lobby-1");
  h.ok("alice", "join", "channel=lobby-1");
  h.login("eve");
  CHECK(h.error("eve", "who_now", "channel=secret") == "NOT_JOINED");
  CHECK(h.ok("alice", "who_now", "channel=secret")["members"].Size() == 1);
  CHECK(h.ok("eve", "who_now", "channel=lobby-1")["members"].Size() == 2);
  auto seen_by_eve = h.ok("eve", "where_now", "uid=alice");
  REQUIRE(seen_by_eve["channels"].Size() == 1);
  CHECK(std::string(seen_by_eve["channels"][0].GetString()) == "lobby-1");
  CHECK(h.ok("alice", "where_now", "uid=alice")["channels"].Size() == 2);
  h.ok("eve", "join", "channel=secret");
  CHECK(h.ok("eve", "where_now", "uid=alice")["channels"].Size() == 2);
}
