//! Property tests over random package trees:
//!
//! * write → verify → open → extract reproduces the tree exactly (paths,
//!   kinds, bytes, exec bits, mtimes, symlink targets, tree digest), whatever
//!   the chunking, pack, volume and compression parameters, and whatever order
//!   the volumes are given in;
//! * every volume fits the volume size and authenticates on its own;
//! * any single flipped byte, and any truncation or extension of a volume, is
//!   reported by `verify` (and never turns into a wrong extraction);
//! * writing is deterministic;
//! * names that collide by case or Unicode normalisation are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::sample::Index;

use parcel_format::read::{read_volume_header, Parcel};
use parcel_format::sign::TrustedKeys;
use parcel_format::verify::{verify, VerifyReport};
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{self, ParcelInfo, WriteOptions, WriteSummary};
use parcel_format::{ChunkParams, FailureClass, ParcelId, Problem, WriteError};

// ---------------------------------------------------------------------------
// Fixed parcel description and keys.

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

fn trust() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add("CEN", key().verifying_key());
    t
}

fn info() -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId([0x5a; 16]),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "CEN00042".into(),
        package_version: 7,
        created: 1_700_000_000,
        comment: "property test".into(),
    }
}

const STEM: &str = "CEN00042-7";

// ---------------------------------------------------------------------------
// Tree specifications: a list of nodes, each placed by index choices into the
// directories made before it, so that shrinking keeps the tree well formed.

/// Pieces names are made of (lower case, NFC, no `.`).
const ALPHABET: &[&str] = &[
    "a", "b", "c", "é", "ü", "ø", "ß", "日本", " ", "-", "_", "1",
];
const EXTENSIONS: &[&str] = &["", "", "", ".txt", ".so.1", ".tar.gz"];
const PHRASES: &[&str] = &[
    "hello, world\n",
    "crème brûlée ",
    "#!/bin/sh\nexec true \"$@\"\n",
    "日本語のテキスト。",
    "0123456789abcdef",
];
/// Deepest directory nesting, in components.
const MAX_DIR_DEPTH: usize = 4;

#[derive(Debug, Clone)]
enum Content {
    Empty,
    /// A phrase repeated up to `len` bytes (compressible).
    Text {
        phrase: Index,
        len: usize,
    },
    /// Pseudo-random bytes (incompressible).
    Random {
        seed: u64,
        len: usize,
    },
    /// Alternating runs of text and random bytes.
    Mixed {
        seed: u64,
        len: usize,
    },
    /// The same bytes as an earlier file (whole-file dedup).
    Copy {
        of: Index,
    },
    /// An earlier file with one byte inserted (chunk-level dedup after the cut resyncs).
    Edit {
        of: Index,
        at: Index,
        byte: u8,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File {
        content: Content,
        mode: u32,
    },
    /// A link to an earlier sibling, or with `up` to an entry of the parent directory.
    Symlink {
        target: Index,
        up: bool,
    },
}

#[derive(Debug, Clone)]
struct NodeSpec {
    parent: Index,
    name: Vec<usize>,
    ext: usize,
    kind: Kind,
    mtime: i64,
}

fn len_strategy(max_len: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => 0..=max_len.min(4096),
        1 => 0..=max_len,
    ]
}

fn content_strategy(max_len: usize) -> impl Strategy<Value = Content> {
    prop_oneof![
        1 => Just(Content::Empty),
        3 => (any::<Index>(), len_strategy(max_len))
            .prop_map(|(phrase, len)| Content::Text { phrase, len }),
        3 => (any::<u64>(), len_strategy(max_len))
            .prop_map(|(seed, len)| Content::Random { seed, len }),
        2 => (any::<u64>(), len_strategy(max_len))
            .prop_map(|(seed, len)| Content::Mixed { seed, len }),
        2 => any::<Index>().prop_map(|of| Content::Copy { of }),
        2 => (any::<Index>(), any::<Index>(), any::<u8>())
            .prop_map(|(of, at, byte)| Content::Edit { of, at, byte }),
    ]
}

