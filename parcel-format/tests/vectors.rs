//! The test vectors in testdata/vectors (described in testdata/README.md):
//! the runner that reads every vector as a destination would and checks its
//! outcome class exactly, and the seeded generator that rebuilds them.
//!
//! After a deliberate format change, rebuild the vectors with
//! `PARCEL_REGENERATE_VECTORS=1 cargo test -p parcel-format --test vectors`.
//! Otherwise a test checks that the generator still makes the committed files
//! byte for byte, so generator and vectors never drift apart.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use parcel_format::encrypt::{Encryption, Identity};
use parcel_format::header::VolumeHeader;
use parcel_format::limits::{MAX_CHUNK, MAX_INDEX_RAW, MAX_INDEX_STORED, MAX_PACK_RAW};
use parcel_format::manifest::{check_site_code, hex, Base, BaseChunk, ChunkRecord, PackRecord};
use parcel_format::pack::decompress_exact;
use parcel_format::read::{worst_class, Parcel};
use parcel_format::repair::{self, Repaired};
use parcel_format::sign::TrustedKeys;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{
    scan, tree_digest_of_dir, write_parcel, write_parcel_with, Extras, ParcelInfo, WriteOptions,
};
use parcel_format::{
    testkit, verify, ChunkParams, Entry, EntryKind, FailureClass, Hash, Manifest, ParcelId, Problem,
};

// ---------------------------------------------------------------------------
// The vector file: `key: value` header lines, an empty line, the volume bytes.
// ---------------------------------------------------------------------------

/// Every failure class, in `FailureClass` order.
const CLASSES: [FailureClass; 8] = [
    FailureClass::Signature,
    FailureClass::Volume,
    FailureClass::Limit,
    FailureClass::Index,
    FailureClass::Path,
    FailureClass::Chunk,
    FailureClass::Policy,
    FailureClass::Io,
];

/// The classes the vectors must cover (io failures depend on the machine, not the bytes).
const COVERED: [FailureClass; 7] = [
    FailureClass::Signature,
    FailureClass::Volume,
    FailureClass::Limit,
    FailureClass::Index,
    FailureClass::Path,
    FailureClass::Chunk,
    FailureClass::Policy,
];

/// What reading a vector's volumes ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure(FailureClass),
}

impl Outcome {
    fn parse(text: &str) -> Option<Outcome> {
        if text == "success" {
            return Some(Outcome::Success);
        }
        CLASSES
            .iter()
            .find(|c| c.name() == text)
            .map(|c| Outcome::Failure(*c))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => f.write_str("success"),
            Outcome::Failure(class) => f.write_str(class.name()),
        }
    }
}

/// One vector: the expected outcome, what the reader trusts and where it is,
/// and the volume files it is given, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Vector {
    name: String,
    expect: Outcome,
    /// The extracted tree's digest, for `expect: success` only.
    tree: Option<Hash>,
    /// The data volumes a reader must rebuild from parity (FORMAT.md §13),
    /// for `expect: success` only; `None` when nothing is rebuilt.
    repaired: Option<Vec<u32>>,
    comment: String,
    trusted: Vec<(VerifyingKey, String)>,
    /// The age X25519 identity (`AGE-SECRET-KEY-1…`) the reader decrypts
    /// with (FORMAT.md §12); none when the vector has no `identity:` line.
    identity: Option<String>,
    destination: String,
    volumes: Vec<(String, Vec<u8>)>,
}

impl Vector {
    fn file_name(&self) -> String {
        format!("{}.vector", self.name)
    }

    fn encode(&self) -> Vec<u8> {
        let mut head = String::new();
        let _ = writeln!(head, "expect: {}", self.expect);
        if let Some(tree) = self.tree {
            let _ = writeln!(head, "tree: {}", hex(&tree));
        }
        if let Some(repaired) = &self.repaired {
            let list: Vec<String> = repaired.iter().map(u32::to_string).collect();
            let _ = writeln!(head, "repaired: {}", list.join(" "));
        }
        let _ = writeln!(head, "comment: {}", self.comment);
        for (key, label) in &self.trusted {
            let _ = writeln!(head, "trusted: {} {label}", hex(key.as_bytes()));
        }
        if let Some(identity) = &self.identity {
            let _ = writeln!(head, "identity: {identity}");
        }
        let _ = writeln!(head, "destination: {}", self.destination);
        for (name, bytes) in &self.volumes {
            let _ = writeln!(head, "volume: {name} {}", bytes.len());
        }
        head.push('\n');
        let mut out = head.into_bytes();
        for (_, bytes) in &self.volumes {
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Parses a vector file strictly: every rule of testdata/README.md is checked.
    fn parse(name: &str, bytes: &[u8]) -> Result<Vector, String> {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or("no empty line ends the header")?;
        let head = bytes.get(..end).unwrap_or_default();
        if !head.is_ascii() {
            return Err("the header is not ASCII".into());
        }
        let head = std::str::from_utf8(head).map_err(|e| e.to_string())?;
        let mut body = bytes.get(end + 2..).unwrap_or_default();

        let mut expect = None;
        let mut tree = None;
        let mut repaired = None;
        let mut comment = None;
        let mut trusted = Vec::new();
        let mut identity = None;
        let mut destination = None;
        let mut lengths: Vec<(String, usize)> = Vec::new();
        for line in head.split('\n') {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("line {line:?} is not `key: value`"))?;
            if value.is_empty()
                || value.trim() != value
                || value.bytes().any(|b| b.is_ascii_control())
            {
                return Err(format!("line {line:?} has an empty or untidy value"));
            }
            match key {
                "expect" => {
                    once(&expect, key)?;
                    expect = Some(
                        Outcome::parse(value)
                            .ok_or_else(|| format!("unknown outcome {value:?}"))?,
                    );
                }
                "tree" => {
                    once(&tree, key)?;
                    tree = Some(unhex32(value).ok_or("tree: is not 64 lowercase hex digits")?);
                }
                "repaired" => {
                    once(&repaired, key)?;
                    let list: Vec<u32> = value
                        .split(' ')
                        .map(|n| {
                            n.parse()
                                .ok()
                                .filter(|v: &u32| v.to_string() == n && *v > 0)
                        })
                        .collect::<Option<_>>()
                        .ok_or("repaired: is not volume numbers separated by spaces")?;
                    if list.windows(2).any(|w| w[0] >= w[1]) {
                        return Err("repaired: volume numbers must increase".into());
                    }
                    repaired = Some(list);
                }
                "comment" => {
                    once(&comment, key)?;
                    comment = Some(value.to_owned());
                }
                "trusted" => {
                    let (key, label) = value
                        .split_once(' ')
                        .ok_or("trusted: is not `<key> <label>`")?;
                    let key = unhex32(key).ok_or("trusted key is not 64 lowercase hex digits")?;
                    let key = VerifyingKey::from_bytes(&key)
                        .map_err(|_| "trusted key is not an Ed25519 public key")?;
                    check_site_code(label)?;
                    trusted.push((key, label.to_owned()));
                }
                "identity" => {
                    once(&identity, key)?;
                    value
                        .parse::<Identity>()
                        .map_err(|_| "identity: is not an age X25519 identity")?;
                    identity = Some(value.to_owned());
                }
                "destination" => {
                    once(&destination, key)?;
                    check_site_code(value)?;
                    destination = Some(value.to_owned());
                }
                "volume" => {
                    let (file, len) = value
                        .split_once(' ')
                        .ok_or("volume: is not `<file name> <length>`")?;
                    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
                    if file.is_empty() || file == "." || file == ".." || !file.chars().all(plain) {
                        return Err(format!("volume file name {file:?} is not a plain name"));
                    }
                    if lengths.iter().any(|(f, _)| f == file) {
                        return Err(format!("volume file name {file:?} given twice"));
                    }
                    let n: usize = len
                        .parse()
                        .ok()
                        .filter(|n: &usize| n.to_string() == len)
                        .ok_or_else(|| format!("volume length {len:?} is not a decimal number"))?;
                    lengths.push((file.to_owned(), n));
                }
                _ => return Err(format!("unknown key {key:?}")),
            }
        }
        let expect = expect.ok_or("no `expect:` line")?;
        if (expect == Outcome::Success) != tree.is_some() {
            return Err("`tree:` is required with `expect: success` and only then".into());
        }
        if repaired.is_some() && expect != Outcome::Success {
            return Err("`repaired:` goes with `expect: success` only".into());
        }
        if lengths.is_empty() {
            return Err("no `volume:` line".into());
        }
        let total: usize = lengths.iter().map(|(_, n)| n).sum();
        if total != body.len() {
            return Err(format!(
                "the volumes add up to {total} bytes but {} follow the header",
                body.len()
            ));
        }
        let volumes = lengths
            .into_iter()
            .map(|(file, n)| {
                let (bytes, rest) = body.split_at(n);
                body = rest;
                (file, bytes.to_vec())
            })
            .collect();
        Ok(Vector {
            name: name.to_owned(),
            expect,
            tree,
            repaired,
            comment: comment.ok_or("no `comment:` line")?,
            trusted,
            identity,
            destination: destination.ok_or("no `destination:` line")?,
            volumes,
        })
    }
}

/// Refuses a key given a second time.
fn once<T>(slot: &Option<T>, key: &str) -> Result<(), String> {
    match slot {
        Some(_) => Err(format!("`{key}:` given twice")),
        None => Ok(()),
    }
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// The runner.
// ---------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors");
            if std::env::var_os("PARCEL_REGENERATE_VECTORS").is_some_and(|v| v == "1") {
                regenerate(&dir);
            }
            dir
        })
        .clone()
}

