// The lock operations (issue 15) as clients see them, without a broker (rtm_harness.hpp):
// answers, every error on the wire, the `lock` channel events, holders and waiters that
// leave or whose session ends (the ttl countdown on the harness's clock), lock-guarded
// channel metadata, a restart on sqlite; and the MemoryLockStore under the seam.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "rtm/gateway/lock_store.hpp"
#include "rtm/gateway/metrics.hpp"
#include "rtm_harness.hpp"

namespace {

using rtm::test::text;

using rtm::test::RtmHarness;
using Lines = std::vector<std::string>;

// The lock events on the channel from `from` on, as "kind/lock/uid" ("kind/lock" without
// uid; set adds "/ttl").
Lines lock_events(const RtmHarness& h, const std::string& channel, std::size_t from) {
  Lines out;
  for (auto i : h.sent_to("rtm/events/" + channel, from)) {
    const auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    if (text(e, "event") != "lock") continue;
    CHECK(text(e, "channel") == channel);
    CHECK(e["ts"].GetInt64() == h.now);
    std::string line = text(e, "kind") + "/" + text(e, "lock");
    if (e.HasMember("uid")) line += "/" + text(e, "uid");
    if (e.HasMember("ttl")) line += "/" + std::to_string(e["ttl"].GetInt64());
    out.push_back(line);
  }
  return out;
}

// get_locks as "name ttl owner [waiters] expires_at" lines.
Lines locks_of(RtmHarness& h, const std::string& uid, const std::string& channel) {
  const auto r = h.ok(uid, "get_locks", "channel=" + channel);
  CHECK(text(r, "channel") == channel);
  Lines out;
  for (const auto& l : r["locks"].GetArray()) {
    std::string line = text(l, "lock") + " " + std::to_string(l["ttl"].GetInt64()) + " " +
                       (l.HasMember("owner") ? text(l, "owner") : "-") + " [";
    for (const auto& w : l["waiters"].GetArray()) {
      line += (line.back() == '[' ? "" : ",") + std::string(w.GetString());
    }
    line += "]";
    if (l.HasMember("expires_at")) line += " " + std::to_string(l["expires_at"].GetInt64());
    out.push_back(line);
  }
  return out;
}

std::string status(const rapidjson::Document& r) {
  return text(r, "status");
}

// A presence message as a live subscriber gets it (not retained): a Will when offline.
rtm::gateway::Message presence(const std::string& uid, const std::string& state,
                               const std::string& connection) {
  return rtm::gateway::Message{"rtm/presence/" + uid,
                               R"({"state":")" + state + R"(","session":")" + connection + R"("})",
                               1, false};
}

// Each uid logged in and a member of "room".
void enter_all(RtmHarness& h, const Lines& uids) {
  for (const auto& uid : uids) h.enter(uid, "room");
}

// Lock `lock` (ttl_s) set in "room" and held by the first of `line`, the others waiting in
// that order.
void hold(RtmHarness& h, const std::string& lock, int ttl_s, const Lines& line) {
  const std::string query = "channel=room&lock=" + lock;
  h.ok(line[0], "set_lock", query + "&ttl=" + std::to_string(ttl_s));
  h.ok(line[0], "acquire_lock", query);
  for (std::size_t i = 1; i < line.size(); ++i)
    h.ok(line[i], "acquire_lock", query + "&retry=true");
}

// A harness whose locks may have a ttl of 1 s (storage.lock_min_ttl_s).
rtm::gateway::Config short_ttl_config() {
  auto config = rtm::test::harness_config();
  config.storage.locks.min_ttl_s = 1;
  return config;
}

}  // namespace

