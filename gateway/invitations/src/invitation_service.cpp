// Call invitations (docs/protocol.md, "Call invitations"): the operations over the
// InvitationStore, the events of each transition on P/u/{uid}/events/invitation, one
// timer at the earliest deadline, and the end of invitations with a party's session.
// Every error is an Outcome on the wire.
#include "rtm/gateway/invitations.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rtm/gateway/json.hpp"
#include "rtm/gateway/metrics.hpp"
#include "rtm/gateway/timers.hpp"
#include "rtm/invitations/invitations.hpp"

namespace rtm::gateway {
namespace {

using json::Document;
namespace inv = rtm::invitations;

Failure to_failure(const inv::Error& e) {
  switch (e.code) {
    case inv::ErrorCode::not_found:
      return failure(ErrorCode::invitation_not_found, e.message);
    case inv::ErrorCode::wrong_party:
      return failure(ErrorCode::invitation_wrong_side, e.message);
    case inv::ErrorCode::self_invite:
      return failure(ErrorCode::invalid_parameter, e.message);
    case inv::ErrorCode::too_many:
    case inv::ErrorCode::too_large:
      return failure(ErrorCode::limit_invitations, e.message);
  }
  return failure(ErrorCode::internal, e.message);
}

class InvitationService final : public ChangeListener,
                                public ReplicaListener,
                                public PublishBarrier,
                                public Reloadable,
                                public MetricsSource {
 public:
  InvitationService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), book_(state_.invitations()) {
    state_.add_change_listener(this);
    state_.add_replica_listener(this);
  }
  // The core owns this service and its timers alike, and destroys its timers first.
  ~InvitationService() override {
    state_.remove_replica_listener(this);
    state_.remove_change_listener(this);
  }
  InvitationService(const InvitationService&) = delete;
  InvitationService& operator=(const InvitationService&) = delete;

  void install() {
    add("invite", {"callee", "content", "channel_id"}, [this](Call& c) { return invite_op(c); });
    add("ack_invitation", {"id"}, [this](Call& c) { return ack_op(c); });
    add("accept_invitation", {"id", "response"}, [this](Call& c) { return answer_op(c, true); });
    add("refuse_invitation", {"id", "response"}, [this](Call& c) { return answer_op(c, false); });
    add("cancel_invitation", {"id"}, [this](Call& c) { return cancel_op(c); });
    add("invitations", {}, [this](Call& c) { return list_op(c); });
    // What passed its deadline while the gateway was down fails at the first timer turn.
    arm();
  }

  // ---- ChangeListener: inside the store's mutations, so only the uids are kept.
  void session_changed(const std::string& uid) override {
    if (book_.involves(uid)) ended_.insert(uid);
  }
  void member_changed(const std::string&, const std::string&) override {}

  // ---- PublishBarrier: a party whose session ended takes its invitations with it.
  void flush(Core&) override {
    if (ended_.empty()) return;
    const auto uids = std::move(ended_);
    ended_.clear();
    for (const auto& uid : uids) {
      if (state_.has_session(uid)) continue;  // a new login, not an end
      tell(book_.session_ended(uid), core_.now_ms());
    }
    arm();
  }

  // ---- ReplicaListener: invitations made, answered or ended by another gateway (which
  // also ended those of the sessions it ended): the timer follows the next deadline, and
  // due() reads the rows when it fires.
  void replicated(const ChangeSet&) override { arm(); }

  void reload(const Config& next) override {
    book_.set_limits(invitation_limits(next.invitations));
  }

