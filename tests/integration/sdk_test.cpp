// The C++ SDK against the real gateway and a real Mosquitto: the whole RTM flow, peer-to-peer,
// presence, timeouts, relayed errors, session restore after broker (and gateway) restarts,
// callbacks that call the SDK, and the `rtm` command-line tool.
#include <doctest/doctest.h>

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
#include "rtm/gateway/jwt.hpp"
#include "rtm/sdk/client.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

struct Setup {
  Mosquitto broker;
  GatewayProcess gateway;
  Setup() : gateway(broker.uri()) { REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log()); }
};

// Collects what a callback receives; waits for an item with a deadline.
template <class E>
class Recorder {
 public:
  void push(const E& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(e);
    }
    cv_.notify_all();
  }
  // The first item (in arrival order) that matches, removed; nullopt at the deadline.
  std::optional<E> wait(const std::function<bool(const E&)>& match,
                        std::chrono::milliseconds timeout = 10000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = Clock::now() + timeout;
    while (true) {
      for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (match(*it)) {
          E e = *it;
          items_.erase(it);
          return e;
        }
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        for (auto it = items_.begin(); it != items_.end(); ++it) {
          if (match(*it)) {
            E e = *it;
            items_.erase(it);
            return e;
          }
        }
        return std::nullopt;
      }
    }
  }
  std::optional<E> next(std::chrono::milliseconds timeout = 10000ms) {
    return wait([](const E&) { return true; }, timeout);
  }
  std::vector<E> take_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto out = std::move(items_);
    items_.clear();
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<E> items_;
};

// An SDK client with every event recorded.
struct Peer {
  Recorder<sdk::ConnectionStateEvent> states;
  Recorder<sdk::MessageEvent> messages;
  Recorder<sdk::InboxMessage> inbox;
  Recorder<sdk::ChannelEvent> events;
  Recorder<sdk::PresenceEvent> presence;
  Recorder<sdk::SessionEvent> sessions;
  Recorder<sdk::TokenEvent> tokens;
  std::unique_ptr<sdk::Client> client;  // last: destroyed first

  Peer(const std::string& broker_uri, const std::string& uid, std::int64_t ttl_s = 3600,
       const std::function<void(sdk::ClientConfig&)>& tweak = {}) {
    sdk::ClientConfig config;
    config.broker_uri = broker_uri;
    config.uid = uid;
    config.token = token_for(uid, ttl_s);
    config.reconnect_max = 500ms;
    if (tweak) tweak(config);
    client = std::make_unique<sdk::Client>(config);
    client->on_connection_state([this](const sdk::ConnectionStateEvent& e) { states.push(e); });
    client->on_message([this](const sdk::MessageEvent& e) { messages.push(e); });
    client->on_inbox([this](const sdk::InboxMessage& e) { inbox.push(e); });
    client->on_channel_event([this](const sdk::ChannelEvent& e) { events.push(e); });
    client->on_presence([this](const sdk::PresenceEvent& e) { presence.push(e); });
    client->on_session([this](const sdk::SessionEvent& e) { sessions.push(e); });
    client->on_token([this](const sdk::TokenEvent& e) { tokens.push(e); });
  }
  sdk::Client* operator->() { return client.get(); }

  void login() {
    auto r = client->login();
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  }
  std::optional<sdk::ConnectionStateEvent> wait_state(sdk::ConnectionState s,
                                                      std::chrono::milliseconds t = 10000ms) {
    return states.wait([s](const sdk::ConnectionStateEvent& e) { return e.state == s; }, t);
  }
  std::optional<sdk::ChannelEvent> wait_event(sdk::ChannelEventType type, const std::string& uid,
                                              std::chrono::milliseconds t = 10000ms) {
    return events.wait(
        [&](const sdk::ChannelEvent& e) { return e.type == type && e.uid == uid; }, t);
  }
};

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
  CHECK(failed->reason.find("replaced") != std::string::npos);
  auto ev = first.sessions.wait([](const sdk::SessionEvent& e) { return e.state == "replaced"; });
  REQUIRE(ev);
  CHECK(ev->current);
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
  CHECK(failed->reason.find("token_expired") != std::string::npos);
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
  REQUIRE(host->watch({"player-r"}).ok());
  REQUIRE(proom.publish_topic("input", "before").ok());
  REQUIRE(host.messages.next());

  s.broker.kill_hard();
  CHECK(host.wait_state(sdk::ConnectionState::reconnecting));
  CHECK(player.wait_state(sdk::ConnectionState::reconnecting));
  s.broker.start();
  auto restored = host.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE_MESSAGE(restored, s.gateway.log());
  CHECK(restored->reason.find("1 channel(s)") != std::string::npos);
  CHECK(restored->reason.find("1 subscription(s)") != std::string::npos);
  CHECK(restored->reason.find("failed") == std::string::npos);
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
  CHECK(restored->reason.find("logged in again") != std::string::npos);
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

