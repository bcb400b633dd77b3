#!/usr/bin/env bash
# The benchmark of issue 5: parcel against the shell pipeline (bench/peer.sh)
# on the same packages, same machine, same run, same zstd level.
#
#   bench/run.sh            toolchain copy, 1 GiB and 4 GiB mixed packages, 6 rotating
#                           repetitions (about 15 minutes on 2 cores); writes bench/results/latest.md
#   bench/run.sh --quick    small packages, one repetition, to try the script;
#                           writes bench/results/quick.md
#   bench/run.sh --scale    1,000,000 small files and one 20 GiB file, run once (about 48 GB
#                           free needed); writes bench/results/scale.md (--scale --quick: small stand-ins)
#   --reps N                repetitions of each timed pair (default 6, --quick 1; a
#                           multiple of 6 puts every command first equally often)
#   --fresh                 regenerate the packages instead of reusing them
#
# Packages and outputs live in $BENCH_DIR (default /work/bench-work), outside
# the repository. Installs what the peer needs (zstd, minisign, GNU time) with
# apt-get when missing; without minisign the peer signs with openssl (Ed25519)
# and the report says so.
#
# Method: the page cache is not dropped (the machine is shared); every tool
# runs from a warm cache, and a `sync` (not timed) precedes every timed
# command so that no command pays for another's writeback. The order within
# each group rotates (create: parcel --no-verify, parcel, peer; verify:
# parcel, parcel --media, peer; import: parcel and peer alternate), so that
# over six repetitions each command goes first equally often: on a VM the
# first large write after outputs were deleted can be much slower. The measuring phase holds
# flock $BENCH_LOCK (default /tmp/parcel-heavy.lock) so that other heavy jobs
# that take the same lock do not overlap a measurement.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
W=${BENCH_DIR:-/work/bench-work}
LOCK=${BENCH_LOCK:-/tmp/parcel-heavy.lock}
LEVEL=3
VOLUME=4GiB
SPLIT=4294967296
MODE=default
QUICK=0
REPS=
FRESH=0
COMMAND="bench/run.sh${*:+ $*}"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scale) MODE=scale ;;
    --reps) REPS=$2; shift ;;
    --fresh) FRESH=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$REPS" ] || REPS=$([ $QUICK = 1 ] && echo 1 || echo 6)
if [ "$REPS" -gt 1 ] && [ $((REPS % 6)) != 0 ]; then
  echo "run.sh: warning: $REPS repetitions: the commands of a group do not all go first equally often (use a multiple of 6)" >&2
fi
if [ $MODE = scale ]; then REPORT=scale; elif [ $QUICK = 1 ]; then REPORT=quick; else REPORT=latest; fi
[ $QUICK = 1 ] && [ $MODE = scale ] && REPORT=scale-quick

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- tools --------------------------------------------------------------------

install_packages() {
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing $* with apt-get"
  $sudo apt-get install -y "$@" >"$W/apt.log" 2>&1 ||
    { $sudo apt-get update >>"$W/apt.log" 2>&1 && $sudo apt-get install -y "$@" >>"$W/apt.log" 2>&1; } ||
    say "could not install $* (see $W/apt.log)"
}