fn load_vectors() -> Vec<Vector> {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vector"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap();
            let bytes = fs::read(path).unwrap();
            Vector::parse(name, &bytes)
                .unwrap_or_else(|e| panic!("{}: malformed vector: {e}", path.display()))
        })
        .collect()
}

/// What reading a vector's volumes gave.
struct Reading {
    outcome: Outcome,
    /// The problems behind a failure.
    problems: String,
    /// The extracted tree's digest, on success.
    tree: Option<Hash>,
    /// The data volumes rebuilt from parity, if any.
    repaired: Option<Vec<u32>>,
}

fn failure(problems: &[Problem]) -> Reading {
    Reading {
        outcome: worst_class(problems).map_or(Outcome::Success, Outcome::Failure),
        problems: problems
            .iter()
            .map(|p| format!("[{}] {p}", p.class()))
            .collect::<Vec<_>>()
            .join("; "),
        tree: None,
        repaired: None,
    }
}

/// Writes a vector's volumes into `dir` and repairs them from their parity
/// volumes, if any (FORMAT.md §13.5; a parcel without them comes back as
/// given), with the keys the reader trusts and its identity.
fn set_out(vector: &Vector, dir: &Path) -> (repair::Repair, TrustedKeys, Option<Identity>) {
    let media = dir.join("media");
    fs::create_dir(&media).unwrap();
    let paths: Vec<PathBuf> = vector
        .volumes
        .iter()
        .map(|(name, bytes)| {
            let path = media.join(name);
            fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let mut trust = TrustedKeys::new();
    for (key, label) in &vector.trusted {
        trust.add(label.clone(), *key);
    }
    let identity: Option<Identity> = vector.identity.as_ref().map(|text| text.parse().unwrap());
    let repair = repair::repair(&paths, &trust, &dir.join("scratch"));
    (repair, trust, identity)
}

/// Reads a vector's volumes as a destination does: verify, open, check the
/// destination, extract into a fresh empty directory, digest what was extracted.
fn run(vector: &Vector) -> Reading {
    let tmp = tempfile::tempdir().unwrap();
    let (repair, trust, identity) = set_out(vector, tmp.path());
    let paths = repair.paths.clone();
    let repaired: Vec<u32> = repair.repaired.iter().map(Repaired::volume).collect();
    let repaired = (!repaired.is_empty()).then_some(repaired);
    let mut report = verify::verify_with(
        &paths,
        &trust,
        identity.as_ref(),
        verify::Depth::Content,
        &mut |_, _| {},
    );
    report.problems.splice(0..0, repair.problems);
    if !report.is_ok() {
        return failure(&report.problems);
    }
    let parcel = match Parcel::open_with(&paths, &trust, identity.as_ref()) {
        Ok(parcel) => parcel,
        Err(problems) => return failure(&problems),
    };
    if let Err(problem) = parcel.check_destination(&vector.destination) {
        return failure(&[problem]);
    }
    let extracted = tmp.path().join("extracted");
    fs::create_dir(&extracted).unwrap();
    if let Err(problem) = parcel.extract(&extracted, &mut |_| {}) {
        return failure(&[problem]);
    }
    match tree_digest_of_dir(&extracted) {
        Ok(tree) => Reading {
            outcome: Outcome::Success,
            problems: String::new(),
            tree: Some(tree),
            repaired,
        },
        Err(e) => Reading {
            outcome: Outcome::Success,
            problems: format!("cannot digest the extracted tree: {e}"),
            tree: None,
            repaired,
        },
    }
}

#[test]
fn every_vector_ends_in_exactly_its_expected_outcome() {
    let vectors = load_vectors();
    let mut wrong = Vec::new();
    for vector in &vectors {
        let reading = run(vector);
        // Shown with --nocapture: what each vector was refused for.
        eprintln!("{}: {} {}", vector.name, reading.outcome, reading.problems);
        if reading.outcome != vector.expect {
            wrong.push(format!(
                "{}: expected {}, got {} ({})",
                vector.name, vector.expect, reading.outcome, reading.problems
            ));
        } else if vector.expect == Outcome::Success && reading.tree != vector.tree {
            wrong.push(format!(
                "{}: extracted tree digest {} differs from the vector's {} {}",
                vector.name,
                reading.tree.map_or("none".into(), |t| hex(&t)),
                vector.tree.map_or("none".into(), |t| hex(&t)),
                reading.problems
            ));
        } else if vector.expect == Outcome::Success && reading.repaired != vector.repaired {
            wrong.push(format!(
                "{}: rebuilt volumes {:?}, the vector says {:?}",
                vector.name, reading.repaired, vector.repaired
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} vectors went wrong:\n{}",
        wrong.len(),
        vectors.len(),
        wrong.join("\n")
    );
}

/// The media check (FORMAT.md §7.4) of every vector: it decodes only the
/// head of the index, so it may pass what the content check refuses past
/// the head; but it never passes what lies within its reach (signatures,
/// volumes, the index's hash and head), never fails for another reason than
/// the reader does, and names the same package and destinations.
#[test]
fn the_media_check_fails_what_it_reaches_and_names_the_package_from_the_head() {
    let mut wrong = Vec::new();
    let mut passed_beyond_reach = Vec::new();
    for vector in load_vectors() {
        let tmp = tempfile::tempdir().unwrap();
        let (repair, trust, identity) = set_out(&vector, tmp.path());
        let depth = |depth| {
            let mut report = verify::verify_with(
                &repair.paths,
                &trust,
                identity.as_ref(),
                depth,
                &mut |_, _| {},
            );
            report
                .problems
                .splice(0..0, repair.problems.iter().cloned());
            report
        };
        let media = depth(verify::Depth::Media);
        let content = depth(verify::Depth::Content);
        let got = media.class().map_or(Outcome::Success, Outcome::Failure);
        // Only what cannot be decrypted here is checked as media alone.
        let undecryptable = content
            .problems
            .iter()
            .any(|p| matches!(p, Problem::CannotDecrypt { .. }));
        if media.media_only != undecryptable {
            wrong.push(format!(
                "{}: media_only is {}, the content check {} decrypt it",
                vector.name,
                media.media_only,
                if undecryptable { "could not" } else { "could" }
            ));
        }
        // A delta's base version, read past the tables, is the one the
        // whole decoding finds, wherever both read the index.
        if media.package.is_some()
            && content.package.is_some()
            && media.base_version != content.base_version
        {
            wrong.push(format!(
                "{}: the media check reads base version {:?}, the content check {:?}",
                vector.name, media.base_version, content.base_version
            ));
        }
        let within_reach = matches!(
            vector.expect,
            Outcome::Failure(FailureClass::Signature | FailureClass::Volume)
        ) || vector.name.starts_with("index-parcel-id")
            || vector.name.starts_with("index-volume-version")
            || vector.name.starts_with("index-altered")
            || vector.name.starts_with("index-encrypted")
            || vector.name.starts_with("limit-index");
        match (vector.expect, got) {
            (Outcome::Success, Outcome::Success)
                if media.package.is_none()
                    || media.package != content.package
                    || media.destinations != content.destinations =>
            {
                wrong.push(format!(
                    "{}: the media check names {:?} for {:?}, the content check {:?} for {:?}",
                    vector.name,
                    media.package,
                    media.destinations,
                    content.package,
                    content.destinations
                ))
            }
            (Outcome::Success, Outcome::Success) => {}
            (expected, Outcome::Success) if within_reach => wrong.push(format!(
                "{}: expected {expected:?}, the media check passed it",
                vector.name
            )),
            (_, Outcome::Success) => passed_beyond_reach.push(vector.name.clone()),
            (expected, got) if expected != got => wrong.push(format!(
                "{}: expected {expected:?}, the media check found {got:?}: {:?}",
                vector.name, media.problems
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Beyond its reach, exactly: a trusted signer's index that contradicts
    // itself past the head, content, paths and policy. (`index-not-postcard`
    // is not among them: its head does not decode either.)
    let expected = [
        "chunk-encrypted-pack-damaged",
        "chunk-encrypted-pack-sealed-as-another-pack",
        "chunk-file-hash-wrong",
        "chunk-hash-wrong",
        "chunk-pack-content-size-differs",
        "chunk-pack-huge-content-size",
        "chunk-pack-short-output",
        "chunk-pack-two-frames",
        "index-chunk-out-of-range",
        "index-chunks-do-not-tile-pack",
        "index-delta-base-chunk-file",
        "index-delta-whole-entry-not-a-file",
        "index-overlapping-chunks",
        "index-pack-outside-volume",
        "limit-chunk-length",
        "limit-delta-base-chunk-length",
        "limit-pack-raw-length",
        "path-absolute",
        "path-backslash",
        "path-case-collision",
        "path-delta-base-file-escapes",
        "path-directory-and-file-same-name",
        "path-dot-dot",
        "path-normalisation-collision",
        "path-nul",
        "path-out-of-walk-order",
        "path-parent-differs-in-case",
        "path-parent-not-listed",
        "path-symlink-escapes",
        "path-through-symlink",
        "policy-another-destination",
        "policy-delta-base-not-held",
        "policy-encrypted-without-identity",
        "policy-read-at-source-site",
    ];
    assert_eq!(passed_beyond_reach, expected);
}

#[test]
fn vectors_cover_every_failure_class() {
    let vectors = load_vectors();
    assert!(vectors.len() >= 30, "only {} vectors", vectors.len());
    let failures = vectors
        .iter()
        .filter(|v| v.expect != Outcome::Success)
        .count();
    assert!(failures >= 20, "only {failures} failure vectors");
    for class in COVERED {
        assert!(
            vectors.iter().any(|v| v.expect == Outcome::Failure(class)),
            "no vector expects {}",
            class.name()
        );
    }
    let bytes: usize = vectors.iter().map(|v| v.encode().len()).sum();
    assert!(bytes < 4 << 20, "the vectors take {bytes} bytes");
}

#[test]
fn committed_vectors_are_what_the_generator_makes() {
    let dir = vectors_dir();
    let generated = generate();
    let expected: BTreeSet<String> = generated.iter().map(Vector::file_name).collect();
    let committed: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".vector"))
        .collect();
    assert_eq!(
        committed, expected,
        "testdata/vectors differs from the generator's list; rerun with PARCEL_REGENERATE_VECTORS=1"
    );
    let stale: Vec<String> = generated
        .iter()
        .filter(|v| fs::read(dir.join(v.file_name())).ok() != Some(v.encode()))
        .map(|v| v.name.clone())
        .collect();
    assert!(
        stale.is_empty(),
        "these vectors differ from what the generator makes (rerun with PARCEL_REGENERATE_VECTORS=1 if the change is deliberate): {stale:?}"
    );
}

/// Writes the generated vectors into `dir`, removing vectors it no longer makes.
fn regenerate(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let vectors = generate();
    let names: BTreeSet<String> = vectors.iter().map(Vector::file_name).collect();
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".vector") && !names.contains(&name) {
            fs::remove_file(dir.join(&name)).unwrap();
        }
    }
    for vector in &vectors {
        let temp = dir.join(format!(".{}.partial", vector.file_name()));
        fs::write(&temp, vector.encode()).unwrap();
        fs::rename(&temp, dir.join(vector.file_name())).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The generator: fixed keys, ids, times and seeded contents, so that it makes
// the same bytes every time.
// ---------------------------------------------------------------------------

/// Creation time of every generated parcel.
const CREATED: i64 = 1_700_000_000;
/// Modification time of every file, directory and symlink in the generated packages.
const MTIME: i64 = 1_699_990_000;
/// Volume size: the smallest a writer accepts, so a 130 KB package takes three volumes.
const VOLUME_SIZE: u64 = 64 * 1024;
const PARCEL: ParcelId = ParcelId([0x11; 16]);
const RESENT_PARCEL: ParcelId = ParcelId([0x22; 16]);
const OTHER_SITE_PARCEL: ParcelId = ParcelId([0x33; 16]);
/// The parcel with repair data (FORMAT.md §13).
const PARITY_PARCEL: ParcelId = ParcelId([0x44; 16]);
/// Volume file name stem, as `parcel create` names the volumes of CEN00012 version 3.
const STEM: &str = "CEN00012-3";

/// The source site's key.
fn cen_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

/// A second site's key.
fn oth_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

fn trust_cen() -> Vec<(VerifyingKey, String)> {
    vec![(cen_key().verifying_key(), "CEN".into())]
}

fn info(parcel_id: ParcelId, source: &str, destinations: &[&str]) -> ParcelInfo {
    ParcelInfo {
        parcel_id,
        source_site: source.into(),
        origin_site: None,
        destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
        package_id: "CEN00012".into(),
        package_version: 3,
        created: CREATED,
        comment: "test vector".into(),
    }
}

fn options() -> WriteOptions {
    WriteOptions {
        volume_size: VOLUME_SIZE,
        level: 3,
        chunking: ChunkParams {
            min: 256,
            avg: 1024,
            max: 4096,
        },
        pack_target: 4096,
        threads: 1,
        encryption: None,
        read_back: false,
    }
}

/// xorshift64: package contents depend on nothing but the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Incompressible bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }

    /// Compressible text.
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "parcel", "courier", "volume", "site", "package", "chunk", "signed", "index", "medium",
            "deliver", "archive", "the", "a", "of", "to", "and",
        ];
        let mut out = String::new();
        let mut column = 0;
        while out.len() < n {
            let word = WORDS[(self.next() % WORDS.len() as u64) as usize];
            out.push_str(word);
            column += word.len() + 1;
            out.push(if column > 60 { '\n' } else { ' ' });
            if column > 60 {
                column = 0;
            }
        }
        out.truncate(n);
        out.into_bytes()
    }
}

/// One item of a generated package.
enum Node {
    Dir(&'static str),
    File(&'static str, Vec<u8>, u32),
    Link(&'static str, &'static str),
}

/// Makes the package on disk with every mode and time pinned.
fn build_tree(root: &Path, nodes: &[Node]) {
    fs::create_dir(root).unwrap();
    let time = UNIX_EPOCH + Duration::from_secs(MTIME as u64);
    for node in nodes {
        match node {
            Node::Dir(path) => fs::create_dir(root.join(path)).unwrap(),
            Node::File(path, bytes, mode) => {
                let full = root.join(path);
                fs::write(&full, bytes).unwrap();
                fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
                File::open(&full).unwrap().set_modified(time).unwrap();
            }
            // std cannot set a symlink's own time; `honest` pins it in the manifest.
            Node::Link(path, target) => {
                std::os::unix::fs::symlink(target, root.join(path)).unwrap()
            }
        }
    }
    // Directories last, deepest first, once nothing more changes in them.
    let mut dirs: Vec<&str> = nodes
        .iter()
        .filter_map(|n| match n {
            Node::Dir(path) => Some(*path),
            _ => None,
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for dir in dirs {
        File::open(root.join(dir))
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
}

/// A few files in a few directories: one volume, several packs of several chunks.
fn small_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0001);
    vec![
        Node::File("README", rng.text(1200), 0o644),
        Node::Dir("bin"),
        Node::File("bin/tool", rng.bytes(4000), 0o755),
        Node::Dir("doc"),
        Node::File("doc/guide.txt", rng.text(3000), 0o644),
        Node::Dir("lib"),
        Node::File("lib/libfoo.so.1", rng.bytes(2500), 0o644),
    ]
}

/// 130 KB of incompressible content: three 64 KiB volumes.
fn big_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0002);
    vec![
        Node::File("README", rng.text(800), 0o644),
        Node::Dir("data"),
        Node::File("data/blob.bin", rng.bytes(90_000), 0o644),
        Node::File("data/table.bin", rng.bytes(40_000), 0o644),
    ]
}

/// Empty files, empty directories, non-ASCII names and symlinks.
fn special_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0003);
    vec![
        Node::Dir("donn\u{e9}es"),
        Node::File("donn\u{e9}es/caf\u{e9}.txt", rng.text(700), 0o644),
        Node::Dir("empty"),
        Node::Dir("empty/nested"),
        Node::File("empty.txt", Vec::new(), 0o644),
        Node::Dir("lib"),
        Node::Link("lib/current", "libbar.so.2"),
        Node::File("lib/libbar.so.2", rng.bytes(1500), 0o644),
        Node::Link("lib/readme-link", "../\u{65e5}\u{672c}\u{8a9e}.txt"),
        Node::File("\u{65e5}\u{672c}\u{8a9e}.txt", rng.text(300), 0o644),
    ]
}

/// Executable and non-executable files with assorted modes.
fn exec_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0004);
    vec![
        Node::Dir("bin"),
        Node::File("bin/run.sh", rng.text(400), 0o755),
        Node::File("bin/private-tool", rng.bytes(900), 0o700),
        Node::Dir("etc"),
        Node::File("etc/config", rng.text(500), 0o644),
        Node::File("etc/secret", rng.text(200), 0o600),
    ]
}