TEST_CASE("locks: set, acquire, queue and release hand the lock on in order, with events") {
  RtmHarness h;
  h.enter("bob", "room");
  h.enter("carol", "room");
  h.enter("dave", "room");
  auto mark = h.outbox.sent.size();
  auto r = h.ok("bob", "set_lock", "channel=room&lock=host&ttl=30");
  CHECK(text(r, "channel") == "room");
  CHECK(text(r, "lock") == "host");
  CHECK(r["ttl"].GetInt64() == 30);
  CHECK(lock_events(h, "room", mark) == Lines{"set/host/30"});
  CHECK(locks_of(h, "carol", "room") == Lines{"host 30 - []"});

  mark = h.outbox.sent.size();
  r = h.ok("bob", "acquire_lock", "channel=room&lock=host");
  CHECK(status(r) == "acquired");
  CHECK_FALSE(r.HasMember("position"));
  CHECK(lock_events(h, "room", mark) == Lines{"acquired/host/bob"});
  CHECK(status(h.ok("bob", "acquire_lock", "channel=room&lock=host")) == "already_held");

  // Waiters, in the body too; asking again keeps the place.
  r = h.ok("carol", "acquire_lock", "channel=room&lock=host&retry=true");
  CHECK(status(r) == "queued");
  CHECK(r["position"].GetInt64() == 1);
  r = h.ok("dave", "acquire_lock", "channel=room", R"({"lock":"host","retry":true})");
  CHECK(status(r) == "queued");
  CHECK(r["position"].GetInt64() == 2);
  r = h.ok("carol", "acquire_lock", "channel=room&lock=host&retry=1");
  CHECK(status(r) == "already_queued");
  CHECK(r["position"].GetInt64() == 1);
  CHECK(locks_of(h, "dave", "room") == Lines{"host 30 bob [carol,dave]"});

  mark = h.outbox.sent.size();
  r = h.ok("bob", "release_lock", "channel=room&lock=host");
  CHECK(text(r, "lock") == "host");
  CHECK(lock_events(h, "room", mark) == Lines{"released/host/bob", "acquired/host/carol"});
  CHECK(locks_of(h, "bob", "room") == Lines{"host 30 carol [dave]"});

  // A waiter that releases leaves the queue, and nobody hears of it.
  mark = h.outbox.sent.size();
  h.ok("dave", "release_lock", "channel=room&lock=host");
  CHECK(lock_events(h, "room", mark).empty());
  CHECK(locks_of(h, "bob", "room") == Lines{"host 30 carol []"});
  h.ok("carol", "release_lock", "channel=room&lock=host");
  CHECK(locks_of(h, "bob", "room") == Lines{"host 30 - []"});
}

TEST_CASE("locks: revoke takes the lock from its holder and remove drops it with its queue") {
  RtmHarness h;
  enter_all(h, {"bob", "carol", "dave"});
  hold(h, "host", 10, {"bob", "carol", "dave"});

  auto mark = h.outbox.sent.size();
  auto r = h.ok("dave", "revoke_lock", "channel=room&lock=host&uid=bob");
  CHECK(text(r, "uid") == "bob");
  CHECK(lock_events(h, "room", mark) == Lines{"released/host/bob", "acquired/host/carol"});
  CHECK(h.error("dave", "revoke_lock", "channel=room&lock=host&uid=bob") == "NOT_LOCK_HOLDER");

  mark = h.outbox.sent.size();
  r = h.ok("bob", "remove_lock", "channel=room&lock=host");
  CHECK(text(r, "lock") == "host");
  CHECK(lock_events(h, "room", mark) == Lines{"removed/host/carol"});
  CHECK(locks_of(h, "bob", "room").empty());
  // A free lock removed names no holder.
  h.ok("bob", "set_lock", "channel=room&lock=free&ttl=10");
  mark = h.outbox.sent.size();
  h.ok("bob", "remove_lock", "channel=room&lock=free");
  CHECK(lock_events(h, "room", mark) == Lines{"removed/free"});
}

