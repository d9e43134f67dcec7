// The SDK's storage API (issue 15) against the real gateway and a real Mosquitto: user and
// channel metadata with compare-and-set, metadata events, their restore after a restart,
// and the `rtm meta` commands.
#include <doctest/doctest.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

sdk::MetadataItem item(const std::string& key, const std::string& value,
                       std::int64_t revision = -1) {
  return sdk::MetadataItem{key, value, revision, {}, {}};
}

// Two members of one channel, logged in and joined.
struct Room {
  Setup s;
  Peer a;
  Peer b;
  std::string channel;
  Room(const std::string& channel_name, const std::string& a_uid, const std::string& b_uid)
      : a(s.broker.uri(), a_uid), b(s.broker.uri(), b_uid), channel(channel_name) {
    a.login();
    b.login();
    REQUIRE(a->stream_channel(channel).join().ok());
    REQUIRE(b->stream_channel(channel).join().ok());
  }
};

std::optional<sdk::StorageEvent> wait_storage(Peer& p, sdk::StorageEventType type,
                                              std::chrono::milliseconds t = 10000ms) {
  return p.storage.wait([type](const sdk::StorageEvent& e) { return e.type == type; }, t);
}

}  // namespace

TEST_CASE(
    "sdk storage: two clients race on one channel item with compare-and-set and exactly one wins") {
  Room r("race-room", "racer-a", "racer-b");
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    const std::string key = "seat/" + std::to_string(round);
    // Both claim the seat (revision 0: only if absent) before either answer is back.
    std::promise<sdk::Result<sdk::Metadata>> pa, pb;
    r.a->storage().set_channel_metadata_async(
        r.channel, {item(key, "racer-a", 0)}, {},
        [&pa](sdk::Result<sdk::Metadata> m) { pa.set_value(std::move(m)); });
    r.b->storage().set_channel_metadata_async(
        r.channel, {item(key, "racer-b", 0)}, {},
        [&pb](sdk::Result<sdk::Metadata> m) { pb.set_value(std::move(m)); });
    auto ra = pa.get_future().get();
    auto rb = pb.get_future().get();
    REQUIRE_MESSAGE(ra.ok() != rb.ok(), ra.status().to_string()
                                            << " / " << rb.status().to_string());
    auto& loser = ra.ok() ? rb : ra;
    CHECK(loser.status().is(sdk::ErrorCode::item_revision_mismatch));
    CHECK_MESSAGE(loser.message().find(key) != std::string::npos, loser.message());
    const auto& won = ra.ok() ? ra.value() : rb.value();
    const std::string winner = ra.ok() ? "racer-a" : "racer-b";
    REQUIRE(won.items.size() == 1);
    CHECK(won.items[0].revision == won.major_revision);

    // Both read the winner's value, at the revision the winner was told.
    for (auto* p : {&r.a, &r.b}) {
      auto got = (*p)->storage().get_channel_metadata(r.channel, {key});
      REQUIRE_MESSAGE(got.ok(), got.status().to_string());
      REQUIRE(got->find(key));
      CHECK(got->find(key)->value == winner);
      CHECK(got->find(key)->revision == won.items[0].revision);
    }
    // The loser may take it over only at the current revision.
    auto stale = r.b->storage().update_channel_metadata(r.channel, {item(key, "late", 0)});
    CHECK(stale.status().is(sdk::ErrorCode::item_revision_mismatch));
    auto fresh = r.b->storage().update_channel_metadata(
        r.channel, {item(key, "racer-b", won.items[0].revision)});
    CHECK_MESSAGE(fresh.ok(), fresh.status().to_string());
  }
  // The whole metadata's compare-and-set: an old major revision changes nothing.
  auto now = r.a->storage().get_channel_metadata(r.channel);
  REQUIRE(now.ok());
  CHECK(now->items.size() == 5);
  sdk::MetadataOptions old;
  old.major_revision = now->major_revision - 1;
  auto refused = r.a->storage().remove_channel_metadata(r.channel, {}, old);
  CHECK(refused.status().is(sdk::ErrorCode::major_revision_mismatch));
  CHECK(r.a->storage().get_channel_metadata(r.channel)->items.size() == 5);
}

