#pragma once
// The server HTTP API for app servers (http_api.*; docs/http-api.yaml): publish to a
// channel topic or a user's inbox, channels and members, where a user is, presence, user
// and channel metadata, login tokens. JSON in, JSON out: {"code":0,"result":...} or
// {"code":N,"error":"NAME","message":...} with the error codes of the MQTT protocol.
//
// Three parts: ApiKeys (who may call what), ServerApi (the work, on the loop thread, over
// the gateway's own operations), and the routes (HTTP threads) that tie them to a server.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/inbox.hpp"
#include "rtm/gateway/json.hpp"
#include "rtm/gateway/request.hpp"

namespace httplib {
class Server;
}

namespace rtm::gateway {

class Core;
class StateStore;

// http_api.keys with their rights, and a request rate per key. Thread-safe. Keys are
// compared in constant time, each of them on every call, and never logged.
class ApiKeys {
 public:
  ApiKeys(std::vector<HttpApiKey> keys, double rate_per_s, int burst);
  enum class Verdict { ok, no_key, bad_key, no_right, rate_limited };
  // The key of an "Authorization: Bearer KEY" header against `right` (an ApiRight; admin
  // holds every right). A call over the key's rate is rate_limited.
  Verdict check(std::string_view authorization, unsigned right);
  bool empty() const { return keys_.empty(); }

 private:
  struct Bucket {
    double tokens = 0;
    std::int64_t at_us = 0;
  };
  std::vector<HttpApiKey> keys_;
  double rate_per_s_;
  double burst_;
  std::mutex mutex_;
  std::vector<Bucket> buckets_;  // per key, under mutex_
};

using ApiOutcome = Outcome<json::Document>;

// Runs `work` on the gateway's loop thread and waits for its answer, which it hands back
// once the turn's changes are durable and its messages sent; nullopt when the loop did not
// answer in time.
class LoopRunner {
 public:
  virtual ~LoopRunner() = default;
  virtual std::optional<ApiOutcome> run_on_loop(std::function<ApiOutcome()> work) = 0;
};

// A message an app server publishes: to a channel topic as `publisher`, or to `to`'s inbox
// from `from`. Names checked already.
struct ServerMessage {
  std::string channel, topic, publisher;  // a channel message
  std::string to, from;                   // or an inbox message
  std::string payload;
  int qos = 1;
};

// The routes' work on the loop thread, over the gateway's parts: reads of the state store,
// the registered operations (Core::invoke, the same handlers and events as over MQTT),
// the broker link (Core::publish).
class ServerApi {
 public:
  // `inbox`: where a message to an offline user's inbox is kept (none: published only).
  ServerApi(Core& core, std::shared_ptr<StateStore> store,
            std::shared_ptr<PeerInbox> inbox = nullptr);
  ApiOutcome publish(const ServerMessage& message);
  // Every channel with members, by name, with its member count.
  ApiOutcome channels() const;
  // Each user online (a session or a live connection) or not, with whether it has a session.
  ApiOutcome presence(const std::vector<std::string>& users) const;
  // The operation `name` with `params` (a JSON object) as the server (Core::invoke).
  ApiOutcome call(const std::string& name, const std::string& params);

 private:
  Core& core_;
  std::shared_ptr<StateStore> store_;
  std::shared_ptr<PeerInbox> inbox_;
};

// One route of the API: its method, its path in the OpenAPI document's form
// ("/v1/channels/{channel}/members") and the right it needs.
struct ApiRoute {
  std::string_view method;
  std::string_view path;
  unsigned right;
};
// Every route of the API (docs/http-api.yaml documents each; a test compares the two).
// POST /v1/kick, on the same listener, is the operations listener's.
const std::vector<ApiRoute>& api_routes();

// The HTTP status of a protocol error code (200 for OK).
int http_status(ErrorCode code);

// Adds the API's routes to `server`. `keys`, `loop` and `api` must outlive the server's
// serving; `config` is copied (the token secret, limits, the broker profile's name rules).
void add_api_routes(httplib::Server& server, const Config& config, ApiKeys& keys, LoopRunner& loop,
                    ServerApi& api);

}  // namespace rtm::gateway
