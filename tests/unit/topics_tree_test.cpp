// Table-driven tests of rtm/topics/tree.hpp: building and parsing the topic tree of BRIEF §3.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "rtm/topics/names.hpp"
#include "rtm/topics/tree.hpp"

namespace {

using rtm::topics::filter_matches;
using rtm::topics::ParsedTopic;
using rtm::topics::TopicKind;
using rtm::topics::TopicTree;

const char* kind_name(TopicKind kind) {
  switch (kind) {
    case TopicKind::request:
      return "request";
    case TopicKind::response:
      return "response";
    case TopicKind::user_event:
      return "user_event";
    case TopicKind::inbox:
      return "inbox";
    case TopicKind::channel_message:
      return "channel_message";
    case TopicKind::channel_events:
      return "channel_events";
    case TopicKind::presence:
      return "presence";
    case TopicKind::message_channel:
      return "message_channel";
    case TopicKind::message_channel_events:
      return "message_channel_events";
  }
  return "?";
}

std::string shorten(const std::string& text) {
  if (text.size() <= 80) return text;
  return text.substr(0, 80) + "... (" + std::to_string(text.size()) + " bytes)";
}

// One comparable line per parse result, naming every field, or "nullopt".
std::string describe(const std::optional<ParsedTopic>& parsed) {
  if (!parsed) return "nullopt";
  return std::string(kind_name(parsed->kind)) + " uid=" + parsed->uid + " uri=" + parsed->uri +
         " event_kind=" + parsed->event_kind + " from=" + parsed->from +
         " channel=" + parsed->channel + " topic=" + parsed->topic +
         " publisher=" + parsed->publisher;
}

ParsedTopic make(TopicKind kind) {
  ParsedTopic parsed{};
  parsed.kind = kind;
  return parsed;
}
ParsedTopic request(std::string uid, std::string uri) {
  ParsedTopic p = make(TopicKind::request);
  p.uid = std::move(uid);
  p.uri = std::move(uri);
  return p;
}
ParsedTopic response(std::string uid, std::string uri) {
  ParsedTopic p = make(TopicKind::response);
  p.uid = std::move(uid);
  p.uri = std::move(uri);
  return p;
}
ParsedTopic user_event(std::string uid, std::string kind) {
  ParsedTopic p = make(TopicKind::user_event);
  p.uid = std::move(uid);
  p.event_kind = std::move(kind);
  return p;
}
ParsedTopic inbox(std::string uid, std::string from) {
  ParsedTopic p = make(TopicKind::inbox);
  p.uid = std::move(uid);
  p.from = std::move(from);
  return p;
}
ParsedTopic channel_message(std::string channel, std::string topic, std::string publisher) {
  ParsedTopic p = make(TopicKind::channel_message);
  p.channel = std::move(channel);
  p.topic = std::move(topic);
  p.publisher = std::move(publisher);
  return p;
}
ParsedTopic channel_events(std::string channel) {
  ParsedTopic p = make(TopicKind::channel_events);
  p.channel = std::move(channel);
  return p;
}
ParsedTopic presence(std::string uid) {
  ParsedTopic p = make(TopicKind::presence);
  p.uid = std::move(uid);
  return p;
}

const std::vector<std::string> kPrefixes = {"rtm", "acme/rtm"};

}  // namespace

TEST_CASE("prefix_error accepts non-empty levels without wildcards") {
  struct Case {
    std::string prefix;
    std::string expected;  // "" when usable
  };
  const std::vector<Case> cases = {
      {"rtm", ""},
      {"acme/rtm", ""},
      {"a/b/c", ""},
      {"rtm-v2.test_env", ""},
      {"", "prefix is empty"},
      {"a//b", "prefix \"a//b\" has an empty level at byte 2"},
      {"/a", "prefix \"/a\" has an empty level at byte 0"},
      {"a/", "prefix \"a/\" has an empty level at byte 2"},
      {"/", "prefix \"/\" has an empty level at byte 0"},
      {"a/+",
       "prefix is not a valid topic: topic name contains '+' at byte 2 (wildcards are "
       "only allowed in filters)"},
      {"#",
       "prefix is not a valid topic: topic name contains '#' at byte 0 (wildcards are only "
       "allowed in filters)"},
      {"rtm/#",
       "prefix is not a valid topic: topic name contains '#' at byte 4 (wildcards are "
       "only allowed in filters)"},
      {"a\xff", "prefix is not a valid topic: topic name is not valid UTF-8 at byte 1"},
      {std::string("a\0b", 3), "prefix is not a valid topic: topic name contains U+0000 at byte 1"},
      {"$SYS", "prefix \"$SYS\" starts with '$', which brokers reserve for their own topics"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.prefix);
    CHECK(TopicTree::prefix_error(c.prefix).value_or("") == c.expected);
    if (c.expected.empty()) {
      CHECK(TopicTree(c.prefix).prefix() == c.prefix);
    } else {
      CHECK_THROWS_AS(TopicTree{c.prefix}, std::invalid_argument);
    }
  }
}

