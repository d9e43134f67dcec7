// The SDK's storage API (issue 15) against the real gateway and a real Mosquitto: user and
// channel metadata with compare-and-set, metadata events, their restore after a restart,
// and the `rtm meta` commands.
#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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

// Two users, logged in, and members of `channel` unless it is empty.
struct Room {
  Setup s;
  Peer a;
  Peer b;
  std::string channel;
  Room(const std::string& channel_name, const std::string& a_uid, const std::string& b_uid)
      : a(s.broker.uri(), a_uid), b(s.broker.uri(), b_uid), channel(channel_name) {
    a.login();
    b.login();
    if (channel.empty()) return;
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
  Room r("", "meta-alice", "meta-bob");  // no channel: user metadata
  auto& alice = r.a;
  auto& bob = r.b;
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
  Room r("", "renew-alice", "renew-bob");  // no channel: user metadata
  auto& alice = r.a;
  auto& bob = r.b;
  REQUIRE(bob->storage().subscribe_user_metadata("renew-alice").ok());
  REQUIRE(wait_storage(bob, sdk::StorageEventType::snapshot));

  r.s.broker.kill_hard();
  r.s.gateway.stop();
  r.s.gateway.start();  // a new gateway process: every session and subscription is gone
  r.s.broker.start();
  REQUIRE_MESSAGE(wait_gateway_ready(r.s.broker.uri()), r.s.gateway.log());
  auto restored = bob.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE_MESSAGE(restored, r.s.gateway.log());
  CHECK_MESSAGE(restored->message.find("1 metadata subscription(s)") != std::string::npos,
                restored->message);
  CHECK(restored->message.find("failed") == std::string::npos);
  REQUIRE(wait_storage(bob, sdk::StorageEventType::snapshot));  // the renewal's snapshot

  // Changes flow again on the renewed subscription.
  REQUIRE(alice.wait_state(sdk::ConnectionState::restored, 20000ms));
  REQUIRE(alice->storage().set_user_metadata("", {item("back", "yes")}).ok());
  auto ev = wait_storage(bob, sdk::StorageEventType::set);
  REQUIRE(ev);
  CHECK(ev->uid == "renew-alice");
  CHECK(ev->metadata.find("back"));
}

// ------------------------------------------------------------------ acquire_lock's wait

TEST_CASE(
    "sdk locks: a queued acquire_lock completes when the holder releases, on the real gateway") {
  Room r("lock-room", "lock-a", "lock-b");
  auto locks_a = r.a->lock();
  auto locks_b = r.b->lock();
  REQUIRE(locks_a.set_lock(r.channel, "host", std::chrono::seconds(30)).ok());
  auto first = locks_a.acquire_lock(r.channel, "host");
  REQUIRE_MESSAGE(first.ok(), first.status().to_string());
  CHECK(*first == sdk::AcquireStatus::acquired);
  CHECK(locks_b.acquire_lock(r.channel, "host").status().is(sdk::ErrorCode::lock_held));

  // b waits in the queue on a thread of its own; a releases once b is in line.
  sdk::AcquireLockOptions wait;
  wait.retry = true;
  wait.wait = std::chrono::milliseconds(10000);
  auto queued =
      std::async(std::launch::async, [&] { return locks_b.acquire_lock(r.channel, "host", wait); });
  const auto in_line = std::chrono::steady_clock::now() + 10s;
  bool waiting = false;
  while (!waiting && std::chrono::steady_clock::now() < in_line) {
    auto got = locks_a.get_locks(r.channel);
    REQUIRE(got.ok());
    waiting = !got->empty() && got->front().waiters == std::vector<std::string>{"lock-b"};
    if (!waiting) std::this_thread::sleep_for(20ms);  // polling get_locks, with a deadline
  }
  REQUIRE(waiting);
  CHECK(queued.wait_for(0ms) == std::future_status::timeout);  // still waiting
  REQUIRE(locks_a.release_lock(r.channel, "host").ok());
  REQUIRE(queued.wait_for(10s) == std::future_status::ready);
  auto second = queued.get();
  REQUIRE_MESSAGE(second.ok(), second.status().to_string());
  CHECK(*second == sdk::AcquireStatus::acquired);

  // Both see the hand-over as lock events, and get_locks names the new owner.
  auto handed = r.a.locks.wait(
      [](const sdk::LockEvent& e) {
        return e.type == sdk::LockEventType::acquired && e.uid == "lock-b";
      },
      10000ms);
  REQUIRE(handed);
  CHECK(handed->lock == "host");
  auto now = locks_a.get_locks(r.channel);
  REQUIRE(now.ok());
  REQUIRE(now->size() == 1);
  CHECK(now->front().owner == "lock-b");
  CHECK(locks_a.release_lock(r.channel, "host").status().is(sdk::ErrorCode::not_lock_holder));
  REQUIRE(locks_b.remove_lock(r.channel, "host").ok());
  CHECK(locks_a.get_locks(r.channel)->empty());
}

TEST_CASE(
    "sdk locks: a queued acquire_lock completes after the holder's device drops and the ttl "
    "passes") {
  GatewayOptions options;
  options.extra_yaml = "storage:\n  lock_min_ttl_s: 1\n";
  Setup s(options);
  const std::string port = std::to_string(s.broker.port());
  Peer carol(s.broker.uri(), "drop-carol");
  carol.login();
  REQUIRE(carol->stream_channel("drop-room").join().ok());

  // bob is a plain device: a process whose Will says offline, and a connection for requests
  // that says online for the same connection id.
  TempDir dir;
  Process device(
      {find_program("mosquitto_sub"), "-p", port, "-i", unique_id("bob-device"), "-t",
       "rtm/u/drop-bob/#", "--will-topic", "rtm/presence/drop-bob", "--will-payload",
       R"({"state":"offline","session":"bob-conn"})", "--will-retain", "--will-qos", "1"},
      dir.path() / "device.log");
  Client bob(s.broker.uri(), unique_id("drop-bob"));
  bob.connect();
  bob.subscribe("rtm/u/drop-bob/#");
  REQUIRE(answered_ok(request(bob, "drop-bob", "login?msg_id=db1",
                              "{\"token\":\"" + token_for("drop-bob") + "\"}")));
  bob.publish("rtm/presence/drop-bob", R"({"state":"online","session":"bob-conn"})", 1, true);
  REQUIRE(answered_ok(request(bob, "drop-bob", "join?channel=drop-room&msg_id=db2")));
  REQUIRE(answered_ok(
      request(bob, "drop-bob", "set_lock?channel=drop-room&lock=host&ttl=1&msg_id=db3")));
  REQUIRE(
      answered_ok(request(bob, "drop-bob", "acquire_lock?channel=drop-room&lock=host&msg_id=db4")));

  sdk::AcquireLockOptions wait;
  wait.retry = true;
  wait.wait = std::chrono::milliseconds(20000);
  auto locks = carol->lock();
  auto queued =
      std::async(std::launch::async, [&] { return locks.acquire_lock("drop-room", "host", wait); });
  // The device's Will exists once it reads a probe (its output is a file, polled with a
  // deadline); then it dies without DISCONNECT and the broker publishes the Will.
  const auto connected_by = std::chrono::steady_clock::now() + 10s;
  while (device.log().find("probe") == std::string::npos &&
         std::chrono::steady_clock::now() < connected_by) {
    bob.publish("rtm/u/drop-bob/probe", "probe", 0);
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE_MESSAGE(device.log().find("probe") != std::string::npos, device.log());
  CHECK(queued.wait_for(0ms) == std::future_status::timeout);  // bob still holds it
  device.kill_hard();

  REQUIRE(queued.wait_for(20s) == std::future_status::ready);
  auto got = queued.get();
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  CHECK(*got == sdk::AcquireStatus::acquired);
  auto expired = carol.locks.wait(
      [](const sdk::LockEvent& e) {
        return e.type == sdk::LockEventType::expired && e.uid == "drop-bob";
      },
      1000ms);
  CHECK(expired);
  auto now = locks.get_locks("drop-room");
  REQUIRE(now.ok());
  REQUIRE(now->size() == 1);
  CHECK(now->front().owner == "drop-carol");
}

TEST_CASE("sdk presence: set_state reaches another member, who_now shows it, leave ends it") {
  Room r("state-room", "state-a", "state-b");
  auto set = r.b->presence().set_state(r.channel, {{"seat", "2"}, {"ready", "no"}});
  REQUIRE_MESSAGE(set.ok(), set.status().to_string());
  CHECK(*set == sdk::StateMap{{"ready", "no"}, {"seat", "2"}});
  auto ev = r.a.states_changed.wait(
      [](const sdk::PresenceStateEvent& e) { return e.uid == "state-b"; }, 10000ms);
  REQUIRE(ev);
  CHECK(ev->channel == r.channel);
  CHECK(ev->states == sdk::StateMap{{"ready", "no"}, {"seat", "2"}});
  CHECK(ev->removed.empty());

  REQUIRE(r.b->presence().set_state(r.channel, {{"ready", "yes"}}).ok());
  auto again = r.a.states_changed.wait(
      [](const sdk::PresenceStateEvent& e) {
        return e.written == std::vector<std::string>{"ready"};
      },
      10000ms);
  REQUIRE(again);
  CHECK(again->states.at("ready") == "yes");

  auto who = r.a->presence().who_now(r.channel, true);
  REQUIRE_MESSAGE(who.ok(), who.status().to_string());
  CHECK(who->members == std::vector<std::string>{"state-a", "state-b"});
  CHECK(who->states.at("state-b") == sdk::StateMap{{"ready", "yes"}, {"seat", "2"}});
  auto one = r.a->presence().get_state(r.channel, "state-b");
  REQUIRE(one.ok());
  CHECK(one->states.at("seat") == "2");

  auto left = r.b->presence().remove_state(r.channel, {"ready"});
  REQUIRE(left.ok());
  CHECK(*left == sdk::StateMap{{"seat", "2"}});

  // Leaving the channel ends the member's states; joining again does not bring them back.
  REQUIRE(r.b->stream_channel(r.channel).leave().ok());
  REQUIRE(r.b->stream_channel(r.channel).join().ok());
  auto after = r.a->presence().who_now(r.channel, true);
  REQUIRE(after.ok());
  CHECK(after->states.empty());
  // Only members have states.
  Peer outsider(r.s.broker.uri(), "state-outsider");
  outsider.login();
  CHECK(outsider->presence()
            .set_state(r.channel, {{"seat", "9"}})
            .status()
            .is(sdk::ErrorCode::not_joined));
}

namespace {

// A stand-in for the gateway that answers the SDK's requests as scripted, through a real
// Mosquitto: the SDK's side of acquire_lock with retry (the answer says queued, the `lock`
// channel event decides) with every ordering and ending made to happen on purpose.
class ScriptedGateway {
 public:
  explicit ScriptedGateway(const std::string& uri) : client_(uri, unique_id("scripted-gw")) {
    client_.connect();
    client_.subscribe("rtm/req/#");
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedGateway() {
    stop_ = true;
    thread_.join();
  }
  // Answers `op` with `result` (a JSON object) from now on; `before`: a message (topic,
  // payload) published just before the answer.
  void answer(const std::string& op, const std::string& result,
              std::optional<std::pair<std::string, std::string>> before = std::nullopt) {
    std::lock_guard<std::mutex> lock(mutex_);
    answers_[op] = {result, std::move(before)};
  }
  // The next request of `op` (its JSON body); nullopt at the deadline.
  std::optional<std::string> wait_request(const std::string& op) {
    auto r = requests_.wait([&](const Req& req) { return req.op == op; });
    if (!r) return std::nullopt;
    return r->body;
  }
  void publish(const std::string& topic, const std::string& payload) {
    client_.publish(topic, payload);
  }

 private:
  struct Req {
    std::string op;
    std::string body;
  };
  struct Answer {
    std::string result;
    std::optional<std::pair<std::string, std::string>> before;
  };
  void run() {
    while (!stop_) {
      auto m = client_.wait_for("rtm/req/#", 50ms);
      if (!m) continue;
      // rtm/req/{uid}/{op}?msg_id={id}
      const auto uid_end = m->topic.find('/', 8);
      const std::string uid = m->topic.substr(8, uid_end - 8);
      const std::string uri = m->topic.substr(uid_end + 1);
      const std::string op = uri.substr(0, uri.find('?'));
      const std::string id = uri.substr(uri.find("msg_id=") + 7);
      std::optional<Answer> a;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (auto it = answers_.find(op); it != answers_.end()) a = it->second;
      }
      requests_.push({op, m->payload});
      if (!a) continue;
      if (a->before) client_.publish(a->before->first, a->before->second);
      client_.publish("rtm/u/" + uid + "/res/" + uri,
                      "{\"msg_id\":\"" + id + "\",\"code\":0,\"result\":" + a->result + "}");
    }
  }
  Client client_;
  std::mutex mutex_;
  std::map<std::string, Answer> answers_;
  Recorder<Req> requests_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string lock_event(const std::string& kind, const std::string& uid) {
  return "{\"event\":\"lock\",\"ts\":1,\"kind\":\"" + kind +
         "\",\"channel\":\"lock-room\",\"lock\":\"host\",\"uid\":\"" + uid + "\"}";
}

}  // namespace

TEST_CASE(
    "sdk locks: acquire_lock with retry waits for the lock event that makes this user the holder") {
  Mosquitto broker;
  ScriptedGateway gw(broker.uri());
  gw.answer("login", R"({"uid":"lock-user","session_id":"s1","expires_at":4102444800})");
  gw.answer("join", R"({"channel":"lock-room","snapshot":{"members":["lock-user"],"topics":[]}})");
  gw.answer("release_lock", R"({"channel":"lock-room","lock":"host"})");
  const std::string queued =
      R"({"channel":"lock-room","lock":"host","status":"queued","position":1})";
  gw.answer("acquire_lock", queued);
  Peer user(broker.uri(), "lock-user");
  user.login();
  REQUIRE(user->stream_channel("lock-room").join().ok());
  auto locks = user->lock();
  const std::string events = "rtm/events/lock-room";
  sdk::AcquireLockOptions retry;
  retry.retry = true;
  auto acquire = [&](const sdk::AcquireLockOptions& o) {
    auto done = std::make_shared<std::promise<sdk::Result<sdk::AcquireStatus>>>();
    locks.acquire_lock_async("lock-room", "host", o,
                             [done](sdk::Result<sdk::AcquireStatus> r) { done->set_value(r); });
    return done->get_future();
  };

  // One client through every case in turn (a Paho client that is not the SDK's takes ~2 s
  // to connect in a process: see the README's "Paho connect delay").
  {
    INFO("queued, then someone else gets the lock, then this user");
    auto f = acquire(retry);
    auto body = gw.wait_request("acquire_lock");
    REQUIRE(body);
    CHECK(body->find("\"retry\":true") != std::string::npos);
    gw.publish(events, lock_event("acquired", "someone-else"));
    REQUIRE(user.locks.next());  // the SDK has seen that event: not ours, so still waiting
    CHECK(f.wait_for(0ms) == std::future_status::timeout);
    gw.publish(events, lock_event("acquired", "lock-user"));
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    auto r = f.get();
    CHECK_MESSAGE(r.ok(), r.status().to_string());
    CHECK(*r == sdk::AcquireStatus::acquired);
  }
  {
    INFO("the lock is removed while waiting: LOCK_NOT_FOUND");
    auto f = acquire(retry);
    REQUIRE(gw.wait_request("acquire_lock"));
    gw.publish(events, lock_event("removed", "someone-else"));
    CHECK(f.get().status().is(sdk::ErrorCode::lock_not_found));
  }
  {
    INFO("no lock event within the wait: TIMEOUT, and the SDK leaves the queue");
    sdk::AcquireLockOptions brief = retry;
    brief.wait = 300ms;
    CHECK(acquire(brief).get().status().is(sdk::ErrorCode::timeout));
    CHECK(gw.wait_request("acquire_lock"));
    CHECK(gw.wait_request("release_lock"));
  }
  {
    INFO("the lock event comes before the answer that says queued");
    gw.answer("acquire_lock", queued, std::make_pair(events, lock_event("acquired", "lock-user")));
    auto r = acquire(retry).get();
    CHECK_MESSAGE(r.ok(), r.status().to_string());
    CHECK(gw.wait_request("acquire_lock"));
  }
  {
    INFO("without retry the answer decides at once");
    gw.answer("acquire_lock", R"({"channel":"lock-room","lock":"host","status":"already_held"})");
    auto r = locks.acquire_lock("lock-room", "host");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(*r == sdk::AcquireStatus::already_held);
    auto body = gw.wait_request("acquire_lock");
    REQUIRE(body);
    CHECK(body->find("\"retry\":false") != std::string::npos);
  }
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
