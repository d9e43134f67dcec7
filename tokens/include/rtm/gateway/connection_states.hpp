#pragma once
// Connection states and the reasons they change (docs/protocol.md, "Connection states"), as
// codes and names: carried by the gateway's `session` events and the SDK's connection-state
// events alike. The numbers follow anyRTC's ConnectionState / ConnectionChangeReason where
// they fit; numbers never change once released. No I/O.
#include <cstddef>
#include <string_view>

namespace rtm::gateway {

enum class ConnectionStateCode : int {
  disconnected = 1,  // not connected: before login, after logout
  connecting = 2,    // logging in
  connected = 3,     // logged in
  reconnecting = 4,  // the link or the session was lost; the client is getting it back
  aborted = 5,       // the session is over and will not come back by itself
  restored = 6,      // connected again, the session restored
};

enum class ConnectionReason : int {
  login = 1,
  login_success = 2,
  login_failure = 3,
  login_timeout = 4,
  interrupted = 5,
  logout = 6,
  banned_by_server = 7,
  remote_login = 8,
  token_expired = 9,
  kicked = 10,
  restored = 11,
  session_lost = 12,
};

struct ConnectionStateInfo {
  ConnectionStateCode code;
  std::string_view name;     // "RECONNECTING"
  std::string_view meaning;  // one line for docs
};

struct ConnectionReasonInfo {
  ConnectionReason code;
  std::string_view name;     // "TOKEN_EXPIRED"
  std::string_view meaning;  // one line for docs
};

// Every state / reason in numeric order.
const ConnectionStateInfo* connection_state_table(std::size_t* count);
const ConnectionReasonInfo* connection_reason_table(std::size_t* count);
// "RECONNECTING", "TOKEN_EXPIRED"; "UNKNOWN" for a number not in the table.
std::string_view connection_state_name(ConnectionStateCode code);
std::string_view connection_reason_name(ConnectionReason code);

// A `session` event's state ("logged_in", "replaced", "ended") and reason word ("logged_out",
// "token_expired", "connection_lost", "kicked", ...) as the reason code it carries, and the
// connection state the event leaves its session's client in.
struct SessionChange {
  ConnectionReason reason;
  ConnectionStateCode state;
};
SessionChange session_change(std::string_view state, std::string_view reason);

}  // namespace rtm::gateway
