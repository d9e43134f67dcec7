// The metadata operations of issue 15: requests into storage::Write values, applied through
// the MetadataStore seam; the change into the answer and the events. Who may read and write
// is decided here (storage.*_metadata_writers, membership, ops.uids), not in the store.
#include "rtm/gateway/storage_operations.hpp"

#include <string>
#include <utility>
#include <vector>

#include "lock_operations.hpp"
#include "rtm/storage/errors.hpp"
#include "rtm/storage/metadata.hpp"
#include "rtm/topics/names.hpp"
#include "state_operations.hpp"
#include "storage_params.hpp"

namespace rtm::gateway {
namespace {

using json::Document;
namespace st = rtm::storage;
using namespace storage_ops;

// `items`: [{"key":..,"value":..,"revision":..}]; value is required but by remove.
Outcome<std::vector<st::ItemWrite>> items_param(const Params& params, st::WriteKind kind) {
  std::vector<st::ItemWrite> out;
  const auto* v = params.value("items");
  if (!v) {
    if (kind == st::WriteKind::remove) return out;
    return failure(ErrorCode::missing_parameter, "parameter \"items\" is required");
  }
  if (!v->IsArray()) {
    return failure(ErrorCode::invalid_parameter,
                   "parameter \"items\" must be an array of {\"key\",\"value\",\"revision\"}");
  }
  std::size_t i = 0;
  for (const auto& item : v->GetArray()) {
    const std::string where = "items[" + std::to_string(i++) + "]";
    if (!item.IsObject()) {
      return failure(ErrorCode::invalid_parameter, where + " must be an object");
    }
    st::ItemWrite w;
    for (const auto& m : item.GetObject()) {
      const std::string_view name(m.name.GetString(), m.name.GetStringLength());
      if (name == "key" && m.value.IsString()) {
        w.key.assign(m.value.GetString(), m.value.GetStringLength());
      } else if (name == "value" && m.value.IsString()) {
        w.value.assign(m.value.GetString(), m.value.GetStringLength());
      } else if (name == "revision") {
        auto r = revision_value(m.value, where + ".revision");
        if (!r) return r.error();
        w.revision = *r;
      } else if (name == "key" || name == "value") {
        return failure(ErrorCode::invalid_parameter,
                       where + "." + std::string(name) + " must be a string");
      } else {
        return failure(ErrorCode::invalid_parameter,
                       where + " has an unknown field " + quoted(name) + " (key, value, revision)");
      }
    }
    if (!item.HasMember("key")) {
      return failure(ErrorCode::missing_parameter, where + ".key is required");
    }
    if (kind != st::WriteKind::remove && !item.HasMember("value")) {
      return failure(ErrorCode::missing_parameter, where + ".value is required");
    }
    out.push_back(std::move(w));
  }
  return out;
}

class StorageService final : public Reloadable, public MetricsSource {
 public:
  StorageService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), meta_(state_.metadata()) {}

  void install() {
    const std::vector<std::string_view> write = {"items", "major_revision", "record_author",
                                                 "record_ts"};
    const std::vector<std::string_view> remove = {"items", "keys", "major_revision"};
    auto with = [](std::string_view first, std::vector<std::string_view> rest) {
      rest.insert(rest.begin(), first);
      return rest;
    };
    add("set_user_metadata", with("uid", write),
        [this](Call& c) { return write_op(c, MetadataScope::user, st::WriteKind::set); });
    add("update_user_metadata", with("uid", write),
        [this](Call& c) { return write_op(c, MetadataScope::user, st::WriteKind::update); });
    add("remove_user_metadata", with("uid", remove),
        [this](Call& c) { return write_op(c, MetadataScope::user, st::WriteKind::remove); });
    add("get_user_metadata", {"uid", "keys"},
        [this](Call& c) { return get_op(c, MetadataScope::user); });
    add("subscribe_user_metadata", {"uid"}, [this](Call& c) { return subscribe_op(c); });
    add("unsubscribe_user_metadata", {"uid"}, [this](Call& c) { return unsubscribe_op(c); });
    // Channel metadata writes may name the lock that guards them (RTM 2's lockName).
    auto guarded = [&with](std::vector<std::string_view> params) {
      params.push_back("lock");
      return with("channel", std::move(params));
    };
    add("set_channel_metadata", guarded(write),
        [this](Call& c) { return write_op(c, MetadataScope::channel, st::WriteKind::set); });
    add("update_channel_metadata", guarded(write),
        [this](Call& c) { return write_op(c, MetadataScope::channel, st::WriteKind::update); });
    add("remove_channel_metadata", guarded(remove),
        [this](Call& c) { return write_op(c, MetadataScope::channel, st::WriteKind::remove); });
    add("get_channel_metadata", {"channel", "keys"},
        [this](Call& c) { return get_op(c, MetadataScope::channel); });
  }

