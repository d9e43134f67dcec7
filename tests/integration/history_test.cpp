// Channel history and recovery (issue 16) against the real gateway and a real Mosquitto:
// a player whose network drops for 10 s while 600 frames go by gets every one of them, in
// order and once, when it is back, and is told recovery was complete; with a history
// shorter than the gap it is told it was not. The history operation over MQTT for members.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"
#include "tcp_proxy.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

GatewayOptions history_options() {
  GatewayOptions options;
  options.extra_yaml =
      "history:\n"
      "  streams:\n"
      "    - {channel: arena, topic: short, size: 100, age_s: 300}\n"
      "    - {channel: arena, topic: \"*\", size: 1000, age_s: 300}\n";
  return options;
}

std::string frame(int i) {
  return "frame-" + std::to_string(i);
}

// Waits until `count` messages from `publisher` arrived; returns them in arrival order.
std::vector<sdk::MessageEvent> collect(Peer& p, const std::string& topic, std::size_t count,
                                       std::chrono::milliseconds timeout = 20000ms) {
  std::vector<sdk::MessageEvent> out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < count) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) break;
    auto m = p.messages.wait([&](const sdk::MessageEvent& e) { return e.topic == topic; }, left);
    if (!m) break;
    out.push_back(std::move(*m));
  }
  return out;
}

// alice publishes in arena/`topic`; bob (through a proxy that can cut his network)
// subscribes to her.
struct Arena {
  Setup s{history_options()};
  TcpProxy proxy{s.broker.port()};
  Peer alice{s.broker.uri(), "alice"};
  Peer bob{proxy.uri(), "bob"};
  std::string topic;
  explicit Arena(std::string topic_name) : topic(std::move(topic_name)) {
    alice.login();
    bob.login();
    REQUIRE(alice->stream_channel("arena").join().ok());
    REQUIRE(bob->stream_channel("arena").join().ok());
    REQUIRE(alice->stream_channel("arena").join_topic(topic).ok());
    auto sub = bob->stream_channel("arena").subscribe_topic(topic, {"alice"});
    REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
    REQUIRE(sub->all_ok());
  }
  void publish(int from, int to, std::chrono::milliseconds pace = 0ms) {
    auto room = alice->stream_channel("arena");
    for (int i = from; i <= to; ++i) {
      REQUIRE(room.publish_topic(topic, frame(i), sdk::PublishOptions{1}).ok());
      if (pace > 0ms) std::this_thread::sleep_for(pace);  // the game's frame rate
    }
  }
  // Live frames reach bob before his network goes.
  void warm_up(int n) {
    // The baseline (history with limit 0) follows the subscribe: a first frame that bob
    // receives proves it is counting.
    publish(1, n);
    auto live = collect(bob, topic, static_cast<std::size_t>(n));
    REQUIRE(live.size() == static_cast<std::size_t>(n));
    for (const auto& m : live) CHECK_FALSE(m.recovered);
  }
  void cut() {
    proxy.cut();
    REQUIRE(bob.wait_state(sdk::ConnectionState::reconnecting));
  }
};

}  // namespace

TEST_CASE(
    "history: a player offline for 10 s while 600 frames are published gets all of them in "
    "order and once after it reconnects, and recovery is complete") {
  Arena a("input");
  a.warm_up(30);
  a.cut();
  // 600 frames at 60 per second: 10 s without bob.
  a.publish(31, 630, 16ms);
  a.proxy.restore();
  // The game goes on while bob reconnects and recovers: these frames race his recovery
  // (some come live during it, some are in the history it reads, some come after).
  std::thread more([&a] { a.publish(631, 690, 16ms); });
  REQUIRE(a.bob.wait_state(sdk::ConnectionState::restored, 20000ms));
  auto recovery = a.bob.recoveries.next(20000ms);
  more.join();
  REQUIRE(recovery);
  CHECK(recovery->channel == "arena");
  CHECK(recovery->topic == "input");
  CHECK_MESSAGE(recovery->complete, recovery->reason);
  CHECK(recovery->recovered >= 600);
  auto got = collect(a.bob, "input", 660);
  REQUIRE(got.size() == 660);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].payload == frame(static_cast<int>(i) + 31));
    CHECK(got[i].publisher == "alice");
    // What was missed comes first, from the history, then live frames.
    CHECK(got[i].recovered == (i < recovery->recovered));
  }
  CHECK(got[0].offset == 31);
  // Once each: nothing more arrives.
  CHECK_FALSE(a.bob.messages.next(300ms));
}

