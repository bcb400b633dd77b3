//! Write, verify, extract: any small package tree the writer accepts comes
//! back identical (FORMAT.md §5.4 tree digest), over any volume size and
//! chunking the writer allows.
//!
//! The tree has at most 12 entries (directories, files of at most 64 KiB with
//! assorted modes, relative symlinks that stay inside), names from a safe
//! alphabet, unique when case-folded.
#![no_main]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use parcel_format::read::Parcel;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{self, WriteOptions};
use parcel_format::ChunkParams;

/// Entries per tree.
const MAX_NODES: usize = 12;
/// Bytes per file.
const MAX_FILE: usize = 64 * 1024;
/// Bytes per name.
const MAX_NAME: usize = 8;
const NAME_ALPHABET: &[u8] = b"abcxyzABCXYZ0189._-";

#[derive(Arbitrary, Debug)]
enum Content {
    Bytes(Vec<u8>),
    Repeat {
        pattern: Vec<u8>,
        times: u16,
    },
    /// Incompressible bytes.
    Noise {
        seed: u64,
        len: u16,
    },
    /// The same content as an earlier file (deduplicated chunks).
    CopyOf(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mode {
    Plain,
    Executable,
    OwnerOnly,
    OwnerExecutable,
    ReadOnly,
    /// setuid: the writer records only "executable", and extraction must not set it.
    Setuid,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Plain => 0o644,
            Mode::Executable => 0o755,
            Mode::OwnerOnly => 0o600,
            Mode::OwnerExecutable => 0o700,
            Mode::ReadOnly => 0o444,
            Mode::Setuid => 0o4755,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum NodeKind {
    Directory,
    File {
        mode: Mode,
        content: Content,
    },
    /// A link to `../` × (`ups` modulo depth + 1) followed by `target`.
    Symlink {
        ups: u8,
        target: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Node {
    /// Index into the directories made so far (the root is 0).
    parent: u8,
    name: Vec<u8>,
    kind: NodeKind,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Layout {
    /// 64 KiB volumes (the minimum) with tiny chunks.
    TinyVolumesTinyChunks,
    /// 64 KiB volumes with small chunks.
    TinyVolumesSmallChunks,
    /// 96 KiB volumes with 16 KiB chunks.
    SmallVolumesMediumChunks,
    /// 1 MiB volumes with the default chunking.
    LargeVolumesDefaultChunks,
}

impl Layout {
    fn options(self, level: u8) -> WriteOptions {
        let chunking = |min, avg, max| ChunkParams { min, avg, max };
        let (volume_size, chunking) = match self {
            Layout::TinyVolumesTinyChunks => (64 << 10, chunking(64, 256, 1024)),
            Layout::TinyVolumesSmallChunks => (64 << 10, parcel_fuzz::SMALL_CHUNKING),
            Layout::SmallVolumesMediumChunks => (96 << 10, chunking(1024, 4096, 16384)),
            Layout::LargeVolumesDefaultChunks => (1 << 20, parcel_format::chunk::DEFAULT_CHUNKING),
        };
        WriteOptions {
            volume_size,
            level: 1 + i32::from(level % 3),
            chunking,
            pack_target: 32 * 1024,
            threads: 1,
            encryption: None,
            read_back: false,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Tree {
    nodes: Vec<Node>,
    layout: Layout,
    level: u8,
}

fn name(bytes: &[u8]) -> String {
    let mut name: String = bytes
        .iter()
        .take(MAX_NAME)
        .map(|&b| char::from(NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()]))
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        name.push('n');
    }
    name
}

fn content(content: &Content, files: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = match content {
        Content::Bytes(bytes) => bytes.clone(),
        Content::Repeat { pattern, times } => {
            let times = usize::from(*times).min(MAX_FILE / pattern.len().max(1) + 1);
            pattern.repeat(times)
        }
        Content::Noise { seed, len } => parcel_fuzz::noise(*seed, usize::from(*len)),
        Content::CopyOf(i) if !files.is_empty() => files[usize::from(*i) % files.len()].clone(),
        Content::CopyOf(_) => Vec::new(),
    };
    bytes.truncate(MAX_FILE);
    bytes
}

/// Makes the tree under `root`; directories are listed by (relative path, depth).
fn build(tree: &Tree, root: &Path) {
    let mut dirs: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut taken = HashSet::new();
    let mut files: Vec<Vec<u8>> = Vec::new();
    for node in tree.nodes.iter().take(MAX_NODES) {
        let (parent, depth) = dirs[usize::from(node.parent) % dirs.len()].clone();
        let rel = if parent.is_empty() {
            name(&node.name)
        } else {
            format!("{parent}/{}", name(&node.name))
        };
        if !taken.insert(rel.to_lowercase()) {
            continue;
        }
        let full = root.join(&rel);
        match &node.kind {
            NodeKind::Directory => {
                fs::create_dir(&full).expect("tree directory");
                dirs.push((rel, depth + 1));
            }
            NodeKind::File { mode, content: c } => {
                let bytes = content(c, &files);
                fs::write(&full, &bytes).expect("tree file");
                fs::set_permissions(&full, fs::Permissions::from_mode(mode.bits()))
                    .expect("tree file mode");
                files.push(bytes);
            }
            NodeKind::Symlink { ups, target } => {
                let ups = usize::from(*ups) % (depth + 1);
                let target = format!("{}{}", "../".repeat(ups), name(target));
                std::os::unix::fs::symlink(target, &full).expect("tree symlink");
            }
        }
    }
}

fuzz_target!(|tree: Tree| {
    let tmp = parcel_fuzz::scratch();
    let package = tmp.path().join("package");
    fs::create_dir(&package).expect("package directory");
    build(&tree, &package);

    let options = tree.layout.options(tree.level);
    let media = tmp.path().join("media");
    fs::create_dir(&media).expect("media directory");
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: media,
            capacity: None,
        }],
        "roundtrip",
        options.volume_size,
    );
    let scan = write::scan(&package).expect("the writer scans a safe tree");
    let written = write::write_parcel(
        scan,
        &parcel_fuzz::parcel_info(),
        parcel_fuzz::fuzz_key(),
        &options,
        &mut sink,
        &mut |_| {},
    )
    .expect("the writer writes a safe tree");
    let source_digest = write::tree_digest_of_dir(&package).expect("package digest");
    assert_eq!(written.manifest.tree_digest(), source_digest);

    let volumes: Vec<_> = written.volumes.iter().map(|(p, _)| p.clone()).collect();
    let trust = parcel_fuzz::trusted();
    let report = parcel_format::verify::verify(&volumes, trust, &mut |_, _| {});
    assert!(
        report.is_ok(),
        "a fresh parcel fails verification: {:?}",
        report.problems
    );

    let parcel = Parcel::open(&volumes, trust).expect("a fresh parcel opens");
    assert_eq!(parcel.manifest(), &written.manifest);
    let jail = parcel_fuzz::Jail::new(tmp.path());
    parcel
        .extract(&jail.stage, &mut |_| {})
        .expect("a fresh parcel extracts");
    jail.check();
    let extracted = write::tree_digest_of_dir(&jail.stage).expect("extracted digest");
    assert_eq!(
        extracted,
        written.manifest.tree_digest(),
        "extracted tree differs"
    );
});
