// Across a reconnect (issue 17): the send queue that holds channel publishes and peer
// messages while the broker link is down, the app requests parked until the session is
// restored, the token expiry that ends the session instead of a reconnect, and what the
// restore reports that happened meanwhile (watched users' presence, call invitations).
#include <algorithm>
#include <ctime>

#include "client_impl.hpp"
#include "json.hpp"

namespace rtm::sdk::detail {

namespace {
using Lock = std::unique_lock<std::mutex>;
}  // namespace

SendQueueStats ClientImpl::send_queue_stats() const {
  Lock lock(mutex_);
  return SendQueueStats{send_queue_.size(), send_queue_bytes_, send_queue_sent_,
                        send_queue_dropped_};
}

bool ClientImpl::queue_publishes_locked() const {
  return want_online_ && logged_in_ && !closing_ &&
         (!connected_ || !ready_ || flushing_ || !send_queue_.empty());
}

Status ClientImpl::enqueue_locked(std::string topic, std::string_view payload, int qos) {
  const auto fits = [&] {
    return send_queue_.size() < config_.max_send_queue &&
           send_queue_bytes_ + payload.size() <= config_.max_send_queue_bytes;
  };
  if (payload.size() > config_.max_send_queue_bytes || config_.max_send_queue == 0) {
    if (qos > 0) {
      return Status(ErrorCode::limit_send_queue,
                    "the message (" + std::to_string(payload.size()) +
                        " bytes) is larger than the send queue (max_send_queue_bytes " +
                        std::to_string(config_.max_send_queue_bytes) + ")");
    }
    ++send_queue_dropped_;
    log(LogLevel::warn,
        "rtm sdk: send queue: a QoS 0 message to " + topic + " is larger than the queue; dropped");
    return {};
  }
  if (!fits() && qos > 0) {
    return Status(ErrorCode::limit_send_queue,
                  "the send queue is full while reconnecting (" +
                      std::to_string(send_queue_.size()) + " messages, " +
                      std::to_string(send_queue_bytes_) + " bytes; max_send_queue " +
                      std::to_string(config_.max_send_queue) + ", max_send_queue_bytes " +
                      std::to_string(config_.max_send_queue_bytes) + ")");
  }
  // QoS 0: the oldest QoS 0 messages make room; QoS 1 ones are never dropped for them.
  std::size_t dropped = 0;
  for (auto it = send_queue_.begin(); !fits() && it != send_queue_.end();) {
    if (it->qos == 0) {
      send_queue_bytes_ -= it->payload.size();
      it = send_queue_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  if (!fits()) {  // only QoS 1 messages wait: this one goes instead
    ++dropped;
    send_queue_dropped_ += dropped;
    log(LogLevel::warn, "rtm sdk: send queue full of QoS 1 messages: a QoS 0 message dropped");
    return {};
  }
  if (dropped > 0) {
    send_queue_dropped_ += dropped;
    log(LogLevel::warn, "rtm sdk: send queue full: " + std::to_string(dropped) +
                            " oldest QoS 0 message(s) dropped");
  }
  send_queue_bytes_ += payload.size();
  send_queue_.push_back(Queued{std::move(topic), std::string(payload), qos});
  return {};
}

Result<void> ClientImpl::publish_or_queue(const std::string& topic, std::string_view payload,
                                          int qos) {
  {
    Lock lock(mutex_);
    if (queue_publishes_locked()) return enqueue_locked(topic, payload, qos);
    if (!connected_) {
      return Status(
          want_online_ ? ErrorCode::unavailable : ErrorCode::not_logged_in,
          want_online_ ? "not connected to the broker" : "not logged in: call login() first");
    }
  }
  try {
    client_->publish(topic, payload.data(), payload.size(), qos, false);
  } catch (const std::exception& e) {
    Lock lock(mutex_);
    if (want_online_ && logged_in_) return enqueue_locked(topic, payload, qos);  // just dropped
    return Status(ErrorCode::unavailable, "publish to " + topic + " failed: " + e.what());
  }
  return {};
}

void ClientImpl::drop_queue_locked(const std::string& why) {
  if (!send_queue_.empty()) {
    log(LogLevel::warn,
        "rtm sdk: " + std::to_string(send_queue_.size()) + " queued message(s) dropped: " + why);
    send_queue_dropped_ += send_queue_.size();
  }
  send_queue_.clear();
  send_queue_bytes_ = 0;
  flushing_ = false;
  // Parked requests fail at the timer's next turn (not here: never under the lock).
  const auto now = Clock::now();
  for (const auto& id : parked_) {
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    it->second.parked = false;
    it->second.deadline = now;
    it->second.what += " (not sent: " + why + ")";
  }
  parked_.clear();
}

void ClientImpl::park_locked(const std::string& id, Pending pending) {
  pending.parked = true;
  log(LogLevel::debug, "rtm sdk: " + pending.what + " waits for the restore");
  pending_.emplace(id, std::move(pending));
  parked_.push_back(id);
  timer_cv_.notify_one();  // its deadline may be the next one
}

bool ClientImpl::flush_after_restore(std::string* report) {
  std::uint64_t messages = 0, requests = 0;
  for (;;) {
    std::deque<Queued> queued;
    std::vector<std::pair<std::string, std::string>> to_send;  // topic, body of requests
    {
      Lock lock(mutex_);
      if (!connected_ || closing_ || !want_online_) return false;
      if (send_queue_.empty() && parked_.empty()) {
        flushing_ = false;
        break;
      }
      queued.swap(send_queue_);
      send_queue_bytes_ = 0;
      for (const auto& id : parked_) {
        auto it = pending_.find(id);
        if (it == pending_.end() || !it->second.parked) continue;  // timed out meanwhile
        it->second.parked = false;
        if (it->second.topic.empty()) continue;  // a login waiting for the connection
        to_send.emplace_back(it->second.topic, std::move(it->second.body));
      }
      parked_.clear();
    }
    for (auto it = queued.begin(); it != queued.end(); ++it) {
      try {
        client_->publish(it->topic, it->payload.data(), it->payload.size(), it->qos, false);
        ++messages;
      } catch (const std::exception& e) {
        // The link dropped again: what is left waits for the next restore, first in line.
        Lock lock(mutex_);
        for (auto back = queued.end(); back != it;) {
          --back;
          send_queue_bytes_ += back->payload.size();
          send_queue_.push_front(std::move(*back));
        }
        send_queue_sent_ += messages;
        return false;
      }
    }
    for (const auto& [topic, body] : to_send) {
      try {
        client_->publish(topic, body.data(), body.size(), 1, false);
        ++requests;
      } catch (const std::exception&) {
        // Answered by the timer with TIMEOUT, or by the next loss with UNAVAILABLE.
      }
    }
  }
  Lock lock(mutex_);
  send_queue_sent_ += messages;
  if (messages + requests > 0) {
    *report = "; sent after the restore: " + std::to_string(messages) + " queued message(s), " +
              std::to_string(requests) + " waiting request(s)";
  }
  if (send_queue_dropped_ > 0) {
    *report += "; " + std::to_string(send_queue_dropped_) +
               " message(s) dropped from the send queue so far";
  }
  return true;
}

bool ClientImpl::token_expired_locked() const {
  return token_expires_at_ > 0 &&
         static_cast<std::int64_t>(std::time(nullptr)) >= token_expires_at_;
}

void ClientImpl::report_presence_changes(const std::vector<std::pair<std::string, bool>>& now) {
  std::vector<PresenceEvent> changed;
  {
    Lock lock(mutex_);
    for (const auto& [uid, online] : now) {
      if (!watched_.count(uid)) continue;
      auto it = watched_online_.find(uid);
      const bool known = it != watched_online_.end();
      if (known && it->second == online) continue;
      watched_online_[uid] = online;
      if (!known) continue;  // nothing was said before: nothing to correct
      PresenceEvent ev;
      ev.uid = uid;
      ev.online = online;
      ev.ts = static_cast<std::int64_t>(std::time(nullptr)) * 1000;
      changed.push_back(std::move(ev));
    }
  }
  const auto handler = handler_of<PresenceEvent>();
  for (auto& ev : changed) emit(handler, std::move(ev));
}

void ClientImpl::track_invitation(const InvitationEvent& e) {
  Lock lock(mutex_);
  if (e.ended()) {
    invitations_.erase(e.id);
  } else {
    invitations_[e.id] = e;
  }
}

bool ClientImpl::recheck_invitations(bool relogin, std::vector<std::string>& problems) {
  std::map<std::string, InvitationEvent> before;
  {
    Lock lock(mutex_);
    before = invitations_;
  }
  auto r = call_sync("invitations", "{}", "invitations (restore)", config_.request_timeout);
  if (transport_failure(r.status)) return false;
  if (r.status.is(ErrorCode::unknown_operation)) return true;  // a gateway without invitations
  if (!r.status.ok()) {
    problems.push_back("invitations: " + r.status.to_string());
    return true;
  }
  std::map<std::string, InvitationEvent> now;
  const auto list = r.result().FindMember("invitations");
  if (list != r.result().MemberEnd() && list->value.IsArray()) {
    for (const auto& v : list->value.GetArray()) {
      auto e = parse_invitation(v);
      if (!e.id.empty()) now.emplace(e.id, std::move(e));
    }
  }
  std::vector<InvitationEvent> events;
  std::vector<std::string> to_ack;
  for (const auto& [id, old] : before) {
    if (now.count(id)) continue;
    // Ended while this client was away; its event was lost with the connection.
    InvitationEvent e = old;
    if (relogin) {
      // This session ended meanwhile, and the gateway ended its invitations with it.
      if (e.side == InvitationSide::local) {
        e.state = "CANCELED";
        e.state_code = 5;
        e.reason = "OK";
        e.reason_code = 0;
      } else {
        e.state = "FAILURE";
        e.state_code = 5;
        e.reason = "PEER_OFFLINE";
        e.reason_code = 4;
      }
    } else {
      // How it ended is not known any more (answered, canceled, expired, ...).
      e.state = "FAILURE";
      e.state_code = e.side == InvitationSide::local ? 6 : 5;
      e.reason = "OTHER";
      e.reason_code = 1;
    }
    e.ts = static_cast<std::int64_t>(std::time(nullptr)) * 1000;
    events.push_back(std::move(e));
  }
  for (auto& [id, e] : now) {
    auto old = before.find(id);
    if (old != before.end() && old->second.state == e.state) continue;
    // Changed meanwhile (RECEIVED_BY_REMOTE), or received while away.
    if (e.side == InvitationSide::remote && e.state == "RECEIVED") to_ack.push_back(id);
    events.push_back(e);
  }
  {
    Lock lock(mutex_);
    invitations_ = now;
  }
  for (const auto& id : to_ack) {
    auto ack = call_sync("ack_invitation", json::Object().str("id", id).text(),
                         "ack_invitation " + id + " (restore)", config_.request_timeout);
    if (transport_failure(ack.status)) return false;
  }
  const auto handler = handler_of<InvitationEvent>();
  for (auto& e : events) emit(handler, std::move(e));
  return true;
}

}  // namespace rtm::sdk::detail
