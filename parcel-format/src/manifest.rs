//! The manifest (index): the signed description of a parcel — who sends it to
//! whom, which package, the file table, the chunk table and the pack table
//! (FORMAT.md §5). Stored zstd-compressed; its hash and length are bound by
//! every volume header, so it is decoded only after its bytes are authenticated.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Problem;
use crate::header::VolumeHeader;
use crate::limits::*;
use crate::path;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// A parcel's identity: 16 random bytes, shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ParcelId(pub [u8; 16]);

impl ParcelId {
    /// A fresh random id.
    pub fn random() -> ParcelId {
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        ParcelId(id)
    }

    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Option<ParcelId> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            *id.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
        }
        Some(ParcelId(id))
    }
}

impl fmt::Display for ParcelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chunking parameters the writer used (informational for a reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    /// Smallest chunk (except a file's last).
    pub min: u32,
    /// Target average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

/// The complete signed description of a parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version; equals the headers'.
    pub format_version: u16,
    /// The parcel's id; equals the headers'.
    pub parcel_id: ParcelId,
    /// The site that made and signed this parcel.
    pub source_site: String,
    /// The site where the package was first made (differs when forwarded).
    pub origin_site: String,
    /// The site(s) this parcel is addressed to.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub destinations: Vec<String>,
    /// Package id, e.g. `CEN00012`.
    pub package_id: String,
    /// Package version.
    pub package_version: u64,
    /// Creation time, Unix seconds; equals the headers'.
    pub created: i64,
    /// Free text from the sender.
    pub comment: String,
    /// Number of volumes; equals the headers'.
    pub volume_count: u32,
    /// zstd level the packs were written with (informational).
    pub compression_level: i32,
    /// Chunking parameters used (informational).
    pub chunking: ChunkParams,
    /// Stored packs, in volume order.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub packs: Vec<PackRecord>,
    /// Distinct chunks, in pack order.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub chunks: Vec<ChunkRecord>,
    /// The file table, parents before children.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub entries: Vec<Entry>,
    /// For a delta parcel, the base version it builds on; encoded after the
    /// fields above: in version 2 always (a `Base`), in version 3 as an
    /// `Option<Base>` (`None` for a full parcel), never in version 1
    /// (FORMAT.md §10, §11).
    #[serde(skip)]
    pub base: Option<Base>,
}

/// What a delta parcel builds on (FORMAT.md §11): a version of the same
/// package that the destination already holds, and where in it lie the
/// chunks this parcel does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The base version (same package id).
    pub package_version: u64,
    /// The base's tree digest (§5.4); the destination's copy must match it.
    pub tree_digest: Hash,
    /// File-table entries (their indices, increasing) whose content is the
    /// whole base file at the same path: they list no chunks.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub whole: Vec<u32>,
    /// Paths, within the base, of the files chunks are taken from.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub files: Vec<String>,
    /// The chunks taken from the base. File chunk references number the
    /// parcel's own chunks first: reference `chunks.len() + i` is `chunks[i]`
    /// here.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub chunks: Vec<BaseChunk>,
}

/// A chunk the destination takes from its copy of the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseChunk {
    /// SHA-256 of the raw bytes.
    pub sha256: Hash,
    /// Raw length.
    pub len: u32,
    /// Index into [`Base::files`].
    pub file: u32,
    /// Byte offset within that file.
    pub offset: u64,
}

/// Format version of a delta parcel: version 1 plus [`Manifest::base`].
pub const DELTA_FORMAT_VERSION: u16 = 2;
/// Format version of a parcel using a header flag (FORMAT.md §10): the
/// manifest is version 1's followed by an optional [`Base`], and the header's
/// flags and parts of its reserved bytes have a meaning.
pub const EXTENDED_FORMAT_VERSION: u16 = 3;

/// Where a pack (a zstd frame holding consecutive chunks) is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    /// Volume number, 1-based.
    pub volume: u32,
    /// Byte offset of the stored bytes in the volume file.
    pub offset: u64,
    /// Stored (compressed) length.
    pub stored_len: u32,
    /// Raw (decompressed) length: the sum of its chunks.
    pub raw_len: u32,
    /// SHA-256 of the stored bytes.
    pub stored_sha256: Hash,
}

