//! Delta parcels (FORMAT.md §11): only the chunks the base lacks travel; the
//! destination rebuilds the rest from its copy of the base, checking each.

use std::fs;
use std::path::{Path, PathBuf};

use parcel_format::delta::BaseIndex;
use parcel_format::manifest::EntryKind;
use parcel_format::read::Parcel;
use parcel_format::sign::TrustedKeys;
use parcel_format::testkit;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{
    scan, tree_digest_of_dir, write_delta_parcel, write_parcel, ParcelInfo, WriteOptions,
    WriteSummary,
};
use parcel_format::{FailureClass, ParcelId, Problem};

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

fn trust() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add("CEN", key().verifying_key());
    t
}

fn info(version: u64) -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId([version as u8; 16]),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "TOOLS".into(),
        package_version: version,
        created: 1_700_000_000,
        comment: String::new(),
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Version 1: a large binary, a text file and a few small files.
fn version_1(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("doc")).unwrap();
    fs::write(root.join("bin/tool"), noise(1, 3_000_000)).unwrap();
    let text: String = (0..40_000)
        .map(|i| format!("line {i} of the manual\n"))
        .collect();
    fs::write(root.join("doc/manual.txt"), text).unwrap();
    for i in 0..5 {
        fs::write(root.join(format!("doc/note{i}.txt")), noise(10 + i, 20_000)).unwrap();
    }
}

/// Version 2: a region rewritten inside the binary, a few lines edited in
/// the text, one file replaced, one removed, one added.
fn version_2(root: &Path) {
    version_1(root);
    let mut tool = fs::read(root.join("bin/tool")).unwrap();
    tool[1_500_000..1_520_000].copy_from_slice(&noise(99, 20_000));
    fs::write(root.join("bin/tool"), tool).unwrap();
    let text = fs::read_to_string(root.join("doc/manual.txt")).unwrap();
    let text = text
        .replace("line 100 of", "line 100 (revised) of")
        .replace("line 30000 of", "line 30000 (revised) of");
    fs::write(root.join("doc/manual.txt"), text).unwrap();
    fs::write(root.join("doc/note1.txt"), noise(77, 20_000)).unwrap();
    fs::remove_file(root.join("doc/note2.txt")).unwrap();
    fs::write(root.join("doc/new.txt"), b"added in version 2\n").unwrap();
}

fn options() -> WriteOptions {
    WriteOptions {
        volume_size: 64 << 20,
        ..WriteOptions::default()
    }
}

fn sink(out: &Path) -> DirSink {
    fs::create_dir_all(out).unwrap();
    DirSink::new(
        vec![OutputDir {
            dir: out.to_owned(),
            capacity: None,
        }],
        "TOOLS",
        options().volume_size,
    )
}

fn paths(summary: &WriteSummary) -> Vec<PathBuf> {
    summary.volumes.iter().map(|(p, _)| p.clone()).collect()
}

struct Pair {
    _tmp: tempfile::TempDir,
    v1_tree: PathBuf,
    v2_tree: PathBuf,
    full: WriteSummary,
    delta: WriteSummary,
    full_v2_bytes: u64,
}

fn pair() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let v1_tree = tmp.path().join("v1");
    let v2_tree = tmp.path().join("v2");
    version_1(&v1_tree);
    version_2(&v2_tree);
    let full = write_parcel(
        scan(&v1_tree).unwrap(),
        &info(1),
        &key(),
        &options(),
        &mut sink(&tmp.path().join("out1")),
        &mut |_| {},
    )
    .unwrap();
    let base = BaseIndex::from_manifest(&full.manifest);
    let delta = write_delta_parcel(
        scan(&v2_tree).unwrap(),
        &info(2),
        &base,
        &key(),
        &options(),
        &mut sink(&tmp.path().join("out2")),
        &mut |_| {},
    )
    .unwrap();
    let full_v2 = write_parcel(
        scan(&v2_tree).unwrap(),
        &info(3),
        &key(),
        &options(),
        &mut sink(&tmp.path().join("out3")),
        &mut |_| {},
    )
    .unwrap();
    Pair {
        full_v2_bytes: full_v2.volumes.iter().map(|(_, n)| n).sum(),
        _tmp: tmp,
        v1_tree,
        v2_tree,
        full,
        delta,
    }
}

