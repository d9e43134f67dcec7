#!/usr/bin/env bash
# Installs the example Aedes broker (examples/aedes: broker.mjs and its npm dependencies, exactly
# as package-lock.json pins them) into DEST, for the tests that run the gateway beside it
# (the ctest fixture `aedes_npm_ci`, DEST = BUILD_DIR/aedes). npm writes only into DEST and its
# cache (~/.npm); `npm ci` runs again only when the lockfile changed or an install did not
# finish, so a second run needs no network, and --prefer-offline takes what the cache holds.
#   scripts/aedes-deps.sh DEST
set -euo pipefail
if (($# != 1)); then
  echo "usage: $0 DEST" >&2
  exit 2
fi
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../examples/aedes" && pwd)"
dest=$1
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
# npm leaves node_modules/.package-lock.json once an install has finished.
if cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
   [[ -f $dest/node_modules/.package-lock.json ]]; then
  echo "aedes dependencies up to date in $dest"
else
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts \
      --update-notifier=false --loglevel=warn)
  echo "aedes dependencies installed in $dest (npm ci)"
fi
# The script itself every time: an edit to it needs no new install.
cp "$src/broker.mjs" "$dest/"
version=$(node -p 'require(process.argv[1]).version' "$dest/node_modules/aedes/package.json")
echo "aedes $version with node $(node --version) in $dest"