/// A distinct chunk of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// SHA-256 of the raw bytes: the chunk's identity.
    pub sha256: Hash,
    /// Raw length.
    pub len: u32,
    /// Pack holding it.
    pub pack: u32,
    /// Offset within the decompressed pack.
    pub offset: u32,
}

/// A file's chunk references, in order: up to four held inline, without an
/// allocation of their own. Most files of a package are one chunk, and a
/// list on the heap for each cost about 32 bytes a file (32 MB of a
/// million-file package, when writing and when reading). Encoded exactly as
/// a list (FORMAT.md §5.3.2).
pub type ChunkRefs = smallvec::SmallVec<[u32; 4]>;

/// One file-table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// What it is.
    pub kind: EntryKind,
}

/// What a file-table entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File {
        /// Length in bytes.
        size: u64,
        /// Whether the executable bits are set (0755 rather than 0644).
        executable: bool,
        /// SHA-256 of the whole content.
        sha256: Hash,
        /// The chunks that make up the content, in order.
        #[serde(deserialize_with = "crate::bounded::chunk_refs")]
        chunks: ChunkRefs,
    },
    /// A relative symbolic link staying inside the package.
    Symlink {
        /// The link target.
        target: String,
    },
}

/// The largest zstd window the writer gives the stored index at levels 3 to
/// 8, as a base-2 logarithm: 1 MiB, where zstd's default would be 2 MiB
/// (FORMAT.md §5.3). A reader decoding the index holds its window beside the
/// manifest; at those levels the index, mostly hashes and paths, compresses
/// within 0.1% as well in 1 MiB. From level 9 zstd's default window (4 to
/// 8 MiB) is kept: it reaches repeats more than 2 MiB back (17% smaller on
/// a 52,000-file toolchain's index at level 9).
pub(crate) const INDEX_WINDOW_LOG: u32 = 20;

impl Manifest {
    /// Encodes the manifest (postcard) and compresses it (zstd, one frame).
    ///
    /// The encoding is streamed into the compressor, never held whole: it is
    /// produced twice, once to count its length (which the zstd frame must
    /// declare, FORMAT.md §5.3) and once to compress it.
    pub fn encode(&self, level: i32) -> std::io::Result<(Vec<u8>, u64)> {
        self.encode_to(level, Vec::new())
    }

    /// The stored and raw lengths [`Manifest::encode`] would give, without
    /// keeping the stored index: a writer lays out the volumes with them and
    /// then streams the index with [`Manifest::encode_to`] (FORMAT.md §8.1).
    pub fn encoded_len(&self, level: i32) -> std::io::Result<(u64, u64)> {
        let (counter, raw_len) = self.encode_to(level, ByteCounter(0))?;
        Ok((counter.0, raw_len))
    }

