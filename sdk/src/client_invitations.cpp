// Call invitations (issue 17): the requests of docs/protocol.md ("Call invitations"),
// their `invitation` events, and the acknowledgement of a received invitation, which the
// SDK sends itself so that the caller learns RECEIVED_BY_REMOTE.
#include "client_impl.hpp"
#include "json.hpp"
#include "rtm/sdk/client.hpp"

namespace rtm::sdk::detail {

InvitationEvent parse_invitation(const rapidjson::Value& v) {
  InvitationEvent e;
  e.id = json::str(v, "id");
  e.side = json::str(v, "side") == "remote" ? InvitationSide::remote : InvitationSide::local;
  e.state = json::str(v, "state");
  e.state_code = static_cast<int>(json::int64(v, "state_code"));
  e.reason = json::str(v, "reason", "OK");
  e.reason_code = static_cast<int>(json::int64(v, "reason_code"));
  e.caller = json::str(v, "caller");
  e.callee = json::str(v, "callee");
  e.content = json::str(v, "content");
  e.channel_id = json::str(v, "channel_id");
  e.response = json::str(v, "response");
  e.ts = json::int64(v, "ts");
  return e;
}

void ClientImpl::invitation_op(const char* op, std::string body, Callback<InvitationEvent> done) {
  send_request(op, std::move(body), op, [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    InvitationEvent e;
    e.id = json::str(r.result(), "id");
    e.state = json::str(r.result(), "state");
    e.reason = json::str(r.result(), "reason", "OK");
    done(std::move(e));
  });
}

void ClientImpl::list_invitations(Callback<std::vector<InvitationEvent>> done) {
  send_request("invitations", "{}", "invitations", [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    std::vector<InvitationEvent> out;
    auto list = r.result().FindMember("invitations");
    if (list != r.result().MemberEnd() && list->value.IsArray()) {
      for (const auto& v : list->value.GetArray()) out.push_back(parse_invitation(v));
    }
    done(std::move(out));
  });
}

void ClientImpl::on_invitation_event(const rapidjson::Value& doc) {
  auto e = parse_invitation(doc);
  if (e.id.empty()) return;
  track_invitation(e);
  if (e.side == InvitationSide::remote && e.state == "RECEIVED") {
    // Receipt first, before the app sees it (it may answer at once: the gateway takes
    // the answer after the acknowledgement, in order).
    send_request("ack_invitation", json::Object().str("id", e.id).text(), "ack_invitation " + e.id,
                 [](Reply) {});
  }
  emit(handler_of<InvitationEvent>(), std::move(e));
}

}  // namespace rtm::sdk::detail

namespace rtm::sdk {

using detail::ClientImpl;
namespace json = detail::json;

namespace {
Result<void> to_void(const Result<InvitationEvent>& r) {
  if (!r) return r.status();
  return {};
}
}  // namespace

Result<LocalInvitation> Invitations::send(const std::string& callee, const std::string& content,
                                          const std::string& channel_id) {
  auto impl = impl_;
  auto r = ClientImpl::wait<InvitationEvent>([&](Callback<InvitationEvent> done) {
    json::Object body;
    body.str("callee", callee).str("content", content);
    if (!channel_id.empty()) body.str("channel_id", channel_id);
    impl->invitation_op("invite", body.text(), done);
  });
  if (!r) return r.status();
  InvitationEvent e = std::move(r).value();
  e.side = InvitationSide::local;
  e.caller = impl->config().uid;
  e.callee = callee;
  e.content = content;
  e.channel_id = channel_id;
  return LocalInvitation(impl_, std::move(e));
}

void Invitations::send_async(const std::string& callee, const std::string& content,
                             const std::string& channel_id, Callback<LocalInvitation> done) {
  json::Object body;
  body.str("callee", callee).str("content", content);
  if (!channel_id.empty()) body.str("channel_id", channel_id);
  auto impl = impl_;
  impl_->invitation_op("invite", body.text(),
                       impl_->on_dispatcher<InvitationEvent>(
                           [impl, callee, content, channel_id, done](Result<InvitationEvent> r) {
                             if (!done) return;
                             if (!r) return done(r.status());
                             InvitationEvent e = std::move(r).value();
                             e.side = InvitationSide::local;
                             e.caller = impl->config().uid;
                             e.callee = callee;
                             e.content = content;
                             e.channel_id = channel_id;
                             done(LocalInvitation(impl, std::move(e)));
                           }));
}

Result<void> Invitations::cancel(const std::string& id) {
  auto impl = impl_;
  return to_void(ClientImpl::wait<InvitationEvent>([&](Callback<InvitationEvent> done) {
    impl->invitation_op("cancel_invitation", json::Object().str("id", id).text(), done);
  }));
}

Result<void> Invitations::accept(const std::string& id, const std::string& response) {
  auto impl = impl_;
  return to_void(ClientImpl::wait<InvitationEvent>([&](Callback<InvitationEvent> done) {
    impl->invitation_op("accept_invitation",
                        json::Object().str("id", id).str("response", response).text(), done);
  }));
}

Result<void> Invitations::refuse(const std::string& id, const std::string& response) {
  auto impl = impl_;
  return to_void(ClientImpl::wait<InvitationEvent>([&](Callback<InvitationEvent> done) {
    impl->invitation_op("refuse_invitation",
                        json::Object().str("id", id).str("response", response).text(), done);
  }));
}

Result<std::vector<InvitationEvent>> Invitations::list() {
  auto impl = impl_;
  return ClientImpl::wait<std::vector<InvitationEvent>>(
      [&](Callback<std::vector<InvitationEvent>> done) { impl->list_invitations(done); });
}

void Invitations::on_event(std::function<void(const InvitationEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}

static Status empty_invitation() {
  return Status(ErrorCode::not_logged_in, "an empty invitation object (not from send or an event)");
}

Result<void> LocalInvitation::cancel() {
  if (!impl_) return empty_invitation();
  return Invitations(impl_).cancel(event_.id);
}

void LocalInvitation::cancel_async(Callback<void> done) {
  if (!impl_) {
    if (done) done(empty_invitation());
    return;
  }
  impl_->invitation_op("cancel_invitation", json::Object().str("id", event_.id).text(),
                       impl_->on_dispatcher<InvitationEvent>([done](Result<InvitationEvent> r) {
                         if (done) done(to_void(r));
                       }));
}

Result<void> RemoteInvitation::accept(const std::string& response) {
  if (!impl_) return empty_invitation();
  return Invitations(impl_).accept(event_.id, response);
}

Result<void> RemoteInvitation::refuse(const std::string& response) {
  if (!impl_) return empty_invitation();
  return Invitations(impl_).refuse(event_.id, response);
}

void RemoteInvitation::accept_async(const std::string& response, Callback<void> done) {
  if (!impl_) {
    if (done) done(empty_invitation());
    return;
  }
  impl_->invitation_op("accept_invitation",
                       json::Object().str("id", event_.id).str("response", response).text(),
                       impl_->on_dispatcher<InvitationEvent>([done](Result<InvitationEvent> r) {
                         if (done) done(to_void(r));
                       }));
}

void RemoteInvitation::refuse_async(const std::string& response, Callback<void> done) {
  if (!impl_) {
    if (done) done(empty_invitation());
    return;
  }
  impl_->invitation_op("refuse_invitation",
                       json::Object().str("id", event_.id).str("response", response).text(),
                       impl_->on_dispatcher<InvitationEvent>([done](Result<InvitationEvent> r) {
                         if (done) done(to_void(r));
                       }));
}

}  // namespace rtm::sdk
