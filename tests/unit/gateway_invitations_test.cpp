// Call invitations (issue 17) without a broker: the invitation service in a Core as the
// Gateway wires it (rtm_harness.hpp), with the test's clock: events on both sides, the ack
// and answer timers, a party's session end, errors on the wire; on sqlite, an invitation in
// flight kept across a restart with its deadline, and the schema 5 to 6 migration.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "rtm/gateway/sqlite_store.hpp"
#include "rtm_harness.hpp"

namespace {

using rtm::test::RtmHarness;
using Lines = std::vector<std::string>;

// The invitation events sent to uid from `from` on, as "id-or-*:side:state:reason".
Lines told(const RtmHarness& h, const std::string& uid, std::size_t from = 0) {
  Lines out;
  for (auto i : h.sent_to("rtm/u/" + uid + "/events/invitation", from)) {
    const auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    out.push_back(std::string(e["side"].GetString()) + ":" + e["state"].GetString() + ":" +
                  e["reason"].GetString());
  }
  return out;
}

}  // namespace

TEST_CASE("invitation service: invite, ack, accept, with events on both sides") {
  RtmHarness h;
  h.login("alice");
  h.login("bob");
  const auto mark = h.outbox.sent.size();
  auto r =
      h.ok("alice", "invite", "", R"({"callee":"bob","content":"play?","channel_id":"room-42"})");
  const std::string id = r["id"].GetString();
  CHECK(std::string(r["state"].GetString()) == "SENT_TO_REMOTE");
  CHECK(told(h, "alice", mark) == Lines{"local:SENT_TO_REMOTE:OK"});
  CHECK(told(h, "bob", mark) == Lines{"remote:RECEIVED:OK"});
  const auto e = h.only("rtm/u/bob/events/invitation", mark);
  CHECK(std::string(e["content"].GetString()) == "play?");
  CHECK(std::string(e["channel_id"].GetString()) == "room-42");
  CHECK(std::string(e["caller"].GetString()) == "alice");

  auto m2 = h.outbox.sent.size();
  h.ok("bob", "ack_invitation", "id=" + id);
  CHECK(told(h, "alice", m2) == Lines{"local:RECEIVED_BY_REMOTE:OK"});
  CHECK(told(h, "bob", m2).empty());

  CHECK(h.error("alice", "accept_invitation", "id=" + id) == "INVITATION_WRONG_SIDE");
  CHECK(h.error("carol", "accept_invitation", "id=" + id) == "NOT_LOGGED_IN");
  h.login("carol");
  CHECK(h.error("carol", "accept_invitation", "id=" + id) == "INVITATION_NOT_FOUND");
  CHECK(h.error("bob", "accept_invitation", "id=12x") == "INVALID_PARAMETER");

  m2 = h.outbox.sent.size();
  h.ok("bob", "accept_invitation", "", "{\"id\":\"" + id + "\",\"response\":\"yes\"}");
  CHECK(told(h, "alice", m2) == Lines{"local:ACCEPTED_BY_REMOTE:OK"});
  CHECK(told(h, "bob", m2) == Lines{"remote:ACCEPTED:OK"});
  CHECK(std::string(h.only("rtm/u/alice/events/invitation", m2)["response"].GetString()) == "yes");
  CHECK(h.error("bob", "refuse_invitation", "id=" + id) == "INVITATION_NOT_FOUND");
}

