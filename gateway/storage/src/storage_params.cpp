#include "storage_params.hpp"

#include "rtm/topics/names.hpp"

namespace rtm::gateway::storage_ops {

namespace st = rtm::storage;

std::string quoted(std::string_view key) {
  return "\"" + std::string(key) + "\"";
}

namespace {

// The code of a limit's refusal, by the family of its config key.
ErrorCode limit_code(std::string_view limit) {
  if (limit.rfind("storage.max_state", 0) == 0) return ErrorCode::limit_state;
  if (limit.rfind("storage.max_lock", 0) == 0) return ErrorCode::limit_locks;
  return ErrorCode::limit_metadata;
}

}  // namespace

Failure wire_failure(const st::Error& e) {
  std::string message = e.message;
  if (!e.limit.empty()) message += " (" + std::string(e.limit) + ")";
  switch (e.code) {
    case st::ErrorCode::no_items:
    case st::ErrorCode::invalid_key:
    case st::ErrorCode::duplicate_key:
    case st::ErrorCode::invalid_revision:
      return failure(e.limit.empty() ? ErrorCode::invalid_parameter : limit_code(e.limit),
                     message);
    case st::ErrorCode::invalid_ttl:
      return failure(ErrorCode::invalid_parameter, message);
    case st::ErrorCode::major_revision_mismatch:
      return failure(ErrorCode::major_revision_mismatch, message);
    case st::ErrorCode::item_revision_mismatch:
      return failure(ErrorCode::item_revision_mismatch, message);
    case st::ErrorCode::item_not_found:
      return failure(ErrorCode::item_not_found, message);
    case st::ErrorCode::too_many_items:
    case st::ErrorCode::value_too_large:
    case st::ErrorCode::call_too_large:
    case st::ErrorCode::metadata_too_large:
    case st::ErrorCode::too_many_states:
    case st::ErrorCode::states_too_large:
      return failure(limit_code(e.limit), message);
    case st::ErrorCode::lock_exists:
      return failure(ErrorCode::lock_exists, message);
    case st::ErrorCode::lock_not_found:
      return failure(ErrorCode::lock_not_found, message);
    case st::ErrorCode::lock_held:
      return failure(ErrorCode::lock_held, message);
    case st::ErrorCode::not_lock_holder:
      return failure(ErrorCode::not_lock_holder, message);
    case st::ErrorCode::too_many_locks:
    case st::ErrorCode::too_many_waiters:
      return failure(ErrorCode::limit_locks, message);
    case st::ErrorCode::corrupt_record:
      return failure(ErrorCode::internal, message);
  }
  return failure(ErrorCode::internal, message);
}

Outcome<std::int64_t> revision_value(const json::Value& v, const std::string& what) {
  std::int64_t value = 0;
  bool ok = false;
  if (v.IsInt64()) {
    value = v.GetInt64();
    ok = true;
  } else if (v.IsString()) {
    std::string_view text(v.GetString(), v.GetStringLength());
    const std::string_view digits = !text.empty() && text[0] == '-' ? text.substr(1) : text;
    ok = !digits.empty() && digits.size() < 19;
    for (char c : digits) ok = ok && c >= '0' && c <= '9';
    if (ok) value = std::stoll(std::string(text));
  }
  if (!ok || value < st::kNoCheck) {
    return failure(ErrorCode::invalid_parameter,
                   what + " must be a whole number: -1 (no check), 0 (absent) or a revision");
  }
  return value;
}

Outcome<std::vector<std::string>> keys_param(const Params& params) {
  std::vector<std::string> out;
  const auto* v = params.value("keys");
  if (!v) return out;
  if (v->IsString()) {
    out.emplace_back(v->GetString(), v->GetStringLength());
    return out;
  }
  if (!v->IsArray()) {
    return failure(ErrorCode::invalid_parameter, "parameter \"keys\" must be an array of strings");
  }
  for (const auto& k : v->GetArray()) {
    if (!k.IsString()) {
      return failure(ErrorCode::invalid_parameter,
                     "parameter \"keys\" must be an array of strings");
    }
    out.emplace_back(k.GetString(), k.GetStringLength());
  }
  return out;
}

bool public_presence(const Config& config, const std::string& channel) {
  for (const auto& pattern : config.channels.public_presence) {
    if (topics::name_matches(pattern, channel)) return true;
  }
  return false;
}

std::optional<Failure> channel_read_refusal(const Core& core, const StateStore& state,
                                            const std::string& uid, const std::string& channel,
                                            std::string_view what) {
  if (core.is_operator(uid) || state.is_member(uid, channel) ||
      public_presence(core.config(), channel)) {
    return std::nullopt;
  }
  return failure(ErrorCode::not_joined, uid + " has not joined channel " + channel +
                                            " (members read " + std::string(what) +
                                            "; see channels.public_presence)");
}

}  // namespace rtm::gateway::storage_ops
