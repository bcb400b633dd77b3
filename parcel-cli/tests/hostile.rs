//! Hostile parcels at the destination: damaged, truncated, mixed and
//! over-the-cap volumes, and parcels a trusted site signed correctly but that
//! no honest writer makes (unsafe paths, overlapping references, lying zstd
//! frames, reused parcel ids), since a trusted site can be compromised or
//! buggy. Each is refused with its exit code and a message naming the fault,
//! and leaves the store, the catalog's package list and everything outside the
//! importing home exactly as they were. The refusals courier.rs already
//! covers (untrusted or revoked key, wrong destination, rollback, conflicting
//! content, forged or unknown receipt) are not repeated here.

#[allow(dead_code)] // Each test file uses a part of the fixtures.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use parcel_format::header::{VolumeHeader, RECORD_LEN};
use parcel_format::limits::{
    BLOCK, MAX_CHUNK, MAX_COMMENT, MAX_DEPTH, MAX_INDEX_RAW, MAX_INDEX_STORED, MAX_PACK_RAW,
    MAX_PATH, MAX_VOLUMES,
};
use parcel_format::manifest::{ChunkRecord, PackRecord};
use parcel_format::read::Parcel;
use parcel_format::receipt::Receipt;
use parcel_format::sign::TrustedKeys;
use parcel_format::write::{tree_digest_of_dir, WriteOptions};
use parcel_format::{
    testkit, verify, ChunkParams, Entry, EntryKind, FailureClass, Manifest, ParcelId,
};

use common::forge::{
    flip_byte, info, raw_frame, resign_all, rle_frame, secret_key, small_options, tar_entries,
    write_small_package, write_tiny_package, Honest,
};
use common::{arg, package_view, snapshot, two_sites, Node, Site, World};

// ---------------------------------------------------------------------------
// The scene: CEN sends to BXL, whose store already holds a package.
// ---------------------------------------------------------------------------

/// Two sites that trust each other; BXL's store holds `tools` v1 (so that
/// "unchanged" means something), and `base` is an honest `tools` v2 from CEN
/// to BXL, one volume, not imported, to forge hostile parcels from.
struct Scene {
    world: World,
    cen: Site,
    bxl: Site,
    /// CEN's secret key: what a compromised CEN signs with.
    key: SigningKey,
    package: PathBuf,
    base: Honest,
}

fn scene() -> Scene {
    let (world, cen, bxl) = two_sites();
    let key = secret_key(&cen);
    let package = world.dir("tools");
    write_small_package(&package, 1);
    let v1 = world.dir("v1");
    Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 1),
        &key,
        &small_options(),
        &v1,
    );
    bxl.import(&[&v1]).success();
    let base = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 2),
        &key,
        &small_options(),
        &world.dir("base"),
    );
    assert_eq!(base.volumes.len(), 1, "the base parcel is one volume");
    assert!(
        base.manifest.packs.len() >= 3,
        "the base parcel has several packs"
    );
    Scene {
        world,
        cen,
        bxl,
        key,
        package,
        base,
    }
}

/// What an import at BXL must leave as it was, but for the catalog: the
/// package store, staging, and everything outside BXL's home.
#[derive(Debug, PartialEq)]
struct Files {
    packages: BTreeMap<PathBuf, Node>,
    staging: BTreeMap<PathBuf, Node>,
    outside: BTreeMap<PathBuf, Node>,
}

impl Scene {
    fn files(&self) -> Files {
        Files {
            packages: snapshot(&self.bxl.home.join("packages")),
            staging: snapshot(&self.bxl.home.join("staging")),
            outside: self.bxl.outside_home(),
        }
    }

    /// A parcel forged from the base by `change`, signed with CEN's key, on a new medium.
    fn forge(&self, change: impl FnOnce(&mut Manifest, &mut Vec<Vec<u8>>)) -> Vec<PathBuf> {
        self.base.forge(&self.key, &self.world.medium(), change)
    }

    /// A copy of the base parcel's volumes on a new medium, to damage.
    fn copy_of_base(&self) -> Vec<PathBuf> {
        copy_volumes(&self.base.volumes, &self.world.medium())
    }

    /// An honest multi-volume parcel of `tools` v`version` from the package
    /// of `seed` (about 220 KB over four or more volumes), on a new medium.
    fn multi_volume(&self, seed: u64, version: u64, parcel_id: Option<ParcelId>) -> Honest {
        let package = self.world.package(&format!("big-{seed}-{version}"), seed);
        let mut info = info("CEN", "BXL", "tools", version);
        if let Some(id) = parcel_id {
            info.parcel_id = id;
        }
        let options = WriteOptions {
            volume_size: 64 * 1024,
            threads: 1,
            ..WriteOptions::default()
        };
        let honest = Honest::write(&package, &info, &self.key, &options, &self.world.medium());
        assert!(honest.volumes.len() >= 4, "{:?}", honest.volumes);
        honest
    }

    /// Runs `parcel import` at BXL over `paths`, expecting exit `code` and a
    /// message holding each of `needles`, and checks that the store, the
    /// catalog's package list and everything outside BXL's home are exactly
    /// as they were. Returns the message.
    fn import_refused(&self, paths: &[PathBuf], code: i32, needles: &[&str]) -> String {
        let catalog = self.bxl.store_state().catalog;
        let files = self.files();
        let stderr = expect_exit(&self.bxl, "import", paths, code, needles);
        assert_eq!(self.files(), files, "import changed files: {stderr}");
        assert_eq!(self.bxl.store_state().catalog, catalog, "{stderr}");
        stderr
    }

    /// Runs `parcel verify` at BXL over `paths`, expecting exit 3 and a
    /// message holding each of `needles`; it must write nothing.
    fn verify_refused(&self, paths: &[PathBuf], needles: &[&str]) -> String {
        let files = self.files();
        let stderr = expect_exit(&self.bxl, "verify", paths, 3, needles);
        assert_eq!(self.files(), files, "verify changed files: {stderr}");
        stderr
    }
}

/// Runs `parcel <command> <paths>` at `site`; checks the exit code and that
/// the message names each of `needles`. Returns stderr.
fn expect_exit(
    site: &Site,
    command: &str,
    paths: &[PathBuf],
    code: i32,
    needles: &[&str],
) -> String {
    let output = site
        .cmd()
        .arg(command)
        .args(paths)
        .output()
        .expect("run parcel");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "parcel {command} {paths:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "parcel {command}: the message does not name {needle:?}:\n{stderr}"
        );
    }
    stderr
}

/// Copies volume files into `dir`, keeping their names.
fn copy_volumes(volumes: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    volumes
        .iter()
        .map(|v| {
            let to = dir.join(file_name(v));
            fs::copy(v, &to).expect("copy volume");
            to
        })
        .collect()
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
}

/// The base manifest's entry at `path`.
fn entry(manifest: &Manifest, path: &str) -> Entry {
    manifest
        .entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path}"))
        .clone()
}

/// A copy of `like` (a file entry) at another path: same content.
fn file_like(like: &Entry, path: &str) -> Entry {
    Entry {
        path: path.into(),
        ..like.clone()
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        mtime: 1_700_000_000,
        kind: EntryKind::Symlink {
            target: target.into(),
        },
    }
}

/// The base with `entries` added to its file table, where the walk puts them.
fn with_entries(s: &Scene, entries: Vec<Entry>) -> Vec<PathBuf> {
    s.forge(move |m, _| {
        for entry in entries {
            // Each where the writer's walk would put it (FORMAT.md §5.3.2),
            // so that the fault tested is the only one.
            let at = m
                .entries
                .partition_point(|e| walk_order(&e.path, &entry.path).is_le());
            m.entries.insert(at, entry);
        }
    })
}

