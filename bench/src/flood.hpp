#pragma once
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

}  // namespace rtm::bench
