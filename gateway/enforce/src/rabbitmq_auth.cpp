#include "rtm/gateway/rabbitmq_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::gateway::rabbitmq {
namespace {

// mosquitto_passwd's PBKDF2 parameters ("$7$"): SHA-512, a 64-byte hash.
constexpr std::size_t kHashBytes = 64;
constexpr std::size_t kSaltBytes = 12;
constexpr int kIterations = 101;
// Bounds what a hostile password file line can make every login cost.
constexpr int kMaxIterations = 1000000;

Decision allow(std::string why = {}) {
  return {true, false, std::move(why)};
}
Decision deny(std::string why) {
  return {false, false, std::move(why)};
}
Decision malformed(std::string why) {
  return {false, true, std::move(why)};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// "{uid}" or "{uid}/...": '/' never occurs in a uid, so no uid owns another's client ids
// (the rule of the Mosquitto plugin's plugin_opt_client_id_rule uid-prefix).
bool client_id_fits(std::string_view id, std::string_view uid) {
  return id.size() >= uid.size() && id.compare(0, uid.size(), uid) == 0 &&
         (id.size() == uid.size() || id[uid.size()] == '/');
}

// A uid that may own topic levels on RabbitMQ: a valid name without '.', which RabbitMQ
// turns into a level separator (alice.b would own rtm/u/alice/b/...).
std::optional<std::string> token_user_error(std::string_view username) {
  return topics::name_error(username, "the username",
                            topics::name_rules_for(topics::BrokerProfile::rabbitmq));
}

// Standard base64 (mosquitto_passwd) through the strict base64url decoder.
std::optional<std::string> base64_decode(std::string_view text) {
  std::string url(text);
  while (!url.empty() && url.back() == '=') url.pop_back();
  for (char& c : url) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
    else if (c == '-' || c == '_')
      return std::nullopt;
  }
  return util::base64url_decode(url);
}

std::string derive(std::string_view password, const std::string& salt, int iterations) {
  std::string out(kHashBytes, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  if (iterations > 0) {
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()),
                      static_cast<int>(salt.size()), iterations, EVP_sha512(),
                      static_cast<int>(kHashBytes), dst);
  } else {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr);
    EVP_DigestUpdate(ctx, password.data(), password.size());
    EVP_DigestUpdate(ctx, salt.data(), salt.size());
    EVP_DigestFinal_ex(ctx, dst, &len);
    EVP_MD_CTX_free(ctx);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// The fields every question needs, or why not.
std::optional<std::string> missing(const Form& form, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (!form.get(key)) return std::string("no '") + key + "' field";
  }
  return std::nullopt;
}

}  // namespace

std::optional<Endpoint> endpoint_from_name(std::string_view name) {
  if (name == "user") return Endpoint::user;
  if (name == "vhost") return Endpoint::vhost;
  if (name == "resource") return Endpoint::resource;
  if (name == "topic") return Endpoint::topic;
  return std::nullopt;
}

std::string_view endpoint_name(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::user:
      return "user";
    case Endpoint::vhost:
      return "vhost";
    case Endpoint::resource:
      return "resource";
    case Endpoint::topic:
      return "topic";
  }
  return "?";
}

// ------------------------------------------------------------------ forms

const std::string* Form::get(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return &v;
  }
  return nullptr;
}

Expected<Form, std::string> parse_form(std::string_view body) {
  Form form;
  if (body.empty()) return form;
  for (const auto part : split(body, '&')) {
    if (form.fields.size() == kMaxFormFields) {
      return std::string("more than ") + std::to_string(kMaxFormFields) + " fields";
    }
    const auto eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return std::string("a field is not key=value");
    }
    auto key = form_decode(part.substr(0, eq));
    auto value = form_decode(part.substr(eq + 1));
    if (!key || !value) return std::string("a bad percent escape");
    if (form.get(*key)) return "the field '" + *key + "' occurs twice";
    form.fields.emplace_back(std::move(*key), std::move(*value));
  }
  return form;
}

// ------------------------------------------------------------------ routing keys

