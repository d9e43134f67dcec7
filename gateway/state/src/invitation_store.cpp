#include "rtm/gateway/invitation_store.hpp"

namespace rtm::gateway {

invitations::Limits invitation_limits(const InvitationsConfig& config) {
  invitations::Limits limits;
  limits.ack_timeout_ms = config.ack_timeout_s * 1000;
  limits.expire_ms = config.expire_s * 1000;
  limits.max_per_caller = static_cast<std::size_t>(config.max_per_caller);
  limits.max_per_callee = static_cast<std::size_t>(config.max_per_callee);
  limits.max_total = static_cast<std::size_t>(config.max_total);
  limits.max_content_bytes = static_cast<std::size_t>(config.max_content_bytes);
  return limits;
}

}  // namespace rtm::gateway
