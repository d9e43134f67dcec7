// Table-driven tests of rtm/topics/names.hpp: RTM names, UTF-8, MQTT topic names and filters,
// and filter matching.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "rtm/topics/names.hpp"

namespace {

using rtm::topics::filter_matches;
using rtm::topics::is_valid_utf8;
using rtm::topics::name_error;
using rtm::topics::topic_filter_error;
using rtm::topics::topic_name_error;
using rtm::topics::utf8_error_offset;

// Printable form of a test input for failure messages: escapes bytes outside printable ASCII
// and shortens huge inputs.
std::string show(const std::string& text) {
  std::string shown = "\"";
  for (std::size_t i = 0; i < text.size() && i < 80; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7F && byte != '\\') {
      shown.push_back(static_cast<char>(byte));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(byte));
      shown += escaped;
    }
  }
  shown += "\"";
  if (text.size() > 80) shown += "... (" + std::to_string(text.size()) + " bytes)";
  return shown;
}

std::string repeat(const std::string& part, std::size_t times, const std::string& separator = "") {
  std::string out;
  out.reserve((part.size() + separator.size()) * times);
  for (std::size_t i = 0; i < times; ++i) {
    if (i > 0) out += separator;
    out += part;
  }
  return out;
}

// Expected error text, or "" when the input is valid.
std::string error_or_empty(const std::optional<std::string>& error) {
  return error.value_or("");
}

}  // namespace

TEST_CASE("name_error accepts valid names and explains invalid ones") {
  struct Case {
    std::string name;
    std::string what;
    std::string expected;  // "" when valid
  };
  const std::vector<Case> cases = {
      {"alice", "uid", ""},
      {"a", "uid", ""},
      {"room-42", "channel", ""},
      {"input", "topic", ""},
      {std::string(64, 'a'), "uid", ""},
      {"!%&'(),-.:;<=>?@[]^_`{|}~09AZaz", "uid", ""},
      {"*", "channel",
       "channel contains '*' at byte 0 (a wildcard on AMQP-based brokers such as RabbitMQ)"},
      {"room*", "channel",
       "channel contains '*' at byte 4 (a wildcard on AMQP-based brokers such as RabbitMQ)"},
      {std::string(65, 'a'), "uid", "uid must be 1-64 bytes, got 65"},
      {std::string(70, 'c'), "channel", "channel must be 1-64 bytes, got 70"},
      {"", "topic", "topic must be 1-64 bytes, got 0"},
      {std::string(70000, 'a'), "uid", "uid must be 1-64 bytes, got 70000"},
      {"abc/d", "channel", "channel contains '/' at byte 3"},
      {"a+", "uid", "uid contains '+' at byte 1"},
      {"#", "uid", "uid contains '#' at byte 0"},
      {"$SYS", "uid", "uid contains '$' at byte 0"},
      {"say\"hi\"", "uid", "uid contains '\"' at byte 3"},
      {"back\\slash", "uid", "uid contains '\\' at byte 4"},
      {"two words", "uid", "uid contains a space at byte 3"},
      {std::string("nul\0", 4), "uid", "uid contains control character 0x00 at byte 3"},
      {"tab\there", "uid", "uid contains control character 0x09 at byte 3"},
      {"line\n", "uid", "uid contains control character 0x0a at byte 4"},
      {"del\x7f", "uid", "uid contains control character 0x7f at byte 3"},
      {"caf\xc3\xa9", "uid",
       "uid contains non-ASCII byte 0xc3 at byte 3 (names are printable ASCII)"},
      {"\xff", "uid", "uid contains non-ASCII byte 0xff at byte 0 (names are printable ASCII)"},
      {"\x80", "uid", "uid contains non-ASCII byte 0x80 at byte 0 (names are printable ASCII)"},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.name));
    CHECK(error_or_empty(name_error(c.name, c.what)) == c.expected);
    CHECK(rtm::topics::is_valid_name(c.name) == c.expected.empty());
  }
}

