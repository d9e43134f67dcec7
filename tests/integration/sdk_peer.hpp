#pragma once
// SDK test helpers: a Mosquitto with the real gateway, and SDK clients whose every event is
// recorded, to wait for with a deadline.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rtm/sdk/client.hpp"

namespace rtm::test {

namespace sdk = rtm::sdk;

struct Setup {
  Mosquitto broker;
  GatewayProcess gateway;
  explicit Setup(GatewayOptions options = {}) : gateway(broker.uri(), std::move(options)) {
    REQUIRE_MESSAGE(wait_gateway_ready(broker.uri()), gateway.log());
  }
};

// Collects what a callback receives; waits for an item with a deadline.
template <class E>
class Recorder {
 public:
  void push(const E& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      items_.push_back(e);
    }
    cv_.notify_all();
  }
  // The first item (in arrival order) that matches, removed; nullopt at the deadline.
  std::optional<E> wait(const std::function<bool(const E&)>& match,
                        std::chrono::milliseconds timeout = 10000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = Clock::now() + timeout;
    while (true) {
      for (auto it = items_.begin(); it != items_.end(); ++it) {
        if (match(*it)) {
          E e = *it;
          items_.erase(it);
          return e;
        }
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        for (auto it = items_.begin(); it != items_.end(); ++it) {
          if (match(*it)) {
            E e = *it;
            items_.erase(it);
            return e;
          }
        }
        return std::nullopt;
      }
    }
  }
  std::optional<E> next(std::chrono::milliseconds timeout = 10000ms) {
    return wait([](const E&) { return true; }, timeout);
  }
  std::vector<E> take_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto out = std::move(items_);
    items_.clear();
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<E> items_;
};

// An SDK client with every event recorded.
struct Peer {
  Recorder<sdk::ConnectionStateEvent> states;
  Recorder<sdk::MessageEvent> messages;
  Recorder<sdk::InboxMessage> inbox;
  Recorder<sdk::ChannelEvent> events;
  Recorder<sdk::PresenceEvent> presence;
  Recorder<sdk::SessionEvent> sessions;
  Recorder<sdk::TokenEvent> tokens;
  Recorder<sdk::StorageEvent> storage;
  Recorder<sdk::PresenceStateEvent> states_changed;
  Recorder<sdk::LockEvent> locks;
  Recorder<sdk::RecoveryEvent> recoveries;
  Recorder<sdk::ReceiptEvent> receipts;
  Recorder<sdk::InvitationEvent> invitations;
  Recorder<sdk::ChannelMessageEvent> channel_messages;
  std::unique_ptr<sdk::Client> client;  // last: destroyed first

  Peer(const std::string& broker_uri, const std::string& uid, std::int64_t ttl_s = 3600,
       const std::function<void(sdk::ClientConfig&)>& tweak = {}) {
    sdk::ClientConfig config;
    config.broker_uri = broker_uri;
    config.uid = uid;
    config.token = token_for(uid, ttl_s);
    config.reconnect_max = 500ms;
    if (tweak) tweak(config);
    client = std::make_unique<sdk::Client>(config);
    client->on_connection_state([this](const sdk::ConnectionStateEvent& e) { states.push(e); });
    client->on_message([this](const sdk::MessageEvent& e) { messages.push(e); });
    client->on_inbox([this](const sdk::InboxMessage& e) { inbox.push(e); });
    client->on_channel_event([this](const sdk::ChannelEvent& e) { events.push(e); });
    client->on_presence([this](const sdk::PresenceEvent& e) { presence.push(e); });
    client->on_session([this](const sdk::SessionEvent& e) { sessions.push(e); });
    client->on_token([this](const sdk::TokenEvent& e) { tokens.push(e); });
    client->on_storage_event([this](const sdk::StorageEvent& e) { storage.push(e); });
    client->on_presence_state([this](const sdk::PresenceStateEvent& e) { states_changed.push(e); });
    client->on_lock_event([this](const sdk::LockEvent& e) { locks.push(e); });
    client->on_recovery([this](const sdk::RecoveryEvent& e) { recoveries.push(e); });
    client->on_receipt([this](const sdk::ReceiptEvent& e) { receipts.push(e); });
    client->on_invitation([this](const sdk::InvitationEvent& e) { invitations.push(e); });
    client->on_channel_message(
        [this](const sdk::ChannelMessageEvent& e) { channel_messages.push(e); });
  }
  sdk::Client* operator->() { return client.get(); }

  void login() {
    auto r = client->login();
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  }
  std::optional<sdk::ConnectionStateEvent> wait_state(sdk::ConnectionState s,
                                                      std::chrono::milliseconds t = 10000ms) {
    return states.wait([s](const sdk::ConnectionStateEvent& e) { return e.state == s; }, t);
  }
  std::optional<sdk::ChannelEvent> wait_event(sdk::ChannelEventType type, const std::string& uid,
                                              std::chrono::milliseconds t = 10000ms) {
    return events.wait([&](const sdk::ChannelEvent& e) { return e.type == type && e.uid == uid; },
                       t);
  }
};

// ---- for tests of the rtm CLI

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Polls a process's log for `text` until the deadline (the log is a file: no event to wait on).
inline bool wait_log(Process& p, const std::string& text,
                     std::chrono::milliseconds timeout = 15000ms) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (p.log().find(text) != std::string::npos) return true;
    if (!p.running()) return p.log().find(text) != std::string::npos;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

inline bool wait_exit(Process& p, std::chrono::milliseconds timeout = 15000ms) {
  const auto deadline = Clock::now() + timeout;
  while (p.running() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  return !p.running();
}

}  // namespace rtm::test
