// Tests of rtm/gateway/config.hpp: defaults, every documented key, and the problem lines of
// bad configs (each starting with its key path, all reported together).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "rtm/gateway/config.hpp"

namespace {

using rtm::gateway::Config;
using rtm::gateway::ConfigError;
using rtm::gateway::load_config_text;
using rtm::gateway::restart_only_changes;

const std::string kSecret = "unit-test-secret-0123456789abcdef-xyz";  // 37 bytes
const std::string kAuth = "auth:\n  token_secret: \"" + kSecret + "\"\n";

// The problems of a config that must be refused; fails the test when it is accepted.
std::vector<std::string> problems_of(const std::string& yaml) {
  try {
    load_config_text(yaml);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  FAIL("config was accepted:\n" << yaml);
  return {};
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  [" + l + "]\n";
  return out;
}

// A copy of config.yaml with every key set to a value other than its default.
const char* const kEveryKey = R"(
broker:
  uri: ssl://broker.example.com:8883
  client_id: gw-2
  username: gw-user
  password: "s3cret"
  keepalive_s: 45
  connect_timeout_s: 7
  reconnect_min_ms: 200
  reconnect_max_ms: 9000
topics:
  prefix: acme/rtm
auth:
  token_secret: "0123456789abcdef0123456789abcdef-x"
  token_warn_before_s: 10
  max_token_ttl_s: 3600
log:
  level: debug
  stats_interval_s: 0
requests:
  max_payload_bytes: 1024
  dedup_window_s: 5
  dedup_max_entries: 77
  queue_capacity: 500
limits:
  channels_per_user: 3
  topics_per_channel: 2
  members_per_channel: 100
  publishers_per_subscription: 10
  watched_users: 0
  message_channels_per_user: 4
  subscribers_per_message_channel: 6
channels:
  stream_token_required: true
  message_token_required: true
storage:
  max_key_bytes: 32
  max_value_bytes: 1000
  max_call_bytes: 2000
  max_items_per_call: 10
  max_items: 20
  max_metadata_bytes: 5000
  user_metadata_writers: operators
  channel_metadata_writers: operators
  max_metadata_subscriptions: 5
inbox:
  offline: false
  deliver_on_login: false
  max_messages_per_user: 7
  max_age_s: 60
  max_message_bytes: 100
  max_total_bytes: 10000
invitations:
  ack_timeout_s: 5
  expire_s: 9
  max_per_caller: 3
  max_per_callee: 4
  max_total: 50
  max_content_bytes: 256
)";

}  // namespace

TEST_CASE("config: defaults when only auth.token_secret is given") {
  const Config c = load_config_text(kAuth);
  CHECK(c.broker.uri == "tcp://127.0.0.1:1883");
  CHECK(c.broker.client_id == "rtm-gateway");
  CHECK(c.broker.username == "rtm-gateway");
  CHECK(c.broker.password.empty());
  CHECK(c.broker.keepalive_s == 30);
  CHECK(c.broker.connect_timeout_s == 5);
  CHECK(c.broker.reconnect_min_ms == 100);
  CHECK(c.broker.reconnect_max_ms == 5000);
  CHECK(c.topics.prefix == "rtm");
  CHECK(c.auth.token_secret == kSecret);
  CHECK(c.auth.token_warn_before_s == 30);
  CHECK(c.auth.max_token_ttl_s == 604800);
  CHECK(c.log.level == "info");
  CHECK(c.log.stats_interval_s == 60);
  CHECK(c.requests.max_payload_bytes == 65536);
  CHECK(c.requests.dedup_window_s == 30);
  CHECK(c.requests.dedup_max_entries == 100000);
  CHECK(c.requests.queue_capacity == 100000);
  CHECK(c.limits.channels_per_user == 50);
  CHECK(c.limits.topics_per_channel == 8);
  CHECK(c.limits.members_per_channel == 10000);
  CHECK(c.limits.publishers_per_subscription == 64);
  CHECK(c.limits.watched_users == 1000);
  // storage.*: the storage model's defaults (storage/README.md).
  const rtm::storage::MetadataLimits model;
  CHECK(c.storage.metadata.max_key_bytes == model.max_key_bytes);
  CHECK(c.storage.metadata.max_value_bytes == 65536);
  CHECK(c.storage.metadata.max_call_bytes == 65536);
  CHECK(c.storage.metadata.max_items_per_call == model.max_items_per_call);
  CHECK(c.storage.metadata.max_items == model.max_items);
  CHECK(c.storage.metadata.max_metadata_bytes == model.max_metadata_bytes);
  CHECK(c.storage.user_metadata_writers == "self");
  CHECK(c.storage.channel_metadata_writers == "members");
  CHECK(c.storage.max_metadata_subscriptions == 1000);
}

TEST_CASE("config: empty sections and comments keep the defaults") {
  const Config c = load_config_text("# a comment\nbroker:\ntopics: {}\n" + kAuth + "log:\n");
  CHECK(c.broker.uri == "tcp://127.0.0.1:1883");
  CHECK(c.topics.prefix == "rtm");
  CHECK(c.log.level == "info");
}

