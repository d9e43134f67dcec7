// rtm::storage locks: the state machine of one channel's locks, with time as a parameter:
// acquire and its queue, release passing the lock on, revoke, remove with waiters, expiry
// after the holder's session ended, a holder that comes back in time, due/next_deadline.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/storage/locks.hpp"

using namespace rtm::storage;

namespace {

LockEvent ev(LockEventKind kind, const std::string& lock, const std::string& uid) {
  LockEvent e;
  e.kind = kind;
  e.lock = lock;
  e.uid = uid;
  return e;
}

constexpr std::int64_t kT0 = 1'000'000;

// "door" with ttl 10 s, held by alice.
Locks door_held_by_alice() {
  Locks locks;
  REQUIRE(locks.set_lock("door", 10).ok());
  auto r = locks.acquire("door", "alice", false, kT0);
  REQUIRE(r.ok());
  REQUIRE(r->status == AcquireStatus::acquired);
  return locks;
}

}  // namespace

TEST_CASE("storage locks: set_lock checks the ttl range, the name, duplicates and the count") {
  LockLimits limits;
  limits.max_locks = 2;
  Locks locks(limits);
  struct Case {
    const char* name;
    std::string lock;
    std::int64_t ttl;
    bool ok;
    ErrorCode code;
    std::string_view limit;
  };
  const Case cases[] = {
      {"ttl below 10", "a", 9, false, ErrorCode::invalid_ttl, LockLimits::kMinTtlKey},
      {"ttl above 300", "a", 301, false, ErrorCode::invalid_ttl, LockLimits::kMaxTtlKey},
      {"empty name", "", 10, false, ErrorCode::invalid_key, {}},
      {"ttl 10", "a", 10, true, {}, {}},
      {"same name again", "a", 20, false, ErrorCode::lock_exists, {}},
      {"ttl 300", "b", 300, true, {}, {}},
      {"one lock too many", "c", 10, false, ErrorCode::too_many_locks, LockLimits::kMaxLocksKey},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto r = locks.set_lock(c.lock, c.ttl);
    REQUIRE(r.ok() == c.ok);
    if (c.ok) {
      REQUIRE(r->size() == 1);
      CHECK((*r)[0].kind == LockEventKind::set);
      CHECK((*r)[0].lock == c.lock);
      CHECK((*r)[0].ttl_s == c.ttl);
      continue;
    }
    CHECK(r.error().code == c.code);
    CHECK(r.error().limit == c.limit);
  }
  const auto all = locks.get_locks();
  REQUIRE(all.size() == 2);
  CHECK(all[0] == LockState{"a", 10, std::nullopt, std::nullopt, {}});
  CHECK(all[1].ttl_s == 300);
}

TEST_CASE("storage locks: acquire, lock_held without retry, a FIFO queue with retry") {
  Locks locks = door_held_by_alice();
  CHECK(locks.held_by("door", "alice"));

  const auto held = locks.acquire("door", "bob", false, kT0);
  REQUIRE_FALSE(held.ok());
  CHECK(held.error().code == ErrorCode::lock_held);
  CHECK(held.error().message.find("alice") != std::string::npos);

  const auto bob = locks.acquire("door", "bob", true, kT0);
  REQUIRE(bob.ok());
  CHECK(bob->status == AcquireStatus::queued);
  CHECK(bob->position == 1);
  CHECK(bob->events.empty());
  const auto carol = locks.acquire("door", "carol", true, kT0);
  CHECK(carol->position == 2);
  const auto bob_again = locks.acquire("door", "bob", false, kT0);
  REQUIRE(bob_again.ok());
  CHECK(bob_again->status == AcquireStatus::already_queued);
  CHECK(bob_again->position == 1);
  const auto alice_again = locks.acquire("door", "alice", false, kT0);
  REQUIRE(alice_again.ok());
  CHECK(alice_again->status == AcquireStatus::already_held);
  CHECK(alice_again->events.empty());
  CHECK(locks.find("door")->waiters == std::vector<std::string>{"bob", "carol"});

  CHECK(locks.acquire("window", "bob", true, kT0).error().code == ErrorCode::lock_not_found);
}

TEST_CASE("storage locks: the queue is bounded") {
  LockLimits limits;
  limits.max_waiters = 2;
  Locks locks(limits);
  REQUIRE(locks.set_lock("door", 10).ok());
  REQUIRE(locks.acquire("door", "alice", false, kT0).ok());
  CHECK(locks.acquire("door", "w1", true, kT0).ok());
  CHECK(locks.acquire("door", "w2", true, kT0).ok());  // at the bound
  const auto past = locks.acquire("door", "w3", true, kT0);
  REQUIRE_FALSE(past.ok());
  CHECK(past.error().code == ErrorCode::too_many_waiters);
  CHECK(past.error().limit == LockLimits::kMaxWaitersKey);
}