  void write_metrics(MetricsWriter& out) const override {
    out.gauge("rtm_invitations", "Call invitations in flight", static_cast<double>(book_.size()));
    out.family("rtm_invitations_ended_total", MetricsWriter::Type::counter,
               "Call invitations ended, by the caller's final state and reason");
    out.sample(static_cast<double>(accepted_), {{"state", "ACCEPTED_BY_REMOTE"}, {"reason", "OK"}});
    out.sample(static_cast<double>(refused_), {{"state", "REFUSED_BY_REMOTE"}, {"reason", "OK"}});
    out.sample(static_cast<double>(canceled_), {{"state", "CANCELED"}, {"reason", "OK"}});
    out.sample(static_cast<double>(offline_), {{"state", "FAILURE"}, {"reason", "PEER_OFFLINE"}});
    out.sample(static_cast<double>(no_response_),
               {{"state", "FAILURE"}, {"reason", "PEER_NO_RESPONSE"}});
    out.sample(static_cast<double>(expired_),
               {{"state", "FAILURE"}, {"reason", "INVITATION_EXPIRE"}});
  }

 private:
  void add(const char* name, std::vector<std::string_view> params,
           std::function<Outcome<Document>(Call&)> handle) {
    core_.add_operation({name, true, std::move(params), std::move(handle)});
  }

  // {"id","side","state","state_code","reason","reason_code","caller","callee","content",
  //  "channel_id","response"?,"ts"}
  static Document event_doc(const inv::Event& e, std::int64_t now) {
    auto doc = json::object();
    json::set(doc, "id", std::to_string(e.invitation.id));
    json::set(doc, "side", e.side == inv::Side::local ? "local" : "remote");
    json::set(doc, "state", e.state_name());
    json::set_int(
        doc, "state_code",
        e.side == inv::Side::local ? static_cast<int>(e.local) : static_cast<int>(e.remote));
    json::set(doc, "reason", std::string(inv::name(e.reason)));
    json::set_int(doc, "reason_code", static_cast<int>(e.reason));
    json::set(doc, "caller", e.invitation.caller);
    json::set(doc, "callee", e.invitation.callee);
    json::set(doc, "content", e.invitation.content);
    json::set(doc, "channel_id", e.invitation.channel_id);
    if (!e.response.empty()) json::set(doc, "response", e.response);
    json::set_int(doc, "ts", now);
    return doc;
  }

  // Publishes the events of a transition (the server has no user topics) and counts ends.
  void tell(const inv::Transition& t, std::int64_t now) {
    for (const auto& e : t.events) {
      if (e.side == inv::Side::local) count(e);
      if (e.uid == kServerCaller) continue;
      core_.publish_user_event(e.uid, "invitation", event_doc(e, now));
    }
  }

  void count(const inv::Event& e) {
    switch (e.local) {
      case inv::LocalState::accepted_by_remote:
        ++accepted_;
        break;
      case inv::LocalState::refused_by_remote:
        ++refused_;
        break;
      case inv::LocalState::canceled:
        ++canceled_;
        break;
      case inv::LocalState::failure:
        if (e.reason == inv::Reason::peer_offline)
          ++offline_;
        else if (e.reason == inv::Reason::peer_no_response)
          ++no_response_;
        else if (e.reason == inv::Reason::invitation_expire)
          ++expired_;
        break;
      default:
        break;
    }
  }

  // One timer at the earliest deadline.
  void arm() {
    timer_.arm(core_.timers(), book_.next_deadline(), [this] { due(); });
  }

  void due() {
    const auto now = core_.now_ms();
    tell(book_.due(now), now);
    arm();
  }

  // The invitation id: its decimal string as events show it (or a JSON number).
  static Outcome<std::uint64_t> id_param(const Params& params) {
    const auto* v = params.value("id");
    if (!v || v->IsNull())
      return failure(ErrorCode::missing_parameter, "parameter \"id\" is required");
    if (v->IsUint64()) return v->GetUint64();
    if (v->IsString()) {
      const std::string_view s(v->GetString(), v->GetStringLength());
      std::uint64_t id = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
      if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return id;
    }
    return failure(ErrorCode::invalid_parameter,
                   "\"id\" must be an invitation id (decimal digits, as in its events)");
  }

  // A free text parameter ("" when absent); the model bounds its bytes.
  static Outcome<std::string> text_param(const Params& params, std::string_view key) {
    if (!params.has(key)) return std::string();
    return params.string(key);
  }

