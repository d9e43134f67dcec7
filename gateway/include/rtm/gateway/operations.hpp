#pragma once
#include "rtm/gateway/core.hpp"

namespace rtm::gateway {
// Registers the RTM operations (sessions, channels, topics, subscriptions, presence).
void register_rtm_operations(Core& core);
}  // namespace rtm::gateway
