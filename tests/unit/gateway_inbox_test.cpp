// Peer messages for offline users (issue 16) without a broker: the InboxStore seam (memory
// and sqlite: order, limits, expiry, ids across restarts, the schema 4 to 5 migration), and
// the inbox service in a Core as the Gateway wires it (rtm_harness.hpp): direct messages
// kept only for offline recipients from live senders, delivery right after login,
// send_message with receipts, inbox_history with ack, metrics.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "rtm/gateway/inbox_store.hpp"
#include "rtm/gateway/metrics.hpp"
#include "rtm/gateway/sqlite_store.hpp"
#include "rtm_harness.hpp"

namespace {

using rtm::test::text;

using rtm::gateway::InboxLimits;
using rtm::gateway::MemoryInboxStore;
using rtm::gateway::PeerMessage;
using rtm::test::RtmHarness;
using Lines = std::vector<std::string>;

constexpr std::int64_t kT0 = 1700000000000;

PeerMessage message(rtm::gateway::InboxStore& store, const std::string& from, const std::string& to,
                    const std::string& payload, std::int64_t now = kT0) {
  PeerMessage m;
  m.id = store.next_id(now);
  m.from = from;
  m.to = to;
  m.ts_ms = now;
  m.payload = payload;
  return m;
}

Lines payloads(const std::vector<PeerMessage>& list) {
  Lines out;
  for (const auto& m : list) out.push_back(m.payload);
  return out;
}

rtm::gateway::Message direct(const std::string& to, const std::string& from,
                             const std::string& payload) {
  return rtm::gateway::Message{"rtm/u/" + to + "/inbox/" + from, payload, 1, false};
}

// The `message` events sent to uid from `from` on, as "from:type:message:offline".
Lines message_events(const RtmHarness& h, const std::string& uid, std::size_t from = 0) {
  Lines out;
  for (auto i : h.sent_to("rtm/u/" + uid + "/events/message", from)) {
    const auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    CHECK(h.outbox.sent[i].qos == 1);
    CHECK(!text(e, "id").empty());
    CHECK(e["ts"].IsInt64());
    out.push_back(text(e, "from") + ":" + text(e, "type") + ":" + text(e, "message") + ":" +
                  (e["offline"].GetBool() ? "offline" : "live"));
  }
  return out;
}

// The receipts sent to uid from `from` on, as "to:status".
Lines receipts(const RtmHarness& h, const std::string& uid, std::size_t from = 0) {
  Lines out;
  for (auto i : h.sent_to("rtm/u/" + uid + "/events/receipt", from)) {
    const auto e = rtm::test::parse_json(h.outbox.sent[i].payload);
    CHECK(!text(e, "id").empty());
    out.push_back(text(e, "to") + ":" + text(e, "status"));
  }
  return out;
}

std::string metrics(RtmHarness& h) {
  rtm::gateway::MetricsWriter out;
  h.core->write_all_metrics(out);
  return out.text();
}

}  // namespace

TEST_CASE("inbox store: messages per user in order, taken through an id") {
  MemoryInboxStore store;
  for (const char* p : {"a", "b", "c"}) REQUIRE(store.put(message(store, "alice", "bob", p)));
  REQUIRE(store.put(message(store, "alice", "carol", "x")));
  CHECK(store.count("bob") == 3);
  CHECK(store.user_count() == 2);
  const auto all = store.list("bob", 0, 10);
  CHECK(payloads(all) == Lines{"a", "b", "c"});
  CHECK(all[0].id < all[1].id);
  CHECK(payloads(store.list("bob", all[0].id, 10)) == Lines{"b", "c"});
  CHECK(payloads(store.list("bob", 0, 2)) == Lines{"a", "b"});
  CHECK(payloads(store.take("bob", all[1].id)) == Lines{"a", "b"});
  CHECK(payloads(store.list("bob", 0, 10)) == Lines{"c"});
  CHECK(store.take("nobody", UINT64_MAX).empty());
  CHECK(store.message_count() == 2);
}

TEST_CASE("inbox store: ids grow with time and never repeat") {
  MemoryInboxStore store;
  const auto a = store.next_id(kT0);
  const auto b = store.next_id(kT0);
  const auto c = store.next_id(kT0 - 60000);  // the clock went back
  const auto d = store.next_id(kT0 + 1);
  CHECK(a < b);
  CHECK(b < c);
  CHECK(c < d);
  MemoryInboxStore later;  // a restart that lost the counter still starts above
  CHECK(later.next_id(kT0 + 2) > d);
}

