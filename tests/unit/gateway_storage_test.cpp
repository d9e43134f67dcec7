// The metadata operations (issue 15) as clients see them, without a broker
// (rtm_harness.hpp): answers, compare-and-set errors on the wire, who may read and write,
// events to subscribers and channel members, limits, and a restart on sqlite.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "rtm_harness.hpp"

namespace {

using rtm::test::text;

using rtm::test::RtmHarness;

// "key=value@revision" of each item, in order.
std::vector<std::string> items(const rapidjson::Value& v) {
  std::vector<std::string> out;
  REQUIRE(v.HasMember("items"));
  for (const auto& i : v["items"].GetArray()) {
    out.push_back(text(i, "key") + "=" + text(i, "value") + "@" +
                  std::to_string(i["revision"].GetInt64()));
  }
  return out;
}
using Lines = std::vector<std::string>;

// The parsed messages sent to `topic` from `from` on.
std::vector<rapidjson::Document> messages(const RtmHarness& h, const std::string& topic,
                                          std::size_t from) {
  std::vector<rapidjson::Document> out;
  for (auto i : h.sent_to(topic, from)) {
    out.push_back(rtm::test::parse_json(h.outbox.sent[i].payload));
  }
  return out;
}

const char* const kSetName = R"({"items":[{"key":"name","value":"Alice"}]})";

}  // namespace

TEST_SUITE("storage ops") {

TEST_CASE("storage: set, update, remove and get user metadata with revisions") {
  RtmHarness h;
  h.login("alice");
  h.login("bob");
  auto r = h.ok("alice", "set_user_metadata", "",
                R"({"items":[{"key":"name","value":"Alice"},{"key":"seat","value":"3"}]})");
  CHECK(text(r, "uid") == "alice");
  CHECK(r["major_revision"].GetInt64() == 1);
  CHECK(items(r) == Lines{"name=Alice@1", "seat=3@1"});
  CHECK_FALSE(r["items"][0].HasMember("author"));  // not asked for

  // set keeps the items it does not name (RTM 2), and records author and time when asked.
  r = h.ok("alice", "set_user_metadata", "",
           R"({"items":[{"key":"seat","value":"4"}],"record_author":true,"record_ts":true})");
  CHECK(r["major_revision"].GetInt64() == 2);
  CHECK(text(r["items"][0], "author") == "alice");
  CHECK(r["items"][0]["updated_at"].GetInt64() == h.now);
  r = h.ok("bob", "get_user_metadata", "uid=alice");
  CHECK(r["major_revision"].GetInt64() == 2);
  CHECK(items(r) == Lines{"name=Alice@1", "seat=4@2"});
  r = h.ok("bob", "get_user_metadata", "uid=alice", R"({"keys":["seat","absent"]})");
  CHECK(items(r) == Lines{"seat=4@2"});

  r = h.ok("alice", "update_user_metadata", "", R"({"items":[{"key":"name","value":"Al"}]})");
  CHECK(items(r) == Lines{"name=Al@3"});
  CHECK(h.error("alice", "update_user_metadata", "", R"({"items":[{"key":"x","value":"1"}]})") ==
        "ITEM_NOT_FOUND");

  // remove: the named keys (a missing one is skipped), then everything; revisions go on.
  r = h.ok("alice", "remove_user_metadata", "", R"({"keys":["seat","absent"]})");
  CHECK(r["major_revision"].GetInt64() == 4);
  CHECK(items(r) == Lines{"seat=4@2"});  // as it was
  r = h.ok("alice", "remove_user_metadata", "");
  CHECK(r["major_revision"].GetInt64() == 5);
  r = h.ok("alice", "remove_user_metadata", "");  // nothing left: nothing changes
  CHECK(r["major_revision"].GetInt64() == 5);
  CHECK(items(r).empty());
  r = h.ok("alice", "get_user_metadata", "");
  CHECK(r["major_revision"].GetInt64() == 5);
  CHECK(items(r).empty());
  // A user never written: revision 0, no items.
  r = h.ok("alice", "get_user_metadata", "uid=nobody");
  CHECK(r["major_revision"].GetInt64() == 0);
}

TEST_CASE("storage: compare-and-set failures answer precise errors and change nothing") {
  RtmHarness h;
  h.login("alice");
  h.ok("alice", "set_user_metadata", "", kSetName);  // major 1, name@1
  CHECK(h.error("alice", "set_user_metadata", "",
                R"({"items":[{"key":"name","value":"B"}],"major_revision":7})") ==
        "MAJOR_REVISION_MISMATCH");
  const char* const kNewAndStale =
      R"({"items":[{"key":"new","value":"1"},{"key":"name","value":"B","revision":2}]})";
  CHECK(h.error("alice", "set_user_metadata", "", kNewAndStale) == "ITEM_REVISION_MISMATCH");
  // revision 0: create only if absent.
  CHECK(h.error("alice", "set_user_metadata", "",
                R"({"items":[{"key":"name","value":"B","revision":0}]})") ==
        "ITEM_REVISION_MISMATCH");
  auto r = h.ok("alice", "get_user_metadata", "");
  CHECK(r["major_revision"].GetInt64() == 1);
  CHECK(items(r) == Lines{"name=Alice@1"});  // "new" was not written either
  // The right revisions pass; major_revision may come in the query too.
  r = h.ok("alice", "set_user_metadata", "major_revision=1",
           R"({"items":[{"key":"name","value":"B","revision":1}]})");
  CHECK(items(r) == Lines{"name=B@2"});
  r = h.ok("alice", "set_user_metadata", "major_revision=-1",
           R"({"items":[{"key":"fresh","value":"x","revision":0}]})");
  CHECK(items(r) == Lines{"fresh=x@3"});

  // The message names the key and both revisions.
  const auto at = h.send("alice", "update_user_metadata", "",
                         R"({"items":[{"key":"name","value":"C","revision":1}]})");
  const auto doc = rtm::test::parse_json(h.outbox.sent[at].payload);
  CHECK(doc["code"].GetInt() == 46);
  CHECK(text(doc, "message").find("\"name\" is at revision 2, the call expected 1") !=
        std::string::npos);
  // Malformed calls.
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[]})") == "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[{"key":"k"}]})") ==
        "MISSING_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[{"key":"k","value":3}]})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "",
                R"({"items":[{"key":"k","value":"1"},{"key":"k","value":"2"}]})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "",
                R"({"items":[{"key":"k","value":"1","revision":-2}]})") == "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[{"key":"","value":"1"}]})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[{"key":"k","value":"1"}],"x":1})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "set_user_metadata", "",
                R"({"items":[{"key":"k","value":"1"}],"record_ts":"maybe"})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "get_user_metadata", "uid=a/b") == "INVALID_NAME");
}

