// The C++ SDK against the real gateway and a real Mosquitto: the whole RTM flow, peer-to-peer,
// presence, timeouts, relayed errors, session restore after broker (and gateway) restarts,
// callbacks that call the SDK, and the `rtm` command-line tool.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "rtm/tokens/jwt.hpp"
#include "sdk_peer.hpp"
#include "tcp_proxy.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

std::string frame(int i) { return "frame-" + std::to_string(i) + std::string("\0\x01\xff", 3); }

}  // namespace

TEST_CASE("sdk: the whole flow - login, join with snapshot, topics, subscribe, messages, leave, logout") {
  Setup s;
  Peer host(s.broker.uri(), "host-a");
  Peer player(s.broker.uri(), "player-b");

  auto info = host->login();
  REQUIRE_MESSAGE(info.ok(), info.status().to_string());
  CHECK(info->uid == "host-a");
  CHECK_FALSE(info->session_id.empty());
  CHECK(info->expires_at > 0);
  CHECK(host.wait_state(sdk::ConnectionState::connecting));
  CHECK(host.wait_state(sdk::ConnectionState::connected));
  CHECK(host->state() == sdk::ConnectionState::connected);
  CHECK(host->session_id() == info->session_id);
  player.login();

  auto room = host->stream_channel("room-42");
  auto snap = room.join();
  REQUIRE_MESSAGE(snap.ok(), snap.status().to_string());
  CHECK(snap->channel == "room-42");
  CHECK(snap->members == std::vector<std::string>{"host-a"});
  CHECK(room.joined());

  auto proom = player->stream_channel("room-42");
  auto psnap = proom.join();
  REQUIRE(psnap.ok());
  CHECK(psnap->members == std::vector<std::string>{"host-a", "player-b"});
  REQUIRE(host.wait_event(sdk::ChannelEventType::member_joined, "player-b"));

  // Publishing needs join_topic first: refused locally, nothing sent.
  auto early = proom.publish_topic("input", "too early");
  CHECK(early.status().is(sdk::ErrorCode::not_joined));

  REQUIRE(proom.join_topic("input").ok());
  auto pj = host.wait_event(sdk::ChannelEventType::publisher_joined, "player-b");
  REQUIRE(pj);
  CHECK(pj->topic == "input");
  CHECK(pj->channel == "room-42");

  // A late joiner's snapshot shows the publisher.
  Peer late(s.broker.uri(), "late-c");
  late.login();
  auto lsnap = late->stream_channel("room-42").join();
  REQUIRE(lsnap.ok());
  REQUIRE(lsnap->topics.size() == 1);
  CHECK(lsnap->topics[0].topic == "input");
  CHECK(lsnap->topics[0].publishers == std::vector<std::string>{"player-b"});

  auto sub = room.subscribe_topic("input", {"player-b"});
  REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
  CHECK(sub->all_ok());
  CHECK(sub->succeeded() == std::vector<std::string>{"player-b"});
  auto listed = room.subscribed_users("input");
  REQUIRE(listed.ok());
  CHECK(*listed == std::vector<std::string>{"player-b"});

  // The data plane: in order, intact, with the publisher's name; QoS 0 by default.
  const int n = 200;
  for (int i = 0; i < n; ++i) REQUIRE(proom.publish_topic("input", frame(i)).ok());
  for (int i = 0; i < n; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "message " << i << " missing");
    CHECK(m->payload == frame(i));
    CHECK(m->publisher == "player-b");
    CHECK(m->channel == "room-42");
    CHECK(m->topic == "input");
  }
  REQUIRE(proom.publish_topic("input", "qos1", sdk::PublishOptions{1}).ok());
  auto q1 = host.messages.next();
  REQUIRE(q1);
  CHECK(q1->qos == 1);
  CHECK(late.messages.take_all().empty());  // late did not subscribe

  // After unsubscribe nothing more arrives. Proof: a second topic of the same publisher,
  // still subscribed, delivers a marker sent after the input frame (one broker, in order).
  REQUIRE(proom.join_topic("sync").ok());
  REQUIRE(room.subscribe_topic("sync", {"player-b"})->all_ok());
  auto unsub = room.unsubscribe_topic("input", {"player-b"});
  REQUIRE(unsub.ok());
  CHECK(unsub->all_ok());
  CHECK(room.subscribed_users("input")->empty());
  REQUIRE(proom.publish_topic("input", "unseen").ok());
  REQUIRE(proom.publish_topic("sync", "marker").ok());
  auto marker = host.messages.next();
  REQUIRE(marker);
  CHECK(marker->topic == "sync");
  CHECK(marker->payload == "marker");
  CHECK(host.messages.take_all().empty());

  auto who = room.who_now();
  REQUIRE(who.ok());
  CHECK(who->size() == 3);
  auto where = host->where_now("player-b");
  REQUIRE(where.ok());
  CHECK(*where == std::vector<std::string>{"room-42"});

  REQUIRE(proom.leave_topic("input").ok());
  auto pl = host.wait_event(sdk::ChannelEventType::publisher_left, "player-b");
  REQUIRE(pl);
  CHECK(pl->topic == "input");
  REQUIRE(proom.leave().ok());
  CHECK_FALSE(proom.joined());
  auto left = host.wait_event(sdk::ChannelEventType::member_left, "player-b");
  REQUIRE(left);
  CHECK(left->reason == "left");

  REQUIRE(host->logout().ok());
  CHECK(host.wait_state(sdk::ConnectionState::disconnected));
  CHECK(host->state() == sdk::ConnectionState::disconnected);
  auto host_left = late.wait_event(sdk::ChannelEventType::member_left, "host-a");
  REQUIRE(host_left);
  CHECK(host_left->reason == "logged_out");
  // After logout requests are refused locally.
  CHECK(room.who_now().status().is(sdk::ErrorCode::not_logged_in));
}

