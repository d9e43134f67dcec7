// Mosquitto 2.0 plugin (plugin API v5) of rtm-mqtt-gateway: token logins, and (when turned
// on) the gateway's grants enforced by the broker (docs/security.md) and the zero-hop
// bridge, the gateway's mapping rules carried out inside the broker (docs/mapping.md).
//
// Token logins (token_login.cpp): a user logs in to the broker with its RTM login token as
// the MQTT password. Username = uid, password = JWT (HS256) signed with the gateway's
// auth.token_secret; the same tokens the gateway's `login` operation takes. A valid token
// (signature, exp, nbf) whose `sub` is the username is accepted. Anything else is deferred
// (MOSQ_ERR_PLUGIN_DEFER) so that Mosquitto's own password_file can still authenticate
// service users (the gateway, backends); with allow_anonymous false and nobody accepting,
// Mosquitto refuses the client.
//
// Broker-enforced channels (enforcement.cpp, plugin_opt_enforce_grants true): the gateway
// publishes grant records (rtm/grants/records.hpp) on {prefix}/gateway/grants as its
// service user; the plugin applies them and answers every access check of a channel level
// from them: who reads which publisher's stream, who publishes where, who reads a channel's
// events, who may write to an inbox. It only ever restricts: what it does not refuse, the
// broker's acl_file decides (its %u ownership rules), so the acl_file is required with
// enforcement on. Connections follow the session: a token connection is closed by the
// broker when its token expires (unless a T record renewed it), and K / k records close a
// user's connections. Until the first full set of records arrives, channel levels are
// closed to everyone but the service users.
//
// Options (mosquitto.conf, after the `plugin` line):
//   plugin_opt_token_secret       the HS256 secret, at least 32 bytes
//   plugin_opt_token_secret_file  or a file holding it (trailing white space ignored)
//   plugin_opt_service_users      usernames that may never log in with a token, separated by
//                                 commas or spaces (default: rtm-gateway); they are left to the
//                                 password_file, so a token for "rtm-gateway" gets no gateway
//                                 rights. With enforcement on, their access is never
//                                 restricted by the grants.
//   plugin_opt_client_id_rule     uid-prefix (default): a token user's client id must be its
//                                 uid or start with "{uid}/", so that nobody can take over
//                                 (and fire the Will of) another user's connection by reusing
//                                 its client id; any: no rule.
//   plugin_opt_enforce_grants     true | false (default false: token logins only)
//   plugin_opt_topic_prefix       the gateway's topics.prefix (default rtm)
//   plugin_opt_tree_rules         true (default) | false: with enforcement, the plugin also
//                                 allows a token user the tree's own rights (its requests,
//                                 responses, events, inbox and presence, everyone's
//                                 presence: the pattern lines of the shipped ACL) without
//                                 asking the acl_file; false: it only refuses.
//   plugin_opt_grants_from        the one service user whose messages on
//                                 {prefix}/gateway/grants are grant records, and on
//                                 {prefix}/gateway/bridge/control bridge records (default
//                                 rtm-gateway); it must be one of the service users.
//   plugin_opt_bridge             true | false (default false): the zero-hop bridge
//                                 (bridge.cpp; the gateway's mapping.mode broker): the
//                                 gateway's mapping rules carried out inside the broker.
// An unknown option, a bad value or (with enforcement on) a broker config without an
// acl_file stops the broker at start.
//
// Never crashes the broker: every callback catches everything, all client input is bounded
// before use, and the token itself is never logged.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <cctype>
#include <cstdint>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "bridge.hpp"
#include "common.hpp"
#include "enforcement.hpp"
#include "rtm/topics/tree.hpp"
#include "token_login.hpp"

#define RTM_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace rtm::plugin;

constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxSecretFileBytes = 4096;
constexpr const char* kDefaultServiceUsers = "rtm-gateway";

