// Peer messages for offline users (docs/protocol.md, "Peer-to-peer"): the broker's copies of
// P/u/+/inbox/+ into the InboxStore when the recipient is offline, their delivery at
// login, send_message, inbox_history and delivery receipts. Every error is an Outcome on
// the wire; a message from the broker that cannot be kept is counted, never answered.
#include "rtm/gateway/inbox.hpp"

#include <spdlog/spdlog.h>

#include <climits>
#include <optional>
#include <utility>
#include <vector>

#include "rtm/gateway/json.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::gateway {
namespace {

using json::Document;

constexpr const char* kDelivered = "delivered";
constexpr const char* kStored = "stored";

class InboxService final : public MessageHandler,
                           public LoginObserver,
                           public Reloadable,
                           public MetricsSource,
                           public PeerInbox,
                           public ReplicaListener {
 public:
  InboxService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), inbox_(state_.inbox()) {
    state_.add_replica_listener(this);
  }
  // The core owns this service and its timers alike, and destroys its timers first.
  ~InboxService() override { state_.remove_replica_listener(this); }
  InboxService(const InboxService&) = delete;
  InboxService& operator=(const InboxService&) = delete;

  void install() {
    core_.add_operation(
        {"send_message", true, {"to", "message", "type", "receipt", "store"}, [this](Call& c) {
           return send_op(c);
         }});
    core_.add_operation({"inbox_history", true, {"limit", "after", "ack", "uid"}, [this](Call& c) {
                           return history_op(c);
                         }});
    expire_due();  // what aged while the gateway was down
    core_.set_loop_filters("inbox", filters());  // the bridge's fast path must not take them
  }

  // ---- MessageHandler: the broker's copy of every peer message.
  std::vector<std::string> filters() const override {
    if (!config().offline) return {};
    return {core_.tree().prefix() + "/u/+/inbox/+"};
  }

  // Reads without taking: a mapping rule may relay the same peer message to devices.
  bool on_message(const Message& m) override {
    auto parsed = core_.tree().parse(m.topic);
    if (!parsed || parsed->kind != topics::TopicKind::inbox) return false;
    if (!config().offline) return false;
    // The recipient first: for online users (the common case) this is the only work.
    if (state_.has_session(parsed->uid)) {
      ++online_;
      return false;
    }
    const auto rules = topics::name_rules_for(core_.config().broker.profile);
    if (m.retained || topics::name_error(parsed->uid, "uid", rules) ||
        topics::name_error(parsed->from, "uid", rules)) {
      ++bad_;  // a retained copy is no new message; bad names are no user's
      return false;
    }
    if (!state_.has_session(parsed->from)) {
      ++no_sender_;  // anyone may publish there without enforcement: only users keep
      return false;
    }
    auto kept = keep(parsed->from, parsed->uid, m.payload, false, core_.now_ms());
    if (kept) ++stored_direct_;
    return false;
  }

  // ---- LoginObserver: the kept messages follow the login answer, in a later turn.
  void on_login(const std::string& uid) override {
    if (!config().deliver_on_login || inbox_.count(uid) == 0) return;
    core_.post([this, uid] { deliver(uid); });
  }

  // ---- ReplicaListener: messages kept, delivered or expired by another gateway: the
  // timer follows the oldest one left (expire_due reads the rows when it fires).
  void replicated(const ChangeSet&) override { arm(); }

  void reload(const Config& next) override {
    inbox_.set_limits(inbox_limits(next.inbox));
    core_.set_loop_filters("inbox",
                           next.inbox.offline
                               ? std::vector<std::string>{core_.tree().prefix() + "/u/+/inbox/+"}
                               : std::vector<std::string>{});
    arm();
  }