TEST_CASE("storage locks: release passes the lock on in queue order") {
  Locks locks = door_held_by_alice();
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  REQUIRE(locks.acquire("door", "carol", true, kT0).ok());

  struct Step {
    std::string releaser;
    std::vector<LockEvent> events;
    std::optional<std::string> holder_after;
  };
  const Step steps[] = {
      {"alice",
       {ev(LockEventKind::released, "door", "alice"), ev(LockEventKind::acquired, "door", "bob")},
       "bob"},
      {"bob",
       {ev(LockEventKind::released, "door", "bob"), ev(LockEventKind::acquired, "door", "carol")},
       "carol"},
      {"carol", {ev(LockEventKind::released, "door", "carol")}, std::nullopt},
  };
  for (const auto& step : steps) {
    CAPTURE(step.releaser);
    const auto r = locks.release("door", step.releaser, kT0);
    REQUIRE(r.ok());
    CHECK(*r == step.events);
    CHECK(locks.find("door")->holder == step.holder_after);
  }
  CHECK(locks.release("door", "carol", kT0).error().code == ErrorCode::not_lock_holder);
}

TEST_CASE("storage locks: a waiter that releases leaves the queue and a stranger is refused") {
  Locks locks = door_held_by_alice();
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  REQUIRE(locks.acquire("door", "carol", true, kT0).ok());
  const auto withdrawn = locks.release("door", "bob", kT0);
  REQUIRE(withdrawn.ok());
  CHECK(withdrawn->empty());
  CHECK(locks.find("door")->waiters == std::vector<std::string>{"carol"});
  const auto stranger = locks.release("door", "mallory", kT0);
  REQUIRE_FALSE(stranger.ok());
  CHECK(stranger.error().code == ErrorCode::not_lock_holder);
  CHECK(locks.release("window", "alice", kT0).error().code == ErrorCode::lock_not_found);
  const auto next = locks.release("door", "alice", kT0);
  CHECK(next->back() == ev(LockEventKind::acquired, "door", "carol"));
}

TEST_CASE("storage locks: revoke takes the lock from its holder and hands it on") {
  Locks locks = door_held_by_alice();
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  const auto wrong = locks.revoke("door", "bob", kT0);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::not_lock_holder);
  CHECK(locks.held_by("door", "alice"));
  const auto r = locks.revoke("door", "alice", kT0);
  REQUIRE(r.ok());
  CHECK(*r == std::vector<LockEvent>{ev(LockEventKind::released, "door", "alice"),
                                     ev(LockEventKind::acquired, "door", "bob")});
}

TEST_CASE("storage locks: remove with a holder and waiters drops them all") {
  Locks locks = door_held_by_alice();
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  REQUIRE(locks.acquire("door", "carol", true, kT0).ok());
  const auto r = locks.remove("door", kT0);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].kind == LockEventKind::removed);
  CHECK((*r)[0].uid == "alice");
  CHECK((*r)[0].dropped_waiters == std::vector<std::string>{"bob", "carol"});
  CHECK(locks.get_locks().empty());
  CHECK(locks.remove("door", kT0).error().code == ErrorCode::lock_not_found);
  CHECK(locks.acquire("door", "bob", false, kT0).error().code == ErrorCode::lock_not_found);
  // The name is free again.
  CHECK(locks.set_lock("door", 10).ok());
}

