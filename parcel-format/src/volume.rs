//! Volumes on the writing side: where volume files go ([`VolumeSink`],
//! [`DirSink`]), how entries are laid out in each tar archive, and volume sizes
//! (`4.7G`, `700MiB`, `dvd`…) as people write them (FORMAT.md §2).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::error::WriteError;
use crate::header::{IndexPiece, VolumeHeader, RECORD_LEN};
use crate::limits::{BLOCK, MAX_VOLUMES, VOLUME_PREFIX, VOLUME_TRAILER};
use crate::manifest::Hash;
use crate::sha256;
use crate::writeback::EarlySync;

/// Name of the first tar entry of every volume, holding the header record.
pub const HEADER_ENTRY: &str = "parcel-volume";

/// Where a writer puts volume files. Each volume is first written under a
/// temporary name; once all are complete and synced, [`VolumeSink::commit`]
/// gives them their final names.
pub trait VolumeSink: Send {
    /// Creates volume `number` (1-based) under a temporary name.
    fn create(&mut self, number: u32) -> io::Result<File>;
    /// Reopens volume `number` for reading and writing (to write its header).
    fn reopen(&mut self, number: u32) -> io::Result<File>;
    /// Renames every volume to its final name now that `count` is known;
    /// returns the final paths in volume order.
    fn commit(&mut self, count: u32) -> io::Result<Vec<PathBuf>>;
    /// Removes every temporary volume (after a failure).
    fn abort(&mut self);
    /// Creates parity volume `number` (1-based, FORMAT.md §13) under a
    /// temporary name. A sink that cannot hold parity volumes refuses.
    fn create_parity(&mut self, number: u32) -> io::Result<File> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this sink cannot hold parity volume {number}"),
        ))
    }
    /// The final paths of the parity volumes [`VolumeSink::commit`] renamed,
    /// in order; empty when there are none.
    fn committed_parity(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// One output directory and how many bytes it may take (`None`: no limit).
#[derive(Debug, Clone)]
pub struct OutputDir {
    /// The directory (a mounted medium).
    pub dir: PathBuf,
    /// Bytes available for volumes; volumes go to the next directory when full.
    pub capacity: Option<u64>,
}

/// A [`VolumeSink`] filling directories in order, one after the other;
/// parity volumes go in the directories after the last data volume's as far
/// as they have room, then beside the data. Volumes are named `STEM.NNN-of-MMM.tar`, parity
/// volumes `STEM.par-NNN-of-MMM.tar`.
pub struct DirSink {
    outputs: Vec<OutputDir>,
    stem: String,
    volume_size: u64,
    placed: Vec<PathBuf>,
    placed_parity: Vec<PathBuf>,
    committed_parity: Vec<PathBuf>,
    /// The directory data volumes go to: the first with room, in turn.
    current_output: usize,
    /// Bytes given out in each directory (whole volumes).
    used: Vec<u64>,
    /// The writer's lock in each directory it has put a temporary file in,
    /// held until the files are renamed or removed.
    locks: Vec<WriterLock>,
}

/// The suffix of every temporary file a [`DirSink`] writes.
pub(crate) const PARTIAL_SUFFIX: &str = ".partial";

/// The suffix of a writer's lock file.
const LOCK_SUFFIX: &str = ".lock";

/// What a writer's lock file holds, so that [`DirSink::sweep_stale`] never
/// takes a file of the same shape that is not one (`.myapp.lock`).
const LOCK_CONTENT: &[u8] = b"parcel volume writer lock\n";

/// Whether `inner` (a hidden file's name without its leading `.` and its
/// `.partial`) is a temporary file's name as writers make them: `STEM.NNNN`
/// or `STEM.par-NNNN` ([`DirSink`]), `STEM.NNN-of-MMM.tar` or
/// `STEM.par-NNN-of-MMM.tar` (a volume copied to a medium by the `parcel`
/// command). Returns the stem. A user's `.thesis.pdf.partial` is not one.
fn temporary_stem(inner: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let shaped = |rest: &str| {
        let rest = rest.strip_prefix("par-").unwrap_or(rest);
        match rest.strip_suffix(".tar").and_then(|r| r.split_once("-of-")) {
            Some((number, count)) => digits(number) && digits(count),
            None => digits(rest),
        }
    };
    inner
        .match_indices('.')
        .map(|(at, _)| at)
        .find(|&at| at > 0 && inner.get(at + 1..).is_some_and(shaped))
        .and_then(|at| inner.get(..at))
}

/// Whether `stem` is one the `parcel` command writes under (FORMAT.md
/// §2.5): `PACKAGEID-vVERSION-xxxxxxxx` or `parcel-xxxxxxxx`, `xxxxxxxx`
/// the first 8 lowercase hex digits of the parcel id. An empty, unlocked
/// lock file of such a stem is a writer's that was killed between making it
/// and writing its line, even with no temporary file beside it yet.
fn parcel_stem(stem: &str) -> bool {
    let Some((before, id)) = stem.rsplit_once('-') else {
        return false;
    };
    let id_ok = id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let package_ok = before == "parcel"
        || before.rsplit_once("-v").is_some_and(|(package, version)| {
            crate::manifest::check_package_id(package).is_ok()
                && !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_digit())
        });
    id_ok && package_ok
}

