#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <stdexcept>

#include "rtm/gateway/http_api.hpp"
#include "rtm/mapping/json.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::gateway {
namespace {

constexpr const char* kJson = "application/json";

void send(httplib::Response& res, const ApiOutcome& outcome) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("code");
  if (outcome) {
    w.Int(0);
    w.Key("result");
    outcome.value().Accept(w);
  } else {
    const auto& f = outcome.error();
    w.Int(static_cast<int>(f.code));
    w.Key("error");
    json::write_string(w, error_name(f.code));
    w.Key("message");
    json::write_string(w, topics::to_valid_utf8(f.message));
  }
  w.EndObject();
  res.status = outcome ? 200 : http_status(outcome.error().code);
  res.set_content(std::string(buf.GetString(), buf.GetSize()), kJson);
}

void send_error(httplib::Response& res, ErrorCode code, std::string message, int status = 0) {
  send(res, failure(code, std::move(message)));
  if (status) res.status = status;
}

// The API's view of one route: checks the key's right and the body's size, then runs
// `handle`. Every answer is JSON.
using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

struct Context {
  Config config;
  topics::NameRules rules;
  ApiKeys& keys;
  LoopRunner& loop;
  ServerApi& api;

  bool admitted(const httplib::Request& req, httplib::Response& res, unsigned right) {
    if (keys.empty()) {
      send_error(res, ErrorCode::forbidden, "no http_api.keys configured: the API is off", 403);
      return false;
    }
    if (req.body.size() > config.http_api.max_body_bytes) {
      send_error(res, ErrorCode::payload_too_large,
                 "the body is " + std::to_string(req.body.size()) +
                     " bytes, over http_api.max_body_bytes (" +
                     std::to_string(config.http_api.max_body_bytes) + ")");
      return false;
    }
    switch (keys.check(req.get_header_value("Authorization"), right)) {
      case ApiKeys::Verdict::ok:
        return true;
      case ApiKeys::Verdict::no_key:
      case ApiKeys::Verdict::bad_key:
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, ErrorCode::forbidden,
                   "a valid 'Authorization: Bearer KEY' of http_api.keys is required", 401);
        return false;
      case ApiKeys::Verdict::no_right:
        send_error(res, ErrorCode::forbidden,
                   std::string("this key lacks the right ") + (right == kRightPublish ? "publish"
                                                               : right == kRightRead  ? "read"
                                                                                      : "admin"));
        return false;
      case ApiKeys::Verdict::rate_limited:
        send_error(res, ErrorCode::rate_limited, "over http_api.rate_per_s for this key");
        return false;
    }
    return false;
  }

  // Runs `work` on the loop and answers with its outcome.
  void on_loop(httplib::Response& res, std::function<ApiOutcome()> work) {
    auto outcome = loop.run_on_loop(std::move(work));
    if (!outcome)
      return send_error(res, ErrorCode::unavailable, "the gateway did not answer in time");
    send(res, *outcome);
  }

  std::optional<Failure> name_error(const std::string& name, std::string_view what) const {
    if (auto why = topics::name_error(name, what, rules))
      return failure(ErrorCode::invalid_name, *why);
    return std::nullopt;
  }
};

// The JSON object of a request body (an empty body is an empty object).
Outcome<json::Document> body_object(const httplib::Request& req) {
  json::Document doc;
  if (req.body.empty()) return json::object();
  if (auto why = mapping::parse_untrusted_json(req.body, doc)) {
    return failure(ErrorCode::bad_json, *why);
  }
  if (!doc.IsObject()) return failure(ErrorCode::bad_json, "the body must be a JSON object");
  return doc;
}

std::optional<std::string> string_member(const json::Value& doc, const char* key) {
  auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

// Standard base64 (padded) through the strict base64url decoder.
std::optional<std::string> base64_decode(std::string text) {
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
    else if (c == '-' || c == '_')
      return std::nullopt;
  }
  return util::base64url_decode(text);
}