ensure_tools() {
  local missing=()
  command -v zstd >/dev/null || missing+=(zstd)
  [ -x /usr/bin/time ] || missing+=(time)
  command -v minisign >/dev/null || missing+=(minisign)
  [ ${#missing[@]} = 0 ] || install_packages "${missing[@]}"
  # minisign alone may be the one that fails (not in every distribution).
  if ! command -v zstd >/dev/null || [ ! -x /usr/bin/time ]; then
    install_packages zstd time
  fi
  for tool in zstd /usr/bin/time flock python3 tar split sha256sum cargo; do
    command -v "$tool" >/dev/null || die "$tool is needed and could not be installed"
  done
  if command -v minisign >/dev/null; then
    SIGNER=minisign
    SIGNER_VERSION=$(minisign -v 2>&1 | head -1)
  else
    command -v openssl >/dev/null || die "neither minisign nor openssl is available to sign"
    SIGNER=openssl
    SIGNER_VERSION="$(openssl version) (FALLBACK: minisign not installable; Ed25519 via openssl pkeyutl)"
    say "minisign is not installable: the peer signs with openssl pkeyutl (Ed25519) instead"
  fi
}

# --- space ----------------------------------------------------------------------

# The GB (rounded down) that the named packages already take in $W/pkg: a
# run reuses each of them, or removes it before generating it again, so it
# does not need that space a second time.
present_gb() {
  local kb=0 pkg
  for pkg in "$@"; do
    [ -d "$W/pkg/$pkg" ] && kb=$((kb + $(du -sk "$W/pkg/$pkg" | cut -f1)))
  done
  echo $((kb / 1024 / 1024))
}

check_space() {
  local need_gb=$1 free_gb
  free_gb=$(df -P -BG "$W" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  say "free space in $W: ${free_gb} GB (this run needs about ${need_gb} GB more, packages it generates included)"
  [ "$free_gb" -ge "$need_gb" ] || die "not enough free space in $W; set BENCH_DIR elsewhere"
}

# --- packages -------------------------------------------------------------------

# The installed software tree: a copy of the Rust toolchain that builds parcel
# (bin, lib, share/doc: about 1.4 GB and 50,000 files), topped up from /usr/lib
# when it is under 1 GiB.
make_toolchain() {
  local dest=$1 sysroot
  sysroot=$(rustc --print sysroot)
  mkdir -p "$dest"
  if [ $QUICK = 1 ]; then
    cp -a "$sysroot/bin" "$dest/"
    mkdir -p "$dest/share/doc/rust/html"
    cp -a "$sysroot/share/doc/rust/html/alloc" "$dest/share/doc/rust/html/"
    return
  fi
  cp -a "$sysroot/." "$dest/"
  if [ "$(du -sb "$dest" | cut -f1)" -lt 1073741824 ]; then
    mkdir -p "$dest/usr-lib"
    cp -a /usr/lib/. "$dest/usr-lib/"
  fi
}

# prepare NAME ROLE SPEC: build $W/pkg/NAME unless it exists with the same
# SPEC. ROLE tells the report what the package is for: tree, mixed (timed),
# mixed-large (memory scaling against mixed), scale.
prepare() {
  local name=$1 role=$2 spec=$3 dir=$W/pkg/$1
  if [ $FRESH = 0 ] && [ -d "$dir" ] && [ "$(cat "$W/pkg/$name.ready" 2>/dev/null)" = "$spec" ]; then
    say "package $name: reusing $dir"
  else
    say "package $name: generating ($spec)"
    rm -rf "$dir" "$W/pkg/$name.ready"
    mkdir -p "$dir"
    case "$spec" in
      toolchain | toolchain-quick) make_toolchain "$dir" ;;
      mixed*) python3 "$BENCH/gen.py" mixed "$dir" "${spec#mixed }" 1 ;;
      small-files*) python3 "$BENCH/gen.py" small-files "$dir" "${spec#small-files }" ;;
      big-file*) python3 "$BENCH/gen.py" big-file "$dir" "${spec#big-file }" ;;
    esac
    echo "$spec" >"$W/pkg/$name.ready"
  fi
  local files bytes
  files=$(find "$dir" -type f | wc -l)
  bytes=$(du -sb --apparent-size "$dir" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$role" "$files" "$bytes" "$spec" >>"$PACKAGES"
}

# --- measuring ------------------------------------------------------------------

