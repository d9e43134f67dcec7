// Connection states with coded reasons, and what happens across a reconnect (issue 17),
// against a real Mosquitto, the real gateway and real clients: the gateway's `session`
// events read with a plain MQTT client; the SDK's states and reasons; a watched user's
// presence change and an invitation that ended while the SDK was away, reported after the
// restore; the send queue (order, bounds); and calls made while reconnecting. A TcpProxy
// takes one client off the network while everyone else stays; every wait has a deadline.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"
#include "tcp_proxy.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

using Reason = sdk::ConnectionChangeReason;
using State = sdk::ConnectionState;

GatewayOptions with_ops() {
  GatewayOptions o;
  o.extra_yaml = "ops:\n  uids: [ops]\ninvitations:\n  ack_timeout_s: 5\n  expire_s: 60\n";
  return o;
}

// A plain MQTT client of `uid` reading its own subtree.
std::unique_ptr<Client> plain(const std::string& uri, const std::string& uid) {
  auto c = std::make_unique<Client>(uri, uid + "/" + unique_id("plain"));
  c->connect();
  REQUIRE(c->subscribe("rtm/u/" + uid + "/#") == 1);
  return c;
}

void ok(Client& c, const std::string& uid, const std::string& uri, const std::string& body = "") {
  const char* sep = uri.find('?') == std::string::npos ? "?" : "&";
  auto doc = request(c, uid, uri + sep + "msg_id=" + unique_id(uid), body);
  REQUIRE_MESSAGE(answered_ok(doc), uri << ": " << json_text(doc));
}

std::string login_body(const std::string& uid, std::int64_t ttl_s = 3600) {
  return R"({"token":")" + token_for(uid, ttl_s) + "\"}";
}

// The next `session` event in `state` on c's subtree, checked for its codes and names.
void expect_session(Client& c, const std::string& uid, const std::string& state,
                    const std::string& reason, int reason_code, const std::string& reason_name,
                    int connection_state, const std::string& connection_state_name) {
  auto e = wait_event(c, "rtm/u/" + uid + "/events/session", "session", state);
  REQUIRE_MESSAGE(e, uid << ": no session event " << state << " " << reason);
  CAPTURE(json_text(*e));
  if (!reason.empty()) CHECK(std::string((*e)["reason"].GetString()) == reason);
  CHECK((*e)["reason_code"].GetInt() == reason_code);
  CHECK(std::string((*e)["reason_name"].GetString()) == reason_name);
  CHECK((*e)["connection_state"].GetInt() == connection_state);
  CHECK(std::string((*e)["connection_state_name"].GetString()) == connection_state_name);
}

// An SDK peer whose network goes through a proxy the test can cut.
struct Away {
  TcpProxy proxy;
  Peer peer;
  Away(Setup& s, const std::string& uid, const std::function<void(sdk::ClientConfig&)>& tweak = {})
      : proxy(s.broker.port()), peer(proxy.uri(), uid, 3600, tweak) {}
  void cut() {
    proxy.cut();
    auto r = peer.wait_state(State::reconnecting);
    REQUIRE(r);
    CHECK(r->reason == Reason::interrupted);
  }
  void restore() {
    proxy.restore();
    auto r = peer.wait_state(State::restored, 20000ms);
    REQUIRE(r);
    CHECK(r->reason == Reason::restored);
  }
};

}  // namespace