struct Plugin {
  mosquitto_plugin_id_t* id = nullptr;
  TokenSettings tokens;
  bool enforce = false;
  EnforcementSettings enforcement_settings;
  std::unique_ptr<Enforcement> enforcement;  // with plugin_opt_enforce_grants true
  bool bridge_on = false;
  std::unique_ptr<Bridge> bridge;  // with plugin_opt_bridge true
  rtm::grants::LogBudget error_log{5, 60};
};

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

NameSet split_names(const std::string& list) {
  NameSet names;
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
        plugin.tokens.client_id_uid_prefix = true;
      } else if (rule == "any") {
        plugin.tokens.client_id_uid_prefix = false;
      } else {
        error = "plugin_opt_client_id_rule must be uid-prefix or any, got '" + loggable(value) + "'";
        return false;
      }
    } else if (key == "enforce_grants") {
      const std::string_view flag = value;
      if (flag != "true" && flag != "false") {
        error = "plugin_opt_enforce_grants must be true or false, got '" + loggable(value) + "'";
        return false;
      }
      plugin.enforce = flag == "true";
    } else if (key == "topic_prefix") {
      if (auto why = rtm::topics::TopicTree::prefix_error(value)) {
        error = "plugin_opt_topic_prefix: " + loggable(*why);
        return false;
      }
      plugin.enforcement_settings.prefix = value;
    } else if (key == "grants_from") {
      plugin.enforcement_settings.grants_from = value;
    } else if (key == "bridge") {
      const std::string_view flag = value;
      if (flag != "true" && flag != "false") {
        error = "plugin_opt_bridge must be true or false, got '" + loggable(value) + "'";
        return false;
      }
      plugin.bridge_on = flag == "true";
    } else if (key == "tree_rules") {
      const std::string_view flag = value;
      if (flag != "true" && flag != "false") {
        error = "plugin_opt_tree_rules must be true or false, got '" + loggable(value) + "'";
        return false;
      }
      plugin.enforcement_settings.tree_rules = flag == "true";
    } else {
      error = "unknown option plugin_opt_" + loggable(options[i].key) +
              " (known: token_secret, token_secret_file, service_users, client_id_rule, "
              "enforce_grants, topic_prefix, grants_from, tree_rules, bridge)";
      return false;
    }
  }
  if (secret != nullptr && secret_file != nullptr) {
    error = "set only one of plugin_opt_token_secret and plugin_opt_token_secret_file";
    return false;
  }
  if (secret != nullptr) {
    plugin.tokens.secret = secret;
  } else if (secret_file != nullptr) {
    if (!read_secret_file(secret_file, plugin.tokens.secret, error)) return false;
  } else {
    error = "plugin_opt_token_secret (or plugin_opt_token_secret_file) is required";
    return false;
  }
  if (plugin.tokens.secret.size() < kMinSecretBytes) {
    error = "the token secret is " + std::to_string(plugin.tokens.secret.size()) +
            " bytes; at least " + std::to_string(kMinSecretBytes) + " are required" +
            " (the same value as the gateway's auth.token_secret)";
    return false;
  }
  plugin.tokens.service_users = split_names(service_users);
  // A grants sender that could log in by token would let whoever gets a token for that
  // name rewrite everyone's rights.
  const auto& from = plugin.enforcement_settings.grants_from;
  if ((plugin.enforce || plugin.bridge_on) && plugin.tokens.service_users.count(from) == 0) {
    error = "plugin_opt_grants_from '" + loggable(from) +
            "' must be one of plugin_opt_service_users (users that never log in by token)";
    return false;
  }
  if (plugin.enforce) {
    std::string where;
    const auto has_acl_file = broker_config_has_acl_file(where);
    if (has_acl_file && !*has_acl_file) {
      error = "plugin_opt_enforce_grants true needs an acl_file (docker/mosquitto/acl): the plugin "
              "only restricts, and with nothing else granting, Mosquitto would refuse every "
              "message; none in " + where;
      return false;
    }
    if (!has_acl_file) {
      mosquitto_log_printf(MOSQ_LOG_WARNING,
                           "%s: could not check that the broker has an acl_file (%s); without "
                           "one every message is refused",
                           kLogTag, where.c_str());
    }
  }
  return true;
}

