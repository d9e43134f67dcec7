#pragma once
// The presence-state operations (docs/protocol.md, "Presence states"); registered with the
// metadata operations by register_storage_operations.
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

void register_state_operations(Core& core, std::shared_ptr<StateStore> store);

}  // namespace rtm::gateway