    /// Encodes the stored index (as [`Manifest::encode`]) into `out` as it is
    /// produced; returns `out` and the raw length. The same manifest and
    /// level always give the same bytes.
    pub fn encode_to<W: std::io::Write>(&self, level: i32, out: W) -> std::io::Result<(W, u64)> {
        let mut counter = ByteCounter(0);
        self.encode_raw(&mut counter)?;
        let raw_len = counter.0;
        let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
        encoder.include_contentsize(true)?;
        encoder.include_checksum(false)?;
        encoder.set_pledged_src_size(Some(raw_len))?;
        if (3..=8).contains(&level) {
            encoder.window_log(INDEX_WINDOW_LOG)?;
        }
        // postcard writes a hash as 32 one-byte writes; unbuffered, each would
        // be a call into the compressor (most of the time of encoding).
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, encoder);
        self.encode_raw(&mut buffered)?;
        let encoder = buffered.into_inner().map_err(|e| e.into_error())?;
        Ok((encoder.finish()?, raw_len))
    }

    /// Writes the postcard encoding: the fields of §5.3.2, then the base as
    /// the format version has it (§11.1, §10).
    fn encode_raw(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        postcard::to_io(self, &mut *out).map_err(std::io::Error::other)?;
        if self.format_version == EXTENDED_FORMAT_VERSION {
            postcard::to_io(&self.base, &mut *out).map_err(std::io::Error::other)?;
        } else if let Some(base) = &self.base {
            postcard::to_io(base, &mut *out).map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// The bytes of budget a reader charges to decode this manifest's lists,
    /// which must be at most `MAX_INDEX_MEMORY` (FORMAT.md §8.1): each list
    /// element at its in-memory size, as the bounded decoding counts it. A
    /// writer checks it so as not to make a parcel every reader refuses.
    pub fn decode_memory(&self) -> u64 {
        fn list<T>(len: usize) -> u64 {
            (len as u64).saturating_mul(std::mem::size_of::<T>().max(1) as u64)
        }
        let refs = self
            .entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::File { chunks, .. } => list::<u32>(chunks.len()),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add);
        let base = self.base.as_ref().map_or(0, |b| {
            list::<u32>(b.whole.len())
                .saturating_add(list::<String>(b.files.len()))
                .saturating_add(list::<BaseChunk>(b.chunks.len()))
        });
        [
            list::<String>(self.destinations.len()),
            list::<PackRecord>(self.packs.len()),
            list::<ChunkRecord>(self.chunks.len()),
            list::<Entry>(self.entries.len()),
            refs,
            base,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// Decodes an authenticated stored index whose lengths the header declares.
    pub fn decode(stored: &[u8], raw_len: u64) -> Result<Manifest, Problem> {
        Manifest::decode_from(stored, raw_len)
    }

    /// Decodes an authenticated stored index read from `stored`, as
    /// [`Manifest::decode`] does, consuming it as it goes: a reader that
    /// releases what was read keeps memory to the decoded manifest.
    pub fn decode_from(stored: impl std::io::Read, raw_len: u64) -> Result<Manifest, Problem> {
        decode_stream(stored, raw_len, |reader, scratch| {
            let (mut manifest, (reader, scratch)) =
                postcard::from_io::<Manifest, _>((reader, scratch))?;
            match manifest.format_version {
                DELTA_FORMAT_VERSION => {
                    let (base, _) = postcard::from_io::<Base, _>((reader, scratch))?;
                    manifest.base = Some(base);
                }
                EXTENDED_FORMAT_VERSION => {
                    let (base, _) = postcard::from_io::<Option<Base>, _>((reader, scratch))?;
                    manifest.base = base;
                }
                _ => {}
            }
            Ok((manifest, Rest::Refused))
        })
    }

    /// SHA-256 over the package tree as the file table describes it: paths,
    /// kinds, executable bits, sizes, content hashes and link targets, not
    /// times (FORMAT.md §5.4). Two parcels carrying the same tree have the same
    /// digest, whatever their chunking or compression.
    pub fn tree_digest(&self) -> Hash {
        tree_digest(&self.entries)
    }

    /// Total bytes of regular-file content.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Bytes of file content this parcel's own packs serve: the length of
    /// each reference to one of its chunks, counted at every reference.
    /// Files a delta takes whole from its base, and references to base
    /// chunks, are left out: nothing of them is read from packs, and a whole
    /// file's declared size is checked only against the base (FORMAT.md
    /// §7.4, the cap on packs decoded again).
    pub fn content_bytes_in_packs(&self) -> u64 {
        self.entries
            .iter()
            .flat_map(|e| match &e.kind {
                EntryKind::File { chunks, .. } => chunks.as_slice(),
                _ => &[],
            })
            .filter_map(|&c| self.chunks.get(c as usize))
            .map(|chunk| u64::from(chunk.len))
            .fold(0u64, u64::saturating_add)
    }

    /// Checks the manifest against the headers and against itself (FORMAT.md
    /// §7.3): every reference in range, chunks tiling their packs exactly,
    /// files' sizes matching their chunks, and every path safe and unique.
    pub fn validate(
        &self,
        header: &VolumeHeader,
        body_lens: &HashMap<u32, u64>,
    ) -> Result<(), Problem> {
        crate::manifest_head::Fields {
            format_version: self.format_version,
            parcel_id: self.parcel_id,
            source_site: &self.source_site,
            origin_site: &self.origin_site,
            destinations: &self.destinations,
            package_id: &self.package_id,
            created: self.created,
            comment: &self.comment,
            volume_count: self.volume_count,
        }
        .validate(header)?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(Problem::limit(
                "file table entries",
                self.entries.len() as u64,
                MAX_ENTRIES as u64,
            ));
        }
        if self.chunks.len() > MAX_CHUNKS {
            return Err(Problem::limit(
                "chunks",
                self.chunks.len() as u64,
                MAX_CHUNKS as u64,
            ));
        }
        if self.packs.len() > MAX_PACKS {
            return Err(Problem::limit(
                "packs",
                self.packs.len() as u64,
                MAX_PACKS as u64,
            ));
        }
        self.validate_packs(body_lens)?;
        self.validate_chunks()?;
        self.validate_base()?;
        self.validate_entries()
    }

    /// The base of a delta parcel, if any (always present in version 2,
    /// optional in version 3, absent in version 1: FORMAT.md §10, §11):
    /// every base chunk's file and length in range (FORMAT.md §11.2).
    fn validate_base(&self) -> Result<(), Problem> {
        let Some(base) = &self.base else {
            return Ok(());
        };
        let all = self.chunks.len().saturating_add(base.chunks.len());
        if all > MAX_CHUNKS {
            return Err(Problem::limit(
                "chunks, own and from the base",
                all as u64,
                MAX_CHUNKS as u64,
            ));
        }
        let mut previous: Option<u32> = None;
        for &i in &base.whole {
            let listed = matches!(
                self.entries.get(i as usize).map(|e| &e.kind),
                Some(EntryKind::File { chunks, .. }) if chunks.is_empty()
            );
            if previous.is_some_and(|p| p >= i) || !listed {
                return Err(Problem::index(format!(
                    "whole-file entry {i} is out of order, or not a file without chunks"
                )));
            }
            previous = Some(i);
        }
        for file in &base.files {
            path::check_path(file).map_err(|reason| Problem::path(file, reason))?;
        }
        for (i, chunk) in base.chunks.iter().enumerate() {
            if chunk.len == 0 || chunk.len > MAX_CHUNK {
                return Err(Problem::limit(
                    format!("base chunk {i} length"),
                    chunk.len.into(),
                    MAX_CHUNK.into(),
                ));
            }
            if chunk.file as usize >= base.files.len()
                || chunk.offset.checked_add(u64::from(chunk.len)).is_none()
            {
                return Err(Problem::index(format!(
                    "base chunk {i} names no base file, or lies beyond any file"
                )));
            }
        }
        Ok(())
    }

    /// The raw length of chunk `c`, own or from the base.
    pub fn chunk_len(&self, c: u32) -> Option<u32> {
        match self.chunks.get(c as usize) {
            Some(chunk) => Some(chunk.len),
            None => {
                let i = (c as usize).checked_sub(self.chunks.len())?;
                self.base.as_ref()?.chunks.get(i).map(|b| b.len)
            }
        }
    }

    /// Whether file-table entry `index` is taken whole from the base file at
    /// the same path (a delta parcel's unchanged file, FORMAT.md §11).
    pub fn is_whole_from_base(&self, index: usize) -> bool {
        self.base
            .as_ref()
            .is_some_and(|b| b.whole.binary_search(&(index as u32)).is_ok())
    }

    /// The base chunk that chunk reference `c` names, if it names one.
    pub fn base_chunk(&self, c: u32) -> Option<&BaseChunk> {
        let i = (c as usize).checked_sub(self.chunks.len())?;
        self.base.as_ref()?.chunks.get(i)
    }

    /// For file `index` made of exactly one chunk (own or base), that
    /// chunk's hash: once the chunk's bytes are checked against it, the
    /// file's content is checked against its own hash by comparing the two,
    /// without hashing the same bytes again. `None` for any other file, and
    /// for a delta's file taken whole from the base.
    pub(crate) fn one_chunk_hash(&self, index: usize) -> Option<&Hash> {
        let Some(Entry {
            kind: EntryKind::File { chunks, .. },
            ..
        }) = self.entries.get(index)
        else {
            return None;
        };
        let [c] = chunks[..] else {
            return None;
        };
        if self.is_whole_from_base(index) {
            return None;
        }
        match self.chunks.get(c as usize) {
            Some(record) => Some(&record.sha256),
            None => self.base_chunk(c).map(|b| &b.sha256),
        }
    }

    fn validate_packs(&self, body_lens: &HashMap<u32, u64>) -> Result<(), Problem> {
        let mut previous: Option<(u32, u64)> = None;
        for (i, pack) in self.packs.iter().enumerate() {
            if pack.stored_len > MAX_PACK_STORED {
                return Err(Problem::limit(
                    format!("pack {i} stored length"),
                    pack.stored_len.into(),
                    MAX_PACK_STORED.into(),
                ));
            }
            if pack.raw_len > MAX_PACK_RAW {
                return Err(Problem::limit(
                    format!("pack {i} raw length"),
                    pack.raw_len.into(),
                    MAX_PACK_RAW.into(),
                ));
            }
            if pack.volume == 0 || pack.volume > self.volume_count {
                return Err(Problem::index(format!(
                    "pack {i} is in volume {}, outside 1..={}",
                    pack.volume, self.volume_count
                )));
            }
            let end = pack.offset.checked_add(pack.stored_len.into());
            // When the volume is missing its length is unknown; it is checked if it turns up.
            if let Some(&body_len) = body_lens.get(&pack.volume) {
                let volume_end = VOLUME_PREFIX + body_len;
                if pack.offset < VOLUME_PREFIX || end.is_none_or(|e| e > volume_end) {
                    return Err(Problem::index(format!(
                        "pack {i} lies outside volume {}",
                        pack.volume
                    )));
                }
            }
            if let Some((v, prev_end)) = previous {
                if pack.volume < v || (pack.volume == v && pack.offset < prev_end) {
                    return Err(Problem::index(format!(
                        "pack {i} overlaps or precedes pack {}",
                        i - 1
                    )));
                }
            }
            previous = Some((pack.volume, end.unwrap_or(u64::MAX)));
        }
        Ok(())
    }

    fn validate_chunks(&self) -> Result<(), Problem> {
        // Chunks are listed pack by pack and tile each pack exactly.
        let mut pack = 0u32;
        let mut filled = 0u64;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if chunk.len == 0 || chunk.len > MAX_CHUNK {
                return Err(Problem::limit(
                    format!("chunk {i} length"),
                    chunk.len.into(),
                    MAX_CHUNK.into(),
                ));
            }
            if chunk.pack != pack {
                let complete = self
                    .packs
                    .get(pack as usize)
                    .is_some_and(|p| u64::from(p.raw_len) == filled);
                if chunk.pack != pack + 1 || !complete {
                    return Err(Problem::index(format!(
                        "chunk {i} does not continue pack {pack} in order"
                    )));
                }
                pack = chunk.pack;
                filled = 0;
            }
            if u64::from(chunk.offset) != filled {
                return Err(Problem::index(format!(
                    "chunk {i} overlaps or leaves a gap in pack {pack}"
                )));
            }
            filled += u64::from(chunk.len);
            let raw = self.packs.get(pack as usize).map(|p| u64::from(p.raw_len));
            if raw.is_none_or(|raw| filled > raw) {
                return Err(Problem::index(format!(
                    "chunk {i} lies outside pack {pack}"
                )));
            }
        }
        let last_complete = match self.chunks.last() {
            None => self.packs.is_empty(),
            Some(_) => {
                pack as usize + 1 == self.packs.len()
                    && self
                        .packs
                        .get(pack as usize)
                        .is_some_and(|p| u64::from(p.raw_len) == filled)
            }
        };
        if !last_complete {
            return Err(Problem::index(
                "packs and chunks do not match (a pack is not filled exactly by its chunks)",
            ));
        }
        Ok(())
    }

    fn validate_entries(&self) -> Result<(), Problem> {
        // Directories so far, by their exact path: a parent is looked up by
        // its exact path, so `Bin` does not stand in for a parent named `bin`.
        let mut directories: HashSet<&str> = HashSet::new();
        let mut collisions = CollisionKeys::with_capacity(self.entries.len());
        for (index, entry) in self.entries.iter().enumerate() {
            path::check_path(&entry.path).map_err(|reason| Problem::path(&entry.path, reason))?;
            if let Some(parent) = path::parent(&entry.path) {
                if !directories.contains(parent) {
                    // Only on the way out: is the parent there, but not a directory?
                    let listed = self.entries[..index].iter().any(|e| e.path == parent);
                    return Err(Problem::path(
                        &entry.path,
                        if listed {
                            "its parent is not a directory"
                        } else {
                            "its parent directory is not listed before it"
                        },
                    ));
                }
            }
            if matches!(entry.kind, EntryKind::Directory) {
                directories.insert(&entry.path);
            }
            if collisions.insert(&self.entries, index) {
                return Err(Problem::path(&entry.path, "collides with an earlier entry (same name, or differs only in case or Unicode normalisation)"));
            }
            // The walk order (§5.3.2), which the tree digest depends on: a
            // destination compares the digest with its store copy's, walked
            // again, to tell that the copy is unchanged.
            let previous = index.checked_sub(1).and_then(|i| self.entries.get(i));
            if previous.is_some_and(|p| walk_order(&p.path, &entry.path).is_ge()) {
                return Err(Problem::path(
                    &entry.path,
                    "is listed after an entry the writer's walk puts after it (entries go depth first, the names in a directory sorted by their bytes)",
                ));
            }
            match &entry.kind {
                EntryKind::Directory => {}
                EntryKind::Symlink { target } => {
                    path::check_symlink_target(&entry.path, target)
                        .map_err(|reason| Problem::path(&entry.path, reason))?;
                }
                EntryKind::File { size, chunks, .. } => {
                    let mut total = 0u64;
                    for &c in chunks {
                        let len = self.chunk_len(c).ok_or_else(|| {
                            Problem::index(format!(
                                "file {:?} refers to chunk {c}, beyond the {} chunks",
                                entry.path,
                                self.chunks.len()
                                    + self.base.as_ref().map_or(0, |b| b.chunks.len())
                            ))
                        })?;
                        total += u64::from(len);
                    }
                    if total != *size && !self.is_whole_from_base(index) {
                        return Err(Problem::index(format!(
                            "file {:?} is {size} bytes but its chunks hold {total}",
                            entry.path
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A writer that only counts what it is given.
struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The collision keys (FORMAT.md §6.2) of the file-table entries seen so far,
/// held as 32-bit hashes pointing at the entry that has each one, not as
/// strings: with a million entries that is 8 bytes a slot instead of about 80
/// bytes a key, at the peak of reading an index or walking a package. A hash hit is confirmed by
/// comparing the real keys, and a hash shared by two different keys (about a
/// hundred times in a million entries; the hasher is keyed at random, so an
/// input cannot aim for it) keeps the later key as a string in `spill`, so
/// the answer is always exact.
pub(crate) struct CollisionKeys<S = std::collections::hash_map::RandomState> {
    hasher: S,
    owners: HashMap<u32, u32>,
    spill: HashSet<String>,
}

impl CollisionKeys {
    pub(crate) fn with_capacity(entries: usize) -> CollisionKeys {
        CollisionKeys::with_hasher(entries, Default::default())
    }
}

impl<S: std::hash::BuildHasher> CollisionKeys<S> {
    fn with_hasher(entries: usize, hasher: S) -> CollisionKeys<S> {
        CollisionKeys {
            hasher,
            owners: HashMap::with_capacity(entries),
            spill: HashSet::new(),
        }
    }

    /// Adds the key of `entries[index]`; whether an earlier entry has it too.
    pub(crate) fn insert(&mut self, entries: &[Entry], index: usize) -> bool {
        use std::collections::hash_map::Entry as Slot;
        let Some(entry) = entries.get(index) else {
            return false;
        };
        let key = path::collision_key(&entry.path);
        // Truncated on purpose: see the type's comment.
        let hash = self.hasher.hash_one(&key) as u32;
        match self.owners.entry(hash) {
            Slot::Vacant(slot) => {
                // No earlier key has this hash, so none is in `spill` either.
                slot.insert(index as u32);
                false
            }
            Slot::Occupied(slot) => {
                let owner = entries.get(*slot.get() as usize);
                if owner.is_some_and(|o| path::collision_key(&o.path) == key) {
                    return true;
                }
                !self.spill.insert(key)
            }
        }
    }
}

/// How the writer's walk orders two paths (FORMAT.md §5.3.2): depth first,
/// each directory before its contents, names in a directory by their bytes;
/// that is, the paths' components compared in turn.
pub(crate) fn walk_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The tree digest of a file table (see [`Manifest::tree_digest`]).
pub fn tree_digest(entries: &[Entry]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"parcel-format/v1/tree\0");
    for entry in entries {
        let (tag, extra): (u8, Vec<u8>) = match &entry.kind {
            EntryKind::Directory => (0, Vec::new()),
            EntryKind::File {
                size,
                executable,
                sha256,
                ..
            } => {
                let mut v = Vec::with_capacity(41);
                v.push(u8::from(*executable));
                v.extend_from_slice(&size.to_le_bytes());
                v.extend_from_slice(sha256);
                (1, v)
            }
            EntryKind::Symlink { target } => {
                let mut v = (target.len() as u32).to_le_bytes().to_vec();
                v.extend_from_slice(target.as_bytes());
                (2, v)
            }
        };
        h.update([tag]);
        h.update((entry.path.len() as u32).to_le_bytes());
        h.update(entry.path.as_bytes());
        h.update(&extra);
    }
    h.finalize().into()
}

/// What a decoder of the stored index makes of decompressed bytes left
/// after what it decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rest {
    /// An index failure: the manifest is the whole index (FORMAT.md §7.3
    /// step 7).
    Refused,
    /// Not read: the caller decodes only the front of the index.
    Unread,
}

/// Decompresses the authenticated stored index read from `stored` (FORMAT.md
/// §5.2) and hands the decompressed stream to `decode`, within the index's
/// memory budget (§8.1); `decode` says what becomes of what it left. Decoded as it is decompressed: what is decoded is
/// the only copy of it in memory. Strings are read through a scratch
/// buffer, so one longer than it does not decode.
pub(crate) fn decode_stream<R, T, F>(stored: R, raw_len: u64, decode: F) -> Result<T, Problem>
where
    R: std::io::Read,
    F: FnOnce(
        &mut std::io::BufReader<crate::pack::ExactReader<R>>,
        &mut [u8],
    ) -> Result<(T, Rest), postcard::Error>,
{
    if raw_len > MAX_INDEX_RAW {
        return Err(Problem::limit(
            "declared index length",
            raw_len,
            MAX_INDEX_RAW,
        ));
    }
    // Buffered: postcard reads a field at a time, and each read straight
    // from the decompressor was a call into zstd (a third of a
    // `verify --media`'s time on a 50,000-file package).
    let mut reader = std::io::BufReader::with_capacity(
        64 << 10,
        crate::pack::ExactReader::new(stored, raw_len)
            .map_err(|e| Problem::index(format!("does not decompress: {e}")))?,
    );
    let mut scratch = vec![0u8; MAX_INDEX_STRING.min(raw_len as usize)];
    let (decoded, spent) = crate::bounded::with_budget(MAX_INDEX_MEMORY, raw_len as usize, || {
        decode(&mut reader, &mut scratch[..])
    });
    if spent {
        return Err(Problem::limit(
            "memory needed to decode the index (bytes)",
            MAX_INDEX_MEMORY as u64 + 1,
            MAX_INDEX_MEMORY as u64,
        ));
    }
    if let Some(failure) = reader.get_ref().failure() {
        return Err(Problem::index(format!("does not decompress: {failure}")));
    }
    let (decoded, rest) = decoded.map_err(|e| Problem::index(format!("does not decode: {e}")))?;
    if rest == Rest::Unread {
        return Ok(decoded);
    }
    let buffered = reader.buffer().len() as u64;
    match reader.into_inner().finish() {
        Ok(0) if buffered == 0 => Ok(decoded),
        Ok(rest) => Err(Problem::index(format!(
            "{} bytes after the manifest",
            rest + buffered
        ))),
        Err(e) => Err(Problem::index(format!("does not decompress: {e}"))),
    }
}

/// Checks a site code: 1–8 characters A–Z, 0–9.
pub fn check_site_code(code: &str) -> Result<(), String> {
    if code.is_empty()
        || code.len() > MAX_SITE_CODE
        || !code
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "bad site code {code:?}: 1 to 8 characters A-Z, 0-9"
        ));
    }
    Ok(())
}

/// Checks a package id: 1–64 characters A–Z, a–z, 0–9, `.`, `_`, `-`, not
/// starting with `.` (it names a directory in a store).
pub fn check_package_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_PACKAGE_ID
        || id.starts_with('.')
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(format!("bad package id {id:?}: 1 to 64 characters A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'"));
    }
    Ok(())
}

#[cfg(test)]
mod collision_tests {
    use super::*;

    /// A hasher under which every key has the same hash.
    #[derive(Default)]
    struct Constant;
    impl std::hash::BuildHasher for Constant {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }
    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            mtime: 0,
            kind: EntryKind::Directory,
        }
    }

    #[test]
    fn collisions_are_exact_even_when_every_hash_is_shared() {
        let entries: Vec<Entry> = ["a", "b", "c", "B", "d", "A", "C", "e"]
            .into_iter()
            .map(dir)
            .collect();
        let mut keys = CollisionKeys::with_hasher(entries.len(), Constant);
        let found: Vec<bool> = (0..entries.len())
            .map(|i| keys.insert(&entries, i))
            .collect();
        assert_eq!(found, [false, false, false, true, false, true, true, false]);
    }
}
