// rtm: the RTM SDK at a terminal. Tokens, listening to and sending on channel topics, an
// interactive chat, who is in a channel, peer-to-peer inbox and direct messages.
//
//   rtm token  --secret S --uid alice                 print a login token
//   rtm who    --channel room-42                      members of a channel
//   rtm listen --channel room-42 --topic input [--from bob ...]
//   rtm send   --channel room-42 --topic input [--message M | lines from stdin]
//   rtm chat   --channel room-42                      type to talk, see the others
//   rtm inbox                                         peer-to-peer messages to you
//   rtm dm     --to bob [--message M | lines from stdin]
//   rtm meta get|set|update|remove|watch [--user U | --channel C] [KEY=VALUE | KEY ...]
//   rtm lock set|acquire|release|revoke|get|remove --channel C [NAME]
//   rtm state set|remove|get --channel C [KEY=VALUE | KEY ...]
//   rtm call   --to bob [--content C] [--channel-id C]   invite bob; Ctrl-C cancels
//   rtm answer [--from alice] [--refuse] [--response R]  wait for an invitation, answer it
//
// The options every command shares (--config, --broker, --uid, --token, --secret, --prefix,
// --timeout, -v) go before or after the command: `rtm --config c.yaml who --channel x`.
//
// Callbacks never start requests of their own: a request still in flight when the command
// ends would fail with UNAVAILABLE as the client closes, and print a spurious error.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/sdk/client.hpp"

namespace sdk = rtm::sdk;

namespace {

// ------------------------------------------------------------------ plumbing

struct Failure {
  std::string message;
};

[[noreturn]] void fail(const std::string& message) { throw Failure{message}; }

template <class T>
T check(sdk::Result<T> r, const std::string& what) {
  if (!r.ok()) fail(what + ": " + r.status().to_string());
  return std::move(r).value();
}
void check(const sdk::Result<void>& r, const std::string& what) {
  if (!r.ok()) fail(what + ": " + r.status().to_string());
}

// Printable text: bytes outside printable ASCII (and tab) as \xNN.
std::string printable(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if ((c >= 0x20 && c < 0x7f) || c == '\t' || c >= 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

std::mutex g_out_mutex;
void say(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_out_mutex);
  std::cout << line << std::endl;
}
void note(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_out_mutex);
  std::cerr << "rtm: " << line << std::endl;
}

// Ctrl-C / SIGTERM, the end of a command (enough messages), or a failure: one place to
// wait for them, and a pipe to wake a poll() on stdin.
class Stop {
 public:
  Stop() {
    if (::pipe(pipe_) != 0) fail("pipe() failed");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any other thread exists
    thread_ = std::thread([this, set] {
      int sig = 0;
      if (::sigwait(&set, &sig) == 0) request(0);
    });
  }
  ~Stop() {
    ::pthread_kill(thread_.native_handle(), SIGINT);  // the thread ends after its first signal
    request(exit_code());
    thread_.join();
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }
  void request(int exit_code) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      exit_code_ = exit_code;
    }
    cv_.notify_all();
    const char c = 1;
    [[maybe_unused]] auto n = ::write(pipe_[1], &c, 1);
  }
  int wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return stopped_; });
    return exit_code_;
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  }
  int exit_code() {
    std::lock_guard<std::mutex> lock(mutex_);
    return exit_code_;
  }
  int fd() const { return pipe_[0]; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
  int exit_code_ = 0;
  int pipe_[2] = {-1, -1};
  std::thread thread_;
};