/// Opens the parcel of `volumes` and extracts it over `p`'s v1 tree into a
/// new directory: the extraction must fail, and this is its problem.
fn extract_over_v1_fails(p: &Pair, volumes: &[PathBuf]) -> Problem {
    let parcel = Parcel::open(volumes, &trust()).unwrap();
    let dest = p._tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    parcel
        .extract_with_base(&dest, Some(&p.v1_tree), &mut |_| {})
        .unwrap_err()
}

#[test]
fn delta_parcel_carries_only_what_the_base_lacks_and_rebuilds_the_exact_tree() {
    let p = pair();
    let delta_bytes: u64 = p.delta.volumes.iter().map(|(_, n)| n).sum();
    assert!(
        delta_bytes * 10 < p.full_v2_bytes,
        "delta {delta_bytes} bytes, full {}",
        p.full_v2_bytes
    );
    assert_eq!(p.delta.manifest.format_version, 2);
    assert_eq!(p.full.manifest.format_version, 1);

    let parcel = Parcel::open(&paths(&p.delta), &trust()).unwrap();
    let base = parcel.manifest().base.as_ref().unwrap();
    assert_eq!(base.package_version, 1);
    assert_eq!(base.tree_digest, p.full.manifest.tree_digest());

    // Verifying needs no store: what the media carry is checked, the rest
    // waits for import.
    let report = parcel_format::verify::verify(&paths(&p.delta), &trust(), &mut |_, _| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.base_version, Some(1));

    let dest = p._tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    parcel
        .extract_with_base(&dest, Some(&p.v1_tree), &mut |_| {})
        .unwrap();
    assert_eq!(
        tree_digest_of_dir(&dest).unwrap(),
        tree_digest_of_dir(&p.v2_tree).unwrap()
    );
    assert_eq!(
        fs::read(dest.join("bin/tool")).unwrap(),
        fs::read(p.v2_tree.join("bin/tool")).unwrap()
    );
}

#[test]
fn delta_parcel_without_its_base_is_refused_before_writing() {
    let p = pair();
    let parcel = Parcel::open(&paths(&p.delta), &trust()).unwrap();
    let dest = p._tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let problem = parcel.extract(&dest, &mut |_| {}).unwrap_err();
    assert!(
        matches!(problem, Problem::BaseMissing { version: 1, .. }),
        "{problem}"
    );
    assert_eq!(problem.class(), FailureClass::Policy);
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
}

#[test]
fn delta_parcel_over_a_modified_base_is_refused_naming_the_file() {
    let p = pair();
    let mut tool = fs::read(p.v1_tree.join("bin/tool")).unwrap();
    tool[100] ^= 1;
    fs::write(p.v1_tree.join("bin/tool"), tool).unwrap();
    let problem = extract_over_v1_fails(&p, &paths(&p.delta));
    assert!(
        matches!(&problem, Problem::BaseModified { path, .. } if path.ends_with("bin/tool")),
        "{problem}"
    );
    assert_eq!(problem.class(), FailureClass::Policy);
}

#[test]
fn unchanged_files_travel_as_whole_base_files_and_are_checked_against_the_base() {
    let p = pair();
    let m = &p.delta.manifest;
    let base = m.base.as_ref().unwrap();
    let whole: Vec<&str> = base
        .whole
        .iter()
        .map(|&i| m.entries[i as usize].path.as_str())
        .collect();
    assert!(whole.contains(&"doc/note0.txt"), "{whole:?}");
    assert!(!whole.contains(&"bin/tool"), "{whole:?}");
    assert!(!whole.contains(&"doc/note1.txt"), "{whole:?}");

    fs::write(p.v1_tree.join("doc/note0.txt"), noise(5, 20_000)).unwrap();
    let problem = extract_over_v1_fails(&p, &paths(&p.delta));
    assert!(
        matches!(&problem, Problem::BaseModified { path, .. } if path.ends_with("doc/note0.txt")),
        "{problem}"
    );
}

