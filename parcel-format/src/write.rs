//! Writing a parcel: walk the package, chunk and hash each file once, group
//! new chunks into packs, compress packs on worker threads, lay them out over
//! volumes, then append the index and seal every volume (FORMAT.md §2–§5).
//!
//! Data flows one way: scan → chunk → hash → pack → compress → volumes.
//! Reading (two file readers, each about 8 MiB of chunks ahead of the
//! packer) and compression (a fixed pool fed by a bounded channel) run in
//! parallel, and a single writer thread puts packs on media in order, so
//! memory stays bounded by 2 × threads + 2 raw packs (queued and being
//! compressed, per thread, and two at the packer), 2 × threads stored packs
//! (compression runs at most that far ahead of the writer; see `WriteWindow`)
//! and 16 MiB of chunks, whatever the package size.
//!
//! Besides the packs, memory holds what the index will say and nothing twice:
//! the walked file table (filled in place as files are read, not copied),
//! the chunk list, a table of 4-byte references for deduplication, and, for
//! many files, no stored index: that is counted, then streamed onto the
//! volumes. A million small files take 210–235 MiB at the peak
//! (bench/results/scale.md).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::budget::ByteBudget;
use crate::buffers::BufferPool;
use crate::chunk::{self, chunk_stream, DEFAULT_CHUNKING};
use crate::dedup::KnownChunks;
use crate::delta::{BaseIndex, UsedChunk};
use crate::encrypt::Encryption;
use crate::error::{WriteError, MAX_LISTED_REFUSALS};
use crate::header::{IndexPiece, VolumeHeader, FLAG_ENCRYPTED, FORMAT_VERSION};
use crate::limits::{
    MAX_CHUNKS, MAX_COMMENT, MAX_DESTINATIONS, MAX_ENTRIES, MAX_INDEX_MEMORY, MAX_INDEX_RAW,
    MAX_INDEX_STORED, MAX_PACKS, MAX_PACK_RAW, MIN_VOLUME_SIZE,
};
use crate::manifest::{
    check_package_id, check_site_code, ChunkParams, ChunkRecord, ChunkRefs, CollisionKeys, Entry,
    EntryKind, Hash, Manifest, PackRecord, ParcelId, DELTA_FORMAT_VERSION, EXTENDED_FORMAT_VERSION,
};
use crate::path;
use crate::sha256;
use crate::volume::{VolumeSink, VolumeWriter};

/// Who sends which package to whom: the parcel-wide fields of the manifest.
#[derive(Debug, Clone)]
pub struct ParcelInfo {
    /// The parcel's id (use [`ParcelId::random`]).
    pub parcel_id: ParcelId,
    /// The signing site's code.
    pub source_site: String,
    /// The site where the package was first made; the source site if `None`.
    pub origin_site: Option<String>,
    /// Destination site codes.
    pub destinations: Vec<String>,
    /// Package id.
    pub package_id: String,
    /// Package version.
    pub package_version: u64,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Free text.
    pub comment: String,
}

/// How to write: volume size, compression, chunking, parallelism.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Largest volume file, in bytes.
    pub volume_size: u64,
    /// zstd level (1–22), default 3.
    pub level: i32,
    /// Chunking parameters.
    pub chunking: ChunkParams,
    /// Raw bytes gathered into one pack before it is compressed.
    pub pack_target: u32,
    /// Compression threads; 0 = one per core.
    pub threads: usize,
    /// Encrypt the parcel to its destination (FORMAT.md §12): make one with
    /// [`Encryption::to_recipients`] for each parcel. `None`: not encrypted.
    pub encryption: Option<Encryption>,
    /// Read each volume back from the medium as it is written (once synced,
    /// with direct I/O) and give the SHA-256 of its body in
    /// [`WriteSummary::read_back`], for
    /// [`crate::verify::verify_written`]: the read-back after writing then
    /// overlaps the writing instead of following it.
    pub read_back: bool,
}

/// Default raw pack size (FORMAT.md §5.2 gives the measurements behind it).
pub const DEFAULT_PACK_TARGET: u32 = 4 * 1024 * 1024;

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            volume_size: 4_700_000_000,
            level: 3,
            chunking: DEFAULT_CHUNKING,
            pack_target: DEFAULT_PACK_TARGET,
            threads: 0,
            encryption: None,
            read_back: false,
        }
    }
}

/// A walked package: its file table in order, before any content is read
/// (files have no hash and no chunks yet).
///
/// The writer takes the scan and fills in each file as it reads it: the
/// walked table becomes the manifest's, never copied (FORMAT.md §8.1).
#[derive(Debug, Clone)]
pub struct Scan {
    root: PathBuf,
    entries: Vec<Entry>,
    /// Total bytes of regular-file content.
    pub content_bytes: u64,
    /// Number of regular files.
    pub files: u64,
}

impl Scan {
    /// Number of entries (files, directories, symlinks).
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of regular-file content a delta on `base` will probably have to
    /// carry: every file except those the base holds at the same path with
    /// the same size and modification time (the quick check rsync makes).
    /// An estimate for checking room on the media before reading anything:
    /// a file changed without changing either is carried all the same.
    pub fn content_bytes_beyond(&self, base: &BaseIndex) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { size, .. } if !base.probably_holds(&e.path, size, e.mtime) => {
                    Some(size)
                }
                _ => None,
            })
            .sum()
    }
}