/// A writer's claim on its temporary files `.STEM.*.partial` in one
/// directory: the file `.STEM.lock`, held under an exclusive `flock` for as
/// long as the writer works there. A writer that is killed leaves the lock
/// file unlocked, which is how [`DirSink::sweep_stale`] tells its temporary
/// files from those of a writer at work. One lock per directory, not per
/// file: a parcel may have thousands of volumes, more than a process may
/// keep open. Dropping it removes the lock file.
#[derive(Debug)]
pub struct WriterLock {
    path: PathBuf,
    _file: File,
}

impl WriterLock {
    /// Takes the lock for the temporary files of `stem` in `dir`. A lock file
    /// of that stem nobody holds, left by a writer that died (empty, should it
    /// have died before writing its line), is taken over.
    pub fn acquire(dir: &Path, stem: &str) -> io::Result<WriterLock> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(format!(".{stem}{LOCK_SUFFIX}"));
        // A sweep may take a lock file in the instant between its creation
        // and its locking, and remove it: then it is made again.
        for _ in 0..8 {
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if remove_stale_lock(&path)? {
                        continue;
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
            };
            let claimed = file
                .lock()
                .and_then(|()| file.write_all(LOCK_CONTENT))
                .and_then(|()| file.metadata());
            let ours = match claimed {
                Ok(meta) => meta.ino(),
                Err(err) => {
                    // Not left empty behind (a full medium): the next run
                    // would find it.
                    drop(file);
                    let _ = fs::remove_file(&path);
                    return Err(err);
                }
            };
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.ino() == ours => return Ok(WriterLock { path, _file: file }),
                Ok(_) | Err(_) => continue,
            }
        }
        Err(io::Error::other(format!(
            "{} keeps being removed; is another parcel cleaning up there?",
            path.display()
        )))
    }
}

/// Removes the lock file at `path` if nobody holds it and it is a writer's
/// (it holds [`LOCK_CONTENT`], or nothing: a writer that died between making
/// it and writing it, or a crash that lost the line). Whether it did.
fn remove_stale_lock(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut file) = File::open(path) else {
        // Gone meanwhile: try again.
        return Ok(true);
    };
    if file.try_lock().is_err() {
        return Ok(false);
    }
    let mut head = Vec::new();
    (&mut file)
        .take(LOCK_CONTENT.len() as u64 + 1)
        .read_to_end(&mut head)?;
    let same = fs::symlink_metadata(path)
        .and_then(|m| Ok(m.ino() == file.metadata()?.ino()))
        .unwrap_or(false);
    if same && (head.is_empty() || head == LOCK_CONTENT) {
        ignore_missing(fs::remove_file(path))?;
        return Ok(true);
    }
    Ok(false)
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl DirSink {
    /// A sink over `outputs` for volumes of at most `volume_size` bytes.
    pub fn new(outputs: Vec<OutputDir>, stem: impl Into<String>, volume_size: u64) -> DirSink {
        DirSink {
            outputs,
            stem: stem.into(),
            volume_size,
            placed: Vec::new(),
            placed_parity: Vec::new(),
            committed_parity: Vec::new(),
            current_output: 0,
            used: Vec::new(),
            locks: Vec::new(),
        }
    }

    /// Removes from `dir` the temporary volume files (`.STEM.NNNN.partial`
    /// and the other shapes writers make) of writers that are gone —
    /// killed, or on a machine that crashed — and their lock files, and
    /// returns the temporary files' paths. A temporary file whose writer is
    /// at work (its [`WriterLock`] is held) is left alone, and so is every
    /// file not of those shapes (a user's `.thesis.pdf.partial` or
    /// `.myapp.lock`).
    pub fn sweep_stale(dir: &Path) -> io::Result<Vec<PathBuf>> {
        use std::os::unix::fs::MetadataExt;
        let hidden_files = |suffix: &str| -> io::Result<Vec<(String, PathBuf)>> {
            let mut found = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(suffix))
                else {
                    continue;
                };
                if entry.file_type()?.is_file() {
                    found.push((inner.to_owned(), entry.path()));
                }
            }
            Ok(found)
        };
        // Temporary files first, locks second: a writer takes its lock
        // before it makes a temporary file, so the lock of every temporary
        // file listed here is in the second listing.
        let partials: Vec<(String, PathBuf)> = hidden_files(PARTIAL_SUFFIX)?
            .into_iter()
            .filter(|(inner, _)| temporary_stem(inner).is_some())
            .collect();
        let mut live = Vec::new();
        for (stem, path) in hidden_files(LOCK_SUFFIX)? {
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {
                    // Nobody holds it: a writer that is gone, if it is a
                    // writer's lock (its content, or, from a writer that
                    // wrote none, its temporary files beside it). Removed
                    // only if the name still means the file locked here.
                    let mut head = Vec::new();
                    (&mut file)
                        .take(LOCK_CONTENT.len() as u64 + 1)
                        .read_to_end(&mut head)?;
                    let writers = head == LOCK_CONTENT
                        || (head.is_empty()
                            && (parcel_stem(&stem)
                                || partials.iter().any(|(inner, _)| {
                                    temporary_stem(inner) == Some(stem.as_str())
                                })));
                    let same = fs::symlink_metadata(&path)
                        .and_then(|m| Ok(m.ino() == file.metadata()?.ino()))
                        .unwrap_or(false);
                    if writers && same {
                        ignore_missing(fs::remove_file(&path))?;
                    }
                }
                Err(_) => live.push(format!("{stem}.")),
            }
        }
        let mut removed = Vec::new();
        for (name, path) in partials {
            if live.iter().any(|stem| name.starts_with(stem.as_str())) {
                continue;
            }
            ignore_missing(fs::remove_file(&path))?;
            removed.push(path);
        }
        Ok(removed)
    }

    /// Takes the writer's lock in `dir`, once.
    fn lock_dir(&mut self, dir: &Path) -> io::Result<()> {
        if !self.locks.iter().any(|l| l.path.parent() == Some(dir)) {
            self.locks.push(WriterLock::acquire(dir, &self.stem)?);
        }
        Ok(())
    }

    fn temp_path(&self, dir: &Path, number: u32) -> PathBuf {
        dir.join(format!(".{}.{number:04}{PARTIAL_SUFFIX}", self.stem))
    }

    /// Whether directory `i` has room for one more full volume.
    fn has_room(&self, i: usize) -> bool {
        let used = self.used.get(i).copied().unwrap_or(0);
        self.outputs.get(i).is_some_and(|out| {
            out.capacity
                .is_none_or(|cap| cap.saturating_sub(used) >= self.volume_size)
        })
    }

    /// Opens a new temporary file in the first directory of `order` with room
    /// for a full volume; returns it, its path and the directory's index.
    fn create_in_room(
        &mut self,
        what: &str,
        temp_name: &str,
        mut order: impl Iterator<Item = usize>,
    ) -> io::Result<(File, PathBuf, usize)> {
        let Some(i) = order.find(|&i| self.has_room(i)) else {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no output directory has room for {what}; add another output"),
            ));
        };
        let dir = self
            .outputs
            .get(i)
            .map(|o| o.dir.clone())
            .unwrap_or_default();
        let path = dir.join(temp_name);
        self.lock_dir(&dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        if self.used.len() < self.outputs.len() {
            self.used.resize(self.outputs.len(), 0);
        }
        if let Some(used) = self.used.get_mut(i) {
            *used = used.saturating_add(self.volume_size);
        }
        Ok((file, path, i))
    }
}