TEST_CASE("sdk: works on a locked-down broker - auth plugin, token as password, shipped ACL") {
  // The set-up of docker/mosquitto/mosquitto.secure.conf: token users, the gateway in a
  // password_file, the shipped ACL, anonymous clients refused.
  TempDir dir;
  const auto passwd = (dir.path() / "passwd").string();
  auto made = run_command({"mosquitto_passwd", "-b", "-c", passwd, "rtm-gateway", "gw-password-for-tests"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  Mosquitto broker(std::string("plugin ") + RTM_AUTH_PLUGIN + "\nplugin_opt_token_secret " +
                       GatewayProcess::kSecret + "\npassword_file " + passwd + "\nacl_file " +
                       RTM_SOURCE_DIR + "/docker/mosquitto/acl\n",
                   /*allow_anonymous=*/false);
  GatewayOptions options;
  options.password = "gw-password-for-tests";
  GatewayProcess gateway(broker.uri(), options);

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
  CHECK(intruder.wait_state(sdk::ConnectionState::failed));
}

// ------------------------------------------------------------------ the rtm CLI

namespace {
std::string rtm_binary() { return RTM_CLI_BIN; }
}  // namespace

TEST_CASE("rtm cli: who, send and listen, token, errors") {
  Setup s;
  const std::string broker = s.broker.uri();
  const std::string secret = GatewayProcess::kSecret;

  // token: a JWT the gateway accepts.
  auto tok = run_command({rtm_binary(), "token", "--secret", secret, "--uid", "cli-user", "--ttl", "60"});
  REQUIRE(tok.exit_code == 0);
  CHECK(std::count(tok.output.begin(), tok.output.end(), '.') == 2);

  Peer host(broker, "cli-host");
  host.login();
  REQUIRE(host->stream_channel("cli-room").join().ok());

  auto who = run_command({rtm_binary(), "who", "--broker", broker, "--uid", "cli-who", "--secret",
                          secret, "--channel", "cli-room"});
  CHECK_MESSAGE(who.exit_code == 0, who.output);
  CHECK(who.output.find("cli-host") != std::string::npos);

  // listen in the background until it has one message, then send.
  TempDir dir;
  Process listen({rtm_binary(), "listen", "--broker", broker, "--uid", "cli-listener", "--secret",
                  secret, "--channel", "cli-room", "--topic", "chat", "--from", "cli-sender",
                  "--count", "2"},
                 dir.path() / "listen.log");
  // The listener is ready when the gateway has its subscription.
  auto ready = host.wait_event(sdk::ChannelEventType::member_joined, "cli-listener", 15000ms);
  REQUIRE_MESSAGE(ready, listen.log());
  const auto deadline = Clock::now() + 15s;
  bool subscribed = false;
  while (!subscribed && Clock::now() < deadline) {
    subscribed = listen.log().find("listening") != std::string::npos;
    if (!subscribed) std::this_thread::sleep_for(50ms);  // polling a log with a deadline
  }
  REQUIRE_MESSAGE(subscribed, listen.log());
  auto sent = run_command({rtm_binary(), "send", "--broker", broker, "--uid", "cli-sender",
                           "--secret", secret, "--channel", "cli-room", "--topic", "chat",
                           "--message", "hello from the cli"});
  CHECK_MESSAGE(sent.exit_code == 0, sent.output);
  sent = run_command({rtm_binary(), "send", "--broker", broker, "--uid", "cli-sender", "--secret",
                      secret, "--channel", "cli-room", "--topic", "chat", "--message", "second"});
  CHECK_MESSAGE(sent.exit_code == 0, sent.output);
  const auto end = Clock::now() + 15s;
  while (listen.running() && Clock::now() < end) std::this_thread::sleep_for(10ms);
  CHECK(listen.stop() == 0);
  const std::string out = listen.log();
  CHECK_MESSAGE(out.find("cli-sender: hello from the cli") != std::string::npos, out);
  CHECK_MESSAGE(out.find("cli-sender: second") != std::string::npos, out);

  // A clear error with the gateway's code and message, exit code 1.
  auto bad = run_command({rtm_binary(), "who", "--broker", broker, "--uid", "cli-bad", "--token",
                          "not-a-jwt", "--channel", "cli-room"});
  CHECK(bad.exit_code == 1);
  CHECK_MESSAGE(bad.output.find("TOKEN_INVALID") != std::string::npos, bad.output);
  auto help = run_command({rtm_binary(), "listen", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--channel") != std::string::npos);
}
