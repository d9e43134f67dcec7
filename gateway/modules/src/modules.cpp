// Module RPC (docs/modules.md): absolute-URI requests routed to worker nodes over MQTT,
// and to allow-listed HTTP backends. Everything but the HTTP pool runs on the gateway
// loop thread, like the rest of the Core, so the tables here need no locks.
#include "rtm/mapping/json.hpp"
#include "rtm/gateway/modules.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "rtm/gateway/http_proxy.hpp"

namespace rtm::gateway {
namespace modules {

namespace {

bool lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::string shown(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    const auto b = static_cast<unsigned char>(c);
    out += (b >= 0x20 && b < 0x7f) ? c : '?';
  }
  if (text.size() > kMax) out += "...";
  return "\"" + out + "\"";
}

}  // namespace

std::optional<std::string> module_name_error(std::string_view module) {
  if (module.empty() || module.size() > 64) {
    return "a module name must be 1-64 bytes, got " + std::to_string(module.size());
  }
  if (!(module[0] >= 'a' && module[0] <= 'z')) {
    return "module name " + shown(module) + " must start with a lower-case letter";
  }
  for (char c : module) {
    if (!lower_alnum(c) && c != '-' && c != '.') {
      return "module name " + shown(module) +
             " may only hold lower-case letters, digits, '-' and '.'";
    }
  }
  if (module == "http" || module == "https") {
    return "module name " + shown(module) + " is reserved for the HTTP proxy";
  }
  return std::nullopt;
}

std::optional<std::string> node_id_error(std::string_view node) {
  if (node.empty() || node.size() > 64) {
    return "a node id must be 1-64 bytes, got " + std::to_string(node.size());
  }
  for (char c : node) {
    if (!lower_alnum(c) && c != '-' && c != '.' && c != '_') {
      return "node id " + shown(node) +
             " may only hold lower-case letters, digits, '-', '.' and '_' (URI hosts are "
             "lower-cased)";
    }
  }
  if (node == kModulus || node == kRandom || node == kCache) {
    return "node id " + shown(node) + " is a routing rule";
  }
  return std::nullopt;
}

const std::string* modulus_pick(const std::vector<std::string>& sorted_nodes,
                                std::string_view uid) {
  if (sorted_nodes.empty()) return nullptr;
  return &sorted_nodes[fnv1a64(uid) % sorted_nodes.size()];
}

std::string topic_level(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    out += (c == '/' || c == '+' || c == '#' || b < 0x20 || b == 0x7f) ? '_' : c;
  }
  return out.empty() ? "_" : out;
}

// ------------------------------------------------------------------ Directory

Directory::Directory(std::size_t cache_max_entries, std::uint64_t seed)
    : cache_max_(cache_max_entries), rng_(seed) {}

std::optional<std::string> Directory::up(const std::string& module, const std::string& node,
                                         const std::string& session) {
  auto& nodes = modules_[module];
  auto it = nodes.find(node);
  if (it == nodes.end()) {
    nodes.emplace(node, session);
    return std::nullopt;
  }
  if (it->second == session) return std::nullopt;
  std::string before = std::move(it->second);
  it->second = session;
  return before;
}

bool Directory::down(const std::string& module, const std::string& node,
                     const std::string& session) {
  auto m = modules_.find(module);
  if (m == modules_.end()) return false;
  auto it = m->second.find(node);
  if (it == m->second.end()) return false;
  if (!session.empty() && session != it->second) return false;
  m->second.erase(it);
  if (m->second.empty()) modules_.erase(m);
  return true;
}

const std::string* Directory::session(const std::string& module, const std::string& node) const {
  auto m = modules_.find(module);
  if (m == modules_.end()) return nullptr;
  auto it = m->second.find(node);
  return it == m->second.end() ? nullptr : &it->second;
}

std::vector<std::string> Directory::nodes(const std::string& module) const {
  std::vector<std::string> out;
  auto m = modules_.find(module);
  if (m == modules_.end()) return out;
  out.reserve(m->second.size());
  for (const auto& kv : m->second) out.push_back(kv.first);  // std::map: already sorted
  return out;
}

std::size_t Directory::node_count() const {
  std::size_t n = 0;
  for (const auto& m : modules_) n += m.second.size();
  return n;
}