TEST_CASE("storage: who may write and read user metadata") {
  auto config = rtm::test::harness_config();
  config.ops.uids = {"op"};
  RtmHarness h(config);
  h.login("alice");
  h.login("bob");
  h.login("op");
  CHECK(h.error("bob", "set_user_metadata", "uid=alice", kSetName) == "FORBIDDEN");
  CHECK(h.error("bob", "remove_user_metadata", "uid=alice") == "FORBIDDEN");
  h.ok("op", "set_user_metadata", "uid=alice", kSetName);  // operators may
  h.ok("alice", "set_user_metadata", "", kSetName);
  h.ok("bob", "get_user_metadata", "uid=alice");  // any logged-in user reads
  CHECK(h.error("carol", "get_user_metadata", "uid=alice") == "NOT_LOGGED_IN");

  config.storage.user_metadata_writers = "operators";
  RtmHarness o(config);
  o.login("alice");
  o.login("op");
  CHECK(o.error("alice", "set_user_metadata", "", kSetName) == "FORBIDDEN");
  o.ok("op", "set_user_metadata", "uid=alice", kSetName);
}

TEST_CASE("storage: channel metadata: members write and read, and hear of changes") {
  auto config = rtm::test::harness_config();
  config.ops.uids = {"op"};
  config.channels.public_presence = {"lobby-*"};
  RtmHarness h(config);
  h.enter("alice", "room");
  h.enter("bob", "room");
  h.login("carol");
  h.login("op");
  const char* const kSeats = R"({"items":[{"key":"seat/1","value":"alice"}]})";
  CHECK(h.error("carol", "set_channel_metadata", "channel=room", kSeats) == "NOT_JOINED");
  CHECK(h.error("carol", "get_channel_metadata", "channel=room") == "NOT_JOINED");
  const auto mark = h.outbox.sent.size();
  auto r = h.ok("alice", "set_channel_metadata", "channel=room", kSeats);
  CHECK(text(r, "channel") == "room");
  CHECK(items(r) == Lines{"seat/1=alice@1"});
  auto events = messages(h, "rtm/events/room", mark);
  REQUIRE(events.size() == 1);
  CHECK(text(events[0], "event") == "metadata_changed");
  CHECK(text(events[0], "kind") == "set");
  CHECK(text(events[0], "channel") == "room");
  CHECK(text(events[0], "uid") == "alice");
  CHECK(events[0]["major_revision"].GetInt64() == 1);
  CHECK(items(events[0]) == Lines{"seat/1=alice@1"});
  r = h.ok("bob", "update_channel_metadata", "channel=room",
           R"({"items":[{"key":"seat/1","value":"bob","revision":1}]})");
  CHECK(items(r) == Lines{"seat/1=bob@2"});
  r = h.ok("bob", "remove_channel_metadata", "channel=room", R"({"keys":["seat/1"]})");
  events = messages(h, "rtm/events/room", mark);
  REQUIRE(events.size() == 3);
  CHECK(text(events[1], "kind") == "update");
  CHECK(text(events[2], "kind") == "remove");
  CHECK(items(events[2]) == Lines{"seat/1=bob@2"});
  // A remove that removes nothing tells no one.
  h.ok("bob", "remove_channel_metadata", "channel=room", R"({"keys":["seat/1"]})");
  CHECK(messages(h, "rtm/events/room", mark).size() == 3);
  // Operators write and read any channel; public_presence channels are read by anyone.
  h.ok("op", "set_channel_metadata", "channel=lobby-1", kSeats);
  h.ok("carol", "get_channel_metadata", "channel=lobby-1");
  h.ok("op", "get_channel_metadata", "channel=room");
  CHECK(h.error("carol", "set_channel_metadata", "channel=lobby-1", kSeats) == "NOT_JOINED");

  config.storage.channel_metadata_writers = "operators";
  RtmHarness o(config);
  o.enter("alice", "room");
  o.login("op");
  CHECK(o.error("alice", "set_channel_metadata", "channel=room", kSeats) == "FORBIDDEN");
  o.ok("op", "set_channel_metadata", "channel=room", kSeats);
  o.ok("alice", "get_channel_metadata", "channel=room");
}

