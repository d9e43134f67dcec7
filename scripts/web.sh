#!/usr/bin/env bash
# Serves the coplay web demo (examples/coplay-web): installs and builds what is missing
# (scripts/js.sh: the JavaScript SDK in sdk-js/, the demo's npm dependencies), then runs its
# server in the foreground on 127.0.0.1, port 8080 or the next free one (RTM_WEB_PORT), which
# prints the host and player pages' URLs. Ctrl-C stops it.
#   The broker's WebSockets URL: RTM_BROKER_WS, else scripts/run.sh's .run/env (start the broker
#   with `RTM_WS_PORT=auto ./scripts/run.sh`; the pages read it again at each load). The demo
#   tokens are signed with the gateway config's auth.token_secret (RTM_CONFIG, else the one
#   .run/env names, else config.yaml) by the `token` subcommand of build/gateway/rtm-gateway.
#   Options after web.sh go to the server: examples/coplay-web/server.mjs --help.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/js.sh >&2
# This checkout's run.sh state and build, by the path the user sees (not through symlinks).
export RTM_RUN_ENV=${RTM_RUN_ENV:-$PWD/.run/env}
export RTM_GATEWAY_BIN=${RTM_GATEWAY_BIN:-$PWD/${RTM_BUILD_DIR:-build}/gateway/rtm-gateway}
exec node examples/coplay-web/server.mjs "$@"
