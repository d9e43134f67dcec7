// The cluster's change log entries: the framing the commit script writes, read back here,
// and the answers that travel in them; hostile input is an error value, never a crash.
#include <doctest/doctest.h>

#include <string>

#include "rtm/gateway/log_entry.hpp"

using namespace rtm::gateway;
using namespace rtm::gateway::cluster;

TEST_CASE("log entry: rows and answers survive the framing, binary and empty values included") {
  StoredAnswer answer{"alice", "7/a:b", 0xfedcba9876543210ULL, "{\"msg_id\":\"7\"}", 1234};
  auto [field, value] = encode_answer(answer);
  const std::string binary("\0\x01\xff:9:", 6);
  const auto framed =
      frame({{"s:alice", "{\"v\":1}"}, {"m:room/bob", ""}, {"i:7", binary}, {field, value}});
  auto entry = parse_entry(framed);
  REQUIRE(entry);
  REQUIRE(entry->rows.size() == 3);
  CHECK(entry->rows[0].field == "s:alice");
  CHECK(entry->rows[0].value == std::optional<std::string>("{\"v\":1}"));
  CHECK_FALSE(entry->rows[1].value);  // deleted
  CHECK(entry->rows[2].value == std::optional<std::string>(binary));
  REQUIRE(entry->answers.size() == 1);
  CHECK(entry->answers[0].uid == "alice");
  CHECK(entry->answers[0].msg_id == "7/a:b");
  CHECK(entry->answers[0].fingerprint == answer.fingerprint);
  CHECK(entry->answers[0].payload == answer.payload);
  CHECK(entry->answers[0].at_ms == 1234);
  CHECK(parse_entry("")->rows.empty());
}

TEST_CASE("log entry: bad framing and bad answers are error values") {
  for (const std::string bad : {"x", "3:ab", "3:abc", "99999999999:a", "-1:a0:", "2:ab2:c",
                                "3:a:b1:", "1:a", ":a0:", "4:a:/x0:"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_entry(bad));
  }
  CHECK_FALSE(decode_answer("a:alice", "1:2:x"));     // no msg_id
  CHECK_FALSE(decode_answer("a:/m", "1:2:x"));        // no uid
  CHECK_FALSE(decode_answer("a:alice/m", "zz:2:x"));  // fingerprint not hex
  CHECK_FALSE(decode_answer("a:alice/m", "1:x:x"));   // time not a number
  CHECK_FALSE(decode_answer("a:alice/m", "1"));       // missing parts
  CHECK(decode_answer("a:alice/m", "1:2:"));          // an empty payload is a payload
}
