#include "rtm/gateway/redis_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "rtm/gateway/log_entry.hpp"
#include "rtm/gateway/replica.hpp"

namespace rtm::gateway {

namespace {

// Takes the turn lease; when this gateway's version is behind, also the first entries it
// lacks (none when it has no version: it reloads everything).
// KEYS: turn, version, log. ARGV: token, lease ms, version held ("-1": none), last entry id
// applied ("": none), entries to return at most.
// Returns {0} (another gateway holds the turn), {1, version} or {1, version, entries}.
const redis::Script& begin_script() {
  static const auto script = redis::Script::from(R"lua(
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
if version == tonumber(ARGV[3]) then return {1, version} end
if ARGV[4] == '' then return {1, version, {}} end
return {1, version, redis.call('XRANGE', KEYS[3], '(' .. ARGV[4], '+', 'COUNT', ARGV[5])}
)lua");
  return script;
}

// Commits a turn, fenced: only while the lease is this turn's and the version the one the
// turn began on. Writes the rows, appends rows and answers to the log as one entry, bumps
// the version, trims the log to the retention and releases the lease.
// KEYS: turn, version, log, rows. ARGV: token, version, retention ms, gateway, number of
// rows, most entries kept, then field/value pairs: the rows ('' deletes) and then the
// answers.
// Returns {-1} (the lease is not ours), {-2, version} (the version moved), {0, version}
// (nothing to write; lease released) or {1, version, entry id}.
const redis::Script& commit_script() {
  static const auto script = redis::Script::from(R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
if version ~= tonumber(ARGV[2]) then return {-2, version} end
local rows_end = 7 + 2 * tonumber(ARGV[5])
local parts = {}
for i = 7, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if i < rows_end then
    if value == '' then redis.call('HDEL', KEYS[4], field)
    else redis.call('HSET', KEYS[4], field, value) end
  end
  parts[#parts + 1] = #field .. ':' .. field .. #value .. ':' .. value
end
if #parts == 0 then
  redis.call('DEL', KEYS[1])
  return {0, version}
end
version = version + 1
redis.call('SET', KEYS[2], version)
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
                      'v', tostring(version), 'by', ARGV[4], 'c', table.concat(parts))
redis.call('XTRIM', KEYS[3], 'MINID', '~', tostring(oldest))
redis.call('DEL', KEYS[1])
return {1, version, id}
)lua");
  return script;
}

// Releases the lease if this turn still holds it (a commit whose outcome is unknown).
const redis::Script& release_script() {
  static const auto script = redis::Script::from(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  return script;
}

redis::ConnectionOptions connection_options(const Config& config) {
  const auto& c = config.state.redis;
  auto endpoint = redis::parse_uri(c.uri);
  if (!endpoint) throw std::runtime_error("state.redis.uri: " + endpoint.error().message);
  redis::ConnectionOptions options;
  options.endpoint = *endpoint;
  if (!c.password.empty()) options.endpoint.password = c.password;
  options.connect_timeout = std::chrono::milliseconds(c.connect_timeout_ms);
  options.command_timeout = std::chrono::milliseconds(c.command_timeout_ms);
  return options;
}

double millis_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_array(const redis::Reply& r, std::size_t at_least) {
  return r.type == redis::Reply::Type::array && r.elements.size() >= at_least;
}

// The value of `name` in a stream entry's field list (nullptr when absent).
const std::string* entry_field(const redis::Reply& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].text == name) return &fields.elements[i + 1].text;
  }
  return nullptr;
}

}  // namespace

RedisStore::RedisStore(const Config& config, std::string gateway_id)
    : MemoryStore(config.limits),
      redis_(connection_options(config)),
      prefix_("{" + config.state.redis.key_prefix + "}:"),
      gateway_id_(std::move(gateway_id)),
      lease_ms_(config.cluster.turn_lease_ms),
      retention_ms_(config.cluster.log_retention_s * 1000),
      answer_window_ms_(static_cast<std::int64_t>(config.requests.dedup_window_s) * 1000) {
  track_rows(&keys_, true);  // presence states are shared between gateways, unlike on disk
  // Load now when Redis answers, so that start-up sees the sessions (their timers are armed
  // as after a restart); otherwise the first turn loads.
  if (begin_turn(&loaded_answers_)) {
    commit([](bool) {});
    spdlog::info("state: {} sessions, {} channels loaded from Redis (version {})", session_count(),
                 channel_count(), version_);
  } else if (redis_.credentials_refused() ||
             (last_failure_ && last_failure_->kind == redis::Failure::refused)) {
    // Credentials, or a key of ours holding something else: an operator must look.
    throw std::runtime_error("state.redis: Redis refused the gateway: " + last_failure_->message);
  } else {
    spdlog::warn("state: Redis does not answer yet; the first turn loads the state");
  }
}