# measure PKG TOOL OP REP CMD...: run CMD under GNU time and record wall, user,
# sys (seconds) and peak resident memory (KiB). A `sync` first, not timed,
# unless NOSYNC=1.
measure() {
  local pkg=$1 tool=$2 op=$3 rep=$4
  shift 4
  [ "${NOSYNC:-0}" = 1 ] || sync
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ! /usr/bin/time -f '%e %U %S %M' -o "$W/run/time.out" "$@" >"$W/run/cmd.log" 2>&1; then
    tail -20 "$W/run/cmd.log" >&2
    die "$tool $op on $pkg failed: $*"
  fi
  local wall user sys rss
  read -r wall user sys rss < <(tail -1 "$W/run/time.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pkg" "$tool" "$op" "$rep" "$wall" "$user" "$sys" "$rss" "$load" >>"$TIMES"
  say "  $pkg rep $rep: $tool $op ${wall}s (user ${user}s, sys ${sys}s, peak ${rss} KiB)"
}

bytes_of() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

record_size() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(bytes_of "$4")" >>"$SIZES"; }

# The benchmark lock is held for the whole measuring phase rather than for
# each timed group: other jobs hold it for long segments (fuzzing: up to
# 14 minutes), and queueing behind one for each of some 30 groups would
# stretch a 20-minute run over hours. One wait, then nothing overlaps.
hold_lock() {
  exec 9>"$LOCK"
  if ! flock -n 9; then
    say "waiting for $LOCK (another heavy job holds it)"
    flock 9
  fi
  say "holding $LOCK"
}

release_lock() { exec 9>&-; }

# The parcel commands, as argument lists for measure (GNU time runs programs,
# not shell functions).
parcel_create() { # PKG REP OUT [--no-verify]
  CMD=("$PARCEL" --quiet --home "$H1" create --package "$W/pkg/$1" --package-id BENCH --version "$2"
    --to BXL --out "$3" --volume-size "$VOLUME" --level "$LEVEL" --json "${@:4}")
}
parcel_verify() { CMD=("$PARCEL" --quiet --home "$H2T" verify "$@"); }
parcel_import() { CMD=("$PARCEL" --quiet --home "$1" import "$2" --receipt "$W/run/receipt"); }

# One repetition on one package: create, verify and import, each a group of
# commands run back to back in an order that changes from one repetition to
# the next.

# The order of a group's three commands in repetition REP: rotated, so that
# over three repetitions each goes first, second and third once (the first
# command after the previous outputs were deleted can be slower on a VM).
rotation() { # REP A B C
  case $((($1 - 1) % 3)) in
    0) echo "$2 $3 $4" ;;
    1) echo "$4 $2 $3" ;;
    *) echo "$3 $4 $2" ;;
  esac
}
create_group() {
  local pkg=$1 rep=$2 run=$W/run
  rm -rf "$run/p-nv" "$run/p" "$run/q"
  mkdir -p "$run/p-nv" "$run/p" "$run/q"
  local order
  read -ra order <<<"$(rotation "$rep" nv def peer)"
  for step in "${order[@]}"; do
    case $step in
      nv) parcel_create "$pkg" "$rep" "$run/p-nv" --no-verify
        measure "$pkg" parcel create-noverify "$rep" "${CMD[@]}" ;;
      def) parcel_create "$pkg" "$rep" "$run/p"
        measure "$pkg" parcel create "$rep" "${CMD[@]}"
        ;;
      peer)
        measure "$pkg" peer create "$rep" "$BENCH/peer.sh" create "$W/pkg/$pkg" "$run/q"
        NOSYNC=1 measure "$pkg" peer create-sync "$rep" sync -f "$run/q"
        ;;
    esac
  done
  record_size "$pkg" parcel "$rep" "$run/p-nv"
  record_size "$pkg" peer "$rep" "$run/q"
  rm -rf "$run/p-nv"
}

