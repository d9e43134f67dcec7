#include "rtm/gateway/presence_state_store.hpp"

namespace rtm::gateway {

storage::Result<storage::StateChange> MemoryPresenceStateStore::remove(
    const std::string& channel, const std::string& uid, const std::vector<std::string>& keys) {
  if (!keys.empty()) return book_.remove(channel, uid, keys);
  // Every state: the keys set now (none: a change that changed nothing).
  std::vector<std::string> all;
  for (const auto& [key, value] : book_.get(channel, uid)) all.push_back(key);
  if (all.empty()) return storage::StateChange{channel, uid, {}, {}, {}};
  return book_.remove(channel, uid, all);
}

}  // namespace rtm::gateway
