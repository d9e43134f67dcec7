// The server HTTP API against a real Mosquitto and the real gateway, with cpp-httplib's
// client as an app server: a publish reaches plain MQTT subscribers, keys and rights are
// checked, a kick ends a session, an issued token logs a user in, metadata writes reach
// members, and every route of docs/http-api.yaml answers its documented example.
#include <doctest/doctest.h>
#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace rtm::test;

namespace {

const std::string kAdmin = "admin-key-0123456789abcdef";
const std::string kReader = "reader-key-0123456789abcdef";
const std::string kPublisher = "publisher-key-0123456789ab";
const std::string kOperator = "operator-key-0123456789abcdef";

// The gateway's config: an operator key, and one API key per right.
GatewayOptions api_options(int http_port, const std::string& more_yaml) {
  GatewayOptions options;
  options.extra_yaml =
      "ops:\n  uids: [ops]\n  http_listen: 127.0.0.1:" + std::to_string(http_port) +
      "\n  api_keys: [\"" + kOperator + "\"]\n" + "http_api:\n  keys:\n" +  //
      "    - key: " + kAdmin + "\n      rights: [admin]\n" +                //
      "    - key: " + kReader + "\n      rights: [read]\n" +                //
      "    - key: " + kPublisher + "\n      rights: [publish]\n" +          //
      "history:\n  streams:\n    - {channel: \"room-*\", topic: input, size: 1000}\n" + more_yaml;
  return options;
}

struct ApiGateway {
  Mosquitto broker;
  int http_port = free_port();
  GatewayProcess gateway;
  explicit ApiGateway(const std::string& more_yaml = "")
      : gateway(broker.uri(), api_options(http_port, more_yaml)) {
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  }

  struct Reply {
    int status = -1;
    rapidjson::Document json;
    std::string body;
  };
  Reply call(const std::string& method, const std::string& path, const std::string& key,
             const std::string& body = "") {
    httplib::Client http("127.0.0.1", http_port);
    http.set_connection_timeout(2, 0);
    http.set_read_timeout(10, 0);
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    httplib::Result res = method == "GET"   ? http.Get(path, headers)
                          : method == "PUT" ? http.Put(path, headers, body, "application/json")
                                            : http.Post(path, headers, body, "application/json");
    Reply reply;
    if (!res) return reply;
    reply.status = res->status;
    reply.body = res->body;
    reply.json = parse_json(res->body);
    return reply;
  }
};

int code_of(const ApiGateway::Reply& r) {
  return r.json.IsObject() && r.json.HasMember("code") && r.json["code"].IsInt()
             ? r.json["code"].GetInt()
             : -1;
}

// A YAML node of the OpenAPI document (an example) as JSON text.
std::string to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    std::string out = "{";
    for (const auto& kv : node) {
      if (out.size() > 1) out += ",";
      out += "\"" + kv.first.as<std::string>() + "\":" + to_json(kv.second);
    }
    return out + "}";
  }
  if (node.IsSequence()) {
    std::string out = "[";
    for (const auto& item : node) out += (out.size() > 1 ? "," : "") + to_json(item);
    return out + "]";
  }
  const std::string text = node.Scalar();
  const bool plain = node.Tag() != "!";
  if (plain && (text == "true" || text == "false" ||
                (!text.empty() && text.find_first_not_of("-0123456789") == std::string::npos))) {
    return text;
  }
  return "\"" + text + "\"";
}

}  // namespace