  void reload(const Config& next) override { meta_.set_limits(next.storage.metadata); }
  const std::shared_ptr<StateStore>& store() const { return store_; }

  void write_metrics(MetricsWriter& out) const override {
    out.gauge("rtm_metadata", "Users and channels with metadata",
              static_cast<double>(meta_.metadata_count()));
  }

 private:
  void add(const char* name, std::vector<std::string_view> params,
           std::function<Outcome<Document>(Call&)> handle) {
    core_.add_operation({name, true, std::move(params), std::move(handle)});
  }

  const StorageConfig& config() const { return core_.config().storage; }

  // The user or channel a call names: `uid` (default: the caller) or `channel`.
  Outcome<std::string> target(Call& call, MetadataScope scope) {
    if (scope == MetadataScope::channel) return call.params.name("channel");
    if (!call.params.has("uid")) return call.uid;
    return call.params.name("uid");
  }

  std::optional<Failure> may_write(const std::string& uid, MetadataScope scope,
                                   const std::string& name) const {
    if (core_.is_operator(uid)) return std::nullopt;
    if (scope == MetadataScope::user) {
      if (config().user_metadata_writers == "self" && uid == name) return std::nullopt;
      return failure(ErrorCode::forbidden,
                     config().user_metadata_writers == "self"
                         ? uid + " may not write the metadata of " + name +
                               " (storage.user_metadata_writers: self)"
                         : "only operators write user metadata (storage.user_metadata_writers: "
                           "operators)");
    }
    if (config().channel_metadata_writers != "members") {
      return failure(ErrorCode::forbidden,
                     "only operators write channel metadata (storage.channel_metadata_writers: "
                     "operators)");
    }
    if (state_.is_member(uid, name)) return std::nullopt;
    return failure(ErrorCode::not_joined,
                   uid + " has not joined channel " + name + " (its members write its metadata)");
  }

  // Lock-guarded channel metadata: the lock the call names, and the lock named by
  // storage.channel_metadata_lock where it is set in the channel, must be the caller's.
  std::optional<Failure> lock_guard(Call& call, const std::string& channel) const {
    const auto& locks = state_.locks();
    if (call.params.has("lock")) {
      auto lock = call.params.string("lock");
      if (!lock) return lock.error();
      const auto found = locks.find(channel, *lock);
      if (!found) {
        return failure(ErrorCode::lock_not_found,
                       "lock \"" + *lock + "\" is not set in channel " + channel);
      }
      if (found->holder != call.uid) {
        return failure(ErrorCode::not_lock_holder,
                       call.uid + " does not hold lock \"" + *lock + "\" that guards this write");
      }
    }
    const auto& guard = config().channel_metadata_lock;
    if (guard.empty()) return std::nullopt;
    const auto found = locks.find(channel, guard);
    if (found && found->holder != call.uid) {
      return failure(ErrorCode::not_lock_holder, call.uid + " does not hold lock \"" + guard +
                                                     "\", which guards the metadata of channel " +
                                                     channel + " (storage.channel_metadata_lock)");
    }
    return std::nullopt;
  }

  std::optional<Failure> may_read(const std::string& uid, MetadataScope scope,
                                  const std::string& name) const {
    if (scope == MetadataScope::user) return std::nullopt;
    return channel_read_refusal(core_, state_, uid, name, "its metadata");
  }

  // ------------------------------------------------------------ JSON

  static json::Value item_json(const st::Item& item, Document::AllocatorType& a) {
    json::Value v(rapidjson::kObjectType);
    v.AddMember("key", json::str(item.key, a), a);
    v.AddMember("value", json::str(item.value, a), a);
    v.AddMember("revision", static_cast<int64_t>(item.revision), a);
    if (item.author) v.AddMember("author", json::str(*item.author, a), a);
    if (item.updated_at_ms) v.AddMember("updated_at", static_cast<int64_t>(*item.updated_at_ms), a);
    return v;
  }

  // {"uid"|"channel": name, "major_revision": N, "items": [...]}
  static Document metadata_json(MetadataScope scope, const std::string& name,
                                std::int64_t major_revision, const std::vector<st::Item>& items,
                                Document doc = json::object()) {
    auto& a = doc.GetAllocator();
    json::set(doc, scope == MetadataScope::user ? "uid" : "channel", name);
    json::set_int(doc, "major_revision", major_revision);
    json::Value list(rapidjson::kArrayType);
    list.Reserve(static_cast<rapidjson::SizeType>(items.size()), a);
    for (const auto& item : items) list.PushBack(item_json(item, a), a);
    json::set(doc, "items", std::move(list));
    return doc;
  }

  Document event_head(const char* name, std::string_view kind) {
    auto e = json::object();
    json::set(e, "event", name);
    json::set_int(e, "ts", core_.now_ms());
    json::set(e, "kind", kind);
    return e;
  }

