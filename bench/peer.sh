#!/usr/bin/env bash
# The peer: the shell pipeline parcel is measured against (issue 5).
#
#   peer.sh create PKG OUT    tar | zstd -3 -T0 | split, sha256sum, sign SHA256SUMS
#   peer.sh verify OUT        check the signature, then every piece's SHA-256
#   peer.sh import OUT DEST   verify, then cat | zstd -d | tar -x, then sync -f DEST
#
# Environment (set by run.sh): PEER_SIGNER (minisign or openssl), PEER_KEY,
# PEER_PUB, PEER_SPLIT (bytes per piece), PEER_LEVEL (zstd level).
#
# The import ends with `sync -f DEST` because parcel's import syncs the staged
# package before switching it into the store: both imports are durable when
# they return. The peer's create is left as the issue states it (no sync);
# run.sh times a `sync -f OUT` after it separately.
set -euo pipefail

sign() {
  case "$PEER_SIGNER" in
    minisign) minisign -S -s "$PEER_KEY" -m "$1" >/dev/null ;;
    openssl) openssl pkeyutl -sign -inkey "$PEER_KEY" -rawin -in "$1" -out "$1.sig" ;;
  esac
}

check_signature() {
  case "$PEER_SIGNER" in
    minisign) minisign -V -q -p "$PEER_PUB" -m "$1" ;;
    openssl) openssl pkeyutl -verify -pubin -inkey "$PEER_PUB" -rawin -in "$1" -sigfile "$1.sig" >/dev/null ;;
  esac
}

verify() {
  check_signature "$1/SHA256SUMS"
  (cd "$1" && sha256sum --quiet -c SHA256SUMS)
}

case "${1:-}" in
  create)
    pkg=$2 out=$3
    tar -C "$pkg" -cf - . | zstd -q "-$PEER_LEVEL" -T0 | split -b "$PEER_SPLIT" - "$out/parcel.tar.zst."
    (cd "$out" && sha256sum parcel.tar.zst.* >SHA256SUMS)
    sign "$out/SHA256SUMS"
    ;;
  verify)
    verify "$2"
    ;;
  import)
    out=$2 dest=$3
    verify "$out"
    cat "$out"/parcel.tar.zst.* | zstd -q -d | tar -x -C "$dest"
    sync -f "$dest"
    ;;
  *)
    echo "usage: peer.sh create PKG OUT | verify OUT | import OUT DEST" >&2
    exit 2
    ;;
esac
