#!/usr/bin/env bash
# Installs and builds the JavaScript parts from their committed lockfiles: sdk-js/ (the SDK:
# npm ci, then its build into sdk-js/dist) and examples/coplay-web/ (the web demo: npm ci).
# npm ci runs again only when a lockfile changed or an install did not finish, and the build
# only when a source is newer than its output, so a second run needs no network. No browser is
# ever downloaded (the tests drive Debian's chromium through playwright-core).
#   scripts/js.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "js.sh: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1

npm_ci() {  # npm_ci DIR
  # npm leaves node_modules/.package-lock.json once an install has finished.
  if [[ -f $1/node_modules/.package-lock.json && $1/node_modules/.package-lock.json -nt $1/package-lock.json ]]; then
    echo "js.sh: $1: dependencies up to date"
  else
    echo "js.sh: $1: npm ci"
    (cd "$1" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --update-notifier=false --loglevel=warn)
  fi
}

if [[ -d sdk-js ]]; then
  npm_ci sdk-js
  if [[ -f sdk-js/dist/index.js ]] && [[ -z $(find sdk-js/src sdk-js/package.json sdk-js/tsconfig.json -newer sdk-js/dist/index.js -print -quit) ]]; then
    echo "js.sh: sdk-js: dist up to date"
  else
    echo "js.sh: sdk-js: building dist"
    (cd sdk-js && npm run --silent build)
  fi
fi
npm_ci examples/coplay-web
echo "js.sh: node $(node --version), npm $(npm --version): ready"
