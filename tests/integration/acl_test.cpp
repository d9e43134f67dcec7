// Broker-side security, tried as an attacker would. Mosquitto runs with the shipped ACL
// (docker/mosquitto/acl), the rtm_mosquitto_auth plugin (username = uid, password = login
// token) and a password_file for the gateway's user; anonymous clients are refused.
//
// A message the broker drops leaves no trace, so every "cannot" is shown with a marker: the
// forbidden message is sent first, then a legitimate one that takes the same path; when the
// marker arrives, the forbidden one would have arrived before it (per-connection order, QoS 1
// publishes completed before the next step), so seeing the marker first proves it never will.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "harness.hpp"
#include "secure.hpp"
#include "rtm/tokens/jwt.hpp"

using namespace rtm::test;


TEST_CASE("broker login: a valid token connects, expired, foreign or garbage ones are refused") {
  SecureBroker s;
  const auto uri = s.broker.uri();
  CHECK(connect_outcome(uri, "alice", signed_token("alice")) == 0);

  const auto now = now_s();
  const auto expired = rtm::gateway::sign_token(
      {"alice", now - 120, now - 60, std::nullopt, std::nullopt}, GatewayProcess::kSecret);
  CHECK(connect_outcome(uri, "alice", expired) == kNotAuthorized);
  CHECK(connect_outcome(uri, "bob", signed_token("alice")) == kNotAuthorized);
  CHECK(connect_outcome(uri, "alice", "garbage") == kNotAuthorized);
  CHECK(connect_outcome(uri, "alice", "") == kNotAuthorized);
  CHECK(connect_outcome(uri, "", "") == kNotAuthorized);
  const auto not_yet = rtm::gateway::sign_token({"alice", now, now + 600, now + 300, std::nullopt},
                                                GatewayProcess::kSecret);
  CHECK(connect_outcome(uri, "alice", not_yet) == kNotAuthorized);
  CHECK(connect_outcome(uri, "alice",
                        signed_token("alice", 600, "another-secret-of-at-least-32-bytes!!")) ==
        kNotAuthorized);
  // A huge password is refused like any other bad one, and the broker keeps serving.
  CHECK(connect_outcome(uri, "alice", std::string(60000, 'x')) == kNotAuthorized);
  CHECK(connect_outcome(uri, "alice", signed_token("alice")) == 0);
}

TEST_CASE("broker login: a token user's client id must be its uid or start with uid/") {
  SecureBroker s;
  const std::string token = signed_token("alice");
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "alice") == 0);
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "alice/phone-1") == 0);
  // Reusing bob's client id would take over his connection and fire his Will.
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "bob/phone-1") == 5);
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "bob") == 5);
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "alicex") == 5);
  CHECK(connect_outcome(s.broker.uri(), "alice", token, "mosquitto_sub_1234") == 5);
}

TEST_CASE("broker login: the gateway user logs in with the password_file, never with a token") {
  SecureBroker s;
  const auto uri = s.broker.uri();
  CHECK(connect_outcome(uri, kGatewayUser, kGatewayPassword) == 0);
  CHECK(connect_outcome(uri, kGatewayUser, "wrong-password") == kNotAuthorized);
  // Whoever can get a token signed for the name "rtm-gateway" still gets no gateway rights.
  CHECK(connect_outcome(uri, kGatewayUser, signed_token(kGatewayUser)) == kNotAuthorized);
  // And a user's token is not a password for someone in the password_file.
  CHECK(connect_outcome(uri, "alice", kGatewayPassword) == kNotAuthorized);
}

TEST_CASE("broker login: the plugin reads the secret from a file and refuses a short secret") {
  TempDir dir;
  const auto password_file = password_file_in(dir);
  const auto secret_file = dir.path() / "token_secret";
  write_file(secret_file, std::string(GatewayProcess::kSecret) + "\n");  // newline is ignored
  {
    Mosquitto broker(
        secure_config(password_file, "plugin_opt_token_secret_file " + secret_file.string()),
        false);
    CHECK(connect_outcome(broker.uri(), "alice", signed_token("alice")) == 0);
    CHECK(connect_outcome(broker.uri(), "alice", "garbage") == kNotAuthorized);
  }
  std::string error;
  try {
    Mosquitto broker(secure_config(password_file, "plugin_opt_token_secret short-secret"), false);
  } catch (const std::exception& e) {
    error = e.what();
  }
  CHECK_MESSAGE(error.find("at least 32") != std::string::npos, error);
}

TEST_CASE("acl: the whole gateway flow works for users logged in by token") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  auto alice = user_client(uri, "alice");
  auto bob = user_client(uri, "bob");

  REQUIRE(answered_ok(request(*alice, "alice", "login?msg_id=1", login_body("alice"))));
  REQUIRE(answered_ok(request(*bob, "bob", "login?msg_id=1", login_body("bob"))));
  REQUIRE(answered_ok(request(*alice, "alice", "join?msg_id=2&channel=room")));
  REQUIRE(answered_ok(request(*bob, "bob", "join?msg_id=2&channel=room")));
  REQUIRE(answered_ok(request(*bob, "bob", "join_topic?msg_id=3&channel=room&topic=input")));
  auto subscribed = request(*alice, "alice", "subscribe?msg_id=3",
                            R"({"channel":"room","topic":"input","users":["bob"]})");
  REQUIRE(answered_ok(subscribed));
  const auto& granted = subscribed["result"]["users"][0];
  REQUIRE(granted["ok"].GetBool());
  const std::string topic = granted["topic"].GetString();
  CHECK(topic == "rtm/ch/room/input/bob");

  REQUIRE(alice->subscribe(topic) == 1);
  bob->publish(topic, "A+B pressed");
  auto frame = alice->wait_for(topic);
  REQUIRE(frame);
  CHECK(frame->payload == "A+B pressed");

  // Channel events reach members, and the gateway's events reach their owner.
  REQUIRE(alice->subscribe("rtm/events/room") == 1);
  REQUIRE(answered_ok(request(*bob, "bob", "leave_topic?msg_id=4&channel=room&topic=input")));
  auto event = alice->wait_for("rtm/events/room");
  REQUIRE(event);
  CHECK(event->payload.find("bob") != std::string::npos);
}

