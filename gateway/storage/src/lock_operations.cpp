// The lock operations of issue 15 (docs/protocol.md, "Locks"): requests into calls on the
// LockStore seam, the storage model's events into `lock` channel events. Who may call is
// decided here (membership, storage.lock_managers), not in the store.
//
// Holders and waiters must stay members of the channel. The state store tells which
// members changed (ChangeListener), from inside its own mutations, so the keys are only
// remembered there and worked off at the next flush (a PublishBarrier: before the next
// message goes out and at the end of the turn, so in the same commit): a holder that is
// no longer a member starts its ttl countdown, a waiter leaves the queue, a holder that is
// a member again keeps its locks. One timer, at the earliest countdown deadline, expires
// locks and hands them to the next waiter.
#include "lock_operations.hpp"

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rtm/storage/errors.hpp"
#include "rtm/storage/keys.hpp"
#include "rtm/storage/locks.hpp"
#include "storage_params.hpp"

namespace rtm::gateway {
namespace {

using json::Document;
using namespace storage_ops;
namespace st = rtm::storage;

std::string_view status_name(st::AcquireStatus status) {
  switch (status) {
    case st::AcquireStatus::acquired:
      return "acquired";
    case st::AcquireStatus::already_held:
      return "already_held";
    case st::AcquireStatus::queued:
      return "queued";
    case st::AcquireStatus::already_queued:
      return "already_queued";
  }
  return "unknown";
}

// The largest ttl a request may carry before the storage model checks it against
// storage.lock_min_ttl_s and lock_max_ttl_s (whose message names the key).
constexpr std::int64_t kMaxTtlParam = 1'000'000'000;

class LockService final : public PublishBarrier,
                          public ChangeListener,
                          public ReplicaListener,
                          public Reloadable,
                          public MetricsSource {
 public:
  LockService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), locks_(state_.locks()) {
    state_.add_change_listener(this);
    state_.add_replica_listener(this);
  }
  // The core owns this service and its timers alike, and destroys its timers first: the
  // armed timer is not cancelled here (its callback dies with the core).
  ~LockService() override {
    state_.remove_replica_listener(this);
    state_.remove_change_listener(this);
  }
  LockService(const LockService&) = delete;
  LockService& operator=(const LockService&) = delete;

  void install() {
    add("set_lock", {"channel", "lock", "ttl"}, [this](Call& c) { return set_op(c); });
    add("acquire_lock", {"channel", "lock", "retry"}, [this](Call& c) { return acquire_op(c); });
    add("release_lock", {"channel", "lock"}, [this](Call& c) { return release_op(c); });
    add("revoke_lock", {"channel", "lock", "uid"}, [this](Call& c) { return revoke_op(c); });
    add("get_locks", {"channel"}, [this](Call& c) { return get_op(c); });
    add("remove_lock", {"channel", "lock"}, [this](Call& c) { return remove_op(c); });
    reconcile();
  }

  // ---- ChangeListener: inside the store's mutations, so only the keys are kept.
  void session_changed(const std::string&) override {}  // its channels tell member_changed
  // Only channels with locks have holders or waiters to follow: the other members' joins,
  // topics and subscriptions cost nothing here.
  void member_changed(const std::string& channel, const std::string& uid) override {
    if (locks_.has_locks(channel)) dirty_.emplace(channel, uid);
  }

  // ---- PublishBarrier: before each message and at the end of each turn.
  void flush(Core&) override {
    if (dirty_.empty()) return;
    const auto dirty = std::move(dirty_);
    dirty_.clear();
    const std::int64_t now = core_.now_ms();
    for (const auto& [channel, uid] : dirty) follow_member(channel, uid, now);
    arm();
  }

  // ---- ReplicaListener: another gateway changed locks (its countdowns and grants came
  // with the rows, as it followed its members): the timer follows the next deadline.
  // expire_due reads the rows when it fires, so a countdown ended elsewhere is not run.
  void replicated(const ChangeSet&) override { arm(); }

  void reload(const Config& next) override { locks_.set_limits(next.storage.locks); }

  void write_metrics(MetricsWriter& out) const override {
    out.gauge("rtm_locks", "Locks set in every channel", static_cast<double>(locks_.lock_count()));
  }

