#pragma once
// The keys of the rows a loop turn changed: what a durable backend writes at its commit
// (sqlite), what a shared one sends to the other gateways (redis), and what a gateway
// applied from them (ReplicaListener). A session key covers its watches and message
// channels; a member key covers its topics and subscriptions.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "rtm/gateway/inbox_store.hpp"
#include "rtm/gateway/invitation_store.hpp"
#include "rtm/gateway/lock_store.hpp"
#include "rtm/gateway/metadata_store.hpp"
#include "rtm/gateway/presence_state_store.hpp"

namespace rtm::gateway {

class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
  virtual void session_changed(const std::string& uid) = 0;
  virtual void member_changed(const std::string& channel, const std::string& uid) = 0;
};

class ChangeSet final : public ChangeListener,
                        public MetadataListener,
                        public LockListener,
                        public InboxListener,
                        public InvitationListener,
                        public PresenceStateListener {
 public:
  void session_changed(const std::string& uid) override { sessions.insert(uid); }
  void member_changed(const std::string& channel, const std::string& uid) override {
    members.emplace(channel, uid);
  }
  void metadata_changed(MetadataScope scope, const std::string& name) override {
    metadata.emplace(scope, name);
  }
  void metadata_subscriptions_changed(const std::string& subscriber) override {
    metadata_subscribers.insert(subscriber);
  }
  void locks_changed(const std::string& channel) override { locks.insert(channel); }
  void inbox_changed(std::uint64_t id) override { inbox.insert(id); }
  void inbox_id_used(std::uint64_t last) override { inbox_last_id = last; }
  void invitation_changed(std::uint64_t id) override { invitations.insert(id); }
  void states_changed(const std::string& channel, const std::string& uid) override {
    states.emplace(channel, uid);
  }

  bool empty() const {
    return sessions.empty() && members.empty() && presence.empty() && metadata.empty() &&
           metadata_subscribers.empty() && locks.empty() && inbox.empty() && !inbox_last_id &&
           invitations.empty() && states.empty();
  }
  void clear() { *this = ChangeSet(); }
  std::size_t size() const {
    return sessions.size() + members.size() + presence.size() + metadata.size() +
           metadata_subscribers.size() + locks.size() + inbox.size() + invitations.size() +
           states.size();
  }

  std::set<std::string> sessions;
  std::set<std::string> presence;                         // uids (written by the backend itself)
  std::set<std::pair<std::string, std::string>> members;  // (channel, uid)
  std::set<std::pair<MetadataScope, std::string>> metadata;
  std::set<std::string> metadata_subscribers;
  std::set<std::string> locks;     // channels
  std::set<std::uint64_t> inbox;   // message ids
  std::optional<std::uint64_t> inbox_last_id;
  std::set<std::uint64_t> invitations;  // invitation ids
  // (channel, uid) presence states: shared in a cluster, never stored on disk (RTM 2's
  // states do not outlive the gateway).
  std::set<std::pair<std::string, std::string>> states;
};

}  // namespace rtm::gateway
