#include "rtm/gateway/config.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "rtm/topics/tree.hpp"

namespace rtm::gateway {
namespace {

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out += '\n';
    out += l;
  }
  return out;
}

std::string quoted(const YAML::Node& node) {
  if (node.IsScalar()) return "\"" + node.Scalar() + "\"";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

// Reads one YAML mapping against a fixed set of keys, collecting problems with their
// key path instead of stopping at the first.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, std::vector<std::string>& problems)
      : node_(node), path_(std::move(path)), problems_(problems) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      problem(path_.empty() ? "config" : path_, "expected a mapping, got " + quoted(node_));
      valid_ = false;
    }
  }
  ~Section() {
    if (!valid_ || !node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      // Not as<std::string>(): it throws on a non-scalar key, and this is a destructor.
      const auto key = kv.first.IsScalar() ? kv.first.Scalar() : "<" + quoted(kv.first) + ">";
      if (!known_.count(key)) problem(key_path(key), "unknown key");
    }
  }
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;

  std::string key_path(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

  void problem(const std::string& path, const std::string& what) {
    problems_.push_back(path + ": " + what);
  }

  YAML::Node child(const std::string& key) {
    known_.insert(key);
    if (!valid_ || !node_ || !node_.IsMap()) return YAML::Node();
    return node_[key];
  }

  void string(const std::string& key, std::string& out,
              const std::function<std::string(const std::string&)>& check = {}) {
    auto n = child(key);
    if (!n || n.IsNull()) return;
    if (!n.IsScalar()) return problem(key_path(key), "expected a string, got " + quoted(n));
    std::string value = n.Scalar();
    if (check) {
      if (auto why = check(value); !why.empty()) return problem(key_path(key), why);
    }
    out = value;
  }

  template <class Int>
  void integer(const std::string& key, Int& out, long long min, long long max) {
    auto n = child(key);
    if (!n || n.IsNull()) return;
    long long value = 0;
    bool ok = n.IsScalar();
    if (ok) {
      try {
        std::size_t used = 0;
        value = std::stoll(n.Scalar(), &used, 10);
        ok = used == n.Scalar().size();
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) return problem(key_path(key), "expected a whole number, got " + quoted(n));
    if (value < min || value > max) {
      return problem(key_path(key), "must be between " + std::to_string(min) + " and " +
                                        std::to_string(max) + ", got " + std::to_string(value));
    }
    out = static_cast<Int>(value);
  }

 private:
  YAML::Node node_;
  std::string path_;
  std::vector<std::string>& problems_;
  std::set<std::string> known_;
  bool valid_ = true;
};

std::string check_broker_uri(const std::string& uri) { return broker_uri_error(uri).value_or(""); }

std::string check_prefix(const std::string& prefix) {
  if (auto why = topics::TopicTree::prefix_error(prefix)) return *why;
  return {};
}

std::string check_client_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return "must be 1-64 bytes, got " + std::to_string(id.size());
  return {};
}

std::string check_secret(const std::string& secret) {
  if (secret.size() < 32) {
    return "must be at least 32 bytes (HS256 needs a key as long as its hash), got " +
           std::to_string(secret.size());
  }
  return {};
}

std::string check_level(const std::string& level) {
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "off"};
  if (!levels.count(level)) {
    return "expected one of trace, debug, info, warn, error, off, got \"" + level + "\"";
  }
  return {};
}

Config parse(const YAML::Node& root) {
  Config cfg;
  std::vector<std::string> problems;
  {
    Section top(root, "", problems);
    {
      Section s(top.child("broker"), "broker", problems);
      s.string("uri", cfg.broker.uri, check_broker_uri);
      s.string("client_id", cfg.broker.client_id, check_client_id);
      s.string("username", cfg.broker.username);
      s.string("password", cfg.broker.password);
      s.integer("keepalive_s", cfg.broker.keepalive_s, 1, 65535);
      s.integer("connect_timeout_s", cfg.broker.connect_timeout_s, 1, 600);
      s.integer("reconnect_min_ms", cfg.broker.reconnect_min_ms, 10, 600000);
      s.integer("reconnect_max_ms", cfg.broker.reconnect_max_ms, 10, 600000);
      if (cfg.broker.reconnect_max_ms < cfg.broker.reconnect_min_ms) {
        s.problem("broker.reconnect_max_ms", "must not be below broker.reconnect_min_ms");
      }
    }
    {
      Section s(top.child("topics"), "topics", problems);
      s.string("prefix", cfg.topics.prefix, check_prefix);
    }
    {
      auto node = top.child("auth");
      Section s(node, "auth", problems);
      s.string("token_secret", cfg.auth.token_secret, check_secret);
      // Missing, or null ("token_secret:" with no value); not looked up in a non-mapping,
      // where yaml-cpp's operator[] throws (the Section reported that already).
      if (!node || node.IsNull() ||
          (node.IsMap() && (!node["token_secret"] || node["token_secret"].IsNull()))) {
        s.problem("auth.token_secret", "is required");
      }
      s.integer("token_warn_before_s", cfg.auth.token_warn_before_s, 0, 86400);
      s.integer("max_token_ttl_s", cfg.auth.max_token_ttl_s, 1, 10LL * 365 * 86400);
    }
    {
      Section s(top.child("log"), "log", problems);
      s.string("level", cfg.log.level, check_level);
      s.integer("stats_interval_s", cfg.log.stats_interval_s, 0, 86400);
    }
    {
      Section s(top.child("requests"), "requests", problems);
      s.integer("max_payload_bytes", cfg.requests.max_payload_bytes, 16, 256 * 1024 * 1024);
      s.integer("dedup_window_s", cfg.requests.dedup_window_s, 0, 3600);
      s.integer("dedup_max_entries", cfg.requests.dedup_max_entries, 0, 10000000);
      s.integer("queue_capacity", cfg.requests.queue_capacity, 100, 100000000);
    }
    {
      Section s(top.child("limits"), "limits", problems);
      s.integer("channels_per_user", cfg.limits.channels_per_user, 1, 100000);
      s.integer("topics_per_channel", cfg.limits.topics_per_channel, 1, 10000);
      s.integer("members_per_channel", cfg.limits.members_per_channel, 1, 10000000);
      s.integer("publishers_per_subscription", cfg.limits.publishers_per_subscription, 1, 64);
      s.integer("watched_users", cfg.limits.watched_users, 0, 1000000);
    }
  }
  if (!problems.empty()) throw ConfigError(std::move(problems));
  return cfg;
}

}  // namespace

std::optional<std::string> broker_uri_error(const std::string& uri) {
  static const std::regex pattern(R"(^(tcp|ssl|mqtt|mqtts)://[A-Za-z0-9._\-\[\]:]+:([0-9]{1,5})$)");
  std::smatch m;
  if (!std::regex_match(uri, m, pattern) || std::stoi(m[2]) < 1 || std::stoi(m[2]) > 65535) {
    return "expected tcp://host:port, got \"" + uri + "\"";
  }
  return std::nullopt;
}

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

Config load_config_text(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({"config: not valid YAML at line " + std::to_string(e.mark.line + 1) +
                       ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg});
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  return parse(root);
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError({path + ": cannot be read"});
  std::stringstream text;
  text << in.rdbuf();
  try {
    return load_config_text(text.str());
  } catch (const ConfigError& e) {
    std::vector<std::string> problems;
    for (const auto& p : e.problems()) problems.push_back(path + ": " + p);
    throw ConfigError(std::move(problems));
  }
}

}  // namespace rtm::gateway
