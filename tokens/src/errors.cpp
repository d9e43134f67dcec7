#include "rtm/gateway/errors.hpp"

#include <iterator>

namespace rtm::gateway {
namespace {
constexpr ErrorInfo kErrors[] = {
    {ErrorCode::ok, "OK", "success"},
    {ErrorCode::internal, "INTERNAL",
     "unexpected failure inside the gateway; the request had no effect"},
    {ErrorCode::bad_request, "BAD_REQUEST",
     "the request is malformed in a way no other code names"},
    {ErrorCode::not_joined, "NOT_JOINED",
     "the user has not joined the channel named in the request"},
    {ErrorCode::not_logged_in, "NOT_LOGGED_IN", "the operation needs a live session: log in first"},
    {ErrorCode::unknown_operation, "UNKNOWN_OPERATION", "no built-in operation has this name"},
    {ErrorCode::missing_msg_id, "MISSING_MSG_ID",
     "the request topic has no msg_id query parameter, or it is empty"},
    {ErrorCode::bad_json, "BAD_JSON", "the payload is not valid JSON, or not a JSON object"},
    {ErrorCode::invalid_name, "INVALID_NAME",
     "a uid, channel or topic name breaks the naming rules"},
    {ErrorCode::payload_too_large, "PAYLOAD_TOO_LARGE",
     "the request payload is over requests.max_payload_bytes"},
    {ErrorCode::duplicate_parameter, "DUPLICATE_PARAMETER",
     "a parameter is given both in the query and in the body"},
    {ErrorCode::missing_parameter, "MISSING_PARAMETER", "a required parameter is missing"},
    {ErrorCode::invalid_parameter, "INVALID_PARAMETER",
     "a parameter has the wrong type or an unknown name"},
    {ErrorCode::invalid_uri, "INVALID_URI", "the URI in the request topic cannot be parsed"},
    {ErrorCode::msg_id_reused, "MSG_ID_REUSED",
     "the msg_id was used recently for a different request"},
    {ErrorCode::not_subscribed, "NOT_SUBSCRIBED",
     "the user does not subscribe to that publisher of the topic"},
    {ErrorCode::not_watched, "NOT_WATCHED", "the user does not watch that user"},
    {ErrorCode::not_publisher, "NOT_PUBLISHER", "the user is not a publisher of that topic"},
    {ErrorCode::forbidden, "FORBIDDEN",
     "the operation is for operators (ops.uids) only, or (metadata) the caller may not write that "
     "user's or channel's data (storage.*_metadata_writers)"},
    {ErrorCode::topic_too_long, "TOPIC_TOO_LONG",
     "the request topic is over requests.max_topic_bytes or requests.max_topic_levels; answered on "
     "P/u/{uid}/res"},
    {ErrorCode::token_invalid, "TOKEN_INVALID", "the token is not a well-formed JWT"},
    {ErrorCode::token_bad_signature, "TOKEN_BAD_SIGNATURE", "the token's signature does not match"},
    {ErrorCode::token_expired, "TOKEN_EXPIRED", "the token's exp is in the past"},
    {ErrorCode::token_uid_mismatch, "TOKEN_UID_MISMATCH",
     "the token's sub is not the uid of the request"},
    {ErrorCode::token_unsupported_alg, "TOKEN_UNSUPPORTED_ALG",
     "the token is not signed with HS256"},
    {ErrorCode::token_not_yet_valid, "TOKEN_NOT_YET_VALID", "the token's nbf is in the future"},
    {ErrorCode::limit_channels, "LIMIT_CHANNELS",
     "the user is in limits.channels_per_user channels already"},
    {ErrorCode::limit_topics, "LIMIT_TOPICS",
     "the user publishes in limits.topics_per_channel topics of this channel already"},
    {ErrorCode::limit_members, "LIMIT_MEMBERS",
     "the channel has limits.members_per_channel members already"},
    {ErrorCode::limit_subscriptions, "LIMIT_SUBSCRIPTIONS",
     "the user subscribes to limits.publishers_per_subscription (at most 64) publishers of this "
     "topic, or in limits.subscribed_topics_per_channel topics of this channel, already"},
    {ErrorCode::limit_watch, "LIMIT_WATCH", "the user watches limits.watched_users users already"},
    {ErrorCode::no_route, "NO_ROUTE",
     "no live backend node or allow-listed HTTP backend serves this URI"},
    {ErrorCode::timeout, "TIMEOUT", "the backend did not answer in time"},
    {ErrorCode::backend_error, "BACKEND_ERROR", "the backend failed to handle the request"},
    {ErrorCode::rate_limited, "RATE_LIMITED", "too many requests from this user; slow down"},
    {ErrorCode::unavailable, "UNAVAILABLE",
     "the gateway cannot serve this now (shutting down, broker link down, its shared state in "
     "Redis out of reach: docs/cluster.md); nothing was done, send it again"},
    {ErrorCode::major_revision_mismatch, "MAJOR_REVISION_MISMATCH",
     "the call's major_revision is not the metadata's current one (0: never written); nothing "
     "changed"},
    {ErrorCode::item_revision_mismatch, "ITEM_REVISION_MISMATCH",
     "an item's revision is not that item's current one (0: absent); nothing changed"},
    {ErrorCode::item_not_found, "ITEM_NOT_FOUND",
     "update of a metadata key that does not exist (set creates it); nothing changed"},
    {ErrorCode::limit_metadata, "LIMIT_METADATA",
     "a storage.* limit refuses the call (value, call or metadata size, item count); the message "
     "names the key"},
    {ErrorCode::limit_metadata_subscriptions, "LIMIT_METADATA_SUBSCRIPTIONS",
     "the session subscribes to storage.max_metadata_subscriptions users' metadata already"},
    {ErrorCode::limit_state, "LIMIT_STATE",
     "a storage.max_state_* limit refuses the presence states; the message names the key"},
    {ErrorCode::lock_not_found, "LOCK_NOT_FOUND", "no lock of that name is set in the channel"},
    {ErrorCode::lock_exists, "LOCK_EXISTS", "set_lock of a lock name that is set already"},
    {ErrorCode::lock_held, "LOCK_HELD", "another user holds the lock (acquire without retry)"},
    {ErrorCode::not_lock_holder, "NOT_LOCK_HOLDER",
     "the caller (or the uid named) does not hold the lock; for lock-guarded metadata, the caller "
     "does not hold the guarding lock"},
    {ErrorCode::limit_locks, "LIMIT_LOCKS",
     "the channel has storage.max_locks_per_channel locks, or the lock storage.max_lock_waiters "
     "waiters, already"},
    {ErrorCode::peer_offline, "PEER_OFFLINE",
     "the peer has no live session and the message was sent with store false (nothing was kept)"},
    {ErrorCode::limit_inbox, "LIMIT_INBOX",
     "an inbox.* limit refuses the message (its size, the inboxes' total bytes); the message names "
     "the key"},
    {ErrorCode::no_history, "NO_HISTORY",
     "the channel topic keeps no history (history.streams names the streams that do)"},
    {ErrorCode::invitation_not_found, "INVITATION_NOT_FOUND",
     "no invitation of that id is in flight for the caller (it ended, or it is another pair's)"},
    {ErrorCode::invitation_wrong_side, "INVITATION_WRONG_SIDE",
     "the caller of an invitation answers or acknowledges it, or its callee cancels it"},
    {ErrorCode::limit_invitations, "LIMIT_INVITATIONS",
     "an invitations.* limit refuses the invitation (in flight per caller, per callee, in all; "
     "content or response bytes); the message names the key"},
    {ErrorCode::limit_send_queue, "LIMIT_SEND_QUEUE",
     "(the C++ SDK, never the gateway) a QoS 1 message does not fit in the send queue while "
     "reconnecting (ClientConfig::max_send_queue, max_send_queue_bytes)"},
    {ErrorCode::channel_token_required, "CHANNEL_TOKEN_REQUIRED",
     "the channel needs a channel token (channels.stream_token_required, "
     "channels.message_token_required) and the request carried none"},
    {ErrorCode::token_channel_mismatch, "TOKEN_CHANNEL_MISMATCH",
     "the token's channel claim is missing or names another channel"},
};
}  // namespace

const ErrorInfo* error_table(std::size_t* count) {
  *count = std::size(kErrors);
  return kErrors;
}

std::string_view error_name(ErrorCode code) {
  for (const auto& e : kErrors) {
    if (e.code == code) return e.name;
  }
  return "INTERNAL";
}

}  // namespace rtm::gateway
