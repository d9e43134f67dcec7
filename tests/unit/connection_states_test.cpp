// The connection states and reasons (docs/protocol.md, "Connection states"): one table in
// the tokens library for the gateway's `session` events, a copy in the SDK for its
// connection-state events, and the table in the docs; all three must agree.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "rtm/gateway/connection_states.hpp"
#include "rtm/sdk/types.hpp"

namespace gw = rtm::gateway;
namespace sdk = rtm::sdk;

namespace {
std::string protocol_doc() {
  std::ifstream in(std::string(RTM_SOURCE_DIR) + "/docs/protocol.md");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

TEST_CASE("connection states and reasons keep anyRTC's numbers and have unique names") {
  std::size_t n_states = 0, n_reasons = 0;
  const auto* states = gw::connection_state_table(&n_states);
  const auto* reasons = gw::connection_reason_table(&n_reasons);
  REQUIRE(n_states == 6);
  REQUIRE(n_reasons == 12);
  // anyRTC's ConnectionState and ConnectionChangeReason, number for number.
  const char* any_states[] = {"DISCONNECTED", "CONNECTING", "CONNECTED", "RECONNECTING", "ABORTED"};
  for (int i = 0; i < 5; ++i) {
    CHECK(static_cast<int>(states[i].code) == i + 1);
    CHECK(states[i].name == any_states[i]);
  }
  const char* any_reasons[] = {"LOGIN",        "LOGIN_SUCCESS", "LOGIN_FAILURE",    "LOGIN_TIMEOUT",
                               "INTERRUPTED",  "LOGOUT",        "BANNED_BY_SERVER", "REMOTE_LOGIN",
                               "TOKEN_EXPIRED"};
  for (int i = 0; i < 9; ++i) {
    CHECK(static_cast<int>(reasons[i].code) == i + 1);
    CHECK(reasons[i].name == any_reasons[i]);
  }
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < n_reasons; ++i) {
    CHECK(static_cast<int>(reasons[i].code) == static_cast<int>(i) + 1);  // no gaps
    CHECK(names.insert(reasons[i].name).second);
    CHECK(gw::connection_reason_name(reasons[i].code) == reasons[i].name);
  }
  CHECK(gw::connection_reason_name(static_cast<gw::ConnectionReason>(99)) == "UNKNOWN");
  CHECK(gw::connection_state_name(static_cast<gw::ConnectionStateCode>(0)) == "UNKNOWN");
}

TEST_CASE("a session event's state and reason word map to one reason code and state") {
  using R = gw::ConnectionReason;
  using S = gw::ConnectionStateCode;
  struct Case {
    const char* state;
    const char* reason;
    R code;
    S next;
  } cases[] = {
      {"logged_in", "", R::login_success, S::connected},
      {"replaced", "logged in elsewhere", R::remote_login, S::aborted},
      {"ended", "logged_out", R::logout, S::disconnected},
      {"ended", "token_expired", R::token_expired, S::aborted},
      {"ended", "kicked", R::kicked, S::aborted},
      {"ended", "connection_lost", R::interrupted, S::reconnecting},
  };
  for (const auto& c : cases) {
    CAPTURE(c.state);
    CAPTURE(c.reason);
    const auto change = gw::session_change(c.state, c.reason);
    CHECK(change.reason == c.code);
    CHECK(change.state == c.next);
  }
}

TEST_CASE("the SDK names every connection state and reason as the shared table does") {
  std::size_t n = 0;
  const auto* states = gw::connection_state_table(&n);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(states[i].name);
    CHECK(sdk::state_name(static_cast<sdk::ConnectionState>(states[i].code)) == states[i].name);
  }
  CHECK(sdk::ConnectionState::failed ==
        static_cast<sdk::ConnectionState>(gw::ConnectionStateCode::aborted));
  const auto* reasons = gw::connection_reason_table(&n);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(reasons[i].name);
    CHECK(sdk::to_string(static_cast<sdk::ConnectionChangeReason>(reasons[i].code)) ==
          reasons[i].name);
  }
  const sdk::ConnectionStateEvent ev{sdk::ConnectionState::failed,
                                     sdk::ConnectionChangeReason::token_expired, "session ended"};
  CHECK(sdk::to_string(ev) == "failed (TOKEN_EXPIRED): session ended");
}

TEST_CASE("docs/protocol.md lists every connection state and reason with its number and meaning") {
  const std::string doc = protocol_doc();
  REQUIRE(!doc.empty());
  std::size_t n = 0;
  const auto* states = gw::connection_state_table(&n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string row = "| " + std::to_string(static_cast<int>(states[i].code)) + " | `" +
                            std::string(states[i].name) + "` | " + std::string(states[i].meaning) +
                            " |";
    CAPTURE(row);
    CHECK(doc.find(row) != std::string::npos);
  }
  const auto* reasons = gw::connection_reason_table(&n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string row = "| " + std::to_string(static_cast<int>(reasons[i].code)) + " | `" +
                            std::string(reasons[i].name) + "` | " +
                            std::string(reasons[i].meaning) + " |";
    CAPTURE(row);
    CHECK(doc.find(row) != std::string::npos);
  }
}
