//! Getting a volume's bytes onto the medium while the rest of it is still
//! being written, so that the sync that seals the volume waits for the last
//! few MiB and not for all of it.
//!
//! A volume is synced once, when sealed (FORMAT.md §4): until then its bytes
//! sat in the page cache, and that sync wrote them all while every other
//! thread had finished (about 0.35 s for the 234 MiB of a toolchain parcel,
//! a tenth of the whole create). Here a thread of the volume's own syncs it
//! after every [`WINDOW`] written, so the medium takes the bytes while the
//! packs that follow are still being compressed. The library has no unsafe
//! code, so Linux's `sync_file_range` (start writeback without waiting) is
//! not used: a thread calling `fdatasync` does the same with one more handle.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Bytes written between two requests to sync.
const WINDOW: u64 = 32 << 20;

/// A volume file being written, synced in the background as it grows.
pub(crate) struct EarlySync {
    file: File,
    unsynced: u64,
    flusher: Option<Flusher>,
}

/// The thread syncing one volume, and how to ask it to.
struct Flusher {
    requests: SyncSender<()>,
    /// Ends with the number of syncs made, or the first one's error.
    thread: JoinHandle<io::Result<u32>>,
}

impl EarlySync {
    /// Wraps `file`, whose writes this type passes on. Without a second
    /// handle or a thread (the process is at its limits), the volume is
    /// synced only when sealed, as before.
    pub(crate) fn new(file: File) -> EarlySync {
        let flusher = file.try_clone().ok().and_then(|handle| {
            // One request waits while a sync runs: requests made meanwhile
            // are covered by it, as it starts after them.
            let (requests, pending) = sync_channel::<()>(1);
            std::thread::Builder::new()
                .name("volume-sync".into())
                .spawn(move || {
                    let mut syncs = 0u32;
                    for () in pending {
                        handle.sync_data()?;
                        syncs = syncs.saturating_add(1);
                    }
                    Ok(syncs)
                })
                .ok()
                .map(|thread| Flusher { requests, thread })
        });
        EarlySync {
            file,
            unsynced: 0,
            flusher,
        }
    }

    /// Waits for the syncs asked for so far and gives the file back with
    /// the number made. A sync that failed is this call's error: the sync
    /// made when sealing could succeed after it (the kernel reports a failed
    /// writeback once), and the bytes it lost would go unnoticed.
    pub(crate) fn finish(self) -> io::Result<(File, u32)> {
        let syncs = match self.flusher {
            Some(Flusher { requests, thread }) => {
                drop(requests);
                thread
                    .join()
                    .map_err(|_| io::Error::other("the thread syncing the volume panicked"))??
            }
            None => 0,
        };
        Ok((self.file, syncs))
    }
}

impl Write for EarlySync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= WINDOW {
            self.unsynced = 0;
            if let Some(flusher) = &self.flusher {
                // Full: a sync is waiting to start and will cover these
                // bytes. Gone: the thread stopped on an error, which
                // `finish` reports.
                match flusher.requests.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_byte_written_reaches_the_file_across_many_sync_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        let mut out = EarlySync::new(File::create(&path).unwrap());
        assert!(out.flusher.is_some(), "a syncing thread was started");
        let block: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        // About 3.5 windows, so that syncs run while writes go on.
        while (expected.len() as u64) < WINDOW * 7 / 2 {
            out.write_all(&block).unwrap();
            expected.extend_from_slice(&block);
        }
        let (mut file, syncs) = out.finish().unwrap();
        file.flush().unwrap();
        assert!(syncs >= 1, "the file was synced while being written");
        let mut read = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut read).unwrap();
        assert!(
            read == expected,
            "the file holds what was written, in order"
        );
    }
}
