// rtm::invitations: the call invitation state machine, with time as a parameter: each
// path's events for the caller and the callee (table-driven), timeouts by phase, bounds,
// who may do what, session ends, and restoring records.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/invitations/invitations.hpp"

using namespace rtm::invitations;

namespace {

// "alice:local:SENT_TO_REMOTE:OK" per event, in order.
std::vector<std::string> told(const Transition& t) {
  std::vector<std::string> out;
  for (const auto& e : t.events) {
    out.push_back(e.uid + ":" + (e.side == Side::local ? "local" : "remote") + ":" +
                  e.state_name() + ":" + std::string(name(e.reason)));
  }
  return out;
}

std::uint64_t invite(Invitations& book, std::int64_t now = 1000) {
  auto t = book.invite("alice", "bob", "play?", "room-42", true, now);
  REQUIRE(t.ok());
  return t->id;
}

}  // namespace

TEST_CASE("invitations: invite tells both sides and arms the ack deadline") {
  Invitations book;
  auto t = book.invite("alice", "bob", "play?", "room-42", true, 1000);
  REQUIRE(t.ok());
  CHECK(told(*t) ==
        std::vector<std::string>{"alice:local:SENT_TO_REMOTE:OK", "bob:remote:RECEIVED:OK"});
  CHECK(t->changed == std::vector<std::uint64_t>{t->id});
  CHECK(t->events[1].invitation.content == "play?");
  CHECK(t->events[1].invitation.channel_id == "room-42");
  CHECK(book.next_deadline() == 1000 + 30000);
  CHECK(book.size() == 1);
}

TEST_CASE("invitations: an offline callee fails at once and keeps nothing") {
  Invitations book;
  auto t = book.invite("alice", "bob", "", "", false, 1000);
  REQUIRE(t.ok());
  CHECK(told(*t) == std::vector<std::string>{"alice:local:FAILURE:PEER_OFFLINE"});
  CHECK(t->changed.empty());
  CHECK(book.size() == 0);
  CHECK(!book.next_deadline());
}

TEST_CASE("invitations: each ending path, table-driven") {
  struct Row {
    const char* path;
    bool ack_first;
    int op;  // 0 accept, 1 refuse, 2 cancel
    std::vector<std::string> events;
  };
  const std::vector<Row> rows = {
      {"accept after ack",
       true,
       0,
       {"alice:local:ACCEPTED_BY_REMOTE:OK", "bob:remote:ACCEPTED:OK"}},
      {"accept before ack",
       false,
       0,
       {"alice:local:ACCEPTED_BY_REMOTE:OK", "bob:remote:ACCEPTED:OK"}},
      {"refuse", true, 1, {"alice:local:REFUSED_BY_REMOTE:OK", "bob:remote:REFUSED:OK"}},
      {"cancel before ack", false, 2, {"alice:local:CANCELED:OK", "bob:remote:CANCELED:OK"}},
      {"cancel after ack", true, 2, {"alice:local:CANCELED:OK", "bob:remote:CANCELED:OK"}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.path);
    Invitations book;
    const auto id = invite(book);
    if (row.ack_first) {
      auto a = book.ack("bob", id, 2000);
      REQUIRE(a.ok());
      CHECK(told(*a) == std::vector<std::string>{"alice:local:RECEIVED_BY_REMOTE:OK"});
      CHECK(book.next_deadline() == 2000 + 60000);
    }
    auto t = row.op == 0   ? book.accept("bob", id, "yes", 3000)
             : row.op == 1 ? book.refuse("bob", id, "busy", 3000)
                           : book.cancel("alice", id, 3000);
    REQUIRE(t.ok());
    CHECK(told(*t) == row.events);
    CHECK(t->changed == std::vector<std::uint64_t>{id});
    CHECK(book.size() == 0);
    CHECK(!book.next_deadline());
    if (row.op != 2) CHECK(t->events[0].response == (row.op == 0 ? "yes" : "busy"));
    // Ended: every later call is not_found.
    CHECK(book.accept("bob", id, "", 4000).error().code == ErrorCode::not_found);
    CHECK(book.cancel("alice", id, 4000).error().code == ErrorCode::not_found);
  }
}

TEST_CASE("invitations: timeouts by phase") {
  SUBCASE("no ack within ack_timeout: PEER_NO_RESPONSE on both sides") {
    Invitations book;
    const auto id = invite(book, 1000);
    CHECK(book.due(30999).events.empty());
    auto t = book.due(31000);
    CHECK(told(t) == std::vector<std::string>{"alice:local:FAILURE:PEER_NO_RESPONSE",
                                              "bob:remote:FAILURE:PEER_NO_RESPONSE"});
    CHECK(t.changed == std::vector<std::uint64_t>{id});
    CHECK(book.size() == 0);
  }
  SUBCASE("no answer expire_ms after receipt: INVITATION_EXPIRE") {
    Invitations book;
    const auto id = invite(book, 1000);
    REQUIRE(book.ack("bob", id, 5000).ok());
    CHECK(book.due(31000).events.empty());  // the ack deadline no longer applies
    CHECK(book.due(64999).events.empty());
    CHECK(told(book.due(65000)) ==
          std::vector<std::string>{"alice:local:FAILURE:INVITATION_EXPIRE",
                                   "bob:remote:FAILURE:INVITATION_EXPIRE"});
  }
  SUBCASE("configured timeouts") {
    Limits limits;
    limits.ack_timeout_ms = 100;
    limits.expire_ms = 200;
    Invitations book(limits);
    const auto a = invite(book, 0);
    const auto b = invite(book, 50);
    REQUIRE(book.ack("bob", b, 60).ok());
    CHECK(book.next_deadline() == 100);
    auto t = book.due(100);
    REQUIRE(t.events.size() == 2);
    CHECK(t.events[0].invitation.id == a);
    CHECK(book.next_deadline() == 260);
  }
  SUBCASE("a repeated ack changes nothing") {
    Invitations book;
    const auto id = invite(book, 1000);
    REQUIRE(book.ack("bob", id, 2000).ok());
    auto again = book.ack("bob", id, 9000);
    REQUIRE(again.ok());
    CHECK(again->events.empty());
    CHECK(again->changed.empty());
    CHECK(book.next_deadline() == 62000);
  }
}

