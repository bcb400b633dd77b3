#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS, one after the other;
# exits non-zero if any target crashed, panicked, timed out or ran out of
# memory. Works from a fresh clone: installs cargo-fuzz when it is missing.
#
#   fuzz/run-all.sh 60
#
# Each run starts from fuzz/corpus/<target> (refreshed by seed.sh first) plus
# fuzz/regressions/<target>, so a known crashing input fails the run until the
# library is fixed. Logs go to fuzz/artifacts/logs/<target>.log, crashing
# inputs to fuzz/artifacts/<target>/. Targets are built with debug assertions
# (-a), so integer overflow panics instead of wrapping (except in the crypto
# crates and FastCDC, which fuzz/rustc-wrapper builds without them). Leak detection is off:
# verify and extract run scoped worker threads and channels, and the first
# time std's thread-local state for them is touched on the main thread it
# registers a destructor (__cxa_thread_atexit_impl) that LeakSanitizer
# reports as a 32-byte leak; that is no bug of the reader.
set -uo pipefail

seconds=${1:?usage: fuzz/run-all.sh SECONDS}
fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$fuzz_dir")" || exit 1

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal || exit 1
fi
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || exit 1
fi

"$fuzz_dir/seed.sh" || exit 1
# The cryptographic primitives and the chunker are built without coverage
# instrumentation (see the wrapper); set for the build and for every run, or
# `cargo fuzz run` would rebuild without it.
if [ -n "${RUSTC_WRAPPER:-}" ] && [ "$RUSTC_WRAPPER" != "$fuzz_dir/rustc-wrapper" ]; then
  export PARCEL_FUZZ_NEXT_WRAPPER="$RUSTC_WRAPPER"
fi
export RUSTC_WRAPPER="$fuzz_dir/rustc-wrapper"
# Cargo does not rebuild when only RUSTC_WRAPPER changes: crates built before
# without the wrapper (an earlier `cargo fuzz build` in fuzz/target) would be
# reused, instrumented. A flag of its own in RUSTFLAGS (cargo-fuzz appends
# RUSTFLAGS to its own flags) keeps the two builds apart.
case " ${RUSTFLAGS:-} " in
  *" --cfg parcel_fuzz_rustc_wrapper "*) ;;
  *) export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg parcel_fuzz_rustc_wrapper" ;;
esac
cargo +nightly fuzz build -a || exit 1

# One target per file in fuzz_targets/ (`cargo fuzz list` would also name the
# seed-corpus helper binary).
targets=$(cd "$fuzz_dir/fuzz_targets" && ls -- *.rs | sed 's/\.rs$//') || exit 1
logs="$fuzz_dir/artifacts/logs"
mkdir -p "$logs"
failed=()
summary=()
for target in $targets; do
  corpora=("$fuzz_dir/corpus/$target")
  mkdir -p "${corpora[0]}"
  if compgen -G "$fuzz_dir/regressions/$target/*" >/dev/null; then
    corpora+=("$fuzz_dir/regressions/$target")
  fi
  log="$logs/$target.log"
  echo "== $target: ${seconds}s"
  cargo +nightly fuzz run -a "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=0 -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [ -z "$execs" ]; then
    execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
  fi
  if [ "$status" -eq 0 ]; then
    summary+=("$(printf '%-12s %12s execs  ok' "$target" "${execs:-?}")")
  else
    failed+=("$target")
    summary+=("$(printf '%-12s %12s execs  FAILED (exit %s, log %s)' "$target" "${execs:-?}" "$status" "$log")")
    grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY:|Test unit written to|^thread ' "$log" | head -n 20
  fi
done

echo
echo "== executions per target (${seconds}s each)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "== crashes in: ${failed[*]}"
  exit 1
fi