TEST_CASE("config: every key of config.yaml is accepted and read") {
  const Config c = load_config_text(kEveryKey);
  CHECK(c.broker.uri == "ssl://broker.example.com:8883");
  CHECK(c.broker.client_id == "gw-2");
  CHECK(c.broker.username == "gw-user");
  CHECK(c.broker.password == "s3cret");
  CHECK(c.broker.keepalive_s == 45);
  CHECK(c.broker.connect_timeout_s == 7);
  CHECK(c.broker.reconnect_min_ms == 200);
  CHECK(c.broker.reconnect_max_ms == 9000);
  CHECK(c.topics.prefix == "acme/rtm");
  CHECK(c.auth.token_secret == "0123456789abcdef0123456789abcdef-x");
  CHECK(c.auth.token_warn_before_s == 10);
  CHECK(c.auth.max_token_ttl_s == 3600);
  CHECK(c.log.level == "debug");
  CHECK(c.log.stats_interval_s == 0);
  CHECK(c.requests.max_payload_bytes == 1024);
  CHECK(c.requests.dedup_window_s == 5);
  CHECK(c.requests.dedup_max_entries == 77);
  CHECK(c.requests.queue_capacity == 500);
  CHECK(c.limits.channels_per_user == 3);
  CHECK(c.limits.topics_per_channel == 2);
  CHECK(c.limits.members_per_channel == 100);
  CHECK(c.limits.publishers_per_subscription == 10);
  CHECK(c.limits.watched_users == 0);
  CHECK(c.limits.message_channels_per_user == 4);
  CHECK(c.limits.subscribers_per_message_channel == 6);
  CHECK(c.channels.stream_token_required);
  CHECK(c.channels.message_token_required);
  CHECK(c.storage.metadata.max_key_bytes == 32);
  CHECK(c.storage.metadata.max_value_bytes == 1000);
  CHECK(c.storage.metadata.max_call_bytes == 2000);
  CHECK(c.storage.metadata.max_items_per_call == 10);
  CHECK(c.storage.metadata.max_items == 20);
  CHECK(c.storage.metadata.max_metadata_bytes == 5000);
  CHECK(c.storage.user_metadata_writers == "operators");
  CHECK(c.storage.channel_metadata_writers == "operators");
  CHECK(c.storage.max_metadata_subscriptions == 5);
  CHECK_FALSE(c.inbox.offline);
  CHECK_FALSE(c.inbox.deliver_on_login);
  CHECK(c.inbox.max_messages_per_user == 7);
  CHECK(c.inbox.max_age_s == 60);
  CHECK(c.inbox.max_message_bytes == 100);
  CHECK(c.inbox.max_total_bytes == 10000);
  CHECK(c.invitations.ack_timeout_s == 5);
  CHECK(c.invitations.expire_s == 9);
  CHECK(c.invitations.max_per_caller == 3);
  CHECK(c.invitations.max_per_callee == 4);
  CHECK(c.invitations.max_total == 50);
  CHECK(c.invitations.max_content_bytes == 256);
}