RedisStore::~RedisStore() { track_rows(nullptr, false); }

bool RedisStore::take_lease(redis::Reply& reply) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::milliseconds(lease_ms_);
  auto wait = kWaitMin;
  token_ = gateway_id_ + ":" + std::to_string(++turn_number_);
  bool waited = false;
  for (;;) {
    auto r = redis_.eval(begin_script(), {key("turn"), key("version"), key("log")},
                         {token_, std::to_string(lease_ms_), std::to_string(version_), last_id_,
                          std::to_string(kCatchUpBatch)});
    if (!r) {
      ++counters_.unavailable;
      last_failure_ = r.error();
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_error_log_) {
        spdlog::error("state: Redis cannot be reached ({}): requests are answered UNAVAILABLE",
                      r.error().message);
        next_error_log_ = now + std::chrono::seconds(5);
      }
      return false;
    }
    if (is_array(*r, 2) && r->elements[0].integer == 1) {
      reply = std::move(*r);
      break;
    }
    if (!is_array(*r, 1) || r->elements[0].integer != 0) {
      ++counters_.unavailable;
      last_failure_ = {redis::Failure::refused, "unexpected answer from the turn script"};
      spdlog::error("state: {}", last_failure_->message);
      return false;
    }
    waited = true;
    ++counters_.lease_waits;
    if (std::chrono::steady_clock::now() >= deadline) {
      ++counters_.lease_timeouts;
      spdlog::warn("state: another gateway held the cluster's turn for over {} ms", lease_ms_);
      return false;
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, kWaitMax);
  }
  if (waited) counters_.lease_wait_ms += millis_since(start);
  return true;
}

bool RedisStore::begin_turn(std::vector<StoredAnswer>* answers) {
  if (in_turn_) return true;
  redis::Reply reply;
  if (!take_lease(reply)) return false;
  in_turn_ = true;
  ++counters_.turns;
  const std::int64_t target = reply.elements[1].integer;
  if (target == version_) return true;
  if (target == 0 && version_ > 0) {
    // Redis is empty (it lost its data: no persistence) while this model holds the state:
    // this turn writes the whole model back instead of loading nothing.
    spdlog::error(
        "state: Redis holds no state while this gateway holds version {} (Redis restarted "
        "without persistence?): writing this gateway's state back",
        version_);
    reseed_ = true;
    version_ = 0;
    last_id_ = "0-0";
    return true;
  }
  ChangeSet applied;
  bool ok = false;
  if (version_ >= 0 && target < version_) {
    spdlog::error(
        "state: the shared state went back from version {} to {} (Redis restarted without "
        "persistence, or restored from a backup?): reloading it",
        version_, target);
    ok = reload(target, applied, answers);
  } else if (version_ < 0 || last_id_.empty()) {
    ok = reload(target, applied, answers);
  } else {
    ok = catch_up(target, reply.elements.size() > 2 ? &reply.elements[2] : nullptr, applied,
                  answers);
  }
  if (!ok) {
    lost_turn("Redis failed while this gateway caught up");
    return false;
  }
  tell(applied);
  return true;
}

bool RedisStore::apply_entries(const redis::Reply& entries, std::int64_t& applied_version,
                               ChangeSet& applied, std::vector<StoredAnswer>* answers) {
  for (const auto& entry : entries.elements) {
    if (!is_array(entry, 2)) return false;
    const auto* v = entry_field(entry.elements[1], "v");
    const auto* c = entry_field(entry.elements[1], "c");
    if (v == nullptr || c == nullptr || *v != std::to_string(applied_version + 1)) return false;
    auto parsed = cluster::parse_entry(*c);
    if (!parsed) {
      spdlog::error("state: log entry {} does not decode: {}", entry.elements[0].text,
                    parsed.error().message);
      return false;
    }
    for (const auto& error : replica::apply_rows(*this, parsed->rows, &applied)) {
      ++counters_.bad_rows;
      spdlog::error("state: log entry {}: {}", entry.elements[0].text, error);
    }
    counters_.rows_applied += parsed->rows.size();
    ++counters_.entries_applied;
    if (answers != nullptr) {
      for (auto& a : parsed->answers) answers->push_back(std::move(a));
    }
    last_id_ = entry.elements[0].text;
    ++applied_version;
  }
  return true;
}

