// RabbitMQ's HTTP auth backend answered by the gateway, end to end: a private RabbitMQ 3.10
// node with rabbitmq_auth_backend_http pointing at a real gateway's operations listener,
// the gateway logged in with its service password, users with tokens (real Paho clients).
// RabbitMQ closes the connection of a client it refuses a SUBSCRIBE or PUBLISH, so each
// refusal is shown by the connection going, next to its allowed counterpart. One node for
// the whole binary (it takes 10-20 s to start); every wait has a deadline.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "secure.hpp"

using namespace rtm::test;

namespace {

constexpr const char* kApiKey = "rabbit-auth-key-for-tests-0123456789";
constexpr const char* kWorker = "worker-1";
constexpr const char* kWorkerPassword = "worker-password-for-tests";

struct Setup {
  Setup() : ops_port(free_port()) {
    const std::string passwd = (dir.path() / "workers").string();
    auto made = run_command({"mosquitto_passwd", "-b", "-c", passwd, kWorker, kWorkerPassword});
    if (made.exit_code != 0) throw std::runtime_error("mosquitto_passwd: " + made.output);
    const std::string base =
        "http://127.0.0.1:" + std::to_string(ops_port) + "/v1/rabbitmq/" + kApiKey + "/";
    RabbitMqOptions options;
    options.plugins = {"rabbitmq_auth_backend_http"};
    // As docs/security.md ("RabbitMQ") has it.
    options.extra_config =
        "auth_backends.1 = http\nauth_http.http_method = post\n"
        "auth_http.user_path = " +
        base +
        "user\n"
        "auth_http.vhost_path = " +
        base +
        "vhost\n"
        "auth_http.resource_path = " +
        base +
        "resource\n"
        "auth_http.topic_path = " +
        base + "topic\n";
    rabbit = std::make_unique<RabbitMq>(options);
    GatewayOptions gw;
    gw.username = kGatewayUser;
    gw.password = kGatewayPassword;
    gw.extra_yaml = "ops:\n  http_listen: \"127.0.0.1:" + std::to_string(ops_port) +
                    "\"\n  api_keys: [\"" + kApiKey +
                    "\"]\n"
                    "enforcement:\n  rabbitmq_http_auth: true\n"
                    "  rabbitmq_password_file: \"" +
                    passwd +
                    "\"\n"
                    "  rabbitmq_peers: [\"127.0.0.1\"]\n";
    gateway = std::make_unique<GatewayProcess>(rabbit->uri(), gw);
    // Ready means: connected to RabbitMQ, which asked the gateway about its own login.
    httplib::Client http("127.0.0.1", ops_port);
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      auto res = http.Get("/readyz");
      if (res && res->status == 200) return;
      std::this_thread::sleep_for(50ms);  // polling the probe, not waiting for time
    }
    throw std::runtime_error("the gateway did not get ready on RabbitMQ: " + gateway->log());
  }
  std::string uri() const { return rabbit->uri(); }

  TempDir dir;
  int ops_port;
  std::unique_ptr<RabbitMq> rabbit;
  std::unique_ptr<GatewayProcess> gateway;
};

Setup& setup() {
  static Setup s;
  return s;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct User {
  User(const std::string& uri, std::string id) : uid(std::move(id)) {
    client =
        std::make_unique<Client>(uri, uid + "/" + unique_id("c"), login_as(uid, signed_token(uid)));
    client->connect();
    REQUIRE(client->subscribe("rtm/u/" + uid + "/#") == 1);
  }
  void ok(const std::string& name, const std::string& query = "", const std::string& body = "") {
    const std::string uri =
        name + "?" + (query.empty() ? "" : query + "&") + "msg_id=" + unique_id(uid);
    auto doc = request(*client, uid, uri, body);
    REQUIRE_MESSAGE(answered_ok(doc), uid << " " << name << " " << query << " " << body);
  }
  void enter(const std::string& channel) {
    ok("login", "", login_body(uid));
    ok("join", "channel=" + channel);
  }
  // A SUBSCRIBE RabbitMQ refuses closes the connection: true when it is gone.
  bool subscribe_closes(const std::string& filter) {
    try {
      client->subscribe(filter);
    } catch (const std::exception&) {
      // the SUBACK never came: the connection went
    }
    return lost_within(*client, 10s);
  }
  std::string uid;
  std::unique_ptr<Client> client;
};

}  // namespace

