// RabbitMQ's HTTP auth backend as the gateway answers it, without a broker: the strict form
// reader, routing keys back to MQTT topics, passwords in mosquitto_passwd's format, and
// each endpoint's decision tried as a hostile client would.
#include <doctest/doctest.h>

#include <stdexcept>

#include "rtm/gateway/rabbitmq_auth.hpp"
#include "rtm/grants/records.hpp"
#include "rtm/tokens/jwt.hpp"

using namespace rtm::gateway::rabbitmq;
using rtm::gateway::sign_token;
using rtm::gateway::TokenClaims;

namespace {

constexpr const char* kSecret = "unit-test-secret-0123456789abcdef-0123";
constexpr std::int64_t kNow = 1700000000;
// `mosquitto_passwd -b file worker s3cret-pass`
constexpr const char* kWorkerLine =
    "worker:$7$101$VRi5y13nSbwh2T/T$fLuFJlniLHBzRVCoeZDZzszUd0fJRcHKSxrWE3jA3T+aZ1v68OalVGHlhbYAL"
    "kw647sMQ+bUaODEImAiCXnK/g==";

std::string token(const std::string& uid, std::int64_t exp = kNow + 600) {
  TokenClaims c;
  c.sub = uid;
  c.iat = kNow - 10;
  c.exp = exp;
  return sign_token(c, kSecret);
}

Authenticator authenticator() {
  Settings s;
  s.token_secret = kSecret;
  s.service_users = PasswordFile::parse(kWorkerLine, "test");
  s.service_users.add_plain("rtm-gateway", "gateway-pass");
  return Authenticator(std::move(s));
}

Form form(std::vector<std::pair<std::string, std::string>> fields) {
  return Form{std::move(fields)};
}

Form login(const std::string& user, const std::string& password, const std::string& client_id) {
  return form(
      {{"username", user}, {"password", password}, {"vhost", "/"}, {"client_id", client_id}});
}

Form resource(const std::string& user, const std::string& kind, const std::string& name,
              const std::string& permission, const std::string& vhost = "/") {
  return form({{"username", user},
               {"vhost", vhost},
               {"resource", kind},
               {"name", name},
               {"permission", permission}});
}

Form topic(const std::string& user, const std::string& key, const std::string& permission) {
  return form({{"username", user},
               {"vhost", "/"},
               {"resource", "topic"},
               {"name", "amq.topic"},
               {"permission", permission},
               {"routing_key", key},
               {"variable_map.client_id", user},
               {"variable_map.username", user},
               {"variable_map.vhost", "/"}});
}

// alice publishes input in room; bob reads alice there; both have sessions.
rtm::grants::Table coplay_table() {
  rtm::grants::Table t("rtm");
  rtm::grants::RecordWriter w;
  w.sync_begin(1);
  w.session("alice", true);
  w.session("bob", true);
  w.member("room", "alice", rtm::grants::MemberGrants{{"input"}, {}});
  w.member("room", "bob", rtm::grants::MemberGrants{{}, {{"input", {"alice"}}}});
  w.sync_end(1);
  for (const auto& m : w.take()) t.apply_message(m);
  return t;
}

}  // namespace

TEST_CASE("rabbitmq auth: form bodies are read strictly") {
  auto f = parse_form("username=alice&password=a%2Bb+c&vhost=%2F&variable_map.client_id=alice%2F1");
  REQUIRE(f);
  CHECK(*f->get("username") == "alice");
  CHECK(*f->get("password") == "a+b c");
  CHECK(*f->get("vhost") == "/");
  CHECK(*f->get("variable_map.client_id") == "alice/1");
  CHECK(f->get("missing") == nullptr);
  CHECK(parse_form("")->fields.empty());
  CHECK(*parse_form("a=")->get("a") == "");
  CHECK(*parse_form("a=%00b")->get("a") == std::string("\0b", 2));
  for (const char* bad : {"a=1&a=2", "a=1&&b=2", "a=1&", "&a=1", "a", "=1", "a=%", "a=%4", "a=%zz",
                          "a=%g0", "%=1", "a=1&b", "a%3D=1&a%3d=2"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_form(bad));
  }
  std::string many;
  for (std::size_t i = 0; i <= kMaxFormFields; ++i) many += "k" + std::to_string(i) + "=v&";
  many.pop_back();
  CHECK_FALSE(parse_form(many));
  // Through the authenticator: malformed, counted apart from refusals.
  const auto d = authenticator().answer(Endpoint::user, "username=alice&username=bob", kNow, {});
  CHECK_FALSE(d.allow);
  CHECK(d.malformed);
}