impl VolumeSink for DirSink {
    fn create_parity(&mut self, number: u32) -> io::Result<File> {
        // On another medium than the data when one has room: a lost medium
        // then takes data volumes or repair data, not both (the repair data
        // rebuilds lost data volumes only while it is intact). Else beside
        // the data, so that the room is what it would be without this.
        let data = self.current_output;
        let order = (data + 1..self.outputs.len()).chain(std::iter::once(data));
        let temp = format!(".{}.par-{number:04}{PARTIAL_SUFFIX}", self.stem);
        let (file, path, _) =
            self.create_in_room(&format!("parity volume {number}"), &temp, order)?;
        self.placed_parity.push(path);
        Ok(file)
    }

    fn committed_parity(&self) -> Vec<PathBuf> {
        self.committed_parity.clone()
    }

    fn create(&mut self, number: u32) -> io::Result<File> {
        let temp = self.temp_path(Path::new(""), number);
        let name = temp.to_string_lossy().into_owned();
        let order = self.current_output..self.outputs.len();
        let (file, path, i) = self.create_in_room(&format!("volume {number}"), &name, order)?;
        self.current_output = i;
        self.placed.push(path);
        Ok(file)
    }

    fn reopen(&mut self, number: u32) -> io::Result<File> {
        let path = self
            .placed
            .get((number as usize).wrapping_sub(1))
            .ok_or_else(|| io::Error::other(format!("volume {number} was never created")))?;
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn commit(&mut self, count: u32) -> io::Result<Vec<PathBuf>> {
        let parity_count = self.placed_parity.len();
        let mut finals = Vec::with_capacity(self.placed.len() + parity_count);
        let named = self
            .placed
            .iter()
            .enumerate()
            .map(|(i, temp)| {
                (
                    temp,
                    format!("{}.{:03}-of-{count:03}.tar", self.stem, i + 1),
                )
            })
            .chain(self.placed_parity.iter().enumerate().map(|(i, temp)| {
                (
                    temp,
                    format!("{}.par-{:03}-of-{parity_count:03}.tar", self.stem, i + 1),
                )
            }));
        let mut renames = Vec::new();
        for (temp, name) in named {
            let dir = temp.parent().unwrap_or(Path::new("."));
            let path = dir.join(name);
            if path.symlink_metadata().is_ok() {
                return Err(already_exists(&path));
            }
            renames.push((temp.clone(), path.clone()));
            finals.push(path);
        }
        let mut renamed = 0;
        let done = renames
            .iter()
            .try_for_each(|(temp, path)| {
                rename_no_replace(temp, path)?;
                renamed += 1;
                Ok(())
            })
            .and_then(|()| {
                let mut dirs: Vec<&Path> = finals.iter().filter_map(|p| p.parent()).collect();
                dirs.sort();
                dirs.dedup();
                dirs.into_iter()
                    .try_for_each(|dir| File::open(dir)?.sync_all())
            });
        if let Err(e) = done {
            // A volume under its final name belongs to a parcel that nobody
            // will record: it goes back to its temporary name, which
            // `abort` removes (or, where even that fails, goes now).
            for (temp, path) in renames.iter().take(renamed) {
                if rename_no_replace(path, temp).is_err() {
                    let _ = fs::remove_file(path);
                }
            }
            return Err(e);
        }
        self.placed.clear();
        self.placed_parity.clear();
        self.locks.clear();
        self.committed_parity = finals.split_off(finals.len() - parity_count);
        Ok(finals)
    }

    fn abort(&mut self) {
        for path in self.placed.drain(..).chain(self.placed_parity.drain(..)) {
            let _ = fs::remove_file(path);
        }
        self.locks.clear();
    }
}

/// `result`, with "it is already gone" as success.
fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Parses a volume size: a number with an optional suffix (`K`, `M`, `G`, `T`
/// powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` powers of 1024; decimals
/// allowed, e.g. `4.7G`), or a preset: `cd` (700 MB), `dvd` (4.7 GB),
/// `dvd-dl` (8.5 GB), `bd` (25 GB), `fat32` (4 GiB − 1).
pub fn parse_volume_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let preset = match t.to_ascii_lowercase().as_str() {
        "cd" => Some(700_000_000),
        "dvd" => Some(4_700_000_000),
        "dvd-dl" => Some(8_500_000_000),
        "bd" => Some(25_000_000_000),
        "fat32" => Some(4 * 1024 * 1024 * 1024 - 1),
        _ => None,
    };
    if let Some(size) = preset {
        return Ok(size);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let factor: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
            "bad volume size {text:?}: use e.g. 700M, 4.7G, 4GiB, or cd, dvd, dvd-dl, bd, fat32"
        ))
        }
    };
    let bad = || {
        format!(
            "bad volume size {text:?}: use e.g. 700M, 4.7G, 4GiB, or cd, dvd, dvd-dl, bd, fat32"
        )
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut size = whole.checked_mul(factor).ok_or_else(bad)?;
    if !frac.is_empty() {
        let digits: u32 = frac.len().try_into().map_err(|_| bad())?;
        let frac_value: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.checked_pow(digits).ok_or_else(bad)?;
        size = size
            .checked_add(frac_value.checked_mul(factor).ok_or_else(bad)? / scale)
            .ok_or_else(bad)?;
    }
    Ok(size)
}

