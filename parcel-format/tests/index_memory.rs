//! An index that is small on the medium but huge in memory is refused with a
//! limit failure while it is being decoded, not after (FORMAT.md §8.1); and
//! the window a reader needs for the index is what §5.3 says.

use parcel_format::limits::{MAX_ENTRIES, MAX_INDEX_MEMORY};
use parcel_format::manifest::{ChunkParams, Entry, Manifest};
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
fn a_writer_counts_exactly_the_memory_a_reader_allows_to_decode_the_index() {
    // `Manifest::decode_memory` is what the writer checks against
    // MAX_INDEX_MEMORY (FORMAT.md §8): the largest file table within it
    // decodes, one entry more is refused by the reader's budget.
    let per_entry = std::mem::size_of::<Entry>() as u64;
    let fixed = empty_manifest().decode_memory();
    let most = (MAX_INDEX_MEMORY as u64 - fixed) / per_entry;
    assert!(
        most < MAX_ENTRIES as u64,
        "the budget, not the count, binds"
    );

    let raw = with_tiny_entries(most);
    let stored = zstd::bulk::compress(&raw, 3).unwrap();
    let manifest = Manifest::decode(&stored, raw.len() as u64).unwrap();
    assert_eq!(manifest.entries.len() as u64, most);
    assert_eq!(manifest.decode_memory(), fixed + most * per_entry);
    assert!(manifest.decode_memory() <= MAX_INDEX_MEMORY as u64);
    drop(manifest);

    let raw = with_tiny_entries(most + 1);
    let stored = zstd::bulk::compress(&raw, 3).unwrap();
    let problem = Manifest::decode(&stored, raw.len() as u64).unwrap_err();
    assert_eq!(problem.class(), FailureClass::Limit, "{problem}");
    assert!(fixed + (most + 1) * per_entry > MAX_INDEX_MEMORY as u64);
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

/// Decodes a stored index with the streaming decoder limited to a window of
/// 2^`window_log` bytes; false when the frame needs a larger one.
fn decodes_within_window(stored: &[u8], window_log: u32) -> bool {
    let mut decoder = zstd::stream::read::Decoder::new(stored).unwrap();
    decoder.window_log_max(window_log).unwrap();
    std::io::copy(&mut decoder, &mut std::io::sink()).is_ok()
}

#[test]
fn an_index_written_at_levels_3_to_8_needs_at_most_a_1_mib_window_to_read() {
    // About 2.3 MB encoded: larger than the default windows of levels 3 and 9.
    let mut manifest = empty_manifest();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    manifest.chunks = (0..60_000u32)
        .map(|i| {
            let mut sha256 = [0u8; 32];
            for byte in sha256.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *byte = (state >> 56) as u8;
            }
            parcel_format::manifest::ChunkRecord {
                sha256,
                len: 65_536,
                pack: i / 64,
                offset: (i % 64) * 65_536,
            }
        })
        .collect();
    for level in [3, 8] {
        let (stored, raw_len) = manifest.encode(level).unwrap();
        assert!(raw_len > 2 << 20, "{raw_len}");
        assert!(decodes_within_window(&stored, 20), "level {level}");
        assert!(Manifest::decode(&stored, raw_len).is_ok());
    }
    // From level 9 the index keeps zstd's larger default window.
    let (stored, raw_len) = manifest.encode(9).unwrap();
    assert!(!decodes_within_window(&stored, 20));
    assert!(decodes_within_window(&stored, 23));
    assert!(Manifest::decode(&stored, raw_len).is_ok());
}