TEST_CASE(
    "sdk storage: subscribe_user_metadata delivers a snapshot and then each change to "
    "on_storage_event") {
  Setup s;
  Peer alice(s.broker.uri(), "meta-alice");
  Peer bob(s.broker.uri(), "meta-bob");
  alice.login();
  bob.login();
  auto store = alice->storage();

  sdk::MetadataOptions record;
  record.record_author = true;
  record.record_ts = true;
  auto set = store.set_user_metadata("", {item("name", "Alice"), item("mood", "calm")}, record);
  REQUIRE_MESSAGE(set.ok(), set.status().to_string());
  CHECK(set->major_revision == 1);
  REQUIRE(set->find("name"));
  CHECK(set->find("name")->author == std::optional<std::string>("meta-alice"));
  CHECK(set->find("name")->updated_at.value_or(0) > 0);

  // Subscribing sends the whole metadata at once.
  REQUIRE(bob->storage().subscribe_user_metadata("meta-alice").ok());
  auto snap = wait_storage(bob, sdk::StorageEventType::snapshot);
  REQUIRE(snap);
  CHECK(snap->scope == sdk::StorageScope::user);
  CHECK(snap->uid == "meta-alice");
  CHECK(snap->metadata.major_revision == 1);
  CHECK(snap->metadata.items.size() == 2);

  // Then each change, with its writer.
  auto upd = store.update_user_metadata("", {item("name", "Al", 1)});
  REQUIRE_MESSAGE(upd.ok(), upd.status().to_string());
  auto changed = wait_storage(bob, sdk::StorageEventType::update);
  REQUIRE(changed);
  CHECK(changed->uid == "meta-alice");
  CHECK(changed->by == "meta-alice");
  CHECK(changed->metadata.major_revision == 2);
  REQUIRE(changed->metadata.items.size() == 1);
  CHECK(changed->metadata.items[0].value == "Al");
  CHECK(changed->metadata.items[0].revision == 2);
  CHECK_FALSE(changed->metadata.items[0].author);  // this write did not ask to record it

  REQUIRE(store.remove_user_metadata("", {item("mood", "")}).ok());
  auto removed = wait_storage(bob, sdk::StorageEventType::remove);
  REQUIRE(removed);
  REQUIRE(removed->metadata.items.size() == 1);
  CHECK(removed->metadata.items[0].key == "mood");
  CHECK(bob.storage.take_all().empty());

  // The errors of compare-and-set and update, and a user's metadata is its own.
  CHECK(store.update_user_metadata("", {item("name", "A", 1)})
            .status()
            .is(sdk::ErrorCode::item_revision_mismatch));
  CHECK(store.update_user_metadata("", {item("new-key", "x")})
            .status()
            .is(sdk::ErrorCode::item_not_found));
  sdk::MetadataOptions never;
  never.major_revision = 0;
  CHECK(store.set_user_metadata("", {item("x", "y")}, never)
            .status()
            .is(sdk::ErrorCode::major_revision_mismatch));
  CHECK(bob->storage()
            .set_user_metadata("meta-alice", {item("x", "y")})
            .status()
            .is(sdk::ErrorCode::forbidden));
  sdk::MetadataOptions guarded;
  guarded.lock = "host";
  CHECK(store.set_user_metadata("", {item("x", "y")}, guarded)
            .status()
            .is(sdk::ErrorCode::invalid_parameter));
  auto got = bob->storage().get_user_metadata("meta-alice", {"name"});
  REQUIRE(got.ok());
  REQUIRE(got->items.size() == 1);
  CHECK(got->items[0].value == "Al");

  // Unsubscribed, bob hears nothing: the next event after subscribing again is the
  // snapshot, which already holds the write made meanwhile.
  REQUIRE(bob->storage().unsubscribe_user_metadata("meta-alice").ok());
  REQUIRE(store.set_user_metadata("", {item("unheard", "1")}).ok());
  REQUIRE(bob->storage().subscribe_user_metadata("meta-alice").ok());
  auto next = bob.storage.next();
  REQUIRE(next);
  CHECK(next->type == sdk::StorageEventType::snapshot);
  CHECK(next->metadata.find("unheard"));
}

