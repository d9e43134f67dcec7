// rtm::util: base64 and base64url, FNV-1a, ASCII lower-casing, random hex ids.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "rtm/util/ascii.hpp"
#include "rtm/util/base64.hpp"
#include "rtm/util/fnv.hpp"
#include "rtm/util/random.hpp"

using namespace rtm::util;

TEST_CASE("util: base64 encodes the RFC 4648 test vectors, padded") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_encode(std::string("\xfb\xff\xfe", 3)) == "+//+");
  std::string out = "x=";
  append_base64(out, "foob");
  CHECK(out == "x=Zm9vYg==");
}

TEST_CASE("util: base64url round-trips every length and byte, unpadded and canonical") {
  CHECK(base64url_encode(std::string("\xfb\xff\xfe", 3)) == "-__-");
  CHECK(base64url_encode("fo") == "Zm8");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); n += 7) {
    const std::string bytes = all.substr(0, n);
    const std::string text = base64url_encode(bytes);
    CHECK(text.find('=') == std::string::npos);
    CHECK(base64url_decode(text) == bytes);
  }
  CHECK_FALSE(base64url_decode("Zm8=").has_value());  // padding
  CHECK_FALSE(base64url_decode("+//+").has_value());  // standard alphabet
  CHECK_FALSE(base64url_decode("Z").has_value());     // impossible length
  CHECK_FALSE(base64url_decode("Zm9").has_value());   // non-zero trailing bits
  CHECK(base64url_decode("Zm8") == std::string("fo"));
}

TEST_CASE("util: FNV-1a 64 gives the published test vectors") {
  CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
  // Hashing on from a previous result is hashing the concatenation.
  CHECK(fnv1a64("bar", fnv1a64("foo")) == fnv1a64("foobar"));
  CHECK(fnv1a64_byte(kFnv1a64Offset, 'a') == fnv1a64("a"));
  static_assert(fnv1a64("") == kFnv1a64Offset);
}

TEST_CASE("util: ASCII lower-casing touches A-Z only") {
  CHECK(ascii_lower("HTTP://Example.COM/Path-09_~") == "http://example.com/path-09_~");
  CHECK(ascii_lower(std::string("\xC3\x89T\xC3\xA9", 5)) == std::string("\xC3\x89t\xC3\xA9", 5));
  CHECK(ascii_lower('@') == '@');
  CHECK(ascii_lower('[') == '[');
  CHECK(ascii_lower('Z') == 'z');
  std::string s = "MiXeD";
  ascii_lower_in_place(s);
  CHECK(s == "mixed");
}

TEST_CASE("util: random ids are lower-case hex of the asked length, and differ") {
  CHECK(random_hex(0).empty());
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string id = random_hex(16);
    CHECK(id.size() == 16);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  CHECK(seen.size() == 100);
  CHECK(random_hex(33).size() == 33);
}
