#!/usr/bin/env bash
# Runs the benchmarks of issue 7 against a Mosquitto (set_tcp_nodelay true) and a gateway
# (with the coplay mapping rules) that it starts itself on a free port, each benchmark with
# its baseline in the same run, and writes bench/results/: results.md (targets, pass/miss),
# latency.png, results.csv and latency_percentiles.csv. Under 10 minutes on 2 cores before
# group web (issue 18), which adds about 2 minutes (web_latency.png, section 6 of results.md).
#
#   BENCH_QUICK=1        3 s phases and short throughput steps: a smoke run (~3 min)
#   BENCH_ONLY="..."     a subset of: state sessions control storage cluster flood latency throughput zerohop history enforcement web
#   BENCH_SECONDS=N      length of each latency run (default 20, quick 3)
#   BENCH_NO_SDK=1       leave out latency path (b) (and do not build it against the SDK)
#   RTM_BENCH_BUILD_DIR  build directory (default build-bench, CMAKE_BUILD_TYPE=Release)
#   BENCH_SKIP_BUILD=1   use the binaries already in the build directory
#   BENCH_RESULTS=DIR    where the results go (default bench/results)
#   BENCH_GATEWAY_CLIENT the gateway's broker.client (native or paho); default: its own default
#   BENCH_ENF_PARTS="..." group enforcement: a subset of brokers propagation changes (default all)
#   BENCH_WEB_SECONDS=N  length of each run of group web (default 10, quick 3)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)

quick=${BENCH_QUICK:-0}
all_groups="state sessions control storage cluster flood latency throughput zerohop history enforcement web"
only=${BENCH_ONLY:-$all_groups}
build=${RTM_BENCH_BUILD_DIR:-build-bench}
results=${BENCH_RESULTS:-bench/results}
if [[ $quick == 1 ]]; then
  lat_seconds=${BENCH_SECONDS:-3}; lat_warmup=0.5
  web_seconds=${BENCH_WEB_SECONDS:-3}
  ctl_seconds=3; ctl_warmup=0.5
  flood_seconds=3
  tp_step=1; tp_probe=1
  sessions=2000
  state_args=(--benchmark_min_time=0.1)
else
  lat_seconds=${BENCH_SECONDS:-20}; lat_warmup=1
  # Seven runs in group web: 10 s each keeps the group near 2 minutes (100 pairs: 60k samples).
  web_seconds=${BENCH_WEB_SECONDS:-10}
  ctl_seconds=10; ctl_warmup=1
  flood_seconds=10
  tp_step=1.5; tp_probe=1
  sessions=10000
  state_args=()
fi
want() { [[ " $only " == *" $1 "* ]]; }
say() { printf '\n== %s (%ds)\n' "$*" $(( $(date +%s) - started )); }

# ---------------------------------------------------------------- build
./scripts/install-deps.sh
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  say "build ($build, Release)"
  sdk_opt=ON
  if [[ ${BENCH_NO_SDK:-0} == 1 ]]; then sdk_opt=OFF; fi
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRTM_BUILD_TESTS=OFF \
    -DRTM_BUILD_BENCH=ON -DRTM_BENCH_SDK=$sdk_opt -DRTM_SANITIZE=OFF >/dev/null
  targets=(rtm-gateway rtm-bench)
  want state && targets+=(rtm-bench-state)
  { want enforcement || want zerohop; } && targets+=(rtm_mosquitto_auth)
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}"
fi
has_node=0
if want web; then
  if command -v node >/dev/null && command -v npm >/dev/null; then
    say "build: the JavaScript SDK (scripts/js.sh sdk-js), for group web"
    ./scripts/js.sh sdk-js && has_node=1
  else
    echo "node/npm missing: group web is left out (scripts/install-deps.sh installs them)"
  fi
fi
gateway_bin="$root/$build/gateway/rtm-gateway"
bench_bin="$root/$build/bench/rtm-bench"
state_bin="$root/$build/bench/rtm-bench-state"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
has_sdk=0
if [[ ${BENCH_NO_SDK:-0} != 1 ]] && "$bench_bin" features | grep -qx sdk; then
  has_sdk=1
fi

raw="$root/$build/bench-raw"
work=$(mktemp -d /tmp/rtm-bench.XXXXXX)
rm -rf "$raw"
mkdir -p "$raw" "$results"
secret=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
# Machine state at the start, for the report.
{
  echo "quick=$quick"
  echo "lat_seconds=$lat_seconds"
  echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "has_sdk=$has_sdk"
  echo "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")"
  echo "gateway_client=${BENCH_GATEWAY_CLIENT:-default}"
} >"$raw/meta.txt"