/// The same content several times over: stored once.
fn dedup_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0005);
    let blob = rng.bytes(9000);
    let mut longer = blob.clone();
    longer.extend(rng.bytes(3000));
    vec![
        Node::File("a.bin", blob.clone(), 0o644),
        Node::Dir("copy"),
        Node::File("copy/a.bin", blob.clone(), 0o644),
        Node::File("copy/again.bin", blob, 0o755),
        Node::File("longer.bin", longer, 0o644),
    ]
}

/// A parcel: its manifest as signed, its stored packs, its volume files in order.
#[derive(Clone)]
struct Built {
    manifest: Manifest,
    packs: Vec<Vec<u8>>,
    volumes: Vec<(String, Vec<u8>)>,
}

fn read_volumes(paths: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            (name, fs::read(p).unwrap())
        })
        .collect()
}

/// A parcel as the honest writer makes it from `nodes`.
fn honest(nodes: &[Node], info: &ParcelInfo, key: &SigningKey, stem: &str) -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("package");
    build_tree(&package, nodes);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let options = options();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out,
            capacity: None,
        }],
        stem,
        options.volume_size,
    );
    let scanned = scan(&package).unwrap();
    let written = write_parcel(scanned, info, key, &options, &mut sink, &mut |_| {}).unwrap();
    let paths: Vec<PathBuf> = written.volumes.iter().map(|(p, _)| p.clone()).collect();
    let volumes = read_volumes(&paths);
    let mut manifest = written.manifest;
    assert_eq!(
        manifest.tree_digest(),
        tree_digest_of_dir(&package).unwrap()
    );
    let packs: Vec<Vec<u8>> = manifest
        .packs
        .iter()
        .map(|p| {
            let (_, bytes) = &volumes[p.volume as usize - 1];
            bytes[p.offset as usize..p.offset as usize + p.stored_len as usize].to_vec()
        })
        .collect();
    // std cannot set a symlink's own time, so the writer recorded when each
    // link was made: pin it, and lay the same packs out again with write_raw,
    // which places an honest manifest exactly as write_parcel does.
    let mut links = false;
    for entry in &mut manifest.entries {
        if matches!(entry.kind, EntryKind::Symlink { .. }) {
            entry.mtime = MTIME;
            links = true;
        }
    }
    let again = emit(&mut manifest, &packs, key, stem, true);
    if !links {
        assert!(
            again == volumes,
            "testkit::write_raw no longer lays out an honest manifest as write_parcel does"
        );
    }
    Built {
        manifest,
        packs,
        volumes: again,
    }
}