Outcome<std::string> Directory::route(const std::string& module, const std::string& rule,
                                      const std::string& uid) {
  auto m = modules_.find(module);
  if (m == modules_.end() || m->second.empty()) {
    return failure(ErrorCode::no_route, "no live node of module \"" + module + "\"");
  }
  const auto& live = m->second;
  if (rule == kModulus) {
    const auto sorted = nodes(module);
    return *modulus_pick(sorted, uid);
  }
  if (rule == kRandom) {
    std::uniform_int_distribution<std::size_t> pick(0, live.size() - 1);
    return std::next(live.begin(), static_cast<std::ptrdiff_t>(pick(rng_)))->first;
  }
  if (rule == kCache) {
    if (const std::string* last = cached(module, uid); last && live.count(*last)) return *last;
    const auto sorted = nodes(module);
    return *modulus_pick(sorted, uid);
  }
  if (live.count(rule)) return rule;
  return failure(ErrorCode::no_route, "module \"" + module + "\" has no live node \"" + rule +
                                          "\" (rules: modulus, random, cache, or a live node id)");
}

void Directory::served(const std::string& module, const std::string& uid, const std::string& node) {
  if (cache_max_ == 0) return;
  std::string key = module + '\0' + uid;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->second = node;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, node);
  index_.emplace(std::move(key), lru_.begin());
  while (lru_.size() > cache_max_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

const std::string* Directory::cached(const std::string& module, const std::string& uid) const {
  auto it = index_.find(module + '\0' + uid);
  return it == index_.end() ? nullptr : &it->second->second;
}

}  // namespace modules

