#include "client_impl.hpp"
#include "rtm/sdk/net.hpp"
#include "rtm/util/base64.hpp"
#include "rtm/util/random.hpp"

#include <algorithm>
#include <cstring>
#include <random>

#include "json.hpp"

namespace rtm::sdk::detail {

using namespace std::chrono_literals;
using Lock = std::unique_lock<std::mutex>;

namespace {

// Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// A `message` event (and an inbox_history entry): nullopt when it is not one (a binary
// message whose base64 does not decode).
std::optional<InboxMessage> parse_peer_message(const rapidjson::Value& v) {
  InboxMessage m;
  m.from = json::str(v, "from");
  m.id = json::str(v, "id");
  m.server_ts = json::int64(v, "ts");
  m.offline = json::boolean(v, "offline");
  m.qos = 1;
  if (json::str(v, "type") == "binary") {
    auto bytes = util::base64_decode(json::str(v, "message"));
    if (!bytes) return std::nullopt;
    m.type = PeerMessageType::binary;
    m.payload = std::move(*bytes);
  } else {
    m.type = PeerMessageType::text;
    m.payload = json::str(v, "message");
  }
  return m;
}

std::string normalise_uri(std::string uri) {
  if (uri.rfind("mqtt://", 0) == 0) return "tcp://" + uri.substr(7);
  if (uri.rfind("mqtts://", 0) == 0) return "ssl://" + uri.substr(8);
  if (uri.find("://") == std::string::npos) return "tcp://" + uri;
  return uri;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

ChannelSnapshot parse_snapshot(const rapidjson::Value& result, const std::string& channel) {
  ChannelSnapshot snap;
  snap.channel = json::str(result, "channel", channel);
  auto it = result.FindMember("snapshot");
  if (it == result.MemberEnd() || !it->value.IsObject()) return snap;
  const auto& s = it->value;
  snap.members = json::strings(s, "members");
  auto topics = s.FindMember("topics");
  if (topics != s.MemberEnd() && topics->value.IsArray()) {
    for (const auto& t : topics->value.GetArray()) {
      snap.topics.push_back({json::str(t, "topic"), json::strings(t, "publishers")});
    }
  }
  return snap;
}

// {"users":[{"uid":"bob","ok":true,...},{"uid":"x","ok":false,"code":..,"error":..,"message":..}]}
struct ParsedUser {
  UserResult result;
  std::string state;  // watch
};
std::vector<ParsedUser> parse_users(const rapidjson::Value& result) {
  std::vector<ParsedUser> out;
  auto it = result.FindMember("users");
  if (it == result.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& u : it->value.GetArray()) {
    ParsedUser p;
    p.result.uid = json::str(u, "uid");
    if (!json::boolean(u, "ok")) {
      const int code = static_cast<int>(json::int64(u, "code", static_cast<int>(ErrorCode::internal)));
      p.result.status = Status(code, json::str(u, "error", std::string(error_name(code))),
                               json::str(u, "message"));
    }
    p.state = json::str(u, "state");
    out.push_back(std::move(p));
  }
  return out;
}

// Every live client of this process, for the Paho connect work-around (wait_connected).
std::mutex g_clients_mutex;
std::set<ClientImpl*>& live_clients() {
  static std::set<ClientImpl*> clients;
  return clients;
}

}  // namespace

std::optional<std::string> name_error(std::string_view what, std::string_view name) {
  const std::string quoted = std::string(what) + " \"" + std::string(name) + "\"";
  if (name.empty() || name.size() > 64) {
    return std::string(what) + " must be 1-64 bytes, got " + std::to_string(name.size());
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x21 || c > 0x7e) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return std::string(what) + " contains byte " + hex + " (not printable ASCII) at byte " +
             std::to_string(i);
    }
    if (std::strchr("/+#$\"\\*", c)) {
      return quoted + " contains '" + std::string(1, static_cast<char>(c)) + "' at byte " +
             std::to_string(i);
    }
  }
  return std::nullopt;
}

// The name rules, and the broker's: RabbitMQ makes a '.' in a topic a level separator
// (docs/protocol.md#names-per-broker), so a dotted name never leaves the client there.
std::optional<std::string> ClientImpl::name_problem(std::string_view what,
                                                    std::string_view name) const {
  if (auto e = name_error(what, name)) return e;
  const auto& profile = config_.broker_profile;
  const auto dot = name.find('.');
  if ((profile == "rabbitmq" || profile == "generic") && dot != std::string_view::npos) {
    return std::string(what) + " \"" + std::string(name) + "\" contains '.' at byte " +
           std::to_string(dot) + " (broker_profile is " + profile +
           ": RabbitMQ turns '.' in a topic into a level separator)";
  }
  return std::nullopt;
}

const rapidjson::Value& Reply::result() const {
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  if (!doc || !doc->IsObject()) return kEmpty;
  auto it = doc->FindMember("result");
  if (it == doc->MemberEnd() || !it->value.IsObject()) return kEmpty;
  return it->value;
}

// Logs subscriptions the broker refused (they are made without waiting).
class ClientImpl::SubscribeLogger final : public mqtt::iaction_listener {
 public:
  explicit SubscribeLogger(ClientImpl& c) : c_(c) {}
  void on_success(const mqtt::token&) override {}
  void on_failure(const mqtt::token& tok) override {
    c_.log(LogLevel::warn, "rtm sdk: an MQTT subscription failed (code " +
                               std::to_string(tok.get_return_code()) + ")");
  }

 private:
  ClientImpl& c_;
};

// ====================================================================== life

ClientImpl::ClientImpl(ClientConfig config)
    : config_(std::move(config)),
      base_(config_.prefix + "/"),
      user_base_("u/" + config_.uid + "/"),
      req_base_(config_.prefix + "/req/" + config_.uid + "/") {
  if (!config_.broker_profile.empty() && config_.broker_profile != "mosquitto" &&
      config_.broker_profile != "emqx" && config_.broker_profile != "rabbitmq" &&
      config_.broker_profile != "generic") {
    throw Error(Status(ErrorCode::invalid_parameter,
                       "broker_profile must be mosquitto, emqx, rabbitmq or generic, got \"" +
                           config_.broker_profile + "\""));
  }
  if (auto e = name_problem("uid", config_.uid)) throw Error(Status(ErrorCode::invalid_name, *e));
  if (config_.prefix.empty() || config_.prefix.find_first_of("+#") != std::string::npos) {
    throw Error(Status(ErrorCode::invalid_parameter,
                       "prefix must be a non-empty MQTT topic without wildcards, got \"" +
                           config_.prefix + "\""));
  }
  if (config_.request_timeout <= 0ms || config_.connect_timeout <= 0ms) {
    throw Error(Status(ErrorCode::invalid_parameter, "timeouts must be positive"));
  }
  token_ = config_.token;
  msg_id_prefix_ = util::random_hex(8) + "-";
  // "{uid}/{random}": brokers with the rtm auth plugin accept a token user's client id only
  // as its uid or "{uid}/..." (docs/security.md), and a random part keeps two clients of one
  // uid from taking over each other's connection.
  const std::string client_id =
      config_.client_id.empty() ? config_.uid + "/" + util::random_hex(12) : config_.client_id;
  mqtt::create_options create(MQTTVERSION_3_1_1);
  create.set_send_while_disconnected(false);
  // Applies while connected too: the default (100) makes publish() throw under load.
  create.set_max_buffered_messages(100000);
  try {
    client_ = std::make_unique<mqtt::async_client>(normalise_uri(config_.broker_uri), client_id,
                                                   create, nullptr);
  } catch (const std::exception& e) {
    throw Error(Status(ErrorCode::invalid_parameter,
                       "broker_uri \"" + config_.broker_uri + "\": " + e.what()));
  }
  subscribe_logger_ = std::make_unique<SubscribeLogger>(*this);
  dispatcher_ = Dispatcher::create(config_.max_queued_events, config_.logger);
  client_->set_message_callback([this](mqtt::const_message_ptr msg) {
    active_callbacks_.fetch_add(1);
    if (!paho_closed_.load()) on_mqtt_message(msg);
    active_callbacks_.fetch_sub(1);
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    active_callbacks_.fetch_add(1);
    if (!paho_closed_.load()) on_connection_lost(cause);
    active_callbacks_.fetch_sub(1);
  });
  {
    std::lock_guard<std::mutex> lock(g_clients_mutex);
    live_clients().insert(this);
  }
  timer_ = std::thread([this] { timer_loop(); });
  connector_ = std::thread([this] { connector_loop(); });
}

ClientImpl::~ClientImpl() { shutdown(); }