TEST_CASE(
    "history: with a history shorter than the gap, recovery delivers what is kept in order and "
    "says it is incomplete") {
  Arena a("short");  // 100 messages kept
  a.warm_up(10);
  a.cut();
  a.publish(11, 310);  // 300 while bob is away: 200 of them are no longer kept
  a.proxy.restore();
  REQUIRE(a.bob.wait_state(sdk::ConnectionState::restored, 20000ms));
  auto recovery = a.bob.recoveries.next(20000ms);
  REQUIRE(recovery);
  CHECK_FALSE(recovery->complete);
  CHECK_MESSAGE(recovery->reason.find("no longer kept") != std::string::npos, recovery->reason);
  CHECK(recovery->recovered == 100);
  auto got = collect(a.bob, "short", 100);
  REQUIRE(got.size() == 100);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].payload == frame(static_cast<int>(i) + 211));
    CHECK(got[i].recovered);
  }
  // Back to live, counting from where the history ended.
  a.publish(311, 320);
  auto live = collect(a.bob, "short", 10);
  REQUIRE(live.size() == 10);
  CHECK(live.front().payload == frame(311));
  CHECK_FALSE(live.front().recovered);
}

TEST_CASE(
    "history: members page through a stream over MQTT, others are refused, and a stream "
    "without history says so") {
  Setup s(history_options());
  Peer alice(s.broker.uri(), "alice");
  Peer carol(s.broker.uri(), "carol");
  alice.login();
  carol.login();
  auto room = alice->stream_channel("arena");
  REQUIRE(room.join().ok());
  REQUIRE(room.join_topic("moves").ok());
  for (int i = 1; i <= 25; ++i) {
    REQUIRE(room.publish_topic("moves", frame(i), sdk::PublishOptions{1}).ok());
  }
  std::string bytes("\x00\xff\x01", 3);  // not UTF-8: base64 on the wire, bytes here
  REQUIRE(room.publish_topic("moves", bytes, sdk::PublishOptions{1}).ok());
  sdk::HistoryQuery where;
  where.limit = 0;
  sdk::Result<sdk::HistoryPage> page = room.history("moves", where);
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && page.ok() && page->top < 26) {
    std::this_thread::sleep_for(20ms);  // the gateway reads the stream from the broker
    page = room.history("moves", where);
  }
  REQUIRE_MESSAGE(page.ok(), page.status().to_string());
  REQUIRE(page->top == 26);

  sdk::HistoryQuery q;
  q.since = 0;
  q.epoch = page->epoch;
  q.limit = 10;
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto p = room.history("moves", q);
    REQUIRE_MESSAGE(p.ok(), p.status().to_string());
    CHECK(p->complete);
    for (const auto& m : p->messages) got.push_back(m.payload);
    if (!p->more) break;
    q.after = p->messages.back().offset;
  }
  REQUIRE(got.size() == 26);
  CHECK(got[0] == frame(1));
  CHECK(got[24] == frame(25));
  CHECK(got[25] == bytes);

  // carol is not a member; lobby keeps no history.
  auto refused = carol->stream_channel("arena").history("moves");
  CHECK(refused.status().is(sdk::ErrorCode::not_joined));
  REQUIRE(carol->stream_channel("lobby").join().ok());
  auto none = carol->stream_channel("lobby").history("moves");
  CHECK(none.status().is(sdk::ErrorCode::no_history));
}