// Lines from stdin until EOF or a stop; nullopt then.
class LineReader {
 public:
  explicit LineReader(Stop& stop) : stop_(stop) {}
  std::optional<std::string> next() {
    while (true) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (eof_) {
        if (buffer_.empty()) return std::nullopt;
        std::string line = std::move(buffer_);
        buffer_.clear();
        return line;
      }
      pollfd fds[2] = {{0, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return std::nullopt;
      char chunk[4096];
      const auto n = ::read(0, chunk, sizeof chunk);
      if (n <= 0) {
        eof_ = true;
      } else {
        buffer_.append(chunk, static_cast<std::size_t>(n));
      }
    }
  }

 private:
  Stop& stop_;
  std::string buffer_;
  bool eof_ = false;
};

// Sends `message`, or else each line of stdin until it ends (or Ctrl-C); how many went.
long send_each(Stop& stop, const std::optional<std::string>& message,
               const std::function<void(const std::string&)>& send) {
  if (message) {
    send(*message);
    return 1;
  }
  long sent = 0;
  LineReader lines(stop);
  while (auto line = lines.next()) {
    send(*line);
    ++sent;
  }
  return sent;
}

// ------------------------------------------------------------------ options

struct Common {
  std::string broker;
  std::string uid;
  std::string token;
  std::string secret;
  std::string config_path;
  std::string prefix;
  int timeout_ms = 10000;
  bool verbose = false;
};

// The shared options of one app (the top level, or a command), to merge after parsing.
struct SharedOptions {
  Common values;
  CLI::Option* broker = nullptr;
  CLI::Option* uid = nullptr;
  CLI::Option* token = nullptr;
  CLI::Option* secret = nullptr;
  CLI::Option* config = nullptr;
  CLI::Option* prefix = nullptr;
  CLI::Option* timeout = nullptr;
  CLI::Option* verbose = nullptr;
};

constexpr const char* kSharedGroup = "Shared options (before or after the command)";

// Adds the shared options to `app`. The top level reads the environment too; a command's
// copy does not, so that a value given on the command line always wins over one from the
// environment. `token_only`: the options the token command uses.
void add_shared(CLI::App* app, SharedOptions& o, bool top_level, bool token_only = false) {
  auto env = [top_level](CLI::Option* opt, const char* name) {
    if (top_level) opt->envname(name);
    return opt;
  };
  Common& c = o.values;
  if (!token_only) {
    o.config =
        app->add_option("--config", c.config_path,
                        "the gateway's config.yaml: its token secret, broker URI and prefix");
    o.broker = env(app->add_option("--broker", c.broker,
                                   "broker URI (default tcp://127.0.0.1:1883, or the config's)"),
                   "RTM_BROKER");
    o.uid = env(app->add_option("--uid", c.uid, "your user id (default: $USER-<pid>)"), "RTM_UID");
    o.token = env(app->add_option("--token", c.token, "login token (JWT)"), "RTM_TOKEN");
    o.secret = env(app->add_option("--secret", c.secret,
                                   "mint a 1-hour token with this secret (auth.token_secret)"),
                   "RTM_SECRET");
    o.prefix = app->add_option("--prefix", c.prefix, "topic prefix (default rtm, or the config's)");
    o.timeout = app->add_option("--timeout", c.timeout_ms, "request timeout in milliseconds")
                    ->capture_default_str()
                    ->check(CLI::PositiveNumber);
    o.verbose = app->add_flag("-v,--verbose", c.verbose, "log what the SDK does to stderr");
  } else {
    o.config = app->add_option("--config", c.config_path,
                               "take the secret from the gateway's config file");
    o.secret =
        env(app->add_option("--secret", c.secret, "the gateway's auth.token_secret"), "RTM_SECRET");
    o.uid = app->add_option("--uid", c.uid, "the user id the token is for (required)");
  }
  for (auto* opt : {o.config, o.broker, o.uid, o.token, o.secret, o.prefix, o.timeout, o.verbose}) {
    if (opt) opt->group(kSharedGroup);
  }
}

// A command's value where it was given there, else the top level's (or its environment's).
Common merge(const SharedOptions& top, const SharedOptions& cmd) {
  Common c = top.values;
  auto take = [](CLI::Option* opt, auto& into, const auto& from) {
    if (opt && opt->count() > 0) into = from;
  };
  take(cmd.broker, c.broker, cmd.values.broker);
  take(cmd.uid, c.uid, cmd.values.uid);
  take(cmd.token, c.token, cmd.values.token);
  take(cmd.secret, c.secret, cmd.values.secret);
  take(cmd.config, c.config_path, cmd.values.config_path);
  take(cmd.prefix, c.prefix, cmd.values.prefix);
  take(cmd.timeout, c.timeout_ms, cmd.values.timeout_ms);
  take(cmd.verbose, c.verbose, cmd.values.verbose);
  return c;
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string default_uid() {
  const char* user = std::getenv("USER");
  std::string base = user && *user ? user : "rtm";
  return base + "-" + std::to_string(::getpid());
}

std::unique_ptr<sdk::Client> make_client(Common c) {
  std::optional<rtm::gateway::Config> config;
  if (!c.config_path.empty()) {
    try {
      config = rtm::gateway::load_config_file(c.config_path);
    } catch (const rtm::gateway::ConfigError& e) {
      std::string all;
      for (const auto& p : e.problems()) all += "\n  " + p;
      fail(c.config_path + ": configuration is not valid:" + all);
    } catch (const std::exception& e) {
      fail(c.config_path + ": " + e.what());
    }
  }
  if (c.broker.empty()) c.broker = config ? config->broker.uri : "tcp://127.0.0.1:1883";
  if (c.prefix.empty()) c.prefix = config ? config->topics.prefix : "rtm";
  if (c.uid.empty()) c.uid = default_uid();
  if (c.token.empty()) {
    std::string secret = !c.secret.empty() ? c.secret : config ? config->auth.token_secret : "";
    if (secret.empty()) {
      fail("need a token: give --token, or --secret / --config to mint one");
    }
    c.token = rtm::gateway::sign_token({c.uid, now_s(), now_s() + 3600, std::nullopt, std::nullopt},
                                       secret);
  }
  sdk::ClientConfig cfg;
  cfg.broker_uri = c.broker;
  cfg.uid = c.uid;
  cfg.token = c.token;
  cfg.prefix = c.prefix;
  cfg.request_timeout = std::chrono::milliseconds(c.timeout_ms);
  if (c.verbose) {
    cfg.logger = [](sdk::LogLevel, const std::string& text) { note(text); };
  }
  try {
    return std::make_unique<sdk::Client>(cfg);
  } catch (const sdk::Error& e) {
    fail(e.what());
  }
}

// Ends the command when the session is over for good (replaced, expired, ...).
void exit_on_failure(sdk::Client& client, Stop& stop) {
  client.on_connection_state([&stop](const sdk::ConnectionStateEvent& e) {
    if (e.state == sdk::ConnectionState::failed) {
      note("session over: " + sdk::to_string(e));
      stop.request(1);
    } else if (e.state == sdk::ConnectionState::reconnecting ||
               e.state == sdk::ConnectionState::restored) {
      note(sdk::to_string(e));
    }
  });
}

// ------------------------------------------------------------------ commands

int cmd_token(const std::string& secret_in, const std::string& config_path, const std::string& uid,
              int ttl) {
  std::string secret = secret_in;
  if (secret.empty() && !config_path.empty()) {
    try {
      secret = rtm::gateway::load_config_file(config_path).auth.token_secret;
    } catch (const rtm::gateway::ConfigError& e) {
      std::string all;
      for (const auto& p : e.problems()) all += "\n  " + p;
      fail(config_path + ": configuration is not valid:" + all);
    } catch (const std::exception& e) {
      fail(config_path + ": " + e.what());
    }
  }
  if (secret.empty()) fail("token: give --secret or --config");
  say(rtm::gateway::sign_token({uid, now_s(), now_s() + ttl, std::nullopt, std::nullopt}, secret));
  return 0;
}

int cmd_who(const Common& common, const std::string& channel) {
  auto client = make_client(common);
  check(client->login(), "login");
  for (const auto& m : check(client->who_now(channel), "who_now " + channel)) say(m);
  return 0;
}

// A stream's history, oldest first (paged through to the end, at most `count` when > 0):
// "publisher: payload" per message; stderr says when messages were lost before these.
int cmd_history(const Common& common, const std::string& channel, const std::string& topic,
                long count) {
  auto client = make_client(common);
  check(client->login(), "login");
  auto room = client->stream_channel(channel);
  check(room.join(), "join " + channel);
  sdk::HistoryQuery q;
  if (count > 0) {
    q.reverse = true;  // the latest `count`, printed oldest first
    q.limit = static_cast<std::size_t>(count);
    auto page = check(room.history(topic, q), "history " + channel + "/" + topic);
    for (auto it = page.messages.rbegin(); it != page.messages.rend(); ++it) {
      say(it->publisher + ": " +
          (it->too_large ? std::string("(too large, not kept)") : it->payload));
    }
    return 0;
  }
  q.limit = 1000;
  for (;;) {
    auto page = check(room.history(topic, q), "history " + channel + "/" + topic);
    for (const auto& m : page.messages) {
      say(m.publisher + ": " + (m.too_large ? std::string("(too large, not kept)") : m.payload));
    }
    if (!page.more || page.messages.empty()) break;
    q.after = page.messages.back().offset;
  }
  return 0;
}

// Per-user refusals of a subscribe answer, on stderr.
void note_refusals(const sdk::SubscribeResult& sub) {
  for (const auto& u : sub.users) {
    if (!u.status.ok()) note("not listening to " + u.uid + ": " + u.status.to_string());
  }
}

int cmd_listen(const Common& common, const std::string& channel, const std::string& topic,
               const std::vector<std::string>& from, long count) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  long received = 0;  // callbacks run one at a time on the SDK's dispatcher
  client->on_message([&](const sdk::MessageEvent& m) {
    if (m.channel != channel || m.topic != topic) return;
    if (count > 0 && received >= count) return;
    say(m.publisher + ": " + printable(m.payload));
    if (count > 0 && ++received >= count) stop.request(0);
  });
  client->on_channel_event([&](const sdk::ChannelEvent& e) {
    if (e.type == sdk::ChannelEventType::subscription_refused && e.channel == channel &&
        e.topic == topic && !stop.stopped()) {
      note("not listening to " + e.uid + ": " + e.reason);
    }
  });
  check(client->login(), "login");
  auto ch = client->stream_channel(channel);
  check(ch.join(), "join " + channel);
  std::string whom;
  if (from.empty()) {
    // Every publisher, current and later: the gateway adds a new one before it answers that
    // publisher's join_topic, so nothing said after this line is printed is missed.
    note_refusals(check(ch.subscribe_topic(topic), "subscribe " + channel + "/" + topic));
    whom = "every publisher";
  } else {
    auto sub = check(ch.subscribe_topic(topic, from), "subscribe " + channel + "/" + topic);
    note_refusals(sub);
    whom = "from " + CLI::detail::join(sub.succeeded(), ", ");
  }
  note("listening on " + channel + "/" + topic + " (" + whom + ") as " + client->uid() +
       "; Ctrl-C to stop");
  return stop.wait();
}

int cmd_send(const Common& common, const std::string& channel, const std::string& topic,
             const std::optional<std::string>& message, int qos) {
  Stop stop;
  auto client = make_client(common);
  check(client->login(), "login");
  auto ch = client->stream_channel(channel);
  check(ch.join(), "join " + channel);
  check(ch.join_topic(topic), "join_topic " + channel + "/" + topic);
  const long sent = send_each(stop, message, [&](const std::string& text) {
    check(ch.publish_topic(topic, text, sdk::PublishOptions{qos}), "publish");
  });
  if (common.verbose) note("sent " + std::to_string(sent) + " message(s)");
  return 0;
}

// A message channel (RTM 2): read it without a join, and with --presence see who else
// reads it with presence, as "* uid joined" / "* uid left (reason)".
int cmd_subscribe(const Common& common, const std::string& channel, bool presence, long count) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  long received = 0;  // callbacks run one at a time on the SDK's dispatcher
  client->on_channel_message([&](const sdk::ChannelMessageEvent& m) {
    if (m.channel != channel) return;
    if (count > 0 && received >= count) return;
    say(m.publisher + ": " + printable(m.payload));
    if (count > 0 && ++received >= count) stop.request(0);
  });
  client->on_channel_event([&](const sdk::ChannelEvent& e) {
    if (!e.message_channel || e.channel != channel) return;
    if (e.type == sdk::ChannelEventType::member_joined) note("* " + e.uid + " joined");
    if (e.type == sdk::ChannelEventType::member_left ||
        e.type == sdk::ChannelEventType::member_timed_out) {
      note("* " + e.uid + " left (" + e.reason + ")");
    }
  });
  check(client->login(), "login");
  auto info =
      check(client->subscribe_channel(channel, {presence, ""}), "subscribe_channel " + channel);
  if (presence) note("subscribers with presence: " + CLI::detail::join(info.members, ", "));
  note("listening on message channel " + channel + " as " + client->uid() + "; Ctrl-C to stop");
  return stop.wait();
}

