//! Damaged and mixed-up media: a list of mutations applied to the volumes of a
//! good 2–3 volume seed parcel (bytes flipped, volumes truncated, extended,
//! duplicated, dropped or reordered), then the content and media checks over
//! the result. The same mutations go to an encrypted seed (FORMAT.md §12),
//! checked with the fuzz site's identity and, for the media, without it.
//!
//! The property: both report a problem exactly when the set of
//! volume files is no longer the original one (any byte changed, a volume
//! missing or given twice); the original volumes in any order are intact.
#![no_main]

use std::fs;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use parcel_format::header::{VolumeHeader, RECORD_LEN};
use parcel_format::limits::{BLOCK, VOLUME_PREFIX};
use parcel_format::verify::{verify_with, Depth};

/// Mutations per input.
const MAX_MUTATIONS: usize = 8;
/// Bytes one append adds at most.
const MAX_APPEND: usize = 4096;

#[derive(Arbitrary, Debug)]
enum Mutation {
    /// XOR a byte anywhere in volume `volume`.
    Flip { volume: u8, offset: u32, xor: u8 },
    /// XOR a byte in the first 1024 bytes (tar header block and header record).
    FlipPrefix { volume: u8, offset: u16, xor: u8 },
    /// XOR a byte in the index piece the volume holds, if any.
    FlipIndex { volume: u8, offset: u32, xor: u8 },
    /// Cut the volume to `keep` bytes (modulo its length plus one).
    Truncate { volume: u8, keep: u32 },
    /// Add bytes at the end.
    Append { volume: u8, bytes: Vec<u8> },
    /// Give the volume twice.
    Duplicate { volume: u8 },
    /// Leave the volume out.
    Drop { volume: u8 },
    /// Exchange two volumes' places in the list.
    Swap { a: u8, b: u8 },
}

fn pick(volumes: &[Vec<u8>], i: u8) -> Option<usize> {
    (!volumes.is_empty()).then(|| usize::from(i) % volumes.len())
}

fn flip(bytes: &mut [u8], offset: u64, xor: u8) {
    if !bytes.is_empty() {
        let at = (offset % bytes.len() as u64) as usize;
        bytes[at] ^= xor;
    }
}

/// Where the index piece lies in a volume, if its header record still verifies.
fn index_piece(bytes: &[u8]) -> Option<(usize, usize)> {
    let record: &[u8; RECORD_LEN] = bytes
        .get(BLOCK as usize..VOLUME_PREFIX as usize)?
        .try_into()
        .ok()?;
    let piece = VolumeHeader::decode_verified(record).ok()?.index_piece;
    let start = usize::try_from(piece.offset).ok()?;
    let len = usize::try_from(piece.len).ok()?;
    (len > 0 && start.checked_add(len)? <= bytes.len()).then_some((start, len))
}

fn apply(volumes: &mut Vec<Vec<u8>>, mutation: &Mutation) {
    match *mutation {
        Mutation::Flip {
            volume,
            offset,
            xor,
        } => {
            if let Some(v) = pick(volumes, volume) {
                flip(&mut volumes[v], offset.into(), xor);
            }
        }
        Mutation::FlipPrefix {
            volume,
            offset,
            xor,
        } => {
            if let Some(v) = pick(volumes, volume) {
                let bytes = &mut volumes[v];
                let end = bytes.len().min(VOLUME_PREFIX as usize);
                flip(&mut bytes[..end], offset.into(), xor);
            }
        }
        Mutation::FlipIndex {
            volume,
            offset,
            xor,
        } => {
            if let Some(v) = pick(volumes, volume) {
                if let Some((start, len)) = index_piece(&volumes[v]) {
                    flip(&mut volumes[v][start..start + len], offset.into(), xor);
                }
            }
        }
        Mutation::Truncate { volume, keep } => {
            if let Some(v) = pick(volumes, volume) {
                let len = volumes[v].len();
                volumes[v].truncate(keep as usize % (len + 1));
            }
        }
        Mutation::Append { volume, ref bytes } => {
            if let Some(v) = pick(volumes, volume) {
                volumes[v].extend_from_slice(&bytes[..bytes.len().min(MAX_APPEND)]);
            }
        }
        Mutation::Duplicate { volume } => {
            if let Some(v) = pick(volumes, volume) {
                let copy = volumes[v].clone();
                volumes.push(copy);
            }
        }
        Mutation::Drop { volume } => {
            if let Some(v) = pick(volumes, volume) {
                volumes.remove(v);
            }
        }
        Mutation::Swap { a, b } => {
            if let (Some(a), Some(b)) = (pick(volumes, a), pick(volumes, b)) {
                volumes.swap(a, b);
            }
        }
    }
}

/// Applies `mutations` to `seed`'s volumes and checks the property with
/// `identity` (and, for an encrypted seed, the media check without it too).
fn check(
    seed: &parcel_fuzz::SeedParcel,
    identity: Option<&parcel_format::encrypt::Identity>,
    mutations: &[Mutation],
) {
    let mut volumes = seed.volumes.clone();
    for mutation in mutations.iter().take(MAX_MUTATIONS) {
        apply(&mut volumes, mutation);
    }

    let tmp = parcel_fuzz::scratch();
    let paths: Vec<_> = volumes
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = tmp.path().join(format!("volume-{i}.tar"));
            fs::write(&path, bytes).expect("scratch volume writes");
            path
        })
        .collect();
    let trust = parcel_fuzz::trusted();
    let report = verify_with(&paths, trust, identity, Depth::Content, &mut |_, _| {});
    let media = verify_with(&paths, trust, identity, Depth::Media, &mut |_, _| {});
    let keyless = identity.map(|_| verify_with(&paths, trust, None, Depth::Media, &mut |_, _| {}));

    let mut original = seed.volumes.clone();
    original.sort();
    let mut given = volumes;
    given.sort();
    if given == original {
        assert!(
            report.is_ok() && media.is_ok(),
            "the intact volumes, reordered, were refused: {:?} / media: {:?}",
            report.problems,
            media.problems
        );
        if let Some(keyless) = &keyless {
            assert!(
                keyless.is_ok() && keyless.media_only,
                "the intact encrypted volumes failed the media check without a key: {:?}",
                keyless.problems
            );
        }
    } else {
        assert!(
            !report.is_ok(),
            "damaged or incomplete volumes verified as intact (after {mutations:?})"
        );
        assert!(
            !media.is_ok(),
            "damaged or incomplete volumes passed the media check (after {mutations:?})"
        );
        assert!(report.class().is_some());
        if let Some(keyless) = &keyless {
            assert!(
                !keyless.is_ok(),
                "damaged or incomplete encrypted volumes passed the media check without a key (after {mutations:?})"
            );
        }
    }
}

fuzz_target!(|mutations: Vec<Mutation>| {
    check(parcel_fuzz::seed_parcel(), None, &mutations);
    check(
        parcel_fuzz::encrypted::seed_parcel(),
        Some(parcel_fuzz::encrypted::identity()),
        &mutations,
    );
});
