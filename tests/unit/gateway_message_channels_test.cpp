// Message channels and channel tokens as clients see them, without a broker
// (rtm_harness.hpp): subscribe_channel / unsubscribe_channel answers, presence events on
// P/mcevents/{channel} only for presence subscribers, the grant records the broker gets,
// channel token warnings and expiry on a fake clock, renew_channel_token, and the timers
// after a restart on the sqlite backend.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "rtm_harness.hpp"

namespace {

using rtm::test::text;

using rtm::test::RtmHarness;

// "event/uid/reason" of what was sent to `topic` from `from` on.
std::vector<std::string> events(const RtmHarness& h, const std::string& topic, std::size_t from) {
  std::vector<std::string> out;
  for (auto i : h.sent_to(topic, from)) {
    auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    std::string line = text(e, "event") + "/" + text(e, "uid");
    if (e.HasMember("reason")) line += "/" + text(e, "reason");
    out.push_back(line);
  }
  return out;
}

// "state@channel" of the token events of `uid` from `from` on.
std::vector<std::string> token_events(const RtmHarness& h, const std::string& uid,
                                      std::size_t from) {
  std::vector<std::string> out;
  for (auto i : h.sent_to("rtm/u/" + uid + "/events/token", from)) {
    auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    out.push_back(text(e, "state") + "@" + (e.HasMember("channel") ? text(e, "channel") : "") +
                  (e.HasMember("channel_type") ? "/" + text(e, "channel_type") : ""));
  }
  return out;
}

std::string channel_token(const RtmHarness& h, const std::string& uid, const std::string& channel,
                          std::int64_t ttl_s) {
  return rtm::gateway::sign_token({uid, h.now / 1000, h.now / 1000 + ttl_s, std::nullopt, channel},
                                  h.config.auth.token_secret);
}

std::string token_body(const std::string& token) {
  return "{\"token\":\"" + token + "\"}";
}

std::vector<std::string> names(const rapidjson::Value& list) {
  std::vector<std::string> out;
  for (const auto& v : list.GetArray()) out.emplace_back(v.GetString());
  return out;
}

}  // namespace

TEST_CASE("message channels: subscribe without a join, presence events for presence subscribers") {
  RtmHarness h;
  for (const char* u : {"amy", "bob", "cid"}) h.login(u);
  auto a = h.ok("amy", "subscribe_channel", "channel=news&with_presence=true");
  CHECK(text(a, "filter") == "rtm/mc/news/#");
  CHECK(text(a, "publish_to") == "rtm/mc/news/amy");
  CHECK(text(a, "events_topic") == "rtm/mcevents/news");
  CHECK(names(a["members"]) == std::vector<std::string>{"amy"});
  const auto mark = h.outbox.sent.size();
  auto c = h.ok("cid", "subscribe_channel", "channel=news");  // without presence
  CHECK_FALSE(c.HasMember("members"));
  CHECK_FALSE(c.HasMember("events_topic"));
  auto b = h.ok("bob", "subscribe_channel", "channel=news&with_presence=true");
  CHECK(names(b["members"]) == std::vector<std::string>{"amy", "bob"});
  CHECK(events(h, "rtm/mcevents/news", mark) == std::vector<std::string>{"member_joined/bob"});
  // No join: the stream channel of that name knows nothing of them.
  CHECK(h.error("amy", "who_now", "channel=news") == "NOT_JOINED");

  auto m2 = h.outbox.sent.size();
  h.ok("bob", "subscribe_channel", "channel=news&with_presence=false");  // presence off
  h.ok("cid", "unsubscribe_channel", "channel=news");                    // never seen
  CHECK(h.error("cid", "unsubscribe_channel", "channel=news") == "NOT_SUBSCRIBED");
  h.ok("amy", "logout", "");
  CHECK(events(h, "rtm/mcevents/news", m2) ==
        std::vector<std::string>{"member_left/bob/presence_off", "member_left/amy/logged_out"});
  // bob takes presence back; amy, logged out, cannot subscribe.
  m2 = h.outbox.sent.size();
  h.ok("bob", "subscribe_channel", "channel=news&with_presence=true");
  CHECK(events(h, "rtm/mcevents/news", m2) == std::vector<std::string>{"member_joined/bob"});
  CHECK(h.error("amy", "subscribe_channel", "channel=news") == "NOT_LOGGED_IN");
  CHECK(h.error("bob", "subscribe_channel", "channel=a/b") == "INVALID_NAME");
  CHECK(h.error("bob", "subscribe_channel", "channel=news&with_presence=maybe") ==
        "INVALID_PARAMETER");
}

