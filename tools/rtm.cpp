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
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/jwt.hpp"
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

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--broker", c.broker, "broker URI (default tcp://127.0.0.1:1883, or the config's)")
      ->envname("RTM_BROKER");
  cmd->add_option("--uid", c.uid, "your user id (default: $USER-<pid>)")->envname("RTM_UID");
  cmd->add_option("--token", c.token, "login token (JWT)")->envname("RTM_TOKEN");
  cmd->add_option("--secret", c.secret, "mint a 1-hour token with this secret (auth.token_secret)")
      ->envname("RTM_SECRET");
  cmd->add_option("--config", c.config_path,
                  "the gateway's config.yaml: its token secret, broker URI and prefix");
  cmd->add_option("--prefix", c.prefix, "topic prefix (default rtm, or the config's)");
  cmd->add_option("--timeout", c.timeout_ms, "request timeout in milliseconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-v,--verbose", c.verbose, "log what the SDK does to stderr");
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
    c.token = rtm::gateway::sign_token({c.uid, now_s(), now_s() + 3600, std::nullopt}, secret);
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
      note("session over: " + e.reason);
      stop.request(1);
    } else if (e.state == sdk::ConnectionState::reconnecting ||
               e.state == sdk::ConnectionState::restored) {
      note(std::string(sdk::to_string(e.state)) + ": " + e.reason);
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
  say(rtm::gateway::sign_token({uid, now_s(), now_s() + ttl, std::nullopt}, secret));
  return 0;
}

int cmd_who(const Common& common, const std::string& channel) {
  auto client = make_client(common);
  check(client->login(), "login");
  for (const auto& m : check(client->who_now(channel), "who_now " + channel)) say(m);
  return 0;
}

