// The grant records and the table the broker plugin answers access checks from: tried as
// a hostile logged-in user would (topics one level off, other channels, names of others).
#include <doctest/doctest.h>

#include "rtm/grants/records.hpp"
#include "rtm/grants/table.hpp"

using namespace rtm::grants;

namespace {

MemberGrants grants(std::vector<std::string> writes,
                    std::vector<std::pair<std::string, std::vector<std::string>>> reads) {
  return MemberGrants{std::move(writes), std::move(reads)};
}

// A table after a full set with alice publishing input in room, bob reading her there.
Table coplay_table() {
  Table t("rtm");
  RecordWriter w;
  w.sync_begin(1);
  w.session("alice", true);
  w.session("bob", true);
  w.member("room", "alice", grants({"input"}, {}));
  w.member("room", "bob", grants({}, {{"input", {"alice"}}}));
  w.sync_end(1);
  for (const auto& m : w.take()) t.apply_message(m);
  return t;
}

}  // namespace

TEST_CASE("records written are read back the same and in order") {
  RecordWriter w;
  w.sync_begin(7);
  w.session("alice", true);
  w.session("carol", false);
  w.member("room-42", "bob", grants({"chat", "input"}, {{"input", {"alice", "zed"}}, {"video", {}}}));
  w.no_member("room-42", "dave");
  w.token("alice", 1700000000);
  w.kick("eve");
  w.kick_others("alice");
  w.sync_end(7);
  const auto messages = w.take();
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].rfind("rtm-grants 1\n", 0) == 0);
  std::vector<Record> got;
  const auto result = read_records(messages[0], [&](Record&& r) { got.push_back(std::move(r)); });
  CHECK(result.skipped == 0);
  REQUIRE(got.size() == 9);
  CHECK(got[0].kind == RecordKind::sync_begin);
  CHECK(got[0].number == 7);
  CHECK(got[2].kind == RecordKind::session_off);
  CHECK(got[3].kind == RecordKind::member);
  CHECK(got[3].grants == grants({"chat", "input"}, {{"input", {"alice", "zed"}}, {"video", {}}}));
  CHECK(got[4].kind == RecordKind::no_member);
  CHECK(got[4].uid == "dave");
  CHECK(got[5].number == 1700000000);
  CHECK(got[6].kind == RecordKind::kick);
  CHECK(got[7].kind == RecordKind::kick_others);
  CHECK(got[8].kind == RecordKind::sync_end);
}

TEST_CASE("a batch larger than a message is split at record boundaries") {
  RecordWriter w(100);
  for (int i = 0; i < 50; ++i) w.session("user-" + std::to_string(i), true);
  const auto messages = w.take();
  CHECK(messages.size() > 5);
  std::size_t records = 0;
  for (const auto& m : messages) {
    CHECK(m.size() <= 100);
    records += read_records(m, [](Record&&) {}).records;
  }
  CHECK(records == 50);
  CHECK(w.take().empty());
}

TEST_CASE("malformed records are skipped and counted while the good ones still apply") {
  std::vector<Record> got;
  const std::string message =
      "rtm-grants 1\nS alice\nS bad/uid\nQ x\nM room\nM room bob stray\nB x\nT bob -5\n"
      "M room bob #b #a\nS bob\n";
  const auto result = read_records(message, [&](Record&& r) { got.push_back(std::move(r)); });
  CHECK(result.records == 2);
  CHECK(result.skipped == 7);
  CHECK(!result.first_error.empty());
  CHECK(read_records("S alice\n", [](Record&&) { FAIL("read"); }).skipped == 1);
}

TEST_CASE("the table fails closed until a full set has arrived") {
  Table t("rtm");
  CHECK_FALSE(t.synced());
  CHECK(t.decide("alice", "rtm/ch/room/input/alice", Access::write) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/events/room", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/u/alice/inbox/bob", Access::write) == Verdict::deny);
  // Not channel levels: left to the other rules.
  CHECK(t.decide("bob", "rtm/u/bob/res/join", Access::read) == Verdict::not_governed);
  CHECK(t.decide("bob", "rtm/presence/bob", Access::write) == Verdict::not_governed);
  CHECK(t.decide("bob", "factory/line-1/temp", Access::read) == Verdict::not_governed);
  // Records outside a full set apply, but the table stays closed.
  t.apply_message("rtm-grants 1\nS bob\n");
  CHECK_FALSE(t.synced());
  CHECK(t.decide("bob", "rtm/u/alice/inbox/bob", Access::write) == Verdict::deny);
}

