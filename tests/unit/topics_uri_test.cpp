// Table-driven tests of rtm/topics/uri.hpp: percent-decoding and URI references in requests.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rtm/topics/uri.hpp"

namespace {

using rtm::topics::parse_uri;
using rtm::topics::percent_decode;
using rtm::topics::Uri;

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

using Params = std::vector<std::pair<std::string, std::string>>;

Params params_of(const Uri& uri) {
  Params params;
  for (const auto& p : uri.params) params.emplace_back(p.key, p.value);
  return params;
}

// One line per field, so that a failed comparison shows exactly which field differs.
std::string describe(const Uri& uri) {
  std::string out;
  out += "absolute=" + std::string(uri.absolute ? "yes" : "no") + "\n";
  out += "scheme=" + show(uri.scheme) + "\n";
  out += "userinfo=" + show(uri.userinfo) + "\n";
  out += "host=" + show(uri.host) + "\n";
  out += "port=" + (uri.port ? std::to_string(*uri.port) : std::string("none")) + "\n";
  out += "path=" + show(uri.path) + "\n";
  out += "path_params=" + show(uri.path_params) + "\n";
  out += "query=" + show(uri.query) + "\n";
  out += "msg_id=" + show(uri.msg_id) + "\n";
  out += "params=";
  for (const auto& p : uri.params) out += show(p.key) + ":" + show(p.value) + " ";
  return out;
}

}  // namespace

TEST_CASE("percent_decode decodes escapes and refuses broken ones") {
  struct Case {
    std::string text;
    std::string decoded;  // when ok
    std::string error;    // "" when ok
  };
  const std::vector<Case> cases = {
      {"", "", ""},
      {"plain", "plain", ""},
      {"room%2042", "room 42", ""},
      {"%41%62c", "Abc", ""},
      {"%e2%82%ac", "\xe2\x82\xac", ""},
      {"%E2%82%AC", "\xe2\x82\xac", ""},
      {"%2F%2f", "//", ""},
      {"%25", "%", ""},
      {"%2500", "%00", ""},  // decoded once, not twice
      {"a+b", "a+b", ""},    // '+' is not a space here (not form encoding)
      {"caf\xc3\xa9", "caf\xc3\xa9", ""},
      {"%", "", "text has a bad percent-escape at byte 0: '%' must be followed by two hex digits"},
      {"100%", "",
       "text has a bad percent-escape at byte 3: '%' must be followed by two hex digits"},
      {"%0", "", "text has a bad percent-escape at byte 0: '%' must be followed by two hex digits"},
      {"a%zz", "",
       "text has a bad percent-escape at byte 1: '%' must be followed by two hex digits"},
      {"%g0", "",
       "text has a bad percent-escape at byte 0: '%' must be followed by two hex digits"},
      {"%0g", "",
       "text has a bad percent-escape at byte 0: '%' must be followed by two hex digits"},
      {"ok%41%4", "",
       "text has a bad percent-escape at byte 5: '%' must be followed by two hex digits"},
      {"%00", "", "text has the percent-escape %00 (NUL) at byte 0, which is not allowed"},
      {"ab%00cd", "", "text has the percent-escape %00 (NUL) at byte 2, which is not allowed"},
      {"%ff", "", "text is not valid UTF-8 once percent-decoded at byte 0"},
      {"ab%C3", "", "text is not valid UTF-8 once percent-decoded at byte 2"},
      {"%41%C0%80", "", "text is not valid UTF-8 once percent-decoded at byte 3"},
      {"x%ED%A0%80", "", "text is not valid UTF-8 once percent-decoded at byte 1"},
      {"%F4%90%80%80", "", "text is not valid UTF-8 once percent-decoded at byte 0"},
      {"ab\xff", "", "text is not valid UTF-8 once percent-decoded at byte 2"},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.text));
    const auto result = percent_decode(c.text);
    if (c.error.empty()) {
      REQUIRE_MESSAGE(result.ok(), result.error().message);
      CHECK(show(*result) == show(c.decoded));
    } else {
      REQUIRE_FALSE(result.ok());
      CHECK(result.error().message == c.error);
    }
  }
}