/// Walks a package directory: directories before their contents, names in
/// byte order. Refuses what parcel does not carry, naming the path: device
/// files, FIFOs, sockets, non-UTF-8 or unsafe names, names that collide by case
/// or Unicode normalisation, symlinks that are absolute or leave the package.
pub fn scan(root: &Path) -> Result<Scan, WriteError> {
    let meta = fs::metadata(root).map_err(|source| WriteError::Read {
        path: root.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(WriteError::Unsupported {
            path: root.to_owned(),
            reason: "is not a directory; a package is a directory tree".into(),
        });
    }
    let mut scan = Scan {
        root: root.to_owned(),
        entries: Vec::new(),
        content_bytes: 0,
        files: 0,
    };
    let mut keys = CollisionKeys::with_capacity(0);
    let mut refused = Refused::default();
    walk(root, "", &mut scan, &mut keys, &mut refused)?;
    refused.into_result()?;
    scan.entries.shrink_to_fit();
    Ok(scan)
}

/// What the walk found that parcel does not carry: all of it is reported
/// together at the end of the walk (the first [`MAX_LISTED_REFUSALS`] named).
#[derive(Default)]
struct Refused {
    listed: Vec<(PathBuf, String)>,
    unlisted: u64,
}

impl Refused {
    fn add(&mut self, path: PathBuf, reason: String) {
        if self.listed.len() < MAX_LISTED_REFUSALS {
            self.listed.push((path, reason));
        } else {
            self.unlisted += 1;
        }
    }

    /// One refusal as [`WriteError::Unsupported`], several as
    /// [`WriteError::UnsupportedEntries`].
    fn into_result(mut self) -> Result<(), WriteError> {
        match (self.listed.len(), self.listed.pop()) {
            (_, None) => Ok(()),
            (1, Some((path, reason))) => Err(WriteError::Unsupported { path, reason }),
            (_, Some(last)) => {
                self.listed.push(last);
                Err(WriteError::UnsupportedEntries {
                    listed: self.listed,
                    unlisted: self.unlisted,
                })
            }
        }
    }
}

fn mtime_of(meta: &fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
}

fn walk(
    dir: &Path,
    prefix: &str,
    scan: &mut Scan,
    keys: &mut CollisionKeys,
    refused: &mut Refused,
) -> Result<(), WriteError> {
    let read_err = |source| WriteError::Read {
        path: dir.to_owned(),
        source,
    };
    // Each entry's metadata is taken as the directory is read (`fstatat`
    // beside the open directory: a walk from the root for each of 52,000
    // files was most of a toolchain's scan), not following symlinks.
    let mut found: Vec<(std::ffi::OsString, io::Result<fs::Metadata>)> = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| (e.file_name(), e.metadata())))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    found.sort_by(|(a, _), (b, _)| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for (name, meta) in found {
        let full = dir.join(&name);
        // What parcel does not carry is noted and passed over (a directory
        // is not entered): the walk goes on to find the rest.
        macro_rules! refuse {
            ($reason:expr) => {{
                refused.add(full.clone(), $reason);
                continue;
            }};
        }
        let Some(name) = name.to_str() else {
            refuse!("name is not valid UTF-8; rename it".into())
        };
        let rel = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        if let Err(r) = path::check_path(&rel) {
            refuse!(format!("unsafe name: {r}; rename it"))
        }
        let meta = meta.map_err(|source| WriteError::Read {
            path: full.clone(),
            source,
        })?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Directory
        } else if ft.is_file() {
            scan.content_bytes = scan.content_bytes.saturating_add(meta.len());
            scan.files += 1;
            EntryKind::File {
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
                sha256: [0; 32],
                chunks: ChunkRefs::new(),
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(|source| WriteError::Read {
                path: full.clone(),
                source,
            })?;
            let Some(target) = target.to_str().map(str::to_owned) else {
                refuse!("symlink target is not valid UTF-8".into())
            };
            if let Err(r) = path::check_symlink_target(&rel, &target) {
                let rewrite = path::plain_symlink_target(&rel, &target)
                    .map_or(String::new(), |plain| {
                        format!(" (this one as `{plain}`, if that is where it points)")
                    });
                refuse!(format!(
                    "{r}; parcel carries only relative symlinks that stay inside the package, written without `.`, empty components or `..` after a name: rewrite it{rewrite}, or replace it with what it points to"
                ))
            }
            EntryKind::Symlink { target }
        } else {
            refuse!("is a device file, FIFO or socket; parcel carries only directories, regular files and symlinks".into())
        };
        let is_dir = ft.is_dir();
        let index = scan.entries.len();
        scan.entries.push(Entry {
            path: rel,
            mtime: mtime_of(&meta),
            kind,
        });
        if keys.insert(&scan.entries, index) {
            refuse!(format!(
                "collides with {:?} on case-insensitive systems; rename one",
                collides_with(&scan.entries, index)
            ))
        }
        if is_dir {
            let rel = scan
                .entries
                .get(index)
                .map(|e| e.path.clone())
                .unwrap_or_default();
            walk(&full, &rel, scan, keys, refused)?;
        }
    }
    Ok(())
}

/// The earlier entry whose name collides with `entries[index]`'s (only on
/// the way out, to name it).
fn collides_with(entries: &[Entry], index: usize) -> &str {
    let Some((entry, earlier)) = entries.get(..=index).and_then(|e| e.split_last()) else {
        return "";
    };
    let key = path::collision_key(&entry.path);
    earlier
        .iter()
        .find(|e| path::collision_key(&e.path) == key)
        .map_or("", |e| e.path.as_str())
}

/// What a writer produced.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    /// The manifest as signed.
    pub manifest: Manifest,
    /// Each volume's final path and size, in volume order.
    pub volumes: Vec<(PathBuf, u64)>,
    /// SHA-256 of the stored index (what receipts name).
    pub index_sha256: Hash,
    /// Each parity volume's final path and size (FORMAT.md §13); empty
    /// without repair data.
    pub parity_volumes: Vec<(PathBuf, u64)>,
    /// With [`WriteOptions::read_back`]: each data volume read back from the
    /// medium as it was written. A volume that could not be (no direct I/O
    /// on its file system, no second handle or thread) is left out, to be
    /// read back whole.
    pub read_back: Vec<crate::volume::ReadBack>,
}

impl WriteSummary {
    /// Total bytes over all volumes, parity volumes included.
    pub fn bytes(&self) -> u64 {
        self.volumes
            .iter()
            .chain(&self.parity_volumes)
            .map(|(_, n)| n)
            .sum()
    }
}

struct PackJob {
    seq: u32,
    raw: Vec<u8>,
}

struct StoredPack {
    seq: u32,
    raw_len: u32,
    stored: Vec<u8>,
    /// SHA-256 of `stored`, taken by the worker that compressed it: the
    /// bytes are still in that core's cache, and the single writer thread
    /// is left only the volume hash.
    stored_sha256: Hash,
}

