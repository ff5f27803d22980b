#!/usr/bin/env bash
# Coverage-guided fuzzing of every target (make fuzz): libFuzzer through cargo-fuzz, on the
# stable toolchain. cargo-fuzz's instrumentation (-Cpasses=sancov-module and -Cllvm-args
# sanitizer-coverage flags) is stable; only its sanitizers need nightly, so targets are built with
# `--sanitizer none` (rcomet's parsers are safe Rust: a bug shows as a panic, an overflow (debug
# assertions and overflow checks are on) or a failed invariant, not as memory corruption).
#
#   bash fuzz/run.sh SECONDS [TARGET...]   every target (or the ones named) for SECONDS each
#
# Seeds: fuzz/corpus/<target>/ (committed, read only). What the fuzzer finds goes to
# fuzz/libfuzzer/corpus/<target>/ (kept between runs, not committed); a failing input to
# fuzz/libfuzzer/artifacts/<target>/. Prints one line of stats per target and exits non-zero if
# any target failed. CARGO_FUZZ_FLAGS adds flags to every cargo-fuzz call; FUZZ_ARGS adds
# libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
dir=fuzz/libfuzzer
cargo=${CARGO:-cargo}

if ! "$cargo" fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  "$cargo" install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <("$cargo" fuzz list --fuzz-dir "$dir")
fi

# shellcheck disable=SC2086 # CARGO_FUZZ_FLAGS is a list of flags
flags=(--fuzz-dir "$dir" --sanitizer none ${CARGO_FUZZ_FLAGS:-})
echo "== building ${#targets[@]} targets"
"$cargo" fuzz build "${flags[@]}"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
printf '%-16s %12s %10s %8s %8s %8s\n' target execs exec/s cov ft corpus
for target in "${targets[@]}"; do
  work="$dir/corpus/$target"
  mkdir -p "$work"
  log="$logs/$target.log"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of libFuzzer flags
  if ! "$cargo" fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
    failed+=("$target")
    echo "!! $target failed; the end of its log:"
    tail -n 40 "$log"
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  printf '%-16s %12s %10s %8s %8s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in $dir/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no failure"