// Publishes to a message channel: no join, no subscription (RTM 2).
int cmd_publish(const Common& common, const std::string& channel,
                const std::optional<std::string>& message, bool binary, int qos) {
  Stop stop;
  auto client = make_client(common);
  check(client->login(), "login");
  const auto type = binary ? sdk::MessageType::binary : sdk::MessageType::string;
  const long sent = send_each(stop, message, [&](const std::string& text) {
    check(client->publish(channel, text, type, sdk::PublishOptions{qos}), "publish");
  });
  if (common.verbose) note("sent " + std::to_string(sent) + " message(s)");
  return 0;
}

int cmd_chat(const Common& common, const std::string& channel) {
  const std::string topic = "chat";
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  auto ch = client->stream_channel(channel);
  const std::string me = client->uid();
  client->on_message([&](const sdk::MessageEvent& m) {
    if (m.channel == channel && m.topic == topic) {
      say("[" + m.publisher + "] " + printable(m.payload));
    }
  });
  client->on_channel_event([&](const sdk::ChannelEvent& e) {
    if (e.channel != channel || e.uid == me) return;
    switch (e.type) {
      case sdk::ChannelEventType::member_joined:
        say("* " + e.uid + " joined");
        break;
      case sdk::ChannelEventType::member_left:
      case sdk::ChannelEventType::member_timed_out:
        say("* " + e.uid + " left (" + e.reason + ")");
        break;
      case sdk::ChannelEventType::subscription_refused:
        if (e.topic == topic) say("* " + e.uid + " talks, but you cannot hear them: " + e.reason);
        break;
      default:
        break;
    }
  });
  check(client->login(), "login");
  auto snap = check(ch.join(), "join " + channel);
  // Everyone who talks, now and later (the gateway adds newcomers as they join the topic).
  for (const auto& u :
       check(ch.subscribe_topic(topic), "subscribe " + channel + "/" + topic).users) {
    if (!u.status.ok())
      say("* " + u.uid + " talks, but you cannot hear them: " + u.status.to_string());
  }
  check(ch.join_topic(topic), "join_topic " + channel + "/" + topic);
  say("* you are " + me + " in " + channel + " with " + CLI::detail::join(snap.members, ", ") +
      "; type a line to send it, Ctrl-D or Ctrl-C to leave");
  LineReader lines(stop);
  while (auto line = lines.next()) {
    if (line->empty()) continue;
    auto r = ch.publish_topic(topic, *line);
    if (!r.ok()) note("not sent: " + r.status().to_string());
  }
  if (!stop.stopped() || stop.exit_code() == 0) {  // not when the session is over already
    ch.leave();
    client->logout();
  }
  return stop.stopped() ? stop.exit_code() : 0;
}

