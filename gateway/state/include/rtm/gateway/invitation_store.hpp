#pragma once
// Call invitations in flight (docs/protocol.md, "Call invitations"; docs/state.md,
// "Invitations"): the InvitationStore seam of the state store, in the same commits as the
// rest. One record per invitation, keyed by its id; the transitions are those of the pure
// model (rtm::invitations), and a store writes the records each transition changed, so
// that a restart mid-invitation keeps it with its deadline.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/invitations/invitations.hpp"

namespace rtm::gateway {

// The limits of the `invitations` config section.
invitations::Limits invitation_limits(const InvitationsConfig& config);

// Which invitation records a durable backend must write (present) or delete (gone).
class InvitationListener {
 public:
  virtual ~InvitationListener() = default;
  virtual void invitation_changed(std::uint64_t id) = 0;
};

class InvitationStore {
 public:
  using Result = invitations::Result<invitations::Transition>;
  virtual ~InvitationStore() = default;
  virtual void set_limits(const invitations::Limits& limits) = 0;
  virtual Result invite(const std::string& caller, const std::string& callee, std::string content,
                        std::string channel_id, bool callee_online, std::int64_t now_ms) = 0;
  virtual Result ack(const std::string& uid, std::uint64_t id, std::int64_t now_ms) = 0;
  virtual Result accept(const std::string& uid, std::uint64_t id, std::string response,
                        std::int64_t now_ms) = 0;
  virtual Result refuse(const std::string& uid, std::uint64_t id, std::string response,
                        std::int64_t now_ms) = 0;
  virtual Result cancel(const std::string& uid, std::uint64_t id, std::int64_t now_ms) = 0;
  virtual invitations::Transition due(std::int64_t now_ms) = 0;
  virtual invitations::Transition session_ended(const std::string& uid) = 0;
  virtual std::optional<std::int64_t> next_deadline() const = 0;
  virtual std::vector<invitations::Invitation> of(const std::string& uid) const = 0;
  virtual bool involves(const std::string& uid) const = 0;
  virtual std::size_t size() const = 0;
};

// The model in memory; durable backends listen to its changes and write those records.
class MemoryInvitationStore final : public InvitationStore {
 public:
  void set_limits(const invitations::Limits& limits) override { model_.set_limits(limits); }
  Result invite(const std::string& caller, const std::string& callee, std::string content,
                std::string channel_id, bool callee_online, std::int64_t now_ms) override {
    return told(model_.invite(caller, callee, std::move(content), std::move(channel_id),
                              callee_online, now_ms));
  }
  Result ack(const std::string& uid, std::uint64_t id, std::int64_t now_ms) override {
    return told(model_.ack(uid, id, now_ms));
  }
  Result accept(const std::string& uid, std::uint64_t id, std::string response,
                std::int64_t now_ms) override {
    return told(model_.accept(uid, id, std::move(response), now_ms));
  }
  Result refuse(const std::string& uid, std::uint64_t id, std::string response,
                std::int64_t now_ms) override {
    return told(model_.refuse(uid, id, std::move(response), now_ms));
  }
  Result cancel(const std::string& uid, std::uint64_t id, std::int64_t now_ms) override {
    return told(model_.cancel(uid, id, now_ms));
  }
  invitations::Transition due(std::int64_t now_ms) override { return told(model_.due(now_ms)); }
  invitations::Transition session_ended(const std::string& uid) override {
    return told(model_.session_ended(uid));
  }
  std::optional<std::int64_t> next_deadline() const override { return model_.next_deadline(); }
  std::vector<invitations::Invitation> of(const std::string& uid) const override {
    return model_.of(uid);
  }
  bool involves(const std::string& uid) const override { return model_.involves(uid); }
  std::size_t size() const override { return model_.size(); }

  // ---- for durable backends: one listener (not owned), and restoring.
  void set_listener(InvitationListener* listener) { listener_ = listener; }
  void restore(invitations::Invitation invitation) { model_.restore(std::move(invitation)); }
  // The invitation of `id` now (nullptr: gone, the backend deletes its record).
  const invitations::Invitation* find(std::uint64_t id) const { return model_.find(id); }
  // ---- for shared backends (replicated rows): without listener. restore replaces one of
  // the same id; forget drops one; the last id only grows.
  void forget(std::uint64_t id) { model_.forget(id); }
  void restore_last_id(std::uint64_t id) { model_.restore_last_id(id); }
  std::uint64_t last_id() const { return model_.last_id(); }
  void for_each(const std::function<void(const invitations::Invitation&)>& visit) const {
    model_.for_each(visit);
  }
  // No invitations (a full reload); the last id stays, so that ids never repeat.
  void clear() {
    const auto last = model_.last_id();
    model_ = invitations::Invitations(model_.limits());
    model_.restore_last_id(last);
  }

 private:
  template <class T>
  T told(T t) {
    if (!listener_) return t;
    if constexpr (std::is_same_v<T, invitations::Transition>) {
      for (const auto id : t.changed) listener_->invitation_changed(id);
    } else {
      if (t) {
        for (const auto id : t->changed) listener_->invitation_changed(id);
      }
    }
    return t;
  }

  invitations::Invitations model_;
  InvitationListener* listener_ = nullptr;
};

}  // namespace rtm::gateway