TEST_CASE("config: the invitations section's defaults and bad values") {
  const Config c = load_config_text(kAuth);
  CHECK(c.invitations.ack_timeout_s == 30);
  CHECK(c.invitations.expire_s == 60);
  CHECK(c.invitations.max_per_caller == 16);
  CHECK(c.invitations.max_per_callee == 16);
  CHECK(c.invitations.max_total == 100000);
  CHECK(c.invitations.max_content_bytes == 8192);
  const auto bad = [](const std::string& yaml) {
    try {
      load_config_text(kAuth + yaml);
    } catch (const rtm::gateway::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(bad("invitations:\n  ack_timeout_s: 0\n").find("invitations.ack_timeout_s") !=
        std::string::npos);
  CHECK(bad("invitations:\n  what: 1\n").find("invitations.what: unknown key") !=
        std::string::npos);
}

TEST_CASE("config: the inbox section's defaults and bad values") {
  const Config c = load_config_text(kAuth);
  CHECK(c.inbox.offline);
  CHECK(c.inbox.deliver_on_login);
  CHECK(c.inbox.max_messages_per_user == 100);
  CHECK(c.inbox.max_age_s == 604800);
  CHECK(c.inbox.max_message_bytes == 32768);
  CHECK(c.inbox.max_total_bytes == 64LL * 1024 * 1024);
  const auto bad = [](const std::string& yaml) {
    try {
      load_config_text(kAuth + yaml);
    } catch (const rtm::gateway::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(bad("inbox:\n  offline: maybe\n").find("inbox.offline") != std::string::npos);
  CHECK(bad("inbox:\n  max_messages_per_user: 0\n").find("inbox.max_messages_per_user") !=
        std::string::npos);
  CHECK(bad("inbox:\n  max_message_bytes: 200\n  max_total_bytes: 100\n")
            .find("inbox.max_message_bytes") != std::string::npos);
  CHECK(bad("inbox:\n  what: 1\n").find("inbox.what: unknown key") != std::string::npos);
}

TEST_CASE("config: the shipped config.yaml loads with the defaults but what it marks") {
  // The file run.sh uses: every value is the built-in default except the lines it marks
  // "(this file)": the demo secret it may use, and the operations listener.
  const Config c = rtm::gateway::load_config_file(std::string(RTM_SOURCE_DIR) + "/config.yaml");
  const Config d = load_config_text(kAuth);
  CHECK(c.broker.uri == d.broker.uri);
  CHECK(c.broker.client_id == d.broker.client_id);
  CHECK(c.broker.password == d.broker.password);
  CHECK(c.topics.prefix == d.topics.prefix);
  CHECK(c.auth.token_secret == rtm::gateway::kDemoTokenSecret);
  CHECK(c.auth.allow_demo_secret);
  CHECK_FALSE(d.auth.allow_demo_secret);
  CHECK(c.auth.max_token_ttl_s == d.auth.max_token_ttl_s);
  CHECK(c.log.level == d.log.level);
  CHECK(c.log.format == d.log.format);
  CHECK(c.requests.queue_capacity == d.requests.queue_capacity);
  CHECK(c.requests.dedup_window_s == d.requests.dedup_window_s);
  CHECK(c.limits.watched_users == d.limits.watched_users);
  CHECK(c.storage.metadata.max_key_bytes == d.storage.metadata.max_key_bytes);
  CHECK(c.storage.metadata.max_value_bytes == d.storage.metadata.max_value_bytes);
  CHECK(c.storage.metadata.max_call_bytes == d.storage.metadata.max_call_bytes);
  CHECK(c.storage.metadata.max_items_per_call == d.storage.metadata.max_items_per_call);
  CHECK(c.storage.metadata.max_items == d.storage.metadata.max_items);
  CHECK(c.storage.metadata.max_metadata_bytes == d.storage.metadata.max_metadata_bytes);
  CHECK(c.storage.user_metadata_writers == d.storage.user_metadata_writers);
  CHECK(c.storage.channel_metadata_writers == d.storage.channel_metadata_writers);
  CHECK(c.storage.max_metadata_subscriptions == d.storage.max_metadata_subscriptions);
  CHECK(c.inbox.offline == d.inbox.offline);
  CHECK(c.inbox.deliver_on_login == d.inbox.deliver_on_login);
  CHECK(c.inbox.max_messages_per_user == d.inbox.max_messages_per_user);
  CHECK(c.inbox.max_age_s == d.inbox.max_age_s);
  CHECK(c.inbox.max_message_bytes == d.inbox.max_message_bytes);
  CHECK(c.inbox.max_total_bytes == d.inbox.max_total_bytes);
  CHECK(c.modules.timeout_ms == d.modules.timeout_ms);
  CHECK(c.mapping.rules.empty());
  CHECK(c.mapping.echo_ttl_ms == d.mapping.echo_ttl_ms);
  CHECK(c.mapping.max_in_flight == d.mapping.max_in_flight);
  CHECK(c.ops.http_listen == "127.0.0.1:8089");
  CHECK(d.ops.http_listen.empty());
  CHECK(c.ops.uids == std::vector<std::string>{"ops"});
  CHECK(d.ops.uids.empty());
  CHECK(c.state.backend == "sqlite");  // durable in the shipped file, memory by default
  CHECK(d.state.backend == "memory");
  CHECK(c.state.path == std::string(RTM_SOURCE_DIR) + "/.run/state.db");  // beside the file
  CHECK(c.state.synchronous == d.state.synchronous);
  CHECK(restart_only_changes(c, d) == std::vector<std::string>{"auth.token_secret", "ops.http_listen",
                                                               "state.backend", "state.path"});
}

TEST_CASE("config: the public demo secret needs auth.allow_demo_secret") {
  const std::string demo = std::string("auth:\n  token_secret: \"") + rtm::gateway::kDemoTokenSecret + "\"\n";
  const auto problems = problems_of(demo);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].rfind("auth.token_secret: is the public demo secret", 0) == 0);
  CHECK(load_config_text(demo + "  allow_demo_secret: true\n").auth.allow_demo_secret);
}

TEST_CASE("config: secrets from files") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("rtm-config-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  write("secret", kSecret + "\n");
  write("secret-crlf", kSecret + "\r\n");
  write("password", "p4ss");
  write("short", "too short\n");

  SUBCASE("relative to the config file's folder, one trailing line break dropped") {
    const Config c = load_config_text(
        "auth:\n  token_secret_file: secret\nbroker:\n  password_file: password\n", dir.string());
    CHECK(c.auth.token_secret == kSecret);
    CHECK(c.broker.password == "p4ss");
    CHECK(load_config_text("auth:\n  token_secret_file: secret-crlf\n", dir.string()).auth.token_secret ==
          kSecret);
    CHECK(load_config_text("auth:\n  token_secret_file: " + (dir / "secret").string() + "\n")
              .auth.token_secret == kSecret);
  }
  SUBCASE("problems") {
    auto p = problems_of("auth:\n  token_secret: \"" + kSecret + "\"\n  token_secret_file: secret\n");
    REQUIRE(p.size() == 1);
    CHECK(p[0] == "auth.token_secret_file: give token_secret or token_secret_file, not both");
    try {
      load_config_text("auth:\n  token_secret_file: nope\n", dir.string());
      FAIL("accepted");
    } catch (const ConfigError& e) {
      REQUIRE(e.problems().size() == 1);
      CHECK(e.problems()[0] == "auth.token_secret_file: cannot read \"" + (dir / "nope").string() +
                                   "\": No such file or directory");
    }
    try {
      load_config_text("auth:\n  token_secret_file: short\n", dir.string());
      FAIL("accepted");
    } catch (const ConfigError& e) {
      REQUIRE(e.problems().size() == 1);
      CHECK(e.problems()[0].rfind("auth.token_secret_file: the file's content must be at least 32 bytes", 0) == 0);
    }
    p = problems_of("auth:\n  token_secret_file: [a]\n");
    CHECK(p.at(0) == "auth.token_secret_file: expected a file path, got a list");
  }
  fs::remove_all(dir);
}

TEST_CASE("config: log.format and the ops section") {
  CHECK(load_config_text(kAuth + "log:\n  format: json\n").log.format == "json");
  CHECK(problems_of(kAuth + "log:\n  format: xml\n").at(0) ==
        "log.format: expected text or json, got \"xml\"");
  const Config c = load_config_text(kAuth + "ops:\n  http_listen: \"[::1]:9100\"\n  uids: [ops, admin-1]\n");
  CHECK(c.ops.http_listen == "[::1]:9100");
  CHECK(c.ops.uids == std::vector<std::string>{"ops", "admin-1"});
  CHECK(load_config_text(kAuth + "ops:\n  http_listen: \"\"\n").ops.http_listen.empty());
  CHECK(problems_of(kAuth + "ops:\n  http_listen: 8089\n").at(0) ==
        "ops.http_listen: expected host:port (e.g. 127.0.0.1:8089) or \"\" for none, got \"8089\"");
  CHECK(problems_of(kAuth + "ops:\n  uids: [\"a b\"]\n").at(0).rfind("ops.uids[0]: ", 0) == 0);
  CHECK(problems_of(kAuth + "ops:\n  uids: ops\n").at(0) == "ops.uids: expected a list of uids, got \"ops\"");
}

TEST_CASE("config: the storage section refuses bad values with the key path") {
  CHECK(problems_of(kAuth + "storage:\n  user_metadata_writers: anyone\n").at(0) ==
        "storage.user_metadata_writers: expected self or operators, got \"anyone\"");
  CHECK(problems_of(kAuth + "storage:\n  channel_metadata_writers: all\n").at(0) ==
        "storage.channel_metadata_writers: expected members or operators, got \"all\"");
  CHECK(problems_of(kAuth + "storage:\n  max_value_bytes: 0\n").at(0).rfind(
            "storage.max_value_bytes: must be between 1 and ", 0) == 0);
  CHECK(problems_of(kAuth + "storage:\n  max_locks: 3\n").at(0).rfind("storage.max_locks", 0) == 0);
}

TEST_CASE("config: restart_only_changes names the keys a reload cannot apply") {
  const Config a = load_config_text(kAuth);
  Config b = a;
  CHECK(restart_only_changes(a, b).empty());
  b.log.level = "debug";
  b.limits.channels_per_user = 3;
  b.ops.uids = {"ops"};
  CHECK(restart_only_changes(a, b).empty());
  b.topics.prefix = "x";
  b.broker.client_id = "y";
  b.log.format = "json";
  CHECK(restart_only_changes(a, b) ==
        std::vector<std::string>{"broker.client_id", "topics.prefix", "log.format"});
}

TEST_CASE("config: accepted edge values") {
  SUBCASE("broker uri schemes and hosts") {
    for (const char* uri : {"tcp://localhost:1", "mqtt://10.0.0.1:65535", "mqtts://h.example:8883",
                            "ssl://[::1]:8883", "tcp://my_host-1.local:1883"}) {
      CAPTURE(uri);
      const Config c = load_config_text(kAuth + "broker:\n  uri: \"" + uri + "\"\n");
      CHECK(c.broker.uri == uri);
    }
  }
  SUBCASE("secret of exactly 32 bytes") {
    const std::string secret(32, 'k');
    CHECK(load_config_text("auth:\n  token_secret: " + secret + "\n").auth.token_secret == secret);
  }
  SUBCASE("bounds of integer ranges") {
    const Config c = load_config_text(kAuth +
                                      "broker:\n  keepalive_s: 65535\n  reconnect_min_ms: 10\n"
                                      "  reconnect_max_ms: 10\n"
                                      "requests:\n  dedup_window_s: 0\n  dedup_max_entries: 0\n"
                                      "limits:\n  publishers_per_subscription: 1\n");
    CHECK(c.broker.keepalive_s == 65535);
    CHECK(c.broker.reconnect_min_ms == 10);
    CHECK(c.broker.reconnect_max_ms == 10);
    CHECK(c.requests.dedup_window_s == 0);
    CHECK(c.requests.dedup_max_entries == 0);
    CHECK(c.limits.publishers_per_subscription == 1);
  }
  SUBCASE("every log level") {
    for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
      CAPTURE(level);
      CHECK(load_config_text(kAuth + "log:\n  level: " + level + "\n").log.level == level);
    }
  }
  SUBCASE("multi-level prefix") {
    CHECK(load_config_text(kAuth + "topics:\n  prefix: a/b/c\n").topics.prefix == "a/b/c");
  }
}

TEST_CASE("config: each bad config gives its exact problem line") {
  struct Case {
    const char* what;
    std::string yaml;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"bad broker uri", kAuth + "broker:\n  uri: x\n",
       "broker.uri: expected tcp://host:port, got \"x\""},
      {"broker uri without port", kAuth + "broker:\n  uri: tcp://localhost\n",
       "broker.uri: expected tcp://host:port, got \"tcp://localhost\""},
      {"broker uri port 0", kAuth + "broker:\n  uri: tcp://localhost:0\n",
       "broker.uri: expected tcp://host:port, got \"tcp://localhost:0\""},
      {"broker uri port 65536", kAuth + "broker:\n  uri: tcp://localhost:65536\n",
       "broker.uri: expected tcp://host:port, got \"tcp://localhost:65536\""},
      {"broker uri http", kAuth + "broker:\n  uri: http://localhost:80\n",
       "broker.uri: expected tcp://host:port, got \"http://localhost:80\""},
      {"unknown top-level key", kAuth + "bogus: 1\n", "bogus: unknown key"},
      {"unknown nested key", kAuth + "broker:\n  bogus: 1\n", "broker.bogus: unknown key"},
      {"unknown key in auth", kAuth + "  token_secrets: x\n", "auth.token_secrets: unknown key"},
      {"missing auth", "broker:\n  uri: tcp://h:1\n", "auth.token_secret: is required (or auth.token_secret_file)"},
      {"empty document", "", "auth.token_secret: is required (or auth.token_secret_file)"},
      {"auth without token_secret", "auth:\n  token_warn_before_s: 5\n",
       "auth.token_secret: is required (or auth.token_secret_file)"},
      {"empty auth", "auth:\n", "auth.token_secret: is required (or auth.token_secret_file)"},
      {"short secret", "auth:\n  token_secret: short\n",
       "auth.token_secret: must be at least 32 bytes (HS256 needs a key as long as its hash), got 5"},
      {"31-byte secret", "auth:\n  token_secret: " + std::string(31, 'k') + "\n",
       "auth.token_secret: must be at least 32 bytes (HS256 needs a key as long as its hash), got 31"},
      {"secret is a list", "auth:\n  token_secret: [a, b]\n",
       "auth.token_secret: expected a string, got a list"},
      {"non-number", kAuth + "broker:\n  keepalive_s: abc\n",
       "broker.keepalive_s: expected a whole number, got \"abc\""},
      {"fraction", kAuth + "requests:\n  dedup_window_s: 1.5\n",
       "requests.dedup_window_s: expected a whole number, got \"1.5\""},
      {"hex", kAuth + "requests:\n  dedup_window_s: 0x10\n",
       "requests.dedup_window_s: expected a whole number, got \"0x10\""},
      {"number too big for 64 bits", kAuth + "requests:\n  max_payload_bytes: 99999999999999999999\n",
       "requests.max_payload_bytes: expected a whole number, got \"99999999999999999999\""},
      {"number is a mapping", kAuth + "log:\n  stats_interval_s: {a: 1}\n",
       "log.stats_interval_s: expected a whole number, got a mapping"},
      {"out of range low", kAuth + "broker:\n  keepalive_s: 0\n",
       "broker.keepalive_s: must be between 1 and 65535, got 0"},
      {"out of range high", kAuth + "limits:\n  publishers_per_subscription: 65\n",
       "limits.publishers_per_subscription: must be between 1 and 64, got 65"},
      {"negative size", kAuth + "requests:\n  dedup_max_entries: -1\n",
       "requests.dedup_max_entries: must be between 0 and 10000000, got -1"},
      {"payload limit too small", kAuth + "requests:\n  max_payload_bytes: 15\n",
       "requests.max_payload_bytes: must be between 16 and 268435456, got 15"},
      {"reconnect max below min", kAuth + "broker:\n  reconnect_min_ms: 500\n  reconnect_max_ms: 400\n",
       "broker.reconnect_max_ms: must not be below broker.reconnect_min_ms"},
      {"scalar where a mapping is expected", kAuth + "broker: 5\n",
       "broker: expected a mapping, got \"5\""},
      {"list where a mapping is expected", kAuth + "limits: [1, 2]\n",
       "limits: expected a mapping, got a list"},
      {"bad log level", kAuth + "log:\n  level: verbose\n",
       "log.level: expected one of trace, debug, info, warn, error, off, got \"verbose\""},
      {"empty client id", kAuth + "broker:\n  client_id: \"\"\n",
       "broker.client_id: must be 1-64 bytes, got 0"},
      {"client id as a list", kAuth + "broker:\n  client_id: [a]\n",
       "broker.client_id: expected a string, got a list"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto problems = problems_of(c.yaml);
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == c.problem);
  }
}