/// How far ahead of the volume writer the compression workers may run: a
/// worker holding pack *s* starts compressing it only once the writer has
/// written every pack up to *s* − `ahead`. The writer holds a pack that
/// finished before an earlier one until that one arrives; without this
/// bound, packs slow to compress (text) followed by fast ones (stored
/// incompressible data) could pile up there, one per fast pack. The pack
/// the writer waits for is always within the window, so it is never held
/// back.
struct WriteWindow {
    /// The next pack the writer puts on the volumes; `u32::MAX` once it
    /// stopped (every waiting worker then goes on, and finds no one
    /// listening).
    next: Mutex<u32>,
    moved: Condvar,
    ahead: u32,
}

impl WriteWindow {
    fn new(ahead: u32) -> WriteWindow {
        WriteWindow {
            next: Mutex::new(0),
            moved: Condvar::new(),
            ahead,
        }
    }

    /// Waits until pack `seq` may be compressed.
    fn wait_for(&self, seq: u32) {
        let Ok(mut next) = self.next.lock() else {
            return;
        };
        while seq >= next.saturating_add(self.ahead) {
            next = match self.moved.wait(next) {
                Ok(next) => next,
                Err(_) => return,
            };
        }
    }

    /// The writer has written every pack before `next`.
    fn advance(&self, next: u32) {
        if let Ok(mut n) = self.next.lock() {
            *n = next;
        }
        self.moved.notify_all();
    }
}

/// Opens the window wide when the writer stops, however it stops, so that no
/// worker waits for it forever.
struct WindowGuard<'a>(&'a WriteWindow);

impl Drop for WindowGuard<'_> {
    fn drop(&mut self) {
        self.0.advance(u32::MAX);
    }
}

/// Writes a scanned package as a parcel into `sink`, signed with `key`.
///
/// `progress` is called with the content bytes read so far. On failure every
/// temporary volume is removed from the sink.
pub fn write_parcel(
    scan: Scan,
    info: &ParcelInfo,
    key: &SigningKey,
    options: &WriteOptions,
    sink: &mut dyn VolumeSink,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteSummary, WriteError> {
    write_parcel_with(scan, info, key, options, &Extras::default(), sink, progress)
}

/// What a parcel may carry beyond a full copy of the package.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// Make a delta parcel on this base (FORMAT.md §11).
    pub base: Option<&'a BaseIndex>,
    /// Add repair data: this percentage (1–100) of the data volumes'
    /// size as Reed–Solomon recovery blocks in parity volumes (FORMAT.md §13).
    pub parity_percent: Option<u8>,
}