TEST_CASE("storage: subscribers get a snapshot and then each change until their session ends") {
  RtmHarness h;
  h.login("alice");
  h.login("bob");
  h.ok("alice", "set_user_metadata", "", kSetName);
  auto mark = h.outbox.sent.size();
  auto r = h.ok("bob", "subscribe_user_metadata", "uid=alice");
  CHECK(text(r, "uid") == "alice");
  CHECK(text(r, "events_topic") == "rtm/u/bob/events/metadata");
  auto events = messages(h, "rtm/u/bob/events/metadata", mark);
  REQUIRE(events.size() == 1);
  CHECK(text(events[0], "event") == "metadata");
  CHECK(text(events[0], "kind") == "snapshot");
  CHECK(text(events[0], "uid") == "alice");
  CHECK(events[0]["major_revision"].GetInt64() == 1);
  CHECK(items(events[0]) == Lines{"name=Alice@1"});

  mark = h.outbox.sent.size();
  h.ok("alice", "set_user_metadata", "", R"({"items":[{"key":"name","value":"A2"}]})");
  h.ok("alice", "remove_user_metadata", "", R"({"keys":["name"]})");
  events = messages(h, "rtm/u/bob/events/metadata", mark);
  REQUIRE(events.size() == 2);
  CHECK(text(events[0], "kind") == "set");
  CHECK(text(events[0], "by") == "alice");
  CHECK(items(events[0]) == Lines{"name=A2@2"});
  CHECK(text(events[1], "kind") == "remove");
  CHECK(events[1]["major_revision"].GetInt64() == 3);
  CHECK(h.sent_to("rtm/u/alice/events/metadata", mark).empty());  // not a subscriber

  // Unsubscribed: no more events; a second unsubscribe is harmless.
  r = h.ok("bob", "unsubscribe_user_metadata", "uid=alice");
  CHECK(r["was_subscribed"].GetBool());
  r = h.ok("bob", "unsubscribe_user_metadata", "uid=alice");
  CHECK_FALSE(r["was_subscribed"].GetBool());
  mark = h.outbox.sent.size();
  h.ok("alice", "set_user_metadata", "", kSetName);
  CHECK(h.sent_to("rtm/u/bob/events/metadata", mark).empty());

  // A subscription belongs to the session: a logout (or a new login) ends it.
  h.ok("bob", "subscribe_user_metadata", "uid=alice");
  h.ok("bob", "logout", "");
  h.login("bob");
  mark = h.outbox.sent.size();
  h.ok("alice", "set_user_metadata", "", kSetName);
  CHECK(h.sent_to("rtm/u/bob/events/metadata", mark).empty());
}