 private:
  void add(const char* name, std::vector<std::string_view> params,
           std::function<Outcome<Document>(Call&)> handle) {
    core_.add_operation({name, true, std::move(params), std::move(handle)});
  }

  const StorageConfig& config() const { return core_.config().storage; }

  // A holder or waiter that is no longer a member drops out (countdown, queue); one that
  // is a member again keeps its locks.
  void follow_member(const std::string& channel, const std::string& uid, std::int64_t now) {
    if (state_.is_member(uid, channel)) {
      locks_.holder_returned(channel, uid);
    } else {
      locks_.holder_left(channel, uid, now);
    }
  }

  // After a restart: the stored holders and waiters meet the restored members. A holder
  // whose session did not come back starts its countdown (one counting down already keeps
  // its deadline), a waiter without one leaves the queue.
  void reconcile() {
    const std::int64_t now = core_.now_ms();
    for (const auto& channel : locks_.channels()) {
      std::set<std::string> uids;
      for (const auto& lock : locks_.get_locks(channel)) {
        if (lock.holder) uids.insert(*lock.holder);
        uids.insert(lock.waiters.begin(), lock.waiters.end());
      }
      for (const auto& uid : uids) follow_member(channel, uid, now);
    }
    arm();
  }

  // One timer at the earliest countdown deadline; moved when that changes.
  void arm() {
    timer_.arm(core_.timers(), locks_.next_deadline(), [this] { expire_due(); });
  }

  // The countdowns that ran out: `expired`, and `acquired` for each next waiter.
  void expire_due() {
    for (const auto& due : locks_.due(core_.now_ms())) publish(due.channel, due.events);
    arm();
  }

  void publish(const std::string& channel, const std::vector<st::LockEvent>& events) {
    for (const auto& e : events) {
      auto doc = json::object();
      json::set(doc, "event", "lock");
      json::set_int(doc, "ts", core_.now_ms());
      json::set(doc, "kind", st::lock_event_name(e.kind));
      json::set(doc, "channel", channel);
      json::set(doc, "lock", e.lock);
      if (!e.uid.empty()) json::set(doc, "uid", e.uid);
      if (e.kind == st::LockEventKind::set) json::set_int(doc, "ttl", e.ttl_s);
      core_.publish(core_.tree().channel_events(channel), json::dump(doc), 1, false);
    }
  }

  // The events of a call that changed the channel's locks, and the timer after them.
  Outcome<Document> done(const std::string& channel, const std::vector<st::LockEvent>& events,
                         Document answer) {
    publish(channel, events);
    arm();
    return answer;
  }

  // ------------------------------------------------------------ parameters, who may

  struct Target {
    std::string channel;
    std::string lock;
  };

  // The channel (the caller must be a member; get_locks is read as who_now is) and, with
  // `named`, the lock.
  Outcome<Target> target(Call& call, bool named) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    if (!named) {
      if (auto refused = channel_read_refusal(core_, state_, call.uid, *channel, "its locks")) {
        return *refused;
      }
      return Target{std::move(channel).value(), {}};
    }
    if (!state_.is_member(call.uid, *channel)) {
      return failure(ErrorCode::not_joined, call.uid + " has not joined channel " + *channel +
                                                " (its members use its locks)");
    }
    Target t{std::move(channel).value(), {}};
    auto lock = call.params.string("lock");
    if (!lock) return lock.error();
    if (auto problem = st::key_problem(*lock, config().locks.max_name_bytes)) {
      return failure(ErrorCode::invalid_parameter, "lock name \"" + *lock + "\" " + *problem);
    }
    t.lock = std::move(lock).value();
    return t;
  }

  // set_lock, remove_lock, revoke_lock: storage.lock_managers.
  std::optional<Failure> may_manage(const std::string& uid) const {
    if (config().lock_managers == "members" || core_.is_operator(uid)) return std::nullopt;
    return failure(ErrorCode::forbidden,
                   "only operators set, remove and revoke locks (storage.lock_managers: "
                   "operators)");
  }