/// The order of the writer's walk: the paths' components compared in turn.
fn walk_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The offset within the header record of each of its fields (FORMAT.md §3).
const HEADER_FIELDS: [(&str, u64); 19] = [
    ("magic", 0),
    ("version", 8),
    ("flags", 10),
    ("volume number", 12),
    ("volume count", 16),
    ("parcel id", 20),
    ("created", 36),
    ("source site", 44),
    ("signer key", 52),
    ("body length", 84),
    ("body hash", 92),
    ("index stored length", 124),
    ("index raw length", 132),
    ("index hash", 140),
    ("index piece offset", 172),
    ("index piece length", 180),
    ("index piece start", 188),
    ("reserved", 196),
    ("signature", 448),
];

/// The offset of each field of the ustar header block in front of the record.
const TAR_FIELDS: [(&str, u64); 8] = [
    ("name", 0),
    ("mode", 100),
    ("uid", 108),
    ("size", 124),
    ("mtime", 136),
    ("checksum", 148),
    ("type", 156),
    ("ustar magic", 257),
];

/// Where a byte of a one-volume parcel lies, as far as a reader cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The ustar header block in front of the record.
    TarHeader,
    /// The record's magic.
    Magic,
    /// The record's format version.
    Version,
    /// The rest of the record: signed fields and the signature.
    Signed,
    /// The stored index.
    Index,
    /// The stored bytes of pack `n`.
    Pack(usize),
    /// Bytes no reader uses but through the body hash: the tar headers of
    /// later entries, padding, the end-of-archive blocks.
    Unread,
}

impl Place {
    /// Where byte `offset` of the one-volume parcel of `manifest`, whose
    /// volume header is `header`, lies.
    fn of(offset: u64, manifest: &Manifest, header: &VolumeHeader) -> Place {
        let piece = header.index_piece;
        let in_pack =
            |p: &PackRecord| (p.offset..p.offset + u64::from(p.stored_len)).contains(&offset);
        if offset < BLOCK {
            Place::TarHeader
        } else if offset < BLOCK + RECORD_LEN as u64 {
            match offset - BLOCK {
                0..8 => Place::Magic,
                8..10 => Place::Version,
                _ => Place::Signed,
            }
        } else if (piece.offset..piece.offset + piece.len).contains(&offset) {
            Place::Index
        } else if let Some(n) = manifest.packs.iter().position(in_pack) {
            Place::Pack(n)
        } else {
            Place::Unread
        }
    }

    /// What a full verification finds when the byte is flipped: the failure
    /// class and words of the message naming the fault.
    fn verify_fault(self) -> (FailureClass, &'static str) {
        match self {
            Place::TarHeader | Place::Magic => (FailureClass::Volume, "not a parcel volume"),
            Place::Version => (FailureClass::Volume, "format version"),
            Place::Signed => (FailureClass::Signature, "signature is invalid"),
            Place::Index => (FailureClass::Index, "does not match its signed SHA-256"),
            Place::Pack(_) | Place::Unread => (FailureClass::Volume, "is damaged"),
        }
    }

    /// The words of import's refusal; `None` for a byte import never reads
    /// (it goes straight to extraction, which checks every byte it writes
    /// through the pack, chunk and file hashes: FORMAT.md §7.5).
    fn import_fault(self) -> Option<String> {
        match self {
            Place::Pack(n) => Some(format!("pack {n} is corrupt")),
            Place::Unread => None,
            place => Some(place.verify_fault().1.to_owned()),
        }
    }
}

// ---------------------------------------------------------------------------
// Damaged bytes.
// ---------------------------------------------------------------------------