TEST_CASE("parse_uri splits relative and absolute references") {
  struct Case {
    std::string reference;
    bool absolute;
    std::string scheme;
    std::string userinfo;
    std::string host;
    std::optional<int> port;
    std::string path;
    std::string path_params;
    std::string query;
    std::string msg_id;
    Params params;
  };
  const std::vector<Case> cases = {
      // Built-in operations.
      {"join?msg_id=7", false, "", "", "", {}, "join", "", "msg_id=7", "7", {{"msg_id", "7"}}},
      {"join?channel=room-42&msg_id=3",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "channel=room-42&msg_id=3",
       "3",
       {{"channel", "room-42"}, {"msg_id", "3"}}},
      {"room/list?msg_id=1",
       false,
       "",
       "",
       "",
       {},
       "room/list",
       "",
       "msg_id=1",
       "1",
       {{"msg_id", "1"}}},
      {"join", false, "", "", "", {}, "join", "", "", "", {}},
      {"join?", false, "", "", "", {}, "join", "", "", "", {}},
      {"join?a", false, "", "", "", {}, "join", "", "a", "", {{"a", ""}}},
      {"join?a&b=", false, "", "", "", {}, "join", "", "a&b=", "", {{"a", ""}, {"b", ""}}},
      {"join?&&msg_id=1", false, "", "", "", {}, "join", "", "&&msg_id=1", "1", {{"msg_id", "1"}}},
      {"join?msg_id=1&&", false, "", "", "", {}, "join", "", "msg_id=1&&", "1", {{"msg_id", "1"}}},
      {"join?msg_id=", false, "", "", "", {}, "join", "", "msg_id=", "", {{"msg_id", ""}}},
      {"join?a=b=c", false, "", "", "", {}, "join", "", "a=b=c", "", {{"a", "b=c"}}},
      {"join?channel=room%2042&msg_id=3",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "channel=room%2042&msg_id=3",
       "3",
       {{"channel", "room 42"}, {"msg_id", "3"}}},
      {"join?ch%61nnel=r%C3%A9&msg_id=%37",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "ch%61nnel=r%C3%A9&msg_id=%37",
       "7",
       {{"channel", "r\xc3\xa9"}, {"msg_id", "7"}}},
      {"join?name=caf\xc3\xa9",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "name=caf\xc3\xa9",
       "",
       {{"name", "caf\xc3\xa9"}}},
      {"join?x=a:b&msg_id=1",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "x=a:b&msg_id=1",
       "1",
       {{"x", "a:b"}, {"msg_id", "1"}}},
      {"join?u=im://modulus/x",
       false,
       "",
       "",
       "",
       {},
       "join",
       "",
       "u=im://modulus/x",
       "",
       {{"u", "im://modulus/x"}}},
      {"join?a=1+2", false, "", "", "", {}, "join", "", "a=1+2", "", {{"a", "1+2"}}},
      {"join%20now?msg_id=1",
       false,
       "",
       "",
       "",
       {},
       "join now",
       "",
       "msg_id=1",
       "1",
       {{"msg_id", "1"}}},
      {"join;v=2?msg_id=1",
       false,
       "",
       "",
       "",
       {},
       "join",
       "v=2",
       "msg_id=1",
       "1",
       {{"msg_id", "1"}}},
      {"Join?msg_id=1", false, "", "", "", {}, "Join", "", "msg_id=1", "1", {{"msg_id", "1"}}},
      // A ':' only makes a scheme in the first segment, and only before a valid scheme name.
      {"a_b:c?msg_id=1", false, "", "", "", {}, "a_b:c", "", "msg_id=1", "1", {{"msg_id", "1"}}},
      {"1a:b?msg_id=1", false, "", "", "", {}, "1a:b", "", "msg_id=1", "1", {{"msg_id", "1"}}},
      {"room/x:y?msg_id=1",
       false,
       "",
       "",
       "",
       {},
       "room/x:y",
       "",
       "msg_id=1",
       "1",
       {{"msg_id", "1"}}},
      {"room//list", false, "", "", "", {}, "room//list", "", "", "", {}},
      // Module RPC.
      {"im://modulus/remove_feeds_member?msg_id=1002",
       true,
       "im",
       "",
       "modulus",
       {},
       "remove_feeds_member",
       "",
       "msg_id=1002",
       "1002",
       {{"msg_id", "1002"}}},
      {"http://billing/pay/one.json?msg_id=9",
       true,
       "http",
       "",
       "billing",
       {},
       "pay/one.json",
       "",
       "msg_id=9",
       "9",
       {{"msg_id", "9"}}},
      {"scheme://user:pass@host:8080/path;params?query",
       true,
       "scheme",
       "user:pass",
       "host",
       8080,
       "path",
       "params",
       "query",
       "",
       {{"query", ""}}},
      {"IM://MoDuLuS/Remove_Feeds?msg_id=1",
       true,
       "im",
       "",
       "modulus",
       {},
       "Remove_Feeds",
       "",
       "msg_id=1",
       "1",
       {{"msg_id", "1"}}},
      {"impush://modulus/news", true, "impush", "", "modulus", {}, "news", "", "", "", {}},
      {"im://modulus", true, "im", "", "modulus", {}, "", "", "", "", {}},
      {"im://modulus/", true, "im", "", "modulus", {}, "", "", "", "", {}},
      {"im://modulus?msg_id=4",
       true,
       "im",
       "",
       "modulus",
       {},
       "",
       "",
       "msg_id=4",
       "4",
       {{"msg_id", "4"}}},
      {"im://modulus//x", true, "im", "", "modulus", {}, "/x", "", "", "", {}},
      {"im://node-1.eu_west~2/a%2Fb",
       true,
       "im",
       "",
       "node-1.eu_west~2",
       {},
       "a/b",
       "",
       "",
       "",
       {}},
      {"mqtt+ssl.v-2://h:1/x", true, "mqtt+ssl.v-2", "", "h", 1, "x", "", "", "", {}},
      {"im://h:65535/x", true, "im", "", "h", 65535, "x", "", "", "", {}},
      {"im://h:00080/x", true, "im", "", "h", 80, "x", "", "", "", {}},
      {"im://u@h/x", true, "im", "u", "h", {}, "x", "", "", "", {}},
      {"im://@h/x", true, "im", "", "h", {}, "x", "", "", "", {}},
      {"im://a@b:c@h/x", true, "im", "a@b:c", "h", {}, "x", "", "", "", {}},
      {"im://[::1]:8080/x", true, "im", "", "[::1]", 8080, "x", "", "", "", {}},
      {"im://[FE80::A:1]/x", true, "im", "", "[fe80::a:1]", {}, "x", "", "", "", {}},
      {"im://cache/a;b;c?x=1", true, "im", "", "cache", {}, "a", "b;c", "x=1", "", {{"x", "1"}}},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.reference));
    const auto result = parse_uri(c.reference);
    REQUIRE_MESSAGE(result.ok(), result.error().message);
    Uri expected;
    expected.absolute = c.absolute;
    expected.scheme = c.scheme;
    expected.userinfo = c.userinfo;
    expected.host = c.host;
    expected.port = c.port;
    expected.path = c.path;
    expected.path_params = c.path_params;
    expected.query = c.query;
    expected.msg_id = c.msg_id;
    for (const auto& [key, value] : c.params) expected.params.push_back({key, value});
    CHECK(describe(*result) == describe(expected));
    CHECK(result->raw == c.reference);
    CHECK(params_of(*result) == c.params);
  }
}

