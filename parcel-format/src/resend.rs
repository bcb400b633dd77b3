//! Answering a repair request at the source (FORMAT.md §13.8): rebuild the
//! data volumes a destination lacks from the parcel's kept manifest and
//! stored index, and the package directory it was made from, every chunk and
//! pack checked against the manifest's hashes, laid out exactly where the
//! manifest and the request place them, and signed again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::error::WriteError;
use crate::header::{IndexPiece, ParityFields, VolumeHeader, FLAG_PARITY};
use crate::limits::{BLOCK, VOLUME_PREFIX, VOLUME_TRAILER};
use crate::manifest::{EntryKind, Manifest};
use crate::pack::PackCompressor;
use crate::repair_request::RepairRequest;
use crate::sha256;
use crate::volume::{tar_header, WriterLock, HEADER_ENTRY, PARTIAL_SUFFIX};

/// A parcel as its source kept it: the manifest and the stored index (with
/// the length of the encoded manifest), as `parcel create` keeps them in
/// `<home>/sent/`.
#[derive(Debug, Clone, Copy)]
pub struct SentParcel<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The stored (compressed) index, byte for byte as in the volumes.
    pub stored_index: &'a [u8],
    /// Length of the encoded manifest (the headers' `index_raw_len`).
    pub index_raw_len: u64,
}

/// How [`rebuild_volumes`] touches the output directory: every step that
/// makes, renames or removes a file there goes through [`FileSteps::run`],
/// so that a caller that removes the unfinished files when it is
/// interrupted can keep its clean-up and these steps apart (parcel's CLI
/// runs them under the lock its signal handling takes). [`Direct`] runs
/// them as they are.
pub trait FileSteps {
    /// Runs `step`, which makes, renames or removes a file in the output
    /// directory, and returns its result.
    fn run(&self, step: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()>;

    /// The writer's lock in the output directory (`.STEM.lock`) is held:
    /// from now until [`FileSteps::unlock`], the temporary files of `stem`
    /// there are this call's.
    fn locked(&self) {}

    /// Runs `release`, which (on success, after syncing the directory)
    /// gives the writer's lock up and removes its file: from then on no file
    /// there is this call's. Called once, on success or failure, after
    /// [`FileSteps::locked`].
    fn unlock(&self, release: &mut dyn FnMut()) {
        release();
    }
}

/// The writer's lock held by [`rebuild_volumes`], given up through its
/// [`FileSteps`] however the call ends.
struct Held<'a> {
    lock: Option<WriterLock>,
    steps: &'a dyn FileSteps,
}

impl Held<'_> {
    /// Syncs `dir` (so the renames are durable) and gives the lock up, in
    /// one [`FileSteps::unlock`]: once the volumes are all in place nothing
    /// is this call's to clean up.
    fn finish(mut self, dir: &Path) -> io::Result<()> {
        let mut lock = self.lock.take();
        let mut synced = Ok(());
        self.steps.unlock(&mut || {
            synced = File::open(dir).and_then(|d| d.sync_all());
            drop(lock.take());
        });
        synced
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Not finished (an error): give the lock up all the same.
        if self.lock.is_some() {
            let mut lock = self.lock.take();
            self.steps.unlock(&mut || drop(lock.take()));
        }
    }
}

/// [`FileSteps`] that runs every step as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl FileSteps for Direct {
    fn run(&self, step: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        step()
    }
}

/// Runs `make` through `steps`, returning what it made.
fn through<T>(steps: &dyn FileSteps, make: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let mut make = Some(make);
    let mut made = None;
    steps.run(&mut || {
        if let Some(make) = make.take() {
            made = Some(make()?);
        }
        Ok(())
    })?;
    made.ok_or_else(|| io::Error::other("the caller's FileSteps did not run a step"))
}