#[test]
fn every_flipped_byte_of_a_small_parcel_fails_verification_and_never_extracts_other_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = tmp.path().join("package");
    write_tiny_package(&package);
    let key = SigningKey::from_bytes(&[7; 32]);
    let out = tmp.path().join("out");
    fs::create_dir(&out).expect("out");
    let options = WriteOptions {
        chunking: ChunkParams {
            min: 64,
            avg: 256,
            max: 1024,
        },
        pack_target: 1024,
        ..small_options()
    };
    let honest = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 2),
        &key,
        &options,
        &out,
    );
    assert!(honest.manifest.packs.len() >= 2, "several packs");
    let original = &honest.volumes[0];
    let name = file_name(original);
    let header = testkit::read_header_unchecked(original).expect("header");
    let mut trust = TrustedKeys::new();
    trust.add("CEN", key.verifying_key());
    assert!(verify::verify(std::slice::from_ref(original), &trust, &mut |_, _| {}).is_ok());
    let digest = honest.manifest.tree_digest();
    let len = fs::metadata(original).expect("volume").len();

    // Reading is mostly waiting (threads, files): several workers, each
    // flipping every `WORKERS`th byte of its own copy of the volume.
    const WORKERS: u64 = 4;
    let seen: BTreeSet<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|k| {
                let dir = tmp.path().join(format!("worker-{k}"));
                fs::create_dir(&dir).expect("worker dir");
                let volume = dir.join(name);
                fs::copy(original, &volume).expect("copy volume");
                let (trust, header, manifest) = (&trust, &header, &honest.manifest);
                scope.spawn(move || {
                    let paths = [volume.clone()];
                    let extracted = dir.join("extracted");
                    let mut seen = BTreeSet::new();
                    for offset in (k..len).step_by(WORKERS as usize) {
                        flip_byte(&volume, offset);
                        let place = Place::of(offset, manifest, header);
                        let report = verify::verify(&paths, trust, &mut |_, _| {});
                        let problems: Vec<String> =
                            report.problems.iter().map(|p| p.to_string()).collect();
                        let (class, words) = place.verify_fault();
                        assert_eq!(
                            report.class(),
                            Some(class),
                            "byte {offset} ({place:?}): {problems:?}"
                        );
                        assert!(
                            problems.iter().any(|p| p.contains(name) && p.contains(words)),
                            "byte {offset} ({place:?}): no problem names {name} and {words:?}: {problems:?}"
                        );
                        // What import does: open, then extract checking every hash on the way.
                        let extracts = Parcel::open(&paths, trust).ok().map(|parcel| {
                            fs::create_dir(&extracted).expect("extraction dir");
                            let intact = parcel.extract(&extracted, &mut |_| {}).is_ok();
                            if intact {
                                let got = tree_digest_of_dir(&extracted).expect("digest");
                                assert_eq!(got, digest, "byte {offset}: extracted other content");
                            }
                            fs::remove_dir_all(&extracted).expect("clean extraction dir");
                            intact
                        });
                        assert_eq!(
                            extracts == Some(true),
                            place == Place::Unread,
                            "byte {offset} ({place:?}): extraction {extracts:?}"
                        );
                        seen.insert(format!("{place:?}"));
                        flip_byte(&volume, offset);
                    }
                    seen
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let places = [
        "TarHeader",
        "Magic",
        "Version",
        "Signed",
        "Index",
        "Pack(0)",
        "Pack(1)",
        "Unread",
    ];
    for place in places {
        assert!(seen.contains(place), "no byte in {place}: {seen:?}");
    }
}

#[test]
fn import_refuses_a_flipped_byte_in_each_header_field_and_every_97th_byte() {
    let s = scene();
    let volumes = s.copy_of_base();
    let volume = &volumes[0];
    let name = file_name(volume);
    let header = testkit::read_header_unchecked(volume).expect("header");
    let len = fs::metadata(volume).expect("volume").len();

    let mut offsets: Vec<(String, u64)> = Vec::new();
    for (field, at) in TAR_FIELDS {
        offsets.push((format!("tar header {field}"), at));
    }
    for (field, at) in HEADER_FIELDS {
        offsets.push((format!("header {field}"), BLOCK + at));
    }
    for entry in tar_entries(volume).iter().skip(1) {
        offsets.push((format!("tar header of {}", entry.name), entry.header));
        offsets.push((
            format!("data of {}", entry.name),
            entry.data + entry.len / 2,
        ));
    }
    offsets.push(("end-of-archive blocks".into(), len - 1));
    offsets.extend((0..len).step_by(97).map(|at| (format!("byte {at}"), at)));

    let catalog = s.bxl.store_state().catalog;
    let mut imports = 0;
    for (what, offset) in &offsets {
        flip_byte(volume, *offset);
        let place = Place::of(*offset, &s.base.manifest, &header);
        let files = s.files();
        let verify_words = place.verify_fault().1;
        match place.import_fault() {
            Some(words) => {
                let stderr = expect_exit(&s.bxl, "import", &volumes, 3, &[name, &words]);
                assert_eq!(s.files(), files, "{what} (offset {offset}): {stderr}");
                imports += 1;
                if what.starts_with("header") {
                    expect_exit(&s.bxl, "verify", &volumes, 3, &[name, verify_words]);
                }
            }
            None => {
                expect_exit(&s.bxl, "verify", &volumes, 3, &[name, verify_words]);
                assert_eq!(s.files(), files, "{what} (offset {offset})");
            }
        }
        flip_byte(volume, *offset);
    }
    assert!(imports > offsets.len() / 2, "{imports} imports refused");
    assert_eq!(s.bxl.store_state().catalog, catalog);

    // A byte extraction never reads: verify refuses the volume, import
    // writes nothing but the intact package (FORMAT.md §7.5).
    flip_byte(volume, len - 1);
    s.bxl.import(&[volume]).success();
    assert_eq!(
        package_view(&snapshot(&s.bxl.store("tools", 2))),
        package_view(&snapshot(&s.package))
    );
}

#[test]
fn import_refuses_a_re_signed_header_with_a_wrong_field() {
    let s = scene();
    let lux = s.world.site("LUX");
    let header = testkit::read_header_unchecked(&s.base.volumes[0]).expect("header");
    type Change = Box<dyn Fn(&mut VolumeHeader)>;
    // What is changed, how, whether the message names the volume file (a
    // problem of the index as a whole names none), and its words.
    let cases: Vec<(&str, Change, bool, &str)> = vec![
        (
            "volume number 2 of 2",
            Box::new(|h| {
                h.volume = 2;
                h.volume_count = 2;
            }),
            false,
            "volume 1 of 2 is missing",
        ),
        (
            "parcel id",
            Box::new(|h| h.parcel_id = ParcelId([0x44; 16])),
            false,
            "contradicts the volume headers",
        ),
        (
            "source site",
            Box::new(|h| h.source_site = "LUX".into()),
            false,
            "contradicts the volume headers",
        ),
        (
            "created",
            Box::new(|h| h.created += 1),
            true,
            "not the one parcel writes",
        ),
        (
            "body length",
            Box::new(|h| h.body_len += 512),
            true,
            "the copy is cut short",
        ),
        (
            "index hash",
            Box::new(|h| h.index_sha256[0] ^= 1),
            true,
            "does not match its signed SHA-256",
        ),
        (
            "index piece offset",
            Box::new(|h| h.index_piece.offset -= 512),
            true,
            "does not match its signed SHA-256",
        ),
        (
            "index piece beyond the volume",
            Box::new(move |h| h.index_piece.offset = header.body_len + 2 * BLOCK),
            false,
            "index piece in volume 1 lies outside the volume or the index",
        ),
        (
            "index piece start",
            Box::new(|h| h.index_piece.start = 1),
            false,
            "index piece in volume 1 starts at 1, expected 0",
        ),
        (
            "index piece length",
            Box::new(|h| h.index_piece.len -= 1),
            false,
            "index bytes are in the volumes given",
        ),
    ];
    for (what, change, names_file, words) in cases {
        let volumes = s.copy_of_base();
        resign_all(&volumes, &s.key, change);
        let name = file_name(&volumes[0]);
        let needles: &[&str] = if names_file { &[name, words] } else { &[words] };
        let stderr = s.import_refused(&volumes, 3, needles);
        assert!(stderr.contains("verification failed"), "{what}: {stderr}");
    }
    // Changing the body hash makes a volume that extraction reads intact
    // (FORMAT.md §7.5) but that verification refuses.
    let volumes = s.copy_of_base();
    resign_all(&volumes, &s.key, |h| h.body_sha256[0] ^= 1);
    s.verify_refused(&volumes, &[file_name(&volumes[0]), "volume 1 is damaged"]);
    // The same header signed by another trusted site's key.
    s.bxl.trust(&lux);
    let volumes = s.copy_of_base();
    resign_all(&volumes, &secret_key(&lux), |_| {});
    s.import_refused(
        &volumes,
        4,
        &["claims to come from site CEN but is signed with the key of site LUX"],
    );
    // Verify, intact as the volumes are, refuses them the same way.
    for media in [false, true] {
        let mut paths = volumes.clone();
        if media {
            paths.insert(0, PathBuf::from("--media"));
        }
        expect_exit(
            &s.bxl,
            "verify",
            &paths,
            4,
            &["claims to come from site CEN but is signed with the key of site LUX"],
        );
    }
    let output = s
        .bxl
        .cmd()
        .arg("verify")
        .args(&volumes)
        .arg("--json")
        .output()
        .expect("verify --json");
    assert_eq!(output.status.code(), Some(4));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["ok"], false, "{json}");
    assert!(
        json["refused"].as_str().is_some_and(|r| r.contains("LUX")),
        "{json}"
    );
}

// ---------------------------------------------------------------------------
// Truncated, extended, missing, duplicated, reordered and mixed volumes.
// ---------------------------------------------------------------------------

#[test]
fn import_refuses_a_volume_cut_at_any_entry_boundary_or_inside_stored_data() {
    let s = scene();
    let parcel = s.multi_volume(11, 2, None);
    let count = parcel.volumes.len();
    let mut cuts = 0;
    for (n, volume) in parcel.volumes.iter().enumerate() {
        let bytes = fs::read(volume).expect("volume");
        let name = file_name(volume);
        let mut at: Vec<u64> = vec![0, 100, BLOCK, 2 * BLOCK - 1];
        for entry in tar_entries(volume) {
            at.extend([entry.header, entry.data, entry.data + entry.len]);
            if entry.len > 2 {
                at.push(entry.data + entry.len / 2);
            }
        }
        at.extend([bytes.len() as u64 - 2 * BLOCK, bytes.len() as u64 - 1]);
        at.sort_unstable();
        at.dedup();
        for cut in at {
            fs::write(volume, &bytes[..cut as usize]).expect("truncate");
            let words = if cut < 2 * BLOCK {
                "shorter than a volume header"
            } else {
                "the copy is cut short"
            };
            s.import_refused(&parcel.volumes, 3, &[name, words]);
            if n == 0 || n + 1 == count {
                s.verify_refused(&parcel.volumes, &[name, words]);
            }
            cuts += 1;
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 512]);
        fs::write(volume, &longer).expect("extend");
        s.import_refused(
            &parcel.volumes,
            3,
            &[name, "the copy has bytes added at its end"],
        );
        fs::write(volume, &bytes).expect("restore");
    }
    assert!(cuts > 8 * count, "only {cuts} cuts");
    s.bxl
        .import(
            &parcel
                .volumes
                .iter()
                .map(PathBuf::as_path)
                .collect::<Vec<_>>(),
        )
        .success();
}