/// Writes a parcel as [`write_parcel`] and [`write_delta_parcel`] do, with
/// the [`Extras`] asked for: a base, repair data, or both.
pub fn write_parcel_with(
    scan: Scan,
    info: &ParcelInfo,
    key: &SigningKey,
    options: &WriteOptions,
    extras: &Extras<'_>,
    sink: &mut dyn VolumeSink,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteSummary, WriteError> {
    let result = match extras.base {
        None => write_inner(
            scan,
            info,
            key,
            options,
            None,
            extras.parity_percent,
            sink,
            progress,
        ),
        Some(base) => {
            let options = WriteOptions {
                chunking: base.chunking(),
                ..options.clone()
            };
            if base.package_id() != info.package_id
                || base.package_version() >= info.package_version
            {
                sink.abort();
                return Err(WriteError::Invalid(format!(
                    "a delta parcel of {} v{} cannot build on {} v{}: the base must be an earlier version of the same package",
                    info.package_id,
                    info.package_version,
                    base.package_id(),
                    base.package_version()
                )));
            }
            write_inner(
                scan,
                info,
                key,
                &options,
                Some(base),
                extras.parity_percent,
                sink,
                progress,
            )
        }
    };
    if result.is_err() {
        sink.abort();
    }
    result
}

/// Writes a delta parcel (FORMAT.md §11): like [`write_parcel`], but chunks
/// that `base` holds are not stored; the manifest says where in the base the
/// destination finds them. Chunks are cut with the base's parameters, so that
/// unchanged content cuts into the same chunks.
pub fn write_delta_parcel(
    scan: Scan,
    info: &ParcelInfo,
    base: &BaseIndex,
    key: &SigningKey,
    options: &WriteOptions,
    sink: &mut dyn VolumeSink,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteSummary, WriteError> {
    write_parcel_with(
        scan,
        info,
        key,
        options,
        &Extras {
            base: Some(base),
            parity_percent: None,
        },
        sink,
        progress,
    )
}

fn check_inputs(info: &ParcelInfo, options: &WriteOptions) -> Result<(), WriteError> {
    let invalid = WriteError::Invalid;
    check_site_code(&info.source_site).map_err(invalid)?;
    if let Some(origin) = &info.origin_site {
        check_site_code(origin).map_err(invalid)?;
    }
    if info.destinations.is_empty() {
        return Err(invalid(
            "a parcel needs at least one destination site".into(),
        ));
    }
    if info.destinations.len() > MAX_DESTINATIONS {
        return Err(invalid(format!(
            "{} destination sites, over the format's limit of {MAX_DESTINATIONS}; send several parcels",
            info.destinations.len()
        )));
    }
    for d in &info.destinations {
        check_site_code(d).map_err(invalid)?;
    }
    check_package_id(&info.package_id).map_err(invalid)?;
    if info.comment.len() > MAX_COMMENT {
        return Err(invalid(format!(
            "comment is longer than {MAX_COMMENT} bytes"
        )));
    }
    chunk::check_params(options.chunking).map_err(invalid)?;
    if !(1..=22).contains(&options.level) {
        return Err(invalid(format!(
            "compression level {} is outside 1..=22",
            options.level
        )));
    }
    if options.pack_target == 0 || options.pack_target > MAX_PACK_RAW - options.chunking.max {
        return Err(invalid(format!(
            "pack target {} is outside 1..={}",
            options.pack_target,
            MAX_PACK_RAW - options.chunking.max
        )));
    }
    if options.volume_size < MIN_VOLUME_SIZE {
        return Err(WriteError::TooSmall(format!(
            "volume size {} is below the minimum of {MIN_VOLUME_SIZE} bytes",
            options.volume_size
        )));
    }
    Ok(())
}

/// The chunking and pack size to write with, so that every pack fits in one
/// volume even when its data does not compress (zstd then adds at most
/// 1/256 of the input plus a few bytes, plus the pack's tar header).
///
/// Small volumes get smaller chunks: the parameters are halved (down to
/// fastcdc's least values) until the largest chunk fits; the manifest records
/// the parameters used. Packs aim at half a volume at most so that a volume is
/// not left mostly empty when the next pack does not fit.
fn fit_to_volume(options: &WriteOptions) -> Result<(ChunkParams, u32), WriteError> {
    let keys_len = options
        .encryption
        .as_ref()
        .map_or(0, |e| e.keys_entry().len() as u64);
    let max_entry = VolumeWriter::max_entry(options.volume_size, keys_len);
    let max_raw = (max_entry - max_entry / 256).saturating_sub(1024);
    let mut chunking = options.chunking;
    while u64::from(chunking.max) > max_raw && chunking.max / 2 >= chunk::MAXIMUM_MIN {
        chunking = ChunkParams {
            min: (chunking.min / 2).max(chunk::MINIMUM_MIN),
            avg: (chunking.avg / 2).max(chunk::AVERAGE_MIN),
            max: chunking.max / 2,
        };
    }
    if u64::from(chunking.max) > max_raw {
        return Err(WriteError::TooSmall(format!(
            "a volume of {} bytes cannot hold a chunk of {} bytes; choose a larger volume size",
            options.volume_size, chunking.max
        )));
    }
    let pack_target = u64::from(options.pack_target)
        .min(max_raw / 2)
        .max(u64::from(chunking.max));
    // pack_target <= options.pack_target or <= chunking.max, both u32.
    Ok((
        chunking,
        u32::try_from(pack_target).unwrap_or(options.pack_target),
    ))
}

#[allow(clippy::too_many_arguments)]
fn write_inner(
    scan: Scan,
    info: &ParcelInfo,
    key: &SigningKey,
    options: &WriteOptions,
    base: Option<&BaseIndex>,
    parity: Option<u8>,
    sink: &mut dyn VolumeSink,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteSummary, WriteError> {
    check_inputs(info, options)?;
    if let Some(percent) = parity {
        if !(1..=100).contains(&percent) {
            return Err(WriteError::Invalid(format!(
                "parity of {percent}% is outside 1..=100"
            )));
        }
        // Checked again on the volumes written (parity::plan); refused here
        // before any is written.
        if options.volume_size > crate::limits::MAX_PARITY_VOLUME_LEN {
            return Err(WriteError::Invalid(format!(
                "volume size {} is over the {} bytes repair data can cover; choose a smaller volume size or no parity",
                options.volume_size,
                crate::limits::MAX_PARITY_VOLUME_LEN
            )));
        }
    }
    let (chunking, pack_target) = fit_to_volume(options)?;
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        options.threads
    };
    let encryption = options.encryption.as_ref();
    let mut volumes = VolumeWriter::new(sink, options.volume_size, info.created);
    if let Some(e) = encryption {
        volumes = volumes.with_keys_entry(e.keys_entry());
    }
    if options.read_back {
        volumes = volumes.reading_back();
    }

    let (job_tx, job_rx) = sync_channel::<PackJob>(threads);
    let (done_tx, done_rx) = sync_channel::<io::Result<StoredPack>>(threads);
    // The raw pool may keep as many buffers as can be in flight at once (the
    // packer's, one it is handing over, one queued and one being compressed
    // per worker), so that none is freed and mapped afresh while the
    // pipeline runs: with room for only `threads`, buffers were dropped
    // whenever reading fell behind compression and made again when it caught
    // up (create of the toolchain package: 95,000–120,000 page faults, 53,000
    // with this bound and the CLI's allocator settings; peak memory within
    // 6 MiB). Stored packs are only partly touched: keeping up to 3 × threads
    // of them too saved 9,000 more faults but held 8 MiB more resident, and
    // 10–15 MiB more for a million small files, whose peak is near its bound.
    let buffers = Pools {
        raw: BufferPool::new(threads.saturating_mul(2).saturating_add(2)),
        stored: BufferPool::new(threads),
    };
    let pools = &buffers;
    let window =
        &WriteWindow::new(u32::try_from(threads).map_or(u32::MAX, |t| t.saturating_mul(2)));

    let Scan {
        root, mut entries, ..
    } = scan;
    let (chunks, packs, base_used) = std::thread::scope(|s| -> Result<_, WriteError> {
        // Only the workers hold the receiver: once they have all stopped (the
        // volume writer failed), the packer's sends fail instead of blocking.
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let level = options.level;
            let parcel_id = info.parcel_id;
            s.spawn(move || {
                compress_worker(
                    level, encryption, parcel_id, &job_rx, &done_tx, pools, window,
                );
            });
        }
        drop(job_rx);
        drop(done_tx);
        let writer = s.spawn(|| write_packs(&mut volumes, done_rx, &pools.stored, window));
        let read = read_package(
            &root,
            &mut entries,
            chunking,
            Packer::new(job_tx, &pools.raw, pack_target, base),
            progress,
        );
        let written = writer
            .join()
            .map_err(|_| WriteError::Invalid("pack writer thread panicked".into()))?;
        // A writer failure (disk full…) makes the reader's sends fail; report the writer's error first.
        let packs = written?;
        let (chunks, base_used) = read?;
        Ok((chunks, packs, base_used))
    })?;
    // The spare buffers go before the index is encoded (the peak for many files).
    drop(buffers);

    let base = base.map(|b| b.finish(&mut entries, chunks.len(), &base_used));
    let mut manifest = Manifest {
        // A header flag (encryption, repair data) needs version 3 (FORMAT.md §10).
        format_version: if encryption.is_some() || parity.is_some() {
            EXTENDED_FORMAT_VERSION
        } else if base.is_some() {
            DELTA_FORMAT_VERSION
        } else {
            FORMAT_VERSION
        },
        parcel_id: info.parcel_id,
        source_site: info.source_site.clone(),
        origin_site: info
            .origin_site
            .clone()
            .unwrap_or_else(|| info.source_site.clone()),
        destinations: info.destinations.clone(),
        package_id: info.package_id.clone(),
        package_version: info.package_version,
        created: info.created,
        comment: info.comment.clone(),
        volume_count: 0,
        compression_level: options.level,
        chunking,
        packs,
        chunks,
        entries,
        base,
    };
    // The index names the volume count, which depends on where the index
    // itself lands: try the count assuming the index fits, and retry once more
    // volumes are needed (at most a few rounds; each round only grows it).
    let mut count_guess = volumes.current_number().max(1);
    for _ in 0..64 {
        manifest.volume_count = count_guess;
        let encode_err = |e: io::Error| WriteError::Invalid(format!("encoding the index: {e}"));
        // An encrypted index is sealed whole, and a small plain one is
        // compressed once and kept until written (a toolchain's takes about
        // 0.05 s to compress, on one core while the others wait); a large
        // plain one is only counted here and streamed onto the volumes
        // below, never held whole.
        let keep = encryption.is_some() || manifest.decode_memory() <= KEEP_INDEX_MEMORY;
        let (sealed, stored_len, raw_len) = if keep {
            let (mut stored, raw_len) = manifest.encode(options.level).map_err(encode_err)?;
            if let Some(e) = encryption {
                if !e.key().seal_index(&info.parcel_id, &mut stored) {
                    return Err(WriteError::Invalid("encrypting the index failed".into()));
                }
            }
            let len = stored.len() as u64;
            (Some(stored), len, raw_len)
        } else {
            let (stored_len, raw_len) = manifest.encoded_len(options.level).map_err(encode_err)?;
            (None, stored_len, raw_len)
        };
        check_index_caps(&manifest, stored_len, raw_len)?;
        let needed = volumes.count_after_index(stored_len);
        if needed != count_guess {
            count_guess = needed;
            continue;
        }
        let index_sha256 = match sealed {
            Some(stored) => volumes.append_index(&stored)?,
            None => {
                let mut writer = volumes.index_writer(stored_len);
                if let Err(e) = manifest.encode_to(options.level, &mut writer) {
                    return Err(writer.error(e));
                }
                writer.finish()?
            }
        };
        let keys_entry = encryption.map(Encryption::keys_entry);
        let template = VolumeHeader {
            version: manifest.format_version,
            flags: if encryption.is_some() {
                FLAG_ENCRYPTED
            } else {
                0
            },
            volume: 0,
            volume_count: 0,
            parcel_id: info.parcel_id,
            created: info.created,
            source_site: info.source_site.clone(),
            signer: key.verifying_key().to_bytes(),
            body_len: 0,
            body_sha256: [0; 32],
            index_stored_len: stored_len,
            index_raw_len: raw_len,
            index_sha256,
            index_piece: IndexPiece::default(),
            keys_len: keys_entry.map_or(0, |k| k.len() as u64),
            keys_sha256: keys_entry.map_or([0; 32], |k| Sha256::digest(k).into()),
            parity: None,
        };
        let sealed = volumes.seal(&template, key, parity)?;
        return Ok(WriteSummary {
            manifest,
            volumes: sealed.volumes,
            index_sha256,
            parity_volumes: sealed.parity,
            read_back: sealed.read_back,
        });
    }
    Err(WriteError::Invalid(
        "the volume count did not settle while placing the index".into(),
    ))
}

/// The size of a manifest in memory ([`Manifest::decode_memory`], which
/// counts its tables, a delta's base included) up to which its plain index
/// is compressed once and held whole while written (the stored index is
/// of the same order: hashes, numbers and path bytes, compressed). Past it,
/// it is compressed twice, once to count its length and once as it is
/// written, so that a million files do not hold it beside the file table.
const KEEP_INDEX_MEMORY: u64 = 32 << 20;

/// Refuses to write an index a reader would refuse (FORMAT.md §8).
fn check_index_caps(manifest: &Manifest, stored: u64, raw: u64) -> Result<(), WriteError> {
    let caps = [
        (
            "files, directories and symlinks",
            manifest.entries.len() as u64,
            MAX_ENTRIES as u64,
        ),
        (
            "distinct chunks",
            manifest.chunks.len() as u64,
            MAX_CHUNKS as u64,
        ),
        ("packs", manifest.packs.len() as u64, MAX_PACKS as u64),
        ("bytes of index", raw, MAX_INDEX_RAW),
        ("bytes of compressed index", stored, MAX_INDEX_STORED),
        (
            "bytes of memory to decode the index",
            manifest.decode_memory(),
            MAX_INDEX_MEMORY as u64,
        ),
    ];
    for (what, value, limit) in caps {
        if value > limit {
            return Err(WriteError::Invalid(format!(
                "the package is too large for one parcel: {value} {what}, over the format's limit of {limit}; split it into several packages"
            )));
        }
    }
    Ok(())
}

fn compress_worker(
    level: i32,
    encryption: Option<&Encryption>,
    parcel_id: ParcelId,
    jobs: &Mutex<Receiver<PackJob>>,
    done: &SyncSender<io::Result<StoredPack>>,
    pools: &Pools,
    window: &WriteWindow,
) {
    let mut compressor = match crate::pack::PackCompressor::new(level) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        window.wait_for(job.seq);
        let mut stored = pools.stored.take(0);
        let result = compressor
            .compress_into(&job.raw, &mut stored)
            .and_then(|()| {
                if let Some(e) = encryption {
                    if !e.key().seal_pack(&parcel_id, job.seq, &mut stored) {
                        return Err(io::Error::other(format!("encrypting pack {}", job.seq)));
                    }
                }
                Ok(StoredPack {
                    seq: job.seq,
                    raw_len: job.raw.len() as u32,
                    stored_sha256: sha256::sha256(&stored),
                    stored,
                })
            });
        pools.raw.give(job.raw);
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Puts compressed packs on the volumes in sequence order.
fn write_packs(
    volumes: &mut VolumeWriter<'_>,
    done: Receiver<io::Result<StoredPack>>,
    stored_pool: &BufferPool,
    window: &WriteWindow,
) -> Result<Vec<PackRecord>, WriteError> {
    let _open_when_done = WindowGuard(window);
    let mut pending = BTreeMap::new();
    let mut records = Vec::new();
    for result in done {
        let pack = result.map_err(|e| WriteError::Invalid(format!("compression failed: {e}")))?;
        pending.insert(pack.seq, pack);
        while let Some(pack) = pending.remove(&(records.len() as u32)) {
            let name = format!("pack-{:08}.zst", pack.seq);
            let (volume, offset) = volumes.append(&name, &pack.stored)?;
            records.push(PackRecord {
                volume,
                offset,
                stored_len: pack.stored.len() as u32,
                raw_len: pack.raw_len,
                stored_sha256: pack.stored_sha256,
            });
            stored_pool.give(pack.stored);
            window.advance(records.len() as u32);
        }
    }
    if !pending.is_empty() {
        return Err(WriteError::Invalid(
            "a pack was lost between compression and writing".into(),
        ));
    }
    Ok(records)
}

struct Packer<'b> {
    tx: SyncSender<PackJob>,
    raw_pool: &'b BufferPool,
    raw: Vec<u8>,
    seq: u32,
    target: usize,
    chunks: Vec<ChunkRecord>,
    known: KnownChunks,
    base: Option<&'b BaseIndex>,
    base_used: Vec<UsedChunk>,
}

/// The hash a chunk reference stands for while writing: one of the parcel's
/// own chunks, or (numbered down from `u32::MAX`) a base chunk a delta uses.
fn hash_of<'a>(chunks: &'a [ChunkRecord], base_used: &'a [UsedChunk], r: u32) -> Option<&'a Hash> {
    match chunks.get(r as usize) {
        Some(c) => Some(&c.sha256),
        None => base_used.get((u32::MAX - r) as usize).map(|u| &u.sha256),
    }
}

impl<'b> Packer<'b> {
    /// A packer sending packs of about `target` raw bytes to `tx`,
    /// leaving out chunks `base` holds (a delta parcel).
    fn new(
        tx: SyncSender<PackJob>,
        raw_pool: &'b BufferPool,
        target: u32,
        base: Option<&'b BaseIndex>,
    ) -> Packer<'b> {
        Packer {
            tx,
            raw_pool,
            raw: raw_pool.take(target as usize),
            seq: 0,
            target: target as usize,
            chunks: Vec::new(),
            known: KnownChunks::new(),
            base,
            base_used: Vec::new(),
        }
    }

    /// Adds a chunk whose SHA-256 is `sha256`; returns its reference.
    fn add(&mut self, data: &[u8], sha256: Hash) -> Result<u32, WriteError> {
        let (chunks, base_used) = (&self.chunks, &self.base_used);
        if let Some(index) = self.known.get(&sha256, |r| hash_of(chunks, base_used, r)) {
            return Ok(index);
        }
        if let Some(used) = self.base.and_then(|b| b.find(&sha256, data.len())) {
            let index = crate::delta::provisional(self.base_used.len());
            self.base_used.push(used);
            let (chunks, base_used) = (&self.chunks, &self.base_used);
            self.known.insert(index, |r| hash_of(chunks, base_used, r));
            return Ok(index);
        }
        if !self.raw.is_empty() && self.raw.len() + data.len() > self.target {
            self.flush()?;
        }
        let index = self.chunks.len() as u32;
        self.chunks.push(ChunkRecord {
            sha256,
            len: data.len() as u32,
            pack: self.seq,
            offset: self.raw.len() as u32,
        });
        self.raw.extend_from_slice(data);
        let (chunks, base_used) = (&self.chunks, &self.base_used);
        self.known.insert(index, |r| hash_of(chunks, base_used, r));
        Ok(index)
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let raw = std::mem::replace(&mut self.raw, self.raw_pool.take(self.target));
        self.tx
            .send(PackJob { seq: self.seq, raw })
            .map_err(|_| WriteError::Invalid("the pack writer stopped".into()))?;
        self.seq += 1;
        Ok(())
    }
}