/// Rebuilds the data volumes `request` asks for into `out`, named
/// `STEM.NNN-of-MMM.tar` after `stem`, from `sent`, the directory
/// `package` the parcel was made from, and `key`, the source's signing key;
/// files are made, renamed and removed through `steps`.
/// Returns the files written; on failure none is left, and a file already
/// in `out` under a volume's name is never replaced (the call fails first).
pub fn rebuild_volumes(
    request: &RepairRequest,
    sent: &SentParcel<'_>,
    package: &Path,
    key: &SigningKey,
    out: &Path,
    stem: &str,
    steps: &dyn FileSteps,
) -> Result<Vec<PathBuf>, WriteError> {
    let (manifest, stored_index, index_raw_len) =
        (sent.manifest, sent.stored_index, sent.index_raw_len);
    let invalid = |why: String| WriteError::Invalid(why);
    let index_sha256: [u8; 32] = sha256::sha256(stored_index);
    if manifest.parcel_id != request.parcel_id
        || index_sha256 != request.index_sha256
        || manifest.volume_count != request.volume_count
    {
        return Err(invalid(format!(
            "the repair request is for parcel {} with another index than the one kept here for parcel {} \
             (an encrypted parcel cannot be rebuilt at the source: its parcel key is not kept; send a new parcel)",
            request.parcel_id, manifest.parcel_id
        )));
    }
    // Where each chunk can be read in the package: the first file listing it.
    let mut sources: HashMap<u32, (String, u64)> = HashMap::new();
    for entry in &manifest.entries {
        if let EntryKind::File { chunks, .. } = &entry.kind {
            let mut offset = 0u64;
            for &c in chunks {
                // A delta's file may take some of its chunks from the base
                // (references past this parcel's own chunks): they hold no
                // pack bytes, but the file's own chunks after them do.
                let len = match manifest.chunks.get(c as usize) {
                    Some(record) => {
                        sources.entry(c).or_insert((entry.path.clone(), offset));
                        record.len
                    }
                    None => match manifest.base_chunk(c) {
                        Some(base) => base.len,
                        None => break,
                    },
                };
                offset += u64::from(len);
            }
        }
    }
    let mut compressor = PackCompressor::new(manifest.compression_level)
        .map_err(|e| invalid(format!("zstd: {e}")))?;
    let last_pack_volume = manifest.packs.last().map_or(1, |p| p.volume);
    let name = |v: u32| format!("{stem}.{v:03}-of-{:03}.tar", manifest.volume_count);
    // Nothing already in `out` is replaced or removed, whatever happens: a
    // volume of the same name may be the intact original.
    if let Some(existing) = request
        .missing
        .iter()
        .map(|&v| out.join(name(v)))
        .find(|p| p.symlink_metadata().is_ok())
    {
        return Err(invalid(format!(
            "{} already exists; move it away or write the rebuilt volumes to another directory",
            existing.display()
        )));
    }
    // Each volume is written under a temporary name (`.STEM.NNN.partial`, as
    // `DirSink` names them, under its lock, so that a sweep leaves them alone
    // while this runs and removes them if it is killed), and all are renamed
    // once every one is complete and synced.
    let first = request.missing.first().copied().unwrap_or(1);
    let lock = through(steps, || WriterLock::acquire(out, stem)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            invalid(format!(
                "another parcel command is writing volumes of {stem} in {} (its lock .{stem}.lock is there); wait for it to finish, or remove the lock if none runs",
                out.display()
            ))
        } else {
            WriteError::Volume {
                volume: first,
                source: e,
            }
        }
    })?;
    let mut temps: Vec<(u32, PathBuf)> = Vec::new();
    steps.locked();
    let held = Held {
        lock: Some(lock),
        steps,
    };
    let remove = |paths: &mut dyn Iterator<Item = &PathBuf>| {
        for p in paths {
            let _ = steps.run(&mut || std::fs::remove_file(p));
        }
    };
    for &v in &request.missing {
        let temp = out.join(format!(".{stem}.{v:04}{PARTIAL_SUFFIX}"));
        temps.push((v, temp.clone()));
        let result = rebuild_one(
            v,
            request,
            manifest,
            stored_index,
            index_raw_len,
            &sources,
            &mut compressor,
            last_pack_volume,
            package,
            key,
            &temp,
            steps,
        );
        if let Err(e) = result {
            remove(&mut temps.iter().map(|(_, p)| p));
            return Err(e);
        }
    }
    let mut written = Vec::new();
    for (v, temp) in &temps {
        let path = out.join(name(*v));
        let renamed = steps
            .run(&mut || crate::volume::rename_no_replace(temp, &path))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} appeared while the volumes were rebuilt", path.display()),
                ),
                _ => e,
            });
        if let Err(source) = renamed {
            remove(&mut temps.iter().map(|(_, p)| p).chain(&written));
            return Err(WriteError::Volume { volume: *v, source });
        }
        written.push(path);
    }
    held.finish(out).map_err(|source| WriteError::Volume {
        volume: first,
        source,
    })?;
    Ok(written)
}

