#include "rtm/gateway/connection_states.hpp"

#include <iterator>

namespace rtm::gateway {
namespace {
constexpr ConnectionStateInfo kStates[] = {
    {ConnectionStateCode::disconnected, "DISCONNECTED",
     "not connected: before login, after logout"},
    {ConnectionStateCode::connecting, "CONNECTING", "connecting to the broker and logging in"},
    {ConnectionStateCode::connected, "CONNECTED", "logged in: requests and messages flow"},
    {ConnectionStateCode::reconnecting, "RECONNECTING",
     "the broker link or the session was lost; the client reconnects and restores the session "
     "by itself (requests wait, messages are queued)"},
    {ConnectionStateCode::aborted, "ABORTED",
     "the session is over and does not come back by itself (replaced, kicked, token expired, "
     "login refused); log in again to go on (the SDK calls it failed)"},
    {ConnectionStateCode::restored, "RESTORED",
     "connected again after RECONNECTING, with the session restored: channels, topics, "
     "subscriptions, watches, metadata subscriptions, presence states"},
};

constexpr ConnectionReasonInfo kReasons[] = {
    {ConnectionReason::login, "LOGIN", "login() was called"},
    {ConnectionReason::login_success, "LOGIN_SUCCESS", "the gateway accepted the login"},
    {ConnectionReason::login_failure, "LOGIN_FAILURE",
     "the broker refused the connection or the gateway refused the login (the message says why)"},
    {ConnectionReason::login_timeout, "LOGIN_TIMEOUT",
     "no answer to the login, or no connection to the broker, within the request timeout"},
    {ConnectionReason::interrupted, "INTERRUPTED",
     "the connection to the broker dropped (network, broker restart); its Will ends the "
     "session at the gateway"},
    {ConnectionReason::logout, "LOGOUT", "the session was logged out"},
    {ConnectionReason::banned_by_server, "BANNED_BY_SERVER",
     "the broker refused to take the client back (not authorized) while reconnecting"},
    {ConnectionReason::remote_login, "REMOTE_LOGIN",
     "a login of the same uid elsewhere replaced the session"},
    {ConnectionReason::token_expired, "TOKEN_EXPIRED",
     "the login token expired: the gateway ended the session (and, where the broker enforces "
     "sessions, the broker closed the connection)"},
    {ConnectionReason::kicked, "KICKED", "an operator ended the session (kick)"},
    {ConnectionReason::restored, "RESTORED",
     "reconnected, and the session kept or logged in again and restored"},
    {ConnectionReason::session_lost, "SESSION_LOST",
     "the gateway ended the session as timed out (an older connection's Will) while the "
     "client stayed connected; the client logs in again and restores it"},
};

template <class Info, std::size_t N, class Code>
std::string_view name_in(const Info (&table)[N], Code code) {
  for (const auto& e : table) {
    if (e.code == code) return e.name;
  }
  return "UNKNOWN";
}
}  // namespace

const ConnectionStateInfo* connection_state_table(std::size_t* count) {
  *count = std::size(kStates);
  return kStates;
}

const ConnectionReasonInfo* connection_reason_table(std::size_t* count) {
  *count = std::size(kReasons);
  return kReasons;
}

std::string_view connection_state_name(ConnectionStateCode code) {
  return name_in(kStates, code);
}

std::string_view connection_reason_name(ConnectionReason code) {
  return name_in(kReasons, code);
}

SessionChange session_change(std::string_view state, std::string_view reason) {
  using R = ConnectionReason;
  using S = ConnectionStateCode;
  if (state == "logged_in") return {R::login_success, S::connected};
  if (state == "replaced") return {R::remote_login, S::aborted};
  if (reason == "logged_out") return {R::logout, S::disconnected};
  if (reason == "token_expired") return {R::token_expired, S::aborted};
  if (reason == "kicked") return {R::kicked, S::aborted};
  if (reason == "replaced") return {R::remote_login, S::aborted};
  return {R::interrupted, S::reconnecting};  // connection_lost: the Will came
}

}  // namespace rtm::gateway
