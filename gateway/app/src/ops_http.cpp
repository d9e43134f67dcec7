#include "rtm/gateway/ops_http.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <thread>

namespace rtm::gateway {
namespace {

constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

struct OpsHttpServer::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
};

OpsHttpServer::OpsHttpServer(const std::string& listen, OpsProbe& probe)
    : impl_(std::make_unique<Impl>()) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("ops.http_listen: expected host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const int port = std::stoi(listen.substr(colon + 1));

  auto& server = impl_->server;
  // Probes are cheap and few: two threads are plenty, and bound what a scraper can take.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_payload_max_length(0);
  server.Get("/healthz", [&probe](const httplib::Request&, httplib::Response& res) {
    std::string why;
    const bool ok = probe.live(&why);
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : why + "\n", "text/plain; charset=utf-8");
  });
  server.Get("/readyz", [&probe](const httplib::Request&, httplib::Response& res) {
    std::string why;
    const bool ok = probe.ready(&why);
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ready\n" : "not ready: " + why + "\n", "text/plain; charset=utf-8");
  });
  server.Get("/metrics", [&probe](const httplib::Request&, httplib::Response& res) {
    auto text = probe.metrics();
    if (!text) {
      res.status = 503;
      res.set_content("the gateway did not render its metrics in time\n",
                      "text/plain; charset=utf-8");
      return;
    }
    res.set_content(*text, kPrometheusText);
  });
  if (port == 0) {
    impl_->port = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, port)) {
    impl_->port = port;
  } else {
    impl_->port = -1;
  }
  if (impl_->port <= 0) {
    throw std::runtime_error("ops.http_listen: cannot listen on " + listen +
                             " (address in use, or not an address of this host)");
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  spdlog::info("ops: HTTP on {}:{} (/healthz, /readyz, /metrics)", host, impl_->port);
}

OpsHttpServer::~OpsHttpServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int OpsHttpServer::port() const {
  return impl_->port;
}

}  // namespace rtm::gateway