TEST_CASE("storage locks: a holder whose session ended loses the lock ttl later") {
  Locks locks = door_held_by_alice();
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  CHECK_FALSE(locks.next_deadline().has_value());

  const auto ended = locks.holder_session_ended("alice", kT0 + 500);
  CHECK(ended.held == std::vector<std::string>{"door"});
  CHECK(ended.left_queues.empty());
  const std::int64_t deadline = kT0 + 500 + 10'000;
  CHECK(locks.next_deadline() == std::optional<std::int64_t>(deadline));
  CHECK(locks.held_by("door", "alice"));  // still its own meanwhile
  // A second end (another of its sessions) does not push the deadline out.
  locks.holder_session_ended("alice", kT0 + 900);
  CHECK(locks.next_deadline() == std::optional<std::int64_t>(deadline));

  CHECK(locks.due(deadline - 1).empty());
  const auto events = locks.due(deadline);
  CHECK(events == std::vector<LockEvent>{ev(LockEventKind::expired, "door", "alice"),
                                         ev(LockEventKind::acquired, "door", "bob")});
  CHECK(locks.held_by("door", "bob"));
  CHECK_FALSE(locks.next_deadline().has_value());
  CHECK(locks.due(deadline + 100'000).empty());
}

TEST_CASE("storage locks: a holder that comes back before the ttl keeps its lock") {
  Locks locks = door_held_by_alice();
  locks.holder_session_ended("alice", kT0);
  CHECK(locks.holder_returned("alice") == std::vector<std::string>{"door"});
  CHECK_FALSE(locks.next_deadline().has_value());
  CHECK(locks.due(kT0 + 1'000'000).empty());
  CHECK(locks.held_by("door", "alice"));
  CHECK(locks.holder_returned("alice").empty());  // nothing was counting down

  // Asking for it again also counts as coming back.
  locks.holder_session_ended("alice", kT0);
  const auto again = locks.acquire("door", "alice", false, kT0 + 9'999);
  CHECK(again->status == AcquireStatus::already_held);
  CHECK_FALSE(locks.next_deadline().has_value());
}

TEST_CASE("storage locks: a waiter whose session ended leaves every queue") {
  Locks locks;
  REQUIRE(locks.set_lock("door", 10).ok());
  REQUIRE(locks.set_lock("gate", 10).ok());
  REQUIRE(locks.acquire("door", "alice", false, kT0).ok());
  REQUIRE(locks.acquire("gate", "alice", false, kT0).ok());
  REQUIRE(locks.acquire("door", "bob", true, kT0).ok());
  REQUIRE(locks.acquire("gate", "bob", true, kT0).ok());
  REQUIRE(locks.acquire("gate", "carol", true, kT0).ok());
  const auto ended = locks.holder_session_ended("bob", kT0);
  CHECK(ended.held.empty());
  CHECK(ended.left_queues == std::vector<std::string>{"door", "gate"});
  CHECK_FALSE(locks.next_deadline().has_value());
  CHECK(*locks.release("door", "alice", kT0) ==
        std::vector<LockEvent>{ev(LockEventKind::released, "door", "alice")});
  CHECK(locks.release("gate", "alice", kT0)->back() ==
        ev(LockEventKind::acquired, "gate", "carol"));
}

TEST_CASE("storage locks: a stale holder does not block a caller whose timer has not fired") {
  Locks locks = door_held_by_alice();
  locks.holder_session_ended("alice", kT0);
  const auto r = locks.acquire("door", "carol", false, kT0 + 10'000);
  REQUIRE(r.ok());
  CHECK(r->status == AcquireStatus::acquired);
  CHECK(r->events == std::vector<LockEvent>{ev(LockEventKind::expired, "door", "alice"),
                                            ev(LockEventKind::acquired, "door", "carol")});
}

TEST_CASE("storage locks: a call that fails changes nothing, not even expirations due") {
  Locks locks = door_held_by_alice();
  locks.holder_session_ended("alice", kT0);
  const auto before = locks.get_locks();
  CHECK(locks.release("door", "mallory", kT0 + 20'000).error().code == ErrorCode::not_lock_holder);
  CHECK(locks.acquire("nope", "mallory", true, kT0 + 20'000).error().code ==
        ErrorCode::lock_not_found);
  CHECK(locks.get_locks() == before);
  // The timer's due() still reports them.
  CHECK(locks.due(kT0 + 20'000).front() == ev(LockEventKind::expired, "door", "alice"));
}

TEST_CASE("storage locks: several expirations come due in deadline order, then by name") {
  Locks locks;
  for (const char* name : {"b", "a", "c"}) REQUIRE(locks.set_lock(name, 10).ok());
  REQUIRE(locks.set_lock("late", 30).ok());
  for (const char* name : {"a", "b", "c", "late"})
    REQUIRE(locks.acquire(name, "x", false, kT0).ok());
  REQUIRE(locks.acquire("late", "y", true, kT0).ok());
  locks.holder_session_ended("x", kT0);
  CHECK(locks.next_deadline() == std::optional<std::int64_t>(kT0 + 10'000));
  const auto first = locks.due(kT0 + 10'000);
  REQUIRE(first.size() == 3);
  CHECK(first[0].lock == "a");
  CHECK(first[1].lock == "b");
  CHECK(first[2].lock == "c");
  CHECK(locks.next_deadline() == std::optional<std::int64_t>(kT0 + 30'000));
  CHECK(locks.due(kT0 + 30'000) ==
        std::vector<LockEvent>{ev(LockEventKind::expired, "late", "x"),
                               ev(LockEventKind::acquired, "late", "y")});
  CHECK(lock_event_name(LockEventKind::expired) == "expired");
}
