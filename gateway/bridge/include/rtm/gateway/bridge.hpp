#pragma once
// The bridge: carries out the mapping rules' decisions. Device topics come in, RTM
// topics go out (and back), through bounded queues in front of the broker link.
#include <memory>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/operations.hpp"

namespace rtm::gateway {

struct BridgeCounters {
  std::uint64_t received = 0;    // messages that matched a rule
  std::uint64_t relayed = 0;     // published to their target
  std::uint64_t dropped = 0;     // refused by a rule (bad capture, bad JSON, ...)
  std::uint64_t shed = 0;        // QoS 0 dropped, oldest first, because the queue was full
  std::uint64_t failed = 0;      // the link refused them; QoS 1 is retried, QoS 0 counted here
  std::uint64_t echoes = 0;      // our own publications seen again, ignored
  std::uint64_t presence = 0;    // device presence changes applied
};

// Registers the bridge when config.mapping has rules; also the `stats` operation.
void register_bridge(Core& core, std::shared_ptr<RtmApi> rtm);

}  // namespace rtm::gateway
