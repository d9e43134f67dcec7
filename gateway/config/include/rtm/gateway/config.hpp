#pragma once
// Gateway configuration: loaded from YAML, validated with the key path in every
// message, then used. Defaults here are the documented defaults of config.yaml.
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "rtm/history/streams.hpp"
#include "rtm/mapping/rules.hpp"
#include "rtm/storage/locks.hpp"
#include "rtm/storage/metadata.hpp"
#include "rtm/storage/states.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::gateway {

struct BrokerConfig {
  std::string uri = "tcp://127.0.0.1:1883";
  std::string client_id = "rtm-gateway";
  std::string username = "rtm-gateway";
  std::string password;  // or password_file (secrets: see Config)
  int keepalive_s = 30;
  int connect_timeout_s = 5;
  int reconnect_min_ms = 100;
  int reconnect_max_ms = 5000;
  // native: the gateway's own lean MQTT client (tcp:// only); paho: Eclipse Paho (also
  // ssl://). Default: native for tcp://, paho for ssl://.
  std::string client;
  // Keep the MQTT session across reconnects (clean session off), so that QoS 1 requests
  // and Wills that arrive while the gateway is away wait for it in the broker. With
  // cluster.enabled the shared subscriptions are part of that session: a gateway that is
  // away still gets its share of requests queued until it returns (measured on Mosquitto
  // 2.0.11), answered late, not by the others. Kept as configured: the share of a crashed
  // gateway is answered once it is back; false makes the broker drop it from the group.
  bool persistent_session = true;
  // Largest message payload the gateway takes from the broker; a larger one is skipped
  // and counted, never a reason to drop the link. Set Mosquitto's message_size_limit to
  // the same value (the shipped configs do).
  std::size_t max_message_bytes = 1048576;
  // Which broker this is: its topic rules decide which names are refused (RabbitMQ makes
  // a '.' a level separator) and how the gateway reads presence (docs/protocol.md#names).
  topics::BrokerProfile profile = topics::BrokerProfile::mosquitto;
};

struct TopicsConfig {
  std::string prefix = "rtm";
};

// The public secret of the shipped config.yaml: refused unless auth.allow_demo_secret.
inline constexpr const char* kDemoTokenSecret = "demo-secret-change-me-0123456789abcdef";

struct AuthConfig {
  std::string token_secret;  // required, >= 32 bytes; or token_secret_file
  bool allow_demo_secret = false;  // a local trial may use kDemoTokenSecret
  int token_warn_before_s = 30;
  int max_token_ttl_s = 7 * 24 * 3600;  // `rtm-gateway token` refuses longer
};

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error
  std::string format = "text";  // text, or json (one object per line)
  int stats_interval_s = 60;   // 0 turns the periodic counters line off
};

// The largest values the request limits may take. A request topic within the first two has
// a mirrored response topic (one level, two bytes longer) that MQTT and Mosquitto take; the
// gateway relies on that wherever it answers on the mirror.
inline constexpr std::size_t kMaxRequestTopicBytes = 60000;
inline constexpr std::size_t kMaxRequestTopicLevels = 120;
inline constexpr std::size_t kMaxMsgIdBytes = 1024;

struct RequestsConfig {
  std::size_t max_payload_bytes = 65536;
  // The request topic: beyond these it is answered TOPIC_TOO_LONG on P/u/{uid}/res, since
  // its mirrored response topic would be longer still.
  std::size_t max_topic_bytes = 1024;
  std::size_t max_topic_levels = 32;
  std::size_t max_msg_id_bytes = 64;
  int dedup_window_s = 30;
  std::size_t dedup_max_entries = 100000;
  std::size_t dedup_max_bytes = 64 * 1024 * 1024;       // all users together
  std::size_t dedup_max_bytes_per_uid = 1024 * 1024;    // one user's share
  std::size_t queue_capacity = 100000;                  // inbound messages waiting for the loop
  std::size_t queue_max_bytes = 64 * 1024 * 1024;       // and their bytes
  // Per uid: a token bucket of `burst` requests refilled at `rate_per_s`; a request beyond
  // it is answered RATE_LIMITED, at most `refusals_per_s` times a second, and dropped
  // unanswered (counted) past that.
  double rate_per_s = 50;
  double burst = 200;
  double refusals_per_s = 5;
};

struct PresenceConfig {
  // After the broker lost the gateway's MQTT session (it restarted without persistence),
  // the Wills of users who dropped meanwhile are gone too: every session must show it is
  // alive (its device republishes presence, or it sends a request) within this time, or
  // it is ended as timed out.
  int reaffirm_grace_s = 30;
};