TEST_CASE(
    "sdk: subscribe_topic without users - every publisher from its first message, the limit, "
    "unsubscribe") {
  GatewayOptions options;
  options.extra_yaml = "limits:\n  publishers_per_subscription: 2\n";
  Setup s(options);
  Peer host(s.broker.uri(), "host-all");
  host.login();
  auto room = host->stream_channel("room-all");
  REQUIRE(room.join().ok());
  std::vector<std::unique_ptr<Peer>> p;
  std::vector<sdk::StreamChannel> rooms;
  for (int i = 1; i <= 3; ++i) {
    p.push_back(std::make_unique<Peer>(s.broker.uri(), "p" + std::to_string(i)));
    p.back()->login();
    rooms.push_back((*p.back())->stream_channel("room-all"));
    REQUIRE(rooms.back().join().ok());
  }
  // "sync-{uid}", subscribed to by name, orders the checks: a publisher's input message sent
  // before its sync marker arrives before it, if it arrives at all (one connection, in order).
  for (const auto* who : {"p1", "p2", "p3", "host-all"}) {
    auto& ch = who == std::string("host-all") ? room : rooms[who[1] - '1'];
    REQUIRE(ch.join_topic(std::string("sync-") + who).ok());
    REQUIRE(room.subscribe_topic(std::string("sync-") + who, {who})->all_ok());
  }
  REQUIRE(room.join_topic("input").ok());
  auto no_input_before_marker = [&](const std::string& who, sdk::StreamChannel& ch) {
    const std::string marker =
        "marker-" + who + "-" + std::to_string(Clock::now().time_since_epoch().count());
    REQUIRE(ch.publish_topic("sync-" + who, marker).ok());
    auto m = host.messages.wait([&](const sdk::MessageEvent& e) { return e.payload == marker; });
    REQUIRE_MESSAGE(m, "no marker from " << who);
    for (const auto& e : host.messages.take_all()) {
      CHECK_MESSAGE(!(e.topic == "input" && e.publisher == who),
                    "unwanted: " << e.publisher << " " << e.payload);
    }
  };

  REQUIRE(rooms[0].join_topic("input").ok());
  auto sub = room.subscribe_topic("input");
  REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
  CHECK(sub->all);
  CHECK(sub->succeeded() == std::vector<std::string>{"p1"});  // not the host itself

  // A later publisher: everything from its first message on, in order.
  REQUIRE(rooms[1].join_topic("input").ok());
  for (int i = 0; i < 50; ++i) REQUIRE(rooms[1].publish_topic("input", frame(i)).ok());
  for (int i = 0; i < 50; ++i) {
    auto m = host.messages.wait([](const sdk::MessageEvent& e) { return e.topic == "input"; });
    REQUIRE_MESSAGE(m, "message " << i << " missing");
    CHECK(m->publisher == "p2");
    CHECK(m->payload == frame(i));
  }
  CHECK(*room.subscribed_users("input") == std::vector<std::string>{"p1", "p2"});

  // The third is beyond the limit (2): refused with an event, and its messages stay out.
  REQUIRE(rooms[2].join_topic("input").ok());
  auto refused = host.events.wait([](const sdk::ChannelEvent& e) {
    return e.type == sdk::ChannelEventType::subscription_refused;
  });
  REQUIRE(refused);
  CHECK(refused->uid == "p3");
  CHECK(refused->channel == "room-all");
  CHECK(refused->topic == "input");
  CHECK(refused->reason.find("LIMIT_SUBSCRIPTIONS") != std::string::npos);
  REQUIRE(rooms[2].publish_topic("input", "over the limit").ok());
  no_input_before_marker("p3", rooms[2]);
  // The host's own messages are not brought back by the subscription.
  REQUIRE(room.publish_topic("input", "mine").ok());
  no_input_before_marker("host-all", room);

  // p2 leaves the topic: its place is free, and p3 joining again takes it.
  REQUIRE(rooms[1].leave_topic("input").ok());
  REQUIRE(rooms[2].leave_topic("input").ok());
  REQUIRE(rooms[2].join_topic("input").ok());
  REQUIRE(rooms[2].publish_topic("input", "now heard").ok());
  auto heard = host.messages.wait([](const sdk::MessageEvent& e) { return e.topic == "input"; });
  REQUIRE(heard);
  CHECK(heard->publisher == "p3");
  CHECK(heard->payload == "now heard");
  CHECK(*room.subscribed_users("input") == std::vector<std::string>{"p1", "p3"});

  // Unsubscribed by name while the mode is on: out until it joins the topic again.
  REQUIRE(room.unsubscribe_topic("input", {"p1"})->all_ok());
  REQUIRE(rooms[0].publish_topic("input", "p1 unsubscribed").ok());
  no_input_before_marker("p1", rooms[0]);

  // unsubscribe without users ends the mode: nobody is heard, newcomers are not added.
  auto un = room.unsubscribe_topic("input");
  REQUIRE(un.ok());
  CHECK_FALSE(un->all);
  CHECK(un->succeeded() == std::vector<std::string>{"p3"});
  CHECK(room.subscribed_users("input")->empty());
  REQUIRE(rooms[2].publish_topic("input", "after the end").ok());
  no_input_before_marker("p3", rooms[2]);
  REQUIRE(rooms[1].join_topic("input").ok());
  REQUIRE(rooms[1].publish_topic("input", "newcomer after the end").ok());
  no_input_before_marker("p2", rooms[1]);
  CHECK(room.subscribed_users("input")->empty());
}

