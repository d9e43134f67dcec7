// The RTM operations as clients see them, without a broker (rtm_harness.hpp): session
// events, token timers on a fake clock, presence, and a restart on the sqlite backend. Each
// test checks the topics and JSON of what the gateway publishes, and their order.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "rtm_harness.hpp"

namespace {

using rtm::test::text;

using rtm::gateway::Message;
using rtm::test::RtmHarness;
using rtm::test::Sent;

// "event/state/reason" of the user events and channel events sent to `topic` from `from`
// on, e.g. "session/replaced/logged in elsewhere" or "member_left/alice/replaced".
std::vector<std::string> events(const RtmHarness& h, const std::string& topic, std::size_t from) {
  std::vector<std::string> out;
  for (auto i : h.sent_to(topic, from)) {
    const auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    std::string line = text(e, "event");
    line += "/" + (e.HasMember("state") ? text(e, "state") : text(e, "uid"));
    if (e.HasMember("topic")) line += "/" + text(e, "topic");
    if (e.HasMember("reason")) line += "/" + text(e, "reason");
    out.push_back(line);
  }
  return out;
}
using Lines = std::vector<std::string>;

Message presence(const std::string& uid, const std::string& state, const std::string& connection,
                 bool retained) {
  return Message{"rtm/presence/" + uid,
                 R"({"state":")" + state + R"(","session":")" + connection + R"("})", 1, retained};
}

// alice logged in for 120 s, with the warning 30 s before the expiry.
struct TokenRun : RtmHarness {
  TokenRun() : RtmHarness(warning_30s()) { login("alice", 120); }
  static rtm::gateway::Config warning_30s() {
    auto config = rtm::test::harness_config();
    config.auth.token_warn_before_s = 30;
    return config;
  }
  const std::int64_t first_exp_s = now / 1000 + 120;
};

std::size_t index_of(const RtmHarness& h, const std::string& topic, std::size_t from) {
  const auto at = h.sent_to(topic, from);
  REQUIRE_MESSAGE(!at.empty(), "nothing on " << topic);
  return at.front();
}

}  // namespace

