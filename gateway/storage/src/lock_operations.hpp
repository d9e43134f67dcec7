#pragma once
// The lock operations (docs/protocol.md, "Locks"): set_lock, acquire_lock, release_lock,
// revoke_lock, get_locks, remove_lock, their `lock` channel events, and the countdowns of
// holders that left.
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

// Registers the operations on `core`, over the store's LockStore; its members decide who
// may call, and holders and waiters follow them (register_storage_operations calls this).
void register_lock_operations(Core& core, std::shared_ptr<StateStore> store);

}  // namespace rtm::gateway