TEST_CASE("locks: every refusal answers its error code and changes nothing") {
  auto config = rtm::test::harness_config();
  config.storage.locks.max_locks = 2;
  config.storage.locks.max_waiters = 1;
  RtmHarness h(config);
  h.enter("bob", "room");
  h.enter("carol", "room");
  h.enter("dave", "room");
  h.login("erin");  // not a member

  // Parameters.
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host") == "MISSING_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&ttl=30") == "MISSING_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host&ttl=9") == "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host&ttl=301") == "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host&ttl=ten") == "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room", R"({"lock":"","ttl":30})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room", R"({"lock":"a\u0001b","ttl":30})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=" + std::string(65, 'x') + "&ttl=30") ==
        "INVALID_PARAMETER");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host&ttl=30&owner=bob") ==
        "INVALID_PARAMETER");
  CHECK(h.error("bob", "get_locks", "channel=ro+om") == "INVALID_NAME");
  CHECK(locks_of(h, "bob", "room").empty());

  // Membership: every caller.
  for (const auto* op :
       {"set_lock", "acquire_lock", "release_lock", "revoke_lock", "remove_lock"}) {
    CHECK_MESSAGE(h.error("erin", op, "channel=room&lock=host") == "NOT_JOINED", op);
  }
  CHECK(h.error("erin", "get_locks", "channel=room") == "NOT_JOINED");
  CHECK(h.error("bob", "get_locks", "channel=elsewhere") == "NOT_JOINED");

  // The lock's state.
  for (const auto* op : {"acquire_lock", "release_lock", "remove_lock"}) {
    CHECK_MESSAGE(h.error("bob", op, "channel=room&lock=host") == "LOCK_NOT_FOUND", op);
  }
  CHECK(h.error("bob", "revoke_lock", "channel=room&lock=host&uid=carol") == "LOCK_NOT_FOUND");
  h.ok("bob", "set_lock", "channel=room&lock=host&ttl=30");
  CHECK(h.error("carol", "set_lock", "channel=room&lock=host&ttl=60") == "LOCK_EXISTS");
  h.ok("bob", "acquire_lock", "channel=room&lock=host");
  CHECK(h.error("carol", "acquire_lock", "channel=room&lock=host") == "LOCK_HELD");
  CHECK(h.error("carol", "acquire_lock", "channel=room&lock=host&retry=maybe") ==
        "INVALID_PARAMETER");
  CHECK(h.error("carol", "release_lock", "channel=room&lock=host") == "NOT_LOCK_HOLDER");
  CHECK(h.error("carol", "revoke_lock", "channel=room&lock=host&uid=dave") == "NOT_LOCK_HOLDER");
  CHECK(h.error("carol", "revoke_lock", "channel=room&lock=host") == "MISSING_PARAMETER");
  CHECK(h.error("carol", "revoke_lock", "channel=room&lock=host&uid=a+b") == "INVALID_NAME");

  // Limits: locks per channel, waiters per lock.
  h.ok("carol", "acquire_lock", "channel=room&lock=host&retry=true");
  const auto refused =
      h.outbox.sent[h.send("dave", "acquire_lock", "channel=room&lock=host&retry=true")];
  const auto doc = rtm::test::parse_json(refused.payload);
  CHECK(text(doc, "error") == "LIMIT_LOCKS");
  CHECK(text(doc, "message").find("storage.max_lock_waiters") != std::string::npos);
  h.ok("bob", "set_lock", "channel=room&lock=second&ttl=30");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=third&ttl=30") == "LIMIT_LOCKS");
  CHECK(locks_of(h, "bob", "room") == Lines{"host 30 bob [carol]", "second 30 - []"});
}

TEST_CASE("locks: the channels with locks are bounded in all") {
  auto config = rtm::test::harness_config();
  config.storage.locks.max_channels = 1;
  RtmHarness h(config);
  h.enter("bob", "room");
  h.ok("bob", "join", "channel=hall");
  h.ok("bob", "set_lock", "channel=room&lock=host&ttl=30");
  const auto at = h.send("bob", "set_lock", "channel=hall&lock=host&ttl=30");
  const auto doc = rtm::test::parse_json(h.outbox.sent[at].payload);
  CHECK(text(doc, "error") == "LIMIT_LOCKS");
  CHECK(text(doc, "message").find("storage.max_lock_channels") != std::string::npos);
  CHECK(locks_of(h, "bob", "hall").empty());
  // A channel that has locks takes more; once its last lock goes, another channel may.
  h.ok("bob", "set_lock", "channel=room&lock=dealer&ttl=30");
  h.ok("bob", "remove_lock", "channel=room&lock=host");
  h.ok("bob", "remove_lock", "channel=room&lock=dealer");
  h.ok("bob", "set_lock", "channel=hall&lock=host&ttl=30");
}