TEST_CASE("invitation service: offline callee, no ack, expiry, session ends, limits") {
  auto config = rtm::test::harness_config();
  config.invitations.ack_timeout_s = 30;
  config.invitations.expire_s = 60;
  config.invitations.max_per_caller = 2;
  config.invitations.max_content_bytes = 16;
  RtmHarness h(config);
  h.login("alice");
  const auto t0 = h.now;

  auto mark = h.outbox.sent.size();
  auto r = h.ok("alice", "invite", "callee=nobody");
  CHECK(std::string(r["state"].GetString()) == "FAILURE");
  CHECK(std::string(r["reason"].GetString()) == "PEER_OFFLINE");
  CHECK(told(h, "alice", mark) == Lines{"local:FAILURE:PEER_OFFLINE"});
  CHECK(h.error("alice", "invite", "callee=alice") == "INVALID_PARAMETER");
  CHECK(h.error("alice", "invite", "", R"({"callee":"bob","content":"0123456789abcdefX"})") ==
        "LIMIT_INVITATIONS");

  h.login("bob");
  const std::string unacked = h.ok("alice", "invite", "callee=bob")["id"].GetString();
  const std::string acked = h.ok("alice", "invite", "callee=bob")["id"].GetString();
  CHECK(h.error("alice", "invite", "callee=bob") == "LIMIT_INVITATIONS");
  h.advance_to(t0 + 1000);
  h.ok("bob", "ack_invitation", "id=" + acked);

  mark = h.outbox.sent.size();
  h.advance_to(t0 + 29999);
  CHECK(told(h, "alice", mark).empty());
  h.advance_to(t0 + 30000);
  CHECK(told(h, "alice", mark) == Lines{"local:FAILURE:PEER_NO_RESPONSE"});
  CHECK(told(h, "bob", mark) == Lines{"remote:FAILURE:PEER_NO_RESPONSE"});
  mark = h.outbox.sent.size();
  h.advance_to(t0 + 61000);
  CHECK(told(h, "alice", mark) == Lines{"local:FAILURE:INVITATION_EXPIRE"});
  CHECK(told(h, "bob", mark) == Lines{"remote:FAILURE:INVITATION_EXPIRE"});
  CHECK(h.error("bob", "accept_invitation", "id=" + unacked) == "INVITATION_NOT_FOUND");

  // The callee logs out: the caller's invitation fails with PEER_OFFLINE at once.
  h.ok("alice", "invite", "callee=bob");
  mark = h.outbox.sent.size();
  h.ok("bob", "logout", "");
  CHECK(told(h, "alice", mark) == Lines{"local:FAILURE:PEER_OFFLINE"});
  // The caller logs out: the callee's is canceled.
  h.login("bob");
  h.ok("bob", "invite", "callee=alice");
  mark = h.outbox.sent.size();
  h.ok("bob", "logout", "");
  CHECK(told(h, "alice", mark) == Lines{"remote:CANCELED:OK"});
}

TEST_CASE(
    "invitation service: on sqlite an invitation in flight survives a restart with its timer") {
  rtm::test::SqliteStateDir state;
  state.config.invitations.expire_s = 60;
  RtmHarness h(state.config);
  h.login("alice");
  h.login("bob");
  const auto t0 = h.now;
  const std::string kept = h.ok("alice", "invite", "callee=bob&content=hi")["id"].GetString();
  const std::string expiring = h.ok("alice", "invite", "callee=bob")["id"].GetString();
  h.ok("bob", "ack_invitation", "id=" + kept);
  h.ok("bob", "ack_invitation", "id=" + expiring);

  h.restart(t0 + 10000);
  auto list = h.ok("bob", "invitations", "");
  REQUIRE(list["invitations"].Size() == 2);
  CHECK(std::string(list["invitations"][0]["content"].GetString()) == "hi");
  CHECK(std::string(list["invitations"][0]["phase"].GetString()) == "received");
  auto mark = h.outbox.sent.size();
  h.ok("bob", "accept_invitation", "id=" + kept);
  CHECK(told(h, "alice", mark) == Lines{"local:ACCEPTED_BY_REMOTE:OK"});

  // Its deadline passed while the gateway was down: it fails at start-up.
  h.restart(t0 + 120000);
  mark = h.outbox.sent.size();
  h.advance_to(t0 + 120000);  // the first timer turn
  CHECK(told(h, "alice", mark) == Lines{"local:FAILURE:INVITATION_EXPIRE"});
  CHECK(told(h, "bob", mark) == Lines{"remote:FAILURE:INVITATION_EXPIRE"});
  CHECK(h.ok("bob", "invitations", "")["invitations"].Size() == 0);
}

TEST_CASE("invitation store: a schema 5 state file is migrated in place to 6") {
  rtm::test::SqliteStateDir state;
  {
    rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
    store.start_session("alice", "s1", 1700000000000, 1700003600000);
    store.commit([](bool) {});
  }
  {  // what a gateway before invitations wrote: no invitations table, user_version 5
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(state.config.state.path.c_str(), &db) == SQLITE_OK);
    REQUIRE(
        sqlite3_exec(db,
                     "DROP TABLE invitations; DROP TABLE message_channels; "
                     "ALTER TABLE members DROP COLUMN token_expires_at_ms; PRAGMA user_version=5",
                     nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  {
    rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
    CHECK(store.has_session("alice"));
    REQUIRE(store.invitations().invite("alice", "bob", "hi", "", true, 1700000000000).ok());
    bool ok = false;
    store.commit([&ok](bool done) { ok = done; });
    CHECK(ok);
  }
  rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
  CHECK(store.invitations().size() == 1);
  CHECK(store.restored().invitations == 1);
}