TEST_CASE("sdk storage: channel metadata changes reach another member as storage events") {
  Room r("meta-room", "meta-host", "meta-guest");
  sdk::MetadataOptions record;
  record.record_author = true;
  auto set = r.a->storage().set_channel_metadata(
      r.channel, {item("topic", "chess"), item("seat/1", "meta-host", 0)}, record);
  REQUIRE_MESSAGE(set.ok(), set.status().to_string());

  for (auto* p : {&r.a, &r.b}) {
    auto ev = wait_storage(*p, sdk::StorageEventType::set);
    REQUIRE(ev);
    CHECK(ev->scope == sdk::StorageScope::channel);
    CHECK(ev->channel == r.channel);
    CHECK(ev->by == "meta-host");
    CHECK(ev->metadata.major_revision == set->major_revision);
    REQUIRE(ev->metadata.find("seat/1"));
    CHECK(ev->metadata.find("seat/1")->author == std::optional<std::string>("meta-host"));
  }

  REQUIRE(r.b->storage().update_channel_metadata(r.channel, {item("topic", "go")}).ok());
  auto upd = wait_storage(r.a, sdk::StorageEventType::update);
  REQUIRE(upd);
  CHECK(upd->by == "meta-guest");
  REQUIRE(upd->metadata.items.size() == 1);
  CHECK(upd->metadata.items[0].value == "go");

  REQUIRE(r.b->storage().remove_channel_metadata(r.channel).ok());  // every item
  auto rem = wait_storage(r.a, sdk::StorageEventType::remove);
  REQUIRE(rem);
  CHECK(rem->metadata.items.size() == 2);
  CHECK(r.a->storage().get_channel_metadata(r.channel)->items.empty());

  // Not a member: no reading, no writing.
  Peer outsider(r.s.broker.uri(), "meta-outsider");
  outsider.login();
  CHECK(
      outsider->storage().get_channel_metadata(r.channel).status().is(sdk::ErrorCode::not_joined));
  CHECK(outsider->storage()
            .set_channel_metadata(r.channel, {item("k", "v")})
            .status()
            .is(sdk::ErrorCode::not_joined));
}

TEST_CASE(
    "sdk storage: metadata subscriptions are renewed after the broker and the gateway restart") {
  Setup s;
  Peer alice(s.broker.uri(), "renew-alice");
  Peer bob(s.broker.uri(), "renew-bob");
  alice.login();
  bob.login();
  REQUIRE(bob->storage().subscribe_user_metadata("renew-alice").ok());
  REQUIRE(wait_storage(bob, sdk::StorageEventType::snapshot));

  s.broker.kill_hard();
  s.gateway.stop();
  s.gateway.start();  // a new gateway process: every session and subscription is gone
  s.broker.start();
  REQUIRE_MESSAGE(wait_gateway_ready(s.broker.uri()), s.gateway.log());
  auto restored = bob.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE_MESSAGE(restored, s.gateway.log());
  CHECK_MESSAGE(restored->reason.find("1 metadata subscription(s)") != std::string::npos,
                restored->reason);
  CHECK(restored->reason.find("failed") == std::string::npos);
  REQUIRE(wait_storage(bob, sdk::StorageEventType::snapshot));  // the renewal's snapshot

  // Changes flow again on the renewed subscription.
  REQUIRE(alice.wait_state(sdk::ConnectionState::restored, 20000ms));
  REQUIRE(alice->storage().set_user_metadata("", {item("back", "yes")}).ok());
  auto ev = wait_storage(bob, sdk::StorageEventType::set);
  REQUIRE(ev);
  CHECK(ev->uid == "renew-alice");
  CHECK(ev->metadata.find("back"));
}

// ------------------------------------------------------------------ the rtm CLI

