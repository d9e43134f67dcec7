// Request/response over a real Mosquitto, tried as a client would: ping, every kind of
// malformed request, a flood of garbage, and a broker restart under the gateway.
#include <doctest/doctest.h>

#include <string>
#include <thread>

#include "harness.hpp"

using namespace rtm::test;

namespace {

struct Setup {
  Mosquitto broker;
  GatewayProcess gateway{broker.uri()};
  Setup() { REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log()); }
};

std::string error_of(const rapidjson::Document& doc) {
  if (!doc.IsObject() || !doc.HasMember("error")) return "<no error>";
  return doc["error"].GetString();
}

}  // namespace

TEST_CASE("ping is answered on the mirrored response topic") {
  Setup s;
  Client alice(s.broker.uri(), "alice-client");
  alice.connect();
  alice.subscribe("rtm/u/alice/#");
  alice.publish("rtm/req/alice/ping?msg_id=1", "", 1);
  auto got = alice.wait_for("rtm/u/alice/res/#");
  REQUIRE(got);
  CHECK(got->topic == "rtm/u/alice/res/ping?msg_id=1");
  rapidjson::Document doc;
  doc.Parse(got->payload.c_str());
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc["msg_id"].GetString()) == "1");
  CHECK(doc["code"].GetInt() == 0);
  CHECK(doc["result"]["time_ms"].GetInt64() > 1700000000000LL);
  CHECK(std::string(doc["result"]["version"].GetString()) == RTM_VERSION);
}

TEST_CASE("mosquitto_pub and mosquitto_sub work as the README says") {
  Setup s;
  const std::string port = std::to_string(s.broker.port());
  TempDir dir;
  Process sub({find_program("mosquitto_sub"), "-p", port, "-t", "rtm/u/alice/#", "-v", "-C", "1",
               "-W", "20"},
              dir.path() / "sub.log");
  // mosquitto_sub gives no sign when its SUBSCRIBE is done, so the request is repeated
  // until the answer arrives; the same msg_id is answered from the first answer.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (sub.running() && Clock::now() < deadline) {
    run_command({"mosquitto_pub", "-p", port, "-t", "rtm/req/alice/ping?msg_id=1", "-n"});
    for (int j = 0; j < 20 && sub.running(); ++j) std::this_thread::sleep_for(5ms);
  }
  CHECK(sub.stop() == 0);
  CHECK(sub.log().rfind("rtm/u/alice/res/ping?msg_id=1 {\"msg_id\":\"1\",\"code\":0", 0) == 0);
}

TEST_CASE("every malformed request gets its error on the mirrored topic") {
  Setup s;
  Client c(s.broker.uri(), "malformed-client");
  c.connect();
  c.subscribe("rtm/u/+/#");
  const std::string big(70000, 'x');
  struct Case {
    std::string uid, uri, payload, error;
  } cases[] = {
      {"alice", "ping?msg_id=b1", "{not json", "BAD_JSON"},
      {"alice", "ping?msg_id=b2", "[1,2]", "BAD_JSON"},
      {"alice", "ping?msg_id=b3", "\"text\"", "BAD_JSON"},
      {"alice", "ping", "", "MISSING_MSG_ID"},
      {"alice", "ping?msg_id=", "", "MISSING_MSG_ID"},
      {"alice", "jump?msg_id=b4", "", "UNKNOWN_OPERATION"},
      {std::string(65, 'u'), "ping?msg_id=b5", "", "INVALID_NAME"},
      {"al$ice", "ping?msg_id=b6", "", "INVALID_NAME"},
      {"alice", "ping?msg_id=b7", "{\"pad\":\"" + big + "\"}", "PAYLOAD_TOO_LARGE"},
      {"alice", "ping?x=1&msg_id=b8", "{\"x\":2}", "DUPLICATE_PARAMETER"},
      {"alice", "ping?x=1&msg_id=b9", "", "INVALID_PARAMETER"},
      {"alice", "ping?msg_id=b10&v=%zz", "", "INVALID_URI"},
      {"alice", "ping?msg_id=b11&msg_id=b12", "", "INVALID_URI"},
  };
  for (const auto& k : cases) {
    CAPTURE(k.uri);
    CAPTURE(k.uid);
    auto doc = request(c, k.uid, k.uri, k.payload);
    REQUIRE(doc.IsObject());
    CHECK(error_of(doc) == k.error);
    CHECK(doc["code"].GetInt() != 0);
    CHECK(std::string(doc["message"].GetString()).size() > 5);
  }
  // and the gateway still answers
  CHECK(request(c, "alice", "ping?msg_id=after")["code"].GetInt() == 0);
}