struct LimitsConfig {
  int channels_per_user = 50;
  int topics_per_channel = 8;  // topics one user publishes in, per channel
  int members_per_channel = 10000;
  int publishers_per_subscription = 64;  // per (subscriber, channel, topic)
  int subscribed_topics_per_channel = 50;  // topics one user subscribes in, per channel
  int watched_users = 1000;
  int message_channels_per_user = 50;           // message channels one session subscribes to
  int subscribers_per_message_channel = 10000;  // sessions subscribed to one message channel
};

// The bridge: mapping rules between device topics and the RTM tree (docs/mapping.md).
// Who carries the mapping rules out: the gateway, as a relay through the broker (any
// broker), or the broker itself through the project's Mosquitto plugin (zero hop).
enum class BridgeMode { relay, broker };

struct MappingConfig {
  BridgeMode mode = BridgeMode::relay;  // [restart]
  std::vector<mapping::RuleSpec> rules;
  std::vector<mapping::PresenceRuleSpec> presence;
  // Compiled and checked at load (loops, captures, names); shared, immutable.
  std::shared_ptr<const mapping::RuleSet> compiled;
  int echo_ttl_ms = 5000;             // how long the gateway remembers what it published
  std::size_t qos0_queue = 10000;     // bridged QoS 0 messages waiting; oldest dropped beyond
  std::size_t qos1_queue = 10000;     // bridged QoS 1 messages waiting; reading pauses beyond
  std::size_t max_in_flight = 2000;   // bridged messages handed to the broker link, not yet sent
};

// Module RPC and the HTTP proxy: absolute-URI requests (docs/modules.md).
struct ModulesConfig {
  int timeout_ms = 10000;                  // a worker's answer deadline; TIMEOUT after it
  std::size_t max_pending = 10000;         // requests waiting for workers and HTTP backends
  std::size_t max_pending_per_user = 32;   // of them, per uid (RATE_LIMITED beyond)
  std::size_t max_result_bytes = 1048576;  // largest worker result or HTTP body relayed
  std::size_t cache_max_entries = 100000;  // uid -> node memory of the `cache` rule
  int http_threads = 4;                    // threads making HTTP calls
  bool require_login = true;               // module requests need a live session, as RTM ops do
  // After the gateway (re)connects, a request for a module with no known node waits this
  // long for the nodes to announce themselves again (0: answered NO_ROUTE at once).
  int announce_wait_ms = 3000;
};

// One allow-listed HTTP backend: `http://NAME/...` and `https://NAME/...` call it.
struct HttpBackendConfig {
  std::string base_url;   // http(s)://host[:port][/path]
  std::string scheme;     // parsed from base_url: "http" or "https"
  std::string host;       // parsed: host name, IPv4, or "[v6]"
  int port = 0;           // parsed, or the scheme's default
  std::string base_path;  // parsed: "" or "/path" without a trailing '/'
  int timeout_ms = 10000;
  std::vector<std::pair<std::string, std::string>> headers;  // set on every call
  std::vector<std::string> pass_headers{"Content-Type", "Accept"};  // caller headers let through
  std::string uid_header = "X-RTM-Uid";  // carries the caller's uid
  std::string ca_file;                   // https: CA bundle (PEM); empty = the system's
};

// Operations: the HTTP listener (health, readiness, Prometheus metrics) and operators.
struct OpsConfig {
  std::string http_listen;        // "host:port"; empty: no listener
  std::vector<std::string> uids;  // may call the `stats` and `kick` requests
  // Bearer keys for the listener's operator endpoints (POST /v1/kick, POST /v1/authz);
  // without one those endpoints answer 403. Each at least kMinApiKeyBytes.
  std::vector<std::string> api_keys;
};
inline constexpr std::size_t kMinApiKeyBytes = 16;

// The server HTTP API for app servers (docs/http-api.yaml), served on the operations
// listener. A key's rights: publish (POST /v1/publish), read (the GET routes), admin
// (metadata writes, kick, tokens; admin implies the others).
enum ApiRight : unsigned { kRightPublish = 1, kRightRead = 2, kRightAdmin = 4 };
struct HttpApiKey {
  std::string key;      // a secret: `key` or `key_file`; at least kMinApiKeyBytes
  unsigned rights = 0;  // ApiRight bits
};
struct HttpApiConfig {
  std::vector<HttpApiKey> keys;            // none: the API's routes answer 403
  std::size_t max_body_bytes = 64 * 1024;  // a request body, also a published payload
  double rate_per_s = 100;  // requests per second per key (token bucket); 0: no limit
  int burst = 200;
  int threads = 4;  // HTTP threads for API calls, besides the probes' two
};