/// Lays `packs` and `manifest` out as a signed parcel with testkit::write_raw.
fn emit(
    manifest: &mut Manifest,
    packs: &[Vec<u8>],
    key: &SigningKey,
    stem: &str,
    fill_hashes: bool,
) -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: tmp.path().to_owned(),
            capacity: None,
        }],
        stem,
        VOLUME_SIZE,
    );
    let paths = testkit::write_raw(manifest, packs, key, VOLUME_SIZE, fill_hashes, &mut sink)
        .unwrap_or_else(|e| panic!("write_raw: {e}"));
    read_volumes(&paths)
}

/// A parcel signed with the source key from a changed copy of `base`'s manifest and packs.
fn hostile(
    base: &Built,
    fill_hashes: bool,
    change: impl FnOnce(&mut Manifest, &mut Vec<Vec<u8>>),
) -> Vec<(String, Vec<u8>)> {
    let mut manifest = base.manifest.clone();
    let mut packs = base.packs.clone();
    change(&mut manifest, &mut packs);
    emit(&mut manifest, &packs, &cen_key(), STEM, fill_hashes)
}

/// Runs `edit` over the volumes as files (for the testkit's header tools).
fn edit_files(
    volumes: &[(String, Vec<u8>)],
    edit: impl FnOnce(&[PathBuf]),
) -> Vec<(String, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = volumes
        .iter()
        .map(|(name, bytes)| {
            let path = tmp.path().join(name);
            fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    edit(&paths);
    read_volumes(&paths)
}

/// Re-signs every volume's header with the source key after `change`.
fn resign_all(
    volumes: &[(String, Vec<u8>)],
    change: impl Fn(&mut VolumeHeader),
) -> Vec<(String, Vec<u8>)> {
    edit_files(volumes, |paths| {
        for path in paths {
            testkit::resign_header(path, &cen_key(), &change).unwrap();
        }
    })
}

/// A volume's header record, unchecked.
fn header_of(bytes: &[u8]) -> VolumeHeader {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v");
    fs::write(&path, bytes).unwrap();
    testkit::read_header_unchecked(&path).unwrap()
}

/// The decompressed bytes of pack `p`.
fn pack_raw(base: &Built, p: usize) -> Vec<u8> {
    let raw_len = base.manifest.packs[p].raw_len as usize;
    decompress_exact(&base.packs[p], raw_len).unwrap()
}

/// Index of a pack holding at least two chunks (so chunks can be made to overlap).
fn pack_with_two_chunks(manifest: &Manifest) -> usize {
    (0..manifest.chunks.len() - 1)
        .find(|&i| manifest.chunks[i].pack == manifest.chunks[i + 1].pack)
        .expect("no pack holds two chunks")
}

/// A zstd frame made by hand: a header declaring `declared` content bytes,
/// then `data` as one raw block. A correct frame when `declared == data.len()`.
fn handmade_frame(declared: u64, data: &[u8]) -> Vec<u8> {
    assert!(data.len() < 128 * 1024);
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Frame header descriptor: an 8-byte content size, a window descriptor,
    // no checksum, no dictionary.
    frame.push(0xC0);
    // Window descriptor: 2^(10 + 7) = 128 KiB.
    frame.push(7 << 3);
    frame.extend_from_slice(&declared.to_le_bytes());
    // Block header: last block, raw, `len` bytes.
    let block = ((data.len() as u32) << 3) | 1;
    frame.extend_from_slice(&block.to_le_bytes()[..3]);
    frame.extend_from_slice(data);
    frame
}

/// `base`'s parcel-wide fields with one file of `content`, cut into chunks of
/// `cuts` bytes, in one pack: everything consistent but the sizes.
fn one_file(base: &Manifest, path: &str, content: &[u8], cuts: &[usize]) -> Built {
    let mut chunks = Vec::new();
    let mut offset = 0usize;
    for &len in cuts {
        chunks.push(ChunkRecord {
            sha256: Sha256::digest(&content[offset..offset + len]).into(),
            len: len as u32,
            pack: 0,
            offset: offset as u32,
        });
        offset += len;
    }
    assert_eq!(offset, content.len());
    let manifest = Manifest {
        packs: vec![PackRecord {
            volume: 1,
            offset: 0,
            stored_len: 0,
            raw_len: content.len() as u32,
            stored_sha256: [0; 32],
        }],
        entries: vec![Entry {
            path: path.into(),
            mtime: MTIME,
            kind: EntryKind::File {
                size: content.len() as u64,
                executable: false,
                sha256: Sha256::digest(content).into(),
                chunks: (0..chunks.len() as u32).collect(),
            },
        }],
        chunks,
        ..base.clone()
    };
    Built {
        manifest,
        packs: vec![zstd::bulk::compress(content, 3).unwrap()],
        volumes: Vec::new(),
    }
}

fn flip(volumes: &mut [(String, Vec<u8>)], volume: usize, offset: usize) {
    volumes[volume].1[offset] ^= 0x01;
}

/// A vector read by a BXL reader trusting the CEN key.
fn failing(
    name: &str,
    class: FailureClass,
    comment: &str,
    volumes: Vec<(String, Vec<u8>)>,
) -> Vector {
    Vector {
        name: name.into(),
        expect: Outcome::Failure(class),
        tree: None,
        repaired: None,
        comment: comment.into(),
        trusted: trust_cen(),
        identity: None,
        destination: "BXL".into(),
        volumes,
    }
}

/// A vector of an intact parcel read by a BXL reader trusting the CEN key.
fn succeeding(name: &str, comment: &str, built: &Built) -> Vector {
    Vector {
        name: name.into(),
        expect: Outcome::Success,
        tree: Some(built.manifest.tree_digest()),
        repaired: None,
        comment: comment.into(),
        trusted: trust_cen(),
        identity: None,
        destination: "BXL".into(),
        volumes: built.volumes.clone(),
    }
}

/// Every vector, in a fixed order.
fn generate() -> Vec<Vector> {
    use FailureClass::*;
    let cen = cen_key();
    let small = honest(&small_tree(), &info(PARCEL, "CEN", &["BXL"]), &cen, STEM);
    let big = honest(&big_tree(), &info(PARCEL, "CEN", &["BXL"]), &cen, STEM);
    assert_eq!(small.volumes.len(), 1);
    assert_eq!(big.volumes.len(), 3);
    assert!(small.manifest.packs.len() >= 3);
    let mut v = Vec::new();

    // Success.
    v.push(succeeding(
        "success-single-volume",
        "an honest parcel in one volume",
        &small,
    ));
    v.push(succeeding(
        "success-multi-volume",
        "an honest parcel over three volumes, given in order",
        &big,
    ));
    let mut shuffled = succeeding(
        "success-volumes-shuffled",
        "the three volumes given in the order 3, 1, 2",
        &big,
    );
    shuffled.volumes = vec![
        big.volumes[2].clone(),
        big.volumes[0].clone(),
        big.volumes[1].clone(),
    ];
    v.push(shuffled);
    v.push(succeeding(
        "success-empty-unicode-symlinks",
        "an empty file, empty nested directories, non-ASCII names and relative symlinks",
        &honest(&special_tree(), &info(PARCEL, "CEN", &["BXL"]), &cen, STEM),
    ));
    v.push(succeeding(
        "success-executable-bits",
        "modes 0755, 0700, 0644 and 0600 arrive as 0755, 0755, 0644 and 0644",
        &honest(&exec_tree(), &info(PARCEL, "CEN", &["BXL"]), &cen, STEM),
    ));
    v.push(succeeding(
        "success-empty-package",
        "a package with no entries at all: no packs, no chunks",
        &honest(&[], &info(PARCEL, "CEN", &["BXL"]), &cen, STEM),
    ));
    let dedup = honest(&dedup_tree(), &info(PARCEL, "CEN", &["BXL"]), &cen, STEM);
    let refs: usize = dedup
        .manifest
        .entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { chunks, .. } => chunks.len(),
            _ => 0,
        })
        .sum();
    assert!(dedup.manifest.chunks.len() * 2 < refs);
    v.push(succeeding(
        "success-deduplicated-files",
        "identical files and a shared prefix stored once, their chunks referenced by several files",
        &dedup,
    ));
    let oth = honest(
        &small_tree(),
        &info(OTHER_SITE_PARCEL, "OTH", &["BXL"]),
        &oth_key(),
        "CEN00012-3",
    );
    let mut two_keys = succeeding(
        "success-two-trusted-keys",
        "the reader trusts two keys and the parcel is signed by the second",
        &oth,
    );
    two_keys
        .trusted
        .push((oth_key().verifying_key(), "OTH".into()));
    v.push(two_keys);
    v.push(succeeding(
        "success-several-destinations",
        "a parcel addressed to GVA and BXL, read at BXL",
        &honest(
            &small_tree(),
            &info(PARCEL, "CEN", &["GVA", "BXL"]),
            &cen,
            STEM,
        ),
    ));

    // Signature failures.
    let mut untrusted = failing(
        "signature-untrusted-signer",
        Signature,
        "the reader trusts no key at all",
        small.volumes.clone(),
    );
    untrusted.trusted.clear();
    v.push(untrusted);
    let mut other_key = failing(
        "signature-other-key-trusted",
        Signature,
        "the reader trusts only another key than the signer's",
        small.volumes.clone(),
    );
    other_key.trusted = vec![(oth_key().verifying_key(), "OTH".into())];
    v.push(other_key);
    let mut volumes = small.volumes.clone();
    flip(&mut volumes, 0, 512 + 20);
    v.push(failing(
        "signature-header-bit-flip",
        Signature,
        "one bit of the header record flipped (in the parcel id): its signature no longer verifies",
        volumes,
    ));
    let mut volumes = small.volumes.clone();
    flip(&mut volumes, 0, 512 + 448 + 5);
    v.push(failing(
        "signature-signature-bit-flip",
        Signature,
        "one bit of the header signature flipped",
        volumes,
    ));

    // Volume failures.
    v.push(failing(
        "volume-missing",
        Volume,
        "volume 2 of 3 is not given",
        vec![big.volumes[0].clone(), big.volumes[2].clone()],
    ));
    let mut copy = small.volumes[0].clone();
    copy.0 = format!("{STEM}.001-of-001.copy.tar");
    v.push(failing(
        "volume-duplicated",
        Volume,
        "the same volume given twice under two names",
        vec![small.volumes[0].clone(), copy],
    ));
    let resent = honest(
        &big_tree(),
        &info(RESENT_PARCEL, "CEN", &["BXL"]),
        &cen,
        "CEN00012-3-resent",
    );
    v.push(failing(
        "volume-two-parcels-mixed",
        Volume,
        "all volumes of one parcel plus volume 2 of another parcel of the same package, both signed by the trusted key",
        vec![
            big.volumes[0].clone(),
            resent.volumes[1].clone(),
            big.volumes[1].clone(),
            big.volumes[2].clone(),
        ],
    ));
    let mut volumes = small.volumes.clone();
    let cut = small.manifest.packs[1].offset as usize + 10;
    volumes[0].1.truncate(cut);
    v.push(failing(
        "volume-truncated",
        Volume,
        "the volume cut off inside the stored bytes of pack 1",
        volumes,
    ));
    let mut volumes = small.volumes.clone();
    volumes[0].1.extend_from_slice(b"trailing bytes\n");
    v.push(failing(
        "volume-trailing-bytes",
        Volume,
        "bytes appended after the end of the volume",
        volumes,
    ));
    let mut volumes = small.volumes.clone();
    let pack = &small.manifest.packs[1];
    flip(
        &mut volumes,
        0,
        pack.offset as usize + pack.stored_len as usize / 2,
    );
    v.push(failing(
        "volume-body-bit-flip",
        Volume,
        "one bit flipped inside pack 1's stored bytes: the volume body no longer matches its signed hash",
        volumes,
    ));
    let mut rng = Rng(0x5EED_0006);
    v.push(failing(
        "volume-not-a-volume",
        Volume,
        "a file of random bytes and nothing else",
        vec![("notes.tar".into(), rng.bytes(4096))],
    ));
    v.push(failing(
        "volume-unknown-version",
        Volume,
        "a header declaring format version 4, correctly signed",
        resign_all(&small.volumes, |h| h.version = 4),
    ));
    v.push(failing(
        "volume-unknown-flag",
        Volume,
        "a version-3 header with a flag this reader does not know (bit 15), correctly signed",
        resign_all(&small.volumes, |h| {
            h.version = 3;
            h.flags = 0x8000;
        }),
    ));

    // Limit failures.
    v.push(failing(
        "limit-index-raw-length",
        Limit,
        "headers (re-signed) declare a decoded index one byte over 256 MiB",
        resign_all(&small.volumes, |h| h.index_raw_len = MAX_INDEX_RAW + 1),
    ));
    v.push(failing(
        "limit-index-stored-length",
        Limit,
        "headers (re-signed) declare a stored index one byte over 256 MiB",
        resign_all(&small.volumes, |h| {
            h.index_stored_len = MAX_INDEX_STORED + 1
        }),
    ));
    let chunk_len = MAX_CHUNK as usize + 1;
    let over = one_file(
        &small.manifest,
        "zeros.bin",
        &vec![0; chunk_len],
        &[chunk_len],
    );
    v.push(failing(
        "limit-chunk-length",
        Limit,
        "a signed, otherwise consistent manifest with one chunk one byte over 1 MiB",
        hostile(&over, true, |_, _| {}),
    ));
    let pack_len = MAX_PACK_RAW as usize + 1;
    let mut cuts = vec![MAX_CHUNK as usize; pack_len / MAX_CHUNK as usize];
    cuts.push(pack_len % MAX_CHUNK as usize);
    let over = one_file(&small.manifest, "zeros.bin", &vec![0; pack_len], &cuts);
    v.push(failing(
        "limit-pack-raw-length",
        Limit,
        "a signed, otherwise consistent manifest with one pack one byte over 16 MiB",
        hostile(&over, true, |_, _| {}),
    ));

    // Index failures.
    let header = header_of(&small.volumes[0].1);
    let mut volumes = small.volumes.clone();
    flip(&mut volumes, 0, header.index_piece.offset as usize + 10);
    let volumes = edit_files(&volumes, |paths| {
        testkit::reseal_body(&paths[0], &cen).unwrap();
    });
    v.push(failing(
        "index-altered-resealed",
        Index,
        "one bit of the stored index flipped and the volume body hash re-signed: only the index hash catches it",
        volumes,
    ));
    let garbage = [0xFF; 64];
    let stored = zstd::bulk::compress(&garbage, 3).unwrap();
    assert!((stored.len() as u64) < header.index_piece.len);
    let mut volumes = small.volumes.clone();
    let at = header.index_piece.offset as usize;
    volumes[0].1[at..at + stored.len()].copy_from_slice(&stored);
    let volumes = edit_files(&volumes, |paths| {
        testkit::resign_header(&paths[0], &cen, |h| {
            h.index_stored_len = stored.len() as u64;
            h.index_raw_len = garbage.len() as u64;
            h.index_sha256 = Sha256::digest(&stored).into();
            h.index_piece.len = stored.len() as u64;
        })
        .unwrap();
        testkit::reseal_body(&paths[0], &cen).unwrap();
    });
    v.push(failing(
        "index-not-postcard",
        Index,
        "a correctly signed and hashed index that decompresses to bytes that are not a postcard manifest",
        volumes,
    ));
    v.push(failing(
        "index-chunk-out-of-range",
        Index,
        "a file refers to a chunk number beyond the chunk table",
        hostile(&small, true, |m, _| {
            let count = m.chunks.len() as u32;
            if let EntryKind::File { chunks, .. } = &mut m.entries[0].kind {
                *chunks.last_mut().unwrap() = count;
            }
        }),
    ));
    v.push(failing(
        "index-overlapping-chunks",
        Index,
        "a chunk starts one byte before the end of the previous chunk of its pack",
        hostile(&small, true, |m, _| {
            let i = pack_with_two_chunks(m);
            m.chunks[i + 1].offset -= 1;
        }),
    ));
    let last = small.manifest.packs.len() - 1;
    let mut raw = pack_raw(&small, last);
    raw.extend_from_slice(&Rng(0x5EED_0007).bytes(100));
    v.push(failing(
        "index-chunks-do-not-tile-pack",
        Index,
        "the last pack holds 100 bytes after its last chunk",
        hostile(&small, true, |m, packs| {
            m.packs[last].raw_len = raw.len() as u32;
            packs[last] = zstd::bulk::compress(&raw, 3).unwrap();
        }),
    ));
    v.push(failing(
        "index-pack-outside-volume",
        Index,
        "the last pack record points 1 GiB into a volume much shorter than that",
        hostile(&small, true, |m, packs| {
            packs.pop();
            let record = m.packs.last_mut().unwrap();
            record.volume = 1;
            record.offset = 1 << 30;
        }),
    ));
    v.push(failing(
        "index-parcel-id-differs",
        Index,
        "headers re-signed with another parcel id than the manifest's",
        resign_all(&small.volumes, |h| h.parcel_id = ParcelId([0x44; 16])),
    ));
    assert_eq!(big.manifest.format_version, 1);
    v.push(failing(
        "index-volume-version-differs",
        Index,
        "volume 3 of 3 re-signed declaring format version 3 (flags 0) where the index and volumes 1 and 2 say 1",
        edit_files(&big.volumes, |paths| {
            testkit::resign_header(&paths[2], &cen_key(), |h| h.version = 3).unwrap();
        }),
    ));

    // Path failures.
    let readme = small.manifest.entries[0].clone();
    assert_eq!(readme.path, "README");
    let file = |path: &str| Entry {
        path: path.into(),
        ..readme.clone()
    };
    let link = |path: &str, target: &str| Entry {
        path: path.into(),
        mtime: MTIME,
        kind: EntryKind::Symlink {
            target: target.into(),
        },
    };
    // Each entry goes where the writer's walk puts it (FORMAT.md §5.3.2), so
    // that the fault a vector names is its only one.
    let with = |entries: Vec<Entry>| {
        hostile(&small, true, move |m, _| {
            for entry in entries {
                let at = m
                    .entries
                    .partition_point(|e| e.path.split('/').le(entry.path.split('/')));
                m.entries.insert(at, entry);
            }
        })
    };
    for (name, comment, entries) in [
        (
            "path-dot-dot",
            "a file named ../escape.txt",
            vec![file("../escape.txt")],
        ),
        (
            "path-absolute",
            "a file named /tmp/parcel-escape.txt",
            vec![file("/tmp/parcel-escape.txt")],
        ),
        (
            "path-backslash",
            "a file named doc\\..\\..\\escape.txt",
            vec![file("doc\\..\\..\\escape.txt")],
        ),
        (
            "path-nul",
            "a file name with a NUL byte in it",
            vec![file("README\0.txt")],
        ),
        (
            "path-case-collision",
            "files README and readme",
            vec![file("readme")],
        ),
        (
            "path-normalisation-collision",
            "files cafe-acute.txt in NFC (U+00E9) and in NFD (e U+0301)",
            vec![file("caf\u{e9}.txt"), file("cafe\u{301}.txt")],
        ),
        (
            "path-directory-and-file-same-name",
            "a file named bin after the directory bin",
            vec![file("bin")],
        ),
        (
            "path-through-symlink",
            "a symlink docs -> doc, then a file docs/evil.txt written through it",
            vec![link("docs", "doc"), file("docs/evil.txt")],
        ),
        (
            "path-symlink-escapes",
            "a symlink lib/etc -> ../../etc, climbing out of the package",
            vec![link("lib/etc", "../../etc")],
        ),
        (
            "path-parent-not-listed",
            "a file missing/evil.txt whose directory is not in the file table",
            vec![file("missing/evil.txt")],
        ),
        (
            "path-parent-differs-in-case",
            "a file BIN/evil.txt when only the directory bin is listed",
            vec![file("BIN/evil.txt")],
        ),
    ] {
        v.push(failing(name, Path, comment, with(entries)));
    }
    v.push(failing(
        "path-out-of-walk-order",
        Path,
        "the file table lists README after the entries under lib/, parents still before children",
        hostile(&small, true, |m, _| {
            let i = m.entries.iter().position(|e| e.path == "README").unwrap();
            let readme = m.entries.remove(i);
            m.entries.push(readme);
        }),
    ));

    // Chunk failures: signed, valid manifests whose contents do not match.
    v.push(failing(
        "chunk-hash-wrong",
        Chunk,
        "a chunk record's SHA-256 does not match the chunk",
        hostile(&small, true, |m, _| {
            let i = m.chunks.iter().position(|c| c.pack == 1).unwrap();
            m.chunks[i].sha256[0] ^= 0x01;
        }),
    ));
    v.push(failing(
        "chunk-file-hash-wrong",
        Chunk,
        "a file's recorded SHA-256 does not match its content",
        hostile(&small, true, |m, _| {
            let entry = m
                .entries
                .iter_mut()
                .find(|e| e.path == "doc/guide.txt")
                .unwrap();
            if let EntryKind::File { sha256, .. } = &mut entry.kind {
                sha256[0] ^= 0x01;
            }
        }),
    ));
    let raw = pack_raw(&small, 1);
    let mut longer = raw.clone();
    longer.extend_from_slice(b"one more line\n");
    v.push(failing(
        "chunk-pack-content-size-differs",
        Chunk,
        "pack 1 is a zstd frame of 14 more bytes than its record's raw length, stored hash filled in",
        hostile(&small, true, |_, packs| {
            packs[1] = zstd::bulk::compress(&longer, 3).unwrap();
        }),
    ));
    let honest_frame = handmade_frame(raw.len() as u64, &raw);
    assert_eq!(
        decompress_exact(&honest_frame, raw.len()).as_deref(),
        Ok(&raw[..])
    );
    v.push(failing(
        "chunk-pack-huge-content-size",
        Chunk,
        "pack 1 is a zstd frame declaring 1 TiB of content, stored hash filled in",
        hostile(&small, true, |_, packs| {
            packs[1] = handmade_frame(1 << 40, &raw);
        }),
    ));
    v.push(failing(
        "chunk-pack-short-output",
        Chunk,
        "pack 1 is a zstd frame declaring the right size but holding 16 bytes less, stored hash filled in",
        hostile(&small, true, |_, packs| {
            packs[1] = handmade_frame(raw.len() as u64, &raw[..raw.len() - 16]);
        }),
    ));
    let half = raw.len() / 2;
    v.push(failing(
        "chunk-pack-two-frames",
        Chunk,
        "pack 1 is two zstd frames that together hold the right bytes, stored hash filled in",
        hostile(&small, true, |_, packs| {
            let mut two = zstd::bulk::compress(&raw[..half], 3).unwrap();
            two.extend(zstd::bulk::compress(&raw[half..], 3).unwrap());
            packs[1] = two;
        }),
    ));

    // Policy failures.
    let mut elsewhere = failing(
        "policy-another-destination",
        Policy,
        "an intact parcel for BXL read at LUX",
        small.volumes.clone(),
    );
    elsewhere.destination = "LUX".into();
    v.push(elsewhere);
    let mut at_source = failing(
        "policy-read-at-source-site",
        Policy,
        "an intact parcel from CEN to BXL read back at CEN",
        small.volumes.clone(),
    );
    at_source.destination = "CEN".into();
    v.push(at_source);

    // Delta parcels (version 2, FORMAT.md §11): a file made of one base
    // chunk, and hostile variants of its base.
    let delta = |edit: fn(&mut Base, &mut Vec<Entry>)| {
        hostile(&small, true, move |m, _| {
            let own = m.chunks.len() as u32;
            let mut base = Base {
                package_version: 2,
                tree_digest: [0x42; 32],
                whole: Vec::new(),
                files: vec!["lib/libfoo.so.0".into()],
                chunks: vec![BaseChunk {
                    sha256: [0x17; 32],
                    len: 1000,
                    file: 0,
                    offset: 4096,
                }],
            };
            let mut entries = vec![Entry {
                path: "lib/libfoo.so.0".into(),
                mtime: MTIME,
                kind: EntryKind::File {
                    size: 1000,
                    executable: false,
                    sha256: [0x18; 32],
                    chunks: vec![own].into(),
                },
            }];
            edit(&mut base, &mut entries);
            m.format_version = 2;
            m.base = Some(base);
            // Where the writer's walk puts them (FORMAT.md §5.3.2).
            for entry in entries {
                let at = m
                    .entries
                    .partition_point(|e| e.path.split('/').le(entry.path.split('/')));
                m.entries.insert(at, entry);
            }
        })
    };
    v.push(failing(
        "policy-delta-base-not-held",
        Policy,
        "a delta parcel on version 2, read where no base version is held",
        delta(|_, _| {}),
    ));
    v.push(failing(
        "limit-delta-base-chunk-length",
        Limit,
        "a delta parcel whose base chunk is 0 bytes long",
        delta(|b, _| b.chunks[0].len = 0),
    ));
    v.push(failing(
        "index-delta-base-chunk-file",
        Index,
        "a delta parcel whose base chunk names base file 5 of 1",
        delta(|b, _| b.chunks[0].file = 5),
    ));
    v.push(failing(
        "path-delta-base-file-escapes",
        Path,
        "a delta parcel taking a chunk from base file ../../etc/shadow",
        delta(|b, _| b.files[0] = "../../etc/shadow".into()),
    ));
    v.push(failing(
        "index-delta-whole-entry-not-a-file",
        Index,
        "a delta parcel naming the directory bin as a whole base file",
        delta(|b, _| b.whole = vec![1]),
    ));

    // Repair data (FORMAT.md §13), from a package and parcel id of their
    // own, so that the vectors above keep their bytes.
    let parity = parity_parcel(&parity_tree(), 34);
    let n = parity.data.len();
    assert!(n >= 3, "the parity vectors need three data volumes");
    let with_parity = |data: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        data.into_iter().chain(parity.parity.clone()).collect()
    };
    let without = |lost: &[usize]| -> Vec<(String, Vec<u8>)> {
        parity
            .data
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost.contains(i))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let repaired_vector = |name: &str, comment: &str, volumes, repaired: Option<Vec<u32>>| Vector {
        name: name.into(),
        expect: Outcome::Success,
        tree: Some(parity.tree),
        repaired,
        comment: comment.into(),
        trusted: trust_cen(),
        identity: None,
        destination: "BXL".into(),
        volumes,
    };
    v.push(repaired_vector(
        "success-parity-not-needed",
        "a parcel with 34% repair data, every volume intact: nothing is rebuilt",
        with_parity(parity.data.clone()),
        None,
    ));
    v.push(repaired_vector(
        "success-parity-index-volume-missing",
        "a parcel with 34% repair data without its last volume, which holds the index: it is rebuilt from parity",
        with_parity(without(&[n - 1])),
        Some(vec![n as u32]),
    ));
    let mut damaged = parity.data.clone();
    flip(&mut damaged, 0, 3000);
    flip(&mut damaged, 1, 20_000);
    flip(&mut damaged, 1, 20_600);
    v.push(repaired_vector(
        "success-parity-blocks-damaged",
        "a parcel with 34% repair data, a byte flipped in volume 1 and two in volume 2: the damaged blocks are rebuilt",
        with_parity(damaged),
        Some(vec![1, 2]),
    ));
    v.push(failing(
        "volume-parity-beyond-repair",
        Volume,
        "a parcel with 34% repair data without volumes 1 and 2: more is lost than the parity can rebuild",
        with_parity(without(&[0, 1])),
    ));
    let mut tampered = parity.parity.clone();
    for (_, bytes) in &mut tampered {
        let fields = header_of(bytes).parity.unwrap();
        bytes[fields.table_offset as usize + 100] ^= 0x01;
    }
    v.push(failing(
        "volume-parity-table-tampered",
        Volume,
        "a parcel with 34% repair data without volume 2, and a byte of every copy of the block table changed: nothing can be rebuilt",
        without(&[1]).into_iter().chain(tampered).collect(),
    ));

    v.extend(encrypted_vectors());
    v
}