TEST_CASE("parse_uri refuses malformed references with a precise reason") {
  struct Case {
    std::string reference;
    std::string error;
  };
  const std::string hex_rule = ": '%' must be followed by two hex digits";
  const std::string scheme_rule =
      " (a scheme is a letter followed by letters, digits, '+', '-' or '.')";
  const std::string host_rule = " (a host is letters, digits, '-', '.', '_' or '~')";
  const std::vector<Case> cases = {
      {"", "uri is empty"},
      {"?msg_id=1", "uri has an empty path (expected an operation such as \"join\")"},
      {";v=1?msg_id=1", "uri has an empty path (expected an operation such as \"join\")"},
      {"join#frag",
       "uri has a '#' fragment at byte 4; fragments are not allowed ('#' is an MQTT wildcard)"},
      {"join?msg_id=1#x",
       "uri has a '#' fragment at byte 13; fragments are not allowed ('#' is an MQTT wildcard)"},
      {"im://modulus/x#",
       "uri has a '#' fragment at byte 14; fragments are not allowed ('#' is an MQTT wildcard)"},
      {"join\xff?msg_id=1", "uri is not valid UTF-8 at byte 4"},
      {"join?n=\xc0\x80", "uri is not valid UTF-8 at byte 7"},
      {"join?n=\xed\xa0\x80", "uri is not valid UTF-8 at byte 7"},
      {"join?n=\xe2\x82", "uri is not valid UTF-8 at byte 7"},
      {std::string("jo\0in", 5), "uri contains U+0000 at byte 2"},
      // Percent-escapes, wherever they are.
      {"join?msg_id=1&channel=room%", "uri has a bad percent-escape at byte 26" + hex_rule},
      {"join?a=%0", "uri has a bad percent-escape at byte 7" + hex_rule},
      {"join?a=%zz", "uri has a bad percent-escape at byte 7" + hex_rule},
      {"jo%4gin", "uri has a bad percent-escape at byte 2" + hex_rule},
      {"im://h/x;p%zz", "uri has a bad percent-escape at byte 10" + hex_rule},
      {"im://us%r@h/x", "uri has a bad percent-escape at byte 7" + hex_rule},
      {"join?a=%00", "uri has the percent-escape %00 (NUL) at byte 7, which is not allowed"},
      {"join?%00=1", "uri has the percent-escape %00 (NUL) at byte 5, which is not allowed"},
      {"join?a=%ff", "uri query parameter \"a\" is not valid UTF-8 once percent-decoded at byte 7"},
      {"join?a=ok%C3",
       "uri query parameter \"a\" is not valid UTF-8 once percent-decoded at byte 9"},
      {"join?%ff=1", "uri query parameter name is not valid UTF-8 once percent-decoded at byte 5"},
      {"jo%ffin", "uri path is not valid UTF-8 once percent-decoded at byte 2"},
      // Query keys.
      {"join?=x", "uri query has a parameter with an empty name at byte 5"},
      {"join?a=1&=x", "uri query has a parameter with an empty name at byte 9"},
      {"join?=", "uri query has a parameter with an empty name at byte 5"},
      {"join?a=1&a=2", "uri query parameter \"a\" is given twice"},
      {"join?a&a", "uri query parameter \"a\" is given twice"},
      {"join?msg_id=1&channel=x&msg_id=2", "uri query parameter \"msg_id\" is given twice"},
      {"join?a=1&%61=2", "uri query parameter \"a\" is given twice"},
      // Schemes.
      {"1m://h/x", "uri has an invalid scheme \"1m\"" + scheme_rule},
      {"i_m://h/x", "uri has an invalid scheme \"i_m\"" + scheme_rule},
      {"-im://h/x", "uri has an invalid scheme \"-im\"" + scheme_rule},
      {"://h/x", "uri has an empty scheme before \"://\""},
      {"im:x?msg_id=1", "uri with scheme \"im\" has no host (expected \"im://host/...\")"},
      {"join:now?msg_id=1", "uri with scheme \"join\" has no host (expected \"join://host/...\")"},
      {"IM:/x", "uri with scheme \"im\" has no host (expected \"im://host/...\")"},
      // A long scheme is cut short, not repeated whole (found by fuzz/topics.cpp).
      {std::string(70, 'a') + ":x",
       "uri with scheme \"" + std::string(64, 'a') +
           "...\" (70 bytes) has no host (expected \"scheme://host/...\")"},
      // Hosts and ports.
      {"im:///x", "uri has an empty host at byte 5"},
      {"im://", "uri has an empty host at byte 5"},
      {"im://?msg_id=1", "uri has an empty host at byte 5"},
      {"im://user@/x", "uri has an empty host at byte 10"},
      {"im://:80/x", "uri has an empty host at byte 5"},
      {"im://bad host/x", "uri host \"bad host\" contains ' ' at byte 8" + host_rule},
      {"im://h%41/x", "uri host \"h%41\" contains '%' at byte 6" + host_rule},
      {"im://h;p/x", "uri host \"h;p\" contains ';' at byte 6" + host_rule},
      {"im://caf\xc3\xa9/x", "uri host \"caf\xc3\xa9\" contains byte 0xc3 at byte 8" + host_rule},
      {"im://[::1/x", "uri has an IP literal host without its closing ']' at byte 5"},
      {"im://[]/x", "uri has an empty IP literal host at byte 5"},
      {"im://[::1]x/y", "uri has unexpected text after the IP literal host at byte 10"},
      {"im://[zz]/x", "uri host \"[zz]\" has 'z' in its IP literal at byte 6"},
      {"im://h:/x", "uri has an empty port after ':' at byte 7 (must be 1-65535)"},
      {"im://h:0/x", "uri has a bad port \"0\" at byte 7 (must be 1-65535)"},
      {"im://h:65536/x", "uri has a bad port \"65536\" at byte 7 (must be 1-65535)"},
      {"im://h:99999999999999999999/x",
       "uri has a bad port \"99999999999999999999\" at byte 7 (must be 1-65535)"},
      {"im://h:-1/x", "uri has a bad port \"-1\" at byte 7 (must be 1-65535)"},
      {"im://h:8a/x", "uri has a bad port \"8a\" at byte 7 (must be 1-65535)"},
      {"im://h:1:2/x", "uri host \"h:1\" contains ':' at byte 6" + host_rule},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.reference));
    const auto result = parse_uri(c.reference);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == c.error);
  }
}