TEST_SUITE("rtm operations") {

TEST_CASE("rtm: login says logged_in and a second login replaces the first and leaves its channels") {
  RtmHarness h;
  const auto first = h.login("alice");
  const std::string first_id = text(first, "session_id");
  const auto logged_in = h.only("rtm/u/alice/events/session");
  CHECK(text(logged_in, "event") == "session");
  CHECK(text(logged_in, "state") == "logged_in");
  CHECK(text(logged_in, "session_id") == first_id);
  CHECK(logged_in["ts"].GetInt64() == h.now);
  CHECK_FALSE(logged_in.HasMember("reason"));

  h.enter("bob", "lobby");
  h.ok("alice", "join", "channel=lobby");
  h.ok("alice", "join_topic", "channel=lobby&topic=input");

  h.now += 1000;
  const auto mark = h.outbox.sent.size();
  const auto answer = h.send("alice", "login", "", "{\"token\":\"" + h.token("alice") + "\"}");
  const auto second = rtm::test::parse_json(h.outbox.sent[answer].payload);
  const std::string second_id = text(second["result"], "session_id");
  CHECK(second_id != first_id);

  // The old session is told it was replaced, its channels see it leave, then the new one
  // is logged in; all before the answer.
  CHECK(events(h, "rtm/u/alice/events/session", mark) ==
        Lines{"session/replaced/logged in elsewhere", "session/logged_in"});
  const auto sessions = h.sent_to("rtm/u/alice/events/session", mark);
  CHECK(text(rtm::test::parse_json(h.outbox.sent[sessions[0]].payload), "session_id") == first_id);
  CHECK(text(rtm::test::parse_json(h.outbox.sent[sessions[1]].payload), "session_id") == second_id);
  CHECK(events(h, "rtm/events/lobby", mark) ==
        Lines{"publisher_left/alice/input/replaced", "member_left/alice/replaced"});
  const auto left = index_of(h, "rtm/events/lobby", mark);
  CHECK(sessions[0] < left);
  CHECK(left < sessions[1]);
  CHECK(sessions[1] < answer);

  const auto who = h.ok("bob", "who_now", "channel=lobby");
  REQUIRE(who["members"].Size() == 1);
  CHECK(std::string(who["members"][0].GetString()) == "bob");
}

TEST_CASE("rtm: logout ends the session and corrects the user's presence, retained") {
  RtmHarness h;
  h.deliver(presence("alice", "online", "conn-1", true));
  h.enter("alice", "lobby");
  h.enter("bob", "lobby");
  h.ok("bob", "watch", "users=alice");

  const auto mark = h.outbox.sent.size();
  const auto answer = h.send("alice", "logout", "");
  CHECK(events(h, "rtm/u/alice/events/session", mark) == Lines{"session/ended/logged_out"});
  CHECK(events(h, "rtm/events/lobby", mark) == Lines{"member_left/alice/logged_out"});
  CHECK(events(h, "rtm/u/bob/events/presence", mark) == Lines{"presence/offline"});

  const auto corrections = h.sent_to("rtm/presence/alice", mark);
  REQUIRE(corrections.size() == 1);
  const auto& correction = h.outbox.sent[corrections[0]];
  CHECK(correction.retain);
  CHECK(correction.qos == 1);
  const auto p = rtm::test::parse_json(correction.payload);
  CHECK(text(p, "state") == "offline");
  CHECK(text(p, "session") == "conn-1");
  CHECK(text(p, "by") == "gateway");
  CHECK(text(p, "reason") == "logged_out");
  CHECK(corrections[0] < answer);

  // The correction comes back from the broker: already applied, nothing more happens.
  const auto after = h.outbox.sent.size();
  h.deliver(Message{correction.topic, correction.payload, 1, false});
  CHECK(h.outbox.sent.size() == after);
  CHECK(h.error("alice", "join", "channel=lobby") == "NOT_LOGGED_IN");
}

TEST_CASE("rtm: token timers warn token_warn_before_s ahead, then expire and end the session") {
  TokenRun h;
  const std::int64_t exp_s = h.first_exp_s;
  h.ok("alice", "join", "channel=lobby");
  h.ok("alice", "join_topic", "channel=lobby&topic=input");
  h.enter("bob", "lobby");
  const auto mark = h.outbox.sent.size();

  h.advance_to(exp_s * 1000 - 30001);
  CHECK(h.outbox.sent.size() == mark);
  h.advance_to(exp_s * 1000 - 30000);
  const auto warning = h.only("rtm/u/alice/events/token", mark);
  CHECK(text(warning, "event") == "token");
  CHECK(text(warning, "state") == "will_expire");
  CHECK(warning["expires_at"].GetInt64() == exp_s);
  CHECK(warning["ts"].GetInt64() == exp_s * 1000 - 30000);

  const auto warned = h.outbox.sent.size();
  h.advance_to(exp_s * 1000 - 1);
  CHECK(h.outbox.sent.size() == warned);
  h.advance_to(exp_s * 1000);
  const auto expired = h.only("rtm/u/alice/events/token", warned);
  CHECK(text(expired, "state") == "expired");
  CHECK(expired["expires_at"].GetInt64() == exp_s);
  CHECK(events(h, "rtm/u/alice/events/session", warned) == Lines{"session/ended/token_expired"});
  CHECK(events(h, "rtm/events/lobby", warned) ==
        Lines{"publisher_left/alice/input/token_expired", "member_left/alice/token_expired"});
  CHECK(index_of(h, "rtm/u/alice/events/token", warned) <
        index_of(h, "rtm/u/alice/events/session", warned));
  CHECK(h.error("alice", "join", "channel=lobby") == "NOT_LOGGED_IN");
  // Nothing of alice's is left to fire.
  const auto done = h.outbox.sent.size();
  h.advance_to(exp_s * 1000 + 600 * 1000);
  CHECK(h.outbox.sent.size() == done);
}

TEST_CASE("rtm: renew_token moves the warning and the expiry") {
  TokenRun h;
  const std::int64_t first_exp_s = h.first_exp_s;
  h.now += 60 * 1000;
  const std::int64_t exp_s = h.now / 1000 + 300;
  const auto renewed =
      h.ok("alice", "renew_token", "", "{\"token\":\"" + h.token("alice", 300) + "\"}");
  CHECK(renewed["expires_at"].GetInt64() == exp_s);
  const auto mark = h.outbox.sent.size();

  // The old times pass without a word.
  h.advance_to(first_exp_s * 1000 - 30000);
  h.advance_to(first_exp_s * 1000);
  CHECK(h.outbox.sent.size() == mark);
  CHECK(h.error("alice", "join", "channel=lobby") == "OK");

  const auto before = h.outbox.sent.size();
  h.advance_to(exp_s * 1000 - 30000);
  const auto warning = h.only("rtm/u/alice/events/token", before);
  CHECK(text(warning, "state") == "will_expire");
  CHECK(warning["expires_at"].GetInt64() == exp_s);
  h.advance_to(exp_s * 1000);
  CHECK(events(h, "rtm/u/alice/events/token", before) == Lines{"token/will_expire", "token/expired"});
  CHECK(events(h, "rtm/u/alice/events/session", before) == Lines{"session/ended/token_expired"});
  CHECK(events(h, "rtm/events/lobby", before) == Lines{"member_left/alice/token_expired"});
}

TEST_CASE("rtm: presence online and offline reach the watchers but an older connection's offline does not") {
  RtmHarness h;
  h.login("bob");
  h.ok("bob", "watch", "users=alice");
  const std::string watcher = "rtm/u/bob/events/presence";

  auto mark = h.outbox.sent.size();
  h.deliver(presence("alice", "online", "conn-1", true));  // retained, as read at start-up
  const auto online = h.only(watcher, mark);
  CHECK(text(online, "event") == "presence");
  CHECK(text(online, "uid") == "alice");
  CHECK(text(online, "state") == "online");
  CHECK(online["ts"].GetInt64() == h.now);

  // A Will of a connection before conn-1 arrives late: alice is still online.
  mark = h.outbox.sent.size();
  h.deliver(presence("alice", "offline", "conn-0", false));
  CHECK(h.outbox.sent.size() == mark);
  // Again online on the same connection: no change, no event.
  h.deliver(presence("alice", "online", "conn-1", false));
  CHECK(h.outbox.sent.size() == mark);

  h.deliver(presence("alice", "offline", "conn-1", false));
  CHECK(events(h, watcher, mark) == Lines{"presence/offline"});
  const auto watched = h.ok("bob", "watch", "users=alice");
  CHECK(text(watched["users"][0], "state") == "offline");

  mark = h.outbox.sent.size();
  h.deliver(presence("alice", "online", "conn-2", false));
  CHECK(events(h, watcher, mark) == Lines{"presence/online"});
}

TEST_CASE("rtm: the offline presence of a user in session ends it as timed out") {
  RtmHarness h;
  h.deliver(presence("alice", "online", "conn-1", false));
  h.enter("alice", "lobby");
  h.ok("alice", "join_topic", "channel=lobby&topic=input");
  h.enter("bob", "lobby");
  h.ok("bob", "watch", "users=alice");

  const auto mark = h.outbox.sent.size();
  h.deliver(presence("alice", "offline", "conn-1", false));
  CHECK(events(h, "rtm/u/alice/events/session", mark) == Lines{"session/ended/connection_lost"});
  CHECK(events(h, "rtm/events/lobby", mark) ==
        Lines{"publisher_left/alice/input/connection_lost", "member_timed_out/alice/connection_lost"});
  CHECK(events(h, "rtm/u/bob/events/presence", mark) == Lines{"presence/offline"});
  // The broker's Will said it already: no correction of the presence topic.
  CHECK(h.sent_to("rtm/presence/alice", mark).empty());
  const auto who = h.ok("bob", "who_now", "channel=lobby");
  REQUIRE(who["members"].Size() == 1);
  CHECK(std::string(who["members"][0].GetString()) == "bob");
}

TEST_CASE("rtm: after a restart on sqlite the state is back, repeats are answered from the "
          "dedup window, and a token that expired meanwhile ends its session at once") {
  char pattern[] = "/tmp/rtm-restart-test-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  auto config = rtm::test::harness_config();
  config.state.backend = "sqlite";
  config.state.path = dir + "/state.db";
  {
    RtmHarness h(config);
    const std::int64_t start = h.now;
    const std::int64_t exp_s = start / 1000 + 3600;
    h.login("alice", 3600);
    h.ok("alice", "join", "channel=lobby");
    h.login("bob", 7200);
    h.ok("bob", "join", "channel=lobby");
    h.ok("bob", "join_topic", "channel=lobby&topic=input");
    const auto answer = h.send("alice", "subscribe", "channel=lobby&topic=input&users=bob");
    const auto request_topic =
        "rtm/req/alice/subscribe?channel=lobby&topic=input&users=bob&msg_id=" +
        std::to_string(h.msg_id);
    const Sent first = h.outbox.sent[answer];
    CHECK(rtm::test::parse_json(first.payload)["code"].GetInt() == 0);

    // A quick restart: the same request again (a QoS 1 redelivery) gets the same bytes.
    h.restart(start + 5000);
    auto mark = h.outbox.sent.size();
    h.advance_to(h.now);
    CHECK(h.outbox.sent.size() == mark);  // no timer is due
    h.deliver(Message{request_topic, "", 1, false});
    REQUIRE(h.outbox.sent.size() == mark + 1);
    CHECK(h.outbox.sent.back().topic == first.topic);
    CHECK(h.outbox.sent.back().payload == first.payload);
    CHECK(h.core->counters().replayed == 1);
    // Members, publishers and subscriptions are back.
    const auto who = h.ok("bob", "who_now", "channel=lobby");
    REQUIRE(who["members"].Size() == 2);
    CHECK(std::string(who["members"][0].GetString()) == "alice");
    CHECK(std::string(who["members"][1].GetString()) == "bob");
    const auto subscribed = h.ok("alice", "subscribed", "channel=lobby&topic=input");
    REQUIRE(subscribed["users"].Size() == 1);
    CHECK(std::string(subscribed["users"][0].GetString()) == "bob");

    // Down past alice's expiry: the first turn after the start publishes what was due.
    h.restart((exp_s + 60) * 1000);
    mark = h.outbox.sent.size();
    CHECK(h.core->held_messages() == 0);
    h.advance_to(h.now);
    CHECK(events(h, "rtm/u/alice/events/token", mark) == Lines{"token/will_expire", "token/expired"});
    const auto expired = h.only("rtm/u/alice/events/token", h.sent_to("rtm/u/alice/events/token", mark)[1]);
    CHECK(expired["expires_at"].GetInt64() == exp_s);
    CHECK(events(h, "rtm/u/alice/events/session", mark) == Lines{"session/ended/token_expired"});
    CHECK(events(h, "rtm/events/lobby", mark) == Lines{"member_left/alice/token_expired"});
    CHECK(h.sent_to("rtm/u/bob/events/token", mark).empty());
    CHECK(h.error("alice", "subscribed", "channel=lobby&topic=input") == "NOT_LOGGED_IN");
    const auto left = h.ok("bob", "who_now", "channel=lobby");
    REQUIRE(left["members"].Size() == 1);
    CHECK(std::string(left["members"][0].GetString()) == "bob");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // TEST_SUITE

TEST_CASE("rtm: a correctly signed token with an absurd expiry logs in with a bounded one") {
  RtmHarness h;
  // exp * 1000 would overflow a 64-bit millisecond count.
  const std::int64_t absurd = std::numeric_limits<std::int64_t>::max() / 10;
  const std::string token = rtm::gateway::sign_token(
      {"alice", h.now / 1000, absurd, std::nullopt, std::nullopt}, h.config.auth.token_secret);
  const auto result = h.ok("alice", "login", "", "{\"token\":\"" + token + "\"}");
  const std::int64_t expires_at = result["expires_at"].GetInt64();
  CHECK(expires_at > h.now / 1000 + 100LL * 365 * 24 * 3600);  // far in the future
  CHECK(expires_at < absurd);
  CHECK(expires_at <= std::numeric_limits<std::int64_t>::max() / 1000);
  h.ok("alice", "join", "channel=lobby");  // the session is there and works
}

TEST_CASE("rtm: a name with '*' is refused everywhere, never used as a wildcard") {
  RtmHarness h;
  h.login("alice");
  CHECK(h.error("alice", "join", "channel=*") == "INVALID_NAME");
  CHECK(h.error("alice", "join", "channel=room*") == "INVALID_NAME");
  h.ok("alice", "join", "channel=room");
  CHECK(h.error("alice", "join_topic", "channel=room&topic=*") == "INVALID_NAME");
  CHECK(h.error("alice", "subscribe", "channel=room&topic=input", R"({"users":["*"]})") ==
        "INVALID_NAME");
  CHECK(h.error("alice", "watch", "", R"({"users":["bo*b"]})") == "INVALID_NAME");
  // A request in the name of a uid with '*' is answered on its mirrored topic, refused.
  const auto at = h.send("a*", "ping", "");
  CHECK(h.outbox.sent[at].payload.find("INVALID_NAME") != std::string::npos);
}
