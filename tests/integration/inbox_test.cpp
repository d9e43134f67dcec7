// Peer messages for offline users (issue 16) against a real Mosquitto, the real gateway on
// its sqlite state and the SDK: messages to a user who is not logged in, published straight
// to its inbox topic and sent with send_message, survive kill -9 of the gateway (and what is
// published while it is down waits in its persistent MQTT session), and arrive once each,
// in order, marked offline, right after the user's login; the sender gets its receipts.
// Limits refuse, a message to an online user and one from a sender without a session are
// not kept.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"
#include "sdk_peer.hpp"

using namespace rtm::test;
namespace sdk = rtm::sdk;

namespace {

GatewayOptions inbox_gateway(const TempDir& dir, const std::string& inbox_yaml = "") {
  GatewayOptions o;
  o.extra_yaml = "state:\n  backend: sqlite\n  path: " + (dir.path() / "state.db").string() +
                 "\nops:\n  uids: [ops]\n" + inbox_yaml;
  return o;
}

// A plain MQTT client of the operator `ops`, logged in, to read any user's inbox.
std::unique_ptr<Client> operator_client(const std::string& uri) {
  auto c = std::make_unique<Client>(uri, unique_id("ops"));
  c->connect();
  c->subscribe("rtm/u/ops/#");
  auto d = request(*c, "ops", "login?msg_id=" + unique_id("login"),
                   "{\"token\":\"" + token_for("ops") + "\"}");
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
  return c;
}

// What the gateway keeps for uid now: the messages' texts, oldest first.
std::vector<std::string> kept(Client& ops, const std::string& uid) {
  auto d = request(ops, "ops", "inbox_history?uid=" + uid + "&limit=500&msg_id=" + unique_id("h"));
  REQUIRE_MESSAGE(answered_ok(d), json_text(d));
  std::vector<std::string> out;
  for (const auto& m : d["result"]["messages"].GetArray()) out.push_back(m["message"].GetString());
  return out;
}

// Polls (with a deadline) until the gateway keeps `count` messages for uid.
bool wait_kept(Client& ops, const std::string& uid, std::size_t count,
               std::chrono::milliseconds timeout = 15000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (kept(ops, uid).size() == count) return true;
  }
  return kept(ops, uid).size() == count;
}

}  // namespace

TEST_CASE("inbox: peer messages to an offline user survive kill -9 and arrive once, in order") {
  Mosquitto broker;
  TempDir state_dir;
  GatewayProcess gw(broker.uri(), inbox_gateway(state_dir));
  REQUIRE(wait_gateway_ready(broker.uri()));
  auto ops = operator_client(broker.uri());
  Peer alice(broker.uri(), "alice");
  alice.login();

  std::vector<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    const std::string text = "direct-" + std::to_string(i);
    REQUIRE(alice->publish("bob", text).ok());
    expected.push_back(text);
  }
  REQUIRE_MESSAGE(wait_kept(*ops, "bob", 25), gw.log());
  std::vector<std::string> sent_ids;
  for (int i = 0; i < 5; ++i) {
    const std::string text = "sent-" + std::to_string(i);
    sdk::SendOptions options;
    options.receipt = true;
    auto r = alice->send_message("bob", text, options);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r.value().status == sdk::DeliveryStatus::stored);
    sent_ids.push_back(r.value().id);
    expected.push_back(text);
    auto receipt = alice.receipts.next();
    REQUIRE(receipt);
    CHECK(receipt->id == r.value().id);
    CHECK(receipt->to == "bob");
    CHECK(receipt->status == sdk::DeliveryStatus::stored);
  }

  gw.kill_hard();
  // Published while the gateway is down: the broker holds them in its persistent session.
  for (int i = 25; i < 50; ++i) {
    const std::string text = "direct-" + std::to_string(i);
    REQUIRE(alice->publish("bob", text).ok());
    expected.push_back(text);
  }
  gw.start();
  REQUIRE(wait_gateway_ready(broker.uri()));
  ops = operator_client(broker.uri());
  REQUIRE_MESSAGE(wait_kept(*ops, "bob", 55), gw.log());

  Peer bob(broker.uri(), "bob");
  bob.login();
  std::vector<std::string> got;
  std::string last_id;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto m = bob.inbox.next();
    REQUIRE_MESSAGE(m, "only " << i << " messages arrived");
    CHECK(m->from == "alice");
    CHECK(m->offline);
    CHECK(m->type == sdk::PeerMessageType::text);
    CHECK(m->server_ts > 0);
    CHECK(m->id.size() >= last_id.size());
    CHECK((m->id.size() > last_id.size() || m->id > last_id));
    last_id = m->id;
    got.push_back(m->payload);
  }
  CHECK(got == expected);
  for (const auto& id : sent_ids) {
    auto receipt = alice.receipts.next();
    REQUIRE(receipt);
    CHECK(receipt->id == id);
    CHECK(receipt->status == sdk::DeliveryStatus::delivered);
  }
  // Once each: nothing is kept, and a second login brings nothing (its history answer
  // follows anything the gateway would have published for the login).
  auto history = bob->inbox_history();
  REQUIRE(history.ok());
  CHECK(history.value().messages.empty());
  REQUIRE(bob->logout().ok());
  bob.login();
  REQUIRE(bob->inbox_history().ok());
  CHECK(bob.inbox.take_all().empty());
}