// The message of a POST /v1/publish body, names checked.
Outcome<ServerMessage> parse_message(const Context& ctx, const json::Value& body) {
  for (auto it = body.MemberBegin(); it != body.MemberEnd(); ++it) {
    const std::string_view key(it->name.GetString(), it->name.GetStringLength());
    static const std::vector<std::string_view> known{"channel", "topic",   "publisher",      "to",
                                                     "from",    "payload", "payload_base64", "qos"};
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return failure(ErrorCode::invalid_parameter,
                     "unknown parameter \"" + std::string(key) +
                         "\"; publish takes channel, topic, publisher or to, from; payload or "
                         "payload_base64; qos");
    }
  }
  ServerMessage m;
  const bool to_channel =
      body.HasMember("channel") || body.HasMember("topic") || body.HasMember("publisher");
  const bool to_inbox = body.HasMember("to") || body.HasMember("from");
  if (to_channel == to_inbox) {
    return failure(ErrorCode::missing_parameter,
                   "give channel, topic and publisher (a channel message), or to and from (an "
                   "inbox message)");
  }
  const std::vector<std::pair<const char*, std::string*>> names =
      to_channel
          ? std::vector<std::pair<const char*, std::string*>>{{"channel", &m.channel},
                                                              {"topic", &m.topic},
                                                              {"publisher", &m.publisher}}
          : std::vector<std::pair<const char*, std::string*>>{{"to", &m.to}, {"from", &m.from}};
  for (const auto& [key, out] : names) {
    auto value = string_member(body, key);
    if (!value) {
      return failure(
          body.HasMember(key) ? ErrorCode::invalid_parameter : ErrorCode::missing_parameter,
          std::string("\"") + key + "\" must be a string");
    }
    const std::string_view what = std::string_view(key) == "to" ||
                                          std::string_view(key) == "from" ||
                                          std::string_view(key) == "publisher"
                                      ? "uid"
                                      : key;
    if (auto bad = ctx.name_error(*value, what)) return *bad;
    *out = std::move(*value);
  }
  const auto text = string_member(body, "payload");
  const auto encoded = string_member(body, "payload_base64");
  if (text.has_value() == encoded.has_value() || (body.HasMember("payload") && !text) ||
      (body.HasMember("payload_base64") && !encoded)) {
    return failure(ErrorCode::missing_parameter,
                   "give \"payload\" (a string) or \"payload_base64\" (base64 bytes), one of them");
  }
  if (text) {
    m.payload = *text;
  } else if (auto bytes = base64_decode(*encoded)) {
    m.payload = std::move(*bytes);
  } else {
    return failure(ErrorCode::invalid_parameter, "\"payload_base64\" is not valid base64");
  }
  if (m.payload.size() > ctx.config.broker.max_message_bytes) {
    return failure(ErrorCode::payload_too_large, "the payload is over broker.max_message_bytes");
  }
  if (auto it = body.FindMember("qos"); it != body.MemberEnd()) {
    if (!it->value.IsInt() || (it->value.GetInt() != 0 && it->value.GetInt() != 1)) {
      return failure(ErrorCode::invalid_parameter, "\"qos\" must be 0 or 1");
    }
    m.qos = it->value.GetInt();
  }
  return m;
}

// The params of an operation: `body` (a JSON object) with `key` = `name` added.
Outcome<std::string> with_name(json::Document body, const char* key, const std::string& name) {
  if (body.HasMember(key)) {
    return failure(ErrorCode::duplicate_parameter,
                   std::string("\"") + key + "\" is given by the path; leave it out of the body");
  }
  json::set(body, key, name);
  return json::dump(body);
}

// Every query parameter as a string member (the operation parses numbers and flags from
// strings, as from an MQTT request's query); a repeated one is refused.
Outcome<json::Document> query_object(const httplib::Request& req) {
  auto doc = json::object();
  for (const auto& [key, value] : req.params) {
    if (req.get_param_value_count(key) > 1) {
      return failure(ErrorCode::duplicate_parameter, "\"" + key + "\" is given twice");
    }
    json::set(doc, key, value);
  }
  return doc;
}

