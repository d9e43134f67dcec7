#!/usr/bin/env bash
# Installs and builds the project's JavaScript packages: for each folder below, `npm ci` from
# its committed lockfile when node_modules is missing or the lockfile is newer than the
# stamp of the last install, then `npm run build` when the package has a build script.
# npm writes only into each folder's node_modules and its cache (~/.npm); --prefer-offline
# takes what the cache holds, so a second run needs no network.
#   scripts/js.sh            every package
#   scripts/js.sh sdk-js     only these folders (relative to the checkout)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The JS packages of the project, in build order (a package after those it depends on).
packages=(sdk-js examples/coplay-web)
if (($# > 0)); then packages=("$@"); fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
for pkg in "${packages[@]}"; do
  dir="$root/$pkg"
  if [[ ! -f $dir/package.json ]]; then
    echo "js: $pkg has no package.json here; skipped"
    continue
  fi
  stamp="$dir/node_modules/.rtm-npm-ci-stamp"
  if [[ ! -f $stamp || $dir/package-lock.json -nt $stamp ]]; then
    (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --update-notifier=false --loglevel=warn)
    touch "$stamp"
    echo "js: $pkg: dependencies installed (npm ci)"
  else
    echo "js: $pkg: dependencies up to date"
  fi
  if node -e 'process.exit(require(process.argv[1]).scripts?.build ? 0 : 1)' "$dir/package.json"; then
    (cd "$dir" && npm run --silent build)
    echo "js: $pkg: built"
  fi
done
echo "js: node $(node --version), npm $(npm --version)"
