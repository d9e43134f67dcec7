#pragma once
// The operations HTTP listener (ops.http_listen): GET /healthz, /readyz and /metrics, in
// the manner of Kubernetes probes and Prometheus scrapes; and two operator endpoints that
// need a bearer key of ops.api_keys: POST /v1/kick (ends a user's session and
// connections) and POST /v1/authz (EMQX's HTTP authorization, enforcement.http_authz).
// RabbitMQ's HTTP auth backend cannot send headers: its four endpoints carry the key in
// the path instead, POST /v1/rabbitmq/{key}/{user,vhost,resource,topic}
// (enforcement.rabbitmq_http_auth), and answer the text "allow" or "deny".
// With http_api.keys it also serves the server HTTP API for app servers (http_api.hpp,
// docs/http-api.yaml), whose admin keys may POST /v1/kick as well.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rtm/gateway/enforcement.hpp"
#include "rtm/gateway/http_api.hpp"
#include "rtm/gateway/rabbitmq_auth.hpp"

namespace rtm::gateway {

// What the listener asks the running gateway. Called on the listener's own threads.
class OpsProbe {
 public:
  virtual ~OpsProbe() = default;
  // The process works (its loop turns). `why` says what is wrong when not.
  virtual bool live(std::string* why) const = 0;
  // It serves requests (connected to the broker, subscribed).
  virtual bool ready(std::string* why) const = 0;
  // The Prometheus text, or nullopt when the gateway cannot render it in time.
  virtual std::optional<std::string> metrics() = 0;

  // Operator endpoints: an HTTP status and a JSON body, or nullopt when the gateway did
  // not answer in time.
  struct Answer {
    int status = 200;
    std::string body;
  };
  virtual std::optional<Answer> kick(const std::string& uid) = 0;
  virtual std::optional<Answer> authorize(const AuthzQuestion& question) = 0;
  // RabbitMQ's HTTP auth backend: the form body of one question from `peer` (the client's
  // address); the answer's body is "allow" or "deny" (text, not JSON).
  virtual std::optional<Answer> rabbitmq(rabbitmq::Endpoint endpoint, const std::string& body,
                                         const std::string& peer) {
    (void)endpoint, (void)body, (void)peer;
    return Answer{404, "deny"};
  }
};

// Largest request body the operator endpoints read.
inline constexpr std::size_t kMaxOpsBodyBytes = 16 * 1024;

// What the listener serves besides the probes and the operator endpoints.
struct OpsHttpOptions {
  std::vector<std::string> api_keys;  // ops.api_keys
  // The server HTTP API's keys (http_api.keys): an admin key may also POST /v1/kick.
  ApiKeys* server_keys = nullptr;
  // Adds the server HTTP API's routes (add_api_routes), and the body size and threads
  // they need (http_api.max_body_bytes, http_api.threads).
  std::function<void(httplib::Server&)> more_routes;
  std::size_t max_body_bytes = kMaxOpsBodyBytes;
  int more_threads = 0;
};

class OpsHttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 takes a free one) and serves on a thread of its
  // own. Throws std::runtime_error when it cannot bind (start-up only).
  OpsHttpServer(const std::string& listen, OpsProbe& probe, OpsHttpOptions options);
  OpsHttpServer(const std::string& listen, OpsProbe& probe, std::vector<std::string> api_keys)
      : OpsHttpServer(listen, probe,
                      OpsHttpOptions{std::move(api_keys), nullptr, {}, kMaxOpsBodyBytes, 0}) {}
  ~OpsHttpServer();
  OpsHttpServer(const OpsHttpServer&) = delete;
  OpsHttpServer& operator=(const OpsHttpServer&) = delete;
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtm::gateway