TEST_CASE("config: an empty or null token_secret counts as missing") {
  // `token_secret:` with no value is YAML null; it must not leave the secret empty.
  for (const std::string& yaml : {std::string("auth:\n  token_secret:\n"),
                                 std::string("auth:\n  token_secret: ~\n"),
                                 std::string("auth: {token_secret: null}\n")}) {
    CAPTURE(yaml);
    const auto problems = problems_of(yaml);
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "auth.token_secret: is required (or auth.token_secret_file)");
  }
  const auto problems = problems_of("auth:\n  token_secret: \"\"\n");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] ==
        "auth.token_secret: must be at least 32 bytes (HS256 needs a key as long as its hash), got 0");
}

TEST_CASE("config: auth that is not a mapping is one problem, not a crash") {
  SUBCASE("scalar") {
    const auto problems = problems_of("auth: 5\n");
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "auth: expected a mapping, got \"5\"");
  }
  SUBCASE("list") {
    const auto problems = problems_of("auth: [a]\n");
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "auth: expected a mapping, got a list");
  }
}

TEST_CASE("config: a document that is not a mapping") {
  for (const char* yaml : {"5\n", "- a\n- b\n", "just text\n"}) {
    CAPTURE(yaml);
    const auto problems = problems_of(yaml);
    INFO("problems:\n" << joined(problems));
    REQUIRE(!problems.empty());
    CHECK(problems[0].rfind("config: expected a mapping, got ", 0) == 0);
  }
}

