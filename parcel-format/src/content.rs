//! Random access to chunk contents for verify and extract: loads a pack from
//! its volume, checks the stored bytes' SHA-256 *before* decompressing, then
//! decompresses within the declared length and checks every chunk's SHA-256
//! (FORMAT.md §7.4). Keeps a few decoded packs, so memory stays bounded.
//!
//! Extraction and deep verification read packs mostly in index order (the
//! writer numbers packs in the order the file table first uses them), so
//! [`PackCache::with_workers`] decodes the packs ahead of the reader on worker
//! threads: worker `k` of `n` takes packs `k, k + n, k + 2n, …` and hands each
//! over through a channel of one slot, so at most `2n` decoded packs wait.
//! A chunk still to be read again when its pack leaves the cache (content
//! met twice, stored once) is kept on its own, within [`KEPT_BYTES`]; past
//! that, its pack is loaded again on the reader's thread when the chunk is
//! needed, and the bytes decoded again that way are capped (FORMAT.md §7.4,
//! §8.1): a trusted but hostile index cannot make the reader decode a
//! 16 MiB pack for every byte it declares.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::Scope;

use crate::buffers::BufferPool;
use crate::error::Problem;
use crate::manifest::{BaseChunk, Manifest};
use crate::pack::decompress_exact_into;
use crate::read::Parcel;
use crate::sha256;

/// Most decoding threads, whatever the number of processors: each holds up
/// to three packs (one being read and decoded, one waiting), so this bounds
/// memory (FORMAT.md §8.1); decoding at 4 threads outpaces writing anyway.
const MAX_DECODERS: usize = 4;

/// Decoded packs kept at once (each at most `MAX_PACK_RAW`).
const CACHED_PACKS: usize = 4;

/// Bytes of chunks kept on their own after their pack left the cache, each
/// counted with [`KEPT_OVERHEAD`].
pub(crate) const KEPT_BYTES: u64 = 64 * 1024 * 1024;

/// What a kept chunk costs beyond its bytes: its `Arc` allocation, the
/// allocator's rounding and minimum block, and its map slot.
const KEPT_OVERHEAD: u64 = 128;

/// The cap on bytes decoded again (packs loaded after they left the cache):
/// sixteen times the packs' decoded size plus sixteen times the content the
/// packs serve ([`crate::manifest::Manifest::content_bytes_in_packs`]), plus
/// 1 GiB (FORMAT.md
/// §7.4).
pub(crate) fn reload_cap(packs_raw: u64, content: u64) -> u64 {
    packs_raw
        .saturating_add(content)
        .saturating_mul(16)
        .saturating_add(1 << 30)
}

/// [`reload_cap`] for the parcel `m` describes.
fn reload_cap_of(m: &Manifest) -> u64 {
    let packs_raw = m
        .packs
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.raw_len.into()));
    reload_cap(packs_raw, m.content_bytes_in_packs())
}

/// A checked chunk: the decoded pack it lies in and its range.
pub(crate) struct ChunkBytes {
    pack: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl ChunkBytes {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.pack.get(self.start..self.end).unwrap_or_default()
    }
}

/// One pack loaded and checked: its decoded bytes (`None` when unavailable
/// or corrupt), the chunks in it that fail their hash, and the problems.
struct Decoded {
    raw: Option<Arc<Vec<u8>>>,
    bad_chunks: Vec<u32>,
    problems: Vec<Problem>,
}

/// Packs decoded ahead on worker threads, received in index order.
struct Prefetch {
    /// One channel per worker; pack `p` arrives on `channels[p % n]`.
    channels: Vec<Receiver<Decoded>>,
    /// The next pack the channels will deliver.
    next: u32,
}