TEST_CASE("locks: get_locks is read as who_now is, the other operations need a member") {
  auto config = rtm::test::harness_config();
  config.channels.public_presence = {"lobby-*"};
  config.ops.uids = {"op"};
  RtmHarness h(config);
  h.enter("bob", "lobby-1");
  h.ok("bob", "join", "channel=room");
  h.login("erin");
  h.login("op");
  h.ok("bob", "set_lock", "channel=lobby-1&lock=host&ttl=10");
  const auto r = h.ok("erin", "get_locks", "channel=lobby-1");  // public presence
  CHECK(r["locks"].Size() == 1);
  CHECK(h.error("erin", "acquire_lock", "channel=lobby-1&lock=host") == "NOT_JOINED");
  CHECK(h.error("erin", "get_locks", "channel=room") == "NOT_JOINED");
  CHECK(h.ok("op", "get_locks", "channel=room")["locks"].Size() == 0);  // an operator reads
  CHECK(h.error("op", "set_lock", "channel=room&lock=host&ttl=10") == "NOT_JOINED");
}

TEST_CASE("locks: storage.lock_managers operators keeps set, remove and revoke for operators") {
  auto config = rtm::test::harness_config();
  config.storage.lock_managers = "operators";
  config.ops.uids = {"op"};
  RtmHarness h(config);
  h.enter("bob", "room");
  h.enter("op", "room");
  CHECK(h.error("bob", "set_lock", "channel=room&lock=host&ttl=30") == "FORBIDDEN");
  h.ok("op", "set_lock", "channel=room&lock=host&ttl=30");
  // Acquire and release are for every member.
  CHECK(status(h.ok("bob", "acquire_lock", "channel=room&lock=host")) == "acquired");
  CHECK(h.error("bob", "revoke_lock", "channel=room&lock=host&uid=bob") == "FORBIDDEN");
  CHECK(h.error("bob", "remove_lock", "channel=room&lock=host") == "FORBIDDEN");
  h.ok("op", "revoke_lock", "channel=room&lock=host&uid=bob");
  h.ok("op", "remove_lock", "channel=room&lock=host");
  // An operator is a member like any other caller.
  h.ok("op", "leave", "channel=room");
  CHECK(h.error("op", "set_lock", "channel=room&lock=host&ttl=30") == "NOT_JOINED");
}

TEST_CASE("locks: a holder that leaves keeps the lock for the ttl if it joins again") {
  RtmHarness h(short_ttl_config());
  enter_all(h, {"bob", "carol"});
  hold(h, "host", 10, {"bob", "carol"});

  const std::int64_t left_at = h.now;
  h.ok("bob", "leave", "channel=room");
  CHECK(locks_of(h, "carol", "room") ==
        Lines{"host 10 bob [carol] " + std::to_string(left_at + 10000)});
  h.advance_to(left_at + 9000);
  const auto mark = h.outbox.sent.size();
  h.ok("bob", "join", "channel=room");  // back in time: the countdown stops
  CHECK(locks_of(h, "carol", "room") == Lines{"host 10 bob [carol]"});
  h.advance_to(left_at + 20000);
  CHECK(lock_events(h, "room", mark).empty());
  CHECK(status(h.ok("bob", "acquire_lock", "channel=room&lock=host")) == "already_held");
}

