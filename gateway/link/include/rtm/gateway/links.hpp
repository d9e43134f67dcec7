#pragma once
// The implementations of BrokerLink (broker_link.hpp, the core's view of the broker).
#include <memory>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/config.hpp"

namespace rtm::gateway {

// Eclipse Paho MQTT C++ implementation (broker.client: paho; needed for ssl://).
std::unique_ptr<BrokerLink> make_paho_link(const BrokerConfig& config);
// The gateway's own lean MQTT 3.1.1 client (broker.client: native): one thread, batched
// reads and writes, TCP_NODELAY. tcp:// only.
std::unique_ptr<BrokerLink> make_native_link(const BrokerConfig& config);
// The link broker.client asks for.
std::unique_ptr<BrokerLink> make_broker_link(const BrokerConfig& config);

}  // namespace rtm::gateway
