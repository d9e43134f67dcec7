#include "rtm/gateway/redis.hpp"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>

namespace rtm::gateway::redis {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool parse_int(std::string_view text, int& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// A command's arguments as hiredis takes them (binary-safe: pointers and lengths).
struct Argv {
  explicit Argv(const std::vector<std::string>& args) {
    pointers.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
      pointers.push_back(a.data());
      lengths.push_back(a.size());
    }
  }
  int count() const { return static_cast<int>(pointers.size()); }
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
};

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using OwnedReply = std::unique_ptr<redisReply, ReplyDeleter>;

bool convert(const redisReply& in, std::size_t& budget, Reply& out) {
  auto take = [&](std::size_t n) {
    if (n > budget) return false;
    budget -= n;
    return true;
  };
  switch (in.type) {
    case REDIS_REPLY_NIL:
      out.type = Reply::Type::nil;
      return true;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = in.integer;
      return true;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = in.type == REDIS_REPLY_STRING   ? Reply::Type::string
                 : in.type == REDIS_REPLY_STATUS ? Reply::Type::status
                                                 : Reply::Type::error;
      if (!take(in.len)) return false;
      out.text.assign(in.str, in.len);
      return true;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      // Each element costs at least its header: a reply of millions of nils is bounded too.
      if (!take(in.elements * sizeof(Reply))) return false;
      out.elements.resize(in.elements);
      for (std::size_t i = 0; i < in.elements; ++i) {
        if (in.element[i] == nullptr || !convert(*in.element[i], budget, out.elements[i])) {
          return false;
        }
      }
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string_view failure_name(Failure f) {
  switch (f) {
    case Failure::unavailable:
      return "unavailable";
    case Failure::timeout:
      return "timeout";
    case Failure::refused:
      return "refused";
    case Failure::too_large:
      return "too_large";
    case Failure::invalid:
      return "invalid";
  }
  return "unknown";
}

rtm::Expected<Endpoint> parse_uri(std::string_view uri) {
  Endpoint e;
  constexpr std::string_view kTcp = "redis://";
  constexpr std::string_view kUnix = "unix://";
  if (uri.substr(0, kUnix.size()) == kUnix) {
    std::string_view rest = uri.substr(kUnix.size());
    const auto query = rest.find('?');
    e.unix_path = std::string(rest.substr(0, query));
    if (e.unix_path.empty() || e.unix_path[0] != '/') {
      return rtm::Error{
          "a unix:// Redis URI names an absolute socket path: unix:///path/redis.sock"};
    }
    if (query != std::string_view::npos) {
      std::string_view q = rest.substr(query + 1);
      if (q.substr(0, 3) != "db=" || !parse_int(q.substr(3), e.db) || e.db < 0) {
        return rtm::Error{"the only query of a unix:// Redis URI is db=N"};
      }
    }
    return e;
  }
  if (uri.substr(0, kTcp.size()) != kTcp) {
    return rtm::Error{"a Redis URI starts with redis:// or unix://"};
  }
  std::string_view rest = uri.substr(kTcp.size());
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    if (const auto colon = auth.find(':'); colon != std::string_view::npos)
      auth = auth.substr(colon + 1);
    e.password = std::string(auth);
    rest = rest.substr(at + 1);
  }
  const auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, e.db) || e.db < 0)) {
      return rtm::Error{"the database of a Redis URI is a number: redis://host:6379/0"};
    }
  }
  const auto colon = hostport.rfind(':');
  if (colon != std::string_view::npos) {
    if (!parse_int(hostport.substr(colon + 1), e.port) || e.port < 1 || e.port > 65535) {
      return rtm::Error{"the port of a Redis URI is 1-65535"};
    }
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return rtm::Error{"a Redis URI names a host: redis://127.0.0.1:6379"};
  e.host = std::string(hostport);
  return e;
}

Script Script::from(std::string source) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  std::string hex;
  hex.reserve(2 * SHA_DIGEST_LENGTH);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0xf]);
  }
  return Script{std::move(source), std::move(hex)};
}

bool convert_reply(const redisReply& in, std::size_t max_bytes, Reply& out) {
  std::size_t budget = max_bytes;
  return convert(in, budget, out);
}

Connection::Connection(ConnectionOptions options, std::function<Clock::time_point()> now)
    : options_(std::move(options)), now_(std::move(now)) {}

Connection::~Connection() {
  disconnect();
}

void Connection::disconnect() {
  if (context_ != nullptr) {
    redisFree(context_);
    context_ = nullptr;
  }
}

RedisError Connection::fail(Failure kind, std::string message) {
  ++stats_.failures;
  if (kind == Failure::unavailable || kind == Failure::timeout || kind == Failure::too_large) {
    // The connection's state is unknown past these: drop it, retry after the backoff.
    disconnect();
    backoff_ =
        backoff_.count() == 0 ? options_.backoff_min : std::min(backoff_ * 2, options_.backoff_max);
    retry_at_ = now_() + backoff_;
  }
  last_error_ = message;
  return RedisError{kind, std::move(message)};
}

