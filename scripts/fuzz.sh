#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs them, each on a
# copy of its seed corpus (fuzz/README.md says what each target covers).
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER_ARGS...]   one target
#   scripts/fuzz.sh all SECONDS [LIBFUZZER_ARGS...]      every target in turn, SECONDS each
#   scripts/fuzz.sh list                                 the targets
#
#   RTM_FUZZ_BUILD_DIR   build directory (default: build-fuzz)
#   RTM_FUZZ_SKIP_BUILD=1  use the binaries already built
#
# A run's corpus, log and any crash input go to BUILD/fuzz-runs/TARGET/. Exits non-zero
# when a target finds a crash or a violated property (its report is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(topics request mqtt_codec mapping_compile mapping_route jwt grants broker_bridge)
# Longest input per target: room for long URIs, topics and tokens (the JWT limit is 8192)
# without slowing the common case down.
declare -A max_len=([topics]=4096 [request]=4096 [mqtt_codec]=4096 [mapping_compile]=4096
                    [mapping_route]=4096 [jwt]=9000 [grants]=4096 [broker_bridge]=8192)

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
if [[ $1 == list ]]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
[[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
which=$1
seconds=$2
shift 2
if [[ $which == all ]]; then
  selected=("${targets[@]}")
elif [[ -n ${max_len[$which]:-} ]]; then
  selected=("$which")
else
  echo "unknown fuzz target '$which' (one of: ${targets[*]}, all)" >&2
  exit 2
fi

build=${RTM_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ${RTM_FUZZ_SKIP_BUILD:-0} != 1 ]]; then
  ./scripts/install-deps.sh
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRTM_FUZZ=ON -DRTM_BUILD_TESTS=OFF -DRTM_BUILD_BENCH=OFF >/dev/null
  build_targets=()
  for t in "${selected[@]}"; do build_targets+=("fuzz_$t"); done
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${build_targets[@]}"
fi

failed=()
for t in "${selected[@]}"; do
  run="$build/fuzz-runs/$t"
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/artifacts"
  cp fuzz/corpus/"$t"/* "$run/corpus/"
  args=(-max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -print_final_stats=1
        -artifact_prefix="$run/artifacts/")
  if [[ -f fuzz/$t.dict ]]; then args+=(-dict="fuzz/$t.dict"); fi
  echo "== fuzz $t for ${seconds}s (log: $run/log)"
  status=0
  "$build/fuzz/fuzz_$t" "${args[@]}" "$@" "$run/corpus" >"$run/log" 2>&1 || status=$?
  # Executions: the final stats of a plain run, or the last status line of a -fork run.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -n 1)
  if [[ -z $execs ]]; then
    execs=$(grep -aoE '#[0-9]+: cov' "$run/log" | tail -n 1 | tr -dc '0-9')
  fi
  inputs=$(find "$run/corpus" -type f | wc -l)
  crashes=$(find "$run/artifacts" -type f | wc -l)
  if [[ $status -ne 0 || $crashes -gt 0 ]]; then
    report='property violated|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error'
    if grep -qaE "$report" "$run/log"; then
      grep -aE -B2 -A40 "$report" "$run/log" | head -n 80 || true
    else
      tail -n 60 "$run/log"
    fi
    echo "fuzz $t: FAILED after ${execs:-?} executions; inputs kept in $run/artifacts/:"
    ls -1 "$run/artifacts"
    failed+=("$t")
  else
    echo "fuzz $t: ${execs:-?} executions in ${seconds}s, no crash (corpus: $inputs inputs)"
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: failures in ${failed[*]}" >&2
  exit 1
fi
