#pragma once
// Channel history (docs/protocol.md, "History"): the gateway subscribes to the data topics
// of the streams history.streams names, keeps each stream's last messages (rtm::history)
// and answers the `history` operation (members of the channel and operators read it; the
// server HTTP API runs it as an operator). Kept in memory: a gateway restart starts every
// stream in a new epoch, and a drop of the broker link marks a gap, so that a subscriber
// that recovers across either is told its recovery is incomplete.
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

class HistoryKeeper;

// Registers the `history` operation and the message handler that keeps the streams.
std::shared_ptr<HistoryKeeper> register_history(Core& core,
                                                std::shared_ptr<const StateStore> state);

}  // namespace rtm::gateway