/// Whether a file starts like a parcel volume (its first entry is the
/// header entry and the record has the magic). Cheap, unauthenticated: used to
/// pick volume files out of a directory.
pub fn looks_like_volume(path: &Path) -> bool {
    let mut first = [0u8; VOLUME_PREFIX as usize];
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if file.read_exact(&mut first).is_err() {
        return false;
    }
    first.starts_with(HEADER_ENTRY.as_bytes())
        && first[BLOCK as usize..].starts_with(&crate::header::MAGIC)
}

/// The tar header block parcel writes for an entry.
pub(crate) fn tar_header(name: &str, size: u64, mtime: i64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime.max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Counts bytes written and hashes those past the volume prefix (the body).
struct BodyHasher<W> {
    inner: W,
    pos: u64,
    hasher: Sha256,
}

impl<W: Write> Write for BodyHasher<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        let skip = VOLUME_PREFIX.saturating_sub(self.pos).min(n as u64) as usize;
        sha256::update(&mut self.hasher, written.get(skip..).unwrap_or_default());
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Current {
    number: u32,
    tar: tar::Builder<BodyHasher<BufWriter<EarlySync>>>,
    index_piece: IndexPiece,
}

struct Finished {
    number: u32,
    body_len: u64,
    body_sha256: [u8; 32],
    index_piece: IndexPiece,
    /// The SHA-256 of the body and of its head as read back from the
    /// medium, when it was.
    read_back: Option<(Hash, Hash)>,
}

/// A volume read back from the medium as it was written
/// ([`crate::write::WriteOptions::read_back`]), for
/// [`crate::verify::verify_written`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// The volume's final path.
    pub path: PathBuf,
    /// The SHA-256 of its body as read back.
    pub body_sha256: Hash,
    /// The SHA-256 of the first [`READ_BACK_HEAD`] bytes of its body (all of
    /// it when shorter) as read back. Sealing writes the header record into
    /// the volume's first block, and the medium takes the body bytes that
    /// share it once more: `verify_written` reads them again then.
    pub head_sha256: Hash,
}

/// Bytes at the start of a volume body that [`ReadBack::head_sha256`] covers.
pub const READ_BACK_HEAD: u64 = crate::writeback::HEAD;

/// What [`VolumeWriter::seal`] made: each data volume's and each parity
/// volume's final path and length, in order.
pub(crate) struct Sealed {
    pub(crate) volumes: Vec<(PathBuf, u64)>,
    pub(crate) parity: Vec<(PathBuf, u64)>,
    /// Each data volume read back as it was written (see
    /// [`VolumeWriter::reading_back`]).
    pub(crate) read_back: Vec<ReadBack>,
}

/// Lays entries out over volumes of at most `volume_size` bytes.
pub(crate) struct VolumeWriter<'s> {
    sink: &'s mut dyn VolumeSink,
    volume_size: u64,
    mtime: i64,
    current: Option<Current>,
    finished: Vec<Finished>,
    /// The `parcel-keys` entry every volume carries after its header, for an
    /// encrypted parcel (FORMAT.md §12).
    keys_entry: Option<Vec<u8>>,
    /// Read each volume back from the medium as it is written.
    read_back: bool,
}

fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

impl<'s> VolumeWriter<'s> {
    pub(crate) fn new(sink: &'s mut dyn VolumeSink, volume_size: u64, mtime: i64) -> Self {
        VolumeWriter {
            sink,
            volume_size,
            mtime,
            current: None,
            finished: Vec::new(),
            keys_entry: None,
            read_back: false,
        }
    }