bool RedisStore::catch_up(std::int64_t target, const redis::Reply* first_batch, ChangeSet& applied,
                          std::vector<StoredAnswer>* answers) {
  std::int64_t v = version_;
  bool gap = first_batch != nullptr && !apply_entries(*first_batch, v, applied, answers);
  while (!gap && v < target) {
    auto r = redis_.command(
        {"XRANGE", key("log"), "(" + last_id_, "+", "COUNT", std::to_string(kCatchUpBatch)});
    if (!r) return false;
    gap = r->elements.empty() || !apply_entries(*r, v, applied, answers);
  }
  if (gap) {
    // Entries this gateway lacks were trimmed (it was away longer than the retention).
    spdlog::info("state: the change log no longer holds version {}: reloading the state", v + 1);
    return reload(target, applied, answers);
  }
  version_ = v;
  return true;
}

bool RedisStore::reload(std::int64_t target, ChangeSet& applied,
                        std::vector<StoredAnswer>* answers) {
  const auto start = std::chrono::steady_clock::now();
  // What the model held is "changed" too: listeners drop what no longer exists.
  for (const auto& uid : session_uids()) applied.sessions.insert(uid);
  for_each_member([&](const std::string& channel, const std::string& uid, const StoredMember&) {
    applied.members.emplace(channel, uid);
  });
  std::vector<replica::Row> rows;
  std::string cursor = "0";
  do {
    auto r = redis_.command({"HSCAN", key("rows"), cursor, "COUNT", std::to_string(kReloadBatch)});
    if (!r || !is_array(*r, 2)) return false;
    cursor = r->elements[0].text;
    const auto& pairs = r->elements[1].elements;
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
      rows.push_back({pairs[i].text, pairs[i + 1].text});
    }
  } while (cursor != "0");
  auto last = redis_.command({"XREVRANGE", key("log"), "+", "-", "COUNT", "1"});
  if (!last) return false;
  replica::clear(*this);
  // One call: a member's session may come in another HSCAN batch than the member.
  for (const auto& error : replica::apply_rows(*this, rows, &applied)) {
    ++counters_.bad_rows;
    spdlog::error("state: reload: {}", error);
  }
  counters_.rows_applied += rows.size();
  last_id_ = is_array(*last, 1) && is_array(last->elements[0], 1)
                 ? last->elements[0].elements[0].text
                 : "0-0";
  version_ = target;
  ++counters_.reloads;
  // The answers of the dedup window, so that a redelivered request is not run again here.
  if (answers != nullptr) {
    std::string from = std::to_string(std::max<std::int64_t>(0, wall_ms() - answer_window_ms_));
    for (;;) {
      auto r =
          redis_.command({"XRANGE", key("log"), from, "+", "COUNT", std::to_string(kCatchUpBatch)});
      if (!r) return false;
      for (const auto& entry : r->elements) {
        if (!is_array(entry, 2)) continue;
        if (const auto* c = entry_field(entry.elements[1], "c")) {
          if (auto parsed = cluster::parse_entry(*c)) {
            for (auto& a : parsed->answers) answers->push_back(std::move(a));
          }
        }
        from = "(" + entry.elements[0].text;
      }
      if (r->elements.size() < kCatchUpBatch) break;
    }
  }
  spdlog::info("state: loaded {} rows from Redis (version {}) in {:.1f} ms", rows.size(), target,
               millis_since(start));
  return true;
}

void RedisStore::tell(const ChangeSet& applied) {
  if (applied.empty()) return;
  for (auto* listener : replica_listeners_) listener->replicated(applied);
}

void RedisStore::release_lease() {
  (void)redis_.eval(release_script(), {key("turn")}, {token_});
}

void RedisStore::lost_turn(const std::string& why) {
  ++counters_.discarded_turns;
  spdlog::error("state: turn discarded ({}); the model is reloaded from Redis at the next turn",
                why);
  release_lease();
  in_turn_ = false;
  version_ = -1;
  last_id_.clear();
  keys_.clear();
  answers_.clear();
}