TEST_CASE("broker profiles: '.' is refused where the broker makes it a level separator") {
  using rtm::topics::BrokerProfile;
  using rtm::topics::name_rules_for;
  const auto rabbit = name_rules_for(BrokerProfile::rabbitmq);
  const auto generic = name_rules_for(BrokerProfile::generic);
  for (auto profile : {BrokerProfile::mosquitto, BrokerProfile::emqx}) {
    CAPTURE(rtm::topics::broker_profile_name(profile));
    CHECK_FALSE(name_error("room.42", "channel", name_rules_for(profile)));
  }
  CHECK(error_or_empty(name_error("room.42", "channel", rabbit)) ==
        "channel contains '.' at byte 4 (broker.profile is rabbitmq: RabbitMQ turns '.' in a "
        "topic into a level separator)");
  CHECK(error_or_empty(name_error(".", "uid", generic)) ==
        "uid contains '.' at byte 0 (broker.profile is generic: RabbitMQ turns '.' in a topic "
        "into a level separator)");
  // The general rules come first, and names without '.' pass on every broker.
  CHECK(error_or_empty(name_error("a+b.c", "topic", rabbit)) == "topic contains '+' at byte 1");
  // A '.' in a request topic arrives as '/' there: the refusal says so.
  CHECK(error_or_empty(name_error("room/42", "channel", rabbit)) ==
        "channel contains '/' at byte 4 (broker.profile is rabbitmq: RabbitMQ turns '.' in a "
        "topic into a level separator, and names may not hold '.')");
  CHECK(error_or_empty(name_error("room/42", "channel", name_rules_for(BrokerProfile::emqx))) ==
        "channel contains '/' at byte 4");
  CHECK_FALSE(name_error("room-42_x:y", "channel", rabbit));
  // Profiles by name, as broker.profile gives them.
  for (auto name : {"mosquitto", "emqx", "rabbitmq", "generic"}) {
    const auto profile = rtm::topics::parse_broker_profile(name);
    REQUIRE(profile);
    CHECK(rtm::topics::broker_profile_name(*profile) == name);
  }
  CHECK_FALSE(rtm::topics::parse_broker_profile("RabbitMQ"));
  CHECK_FALSE(rtm::topics::parse_broker_profile(""));
}

TEST_CASE("name_error calls the thing name by default") {
  CHECK(error_or_empty(name_error("a/b")) == "name contains '/' at byte 1");
}

TEST_CASE("name_error accepts exactly the printable ASCII bytes that are not forbidden") {
  const std::string forbidden = "/+#$\"\\*";
  for (int value = 0; value < 256; ++value) {
    const char byte = static_cast<char>(value);
    const bool printable = value >= 0x21 && value <= 0x7E;
    const bool expected_valid = printable && forbidden.find(byte) == std::string::npos;
    const std::string name = std::string("ab") + byte + "cd";
    CAPTURE(value);
    CHECK(rtm::topics::is_valid_name(name) == expected_valid);
    // The reason always points at the offending byte.
    if (!expected_valid) {
      const std::string error = error_or_empty(name_error(name, "uid"));
      CHECK(error.find("at byte 2") != std::string::npos);
    }
  }
}

TEST_CASE("UTF-8 validation follows Unicode's well-formed byte sequences") {
  struct Case {
    std::string text;
    std::optional<std::size_t> bad_offset;  // nullopt when valid
  };
  const std::vector<Case> cases = {
      {"", std::nullopt},
      {"plain ascii", std::nullopt},
      {std::string("nul\0inside", 10), std::nullopt},  // U+0000 is valid UTF-8
      {"\xc3\xa9", std::nullopt},                      // U+00E9
      {"\xc2\x80", std::nullopt},                      // U+0080, smallest 2-byte
      {"\xdf\xbf", std::nullopt},                      // U+07FF
      {"\xe0\xa0\x80", std::nullopt},                  // U+0800, smallest 3-byte
      {"\xe2\x82\xac", std::nullopt},                  // U+20AC euro
      {"\xed\x9f\xbf", std::nullopt},                  // U+D7FF, just below surrogates
      {"\xee\x80\x80", std::nullopt},                  // U+E000, just above surrogates
      {"\xef\xbf\xbf", std::nullopt},                  // U+FFFF
      {"\xf0\x90\x80\x80", std::nullopt},              // U+10000, smallest 4-byte
      {"\xf0\x9d\x84\x9e", std::nullopt},              // U+1D11E
      {"\xf4\x8f\xbf\xbf", std::nullopt},              // U+10FFFF, the last code point
      {"\xc0\x80", 0},                                 // overlong U+0000
      {"\xc1\xbf", 0},                                 // overlong U+007F
      {"\xe0\x80\x80", 0},                             // overlong 3-byte
      {"\xe0\x9f\xbf", 0},                             // overlong U+07FF
      {"\xf0\x80\x80\x80", 0},                         // overlong 4-byte
      {"\xf0\x8f\xbf\xbf", 0},                         // overlong U+FFFF
      {"\xed\xa0\x80", 0},                             // U+D800 high surrogate
      {"\xed\xbf\xbf", 0},                             // U+DFFF low surrogate
      {"\xed\xa0\xbd\xed\xb2\xa9", 0},                 // CESU-8 surrogate pair
      {"\xf4\x90\x80\x80", 0},                         // U+110000
      {"\xf5\x80\x80\x80", 0},
      {"\xf8\x88\x80\x80\x80", 0},  // old 5-byte form
      {"\xfe", 0},
      {"\xff", 0},
      {"abc\xff", 3},
      {"\x80", 0},  // stray continuation byte
      {"a\xbf", 1},
      {"ab\xc3", 2},        // truncated 2-byte
      {"a\xe2\x82", 1},     // truncated 3-byte
      {"\xf0\x9d\x84", 0},  // truncated 4-byte
      {"\xc3\x28", 0},      // bad continuation
      {"a\xe2\x82\x28", 1},
      {"ok\xc3\xa9\xf0\x9d\x84\x9e\xe2\x28\xa1", 8},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.text));
    CHECK(utf8_error_offset(c.text) == c.bad_offset);
    CHECK(is_valid_utf8(c.text) == !c.bad_offset.has_value());
  }
}

