// Call invitations (issue 17) against a real Mosquitto, the real gateway and SDK peers: a
// full invitation (sent, received, acknowledged by the SDK, accepted) with events on both
// sides, and each other ending: an offline callee, a callee that never acknowledges (a
// plain MQTT client), refused, canceled, expired; and invitations in flight across kill -9
// of the gateway on sqlite, kept and answered or expired after the restart. Small
// configured timeouts; every wait has a deadline. And `rtm call` / `rtm answer` in two
// processes.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

GatewayOptions invitation_gateway(const std::string& invitations_yaml,
                                  const TempDir* state_dir = nullptr) {
  GatewayOptions o;
  o.extra_yaml = "invitations:\n" + invitations_yaml;
  if (state_dir) {
    o.extra_yaml +=
        "state:\n  backend: sqlite\n  path: " + (state_dir->path() / "state.db").string() + "\n";
  }
  return o;
}

// The next invitation event of `peer` about `id` in `state`.
std::optional<sdk::InvitationEvent> wait_invitation(Peer& peer, const std::string& id,
                                                    const std::string& state,
                                                    std::chrono::milliseconds t = 10000ms) {
  return peer.invitations.wait(
      [&](const sdk::InvitationEvent& e) { return e.id == id && e.state == state; }, t);
}

}  // namespace

TEST_CASE("invitations: a full invitation between two SDK clients, accepted") {
  Setup s(invitation_gateway("  ack_timeout_s: 5\n  expire_s: 30\n"));
  Peer alice(s.broker.uri(), "alice");
  Peer bob(s.broker.uri(), "bob");
  alice.login();
  bob.login();

  auto sent = alice->invitations().send("bob", "play coplay?", "room-42");
  REQUIRE_MESSAGE(sent.ok(), sent.status().to_string());
  CHECK(sent.value().state() == "SENT_TO_REMOTE");
  const std::string id = sent.value().id();
  CHECK(!id.empty());

  auto local = wait_invitation(alice, id, "SENT_TO_REMOTE");
  REQUIRE(local);
  CHECK(local->side == sdk::InvitationSide::local);
  auto received = wait_invitation(bob, id, "RECEIVED");
  REQUIRE(received);
  CHECK(received->side == sdk::InvitationSide::remote);
  CHECK(received->caller == "alice");
  CHECK(received->callee == "bob");
  CHECK(received->content == "play coplay?");
  CHECK(received->channel_id == "room-42");
  // The SDK acknowledged it on receipt.
  REQUIRE_MESSAGE(wait_invitation(alice, id, "RECEIVED_BY_REMOTE"), s.gateway.log());

  auto in_flight = bob->invitations().list();
  REQUIRE(in_flight.ok());
  REQUIRE(in_flight.value().size() == 1);
  CHECK(in_flight.value()[0].id == id);

  auto accepted = bob->invitations().remote(*received).accept("on my way");
  REQUIRE_MESSAGE(accepted.ok(), accepted.status().to_string());
  auto a = wait_invitation(alice, id, "ACCEPTED_BY_REMOTE");
  REQUIRE(a);
  CHECK(a->response == "on my way");
  CHECK(a->ended());
  auto b = wait_invitation(bob, id, "ACCEPTED");
  REQUIRE(b);
  CHECK(b->ended());

  // Ended: answering or canceling again finds nothing.
  CHECK(bob->invitations().accept(id).status().is(sdk::ErrorCode::invitation_not_found));
  CHECK(sent.value().cancel().status().is(sdk::ErrorCode::invitation_not_found));
  // Only the parties, each in its role.
  auto again = alice->invitations().send("bob", "again?");
  REQUIRE(again.ok());
  REQUIRE(wait_invitation(bob, again.value().id(), "RECEIVED"));
  CHECK(alice->invitations()
            .accept(again.value().id())
            .status()
            .is(sdk::ErrorCode::invitation_wrong_side));
  CHECK(bob->invitations()
            .cancel(again.value().id())
            .status()
            .is(sdk::ErrorCode::invitation_wrong_side));
  CHECK(alice->invitations().send("alice").status().is(sdk::ErrorCode::invalid_parameter));
}