TEST_CASE("rabbitmq auth: routing keys turn back into MQTT topics, or into nothing") {
  struct Case {
    const char* key;
    bool filter;
    const char* topic;  // nullptr: refused
  };
  const Case cases[] = {
      {"rtm.ch.room.input.alice", false, "rtm/ch/room/input/alice"},
      {"rtm.req.alice.join?msg_id=1", false, "rtm/req/alice/join?msg_id=1"},
      {"rtm.u.alice.#", true, "rtm/u/alice/#"},
      {"rtm.presence.*", true, "rtm/presence/+"},
      {"#", true, "#"},
      {"rtm..x", false, "rtm//x"},         // empty levels stay
      {"rtm.u.alice.#", false, nullptr},   // no wildcard in a topic name
      {"rtm.presence.*", false, nullptr},  // '*' in a PUBLISH is MQTT's literal '*'
      {"rtm.#.x", true, nullptr},          // '#' only last
      {"rtm.a*b", true, nullptr},          // literal in AMQP, no MQTT filter
      {"rtm.a#", true, nullptr},
      {"rtm/ch", false, nullptr},  // never from the MQTT plugin
      {"rtm.a+b", false, nullptr},
      {"rtm.a\nb", false, nullptr},
      {"", false, nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.filter);
    const auto got = topic_from_routing_key(c.key, c.filter);
    if (c.topic) {
      REQUIRE(got);
      CHECK(*got == c.topic);
    } else {
      CHECK_FALSE(got);
    }
  }
}

TEST_CASE("rabbitmq auth: service passwords in mosquitto_passwd's format") {
  auto file = PasswordFile::parse(std::string("# a comment\n\n") + kWorkerLine + "\r\n", "f");
  CHECK(file.size() == 1);
  CHECK(file.contains("worker"));
  CHECK(file.check("worker", "s3cret-pass"));
  CHECK_FALSE(file.check("worker", "s3cret-pas"));
  CHECK_FALSE(file.check("worker", ""));
  CHECK_FALSE(file.check("nobody", "s3cret-pass"));
  file.add_plain("rtm-gateway", "pw");
  CHECK(file.check("rtm-gateway", "pw"));
  CHECK_FALSE(file.check("rtm-gateway", "pw "));
  for (const char* bad : {"worker", "worker:plain",
                          ":$7$101$VRi5y13nSbwh2T/T$AA==", "worker:$7$0$VRi5y13nSbwh2T/T$AA==",
                          "worker:$7$x$c2FsdA==$AA==", "worker:$7$101$c2FsdA==$c2hvcnQ=",
                          "worker:$7$99999999$c2FsdA==$AA==", "worker:$5$c2FsdA==$AA=="}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(PasswordFile::parse(bad, "f"), std::runtime_error);
  }
  CHECK_THROWS_AS(PasswordFile::parse(std::string(kWorkerLine) + "\n" + kWorkerLine, "f"),
                  std::runtime_error);
}