TEST_CASE(
    "locks: a holder whose connection drops loses the lock to the next waiter after the ttl") {
  RtmHarness h(short_ttl_config());
  enter_all(h, {"bob", "carol", "dave"});
  hold(h, "host", 2, {"bob", "carol"});
  hold(h, "other", 5, {"bob", "dave"});

  // bob's Will: its session ends (member_timed_out), its locks count down.
  h.deliver(presence("bob", "online", "c1"));
  const std::int64_t dropped_at = h.now;
  h.deliver(presence("bob", "offline", "c1"));
  CHECK(locks_of(h, "carol", "room") ==
        Lines{"host 2 bob [carol] " + std::to_string(dropped_at + 2000),
              "other 5 bob [dave] " + std::to_string(dropped_at + 5000)});

  auto mark = h.outbox.sent.size();
  h.advance_to(dropped_at + 1999);
  CHECK(lock_events(h, "room", mark).empty());
  h.advance_to(dropped_at + 2000);
  CHECK(lock_events(h, "room", mark) == Lines{"expired/host/bob", "acquired/host/carol"});
  mark = h.outbox.sent.size();
  h.advance_to(dropped_at + 5000);
  CHECK(lock_events(h, "room", mark) == Lines{"expired/other/bob", "acquired/other/dave"});
  CHECK(locks_of(h, "carol", "room") == Lines{"host 2 carol []", "other 5 dave []"});

  // Logged in and joined again too late: the locks are gone.
  h.enter("bob", "room");
  CHECK(h.error("bob", "release_lock", "channel=room&lock=host") == "NOT_LOCK_HOLDER");
}

TEST_CASE("locks: a waiter that leaves or logs out drops out of the queue") {
  RtmHarness h;
  enter_all(h, {"bob", "carol", "dave"});
  hold(h, "host", 10, {"bob", "carol", "dave"});
  h.ok("carol", "leave", "channel=room");
  CHECK(locks_of(h, "bob", "room") == Lines{"host 10 bob [dave]"});
  h.ok("dave", "logout", "");
  CHECK(locks_of(h, "bob", "room") == Lines{"host 10 bob []"});
  // The holder ending its session: the countdown, and nobody to hand the lock to.
  const auto mark = h.outbox.sent.size();
  const std::int64_t at = h.now;
  h.ok("bob", "logout", "");
  h.enter("carol", "room");
  h.advance_to(at + 10000);
  CHECK(lock_events(h, "room", mark) == Lines{"expired/host/bob"});
  CHECK(locks_of(h, "carol", "room") == Lines{"host 10 - []"});
}

TEST_CASE("locks: a holder that comes back within the ttl keeps its lock and hears nothing") {
  RtmHarness h;
  h.enter("bob", "room");
  hold(h, "host", 10, {"bob"});
  const std::int64_t at = h.now;
  h.ok("bob", "logout", "");
  h.advance_to(at + 5000);
  const auto mark = h.outbox.sent.size();
  h.enter("bob", "room");
  h.advance_to(at + 60000);
  CHECK(lock_events(h, "room", mark).empty());
  CHECK(locks_of(h, "bob", "room") == Lines{"host 10 bob []"});
}

TEST_CASE("locks: a get_locks after a deadline passed shows the next holder at once") {
  RtmHarness h;
  enter_all(h, {"bob", "carol"});
  hold(h, "host", 10, {"bob", "carol"});
  h.ok("bob", "leave", "channel=room");
  h.now += 10000;  // no timer has run yet
  const auto mark = h.outbox.sent.size();
  CHECK(locks_of(h, "carol", "room") == Lines{"host 10 carol []"});
  CHECK(lock_events(h, "room", mark) == Lines{"expired/host/bob", "acquired/host/carol"});
}