// GET .../metadata?key=a&key=b: the keys asked for (none: every item).
json::Document keys_query(const httplib::Request& req) {
  auto doc = json::object();
  const auto n = req.get_param_value_count("key");
  if (n == 0) return doc;
  json::Value keys(rapidjson::kArrayType);
  for (std::size_t i = 0; i < n; ++i) {
    keys.PushBack(json::str(req.get_param_value("key", i), doc.GetAllocator()), doc.GetAllocator());
  }
  json::set(doc, "keys", std::move(keys));
  return doc;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto end = comma == std::string::npos ? text.size() : comma;
    if (end > start) out.push_back(text.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The OpenAPI form of a path ("/v1/channels/{channel}/members") as httplib's pattern.
std::string pattern(std::string_view path) {
  std::string out;
  bool in_param = false;
  for (char c : path) {
    if (c == '{') {
      in_param = true;
      out += "([^/]+)";
    } else if (c == '}') {
      in_param = false;
    } else if (!in_param) {
      out += c;
    }
  }
  return out;
}

}  // namespace

const std::vector<ApiRoute>& api_routes() {
  static const std::vector<ApiRoute> routes{
      {"POST", "/v1/publish", kRightPublish},
      {"GET", "/v1/channels", kRightRead},
      {"GET", "/v1/channels/{channel}/members", kRightRead},
      {"GET", "/v1/users/{uid}/channels", kRightRead},
      {"GET", "/v1/presence", kRightRead},
      {"GET", "/v1/users/{uid}/metadata", kRightRead},
      {"PUT", "/v1/users/{uid}/metadata", kRightAdmin},
      {"GET", "/v1/channels/{channel}/metadata", kRightRead},
      {"GET", "/v1/channels/{channel}/history", kRightRead},
      {"PUT", "/v1/channels/{channel}/metadata", kRightAdmin},
      {"POST", "/v1/tokens", kRightAdmin},
      {"POST", "/v1/users/{uid}/messages", kRightPublish},
      {"GET", "/v1/users/{uid}/inbox", kRightRead},
  };
  return routes;
}

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::ok:
      return 200;
    case ErrorCode::internal:
      return 500;
    case ErrorCode::forbidden:
      return 403;
    case ErrorCode::payload_too_large:
      return 413;
    case ErrorCode::rate_limited:
      return 429;
    case ErrorCode::unavailable:
    case ErrorCode::no_route:
      return 503;
    case ErrorCode::timeout:
      return 504;
    case ErrorCode::backend_error:
      return 502;
    case ErrorCode::unknown_operation:
    case ErrorCode::item_not_found:
    case ErrorCode::lock_not_found:
    case ErrorCode::no_history:
    case ErrorCode::invitation_not_found:
      return 404;
    case ErrorCode::not_joined:
    case ErrorCode::not_logged_in:
    case ErrorCode::not_subscribed:
    case ErrorCode::not_watched:
    case ErrorCode::not_publisher:
    case ErrorCode::major_revision_mismatch:
    case ErrorCode::item_revision_mismatch:
    case ErrorCode::lock_exists:
    case ErrorCode::lock_held:
    case ErrorCode::not_lock_holder:
    case ErrorCode::peer_offline:
    case ErrorCode::invitation_wrong_side:
      return 409;
    case ErrorCode::limit_channels:
    case ErrorCode::limit_topics:
    case ErrorCode::limit_members:
    case ErrorCode::limit_subscriptions:
    case ErrorCode::limit_watch:
    case ErrorCode::limit_metadata:
    case ErrorCode::limit_metadata_subscriptions:
    case ErrorCode::limit_state:
    case ErrorCode::limit_locks:
    case ErrorCode::limit_inbox:
    case ErrorCode::limit_invitations:
      return 422;
    default:
      return 400;
  }
}

