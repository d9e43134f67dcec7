#pragma once
// A connection to Redis for the gateway's shared state (issue 19): commands, pipelines and
// Lua scripts as values in and values out, errors as values (Expected), never an exception
// on the request path. One connection per owner, used from one thread. While Redis is
// unreachable every call fails at once with `unavailable` and the next connection attempt
// waits for a backoff that doubles up to `backoff_max`, so a dead Redis costs no time per
// request and is not hammered; the first call after the backoff reconnects.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/topics/expected.hpp"

struct redisContext;
struct redisReply;

namespace rtm::gateway::redis {

// One RESP reply, owned. `text` holds strings, statuses and errors; `elements` arrays.
struct Reply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  std::int64_t integer = 0;
  std::string text;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }
};

enum class Failure {
  unavailable,  // not connected, or the connection broke during the call (it may have run)
  timeout,      // no answer within command_timeout (the connection is dropped)
  refused,      // Redis answered with an error (a script's error, WRONGTYPE, NOAUTH, ...)
  too_large,    // a reply over max_reply_bytes (the connection is dropped)
  invalid,      // a bad argument (empty command)
};
std::string_view failure_name(Failure f);

struct RedisError {
  Failure kind = Failure::unavailable;
  std::string message;
};

template <class T>
using Result = rtm::Expected<T, RedisError>;

// Where Redis listens: redis://[:password@]host[:port][/db] or unix:///path/to.sock[?db=N].
struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;  // set: a Unix socket, host and port unused
  int db = 0;
  std::string password;  // from the URI; a password file is the better place
};
rtm::Expected<Endpoint> parse_uri(std::string_view uri);

struct ConnectionOptions {
  Endpoint endpoint;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  // A reply larger than this (all strings and elements) is refused: the state never needs
  // one, and a runaway key must not take the gateway's memory.
  std::size_t max_reply_bytes = 64u << 20;
};

// A Lua script with its SHA-1, for EVALSHA (the script is sent only when Redis lacks it).
struct Script {
  std::string source;
  std::string sha1;  // lower-case hex
  static Script from(std::string source);
};

struct ConnectionStats {
  std::uint64_t round_trips = 0;   // commands or pipelines sent and answered
  std::uint64_t connects = 0;      // successful connections, the first included
  std::uint64_t failures = 0;      // calls that failed unavailable, timeout or too_large
  std::uint64_t script_loads = 0;  // NOSCRIPT answered: the script was sent
};

// The owned conversion of a hiredis reply, bounded by `max_bytes` (false when over).
bool convert_reply(const redisReply& in, std::size_t max_bytes, Reply& out);

class Connection {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Connection(
      ConnectionOptions options,
      std::function<Clock::time_point()> now = [] { return Clock::now(); });
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One command, e.g. {"HSET", key, field, value}. A Redis error reply is a `refused` error.
  Result<Reply> command(const std::vector<std::string>& args);
  // Several commands in one round trip; each reply in order (error replies included as
  // values: MULTI/EXEC and WATCH callers read them).
  Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA, and EVAL when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
  Result<Reply> eval(const Script& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);

  bool connected() const { return context_ != nullptr; }
  // The last connection attempt reached Redis, which refused its AUTH or SELECT.
  bool credentials_refused() const { return credentials_refused_; }
  const ConnectionStats& stats() const { return stats_; }

 private:
  Result<bool> ensure_connected();
  RedisError fail(Failure kind, std::string message);
  void disconnect();

  ConnectionOptions options_;
  std::function<Clock::time_point()> now_;
  redisContext* context_ = nullptr;
  Clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
  std::string last_error_;
  ConnectionStats stats_;
  bool credentials_refused_ = false;
};

}  // namespace rtm::gateway::redis
