#!/usr/bin/env bash
# Installs what is missing, builds every program the README uses, starts a local Mosquitto
# (or RabbitMQ) and the gateway beside it, and stays in the foreground: Ctrl-C stops both.
# Other terminals load the ports it picked with `. .run/env` (written once the gateway
# answers, removed at exit).
#   RTM_BROKER       mosquitto (the default) or rabbitmq: a private RabbitMQ node with its MQTT
#                    plugin (scripts/rabbitmq.sh; its files in .run/rabbitmq), the gateway with
#                    broker.profile rabbitmq. With RTM_SECURE=1 the node asks the gateway about
#                    every login and topic (rabbitmq_auth_backend_http, docs/security.md).
#   RTM_SECURE=1     the enforcing set-up of production (docs/security.md): Mosquitto with the
#                    project's plugin (token logins, the gateway's grants enforced), no anonymous
#                    clients, the shipped ACL, and the gateway as password user rtm-gateway
#                    (a random password per run). Default: an open broker, anyone may do anything.
#   RTM_BRIDGE=broker the zero-hop bridge (docs/mapping.md): the config's mapping rules carried
#                    out inside Mosquitto by the project's plugin (plugin_opt_bridge true), the
#                    gateway started with --mapping-mode broker and logged in as password user
#                    rtm-gateway. Default (relay): the gateway relays bridged messages itself.
#   RTM_CONFIG       gateway config file (default: config.yaml)
#   RTM_BROKER_PORT  MQTT port of the local broker (default: 1883, or the next free one)
#   RTM_OPS_PORT     port of the gateway's operations HTTP listener (default: 8089, or the next free one)
#   RTM_WS_PORT      the broker's MQTT-over-WebSockets listener for web pages and the JavaScript SDK:
#                    a port, `auto` (9001 or the next free one) or `off`. Default: `auto` in the
#                    secure set-up, `off` in the open one: Debian's Mosquitto 2.0.11 binds a
#                    WebSockets listener to every interface whatever address it is given (fixed
#                    upstream in 2.0.12), and an open broker must not be reachable from the network.
#   RTM_BUILD_DIR    build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${RTM_BUILD_DIR:-build}
config=${RTM_CONFIG:-config.yaml}
secure=
case ${RTM_SECURE:-} in
  "" | 0 | false | no) ;;
  *) secure=1 ;;
esac
bridge_mode=
case ${RTM_BRIDGE:-} in
  "" | relay) ;;
  broker) bridge_mode=broker ;;
  *) echo "run.sh: RTM_BRIDGE=${RTM_BRIDGE}: relay (the default) or broker" >&2; exit 1 ;;
esac
broker=${RTM_BROKER:-mosquitto}
if [[ -n $bridge_mode && $broker != mosquitto ]]; then
  echo "run.sh: RTM_BRIDGE=broker needs Mosquitto (the project's plugin carries the rules out)" >&2
  exit 1
fi
case $broker in
  mosquitto) broker_name=Mosquitto ;;
  rabbitmq) broker_name=RabbitMQ ;;
  *://*)
    echo "run.sh: RTM_BROKER=$broker is a broker URI (as .run/env exports it for rtm and the" \
      "coplay programs); run.sh takes the broker to start: RTM_BROKER=mosquitto (the default)" \
      "or RTM_BROKER=rabbitmq. In this terminal: unset RTM_BROKER" >&2
    exit 1 ;;
  *)
    echo "run.sh: RTM_BROKER=$broker: unknown broker; run.sh starts mosquitto (the default)" \
      "or rabbitmq" >&2
    exit 1 ;;
esac
rundir="$root/.run"
mkdir -p "$rundir"

# One run.sh per checkout: a second one would overwrite .run/ under the first.
exec 9>"$rundir/lock"
if ! flock -n 9; then
  echo "run.sh: another run.sh is running from this checkout (it holds .run/lock)" >&2
  exit 1
fi
rm -f "$rundir/env"