# parcel verify checks content (decompresses every pack, checks every chunk
# and file); --media checks only the volumes' bytes against the signed hashes,
# which is what the peer's verify does. Both are timed when parcel has --media.
verify_group() {
  local pkg=$1 rep=$2 run=$W/run
  # Both outputs warm, as the method says: parcel's create reads its volumes
  # back with direct I/O, which leaves them out of the page cache, where the
  # peer's output stays after it is written.
  cat "$run"/p/* "$run"/q/* >/dev/null
  local order
  read -ra order <<<"$(rotation "$rep" content media peer)"
  for step in "${order[@]}"; do
    case $step in
      content) parcel_verify "$run/p"
        measure "$pkg" parcel verify "$rep" "${CMD[@]}" ;;
      media) if [ "$HAS_MEDIA" = 1 ]; then
          parcel_verify "$run/p" --media
          measure "$pkg" parcel verify-media "$rep" "${CMD[@]}"
        fi ;;
      peer) measure "$pkg" peer verify "$rep" "$BENCH/peer.sh" verify "$run/q" ;;
    esac
  done
}

# Each parcel import goes into a fresh copy of the destination home, so that
# it is a real import (the store makes a repeated import a no-op).
import_group() {
  local pkg=$1 rep=$2 run=$W/run
  rm -rf "$run/H2" "$run/dest"
  cp -a "$H2T" "$run/H2"
  mkdir -p "$run/dest"
  if [ $((rep % 2)) = 1 ]; then
    parcel_import "$run/H2" "$run/p"
    measure "$pkg" parcel import "$rep" "${CMD[@]}"
    measure "$pkg" peer import "$rep" "$BENCH/peer.sh" import "$run/q" "$run/dest"
  else
    measure "$pkg" peer import "$rep" "$BENCH/peer.sh" import "$run/q" "$run/dest"
    parcel_import "$run/H2" "$run/p"
    measure "$pkg" parcel import "$rep" "${CMD[@]}"
  fi
  if [ "$rep" = 1 ]; then check_import "$pkg" "$run/H2/packages/BENCH/$rep" "$run/dest"; fi
  rm -rf "$run/H2" "$run/dest" "$run/receipt"
}

# Both imports must hold exactly the package's files and bytes.
check_import() {
  local pkg=$1
  for got in "$2" "$3"; do
    diff -rq "$W/pkg/$pkg" "$got" >"$W/run/diff.log" 2>&1 ||
      { head "$W/run/diff.log" >&2; die "import of $pkg into $got differs from the package"; }
  done
  say "  $pkg: both imports match the package byte for byte"
}

bench_package() {
  local pkg=$1 reps=$2
  for rep in $(seq 1 "$reps"); do
    say "$pkg: repetition $rep of $reps"
    create_group "$pkg" "$rep"
    verify_group "$pkg" "$rep"
    import_group "$pkg" "$rep"
    rm -rf "$W/run/p" "$W/run/q"
  done
}

# Scale cases: parcel's whole chain first, then the peer's, each output removed
# before the next is written, so that a 20 GiB package needs about 2.5 times
# its size on disk rather than 4 times.
scale_package() {
  local pkg=$1 run=$W/run
  rm -rf "$run/p" "$run/q" "$run/H2" "$run/dest"
  mkdir -p "$run/p" "$run/q" "$run/dest"
  cp -a "$H2T" "$run/H2"
  parcel_create "$pkg" 1 "$run/p"
  measure "$pkg" parcel create 1 "${CMD[@]}"
  record_size "$pkg" parcel 1 "$run/p"
  parcel_verify "$run/p"
  measure "$pkg" parcel verify 1 "${CMD[@]}"
  parcel_import "$run/H2" "$run/p"
  measure "$pkg" parcel import 1 "${CMD[@]}"
  check_import_one "$pkg" "$run/H2/packages/BENCH/1"
  rm -rf "$run/p" "$run/H2"
  measure "$pkg" peer create 1 "$BENCH/peer.sh" create "$W/pkg/$pkg" "$run/q"
  record_size "$pkg" peer 1 "$run/q"
  measure "$pkg" peer verify 1 "$BENCH/peer.sh" verify "$run/q"
  measure "$pkg" peer import 1 "$BENCH/peer.sh" import "$run/q" "$run/dest"
  rm -rf "$run/q" "$run/dest" "$run/receipt"
}

# For the scale cases a full diff would double the run; compare file count and bytes.
check_import_one() {
  local want got
  want="$(find "$W/pkg/$1" -type f | wc -l) $(bytes_of "$W/pkg/$1")"
  got="$(find "$2" -type f | wc -l) $(bytes_of "$2")"
  [ "$want" = "$got" ] || die "import of $1 holds $got (files, bytes), the package $want"
  say "  $1: the import holds the package's $want (files, bytes)"
}

# --- main -----------------------------------------------------------------------

mkdir -p "$W"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ensure_tools
case "$MODE$QUICK" in
  default0) check_space $((24 - $(present_gb toolchain mixed-1g mixed-4g))) ;;
  scale0) ;; # checked for each package
  *) check_space 4 ;;
esac

say "building parcel (release)"
(cd "$ROOT" && cargo build --release -p parcel-cli --quiet)
PARCEL=${CARGO_TARGET_DIR:-$ROOT/target}/release/parcel
[ -x "$PARCEL" ] || die "no parcel binary at $PARCEL"
HAS_MEDIA=0
if "$PARCEL" verify --help | grep -q -- --media; then HAS_MEDIA=1; fi

OUT=$W/results-$REPORT
rm -rf "$OUT" "$W/run" "$W/sites"
mkdir -p "$OUT" "$W/run" "$W/sites" "$W/pkg"
TIMES=$OUT/times.tsv SIZES=$OUT/sizes.tsv PACKAGES=$OUT/packages.tsv
: >"$TIMES"; : >"$SIZES"; : >"$PACKAGES"

say "setting up sites CEN and BXL and the peer's signing key"
H1=$W/sites/CEN H2T=$W/sites/BXL
"$PARCEL" --home "$H1" --quiet site init --code CEN >/dev/null
"$PARCEL" --home "$H2T" --quiet site init --code BXL >/dev/null
"$PARCEL" --home "$H1" --quiet key export --out "$W/sites/CEN.pub" >/dev/null
"$PARCEL" --home "$H2T" --quiet key export --out "$W/sites/BXL.pub" >/dev/null
"$PARCEL" --home "$H2T" --quiet key trust "$W/sites/CEN.pub" >/dev/null
"$PARCEL" --home "$H1" --quiet key trust "$W/sites/BXL.pub" >/dev/null
export PEER_SIGNER=$SIGNER PEER_SPLIT=$SPLIT PEER_LEVEL=$LEVEL
if [ "$SIGNER" = minisign ]; then
  export PEER_KEY=$W/sites/peer.key PEER_PUB=$W/sites/peer.pub
  minisign -G -W -f -p "$PEER_PUB" -s "$PEER_KEY" >/dev/null
else
  export PEER_KEY=$W/sites/peer.pem PEER_PUB=$W/sites/peer.pub.pem
  openssl genpkey -algorithm ed25519 -out "$PEER_KEY"
  openssl pkey -in "$PEER_KEY" -pubout -out "$PEER_PUB"
fi

START=$(date +%s)
hold_lock
if [ $MODE = scale ]; then
  # One package at a time, removed after its run (they are large and quick to
  # regenerate): the 20 GiB case needs about 48 GB while it runs.
  if [ $QUICK = 1 ]; then
    SCALE=("files-20k:small-files 20000:1" "big-1g:big-file 1073741824:4")
  else
    SCALE=("files-1m:small-files 1000000:8" "big-20g:big-file 21474836480:48")
  fi
  for entry in "${SCALE[@]}"; do
    IFS=: read -r pkg spec gb <<<"$entry"
    [ -d "$W/pkg/$pkg" ] || check_space "$gb"
    prepare "$pkg" scale "$spec"
    say "scale: $pkg"
    scale_package "$pkg"
    if [ $QUICK = 0 ]; then rm -rf "$W/pkg/$pkg" "$W/pkg/$pkg.ready"; fi
  done
else
  if [ $QUICK = 1 ]; then
    PKGS=(toolchain-quick mixed-64m mixed-256m)
    prepare toolchain-quick tree "toolchain-quick"
    prepare mixed-64m mixed "mixed 67108864"
    prepare mixed-256m mixed-large "mixed 268435456"
  else
    PKGS=(toolchain mixed-1g mixed-4g)
    prepare toolchain tree "toolchain"
    prepare mixed-1g mixed "mixed 1073741824"
    prepare mixed-4g mixed-large "mixed 4294967296"
  fi
  bench_package "${PKGS[0]}" "$REPS"
  bench_package "${PKGS[1]}" "$REPS"
  bench_package "${PKGS[2]}" 1
fi
release_lock
ELAPSED=$(($(date +%s) - START))

cat >"$OUT/meta.env" <<EOF
mode=$REPORT
command=$COMMAND
date=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- parcel-format parcel-cli Cargo.toml Cargo.lock || echo ' (with uncommitted changes to the code)')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
nproc=$(nproc)
memory=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
kernel=$(uname -r)
filesystem=$(df -PT "$W" | awk 'NR == 2 { print $2 }') on $(df -P "$W" | awk 'NR == 2 { print $1 }')
load_start=$LOAD_START
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
reps=$REPS
elapsed=$ELAPSED
zstd=zstd $(zstd --version | grep -o 'v[0-9][0-9.]*' | head -1)
signer=$SIGNER_VERSION
parcel=$("$PARCEL" --version)
level=$LEVEL
volume=$VOLUME
EOF

mkdir -p "$BENCH/results"
python3 "$BENCH/report.py" "$OUT" | tee "$BENCH/results/$REPORT.md"
say "report written to bench/results/$REPORT.md; raw figures in $OUT"