void log_failure(Plugin* plugin, const char* what, const char* why) {
  std::uint64_t suppressed = 0;
  if (plugin != nullptr && !plugin->error_log.allow(now_s(), suppressed)) return;
  mosquitto_log_printf(MOSQ_LOG_ERR, "%s: %s failed: %s", kLogTag, what, why);
}

int on_basic_auth(int /*event*/, void* event_data, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  try {
    auto* auth = static_cast<mosquitto_evt_basic_auth*>(event_data);
    if (plugin == nullptr || auth == nullptr) return MOSQ_ERR_PLUGIN_DEFER;
    std::int64_t expires_at_s = 0;
    const int rc =
        check_login(plugin->tokens, auth->client, auth->username, auth->password, expires_at_s);
    if (rc == MOSQ_ERR_SUCCESS && plugin->enforcement &&
        !plugin->enforcement->token_login(auth->client, auth->username, expires_at_s)) {
      return MOSQ_ERR_PLUGIN_DEFER;
    }
    return rc;
  } catch (const std::exception& e) {
    log_failure(plugin, "login check", e.what());
  } catch (...) {
    log_failure(plugin, "login check", "unknown error");
  }
  return MOSQ_ERR_PLUGIN_DEFER;  // never accept on an internal failure
}

int on_acl_check(int /*event*/, void* event_data, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  try {
    auto* check = static_cast<mosquitto_evt_acl_check*>(event_data);
    if (plugin == nullptr || check == nullptr || !plugin->enforcement) return MOSQ_ERR_ACL_DENIED;
    return plugin->enforcement->acl_check(*check);
  } catch (const std::exception& e) {
    log_failure(plugin, "access check", e.what());
  } catch (...) {
    log_failure(plugin, "access check", "unknown error");
  }
  return MOSQ_ERR_ACL_DENIED;  // fail closed
}

int on_message(int /*event*/, void* event_data, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  auto* message = static_cast<mosquitto_evt_message*>(event_data);
  try {
    if (plugin == nullptr || message == nullptr) return MOSQ_ERR_SUCCESS;
    if (plugin->enforcement) {
      const int rc = plugin->enforcement->message(*message);
      if (rc != MOSQ_ERR_SUCCESS) return rc;
    }
    if (plugin->bridge) return plugin->bridge->message(*message);
    return MOSQ_ERR_SUCCESS;
  } catch (const std::exception& e) {
    log_failure(plugin, "message", e.what());
  } catch (...) {
    log_failure(plugin, "message", "unknown error");
  }
  // Grant and bridge records are never delivered, even when applying them failed.
  if (plugin != nullptr && message != nullptr && message->topic != nullptr &&
      ((plugin->enforcement && plugin->enforcement->grants_topic() == message->topic) ||
       (plugin->bridge && plugin->bridge->control_topic() == message->topic))) {
    return kConsumeMessage;
  }
  return MOSQ_ERR_SUCCESS;
}

int on_tick(int /*event*/, void* /*event_data*/, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  try {
    if (plugin != nullptr && plugin->enforcement) plugin->enforcement->tick();
    if (plugin != nullptr && plugin->bridge) plugin->bridge->tick();
  } catch (const std::exception& e) {
    log_failure(plugin, "tick", e.what());
  } catch (...) {
    log_failure(plugin, "tick", "unknown error");
  }
  return MOSQ_ERR_SUCCESS;
}

int on_reload(int /*event*/, void* /*event_data*/, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  try {
    if (plugin != nullptr && plugin->bridge) plugin->bridge->reload();
  } catch (const std::exception& e) {
    log_failure(plugin, "reload", e.what());
  } catch (...) {
    log_failure(plugin, "reload", "unknown error");
  }
  return MOSQ_ERR_SUCCESS;
}

