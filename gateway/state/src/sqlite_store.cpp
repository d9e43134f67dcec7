#include "rtm/gateway/sqlite_store.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "rtm/storage/records.hpp"

namespace rtm::gateway {
namespace {

// Names never hold a space (topics::name_error), so a list is stored as one text.
constexpr char kListSeparator = ' ';

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += kListSeparator;
    out += n;
  }
  return out;
}

std::vector<std::string> split_names(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(kListSeparator, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

double millis_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Version 1: the first schema. A later version adds its migration from the one before
// here, and kSchemaVersion moves on.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sessions(
  uid TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  watching TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE members(
  channel TEXT NOT NULL,
  uid TEXT NOT NULL,
  seq INTEGER NOT NULL,
  publishing TEXT NOT NULL,
  PRIMARY KEY(channel, uid)
) WITHOUT ROWID;
CREATE TABLE subscriptions(
  channel TEXT NOT NULL,
  uid TEXT NOT NULL,
  topic TEXT NOT NULL,
  all_publishers INTEGER NOT NULL,
  publishers TEXT NOT NULL,
  automatic TEXT NOT NULL,
  PRIMARY KEY(channel, uid, topic)
) WITHOUT ROWID;
CREATE TABLE answers(
  uid TEXT NOT NULL,
  msg_id TEXT NOT NULL,
  fingerprint INTEGER NOT NULL,
  payload BLOB NOT NULL,
  at_ms INTEGER NOT NULL
);
)sql";

// Version 2: connection presence is stored, so that a restart need not read it back from
// retained messages (a broker may not hand those to a wildcard subscription: RabbitMQ).
constexpr const char* kPresenceTable = R"sql(
CREATE TABLE presence(
  uid TEXT PRIMARY KEY,
  connected INTEGER NOT NULL,
  connection TEXT NOT NULL
) WITHOUT ROWID;
)sql";

// Version 3: user and channel metadata (issue 15), one record per metadata in the storage
// model's versioned blob form (rtm::storage::encode_metadata), and the subscriptions to a
// user's metadata, which belong to the subscriber's session.
constexpr const char* kMetadataTables = R"sql(
CREATE TABLE metadata(
  scope TEXT NOT NULL,
  name TEXT NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY(scope, name)
) WITHOUT ROWID;
CREATE TABLE metadata_subscriptions(
  subscriber TEXT NOT NULL,
  target TEXT NOT NULL,
  PRIMARY KEY(subscriber, target)
) WITHOUT ROWID;
)sql";

// Version 4: the locks of each channel (issue 15), one record per channel in the storage
// model's versioned blob form (rtm::storage::encode_locks): every lock of the channel with
// its ttl, holder, countdown deadline and queue. One record, because one transition may
// change several locks of a channel (a holder that leaves, expirations due together), and
// a networked backend then does each transition as one compare-and-set on one key.
constexpr const char* kLocksTable = R"sql(
CREATE TABLE locks(
  channel TEXT PRIMARY KEY,
  record BLOB NOT NULL
) WITHOUT ROWID;
)sql";

// Version 5: peer messages kept for users without a live session (docs/protocol.md,
// "Peer-to-peer"), one row per message by its id (ids grow with time, so a user's rows in
// id order are its messages oldest first), and the last id given, so that ids never
// repeat after a restart (inbox_meta, one row).
constexpr const char* kInboxTables = R"sql(
CREATE TABLE inbox(
  id INTEGER PRIMARY KEY,
  to_uid TEXT NOT NULL,
  from_uid TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  binary INTEGER NOT NULL,
  receipt INTEGER NOT NULL,
  payload BLOB NOT NULL
);
CREATE INDEX inbox_by_user ON inbox(to_uid, id);
CREATE TABLE inbox_meta(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Version 6: call invitations in flight (docs/protocol.md, "Call invitations"), one row
// per invitation by its id, with its phase (0 sent, 1 received) and the deadline of that
// phase, so that a restart re-arms its timer. Ids grow with time (now_ms * 1024 at least),
// so the largest one restored keeps them from repeating.
constexpr const char* kInvitationsTable = R"sql(
CREATE TABLE invitations(
  id INTEGER PRIMARY KEY,
  caller TEXT NOT NULL,
  callee TEXT NOT NULL,
  content BLOB NOT NULL,
  channel_id TEXT NOT NULL,
  phase INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL
);
)sql";