namespace {

using json::Document;

// Error messages from workers are relayed, cut to a sane size.
std::string clipped(std::string text, std::size_t max = 512) {
  if (text.size() <= max) return text;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

class ModuleRpc final : public Reloadable, public MessageHandler, public BrokerSessionObserver {
 public:
  explicit ModuleRpc(Core& core)
      : core_(core),
        config_(core.config().modules),
        directory_(config_.cache_max_entries),
        nodes_prefix_(core.tree().prefix() + "/nodes/"),
        rpc_prefix_(core.tree().prefix() + "/rpc/"),
        reply_prefix_(core.tree().prefix() + "/rpc-reply/" +
                      modules::topic_level(core.config().broker.client_id) + "/"),
        rng_(std::random_device{}()) {
    static constexpr char kHex[] = "0123456789abcdef";
    instance_.resize(8);
    for (auto& c : instance_) c = kHex[rng_() & 15];
    if (!core.config().http_backends.empty()) {
      pool_ = std::make_unique<http::Pool>(config_.http_threads);
    }
    // Requests the broker kept for the gateway while it was down may come before the
    // loop hears of the connect: the wait covers them from the start.
    start_announce_wait();
  }

  // Reloadable: new limits and deadlines for what comes next; HTTP backends as listed now
  // (calls in flight finish with the settings they started with).
  void reload(const Config& next) override {
    config_.timeout_ms = next.modules.timeout_ms;
    config_.max_pending = next.modules.max_pending;
    config_.max_pending_per_user = next.modules.max_pending_per_user;
    config_.max_result_bytes = next.modules.max_result_bytes;
    config_.require_login = next.modules.require_login;
    config_.announce_wait_ms = next.modules.announce_wait_ms;
    if (!next.http_backends.empty() && !pool_) {
      pool_ = std::make_unique<http::Pool>(config_.http_threads);
    }
    spdlog::info("modules: {} HTTP backend(s)", next.http_backends.size());
  }

  // MessageHandler: the nodes' announcements and the answers to this gateway.
  std::vector<std::string> filters() const override {
    return {nodes_prefix_ + "+/+", reply_prefix_ + "+"};
  }
  bool on_message(const Message& m) override { return on_node(m) || on_reply(m); }
  // Every gateway keeps its own directory of nodes, and the answers name the gateway.
  bool per_gateway() const override { return true; }

  // BrokerSessionObserver: after every (re)connect the gateway's status says "online", and
  // the nodes announce themselves again on reading it (docs/modules.md). Requests for a
  // module no node of which is known yet wait for that within modules.announce_wait_ms,
  // so that none is refused NO_ROUTE only because the broker does not hand retained
  // announcements to a wildcard subscription (RabbitMQ), or has not yet.
  void on_broker_session_lost() override {}
  void on_broker_connected() override { start_announce_wait(); }

  void install() {
    core_.set_absolute_handler(
        [this](Call& call, const std::string& payload, const PendingRequest& pending) {
          return handle(call, payload, pending);
        });
    spdlog::info("modules: answers on {}+, {} HTTP backend(s)", reply_prefix_,
                 core_.config().http_backends.size());
  }

 private:
  struct Pending {
    PendingRequest request;
    std::string module;  // empty for HTTP
    std::string node;
    std::string session;
    Timers::Id timer = 0;
  };

  using Answer = std::optional<Outcome<Document>>;

  // ------------------------------------------------------------ requests

  Answer handle(Call& call, const std::string& payload, const PendingRequest& pending) {
    const auto& uri = call.uri;
    if (uri.scheme == "http" || uri.scheme == "https") return http_request(call, payload, pending);
    if (auto why = modules::module_name_error(uri.scheme)) {
      return Outcome<Document>(
          failure(ErrorCode::no_route, "no module serves " + uri.scheme + "://: " + *why));
    }
    if (!uri.userinfo.empty() || uri.port) {
      return Outcome<Document>(failure(ErrorCode::invalid_uri,
                                       "module URIs take no user, password or port: " + uri.scheme +
                                           "://RULE/METHOD?msg_id=N, RULE = modulus, random, cache "
                                           "or a node id"));
    }
    if (uri.path.empty()) {
      return Outcome<Document>(failure(
          ErrorCode::invalid_uri,
          "the URI names no method: " + uri.scheme + "://" + uri.host + "/METHOD?msg_id=N"));
    }
    if (!uri.path_params.empty()) {
      return Outcome<Document>(failure(ErrorCode::invalid_uri,
                                       "';' path parameters are not supported; use query "
                                       "parameters or the JSON body"));
    }
    Document body;
    if (payload.empty()) {
      body.SetObject();
    } else {
      (void)mapping::parse_untrusted_json(payload, body);  // a refused one stays null
      if (body.HasParseError() || !body.IsObject()) {
        return Outcome<Document>(
            failure(ErrorCode::bad_json, "the payload of a module request must be a JSON object"));
      }
    }
    if (auto busy = over_limit(call.uid)) return Outcome<Document>(*busy);
    auto node = directory_.route(uri.scheme, uri.host, call.uid);
    if (!node) {
      if (node.error().code == ErrorCode::no_route && call.now_ms < announce_until_ms_) {
        park(call, payload, pending);
        return std::nullopt;
      }
      return Outcome<Document>(node.error());
    }

    const std::string id = next_id();
    const std::string topic = rpc_prefix_ + uri.scheme + "/" + *node;
    const std::int64_t deadline = call.now_ms + config_.timeout_ms;
    const std::string envelope = request_envelope(id, call, *node, body, pending.msg_id, deadline);
    if (!core_.publish(topic, envelope, 1, false)) {
      return Outcome<Document>(
          failure(ErrorCode::unavailable, "the gateway cannot reach the broker now"));
    }
    Pending p{pending, uri.scheme, *node, *directory_.session(uri.scheme, *node), 0};
    add_pending(id, std::move(p), deadline,
                "node " + *node + " of module " + uri.scheme + " did not answer within " +
                    std::to_string(config_.timeout_ms) + " ms");
    spdlog::debug("modules: {} from {} -> {} as {}", uri.raw, call.uid, topic, id);
    return std::nullopt;
  }

  std::optional<Failure> over_limit(const std::string& uid) const {
    if (pending_.size() + parked_count_ >= config_.max_pending) {
      return failure(ErrorCode::unavailable,
                     "the gateway has " + std::to_string(pending_.size()) +
                         " module requests waiting (modules.max_pending); try again later");
    }
    auto it = per_user_.find(uid);
    if (it != per_user_.end() && it->second >= config_.max_pending_per_user) {
      return failure(ErrorCode::rate_limited,
                     uid + " has " + std::to_string(it->second) +
                         " module requests waiting (modules.max_pending_per_user); wait for "
                         "their answers");
    }
    return std::nullopt;
  }

  std::string next_id() {
    // Unguessable, so that a worker of another module cannot answer for this one.
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id = instance_ + "-" + std::to_string(++seq_) + "-";
    std::uint64_t r = rng_();
    for (int i = 0; i < 16; ++i, r >>= 4) id += kHex[r & 15];
    return id;
  }

  std::string request_envelope(const std::string& id, const Call& call, const std::string& node,
                               const Document& body, const std::string& msg_id,
                               std::int64_t deadline) const {
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartObject();
    w.Key("id");
    json::write_string(w, id);
    w.Key("uid");
    json::write_string(w, call.uid);
    w.Key("module");
    json::write_string(w, call.uri.scheme);
    w.Key("node");
    json::write_string(w, node);
    w.Key("method");
    json::write_string(w, call.uri.path);
    w.Key("params");
    w.StartObject();
    for (const auto& p : call.uri.params) {
      if (p.key == "msg_id") continue;
      json::write_string(w, p.key);
      json::write_string(w, p.value);
    }
    w.EndObject();
    w.Key("body");
    body.Accept(w);
    w.Key("msg_id");
    json::write_string(w, msg_id);
    w.Key("reply_to");
    json::write_string(w, reply_prefix_ + call.uri.scheme);
    w.Key("deadline_ms");
    w.Int64(deadline);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
  }

  void add_pending(const std::string& id, Pending p, std::int64_t deadline,
                   std::string timeout_message) {
    p.timer = core_.timers().at(deadline, [this, id, why = std::move(timeout_message)] {
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      it->second.timer = 0;
      finish(it, failure(ErrorCode::timeout, why));
    });
    ++per_user_[p.request.uid];
    pending_.emplace(id, std::move(p));
  }

  using PendingMap = std::unordered_map<std::string, Pending>;

  // ------------------------------------------------------------ waiting for announcements

  void start_announce_wait() {
    if (config_.announce_wait_ms <= 0) return;
    announce_until_ms_ = core_.now_ms() + config_.announce_wait_ms;
    if (announce_timer_) core_.timers().cancel(announce_timer_);
    announce_timer_ = core_.timers().at(announce_until_ms_, [this] {
      announce_timer_ = 0;
      std::vector<std::string> modules;
      for (const auto& [module, waiting] : parked_) modules.push_back(module);
      for (const auto& module : modules) unpark(module);  // answered NO_ROUTE now
    });
  }

  void park(const Call& call, const std::string& payload, const PendingRequest& pending) {
    ++per_user_[call.uid];
    ++parked_count_;
    parked_[call.uri.scheme].push_back({call.uri.raw, payload, pending});
    spdlog::debug("modules: {} from {} waits for a node of {} to announce itself", call.uri.raw,
                  call.uid, call.uri.scheme);
  }

  // Runs the requests that waited for `module` again: routed now, or answered NO_ROUTE
  // when the wait is over.
  void unpark(const std::string& module) {
    auto it = parked_.find(module);
    if (it == parked_.end()) return;
    std::vector<Parked> waiting = std::move(it->second);
    parked_.erase(it);
    const Params none = Params::merge(topics::Uri{}, "").value();
    for (auto& p : waiting) {
      --parked_count_;
      auto u = per_user_.find(p.request.uid);
      if (u != per_user_.end() && --u->second == 0) per_user_.erase(u);
      auto uri = topics::parse_uri(p.raw_uri);  // parsed once already: cannot fail
      if (!uri) continue;
      Call call{p.request.uid, *uri, none, core_.now_ms()};
      if (auto answer = handle(call, p.payload, p.request)) {
        core_.complete(std::move(p.request), std::move(*answer));
      }
    }
  }

  // Takes the request out of the tables, then answers it.
  PendingRequest take(PendingMap::iterator it) {
    PendingRequest request = std::move(it->second.request);
    if (it->second.timer) core_.timers().cancel(it->second.timer);
    pending_.erase(it);
    auto u = per_user_.find(request.uid);
    if (u != per_user_.end() && --u->second == 0) per_user_.erase(u);
    return request;
  }

  void finish(PendingMap::iterator it, const Failure& why) {
    core_.complete(take(it), Outcome<Document>(why));
  }

  // Fails every request waiting for `node` (of `session`, or any when empty).
  void fail_node(const std::string& module, const std::string& node, const std::string& session,
                 const std::string& why) {
    std::vector<std::string> ids;
    for (const auto& [id, p] : pending_) {
      if (p.module == module && p.node == node && (session.empty() || p.session == session)) {
        ids.push_back(id);
      }
    }
    for (const auto& id : ids) {
      finish(pending_.find(id), failure(ErrorCode::backend_error, why));
    }
    if (!ids.empty()) {
      spdlog::info("modules: {} request(s) to {}/{} failed: {}", ids.size(), module, node, why);
    }
  }

  // ------------------------------------------------------------ nodes

  bool on_node(const Message& m) {
    if (m.topic.rfind(nodes_prefix_, 0) != 0) return false;
    const std::string rest = m.topic.substr(nodes_prefix_.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos) return true;
    const std::string module = rest.substr(0, slash);
    const std::string node = rest.substr(slash + 1);
    if (auto why = modules::module_name_error(module)) {
      spdlog::warn("modules: ignored announcement on {}: {}", m.topic, *why);
      return true;
    }
    if (auto why = modules::node_id_error(node)) {
      spdlog::warn("modules: ignored announcement on {}: {}", m.topic, *why);
      return true;
    }
    if (m.payload.empty()) {  // the retained announcement was cleared
      if (directory_.down(module, node, "")) {
        spdlog::info("modules: node {}/{} is gone (announcement cleared)", module, node);
        fail_node(module, node, "",
                  "node " + node + " of module " + module + " went down before answering");
      }
      return true;
    }
    Document doc;
    (void)mapping::parse_untrusted_json(m.payload, doc);  // a refused one stays null
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("state") ||
        !doc["state"].IsString()) {
      spdlog::warn(
          "modules: ignored announcement on {}: expected {{\"state\":\"up\"|\"down\",...}}",
          m.topic);
      return true;
    }
    const std::string state = doc["state"].GetString();
    std::string session;
    if (doc.HasMember("session") && doc["session"].IsString()) session = doc["session"].GetString();
    if (state == "up") {
      const bool was_up = directory_.session(module, node) != nullptr;
      if (auto old = directory_.up(module, node, session)) {
        spdlog::info("modules: node {}/{} restarted (session {} -> {})", module, node, *old,
                     session);
        fail_node(module, node, *old,
                  "node " + node + " of module " + module + " restarted before answering");
      } else if (!was_up) {
        spdlog::info("modules: node {}/{} is up ({} live node(s) of {})", module, node,
                     directory_.nodes(module).size(), module);
      }
      unpark(module);
    } else if (state == "down") {
      if (directory_.down(module, node, session)) {
        spdlog::info("modules: node {}/{} is down", module, node);
        fail_node(module, node, "",
                  "node " + node + " of module " + module + " went down before answering");
      }
    } else {
      spdlog::warn("modules: ignored announcement on {}: state must be up or down, got {}", m.topic,
                   clipped(state, 32));
    }
    return true;
  }

  // ------------------------------------------------------------ answers

  bool on_reply(const Message& m) {
    if (m.topic.rfind(reply_prefix_, 0) != 0) return false;
    const std::string module = m.topic.substr(reply_prefix_.size());
    if (module.empty()) return true;  // HTTP requests have no module: nothing answers them here
    Document doc;
    (void)mapping::parse_untrusted_json(m.payload, doc);
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("id") || !doc["id"].IsString()) {
      spdlog::warn("modules: ignored an answer on {} that is not {{\"id\":..,\"result\":..}}",
                   m.topic);
      return true;
    }
    auto it = pending_.find(doc["id"].GetString());
    if (it == pending_.end()) {
      spdlog::debug("modules: late or unknown answer {} on {}", doc["id"].GetString(), m.topic);
      return true;
    }
    if (it->second.module != module) {
      // Only module M's workers may write P/rpc-reply/+/M (ACL): never take an answer
      // from another module's topic.
      spdlog::warn("modules: answer {} for module {} came on {}; ignored", it->first,
                   it->second.module, m.topic);
      return true;
    }
    directory_.served(it->second.module, it->second.request.uid, it->second.node);
    // "error" absent, null or "" means no error (a Go struct with an Error field sends "").
    const bool failed = doc.HasMember("error") && !doc["error"].IsNull() &&
                        !(doc["error"].IsString() && doc["error"].GetStringLength() == 0);
    if (failed) {
      std::string why =
          doc["error"].IsString() ? doc["error"].GetString() : json::dump(doc["error"]);
      finish(it,
             failure(ErrorCode::backend_error, "node " + it->second.node + " of module " + module +
                                                   " failed: " + clipped(std::move(why))));
      return true;
    }
    if (!doc.HasMember("result")) {
      finish(it,
             failure(ErrorCode::backend_error, "node " + it->second.node + " of module " + module +
                                                   " answered without result or error"));
      return true;
    }
    const std::string result = json::dump(doc["result"]);  // valid JSON by construction
    if (result.size() > config_.max_result_bytes) {
      finish(it, failure(ErrorCode::backend_error, "the answer of node " + it->second.node +
                                                       " is " + std::to_string(result.size()) +
                                                       " bytes, over modules.max_result_bytes"));
      return true;
    }
    core_.complete_raw(take(it), result);
    return true;
  }