// Broker-side enforcement of the RTM rules (docs/security.md, "Broker-enforced channels").
struct EnforcementConfig {
  // Publish grant records on P/gateway/grants for the project's Mosquitto plugin
  // (plugin_opt_enforce_grants true), and a full set after every connect.
  bool publish_grants = false;
  // Answer EMQX's HTTP authorization requests on the operations listener (POST /v1/authz).
  bool http_authz = false;
  // Answer RabbitMQ's HTTP auth backend (rabbitmq_auth_backend_http) on the operations
  // listener: POST /v1/rabbitmq/{ops.api_keys key}/{user,vhost,resource,topic}.
  bool rabbitmq_http_auth = false;
  std::string rabbitmq_vhost = "/";  // the vhost of RabbitMQ's mqtt.vhost
  // Service users besides the gateway itself (module workers), mosquitto_passwd format;
  // relative to the config file. Empty: only the gateway (broker.username/password).
  std::string rabbitmq_password_file;
  // Peer addresses the RabbitMQ endpoints answer ("127.0.0.1", "::1", ...); empty: any.
  std::vector<std::string> rabbitmq_peers;
  // A logout also closes the user's MQTT connections, shortly after its answer.
  bool close_on_logout = true;
};
// How long after a logout's answer, a kick or a replacing login the broker closes the user's
// connections: the answer and the session event reach the client first.
inline constexpr int kSessionCloseDelayMs = 500;

struct ChannelsConfig {
  // Channel name patterns ('*' any run of characters, '?' one) whose who_now any logged-in
  // user may ask and which where_now shows to anyone; other channels only to their members.
  std::vector<std::string> public_presence;
  // Whether `join` of a stream channel, and `subscribe_channel` of a message channel, need
  // a channel token (a login token whose `channel` claim names the channel).
  bool stream_token_required = false;
  bool message_token_required = false;
};

// User and channel metadata (issue 15, docs/protocol.md "Metadata"). The size limits are
// the storage model's (storage/README.md), with its defaults.
struct StorageConfig {
  storage::MetadataLimits metadata;
  // Who writes a user's metadata: "self" (the user, and operators) or "operators" only.
  std::string user_metadata_writers = "self";
  // Who writes a channel's metadata: "members" (and operators) or "operators" only.
  std::string channel_metadata_writers = "members";
  // Users whose metadata one session subscribes to at once (LIMIT_METADATA_SUBSCRIPTIONS).
  int max_metadata_subscriptions = 1000;
  // Presence states (set_state): sizes per user per channel.
  storage::StateLimits states;
  // Locks (set_lock, acquire_lock, ...): ttl range, locks per channel, waiters per lock.
  storage::LockLimits locks;
  // Who sets, removes and revokes locks: "members" (RTM 2's default) or "operators".
  std::string lock_managers = "members";
  // A lock name that guards channel metadata: in a channel where it is set, only its holder
  // writes the channel's metadata. Empty: no guard (a call may still name a lock).
  std::string channel_metadata_lock;
};

// Channel history (docs/protocol.md, "History"): the streams whose messages the gateway
// reads and keeps. A stream (channel, topic) takes the limits of the first rule whose
// patterns ('*' any run, '?' one character) match it; no rule, no history.
struct HistoryRule {
  std::string channel = "*";
  std::string topic = "*";
  history::Limits limits;  // size, age_s, max_bytes, max_message_bytes
};
struct HistoryConfig {
  std::vector<HistoryRule> streams;
  history::TotalLimits total;  // max_streams, max_total_bytes
  int max_page = 1000;         // messages in one history answer
  // The first rule for (channel, topic), or nullptr.
  const HistoryRule* rule_for(std::string_view channel, std::string_view topic) const;
};

// Peer messages for users without a live session (docs/protocol.md, "Peer-to-peer"): the
// gateway keeps them in the state store and hands them over at the user's next login.
struct InboxConfig {
  // Keep peer messages to users without a live session (the gateway then reads
  // P/u/+/inbox/+); false: a message to an offline user is lost, as with plain MQTT.
  bool offline = true;
  // Deliver what was kept right after the login answer; false: the app pulls it with
  // inbox_history (and acknowledges what it has with `ack`).
  bool deliver_on_login = true;
  std::int64_t max_messages_per_user = 100;           // beyond it the user's oldest go first
  std::int64_t max_age_s = 604800;                    // older messages are dropped (7 days)
  std::int64_t max_message_bytes = 32768;             // a bigger message is refused (LIMIT_INBOX)
  std::int64_t max_total_bytes = 64LL * 1024 * 1024;  // of every inbox; past it, refused
};

