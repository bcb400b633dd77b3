//! Repair from parity (FORMAT.md §13): up to 8 mutations of a good parcel
//! with 50% repair data — volumes (data or parity) dropped, bytes flipped
//! anywhere or in a block table, volumes truncated, parity header fields
//! changed and re-signed by the trusted key — then `repair::repair`, and
//! `verify::verify_media` over what it hands on.
//!
//! The properties: no panic, no unbounded allocation; every volume repair
//! says it rebuilt is byte-identical to the original data volume of that
//! number (rebuilt blocks are only accepted when they hash to the signed
//! block table); and when repair reports no problem and rebuilt something,
//! every original data volume is among the files it hands on.
#![no_main]

use std::fs;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use parcel_format::header::{VolumeHeader, RECORD_LEN};
use parcel_format::limits::{BLOCK, VOLUME_PREFIX};
use parcel_format::repair::Repaired;

/// Mutations per input.
const MAX_MUTATIONS: usize = 8;

#[derive(Arbitrary, Debug)]
enum Mutation {
    /// Leave out data volume `volume` (modulo the count).
    DropData { volume: u8 },
    /// Leave out parity volume `volume`.
    DropParity { volume: u8 },
    /// XOR a byte of a data volume.
    FlipData { volume: u8, offset: u32, xor: u8 },
    /// XOR a byte of a parity volume.
    FlipParity { volume: u8, offset: u32, xor: u8 },
    /// XOR a byte of a parity volume's block table.
    FlipTable { volume: u8, offset: u32, xor: u8 },
    /// Cut a data volume to `keep` bytes (modulo its length).
    TruncateData { volume: u8, keep: u32 },
    /// Set one parity field of a parity volume's header and sign it again
    /// with the trusted key, as a compromised source would.
    ResignParity { volume: u8, field: u8, value: u64 },
}

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

fn flip(bytes: &mut [u8], offset: usize, xor: u8) {
    if !bytes.is_empty() {
        let at = offset % bytes.len();
        bytes[at] ^= xor.max(1);
    }
}

fn header(bytes: &[u8]) -> Option<VolumeHeader> {
    let record: &[u8; RECORD_LEN] = bytes
        .get(BLOCK as usize..VOLUME_PREFIX as usize)?
        .try_into()
        .ok()?;
    VolumeHeader::decode_verified(record).ok()
}

fn resign(bytes: &mut [u8], field: u8, value: u64) {
    let Some(mut h) = header(bytes) else {
        return;
    };
    let Some(p) = h.parity.as_mut() else {
        return;
    };
    let small = value as u32;
    match field % 10 {
        0 => p.block_size = small,
        1 => p.stripe_rows = small,
        2 => p.stripe_recovery = small,
        3 => p.parity_volume_count = small,
        4 => p.table_offset = value,
        5 => p.table_len = value,
        6 => p.recovery_offset = value,
        7 => p.recovery_count = value,
        8 => p.parity_volume = small,
        _ => h.volume_count = small,
    }
    let record = h.encode_signed(parcel_fuzz::fuzz_key());
    if let Some(slot) = bytes.get_mut(BLOCK as usize..VOLUME_PREFIX as usize) {
        slot.copy_from_slice(&record);
    }
}

fn apply(data: &mut Vec<Option<Vec<u8>>>, parity: &mut Vec<Option<Vec<u8>>>, m: &Mutation) {
    match *m {
        Mutation::DropData { volume } => {
            if let Some(v) = pick(data.len(), volume) {
                data[v] = None;
            }
        }
        Mutation::DropParity { volume } => {
            if let Some(v) = pick(parity.len(), volume) {
                parity[v] = None;
            }
        }
        Mutation::FlipData {
            volume,
            offset,
            xor,
        } => {
            if let Some(Some(bytes)) = pick(data.len(), volume).map(|v| &mut data[v]) {
                flip(bytes, offset as usize, xor);
            }
        }
        Mutation::FlipParity {
            volume,
            offset,
            xor,
        } => {
            if let Some(Some(bytes)) = pick(parity.len(), volume).map(|v| &mut parity[v]) {
                flip(bytes, offset as usize, xor);
            }
        }
        Mutation::FlipTable {
            volume,
            offset,
            xor,
        } => {
            if let Some(Some(bytes)) = pick(parity.len(), volume).map(|v| &mut parity[v]) {
                let Some(p) = header(bytes).and_then(|h| h.parity) else {
                    return;
                };
                let len = p.table_len.max(1);
                let at = p.table_offset.saturating_add(u64::from(offset) % len);
                if let Some(b) = usize::try_from(at).ok().and_then(|at| bytes.get_mut(at)) {
                    *b ^= xor.max(1);
                }
            }
        }
        Mutation::TruncateData { volume, keep } => {
            if let Some(Some(bytes)) = pick(data.len(), volume).map(|v| &mut data[v]) {
                let keep = keep as usize % (bytes.len() + 1);
                bytes.truncate(keep);
            }
        }
        Mutation::ResignParity {
            volume,
            field,
            value,
        } => {
            if let Some(Some(bytes)) = pick(parity.len(), volume).map(|v| &mut parity[v]) {
                resign(bytes, field, value);
            }
        }
    }
}

fuzz_target!(|mutations: Vec<Mutation>| {
    let seed = parcel_fuzz::seed_parity_parcel();
    let mut data: Vec<Option<Vec<u8>>> = seed.data.iter().cloned().map(Some).collect();
    let mut parity: Vec<Option<Vec<u8>>> = seed.parity.iter().cloned().map(Some).collect();
    for m in mutations.iter().take(MAX_MUTATIONS) {
        apply(&mut data, &mut parity, m);
    }

    let tmp = parcel_fuzz::scratch();
    let mut paths = Vec::new();
    for (kind, list) in [("data", &data), ("parity", &parity)] {
        for (i, bytes) in list.iter().enumerate() {
            if let Some(bytes) = bytes {
                let path = tmp.path().join(format!("{kind}-{i}.tar"));
                fs::write(&path, bytes).expect("scratch volume writes");
                paths.push(path);
            }
        }
    }
    let scratch = tmp.path().join("scratch");
    let repair = parcel_format::repair::repair(&paths, parcel_fuzz::trusted(), &scratch);
    for r in &repair.repaired {
        let path = match r {
            Repaired::Rebuilt { path, .. } | Repaired::Blocks { path, .. } => path,
        };
        let rebuilt = fs::read(path).expect("rebuilt volume reads");
        let original = seed.data.get(r.volume() as usize - 1);
        assert_eq!(
            Some(&rebuilt),
            original,
            "volume {} rebuilt differently (after {mutations:?})",
            r.volume()
        );
    }
    if !repair.repaired.is_empty() && repair.problems.is_empty() {
        let handed: Vec<Vec<u8>> = repair
            .paths
            .iter()
            .map(|p| fs::read(p).expect("handed volume reads"))
            .collect();
        for (i, original) in seed.data.iter().enumerate() {
            assert!(
                handed.contains(original),
                "after a repair, volume {} is not among the volumes handed on (after {mutations:?})",
                i + 1
            );
        }
    }
    let _ =
        parcel_format::verify::verify_media(&repair.paths, parcel_fuzz::trusted(), &mut |_, _| {});
});