// ---------------------------------------------------------------------------
// Encrypted parcels (FORMAT.md §12), made last and from their own seed so
// that the vectors before them do not change.
// ---------------------------------------------------------------------------

/// The destination's age X25519 identity in the encrypted vectors (a test
/// key, published in testdata/README.md). Its recipient is
/// `age1whs27y92s5ua7usttkftlvtnccah0r9jeksnzp8cak78jewdr9aq7z0ywl`.
const TEST_IDENTITY: &str =
    "AGE-SECRET-KEY-1D28AVQXN5SWL2FK37GYNZHNR2XZ2FXUT7F3F4L3CJ4NE8M9TCU8Q6ZUVPV";

/// The parcel key of the encrypted vectors.
const TEST_PARCEL_KEY: [u8; 32] = [0x44; 32];

/// The `parcel-keys` entry of the encrypted vectors: [`TEST_PARCEL_KEY`]
/// wrapped by age 0.12 to [`TEST_IDENTITY`]'s recipient, made once (age's
/// wrapping is random, and the vectors must come out the same every time).
const TEST_KEYS_ENTRY: &str = "6167652d656e6372797074696f6e2e6f72672f76310a2d3e20583235353139203939687470536b584a663738704d75504c645236506d6c667264326236386531446a6e672f687a416b51550a7242354a4c3255705452647249436b66576c4b614c6a4477612f74577553767551724d676e34796d5166380a2d3e203d717337265e722d677265617365203d437948570a766f686b4a47343647416457436d7a614778732b766b340a2d2d2d2031344c563763556b4333314c6a7453664c664c5a685678385376614d4736454e796265327252675a4668770acda66cca80a68cf91a65f3cfbc46d7063c8704049a31ab21600b0d58af3f7fd2b376d58686ebce0669cf548171714e31a2acf02103b52e2244ab3ce0feeb137b";

