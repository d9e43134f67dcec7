#include "token_login.hpp"

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include <string_view>

#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::plugin {
namespace {

// Deferring leaves the decision to the next authenticator (the password_file); when nobody
// accepts, Mosquitto refuses the CONNECT.
int defer(const char* client_id, const char* username, const std::string& why) {
  mosquitto_log_printf(MOSQ_LOG_NOTICE, "%s: client '%s' user '%s': no token login (%s)", kLogTag,
                       loggable(client_id).c_str(), loggable(username).c_str(), why.c_str());
  return MOSQ_ERR_PLUGIN_DEFER;
}

// "{uid}" or "{uid}/...": '/' cannot occur in a uid, so no uid is a prefix of another's ids.
bool client_id_fits(const char* client_id, std::string_view uid) {
  if (client_id == nullptr) return false;
  const std::string_view id = client_id;
  return id.size() >= uid.size() && id.compare(0, uid.size(), uid) == 0 &&
         (id.size() == uid.size() || id[uid.size()] == '/');
}

}  // namespace

int check_login(const TokenSettings& settings, mosquitto* client, const char* username,
                const char* password, std::int64_t& expires_at_s) {
  const char* client_id = client ? mosquitto_client_id(client) : nullptr;
  if (username == nullptr || username[0] == '\0') {
    return defer(client_id, username, "no username");
  }
  if (settings.service_users.count(std::string_view(username)) > 0) {
    // Expected for the gateway and backends: quiet, the password_file decides.
    mosquitto_log_printf(MOSQ_LOG_DEBUG, "%s: user '%s' is a service user: left to password_file",
                         kLogTag, loggable(username).c_str());
    return MOSQ_ERR_PLUGIN_DEFER;
  }
  // ACL patterns put %u in a topic level: only a valid uid may get rights by token.
  if (!rtm::topics::is_valid_name(username)) {
    return defer(client_id, username, "the username is not a valid uid");
  }
  if (password == nullptr || password[0] == '\0') {
    return defer(client_id, username, "no password; a login token is expected");
  }
  const auto now = now_s();
  auto claims = rtm::gateway::verify_token(password, settings.secret, now);
  if (!claims) return defer(client_id, username, loggable(claims.error().message));
  if (claims->sub != username) {
    return defer(client_id, username, "the token is for uid '" + loggable(claims->sub) + "'");
  }
  if (settings.client_id_uid_prefix && !client_id_fits(client_id, username)) {
    return defer(client_id, username,
                 "the client id must be the uid or start with '" + loggable(username) + "/'");
  }
  mosquitto_log_printf(MOSQ_LOG_INFO, "%s: client '%s' logged in as '%s' by token (valid %lld s)",
                       kLogTag, loggable(client_id).c_str(), loggable(username).c_str(),
                       static_cast<long long>(claims->exp - now));
  expires_at_s = claims->exp;
  return MOSQ_ERR_SUCCESS;
}

}  // namespace rtm::plugin
