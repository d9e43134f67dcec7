#pragma once
// Broker-side enforcement (docs/security.md, "Broker-enforced channels"). The grant feed
// listens to the RTM state's changes by key and turns them into grant records
// (rtm/grants/records.hpp) on P/gateway/grants, which the project's Mosquitto plugin
// applies inside the broker; the same records keep a table here that answers EMQX's HTTP
// authorization requests. Records go out before any message that reports the change they
// grant or revoke (a PublishBarrier), on the gateway's one broker connection, so a
// subscriber's grant is in place before its subscribe answer, and a revocation before
// its unsubscribe answer.
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/metrics.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/grants/records.hpp"
#include "rtm/grants/table.hpp"

namespace rtm::gateway {

// Why a session ended, as far as the broker's side cares.
enum class SessionEnd { logged_out, token_expired, replaced, kicked, connection_lost };

// What the RTM operations tell the broker's side about sessions. Loop thread.
class ConnectionControl {
 public:
  virtual ~ConnectionControl() = default;
  // Connections of uid may stay until expires_at_s (the broker closes them at their
  // CONNECT token's expiry otherwise).
  virtual void token_renewed(const std::string& uid, std::int64_t expires_at_s) = 0;
  virtual void session_ended(const std::string& uid, SessionEnd why) = 0;
};

// An authorization question as EMQX's HTTP authorizer asks it.
struct AuthzQuestion {
  std::string username;
  std::string topic;
  bool publish = false;  // EMQX action "publish"; otherwise "subscribe"
};

struct GrantFeedStats {
  std::uint64_t records = 0;       // sent, full sets included
  std::uint64_t messages = 0;      // grant messages published
  std::uint64_t bytes = 0;
  std::uint64_t full_sets = 0;
  std::uint64_t last_full_set_records = 0;
  double last_full_set_ms = 0;
  std::uint64_t kicks = 0;         // K and k records
};

// What one channel member may do, as a grant record carries it.
grants::MemberGrants member_grants(const StoredMember& member);
// The message channels a session subscribes to, as a C record carries them.
grants::MessageChannelGrants message_channel_grants(
    const std::vector<MessageChannelSubscription>& subscriptions);
// Writes the full grant set of `state` (B, a session record per session, a member record
// per channel member, F) into `out`.
void write_full_set(const StateStore& state, std::uint64_t epoch, grants::RecordWriter& out);

class GrantFeed final : public ChangeListener,
                        public ReplicaListener,
                        public PublishBarrier,
                        public BrokerSessionObserver,
                        public ConnectionControl,
                        public MetricsSource {
 public:
  // publish: send records to the broker; keep_table: keep a table for authorize(). Shares
  // the store: it listens to it until its own end, whichever part lets go first.
  GrantFeed(Core& core, std::shared_ptr<StateStore> state, bool publish, bool keep_table);
  ~GrantFeed() override;
  GrantFeed(const GrantFeed&) = delete;
  GrantFeed& operator=(const GrantFeed&) = delete;

  // ChangeListener: remembers the keys; the records are written at the next flush.
  void session_changed(const std::string& uid) override { dirty_sessions_.insert(uid); }
  void member_changed(const std::string& channel, const std::string& uid) override {
    dirty_members_.emplace(channel, uid);
  }

  // ReplicaListener: rows another gateway of a cluster changed. Its own feed told the
  // broker; the local table (EMQX's and RabbitMQ's answers) follows them here.
  void replicated(const ChangeSet& applied) override;

  // PublishBarrier: the records of every change since the last flush.
  void flush(Core& core) override;

  // BrokerSessionObserver: a full set after every connect (the broker, or its plugin, may
  // have restarted with an empty table; the plugin fails closed until the set is complete).
  void on_broker_session_lost() override {}
  void on_broker_connected() override;
  // Writes the full set now (also used at start-up for the local table).
  void send_full_set();

  // ConnectionControl
  void token_renewed(const std::string& uid, std::int64_t expires_at_s) override;
  void session_ended(const std::string& uid, SessionEnd why) override;

  // EMQX's answer: "allow", "deny" or "ignore" (not a channel level: the next source
  // decides). Needs keep_table.
  std::string_view authorize(const AuthzQuestion& question) const;
  // RabbitMQ's topic question (rabbitmq::topic_allowed): `topic` is an MQTT topic, or a
  // filter when not publish. Refused without the table. Needs keep_table.
  bool authorize_rabbitmq(const AuthzQuestion& question) const;

  const GrantFeedStats& stats() const { return stats_; }
  void write_metrics(MetricsWriter& out) const override;

 private:
  void write_changes();
  void send(Core& core);

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  bool publish_;
  std::unique_ptr<grants::Table> table_;  // keep_table only
  std::string topic_;
  grants::RecordWriter writer_;
  std::set<std::string> dirty_sessions_;
  std::set<std::pair<std::string, std::string>> dirty_members_;  // (channel, uid)
  std::set<std::string> message_channel_users_;  // uids the broker knows message channels of
  std::uint64_t epoch_ = 0;
  GrantFeedStats stats_;
};

}  // namespace rtm::gateway
