#include "rtm/mapping/json.hpp"
#include "rtm/gateway/gateway.hpp"

#include <arpa/inet.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "rtm/gateway/bridge.hpp"
#include "rtm/gateway/history.hpp"
#include "rtm/gateway/inbox.hpp"
#include "rtm/gateway/invitations.hpp"
#include "rtm/gateway/json.hpp"
#include "rtm/gateway/logging.hpp"
#include "rtm/gateway/modules.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/gateway/redis_store.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/gateway/storage_operations.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/topics/uri.hpp"
#include "rtm/util/random.hpp"

namespace rtm::gateway {
namespace {

using SteadyClock = std::chrono::steady_clock;

// /healthz fails when the loop has not turned for this long (it turns at least once a
// second when idle).
constexpr std::int64_t kLoopStallMs = 10000;
// How long /metrics waits for the loop to render them.
constexpr auto kMetricsDeadline = std::chrono::seconds(5);
// At a clean stop, how long the offline status may take to reach the broker.
constexpr auto kGoodbyeDeadline = std::chrono::seconds(2);
// Another gateway on the same prefix is logged again after this long.
constexpr std::int64_t kOtherGatewayLogEveryMs = 60000;
constexpr std::size_t kOtherGatewaysRemembered = 64;
// While the broker link is down, the loop looks this often whether it is back (to run
// the timers it held).
constexpr std::int64_t kUnlinkedPollMs = 20;
// While the shared state cannot be reached, the loop tries to begin a turn this often.
constexpr std::int64_t kUnavailableRetryMs = 100;
// The loop takes this many messages of one user (or of the bridge and the rest) per turn,
// and this many in all, so that a user with a backlog waits behind the others' first.
constexpr std::size_t kTakePerUser = 32;
constexpr std::size_t kTakePerTurn = 1024;

RateLimits rate_limits(const RequestsConfig& r) {
  RateLimits limits;
  limits.rate_per_s = r.rate_per_s;
  limits.burst = r.burst;
  limits.refusals_per_s = r.refusals_per_s;
  return limits;
}

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string string_field(const json::Document& doc, const char* key) {
  auto it = doc.FindMember(key);
  return it != doc.MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

}  // namespace

// Other gateways' status (and our predecessor's Will) on P/gateway/status.
class Gateway::StatusWatch final : public MessageHandler {
 public:
  explicit StatusWatch(Gateway& gateway) : gateway_(gateway) {}
  std::vector<std::string> filters() const override { return {gateway_.status_topic_}; }
  bool on_message(const Message& m) override { return gateway_.on_status(m); }
  bool per_gateway() const override { return true; }  // each gateway watches for the others