TEST_CASE("invitations: a callee without a live session fails at once with PEER_OFFLINE") {
  Setup s(invitation_gateway("  ack_timeout_s: 5\n"));
  Peer alice(s.broker.uri(), "alice");
  alice.login();
  auto sent = alice->invitations().send("nobody-here");
  REQUIRE_MESSAGE(sent.ok(), sent.status().to_string());
  CHECK(sent.value().state() == "FAILURE");
  CHECK(sent.value().reason() == "PEER_OFFLINE");
  auto e = wait_invitation(alice, sent.value().id(), "FAILURE");
  REQUIRE(e);
  CHECK(e->reason == "PEER_OFFLINE");
  CHECK(e->reason_code == 4);
}

TEST_CASE("invitations: a callee that never acknowledges fails it with PEER_NO_RESPONSE") {
  Setup s(invitation_gateway("  ack_timeout_s: 1\n  expire_s: 30\n"));
  Peer alice(s.broker.uri(), "alice");
  alice.login();
  // carol: a plain MQTT client with a session that sees the invitation and does not ack.
  Client carol(s.broker.uri(), unique_id("carol"));
  carol.connect();
  carol.subscribe("rtm/u/carol/#");
  auto login = request(carol, "carol", "login?msg_id=" + unique_id("login"),
                       "{\"token\":\"" + token_for("carol") + "\"}");
  REQUIRE_MESSAGE(answered_ok(login), json_text(login));

  auto sent = alice->invitations().send("carol", "hello?");
  REQUIRE_MESSAGE(sent.ok(), sent.status().to_string());
  const std::string id = sent.value().id();
  auto seen = carol.wait_for("rtm/u/carol/events/invitation");
  REQUIRE(seen);
  auto doc = parse_json(seen->payload);
  CHECK(std::string(doc["state"].GetString()) == "RECEIVED");
  CHECK(std::string(doc["id"].GetString()) == id);

  auto failed = wait_invitation(alice, id, "FAILURE", 10000ms);
  REQUIRE_MESSAGE(failed, s.gateway.log());
  CHECK(failed->reason == "PEER_NO_RESPONSE");
  auto told = carol.wait_for("rtm/u/carol/events/invitation");
  REQUIRE(told);
  auto d = parse_json(told->payload);
  CHECK(std::string(d["state"].GetString()) == "FAILURE");
  CHECK(std::string(d["reason"].GetString()) == "PEER_NO_RESPONSE");
  // Too late now.
  auto late = request(carol, "carol", "accept_invitation?msg_id=" + unique_id("a"),
                      "{\"id\":\"" + id + "\"}");
  CHECK(std::string(late["error"].GetString()) == "INVITATION_NOT_FOUND");
}

TEST_CASE("invitations: refused, canceled and expired, both sides told") {
  Setup s(invitation_gateway("  ack_timeout_s: 5\n  expire_s: 1\n"));
  Peer alice(s.broker.uri(), "alice");
  Peer bob(s.broker.uri(), "bob");
  alice.login();
  bob.login();

  SUBCASE("refused") {
    auto sent = alice->invitations().send("bob", "now?");
    REQUIRE(sent.ok());
    const auto id = sent.value().id();
    auto received = wait_invitation(bob, id, "RECEIVED");
    REQUIRE(received);
    REQUIRE(bob->invitations().remote(*received).refuse("busy").ok());
    auto a = wait_invitation(alice, id, "REFUSED_BY_REMOTE");
    REQUIRE(a);
    CHECK(a->response == "busy");
    CHECK(wait_invitation(bob, id, "REFUSED"));
  }
  SUBCASE("canceled") {
    auto sent = alice->invitations().send("bob", "now?");
    REQUIRE(sent.ok());
    const auto id = sent.value().id();
    REQUIRE(wait_invitation(bob, id, "RECEIVED"));
    REQUIRE(wait_invitation(alice, id, "RECEIVED_BY_REMOTE"));
    REQUIRE(sent.value().cancel().ok());
    CHECK(wait_invitation(alice, id, "CANCELED"));
    CHECK(wait_invitation(bob, id, "CANCELED"));
    CHECK(bob->invitations().accept(id).status().is(sdk::ErrorCode::invitation_not_found));
  }
  SUBCASE("expired") {
    auto sent = alice->invitations().send("bob", "now?");
    REQUIRE(sent.ok());
    const auto id = sent.value().id();
    REQUIRE(wait_invitation(bob, id, "RECEIVED"));
    REQUIRE(wait_invitation(alice, id, "RECEIVED_BY_REMOTE"));
    auto a = wait_invitation(alice, id, "FAILURE");
    REQUIRE_MESSAGE(a, s.gateway.log());
    CHECK(a->reason == "INVITATION_EXPIRE");
    auto b = wait_invitation(bob, id, "FAILURE");
    REQUIRE(b);
    CHECK(b->reason == "INVITATION_EXPIRE");
  }
}