TEST_CASE("TopicTree builds every topic of the tree") {
  for (const std::string& prefix : kPrefixes) {
    CAPTURE(prefix);
    const TopicTree tree(prefix);
    const std::string& P = prefix;
    struct Case {
      std::string built;
      std::string expected;
    };
    const std::vector<Case> cases = {
        {tree.request("alice", "join?msg_id=7"), P + "/req/alice/join?msg_id=7"},
        {tree.request("alice", "im://modulus/remove_feeds_member?msg_id=1002"),
         P + "/req/alice/im://modulus/remove_feeds_member?msg_id=1002"},
        {tree.response("alice", "join?msg_id=7"), P + "/u/alice/res/join?msg_id=7"},
        {tree.response("alice", "http://billing/pay/one.json?msg_id=9"),
         P + "/u/alice/res/http://billing/pay/one.json?msg_id=9"},
        {tree.user_event("alice", "token"), P + "/u/alice/events/token"},
        {tree.user_subtree("alice"), P + "/u/alice/#"},
        {tree.inbox("bob", "alice"), P + "/u/bob/inbox/alice"},
        {tree.channel_message("room-42", "input", "bob"), P + "/ch/room-42/input/bob"},
        {tree.channel_events("room-42"), P + "/events/room-42"},
        {tree.presence("alice"), P + "/presence/alice"},
        {tree.request_filter(), P + "/req/+/#"},
        {tree.presence_filter(), P + "/presence/+"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.expected);
      CHECK(c.built == c.expected);
    }
    CHECK_FALSE(rtm::topics::topic_filter_error(tree.request_filter()).has_value());
    CHECK_FALSE(rtm::topics::topic_filter_error(tree.presence_filter()).has_value());
    CHECK_FALSE(rtm::topics::topic_filter_error(tree.user_subtree("alice")).has_value());
  }
}

TEST_CASE("TopicTree parses every kind and refuses what is not in the tree") {
  struct Case {
    std::string suffix;  // the topic after "P/"
    std::optional<ParsedTopic> expected;
  };
  const std::vector<Case> cases = {
      // Requests: the uri is everything after the uid and may span levels, even empty ones.
      {"req/alice/join?msg_id=7", request("alice", "join?msg_id=7")},
      {"req/alice/join?channel=room-42&msg_id=3",
       request("alice", "join?channel=room-42&msg_id=3")},
      {"req/alice/room/list?msg_id=1", request("alice", "room/list?msg_id=1")},
      {"req/alice/im://modulus/remove_feeds_member?msg_id=1002",
       request("alice", "im://modulus/remove_feeds_member?msg_id=1002")},
      {"req/alice/http://billing/pay/one.json?msg_id=9",
       request("alice", "http://billing/pay/one.json?msg_id=9")},
      {"req/alice//x", request("alice", "/x")},
      {"req/alice/a/", request("alice", "a/")},
      {"req/bad uid!/join", request("bad uid!", "join")},  // names are the caller's to check
      {"req/alice/", std::nullopt},
      {"req/alice", std::nullopt},
      {"req//join?msg_id=1", std::nullopt},
      {"req/", std::nullopt},
      {"req", std::nullopt},
      // Responses mirror requests.
      {"u/alice/res/join?msg_id=7", response("alice", "join?msg_id=7")},
      {"u/alice/res/im://modulus/remove_feeds_member?msg_id=1002",
       response("alice", "im://modulus/remove_feeds_member?msg_id=1002")},
      {"u/alice/res/", std::nullopt},
      {"u/alice/res", std::nullopt},
      {"u//res/join", std::nullopt},
      // Personal events and inbox: exactly one more level.
      {"u/alice/events/session", user_event("alice", "session")},
      {"u/alice/events/token", user_event("alice", "token")},
      {"u/alice/events/token/extra", std::nullopt},
      {"u/alice/events/", std::nullopt},
      {"u/alice/events", std::nullopt},
      {"u/bob/inbox/alice", inbox("bob", "alice")},
      {"u/bob/inbox/alice/extra", std::nullopt},
      {"u/bob/inbox/alice/", std::nullopt},
      {"u/bob/inbox/", std::nullopt},
      {"u/bob/inbox", std::nullopt},
      {"u/alice/other/x", std::nullopt},
      {"u/alice/", std::nullopt},
      {"u/alice", std::nullopt},
      {"u", std::nullopt},
      // Channel data: exactly channel/topic/publisher.
      {"ch/room-42/input/bob", channel_message("room-42", "input", "bob")},
      {"ch/room-42/input/bob/extra", std::nullopt},
      {"ch/room-42/input/", std::nullopt},
      {"ch/room-42/input", std::nullopt},
      {"ch/room-42//bob", std::nullopt},
      {"ch//input/bob", std::nullopt},
      {"ch", std::nullopt},
      // Channel events and presence: exactly one level.
      {"events/room-42", channel_events("room-42")},
      {"events/room-42/extra", std::nullopt},
      {"events/", std::nullopt},
      {"events", std::nullopt},
      {"presence/alice", presence("alice")},
      {"presence/alice/extra", std::nullopt},
      {"presence/", std::nullopt},
      {"presence", std::nullopt},
      // Other branches.
      {"", std::nullopt},
      {"/", std::nullopt},
      {"unknown/alice", std::nullopt},
      {"REQ/alice/join", std::nullopt},
  };
  for (const std::string& prefix : kPrefixes) {
    const TopicTree tree(prefix);
    for (const Case& c : cases) {
      const std::string topic = prefix + "/" + c.suffix;
      CAPTURE(topic);
      CHECK(describe(tree.parse(topic)) == describe(c.expected));
    }
  }
}

