#pragma once
// Shared by coplay-host and coplay-player: the input frame, and the connection options.
//
// Frame (binary, 28 bytes, little-endian):
//   0  'C' 'P'       magic
//   2  u8  version   1
//   3  u8  flags     0
//   4  u32 seq       0, 1, 2, ... per player run
//   8  u64 sent_ns   send time, ns since the Unix epoch (system clock: one machine, or NTP)
//  16  u16 buttons   bit mask
//  18  i16 axes[4]   left x/y, right x/y
//  26  u16 reserved
// or JSON: {"seq":1,"sent_ns":...,"buttons":5,"axes":[0,0,0,0]} (--format json).
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "rtm/gateway/config.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/sdk/client.hpp"

namespace coplay {

struct Frame {
  std::uint32_t seq = 0;
  std::uint64_t sent_ns = 0;
  std::uint16_t buttons = 0;
  std::array<std::int16_t, 4> axes{};
};

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

template <class T>
void put(std::string& out, std::size_t at, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[at + i] = static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
  }
}
template <class T>
T get(const std::string& in, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  }
  return static_cast<T>(v);
}

inline std::string encode_binary(const Frame& f) {
  std::string out(28, '\0');
  out[0] = 'C';
  out[1] = 'P';
  out[2] = 1;
  put<std::uint32_t>(out, 4, f.seq);
  put<std::uint64_t>(out, 8, f.sent_ns);
  put<std::uint16_t>(out, 16, f.buttons);
  for (std::size_t i = 0; i < 4; ++i) {
    put<std::uint16_t>(out, 18 + 2 * i, static_cast<std::uint16_t>(f.axes[i]));
  }
  return out;
}

inline std::string encode_json(const Frame& f) {
  return "{\"seq\":" + std::to_string(f.seq) + ",\"sent_ns\":" + std::to_string(f.sent_ns) +
         ",\"buttons\":" + std::to_string(f.buttons) + ",\"axes\":[" + std::to_string(f.axes[0]) +
         "," + std::to_string(f.axes[1]) + "," + std::to_string(f.axes[2]) + "," +
         std::to_string(f.axes[3]) + "]}";
}

// Reads "key":<integer> from the small JSON the player writes.
inline std::optional<std::int64_t> json_int(const std::string& text, const char* key) {
  const std::string k = std::string("\"") + key + "\":";
  const auto at = text.find(k);
  if (at == std::string::npos) return std::nullopt;
  try {
    return std::stoll(text.substr(at + k.size()));
  } catch (...) {
    return std::nullopt;
  }
}

inline std::optional<Frame> decode(const std::string& payload) {
  Frame f;
  if (payload.size() >= 28 && payload[0] == 'C' && payload[1] == 'P' && payload[2] == 1) {
    f.seq = get<std::uint32_t>(payload, 4);
    f.sent_ns = get<std::uint64_t>(payload, 8);
    f.buttons = get<std::uint16_t>(payload, 16);
    for (std::size_t i = 0; i < 4; ++i) {
      f.axes[i] = static_cast<std::int16_t>(get<std::uint16_t>(payload, 18 + 2 * i));
    }
    return f;
  }
  if (!payload.empty() && payload[0] == '{') {
    auto seq = json_int(payload, "seq");
    auto sent = json_int(payload, "sent_ns");
    if (!seq || !sent) return std::nullopt;
    f.seq = static_cast<std::uint32_t>(*seq);
    f.sent_ns = static_cast<std::uint64_t>(*sent);
    f.buttons = static_cast<std::uint16_t>(json_int(payload, "buttons").value_or(0));
    return f;
  }
  return std::nullopt;
}

// Connection options of both programs.
struct Options {
  std::string broker;
  std::string uid;
  std::string token;
  std::string secret;
  std::string config_path;
  std::string room = "room-42";
};

inline void add_options(CLI::App& app, Options& o) {
  app.add_option("--broker", o.broker, "broker URI (default tcp://127.0.0.1:1883, or the config's)")
      ->envname("RTM_BROKER");
  app.add_option("--uid", o.uid, "your user id");
  app.add_option("--token", o.token, "login token (JWT)")->envname("RTM_TOKEN");
  app.add_option("--secret", o.secret, "mint a token with this secret (the gateway's auth.token_secret)")
      ->envname("RTM_SECRET");
  app.add_option("--config", o.config_path, "the gateway's config.yaml: token secret, broker, prefix");
  app.add_option("--room", o.room, "the room channel")->capture_default_str();
}

// A client config from the options; throws std::runtime_error with a clear message.
inline rtm::sdk::ClientConfig client_config(const Options& o) {
  rtm::sdk::ClientConfig c;
  c.uid = o.uid;
  c.broker_uri = o.broker.empty() ? "tcp://127.0.0.1:1883" : o.broker;
  std::string secret = o.secret;
  if (!o.config_path.empty()) {
    auto config = rtm::gateway::load_config_file(o.config_path);
    if (o.broker.empty()) c.broker_uri = config.broker.uri;
    c.prefix = config.topics.prefix;
    if (secret.empty()) secret = config.auth.token_secret;
  }
  c.token = o.token;
  if (c.token.empty()) {
    if (secret.empty()) throw std::runtime_error("need a token: --token, --secret or --config");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.token =
        rtm::gateway::sign_token({o.uid, now, now + 24 * 3600, std::nullopt, std::nullopt}, secret);
  }
  return c;
}

// Ctrl-C and SIGTERM: blocked, then waited for with a timeout (the programs' clock tick).
inline sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the SDK starts its threads
  return set;
}

// Sleeps until `deadline` or a stop signal; true when a stop signal came.
inline bool wait_until_or_signal(const sigset_t& set,
                                 std::chrono::steady_clock::time_point deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::nanoseconds(0)) {
    timespec zero{0, 0};
    return sigtimedwait(&set, nullptr, &zero) > 0;
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (true) {
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return true;
    if (errno == EINTR) continue;  // another signal: keep waiting (approximately)
    return false;                  // EAGAIN: the deadline
  }
}

}  // namespace coplay
