#include "rtm/invitations/invitations.hpp"

#include <algorithm>
#include <utility>

namespace rtm::invitations {

namespace {
// Ids are now_ms * kIdsPerMs at least: they grow with time across restarts even when the
// stored counter was lost, and leave room for bursts in one ms.
constexpr std::uint64_t kIdsPerMs = 1024;

Error make_error(ErrorCode code, std::string message, std::string_view limit = {}) {
  return Error{code, std::move(message), limit};
}

Event local_event(const Invitation& inv, LocalState s, Reason r = Reason::ok,
                  std::string response = {}) {
  Event e;
  e.uid = inv.caller;
  e.side = Side::local;
  e.local = s;
  e.reason = r;
  e.invitation = inv;
  e.response = std::move(response);
  return e;
}

Event remote_event(const Invitation& inv, RemoteState s, Reason r = Reason::ok,
                   std::string response = {}) {
  Event e;
  e.uid = inv.callee;
  e.side = Side::remote;
  e.remote = s;
  e.reason = r;
  e.invitation = inv;
  e.response = std::move(response);
  return e;
}
}  // namespace

std::string_view name(LocalState s) {
  switch (s) {
    case LocalState::idle:
      return "IDLE";
    case LocalState::sent_to_remote:
      return "SENT_TO_REMOTE";
    case LocalState::received_by_remote:
      return "RECEIVED_BY_REMOTE";
    case LocalState::accepted_by_remote:
      return "ACCEPTED_BY_REMOTE";
    case LocalState::refused_by_remote:
      return "REFUSED_BY_REMOTE";
    case LocalState::canceled:
      return "CANCELED";
    case LocalState::failure:
      return "FAILURE";
  }
  return "IDLE";
}

std::string_view name(RemoteState s) {
  switch (s) {
    case RemoteState::received:
      return "RECEIVED";
    case RemoteState::accepted:
      return "ACCEPTED";
    case RemoteState::refused:
      return "REFUSED";
    case RemoteState::canceled:
      return "CANCELED";
    case RemoteState::failure:
      return "FAILURE";
  }
  return "FAILURE";
}

std::string_view name(Reason r) {
  switch (r) {
    case Reason::ok:
      return "OK";
    case Reason::other:
      return "OTHER";
    case Reason::peer_no_response:
      return "PEER_NO_RESPONSE";
    case Reason::invitation_expire:
      return "INVITATION_EXPIRE";
    case Reason::peer_offline:
      return "PEER_OFFLINE";
    case Reason::not_loggedin:
      return "NOT_LOGGEDIN";
  }
  return "OTHER";
}

Result<Transition> Invitations::invite(const std::string& caller, const std::string& callee,
                                       std::string content, std::string channel_id,
                                       bool callee_online, std::int64_t now_ms) {
  if (caller == callee) return make_error(ErrorCode::self_invite, "a user cannot invite itself");
  if (content.size() > limits_.max_content_bytes) {
    return make_error(ErrorCode::too_large,
                      "the content has " + std::to_string(content.size()) + " bytes, over " +
                          std::string(Limits::kMaxContentKey) + " (" +
                          std::to_string(limits_.max_content_bytes) + ")",
                      Limits::kMaxContentKey);
  }
  auto count = [](const auto& index, const std::string& uid) -> std::size_t {
    auto it = index.find(uid);
    return it == index.end() ? 0 : it->second.size();
  };
  if (callee_online) {  // an offline callee keeps nothing, so it counts against no bound
    if (count(by_caller_, caller) >= limits_.max_per_caller) {
      return make_error(ErrorCode::too_many,
                        caller + " has " + std::to_string(limits_.max_per_caller) +
                            " invitations in flight already (" +
                            std::string(Limits::kMaxPerCallerKey) + ")",
                        Limits::kMaxPerCallerKey);
    }
    if (count(by_callee_, callee) >= limits_.max_per_callee) {
      return make_error(ErrorCode::too_many,
                        callee + " has " + std::to_string(limits_.max_per_callee) +
                            " invitations waiting already (" +
                            std::string(Limits::kMaxPerCalleeKey) + ")",
                        Limits::kMaxPerCalleeKey);
    }
    if (all_.size() >= limits_.max_total) {
      return make_error(ErrorCode::too_many,
                        "the gateway has " + std::to_string(limits_.max_total) +
                            " invitations in flight (" + std::string(Limits::kMaxTotalKey) + ")",
                        Limits::kMaxTotalKey);
    }
  }
  const std::uint64_t floor = now_ms > 0 ? static_cast<std::uint64_t>(now_ms) * kIdsPerMs : 0;
  last_id_ = std::max(last_id_ + 1, floor);
  Invitation inv;
  inv.id = last_id_;
  inv.caller = caller;
  inv.callee = callee;
  inv.content = std::move(content);
  inv.channel_id = std::move(channel_id);
  inv.phase = Phase::sent;
  inv.created_ms = now_ms;
  inv.deadline_ms = now_ms + limits_.ack_timeout_ms;
  Transition t;
  t.id = inv.id;
  if (!callee_online) {
    t.events.push_back(local_event(inv, LocalState::failure, Reason::peer_offline));
    return t;
  }
  t.events.push_back(local_event(inv, LocalState::sent_to_remote));
  t.events.push_back(remote_event(inv, RemoteState::received));
  t.changed.push_back(inv.id);
  insert(std::move(inv));
  return t;
}

Result<const Invitation*> Invitations::mine(const std::string& uid, std::uint64_t id) const {
  const auto* inv = find(id);
  if (!inv || (inv->caller != uid && inv->callee != uid)) {
    return make_error(ErrorCode::not_found,
                      "no invitation " + std::to_string(id) + " in flight for " + uid);
  }
  return inv;
}

Result<Transition> Invitations::ack(const std::string& uid, std::uint64_t id, std::int64_t now_ms) {
  auto found = mine(uid, id);
  if (!found) return found.error();
  Invitation inv = **found;
  if (inv.callee != uid) {
    return make_error(ErrorCode::wrong_party, "only the callee acknowledges an invitation");
  }
  Transition t;
  t.id = id;
  if (inv.phase == Phase::received) return t;  // asked again: nothing changes
  erase(id);
  inv.phase = Phase::received;
  inv.deadline_ms = now_ms + limits_.expire_ms;
  t.events.push_back(local_event(inv, LocalState::received_by_remote));
  t.changed.push_back(id);
  insert(std::move(inv));
  return t;
}

Result<Transition> Invitations::answer(const std::string& uid, std::uint64_t id,
                                       std::string response, bool accepted) {
  auto found = mine(uid, id);
  if (!found) return found.error();
  if ((*found)->callee != uid) {
    return make_error(ErrorCode::wrong_party, "only the callee answers an invitation");
  }
  if (response.size() > limits_.max_content_bytes) {
    return make_error(ErrorCode::too_large,
                      "the response has " + std::to_string(response.size()) + " bytes, over " +
                          std::string(Limits::kMaxContentKey) + " (" +
                          std::to_string(limits_.max_content_bytes) + ")",
                      Limits::kMaxContentKey);
  }
  Transition t;
  t.id = id;
  const Invitation inv = erase(id);
  t.changed.push_back(id);
  t.events.push_back(
      local_event(inv, accepted ? LocalState::accepted_by_remote : LocalState::refused_by_remote,
                  Reason::ok, response));
  t.events.push_back(remote_event(inv, accepted ? RemoteState::accepted : RemoteState::refused,
                                  Reason::ok, std::move(response)));
  return t;
}

Result<Transition> Invitations::accept(const std::string& uid, std::uint64_t id,
                                       std::string response, std::int64_t) {
  return answer(uid, id, std::move(response), true);
}

Result<Transition> Invitations::refuse(const std::string& uid, std::uint64_t id,
                                       std::string response, std::int64_t) {
  return answer(uid, id, std::move(response), false);
}

Result<Transition> Invitations::cancel(const std::string& uid, std::uint64_t id, std::int64_t) {
  auto found = mine(uid, id);
  if (!found) return found.error();
  if ((*found)->caller != uid) {
    return make_error(ErrorCode::wrong_party, "only the caller cancels an invitation");
  }
  Transition t;
  t.id = id;
  const Invitation inv = erase(id);
  t.changed.push_back(id);
  t.events.push_back(local_event(inv, LocalState::canceled));
  t.events.push_back(remote_event(inv, RemoteState::canceled));
  return t;
}

void Invitations::fail(Transition& t, std::uint64_t id, Reason reason) {
  const Invitation inv = erase(id);
  t.changed.push_back(id);
  t.events.push_back(local_event(inv, LocalState::failure, reason));
  t.events.push_back(remote_event(inv, RemoteState::failure, reason));
}

Transition Invitations::due(std::int64_t now_ms) {
  Transition t;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_ms) {
    const auto id = deadlines_.begin()->second;
    const auto* inv = find(id);
    fail(t, id, inv->phase == Phase::sent ? Reason::peer_no_response : Reason::invitation_expire);
  }
  return t;
}