// Version 7: message channel subscriptions (docs/protocol.md, "Message channels"), one row
// per (subscriber, channel) in subscription order, which belong to the subscriber's session;
// and the expiry of a member's channel token (0: joined without one), so that a restart
// re-arms the channel token timers.
constexpr const char* kMessageChannelsTable = R"sql(
CREATE TABLE message_channels(
  uid TEXT NOT NULL,
  channel TEXT NOT NULL,
  seq INTEGER NOT NULL,
  presence INTEGER NOT NULL,
  token_expires_at_ms INTEGER NOT NULL,
  PRIMARY KEY(uid, channel)
) WITHOUT ROWID;
ALTER TABLE members ADD COLUMN token_expires_at_ms INTEGER NOT NULL DEFAULT 0;
)sql";

}  // namespace

// A prepared statement, reset after each use.
class SqliteStore::Statement {
 public:
  Statement(SqliteStore& store, const char* sql) : store_(store) {
    if (sqlite3_prepare_v3(store.db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
        SQLITE_OK) {
      store.fail(std::string("preparing \"") + sql + "\"");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement& text(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // Runs a statement without rows; false on an error (left in the connection).
  bool run() {
    const int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc == SQLITE_DONE;
  }
  // Steps through rows: true while there is one.
  bool next() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    sqlite3_reset(stmt_);
    if (rc != SQLITE_DONE) store_.fail("reading");
    return false;
  }
  std::string_view column_text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string_view();
  }
  std::string_view column_blob(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string_view();
  }
  std::int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }

 private:
  SqliteStore& store_;
  sqlite3_stmt* stmt_ = nullptr;
};

SqliteStore::SqliteStore(const StateConfig& config, const LimitsConfig& limits,
                         std::int64_t answer_window_ms)
    : MemoryStore(limits), path_(config.path), answer_window_ms_(answer_window_ms) {
  try {
    open(config);
    migrate();
    prepare();
    restore();
  } catch (...) {
    close();  // no destructor runs for a constructor that throws
    throw;
  }
  track_rows(&keys_, false);  // presence states are not kept on disk
}

SqliteStore::~SqliteStore() {
  track_rows(nullptr, false);
  close();
}

void SqliteStore::close() {
  statements_.clear();  // finalized before the connection closes
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
}

namespace {
// SQLite's words, and ours when the file is held by another process.
std::string explain(sqlite3* db, const std::string& message) {
  if (db && (sqlite3_errcode(db) & 0xff) == SQLITE_BUSY) {
    return message + " (is another gateway using this file? It holds an exclusive lock)";
  }
  return message;
}
}  // namespace

void SqliteStore::fail(const std::string& what) const {
  throw std::runtime_error("state file " + path_ + ": " + what + ": " +
                           (db_ ? explain(db_, sqlite3_errmsg(db_)) : "cannot open"));
}

void SqliteStore::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw std::runtime_error("state file " + path_ + ": " + explain(db_, message));
  }
}

void SqliteStore::open(const StateConfig& config) {
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);  // a missing folder shows in the open
  }
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    fail("cannot open");
  }
  sqlite3_extended_result_codes(db_, 1);
  // One writer, the loop: an exclusive lock keeps a second gateway (or a stray copy of
  // this one) from writing the same file, and spares the shared-memory index.
  exec("PRAGMA locking_mode=EXCLUSIVE");
  // Whose file is it? Read before anything is written: a file that is not a database, a
  // corrupt one or one of another application fails here and stays as it was.
  identify();
  exec("PRAGMA journal_mode=WAL");
  exec(config.synchronous == "full" ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Take the lock now, so that a file held by another process is refused at start-up.
  exec("BEGIN IMMEDIATE; COMMIT");
}