TEST_CASE("config: a key that is not a scalar is reported, not a crash") {
  const auto problems = problems_of(kAuth + "? [a, b]\n: 1\n");
  INFO("problems:\n" << joined(problems));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "<a list>: unknown key");
}

TEST_CASE("config: invalid YAML names the line") {
  SUBCASE("unclosed flow sequence") {
    const auto problems = problems_of(kAuth + "broker:\n  uri: [tcp://h:1\n");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].rfind("config: not valid YAML at line ", 0) == 0);
  }
  SUBCASE("bad indentation on line 3") {
    const auto problems = problems_of("broker:\n  uri: tcp://h:1\n client_id: x\n");
    REQUIRE(problems.size() == 1);
    INFO(problems[0]);
    CHECK(problems[0].rfind("config: not valid YAML at line 3, column ", 0) == 0);
  }
  SUBCASE("a mapping value inside a plain scalar on line 2") {
    const auto problems = problems_of("auth:\n  token_secret: a: b\n");
    REQUIRE(problems.size() == 1);
    INFO(problems[0]);
    CHECK(problems[0].rfind("config: not valid YAML at line 2, column ", 0) == 0);
  }
}

TEST_CASE("config: several problems are reported together, in order") {
  const std::string yaml =
      "bogus: 1\n"
      "broker:\n  uri: x\n  keepalive_s: abc\n  extra: 2\n"
      "topics:\n  prefix: \"\"\n"
      "auth:\n  token_secret: short\n"
      "log:\n  level: loud\n"
      "limits: 7\n";
  try {
    load_config_text(yaml);
    FAIL("accepted");
  } catch (const ConfigError& e) {
    const std::vector<std::string> expected = {
        "broker.uri: expected tcp://host:port, got \"x\"",
        "broker.keepalive_s: expected a whole number, got \"abc\"",
        "broker.extra: unknown key",
        "topics.prefix: prefix is empty",
        "auth.token_secret: must be at least 32 bytes (HS256 needs a key as long as its hash), got 5",
        "log.level: expected one of trace, debug, info, warn, error, off, got \"loud\"",
        "limits: expected a mapping, got \"7\"",
        "bogus: unknown key",
    };
    CHECK(e.problems() == expected);
    // what() carries every problem, one per line.
    std::string all;
    for (const auto& p : expected) all += (all.empty() ? "" : "\n") + p;
    CHECK(std::string(e.what()) == all);
  }
}