int cmd_inbox(const Common& common, long count) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  std::atomic<long> received{0};
  client->on_inbox([&](const sdk::InboxMessage& m) {
    if (count > 0 && received >= count) return;
    say(m.from + ": " + printable(m.payload));
    if (count > 0 && ++received >= count) stop.request(0);
  });
  check(client->login(), "login");
  note("listening to the inbox of " + client->uid() + "; Ctrl-C to stop");
  return stop.wait();
}

int cmd_dm(const Common& common, const std::string& to, const std::optional<std::string>& message,
           int qos, bool via_gateway, bool no_store) {
  Stop stop;
  auto client = make_client(common);
  check(client->login(), "login");
  auto send = [&](const std::string& text) {
    if (!via_gateway) {
      check(client->publish(to, text, sdk::PublishOptions{qos}), "publish to " + to);
      return;
    }
    sdk::SendOptions options;
    options.store = !no_store;
    const auto sent = check(client->send_message(to, text, options), "send_message to " + to);
    say(sent.id + " " + std::string(sdk::to_string(sent.status)));
  };
  send_each(stop, message, send);
  return 0;
}

// ------------------------------------------------------------------ call invitations

// "ID STATE [REASON] [response=R]" for an invitation event.
std::string invitation_line(const sdk::InvitationEvent& e) {
  std::string line = e.id + " " + e.state;
  if (e.reason != "OK") line += " " + e.reason;
  if (!e.response.empty()) line += " response=" + printable(e.response);
  return line;
}

// Invitation events for the command's own thread (callbacks start no requests).
class InvitationQueue {
 public:
  void push(const sdk::InvitationEvent& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(e);
    }
    cv_.notify_all();
  }
  // The next event, or nullopt when `stop` was asked for (checked every 100 ms).
  std::optional<sdk::InvitationEvent> next(Stop& stop) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (events_.empty()) {
      if (stop.stopped()) return std::nullopt;
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    auto e = events_.front();
    events_.erase(events_.begin());
    return e;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<sdk::InvitationEvent> events_;
};

// Calls `to`: prints each state of the invitation until it ends. Exit 0 when accepted, 3
// when refused, canceled or failed; Ctrl-C cancels it.
int cmd_call(const Common& common, const std::string& to, const std::string& content,
             const std::string& channel_id) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  InvitationQueue queue;
  client->on_invitation([&](const sdk::InvitationEvent& e) {
    if (e.side == sdk::InvitationSide::local) queue.push(e);
  });
  check(client->login(), "login");
  auto invitations = client->invitations();
  auto sent = check(invitations.send(to, content, channel_id), "invite " + to);
  note("calling " + to + " (invitation " + sent.id() + "); Ctrl-C cancels");
  while (true) {
    auto e = queue.next(stop);
    if (!e) {
      if (stop.exit_code() != 0) return stop.exit_code();
      check(sent.cancel(), "cancel_invitation " + sent.id());
      note("canceled");
      return 3;
    }
    if (e->id != sent.id()) continue;
    say(invitation_line(*e));
    if (e->ended()) return e->state == "ACCEPTED_BY_REMOTE" ? 0 : 3;
  }
}

