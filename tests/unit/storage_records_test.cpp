// rtm::storage records: each value written and read back the same, binary-safe, and a
// corrupt record refused with corrupt_record instead of read as something else.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/storage/records.hpp"

using namespace rtm::storage;

namespace {

Metadata sample_metadata() {
  Metadata m;
  m.major_revision = 7;
  m.items["name"] = Item{"name", "Alice", 3, std::string("alice"), 1700000000123};
  m.items["shadow"] =
      Item{"shadow", std::string("{\"t\":21}\n12:34\0end", 18), 7, std::nullopt, std::nullopt};
  m.items["\xe6\x88\xbf"] = Item{"\xe6\x88\xbf", "", 5, std::nullopt, 42};
  m.items["empty-author"] = Item{"empty-author", "x", 6, std::string(""), std::nullopt};
  return m;
}

}  // namespace

TEST_CASE("storage records: metadata round-trips, binary values and optional fields") {
  for (const auto& m : {Metadata{}, sample_metadata()}) {
    const auto bytes = encode_metadata(m);
    CHECK(bytes.rfind("rtm-metadata 1\n", 0) == 0);
    const auto back = decode_metadata(bytes);
    REQUIRE_MESSAGE(back.ok(), (back.ok() ? "" : back.error().message));
    CHECK(*back == m);
  }
}

TEST_CASE("storage records: a metadata with every item removed keeps its major revision") {
  Metadata m;
  m.major_revision = 12;
  const auto back = decode_metadata(encode_metadata(m));
  REQUIRE(back.ok());
  CHECK(back->major_revision == 12);
  CHECK(back->items.empty());
}

TEST_CASE("storage records: states round-trip") {
  const StateItems states{{"mood", "happy"}, {"pos", std::string("1:2\n\0", 5)}, {"z", ""}};
  for (const auto& s : {StateItems{}, states}) {
    const auto back = decode_states(encode_states(s));
    REQUIRE(back.ok());
    CHECK(*back == s);
  }
}

TEST_CASE("storage records: locks round-trip, and restored locks keep counting down") {
  Locks locks;
  REQUIRE(locks.set_lock("door", 10).ok());
  REQUIRE(locks.set_lock("gate", 300).ok());
  REQUIRE(locks.acquire("door", "alice", false, 1000).ok());
  REQUIRE(locks.acquire("door", "bob", true, 1000).ok());
  REQUIRE(locks.acquire("door", "carol", true, 1000).ok());
  locks.holder_session_ended("alice", 2000);

  const auto bytes = encode_locks(locks.records());
  CHECK(bytes.rfind("rtm-locks 1\n", 0) == 0);
  const auto back = decode_locks(bytes);
  REQUIRE_MESSAGE(back.ok(), (back.ok() ? "" : back.error().message));
  CHECK(*back == locks.records());

  Locks restored(LockLimits{}, *back);
  CHECK(restored.next_deadline() == std::optional<std::int64_t>(12000));
  const auto events = restored.due(12000);
  REQUIRE(events.size() == 2);
  CHECK(events[1].kind == LockEventKind::acquired);
  CHECK(events[1].uid == "bob");
  CHECK(restored.find("door")->waiters == std::vector<std::string>{"carol"});
}

TEST_CASE("storage records: corrupt records are refused") {
  const auto good = encode_metadata(sample_metadata());
  struct Case {
    const char* name;
    std::string bytes;
  };
  const Case metadata_cases[] = {
      {"empty", ""},
      {"another kind", encode_states({})},
      {"a newer version",
       "rtm-metadata 2\n1:0"
       "1:0"},
      {"truncated", good.substr(0, good.size() - 3)},
      {"bytes after the last field", good + "1:x"},
      {"a length that is not a number", "rtm-metadata 1\nx:0"},
      {"a field longer than the record", "rtm-metadata 1\n9:0"},
      {"a count past the record",
       "rtm-metadata 1\n1:5"
       "9:999999999"},
      {"a negative count",
       "rtm-metadata 1\n1:5"
       "2:-1"},
      {"a negative major revision",
       "rtm-metadata 1\n2:-1"
       "1:0"},
      {"an item revision above the major revision",
       "rtm-metadata 1\n1:1"
       "1:1"
       "1:k"
       "1:v"
       "1:2"
       "1:0"
       "1:0"},
      {"an item revision 0",
       "rtm-metadata 1\n1:1"
       "1:1"
       "1:k"
       "1:v"
       "1:0"
       "1:0"
       "1:0"},
      {"a key twice",
       "rtm-metadata 1\n1:2"
       "1:2"
       "1:k"
       "1:v"
       "1:1"
       "1:0"
       "1:0"
       "1:k"
       "1:v"
       "1:2"
       "1:0"
       "1:0"},
      {"a flag that is not 0 or 1",
       "rtm-metadata 1\n1:1"
       "1:1"
       "1:k"
       "1:v"
       "1:1"
       "1:2"
       "1:0"},
  };
  for (const auto& c : metadata_cases) {
    CAPTURE(c.name);
    const auto r = decode_metadata(c.bytes);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::corrupt_record);
    CHECK(r.error().message.find("metadata") != std::string::npos);
  }
  const Case lock_cases[] = {
      {"waiters on a free lock",
       "rtm-locks 1\n1:1"
       "1:d"
       "2:10"
       "1:0"
       "1:0"
       "1:1"
       "1:b"},
      {"a deadline nobody holds",
       "rtm-locks 1\n1:1"
       "1:d"
       "2:10"
       "1:0"
       "1:1"
       "2:99"
       "1:0"},
      {"no ttl",
       "rtm-locks 1\n1:1"
       "1:d"
       "1:0"
       "1:0"
       "1:0"
       "1:0"},
      {"a name twice",
       "rtm-locks 1\n1:2"
       "1:d"
       "2:10"
       "1:0"
       "1:0"
       "1:0"
       "1:d"
       "2:10"
       "1:0"
       "1:0"
       "1:0"},
  };
  for (const auto& c : lock_cases) {
    CAPTURE(c.name);
    const auto r = decode_locks(c.bytes);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::corrupt_record);
  }
  CHECK(decode_states("rtm-states 1\n1:2"
                      "1:k"
                      "1:v"
                      "1:k"
                      "1:w")
            .error()
            .code == ErrorCode::corrupt_record);
}