  // The user's subscribers hear of the change on P/u/{subscriber}/events/metadata; the
  // channel's members on P/events/{channel}, like its other events.
  void publish_change(MetadataScope scope, const std::string& name, const std::string& by,
                      const st::Change& change) {
    const auto kind = st::write_kind_name(change.kind);
    if (scope == MetadataScope::user) {
      const auto subscribers = meta_.subscribers_of(name);
      if (subscribers.empty()) return;
      auto e = event_head("metadata", kind);
      json::set(e, "by", by);
      const auto payload =
          json::dump(metadata_json(scope, name, change.major_revision, change.items, std::move(e)));
      for (const auto& s : subscribers) {
        core_.publish(core_.tree().user_event(s, "metadata"), payload, 1, false);
      }
      return;
    }
    auto e = event_head("metadata_changed", kind);
    json::set(e, "uid", by);
    core_.publish(
        core_.tree().channel_events(name),
        json::dump(metadata_json(scope, name, change.major_revision, change.items, std::move(e))),
        1, false);
  }

  // ------------------------------------------------------------ operations

  Outcome<Document> write_op(Call& call, MetadataScope scope, st::WriteKind kind) {
    auto name = target(call, scope);
    if (!name) return name.error();
    if (auto refused = may_write(call.uid, scope, *name)) return *refused;
    if (scope == MetadataScope::channel) {
      if (auto refused = lock_guard(call, *name)) return *refused;
    }
    st::Write w;
    w.kind = kind;
    auto items = items_param(call.params, kind);
    if (!items) return items.error();
    w.items = std::move(items).value();
    if (kind == st::WriteKind::remove) {
      auto keys = keys_param(call.params);
      if (!keys) return keys.error();
      for (auto& k : *keys) w.items.push_back({std::move(k), {}, st::kNoCheck});
    }
    if (const auto* major = call.params.value("major_revision")) {
      auto r = revision_value(*major, "parameter \"major_revision\"");
      if (!r) return r.error();
      w.major_revision = *r;
    }
    if (kind != st::WriteKind::remove) {
      auto author = call.params.flag("record_author");
      if (!author) return author.error();
      auto ts = call.params.flag("record_ts");
      if (!ts) return ts.error();
      w.record_author = *author;
      w.record_ts = *ts;
    }
    auto change = meta_.write(scope, *name, w, {call.uid, call.now_ms});
    if (!change) return wire_failure(change.error());
    if (!change->empty()) publish_change(scope, *name, call.uid, *change);
    // A remove that removed nothing answers the current major revision and no items.
    const std::int64_t major =
        change->empty() ? meta_.read(scope, *name).major_revision : change->major_revision;
    return metadata_json(scope, *name, major, change->items);
  }

  Outcome<Document> get_op(Call& call, MetadataScope scope) {
    auto name = target(call, scope);
    if (!name) return name.error();
    if (auto refused = may_read(call.uid, scope, *name)) return *refused;
    auto keys = keys_param(call.params);
    if (!keys) return keys.error();
    const auto m = meta_.read(scope, *name);
    return metadata_json(scope, *name, m.major_revision, st::snapshot(m, *keys));
  }

  // Subscribes the caller's session to a user's metadata: a snapshot event now (also when
  // subscribed already, so that a client that lost track can ask again), changes later.
  Outcome<Document> subscribe_op(Call& call) {
    auto name = target(call, MetadataScope::user);
    if (!name) return name.error();
    auto added = meta_.subscribe(call.uid, *name,
                                 static_cast<std::size_t>(config().max_metadata_subscriptions));
    if (!added) return added.error();
    const auto m = meta_.read(MetadataScope::user, *name);
    auto e = event_head("metadata", "snapshot");
    core_.publish_user_event(
        call.uid, "metadata",
        metadata_json(MetadataScope::user, *name, m.major_revision, st::snapshot(m), std::move(e)));
    auto doc = json::object();
    json::set(doc, "uid", *name);
    json::set_int(doc, "major_revision", m.major_revision);
    json::set(doc, "events_topic", core_.tree().user_event(call.uid, "metadata"));
    return doc;
  }

  Outcome<Document> unsubscribe_op(Call& call) {
    auto name = target(call, MetadataScope::user);
    if (!name) return name.error();
    auto doc = json::object();
    json::set(doc, "uid", *name);
    json::set_bool(doc, "was_subscribed", meta_.unsubscribe(call.uid, *name));
    return doc;
  }

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  MetadataStore& meta_;
};

}  // namespace

void register_storage_operations(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<StorageService>(core, std::move(store));
  service->install();
  core.add_reloadable(service);
  core.add_metrics_source(service);
  register_state_operations(core, service->store());
  register_lock_operations(core, service->store());
}

}  // namespace rtm::gateway
