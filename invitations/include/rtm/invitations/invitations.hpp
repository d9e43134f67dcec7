#pragma once
// Call invitations in the manner of anyRTC's LocalInvitation / RemoteInvitation: a pure
// state machine over every invitation in flight. No I/O and no clock: time comes in as
// now_ms, and every transition returns the events it causes (for the caller and the
// callee) as values, with the ids of the records it changed, for a store to write.
//
// Life of an invitation (docs/protocol.md, "Call invitations"):
// - invite: the callee has a live session → kept in phase `sent` (caller: SENT_TO_REMOTE,
//   callee gets RECEIVED), with a deadline ack_timeout later. No live session → no record;
//   the caller's FAILURE PEER_OFFLINE at once.
// - ack by the callee (its SDK does it on receipt): phase `received` (caller:
//   RECEIVED_BY_REMOTE), with a new deadline answer_timeout later. Asked again: no change.
// - accept / refuse by the callee (from `sent` too: an answer proves receipt): both sides
//   told (ACCEPTED_BY_REMOTE / ACCEPTED, REFUSED_BY_REMOTE / REFUSED); the record goes.
// - cancel by the caller: both sides CANCELED; the record goes.
// - due(now): a `sent` one past its deadline fails with PEER_NO_RESPONSE, a `received` one
//   with INVITATION_EXPIRE, both sides told; the record goes.
// - session_ended(uid): the caller's invitations are canceled (the callee is told), the
//   callee's fail with PEER_OFFLINE for their callers.
// A call that fails changes nothing. Only the caller and the callee can see or change an
// invitation: anyone else gets not_found, as for an id that does not exist.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/topics/expected.hpp"

namespace rtm::invitations {

// The caller's side (anyRTC LOCAL_INVITATION_STATE_*), with its numbers.
enum class LocalState {
  idle = 0,
  sent_to_remote = 1,
  received_by_remote = 2,
  accepted_by_remote = 3,
  refused_by_remote = 4,
  canceled = 5,
  failure = 6,
};
// The callee's side (anyRTC REMOTE_INVITATION_STATE_*, without its IDLE and its local
// ACCEPTED_BY_LOCAL: the gateway tells ACCEPTED once the answer is taken).
enum class RemoteState {
  received = 1,
  accepted = 2,
  refused = 3,
  canceled = 4,
  failure = 5,
};
// Why an invitation failed (anyRTC's failure reasons, one list for both sides).
enum class Reason {
  ok = 0,
  other = 1,
  peer_no_response = 2,   // the callee did not acknowledge within ack_timeout (30 s)
  invitation_expire = 3,  // no answer answer_timeout (60 s) after the callee received it
  peer_offline = 4,       // the callee has no live session, or its session ended
  not_loggedin = 5,       // the caller has no session (refused by the gateway before this)
};

std::string_view name(LocalState s);   // "SENT_TO_REMOTE"
std::string_view name(RemoteState s);  // "RECEIVED"
std::string_view name(Reason r);       // "PEER_NO_RESPONSE"

// Where an invitation is: waiting for the callee's acknowledgement, or for its answer.
enum class Phase { sent = 0, received = 1 };

// One invitation in flight, as a store writes it.
struct Invitation {
  std::uint64_t id = 0;
  std::string caller;
  std::string callee;
  std::string content;     // the caller's text for the callee
  std::string channel_id;  // optional: the channel the call is about
  Phase phase = Phase::sent;
  std::int64_t created_ms = 0;
  std::int64_t deadline_ms = 0;  // ack deadline in `sent`, answer deadline in `received`
};

struct Limits {
  static constexpr std::string_view kAckTimeoutKey = "invitations.ack_timeout_s";
  static constexpr std::string_view kExpireKey = "invitations.expire_s";
  static constexpr std::string_view kMaxPerCallerKey = "invitations.max_per_caller";
  static constexpr std::string_view kMaxPerCalleeKey = "invitations.max_per_callee";
  static constexpr std::string_view kMaxTotalKey = "invitations.max_total";
  static constexpr std::string_view kMaxContentKey = "invitations.max_content_bytes";