// Waits for an invitation (from `from`, if given), prints it and accepts or refuses it.
// Exit 0 once answered, 3 when it ended first (canceled, expired).
int cmd_answer(const Common& common, const std::string& from, bool refuse,
               const std::string& response) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  InvitationQueue queue;
  client->on_invitation([&](const sdk::InvitationEvent& e) {
    if (e.side == sdk::InvitationSide::remote) queue.push(e);
  });
  check(client->login(), "login");
  auto invitations = client->invitations();
  note("waiting for an invitation to " + client->uid() + "; Ctrl-C to stop");
  while (auto e = queue.next(stop)) {
    if (e->state != "RECEIVED" || (!from.empty() && e->caller != from)) continue;
    say("invitation " + e->id + " from " + e->caller +
        (e->channel_id.empty() ? std::string() : " about " + e->channel_id) + ": " +
        printable(e->content));
    auto remote = invitations.remote(*e);
    check(refuse ? remote.refuse(response) : remote.accept(response),
          std::string(refuse ? "refuse" : "accept") + "_invitation " + e->id);
    say(e->id + (refuse ? " REFUSED" : " ACCEPTED"));
    return 0;
  }
  return stop.exit_code();
}

// ------------------------------------------------------------------ storage

// "key=value revision=3 author=bob updated_at=..." for one metadata item.
std::string item_line(const sdk::MetadataItem& item) {
  std::string line = printable(item.key) + "=" + printable(item.value) +
                     " revision=" + std::to_string(item.revision);
  if (item.author) line += " author=" + *item.author;
  if (item.updated_at) line += " updated_at=" + std::to_string(*item.updated_at);
  return line;
}

// The head line ("room-42 major_revision=3", "set alice by bob major_revision=4"), then the
// items indented.
void print_metadata(const std::string& head, const sdk::Metadata& m) {
  std::string text = head + " major_revision=" + std::to_string(m.major_revision);
  for (const auto& item : m.items) text += "\n  " + item_line(item);
  say(text);
}

// KEY=VALUE arguments (split at the first '=').
std::vector<std::pair<std::string, std::string>> key_values(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& a : args) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) fail("expected KEY=VALUE, got \"" + a + "\"");
    out.emplace_back(a.substr(0, eq), a.substr(eq + 1));
  }
  return out;
}

struct MetaArgs {
  std::string user;     // whose metadata (default: yours)
  std::string channel;  // a channel's metadata instead
  std::vector<std::string> args;
  std::int64_t revision = -1;
  std::int64_t major_revision = -1;
  bool author = false;
  bool ts = false;
  std::string lock;
  long count = 0;
};

// Logs in and, for channel metadata, joins the channel (members read and write it).
std::unique_ptr<sdk::Client> meta_client(const Common& common, const MetaArgs& a) {
  auto client = make_client(common);
  check(client->login(), "login");
  if (!a.channel.empty()) check(client->stream_channel(a.channel).join(), "join " + a.channel);
  return client;
}

int cmd_meta(const Common& common, const std::string& verb, const MetaArgs& a) {
  if (!a.user.empty() && !a.channel.empty()) fail("meta: give --user or --channel, not both");
  auto client = meta_client(common, a);
  auto storage = client->storage();
  const bool channel = !a.channel.empty();
  const std::string target = channel ? a.channel : a.user.empty() ? client->uid() : a.user;
  const std::string what = verb + " " + (channel ? "channel" : "user") + " metadata of " + target;
  sdk::Metadata result;
  if (verb == "get") {
    result = channel ? check(storage.get_channel_metadata(target, a.args), what)
                     : check(storage.get_user_metadata(target, a.args), what);
    print_metadata(target, result);
    return 0;
  }
  sdk::MetadataOptions options;
  options.major_revision = a.major_revision;
  options.record_author = a.author;
  options.record_ts = a.ts;
  options.lock = a.lock;
  std::vector<sdk::MetadataItem> items;
  if (verb == "remove") {
    for (const auto& key : a.args) items.push_back({key, "", a.revision, {}, {}});
  } else {
    if (a.args.empty()) fail(verb + ": give at least one KEY=VALUE");
    for (auto& [k, v] : key_values(a.args)) items.push_back({k, v, a.revision, {}, {}});
  }
  using Write = sdk::Result<sdk::Metadata> (sdk::Storage::*)(
      const std::string&, const std::vector<sdk::MetadataItem>&, const sdk::MetadataOptions&);
  const std::map<std::string, std::pair<Write, Write>> writes = {
      {"set", {&sdk::Storage::set_user_metadata, &sdk::Storage::set_channel_metadata}},
      {"update", {&sdk::Storage::update_user_metadata, &sdk::Storage::update_channel_metadata}},
      {"remove", {&sdk::Storage::remove_user_metadata, &sdk::Storage::remove_channel_metadata}},
  };
  const auto& [user_write, channel_write] = writes.at(verb);
  result = check((storage.*(channel ? channel_write : user_write))(target, items, options), what);
  print_metadata(target, result);
  return 0;
}

// Prints each metadata event: a user's (a snapshot first) or a channel's, until Ctrl-C or
// --count events.
int cmd_meta_watch(const Common& common, const MetaArgs& a) {
  if (!a.user.empty() && !a.channel.empty()) fail("meta watch: give --user or --channel, not both");
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  const std::string target = !a.channel.empty() ? a.channel
                             : a.user.empty()   ? client->uid()
                                                : a.user;
  const auto scope = a.channel.empty() ? sdk::StorageScope::user : sdk::StorageScope::channel;
  long seen = 0;  // callbacks run one at a time
  client->on_storage_event([&](const sdk::StorageEvent& e) {
    if (e.scope != scope || (scope == sdk::StorageScope::user ? e.uid : e.channel) != target)
      return;
    if (a.count > 0 && seen >= a.count) return;
    std::string head = std::string(sdk::to_string(e.type)) + " " + target;
    if (!e.by.empty()) head += " by " + e.by;
    print_metadata(head, e.metadata);
    if (a.count > 0 && ++seen >= a.count) stop.request(0);
  });
  check(client->login(), "login");
  if (scope == sdk::StorageScope::channel) {
    check(client->stream_channel(target).join(), "join " + target);
  } else {
    check(client->storage().subscribe_user_metadata(target), "subscribe_user_metadata " + target);
  }
  note("watching the metadata of " + target + " as " + client->uid() + "; Ctrl-C to stop");
  return stop.wait();
}

