//! Byte buffers the writer's threads hand back for reuse: raw packs on their
//! way to a compressor, compressed packs on their way to the volumes.
//!
//! Without reuse every pack's buffers (4 MiB each by default, above the
//! allocator's mmap threshold) were mapped, faulted in page by page, zeroed
//! and unmapped again: about a tenth of a create's CPU time went to page
//! faults. A pool keeps at most `max` buffers, so it never holds more than
//! the pipeline had in flight at once.

use std::sync::Mutex;

/// A bounded stack of spare buffers, shared between threads.
pub(crate) struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl BufferPool {
    /// A pool that keeps at most `max` spare buffers.
    pub(crate) fn new(max: usize) -> BufferPool {
        BufferPool {
            spare: Mutex::new(Vec::with_capacity(max)),
            max,
        }
    }

    /// An empty buffer: a spare one if there is one, else a new one with
    /// room for `capacity` bytes.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        match spare {
            Some(mut buffer) => {
                buffer.clear();
                buffer.reserve_exact(capacity);
                buffer
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Hands `buffer` back; dropped when the pool is full.
    pub(crate) fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut spare) = self.spare.lock() {
            if spare.len() < self.max {
                spare.push(buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_up_to_its_bound() {
        let pool = BufferPool::new(1);
        let mut a = pool.take(16);
        a.extend_from_slice(b"abc");
        let a_ptr = a.as_ptr();
        pool.give(a);
        pool.give(vec![1, 2, 3]);
        let again = pool.take(16);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), a_ptr);
        assert!(pool.take(16).capacity() >= 16);
    }
}
