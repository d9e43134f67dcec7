// Mosquitto 2.0 plugin (plugin API v5): a user logs in to the broker with its RTM login token
// as the MQTT password. Username = uid, password = JWT (HS256) signed with the gateway's
// auth.token_secret; the same tokens the gateway's `login` operation takes.
//
// The plugin answers only MOSQ_EVT_BASIC_AUTH. A valid token (signature, exp, nbf) whose `sub`
// is the username is accepted. Anything else is deferred (MOSQ_ERR_PLUGIN_DEFER) so that
// Mosquitto's own password_file can still authenticate service users (the gateway, backends);
// with allow_anonymous false and nobody accepting, Mosquitto refuses the client. Topic rights
// are not decided here: the broker's acl_file (docker/mosquitto/acl) applies to every user,
// whoever authenticated it.
//
// Options (mosquitto.conf, after the `plugin` line):
//   plugin_opt_token_secret       the HS256 secret, at least 32 bytes
//   plugin_opt_token_secret_file  or a file holding it (trailing white space ignored)
//   plugin_opt_service_users      usernames that may never log in with a token, separated by
//                                 commas or spaces (default: rtm-gateway); they are left to the
//                                 password_file, so a token for "rtm-gateway" gets no gateway
//                                 rights.
//   plugin_opt_client_id_rule     uid-prefix (default): a token user's client id must be its
//                                 uid or start with "{uid}/", so that nobody can take over
//                                 (and fire the Will of) another user's connection by reusing
//                                 its client id; any: no rule.
//
// Never crashes the broker: every callback catches everything, all client input is bounded
// before use, and the token itself is never logged.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <cctype>
#include <cstdint>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

#define RTM_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxSecretFileBytes = 4096;
constexpr const char* kDefaultServiceUsers = "rtm-gateway";
constexpr std::size_t kMaxLoggedChars = 80;
constexpr const char* kLogTag = "rtm-auth";

struct Plugin {
  mosquitto_plugin_id_t* id = nullptr;
  std::string secret;
  std::set<std::string, std::less<>> service_users;
  bool client_id_uid_prefix = true;
};

