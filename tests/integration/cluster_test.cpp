// Several gateways on one shared state, tried as users and an operator would: one real
// Mosquitto, one real redis-server, three gateways (state.backend redis, cluster.enabled) on
// free ports, plain MQTT clients (Paho). Requests reach one gateway each through the shared
// subscription; a gateway is killed with SIGKILL under load and started again.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "sdk_peer.hpp"

using namespace rtm::test;
using namespace std::chrono_literals;

namespace {

// One gateway of the cluster, with its ops endpoint for /metrics.
struct Member {
  int http_port = free_port();
  std::unique_ptr<GatewayProcess> process;

  Member(const std::string& broker_uri, const std::string& redis_uri, const std::string& extra) {
    GatewayOptions o;
    o.log_level = "info";
    o.extra_yaml = "state:\n  backend: redis\n  redis:\n    uri: " + redis_uri +
                   "\ncluster:\n  enabled: true\n  group: it\n"
                   "ops:\n  http_listen: 127.0.0.1:" +
                   std::to_string(http_port) + "\n" + extra;
    process = std::make_unique<GatewayProcess>(broker_uri, o);
  }

  std::string metrics() const {
    httplib::Client http("127.0.0.1", http_port);
    http.set_connection_timeout(2, 0);
    http.set_read_timeout(10, 0);
    auto res = http.Get("/metrics");
    return res && res->status == 200 ? res->body : "";
  }

  // The sum of every sample of `family` (labels ignored).
  double metric(const std::string& family) const {
    double sum = 0;
    const std::regex line("^" + family + R"((\{[^}]*\})? ([0-9.eE+-]+)$)");
    const auto text = metrics();
    std::istringstream in(text);
    std::string l;
    std::smatch m;
    while (std::getline(in, l)) {
      if (std::regex_match(l, m, line)) sum += std::stod(m[2].str());
    }
    return sum;
  }
};

struct Cluster {
  Mosquitto broker;
  // As a deployment runs it: every write on disk before Redis answers (docs/cluster.md).
  Redis redis{"", "appendonly yes\nappendfsync always\n"};
  std::vector<std::unique_ptr<Member>> members;

  explicit Cluster(const std::string& extra = "", int size = 3) {
    for (int i = 0; i < size; ++i) {
      members.push_back(std::make_unique<Member>(broker.uri(), redis.uri(), extra));
    }
    REQUIRE(wait_gateway_ready(broker.uri()));
    for (auto& m : members) wait_member(*m);
  }

  // The member answers its ops endpoint with its broker link up.
  static void wait_member(const Member& m) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (m.metrics().find("rtm_broker_connected 1") != std::string::npos) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL("a gateway of the cluster did not come up: " << m.process->log());
  }

  std::string logs() const {
    std::string out;
    for (std::size_t i = 0; i < members.size(); ++i) {
      out += "---- gateway " + std::to_string(i) + "\n" + members[i]->process->log();
    }
    return out;
  }
};

std::unique_ptr<Client> device(const std::string& uri, const std::string& uid) {
  auto c = std::make_unique<Client>(uri, unique_id(uid));
  c->connect();
  c->subscribe("rtm/u/" + uid + "/#");
  return c;
}

void login(Client& c, const std::string& uid, std::int64_t ttl_s = 3600) {
  auto d = request(c, uid, "login?msg_id=login-" + unique_id(uid),
                   "{\"token\":\"" + token_for(uid, ttl_s) + "\"}");
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
}

rapidjson::Document must(Client& c, const std::string& uid, const std::string& uri,
                         const std::string& body = "") {
  auto d = request(c, uid, uri, body);
  REQUIRE_MESSAGE(answered_ok(d), uri << ": " << json_text(d));
  return d;
}

std::set<std::string> members_of(const rapidjson::Document& who_now) {
  std::set<std::string> out;
  for (const auto& m : who_now["result"]["members"].GetArray()) out.insert(m.GetString());
  return out;
}

}  // namespace

