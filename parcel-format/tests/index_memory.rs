//! An index that is small on the medium but huge in memory is refused with a
//! limit failure while it is being decoded, not after (FORMAT.md §8.1).

use parcel_format::manifest::{ChunkParams, Manifest};
use parcel_format::{FailureClass, ParcelId};

fn empty_manifest() -> Manifest {
    Manifest {
        format_version: 1,
        parcel_id: ParcelId([7; 16]),
        source_site: "CEN".into(),
        origin_site: "CEN".into(),
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 1,
        created: 1_700_000_000,
        comment: String::new(),
        volume_count: 1,
        compression_level: 3,
        chunking: ChunkParams {
            min: 16384,
            avg: 65536,
            max: 262_144,
        },
        packs: Vec::new(),
        chunks: Vec::new(),
        entries: Vec::new(),
        base: None,
    }
}

/// The encoding of `empty_manifest()` with `count` three-byte directory
/// entries (empty path, mtime 0, kind Directory) in place of none.
fn with_tiny_entries(count: u64) -> Vec<u8> {
    let mut raw = postcard::to_stdvec(&empty_manifest()).unwrap();
    assert_eq!(raw.pop(), Some(0), "the entry count is the last byte");
    let mut n = count;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            raw.push(byte);
            break;
        }
        raw.push(byte | 0x80);
    }
    raw.resize(raw.len() + 3 * count as usize, 0);
    raw
}

#[test]
fn a_few_bytes_per_entry_cannot_make_the_reader_allocate_gigabytes() {
    // 6 million entries in 18 MB of index (a few KB compressed) would take
    // over 600 MB as `Entry` values; the decoder stops at its budget.
    let raw = with_tiny_entries(6_000_000);
    let stored = zstd::bulk::compress(&raw, 3).unwrap();
    assert!(stored.len() < 64 * 1024, "{} bytes stored", stored.len());
    let problem = Manifest::decode(&stored, raw.len() as u64).unwrap_err();
    assert_eq!(problem.class(), FailureClass::Limit, "{problem}");
    assert!(problem.to_string().contains("memory"), "{problem}");
}

#[test]
fn an_index_within_the_budget_still_decodes() {
    let raw = with_tiny_entries(1000);
    let stored = zstd::bulk::compress(&raw, 3).unwrap();
    let manifest = Manifest::decode(&stored, raw.len() as u64).unwrap();
    assert_eq!(manifest.entries.len(), 1000);
}

#[test]
fn a_string_longer_than_the_decoder_reads_is_an_index_failure() {
    // The manifest is decoded as it is decompressed, each string through a
    // buffer of MAX_INDEX_STRING bytes (FORMAT.md §7.3 step 7).
    let limit = parcel_format::limits::MAX_INDEX_STRING;
    let mut fits = empty_manifest();
    fits.comment = "c".repeat(limit);
    let (stored, raw_len) = fits.encode(3).unwrap();
    let decoded = Manifest::decode(&stored, raw_len).unwrap();
    assert_eq!(decoded.comment.len(), limit);

    let mut long = empty_manifest();
    long.comment = "c".repeat(limit + 1);
    let (stored, raw_len) = long.encode(3).unwrap();
    let problem = Manifest::decode(&stored, raw_len).unwrap_err();
    assert_eq!(problem.class(), FailureClass::Index, "{problem}");
}

#[test]
fn a_frame_longer_or_shorter_than_declared_is_an_index_failure() {
    let (stored, raw_len) = empty_manifest().encode(3).unwrap();
    for declared in [raw_len - 1, raw_len + 1] {
        let problem = Manifest::decode(&stored, declared).unwrap_err();
        assert_eq!(problem.class(), FailureClass::Index, "{problem}");
        assert!(problem.to_string().contains("decompress"), "{problem}");
    }
}

#[test]
fn a_second_frame_or_a_cut_frame_is_an_index_failure() {
    let (stored, raw_len) = empty_manifest().encode(3).unwrap();
    let mut two = stored.clone();
    two.extend_from_slice(&stored);
    let mut trailing = stored.clone();
    trailing.push(0);
    let cut = &stored[..stored.len() - 2];
    for (what, bytes) in [
        ("two frames", &two[..]),
        ("a byte after the frame", &trailing[..]),
        ("a cut frame", cut),
    ] {
        let problem = Manifest::decode(bytes, raw_len).unwrap_err();
        assert_eq!(problem.class(), FailureClass::Index, "{what}: {problem}");
    }
    // Read through any reader, the same rules hold.
    let problem = Manifest::decode_from(&two[..], raw_len).unwrap_err();
    assert_eq!(problem.class(), FailureClass::Index, "{problem}");
    assert!(Manifest::decode_from(&stored[..], raw_len).is_ok());
}