  void write_metrics(MetricsWriter& out) const override {
    out.gauge("rtm_inbox_messages", "Peer messages kept for users without a live session",
              static_cast<double>(inbox_.message_count()));
    out.gauge("rtm_inbox_bytes", "Bytes of the kept peer messages (inbox.max_total_bytes)",
              static_cast<double>(inbox_.bytes()));
    out.gauge("rtm_inbox_users", "Users with kept peer messages",
              static_cast<double>(inbox_.user_count()));
    out.family("rtm_inbox_stored_total", MetricsWriter::Type::counter,
               "Peer messages kept for an offline user, by how they came");
    out.sample(static_cast<double>(stored_direct_), {{"via", "direct"}});
    out.sample(static_cast<double>(stored_send_), {{"via", "send_message"}});
    out.sample(static_cast<double>(stored_server_), {{"via", "server"}});
    out.family("rtm_inbox_not_stored_total", MetricsWriter::Type::counter,
               "Direct peer messages the gateway read and did not keep, by why");
    out.sample(static_cast<double>(online_), {{"reason", "recipient_online"}});
    out.sample(static_cast<double>(no_sender_), {{"reason", "sender_without_session"}});
    out.sample(static_cast<double>(bad_), {{"reason", "bad_topic_or_retained"}});
    out.family("rtm_inbox_refused_total", MetricsWriter::Type::counter,
               "Peer messages refused by an inbox limit (LIMIT_INBOX), by limit");
    out.sample(static_cast<double>(too_big_), {{"limit", "inbox.max_message_bytes"}});
    out.sample(static_cast<double>(full_), {{"limit", "inbox.max_total_bytes"}});
    out.counter("rtm_inbox_evicted_total",
                "Kept peer messages dropped for a newer one (inbox.max_messages_per_user)",
                static_cast<double>(evicted_));
    out.counter("rtm_inbox_expired_total", "Kept peer messages dropped at inbox.max_age_s",
                static_cast<double>(expired_));
    out.family("rtm_inbox_delivered_total", MetricsWriter::Type::counter,
               "Kept peer messages handed over, at login or acknowledged through inbox_history");
    out.sample(static_cast<double>(delivered_login_), {{"how", "login"}});
    out.sample(static_cast<double>(delivered_ack_), {{"how", "ack"}});
  }

  // ---- PeerInbox
  Outcome<bool> keep_server_message(const std::string& from, const std::string& to,
                                    const std::string& payload) override {
    if (!config().offline || state_.has_session(to)) return false;
    // A sender with a session: the copy the gateway reads back is kept as anyone's.
    if (state_.has_session(from)) return true;
    auto kept = keep(from, to, payload, false, core_.now_ms());
    if (!kept) return kept.error();
    ++stored_server_;
    return true;
  }

 private:
  const InboxConfig& config() const { return core_.config().inbox; }

  // Keeps a message for `to` (binary unless valid UTF-8, or as the sender said): the
  // record without its payload, or LIMIT_INBOX (counted).
  Outcome<PeerMessage> keep(const std::string& from, const std::string& to,
                            const std::string& payload, bool receipt, std::int64_t now,
                            std::optional<bool> binary = std::nullopt) {
    PeerMessage m;
    m.id = inbox_.next_id(now);
    m.from = from;
    m.to = to;
    m.ts_ms = now;
    m.binary = binary ? *binary : !topics::is_valid_utf8(payload);
    m.receipt = receipt;
    m.payload = payload;
    auto put = inbox_.put(m);
    if (!put) {
      ++(static_cast<std::int64_t>(payload.size()) > config().max_message_bytes ? too_big_ : full_);
      spdlog::debug("inbox: a message from {} to {} refused: {}", from, to, put.error().message);
      return put.error();
    }
    evicted_ += put->evicted.size();
    m.payload.clear();
    arm();
    return m;
  }

