// Tests of the server HTTP API's parts without a network: the routes it serves against
// docs/http-api.yaml, API keys with rights and rates, the HTTP status of each error code,
// and the http_api config keys.
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/http_api.hpp"

using namespace rtm::gateway;

namespace {

const std::string kAuth = "auth:\n  token_secret: \"unit-test-secret-0123456789abcdef-xyz\"\n";
const std::string kOps = "ops:\n  http_listen: 127.0.0.1:0\n";

std::vector<std::string> problems_of(const std::string& yaml, const std::string& dir = "") {
  try {
    load_config_text(yaml, dir);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  FAIL("config was accepted:\n" << yaml);
  return {};
}

}  // namespace

TEST_CASE(
    "http api: every route served is in docs/http-api.yaml and every documented one is served") {
  const auto doc = YAML::LoadFile(std::string(RTM_SOURCE_DIR) + "/docs/http-api.yaml");
  std::set<std::string> documented;
  for (const auto& path : doc["paths"]) {
    for (const auto& op : path.second) {
      std::string method = op.first.as<std::string>();
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.insert(method + " " + path.first.as<std::string>());
    }
  }
  std::set<std::string> served{"POST /v1/kick"};  // the operations listener's own
  for (const auto& r : api_routes())
    served.insert(std::string(r.method) + " " + std::string(r.path));
  for (const auto& s : served) CHECK_MESSAGE(documented.count(s), s << " is not documented");
  for (const auto& d : documented)
    CHECK_MESSAGE(served.count(d), d << " is documented, not served");
}

TEST_CASE("http api: keys have rights and admin holds them all and a key has a rate") {
  ApiKeys keys({{"reader-key-0123456789", kRightRead},
                {"admin-key-0123456789ab", kRightAdmin},
                {"publisher-key-01234567", kRightPublish}},
               0, 1);
  CHECK(keys.check("", kRightRead) == ApiKeys::Verdict::no_key);
  CHECK(keys.check("Basic abc", kRightRead) == ApiKeys::Verdict::no_key);
  CHECK(keys.check("Bearer reader-key-012345678", kRightRead) == ApiKeys::Verdict::bad_key);
  CHECK(keys.check("Bearer reader-key-01234567890", kRightRead) == ApiKeys::Verdict::bad_key);
  CHECK(keys.check("Bearer reader-key-0123456789", kRightRead) == ApiKeys::Verdict::ok);
  CHECK(keys.check("Bearer reader-key-0123456789", kRightPublish) == ApiKeys::Verdict::no_right);
  CHECK(keys.check("Bearer publisher-key-01234567", kRightPublish) == ApiKeys::Verdict::ok);
  CHECK(keys.check("Bearer publisher-key-01234567", kRightAdmin) == ApiKeys::Verdict::no_right);
  for (unsigned right : {kRightRead, kRightPublish, kRightAdmin}) {
    CHECK(keys.check("Bearer admin-key-0123456789ab", right) == ApiKeys::Verdict::ok);
  }

  ApiKeys limited({{"reader-key-0123456789", kRightRead}, {"other-key-0123456789", kRightRead}},
                  0.001, 2);
  CHECK(limited.check("Bearer reader-key-0123456789", kRightRead) == ApiKeys::Verdict::ok);
  CHECK(limited.check("Bearer reader-key-0123456789", kRightRead) == ApiKeys::Verdict::ok);
  CHECK(limited.check("Bearer reader-key-0123456789", kRightRead) ==
        ApiKeys::Verdict::rate_limited);
  // Each key has its own bucket.
  CHECK(limited.check("Bearer other-key-0123456789", kRightRead) == ApiKeys::Verdict::ok);
}

TEST_CASE("http api: error codes map to HTTP statuses") {
  CHECK(http_status(ErrorCode::ok) == 200);
  CHECK(http_status(ErrorCode::invalid_name) == 400);
  CHECK(http_status(ErrorCode::bad_json) == 400);
  CHECK(http_status(ErrorCode::forbidden) == 403);
  CHECK(http_status(ErrorCode::item_not_found) == 404);
  CHECK(http_status(ErrorCode::not_joined) == 409);
  CHECK(http_status(ErrorCode::item_revision_mismatch) == 409);
  CHECK(http_status(ErrorCode::payload_too_large) == 413);
  CHECK(http_status(ErrorCode::limit_metadata) == 422);
  CHECK(http_status(ErrorCode::rate_limited) == 429);
  CHECK(http_status(ErrorCode::internal) == 500);
  CHECK(http_status(ErrorCode::unavailable) == 503);
}

TEST_CASE("http api: config keys and key files and what is refused") {
  const auto dir = std::filesystem::temp_directory_path() / "rtm-http-api-config-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "server.key") << "file-key-0123456789abcdef\n";
  const Config c =
      load_config_text(kAuth + kOps +
                           "http_api:\n  keys:\n"
                           "    - key_file: server.key\n      rights: [read, publish]\n"
                           "    - key: inline-key-0123456789\n      rights: [admin]\n"
                           "  max_body_bytes: 4096\n  rate_per_s: 5\n  burst: 10\n"
                           "  threads: 2\n",
                       dir.string());
  REQUIRE(c.http_api.keys.size() == 2);
  CHECK(c.http_api.keys[0].key == "file-key-0123456789abcdef");
  CHECK(c.http_api.keys[0].rights == (kRightRead | kRightPublish));
  CHECK(c.http_api.keys[1].key == "inline-key-0123456789");
  CHECK(c.http_api.keys[1].rights == kRightAdmin);
  CHECK(c.http_api.max_body_bytes == 4096);
  CHECK(c.http_api.rate_per_s == 5);
  CHECK(c.http_api.burst == 10);
  CHECK(c.http_api.threads == 2);
  std::filesystem::remove_all(dir);

  const Config d = load_config_text(kAuth);
  CHECK(d.http_api.keys.empty());
  CHECK(d.http_api.max_body_bytes == 64 * 1024);

  auto p =
      problems_of(kAuth + kOps + "http_api:\n  keys:\n    - key: short\n      rights: [read]\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].rfind("http_api.keys[0].key: an API key must be at least", 0) == 0);
  CHECK(p[0].find("short") == std::string::npos);  // a secret is never quoted
  p = problems_of(kAuth + kOps +
                  "http_api:\n  keys:\n    - key: inline-key-0123456789\n      rights: [write]\n");
  REQUIRE(p.size() >= 1);
  CHECK(p[0].rfind("http_api.keys[0].rights[0]: expected publish, read or admin", 0) == 0);
  p = problems_of(kAuth + kOps + "http_api:\n  keys:\n    - rights: [read]\n      color: red\n");
  CHECK(p.size() == 2);
  p = problems_of(kAuth +
                  "http_api:\n  keys:\n    - key: inline-key-0123456789\n      rights: [read]\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].rfind("http_api.keys: needs ops.http_listen", 0) == 0);
}