pub(crate) struct PackCache<'p> {
    parcel: &'p Parcel,
    /// First chunk of each pack; `first_chunk[packs]` is the chunk count.
    first_chunk: Arc<Vec<usize>>,
    /// The volume this thread last read a pack from, kept open: packs are
    /// in volume order, so one open volume per thread suffices.
    open: Option<(u32, File)>,
    /// This thread's buffer for a pack's stored bytes.
    stored: Vec<u8>,
    /// Decoded packs the cache let go of, for the decoders to fill again
    /// (see `BufferPool`: each is a mapping the allocator would otherwise
    /// fault in, zero and unmap for every pack).
    spare: Arc<BufferPool>,
    slots: VecDeque<(u32, Arc<Vec<u8>>)>,
    /// Packs found unavailable or corrupt (not loaded again), and those of
    /// them whose first load failed.
    bad_packs: HashSet<u32>,
    failed_first: HashSet<u32>,
    /// Chunks that failed their hash, one bit each.
    bad_chunks: ChunkSet,
    prefetch: Option<Prefetch>,
    /// Where a delta parcel's base version is, when it is available.
    base_dir: Option<PathBuf>,
    base_files: HashMap<u32, File>,
    pub(crate) loaded: Vec<bool>,
    /// References still to come to each of the parcel's own chunks
    /// (`u16::MAX`: that many or more, never counted down).
    remaining: Vec<u16>,
    /// Chunks kept after their pack left the cache, and their cost.
    kept: HashMap<u32, Arc<Vec<u8>>>,
    kept_bytes: u64,
    /// Bytes of packs decoded again, and the cap on them.
    reloaded: u64,
    reload_cap: u64,
    /// Every problem found, each once.
    pub(crate) problems: Vec<Problem>,
}

impl<'p> PackCache<'p> {
    /// A cache that loads each pack on the caller's thread when asked.
    pub(crate) fn new(parcel: &'p Parcel) -> Self {
        let m = parcel.manifest();
        let mut first_chunk = vec![m.chunks.len(); m.packs.len() + 1];
        for (i, c) in m.chunks.iter().enumerate().rev() {
            if let Some(slot) = first_chunk.get_mut(c.pack as usize) {
                *slot = i;
            }
        }
        let mut remaining = vec![0u16; m.chunks.len()];
        for entry in &m.entries {
            if let crate::manifest::EntryKind::File { chunks, .. } = &entry.kind {
                for &c in chunks {
                    if let Some(n) = remaining.get_mut(c as usize) {
                        *n = n.saturating_add(1);
                    }
                }
            }
        }
        PackCache {
            parcel,
            first_chunk: Arc::new(first_chunk),
            open: None,
            stored: Vec::new(),
            spare: Arc::new(BufferPool::new(MAX_DECODERS + 2)),
            slots: VecDeque::new(),
            bad_packs: HashSet::new(),
            failed_first: HashSet::new(),
            bad_chunks: ChunkSet::new(m.chunks.len()),
            prefetch: None,
            base_dir: None,
            base_files: HashMap::new(),
            loaded: vec![false; m.packs.len()],
            remaining,
            kept: HashMap::new(),
            kept_bytes: 0,
            reloaded: 0,
            reload_cap: reload_cap_of(m),
            problems: Vec::new(),
        }
    }

    /// Whether the cap on packs decoded again was reached: nothing more is
    /// read, and the problem saying so is in `problems`.
    pub(crate) fn exhausted(&self) -> bool {
        self.reloaded > self.reload_cap
    }