TEST_CASE("rabbitmq auth: logins by token, service users by password") {
  const auto a = authenticator();
  CHECK(a.user(login("alice", token("alice"), "alice"), kNow).allow);
  CHECK(a.user(login("alice", token("alice"), "alice/phone-1"), kNow).allow);
  // Someone else's client id would take over that client's connection.
  CHECK_FALSE(a.user(login("alice", token("alice"), "bob"), kNow).allow);
  CHECK_FALSE(a.user(login("alice", token("alice"), "alicex"), kNow).allow);
  CHECK_FALSE(a.user(login("alice", token("alice", kNow - 1), "alice"), kNow).allow);  // expired
  CHECK_FALSE(a.user(login("alice", token("bob"), "alice"), kNow).allow);
  CHECK_FALSE(a.user(login("alice", token("alice") + "x", "alice"), kNow).allow);
  CHECK_FALSE(a.user(login("alice", "", "alice"), kNow).allow);
  CHECK_FALSE(a.user(login("guest", "guest", "anon-1"), kNow).allow);  // anonymous MQTT
  // A dotted uid would own more than its level on RabbitMQ; other bad names too.
  CHECK_FALSE(a.user(login("al.ice", token("al.ice"), "al.ice"), kNow).allow);
  CHECK_FALSE(a.user(login("a+b", token("a+b"), "a+b"), kNow).allow);
  CHECK_FALSE(a.user(login("", token(""), ""), kNow).allow);
  // Service users: their password only, never a token signed for their name.
  CHECK(a.user(login("worker", "s3cret-pass", "worker-1"), kNow).allow);
  CHECK(a.user(login("rtm-gateway", "gateway-pass", "gw"), kNow).allow);
  CHECK_FALSE(a.user(login("rtm-gateway", token("rtm-gateway"), "rtm-gateway"), kNow).allow);
  CHECK_FALSE(a.user(login("worker", "wrong", "worker-1"), kNow).allow);
  const auto no_password = a.user(form({{"username", "alice"}, {"client_id", "alice"}}), kNow);
  CHECK_FALSE(no_password.allow);
  CHECK(no_password.malformed);
  const auto no_client = a.user(form({{"username", "alice"}, {"password", token("alice")}}), kNow);
  CHECK_FALSE(no_client.allow);
  CHECK(no_client.malformed);
}

TEST_CASE("rabbitmq auth: the vhost and each user's own resources") {
  const auto a = authenticator();
  CHECK(a.vhost(form({{"username", "alice"}, {"vhost", "/"}, {"ip", "127.0.0.1"}})).allow);
  CHECK_FALSE(a.vhost(form({{"username", "alice"}, {"vhost", "other"}})).allow);
  CHECK(a.vhost(form({{"username", "alice"}})).malformed);
  for (const char* p : {"configure", "read", "write"}) {
    CAPTURE(p);
    CHECK(a.resource(resource("alice", "queue", "mqtt-subscription-aliceqos1", p)).allow);
    CHECK(a.resource(resource("alice", "queue", "mqtt-subscription-alice/phoneqos0", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "queue", "mqtt-subscription-bobqos1", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "queue", "mqtt-subscription-alicexqos1", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "queue", "mqtt-subscription-aliceqos2", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "queue", "alice", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "queue", "mqtt-subscription-qos1", p)).allow);
    CHECK_FALSE(a.resource(resource("alice", "exchange", "amq.direct", p)).allow);
    CHECK_FALSE(
        a.resource(resource("alice", "queue", "mqtt-subscription-aliceqos1", p, "v2")).allow);
    CHECK(a.resource(resource("worker", "queue", "anything", p)).allow);
    CHECK(a.resource(resource("rtm-gateway", "exchange", "amq.topic", p)).allow);
  }
  CHECK(a.resource(resource("alice", "exchange", "amq.topic", "read")).allow);
  CHECK(a.resource(resource("alice", "exchange", "amq.topic", "write")).allow);
  CHECK_FALSE(a.resource(resource("alice", "exchange", "amq.topic", "configure")).allow);
  CHECK(a.resource(resource("alice", "queue", "mqtt-subscription-aliceqos1", "delete")).malformed);
}