  // ------------------------------------------------------------ HTTP proxy

  Answer http_request(Call& call, const std::string& payload, const PendingRequest& pending) {
    const auto& uri = call.uri;
    const auto& backends = core_.config().http_backends;
    auto backend = backends.find(uri.host);
    if (backend == backends.end()) {
      return Outcome<Document>(
          failure(ErrorCode::no_route, "\"" + uri.host +
                                           "\" is not an HTTP backend of this gateway "
                                           "(config http_backends)"));
    }
    if (backend->second.scheme != uri.scheme) {
      return Outcome<Document>(
          failure(ErrorCode::no_route, "HTTP backend \"" + uri.host + "\" is reached with " +
                                           backend->second.scheme + "://" + uri.host + "/..."));
    }
    if (!uri.userinfo.empty() || uri.port) {
      return Outcome<Document>(
          failure(ErrorCode::invalid_uri,
                  "HTTP proxy URIs take no user, password or port: the backend "
                  "name stands for its configured base URL"));
    }
    auto built = http::build_call(backend->first, backend->second, uri, payload, call.uid,
                                  config_.max_result_bytes);
    if (!built) return Outcome<Document>(built.error());
    if (auto busy = over_limit(call.uid)) return Outcome<Document>(*busy);

    const std::string id = next_id();
    add_pending(id, Pending{pending, "", backend->first, "", 0},
                call.now_ms + backend->second.timeout_ms, http_timeout_message(backend->first));
    spdlog::debug("modules: {} from {} -> {} {} {} as {}", uri.raw, call.uid, built->method,
                  backend->second.base_url, built->target, id);
    pool_->submit(std::move(*built), [this, id](http::Result result) {
      core_.post([this, id, result = std::move(result)] { on_http_done(id, result); });
    });
    return std::nullopt;
  }