    /// A cache whose packs are decoded in index order by `workers` threads
    /// of `scope`, ahead of the reader. The workers stop when the cache is
    /// dropped.
    pub(crate) fn with_workers<'scope>(
        parcel: &'p Parcel,
        scope: &'scope Scope<'scope, '_>,
        workers: usize,
    ) -> Self
    where
        'p: 'scope,
    {
        let mut cache = PackCache::new(parcel);
        let packs = parcel.manifest().packs.len() as u32;
        let workers = workers.min(MAX_DECODERS).clamp(1, packs.max(1) as usize) as u32;
        let mut channels = Vec::with_capacity(workers as usize);
        for k in 0..workers {
            let (tx, rx) = sync_channel::<Decoded>(1);
            channels.push(rx);
            let first_chunk = Arc::clone(&cache.first_chunk);
            let spare = Arc::clone(&cache.spare);
            scope.spawn(move || {
                let mut open = None;
                let mut stored = Vec::new();
                let mut p = k;
                while p < packs {
                    let decoded = decode(parcel, &first_chunk, p, &mut open, &mut stored, &spare);
                    if tx.send(decoded).is_err() {
                        return;
                    }
                    p += workers;
                }
            });
        }
        cache.prefetch = Some(Prefetch { channels, next: 0 });
        cache
    }

    /// The bytes of chunk `index`, checked; `None` when unavailable or corrupt
    /// (the reason is in `problems`).
    pub(crate) fn chunk(&mut self, index: u32) -> Option<ChunkBytes> {
        let manifest = self.parcel.manifest();
        if let Some(chunk) = manifest.base_chunk(index) {
            return self.base_chunk(index, chunk);
        }
        let record = manifest.chunks.get(index as usize)?;
        if let Some(bytes) = self.count_down(index) {
            let end = bytes.len();
            return Some(ChunkBytes {
                pack: bytes,
                start: 0,
                end,
            });
        }
        let pack = self.pack(record.pack)?;
        if self.bad_chunks.contains(index) {
            return None;
        }
        let start = record.offset as usize;
        let end = start + record.len as usize;
        Some(ChunkBytes { pack, start, end })
    }

    /// Counts one reference to own chunk `index` as read; its kept copy,
    /// if any (let go after its last reference).
    fn count_down(&mut self, index: u32) -> Option<Arc<Vec<u8>>> {
        let left = match self.remaining.get_mut(index as usize) {
            Some(n) if *n != u16::MAX => {
                *n = n.saturating_sub(1);
                *n
            }
            _ => u16::MAX,
        };
        if left == 0 {
            self.kept.remove(&index).inspect(|bytes| {
                self.kept_bytes = self
                    .kept_bytes
                    .saturating_sub(bytes.len() as u64 + KEPT_OVERHEAD);
            })
        } else {
            self.kept.get(&index).cloned()
        }
    }

    /// What is known of own chunk `index` without reading it: `Some(true)`
    /// when its pack was loaded and the chunk hashed right, `Some(false)`
    /// when it is bad or unavailable (the problem was recorded then),
    /// `None` when its pack was not loaded yet (or it is a base chunk).
    /// An answer counts the reference as read.
    pub(crate) fn checked(&mut self, index: u32) -> Option<bool> {
        let pack = self.parcel.manifest().chunks.get(index as usize)?.pack;
        // What the first load found stands, even if a later one failed.
        let known = if self.failed_first.contains(&pack) {
            false
        } else if self.loaded.get(pack as usize).copied().unwrap_or(false) {
            !self.bad_chunks.contains(index)
        } else {
            return None;
        };
        self.count_down(index);
        Some(known)
    }

    /// Whether own chunk `index` is referred to again by entries not read
    /// yet.
    pub(crate) fn read_again(&self, index: u32) -> bool {
        self.remaining.get(index as usize).is_some_and(|&n| n > 0)
    }

    /// Takes a delta parcel's base chunks from `dir`, the destination's copy
    /// of the base version. Without it, base chunks are unavailable and no
    /// problem is reported for them (verifying media needs no store).
    pub(crate) fn set_base_dir(&mut self, dir: &Path) {
        self.base_dir = Some(dir.to_owned());
    }

    /// The destination's copy of the base, when one was given.
    pub(crate) fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// Reads base chunk `index` from the base directory and checks its hash.
    fn base_chunk(&mut self, index: u32, chunk: &BaseChunk) -> Option<ChunkBytes> {
        let dir = self.base_dir.as_ref()?;
        let base = self.parcel.manifest().base.as_ref()?;
        let relative = base.files.get(chunk.file as usize)?;
        let path = dir.join(relative);
        // Keep few base files open: a base may have more files than the
        // process may open.
        if self.base_files.len() >= 32 && !self.base_files.contains_key(&chunk.file) {
            self.base_files.clear();
        }
        let file = match self.base_files.entry(chunk.file) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let opened = crate::extract::open_base_file(&path);
                match opened {
                    Ok(f) => e.insert(f),
                    Err(err) => {
                        self.problems.push(Problem::BaseMissing {
                            version: base.package_version,
                            reason: format!("{}: {err}", path.display()),
                        });
                        return None;
                    }
                }
            }
        };
        // len is at most MAX_CHUNK (Manifest::validate).
        let mut bytes = vec![0u8; chunk.len as usize];
        let read = file
            .seek(SeekFrom::Start(chunk.offset))
            .and_then(|_| file.read_exact(&mut bytes));
        if read.is_err() || sha256::sha256(&bytes) != chunk.sha256 {
            self.problems.push(Problem::BaseModified {
                path,
                what: format!("chunk {index} at offset {}", chunk.offset),
            });
            return None;
        }
        let end = bytes.len();
        Some(ChunkBytes {
            pack: Arc::new(bytes),
            start: 0,
            end,
        })
    }

    /// The pack holding chunk `index`; `None` for a base chunk.
    pub(crate) fn pack_of(&self, index: u32) -> Option<u32> {
        self.parcel
            .manifest()
            .chunks
            .get(index as usize)
            .map(|c| c.pack)
    }

    /// Loads pack `p` (once) so that its checks run even if no file uses it.
    pub(crate) fn touch(&mut self, p: u32) {
        let _ = self.pack(p);
    }

    fn pack(&mut self, p: u32) -> Option<Arc<Vec<u8>>> {
        if let Some(pos) = self.slots.iter().position(|(n, _)| *n == p) {
            return self.slots.get(pos).map(|(_, data)| Arc::clone(data));
        }
        if self.bad_packs.contains(&p) {
            return None;
        }
        if self.prefetch.as_ref().is_some_and(|f| p >= f.next) {
            // Take the packs up to `p` from the workers, in order; each
            // lands in the cache (or among the bad packs) as it arrives.
            while let Some(next) = self.prefetch.as_ref().map(|f| f.next).filter(|n| *n <= p) {
                match self.receive(next) {
                    Some(decoded) => self.absorb(next, decoded),
                    None => {
                        // A worker is gone: load the rest here.
                        self.prefetch = None;
                        break;
                    }
                }
            }
            if let Some(pos) = self.slots.iter().position(|(n, _)| *n == p) {
                return self.slots.get(pos).map(|(_, data)| Arc::clone(data));
            }
            if self.bad_packs.contains(&p) {
                return None;
            }
        }
        if self.exhausted() {
            return None;
        }
        if self.loaded.get(p as usize).copied().unwrap_or(false) {
            // Loaded before: a chunk of it is read again and was not kept.
            let raw = self
                .parcel
                .manifest()
                .packs
                .get(p as usize)
                .map_or(0, |r| u64::from(r.raw_len));
            self.reloaded = self.reloaded.saturating_add(raw);
            if self.exhausted() {
                self.problems.push(Problem::Limit {
                    what: "bytes of packs decoded again (chunks read again after their pack left the cache; FORMAT.md §8.1)".into(),
                    value: self.reloaded,
                    limit: self.reload_cap,
                });
                return None;
            }
        }
        let decoded = decode(
            self.parcel,
            &self.first_chunk,
            p,
            &mut self.open,
            &mut self.stored,
            &self.spare,
        );
        self.absorb(p, decoded);
        self.slots
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, data)| Arc::clone(data))
    }

    fn receive(&mut self, p: u32) -> Option<Decoded> {
        let prefetch = self.prefetch.as_mut()?;
        let n = prefetch.channels.len();
        let decoded = prefetch.channels.get(p as usize % n)?.recv().ok()?;
        prefetch.next = p + 1;
        Some(decoded)
    }

    /// Records what loading pack `p` found; a good pack enters the cache.
    fn absorb(&mut self, p: u32, decoded: Decoded) {
        let first = !self.loaded.get(p as usize).copied().unwrap_or(true);
        if first && decoded.raw.is_none() {
            self.failed_first.insert(p);
        }
        if let Some(flag) = self.loaded.get_mut(p as usize) {
            // Problems are reported once, the first time a pack is loaded;
            // a pack that loaded before but fails now (a medium read again
            // and no longer the same) says why too.
            if !*flag || decoded.raw.is_none() {
                self.problems.extend(decoded.problems);
                for c in decoded.bad_chunks {
                    self.bad_chunks.insert(c);
                }
            }
            *flag = true;
        }
        match decoded.raw {
            Some(data) => {
                if self.slots.len() == CACHED_PACKS {
                    if let Some((q, old)) = self.slots.pop_front() {
                        self.keep_chunks_of(q, &old);
                        // Reused unless a chunk of it is still being read.
                        if let Ok(old) = Arc::try_unwrap(old) {
                            self.spare.give(old);
                        }
                    }
                }
                self.slots.push_back((p, data));
            }
            None => {
                self.bad_packs.insert(p);
            }
        }
    }
}

