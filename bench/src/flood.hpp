#pragma once
#include <cstddef>
#include <string>

namespace rtm::bench {

// One user floods the gateway with garbage requests as fast as its connection goes, while a
// victim (another uid, another connection) pings one request at a time. The victim's round
// trip p50/p99 is measured first without the flood and then with it, in the same run, and
// the ratio printed: the gateway's per-uid admission must keep the victim's p99 within 2x.
struct FloodOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  double seconds = 10;      // per phase
  double ping_hz = 50;      // the victim's requests per second
  int flooders = 1;         // connections of the flooding uid
  int broker_pid = 0;
  int gateway_pid = 0;
  std::string json_out;
  std::string tag;
};

int run_flood(const FloodOptions& options);

// One uid pings the gateway one request at a time (each answer awaited, at most `hz` a
// second) `count` times: the request round trip through a broker, p50/p99. For comparing
// brokers and their settings (scripts/bench-aedes.sh: Aedes with and without noDelay).
struct PingOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string label = "gateway";
  std::size_t count = 1000;
  double hz = 200;
  double max_seconds = 120;  // stops there even if `count` is not reached
  std::string json_out;
  std::string tag;
};

int run_ping(const PingOptions& options);

}  // namespace rtm::bench