TEST_CASE("sdk: peer-to-peer inbox and presence watch") {
  Setup s;
  Peer alice(s.broker.uri(), "alice");
  alice.login();
  {
    Peer bob(s.broker.uri(), "bob");
    bob.login();
    auto watched = alice->watch({"bob", "nobody"});
    REQUIRE_MESSAGE(watched.ok(), watched.status().to_string());
    REQUIRE(watched->size() == 2);
    CHECK(watched->at(0).uid == "bob");
    CHECK(watched->at(0).online);
    CHECK(watched->at(1).uid == "nobody");
    CHECK_FALSE(watched->at(1).online);

    REQUIRE(bob->publish("alice", std::string("hello alice\0!", 13)).ok());
    auto got = alice.inbox.next();
    REQUIRE(got);
    CHECK(got->from == "bob");
    CHECK(got->payload == std::string("hello alice\0!", 13));
    CHECK(got->qos == 1);
    REQUIRE(alice->publish("bob", "hi bob", sdk::PublishOptions{0}).ok());
    auto back = bob.inbox.next();
    REQUIRE(back);
    CHECK(back->from == "alice");
    CHECK(back->payload == "hi bob");
    // bob's client goes away without logout: its offline presence ends the session.
  }
  auto off = alice.presence.wait([](const sdk::PresenceEvent& e) { return e.uid == "bob"; });
  REQUIRE(off);
  CHECK_FALSE(off->online);

  Peer bob2(s.broker.uri(), "bob");
  bob2.login();
  // (The gateway may repeat the offline event; what matters is that online follows.)
  auto on = alice.presence.wait(
      [](const sdk::PresenceEvent& e) { return e.uid == "bob" && e.online; });
  REQUIRE(on);
  alice.presence.take_all();
  REQUIRE(alice->unwatch({"bob"}).ok());
  REQUIRE(bob2->logout().ok());
  // A synchronising round trip: the gateway handled bob's logout before this answer.
  REQUIRE(alice->where_now("bob").ok());
  CHECK(alice.presence.take_all().empty());
}

TEST_CASE("sdk: a request times out within the configured timeout when the gateway is gone") {
  Setup s;
  Peer u(s.broker.uri(), "tim", 3600, [](sdk::ClientConfig& c) { c.request_timeout = 600ms; });
  u.login();
  s.gateway.stop();
  const auto start = Clock::now();
  auto r = u->who_now("room");
  const auto took = Clock::now() - start;
  CHECK(r.status().is(sdk::ErrorCode::timeout));
  CHECK(r.error() == "TIMEOUT");
  CHECK(r.message().find("600 ms") != std::string::npos);
  CHECK(took >= 600ms);
  CHECK(took < 2000ms);

  // The async twin reports the same, on the dispatcher.
  Recorder<sdk::Result<std::vector<std::string>>> results;
  u->stream_channel("room").who_now_async([&](sdk::Result<std::vector<std::string>> res) {
    results.push(res);
  });
  auto async = results.next(5000ms);
  REQUIRE(async);
  CHECK(async->status().is(sdk::ErrorCode::timeout));
}

TEST_CASE("sdk: errors come back with the gateway's code and message") {
  Setup s;
  Peer u(s.broker.uri(), "erin");
  // Before login: refused locally.
  CHECK(u->who_now("x").status().is(sdk::ErrorCode::not_logged_in));
  // A wrong token: the gateway's code and message, and the client fails.
  auto bad = u->login(token_for("someone-else"));
  CHECK(bad.code() == 23);
  CHECK(bad.error() == "TOKEN_UID_MISMATCH");
  CHECK(bad.message().find("someone-else") != std::string::npos);
  CHECK(u.wait_state(sdk::ConnectionState::failed));
  CHECK_THROWS_AS(bad.value(), sdk::Error);

  auto ok = u->login(token_for("erin"));
  REQUIRE_MESSAGE(ok.ok(), ok.status().to_string());
  auto room = u->stream_channel("room-9");
  auto r = room.join_topic("input");
  CHECK(r.code() == 3);
  CHECK(r.error() == "NOT_JOINED");
  CHECK(r.message() == "erin has not joined channel room-9");
  CHECK(r.status().to_string() == "NOT_JOINED (3): erin has not joined channel room-9");
  REQUIRE(room.join().ok());
  auto lt = room.leave_topic("input");
  CHECK(lt.error() == "NOT_PUBLISHER");
  // Bad names never leave the client.
  auto bad_name = u->stream_channel("bad/name").join();
  CHECK(bad_name.status().is(sdk::ErrorCode::invalid_name));
  CHECK(bad_name.message().find("'/'") != std::string::npos);
  CHECK(room.subscribe_topic("input", {"has space"}).status().is(sdk::ErrorCode::invalid_name));
  // Raw requests reach the gateway too.
  auto ping = u->request("ping");
  REQUIRE(ping.ok());
  CHECK(ping->find("\"uid\":\"erin\"") != std::string::npos);
  CHECK(u->request("no_such_op").error() == "UNKNOWN_OPERATION");
}

TEST_CASE("sdk: a second login elsewhere replaces the session and the first client is told") {
  Setup s;
  Peer first(s.broker.uri(), "frank");
  first.login();
  REQUIRE(first->stream_channel("lobby").join().ok());
  Peer second(s.broker.uri(), "frank");
  second.login();
  auto failed = first.wait_state(sdk::ConnectionState::failed);
  REQUIRE(failed);
  CHECK(failed->reason == sdk::ConnectionChangeReason::remote_login);
  CHECK(failed->message.find("replaced") != std::string::npos);
  auto ev = first.sessions.wait([](const sdk::SessionEvent& e) { return e.state == "replaced"; });
  REQUIRE(ev);
  CHECK(ev->current);
  CHECK(ev->reason_code == sdk::ConnectionChangeReason::remote_login);
  CHECK(ev->connection_state == sdk::ConnectionState::failed);
  // The newer session is untouched: the older client did not say offline for it.
  REQUIRE(second->where_now("frank").ok());
  auto where = second->where_now("frank");
  CHECK(where->empty());
  CHECK(second->stream_channel("lobby").join().ok());
}

TEST_CASE("sdk: token will-expire event, then the session ends") {
  Setup s;
  Peer u(s.broker.uri(), "gina", 3);  // the default warning is 30 s ahead: it comes at once
  u.login();
  auto warn = u.tokens.next();
  REQUIRE(warn);
  CHECK(warn->state == sdk::TokenEvent::State::will_expire);
  CHECK(warn->expires_at > 0);
  auto expired = u.tokens.next(10000ms);
  REQUIRE(expired);
  CHECK(expired->state == sdk::TokenEvent::State::expired);
  auto failed = u.wait_state(sdk::ConnectionState::failed);
  REQUIRE(failed);
  CHECK(failed->reason == sdk::ConnectionChangeReason::token_expired);
  CHECK(failed->message.find("token_expired") != std::string::npos);
}