#[test]
fn a_volume_given_twice_is_read_from_an_intact_copy_and_refused_when_none_is() {
    let s = scene();
    let parcel = s.multi_volume(12, 2, None);
    let copies = s.world.dir("copies");
    let copy = copies.join("second-copy.tar");
    fs::copy(&parcel.volumes[1], &copy).expect("copy");
    // The original damaged, a copy intact (a volume rebuilt by `create
    // --repair` beside the original): the copy is read, the damage named.
    let len = fs::metadata(&parcel.volumes[1]).expect("volume").len();
    flip_byte(&parcel.volumes[1], len - 2000);
    let mut paths = parcel.volumes.clone();
    paths.push(copy.clone());
    let args: Vec<&str> = paths.iter().map(|p| arg(p)).collect();
    s.bxl
        .run(&[&["verify"][..], &args].concat())
        .success()
        .stderr(predicates::str::contains(format!(
            "{} is a damaged copy of volume 2",
            parcel.volumes[1].display()
        )))
        .stderr(predicates::str::contains(format!(
            "; {} is read instead. The medium holding the damaged copy may be failing",
            copy.display()
        )));
    // Both copies damaged: the first is read, found damaged, and refused.
    flip_byte(&copy, len - 2000);
    let needles = [
        "second-copy.tar is a damaged copy of volume 2",
        "(no copy is intact)",
        "volume 2",
    ];
    s.verify_refused(&paths, &needles);
    s.import_refused(&paths, 3, &needles);
    // Two intact copies: one is read.
    flip_byte(&copy, len - 2000);
    flip_byte(&parcel.volumes[1], len - 2000);
    s.bxl.run(&[&["import"][..], &args].concat()).success();
}

#[test]
fn intact_volumes_of_another_parcel_under_the_same_id_are_not_taken_for_copies() {
    let s = scene();
    // The same parcel id, other content (a buggy or hostile source reusing
    // ids): each volume number has two intact files, whose headers differ.
    let id = ParcelId::random();
    let genuine = s.multi_volume(20, 2, Some(id));
    let other = s.multi_volume(21, 2, Some(id));
    let mut paths = other.volumes.clone();
    paths.extend(genuine.volumes.iter().cloned());
    s.verify_refused(&paths, &["of another parcel"]);
    s.import_refused(&paths, 3, &["of another parcel"]);
}