int on_disconnect(int /*event*/, void* event_data, void* userdata) {
  auto* plugin = static_cast<Plugin*>(userdata);
  try {
    auto* event = static_cast<mosquitto_evt_disconnect*>(event_data);
    if (plugin != nullptr && plugin->enforcement && event != nullptr) {
      plugin->enforcement->disconnect(*event);
    }
  } catch (const std::exception& e) {
    log_failure(plugin, "disconnect", e.what());
  } catch (...) {
    log_failure(plugin, "disconnect", "unknown error");
  }
  return MOSQ_ERR_SUCCESS;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback callback;
  const char* name;
};
// Which events each part needs; an event is registered once when either part is on.
struct EventUse {
  Registration registration;
  bool enforcement, bridge;
};
constexpr EventUse kEvents[] = {
    {{MOSQ_EVT_ACL_CHECK, on_acl_check, "access checks"}, true, false},
    {{MOSQ_EVT_MESSAGE, on_message, "messages"}, true, true},
    {{MOSQ_EVT_TICK, on_tick, "ticks"}, true, true},
    {{MOSQ_EVT_DISCONNECT, on_disconnect, "disconnects"}, true, false},
    {{MOSQ_EVT_RELOAD, on_reload, "reloads"}, false, true},
};

bool needs(const Plugin& plugin, const EventUse& use) {
  return (use.enforcement && plugin.enforce) || (use.bridge && plugin.bridge_on);
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
    if (plugin->enforce) {
      plugin->enforcement =
          std::make_unique<Enforcement>(plugin->enforcement_settings, plugin->tokens.service_users);
    }
    int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, nullptr,
                                         plugin.get());
    if (rc != MOSQ_ERR_SUCCESS) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "%s: cannot register for basic auth (error %d)", kLogTag,
                           rc);
      return rc;
    }
    if (plugin->bridge_on) {
      BridgeSettings settings;
      settings.prefix = plugin->enforcement_settings.prefix;
      settings.gateway_user = plugin->enforcement_settings.grants_from;
      settings.enforce = plugin->enforce;
      plugin->bridge = std::make_unique<Bridge>(settings, plugin->tokens.service_users);
    }
    for (const auto& use : kEvents) {
      if (!needs(*plugin, use)) continue;
      const auto& r = use.registration;
      rc = mosquitto_callback_register(identifier, r.event, r.callback, nullptr, plugin.get());
      if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "%s: cannot register for %s (error %d)", kLogTag, r.name,
                             rc);
        return rc;
      }
    }
    std::string services;
    for (const auto& name : plugin->tokens.service_users)
      services += (services.empty() ? "" : ", ") + name;
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "%s: token login enabled; service users (password_file): %s", kLogTag,
                         services.empty() ? "(none)" : services.c_str());
    if (plugin->enforce) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE,
                           "%s: grants enforced: prefix '%s', grant records from '%s' on %s; "
                           "channel levels stay closed until the first full set; the tree's "
                           "own rights %s",
                           kLogTag, plugin->enforcement_settings.prefix.c_str(),
                           plugin->enforcement_settings.grants_from.c_str(),
                           plugin->enforcement->grants_topic().c_str(),
                           plugin->enforcement_settings.tree_rules
                               ? "answered by the plugin (plugin_opt_tree_rules true)"
                               : "left to the acl_file");
    } else {
      mosquitto_log_printf(MOSQ_LOG_INFO, "%s: grants not enforced (plugin_opt_enforce_grants false)",
                           kLogTag);
    }
    if (plugin->bridge) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE,
                           "%s: zero-hop bridge on: mapping rules from '%s' on %s; none in force "
                           "until the gateway (mapping.mode broker) sends them",
                           kLogTag, plugin->enforcement_settings.grants_from.c_str(),
                           plugin->bridge->control_topic().c_str());
    }
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
  for (const auto& use : kEvents) {
    if (needs(*plugin, use)) {
      mosquitto_callback_unregister(plugin->id, use.registration.event, use.registration.callback,
                                    nullptr);
    }
  }
  delete plugin;
  return MOSQ_ERR_SUCCESS;
}