TEST_CASE("TopicTree::parse splits a uri with '/' and empty levels verbatim") {
  const TopicTree tree("rtm");
  const auto parsed = tree.parse("rtm/req/alice/im://modulus/remove_feeds_member?msg_id=1002");
  REQUIRE(parsed.has_value());
  // As topic levels the uri is "im:", "", "modulus", "remove_feeds_member?msg_id=1002".
  CHECK(parsed->uri == "im://modulus/remove_feeds_member?msg_id=1002");
}

TEST_CASE("TopicTree::parse refuses topics under another prefix") {
  struct Case {
    std::string prefix;
    std::string topic;
  };
  const std::vector<Case> cases = {
      {"rtm", "other/req/alice/join"},
      {"rtm", "rtmx/req/alice/join"},
      {"rtm", "xrtm/req/alice/join"},
      {"rtm", "RTM/req/alice/join"},
      {"rtm", "rtm"},
      {"rtm", "rtm/"},
      {"rtm", ""},
      {"rtm", "/rtm/req/alice/join"},
      {"rtm", "acme/rtm/req/alice/join"},
      {"acme/rtm", "rtm/req/alice/join"},
      {"acme/rtm", "acme/req/alice/join"},
      {"acme/rtm", "acme/rtmx/req/alice/join"},
      {"acme/rtm", "acme/rtm"},
      {"acme/rtm", "acme"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.prefix);
    CAPTURE(c.topic);
    CHECK(describe(TopicTree(c.prefix).parse(c.topic)) == "nullopt");
  }
}

TEST_CASE("built topics parse back to their parts") {
  const std::vector<std::string> uris = {
      "join?msg_id=7",
      "room/list?msg_id=1",
      "im://modulus/remove_feeds_member?msg_id=1002",
      "http://billing/pay/one.json?msg_id=9",
      "scheme://user:pass@host:8080/path;params?query",
      "a//b/",
  };
  for (const std::string& prefix : kPrefixes) {
    const TopicTree tree(prefix);
    for (const std::string& uri : uris) {
      CAPTURE(prefix);
      CAPTURE(uri);
      CHECK(describe(tree.parse(tree.request("alice", uri))) == describe(request("alice", uri)));
      CHECK(describe(tree.parse(tree.response("alice", uri))) == describe(response("alice", uri)));
    }
    CAPTURE(prefix);
    CHECK(describe(tree.parse(tree.user_event("alice", "presence"))) ==
          describe(user_event("alice", "presence")));
    CHECK(describe(tree.parse(tree.inbox("bob", "alice"))) == describe(inbox("bob", "alice")));
    CHECK(describe(tree.parse(tree.channel_message("room-42", "input", "bob"))) ==
          describe(channel_message("room-42", "input", "bob")));
    CHECK(describe(tree.parse(tree.channel_events("room-42"))) ==
          describe(channel_events("room-42")));
    CHECK(describe(tree.parse(tree.presence("alice"))) == describe(presence("alice")));
  }
}