TEST_CASE("reconnect: the gateway's session events carry reason codes and names") {
  Setup s(with_ops());
  const auto uri = s.broker.uri();
  auto phone = plain(uri, "sam");
  auto ops = plain(uri, "ops");
  ok(*ops, "ops", "login", login_body("ops"));

  ok(*phone, "sam", "login", login_body("sam"));
  expect_session(*phone, "sam", "logged_in", "", 2, "LOGIN_SUCCESS", 3, "CONNECTED");
  // A login elsewhere replaces the session.
  auto laptop = plain(uri, "sam");
  ok(*laptop, "sam", "login", login_body("sam"));
  expect_session(*phone, "sam", "replaced", "logged in elsewhere", 8, "REMOTE_LOGIN", 5, "ABORTED");
  // Logged out.
  ok(*laptop, "sam", "logout");
  expect_session(*laptop, "sam", "ended", "logged_out", 6, "LOGOUT", 1, "DISCONNECTED");
  // Kicked by an operator.
  ok(*laptop, "sam", "login", login_body("sam"));
  ok(*ops, "ops", "kick?uid=sam");
  expect_session(*laptop, "sam", "ended", "kicked", 10, "KICKED", 5, "ABORTED");
  // The token expires.
  ok(*laptop, "sam", "login", login_body("sam", 2));
  expect_session(*laptop, "sam", "ended", "token_expired", 9, "TOKEN_EXPIRED", 5, "ABORTED");
  // The connection drops: its Will (published here as the broker would) ends the session as
  // timed out.
  laptop->publish("rtm/presence/sam", R"({"state":"online","session":"c-will"})", 1, true);
  ok(*laptop, "sam", "login", login_body("sam"));
  expect_session(*laptop, "sam", "logged_in", "", 2, "LOGIN_SUCCESS", 3, "CONNECTED");
  laptop->publish("rtm/presence/sam", R"({"state":"offline","session":"c-will"})", 1, true);
  expect_session(*laptop, "sam", "ended", "connection_lost", 5, "INTERRUPTED", 4, "RECONNECTING");
}

TEST_CASE("reconnect: SDK connection states carry reasons - login, interrupted, restored, logout") {
  Setup s;
  Away a(s, "rita");
  a.peer.login();
  auto connecting = a.peer.states.next();
  REQUIRE(connecting);
  CHECK(connecting->state == State::connecting);
  CHECK(connecting->reason == Reason::login);
  auto connected = a.peer.states.next();
  REQUIRE(connected);
  CHECK(connected->state == State::connected);
  CHECK(connected->reason == Reason::login_success);
  CHECK(sdk::to_string(*connected).rfind("connected (LOGIN_SUCCESS): ", 0) == 0);
  REQUIRE(a.peer->stream_channel("room").join().ok());

  a.cut();
  a.restore();
  CHECK(a.peer->stream_channel("room").who_now().ok());

  REQUIRE(a.peer->logout().ok());
  auto out = a.peer.wait_state(State::disconnected);
  REQUIRE(out);
  CHECK(out->reason == Reason::logout);
  CHECK(sdk::state_name(State::failed) == "ABORTED");
}

TEST_CASE(
    "reconnect: a watched user going offline while the watcher reconnects is reported after") {
  Setup s;
  Away watcher(s, "wanda");
  Peer bob(s.broker.uri(), "bob");
  Peer carol(s.broker.uri(), "carol");
  watcher.peer.login();
  bob.login();
  carol.login();
  auto watched = watcher.peer->watch({"bob", "carol"});
  REQUIRE(watched.ok());
  REQUIRE(watched->size() == 2);
  CHECK(watched->at(0).online);
  CHECK(watched->at(1).online);

  watcher.cut();
  REQUIRE(bob->logout().ok());  // answered: the gateway has him offline now
  watcher.restore();
  auto offline =
      watcher.peer.presence.wait([](const sdk::PresenceEvent& e) { return e.uid == "bob"; });
  REQUIRE(offline);
  CHECK_FALSE(offline->online);
  // carol did not change: nothing is said about her; bob once.
  CHECK(watcher.peer.presence.take_all().empty());

  // And back online after another cut: reported too.
  watcher.cut();
  bob.login();
  watcher.restore();
  auto online =
      watcher.peer.presence.wait([](const sdk::PresenceEvent& e) { return e.uid == "bob"; });
  REQUIRE(online);
  CHECK(online->online);
}