 private:
  Gateway& gateway_;  // owns the Core, and so outlives this
};

Gateway::Gateway(const Config& config, std::unique_ptr<BrokerLink> link)
    : config_(config),
      link_(std::move(link)),
      core_(std::make_unique<Core>(config_, *this)),
      instance_(util::random_hex(16)),
      started_at_ms_(core_->now_ms()),
      status_topic_(core_->tree().gateway_status()),
      limiter_(rate_limits(config_.requests)) {
  core_->set_task_queue(this);
  register_basic_operations(*core_);
  // One state store for the RTM and the storage operations: one commit per loop turn.
  auto store = make_store();
  rtm_ = register_rtm_operations(*core_, store);
  register_storage_operations(*core_, store);
  // Before the bridge: history reads channel messages that mapping rules may also relay.
  register_history(*core_, store);
  auto inbox = register_inbox(*core_, store);
  register_invitations(*core_, store);
  server_api_ = std::make_unique<ServerApi>(*core_, store, inbox);
  api_keys_ = std::make_unique<ApiKeys>(config_.http_api.keys, config_.http_api.rate_per_s,
                                        config_.http_api.burst);
  register_bridge(*core_, rtm_);
  register_module_rpc(*core_);
  core_->add_message_handler(std::make_shared<StatusWatch>(*this));
  // The broker says "offline" for us when the connection drops without a goodbye.
  link_->set_will({status_topic_, status_payload(false, "connection_lost"), 1, true});
  last_turn_ms_.store(steady_ms());
  if (config_.enforcement.rabbitmq_http_auth) {
    rabbitmq::Settings settings;
    settings.vhost = config_.enforcement.rabbitmq_vhost;
    settings.token_secret = config_.auth.token_secret;
    if (!config_.enforcement.rabbitmq_password_file.empty()) {
      settings.service_users =
          rabbitmq::PasswordFile::load(config_.enforcement.rabbitmq_password_file);
    }
    // The gateway's own login: its broker password, hashed here like the file's entries.
    if (!config_.broker.password.empty()) {
      settings.service_users.add_plain(config_.broker.username, config_.broker.password);
    }
    if (!settings.service_users.contains(config_.broker.username)) {
      throw std::runtime_error(
          "enforcement.rabbitmq_http_auth: the gateway's own user '" + config_.broker.username +
          "' needs broker.password or a line in enforcement.rabbitmq_password_file");
    }
    spdlog::info("rabbitmq: answering the HTTP auth backend ({} service users, vhost '{}')",
                 settings.service_users.size(), settings.vhost);
    rabbit_ = std::make_unique<const rabbitmq::Authenticator>(std::move(settings));
  }
}

Gateway::~Gateway() {
  ops_http_.reset();
  link_->stop();
  // Modules may run threads that post to the loop's queue (the HTTP proxy): end them while
  // the queue still exists.
  core_.reset();
}

void Gateway::start_ops_http() {
  if (!config_.ops.http_listen.empty()) {
    OpsHttpOptions options;
    options.api_keys = config_.ops.api_keys;
    if (!api_keys_->empty()) {
      options.server_keys = api_keys_.get();
      options.more_routes = [this](httplib::Server& server) {
        add_api_routes(server, config_, *api_keys_, *this, *server_api_);
      };
      options.max_body_bytes = config_.http_api.max_body_bytes;
      options.more_threads = config_.http_api.threads;
    }
    ops_http_ = std::make_unique<OpsHttpServer>(config_.ops.http_listen, *this, std::move(options));
  }
}

std::string Gateway::status_payload(bool online, std::string_view reason) const {
  auto doc = json::object();
  json::set(doc, "state", online ? "online" : "offline");
  json::set(doc, "instance", instance_);
  json::set(doc, "client_id", config_.broker.client_id);
  json::set(doc, "host", host_name());
  json::set_int(doc, "pid", static_cast<std::int64_t>(::getpid()));
  json::set(doc, "version", RTM_VERSION);
  json::set_int(doc, "started_at", started_at_ms_);
  if (!reason.empty()) json::set(doc, "reason", reason);
  return json::dump(doc);
}

void Gateway::on_connected(bool session_present) {
  ready_.store(true, std::memory_order_release);
  if (!session_present) {
    // Whatever the broker held for us (Wills of users who dropped, queued requests) is
    // gone: sessions must show they are still there.
    post([this] { core_->broker_session_lost(); });
  }
  // After the session check: the grant feed sends its full set to the broker again.
  post([this] { core_->broker_connected(); });
  // Retained, so that devices and operators who look later see it too.
  link_->publish(status_topic_, status_payload(true, ""), 1, true);
  spdlog::info("gateway: serving requests on {} (instance {}, {} MQTT session)",
               core_->tree().request_filter(), instance_,
               session_present ? "resumed" : "new");
}

void Gateway::on_connection_lost(const std::string& why) {
  ready_.store(false, std::memory_order_release);
  std::string suspect;
  {
    std::lock_guard<std::mutex> lock(why_mutex_);
    not_ready_why_ = "broker connection lost (" + why + "); reconnecting";
    suspect = same_id_suspect_;
  }
  const auto early = link_->stats().early_closes;
  if (early > early_closes_seen_ && !suspect.empty()) {
    spdlog::error(
        "gateway: another gateway ({}) uses this gateway's broker.client_id \"{}\": "
        "the broker gives the id to whichever connects last, so the two keep knocking "
        "each other off. Give each gateway its own broker.client_id",
        suspect, config_.broker.client_id);
  }
  early_closes_seen_ = early;
  spdlog::warn("gateway: broker connection lost ({}); reconnecting", why);
}

// Another gateway's status on our prefix means requests are answered twice, each time
// from a different state (unless they form a cluster: cluster.enabled); the same client
// id means the two take the broker connection from each other. Say so plainly.
bool Gateway::on_status(const Message& m) {
  if (m.topic != status_topic_) return false;
  json::Document doc;
  (void)mapping::parse_untrusted_json(m.payload, doc);  // a refused one stays null
  if (doc.HasParseError() || !doc.IsObject()) return true;
  const auto instance = string_field(doc, "instance");
  if (instance.empty() || instance == instance_) return true;
  const auto state = string_field(doc, "state");
  const auto client_id = string_field(doc, "client_id");
  const bool same_id = client_id == config_.broker.client_id;
  const auto where =
      "instance " + instance + " on host " + string_field(doc, "host") + ", pid " +
      std::to_string(doc.HasMember("pid") && doc["pid"].IsInt64() ? doc["pid"].GetInt64() : 0);
  if (same_id && state != "online" && m.retained) {
    // A previous run of ours that crashed, or a live gateway we just took the id from.
    std::lock_guard<std::mutex> lock(why_mutex_);
    same_id_suspect_ = where;
  }
  if (state != "online") {
    const std::int64_t pid =
        doc.HasMember("pid") && doc["pid"].IsInt64() ? doc["pid"].GetInt64() : 0;
    if (same_id && !m.retained && string_field(doc, "host") == host_name() && pid > 0 &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      // Our predecessor on this host died without a clean stop (a crash, kill -9); the
      // broker sends its Will once it notices, which may be after we took over.
      spdlog::info("gateway: the previous run (instance {}, pid {}) ended without a clean stop",
                   instance, pid);
    } else if (same_id && !m.retained) {
      spdlog::error(
          "gateway: another gateway (instance {}) with this gateway's broker.client_id "
          "\"{}\" was just disconnected by the broker because this one connected: two "
          "gateways with one client id keep knocking each other off. Give each its own "
          "broker.client_id",
          instance, client_id);
    }
    return true;
  }
  ++other_gateways_seen_;
  const std::int64_t now = steady_ms();
  // Instance ids come from a topic: keep only a few, so that made-up ones cannot grow this.
  if (other_gateways_logged_.size() >= kOtherGatewaysRemembered &&
      !other_gateways_logged_.count(instance)) {
    other_gateways_logged_.clear();
  }
  auto& last = other_gateways_logged_[instance];
  if (last != 0 && now - last < kOtherGatewayLogEveryMs) return true;
  last = now;
  if (same_id) {
    spdlog::error(
        "gateway: another gateway ({}) uses this gateway's broker.client_id \"{}\": the "
        "broker gives the id to whichever connects last, so the two keep knocking each "
        "other off. Give each gateway its own broker.client_id",
        where, client_id);
  } else if (config_.cluster.enabled) {
    // A member of the cluster: the shared subscriptions give each request to one of us.
    spdlog::info("gateway: another gateway of the cluster ({}, client id \"{}\") is online", where,
                 client_id);
  } else {
    spdlog::error(
        "gateway: another gateway ({}, client id \"{}\") answers requests on prefix "
        "\"{}\" too: every request gets two answers, each from its own state. Stop one "
        "of them, or give each its own topics.prefix{}",
        where, client_id, core_->tree().prefix(),
        m.retained ? " (if that gateway is gone, this retained status is stale)" : "");
  }
  return true;
}

void Gateway::on_message(Message&& message) {
  message.received = SteadyClock::now();
  switch (core_->fast_path(message)) {
    case FastResult::handled:
      return;
    case FastResult::deferred:
      message.deferred = true;
      break;
    case FastResult::not_mine:
      break;
  }
  const std::string_view owner = owner_of(message.topic, core_->tree().prefix());
  const bool request = !owner.empty() && core_->is_request(message.topic);
  if (request) {
    switch (limiter_.check(owner, steady_us())) {
      case RateLimiter::Verdict::admit:
        break;
      case RateLimiter::Verdict::refuse:
        return refuse(message, owner);
      case RateLimiter::Verdict::drop:
        shed_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto full = [this] {
      return inbox_.count() >= config_.requests.queue_capacity ||
             inbox_.bytes() >= config_.requests.queue_max_bytes;
    };
    if (full()) {
      // QoS 1 is never dropped, nor a message the bridge's fast path is waiting for.
      auto droppable = [](const Message& m) { return m.qos == 0 && !m.deferred; };
      if (!droppable(message)) {
        // Hold the link's thread, so that the broker keeps the rest meanwhile.
        wake_.notify_one();  // a wake put off to the batch's end is due now
        space_.wait(lock, [this, &full] { return stopping_ || !full(); });
        if (stopping_) return;
      } else if (inbox_.drop_one(droppable)) {
        ++dropped_;  // QoS 0: the oldest of the longest queue goes first
      } else {
        ++dropped_;
        return;
      }
    }
    inbox_.push(std::string(owner), std::move(message));
  }
  if (in_batch_) {
    wake_at_batch_end_ = true;
  } else {
    wake_.notify_one();
  }
}

void Gateway::on_batch_end() {
  in_batch_ = false;
  if (wake_at_batch_end_) {
    wake_at_batch_end_ = false;
    wake_.notify_one();
  }
}

// Over a user's rate: answered here, on the link's thread, so that a flood costs the loop
// nothing. Never remembered for dedup: the request was not run, a retry may run.
void Gateway::refuse(const Message& message, std::string_view uid) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  const auto& tree = core_->tree();
  const std::string_view uri =
      std::string_view(message.topic).substr(tree.prefix().size() + 5 + uid.size() + 1);
  // Within the largest limits a config may set, the mirror is a valid topic (the running
  // limits belong to the loop thread).
  if (message.topic.size() > kMaxRequestTopicBytes ||
      topics::level_count(message.topic) > kMaxRequestTopicLevels) {
    return;
  }
  std::string msg_id;
  if (auto parsed = topics::parse_uri(uri)) msg_id = parsed->msg_id;
  if (msg_id.size() > kMaxMsgIdBytes) msg_id.clear();
  const auto limits = limiter_.limits();
  const auto payload = response_payload(
      msg_id, failure(ErrorCode::rate_limited,
                      std::string(uid) + " sends requests faster than requests.rate_per_s (" +
                          std::to_string(static_cast<long long>(limits.rate_per_s)) +
                          "/s, bursts of " + std::to_string(static_cast<long long>(limits.burst)) +
                          "): this one was not run; slow down"));
  publish(tree.response(uid, uri), payload, 1, false);  // through the topic check, as every answer
}

void Gateway::on_drained() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    drained_ = true;
  }
  wake_.notify_one();
}