Result<bool> Connection::ensure_connected() {
  if (context_ != nullptr) return true;
  if (now_() < retry_at_) {
    ++stats_.failures;
    return RedisError{Failure::unavailable, "Redis is unreachable (" + last_error_ +
                                                "); the next attempt is after the backoff"};
  }
  const auto& e = options_.endpoint;
  redisContext* c =
      e.unix_path.empty()
          ? redisConnectWithTimeout(e.host.c_str(), e.port, to_timeval(options_.connect_timeout))
          : redisConnectUnixWithTimeout(e.unix_path.c_str(), to_timeval(options_.connect_timeout));
  const std::string where =
      e.unix_path.empty() ? e.host + ":" + std::to_string(e.port) : e.unix_path;
  if (c == nullptr) return fail(Failure::unavailable, "cannot allocate a Redis context");
  if (c->err != 0) {
    std::string message = "connect to " + where + ": " + c->errstr;
    redisFree(c);
    return fail(Failure::unavailable, std::move(message));
  }
  redisSetTimeout(c, to_timeval(options_.command_timeout));
  redisEnableKeepAlive(c);
  context_ = c;
  // AUTH and SELECT before anything else, in one round trip.
  std::vector<std::vector<std::string>> hello;
  if (!e.password.empty()) hello.push_back({"AUTH", e.password});
  if (e.db != 0) hello.push_back({"SELECT", std::to_string(e.db)});
  for (const auto& cmd : hello) {
    Argv argv(cmd);
    OwnedReply r(static_cast<redisReply*>(
        redisCommandArgv(context_, argv.count(), argv.pointers.data(), argv.lengths.data())));
    if (!r) return fail(Failure::unavailable, "connect to " + where + ": " + context_->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
      std::string message = cmd[0] + " refused by " + where + ": " + std::string(r->str, r->len);
      // A wrong password or database stays wrong: back off as for an unreachable server.
      credentials_refused_ = true;
      return fail(Failure::unavailable, std::move(message));
    }
  }
  ++stats_.connects;
  credentials_refused_ = false;
  backoff_ = std::chrono::milliseconds{0};
  return true;
}

Result<std::vector<Reply>> Connection::pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  for (const auto& cmd : commands) {
    if (cmd.empty()) return RedisError{Failure::invalid, "an empty Redis command"};
  }
  if (auto up = ensure_connected(); !up) return up.error();
  for (const auto& cmd : commands) {
    Argv argv(cmd);
    if (redisAppendCommandArgv(context_, argv.count(), argv.pointers.data(), argv.lengths.data()) !=
        REDIS_OK) {
      return fail(Failure::unavailable, std::string("Redis: ") + context_->errstr);
    }
  }
  const auto started = now_();
  std::vector<Reply> replies(commands.size());
  for (auto& out : replies) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      const bool timed_out =
          (errno == EAGAIN || errno == EWOULDBLOCK) || now_() - started >= options_.command_timeout;
      std::string message = std::string("Redis: ") + context_->errstr;
      return fail(timed_out ? Failure::timeout : Failure::unavailable, std::move(message));
    }
    OwnedReply r(static_cast<redisReply*>(raw));
    if (!convert_reply(*r, options_.max_reply_bytes, out)) {
      return fail(Failure::too_large, "a Redis reply over " +
                                          std::to_string(options_.max_reply_bytes) +
                                          " bytes (or malformed)");
    }
  }
  ++stats_.round_trips;
  return replies;
}

Result<Reply> Connection::command(const std::vector<std::string>& args) {
  auto replies = pipeline({args});
  if (!replies) return replies.error();
  Reply& r = replies.value().front();
  if (r.is_error()) return RedisError{Failure::refused, r.text};
  return std::move(r);
}

Result<Reply> Connection::eval(const Script& script, const std::vector<std::string>& keys,
                               const std::vector<std::string>& args) {
  auto call = [&](const std::string& verb, const std::string& body) {
    std::vector<std::string> cmd{verb, body, std::to_string(keys.size())};
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    return pipeline({cmd});
  };
  auto replies = call("EVALSHA", script.sha1);
  if (!replies) return replies.error();
  Reply r = std::move(replies.value().front());
  if (r.is_error() && r.text.rfind("NOSCRIPT", 0) == 0) {
    // Redis restarted or flushed its scripts: EVAL caches it again for the next EVALSHA.
    ++stats_.script_loads;
    replies = call("EVAL", script.source);
    if (!replies) return replies.error();
    r = std::move(replies.value().front());
  }
  if (r.is_error()) return RedisError{Failure::refused, r.text};
  return r;
}

}  // namespace rtm::gateway::redis
