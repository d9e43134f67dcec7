#include "rtm/storage/states.hpp"

namespace rtm::storage {

namespace {

std::string n(std::size_t v) {
  return std::to_string(v);
}

std::optional<Error> check_key(const std::string& key, const StateLimits& limits) {
  if (auto problem = key_problem(key, limits.max_key_bytes)) {
    return make_error(
        ErrorCode::invalid_key, "state key \"" + key + "\" " + *problem,
        key.size() > limits.max_key_bytes ? StateLimits::kMaxKeyBytesKey : std::string_view{}, key);
  }
  return std::nullopt;
}

}  // namespace

Result<StateChange> set_states(const StateItems& current,
                               const std::vector<std::pair<std::string, std::string>>& items,
                               const StateLimits& limits) {
  if (items.empty()) return make_error(ErrorCode::no_items, "set_state needs at least one state");
  std::set<std::string_view> seen;
  for (const auto& [key, value] : items) {
    if (auto e = check_key(key, limits)) return *e;
    if (!seen.insert(key).second) {
      return make_error(ErrorCode::duplicate_key, "state key \"" + key + "\" appears twice in one call",
                   {}, key);
    }
    if (value.size() > limits.max_value_bytes) {
      return make_error(ErrorCode::value_too_large,
                   "the value of state key \"" + key + "\" is " + n(value.size()) +
                       " bytes, more than " + n(limits.max_value_bytes),
                   StateLimits::kMaxValueBytesKey, key);
    }
  }
  StateChange change;
  change.states = current;
  for (const auto& [key, value] : items) {
    auto [it, inserted] = change.states.try_emplace(key, value);
    if (inserted || it->second != value) {
      it->second = value;
      change.written.push_back(key);
    }
  }
  if (change.states.size() > limits.max_keys) {
    return make_error(ErrorCode::too_many_states,
                 "the user would have " + n(change.states.size()) +
                     " states in this channel, more than " + n(limits.max_keys),
                 StateLimits::kMaxKeysKey);
  }
  std::size_t bytes = 0;
  for (const auto& [key, value] : change.states) bytes += key.size() + value.size();
  if (bytes > limits.max_bytes) {
    return make_error(ErrorCode::states_too_large,
                 "the user's states in this channel would be " + n(bytes) +
                     " bytes of keys and values, more than " + n(limits.max_bytes),
                 StateLimits::kMaxBytesKey);
  }
  return change;
}

Result<StateChange> remove_states(const StateItems& current, const std::vector<std::string>& keys,
                                  const StateLimits& limits) {
  if (keys.empty()) return make_error(ErrorCode::no_items, "remove_state needs at least one key");
  for (const auto& key : keys) {
    if (auto e = check_key(key, limits)) return *e;
  }
  StateChange change;
  change.states = current;
  for (const auto& key : keys) {
    if (change.states.erase(key) > 0) change.removed.push_back(key);
  }
  return change;
}

void PresenceStates::store(const std::string& channel, const std::string& uid,
                           const StateItems& states) {
  if (states.empty()) {
    auto ch = by_channel_.find(channel);
    if (ch != by_channel_.end()) {
      ch->second.erase(uid);
      if (ch->second.empty()) by_channel_.erase(ch);
    }
    auto of = channels_of_.find(uid);
    if (of != channels_of_.end()) {
      holders_ -= of->second.erase(channel);
      if (of->second.empty()) channels_of_.erase(of);
    }
    return;
  }
  by_channel_[channel][uid] = states;
  if (channels_of_[uid].insert(channel).second) ++holders_;
}

Result<StateChange> PresenceStates::set(
    const std::string& channel, const std::string& uid,
    const std::vector<std::pair<std::string, std::string>>& items) {
  auto change = set_states(get(channel, uid), items, limits_);
  if (!change) return change;
  change->channel = channel;
  change->uid = uid;
  store(channel, uid, change->states);
  return change;
}

Result<StateChange> PresenceStates::remove(const std::string& channel, const std::string& uid,
                                           const std::vector<std::string>& keys) {
  auto change = remove_states(get(channel, uid), keys, limits_);
  if (!change) return change;
  change->channel = channel;
  change->uid = uid;
  store(channel, uid, change->states);
  return change;
}

StateItems PresenceStates::get(const std::string& channel, const std::string& uid) const {
  const auto ch = by_channel_.find(channel);
  if (ch == by_channel_.end()) return {};
  const auto user = ch->second.find(uid);
  return user == ch->second.end() ? StateItems{} : user->second;
}

std::vector<std::pair<std::string, StateItems>> PresenceStates::channel_states(
    const std::string& channel) const {
  const auto ch = by_channel_.find(channel);
  if (ch == by_channel_.end()) return {};
  return {ch->second.begin(), ch->second.end()};
}

std::optional<StateChange> PresenceStates::leave(const std::string& channel,
                                                 const std::string& uid) {
  auto states = get(channel, uid);
  if (states.empty()) return std::nullopt;
  StateChange change{channel, uid, {}, {}, {}};
  for (const auto& [key, value] : states) change.removed.push_back(key);
  store(channel, uid, {});
  return change;
}

std::vector<StateChange> PresenceStates::session_ended(const std::string& uid) {
  std::vector<StateChange> out;
  const auto of = channels_of_.find(uid);
  if (of == channels_of_.end()) return out;
  const auto channels = of->second;  // leave() edits the index
  for (const auto& channel : channels) {
    if (auto change = leave(channel, uid)) out.push_back(std::move(*change));
  }
  return out;
}

}  // namespace rtm::storage
