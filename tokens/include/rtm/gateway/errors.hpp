#pragma once
// The error codes answered in responses ({"code":N,"error":"NAME","message":...}).
// docs/protocol.md carries the same table; numbers never change once released.
#include <string_view>

namespace rtm::gateway {

enum class ErrorCode : int {
  ok = 0,
  internal = 1,
  bad_request = 2,
  not_joined = 3,
  not_logged_in = 4,
  unknown_operation = 5,
  missing_msg_id = 6,
  bad_json = 7,
  invalid_name = 8,
  payload_too_large = 9,
  duplicate_parameter = 10,
  missing_parameter = 11,
  invalid_parameter = 12,
  invalid_uri = 13,
  msg_id_reused = 14,
  not_subscribed = 15,
  not_watched = 16,
  not_publisher = 17,
  forbidden = 18,
  topic_too_long = 19,
  token_invalid = 20,
  token_bad_signature = 21,
  token_expired = 22,
  token_uid_mismatch = 23,
  token_unsupported_alg = 24,
  token_not_yet_valid = 25,
  limit_channels = 30,
  limit_topics = 31,
  limit_members = 32,
  limit_subscriptions = 33,
  limit_watch = 34,
  no_route = 40,
  timeout = 41,
  backend_error = 42,
  rate_limited = 43,
  unavailable = 44,
  // Storage (user and channel metadata): compare-and-set and limits.
  major_revision_mismatch = 45,
  item_revision_mismatch = 46,
  item_not_found = 47,
  limit_metadata = 48,
  limit_metadata_subscriptions = 49,
  limit_state = 50,
  lock_not_found = 51,
  lock_exists = 52,
  lock_held = 53,
  not_lock_holder = 54,
  limit_locks = 55,
  // Peer messages (send_message, inbox_history).
  peer_offline = 56,
  limit_inbox = 57,
  no_history = 58,
  // Call invitations (invite, ack_invitation, accept/refuse/cancel_invitation).
  invitation_not_found = 59,
  invitation_wrong_side = 60,
  limit_invitations = 61,
  // Local to the SDK (its send queue while reconnecting); never answered by the gateway.
  limit_send_queue = 62,
  // Channel tokens (join, subscribe_channel, renew_channel_token).
  channel_token_required = 66,
  token_channel_mismatch = 67,
};

struct ErrorInfo {
  ErrorCode code;
  std::string_view name;     // "NOT_JOINED"
  std::string_view meaning;  // one line for docs and logs
};

// Every code with its name and meaning, in numeric order.
const ErrorInfo* error_table(std::size_t* count);
std::string_view error_name(ErrorCode code);

}  // namespace rtm::gateway