std::optional<std::string> topic_from_routing_key(std::string_view key, bool filter) {
  if (key.empty()) return std::nullopt;
  std::string topic;
  topic.reserve(key.size());
  const auto levels = split(key, '.');
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::string_view level = levels[i];
    if (i > 0) topic += '/';
    if (level == "*" || level == "#") {
      // Wildcards only in filters, '#' only last (MQTT's rule; AMQP allows more).
      if (!filter || (level == "#" && i + 1 != levels.size())) return std::nullopt;
      topic += level == "*" ? '+' : '#';
      continue;
    }
    for (const char c : level) {
      const auto byte = static_cast<unsigned char>(c);
      // '/' and '+' cannot come from RabbitMQ's conversion; '*' and '#' inside a word are
      // literal to AMQP but no valid MQTT filter.
      if (c == '/' || c == '+' || c == '*' || c == '#' || byte < 0x20 || byte == 0x7F) {
        return std::nullopt;
      }
    }
    topic += level;
  }
  return topic;
}

bool topic_allowed(const grants::Table& table, std::string_view username, std::string_view topic,
                   bool write) {
  const bool wildcard = topic.find_first_of("+#") != std::string_view::npos;
  if (write) {
    return !wildcard &&
           table.decide_with_tree(username, topic, grants::Access::write) == grants::Verdict::allow;
  }
  if (wildcard) {
    // Refuses a filter that could reach a channel level; else the tree's rules decide
    // (P/u/{uid}/# and P/presence/+ are filters the tree gives).
    const auto verdict = table.decide_subscribe(username, topic);
    if (verdict != grants::Verdict::not_governed) return verdict == grants::Verdict::allow;
  }
  return table.decide_with_tree(username, topic, grants::Access::read) == grants::Verdict::allow;
}

// ------------------------------------------------------------------ passwords

PasswordFile PasswordFile::parse(std::string_view text, const std::string& source) {
  PasswordFile file;
  std::size_t number = 0;
  for (auto line : split(text, '\n')) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto where = source + ":" + std::to_string(number);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      throw std::runtime_error(where + ": expected user:$7$iterations$salt$hash");
    }
    const std::string user(line.substr(0, colon));
    const auto parts = split(line.substr(colon + 1), '$');
    Entry entry;
    std::optional<std::string> salt, hash;
    if (parts.size() == 5 && parts[0].empty() && parts[1] == "7") {
      try {
        std::size_t used = 0;
        entry.iterations = std::stoi(std::string(parts[2]), &used);
        if (used != parts[2].size()) entry.iterations = 0;
      } catch (const std::exception&) {
        entry.iterations = 0;
      }
      if (entry.iterations < 1 || entry.iterations > kMaxIterations) {
        throw std::runtime_error(where + ": bad PBKDF2 iteration count");
      }
      salt = base64_decode(parts[3]);
      hash = base64_decode(parts[4]);
    } else if (parts.size() == 4 && parts[0].empty() && parts[1] == "6") {
      salt = base64_decode(parts[2]);
      hash = base64_decode(parts[3]);
    } else {
      throw std::runtime_error(where + ": expected a $7$ or $6$ hash of mosquitto_passwd");
    }
    if (!salt || !hash || salt->empty() || hash->size() != kHashBytes) {
      throw std::runtime_error(where + ": bad salt or hash (base64, a 64-byte SHA-512 hash)");
    }
    if (file.contains(user)) throw std::runtime_error(where + ": user '" + user + "' again");
    entry.salt = std::move(*salt);
    entry.hash = std::move(*hash);
    file.entries_.emplace(user, std::move(entry));
  }
  return file;
}

PasswordFile PasswordFile::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the password file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

void PasswordFile::add_plain(const std::string& user, std::string_view password) {
  Entry entry;
  entry.iterations = kIterations;
  entry.salt.resize(kSaltBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(entry.salt.data()),
                 static_cast<int>(kSaltBytes)) != 1) {
    throw std::runtime_error("no random bytes for a password salt");
  }
  entry.hash = derive(password, entry.salt, entry.iterations);
  entries_[user] = std::move(entry);
}

bool PasswordFile::check(std::string_view user, std::string_view password) const {
  const auto it = entries_.find(user);
  if (it == entries_.end()) return false;
  const auto& e = it->second;
  const std::string got = derive(password, e.salt, e.iterations);
  return CRYPTO_memcmp(got.data(), e.hash.data(), kHashBytes) == 0;
}

// ------------------------------------------------------------------ questions

Decision Authenticator::answer(Endpoint endpoint, std::string_view body, std::int64_t now_s,
                               const TopicDecider& decide_topic) const {
  auto form = parse_form(body);
  if (!form) return malformed("not a strict form body: " + form.error());
  switch (endpoint) {
    case Endpoint::user:
      return user(*form, now_s);
    case Endpoint::vhost:
      return vhost(*form);
    case Endpoint::resource:
      return resource(*form);
    case Endpoint::topic:
      return topic(*form, decide_topic);
  }
  return malformed("unknown endpoint");
}

