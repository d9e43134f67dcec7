// rtm-bench: the client side of the benchmarks (issue 7). scripts/bench.sh starts Mosquitto
// and the gateway and runs these subcommands; each prints its result and writes JSON.
#include <CLI/CLI.hpp>

#include <iostream>

#include "common.hpp"
#include "control.hpp"
#include "enforcement.hpp"
#include "flood.hpp"
#include "latency.hpp"
#include "rtm/util/random.hpp"
#include "throughput.hpp"

using namespace rtm::bench;

int main(int argc, char** argv) {
  CLI::App app{"rtm-mqtt-gateway benchmarks (see scripts/bench.sh)"};
  app.require_subcommand(1);
  std::string tag = rtm::util::random_hex(6);

  LatencyOptions lat;
  auto* l = app.add_subcommand("latency", "coplay latency: P host/player pairs at H Hz");
  l->add_option("--path", lat.path, "direct | bridge | p2p | sdk")->required();
  l->add_option("--broker", lat.broker, "broker URI");
  l->add_option("--prefix", lat.prefix, "topics.prefix of the gateway");
  l->add_option("--secret", lat.secret, "token secret (sdk path)");
  l->add_option("--pairs", lat.pairs, "host/player pairs");
  l->add_option("--pairs-per-connection", lat.pairs_per_connection,
                "direct/bridge: pairs sharing one player and one host connection");
  l->add_option("--procs", lat.procs, "client processes the pairs are split between (0: one per 10 pairs)");
  l->add_option("--hz", lat.hz, "frames per second per player");
  l->add_option("--seconds", lat.seconds, "measured seconds");
  l->add_option("--warmup", lat.warmup_s, "seconds sent first and not counted");
  l->add_option("--frame-bytes", lat.frame_bytes, "frame size (at least 24)");
  l->add_flag("--token-login", lat.token_login,
              "direct/bridge: players and hosts log in with tokens signed with --secret (uid = username)");
  l->add_option("--grants-user", lat.grants.user, "service user that feeds grant records");
  l->add_option("--grants-password", lat.grants.password,
                "with it: feed a full grant set for the pairs first (plugin_opt_enforce_grants true)");
  l->add_option("--grants-population", lat.grants_population, "other users in that grant set");
  l->add_option("--broker-pid", lat.broker_pid, "for CPU readings");
  l->add_option("--gateway-pid", lat.gateway_pid, "for CPU readings");
  l->add_option("--json", lat.json_out, "write results here");
  l->add_option("--curve", lat.curve_out, "write latency by percentile here (CSV)");

  ThroughputOptions tp;
  auto* t = app.add_subcommand("throughput", "highest rate with no loss, direct or through one mapping rule");
  t->add_option("--path", tp.path, "direct | bridge")->required();
  t->add_option("--client", tp.client,
                "lean (the bench's own MQTT connections, batched; default) | paho (Paho C++ clients)");
  t->add_option("--tick-ms", tp.tick_ms, "lean: a publisher writes what is due once per tick");
  t->add_option("--sub-pause-us", tp.sub_pause_us,
                "lean: a subscriber pauses this long after each read, so that one wake-up reads many messages");
  t->add_option("--broker", tp.broker, "broker URI");
  t->add_option("--prefix", tp.prefix, "topics.prefix of the gateway");
  t->add_option("--qos", tp.qos, "0 or 1");
  t->add_option("--size", tp.size, "payload bytes");
  t->add_option("--pub-procs", tp.pub_procs, "publisher processes");
  t->add_option("--pub-conns", tp.pub_conns, "connections per publisher process");
  t->add_option("--subscribers", tp.subscribers, "subscriber connections");
  t->add_option("--step-seconds", tp.step_s, "length of a rate step");
  t->add_option("--probe-seconds", tp.probe_s, "length of the closed-loop probe");
  t->add_option("--factor", tp.factor, "rate multiplier between steps");
  t->add_option("--start-rate", tp.start_rate, "first step (msg/s); 0 = from the probe");
  t->add_option("--max-steps", tp.max_steps, "most steps");
  t->add_option("--window", tp.window, "in-flight bound per publisher connection (0: 5000 QoS 0, 1000 QoS 1)");
  t->add_option("--closed-window", tp.closed_window, "probe: in flight per connection end to end");
  t->add_option("--secret", tp.secret, "lean: log in with tokens signed with this (uid = username)");
  t->add_option("--grants-user", tp.grants.user, "service user that feeds grant records");
  t->add_option("--grants-password", tp.grants.password,
                "with it: feed a full grant set for the clients first (plugin_opt_enforce_grants true)");
  t->add_option("--grants-population", tp.grants_population, "other users in that grant set");
  t->add_option("--broker-pid", tp.broker_pid, "for CPU readings");
  t->add_option("--gateway-pid", tp.gateway_pid, "for CPU readings");
  t->add_option("--json", tp.json_out, "write results here");

  ControlOptions ctl;
  auto* c = app.add_subcommand("control", "control plane: N clients running login/join/join_topic/subscribe/leave");
  c->add_option("--broker", ctl.broker, "broker URI");
  c->add_option("--prefix", ctl.prefix, "prefix of the responder (rtm: gateway, echo: baseline)");
  c->add_option("--secret", ctl.secret, "token secret");
  c->add_option("--label", ctl.label, "name in the output");
  c->add_option("--clients", ctl.clients, "concurrent clients");
  c->add_option("--procs", ctl.procs, "client processes");
  c->add_option("--seconds", ctl.seconds, "measured seconds");
  c->add_option("--warmup", ctl.warmup_s, "seconds before measuring");
  c->add_option("--broker-pid", ctl.broker_pid, "for CPU readings");
  c->add_option("--responder-pid", ctl.gateway_pid, "for CPU readings (gateway or echo)");
  c->add_option("--more-responder-pids", ctl.more_responder_pids,
                "more responders whose CPU counts with --responder-pid's (the other gateways of "
                "a cluster), comma-separated")
      ->delimiter(',');
  c->add_option("--redis-pid", ctl.redis_pid, "for CPU readings of the shared state's Redis");
  c->add_flag("--nodelay", ctl.nodelay, "set TCP_NODELAY on the clients' sockets");
  c->add_option("--workload", ctl.workload,
                "rtm (login/join/join_topic/subscribe/leave) | metadata (set_channel_metadata "
                "with compare-and-set, set_user_metadata, get_channel_metadata)")
      ->check(CLI::IsMember({"rtm", "metadata"}));
  c->add_option("--json", ctl.json_out, "write results here");

  std::string echo_broker = "tcp://127.0.0.1:1883", echo_prefix = "echo";
  auto* e = app.add_subcommand("echo", "baseline responder: answers every request on its mirrored topic");
  e->add_option("--broker", echo_broker, "broker URI");
  e->add_option("--prefix", echo_prefix, "prefix to answer under");

  std::string ready_broker = "tcp://127.0.0.1:1883", ready_prefix = "rtm", ready_secret;
  double ready_timeout = 20;
  auto* w = app.add_subcommand("wait-ready", "ping until the gateway (or echo) answers");
  w->add_option("--broker", ready_broker, "broker URI");
  w->add_option("--prefix", ready_prefix, "prefix");
  w->add_option("--timeout", ready_timeout, "seconds");
  w->add_option("--secret", ready_secret, "log in to the broker with a token signed with this");

  SessionsOptions ses;
  auto* s = app.add_subcommand("sessions", "gateway RSS with many logged-in idle sessions");
  s->add_option("--broker", ses.broker, "broker URI");
  s->add_option("--prefix", ses.prefix, "topics.prefix of the gateway");
  s->add_option("--secret", ses.secret, "token secret")->required();
  s->add_option("--count", ses.count, "sessions");
  s->add_option("--window", ses.window, "logins in flight");
  s->add_option("--gateway-pid", ses.gateway_pid, "the gateway process")->required();
  s->add_option("--settle", ses.settle_s, "seconds to wait before each RSS reading");
  s->add_option("--json", ses.json_out, "write results here");

  FloodOptions fl;
  auto* fd = app.add_subcommand("flood", "a victim's request latency with and without one uid flooding garbage");
  fd->add_option("--broker", fl.broker, "broker URI");
  fd->add_option("--prefix", fl.prefix, "topics.prefix of the gateway");
  fd->add_option("--seconds", fl.seconds, "seconds per phase");
  fd->add_option("--ping-hz", fl.ping_hz, "the victim's requests per second");
  fd->add_option("--flooders", fl.flooders, "connections of the flooding uid");
  fd->add_option("--broker-pid", fl.broker_pid, "for CPU readings");
  fd->add_option("--gateway-pid", fl.gateway_pid, "for CPU readings");
  fd->add_option("--json", fl.json_out, "write results here");

  PingOptions pi;
  auto* pg_ping = app.add_subcommand(
      "ping", "request round trip: one uid pings the gateway, one request at a time");
  pg_ping->add_option("--broker", pi.broker, "broker URI");
  pg_ping->add_option("--prefix", pi.prefix, "topics.prefix of the gateway");
  pg_ping->add_option("--label", pi.label, "name in the output");
  pg_ping->add_option("--count", pi.count, "pings measured (after 20 not counted)");
  pg_ping->add_option("--hz", pi.hz, "at most this many pings a second");
  pg_ping->add_option("--max-seconds", pi.max_seconds, "stop here even if --count is not reached");
  pg_ping->add_option("--json", pi.json_out, "write results here");

  PropagationOptions pr;
  auto* pg = app.add_subcommand("propagation",
                                "grant propagation: subscribe answer -> first delivered message (gateway with publish_grants)");
  pg->add_option("--broker", pr.broker, "broker URI");
  pg->add_option("--prefix", pr.prefix, "topics.prefix of the gateway");
  pg->add_option("--secret", pr.secret, "token secret")->required();
  pg->add_option("--repeats", pr.repeats, "subscribe/unsubscribe rounds");
  pg->add_option("--period-us", pr.period_us, "the publisher sends one message per period");
  pg->add_option("--quiet-ms", pr.quiet_ms, "after unsubscribe: silence that ends a round");
  pg->add_option("--broker-pid", pr.broker_pid, "for CPU readings");
  pg->add_option("--gateway-pid", pr.gateway_pid, "for CPU readings");
  pg->add_option("--json", pr.json_out, "write results here");

  GrantChangeOptions gc;
  auto* gch = app.add_subcommand("grant-changes",
                                 "time per grant change: our grant records or Mosquitto's dynamic security plugin");
  gch->add_option("--system", gc.system, "records | dynsec")->required();
  gch->add_option("--broker", gc.broker, "broker URI");
  gch->add_option("--prefix", gc.prefix, "topics.prefix");
  gch->add_option("--user", gc.user, "records: the grants user (rtm-gateway); dynsec: its admin user");
  gch->add_option("--password", gc.password, "that user's password")->required();
  gch->add_option("--secret", gc.secret, "records: token secret (the marker's reader logs in)");
  gch->add_option("--grants", gc.grants, "grants in place (dynsec: in its config file already)");
  gch->add_option("--changes", gc.changes, "grant changes timed");
  gch->add_option("--file", gc.file, "dynsec: its config file, whose size is reported");
  gch->add_option("--broker-pid", gc.broker_pid, "for CPU readings");
  gch->add_option("--json", gc.json_out, "write results here");

  auto* f = app.add_subcommand("features", "prints the optional parts built in (sdk)");

  CLI11_PARSE(app, argc, argv);
  lat.tag = tp.tag = ctl.tag = ses.tag = fl.tag = pr.tag = gc.tag = pi.tag = tag;
  try {
    if (*l) return run_latency(lat);
    if (*t) return run_throughput(tp);
    if (*c) return run_control(ctl);
    if (*e) return run_echo(echo_broker, echo_prefix);
    if (*w) return run_wait_ready(ready_broker, ready_prefix, ready_timeout, ready_secret);
    if (*pg) return run_propagation(pr);
    if (*gch) return run_grant_changes(gc);
    if (*s) return run_sessions(ses);
    if (*fd) return run_flood(fl);
    if (*pg_ping) return run_ping(pi);
    if (*f) {
#ifdef RTM_BENCH_HAVE_SDK
      std::cout << "sdk\n";
#endif
      return 0;
    }
  } catch (const std::exception& ex) {
    std::cerr << "rtm-bench: " << ex.what() << "\n";
    return 2;
  }
  return 2;
}