    /// Reads each volume's body back from the medium as it is written,
    /// once synced (see [`EarlySync`]).
    pub(crate) fn reading_back(mut self) -> Self {
        self.read_back = true;
        self
    }

    /// Starts every volume with a `parcel-keys` entry holding `entry`.
    pub(crate) fn with_keys_entry(mut self, entry: &[u8]) -> Self {
        self.keys_entry = Some(entry.to_vec());
        self
    }

    /// Largest entry that fits in an empty volume whose `parcel-keys` entry
    /// holds `keys_len` bytes (0: no such entry).
    pub(crate) fn max_entry(volume_size: u64, keys_len: u64) -> u64 {
        let keys = if keys_len == 0 {
            0
        } else {
            BLOCK + padded(keys_len)
        };
        (volume_size.saturating_sub(VOLUME_PREFIX + keys + VOLUME_TRAILER + BLOCK) / BLOCK) * BLOCK
    }

    fn own_max_entry(&self) -> u64 {
        let keys_len = self.keys_entry.as_ref().map_or(0, |k| k.len() as u64);
        Self::max_entry(self.volume_size, keys_len)
    }

    fn room(&self) -> u64 {
        match &self.current {
            None => 0,
            Some(c) => {
                let pos = c.tar.get_ref().pos;
                (self
                    .volume_size
                    .saturating_sub(pos + VOLUME_TRAILER + BLOCK)
                    / BLOCK)
                    * BLOCK
            }
        }
    }

    fn number(&self) -> u32 {
        self.current
            .as_ref()
            .map_or(self.finished.len() as u32 + 1, |c| c.number)
    }

    fn open_next(&mut self) -> Result<(), WriteError> {
        self.close_current()?;
        let number = self.finished.len() as u32 + 1;
        if number > MAX_VOLUMES {
            return Err(WriteError::TooManyVolumes);
        }
        let file = self
            .sink
            .create(number)
            .map_err(|source| WriteError::Volume {
                volume: number,
                source,
            })?;
        // A second handle to read it back through; without one the volume
        // is not read back here (and the caller reads it back whole).
        let reader = if self.read_back {
            self.sink.reopen(number).ok()
        } else {
            None
        };
        let inner = BodyHasher {
            inner: BufWriter::with_capacity(1 << 20, EarlySync::new(file, reader)),
            pos: 0,
            hasher: Sha256::new(),
        };
        let mut tar = tar::Builder::new(inner);
        let header =
            tar_header(HEADER_ENTRY, BLOCK, self.mtime).map_err(|source| WriteError::Volume {
                volume: number,
                source,
            })?;
        // The record is written last, once every volume is complete (see `seal`).
        tar.append(&header, &[0u8; BLOCK as usize][..])
            .map_err(|source| WriteError::Volume {
                volume: number,
                source,
            })?;
        if let Some(entry) = &self.keys_entry {
            let err = |source| WriteError::Volume {
                volume: number,
                source,
            };
            let header = tar_header(crate::encrypt::KEYS_ENTRY, entry.len() as u64, self.mtime)
                .map_err(err)?;
            tar.append(&header, &entry[..]).map_err(err)?;
        }
        self.current = Some(Current {
            number,
            tar,
            index_piece: IndexPiece::default(),
        });
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), WriteError> {
        if let Some(c) = self.current.take() {
            let err = |source| WriteError::Volume {
                volume: c.number,
                source,
            };
            let inner = c.tar.into_inner().map_err(err)?;
            let body_len = inner.pos - VOLUME_PREFIX;
            let body_sha256 = inner.hasher.finalize().into();
            let mut file = inner.inner.into_inner().map_err(|e| WriteError::Volume {
                volume: c.number,
                source: e.into_error(),
            })?;
            file.flush().map_err(|source| WriteError::Volume {
                volume: c.number,
                source,
            })?;
            let (_, synced) = file.finish().map_err(|source| WriteError::Volume {
                volume: c.number,
                source,
            })?;
            self.finished.push(Finished {
                number: c.number,
                body_len,
                body_sha256,
                index_piece: c.index_piece,
                read_back: synced.read_back,
            });
        }
        Ok(())
    }

    /// Appends one entry whole, starting a new volume when it does not fit.
    /// Returns the volume number and the offset of the data in that volume.
    pub(crate) fn append(&mut self, name: &str, data: &[u8]) -> Result<(u32, u64), WriteError> {
        let need = padded(data.len() as u64);
        if need > self.own_max_entry() {
            return Err(WriteError::TooSmall(format!(
                "a {}-byte unit does not fit in a volume of {} bytes; choose a larger volume size",
                data.len(),
                self.volume_size
            )));
        }
        if self.current.is_none() || self.room() < need {
            self.open_next()?;
        }
        self.write_entry(name, data)
    }