#[test]
fn import_reads_volumes_by_their_signed_numbers_whatever_their_file_names() {
    let s = scene();
    let parcel = s.multi_volume(13, 2, None);
    let (first, last) = (&parcel.volumes[0], parcel.volumes.last().expect("volumes"));
    let aside = first.with_extension("aside");
    fs::rename(first, &aside).expect("rename");
    fs::rename(last, first).expect("rename");
    fs::rename(&aside, last).expect("rename");
    let mut paths = parcel.volumes.clone();
    paths.reverse();
    let receipt = s.world.dir("mail").join("receipt.txt");
    let mut args = vec!["import".to_owned()];
    args.extend(paths.iter().map(|p| arg(p).to_owned()));
    args.extend(["--receipt".to_owned(), arg(&receipt).to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.bxl.run(&args).success();
    let package = s.world.dir("big-13-2");
    assert_eq!(
        package_view(&snapshot(&s.bxl.store("tools", 2))),
        package_view(&snapshot(&package))
    );
}

#[test]
fn import_refuses_volumes_whose_signed_numbers_were_swapped() {
    let s = scene();
    let parcel = s.multi_volume(14, 2, None);
    testkit::resign_header(&parcel.volumes[0], &s.key, |h| h.volume = 2).expect("re-sign");
    testkit::resign_header(&parcel.volumes[1], &s.key, |h| h.volume = 1).expect("re-sign");
    // Each header still binds its own body; the index places packs in the
    // volumes by number.
    let words = "lies outside volume 1";
    s.verify_refused(&parcel.volumes, &[words]);
    s.import_refused(&parcel.volumes, 3, &[words]);
}

#[test]
fn import_refuses_a_volume_of_another_parcel_among_the_volumes() {
    let s = scene();
    let parcel = s.multi_volume(15, 2, None);
    let other = s.multi_volume(18, 2, None);
    let stray = &other.volumes[1];
    let other_id = other.manifest.parcel_id.to_string();
    let needles = [
        file_name(stray),
        "volume 2 of another parcel",
        other_id.as_str(),
    ];

    let mut extra = parcel.volumes.clone();
    extra.insert(2, stray.clone());
    s.verify_refused(&extra, &needles);
    s.import_refused(&extra, 3, &needles);

    let mut replaced = parcel.volumes.clone();
    replaced[1] = stray.clone();
    let missing = format!("volume 2 of {} is missing", parcel.volumes.len());
    s.import_refused(&replaced, 3, &[needles[0], needles[1], missing.as_str()]);
}

#[test]
fn import_refuses_volumes_of_two_parcels_sharing_one_id() {
    let s = scene();
    let parcel = s.multi_volume(16, 2, None);
    let twin = s.multi_volume(17, 2, Some(parcel.manifest.parcel_id));
    let mut mixed = parcel.volumes.clone();
    mixed[1] = twin.volumes[1].clone();
    let id = parcel.manifest.parcel_id.to_string();
    let needles = [
        file_name(&twin.volumes[1]),
        "of another parcel",
        id.as_str(),
    ];
    s.verify_refused(&mixed, &needles);
    s.import_refused(&mixed, 3, &needles);
}

// ---------------------------------------------------------------------------
// Sizes over the caps.
// ---------------------------------------------------------------------------

#[test]
fn import_refuses_headers_declaring_an_index_or_a_volume_count_over_the_caps() {
    let s = scene();
    let raw = format!("declared index length is {}", MAX_INDEX_RAW + 1);
    let stored = format!("declared stored index length is {}", MAX_INDEX_STORED + 1);
    let count = format!(
        "volume count is {}, over the limit of {MAX_VOLUMES}",
        u32::MAX
    );
    type Change = fn(&mut parcel_format::header::VolumeHeader);
    let cases: [(Change, &str); 3] = [
        (|h| h.index_raw_len = MAX_INDEX_RAW + 1, raw.as_str()),
        (
            |h| h.index_stored_len = MAX_INDEX_STORED + 1,
            stored.as_str(),
        ),
        // Read as is, every volume number up to 2^32 - 1 would be "missing".
        (|h| h.volume_count = u32::MAX, count.as_str()),
    ];
    for (change, words) in cases {
        let volumes = s.copy_of_base();
        resign_all(&volumes, &s.key, change);
        s.verify_refused(&volumes, &[words]);
        s.import_refused(&volumes, 3, &[words, "limit failure"]);
    }
}

#[test]
fn import_refuses_a_chunk_a_pack_or_a_comment_over_its_cap() {
    let s = scene();
    // One file of zeros in one pack, cut into chunks of `cuts` bytes:
    // consistent in everything but its sizes.
    let zeros = |cuts: &[u32]| {
        let cuts = cuts.to_vec();
        move |m: &mut Manifest, packs: &mut Vec<Vec<u8>>| {
            let total: u32 = cuts.iter().sum();
            let mut offset = 0;
            m.chunks = cuts
                .iter()
                .map(|&len| {
                    let chunk = ChunkRecord {
                        sha256: Sha256::digest(vec![0u8; len as usize]).into(),
                        len,
                        pack: 0,
                        offset,
                    };
                    offset += len;
                    chunk
                })
                .collect();
            m.packs = vec![PackRecord {
                volume: 1,
                offset: 0,
                stored_len: 0,
                raw_len: total,
                stored_sha256: [0; 32],
            }];
            *packs = vec![rle_frame(u64::from(total), 0, total as usize)];
            m.entries = vec![Entry {
                path: "zeros.bin".into(),
                mtime: 1_700_000_000,
                kind: EntryKind::File {
                    size: total.into(),
                    executable: false,
                    sha256: Sha256::digest(vec![0u8; total as usize]).into(),
                    chunks: (0..cuts.len() as u32).collect(),
                },
            }];
        }
    };
    let over_chunk = s.forge(zeros(&[MAX_CHUNK + 1]));
    let words = format!(
        "chunk 0 length is {}, over the limit of {MAX_CHUNK}",
        MAX_CHUNK + 1
    );
    s.import_refused(&over_chunk, 3, &[&words]);

    let mut cuts = vec![MAX_CHUNK; (MAX_PACK_RAW / MAX_CHUNK) as usize];
    cuts.push(1);
    let over_pack = s.forge(zeros(&cuts));
    let words = format!(
        "pack 0 raw length is {}, over the limit of {MAX_PACK_RAW}",
        MAX_PACK_RAW + 1
    );
    s.import_refused(&over_pack, 3, &[&words]);

    let long_comment = s.forge(|m, _| m.comment = "x".repeat(MAX_COMMENT + 1));
    let words = format!(
        "comment length is {}, over the limit of {MAX_COMMENT}",
        MAX_COMMENT + 1
    );
    s.import_refused(&long_comment, 3, &[&words]);
}

#[test]
fn import_refuses_a_deduplication_bomb_before_writing_anything() {
    let s = scene();
    // One chunk of 1 MiB of zeros, referred to four million times: 4 TiB
    // of content from an index of a few KB.
    let refs = 4 << 20;
    let bomb = s.forge(|m, packs| {
        m.chunks = vec![ChunkRecord {
            sha256: Sha256::digest(vec![0u8; MAX_CHUNK as usize]).into(),
            len: MAX_CHUNK,
            pack: 0,
            offset: 0,
        }];
        m.packs = vec![PackRecord {
            volume: 1,
            offset: 0,
            stored_len: 0,
            raw_len: MAX_CHUNK,
            stored_sha256: [0; 32],
        }];
        *packs = vec![rle_frame(MAX_CHUNK.into(), 0, MAX_CHUNK as usize)];
        m.entries = vec![Entry {
            path: "zeros.bin".into(),
            mtime: 1_700_000_000,
            kind: EntryKind::File {
                size: u64::from(MAX_CHUNK) * refs as u64,
                executable: false,
                sha256: [0; 32],
                chunks: vec![0; refs].into(),
            },
        }];
    });
    s.import_refused(&bomb, 1, &["not enough space on", "needs 4.0 TiB"]);
}

/// A parcel of `packs` packs of 16 MiB of zeros (a few KB stored each),
/// chunks of `chunk_len` bytes, and one file reading chunk j of pack 0, 1,
/// …, for each j in turn, `passes` times over: content met again far apart.
fn read_again(s: &Scene, packs: u32, chunk_len: u32, passes: usize) -> Vec<PathBuf> {
    let per_pack = MAX_PACK_RAW / chunk_len;
    let zero_chunk: [u8; 32] = Sha256::digest(vec![0u8; chunk_len as usize]).into();
    let order: Vec<u32> = (0..per_pack)
        .flat_map(|j| (0..packs).map(move |p| p * per_pack + j))
        .collect();
    let refs: Vec<u32> = order
        .iter()
        .copied()
        .cycle()
        .take(order.len() * passes)
        .collect();
    let mut content = Sha256::new();
    let zeros = vec![0u8; chunk_len as usize];
    for _ in &refs {
        content.update(&zeros);
    }
    let content: [u8; 32] = content.finalize().into();
    s.forge(|m, stored| {
        m.chunks = (0..packs * per_pack)
            .map(|c| ChunkRecord {
                sha256: zero_chunk,
                len: chunk_len,
                pack: c / per_pack,
                offset: (c % per_pack) * chunk_len,
            })
            .collect();
        m.packs = (0..packs)
            .map(|_| PackRecord {
                volume: 1,
                offset: 0,
                stored_len: 0,
                raw_len: MAX_PACK_RAW,
                stored_sha256: [0; 32],
            })
            .collect();
        *stored = (0..packs)
            .map(|_| rle_frame(MAX_PACK_RAW.into(), 0, MAX_PACK_RAW as usize))
            .collect();
        m.entries = vec![Entry {
            path: "zeros.bin".into(),
            mtime: 1_700_000_000,
            kind: EntryKind::File {
                size: u64::from(chunk_len) * refs.len() as u64,
                executable: false,
                sha256: content,
                chunks: refs.clone().into(),
            },
        }];
    })
}

#[test]
fn content_read_again_is_served_from_the_chunks_kept_without_decoding_packs_again() {
    let s = scene();
    // Eight packs of 64 KiB chunks, three passes: four packs stay cached
    // and the chunks of the four that left are kept (64 MiB, all but a few
    // of them), so few packs are decoded again. Without the kept chunks
    // nearly every read would decode a 16 MiB pack again, over the cap.
    let volumes = read_again(&s, 8, 64 * 1024, 3);
    s.bxl.run(&["verify", arg(&volumes[0])]).success();
}

#[test]
fn verify_and_import_stop_a_parcel_that_makes_them_decode_its_packs_over_and_over() {
    let s = scene();
    // Nine packs of 4 KiB chunks, two passes: the chunks kept (64 MiB)
    // wait for the second pass, four packs are cached, and most other
    // reads decode a whole 16 MiB pack again, 4,096 times the bytes they
    // declare (for days, on an index of a few MB). The bytes decoded again
    // are capped (FORMAT.md §7.4).
    let volumes = read_again(&s, 9, 4096, 2);
    let words = "bytes of packs decoded again";
    s.verify_refused(&volumes, &[words, "limit"]);
    s.import_refused(&volumes, 3, &[words, "limit failure"]);
}

// ---------------------------------------------------------------------------
// Lying zstd frames, correctly hashed and signed.
// ---------------------------------------------------------------------------

/// The base with pack 1 replaced by `frame(raw bytes of pack 1)`; its record
/// (raw length, chunks) unchanged, its stored hash filled in.
fn with_pack_1(s: &Scene, frame: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<PathBuf> {
    let stored = frame(&s.base.pack_raw(1));
    s.forge(|_, packs| packs[1] = stored)
}

#[test]
fn import_refuses_a_pack_frame_declaring_a_huge_content_size() {
    let s = scene();
    let volumes = with_pack_1(&s, |raw| raw_frame(1 << 40, 17, raw));
    let raw_len = s.base.manifest.packs[1].raw_len;
    let words = format!("frame declares content size Some(1099511627776), expected {raw_len}");
    let needles = [file_name(&volumes[0]), "pack 1 is corrupt", words.as_str()];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

#[test]
fn import_refuses_a_pack_frame_declaring_a_window_no_zstd_decoder_takes() {
    let s = scene();
    // 2^41 bytes: over zstd's own limit of 2^31.
    let volumes = with_pack_1(&s, |raw| raw_frame(raw.len() as u64, 41, raw));
    let needles = [file_name(&volumes[0]), "pack 1 is corrupt", "zstd"];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

#[test]
fn import_decodes_a_pack_frame_declaring_a_2_gib_window_without_reserving_it() {
    let s = scene();
    // A window zstd takes, far over the 16 MiB writers keep to: the reader
    // decodes in one shot into a buffer of the pack's declared raw length,
    // where no window is allocated (FORMAT.md §5.2). An import limited to
    // 1 GiB of address space must succeed.
    let volumes = with_pack_1(&s, |raw| raw_frame(raw.len() as u64, 31, raw));
    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_parcel"));
    import
        .env_remove("PARCEL_HOME")
        .env("MALLOC_ARENA_MAX", "1")
        .arg("--home")
        .arg(&s.bxl.home)
        .args(["--quiet", "import"])
        .args(&volumes);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut import, || {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = import.output().expect("run parcel import");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        package_view(&snapshot(&s.bxl.store("tools", 2))),
        package_view(&snapshot(&s.package))
    );
}

#[test]
fn import_refuses_a_pack_that_decompresses_longer_than_declared() {
    let s = scene();
    let volumes = with_pack_1(&s, |raw| {
        let mut longer = raw.to_vec();
        longer.extend_from_slice(b"fourteen bytes");
        raw_frame(raw.len() as u64, 17, &longer)
    });
    let needles = [file_name(&volumes[0]), "pack 1 is corrupt"];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

#[test]
fn import_refuses_a_pack_that_decompresses_shorter_than_declared() {
    let s = scene();
    let volumes = with_pack_1(&s, |raw| {
        raw_frame(raw.len() as u64, 17, &raw[..raw.len() - 16])
    });
    let needles = [file_name(&volumes[0]), "pack 1 is corrupt"];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

// ---------------------------------------------------------------------------
// Unsafe paths in a correctly signed file table.
// ---------------------------------------------------------------------------

#[test]
fn import_refuses_a_path_with_a_dot_dot_component() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(&s, vec![file_like(&readme, "doc/../../escape.txt")]);
    s.verify_refused(
        &volumes,
        &["doc/../../escape.txt", "contains a `..` component"],
    );
    s.import_refused(
        &volumes,
        3,
        &[
            "doc/../../escape.txt",
            "contains a `..` component",
            "path failure",
        ],
    );
}

#[test]
fn import_refuses_an_absolute_path() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let escape = s.world.dir("outside").join("escape.txt");
    let volumes = with_entries(&s, vec![file_like(&readme, arg(&escape))]);
    s.import_refused(&volumes, 3, &[arg(&escape), "absolute path"]);
    assert!(!escape.exists());
}

#[test]
fn import_refuses_a_path_with_a_backslash() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(&s, vec![file_like(&readme, "doc\\..\\..\\escape.txt")]);
    s.import_refused(&volumes, 3, &["escape.txt", "contains a backslash"]);
}

#[test]
fn import_refuses_a_path_with_a_nul_byte() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(&s, vec![file_like(&readme, "README\0.txt")]);
    s.import_refused(&volumes, 3, &["README\\0.txt", "contains a NUL byte"]);
}

#[test]
fn import_refuses_two_entries_with_the_same_path() {
    let s = scene();
    let tool = entry(&s.base.manifest, "bin/tool");
    let volumes = with_entries(&s, vec![tool]);
    s.import_refused(
        &volumes,
        3,
        &["\"bin/tool\"", "collides with an earlier entry"],
    );
}

#[test]
fn import_refuses_paths_that_differ_only_in_case() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(&s, vec![file_like(&readme, "ReadMe")]);
    s.import_refused(
        &volumes,
        3,
        &["\"ReadMe\"", "collides with an earlier entry"],
    );
}

#[test]
fn import_refuses_paths_that_differ_only_in_unicode_normalisation() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(
        &s,
        vec![
            file_like(&readme, "doc/caf\u{e9}.txt"),
            file_like(&readme, "doc/cafe\u{301}.txt"),
        ],
    );
    // In walk order the decomposed name comes first ("e" sorts before the
    // first byte of "é"): the composed one collides with it.
    let quoted = format!("{:?}", "doc/caf\u{e9}.txt");
    s.import_refused(&volumes, 3, &[&quoted, "collides with an earlier entry"]);
}

#[test]
fn import_refuses_a_symlink_target_too_long_for_the_kernel_before_extracting() {
    // symlink(2) takes at most 4,095 bytes and the NUL: a target of 4,096
    // passed verify and failed deep in the import, naming a staging path.
    let s = scene();
    let target = "a/".repeat(2047) + "bc";
    assert_eq!(target.len(), 4096);
    let volumes = with_entries(&s, vec![symlink("long", &target)]);
    let needles = ["\"long\"", "symlink target of 4096 bytes", "path failure"];
    s.verify_refused(&volumes, &needles[..2]);
    s.import_refused(&volumes, 3, &needles);
    let fits = "a/".repeat(2046) + "bcd";
    assert_eq!(fits.len(), 4095);
    let volumes = with_entries(&s, vec![symlink("long", &fits)]);
    s.bxl.import(&[&volumes[0]]).success();
}

#[test]
fn import_refuses_entries_out_of_the_writers_walk_order() {
    // Parents before children, but `lib` before `doc`: the tree digest
    // depends on the order, and the store copy, walked again, would no
    // longer match it (every later import and forward would call the copy
    // changed).
    let s = scene();
    let volumes = s.forge(|m, _| {
        let paths: Vec<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "README",
                "bin",
                "bin/tool",
                "doc",
                "doc/guide.txt",
                "lib",
                "lib/libfoo.so.1"
            ]
        );
        let lib = m.entries.split_off(5);
        let doc = m.entries.split_off(3);
        m.entries.extend(lib);
        m.entries.extend(doc);
    });
    s.verify_refused(&volumes, &["\"doc\"", "the writer's walk puts after it"]);
    s.import_refused(&volumes, 3, &["\"doc\"", "path failure"]);
}

