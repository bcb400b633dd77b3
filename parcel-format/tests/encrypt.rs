//! Encrypted parcels (FORMAT.md §12): the destination reads them, nobody else
//! can, anyone can check the media, and tampering with the keys entry, the
//! index or a pack is refused.

use std::fs;
use std::path::{Path, PathBuf};

use parcel_format::encrypt::{Encryption, Identity};
use parcel_format::read::{worst_class, Parcel};
use parcel_format::sign::TrustedKeys;
use parcel_format::verify::{verify_media, verify_with, Depth};
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{scan, tree_digest_of_dir, write_parcel, ParcelInfo, WriteOptions};
use parcel_format::{testkit, ChunkParams, FailureClass, ParcelId, Problem};

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn trust() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add("CEN", key().verifying_key());
    t
}

fn info(id: u8) -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId([id; 16]),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 3,
        created: 1_700_000_000,
        comment: "secret comment".into(),
    }
}

/// A package with a compressible text file, an incompressible file and a
/// distinctive name.
fn package(root: &Path) {
    fs::create_dir_all(root.join("classified-dir")).unwrap();
    fs::write(
        root.join("classified-dir/launch-codes.txt"),
        "the eagle lands at midnight\n".repeat(2000),
    )
    .unwrap();
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let noise: Vec<u8> = (0..120_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(root.join("noise.bin"), &noise).unwrap();
}

fn write(src: &Path, out: &Path, id: u8, identity: &Identity) -> Vec<PathBuf> {
    let encryption = Encryption::to_recipients(&[identity.to_public()]).unwrap();
    write_with(src, out, id, encryption)
}

fn write_with(src: &Path, out: &Path, id: u8, encryption: Encryption) -> Vec<PathBuf> {
    fs::create_dir_all(out).unwrap();
    let options = WriteOptions {
        volume_size: 64 * 1024,
        chunking: ChunkParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        },
        pack_target: 32 * 1024,
        threads: 1,
        encryption: Some(encryption),
        ..WriteOptions::default()
    };
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out.to_owned(),
            capacity: None,
        }],
        format!("P{id}"),
        options.volume_size,
    );
    let scan = scan(src).unwrap();
    let summary = write_parcel(scan, &info(id), &key(), &options, &mut sink, &mut |_| {}).unwrap();
    assert_eq!(summary.manifest.format_version, 3);
    summary.volumes.into_iter().map(|(p, _)| p).collect()
}

struct Setup {
    tmp: tempfile::TempDir,
    identity: Identity,
    volumes: Vec<PathBuf>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    package(&src);
    let identity = Identity::generate();
    let volumes = write(&src, &tmp.path().join("out"), 1, &identity);
    assert!(volumes.len() >= 2, "{volumes:?}");
    Setup {
        tmp,
        identity,
        volumes,
    }
}

fn extract(s: &Setup, identity: Option<&Identity>) -> Result<PathBuf, Vec<Problem>> {
    let parcel = Parcel::open_with(&s.volumes, &trust(), identity)?;
    let dest = s.tmp.path().join("dest");
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir(&dest).unwrap();
    parcel.extract(&dest, &mut |_| {}).map_err(|p| vec![p])?;
    Ok(dest)
}

fn class(problems: &[Problem]) -> Option<FailureClass> {
    worst_class(problems)
}

#[test]
fn destination_reads_an_encrypted_parcel_back_exactly() {
    let s = setup();
    let dest = extract(&s, Some(&s.identity)).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(
        tree_digest_of_dir(&dest).unwrap(),
        tree_digest_of_dir(&s.tmp.path().join("src")).unwrap()
    );
    let report = verify_with(
        &s.volumes,
        &trust(),
        Some(&s.identity),
        Depth::Content,
        &mut |_, _| {},
    );
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.encrypted && !report.media_only);
    assert!(report.content_bytes > 0);
}