TEST_CASE("storage: limits answer LIMIT_METADATA naming the config key") {
  auto config = rtm::test::harness_config();
  config.storage.metadata.max_value_bytes = 4;
  config.storage.metadata.max_items = 2;
  config.storage.max_metadata_subscriptions = 1;
  RtmHarness h(config);
  h.login("alice");
  auto at = h.send("alice", "set_user_metadata", "", R"({"items":[{"key":"k","value":"12345"}]})");
  auto doc = rtm::test::parse_json(h.outbox.sent[at].payload);
  CHECK(text(doc, "error") == "LIMIT_METADATA");
  CHECK(text(doc, "message").find("storage.max_value_bytes") != std::string::npos);
  h.ok("alice", "set_user_metadata", "",
       R"({"items":[{"key":"a","value":"1"},{"key":"b","value":"2"}]})");
  at = h.send("alice", "set_user_metadata", "", R"({"items":[{"key":"c","value":"3"}]})");
  doc = rtm::test::parse_json(h.outbox.sent[at].payload);
  CHECK(text(doc, "error") == "LIMIT_METADATA");
  CHECK(text(doc, "message").find("storage.max_items") != std::string::npos);
  h.ok("alice", "subscribe_user_metadata", "uid=bob");
  h.ok("alice", "subscribe_user_metadata", "uid=bob");  // again: no new subscription
  CHECK(h.error("alice", "subscribe_user_metadata", "uid=carol") == "LIMIT_METADATA_SUBSCRIPTIONS");

  // A reload (SIGHUP) applies new limits and writers to the next calls.
  auto next = config;
  next.storage.metadata.max_value_bytes = 8;
  next.storage.user_metadata_writers = "operators";
  h.core->reload(next);
  CHECK(h.error("alice", "set_user_metadata", "", R"({"items":[{"key":"a","value":"123456"}]})") ==
        "FORBIDDEN");
  next.storage.user_metadata_writers = "self";
  h.core->reload(next);
  h.ok("alice", "set_user_metadata", "", R"({"items":[{"key":"a","value":"123456"}]})");
}

