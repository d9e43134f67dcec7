#pragma once
// Peer messages for users without a live session (docs/protocol.md, "Peer-to-peer").
//
// A peer message goes straight from its sender to P/u/{to}/inbox/{from} on the broker, as
// before. With inbox.offline the gateway also reads P/u/+/inbox/+ and keeps the messages
// whose recipient has no live session (and whose sender has one) in the state store's
// InboxStore; it ignores the rest, so the direct path for online users is unchanged. Right
// after a user's login answer it publishes what it kept as `message` events on
// P/u/{uid}/events/message (QoS 1, in order, marked offline) and removes them in the same
// turn, so that they are handed over once. The send_message operation carries the message
// properties (id, type, server time) and delivery receipts; inbox_history lists and
// acknowledges what is kept.
#include <memory>
#include <string>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

// Most kept messages one turn hands over at a login; the rest follow in later turns.
inline constexpr std::size_t kInboxDeliverPerTurn = 100;
// inbox_history: the default and largest `limit`.
inline constexpr std::int64_t kInboxHistoryDefaultLimit = 50;
inline constexpr std::int64_t kInboxHistoryMaxLimit = 500;

// What other parts (the server HTTP API) ask of the inbox.
class PeerInbox {
 public:
  virtual ~PeerInbox() = default;
  // An app server publishes `payload` to `to`'s inbox as `from`, as a device would (it is
  // published all the same), and the server counts as a live sender: true when it is kept
  // for `to`'s next login (`to` has no live session, inbox.offline is on: kept here, or from
  // the copy the gateway reads back when `from` has a session itself), false when not, or
  // LIMIT_INBOX (then it is not published either). Loop thread.
  virtual Outcome<bool> keep_server_message(const std::string& from, const std::string& to,
                                            const std::string& payload) = 0;
};

// Registers the handler, the operations and the login delivery on `core`, over `store`'s
// InboxStore (its sessions decide who is online).
std::shared_ptr<PeerInbox> register_inbox(Core& core, std::shared_ptr<StateStore> store);

}  // namespace rtm::gateway