log="$rundir/build.log"
: >"$log"
step_start=$SECONDS
step() {
  printf 'run.sh: %s... ' "$1"
  step_start=$SECONDS
}
ok() {
  local took=$((SECONDS - step_start))
  if ((took >= 2)); then echo "ok ($((took / 60))m$((took % 60))s)"; else echo ok; fi
}
failed() {  # failed WHAT LOGFILE
  echo failed
  echo "---- last lines of ${2#"$root"/} ----" >&2
  tail -n 40 "$2" >&2
  echo "run.sh: $1; the whole output is in ${2#"$root"/}" >&2
  exit 1
}

step "installing missing Debian packages (scripts/packages.txt)"
./scripts/install-deps.sh >>"$log" 2>&1 || failed "installing packages failed" "$log"
ok

# An existing build directory keeps its own settings (build type, sanitizers); `cmake --build`
# re-runs the configuration itself when a CMakeLists.txt changed.
if [[ -f "$build/CMakeCache.txt" ]]; then
  echo "run.sh: configuring... already done in $build/"
else
  step "configuring $build/ (RelWithDebInfo)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >>"$log" 2>&1 ||
    failed "configuring failed" "$log"
  ok
fi

# Everything the README uses: the gateway, the broker plugin, the rtm CLI, the example
# programs, and the SDK library that `cmake --install build --component sdk` installs.
targets=(rtm-gateway rtm_mosquitto_auth rtm rtm_sdk im-worker coplay-host coplay-player)
step "building ${#targets[@]} targets (log: .run/build.log)"
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}" >>"$log" 2>&1 ||
  failed "the build failed" "$log"
ok

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# True when a socket listens on PORT at the any-address (0.0.0.0 or ::), read from the
# kernel's tables: no ss/netstat needed.
listens_on_every_address() {
  local hex
  hex=$(printf '%04X' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v any4="00000000:$hex" -v any6="00000000000000000000000000000000:$hex" \
      '$4 == "0A" && ($2 == any4 || $2 == any6) { found = 1 } END { exit !found }'
}
pick_port() {  # pick_port EXPLICIT DEFAULT NAME: the explicit port, or DEFAULT or the next free one
  local port=$2
  if [[ -n "$1" ]]; then
    port=$1
    if port_in_use "$port"; then echo "run.sh: port $port ($3) is in use" >&2; exit 1; fi
  else
    while port_in_use "$port"; do port=$((port + 1)); done
  fi
  echo "$port"
}
port=$(pick_port "${RTM_BROKER_PORT:-}" 1883 RTM_BROKER_PORT)
ops_port=$(pick_port "${RTM_OPS_PORT:-}" 8089 RTM_OPS_PORT)
ws_port=
ws_setting=${RTM_WS_PORT:-}
if [[ -z $ws_setting ]]; then
  if [[ -n $secure ]]; then ws_setting=auto; else ws_setting=off; fi
fi
case $ws_setting in
  off | 0 | no | false) ;;
  auto) ws_port=$(pick_port "" 9001 RTM_WS_PORT) ;;
  *[!0-9]*)
    echo "run.sh: RTM_WS_PORT=$ws_setting: a port number, auto or off" >&2
    exit 1 ;;
  *) ws_port=$(pick_port "$ws_setting" 9001 RTM_WS_PORT) ;;
esac

gateway="$root/$build/gateway/rtm-gateway"
if ! "$gateway" --check-config --config "$config" >"$rundir/check-config.log" 2>&1; then
  cat "$rundir/check-config.log" >&2
  echo "run.sh: $config is not a valid configuration" >&2
  exit 1
fi
prefix=$(awk '/^topics:/{t=1;next} /^[^ #]/{t=0} t && $1=="prefix:"{print $2; exit}' "$config")
prefix=${prefix:-rtm}

# The broker's settings and the gateway's arguments for it (globals below); the readiness
# ping (rr_env, rr_id) logs in the way the broker wants.
broker_conf=
gateway_args=()
rr_env=()
rr_id=run-sh-$$
secrets=$rundir/secure

# The secure set-up's token secret, as the gateway reads auth.token_secret (inline or _file):
# it never appears on a command line.
write_token_secret() {
  python3 - "$config" <<'PY'
import os, sys, yaml
path = sys.argv[1]
with open(path) as f:
    auth = (yaml.safe_load(f) or {}).get("auth") or {}
if auth.get("token_secret") is not None:
    sys.stdout.write(str(auth["token_secret"]))
else:
    file = os.path.join(os.path.dirname(os.path.abspath(path)), str(auth["token_secret_file"]))
    with open(file) as f:
        value = f.read()
    for end in ("\n", "\r"):
        value = value[:-1] if value.endswith(end) else value
    sys.stdout.write(value)
PY
}

