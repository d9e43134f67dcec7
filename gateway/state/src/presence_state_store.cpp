#include "rtm/gateway/presence_state_store.hpp"

namespace rtm::gateway {

storage::Result<storage::StateChange> MemoryPresenceStateStore::remove(
    const std::string& channel, const std::string& uid, const std::vector<std::string>& keys) {
  std::vector<std::string> all;
  if (keys.empty()) {
    // Every state: the keys set now (none: a change that changed nothing).
    for (const auto& [key, value] : book_.get(channel, uid)) all.push_back(key);
    if (all.empty()) return storage::StateChange{channel, uid, {}, {}, {}};
  }
  auto change = book_.remove(channel, uid, keys.empty() ? all : keys);
  if (change && change->changed()) note(channel, uid);
  return change;
}

}  // namespace rtm::gateway
