#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "rtm/gateway/enforcement.hpp"
#include "rtm/gateway/rabbitmq_auth.hpp"

namespace rtm::gateway {

GrantFeed::GrantFeed(Core& core, std::shared_ptr<StateStore> state, bool publish,
                     bool keep_table)
    : core_(core),
      store_(std::move(state)),
      state_(*store_),
      publish_(publish),
      topic_(core.tree().gateway_grants()),
      // Epochs differ across restarts of the gateway: the plugin matches B and F by them.
      epoch_(static_cast<std::uint64_t>(core.now_ms())) {
  if (keep_table) table_ = std::make_unique<grants::Table>(core.tree().prefix());
  state_.add_change_listener(this);
  state_.add_replica_listener(this);
}

GrantFeed::~GrantFeed() {
  state_.remove_replica_listener(this);
  state_.remove_change_listener(this);
}

grants::MemberGrants member_grants(const StoredMember& member) {
  grants::MemberGrants g;
  g.writes = member.publishing;
  std::sort(g.writes.begin(), g.writes.end());
  g.writes.erase(std::unique(g.writes.begin(), g.writes.end()), g.writes.end());
  for (const auto& s : member.subscriptions) g.reads.emplace_back(s.topic, s.publishers);
  std::sort(g.reads.begin(), g.reads.end());
  return g;
}

grants::MessageChannelGrants message_channel_grants(
    const std::vector<MessageChannelSubscription>& subscriptions) {
  grants::MessageChannelGrants g;
  g.reserve(subscriptions.size());
  for (const auto& sub : subscriptions) g.emplace_back(sub.channel, sub.presence);
  std::sort(g.begin(), g.end());
  return g;
}

void write_full_set(const StateStore& state, std::uint64_t epoch, grants::RecordWriter& out) {
  out.sync_begin(epoch);
  state.for_each_session([&](const StoredSession& s) {
    out.session(s.uid, true);
    if (!s.message_channels.empty()) {
      out.message_channels(s.uid, message_channel_grants(s.message_channels));
    }
  });
  state.for_each_member([&](const std::string& channel, const std::string& uid,
                            const StoredMember& m) { out.member(channel, uid, member_grants(m)); });
  out.sync_end(epoch);
}

void GrantFeed::write_changes() {
  for (const auto& uid : dirty_sessions_) {
    writer_.session(uid, state_.has_session(uid));
    // A C record only where message channels are or were: most sessions have none.
    auto channels = message_channel_grants(state_.message_channels_of(uid));
    if (channels.empty() && message_channel_users_.erase(uid) == 0) continue;
    if (!channels.empty()) message_channel_users_.insert(uid);
    writer_.message_channels(uid, channels);
  }
  for (const auto& [channel, uid] : dirty_members_) {
    if (const auto m = state_.stored_member(channel, uid)) {
      writer_.member(channel, uid, member_grants(*m));
    } else {
      writer_.no_member(channel, uid);
    }
  }
  dirty_sessions_.clear();
  dirty_members_.clear();
}

void GrantFeed::replicated(const ChangeSet& applied) {
  if (!table_) return;
  grants::RecordWriter local;  // never published: the gateway that made the change did
  for (const auto& uid : applied.sessions) {
    local.session(uid, state_.has_session(uid));
    auto channels = message_channel_grants(state_.message_channels_of(uid));
    if (channels.empty()) {
      message_channel_users_.erase(uid);
    } else {
      message_channel_users_.insert(uid);
    }
    local.message_channels(uid, channels);
  }
  for (const auto& [channel, uid] : applied.members) {
    if (const auto m = state_.stored_member(channel, uid)) {
      local.member(channel, uid, member_grants(*m));
    } else {
      local.no_member(channel, uid);
    }
  }
  for (const auto& message : local.take()) table_->apply_message(message);
}

void GrantFeed::send(Core& core) {
  const std::size_t records = writer_.records();
  for (auto& message : writer_.take()) {
    if (table_) table_->apply_message(message);
    if (publish_) {
      // QoS 1: a record lost on the way would leave a grant or a revocation undone until
      // the next full set.
      core.publish(topic_, message, 1, false);
      ++stats_.messages;
      stats_.bytes += message.size();
    }
  }
  stats_.records += records;
}

void GrantFeed::flush(Core& core) {
  if (dirty_sessions_.empty() && dirty_members_.empty() && writer_.empty()) return;
  write_changes();
  send(core);
}

void GrantFeed::send_full_set() {
  const auto started = std::chrono::steady_clock::now();
  // What changed before is part of the full set: the keys are written from the state now.
  dirty_sessions_.clear();
  dirty_members_.clear();
  const std::uint64_t before = stats_.records;
  const std::uint64_t epoch = ++epoch_;
  message_channel_users_.clear();
  state_.for_each_session([this](const StoredSession& s) {
    if (!s.message_channels.empty()) message_channel_users_.insert(s.uid);
  });
  write_full_set(state_, epoch, writer_);
  send(core_);
  ++stats_.full_sets;
  stats_.last_full_set_records = stats_.records - before;
  stats_.last_full_set_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("grants: full set {} sent ({} records, {:.1f} ms)", epoch,
               stats_.last_full_set_records, stats_.last_full_set_ms);
}

void GrantFeed::on_broker_connected() {
  if (publish_) send_full_set();
}

void GrantFeed::token_renewed(const std::string& uid, std::int64_t expires_at_s) {
  writer_.token(uid, expires_at_s);
}

void GrantFeed::session_ended(const std::string& uid, SessionEnd why) {
  switch (why) {
    case SessionEnd::token_expired:
      // The plugin closes it by its own clock too; this makes it exact.
      writer_.kick(uid);
      ++stats_.kicks;
      return;
    case SessionEnd::connection_lost:
      return;  // the connection is gone already
    case SessionEnd::logged_out:
      if (!core_.config().enforcement.close_on_logout) return;
      break;
    case SessionEnd::replaced:
    case SessionEnd::kicked:
      break;
  }
  // After the answer and the session event have reached the client: an SDK that reads
  // "replaced" or "kicked" stops there, where a bare connection loss would make it
  // reconnect and log in again.
  core_.timers().at(core_.now_ms() + kSessionCloseDelayMs, [this, uid, why] {
    if (why == SessionEnd::replaced) {
      writer_.kick_others(uid);  // the connection that sent the new login stays
    } else if (why == SessionEnd::logged_out && state_.has_session(uid)) {
      return;  // logged in again meanwhile
    } else {
      writer_.kick(uid);
    }
    ++stats_.kicks;
  });
}

std::string_view GrantFeed::authorize(const AuthzQuestion& q) const {
  if (!table_) return "ignore";
  if (q.username == core_.config().broker.username) return "ignore";  // the gateway itself
  const auto verdict =
      q.publish ? table_->decide(q.username, q.topic, grants::Access::write)
                : table_->decide_subscribe(q.username, q.topic);
  switch (verdict) {
    case grants::Verdict::allow: return "allow";
    case grants::Verdict::deny: return "deny";
    case grants::Verdict::not_governed: return "ignore";
  }
  return "deny";
}

bool GrantFeed::authorize_rabbitmq(const AuthzQuestion& q) const {
  return table_ && rabbitmq::topic_allowed(*table_, q.username, q.topic, q.publish);
}

void GrantFeed::write_metrics(MetricsWriter& out) const {
  out.counter("rtm_grant_records_total", "Grant records sent to the broker (full sets included)",
              static_cast<double>(stats_.records));
  out.counter("rtm_grant_messages_total", "Grant messages published on P/gateway/grants",
              static_cast<double>(stats_.messages));
  out.counter("rtm_grant_bytes_total", "Bytes of grant messages published",
              static_cast<double>(stats_.bytes));
  out.counter("rtm_grant_full_sets_total", "Full grant sets sent (one after every connect)",
              static_cast<double>(stats_.full_sets));
  out.gauge("rtm_grant_last_full_set_records", "Records of the last full grant set",
            static_cast<double>(stats_.last_full_set_records));
  out.gauge("rtm_grant_last_full_set_ms", "Time to write the last full grant set",
            stats_.last_full_set_ms);
  out.counter("rtm_grant_kicks_total", "Connection closings asked of the broker",
              static_cast<double>(stats_.kicks));
}

}  // namespace rtm::gateway
