//! What the fuzz targets share: the fixed signing key every seed is signed
//! with, the seed parcels they mutate, scratch directories, and the check that
//! an extraction stayed inside its directory.
//!
//! Everything here is deterministic (fixed key, parcel id, times and
//! contents), so a crashing input replays against the same seed bytes in any
//! later process.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use parcel_format::limits::VOLUME_PREFIX;
use parcel_format::manifest::{ChunkRecord, PackRecord};
use parcel_format::sign::TrustedKeys;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{self, ParcelInfo, WriteOptions};
use parcel_format::{ChunkParams, Entry, EntryKind, Manifest, ParcelId};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub mod delta;
pub mod encrypted;

/// Site code the fuzz key is trusted under, and the seeds' source site.
pub const SOURCE_SITE: &str = "CEN";
/// Creation time of every seed parcel.
pub const CREATED: i64 = 1_700_000_000;
/// Smallest volume the writer accepts (`limits::MIN_VOLUME_SIZE`).
pub const SMALL_VOLUME: u64 = 64 * 1024;
/// Small chunking parameters (fastcdc's minimums are 64 / 256 / 1024), so
/// that little content makes many chunks and packs.
pub const SMALL_CHUNKING: ChunkParams = ChunkParams {
    min: 256,
    avg: 1024,
    max: 4096,
};

/// The key every seed parcel and receipt is signed with.
pub fn fuzz_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[0x5a; 32]))
}

/// A trust store holding only [`fuzz_key`], labelled [`SOURCE_SITE`].
pub fn trusted() -> &'static TrustedKeys {
    static TRUST: OnceLock<TrustedKeys> = OnceLock::new();
    TRUST.get_or_init(|| {
        let mut trust = TrustedKeys::new();
        trust.add(SOURCE_SITE, fuzz_key().verifying_key());
        trust
    })
}

/// A fresh scratch directory, in memory (`/dev/shm`) when there is one: the
/// writer syncs every volume, which costs nothing on tmpfs.
pub fn scratch() -> TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("parcel-fuzz-");
        b
    };
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.expect("cannot create a scratch directory")
}

/// Signs a volume file again as a compromised or buggy trusted site would:
/// body length and SHA-256 recomputed from the bytes after the prefix, the
/// index SHA-256 recomputed when the volume claims to hold the whole index,
/// every other header field kept, then signed by [`fuzz_key`]. So mutations
/// of signed or hashed bytes still reach the index and the content checks.
pub fn reseal_volume(path: &Path) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let header = parcel_format::testkit::read_header_unchecked(path)?;
    let body = bytes.get(VOLUME_PREFIX as usize..).unwrap_or_default();
    let piece = header.index_piece;
    let index = usize::try_from(piece.offset)
        .ok()
        .zip(usize::try_from(piece.offset.saturating_add(piece.len)).ok())
        .and_then(|(start, end)| bytes.get(start..end))
        .filter(|_| piece.start == 0 && piece.len == header.index_stored_len);
    let index_sha256 = index.map(sha256);
    // An encrypted volume's keys entry (FORMAT.md §12) follows the header.
    let keys_sha256 = usize::try_from(header.keys_len)
        .ok()
        .filter(|_| header.is_encrypted())
        .and_then(|len| bytes.get(1536..1536usize.checked_add(len)?))
        .map(sha256);
    let body_sha256 = sha256(body);
    let body_len = body.len() as u64;
    parcel_format::testkit::resign_header(path, fuzz_key(), |h| {
        h.body_len = body_len;
        h.body_sha256 = body_sha256;
        if let Some(digest) = index_sha256 {
            h.index_sha256 = digest;
        }
        if let Some(digest) = keys_sha256 {
            h.keys_sha256 = digest;
        }
    })
}

/// The parcel-wide fields of every seed parcel.
pub fn parcel_info() -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId([0x11; 16]),
        source_site: SOURCE_SITE.into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 1,
        created: CREATED,
        comment: "fuzz seed".into(),
    }
}

/// Writer options for small multi-volume parcels.
pub fn small_options() -> WriteOptions {
    WriteOptions {
        volume_size: SMALL_VOLUME,
        level: 1,
        chunking: SMALL_CHUNKING,
        pack_target: 16 * 1024,
        threads: 1,
        encryption: None,
        read_back: false,
    }
}

