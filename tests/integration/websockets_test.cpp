// MQTT over WebSockets, as web pages reach the broker: Mosquitto's `protocol websockets`
// listener beside the TCP one, the real gateway on TCP, and clients on ws:// (the C++ SDK and
// plain Paho clients; the JavaScript SDK's own tests live in sdk-js/test). On the secure
// set-up the WebSockets listener must hold the same line as TCP: token logins, the ACL and the
// gateway's grants.
#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"
#include "secure.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

struct WebSetup {
  Mosquitto broker{"", /*allow_anonymous=*/true, /*websockets=*/true};
  GatewayProcess gateway{broker.uri()};
  WebSetup() { REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log()); }
};

// docker/mosquitto/mosquitto.secure.conf's settings, WebSockets listener included.
struct SecureWebSetup {
  TempDir dir;
  std::string password_file = password_file_in(dir);
  Mosquitto broker{secure_config(password_file, inline_secret()), /*allow_anonymous=*/false,
                   /*websockets=*/true};
  GatewayProcess gateway{broker.uri(), secure_gateway_options()};
  SecureWebSetup() { REQUIRE_MESSAGE(wait_ready_with_token(broker.uri()), gateway.log()); }
};

std::string frame(int i) {
  return "frame-" + std::to_string(i) + std::string("\0\x01\xff", 3);
}

}  // namespace

TEST_CASE("websockets: a player on ws:// and a host on TCP share a room, binary frames intact") {
  WebSetup s;
  Peer host(s.broker.uri(), "host-w");
  Peer player(s.broker.ws_uri(), "player-w");
  host.login();
  player.login();

  auto room = host->stream_channel("web-room");
  auto proom = player->stream_channel("web-room");
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_joined, "player-w"));
  REQUIRE(room.subscribe_topic("input", {"player-w"})->all_ok());
  constexpr int kFrames = 50;
  for (int i = 0; i < kFrames; ++i) REQUIRE(proom.publish_topic("input", frame(i)).ok());
  for (int i = 0; i < kFrames; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "frame " << i << " missing");
    CHECK(m->publisher == "player-w");
    CHECK(m->payload == frame(i));
  }
  // And back: the host's peer message reaches the web client's inbox.
  REQUIRE(host->publish("player-w", "welcome").ok());
  auto hello = player.inbox.next();
  REQUIRE(hello);
  CHECK(hello->payload == "welcome");
  // The web client's presence is its Will over WebSockets too: dropping it is seen.
  REQUIRE(host->watch({"player-w"}).ok());
  player.client.reset();
  auto gone = host.presence.wait(
      [](const sdk::PresenceEvent& e) { return e.uid == "player-w" && !e.online; });
  CHECK(gone);
}

TEST_CASE(
    "websockets: the secure set-up's logins, ACL and grants hold on the WebSockets listener") {
  SecureWebSetup s;
  const auto ws = s.broker.ws_uri();
  SUBCASE("logins: no token, a wrong token and another user's client id are refused") {
    CHECK(connect_outcome(ws, "web-alice", "") == kNotAuthorized);
    CHECK(connect_outcome(ws, "web-alice",
                          signed_token("web-alice", 600, "another-secret-of-32-bytes-000000")) ==
          kNotAuthorized);
    CHECK(connect_outcome(ws, "web-alice", signed_token("web-alice"), "web-bob/tab-1") ==
          kNotAuthorized);
    CHECK(connect_outcome(ws, "web-alice", signed_token("web-alice")) == 0);
  }
  SUBCASE("an SDK client on ws:// plays, a user who did not join reads nothing") {
    Peer host(s.broker.uri(), "web-host");
    Peer player(ws, "web-player");
    host.login();
    player.login();
    auto room = host->stream_channel("web-secure");
    auto proom = player->stream_channel("web-secure");
    REQUIRE(room.join().ok());
    REQUIRE(proom.join().ok());
    REQUIRE(proom.join_topic("input").ok());
    REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_joined, "web-player"));
    REQUIRE(room.subscribe_topic("input", {"web-player"})->all_ok());

    // Mallory logs in on the WebSockets listener with her own valid token and asks for the
    // stream straight from the broker, without joining: the broker keeps it from her.
    auto mallory = user_client(ws, "web-mallory");
    REQUIRE(mallory->subscribe("rtm/ch/web-secure/input/web-player") == 1);
    REQUIRE(mallory->subscribe("rtm/presence/+") == 1);
    REQUIRE(proom.publish_topic("input", frame(1)).ok());
    auto got = host.messages.next();
    REQUIRE(got);
    CHECK(got->payload == frame(1));
    // Her view is in order: a marker the player's connection sends after the frame has reached
    // her, so the frame would have too.
    auto player_raw = user_client(ws, "web-player");
    REQUIRE(player_raw->subscribe("rtm/presence/+") == 1);
    presence_marker(*player_raw, "web-player", *mallory);
    CHECK(mallory->take("rtm/ch/#").empty());
    // Nor may she write into the room as the player.
    mallory->publish("rtm/ch/web-secure/input/web-player", "forged");
    presence_marker(*mallory, "web-mallory", *player_raw);
    REQUIRE(proom.publish_topic("input", frame(2)).ok());
    auto next = host.messages.next();
    REQUIRE(next);
    CHECK(next->payload == frame(2));
  }
}

TEST_CASE("websockets: RabbitMQ's web_mqtt listener carries an SDK client like TCP") {
  RabbitMq& broker = RabbitMq::shared();
  GatewayOptions options;
  options.username = "";  // anonymous: the node's default user
  options.broker_profile = "rabbitmq";
  GatewayProcess gateway(broker.uri(), options);
  REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  const auto rabbit = [](sdk::ClientConfig& c) {
    c.broker_credentials = false;  // the node's anonymous user
    c.broker_profile = "rabbitmq";
  };
  Peer host(broker.uri(), unique_id("rhost"), 3600, rabbit);
  Peer player(broker.ws_uri(), unique_id("rplayer"), 3600, rabbit);
  host.login();
  player.login();
  const std::string channel = unique_id("rroom");
  auto room = host->stream_channel(channel);
  auto proom = player->stream_channel(channel);
  REQUIRE(room.join().ok());
  REQUIRE(proom.join().ok());
  REQUIRE(proom.join_topic("input").ok());
  REQUIRE(host.wait_event(sdk::ChannelEventType::publisher_joined, player->uid()));
  REQUIRE(room.subscribe_topic("input", {player->uid()})->all_ok());
  for (int i = 0; i < 20; ++i) REQUIRE(proom.publish_topic("input", frame(i)).ok());
  for (int i = 0; i < 20; ++i) {
    auto m = host.messages.next();
    REQUIRE_MESSAGE(m, "frame " << i << " missing");
    CHECK(m->payload == frame(i));
  }
}
