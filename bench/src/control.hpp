#pragma once
#include <string>
#include <vector>

namespace rtm::bench {

// Control plane: N clients, each with its own connection and uid, each running
// login -> join -> join_topic -> subscribe -> leave cycles, one request at a time with its own
// msg_ids. Against the gateway (prefix rtm) or, as the baseline, against `echo` (a trivial
// responder that answers every request on the mirrored topic: the same round trips through
// the broker with no work behind them).
struct ControlOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string secret;    // for login tokens
  std::string label = "gateway";
  int clients = 50;
  int procs = 2;         // client processes (each has its own Paho threads)
  double seconds = 10;   // measured
  double warmup_s = 1;
  int broker_pid = 0;
  int gateway_pid = 0;   // the responder's pid (gateway or echo)
  std::vector<int> more_responder_pids;  // the other gateways of a cluster
  int redis_pid = 0;                     // Redis of a cluster's shared state
  bool nodelay = false;  // TCP_NODELAY on the clients' sockets (see rtm::sdk::enable_tcp_nodelay_to)
  std::string json_out;
  std::string tag;
  // "rtm": the cycle above. "metadata": login and join once, then set_channel_metadata (its
  // own key of the channel, compare-and-set on the revision its last write returned),
  // set_user_metadata and get_channel_metadata, over and over (storage operations).
  std::string workload = "rtm";
};

int run_control(const ControlOptions& options);

// The baseline responder: answers P/req/{uid}/{uri} on P/u/{uid}/res/{uri} at QoS 1 with
// {"msg_id":"...","code":0,"result":{}} until SIGINT/SIGTERM, from Paho's callback, with
// TCP_NODELAY on its socket: the floor for a responder behind one Paho connection. Prints
// READY once subscribed.
int run_echo(const std::string& broker, const std::string& prefix);

// Pings P/req/{uid}/ping until answered (the gateway or the echo responder is serving).
// With a secret it logs in to the broker with a token (a broker with the project's plugin
// and allow_anonymous false).
int run_wait_ready(const std::string& broker, const std::string& prefix, double timeout_s,
                   const std::string& secret = "");

// The gateway's memory with many logged-in idle sessions: logs in `count` uids (pipelined
// through one connection) and reads the gateway's RSS before and after.
struct SessionsOptions {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "rtm";
  std::string secret;
  int count = 10000;
  int window = 200;
  int gateway_pid = 0;
  double settle_s = 2;
  std::string json_out;
  std::string tag;
};
int run_sessions(const SessionsOptions& options);

}  // namespace rtm::bench