/// Deterministic, incompressible bytes (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A parcel as bytes: its volume files in volume order.
#[derive(Debug, Clone)]
pub struct SeedParcel {
    /// Each volume file's bytes, volume 1 first.
    pub volumes: Vec<Vec<u8>>,
    /// The manifest it carries.
    pub manifest: Manifest,
}

/// Sets a path's modification time (files and directories; not symlinks).
fn set_mtime(path: &Path, secs: u64) -> io::Result<()> {
    File::open(path)?.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Writes the seed package for [`seed_parcel`]: a directory, an executable,
/// incompressible data spanning volumes, repeated data (deduplicated chunks)
/// and an empty file, all with fixed times.
pub(crate) fn write_seed_package(root: &Path, noise_len: usize) -> io::Result<()> {
    fs::create_dir_all(root.join("bin"))?;
    fs::create_dir_all(root.join("data"))?;
    let tool = root.join("bin/tool");
    fs::write(&tool, b"#!/bin/sh\necho parcel\n".repeat(100))?;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755))?;
    fs::write(root.join("data/blob.bin"), noise(7, noise_len))?;
    fs::write(root.join("data/zeros"), vec![0u8; 20 * 1024])?;
    fs::write(root.join("README"), b"parcel fuzz seed\n")?;
    fs::write(root.join("empty"), b"")?;
    for file in ["bin/tool", "data/blob.bin", "data/zeros", "README", "empty"] {
        set_mtime(&root.join(file), CREATED as u64 - 60)?;
    }
    for dir in ["bin", "data"] {
        set_mtime(&root.join(dir), CREATED as u64 - 30)?;
    }
    Ok(())
}

/// Writes a package with [`write::write_parcel`] and returns its volumes' bytes.
pub fn write_package(package: &Path, options: &WriteOptions) -> SeedParcel {
    let out = scratch();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out.path().to_owned(),
            capacity: None,
        }],
        "seed",
        options.volume_size,
    );
    let scan = write::scan(package).expect("seed package scans");
    let written = write::write_parcel(
        scan,
        &parcel_info(),
        fuzz_key(),
        options,
        &mut sink,
        &mut |_| {},
    )
    .expect("seed parcel writes");
    let volumes = written
        .volumes
        .iter()
        .map(|(path, _)| fs::read(path).expect("seed volume reads"))
        .collect();
    SeedParcel {
        volumes,
        manifest: written.manifest,
    }
}

/// A 2–3 volume parcel made by [`write::write_parcel`] with
/// [`small_options`], written once per process (then only its bytes are kept).
pub fn seed_parcel() -> &'static SeedParcel {
    static SEED: OnceLock<SeedParcel> = OnceLock::new();
    SEED.get_or_init(|| {
        let tmp = scratch();
        let package = tmp.path().join("package");
        write_seed_package(&package, 100 * 1024).expect("seed package writes");
        let seed = write_package(&package, &small_options());
        assert!(
            (2..=3).contains(&seed.volumes.len()),
            "the seed parcel has {} volumes, expected 2 or 3",
            seed.volumes.len()
        );
        seed
    })
}

/// A one-volume parcel of the same package (smaller blob, large volumes).
pub fn seed_parcel_one_volume() -> SeedParcel {
    let tmp = scratch();
    let package = tmp.path().join("package");
    write_seed_package(&package, 8 * 1024).expect("seed package writes");
    let options = WriteOptions {
        volume_size: 1 << 20,
        ..small_options()
    };
    write_package(&package, &options)
}