TEST_CASE("locks: channel metadata writes naming a lock need its holder") {
  RtmHarness h;
  h.enter("bob", "room");
  h.enter("carol", "room");
  const std::string body = R"({"items":[{"key":"k","value":"v"}],"lock":"host"})";
  CHECK(h.error("bob", "set_channel_metadata", "channel=room", body) == "LOCK_NOT_FOUND");
  h.ok("bob", "set_lock", "channel=room&lock=host&ttl=10");
  CHECK(h.error("bob", "set_channel_metadata", "channel=room", body) == "NOT_LOCK_HOLDER");
  h.ok("carol", "acquire_lock", "channel=room&lock=host");
  CHECK(h.error("bob", "update_channel_metadata", "channel=room", body) == "NOT_LOCK_HOLDER");
  CHECK(h.error("bob", "remove_channel_metadata", "channel=room&lock=host") == "NOT_LOCK_HOLDER");
  h.ok("carol", "set_channel_metadata", "channel=room", body);
  h.ok("carol", "update_channel_metadata", "channel=room", body);
  h.ok("carol", "remove_channel_metadata", "channel=room&lock=host");
  // Without `lock` (and no storage.channel_metadata_lock) anyone who may write writes.
  h.ok("bob", "set_channel_metadata", "channel=room", R"({"items":[{"key":"k","value":"v"}]})");
  // User metadata takes no lock.
  CHECK(h.error("bob", "set_user_metadata", "", body) == "INVALID_PARAMETER");
}

TEST_CASE("locks: storage.channel_metadata_lock guards the metadata of channels where it is set") {
  auto config = rtm::test::harness_config();
  config.storage.channel_metadata_lock = "editor";
  RtmHarness h(config);
  h.enter("bob", "room");
  h.enter("carol", "room");
  h.ok("bob", "join", "channel=other");
  const std::string body = R"({"items":[{"key":"k","value":"v"}]})";
  h.ok("bob", "set_channel_metadata", "channel=room", body);  // not set: no guard
  h.ok("bob", "set_lock", "channel=room&lock=editor&ttl=10");
  CHECK(h.error("bob", "set_channel_metadata", "channel=room", body) == "NOT_LOCK_HOLDER");
  h.ok("carol", "acquire_lock", "channel=room&lock=editor");
  CHECK(h.error("bob", "set_channel_metadata", "channel=room", body) == "NOT_LOCK_HOLDER");
  CHECK(h.error("bob", "remove_channel_metadata", "channel=room") == "NOT_LOCK_HOLDER");
  h.ok("carol", "set_channel_metadata", "channel=room", body);
  h.ok("bob", "set_channel_metadata", "channel=other", body);  // another channel
  h.ok("carol", "release_lock", "channel=room&lock=editor");
  CHECK(h.error("carol", "set_channel_metadata", "channel=room", body) == "NOT_LOCK_HOLDER");
  h.ok("bob", "remove_lock", "channel=room&lock=editor");
  h.ok("bob", "set_channel_metadata", "channel=room", body);
}

TEST_CASE("locks: the rtm_locks gauge counts the locks of every channel") {
  RtmHarness h;
  h.enter("bob", "room");
  h.ok("bob", "join", "channel=other");
  h.ok("bob", "set_lock", "channel=room&lock=a&ttl=10");
  h.ok("bob", "set_lock", "channel=room&lock=b&ttl=10");
  h.ok("bob", "set_lock", "channel=other&lock=a&ttl=10");
  h.ok("bob", "remove_lock", "channel=room&lock=b");
  rtm::gateway::MetricsWriter out;
  h.core->write_all_metrics(out);
  CHECK(out.text().find("\nrtm_locks 2\n") != std::string::npos);
}

TEST_CASE("locks: locks, holders, queues and countdowns survive a restart on sqlite") {
  rtm::test::SqliteStateDir state{short_ttl_config()};
  RtmHarness h(state.config);
  enter_all(h, {"bob", "carol", "dave"});
  hold(h, "host", 5, {"bob", "carol"});
  hold(h, "seat", 30, {"carol", "dave"});
  const std::int64_t left_at = h.now;
  h.ok("bob", "leave", "channel=room");  // its countdown runs across the restart

  h.restart(left_at + 2000);
  CHECK(locks_of(h, "dave", "room") ==
        Lines{"host 5 bob [carol] " + std::to_string(left_at + 5000), "seat 30 carol [dave]"});
  const auto mark = h.outbox.sent.size();
  h.advance_to(left_at + 5000);
  CHECK(lock_events(h, "room", mark) == Lines{"expired/host/bob", "acquired/host/carol"});

  // A holder whose session ended while the gateway was away (its token expired) starts
  // its countdown when the gateway is back.
  h.restart(h.now + 1000);
  CHECK(locks_of(h, "dave", "room") == Lines{"host 5 carol []", "seat 30 carol [dave]"});
  h.ok("carol", "release_lock", "channel=room&lock=host");
  h.restart(h.now + 3600 * 1000);  // every token expired
  h.advance_to(h.now);
  h.enter("erin", "room");
  const auto got = locks_of(h, "erin", "room");
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "host 5 - []");
  CHECK(got[1] == "seat 30 carol [] " + std::to_string(h.now + 30000));
  const auto before = h.outbox.sent.size();
  h.advance_to(h.now + 30000);
  CHECK(lock_events(h, "room", before) == Lines{"expired/seat/carol"});
}

