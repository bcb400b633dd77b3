//! Prints how fast SHA-256 runs on this machine over bytes in the cache and
//! over bytes streamed from main memory, plainly and through
//! `parcel_format::sha256` (which fetches each piece ahead of hashing it):
//! the measurement behind that module.
//!
//! `cargo run --release -p parcel-format --example hash_rate`

use std::time::Instant;

use sha2::{Digest, Sha256};

/// Well past any cache: streamed from main memory.
const STREAM: usize = 512 << 20;
/// Well inside the second-level cache.
const CACHED: usize = 256 << 10;
/// The size hashed at a time: the largest chunk of the default chunking.
const CHUNK: usize = 256 << 10;

fn rate(bytes: usize, start: Instant) -> f64 {
    bytes as f64 / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let mut data = vec![0u8; STREAM];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let cached = data.get(..CACHED).unwrap_or_default();
    let mut sink = 0u8;
    for round in 1..=3 {
        let start = Instant::now();
        for _ in 0..STREAM / CACHED {
            sink ^= Sha256::digest(cached)[0];
        }
        let in_cache = rate(STREAM, start);
        let start = Instant::now();
        for chunk in data.chunks(CHUNK) {
            sink ^= Sha256::digest(chunk)[0];
        }
        let plain = rate(STREAM, start);
        let start = Instant::now();
        for chunk in data.chunks(CHUNK) {
            sink ^= parcel_format::sha256::sha256(chunk)[0];
        }
        let fetched = rate(STREAM, start);
        println!(
            "round {round}: in cache {in_cache:.2} GB/s; from memory: sha2 {plain:.2} GB/s, \
             parcel_format::sha256 {fetched:.2} GB/s"
        );
    }
    std::hint::black_box(sink);
}
