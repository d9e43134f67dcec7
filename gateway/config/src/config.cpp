#include "rtm/gateway/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "rtm/broker_bridge/records.hpp"
#include "rtm/gateway/redis.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/topics/tree.hpp"
#include "rtm/util/ascii.hpp"

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

  void boolean(const std::string& key, bool& out) {
    auto n = child(key);
    if (!n || n.IsNull()) return;
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (v == "true" || v == "yes" || v == "on") {
      out = true;
    } else if (v == "false" || v == "no" || v == "off") {
      out = false;
    } else {
      problem(key_path(key), "expected true or false, got " + quoted(n));
    }
  }

  // A secret: KEY inline, or KEY_file naming a file that holds it (not both).
  void secret(const std::string& key, std::string& out, const std::string& base_dir,
              const std::function<std::string(const std::string&)>& check = {}) {
    const std::string file_key = key + "_file";
    auto inline_node = child(key);
    auto file_node = child(file_key);
    const bool has_inline = inline_node && !inline_node.IsNull();
    const bool has_file = file_node && !file_node.IsNull();
    if (has_inline && has_file) {
      return problem(key_path(file_key), "give " + key + " or " + file_key + ", not both");
    }
    if (has_inline) return string(key, out, check);
    if (!has_file) return;
    if (!file_node.IsScalar() || file_node.Scalar().empty()) {
      return problem(key_path(file_key), "expected a file path, got " + quoted(file_node));
    }
    std::filesystem::path path(file_node.Scalar());
    if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return problem(key_path(file_key),
                     "cannot read \"" + path.string() + "\": " + std::strerror(errno));
    }
    std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
    if (check) {
      if (auto why = check(value); !why.empty()) {
        return problem(key_path(file_key), "the file's content " + why);
      }
    }
    out = value;
  }

  // Was KEY or KEY_file given?
  bool has(const std::string& key) const {
    if (!valid_ || !node_ || !node_.IsMap()) return false;
    for (const auto& k : {key, key + "_file"}) {
      auto n = node_[k];
      if (n && !n.IsNull()) return true;
    }
    return false;
  }

  // A list of non-empty strings, each checked by `check` ("" when fine, else why not).
  void string_list(const std::string& key, std::vector<std::string>& out,
                   const std::function<std::string(const std::string&)>& check,
                   const std::string& list_name = "a list", const std::string& item_name = "a string") {
    auto n = child(key);
    if (!n || n.IsNull()) return;
    if (!n.IsSequence()) return problem(key_path(key), "expected " + list_name + ", got " + quoted(n));
    out.clear();
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string item_path = key_path(key) + "[" + std::to_string(i) + "]";
      if (!n[i].IsScalar()) {
        problem(item_path, "expected " + item_name + ", got " + quoted(n[i]));
      } else if (auto why = check(n[i].Scalar()); !why.empty()) {
        problem(item_path, why);
      } else {
        out.push_back(n[i].Scalar());
      }
    }
  }

  // A list of uids.
  void uid_list(const std::string& key, std::vector<std::string>& out) {
    string_list(key, out, [](const std::string& v) {
      auto why = topics::name_error(v, "uid");
      return why ? *why : std::string();
    }, "a list of uids", "a uid");
  }

  void number(const std::string& key, double& out, double min, double max) {
    auto n = child(key);
    if (!n || n.IsNull()) return;
    double value = 0;
    bool ok = n.IsScalar();
    if (ok) {
      try {
        std::size_t used = 0;
        value = std::stod(n.Scalar(), &used);
        ok = used == n.Scalar().size();
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) return problem(key_path(key), "expected a number, got " + quoted(n));
    if (!(value >= min && value <= max)) {
      return problem(key_path(key), "must be between " + fmt_number(min) + " and " +
                                        fmt_number(max) + ", got " + n.Scalar());
    }
    out = value;
  }

  static std::string fmt_number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
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

std::string check_host_port(const std::string& listen) {
  static const std::regex pattern(R"(^([A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})$)");
  std::smatch m;
  if (listen.empty()) return {};
  if (!std::regex_match(listen, m, pattern) || std::stoi(m[2]) > 65535) {
    return "expected host:port (e.g. 127.0.0.1:8089) or \"\" for none, got \"" + listen + "\"";
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

// ---------------------------------------------------------------- state.redis, cluster

// Bounds of the cluster's keys: a lease shorter than a busy turn (a full reload, a slow
// commit) would be lost mid-turn; a longer one than a minute stalls the others that long
// when its holder dies. A log shorter than a restart makes every restart a full reload.
constexpr long long kMinTurnLeaseMs = 100;
constexpr long long kMaxTurnLeaseMs = 60000;
constexpr long long kMinLogRetentionS = 10;
constexpr long long kMaxLogRetentionS = 7LL * 86400;
constexpr long long kMaxRedisTimeoutMs = 60000;
constexpr std::size_t kMaxKeyPrefixBytes = 64;

std::string check_redis_uri(const std::string& uri) {
  auto endpoint = redis::parse_uri(uri);
  if (!endpoint) return endpoint.error().message + ", got \"" + uri + "\"";
  return {};
}

// Every key is "{prefix}:...": letters, digits and "-_.:" keep it readable in redis-cli
// and free of Redis Cluster's hash-tag braces and of glob characters (SCAN MATCH).
std::string check_key_prefix(const std::string& prefix) {
  if (prefix.empty() || prefix.size() > kMaxKeyPrefixBytes) {
    return "must be 1-" + std::to_string(kMaxKeyPrefixBytes) + " bytes, got " +
           std::to_string(prefix.size());
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = prefix[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) {
      return "may hold letters, digits, '-', '_', '.' and ':' only, got \"" + prefix + "\" (byte " +
             std::to_string(i) + ")";
    }
  }
  return {};
}

// The group of $share/{group}/{filter}: one topic level without wildcards or '$'.
std::string check_share_group(const std::string& group) {
  if (auto why = topics::name_error(group, "a shared subscription group")) {
    return *why + " (it is one topic level of $share/{group}/...)";
  }
  return {};
}

void parse_redis_state(const YAML::Node& node, const std::string& base_dir, RedisStateConfig& r,
                       std::vector<std::string>& problems) {
  Section s(node, "state.redis", problems);
  s.string("uri", r.uri, check_redis_uri);
  s.secret("password", r.password, base_dir);
  s.string("key_prefix", r.key_prefix, check_key_prefix);
  s.integer("connect_timeout_ms", r.connect_timeout_ms, 1, kMaxRedisTimeoutMs);
  s.integer("command_timeout_ms", r.command_timeout_ms, 1, kMaxRedisTimeoutMs);
  if (!r.password.empty()) {
    if (auto endpoint = redis::parse_uri(r.uri); endpoint && !endpoint->password.empty()) {
      s.problem("state.redis.password",
                "the password is given in state.redis.uri too: keep it in one place (better "
                "password_file than the URI)");
    }
  }
}

// What a cluster cannot share yet: each of these keeps its state in one gateway, so the
// gateways would answer differently (docs/cluster.md).
void cluster_problems(const Config& cfg, std::vector<std::string>& problems) {
  if (!cfg.history.streams.empty()) {
    problems.push_back(
        "history.streams: not shared between gateways yet; with cluster.enabled each gateway "
        "would keep its own copy under its own epoch, and a recovery asked of another "
        "gateway would start over. Remove the streams or run one gateway");
  }
  if (cfg.broker.profile == topics::BrokerProfile::rabbitmq) {
    // Without $share every gateway would get every request and answer it.
    problems.push_back(
        "cluster.enabled: RabbitMQ's MQTT plugin (3.10, Debian 12) has no shared subscriptions "
        "($share/...), so every gateway would take every request; run one gateway on "
        "RabbitMQ, or the cluster on Mosquitto or EMQX");
  }
}

// ---------------------------------------------------------------- mapping section

// "{room}" or a literal: a scalar string, or a problem at `path`.
bool scalar_string(Section& s, const std::string& key, std::string& out, bool required) {
  auto n = s.child(key);
  if (!n || n.IsNull()) {
    if (required) s.problem(s.key_path(key), "is required");
    return false;
  }
  if (!n.IsScalar()) {
    s.problem(s.key_path(key), "expected a string, got " + quoted(n));
    return false;
  }
  out = n.Scalar();
  return true;
}

// An RTM endpoint: {channel, topic, publisher} or {to, from}.
void parse_endpoint(const YAML::Node& node, const std::string& path,
                    std::vector<std::string>& problems, std::string& channel, std::string& topic,
                    std::string& publisher, std::string& to, std::string& from) {
  Section s(node, path, problems);
  const bool is_inbox = node.IsMap() && (node["to"] || node["from"]);
  if (is_inbox) {
    scalar_string(s, "to", to, true);
    scalar_string(s, "from", from, true);
  } else {
    scalar_string(s, "channel", channel, true);
    scalar_string(s, "topic", topic, true);
    scalar_string(s, "publisher", publisher, true);
  }
}

void parse_transform(const YAML::Node& node, const std::string& path,
                     std::vector<std::string>& problems, mapping::TransformSpec& out) {
  if (!node || node.IsNull()) return;
  if (node.IsScalar()) {
    if (node.Scalar() == "pass") return;
    problems.push_back(path + ": expected pass or a mapping with type, got " + quoted(node));
    return;
  }
  Section s(node, path, problems);
  std::string type = "pass";
  s.string("type", type);
  if (type == "pass") {
    out.kind = mapping::TransformKind::pass;
  } else if (type == "envelope") {
    out.kind = mapping::TransformKind::envelope;
    auto fields = s.child("fields");
    if (!fields || !fields.IsMap() || fields.size() == 0) {
      s.problem(path + ".fields", "an envelope needs a mapping of field: template");
    } else {
      for (const auto& kv : fields) {
        const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
        if (!kv.second.IsScalar()) {
          s.problem(path + ".fields." + name, "expected a string template, got " + quoted(kv.second));
          continue;
        }
        out.fields.push_back({name, kv.second.Scalar()});
      }
    }
  } else if (type == "extract") {
    out.kind = mapping::TransformKind::extract;
    scalar_string(s, "pointer", out.pointer, true);
  } else {
    s.problem(path + ".type", "expected pass, envelope or extract, got \"" + type + "\"");
  }
}

// Compiles config.mapping into config.mapping.compiled (loops, captures, names), adding
// a problem per rule error ("mapping.rules[0].source: ...").
void compile_mapping(Config& config, std::vector<std::string>& problems) {
  auto& m = config.mapping;
  if (m.rules.empty() && m.presence.empty()) return;
  auto compiled = broker_bridge::compile_rules(m.rules, m.presence, config.topics.prefix);
  if (!compiled) {
    for (const auto& e : compiled.error()) problems.push_back("mapping." + e.path + ": " + e.message);
    return;
  }
  m.compiled = std::make_shared<const mapping::RuleSet>(std::move(compiled).value());
}

void parse_mapping(const YAML::Node& node, Config& cfg, std::vector<std::string>& problems) {
  if (!node || node.IsNull()) return;
  auto& m = cfg.mapping;
  std::size_t before = problems.size();
  {
    Section s(node, "mapping", problems);
    s.integer("echo_ttl_ms", m.echo_ttl_ms, 0, 600000);
    s.integer("qos0_queue", m.qos0_queue, 1, 10000000);
    s.integer("qos1_queue", m.qos1_queue, 1, 10000000);
    s.integer("max_in_flight", m.max_in_flight, 1, 1000000);
    std::string mode = "relay";
    s.string("mode", mode);
    if (mode == "relay") {
      m.mode = BridgeMode::relay;
    } else if (mode == "broker") {
      m.mode = BridgeMode::broker;
    } else {
      s.problem("mapping.mode", "expected relay or broker, got \"" + mode + "\"");
    }
    if (m.mode == BridgeMode::broker && cfg.broker.profile != topics::BrokerProfile::mosquitto) {
      s.problem("mapping.mode",
                "broker needs Mosquitto with the project's plugin (broker.profile mosquitto); "
                "with " +
                    std::string(topics::broker_profile_name(cfg.broker.profile)) +
                    " the gateway relays (mapping.mode relay)");
    }
    auto rules = s.child("rules");
    if (rules && !rules.IsNull() && !rules.IsSequence()) {
      s.problem("mapping.rules", "expected a list of rules, got " + quoted(rules));
    } else if (rules) {
      for (std::size_t i = 0; i < rules.size(); ++i) {
        const std::string path = "mapping.rules[" + std::to_string(i) + "]";
        mapping::RuleSpec rule;
        Section r(rules[i], path, problems);
        scalar_string(r, "name", rule.name, true);
        std::string direction = "inbound";
        r.string("direction", direction);
        if (direction == "inbound") {
          rule.direction = mapping::Direction::inbound;
        } else if (direction == "outbound") {
          rule.direction = mapping::Direction::outbound;
        } else {
          r.problem(path + ".direction", "expected inbound or outbound, got \"" + direction + "\"");
        }
        auto source = r.child("source");
        auto target = r.child("target");
        if (rule.direction == mapping::Direction::inbound) {
          if (!source || !source.IsScalar()) {
            r.problem(path + ".source", "an inbound rule needs a device topic pattern, e.g. \"coplay/{room}/{player}/input\"");
          } else {
            rule.source.device_topic = source.Scalar();
          }
          if (!target || !target.IsMap()) {
            r.problem(path + ".target", "an inbound rule needs {channel, topic, publisher} or {to, from}");
          } else {
            parse_endpoint(target, path + ".target", problems, rule.target.channel,
                           rule.target.topic, rule.target.publisher, rule.target.inbox_to,
                           rule.target.inbox_from);
          }
        } else {
          if (!source || !source.IsMap()) {
            r.problem(path + ".source", "an outbound rule needs {channel, topic, publisher} or {to, from}");
          } else {
            parse_endpoint(source, path + ".source", problems, rule.source.channel,
                           rule.source.topic, rule.source.publisher, rule.source.inbox_to,
                           rule.source.inbox_from);
          }
          if (!target || !target.IsScalar()) {
            r.problem(path + ".target", "an outbound rule needs a device topic, e.g. \"coplay/{room}/state\"");
          } else {
            rule.target.device_topic = target.Scalar();
          }
        }
        r.integer("qos", rule.qos, 0, 1);
        r.boolean("retain", rule.retain);
        r.boolean("keep_source", rule.keep_source);
        parse_transform(r.child("transform"), path + ".transform", problems, rule.transform);
        m.rules.push_back(std::move(rule));
      }
    }
    auto presence = s.child("presence");
    if (presence && !presence.IsNull() && !presence.IsSequence()) {
      s.problem("mapping.presence", "expected a list of presence rules, got " + quoted(presence));
    } else if (presence) {
      for (std::size_t i = 0; i < presence.size(); ++i) {
        const std::string path = "mapping.presence[" + std::to_string(i) + "]";
        mapping::PresenceRuleSpec rule;
        Section r(presence[i], path, problems);
        scalar_string(r, "name", rule.name, true);
        scalar_string(r, "source", rule.source, true);
        scalar_string(r, "uid", rule.uid, true);
        r.string("online", rule.online_payload);
        r.string("offline", rule.offline_payload);
        m.presence.push_back(std::move(rule));
      }
    }
  }
  if (problems.size() == before) compile_mapping(cfg, problems);
}

// ---------------------------------------------------------------- modules, http_backends

// "http(s)://host[:port][/path]" into `b`; "" when usable, else why not.
std::string parse_base_url(const std::string& url, HttpBackendConfig& b) {
  static const std::regex pattern(
      R"(^(https?)://([A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?$)");
  const std::string expected = "expected http(s)://host[:port][/path], got \"" + url + "\"";
  std::smatch m;
  if (!std::regex_match(url, m, pattern)) return expected;
  int port = m[1] == "https" ? 443 : 80;
  if (m[4].matched) {
    port = std::stoi(m[4]);
    if (port < 1 || port > 65535) return expected;
  }
  b.scheme = m[1];
  b.host = m[2];
  b.port = port;
  std::string path = m[5];
  while (!path.empty() && path.back() == '/') path.pop_back();
  b.base_path = path;
  return {};
}

bool http_token(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string check_header_name(const std::string& name) {
  return http_token(name) ? "" : "expected an HTTP header name, got \"" + name + "\"";
}

void parse_http_backend(const std::string& name, const YAML::Node& node, HttpBackendConfig& b,
                        std::vector<std::string>& problems) {
  const std::string path = "http_backends." + name;
  Section s(node, path, problems);
  if (!node["base_url"] || node["base_url"].IsNull()) {
    s.child("base_url");
    s.problem(path + ".base_url", "is required");
  } else {
    s.string("base_url", b.base_url,
             [&b](const std::string& url) { return parse_base_url(url, b); });
  }
  s.integer("timeout_ms", b.timeout_ms, 1, 600000);
  s.string("uid_header", b.uid_header, check_header_name);
  s.string("ca_file", b.ca_file, [&b](const std::string& file) -> std::string {
    if (file.empty()) return {};
    if (b.scheme == "http") return "is only for https:// backends";
    std::ifstream in(file);
    return in ? "" : "cannot be read: \"" + file + "\"";
  });

  auto headers = s.child("headers");
  if (headers && !headers.IsNull()) {
    if (!headers.IsMap()) {
      s.problem(path + ".headers", "expected a mapping of name: value, got " + quoted(headers));
    } else {
      b.headers.clear();
      for (const auto& kv : headers) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "<" + quoted(kv.first) + ">";
        const std::string key_path = path + ".headers." + key;
        if (!http_token(key)) {
          s.problem(key_path, "expected an HTTP header name");
        } else if (!kv.second.IsScalar()) {
          s.problem(key_path, "expected a string, got " + quoted(kv.second));
        } else if (kv.second.Scalar().find_first_of("\r\n") != std::string::npos) {
          s.problem(key_path, "a header value cannot hold a line break");
        } else if (util::ascii_lower(key) == util::ascii_lower(b.uid_header)) {
          s.problem(key_path, "is the uid header, which the gateway sets itself");
        } else {
          b.headers.emplace_back(key, kv.second.Scalar());
        }
      }
    }
  }

  auto pass = s.child("pass_headers");
  if (pass && !pass.IsNull()) {
    if (!pass.IsSequence()) {
      s.problem(path + ".pass_headers", "expected a list of header names, got " + quoted(pass));
    } else {
      static const std::set<std::string> never{"host", "content-length", "transfer-encoding",
                                               "connection", "te", "upgrade", "trailer",
                                               "keep-alive"};
      b.pass_headers.clear();
      for (std::size_t i = 0; i < pass.size(); ++i) {
        const std::string item_path = path + ".pass_headers[" + std::to_string(i) + "]";
        const auto& item = pass[i];
        if (!item.IsScalar() || !http_token(item.Scalar())) {
          s.problem(item_path, "expected an HTTP header name, got " + quoted(item));
        } else if (never.count(util::ascii_lower(item.Scalar()))) {
          s.problem(item_path, item.Scalar() + " is set by the HTTP client, not passed");
        } else if (util::ascii_lower(item.Scalar()) == util::ascii_lower(b.uid_header)) {
          s.problem(item_path, "is the uid header, which callers may never set");
        } else {
          b.pass_headers.push_back(item.Scalar());
        }
      }
    }
  }
}

void parse_modules(Section& top, Config& cfg, std::vector<std::string>& problems) {
  {
    auto& m = cfg.modules;
    Section s(top.child("modules"), "modules", problems);
    s.integer("timeout_ms", m.timeout_ms, 1, 3600000);
    s.integer("max_pending", m.max_pending, 1, 10000000);
    s.integer("max_pending_per_user", m.max_pending_per_user, 1, 1000000);
    s.integer("max_result_bytes", m.max_result_bytes, 16, 256 * 1024 * 1024);
    s.integer("cache_max_entries", m.cache_max_entries, 0, 100000000);
    s.integer("http_threads", m.http_threads, 1, 64);
    s.boolean("require_login", m.require_login);
    s.integer("announce_wait_ms", m.announce_wait_ms, 0, 60000);
  }
  auto node = top.child("http_backends");
  if (!node || node.IsNull()) return;
  if (!node.IsMap()) {
    problems.push_back("http_backends: expected a mapping of NAME: {base_url: ...}, got " +
                       quoted(node));
    return;
  }
  for (const auto& kv : node) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "<" + quoted(kv.first) + ">";
    bool good = !name.empty() && name.size() <= 64;
    for (char c : name) {
      good = good && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                      c == '_' || c == '~');
    }
    if (!good) {
      problems.push_back("http_backends." + name +
                         ": a backend name is the host of http://NAME/...: 1-64 lower-case "
                         "letters, digits, '-', '.', '_' or '~'");
      continue;
    }
    if (!kv.second.IsMap()) {
      problems.push_back("http_backends." + name + ": expected a mapping with base_url, got " +
                         quoted(kv.second));
      continue;
    }
    HttpBackendConfig backend;
    parse_http_backend(name, kv.second, backend, problems);
    cfg.http_backends[name] = std::move(backend);
  }
}

Config parse(const YAML::Node& root, const std::string& base_dir) {
  Config cfg;
  std::vector<std::string> problems;
  {
    Section top(root, "", problems);
    {
      Section s(top.child("broker"), "broker", problems);
      s.string("uri", cfg.broker.uri, check_broker_uri);
      s.string("client_id", cfg.broker.client_id, check_client_id);
      s.string("username", cfg.broker.username);
      s.secret("password", cfg.broker.password, base_dir);
      s.integer("keepalive_s", cfg.broker.keepalive_s, 1, 65535);
      s.integer("connect_timeout_s", cfg.broker.connect_timeout_s, 1, 600);
      s.integer("reconnect_min_ms", cfg.broker.reconnect_min_ms, 10, 600000);
      s.integer("reconnect_max_ms", cfg.broker.reconnect_max_ms, 10, 600000);
      s.string("client", cfg.broker.client, [](const std::string& v) -> std::string {
        if (v == "native" || v == "paho" || v.empty()) return {};
        return "expected native or paho, got \"" + v + "\"";
      });
      if (cfg.broker.client == "native" && cfg.broker.uri.rfind("ssl", 0) == 0) {
        s.problem("broker.client", "native speaks tcp:// only; use paho for " + cfg.broker.uri);
      }
      s.integer("max_message_bytes", cfg.broker.max_message_bytes, 1024, 256 * 1024 * 1024);
      s.boolean("persistent_session", cfg.broker.persistent_session);
      std::string profile(topics::broker_profile_name(cfg.broker.profile));
      s.string("profile", profile, [](const std::string& v) -> std::string {
        if (topics::parse_broker_profile(v)) return {};
        return "expected mosquitto, emqx, rabbitmq or generic, got \"" + v + "\"";
      });
      if (auto parsed = topics::parse_broker_profile(profile)) cfg.broker.profile = *parsed;
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
      s.secret("token_secret", cfg.auth.token_secret, base_dir, check_secret);
      s.boolean("allow_demo_secret", cfg.auth.allow_demo_secret);
      // Missing, or null ("token_secret:" with no value); not looked up in a non-mapping,
      // where yaml-cpp's operator[] throws (the Section reported that already).
      if (!node || node.IsNull() || (node.IsMap() && !s.has("token_secret"))) {
        s.problem("auth.token_secret", "is required (or auth.token_secret_file)");
      } else if (cfg.auth.token_secret == kDemoTokenSecret && !cfg.auth.allow_demo_secret) {
        s.problem("auth.token_secret",
                  "is the public demo secret of the shipped config.yaml: anyone can sign "
                  "tokens with it. Set your own (e.g. `openssl rand -hex 32 > token.secret` "
                  "and token_secret_file: token.secret), or set auth.allow_demo_secret: true "
                  "for a local trial");
      }
      s.integer("token_warn_before_s", cfg.auth.token_warn_before_s, 0, 86400);
      s.integer("max_token_ttl_s", cfg.auth.max_token_ttl_s, 1, 10LL * 365 * 86400);
    }
    {
      Section s(top.child("log"), "log", problems);
      s.string("level", cfg.log.level, check_level);
      s.string("format", cfg.log.format, [](const std::string& v) -> std::string {
        if (v == "text" || v == "json") return {};
        return "expected text or json, got \"" + v + "\"";
      });
      s.integer("stats_interval_s", cfg.log.stats_interval_s, 0, 86400);
    }
    {
      Section s(top.child("requests"), "requests", problems);
      s.integer("max_payload_bytes", cfg.requests.max_payload_bytes, 16, 256 * 1024 * 1024);
      // The response topic is one level and two bytes longer than the request topic: these
      // bounds keep it well inside MQTT's 65,535 bytes and a broker's level limit.
      s.integer("max_topic_bytes", cfg.requests.max_topic_bytes, 64, kMaxRequestTopicBytes);
      s.integer("max_topic_levels", cfg.requests.max_topic_levels, 4, kMaxRequestTopicLevels);
      s.integer("max_msg_id_bytes", cfg.requests.max_msg_id_bytes, 1, kMaxMsgIdBytes);
      s.integer("dedup_window_s", cfg.requests.dedup_window_s, 0, 3600);
      s.integer("dedup_max_entries", cfg.requests.dedup_max_entries, 0, 10000000);
      s.integer("dedup_max_bytes", cfg.requests.dedup_max_bytes, 0, 64LL * 1024 * 1024 * 1024);
      s.integer("dedup_max_bytes_per_uid", cfg.requests.dedup_max_bytes_per_uid, 0,
                64LL * 1024 * 1024 * 1024);
      s.integer("queue_capacity", cfg.requests.queue_capacity, 100, 100000000);
      s.integer("queue_max_bytes", cfg.requests.queue_max_bytes, 1024 * 1024,
                64LL * 1024 * 1024 * 1024);
      s.number("rate_per_s", cfg.requests.rate_per_s, 0.1, 1e9);
      s.number("burst", cfg.requests.burst, 1, 1e9);
      s.number("refusals_per_s", cfg.requests.refusals_per_s, 0, 1e9);
      if (cfg.requests.max_payload_bytes > cfg.broker.max_message_bytes) {
        s.problem("requests.max_payload_bytes",
                  "must not be above broker.max_message_bytes (" +
                      std::to_string(cfg.broker.max_message_bytes) +
                      "): larger requests never reach the gateway");
      }
    }
    {
      Section s(top.child("limits"), "limits", problems);
      s.integer("channels_per_user", cfg.limits.channels_per_user, 1, 100000);
      s.integer("topics_per_channel", cfg.limits.topics_per_channel, 1, 10000);
      s.integer("members_per_channel", cfg.limits.members_per_channel, 1, 10000000);
      s.integer("publishers_per_subscription", cfg.limits.publishers_per_subscription, 1, 64);
      s.integer("watched_users", cfg.limits.watched_users, 0, 1000000);
      s.integer("subscribed_topics_per_channel", cfg.limits.subscribed_topics_per_channel, 1,
                10000);
      s.integer("message_channels_per_user", cfg.limits.message_channels_per_user, 1, 100000);
      s.integer("subscribers_per_message_channel", cfg.limits.subscribers_per_message_channel, 1,
                10000000);
    }
    {
      Section s(top.child("state"), "state", problems);
      s.string("backend", cfg.state.backend, [](const std::string& v) {
        return v == "memory" || v == "sqlite" || v == "redis"
                   ? std::string()
                   : "expected memory, sqlite or redis, got \"" + v + "\"";
      });
      s.string("path", cfg.state.path);
      s.string("synchronous", cfg.state.synchronous, [](const std::string& v) {
        return v == "normal" || v == "full" ? std::string()
                                            : "expected normal or full, got \"" + v + "\"";
      });
      if (cfg.state.backend == "sqlite" && cfg.state.path.empty()) {
        s.problem("state.path", "is required with state.backend: sqlite");
      }
      std::filesystem::path path(cfg.state.path);
      if (!cfg.state.path.empty() && path.is_relative() && !base_dir.empty()) {
        cfg.state.path = (std::filesystem::path(base_dir) / path).string();
      }
      parse_redis_state(s.child("redis"), base_dir, cfg.state.redis, problems);
    }
    {
      Section s(top.child("cluster"), "cluster", problems);
      auto& cl = cfg.cluster;
      s.boolean("enabled", cl.enabled);
      s.string("group", cl.group, check_share_group);
      s.integer("turn_lease_ms", cl.turn_lease_ms, kMinTurnLeaseMs, kMaxTurnLeaseMs);
      s.integer("log_retention_s", cl.log_retention_s, kMinLogRetentionS, kMaxLogRetentionS);
      if (cl.enabled && cfg.state.backend != "redis") {
        s.problem("cluster.enabled",
                  "needs state.backend: redis (the gateways of a cluster share their state "
                  "there; with \"" +
                      cfg.state.backend + "\" each would answer from its own)");
      }
    }
    {
      Section s(top.child("presence"), "presence", problems);
      s.integer("reaffirm_grace_s", cfg.presence.reaffirm_grace_s, 1, 86400);
    }
    parse_modules(top, cfg, problems);
    {
      Section s(top.child("ops"), "ops", problems);
      s.string("http_listen", cfg.ops.http_listen, check_host_port);
      s.uid_list("uids", cfg.ops.uids);
      // Keys are secrets: the message names the position, never the value.
      s.string_list("api_keys", cfg.ops.api_keys, [](const std::string& v) {
        return v.size() >= kMinApiKeyBytes ? std::string()
                                           : "an API key must be at least " +
                                                 std::to_string(kMinApiKeyBytes) + " bytes";
      });
    }
    {
      Section s(top.child("http_api"), "http_api", problems);
      auto keys = s.child("keys");
      if (keys && !keys.IsNull() && !keys.IsSequence()) {
        s.problem("http_api.keys",
                  "expected a list of {key or key_file, rights}, got " + quoted(keys));
      } else if (keys && keys.IsSequence()) {
        for (std::size_t i = 0; i < keys.size(); ++i) {
          const std::string path = "http_api.keys[" + std::to_string(i) + "]";
          Section k(keys[i], path, problems);
          HttpApiKey key;
          // A secret: the message names the position, never the value.
          k.secret("key", key.key, base_dir, [](const std::string& v) {
            return v.size() >= kMinApiKeyBytes ? std::string()
                                               : "an API key must be at least " +
                                                     std::to_string(kMinApiKeyBytes) + " bytes";
          });
          std::vector<std::string> rights;
          k.string_list("rights", rights, [](const std::string& v) {
            return v == "publish" || v == "read" || v == "admin"
                       ? std::string()
                       : "expected publish, read or admin, got \"" + v + "\"";
          });
          for (const auto& r : rights) {
            key.rights |= r == "publish" ? kRightPublish : r == "read" ? kRightRead : kRightAdmin;
          }
          if (!k.has("key")) {
            k.problem(path, "needs key or key_file");
          } else if (rights.empty()) {
            k.problem(path + ".rights", "needs at least one of publish, read, admin");
          } else if (!key.key.empty()) {
            cfg.http_api.keys.push_back(std::move(key));
          }
        }
      }
      s.integer("max_body_bytes", cfg.http_api.max_body_bytes, 64, 256 * 1024 * 1024);
      s.number("rate_per_s", cfg.http_api.rate_per_s, 0, 1e9);
      s.integer("burst", cfg.http_api.burst, 1, 1000000);
      s.integer("threads", cfg.http_api.threads, 1, 64);
      if (!cfg.http_api.keys.empty() && cfg.ops.http_listen.empty()) {
        s.problem("http_api.keys", "needs ops.http_listen (the API is served there)");
      }
      if (cfg.http_api.max_body_bytes > cfg.broker.max_message_bytes) {
        s.problem("http_api.max_body_bytes", "must not be above broker.max_message_bytes (" +
                                                 std::to_string(cfg.broker.max_message_bytes) +
                                                 ")");
      }
    }
    {
      Section s(top.child("enforcement"), "enforcement", problems);
      s.boolean("publish_grants", cfg.enforcement.publish_grants);
      s.boolean("http_authz", cfg.enforcement.http_authz);
      s.boolean("close_on_logout", cfg.enforcement.close_on_logout);
      if (cfg.enforcement.http_authz && cfg.ops.http_listen.empty()) {
        s.problem("enforcement.http_authz", "needs ops.http_listen (the endpoint is served there)");
      }
      s.boolean("rabbitmq_http_auth", cfg.enforcement.rabbitmq_http_auth);
      s.string("rabbitmq_vhost", cfg.enforcement.rabbitmq_vhost, [](const std::string& v) {
        return v.empty() ? "must not be empty" : std::string();
      });
      s.string("rabbitmq_password_file", cfg.enforcement.rabbitmq_password_file);
      s.string_list("rabbitmq_peers", cfg.enforcement.rabbitmq_peers, [](const std::string& v) {
        unsigned char buf[16];
        const bool ip =
            inet_pton(AF_INET, v.c_str(), buf) == 1 || inet_pton(AF_INET6, v.c_str(), buf) == 1;
        return ip ? std::string() : "expected an IPv4 or IPv6 address, got \"" + v + "\"";
      });
      const auto& rabbit = cfg.enforcement;
      if (rabbit.rabbitmq_http_auth) {
        if (cfg.ops.http_listen.empty() || cfg.ops.api_keys.empty()) {
          s.problem(
              "enforcement.rabbitmq_http_auth",
              "needs ops.http_listen and ops.api_keys (a key is part of the endpoints' path)");
        }
        // RabbitMQ turns '.' into a level separator: a dotted prefix never matches.
        if (cfg.topics.prefix.find('.') != std::string::npos) {
          s.problem("enforcement.rabbitmq_http_auth",
                    "topics.prefix contains '.', a level separator on RabbitMQ");
        }
      }
      if (!rabbit.rabbitmq_password_file.empty() && !base_dir.empty() &&
          std::filesystem::path(rabbit.rabbitmq_password_file).is_relative()) {
        cfg.enforcement.rabbitmq_password_file =
            (std::filesystem::path(base_dir) / rabbit.rabbitmq_password_file).string();
      }
    }
    {
      Section s(top.child("channels"), "channels", problems);
      s.string_list("public_presence", cfg.channels.public_presence, [](const std::string& v) {
        auto why = topics::name_pattern_error(v, "pattern");
        return why ? *why : std::string();
      });
      s.boolean("stream_token_required", cfg.channels.stream_token_required);
      s.boolean("message_token_required", cfg.channels.message_token_required);
    }
    {
      Section s(top.child("storage"), "storage", problems);
      auto& m = cfg.storage.metadata;
      s.integer("max_key_bytes", m.max_key_bytes, 1, 1024);
      s.integer("max_value_bytes", m.max_value_bytes, 1, 64LL * 1024 * 1024);
      s.integer("max_call_bytes", m.max_call_bytes, 1, 64LL * 1024 * 1024);
      s.integer("max_items_per_call", m.max_items_per_call, 1, 100000);
      s.integer("max_items", m.max_items, 1, 10000000);
      s.integer("max_metadata_bytes", m.max_metadata_bytes, 1, 1024LL * 1024 * 1024);
      s.integer("max_user_metadata", m.max_user_metadata, 0, 1000000000);
      s.integer("max_channel_metadata", m.max_channel_metadata, 0, 1000000000);
      s.string("user_metadata_writers", cfg.storage.user_metadata_writers,
               [](const std::string& v) {
                 return v == "self" || v == "operators"
                            ? std::string()
                            : "expected self or operators, got \"" + v + "\"";
               });
      s.string("channel_metadata_writers", cfg.storage.channel_metadata_writers,
               [](const std::string& v) {
                 return v == "members" || v == "operators"
                            ? std::string()
                            : "expected members or operators, got \"" + v + "\"";
               });
      s.integer("max_metadata_subscriptions", cfg.storage.max_metadata_subscriptions, 0, 1000000);
      auto& st = cfg.storage.states;
      s.integer("max_state_keys", st.max_keys, 1, 100000);
      s.integer("max_state_key_bytes", st.max_key_bytes, 1, 1024);
      s.integer("max_state_value_bytes", st.max_value_bytes, 1, 64LL * 1024 * 1024);
      s.integer("max_state_bytes", st.max_bytes, 1, 1024LL * 1024 * 1024);
      auto& lk = cfg.storage.locks;
      s.integer("lock_min_ttl_s", lk.min_ttl_s, 1, 86400);
      s.integer("lock_max_ttl_s", lk.max_ttl_s, 1, 86400);
      s.integer("max_locks_per_channel", lk.max_locks, 1, 100000);
      s.integer("max_lock_waiters", lk.max_waiters, 1, 100000);
      s.integer("max_lock_channels", lk.max_channels, 0, 1000000000);
      lk.max_name_bytes = m.max_key_bytes;
      if (lk.min_ttl_s > lk.max_ttl_s) {
        problems.push_back("storage: lock_min_ttl_s (" + std::to_string(lk.min_ttl_s) +
                           ") is above lock_max_ttl_s (" + std::to_string(lk.max_ttl_s) +
                           ")");
      }
      s.string("lock_managers", cfg.storage.lock_managers, [](const std::string& v) {
        return v == "members" || v == "operators"
                   ? std::string()
                   : "expected members or operators, got \"" + v + "\"";
      });
      s.string("channel_metadata_lock", cfg.storage.channel_metadata_lock,
               [&m](const std::string& v) {
                 return v.size() <= m.max_key_bytes
                            ? std::string()
                            : "a lock name of at most storage.max_key_bytes bytes";
               });
    }
    {
      Section s(top.child("history"), "history", problems);
      auto streams = s.child("streams");
      if (streams && !streams.IsNull() && !streams.IsSequence()) {
        s.problem("history.streams",
                  "expected a list of {channel, topic, size, age_s, ...}, got " + quoted(streams));
      } else if (streams && streams.IsSequence()) {
        for (std::size_t i = 0; i < streams.size(); ++i) {
          const std::string path = "history.streams[" + std::to_string(i) + "]";
          Section r(streams[i], path, problems);
          HistoryRule rule;
          auto pattern = [](const std::string& v) {
            auto why = topics::name_pattern_error(v, "pattern");
            return why ? *why : std::string();
          };
          r.string("channel", rule.channel, pattern);
          r.string("topic", rule.topic, pattern);
          r.integer("size", rule.limits.max_messages, 1, 1000000);
          std::int64_t age_s = rule.limits.max_age_ms / 1000;
          r.integer("age_s", age_s, 1, 30LL * 86400);
          rule.limits.max_age_ms = age_s * 1000;
          r.integer("max_bytes", rule.limits.max_bytes, 1, 1LL << 34);
          r.integer("max_message_bytes", rule.limits.max_message_bytes, 1, 256LL << 20);
          cfg.history.streams.push_back(std::move(rule));
        }
      }
      s.integer("max_streams", cfg.history.total.max_streams, 1, 10000000);
      s.integer("max_total_bytes", cfg.history.total.max_total_bytes, 1, 1LL << 40);
      s.integer("max_page", cfg.history.max_page, 1, 100000);
    }
    {
      Section s(top.child("inbox"), "inbox", problems);
      auto& in = cfg.inbox;
      s.boolean("offline", in.offline);
      s.boolean("deliver_on_login", in.deliver_on_login);
      s.integer("max_messages_per_user", in.max_messages_per_user, 1, 1000000);
      s.integer("max_age_s", in.max_age_s, 1, 10LL * 365 * 86400);
      s.integer("max_message_bytes", in.max_message_bytes, 1, 64LL * 1024 * 1024);
      s.integer("max_total_bytes", in.max_total_bytes, 1, 1LL << 40);
      if (in.max_message_bytes > in.max_total_bytes) {
        s.problem("inbox.max_message_bytes", "must not be above inbox.max_total_bytes (" +
                                                 std::to_string(in.max_total_bytes) + ")");
      }
    }
    {
      Section s(top.child("invitations"), "invitations", problems);
      auto& in = cfg.invitations;
      s.integer("ack_timeout_s", in.ack_timeout_s, 1, 86400);
      s.integer("expire_s", in.expire_s, 1, 86400);
      s.integer("max_per_caller", in.max_per_caller, 1, 100000);
      s.integer("max_per_callee", in.max_per_callee, 1, 100000);
      s.integer("max_total", in.max_total, 1, 100000000);
      s.integer("max_content_bytes", in.max_content_bytes, 0, 1024 * 1024);
    }
    if (cfg.cluster.enabled) cluster_problems(cfg, problems);
    if (problems.empty()) parse_mapping(top.child("mapping"), cfg, problems);
    else top.child("mapping");
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

std::optional<std::string> host_port_error(const std::string& listen) {
  auto why = check_host_port(listen);
  if (why.empty()) return std::nullopt;
  return why;
}

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

Config load_config_text(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({"config: not valid YAML at line " + std::to_string(e.mark.line + 1) +
                       ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg});
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  return parse(root, base_dir);
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::string why = std::strerror(errno);
    std::string hint;
    if (errno == ENOENT && std::filesystem::path(path).is_relative()) {
      hint = " (relative to the working directory " + std::filesystem::current_path().string() +
             "; give --config FILE, e.g. the config.yaml at the root of the repository)";
    }
    throw ConfigError({path + ": cannot be read: " + why + hint});
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    return load_config_text(text.str(), std::filesystem::path(path).parent_path().string());
  } catch (const ConfigError& e) {
    std::vector<std::string> problems;
    for (const auto& p : e.problems()) problems.push_back(path + ": " + p);
    throw ConfigError(std::move(problems));
  }
}

std::vector<std::string> restart_only_changes(const Config& a, const Config& b) {
  std::vector<std::string> changed;
  auto check = [&changed](bool differs, const char* key) {
    if (differs) changed.emplace_back(key);
  };
  check(a.broker.uri != b.broker.uri, "broker.uri");
  check(a.broker.client_id != b.broker.client_id, "broker.client_id");
  check(a.broker.username != b.broker.username, "broker.username");
  check(a.broker.password != b.broker.password, "broker.password");
  check(a.broker.keepalive_s != b.broker.keepalive_s, "broker.keepalive_s");
  check(a.broker.connect_timeout_s != b.broker.connect_timeout_s, "broker.connect_timeout_s");
  check(a.broker.reconnect_min_ms != b.broker.reconnect_min_ms, "broker.reconnect_min_ms");
  check(a.broker.reconnect_max_ms != b.broker.reconnect_max_ms, "broker.reconnect_max_ms");
  check(a.broker.client != b.broker.client, "broker.client");
  check(a.broker.profile != b.broker.profile, "broker.profile");
  check(a.topics.prefix != b.topics.prefix, "topics.prefix");
  check(a.auth.token_secret != b.auth.token_secret, "auth.token_secret");
  check(a.log.format != b.log.format, "log.format");
  check(a.broker.max_message_bytes != b.broker.max_message_bytes, "broker.max_message_bytes");
  check(a.broker.persistent_session != b.broker.persistent_session, "broker.persistent_session");
  check(a.requests.queue_capacity != b.requests.queue_capacity, "requests.queue_capacity");
  check(a.requests.queue_max_bytes != b.requests.queue_max_bytes, "requests.queue_max_bytes");
  check(a.mapping.echo_ttl_ms != b.mapping.echo_ttl_ms, "mapping.echo_ttl_ms");
  check(a.mapping.mode != b.mapping.mode, "mapping.mode");
  check(a.mapping.qos0_queue != b.mapping.qos0_queue, "mapping.qos0_queue");
  check(a.mapping.qos1_queue != b.mapping.qos1_queue, "mapping.qos1_queue");
  check(a.mapping.max_in_flight != b.mapping.max_in_flight, "mapping.max_in_flight");
  check(a.modules.http_threads != b.modules.http_threads, "modules.http_threads");
  check(a.modules.cache_max_entries != b.modules.cache_max_entries, "modules.cache_max_entries");
  check(a.ops.http_listen != b.ops.http_listen, "ops.http_listen");
  check(a.ops.api_keys != b.ops.api_keys, "ops.api_keys");
  {
    bool keys_changed = a.http_api.keys.size() != b.http_api.keys.size();
    for (std::size_t i = 0; !keys_changed && i < a.http_api.keys.size(); ++i) {
      keys_changed = a.http_api.keys[i].key != b.http_api.keys[i].key ||
                     a.http_api.keys[i].rights != b.http_api.keys[i].rights;
    }
    check(keys_changed, "http_api.keys");
  }
  check(a.http_api.max_body_bytes != b.http_api.max_body_bytes, "http_api.max_body_bytes");
  check(a.http_api.rate_per_s != b.http_api.rate_per_s, "http_api.rate_per_s");
  check(a.http_api.burst != b.http_api.burst, "http_api.burst");
  check(a.http_api.threads != b.http_api.threads, "http_api.threads");
  check(a.state.backend != b.state.backend, "state.backend");
  check(a.state.path != b.state.path, "state.path");
  check(a.state.synchronous != b.state.synchronous, "state.synchronous");
  check(a.state.redis.uri != b.state.redis.uri, "state.redis.uri");
  check(a.state.redis.password != b.state.redis.password, "state.redis.password");
  check(a.state.redis.key_prefix != b.state.redis.key_prefix, "state.redis.key_prefix");
  check(a.state.redis.connect_timeout_ms != b.state.redis.connect_timeout_ms,
        "state.redis.connect_timeout_ms");
  check(a.state.redis.command_timeout_ms != b.state.redis.command_timeout_ms,
        "state.redis.command_timeout_ms");
  check(a.cluster.enabled != b.cluster.enabled, "cluster.enabled");
  check(a.cluster.group != b.cluster.group, "cluster.group");
  check(a.cluster.turn_lease_ms != b.cluster.turn_lease_ms, "cluster.turn_lease_ms");
  check(a.cluster.log_retention_s != b.cluster.log_retention_s, "cluster.log_retention_s");
  check(a.enforcement.publish_grants != b.enforcement.publish_grants, "enforcement.publish_grants");
  check(a.enforcement.http_authz != b.enforcement.http_authz, "enforcement.http_authz");
  check(a.enforcement.rabbitmq_http_auth != b.enforcement.rabbitmq_http_auth,
        "enforcement.rabbitmq_http_auth");
  check(a.enforcement.rabbitmq_vhost != b.enforcement.rabbitmq_vhost, "enforcement.rabbitmq_vhost");
  check(a.enforcement.rabbitmq_password_file != b.enforcement.rabbitmq_password_file,
        "enforcement.rabbitmq_password_file");
  check(a.enforcement.rabbitmq_peers != b.enforcement.rabbitmq_peers, "enforcement.rabbitmq_peers");
  return changed;
}

}  // namespace rtm::gateway

namespace rtm::gateway {

const HistoryRule* HistoryConfig::rule_for(std::string_view channel, std::string_view topic) const {
  for (const auto& rule : streams) {
    if (topics::name_matches(rule.channel, channel) && topics::name_matches(rule.topic, topic)) {
      return &rule;
    }
  }
  return nullptr;
}

}  // namespace rtm::gateway
