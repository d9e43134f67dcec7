#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest.
#   RTM_BUILD_DIR   build directory (default: build)
#   RTM_SANITIZE=0  skip the AddressSanitizer/UBSan pass that follows the normal one
#   RTM_FUZZ=0      skip the short libFuzzer runs (RTM_FUZZ_SECONDS each, default 20; fuzz/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
build=${RTM_BUILD_DIR:-build}

echo "== build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRTM_SANITIZE=OFF
cmake --build "$build" -j "$jobs"
echo "== tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 300

if [[ "${RTM_SANITIZE:-1}" != 0 ]]; then
  echo "== AddressSanitizer/UBSan build (${build}-asan)"
  cmake -S . -B "${build}-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRTM_SANITIZE=ON -DRTM_BUILD_BENCH=OFF
  cmake --build "${build}-asan" -j "$jobs"
  echo "== tests under AddressSanitizer/UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "${build}-asan" --output-on-failure -j "$jobs" --timeout 600
fi
# Each fuzz target briefly on its seed corpus (clang build in ${build}-fuzz), so that a
# regression in what parses client input shows up here.
if [[ "${RTM_FUZZ:-1}" != 0 ]]; then
  echo "== fuzz targets, ${RTM_FUZZ_SECONDS:-20}s each (${build}-fuzz)"
  RTM_FUZZ_BUILD_DIR="${build}-fuzz" ./scripts/fuzz.sh all "${RTM_FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
