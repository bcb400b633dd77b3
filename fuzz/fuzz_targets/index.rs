//! The index (manifest): decoding and validation (FORMAT.md §5, §7.3).
//!
//! Two ways in, both on every input:
//! * stored: the first 4 bytes (little-endian) are the declared raw length,
//!   the rest the stored zstd frame, as `Parcel::open` hands them over once
//!   their hash matched;
//! * postcard: the whole input is taken as the decoded manifest and
//!   compressed here, so the fuzzer explores postcard decoding rather than
//!   zstd framing.
//!
//! A decoded manifest is validated against headers that agree with it, so the
//! validation code is reached too.
#![no_main]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use parcel_format::header::{IndexPiece, VolumeHeader};
use parcel_format::limits::MAX_INDEX_RAW;
use parcel_format::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Some((len, stored)) = data.split_first_chunk::<4>() {
        // Over the cap is one value: it only reaches the limit check.
        let raw_len = u64::from(u32::from_le_bytes(*len)).min(MAX_INDEX_RAW + 1);
        if let Ok(manifest) = Manifest::decode(stored, raw_len) {
            check(&manifest);
        }
    }
    // One compressor for the process: a fresh zstd context per input would
    // cost more than the decoding under test. (A static, not a thread-local:
    // LeakSanitizer reports a thread-local's destructor registration.)
    static COMPRESSOR: OnceLock<Mutex<zstd::bulk::Compressor<'static>>> = OnceLock::new();
    let stored = COMPRESSOR
        .get_or_init(|| Mutex::new(zstd::bulk::Compressor::new(1).expect("zstd compressor")))
        .lock()
        .expect("compressor lock")
        .compress(data)
        .expect("zstd compresses");
    if let Ok(manifest) = Manifest::decode(&stored, data.len() as u64) {
        check(&manifest);
    }
});

fn check(manifest: &Manifest) {
    let header = VolumeHeader {
        version: manifest.format_version,
        flags: 0,
        volume: 1,
        volume_count: manifest.volume_count,
        parcel_id: manifest.parcel_id,
        created: manifest.created,
        source_site: manifest.source_site.clone(),
        signer: [0; 32],
        body_len: 1 << 30,
        body_sha256: [0; 32],
        index_stored_len: 0,
        index_raw_len: 0,
        index_sha256: [0; 32],
        index_piece: IndexPiece::default(),
        keys_len: 0,
        keys_sha256: [0; 32],
        parity: None,
    };
    let body_lens: HashMap<u32, u64> = (1..=manifest.volume_count.min(16))
        .map(|v| (v, 1 << 30))
        .collect();
    let _ = manifest.validate(&header, &body_lens);
    let _ = manifest.tree_digest();
    let _ = manifest.content_bytes();
}
