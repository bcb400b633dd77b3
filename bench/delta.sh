#!/usr/bin/env bash
# Measures the size of a delta parcel against a full parcel of the same new
# version (issue: "for a new version where about 1% of the bytes differ, the
# delta parcel is <= 3% of the full parcel's size"), then imports the full v1
# and the delta v2 at a second site and checks the result is identical to v2.
#
#   bench/delta.sh [PACKAGE_DIR]    default: the active Rust toolchain (~1.4 GB)
#
# Version 2 is a copy of the package with: a 4 MiB region rewritten in the
# middle of its largest file; its three largest files under 1 MiB replaced;
# two files removed and two of 1 MiB added; 25 small edits scattered through
# its largest text file. Work goes to $BENCH_DIR (default /work/bench-work).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=${1:-$(rustc --print sysroot)}
work=${BENCH_DIR:-/work/bench-work}/delta
rm -rf "$work"
mkdir -p "$work"
cargo build --release -q -p parcel-cli
parcel=$PWD/target/release/parcel

echo "== preparing v1 and v2 from $pkg"
cp -a "$pkg" "$work/v1"
cp -a "$work/v1" "$work/v2"
v2=$work/v2
total=$(du -sb "$work/v1" | cut -f1)
largest=$(find "$v2" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
size=$(stat -c %s "$largest")
head -c $((4 << 20)) /dev/urandom | dd of="$largest" bs=1M seek=$((size / 2 / (1 << 20))) conv=notrunc status=none
changed=$((4 << 20))
while read -r f; do
  n=$(stat -c %s "$f"); head -c "$n" /dev/urandom > "$f"; changed=$((changed + n))
done < <(find "$v2" -type f -size -1M -printf '%s %p\n' | sort -n | tail -3 | cut -d' ' -f2-)
find "$v2" -type f -name '*.md' -printf '%p\n' | head -2 | xargs -r rm -f
head -c $((1 << 20)) /dev/urandom > "$v2/added-1.bin"
head -c $((1 << 20)) /dev/urandom > "$v2/added-2.bin"
changed=$((changed + (2 << 20)))
text=$(find "$v2" -type f \( -name '*.html' -o -name '*.js' -o -name '*.txt' -o -name '*.rs' \) -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
if [ -n "$text" ]; then
  lines=$(wc -l < "$text")
  for i in $(seq 1 25); do
    sed -i "$((i * lines / 26))s/\$/ <!-- edited in v2, change $i -->/" "$text"
  done
  changed=$((changed + 25 * 32))
fi
echo "package: $total bytes; bytes changed in v2: about $changed ($(awk "BEGIN{printf \"%.2f\", 100*$changed/$total}")%)"

cen=$work/cen; bxl=$work/bxl
"$parcel" --home "$cen" --quiet site init --code CEN >/dev/null
"$parcel" --home "$bxl" --quiet site init --code BXL >/dev/null
"$parcel" --home "$cen" --quiet key export --out "$work/cen.pub" >/dev/null
"$parcel" --home "$bxl" --quiet key export --out "$work/bxl.pub" >/dev/null
"$parcel" --home "$bxl" --quiet key trust "$work/cen.pub" >/dev/null 2>&1
"$parcel" --home "$cen" --quiet key trust "$work/bxl.pub" >/dev/null 2>&1

mkdir -p "$work/full1" "$work/full2" "$work/delta2"
create() { "$parcel" --home "$cen" --quiet create --package "$1" --package-id TOOLCHAIN --version "$2" \
  --to BXL --out "$3" --volume-size 4GiB --no-verify --json "${@:4}" | sed -n 's/^  "bytes": \([0-9]*\),*/\1/p'; }
full1=$(create "$work/v1" 1 "$work/full1")
echo "== v1 imported at BXL, its receipt applied at CEN"
"$parcel" --home "$bxl" --quiet import "$work/full1" --receipt "$work/r1.txt" >/dev/null
"$parcel" --home "$cen" --quiet receipt apply "$work/r1.txt" >/dev/null
full2=$(create "$v2" 2 "$work/full2")
delta2=$(create "$v2" 3 "$work/delta2" --base 1)
echo "full parcel of v2:  $full2 bytes"
echo "delta parcel on v1: $delta2 bytes"
echo "delta / full:       $(awk "BEGIN{printf \"%.2f%%\", 100*$delta2/$full2}")   (target <= 3%)"

echo "== import of the delta at BXL"
/usr/bin/time -f "import of the delta: %e s, peak RSS %M KiB" "$parcel" --home "$bxl" --quiet import "$work/delta2" >/dev/null
if diff -r --no-dereference "$v2" "$bxl/packages/TOOLCHAIN/3" >/dev/null; then
  echo "store's v3 (from the delta) is identical to v2: yes"
else
  echo "store's v3 (from the delta) differs from v2" >&2
  exit 1
fi
rm -rf "$work"