void add_api_routes(httplib::Server& server, const Config& config, ApiKeys& keys, LoopRunner& loop,
                    ServerApi& api) {
  auto ctx = std::make_shared<Context>(
      Context{config, topics::name_rules_for(config.broker.profile), keys, loop, api});

  // Each route by its entry in api_routes(), so that the table is what is served.
  auto route = [&server, ctx](std::string_view method, std::string_view path, Handler handle) {
    unsigned right = 0;
    for (const auto& r : api_routes()) {
      if (r.method == method && r.path == path) right = r.right;
    }
    if (right == 0) throw std::logic_error("route not in api_routes(): " + std::string(path));
    auto guarded = [ctx, right, handle = std::move(handle)](const httplib::Request& req,
                                                            httplib::Response& res) {
      if (ctx->admitted(req, res, right)) handle(req, res);
    };
    const std::string p = pattern(path);
    if (method == "GET") {
      server.Get(p, guarded);
    } else if (method == "PUT") {
      server.Put(p, guarded);
    } else {
      server.Post(p, guarded);
    }
  };

  route("POST", "/v1/publish", [ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = body_object(req);
    if (!body) return send(res, body.error());
    auto message = parse_message(*ctx, body.value());
    if (!message) return send(res, message.error());
    ctx->on_loop(res, [ctx, m = std::move(message.value())] { return ctx->api.publish(m); });
  });
  route("GET", "/v1/channels", [ctx](const httplib::Request&, httplib::Response& res) {
    ctx->on_loop(res, [ctx] { return ctx->api.channels(); });
  });
  route("GET", "/v1/presence", [ctx](const httplib::Request& req, httplib::Response& res) {
    const auto users = split(req.get_param_value("users"));
    if (users.empty()) {
      return send_error(res, ErrorCode::missing_parameter, "give ?users=uid1,uid2");
    }
    if (users.size() > 1000) {
      return send_error(res, ErrorCode::invalid_parameter, "at most 1000 users per call");
    }
    for (const auto& uid : users) {
      if (auto bad = ctx->name_error(uid, "uid")) return send(res, *bad);
    }
    ctx->on_loop(res, [ctx, users] { return ctx->api.presence(users); });
  });

  // Routes over the registered operations: `op` with the path's name and the rest of the
  // params from the body (PUT) or the query (GET).
  auto by_name = [ctx](const char* op, const char* key, bool write) {
    return [ctx, op, key, write](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1].str();
      if (auto bad = ctx->name_error(name, key)) return send(res, *bad);
      json::Document params;
      if (write) {
        auto body = body_object(req);
        if (!body) return send(res, body.error());
        params = std::move(body.value());
      } else if (std::string_view(op).find("metadata") != std::string_view::npos) {
        params = keys_query(req);
      } else if (std::string_view(op) == "history") {
        auto query = query_object(req);
        if (!query) return send(res, query.error());
        params = std::move(query.value());
      } else {
        params = json::object();
      }
      auto text = with_name(std::move(params), key, name);
      if (!text) return send(res, text.error());
      ctx->on_loop(res, [ctx, op = std::string(op), text = std::move(text.value())] {
        return ctx->api.call(op, text);
      });
    };
  };
  route("GET", "/v1/channels/{channel}/members", by_name("who_now", "channel", false));
  route("GET", "/v1/users/{uid}/channels", by_name("where_now", "uid", false));
  route("GET", "/v1/users/{uid}/metadata", by_name("get_user_metadata", "uid", false));
  route("PUT", "/v1/users/{uid}/metadata", by_name("set_user_metadata", "uid", true));
  route("GET", "/v1/channels/{channel}/metadata",
        by_name("get_channel_metadata", "channel", false));
  route("PUT", "/v1/channels/{channel}/metadata", by_name("set_channel_metadata", "channel", true));
  route("GET", "/v1/channels/{channel}/history", by_name("history", "channel", false));
  // send_message as the server: {message, type, store}; the answer's status says whether
  // the user got it live or it was kept.
  route("POST", "/v1/users/{uid}/messages", by_name("send_message", "to", true));
  // What is kept for an offline user (inbox_history): ?limit=&after=.
  route("GET", "/v1/users/{uid}/inbox", [ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string uid = req.matches[1].str();
    if (auto bad = ctx->name_error(uid, "uid")) return send(res, *bad);
    auto params = json::object();
    json::set(params, "uid", uid);
    for (const char* key : {"limit", "after"}) {
      if (req.has_param(key)) json::set(params, key, req.get_param_value(key));
    }
    ctx->on_loop(res,
                 [ctx, text = json::dump(params)] { return ctx->api.call("inbox_history", text); });
  });

  route("POST", "/v1/tokens", [ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = body_object(req);
    if (!body) return send(res, body.error());
    const auto& doc = body.value();
    const auto uid = string_member(doc, "uid");
    if (!uid)
      return send_error(res, ErrorCode::missing_parameter, "\"uid\" (a string) is required");
    if (auto bad = ctx->name_error(*uid, "uid")) return send(res, *bad);
    std::int64_t ttl = 3600;
    const std::int64_t max_ttl = ctx->config.auth.max_token_ttl_s;
    if (auto it = doc.FindMember("ttl"); it != doc.MemberEnd()) {
      if (!it->value.IsInt64() || it->value.GetInt64() < 1 || it->value.GetInt64() > max_ttl) {
        return send_error(res, ErrorCode::invalid_parameter,
                          "\"ttl\" must be seconds from 1 to auth.max_token_ttl_s (" +
                              std::to_string(max_ttl) + ")");
      }
      ttl = it->value.GetInt64();
    }
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
      const std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (key != "uid" && key != "ttl") {
        return send_error(res, ErrorCode::invalid_parameter,
                          "unknown parameter \"" + std::string(key) + "\"; tokens takes uid, ttl");
      }
    }
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    const std::string token = sign_token({*uid, now, now + ttl, std::nullopt, std::nullopt},
                                         ctx->config.auth.token_secret);
    spdlog::info("http api: a login token for {} (ttl {} s)", *uid, ttl);
    auto result = json::object();
    json::set(result, "uid", *uid);
    json::set(result, "token", token);
    json::set_int(result, "expires_at", now + ttl);
    send(res, std::move(result));
  });
}

}  // namespace rtm::gateway
