#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/enforcement.hpp"

namespace rtm::gateway {

// What other modules (the bridge) may ask of the RTM state.
class RtmApi {
 public:
  virtual ~RtmApi() = default;
  // A mapped device publishes in (channel, topic) as `uid`: gives it a session (a device
  // session never expires) if it has none, joins it to the channel and registers it as a
  // publisher of the topic, with the usual events the first time. False with `why` when a
  // limit refuses it.
  virtual bool ensure_device_publisher(const std::string& uid, const std::string& channel,
                                       const std::string& topic, std::string* why) = 0;
  // A mapped device's status topic said online/offline. False (nothing done) when uid is
  // a logged-in user, whose session a device topic never ends or changes.
  virtual bool device_presence(const std::string& uid, bool online) = 0;
  // Is uid a registered publisher of (channel, topic)? Has uid a live session?
  virtual bool is_publisher(const std::string& uid, const std::string& channel,
                            const std::string& topic) const = 0;
  virtual bool has_session(const std::string& uid) const = 0;
  // Grows whenever a user leaves a channel or topic or a session ends, so that a cache of
  // registered device publishers (kept by the bridge on another thread) knows it is stale.
  virtual std::uint64_t generation() const = 0;
  // An operator ends uid's session (if any) and, where grants are enforced, has the broker
  // close its connections. True when there was a session.
  virtual bool kick(const std::string& uid) = 0;
  // EMQX's HTTP authorization answer: "allow", "deny" or "ignore" (enforcement.http_authz).
  virtual std::string authorize(const AuthzQuestion& question) const = 0;
  // RabbitMQ's HTTP auth backend, a token user's topic (an MQTT topic, or a filter when
  // not publish): true when the grants and the tree allow it (enforcement.rabbitmq_http_auth).
  virtual bool authorize_rabbitmq(const AuthzQuestion& question) const = 0;
};

class StateStore;

// Registers the RTM operations (sessions, channels, topics, subscriptions, presence) over
// `store`, which other parts (the storage operations) may share.
std::shared_ptr<RtmApi> register_rtm_operations(Core& core, std::shared_ptr<StateStore> store);
// The same over the store that config.state names (make_state_store).
std::shared_ptr<RtmApi> register_rtm_operations(Core& core);

}  // namespace rtm::gateway
