// Message channels, channel tokens and message types (issue 17) against a real Mosquitto
// with the project's plugin enforcing the gateway's grants, the real gateway, SDK clients
// and plain MQTT clients: publish/subscribe without a join, what the broker refuses to a
// non-subscriber and to a spoofed publisher level, presence events only with the option,
// channel token expiry and renewal, and state across kill -9 of the gateway on sqlite.
// Every wait has a deadline; a refusal is shown with a marker (see enforced_rtm_test.cpp).
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "rtm/tokens/jwt.hpp"
#include "sdk_peer.hpp"
#include "secure.hpp"
#include "tcp_proxy.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

// The secure set-up (plugin enforcing grants, shipped ACL) with more gateway config.
struct Enforced : SecureBroker {
  GatewayProcess gateway;
  explicit Enforced(const std::string& extra_yaml = "", const std::string& auth_yaml = "")
      : gateway(broker.uri(), options(extra_yaml, auth_yaml)) {
    REQUIRE_MESSAGE(wait_ready_with_token(broker.uri()), gateway.log());
  }
  static GatewayOptions options(const std::string& extra_yaml, const std::string& auth_yaml) {
    auto o = secure_gateway_options(extra_yaml);
    o.auth_yaml = auth_yaml;
    return o;
  }
};

// A login token whose `channel` claim names `channel` (a channel token).
std::string channel_token(const std::string& uid, const std::string& channel, std::int64_t ttl_s) {
  const auto now = now_s();
  rtm::gateway::TokenClaims claims{uid, now, now + ttl_s, std::nullopt, channel};
  return rtm::gateway::sign_token(claims, GatewayProcess::kSecret);
}

// A plain MQTT user: token login to the broker, its own subtree, everyone's presence.
struct RawUser {
  RawUser(const std::string& uri, std::string id) : uid(std::move(id)) {
    client =
        std::make_unique<Client>(uri, uid + "/" + unique_id("c"), login_as(uid, signed_token(uid)));
    client->connect();
    REQUIRE(client->subscribe("rtm/u/" + uid + "/#") == 1);
    REQUIRE(client->subscribe("rtm/presence/+") == 1);
  }
  rapidjson::Document op(const std::string& name, const std::string& query = "",
                         const std::string& body = "") {
    const std::string uri =
        name + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + unique_id(uid);
    return request(*client, uid, uri, body);
  }
  void ok(const std::string& name, const std::string& query = "", const std::string& body = "") {
    auto doc = op(name, query, body);
    REQUIRE_MESSAGE(answered_ok(doc), uid << " " << name << " " << query << " " << json_text(doc));
  }
  void login() { ok("login", "", login_body(uid)); }
  Client* operator->() { return client.get(); }
  std::string uid;
  std::unique_ptr<Client> client;
};

void login_when_ready(Peer& p) {
  auto r = p->login();
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
}

std::optional<sdk::ChannelMessageEvent> wait_message(Peer& p, const std::string& payload) {
  return p.channel_messages.wait(
      [&](const sdk::ChannelMessageEvent& m) { return m.payload == payload; });
}

std::optional<sdk::ChannelEvent> wait_mc_event(Peer& p, sdk::ChannelEventType type,
                                               const std::string& uid,
                                               std::chrono::milliseconds t = 10000ms) {
  return p.events.wait(
      [&](const sdk::ChannelEvent& e) {
        return e.message_channel && e.type == type && e.uid == uid;
      },
      t);
}

}  // namespace

TEST_CASE("message channels: SDK clients publish and subscribe without a join, with the type") {
  Enforced s;
  Peer alice(s.broker.uri(), "alice");
  Peer bob(s.broker.uri(), "bob");
  login_when_ready(alice);
  login_when_ready(bob);

  auto sub = bob->subscribe_channel("news");
  REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
  CHECK(sub->channel == "news");
  CHECK_FALSE(sub->with_presence);

  // alice neither joined nor subscribed: publishing needs neither (RTM 2).
  REQUIRE(alice->publish("news", "hello", sdk::MessageType::string).ok());
  const std::string bytes("\x00\x01\xff", 3);
  REQUIRE(alice->publish("news", bytes, sdk::MessageType::binary, {1}).ok());
  auto text = wait_message(bob, "hello");
  REQUIRE(text);
  CHECK(text->channel == "news");
  CHECK(text->publisher == "alice");
  CHECK(text->type == sdk::MessageType::string);
  auto binary = wait_message(bob, bytes);
  REQUIRE(binary);
  CHECK(binary->type == sdk::MessageType::binary);
  CHECK(binary->qos == 1);

  // No join anywhere: the message channel is no stream channel.
  auto where = bob->where_now("bob");
  REQUIRE(where.ok());
  CHECK(where->empty());

  // Peer messages carry their type in the `message` event's properties (send_message).
  sdk::SendOptions as_binary;
  as_binary.type = sdk::PeerMessageType::binary;
  REQUIRE(alice->send_message("bob", bytes, as_binary).ok());
  auto peer = bob.inbox.wait([&](const sdk::InboxMessage& m) { return m.payload == bytes; });
  REQUIRE(peer);
  CHECK(peer->from == "alice");
  CHECK(peer->type == sdk::PeerMessageType::binary);

  REQUIRE(bob->unsubscribe_channel("news").ok());
  auto again = bob->unsubscribe_channel("news");
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().is(sdk::ErrorCode::not_subscribed));
}