/// The index piece volume `v` held: what lies between the pieces of the
/// volumes around it (FORMAT.md §2.3).
fn index_piece_of(
    v: u32,
    request: &RepairRequest,
    last_pack_volume: u32,
    stored_len: u64,
) -> Result<(u64, u64), WriteError> {
    if v < last_pack_volume {
        return Ok((0, 0));
    }
    let ambiguous = || {
        WriteError::Invalid(format!(
            "volume {v} and a volume next to it both held part of the index and both are lost; the request cannot say where one piece ends"
        ))
    };
    let start = if v == last_pack_volume {
        0
    } else {
        match request.pieces.get(&(v - 1)) {
            Some((start, len)) => start.saturating_add(*len),
            None if request.missing.contains(&(v - 1)) => return Err(ambiguous()),
            // The volume before held no piece: so none was placed yet.
            None => 0,
        }
    };
    let end = if v == request.volume_count {
        stored_len
    } else {
        match request.pieces.get(&(v + 1)) {
            Some((start, _)) => *start,
            None if request.missing.contains(&(v + 1)) => return Err(ambiguous()),
            None => stored_len,
        }
    };
    if end < start {
        return Err(WriteError::Invalid(format!(
            "the index pieces the request lists around volume {v} overlap"
        )));
    }
    Ok((start, end - start))
}

