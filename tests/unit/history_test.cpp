// rtm::history: one stream's offsets, per-publisher sequence numbers and limits; reads by
// offset, time and per-publisher position, with the complete flag a recovering subscriber
// relies on; realignment by payload hash when a subscriber's count is off; the bounds on
// all streams.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/history/streams.hpp"

using namespace rtm::history;

namespace {

constexpr std::int64_t kT0 = 1'000'000;

std::vector<std::string> payloads(const Page& page) {
  std::vector<std::string> out;
  for (const auto* e : page.entries) out.push_back(e->payload);
  return out;
}

Position at(const std::string& publisher, std::uint64_t seq, const std::string& last_payload) {
  return Position{publisher, seq, payload_hash(last_payload)};
}

// bob: b1 b2 b3, carol: c1 c2 interleaved: b1 c1 b2 c2 b3 (offsets 1..5).
Stream five() {
  Stream s("e1", Limits{});
  s.append("bob", "b1", kT0);
  s.append("carol", "c1", kT0 + 1);
  s.append("bob", "b2", kT0 + 2);
  s.append("carol", "c2", kT0 + 3);
  s.append("bob", "b3", kT0 + 4);
  return s;
}

}  // namespace

TEST_CASE("history: offsets run over the stream and seqs per publisher") {
  auto s = five();
  CHECK(s.top() == 5);
  CHECK(s.oldest() == 1);
  auto page = s.read(Query{}, kT0 + 5);
  REQUIRE(page.entries.size() == 5);
  CHECK(page.entries[4]->offset == 5);
  CHECK(page.entries[4]->seq == 3);
  CHECK(page.entries[3]->seq == 2);
  CHECK(page.entries[3]->publisher == "carol");
  CHECK(page.complete);
  CHECK_FALSE(page.more);
  CHECK(page.publishers.at("bob").seq == 3);
}

