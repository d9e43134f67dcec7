// The error table in docs/protocol.md is what client authors read: it must list every
// code the gateway can answer, with the same number, name and meaning.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "rtm/gateway/errors.hpp"
#include "rtm/sdk/types.hpp"

TEST_CASE("docs/protocol.md lists every error code with its number, name and meaning") {
  std::ifstream in(std::string(RTM_SOURCE_DIR) + "/docs/protocol.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  std::size_t count = 0;
  const auto* table = rtm::gateway::error_table(&count);
  REQUIRE(count > 10);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string row = "| " + std::to_string(static_cast<int>(table[i].code)) + " | " +
                            std::string(table[i].name) + " | " + std::string(table[i].meaning) +
                            " |";
    CAPTURE(row);
    CHECK(doc.find(row) != std::string::npos);
  }
}

// The SDK carries its own copy of the table (its headers must not need the gateway's);
// both must name every code the same way.
TEST_CASE("the SDK names every gateway error code as the gateway does") {
  std::size_t count = 0;
  const auto* table = rtm::gateway::error_table(&count);
  for (std::size_t i = 0; i < count; ++i) {
    const int code = static_cast<int>(table[i].code);
    CAPTURE(code);
    CHECK(rtm::sdk::error_name(code) == table[i].name);
  }
}