TEST_CASE("channel data: read only what was granted and write only as a registered publisher") {
  Table t = coplay_table();
  REQUIRE(t.synced());
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::allow);
  CHECK(t.decide("alice", "rtm/ch/room/input/alice", Access::write) == Verdict::allow);
  // The attacker's tries.
  CHECK(t.decide("carol", "rtm/ch/room/input/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/chat/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/other/input/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input/bob", Access::write) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::write) == Verdict::deny);
  CHECK(t.decide("alice", "rtm/ch/room/chat/alice", Access::write) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input/alice/x", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room//alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch//input/alice", Access::read) == Verdict::deny);
  // Another prefix that merely starts the same way is not ours.
  CHECK(t.decide("bob", "rtmx/ch/room/input/alice", Access::read) == Verdict::not_governed);
}

TEST_CASE("events are for members and inboxes take messages only from live sessions") {
  Table t = coplay_table();
  CHECK(t.decide("bob", "rtm/events/room", Access::read) == Verdict::allow);
  CHECK(t.decide("carol", "rtm/events/room", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/events/room", Access::write) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/events/room/x", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/u/alice/inbox/bob", Access::write) == Verdict::allow);
  CHECK(t.decide("carol", "rtm/u/alice/inbox/carol", Access::write) == Verdict::deny);
  CHECK(t.decide("carol", "rtm/u/alice/inbox/bob", Access::write) == Verdict::deny);
  CHECK(t.decide("alice", "rtm/u/alice/inbox/bob", Access::read) == Verdict::not_governed);
}

TEST_CASE("member records replace what was known (unsubscribe and leave_topic and leave and logout)") {
  Table t = coplay_table();
  auto apply = [&](auto&& write) {
    RecordWriter w;
    write(w);
    for (const auto& m : w.take()) t.apply_message(m);
  };
  apply([](RecordWriter& w) { w.member("room", "bob", grants({}, {})); });
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/events/room", Access::read) == Verdict::allow);
  apply([](RecordWriter& w) { w.member("room", "alice", grants({}, {})); });
  CHECK(t.decide("alice", "rtm/ch/room/input/alice", Access::write) == Verdict::deny);
  apply([](RecordWriter& w) { w.no_member("room", "bob"); });
  CHECK(t.decide("bob", "rtm/events/room", Access::read) == Verdict::deny);
  apply([](RecordWriter& w) { w.session("alice", false); });
  CHECK(t.decide("alice", "rtm/u/bob/inbox/alice", Access::write) == Verdict::deny);
  CHECK(t.stats().read_grants == 0);
  CHECK(t.stats().members == 1);
  apply([](RecordWriter& w) { w.no_member("room", "alice"); });
  CHECK(t.stats().members == 0);
  CHECK(t.stats().streams == 0);
}

TEST_CASE("a new full set replaces the table whole without a gap and a half set changes nothing") {
  Table t = coplay_table();
  RecordWriter w;
  w.sync_begin(2);
  w.session("bob", true);
  w.member("room", "bob", grants({}, {{"input", {"carol"}}}));
  auto first = w.take();
  for (const auto& m : first) t.apply_message(m);
  // The old grants hold while the new set is on its way.
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::allow);
  w.sync_end(2);
  for (const auto& m : w.take()) t.apply_message(m);
  CHECK(t.epoch() == 2);
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/ch/room/input/carol", Access::read) == Verdict::allow);
  CHECK(t.decide("alice", "rtm/u/bob/inbox/alice", Access::write) == Verdict::deny);
  // An end without its beginning is skipped.
  t.apply_message("rtm-grants 1\nF 9\n");
  CHECK(t.epoch() == 2);
  CHECK(t.stats().skipped == 1);
}

TEST_CASE("connection records come back as actions and never go into the table") {
  Table t = coplay_table();
  const auto actions = t.apply_message("rtm-grants 1\nK bob\nT alice 99\nk alice\n");
  REQUIRE(actions.size() == 3);
  CHECK(actions[0].kind == RecordKind::kick);
  CHECK(actions[0].uid == "bob");
  CHECK(actions[1].expires_at_s == 99);
  CHECK(actions[2].kind == RecordKind::kick_others);
  CHECK(t.decide("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::allow);
}

TEST_CASE("a filter checked once at SUBSCRIBE (EMQX): no wildcard may reach a channel level") {
  Table t = coplay_table();
  CHECK(t.decide_subscribe("bob", "rtm/ch/room/input/alice") == Verdict::allow);
  CHECK(t.decide_subscribe("carol", "rtm/ch/room/input/alice") == Verdict::deny);
  for (const char* filter : {"#", "rtm/#", "+/ch/room/input/alice", "rtm/ch/#", "rtm/+/room/input/alice",
                             "rtm/ch/room/input/+", "rtm/events/+", "rtm/ch/+/+/+"}) {
    CAPTURE(filter);
    CHECK(t.decide_subscribe("bob", filter) == Verdict::deny);
  }
  CHECK(t.decide_subscribe("bob", "rtm/u/bob/#") == Verdict::not_governed);
  CHECK(t.decide_subscribe("bob", "rtm/presence/+") == Verdict::not_governed);
  CHECK(t.decide_subscribe("bob", "factory/+/temp") == Verdict::not_governed);
  CHECK(t.decide_subscribe("bob", "rtm/+") == Verdict::not_governed);
  Table deep("acme/rtm");
  CHECK(deep.decide_subscribe("bob", "acme/+/ch/x/y/z") == Verdict::deny);
  CHECK(deep.decide_subscribe("bob", "acme/other/ch/x/y/z") == Verdict::not_governed);
}

TEST_CASE("the tree's ownership rules: a token user's own levels and everyone's presence") {
  Table t = coplay_table();
  // Channel levels are the grants' (decide), unchanged.
  CHECK(t.decide_with_tree("bob", "rtm/ch/room/input/alice", Access::read) == Verdict::allow);
  CHECK(t.decide_with_tree("carol", "rtm/ch/room/input/alice", Access::read) == Verdict::deny);
  // What the shipped ACL's pattern lines give every user.
  CHECK(t.decide_with_tree("bob", "rtm/req/bob/join?x=1&msg_id=7", Access::write) == Verdict::allow);
  CHECK(t.decide_with_tree("bob", "rtm/u/bob/res/join?msg_id=7", Access::read) == Verdict::allow);
  CHECK(t.decide_with_tree("bob", "rtm/u/bob/inbox/alice", Access::read) == Verdict::allow);
  CHECK(t.decide_with_tree("bob", "rtm/u/bob", Access::read) == Verdict::allow);
  CHECK(t.decide_with_tree("bob", "rtm/presence/bob", Access::write) == Verdict::allow);
  CHECK(t.decide_with_tree("bob", "rtm/presence/alice", Access::read) == Verdict::allow);
  // Not theirs: left to the ACL file (which refuses them).
  CHECK(t.decide_with_tree("bob", "rtm/req/alice/join", Access::write) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/req/bobby/join", Access::write) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/u/alice/res/x", Access::read) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/u/bobx/res/x", Access::read) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/u/bob/res/x", Access::write) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/presence/alice", Access::write) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/presence/bob/x", Access::read) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "rtm/req/bob", Access::read) == Verdict::not_governed);
  CHECK(t.decide_with_tree("", "rtm/presence/alice", Access::read) == Verdict::not_governed);
  CHECK(t.decide_with_tree("bob", "other/u/bob/x", Access::read) == Verdict::not_governed);
}