# Secrets of the secure set-up, new each run, removed at exit: the gateway's broker password
# (for its --broker-password-file) and run.sh's readiness ping's login, a short token that
# mosquitto_rr reads from its options file (XDG_CONFIG_HOME) rather than from its command line.
write_run_secrets() {
  rm -rf "$secrets"
  (
    umask 077
    mkdir "$secrets"
    head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secrets/gateway-password"
    printf -- '-u run-sh\n-P %s\n' "$("$gateway" token --uid run-sh --ttl 600 --config "$config")" \
      >"$secrets/mosquitto_rr"
  )
  gateway_args+=(--broker-username rtm-gateway --broker-password-file "$secrets/gateway-password")
  rr_env=(env XDG_CONFIG_HOME="$secrets")
  rr_id=run-sh/$$
}

configure_mosquitto() {
  # The broker keeps sessions, retained messages and Wills on disk, so that a restart of the
  # broker or of the gateway loses nothing (docs/state.md). Mosquitto started as root writes as
  # its `mosquitto` user, which may not enter a private checkout: its data goes to a folder of
  # its own, one per checkout.
  if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then
    broker_data=/var/lib/mosquitto/rtm-run-$(printf '%s' "$root" | cksum | cut -d' ' -f1)
    mkdir -p "$broker_data"
    chown mosquitto "$broker_data"
  else
    broker_data=$rundir/mosquitto-data
    mkdir -p "$broker_data"
  fi

  # The broker's settings: open, or (RTM_SECURE) those of docker/mosquitto/mosquitto.secure.conf.
  broker_conf=$rundir/mosquitto.conf
  local security="allow_anonymous true"
  if [[ -n "$secure" || -n "$bridge_mode" ]]; then
    # Mosquitto started as root becomes the `mosquitto` user before it loads the plugin and
    # reads the password, ACL and secret files (and the plugin reads the broker's config): they
    # all live in the broker's data folder, owned by that user, the secrets readable by it alone.
    broker_conf=$broker_data/mosquitto.conf
    write_run_secrets &&
      (
        umask 077
        # The plugin checks tokens with the gateway's auth.token_secret.
        write_token_secret >"$broker_data/token-secret"
        # The gateway's password, hashed into Mosquitto's password file.
        printf 'rtm-gateway:%s\n' "$(cat "$secrets/gateway-password")" >"$broker_data/passwd"
        mosquitto_passwd -U "$broker_data/passwd"
      ) || { echo "run.sh: could not write the secure set-up's secrets (see above)" >&2; exit 1; }
    cp "$build/mosquitto-auth/rtm_mosquitto_auth.so" "$broker_data/rtm_mosquitto_auth.so"
    chmod 644 "$broker_data/rtm_mosquitto_auth.so"
    if [[ $(id -u) == 0 ]] && id mosquitto >/dev/null 2>&1; then
      chown mosquitto "$broker_data/token-secret" "$broker_data/passwd"
    fi
  fi
  if [[ -z "$secure" && -n "$bridge_mode" ]]; then
    # Open, but only the gateway (a password user) may hand the plugin its rules.
    security="allow_anonymous true
plugin $broker_data/rtm_mosquitto_auth.so
plugin_opt_token_secret_file $broker_data/token-secret
plugin_opt_service_users rtm-gateway
plugin_opt_topic_prefix $prefix
plugin_opt_grants_from rtm-gateway
password_file $broker_data/passwd"
  fi
  if [[ -n "$secure" ]]; then
    # The shipped ACL, for this config's topic prefix (which may hold sed's & or |).
    sed "/^#/!s|rtm/|$(printf '%s' "$prefix" | sed 's/[&|\\]/\\&/g')/|g" docker/mosquitto/acl >"$broker_data/acl"
    chmod 644 "$broker_data/acl"
    security="allow_anonymous false
plugin $broker_data/rtm_mosquitto_auth.so
plugin_opt_token_secret_file $broker_data/token-secret
plugin_opt_service_users rtm-gateway
plugin_opt_client_id_rule uid-prefix
plugin_opt_enforce_grants true
plugin_opt_topic_prefix $prefix
plugin_opt_grants_from rtm-gateway
password_file $broker_data/passwd
acl_file $broker_data/acl"
    gateway_args+=(--publish-grants)
  fi
  if [[ -n "$bridge_mode" ]]; then
    # The zero-hop bridge: the plugin carries the mapping rules the gateway hands it.
    security="$security
plugin_opt_bridge true"
    gateway_args+=(--mapping-mode broker)
  fi

  # MQTT over WebSockets for web pages (RTM_WS_PORT). Mosquitto takes the other settings of
  # the file for this listener too: the secure set-up's logins and grants hold on it alike.
  local ws_listener="# No WebSockets listener (RTM_WS_PORT=auto adds one)."
  if [[ -n $ws_port ]]; then
    ws_listener="listener $ws_port 127.0.0.1
protocol websockets"
  fi
  local kind="a local broker for trying the gateway"
  if [[ -n "$secure" ]]; then
    kind="$kind, secured as docker/mosquitto/mosquitto.secure.conf
# (token logins, the gateway's grants enforced; RTM_SECURE=1)"
  fi
  cat >"$broker_conf" <<CONF
# Generated by scripts/run.sh: $kind.
listener $port 127.0.0.1
$ws_listener
$security
set_tcp_nodelay true
max_queued_messages 10000
# The gateway's broker.max_message_bytes (config.yaml): larger messages are refused here.
message_size_limit 1048576
persistence true
persistence_location $broker_data/
autosave_interval 10
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
# Which topics each client reads: the first thing to look at when a message seems lost.
log_type subscribe
log_type unsubscribe
CONF
}