/// The parts [`parcel_format::testkit::write_raw`] takes: a manifest made by
/// hand, its stored packs, and each chunk's raw bytes (to compute hashes of
/// files built from arbitrary chunk lists).
#[derive(Debug, Clone)]
pub struct RawSeed {
    /// The manifest; pack placement and volume count are filled in by `write_raw`.
    pub manifest: Manifest,
    /// Each pack's stored (zstd) bytes.
    pub stored_packs: Vec<Vec<u8>>,
    /// Each chunk's raw bytes, by chunk index.
    pub chunk_data: Vec<Vec<u8>>,
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The hand-made parcel behind the `extract` target: two packs of four
/// chunks, and a file table with a directory, an executable, a shared chunk
/// and a symlink.
pub fn raw_seed() -> &'static RawSeed {
    static SEED: OnceLock<RawSeed> = OnceLock::new();
    SEED.get_or_init(|| {
        let chunk_data: Vec<Vec<u8>> = vec![
            b"#!/bin/sh\necho hello\n".to_vec(),
            b"libfoo\n".repeat(50),
            b"README: parcel fuzz seed\n".to_vec(),
            noise(3, 3000),
        ];
        let pack_of = [0u32, 0, 1, 1];
        let mut packs: Vec<Vec<u8>> = vec![Vec::new(), Vec::new()];
        let mut chunks = Vec::new();
        for (data, &pack) in chunk_data.iter().zip(&pack_of) {
            let raw = &mut packs[pack as usize];
            chunks.push(ChunkRecord {
                sha256: sha256(data),
                len: data.len() as u32,
                pack,
                offset: raw.len() as u32,
            });
            raw.extend_from_slice(data);
        }
        let stored_packs: Vec<Vec<u8>> = packs
            .iter()
            .map(|raw| zstd::bulk::compress(raw, 1).expect("zstd compresses"))
            .collect();
        let pack_records = packs
            .iter()
            .map(|raw| PackRecord {
                volume: 0,
                offset: 0,
                stored_len: 0,
                raw_len: raw.len() as u32,
                stored_sha256: [0; 32],
            })
            .collect();
        let file = |path: &str, executable: bool, refs: &[u32]| {
            let content: Vec<u8> = refs
                .iter()
                .flat_map(|&c| chunk_data[c as usize].iter().copied())
                .collect();
            Entry {
                path: path.into(),
                mtime: CREATED - 60,
                kind: EntryKind::File {
                    size: content.len() as u64,
                    executable,
                    sha256: sha256(&content),
                    chunks: refs.iter().copied().collect(),
                },
            }
        };
        let dir = |path: &str| Entry {
            path: path.into(),
            mtime: CREATED - 30,
            kind: EntryKind::Directory,
        };
        // In the writer's walk order (FORMAT.md §5.3.2), as readers require.
        let entries = vec![
            file("README", false, &[2]),
            dir("bin"),
            file("bin/hello.sh", true, &[0]),
            dir("lib"),
            Entry {
                path: "lib/libfoo.so".into(),
                mtime: CREATED - 60,
                kind: EntryKind::Symlink {
                    target: "libfoo.so.1".into(),
                },
            },
            file("lib/libfoo.so.1", false, &[1]),
            dir("share"),
            file("share/data", false, &[3, 1]),
        ];
        let info = parcel_info();
        let manifest = Manifest {
            format_version: parcel_format::header::FORMAT_VERSION,
            parcel_id: ParcelId([0x22; 16]),
            source_site: info.source_site,
            origin_site: SOURCE_SITE.into(),
            destinations: info.destinations,
            package_id: info.package_id,
            package_version: info.package_version,
            created: CREATED,
            comment: info.comment,
            volume_count: 1,
            compression_level: 1,
            chunking: SMALL_CHUNKING,
            packs: pack_records,
            chunks,
            entries,
            base: None,
        };
        RawSeed {
            manifest,
            stored_packs,
            chunk_data,
        }
    })
}

/// Signs `manifest` and `stored_packs` as a parcel with
/// [`parcel_format::testkit::write_raw`] (pack hashes filled in) into `dir`.
pub fn write_raw_parcel(
    manifest: &mut Manifest,
    stored_packs: &[Vec<u8>],
    volume_size: u64,
    dir: &Path,
) -> Vec<PathBuf> {
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: dir.to_owned(),
            capacity: None,
        }],
        "raw",
        volume_size,
    );
    parcel_format::testkit::write_raw(
        manifest,
        stored_packs,
        fuzz_key(),
        volume_size,
        true,
        &mut sink,
    )
    .expect("testkit writes a raw parcel")
}

/// The volumes of [`raw_seed`] as bytes.
pub fn raw_seed_parcel() -> SeedParcel {
    let seed = raw_seed();
    let mut manifest = seed.manifest.clone();
    let out = scratch();
    let paths = write_raw_parcel(&mut manifest, &seed.stored_packs, SMALL_VOLUME, out.path());
    SeedParcel {
        volumes: paths
            .iter()
            .map(|p| fs::read(p).expect("raw volume reads"))
            .collect(),
        manifest,
    }
}