/// Another parcel key (32 × 0x55) wrapped to the same recipient, of the
/// same length as [`TEST_KEYS_ENTRY`]: the keys entry of another parcel.
const OTHER_KEYS_ENTRY: &str = "6167652d656e6372797074696f6e2e6f72672f76310a2d3e20583235353139204a2f752b6c595034695848695669354d7a61644c32456251316271514d757245524d44316966393076456b0a2f58744e6d71577431797333714458516d42753945484a7168484d745a64426a30655554767a6c633764380a2d3e20506c262d677265617365204f0a51336b476a4c774973375a474c33424756683039773250576b564c6f624d340a2d2d2d202f4445654d3063694e587a45714a53626c68497148596a3778594e6d507168573657355255677a6a74674d0a85fb06e0273f7ab840aa6fe80c3e28e8a9c13071671ffd754b9c72030ce4d4a406018813f631cd262394ca63ca4f5825efe1d03a2f5b97e75354c71c60f5ca51";

const ENCRYPTED_PARCEL: ParcelId = ParcelId([0x44; 16]);

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn test_encryption() -> Encryption {
    Encryption::from_parts(TEST_PARCEL_KEY, unhex(TEST_KEYS_ENTRY))
}

/// A package of secrets: text that compresses, bytes that do not, no
/// symlink (whose time could not be pinned).
fn secret_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0008);
    vec![
        Node::Dir("plans"),
        Node::File("plans/launch-window.txt", rng.text(3000), 0o644),
        Node::File("plans/keys.bin", rng.bytes(60_000), 0o600),
        Node::File("README", rng.text(600), 0o644),
    ]
}

