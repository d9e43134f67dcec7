#pragma once
// The "redis" state backend: several gateways on one state (docs/cluster.md).
//
// Every gateway keeps the whole model in memory and serves reads from it. The cluster runs
// one turn at a time: begin_turn takes the turn lease (SET NX PX) and, in the same script,
// reads what other gateways committed since this one's version (the change log, a Redis
// stream); this gateway applies it (replica::apply_rows) before the turn runs. commit writes
// the turn's changed rows (replica::read_rows) in one Lua script that first checks that the
// lease is still this turn's and the version the one it read (fencing), then bumps the
// version, appends the rows and the turn's answers to the log and releases the lease. A
// turn whose commit is refused or whose outcome is unknown is discarded: its messages are
// not sent, and the next turn reloads the whole model from Redis.
//
// Keys, all with the hash tag {prefix}: {prefix}:rows (hash: every row), :version
// (commits so far), :log (stream of commits, kept cluster.log_retention_s), :turn (the
// lease), :claim:{key} (claim_once).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rtm/gateway/metrics.hpp"
#include "rtm/gateway/redis.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

class RedisStore final : public MemoryStore, public MetricsSource {
 public:
  // Entries read per round trip while catching up, and rows per HSCAN of a full reload.
  static constexpr std::size_t kCatchUpBatch = 200;
  static constexpr std::size_t kReloadBatch = 1000;
  // The change log keeps cluster.log_retention_s of commits, and at most this many (about):
  // what bounds its memory in Redis under load. A gateway further behind reloads.
  static constexpr std::size_t kLogMaxEntries = 100000;
  // Waiting for another gateway's turn: polls from kWaitMin, doubling up to kWaitMax.
  static constexpr std::chrono::microseconds kWaitMin{50};
  static constexpr std::chrono::microseconds kWaitMax{2000};

  // `gateway_id` names this gateway in the log and its lease tokens. Connects and loads
  // the model when Redis answers; when it does not, the first turn does. Throws
  // std::runtime_error when Redis refuses the credentials or holds no state of ours.
  RedisStore(const Config& config, std::string gateway_id);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Durability
  bool begin_turn(std::vector<StoredAnswer>* answers) override;
  void commit(std::function<void(bool ok)> done) override;
  bool discards_failed_turns() const override { return true; }
  void remember_answer(StoredAnswer answer) override { answers_.push_back(std::move(answer)); }
  std::vector<StoredAnswer> stored_answers(std::int64_t since_ms) override;

  StoreStats stats() const override;
  bool durable() const override { return true; }
  void add_replica_listener(ReplicaListener* listener) override;
  void remove_replica_listener(ReplicaListener* listener) override;
  bool claim_once(const std::string& key, std::int64_t ttl_ms) override;

  // MetricsSource
  void write_metrics(MetricsWriter& out) const override;

  struct Counters {
    std::uint64_t turns = 0;            // turns begun
    std::uint64_t lease_waits = 0;      // polls while another gateway held the turn
    double lease_wait_ms = 0;           // time spent waiting for it
    std::uint64_t lease_timeouts = 0;   // turns not begun: the lease stayed taken
    std::uint64_t unavailable = 0;      // turns not begun: Redis did not answer
    std::uint64_t entries_applied = 0;  // log entries of other gateways applied
    std::uint64_t rows_applied = 0;
    std::uint64_t bad_rows = 0;         // rows that did not decode (skipped, logged)
    std::uint64_t reloads = 0;          // full reloads of the model
    std::uint64_t commits = 0;          // commits with changes
    std::uint64_t discarded_turns = 0;  // commits refused (lease lost) or of unknown outcome
    std::uint64_t claims = 0;           // claim_once calls
  };
  const Counters& counters() const { return counters_; }
  const redis::ConnectionStats& redis_stats() const { return redis_.stats(); }
  std::int64_t version() const { return version_; }

 private:
  bool take_lease(redis::Reply& reply);
  bool catch_up(std::int64_t target, const redis::Reply* first_batch, ChangeSet& applied,
                std::vector<StoredAnswer>* answers);
  bool apply_entries(const redis::Reply& entries, std::int64_t& applied_version, ChangeSet& applied,
                     std::vector<StoredAnswer>* answers);
  bool reload(std::int64_t target, ChangeSet& applied, std::vector<StoredAnswer>* answers);
  void release_lease();
  void lost_turn(const std::string& why);
  void tell(const ChangeSet& applied);
  std::string key(const char* name) const { return prefix_ + name; }

  redis::Connection redis_;
  std::string prefix_;  // "{key_prefix}:"
  std::string gateway_id_;
  std::int64_t lease_ms_;
  std::int64_t retention_ms_;
  std::int64_t answer_window_ms_;
  std::int64_t version_ = -1;  // of the shared state the model holds; -1: none loaded
  std::string last_id_;        // the last log entry applied ("" after no load)
  bool in_turn_ = false;
  bool reseed_ = false;  // this turn writes the whole model (Redis came back empty)
  std::string token_;    // this turn's lease token
  std::uint64_t turn_number_ = 0;
  ChangeSet keys_;
  std::vector<StoredAnswer> answers_;
  std::vector<StoredAnswer> loaded_answers_;  // from the load at start-up
  std::vector<ReplicaListener*> replica_listeners_;
  Counters counters_;
  double last_commit_ms_ = 0;
  std::chrono::steady_clock::time_point next_error_log_{};
  std::optional<redis::RedisError> last_failure_;
};

}  // namespace rtm::gateway
