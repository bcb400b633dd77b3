//! Hostile parcels for the end-to-end tests: honest parcels written with the
//! library and a site's own secret key, then changed and signed again with
//! parcel-format's testkit — what a compromised or buggy trusted site could
//! send — and the tools to damage volume files on a medium.

// Each test file uses a part of these builders.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use parcel_format::delta::BaseIndex;
use parcel_format::header::VolumeHeader;
use parcel_format::pack::decompress_exact;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{scan, write_delta_parcel, write_parcel, ParcelInfo, WriteOptions};
use parcel_format::{testkit, ChunkParams, Manifest, ParcelId};

use super::{random_bytes, Site};

/// The secret key `site` signs with, read from its home.
pub fn secret_key(site: &Site) -> SigningKey {
    let bytes = fs::read(site.home.join("site.key")).expect("site.key");
    SigningKey::from_bytes(&bytes.try_into().expect("a 32-byte secret key"))
}

/// Writes a package of about 9 KB at `root`: text that compresses, bytes
/// that do not, an executable, and a few directories. Small enough that its
/// parcel is one volume of about 12 KB; with [`small_options`], several packs
/// of several chunks.
pub fn write_small_package(root: &Path, seed: u64) {
    let file = |rel: &str, bytes: &[u8], mode: u32| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(&path, bytes).expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let text = format!("Tools from seed {seed}: the courier carries the parcel.\n").repeat(30);
    file("README", text.as_bytes(), 0o644);
    file("bin/tool", &random_bytes(seed, 3000), 0o755);
    file("doc/guide.txt", text.repeat(2).as_bytes(), 0o644);
    file("lib/libfoo.so.1", &random_bytes(seed + 1, 2500), 0o644);
}

/// The parcel-wide fields of `package_id` v`version` sent from `from` to `to`, with a fresh id.
pub fn info(from: &str, to: &str, package_id: &str, version: u64) -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId::random(),
        source_site: from.into(),
        origin_site: None,
        destinations: vec![to.into()],
        package_id: package_id.into(),
        package_version: version,
        created: 1_700_000_000,
        comment: "hostile test".into(),
    }
}

/// The smallest volumes, and chunks and packs of a few KB, so that a small
/// package makes several packs of several chunks.
pub fn small_options() -> WriteOptions {
    WriteOptions {
        volume_size: 64 * 1024,
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

/// The volume file stem `parcel create` would use.
fn stem(package_id: &str, version: u64, parcel: ParcelId) -> String {
    format!("{package_id}-v{version}-{}", &parcel.to_string()[..8])
}

/// An honest parcel: the manifest as signed, its stored packs, its volume files.
pub struct Honest {
    pub manifest: Manifest,
    pub packs: Vec<Vec<u8>>,
    pub volumes: Vec<PathBuf>,
}

impl Honest {
    /// Writes `package` as a parcel signed with `key` into the directory `out`.
    pub fn write(
        package: &Path,
        info: &ParcelInfo,
        key: &SigningKey,
        options: &WriteOptions,
        out: &Path,
    ) -> Honest {
        Honest::write_on(package, info, None, key, options, out)
    }

    /// Writes `package` as a delta parcel on `base` (FORMAT.md §11).
    pub fn write_delta(
        package: &Path,
        info: &ParcelInfo,
        base: &Manifest,
        key: &SigningKey,
        options: &WriteOptions,
        out: &Path,
    ) -> Honest {
        Honest::write_on(package, info, Some(base), key, options, out)
    }

    fn write_on(
        package: &Path,
        info: &ParcelInfo,
        base: Option<&Manifest>,
        key: &SigningKey,
        options: &WriteOptions,
        out: &Path,
    ) -> Honest {
        let name = stem(&info.package_id, info.package_version, info.parcel_id);
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out.to_owned(),
                capacity: None,
            }],
            name,
            options.volume_size,
        );
        let scanned = scan(package).expect("scan package");
        let written = match base {
            None => write_parcel(scanned, info, key, options, &mut sink, &mut |_| {}),
            Some(base) => write_delta_parcel(
                scanned,
                info,
                &BaseIndex::from_manifest(base),
                key,
                options,
                &mut sink,
                &mut |_| {},
            ),
        }
        .expect("write parcel");
        let volumes: Vec<PathBuf> = written.volumes.iter().map(|(p, _)| p.clone()).collect();
        let packs = written
            .manifest
            .packs
            .iter()
            .map(|p| {
                read_at(
                    &volumes[p.volume as usize - 1],
                    p.offset,
                    p.stored_len as usize,
                )
            })
            .collect();
        Honest {
            manifest: written.manifest,
            packs,
            volumes,
        }
    }

    /// The decompressed bytes of pack `p`.
    pub fn pack_raw(&self, p: usize) -> Vec<u8> {
        decompress_exact(&self.packs[p], self.manifest.packs[p].raw_len as usize)
            .expect("honest pack")
    }

    /// A parcel made from this one by `change` to a copy of its manifest
    /// (with a fresh parcel id) and stored packs, laid out and signed with
    /// `key` into `out` by `testkit::write_raw`: each pack record's place and
    /// stored hash are filled in from where its pack landed.
    pub fn forge(
        &self,
        key: &SigningKey,
        out: &Path,
        change: impl FnOnce(&mut Manifest, &mut Vec<Vec<u8>>),
    ) -> Vec<PathBuf> {
        let mut manifest = self.manifest.clone();
        manifest.parcel_id = ParcelId::random();
        let mut packs = self.packs.clone();
        change(&mut manifest, &mut packs);
        let name = stem(
            &manifest.package_id,
            manifest.package_version,
            manifest.parcel_id,
        );
        let volume_size = 64 * 1024;
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out.to_owned(),
                capacity: None,
            }],
            name,
            volume_size,
        );
        testkit::write_raw(&mut manifest, &packs, key, volume_size, true, &mut sink)
            .expect("write_raw")
    }
}