TEST_CASE("rabbitmq http auth: token users run the RTM flow, the gateway logs in as itself") {
  auto& s = setup();
  // The gateway is connected (setup waited for /readyz): its service login was allowed.
  CHECK(s.gateway->log().find("rabbitmq: answering the HTTP auth backend") != std::string::npos);
  const std::string alice_id = unique_id("alice"), bob_id = unique_id("bob");
  const std::string channel = unique_id("room");
  const auto connect_started = Clock::now();
  User alice(s.uri(), alice_id);
  const double connect_ms = ms_since(connect_started);
  User bob(s.uri(), bob_id);
  alice.enter(channel);
  alice.ok("join_topic", "channel=" + channel + "&topic=input");
  bob.enter(channel);
  bob.ok("subscribe", "channel=" + channel + "&topic=input", "{\"users\":[\"" + alice_id + "\"]}");
  const std::string stream = "rtm/ch/" + channel + "/input/" + alice_id;
  const auto subscribe_started = Clock::now();
  REQUIRE(bob.client->subscribe(stream) == 1);
  const double subscribe_ms = ms_since(subscribe_started);
  REQUIRE(bob.client->subscribe("rtm/events/" + channel) == 1);
  alice.client->publish(stream, "frame-1");
  auto got = bob.client->wait_for(stream);
  REQUIRE(got);
  CHECK(got->payload == "frame-1");
  // Peer-to-peer: alice writes into bob's inbox with her own level as sender.
  alice.client->publish("rtm/u/" + bob_id + "/inbox/" + alice_id, "hi");
  auto inbox = bob.client->wait_for("rtm/u/" + bob_id + "/inbox/" + alice_id);
  REQUIRE(inbox);
  CHECK(inbox->payload == "hi");
  CHECK(alice.client->connected());
  CHECK(bob.client->connected());
  MESSAGE("through the HTTP auth backend: CONNECT " << connect_ms << " ms, SUBSCRIBE to a stream "
                                                    << subscribe_ms << " ms");
  // The backend's own cost: RabbitMQ asks /user at every CONNECT (then /vhost), /topic at
  // every SUBSCRIBE; here each timed alone over one keep-alive connection.
  httplib::Client http("127.0.0.1", s.ops_port);
  http.set_keep_alive(true);
  http.set_tcp_nodelay(true);  // as RabbitMQ's client: no Nagle delay between header and body
  const std::string base = std::string("/v1/rabbitmq/") + kApiKey + "/";
  const std::string login_form = "username=" + alice_id + "&password=" + signed_token(alice_id) +
                                 "&vhost=%2F&client_id=" + alice_id;
  const std::string topic_form = "username=" + bob_id +
                                 "&vhost=%2F&resource=topic&name=amq.topic&permission=read"
                                 "&routing_key=rtm.ch." +
                                 channel + ".input." + alice_id;
  for (const auto& [path, body] :
       {std::pair{base + "user", login_form}, std::pair{base + "topic", topic_form}}) {
    std::vector<double> ms;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = Clock::now();
      auto res = http.Post(path, body, "application/x-www-form-urlencoded");
      ms.push_back(ms_since(t0));
      REQUIRE(res);
      REQUIRE(res->body == "allow");
    }
    std::sort(ms.begin(), ms.end());
    MESSAGE(path.substr(path.rfind('/'))
            << " answered in p50 " << ms[100] << " ms, p99 " << ms[198] << " ms (200 requests)");
  }
  // CONNECT through RabbitMQ and the backend (2 questions), median of 10.
  std::vector<double> connects;
  for (int i = 0; i < 10; ++i) {
    const auto t0 = Clock::now();
    Client c(s.uri(), alice_id + "/" + unique_id("m"), login_as(alice_id, signed_token(alice_id)));
    c.connect();
    connects.push_back(ms_since(t0));
    c.disconnect();
  }
  std::sort(connects.begin(), connects.end());
  MESSAGE("token CONNECT through RabbitMQ: median " << connects[5] << " ms, max " << connects[9]
                                                    << " ms (10 connects)");
  // A module worker logs in with its password from the password file.
  CHECK(connect_outcome(s.uri(), kWorker, kWorkerPassword, "worker-1-c") == 0);
}