TEST_CASE("a device's subtree holds its responses, events and inbox, never its requests") {
  for (const std::string& prefix : kPrefixes) {
    CAPTURE(prefix);
    const TopicTree tree(prefix);
    const std::string subtree = tree.user_subtree("alice");
    struct Case {
      std::string topic;
      bool in_subtree;
      bool is_request;
    };
    const std::vector<Case> cases = {
        {tree.response("alice", "join?msg_id=7"), true, false},
        {tree.user_event("alice", "session"), true, false},
        {tree.inbox("alice", "bob"), true, false},
        {tree.request("alice", "join?msg_id=7"), false, true},
        {tree.request("alice", "im://modulus/x?msg_id=1"), false, true},
        {tree.response("bob", "join?msg_id=7"), false, false},
        {tree.presence("alice"), false, false},
        {tree.channel_message("room-42", "input", "alice"), false, false},
    };
    for (const Case& c : cases) {
      CAPTURE(c.topic);
      CHECK(filter_matches(subtree, c.topic) == c.in_subtree);
      CHECK(filter_matches(tree.request_filter(), c.topic) == c.is_request);
    }
  }
}

TEST_CASE("TopicTree::parse copes with hostile sizes in linear time") {
  const auto started = std::chrono::steady_clock::now();
  const TopicTree tree("acme/rtm");

  std::string deep_uri;
  for (int i = 0; i < 10000; ++i) deep_uri += "a/";
  deep_uri += "op?msg_id=1";
  const std::string long_uri = "join?data=" + std::string(70000, 'x');
  std::string empty_levels(10000, '/');

  struct Case {
    std::string topic;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {tree.request("alice", deep_uri), describe(request("alice", deep_uri))},
      {tree.response("alice", deep_uri), describe(response("alice", deep_uri))},
      {tree.request("alice", long_uri), describe(request("alice", long_uri))},
      {tree.request("alice", empty_levels), describe(request("alice", empty_levels))},
      {tree.presence(deep_uri), "nullopt"},
      {tree.channel_events(deep_uri), "nullopt"},
      {tree.inbox("alice", deep_uri), "nullopt"},
      {tree.user_event("alice", deep_uri), "nullopt"},
      {tree.channel_message("c", "t", deep_uri), "nullopt"},
      {"acme/rtm/" + std::string(70000, 'x'), "nullopt"},
  };
  for (const Case& c : cases) {
    CAPTURE(shorten(c.topic));
    CHECK(describe(tree.parse(c.topic)) == c.expected);
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(elapsed < std::chrono::seconds(2));
}

TEST_CASE("TopicTree: message channel topics, typed and untyped, and their events") {
  const TopicTree tree("rtm");
  CHECK(tree.message_channel("news", "alice") == "rtm/mc/news/alice");
  CHECK(tree.message_channel("news", "alice", true) == "rtm/mc/news/alice/string");
  CHECK(tree.message_channel_filter("news") == "rtm/mc/news/#");
  CHECK(tree.message_channel_events("news") == "rtm/mcevents/news");
  auto raw = tree.parse("rtm/mc/news/alice");
  REQUIRE(raw);
  CHECK(raw->kind == TopicKind::message_channel);
  CHECK(raw->channel == "news");
  CHECK(raw->publisher == "alice");
  CHECK_FALSE(raw->string_type);
  auto typed = tree.parse("rtm/mc/news/alice/string");
  REQUIRE(typed);
  CHECK(typed->string_type);
  CHECK(typed->publisher == "alice");
  auto events = tree.parse("rtm/mcevents/news");
  REQUIRE(events);
  CHECK(events->kind == TopicKind::message_channel_events);
  CHECK(events->channel == "news");
  for (const char* bad : {"rtm/mc/news", "rtm/mc/news/alice/binary", "rtm/mc/news/alice/string/x",
                          "rtm/mc//alice", "rtm/mc/news/", "rtm/mcevents/news/x", "rtm/mcevents"}) {
    CHECK_MESSAGE(!tree.parse(bad), bad);
  }
  CHECK(filter_matches(tree.message_channel_filter("news"), "rtm/mc/news/alice/string"));
  CHECK(filter_matches(tree.message_channel_filter("news"), "rtm/mc/news/alice"));
}