  // {"id":..,"from":..,"type":..,"message":..,"ts":..,"offline":..}
  Document message_event(const PeerMessage& m, bool offline) const {
    auto doc = json::object();
    json::set(doc, "id", std::to_string(m.id));
    json::set(doc, "from", m.from);
    json::set(doc, "type", m.binary ? "binary" : "text");
    json::set(doc, "message", m.binary ? util::base64_encode(m.payload) : m.payload);
    json::set_int(doc, "ts", m.ts_ms);
    json::set_bool(doc, "offline", offline);
    return doc;
  }

  // A receipt to the sender: the message `id` to `to` was delivered or stored.
  void receipt(const std::string& from, std::uint64_t id, const std::string& to,
               const char* status) {
    if (from == kServerCaller) return;  // the server's calls have no user topics
    auto doc = json::object();
    json::set(doc, "id", std::to_string(id));
    json::set(doc, "to", to);
    json::set(doc, "status", status);
    json::set_int(doc, "ts", core_.now_ms());
    core_.publish_user_event(from, "receipt", doc);
  }

  // Receipts for handed-over messages whose sender asked for one.
  void delivered(const std::vector<PeerMessage>& taken) {
    for (const auto& m : taken) {
      if (m.receipt) receipt(m.from, m.id, m.to, kDelivered);
    }
  }

  // At most kInboxDeliverPerTurn of uid's kept messages, oldest first, removed in the same
  // turn (so in the same commit as the events' release); the rest in the next turn.
  void deliver(const std::string& uid) {
    if (!state_.has_session(uid)) return;  // gone again: kept for the next login
    const auto batch = inbox_.list(uid, 0, kInboxDeliverPerTurn);
    if (batch.empty()) return;
    const std::string topic = core_.tree().user_event(uid, "message");
    for (const auto& m : batch) core_.publish(topic, json::dump(message_event(m, true)), 1, false);
    const auto taken = inbox_.take(uid, batch.back().id);
    delivered_login_ += taken.size();
    delivered(taken);
    arm();
    if (inbox_.count(uid) > 0) core_.post([this, uid] { deliver(uid); });
  }

  // One timer at the oldest message's expiry.
  void arm() {
    timer_.arm(core_.timers(), inbox_.next_expiry(), [this] { expire_due(); });
  }

  void expire_due() {
    const auto gone = inbox_.expire(core_.now_ms());
    if (!gone.empty()) {
      expired_ += gone.size();
      spdlog::info("inbox: {} peer messages older than inbox.max_age_s ({} s) dropped", gone.size(),
                   config().max_age_s);
    }
    arm();
  }

  // ------------------------------------------------------------ operations

  Outcome<Document> send_op(Call& call) {
    auto to = call.params.name("to");
    if (!to) return to.error();
    auto message = call.params.string("message");
    if (!message) return message.error();
    const std::string type = call.params.optional_string("type").value_or("text");
    std::string payload;
    if (type == "text") {
      payload = std::move(message).value();
    } else if (type == "binary") {
      auto bytes = util::base64_decode(*message);
      if (!bytes) {
        return failure(ErrorCode::invalid_parameter,
                       "\"message\" of type binary must be standard base64 (with padding)");
      }
      payload = std::move(*bytes);
    } else {
      return failure(ErrorCode::invalid_parameter,
                     "\"type\" must be text or binary, not \"" + type + "\"");
    }
    auto want_receipt = call.params.flag("receipt");
    if (!want_receipt) return want_receipt.error();
    auto store = call.params.has("store") ? call.params.flag("store") : Outcome<bool>(true);
    if (!store) return store.error();
    if (static_cast<std::int64_t>(payload.size()) > config().max_message_bytes) {
      ++too_big_;
      return failure(ErrorCode::limit_inbox, "the message has " + std::to_string(payload.size()) +
                                                 " bytes, over inbox.max_message_bytes (" +
                                                 std::to_string(config().max_message_bytes) + ")");
    }
    const std::string& from = call.uid;
    const char* status = kDelivered;
    std::uint64_t id = 0;
    if (state_.has_session(*to)) {
      PeerMessage m;
      m.id = id = inbox_.next_id(call.now_ms);
      m.from = from;
      m.to = *to;
      m.ts_ms = call.now_ms;
      m.binary = type == "binary";
      m.payload = std::move(payload);
      core_.publish(core_.tree().user_event(*to, "message"), json::dump(message_event(m, false)), 1,
                    false);
    } else if (!config().offline || !*store) {
      return failure(ErrorCode::peer_offline,
                     *to + " has no live session" +
                         (config().offline ? " and store is false" : " (inbox.offline is off)"));
    } else {
      // A message sent as binary stays binary, even when its bytes happen to be UTF-8.
      auto kept = keep(from, *to, payload, *want_receipt, call.now_ms, type == "binary");
      if (!kept) return kept.error();
      ++stored_send_;
      id = kept->id;
      status = kStored;
    }
    if (*want_receipt) receipt(from, id, *to, status);
    auto result = json::object();
    json::set(result, "id", std::to_string(id));
    json::set_int(result, "ts", call.now_ms);
    json::set(result, "status", status);
    return result;
  }

