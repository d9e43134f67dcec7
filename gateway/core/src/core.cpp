#include "rtm/gateway/core.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "rtm/gateway/logging.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::gateway {
namespace {

// FNV-1a: a cheap fingerprint to tell a redelivery from a reused msg_id.
std::uint64_t fingerprint(std::string_view a, std::string_view b) {
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(a);
  mix(b);
  return h;
}

// The raw msg_id of a URI that did not parse, so that even that error answer carries
// it when it is plain text. Empty when there is none or it needs decoding.
std::string best_effort_msg_id(std::string_view uri) {
  const auto q = uri.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = uri.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    if (pair.rfind("msg_id=", 0) == 0) {
      const auto value = pair.substr(7);
      for (char c : value) {
        if (c == '%' || c == '#' || static_cast<unsigned char>(c) < 0x21 ||
            static_cast<unsigned char>(c) > 0x7e) {
          return {};
        }
      }
      return std::string(value.substr(0, 128));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

Clock system_clock() {
  return [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

std::string response_payload(const std::string& msg_id, const Outcome<json::Document>& outcome) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("msg_id");
  // A msg_id or message may hold bytes a client sent: never let them make the answer
  // invalid UTF-8 (and so invalid JSON for strict readers).
  json::write_string(w, topics::to_valid_utf8(msg_id));
  if (outcome.ok()) {
    w.Key("code");
    w.Int(0);
    w.Key("result");
    outcome.value().Accept(w);
  } else {
    w.Key("code");
    w.Int(static_cast<int>(outcome.error().code));
    w.Key("error");
    json::write_string(w, error_name(outcome.error().code));
    w.Key("message");
    json::write_string(w, topics::to_valid_utf8(outcome.error().message));
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Core::Core(const Config& config, Outbox& outbox, Clock clock)
    : config_(config),
      outbox_(outbox),
      clock_(std::move(clock)),
      tree_(config.topics.prefix),
      dedup_(static_cast<std::int64_t>(config.requests.dedup_window_s) * 1000,
             config.requests.dedup_max_entries, config.requests.dedup_max_bytes,
             config.requests.dedup_max_bytes_per_uid) {}

Core::~Core() = default;

void Core::set_loop_filters(const std::string& owner, std::vector<std::string> filters) {
  std::lock_guard lock(loop_filters_mutex_);
  loop_filters_by_owner_[owner] = std::move(filters);
  std::vector<std::string> all;
  for (const auto& [name, list] : loop_filters_by_owner_)
    all.insert(all.end(), list.begin(), list.end());
  loop_filters_ =
      all.empty() ? nullptr : std::make_shared<const std::vector<std::string>>(std::move(all));
}

bool Core::loop_must_see(std::string_view topic) const {
  std::shared_ptr<const std::vector<std::string>> filters;
  {
    std::lock_guard lock(loop_filters_mutex_);
    filters = loop_filters_;
  }
  if (!filters) return false;
  for (const auto& f : *filters) {
    if (topics::filter_matches(f, topic)) return true;
  }
  return false;
}

std::string shared_filter(std::string_view group, std::string_view filter) {
  std::string out = "$share/";
  out.append(group);
  out += '/';
  out.append(filter);
  return out;
}

std::vector<std::string> Core::subscriptions() const {
  // cluster.* is restart-only: reload() never changes it, so a reload's diff of the
  // filters compares like with like.
  const auto& cluster = config_.cluster;
  auto wrap = [&cluster](std::string f, bool per_gateway) {
    return cluster.enabled && !per_gateway ? shared_filter(cluster.group, f) : f;
  };
  std::vector<std::string> filters{wrap(tree_.request_filter(), false)};
  for (const auto& handler : message_handlers_) {
    const bool per_gateway = handler->per_gateway();
    for (auto& f : handler->filters()) filters.push_back(wrap(std::move(f), per_gateway));
  }
  return filters;
}

void Core::add_operation(Operation op) {
  auto name = op.name;
  auto existing = operations_.find(name);
  if (existing != operations_.end()) {
    op.metrics_slot = existing->second.metrics_slot;
  } else {
    op.metrics_slot = slot_names_.size();
    slot_names_.push_back(name);
    answers_by_code_.emplace_back();
  }
  operations_[name] = std::move(op);
}

void Core::count_answer(const Answered& how, ErrorCode code) {
  auto& by_code = answers_by_code_.at(how.slot);
  const auto index = static_cast<std::size_t>(code);
  if (by_code.size() <= index) by_code.resize(index + 1);
  ++by_code[index];
  if (how.received != std::chrono::steady_clock::time_point{}) {
    latency_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - how.received)
                         .count());
  }
}

void Core::reload(const Config& next) {
  // Only what restart_only_changes does not list; the rest keeps its running value.
  config_.log.level = next.log.level;
  config_.log.stats_interval_s = next.log.stats_interval_s;
  config_.auth.token_warn_before_s = next.auth.token_warn_before_s;
  config_.auth.max_token_ttl_s = next.auth.max_token_ttl_s;
  config_.requests.max_payload_bytes = next.requests.max_payload_bytes;
  config_.requests.dedup_window_s = next.requests.dedup_window_s;
  config_.requests.dedup_max_entries = next.requests.dedup_max_entries;
  config_.requests.max_topic_bytes = next.requests.max_topic_bytes;
  config_.requests.max_topic_levels = next.requests.max_topic_levels;
  config_.requests.max_msg_id_bytes = next.requests.max_msg_id_bytes;
  config_.requests.dedup_max_bytes = next.requests.dedup_max_bytes;
  config_.requests.dedup_max_bytes_per_uid = next.requests.dedup_max_bytes_per_uid;
  config_.requests.rate_per_s = next.requests.rate_per_s;
  config_.requests.burst = next.requests.burst;
  config_.requests.refusals_per_s = next.requests.refusals_per_s;
  dedup_.set_limits(static_cast<std::int64_t>(next.requests.dedup_window_s) * 1000,
                    next.requests.dedup_max_entries, next.requests.dedup_max_bytes,
                    next.requests.dedup_max_bytes_per_uid);
  config_.limits = next.limits;
  config_.presence = next.presence;
  config_.mapping.rules = next.mapping.rules;
  config_.mapping.presence = next.mapping.presence;
  config_.mapping.compiled = next.mapping.compiled;
  config_.modules.timeout_ms = next.modules.timeout_ms;
  config_.modules.max_pending = next.modules.max_pending;
  config_.modules.max_pending_per_user = next.modules.max_pending_per_user;
  config_.modules.max_result_bytes = next.modules.max_result_bytes;
  config_.modules.require_login = next.modules.require_login;
  config_.http_backends = next.http_backends;
  config_.ops.uids = next.ops.uids;
  // Metadata limits apply to the next calls; stored metadata above them stays.
  config_.storage = next.storage;
  // Inbox limits apply to the next messages; inbox.offline changes the handler's filter.
  config_.inbox = next.inbox;
  for (auto& part : reloadables_) part->reload(config_);
}

void Core::write_metrics(MetricsWriter& out) const {
  out.family("rtm_requests_total", MetricsWriter::Type::counter,
             "Requests answered, by operation and result code");
  for (std::size_t slot = 0; slot < slot_names_.size(); ++slot) {
    const auto& by_code = answers_by_code_[slot];
    for (std::size_t code = 0; code < by_code.size(); ++code) {
      if (by_code[code] == 0) continue;
      out.sample(static_cast<double>(by_code[code]),
                 {{"op", slot_names_[slot]}, {"code", error_name(static_cast<ErrorCode>(code))}});
    }
  }
  out.histogram("rtm_request_duration_seconds",
                "Time from taking a request off the broker link to publishing its answer",
                latency_);
  out.counter("rtm_requests_replayed_total",
              "Repeated requests answered from the dedup window, not executed again",
              static_cast<double>(counters_.replayed));
  out.counter("rtm_inbound_dropped_total",
              "QoS 0 messages dropped because the gateway's inbound queue was full",
              static_cast<double>(counters_.dropped_inbound));
  out.counter("rtm_publish_failed_total", "Messages the broker link refused to queue",
              static_cast<double>(counters_.publish_failed));
  out.gauge("rtm_dedup_entries", "Answers kept in the dedup window",
            static_cast<double>(dedup_.size()));
  out.gauge("rtm_dedup_bytes", "Bytes of keys and answers kept in the dedup window",
            static_cast<double>(dedup_.bytes()));
  out.counter("rtm_dedup_evicted_total",
              "Answers dropped from the dedup window early to keep it in its byte bounds",
              static_cast<double>(dedup_.evicted()));
  out.gauge("rtm_timers", "Timers scheduled (token expiries, module deadlines, ...)",
            static_cast<double>(timers_.size()));
}

void Core::write_all_metrics(MetricsWriter& out) const {
  write_metrics(out);
  for (const auto& source : metrics_sources_) source->write_metrics(out);
}

bool Core::is_operator(const std::string& uid) const {
  if (uid == kServerCaller) return true;
  const auto& ops = config_.ops.uids;
  return std::find(ops.begin(), ops.end(), uid) != ops.end();
}

bool Core::has_live_session(const std::string& uid) {
  return sessions_ && sessions_->has_live_session(uid);
}

void Core::flush_barriers() {
  if (in_barrier_ || barriers_.empty()) return;
  in_barrier_ = true;
  for (auto& b : barriers_) b->flush(*this);
  in_barrier_ = false;
}

bool Core::publish(const std::string& topic, std::string_view payload, int qos, bool retain) {
  flush_barriers();
  if (durability_) {
    held_.push_back({topic, std::string(payload), qos, retain});
    return true;
  }
  if (outbox_.publish(topic, payload, qos, retain)) return true;
  ++counters_.publish_failed;
  return false;
}

void Core::send(const std::string& topic, std::string_view payload, int qos, bool retain) {
  if (!outbox_.publish(topic, payload, qos, retain)) ++counters_.publish_failed;
}

void Core::set_durability(std::shared_ptr<Durability> durability) {
  durability_ = std::move(durability);
  if (!durability_) return;
  const std::int64_t now = clock_();
  const std::int64_t window_ms = static_cast<std::int64_t>(config_.requests.dedup_window_s) * 1000;
  for (auto& a : durability_->stored_answers(now - window_ms)) {
    dedup_.remember(a.uid, a.msg_id, a.fingerprint, std::move(a.payload), a.at_ms);
  }
}

bool Core::begin_turn() {
  if (!durability_) return true;
  std::vector<StoredAnswer> answers;
  turn_ok_ = durability_->begin_turn(&answers);
  // Answers other gateways gave: a redelivered request is answered from them.
  for (auto& a : answers) {
    dedup_.remember(a.uid, a.msg_id, a.fingerprint, std::move(a.payload), a.at_ms);
  }
  return turn_ok_;
}

bool Core::is_request(const std::string& topic) const {
  const auto& prefix = tree_.prefix();
  return topic.size() > prefix.size() + 5 && topic.compare(0, prefix.size(), prefix) == 0 &&
         topic.compare(prefix.size(), 5, "/req/") == 0;
}

void Core::end_turn() {
  flush_barriers();
  auto done = std::move(after_commit_);
  after_commit_.clear();
  if (!durability_) {
    for (auto& d : done) d();
    return;
  }
  // Messages published while the commit runs (a networked backend answers later) wait
  // for the next one: the order of messages stays the order of their changes.
  // (What a callback publishes from inside a commit that completes at once waits in held_
  // for the next turn's.)
  auto held = std::move(held_);
  held_.clear();
  auto answered = std::move(turn_answers_);
  turn_answers_.clear();
  durability_->commit([this, held = std::move(held), done = std::move(done),
                       answered = std::move(answered)](bool ok) {
    if (!ok && durability_->discards_failed_turns()) {
      // The turn did not happen (another gateway's turn came first): nothing it said may
      // go out, and a redelivery of its requests runs again.
      counters_.discarded_messages += held.size();
      for (const auto& [uid, msg_id] : answered) dedup_.forget(uid, msg_id);
    } else {
      // On a failed commit the messages still go out: the model serves on, and the backend
      // has logged and counted what a crash could now lose.
      for (const Held& m : held) send(m.topic, m.payload, m.qos, m.retain);
    }
    for (const auto& d : done) d();
  });
}

Outcome<json::Document> Core::invoke(const std::string& name, std::string_view params) {
  auto op = operations_.find(name);
  if (op == operations_.end()) {
    return failure(ErrorCode::unknown_operation, "unknown operation \"" + name + "\"");
  }
  const Answered how{op->second.metrics_slot, std::chrono::steady_clock::now()};
  auto outcome = [&]() -> Outcome<json::Document> {
    const topics::Uri uri{};
    auto merged = Params::merge(uri, params, topics::name_rules_for(config_.broker.profile));
    if (!merged) return merged.error();
    if (auto bad = merged->only(op->second.name, op->second.params)) return *bad;
    const std::string caller(kServerCaller);
    Call call{caller, uri, *merged, clock_()};
    try {
      return op->second.handle(call);
    } catch (const std::exception& e) {
      spdlog::error("operation {} for the server threw: {}", op->second.name, e.what());
    } catch (...) {
      spdlog::error("operation {} for the server threw a non-standard exception", name);
    }
    return failure(ErrorCode::internal, "internal error in " + op->second.name);
  }();
  ++(outcome ? counters_.answered_ok : counters_.answered_error);
  count_answer(how, outcome ? ErrorCode::ok : outcome.error().code);
  return outcome;
}

void Core::publish_user_event(const std::string& uid, std::string_view kind,
                              const json::Document& event) {
  publish(tree_.user_event(uid, kind), json::dump(event), 1, false);
}

std::int64_t Core::run_due() {
  timers_.run_due(clock_());
  return timers_.next_due();
}

void Core::on_message(const Message& message) {
  auto parsed = tree_.parse(message.topic);
  if (parsed && parsed->kind == topics::TopicKind::request) {
    handle_request(*parsed, message);
    return;
  }
  if (!parsed && answer_topic_without_uri(message)) return;
  for (auto& handler : message_handlers_) {
    if (handler->on_message(message)) return;
  }
  spdlog::debug("ignored message on {}", message.topic);
}

// "P/req/{uid}" or "P/req/{uid}/" carry no URI, so there is no mirrored topic; the
// answer goes to P/u/{uid}/res so that the sender still hears why nothing happened.
bool Core::answer_topic_without_uri(const Message& message) {
  const std::string request_root = tree_.prefix() + "/req/";
  if (message.topic.rfind(request_root, 0) != 0) return false;
  std::string uid = message.topic.substr(request_root.size());
  if (!uid.empty() && uid.back() == '/') uid.pop_back();
  ++counters_.requests;
  if (topics::name_error(uid) || uid.find('/') != std::string::npos) {
    spdlog::debug("request on {} has neither a valid uid nor a URI", message.topic);
    return true;
  }
  answer(uid, tree_.prefix() + "/u/" + uid + "/res", "",
         failure(ErrorCode::invalid_uri,
                 "the request topic has no URI after the uid, e.g. " +
                     tree_.request(uid, "ping?msg_id=1")),
         0, false, {kInvalidSlot, message.received});
  return true;
}

void Core::answer(const std::string& uid, const std::string& response_topic,
                  const std::string& msg_id, const Outcome<json::Document>& outcome,
                  std::uint64_t print, bool cache, Answered how) {
  auto payload = response_payload(msg_id, outcome);
  count_answer(how, outcome.ok() ? ErrorCode::ok : outcome.error().code);
  if (outcome.ok()) {
    ++counters_.answered_ok;
  } else {
    ++counters_.answered_error;
    spdlog::debug("request {} from {} failed: {} {}", response_topic, uid,
                  error_name(outcome.error().code), outcome.error().message);
  }
  if (cache) {
    const std::int64_t now = clock_();
    if (durability_) {
      durability_->remember_answer({uid, msg_id, print, payload, now});
      if (durability_->discards_failed_turns()) turn_answers_.emplace_back(uid, msg_id);
    }
    dedup_.remember(uid, msg_id, print, payload, now);
  }
  // Responses go at QoS 1: a lost answer would leave the caller waiting for its timeout.
  publish(response_topic, payload, 1, false);
}

void Core::handle_request(const topics::ParsedTopic& parsed, const Message& message) {
  ++counters_.requests;
  const std::string& uid = parsed.uid;
  const auto received =
      message.received == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now()
                                                                  : message.received;
  const auto& limits = config_.requests;
  const std::size_t levels = topics::level_count(message.topic);
  if (message.topic.size() > limits.max_topic_bytes || levels > limits.max_topic_levels) {
    // Its mirrored response topic would be longer still: answer on the fixed topic.
    if (topics::name_error(uid)) return;  // nowhere to answer; counted as a request
    std::string msg_id = best_effort_msg_id(parsed.uri);
    if (msg_id.size() > limits.max_msg_id_bytes) msg_id.clear();
    RequestLogScope log_scope(uid, msg_id);
    answer(uid, tree_.prefix() + "/u/" + uid + "/res", msg_id,
           failure(ErrorCode::topic_too_long,
                   "the request topic has " + std::to_string(message.topic.size()) + " bytes and " +
                       std::to_string(levels) + " levels, over requests.max_topic_bytes (" +
                       std::to_string(limits.max_topic_bytes) + ") or requests.max_topic_levels (" +
                       std::to_string(limits.max_topic_levels) + ")"),
           0, false, {kInvalidSlot, received});
    return;
  }
  const std::string response_topic = tree_.response(uid, parsed.uri);
  const std::uint64_t print = fingerprint(parsed.uri, message.payload);

  auto uri = topics::parse_uri(parsed.uri);
  std::string msg_id = uri.ok() ? uri->msg_id : best_effort_msg_id(parsed.uri);
  // A long msg_id is never echoed nor remembered, whatever else is wrong with the request:
  // it must not cost memory.
  const std::size_t msg_id_bytes = msg_id.size();
  if (msg_id_bytes > limits.max_msg_id_bytes) msg_id.clear();
  RequestLogScope log_scope(uid, msg_id);
  Answered how{kInvalidSlot, received};

  auto fail = [&](ErrorCode code, std::string text) {
    answer(uid, response_topic, msg_id, failure(code, std::move(text)), print, !msg_id.empty(),
           how);
  };

  if (auto why = topics::name_error(uid, "uid", topics::name_rules_for(config_.broker.profile))) {
    return fail(ErrorCode::invalid_name, *why);
  }
  if (!uri) return fail(ErrorCode::invalid_uri, uri.error().message);
  if (msg_id_bytes > limits.max_msg_id_bytes) {
    answer(uid, response_topic, "",
           failure(ErrorCode::invalid_parameter,
                   "msg_id has " + std::to_string(msg_id_bytes) +
                       " bytes, over requests.max_msg_id_bytes (" +
                       std::to_string(limits.max_msg_id_bytes) + ")"),
           print, false, how);
    return;
  }
  if (msg_id.empty()) {
    return fail(ErrorCode::missing_msg_id,
                "the request topic needs a msg_id query parameter, e.g. " +
                    tree_.request(uid, uri->path + "?msg_id=1"));
  }

  if (!turn_ok_) {
    // No turn: the shared state is out of reach, and a request must not run on a model
    // that may be behind it (nor be answered from a dedup cache that may be).
    answer(uid, response_topic, msg_id,
           failure(ErrorCode::unavailable,
                   "the gateway cannot reach its shared state; try again shortly"),
           print, false, how);
    return;
  }
  if (const auto* seen = dedup_.find(uid, msg_id, clock_())) {
    if (seen->fingerprint != print) {
      answer(uid, response_topic, msg_id,
             failure(ErrorCode::msg_id_reused,
                     "msg_id " + msg_id + " was used in the last " +
                         std::to_string(config_.requests.dedup_window_s) +
                         " s for a different request"),
             print, false, how);
      return;
    }
    ++counters_.replayed;
    if (!seen->pending) publish(response_topic, seen->response, 1, false);
    return;
  }

  if (message.payload.size() > config_.requests.max_payload_bytes) {
    return fail(ErrorCode::payload_too_large,
                "payload is " + std::to_string(message.payload.size()) + " bytes, over the limit of " +
                    std::to_string(config_.requests.max_payload_bytes));
  }
  if (uri->absolute) {
    how.slot = kModuleSlot;
    if (!absolute_handler_) {
      return fail(ErrorCode::no_route, "no module serves " + uri->scheme + "://" + uri->host);
    }
    if (config_.modules.require_login && !has_live_session(uid)) {
      return fail(ErrorCode::not_logged_in, uid + " has no live session: log in first");
    }
    Params none = Params::merge(topics::Uri{}, "").value();
    Call call{uid, *uri, none, clock_()};
    PendingRequest pending{uid, msg_id, response_topic, print, how.received};
    std::optional<Outcome<json::Document>> now;
    try {
      now = absolute_handler_(call, message.payload, pending);
    } catch (const std::exception& e) {
      spdlog::error("module request {} for {} threw: {}", uri->raw, uid, e.what());
      now = Outcome<json::Document>(failure(ErrorCode::internal, "internal error routing the request"));
    }
    if (now) {
      answer(uid, response_topic, msg_id, *now, print, true, how);
    } else {
      dedup_.remember(uid, msg_id, print, std::nullopt, clock_());  // a repeat waits for it
    }
    return;
  }
  auto op = operations_.find(uri->path);
  if (op == operations_.end()) {
    how.slot = kUnknownSlot;
    return fail(ErrorCode::unknown_operation, "unknown operation \"" + uri->path + "\"");
  }
  how.slot = op->second.metrics_slot;
  auto params =
      Params::merge(*uri, message.payload, topics::name_rules_for(config_.broker.profile));
  if (!params) return fail(params.error().code, params.error().message);
  if (auto bad = params->only(op->second.name, op->second.params)) {
    return fail(bad->code, bad->message);
  }
  if (op->second.needs_session && !has_live_session(uid)) {
    return fail(ErrorCode::not_logged_in, uid + " has no live session: log in first");
  }

  Call call{uid, *uri, *params, clock_()};
  Outcome<json::Document> outcome = failure(ErrorCode::internal, "operation did not answer");
  try {
    outcome = op->second.handle(call);
  } catch (const std::exception& e) {
    // A handler bug must not take the loop down; the caller learns something went wrong.
    spdlog::error("operation {} for {} threw: {}", op->second.name, uid, e.what());
    outcome = failure(ErrorCode::internal, "internal error in " + op->second.name);
  } catch (...) {
    spdlog::error("operation {} for {} threw a non-standard exception", op->second.name, uid);
    outcome = failure(ErrorCode::internal, "internal error in " + op->second.name);
  }
  answer(uid, response_topic, msg_id, outcome, print, true, how);
}

void Core::complete(const PendingRequest& p, const Outcome<json::Document>& outcome) {
  answer(p.uid, p.response_topic, p.msg_id, outcome, p.fingerprint, true, {kModuleSlot, p.received});
}

void Core::complete_raw(const PendingRequest& p, std::string_view result_json) {
  std::string payload = "{\"msg_id\":";
  {
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    json::write_string(w, p.msg_id);
    payload.append(buf.GetString(), buf.GetSize());
  }
  payload += ",\"code\":0,\"result\":";
  payload += result_json;
  payload += "}";
  ++counters_.answered_ok;
  count_answer({kModuleSlot, p.received}, ErrorCode::ok);
  const std::int64_t now = clock_();
  if (durability_) durability_->remember_answer({p.uid, p.msg_id, p.fingerprint, payload, now});
  dedup_.remember(p.uid, p.msg_id, p.fingerprint, payload, now);
  publish(p.response_topic, payload, 1, false);
}

void Core::run_idle_work() {
  for (auto& work : idle_work_) work->on_idle();
}

bool Core::backpressured() const {
  for (const auto& work : idle_work_) {
    if (work->holds_back()) return true;
  }
  return false;
}

std::vector<std::string> Core::stats_lines() const {
  std::vector<std::string> lines;
  for (const auto& source : stats_sources_) lines.push_back(source->stats_line());
  return lines;
}

void Core::post(std::function<void()> task) {
  if (task_queue_) {
    task_queue_->post(std::move(task));
  } else {
    task();
  }
}

void register_basic_operations(Core& core) {
  core.add_operation({"ping", false, {}, [](Call& call) -> Outcome<json::Document> {
                        auto result = json::object();
                        json::set_int(result, "time_ms", call.now_ms);
                        json::set(result, "version", RTM_VERSION);
                        json::set(result, "uid", call.uid);
                        return result;
                      }});
}

}  // namespace rtm::gateway