void RedisStore::commit(std::function<void(bool ok)> done) {
  if (!in_turn_) {
    // Nothing may change outside a turn (the loop runs none while Redis is away).
    if (!keys_.empty()) {
      spdlog::error("state: {} changes made outside a cluster turn are dropped", keys_.size());
      keys_.clear();
      version_ = -1;
    }
    answers_.clear();
    done(true);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<replica::Row> rows;
  if (reseed_) {
    replica::for_each_row(*this, [&rows](replica::Row row) { rows.push_back(std::move(row)); });
  } else {
    rows = replica::read_rows(*this, keys_);
  }
  std::vector<std::string> args{token_,
                                std::to_string(version_),
                                std::to_string(retention_ms_),
                                gateway_id_,
                                std::to_string(rows.size()),
                                std::to_string(kLogMaxEntries)};
  args.reserve(args.size() + 2 * (rows.size() + answers_.size()));
  for (const auto& row : rows) {
    args.push_back(row.field);
    args.push_back(row.value.value_or(std::string()));
  }
  for (const auto& answer : answers_) {
    auto [field, value] = cluster::encode_answer(answer);
    args.push_back(std::move(field));
    args.push_back(std::move(value));
  }
  auto r =
      redis_.eval(commit_script(), {key("turn"), key("version"), key("log"), key("rows")}, args);
  if (!r || !is_array(*r, 1)) {
    lost_turn(r ? "unexpected answer from the commit script"
                : "the commit's outcome is unknown: " + r.error().message);
    done(false);
    return;
  }
  const auto code = r->elements[0].integer;
  if (code < 0) {
    lost_turn(code == -1 ? "the turn lease expired before the commit"
                         : "another gateway committed during this turn");
    done(false);
    return;
  }
  in_turn_ = false;
  reseed_ = false;
  if (code == 1 && is_array(*r, 3)) {
    version_ = r->elements[1].integer;
    last_id_ = r->elements[2].text;
    ++counters_.commits;
  }
  keys_.clear();
  answers_.clear();
  last_commit_ms_ = millis_since(start);
  done(true);
}

std::vector<StoredAnswer> RedisStore::stored_answers(std::int64_t since_ms) {
  std::vector<StoredAnswer> out;
  for (auto& a : loaded_answers_) {
    if (a.at_ms >= since_ms) out.push_back(std::move(a));
  }
  loaded_answers_.clear();
  return out;
}

void RedisStore::add_replica_listener(ReplicaListener* listener) {
  replica_listeners_.push_back(listener);
}

void RedisStore::remove_replica_listener(ReplicaListener* listener) {
  replica_listeners_.erase(
      std::remove(replica_listeners_.begin(), replica_listeners_.end(), listener),
      replica_listeners_.end());
}

bool RedisStore::claim_once(const std::string& claim, std::int64_t ttl_ms) {
  ++counters_.claims;
  auto r = redis_.command({"SET", key("claim:") + claim, gateway_id_, "NX", "PX",
                           std::to_string(std::max<std::int64_t>(1, ttl_ms))});
  // Unreachable: better twice than never (a warning, not a change of state).
  if (!r) return true;
  return !r->is_nil();
}

StoreStats RedisStore::stats() const {
  return {"redis", 0, counters_.commits, counters_.discarded_turns, last_commit_ms_};
}

void RedisStore::write_metrics(MetricsWriter& out) const {
  const auto& c = counters_;
  const auto& r = redis_.stats();
  out.gauge("rtm_cluster_state_version", "Commits to the shared state this gateway has applied",
            static_cast<double>(version_));
  out.counter("rtm_cluster_turns_total", "Loop turns run holding the cluster's turn lease",
              static_cast<double>(c.turns));
  out.counter("rtm_cluster_lease_waits_total",
              "Polls of the turn lease while another gateway held it",
              static_cast<double>(c.lease_waits));
  out.counter("rtm_cluster_lease_wait_seconds_total",
              "Time spent waiting for another gateway's turn", c.lease_wait_ms / 1000.0);
  out.family("rtm_cluster_turns_not_begun_total", MetricsWriter::Type::counter,
             "Turns that could not begin: the lease stayed taken, or Redis did not answer");
  out.sample(static_cast<double>(c.lease_timeouts), {{"why", "lease"}});
  out.sample(static_cast<double>(c.unavailable), {{"why", "unavailable"}});
  out.counter("rtm_cluster_log_entries_applied_total",
              "Commits of other gateways applied to this gateway's model",
              static_cast<double>(c.entries_applied));
  out.counter("rtm_cluster_rows_applied_total", "Rows applied from the shared state",
              static_cast<double>(c.rows_applied));
  out.counter("rtm_cluster_bad_rows_total", "Rows of the shared state that did not decode",
              static_cast<double>(c.bad_rows));
  out.counter("rtm_cluster_reloads_total", "Full reloads of the model from the shared state",
              static_cast<double>(c.reloads));
  out.counter("rtm_cluster_commits_total", "Turns that committed changes to the shared state",
              static_cast<double>(c.commits));
  out.counter("rtm_cluster_discarded_turns_total",
              "Turns discarded: their commit was refused (lease lost) or its outcome unknown",
              static_cast<double>(c.discarded_turns));
  out.counter("rtm_redis_round_trips_total", "Commands and scripts sent to Redis and answered",
              static_cast<double>(r.round_trips));
  out.counter("rtm_redis_connects_total", "Connections to Redis made",
              static_cast<double>(r.connects));
  out.counter("rtm_redis_failures_total", "Redis calls that failed (unreachable, timeout)",
              static_cast<double>(r.failures));
}

}  // namespace rtm::gateway
