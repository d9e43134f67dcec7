#include "rtm/gateway/request.hpp"

#include <rapidjson/error/en.h>

#include "rtm/mapping/json.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::gateway {
namespace {
std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }
}  // namespace

Outcome<Params> Params::merge(const topics::Uri& uri, std::string_view body,
                              topics::NameRules rules) {
  Params p;
  p.rules_ = rules;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    p.doc_.SetObject();
  } else if (auto why = mapping::parse_untrusted_json(body, p.doc_)) {
    return failure(ErrorCode::bad_json, *why);
  } else {
    if (!p.doc_.IsObject()) {
      return failure(ErrorCode::bad_json, "payload must be a JSON object (or empty)");
    }
  }
  for (const auto& param : uri.params) {
    if (param.key == "msg_id") continue;
    if (p.doc_.HasMember(param.key.c_str()) || p.find(param.key)) {
      return failure(ErrorCode::duplicate_parameter,
                     "parameter " + q(param.key) + " is given both in the query and in the body");
    }
    auto& a = p.doc_.GetAllocator();
    p.doc_.AddMember(json::str(param.key, a), json::str(param.value, a), a);
  }
  if (p.find("msg_id") && !uri.msg_id.empty()) {
    return failure(ErrorCode::duplicate_parameter,
                   "parameter \"msg_id\" is given both in the query and in the body");
  }
  return p;
}

const json::Value* Params::find(std::string_view key) const {
  for (auto it = doc_.MemberBegin(); it != doc_.MemberEnd(); ++it) {
    if (std::string_view(it->name.GetString(), it->name.GetStringLength()) == key) {
      return &it->value;
    }
  }
  return nullptr;
}

bool Params::has(std::string_view key) const { return find(key) != nullptr; }

std::optional<Failure> Params::only(std::string_view operation,
                                    const std::vector<std::string_view>& allowed) const {
  for (auto it = doc_.MemberBegin(); it != doc_.MemberEnd(); ++it) {
    std::string_view key(it->name.GetString(), it->name.GetStringLength());
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return failure(ErrorCode::invalid_parameter,
                     "unknown parameter " + q(key) + " for " + std::string(operation) +
                         (allowed.empty() ? " (it takes none)" : " (it takes " + list + ")"));
    }
  }
  return std::nullopt;
}

Outcome<std::string> Params::string(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return failure(ErrorCode::missing_parameter, "parameter " + q(key) + " is required");
  if (!v->IsString()) {
    return failure(ErrorCode::invalid_parameter, "parameter " + q(key) + " must be a string");
  }
  return std::string(v->GetString(), v->GetStringLength());
}

std::optional<std::string> Params::optional_string(std::string_view key) const {
  const auto* v = find(key);
  if (!v || !v->IsString()) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

Outcome<std::string> Params::name(std::string_view key) const {
  auto s = string(key);
  if (!s) return s;
  if (auto why = topics::name_error(*s, key, rules_)) {
    return failure(ErrorCode::invalid_name, *why);
  }
  return s;
}

Outcome<std::vector<std::string>> Params::names(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return failure(ErrorCode::missing_parameter, "parameter " + q(key) + " is required");
  std::vector<std::string> out;
  if (v->IsString()) {
    std::string_view text(v->GetString(), v->GetStringLength());
    std::size_t start = 0;
    while (start <= text.size()) {
      auto comma = text.find(',', start);
      if (comma == std::string_view::npos) comma = text.size();
      out.emplace_back(text.substr(start, comma - start));
      start = comma + 1;
    }
  } else if (v->IsArray()) {
    for (const auto& item : v->GetArray()) {
      if (!item.IsString()) {
        return failure(ErrorCode::invalid_parameter,
                       "parameter " + q(key) + " must be an array of strings");
      }
      out.emplace_back(item.GetString(), item.GetStringLength());
    }
  } else {
    return failure(ErrorCode::invalid_parameter,
                   "parameter " + q(key) + " must be an array of strings");
  }
  if (out.empty()) {
    return failure(ErrorCode::invalid_parameter, "parameter " + q(key) + " must not be empty");
  }
  for (const auto& name : out) {
    if (auto why = topics::name_error(name, "user", rules_)) {
      return failure(ErrorCode::invalid_name, "parameter " + q(key) + ": " + *why);
    }
  }
  return out;
}

Outcome<std::int64_t> Params::integer(std::string_view key, std::int64_t min,
                                      std::int64_t max) const {
  const auto* v = find(key);
  if (!v) return failure(ErrorCode::missing_parameter, "parameter " + q(key) + " is required");
  std::int64_t value = 0;
  bool ok = false;
  if (v->IsInt64()) {
    value = v->GetInt64();
    ok = true;
  } else if (v->IsString()) {
    std::string_view text(v->GetString(), v->GetStringLength());
    ok = !text.empty() && text.size() < 19;
    for (char c : text) ok = ok && c >= '0' && c <= '9';
    if (ok) value = std::stoll(std::string(text));
  }
  if (!ok || value < min || value > max) {
    return failure(ErrorCode::invalid_parameter, "parameter " + q(key) + " must be a whole number from " +
                                                     std::to_string(min) + " to " +
                                                     std::to_string(max));
  }
  return value;
}

Outcome<bool> Params::flag(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return false;
  if (v->IsBool()) return v->GetBool();
  if (v->IsString()) {
    std::string_view text(v->GetString(), v->GetStringLength());
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
  }
  return failure(ErrorCode::invalid_parameter, "parameter " + q(key) + " must be true or false");
}

}  // namespace rtm::gateway
