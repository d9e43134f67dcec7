#pragma once
// Presence states behind one seam (issue 15): the temporary key/values of each member of a
// channel (set_state, remove_state, get_state, who_now with states). The storage model
// (rtm::storage::PresenceStates) decides what a call does; the state store ends a member's
// states when its membership ends (leave, session end), in the same step. Not durable: like
// RTM 2's, states do not survive a gateway restart. Values in, values and error values out;
// loop thread only.
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "rtm/storage/states.hpp"

namespace rtm::gateway {

// Told of every (channel, uid) whose states changed: a shared state backend sends them to
// the other gateways of its cluster (a single gateway keeps them in memory only).
class PresenceStateListener {
 public:
  virtual ~PresenceStateListener() = default;
  virtual void states_changed(const std::string& channel, const std::string& uid) = 0;
};

class PresenceStateStore {
 public:
  virtual ~PresenceStateStore() = default;
  virtual void set_limits(const storage::StateLimits& limits) = 0;

  // Merges `items` into uid's states in channel: the change (changed() false: nothing new),
  // or an error value and nothing changed. The caller checks membership.
  virtual storage::Result<storage::StateChange> set(
      const std::string& channel, const std::string& uid,
      const std::vector<std::pair<std::string, std::string>>& items) = 0;
  // Removes `keys` (empty: every state); keys that are not set are skipped.
  virtual storage::Result<storage::StateChange> remove(const std::string& channel,
                                                       const std::string& uid,
                                                       const std::vector<std::string>& keys) = 0;
  virtual storage::StateItems get(const std::string& channel, const std::string& uid) const = 0;
  // Members of the channel with states, by uid.
  virtual std::vector<std::pair<std::string, storage::StateItems>> channel_states(
      const std::string& channel) const = 0;
  // Members (channel, uid) with states, over all channels (a metric).
  virtual std::size_t holder_count() const = 0;

  // uid is no longer a member of channel: its states there go, without an event (the
  // member_left / member_timed_out event says it).
  virtual void membership_ended(const std::string& channel, const std::string& uid) = 0;
};

class MemoryPresenceStateStore final : public PresenceStateStore {
 public:
  explicit MemoryPresenceStateStore(storage::StateLimits limits = {}) : book_(limits) {}

  void set_limits(const storage::StateLimits& limits) override { book_.set_limits(limits); }
  storage::Result<storage::StateChange> set(
      const std::string& channel, const std::string& uid,
      const std::vector<std::pair<std::string, std::string>>& items) override {
    auto change = book_.set(channel, uid, items);
    if (change && change->changed()) note(channel, uid);
    return change;
  }
  storage::Result<storage::StateChange> remove(const std::string& channel, const std::string& uid,
                                               const std::vector<std::string>& keys) override;
  storage::StateItems get(const std::string& channel, const std::string& uid) const override {
    return book_.get(channel, uid);
  }
  std::vector<std::pair<std::string, storage::StateItems>> channel_states(
      const std::string& channel) const override {
    return book_.channel_states(channel);
  }
  std::size_t holder_count() const override { return book_.holder_count(); }
  void membership_ended(const std::string& channel, const std::string& uid) override {
    if (book_.leave(channel, uid)) note(channel, uid);
  }

  void set_listener(PresenceStateListener* listener) { listener_ = listener; }
  // States another gateway of a cluster accepted, as they are (none: removed); unheard.
  void replace(const std::string& channel, const std::string& uid,
               const storage::StateItems& states) {
    book_.replace(channel, uid, states);
  }
  void for_each(const std::function<void(const std::string& channel, const std::string& uid,
                                         const storage::StateItems& states)>& visit) const {
    book_.for_each(visit);
  }
  // Every state gone (a full reload of the model).
  void clear() { book_ = storage::PresenceStates(book_.limits()); }

 private:
  void note(const std::string& channel, const std::string& uid) {
    if (listener_) listener_->states_changed(channel, uid);
  }

  storage::PresenceStates book_;
  PresenceStateListener* listener_ = nullptr;
};

}  // namespace rtm::gateway
