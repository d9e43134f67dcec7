#!/usr/bin/env bash
# The gateway beside each broker it is tested with (issue 14), in one run: the request round
# trip (`rtm-bench ping`, one uid, one request at a time) and the coplay latency (`rtm-bench
# latency`: the direct path at 1, 50 and 100 pairs, and the bridge at 50 pairs, 60 Hz, with
# the broker's CPU per frame) through
# Mosquitto (set_tcp_nodelay true: the baseline), RabbitMQ 3.10 with its MQTT plugin
# (scripts/rabbitmq.sh), Aedes with noDelay (examples/aedes as shipped) and Aedes without it
# (Node's default: Nagle), each with a fresh broker and gateway (the coplay example's rules)
# on free ports. About 6 minutes; writes bench/results/brokers.md and prints it.
#
#   RTM_BENCH_BUILD_DIR  build directory with rtm-gateway and rtm-bench (default: build-bench,
#                        built by scripts/bench.sh; build works too)
#   PING_COUNT=N         pings measured per broker (default 1000; Nagle makes each ~44 ms)
#   LAT_SECONDS=N        seconds of coplay frames per run (default 10)
#   BROKERS="..."        a subset of: mosquitto rabbitmq aedes aedes-nagle (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RTM_BENCH_BUILD_DIR:-build-bench}
gateway_bin="$PWD/$build/gateway/rtm-gateway"
bench_bin="$PWD/$build/bench/rtm-bench"
for bin in "$gateway_bin" "$bench_bin"; do
  [[ -x $bin ]] || { echo "$bin is missing: build $build first" >&2; exit 1; }
done
ping_count=${PING_COUNT:-1000}
lat_seconds=${LAT_SECONDS:-10}
brokers=${BROKERS:-mosquitto rabbitmq aedes aedes-nagle}
results=bench/results
./scripts/aedes-deps.sh "$build/aedes" >/dev/null
# shellcheck source=scripts/rabbitmq.sh
source scripts/rabbitmq.sh
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
work=$(mktemp -d /tmp/rtm-bench-brokers.XXXXXX)
secret=$(python3 -c 'import secrets; print(secrets.token_hex(24))')

pids=()
rabbit_dir=
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  if [[ -n $rabbit_dir ]]; then
    rabbitmq_stop "$rabbit_dir" >/dev/null 2>&1 || true
    rabbit_dir=
  fi
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker mosquitto|rabbitmq|aedes|aedes-nagle: on a free port; sets $broker,
# $broker_pid and $profile (the gateway's broker.profile).
start_broker() {
  local name=$1 port
  port=$(free_port)
  broker="tcp://127.0.0.1:$port"
  profile=mosquitto
  case $name in
    rabbitmq)
      profile=rabbitmq
      rabbit_dir="$work/rabbitmq"
      rabbitmq_configure "$rabbit_dir" "$port"
      rabbitmq_start "$rabbit_dir"
      broker_pid=$rabbitmq_pid
      for _ in $(seq 1200); do
        port_open "$port" && return 0
        sleep 0.05
      done
      echo "rabbitmq did not start: $(tail -20 "$rabbit_dir"/log/*.log 2>/dev/null)" >&2
      exit 1
      ;;
    mosquitto)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' \
        "$port" >"$work/mosquitto.conf"
      "$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/$name.log" 2>&1 &
      ;;
    aedes) node "$build/aedes/broker.mjs" --port "$port" >"$work/$name.log" 2>&1 & ;;
    aedes-nagle) node "$build/aedes/broker.mjs" --port "$port" --no-nodelay >"$work/$name.log" 2>&1 & ;;
  esac
  broker_pid=$!
  pids+=("$broker_pid")
  for _ in $(seq 400); do
    port_open "$port" && return 0
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start: $(cat "$work/$name.log")" >&2
  exit 1
}