/// The encrypted parcel the honest writer makes of [`secret_tree`], for BXL.
fn honest_encrypted() -> (Manifest, Vec<(String, Vec<u8>)>) {
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("package");
    build_tree(&package, &secret_tree());
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let options = WriteOptions {
        encryption: Some(test_encryption()),
        ..options()
    };
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out,
            capacity: None,
        }],
        STEM,
        options.volume_size,
    );
    let scanned = scan(&package).unwrap();
    let info = info(ENCRYPTED_PARCEL, "CEN", &["BXL"]);
    let written =
        write_parcel(scanned, &info, &cen_key(), &options, &mut sink, &mut |_| {}).unwrap();
    let paths: Vec<PathBuf> = written.volumes.iter().map(|(p, _)| p.clone()).collect();
    (written.manifest, read_volumes(&paths))
}

/// A vector read by a BXL reader trusting the CEN key and holding [`TEST_IDENTITY`].
fn encrypted(
    name: &str,
    expect: Outcome,
    tree: Option<Hash>,
    comment: &str,
    volumes: Vec<(String, Vec<u8>)>,
) -> Vector {
    Vector {
        name: name.into(),
        expect,
        tree,
        comment: comment.into(),
        trusted: trust_cen(),
        identity: Some(TEST_IDENTITY.into()),
        repaired: None,
        destination: "BXL".into(),
        volumes,
    }
}