/// What reading the package gives besides the filled-in file table: the
/// parcel's own chunks, and the base chunks a delta parcel uses.
type PackageRead = (Vec<ChunkRecord>, Vec<UsedChunk>);

/// File readers working at once: each reads, chunks and hashes whole files
/// (FastCDC and SHA-256 are most of a create's work besides compression).
const FILE_READERS: usize = 2;

/// Messages one file reader may have ready before the packer takes them
/// (a small file is one message), and the bytes of chunk data they may hold
/// ([`ByteBudget`]): with 32 messages and no byte bound, readers of small
/// files stalled and create of an installed toolchain (52,000 files) took
/// about 9% longer.
const READ_AHEAD_MESSAGES: usize = 256;
const READ_AHEAD_BYTES: usize = 8 << 20;

/// Files handed to the readers before the packer takes the first of them:
/// how far reading runs ahead of packing, in files.
const FILES_AHEAD: usize = 256;

/// A file a reader is asked to read: its path in the package and the size
/// the walk found.
struct FileRequest {
    path: String,
    size: u64,
}

/// The buffers the pipeline recycles (see [`BufferPool`]); chunks are not
/// (they vary in size, and a pool of them would keep the largest).
struct Pools {
    /// Raw packs from the packer to the compressors.
    raw: BufferPool,
    /// Compressed packs from the compressors to the volume writer.
    stored: BufferPool,
}