void SqliteStore::identify() {
  auto read = [this](const char* sql) {
    Statement stmt(*this, sql);
    std::int64_t value = 0;
    while (stmt.next()) value = stmt.column_int(0);
    return value;
  };
  const std::int64_t application_id = read("PRAGMA application_id");
  version_ = read("PRAGMA user_version");
  const std::int64_t objects = read("SELECT count(*) FROM sqlite_master");
  empty_ = objects == 0 && application_id == 0 && version_ == 0;
  if (empty_) return;
  if (application_id != kApplicationId) {
    throw std::runtime_error("state file " + path_ +
                             ": not an rtm-mqtt-gateway state file (application_id " +
                             std::to_string(application_id) + "); refusing to write into it");
  }
  if (version_ > kSchemaVersion) {
    throw std::runtime_error("state file " + path_ + ": schema version " +
                             std::to_string(version_) + " was written by a newer gateway; this "
                             "one reads versions up to " + std::to_string(kSchemaVersion));
  }
  if (version_ < 1) {
    throw std::runtime_error("state file " + path_ + ": schema version " +
                             std::to_string(version_) + " is unknown");
  }
}

void SqliteStore::migrate() {
  if (empty_) {
    exec("BEGIN");
    exec(kSchemaV1);
    exec(kPresenceTable);
    exec(kMetadataTables);
    exec(kLocksTable);
    exec(kInboxTables);
    exec(kInvitationsTable);
    exec(kMessageChannelsTable);
    exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
    exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
    exec("COMMIT");
    spdlog::info("state: created {} (schema {})", path_, kSchemaVersion);
    return;
  }
  // One version at a time, each in its own transaction.
  if (version_ == 1) {
    exec("BEGIN");
    exec(kPresenceTable);
    exec("PRAGMA user_version=2");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 1 to 2 (stored presence)", path_);
    version_ = 2;
  }
  if (version_ == 2) {
    exec("BEGIN");
    exec(kMetadataTables);
    exec("PRAGMA user_version=3");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 2 to 3 (user and channel metadata)", path_);
    version_ = 3;
  }
  if (version_ == 3) {
    exec("BEGIN");
    exec(kLocksTable);
    exec("PRAGMA user_version=4");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 3 to 4 (channel locks)", path_);
    version_ = 4;
  }
  if (version_ == 4) {
    exec("BEGIN");
    exec(kInboxTables);
    exec("PRAGMA user_version=5");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 4 to 5 (peer messages for offline users)", path_);
    version_ = 5;
  }
  if (version_ == 5) {
    exec("BEGIN");
    exec(kInvitationsTable);
    exec("PRAGMA user_version=6");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 5 to 6 (call invitations)", path_);
    version_ = 6;
  }
  if (version_ == 6) {
    exec("BEGIN");
    exec(kMessageChannelsTable);
    exec("PRAGMA user_version=7");
    exec("COMMIT");
    spdlog::info("state: {} migrated from schema 6 to 7 (message channels, channel tokens)", path_);
    version_ = 7;
  }
}