    /// Writes `bytes` as they are at the end of the open volume: tar headers,
    /// data and padding the caller lays out itself.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let c = self
            .current
            .as_mut()
            .ok_or(WriteError::Invalid("no open volume".into()))?;
        let volume = c.number;
        c.tar
            .get_mut()
            .write_all(bytes)
            .map_err(|source| WriteError::Volume { volume, source })
    }

    /// Bytes written to the open volume so far (0 when none is open).
    fn position(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.tar.get_ref().pos)
    }

    fn write_entry(&mut self, name: &str, data: &[u8]) -> Result<(u32, u64), WriteError> {
        let number = self.number();
        let mtime = self.mtime;
        let c = self
            .current
            .as_mut()
            .ok_or(WriteError::Invalid("no open volume".into()))?;
        let err = |source| WriteError::Volume {
            volume: number,
            source,
        };
        let header = tar_header(name, data.len() as u64, mtime).map_err(err)?;
        let offset = c.tar.get_ref().pos + BLOCK;
        c.tar.append(&header, data).map_err(err)?;
        Ok((number, offset))
    }

    /// Number of volumes opened so far.
    pub(crate) fn current_number(&self) -> u32 {
        self.finished.len() as u32 + u32::from(self.current.is_some())
    }

    /// How many volumes there will be once an index of `len` bytes is
    /// appended by [`VolumeWriter::append_index`] (same layout, nothing written).
    pub(crate) fn count_after_index(&self, len: u64) -> u32 {
        let mut count = self.current_number();
        let mut room = self.room();
        let mut open = self.current.is_some();
        let mut left = len;
        loop {
            if !open || (room == 0 && left > 0) {
                count += 1;
                room = self.own_max_entry();
                open = true;
            }
            let take = left.min(room);
            left -= take;
            room = room.saturating_sub(BLOCK + padded(take));
            if left == 0 {
                return count;
            }
        }
    }

    /// Appends the stored index, split over as many volumes as it needs.
    pub(crate) fn append_index(&mut self, stored: &[u8]) -> Result<Hash, WriteError> {
        let mut writer = self.index_writer(stored.len() as u64);
        if let Err(e) = writer.write_all(stored) {
            return Err(writer.error(e));
        }
        writer.finish()
    }

    /// A writer that takes a stored index of exactly `len` bytes as it is
    /// produced and lays it out as [`VolumeWriter::append_index`] does, so
    /// that the index never needs to be held whole (FORMAT.md §8.1).
    pub(crate) fn index_writer(&mut self, len: u64) -> IndexWriter<'_, 's> {
        IndexWriter {
            volumes: self,
            len,
            written: 0,
            piece_left: 0,
            piece_len: 0,
            hasher: Sha256::new(),
            failed: None,
        }
    }

    /// Closes the last volume, writes every volume's signed header record,
    /// syncs each volume, and commits them under their final names. With
    /// `parity` (a percentage), the headers announce the repair-data layout
    /// and the parity volumes are written once the data volumes are sealed
    /// (FORMAT.md §13). Returns the data volumes, then the parity volumes.
    pub(crate) fn seal(
        mut self,
        template: &VolumeHeader,
        key: &SigningKey,
        parity: Option<u8>,
    ) -> Result<Sealed, WriteError> {
        self.close_current()?;
        let count = self.finished.len() as u32;
        let layout = match parity {
            None => None,
            Some(percent) => {
                let lengths = self
                    .finished
                    .iter()
                    .map(|f| VOLUME_PREFIX + f.body_len)
                    .collect();
                Some(crate::parity::plan(lengths, percent, self.volume_size)?)
            }
        };
        let template = VolumeHeader {
            flags: template.flags
                | if layout.is_some() {
                    crate::header::FLAG_PARITY
                } else {
                    0
                },
            volume_count: count,
            parity: layout.as_ref().map(crate::parity::Layout::data_fields),
            ..template.clone()
        };
        for f in &self.finished {
            let header = VolumeHeader {
                volume: f.number,
                volume_count: count,
                body_len: f.body_len,
                body_sha256: f.body_sha256,
                index_piece: f.index_piece,
                ..template.clone()
            };
            let record: [u8; RECORD_LEN] = header.encode_signed(key);
            let err = |source| WriteError::Volume {
                volume: f.number,
                source,
            };
            let mut file = self.sink.reopen(f.number).map_err(err)?;
            file.seek(SeekFrom::Start(BLOCK)).map_err(err)?;
            file.write_all(&record).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        if let Some(layout) = &layout {
            crate::parity::write_parity(self.sink, layout, &template, key)?;
        }
        let paths = self
            .sink
            .commit(count)
            .map_err(|source| WriteError::Volume {
                volume: count,
                source,
            })?;
        let parity = self
            .sink
            .committed_parity()
            .into_iter()
            .map(|p| {
                let len = fs::metadata(&p).map_or(0, |m| m.len());
                (p, len)
            })
            .collect();
        let read_back = paths
            .iter()
            .zip(&self.finished)
            .filter_map(|(path, f)| {
                f.read_back.map(|(body_sha256, head_sha256)| ReadBack {
                    path: path.clone(),
                    body_sha256,
                    head_sha256,
                })
            })
            .collect();
        Ok(Sealed {
            volumes: paths
                .into_iter()
                .zip(self.finished.iter().map(|f| VOLUME_PREFIX + f.body_len))
                .collect(),
            parity,
            read_back,
        })
    }
}

/// See [`VolumeWriter::index_writer`]: the index's bytes go into
/// `parcel-index.NNNN` entries, a new piece starting wherever the open volume
/// is full, each piece's place recorded for that volume's header.
pub(crate) struct IndexWriter<'w, 's> {
    volumes: &'w mut VolumeWriter<'s>,
    len: u64,
    written: u64,
    piece_left: u64,
    piece_len: u64,
    hasher: Sha256,
    /// The volume error behind the last `io::Error` returned.
    failed: Option<WriteError>,
}