fn kind_strategy(max_len: usize) -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Dir),
        6 => (
            content_strategy(max_len),
            prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o700, 0o744, 0o444, 0o711]),
        )
            .prop_map(|(content, mode)| Kind::File { content, mode }),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(target, up)| Kind::Symlink { target, up }),
    ]
}

fn mtime_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 0i64..=2_000_000_000,
        1 => -2_000_000_000i64..0,
        1 => 2_000_000_000i64..=4_000_000_000,
    ]
}

fn tree_strategy(max_entries: usize, max_len: usize) -> impl Strategy<Value = Vec<NodeSpec>> {
    prop::collection::vec(
        (
            any::<Index>(),
            prop::collection::vec(0..ALPHABET.len(), 1..=4),
            0..EXTENSIONS.len(),
            kind_strategy(max_len),
            mtime_strategy(),
        )
            .prop_map(|(parent, name, ext, kind, mtime)| NodeSpec {
                parent,
                name,
                ext,
                kind,
                mtime,
            }),
        0..=max_entries,
    )
}

/// Random chunking, pack, volume and compression parameters within the bounds
/// the brief gives (min ≤ avg ≤ max, pack target ≥ max).
fn options_strategy(
    volume_sizes: std::ops::RangeInclusive<u64>,
) -> impl Strategy<Value = WriteOptions> {
    let (lo, hi) = (*volume_sizes.start(), *volume_sizes.end());
    let small_hi = hi.min(lo.max(256 * 1024));
    // Small chunks a third of the time: many chunks, a large index, split
    // over several volumes when they are small too.
    prop_oneof![1 => 64u32..=256, 2 => 64u32..=2048]
        .prop_flat_map(|min| {
            let lo = min.max(256);
            (Just(min), prop_oneof![1 => lo..=lo * 2, 2 => lo..=8192])
        })
        .prop_flat_map(|(min, avg)| (Just(min), Just(avg), avg.max(1024)..=32768))
        .prop_flat_map(move |(min, avg, max)| {
            (
                Just(ChunkParams { min, avg, max }),
                max..=256 * 1024,
                // Mostly small volumes, so that many parcels span several.
                prop_oneof![2 => lo..=(lo + 64 * 1024).min(hi), 1 => lo..=small_hi, 1 => lo..=hi],
                1i32..=6,
                0usize..=3,
            )
        })
        .prop_map(
            |(chunking, pack_target, volume_size, level, threads)| WriteOptions {
                volume_size,
                level,
                chunking,
                pack_target,
                threads,
                encryption: None,
                // Half the parcels are read back as they are written.
                read_back: threads % 2 == 1,
            },
        )
}