void ClientImpl::shutdown() {
  {
    Lock lock(mutex_);
    if (closing_) return;
    closing_ = true;
    want_online_ = false;
    if (logged_in_) publish_offline_ = true;  // the gateway ends the session, tells the channels
  }
  {
    std::lock_guard<std::mutex> lock(g_clients_mutex);
    live_clients().erase(this);
  }
  connector_cv_.notify_all();
  // A restore in progress waits on requests: end them now.
  fail_all_pending(Status(ErrorCode::unavailable, "the client is closed"));
  if (connector_.joinable()) connector_.join();
  {
    Lock lock(mutex_);
    closed_ = true;
  }
  fail_all_pending(Status(ErrorCode::unavailable, "the client is closed"));
  {
    Lock lock(mutex_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  paho_closed_.store(true);
  while (active_callbacks_.load() > 0) std::this_thread::sleep_for(1ms);
  dispatcher_->stop();
}

ConnectionState ClientImpl::state() const {
  Lock lock(mutex_);
  return state_;
}

std::string ClientImpl::session_id() const {
  Lock lock(mutex_);
  return session_id_;
}

void ClientImpl::log(LogLevel level, const std::string& text) const {
  if (config_.logger) config_.logger(level, text);
}

// ====================================================================== handlers

#define RTM_SDK_HANDLER(Event, member)                                       \
  void ClientImpl::set_handler(std::function<void(const Event&)> h) {        \
    auto p = h ? std::make_shared<const std::function<void(const Event&)>>(  \
                     std::move(h))                                           \
               : nullptr;                                                    \
    std::lock_guard<std::mutex> lock(handlers_mutex_);                       \
    member = std::move(p);                                                   \
  }                                                                          \
  template <>                                                                \
  ClientImpl::HandlerPtr<Event> ClientImpl::handler_of<Event>() const {      \
    std::lock_guard<std::mutex> lock(handlers_mutex_);                       \
    return member;                                                           \
  }
RTM_SDK_HANDLER(ConnectionStateEvent, on_state_)
RTM_SDK_HANDLER(MessageEvent, on_message_)
RTM_SDK_HANDLER(InboxMessage, on_inbox_)
RTM_SDK_HANDLER(ReceiptEvent, on_receipt_)
RTM_SDK_HANDLER(ChannelEvent, on_channel_)
RTM_SDK_HANDLER(PresenceEvent, on_presence_)
RTM_SDK_HANDLER(TokenEvent, on_token_)
RTM_SDK_HANDLER(SessionEvent, on_session_)
RTM_SDK_HANDLER(StorageEvent, on_storage_)
RTM_SDK_HANDLER(PresenceStateEvent, on_state_changed_)
RTM_SDK_HANDLER(LockEvent, on_lock_)
RTM_SDK_HANDLER(RecoveryEvent, on_recovery_)
RTM_SDK_HANDLER(InvitationEvent, on_invitation_)
RTM_SDK_HANDLER(ChannelMessageEvent, on_channel_message_)
#undef RTM_SDK_HANDLER

// ====================================================================== names

std::string ClientImpl::events_topic(const std::string& channel) const {
  return base_ + "events/" + channel;
}
std::string ClientImpl::data_topic(const std::string& channel, const std::string& topic,
                                   const std::string& user) const {
  return base_ + "ch/" + channel + "/" + topic + "/" + user;
}
std::string ClientImpl::presence_topic() const { return base_ + "presence/" + config_.uid; }
std::string ClientImpl::presence_payload(bool online, const std::string& connection_id) const {
  return json::Object().str("state", online ? "online" : "offline").str("session", connection_id).text();
}

// ====================================================================== requests

std::string ClientImpl::next_msg_id() {
  return msg_id_prefix_ + std::to_string(msg_counter_.fetch_add(1) + 1);
}

void ClientImpl::send_request(const std::string& op, std::string body, std::string what,
                              ReplyFn done, bool internal, std::chrono::milliseconds timeout) {
  if (timeout <= 0ms) timeout = config_.request_timeout;
  const std::string id = next_msg_id();
  const std::string uri = op + (op.find('?') == std::string::npos ? "?" : "&") + "msg_id=" + id;
  Status refused;
  bool parked = false;
  {
    Lock lock(mutex_);
    if (closing_ || closed_) {
      refused = Status(ErrorCode::unavailable, "the client is closed");
    } else if (!internal && want_online_ && logged_in_ &&
               (!connected_ || !ready_ || !parked_.empty()) &&
               parked_.size() >= config_.max_send_queue) {
      refused = Status(ErrorCode::unavailable, "reconnecting, and max_send_queue (" +
                                                   std::to_string(config_.max_send_queue) +
                                                   ") calls wait for the restore already");
    } else if (!internal && want_online_ && logged_in_ &&
               (!connected_ || !ready_ || !parked_.empty())) {
      // Reconnecting or restoring: sent after the restore, within its own deadline.
      park_locked(id, Pending{what, done, Clock::now() + timeout, timeout, true, req_base_ + uri,
                              std::move(body)});
      parked = true;
    } else if (!connected_) {
      if (!want_online_) {
        refused = Status(ErrorCode::not_logged_in, "not logged in: call login() first");
      } else {
        refused = Status(ErrorCode::unavailable, "not connected to the broker (" +
                                                     std::string(to_string(state_)) + ")");
      }
    } else {
      pending_.emplace(id, Pending{what, done, Clock::now() + timeout, timeout, false, {}, {}});
    }
  }
  if (!refused.ok()) {
    done(Reply{refused, nullptr});
    return;
  }
  timer_cv_.notify_one();
  if (parked) return;
  try {
    client_->publish(req_base_ + uri, body.data(), body.size(), 1, false);
  } catch (const std::exception& e) {
    {
      // The link dropped under it: wait for the restore like a request made now.
      Lock lock(mutex_);
      auto it = pending_.find(id);
      if (it != pending_.end() && !internal && want_online_ && logged_in_ && !closing_) {
        Pending p = std::move(it->second);
        pending_.erase(it);
        p.parked = true;
        p.topic = req_base_ + uri;
        p.body = std::move(body);
        park_locked(id, std::move(p));
        return;
      }
    }
    complete(id, Reply{Status(ErrorCode::unavailable, "cannot send " + what + ": " + e.what()),
                       nullptr});
  }
}

Reply ClientImpl::call_sync(const std::string& op, std::string body, std::string what,
                            std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  send_request(op, std::move(body), std::move(what),
               [promise](Reply r) { promise->set_value(std::move(r)); }, true, timeout);
  return future.get();
}

void ClientImpl::complete(const std::string& id, Reply reply) {
  ReplyFn done;
  {
    Lock lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // late (after a timeout), or someone else's
    done = std::move(it->second.done);
    pending_.erase(it);
  }
  done(std::move(reply));
}

void ClientImpl::fail_all_pending(const Status& status, bool keep_parked) {
  std::vector<ReplyFn> failed;
  {
    Lock lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (keep_parked && it->second.parked) {
        ++it;
        continue;
      }
      failed.push_back(std::move(it->second.done));
      it = pending_.erase(it);
    }
    if (!keep_parked) parked_.clear();
  }
  for (auto& done : failed) done(Reply{status, nullptr});
}

void ClientImpl::timer_loop() {
  Lock lock(mutex_);
  while (!timer_stop_) {
    const auto now = Clock::now();
    auto next = Clock::time_point::max();
    std::vector<std::pair<ReplyFn, Status>> expired;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        const auto& p = it->second;
        Status why(ErrorCode::timeout, "no answer from the gateway within " +
                                           std::to_string(p.timeout.count()) + " ms to " + p.what);
        if (p.parked) {
          why = Status(ErrorCode::timeout, "still reconnecting after " +
                                               std::to_string(p.timeout.count()) +
                                               " ms: " + p.what + " was not sent");
          parked_.erase(std::remove(parked_.begin(), parked_.end(), it->first), parked_.end());
        }
        expired.emplace_back(std::move(it->second.done), std::move(why));
        it = pending_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    if (!expired.empty()) {
      lock.unlock();
      for (auto& [done, status] : expired) done(Reply{status, nullptr});
      lock.lock();
      continue;
    }
    if (next == Clock::time_point::max()) {
      timer_cv_.wait(lock);
    } else {
      timer_cv_.wait_until(lock, next);
    }
  }
}

// ====================================================================== connection

void ClientImpl::set_state_locked(ConnectionState state, ConnectionChangeReason reason,
                                  std::string message) {
  state_ = state;
  ConnectionStateEvent ev{state, reason, std::move(message)};
  log(LogLevel::info, "rtm sdk: " + config_.uid + ": " + to_string(ev));
  emit(handler_of<ConnectionStateEvent>(), std::move(ev));
}

// The session is over for good (replaced, expired, refused at restore): forget it and
// disconnect. No offline presence: the gateway has already dealt with it, and after a
// replacement the newer connection is the one online.
void ClientImpl::end_session_locked(ConnectionState state, ConnectionChangeReason reason,
                                    std::string message) {
  drop_queue_locked(message);
  watched_online_.clear();
  invitations_.clear();
  logged_in_ = false;
  session_id_.clear();
  channels_.clear();
  streams_.clear();
  watched_.clear();
  metadata_subscriptions_.clear();
  message_channels_.clear();
  data_topics_.clear();
  all_filters_.clear();
  want_online_ = false;
  publish_offline_ = false;
  need_restore_ = false;
  ready_ = false;
  set_state_locked(state, reason, std::move(message));
  connector_cv_.notify_all();
  timer_cv_.notify_all();  // parked requests fail now
}

std::vector<std::string> ClientImpl::mqtt_filters_locked() const {
  std::vector<std::string> filters;
  for (const auto& [name, ch] : channels_) filters.push_back(events_topic(name));
  filters.insert(filters.end(), data_topics_.begin(), data_topics_.end());
  filters.insert(filters.end(), all_filters_.begin(), all_filters_.end());
  for (const auto& [name, mc] : message_channels_) {
    for (auto& f : message_channel_filters(name, mc.presence)) filters.push_back(std::move(f));
  }
  return filters;
}

// Forgets the data subscriptions of a channel; answers the MQTT filters to drop.
std::vector<std::string> ClientImpl::channel_filters_locked(const std::string& channel,
                                                            const ChannelState& ch) {
  std::vector<std::string> drop;
  for (const auto& [t, users] : ch.subscribed) {
    for (const auto& u : users) {
      auto topic = data_topic(channel, t, u);
      if (data_topics_.erase(topic)) drop.push_back(std::move(topic));
    }
  }
  for (const auto& [t, excluded] : ch.all) {
    auto filter = data_topic(channel, t, "+");
    if (all_filters_.erase(filter)) drop.push_back(std::move(filter));
  }
  return drop;
}

void ClientImpl::mqtt_subscribe(const std::vector<std::string>& filters) {
  if (filters.empty()) return;
  try {
    client_->subscribe(mqtt::string_collection::create(filters),
                       mqtt::iasync_client::qos_collection(filters.size(), 1), nullptr,
                       *subscribe_logger_);
  } catch (const std::exception& e) {
    log(LogLevel::debug, std::string("rtm sdk: subscribe: ") + e.what());  // reconnect redoes it
  }
}

void ClientImpl::mqtt_unsubscribe(const std::vector<std::string>& filters) {
  if (filters.empty()) return;
  try {
    client_->unsubscribe(mqtt::string_collection::create(filters));
  } catch (const std::exception& e) {
    log(LogLevel::debug, std::string("rtm sdk: unsubscribe: ") + e.what());
  }
}

void ClientImpl::connector_loop() {
  auto backoff = config_.reconnect_min;
  Lock lock(mutex_);
  while (true) {
    const bool want = want_online_ && !closing_;
    if (want && !connected_) {
      const bool first = !had_connection_;
      lock.unlock();
      std::string error;
      bool refused = false;
      const bool ok = try_connect(&error, &refused);
      lock.lock();
      if (ok) {
        connected_ = true;
        had_connection_ = true;
        backoff = config_.reconnect_min;
        if (logged_in_) {
          need_restore_ = true;
          ready_ = false;
        } else {
          ready_ = true;
        }
        auto waiters = std::move(connect_waiters_);
        connect_waiters_.clear();
        lock.unlock();
        for (auto& w : waiters) w(Status{});
        lock.lock();
        continue;
      }
      if (first) {
        want_online_ = false;
        const std::string why = "cannot connect to " + config_.broker_uri + ": " + error;
        set_state_locked(
            ConnectionState::failed,
            refused ? ConnectionChangeReason::login_failure : ConnectionChangeReason::login_timeout,
            why);
        auto waiters = std::move(connect_waiters_);
        connect_waiters_.clear();
        lock.unlock();
        for (auto& w : waiters) w(Status(ErrorCode::unavailable, why));
        lock.lock();
        continue;
      }
      if (refused && want_online_ && logged_in_) {
        // The broker will not take this client back: retrying changes nothing.
        const bool expired = token_expired_locked();
        end_session_locked(ConnectionState::failed,
                           expired ? ConnectionChangeReason::token_expired
                                   : ConnectionChangeReason::banned_by_server,
                           "the broker refused the reconnect: " + error +
                               (expired ? " (the login token expired)" : ""));
        continue;
      }
      log(LogLevel::debug, "rtm sdk: reconnect to " + config_.broker_uri + " failed: " + error);
      connector_cv_.wait_for(lock, backoff, [this] { return closing_ || !want_online_; });
      backoff = std::min(backoff * 2, config_.reconnect_max);
      continue;
    }
    if (!want && connected_) {
      const bool offline = publish_offline_;
      const std::string connection = connection_id_;
      connected_ = false;
      ready_ = false;
      lock.unlock();
      do_disconnect(offline, connection);
      fail_all_pending(Status(ErrorCode::unavailable, "disconnected"));
      lock.lock();
      continue;
    }
    if (!want) {
      had_connection_ = false;
      need_restore_ = false;
      if (!connect_waiters_.empty() || !disconnect_waiters_.empty()) {
        auto connect_waiters = std::move(connect_waiters_);
        auto disconnect_waiters = std::move(disconnect_waiters_);
        connect_waiters_.clear();
        disconnect_waiters_.clear();
        const Status why(ErrorCode::unavailable,
                         closing_ ? "the client is closed" : "login was cancelled");
        lock.unlock();
        for (auto& w : connect_waiters) w(why);
        for (auto& w : disconnect_waiters) w();
        lock.lock();
        continue;
      }
      if (closing_) break;
    }
    if (want && connected_ && need_restore_) {
      need_restore_ = false;
      lock.unlock();
      const auto outcome = restore();
      lock.lock();
      if (outcome == RestoreOutcome::retry && connected_ && want_online_ && !closing_) {
        connector_cv_.wait_for(lock, backoff,
                               [this] { return closing_ || !want_online_ || !connected_; });
        backoff = std::min(backoff * 2, config_.reconnect_max);
        if (connected_ && want_online_ && logged_in_) need_restore_ = true;
      }
      continue;
    }
    connector_cv_.wait(lock);
  }
}

bool ClientImpl::try_connect(std::string* error, bool* refused) {
  const std::string connection = util::random_hex(16);
  std::string token;
  std::vector<std::string> filters{base_ + user_base_ + "#"};
  {
    Lock lock(mutex_);
    token = token_;
    auto more = mqtt_filters_locked();
    filters.insert(filters.end(), more.begin(), more.end());
  }
  mqtt::connect_options options;
  options.set_mqtt_version(MQTTVERSION_3_1_1);
  options.set_clean_session(true);
  options.set_keep_alive_interval(config_.keepalive);
  options.set_connect_timeout(
      std::max<long long>(1, (config_.connect_timeout.count() + 999) / 1000));
  options.set_automatic_reconnect(false);
  if (config_.broker_credentials) {
    options.set_user_name(config_.uid);  // the uid: broker ACLs use %u
    if (!token.empty()) options.set_password(token);
  }
  options.set_will(
      mqtt::will_options(presence_topic(), presence_payload(false, connection), 1, true));
  try {
    wait_connected(client_->connect(options));
    enable_tcp_nodelay_to(config_.broker_uri);  // Paho leaves Nagle on: ~40 ms per request
    // Everything addressed to this user, and the channels and publishers of the session,
    // before anything is asked of the gateway.
    auto sub = client_->subscribe(mqtt::string_collection::create(filters),
                                  mqtt::iasync_client::qos_collection(filters.size(), 1));
    if (!sub->wait_for(config_.connect_timeout)) throw std::runtime_error("subscribe timed out");
    {
      Lock lock(mutex_);
      connection_id_ = connection;
    }
    client_->publish(presence_topic(), presence_payload(true, connection), 1, true);
    log(LogLevel::debug, "rtm sdk: " + config_.uid + " connected to " + config_.broker_uri +
                             " (connection " + connection + ")");
    return true;
  } catch (const std::exception& e) {
    *error = e.what();
    // CONNACK 4 (bad user name or password) or 5 (not authorized): the broker said no.
    if (const auto* m = dynamic_cast<const mqtt::exception*>(&e)) {
      const int rc = m->get_return_code();
      *refused = rc == 4 || rc == 5;
    }
    try {
      if (client_->is_connected()) client_->disconnect(0)->wait_for(1s);
    } catch (const std::exception&) {
    }
    return false;
  }
}

// Paho C 1.3.12 shares one receive thread among the clients of a process; it waits in
// select() for up to 1 s on the sockets it knew when it started waiting, so a second
// client's new socket is only looked at a second or two later (paho.mqtt.c #1039, #1430):
// every client after the first took ~2.1 s to connect. Any packet arriving on a socket
// already in that select() wakes the thread, so while this client connects, another live
// client of the process asks its broker for an UNSUBACK (an UNSUBSCRIBE of a filter it
// never subscribed: no state changes, no ACL check). Measured: 2.1 s -> ~10 ms.
void ClientImpl::wait_connected(const mqtt::token_ptr& token) {
  const auto deadline = Clock::now() + config_.connect_timeout + 1s;
  if (token->wait_for(2ms)) return;
  while (Clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(g_clients_mutex);
      for (auto* other : live_clients()) {
        if (other != this && other->wake_paho()) break;
      }
    }
    if (token->wait_for(3ms)) return;
  }
  throw std::runtime_error("timed out");
}