TEST_CASE("sdk: renew_token moves the expiry") {
  Setup s;
  Peer u(s.broker.uri(), "ivan", 3600);
  u.login();
  auto renewed = u->renew_token(token_for("ivan", 7200));
  REQUIRE_MESSAGE(renewed.ok(), renewed.status().to_string());
  CHECK(*renewed > 0);
  CHECK(u->renew_token(token_for("other")).error() == "TOKEN_UID_MISMATCH");
}

TEST_CASE("sdk: the session is restored after the broker restarts and messages flow again") {
  Setup s;
  Peer host(s.broker.uri(), "host-r");
  Peer player(s.broker.uri(), "player-r");
  host.login();
  player.login();
  auto room = host->stream_channel("room-r");
  auto proom = player->stream_channel("room-r");
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(room.subscribe_topic("input", {"player-r"})->all_ok());
  REQUIRE(room.subscribe_topic("chat")->all);
  REQUIRE(host->watch({"player-r"}).ok());
  REQUIRE(proom.publish_topic("input", "before").ok());
  REQUIRE(host.messages.next());

  s.broker.kill_hard();
  CHECK(host.wait_state(sdk::ConnectionState::reconnecting));
  CHECK(player.wait_state(sdk::ConnectionState::reconnecting));
  s.broker.start();
  auto restored = host.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE_MESSAGE(restored, s.gateway.log());
  CHECK(restored->reason == sdk::ConnectionChangeReason::restored);
  CHECK(restored->message.find("1 channel(s)") != std::string::npos);
  CHECK(restored->message.find("2 subscription(s)") != std::string::npos);
  CHECK(restored->message.find("failed") == std::string::npos);
  REQUIRE(player.wait_state(sdk::ConnectionState::restored, 20000ms));
  auto snap = host.events.wait(
      [](const sdk::ChannelEvent& e) { return e.type == sdk::ChannelEventType::snapshot; });
  REQUIRE(snap);
  CHECK(snap->channel == "room-r");
  CHECK(snap->reason == "restored");

  // Messages flow again on the restored subscription (gateway side and MQTT side).
  for (int i = 0; i < 20; ++i) REQUIRE(proom.publish_topic("input", frame(i)).ok());
  for (int i = 0; i < 20; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "message " << i << " missing after the restore");
    CHECK(m->payload == frame(i));
  }
  CHECK(*room.subscribed_users("input") == std::vector<std::string>{"player-r"});
  CHECK(room.who_now()->size() == 2);
  // The every-publisher subscription is back too: a publisher new since the restore is heard.
  REQUIRE(proom.join_topic("chat").ok());
  REQUIRE(proom.publish_topic("chat", "first after the restore").ok());
  auto chat = host.messages.next();
  REQUIRE(chat);
  CHECK(chat->topic == "chat");
  CHECK(chat->payload == "first after the restore");
  CHECK(*room.subscribed_users("chat") == std::vector<std::string>{"player-r"});
  // Events still flow on the restored channel subscription.
  REQUIRE(proom.leave_topic("input").ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_left, "player-r"));
}

TEST_CASE("sdk: after the broker and the gateway restart, the SDK logs in again and restores") {
  Setup s;
  Peer host(s.broker.uri(), "host-g");
  Peer player(s.broker.uri(), "player-g");
  host.login();
  player.login();
  auto room = host->stream_channel("room-g");
  auto proom = player->stream_channel("room-g");
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(room.subscribe_topic("input", {"player-g"})->all_ok());

  s.broker.kill_hard();
  s.gateway.stop();
  s.gateway.start();  // a new gateway process: every session is gone
  s.broker.start();
  REQUIRE_MESSAGE(wait_gateway_ready(s.broker.uri()), s.gateway.log());
  auto restored = host.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE_MESSAGE(restored, s.gateway.log());
  CHECK(restored->message.find("logged in again") != std::string::npos);
  REQUIRE(player.wait_state(sdk::ConnectionState::restored, 20000ms));
  // The new gateway knows the channel, the publisher and the subscription again.
  CHECK(room.who_now()->size() == 2);
  CHECK(*room.subscribed_users("input") == std::vector<std::string>{"player-g"});
  REQUIRE(proom.publish_topic("input", "after").ok());
  auto m = host.messages.next();
  REQUIRE(m);
  CHECK(m->payload == "after");
}

TEST_CASE("sdk: callbacks may call the SDK, blocking and async, without deadlock") {
  Setup s;
  Peer host(s.broker.uri(), "host-cb");
  Peer player(s.broker.uri(), "player-cb");
  host.login();
  player.login();
  auto room = host->stream_channel("room-cb");
  REQUIRE(room.join().ok());

  // The host subscribes to every publisher of "input" as it appears, from inside the
  // channel-event callback, with a blocking call; then says hello with another.
  std::atomic<int> subscribed{0};
  host->on_channel_event([&](const sdk::ChannelEvent& e) {
    if (e.type == sdk::ChannelEventType::publisher_joined && e.topic == "input") {
      auto r = room.subscribe_topic("input", {e.uid});
      if (r.ok() && r->all_ok()) ++subscribed;
      host->publish(e.uid, "welcome");
    }
  });

  // The player chains async calls, each started from the previous one's callback.
  Recorder<std::string> steps;
  auto proom = player->stream_channel("room-cb");
  proom.join_async([&](sdk::Result<sdk::ChannelSnapshot> joined) {
    steps.push(joined.ok() ? "joined" : joined.status().to_string());
    proom.join_topic_async("input", [&](sdk::Result<void> topic) {
      steps.push(topic.ok() ? "topic" : topic.status().to_string());
      // And a blocking call inside an async callback.
      auto who = proom.who_now();
      steps.push(who.ok() ? "who " + std::to_string(who->size()) : who.status().to_string());
    });
  });
  CHECK(steps.next() == std::optional<std::string>("joined"));
  CHECK(steps.next() == std::optional<std::string>("topic"));
  CHECK(steps.next() == std::optional<std::string>("who 2"));

  auto welcome = player.inbox.next();
  REQUIRE(welcome);
  CHECK(welcome->payload == "welcome");
  CHECK(subscribed.load() == 1);
  REQUIRE(proom.publish_topic("input", "go").ok());
  auto m = host.messages.next();
  REQUIRE(m);
  CHECK(m->payload == "go");

  // A message callback that logs out from inside: the client ends cleanly.
  std::atomic<bool> logged_out{false};
  host->on_message([&](const sdk::MessageEvent&) {
    if (!logged_out.exchange(true)) host->logout();
  });
  REQUIRE(proom.publish_topic("input", "bye").ok());
  REQUIRE(host.wait_state(sdk::ConnectionState::disconnected));
  CHECK(logged_out.load());
}