TEST_CASE("storage: every metadata limit refuses with LIMIT_METADATA and its key") {
  struct Case {
    const char* key;
    void (*set)(rtm::gateway::Config&);
    const char* body;
  };
  const Case cases[] = {
      {"storage.max_key_bytes", [](rtm::gateway::Config& c) { c.storage.metadata.max_key_bytes = 3; },
       R"({"items":[{"key":"long","value":"1"}]})"},
      {"storage.max_value_bytes", [](rtm::gateway::Config& c) { c.storage.metadata.max_value_bytes = 3; },
       R"({"items":[{"key":"k","value":"1234"}]})"},
      {"storage.max_call_bytes", [](rtm::gateway::Config& c) { c.storage.metadata.max_call_bytes = 5; },
       R"({"items":[{"key":"a","value":"123"},{"key":"b","value":"123"}]})"},
      {"storage.max_items_per_call", [](rtm::gateway::Config& c) { c.storage.metadata.max_items_per_call = 1; },
       R"({"items":[{"key":"a","value":"1"},{"key":"b","value":"2"}]})"},
      {"storage.max_items", [](rtm::gateway::Config& c) { c.storage.metadata.max_items = 2; },
       R"({"items":[{"key":"a","value":"1"},{"key":"b","value":"2"},{"key":"c","value":"3"}]})"},
      {"storage.max_metadata_bytes", [](rtm::gateway::Config& c) { c.storage.metadata.max_metadata_bytes = 5; },
       R"({"items":[{"key":"a","value":"123"},{"key":"b","value":"123"}]})"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    auto config = rtm::test::harness_config();
    c.set(config);
    RtmHarness h(config);
    h.enter("alice", "room");
    for (const auto& [op, query] : {std::pair{"set_user_metadata", ""},
                                    std::pair{"set_channel_metadata", "channel=room"}}) {
      CAPTURE(op);
      const auto at = h.send("alice", op, query, c.body);
      const auto doc = rtm::test::parse_json(h.outbox.sent[at].payload);
      REQUIRE(doc.HasMember("error"));
      CHECK(text(doc, "error") == "LIMIT_METADATA");
      CHECK(doc["code"].GetInt() == 48);
      CHECK(text(doc, "message").find(c.key) != std::string::npos);
    }
    CHECK(h.ok("alice", "get_user_metadata", "")["major_revision"].GetInt64() == 0);
  }
}

TEST_CASE("storage: the users and channels with metadata are bounded in all") {
  auto config = rtm::test::harness_config();
  config.storage.metadata.max_user_metadata = 2;
  config.storage.metadata.max_channel_metadata = 1;
  RtmHarness h(config);
  for (const char* uid : {"alice", "bob", "carol"}) h.enter(uid, "room");
  h.ok("alice", "join", "channel=hall");
  h.ok("alice", "set_user_metadata", "", kSetName);
  h.ok("bob", "set_user_metadata", "", kSetName);
  auto refused = rtm::test::parse_json(
      h.outbox.sent[h.send("carol", "set_user_metadata", "", kSetName)].payload);
  CHECK(text(refused, "error") == "LIMIT_METADATA");
  CHECK(text(refused, "message").find("storage.max_user_metadata") != std::string::npos);
  // Those that have metadata go on writing, even with every item removed.
  h.ok("alice", "remove_user_metadata", "");
  h.ok("alice", "set_user_metadata", "", kSetName);

  h.ok("alice", "set_channel_metadata", "channel=room", kSetName);
  refused = rtm::test::parse_json(
      h.outbox.sent[h.send("alice", "set_channel_metadata", "channel=hall", kSetName)].payload);
  CHECK(text(refused, "error") == "LIMIT_METADATA");
  CHECK(text(refused, "message").find("storage.max_channel_metadata") != std::string::npos);
  CHECK(h.ok("alice", "get_channel_metadata", "channel=hall")["major_revision"].GetInt64() == 0);
  h.ok("bob", "update_channel_metadata", "channel=room",
       R"({"items":[{"key":"name","value":"Bob"}]})");
}

TEST_CASE("storage: metadata and subscriptions survive a restart on sqlite") {
  char pattern[] = "/tmp/rtm-storage-test-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  auto config = rtm::test::harness_config();
  config.state.backend = "sqlite";
  config.state.path = dir + "/state.db";
  {
    RtmHarness h(config);
    h.enter("alice", "room");
    h.login("bob");
    h.ok("alice", "set_user_metadata", "",
         R"({"items":[{"key":"name","value":"Alice"}],"record_author":true})");
    h.ok("alice", "set_channel_metadata", "channel=room", kSetName);
    h.ok("bob", "subscribe_user_metadata", "uid=alice");

    h.restart(h.now + 5000);
    auto r = h.ok("bob", "get_user_metadata", "uid=alice");
    CHECK(r["major_revision"].GetInt64() == 1);
    CHECK(items(r) == Lines{"name=Alice@1"});
    CHECK(text(r["items"][0], "author") == "alice");
    r = h.ok("alice", "get_channel_metadata", "channel=room");
    CHECK(items(r) == Lines{"name=Alice@1"});
    // The subscription came back with bob's session.
    const auto mark = h.outbox.sent.size();
    h.ok("alice", "set_user_metadata", "",
         R"({"items":[{"key":"name","value":"A2","revision":1}]})");
    CHECK(h.sent_to("rtm/u/bob/events/metadata", mark).size() == 1);
    // CAS keeps working on the restored revisions.
    CHECK(h.error("alice", "set_user_metadata", "",
                  R"({"items":[{"key":"name","value":"A3","revision":1}]})") ==
          "ITEM_REVISION_MISMATCH");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // TEST_SUITE
