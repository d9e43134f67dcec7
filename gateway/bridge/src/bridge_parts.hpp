#pragma once
// The two ways the gateway carries out the mapping rules (mapping.mode): relaying through
// the broker (bridge.cpp) or handing them to the broker's plugin (broker_mode.cpp). Both
// answer the `stats` operation through this view.
#include <cstddef>
#include <memory>

#include "rtm/gateway/bridge.hpp"

namespace rtm::gateway::bridge_detail {

class BridgeView {
 public:
  virtual ~BridgeView() = default;
  virtual BridgeCounters counters() const = 0;
  virtual std::size_t queued() const = 0;  // waiting for the link, or for a registration
};

std::shared_ptr<const BridgeView> install_relay(Core& core, std::shared_ptr<RtmApi> rtm);
std::shared_ptr<const BridgeView> install_broker_mode(Core& core, std::shared_ptr<RtmApi> rtm);

}  // namespace rtm::gateway::bridge_detail