#[allow(clippy::too_many_arguments)]
fn rebuild_one(
    v: u32,
    request: &RepairRequest,
    manifest: &Manifest,
    stored_index: &[u8],
    index_raw_len: u64,
    sources: &HashMap<u32, (String, u64)>,
    compressor: &mut PackCompressor,
    last_pack_volume: u32,
    package: &Path,
    key: &SigningKey,
    path: &Path,
    steps: &dyn FileSteps,
) -> Result<(), WriteError> {
    let io = |source| WriteError::Volume { volume: v, source };
    let mut file = through(steps, || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    })
    .map_err(io)?;
    let mut body = Sha256::new();
    let mut pos = VOLUME_PREFIX;
    let head = tar_header(HEADER_ENTRY, BLOCK, manifest.created).map_err(io)?;
    file.write_all(head.as_bytes()).map_err(io)?;
    file.write_all(&[0u8; BLOCK as usize]).map_err(io)?;
    let mut put = |file: &mut File, bytes: &[u8], pos: &mut u64| -> std::io::Result<()> {
        sha256::update(&mut body, bytes);
        *pos += bytes.len() as u64;
        file.write_all(bytes)
    };
    let pad = |len: u64| vec![0u8; (len.div_ceil(BLOCK) * BLOCK - len) as usize];
    // The chunks of this volume's packs, in order (chunks tile packs, §7.3).
    let mut by_pack: HashMap<u32, Vec<usize>> = HashMap::new();
    for (c, chunk) in manifest.chunks.iter().enumerate() {
        if manifest
            .packs
            .get(chunk.pack as usize)
            .is_some_and(|p| p.volume == v)
        {
            by_pack.entry(chunk.pack).or_default().push(c);
        }
    }
    for (p, record) in manifest.packs.iter().enumerate() {
        if record.volume != v {
            continue;
        }
        let mut raw = Vec::with_capacity(record.raw_len as usize);
        for &c in by_pack.get(&(p as u32)).map_or(&[][..], Vec::as_slice) {
            let Some(chunk) = manifest.chunks.get(c) else {
                continue;
            };
            let (rel, offset) = sources.get(&(c as u32)).ok_or_else(|| {
                WriteError::Invalid(format!(
                    "chunk {c} of pack {p} is in no file of the package; it cannot be rebuilt"
                ))
            })?;
            let full = package.join(rel);
            let read_err = |source: io::Error| {
                let differs = match source.kind() {
                    io::ErrorKind::NotFound => "is missing",
                    io::ErrorKind::UnexpectedEof => "is shorter than when the parcel was made",
                    _ => {
                        return WriteError::Read {
                            path: full.clone(),
                            source,
                        }
                    }
                };
                WriteError::Unsupported {
                    path: full.clone(),
                    reason: format!(
                        "{differs}, and the parcel carried it; give the package directory exactly as the parcel was made from"
                    ),
                }
            };
            let mut f = File::open(&full).map_err(read_err)?;
            f.seek(SeekFrom::Start(*offset)).map_err(read_err)?;
            let mut bytes = vec![0u8; chunk.len as usize];
            f.read_exact(&mut bytes).map_err(read_err)?;
            if sha256::sha256(&bytes) != chunk.sha256 {
                return Err(WriteError::Unsupported {
                    path: full,
                    reason: format!(
                        "holds other bytes at offset {offset} than the parcel carried; give the package directory exactly as the parcel was made from"
                    ),
                });
            }
            raw.extend_from_slice(&bytes);
        }
        let stored = compressor
            .compress(&raw)
            .map_err(|e| WriteError::Invalid(format!("zstd: {e}")))?;
        if sha256::sha256(&stored) != record.stored_sha256 {
            return Err(WriteError::Invalid(format!(
                "pack {p} compresses to other bytes than in the parcel (another zstd version?); it cannot be rebuilt here"
            )));
        }
        if record.offset != pos + BLOCK {
            return Err(WriteError::Invalid(format!(
                "pack {p} lay at offset {} of volume {v}, not where it would be rebuilt ({})",
                record.offset,
                pos + BLOCK
            )));
        }
        let head = tar_header(
            &format!("pack-{p:08}.zst"),
            stored.len() as u64,
            manifest.created,
        )
        .map_err(io)?;
        put(&mut file, head.as_bytes(), &mut pos).map_err(io)?;
        put(&mut file, &stored, &mut pos).map_err(io)?;
        put(&mut file, &pad(stored.len() as u64), &mut pos).map_err(io)?;
    }
    let (start, len) = index_piece_of(v, request, last_pack_volume, stored_index.len() as u64)?;
    let mut index_piece = IndexPiece::default();
    if len > 0 {
        let piece = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + len).ok())
            .and_then(|(s, e)| stored_index.get(s..e))
            .ok_or_else(|| WriteError::Invalid("index piece out of range".into()))?;
        let head =
            tar_header(&format!("parcel-index.{v:04}"), len, manifest.created).map_err(io)?;
        put(&mut file, head.as_bytes(), &mut pos).map_err(io)?;
        index_piece = IndexPiece {
            offset: pos,
            len,
            start,
        };
        put(&mut file, piece, &mut pos).map_err(io)?;
        put(&mut file, &pad(len), &mut pos).map_err(io)?;
    }
    put(&mut file, &[0u8; VOLUME_TRAILER as usize], &mut pos).map_err(io)?;
    let header = VolumeHeader {
        version: manifest.format_version,
        flags: if request.parity.is_some() {
            FLAG_PARITY
        } else {
            0
        },
        volume: v,
        volume_count: manifest.volume_count,
        parcel_id: manifest.parcel_id,
        created: manifest.created,
        source_site: manifest.source_site.clone(),
        signer: key.verifying_key().to_bytes(),
        body_len: pos - VOLUME_PREFIX,
        body_sha256: body.finalize().into(),
        index_stored_len: stored_index.len() as u64,
        index_raw_len,
        index_sha256: sha256::sha256(stored_index),
        index_piece,
        // Never encrypted: an encrypted parcel's kept index does not match
        // the request (checked above), so it is refused before this.
        keys_len: 0,
        keys_sha256: [0; 32],
        parity: request.parity.map(|(m, b, k, r)| ParityFields {
            parity_volume_count: m,
            block_size: b,
            stripe_rows: k,
            stripe_recovery: r,
            ..ParityFields::default()
        }),
    };
    let record = header.encode_signed(key);
    file.seek(SeekFrom::Start(BLOCK)).map_err(io)?;
    file.write_all(&record).map_err(io)?;
    file.sync_all().map_err(io)
}
