// User and channel metadata (issue 15) through plain MQTT: a real Mosquitto, the real
// gateway on its sqlite state, Paho clients. Two users race on one item with compare-and-set,
// subscribers and channel members get the events, and the metadata survives kill -9.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace rtm::test;

namespace {

GatewayOptions sqlite_gateway(const TempDir& dir) {
  GatewayOptions o;
  o.extra_yaml = "state:\n  backend: sqlite\n  path: " + (dir.path() / "state.db").string() + "\n";
  return o;
}

// A plain MQTT client of a user, subscribed to its own subtree and logged in.
std::unique_ptr<Client> user(const std::string& uri, const std::string& uid) {
  auto c = std::make_unique<Client>(uri, unique_id(uid));
  c->connect();
  c->subscribe("rtm/u/" + uid + "/#");
  auto d = request(*c, uid, "login?msg_id=login-" + unique_id(uid),
                   "{\"token\":\"" + token_for(uid) + "\"}");
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
  return c;
}

rapidjson::Document must(Client& c, const std::string& uid, const std::string& uri,
                         const std::string& body = "") {
  auto d = request(c, uid, uri, body);
  REQUIRE_MESSAGE(answered_ok(d), uri << ": " << json_text(d));
  return d;
}

struct Stack {
  Mosquitto broker;
  TempDir state_dir;
  GatewayProcess gw{broker.uri(), sqlite_gateway(state_dir)};
  Stack() { REQUIRE(wait_gateway_ready(broker.uri())); }
};

}  // namespace

TEST_CASE("storage: two users race on one seat with compare-and-set and exactly one wins") {
  Stack s;
  auto alice = user(s.broker.uri(), "alice");
  auto bob = user(s.broker.uri(), "bob");
  must(*alice, "alice", "join?channel=lobby&msg_id=j1");
  must(*bob, "bob", "join?channel=lobby&msg_id=j2");
  alice->subscribe("rtm/events/lobby");

  for (int round = 0; round < 5; ++round) {
    const std::string key = "seat/" + std::to_string(round);
    const std::string id = std::to_string(round);
    // Both claim the seat (revision 0: only if free) before either answer is read.
    const std::string a_uri = "set_channel_metadata?channel=lobby&msg_id=a" + id;
    const std::string b_uri = "set_channel_metadata?channel=lobby&msg_id=b" + id;
    auto claim = [&](const std::string& who) {
      return R"({"items":[{"key":")" + key + R"(","value":")" + who + R"(","revision":0}]})";
    };
    alice->publish("rtm/req/alice/" + a_uri, claim("alice"));
    bob->publish("rtm/req/bob/" + b_uri, claim("bob"));
    auto a = alice->wait_for("rtm/u/alice/res/" + a_uri);
    auto b = bob->wait_for("rtm/u/bob/res/" + b_uri);
    REQUIRE(a);
    REQUIRE(b);
    const auto ad = parse_json(a->payload);
    const auto bd = parse_json(b->payload);
    CHECK(answered_ok(ad) != answered_ok(bd));  // exactly one
    const auto& loser = answered_ok(ad) ? bd : ad;
    REQUIRE(loser.HasMember("error"));
    CHECK(std::string(loser["error"].GetString()) == "ITEM_REVISION_MISMATCH");
    const std::string winner = answered_ok(ad) ? "alice" : "bob";
    // Members hear of the one change, with the winner's value.
    auto e = wait_event(*alice, "rtm/events/lobby", "metadata_changed");
    REQUIRE(e);
    CHECK(std::string((*e)["uid"].GetString()) == winner);
    CHECK(std::string((*e)["items"][0]["key"].GetString()) == key);
    CHECK(std::string((*e)["items"][0]["value"].GetString()) == winner);
    const auto got = must(*bob, "bob", "get_channel_metadata?channel=lobby&msg_id=g" + id,
                          R"({"keys":[")" + key + R"("]})");
    CHECK(std::string(got["result"]["items"][0]["value"].GetString()) == winner);
  }
}

TEST_CASE("storage: a subscriber gets a snapshot and each change of a user's metadata") {
  Stack s;
  auto alice = user(s.broker.uri(), "alice");
  auto bob = user(s.broker.uri(), "bob");
  must(*alice, "alice", "set_user_metadata?msg_id=s1",
       R"({"items":[{"key":"name","value":"Alice"}],"record_author":true,"record_ts":true})");
  must(*bob, "bob", "subscribe_user_metadata?uid=alice&msg_id=sub1");
  auto snap = wait_event(*bob, "rtm/u/bob/events/metadata", "metadata");
  REQUIRE(snap);
  CHECK(std::string((*snap)["kind"].GetString()) == "snapshot");
  CHECK(std::string((*snap)["items"][0]["value"].GetString()) == "Alice");
  CHECK(std::string((*snap)["items"][0]["author"].GetString()) == "alice");

  must(*alice, "alice", "update_user_metadata?msg_id=u1",
       R"({"items":[{"key":"name","value":"Al","revision":1}]})");
  auto change = wait_event(*bob, "rtm/u/bob/events/metadata", "metadata");
  REQUIRE(change);
  CHECK(std::string((*change)["kind"].GetString()) == "update");
  CHECK((*change)["major_revision"].GetInt64() == 2);
  CHECK(std::string((*change)["items"][0]["value"].GetString()) == "Al");
  // bob may read but not write alice's metadata.
  auto refused = request(*bob, "bob", "set_user_metadata?uid=alice&msg_id=x1",
                         R"({"items":[{"key":"name","value":"Bob"}]})");
  REQUIRE(refused.HasMember("error"));
  CHECK(std::string(refused["error"].GetString()) == "FORBIDDEN");
}