std::size_t Gateway::in_flight() const {
  return link_->in_flight();
}

bool Gateway::publish(const std::string& topic, std::string_view payload, int qos, bool retain) {
  // Every topic is checked before it reaches the encoder: a topic the broker refuses
  // would cost the link its connection.
  if (auto why = topics::publish_topic_error(topic)) {
    const auto n = refused_topics_.fetch_add(1, std::memory_order_relaxed);
    if (n < 10 || n % 1000 == 0) {
      spdlog::warn("gateway: not published, the broker would refuse the topic: {} ({} so far)",
                   *why, n + 1);
    }
    return false;
  }
  return link_->publish(topic, payload, qos, retain);
}

void Gateway::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void Gateway::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  space_.notify_all();
}

bool Gateway::live(std::string* why) const {
  const auto idle = steady_ms() - last_turn_ms_.load(std::memory_order_relaxed);
  if (idle <= kLoopStallMs) return true;
  *why = "the gateway loop has not turned for " + std::to_string(idle / 1000) + " s";
  return false;
}

bool Gateway::ready(std::string* why) const {
  if (ready_.load(std::memory_order_acquire)) return true;
  std::lock_guard<std::mutex> lock(why_mutex_);
  *why = not_ready_why_;
  return false;
}

std::optional<std::string> Gateway::metrics() {
  auto rendered = std::make_shared<std::promise<std::string>>();
  auto result = rendered->get_future();
  post([this, rendered] {
    MetricsWriter out;
    write_metrics(out);
    core_->write_all_metrics(out);
    rendered->set_value(out.text());
  });
  if (result.wait_for(kMetricsDeadline) != std::future_status::ready) return std::nullopt;
  try {
    return result.get();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<OpsProbe::Answer> Gateway::on_loop(std::function<Answer()> work) {
  auto done = std::make_shared<std::promise<Answer>>();
  auto result = done->get_future();
  post([work = std::move(work), done] { done->set_value(work()); });
  if (result.wait_for(kMetricsDeadline) != std::future_status::ready) return std::nullopt;
  try {
    return result.get();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<ApiOutcome> Gateway::run_on_loop(std::function<ApiOutcome()> work) {
  auto done = std::make_shared<std::promise<ApiOutcome>>();
  auto result = done->get_future();
  post([this, work = std::move(work), done] {
    auto outcome = std::make_shared<ApiOutcome>(work());
    // The answer waits for the turn's commit and messages, as an MQTT answer does.
    core_->after_commit([done, outcome] { done->set_value(std::move(*outcome)); });
  });
  if (result.wait_for(kMetricsDeadline) != std::future_status::ready) return std::nullopt;
  try {
    return result.get();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<OpsProbe::Answer> Gateway::kick(const std::string& uid) {
  return on_loop([this, uid] {
    auto doc = json::object();
    json::set(doc, "uid", uid);
    json::set_bool(doc, "had_session", rtm_->kick(uid));
    spdlog::info("ops: {} kicked over HTTP", uid);
    return Answer{200, json::dump(doc)};
  });
}

std::optional<OpsProbe::Answer> Gateway::authorize(const AuthzQuestion& question) {
  if (!config_.enforcement.http_authz) {
    return Answer{404, R"({"error":"enforcement.http_authz is off"})"};
  }
  return on_loop([this, question] {
    auto doc = json::object();
    json::set(doc, "result", rtm_->authorize(question));
    return Answer{200, json::dump(doc)};
  });
}

namespace {

// Network text for one log line: printable ASCII, at most 64 bytes.
std::string loggable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 64)) out += c >= 0x20 && c < 0x7F ? c : '?';
  return text.size() > 64 ? out + "..." : out;
}

bool same_address(const std::string& a, const std::string& b) {
  unsigned char x[16] = {}, y[16] = {};
  for (const int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, a.c_str(), x) == 1 && inet_pton(family, b.c_str(), y) == 1) {
      return std::memcmp(x, y, sizeof x) == 0;
    }
  }
  return false;
}

}  // namespace

std::optional<OpsProbe::Answer> Gateway::rabbitmq(rabbitmq::Endpoint endpoint,
                                                  const std::string& body,
                                                  const std::string& peer) {
  if (!rabbit_) return Answer{404, "deny"};
  const auto& peers = config_.enforcement.rabbitmq_peers;
  if (!peers.empty() && std::none_of(peers.begin(), peers.end(),
                                     [&](const std::string& p) { return same_address(p, peer); })) {
    ++rabbit_refused_peers_;
    spdlog::warn("rabbitmq: refused a request from {}, not in enforcement.rabbitmq_peers",
                 loggable(peer));
    return Answer{403, "deny"};
  }
  // Topic questions need the grants, which live on the loop thread.
  const rabbitmq::TopicDecider decide = [this](const std::string& username,
                                               const std::string& topic,
                                               bool write) -> std::optional<bool> {
    auto done = std::make_shared<std::promise<bool>>();
    auto result = done->get_future();
    post([this, done, question = AuthzQuestion{username, topic, write}] {
      done->set_value(rtm_->authorize_rabbitmq(question));
    });
    if (result.wait_for(kMetricsDeadline) != std::future_status::ready) return std::nullopt;
    return result.get();
  };
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  const auto decision = rabbit_->answer(endpoint, body, now_s, decide);
  const int kind = decision.allow ? 0 : decision.malformed ? 2 : 1;
  ++rabbit_answers_[static_cast<std::size_t>(endpoint)][static_cast<std::size_t>(kind)];
  if (decision.malformed) {
    spdlog::warn("rabbitmq: malformed {} request from {}: {}", rabbitmq::endpoint_name(endpoint),
                 loggable(peer), loggable(decision.why));
  } else if (!decision.allow) {
    // Refused logins and topics close the client's connection: worth a line.
    spdlog::info("rabbitmq: {} denied: {}", rabbitmq::endpoint_name(endpoint),
                 loggable(decision.why));
  } else {
    spdlog::debug("rabbitmq: {} allowed: {}", rabbitmq::endpoint_name(endpoint),
                  loggable(decision.why));
  }
  return Answer{200, decision.allow ? "allow" : "deny"};
}

void Gateway::write_metrics(MetricsWriter& out) const {
  out.gauge("rtm_build_info", "The gateway's version", 1, {{"version", RTM_VERSION}});
  out.gauge("rtm_start_time_seconds", "When this gateway started (Unix time)",
            static_cast<double>(started_at_ms_) / 1000.0);
  out.gauge("rtm_broker_connected", "1 while connected to the broker and subscribed",
            ready_.load() ? 1 : 0);
  const auto link = link_->stats();
  out.counter("rtm_broker_connects_total", "Connections to the broker made",
              static_cast<double>(link.connects));
  out.counter("rtm_broker_connection_lost_total", "Broker connections that dropped",
              static_cast<double>(link.connection_lost));
  out.counter("rtm_broker_early_closes_total",
              "Broker connections closed by the broker soon after connecting (a client id "
              "take-over looks like this)",
              static_cast<double>(link.early_closes));
  out.gauge("rtm_broker_in_flight",
            "Messages handed to the broker link and not yet sent or acknowledged",
            static_cast<double>(link_->in_flight()));
  out.family("rtm_rate_limited_total", MetricsWriter::Type::counter,
             "Requests over their user's rate: answered RATE_LIMITED, or dropped unanswered past "
             "requests.refusals_per_s");
  out.sample(static_cast<double>(refused_.load()), {{"action", "answered"}});
  out.sample(static_cast<double>(shed_.load()), {{"action", "dropped"}});
  if (rabbit_) {
    out.family("rtm_rabbitmq_auth_answers_total", MetricsWriter::Type::counter,
               "Questions of RabbitMQ's HTTP auth backend answered, by endpoint and result");
    for (std::size_t e = 0; e < rabbitmq::kEndpoints; ++e) {
      const std::string endpoint(rabbitmq::endpoint_name(static_cast<rabbitmq::Endpoint>(e)));
      static constexpr const char* kResults[] = {"allow", "deny", "malformed"};
      for (std::size_t r = 0; r < 3; ++r) {
        out.sample(static_cast<double>(rabbit_answers_[e][r].load()),
                   {{"endpoint", endpoint}, {"result", kResults[r]}});
      }
    }
    out.counter("rtm_rabbitmq_auth_refused_peers_total",
                "RabbitMQ auth requests from addresses not in enforcement.rabbitmq_peers",
                static_cast<double>(rabbit_refused_peers_.load()));
  }
  out.counter("rtm_publish_refused_topics_total",
              "Messages not published because the broker would refuse their topic",
              static_cast<double>(refused_topics_.load()));
  out.counter("rtm_broker_skipped_total",
              "Messages from the broker read past and not taken (over broker.max_message_bytes, "
              "or not decodable)",
              static_cast<double>(link.skipped));
  out.gauge("rtm_rate_limited_users", "Users with a request bucket (recently active)",
            static_cast<double>(limiter_.users()));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out.gauge("rtm_inbound_queued", "Messages waiting for the gateway loop",
              static_cast<double>(inbox_.count()));
    out.gauge("rtm_inbound_queued_bytes", "Bytes of the messages waiting for the gateway loop",
              static_cast<double>(inbox_.bytes()));
  }
  out.counter("rtm_other_gateways_seen_total",
              "Status messages of other gateways online on this prefix",
              static_cast<double>(other_gateways_seen_));
  out.family("rtm_config_reloads_total", MetricsWriter::Type::counter,
             "Configuration reloads (SIGHUP), applied or refused");
  out.sample(static_cast<double>(reloads_.load()), {{"result", "applied"}});
  out.sample(static_cast<double>(reloads_refused_.load()), {{"result", "refused"}});
}

