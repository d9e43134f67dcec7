// Broker-enforced channels, tried as a hostile logged-in user would. Mosquitto runs with the
// rtm_mosquitto_auth plugin (token logins, plugin_opt_enforce_grants true), the shipped ACL
// and a password_file for the gateway's user. A client logged in as rtm-gateway feeds grant
// records by hand on rtm/gateway/grants, as the gateway does.
//
// A message the broker drops leaves no trace, so every "cannot" is shown with a marker: the
// forbidden message goes first, then the same publisher sends a marker on a topic the same
// subscriber reads (its presence). Per-connection order means that once the marker has
// arrived, the forbidden message would have arrived before it. Grant records take effect
// before their PUBACK (the plugin applies them in the broker's publish handling), and
// Client::publish at QoS 1 returns after the PUBACK: no sleeps anywhere.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/grants/records.hpp"
#include "rtm/tokens/jwt.hpp"
#include "secure.hpp"

using namespace rtm::test;
using rtm::grants::MemberGrants;
using rtm::grants::RecordWriter;

namespace {

constexpr const char* kGrantsTopic = "rtm/gateway/grants";

std::string enforced_config(const std::string& password_file, const std::string& extra = "") {
  return secure_config(password_file, inline_secret() + "\n" + extra);
}

struct EnforcedBroker {
  TempDir dir;
  std::string password_file = password_file_in(dir);
  Mosquitto broker{enforced_config(password_file), /*allow_anonymous=*/false};
  std::string uri() const { return broker.uri(); }
};

std::unique_ptr<Client> gateway_client(const std::string& uri) {
  auto gw = std::make_unique<Client>(uri, unique_id("gw"), login_as(kGatewayUser, kGatewayPassword));
  gw->connect();
  return gw;
}

// A user's client that also watches presence (the markers).
std::unique_ptr<Client> watcher(const std::string& uri, const std::string& uid) {
  auto c = user_client(uri, uid);
  REQUIRE(c->subscribe("rtm/presence/+") == 1);
  return c;
}

void feed(Client& gw, RecordWriter& w) {
  for (const auto& m : w.take()) gw.publish(kGrantsTopic, m, 1);
}

void marker(Client& from, const std::string& uid, Client& to) { presence_marker(from, uid, to); }

// The broker's log once it has stopped (Mosquitto writes its log to a file in blocks).
std::string final_log(Mosquitto& broker) {
  broker.stop();
  return broker.log();
}

MemberGrants reads(std::vector<std::string> writes,
                   std::vector<std::pair<std::string, std::vector<std::string>>> reads = {}) {
  return MemberGrants{std::move(writes), std::move(reads)};
}


// The connection is open at the broker: a SUBSCRIBE is answered.
bool alive(Client& c, const std::string& uid) {
  return c.connected() && c.subscribe("rtm/u/" + uid + "/#") == 1;
}

// The coplay set-up: alice publishes input in room, bob reads her there.
void coplay(RecordWriter& w, std::uint64_t epoch) {
  w.sync_begin(epoch);
  for (const char* uid : {"alice", "bob", "carol", "mallory"}) w.session(uid, true);
  w.member("room", "alice", reads({"input"}));
  w.member("room", "bob", reads({}, {{"input", {"alice"}}}));
  w.member("room", "mallory", reads({}));
  w.sync_end(epoch);
}

}  // namespace

TEST_CASE("enforcement: before any full set nothing on channel levels is delivered") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  auto alice = user_client(s.uri(), "alice");
  auto bob = watcher(s.uri(), "bob");
  REQUIRE(bob->subscribe("rtm/ch/#") == 1);
  REQUIRE(bob->subscribe("rtm/events/#") == 1);
  auto gw_watch = gateway_client(s.uri());
  REQUIRE(gw_watch->subscribe("rtm/#") == 1);

  alice->publish("rtm/ch/room/input/alice", "before the grants");
  marker(*alice, "alice", *bob);
  gw->publish("rtm/events/room", "{\"event\":\"member_joined\"}");
  gw->publish("rtm/ch/room/input/gateway", "from the gateway");
  marker(*gw, "gw-marker", *bob);
  CHECK(bob->take("rtm/ch/#").empty());
  CHECK(bob->take("rtm/events/#").empty());
  // The service user still reads and writes everything, synced or not.
  CHECK(gw_watch->wait_for("rtm/events/room"));
  CHECK(gw_watch->wait_for("rtm/ch/room/input/gateway"));
  marker(*alice, "alice", *gw_watch);
  CHECK(gw_watch->take("rtm/ch/room/input/alice").empty());  // alice's write was refused

  RecordWriter w;
  coplay(w, 1);
  feed(*gw, w);
  alice->publish("rtm/ch/room/input/alice", "after the grants");
  auto frame = bob->wait_for("rtm/ch/room/input/alice");
  REQUIRE(frame);
  CHECK(frame->payload == "after the grants");
  CHECK(final_log(s.broker).find(
            "full grant set 1 in force: 4 sessions, 3 members, 1 read grants") != std::string::npos);
}

