//! Getting a volume's bytes onto the medium while the rest of it is still
//! being written, so that the sync that seals the volume waits for the last
//! few MiB and not for all of it; and, when asked, reading them back from
//! the medium as they land, so that the read-back after writing need not
//! read the whole volume again.
//!
//! A volume is synced once, when sealed (FORMAT.md §2.4): until then its
//! bytes sat in the page cache, and that sync wrote them all while every
//! other thread had finished (about 0.35 s for the 234 MiB of a toolchain
//! parcel, a tenth of the whole create). Here a thread of the volume's own
//! syncs it after every [`WINDOW`] written, so the medium takes the bytes
//! while the packs that follow are still being compressed. The library has
//! no unsafe code, so Linux's `sync_file_range` (start writeback without
//! waiting) is not used: a thread calling `fdatasync` does the same with one
//! more handle.
//!
//! The read-back (FORMAT.md §7.4, "the read-back after `parcel create`")
//! hashed every volume body once the parcel was sealed, on one core: 0.5 s
//! for a 719 MiB volume. The same thread now does it behind the writer: once
//! a window is synced it asks the system to drop those pages from its cache
//! and reads them back, so the bytes hashed are the medium's, not the copy
//! in memory the writer made.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::limits::VOLUME_PREFIX;
use crate::manifest::Hash;

/// Bytes written between two requests to sync.
const WINDOW: u64 = 32 << 20;

/// Bytes read back at a time.
const READ: usize = 1 << 20;

/// What a window's read-back stops short of: the page holding the end of
/// what was written may be written again (the next bytes share it) and
/// then cannot be dropped from the cache, so it is read with the next
/// window. 64 KiB covers the largest page size in use.
const PAGE_ROUND: u64 = 64 << 10;

/// A volume file being written, synced in the background as it grows.
pub(crate) struct EarlySync {
    file: File,
    written: u64,
    unsynced: u64,
    flusher: Option<Flusher>,
}

/// The thread syncing one volume, and how to ask it to: each request is the
/// number of bytes written so far.
struct Flusher {
    requests: SyncSender<u64>,
    thread: JoinHandle<io::Result<Synced>>,
}

/// What the syncing thread did.
pub(crate) struct Synced {
    /// Syncs made while the volume was written, the last one included
    /// (what the tests check that the syncing happened by).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) syncs: u32,
    /// The SHA-256 of the volume body (all but the first
    /// [`VOLUME_PREFIX`] bytes) as read back from the medium, when asked.
    pub(crate) body_read_back: Option<Hash>,
}

impl EarlySync {
    /// Wraps `file`, whose writes this type passes on. With `read_back`, a
    /// handle the same volume can be read through (the file itself may be
    /// open for writing only), the body is read back as it is synced.
    ///
    /// Without a second handle or a thread (the process is at its limits),
    /// the volume is synced only when sealed, as before, and not read back
    /// here ([`Synced::body_read_back`] is `None`: the caller reads it back
    /// whole).
    pub(crate) fn new(file: File, read_back: Option<File>) -> EarlySync {
        let flusher = file.try_clone().ok().and_then(|handle| {
            // One request waits while a sync runs: requests made meanwhile
            // are covered by the next one, which says how far to go.
            let (requests, pending) = sync_channel::<u64>(1);
            std::thread::Builder::new()
                .name("volume-sync".into())
                .spawn(move || sync_as_written(&handle, read_back, pending.into_iter()))
                .ok()
                .map(|thread| Flusher { requests, thread })
        });
        EarlySync {
            file,
            written: 0,
            unsynced: 0,
            flusher,
        }
    }

    /// Syncs what is left, waits for the syncing thread, and gives the file
    /// back with what it did. A sync that failed is this call's error: the
    /// sync made when sealing could succeed after it (the kernel reports a
    /// failed writeback once), and the bytes it lost would go unnoticed.
    pub(crate) fn finish(self) -> io::Result<(File, Synced)> {
        let synced = match self.flusher {
            Some(Flusher { requests, thread }) => {
                // Refused only when the thread has stopped on an error,
                // which joining it gives.
                let _ = requests.send(self.written);
                drop(requests);
                thread
                    .join()
                    .map_err(|_| io::Error::other("the thread syncing the volume panicked"))??
            }
            None => Synced {
                syncs: 0,
                body_read_back: None,
            },
        };
        Ok((self.file, synced))
    }
}