TEST_CASE("reconnect: an invitation that ended while the caller was away is reported after") {
  Setup s(with_ops());
  Away alice(s, "alice");
  Peer bob(s.broker.uri(), "bob");
  alice.peer.login();
  bob.login();
  auto sent = alice.peer->invitations().send("bob", "play?");
  REQUIRE_MESSAGE(sent.ok(), sent.status().to_string());
  const std::string id = sent.value().id();
  REQUIRE(
      bob.invitations.wait([&](const sdk::InvitationEvent& e) { return e.state == "RECEIVED"; }));
  REQUIRE(alice.peer.invitations.wait(
      [&](const sdk::InvitationEvent& e) { return e.state == "RECEIVED_BY_REMOTE"; }));

  // alice's network goes: her Will ends her session, and with it the invitation (CANCELED,
  // which bob hears at once and alice cannot).
  alice.cut();
  REQUIRE(
      bob.invitations.wait([&](const sdk::InvitationEvent& e) { return e.state == "CANCELED"; }));
  alice.restore();
  auto ended = alice.peer.invitations.wait(
      [&](const sdk::InvitationEvent& e) { return e.id == id && e.ended(); });
  REQUIRE(ended);
  CHECK(ended->state == "CANCELED");
  CHECK(ended->side == sdk::InvitationSide::local);
}

TEST_CASE("reconnect: messages published while disconnected arrive after the restore, in order") {
  Setup s;
  Away player(s, "p2");
  Peer host(s.broker.uri(), "host");
  player.peer.login();
  host.login();
  auto proom = player.peer->stream_channel("room");
  auto room = host->stream_channel("room");
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(room.subscribe_topic("input", {"p2"})->all_ok());
  REQUIRE(proom.publish_topic("input", "live").ok());
  REQUIRE(host.messages.next());
  REQUIRE(host->subscribe_channel("lobby").ok());  // a message channel: no join

  player.cut();
  // Mixed QoS 0 and 1, as a game mixes frames and events.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(proom.publish_topic("input", "queued-" + std::to_string(i), sdk::PublishOptions{i % 2})
                .ok());
  }
  REQUIRE(player.peer->publish("host", "dm while away").ok());
  REQUIRE(player.peer->publish("lobby", "to the lobby while away", sdk::MessageType::string).ok());
  auto stats = player.peer->send_queue_stats();
  CHECK(stats.queued == 12);
  CHECK(stats.dropped == 0);
  CHECK(host.messages.take_all().empty());  // nothing went out yet

  player.restore();
  for (int i = 0; i < 10; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "queued message " << i << " missing");
    CHECK(m->payload == "queued-" + std::to_string(i));
  }
  auto dm = host.inbox.next();
  REQUIRE(dm);
  CHECK(dm->payload == "dm while away");
  CHECK(dm->from == "p2");
  auto lobby = host.channel_messages.next();
  REQUIRE(lobby);
  CHECK(lobby->channel == "lobby");
  CHECK(lobby->publisher == "p2");
  CHECK(lobby->payload == "to the lobby while away");
  CHECK(lobby->type == sdk::MessageType::string);
  stats = player.peer->send_queue_stats();
  CHECK(stats.queued == 0);
  CHECK(stats.sent == 12);
  // Live again: straight to the broker.
  REQUIRE(proom.publish_topic("input", "after").ok());
  auto after = host.messages.next();
  REQUIRE(after);
  CHECK(after->payload == "after");
}