Decision Authenticator::user(const Form& form, std::int64_t now_s) const {
  if (auto why = missing(form, {"username", "password"})) return malformed(*why);
  const std::string& username = *form.get("username");
  const std::string& password = *form.get("password");
  if (is_service_user(username)) {
    // Never a token for a service user: a token signed for "rtm-gateway" gives no rights.
    return settings_.service_users.check(username, password)
               ? allow("service user")
               : deny("wrong password for service user '" + username + "'");
  }
  if (auto why = token_user_error(username)) return deny(*why);
  // Anonymous MQTT clients arrive as mqtt.default_user with its password, no token.
  if (password.empty()) return deny("no password; a login token is expected");
  const std::string* client_id = form.get("client_id");
  if (!client_id) return malformed("no 'client_id' field (not an MQTT connection)");
  auto claims = verify_token(password, settings_.token_secret, now_s);
  if (!claims) return deny(claims.error().message);
  if (claims->sub != username) return deny("the token is for another uid");
  if (!client_id_fits(*client_id, username)) {
    return deny("the client id must be the uid or start with '" + username + "/'");
  }
  return allow("token valid for " + std::to_string(claims->exp - now_s) + " s");
}

Decision Authenticator::vhost(const Form& form) const {
  if (auto why = missing(form, {"username", "vhost"})) return malformed(*why);
  if (*form.get("vhost") != settings_.vhost) return deny("not the configured vhost");
  return allow();
}

Decision Authenticator::resource(const Form& form) const {
  if (auto why = missing(form, {"username", "vhost", "resource", "name", "permission"})) {
    return malformed(*why);
  }
  const std::string& username = *form.get("username");
  const std::string& resource = *form.get("resource");
  const std::string& name = *form.get("name");
  const std::string& permission = *form.get("permission");
  if (permission != "configure" && permission != "read" && permission != "write") {
    return malformed("unknown permission '" + permission + "'");
  }
  if (*form.get("vhost") != settings_.vhost) return deny("not the configured vhost");
  if (is_service_user(username)) return allow("service user");
  if (token_user_error(username)) return deny("not a token user");
  if (resource == "exchange") {
    return name == kTopicExchange && permission != "configure"
               ? allow()
               : deny("token users only read and write the exchange amq.topic");
  }
  if (resource == "queue") {
    // mqtt-subscription-{client id}qos0|1, for a client id of this user's.
    const std::string_view queue = name;
    if (queue.size() > kQueuePrefix.size() + 4 &&
        queue.compare(0, kQueuePrefix.size(), kQueuePrefix) == 0) {
      const std::string_view tail = queue.substr(queue.size() - 4);
      const std::string_view id =
          queue.substr(kQueuePrefix.size(), queue.size() - kQueuePrefix.size() - 4);
      if ((tail == "qos0" || tail == "qos1") && client_id_fits(id, username)) return allow();
    }
    return deny("not one of the user's own subscription queues");
  }
  return deny("token users get no '" + resource + "' resource");
}

Decision Authenticator::topic(const Form& form, const TopicDecider& decide_topic) const {
  if (auto why =
          missing(form, {"username", "vhost", "resource", "name", "permission", "routing_key"})) {
    return malformed(*why);
  }
  const std::string& username = *form.get("username");
  const std::string& permission = *form.get("permission");
  if (*form.get("resource") != "topic") return malformed("resource is not 'topic'");
  if (permission != "read" && permission != "write") {
    return malformed("unknown permission '" + permission + "'");
  }
  if (*form.get("vhost") != settings_.vhost) return deny("not the configured vhost");
  if (is_service_user(username)) return allow("service user");
  if (token_user_error(username)) return deny("not a token user");
  if (*form.get("name") != kTopicExchange) return deny("not the exchange amq.topic");
  const bool write = permission == "write";
  const auto topic = topic_from_routing_key(*form.get("routing_key"), !write);
  if (!topic) return deny("the routing key has no unambiguous MQTT topic");
  if (!decide_topic) return deny("no grants to decide");
  const auto verdict = decide_topic(username, *topic, write);
  if (!verdict) return deny("the gateway did not answer in time");
  return *verdict ? allow(*topic) : deny("the grants refuse " + *topic);
}

}  // namespace rtm::gateway::rabbitmq