struct LockArgs {
  std::string channel;
  std::string name;
  int ttl = 60;
  bool wait = false;
  int wait_s = 60;
  bool hold = false;
  std::string holder;
};

std::string lock_line(const sdk::LockInfo& l) {
  std::string line =
      l.name + " ttl=" + std::to_string(l.ttl) + " owner=" + (l.owner.empty() ? "-" : l.owner);
  if (!l.waiters.empty()) line += " waiters=" + CLI::detail::join(l.waiters, ",");
  if (l.expires_at) line += " expires_at=" + std::to_string(l.expires_at);
  return line;
}

int cmd_lock(const Common& common, const std::string& verb, const LockArgs& a) {
  if (verb != "get" && a.name.empty()) fail("lock " + verb + ": give the lock's NAME");
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  check(client->login(), "login");
  auto room = client->stream_channel(a.channel);
  check(room.join(), "join " + a.channel);  // locks are for members
  auto locks = client->lock();
  const std::string what = "lock " + verb + " " + a.channel + "/" + a.name;
  if (verb == "set") {
    check(locks.set_lock(a.channel, a.name, std::chrono::seconds(a.ttl)), what);
    say(a.name + " set ttl=" + std::to_string(a.ttl));
  } else if (verb == "acquire") {
    sdk::AcquireLockOptions options;
    options.retry = a.wait;
    options.wait = std::chrono::seconds(a.wait_s);
    if (a.wait) note("waiting for " + a.name + " in " + a.channel);
    auto status = check(locks.acquire_lock(a.channel, a.name, options), what);
    say(a.name + (status == sdk::AcquireStatus::already_held ? " already held" : " acquired") +
        " by " + client->uid());
    if (a.hold) {
      client->on_lock_event([&](const sdk::LockEvent& e) {
        if (e.channel == a.channel && e.lock == a.name && e.uid == client->uid() &&
            (e.type == sdk::LockEventType::released || e.type == sdk::LockEventType::removed)) {
          say(a.name + " lost (" + std::string(sdk::to_string(e.type)) + ")");
          stop.request(1);
        }
      });
      note("holding " + a.name + " until Ctrl-C");
      if (const int code = stop.wait(); code != 0) return code;
      check(locks.release_lock(a.channel, a.name), "release " + a.name);
      say(a.name + " released");
    }
  } else if (verb == "release") {
    check(locks.release_lock(a.channel, a.name), what);
    say(a.name + " released");
  } else if (verb == "revoke") {
    if (a.holder.empty()) fail("lock revoke: give --holder, the uid that holds the lock");
    check(locks.revoke_lock(a.channel, a.name, a.holder), what);
    say(a.name + " revoked from " + a.holder);
  } else if (verb == "remove") {
    check(locks.remove_lock(a.channel, a.name), what);
    say(a.name + " removed");
  } else {  // get
    for (const auto& l : check(locks.get_locks(a.channel), "get_locks " + a.channel)) {
      if (a.name.empty() || l.name == a.name) say(lock_line(l));
    }
  }
  return 0;
}

void print_states(const sdk::StateMap& states) {
  for (const auto& [k, v] : states) say(printable(k) + "=" + printable(v));
}