TEST_CASE(
    "http api: a server publish reaches plain MQTT subscribers of the channel topic and the "
    "inbox") {
  ApiGateway gw;
  Client device(gw.broker.uri(), unique_id("device"));
  device.connect();
  device.subscribe("rtm/ch/room-1/chat/+");
  device.subscribe("rtm/u/bob/inbox/+");

  auto r = gw.call("POST", "/v1/publish", kPublisher,
                   R"({"channel":"room-1","topic":"chat","publisher":"server","payload":"hello"})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.body == R"({"code":0,"result":{"topic":"rtm/ch/room-1/chat/server","bytes":5}})");
  auto got = device.wait_for("rtm/ch/room-1/chat/+");
  REQUIRE(got);
  CHECK(got->topic == "rtm/ch/room-1/chat/server");
  CHECK(got->payload == "hello");

  r = gw.call("POST", "/v1/publish", kPublisher,
              R"({"to":"bob","from":"alice","payload_base64":"AGhp/w==","qos":0})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  got = device.wait_for("rtm/u/bob/inbox/+");
  REQUIRE(got);
  CHECK(got->topic == "rtm/u/bob/inbox/alice");
  CHECK(got->payload == std::string("\0hi\xff", 4));

  // Names follow the protocol's rules; errors carry its codes.
  r = gw.call("POST", "/v1/publish", kPublisher,
              R"({"channel":"room#1","topic":"chat","publisher":"server","payload":"x"})");
  CHECK(r.status == 400);
  CHECK(code_of(r) == 8);
  CHECK(r.json["error"].GetString() == std::string("INVALID_NAME"));
  r = gw.call("POST", "/v1/publish", kPublisher, R"({"channel":"room-1","payload":"x"})");
  CHECK(r.status == 400);
  CHECK(code_of(r) == 11);
  r = gw.call("POST", "/v1/publish", kPublisher, "not json");
  CHECK(r.status == 400);
  CHECK(code_of(r) == 7);
  CHECK(device.buffered() == 0);
}

TEST_CASE("http api: messages to an offline user's inbox are kept and listed") {
  ApiGateway gw;
  auto r =
      gw.call("POST", "/v1/publish", kPublisher, R"({"to":"bob","from":"alice","payload":"hi"})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(std::string(r.json["result"]["status"].GetString()) == "stored");
  r = gw.call("POST", "/v1/users/bob/messages", kPublisher, R"({"message":"from the server"})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(std::string(r.json["result"]["status"].GetString()) == "stored");
  r = gw.call("GET", "/v1/users/bob/inbox", kReader);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const auto& messages = r.json["result"]["messages"];
  REQUIRE_MESSAGE(messages.Size() == 2, r.body);
  CHECK(std::string(messages[0]["from"].GetString()) == "alice");
  CHECK(std::string(messages[0]["message"].GetString()) == "hi");
  CHECK(std::string(messages[1]["from"].GetString()) == "$server");
  CHECK(messages[1]["offline"].GetBool());
  r = gw.call("GET", "/v1/users/bob/inbox?limit=1", kReader);
  CHECK(r.json["result"]["more"].GetBool());
  r = gw.call("POST", "/v1/users/bob/messages", kPublisher, R"({"message":"x","store":false})");
  CHECK(r.status == 409);
  CHECK(code_of(r) == 56);
  r = gw.call("POST", "/v1/users/bob/messages", kReader, R"({"message":"x"})");
  CHECK(r.status == 403);
}

TEST_CASE("http api: a bad key is refused and a read-only key cannot publish") {
  ApiGateway gw;
  const std::string body =
      R"({"channel":"room-1","topic":"chat","publisher":"server","payload":"x"})";
  auto r = gw.call("POST", "/v1/publish", "", body);
  CHECK(r.status == 401);
  CHECK(code_of(r) == 18);
  r = gw.call("POST", "/v1/publish", "admin-key-0123456789abcdeX", body);
  CHECK(r.status == 401);
  r = gw.call("POST", "/v1/publish", kReader, body);
  CHECK(r.status == 403);
  CHECK(code_of(r) == 18);
  CHECK(r.body.find(kReader) == std::string::npos);
  r = gw.call("GET", "/v1/channels", kReader);
  CHECK(r.status == 200);
  r = gw.call("GET", "/v1/channels", kPublisher);
  CHECK(r.status == 403);
  r = gw.call("POST", "/v1/tokens", kReader, R"({"uid":"alice"})");
  CHECK(r.status == 403);
  r = gw.call("POST", "/v1/kick", kReader, R"({"uid":"alice"})");
  CHECK(r.status == 403);
  r = gw.call("POST", "/v1/kick", "admin-key-0123456789abcdeX", R"({"uid":"alice"})");
  CHECK(r.status == 401);
  // Keys never reach the log.
  CHECK(gw.gateway.log().find(kReader) == std::string::npos);
  CHECK(gw.gateway.log().find(kAdmin) == std::string::npos);
}

TEST_CASE(
    "http api: a token issued by the API logs a user in and a kick through the API ends the "
    "session") {
  ApiGateway gw;
  auto r = gw.call("POST", "/v1/tokens", kAdmin, R"({"uid":"carol","ttl":600})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const std::string token = r.json["result"]["token"].GetString();
  CHECK(r.json["result"]["uid"].GetString() == std::string("carol"));

  Client carol(gw.broker.uri(), unique_id("carol"));
  carol.connect();
  carol.subscribe("rtm/u/carol/#");
  carol.subscribe("rtm/events/room-7");
  REQUIRE(answered_ok(request(carol, "carol", "login?msg_id=1", R"({"token":")" + token + "\"}")));
  REQUIRE(answered_ok(request(carol, "carol", "join?channel=room-7&msg_id=2")));

  // What the server reads of the model.
  r = gw.call("GET", "/v1/channels", kReader);
  CHECK(r.body == R"({"code":0,"result":{"channels":[{"channel":"room-7","members":1}]}})");
  r = gw.call("GET", "/v1/channels/room-7/members", kReader);
  CHECK(r.body == R"({"code":0,"result":{"channel":"room-7","members":["carol"]}})");
  r = gw.call("GET", "/v1/users/carol/channels", kReader);
  CHECK(r.body == R"({"code":0,"result":{"uid":"carol","channels":["room-7"]}})");
  r = gw.call("GET", "/v1/presence?users=carol,dave", kReader);
  CHECK(
      r.body ==
      R"({"code":0,"result":{"users":[{"uid":"carol","online":true,"session":true},{"uid":"dave","online":false,"session":false}]}})");
  r = gw.call("GET", "/v1/presence?users=bad%23uid", kReader);
  CHECK(r.status == 400);

  // A metadata write through the API reaches the members as the operation's event.
  r = gw.call("PUT", "/v1/channels/room-7/metadata", kAdmin,
              R"({"items":[{"key":"topic","value":"chess","revision":0}]})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  auto changed = wait_event(carol, "rtm/events/room-7", "metadata_changed");
  REQUIRE(changed);
  CHECK((*changed)["items"][0]["value"].GetString() == std::string("chess"));
  r = gw.call("PUT", "/v1/channels/room-7/metadata", kAdmin,
              R"({"items":[{"key":"topic","value":"go","revision":0}]})");
  CHECK(r.status == 409);
  CHECK(code_of(r) == 46);
  r = gw.call("GET", "/v1/channels/room-7/metadata?key=topic", kReader);
  CHECK(
      r.body ==
      R"({"code":0,"result":{"channel":"room-7","major_revision":1,"items":[{"key":"topic","value":"chess","revision":1}]}})");
  r = gw.call("PUT", "/v1/users/carol/metadata", kReader,
              R"({"items":[{"key":"name","value":"C"}]})");
  CHECK(r.status == 403);

  // The kick, with an admin key of the API.
  r = gw.call("POST", "/v1/kick", kAdmin, R"({"uid":"carol"})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.body == R"({"uid":"carol","had_session":true})");
  auto ended = wait_event(carol, "rtm/u/carol/events/session", "session", "ended");
  REQUIRE(ended);
  CHECK((*ended)["reason"].GetString() == std::string("kicked"));
  r = gw.call("GET", "/v1/presence?users=carol", kReader);
  CHECK(r.json["result"]["users"][0]["session"].GetBool() == false);
  // The operator key of ops.api_keys still kicks.
  r = gw.call("POST", "/v1/kick", kOperator, R"({"uid":"carol"})");
  CHECK(r.status == 200);
}

TEST_CASE("http api: history pages back what the server published, with offsets and a cursor") {
  ApiGateway gw;
  const int n = 180;  // under the publish key's burst
  for (int i = 1; i <= n; ++i) {
    auto r = gw.call("POST", "/v1/publish", kPublisher,
                     R"({"channel":"room-7","topic":"input","publisher":"bob","payload":"frame-)" +
                         std::to_string(i) + R"(","qos":1})");
    REQUIRE_MESSAGE(r.status == 200, r.body);
  }
  // The gateway reads the stream back from the broker: wait until it has every frame.
  const auto deadline = Clock::now() + 10s;
  ApiGateway::Reply where;
  while (Clock::now() < deadline) {
    where = gw.call("GET", "/v1/channels/room-7/history?topic=input&limit=0", kReader);
    REQUIRE_MESSAGE(where.status == 200, where.body);
    if (where.json["result"]["top"].GetInt64() == n) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE_MESSAGE(where.json["result"]["top"].GetInt64() == n, where.body);
  const std::string epoch = where.json["result"]["epoch"].GetString();
  CHECK(where.json["result"]["publishers"]["bob"]["seq"].GetInt64() == n);

  // Forward pages of 100 from offset 0 in this epoch: 100, then 80, in order, complete.
  std::vector<std::string> got;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    auto r = gw.call(
        "GET", "/v1/channels/room-7/history?topic=input&limit=100&since=0&epoch=" + epoch + cursor,
        kReader);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    const auto& res = r.json["result"];
    CHECK(res["complete"].GetBool());
    for (const auto& m : res["messages"].GetArray()) got.push_back(m["message"].GetString());
    if (!res["more"].GetBool()) break;
    cursor = "&after=" +
             std::to_string(res["messages"][res["messages"].Size() - 1]["offset"].GetInt64());
  }
  REQUIRE(got.size() == static_cast<std::size_t>(n));
  for (int i = 1; i <= n; ++i)
    CHECK(got[static_cast<std::size_t>(i - 1)] == "frame-" + std::to_string(i));

  // The latest two, newest first.
  auto r = gw.call("GET", "/v1/channels/room-7/history?topic=input&limit=2&reverse=true", kReader);
  REQUIRE(r.status == 200);
  CHECK(std::string(r.json["result"]["messages"][0]["message"].GetString()) == "frame-180");
  CHECK(std::string(r.json["result"]["messages"][1]["message"].GetString()) == "frame-179");
  // An offset of another epoch is answered as such: everything kept, not complete.
  r = gw.call("GET", "/v1/channels/room-7/history?topic=input&since=200&epoch=0000&limit=1000",
              kReader);
  REQUIRE(r.status == 200);
  CHECK_FALSE(r.json["result"]["complete"].GetBool());
  CHECK(r.json["result"]["messages"].Size() == static_cast<unsigned>(n));
  // A stream without history, a bad parameter, no key.
  r = gw.call("GET", "/v1/channels/lobby/history?topic=input", kReader);
  CHECK(r.status == 404);
  CHECK(std::string(r.json["error"].GetString()) == "NO_HISTORY");
  r = gw.call("GET", "/v1/channels/room-7/history?topic=input&limit=lots", kReader);
  CHECK(r.status == 400);
  r = gw.call("GET", "/v1/channels/room-7/history?topic=input", "");
  CHECK(r.status == 401);
}

TEST_CASE("http api: every documented route answers its example") {
  ApiGateway gw;
  const YAML::Node doc = YAML::LoadFile(std::string(RTM_SOURCE_DIR) + "/docs/http-api.yaml");
  // A parameter, or the one its $ref names.
  auto resolve = [&doc](const YAML::Node& param) -> YAML::Node {
    if (!param["$ref"]) return param;
    const auto ref = param["$ref"].as<std::string>();
    return doc["components"]["parameters"][ref.substr(ref.rfind('/') + 1)];
  };
  int routes = 0;
  for (const auto& path : doc["paths"]) {
    for (const auto& op : path.second) {
      std::string method = op.first.as<std::string>();
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      std::string target = path.first.as<std::string>();
      std::string query;
      for (const auto& entry : op.second["parameters"]) {
        const YAML::Node param = resolve(entry);
        if (!param["example"]) continue;
        const auto name = param["name"].as<std::string>();
        const auto example = param["example"].as<std::string>();
        if (param["in"].as<std::string>() == "path") {
          target.replace(target.find("{" + name + "}"), name.size() + 2, example);
        } else {
          query += (query.empty() ? "?" : "&") + name + "=" + example;
        }
      }
      std::string body;
      if (op.second["requestBody"]) {
        body = to_json(op.second["requestBody"]["content"]["application/json"]["example"]);
      }
      auto r = gw.call(method, target + query, kAdmin, body);
      INFO(method << " " << target << query << " " << body << " -> " << r.status << " " << r.body);
      CHECK(r.status == 200);
      CHECK(r.json.IsObject());
      ++routes;
    }
  }
  CHECK(routes >= 11);
}

TEST_CASE(
    "http api: on the sqlite backend a write is answered after its commit and survives a restart") {
  TempDir state;
  ApiGateway gw("state:\n  backend: sqlite\n  path: " + (state.path() / "state.db").string() +
                "\n");
  auto r = gw.call("PUT", "/v1/users/dave/metadata", kAdmin,
                   R"({"items":[{"key":"name","value":"Dave"}],"record_author":true})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(
      r.body ==
      R"({"code":0,"result":{"uid":"dave","major_revision":1,"items":[{"key":"name","value":"Dave","revision":1,"author":"$server"}]}})");
  gw.gateway.kill_hard();
  gw.gateway.start();
  REQUIRE_MESSAGE(wait_gateway_ready(gw.broker.uri()), gw.gateway.log());
  r = gw.call("GET", "/v1/users/dave/metadata", kReader);
  CHECK(
      r.body ==
      R"({"code":0,"result":{"uid":"dave","major_revision":1,"items":[{"key":"name","value":"Dave","revision":1,"author":"$server"}]}})");
}