  Outcome<Document> history_op(Call& call) {
    std::string owner = call.uid;
    if (call.params.has("uid")) {
      auto uid = call.params.name("uid");
      if (!uid) return uid.error();
      if (*uid != call.uid && !core_.is_operator(call.uid)) {
        return failure(ErrorCode::forbidden, "only operators read another user's inbox");
      }
      owner = std::move(uid).value();
    } else if (call.uid == kServerCaller) {
      return failure(ErrorCode::missing_parameter, "parameter \"uid\" is required");
    }
    std::int64_t limit = kInboxHistoryDefaultLimit;
    if (call.params.has("limit")) {
      auto l = call.params.integer("limit", 1, kInboxHistoryMaxLimit);
      if (!l) return l.error();
      limit = *l;
    }
    std::int64_t after = 0;
    if (call.params.has("after")) {
      auto a = call.params.integer("after", 0, INT64_MAX);
      if (!a) return a.error();
      after = *a;
    }
    std::size_t acked = 0;
    if (call.params.has("ack")) {
      auto a = call.params.integer("ack", 0, INT64_MAX);
      if (!a) return a.error();
      const auto taken = inbox_.take(owner, static_cast<std::uint64_t>(*a));
      acked = taken.size();
      delivered_ack_ += taken.size();
      delivered(taken);
      arm();
    }
    auto list =
        inbox_.list(owner, static_cast<std::uint64_t>(after), static_cast<std::size_t>(limit) + 1);
    const bool more = list.size() > static_cast<std::size_t>(limit);
    if (more) list.pop_back();
    auto doc = json::object();
    auto& a = doc.GetAllocator();
    json::Value messages(rapidjson::kArrayType);
    for (const auto& m : list) {
      json::Value v;
      v.CopyFrom(message_event(m, true), a);
      messages.PushBack(std::move(v), a);
    }
    json::set(doc, "uid", owner);
    json::set(doc, "messages", std::move(messages));
    json::set_bool(doc, "more", more);
    if (call.params.has("ack")) json::set_int(doc, "acked", static_cast<std::int64_t>(acked));
    return doc;
  }

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  InboxStore& inbox_;
  DeadlineTimer timer_;
  // Counters (loop thread).
  std::uint64_t stored_direct_ = 0, stored_send_ = 0, stored_server_ = 0;
  std::uint64_t online_ = 0, no_sender_ = 0, bad_ = 0;
  std::uint64_t too_big_ = 0, full_ = 0, evicted_ = 0, expired_ = 0;
  std::uint64_t delivered_login_ = 0, delivered_ack_ = 0;
};

}  // namespace

std::shared_ptr<PeerInbox> register_inbox(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<InboxService>(core, std::move(store));
  service->install();
  core.add_message_handler(service);
  core.add_login_observer(service);
  core.add_reloadable(service);
  core.add_metrics_source(service);
  return service;
}

}  // namespace rtm::gateway