TEST_CASE("enforcement: a user reads only granted streams and channels it joined") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  RecordWriter w;
  w.sync_begin(1);
  for (const char* uid : {"alice", "bob", "carol", "mallory"}) w.session(uid, true);
  w.member("room", "alice", reads({"input"}));
  w.member("room", "carol", reads({"chat"}));  // joined topic chat, not input
  w.member("room", "bob", reads({}, {{"input", {"alice", "carol"}}}));
  w.member("other", "mallory", reads({}));
  w.sync_end(1);
  feed(*gw, w);

  auto alice = user_client(s.uri(), "alice");
  auto carol = user_client(s.uri(), "carol");
  auto eve = user_client(s.uri(), "eve");  // logged in to the broker, no RTM session
  auto bob = watcher(s.uri(), "bob");
  REQUIRE(bob->subscribe("rtm/ch/room/input/+") == 1);
  REQUIRE(bob->subscribe("rtm/events/room") == 1);
  auto mallory = watcher(s.uri(), "mallory");
  REQUIRE(mallory->subscribe("rtm/ch/#") == 1);
  REQUIRE(mallory->subscribe("rtm/ch/room/input/alice") == 1);
  REQUIRE(mallory->subscribe("rtm/events/room") == 1);

  SUBCASE("reading a stream not granted, by exact topic or by P/ch/#") {
    alice->publish("rtm/ch/room/input/alice", "frame 1");
    auto frame = bob->wait_for("rtm/ch/room/input/alice");
    REQUIRE(frame);
    CHECK(frame->payload == "frame 1");
    marker(*alice, "alice", *mallory);
    CHECK(mallory->take("rtm/ch/#").empty());
  }
  SUBCASE("publishing into a topic not joined") {
    carol->publish("rtm/ch/room/input/carol", "not a publisher of input");
    marker(*carol, "carol", *bob);
    CHECK(bob->take("rtm/ch/#").empty());
    // Her own topic works.
    REQUIRE(bob->subscribe("rtm/ch/room/chat/carol") == 1);
    w.sync_begin(2);
    for (const char* uid : {"alice", "bob", "carol", "mallory"}) w.session(uid, true);
    w.member("room", "alice", reads({"input"}));
    w.member("room", "carol", reads({"chat"}));
    w.member("room", "bob", reads({}, {{"chat", {"carol"}}, {"input", {"alice", "carol"}}}));
    w.sync_end(2);
    feed(*gw, w);
    carol->publish("rtm/ch/room/chat/carol", "hello room");
    CHECK(bob->wait_for("rtm/ch/room/chat/carol"));
  }
  SUBCASE("reading another channel's events") {
    gw->publish("rtm/events/room", "{\"event\":\"member_joined\",\"uid\":\"alice\"}");
    CHECK(bob->wait_for("rtm/events/room"));
    marker(*gw, "gw-marker", *mallory);
    CHECK(mallory->take("rtm/events/#").empty());
  }
  SUBCASE("an inbox write from a user without a session") {
    eve->publish("rtm/u/bob/inbox/eve", "no session");
    marker(*eve, "eve", *bob);
    CHECK(bob->take("rtm/u/bob/inbox/#").empty());
    carol->publish("rtm/u/bob/inbox/carol", "with a session");
    auto direct = bob->wait_for("rtm/u/bob/inbox/#");
    REQUIRE(direct);
    CHECK(direct->topic == "rtm/u/bob/inbox/carol");
  }
}