TEST_CASE("cluster: three gateways share one state and answer each request once") {
  Cluster cluster;
  const auto uri = cluster.broker.uri();
  std::vector<double> before;  // the readiness pings
  for (auto& m : cluster.members) before.push_back(m->metric("rtm_requests_total"));
  auto alice = device(uri, "alice");
  auto bob = device(uri, "bob");
  login(*alice, "alice");
  login(*bob, "bob");
  bob->subscribe("rtm/events/room-1");

  // Joins and reads land on different gateways; every one sees the same channel.
  must(*alice, "alice", "join?channel=room-1&msg_id=j1");
  auto joined = wait_event(*bob, "rtm/events/room-1", "member_joined");
  REQUIRE_MESSAGE(joined, cluster.logs());
  CHECK(std::string((*joined)["uid"].GetString()) == "alice");
  must(*bob, "bob", "join?channel=room-1&msg_id=j1");
  must(*alice, "alice", "join_topic?channel=room-1&topic=input&msg_id=t1");
  must(*bob, "bob", "subscribe?channel=room-1&topic=input&users=alice&msg_id=s1");
  // Presence states are shared too: set through one gateway, read through all.
  must(*alice, "alice", "set_state?channel=room-1&msg_id=st", R"({"states":{"seat":"2"}})");
  for (int i = 0; i < 6; ++i) {
    auto got = must(*bob, "bob", "get_state?channel=room-1&uid=alice&msg_id=g" + std::to_string(i));
    CHECK(json_text(got["result"]["states"]) == R"({"seat":"2"})");
  }
  constexpr int kReads = 60;
  for (int i = 0; i < kReads; ++i) {
    auto who = must(*bob, "bob", "who_now?channel=room-1&msg_id=w" + std::to_string(i));
    CHECK(members_of(who) == std::set<std::string>{"alice", "bob"});
    auto subs =
        must(*bob, "bob", "subscribed?channel=room-1&topic=input&msg_id=q" + std::to_string(i));
    CHECK(json_text(subs["result"]).find("alice") != std::string::npos);
  }
  // Every gateway took a share, and the shares add up to the requests sent (none twice).
  double total = 0;
  for (std::size_t i = 0; i < cluster.members.size(); ++i) {
    const double handled = cluster.members[i]->metric("rtm_requests_total") - before[i];
    CHECK(handled > 0);
    total += handled;
  }
  CHECK(total == doctest::Approx(2 + 2 + 1 + 1 + 1 + 6 + 2 * kReads));
  // The event of alice's join went out once: the next event on the channel is bob's.
  auto next = wait_event(*bob, "rtm/events/room-1", "member_joined");
  REQUIRE(next);
  CHECK(std::string((*next)["uid"].GetString()) == "bob");
}

TEST_CASE(
    "cluster: kill -9 of one gateway under load loses no answered request and runs none twice") {
  Cluster cluster(
      "inbox:\n  deliver_on_login: false\n  max_messages_per_user: 10000\n"
      "auth:\n  token_warn_before_s: 2\n");
  const auto uri = cluster.broker.uri();
  auto alice = device(uri, "alice");
  auto carol = device(uri, "carol");
  login(*alice, "alice");
  login(*carol, "carol");
  must(*carol, "carol", "join?channel=room-9&msg_id=j");
  carol->subscribe("rtm/events/room-9");
  // dave's token expires during the test: one warning and one expiry, whoever fires them.
  auto dave = device(uri, "dave");
  login(*dave, "dave", 8);
  must(*dave, "dave", "join?channel=room-9&msg_id=j");

  // The load: alice sends numbered peer messages to bob, who is offline, so each one that
  // runs is kept in bob's inbox. Unanswered ones are sent again with the same msg_id, as an
  // MQTT client's retry would be: they must not run twice (neither the resend nor the first
  // copy, which the killed gateway reads when it is back).
  constexpr int kMessages = 150;
  std::atomic<int> answered{0};
  std::atomic<int> retries{0};
  std::atomic<bool> failed{false};
  std::thread load([&] {
    for (int n = 0; n < kMessages && !failed; ++n) {
      const std::string id = "m" + std::to_string(n);
      const std::string body = "{\"to\":\"bob\",\"message\":\"" + id + "\"}";
      bool ok = false;
      for (int attempt = 0; attempt < 15 && !ok; ++attempt) {
        if (attempt > 0) ++retries;
        try {
          auto d = request(*alice, "alice", "send_message?msg_id=" + id, body, "rtm", 1s);
          ok = answered_ok(d);
          if (!ok && d.IsObject() && d.HasMember("code")) break;  // an error answer: fail
        } catch (const std::exception&) {
          // No answer within 1 s: the broker gave it to the killed gateway's session, where
          // it waits for the restart. Sent again.
        }
      }
      if (!ok) {
        failed = true;
        break;
      }
      ++answered;
    }
  });
  auto wait_answered = [&](int n) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (answered < n && !failed && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return answered >= n;
  };
  REQUIRE(wait_answered(kMessages / 3));
  auto& victim = *cluster.members[1];
  victim.process->kill_hard();
  const int at_kill = answered;
  REQUIRE(wait_answered(at_kill + kMessages / 3));
  victim.process->start();
  Cluster::wait_member(victim);
  load.join();
  REQUIRE_MESSAGE(!failed, cluster.logs());
  CHECK(answered == kMessages);
  MESSAGE("requests sent again after no answer within 1 s: " << retries.load());

  // Each message is in bob's inbox exactly once, in order.
  auto bob = device(uri, "bob");
  login(*bob, "bob");
  std::vector<std::string> kept;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto d = must(*bob, "bob", "inbox_history?limit=500&msg_id=h" + std::to_string(page),
                  after.empty() ? "" : "{\"after\":\"" + after + "\"}");
    for (const auto& m : d["result"]["messages"].GetArray()) {
      kept.push_back(m["message"].GetString());
      after = m["id"].GetString();
    }
    if (!d["result"]["more"].GetBool()) break;
  }
  REQUIRE(kept.size() == kMessages);
  for (int n = 0; n < kMessages; ++n) CHECK(kept[n] == "m" + std::to_string(n));

  // Sessions made before the kill are all there, on every gateway.
  for (int i = 0; i < 9; ++i) {
    auto who = must(*carol, "carol", "who_now?channel=room-9&msg_id=w" + std::to_string(i));
    CHECK(members_of(who).count("carol") == 1);
  }
  // The restarted gateway takes requests again.
  const double before = victim.metric("rtm_requests_total");
  for (int i = 0; i < 12; ++i) must(*carol, "carol", "ping?msg_id=p" + std::to_string(i));
  CHECK(victim.metric("rtm_requests_total") > before);

  // dave's token: exactly one warning and one expiry, and one member_left on the channel.
  auto warned = wait_event(*dave, "rtm/u/dave/events/token", "token", "", 20s);
  auto left = wait_event(*carol, "rtm/events/room-9", "member_left", "", 20s);
  REQUIRE_MESSAGE(left, cluster.logs());
  CHECK(std::string((*left)["uid"].GetString()) == "dave");
  std::vector<std::string> token_events;
  if (warned)
    token_events.push_back((*warned)["state"].IsString() ? (*warned)["state"].GetString()
                                                         : json_text(*warned));
  for (const auto& m : dave->take("rtm/u/dave/events/token")) token_events.push_back(m.payload);
  // A second expiry or left event would come within the next moments if a second gateway
  // fired the same timer.
  CHECK_FALSE(wait_event(*carol, "rtm/events/room-9", "member_left", "", 1500ms));
  for (const auto& m : dave->take("rtm/u/dave/events/token")) token_events.push_back(m.payload);
  CAPTURE(token_events.size());
  CHECK(token_events.size() == 2);  // will_expire, expired
}