  static Document head(const Target& t) {
    auto doc = json::object();
    json::set(doc, "channel", t.channel);
    json::set(doc, "lock", t.lock);
    return doc;
  }

  // ------------------------------------------------------------ operations

  Outcome<Document> set_op(Call& call) {
    auto t = target(call, true);
    if (!t) return t.error();
    if (auto refused = may_manage(call.uid)) return *refused;
    auto ttl = call.params.integer("ttl", 0, kMaxTtlParam);
    if (!ttl) return ttl.error();
    auto events = locks_.set_lock(t->channel, t->lock, *ttl);
    if (!events) return wire_failure(events.error());
    auto answer = head(*t);
    json::set_int(answer, "ttl", *ttl);
    return done(t->channel, *events, std::move(answer));
  }

  Outcome<Document> acquire_op(Call& call) {
    auto t = target(call, true);
    if (!t) return t.error();
    auto retry = call.params.flag("retry");
    if (!retry) return retry.error();
    auto outcome = locks_.acquire(t->channel, t->lock, call.uid, *retry, call.now_ms);
    if (!outcome) return wire_failure(outcome.error());
    auto answer = head(*t);
    json::set(answer, "status", status_name(outcome->status));
    if (outcome->position > 0) {
      json::set_int(answer, "position", static_cast<std::int64_t>(outcome->position));
    }
    return done(t->channel, outcome->events, std::move(answer));
  }

  Outcome<Document> release_op(Call& call) {
    auto t = target(call, true);
    if (!t) return t.error();
    auto events = locks_.release(t->channel, t->lock, call.uid, call.now_ms);
    if (!events) return wire_failure(events.error());
    return done(t->channel, *events, head(*t));
  }

  Outcome<Document> revoke_op(Call& call) {
    auto t = target(call, true);
    if (!t) return t.error();
    if (auto refused = may_manage(call.uid)) return *refused;
    auto holder = call.params.name("uid");
    if (!holder) return holder.error();
    auto events = locks_.revoke(t->channel, t->lock, *holder, call.now_ms);
    if (!events) return wire_failure(events.error());
    auto answer = head(*t);
    json::set(answer, "uid", *holder);
    return done(t->channel, *events, std::move(answer));
  }

  Outcome<Document> remove_op(Call& call) {
    auto t = target(call, true);
    if (!t) return t.error();
    if (auto refused = may_manage(call.uid)) return *refused;
    auto events = locks_.remove(t->channel, t->lock, call.now_ms);
    if (!events) return wire_failure(events.error());
    return done(t->channel, *events, head(*t));
  }

  // The locks as they are now: countdowns due are applied first (with their events), so
  // that a read never shows a holder whose time ran out.
  Outcome<Document> get_op(Call& call) {
    auto t = target(call, false);
    if (!t) return t.error();
    expire_due();
    auto doc = json::object();
    auto& a = doc.GetAllocator();
    json::set(doc, "channel", t->channel);
    json::Value list(rapidjson::kArrayType);
    for (const auto& lock : locks_.get_locks(t->channel)) {
      json::Value v(rapidjson::kObjectType);
      v.AddMember("lock", json::str(lock.name, a), a);
      v.AddMember("ttl", static_cast<int64_t>(lock.ttl_s), a);
      if (lock.holder) v.AddMember("owner", json::str(*lock.holder, a), a);
      json::Value waiters(rapidjson::kArrayType);
      for (const auto& w : lock.waiters) waiters.PushBack(json::str(w, a), a);
      v.AddMember("waiters", std::move(waiters), a);
      if (lock.expires_at_ms)
        v.AddMember("expires_at", static_cast<int64_t>(*lock.expires_at_ms), a);
      list.PushBack(std::move(v), a);
    }
    json::set(doc, "locks", std::move(list));
    return doc;
  }

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  LockStore& locks_;
  std::set<std::pair<std::string, std::string>> dirty_;  // (channel, uid) changed members
  DeadlineTimer timer_;
};

}  // namespace

void register_lock_operations(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<LockService>(core, std::move(store));
  service->install();
  core.add_publish_barrier(service);
  core.add_reloadable(service);
  core.add_metrics_source(service);
}

}  // namespace rtm::gateway
