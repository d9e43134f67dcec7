#pragma once
// The storage operations: metadata (docs/protocol.md, "Metadata": set_/update_/remove_/get_
// user_metadata and channel_metadata, subscribe_/unsubscribe_user_metadata) and presence
// states ("Presence states": set_state, remove_state, get_state) and locks ("Locks":
// set_lock, acquire_lock, release_lock, revoke_lock, get_locks, remove_lock).
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

// Registers the operations on `core`, over the store the RTM operations use (its sessions
// and members decide who may read and write; its commits make each write durable before
// the answer goes out).
void register_storage_operations(Core& core, std::shared_ptr<StateStore> store);

}  // namespace rtm::gateway
