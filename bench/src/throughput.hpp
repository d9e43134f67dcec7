#pragma once
#include <string>

namespace rtm::bench {

// Bridge throughput: the highest rate that goes through with no loss, straight through the
// broker (path direct) or through one mapping rule (path bridge). The same publisher and
// subscriber programs; only the topic the publishers write to differs.
struct ThroughputOptions {
  std::string path = "direct";  // direct | bridge
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  int qos = 0;
  int size = 64;          // payload bytes
  int pub_procs = 2;      // publisher processes (each has its own Paho threads)
  int pub_conns = 2;      // Paho connections per publisher process, one thread each
  int subscribers = 2;    // subscriber connections (in this process)
  double step_s = 2;      // length of a rate step
  double probe_s = 1.5;   // closed-loop probe that picks the first step
  double factor = 1.2;    // rate multiplier between steps
  double start_rate = 0;  // msg/s of the first step; 0 = from the probe
  int max_steps = 10;
  int window = 0;         // Paho in-flight bound per connection; 0 = 5000 (QoS 0) / 1000 (QoS 1)
  int closed_window = 200;  // probe: messages per connection sent and not yet received
  int broker_pid = 0;
  int gateway_pid = 0;
  std::string json_out;
  std::string tag;
};

int run_throughput(const ThroughputOptions& options);

}  // namespace rtm::bench