TEST_CASE("rabbitmq auth: topics follow the grants and the tree's own rules") {
  const auto a = authenticator();
  auto table = coplay_table();
  int asked = 0;
  const TopicDecider decide = [&](const std::string& user, const std::string& t, bool write) {
    ++asked;
    return std::optional<bool>(topic_allowed(table, user, t, write));
  };
  struct Case {
    const char* user;
    const char* key;
    const char* permission;
    bool allow;
  };
  const Case cases[] = {
      // the channel levels: grants
      {"alice", "rtm.ch.room.input.alice", "write", true},
      {"bob", "rtm.ch.room.input.bob", "write", false},    // not a publisher of input
      {"bob", "rtm.ch.room.input.alice", "write", false},  // not as someone else
      {"bob", "rtm.ch.room.input.alice", "read", true},
      {"carol", "rtm.ch.room.input.alice", "read", false},  // no grant
      {"carol", "rtm.ch.room.input.*", "read", false},      // wildcards into channel levels
      {"bob", "rtm.ch.#", "read", false},
      {"bob", "rtm.#", "read", false},
      {"bob", "#", "read", false},
      {"bob", "rtm.*.room.input.alice", "read", false},
      {"alice", "rtm.events.room", "read", true},  // a member
      {"carol", "rtm.events.room", "read", false},
      {"alice", "rtm.events.room", "write", false},
      // a dotted channel comes back with a level too many: refused
      {"alice", "rtm.ch.room.42.input.alice", "write", false},
      // the tree's own rights
      {"alice", "rtm.req.alice.join?msg_id=1", "write", true},
      {"alice", "rtm.req.bob.join?msg_id=1", "write", false},
      {"alice", "rtm.req.alice.join?msg_id=1", "read", false},
      {"alice", "rtm.u.alice.#", "read", true},
      {"alice", "rtm.u.alice.res.join?msg_id=1", "read", true},
      {"alice", "rtm.u.bob.#", "read", false},
      {"alice", "rtm.u.*.#", "read", false},
      {"alice", "rtm.u.bob.inbox.alice", "write", true},   // live session
      {"carol", "rtm.u.bob.inbox.carol", "write", false},  // no session
      {"alice", "rtm.u.bob.inbox.carol", "write", false},
      {"alice", "rtm.presence.alice", "write", true},
      {"alice", "rtm.presence.bob", "write", false},
      {"alice", "rtm.presence.*", "read", true},
      {"alice", "rtm.presence.bob", "read", true},
      {"alice", "rtm.gateway.grants", "write", false},
      {"alice", "rtm.gateway.status", "read", false},
      {"alice", "factory.line1.temp", "write", false},  // outside the tree: nobody's
  };
  for (const auto& c : cases) {
    CAPTURE(c.user);
    CAPTURE(c.key);
    CAPTURE(c.permission);
    CHECK(a.topic(topic(c.user, c.key, c.permission), decide).allow == c.allow);
  }
  // Service users get everything without asking the grants; others never without them.
  asked = 0;
  CHECK(a.topic(topic("rtm-gateway", "rtm.gateway.grants", "write"), decide).allow);
  CHECK(a.topic(topic("worker", "#", "read"), decide).allow);
  CHECK(asked == 0);
  CHECK_FALSE(a.topic(topic("alice", "rtm.u.alice.#", "read"), {}).allow);
  CHECK_FALSE(a.topic(topic("alice", "rtm.u.alice.#", "read"), [](const std::string&,
                                                                  const std::string&, bool) {
                 return std::optional<bool>();  // no answer in time
               }).allow);
  // Another exchange, another vhost, a missing key.
  auto other = topic("alice", "rtm.u.alice.#", "read");
  other.fields[3].second = "amq.fanout";
  CHECK_FALSE(a.topic(other, decide).allow);
  auto vhost = topic("alice", "rtm.u.alice.#", "read");
  vhost.fields[1].second = "v2";
  CHECK_FALSE(a.topic(vhost, decide).allow);
  auto no_key = topic("alice", "rtm.u.alice.#", "read");
  no_key.fields.erase(no_key.fields.begin() + 5);
  CHECK(a.topic(no_key, decide).malformed);
  // Before the first full set the table refuses every channel level.
  rtm::grants::Table empty("rtm");
  CHECK_FALSE(topic_allowed(empty, "alice", "rtm/ch/room/input/alice", true));
  CHECK(topic_allowed(empty, "alice", "rtm/u/alice/#", false));
}
