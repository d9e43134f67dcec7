// Presence states (issue 15) as clients see them, without a broker (rtm_harness.hpp):
// set_state merges, remove_state, get_state and who_now with states, the state_changed
// channel event, who may read, limits, and states gone with the membership.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "rtm_harness.hpp"

namespace {

using rtm::test::RtmHarness;
using States = std::map<std::string, std::string>;
using Lines = std::vector<std::string>;

States states_of(const rapidjson::Value& v) {
  REQUIRE(v.HasMember("states"));
  REQUIRE(v["states"].IsObject());
  States out;
  for (const auto& m : v["states"].GetObject()) out[m.name.GetString()] = m.value.GetString();
  return out;
}

Lines strings(const rapidjson::Value& v, const char* key) {
  Lines out;
  for (const auto& s : v[key].GetArray()) out.emplace_back(s.GetString());
  return out;
}

// The state_changed events sent to the channel from `from` on.
std::vector<rapidjson::Document> state_events(const RtmHarness& h, const std::string& channel,
                                              std::size_t from) {
  std::vector<rapidjson::Document> out;
  for (auto i : h.sent_to("rtm/events/" + channel, from)) {
    auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    if (std::string(e["event"].GetString()) == "state_changed") out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

TEST_SUITE("presence states") {

TEST_CASE("states: set merges, remove deletes, members hear each change with the full states") {
  RtmHarness h;
  h.enter("alice", "room");
  h.enter("bob", "room");
  auto mark = h.outbox.sent.size();
  auto r = h.ok("bob", "set_state", "channel=room", R"({"states":{"seat":"2","ready":"no"}})");
  CHECK(std::string(r["channel"].GetString()) == "room");
  CHECK(std::string(r["uid"].GetString()) == "bob");
  CHECK(states_of(r) == States{{"ready", "no"}, {"seat", "2"}});
  r = h.ok("bob", "set_state", "channel=room", R"({"states":{"ready":"yes"}})");
  CHECK(states_of(r) == States{{"ready", "yes"}, {"seat", "2"}});

  auto events = state_events(h, "room", mark);
  REQUIRE(events.size() == 2);
  CHECK(std::string(events[1]["uid"].GetString()) == "bob");
  CHECK(states_of(events[1]) == States{{"ready", "yes"}, {"seat", "2"}});
  CHECK(strings(events[1], "written") == Lines{"ready"});
  CHECK(strings(events[1], "removed").empty());
  CHECK(events[1]["ts"].GetInt64() == h.now);

  // The same values again change nothing and tell no one.
  mark = h.outbox.sent.size();
  h.ok("bob", "set_state", "channel=room", R"({"states":{"ready":"yes"}})");
  CHECK(state_events(h, "room", mark).empty());

  r = h.ok("bob", "remove_state", "channel=room", R"({"keys":["ready","absent"]})");
  CHECK(states_of(r) == States{{"seat", "2"}});
  events = state_events(h, "room", mark);
  REQUIRE(events.size() == 1);
  CHECK(strings(events[0], "removed") == Lines{"ready"});

  r = h.ok("alice", "get_state", "channel=room&uid=bob");
  CHECK(states_of(r) == States{{"seat", "2"}});
  CHECK(states_of(h.ok("alice", "get_state", "channel=room")).empty());  // her own: none

  // remove_state without keys removes every state, once.
  mark = h.outbox.sent.size();
  CHECK(states_of(h.ok("bob", "remove_state", "channel=room")).empty());
  CHECK(states_of(h.ok("bob", "remove_state", "channel=room")).empty());
  CHECK(state_events(h, "room", mark).size() == 1);
}

TEST_CASE("states: who_now with include_state shows the members that have states") {
  auto config = rtm::test::harness_config();
  config.channels.public_presence = {"lobby-*"};
  RtmHarness h(config);
  h.enter("alice", "lobby-1");
  h.enter("bob", "lobby-1");
  h.login("carol");
  h.ok("bob", "set_state", "channel=lobby-1", R"({"states":{"seat":"2"}})");
  auto r = h.ok("alice", "who_now", "channel=lobby-1&include_state=true");
  CHECK(strings(r, "members") == Lines{"alice", "bob"});
  REQUIRE(r["states"].IsObject());
  CHECK(r["states"].MemberCount() == 1);
  CHECK(std::string(r["states"]["bob"]["seat"].GetString()) == "2");
  // Without include_state the answer is as before; a public channel is read by anyone.
  CHECK_FALSE(h.ok("alice", "who_now", "channel=lobby-1").HasMember("states"));
  CHECK(h.ok("carol", "who_now", "channel=lobby-1&include_state=1")["states"].HasMember("bob"));
  CHECK(h.error("alice", "who_now", "channel=lobby-1&include_state=maybe") == "INVALID_PARAMETER");
}

TEST_CASE("states: only members set them and members read them") {
  RtmHarness h;
  h.enter("alice", "room");
  h.login("mallory");
  CHECK(h.error("mallory", "set_state", "channel=room", R"({"states":{"seat":"1"}})") ==
        "NOT_JOINED");
  CHECK(h.error("mallory", "remove_state", "channel=room") == "NOT_JOINED");
  CHECK(h.error("mallory", "get_state", "channel=room&uid=alice") == "NOT_JOINED");
  CHECK(h.error("alice", "set_state", "channel=room") == "MISSING_PARAMETER");
  CHECK(h.error("alice", "set_state", "channel=room", R"({"states":["seat"]})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_state", "channel=room", R"({"states":{"seat":2}})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_state", "channel=room", R"({"states":{}})") == "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_state", "channel=room", R"({"states":{"":"x"}})") ==
        "INVALID_PARAMETER");
}

TEST_CASE("states: every limit answers LIMIT_STATE naming its key and keeps the states") {
  auto config = rtm::test::harness_config();
  config.storage.states.max_keys = 2;
  config.storage.states.max_key_bytes = 8;
  config.storage.states.max_value_bytes = 16;
  config.storage.states.max_bytes = 30;
  RtmHarness h(config);
  h.enter("alice", "room");
  h.ok("alice", "set_state", "channel=room", R"({"states":{"a":"1"}})");
  struct Case {
    const char* body;
    const char* key;  // the config key the answer names
  };
  const Case cases[] = {
      {R"({"states":{"b":"1","c":"1"}})", "storage.max_state_keys"},
      {R"({"states":{"123456789":"1"}})", "storage.max_state_key_bytes"},
      {R"({"states":{"b":"12345678901234567"}})", "storage.max_state_value_bytes"},
      {R"({"states":{"a":"1234567890123456","b":"1234567890123"}})", "storage.max_state_bytes"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const auto& payload = h.outbox.sent[h.send("alice", "set_state", "channel=room", c.body)].payload;
    auto doc = rtm::test::parse_json(payload);
    CHECK(std::string(doc["error"].GetString()) == "LIMIT_STATE");
    CHECK(doc["code"].GetInt() == 50);
    CHECK(payload.find(c.key) != std::string::npos);
  }
  CHECK(states_of(h.ok("alice", "get_state", "channel=room")) == States{{"a", "1"}});

  // A reload applies new limits to the next calls.
  auto next = config;
  next.storage.states.max_keys = 3;
  h.core->reload(next);
  h.ok("alice", "set_state", "channel=room", R"({"states":{"b":"1","c":"1"}})");
}

TEST_CASE("states: gone when the member leaves, logs out or its connection drops") {
  RtmHarness h;
  h.enter("alice", "room");
  h.enter("bob", "room");
  h.ok("alice", "join", "channel=hall");
  const char* const kSeat = R"({"states":{"seat":"1"}})";
  h.ok("alice", "set_state", "channel=room", kSeat);
  h.ok("alice", "set_state", "channel=hall", kSeat);
  auto mark = h.outbox.sent.size();
  h.ok("alice", "leave", "channel=room");
  CHECK(state_events(h, "room", mark).empty());  // member_left says it
  CHECK(h.ok("bob", "who_now", "channel=room&include_state=true")["states"].MemberCount() == 0);
  h.ok("alice", "join", "channel=room");
  CHECK(states_of(h.ok("alice", "get_state", "channel=room")).empty());  // not back
  CHECK(states_of(h.ok("alice", "get_state", "channel=hall")) == States{{"seat", "1"}});

  h.ok("alice", "set_state", "channel=room", kSeat);
  h.ok("alice", "logout", "");
  h.login("alice");
  h.ok("alice", "join", "channel=room");
  h.ok("alice", "join", "channel=hall");
  CHECK(states_of(h.ok("bob", "get_state", "channel=room&uid=alice")).empty());
  CHECK(states_of(h.ok("alice", "get_state", "channel=hall")).empty());

  // The connection dropped: the Will ends the session, and the states with it.
  h.ok("bob", "set_state", "channel=room", kSeat);
  h.deliver(rtm::gateway::Message{"rtm/presence/bob", R"({"state":"online","session":"c-1"})", 1,
                                  true});
  mark = h.outbox.sent.size();
  h.deliver(rtm::gateway::Message{"rtm/presence/bob", R"({"state":"offline","session":"c-1"})", 1,
                                  false});
  REQUIRE(h.sent_to("rtm/events/room", mark).size() == 1);
  CHECK(rtm::test::parse_json(h.outbox.sent[h.sent_to("rtm/events/room", mark)[0]].payload)["event"] ==
        "member_timed_out");
  h.login("bob");
  h.ok("bob", "join", "channel=room");
  CHECK(states_of(h.ok("alice", "get_state", "channel=room&uid=bob")).empty());
}

}  // TEST_SUITE