TEST_CASE("config: bad topics.prefix values") {
  struct Case {
    std::string prefix;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"\"\"", "topics.prefix: prefix is empty"},
      {"\"$SYS\"", "topics.prefix: prefix \"$SYS\" starts with '$', which brokers reserve for their own topics"},
      {"\"a//b\"", "topics.prefix: prefix \"a//b\" has an empty level at byte 2"},
      {"\"/rtm\"", "topics.prefix: prefix \"/rtm\" has an empty level at byte 0"},
      {"\"rtm/\"", "topics.prefix: prefix \"rtm/\" has an empty level at byte 4"},
      {"\"rtm/+\"",
       "topics.prefix: prefix is not a valid topic: topic name contains '+' at byte 4 (wildcards are "
       "only allowed in filters)"},
      {"\"rtm/#\"",
       "topics.prefix: prefix is not a valid topic: topic name contains '#' at byte 4 (wildcards are "
       "only allowed in filters)"},
      {"[a, b]", "topics.prefix: expected a string, got a list"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.prefix);
    const auto problems = problems_of(kAuth + "topics:\n  prefix: " + c.prefix + "\n");
    INFO("problems:\n" << joined(problems));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == c.problem);
  }
}

TEST_CASE("config: ConfigError keeps its problems") {
  const ConfigError e({"a.b: one", "c: two"});
  CHECK(e.problems() == std::vector<std::string>{"a.b: one", "c: two"});
  CHECK(std::string(e.what()) == "a.b: one\nc: two");
}