  // What an operation answers: the invitation's id and the caller's (or callee's) state.
  static Document result_doc(const inv::Transition& t, const std::string& uid) {
    auto doc = json::object();
    json::set(doc, "id", std::to_string(t.id));
    for (const auto& e : t.events) {
      if (e.uid != uid) continue;
      json::set(doc, "state", e.state_name());
      json::set(doc, "reason", std::string(inv::name(e.reason)));
      break;
    }
    return doc;
  }

  // ------------------------------------------------------------ operations

  Outcome<Document> invite_op(Call& call) {
    auto callee = call.params.name("callee");
    if (!callee) return callee.error();
    auto content = text_param(call.params, "content");
    if (!content) return content.error();
    std::string channel;
    if (call.params.has("channel_id")) {
      auto c = call.params.name("channel_id");
      if (!c) return c.error();
      channel = std::move(c).value();
    }
    const bool online = state_.has_session(*callee);
    auto t = book_.invite(call.uid, *callee, std::move(content).value(), std::move(channel), online,
                          call.now_ms);
    if (!t) return to_failure(t.error());
    tell(*t, call.now_ms);
    arm();
    return result_doc(*t, call.uid);
  }

  Outcome<Document> ack_op(Call& call) {
    auto id = id_param(call.params);
    if (!id) return id.error();
    auto t = book_.ack(call.uid, *id, call.now_ms);
    if (!t) return to_failure(t.error());
    tell(*t, call.now_ms);
    arm();
    auto doc = json::object();
    json::set(doc, "id", std::to_string(*id));
    json::set(doc, "state", "RECEIVED");
    return doc;
  }

  Outcome<Document> answer_op(Call& call, bool accept) {
    auto id = id_param(call.params);
    if (!id) return id.error();
    auto response = text_param(call.params, "response");
    if (!response) return response.error();
    auto t = accept ? book_.accept(call.uid, *id, std::move(response).value(), call.now_ms)
                    : book_.refuse(call.uid, *id, std::move(response).value(), call.now_ms);
    if (!t) return to_failure(t.error());
    tell(*t, call.now_ms);
    arm();
    return result_doc(*t, call.uid);
  }

  Outcome<Document> cancel_op(Call& call) {
    auto id = id_param(call.params);
    if (!id) return id.error();
    auto t = book_.cancel(call.uid, *id, call.now_ms);
    if (!t) return to_failure(t.error());
    tell(*t, call.now_ms);
    arm();
    return result_doc(*t, call.uid);
  }

  // The invitations the caller sends or receives, with the state each side sees now.
  Outcome<Document> list_op(Call& call) {
    auto doc = json::object();
    auto& a = doc.GetAllocator();
    json::Value list(rapidjson::kArrayType);
    for (const auto& i : book_.of(call.uid)) {
      inv::Event e;
      e.invitation = i;
      e.uid = call.uid;
      e.side = i.caller == call.uid ? inv::Side::local : inv::Side::remote;
      e.local = i.phase == inv::Phase::sent ? inv::LocalState::sent_to_remote
                                            : inv::LocalState::received_by_remote;
      e.remote = inv::RemoteState::received;
      auto item = event_doc(e, call.now_ms);
      json::set(item, "phase", i.phase == inv::Phase::sent ? "sent" : "received");
      json::set_int(item, "deadline", i.deadline_ms);
      json::Value v;
      v.CopyFrom(item, a);
      list.PushBack(std::move(v), a);
    }
    json::set(doc, "invitations", std::move(list));
    return doc;
  }

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  InvitationStore& book_;
  DeadlineTimer timer_;
  std::set<std::string> ended_;  // parties whose session changed this turn
  std::uint64_t accepted_ = 0, refused_ = 0, canceled_ = 0;
  std::uint64_t offline_ = 0, no_response_ = 0, expired_ = 0;
};

}  // namespace

void register_invitations(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<InvitationService>(core, std::move(store));
  service->install();
  core.add_publish_barrier(service);
  core.add_reloadable(service);
  core.add_metrics_source(service);
}

}  // namespace rtm::gateway
