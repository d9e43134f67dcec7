#include "rtm/sdk/types.hpp"

namespace rtm::sdk {

std::string_view error_name(int code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::ok: return "OK";
    case ErrorCode::internal: return "INTERNAL";
    case ErrorCode::bad_request: return "BAD_REQUEST";
    case ErrorCode::not_joined: return "NOT_JOINED";
    case ErrorCode::not_logged_in: return "NOT_LOGGED_IN";
    case ErrorCode::unknown_operation: return "UNKNOWN_OPERATION";
    case ErrorCode::missing_msg_id: return "MISSING_MSG_ID";
    case ErrorCode::bad_json: return "BAD_JSON";
    case ErrorCode::invalid_name: return "INVALID_NAME";
    case ErrorCode::payload_too_large: return "PAYLOAD_TOO_LARGE";
    case ErrorCode::duplicate_parameter: return "DUPLICATE_PARAMETER";
    case ErrorCode::missing_parameter: return "MISSING_PARAMETER";
    case ErrorCode::invalid_parameter: return "INVALID_PARAMETER";
    case ErrorCode::invalid_uri: return "INVALID_URI";
    case ErrorCode::msg_id_reused: return "MSG_ID_REUSED";
    case ErrorCode::not_subscribed: return "NOT_SUBSCRIBED";
    case ErrorCode::not_watched: return "NOT_WATCHED";
    case ErrorCode::not_publisher: return "NOT_PUBLISHER";
    case ErrorCode::forbidden: return "FORBIDDEN";
    case ErrorCode::topic_too_long: return "TOPIC_TOO_LONG";
    case ErrorCode::token_invalid: return "TOKEN_INVALID";
    case ErrorCode::token_bad_signature: return "TOKEN_BAD_SIGNATURE";
    case ErrorCode::token_expired: return "TOKEN_EXPIRED";
    case ErrorCode::token_uid_mismatch: return "TOKEN_UID_MISMATCH";
    case ErrorCode::token_unsupported_alg: return "TOKEN_UNSUPPORTED_ALG";
    case ErrorCode::token_not_yet_valid: return "TOKEN_NOT_YET_VALID";
    case ErrorCode::limit_channels: return "LIMIT_CHANNELS";
    case ErrorCode::limit_topics: return "LIMIT_TOPICS";
    case ErrorCode::limit_members: return "LIMIT_MEMBERS";
    case ErrorCode::limit_subscriptions: return "LIMIT_SUBSCRIPTIONS";
    case ErrorCode::limit_watch: return "LIMIT_WATCH";
    case ErrorCode::no_route: return "NO_ROUTE";
    case ErrorCode::timeout: return "TIMEOUT";
    case ErrorCode::backend_error: return "BACKEND_ERROR";
    case ErrorCode::rate_limited: return "RATE_LIMITED";
    case ErrorCode::unavailable: return "UNAVAILABLE";
    case ErrorCode::major_revision_mismatch: return "MAJOR_REVISION_MISMATCH";
    case ErrorCode::item_revision_mismatch: return "ITEM_REVISION_MISMATCH";
    case ErrorCode::item_not_found: return "ITEM_NOT_FOUND";
    case ErrorCode::limit_metadata: return "LIMIT_METADATA";
    case ErrorCode::limit_metadata_subscriptions: return "LIMIT_METADATA_SUBSCRIPTIONS";
    case ErrorCode::limit_state: return "LIMIT_STATE";
    case ErrorCode::lock_not_found: return "LOCK_NOT_FOUND";
    case ErrorCode::lock_exists: return "LOCK_EXISTS";
    case ErrorCode::lock_held: return "LOCK_HELD";
    case ErrorCode::not_lock_holder: return "NOT_LOCK_HOLDER";
    case ErrorCode::limit_locks: return "LIMIT_LOCKS";
    case ErrorCode::peer_offline:
      return "PEER_OFFLINE";
    case ErrorCode::limit_inbox:
      return "LIMIT_INBOX";
    case ErrorCode::no_history: return "NO_HISTORY";
    case ErrorCode::invitation_not_found:
      return "INVITATION_NOT_FOUND";
    case ErrorCode::invitation_wrong_side:
      return "INVITATION_WRONG_SIDE";
    case ErrorCode::limit_invitations:
      return "LIMIT_INVITATIONS";
    case ErrorCode::limit_send_queue:
      return "LIMIT_SEND_QUEUE";
    case ErrorCode::channel_token_required:
      return "CHANNEL_TOKEN_REQUIRED";
    case ErrorCode::token_channel_mismatch:
      return "TOKEN_CHANNEL_MISMATCH";
  }
  return "UNKNOWN";
}

