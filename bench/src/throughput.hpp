#pragma once
#include <string>

#include "enforcement.hpp"

namespace rtm::bench {

// Bridge throughput: the highest rate that goes through with no loss, straight through the
// broker (path direct) or through one mapping rule (path bridge). The same publisher and
// subscriber programs; only the topic the publishers write to differs.
struct ThroughputOptions {
  std::string path = "direct";  // direct | bridge
  // lean: the bench's own MQTT clients (one non-blocking socket with TCP_NODELAY per
  // connection and the gateway's codec; many packets per send() and per recv()), so that
  // the broker, not the clients, sets the direct rate. paho: Paho MQTT C++ clients (the
  // earlier method, whose direct rate the clients limited).
  std::string client = "lean";
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  int qos = 0;
  int size = 64;          // payload bytes
  int pub_procs = 2;      // publisher processes (each has its own Paho threads)
  int pub_conns = 2;      // connections per publisher process, one thread each
  int subscribers = 2;    // subscriber connections (in this process)
  double step_s = 2;      // length of a rate step
  double probe_s = 1.5;   // closed-loop probe that picks the first step
  double factor = 1.2;    // rate multiplier between steps
  double start_rate = 0;  // msg/s of the first step; 0 = from the probe
  int max_steps = 10;
  double tick_ms = 1;     // lean: a publisher writes what is due once per tick, in one send()
  int sub_pause_us = 100;  // lean: a subscriber pauses this long after each read (fewer wake-ups)
  // In flight per publisher connection; 0 = 5000 (QoS 0) / 1000 (QoS 1). Paho: messages
  // handed to Paho and not yet written or acknowledged; lean: QoS 1 messages not yet
  // acknowledged (PUBACK), QoS 0 messages the socket has not taken yet.
  int window = 0;
  int closed_window = 200;  // probe: messages per connection sent and not yet received
  // Token logins (lean clients): with a secret, every connection logs in with username = its
  // uid and password = a token (the project's plugin), publishers as the uid of their stream
  // level, subscribers as uids of their own.
  std::string secret;
  // With a password: before the run, a full set of grant records (as the gateway's service
  // user) lets each publisher write its stream and each subscriber read the streams it
  // subscribes to, next to `grants_population` other users (plugin_opt_enforce_grants true).
  GrantFeedLogin grants;
  int grants_population = 10000;
  int broker_pid = 0;
  int gateway_pid = 0;
  std::string json_out;
  std::string tag;
};

int run_throughput(const ThroughputOptions& options);

}  // namespace rtm::bench