TEST_CASE("topic_name_error follows MQTT 3.1.1") {
  struct Case {
    std::string topic;
    std::string expected;  // "" when valid
  };
  const std::vector<Case> cases = {
      {"a", ""},
      {"a/b", ""},
      {"/", ""},
      {"a//b", ""},
      {"/leading/and/trailing/", ""},
      {"$SYS/broker/uptime", ""},
      {"rtm/req/alice/im://modulus/remove_feeds_member?msg_id=1002", ""},
      {"caf\xc3\xa9 \xe2\x82\xac", ""},
      {std::string(65535, 'a'), ""},
      {repeat("a", 10000, "/"), ""},
      {"", "topic name is empty"},
      {std::string(65536, 'a'), "topic name must be at most 65535 bytes, got 65536"},
      {std::string(70000, 'a'), "topic name must be at most 65535 bytes, got 70000"},
      {"a+b", "topic name contains '+' at byte 1 (wildcards are only allowed in filters)"},
      {"a/+", "topic name contains '+' at byte 2 (wildcards are only allowed in filters)"},
      {"a/#", "topic name contains '#' at byte 2 (wildcards are only allowed in filters)"},
      {std::string("a\0b", 3), "topic name contains U+0000 at byte 1"},
      {"a/\xff", "topic name is not valid UTF-8 at byte 2"},
      {"\xc0\x80", "topic name is not valid UTF-8 at byte 0"},
      {"x\xed\xa0\x80", "topic name is not valid UTF-8 at byte 1"},
      {"ab\xe2\x82", "topic name is not valid UTF-8 at byte 2"},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.topic));
    CHECK(error_or_empty(topic_name_error(c.topic)) == c.expected);
  }
}

TEST_CASE("topic_filter_error allows wildcards only as whole levels") {
  struct Case {
    std::string filter;
    std::string expected;  // "" when valid
  };
  const std::vector<Case> cases = {
      {"#", ""},
      {"+", ""},
      {"a/#", ""},
      {"+/#", ""},
      {"+/+", ""},
      {"/+", ""},
      {"a/+/b", ""},
      {"a//b", ""},
      {"$SYS/#", ""},
      {"rtm/req/+/#", ""},
      {repeat("+", 10000, "/") + "/#", ""},
      {"", "topic filter is empty"},
      {std::string(70000, 'a'), "topic filter must be at most 65535 bytes, got 70000"},
      {std::string("a/\0", 3), "topic filter contains U+0000 at byte 2"},
      {"a/\xf4\x90\x80\x80", "topic filter is not valid UTF-8 at byte 2"},
      {"a+", "topic filter has '+' at byte 1 that does not fill its whole level"},
      {"+a", "topic filter has '+' at byte 0 that does not fill its whole level"},
      {"a/++", "topic filter has '+' at byte 2 that does not fill its whole level"},
      {"a#", "topic filter has '#' at byte 1 that does not fill its whole level"},
      {"a/#b", "topic filter has '#' at byte 2 that does not fill its whole level"},
      {"##", "topic filter has '#' at byte 0 that does not fill its whole level"},
      {"#/a", "topic filter has '#' at byte 0 that is not the last level"},
      {"a/#/", "topic filter has '#' at byte 2 that is not the last level"},
      {"a/#/b", "topic filter has '#' at byte 2 that is not the last level"},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.filter));
    CHECK(error_or_empty(topic_filter_error(c.filter)) == c.expected);
  }
}