// Call invitations (docs/protocol.md, "Call invitations").
struct InvitationsConfig {
  std::int64_t ack_timeout_s = 30;        // not acknowledged by the callee: PEER_NO_RESPONSE
  std::int64_t expire_s = 60;             // no answer this long after receipt: INVITATION_EXPIRE
  std::int64_t max_per_caller = 16;       // invitations in flight sent by one user
  std::int64_t max_per_callee = 16;       // invitations in flight to one user
  std::int64_t max_total = 100000;        // invitations in flight, in all
  std::int64_t max_content_bytes = 8192;  // content, and the callee's response
};

// Where the RTM state lives (docs/state.md). "memory" keeps it in the process only (tests,
// benchmarks); "sqlite" makes every change durable in one file before the answer that
// reports it goes out; "redis" shares it between the gateways of a cluster (docs/cluster.md).
struct RedisStateConfig {
  std::string uri = "redis://127.0.0.1:6379";  // redis://[:pw@]host[:port][/db], unix:///path
  std::string password;                         // or password_file (a secret, as auth's)
  std::string key_prefix = "rtm";               // every key this cluster writes: "{prefix}:..."
  std::int64_t connect_timeout_ms = 1000;
  std::int64_t command_timeout_ms = 1000;
};
struct StateConfig {
  std::string backend = "memory";  // memory | sqlite | redis
  std::string path;                // sqlite: the database file (relative: to the config file)
  // sqlite: "normal" loses nothing committed when the gateway crashes or is killed, and may
  // lose the last commits on a power loss; "full" also survives that, at an fsync per commit.
  std::string synchronous = "normal";
  RedisStateConfig redis;
};

// Several gateways on one shared state (state.backend: redis) and one broker or broker
// cluster (docs/cluster.md).
struct ClusterConfig {
  bool enabled = false;
  // The shared subscription group: requests, presence, device topics and peer messages
  // reach one gateway of the group ($share/{group}/...). Gateways of one cluster share it.
  std::string group = "rtm";
  // How long a gateway may hold the cluster's turn; a gateway that dies holding it delays
  // the others this long at most. A turn that outlives it is discarded (docs/cluster.md).
  std::int64_t turn_lease_ms = 2000;
  // How long the shared change log keeps entries: a gateway that was away longer reloads
  // the whole state when it comes back.
  std::int64_t log_retention_s = 600;
};

// Secrets (auth.token_secret, broker.password) may be given inline or as KEY_file: the
// path of a file holding the value (a trailing line break is dropped), as Docker and
// systemd hand secrets over. A relative path is relative to the config file's folder.
struct Config {
  BrokerConfig broker;
  TopicsConfig topics;
  AuthConfig auth;
  LogConfig log;
  RequestsConfig requests;
  LimitsConfig limits;
  PresenceConfig presence;
  MappingConfig mapping;
  ModulesConfig modules;
  std::map<std::string, HttpBackendConfig> http_backends;  // by NAME
  OpsConfig ops;
  HttpApiConfig http_api;
  StateConfig state;
  ClusterConfig cluster;
  EnforcementConfig enforcement;
  ChannelsConfig channels;
  StorageConfig storage;
  HistoryConfig history;
  InboxConfig inbox;
  InvitationsConfig invitations;
};

// Thrown at start-up when a config cannot be used; one message per problem, each
// starting with the key path ("broker.uri: expected tcp://host:port, got \"x\"").
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// nullopt when `uri` is a broker URI the gateway can use (tcp://host:port, ssl://host:port).
std::optional<std::string> broker_uri_error(const std::string& uri);
// nullopt when `listen` is "host:port" (or empty: no listener).
std::optional<std::string> host_port_error(const std::string& listen);

Config load_config_file(const std::string& path);
// `base_dir` resolves relative *_file paths (default: the working directory).
Config load_config_text(const std::string& yaml_text, const std::string& base_dir = "");

// What `next` changes that only a restart applies ("broker.uri", ...): SIGHUP keeps the
// running values of these keys and says so.
std::vector<std::string> restart_only_changes(const Config& running, const Config& next);

}  // namespace rtm::gateway