TEST_CASE("config: rabbitmq_http_auth and its keys") {
  const std::string base =
      kAuth + "ops:\n  http_listen: \"127.0.0.1:0\"\n  api_keys: [\"key-0123456789abcdef\"]\n";
  const Config c = load_config_text(base +
                                    "enforcement:\n  rabbitmq_http_auth: true\n"
                                    "  rabbitmq_vhost: iot\n  rabbitmq_password_file: /etc/w\n"
                                    "  rabbitmq_peers: [\"127.0.0.1\", \"::1\"]\n");
  CHECK(c.enforcement.rabbitmq_http_auth);
  CHECK(c.enforcement.rabbitmq_vhost == "iot");
  CHECK(c.enforcement.rabbitmq_password_file == "/etc/w");
  CHECK(c.enforcement.rabbitmq_peers == std::vector<std::string>{"127.0.0.1", "::1"});
  const Config d = load_config_text(kAuth);
  CHECK_FALSE(d.enforcement.rabbitmq_http_auth);
  CHECK(d.enforcement.rabbitmq_vhost == "/");
  // The key is part of RabbitMQ's paths: no keys, no endpoints.
  auto p = problems_of(kAuth +
                       "ops:\n  http_listen: \"127.0.0.1:0\"\n"
                       "enforcement:\n  rabbitmq_http_auth: true\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].rfind("enforcement.rabbitmq_http_auth: needs ops.http_listen and ops.api_keys", 0) ==
        0);
  p = problems_of(base + "topics:\n  prefix: acme.rtm\nenforcement:\n  rabbitmq_http_auth: true\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].find("'.'") != std::string::npos);
  p = problems_of(base + "enforcement:\n  rabbitmq_peers: [\"rabbit.local\"]\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].rfind("enforcement.rabbitmq_peers[0]: expected an IPv4 or IPv6 address", 0) == 0);
  CHECK(joined(problems_of(kAuth + "enforcement:\n  rabbitmq_vhost: \"\"\n"))
            .find("rabbitmq_vhost") != std::string::npos);
}

TEST_CASE("config: state.redis and cluster") {
  SUBCASE("defaults") {
    const Config c = load_config_text(kAuth);
    CHECK(c.state.redis.uri == "redis://127.0.0.1:6379");
    CHECK(c.state.redis.password.empty());
    CHECK(c.state.redis.key_prefix == "rtm");
    CHECK(c.state.redis.connect_timeout_ms == 1000);
    CHECK(c.state.redis.command_timeout_ms == 1000);
    CHECK_FALSE(c.cluster.enabled);
    CHECK(c.cluster.group == "rtm");
    CHECK(c.cluster.turn_lease_ms == 2000);
    CHECK(c.cluster.log_retention_s == 600);
  }
  SUBCASE("every key read") {
    const Config c = load_config_text(kAuth +
                                      "state:\n  backend: redis\n  redis:\n"
                                      "    uri: unix:///run/redis/redis.sock?db=2\n"
                                      "    password: pw\n    key_prefix: acme:rtm-1\n"
                                      "    connect_timeout_ms: 250\n    command_timeout_ms: 300\n"
                                      "cluster:\n  enabled: true\n  group: gw-eu\n"
                                      "  turn_lease_ms: 5000\n  log_retention_s: 3600\n");
    CHECK(c.state.backend == "redis");
    CHECK(c.state.redis.uri == "unix:///run/redis/redis.sock?db=2");
    CHECK(c.state.redis.password == "pw");
    CHECK(c.state.redis.key_prefix == "acme:rtm-1");
    CHECK(c.state.redis.connect_timeout_ms == 250);
    CHECK(c.state.redis.command_timeout_ms == 300);
    CHECK(c.cluster.enabled);
    CHECK(c.cluster.group == "gw-eu");
    CHECK(c.cluster.turn_lease_ms == 5000);
    CHECK(c.cluster.log_retention_s == 3600);
  }
  SUBCASE("redis without a cluster: one gateway, durable in Redis") {
    const Config c = load_config_text(kAuth + "state:\n  backend: redis\n");
    CHECK(c.state.backend == "redis");
    CHECK_FALSE(c.cluster.enabled);
  }
  SUBCASE("the password from a file") {
    namespace fs = std::filesystem;
    const fs::path dir =
        fs::temp_directory_path() / ("rtm-config-redis-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "redis.pw", std::ios::binary) << "r3dis\n";
    const Config c = load_config_text(
        kAuth + "state:\n  backend: redis\n  redis:\n    password_file: redis.pw\n", dir.string());
    CHECK(c.state.redis.password == "r3dis");
    fs::remove_all(dir);
  }
  SUBCASE("problems, with their key paths") {
    CHECK(problems_of(kAuth + "cluster:\n  enabled: true\n").at(0) ==
          "cluster.enabled: needs state.backend: redis (the gateways of a cluster share their "
          "state there; with \"memory\" each would answer from its own)");
    CHECK(
        problems_of(kAuth + "state:\n  backend: sqlite\n  path: x.db\ncluster:\n  enabled: true\n")
            .at(0)
            .rfind("cluster.enabled: needs state.backend: redis", 0) == 0);
    CHECK(problems_of(kAuth + "state:\n  backend: redis\ncluster:\n  enabled: true\n"
                              "history:\n  streams:\n    - {channel: lobby, topic: chat}\n")
              .at(0)
              .rfind("history.streams: not shared between gateways yet; ", 0) == 0);
    CHECK(problems_of(kAuth + "state:\n  backend: redis\ncluster:\n  enabled: true\n"
                              "broker:\n  uri: tcp://127.0.0.1:1883\n  profile: rabbitmq\n")
              .at(0)
              .rfind("cluster.enabled: RabbitMQ's MQTT plugin (3.10, Debian 12) has no shared ", 0) ==
          0);
    CHECK(problems_of(kAuth + "state:\n  backend: postgres\n").at(0) ==
          "state.backend: expected memory, sqlite or redis, got \"postgres\"");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    uri: http://x:1\n").at(0) ==
          "state.redis.uri: a Redis URI starts with redis:// or unix://, got \"http://x:1\"");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    uri: redis://h:99999\n").at(0) ==
          "state.redis.uri: the port of a Redis URI is 1-65535, got \"redis://h:99999\"");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    uri: redis://:a@h\n    password: b\n")
              .at(0)
              .rfind("state.redis.password: the password is given in state.redis.uri too", 0) == 0);
    CHECK(problems_of(kAuth + "state:\n  redis:\n    password: a\n    password_file: b\n").at(0) ==
          "state.redis.password_file: give password or password_file, not both");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    key_prefix: \"rtm{1}\"\n").at(0) ==
          "state.redis.key_prefix: may hold letters, digits, '-', '_', '.' and ':' only, got "
          "\"rtm{1}\" (byte 3)");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    key_prefix: \"\"\n").at(0) ==
          "state.redis.key_prefix: must be 1-64 bytes, got 0");
    CHECK(problems_of(kAuth + "state:\n  redis:\n    command_timeout_ms: 0\n")
              .at(0)
              .rfind("state.redis.command_timeout_ms: must be between 1 and ", 0) == 0);
    CHECK(problems_of(kAuth + "state:\n  redis:\n    what: 1\n").at(0) ==
          "state.redis.what: unknown key");
    for (const char* group : {"a/b", "\"+\"", "\"#\"", "$g", "\"\""}) {
      CAPTURE(group);
      CHECK(problems_of(kAuth + "cluster:\n  group: " + group + "\n")
                .at(0)
                .rfind("cluster.group: ", 0) == 0);
    }
    CHECK(problems_of(kAuth + "cluster:\n  turn_lease_ms: 10\n").at(0) ==
          "cluster.turn_lease_ms: must be between 100 and 60000, got 10");
    CHECK(problems_of(kAuth + "cluster:\n  log_retention_s: 1\n").at(0) ==
          "cluster.log_retention_s: must be between 10 and 604800, got 1");
  }
  SUBCASE("restart-only") {
    const Config a = load_config_text(kAuth);
    Config b = a;
    b.state.redis.uri = "redis://other:6379";
    b.state.redis.key_prefix = "x";
    b.cluster.enabled = true;
    b.cluster.group = "g";
    b.cluster.turn_lease_ms = 1;
    CHECK(restart_only_changes(a, b) ==
          std::vector<std::string>{"state.redis.uri", "state.redis.key_prefix", "cluster.enabled",
                                   "cluster.group", "cluster.turn_lease_ms"});
  }
}