TEST_CASE("enforcement: a 65th publisher is simply not granted") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  std::vector<std::string> publishers;
  for (int i = 1; i <= 65; ++i) publishers.push_back("p" + std::string(i < 10 ? "0" : "") + std::to_string(i));
  RecordWriter w;
  w.sync_begin(1);
  w.session("reader", true);
  for (const auto& p : publishers) w.member("room", p, reads({"input"}));
  // The gateway grants at most 64 publishers per (subscriber, channel, topic).
  w.member("room", "reader",
           reads({}, {{"input", std::vector<std::string>(publishers.begin(), publishers.end() - 1)}}));
  w.sync_end(1);
  feed(*gw, w);

  auto reader = watcher(s.uri(), "reader");
  REQUIRE(reader->subscribe("rtm/ch/room/input/+") == 1);
  auto p64 = user_client(s.uri(), "p64");
  auto p65 = user_client(s.uri(), "p65");
  p65->publish("rtm/ch/room/input/p65", "the 65th");
  marker(*p65, "p65", *reader);
  CHECK(reader->take("rtm/ch/#").empty());
  p64->publish("rtm/ch/room/input/p64", "the 64th");
  auto frame = reader->wait_for("rtm/ch/room/input/+");
  REQUIRE(frame);
  CHECK(frame->topic == "rtm/ch/room/input/p64");
}

TEST_CASE("enforcement: after a revoking record the next message is not delivered") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  RecordWriter w;
  coplay(w, 1);
  feed(*gw, w);
  auto alice = user_client(s.uri(), "alice");
  auto bob = watcher(s.uri(), "bob");
  REQUIRE(bob->subscribe("rtm/ch/room/input/alice") == 1);
  alice->publish("rtm/ch/room/input/alice", "granted");
  REQUIRE(bob->wait_for("rtm/ch/room/input/alice"));

  w.member("room", "bob", reads({}));  // bob unsubscribed from alice (outside a full set)
  feed(*gw, w);                        // acknowledged: in force
  alice->publish("rtm/ch/room/input/alice", "after the revoke");
  marker(*alice, "alice", *bob);
  CHECK(bob->take("rtm/ch/#").empty());

  w.member("room", "bob", reads({}, {{"input", {"alice"}}}));
  feed(*gw, w);
  alice->publish("rtm/ch/room/input/alice", "granted again");
  auto again = bob->wait_for("rtm/ch/room/input/alice");
  REQUIRE(again);
  CHECK(again->payload == "granted again");
}

TEST_CASE("enforcement: a resync replaces the grants without a gap") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  RecordWriter w;
  w.sync_begin(1);
  w.member("room", "alice", reads({"input"}));
  w.member("room", "bob", reads({}, {{"input", {"alice"}}}));
  w.member("room", "dave", reads({}, {{"input", {"alice"}}}));
  w.sync_end(1);
  feed(*gw, w);
  auto alice = user_client(s.uri(), "alice");
  auto bob = watcher(s.uri(), "bob");
  auto carol = watcher(s.uri(), "carol");
  auto dave = watcher(s.uri(), "dave");
  for (auto* c : {bob.get(), carol.get(), dave.get()}) {
    REQUIRE(c->subscribe("rtm/ch/room/input/alice") == 1);
  }

  // The new set begins in one message and ends in another; in between the old one holds.
  w.sync_begin(2);
  w.member("room", "alice", reads({"input"}));
  w.member("room", "bob", reads({}, {{"input", {"alice"}}}));
  w.member("room", "carol", reads({}, {{"input", {"alice"}}}));
  feed(*gw, w);
  alice->publish("rtm/ch/room/input/alice", "during the resync");
  CHECK(bob->wait_for("rtm/ch/room/input/alice"));
  CHECK(dave->wait_for("rtm/ch/room/input/alice"));
  marker(*alice, "alice", *carol);
  CHECK(carol->take("rtm/ch/#").empty());

  w.sync_end(2);
  feed(*gw, w);
  alice->publish("rtm/ch/room/input/alice", "after the resync");
  CHECK(bob->wait_for("rtm/ch/room/input/alice"));
  CHECK(carol->wait_for("rtm/ch/room/input/alice"));
  marker(*alice, "alice", *dave);
  CHECK(dave->take("rtm/ch/#").empty());
}

