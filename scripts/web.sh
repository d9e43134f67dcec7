#!/usr/bin/env bash
# Serves the coplay web demo (examples/coplay-web): installs and builds what is missing (the
# JavaScript SDK in sdk-js/, the demo's npm dependencies), then runs its server in the
# foreground on 127.0.0.1 (port 8080 or the next free one; RTM_WEB_PORT), which prints the
# host and player pages' URLs. Ctrl-C stops it.
#   The broker's WebSockets URL comes from scripts/run.sh's .run/env (start the broker with
#   `RTM_WS_PORT=auto ./scripts/run.sh`) or RTM_BROKER_WS; the demo tokens are signed with the
#   gateway config's auth.token_secret (RTM_CONFIG, default config.yaml) by build/gateway/rtm-gateway.
#   Options after web.sh go to the server (examples/coplay-web/server.mjs --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/js.sh >&2
exec node examples/coplay-web/server.mjs "$@"
