#pragma once
// The state backends under the contract suite (gateway_state_test.cpp). Each test makes
// its store with RTM_STORE(name, limits) inside TEST_CASE_TEMPLATE(..., Backend,
// MemoryBackend, SqliteBackend). The sqlite store lives in a file of its own; at the end
// of the test (and whenever a test asks) it proves that the file restores exactly the state
// in memory: every session with its watches, every member in join order with its topics
// and subscriptions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "rtm/gateway/sqlite_store.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::test {

// Every stored row of a model, as sorted text: equal texts, equal stored states.
inline std::string dump(const gateway::MemoryStore& s) {
  std::vector<std::string> lines;
  s.for_each_session([&](const gateway::StoredSession& x) {
    std::string line = "session " + x.uid + " " + x.info.session_id + " " +
                       std::to_string(x.info.started_ms) + " " +
                       std::to_string(x.info.expires_at_ms) + " watching";
    for (const auto& w : x.watching) line += " " + w;
    lines.push_back(line + " channels");
    for (const auto& c : s.channels_of(x.uid)) lines.back() += " " + c;
    lines.back() += " message_channels";
    for (const auto& m : x.message_channels) {
      lines.back() += " " + m.channel + (m.presence ? "+presence" : "") + "@" +
                      std::to_string(m.token_expires_at_ms);
    }
  });
  s.for_each_member([&](const std::string& channel, const std::string& uid,
                        const gateway::StoredMember& m) {
    std::string line = "member " + channel + " " + uid + " token " +
                       std::to_string(m.token_expires_at_ms) + " publishing";
    for (const auto& t : m.publishing) line += " " + t;
    lines.push_back(line);
    for (const auto& sub : m.subscriptions) {
      std::string l = "subscription " + channel + " " + uid + " " + sub.topic +
                      (sub.all ? " all" : " named") + " publishers";
      for (const auto& p : sub.publishers) l += " " + p;
      l += " automatic";
      for (const auto& p : sub.automatic) l += " " + p;
      lines.push_back(l);
    }
  });
  s.for_each_presence([&](const std::string& uid, const gateway::PresenceRecord& p) {
    lines.push_back("presence " + uid + (p.connected ? " connected " : " disconnected ") +
                    p.connection);
  });
  // Members of a channel in join order: the snapshot's order.
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class StoreUnderTest {
 public:
  virtual ~StoreUnderTest() = default;
  virtual gateway::StateStore& store() = 0;
  // Both backends keep the model in memory: its stored rows, for checks.
  virtual const gateway::MemoryStore& model() = 0;
  // Commits, and (sqlite) checks that a copy of the file restores the same state.
  virtual void check_restores() = 0;
};

class MemoryUnderTest final : public StoreUnderTest {
 public:
  explicit MemoryUnderTest(const gateway::LimitsConfig& limits) : store_(limits) {}
  gateway::StateStore& store() override { return store_; }
  const gateway::MemoryStore& model() override { return store_; }
  void check_restores() override {}

 private:
  gateway::MemoryStore store_;
};

class SqliteUnderTest final : public StoreUnderTest {
 public:
  explicit SqliteUnderTest(const gateway::LimitsConfig& limits) : limits_(limits) {
    char pattern[] = "/tmp/rtm-state-test-XXXXXX";
    dir_ = mkdtemp(pattern);
    config_.backend = "sqlite";
    config_.path = dir_ + "/state.db";
    store_ = std::make_unique<gateway::SqliteStore>(config_, limits_, kWindowMs);
  }
  ~SqliteUnderTest() override {
    check_restores();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  gateway::StateStore& store() override { return *store_; }
  const gateway::MemoryStore& model() override { return *store_; }
  void check_restores() override {
    bool committed = false;
    store_->commit([&](bool ok) { committed = ok; });
    REQUIRE(committed);
    const std::string copy = dir_ + "/copy.db";
    std::error_code ec;
    std::filesystem::remove(copy, ec);
    store_->backup(copy);
    gateway::StateConfig copy_config = config_;
    copy_config.path = copy;
    gateway::SqliteStore reopened(copy_config, limits_, kWindowMs);
    CHECK(dump(reopened) == dump(*store_));
    CHECK(reopened.subscription_count() == store_->subscription_count());
    CHECK(reopened.channel_count() == store_->channel_count());
    CHECK(reopened.restored().dropped == 0);
  }

 private:
  static constexpr std::int64_t kWindowMs = 60000;
  gateway::LimitsConfig limits_;
  gateway::StateConfig config_;
  std::string dir_;
  std::unique_ptr<gateway::SqliteStore> store_;
};

struct MemoryBackend {
  static std::unique_ptr<StoreUnderTest> make(const gateway::LimitsConfig& limits) {
    return std::make_unique<MemoryUnderTest>(limits);
  }
};
struct SqliteBackend {
  static std::unique_ptr<StoreUnderTest> make(const gateway::LimitsConfig& limits) {
    return std::make_unique<SqliteUnderTest>(limits);
  }
};

}  // namespace rtm::test

TYPE_TO_STRING(rtm::test::MemoryBackend);
TYPE_TO_STRING(rtm::test::SqliteBackend);

#define RTM_STORE(name, limits)                         \
  auto name##_under_test = Backend::make(limits);       \
  ::rtm::gateway::StateStore& name = name##_under_test->store()
