#pragma once
// Call invitations in the manner of anyRTC's LocalInvitation / RemoteInvitation
// (docs/protocol.md, "Call invitations"). A caller invites a callee with a live session;
// the callee's SDK acknowledges receipt (ack_invitation), and the callee accepts or
// refuses; the caller may cancel. Both sides get each change as an `invitation` event on
// P/u/{uid}/events/invitation. An invitation not acknowledged within
// invitations.ack_timeout_s fails with PEER_NO_RESPONSE, one not answered
// invitations.expire_s after receipt with INVITATION_EXPIRE; a callee without a live
// session fails it at once with PEER_OFFLINE. Invitations in flight are kept in the state
// store's InvitationStore, so that a restart keeps them and re-arms their deadlines.
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

// Registers the operations, the timer and the session follower on `core`, over `store`'s
// InvitationStore (its sessions decide who is online).
void register_invitations(Core& core, std::shared_ptr<StateStore> store);

}  // namespace rtm::gateway