/// A directory to extract into, nested so that an escape is visible:
/// `root/jail/cell/stage`. After extraction [`Jail::check`] asserts that
/// `jail` and `cell` still hold only the next level down.
pub struct Jail {
    jail: PathBuf,
    /// The (empty) directory to extract into.
    pub stage: PathBuf,
}

impl Jail {
    /// Creates `root/jail/cell/stage`.
    pub fn new(root: &Path) -> Jail {
        let jail = root.join("jail");
        let stage = jail.join("cell").join("stage");
        fs::create_dir_all(&stage).expect("cannot create the extraction directory");
        Jail { jail, stage }
    }

    /// Asserts that extraction wrote nothing outside `stage`, and that nothing
    /// inside it is setuid, setgid or sticky, a device, FIFO or socket, or a
    /// symlink whose target leaves `stage` (lexically, from the link's place).
    pub fn check(&self) {
        assert_only_child(&self.jail, "cell");
        assert_only_child(&self.jail.join("cell"), "stage");
        self.check_tree(&self.stage, 0);
    }

    fn check_tree(&self, dir: &Path, depth: usize) {
        let listing = fs::read_dir(dir).expect("extracted directory lists");
        for item in listing {
            let item = item.expect("extracted directory lists");
            let path = item.path();
            let meta = fs::symlink_metadata(&path).expect("extracted entry stats");
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path).expect("extracted symlink reads");
                assert!(
                    stays_inside(depth, &target),
                    "extracted symlink {} -> {} leaves the extraction directory",
                    path.display(),
                    target.display()
                );
                continue;
            }
            assert!(
                kind.is_dir() || kind.is_file(),
                "extraction made a special file {}",
                path.display()
            );
            assert_eq!(
                meta.mode() & 0o7000,
                0,
                "extracted {} has mode {:o} (setuid, setgid or sticky)",
                path.display(),
                meta.mode()
            );
            if kind.is_dir() {
                self.check_tree(&path, depth + 1);
            }
        }
    }
}

fn assert_only_child(dir: &Path, name: &str) {
    let names: Vec<_> = fs::read_dir(dir)
        .expect("jail lists")
        .map(|e| e.expect("jail lists").file_name())
        .collect();
    assert!(
        names.len() == 1 && names[0] == name,
        "extraction wrote outside its directory: {} holds {names:?}",
        dir.display()
    );
}

/// Whether a link target, resolved lexically from a link `depth` directories
/// below the extraction root, stays at or below that root.
fn stays_inside(depth: usize, target: &Path) -> bool {
    let mut level = depth as isize;
    for component in target.components() {
        match component {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                level -= 1;
                if level < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A parcel with 50% repair data (FORMAT.md §13): its data volumes and its
/// parity volumes, for the `repair` target.
#[derive(Debug, Clone)]
pub struct ParitySeed {
    /// Data volume files' bytes, volume 1 first.
    pub data: Vec<Vec<u8>>,
    /// Parity volume files' bytes, parity volume 1 first.
    pub parity: Vec<Vec<u8>>,
}

/// The seed package of [`seed_parcel`] written with 50% repair data, once
/// per process.
pub fn seed_parity_parcel() -> &'static ParitySeed {
    static SEED: OnceLock<ParitySeed> = OnceLock::new();
    SEED.get_or_init(|| {
        let tmp = scratch();
        let package = tmp.path().join("package");
        write_seed_package(&package, 100 * 1024).expect("seed package writes");
        let out = tmp.path().join("out");
        fs::create_dir(&out).expect("seed output directory");
        let options = small_options();
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out,
                capacity: None,
            }],
            "seed",
            options.volume_size,
        );
        let scan = write::scan(&package).expect("seed package scans");
        let extras = write::Extras {
            base: None,
            parity_percent: Some(50),
        };
        let written = write::write_parcel_with(
            scan,
            &parcel_info(),
            fuzz_key(),
            &options,
            &extras,
            &mut sink,
            &mut |_| {},
        )
        .expect("seed parity parcel writes");
        let read = |list: &[(PathBuf, u64)]| -> Vec<Vec<u8>> {
            list.iter()
                .map(|(path, _)| fs::read(path).expect("seed volume reads"))
                .collect()
        };
        ParitySeed {
            data: read(&written.volumes),
            parity: read(&written.parity_volumes),
        }
    })
}