#[test]
fn import_refuses_a_directory_and_a_file_of_the_same_name() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(&s, vec![file_like(&readme, "bin")]);
    s.import_refused(&volumes, 3, &["\"bin\"", "collides with an earlier entry"]);
    let dir = Entry {
        path: "README".into(),
        mtime: 1_700_000_000,
        kind: EntryKind::Directory,
    };
    let volumes = with_entries(&s, vec![dir]);
    s.import_refused(
        &volumes,
        3,
        &["\"README\"", "collides with an earlier entry"],
    );
    let volumes = with_entries(&s, vec![file_like(&readme, "README/inside")]);
    s.import_refused(
        &volumes,
        3,
        &["README/inside", "its parent is not a directory"],
    );
}

#[test]
fn import_refuses_a_symlink_then_a_path_through_it() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let volumes = with_entries(
        &s,
        vec![symlink("docs", "doc"), file_like(&readme, "docs/evil.txt")],
    );
    s.verify_refused(
        &volumes,
        &["docs/evil.txt", "its parent is not a directory"],
    );
    s.import_refused(
        &volumes,
        3,
        &["docs/evil.txt", "its parent is not a directory"],
    );
}

#[test]
fn import_refuses_a_symlink_that_leaves_the_package() {
    let s = scene();
    let volumes = with_entries(&s, vec![symlink("lib/etc", "../../etc")]);
    s.import_refused(&volumes, 3, &["lib/etc", "leaves the package"]);
    let volumes = with_entries(&s, vec![symlink("lib/passwd", "/etc/passwd")]);
    s.import_refused(&volumes, 3, &["lib/passwd", "symlink to absolute path"]);
    let volumes = with_entries(&s, vec![symlink("lib/up", "x/../..")]);
    s.import_refused(&volumes, 3, &["lib/up", "has `..` after a name"]);
}

#[test]
fn import_refuses_paths_over_the_length_and_depth_caps() {
    let s = scene();
    let readme = entry(&s.base.manifest, "README");
    let long = format!("doc/{}", "a".repeat(MAX_PATH));
    let volumes = with_entries(&s, vec![file_like(&readme, &long)]);
    s.import_refused(&volumes, 3, &[&format!("longer than {MAX_PATH} bytes")]);
    let component = format!("doc/{}", "b".repeat(256));
    let volumes = with_entries(&s, vec![file_like(&readme, &component)]);
    s.import_refused(&volumes, 3, &["a component is longer than 255 bytes"]);
    let deep = vec!["d"; MAX_DEPTH + 1].join("/");
    let volumes = with_entries(&s, vec![file_like(&readme, &deep)]);
    s.import_refused(
        &volumes,
        3,
        &[&format!("deeper than {MAX_DEPTH} components")],
    );
}

// ---------------------------------------------------------------------------
// Content references out of range or overlapping, and contents that do not
// match their hashes.
// ---------------------------------------------------------------------------