TEST_CASE("message channels: the limits are config keys and named in the refusal") {
  auto config = rtm::test::harness_config();
  config.limits.message_channels_per_user = 1;
  config.limits.subscribers_per_message_channel = 1;
  RtmHarness h(config);
  h.login("amy");
  h.login("bob");
  h.ok("amy", "subscribe_channel", "channel=news");
  auto doc = rtm::test::parse_json(
      h.outbox.sent[h.send("amy", "subscribe_channel", "channel=other")].payload);
  CHECK(text(doc, "error") == "LIMIT_CHANNELS");
  CHECK(text(doc, "message").find("limits.message_channels_per_user") != std::string::npos);
  doc = rtm::test::parse_json(
      h.outbox.sent[h.send("bob", "subscribe_channel", "channel=news")].payload);
  CHECK(text(doc, "error") == "LIMIT_MEMBERS");
  CHECK(text(doc, "message").find("limits.subscribers_per_message_channel") != std::string::npos);
}

TEST_CASE("message channels: the broker's grants follow subscriptions and sessions") {
  auto config = rtm::test::harness_config();
  config.enforcement.publish_grants = true;
  RtmHarness h(config);
  h.login("amy");
  const auto mark = h.outbox.sent.size();
  h.ok("amy", "subscribe_channel", "channel=news&with_presence=true");
  // The record goes out before the answer (the broker grants before the client is told).
  const auto grants = h.sent_to("rtm/gateway/grants", mark);
  REQUIRE_FALSE(grants.empty());
  CHECK(h.outbox.sent[grants.back()].payload.find("C amy +news") != std::string::npos);
  const auto answer =
      h.sent_to("rtm/u/amy/res/subscribe_channel?channel=news&with_presence=true&msg_id=" +
                    std::to_string(h.msg_id),
                mark);
  REQUIRE(answer.size() == 1);
  CHECK(grants.back() < answer[0]);
  const auto m2 = h.outbox.sent.size();
  h.ok("amy", "logout", "");
  bool revoked = false;
  for (auto i : h.sent_to("rtm/gateway/grants", m2)) {
    const auto& p = h.outbox.sent[i].payload;
    if (p.find("\nC amy\n") != std::string::npos) revoked = true;
  }
  CHECK(revoked);
  // A session without message channels costs no C record.
  const auto m3 = h.outbox.sent.size();
  h.login("bob");
  const auto bob_grants = h.sent_to("rtm/gateway/grants", m3);
  REQUIRE_FALSE(bob_grants.empty());
  for (auto i : bob_grants) {
    CHECK(h.outbox.sent[i].payload.find("\nS bob\n") != std::string::npos);
    CHECK(h.outbox.sent[i].payload.find("\nC ") == std::string::npos);
  }
}

TEST_CASE("channel tokens: required by config, warned, expired with the events, renewed") {
  auto config = rtm::test::harness_config();
  config.channels.stream_token_required = true;
  config.auth.token_warn_before_s = 10;
  RtmHarness h(config);
  h.login("amy");
  h.login("bob");
  CHECK(h.error("amy", "join", "channel=room") == "CHANNEL_TOKEN_REQUIRED");
  CHECK(h.error("amy", "join", "channel=room", token_body(h.token("amy"))) ==
        "TOKEN_CHANNEL_MISMATCH");
  CHECK(h.error("amy", "join", "channel=room", token_body(channel_token(h, "amy", "hall", 60))) ==
        "TOKEN_CHANNEL_MISMATCH");
  CHECK(h.error("amy", "join", "channel=room", token_body(channel_token(h, "bob", "room", 60))) ==
        "TOKEN_UID_MISMATCH");
  const auto t0 = h.now;
  auto joined =
      h.ok("amy", "join", "channel=room", token_body(channel_token(h, "amy", "room", 60)));
  CHECK(joined["token_expires_at"].GetInt64() == t0 / 1000 + 60);
  h.ok("bob", "join", "channel=room", token_body(channel_token(h, "bob", "room", 60)));
  // A join again without a token keeps the membership and its token.
  h.ok("amy", "join", "channel=room");

  auto mark = h.outbox.sent.size();
  h.advance_to(t0 + 50000);
  CHECK(token_events(h, "amy", mark) == std::vector<std::string>{"will_expire@room/stream"});
  // bob renews; amy does not.
  h.ok("bob", "renew_channel_token", "channel=room",
       token_body(channel_token(h, "bob", "room", 600)));
  CHECK(h.error("bob", "renew_channel_token", "channel=hall",
                token_body(channel_token(h, "bob", "hall", 600))) == "NOT_JOINED");
  mark = h.outbox.sent.size();
  h.advance_to(t0 + 60000);
  CHECK(token_events(h, "amy", mark) == std::vector<std::string>{"expired@room/stream"});
  CHECK(events(h, "rtm/events/room", mark) ==
        std::vector<std::string>{"member_left/amy/token_expired"});
  CHECK(token_events(h, "bob", mark).empty());
  // amy's session goes on; she is out of the channel, bob is in.
  CHECK(h.ok("bob", "who_now", "channel=room")["members"].Size() == 1);
  CHECK(h.api->has_session("amy"));
  mark = h.outbox.sent.size();
  h.advance_to(t0 + 700000);
  CHECK(token_events(h, "bob", mark) ==
        std::vector<std::string>{"will_expire@room/stream", "expired@room/stream"});
}