TEST_CASE("enforcement: after a broker restart channels stay closed until a full set") {
  EnforcedBroker s;
  {
    auto gw = gateway_client(s.uri());
    RecordWriter w;
    coplay(w, 1);
    feed(*gw, w);
  }
  s.broker.stop();
  s.broker.start();
  auto gw = gateway_client(s.uri());
  auto alice = user_client(s.uri(), "alice");
  auto bob = watcher(s.uri(), "bob");
  REQUIRE(bob->subscribe("rtm/ch/room/input/alice") == 1);
  alice->publish("rtm/ch/room/input/alice", "before the new full set");
  marker(*alice, "alice", *bob);
  CHECK(bob->take("rtm/ch/#").empty());

  RecordWriter w;
  coplay(w, 1);
  feed(*gw, w);
  alice->publish("rtm/ch/room/input/alice", "after the new full set");
  auto frame = bob->wait_for("rtm/ch/room/input/alice");
  REQUIRE(frame);
  CHECK(frame->payload == "after the new full set");
}

TEST_CASE("enforcement: K closes every connection of a user and nobody else's") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  auto phone = user_client(s.uri(), "alice");
  auto laptop = user_client(s.uri(), "alice");
  auto bob = user_client(s.uri(), "bob");
  RecordWriter w;
  w.kick("alice");
  feed(*gw, w);
  CHECK(lost_within(*phone, 5s));
  CHECK(lost_within(*laptop, 5s));
  CHECK(alive(*bob, "bob"));
  CHECK(gw->connected());
}

TEST_CASE("enforcement: k keeps the connection that sent the latest login and closes the other") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  auto old_one = user_client(s.uri(), "alice");
  auto new_one = user_client(s.uri(), "alice");
  new_one->publish("rtm/req/alice/login?msg_id=7", "{}");  // acknowledged: noted by the broker
  RecordWriter w;
  w.kick_others("alice");
  feed(*gw, w);
  CHECK(lost_within(*old_one, 5s));
  CHECK(alive(*new_one, "alice"));
}

TEST_CASE("enforcement: an expired token's connection is closed by the broker and T renews it") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  const auto now = now_s();
  const auto exp = now + 2;
  auto token = [&](const std::string& uid) {
    return rtm::gateway::sign_token({uid, now, exp, std::nullopt, std::nullopt},
                                    GatewayProcess::kSecret);
  };
  Client alice(s.uri(), "alice/short", login_as("alice", token("alice")));
  Client bob(s.uri(), "bob/renewed", login_as("bob", token("bob")));
  alice.connect();
  bob.connect();
  RecordWriter w;
  w.token("bob", now + 120);  // bob renewed his token with the gateway
  feed(*gw, w);
  // Both tokens expire in the same second: once alice is gone, bob's first expiry has passed.
  CHECK(lost_within(alice, 10s));
  CHECK(alive(bob, "bob"));
  CHECK(final_log(s.broker).find("closing connection 'alice/short': its login token expired") !=
        std::string::npos);
}

TEST_CASE("enforcement: grant records from a normal user are refused and never delivered") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  RecordWriter w;
  coplay(w, 1);
  feed(*gw, w);
  auto alice = user_client(s.uri(), "alice");
  auto mallory = watcher(s.uri(), "mallory");
  REQUIRE(mallory->subscribe("rtm/ch/room/input/alice") == 1);
  const int granted = mallory->subscribe(kGrantsTopic);  // the ACL file may refuse it (128)
  CHECK((granted == 1 || granted == 128));
  auto gw_watch = gateway_client(s.uri());
  REQUIRE(gw_watch->subscribe("rtm/#") == 1);
  REQUIRE(gw_watch->subscribe(kGrantsTopic) == 1);

  // mallory grants herself alice's stream.
  RecordWriter forged;
  forged.sync_begin(9);
  forged.member("room", "mallory", reads({}, {{"input", {"alice"}}}));
  forged.sync_end(9);
  for (const auto& m : forged.take()) mallory->publish(kGrantsTopic, m, 1);
  alice->publish("rtm/ch/room/input/alice", "still not for mallory");
  marker(*alice, "alice", *mallory);
  CHECK(mallory->take("rtm/ch/#").empty());

  // The gateway's own records are taken and consumed: acknowledged, delivered to nobody
  // (not even the gateway's user subscribed to rtm/#), and the sender stays connected.
  for (int i = 0; i < 3; ++i) {
    coplay(w, 10 + i);
    feed(*gw, w);
  }
  REQUIRE(gw->connected());
  marker(*gw, "gw-marker", *gw_watch);
  marker(*gw, "gw-marker", *mallory);
  CHECK(gw_watch->take(kGrantsTopic).empty());
  CHECK(mallory->take(kGrantsTopic).empty());
  const auto log = final_log(s.broker);
  CHECK(log.find("full grant set 12 in force") != std::string::npos);
  CHECK(log.find("full grant set 9 in force") == std::string::npos);
  CHECK(log.find("refused grant records on rtm/gateway/grants from client 'mallory/") !=
        std::string::npos);
}