// Client-supplied text made safe for one log line: printable ASCII only, bounded length.
std::string loggable(const char* text) {
  if (text == nullptr) return "(none)";
  std::string out;
  for (std::size_t i = 0; text[i] != '\0'; ++i) {
    if (out.size() >= kMaxLoggedChars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

std::string loggable(const std::string& text) {
  return loggable(text.c_str());
}

std::string trim_trailing_space(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// Reads the secret from a file; an error message (without the secret) on failure.
bool read_secret_file(const std::string& path, std::string& secret, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read plugin_opt_token_secret_file " + path;
    return false;
  }
  std::string text(kMaxSecretFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxSecretFileBytes) {
    error = "plugin_opt_token_secret_file " + path + " is larger than " +
            std::to_string(kMaxSecretFileBytes) + " bytes";
    return false;
  }
  secret = trim_trailing_space(std::move(text));
  return true;
}

std::set<std::string, std::less<>> split_names(const std::string& list) {
  std::set<std::string, std::less<>> names;
  std::string name;
  for (char c : list + ",") {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!name.empty()) names.insert(name);
      name.clear();
    } else {
      name += c;
    }
  }
  return names;
}

// Fills `plugin` from the plugin_opt_* lines; an error message on a bad configuration.
bool configure(Plugin& plugin, const mosquitto_opt* options, int option_count, std::string& error) {
  const char* secret = nullptr;
  const char* secret_file = nullptr;
  std::string service_users = kDefaultServiceUsers;
  for (int i = 0; i < option_count; ++i) {
    const std::string_view key = options[i].key ? options[i].key : "";
    const char* value = options[i].value ? options[i].value : "";
    if (key == "token_secret") {
      secret = value;
    } else if (key == "token_secret_file") {
      secret_file = value;
    } else if (key == "service_users") {
      service_users = value;
    } else if (key == "client_id_rule") {
      const std::string_view rule = value;
      if (rule == "uid-prefix") {
        plugin.client_id_uid_prefix = true;
      } else if (rule == "any") {
        plugin.client_id_uid_prefix = false;
      } else {
        error = "plugin_opt_client_id_rule must be uid-prefix or any, got '" + loggable(value) + "'";
        return false;
      }
    } else {
      error = "unknown option plugin_opt_" + loggable(options[i].key) +
              " (known: token_secret, token_secret_file, service_users, client_id_rule)";
      return false;
    }
  }
  if (secret != nullptr && secret_file != nullptr) {
    error = "set only one of plugin_opt_token_secret and plugin_opt_token_secret_file";
    return false;
  }
  if (secret != nullptr) {
    plugin.secret = secret;
  } else if (secret_file != nullptr) {
    if (!read_secret_file(secret_file, plugin.secret, error)) return false;
  } else {
    error = "plugin_opt_token_secret (or plugin_opt_token_secret_file) is required";
    return false;
  }
  if (plugin.secret.size() < kMinSecretBytes) {
    error = "the token secret is " + std::to_string(plugin.secret.size()) + " bytes; at least " +
            std::to_string(kMinSecretBytes) + " are required" +
            " (the same value as the gateway's auth.token_secret)";
    return false;
  }
  plugin.service_users = split_names(service_users);
  return true;
}

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

int check_login(const Plugin& plugin, mosquitto* client, const char* username,
                const char* password) {
  const char* client_id = client ? mosquitto_client_id(client) : nullptr;
  if (username == nullptr || username[0] == '\0') {
    return defer(client_id, username, "no username");
  }
  if (plugin.service_users.count(std::string_view(username)) > 0) {
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
  const auto now_s = static_cast<std::int64_t>(std::time(nullptr));
  auto claims = rtm::gateway::verify_token(password, plugin.secret, now_s);
  if (!claims) return defer(client_id, username, loggable(claims.error().message));
  if (claims->sub != username) {
    return defer(client_id, username, "the token is for uid '" + loggable(claims->sub) + "'");
  }
  if (plugin.client_id_uid_prefix && !client_id_fits(client_id, username)) {
    return defer(client_id, username,
                 "the client id must be the uid or start with '" + loggable(username) + "/'");
  }
  mosquitto_log_printf(MOSQ_LOG_INFO, "%s: client '%s' logged in as '%s' by token (valid %lld s)",
                       kLogTag, loggable(client_id).c_str(), loggable(username).c_str(),
                       static_cast<long long>(claims->exp - now_s));
  return MOSQ_ERR_SUCCESS;
}

int on_basic_auth(int /*event*/, void* event_data, void* userdata) {
  try {
    const auto* plugin = static_cast<const Plugin*>(userdata);
    auto* auth = static_cast<mosquitto_evt_basic_auth*>(event_data);
    if (plugin == nullptr || auth == nullptr) return MOSQ_ERR_PLUGIN_DEFER;
    return check_login(*plugin, auth->client, auth->username, auth->password);
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "%s: login check failed: %s", kLogTag, e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "%s: login check failed", kLogTag);
  }
  return MOSQ_ERR_PLUGIN_DEFER;  // never accept on an internal failure
}

}  // namespace

RTM_PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count,
                                               const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

RTM_PLUGIN_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                                            mosquitto_opt* options, int option_count) {
  try {
    auto plugin = std::make_unique<Plugin>();
    plugin->id = identifier;
    std::string error;
    if (!configure(*plugin, options, option_count, error)) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "%s: %s", kLogTag, error.c_str());
      return MOSQ_ERR_INVAL;
    }
    const int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth,
                                               nullptr, plugin.get());
    if (rc != MOSQ_ERR_SUCCESS) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "%s: cannot register for basic auth (error %d)", kLogTag,
                           rc);
      return rc;
    }
    std::string services;
    for (const auto& name : plugin->service_users)
      services += (services.empty() ? "" : ", ") + name;
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "%s: token login enabled; service users (password_file): %s", kLogTag,
                         services.empty() ? "(none)" : services.c_str());
    *userdata = plugin.release();
    return MOSQ_ERR_SUCCESS;
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "%s: cannot start: %s", kLogTag, e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "%s: cannot start", kLogTag);
  }
  return MOSQ_ERR_UNKNOWN;
}

RTM_PLUGIN_EXPORT int mosquitto_plugin_cleanup(void* userdata, mosquitto_opt* /*options*/,
                                               int /*option_count*/) {
  auto* plugin = static_cast<Plugin*>(userdata);
  if (plugin == nullptr) return MOSQ_ERR_SUCCESS;
  mosquitto_callback_unregister(plugin->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, nullptr);
  delete plugin;
  return MOSQ_ERR_SUCCESS;
}