#[test]
fn volumes_hold_no_file_name_no_content_and_no_comment() {
    let s = setup();
    for path in &s.volumes {
        let bytes = fs::read(path).unwrap();
        for needle in [
            &b"launch-codes"[..],
            b"classified-dir",
            b"noise.bin",
            b"the eagle lands",
            b"secret comment",
            b"CEN00012",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
        let noise = fs::read(s.tmp.path().join("src/noise.bin")).unwrap();
        let sample = &noise[50_000..50_032];
        assert!(!bytes.windows(32).any(|w| w == sample));
    }
}

#[test]
fn another_identity_or_none_is_a_policy_failure_and_media_still_verify() {
    let s = setup();
    let other = Identity::generate();
    for identity in [None, Some(&other)] {
        let problems = extract(&s, identity).unwrap_err();
        assert_eq!(class(&problems), Some(FailureClass::Policy), "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| matches!(p, Problem::CannotDecrypt { .. })));
        let report = verify_with(
            &s.volumes,
            &trust(),
            identity,
            Depth::Content,
            &mut |_, _| {},
        );
        assert_eq!(report.class(), Some(FailureClass::Policy));
        assert!(report.media_only && report.package.is_none());
    }
    let report = verify_media(&s.volumes, &trust(), &mut |_, _| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.media_only && report.encrypted);
}

#[test]
fn media_check_without_key_finds_a_flipped_byte() {
    let s = setup();
    let mut bytes = fs::read(&s.volumes[0]).unwrap();
    let at = bytes.len() - 3000;
    bytes[at] ^= 1;
    fs::write(&s.volumes[0], &bytes).unwrap();
    let report = verify_media(&s.volumes, &trust(), &mut |_, _| {});
    assert_eq!(
        report.class(),
        Some(FailureClass::Volume),
        "{:?}",
        report.problems
    );
}

/// Flips a byte of volume 1 at `offset` and re-signs its body hash, so only
/// deeper checks find it.
fn tamper(s: &Setup, offset: usize) {
    let path = &s.volumes[0];
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    fs::write(path, &bytes).unwrap();
    testkit::reseal_body(path, &key()).unwrap();
}

#[test]
fn tampered_keys_entry_in_every_volume_is_an_index_failure() {
    let s = setup();
    for path in &s.volumes {
        let mut bytes = fs::read(path).unwrap();
        bytes[1536 + 40] ^= 0x01;
        fs::write(path, &bytes).unwrap();
        testkit::reseal_body(path, &key()).unwrap();
    }
    let problems = extract(&s, Some(&s.identity)).unwrap_err();
    assert_eq!(class(&problems), Some(FailureClass::Index), "{problems:?}");
}

#[test]
fn one_intact_keys_entry_suffices() {
    let s = setup();
    tamper(&s, 1536 + 40);
    extract(&s, Some(&s.identity)).unwrap_or_else(|p| panic!("{p:?}"));
}

/// Two wrappings of different parcel keys to `identity` whose age files have
/// the same length.
fn same_length_pair(identity: &Identity) -> (Encryption, Encryption) {
    let mut by_len: std::collections::HashMap<usize, Encryption> = Default::default();
    for _ in 0..10_000 {
        let e = Encryption::to_recipients(&[identity.to_public()]).unwrap();
        if let Some(first) = by_len.remove(&e.keys_entry().len()) {
            return (first, e);
        }
        by_len.insert(e.keys_entry().len(), e);
    }
    panic!("no two age files of the same length in 10,000 wrappings");
}

#[test]
fn keys_entry_of_another_parcel_does_not_open_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    package(&src);
    let identity = Identity::generate();
    // age adds a "grease" stanza of random length: wrap two parcel keys
    // until two age files have the same length, so one can replace the other.
    let (mine, theirs) = same_length_pair(&identity);
    let s = Setup {
        volumes: write_with(&src, &tmp.path().join("out"), 1, mine),
        tmp,
        identity,
    };
    let other = write_with(&src, &s.tmp.path().join("other"), 2, theirs);
    let foreign = fs::read(&other[0]).unwrap();
    let foreign_header = testkit::read_header_unchecked(&other[0]).unwrap();
    let len = foreign_header.keys_len as usize;
    for path in &s.volumes {
        let mut bytes = fs::read(path).unwrap();
        let mine = testkit::read_header_unchecked(path).unwrap();
        assert_eq!(
            mine.keys_len as usize, len,
            "age files to one recipient have one length"
        );
        bytes[1536..1536 + len].copy_from_slice(&foreign[1536..1536 + len]);
        fs::write(path, &bytes).unwrap();
        testkit::reseal_body(path, &key()).unwrap();
        testkit::resign_header(path, &key(), |h| {
            h.keys_sha256 = foreign_header.keys_sha256;
        })
        .unwrap();
    }
    let problems = extract(&s, Some(&s.identity)).unwrap_err();
    assert_eq!(class(&problems), Some(FailureClass::Index), "{problems:?}");
}

#[test]
fn tampered_encrypted_pack_is_a_chunk_failure() {
    let s = setup();
    // The first pack of volume 1: after the header, the keys entry and the pack's tar header.
    let header = testkit::read_header_unchecked(&s.volumes[0]).unwrap();
    let pack = 1536 + (header.keys_len as usize).div_ceil(512) * 512 + 512;
    tamper(&s, pack + 10);
    let problems = extract(&s, Some(&s.identity)).unwrap_err();
    assert_eq!(class(&problems), Some(FailureClass::Chunk), "{problems:?}");
}

#[test]
fn header_without_the_flag_but_with_keys_fields_is_refused() {
    let s = setup();
    testkit::resign_header(&s.volumes[0], &key(), |h| h.flags = 0).unwrap();
    let report = verify_media(&s.volumes, &trust(), &mut |_, _| {});
    assert_eq!(
        report.class(),
        Some(FailureClass::Volume),
        "{:?}",
        report.problems
    );
}
