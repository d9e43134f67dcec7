#pragma once
// The "sqlite" state backend: the memory model, made durable in one SQLite file (WAL).
// Reads are served from memory; every change is written, by key, in one transaction per
// loop turn (Durability::commit) before the turn's answers and events go out. At start-up
// the file is read back into the model. The file belongs to one gateway at a time (an
// exclusive lock). Schema and guarantees: docs/state.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rtm/gateway/state.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace rtm::gateway {

class SqliteStore final : public MemoryStore {
 public:
  // The schema this gateway writes; older files are migrated, newer ones refused.
  static constexpr int kSchemaVersion = 7;
  // PRAGMA application_id of a state file ("RTMG"), so that another SQLite file given by
  // mistake is refused rather than written into.
  static constexpr std::int32_t kApplicationId = 0x52544D47;
  // How often old answers (beyond the dedup window) are pruned from the file.
  static constexpr std::int64_t kPruneEveryMs = 1000;

  // Opens (creating it if missing) and restores the model. Throws std::runtime_error
  // naming the path and SQLite's error when the file cannot be used: corrupt, not a
  // state file, written by a newer gateway, held by another gateway.
  SqliteStore(const StateConfig& config, const LimitsConfig& limits, std::int64_t answer_window_ms);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  StoreStats stats() const override;
  bool durable() const override { return true; }
  void remember_answer(StoredAnswer answer) override;
  void commit(std::function<void(bool ok)> done) override;
  std::vector<StoredAnswer> stored_answers(std::int64_t since_ms) override;

  // What the start-up restore found: rows restored, and rows that did not fit the model
  // (a member without a session), which are dropped from the file.
  struct Restored {
    std::size_t sessions = 0;
    std::size_t members = 0;
    std::size_t subscriptions = 0;
    std::size_t presence = 0;
    std::size_t metadata = 0;                // users' and channels' metadata
    std::size_t metadata_subscriptions = 0;  // subscriptions to a user's metadata
    std::size_t lock_channels = 0;           // channels with locks (one record each)
    std::size_t inbox_messages = 0;          // peer messages kept for offline users
    std::size_t invitations = 0;             // call invitations in flight
    std::size_t message_channels = 0;        // message channel subscriptions
    std::size_t dropped = 0;
    double millis = 0;
  };
  const Restored& restored() const { return restored_; }

  // Writes a consistent copy of the committed state to `path` (a new file), while the
  // gateway runs: an online backup. Throws std::runtime_error when it cannot.
  void backup(const std::string& path);

 private:
  class Statement;
  void open(const StateConfig& config);
  void close();
  void identify();
  void migrate();
  void prepare();
  void restore();
  void exec(const char* sql);
  [[noreturn]] void fail(const std::string& what) const;
  void write_session(const std::string& uid);
  void write_member(const std::string& channel, const std::string& uid);
  void write_presence(const std::string& uid);
  void write_metadata(MetadataScope scope, const std::string& name);
  void write_metadata_subscriptions(const std::string& subscriber);
  void restore_metadata();
  void write_locks(const std::string& channel);
  void restore_locks();
  void write_inbox(std::uint64_t id);
  void restore_inbox();
  void write_invitation(std::uint64_t id);
  void restore_invitations();
  void prune_answers(std::int64_t now_ms);

  std::string path_;
  std::int64_t answer_window_ms_;
  std::int64_t version_ = 0;  // of the file as found
  bool empty_ = false;        // a new file: the schema is created
  sqlite3* db_ = nullptr;
  std::vector<std::unique_ptr<Statement>> statements_;
  Statement* put_session_ = nullptr;
  Statement* delete_session_ = nullptr;
  Statement* put_member_ = nullptr;
  Statement* delete_member_ = nullptr;
  Statement* put_message_channel_ = nullptr;
  Statement* delete_message_channels_ = nullptr;
  Statement* put_subscription_ = nullptr;
  Statement* delete_subscriptions_ = nullptr;
  Statement* put_presence_ = nullptr;
  Statement* delete_presence_ = nullptr;
  Statement* put_metadata_ = nullptr;
  Statement* delete_metadata_ = nullptr;
  Statement* put_metadata_subscription_ = nullptr;
  Statement* delete_metadata_subscriptions_ = nullptr;
  Statement* put_locks_ = nullptr;
  Statement* delete_locks_ = nullptr;
  Statement* put_inbox_ = nullptr;
  Statement* delete_inbox_ = nullptr;
  Statement* put_inbox_last_id_ = nullptr;
  Statement* put_invitation_ = nullptr;
  Statement* delete_invitation_ = nullptr;
  Statement* put_answer_ = nullptr;
  Statement* prune_answers_ = nullptr;
  // The keys of the turn's changes (MemoryStore::track_rows). Connection presence is among
  // them (schema 2): after a restart it is known before any retained message arrives, on
  // brokers that hand none to a wildcard subscription.
  ChangeSet keys_;
  std::vector<StoredAnswer> answers_;
  std::int64_t newest_answer_ms_ = 0;
  std::int64_t last_prune_ms_ = 0;
  std::uint64_t commits_ = 0;
  std::uint64_t commit_failures_ = 0;
  double last_commit_ms_ = 0;
  Restored restored_;
};

}  // namespace rtm::gateway