  std::int64_t ack_timeout_ms = 30000;   // anyRTC: PEER_NO_RESPONSE after 30 s
  std::int64_t expire_ms = 60000;        // anyRTC: INVITATION_EXPIRE 60 s after receipt
  std::size_t max_per_caller = 16;       // invitations a user has sent and not seen end
  std::size_t max_per_callee = 16;       // invitations waiting for one user's answer
  std::size_t max_total = 100000;        // in flight, in all
  std::size_t max_content_bytes = 8192;  // content and response each (anyRTC: 8 KB)
};

enum class ErrorCode {
  not_found,    // no invitation of that id for this user
  wrong_party,  // the caller answering, or the callee canceling (its own invitation)
  self_invite,  // caller and callee are one user
  too_many,     // a max_per_* or max_total limit (Error::limit names it)
  too_large,    // content or response over max_content_bytes
};

struct Error {
  ErrorCode code{};
  std::string message;
  std::string_view limit;  // the config key of the limit that refused the call, if any
};

template <class T>
using Result = rtm::Expected<T, Error>;

enum class Side { local, remote };

// One thing to tell one user about one invitation.
struct Event {
  std::string uid;  // the caller (side local) or the callee (side remote)
  Side side = Side::local;
  LocalState local = LocalState::idle;         // side local
  RemoteState remote = RemoteState::received;  // side remote
  Reason reason = Reason::ok;
  Invitation invitation;  // as it was at the transition
  std::string response;   // the callee's response (accepted, refused)
  std::string state_name() const {
    return std::string(side == Side::local ? name(local) : name(remote));
  }
};

struct Transition {
  std::uint64_t id = 0;  // the invitation's
  std::vector<Event> events;
  std::vector<std::uint64_t> changed;  // records written (present) or deleted (gone)
};

class Invitations {
 public:
  explicit Invitations(Limits limits = {}) : limits_(limits) {}
  void set_limits(const Limits& limits) { limits_ = limits; }
  const Limits& limits() const { return limits_; }

  Result<Transition> invite(const std::string& caller, const std::string& callee,
                            std::string content, std::string channel_id, bool callee_online,
                            std::int64_t now_ms);
  Result<Transition> ack(const std::string& uid, std::uint64_t id, std::int64_t now_ms);
  Result<Transition> accept(const std::string& uid, std::uint64_t id, std::string response,
                            std::int64_t now_ms);
  Result<Transition> refuse(const std::string& uid, std::uint64_t id, std::string response,
                            std::int64_t now_ms);
  Result<Transition> cancel(const std::string& uid, std::uint64_t id, std::int64_t now_ms);
  // Every invitation whose deadline is at or before now_ms, failed.
  Transition due(std::int64_t now_ms);
  // uid has no session any more.
  Transition session_ended(const std::string& uid);

  // The earliest deadline (nullopt: none in flight).
  std::optional<std::int64_t> next_deadline() const;
  const Invitation* find(std::uint64_t id) const;
  // The invitations uid sends or receives, oldest first.
  std::vector<Invitation> of(const std::string& uid) const;
  bool involves(const std::string& uid) const;
  std::size_t size() const { return all_.size(); }
  std::uint64_t last_id() const { return last_id_; }

  // ---- for stores: restoring without limits or events.
  void restore(Invitation invitation);
  void restore_last_id(std::uint64_t id) { last_id_ = std::max(last_id_, id); }
  // Drops the invitation of `id` without events (a store replicating another's records).
  void forget(std::uint64_t id) {
    if (all_.count(id)) erase(id);
  }
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const auto& [id, invitation] : all_) visit(invitation);
  }

 private:
  Result<Transition> answer(const std::string& uid, std::uint64_t id, std::string response,
                            bool accepted);
  Result<const Invitation*> mine(const std::string& uid, std::uint64_t id) const;
  void insert(Invitation invitation);
  Invitation erase(std::uint64_t id);
  // Both sides told that `inv` failed with `reason`, and the record gone.
  void fail(Transition& t, std::uint64_t id, Reason reason);

  Limits limits_;
  std::uint64_t last_id_ = 0;
  std::map<std::uint64_t, Invitation> all_;
  std::map<std::string, std::set<std::uint64_t>> by_caller_;
  std::map<std::string, std::set<std::uint64_t>> by_callee_;
  std::set<std::pair<std::int64_t, std::uint64_t>> deadlines_;
};

}  // namespace rtm::invitations