TEST_CASE("message channels enforced: only subscribers read, and only as oneself is written") {
  Enforced s;
  const auto uri = s.broker.uri();
  RawUser alice(uri, "alice"), bob(uri, "bob"), carol(uri, "carol"), mallory(uri, "mallory");
  for (RawUser* u : {&alice, &bob, &carol, &mallory}) u->login();
  REQUIRE(bob->subscribe("rtm/mc/news/#") == 1);
  REQUIRE(carol->subscribe("rtm/mc/#") == 1);  // logged in, never subscribed through the gateway
  REQUIRE(carol->subscribe("rtm/mc/news/#") == 1);

  auto answer = bob.op("subscribe_channel", "channel=news");
  REQUIRE(answered_ok(answer));
  CHECK(std::string(answer["result"]["filter"].GetString()) == "rtm/mc/news/#");
  CHECK(std::string(answer["result"]["publish_to"].GetString()) == "rtm/mc/news/bob");

  // The grant is in place when the answer arrives: the very next message is read.
  alice->publish("rtm/mc/news/alice", "m-1", 1);
  auto got = bob->wait_for("rtm/mc/news/alice");
  REQUIRE(got);
  CHECK(got->payload == "m-1");
  presence_marker(*alice.client, "alice", *carol.client);
  CHECK(carol->take("rtm/mc/#").empty());

  // mallory writes in alice's name: refused by the broker; in her own name: delivered.
  mallory->publish("rtm/mc/news/alice", "forged", 1);
  mallory->publish("rtm/mc/news/alice/string", "forged-string", 1);
  presence_marker(*mallory.client, "mallory", *bob.client);
  for (const auto& m : bob->take("rtm/mc/#")) CHECK(m.payload.rfind("forged", 0) != 0);
  mallory->publish("rtm/mc/news/mallory/string", "own", 1);
  auto own = bob->wait_for("rtm/mc/news/mallory/string");
  REQUIRE(own);
  CHECK(own->payload == "own");

  // After unsubscribe_channel (answered after the revocation) nothing more is delivered.
  bob.ok("unsubscribe_channel", "channel=news");
  alice->publish("rtm/mc/news/alice", "m-2", 1);
  presence_marker(*alice.client, "alice", *bob.client);
  CHECK(bob->take("rtm/mc/#").empty());

  // A user connected to the broker without an RTM session (no login) cannot publish there.
  RawUser ghost(uri, "ghost");
  bob.ok("subscribe_channel", "channel=news");
  ghost->publish("rtm/mc/news/ghost", "no-session", 1);
  presence_marker(*ghost.client, "ghost", *bob.client);
  CHECK(bob->take("rtm/mc/#").empty());
}

TEST_CASE("message channels: presence events only for subscribers that asked for them") {
  Enforced s;
  const auto uri = s.broker.uri();
  Peer bob(uri, "bob");
  Peer carol(uri, "carol");
  Peer dave(uri, "dave");
  login_when_ready(bob);
  login_when_ready(carol);
  login_when_ready(dave);
  RawUser eve(uri, "eve");  // a raw reader of every message channel's events
  eve.login();
  REQUIRE(eve->subscribe("rtm/mcevents/#") == 1);

  auto b = bob->subscribe_channel("lobby", {true, ""});
  REQUIRE(b.ok());
  CHECK(b->with_presence);
  CHECK(b->members == std::vector<std::string>{"bob"});
  auto c = carol->subscribe_channel("lobby");  // messages only: neither listed nor told
  REQUIRE(c.ok());
  auto d = dave->subscribe_channel("lobby", {true, ""});
  REQUIRE(d.ok());
  CHECK(d->members == std::vector<std::string>{"bob", "dave"});

  auto joined = wait_mc_event(bob, sdk::ChannelEventType::member_joined, "dave");
  REQUIRE(joined);
  CHECK(joined->channel == "lobby");
  REQUIRE(dave->unsubscribe_channel("lobby").ok());
  auto left = wait_mc_event(bob, sdk::ChannelEventType::member_left, "dave");
  REQUIRE(left);
  CHECK(left->reason == "left");
  // carol's subscription without presence got none of it; neither did eve (not subscribed).
  REQUIRE(carol->publish("lobby", "after", sdk::MessageType::string).ok());
  REQUIRE(wait_message(bob, "after"));
  CHECK(carol.events.take_all().empty());
  // The gateway's answer to eve comes after the events it published before (one
  // connection, in order): had the broker delivered them to eve, they would be here.
  eve.ok("ping");
  CHECK(eve->take("rtm/mcevents/#").empty());

  // bob's session ends: the presence subscribers hear of it, with the reason.
  auto d2 = dave->subscribe_channel("lobby", {true, ""});
  REQUIRE(d2.ok());
  REQUIRE(bob->logout().ok());
  auto gone = wait_mc_event(dave, sdk::ChannelEventType::member_left, "bob");
  REQUIRE(gone);
  CHECK(gone->reason == "logged_out");
}