#[test]
fn a_base_file_replaced_by_a_symlink_to_the_same_bytes_is_a_modified_base() {
    let p = pair();
    // doc/note0.txt travels whole; bin/tool's chunks are read from the base.
    for (path, what) in [("doc/note0.txt", "whole"), ("bin/tool", "chunks")] {
        let file = p.v1_tree.join(path);
        let elsewhere = p._tmp.path().join(format!("copy-{what}"));
        fs::rename(&file, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        let problem = extract_over_v1_fails(&p, &paths(&p.delta));
        let named = match &problem {
            Problem::BaseModified { path: at, what } => {
                at.ends_with(path) && what.contains("symbolic link")
            }
            Problem::BaseMissing { reason, .. } => {
                reason.contains(path) && reason.contains("symbolic link")
            }
            _ => false,
        };
        assert!(named, "{what}: {problem}");
        fs::remove_dir_all(p._tmp.path().join("dest")).unwrap();
        fs::remove_file(&file).unwrap();
        fs::rename(&elsewhere, &file).unwrap();
    }
}

#[test]
fn delta_on_a_delta_carries_only_the_new_change() {
    let p = pair();
    // v3 on v2 (itself a delta on v1): one more small edit.
    let v3_tree = p._tmp.path().join("v3");
    version_2(&v3_tree);
    fs::write(v3_tree.join("doc/new.txt"), b"changed again in version 3\n").unwrap();
    let base = BaseIndex::from_manifest(&p.delta.manifest);
    let delta3 = write_delta_parcel(
        scan(&v3_tree).unwrap(),
        &info(4),
        &base,
        &key(),
        &options(),
        &mut sink(&p._tmp.path().join("out4")),
        &mut |_| {},
    )
    .unwrap();
    let bytes: u64 = delta3.volumes.iter().map(|(_, n)| n).sum();
    assert!(
        bytes * 50 < p.full_v2_bytes,
        "delta on a delta: {bytes} bytes, full {}",
        p.full_v2_bytes
    );
    // Rebuilt over a copy of v2 made from v1 and the first delta.
    let v2_copy = p._tmp.path().join("v2-copy");
    fs::create_dir(&v2_copy).unwrap();
    Parcel::open(&paths(&p.delta), &trust())
        .unwrap()
        .extract_with_base(&v2_copy, Some(&p.v1_tree), &mut |_| {})
        .unwrap();
    let dest = p._tmp.path().join("v3-copy");
    fs::create_dir(&dest).unwrap();
    Parcel::open(&paths(&delta3), &trust())
        .unwrap()
        .extract_with_base(&dest, Some(&v2_copy), &mut |_| {})
        .unwrap();
    assert_eq!(
        tree_digest_of_dir(&dest).unwrap(),
        tree_digest_of_dir(&v3_tree).unwrap()
    );
}

#[test]
fn whole_base_files_declaring_absurd_sizes_are_verified_and_refused_without_overflow() {
    let p = pair();
    let mut manifest = p.delta.manifest.clone();
    let volumes = paths(&p.delta);
    let packs: Vec<Vec<u8>> = manifest
        .packs
        .iter()
        .map(|pack| {
            let bytes = fs::read(&volumes[pack.volume as usize - 1]).unwrap();
            let start = pack.offset as usize;
            bytes[start..start + pack.stored_len as usize].to_vec()
        })
        .collect();
    // A signer may declare any size for a file taken whole from the base:
    // the manifest's checks leave it to the base comparison at import.
    let whole = manifest.base.as_ref().unwrap().whole.clone();
    assert!(whole.len() >= 2, "{whole:?}");
    for &i in &whole {
        if let EntryKind::File { size, .. } = &mut manifest.entries[i as usize].kind {
            *size = u64::MAX - 1;
        }
    }
    // Nothing of a whole file is read from packs: its declared size does not
    // lift the cap on packs decoded again (it did, to u64::MAX).
    assert_eq!(
        manifest.content_bytes_in_packs(),
        p.delta.manifest.content_bytes_in_packs()
    );
    assert!(manifest.content_bytes_in_packs() < p.delta.manifest.content_bytes());
    manifest.parcel_id = ParcelId([42; 16]);
    let out = p._tmp.path().join("forged");
    let forged = testkit::write_raw(
        &mut manifest,
        &packs,
        &key(),
        options().volume_size,
        true,
        &mut sink(&out),
    )
    .unwrap();

    let mut totals = Vec::new();
    let report =
        parcel_format::verify::verify(&forged, &trust(), &mut |_, total| totals.push(total));
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(totals.last(), Some(&u64::MAX));

    let problem = extract_over_v1_fails(&p, &forged);
    assert!(
        matches!(&problem, Problem::BaseModified { .. }),
        "{problem}"
    );
}