namespace {

// The set-up of docker/mosquitto/mosquitto.secure.conf: token users, the gateway in a
// password_file, the shipped ACL, anonymous clients refused, and the broker enforcing the
// gateway's grants.
struct LockedDown {
  TempDir dir;
  std::string passwd = make_passwd(dir);
  Mosquitto broker{std::string("plugin ") + RTM_AUTH_PLUGIN + "\nplugin_opt_token_secret " +
                       GatewayProcess::kSecret + "\nplugin_opt_enforce_grants true\npassword_file " +
                       passwd + "\nacl_file " + RTM_SOURCE_DIR + "/docker/mosquitto/acl\n",
                   /*allow_anonymous=*/false};
  GatewayProcess gateway{broker.uri(), options()};

  static std::string make_passwd(const TempDir& dir) {
    const auto path = (dir.path() / "passwd").string();
    auto made = run_command({"mosquitto_passwd", "-b", "-c", path, "rtm-gateway", "gw-password-for-tests"});
    REQUIRE_MESSAGE(made.exit_code == 0, made.output);
    return path;
  }
  static GatewayOptions options() {
    GatewayOptions o;
    o.password = "gw-password-for-tests";
    o.extra_yaml = "enforcement:\n  publish_grants: true\nops:\n  uids: [ops]\n";
    return o;
  }
};

}  // namespace

TEST_CASE("sdk: works on a locked-down broker - auth plugin, token as password, shipped ACL") {
  // The SDK reads only what it subscribed to, through the same calls.
  LockedDown locked;
  auto& broker = locked.broker;
  auto& gateway = locked.gateway;

  Peer host(broker.uri(), "host-s", 3600, [](sdk::ClientConfig& c) { c.request_timeout = 300ms; });
  // The gateway is ready when a login is answered (requests before it subscribes are lost).
  const auto deadline = Clock::now() + 20s;
  sdk::Result<sdk::LoginInfo> login = sdk::Status(sdk::ErrorCode::timeout, "not tried");
  while (!login.ok() && Clock::now() < deadline) {
    login = host->login();
    REQUIRE_MESSAGE((login.ok() || login.status().is(sdk::ErrorCode::timeout)), login.status().to_string());
  }
  REQUIRE_MESSAGE(login.ok(), gateway.log());
  Peer player(broker.uri(), "player-s");
  player.login();

  auto room = host->stream_channel("room-s");
  auto proom = player->stream_channel("room-s");
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_joined, "player-s"));
  REQUIRE(room.subscribe_topic("input", {"player-s"})->all_ok());
  for (int i = 0; i < 10; ++i) REQUIRE(proom.publish_topic("input", frame(i)).ok());
  for (int i = 0; i < 10; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "message " << i << " missing");
    CHECK(m->payload == frame(i));
  }
  // The every-publisher mode's wildcard is allowed by the shipped ACL too.
  REQUIRE(room.subscribe_topic("chat")->all);
  REQUIRE(proom.join_topic("chat").ok());
  REQUIRE(proom.publish_topic("chat", "first words").ok());
  auto words = host.messages.next();
  REQUIRE(words);
  CHECK(words->topic == "chat");
  CHECK(words->payload == "first words");
  REQUIRE(player->publish("host-s", "hi host").ok());
  auto dm = host.inbox.next();
  REQUIRE(dm);
  CHECK(dm->from == "player-s");
  auto watched = host->watch({"player-s"});
  REQUIRE(watched.ok());
  CHECK(watched->at(0).online);

  // A token for someone else: the broker refuses the CONNECT itself.
  Peer intruder(broker.uri(), "mallory", 3600,
                [](sdk::ClientConfig& c) { c.token = token_for("host-s"); });
  auto refused = intruder->login();
  CHECK(refused.status().is(sdk::ErrorCode::unavailable));
  auto intruder_failed = intruder.wait_state(sdk::ConnectionState::failed);
  REQUIRE(intruder_failed);
  CHECK(intruder_failed->reason == sdk::ConnectionChangeReason::login_failure);  // CONNACK 5
}