impl IndexWriter<'_, '_> {
    /// Opens the next piece: a tar header for as many of the remaining
    /// bytes as the open volume (or a new one) holds.
    fn start_piece(&mut self) -> Result<(), WriteError> {
        let left = self.len - self.written;
        let volumes = &mut *self.volumes;
        if volumes.current.is_none() || (volumes.room() == 0 && left > 0) {
            volumes.open_next()?;
        }
        let take = left.min(volumes.room());
        let number = volumes.number();
        let header = tar_header(&format!("parcel-index.{number:04}"), take, volumes.mtime)
            .map_err(|source| WriteError::Volume {
                volume: number,
                source,
            })?;
        let offset = volumes.position() + BLOCK;
        volumes.write_raw(header.as_bytes())?;
        if let Some(c) = volumes.current.as_mut() {
            c.index_piece = IndexPiece {
                offset,
                len: take,
                start: self.written,
            };
        }
        self.piece_left = take;
        self.piece_len = take;
        Ok(())
    }

    /// Closes the piece: tar's zero padding to the next block.
    fn end_piece(&mut self) -> Result<(), WriteError> {
        let padding = (padded(self.piece_len) - self.piece_len) as usize;
        self.volumes.write_raw(&[0u8; BLOCK as usize][..padding])
    }

    fn put(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        if buf.len() as u64 > self.len - self.written {
            return Err(WriteError::Invalid(
                "the index came out longer than when it was counted".into(),
            ));
        }
        if self.piece_left == 0 {
            self.start_piece()?;
        }
        let n = (self.piece_left as usize).min(buf.len());
        let part = buf.get(..n).unwrap_or_default();
        self.volumes.write_raw(part)?;
        sha256::update(&mut self.hasher, part);
        self.piece_left -= n as u64;
        self.written += n as u64;
        if self.piece_left == 0 {
            self.end_piece()?;
        }
        Ok(n)
    }

    /// The error behind `e`: the volume error this writer met, or else a
    /// failure of whatever was producing the index.
    pub(crate) fn error(&mut self, e: io::Error) -> WriteError {
        self.failed
            .take()
            .unwrap_or_else(|| WriteError::Invalid(format!("encoding the index: {e}")))
    }

    /// Checks that all `len` bytes came; returns the stored index's SHA-256.
    pub(crate) fn finish(mut self) -> Result<Hash, WriteError> {
        if self.len == 0 {
            // An empty index still has its (empty) entry.
            self.start_piece()?;
            self.end_piece()?;
        }
        if self.written != self.len {
            return Err(WriteError::Invalid(format!(
                "the index came out {} bytes long, not the {} counted",
                self.written, self.len
            )));
        }
        Ok(self.hasher.finalize().into())
    }
}

