#!/usr/bin/env bash
# Regenerates the seed corpus of every fuzz target under fuzz/corpus/<target>/
# (gitignored) from the fixture parcels in fuzz/src/lib.rs and from the test
# vectors in testdata/vectors/*.vector, when there are any.
#
#   fuzz/seed.sh            add or refresh the seeds, keep what the fuzzer found
#   fuzz/seed.sh --clean    start the corpus over from the seeds alone
set -euo pipefail

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz_dir")

if [ "${1:-}" = "--clean" ]; then
  rm -rf "$fuzz_dir/corpus"
fi

if ! compgen -G "$root/testdata/vectors/*.vector" >/dev/null; then
  echo "seed.sh: no test vectors in testdata/vectors yet; seeding from the fixture parcels only"
fi

# The dev profile: it builds in half the time of --release, and the seeds take
# under a second to write either way.
cargo +nightly run --quiet \
  --manifest-path "$fuzz_dir/Cargo.toml" \
  --features seed-corpus --bin seed-corpus -- \
  "$fuzz_dir/corpus" "$root/testdata/vectors"