TEST_CASE("lock store: one Locks per channel, the earliest deadline of all, the count") {
  rtm::gateway::MemoryLockStore store;
  REQUIRE(store.set_lock("a", "x", 10));
  REQUIRE(store.set_lock("a", "y", 20));
  REQUIRE(store.set_lock("b", "x", 30));
  CHECK(store.lock_count() == 3);
  CHECK(store.channels() == Lines{"a", "b"});
  CHECK(store.set_lock("b", "x", 30).error().code == rtm::storage::ErrorCode::lock_exists);
  CHECK(store.acquire("c", "x", "bob", false, 0).error().code ==
        rtm::storage::ErrorCode::lock_not_found);
  CHECK(store.channels() == Lines{"a", "b"});  // a failed call leaves no empty channel

  REQUIRE(store.acquire("a", "y", "bob", false, 0));
  REQUIRE(store.acquire("b", "x", "bob", false, 0));
  CHECK_FALSE(store.next_deadline());
  CHECK(store.holder_left("b", "bob", 1000).held == Lines{"x"});
  CHECK(store.holder_left("a", "bob", 2000).held == Lines{"y"});
  CHECK(store.next_deadline() == 22000);
  CHECK(store.holder_returned("a", "bob") == Lines{"y"});
  CHECK(store.next_deadline() == 31000);
  CHECK(store.due(30999).empty());
  const auto due = store.due(31000);
  REQUIRE(due.size() == 1);
  CHECK(due[0].channel == "b");
  REQUIRE(due[0].events.size() == 1);
  CHECK(due[0].events[0].kind == rtm::storage::LockEventKind::expired);
  CHECK_FALSE(store.next_deadline());

  REQUIRE(store.remove("b", "x", 40000));
  CHECK(store.channels() == Lines{"a"});
  CHECK(store.lock_count() == 2);
  CHECK(store.get_locks("b").empty());
  CHECK_FALSE(store.find("b", "x"));
  CHECK(store.find("a", "y")->holder == std::optional<std::string>("bob"));
}

TEST_CASE("lock store: new limits apply to the next calls, and the listener hears each channel") {
  struct Heard : rtm::gateway::LockListener {
    void locks_changed(const std::string& channel) override { channels.push_back(channel); }
    Lines channels;
  } heard;
  rtm::gateway::MemoryLockStore store;
  store.set_listener(&heard);
  REQUIRE(store.set_lock("a", "x", 10));
  REQUIRE(store.set_lock("a", "y", 10));
  CHECK(heard.channels == Lines{"a", "a"});
  rtm::storage::LockLimits limits;
  limits.max_locks = 1;
  limits.min_ttl_s = 1;
  store.set_limits(limits);
  CHECK(store.lock_count() == 2);  // kept
  CHECK(store.set_lock("b", "x", 1));
  CHECK(store.set_lock("a", "z", 1).error().code == rtm::storage::ErrorCode::too_many_locks);
  CHECK(store.holder_left("a", "nobody", 0).held.empty());
  CHECK(heard.channels == Lines{"a", "a", "b"});  // failures and no-ops tell nobody
  store.restore("c", {{"x", 10, std::string("amy"), 5000, {"bob"}}});
  CHECK(heard.channels == Lines{"a", "a", "b"});  // restoring writes nothing back
  CHECK(store.next_deadline() == 5000);
  CHECK(store.lock_count() == 4);
}