TEST_CASE("invitations: only the parties, each in its role") {
  Invitations book;
  const auto id = invite(book);
  CHECK(book.ack("carol", id, 1).error().code == ErrorCode::not_found);
  CHECK(book.accept("carol", id, "", 1).error().code == ErrorCode::not_found);
  CHECK(book.cancel("carol", id, 1).error().code == ErrorCode::not_found);
  CHECK(book.ack("alice", id, 1).error().code == ErrorCode::wrong_party);
  CHECK(book.accept("alice", id, "", 1).error().code == ErrorCode::wrong_party);
  CHECK(book.refuse("alice", id, "", 1).error().code == ErrorCode::wrong_party);
  CHECK(book.cancel("bob", id, 1).error().code == ErrorCode::wrong_party);
  CHECK(book.accept("bob", id + 1, "", 1).error().code == ErrorCode::not_found);
  CHECK(book.invite("alice", "alice", "", "", true, 1).error().code == ErrorCode::self_invite);
  CHECK(book.size() == 1);
}

TEST_CASE("invitations: bounds name their config keys and change nothing") {
  Limits limits;
  limits.max_per_caller = 2;
  limits.max_per_callee = 3;
  limits.max_total = 4;
  limits.max_content_bytes = 8;
  Invitations book(limits);
  auto big = book.invite("alice", "bob", std::string(9, 'x'), "", true, 1);
  CHECK(big.error().code == ErrorCode::too_large);
  CHECK(big.error().limit == Limits::kMaxContentKey);
  REQUIRE(book.invite("alice", "bob", "", "", true, 1).ok());
  REQUIRE(book.invite("alice", "carol", "", "", true, 1).ok());
  auto caller = book.invite("alice", "dave", "", "", true, 1);
  CHECK(caller.error().limit == Limits::kMaxPerCallerKey);
  CHECK(book.invite("alice", "dave", "", "", false, 1).ok());  // offline: kept nowhere
  REQUIRE(book.invite("erin", "bob", "", "", true, 1).ok());
  REQUIRE(book.invite("frank", "bob", "", "", true, 1).ok());
  CHECK(book.invite("gina", "bob", "", "", true, 1).error().limit == Limits::kMaxPerCalleeKey);
  CHECK(book.invite("gina", "hal", "", "", true, 1).error().limit == Limits::kMaxTotalKey);
  CHECK(book.size() == 4);
  const auto id = book.of("bob").front().id;
  CHECK(book.accept("bob", id, std::string(9, 'x'), 2).error().code == ErrorCode::too_large);
  CHECK(book.size() == 4);
}

TEST_CASE("invitations: ids grow across restores") {
  Invitations book;
  const auto a = invite(book, 1000);
  const auto b = invite(book, 1000);
  CHECK(b > a);
  Invitations again;
  again.restore(*book.find(a));
  again.restore(*book.find(b));
  CHECK(again.next_deadline() == 31000);
  CHECK(invite(again, 500) > b);  // a clock behind does not repeat an id
}

TEST_CASE("invitations: a session end cancels what uid sent and fails what it was sent") {
  Invitations book;
  const auto out = invite(book);
  auto in = book.invite("carol", "alice", "", "", true, 1000);
  REQUIRE(in.ok());
  REQUIRE(book.invite("carol", "dave", "", "", true, 1000).ok());
  auto t = book.session_ended("alice");
  CHECK(told(t) == std::vector<std::string>{"alice:local:CANCELED:OK", "bob:remote:CANCELED:OK",
                                            "carol:local:FAILURE:PEER_OFFLINE",
                                            "alice:remote:FAILURE:PEER_OFFLINE"});
  CHECK(t.changed == std::vector<std::uint64_t>{out, in->id});
  CHECK(book.size() == 1);
  CHECK(!book.involves("alice"));
  CHECK(book.involves("dave"));
}

TEST_CASE("invitations: state and reason names") {
  CHECK(name(LocalState::idle) == "IDLE");
  CHECK(name(LocalState::received_by_remote) == "RECEIVED_BY_REMOTE");
  CHECK(name(RemoteState::refused) == "REFUSED");
  CHECK(name(Reason::not_loggedin) == "NOT_LOGGEDIN");
  CHECK(name(Reason::invitation_expire) == "INVITATION_EXPIRE");
}