TEST_CASE("Uri::param finds decoded parameters") {
  const auto uri = parse_uri("join?channel=room%2042&msg_id=3&empty");
  REQUIRE(uri.ok());
  REQUIRE(uri->param("channel") != nullptr);
  CHECK(*uri->param("channel") == "room 42");
  REQUIRE(uri->param("empty") != nullptr);
  CHECK(uri->param("empty")->empty());
  CHECK(uri->param("missing") == nullptr);
  CHECK(uri->param("Channel") == nullptr);  // keys are case-sensitive
  CHECK(uri->msg_id == "3");
}

TEST_CASE("parse_uri copes with hostile sizes in linear time") {
  const auto started = std::chrono::steady_clock::now();

  std::string many_params = "join?";
  for (int i = 0; i < 10000; ++i) many_params += "k" + std::to_string(i) + "=v&";
  many_params += "msg_id=1";
  std::string deep_path;
  for (int i = 0; i < 10000; ++i) deep_path += "a/";
  deep_path += "op?msg_id=2";
  const std::string long_value = "join?msg_id=3&data=" + std::string(70000, 'x');
  const std::string escaped_value = "join?msg_id=4&data=" + [] {
    std::string s;
    for (int i = 0; i < 20000; ++i) s += "%41";
    return s;
  }();

  struct Case {
    std::string reference;
    std::string msg_id;
    std::size_t param_count;
  };
  const std::vector<Case> cases = {
      {many_params, "1", 10001},
      {deep_path, "2", 1},
      {long_value, "3", 2},
      {escaped_value, "4", 2},
  };
  for (const Case& c : cases) {
    CAPTURE(show(c.reference));
    const auto result = parse_uri(c.reference);
    REQUIRE_MESSAGE(result.ok(), result.error().message);
    CHECK(result->msg_id == c.msg_id);
    CHECK(result->params.size() == c.param_count);
  }
  CHECK(*parse_uri(escaped_value)->param("data") == std::string(20000, 'A'));

  // A duplicate found at the very end of 10,000 keys.
  const auto duplicate = parse_uri(many_params + "&k0=again");
  REQUIRE_FALSE(duplicate.ok());
  CHECK(duplicate.error().message == "uri query parameter \"k0\" is given twice");

  // Client text quoted in a message is cut short, on a character boundary.
  const std::string long_key = std::string(63, 'k') + "\xc3\xa9" + std::string(100, 'k');
  const auto long_duplicate = parse_uri("join?" + long_key + "=1&" + long_key + "=2");
  REQUIRE_FALSE(long_duplicate.ok());
  CHECK(long_duplicate.error().message ==
        "uri query parameter \"" + std::string(63, 'k') + "...\" (165 bytes) is given twice");

  // A broken escape at the very end of a 70,000-byte reference.
  const auto broken = parse_uri(long_value + "%");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message == "uri has a bad percent-escape at byte " +
                                      std::to_string(long_value.size()) +
                                      ": '%' must be followed by two hex digits");

  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(elapsed < std::chrono::seconds(2));
}
