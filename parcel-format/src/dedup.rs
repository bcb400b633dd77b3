//! The writer's table of the chunks it has seen: a chunk's SHA-256 → its
//! reference in the file table, so that content met twice is stored once.
//!
//! A slot holds only the 4-byte reference; the hash it stands for is read
//! back from the chunk list the writer keeps anyway. A map from hash to
//! reference would hold every hash a second time: 1,000,000 chunks took
//! about 75 MB that way against about 10 MB here (FORMAT.md §8.1).
//! `hashbrown::HashTable` is the map without keys this needs (std's
//! `HashMap` always stores its keys).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::manifest::Hash;

/// Chunks seen so far, by SHA-256. The hasher is keyed at random, so a
/// package cannot be made to pile its chunks into a few slots.
pub(crate) struct KnownChunks {
    hasher: RandomState,
    table: HashTable<u32>,
}

impl KnownChunks {
    pub(crate) fn new() -> KnownChunks {
        KnownChunks {
            hasher: RandomState::new(),
            table: HashTable::new(),
        }
    }

    /// The reference of the chunk whose hash is `sha256`, if seen;
    /// `hash_of` gives the hash a reference stands for.
    pub(crate) fn get<'a>(
        &self,
        sha256: &Hash,
        hash_of: impl Fn(u32) -> Option<&'a Hash>,
    ) -> Option<u32> {
        let hash = self.hasher.hash_one(sha256);
        self.table
            .find(hash, |&r| hash_of(r) == Some(sha256))
            .copied()
    }

    /// Records `reference` for a chunk not seen before, whose hash
    /// `hash_of(reference)` already gives.
    pub(crate) fn insert<'a>(&mut self, reference: u32, hash_of: impl Fn(u32) -> Option<&'a Hash>) {
        let hasher = &self.hasher;
        let rehash = |&r: &u32| hash_of(r).map_or(0, |h| hasher.hash_one(h));
        let hash = rehash(&reference);
        self.table.insert_unique(hash, reference, rehash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_chunk_by_its_hash_and_nothing_else() {
        let hashes: Vec<Hash> = (0..10_000u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_le_bytes());
                h
            })
            .collect();
        let hash_of = |r: u32| hashes.get(r as usize);
        let mut known = KnownChunks::new();
        for r in 0..5_000u32 {
            assert_eq!(known.get(&hashes[r as usize], hash_of), None);
            known.insert(r, hash_of);
        }
        for r in 0..5_000u32 {
            assert_eq!(known.get(&hashes[r as usize], hash_of), Some(r));
        }
        for r in 5_000..10_000u32 {
            assert_eq!(known.get(&hashes[r as usize], hash_of), None);
        }
    }
}