int cmd_listen(const Common& common, const std::string& channel, const std::string& topic,
               std::vector<std::string> from, long count) {
  Stop stop;
  auto client = make_client(common);
  exit_on_failure(*client, stop);
  std::atomic<long> received{0};
  client->on_message([&](const sdk::MessageEvent& m) {
    if (count > 0 && received >= count) return;
    say(m.publisher + ": " + printable(m.payload));
    if (count > 0 && ++received >= count) stop.request(0);
  });
  auto ch = client->stream_channel(channel);
  const bool everyone = from.empty();
  const std::string me = client->uid();
  if (everyone) {
    // Follow the channel: subscribe to each new publisher of the topic as it appears.
    client->on_channel_event([ch, topic, me](const sdk::ChannelEvent& e) mutable {
      if (e.type == sdk::ChannelEventType::publisher_joined && e.topic == topic && e.uid != me) {
        ch.subscribe_topic_async(topic, {e.uid}, [uid = e.uid](sdk::Result<sdk::SubscribeResult> r) {
          if (!r.ok()) note("subscribe " + uid + ": " + r.status().to_string());
        });
      }
    });
  }
  check(client->login(), "login");
  auto snap = check(ch.join(), "join " + channel);
  if (everyone) {
    for (const auto& t : snap.topics) {
      if (t.topic != topic) continue;
      for (const auto& p : t.publishers) {
        if (p != me) from.push_back(p);
      }
    }
  }
  if (!from.empty()) {
    auto sub = check(ch.subscribe_topic(topic, from), "subscribe " + channel + "/" + topic);
    for (const auto& u : sub.users) {
      if (!u.status.ok()) note("subscribe " + u.uid + ": " + u.status.to_string());
    }
  }
  note("listening on " + channel + "/" + topic +
       (everyone ? " (every publisher)" : " (from " + CLI::detail::join(from, ", ") + ")") +
       " as " + me + "; Ctrl-C to stop");
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
  long sent = 0;
  auto send = [&](const std::string& text) {
    check(ch.publish_topic(topic, text, sdk::PublishOptions{qos}), "publish");
    ++sent;
  };
  if (message) {
    send(*message);
  } else {
    LineReader lines(stop);
    while (auto line = lines.next()) send(*line);
  }
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
  client->on_message([](const sdk::MessageEvent& m) {
    say("[" + m.publisher + "] " + printable(m.payload));
  });
  client->on_channel_event([ch, topic, me](const sdk::ChannelEvent& e) mutable {
    switch (e.type) {
      case sdk::ChannelEventType::member_joined:
        if (e.uid != me) say("* " + e.uid + " joined");
        break;
      case sdk::ChannelEventType::member_left:
      case sdk::ChannelEventType::member_timed_out:
        if (e.uid != me) say("* " + e.uid + " left (" + e.reason + ")");
        break;
      case sdk::ChannelEventType::publisher_joined:
        if (e.topic == topic && e.uid != me) {
          ch.subscribe_topic_async(topic, {e.uid}, [uid = e.uid](sdk::Result<sdk::SubscribeResult> r) {
            if (!r.ok()) note("subscribe " + uid + ": " + r.status().to_string());
          });
        }
        break;
      default:
        break;
    }
  });
  check(client->login(), "login");
  auto snap = check(ch.join(), "join " + channel);
  check(ch.join_topic(topic), "join_topic " + channel + "/" + topic);
  std::vector<std::string> talkers;
  for (const auto& t : snap.topics) {
    if (t.topic != topic) continue;
    for (const auto& p : t.publishers) {
      if (p != me) talkers.push_back(p);
    }
  }
  if (!talkers.empty()) check(ch.subscribe_topic(topic, talkers), "subscribe");
  say("* you are " + me + " in " + channel + " with " + CLI::detail::join(snap.members, ", ") +
      "; type a line to send it, Ctrl-D or Ctrl-C to leave");
  LineReader lines(stop);
  while (auto line = lines.next()) {
    if (line->empty()) continue;
    auto r = ch.publish_topic(topic, *line);
    if (!r.ok()) note("not sent: " + r.status().to_string());
  }
  ch.leave();
  client->logout();
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
           int qos) {
  Stop stop;
  auto client = make_client(common);
  check(client->login(), "login");
  auto send = [&](const std::string& text) {
    check(client->publish(to, text, sdk::PublishOptions{qos}), "publish to " + to);
  };
  if (message) {
    send(*message);
  } else {
    LineReader lines(stop);
    while (auto line = lines.next()) send(*line);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtm: real-time messaging over MQTT through rtm-gateway, from a terminal"};
  app.require_subcommand(1);
  app.set_version_flag("--version", RTM_VERSION);

  std::string secret, config_path, uid;
  int ttl = 3600;
  auto* token = app.add_subcommand("token", "print a login token (JWT, HS256) for a uid");
  token->add_option("--secret", secret, "the gateway's auth.token_secret")->envname("RTM_SECRET");
  token->add_option("--config", config_path, "take the secret from the gateway's config file");
  token->add_option("--uid", uid, "the user id the token is for")->required();
  token->add_option("--ttl", ttl, "seconds until the token expires")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  Common common;
  std::string channel, topic, to;
  std::vector<std::string> from;
  std::optional<std::string> message;
  long count = 0;
  int qos = 0;

  auto* who = app.add_subcommand("who", "list the members of a channel");
  add_common(who, common);
  who->add_option("--channel", channel, "the channel")->required();

  auto* listen = app.add_subcommand(
      "listen", "print messages on a channel topic, as \"publisher: payload\"");
  add_common(listen, common);
  listen->add_option("--channel", channel, "the channel to join")->required();
  listen->add_option("--topic", topic, "the topic to listen to")->required();
  listen->add_option("--from", from, "publishers to subscribe to (default: every publisher, as they appear)");
  listen->add_option("--count", count, "stop after this many messages (0: never)");

  auto* send = app.add_subcommand("send", "publish on a channel topic: --message, or one message per stdin line");
  add_common(send, common);
  send->add_option("--channel", channel, "the channel to join")->required();
  send->add_option("--topic", topic, "the topic to publish in")->required();
  send->add_option("-m,--message", message, "the message (default: read lines from stdin)");
  send->add_option("--qos", qos, "MQTT QoS of the messages")->capture_default_str()->check(CLI::Range(0, 1));

  auto* chat = app.add_subcommand("chat", "talk in a channel: typed lines go out on topic \"chat\"");
  add_common(chat, common);
  chat->add_option("--channel", channel, "the channel to join")->required();

  auto* inbox = app.add_subcommand("inbox", "print peer-to-peer messages to you, as \"sender: payload\"");
  add_common(inbox, common);
  inbox->add_option("--count", count, "stop after this many messages (0: never)");

  auto* dm = app.add_subcommand("dm", "send peer-to-peer messages: --message, or one per stdin line");
  add_common(dm, common);
  dm->add_option("--to", to, "the user to write to")->required();
  dm->add_option("-m,--message", message, "the message (default: read lines from stdin)");
  qos = 1;
  dm->add_option("--qos", qos, "MQTT QoS of the messages")->capture_default_str()->check(CLI::Range(0, 1));

  // `send` takes QoS 0 by default, `dm` QoS 1: set the default of the one that runs.
  send->preparse_callback([&qos](std::size_t) { qos = 0; });
  dm->preparse_callback([&qos](std::size_t) { qos = 1; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (token->parsed()) return cmd_token(secret, config_path, uid, ttl);
    if (who->parsed()) return cmd_who(common, channel);
    if (listen->parsed()) return cmd_listen(common, channel, topic, from, count);
    if (send->parsed()) return cmd_send(common, channel, topic, message, qos);
    if (chat->parsed()) return cmd_chat(common, channel);
    if (inbox->parsed()) return cmd_inbox(common, count);
    if (dm->parsed()) return cmd_dm(common, to, message, qos);
  } catch (const Failure& f) {
    note(f.message);
    return 1;
  } catch (const std::exception& e) {
    note(e.what());
    return 1;
  }
  return 0;
}