# RabbitMQ (scripts/rabbitmq.sh): the node's config, data and logs in .run/rabbitmq. Open:
# anonymous clients (the gateway too) are RabbitMQ's guest, who may do anything. Secure: the
# node asks the gateway's ops listener about every login, queue and topic, under a key made
# for each run; clients log in with tokens and the gateway with its password.
configure_rabbitmq() {
  broker_data=$rundir/rabbitmq
  broker_conf=$broker_data/rabbitmq.conf
  rabbitmq_stop "$broker_data" # a node left behind by a run.sh that was killed
  gateway_args=(--broker-profile rabbitmq)
  local auth_url=
  if [[ -n "$secure" ]]; then
    write_run_secrets || { echo "run.sh: could not write the secure set-up's secrets (see above)" >&2; exit 1; }
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secrets/rabbitmq-key")
    auth_url=http://127.0.0.1:$ops_port/v1/rabbitmq/$(cat "$secrets/rabbitmq-key")
    gateway_args+=(--rabbitmq-http-auth-key-file "$secrets/rabbitmq-key")
  else
    gateway_args+=(--broker-username "") # anonymous: RabbitMQ refuses a name without a password
  fi
  rabbitmq_configure "$broker_data" "$port" "$auth_url" "$ws_port"
}

if [[ $broker == rabbitmq ]]; then
  . scripts/rabbitmq.sh
  configure_rabbitmq
else
  configure_mosquitto
fi