# ---------------------------------------------------------------- processes
pids=()
broker_pid=0
gateway_pid=0
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
enf=""  # the enforcement group's folder
trap 'cleanup; rm -rf "$work" ${enf:+"$enf"}' EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker NAME [CONF...]: a fresh Mosquitto on a free port; each CONF argument is one more
# line of its config (anonymous clients are allowed unless one says otherwise). With
# BROKER_WS=1, also a WebSockets listener on another free port: ws_port, ws_broker.
start_broker() {
  local name=$1 attempt line anon=true
  shift
  for line in "$@"; do [[ $line == allow_anonymous* ]] && anon=""; done
  for attempt in 1 2 3; do  # another program may take the free port before Mosquitto does
    port=$(free_port)
    broker="tcp://127.0.0.1:$port"
    ws_port=""
    ws_broker=""
    if [[ ${BROKER_WS:-0} == 1 ]]; then
      ws_port=$(free_port)
      ws_broker="ws://127.0.0.1:$ws_port"
    fi
    {
      cat <<CONF
listener $port 127.0.0.1
${anon:+allow_anonymous true}
set_tcp_nodelay true
persistence false
log_dest stdout
log_type error
log_type warning
log_type notice
CONF
      for line in "$@"; do echo "$line"; done
      # Last: "protocol" applies to the listener line before it.
      if [[ -n $ws_port ]]; then printf 'listener %s 127.0.0.1\nprotocol websockets\n' "$ws_port"; fi
    } >"$work/mosquitto.conf"
    "$mosquitto_bin" -c "$work/mosquitto.conf" >"$raw/mosquitto-$name.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 200); do
      kill -0 "$broker_pid" 2>/dev/null || break
      port_open "$port" && break
      sleep 0.05
    done
    sleep 0.2  # a Mosquitto that lost the port to another program exits right after trying
    if kill -0 "$broker_pid" 2>/dev/null && port_open "$port" && { [[ -z $ws_port ]] || port_open "$ws_port"; } &&
       ! grep -q "Error" "$raw/mosquitto-$name.log"; then
      pids+=("$broker_pid")
      break
    fi
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    if [[ $attempt == 3 ]]; then
      echo "mosquitto did not start: $raw/mosquitto-$name.log" >&2
      exit 1
    fi
  done
}

# start_stack NAME: a fresh Mosquitto and gateway for one benchmark group. To a broker that
# checks logins: BROKER_CONF (an array of broker config lines, set before the call),
# GATEWAY_USER / GATEWAY_PASSWORD (the gateway's broker login), GATEWAY_YAML (more top-level
# keys of the gateway's config) and READY_SECRET (wait-ready logs in with a token).
start_stack() {
  local name=$1
  start_broker "$name" ${BROKER_CONF+"${BROKER_CONF[@]}"}
  # The gateway: the coplay example's rules, plus a QoS 1 twin of controller-input for the
  # QoS 1 throughput (source coplay-q1/{room}/{player}/input, same target).
  cat >"$work/gateway.yaml" <<YAML
broker:
  uri: $broker
  client_id: rtm-gateway-bench
${BENCH_GATEWAY_CLIENT:+  client: $BENCH_GATEWAY_CLIENT}
${GATEWAY_USER:+  username: $GATEWAY_USER}
${GATEWAY_PASSWORD:+  password: $GATEWAY_PASSWORD}
topics:
  prefix: rtm
auth:
  token_secret: "$secret"
log:
  level: info
  stats_interval_s: 10
YAML
  if [[ -n ${GATEWAY_YAML:-} ]]; then printf '%s\n' "$GATEWAY_YAML" >>"$work/gateway.yaml"; fi
  if [[ -n ${STATE_FILE:-} ]]; then  # the sqlite backend on this file (docs/state.md)
    printf 'state:\n  backend: sqlite\n  path: %s\n' "$STATE_FILE" >>"$work/gateway.yaml"
  fi
  if [[ $name != flood ]]; then
    # The other benchmarks measure how much the gateway serves, not the per-uid limit
    # (50 control-plane clients each send ~200 requests/s): the flood stage keeps it.
    printf 'requests:\n  rate_per_s: 1000000\n  burst: 1000000\n' >>"$work/gateway.yaml"
  fi
  cat >"$work/q1-rule.yaml" <<'YAML'
    - name: controller-input-q1
      direction: inbound
      source: "coplay-q1/{room}/{player}/input"
      target:
        channel: "{room}"
        topic: input
        publisher: "{player}"
      qos: 1
      keep_source: false
YAML
  awk '/^mapping:/{m=1} m' examples/coplay/gateway.yaml | sed "/^  rules:\$/r $work/q1-rule.yaml" \
    >>"$work/gateway.yaml"
  # mapping.mode (the mapping section is the file's last): broker hands the rules to the plugin.
  if [[ -n ${MAPPING_MODE:-} ]]; then printf '  mode: %s\n' "$MAPPING_MODE" >>"$work/gateway.yaml"; fi
  "$gateway_bin" --check-config --config "$work/gateway.yaml" >/dev/null
  local started_ns
  started_ns=$(date +%s%N)
  "$gateway_bin" --config "$work/gateway.yaml" >"$raw/gateway-$name.log" 2>&1 &
  gateway_pid=$!
  pids+=("$gateway_pid")
  "$bench_bin" wait-ready --broker "$broker" --prefix rtm --timeout 20 ${READY_SECRET:+--secret "$READY_SECRET"} ||
    { echo "the gateway did not answer: $raw/gateway-$name.log" >&2; exit 1; }
  # From the gateway's start to its first answer (a ping), for the restart figure.
  gateway_ready_ms=$((($(date +%s%N) - started_ns) / 1000000))
}

stop_stack() {
  local name=$1
  cleanup
  if grep -qi "dropped" "$raw/mosquitto-$name.log"; then
    echo "NOTE: Mosquitto dropped messages during $name (see $raw/mosquitto-$name.log):"
    grep -i "dropped" "$raw/mosquitto-$name.log" | head -3
  fi
}

# control_baseline GROUP: the control-plane stage against the trivial responder (rtm-bench
# echo, left running as echo_pid) on the current broker: GROUP-echo.json.
control_baseline() {
  "$bench_bin" echo --broker "$broker" --prefix echo >"$raw/echo-$1.log" 2>&1 &
  echo_pid=$!
  pids+=("$echo_pid")
  "$bench_bin" wait-ready --broker "$broker" --prefix echo --timeout 10
  echo "baseline: the same requests answered by a trivial responder (rtm-bench echo)"
  "$bench_bin" control --broker "$broker" --prefix echo --label echo --secret "$secret" \
    --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay --broker-pid "$broker_pid" \
    --responder-pid "$echo_pid" --json "$raw/$1-echo.json" || true
}