TEST_CASE("rabbitmq http auth: wrong, expired and borrowed tokens are refused at CONNECT") {
  auto& s = setup();
  const std::string uid = unique_id("carol");
  CHECK(connect_outcome(s.uri(), uid, signed_token(uid)) == 0);
  CHECK(connect_outcome(s.uri(), uid, signed_token(uid, -5)) != 0);            // expired
  CHECK(connect_outcome(s.uri(), uid, signed_token(unique_id("dave"))) != 0);  // another's
  CHECK(connect_outcome(s.uri(), uid,
                        signed_token(uid, 600, "another-secret-0123456789abcdef-xyz")) != 0);
  CHECK(connect_outcome(s.uri(), uid, "not-a-token") != 0);
  CHECK(connect_outcome(s.uri(), uid, signed_token(uid), "someone-else") != 0);  // client id
  CHECK(connect_outcome(s.uri(), "", "") != 0);  // anonymous: RabbitMQ asks as guest
  CHECK(connect_outcome(s.uri(), kGatewayUser, signed_token(kGatewayUser), "gw-x") != 0);
  CHECK(connect_outcome(s.uri(), kWorker, "wrong-password", "worker-1-c") != 0);
  CHECK(s.gateway->log().find("rabbitmq: user denied") != std::string::npos);
}

TEST_CASE("rabbitmq http auth: reading or writing without a grant closes the connection") {
  auto& s = setup();
  const std::string alice_id = unique_id("alice"), carol_id = unique_id("carol");
  const std::string channel = unique_id("room");
  User alice(s.uri(), alice_id);
  alice.enter(channel);
  alice.ok("join_topic", "channel=" + channel + "&topic=input");
  const std::string stream = "rtm/ch/" + channel + "/input/" + alice_id;
  {
    User carol(s.uri(), carol_id);  // a member, but no subscription to alice
    carol.enter(channel);
    CHECK(carol.subscribe_closes(stream));
  }
  {
    User carol(s.uri(), carol_id);
    CHECK(carol.subscribe_closes("rtm/ch/#"));  // wildcards into channel levels
  }
  {
    User carol(s.uri(), carol_id);
    CHECK(carol.subscribe_closes("rtm/u/" + alice_id + "/#"));  // someone else's subtree
  }
  {
    User carol(s.uri(), carol_id);  // a publisher level of someone else
    carol.client->publish(stream, "forged", 0);
    CHECK(lost_within(*carol.client, 10s));
  }
  {
    User carol(s.uri(), carol_id);  // in her own name, but not a publisher of the topic
    carol.client->publish("rtm/ch/" + channel + "/input/" + carol_id, "x", 0);
    CHECK(lost_within(*carol.client, 10s));
  }
  {
    User carol(s.uri(), carol_id);  // a request in someone else's name
    carol.client->publish("rtm/req/" + alice_id + "/logout?msg_id=1", "{}", 0);
    CHECK(lost_within(*carol.client, 10s));
  }
  CHECK(alice.client->connected());
  // The refusals are counted.
  httplib::Client http("127.0.0.1", s.ops_port);
  auto metrics = http.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("rtm_rabbitmq_auth_answers_total{endpoint=\"topic\",result=\"deny\"}") !=
        std::string::npos);
}

TEST_CASE("rabbitmq http auth: the endpoints need the key and refuse malformed questions") {
  auto& s = setup();
  httplib::Client http("127.0.0.1", s.ops_port);
  const std::string form = "application/x-www-form-urlencoded";
  const std::string base = std::string("/v1/rabbitmq/") + kApiKey + "/";
  auto wrong = http.Post("/v1/rabbitmq/not-the-key-0123456789abcdef/user",
                         "username=" + std::string(kWorker) + "&password=" + kWorkerPassword, form);
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  CHECK(wrong->body == "deny");
  auto right = http.Post(base + "user",
                         "username=" + std::string(kWorker) + "&password=" + kWorkerPassword, form);
  REQUIRE(right);
  CHECK(right->status == 200);
  CHECK(right->body == "allow");
  const std::vector<std::string> malformed{"username=a&username=b", "username=%zz&password=x",
                                           "&&&", std::string(4096, '%'), "username"};
  for (const auto& bad : malformed) {
    auto res = http.Post(base + "user", bad, form);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "deny");
  }
  auto unknown = http.Post(base + "other", "username=a", form);
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  auto big = http.Post(base + "topic", std::string(64 * 1024, 'a'), form);
  REQUIRE(big);
  CHECK(big->status == 413);
  // Still serving.
  CHECK(http.Get("/healthz")->status == 200);
}