/// `len` bytes of `path` from `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut file = fs::File::open(path).expect("open volume");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    let mut bytes = vec![0; len];
    file.read_exact(&mut bytes).expect("read");
    bytes
}

/// Inverts every bit of the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open volume");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    byte[0] ^= 0xFF;
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(&byte).expect("write");
}

/// Re-signs every volume's header with `key` after `change`.
pub fn resign_all(volumes: &[PathBuf], key: &SigningKey, change: impl Fn(&mut VolumeHeader)) {
    for volume in volumes {
        testkit::resign_header(volume, key, &change).expect("re-sign header");
    }
}

/// One entry of a volume's tar archive.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: String,
    /// Offset of its 512-byte header block.
    pub header: u64,
    /// Offset of its data.
    pub data: u64,
    /// Length of its data (before padding).
    pub len: u64,
}

/// The entries of a volume file, read from their ustar headers, up to the
/// end-of-archive blocks.
pub fn tar_entries(volume: &Path) -> Vec<TarEntry> {
    let bytes = fs::read(volume).expect("read volume");
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at + 512 <= bytes.len() && bytes[at] != 0 {
        let block = &bytes[at..at + 512];
        let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&block[..name_end]).into_owned();
        let size_field = String::from_utf8_lossy(&block[124..136]);
        let len = u64::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .expect("octal size");
        entries.push(TarEntry {
            name,
            header: at as u64,
            data: at as u64 + 512,
            len,
        });
        at += 512 + (len as usize).div_ceil(512) * 512;
    }
    entries
}

/// A zstd frame made by hand: a header declaring `declared` content bytes and
/// a window of 2^`window_log` bytes, then `data` as one raw block. A correct
/// frame when `declared == data.len()` and the window is at least 1 KiB.
pub fn raw_frame(declared: u64, window_log: u8, data: &[u8]) -> Vec<u8> {
    assert!(
        data.len() < 128 * 1024,
        "one raw block holds at most 128 KiB"
    );
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Frame header descriptor: an 8-byte content size, a window descriptor,
    // no checksum, no dictionary.
    frame.push(0xC0);
    // Window descriptor: exponent (window_log - 10), mantissa 0.
    frame.push((window_log - 10) << 3);
    frame.extend_from_slice(&declared.to_le_bytes());
    // Block header: last block, raw, `data.len()` bytes.
    let block = ((data.len() as u32) << 3) | 1;
    frame.extend_from_slice(&block.to_le_bytes()[..3]);
    frame.extend_from_slice(data);
    frame
}

/// A zstd frame made by hand declaring `declared` content bytes, holding
/// `len` copies of `byte` as run-length blocks: megabytes in a few bytes.
pub fn rle_frame(declared: u64, byte: u8, len: usize) -> Vec<u8> {
    const BLOCK_MAX: usize = 128 * 1024;
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xC0, 7 << 3];
    frame.extend_from_slice(&declared.to_le_bytes());
    let mut left = len;
    loop {
        let size = left.min(BLOCK_MAX);
        left -= size;
        let last = u32::from(left == 0);
        // Block header: last flag, type 1 (RLE), `size` repetitions.
        let block = ((size as u32) << 3) | (1 << 1) | last;
        frame.extend_from_slice(&block.to_le_bytes()[..3]);
        frame.push(byte);
        if left == 0 {
            return frame;
        }
    }
}

/// Writes a package of about 3 KB at `root`: a text and an executable.
/// With [`small_options`] its parcel is one volume of about 7 KB holding two
/// packs, for tests that go over every byte.
pub fn write_tiny_package(root: &Path) {
    fs::create_dir_all(root.join("bin")).expect("create dirs");
    let text = "The courier carries the parcel.\n".repeat(30);
    fs::write(root.join("README"), text).expect("write file");
    fs::write(root.join("bin/tool"), random_bytes(5, 2000)).expect("write file");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
}