/// What a file reader sends the packer about one file, in order.
enum FileMsg {
    /// The next chunk of the file and its SHA-256; with `only`, the file's
    /// one chunk, whose SHA-256 is also the file's (no `End` follows).
    Chunk {
        data: Vec<u8>,
        sha256: Hash,
        only: bool,
    },
    /// The file ended: its SHA-256.
    End(Hash),
    /// The file is unchanged since the base: its SHA-256 (not chunked).
    Whole(Hash),
    /// Reading failed.
    Failed(WriteError),
}

/// Reads every file once, chunking and hashing it, and fills in its hash and
/// chunks in `entries`; sends full packs to the workers.
///
/// Files are read by [`FILE_READERS`] threads, file *j* by reader *j* mod
/// *n*, each streaming its files' chunks in order through a channel bounded
/// in messages and in bytes ([`ByteBudget`]);
/// this thread hands out the files at most [`FILES_AHEAD`] ahead and takes
/// their chunks file by file in file-table order, so deduplication and
/// packing, and therefore the parcel, do not depend on timing.
fn read_package(
    root: &Path,
    entries: &mut [Entry],
    params: ChunkParams,
    mut packer: Packer<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<PackageRead, WriteError> {
    let base = packer.base;
    let budgets: Vec<ByteBudget> = (0..FILE_READERS)
        .map(|_| ByteBudget::new(READ_AHEAD_BYTES))
        .collect();
    std::thread::scope(|s| {
        // Closes the budgets however this closure ends, a panic included:
        // a reader waiting for room would otherwise wait for ever, and the
        // scope with it.
        let _close = CloseBudgets(&budgets);
        let mut requests = Vec::with_capacity(FILE_READERS);
        let mut channels = Vec::with_capacity(FILE_READERS);
        for budget in &budgets {
            // Never full: at most FILES_AHEAD files are handed out and not yet taken.
            let (request_tx, request_rx) = sync_channel::<FileRequest>(FILES_AHEAD);
            let (file_tx, file_rx) = sync_channel::<FileMsg>(READ_AHEAD_MESSAGES);
            requests.push(request_tx);
            channels.push((file_rx, budget));
            let out = Outbox {
                tx: file_tx,
                budget,
            };
            s.spawn(move || {
                let mut buffer = Vec::new();
                for request in request_rx {
                    if !read_file(root, &request, params, base, &mut buffer, &out) {
                        return;
                    }
                }
            });
        }
        // Dropping the channels (and closing the budgets) stops readers
        // still waiting for a file, on a send or for room in the budget.
        pack_files(entries, &requests, &channels, &mut packer, progress)
    })
    .map(|()| (packer.chunks, packer.base_used))
}

/// Closes the readers' budgets when dropped.
struct CloseBudgets<'a>(&'a [ByteBudget]);

