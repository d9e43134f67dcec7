#include "rtm/gateway/ops_http.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "rtm/gateway/json.hpp"
#include "rtm/mapping/json.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/secret.hpp"

namespace rtm::gateway {
namespace {

constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";
constexpr std::string_view kBearer = "Bearer ";

using util::same_secret;

void json_error(httplib::Response& res, int status, const std::string& message) {
  auto doc = json::object();
  json::set(doc, "error", message);
  res.status = status;
  res.set_content(json::dump(doc), kJson);
}

// The bearer key of an operator request; false (and the answer set) when it is missing
// or wrong.
bool key_ok(const std::vector<std::string>& keys, const httplib::Request& req,
            httplib::Response& res) {
  if (keys.empty()) {
    json_error(res, 403, "no ops.api_keys configured: operator endpoints are off");
    return false;
  }
  const std::string header = req.get_header_value("Authorization");
  bool ok = false;
  if (header.rfind(kBearer, 0) == 0) {
    const std::string_view key = std::string_view(header).substr(kBearer.size());
    for (const auto& k : keys) ok |= same_secret(key, k);
  }
  if (!ok) {
    res.set_header("WWW-Authenticate", "Bearer");
    json_error(res, 401, "a valid 'Authorization: Bearer KEY' of ops.api_keys is required");
  }
  return ok;
}

// The operator endpoints read at most kMaxOpsBodyBytes, whatever the API takes.
bool body_size_ok(const httplib::Request& req, httplib::Response& res) {
  if (req.body.size() <= kMaxOpsBodyBytes) return true;
  json_error(res, 413, "the body is over " + std::to_string(kMaxOpsBodyBytes) + " bytes");
  return false;
}

// The JSON object of a request body, or nullopt (and a 400 answer).
std::optional<json::Document> json_body(const httplib::Request& req, httplib::Response& res) {
  json::Document doc;
  if (auto why = mapping::parse_untrusted_json(req.body, doc); why || !doc.IsObject()) {
    json_error(res, 400, "the body must be a JSON object" + (why ? ": " + *why : std::string()));
    return std::nullopt;
  }
  return doc;
}

std::optional<std::string> string_field(const json::Document& doc, const char* name) {
  if (!doc.HasMember(name) || !doc[name].IsString()) return std::nullopt;
  return std::string(doc[name].GetString(), doc[name].GetStringLength());
}

void send(httplib::Response& res, const std::optional<OpsProbe::Answer>& answer) {
  if (!answer) return json_error(res, 503, "the gateway did not answer in time");
  res.status = answer->status;
  res.set_content(answer->body, kJson);
}

}  // namespace

struct OpsHttpServer::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
};

OpsHttpServer::OpsHttpServer(const std::string& listen, OpsProbe& probe, OpsHttpOptions options)
    : impl_(std::make_unique<Impl>()) {
  const auto& api_keys = options.api_keys;
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("ops.http_listen: expected host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const int port = std::stoi(listen.substr(colon + 1));

  auto& server = impl_->server;
  // Probes are cheap and few: two threads are plenty, and bound what a scraper can take;
  // the server HTTP API brings threads of its own (http_api.threads).
  const std::size_t threads = 2 + static_cast<std::size_t>(std::max(options.more_threads, 0));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_payload_max_length(std::max(kMaxOpsBodyBytes, options.max_body_bytes));
  // Brokers ask here while a client waits (RabbitMQ: each question in sequence at CONNECT
  // and SUBSCRIBE); a Nagle delay on a small answer would stall every one of them.
  server.set_tcp_nodelay(true);
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
  // An operator key, or an admin key of the server HTTP API.
  server.Post("/v1/kick", [&probe, keys = api_keys, server_keys = options.server_keys](
                              const httplib::Request& req, httplib::Response& res) {
    if (!body_size_ok(req, res)) return;
    const bool has_server_keys = server_keys && !server_keys->empty();
    if (has_server_keys) {
      const auto verdict = server_keys->check(req.get_header_value("Authorization"), kRightAdmin);
      if (verdict == ApiKeys::Verdict::no_right) {
        return json_error(res, 403, "this key of http_api.keys lacks the right admin");
      }
      if (verdict == ApiKeys::Verdict::rate_limited) {
        return json_error(res, 429, "over http_api.rate_per_s for this key");
      }
      if (verdict != ApiKeys::Verdict::ok) {
        if (keys.empty()) {
          res.set_header("WWW-Authenticate", "Bearer");
          return json_error(res, 401, "a valid 'Authorization: Bearer KEY' is required");
        }
        if (!key_ok(keys, req, res)) return;
      }
    } else if (!key_ok(keys, req, res)) {
      return;
    }
    auto body = json_body(req, res);
    if (!body) return;
    const auto uid = string_field(*body, "uid");
    if (!uid || !topics::is_valid_name(*uid)) {
      return json_error(res, 400, "\"uid\" must be a valid uid");
    }
    send(res, probe.kick(*uid));
  });
  // EMQX's HTTP authorizer: {"username","clientid","topic","action"} -> {"result":...}.
  server.Post("/v1/authz", [&probe, keys = api_keys](const httplib::Request& req,
                                                     httplib::Response& res) {
    if (!body_size_ok(req, res) || !key_ok(keys, req, res)) return;
    auto body = json_body(req, res);
    if (!body) return;
    const auto username = string_field(*body, "username");
    const auto topic = string_field(*body, "topic");
    const auto action = string_field(*body, "action");
    if (!username || !topic || !action || (*action != "publish" && *action != "subscribe")) {
      return json_error(res, 400,
                        "expected {\"username\",\"topic\",\"action\":\"publish\"|\"subscribe\"}");
    }
    send(res, probe.authorize({*username, *topic, *action == "publish"}));
  });
  // RabbitMQ's HTTP auth backend. It cannot send a header, so the key is a path level;
  // every refusal is the body "deny" (RabbitMQ refuses on any other status too).
  server.Post(R"(/v1/rabbitmq/([^/]+)/([a-z]+))",
              [&probe, keys = api_keys](const httplib::Request& req, httplib::Response& res) {
                const auto endpoint = rabbitmq::endpoint_from_name(req.matches[2].str());
                bool ok = false;
                const std::string key = req.matches[1].str();
                for (const auto& k : keys) ok |= same_secret(key, k);
                if (!ok || !endpoint) {
                  res.status = !endpoint ? 404 : keys.empty() ? 403 : 401;
                  res.set_content("deny", kText);
                  return;
                }
                auto answer = probe.rabbitmq(*endpoint, req.body, req.remote_addr);
                res.status = answer ? answer->status : 503;
                res.set_content(answer ? answer->body : "deny", kText);
              });
  if (options.more_routes) options.more_routes(server);
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
  spdlog::info(
      "ops: HTTP on {}:{} (/healthz, /readyz, /metrics; operator endpoints {}; server "
      "API {})",
      host, impl_->port, api_keys.empty() ? "off: no ops.api_keys" : "on",
      options.server_keys && !options.server_keys->empty() ? "on" : "off: no http_api.keys");
}

OpsHttpServer::~OpsHttpServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int OpsHttpServer::port() const {
  return impl_->port;
}

}  // namespace rtm::gateway