// Presence states last as long as the session is in the channel: `state set` keeps it
// until Ctrl-C.
int cmd_state(const Common& common, const std::string& verb, const std::string& channel,
              const std::string& user, const std::vector<std::string>& args) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  check(client->login(), "login");
  check(client->stream_channel(channel).join(), "join " + channel);
  auto presence = client->presence();
  if (verb == "get") {
    print_states(check(presence.get_state(channel, user), "get_state " + channel).states);
    return 0;
  }
  if (verb == "remove") {
    print_states(check(presence.remove_state(channel, args), "remove_state " + channel));
    return 0;
  }
  if (args.empty()) fail("state set: give at least one KEY=VALUE");
  sdk::StateMap states;
  for (auto& [k, v] : key_values(args)) states[k] = v;
  print_states(check(presence.set_state(channel, states), "set_state " + channel));
  note("states set in " + channel + " as " + client->uid() + "; they last until Ctrl-C");
  return stop.wait();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtm: real-time messaging over MQTT through rtm-gateway, from a terminal"};
  app.require_subcommand(1);
  app.set_version_flag("--version", RTM_VERSION);
  app.footer(
      "The shared options go before or after the command: rtm --config config.yaml who --channel "
      "lobby.\nRTM_BROKER, RTM_UID, RTM_TOKEN and RTM_SECRET in the environment set them too.\n"
      "`rtm COMMAND --help` tells about a command.");
  SharedOptions top;
  add_shared(&app, top, true);

  int ttl = 3600;
  SharedOptions token_opts;
  auto* token = app.add_subcommand("token", "print a login token (JWT, HS256) for a uid");
  add_shared(token, token_opts, false, true);
  token->add_option("--ttl", ttl, "seconds until the token expires")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  std::string channel, topic, to;
  std::vector<std::string> from;
  std::optional<std::string> message;
  long count = 0;
  int qos = 0;
  std::vector<std::pair<CLI::App*, std::unique_ptr<SharedOptions>>> commands;
  auto command_in = [&](CLI::App* parent, const char* name, const char* what) {
    auto* cmd = parent->add_subcommand(name, what);
    commands.emplace_back(cmd, std::make_unique<SharedOptions>());
    add_shared(cmd, *commands.back().second, false);
    return cmd;
  };
  auto command = [&](const char* name, const char* what) { return command_in(&app, name, what); };

  auto* who = command("who", "list the members of a channel");
  who->add_option("--channel", channel, "the channel")->required();

  auto* listen = command("listen", "print messages on a channel topic, as \"publisher: payload\"");
  listen->add_option("--channel", channel, "the channel to join")->required();
  listen->add_option("--topic", topic, "the topic to listen to")->required();
  listen->add_option("--from", from,
                     "publishers to subscribe to (default: every publisher, now and later)");
  listen->add_option("--count", count, "stop after this many messages (0: never)");

  auto* send =
      command("send", "publish on a channel topic: --message, or one message per stdin line");
  send->add_option("--channel", channel, "the channel to join")->required();
  send->add_option("--topic", topic, "the topic to publish in")->required();
  send->add_option("-m,--message", message, "the message (default: read lines from stdin)");
  send->add_option("--qos", qos, "MQTT QoS of the messages")->capture_default_str()->check(CLI::Range(0, 1));

  auto* history = command("history", "print what a channel topic's history keeps, oldest first");
  history->add_option("--channel", channel, "the channel (you join it)")->required();
  history->add_option("--topic", topic, "the topic")->required();
  history->add_option("--count", count, "only the latest this many (0: all that is kept)");

  auto* subscribe = command(
      "subscribe", "print messages of a message channel (no join), as \"publisher: payload\"");
  subscribe->add_option("--channel", channel, "the message channel")->required();
  bool with_presence = false;
  subscribe->add_flag("--presence", with_presence,
                      "be a presence subscriber: print who else subscribes with presence");
  subscribe->add_option("--count", count, "stop after this many messages (0: never)");

  auto* publish =
      command("publish", "publish to a message channel: --message, or one message per stdin line");
  publish->add_option("--channel", channel, "the message channel")->required();
  publish->add_option("-m,--message", message, "the message (default: read lines from stdin)");
  bool publish_binary = false;
  publish->add_flag("--binary", publish_binary, "send as binary (default: string)");
  publish->add_option("--qos", qos, "MQTT QoS of the messages")
      ->capture_default_str()
      ->check(CLI::Range(0, 1));

  auto* chat = command("chat", "talk in a channel: typed lines go out on topic \"chat\"");
  chat->add_option("--channel", channel, "the channel to join")->required();

  auto* inbox = command("inbox", "print peer-to-peer messages to you, as \"sender: payload\"");
  inbox->add_option("--count", count, "stop after this many messages (0: never)");

  auto* dm = command("dm", "send peer-to-peer messages: --message, or one per stdin line");
  dm->add_option("--to", to, "the user to write to")->required();
  dm->add_option("-m,--message", message, "the message (default: read lines from stdin)");
  qos = 1;
  dm->add_option("--qos", qos, "MQTT QoS of the messages")->capture_default_str()->check(CLI::Range(0, 1));
  bool dm_gateway = false, dm_no_store = false;
  dm->add_flag("--gateway", dm_gateway,
               "send through the gateway (send_message): kept for an offline peer until its "
               "login; prints each message's id and status (delivered or stored)");
  dm->add_flag("--no-store", dm_no_store,
               "with --gateway: refuse (PEER_OFFLINE) rather than keep for an offline peer");

  // meta get|set|update|remove|watch: user metadata (yours, or --user's) or --channel's.
  MetaArgs meta_args;
  auto* meta = app.add_subcommand(
      "meta",
      "user and channel metadata: get, set, update, remove, watch (`rtm meta VERB --help`)");
  meta->require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::string>> meta_verbs;
  auto meta_verb = [&](const char* verb, const char* what, const char* args_help) {
    auto* cmd = command_in(meta, verb, what);
    cmd->add_option("--user", meta_args.user, "whose metadata (default: yours, --uid)");
    cmd->add_option("--channel", meta_args.channel,
                    "a channel's metadata instead of a user's (you join the channel)");
    if (args_help) cmd->add_option("items", meta_args.args, args_help);
    meta_verbs.emplace_back(cmd, verb);
    return cmd;
  };
  auto cas = [&](CLI::App* cmd) {
    cmd->add_option("--revision", meta_args.revision,
                    "compare-and-set on each item: its current revision (0: only if absent)");
    cmd->add_option("--major-revision", meta_args.major_revision,
                    "compare-and-set on the whole metadata (0: only if never written)");
    cmd->add_option("--lock", meta_args.lock,
                    "channel metadata: write only while holding this lock");
  };
  meta_verb("get", "print metadata: every item, or the KEYs given",
            "KEY ... (default: every item)");
  for (const char* verb : {"set", "update"}) {
    auto* cmd = meta_verb(verb,
                          std::string(verb) == "set"
                              ? "add or overwrite items (others stay)"
                              : "overwrite existing items only (ITEM_NOT_FOUND for a new key)",
                          "KEY=VALUE ...");
    cmd->get_option("items")->required();
    cas(cmd);
    cmd->add_flag("--author", meta_args.author, "record your uid as each item's author");
    cmd->add_flag("--ts", meta_args.ts, "record the time of the write with each item");
  }
  cas(meta_verb("remove", "remove the KEYs given, or every item", "KEY ... (default: every item)"));
  meta_verb("watch", "print each change of the metadata until Ctrl-C (a user's: a snapshot first)",
            nullptr)
      ->add_option("--count", meta_args.count, "stop after this many events (0: never)");

  // lock set|acquire|release|revoke|get|remove --channel C NAME
  LockArgs lock_args;
  auto* lock = app.add_subcommand(
      "lock", "named locks of a channel: set, acquire, release, revoke, get, remove");
  lock->require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::string>> lock_verbs;
  auto lock_verb = [&](const char* verb, const char* what) {
    auto* cmd = command_in(lock, verb, what);
    cmd->add_option("--channel", lock_args.channel, "the channel (you join it)")->required();
    cmd->add_option("name", lock_args.name, "the lock's name");
    lock_verbs.emplace_back(cmd, verb);
    return cmd;
  };
  lock_verb("set", "create a lock")
      ->add_option("--ttl", lock_args.ttl, "seconds a holder keeps the lock after its session ends")
      ->capture_default_str();
  auto* acquire =
      lock_verb("acquire", "take a lock (LOCK_HELD if someone holds it, unless --wait)");
  acquire->add_flag("--wait", lock_args.wait, "wait in the queue until the lock is yours");
  acquire->add_option("--wait-timeout", lock_args.wait_s, "give up waiting after this many seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  acquire->add_flag("--hold", lock_args.hold, "keep the lock until Ctrl-C, then release it");
  lock_verb("release", "let go of a lock (or leave its queue)");
  lock_verb("revoke", "take a lock from its holder")
      ->add_option("--holder", lock_args.holder, "the uid that holds it")
      ->required();
  lock_verb("get", "list the channel's locks (or the one NAME): ttl, owner, waiters");
  lock_verb("remove", "delete a lock");

  // state set|remove|get --channel C
  std::string state_user;
  std::vector<std::string> state_args;
  auto* state = app.add_subcommand("state", "presence states in a channel: set, remove, get");
  state->require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::string>> state_verbs;
  auto state_verb = [&](const char* verb, const char* what, const char* args_help) {
    auto* cmd = command_in(state, verb, what);
    cmd->add_option("--channel", channel, "the channel (you join it)")->required();
    if (args_help) cmd->add_option("states", state_args, args_help);
    state_verbs.emplace_back(cmd, verb);
    return cmd;
  };
  state_verb("set", "set your states and keep them until Ctrl-C (they go with the session)",
             "KEY=VALUE ...")
      ->get_option("states")
      ->required();
  state_verb("remove", "remove your KEYs (default: every state)", "KEY ...");
  state_verb("get", "print a member's states", nullptr)
      ->add_option("--user", state_user, "whose states (default: yours)");

  // call --to U, answer [--refuse]: call invitations between two terminals.
  std::string call_content, call_channel, answer_from, answer_response;
  bool answer_refuse = false;
  auto* call = command("call",
                       "invite a user to a call and print its states until it ends "
                       "(exit 0 when accepted); Ctrl-C cancels");
  call->add_option("--to", to, "the user to call (it must be logged in)")->required();
  call->add_option("--content", call_content, "text for the callee");
  call->add_option("--channel-id", call_channel, "the channel the call is about");
  auto* answer = command("answer", "wait for an invitation and accept it (or --refuse it)");
  answer->add_option("--from", answer_from, "only an invitation from this user");
  answer->add_flag("--refuse", answer_refuse, "refuse instead of accepting");
  answer->add_option("--response", answer_response, "text for the caller");

  // `send` takes QoS 0 by default, `dm` QoS 1: set the default of the one that runs.
  send->preparse_callback([&qos](std::size_t) { qos = 0; });
  publish->preparse_callback([&qos](std::size_t) { qos = 0; });
  dm->preparse_callback([&qos](std::size_t) { qos = 1; });

  try {
    app.parse(argc, argv);
    if (token->parsed() && merge(top, token_opts).uid.empty()) {
      throw CLI::RequiredError("--uid");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (token->parsed()) {
      const Common c = merge(top, token_opts);
      return cmd_token(c.secret, c.config_path, c.uid, ttl);
    }
    Common common;
    for (const auto& [cmd, shared] : commands) {
      if (cmd->parsed()) common = merge(top, *shared);
    }
    if (who->parsed()) return cmd_who(common, channel);
    if (listen->parsed()) return cmd_listen(common, channel, topic, from, count);
    if (send->parsed()) return cmd_send(common, channel, topic, message, qos);
    if (chat->parsed()) return cmd_chat(common, channel);
    if (subscribe->parsed()) return cmd_subscribe(common, channel, with_presence, count);
    if (publish->parsed()) return cmd_publish(common, channel, message, publish_binary, qos);
    if (history->parsed()) return cmd_history(common, channel, topic, count);
    if (inbox->parsed()) return cmd_inbox(common, count);
    if (dm->parsed()) return cmd_dm(common, to, message, qos, dm_gateway, dm_no_store);
    if (call->parsed()) return cmd_call(common, to, call_content, call_channel);
    if (answer->parsed()) return cmd_answer(common, answer_from, answer_refuse, answer_response);
    for (const auto& [cmd, verb] : meta_verbs) {
      if (cmd->parsed()) {
        return verb == "watch" ? cmd_meta_watch(common, meta_args)
                               : cmd_meta(common, verb, meta_args);
      }
    }
    for (const auto& [cmd, verb] : lock_verbs) {
      if (cmd->parsed()) return cmd_lock(common, verb, lock_args);
    }
    for (const auto& [cmd, verb] : state_verbs) {
      if (cmd->parsed()) return cmd_state(common, verb, channel, state_user, state_args);
    }
  } catch (const Failure& f) {
    note(f.message);
    return 1;
  } catch (const std::exception& e) {
    note(e.what());
    return 1;
  }
  return 0;
}