TEST_CASE("acl: alice cannot publish as bob on a channel topic") {
  // The ACL layer alone (a broker without the plugin's grants): the publisher level is
  // one's own uid. With grants, see enforcement_test.cpp and enforced_rtm_test.cpp.
  TempDir dir;
  const std::string password_file = password_file_in(dir);
  Mosquitto broker(secure_config(password_file, inline_secret(), /*enforce_grants=*/false), false);
  const auto uri = broker.uri();
  auto alice = user_client(uri, "alice");
  auto bob = user_client(uri, "bob");
  auto carol = user_client(uri, "carol");
  REQUIRE(carol->subscribe("rtm/ch/room/input/+") == 1);

  alice->publish("rtm/ch/room/input/bob", "spoofed by alice");  // QoS 1: done before the marker
  bob->publish("rtm/ch/room/input/bob", "marker from bob");
  auto first = carol->wait_for("rtm/ch/room/input/bob");
  REQUIRE(first);
  CHECK(first->payload == "marker from bob");

  // Her own publisher level works, on the same path.
  alice->publish("rtm/ch/room/input/alice", "from alice");
  auto own = carol->wait_for("rtm/ch/room/input/alice");
  REQUIRE(own);
  CHECK(own->payload == "from alice");
  CHECK(carol->take("rtm/ch/#").empty());
}

TEST_CASE("acl: alice cannot send a request as bob") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  auto alice = user_client(uri, "alice");
  auto bob = user_client(uri, "bob");

  alice->publish("rtm/req/bob/ping?msg_id=spoofed", "");
  bob->publish("rtm/req/bob/ping?msg_id=own", "");
  auto first = bob->wait_for("rtm/u/bob/res/#");
  REQUIRE(first);
  CHECK(first->topic == "rtm/u/bob/res/ping?msg_id=own");
  CHECK(bob->take("rtm/u/bob/res/#").empty());

  // Her own requests are served.
  CHECK(answered_ok(request(*alice, "alice", "ping?msg_id=mine")));
}

TEST_CASE("acl: alice cannot read bob's inbox or responses, and nobody forges an inbox sender") {
  SecureSetup s;
  const auto uri = s.broker.uri();
  auto alice = user_client(uri, "alice");
  auto bob = user_client(uri, "bob");
  auto carol = user_client(uri, "carol");
  // Inbox messages are taken only from users with a live RTM session.
  REQUIRE(answered_ok(request(*carol, "carol", "login?msg_id=1", login_body("carol"))));

  // Mosquitto may grant the SUBSCRIBE (then filters each message) or refuse it (128).
  const int granted = alice->subscribe("rtm/u/bob/#");
  CHECK((granted == 0 || granted == 1 || granted == 128));

  carol->publish("rtm/u/bob/inbox/carol", "hello bob");
  auto direct = bob->wait_for("rtm/u/bob/inbox/#");
  REQUIRE(direct);
  CHECK(direct->topic == "rtm/u/bob/inbox/carol");
  CHECK(direct->payload == "hello bob");
  REQUIRE(answered_ok(request(*bob, "bob", "ping?msg_id=secret")));

  // Carol's marker to alice comes after both of bob's messages went through the broker.
  carol->publish("rtm/u/alice/inbox/carol", "marker");
  auto marker = alice->wait_for("rtm/u/alice/inbox/carol");
  REQUIRE(marker);
  CHECK(alice->take("rtm/u/bob/#").empty());

  // The sender level is the publisher's own uid: carol cannot write as alice.
  carol->publish("rtm/u/bob/inbox/alice", "forged by carol");
  carol->publish("rtm/u/bob/inbox/carol", "second marker");
  auto next = bob->wait_for("rtm/u/bob/inbox/#");
  REQUIRE(next);
  CHECK(next->topic == "rtm/u/bob/inbox/carol");
  CHECK(next->payload == "second marker");
}

TEST_CASE("acl: a user writes its own presence and nobody else's") {
  SecureBroker s;
  const auto uri = s.broker.uri();
  auto alice = user_client(uri, "alice");
  auto watcher = user_client(uri, "carol");
  REQUIRE(watcher->subscribe("rtm/presence/+") == 1);

  alice->publish("rtm/presence/bob", R"({"state":"offline","session":"forged"})", 1, true);
  alice->publish("rtm/presence/alice", R"({"state":"online","session":"s1"})", 1, true);
  auto first = watcher->wait_for("rtm/presence/+");
  REQUIRE(first);
  CHECK(first->topic == "rtm/presence/alice");
  CHECK(watcher->take("rtm/presence/+").empty());

  // Nothing forged was retained either: a late watcher of bob gets no state. Retained
  // messages come in the order of the SUBSCRIBEs, so once alice's state has arrived, a
  // retained state of bob would have arrived before it.
  auto late = user_client(uri, "dave");
  REQUIRE(late->subscribe("rtm/presence/bob") == 1);
  REQUIRE(late->subscribe("rtm/presence/alice") == 1);
  auto alice_state = late->wait_for("rtm/presence/alice");
  REQUIRE(alice_state);
  CHECK(alice_state->retained);
  CHECK(late->take("rtm/presence/bob").empty());
}
