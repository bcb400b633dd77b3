#!/usr/bin/env bash
# Runs one fuzz target towards a number of executions, in segments that each
# continue from the corpus the one before left, and keeps the count:
#
#   fuzz/campaign.sh TARGET GOAL MINUTES [LOGDIR]
#
# Each segment is one `cargo +nightly fuzz run -a -s none` of at most
# SEGMENT seconds (default 780) at nice 19, asked for the executions still
# missing (-runs), over fuzz/corpus/TARGET and fuzz/regressions/TARGET. After
# each, its stat::number_of_executed_units is added to LOGDIR/total (default
# fuzz/artifacts/campaign-TARGET), with a line in LOGDIR/summary; the logs are
# LOGDIR/seg-N.log. It stops at GOAL executions, after MINUTES, or at the
# first segment that fails (a crash, timeout or out-of-memory: the input is in
# fuzz/artifacts/TARGET/). Run again with the same LOGDIR, it goes on from the
# total there. Two campaigns of one target may share the corpus, each with its
# own LOGDIR (their totals add up).
#
# Build first, as run-all.sh does (fuzz/rustc-wrapper keeps the crypto crates
# and the chunker out of the coverage tracing; see README.md), into a target
# directory no running campaign uses, and give it as CARGO_TARGET_DIR:
#
#   export RUSTC_WRAPPER=$PWD/fuzz/rustc-wrapper RUSTFLAGS="--cfg parcel_fuzz_rustc_wrapper"
#   CARGO_TARGET_DIR=/tmp/fz cargo +nightly fuzz build -a -s none --target-dir /tmp/fz
#   CARGO_TARGET_DIR=/tmp/fz setsid nohup fuzz/campaign.sh verify_set 10000000 170 &
#
# Each segment's `cargo fuzz run` rebuilds the target if the sources of this
# checkout changed since: to move a campaign to a new commit, build it into a
# new target directory first, then stop the campaign and start it again with
# that directory (the same LOGDIR goes on counting).
#
# Stop a campaign by killing this script and sending SIGINT to the fuzzer,
# which then prints its final stats (add them to LOGDIR/total by hand).
set -u

target=${1:?usage: fuzz/campaign.sh TARGET GOAL MINUTES [LOGDIR]}
goal=${2:?usage: fuzz/campaign.sh TARGET GOAL MINUTES [LOGDIR]}
minutes=${3:?usage: fuzz/campaign.sh TARGET GOAL MINUTES [LOGDIR]}
fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
logdir=${4:-$fuzz_dir/artifacts/campaign-$target}
segment=${SEGMENT:-780}
target_dir=${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the directory the targets were built in}
cd "$(dirname "$fuzz_dir")" || exit 1

# The same flags as the build, or cargo would rebuild the crypto crates
# instrumented (see run-all.sh).
export RUSTC_WRAPPER="$fuzz_dir/rustc-wrapper"
case " ${RUSTFLAGS:-} " in
  *" --cfg parcel_fuzz_rustc_wrapper "*) ;;
  *) export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg parcel_fuzz_rustc_wrapper" ;;
esac
# Below the other work of the session, as a group too (the kernel's
# autogroup otherwise gives this session's group an equal share).
echo 19 >/proc/self/autogroup 2>/dev/null || true

mkdir -p "$logdir" "$fuzz_dir/corpus/$target"
total=0
[ -f "$logdir/total" ] && total=$(cat "$logdir/total")
end=$(($(date +%s) + minutes * 60))
n=$(find "$logdir" -maxdepth 1 -name 'seg-*.log' | wc -l)
corpora=("$fuzz_dir/corpus/$target")
if compgen -G "$fuzz_dir/regressions/$target/*" >/dev/null; then
  corpora+=("$fuzz_dir/regressions/$target")
fi

while [ "$total" -lt "$goal" ]; do
  left=$((end - $(date +%s)))
  [ "$left" -lt 60 ] && break
  seconds=$((left < segment ? left : segment))
  n=$((n + 1))
  log="$logdir/seg-$n.log"
  echo "$(date -u +%FT%TZ) segment $n: ${seconds}s, $((goal - total)) to go" >>"$logdir/summary"
  nice -n 19 cargo +nightly fuzz run -a -s none --target-dir "$target_dir" "$target" "${corpora[@]}" -- \
    -runs=$((goal - total)) -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  total=$((total + ${execs:-0}))
  echo "$total" >"$logdir/total"
  echo "$(date -u +%FT%TZ) segment $n: exit $status, ${execs:-?} executions, $total in all" >>"$logdir/summary"
  if [ "$status" -ne 0 ]; then
    echo "segment $n failed (exit $status): see $log" >>"$logdir/summary"
    exit 1
  fi
done
