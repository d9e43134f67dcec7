// The bridge without a broker (rtm_harness.hpp): device messages offered first to the fast
// path, as the broker link's thread does, and to the loop when it defers them, as the
// Gateway does (gateway/app/src/gateway.cpp). What the recording outbox saw, in order, is
// what subscribers would see.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm_harness.hpp"

namespace {

using rtm::gateway::FastResult;
using rtm::gateway::Message;
using rtm::test::RtmHarness;

rtm::gateway::Config coplay_config() {
  return rtm::gateway::load_config_text(std::string(R"(
auth:
  token_secret: ")") + rtm::test::kHarnessSecret + R"("
mapping:
  rules:
    - name: controller-input
      direction: inbound
      source: "coplay/{room}/{player}/input"
      target:
        channel: "{room}"
        topic: input
        publisher: "{player}"
      qos: 0
)");
}

// The broker link's thread: the fast path first; what it defers is marked and queued for
// the loop, as Gateway::on_message does.
struct Link {
  RtmHarness& h;
  std::vector<Message> queued;  // for the loop, in arrival order

  FastResult arrive(const std::string& topic, const std::string& payload) {
    Message m{topic, payload, 0, false};
    const auto result = h.core->fast_path(m);
    if (result == FastResult::handled) return result;
    m.deferred = result == FastResult::deferred;
    queued.push_back(std::move(m));
    return result;
  }
  // The loop takes what waits, one turn.
  void run_loop() {
    for (const auto& m : queued) h.core->on_message(m);
    queued.clear();
    h.core->run_idle_work();
    h.core->end_turn();
  }
};

// "topic payload" of every message from `from` on, but the answers to requests.
std::vector<std::string> published(const RtmHarness& h, std::size_t from) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < h.outbox.sent.size(); ++i) {
    const auto& s = h.outbox.sent[i];
    if (s.topic.find("/res/") != std::string::npos) continue;
    std::string line = s.topic;
    if (s.topic.rfind("rtm/events/", 0) == 0) {
      const auto e = rtm::test::parse_json(s.payload);
      line += std::string(" ") + e["event"].GetString() + " " + e["uid"].GetString();
    } else {
      line += " " + s.payload;
    }
    out.push_back(line);
  }
  return out;
}
using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("bridge: a device's first message goes through the loop, and its next ones wait for it") {
  RtmHarness h(coplay_config());
  h.enter("host-a", "room-42");
  Link link{h, {}};
  const auto mark = h.outbox.sent.size();

  // p2 is not a registered publisher yet: the loop must register it first.
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-1") == FastResult::deferred);
  // Frames that come before the loop did so wait behind it, never overtake it.
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-2") == FastResult::deferred);
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-3") == FastResult::deferred);
  CHECK(h.outbox.sent.size() == mark);

  link.run_loop();
  CHECK(published(h, mark) == Lines{"rtm/events/room-42 member_joined p2",
                                    "rtm/events/room-42 publisher_joined p2",
                                    "rtm/ch/room-42/input/p2 frame-1",
                                    "rtm/ch/room-42/input/p2 frame-2",
                                    "rtm/ch/room-42/input/p2 frame-3"});

  // Registered and nothing waiting: the fast path relays on the link's thread, in order.
  const auto fast = h.outbox.sent.size();
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-4") == FastResult::handled);
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-5") == FastResult::handled);
  CHECK(link.queued.empty());
  CHECK(published(h, fast) ==
        Lines{"rtm/ch/room-42/input/p2 frame-4", "rtm/ch/room-42/input/p2 frame-5"});

  // A new device in between: its first frame goes to the loop, and p2's next frame, fast
  // as it could be, waits behind it too.
  const auto mixed = h.outbox.sent.size();
  CHECK(link.arrive("coplay/room-42/p3/input", "p3-frame-1") == FastResult::deferred);
  CHECK(link.arrive("coplay/room-42/p2/input", "frame-6") == FastResult::deferred);
  CHECK(h.outbox.sent.size() == mixed);
  link.run_loop();
  CHECK(published(h, mixed) == Lines{"rtm/events/room-42 member_joined p3",
                                     "rtm/events/room-42 publisher_joined p3",
                                     "rtm/ch/room-42/input/p3 p3-frame-1",
                                     "rtm/ch/room-42/input/p2 frame-6"});
  CHECK(link.arrive("coplay/room-42/p3/input", "p3-frame-2") == FastResult::handled);

  // Not a bridge topic: the fast path leaves it to the loop untouched.
  CHECK(link.arrive("rtm/req/host-a/ping?msg_id=99", "") == FastResult::not_mine);
  CHECK_FALSE(link.queued.back().deferred);

  const auto who = h.ok("host-a", "who_now", "channel=room-42");
  REQUIRE(who["members"].Size() == 3);
  CHECK(std::string(who["members"][1].GetString()) == "p2");
  CHECK(std::string(who["members"][2].GetString()) == "p3");
}

TEST_CASE("bridge: a device that leaves its channel goes through the loop again") {
  RtmHarness h(coplay_config());
  h.enter("host-a", "room-7");
  Link link{h, {}};
  CHECK(link.arrive("coplay/room-7/p2/input", "a") == FastResult::deferred);
  link.run_loop();
  CHECK(link.arrive("coplay/room-7/p2/input", "b") == FastResult::handled);
  // p2's status says offline (as a presence rule carries it): its session ends, so the
  // registration the fast path remembered is stale and the next frame registers p2 again.
  REQUIRE(h.api->device_presence("p2", false));
  const auto mark = h.outbox.sent.size();
  CHECK(link.arrive("coplay/room-7/p2/input", "c") == FastResult::deferred);
  link.run_loop();
  CHECK(published(h, mark) == Lines{"rtm/events/room-7 member_joined p2",
                                    "rtm/events/room-7 publisher_joined p2",
                                    "rtm/ch/room-7/input/p2 c"});
}
