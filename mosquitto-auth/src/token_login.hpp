#pragma once
// Token logins (MOSQ_EVT_BASIC_AUTH): username = uid, password = a login token (JWT HS256)
// signed with the gateway's auth.token_secret.
#include <cstdint>
#include <string>

#include "common.hpp"

struct mosquitto;

namespace rtm::plugin {

struct TokenSettings {
  std::string secret;
  NameSet service_users;
  bool client_id_uid_prefix = true;
};

// MOSQ_ERR_SUCCESS for a valid token whose `sub` is the username (then `expires_at_s` is
// the token's expiry), else MOSQ_ERR_PLUGIN_DEFER (left to the password_file) with the
// reason in the broker's log. The token itself is never logged.
int check_login(const TokenSettings& settings, mosquitto* client, const char* username,
                const char* password, std::int64_t& expires_at_s);

}  // namespace rtm::plugin