TEST_CASE("storage: metadata and subscriptions survive kill -9 and a restart on sqlite") {
  Stack s;
  auto alice = user(s.broker.uri(), "alice");
  auto bob = user(s.broker.uri(), "bob");
  must(*alice, "alice", "join?channel=room&msg_id=j1");
  must(*alice, "alice", "set_user_metadata?msg_id=s1",
       R"({"items":[{"key":"name","value":"Alice"},{"key":"level","value":"7"}]})");
  must(*alice, "alice", "set_channel_metadata?channel=room&msg_id=s2",
       R"({"items":[{"key":"topic","value":"chess"}]})");
  must(*bob, "bob", "subscribe_user_metadata?uid=alice&msg_id=sub1");
  REQUIRE(wait_event(*bob, "rtm/u/bob/events/metadata", "metadata"));  // the snapshot

  s.gw.kill_hard();
  s.gw.start();
  REQUIRE(wait_gateway_ready(s.broker.uri()));

  auto user_md = must(*bob, "bob", "get_user_metadata?uid=alice&msg_id=g1");
  CHECK(user_md["result"]["major_revision"].GetInt64() == 1);
  CHECK(user_md["result"]["items"].Size() == 2);
  auto channel_md = must(*alice, "alice", "get_channel_metadata?channel=room&msg_id=g2");
  CHECK(std::string(channel_md["result"]["items"][0]["value"].GetString()) == "chess");
  // Revisions are what they were: a stale CAS still fails, the right one passes, and bob's
  // subscription (of a session that is back) still delivers.
  auto stale = request(*alice, "alice", "set_user_metadata?msg_id=s3",
                       R"({"items":[{"key":"name","value":"X"}],"major_revision":0})");
  REQUIRE(stale.HasMember("error"));
  CHECK(std::string(stale["error"].GetString()) == "MAJOR_REVISION_MISMATCH");
  must(*alice, "alice", "set_user_metadata?msg_id=s4",
       R"({"items":[{"key":"name","value":"Alicia"}],"major_revision":1})");
  auto change = wait_event(*bob, "rtm/u/bob/events/metadata", "metadata");
  REQUIRE(change);
  CHECK(std::string((*change)["kind"].GetString()) == "set");
  CHECK(std::string((*change)["items"][0]["value"].GetString()) == "Alicia");
}

TEST_CASE("storage: presence states reach the members and end with the session") {
  Stack s;
  auto alice = user(s.broker.uri(), "alice");
  auto bob = user(s.broker.uri(), "bob");
  must(*alice, "alice", "join?channel=table&msg_id=js1");
  must(*bob, "bob", "join?channel=table&msg_id=js2");
  alice->subscribe("rtm/events/table");

  must(*bob, "bob", "set_state?channel=table&msg_id=st1", R"({"states":{"seat":"2","hand":"up"}})");
  auto e = wait_event(*alice, "rtm/events/table", "state_changed");
  REQUIRE(e);
  CHECK(std::string((*e)["uid"].GetString()) == "bob");
  CHECK(std::string((*e)["states"]["seat"].GetString()) == "2");
  CHECK(std::string((*e)["states"]["hand"].GetString()) == "up");

  auto who = must(*alice, "alice", "who_now?channel=table&include_state=true&msg_id=w1");
  CHECK(std::string(who["result"]["states"]["bob"]["seat"].GetString()) == "2");

  // bob logs out and back in: his states in the channel are gone, and he has none to show.
  must(*bob, "bob", "logout?msg_id=lo1");
  auto again =
      request(*bob, "bob", "login?msg_id=login-again", "{\"token\":\"" + token_for("bob") + "\"}");
  REQUIRE(answered_ok(again));
  must(*bob, "bob", "join?channel=table&msg_id=js3");
  who = must(*alice, "alice", "who_now?channel=table&include_state=true&msg_id=w2");
  CHECK(who["result"]["states"].MemberCount() == 0);
  auto got = must(*alice, "alice", "get_state?channel=table&uid=bob&msg_id=g1");
  CHECK(got["result"]["states"].MemberCount() == 0);
}