# ---------------------------------------------------------------- 4. state scale
if want state; then
  say "state scale: rtm::gateway::State, 100k sessions, 1M subscriptions (Google Benchmark)"
  echo "baseline: BM_HashFind, one lookup in an unordered_map of 100k strings"
  "$state_bin" "${state_args[@]}" --benchmark_out="$raw/state.json" --benchmark_out_format=json

  say "restart: the gateway on a sqlite state of 100k sessions and 1M subscriptions"
  "$state_bin" --write-sqlite "$work/state-restart.db" 2>/dev/null | tee "$raw/state-restart.txt"
  echo "baseline: the same gateway with an empty memory state"
  start_stack restart-empty
  empty_ms=$gateway_ready_ms
  stop_stack restart-empty
  STATE_FILE="$work/state-restart.db" start_stack restart
  stored_ms=$gateway_ready_ms
  stop_stack restart
  grep "state: restored" "$raw/gateway-restart.log" | sed 's/^.*state: /  gateway log: /' | head -1
  echo "  first answer after start: ${stored_ms} ms with the stored state, ${empty_ms} ms empty" |
    tee -a "$raw/state-restart.txt"
fi

# ---------------------------------------------------------------- gateway RSS, idle sessions
if want sessions; then
  say "gateway memory with $sessions logged-in idle sessions"
  start_stack sessions
  "$bench_bin" sessions --broker "$broker" --secret "$secret" --count "$sessions" \
    --gateway-pid "$gateway_pid" --json "$raw/sessions.json" || echo "sessions: failed"
  stop_stack sessions
fi

# ---------------------------------------------------------------- 3. control plane
if want control; then
  say "control plane: 50 clients, login/join/join_topic/subscribe/leave"
  start_stack control
  control_baseline control
  "$bench_bin" control --broker "$broker" --prefix rtm --label gateway --secret "$secret" \
    --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay --broker-pid "$broker_pid" \
    --responder-pid "$gateway_pid" --json "$raw/control-gateway.json" || true
  stop_stack control
  # The same with the durable state backend: every answer waits for its commit.
  say "control plane with state.backend sqlite (the shipped default)"
  STATE_FILE="$work/state-control.db" start_stack control-sqlite
  "$bench_bin" control --broker "$broker" --prefix rtm --label gateway-sqlite --secret "$secret" \
    --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay --broker-pid "$broker_pid" \
    --responder-pid "$gateway_pid" --json "$raw/control-gateway-sqlite.json" || true
  stop_stack control-sqlite
  /usr/bin/python3 - "$raw" <<'PY'
import json, os, sys
raw = sys.argv[1]
def load(label):
    path = os.path.join(raw, f"control-{label}.json")
    return json.load(open(path)) if os.path.exists(path) else None
e, m, s = load("echo"), load("gateway"), load("gateway-sqlite")
if e and m and s:
    print(f"  ops/s vs the trivial responder: memory {m['ops_per_s'] / e['ops_per_s']:.2f}x, "
          f"sqlite {s['ops_per_s'] / e['ops_per_s']:.2f}x")
    mu, su = m["cpu.responder_us_per_op"], s["cpu.responder_us_per_op"]
    print(f"  gateway CPU per op: memory {mu:.1f} us, sqlite {su:.1f} us ({su / mu:.2f}x memory's)")
PY
fi