impl Drop for CloseBudgets<'_> {
    fn drop(&mut self) {
        self.0.iter().for_each(ByteBudget::close);
    }
}

/// Hands the files to the readers in file-table order and takes their
/// chunks back in the same order, packing them and filling in each file.
fn pack_files(
    entries: &mut [Entry],
    requests: &[SyncSender<FileRequest>],
    channels: &[(Receiver<FileMsg>, &ByteBudget)],
    packer: &mut Packer<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), WriteError> {
    let stopped = || WriteError::Invalid("a file reader stopped".into());
    let mut done = 0u64;
    // Files handed out so far, and the entry the next one is looked for from.
    let (mut handed, mut next) = (0usize, 0usize);
    let mut taken = 0usize;
    for index in 0..entries.len() {
        if !matches!(
            entries.get(index).map(|e| &e.kind),
            Some(EntryKind::File { .. })
        ) {
            continue;
        }
        while handed < taken + FILES_AHEAD && next < entries.len() {
            if let Some(Entry {
                path,
                kind: EntryKind::File { size, .. },
                ..
            }) = entries.get(next)
            {
                let request = FileRequest {
                    path: path.clone(),
                    size: *size,
                };
                requests
                    .get(handed % FILE_READERS)
                    .ok_or_else(stopped)?
                    .send(request)
                    .map_err(|_| stopped())?;
                handed += 1;
            }
            next += 1;
        }
        let (channel, budget) = channels.get(taken % FILE_READERS).ok_or_else(stopped)?;
        taken += 1;
        let Some(Entry {
            kind:
                EntryKind::File {
                    size,
                    sha256,
                    chunks,
                    ..
                },
            ..
        }) = entries.get_mut(index)
        else {
            continue;
        };
        *sha256 = loop {
            match channel.recv().map_err(|_| stopped())? {
                FileMsg::Chunk { data, sha256, only } => {
                    budget.give(data.len());
                    chunks.push(packer.add(&data, sha256)?);
                    done += data.len() as u64;
                    progress(done);
                    if only {
                        break sha256;
                    }
                }
                FileMsg::End(sha256) => break sha256,
                FileMsg::Whole(sha256) => {
                    done += *size;
                    progress(done);
                    break sha256;
                }
                FileMsg::Failed(e) => return Err(e),
            }
        };
    }
    packer.flush()
}

/// Where a file reader sends its messages: the channel to the packer, and
/// the byte budget the chunks on it count against.
struct Outbox<'a> {
    tx: SyncSender<FileMsg>,
    budget: &'a ByteBudget,
}

impl Outbox<'_> {
    /// Sends `message`, first waiting for room in the budget for its chunk
    /// data; false when the packer has stopped listening.
    fn send(&self, message: FileMsg) -> bool {
        let bytes = match &message {
            FileMsg::Chunk { data, .. } => data.len(),
            _ => 0,
        };
        (bytes == 0 || self.budget.take(bytes)) && self.tx.send(message).is_ok()
    }
}

/// Reads, chunks and hashes one file, sending its chunks and then its hash
/// to `out`. Returns false when the packer has stopped listening.
fn read_file(
    root: &Path,
    request: &FileRequest,
    params: ChunkParams,
    base: Option<&BaseIndex>,
    buffer: &mut Vec<u8>,
    out: &Outbox<'_>,
) -> bool {
    let full = root.join(&request.path);
    let message = match read_file_chunks(&full, request, params, base, buffer, out) {
        Ok(Some(message)) => message,
        Ok(None) => return false,
        Err(e) => FileMsg::Failed(e),
    };
    out.send(message)
}