fn xorshift(state: &mut u64) -> u64 {
    // Never zero: xorshift's only fixed point.
    if *state == 0 {
        *state = 0x9E37_79B9_7F4A_7C15;
    }
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&xorshift(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn text_bytes(phrase: &str, len: usize) -> Vec<u8> {
    phrase.bytes().cycle().take(len).collect()
}

fn materialise_content(content: &Content, earlier: &[Vec<u8>]) -> Vec<u8> {
    match content {
        Content::Empty => Vec::new(),
        Content::Text { phrase, len } => text_bytes(PHRASES[phrase.index(PHRASES.len())], *len),
        Content::Random { seed, len } => random_bytes(*seed, *len),
        Content::Mixed { seed, len } => {
            let mut state = *seed;
            let mut out = Vec::with_capacity(*len);
            while out.len() < *len {
                let r = xorshift(&mut state);
                let run = 1 + (r % 8192) as usize;
                if r & (1 << 40) == 0 {
                    out.extend(text_bytes(PHRASES[(r >> 20) as usize % PHRASES.len()], run));
                } else {
                    out.extend(random_bytes(r, run));
                }
            }
            out.truncate(*len);
            out
        }
        Content::Copy { of } => {
            if earlier.is_empty() {
                text_bytes(PHRASES[0], 1000)
            } else {
                earlier[of.index(earlier.len())].clone()
            }
        }
        Content::Edit { of, at, byte } => {
            let mut data = if earlier.is_empty() {
                random_bytes(1, 50_000)
            } else {
                earlier[of.index(earlier.len())].clone()
            };
            let at = at.index(data.len() + 1);
            data.insert(at, *byte);
            data
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn time_of(mtime: i64) -> SystemTime {
    if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
    }
}

/// What a built tree holds, by kind (for extraction counts).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    files: u64,
    directories: u64,
    symlinks: u64,
}

/// Creates the tree `spec` describes at `root` (which must not exist).
fn build(root: &Path, spec: &[NodeSpec]) -> Counts {
    fs::create_dir(root).expect("create root");
    let mut dirs: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    let mut keys: HashSet<String> = HashSet::new();
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let mut file_times: Vec<(String, i64)> = Vec::new();
    let mut dir_times: Vec<(String, usize, i64)> = Vec::new();
    let mut counts = Counts::default();
    for node in spec {
        let eligible: Vec<&(String, usize)> = match node.kind {
            Kind::Dir => dirs.iter().filter(|d| d.1 < MAX_DIR_DEPTH).collect(),
            _ => dirs.iter().collect(),
        };
        let (parent, depth) = eligible[node.parent.index(eligible.len())].clone();
        let mut name: String = node.name.iter().map(|&i| ALPHABET[i]).collect();
        name.push_str(EXTENSIONS[node.ext]);
        // Names unique under case folding and normalisation, as the writer requires.
        let rel = loop {
            let rel = join(&parent, &name);
            if keys.insert(parcel_format::path::collision_key(&rel)) {
                break rel;
            }
            name.push('~');
        };
        let full = root.join(&rel);
        match &node.kind {
            Kind::Dir => {
                fs::create_dir(&full).expect("create dir");
                dirs.push((rel.clone(), depth + 1));
                dir_times.push((rel.clone(), depth + 1, node.mtime));
                counts.directories += 1;
            }
            Kind::File { content, mode } => {
                let data = materialise_content(content, &contents);
                fs::write(&full, &data).expect("write file");
                fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).expect("chmod");
                contents.push(data);
                file_times.push((rel.clone(), node.mtime));
                counts.files += 1;
            }
            Kind::Symlink { target, up } => {
                let (candidates, prefix) = match (up, parcel_format::path::parent(&parent)) {
                    (true, Some(grand)) if !parent.is_empty() => (children.get(grand), "../"),
                    (true, None) if !parent.is_empty() => (children.get(""), "../"),
                    _ => (children.get(&parent), ""),
                };
                let link = match candidates {
                    Some(c) if !c.is_empty() => format!("{prefix}{}", c[target.index(c.len())]),
                    _ => "dangling target".to_owned(),
                };
                std::os::unix::fs::symlink(&link, &full).expect("symlink");
                counts.symlinks += 1;
            }
        }
        children.entry(parent).or_default().push(name);
    }
    for (rel, mtime) in file_times {
        File::open(root.join(rel))
            .and_then(|f| f.set_modified(time_of(mtime)))
            .expect("set file mtime");
    }
    // Directories last, deepest first: nothing changes them afterwards.
    dir_times.sort_by_key(|d| std::cmp::Reverse(d.1));
    for (rel, _, mtime) in dir_times {
        File::open(root.join(rel))
            .and_then(|f| f.set_modified(time_of(mtime)))
            .expect("set dir mtime");
    }
    counts
}

// ---------------------------------------------------------------------------
// Comparing trees on disk.

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Dir {
        mtime: i64,
    },
    File {
        exec: bool,
        mtime: i64,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
}

fn describe(item: Option<&Item>) -> String {
    match item {
        None => "absent".into(),
        Some(Item::Dir { mtime }) => format!("directory mtime {mtime}"),
        Some(Item::File { exec, mtime, data }) => format!(
            "file exec {exec} mtime {mtime} len {} head {:?}",
            data.len(),
            &data[..data.len().min(16)]
        ),
        Some(Item::Symlink { target }) => format!("symlink -> {target:?}"),
    }
}

fn snapshot(root: &Path) -> BTreeMap<String, Item> {
    fn walk(root: &Path, prefix: &str, out: &mut BTreeMap<String, Item>) {
        let dir = root.join(prefix);
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().into_string().expect("UTF-8 name");
            let rel = join(prefix, &name);
            let full = root.join(&rel);
            let meta = fs::symlink_metadata(&full).expect("metadata");
            let ft = meta.file_type();
            if ft.is_dir() {
                out.insert(
                    rel.clone(),
                    Item::Dir {
                        mtime: meta.mtime(),
                    },
                );
                walk(root, &rel, out);
            } else if ft.is_symlink() {
                let target = fs::read_link(&full).expect("read_link");
                out.insert(
                    rel,
                    Item::Symlink {
                        target: target.into_os_string().into_string().expect("UTF-8 target"),
                    },
                );
            } else {
                out.insert(
                    rel,
                    Item::File {
                        exec: meta.permissions().mode() & 0o111 != 0,
                        mtime: meta.mtime(),
                        data: fs::read(&full).expect("read"),
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// Every path where two snapshots differ, described.
fn differences(expected: &BTreeMap<String, Item>, actual: &BTreeMap<String, Item>) -> Vec<String> {
    let paths: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    paths
        .into_iter()
        .filter_map(|p| {
            let (e, a) = (expected.get(p), actual.get(p));
            (e != a).then(|| format!("{p:?}: expected {}, got {}", describe(e), describe(a)))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Writing and reading helpers.

fn write_tree(src: &Path, out: &Path, options: &WriteOptions) -> Result<WriteSummary, WriteError> {
    fs::create_dir_all(out).expect("create out dir");
    let scan = write::scan(src)?;
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out.to_owned(),
            capacity: None,
        }],
        STEM,
        options.volume_size,
    );
    write::write_parcel(scan, &info(), &key(), options, &mut sink, &mut |_| {})
}

fn paths_of(summary: &WriteSummary) -> Vec<PathBuf> {
    summary.volumes.iter().map(|(p, _)| p.clone()).collect()
}

fn verify_paths(paths: &[PathBuf]) -> VerifyReport {
    verify(paths, &trust(), &mut |_, _| {})
}

/// Opens and extracts into a fresh directory `dest`.
fn extract_to(
    paths: &[PathBuf],
    dest: &Path,
) -> Result<parcel_format::extract::ExtractSummary, String> {
    let parcel = Parcel::open(paths, &trust()).map_err(|p| format!("open: {p:?}"))?;
    if !parcel.problems().is_empty() {
        return Err(format!("open found problems: {:?}", parcel.problems()));
    }
    fs::create_dir(dest).expect("create dest");
    parcel
        .extract(dest, &mut |_| {})
        .map_err(|p| format!("extract: {p:?}"))
}

/// Property 2: each volume is at most `volume_size`, has the size the summary
/// says, is named and numbered in order, and authenticates on its own.
fn check_volumes(summary: &WriteSummary, volume_size: u64) -> Result<(), TestCaseError> {
    let count = summary.volumes.len();
    prop_assert!(count >= 1, "no volume written");
    prop_assert_eq!(summary.manifest.volume_count as usize, count);
    let trust = trust();
    for (i, (path, size)) in summary.volumes.iter().enumerate() {
        let on_disk = fs::metadata(path).expect("volume metadata").len();
        prop_assert_eq!(
            on_disk,
            *size,
            "volume {} size differs from the summary",
            i + 1
        );
        prop_assert!(
            on_disk <= volume_size,
            "volume {} is {} bytes, over the volume size {}",
            i + 1,
            on_disk,
            volume_size
        );
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        prop_assert_eq!(name, format!("{STEM}.{:03}-of-{count:03}.tar", i + 1));
        let header = read_volume_header(path, &trust)
            .map_err(|p| TestCaseError::fail(format!("volume {} alone: {p}", i + 1)))?;
        prop_assert_eq!(header.volume as usize, i + 1);
        prop_assert_eq!(header.volume_count as usize, count);
        prop_assert_eq!(header.parcel_id, info().parcel_id);
        prop_assert_eq!(header.index_sha256, summary.index_sha256);
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Order {
    Reversed,
    Rotated(Index),
}

fn reorder(paths: &[PathBuf], order: &Order) -> Vec<PathBuf> {
    let mut v = paths.to_vec();
    match order {
        Order::Reversed => v.reverse(),
        Order::Rotated(k) => {
            let k = k.index(v.len().max(1));
            v.rotate_left(k);
        }
    }
    v
}

fn order_strategy() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::Reversed),
        any::<Index>().prop_map(Order::Rotated)
    ]
}

/// `cases` by default; `PROPTEST_CASES` overrides it for longer runs.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Properties.

/// Property 1 (and 2 on the way): the tree `spec` survives write → verify →
/// open → extract unchanged, in the writer's volume order and in `order`.
/// Returns how many volumes hold a piece of the index.
fn check_round_trip(
    spec: &[NodeSpec],
    options: &WriteOptions,
    order: &Order,
) -> Result<usize, TestCaseError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let counts = build(&src, spec);
    let expected = snapshot(&src);
    let summary = write_tree(&src, &tmp.path().join("out"), options).expect("write");
    check_volumes(&summary, options.volume_size)?;
    prop_assert_eq!(
        write::tree_digest_of_dir(&src).expect("digest of source"),
        summary.manifest.tree_digest()
    );
    let volumes = paths_of(&summary);

    let report = verify_paths(&volumes);
    prop_assert!(report.is_ok(), "verify: {:?}", report.problems);
    if options.read_back {
        // Every volume was read back, and agrees with its signed hash.
        // (None where the system has no direct I/O: tmpfs.)
        let read_back: Vec<&PathBuf> = summary.read_back.iter().map(|r| &r.path).collect();
        if !read_back.is_empty() {
            prop_assert_eq!(read_back, volumes.iter().collect::<Vec<_>>());
        }
        let report = parcel_format::verify::verify_written(
            &volumes,
            &trust(),
            &summary.read_back,
            &mut |_, _| {},
        );
        prop_assert!(report.is_ok(), "read-back: {:?}", report.problems);
    } else {
        prop_assert!(summary.read_back.is_empty());
    }
    prop_assert_eq!(report.volume_count, Some(volumes.len() as u32));
    prop_assert_eq!(report.content_bytes, summary.manifest.content_bytes());

    let dest = tmp.path().join("dest");
    let extracted = extract_to(&volumes, &dest).map_err(TestCaseError::fail)?;
    prop_assert_eq!(
        Counts {
            files: extracted.files,
            directories: extracted.directories,
            symlinks: extracted.symlinks
        },
        counts
    );
    let diffs = differences(&expected, &snapshot(&dest));
    prop_assert!(diffs.is_empty(), "extracted tree differs: {:#?}", diffs);
    prop_assert_eq!(
        write::tree_digest_of_dir(&dest).expect("digest of extracted tree"),
        summary.manifest.tree_digest()
    );

    // The same parcel with its volumes given in another order.
    let shuffled = reorder(&volumes, order);
    let report = verify_paths(&shuffled);
    prop_assert!(
        report.is_ok(),
        "verify ({:?} order): {:?}",
        order,
        report.problems
    );
    let parcel = Parcel::open(&shuffled, &trust())
        .map_err(|p| TestCaseError::fail(format!("open ({order:?} order): {p:?}")))?;
    prop_assert!(
        parcel.manifest() == &summary.manifest,
        "manifest differs in {:?} order",
        order
    );
    let dest2 = tmp.path().join("dest2");
    extract_to(&shuffled, &dest2).map_err(TestCaseError::fail)?;
    let diffs = differences(&expected, &snapshot(&dest2));
    prop_assert!(
        diffs.is_empty(),
        "extracted tree ({:?} order) differs: {:#?}",
        order,
        diffs
    );

    Ok(volumes
        .iter()
        .filter(|p| read_volume_header(p, &trust()).is_ok_and(|h| h.index_piece.len > 0))
        .count())
}

/// Flat trees of large incompressible files: thousands of chunks, so that the
/// index outgrows a small volume.
fn incompressible_tree_strategy() -> impl Strategy<Value = Vec<NodeSpec>> {
    prop::collection::vec(
        (
            any::<Index>(),
            prop::collection::vec(0..ALPHABET.len(), 1..=4),
            any::<u64>(),
            100 * 1024usize..=200 * 1024,
            mtime_strategy(),
        )
            // No directories: every parent index picks the root.
            .prop_map(|(parent, name, seed, len, mtime)| NodeSpec {
                parent,
                name,
                ext: 0,
                kind: Kind::File {
                    content: Content::Random { seed, len },
                    mode: 0o644,
                },
                mtime,
            }),
        // At least 800 KiB in chunks of about 256 bytes: over 3000 chunk
        // records of about 40 bytes, more than the largest volume tried.
        8..=12,
    )
}

proptest! {
    #![proptest_config(config(64))]

    /// Property 1 over random trees and parameters.
    #[test]
    fn random_trees_round_trip(
        spec in tree_strategy(30, 200 * 1024),
        options in options_strategy(64 * 1024..=4 * 1024 * 1024),
        order in order_strategy(),
    ) {
        check_round_trip(&spec, &options, &order)?;
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Property 1 where the index itself is split over several small volumes.
    #[test]
    fn index_split_over_volumes_round_trips(
        spec in incompressible_tree_strategy(),
        min in 64u32..=256,
        volume_size in 64u64 * 1024..=96 * 1024,
        level in 1i32..=6,
        order in order_strategy(),
    ) {
        let options = WriteOptions {
            volume_size,
            level,
            chunking: ChunkParams { min, avg: 256, max: 1024 },
            pack_target: 16 * 1024,
            threads: 0,
            encryption: None,
            read_back: false,
        };
        let pieces = check_round_trip(&spec, &options, &order)?;
        prop_assert!(pieces >= 2, "the index fit in one volume; the test no longer splits it");
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Property 2 with small volumes (many per parcel): sizes, names, numbering
    /// and per-volume authentication.
    #[test]
    fn volumes_fit_and_authenticate_alone(
        spec in tree_strategy(16, 120 * 1024),
        options in options_strategy(64 * 1024..=256 * 1024),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        build(&src, &spec);
        let summary = write_tree(&src, &tmp.path().join("out"), &options).expect("write");
        check_volumes(&summary, options.volume_size)?;
        // Each volume given alone opens as far as its index allows and names
        // every other volume as missing.
        let count = summary.volumes.len() as u32;
        for (path, _) in &summary.volumes {
            let problems = match Parcel::open(std::slice::from_ref(path), &trust()) {
                Ok(parcel) => parcel.problems().to_vec(),
                Err(problems) => problems,
            };
            let missing: BTreeSet<u32> = problems
                .iter()
                .filter_map(|p| match p {
                    Problem::MissingVolume { volume, count: c } if *c == count => Some(*volume),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(missing.len() as u32, count - 1, "{:?}: {:?}", path, problems);
            prop_assert!(
                problems.iter().all(|p| matches!(p.class(), FailureClass::Volume | FailureClass::Index)),
                "{:?}: {:?}", path, problems
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    Extend(Vec<u8>),
}

proptest! {
    #![proptest_config(config(128))]

    /// Property 3: flipping any one byte of any volume is reported by verify,
    /// never as an operating-system error, and never yields a wrong extraction.
    #[test]
    fn any_flipped_byte_is_detected(
        spec in tree_strategy(8, 24 * 1024),
        options in options_strategy(64 * 1024..=160 * 1024),
        volume in any::<Index>(),
        in_prefix in any::<bool>(),
        offset in any::<Index>(),
        mask in 1u8..=255,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        build(&src, &spec);
        let expected = snapshot(&src);
        let summary = write_tree(&src, &tmp.path().join("out"), &options).expect("write");
        let volumes = paths_of(&summary);
        let victim = &volumes[volume.index(volumes.len())];
        let mut bytes = fs::read(victim).expect("read volume");
        // Half the time in the 1024-byte prefix (tar header + signed record).
        let span = if in_prefix { bytes.len().min(1024) } else { bytes.len() };
        let at = offset.index(span);
        bytes[at] ^= mask;
        fs::write(victim, &bytes).expect("rewrite volume");

        let report = verify_paths(&volumes);
        prop_assert!(
            !report.is_ok(),
            "flip of byte {} (mask {:#04x}) in {:?} went unnoticed", at, mask, victim
        );
        prop_assert!(
            report.problems.iter().all(|p| p.class() != FailureClass::Io),
            "flip reported as an I/O error: {:?}", report.problems
        );
        // Extraction may or may not notice (it does not hash whole volumes), but
        // when it succeeds the tree must be the original one.
        if extract_to(&volumes, &tmp.path().join("dest")).is_ok() {
            let diffs = differences(&expected, &snapshot(&tmp.path().join("dest")));
            prop_assert!(diffs.is_empty(), "corrupt parcel extracted a different tree: {:#?}", diffs);
        }
    }

    /// Property 3b: a truncated (or extended) volume is a volume failure naming that file.
    #[test]
    fn truncated_volume_is_a_volume_failure(
        spec in tree_strategy(8, 24 * 1024),
        options in options_strategy(64 * 1024..=160 * 1024),
        volume in any::<Index>(),
        damage in prop_oneof![
            3 => any::<Index>().prop_map(Damage::Truncate),
            1 => prop::collection::vec(any::<u8>(), 1..=2048).prop_map(Damage::Extend),
        ],
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        build(&src, &spec);
        let summary = write_tree(&src, &tmp.path().join("out"), &options).expect("write");
        let volumes = paths_of(&summary);
        let victim = &volumes[volume.index(volumes.len())];
        let mut bytes = fs::read(victim).expect("read volume");
        match &damage {
            Damage::Truncate(len) => bytes.truncate(len.index(bytes.len())),
            Damage::Extend(extra) => bytes.extend_from_slice(extra),
        }
        fs::write(victim, &bytes).expect("rewrite volume");

        let report = verify_paths(&volumes);
        prop_assert!(!report.is_ok(), "{:?} of {:?} went unnoticed", damage, victim);
        prop_assert_eq!(report.class(), Some(FailureClass::Volume), "{:?}", report.problems);
        prop_assert!(
            report.problems.iter().any(|p| match p {
                Problem::VolumeLength { path, .. } | Problem::NotAVolume { path, .. } => path == victim,
                _ => false,
            }),
            "the damaged volume is not named: {:?}", report.problems
        );
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Property 4: the same tree, description and options give byte-identical
    /// volumes, whatever the number of compression threads.
    #[test]
    fn writing_is_deterministic(
        spec in tree_strategy(16, 100 * 1024),
        options in options_strategy(64 * 1024..=1024 * 1024),
        other_threads in 1usize..=4,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        build(&src, &spec);
        let read_all = |summary: &WriteSummary| -> Vec<(String, Vec<u8>)> {
            summary
                .volumes
                .iter()
                .map(|(p, _)| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                    (name, fs::read(p).expect("read volume"))
                })
                .collect()
        };
        let a = write_tree(&src, &tmp.path().join("a"), &options).expect("write a");
        let b = write_tree(&src, &tmp.path().join("b"), &options).expect("write b");
        let (va, vb) = (read_all(&a), read_all(&b));
        prop_assert_eq!(va.len(), vb.len());
        for ((na, da), (nb, db)) in va.iter().zip(&vb) {
            prop_assert_eq!(na, nb);
            prop_assert!(da == db, "volume {} differs between two identical writes", na);
        }
        prop_assert_eq!(a.index_sha256, b.index_sha256);

        let threaded = WriteOptions { threads: other_threads, ..options.clone() };
        let c = write_tree(&src, &tmp.path().join("c"), &threaded).expect("write c");
        let vc = read_all(&c);
        prop_assert_eq!(va.len(), vc.len());
        for ((na, da), (_, dc)) in va.iter().zip(&vc) {
            prop_assert!(
                da == dc,
                "volume {} differs with {} threads instead of {}", na, other_threads, options.threads
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Name collisions.

/// Upper-case forms of the alphabet's pieces (each lower-cases back to the piece).
fn upper(piece: &str) -> &str {
    match piece {
        "a" => "A",
        "b" => "B",
        "c" => "C",
        "é" => "É",
        "ü" => "Ü",
        "ø" => "Ø",
        "ß" => "ẞ",
        other => other,
    }
}

/// Canonically decomposed (NFD) forms of the alphabet's pieces.
fn decomposed(piece: &str) -> &str {
    match piece {
        "é" => "e\u{301}",
        "ü" => "u\u{308}",
        other => other,
    }
}

#[derive(Debug, Clone, Copy)]
enum Variant {
    Upper,
    Decomposed,
}

fn make_entry(path: &Path, kind: u8) {
    match kind {
        0 => fs::write(path, b"x").expect("write"),
        1 => fs::create_dir(path).expect("mkdir"),
        _ => std::os::unix::fs::symlink("elsewhere", path).expect("symlink"),
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Two names equal under case folding or Unicode normalisation, anywhere in
    /// the tree and of any kinds, make the writer refuse the package.
    #[test]
    fn colliding_names_are_refused(
        dirs in prop::collection::vec(prop::collection::vec(0..ALPHABET.len(), 1..=3), 0..=3),
        base in prop::collection::vec(0..ALPHABET.len(), 0..=4),
        variant in prop_oneof![Just(Variant::Upper), Just(Variant::Decomposed)],
        kinds in (0u8..3, 0u8..3),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("pkg");
        let parent = dirs.iter().fold(root.clone(), |p, d| {
            p.join(d.iter().map(|&i| ALPHABET[i]).collect::<String>())
        });
        fs::create_dir_all(&parent).expect("mkdir -p");
        // The first piece guarantees the two names differ as bytes.
        let mut pieces: Vec<&str> = vec![match variant {
            Variant::Upper => "a",
            Variant::Decomposed => "é",
        }];
        pieces.extend(base.iter().map(|&i| ALPHABET[i]));
        let name: String = pieces.concat();
        let other: String = pieces
            .iter()
            .map(|p| match variant {
                Variant::Upper => upper(p),
                Variant::Decomposed => decomposed(p),
            })
            .collect();
        prop_assert_ne!(&name, &other);
        prop_assert_eq!(
            parcel_format::path::collision_key(&name),
            parcel_format::path::collision_key(&other)
        );

        make_entry(&parent.join(&name), kinds.0);
        let alone = write::scan(&root);
        prop_assert!(alone.is_ok(), "without the collision: {:?}", alone.err());
        make_entry(&parent.join(&other), kinds.1);
        match write::scan(&root) {
            Err(WriteError::Unsupported { path, .. }) => {
                let last = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                prop_assert!(last == name || last == other, "refusal names {:?}", path);
            }
            other_result => {
                prop_assert!(false, "expected Unsupported, got {:?}", other_result.map(|s| s.entries()));
            }
        }
        // The full writer refuses it too, before writing any volume.
        let out = tmp.path().join("out");
        let written = write_tree(&root, &out, &WriteOptions::default());
        let refused = matches!(written, Err(WriteError::Unsupported { .. }));
        prop_assert!(refused, "write_parcel: {:?}", written.map(|s| s.volumes));
        prop_assert_eq!(fs::read_dir(&out).expect("out dir").count(), 0);
    }
}

#[test]
fn everything_a_package_holds_that_parcel_does_not_carry_is_named_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("pkg");
    fs::create_dir_all(root.join("weird")).expect("mkdir");
    fs::write(root.join("weird/f"), b"file").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("./f", root.join("weird/dotf")).expect("symlink");
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo");
    let Err(WriteError::UnsupportedEntries { listed, unlisted }) = write::scan(&root) else {
        panic!("expected three refusals");
    };
    assert_eq!(unlisted, 0);
    let named: Vec<String> = listed
        .iter()
        .map(|(p, _)| {
            p.strip_prefix(&root)
                .expect("in package")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(named, ["abs", "pipe", "weird/dotf"]);
    let dotf = &listed[2].1;
    assert!(
        dotf.contains("(this one as `f`, if that is where it points)"),
        "{dotf}"
    );
    // Mended, one pass: the tree is taken.
    fs::remove_file(root.join("abs")).expect("rm");
    fs::remove_file(root.join("pipe")).expect("rm");
    fs::remove_file(root.join("weird/dotf")).expect("rm");
    std::os::unix::fs::symlink("f", root.join("weird/dotf")).expect("symlink");
    assert!(write::scan(&root).is_ok());
}

#[test]
fn upper_and_lower_case_a_collide() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("pkg");
    fs::create_dir(&root).expect("mkdir");
    fs::write(root.join("A"), b"upper").expect("write");
    fs::write(root.join("a"), b"lower").expect("write");
    assert!(matches!(
        write::scan(&root),
        Err(WriteError::Unsupported { .. })
    ));
}