# ---------------------------------------------------------------- 3f. several gateways (issue 19)
# The control-plane stage against 1, 2 and 3 gateways on one shared state in Redis, with the
# trivial responder and one gateway on memory and on sqlite in the same run (bench/README.md
# 3f; bench/results/cluster.md).
if want cluster; then
  say "several gateways: the control plane on 1, 2, 3 gateways sharing Redis, against echo, memory, sqlite"
  start_broker cluster
  redis_port=$(free_port)
  mkdir -p "$work/redis"
  # As docs/cluster.md runs it: the append-only file, written every second.
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save "" \
    --appendonly yes --appendfsync everysec --logfile "$raw/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 200); do port_open "$redis_port" && break; sleep 0.05; done
  control_baseline cluster
  kill "$echo_pid" 2>/dev/null || true
  wait "$echo_pid" 2>/dev/null || true
  # cluster_run LABEL N BACKEND: N gateways on BACKEND (memory, sqlite, redis), the control
  # stage against them, the gateways' Redis round trips and requests from their metrics.
  cluster_run() {
    local label=$1 n=$2 backend=$3 i
    local gw_pids=() ports=()
    redis-cli -p "$redis_port" FLUSHALL >/dev/null  # every run from an empty state
    for ((i = 1; i <= n; i++)); do
      ports+=("$(free_port)")
      {
        printf 'broker:\n  uri: %s\n  client_id: rtm-gateway-bench-%s\n' "$broker" "$i"
        printf 'topics:\n  prefix: rtm\nauth:\n  token_secret: "%s"\n' "$secret"
        printf 'log:\n  level: info\n  stats_interval_s: 10\n'
        printf 'requests:\n  rate_per_s: 1000000\n  burst: 1000000\n'
        printf 'ops:\n  http_listen: 127.0.0.1:%s\n' "${ports[-1]}"
        case $backend in
          sqlite) printf 'state:\n  backend: sqlite\n  path: %s\n' "$work/cluster-$label.db" ;;
          redis)
            printf 'state:\n  backend: redis\n  redis:\n    uri: redis://127.0.0.1:%s\n' "$redis_port"
            printf 'cluster:\n  enabled: true\n'
            ;;
        esac
      } >"$work/gateway-$label-$i.yaml"
      "$gateway_bin" --config "$work/gateway-$label-$i.yaml" >"$raw/gateway-cluster-$label-$i.log" 2>&1 &
      gw_pids+=($!)
      pids+=($!)
    done
    "$bench_bin" wait-ready --broker "$broker" --prefix rtm --timeout 20 ||
      { echo "the gateways did not answer: $raw/gateway-cluster-$label-1.log" >&2; exit 1; }
    for i in "${ports[@]}"; do
      for _ in $(seq 200); do curl -sf "http://127.0.0.1:$i/metrics" >/dev/null && break; sleep 0.05; done
    done
    for i in "${!ports[@]}"; do curl -sf "http://127.0.0.1:${ports[$i]}/metrics" >"$raw/cluster-$label-$i.before.prom" || true; done
    local more redis_opt=()
    more=$(IFS=,; echo "${gw_pids[*]:1}")
    if [[ $backend == redis ]]; then redis_opt=(--redis-pid "$redis_pid"); fi
    "$bench_bin" control --broker "$broker" --prefix rtm --label "$label" --secret "$secret" \
      --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay --broker-pid "$broker_pid" \
      --responder-pid "${gw_pids[0]}" ${more:+--more-responder-pids "$more"} \
      ${redis_opt[@]+"${redis_opt[@]}"} \
      --json "$raw/cluster-$label.json" || true
    for i in "${!ports[@]}"; do curl -sf "http://127.0.0.1:${ports[$i]}/metrics" >"$raw/cluster-$label-$i.after.prom" || true; done
    for i in "${gw_pids[@]}"; do kill -TERM "$i" 2>/dev/null || true; done
    for i in "${gw_pids[@]}"; do wait "$i" 2>/dev/null || true; done
    local keep=()
    for i in "${pids[@]}"; do [[ " ${gw_pids[*]} " == *" $i "* ]] || keep+=("$i"); done
    pids=("${keep[@]}")
  }
  cluster_run memory 1 memory
  cluster_run sqlite 1 sqlite
  cluster_run redis-1 1 redis
  cluster_run redis-2 2 redis
  cluster_run redis-3 3 redis
  stop_stack cluster
  python3 bench/cluster_report.py --raw "$raw" --out "$results/cluster.md"
fi

# ---------------------------------------------------------------- 3d. storage operations
if want storage; then
  say "storage: 50 clients, set_channel_metadata (compare-and-set) / set_user_metadata / get_channel_metadata"
  for backend in memory sqlite; do
    if [[ $backend == sqlite ]]; then
      STATE_FILE="$work/state-storage.db" start_stack storage-sqlite
    else
      start_stack storage
      "$bench_bin" echo --broker "$broker" --prefix echo >"$raw/echo-storage.log" 2>&1 &
      echo_pid=$!
      pids+=("$echo_pid")
      "$bench_bin" wait-ready --broker "$broker" --prefix echo --timeout 10
      echo "baseline: the same requests answered by a trivial responder (rtm-bench echo)"
      "$bench_bin" control --workload metadata --broker "$broker" --prefix echo --label echo \
        --secret "$secret" --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay \
        --broker-pid "$broker_pid" --responder-pid "$echo_pid" --json "$raw/storage-echo.json" || true
      echo "control-plane baseline: the RTM cycle (login/join/join_topic/subscribe/leave), same gateway"
      "$bench_bin" control --broker "$broker" --prefix rtm --label gateway-rtm --secret "$secret" \
        --clients 50 --seconds "$ctl_seconds" --warmup "$ctl_warmup" --nodelay \
        --broker-pid "$broker_pid" --responder-pid "$gateway_pid" \
        --json "$raw/storage-gateway-rtm.json" || true
    fi
    "$bench_bin" control --workload metadata --broker "$broker" --prefix rtm \
      --label "gateway-$backend" --secret "$secret" --clients 50 --seconds "$ctl_seconds" \
      --warmup "$ctl_warmup" --nodelay --broker-pid "$broker_pid" --responder-pid "$gateway_pid" \
      --json "$raw/storage-gateway-$backend.json" || true
    if [[ $backend == sqlite ]]; then stop_stack storage-sqlite; else stop_stack storage; fi
  done
  /usr/bin/python3 - "$raw" "$results/storage.md" <<'PY'
import json, os, sys
raw, out = sys.argv[1], sys.argv[2]
def load(label):
    path = os.path.join(raw, f"storage-{label}.json")
    return json.load(open(path)) if os.path.exists(path) else None