start_gateway() {
  cat >"$work/gateway.yaml" <<YAML
broker:
  uri: $broker
  client_id: rtm-gateway-bench
  username: ""
  profile: $profile
topics:
  prefix: rtm
auth:
  token_secret: "$secret"
log:
  level: warn
# One uid pings 200 times a second: above the default per-uid limit (50/s), whose RATE_LIMITED
# answers would be measured instead of pings.
requests:
  rate_per_s: 1000000
  burst: 1000000
YAML
  # The coplay example's rules, for the bridge path.
  awk '/^mapping:/{m=1} m' examples/coplay/gateway.yaml >>"$work/gateway.yaml"
  "$gateway_bin" --config "$work/gateway.yaml" >"$work/gateway.log" 2>&1 &
  pids+=("$!")
  "$bench_bin" wait-ready --broker "$broker" --prefix rtm --timeout 20 >/dev/null ||
    { echo "the gateway did not answer: $(cat "$work/gateway.log")" >&2; exit 1; }
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at the start: $load_start"
for name in $brokers; do
  echo "== $name"
  start_broker "$name"
  start_gateway
  "$bench_bin" ping --broker "$broker" --label "$name" --count "$ping_count" --hz 200 \
    --max-seconds 120 --json "$work/$name-ping.json"
  for run in direct-1 direct-50 direct-100 bridge-50; do
    "$bench_bin" latency --path "${run%-*}" --broker "$broker" --pairs "${run#*-}" --hz 60 \
      --seconds "$lat_seconds" --warmup 1 --broker-pid "$broker_pid" \
      --json "$work/$name-$run.json" | grep "^latency" || true
  done
  stop_all
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$results"
python3 - "$work" "$brokers" "$load_start" "$load_end" "$ping_count" "$lat_seconds" >"$results/brokers.md" <<'PY'
import json, os, sys, datetime
work, brokers, load_start, load_end, pings, seconds = sys.argv[1:7]
labels = {"mosquitto": "Mosquitto 2.0 (`set_tcp_nodelay true`), the baseline",
          "rabbitmq": "RabbitMQ 3.10, `rabbitmq_mqtt` (scripts/rabbitmq.sh)",
          "aedes": "Aedes, examples/aedes (noDelay on)",
          "aedes-nagle": "Aedes with `--no-nodelay` (Node's default)"}
def load(name, run):
    path = os.path.join(work, f"{name}-{run}.json")
    return json.load(open(path)) if os.path.exists(path) else None
def cell(d, key):
    if not d:
        return "failed"
    text = f"{d[key + '.p50_ms']:.2f} / {d[key + '.p99_ms']:.2f}"
    if "lost" in d and d["lost"]:
        text += f" (lost {int(d['lost'])})"
    return text
print("# The gateway beside each broker\n")
print(f"`scripts/bench-brokers.sh`, {datetime.date.today()}, one run on this machine "
      f"({os.cpu_count()} cores); load average {load_start} at the start, {load_end} at the end. "
      f"Ping: {pings} requests at 200/s, one at a time; coplay: {seconds} s at 60 Hz per run, "
      "one-way latency of every frame. Milliseconds, p50 / p99.\n")
runs = ("direct-1", "direct-50", "direct-100", "bridge-50")
print("| broker | ping round trip | coplay direct, 1 pair | direct, 50 pairs | direct, 100 pairs "
      "| bridge, 50 pairs | broker CPU per frame, direct 50 pairs |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name in brokers.split():
    row = [labels.get(name, name), cell(load(name, "ping"), "ping")]
    for run in runs:
        row.append(cell(load(name, run), "latency"))
    d = load(name, "direct-50")
    row.append(f"{d['cpu.broker_s'] * 1e6 / max(1, d['latency.count']):.0f} µs" if d else "failed")
    print("| " + " | ".join(row) + " |")
print("\nA p50 of hundreds of milliseconds means the broker could not keep up: frames queued faster than it "
      "delivered them (the bench clients share the machine's two cores with it).")
PY
cat "$results/brokers.md"