TEST_CASE("inbox store: limits drop a user's oldest, refuse big messages and a full store") {
  InboxLimits limits;
  limits.max_messages_per_user = 2;
  limits.max_message_bytes = 10;
  limits.max_total_bytes = 3 * (rtm::gateway::kInboxRecordOverhead + 10 + 8);
  MemoryInboxStore store(limits);
  REQUIRE(store.put(message(store, "alice", "bob", "1")));
  REQUIRE(store.put(message(store, "alice", "bob", "2")));
  auto third = store.put(message(store, "alice", "bob", "3"));
  REQUIRE(third);
  CHECK(payloads(third->evicted) == Lines{"1"});
  CHECK(payloads(store.list("bob", 0, 10)) == Lines{"2", "3"});

  auto big = store.put(message(store, "alice", "carol", std::string(11, 'x')));
  REQUIRE_FALSE(big);
  CHECK(big.error().code == rtm::gateway::ErrorCode::limit_inbox);
  CHECK(big.error().message.find("inbox.max_message_bytes") != std::string::npos);

  REQUIRE(store.put(message(store, "alice", "carol", std::string(10, 'x'))));
  auto full = store.put(message(store, "alice", "dave", std::string(10, 'x')));
  REQUIRE_FALSE(full);
  CHECK(full.error().message.find("inbox.max_total_bytes") != std::string::npos);
  CHECK(store.count("dave") == 0);
  // bob's own oldest makes room for bob's next one even when the store is full.
  CHECK(store.put(message(store, "alice", "bob", "4")));
  CHECK(payloads(store.list("bob", 0, 10)) == Lines{"3", "4"});
}

TEST_CASE("inbox store: expired messages go, oldest first") {
  InboxLimits limits;
  limits.max_age_ms = 1000;
  MemoryInboxStore store(limits);
  REQUIRE(store.put(message(store, "alice", "bob", "old", kT0)));
  REQUIRE(store.put(message(store, "alice", "carol", "new", kT0 + 500)));
  CHECK(store.next_expiry() == kT0 + 1000);
  CHECK(store.expire(kT0 + 999).empty());
  CHECK(payloads(store.expire(kT0 + 1000)) == Lines{"old"});
  CHECK(store.next_expiry() == kT0 + 1500);
  CHECK(payloads(store.expire(kT0 + 5000)) == Lines{"new"});
  CHECK_FALSE(store.next_expiry());
  CHECK(store.bytes() == 0);
}

TEST_CASE("inbox store: sqlite keeps messages and the id counter across a restart") {
  rtm::test::SqliteStateDir state;
  std::uint64_t last = 0;
  {
    rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
    auto& inbox = store.inbox();
    auto m = message(inbox, "alice", "bob", std::string("\x00\xff", 2));
    m.binary = true;
    m.receipt = true;
    REQUIRE(inbox.put(m));
    REQUIRE(inbox.put(message(inbox, "alice", "bob", "second")));
    REQUIRE(inbox.put(message(inbox, "alice", "carol", "gone")));
    inbox.take("carol", UINT64_MAX);
    last = inbox.next_id(kT0);
    bool ok = false;
    store.commit([&ok](bool done) { ok = done; });
    CHECK(ok);
  }
  rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
  CHECK(store.restored().inbox_messages == 2);
  const auto list = store.inbox().list("bob", 0, 10);
  REQUIRE(list.size() == 2);
  CHECK(list[0].payload == std::string("\x00\xff", 2));
  CHECK(list[0].binary);
  CHECK(list[0].receipt);
  CHECK(list[0].from == "alice");
  CHECK(list[0].ts_ms == kT0);
  CHECK(list[1].payload == "second");
  CHECK(store.inbox().count("carol") == 0);
  CHECK(store.inbox().next_id(kT0) > last);
}

