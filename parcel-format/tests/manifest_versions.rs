//! The manifest's encoding per format version (FORMAT.md §10, §11.1): version
//! 1 has no base, version 2 a base, version 3 an optional base.

use parcel_format::manifest::{Base, BaseChunk, ChunkParams, Manifest};
use parcel_format::ParcelId;

fn manifest(format_version: u16, base: Option<Base>) -> Manifest {
    Manifest {
        format_version,
        parcel_id: ParcelId([7; 16]),
        source_site: "CEN".into(),
        origin_site: "CEN".into(),
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 2,
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
        base,
    }
}

fn base() -> Base {
    Base {
        package_version: 1,
        tree_digest: [3; 32],
        whole: Vec::new(),
        files: vec!["bin/tool".into()],
        chunks: vec![BaseChunk {
            sha256: [4; 32],
            len: 100,
            file: 0,
            offset: 0,
        }],
    }
}

fn round_trip(m: &Manifest) -> (Manifest, u64) {
    let (stored, raw_len) = m.encode(3).expect("encodes");
    (
        Manifest::decode(&stored, raw_len).expect("decodes"),
        raw_len,
    )
}

#[test]
fn version_3_carries_an_optional_base_in_one_more_byte() {
    let v1 = round_trip(&manifest(1, None));
    let v3_full = round_trip(&manifest(3, None));
    assert_eq!(v3_full.0, manifest(3, None));
    assert_eq!(v3_full.1, v1.1 + 1, "None is the single byte 00");

    let v2 = round_trip(&manifest(2, Some(base())));
    let v3_delta = round_trip(&manifest(3, Some(base())));
    assert_eq!(v3_delta.0, manifest(3, Some(base())));
    assert_eq!(v3_delta.1, v2.1 + 1, "Some is 01 then the base");
}

#[test]
fn a_base_in_a_version_1_manifest_is_trailing_bytes() {
    let v2 = manifest(2, Some(base()));
    let (stored, raw_len) = v2.encode(3).expect("encodes");
    // The same bytes, but announcing version 1: the base is not expected.
    let mut raw = parcel_format::pack::decompress_exact(&stored, raw_len as usize).expect("raw");
    assert_eq!(raw[0], 2);
    raw[0] = 1;
    let restored = zstd::bulk::compress(&raw, 3).expect("compress");
    let err = Manifest::decode(&restored, raw_len).expect_err("refused");
    assert!(err.to_string().contains("after the manifest"), "{err}");
}