std::string_view to_string(PeerMessageType type) {
  switch (type) {
    case PeerMessageType::text:
      return "text";
    case PeerMessageType::binary:
      return "binary";
    case PeerMessageType::raw:
      return "raw";
  }
  return "raw";
}

std::string_view to_string(DeliveryStatus status) {
  return status == DeliveryStatus::stored ? "stored" : "delivered";
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  std::string s = error_ + " (" + std::to_string(code_) + ")";
  if (!message_.empty()) s += ": " + message_;
  return s;
}

bool SubscribeResult::all_ok() const {
  for (const auto& u : users) {
    if (!u.status.ok()) return false;
  }
  return true;
}

std::vector<std::string> SubscribeResult::succeeded() const {
  std::vector<std::string> out;
  for (const auto& u : users) {
    if (u.status.ok()) out.push_back(u.uid);
  }
  return out;
}

std::string_view to_string(ConnectionState state) {
  switch (state) {
    case ConnectionState::disconnected: return "disconnected";
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::connected: return "connected";
    case ConnectionState::reconnecting: return "reconnecting";
    case ConnectionState::restored: return "restored";
    case ConnectionState::failed: return "failed";
  }
  return "unknown";
}

std::string_view state_name(ConnectionState state) {
  switch (state) {
    case ConnectionState::disconnected: return "DISCONNECTED";
    case ConnectionState::connecting: return "CONNECTING";
    case ConnectionState::connected: return "CONNECTED";
    case ConnectionState::reconnecting: return "RECONNECTING";
    case ConnectionState::failed: return "ABORTED";
    case ConnectionState::restored: return "RESTORED";
  }
  return "UNKNOWN";
}

std::string_view to_string(ConnectionChangeReason reason) {
  switch (reason) {
    case ConnectionChangeReason::none: return "NONE";
    case ConnectionChangeReason::login: return "LOGIN";
    case ConnectionChangeReason::login_success: return "LOGIN_SUCCESS";
    case ConnectionChangeReason::login_failure: return "LOGIN_FAILURE";
    case ConnectionChangeReason::login_timeout: return "LOGIN_TIMEOUT";
    case ConnectionChangeReason::interrupted: return "INTERRUPTED";
    case ConnectionChangeReason::logout: return "LOGOUT";
    case ConnectionChangeReason::banned_by_server: return "BANNED_BY_SERVER";
    case ConnectionChangeReason::remote_login: return "REMOTE_LOGIN";
    case ConnectionChangeReason::token_expired: return "TOKEN_EXPIRED";
    case ConnectionChangeReason::kicked: return "KICKED";
    case ConnectionChangeReason::restored: return "RESTORED";
    case ConnectionChangeReason::session_lost: return "SESSION_LOST";
  }
  return "UNKNOWN";
}

std::string to_string(const ConnectionStateEvent& event) {
  std::string out = std::string(to_string(event.state)) + " (" +
                    std::string(to_string(event.reason)) + ")";
  if (!event.message.empty()) out += ": " + event.message;
  return out;
}

std::string_view to_string(ChannelEventType type) {
  switch (type) {
    case ChannelEventType::snapshot: return "snapshot";
    case ChannelEventType::member_joined: return "member_joined";
    case ChannelEventType::member_left: return "member_left";
    case ChannelEventType::member_timed_out: return "member_timed_out";
    case ChannelEventType::publisher_joined: return "publisher_joined";
    case ChannelEventType::publisher_left: return "publisher_left";
    case ChannelEventType::subscription_refused:
      return "subscription_refused";
  }
  return "unknown";
}

const MetadataItem* Metadata::find(std::string_view key) const {
  for (const auto& item : items) {
    if (item.key == key) return &item;
  }
  return nullptr;
}

std::string_view to_string(StorageEventType type) {
  switch (type) {
    case StorageEventType::snapshot:
      return "snapshot";
    case StorageEventType::set:
      return "set";
    case StorageEventType::update:
      return "update";
    case StorageEventType::remove:
      return "remove";
  }
  return "unknown";
}

std::string_view to_string(LockEventType type) {
  switch (type) {
    case LockEventType::set:
      return "set";
    case LockEventType::removed:
      return "removed";
    case LockEventType::acquired:
      return "acquired";
    case LockEventType::released:
      return "released";
    case LockEventType::expired:
      return "expired";
  }
  return "unknown";
}

}  // namespace rtm::sdk