TEST_CASE("sdk: a kicked or replaced client on the enforcing set-up stops and stays away") {
  LockedDown locked;
  const auto uri = locked.broker.uri();
  Peer ops(uri, "ops", 3600, [](sdk::ClientConfig& c) { c.request_timeout = 300ms; });
  const auto deadline = Clock::now() + 20s;  // the gateway is ready when a login is answered
  sdk::Result<sdk::LoginInfo> login = sdk::Status(sdk::ErrorCode::timeout, "not tried");
  while (!login.ok() && Clock::now() < deadline) login = ops->login();
  REQUIRE_MESSAGE(login.ok(), locked.gateway.log());

  // Kicked: told why, then the broker closes the connection; the SDK does not log in again.
  Peer alice(uri, "alice");
  alice.login();
  REQUIRE(alice->stream_channel("room").join().ok());
  Client raw_ops(uri, "ops/raw", [] {
    Client::Options o;
    o.username = "ops";
    o.password = token_for("ops");
    return o;
  }());
  raw_ops.connect();
  REQUIRE(raw_ops.subscribe("rtm/u/ops/#") == 1);
  REQUIRE(request(raw_ops, "ops", "kick?uid=alice&msg_id=k1")["code"].GetInt() == 0);
  auto failed = alice.wait_state(sdk::ConnectionState::failed);
  REQUIRE(failed);
  CHECK(failed->reason == sdk::ConnectionChangeReason::kicked);
  CHECK(failed->message.find("kicked") != std::string::npos);
  // It did not log in again: alice is in no channel.
  auto where = request(raw_ops, "ops", "where_now?uid=alice&msg_id=w1");
  REQUIRE(where["code"].GetInt() == 0);
  CHECK(where["result"]["channels"].Empty());

  // Replaced: the older client stops, the newer one keeps the session.
  Peer phone(uri, "bob");
  Peer laptop(uri, "bob");
  phone.login();
  laptop.login();
  auto replaced = phone.wait_state(sdk::ConnectionState::failed);
  REQUIRE(replaced);
  CHECK(replaced->reason == sdk::ConnectionChangeReason::remote_login);
  auto room = laptop->stream_channel("room");
  REQUIRE(room.join().ok());
  CHECK(laptop->state() == sdk::ConnectionState::connected);
}

TEST_CASE("sdk: a token that expires on the enforcing set-up ends in failed TOKEN_EXPIRED") {
  LockedDown locked;
  const auto uri = locked.broker.uri();
  Peer probe(uri, "probe", 3600, [](sdk::ClientConfig& c) { c.request_timeout = 300ms; });
  const auto deadline = Clock::now() + 20s;  // the gateway is ready when a login is answered
  sdk::Result<sdk::LoginInfo> login = sdk::Status(sdk::ErrorCode::timeout, "not tried");
  while (!login.ok() && Clock::now() < deadline) login = probe->login();
  REQUIRE_MESSAGE(login.ok(), locked.gateway.log());

  // The broker closes the connection at expiry by its own clock, and the gateway ends the
  // session: whichever the SDK hears first, it stops with TOKEN_EXPIRED, not reconnecting.
  Peer tess(uri, "tess", 3);
  tess.login();
  REQUIRE(tess->stream_channel("room").join().ok());
  auto failed = tess.wait_state(sdk::ConnectionState::failed, 15000ms);
  REQUIRE(failed);
  CHECK(failed->reason == sdk::ConnectionChangeReason::token_expired);
  for (const auto& e : tess.states.take_all()) {
    CHECK_MESSAGE(e.state != sdk::ConnectionState::reconnecting, sdk::to_string(e));
  }
  CHECK(tess->state() == sdk::ConnectionState::failed);
  // The broker closes tess's connection itself (its log says so), by its clock or at the
  // gateway's word, whichever comes first; the SDK may have heard the gateway before that.
  const auto closed_in = [](const std::string& log) {
    return log.find("its login token expired") != std::string::npos ||
           log.find("closing every connection of 'tess'") != std::string::npos;
  };
  const auto until = Clock::now() + 10s;
  while (!closed_in(locked.broker.log()) && Clock::now() < until) std::this_thread::sleep_for(50ms);
  locked.broker.stop();  // its whole log
  CHECK_MESSAGE(closed_in(locked.broker.log()), locked.broker.log());
}

TEST_CASE("sdk: a reconnect the enforcing broker refuses after the token expired ends in failed") {
  LockedDown locked;
  const auto uri = locked.broker.uri();
  Peer probe(uri, "probe", 3600, [](sdk::ClientConfig& c) { c.request_timeout = 300ms; });
  const auto deadline = Clock::now() + 20s;  // the gateway is ready when a login is answered
  sdk::Result<sdk::LoginInfo> login = sdk::Status(sdk::ErrorCode::timeout, "not tried");
  while (!login.ok() && Clock::now() < deadline) login = probe->login();
  REQUIRE_MESSAGE(login.ok(), locked.gateway.log());

  // uma's network goes while her token is valid; it expires while she is away, so the
  // broker refuses her reconnect (CONNACK 5): she stops there instead of retrying for ever.
  TcpProxy proxy(locked.broker.port());
  Peer uma(proxy.uri(), "uma", 4);
  auto logged_in = uma->login();
  REQUIRE(logged_in.ok());
  proxy.cut();
  auto away = uma.wait_state(sdk::ConnectionState::reconnecting);
  REQUIRE(away);
  CHECK(away->reason == sdk::ConnectionChangeReason::interrupted);
  // What the test waits for here is the clock passing the token's exp (the broker's check).
  const auto expired_at = std::chrono::system_clock::from_time_t(logged_in->expires_at) + 1s;
  while (std::chrono::system_clock::now() < expired_at) std::this_thread::sleep_for(50ms);
  CHECK(uma->state() == sdk::ConnectionState::reconnecting);
  proxy.restore();
  auto failed = uma.wait_state(sdk::ConnectionState::failed, 15000ms);
  REQUIRE(failed);
  CHECK(failed->reason == sdk::ConnectionChangeReason::token_expired);
  CHECK_MESSAGE(failed->message.find("refused") != std::string::npos, failed->message);
}

// ------------------------------------------------------------------ the rtm CLI

