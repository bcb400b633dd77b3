#!/usr/bin/env bash
# Measures the size of a delta parcel against a full parcel of the same new
# version (issue: "for a new version where about 1% of the bytes differ, the
# delta parcel is <= 3% of the full parcel's size"), then imports the full v1
# and the delta v2 at a second site and checks the result is identical to v2.
#
#   bench/delta.sh [PACKAGE_DIR]    default: the active Rust toolchain (~1.4 GB)
#
# Version 2 is a copy of the package in which about 1% of the bytes are new
# content: a region of its largest file rewritten (1/200 of the package); its
# three largest files under 1 MiB replaced; two files removed and two added;
# 25 small edits scattered through its largest text file. New content is of
# the same kind as the package's (bytes taken from elsewhere in the same file,
# with every 16th byte altered so that no chunk repeats), so it compresses as
# the package does: random bytes would make 1% of the bytes several percent
# of any compressed parcel. Work goes to $BENCH_DIR (default /work/bench-work).
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
changed=$(python3 - "$v2" "$total" <<'PY'
import os, sys
root, total = sys.argv[1], int(sys.argv[2])
files = []
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append((os.path.getsize(p), p))
files.sort()
def other(data):
    # Same kind of bytes, every 16th altered: no chunk of it repeats.
    b = bytearray(data)
    for i in range(0, len(b), 16):
        b[i] = (b[i] + 1) % 256
    return bytes(b)
changed = 0
# A region of the largest file, taken from its first half, written into its second.
size, big = files[-1]
region = min(total // 200, size // 3)
with open(big, "r+b") as f:
    f.seek(size // 6)
    donor = f.read(region)
    f.seek(size // 2)
    f.write(other(donor))
changed += region
# Three largest files under 1 MiB replaced by content of the same kind.
small = [f for f in files if f[0] < 1 << 20]
for size, p in small[-3:]:
    with open(p, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(other(data[len(data) // 2:] + data[: len(data) // 2]))
    changed += size
# Two removed, two added (copies of mid-sized files, altered).
for size, p in small[-6:-4]:
    os.remove(p)
for k, (size, p) in enumerate(small[-8:-6]):
    with open(p, "rb") as f:
        data = f.read()
    with open(os.path.join(root, f"added-{k}.bin"), "wb") as f:
        f.write(other(data))
    changed += size
# 25 edits through the largest text file.
texts = [f for f in files if f[1].endswith((".html", ".js", ".txt", ".md", ".rs"))]
if texts:
    size, p = texts[-1]
    with open(p, "rb") as f:
        lines = f.read().split(b"\n")
    for k in range(1, 26):
        i = k * len(lines) // 26
        lines[i] = lines[i] + b" <!-- edited in v2 -->"
        changed += len(lines[i])
    with open(p, "wb") as f:
        f.write(b"\n".join(lines))
print(changed)
PY
)
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