TEST_CASE("cluster: presence from a Will is handled once, and Redis away means UNAVAILABLE") {
  Cluster cluster;
  const auto uri = cluster.broker.uri();
  auto alice = device(uri, "alice");
  auto bob = device(uri, "bob");
  login(*alice, "alice");
  login(*bob, "bob");
  must(*alice, "alice", "watch?users=bob&msg_id=w");
  // bob's Will, as the broker would publish it: one gateway ends his session, alice hears once.
  bob->publish("rtm/presence/bob", R"({"state":"offline","session":"bob-conn"})", 1, true);
  auto offline = wait_event(*alice, "rtm/u/alice/events/presence", "presence", "offline");
  REQUIRE_MESSAGE(offline, cluster.logs());
  CHECK_FALSE(wait_event(*alice, "rtm/u/alice/events/presence", "presence", "", 1500ms));
  auto where = must(*alice, "alice", "where_now?uid=bob&msg_id=wn");
  CHECK(where["result"]["channels"].Size() == 0);

  // Redis goes away: requests are answered UNAVAILABLE, none hangs, no gateway leaves.
  cluster.redis.stop();
  for (int i = 0; i < 6; ++i) {
    auto d = request(*alice, "alice", "who_now?channel=x&msg_id=u" + std::to_string(i));
    REQUIRE(d.IsObject());
    CHECK(std::string(d["error"].GetString()) == "UNAVAILABLE");
  }
  cluster.redis.start();
  // Back: the state is still there, answered by any gateway.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool served = false;
  for (int i = 0; !served && std::chrono::steady_clock::now() < deadline; ++i) {
    auto d = request(*alice, "alice", "where_now?uid=alice&msg_id=back" + std::to_string(i));
    served = answered_ok(d);
  }
  CHECK_MESSAGE(served, cluster.logs());
  for (auto& m : cluster.members) CHECK(m->process->running());
}

TEST_CASE("cluster: SDK clients run the RTM flow across three gateways") {
  Cluster cluster;
  const auto uri = cluster.broker.uri();
  Peer host(uri, "host-a");
  Peer player(uri, "player-b");
  REQUIRE(host->login().ok());
  REQUIRE(player->login().ok());
  auto room = host->stream_channel("room-42");
  REQUIRE(room.join().ok());
  auto proom = player->stream_channel("room-42");
  auto snap = proom.join();
  REQUIRE_MESSAGE(snap.ok(), snap.status().to_string());
  CHECK(snap->members == std::vector<std::string>{"host-a", "player-b"});
  REQUIRE(host.wait_event(sdk::ChannelEventType::member_joined, "player-b"));
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_joined, "player-b"));
  auto sub = room.subscribe_topic("input", {"player-b"});
  REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
  CHECK(sub->all_ok());
  // Reads through whichever gateway gets them see the same subscription.
  for (int i = 0; i < 6; ++i) {
    auto listed = room.subscribed_users("input");
    REQUIRE(listed.ok());
    CHECK(*listed == std::vector<std::string>{"player-b"});
  }
  // The data plane does not touch the gateways: in order, intact.
  for (int i = 0; i < 100; ++i) REQUIRE(proom.publish_topic("input", "f" + std::to_string(i)).ok());
  for (int i = 0; i < 100; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "frame " << i << " missing");
    CHECK(m->payload == "f" + std::to_string(i));
  }
  REQUIRE(proom.leave().ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::member_left, "player-b"));
  REQUIRE(player->logout().ok());
  REQUIRE(host->logout().ok());
}