TEST_CASE("history: since an offset, paged forward and backward") {
  auto s = five();
  Query q;
  q.since = 2;
  q.limit = 2;
  auto page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b2", "c2"});
  CHECK(page.more);
  CHECK(page.complete);
  q.after = page.entries.back()->offset;
  page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b3"});
  CHECK_FALSE(page.more);

  Query latest;
  latest.reverse = true;
  latest.limit = 2;
  page = s.read(latest, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b3", "c2"});
  CHECK(page.more);
  latest.before = page.entries.back()->offset;
  page = s.read(latest, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b2", "c1"});
}

TEST_CASE("history: an offset older than what is kept, or of another epoch, is incomplete") {
  Stream s("e1", Limits{3, 300'000, 1 << 20, 1024});
  for (int i = 1; i <= 6; ++i) s.append("bob", "m" + std::to_string(i), kT0 + i);
  CHECK(s.oldest() == 4);
  Query q;
  q.since = 3;  // the next one, 4, is kept
  CHECK(s.read(q, kT0 + 7).complete);
  q.since = 2;  // 3 is gone
  auto page = s.read(q, kT0 + 7);
  CHECK_FALSE(page.complete);
  CHECK(payloads(page) == std::vector<std::string>{"m4", "m5", "m6"});
  q.since = 6;
  CHECK(s.read(q, kT0 + 7).complete);
  q.since = 3;
  q.epoch = "other";
  page = s.read(q, kT0 + 7);
  CHECK_FALSE(page.complete);
  CHECK(page.epoch == "e1");
  CHECK(page.entries.size() == 3);  // another epoch's offsets mean nothing: all kept
}

TEST_CASE("history: entries older than the age limit go, and since_ms knows it") {
  Stream s("e1", Limits{100, 1000, 1 << 20, 1024});
  s.append("bob", "old", kT0);
  s.append("bob", "new", kT0 + 900);
  Query q;
  q.since_ms = kT0 - 1;
  auto page = s.read(q, kT0 + 1500);  // "old" is 1500 ms old now
  CHECK(payloads(page) == std::vector<std::string>{"new"});
  CHECK_FALSE(page.complete);
  q.since_ms = kT0;
  page = s.read(q, kT0 + 1500);
  CHECK(page.complete);
}

TEST_CASE("history: positions per publisher give what each one missed") {
  auto s = five();
  Query q;
  q.epoch = "e1";
  q.positions = {at("bob", 1, "b1"), at("carol", 2, "c2")};
  auto page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b2", "b3"});
  CHECK(page.complete);
  CHECK(page.realigned == 0);
  CHECK(page.publishers.at("carol").seq == 2);
  CHECK(page.publishers.at("carol").hash == payload_hash("c2"));
}

TEST_CASE("history: a count that is off is realigned by the payload hash") {
  auto s = five();
  Query q;
  // It got b2 but counted it as its first (it subscribed between b1 and b2).
  q.positions = {at("bob", 1, "b2")};
  auto page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b3"});
  CHECK(page.realigned == 1);
  CHECK(page.complete);
  // It counted one more than it got (overlap at subscribe): seq 3 but the payload is b2.
  q.positions = {at("bob", 3, "b2")};
  page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b3"});
  // A seq beyond what the gateway read: nothing newer, and nothing lost.
  q.positions = {Position{"bob", 9, std::nullopt}};
  page = s.read(q, kT0 + 5);
  CHECK(page.entries.empty());
  CHECK(page.complete);
  // A payload the stream never had, at a kept seq: incomplete, from that seq on.
  q.positions = {at("bob", 1, "zz")};
  page = s.read(q, kT0 + 5);
  CHECK_FALSE(page.complete);
  CHECK(payloads(page) == std::vector<std::string>{"b2", "b3"});
  // No seq, only the hash: the newest entry with it.
  q.positions = {Position{"bob", std::nullopt, payload_hash("b1")}};
  page = s.read(q, kT0 + 5);
  CHECK(payloads(page) == std::vector<std::string>{"b2", "b3"});
}

TEST_CASE("history: a position whose next message was dropped is incomplete") {
  Stream s("e1", Limits{2, 300'000, 1 << 20, 1024});
  for (int i = 1; i <= 5; ++i) s.append("bob", "m" + std::to_string(i), kT0 + i);
  Query q;
  q.positions = {at("bob", 2, "m2")};
  auto page = s.read(q, kT0 + 6);
  CHECK_FALSE(page.complete);
  CHECK(payloads(page) == std::vector<std::string>{"m4", "m5"});
  q.positions = {at("bob", 3, "m3")};  // m4 is the oldest kept: nothing lost
  CHECK(s.read(q, kT0 + 6).complete);
}

TEST_CASE("history: a gap in the gateway's reading makes older positions incomplete") {
  auto s = five();
  s.mark_gap(kT0 + 10);
  s.append("bob", "b4", kT0 + 20);
  Query q;
  q.since = 5;
  CHECK_FALSE(s.read(q, kT0 + 21).complete);
  q.since = 6;
  CHECK(s.read(q, kT0 + 21).complete);
  q = Query{};
  q.positions = {at("bob", 3, "b3")};
  CHECK_FALSE(s.read(q, kT0 + 21).complete);
  q.positions = {at("bob", 4, "b4")};
  CHECK(s.read(q, kT0 + 21).complete);
}

TEST_CASE("history: a message over the size limit keeps its place without its payload") {
  Stream s("e1", Limits{10, 300'000, 1 << 20, 4});
  s.append("bob", "ok", kT0);
  s.append("bob", "far too big", kT0 + 1);
  CHECK(s.top() == 2);
  CHECK(s.bytes() == 2);
  Query q;
  q.since = 1;
  auto page = s.read(q, kT0 + 2);
  REQUIRE(page.entries.size() == 1);
  CHECK(page.entries[0]->too_large);
  CHECK(page.entries[0]->seq == 2);
  CHECK_FALSE(page.complete);
}

TEST_CASE("history: bytes per stream and in all, streams in all") {
  int epochs = 0;
  Streams streams(TotalLimits{2, 10}, [&] { return "e" + std::to_string(++epochs); });
  Limits per_stream{100, 300'000, 8, 1024};
  streams.append("ch", "a", per_stream, "bob", "12345", kT0);
  streams.append("ch", "a", per_stream, "bob", "6789", kT0 + 1);  // over 8 per stream
  REQUIRE(streams.find("ch", "a"));
  CHECK(streams.find("ch", "a")->size() == 1);
  CHECK(streams.total_bytes() == 4);
  streams.append("ch", "b", per_stream, "bob", "abcdefg", kT0 + 2);  // 11 in all: a's goes
  CHECK(streams.total_bytes() == 7);
  CHECK(streams.find("ch", "a")->size() == 0);
  CHECK(streams.counters().dropped_for_total == 1);
  streams.append("ch", "c", per_stream, "bob", "x", kT0 + 3);  // a third stream: a goes
  CHECK(streams.size() == 2);
  CHECK(streams.find("ch", "a") == nullptr);
  CHECK(streams.counters().evicted_streams == 1);
  CHECK(streams.find("ch", "c")->epoch() == "e3");
  streams.trim(kT0 + 400'000);
  CHECK(streams.total_bytes() == 0);
}
