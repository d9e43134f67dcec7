#pragma once
// Coplay latency: P host/player pairs, each player sending F frames a second on an absolute
// schedule; the host of the pair receives them. A path is how a frame gets from a player to
// its host (straight through the broker, through the SDK, through a mapping rule); adding a
// path is one class with open/send/close.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "enforcement.hpp"

namespace rtm::bench {

struct LatencyOptions {
  std::string path = "direct";  // direct | bridge | sdk
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string secret;             // token secret (sdk path: logins)
  int pairs = 1;
  int pairs_per_connection = 1;   // direct/bridge: pairs sharing one player / one host connection
  int procs = 0;                  // client processes, pairs split between them; 0 = one per 10 pairs
  double hz = 60;
  double seconds = 20;            // measured part
  double warmup_s = 1;            // sent first, not counted
  int frame_bytes = 32;
  // direct/bridge: players and hosts log in with tokens (username = uid, password = a token
  // signed with `secret`; the project's plugin), one connection per uid.
  bool token_login = false;
  // With a password: before the run, a full set of grant records (as the gateway's service
  // user): each player publishes `input` in its room, each host reads its player there, next
  // to `grants_population` other users (plugin_opt_enforce_grants true).
  GrantFeedLogin grants;
  int grants_population = 10000;
  int broker_pid = 0;             // for CPU readings (0: none)
  int gateway_pid = 0;
  std::string json_out;           // results (JSON)
  std::string curve_out;          // latency by percentile (CSV), for the plot
  std::string tag;                // a run tag, keeps uids and client ids apart
};

// Called for every frame a host receives: the pair of the host that got it, the payload,
// and the receive time (steady clock, ns), taken as early as the path allows.
using FrameSink = std::function<void(int host_pair, std::string_view payload, std::int64_t recv_ns)>;

class LatencyPath {
 public:
  virtual ~LatencyPath() = default;
  // Connects players and hosts of pairs [first, last) (pair numbers are global: they name the
  // rooms and uids); once it returns, every host is ready to receive (subscriptions
  // acknowledged) and frames go to `sink`, with the global pair number.
  virtual void open(int first, int last, FrameSink sink) = 0;
  // Sends a frame as the player of `pair` (from the one sender thread of the process).
  virtual void send(int pair, std::string_view frame) = 0;
  virtual void close() = 0;
  // What the path is, for the report ("one Paho connection per player and per host").
  virtual std::string describe() const = 0;
};

// Names of pair i on paths direct and bridge: its room, and the uids of its player and host.
std::string latency_room(const LatencyOptions& o, int pair);
std::string latency_player(const LatencyOptions& o, int pair);
std::string latency_host(const LatencyOptions& o, int pair);

std::unique_ptr<LatencyPath> make_mqtt_path(const LatencyOptions& options);  // direct, bridge
#ifdef RTM_BENCH_HAVE_SDK
std::unique_ptr<LatencyPath> make_sdk_path(const LatencyOptions& options);
#endif

int run_latency(const LatencyOptions& options);

}  // namespace rtm::bench
