// The public API: thin wrappers over ClientImpl. Blocking calls wait for the internal
// completion; `_async` calls hand the result to the dispatcher thread.
#include "rtm/sdk/client.hpp"

#include "client_impl.hpp"

namespace rtm::sdk {

using detail::ClientImpl;

Client::Client(ClientConfig config) : impl_(std::make_shared<ClientImpl>(std::move(config))) {}

Client::~Client() {
  if (impl_) impl_->shutdown();
}

const std::string& Client::uid() const { return impl_->config().uid; }
const std::string& Client::prefix() const { return impl_->config().prefix; }
ConnectionState Client::state() const { return impl_->state(); }
std::string Client::session_id() const { return impl_->session_id(); }
SendQueueStats Client::send_queue_stats() const {
  return impl_->send_queue_stats();
}

void Client::on_connection_state(std::function<void(const ConnectionStateEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_message(std::function<void(const MessageEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_inbox(std::function<void(const InboxMessage&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_receipt(std::function<void(const ReceiptEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_channel_event(std::function<void(const ChannelEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_presence(std::function<void(const PresenceEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_token(std::function<void(const TokenEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_session(std::function<void(const SessionEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_storage_event(std::function<void(const StorageEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_presence_state(std::function<void(const PresenceStateEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_lock_event(std::function<void(const LockEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_invitation(std::function<void(const InvitationEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}
void Client::on_recovery(std::function<void(const RecoveryEvent&)> handler) {
  impl_->set_handler(std::move(handler));
}

// ---- session

Result<LoginInfo> Client::login() { return login(std::string()); }

Result<LoginInfo> Client::login(const std::string& token) {
  auto impl = impl_;
  return ClientImpl::wait<LoginInfo>([&](Callback<LoginInfo> done) { impl->login(token, done); });
}

void Client::login_async(Callback<LoginInfo> done) { login_async(std::string(), std::move(done)); }

void Client::login_async(const std::string& token, Callback<LoginInfo> done) {
  impl_->login(token, impl_->on_dispatcher(std::move(done)));
}

Result<void> Client::logout() {
  auto impl = impl_;
  return ClientImpl::wait<void>([&](Callback<void> done) { impl->logout(done); });
}

void Client::logout_async(Callback<void> done) { impl_->logout(impl_->on_dispatcher(std::move(done))); }

Result<std::int64_t> Client::renew_token(const std::string& token) {
  auto impl = impl_;
  return ClientImpl::wait<std::int64_t>(
      [&](Callback<std::int64_t> done) { impl->renew_token(token, done); });
}

void Client::renew_token_async(const std::string& token, Callback<std::int64_t> done) {
  impl_->renew_token(token, impl_->on_dispatcher(std::move(done)));
}

Result<void> Client::publish(const std::string& user, std::string_view payload,
                             PublishOptions options) {
  return impl_->publish_inbox(user, payload, options.qos);
}

Result<SendResult> Client::send_message(const std::string& user, std::string_view payload,
                                        const SendOptions& options) {
  auto impl = impl_;
  return ClientImpl::wait<SendResult>(
      [&](Callback<SendResult> done) { impl->send_message(user, payload, options, done); });
}

void Client::send_message_async(const std::string& user, std::string_view payload,
                                const SendOptions& options, Callback<SendResult> done) {
  impl_->send_message(user, payload, options, impl_->on_dispatcher(std::move(done)));
}

Result<InboxHistory> Client::inbox_history(const InboxHistoryOptions& options) {
  auto impl = impl_;
  return ClientImpl::wait<InboxHistory>(
      [&](Callback<InboxHistory> done) { impl->inbox_history(options, done); });
}

void Client::inbox_history_async(const InboxHistoryOptions& options, Callback<InboxHistory> done) {
  impl_->inbox_history(options, impl_->on_dispatcher(std::move(done)));
}

// ---- presence

Result<std::vector<UserPresence>> Client::watch(const std::vector<std::string>& users) {
  auto impl = impl_;
  return ClientImpl::wait<std::vector<UserPresence>>(
      [&](Callback<std::vector<UserPresence>> done) { impl->watch(users, false, done); });
}

void Client::watch_async(const std::vector<std::string>& users,
                         Callback<std::vector<UserPresence>> done) {
  impl_->watch(users, false, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<UserPresence>> Client::unwatch(const std::vector<std::string>& users) {
  auto impl = impl_;
  return ClientImpl::wait<std::vector<UserPresence>>(
      [&](Callback<std::vector<UserPresence>> done) { impl->watch(users, true, done); });
}

void Client::unwatch_async(const std::vector<std::string>& users,
                           Callback<std::vector<UserPresence>> done) {
  impl_->watch(users, true, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<std::string>> Client::who_now(const std::string& channel) {
  auto impl = impl_;
  return ClientImpl::wait<std::vector<std::string>>(
      [&](Callback<std::vector<std::string>> done) { impl->who_now(channel, done); });
}

void Client::who_now_async(const std::string& channel, Callback<std::vector<std::string>> done) {
  impl_->who_now(channel, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<std::string>> Client::where_now(const std::string& uid) {
  auto impl = impl_;
  return ClientImpl::wait<std::vector<std::string>>(
      [&](Callback<std::vector<std::string>> done) { impl->where_now(uid, done); });
}

void Client::where_now_async(const std::string& uid, Callback<std::vector<std::string>> done) {
  impl_->where_now(uid, impl_->on_dispatcher(std::move(done)));
}

Result<std::string> Client::request(const std::string& uri, const std::string& body) {
  auto impl = impl_;
  return ClientImpl::wait<std::string>(
      [&](Callback<std::string> done) { impl->raw_request(uri, body, done); });
}

void Client::request_async(const std::string& uri, const std::string& body,
                           Callback<std::string> done) {
  impl_->raw_request(uri, body, impl_->on_dispatcher(std::move(done)));
}

StreamChannel Client::stream_channel(const std::string& name) { return StreamChannel(impl_, name); }

// ====================================================================== StreamChannel

bool StreamChannel::joined() const { return impl_->joined(name_); }

Result<ChannelSnapshot> StreamChannel::join() {
  return ClientImpl::wait<ChannelSnapshot>(
      [&](Callback<ChannelSnapshot> done) { impl_->join(name_, done); });
}

void StreamChannel::join_async(Callback<ChannelSnapshot> done) {
  impl_->join(name_, impl_->on_dispatcher(std::move(done)));
}

Result<void> StreamChannel::leave() {
  return ClientImpl::wait<void>([&](Callback<void> done) { impl_->leave(name_, done); });
}

void StreamChannel::leave_async(Callback<void> done) {
  impl_->leave(name_, impl_->on_dispatcher(std::move(done)));
}

Result<void> StreamChannel::join_topic(const std::string& topic) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->join_topic(name_, topic, done); });
}

void StreamChannel::join_topic_async(const std::string& topic, Callback<void> done) {
  impl_->join_topic(name_, topic, impl_->on_dispatcher(std::move(done)));
}

Result<void> StreamChannel::leave_topic(const std::string& topic) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->leave_topic(name_, topic, done); });
}

void StreamChannel::leave_topic_async(const std::string& topic, Callback<void> done) {
  impl_->leave_topic(name_, topic, impl_->on_dispatcher(std::move(done)));
}

Result<void> StreamChannel::publish_topic(const std::string& topic, std::string_view payload,
                                          PublishOptions options) {
  return impl_->publish_topic(name_, topic, payload, options.qos);
}

Result<SubscribeResult> StreamChannel::subscribe_topic(const std::string& topic,
                                                       const std::vector<std::string>& users) {
  return ClientImpl::wait<SubscribeResult>(
      [&](Callback<SubscribeResult> done) { impl_->subscribe(name_, topic, users, false, done); });
}

void StreamChannel::subscribe_topic_async(const std::string& topic,
                                          const std::vector<std::string>& users,
                                          Callback<SubscribeResult> done) {
  impl_->subscribe(name_, topic, users, false, impl_->on_dispatcher(std::move(done)));
}

Result<SubscribeResult> StreamChannel::unsubscribe_topic(const std::string& topic,
                                                         const std::vector<std::string>& users) {
  return ClientImpl::wait<SubscribeResult>(
      [&](Callback<SubscribeResult> done) { impl_->subscribe(name_, topic, users, true, done); });
}

void StreamChannel::unsubscribe_topic_async(const std::string& topic,
                                            const std::vector<std::string>& users,
                                            Callback<SubscribeResult> done) {
  impl_->subscribe(name_, topic, users, true, impl_->on_dispatcher(std::move(done)));
}

Result<SubscribeResult> StreamChannel::subscribe_topic(const std::string& topic) {
  return ClientImpl::wait<SubscribeResult>(
      [&](Callback<SubscribeResult> done) { impl_->subscribe_all(name_, topic, false, done); });
}

void StreamChannel::subscribe_topic_async(const std::string& topic,
                                          Callback<SubscribeResult> done) {
  impl_->subscribe_all(name_, topic, false, impl_->on_dispatcher(std::move(done)));
}

Result<SubscribeResult> StreamChannel::unsubscribe_topic(const std::string& topic) {
  return ClientImpl::wait<SubscribeResult>(
      [&](Callback<SubscribeResult> done) { impl_->subscribe_all(name_, topic, true, done); });
}

void StreamChannel::unsubscribe_topic_async(const std::string& topic,
                                            Callback<SubscribeResult> done) {
  impl_->subscribe_all(name_, topic, true, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<std::string>> StreamChannel::subscribed_users(const std::string& topic) {
  return ClientImpl::wait<std::vector<std::string>>(
      [&](Callback<std::vector<std::string>> done) { impl_->subscribed(name_, topic, done); });
}

void StreamChannel::subscribed_users_async(const std::string& topic,
                                           Callback<std::vector<std::string>> done) {
  impl_->subscribed(name_, topic, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<std::string>> StreamChannel::who_now() {
  return ClientImpl::wait<std::vector<std::string>>(
      [&](Callback<std::vector<std::string>> done) { impl_->who_now(name_, done); });
}

void StreamChannel::who_now_async(Callback<std::vector<std::string>> done) {
  impl_->who_now(name_, impl_->on_dispatcher(std::move(done)));
}

Result<HistoryPage> StreamChannel::history(const std::string& topic, const HistoryQuery& query) {
  return ClientImpl::wait<HistoryPage>(
      [&](Callback<HistoryPage> done) { impl_->history(name_, topic, query, done); });
}

void StreamChannel::history_async(const std::string& topic, const HistoryQuery& query,
                                  Callback<HistoryPage> done) {
  impl_->history(name_, topic, query, impl_->on_dispatcher(std::move(done)));
}

// ---- storage

Storage Client::storage() {
  return Storage(impl_);
}
Presence Client::presence() {
  return Presence(impl_);
}
Locks Client::lock() {
  return Locks(impl_);
}
Invitations Client::invitations() {
  return Invitations(impl_);
}

namespace {
using Write = ClientImpl::MetadataWrite;
constexpr auto kUser = StorageScope::user;
constexpr auto kChannel = StorageScope::channel;
}  // namespace

// One blocking and one async call per metadata operation: (name, scope, write kind).
#define RTM_SDK_METADATA_WRITE(fn, scope, kind, target)                                           \
  Result<Metadata> Storage::fn(const std::string& target, const std::vector<MetadataItem>& items, \
                               const MetadataOptions& options) {                                  \
    return ClientImpl::wait<Metadata>([&](Callback<Metadata> done) {                              \
      impl_->write_metadata(scope, target, kind, items, options, done);                           \
    });                                                                                           \
  }                                                                                               \
  void Storage::fn##_async(const std::string& target, const std::vector<MetadataItem>& items,     \
                           const MetadataOptions& options, Callback<Metadata> done) {             \
    impl_->write_metadata(scope, target, kind, items, options,                                    \
                          impl_->on_dispatcher(std::move(done)));                                 \
  }
RTM_SDK_METADATA_WRITE(set_user_metadata, kUser, Write::set, uid)
RTM_SDK_METADATA_WRITE(update_user_metadata, kUser, Write::update, uid)
RTM_SDK_METADATA_WRITE(remove_user_metadata, kUser, Write::remove, uid)
RTM_SDK_METADATA_WRITE(set_channel_metadata, kChannel, Write::set, channel)
RTM_SDK_METADATA_WRITE(update_channel_metadata, kChannel, Write::update, channel)
RTM_SDK_METADATA_WRITE(remove_channel_metadata, kChannel, Write::remove, channel)
#undef RTM_SDK_METADATA_WRITE

Result<Metadata> Storage::get_user_metadata(const std::string& uid,
                                            const std::vector<std::string>& keys) {
  return ClientImpl::wait<Metadata>(
      [&](Callback<Metadata> done) { impl_->get_metadata(kUser, uid, keys, done); });
}

void Storage::get_user_metadata_async(const std::string& uid, const std::vector<std::string>& keys,
                                      Callback<Metadata> done) {
  impl_->get_metadata(kUser, uid, keys, impl_->on_dispatcher(std::move(done)));
}

Result<Metadata> Storage::get_channel_metadata(const std::string& channel,
                                               const std::vector<std::string>& keys) {
  return ClientImpl::wait<Metadata>(
      [&](Callback<Metadata> done) { impl_->get_metadata(kChannel, channel, keys, done); });
}

void Storage::get_channel_metadata_async(const std::string& channel,
                                         const std::vector<std::string>& keys,
                                         Callback<Metadata> done) {
  impl_->get_metadata(kChannel, channel, keys, impl_->on_dispatcher(std::move(done)));
}

Result<void> Storage::subscribe_user_metadata(const std::string& uid) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->subscribe_metadata(uid, false, done); });
}

void Storage::subscribe_user_metadata_async(const std::string& uid, Callback<void> done) {
  impl_->subscribe_metadata(uid, false, impl_->on_dispatcher(std::move(done)));
}

Result<void> Storage::unsubscribe_user_metadata(const std::string& uid) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->subscribe_metadata(uid, true, done); });
}

void Storage::unsubscribe_user_metadata_async(const std::string& uid, Callback<void> done) {
  impl_->subscribe_metadata(uid, true, impl_->on_dispatcher(std::move(done)));
}

// ---- presence states

Result<StateMap> Presence::set_state(const std::string& channel, const StateMap& states) {
  return ClientImpl::wait<StateMap>(
      [&](Callback<StateMap> done) { impl_->set_state(channel, states, done); });
}

void Presence::set_state_async(const std::string& channel, const StateMap& states,
                               Callback<StateMap> done) {
  impl_->set_state(channel, states, impl_->on_dispatcher(std::move(done)));
}

Result<StateMap> Presence::remove_state(const std::string& channel,
                                        const std::vector<std::string>& keys) {
  return ClientImpl::wait<StateMap>(
      [&](Callback<StateMap> done) { impl_->remove_state(channel, keys, done); });
}

void Presence::remove_state_async(const std::string& channel, const std::vector<std::string>& keys,
                                  Callback<StateMap> done) {
  impl_->remove_state(channel, keys, impl_->on_dispatcher(std::move(done)));
}

Result<UserState> Presence::get_state(const std::string& channel, const std::string& uid) {
  return ClientImpl::wait<UserState>(
      [&](Callback<UserState> done) { impl_->get_state(channel, uid, done); });
}

void Presence::get_state_async(const std::string& channel, const std::string& uid,
                               Callback<UserState> done) {
  impl_->get_state(channel, uid, impl_->on_dispatcher(std::move(done)));
}

Result<WhoNowResult> Presence::who_now(const std::string& channel, bool include_state) {
  return ClientImpl::wait<WhoNowResult>(
      [&](Callback<WhoNowResult> done) { impl_->who_now_states(channel, include_state, done); });
}

void Presence::who_now_async(const std::string& channel, bool include_state,
                             Callback<WhoNowResult> done) {
  impl_->who_now_states(channel, include_state, impl_->on_dispatcher(std::move(done)));
}

// ---- locks

Result<void> Locks::set_lock(const std::string& channel, const std::string& name,
                             std::chrono::seconds ttl) {
  return ClientImpl::wait<void>([&](Callback<void> done) {
    impl_->lock_op("set_lock", channel, name, "", ttl.count(), done);
  });
}

void Locks::set_lock_async(const std::string& channel, const std::string& name,
                           std::chrono::seconds ttl, Callback<void> done) {
  impl_->lock_op("set_lock", channel, name, "", ttl.count(), impl_->on_dispatcher(std::move(done)));
}

Result<AcquireStatus> Locks::acquire_lock(const std::string& channel, const std::string& name,
                                          const AcquireLockOptions& options) {
  return ClientImpl::wait<AcquireStatus>(
      [&](Callback<AcquireStatus> done) { impl_->acquire_lock(channel, name, options, done); });
}

void Locks::acquire_lock_async(const std::string& channel, const std::string& name,
                               const AcquireLockOptions& options, Callback<AcquireStatus> done) {
  impl_->acquire_lock(channel, name, options, impl_->on_dispatcher(std::move(done)));
}

Result<void> Locks::release_lock(const std::string& channel, const std::string& name) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->lock_op("release_lock", channel, name, "", 0, done); });
}

void Locks::release_lock_async(const std::string& channel, const std::string& name,
                               Callback<void> done) {
  impl_->lock_op("release_lock", channel, name, "", 0, impl_->on_dispatcher(std::move(done)));
}

Result<void> Locks::revoke_lock(const std::string& channel, const std::string& name,
                                const std::string& uid) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->lock_op("revoke_lock", channel, name, uid, 0, done); });
}

void Locks::revoke_lock_async(const std::string& channel, const std::string& name,
                              const std::string& uid, Callback<void> done) {
  impl_->lock_op("revoke_lock", channel, name, uid, 0, impl_->on_dispatcher(std::move(done)));
}

Result<std::vector<LockInfo>> Locks::get_locks(const std::string& channel) {
  return ClientImpl::wait<std::vector<LockInfo>>(
      [&](Callback<std::vector<LockInfo>> done) { impl_->get_locks(channel, done); });
}

void Locks::get_locks_async(const std::string& channel, Callback<std::vector<LockInfo>> done) {
  impl_->get_locks(channel, impl_->on_dispatcher(std::move(done)));
}

Result<void> Locks::remove_lock(const std::string& channel, const std::string& name) {
  return ClientImpl::wait<void>(
      [&](Callback<void> done) { impl_->lock_op("remove_lock", channel, name, "", 0, done); });
}

void Locks::remove_lock_async(const std::string& channel, const std::string& name,
                              Callback<void> done) {
  impl_->lock_op("remove_lock", channel, name, "", 0, impl_->on_dispatcher(std::move(done)));
}

}  // namespace rtm::sdk