impl PackCache<'_> {
    /// Keeps, as the decoded pack `q` leaves the cache, each of its good
    /// chunks still to be read again, as long as [`KEPT_BYTES`] allows.
    fn keep_chunks_of(&mut self, q: u32, raw: &[u8]) {
        let chunks = &self.parcel.manifest().chunks;
        for c in chunk_range(&self.first_chunk, q) {
            let wanted = self.remaining.get(c).is_some_and(|n| *n > 0);
            if !wanted || self.kept.contains_key(&(c as u32)) || self.bad_chunks.contains(c as u32)
            {
                continue;
            }
            let Some(record) = chunks.get(c) else {
                continue;
            };
            let cost = u64::from(record.len) + KEPT_OVERHEAD;
            if self.kept_bytes.saturating_add(cost) > KEPT_BYTES {
                // Full: later chunks may be smaller, but the scan stops here
                // (a pack holds up to 16 MiB of chunks to look through).
                return;
            }
            let start = record.offset as usize;
            let Some(bytes) = raw.get(start..start.saturating_add(record.len as usize)) else {
                continue;
            };
            self.kept.insert(c as u32, Arc::new(bytes.to_vec()));
            self.kept_bytes += cost;
        }
    }
}

/// A set of chunk numbers as bits: 2 MB for the most chunks an index may
/// list, where a hash set of millions of bad chunks took tens of MB.
struct ChunkSet(Vec<u64>);