e, c, m, s = load("echo"), load("gateway-rtm"), load("gateway-memory"), load("gateway-sqlite")
if e and c and m and s:
    rows = ["| run | ops/s | × responder | × RTM cycle | set_channel_metadata /s | its p50 / p99 ms | CPU per op |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    def row(name, r, metadata=True):
        set_ = (f"{r['op.set_channel_metadata.per_s']:.0f} | {r['op.set_channel_metadata.p50_ms']:.2f} / "
                f"{r['op.set_channel_metadata.p99_ms']:.2f}") if metadata else "- | -"
        rows.append(f"| {name} | {r['ops_per_s']:.0f} | {r['ops_per_s'] / e['ops_per_s']:.2f} | "
                    f"{r['ops_per_s'] / c['ops_per_s']:.2f} | {set_} | {r['cpu.responder_us_per_op']:.1f} µs |")
    row("trivial responder, metadata requests", e)
    row("gateway, RTM cycle (control-plane baseline)", c, metadata=False)
    row("gateway, metadata, `memory`", m)
    row("gateway, metadata, `sqlite`", s)
    table = "\n".join(rows)
    print(table)
    with open(out, "w") as f:
        f.write("# Storage operations (scripts/bench.sh, stage storage)\n\n"
                "50 clients, one request at a time each: set_channel_metadata (compare-and-set on its "
                "own key), set_user_metadata, get_channel_metadata in turn, QoS 1 both ways.\n\n"
                + table + "\n")
PY
fi

# ---------------------------------------------------------------- one uid flooding
if want flood; then
  say "flood: a victim's requests with and without one uid sending garbage as fast as it can"
  start_stack flood
  echo "baseline: the same victim, same run, without the flood"
  "$bench_bin" flood --broker "$broker" --seconds "$flood_seconds" --broker-pid "$broker_pid" \
    --gateway-pid "$gateway_pid" --json "$raw/flood.json" || echo "flood: failed"
  stop_stack flood
fi

# ---------------------------------------------------------------- 1. coplay latency
if want latency; then
  say "coplay latency: 1 and 100 pairs at 60 Hz, ${lat_seconds} s each"
  start_stack latency
  paths=(direct bridge)
  if [[ $has_sdk == 1 ]]; then paths=(direct sdk bridge); fi
  for pairs in 1 100; do
    for path in "${paths[@]}"; do
      [[ $path == direct ]] && echo "baseline: direct (a)"
      "$bench_bin" latency --path "$path" --pairs "$pairs" --hz 60 --seconds "$lat_seconds" \
        --warmup "$lat_warmup" --broker "$broker" --secret "$secret" --broker-pid "$broker_pid" \
        --gateway-pid "$gateway_pid" --json "$raw/latency-$path-$pairs.json" \
        --curve "$raw/latency-$path-$pairs.csv" || echo "latency $path $pairs failed"
    done
  done
  stop_stack latency
fi

# ---------------------------------------------------------------- 2. bridge throughput
if want throughput; then
  say "bridge throughput: QoS 0/1, 64 B/1 KB, direct (baseline) then through one rule"
  start_stack throughput
  for qos in 0 1; do
    for size in 64 1024; do
      for path in direct bridge; do
        [[ $path == direct ]] && echo "baseline: direct"
        "$bench_bin" throughput --path "$path" --qos "$qos" --size "$size" --broker "$broker" \
          --step-seconds "$tp_step" --probe-seconds "$tp_probe" --broker-pid "$broker_pid" \
          --gateway-pid "$gateway_pid" --json "$raw/throughput-$path-q$qos-$size.json" ||
          echo "throughput $path QoS $qos $size B: no clean step"
      done
    done
  done
  stop_stack throughput
fi

# ---------------------------------------------------------------- 2c. zero-hop bridge
# The same coplay latency (100 pairs) and bridge throughput with the rules carried out by the
# gateway (mapping.mode relay) and inside the broker by the project's plugin (mapping.mode
# broker, plugin_opt_bridge true), each stack with its own direct baseline in the same run.
if want zerohop; then
  say "zero-hop bridge: relay and broker modes side by side, each with its direct baseline"
  zh=$(mktemp -d /tmp/rtm-bench-zh.XXXXXX)
  chmod 755 "$zh"
  if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$zh"; fi
  zh_password="gw-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  mosquitto_passwd -b -c "$zh/passwd" rtm-gateway "$zh_password" >/dev/null
  chmod 644 "$zh/passwd"
  for zmode in relay broker; do
    if [[ $zmode == broker ]]; then
      BROKER_CONF=("plugin $root/$build/mosquitto-auth/rtm_mosquitto_auth.so"
                   "plugin_opt_token_secret $secret" "plugin_opt_bridge true" "password_file $zh/passwd")
      GATEWAY_USER=rtm-gateway GATEWAY_PASSWORD=$zh_password MAPPING_MODE=broker \
        start_stack "zerohop-$zmode"
      for _ in $(seq 100); do  # the bridge carries once the plugin took the rules
        grep -q "the broker's plugin carries rule set" "$raw/gateway-zerohop-$zmode.log" && break
        sleep 0.05
      done
      grep -q "the broker's plugin carries rule set" "$raw/gateway-zerohop-$zmode.log" ||
        { echo "the plugin did not take the rules: $raw/gateway-zerohop-$zmode.log" >&2; exit 1; }
    else
      start_stack "zerohop-$zmode"
    fi
    for path in direct bridge; do
      [[ $path == direct ]] && echo "baseline: direct, same broker ($zmode stack)"
      "$bench_bin" latency --path "$path" --pairs 100 --hz 60 --seconds "$lat_seconds" \
        --warmup "$lat_warmup" --broker "$broker" --secret "$secret" --broker-pid "$broker_pid" \
        --gateway-pid "$gateway_pid" --json "$raw/zh-$zmode-latency-$path.json" ||
        echo "zero-hop latency $zmode $path failed"
    done
    # The broker mode's ratios are the targets: direct and bridge in turn, BENCH_ZH_REPEATS
    # times (default 3; the report takes the median ratio), once for the relay.
    repeats=1
    [[ $zmode == broker ]] && repeats=${BENCH_ZH_REPEATS:-3}
    for qos in 0 1; do
      for size in 64 1024; do
        for rep in $(seq "$repeats"); do
          for path in direct bridge; do
            # Finer steps than §2 (10% apart): the targets are ratios near 1.
            "$bench_bin" throughput --path "$path" --qos "$qos" --size "$size" --broker "$broker" \
              --factor 1.1 --max-steps 14 --step-seconds "$tp_step" --probe-seconds "$tp_probe" \
              --broker-pid "$broker_pid" --gateway-pid "$gateway_pid" \
              --json "$raw/zh-$zmode-throughput-$path-q$qos-$size-r$rep.json" ||
              echo "zero-hop throughput $zmode $path QoS $qos $size B: no clean step"
          done
        done
      done
    done
    stop_stack "zerohop-$zmode"
    unset BROKER_CONF
  done
  rm -rf "$zh"
  python3 bench/zerohop_report.py "$raw" "$results/zerohop.md"
fi

# ---------------------------------------------------------------- 2b. channel history on/off
# The gateway reads a history stream's messages to keep them: one more delivery per message
# for the broker, and work for the gateway. The same coplay latency and direct throughput
# with no history (the baseline, this run) and with history on every room's input.
if want history; then
  say "history and inbox: coplay latency, direct throughput and p2p latency, off then on"
  for mode in off on; do
    if [[ $mode == on ]]; then
      GATEWAY_YAML=$'history:\n  streams:\n    - {channel: "*", topic: input, size: 1000, age_s: 300}\ninbox:\n  offline: true' \
        start_stack "history-$mode"
    else
      GATEWAY_YAML=$'inbox:\n  offline: false' start_stack "history-$mode"
    fi
    "$bench_bin" latency --path direct --pairs 100 --hz 60 --seconds "$lat_seconds" \
      --warmup "$lat_warmup" --broker "$broker" --secret "$secret" --broker-pid "$broker_pid" \
      --gateway-pid "$gateway_pid" --json "$raw/history-latency-$mode.json" || echo "history latency $mode failed"
    "$bench_bin" throughput --path direct --qos 0 --size 64 --broker "$broker" \
      --step-seconds "$tp_step" --probe-seconds "$tp_probe" --broker-pid "$broker_pid" \
      --gateway-pid "$gateway_pid" --json "$raw/history-throughput-$mode.json" ||
      echo "history throughput $mode: no clean step"
    # Peer messages to online users with inbox.offline off (off) and on (on).
    "$bench_bin" latency --path p2p --pairs 100 --hz 60 --seconds "$lat_seconds" \
      --warmup "$lat_warmup" --broker "$broker" --secret "$secret" --broker-pid "$broker_pid" \
      --gateway-pid "$gateway_pid" --json "$raw/history-p2p-$mode.json" || echo "p2p latency $mode failed"
    stop_stack "history-$mode"
  done
  /usr/bin/python3 - "$raw" "$results/history.md" <<'PY'
import json, os, sys
raw, out = sys.argv[1], sys.argv[2]
def load(name):
    path = os.path.join(raw, name)
    return json.load(open(path)) if os.path.exists(path) else None
rows = ["| history | coplay p50 / p99 ms | gateway CPU | direct QoS 0 64 B msgs/s | × off | gateway CPU s per 100k |",
        "| --- | --- | --- | --- | --- | --- |"]
off = load("history-throughput-off.json")
for mode in ("off", "on"):
    lat, tp = load(f"history-latency-{mode}.json"), load(f"history-throughput-{mode}.json")
    if not lat or not tp:
        continue
    wall = lat.get("cpu.wall_s") or 1
    ratio = tp["rate"] / off["rate"] if off and off.get("rate") else float("nan")
    rows.append(f"| {mode} | {lat['latency.p50_ms']:.3f} / {lat['latency.p99_ms']:.3f} | "
                f"{100 * lat.get('cpu.gateway_s', 0) / wall:.0f}% | {tp['rate']:.0f} | {ratio:.2f} | "
                f"{tp.get('cpu.gateway_s_per_100k', float('nan')):.2f} |")
rows += ["", "| inbox.offline | p2p p50 / p99 ms (100 pairs, 60 Hz) | lost | broker CPU | gateway CPU |",
         "| --- | --- | --- | --- | --- |"]
for mode, label in (("off", "false (broker only)"), ("on", "true")):
    p2p = load(f"history-p2p-{mode}.json")
    if not p2p:
        continue
    wall = p2p.get("cpu.wall_s") or 1
    rows.append(f"| {label} | {p2p['latency.p50_ms']:.3f} / {p2p['latency.p99_ms']:.3f} | {p2p.get('lost', 0)} | "
                f"{100 * p2p.get('cpu.broker_s', 0) / wall:.0f}% | {100 * p2p.get('cpu.gateway_s', 0) / wall:.0f}% |")
table = "\n".join(rows)
print(table)
with open(out, "w") as f:
    f.write("# Channel history and the offline inbox, on and off (scripts/bench.sh, stage history)\n\n"
            "Peer messages: 100 pairs at 60 Hz straight to `P/u/{host}/inbox/{player}`; with "
            "`inbox.offline` the gateway reads each one too (one session lookup for an online "
            "recipient).\n\n"
            "Coplay latency: 100 pairs at 60 Hz straight through the broker (`--path direct`); "
            "throughput: the highest clean rate of 64 B QoS 0 messages straight through the "
            "broker. `on`: the gateway keeps history for every room's `input` stream "
            "(`history.streams: [{channel: \"*\", topic: input}]`), reading each message.\n\n"
            + table + "\n")
PY
fi

# ---------------------------------------------------------------- 5. broker-enforced channels
if want enforcement; then
  say "enforcement: the project's plugin against plain Mosquitto, grant propagation, grant changes"
  echo "enf_loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/meta.txt"
  # Files the broker reads after it drops to the mosquitto user (plugin, password_file,
  # dynamic security's config) must be reachable by that user: a folder of their own.
  enf=$(mktemp -d /tmp/rtm-bench-enf.XXXXXX)
  chmod 755 "$enf"
  if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$enf"; fi
  plugin="$root/$build/mosquitto-auth/rtm_mosquitto_auth.so"
  gw_password="gw-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  mosquitto_passwd -b -c "$enf/passwd" rtm-gateway "$gw_password" >/dev/null
  chmod 644 "$enf/passwd"
  login_conf=(
    "allow_anonymous false"
    "plugin $plugin"
    "plugin_opt_token_secret $secret"
    "password_file $enf/passwd"
    "acl_file $root/docker/mosquitto/acl"
  )
  enforce_conf=("${login_conf[@]}" "plugin_opt_enforce_grants true")
  if [[ $quick == 1 ]]; then
    enf_lat_seconds=3; enf_prop_repeats=40; enf_changes=(40 40 20)
  else
    enf_lat_seconds=10; enf_prop_repeats=200; enf_changes=(200 200 100)
  fi
  enf_grants=(100 1000 10000)
  enf_parts=" ${BENCH_ENF_PARTS:-brokers propagation changes} "

  # 1 and 2: the same direct throughput and coplay latency on (a) plain Mosquitto, (b) the
  # plugin with token logins and the shipped ACL, (c) the plugin enforcing grants.
  for cfg in plain enforcing plugin; do
    [[ $enf_parts == *" brokers "* ]] || break
    case $cfg in
      plain) echo "baseline (a): plain Mosquitto, anonymous clients"; start_broker enf-plain; auth=() ;;
      plugin) echo "(b) the plugin: token logins and the ACL, grants not enforced"
              start_broker enf-plugin "${login_conf[@]}"; auth=(--secret "$secret") ;;
      enforcing) echo "(c) the plugin enforcing grants (a full set fed as rtm-gateway first)"
                 start_broker enf-enforcing "${enforce_conf[@]}"
                 auth=(--secret "$secret" --grants-password "$gw_password") ;;
    esac
    "$bench_bin" throughput --path direct --qos 0 --size 64 --broker "$broker" --factor 1.1 --max-steps 14 \
      --step-seconds "$tp_step" --probe-seconds "$tp_probe" --broker-pid "$broker_pid" "${auth[@]}" \
      --json "$raw/enf-throughput-$cfg.json" || echo "enforcement throughput $cfg: no clean step"
    if [[ $cfg != plugin ]]; then
      lat_auth=()
      [[ $cfg == enforcing ]] && lat_auth=(--token-login --grants-password "$gw_password")
      "$bench_bin" latency --path direct --pairs 100 --hz 60 --seconds "$enf_lat_seconds" \
        --warmup "$lat_warmup" --broker "$broker" --secret "$secret" --broker-pid "$broker_pid" \
        "${lat_auth[@]}" --json "$raw/enf-latency-$cfg.json" || echo "enforcement latency $cfg failed"
    fi
    stop_stack "enf-$cfg"
  done

  # 3: grant propagation through the real gateway (enforcement.publish_grants).
  if [[ $enf_parts == *" propagation "* ]]; then
  say "enforcement: grant propagation, subscribe answer -> first delivered message"
  BROKER_CONF=("${enforce_conf[@]}")  # an array: set here, not as a prefix of the call
  GATEWAY_USER=rtm-gateway GATEWAY_PASSWORD="$gw_password" READY_SECRET="$secret" \
    GATEWAY_YAML=$'enforcement:\n  publish_grants: true' start_stack enf-gateway
  unset BROKER_CONF
  "$bench_bin" propagation --broker "$broker" --secret "$secret" --repeats "$enf_prop_repeats" \
    --period-us 1000 --broker-pid "$broker_pid" --gateway-pid "$gateway_pid" \
    --json "$raw/enf-propagation.json" || echo "enforcement propagation: failed"
  stop_stack enf-gateway
  fi

  # 4: one grant change with N grants in place: our records, then Mosquitto's dynamic security.
  if [[ $enf_parts == *" changes "* ]]; then
  say "enforcement: one grant change, grant records vs Mosquitto's dynamic security plugin"
  start_broker enf-records "${enforce_conf[@]}"
  for i in 0 1 2; do
    "$bench_bin" grant-changes --system records --broker "$broker" --password "$gw_password" \
      --secret "$secret" --grants "${enf_grants[$i]}" --changes "${enf_changes[$i]}" \
      --broker-pid "$broker_pid" --json "$raw/enf-changes-records-${enf_grants[$i]}.json" ||
      echo "grant changes (records, ${enf_grants[$i]}): failed"
  done
  stop_stack enf-records
  dynsec_plugin=$(ls /usr/lib/*/mosquitto_dynamic_security.so 2>/dev/null | head -1 || true)
  if [[ -z $dynsec_plugin ]]; then
    echo "mosquitto_dynamic_security.so not found: the dynamic security comparison is left out"
  else
    dyn_password="dyn-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    for i in 0 1 2; do
      n=${enf_grants[$i]}
      dyn_file="$enf/dynsec-$n.json"
      mosquitto_ctrl dynsec init "$dyn_file" admin "$dyn_password" >/dev/null
      # N clients, each with a role of its own holding one grant (an ACL), as many grants as
      # our records carry: made in the file before the broker starts (each change through
      # the plugin rewrites the whole file, so making them one by one would take long).
      python3 - "$dyn_file" "$n" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
cfg = json.load(open(path))
admin = cfg["clients"][0]
for i in range(n):
    cfg["clients"].append({"username": f"u{i}", "password": admin["password"], "salt": admin["salt"],
                           "iterations": admin["iterations"], "roles": [{"rolename": f"r{i}"}]})
    peer = i // 20 * 20 + (i + 1) % 20
    cfg["roles"].append({"rolename": f"r{i}", "acls": [{"acltype": "publishClientReceive",
                         "topic": f"rtm/ch/ch{i // 20}/input/u{peer}", "priority": 0, "allow": True}]})
json.dump(cfg, open(path, "w"), indent="\t")
PY
      if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$dyn_file"; fi
      start_broker "enf-dynsec-$n" "allow_anonymous false" "plugin $dynsec_plugin" \
        "plugin_opt_config_file $dyn_file"
      "$bench_bin" grant-changes --system dynsec --broker "$broker" --user admin --password "$dyn_password" \
        --grants "$n" --changes "${enf_changes[$i]}" --file "$dyn_file" --broker-pid "$broker_pid" \
        --json "$raw/enf-changes-dynsec-$n.json" || echo "grant changes (dynsec, $n): failed"
      stop_stack "enf-dynsec-$n"
    done
  fi
  fi
  rm -rf "$enf"
fi

# ---------------------------------------------------------------- 6. coplay over WebSockets
# Node clients of the JS SDK (bench/web/coplay_latency.mjs) through Mosquitto's WebSockets
# listener and its TCP listener, next to the C++ direct path (the TCP baseline) and MQTT.js
# alone over ws://, all on one broker and gateway in one run, one run after the other.
if want web && [[ $has_node == 1 ]]; then
  say "web: coplay over WebSockets (JS SDK, Node) and TCP, 1 and 100 pairs at 60 Hz, ${web_seconds} s each"
  echo "web_loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/meta.txt"
  BROKER_WS=1 start_stack web
  # How much the machine made the run wait, other engineers' work included: the share of the
  # run's time in which some runnable task waited for a CPU (PSI, /proc/pressure/cpu "some",
  # exact: scheduler-kept), and the 1-minute load average after it. (/proc/stat's busy ticks
  # are sampled at the timer tick and missed most of the C++ clients' short, tick-aligned work.)
  cpu_stall() {  # "STALL_US NOW_NS"
    local stall
    stall=$(sed -n 's/^some .*total=//p' /proc/pressure/cpu 2>/dev/null || true)
    echo "${stall:-0} $(date +%s%N)"
  }
  machine_note() {  # machine_note FILE STALL0 NS0
    local s1 n1
    read -r s1 n1 < <(cpu_stall)
    awk -v s="$(( s1 - $2 ))" -v w="$(( (n1 - $3) / 1000 ))" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
      'BEGIN { printf "cpu_wait=%.3f\nload1=%s\n", (w > 0 ? s / w : 0), l }' >"$1"
  }
  web_run() {  # web_run NAME PAIRS COMMAND...: one run, results in $raw/web-NAME-PAIRS.*
    local name=$1 pairs=$2 s0 n0
    shift 2
    read -r s0 n0 < <(cpu_stall)
    "$@" --pairs "$pairs" --hz 60 --seconds "$web_seconds" --warmup "$lat_warmup" --secret "$secret" \
      --broker-pid "$broker_pid" --gateway-pid "$gateway_pid" --json "$raw/web-$name-$pairs.json" \
      --curve "$raw/web-$name-$pairs.csv" || echo "web $name $pairs failed"
    machine_note "$raw/web-$name-$pairs.machine" "$s0" "$n0"
  }
  node_bench=(node bench/web/coplay_latency.mjs)
  for pairs in 1 100; do
    echo "baseline: the C++ direct path over TCP (rtm-bench latency --path direct)"
    web_run direct-tcp "$pairs" "$bench_bin" latency --path direct --broker "$broker"
    web_run js-sdk-ws "$pairs" "${node_bench[@]}" --transport ws --broker-url "$ws_broker"
    web_run js-sdk-tcp "$pairs" "${node_bench[@]}" --transport tcp --broker-url "mqtt://127.0.0.1:$port"
    if [[ $pairs == 1 ]]; then
      echo "mixed: players on one listener, hosts on the other (which leg of ws -> ws costs what)"
      web_run js-sdk-ws-tcp 1 "${node_bench[@]}" --transport ws --broker-url "$ws_broker" \
        --host-transport tcp --host-broker-url "mqtt://127.0.0.1:$port"
      web_run js-sdk-tcp-ws 1 "${node_bench[@]}" --transport tcp --broker-url "mqtt://127.0.0.1:$port" \
        --host-transport ws --host-broker-url "$ws_broker"
    fi
  done
  echo "MQTT.js alone over ws:// (no SDK): what the transport costs without the SDK"
  web_run mqttjs-ws 100 "${node_bench[@]}" --raw --transport ws --broker-url "$ws_broker"
  echo "MQTT.js alone over ws:// with one WebSocket frame per MQTT packet (bench/README.md, 7)"
  web_run mqttjs-ws1 100 "${node_bench[@]}" --raw --ws-one-frame --transport ws --broker-url "$ws_broker"
  stop_stack web
  echo "web_loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/meta.txt"
fi

# ---------------------------------------------------------------- report
say "report"
report_args=(--raw "$raw" --out "$results")
if [[ $quick != 1 && $only == "$all_groups" ]]; then
  report_args+=(--readme README.md)  # the full run: the whole table
elif [[ $quick != 1 && $only == enforcement ]]; then
  report_args+=(--readme README.md)  # its rows only (report.py keeps the others)
fi
if [[ $only != zerohop ]]; then  # group zerohop writes its own zerohop.md only
  python3 bench/report.py "${report_args[@]}"
fi
if [[ $only == zerohop ]]; then
  say "done: $results/zerohop.md"
elif [[ $only == enforcement ]]; then
  say "done: $results/enforcement.md"
else
  say "done: $results/results.md, $results/latency.png"
fi