TEST_CASE("a repeated msg_id is answered from the first answer, reuse for another request is refused") {
  Setup s;
  Client c(s.broker.uri(), "dedup-client");
  c.connect();
  c.subscribe("rtm/u/alice/#");
  auto first = request(c, "alice", "ping?msg_id=42");
  auto again = request(c, "alice", "ping?msg_id=42");
  REQUIRE(first.IsObject());
  REQUIRE(again.IsObject());
  // The same time_ms proves the second answer is the first one replayed, not a new run.
  CHECK(first["result"]["time_ms"].GetInt64() == again["result"]["time_ms"].GetInt64());
  auto reused = request(c, "alice", "ping?msg_id=42", "{}");
  CHECK(error_of(reused) == "MSG_ID_REUSED");
}

TEST_CASE("1,000 garbage requests from one client do not stop service to another") {
  Setup s;
  Client mallory(s.broker.uri(), "mallory-client");
  mallory.connect();
  for (int i = 0; i < 1000; ++i) {
    const std::string uri = (i % 4 == 0)   ? "ping"
                            : (i % 4 == 1) ? "nope?msg_id=" + std::to_string(i)
                            : (i % 4 == 2) ? "ping?msg_id=%" + std::to_string(i)
                                           : "ping?msg_id=g" + std::to_string(i);
    mallory.publish("rtm/req/mallory/" + uri, i % 3 == 0 ? "{{{{" : "\x01\x02garbage", 0);
  }
  Client bob(s.broker.uri(), "bob-client");
  bob.connect();
  bob.subscribe("rtm/u/bob/#");
  auto doc = request(bob, "bob", "ping?msg_id=1");
  REQUIRE(doc.IsObject());
  CHECK(doc["code"].GetInt() == 0);
}

TEST_CASE("the gateway serves again after the broker is killed and restarted") {
  Setup s;
  {
    Client c(s.broker.uri(), "before-client");
    c.connect();
    c.subscribe("rtm/u/carol/#");
    CHECK(request(c, "carol", "ping?msg_id=1")["code"].GetInt() == 0);
  }
  s.broker.kill_hard();
  s.broker.start();
  // The gateway was not restarted: it reconnects and re-subscribes by itself.
  CHECK_MESSAGE(wait_gateway_ready(s.broker.uri(), std::chrono::seconds(20)), s.gateway.log());
  Client c(s.broker.uri(), "after-client");
  c.connect();
  c.subscribe("rtm/u/carol/#");
  CHECK(request(c, "carol", "ping?msg_id=2")["code"].GetInt() == 0);
  CHECK(s.gateway.log().find("connection lost") != std::string::npos);
}

TEST_CASE("the gateway stops cleanly on SIGTERM") {
  Setup s;
  CHECK(s.gateway.stop() == 0);
  CHECK(s.gateway.log().find("gateway: stopping") != std::string::npos);
}

TEST_CASE("the Paho broker link serves and recovers too (broker.client: paho)") {
  Mosquitto broker;
  GatewayProcess gateway(broker.uri());
  gateway.stop();
  // The same config, with the Paho link chosen explicitly.
  std::string text = read_file(gateway.config_path());
  const auto at = text.find("  reconnect_min_ms:");
  REQUIRE(at != std::string::npos);
  text.insert(at, "  client: paho\n");
  write_file(gateway.config_path(), text);
  gateway.start();
  REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  Client c(broker.uri(), "paho-link-client");
  c.connect();
  c.subscribe("rtm/u/dave/#");
  CHECK(request(c, "dave", "ping?msg_id=1")["code"].GetInt() == 0);
  CHECK(gateway.log().find("broker link: paho") != std::string::npos);
  broker.kill_hard();
  broker.start();
  CHECK_MESSAGE(wait_gateway_ready(broker.uri(), std::chrono::seconds(20)), gateway.log());
}