pids=()
follow_pid=
cleanup() {
  trap - INT TERM EXIT
  rm -f "$rundir/env"
  # The secure set-up's secrets live as long as the run (the broker has read them at start).
  if [[ -n "$secure" ]]; then rm -rf "$rundir/secure" "${broker_data:-/nonexistent}/token-secret"; fi
  echo
  echo "run.sh: stopping the gateway and $broker_name"
  # The gateway first, so that it does not log the broker going away.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    [[ $broker == rabbitmq && ${pids[i]} == "$rabbitmq_pid" ]] && continue
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  # The node (with a deadline) and the epmd it started.
  if [[ $broker == rabbitmq ]]; then rabbitmq_stop "$broker_data"; fi
  if [[ -n "$follow_pid" ]]; then
    kill "$follow_pid" 2>/dev/null || true
    wait "$follow_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM HUP

if [[ $broker == rabbitmq ]]; then
  broker_log=$broker_data/log/rtm-run@localhost.log
  step "starting RabbitMQ on 127.0.0.1:$port (10-20 s)"
  rabbitmq_start "$broker_data"
  pids+=("$rabbitmq_pid")
  start_deadline=$((SECONDS + 120))
  until port_in_use "$port"; do
    kill -0 "$rabbitmq_pid" 2>/dev/null && ((SECONDS < start_deadline)) || break
    sleep 0.1
  done
  if ! port_in_use "$port"; then
    cat "$broker_data/log/stdout.log" "$broker_log" >"$broker_data/log/start.log" 2>/dev/null || true
    failed "RabbitMQ did not open its MQTT port (its logs: ${broker_data#"$root"/}/log/)" \
      "$broker_data/log/start.log"
  fi
  ok
else
  broker_log=$rundir/mosquitto.log
  step "starting Mosquitto on 127.0.0.1:$port"
  mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  # Line-buffered, so that .run/mosquitto.log shows each line as it happens. The shell opens the
  # log and Mosquitto reads its config before it drops root, so a private (0700) checkout is fine.
  stdbuf -oL "$mosquitto_bin" -c "$broker_conf" >"$broker_log" 2>&1 9>&- &
  pids+=($!)
  for _ in $(seq 200); do
    port_in_use "$port" && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.05
  done
  port_in_use "$port" || failed "Mosquitto did not start" "$broker_log"
  ok
fi
if [[ -n $ws_port ]]; then
  # RabbitMQ's web_mqtt listener may open a moment after its MQTT one.
  for _ in $(seq 200); do
    port_in_use "$ws_port" && break
    sleep 0.05
  done
  port_in_use "$ws_port" || failed "$broker_name did not open its WebSockets port $ws_port" "$broker_log"
fi

step "starting the gateway ($config)"
"$gateway" --config "$config" --broker "tcp://127.0.0.1:$port" --ops-listen "127.0.0.1:$ops_port" \
  "${gateway_args[@]}" >"$rundir/gateway.log" 2>&1 9>&- &
gateway_pid=$!
pids+=("$gateway_pid")
# Ready when it answers a ping over MQTT (mosquitto_rr subscribes to the answer before it asks).
ready=
for i in $(seq 30); do
  kill -0 "$gateway_pid" 2>/dev/null || break
  # MQTT 3.1.1: mosquitto_rr speaks 5 by default, which RabbitMQ 3.10 does not.
  if "${rr_env[@]}" mosquitto_rr -V mqttv311 -p "$port" -i "$rr_id" -W 1 --quiet -n \
      -t "$prefix/req/run-sh/ping?msg_id=ready-$i" -e "$prefix/u/run-sh/res/ping?msg_id=ready-$i" \
      >/dev/null 2>&1; then
    ready=1
    break
  fi
done
if [[ -z "$ready" && -n "$secure" ]]; then
  # Refused logins (the gateway's password, run.sh's token) are in the broker's log.
  grep -i 'rtm-auth\|not authorised\|refused\|Error' "$broker_log" | tail -n 5 >&2 || true
fi
[[ -n "$ready" ]] || failed "the gateway did not answer a ping" "$rundir/gateway.log"
ok

cat >"$rundir/env.tmp" <<ENV
# Written by scripts/run.sh while it runs (removed when it stops). Load it with:  . .run/env
export RTM_BROKER_PORT=$port
# Read by rtm, coplay-host and coplay-player in place of --broker.
export RTM_BROKER=tcp://127.0.0.1:$port
export RTM_OPS_PORT=$ops_port
export RTM_GATEWAY_PID=$gateway_pid
# The gateway's config (relative: to the checkout), for scripts/web.sh's demo tokens.
export RTM_CONFIG=$(printf %q "$config")
ENV
if [[ -n $ws_port ]]; then
  cat >>"$rundir/env.tmp" <<ENV
# MQTT over WebSockets, for web pages and the JavaScript SDK (sdk-js/).
export RTM_WS_PORT=$ws_port
export RTM_BROKER_WS=ws://127.0.0.1:$ws_port/mqtt
ENV
fi
if [[ -n "$secure" ]]; then
  cat >>"$rundir/env.tmp" <<ENV
# The broker takes token logins only: username = uid, password = token, client id uid/...
export RTM_SECURE=1
ENV
fi
mv "$rundir/env.tmp" "$rundir/env"

shown_log=${broker_log#"$root"/}
if [[ $broker == rabbitmq ]]; then
  shown_broker="RabbitMQ   127.0.0.1:$port (MQTT), broker.profile rabbitmq: names without '.'"
  if [[ -n "$secure" ]]; then
    shown_broker="$shown_broker
             auth backend: the gateway  (config and logs: .run/rabbitmq/, log: $shown_log)"
  else
    shown_broker="$shown_broker
             open: every client is guest  (config and logs: .run/rabbitmq/; RTM_SECURE=1 for the secure set-up)"
  fi
  shown_grants="answers RabbitMQ's HTTP auth backend"
else
  if [[ -n "$secure" ]]; then
    shown_broker="Mosquitto  127.0.0.1:$port, plugin and ACL  (config: ${broker_conf#"$root"/}, log: $shown_log)"
  else
    shown_broker="Mosquitto  127.0.0.1:$port, open: no logins  (log: $shown_log; RTM_SECURE=1 for the secure set-up)"
  fi
  shown_grants="publishes grants"
fi
if [[ -n $ws_port ]]; then
  shown_broker="$shown_broker
             WebSockets ws://127.0.0.1:$ws_port/mqtt  (RTM_BROKER_WS)"
  if [[ -z $secure ]] && listens_on_every_address "$ws_port"; then
    shown_broker="$shown_broker
             warning: this $broker_name listens for WebSockets on every address, not only
             127.0.0.1 (Mosquitto before 2.0.12): this open broker is reachable from the
             network on port $ws_port. RTM_SECURE=1 or a firewall, if that matters here."
  fi
fi
if [[ -n "$secure" ]]; then
  shown_gateway=$build/gateway/rtm-gateway
  [[ $shown_gateway == /* ]] || shown_gateway=./$shown_gateway
  cat <<INFO

  secure set-up: token logins, the gateway's grants enforced by the broker (docs/security.md)
  $shown_broker
  gateway    $config, topic prefix $prefix, pid $gateway_pid, MQTT user rtm-gateway,
             $shown_grants  (log: .run/gateway.log, below)
  ops        http://127.0.0.1:$ops_port  (/healthz, /readyz, /metrics)

  In another terminal, at the repository root (username = uid, password = token, client id uid/...):
    . .run/env     # the ports above, as RTM_BROKER_PORT, RTM_BROKER, RTM_OPS_PORT (and RTM_BROKER_WS)
    TOKEN=\$($shown_gateway token --uid alice --ttl 3600 --config $config)
    mosquitto_sub -p \$RTM_BROKER_PORT -u alice -P "\$TOKEN" -i alice/sub -t '$prefix/u/alice/#' -v
    mosquitto_pub -p \$RTM_BROKER_PORT -u alice -P "\$TOKEN" -i alice/pub -t '$prefix/req/alice/ping?msg_id=1' -n

  Ctrl-C stops both.

INFO
else
  cat <<INFO

  $shown_broker
  gateway    $config, topic prefix $prefix, pid $gateway_pid  (log: .run/gateway.log, below)
  ops        http://127.0.0.1:$ops_port  (/healthz, /readyz, /metrics)

  In another terminal, at the repository root:
    . .run/env     # the ports above, as RTM_BROKER_PORT, RTM_BROKER, RTM_OPS_PORT (and RTM_BROKER_WS)
    mosquitto_sub -p \$RTM_BROKER_PORT -t '$prefix/u/alice/#' -v
    mosquitto_pub -p \$RTM_BROKER_PORT -t '$prefix/req/alice/ping?msg_id=1' -n

  Ctrl-C stops both.

INFO
fi
tail -n +1 -f --pid="$gateway_pid" "$rundir/gateway.log" 9>&- &
follow_pid=$!

status=0
wait -n "${pids[@]}" || status=$?
if kill -0 "${pids[0]}" 2>/dev/null; then stopped="the gateway"; else stopped=$broker_name; fi
echo "run.sh: $stopped stopped by itself (exit status $status); see .run/ for its log" >&2
exit 1