// Called with g_clients_mutex held (so this client is not being destroyed).
bool ClientImpl::wake_paho() {
  try {
    if (!client_->is_connected()) return false;
    client_->unsubscribe(base_ + user_base_ + "paho-wake");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void ClientImpl::do_disconnect(bool publish_offline, const std::string& connection_id) {
  try {
    if (publish_offline && client_->is_connected()) {
      // A clean DISCONNECT sends no Will: say offline ourselves, so the gateway ends the
      // session and the retained presence is right.
      client_->publish(presence_topic(), presence_payload(false, connection_id), 1, true)
          ->wait_for(config_.connect_timeout);
    }
    if (client_->is_connected()) client_->disconnect(1000)->wait_for(2s);
  } catch (const std::exception& e) {
    log(LogLevel::debug, std::string("rtm sdk: disconnect: ") + e.what());
  }
}

void ClientImpl::on_connection_lost(const std::string& cause) {
  bool keep_parked = false;
  {
    Lock lock(mutex_);
    if (!connected_) return;
    connected_ = false;
    ready_ = false;
    hold_streams_locked();
    keep_parked = want_online_ && logged_in_;
    if (want_online_ && logged_in_ && token_expired_locked()) {
      // A broker that enforces sessions closes the connection at expiry, maybe before the
      // gateway's `session` event arrived: reconnecting would only be refused.
      end_session_locked(ConnectionState::failed, ConnectionChangeReason::token_expired,
                         "the login token expired; the broker closed the connection");
      keep_parked = false;
    } else if (want_online_ && logged_in_) {
      set_state_locked(ConnectionState::reconnecting, ConnectionChangeReason::interrupted,
                       cause.empty() ? "connection to the broker lost"
                                     : "connection to the broker lost: " + cause);
    }
  }
  connector_cv_.notify_all();
  fail_all_pending(Status(ErrorCode::unavailable, "connection to the broker lost"), keep_parked);
}

ClientImpl::RestoreOutcome ClientImpl::restore() {
  using json::Object;
  // 1. Is the session still there? Short attempts first: the gateway may itself still be
  //    reconnecting to the broker, and requests sent before it subscribes are lost. They
  //    grow up to request_timeout, so that a slow gateway is waited for.
  auto attempt = std::min(config_.request_timeout, std::chrono::milliseconds(250));
  Reply probe;
  for (;;) {
    {
      Lock lock(mutex_);
      if (closing_ || !connected_ || !want_online_) return RestoreOutcome::retry;
    }
    probe = call_sync("where_now", Object().str("uid", config_.uid).text(), "where_now (restore)",
                      attempt);
    if (!probe.status.is(ErrorCode::timeout)) break;
    attempt = std::min(config_.request_timeout, attempt * 2);
  }
  if (probe.status.is(ErrorCode::unavailable)) return RestoreOutcome::retry;
  bool relogin = false;
  if (!probe.status.ok()) {  // NOT_LOGGED_IN: the session ended while we were away
    relogin = true;
    std::string token;
    {
      Lock lock(mutex_);
      token = token_;
    }
    auto r = call_sync("login", Object().str("token", token).text(), "login (restore)",
                       config_.request_timeout);
    if (transport_failure(r.status)) return RestoreOutcome::retry;
    if (!r.status.ok()) {
      Lock lock(mutex_);
      end_session_locked(
          ConnectionState::failed,
          r.status.is(ErrorCode::token_expired) ? ConnectionChangeReason::token_expired
                                                : ConnectionChangeReason::login_failure,
          "the session could not be restored: login refused: " + r.status.to_string());
      return RestoreOutcome::failed;
    }
    Lock lock(mutex_);
    session_id_ = json::str(r.result(), "session_id");
    token_expires_at_ = json::int64(r.result(), "expires_at");
  }

  // 2. Channels, topics, subscriptions and watches, asserted again (idempotent at the gateway).
  std::map<std::string, ChannelState> channels;
  std::set<std::string> watched;
  {
    Lock lock(mutex_);
    channels = channels_;
    watched = watched_;
  }
  std::vector<std::string> problems;
  std::size_t n_topics = 0, n_subscriptions = 0;
  auto forget = [this](const std::string& channel, const std::string* topic,
                       const std::string* user, bool publisher) {
    std::vector<std::string> drop;
    {
      Lock lock(mutex_);
      auto ch = channels_.find(channel);
      if (ch == channels_.end()) return;
      if (!topic) {
        drop = channel_filters_locked(channel, ch->second);
        drop.push_back(events_topic(channel));
        channels_.erase(ch);
      } else if (publisher) {
        ch->second.topics.erase(*topic);
      } else if (user) {
        ch->second.subscribed[*topic].erase(*user);
        drop.push_back(data_topic(channel, *topic, *user));
        data_topics_.erase(drop.back());
      } else if (ch->second.all.erase(*topic)) {  // the every-publisher mode of the topic
        drop.push_back(data_topic(channel, *topic, "+"));
        all_filters_.erase(drop.back());
      }
    }
    mqtt_unsubscribe(drop);
  };
  for (const auto& [name, ch] : channels) {
    Object body;
    body.str("channel", name);
    if (relogin && !ch.token.empty()) body.str("token", ch.token);
    auto r = call_sync("join", body.text(), "join " + name + " (restore)", config_.request_timeout);
    if (transport_failure(r.status)) return RestoreOutcome::retry;
    if (!r.status.ok()) {
      problems.push_back("join " + name + ": " + r.status.to_string());
      forget(name, nullptr, nullptr, false);
      continue;
    }
    ChannelEvent ev;
    ev.type = ChannelEventType::snapshot;
    ev.channel = name;
    ev.reason = "restored";
    ev.snapshot = parse_snapshot(r.result(), name);
    emit(handler_of<ChannelEvent>(), std::move(ev));
    for (const auto& [topic, publish_to] : ch.topics) {
      r = call_sync("join_topic", Object().str("channel", name).str("topic", topic).text(),
                    "join_topic " + name + "/" + topic + " (restore)", config_.request_timeout);
      if (transport_failure(r.status)) return RestoreOutcome::retry;
      if (!r.status.ok()) {
        problems.push_back("join_topic " + name + "/" + topic + ": " + r.status.to_string());
        forget(name, &topic, nullptr, true);
      } else {
        ++n_topics;
      }
    }
    for (const auto& [topic, users] : ch.subscribed) {
      if (users.empty()) continue;
      r = call_sync("subscribe",
                    Object().str("channel", name).str("topic", topic)
                        .list("users", std::vector<std::string>(users.begin(), users.end()))
                        .text(),
                    "subscribe " + name + "/" + topic + " (restore)", config_.request_timeout);
      if (transport_failure(r.status)) return RestoreOutcome::retry;
      if (!r.status.ok()) {
        problems.push_back("subscribe " + name + "/" + topic + ": " + r.status.to_string());
        for (const auto& u : users) forget(name, &topic, &u, false);
        continue;
      }
      for (const auto& p : parse_users(r.result())) {
        if (p.result.status.ok()) {
          ++n_subscriptions;
        } else {
          problems.push_back("subscribe " + name + "/" + topic + " " + p.result.uid + ": " +
                             p.result.status.to_string());
          forget(name, &topic, &p.result.uid, false);
        }
      }
    }
    for (const auto& [topic, excluded] : ch.all) {
      r = call_sync("subscribe", Object().str("channel", name).str("topic", topic).text(),
                    "subscribe " + name + "/" + topic + " (restore)", config_.request_timeout);
      if (transport_failure(r.status)) return RestoreOutcome::retry;
      if (!r.status.ok()) {
        problems.push_back("subscribe " + name + "/" + topic +
                           " (every publisher): " + r.status.to_string());
        forget(name, &topic, nullptr, false);
        continue;
      }
      ++n_subscriptions;
      Lock lock(mutex_);
      auto live = channels_.find(name);
      if (live == channels_.end()) continue;
      auto& refused = live->second.all[topic];
      refused.clear();
      for (const auto& p : parse_users(r.result())) {
        if (!p.result.status.ok()) refused.insert(p.result.uid);
      }
    }
  }
  if (!watched.empty()) {
    auto r = call_sync("watch",
                       Object().list("users", std::vector<std::string>(watched.begin(), watched.end())).text(),
                       "watch (restore)", config_.request_timeout);
    if (transport_failure(r.status)) return RestoreOutcome::retry;
    if (!r.status.ok()) {
      problems.push_back("watch: " + r.status.to_string());
    } else {
      std::vector<std::pair<std::string, bool>> states;
      for (const auto& p : parse_users(r.result())) {
        if (!p.result.status.ok()) {
          problems.push_back("watch " + p.result.uid + ": " + p.result.status.to_string());
          Lock lock(mutex_);
          watched_.erase(p.result.uid);
          watched_online_.erase(p.result.uid);
        } else {
          states.emplace_back(p.result.uid, p.state == "online");
        }
      }
      report_presence_changes(states);  // changes missed while away
    }
  }
  if (!recheck_invitations(relogin, problems)) return RestoreOutcome::retry;

  if (!restore_message_channels(problems)) return RestoreOutcome::retry;
  std::size_t n_metadata = 0;
  if (!restore_storage(problems, n_metadata)) return RestoreOutcome::retry;
  if (!recover_streams(problems)) return RestoreOutcome::retry;

  {
    Lock lock(mutex_);
    if (closing_ || !connected_ || !want_online_) return RestoreOutcome::retry;
    ready_ = true;
    flushing_ = true;
  }
  std::string sent;
  if (!flush_after_restore(&sent)) return RestoreOutcome::retry;
  Lock lock(mutex_);
  if (closing_ || !connected_ || !want_online_) return RestoreOutcome::retry;
  std::string reason = std::string(relogin ? "logged in again" : "session kept") + "; " +
                       std::to_string(channels_.size()) + " channel(s), " +
                       std::to_string(n_topics) + " topic(s), " + std::to_string(n_subscriptions) +
                       " subscription(s), " + std::to_string(watched_.size()) + " watch(es), " +
                       std::to_string(n_metadata) + " metadata subscription(s) restored";
  reason += sent;
  for (const auto& p : problems) reason += "; failed: " + p;
  set_state_locked(ConnectionState::restored, ConnectionChangeReason::restored, std::move(reason));
  return RestoreOutcome::done;
}

// ====================================================================== what arrives

void ClientImpl::on_mqtt_message(const mqtt::const_message_ptr& msg) {
  const std::string& topic = msg->get_topic();
  std::string_view t(topic);
  if (!starts_with(t, base_)) return;
  t.remove_prefix(base_.size());
  if (starts_with(t, "ch/")) {
    t.remove_prefix(3);
    const auto a = t.find('/');
    const auto b = a == std::string_view::npos ? a : t.find('/', a + 1);
    if (b == std::string_view::npos) return;
    MessageEvent ev;
    ev.channel = std::string(t.substr(0, a));
    ev.topic = std::string(t.substr(a + 1, b - a - 1));
    ev.publisher = std::string(t.substr(b + 1));
    ev.payload = msg->get_payload_str();
    ev.qos = msg->get_qos();
    {
      Lock lock(mutex_);
      if (!wanted_locked(topic, ev.channel, ev.topic, ev.publisher)) return;
      if (!on_stream_message_locked(ev, msg->is_retained())) return;  // held: recovering
    }
    emit(handler_of<MessageEvent>(), std::move(ev), true);
  } else if (starts_with(t, user_base_)) {
    t.remove_prefix(user_base_.size());
    if (starts_with(t, "res/")) {
      on_response(msg->get_payload_str());
    } else if (starts_with(t, "events/")) {
      on_personal_event(t.substr(7), msg->get_payload_str());
    } else if (starts_with(t, "inbox/")) {
      InboxMessage ev;
      ev.from = std::string(t.substr(6));
      ev.payload = msg->get_payload_str();
      ev.qos = msg->get_qos();
      emit(handler_of<InboxMessage>(), std::move(ev), true);
    }
  } else if (starts_with(t, "events/")) {
    on_channel_event(msg->get_payload_str());
  } else if (starts_with(t, "mc/")) {
    on_message_channel_message(msg, t.substr(3));
  } else if (starts_with(t, "mcevents/")) {
    on_message_channel_event(msg->get_payload_str());
  }
}

// A channel message is delivered when its publisher is subscribed to by name, or when its
// topic is in every-publisher mode and the gateway holds that publisher there (never the
// user's own messages, which the wildcard brings back, unless subscribed to by name).
bool ClientImpl::wanted_locked(const std::string& mqtt_topic, const std::string& channel,
                               const std::string& topic, const std::string& publisher) const {
  if (data_topics_.count(mqtt_topic)) return true;
  auto ch = channels_.find(channel);
  if (ch == channels_.end()) return false;
  auto all = ch->second.all.find(topic);
  if (all == ch->second.all.end() || all->second.count(publisher)) return false;
  if (publisher != config_.uid) return true;
  auto by_name = ch->second.subscribed.find(topic);
  return by_name != ch->second.subscribed.end() && by_name->second.count(publisher) > 0;
}

void ClientImpl::on_response(const std::string& payload) {
  auto doc = std::make_shared<rapidjson::Document>();
  doc->Parse(payload.data(), payload.size());
  if (doc->HasParseError() || !doc->IsObject()) {
    log(LogLevel::warn, "rtm sdk: an answer that is not a JSON object: " + payload.substr(0, 200));
    return;
  }
  const std::string id = json::str(*doc, "msg_id");
  if (id.empty()) return;
  const auto code = static_cast<int>(json::int64(*doc, "code", static_cast<int>(ErrorCode::internal)));
  Status status;
  if (code != 0) {
    status = Status(code, json::str(*doc, "error", std::string(error_name(code))),
                    json::str(*doc, "message"));
  }
  complete(id, Reply{std::move(status), std::move(doc)});
}

void ClientImpl::on_personal_event(std::string_view kind, const std::string& payload) {
  rapidjson::Document doc;
  doc.Parse(payload.data(), payload.size());
  if (doc.HasParseError() || !doc.IsObject()) return;
  if (kind == "session") {
    SessionEvent ev;
    ev.state = json::str(doc, "state");
    ev.reason = json::str(doc, "reason");
    ev.session_id = json::str(doc, "session_id");
    ev.reason_code = static_cast<ConnectionChangeReason>(json::int64(doc, "reason_code"));
    ev.connection_state = static_cast<ConnectionState>(
        json::int64(doc, "connection_state", static_cast<int>(ConnectionState::disconnected)));
    Lock lock(mutex_);
    const bool ours = !session_id_.empty() && ev.session_id == session_id_;
    ev.current = ours || (ev.state == "logged_in" && login_in_flight_ > 0);
    emit(handler_of<SessionEvent>(), ev);
    if (!ours || login_in_flight_ > 0 || logging_out_) return;
    if (ev.state == "replaced") {
      end_session_locked(
          ConnectionState::failed, ConnectionChangeReason::remote_login,
          "replaced: " + (ev.reason.empty() ? std::string("logged in elsewhere") : ev.reason));
    } else if (ev.state == "ended") {
      if (ev.reason == "connection_lost") {
        // An older connection's Will ended the session: log in again and restore.
        if (connected_ && want_online_) {
          need_restore_ = true;
          ready_ = false;
          set_state_locked(ConnectionState::reconnecting, ConnectionChangeReason::session_lost,
                           "the gateway ended the session (connection_lost); restoring it");
          connector_cv_.notify_all();
        }
      } else {
        // token_expired, kicked, logged_out (elsewhere): the gateway's code says which.
        auto reason = ev.reason_code;
        if (reason == ConnectionChangeReason::none) {
          reason = ev.reason == "token_expired" ? ConnectionChangeReason::token_expired
                   : ev.reason == "kicked"      ? ConnectionChangeReason::kicked
                                                : ConnectionChangeReason::logout;
        }
        end_session_locked(ConnectionState::failed, reason, "session ended: " + ev.reason);
      }
    }
  } else if (kind == "token" && doc.HasMember("channel")) {
    on_channel_token_event(doc);
  } else if (kind == "token") {
    TokenEvent ev;
    ev.state = json::str(doc, "state") == "expired" ? TokenEvent::State::expired
                                                    : TokenEvent::State::will_expire;
    ev.expires_at = json::int64(doc, "expires_at");
    emit(handler_of<TokenEvent>(), ev);
  } else if (kind == "subscription") {
    // A new publisher the every-publisher subscription had no room for.
    ChannelEvent ev;
    ev.type = ChannelEventType::subscription_refused;
    ev.channel = json::str(doc, "channel");
    ev.topic = json::str(doc, "topic");
    ev.uid = json::str(doc, "uid");
    ev.ts = json::int64(doc, "ts");
    const int code =
        static_cast<int>(json::int64(doc, "code", static_cast<int>(ErrorCode::internal)));
    ev.reason = Status(code, json::str(doc, "error", std::string(error_name(code))),
                       json::str(doc, "message"))
                    .to_string();
    {
      Lock lock(mutex_);
      auto ch = channels_.find(ev.channel);
      if (ch != channels_.end()) {
        auto all = ch->second.all.find(ev.topic);
        if (all != ch->second.all.end()) all->second.insert(ev.uid);
      }
    }
    emit(handler_of<ChannelEvent>(), std::move(ev));
  } else if (kind == "metadata") {
    on_metadata_event(doc);
  } else if (kind == "message") {
    if (auto ev = parse_peer_message(doc)) emit(handler_of<InboxMessage>(), std::move(*ev), true);
  } else if (kind == "receipt") {
    ReceiptEvent ev;
    ev.id = json::str(doc, "id");
    ev.to = json::str(doc, "to");
    ev.status =
        json::str(doc, "status") == "stored" ? DeliveryStatus::stored : DeliveryStatus::delivered;
    ev.ts = json::int64(doc, "ts");
    emit(handler_of<ReceiptEvent>(), std::move(ev));
  } else if (kind == "invitation") {
    on_invitation_event(doc);
  } else if (kind == "presence") {
    PresenceEvent ev;
    ev.uid = json::str(doc, "uid");
    ev.online = json::str(doc, "state") == "online";
    ev.ts = json::int64(doc, "ts");
    {
      Lock lock(mutex_);
      if (watched_.count(ev.uid)) watched_online_[ev.uid] = ev.online;
    }
    emit(handler_of<PresenceEvent>(), ev);
  }
}

std::optional<ChannelEventType> channel_event_type(std::string_view name) {
  if (name == "member_joined") return ChannelEventType::member_joined;
  if (name == "member_left") return ChannelEventType::member_left;
  if (name == "member_timed_out") return ChannelEventType::member_timed_out;
  if (name == "publisher_joined") return ChannelEventType::publisher_joined;
  if (name == "publisher_left") return ChannelEventType::publisher_left;
  return std::nullopt;
}

void ClientImpl::on_channel_event(const std::string& payload) {
  rapidjson::Document doc;
  doc.Parse(payload.data(), payload.size());
  if (doc.HasParseError() || !doc.IsObject()) return;
  const std::string name = json::str(doc, "event");
  if (on_storage_channel_event(name, doc)) return;
  const auto type = channel_event_type(name);
  if (!type) {
    log(LogLevel::debug, "rtm sdk: unknown channel event " + name);
    return;
  }
  ChannelEvent ev;
  ev.type = *type;
  ev.channel = json::str(doc, "channel");
  ev.uid = json::str(doc, "uid");
  ev.topic = json::str(doc, "topic");
  ev.reason = json::str(doc, "reason");
  ev.ts = json::int64(doc, "ts");
  if (ev.type == ChannelEventType::publisher_joined ||
      ev.type == ChannelEventType::publisher_left) {
    // A publisher that (re)joins is added to every-publisher subscriptions that have room
    // (a refusal, if any, comes right after this event); one that leaves is nobody's.
    Lock lock(mutex_);
    auto ch = channels_.find(ev.channel);
    if (ch != channels_.end()) {
      auto all = ch->second.all.find(ev.topic);
      if (all != ch->second.all.end()) all->second.erase(ev.uid);
    }
  }
  emit(handler_of<ChannelEvent>(), std::move(ev));
}

// ====================================================================== operations

void ClientImpl::login(std::string token, Callback<LoginInfo> done) {
  auto send = [this, done](Status connected) {
    if (!connected.ok()) {
      {
        Lock lock(mutex_);
        --login_in_flight_;
      }
      done(connected);
      return;
    }
    std::string tok;
    {
      Lock lock(mutex_);
      tok = token_;
    }
    send_request(
        "login", json::Object().str("token", tok).text(), "login",
        [this, done](Reply r) {
          Lock lock(mutex_);
          --login_in_flight_;
          if (r.status.ok()) {
            logged_in_ = true;
            session_id_ = json::str(r.result(), "session_id");
            LoginInfo info{json::str(r.result(), "uid", config_.uid), session_id_,
                           json::int64(r.result(), "expires_at")};
            token_expires_at_ = info.expires_at;
            set_state_locked(ConnectionState::connected, ConnectionChangeReason::login_success,
                             "logged in as " + config_.uid);
            lock.unlock();
            done(std::move(info));
            return;
          }
          if (!logged_in_ && want_online_) {
            want_online_ = false;
            publish_offline_ = true;
            set_state_locked(ConnectionState::failed,
                             r.status.is(ErrorCode::timeout)
                                 ? ConnectionChangeReason::login_timeout
                                 : ConnectionChangeReason::login_failure,
                             "login failed: " + r.status.to_string());
            connector_cv_.notify_all();
          }
          lock.unlock();
          done(r.status);
        },
        true);
  };
  Status refused;
  bool now = false;
  {
    Lock lock(mutex_);
    if (closing_) {
      refused = Status(ErrorCode::unavailable, "the client is closed");
    } else {
      if (!token.empty()) token_ = std::move(token);
      if (token_.empty()) {
        refused = Status(ErrorCode::missing_parameter,
                         "no token: set ClientConfig::token or pass one to login()");
      } else {
        ++login_in_flight_;
        if (connected_) {
          now = true;
          if (!want_online_ && disconnect_waiters_.empty()) {
            // A failed login left the connection to be closed and the connector has not got
            // to it yet: keep it, or that disconnect would fail this login.
            want_online_ = true;
            publish_offline_ = true;
            set_state_locked(ConnectionState::connecting, ConnectionChangeReason::login,
                             "connecting to " + config_.broker_uri);
          }
        } else if (want_online_ && had_connection_) {
          // Reconnecting: wait for the connection, within the request timeout.
          auto once = std::make_shared<std::atomic<bool>>(false);
          connect_waiters_.push_back([once, send](Status st) {
            if (!once->exchange(true)) send(std::move(st));
          });
          Pending wait{"login (waiting for the reconnect)",
                       [once, send](Reply r) {
                         if (!once->exchange(true)) send(std::move(r.status));
                       },
                       Clock::now() + config_.request_timeout,
                       config_.request_timeout,
                       true,
                       {},
                       {}};
          park_locked(next_msg_id(), std::move(wait));
        } else {
          connect_waiters_.push_back(send);
          if (!want_online_) {
            want_online_ = true;
            publish_offline_ = true;
            set_state_locked(ConnectionState::connecting, ConnectionChangeReason::login,
                             "connecting to " + config_.broker_uri);
          }
        }
      }
    }
  }
  if (!refused.ok()) {
    done(refused);
    return;
  }
  connector_cv_.notify_all();
  if (now) send(Status{});
}

void ClientImpl::logout(Callback<void> done) {
  auto finish = [this, done](Status status) {
    {
      Lock lock(mutex_);
      logging_out_ = false;
      drop_queue_locked("logged out");
      watched_online_.clear();
      invitations_.clear();
      logged_in_ = false;
      session_id_.clear();
      channels_.clear();
      streams_.clear();
      streams_.clear();
      watched_.clear();
      metadata_subscriptions_.clear();
      data_topics_.clear();
      all_filters_.clear();
      want_online_ = false;
      publish_offline_ = true;
      need_restore_ = false;
      disconnect_waiters_.push_back([this, done, status] {
        {
          Lock inner(mutex_);
          set_state_locked(ConnectionState::disconnected, ConnectionChangeReason::logout,
                           "logged out");
        }
        done(status.ok() ? Result<void>() : Result<void>(status));
      });
    }
    connector_cv_.notify_all();
  };
  bool send = false;
  {
    Lock lock(mutex_);
    if (closing_) {
      lock.unlock();
      done(Status(ErrorCode::unavailable, "the client is closed"));
      return;
    }
    send = connected_ && logged_in_;
    logging_out_ = true;
  }
  if (send) {
    send_request("logout", "", "logout", [finish](Reply r) { finish(r.status); }, true);
  } else {
    finish(Status{});
  }
}

void ClientImpl::renew_token(std::string token, Callback<std::int64_t> done) {
  if (token.empty()) {
    done(Status(ErrorCode::missing_parameter, "renew_token needs a token"));
    return;
  }
  send_request("renew_token", json::Object().str("token", token).text(), "renew_token",
               [this, token, done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 const auto expires_at = json::int64(r.result(), "expires_at");
                 {
                   Lock lock(mutex_);
                   token_ = token;  // for the next CONNECT and any re-login
                   token_expires_at_ = expires_at;
                 }
                 done(expires_at);
               });
}

void ClientImpl::send_message(const std::string& user, std::string_view payload,
                              const SendOptions& options, Callback<SendResult> done) {
  if (auto e = name_problem("uid", user)) return done(Status(ErrorCode::invalid_name, *e));
  if (options.type == PeerMessageType::raw) {
    return done(Status(ErrorCode::invalid_parameter,
                       "send_message sends text or binary; publish() sends raw bytes"));
  }
  const bool binary = options.type == PeerMessageType::binary;
  if (!binary && !valid_utf8(payload)) {
    return done(Status(ErrorCode::invalid_parameter,
                       "a text message must be UTF-8; send bytes as PeerMessageType::binary"));
  }
  auto body = json::Object()
                  .str("to", user)
                  .str("message", binary ? util::base64_encode(payload) : std::string(payload))
                  .str("type", binary ? "binary" : "text")
                  .boolean("receipt", options.receipt)
                  .boolean("store", options.store)
                  .text();
  send_request("send_message", std::move(body), "send_message to " + user, [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    SendResult out;
    out.id = json::str(r.result(), "id");
    out.ts = json::int64(r.result(), "ts");
    out.status = json::str(r.result(), "status") == "stored" ? DeliveryStatus::stored
                                                             : DeliveryStatus::delivered;
    done(std::move(out));
  });
}

void ClientImpl::inbox_history(const InboxHistoryOptions& options, Callback<InboxHistory> done) {
  json::Object body;
  body.int64("limit", options.limit);
  if (!options.after.empty()) body.str("after", options.after);
  if (!options.ack.empty()) body.str("ack", options.ack);
  send_request("inbox_history", body.text(), "inbox_history", [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    InboxHistory out;
    out.more = json::boolean(r.result(), "more");
    auto list = r.result().FindMember("messages");
    if (list != r.result().MemberEnd() && list->value.IsArray()) {
      for (const auto& v : list->value.GetArray()) {
        if (auto m = parse_peer_message(v)) out.messages.push_back(std::move(*m));
      }
    }
    done(std::move(out));
  });
}

Result<void> ClientImpl::publish_inbox(const std::string& user, std::string_view payload, int qos) {
  if (auto e = name_problem("uid", user)) return Status(ErrorCode::invalid_name, *e);
  if (qos < 0 || qos > 1) return Status(ErrorCode::invalid_parameter, "qos must be 0 or 1");
  return publish_or_queue(base_ + "u/" + user + "/inbox/" + config_.uid, payload, qos);
}

void ClientImpl::watch(const std::vector<std::string>& users, bool unwatch,
                       Callback<std::vector<UserPresence>> done) {
  for (const auto& u : users) {
    if (auto e = name_problem("uid", u)) return done(Status(ErrorCode::invalid_name, *e));
  }
  const char* op = unwatch ? "unwatch" : "watch";
  send_request(op, json::Object().list("users", users).text(), op,
               [this, unwatch, done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 std::vector<UserPresence> out;
                 {
                   Lock lock(mutex_);
                   for (auto& p : parse_users(r.result())) {
                     if (p.result.status.ok()) {
                       if (unwatch) {
                         watched_.erase(p.result.uid);
                         watched_online_.erase(p.result.uid);
                       } else {
                         watched_.insert(p.result.uid);
                         watched_online_[p.result.uid] = p.state == "online";
                       }
                     }
                     out.push_back({p.result.uid, p.result.status, p.state == "online"});
                   }
                 }
                 done(std::move(out));
               });
}

void ClientImpl::who_now(const std::string& channel, Callback<std::vector<std::string>> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("who_now", json::Object().str("channel", channel).text(), "who_now " + channel,
               [done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 done(json::strings(r.result(), "members"));
               });
}

void ClientImpl::where_now(const std::string& uid, Callback<std::vector<std::string>> done) {
  if (auto e = name_problem("uid", uid)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("where_now", json::Object().str("uid", uid).text(), "where_now " + uid,
               [done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 done(json::strings(r.result(), "channels"));
               });
}

namespace {

// The URI with every '.' after the scheme and host written %2E: on RabbitMQ a '.' in a
// topic becomes a level separator, and the gateway decodes %2E in paths and queries on
// every broker (docs/protocol.md#names-per-broker).
std::string dots_escaped(const std::string& uri) {
  std::size_t from = 0;
  if (const auto scheme_end = uri.find("://");
      scheme_end != std::string::npos && uri.find_first_of("/?") > scheme_end) {
    from = std::min(uri.find_first_of("/?", scheme_end + 3), uri.size());
  }
  std::string out = uri.substr(0, from);
  for (std::size_t i = from; i < uri.size(); ++i) {
    if (uri[i] == '.') {
      out += "%2E";
    } else {
      out += uri[i];
    }
  }
  return out;
}

}  // namespace

void ClientImpl::raw_request(const std::string& raw_uri, const std::string& body,
                             Callback<std::string> done) {
  const std::string uri = dots_escaped(raw_uri);
  if (uri.empty() || uri.find_first_of("+#") != std::string::npos || uri.front() == '/') {
    return done(Status(ErrorCode::invalid_uri,
                       "the URI must be non-empty, must not start with '/' and must not contain "
                       "'+' or '#', got \"" +
                           raw_uri + "\""));
  }
  if (uri.find("msg_id=") != std::string::npos) {
    return done(Status(ErrorCode::invalid_parameter, "the SDK adds msg_id itself"));
  }
  send_request(uri, body, raw_uri, [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    done(json::dump(r.result()));
  });
}

bool ClientImpl::joined(const std::string& channel) const {
  Lock lock(mutex_);
  return channels_.count(channel) > 0;
}

void ClientImpl::join(const std::string& channel, Callback<ChannelSnapshot> done,
                      const std::string& token) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  const std::string events = events_topic(channel);
  bool subscribe_now;
  {
    Lock lock(mutex_);
    subscribe_now = connected_ && channels_.count(channel) == 0;
  }
  // Subscribed before the request goes out (the broker keeps one connection's packets in
  // order), so no event after the snapshot is missed.
  if (subscribe_now) mqtt_subscribe({events});
  json::Object body;
  body.str("channel", channel);
  if (!token.empty()) body.str("token", token);
  send_request("join", body.text(), "join " + channel,
               [this, channel, events, token, done](Reply r) {
                 if (!r.status.ok()) {
                   bool drop;
                   {
                     Lock lock(mutex_);
                     drop = channels_.count(channel) == 0;
                   }
                   if (drop) mqtt_unsubscribe({events});
                   return done(r.status);
                 }
                 {
                   Lock lock(mutex_);
                   auto& ch = channels_[channel];
                   if (!token.empty()) ch.token = token;
                 }
                 done(parse_snapshot(r.result(), channel));
               });
}

void ClientImpl::leave(const std::string& channel, Callback<void> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("leave", json::Object().str("channel", channel).text(), "leave " + channel,
               [this, channel, done](Reply r) {
                 if (r.status.ok() || r.status.is(ErrorCode::not_joined)) {
                   std::vector<std::string> drop;
                   {
                     Lock lock(mutex_);
                     auto ch = channels_.find(channel);
                     if (ch != channels_.end()) {
                       drop = channel_filters_locked(channel, ch->second);
                       drop.push_back(events_topic(channel));
                       channels_.erase(ch);
                       untrack_streams_locked(channel);
                     }
                   }
                   mqtt_unsubscribe(drop);
                 }
                 done(r.status.ok() ? Result<void>() : Result<void>(r.status));
               });
}

void ClientImpl::join_topic(const std::string& channel, const std::string& topic,
                            Callback<void> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("join_topic", json::Object().str("channel", channel).str("topic", topic).text(),
               "join_topic " + channel + "/" + topic, [this, channel, topic, done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 const std::string publish_to = json::str(
                     r.result(), "publish_to", data_topic(channel, topic, config_.uid));
                 bool new_channel;
                 {
                   Lock lock(mutex_);
                   new_channel = channels_.count(channel) == 0;
                   channels_[channel].topics[topic] = publish_to;
                 }
                 if (new_channel) mqtt_subscribe({events_topic(channel)});
                 done(Result<void>());
               });
}

void ClientImpl::leave_topic(const std::string& channel, const std::string& topic,
                             Callback<void> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("leave_topic", json::Object().str("channel", channel).str("topic", topic).text(),
               "leave_topic " + channel + "/" + topic, [this, channel, topic, done](Reply r) {
                 if (r.status.ok() || r.status.is(ErrorCode::not_publisher) ||
                     r.status.is(ErrorCode::not_joined)) {
                   Lock lock(mutex_);
                   auto ch = channels_.find(channel);
                   if (ch != channels_.end()) ch->second.topics.erase(topic);
                 }
                 done(r.status.ok() ? Result<void>() : Result<void>(r.status));
               });
}

Result<void> ClientImpl::publish_topic(const std::string& channel, const std::string& topic,
                                       std::string_view payload, int qos) {
  if (qos < 0 || qos > 1) return Status(ErrorCode::invalid_parameter, "qos must be 0 or 1");
  std::string to;
  {
    Lock lock(mutex_);
    auto ch = channels_.find(channel);
    if (ch == channels_.end() || ch->second.topics.count(topic) == 0) {
      return Status(ErrorCode::not_joined, config_.uid + " has not joined topic " + topic +
                                               " of channel " + channel + " (call join_topic first)");
    }
    to = ch->second.topics[topic];
  }
  return publish_or_queue(to, payload, qos);
}

void ClientImpl::subscribe(const std::string& channel, const std::string& topic,
                           const std::vector<std::string>& users, bool unsubscribe,
                           Callback<SubscribeResult> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  for (const auto& u : users) {
    if (auto e = name_problem("uid", u)) return done(Status(ErrorCode::invalid_name, *e));
  }
  // Subscribing: the data topics are subscribed before the request goes out, so they are
  // in place at the broker when the answer comes back.
  // In every-publisher mode the topic's wildcard brings them already.
  std::vector<std::string> fresh;
  if (!unsubscribe) {
    {
      Lock lock(mutex_);
      auto ch = channels_.find(channel);
      const bool covered = ch != channels_.end() && ch->second.all.count(topic) > 0;
      for (const auto& u : users) {
        auto t = data_topic(channel, topic, u);
        if (!covered && data_topics_.insert(t).second) fresh.push_back(std::move(t));
      }
      if (!connected_) {  // the request fails below; nothing to subscribe
        for (const auto& t : fresh) data_topics_.erase(t);
        fresh.clear();
      }
    }
    mqtt_subscribe(fresh);
  }
  const char* op = unsubscribe ? "unsubscribe" : "subscribe";
  send_request(
      op, json::Object().str("channel", channel).str("topic", topic).list("users", users).text(),
      std::string(op) + " " + channel + "/" + topic,
      [this, channel, topic, unsubscribe, fresh, done](Reply r) {
        std::vector<std::string> drop;
        std::vector<std::string> add;
        if (!r.status.ok()) {
          {
            Lock lock(mutex_);
            for (const auto& t : fresh) data_topics_.erase(t);
          }
          mqtt_unsubscribe(fresh);
          return done(r.status);
        }
        SubscribeResult result{channel, topic, {}, false};
        {
          Lock lock(mutex_);
          ChannelState* ch = nullptr;
          if (auto it = channels_.find(channel); it != channels_.end()) {
            ch = &it->second;
          } else if (!unsubscribe) {
            ch = &channels_[channel];  // joined through another client of this uid
            add.push_back(events_topic(channel));
          }
          auto all = ch ? ch->all.find(topic) : decltype(ch->all.end()){};
          const bool covered = ch && all != ch->all.end();
          result.all = covered;
          for (auto& p : parse_users(r.result())) {
            const auto t = data_topic(channel, topic, p.result.uid);
            const bool ok = p.result.status.ok();
            if (!unsubscribe) {
              if (ok) {
                ch->subscribed[topic].insert(p.result.uid);
                if (covered) {
                  all->second.erase(p.result.uid);
                } else if (data_topics_.insert(t).second) {
                  add.push_back(t);
                }
              } else if (std::find(fresh.begin(), fresh.end(), t) != fresh.end()) {
                data_topics_.erase(t);
                drop.push_back(t);
              }
            } else if (ok || p.result.status.is(ErrorCode::not_subscribed)) {
              if (ch) {
                auto users = ch->subscribed.find(topic);
                if (users != ch->subscribed.end()) {
                  users->second.erase(p.result.uid);
                  if (users->second.empty()) ch->subscribed.erase(users);
                }
              }
              // The wildcard still brings this publisher: keep it out until it joins again.
              if (ok && covered) all->second.insert(p.result.uid);
              if (data_topics_.erase(t)) drop.push_back(t);
            }
            result.users.push_back(std::move(p.result));
          }
        }
        mqtt_subscribe(add);
        mqtt_unsubscribe(drop);
        if (!unsubscribe) {
          track_stream(channel, topic, r.result());
        } else {
          Lock lock(mutex_);
          untrack_streams_locked(channel);
        }
        done(std::move(result));
      });
}

void ClientImpl::subscribe_all(const std::string& channel, const std::string& topic,
                               bool unsubscribe, Callback<SubscribeResult> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  // The wildcard is subscribed before the request goes out, so it is in place at the broker
  // before the gateway adds any publisher: no message of theirs can slip through.
  const std::string filter = data_topic(channel, topic, "+");
  bool fresh = false;
  if (!unsubscribe) {
    {
      Lock lock(mutex_);
      fresh = connected_ && all_filters_.insert(filter).second;
      expect_stream_locked(channel, topic);
    }
    if (fresh) mqtt_subscribe({filter});
  }
  const char* op = unsubscribe ? "unsubscribe" : "subscribe";
  send_request(op, json::Object().str("channel", channel).str("topic", topic).text(),
               std::string(op) + " " + channel + "/" + topic + " (every publisher)",
               [this, channel, topic, unsubscribe, fresh, filter, done](Reply r) {
                 if (!r.status.ok()) {
                   bool drop = false;
                   if (fresh) {
                     Lock lock(mutex_);
                     auto ch = channels_.find(channel);
                     drop = ch == channels_.end() || ch->second.all.count(topic) == 0;
                     if (drop) all_filters_.erase(filter);
                   }
                   if (drop) mqtt_unsubscribe({filter});
                   return done(r.status);
                 }
                 SubscribeResult result{channel, topic, {}, !unsubscribe};
                 std::vector<std::string> add, drop;
                 {
                   Lock lock(mutex_);
                   auto parsed = parse_users(r.result());
                   ChannelState* ch = nullptr;
                   if (auto it = channels_.find(channel); it != channels_.end()) {
                     ch = &it->second;
                   } else if (!unsubscribe) {
                     ch = &channels_[channel];  // joined through another client of this uid
                     add.push_back(events_topic(channel));
                   }
                   auto by_name =
                       ch ? ch->subscribed.find(topic) : decltype(ch->subscribed.end()){};
                   const bool has_by_name = ch && by_name != ch->subscribed.end();
                   if (!unsubscribe) {
                     auto& refused = ch->all[topic];
                     refused.clear();
                     for (const auto& p : parsed) {
                       if (!p.result.status.ok()) refused.insert(p.result.uid);
                     }
                     if (all_filters_.insert(filter).second) add.push_back(filter);
                     // The wildcard covers those subscribed to by name: their own filters go.
                     if (has_by_name) {
                       for (const auto& u : by_name->second) {
                         auto t = data_topic(channel, topic, u);
                         if (data_topics_.erase(t)) drop.push_back(std::move(t));
                       }
                     }
                   } else if (ch) {
                     ch->all.erase(topic);
                     if (has_by_name) {
                       for (const auto& u : by_name->second) {
                         auto t = data_topic(channel, topic, u);
                         if (data_topics_.erase(t)) drop.push_back(std::move(t));
                       }
                       ch->subscribed.erase(by_name);
                     }
                     if (all_filters_.erase(filter)) drop.push_back(filter);
                   }
                   for (auto& p : parsed) result.users.push_back(std::move(p.result));
                 }
                 mqtt_subscribe(add);
                 mqtt_unsubscribe(drop);
                 if (!unsubscribe) {
                   track_stream(channel, topic, r.result());
                 } else {
                   Lock lock(mutex_);
                   untrack_streams_locked(channel);
                 }
                 done(std::move(result));
               });
}

void ClientImpl::subscribed(const std::string& channel, const std::string& topic,
                            Callback<std::vector<std::string>> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("subscribed", json::Object().str("channel", channel).str("topic", topic).text(),
               "subscribed " + channel + "/" + topic, [done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 done(json::strings(r.result(), "users"));
               });
}

}  // namespace rtm::sdk::detail