TEST_CASE("channel tokens: expiry leaves the channel with the events, renewal moves it") {
  Enforced s("channels:\n  stream_token_required: true\n", "  token_warn_before_s: 1\n");
  const auto uri = s.broker.uri();
  Peer alice(uri, "alice");
  Peer bob(uri, "bob");
  Peer carol(uri, "carol");
  login_when_ready(alice);
  login_when_ready(bob);
  login_when_ready(carol);

  // Without a token, or with another channel's, join is refused.
  auto bare = alice->stream_channel("room").join();
  REQUIRE_FALSE(bare.ok());
  CHECK(bare.status().is(sdk::ErrorCode::channel_token_required));
  auto other = alice->stream_channel("room").join(channel_token("alice", "hall", 600));
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().is(sdk::ErrorCode::token_channel_mismatch));

  REQUIRE(bob->stream_channel("room").join(channel_token("bob", "room", 600)).ok());
  REQUIRE(carol->stream_channel("room").join(channel_token("carol", "room", 3)).ok());
  REQUIRE(alice->stream_channel("room").join(channel_token("alice", "room", 3)).ok());
  // carol renews before the warning; alice does not.
  auto renewed = carol->renew_channel_token("room", channel_token("carol", "room", 600));
  REQUIRE_MESSAGE(renewed.ok(), renewed.status().to_string());
  CHECK(renewed.value() > now_s() + 500);

  auto warn = alice.tokens.wait([](const sdk::TokenEvent& t) {
    return t.state == sdk::TokenEvent::State::will_expire && t.channel == "room";
  });
  REQUIRE(warn);
  CHECK(warn->channel_type == "stream");
  auto expired = alice.tokens.wait([](const sdk::TokenEvent& t) {
    return t.state == sdk::TokenEvent::State::expired && t.channel == "room";
  });
  REQUIRE(expired);
  auto left = bob.wait_event(sdk::ChannelEventType::member_left, "alice");
  REQUIRE(left);
  CHECK(left->reason == "token_expired");
  CHECK_FALSE(alice->stream_channel("room").joined());
  // alice's session is untouched; carol (renewed) is still a member.
  auto members = bob->who_now("room");
  REQUIRE(members.ok());
  CHECK(*members == std::vector<std::string>{"bob", "carol"});
  CHECK(alice->state() == sdk::ConnectionState::connected);
  for (const auto& t : carol.tokens.take_all()) {
    CHECK_FALSE((t.channel == "room" && t.state == sdk::TokenEvent::State::expired));
  }
}