TEST_CASE("filter_matches follows MQTT 3.1.1 matching") {
  struct Case {
    std::string filter;
    std::string topic;
    bool matches;
  };
  const std::vector<Case> cases = {
      // Examples of the MQTT 3.1.1 specification, §4.7.1.
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},  // '#' also matches the parent level
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},  // '+' matches an empty level
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      // '$' topics and leading wildcards, §4.7.2.
      {"#", "$SYS/broker/uptime", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"+", "$SYS", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$SYS", "$SYS", true},
      {"a/+", "a/$x", true},  // only a '$' at the start of the topic is special
      {"a/#", "a/$x", true},
      // Exact levels, empty levels, the parent rule.
      {"a", "a", true},
      {"a", "A", false},
      {"a/b", "a/bc", false},
      {"a/b", "a/b/", false},
      {"a/b/", "a/b/", true},
      {"a/b", "a", false},
      {"a/#", "a", true},
      {"a/#", "a/", true},
      {"a/#", "ab", false},
      {"a/#", "b", false},
      {"#", "a", true},
      {"#", "/", true},
      {"+", "a", true},
      {"+/+/+", "//", true},
      {"+/+", "//", false},
      {"a/+/c", "a//c", true},
      {"a//c", "a//c", true},
      {"a//c", "a/b/c", false},
      {"+/#", "a", true},
      {"+/+/#", "a", false},
      // The gateway's own filters.
      {"rtm/req/+/#", "rtm/req/alice/im://modulus/remove_feeds_member?msg_id=1002", true},
      {"rtm/req/+/#", "rtm/req/alice", true},
      {"rtm/presence/+", "rtm/presence/alice", true},
      {"rtm/presence/+", "rtm/presence/alice/x", false},
      {"rtm/u/alice/#", "rtm/u/alice/res/join?msg_id=7", true},
      {"rtm/u/alice/#", "rtm/req/alice/join?msg_id=7", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.filter);
    CAPTURE(c.topic);
    CHECK(filter_matches(c.filter, c.topic) == c.matches);
  }
}

TEST_CASE("hostile sizes are handled in linear time") {
  const auto started = std::chrono::steady_clock::now();
  const std::string deep_topic = repeat("a", 10000, "/");  // 10,000 levels
  const std::string huge_topic(70000, 'x');

  CHECK_FALSE(topic_name_error(deep_topic).has_value());
  CHECK(topic_name_error(huge_topic).has_value());
  CHECK_FALSE(topic_filter_error(repeat("+", 10000, "/")).has_value());

  struct Case {
    std::string filter;
    bool matches;
  };
  const std::vector<Case> cases = {
      {"#", true},
      {repeat("+", 10000, "/"), true},
      {repeat("+", 9999, "/") + "/#", true},
      {repeat("+", 10000, "/") + "/#", true},  // the parent rule at depth 10,000
      {repeat("+", 10001, "/"), false},
      {repeat("a", 9999, "/") + "/b", false},
      {deep_topic, true},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.filter));
    CHECK(filter_matches(c.filter, deep_topic) == c.matches);
  }
  CHECK(filter_matches("#", huge_topic));
  CHECK_FALSE(filter_matches("+/+", huge_topic));

  const auto elapsed = std::chrono::steady_clock::now() - started;
  // Generous bound (sanitizers, slow CI); quadratic code would take far longer.
  CHECK(elapsed < std::chrono::seconds(2));
}

TEST_CASE("name patterns: '*' any run and '?' one character and everything else literal") {
  using rtm::topics::name_matches;
  CHECK(name_matches("lobby-*", "lobby-1"));
  CHECK(name_matches("lobby-*", "lobby-"));
  CHECK_FALSE(name_matches("lobby-*", "lobby"));
  CHECK(name_matches("*", "anything"));
  CHECK(name_matches("room-?", "room-7"));
  CHECK_FALSE(name_matches("room-?", "room-42"));
  CHECK(name_matches("a*b*c", "axxbyyc"));
  CHECK_FALSE(name_matches("a*b*c", "axxbyy"));
  CHECK(name_matches("public", "public"));
  CHECK_FALSE(name_matches("public", "publicx"));
  CHECK(name_matches("*-open", "game.42-open"));
}