/// The syncing thread: for each request, syncs the file, then (with
/// `read_back`) drops what was synced from the cache and reads it back.
fn sync_as_written(
    handle: &File,
    read_back: Option<File>,
    requests: impl Iterator<Item = u64>,
) -> io::Result<Synced> {
    let mut syncs = 0u32;
    let mut back = read_back.map(ReadBack::new);
    let mut last = 0u64;
    for written in requests {
        handle.sync_data()?;
        syncs = syncs.saturating_add(1);
        last = written;
        if let Some(back) = &mut back {
            // All but the last page, which may change.
            back.read_to(written - written % PAGE_ROUND)?;
        }
    }
    let body_read_back = match back {
        Some(mut back) => {
            // The final request: nothing more is written, every page is clean.
            back.read_to(last)?;
            Some(back.hasher.finalize().into())
        }
        None => None,
    };
    Ok(Synced {
        syncs,
        body_read_back,
    })
}

/// Reading a volume back from the medium, in order, hashing its body.
struct ReadBack {
    file: File,
    pos: u64,
    hasher: Sha256,
    buf: Vec<u8>,
}

impl ReadBack {
    fn new(file: File) -> ReadBack {
        ReadBack {
            file,
            pos: 0,
            hasher: Sha256::new(),
            buf: Vec::new(),
        }
    }

    /// Drops bytes `pos..end` (synced) from the page cache and reads them
    /// back from the medium.
    fn read_to(&mut self, end: u64) -> io::Result<()> {
        if end <= self.pos {
            return Ok(());
        }
        drop_cached(&self.file, self.pos, end - self.pos);
        if self.buf.is_empty() {
            self.buf = vec![0; READ];
        }
        while self.pos < end {
            let want = (end - self.pos).min(READ as u64) as usize;
            let buf = self.buf.get_mut(..want).unwrap_or_default();
            let n = self.file.read_at(buf, self.pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the volume reads back {} bytes long, {end} were written",
                        self.pos
                    ),
                ));
            }
            let read = buf.get(..n).unwrap_or_default();
            let skip = VOLUME_PREFIX.saturating_sub(self.pos).min(n as u64) as usize;
            self.hasher.update(read.get(skip..).unwrap_or_default());
            self.pos += n as u64;
        }
        Ok(())
    }
}

/// Asks the system to forget its copy of bytes `offset..offset + len` of
/// `file`, so that reading them goes to the medium. Advice only: where it is
/// not taken (another system, a file system that keeps its own cache) the
/// bytes are read from memory, as the read-back after writing always did
/// there.
fn drop_cached(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{fadvise, Advice};
        let _ = fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            Advice::DontNeed,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

impl Write for EarlySync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.unsynced += n as u64;
        if self.unsynced >= WINDOW {
            self.unsynced = 0;
            if let Some(flusher) = &self.flusher {
                // Full: a request is waiting and the next one covers these
                // bytes. Gone: the thread stopped on an error, which
                // `finish` reports.
                match flusher.requests.try_send(self.written) {
                    Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
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
    use std::fs::OpenOptions;
    use std::io::Read;

    /// Writes about 3.5 windows through an [`EarlySync`] in odd-sized
    /// pieces; returns what was written and what `finish` said.
    fn write_volume(path: &std::path::Path, read_back: bool) -> (Vec<u8>, Synced) {
        let reader = read_back.then(|| {
            OpenOptions::new()
                .read(true)
                .open(path)
                .expect("a second handle")
        });
        let file = OpenOptions::new().write(true).open(path).unwrap();
        let mut out = EarlySync::new(file, reader);
        assert!(out.flusher.is_some(), "a syncing thread was started");
        let block: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        while (expected.len() as u64) < WINDOW * 7 / 2 {
            out.write_all(&block).unwrap();
            expected.extend_from_slice(&block);
        }
        let (mut file, synced) = out.finish().unwrap();
        file.flush().unwrap();
        (expected, synced)
    }

    #[test]
    fn every_byte_written_reaches_the_file_and_is_synced_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        File::create(&path).unwrap();
        let (expected, synced) = write_volume(&path, false);
        let mut read = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut read).unwrap();
        assert!(
            read == expected,
            "the file holds what was written, in order"
        );
        assert!(
            synced.syncs >= 2,
            "synced while written and at the end, not only at the end: {}",
            synced.syncs
        );
        assert_eq!(synced.body_read_back, None, "not asked to read back");
    }

    #[test]
    fn the_body_read_back_is_the_hash_of_all_but_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        File::create(&path).unwrap();
        let (expected, synced) = write_volume(&path, true);
        let body = expected.get(VOLUME_PREFIX as usize..).unwrap();
        let want: Hash = Sha256::digest(body).into();
        assert_eq!(synced.body_read_back, Some(want));
    }

    #[test]
    fn a_volume_that_reads_back_shorter_than_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        std::fs::write(&path, [7u8; 5000]).unwrap();
        let mut back = ReadBack::new(File::open(&path).unwrap());
        let err = back.read_to(9000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string()
                .contains("5000 bytes long, 9000 were written"),
            "{err}"
        );
    }
}
