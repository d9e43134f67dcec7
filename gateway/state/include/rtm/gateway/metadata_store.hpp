#pragma once
// User and channel metadata behind one seam (issue 15): the metadata of each user and
// channel, and who subscribes to a user's metadata. The storage model (rtm::storage) decides
// what a write does; a store applies it atomically and keeps the result, so that a
// networked backend can run the compare-and-set in one server-side step. Values in, values
// and error values out; loop thread only.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/request.hpp"
#include "rtm/storage/metadata.hpp"

namespace rtm::gateway {

enum class MetadataScope { user, channel };
std::string_view scope_name(MetadataScope scope);  // "user", "channel"

// One subscription to a user's metadata: it belongs to the subscriber's session.
struct MetadataSubscription {
  std::string subscriber;
  std::string target;  // the uid whose metadata it follows
};

// Which rows a durable backend must write again.
class MetadataListener {
 public:
  virtual ~MetadataListener() = default;
  virtual void metadata_changed(MetadataScope scope, const std::string& name) = 0;
  virtual void metadata_subscriptions_changed(const std::string& subscriber) = 0;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  virtual void set_limits(const storage::MetadataLimits& limits) = 0;

  // Applies `write` to the metadata of (scope, name): the change, or an error value and
  // nothing changed. A change with no items changed nothing.
  virtual storage::Result<storage::Change> write(MetadataScope scope, const std::string& name,
                                                 const storage::Write& write,
                                                 const storage::Caller& caller) = 0;
  // The metadata as it is now (major revision 0 and no items: never written).
  virtual storage::Metadata read(MetadataScope scope, const std::string& name) const = 0;
  virtual std::size_t metadata_count() const = 0;

  // Subscriptions to users' metadata. subscribe: true when new; LIMIT_METADATA_SUBSCRIPTIONS
  // when `subscriber` has `max` already.
  virtual Outcome<bool> subscribe(const std::string& subscriber, const std::string& target,
                                  std::size_t max) = 0;
  virtual bool unsubscribe(const std::string& subscriber, const std::string& target) = 0;
  // Subscribers of target's metadata, in name order.
  virtual std::vector<std::string> subscribers_of(const std::string& target) const = 0;
  // Users whose metadata `subscriber` follows, in name order.
  virtual std::vector<std::string> subscriptions_of(const std::string& subscriber) const = 0;
  // The subscriber's session ended: all its subscriptions go.
  virtual void drop_subscriptions(const std::string& subscriber) = 0;
};

// The model in memory; durable backends listen to its changes and write those rows.
class MemoryMetadataStore final : public MetadataStore {
 public:
  explicit MemoryMetadataStore(storage::MetadataLimits limits = {}) : limits_(limits) {}

  void set_limits(const storage::MetadataLimits& limits) override { limits_ = limits; }
  storage::Result<storage::Change> write(MetadataScope scope, const std::string& name,
                                         const storage::Write& write,
                                         const storage::Caller& caller) override;
  storage::Metadata read(MetadataScope scope, const std::string& name) const override;
  std::size_t metadata_count() const override { return users_.size() + channels_.size(); }

  Outcome<bool> subscribe(const std::string& subscriber, const std::string& target,
                          std::size_t max) override;
  bool unsubscribe(const std::string& subscriber, const std::string& target) override;
  std::vector<std::string> subscribers_of(const std::string& target) const override;
  std::vector<std::string> subscriptions_of(const std::string& subscriber) const override;
  void drop_subscriptions(const std::string& subscriber) override;

  // ---- for durable backends: one listener (not owned), and restoring without events.
  void set_listener(MetadataListener* listener) { listener_ = listener; }
  void restore(MetadataScope scope, const std::string& name, storage::Metadata metadata);
  void restore_subscription(const std::string& subscriber, const std::string& target);
  void for_each(const std::function<void(MetadataScope, const std::string&,
                                         const storage::Metadata&)>& visit) const;
  // ---- for shared backends (replicated rows): without events or limits.
  bool contains(MetadataScope scope, const std::string& name) const {
    return map(scope).count(name) != 0;
  }
  void erase(MetadataScope scope, const std::string& name) { map(scope).erase(name); }
  // The subscriber's subscriptions become `targets` (none: it has none).
  void replace_subscriptions(const std::string& subscriber,
                             const std::vector<std::string>& targets);
  void for_each_subscriber(
      const std::function<void(const std::string& subscriber,
                               const std::vector<std::string>& targets)>& visit) const;
  void clear();

 private:
  using Map = std::unordered_map<std::string, storage::Metadata>;
  Map& map(MetadataScope scope) { return scope == MetadataScope::user ? users_ : channels_; }
  const Map& map(MetadataScope scope) const {
    return scope == MetadataScope::user ? users_ : channels_;
  }

  storage::MetadataLimits limits_;
  Map users_;
  Map channels_;
  std::unordered_map<std::string, std::set<std::string>> by_subscriber_;  // -> targets
  std::unordered_map<std::string, std::set<std::string>> by_target_;      // -> subscribers
  MetadataListener* listener_ = nullptr;
};

}  // namespace rtm::gateway
