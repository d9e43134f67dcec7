#!/usr/bin/env bash
# Aedes beside the gateway (issue 14): the request round trip (`rtm-bench ping`, one uid, one
# request at a time) and the coplay latency (`rtm-bench latency --path direct`, 1 pair at
# 60 Hz) through Mosquitto (set_tcp_nodelay true), Aedes with noDelay (examples/aedes as
# shipped) and Aedes without it (Node's default: Nagle), in the same run, each with a fresh
# broker and gateway on free ports. A few minutes; prints a Markdown table.
#
#   RTM_BENCH_BUILD_DIR  build directory with rtm-gateway and rtm-bench (default: build)
#   PING_COUNT=N         pings measured per broker (default 1000; Nagle makes each ~44 ms)
#   LAT_SECONDS=N        seconds of coplay frames per broker (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RTM_BENCH_BUILD_DIR:-build}
gateway_bin="$PWD/$build/gateway/rtm-gateway"
bench_bin="$PWD/$build/bench/rtm-bench"
for bin in "$gateway_bin" "$bench_bin"; do
  [[ -x $bin ]] || { echo "$bin is missing: build $build first" >&2; exit 1; }
done
ping_count=${PING_COUNT:-1000}
lat_seconds=${LAT_SECONDS:-10}
./scripts/aedes-deps.sh "$build/aedes" >/dev/null
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
work=$(mktemp -d /tmp/rtm-bench-aedes.XXXXXX)
secret=$(python3 -c 'import secrets; print(secrets.token_hex(24))')

pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker mosquitto|aedes|aedes-nagle: on a free port; sets $broker and $broker_pid.
start_broker() {
  local name=$1 port
  port=$(free_port)
  broker="tcp://127.0.0.1:$port"
  case $name in
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
  "$gateway_bin" --config "$work/gateway.yaml" >"$work/gateway.log" 2>&1 &
  pids+=("$!")
  "$bench_bin" wait-ready --broker "$broker" --prefix rtm --timeout 20 >/dev/null ||
    { echo "the gateway did not answer: $(cat "$work/gateway.log")" >&2; exit 1; }
}

echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in mosquitto aedes aedes-nagle; do
  start_broker "$name"
  start_gateway
  "$bench_bin" ping --broker "$broker" --label "$name" --count "$ping_count" --hz 200 \
    --max-seconds 120 --json "$work/$name-ping.json"
  "$bench_bin" latency --path direct --broker "$broker" --pairs 1 --hz 60 \
    --seconds "$lat_seconds" --warmup 1 --broker-pid "$broker_pid" \
    --json "$work/$name-latency.json" | grep -i "latency" || true
  stop_all
done

python3 - "$work" <<'PY'
import json, sys, os
work = sys.argv[1]
names = {"mosquitto": "Mosquitto 2.0 (`set_tcp_nodelay true`)",
         "aedes": "Aedes, examples/aedes (noDelay on)",
         "aedes-nagle": "Aedes with `--no-nodelay` (Node's default)"}
print("\n| broker | ping round trip p50 / p99 ms (n) | coplay 1 pair 60 Hz one-way p50 / p99 ms (n) |")
print("| --- | --- | --- |")
for key, label in names.items():
    p = json.load(open(os.path.join(work, key + "-ping.json")))
    l = json.load(open(os.path.join(work, key + "-latency.json")))
    print(f"| {label} | {p['ping.p50_ms']:.2f} / {p['ping.p99_ms']:.2f} ({int(p['ping.count'])}) "
          f"| {l['latency.p50_ms']:.2f} / {l['latency.p99_ms']:.2f} ({int(l['latency.count'])}) |")
PY
