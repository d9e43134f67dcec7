// Message channels (RTM 2) and channel tokens (issue 17): publish to P/mc/{channel}/{uid}
// with the message type in the topic, subscribe_channel / unsubscribe_channel without a
// join, the presence events of a message channel, and the `token` events that name a
// channel (docs/protocol.md, "Message channels" and "Channel tokens").
#include "client_impl.hpp"
#include "json.hpp"
#include "rtm/sdk/client.hpp"

namespace rtm::sdk {

std::string_view to_string(MessageType type) {
  return type == MessageType::string ? "string" : "binary";
}

namespace detail {
namespace {

using Lock = std::unique_lock<std::mutex>;

// The level after the publisher that marks a string message (docs/protocol.md).
constexpr std::string_view kStringLevel = "string";

}  // namespace

std::vector<std::string> ClientImpl::message_channel_filters(const std::string& channel,
                                                             bool presence) const {
  std::vector<std::string> filters{base_ + "mc/" + channel + "/#"};
  if (presence) filters.push_back(base_ + "mcevents/" + channel);
  return filters;
}

Result<void> ClientImpl::publish_channel(const std::string& channel, std::string_view payload,
                                         MessageType type, int qos) {
  if (qos < 0 || qos > 1) return Status(ErrorCode::invalid_parameter, "qos must be 0 or 1");
  if (auto e = name_problem("channel", channel)) return Status(ErrorCode::invalid_name, *e);
  std::string to = base_ + "mc/" + channel + "/" + config_.uid;
  if (type == MessageType::string) {
    to += '/';
    to += kStringLevel;
  }
  return publish_or_queue(to, payload, qos);
}

void ClientImpl::subscribe_channel(const std::string& channel,
                                   const SubscribeChannelOptions& options,
                                   Callback<MessageChannelInfo> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  const auto filters = message_channel_filters(channel, options.with_presence);
  bool subscribe_now;
  {
    Lock lock(mutex_);
    subscribe_now = connected_;
  }
  // In place before the request goes out, so nothing after the answer is missed (the
  // broker delivers only once the gateway has granted it, where it enforces grants).
  if (subscribe_now) mqtt_subscribe(filters);
  json::Object body;
  body.str("channel", channel).boolean("with_presence", options.with_presence);
  if (!options.token.empty()) body.str("token", options.token);
  send_request("subscribe_channel", body.text(), "subscribe_channel " + channel,
               [this, channel, options, filters, done](Reply r) {
                 if (!r.status.ok()) {
                   bool drop;
                   {
                     Lock lock(mutex_);
                     drop = message_channels_.count(channel) == 0;
                   }
                   if (drop) mqtt_unsubscribe(filters);
                   return done(r.status);
                 }
                 std::vector<std::string> stale;
                 {
                   Lock lock(mutex_);
                   auto& mc = message_channels_[channel];
                   if (mc.presence && !options.with_presence) {
                     stale.push_back(message_channel_filters(channel, true).back());
                   }
                   mc.presence = options.with_presence;
                   if (!options.token.empty()) mc.token = options.token;
                 }
                 mqtt_unsubscribe(stale);
                 MessageChannelInfo info;
                 info.channel = channel;
                 info.with_presence = json::boolean(r.result(), "with_presence");
                 info.token_expires_at = json::int64(r.result(), "token_expires_at");
                 const auto& result = r.result();
                 if (result.HasMember("members") && result["members"].IsArray()) {
                   for (const auto& m : result["members"].GetArray()) {
                     if (m.IsString())
                       info.members.emplace_back(m.GetString(), m.GetStringLength());
                   }
                 }
                 done(std::move(info));
               });
}

void ClientImpl::unsubscribe_channel(const std::string& channel, Callback<void> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("unsubscribe_channel", json::Object().str("channel", channel).text(),
               "unsubscribe_channel " + channel, [this, channel, done](Reply r) {
                 if (r.status.ok() || r.status.is(ErrorCode::not_subscribed)) {
                   bool had;
                   {
                     Lock lock(mutex_);
                     had = message_channels_.erase(channel) > 0;
                   }
                   if (had) mqtt_unsubscribe(message_channel_filters(channel, true));
                 }
                 if (!r.status.ok()) return done(r.status);
                 done(Result<void>());
               });
}

void ClientImpl::renew_channel_token(const std::string& channel, const std::string& token,
                                     Callback<std::int64_t> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("renew_channel_token",
               json::Object().str("channel", channel).str("token", token).text(),
               "renew_channel_token " + channel, [this, channel, token, done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 {
                   Lock lock(mutex_);
                   if (auto ch = channels_.find(channel); ch != channels_.end()) {
                     ch->second.token = token;
                   }
                   if (auto mc = message_channels_.find(channel); mc != message_channels_.end()) {
                     mc->second.token = token;
                   }
                 }
                 done(json::int64(r.result(), "expires_at"));
               });
}

// rest: "{channel}/{publisher}" or "{channel}/{publisher}/string"
void ClientImpl::on_message_channel_message(const mqtt::const_message_ptr& msg,
                                            std::string_view rest) {
  const auto a = rest.find('/');
  if (a == std::string_view::npos || a == 0) return;
  ChannelMessageEvent ev;
  ev.channel = std::string(rest.substr(0, a));
  std::string_view publisher = rest.substr(a + 1);
  const auto b = publisher.find('/');
  if (b != std::string_view::npos) {
    if (publisher.substr(b + 1) != kStringLevel) return;  // not a message of the tree
    ev.type = MessageType::string;
    publisher = publisher.substr(0, b);
  }
  if (publisher.empty() || publisher == config_.uid) return;  // its own messages come back
  ev.publisher = std::string(publisher);
  ev.payload = msg->get_payload_str();
  ev.qos = msg->get_qos();
  {
    Lock lock(mutex_);
    if (message_channels_.count(ev.channel) == 0) return;
  }
  emit(handler_of<ChannelMessageEvent>(), std::move(ev), true);
}

void ClientImpl::on_message_channel_event(const std::string& payload) {
  rapidjson::Document doc;
  doc.Parse(payload.data(), payload.size());
  if (doc.HasParseError() || !doc.IsObject()) return;
  const std::string name = json::str(doc, "event");
  // A message channel has members, not publishers.
  const auto type = channel_event_type(name);
  if (!type || *type == ChannelEventType::publisher_joined ||
      *type == ChannelEventType::publisher_left) {
    return;
  }
  ChannelEvent ev;
  ev.type = *type;
  ev.message_channel = true;
  ev.channel = json::str(doc, "channel");
  ev.uid = json::str(doc, "uid");
  ev.reason = json::str(doc, "reason");
  ev.ts = json::int64(doc, "ts");
  {
    Lock lock(mutex_);
    auto mc = message_channels_.find(ev.channel);
    if (mc == message_channels_.end() || !mc->second.presence) return;
  }
  emit(handler_of<ChannelEvent>(), std::move(ev));
}

void ClientImpl::on_channel_token_event(const rapidjson::Document& doc) {
  TokenEvent ev;
  ev.state = json::str(doc, "state") == "expired" ? TokenEvent::State::expired
                                                  : TokenEvent::State::will_expire;
  ev.expires_at = json::int64(doc, "expires_at");
  ev.channel = json::str(doc, "channel");
  ev.channel_type = json::str(doc, "channel_type");
  if (ev.state == TokenEvent::State::expired) {
    // The gateway has left the channel (or ended the subscription): forget it here too.
    std::vector<std::string> drop;
    {
      Lock lock(mutex_);
      if (ev.channel_type == "message") {
        if (message_channels_.erase(ev.channel)) {
          drop = message_channel_filters(ev.channel, true);
        }
      } else if (auto ch = channels_.find(ev.channel); ch != channels_.end()) {
        drop = channel_filters_locked(ev.channel, ch->second);
        drop.push_back(events_topic(ev.channel));
        channels_.erase(ch);
      }
    }
    mqtt_unsubscribe(drop);
  }
  emit(handler_of<TokenEvent>(), std::move(ev));
}

bool ClientImpl::restore_message_channels(std::vector<std::string>& problems) {
  std::map<std::string, MessageChannelState> subscriptions;
  {
    Lock lock(mutex_);
    subscriptions = message_channels_;
  }
  for (const auto& [name, mc] : subscriptions) {
    json::Object body;
    body.str("channel", name).boolean("with_presence", mc.presence);
    if (!mc.token.empty()) body.str("token", mc.token);
    auto r = call_sync("subscribe_channel", body.text(), "subscribe_channel " + name + " (restore)",
                       config_.request_timeout);
    if (transport_failure(r.status)) return false;
    if (r.status.ok()) continue;
    problems.push_back("subscribe_channel " + name + ": " + r.status.to_string());
    {
      Lock lock(mutex_);
      message_channels_.erase(name);
    }
    mqtt_unsubscribe(message_channel_filters(name, true));
  }
  return true;
}

}  // namespace detail

// ====================================================================== public layer

using detail::ClientImpl;

void Client::on_channel_message(std::function<void(const ChannelMessageEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}

Result<void> Client::publish(const std::string& channel, std::string_view payload, MessageType type,
                             PublishOptions options) {
  return impl_->publish_channel(channel, payload, type, options.qos);
}

Result<MessageChannelInfo> Client::subscribe_channel(const std::string& channel,
                                                     const SubscribeChannelOptions& options) {
  auto impl = impl_;
  return ClientImpl::wait<MessageChannelInfo>(
      [&](Callback<MessageChannelInfo> done) { impl->subscribe_channel(channel, options, done); });
}

void Client::subscribe_channel_async(const std::string& channel,
                                     const SubscribeChannelOptions& options,
                                     Callback<MessageChannelInfo> done) {
  impl_->subscribe_channel(channel, options, impl_->on_dispatcher(std::move(done)));
}

Result<void> Client::unsubscribe_channel(const std::string& channel) {
  auto impl = impl_;
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl->unsubscribe_channel(channel, done); });
}

void Client::unsubscribe_channel_async(const std::string& channel, Callback<void> done) {
  impl_->unsubscribe_channel(channel, impl_->on_dispatcher(std::move(done)));
}

Result<std::int64_t> Client::renew_channel_token(const std::string& channel,
                                                 const std::string& token) {
  auto impl = impl_;
  return ClientImpl::wait<std::int64_t>(
      [&](Callback<std::int64_t> done) { impl->renew_channel_token(channel, token, done); });
}

void Client::renew_channel_token_async(const std::string& channel, const std::string& token,
                                       Callback<std::int64_t> done) {
  impl_->renew_channel_token(channel, token, impl_->on_dispatcher(std::move(done)));
}

Result<ChannelSnapshot> StreamChannel::join(const std::string& token) {
  return ClientImpl::wait<ChannelSnapshot>(
      [&](Callback<ChannelSnapshot> done) { impl_->join(name_, done, token); });
}

void StreamChannel::join_async(const std::string& token, Callback<ChannelSnapshot> done) {
  impl_->join(name_, impl_->on_dispatcher(std::move(done)), token);
}

}  // namespace rtm::sdk