void Gateway::reload(Config next) {
  post([this, next = std::move(next)] { apply_reload(next); });
}

void Gateway::apply_reload(const Config& next) {
  for (const auto& key : restart_only_changes(config_, next)) {
    spdlog::warn(
        "config: {} changed; it takes effect only after a restart (the running value "
        "stays)",
        key);
  }
  if (next.log.level != config_.log.level) set_log_level(next.log.level);
  limiter_.set_limits(rate_limits(next.requests));
  config_.log.level = next.log.level;
  config_.log.stats_interval_s = next.log.stats_interval_s;

  const auto before = core_->subscriptions();
  core_->reload(next);
  const auto after = core_->subscriptions();
  std::vector<std::string> added, removed;
  const std::set<std::string> old_set(before.begin(), before.end());
  const std::set<std::string> new_set(after.begin(), after.end());
  for (const auto& f : after) {
    if (!old_set.count(f)) added.push_back(f);
  }
  for (const auto& f : before) {
    if (!new_set.count(f)) removed.push_back(f);
  }
  if (!removed.empty()) link_->unsubscribe(removed);
  if (!added.empty()) link_->subscribe(added, 1);
  reloads_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info(
      "config: reloaded (log level {}, {} mapping rules, {} HTTP backends, {} operators; "
      "{} filters added, {} removed)",
      next.log.level, next.mapping.rules.size() + next.mapping.presence.size(),
      next.http_backends.size(), next.ops.uids.size(), added.size(), removed.size());
}