TEST_CASE(
    "rtm cli: meta set, get, update with a stale revision, remove, and watch until its count") {
  Setup s;
  const std::string rtm = RTM_CLI_BIN;
  const std::string config = s.gateway.config_path().string();
  auto meta = [&](const std::string& uid, std::vector<std::string> args) {
    std::vector<std::string> argv{rtm, "--config", config, "--uid", uid, "meta"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };

  auto set = meta("cli-meta", {"set", "name=Alice", "--author"});
  REQUIRE_MESSAGE(set.exit_code == 0, set.output);
  CHECK_MESSAGE(
      set.output.find("cli-meta major_revision=1\n  name=Alice revision=1 author=cli-meta") !=
          std::string::npos,
      set.output);

  // A watcher of cli-meta's metadata: the snapshot, then the one change it waits for.
  TempDir dir;
  Process watch({rtm, "--config", config, "meta", "watch", "--uid", "cli-watcher", "--user",
                 "cli-meta", "--count", "2"},
                dir.path() / "watch.log");
  REQUIRE_MESSAGE(wait_log(watch, "rtm: watching the metadata of cli-meta"), watch.log());
  auto upd = meta("cli-meta", {"update", "name=Al", "--revision", "1"});
  CHECK_MESSAGE(upd.exit_code == 0, upd.output);
  auto stale = meta("cli-meta", {"update", "name=A", "--revision", "1"});
  CHECK(stale.exit_code == 1);
  CHECK_MESSAGE(stale.output.find("ITEM_REVISION_MISMATCH") != std::string::npos, stale.output);
  REQUIRE_MESSAGE(wait_exit(watch), watch.log());
  CHECK(watch.stop() == 0);
  const auto log = watch.log();
  CHECK_MESSAGE(
      log.find("snapshot cli-meta major_revision=1\n  name=Alice revision=1 author=cli-meta\n") !=
          std::string::npos,
      log);
  CHECK_MESSAGE(log.find("update cli-meta by cli-meta major_revision=2\n  name=Al revision=2\n") !=
                    std::string::npos,
                log);

  // Another user reads it; a key at a time.
  auto get = meta("cli-reader", {"get", "--user", "cli-meta", "name"});
  CHECK_MESSAGE(get.exit_code == 0, get.output);
  CHECK_MESSAGE(get.output.find("  name=Al revision=2") != std::string::npos, get.output);
  auto bad = meta("cli-meta", {"set", "no-equals-sign"});
  CHECK(bad.exit_code == 1);
  CHECK_MESSAGE(bad.output.find("KEY=VALUE") != std::string::npos, bad.output);

  // Channel metadata: a seat taken once, with --revision 0.
  auto seat = meta("cli-p1", {"set", "--channel", "cli-room", "seat/1=cli-p1", "--revision", "0"});
  CHECK_MESSAGE(seat.exit_code == 0, seat.output);
  auto taken = meta("cli-p2", {"set", "--channel", "cli-room", "seat/1=cli-p2", "--revision", "0"});
  CHECK(taken.exit_code == 1);
  CHECK_MESSAGE(taken.output.find("ITEM_REVISION_MISMATCH") != std::string::npos, taken.output);
  auto room = meta("cli-p2", {"get", "--channel", "cli-room"});
  CHECK_MESSAGE(room.output.find("  seat/1=cli-p1 revision=1") != std::string::npos, room.output);
  auto removed = meta("cli-p2", {"remove", "--channel", "cli-room", "seat/1"});
  CHECK_MESSAGE(removed.exit_code == 0, removed.output);
  auto empty = meta("cli-p1", {"get", "--channel", "cli-room"});
  CHECK_MESSAGE(empty.output == "cli-room major_revision=2\n", empty.output);

  // Help of each command.
  for (const auto& [cmd, words] :
       std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"meta", "set", "--help"},
            {"--revision", "--major-revision", "--author", "--ts", "--user", "--channel"}},
           {{"meta", "watch", "--help"}, {"--count", "--user", "--channel"}},
           {{"lock", "acquire", "--help"}, {"--wait", "--hold", "--channel"}},
           {{"state", "set", "--help"}, {"--channel", "KEY=VALUE"}},
           {{"--help"}, {"meta", "lock", "state"}}}) {
    std::vector<std::string> argv{rtm};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    auto help = run_command(argv);
    CHECK(help.exit_code == 0);
    for (const auto& w : words) CHECK_MESSAGE(help.output.find(w) != std::string::npos, w);
  }
}
