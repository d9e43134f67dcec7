// rtm::storage presence states: merge, removal, limits at and past each boundary, and the
// removals at leave and at session end that feed the state-changed events.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/storage/states.hpp"

using namespace rtm::storage;

TEST_CASE("storage states: set merges, remove deletes, each reports the full states") {
  PresenceStates book;
  auto first = book.set("room", "alice", {{"mood", "happy"}, {"seat", "2"}});
  REQUIRE(first.ok());
  CHECK(first->channel == "room");
  CHECK(first->uid == "alice");
  CHECK(first->written == std::vector<std::string>{"mood", "seat"});
  CHECK(first->changed());

  auto merge = book.set("room", "alice", {{"mood", "busy"}, {"seat", "2"}});
  REQUIRE(merge.ok());
  CHECK(merge->written == std::vector<std::string>{"mood"});  // seat is the same value
  CHECK(merge->states == StateItems{{"mood", "busy"}, {"seat", "2"}});

  auto same = book.set("room", "alice", {{"seat", "2"}});
  REQUIRE(same.ok());
  CHECK_FALSE(same->changed());

  auto removed = book.remove("room", "alice", {"mood", "never-set"});
  REQUIRE(removed.ok());
  CHECK(removed->removed == std::vector<std::string>{"mood"});
  CHECK(removed->states == StateItems{{"seat", "2"}});
  CHECK(book.get("room", "alice") == StateItems{{"seat", "2"}});
  CHECK(book.get("room", "bob").empty());
  CHECK(book.get("elsewhere", "alice").empty());

  auto last = book.remove("room", "alice", {"seat"});
  REQUIRE(last.ok());
  CHECK(last->states.empty());
  CHECK(book.channel_states("room").empty());  // nothing left behind
}

TEST_CASE("storage states: who_now sees everyone's states in a channel, by uid") {
  PresenceStates book;
  REQUIRE(book.set("room", "carol", {{"k", "c"}}).ok());
  REQUIRE(book.set("room", "alice", {{"k", "a"}}).ok());
  REQUIRE(book.set("hall", "bob", {{"k", "b"}}).ok());
  const auto room = book.channel_states("room");
  REQUIRE(room.size() == 2);
  CHECK(room[0].first == "alice");
  CHECK(room[1].first == "carol");
  CHECK(room[1].second == StateItems{{"k", "c"}});
}

TEST_CASE("storage states: leave removes a user's states in one channel, session end in all") {
  PresenceStates book;
  REQUIRE(book.set("room", "alice", {{"a", "1"}, {"b", "2"}}).ok());
  REQUIRE(book.set("hall", "alice", {{"c", "3"}}).ok());
  REQUIRE(book.set("yard", "alice", {{"d", "4"}}).ok());
  REQUIRE(book.set("room", "bob", {{"e", "5"}}).ok());

  const auto left = book.leave("room", "alice");
  REQUIRE(left.has_value());
  CHECK(left->removed == std::vector<std::string>{"a", "b"});
  CHECK(left->states.empty());
  CHECK_FALSE(book.leave("room", "alice").has_value());  // nothing left to remove
  CHECK(book.get("room", "bob") == StateItems{{"e", "5"}});

  const auto ended = book.session_ended("alice");
  REQUIRE(ended.size() == 2);
  CHECK(ended[0].channel == "hall");
  CHECK(ended[0].removed == std::vector<std::string>{"c"});
  CHECK(ended[1].channel == "yard");
  CHECK(book.get("hall", "alice").empty());
  CHECK(book.session_ended("alice").empty());
  CHECK(book.session_ended("nobody").empty());
  CHECK(book.channel_states("room").size() == 1);
}

TEST_CASE("storage states: limits at and past each boundary, and bad calls change nothing") {
  StateLimits limits;
  limits.max_keys = 3;
  limits.max_key_bytes = 4;
  limits.max_value_bytes = 5;
  limits.max_bytes = 20;
  struct Case {
    const char* name;
    std::vector<std::pair<std::string, std::string>> items;
    bool ok;
    ErrorCode code;
    std::string_view limit;
  };
  // The user starts with {"k1": "v1"}: 4 bytes.
  const Case cases[] = {
      {"keys at max", {{"k2", ""}, {"k3", ""}}, true, {}, {}},
      {"keys past max",
       {{"k2", ""}, {"k3", ""}, {"k4", ""}},
       false,
       ErrorCode::too_many_states,
       StateLimits::kMaxKeysKey},
      {"overwrite does not count twice", {{"k1", "x"}, {"k2", ""}, {"k3", ""}}, true, {}, {}},
      {"key at max", {{"kkkk", ""}}, true, {}, {}},
      {"key past max",
       {{"kkkkk", ""}},
       false,
       ErrorCode::invalid_key,
       StateLimits::kMaxKeyBytesKey},
      {"value at max", {{"k2", "12345"}}, true, {}, {}},
      {"value past max",
       {{"k2", "123456"}},
       false,
       ErrorCode::value_too_large,
       StateLimits::kMaxValueBytesKey},
      {"bytes at max", {{"k2", "12345"}, {"kkk3", "12345"}}, true, {}, {}},  // 4+7+9 = 20
      {"bytes past max",
       {{"k1", "v12"}, {"k2", "12345"}, {"kkk3", "12345"}},
       false,  // 21
       ErrorCode::states_too_large,
       StateLimits::kMaxBytesKey},
      {"empty key", {{"", "v"}}, false, ErrorCode::invalid_key, {}},
      {"control character", {{"a\nb", "v"}}, false, ErrorCode::invalid_key, {}},
      {"a key twice", {{"k2", "a"}, {"k2", "b"}}, false, ErrorCode::duplicate_key, {}},
      {"no states", {}, false, ErrorCode::no_items, {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    PresenceStates book(limits);
    REQUIRE(book.set("room", "alice", {{"k1", "v1"}}).ok());
    const auto r = book.set("room", "alice", c.items);
    REQUIRE(r.ok() == c.ok);
    if (c.ok) continue;
    CHECK(r.error().code == c.code);
    CHECK(r.error().limit == c.limit);
    CHECK(book.get("room", "alice") == StateItems{{"k1", "v1"}});  // unchanged
  }
}

TEST_CASE("storage states: remove checks its keys and needs one") {
  PresenceStates book;
  REQUIRE(book.set("room", "alice", {{"k", "v"}}).ok());
  CHECK(book.remove("room", "alice", {}).error().code == ErrorCode::no_items);
  CHECK(book.remove("room", "alice", {"k", ""}).error().code == ErrorCode::invalid_key);
  CHECK(book.get("room", "alice") == StateItems{{"k", "v"}});
  const auto nothing = book.remove("room", "bob", {"k"});
  REQUIRE(nothing.ok());
  CHECK_FALSE(nothing->changed());
}