/// Recomputes each volume's body hash after an edit and re-signs it.
fn reseal(volumes: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    edit_files(volumes, |paths| {
        for path in paths {
            testkit::reseal_body(path, &cen_key()).unwrap();
        }
    })
}

fn encrypted_vectors() -> Vec<Vector> {
    use FailureClass::*;
    let (manifest, volumes) = honest_encrypted();
    assert!(volumes.len() >= 2, "{} volumes", volumes.len());
    assert_eq!(manifest.format_version, 3);
    let tree = manifest.tree_digest();
    let keys_at = 1536;
    let mut v = Vec::new();
    v.push(encrypted(
        "success-encrypted",
        Outcome::Success,
        Some(tree),
        "a parcel encrypted to BXL, read with BXL's identity",
        volumes.clone(),
    ));
    v.push(Vector {
        identity: None,
        ..encrypted(
            "policy-encrypted-without-identity",
            Outcome::Failure(Policy),
            None,
            "a parcel encrypted to BXL, read without an identity: the media check passes, the content cannot be read",
            volumes.clone(),
        )
    });
    let mut damaged = volumes.clone();
    for volume in 0..damaged.len() {
        flip(&mut damaged, volume, keys_at + 100);
    }
    v.push(encrypted(
        "index-encrypted-keys-entry-damaged",
        Outcome::Failure(Index),
        None,
        "every volume's parcel-keys entry has a flipped byte, bodies re-signed: it does not match the signed SHA-256",
        reseal(&damaged),
    ));
    let pack = &manifest.packs[0];
    let mut damaged = volumes.clone();
    flip(
        &mut damaged,
        pack.volume as usize - 1,
        pack.offset as usize + 7,
    );
    v.push(encrypted(
        "chunk-encrypted-pack-damaged",
        Outcome::Failure(Chunk),
        None,
        "pack 0's ciphertext has a flipped byte, body re-signed",
        reseal(&damaged),
    ));
    let last = volumes.len() - 1;
    let piece = header_of(&volumes[last].1).index_piece;
    assert!(piece.len > 0);
    let mut damaged = volumes.clone();
    flip(
        &mut damaged,
        last,
        piece.offset as usize + piece.len as usize / 2,
    );
    v.push(encrypted(
        "index-encrypted-index-damaged",
        Outcome::Failure(Index),
        None,
        "the encrypted index has a flipped byte, body re-signed",
        reseal(&damaged),
    ));
    let other = unhex(OTHER_KEYS_ENTRY);
    assert_eq!(other.len(), unhex(TEST_KEYS_ENTRY).len());
    let mut swapped = volumes.clone();
    for (_, bytes) in &mut swapped {
        bytes[keys_at..keys_at + other.len()].copy_from_slice(&other);
    }
    let other_sha256: Hash = Sha256::digest(&other).into();
    v.push(encrypted(
        "index-encrypted-keys-entry-of-another-parcel",
        Outcome::Failure(Index),
        None,
        "every volume carries another parcel key wrapped to BXL, bound by re-signed headers: the index does not decrypt",
        resign_all(&reseal(&swapped), |h| h.keys_sha256 = other_sha256),
    ));
    // A trusted signer that sealed pack 0 under pack 1's nonce: its stored
    // hash matches, it does not decrypt.
    let content = Rng(0x5EED_0009).text(2000);
    let mut wrong = one_file(&manifest, "launch-window.txt", &content, &[1000, 1000]);
    let encryption = test_encryption();
    let sealed = testkit::seal_pack(&encryption, &ENCRYPTED_PARCEL, 1, &wrong.packs[0]);
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: tmp.path().to_owned(),
            capacity: None,
        }],
        STEM,
        VOLUME_SIZE,
    );
    let paths = testkit::write_raw_with(
        &mut wrong.manifest,
        &[sealed],
        &cen_key(),
        VOLUME_SIZE,
        true,
        Some(&encryption),
        &mut sink,
    )
    .unwrap();
    v.push(encrypted(
        "chunk-encrypted-pack-sealed-as-another-pack",
        Outcome::Failure(Chunk),
        None,
        "a signed parcel whose pack 0 was encrypted under pack 1's nonce: its hash matches, it does not decrypt",
        read_volumes(&paths),
    ));
    v.push(encrypted(
        "volume-encrypted-flag-without-keys-entry",
        Outcome::Failure(Volume),
        None,
        "headers with the encrypted flag but a keys entry length of 0, re-signed",
        resign_all(&volumes, |h| {
            h.keys_len = 0;
            h.keys_sha256 = [0; 32];
        }),
    ));
    v.push(encrypted(
        "volume-encrypted-keys-fields-without-flag",
        Outcome::Failure(Volume),
        None,
        "headers without the encrypted flag whose keys fields are set, re-signed",
        resign_all(&volumes, |h| h.flags = 0),
    ));
    v
}

/// A parcel written with repair data: the package's tree digest, its data
/// volumes and its parity volumes.
struct ParityBuilt {
    tree: Hash,
    data: Vec<(String, Vec<u8>)>,
    parity: Vec<(String, Vec<u8>)>,
}

/// 150 KB of incompressible content with its own seed: three 64 KiB volumes.
fn parity_tree() -> Vec<Node> {
    let mut rng = Rng(0x5EED_0013);
    vec![
        Node::File("README", rng.text(900), 0o644),
        Node::Dir("data"),
        Node::File("data/image.bin", rng.bytes(100_000), 0o644),
        Node::File("data/index.bin", rng.bytes(45_000), 0o644),
    ]
}

/// `nodes` written as parcel [`PARITY_PARCEL`] with `percent` repair data.
fn parity_parcel(nodes: &[Node], percent: u8) -> ParityBuilt {
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("package");
    build_tree(&package, nodes);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let options = options();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out,
            capacity: None,
        }],
        STEM,
        options.volume_size,
    );
    let written = write_parcel_with(
        scan(&package).unwrap(),
        &info(PARITY_PARCEL, "CEN", &["BXL"]),
        &cen_key(),
        &options,
        &Extras {
            base: None,
            parity_percent: Some(percent),
        },
        &mut sink,
        &mut |_| {},
    )
    .unwrap();
    let paths =
        |list: &[(PathBuf, u64)]| -> Vec<PathBuf> { list.iter().map(|(p, _)| p.clone()).collect() };
    ParityBuilt {
        tree: tree_digest_of_dir(&package).unwrap(),
        data: read_volumes(&paths(&written.volumes)),
        parity: read_volumes(&paths(&written.parity_volumes)),
    }
}
