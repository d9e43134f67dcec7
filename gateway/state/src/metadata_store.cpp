#include "rtm/gateway/metadata_store.hpp"

#include <utility>

namespace rtm::gateway {

std::string_view scope_name(MetadataScope scope) {
  return scope == MetadataScope::user ? "user" : "channel";
}

storage::Result<storage::Change> MemoryMetadataStore::write(MetadataScope scope,
                                                            const std::string& name,
                                                            const storage::Write& write,
                                                            const storage::Caller& caller) {
  auto& m = map(scope);
  auto it = m.find(name);
  const bool user = scope == MetadataScope::user;
  const std::size_t cap = user ? limits_.max_user_metadata : limits_.max_channel_metadata;
  if (it == m.end() && m.size() >= cap && write.kind != storage::WriteKind::remove) {
    return storage::make_error(
        storage::ErrorCode::too_many_items,
        std::to_string(cap) + (user ? " users" : " channels") + " have metadata already",
        user ? storage::MetadataLimits::kMaxUserMetadataKey
             : storage::MetadataLimits::kMaxChannelMetadataKey);
  }
  static const storage::Metadata kNever;
  auto applied = storage::apply(it == m.end() ? kNever : it->second, write, caller, limits_);
  if (!applied) return applied.error();
  if (applied->change.empty()) return std::move(applied->change);  // nothing to keep
  // The row stays when every item is removed: its major revision must keep growing.
  m[name] = std::move(applied->metadata);
  if (listener_) listener_->metadata_changed(scope, name);
  return std::move(applied->change);
}

storage::Metadata MemoryMetadataStore::read(MetadataScope scope, const std::string& name) const {
  const auto& m = map(scope);
  auto it = m.find(name);
  return it == m.end() ? storage::Metadata{} : it->second;
}

Outcome<bool> MemoryMetadataStore::subscribe(const std::string& subscriber,
                                             const std::string& target, std::size_t max) {
  auto& targets = by_subscriber_[subscriber];
  if (targets.count(target)) return false;
  if (targets.size() >= max) {
    if (targets.empty()) by_subscriber_.erase(subscriber);
    return failure(ErrorCode::limit_metadata_subscriptions,
                   subscriber + " subscribes to the metadata of " + std::to_string(max) +
                       " users already (storage.max_metadata_subscriptions)");
  }
  targets.insert(target);
  by_target_[target].insert(subscriber);
  if (listener_) listener_->metadata_subscriptions_changed(subscriber);
  return true;
}

bool MemoryMetadataStore::unsubscribe(const std::string& subscriber, const std::string& target) {
  auto it = by_subscriber_.find(subscriber);
  if (it == by_subscriber_.end() || it->second.erase(target) == 0) return false;
  if (it->second.empty()) by_subscriber_.erase(it);
  auto t = by_target_.find(target);
  if (t != by_target_.end()) {
    t->second.erase(subscriber);
    if (t->second.empty()) by_target_.erase(t);
  }
  if (listener_) listener_->metadata_subscriptions_changed(subscriber);
  return true;
}

std::vector<std::string> MemoryMetadataStore::subscribers_of(const std::string& target) const {
  auto it = by_target_.find(target);
  if (it == by_target_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::vector<std::string> MemoryMetadataStore::subscriptions_of(
    const std::string& subscriber) const {
  auto it = by_subscriber_.find(subscriber);
  if (it == by_subscriber_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

void MemoryMetadataStore::drop_subscriptions(const std::string& subscriber) {
  for (const auto& target : subscriptions_of(subscriber)) unsubscribe(subscriber, target);
}

void MemoryMetadataStore::restore(MetadataScope scope, const std::string& name,
                                  storage::Metadata metadata) {
  map(scope)[name] = std::move(metadata);
}

void MemoryMetadataStore::restore_subscription(const std::string& subscriber,
                                               const std::string& target) {
  by_subscriber_[subscriber].insert(target);
  by_target_[target].insert(subscriber);
}

void MemoryMetadataStore::for_each(
    const std::function<void(MetadataScope, const std::string&, const storage::Metadata&)>& visit)
    const {
  for (const auto& [name, m] : users_) visit(MetadataScope::user, name, m);
  for (const auto& [name, m] : channels_) visit(MetadataScope::channel, name, m);
}

void MemoryMetadataStore::replace_subscriptions(const std::string& subscriber,
                                                const std::vector<std::string>& targets) {
  for (const auto& target : subscriptions_of(subscriber)) {
    auto t = by_target_.find(target);
    if (t == by_target_.end()) continue;
    t->second.erase(subscriber);
    if (t->second.empty()) by_target_.erase(t);
  }
  by_subscriber_.erase(subscriber);
  for (const auto& target : targets) restore_subscription(subscriber, target);
}

void MemoryMetadataStore::for_each_subscriber(
    const std::function<void(const std::string&, const std::vector<std::string>&)>& visit) const {
  for (const auto& [subscriber, targets] : by_subscriber_) {
    visit(subscriber, {targets.begin(), targets.end()});
  }
}

void MemoryMetadataStore::clear() {
  users_.clear();
  channels_.clear();
  by_subscriber_.clear();
  by_target_.clear();
}

}  // namespace rtm::gateway