TEST_CASE("inbox store: a schema 4 state file is migrated in place") {
  rtm::test::SqliteStateDir state;
  {
    rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
    store.start_session("alice", "s1", kT0, kT0 + 3600000);
    store.commit([](bool) {});
  }
  {  // what a gateway before the inbox wrote: no inbox (or later) tables, user_version 4
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(state.config.state.path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "DROP TABLE inbox; DROP TABLE inbox_meta; DROP TABLE invitations; "
                         "DROP TABLE message_channels; "
                         "ALTER TABLE members DROP COLUMN token_expires_at_ms; "
                         "PRAGMA user_version=4",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  rtm::gateway::SqliteStore store(state.config.state, state.config.limits, 30000);
  CHECK(store.has_session("alice"));
  auto& inbox = store.inbox();
  REQUIRE(inbox.put(message(inbox, "alice", "bob", "after the migration")));
  bool ok = false;
  store.commit([&ok](bool done) { ok = done; });
  CHECK(ok);
}

TEST_CASE("inbox: direct messages to an offline user from a live sender arrive after login") {
  RtmHarness h;
  h.login("alice");
  h.deliver(direct("bob", "alice", "one"));
  h.deliver(direct("bob", "alice", std::string("\x01\xfe", 2)));
  h.deliver(direct("bob", "alice", "three"));
  h.deliver(direct("bob", "mallory", "no session, not kept"));
  h.deliver(direct("bob", "bad+name", "not kept"));
  auto retained = direct("bob", "alice", "retained, not kept");
  retained.retained = true;
  h.deliver(retained);
  CHECK(h.sent_to("rtm/u/bob/events/message").empty());

  const auto mark = h.outbox.sent.size();
  h.login("bob");
  CHECK(message_events(h, "bob", mark) ==
        Lines{"alice:text:one:offline", "alice:binary:Af4=:offline", "alice:text:three:offline"});
  const auto ids = h.sent_to("rtm/u/bob/events/message", mark);
  CHECK(text(rtm::test::parse_json(h.outbox.sent[ids[0]].payload), "id") <
        text(rtm::test::parse_json(h.outbox.sent[ids[1]].payload), "id"));
  CHECK(h.ok("bob", "inbox_history", "")["messages"].Size() == 0);

  // bob online: the broker delivered it; the gateway keeps nothing.
  h.deliver(direct("bob", "alice", "live"));
  CHECK(h.ok("bob", "inbox_history", "")["messages"].Size() == 0);
  const auto text_metrics = metrics(h);
  CHECK(text_metrics.find("rtm_inbox_stored_total{via=\"direct\"} 3") != std::string::npos);
  CHECK(text_metrics.find("rtm_inbox_not_stored_total{reason=\"recipient_online\"} 1") !=
        std::string::npos);
  CHECK(text_metrics.find("rtm_inbox_not_stored_total{reason=\"sender_without_session\"} 1") !=
        std::string::npos);
  CHECK(text_metrics.find("rtm_inbox_delivered_total{how=\"login\"} 3") != std::string::npos);

  // A later login has nothing more.
  h.ok("bob", "logout", "");
  const auto again = h.outbox.sent.size();
  h.login("bob");
  CHECK(message_events(h, "bob", again).empty());
}

TEST_CASE("inbox: send_message delivers live or keeps, with receipts") {
  RtmHarness h;
  h.login("alice");
  h.login("carol");
  auto live = h.ok("alice", "send_message", "", R"({"to":"carol","message":"hi","receipt":true})");
  CHECK(text(live, "status") == "delivered");
  CHECK(message_events(h, "carol") == Lines{"alice:text:hi:live"});
  CHECK(receipts(h, "alice") == Lines{"carol:delivered"});

  auto kept = h.ok("alice", "send_message", "",
                   R"({"to":"bob","message":"aGk=","type":"binary","receipt":true})");
  CHECK(text(kept, "status") == "stored");
  CHECK(text(kept, "id") > text(live, "id"));
  CHECK(receipts(h, "alice") == Lines{"carol:delivered", "bob:stored"});
  h.ok("alice", "send_message", "", R"({"to":"bob","message":"no receipt"})");
  CHECK(h.error("alice", "send_message", "", R"({"to":"bob","message":"x","store":false})") ==
        "PEER_OFFLINE");
  CHECK(h.error("alice", "send_message", "", R"({"to":"bob","message":"!","type":"binary"})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "send_message", "", R"({"to":"bob","message":"x","type":"json"})") ==
        "INVALID_PARAMETER");
  CHECK(h.error("alice", "send_message", "", R"({"to":"b/b","message":"x"})") == "INVALID_NAME");
  CHECK(h.error("alice", "send_message", "", R"({"message":"x"})") == "MISSING_PARAMETER");
  CHECK(h.error("mallory", "send_message", "", R"({"to":"bob","message":"x"})") == "NOT_LOGGED_IN");
  const std::string big(32769, 'x');
  CHECK(h.error("alice", "send_message", "", R"({"to":"bob","message":")" + big + "\"}") ==
        "LIMIT_INBOX");

  const auto mark = h.outbox.sent.size();
  h.login("bob");
  // Sent as binary, it stays binary even though "hi" is text.
  CHECK(message_events(h, "bob", mark) ==
        Lines{"alice:binary:aGk=:offline", "alice:text:no receipt:offline"});
  CHECK(receipts(h, "alice", mark) == Lines{"bob:delivered"});
}

TEST_CASE("inbox: inbox_history pages and acknowledges when delivery at login is off") {
  auto config = rtm::test::harness_config();
  config.inbox.deliver_on_login = false;
  RtmHarness h(config);
  h.login("alice");
  for (int i = 0; i < 5; ++i) {
    h.ok("alice", "send_message", "",
         R"({"to":"bob","message":"m)" + std::to_string(i) + R"(","receipt":true})");
  }
  h.login("bob");
  CHECK(h.sent_to("rtm/u/bob/events/message").empty());
  auto page = h.ok("bob", "inbox_history", "limit=2");
  REQUIRE(page["messages"].Size() == 2);
  CHECK(page["more"].GetBool());
  CHECK(text(page["messages"][0], "message") == "m0");
  CHECK(page["messages"][0]["offline"].GetBool());
  const std::string second = text(page["messages"][1], "id");
  auto next = h.ok("bob", "inbox_history", "limit=2&after=" + second);
  CHECK(text(next["messages"][0], "message") == "m2");
  const auto mark = h.outbox.sent.size();
  auto acked = h.ok("bob", "inbox_history", "", R"({"ack":")" + second + R"("})");
  CHECK(acked["acked"].GetInt() == 2);
  CHECK(acked["messages"].Size() == 3);
  CHECK_FALSE(acked["more"].GetBool());
  CHECK(receipts(h, "alice", mark) == Lines{"bob:delivered", "bob:delivered"});
  CHECK(h.error("bob", "inbox_history", "limit=501") == "INVALID_PARAMETER");
  CHECK(h.error("bob", "inbox_history", "uid=alice") == "FORBIDDEN");
  // The server (HTTP API) reads any user's inbox.
  auto server = h.core->invoke("inbox_history", R"({"uid":"bob","limit":1})");
  REQUIRE(server);
  CHECK(server.value()["messages"].Size() == 1);
  CHECK_FALSE(h.core->invoke("inbox_history", "{}"));
}

TEST_CASE("inbox: many kept messages are delivered over several turns, in order") {
  auto config = rtm::test::harness_config();
  config.inbox.max_messages_per_user = 1000;
  RtmHarness h(config);
  h.login("alice");
  const std::size_t n = rtm::gateway::kInboxDeliverPerTurn * 2 + 7;
  for (std::size_t i = 0; i < n; ++i) h.deliver(direct("bob", "alice", std::to_string(i)));
  const auto mark = h.outbox.sent.size();
  h.login("bob");
  const auto events = message_events(h, "bob", mark);
  REQUIRE(events.size() == n);
  for (std::size_t i = 0; i < n; ++i)
    CHECK(events[i] == "alice:text:" + std::to_string(i) + ":offline");
}

TEST_CASE("inbox: limits refuse and count, old messages expire, inbox.offline off keeps none") {
  auto config = rtm::test::harness_config();
  config.inbox.max_message_bytes = 8;
  config.inbox.max_age_s = 60;
  RtmHarness h(config);
  h.login("alice");
  h.deliver(direct("bob", "alice", "too big for it"));
  h.deliver(direct("bob", "alice", "fits"));
  CHECK(metrics(h).find("rtm_inbox_refused_total{limit=\"inbox.max_message_bytes\"} 1") !=
        std::string::npos);
  CHECK(h.core->invoke("inbox_history", R"({"uid":"bob"})").value()["messages"].Size() == 1);
  h.advance_to(h.now + 61000);
  CHECK(h.core->invoke("inbox_history", R"({"uid":"bob"})").value()["messages"].Size() == 0);
  CHECK(metrics(h).find("rtm_inbox_expired_total 1") != std::string::npos);

  auto off = rtm::test::harness_config();
  off.inbox.offline = false;
  RtmHarness h2(off);
  h2.login("alice");
  h2.deliver(direct("bob", "alice", "lost"));
  CHECK(h2.error("alice", "send_message", "", R"({"to":"bob","message":"x"})") == "PEER_OFFLINE");
  CHECK(h2.core->invoke("inbox_history", R"({"uid":"bob"})").value()["messages"].Size() == 0);
  bool subscribed = false;
  for (const auto& f : h2.core->subscriptions()) subscribed = subscribed || f == "rtm/u/+/inbox/+";
  CHECK_FALSE(subscribed);
}

TEST_CASE("inbox: kept messages survive a gateway restart on sqlite and are delivered once") {
  rtm::test::SqliteStateDir state;
  RtmHarness h(state.config);
  h.login("alice");
  h.deliver(direct("bob", "alice", "before"));
  h.ok("alice", "send_message", "", R"({"to":"bob","message":"also","receipt":true})");
  h.restart(h.now + 1000);
  const auto mark = h.outbox.sent.size();
  h.login("bob");
  CHECK(message_events(h, "bob", mark) ==
        Lines{"alice:text:before:offline", "alice:text:also:offline"});
  CHECK(receipts(h, "alice", mark) == Lines{"bob:delivered"});
  h.restart(h.now + 1000);
  const auto again = h.outbox.sent.size();
  h.ok("bob", "logout", "");
  h.login("bob");
  CHECK(message_events(h, "bob", again).empty());
}