TEST_CASE("channel tokens: a message channel that requires one, and its expiry") {
  Enforced s("channels:\n  message_token_required: true\n", "  token_warn_before_s: 1\n");
  const auto uri = s.broker.uri();
  Peer alice(uri, "alice");
  Peer bob(uri, "bob");
  login_when_ready(alice);
  login_when_ready(bob);
  auto bare = bob->subscribe_channel("news");
  REQUIRE_FALSE(bare.ok());
  CHECK(bare.status().is(sdk::ErrorCode::channel_token_required));
  REQUIRE(alice->subscribe_channel("news", {true, channel_token("alice", "news", 600)}).ok());
  auto sub = bob->subscribe_channel("news", {true, channel_token("bob", "news", 2)});
  REQUIRE_MESSAGE(sub.ok(), sub.status().to_string());
  CHECK(sub->token_expires_at > 0);
  auto expired = bob.tokens.wait([](const sdk::TokenEvent& t) {
    return t.state == sdk::TokenEvent::State::expired && t.channel == "news";
  });
  REQUIRE(expired);
  CHECK(expired->channel_type == "message");
  auto left = wait_mc_event(alice, sdk::ChannelEventType::member_left, "bob");
  REQUIRE(left);
  CHECK(left->reason == "token_expired");
  // Publishing needs no subscription: bob still can, alice reads it.
  REQUIRE(bob->publish("news", "still-publishing", sdk::MessageType::string).ok());
  REQUIRE(wait_message(alice, "still-publishing"));

  // `rtm-gateway token --channel` signs a channel token with the configured secret.
  const std::string config = s.gateway.config_path().string();
  auto made = run_command(
      {gateway_binary(), "token", "--config", config, "--uid", "bob", "--channel", "news"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  std::string token = made.output.substr(0, made.output.find('\n'));
  auto again = bob->subscribe_channel("news", {false, token});
  REQUIRE_MESSAGE(again.ok(), again.status().to_string());
  CHECK(again->token_expires_at > now_s());
  auto bad = run_command(
      {gateway_binary(), "token", "--config", config, "--uid", "bob", "--channel", "a+b"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("--channel") != std::string::npos);
}

TEST_CASE("message channels: subscriptions and channel tokens survive kill -9 on sqlite") {
  TempDir state_dir;
  const std::string sqlite =
      "state:\n  backend: sqlite\n  path: " + (state_dir.path() / "state.db").string() + "\n";
  Enforced s(sqlite, "  token_warn_before_s: 1\n");
  const auto uri = s.broker.uri();
  Peer bob(uri, "bob");
  Peer dave(uri, "dave");
  login_when_ready(bob);
  login_when_ready(dave);
  REQUIRE(bob->subscribe_channel("lobby", {true, ""}).ok());
  REQUIRE(dave->stream_channel("room").join().ok());
  // A channel token that expires after the restart: its timer must come back with it.
  REQUIRE(bob->stream_channel("room").join(channel_token("bob", "room", 6)).ok());

  s.gateway.kill_hard();
  s.gateway.start();
  REQUIRE_MESSAGE(wait_ready_with_token(uri), s.gateway.log());

  // The restored subscription lists bob to a new presence subscriber, and the restored
  // grants deliver to him.
  Peer carol(uri, "carol");
  login_when_ready(carol);
  auto c = carol->subscribe_channel("lobby", {true, ""});
  REQUIRE(c.ok());
  CHECK(c->members == std::vector<std::string>{"bob", "carol"});
  REQUIRE(carol->publish("lobby", "after-restart", sdk::MessageType::string).ok());
  auto got = wait_message(bob, "after-restart");
  REQUIRE(got);
  CHECK(got->publisher == "carol");

  auto expired = bob.tokens.wait(
      [](const sdk::TokenEvent& t) {
        return t.state == sdk::TokenEvent::State::expired && t.channel == "room";
      },
      15000ms);
  REQUIRE_MESSAGE(expired, s.gateway.log());
  auto left = dave.wait_event(sdk::ChannelEventType::member_left, "bob");
  REQUIRE(left);
  CHECK(left->reason == "token_expired");
}

TEST_CASE("message channels: the SDK subscribes again after its connection came back") {
  Enforced s;
  TcpProxy proxy{s.broker.port()};
  Peer alice(s.broker.uri(), "alice");
  Peer bob(proxy.uri(), "bob");
  login_when_ready(alice);
  login_when_ready(bob);
  REQUIRE(alice->subscribe_channel("lobby", {true, ""}).ok());
  REQUIRE(bob->subscribe_channel("lobby", {true, ""}).ok());
  REQUIRE(wait_mc_event(alice, sdk::ChannelEventType::member_joined, "bob"));

  // bob's network goes: his Will ends the session, which takes his subscription with it.
  proxy.cut();
  REQUIRE(bob.wait_state(sdk::ConnectionState::reconnecting));
  auto gone = wait_mc_event(alice, sdk::ChannelEventType::member_timed_out, "bob");
  REQUIRE(gone);
  CHECK(gone->reason == "connection_lost");
  proxy.restore();
  auto restored = bob.wait_state(sdk::ConnectionState::restored, 20000ms);
  REQUIRE(restored);
  // The restore subscribed again: alice sees bob back, and bob reads alice.
  REQUIRE(wait_mc_event(alice, sdk::ChannelEventType::member_joined, "bob"));
  REQUIRE(alice->publish("lobby", "welcome back", sdk::MessageType::string).ok());
  auto got = wait_message(bob, "welcome back");
  REQUIRE(got);
  CHECK(got->type == sdk::MessageType::string);
}