void Gateway::log_stats() {
  const auto& c = core_->counters();
  spdlog::info(
      "stats: requests={} ok={} errors={} replayed={} publish_failed={} dropped_inbound={}",
      c.requests, c.answered_ok, c.answered_error, c.replayed, c.publish_failed, c.dropped_inbound);
  for (const auto& line : core_->stats_lines()) spdlog::info("stats: {}", line);
}

// No turn could begin: requests are answered UNAVAILABLE at once (Core::on_message knows),
// other messages wait in `parked` (the oldest dropped and counted past the inbound queue's
// capacity), and tasks wait in the task queue: they may change the state.
void Gateway::park(std::deque<Message>& batch, std::deque<std::function<void()>>& tasks,
                   std::deque<Message>& parked) {
  for (auto& message : batch) {
    if (core_->is_request(message.topic)) {
      core_->on_message(message);
    } else {
      parked.push_back(std::move(message));
    }
  }
  while (parked.size() > config_.requests.queue_capacity) {
    parked.pop_front();
    ++core_->counters().dropped_inbound;
  }
  if (tasks.empty()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) tasks_.push_front(std::move(*it));
  tasks.clear();
}

std::shared_ptr<StateStore> Gateway::make_store() {
  if (config_.state.backend != "redis") return make_state_store(config_);
  auto store = std::make_shared<RedisStore>(config_, host_name() + "/" + instance_);
  set_store_limits(*store, config_);
  core_->add_metrics_source(store);
  return store;
}