namespace {

std::string rtm_binary() { return RTM_CLI_BIN; }

// `printf '%s\n' LINES... | rtm ARGS...`: the one-shot use of send and dm.
CommandResult piped(const std::vector<std::string>& lines, const std::vector<std::string>& args) {
  std::string script = "printf '%s\\n'";
  for (const auto& l : lines) script += " '" + l + "'";
  script += " | \"$0\" \"$@\"";
  std::vector<std::string> argv{"/bin/sh", "-c", script, rtm_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

}  // namespace

TEST_CASE("rtm cli: token, who and errors, with the shared options before or after the command") {
  // who_now answers members only; this room's presence is public, as an app would set it up
  // for a lobby that anyone may look into.
  GatewayOptions options;
  options.extra_yaml = "channels:\n  public_presence: [\"cli-*\"]\n";
  Setup s(options);
  const std::string broker = s.broker.uri();
  const std::string secret = GatewayProcess::kSecret;
  const std::string config = s.gateway.config_path().string();

  // token: a JWT the gateway accepts, with the secret given before or after `token`.
  auto tok = run_command({rtm_binary(), "token", "--secret", secret, "--uid", "cli-user", "--ttl", "60"});
  REQUIRE_MESSAGE(tok.exit_code == 0, tok.output);
  CHECK(std::count(tok.output.begin(), tok.output.end(), '.') == 2);
  auto tok2 = run_command({rtm_binary(), "--config", config, "--uid", "cli-tok", "token"});
  REQUIRE_MESSAGE(tok2.exit_code == 0, tok2.output);
  const std::string token = lines_of(tok2.output).at(0);
  auto no_uid = run_command({rtm_binary(), "--config", config, "token"});
  CHECK(no_uid.exit_code != 0);
  CHECK_MESSAGE(no_uid.output.find("--uid") != std::string::npos, no_uid.output);

  Peer host(broker, "cli-host");
  host.login();
  REQUIRE(host->stream_channel("cli-room").join().ok());

  // The same command with the shared options after it, before it, mixed, and from
  // --config alone (the README's R="rtm --config config.yaml"; $R who ...).
  const std::vector<std::vector<std::string>> whos = {
      {rtm_binary(), "who", "--broker", broker, "--uid", "cli-who", "--secret", secret, "--channel",
       "cli-room"},
      {rtm_binary(), "--broker", broker, "--uid", "cli-who", "--secret", secret, "who", "--channel",
       "cli-room"},
      {rtm_binary(), "--broker", broker, "who", "--uid", "cli-who", "--channel", "cli-room",
       "--secret", secret},
      {rtm_binary(), "--config", config, "who", "--uid", "ops", "--channel", "cli-room"},
      {rtm_binary(), "who", "--uid", "ops", "--channel", "cli-room", "--config", config},
      {rtm_binary(), "--broker", broker, "--token", token, "--uid", "cli-tok", "who", "--channel",
       "cli-room"},
      // Given both ways, the one after the command wins.
      {rtm_binary(), "--broker", "tcp://127.0.0.1:1", "--config", config, "who", "--broker", broker,
       "--uid", "ops", "--channel", "cli-room"},
  };
  for (const auto& argv : whos) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    CAPTURE(cmd);
    auto who = run_command(argv);
    CHECK_MESSAGE(who.exit_code == 0, who.output);
    CHECK_MESSAGE(who.output.find("cli-host") != std::string::npos, who.output);
    CHECK_MESSAGE(who.output.find("rtm:") == std::string::npos, who.output);  // no warnings
  }

  // A clear error with the gateway's code and message, exit code 1.
  auto bad = run_command({rtm_binary(), "who", "--broker", broker, "--uid", "cli-bad", "--token",
                          "not-a-jwt", "--channel", "cli-room"});
  CHECK(bad.exit_code == 1);
  CHECK_MESSAGE(bad.output.find("TOKEN_INVALID") != std::string::npos, bad.output);
  auto bad_before = run_command({rtm_binary(), "--token", "not-a-jwt", "--broker", broker, "who",
                                 "--uid", "cli-bad", "--channel", "cli-room"});
  CHECK(bad_before.exit_code == 1);
  CHECK_MESSAGE(bad_before.output.find("TOKEN_INVALID") != std::string::npos, bad_before.output);
  auto unknown = run_command({rtm_binary(), "who", "--channel", "x", "--no-such-option"});
  CHECK(unknown.exit_code != 0);
  CHECK(unknown.output.find("--no-such-option") != std::string::npos);

  // Help: the shared options at the top and in each command.
  auto help = run_command({rtm_binary(), "--help"});
  CHECK(help.exit_code == 0);
  for (const auto* word :
       {"before or after the command", "--config", "--broker", "listen", "chat"}) {
    CHECK_MESSAGE(help.output.find(word) != std::string::npos, word);
  }
  auto cmd_help = run_command({rtm_binary(), "listen", "--help"});
  CHECK(cmd_help.exit_code == 0);
  for (const auto* word : {"--channel", "--from", "--count", "--config", "--uid"}) {
    CHECK_MESSAGE(cmd_help.output.find(word) != std::string::npos, word);
  }
}

TEST_CASE(
    "rtm cli: listen without --from prints everything a one-shot send says once it is ready") {
  Setup s;
  const std::string config = s.gateway.config_path().string();
  TempDir dir;
  // A new sender each round: its join_topic comes right before its first message.
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const std::string sender = "cli-sender-" + std::to_string(round);
    Process listen({rtm_binary(), "--config", config, "listen", "--uid", "cli-tap", "--channel",
                    "lobby", "--topic", "chat", "--count", "5"},
                   dir.path() / ("listen-" + std::to_string(round) + ".log"));
    REQUIRE_MESSAGE(wait_log(listen, "listening on lobby/chat (every publisher)"), listen.log());
    const std::vector<std::string> said = {"one", "two", "three", "four", "five"};
    auto sent = piped(said, {"--config", config, "send", "--uid", sender, "--channel", "lobby",
                             "--topic", "chat"});
    CHECK_MESSAGE(sent.exit_code == 0, sent.output);
    CHECK_MESSAGE(sent.output.empty(), sent.output);
    REQUIRE_MESSAGE(wait_exit(listen), listen.log());
    CHECK(listen.stop() == 0);
    // Exactly the readiness line and the five messages, in order; nothing else (no error).
    const auto lines = lines_of(listen.log());
    REQUIRE_MESSAGE(lines.size() == 6, listen.log());
    CHECK(lines[0].rfind("rtm: listening on lobby/chat (every publisher) as cli-tap", 0) == 0);
    for (std::size_t i = 0; i < said.size(); ++i) CHECK(lines[i + 1] == sender + ": " + said[i]);
  }
}