TEST_CASE("config: mapping.mode picks who carries the rules out, relay by default") {
  CHECK(load_config_text(kAuth).mapping.mode == rtm::gateway::BridgeMode::relay);
  CHECK(load_config_text(kAuth + "mapping:\n  mode: broker\n").mapping.mode ==
        rtm::gateway::BridgeMode::broker);
  auto bad = problems_of(kAuth + "mapping:\n  mode: inside\n");
  REQUIRE(bad.size() == 1);
  CHECK(bad[0] == "mapping.mode: expected relay or broker, got \"inside\"");
  // Only Mosquitto has the project's plugin.
  auto emqx = problems_of(kAuth + "broker:\n  profile: emqx\nmapping:\n  mode: broker\n");
  REQUIRE(emqx.size() == 1);
  CHECK(emqx[0].rfind("mapping.mode: broker needs Mosquitto", 0) == 0);
}

TEST_CASE("config: keep_source false is read for inbound rules and refused for outbound ones") {
  const std::string rules = kAuth + R"(mapping:
  rules:
    - name: in
      source: "dev/{id}/x"
      target: {channel: c, topic: t, publisher: "{id}"}
      keep_source: false
)";
  auto c = load_config_text(rules);
  REQUIRE(c.mapping.rules.size() == 1);
  CHECK_FALSE(c.mapping.rules[0].keep_source);
  auto out = problems_of(kAuth + R"(mapping:
  rules:
    - name: out
      direction: outbound
      source: {channel: c, topic: t, publisher: "+"}
      target: "dev/state"
      keep_source: false
)");
  REQUIRE(out.size() == 1);
  CHECK(out[0].rfind("mapping.rules[0].keep_source: false is for inbound rules only", 0) == 0);
}