void Gateway::run() {
  link_->set_drain_mark(config_.mapping.max_in_flight / 2);
  link_->subscribe(core_->subscriptions(), 1);
  link_->start(this);
  auto next_stats = SteadyClock::now() + std::chrono::seconds(config_.log.stats_interval_s);
  std::deque<Message> batch;
  std::deque<std::function<void()>> tasks;
  // Messages that must not be lost or refused while no turn can begin (presence, device
  // topics, peer messages): they wait for the next turn that begins.
  std::deque<Message> parked;
  auto next_drop_log = SteadyClock::now();
  bool turn = core_->begin_turn();
  while (true) {
    last_turn_ms_.store(steady_ms(), std::memory_order_relaxed);
    // Timers wait while the broker link is down: what they publish (token expiries after a
    // restart, module deadlines) would be lost. They fire as soon as it is back. They also
    // wait while no turn began (the shared state is out of reach).
    const bool linked = link_->connected();
    const std::int64_t next_due = !turn    ? core_->now_ms() + kUnavailableRetryMs
                                  : linked ? core_->run_due()
                                           : core_->now_ms() + kUnlinkedPollMs;
    // The last turn's state changes (and the timers' just now) become durable before
    // their answers and events go out.
    core_->end_turn();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const bool hold = core_->backpressured();
      // Without a turn, tasks wait for the next try (kUnavailableRetryMs), not a wake-up.
      auto ready = [this, hold, turn] {
        return stopping_ || drained_ || (turn && !tasks_.empty()) || (!hold && !inbox_.empty());
      };
      // Held back, the loop still looks often: the link may drain without telling us
      // (for example when the connection drops and its counters reset).
      std::int64_t wait_ms = hold ? 10 : 1000;
      if (next_due >= 0) {
        wait_ms =
            std::min<std::int64_t>(wait_ms, std::max<std::int64_t>(0, next_due - core_->now_ms()));
      }
      wake_.wait_for(lock, std::chrono::milliseconds(wait_ms), ready);
      if (stopping_) break;
      drained_ = false;
      if (!hold) inbox_.take(kTakePerUser, kTakePerTurn, batch);
      tasks.swap(tasks_);
      core_->counters().dropped_inbound += dropped_;
      dropped_ = 0;
    }
    const auto now = SteadyClock::now();
    if (core_->counters().dropped_inbound > dropped_logged_ && now >= next_drop_log) {
      spdlog::warn("gateway: inbound queue full (capacity {}): {} messages dropped so far",
                   config_.requests.queue_capacity, core_->counters().dropped_inbound);
      dropped_logged_ = core_->counters().dropped_inbound;
      next_drop_log = now + std::chrono::seconds(5);
    }
    if (!batch.empty()) space_.notify_all();
    // What the turn publishes leaves with one wake-up of the link's thread.
    struct LinkBatch {
      BrokerLink& link;
      explicit LinkBatch(BrokerLink& l) : link(l) { link.begin_batch(); }
      ~LinkBatch() { link.end_batch(); }
    } link_batch(*link_);
    turn = core_->begin_turn();
    if (turn) {
      for (auto& message : parked) core_->on_message(message);
      parked.clear();
      for (auto& message : batch) core_->on_message(message);
      for (auto& task : tasks) {
        try {
          task();
        } catch (const std::exception& e) {
          spdlog::error("gateway: posted task failed: {}", e.what());
        }
      }
      tasks.clear();
    } else {
      park(batch, tasks, parked);
    }
    batch.clear();
    core_->run_idle_work();
    if (config_.log.stats_interval_s > 0 && SteadyClock::now() >= next_stats) {
      log_stats();
      next_stats = SteadyClock::now() + std::chrono::seconds(config_.log.stats_interval_s);
    }
  }
  core_->end_turn();  // what the last turn changed, before the goodbye
  spdlog::info("gateway: stopping");
  ready_.store(false);
  {
    std::lock_guard<std::mutex> lock(why_mutex_);
    not_ready_why_ = "stopping";
  }
  // A clean DISCONNECT sends no Will: say offline ourselves, and give it a moment to leave.
  if (link_->connected() &&
      link_->publish(status_topic_, status_payload(false, "stopped"), 1, true)) {
    const auto deadline = SteadyClock::now() + kGoodbyeDeadline;
    while (link_->in_flight() > 0 && link_->connected() && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  link_->stop();
  log_stats();
}

}  // namespace rtm::gateway
