#pragma once
// Presence states in the manner of RTM 2's setState/removeState/getState: temporary
// key/values per (channel, uid), shown by get_state and who_now, gone when the user leaves
// the channel or its session ends. Not durable (RTM 2's are not either).
//
// - set merges: the given keys take the given values, other keys stay.
// - remove deletes the given keys; keys that are not set are skipped.
// - Every change reports the user's full states after it (RTM 2's state-changed event
//   carries the full list), the keys written and the keys removed; a call that changes
//   nothing reports changed() == false and needs no event.
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rtm/storage/errors.hpp"
#include "rtm/storage/keys.hpp"

namespace rtm::storage {

using StateItems = std::map<std::string, std::string>;  // key -> value

struct StateLimits {
  static constexpr std::string_view kMaxKeysKey = "storage.max_state_keys";
  static constexpr std::string_view kMaxKeyBytesKey = "storage.max_state_key_bytes";
  static constexpr std::string_view kMaxValueBytesKey = "storage.max_state_value_bytes";
  static constexpr std::string_view kMaxBytesKey = "storage.max_state_bytes";

  std::size_t max_keys = 32;  // keys of one user in one channel
  std::size_t max_key_bytes = kDefaultMaxKeyBytes;
  std::size_t max_value_bytes = 8 * 1024;
  std::size_t max_bytes = 32 * 1024;  // keys and values of one user in one channel
};

struct StateChange {
  std::string channel;
  std::string uid;
  StateItems states;                 // the user's states in the channel after the change
  std::vector<std::string> written;  // keys whose value is new or different
  std::vector<std::string> removed;  // keys that were set and are gone
  bool changed() const { return !written.empty() || !removed.empty(); }
};

// The pure steps, for a store that keeps StateItems itself (a Redis hash per user).
Result<StateChange> set_states(const StateItems& current,
                               const std::vector<std::pair<std::string, std::string>>& items,
                               const StateLimits& limits = {});
Result<StateChange> remove_states(const StateItems& current, const std::vector<std::string>& keys,
                                  const StateLimits& limits = {});

// Every state of every user, by channel: the in-memory book the gateway keeps.
class PresenceStates {
 public:
  explicit PresenceStates(StateLimits limits = {}) : limits_(limits) {}

  Result<StateChange> set(const std::string& channel, const std::string& uid,
                          const std::vector<std::pair<std::string, std::string>>& items);
  Result<StateChange> remove(const std::string& channel, const std::string& uid,
                             const std::vector<std::string>& keys);

  StateItems get(const std::string& channel, const std::string& uid) const;
  // Users with states in the channel and their states, by uid (for who_now).
  std::vector<std::pair<std::string, StateItems>> channel_states(const std::string& channel) const;

  // The user left the channel: its states there are removed; the change, if it had any.
  std::optional<StateChange> leave(const std::string& channel, const std::string& uid);
  // The user's session ended: its states in every channel, one change per channel.
  std::vector<StateChange> session_ended(const std::string& uid);

  const StateLimits& limits() const { return limits_; }
  // New limits apply to the next calls; states held now stay.
  void set_limits(const StateLimits& limits) { limits_ = limits; }
  // Members (channel, uid) that have states.
  std::size_t holder_count() const { return holders_; }
  // Sets uid's states in channel to `states` as they are (none: removed), without limits:
  // states another gateway of a cluster accepted.
  void replace(const std::string& channel, const std::string& uid, const StateItems& states) {
    store(channel, uid, states);
  }
  // Every (channel, uid) with states, by channel and uid.
  template <class Visit>
  void for_each(Visit visit) const {
    for (const auto& [channel, users] : by_channel_) {
      for (const auto& [uid, states] : users) visit(channel, uid, states);
    }
  }

 private:
  void store(const std::string& channel, const std::string& uid, const StateItems& states);

  StateLimits limits_;
  std::map<std::string, std::map<std::string, StateItems>> by_channel_;  // channel -> uid ->
  std::map<std::string, std::set<std::string>> channels_of_;             // uid -> channels
  std::size_t holders_ = 0;
};

}  // namespace rtm::storage
