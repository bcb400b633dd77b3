//! Delta parcels (FORMAT.md §11): a parcel for a destination that already
//! holds an earlier version of the same package carries the full signed file
//! table but only the chunks that version lacks; the destination reads the
//! rest from its copy of the base, checking each chunk's hash.
//!
//! The writer learns what the base holds from the manifest of the parcel that
//! carried it ([`BaseIndex::from_manifest`]): every chunk of every base file,
//! with the file and offset where the destination will find it.

use std::collections::HashMap;

use crate::manifest::{Base, BaseChunk, ChunkParams, Entry, EntryKind, Hash, Manifest};

/// The chunks of a base version, by hash, for writing a delta parcel.
#[derive(Debug, Clone)]
pub struct BaseIndex {
    package_id: String,
    package_version: u64,
    tree_digest: Hash,
    chunking: ChunkParams,
    files: Vec<String>,
    /// Chunk hash → file (index into `files`), offset in it, length.
    chunks: HashMap<Hash, (u32, u64, u32)>,
    /// Path → SHA-256, size and modification time of each base file.
    whole: HashMap<String, BaseFile>,
}

/// What the base holds at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BaseFile {
    sha256: Hash,
    size: u64,
    mtime: i64,
}

/// While writing, references to base chunks are numbered down from
/// `u32::MAX`; [`BaseIndex::finish`] renumbers them after the own chunks.
pub(crate) fn provisional(used: usize) -> u32 {
    u32::MAX - used as u32
}

/// A base chunk a delta parcel uses: its hash and where it is in the base.
#[derive(Debug, Clone)]
pub(crate) struct UsedChunk {
    pub(crate) sha256: Hash,
    pub(crate) file: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl BaseIndex {
    /// The base as described by the manifest of the parcel that carried it
    /// (itself full or delta): each distinct chunk at its first place in the
    /// file table.
    pub fn from_manifest(manifest: &Manifest) -> BaseIndex {
        let mut files = Vec::new();
        let mut chunks = HashMap::new();
        let mut whole = HashMap::new();
        for entry in &manifest.entries {
            let EntryKind::File {
                chunks: refs,
                sha256,
                size,
                ..
            } = &entry.kind
            else {
                continue;
            };
            let held = BaseFile {
                sha256: *sha256,
                size: *size,
                mtime: entry.mtime,
            };
            whole.insert(entry.path.clone(), held);
            let file = files.len() as u32;
            let mut offset = 0u64;
            for &c in refs {
                let found = match manifest.chunks.get(c as usize) {
                    Some(own) => Some((own.sha256, own.len)),
                    None => manifest.base_chunk(c).map(|b| (b.sha256, b.len)),
                };
                let Some((sha256, len)) = found else { break };
                chunks.entry(sha256).or_insert((file, offset, len));
                offset += u64::from(len);
            }
            files.push(entry.path.clone());
        }
        BaseIndex {
            package_id: manifest.package_id.clone(),
            package_version: manifest.package_version,
            tree_digest: manifest.tree_digest(),
            chunking: manifest.chunking,
            files,
            chunks,
            whole,
        }
    }

    /// The base's package id.
    pub fn package_id(&self) -> &str {
        &self.package_id
    }

    /// The base's version.
    pub fn package_version(&self) -> u64 {
        self.package_version
    }

    /// The chunking the base was cut with; a delta must cut the same way for
    /// its chunks to match.
    pub fn chunking(&self) -> ChunkParams {
        self.chunking
    }

    /// The SHA-256 and size of the base's file at `path`, if it has one.
    pub(crate) fn whole_file(&self, path: &str) -> Option<(Hash, u64)> {
        self.whole.get(path).map(|f| (f.sha256, f.size))
    }

    /// Whether the base has a file at `path` of this size and modification
    /// time (Unix seconds): the quick check rsync makes. Only for estimating
    /// a delta's size before any file is read; what the delta leaves out is
    /// decided by content hashes alone.
    pub(crate) fn probably_holds(&self, path: &str, size: u64, mtime: i64) -> bool {
        self.whole
            .get(path)
            .is_some_and(|f| f.size == size && f.mtime == mtime)
    }

    /// Where the base holds a chunk with this hash and length.
    pub(crate) fn find(&self, sha256: &Hash, len: usize) -> Option<UsedChunk> {
        let &(file, offset, found_len) = self.chunks.get(sha256)?;
        (found_len as usize == len).then_some(UsedChunk {
            sha256: *sha256,
            file,
            offset,
            len: found_len,
        })
    }

    /// The manifest's [`Base`] once the file table is read: files identical
    /// to the base file at the same path become *whole* entries (no chunk
    /// references at all); the base chunks other files still use are listed
    /// in order of first use, with only the base files they lie in, and the
    /// provisional references are renumbered after the `own` chunks.
    pub(crate) fn finish(&self, entries: &mut [Entry], own: usize, used: &[UsedChunk]) -> Base {
        let mut whole = Vec::new();
        let mut renumber: HashMap<u32, u32> = HashMap::new();
        let mut file_numbers: HashMap<u32, u32> = HashMap::new();
        let mut files = Vec::new();
        let mut chunks = Vec::new();
        for (i, entry) in entries.iter_mut().enumerate() {
            let EntryKind::File {
                size,
                sha256,
                chunks: refs,
                ..
            } = &mut entry.kind
            else {
                continue;
            };
            if *size > 0 && self.whole_file(&entry.path) == Some((*sha256, *size)) {
                whole.push(i as u32);
                refs.clear();
                continue;
            }
            for r in refs.iter_mut() {
                let Some(k) = (u32::MAX - *r)
                    .try_into()
                    .ok()
                    .filter(|k: &usize| *k < used.len())
                else {
                    continue;
                };
                let Some(u) = used.get(k) else { continue };
                let next = (own + chunks.len()) as u32;
                *r = *renumber.entry(k as u32).or_insert_with(|| {
                    let file = *file_numbers.entry(u.file).or_insert_with(|| {
                        files.push(self.files.get(u.file as usize).cloned().unwrap_or_default());
                        (files.len() - 1) as u32
                    });
                    chunks.push(BaseChunk {
                        sha256: u.sha256,
                        len: u.len,
                        file,
                        offset: u.offset,
                    });
                    next
                });
            }
        }
        Base {
            package_version: self.package_version,
            tree_digest: self.tree_digest,
            whole,
            files,
            chunks,
        }
    }
}
