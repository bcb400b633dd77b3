//! Extraction: materialising a verified parcel's package into an empty
//! directory the caller gives (FORMAT.md §7.5).
//!
//! Only paths from the validated file table are written, each created fresh
//! (`create_new`, so nothing existing is overwritten or followed); every
//! directory is one this extractor made, and symlinks are created only after
//! every file and directory, so no write can pass through a link. Files get
//! mode 0644 or 0755, directories 0755: never setuid, setgid or sticky.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::content::PackCache;
use crate::error::Problem;
use crate::manifest::EntryKind;
use crate::read::Parcel;
use crate::sha256;

/// What an extraction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

fn time_of(mtime: i64) -> SystemTime {
    if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime as u64)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(mtime.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

impl Parcel {
    /// Extracts the package into `dest`, which must be an existing, empty
    /// directory. Refuses a parcel with any set-level problem (missing,
    /// foreign or duplicate volumes). Every pack, chunk and file hash is
    /// checked on the way; on the first problem extraction stops and returns
    /// it, leaving `dest` for the caller to remove. `progress` gets content
    /// bytes written so far.
    pub fn extract(
        &self,
        dest: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExtractSummary, Problem> {
        self.extract_with_base(dest, None, progress)
    }

    /// Like [`Parcel::extract`], for a delta parcel (FORMAT.md §11) too:
    /// `base` is the destination's copy of the base version, whose chunks are
    /// read and checked as the files that use them are written. A delta
    /// parcel without `base` fails with [`Problem::BaseMissing`] before
    /// anything is written; a base whose chunks do not match, with
    /// [`Problem::BaseModified`].
    pub fn extract_with_base(
        &self,
        dest: &Path,
        base: Option<&Path>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExtractSummary, Problem> {
        if let Some(problem) = self.problems().first() {
            return Err(problem.clone());
        }
        if let (Some(b), None) = (&self.manifest().base, base) {
            return Err(Problem::BaseMissing {
                version: b.package_version,
                reason: "no copy of it was given to read from".into(),
            });
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source: std::io::Error| Problem::Write {
                path,
                source: source.into(),
            }
        };
        let mut listing = fs::read_dir(dest).map_err(write_err(dest))?;
        if listing.next().is_some() {
            return Err(Problem::Write {
                path: dest.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "extraction directory is not empty",
                )
                .into(),
            });
        }
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|scope| {
            let mut cache = PackCache::with_workers(self, scope, workers);
            if let Some(dir) = base {
                cache.set_base_dir(dir);
            }
            self.write_tree(dest, &mut cache, progress)
        })
    }

    /// Writes every entry of the file table under `dest`, in order, taking
    /// file contents from `cache`.
    fn write_tree(
        &self,
        dest: &Path,
        cache: &mut PackCache<'_>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExtractSummary, Problem> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source: std::io::Error| Problem::Write {
                path,
                source: source.into(),
            }
        };
        let mut summary = ExtractSummary::default();
        let mut symlinks: Vec<(PathBuf, &str)> = Vec::new();
        // Files written whose first chunk is read again, by that chunk (see
        // below: the same content met twice is copied from the first).
        let mut written: HashMap<u32, usize> = HashMap::new();
        let mut directories: Vec<(PathBuf, i64)> = Vec::new();
        for (index, entry) in self.manifest().entries.iter().enumerate() {
            let target = dest.join(&entry.path);
            match &entry.kind {
                EntryKind::Directory => {
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&target)
                        .map_err(write_err(&target))?;
                    fs::set_permissions(&target, Permissions::from_mode(0o755))
                        .map_err(write_err(&target))?;
                    directories.push((target, entry.mtime));
                    summary.directories += 1;
                }
                EntryKind::Symlink { target: link } => symlinks.push((target, link)),
                EntryKind::File {
                    size,
                    executable,
                    sha256,
                    chunks,
                } => {
                    let mode = if *executable { 0o755 } else { 0o644 };
                    let file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(mode)
                        .open(&target)
                        .map_err(write_err(&target))?;
                    // Writes of up to 1 MiB; a small file gets a buffer its size.
                    let buffer = usize::try_from(*size).map_or(1 << 20, |n| n.min(1 << 20));
                    let mut out = BufWriter::with_capacity(buffer, file);
                    let mut hasher = Sha256::new();
                    if let Some(base) = self
                        .manifest()
                        .base
                        .as_ref()
                        .filter(|_| self.manifest().is_whole_from_base(index))
                    {
                        let dir = cache.base_dir().ok_or_else(|| Problem::BaseMissing {
                            version: base.package_version,
                            reason: "no copy of it was given to read from".into(),
                        })?;
                        let written =
                            copy_from_base(dir, &entry.path, *size, &mut out, &mut hasher)
                                .map_err(|e| match e {
                                    Copy::Base(problem) => problem,
                                    Copy::Write(source) => Problem::Write {
                                        path: target.clone(),
                                        source: source.into(),
                                    },
                                })?;
                        summary.bytes += written;
                        progress(summary.bytes);
                    }
                    // A one-chunk file's bytes were checked as its chunk's.
                    let mut one_chunk = self.manifest().one_chunk_hash(index);
                    // The same content written before, as a file with the
                    // same chunks: copied from there (hashed as it is read)
                    // rather than from packs that may have left the cache.
                    let first = chunks.first().copied();
                    let earlier = first
                        .and_then(|c| written.get(&c))
                        .and_then(|&j| self.manifest().entries.get(j))
                        .filter(|earlier| match &earlier.kind {
                            EntryKind::File { chunks: cs, .. } => cs == chunks,
                            _ => false,
                        });
                    if let Some(earlier) = earlier {
                        let source = dest.join(&earlier.path);
                        let unreadable = |e: io::Error| Problem::Unreadable {
                            path: source.clone(),
                            source: e.into(),
                        };
                        let mut from = File::open(&source).map_err(unreadable)?.take(*size);
                        let mut buf = vec![0u8; buffer];
                        let mut copied = 0u64;
                        loop {
                            let n = from.read(&mut buf).map_err(unreadable)?;
                            let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
                                break;
                            };
                            sha256::update(&mut hasher, bytes);
                            out.write_all(bytes).map_err(write_err(&target))?;
                            copied += n as u64;
                        }
                        match copied {
                            n if n == *size => {
                                for &c in chunks {
                                    cache.checked(c);
                                }
                                summary.bytes += n;
                                progress(summary.bytes);
                                // Hashed whole above, one chunk or many.
                                one_chunk = None;
                            }
                            _ => return Err(Problem::Unreadable {
                                path: source,
                                source: io::Error::other(
                                    "a file written by this extraction changed size while it ran",
                                )
                                .into(),
                            }),
                        }
                    } else {
                        for &c in chunks {
                            let bytes = cache.chunk(c).ok_or_else(|| first_problem(cache, c))?;
                            if one_chunk.is_none() {
                                sha256::update(&mut hasher, bytes.bytes());
                            }
                            out.write_all(bytes.bytes()).map_err(write_err(&target))?;
                            summary.bytes += bytes.bytes().len() as u64;
                            progress(summary.bytes);
                        }
                    }
                    let actual = one_chunk
                        .copied()
                        .unwrap_or_else(|| hasher.finalize().into());
                    if actual != *sha256 {
                        if self.manifest().is_whole_from_base(index) {
                            return Err(Problem::BaseModified {
                                path: cache.base_dir().unwrap_or(Path::new("")).join(&entry.path),
                                what: "the whole file".into(),
                            });
                        }
                        return Err(Problem::FileCorrupt {
                            path: entry.path.clone(),
                        });
                    }
                    let file = out.into_inner().map_err(|e| Problem::Write {
                        path: target.clone(),
                        source: e.into_error().into(),
                    })?;
                    // Exact mode whatever the umask; never setuid/setgid.
                    file.set_permissions(Permissions::from_mode(mode))
                        .map_err(write_err(&target))?;
                    file.set_modified(time_of(entry.mtime))
                        .map_err(write_err(&target))?;
                    summary.files += 1;
                    if let Some(c) = first.filter(|&c| cache.read_again(c)) {
                        written.entry(c).or_insert(index);
                    }
                }
            }
        }
        for (path, link) in symlinks {
            std::os::unix::fs::symlink(link, &path).map_err(write_err(&path))?;
            summary.symlinks += 1;
        }
        // Directory times last, deepest first, once nothing more is written in them.
        for (path, mtime) in directories.iter().rev() {
            File::open(path)
                .and_then(|d| d.set_modified(time_of(*mtime)))
                .map_err(write_err(path))?;
        }
        Ok(summary)
    }
}

