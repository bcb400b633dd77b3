//! Delta parcels (FORMAT.md §11) extracted over a base copy that may have
//! been changed: a good delta parcel and the base package it builds on, then
//! bytes flipped in the delta's volumes (as they arrive, or re-signed by the
//! trusted key as a compromised source would), bytes flipped in the base
//! copy's files, base files removed or cut, and `extract_with_base`.
//!
//! The properties: no panic, nothing written outside the extraction
//! directory; and unless the volumes were re-signed, an extraction that
//! succeeds gives exactly the new version's tree — a changed base or a
//! damaged delta is refused, never turned into other content.
#![no_main]

use std::fs;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use parcel_format::read::Parcel;

/// Mutations per input.
const MAX_MUTATIONS: usize = 8;

#[derive(Arbitrary, Debug)]
enum Mutation {
    /// XOR a byte of delta volume `volume` (modulo the count).
    FlipVolume { volume: u8, offset: u32, xor: u8 },
    /// XOR a byte of base file `file` (modulo the number of base files).
    FlipBase { file: u8, offset: u32, xor: u8 },
    /// Remove a base file.
    RemoveBase { file: u8 },
    /// Cut a base file to `keep` bytes (modulo its length plus one).
    CutBase { file: u8, keep: u32 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    mutations: Vec<Mutation>,
    /// Re-sign the volumes after flipping (a compromised trusted source).
    reseal: bool,
}

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

fn flip(bytes: &mut [u8], offset: u32, xor: u8) {
    if !bytes.is_empty() {
        let at = offset as usize % bytes.len();
        bytes[at] ^= xor;
    }
}

fuzz_target!(|input: Input| {
    let seed = parcel_fuzz::delta::seed();
    let mut volumes = seed.delta.volumes.clone();
    let mut base: Vec<(String, Option<Vec<u8>>)> = seed
        .base_files
        .iter()
        .map(|(path, bytes)| (path.clone(), Some(bytes.clone())))
        .collect();
    let mut volumes_changed = false;
    for mutation in input.mutations.iter().take(MAX_MUTATIONS) {
        match *mutation {
            Mutation::FlipVolume {
                volume,
                offset,
                xor,
            } => {
                if let Some(v) = pick(volumes.len(), volume) {
                    flip(&mut volumes[v], offset, xor);
                    volumes_changed |= xor != 0;
                }
            }
            Mutation::FlipBase { file, offset, xor } => {
                if let Some(f) = pick(base.len(), file) {
                    if let Some(bytes) = &mut base[f].1 {
                        flip(bytes, offset, xor);
                    }
                }
            }
            Mutation::RemoveBase { file } => {
                if let Some(f) = pick(base.len(), file) {
                    base[f].1 = None;
                }
            }
            Mutation::CutBase { file, keep } => {
                if let Some(f) = pick(base.len(), file) {
                    if let Some(bytes) = &mut base[f].1 {
                        let len = bytes.len();
                        bytes.truncate(keep as usize % (len + 1));
                    }
                }
            }
        }
    }

    let tmp = parcel_fuzz::scratch();
    let base_dir = tmp.path().join("base");
    for (path, bytes) in &base {
        let target = base_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).expect("scratch base directory");
        }
        if let Some(bytes) = bytes {
            fs::write(&target, bytes).expect("scratch base file writes");
        }
    }
    let media = tmp.path().join("media");
    fs::create_dir(&media).expect("scratch directory");
    let paths: Vec<_> = volumes
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = media.join(format!("delta-{i}.tar"));
            fs::write(&path, bytes).expect("scratch volume writes");
            path
        })
        .collect();
    if input.reseal {
        for path in &paths {
            let _ = parcel_fuzz::reseal_volume(path);
        }
    }

    let Ok(parcel) = Parcel::open(&paths, parcel_fuzz::trusted()) else {
        return;
    };
    let jail = parcel_fuzz::Jail::new(tmp.path());
    let extracted = parcel.extract_with_base(&jail.stage, Some(&base_dir), &mut |_| {});
    jail.check();
    if extracted.is_ok() && !(input.reseal && volumes_changed) {
        let tree =
            parcel_format::write::tree_digest_of_dir(&jail.stage).expect("extracted tree digests");
        assert_eq!(
            tree,
            seed.new_tree,
            "a delta extracted over a changed base or from damaged volumes gave another tree: {input:?}"
        );
    }
});