TEST_CASE("reconnect: past the send queue's bound QoS 0 drops the oldest and QoS 1 is refused") {
  Setup s;
  Away player(s, "p3", [](sdk::ClientConfig& c) {
    c.max_send_queue = 5;
    c.max_send_queue_bytes = 1000;
  });
  Peer host(s.broker.uri(), "host3");
  player.peer.login();
  host.login();
  auto proom = player.peer->stream_channel("room");
  REQUIRE(host->stream_channel("room").join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(host->stream_channel("room").subscribe_topic("input", {"p3"})->all_ok());

  player.cut();
  for (int i = 0; i < 8; ++i) REQUIRE(proom.publish_topic("input", "f" + std::to_string(i)).ok());
  auto stats = player.peer->send_queue_stats();
  CHECK(stats.queued == 5);
  CHECK(stats.dropped == 3);
  auto refused = proom.publish_topic("input", "must not be lost", sdk::PublishOptions{1});
  CHECK(refused.status().is(sdk::ErrorCode::limit_send_queue));
  CHECK(refused.error() == "LIMIT_SEND_QUEUE");
  CHECK(refused.message().find("max_send_queue") != std::string::npos);
  // The byte bound: a message larger than the queue is refused at QoS 1.
  auto large = proom.publish_topic("input", std::string(1001, 'x'), sdk::PublishOptions{1});
  CHECK(large.status().is(sdk::ErrorCode::limit_send_queue));

  player.restore();
  for (int i = 3; i < 8; ++i) {  // the newest five, in order
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "message f" << i << " missing");
    CHECK(m->payload == "f" + std::to_string(i));
  }
  CHECK(player.peer->send_queue_stats().dropped == 3);
}

TEST_CASE(
    "reconnect: calls made while reconnecting wait for the restore, each within its deadline") {
  Setup s;
  // The SDK logs each call it holds for the restore: the test waits for that line.
  Recorder<std::string> held;
  auto logger = [&held](sdk::LogLevel, const std::string& text) {
    if (text.find("waits for the restore") != std::string::npos) held.push(text);
  };
  Away a(s, "cal", [&](sdk::ClientConfig& c) {
    c.request_timeout = 8000ms;
    c.logger = logger;
  });
  Away short_wait(s, "dee", [&](sdk::ClientConfig& c) {
    c.request_timeout = 700ms;
    c.max_send_queue = 1;  // one call may wait for the restore
  });
  a.peer.login();
  short_wait.peer.login();

  a.cut();
  // Async and blocking, made while the link is down: they complete after the restore.
  Recorder<sdk::Result<sdk::ChannelSnapshot>> joined;
  a.peer->stream_channel("lobby").join_async(
      [&](sdk::Result<sdk::ChannelSnapshot> r) { joined.push(r); });
  REQUIRE(
      held.wait([](const std::string& t) { return t.find("join lobby") != std::string::npos; }));
  CHECK(joined.take_all().empty());  // not failed at once with UNAVAILABLE
  std::thread restorer([&] {
    // Once the blocking call below is held, the network comes back.
    if (held.wait(
            [](const std::string& t) { return t.find("where_now cal") != std::string::npos; })) {
      a.proxy.restore();
    }
  });
  auto where = a.peer->where_now("cal");  // blocks until the restore
  restorer.join();
  REQUIRE_MESSAGE(where.ok(), where.status().to_string());
  auto j = joined.next();
  REQUIRE(j);
  REQUIRE_MESSAGE(j->ok(), j->status().to_string());
  CHECK(a.peer->stream_channel("lobby").who_now()->size() == 1);
  REQUIRE(a.peer.wait_state(State::restored, 20000ms));

  // Still away at the deadline: TIMEOUT, within the request timeout; login() too.
  short_wait.cut();
  const auto start = Clock::now();
  auto late = short_wait.peer->where_now("dee");
  CHECK(late.status().is(sdk::ErrorCode::timeout));
  CHECK(late.message().find("reconnecting") != std::string::npos);
  auto relogin = short_wait.peer->login();
  CHECK(relogin.status().is(sdk::ErrorCode::timeout));
  CHECK(Clock::now() - start < 5000ms);
  // One call waits already: the next is refused at once, not held.
  Recorder<sdk::Result<std::vector<std::string>>> first;
  short_wait.peer->stream_channel("lobby").who_now_async(
      [&](sdk::Result<std::vector<std::string>> r) { first.push(r); });
  auto second = short_wait.peer->where_now("dee");
  CHECK(second.status().is(sdk::ErrorCode::unavailable));
  CHECK(second.message().find("max_send_queue") != std::string::npos);
  auto held_one = first.next();
  REQUIRE(held_one);
  CHECK(held_one->status().is(sdk::ErrorCode::timeout));
  short_wait.restore();
}