/// Why copying a whole file from the base failed.
enum Copy {
    Base(Problem),
    Write(std::io::Error),
}

/// Copies the base file at `path` under `dir` (exactly `size` bytes, from a
/// regular file) into `out`, hashing it. The caller compares the hash.
fn copy_from_base(
    dir: &Path,
    path: &str,
    size: u64,
    out: &mut impl Write,
    hasher: &mut Sha256,
) -> Result<u64, Copy> {
    let source = dir.join(path);
    let modified = |what: &str| {
        Copy::Base(Problem::BaseModified {
            path: source.clone(),
            what: what.into(),
        })
    };
    let mut file =
        open_base_file(&source).map_err(|e| modified(&format!("cannot open it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| modified(&format!("cannot inspect it: {e}")))?;
    if meta.len() != size {
        return Err(modified("its size differs"));
    }
    let mut buffer = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| modified(&format!("cannot read it: {e}")))?;
        if n == 0 {
            break;
        }
        let bytes = buffer.get(..n).unwrap_or_default();
        sha256::update(hasher, bytes);
        out.write_all(bytes).map_err(Copy::Write)?;
        done += n as u64;
        if done > size {
            return Err(modified("it grew while being read"));
        }
    }
    Ok(done)
}

fn first_problem(cache: &mut PackCache<'_>, chunk: u32) -> Problem {
    // The problem about this chunk, its pack or the base it comes from;
    // else the latest one recorded (the load that just failed).
    let pack = cache.pack_of(chunk);
    if cache.exhausted() {
        // The cap on packs decoded again stopped the read, whatever else the
        // pack's problems say.
        if let Some(i) = cache
            .problems
            .iter()
            .position(|p| matches!(p, Problem::Limit { .. }))
        {
            return cache.problems.swap_remove(i);
        }
    }
    let found = cache.problems.iter().position(|p| match p {
        // One problem per pack names its chunks.
        Problem::ChunkCorrupt { pack: p, .. }
        | Problem::ChunkUnavailable { pack: p, .. }
        | Problem::PackCorrupt { pack: p, .. } => Some(*p) == pack,
        Problem::BaseModified { .. } | Problem::BaseMissing { .. } => pack.is_none(),
        _ => false,
    });
    let index = found.or_else(|| cache.problems.len().checked_sub(1));
    match index {
        Some(i) => cache.problems.swap_remove(i),
        None => Problem::ChunkUnavailable {
            chunk,
            count: 1,
            volume: 0,
            pack: pack.unwrap_or(0),
        },
    }
}

/// Opens a file of a delta's base copy in the store for reading: the regular
/// file at that very path (FORMAT.md §11.3), not one a symlink there points
/// to, and without waiting on a FIFO put there (`O_NOFOLLOW`, `O_NONBLOCK`;
/// what is not a regular file is refused once open).
pub(crate) fn open_base_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                std::io::Error::other("a symbolic link, not a regular file")
            }
            _ => e,
        })?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}