impl Write for IndexWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.put(buf).map_err(|e| {
            let message = e.to_string();
            self.failed = Some(e);
            io::Error::other(message)
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renames `from` to `to` unless something is at `to` already: in one step
/// where the file system can (`renameat2` with `RENAME_NOREPLACE`: ext4, xfs,
/// btrfs, tmpfs, vfat and exFAT on Linux), else checked just before (a file
/// appearing between the check and the rename is then replaced).
pub(crate) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => return Err(already_exists(to)),
            // Not supported by this file system or kernel: checked below.
            Err(Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if to.symlink_metadata().is_ok() {
        return Err(already_exists(to));
    }
    fs::rename(from, to)
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_name_taken_meanwhile_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, taken, free) = (
            dir.path().join(".v.partial"),
            dir.path().join("v1.tar"),
            dir.path().join("v2.tar"),
        );
        fs::write(&temp, b"new volume").unwrap();
        fs::write(&taken, b"someone's file").unwrap();
        let err = rename_no_replace(&temp, &taken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("v1.tar already exists"), "{err}");
        assert_eq!(fs::read(&taken).unwrap(), b"someone's file");
        assert_eq!(fs::read(&temp).unwrap(), b"new volume");
        rename_no_replace(&temp, &free).unwrap();
        assert_eq!(fs::read(&free).unwrap(), b"new volume");
        assert!(!temp.exists());
    }

    #[test]
    fn a_commit_that_fails_part_way_leaves_no_volume_under_its_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir {
            dir: dir.path().to_owned(),
            capacity: None,
        };
        let mut sink = DirSink::new(vec![out], "p", 1 << 16);
        for number in 1..=3 {
            sink.create(number).unwrap().write_all(b"volume").unwrap();
        }
        // Volume 3's file vanished: its rename fails after 1 and 2 were
        // renamed.
        fs::remove_file(dir.path().join(".p.0003.partial")).unwrap();
        let err = sink.commit(3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        sink.abort();
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, Vec::<String>::new());
    }

    #[test]
    fn parity_volumes_go_after_the_data_then_beside_it() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let volume = 1u64 << 16;
        let out = |i: usize, volumes: u64| OutputDir {
            dir: dirs[i].path().to_owned(),
            capacity: Some(volumes * volume),
        };
        // A holds 3 volumes, B 1, C 1: the data fills 2 of A.
        let mut sink = DirSink::new(vec![out(0, 3), out(1, 1), out(2, 1)], "p", volume);
        sink.create(1).unwrap();
        sink.create(2).unwrap();
        for number in 1..=3 {
            sink.create_parity(number).unwrap();
        }
        let where_ = |dir: usize| {
            let mut names: Vec<String> = fs::read_dir(dirs[dir].path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(PARTIAL_SUFFIX))
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            where_(0),
            [".p.0001.partial", ".p.0002.partial", ".p.par-0003.partial"]
        );
        assert_eq!(where_(1), [".p.par-0001.partial"]);
        assert_eq!(where_(2), [".p.par-0002.partial"]);
        // All five volumes' worth of room is used; a sixth has none.
        let full = sink.create_parity(4).unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        sink.abort();
    }

    #[test]
    fn sweeping_removes_only_unfinished_volumes_nobody_writes() {
        let dir = tempfile::tempdir().unwrap();
        let out = || OutputDir {
            dir: dir.path().to_owned(),
            capacity: None,
        };
        // A killed writer's files: its lock file is there but nobody holds it.
        fs::write(dir.path().join(".old.lock"), b"").unwrap();
        fs::write(dir.path().join(".old.0001.partial"), b"half").unwrap();
        fs::write(dir.path().join("old.001-of-002.tar"), b"kept").unwrap();
        // A writer at work.
        let mut sink = DirSink::new(vec![out()], "busy", 1 << 20);
        sink.create(1).unwrap();
        sink.create(2).unwrap();
        let removed = DirSink::sweep_stale(dir.path()).unwrap();
        assert_eq!(removed, vec![dir.path().join(".old.0001.partial")]);
        assert!(!dir.path().join(".old.lock").exists());
        assert!(dir.path().join(".busy.0001.partial").exists());
        assert!(dir.path().join(".busy.0002.partial").exists());
        assert!(dir.path().join("old.001-of-002.tar").exists());
        // Once that writer is gone, its file is swept too.
        drop(sink);
        let mut removed = DirSink::sweep_stale(dir.path()).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            vec![
                dir.path().join(".busy.0001.partial"),
                dir.path().join(".busy.0002.partial")
            ]
        );
    }

    #[test]
    fn a_writer_takes_over_a_dead_writers_lock_but_not_a_live_one_or_a_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(".s.lock");
        // Left empty by a writer that died before writing its line.
        fs::write(&lock, b"").unwrap();
        let held = WriterLock::acquire(dir.path(), "s").unwrap();
        assert_eq!(fs::read(&lock).unwrap(), LOCK_CONTENT);
        // Held: a second writer of that stem is refused.
        let second = WriterLock::acquire(dir.path(), "s").unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::AlreadyExists);
        drop(held);
        assert!(!lock.exists());
        // Someone else's file of that name is never taken.
        fs::write(&lock, b"mine").unwrap();
        let refused = WriterLock::acquire(dir.path(), "s").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&lock).unwrap(), b"mine");
    }

    #[test]
    fn sweeping_leaves_files_that_are_no_writers_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        // A user's files of the same look: kept.
        for name in [".thesis.pdf.partial", ".notes.partial", ".myapp.lock"] {
            fs::write(path(name), b"mine").unwrap();
        }
        // An empty lock file with no temporary file of its stem: kept,
        // unless its stem is one the parcel command writes under (a writer
        // killed before it wrote its line, or any temporary file).
        fs::write(path(".alone.lock"), b"").unwrap();
        fs::write(path(".my-backup.lock"), b"").unwrap();
        fs::write(path(".backup-20261207.lock"), b"").unwrap();
        fs::write(path(".tools-v2-0123abcd.lock"), b"").unwrap();
        fs::write(path(".parcel-89abcdef.lock"), b"").unwrap();
        // A killed writer of this version (its lock says so) and one that
        // wrote empty locks, each with temporary files of every shape.
        fs::write(path(".new.lock"), LOCK_CONTENT).unwrap();
        fs::write(path(".new.par-0002.partial"), b"half").unwrap();
        fs::write(path(".old.lock"), b"").unwrap();
        fs::write(path(".old.001-of-002.tar.partial"), b"half").unwrap();
        let mut removed = DirSink::sweep_stale(dir.path()).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            vec![
                path(".new.par-0002.partial"),
                path(".old.001-of-002.tar.partial")
            ]
        );
        assert!(!path(".new.lock").exists());
        assert!(!path(".old.lock").exists());
        for name in [".thesis.pdf.partial", ".notes.partial", ".myapp.lock"] {
            assert_eq!(fs::read(path(name)).unwrap(), b"mine", "{name}");
        }
        assert!(path(".alone.lock").exists());
        assert!(path(".my-backup.lock").exists());
        assert!(path(".backup-20261207.lock").exists());
        assert!(!path(".tools-v2-0123abcd.lock").exists());
        assert!(!path(".parcel-89abcdef.lock").exists());
    }

    #[test]
    fn sizes_parse_with_suffixes_and_presets() {
        assert_eq!(parse_volume_size("700M"), Ok(700_000_000));
        assert_eq!(parse_volume_size("4.7G"), Ok(4_700_000_000));
        assert_eq!(parse_volume_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_volume_size("64KiB"), Ok(65536));
        assert_eq!(parse_volume_size("dvd"), Ok(4_700_000_000));
        assert_eq!(parse_volume_size("fat32"), Ok((4 << 30) - 1));
        assert_eq!(parse_volume_size("1234"), Ok(1234));
        for bad in ["", "G", "4.7X", "-1", "99999999999999999999T", "."] {
            assert!(parse_volume_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}
