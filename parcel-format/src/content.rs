//! Random access to chunk contents for verify and extract: loads a pack from
//! its volume, checks the stored bytes' SHA-256 *before* decompressing, then
//! decompresses within the declared length and checks every chunk's SHA-256
//! (FORMAT.md §7.4). Keeps a few decoded packs, so memory stays bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::Problem;
use crate::pack::decompress_exact;
use crate::read::Parcel;

/// Decoded packs kept at once (each at most `MAX_PACK_RAW`).
const CACHED_PACKS: usize = 4;

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

pub(crate) struct PackCache<'p> {
    parcel: &'p Parcel,
    /// First chunk of each pack; `first_chunk[packs]` is the chunk count.
    first_chunk: Vec<usize>,
    files: HashMap<u32, File>,
    slots: VecDeque<(u32, Arc<Vec<u8>>)>,
    bad_packs: HashSet<u32>,
    bad_chunks: HashSet<u32>,
    pub(crate) loaded: Vec<bool>,
    /// Every problem found, each once.
    pub(crate) problems: Vec<Problem>,
}

impl<'p> PackCache<'p> {
    pub(crate) fn new(parcel: &'p Parcel) -> Self {
        let m = parcel.manifest();
        let mut first_chunk = vec![m.chunks.len(); m.packs.len() + 1];
        for (i, c) in m.chunks.iter().enumerate().rev() {
            if let Some(slot) = first_chunk.get_mut(c.pack as usize) {
                *slot = i;
            }
        }
        PackCache {
            parcel,
            first_chunk,
            files: HashMap::new(),
            slots: VecDeque::new(),
            bad_packs: HashSet::new(),
            bad_chunks: HashSet::new(),
            loaded: vec![false; m.packs.len()],
            problems: Vec::new(),
        }
    }

    /// The bytes of chunk `index`, checked; `None` when unavailable or corrupt
    /// (the reason is in `problems`).
    pub(crate) fn chunk(&mut self, index: u32) -> Option<ChunkBytes> {
        let record = self.parcel.manifest().chunks.get(index as usize)?;
        let pack = self.pack(record.pack)?;
        if self.bad_chunks.contains(&index) {
            return None;
        }
        let start = record.offset as usize;
        let end = start + record.len as usize;
        Some(ChunkBytes { pack, start, end })
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
        match self.load(p) {
            Some(data) => {
                let data = Arc::new(data);
                if self.slots.len() == CACHED_PACKS {
                    self.slots.pop_front();
                }
                self.slots.push_back((p, Arc::clone(&data)));
                Some(data)
            }
            None => {
                self.bad_packs.insert(p);
                None
            }
        }
    }

    fn chunk_range(&self, p: u32) -> std::ops::Range<usize> {
        let start = self.first_chunk.get(p as usize).copied().unwrap_or(0);
        let end = self
            .first_chunk
            .get(p as usize + 1)
            .copied()
            .unwrap_or(start);
        start..end.max(start)
    }

    fn load(&mut self, p: u32) -> Option<Vec<u8>> {
        if let Some(flag) = self.loaded.get_mut(p as usize) {
            *flag = true;
        }
        let manifest = self.parcel.manifest();
        let record = manifest.packs.get(p as usize)?;
        let Some(volume) = self.parcel.volumes().get(&record.volume) else {
            for c in self.chunk_range(p) {
                self.problems.push(Problem::ChunkUnavailable {
                    chunk: c as u32,
                    volume: record.volume,
                    pack: p,
                });
            }
            return None;
        };
        let corrupt = |reason: String| Problem::PackCorrupt {
            volume: record.volume,
            offset: record.offset,
            pack: p,
            reason,
        };
        let file = match self.files.entry(record.volume) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match File::open(&volume.path) {
                Ok(f) => e.insert(f),
                Err(source) => {
                    self.problems.push(Problem::Unreadable {
                        path: volume.path.clone(),
                        source: source.into(),
                    });
                    return None;
                }
            },
        };
        let mut stored = vec![0u8; record.stored_len as usize];
        if let Err(source) = file
            .seek(SeekFrom::Start(record.offset))
            .and_then(|_| file.read_exact(&mut stored))
        {
            self.problems.push(Problem::Unreadable {
                path: volume.path.clone(),
                source: source.into(),
            });
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(&stored).into();
        if digest != record.stored_sha256 {
            self.problems
                .push(corrupt("stored bytes do not match their SHA-256".into()));
            return None;
        }
        let raw = match decompress_exact(&stored, record.raw_len as usize) {
            Ok(raw) => raw,
            Err(e) => {
                self.problems.push(corrupt(e.to_string()));
                return None;
            }
        };
        for c in self.chunk_range(p) {
            let Some(chunk) = manifest.chunks.get(c) else {
                continue;
            };
            let start = chunk.offset as usize;
            let bytes = raw
                .get(start..start + chunk.len as usize)
                .unwrap_or_default();
            let digest: [u8; 32] = Sha256::digest(bytes).into();
            if digest != chunk.sha256 {
                self.bad_chunks.insert(c as u32);
                self.problems.push(Problem::ChunkCorrupt {
                    volume: record.volume,
                    offset: record.offset,
                    chunk: c as u32,
                    pack: p,
                });
            }
        }
        Some(raw)
    }
}