#[test]
fn import_refuses_a_file_referring_to_a_chunk_beyond_the_chunk_table() {
    let s = scene();
    let count = s.base.manifest.chunks.len();
    let volumes = s.forge(|m, _| {
        if let EntryKind::File { chunks, .. } = &mut m.entries[0].kind {
            *chunks.last_mut().expect("a chunk") = count as u32;
        }
    });
    let words = format!("refers to chunk {count}, beyond the {count} chunks");
    s.import_refused(&volumes, 3, &["\"README\"", &words]);
}

#[test]
fn import_refuses_overlapping_chunks() {
    let s = scene();
    let m = &s.base.manifest;
    let i = (0..m.chunks.len() - 1)
        .find(|&i| m.chunks[i].pack == m.chunks[i + 1].pack)
        .expect("a pack of two chunks");
    let volumes = s.forge(|m, _| m.chunks[i + 1].offset -= 1);
    let words = format!("chunk {} overlaps or leaves a gap in pack", i + 1);
    s.import_refused(&volumes, 3, &[&words]);
}

#[test]
fn import_refuses_a_chunk_reaching_past_the_end_of_its_pack() {
    let s = scene();
    let last = s.base.manifest.chunks.len() - 1;
    let volumes = s.forge(|m, _| m.chunks[last].len += 1);
    s.import_refused(&volumes, 3, &[&format!("chunk {last} lies outside pack")]);
}

#[test]
fn import_refuses_a_file_whose_size_differs_from_its_chunks() {
    let s = scene();
    let volumes = s.forge(|m, _| {
        if let EntryKind::File { size, .. } = &mut m.entries[0].kind {
            *size += 1;
        }
    });
    s.import_refused(&volumes, 3, &["\"README\" is", "but its chunks hold"]);
}

/// The base with its last pack's stored bytes left out, and `change` made to
/// its record (which the layout then leaves as it is).
fn with_last_pack_record(s: &Scene, change: impl FnOnce(&mut PackRecord)) -> Vec<PathBuf> {
    s.forge(|m, packs| {
        packs.pop();
        change(m.packs.last_mut().expect("a pack"));
    })
}

#[test]
fn import_refuses_a_pack_outside_its_volume() {
    let s = scene();
    let last = s.base.manifest.packs.len() - 1;
    let volumes = with_last_pack_record(&s, |p| {
        p.volume = 1;
        p.offset = 1 << 30;
    });
    s.import_refused(
        &volumes,
        3,
        &[&format!("pack {last} lies outside volume 1")],
    );
}

#[test]
fn import_refuses_overlapping_packs() {
    let s = scene();
    let last = s.base.manifest.packs.len() - 1;
    let previous = s.base.manifest.packs[last - 1].clone();
    let volumes = with_last_pack_record(&s, |p| {
        p.volume = previous.volume;
        p.offset = previous.offset;
    });
    let words = format!("pack {last} overlaps or precedes pack {}", last - 1);
    s.import_refused(&volumes, 3, &[&words]);
}

#[test]
fn import_refuses_a_pack_in_a_volume_the_parcel_does_not_have() {
    let s = scene();
    let last = s.base.manifest.packs.len() - 1;
    let volumes = with_last_pack_record(&s, |p| p.volume = 2);
    s.import_refused(
        &volumes,
        3,
        &[&format!("pack {last} is in volume 2, outside 1..=1")],
    );
}

#[test]
fn the_bad_chunks_of_one_pack_are_one_problem_however_many() {
    // A signer that wrote millions of tiny chunks with wrong hashes made as
    // many problems, gigabytes of report; here, every chunk of pack 1.
    let s = scene();
    let bad: Vec<usize> = (0..s.base.manifest.chunks.len())
        .filter(|&c| s.base.manifest.chunks[c].pack == 1)
        .collect();
    assert!(bad.len() >= 2, "pack 1 has several chunks");
    let volumes = s.forge(|m, _| {
        for &c in &bad {
            m.chunks[c].sha256[0] ^= 1;
        }
    });
    let words = format!(
        "chunk {} is corrupt (pack 1), and {} more chunk(s) of that pack",
        bad[0],
        bad.len() - 1
    );
    let stderr = s.verify_refused(&volumes, &[words.as_str()]);
    assert_eq!(stderr.matches("is corrupt (pack").count(), 1, "{stderr}");
    s.import_refused(&volumes, 3, &[words.as_str()]);
}

#[test]
fn a_file_with_an_earlier_file_s_chunks_but_another_hash_is_refused() {
    // The same content met twice is checked (verify) and written (import)
    // from the first copy, without reading its chunks again: a second entry
    // listing the same chunks under another hash must still fail.
    let s = scene();
    let tool = entry(&s.base.manifest, "bin/tool");
    let EntryKind::File { chunks, .. } = &tool.kind else {
        panic!("bin/tool is a file")
    };
    assert!(chunks.len() >= 2, "bin/tool has several chunks");
    // A file of one chunk, read earlier as part of bin/tool.
    let c = chunks[0];
    let record = &s.base.manifest.chunks[c as usize];
    let one = Entry {
        path: "zz-copy".into(),
        mtime: 1_700_000_000,
        kind: EntryKind::File {
            size: record.len.into(),
            executable: false,
            sha256: record.sha256,
            chunks: vec![c].into(),
        },
    };
    let mut several = tool.clone();
    several.path = "zz-copy".into();
    for like in [one, several] {
        let mut wrong = like.clone();
        if let EntryKind::File { sha256, .. } = &mut wrong.kind {
            sha256[0] ^= 1;
        }
        let volumes = with_entries(&s, vec![wrong]);
        let needles = ["\"zz-copy\"", "content does not match its recorded SHA-256"];
        s.verify_refused(&volumes, &needles);
        s.import_refused(&volumes, 3, &needles);
        // With the right hash it is the same content met twice.
        let volumes = with_entries(&s, vec![like]);
        s.bxl.run(&["verify", arg(&volumes[0])]).success();
    }
}

