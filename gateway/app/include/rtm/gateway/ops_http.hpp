#pragma once
// The operations HTTP listener (ops.http_listen): GET /healthz, /readyz and /metrics, in
// the manner of Kubernetes probes and Prometheus scrapes. It only reads; it changes
// nothing in the gateway.
#include <memory>
#include <optional>
#include <string>

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
};

class OpsHttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 takes a free one) and serves on a thread of its
  // own. Throws std::runtime_error when it cannot bind (start-up only).
  OpsHttpServer(const std::string& listen, OpsProbe& probe);
  ~OpsHttpServer();
  OpsHttpServer(const OpsHttpServer&) = delete;
  OpsHttpServer& operator=(const OpsHttpServer&) = delete;
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtm::gateway