TEST_CASE(
    "rtm cli: listen --count ends cleanly, with or without --from, while others keep sending") {
  Setup s;
  const std::string broker = s.broker.uri();
  const std::string secret = GatewayProcess::kSecret;
  TempDir dir;
  for (bool from : {false, true}) {
    CAPTURE(from);
    std::vector<std::string> argv{rtm_binary(),   "listen",   "--broker", broker,      "--uid",
                                  "cli-listener", "--secret", secret,     "--channel", "cli-room",
                                  "--topic",      "chat",     "--count",  "2"};
    if (from) argv.insert(argv.end(), {"--from", "cli-sender"});
    Process listen(argv, dir.path() / (from ? "from.log" : "all.log"));
    REQUIRE_MESSAGE(wait_log(listen, "rtm: listening on cli-room/chat"), listen.log());
    // One process per message, each joining the topic again: the listener reaches its
    // count while publishers still come and go.
    for (const auto* text : {"hello from the cli", "second", "third"}) {
      auto sent =
          run_command({rtm_binary(), "send", "--broker", broker, "--uid", "cli-sender", "--secret",
                       secret, "--channel", "cli-room", "--topic", "chat", "--message", text});
      CHECK_MESSAGE(sent.exit_code == 0, sent.output);
    }
    REQUIRE_MESSAGE(wait_exit(listen), listen.log());
    CHECK(listen.stop() == 0);
    const auto lines = lines_of(listen.log());
    REQUIRE_MESSAGE(lines.size() == 3, listen.log());
    CHECK(lines[0].rfind("rtm: listening on cli-room/chat", 0) == 0);
    CHECK(lines[1] == "cli-sender: hello from the cli");
    CHECK(lines[2] == "cli-sender: second");
  }
}

TEST_CASE(
    "rtm cli: chat hears a newcomer's first line, sends typed lines and leaves at the end of "
    "input") {
  Setup s;
  const std::string broker = s.broker.uri();
  Peer bob(broker, "chat-bob");
  bob.login();
  auto room = bob->stream_channel("chat-room");
  REQUIRE(room.join().ok());
  REQUIRE(room.subscribe_topic("chat")->all);

  // The chat's stdin is a FIFO the test writes to, as a user types.
  TempDir dir;
  const auto fifo = (dir.path() / "stdin").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  Process chat({"/bin/sh", "-c", "exec \"$0\" \"$@\" < \"" + fifo + "\"", rtm_binary(), "chat",
                "--broker", broker, "--secret", GatewayProcess::kSecret, "--uid", "chat-alice",
                "--channel", "chat-room"},
               dir.path() / "chat.log");
  int typing = -1;
  const auto deadline = Clock::now() + 15s;
  while (typing < 0 && Clock::now() < deadline && chat.running()) {
    typing = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // ENXIO until the chat opens it
    if (typing < 0) std::this_thread::sleep_for(10ms);
  }
  REQUIRE_MESSAGE(typing >= 0, chat.log());
  REQUIRE_MESSAGE(wait_log(chat, "* you are chat-alice in chat-room"), chat.log());
  REQUIRE(bob.wait_event(sdk::ChannelEventType::publisher_joined, "chat-alice"));

  // bob's first line, sent right after he joins the topic, is heard.
  REQUIRE(room.join_topic("chat").ok());
  REQUIRE(room.publish_topic("chat", "first line from bob").ok());
  CHECK_MESSAGE(wait_log(chat, "[chat-bob] first line from bob"), chat.log());

  const std::string typed = "hello from the terminal\n";
  REQUIRE(::write(typing, typed.data(), typed.size()) == static_cast<ssize_t>(typed.size()));
  auto got = bob.messages.next();
  REQUIRE_MESSAGE(got, chat.log());
  CHECK(got->publisher == "chat-alice");
  CHECK(got->payload == "hello from the terminal");

  ::close(typing);  // end of input: the chat leaves and ends
  auto left = bob.wait_event(sdk::ChannelEventType::member_left, "chat-alice");
  REQUIRE_MESSAGE(left, chat.log());
  CHECK(left->reason == "left");
  REQUIRE_MESSAGE(wait_exit(chat), chat.log());
  CHECK(chat.stop() == 0);
  CHECK_MESSAGE(chat.log().find("rtm:") == std::string::npos, chat.log());  // no error
  CHECK(bob.messages.take_all().empty());  // its own line is not echoed back to it either
}

TEST_CASE("rtm cli: inbox --count prints what one-shot dm processes send, in order, and ends cleanly") {
  Setup s;
  const std::string config = s.gateway.config_path().string();
  TempDir dir;
  Process inbox({rtm_binary(), "--config", config, "--uid", "cli-inbox", "inbox", "--count", "4"},
                dir.path() / "inbox.log");
  REQUIRE_MESSAGE(wait_log(inbox, "rtm: listening to the inbox of cli-inbox"), inbox.log());
  auto sent = piped({"one", "two", "three"},
                    {"dm", "--config", config, "--uid", "cli-dm", "--to", "cli-inbox"});
  CHECK_MESSAGE(sent.exit_code == 0, sent.output);
  CHECK_MESSAGE(sent.output.empty(), sent.output);
  // QoS 0 from another sender, and a fifth message after the count.
  for (const auto* text : {"four", "five"}) {
    auto one = run_command({rtm_binary(), "--config", config, "dm", "--uid", "cli-dm2", "--to",
                            "cli-inbox", "--qos", "0", "--message", text});
    CHECK_MESSAGE(one.exit_code == 0, one.output);
  }
  REQUIRE_MESSAGE(wait_exit(inbox), inbox.log());
  CHECK(inbox.stop() == 0);
  const auto lines = lines_of(inbox.log());
  REQUIRE_MESSAGE(lines.size() == 5, inbox.log());
  CHECK(lines[1] == "cli-dm: one");
  CHECK(lines[2] == "cli-dm: two");
  CHECK(lines[3] == "cli-dm: three");
  CHECK(lines[4] == "cli-dm2: four");
}