void SqliteStore::prepare() {
  auto make = [this](const char* sql) {
    statements_.push_back(std::make_unique<Statement>(*this, sql));
    return statements_.back().get();
  };
  put_session_ = make(
      "INSERT OR REPLACE INTO sessions(uid, session_id, started_ms, expires_at_ms, watching) "
      "VALUES(?1, ?2, ?3, ?4, ?5)");
  delete_session_ = make("DELETE FROM sessions WHERE uid = ?1");
  put_member_ = make(
      "INSERT OR REPLACE INTO members(channel, uid, seq, publishing, token_expires_at_ms) "
      "VALUES(?1, ?2, ?3, ?4, ?5)");
  put_message_channel_ = make(
      "INSERT INTO message_channels(uid, channel, seq, presence, token_expires_at_ms) "
      "VALUES(?1, ?2, ?3, ?4, ?5)");
  delete_message_channels_ = make("DELETE FROM message_channels WHERE uid = ?1");
  delete_member_ = make("DELETE FROM members WHERE channel = ?1 AND uid = ?2");
  put_subscription_ = make(
      "INSERT INTO subscriptions(channel, uid, topic, all_publishers, publishers, automatic) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  delete_subscriptions_ = make("DELETE FROM subscriptions WHERE channel = ?1 AND uid = ?2");
  put_presence_ =
      make("INSERT OR REPLACE INTO presence(uid, connected, connection) VALUES(?1, ?2, ?3)");
  delete_presence_ = make("DELETE FROM presence WHERE uid = ?1");
  put_metadata_ =
      make("INSERT OR REPLACE INTO metadata(scope, name, record) VALUES(?1, ?2, ?3)");
  delete_metadata_ = make("DELETE FROM metadata WHERE scope = ?1 AND name = ?2");
  put_metadata_subscription_ =
      make("INSERT INTO metadata_subscriptions(subscriber, target) VALUES(?1, ?2)");
  delete_metadata_subscriptions_ =
      make("DELETE FROM metadata_subscriptions WHERE subscriber = ?1");
  put_locks_ = make("INSERT OR REPLACE INTO locks(channel, record) VALUES(?1, ?2)");
  delete_locks_ = make("DELETE FROM locks WHERE channel = ?1");
  put_inbox_ = make(
      "INSERT OR REPLACE INTO inbox(id, to_uid, from_uid, ts_ms, binary, receipt, payload) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  delete_inbox_ = make("DELETE FROM inbox WHERE id = ?1");
  put_inbox_last_id_ = make("INSERT OR REPLACE INTO inbox_meta(name, value) VALUES('last_id', ?1)");
  put_invitation_ = make(
      "INSERT OR REPLACE INTO invitations(id, caller, callee, content, channel_id, phase, "
      "created_ms, deadline_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  delete_invitation_ = make("DELETE FROM invitations WHERE id = ?1");
  put_answer_ = make(
      "INSERT INTO answers(uid, msg_id, fingerprint, payload, at_ms) VALUES(?1, ?2, ?3, ?4, ?5)");
  // Answers are appended in time order, so the expired ones are the oldest rows: the
  // scan stops at the first one still inside the window.
  prune_answers_ = make(
      "DELETE FROM answers WHERE rowid < coalesce("
      "(SELECT rowid FROM answers WHERE at_ms >= ?1 ORDER BY rowid LIMIT 1), "
      "(SELECT max(rowid) + 1 FROM answers), 0)");
}

void SqliteStore::restore() {
  const auto start = std::chrono::steady_clock::now();
  {
    Statement rows(*this,
                   "SELECT uid, session_id, started_ms, expires_at_ms, watching FROM sessions");
    std::vector<StoredSession> sessions;
    std::map<std::string, std::size_t> by_uid;
    while (rows.next()) {
      StoredSession s;
      s.uid = std::string(rows.column_text(0));
      s.info.session_id = std::string(rows.column_text(1));
      s.info.started_ms = rows.column_int(2);
      s.info.expires_at_ms = rows.column_int(3);
      s.watching = split_names(rows.column_text(4));
      std::sort(s.watching.begin(), s.watching.end());
      by_uid.emplace(s.uid, sessions.size());
      sessions.push_back(std::move(s));
    }
    Statement subs(*this,
                   "SELECT uid, channel, presence, token_expires_at_ms FROM message_channels "
                   "ORDER BY uid, seq");
    while (subs.next()) {
      const auto it = by_uid.find(std::string(subs.column_text(0)));
      if (it == by_uid.end()) {
        ++restored_.dropped;
        continue;
      }
      MessageChannelSubscription sub;
      sub.channel = std::string(subs.column_text(1));
      sub.presence = subs.column_int(2) != 0;
      sub.token_expires_at_ms = subs.column_int(3);
      sessions[it->second].message_channels.push_back(std::move(sub));
      ++restored_.message_channels;
    }
    for (const auto& s : sessions) {
      restore_session(s);
      ++restored_.sessions;
    }
  }
  struct Row {
    std::string channel;
    std::string uid;
    StoredMember member;
  };
  std::vector<Row> members;
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  {
    Statement rows(*this, "SELECT channel, uid, seq, publishing, token_expires_at_ms FROM members");
    while (rows.next()) {
      Row r{std::string(rows.column_text(0)), std::string(rows.column_text(1)), {}};
      r.member.seq = static_cast<std::uint64_t>(rows.column_int(2));
      r.member.token_expires_at_ms = rows.column_int(4);
      r.member.publishing = split_names(rows.column_text(3));
      index.emplace(std::make_pair(r.channel, r.uid), members.size());
      members.push_back(std::move(r));
    }
  }
  {
    Statement rows(*this,
                   "SELECT channel, uid, topic, all_publishers, publishers, automatic "
                   "FROM subscriptions");
    while (rows.next()) {
      auto it = index.find({std::string(rows.column_text(0)), std::string(rows.column_text(1))});
      if (it == index.end()) {
        ++restored_.dropped;
        continue;
      }
      StoredSubscription sub;
      sub.topic = std::string(rows.column_text(2));
      sub.all = rows.column_int(3) != 0;
      sub.publishers = split_names(rows.column_text(4));
      sub.automatic = split_names(rows.column_text(5));
      std::sort(sub.automatic.begin(), sub.automatic.end());
      members[it->second].member.subscriptions.push_back(std::move(sub));
    }
  }
  {
    Statement rows(*this, "SELECT uid, connected, connection FROM presence");
    while (rows.next()) {
      MemoryStore::set_presence(std::string(rows.column_text(0)), rows.column_int(1) != 0,
                                std::string(rows.column_text(2)));
      ++restored_.presence;
    }
  }
  std::sort(members.begin(), members.end(),
            [](const Row& a, const Row& b) { return a.member.seq < b.member.seq; });
  for (const auto& r : members) {
    if (restore_member(r.channel, r.uid, r.member)) {
      ++restored_.members;
      restored_.subscriptions += r.member.subscriptions.size();
    } else {
      ++restored_.dropped;
      keys_.member_changed(r.channel, r.uid);  // written back (deleted) at the first commit
    }
  }
  restore_metadata();
  restore_locks();
  restore_inbox();
  restore_invitations();
  restored_.millis = millis_since(start);
  spdlog::info(
      "state: restored {} sessions, {} channel members, {} subscriptions, {} presence records, "
      "{} metadata, {} metadata subscriptions, {} channels' locks, {} kept peer messages, "
      "{} invitations, {} message channel subscriptions from {} in {:.0f} ms{}",
      restored_.sessions, restored_.members, restored_.subscriptions, restored_.presence,
      restored_.metadata, restored_.metadata_subscriptions, restored_.lock_channels,
      restored_.inbox_messages, restored_.invitations, restored_.message_channels, path_,
      restored_.millis,
      restored_.dropped ? " (" + std::to_string(restored_.dropped) + " inconsistent rows dropped)"
                        : std::string());
}

void SqliteStore::restore_metadata() {
  {
    Statement rows(*this, "SELECT scope, name, record FROM metadata");
    while (rows.next()) {
      const auto scope_text = rows.column_text(0);
      const std::string name(rows.column_text(1));
      auto decoded = storage::decode_metadata(rows.column_blob(2));
      if (!decoded || (scope_text != "user" && scope_text != "channel")) {
        // Users' data is never dropped silently: the gateway refuses to start on it.
        throw std::runtime_error("state file " + path_ + ": the metadata of " +
                                 std::string(scope_text) + " " + name + " is corrupt" +
                                 (decoded ? std::string() : ": " + decoded.error().message));
      }
      metadata_.restore(scope_text == "user" ? MetadataScope::user : MetadataScope::channel, name,
                        std::move(decoded).value());
      ++restored_.metadata;
    }
  }
  Statement rows(*this, "SELECT subscriber, target FROM metadata_subscriptions");
  while (rows.next()) {
    const std::string subscriber(rows.column_text(0));
    if (!has_session(subscriber)) {  // its session ended with the subscriptions unwritten
      ++restored_.dropped;
      keys_.metadata_subscribers.insert(subscriber);  // deleted at the first commit
      continue;
    }
    metadata_.restore_subscription(subscriber, std::string(rows.column_text(1)));
    ++restored_.metadata_subscriptions;
  }
}

// The holders and waiters are checked against the members by the lock operations after
// the restore (a holder whose session is gone starts its countdown there), not here.
void SqliteStore::restore_locks() {
  Statement rows(*this, "SELECT channel, record FROM locks");
  while (rows.next()) {
    const std::string channel(rows.column_text(0));
    auto decoded = storage::decode_locks(rows.column_blob(1));
    if (!decoded) {
      throw std::runtime_error("state file " + path_ + ": the locks of channel " + channel +
                               " are corrupt: " + decoded.error().message);
    }
    locks_.restore(channel, *decoded);
    ++restored_.lock_channels;
  }
}

void SqliteStore::restore_inbox() {
  {
    Statement rows(*this,
                   "SELECT id, to_uid, from_uid, ts_ms, binary, receipt, payload FROM inbox "
                   "ORDER BY id");
    while (rows.next()) {
      PeerMessage m;
      m.id = static_cast<std::uint64_t>(rows.column_int(0));
      m.to = std::string(rows.column_text(1));
      m.from = std::string(rows.column_text(2));
      m.ts_ms = rows.column_int(3);
      m.binary = rows.column_int(4) != 0;
      m.receipt = rows.column_int(5) != 0;
      m.payload = std::string(rows.column_blob(6));
      inbox_.restore(std::move(m));
      ++restored_.inbox_messages;
    }
  }
  Statement rows(*this, "SELECT value FROM inbox_meta WHERE name = 'last_id'");
  while (rows.next()) inbox_.restore_last_id(static_cast<std::uint64_t>(rows.column_int(0)));
}

void SqliteStore::write_inbox(std::uint64_t id) {
  const auto key = static_cast<std::int64_t>(id);
  if (auto m = inbox_.find(id)) {
    put_inbox_->integer(1, key)
        .text(2, m->to)
        .text(3, m->from)
        .integer(4, m->ts_ms)
        .integer(5, m->binary ? 1 : 0)
        .integer(6, m->receipt ? 1 : 0)
        .blob(7, m->payload);
    if (!put_inbox_->run()) fail("writing a peer message to " + m->to);
  } else if (!delete_inbox_->integer(1, key).run()) {
    fail("deleting peer message " + std::to_string(id));
  }
}

// An invitation whose deadline passed while the gateway was down fails at the first timer
// (the invitation service arms it at start-up), with both sides told.
void SqliteStore::restore_invitations() {
  Statement rows(*this,
                 "SELECT id, caller, callee, content, channel_id, phase, created_ms, deadline_ms "
                 "FROM invitations ORDER BY id");
  while (rows.next()) {
    invitations::Invitation inv;
    inv.id = static_cast<std::uint64_t>(rows.column_int(0));
    inv.caller = std::string(rows.column_text(1));
    inv.callee = std::string(rows.column_text(2));
    inv.content = std::string(rows.column_blob(3));
    inv.channel_id = std::string(rows.column_text(4));
    inv.phase = rows.column_int(5) != 0 ? invitations::Phase::received : invitations::Phase::sent;
    inv.created_ms = rows.column_int(6);
    inv.deadline_ms = rows.column_int(7);
    invitations_.restore(std::move(inv));
    ++restored_.invitations;
  }
}

void SqliteStore::write_invitation(std::uint64_t id) {
  const auto key = static_cast<std::int64_t>(id);
  if (const auto* inv = invitations_.find(id)) {
    put_invitation_->integer(1, key)
        .text(2, inv->caller)
        .text(3, inv->callee)
        .blob(4, inv->content)
        .text(5, inv->channel_id)
        .integer(6, inv->phase == invitations::Phase::received ? 1 : 0)
        .integer(7, inv->created_ms)
        .integer(8, inv->deadline_ms);
    if (!put_invitation_->run()) fail("writing invitation " + std::to_string(id));
  } else if (!delete_invitation_->integer(1, key).run()) {
    fail("deleting invitation " + std::to_string(id));
  }
}

std::vector<StoredAnswer> SqliteStore::stored_answers(std::int64_t since_ms) {
  std::vector<StoredAnswer> out;
  Statement rows(*this,
                 "SELECT uid, msg_id, fingerprint, payload, at_ms FROM answers "
                 "WHERE at_ms >= ?1 ORDER BY rowid");
  rows.integer(1, since_ms);
  while (rows.next()) {
    StoredAnswer a;
    a.uid = std::string(rows.column_text(0));
    a.msg_id = std::string(rows.column_text(1));
    a.fingerprint = static_cast<std::uint64_t>(rows.column_int(2));
    a.payload = std::string(rows.column_blob(3));
    a.at_ms = rows.column_int(4);
    out.push_back(std::move(a));
  }
  return out;
}

void SqliteStore::remember_answer(StoredAnswer answer) {
  newest_answer_ms_ = std::max(newest_answer_ms_, answer.at_ms);
  answers_.push_back(std::move(answer));
}

void SqliteStore::write_session(const std::string& uid) {
  const auto s = stored_session(uid);
  if (s) {
    const std::string watching = join_names(s->watching);
    put_session_->text(1, uid)
        .text(2, s->info.session_id)
        .integer(3, s->info.started_ms)
        .integer(4, s->info.expires_at_ms)
        .text(5, watching);
    if (!put_session_->run()) fail("writing session " + uid);
  } else {
    if (!delete_session_->text(1, uid).run()) fail("deleting session " + uid);
  }
  if (!delete_message_channels_->text(1, uid).run()) {
    fail("deleting the message channels of " + uid);
  }
  if (!s) return;
  std::int64_t seq = 0;
  for (const auto& sub : s->message_channels) {
    put_message_channel_->text(1, uid)
        .text(2, sub.channel)
        .integer(3, seq++)
        .integer(4, sub.presence ? 1 : 0)
        .integer(5, sub.token_expires_at_ms);
    if (!put_message_channel_->run()) {
      fail("writing message channel " + sub.channel + " of " + uid);
    }
  }
}

void SqliteStore::write_member(const std::string& channel, const std::string& uid) {
  if (!delete_subscriptions_->text(1, channel).text(2, uid).run()) {
    fail("deleting subscriptions of " + uid + " in " + channel);
  }
  auto m = stored_member(channel, uid);
  if (!m) {
    if (!delete_member_->text(1, channel).text(2, uid).run()) {
      fail("deleting member " + uid + " of " + channel);
    }
    return;
  }
  const std::string publishing = join_names(m->publishing);
  put_member_->text(1, channel)
      .text(2, uid)
      .integer(3, static_cast<std::int64_t>(m->seq))
      .text(4, publishing)
      .integer(5, m->token_expires_at_ms);
  if (!put_member_->run()) fail("writing member " + uid + " of " + channel);
  for (const auto& sub : m->subscriptions) {
    const std::string publishers = join_names(sub.publishers);
    const std::string automatic = join_names(sub.automatic);
    put_subscription_->text(1, channel)
        .text(2, uid)
        .text(3, sub.topic)
        .integer(4, sub.all ? 1 : 0)
        .text(5, publishers)
        .text(6, automatic);
    if (!put_subscription_->run()) fail("writing a subscription of " + uid + " in " + channel);
  }
}

void SqliteStore::write_presence(const std::string& uid) {
  if (auto p = presence(uid)) {
    put_presence_->text(1, uid).integer(2, p->connected ? 1 : 0).text(3, p->connection);
    if (!put_presence_->run()) fail("writing the presence of " + uid);
  } else if (!delete_presence_->text(1, uid).run()) {
    fail("deleting the presence of " + uid);
  }
}

void SqliteStore::write_metadata(MetadataScope scope, const std::string& name) {
  const auto scope_text = scope_name(scope);
  const std::string record = storage::encode_metadata(metadata_.read(scope, name));
  put_metadata_->text(1, scope_text).text(2, name).blob(3, record);
  if (!put_metadata_->run()) fail("writing the metadata of " + name);
}

void SqliteStore::write_metadata_subscriptions(const std::string& subscriber) {
  if (!delete_metadata_subscriptions_->text(1, subscriber).run()) {
    fail("deleting the metadata subscriptions of " + subscriber);
  }
  for (const auto& target : metadata_.subscriptions_of(subscriber)) {
    put_metadata_subscription_->text(1, subscriber).text(2, target);
    if (!put_metadata_subscription_->run()) {
      fail("writing a metadata subscription of " + subscriber);
    }
  }
}

void SqliteStore::write_locks(const std::string& channel) {
  const auto records = locks_.records(channel);
  if (records.empty()) {
    if (!delete_locks_->text(1, channel).run()) fail("deleting the locks of " + channel);
    return;
  }
  const std::string record = storage::encode_locks(records);
  put_locks_->text(1, channel).blob(2, record);
  if (!put_locks_->run()) fail("writing the locks of " + channel);
}

void SqliteStore::prune_answers(std::int64_t now_ms) {
  if (now_ms - last_prune_ms_ < kPruneEveryMs) return;
  last_prune_ms_ = now_ms;
  if (!prune_answers_->integer(1, now_ms - answer_window_ms_).run()) fail("pruning answers");
}

void SqliteStore::commit(std::function<void(bool ok)> done) {
  if (keys_.empty() && answers_.empty()) {
    done(true);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  bool ok = true;
  try {
    exec("BEGIN");
    for (const auto& uid : keys_.sessions) write_session(uid);
    for (const auto& [channel, uid] : keys_.members) write_member(channel, uid);
    for (const auto& uid : keys_.presence) write_presence(uid);
    for (const auto& [scope, name] : keys_.metadata) write_metadata(scope, name);
    for (const auto& uid : keys_.metadata_subscribers) write_metadata_subscriptions(uid);
    for (const auto& channel : keys_.locks) write_locks(channel);
    for (const auto id : keys_.inbox) write_inbox(id);
    if (keys_.inbox_last_id) {
      put_inbox_last_id_->integer(1, static_cast<std::int64_t>(*keys_.inbox_last_id));
      if (!put_inbox_last_id_->run()) fail("writing the last peer message id");
    }
    for (const auto id : keys_.invitations) write_invitation(id);
    for (const auto& a : answers_) {
      put_answer_->text(1, a.uid)
          .text(2, a.msg_id)
          .integer(3, static_cast<std::int64_t>(a.fingerprint))
          .blob(4, a.payload)
          .integer(5, a.at_ms);
      if (!put_answer_->run()) fail("writing an answer");
    }
    if (newest_answer_ms_ > 0) prune_answers(newest_answer_ms_);
    exec("COMMIT");
    keys_.clear();
    answers_.clear();
    ++commits_;
  } catch (const std::exception& e) {
    // Kept for the next commit; the answers still go out (see Core::end_turn).
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ok = false;
    ++commit_failures_;
    spdlog::error(
        "state: commit failed, {} changes wait for the next one: {}",
        keys_.size() + answers_.size(),
        e.what());
  }
  last_commit_ms_ = millis_since(start);
  done(ok);
}

void SqliteStore::backup(const std::string& path) {
  Statement copy(*this, "VACUUM INTO ?1");
  if (!copy.text(1, path).run()) fail("writing a copy to " + path);
}

StoreStats SqliteStore::stats() const {
  StoreStats s{"sqlite", 0, commits_, commit_failures_, last_commit_ms_};
  for (const std::string& file : {path_, path_ + "-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (!ec) s.file_bytes += size;
  }
  return s;
}

std::shared_ptr<StateStore> make_state_store(const Config& config) {
  std::shared_ptr<StateStore> store;
  if (config.state.backend == "sqlite") {
    store = std::make_shared<SqliteStore>(
        config.state, config.limits,
        static_cast<std::int64_t>(config.requests.dedup_window_s) * 1000);
  } else if (config.state.backend == "redis") {
    // Above this library (gateway/cluster); the gateway builds it (Gateway::make_store).
    throw std::runtime_error("state.backend redis: make a RedisStore (gateway/cluster)");
  } else {
    store = std::make_shared<MemoryStore>(config.limits);
  }
  set_store_limits(*store, config);
  return store;
}

void set_store_limits(StateStore& store, const Config& config) {
  store.set_limits(config.limits);
  store.metadata().set_limits(config.storage.metadata);
  store.locks().set_limits(config.storage.locks);
  store.inbox().set_limits(inbox_limits(config.inbox));
  store.invitations().set_limits(invitation_limits(config.invitations));
}

}  // namespace rtm::gateway