TEST_CASE("an expiry beyond a signed 64-bit clock is refused (found by fuzzing)") {
  std::vector<Record> got;
  const auto result = read_records(
      "rtm-grants 1\nT alice 12297829382473034412\nT bob 9223372036854775807\n",
      [&](Record&& r) { got.push_back(std::move(r)); });
  CHECK(result.skipped == 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].uid == "bob");
  RecordWriter w;
  w.add(got[0]);
  std::vector<Record> again;
  for (const auto& m : w.take()) read_records(m, [&](Record&& r) { again.push_back(std::move(r)); });
  REQUIRE(again.size() == 1);
  CHECK(again[0].number == got[0].number);
}

TEST_CASE("message channels: subscribers read, live sessions write as themselves") {
  Table t("rtm");
  RecordWriter w;
  w.sync_begin(1);
  for (const char* u : {"alice", "bob", "carol", "dave"}) w.session(u, true);
  w.message_channels("bob", {{"lobby", true}, {"news", false}});
  w.message_channels("carol", {{"news", false}});
  w.sync_end(1);
  for (const auto& m : w.take()) t.apply_message(m);

  // Reading: subscribers only, typed or not, and presence events only with presence.
  CHECK(t.decide("bob", "rtm/mc/news/alice", Access::read) == Verdict::allow);
  CHECK(t.decide("bob", "rtm/mc/news/alice/string", Access::read) == Verdict::allow);
  CHECK(t.decide("carol", "rtm/mc/news/alice", Access::read) == Verdict::allow);
  CHECK(t.decide("dave", "rtm/mc/news/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("carol", "rtm/mc/lobby/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mcevents/lobby", Access::read) == Verdict::allow);
  CHECK(t.decide("bob", "rtm/mcevents/news", Access::read) == Verdict::deny);
  CHECK(t.decide("carol", "rtm/mcevents/news", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mcevents/lobby", Access::write) == Verdict::deny);
  // Writing: any live session, as its own publisher level; no subscription needed.
  CHECK(t.decide("dave", "rtm/mc/news/dave", Access::write) == Verdict::allow);
  CHECK(t.decide("dave", "rtm/mc/news/dave/string", Access::write) == Verdict::allow);
  CHECK(t.decide("dave", "rtm/mc/news/alice", Access::write) == Verdict::deny);
  CHECK(t.decide("eve", "rtm/mc/news/eve", Access::write) == Verdict::deny);  // no session
  // Malformed levels are refused, never passed on to the ACL.
  CHECK(t.decide("dave", "rtm/mc/news/dave/binary", Access::write) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mc/news", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mc/news/alice/string/x", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mc//alice", Access::read) == Verdict::deny);
  // EMQX's SUBSCRIBE check: the channel's own filters, for its subscribers only.
  CHECK(t.decide_subscribe("bob", "rtm/mc/news/#") == Verdict::allow);
  CHECK(t.decide_subscribe("bob", "rtm/mc/news/+/string") == Verdict::allow);
  CHECK(t.decide_subscribe("dave", "rtm/mc/news/#") == Verdict::deny);
  CHECK(t.decide_subscribe("bob", "rtm/mc/+/#") == Verdict::deny);
  CHECK(t.decide_subscribe("bob", "rtm/mc/#") == Verdict::deny);
  CHECK(t.decide_subscribe("bob", "rtm/mcevents/#") == Verdict::deny);
  CHECK(t.stats().message_channel_subscriptions == 3);

  // A record replaces what was known of the user; an empty one takes everything away.
  RecordWriter change;
  change.message_channels("bob", {{"news", false}});
  change.message_channels("carol", {});
  for (const auto& m : change.take()) t.apply_message(m);
  CHECK(t.decide("bob", "rtm/mcevents/lobby", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mc/lobby/alice", Access::read) == Verdict::deny);
  CHECK(t.decide("bob", "rtm/mc/news/alice", Access::read) == Verdict::allow);
  CHECK(t.decide("carol", "rtm/mc/news/alice", Access::read) == Verdict::deny);
  CHECK(t.stats().message_channel_subscriptions == 1);
}

TEST_CASE("message channel records are read back and refused when malformed") {
  RecordWriter w;
  w.message_channels("bob", {{"lobby", true}, {"news", false}});
  const auto messages = w.take();
  REQUIRE(messages.size() == 1);
  CHECK(messages[0] == "rtm-grants 1\nC bob +lobby news\n");
  std::vector<Record> got;
  auto result = read_records(messages[0], [&](Record&& r) { got.push_back(std::move(r)); });
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == RecordKind::message_channels);
  CHECK(got[0].uid == "bob");
  CHECK(got[0].message_channels == MessageChannelGrants{{"lobby", true}, {"news", false}});
  got.clear();
  result = read_records("rtm-grants 1\nC bob news lobby\nC bob a/b\nC\nC bob ++x\n",
                        [&](Record&& r) { got.push_back(std::move(r)); });
  CHECK(got.empty());
  CHECK(result.skipped == 4);
}