impl ChunkSet {
    fn new(chunks: usize) -> ChunkSet {
        ChunkSet(vec![0; chunks.div_ceil(64)])
    }

    fn insert(&mut self, c: u32) {
        if let Some(word) = self.0.get_mut(c as usize / 64) {
            *word |= 1 << (c % 64);
        }
    }

    fn contains(&self, c: u32) -> bool {
        self.0
            .get(c as usize / 64)
            .is_some_and(|word| word & (1 << (c % 64)) != 0)
    }
}

/// The chunks of pack `p`: `first_chunk[p]..first_chunk[p + 1]`.
fn chunk_range(first_chunk: &[usize], p: u32) -> std::ops::Range<usize> {
    let start = first_chunk.get(p as usize).copied().unwrap_or(0);
    let end = first_chunk.get(p as usize + 1).copied().unwrap_or(start);
    start..end.max(start)
}

/// Reads pack `p` from its volume into `stored` (reused), checks its stored
/// hash, decompresses it within its declared length into a buffer from
/// `spare`, and checks the hash of every chunk in it.
fn decode(
    parcel: &Parcel,
    first_chunk: &[usize],
    p: u32,
    open: &mut Option<(u32, File)>,
    stored: &mut Vec<u8>,
    spare: &BufferPool,
) -> Decoded {
    let mut decoded = Decoded {
        raw: None,
        bad_chunks: Vec::new(),
        problems: Vec::new(),
    };
    let manifest = parcel.manifest();
    let Some(record) = manifest.packs.get(p as usize) else {
        return decoded;
    };
    let Some(volume) = parcel.volumes().get(&record.volume) else {
        // One problem for the pack's chunks, not one each: a pack may hold
        // millions of tiny chunks.
        let chunks = chunk_range(first_chunk, p);
        if !chunks.is_empty() {
            decoded.problems.push(Problem::ChunkUnavailable {
                chunk: chunks.start as u32,
                count: chunks.len() as u32,
                volume: record.volume,
                pack: p,
            });
        }
        return decoded;
    };
    if open.as_ref().is_none_or(|(n, _)| *n != record.volume) {
        match File::open(&volume.path) {
            Ok(f) => *open = Some((record.volume, f)),
            Err(source) => {
                decoded.problems.push(Problem::Unreadable {
                    path: volume.path.clone(),
                    source: source.into(),
                });
                return decoded;
            }
        }
    }
    let Some((_, file)) = open.as_mut() else {
        return decoded;
    };
    // stored_len is at most MAX_PACK_STORED (checked by Manifest::validate).
    // Read into the buffer's spare room, not over zeros: zeroing every pack
    // first was 2% of a full verify.
    stored.clear();
    let len = u64::from(record.stored_len);
    let read = file.seek(SeekFrom::Start(record.offset)).and_then(|_| {
        stored.reserve_exact(record.stored_len as usize);
        match Read::by_ref(file).take(len).read_to_end(stored)? {
            n if n as u64 == len => Ok(()),
            n => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the volume ends {n} bytes into a pack of {len}"),
            )),
        }
    });
    if let Err(source) = read {
        decoded.problems.push(Problem::Unreadable {
            path: volume.path.clone(),
            source: source.into(),
        });
        return decoded;
    }
    let corrupt = |reason: String| Problem::PackCorrupt {
        volume: record.volume,
        offset: record.offset,
        pack: p,
        reason,
    };
    let digest: [u8; 32] = sha256::sha256(stored);
    if digest != record.stored_sha256 {
        decoded
            .problems
            .push(corrupt("stored bytes do not match their SHA-256".into()));
        return decoded;
    }
    // An encrypted pack is decrypted after its hash matched (FORMAT.md §12),
    // in place: the buffer is read into afresh for the next pack.
    if let Some(key) = parcel.key() {
        if !key.open_pack(&manifest.parcel_id, p, stored) {
            decoded.problems.push(corrupt(
                "does not decrypt under the parcel key (forged or damaged)".into(),
            ));
            return decoded;
        }
    }
    let frame: &[u8] = stored;
    let mut raw = spare.take(record.raw_len as usize);
    if let Err(e) = decompress_exact_into(frame, record.raw_len as usize, &mut raw) {
        spare.give(raw);
        decoded.problems.push(corrupt(e.to_string()));
        return decoded;
    }
    for c in chunk_range(first_chunk, p) {
        let Some(chunk) = manifest.chunks.get(c) else {
            continue;
        };
        let start = chunk.offset as usize;
        let bytes = raw
            .get(start..start.saturating_add(chunk.len as usize))
            .unwrap_or_default();
        let digest: [u8; 32] = sha256::sha256(bytes);
        if digest != chunk.sha256 {
            decoded.bad_chunks.push(c as u32);
        }
    }
    // One problem for the pack, naming its first bad chunk and counting the
    // others (as above, a pack may hold millions of chunks).
    if let Some(&first) = decoded.bad_chunks.first() {
        decoded.problems.push(Problem::ChunkCorrupt {
            volume: record.volume,
            offset: record.offset,
            chunk: first,
            pack: p,
            more: decoded.bad_chunks.len().saturating_sub(1) as u32,
        });
    }
    decoded.raw = Some(Arc::new(raw));
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::DEFAULT_CHUNKING;
    use crate::manifest::{Base, ChunkRecord, ChunkRefs, Entry, EntryKind, PackRecord, ParcelId};

    fn file(path: &str, size: u64, chunks: &[u32]) -> Entry {
        Entry {
            path: path.into(),
            mtime: 0,
            kind: EntryKind::File {
                size,
                executable: false,
                sha256: [0; 32],
                chunks: chunks.iter().copied().collect::<ChunkRefs>(),
            },
        }
    }

    #[test]
    fn files_taken_whole_from_the_base_do_not_lift_the_cap_on_packs_decoded_again() {
        let mut m = Manifest {
            format_version: 2,
            parcel_id: ParcelId([1; 16]),
            source_site: "CEN".into(),
            origin_site: "CEN".into(),
            destinations: vec!["BXL".into()],
            package_id: "tools".into(),
            package_version: 2,
            created: 0,
            comment: String::new(),
            volume_count: 1,
            compression_level: 3,
            chunking: DEFAULT_CHUNKING,
            packs: vec![PackRecord {
                volume: 1,
                offset: 1024,
                stored_len: 100,
                raw_len: 1000,
                stored_sha256: [0; 32],
            }],
            chunks: vec![ChunkRecord {
                sha256: [0; 32],
                len: 1000,
                pack: 0,
                offset: 0,
            }],
            // The chunk met twice, and a file taken whole from the base that
            // declares (unchecked until extraction) almost 2^64 bytes.
            entries: vec![
                file("a", 1000, &[0]),
                file("b", 1000, &[0]),
                file("zzz", u64::MAX - 1, &[]),
            ],
            base: None,
        };
        m.base = Some(Base {
            package_version: 1,
            tree_digest: [0; 32],
            whole: vec![2],
            files: Vec::new(),
            chunks: Vec::new(),
        });
        assert_eq!(m.content_bytes_in_packs(), 2000);
        assert_eq!(reload_cap_of(&m), reload_cap(1000, 2000));
        assert!(reload_cap_of(&m) < 2 << 30);
    }
}