/// The body of [`read_file`]: `Ok(None)` when the packer stopped listening.
fn read_file_chunks(
    full: &Path,
    request: &FileRequest,
    params: ChunkParams,
    base: Option<&BaseIndex>,
    buffer: &mut Vec<u8>,
    out: &Outbox<'_>,
) -> Result<Option<FileMsg>, WriteError> {
    let size = request.size;
    // A delta's file unchanged since the base is taken whole from the base:
    // hashed, never chunked (FORMAT.md §11.4).
    if let Some(sha256) = unchanged_since_base(base, &request.path, full, size)? {
        return Ok(Some(FileMsg::Whole(sha256)));
    }
    let read_err = |source| WriteError::Read {
        path: full.to_owned(),
        source,
    };
    let file = File::open(full).map_err(read_err)?;
    let opened = Stamp::of(&file).map_err(read_err)?;
    let mut hasher = Sha256::new();
    // A file that is one chunk has the chunk's hash: hashed once, not twice
    // (most files of an installed tree are smaller than a chunk), and sent
    // as one message with its end. Should the file have grown since the walk,
    // the chunk is sent on as the first of several and the length check below
    // refuses the file.
    let mut one_chunk: Option<(Vec<u8>, Hash)> = None;
    let mut first = true;
    let mut listening = true;
    let stopped = || ChunkError::Write(WriteError::Invalid("stopped".into()));
    let read = chunk_stream(
        &file,
        params,
        size,
        buffer,
        |data: &[u8]| -> Result<(), ChunkError> {
            let sha256: Hash = sha256::sha256(data);
            if std::mem::take(&mut first) && data.len() as u64 == size {
                one_chunk = Some((data.to_vec(), sha256));
                return Ok(());
            }
            if let Some((held, held_sha256)) = one_chunk.take() {
                sha256::update(&mut hasher, &held);
                let held = FileMsg::Chunk {
                    data: held,
                    sha256: held_sha256,
                    only: false,
                };
                if !out.send(held) {
                    listening = false;
                    return Err(stopped());
                }
            }
            sha256::update(&mut hasher, data);
            let chunk = FileMsg::Chunk {
                data: data.to_vec(),
                sha256,
                only: false,
            };
            if !out.send(chunk) {
                listening = false;
                return Err(stopped());
            }
            Ok(())
        },
    )
    .map_err(|e| match e {
        ChunkError::Io(source) => WriteError::Read {
            path: full.to_owned(),
            source,
        },
        ChunkError::Write(w) => w,
    });
    if !listening {
        return Ok(None);
    }
    let read = read?;
    if read != size {
        return Err(WriteError::Changed {
            path: full.to_owned(),
            expected: size,
            actual: read,
        });
    }
    // Rewritten in place meanwhile (same size): what was read may be torn.
    if Stamp::of(&file).map_err(read_err)? != opened {
        return Err(WriteError::Modified {
            path: full.to_owned(),
        });
    }
    Ok(Some(match one_chunk {
        Some((data, sha256)) => FileMsg::Chunk {
            data,
            sha256,
            only: true,
        },
        None => FileMsg::End(hasher.finalize().into()),
    }))
}

/// When an open file's content last changed, as far as the system says: its
/// modification time, to the nanosecond. A write moves it; a change of
/// owner, mode or links, or a backup tool putting the access time back,
/// does not (the status-change time would refuse those too). A write within
/// the file system's timestamp granularity of the open (2 s on FAT), or
/// through a shared memory map, can go unseen.
#[derive(PartialEq, Eq)]
struct Stamp([i64; 2]);

impl Stamp {
    fn of(file: &File) -> io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(Stamp([meta.mtime(), meta.mtime_nsec()]))
    }
}

/// The SHA-256 of the file at `full` when the base holds a file at the same
/// path with the same size and hash; `None` otherwise (no base, no such
/// file, or it differs).
fn unchanged_since_base(
    base: Option<&BaseIndex>,
    path: &str,
    full: &Path,
    size: u64,
) -> Result<Option<Hash>, WriteError> {
    let Some((base_sha256, base_size)) = base.and_then(|b| b.whole_file(path)) else {
        return Ok(None);
    };
    if base_size != size || size == 0 {
        return Ok(None);
    }
    let read_err = |source| WriteError::Read {
        path: full.to_owned(),
        source,
    };
    let mut file = File::open(full).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let read = io::copy(&mut file, &mut hasher).map_err(read_err)?;
    if read != size {
        return Err(WriteError::Changed {
            path: full.to_owned(),
            expected: size,
            actual: read,
        });
    }
    let sha256: Hash = hasher.finalize().into();
    Ok((sha256 == base_sha256).then_some(sha256))
}

enum ChunkError {
    Io(io::Error),
    Write(WriteError),
}

impl From<io::Error> for ChunkError {
    fn from(e: io::Error) -> Self {
        ChunkError::Io(e)
    }
}

/// The tree digest ([`Manifest::tree_digest`]) of a directory on disk, e.g. of
/// an extracted package, to compare with a manifest's.
pub fn tree_digest_of_dir(root: &Path) -> Result<Hash, WriteError> {
    let mut scan = scan(root)?;
    for entry in &mut scan.entries {
        if let EntryKind::File { sha256, .. } = &mut entry.kind {
            let full = scan.root.join(&entry.path);
            let read_err = |source| WriteError::Read {
                path: full.clone(),
                source,
            };
            let mut file = File::open(&full).map_err(read_err)?;
            let mut hasher = Sha256::new();
            io::copy(&mut file, &mut hasher).map_err(read_err)?;
            *sha256 = hasher.finalize().into();
        }
    }
    Ok(crate::manifest::tree_digest(&scan.entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// Starts a thread that waits in `window` for pack `seq`, and returns
    /// what it sends once let through.
    fn waiter(window: &Arc<WriteWindow>, seq: u32) -> Receiver<u32> {
        let (tx, rx) = channel();
        let window = Arc::clone(window);
        std::thread::spawn(move || {
            window.wait_for(seq);
            let _ = tx.send(seq);
        });
        rx
    }

    #[test]
    fn a_worker_waits_until_its_pack_is_within_reach_of_the_writer() {
        let window = Arc::new(WriteWindow::new(2));
        // The pack the writer waits for, and the one after it, go at once.
        assert_eq!(
            waiter(&window, 0).recv_timeout(Duration::from_secs(10)),
            Ok(0)
        );
        assert_eq!(
            waiter(&window, 1).recv_timeout(Duration::from_secs(10)),
            Ok(1)
        );
        let far = waiter(&window, 5);
        window.advance(3);
        assert!(far.recv_timeout(Duration::from_millis(200)).is_err());
        window.advance(4);
        assert_eq!(far.recv_timeout(Duration::from_secs(10)), Ok(5));
    }

    #[test]
    fn a_writer_that_stops_lets_every_waiting_worker_go() {
        let window = Arc::new(WriteWindow::new(2));
        let far = waiter(&window, 1000);
        assert!(far.recv_timeout(Duration::from_millis(200)).is_err());
        drop(WindowGuard(&window));
        assert_eq!(far.recv_timeout(Duration::from_secs(10)), Ok(1000));
    }
}
