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
//! validation code is reached too; and the head alone is decoded and
//! validated as the media check does (FORMAT.md §7.4).
#![no_main]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use parcel_format::header::{IndexPiece, VolumeHeader};
use parcel_format::limits::MAX_INDEX_RAW;
use parcel_format::manifest_head::ManifestHead;
use parcel_format::{Manifest, ParcelId, Problem};

fuzz_target!(|data: &[u8]| {
    if let Some((len, stored)) = data.split_first_chunk::<4>() {
        // Over the cap is one value: it only reaches the limit check.
        let raw_len = u64::from(u32::from_le_bytes(*len)).min(MAX_INDEX_RAW + 1);
        let whole = Manifest::decode(stored, raw_len);
        if let Ok(manifest) = &whole {
            check(manifest);
        }
        head(stored, raw_len, whole);
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
    let whole = Manifest::decode(&stored, data.len() as u64);
    if let Ok(manifest) = &whole {
        check(manifest);
    }
    head(&stored, data.len() as u64, whole);
});

fn check(manifest: &Manifest) {
    let header = header_for(
        manifest.format_version,
        manifest.volume_count,
        manifest.parcel_id,
        manifest.created,
        &manifest.source_site,
    );
    let body_lens: HashMap<u32, u64> = (1..=manifest.volume_count.min(16))
        .map(|v| (v, 1 << 30))
        .collect();
    let _ = manifest.validate(&header, &body_lens);
    let _ = manifest.tree_digest();
    let _ = manifest.content_bytes();
}

/// Volume headers that agree with a manifest's head.
fn header_for(
    version: u16,
    volume_count: u32,
    parcel_id: ParcelId,
    created: i64,
    source_site: &str,
) -> VolumeHeader {
    VolumeHeader {
        version,
        flags: 0,
        volume: 1,
        volume_count,
        parcel_id,
        created,
        source_site: source_site.to_owned(),
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
    }
}

/// The head alone, as the media check reads it, beside `whole`, the
/// manifest's decoding of the same bytes: a head that decodes is
/// validated (against headers that agree with it, so the checks past the
/// first are reached) and must be the front of the whole manifest, with
/// its base version, when that decodes too. A manifest that decodes has a
/// head that decodes; a version 2 or 3 index is read to its end for its
/// base (within the same memory budget), so its head decodes exactly when
/// the whole manifest does. When neither decodes, both are refused for the
/// same kind of fault (the memory budget is spent at the same element
/// either way).
fn head(stored: &[u8], raw_len: u64, whole: Result<Manifest, Problem>) {
    let head = ManifestHead::decode_from(stored, raw_len);
    match (&whole, &head) {
        (Ok(_), Ok(_)) => {}
        (Ok(_), Err(p)) => panic!("the manifest decodes, its head does not: {p}"),
        (Err(w), Err(h)) => assert_eq!(
            std::mem::discriminant(w),
            std::mem::discriminant(h),
            "refused otherwise whole ({w}) than by its head ({h})"
        ),
        (Err(p), Ok(h)) => assert!(
            h.format_version != 2 && h.format_version != 3,
            "a version {} index read to its end, which does not decode whole: {p}",
            h.format_version
        ),
    }
    let Ok(head) = head else {
        return;
    };
    let header = header_for(
        head.format_version,
        head.volume_count,
        head.parcel_id,
        head.created,
        &head.source_site,
    );
    let _ = head.validate(&header);
    if let Ok(manifest) = whole {
        assert_eq!(
            (
                &manifest.package_id,
                manifest.package_version,
                &manifest.destinations
            ),
            (&head.package_id, head.package_version, &head.destinations),
            "the head decodes otherwise than the manifest's front"
        );
        assert_eq!(
            manifest.base.as_ref().map(|b| b.package_version),
            head.base_version,
            "the head reads another base version than the manifest's"
        );
    }
}