TEST_CASE("channel tokens: a message channel subscription expires, leaving with the event") {
  auto config = rtm::test::harness_config();
  config.channels.message_token_required = true;
  config.auth.token_warn_before_s = 5;
  RtmHarness h(config);
  h.login("amy");
  h.login("bob");
  CHECK(h.error("amy", "subscribe_channel", "channel=news") == "CHANNEL_TOKEN_REQUIRED");
  const auto t0 = h.now;
  h.ok("bob", "subscribe_channel", "channel=news&with_presence=true",
       token_body(channel_token(h, "bob", "news", 600)));
  auto sub = h.ok("amy", "subscribe_channel", "channel=news&with_presence=true",
                  token_body(channel_token(h, "amy", "news", 20)));
  CHECK(sub["token_expires_at"].GetInt64() == t0 / 1000 + 20);
  // Subscribing again (presence changes) needs no new token and keeps the one it has.
  h.ok("amy", "subscribe_channel", "channel=news&with_presence=true");
  const auto mark = h.outbox.sent.size();
  h.advance_to(t0 + 20000);
  CHECK(token_events(h, "amy", mark) ==
        std::vector<std::string>{"will_expire@news/message", "expired@news/message"});
  CHECK(events(h, "rtm/mcevents/news", mark) ==
        std::vector<std::string>{"member_left/amy/token_expired"});
  CHECK(h.error("amy", "unsubscribe_channel", "channel=news") == "NOT_SUBSCRIBED");
}

TEST_CASE("channel tokens and message channels come back after a restart on sqlite") {
  rtm::test::SqliteStateDir state;
  state.config.auth.token_warn_before_s = 10;
  const auto t0 = rtm::test::kHarnessStart;
  {
    RtmHarness h(state.config, t0);
    h.login("amy");
    h.login("bob");
    h.ok("amy", "join", "channel=room", token_body(channel_token(h, "amy", "room", 60)));
    h.ok("bob", "join", "channel=room");
    h.ok("amy", "subscribe_channel", "channel=news&with_presence=true",
         token_body(channel_token(h, "amy", "news", 120)));
    h.ok("bob", "subscribe_channel", "channel=news&with_presence=true");
  }
  RtmHarness h(state.config, t0 + 30000);
  auto sub = h.ok("bob", "subscribe_channel", "channel=news&with_presence=true");
  CHECK(names(sub["members"]) == std::vector<std::string>{"amy", "bob"});
  auto mark = h.outbox.sent.size();
  h.advance_to(t0 + 60000);
  CHECK(token_events(h, "amy", mark) ==
        std::vector<std::string>{"will_expire@room/stream", "expired@room/stream"});
  CHECK(events(h, "rtm/events/room", mark) ==
        std::vector<std::string>{"member_left/amy/token_expired"});
  mark = h.outbox.sent.size();
  h.advance_to(t0 + 120000);
  CHECK(token_events(h, "amy", mark) ==
        std::vector<std::string>{"will_expire@news/message", "expired@news/message"});
  CHECK(events(h, "rtm/mcevents/news", mark) ==
        std::vector<std::string>{"member_left/amy/token_expired"});
}