#[test]
fn import_refuses_a_chunk_that_does_not_match_its_hash_and_leaves_no_staging() {
    let s = scene();
    let i = s
        .base
        .manifest
        .chunks
        .iter()
        .position(|c| c.pack == 1)
        .expect("a chunk in pack 1");
    let volumes = s.forge(|m, _| m.chunks[i].sha256[0] ^= 1);
    let chunk = format!("chunk {i} is corrupt (pack 1)");
    let needles = [file_name(&volumes[0]), chunk.as_str()];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

#[test]
fn import_refuses_a_file_that_does_not_match_its_hash_and_leaves_no_staging() {
    let s = scene();
    let volumes = s.forge(|m, _| {
        let guide = m
            .entries
            .iter_mut()
            .find(|e| e.path == "doc/guide.txt")
            .expect("guide");
        if let EntryKind::File { sha256, .. } = &mut guide.kind {
            sha256[0] ^= 1;
        }
    });
    let needles = ["file \"doc/guide.txt\": content does not match its recorded SHA-256"];
    s.verify_refused(&volumes, &needles);
    s.import_refused(&volumes, 3, &needles);
}

// ---------------------------------------------------------------------------
// Relays: whose package a parcel says it carries.
// ---------------------------------------------------------------------------

#[test]
fn a_relay_of_this_sites_own_package_is_refused() {
    let s = scene();
    // CEN, trusted, says the package it sends is BXL's own.
    let own = s.forge(|m, _| m.origin_site = "BXL".into());
    s.import_refused(
        &own,
        4,
        &["relays package tools as this site's own (origin BXL)"],
    );
    // Not even when told whom it comes from.
    let with_relayed_by = [&own[..], &relayed_by("CEN")].concat();
    expect_exit(
        &s.bxl,
        "import",
        &with_relayed_by,
        4,
        &["as this site's own"],
    );
}

/// `--relayed-by SITE`, as arguments beside the volume paths.
fn relayed_by(site: &str) -> Vec<PathBuf> {
    vec![PathBuf::from("--relayed-by"), PathBuf::from(site)]
}

#[test]
fn a_site_without_a_parent_takes_a_relay_only_when_told_whom_from() {
    let s = scene();
    // BXL has no parent; CEN relays a package it says is LUX's.
    let relay = s.forge(|m, _| {
        m.origin_site = "LUX".into();
        m.package_id = "gadgets".into();
    });
    s.import_refused(
        &relay,
        4,
        &[
            "site CEN relays package gadgets of site LUX, and this site has no parent",
            "import with --relayed-by CEN",
        ],
    );
    expect_exit(
        &s.bxl,
        "import",
        &[&relay[..], &relayed_by("CEN")].concat(),
        0,
        &[],
    );
}

// ---------------------------------------------------------------------------
// Replays and reused parcel ids.
// ---------------------------------------------------------------------------

#[test]
fn replaying_an_old_parcel_after_a_newer_version_is_a_no_op() {
    let s = scene();
    let v2 = &s.base.volumes;
    s.bxl.import(&[&v2[0]]).success();
    let v3 = Honest::write(
        &s.package,
        &info("CEN", "BXL", "tools", 3),
        &s.key,
        &small_options(),
        &s.world.medium(),
    );
    s.bxl.import(&[&v3.volumes[0]]).success();
    let catalog = s.bxl.store_state();
    let files = s.files();
    let stdout = s
        .bxl
        .import(&[&v2[0]])
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(
        stdout.contains("already imported; nothing to do"),
        "{stdout}"
    );
    assert_eq!(s.bxl.store_state(), catalog);
    assert_eq!(s.files(), files);
}

#[test]
fn import_refuses_a_version_above_what_the_catalog_records_before_recording_anything() {
    let s = scene();
    let version = i64::MAX as u64 + 1;
    let parcel = Honest::write(
        &s.package,
        &info("CEN", "BXL", "tools", version),
        &s.key,
        &small_options(),
        &s.world.medium(),
    );
    s.import_refused(
        &parcel.volumes,
        4,
        &[
            &format!("its package version {version} is above {}", i64::MAX),
            "ask CEN to send the package under a smaller version number",
        ],
    );
    let id = parcel.manifest.parcel_id.to_string();
    s.bxl.run(&["show", &id]).code(2);
}

#[test]
fn import_refuses_a_delta_whose_whole_base_files_declare_absurd_sizes_as_a_changed_base() {
    let s = scene();
    // BXL holds v1; CEN's delta v2 on it, its unchanged files taken whole
    // from v1, then re-signed declaring 2^64 - 2 bytes for each of them.
    let mut v1_info = info("CEN", "BXL", "tools", 1);
    v1_info.parcel_id = ParcelId::random();
    let v1_written = Honest::write(
        &s.package,
        &v1_info,
        &s.key,
        &small_options(),
        &s.world.medium(),
    );
    let package = s.world.dir("tools-3");
    write_small_package(&package, 1);
    fs::write(package.join("CHANGES"), b"3: more\n").expect("write");
    let delta = Honest::write_delta(
        &package,
        &info("CEN", "BXL", "tools", 3),
        &v1_written.manifest,
        &s.key,
        &small_options(),
        &s.world.medium(),
    );
    let forged = delta.forge(&s.key, &s.world.medium(), |manifest, _| {
        let whole = manifest.base.as_ref().expect("a delta").whole.clone();
        assert!(!whole.is_empty());
        for i in whole {
            if let EntryKind::File { size, .. } = &mut manifest.entries[i as usize].kind {
                *size = u64::MAX - 1;
            }
        }
    });
    let stderr = s.import_refused(
        &forged,
        4,
        &[
            "tools v3",
            "the base version's copy does not hold what the parcel names",
        ],
    );
    assert!(!stderr.contains("not enough space"), "{stderr}");
}

#[test]
fn import_refuses_another_parcel_reusing_the_id_of_an_imported_parcel() {
    let s = scene();
    s.bxl.import(&[&s.base.volumes[0]]).success();
    let id = s.base.manifest.parcel_id;
    let other = s.world.package("other-tools", 5);
    let mut info = info("CEN", "BXL", "tools", 3);
    info.parcel_id = id;
    let reused = Honest::write(&other, &info, &s.key, &small_options(), &s.world.medium());
    s.import_refused(
        &reused.volumes,
        4,
        &[
            &id.to_string(),
            "tools v3",
            "already recorded here for tools v2",
        ],
    );
    assert!(!s.bxl.store("tools", 3).exists());
}

#[test]
fn import_refuses_a_parcel_reusing_the_id_of_a_parcel_this_site_sent() {
    let s = scene();
    let outgoing = s
        .bxl
        .create(&s.package, "notes", 1, "CEN", &[&s.world.medium()]);
    let id = ParcelId::parse(&outgoing.parcel_id).expect("parcel id");
    let mut info = info("CEN", "BXL", "tools", 3);
    info.parcel_id = id;
    let reused = Honest::write(
        &s.package,
        &info,
        &s.key,
        &small_options(),
        &s.world.medium(),
    );
    s.import_refused(
        &reused.volumes,
        4,
        &[
            &outgoing.parcel_id,
            "its id is already recorded here for notes v1 (an outgoing parcel from BXL to CEN)",
        ],
    );
    assert!(!s.bxl.store("tools", 3).exists());
    assert_eq!(s.bxl.status(&outgoing.parcel_id), "created");
}

// ---------------------------------------------------------------------------
// Correctly signed receipts that must not confirm a parcel.
// ---------------------------------------------------------------------------

/// CEN's parcel of `tools` v2 to BXL, created with the CLI, and a receipt
/// for it as BXL would write, before signing.
fn sent_parcel(s: &Scene) -> (String, Receipt) {
    let created = s
        .cen
        .create(&s.package, "tools", 2, "BXL", &[&s.world.medium()]);
    let receipt = Receipt {
        parcel_id: ParcelId::parse(&created.parcel_id).expect("parcel id"),
        source_site: "CEN".into(),
        destination_site: "BXL".into(),
        package_id: "tools".into(),
        package_version: 2,
        tree_digest: parcel_format::write::tree_digest_of_dir(&s.package).expect("digest"),
        index_sha256: [0; 32],
        imported: 1_700_000_100,
    };
    (created.parcel_id, receipt)
}

#[test]
fn receipt_apply_refuses_a_receipt_signed_by_another_trusted_site() {
    let s = scene();
    let lux = s.world.site("LUX");
    s.cen.trust(&lux);
    let (id, receipt) = sent_parcel(&s);
    let file = s.world.dir("mail").join("receipt.txt");
    fs::write(&file, receipt.to_signed_text(&secret_key(&lux))).expect("write receipt");
    s.cen
        .run(&["receipt", "apply", arg(&file)])
        .code(3)
        .stderr(predicates::str::contains("receipt.txt"))
        .stderr(predicates::str::contains(
            "not signed with the key of site BXL",
        ));
    assert_eq!(s.cen.status(&id), "created");
}

#[test]
fn receipt_apply_refuses_a_correctly_signed_receipt_for_other_content() {
    let s = scene();
    let (id, mut receipt) = sent_parcel(&s);
    receipt.tree_digest[0] ^= 1;
    let file = s.world.dir("mail").join("receipt.txt");
    fs::write(&file, receipt.to_signed_text(&secret_key(&s.bxl))).expect("write receipt");
    let message = format!("does not match parcel {id} as sent");
    s.cen
        .run(&["receipt", "apply", arg(&file)])
        .code(3)
        .stderr(predicates::str::contains("receipt.txt"))
        .stderr(predicates::str::contains(message));
    assert_eq!(s.cen.status(&id), "created");
}
