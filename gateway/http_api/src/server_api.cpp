#include <map>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/http_api.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway {

ServerApi::ServerApi(Core& core, std::shared_ptr<StateStore> store,
                     std::shared_ptr<PeerInbox> inbox)
    : core_(core), store_(std::move(store)), inbox_(std::move(inbox)) {}

ApiOutcome ServerApi::publish(const ServerMessage& m) {
  const auto& tree = core_.tree();
  const std::string topic = m.to.empty() ? tree.channel_message(m.channel, m.topic, m.publisher)
                                         : tree.inbox(m.to, m.from);
  // To an offline user's inbox: also kept for its next login (the server counts as a live
  // sender); published all the same, for devices that read the inbox without a session.
  bool kept = false;
  if (!m.to.empty() && inbox_) {
    auto keep = inbox_->keep_server_message(m.from, m.to, m.payload);
    if (!keep) return keep.error();
    kept = *keep;
  }
  if (!core_.publish(topic, m.payload, m.qos, false)) {
    return failure(ErrorCode::unavailable, "the broker link did not take the message");
  }
  auto doc = json::object();
  json::set(doc, "topic", topic);
  json::set_int(doc, "bytes", static_cast<std::int64_t>(m.payload.size()));
  if (!m.to.empty()) json::set(doc, "status", kept ? "stored" : "published");
  return doc;
}

ApiOutcome ServerApi::channels() const {
  std::map<std::string, std::int64_t> counts;
  store_->for_each_member([&counts](const std::string& channel, const std::string&,
                                    const StoredMember&) { ++counts[channel]; });
  auto doc = json::object();
  auto& a = doc.GetAllocator();
  json::Value list(rapidjson::kArrayType);
  for (const auto& [channel, members] : counts) {
    json::Value item(rapidjson::kObjectType);
    item.AddMember("channel", json::str(channel, a), a);
    item.AddMember("members", json::Value(members), a);
    list.PushBack(item, a);
  }
  json::set(doc, "channels", std::move(list));
  return doc;
}

ApiOutcome ServerApi::presence(const std::vector<std::string>& users) const {
  auto doc = json::object();
  auto& a = doc.GetAllocator();
  json::Value list(rapidjson::kArrayType);
  for (const auto& uid : users) {
    json::Value item(rapidjson::kObjectType);
    item.AddMember("uid", json::str(uid, a), a);
    item.AddMember("online", json::Value(store_->online(uid)), a);
    item.AddMember("session", json::Value(store_->has_session(uid)), a);
    list.PushBack(item, a);
  }
  json::set(doc, "users", std::move(list));
  return doc;
}

ApiOutcome ServerApi::call(const std::string& name, const std::string& params) {
  return core_.invoke(name, params);
}

}  // namespace rtm::gateway