  std::string http_timeout_message(const std::string& backend) const {
    return "HTTP backend " + backend + " did not answer within " +
           std::to_string(core_.config().http_backends.at(backend).timeout_ms) + " ms";
  }

  void on_http_done(const std::string& id, const http::Result& result) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // answered already (TIMEOUT)
    const std::string backend = it->second.node;
    switch (result.kind) {
      case http::Result::Kind::completed:
        core_.complete_raw(take(it), http::answer_json(result));
        return;
      case http::Result::Kind::timeout:  // the same words as the loop's own timer
        return finish(it, failure(ErrorCode::timeout, http_timeout_message(backend)));
      case http::Result::Kind::failed:
        return finish(
            it, failure(ErrorCode::backend_error, "HTTP backend " + backend + ": " + result.error));
    }
  }

  Core& core_;
  ModulesConfig config_;
  modules::Directory directory_;
  std::string nodes_prefix_;  // P/nodes/
  std::string rpc_prefix_;    // P/rpc/
  std::string reply_prefix_;  // P/rpc-reply/{gateway}/
  std::mt19937_64 rng_;
  std::string instance_;
  std::uint64_t seq_ = 0;
  PendingMap pending_;
  std::unordered_map<std::string, std::size_t> per_user_;
  // Last, so that it is destroyed first: its threads post into this object.
  std::unique_ptr<http::Pool> pool_;
  struct Parked {
    std::string raw_uri;
    std::string payload;
    PendingRequest request;
  };
  std::unordered_map<std::string, std::vector<Parked>> parked_;  // by module
  std::size_t parked_count_ = 0;
  std::int64_t announce_until_ms_ = 0;
  Timers::Id announce_timer_ = 0;
};

}  // namespace

void register_module_rpc(Core& core) {
  auto service = std::make_shared<ModuleRpc>(core);
  service->install();
  core.add_message_handler(service);
  core.add_reloadable(service);
  core.add_broker_session_observer(service);
}

}  // namespace rtm::gateway