TEST_CASE(
    "invitations: in flight across kill -9 of the gateway on sqlite, kept with their timers") {
  TempDir state_dir;
  // expire_s leaves time for the restart before the answer.
  Setup s(invitation_gateway("  ack_timeout_s: 5\n  expire_s: 10\n", &state_dir));
  Peer alice(s.broker.uri(), "alice");
  Peer bob(s.broker.uri(), "bob");
  alice.login();
  bob.login();

  auto answered = alice->invitations().send("bob", "answer me after the crash");
  REQUIRE(answered.ok());
  auto left = alice->invitations().send("bob", "let me expire after the crash");
  REQUIRE(left.ok());
  for (const auto* sent : {&answered, &left}) {
    REQUIRE(wait_invitation(bob, sent->value().id(), "RECEIVED"));
    REQUIRE(wait_invitation(alice, sent->value().id(), "RECEIVED_BY_REMOTE"));
  }

  s.gateway.kill_hard();
  s.gateway.start();
  REQUIRE_MESSAGE(wait_gateway_ready(s.broker.uri()), s.gateway.log());
  CHECK(s.gateway.log().find("2 invitations") != std::string::npos);

  auto accepted = bob->invitations().accept(answered.value().id(), "still here");
  REQUIRE_MESSAGE(accepted.ok(), accepted.status().to_string());
  auto a = wait_invitation(alice, answered.value().id(), "ACCEPTED_BY_REMOTE");
  REQUIRE(a);
  CHECK(a->response == "still here");
  // The other one's deadline was re-armed from the file.
  auto expired = wait_invitation(alice, left.value().id(), "FAILURE", 25000ms);
  REQUIRE_MESSAGE(expired, s.gateway.log());
  CHECK(expired->reason == "INVITATION_EXPIRE");
  auto b = wait_invitation(bob, left.value().id(), "FAILURE");
  REQUIRE(b);
  CHECK(b->reason == "INVITATION_EXPIRE");
}

TEST_CASE(
    "rtm cli: rtm answer waits for a call from rtm call, accepts it, and the caller sees it") {
  Setup s(invitation_gateway("  ack_timeout_s: 5\n  expire_s: 30\n"));
  const std::string rtm = RTM_CLI_BIN;
  const std::string config = s.gateway.config_path().string();
  TempDir dir;
  Process answer({rtm, "--config", config, "--uid", "cli-bob", "answer", "--from", "cli-alice",
                  "--response", "coming"},
                 dir.path() / "answer.log");
  REQUIRE_MESSAGE(wait_log(answer, "rtm: waiting for an invitation to cli-bob"), answer.log());
  auto call = run_command({rtm, "--config", config, "--uid", "cli-alice", "call", "--to", "cli-bob",
                           "--content", "a game?", "--channel-id", "room-42"});
  CHECK_MESSAGE(call.exit_code == 0, call.output);
  CHECK_MESSAGE(call.output.find(" RECEIVED_BY_REMOTE") != std::string::npos, call.output);
  CHECK_MESSAGE(call.output.find(" ACCEPTED_BY_REMOTE response=coming") != std::string::npos,
                call.output);
  REQUIRE_MESSAGE(wait_exit(answer), answer.log());
  CHECK(answer.stop() == 0);
  CHECK_MESSAGE(answer.log().find("from cli-alice about room-42: a game?") != std::string::npos,
                answer.log());

  // Nobody answers: the call fails at once, exit 3.
  auto offline =
      run_command({rtm, "--config", config, "--uid", "cli-alice", "call", "--to", "cli-nobody"});
  CHECK_MESSAGE(offline.exit_code == 3, offline.output);
  CHECK_MESSAGE(offline.output.find("FAILURE PEER_OFFLINE") != std::string::npos, offline.output);
}