TEST_CASE("inbox: online users are not stored, senders without a session are not, limits refuse") {
  Mosquitto broker;
  TempDir state_dir;
  GatewayProcess gw(broker.uri(), inbox_gateway(state_dir,
                                                "inbox:\n  max_messages_per_user: 3\n"
                                                "  max_message_bytes: 16\n"));
  REQUIRE(wait_gateway_ready(broker.uri()));
  auto ops = operator_client(broker.uri());
  Peer alice(broker.uri(), "alice");
  alice.login();
  Peer carol(broker.uri(), "carol");
  carol.login();

  // carol is online: the broker delivers the message straight, the gateway keeps nothing.
  REQUIRE(alice->publish("carol", "live").ok());
  auto live = carol.inbox.next();
  REQUIRE(live);
  CHECK(live->type == sdk::PeerMessageType::raw);
  CHECK(live->payload == "live");
  CHECK_FALSE(live->offline);
  auto sent = alice->send_message("carol", "with properties");
  REQUIRE(sent.ok());
  CHECK(sent.value().status == sdk::DeliveryStatus::delivered);
  auto props = carol.inbox.next();
  REQUIRE(props);
  CHECK(props->type == sdk::PeerMessageType::text);
  CHECK(props->id == sent.value().id);
  CHECK_FALSE(props->offline);
  CHECK(carol->inbox_history().value().messages.empty());

  // A sender without a session (a plain client that never logged in) is not kept; the
  // broker hands the gateway its message before alice's (one queue for inbox topics).
  Client mallory(broker.uri(), unique_id("mallory"));
  mallory.connect();
  mallory.publish("rtm/u/bob/inbox/mallory", "spam");
  REQUIRE(alice->publish("bob", "marker").ok());
  REQUIRE(wait_kept(*ops, "bob", 1));
  CHECK(kept(*ops, "bob") == std::vector<std::string>{"marker"});

  // Limits: too big is refused (and answered LIMIT_INBOX to send_message); past 3 the
  // oldest go.
  REQUIRE(alice->publish("bob", std::string(17, 'x')).ok());
  auto big = alice->send_message("bob", std::string(17, 'y'));
  CHECK(big.status().is(sdk::ErrorCode::limit_inbox));
  for (const char* t : {"a", "b", "c"}) REQUIRE(alice->publish("bob", t).ok());
  REQUIRE(wait_kept(*ops, "bob", 3));
  const auto deadline = Clock::now() + 10000ms;
  while (kept(*ops, "bob").front() != "a" && Clock::now() < deadline) {
  }
  CHECK(kept(*ops, "bob") == std::vector<std::string>{"a", "b", "c"});
  sdk::SendOptions no_store;
  no_store.store = false;
  CHECK(alice->send_message("bob", "now or never", no_store)
            .status()
            .is(sdk::ErrorCode::peer_offline));
}