Transition Invitations::session_ended(const std::string& uid) {
  Transition t;
  if (auto it = by_caller_.find(uid); it != by_caller_.end()) {
    const auto ids = it->second;
    for (const auto id : ids) {
      const Invitation inv = erase(id);
      t.changed.push_back(id);
      t.events.push_back(local_event(inv, LocalState::canceled));
      t.events.push_back(remote_event(inv, RemoteState::canceled));
    }
  }
  if (auto it = by_callee_.find(uid); it != by_callee_.end()) {
    const auto ids = it->second;
    for (const auto id : ids) fail(t, id, Reason::peer_offline);
  }
  return t;
}

std::optional<std::int64_t> Invitations::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

const Invitation* Invitations::find(std::uint64_t id) const {
  auto it = all_.find(id);
  return it == all_.end() ? nullptr : &it->second;
}

std::vector<Invitation> Invitations::of(const std::string& uid) const {
  std::vector<Invitation> out;
  for (const auto* index : {&by_caller_, &by_callee_}) {
    if (auto it = index->find(uid); it != index->end()) {
      for (const auto id : it->second) out.push_back(all_.at(id));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Invitation& a, const Invitation& b) { return a.id < b.id; });
  return out;
}

bool Invitations::involves(const std::string& uid) const {
  return by_caller_.count(uid) > 0 || by_callee_.count(uid) > 0;
}

void Invitations::restore(Invitation invitation) {
  last_id_ = std::max(last_id_, invitation.id);
  if (all_.count(invitation.id)) erase(invitation.id);
  insert(std::move(invitation));
}

void Invitations::insert(Invitation inv) {
  const auto id = inv.id;
  by_caller_[inv.caller].insert(id);
  by_callee_[inv.callee].insert(id);
  deadlines_.emplace(inv.deadline_ms, id);
  all_.emplace(id, std::move(inv));
}

Invitation Invitations::erase(std::uint64_t id) {
  auto it = all_.find(id);
  Invitation inv = std::move(it->second);
  all_.erase(it);
  deadlines_.erase({inv.deadline_ms, id});
  for (auto* index : {&by_caller_, &by_callee_}) {
    const auto& uid = index == &by_caller_ ? inv.caller : inv.callee;
    auto at = index->find(uid);
    at->second.erase(id);
    if (at->second.empty()) index->erase(at);
  }
  return inv;
}

}  // namespace rtm::invitations