TEST_CASE("enforcement: the gateway user still reads and writes every channel level") {
  EnforcedBroker s;
  auto gw = gateway_client(s.uri());
  RecordWriter w;
  coplay(w, 1);
  feed(*gw, w);
  auto gw_watch = gateway_client(s.uri());
  REQUIRE(gw_watch->subscribe("rtm/ch/#") == 1);
  REQUIRE(gw_watch->subscribe("rtm/events/#") == 1);
  REQUIRE(gw_watch->subscribe("rtm/u/+/inbox/#") == 1);
  auto alice = user_client(s.uri(), "alice");
  alice->publish("rtm/ch/room/input/alice", "read by the gateway");
  CHECK(gw_watch->wait_for("rtm/ch/room/input/alice"));
  gw->publish("rtm/ch/lobby/news/announcer", "written by the gateway");
  CHECK(gw_watch->wait_for("rtm/ch/lobby/news/announcer"));
  gw->publish("rtm/events/lobby", "{}");
  CHECK(gw_watch->wait_for("rtm/events/lobby"));
  gw->publish("rtm/u/alice/inbox/system", "hello");
  CHECK(alice->wait_for("rtm/u/alice/inbox/system"));
}

TEST_CASE("enforcement: bad settings stop the broker at start with a clear error") {
  TempDir dir;
  const auto password_file = password_file_in(dir);
  auto start_error = [&](const std::string& config) {
    try {
      Mosquitto broker(config, false);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(started)");
  };
  // The acl_file is required with enforcement on.
  const std::string no_acl = std::string("plugin ") + RTM_AUTH_PLUGIN + "\n" + inline_secret() +
                             "\nplugin_opt_enforce_grants true\npassword_file " + password_file +
                             "\n";
  const auto error = start_error(no_acl);
  CHECK_MESSAGE(error.find("needs an acl_file") != std::string::npos, error);
  const auto prefix = start_error(enforced_config(password_file, "plugin_opt_topic_prefix $rtm\n"));
  CHECK_MESSAGE(prefix.find("plugin_opt_topic_prefix") != std::string::npos, prefix);
  const auto from = start_error(enforced_config(password_file, "plugin_opt_grants_from mallory\n"));
  CHECK_MESSAGE(from.find("must be one of plugin_opt_service_users") != std::string::npos, from);
  const auto flag = start_error(enforced_config(password_file, "plugin_opt_enforce_grants yes\n"));
  CHECK_MESSAGE(flag.find("must be true or false") != std::string::npos, flag);
}

TEST_CASE("enforcement: the gateway's command line gives its broker login and turns the grants on") {
  // What `RTM_SECURE=1 scripts/run.sh` runs: the config has neither the password nor the
  // grant switch, the command line names the user, the password's file and the switch.
  SecureBroker s;
  TempDir dir;
  const auto password = dir.path() / "gateway-password";
  write_file(password, std::string(kGatewayPassword) + "\n");
  GatewayOptions options;
  options.username = "not-the-gateway";
  options.password = "not-its-password";
  options.args = {"--broker-username", kGatewayUser, "--broker-password-file", password.string(),
                  "--publish-grants"};
  GatewayProcess gateway(s.broker.uri(), options);
  REQUIRE_MESSAGE(wait_ready_with_token(s.broker.uri()), gateway.log());
  CHECK_MESSAGE(gateway.log().find("grants: full set") != std::string::npos, gateway.log());

  auto missing = run_command({gateway_binary(), "--check-config", "--config",
                              gateway.config_path().string(), "--broker-password-file",
                              (dir.path() / "missing").string()});
  CHECK(missing.exit_code == 1);
  CHECK_MESSAGE(missing.output.find("--broker-password-file: cannot read \"" +
                                    (dir.path() / "missing").string() +
                                    "\": No such file or directory") != std::string::npos,
                missing.output);
  CHECK(final_log(s.broker).find("in force") != std::string::npos);
}
