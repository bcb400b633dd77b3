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
//! for a 719 MiB volume. The same thread now does it behind the writer:
//! once a window is synced it reads it back with direct I/O (`O_DIRECT`),
//! which the system serves from the medium rather than its cache, having
//! first asked it to drop those pages (some file systems take `O_DIRECT`
//! and read through the cache all the same; dropping alone is not enough:
//! a page that straddles the range's end stays, and pages may be 2 MiB).
//! Where direct I/O is refused (other systems, some file systems), the
//! volume is not read back here, and the caller reads it back whole once
//! sealed, as before.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::limits::VOLUME_PREFIX;
use crate::manifest::Hash;
use crate::sha256;

/// Bytes written between two requests to sync.
const WINDOW: u64 = 16 << 20;

/// Bytes read back at a time.
const READ: usize = 1 << 20;

/// What direct I/O wants offsets, lengths and buffers aligned to: the
/// largest logical block size of the devices in use.
const ALIGN: usize = 4096;

/// Bytes at the start of a volume body whose hash is kept apart: sealing
/// writes the header record into the volume's first block, which the
/// medium then takes again with the body bytes that share it, so
/// `verify_written` reads these bytes once more after sealing. 1 MiB covers
/// the largest blocks and records file systems use by default.
pub(crate) const HEAD: u64 = 1 << 20;

/// A volume file being written, synced in the background as it grows.
pub(crate) struct EarlySync {
    file: File,
    written: u64,
    flusher: Option<Flusher>,
}

/// The thread syncing one volume, and how to ask it to. Dropped without
/// [`Flusher::finish`] (the writing failed), it still waits for the thread.
struct Flusher {
    requests: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<Synced>>,
    /// The first error the thread met; it stops then.
    failed: Arc<Mutex<Option<io::Error>>>,
    /// Whether the thread reads the volume back.
    reading_back: bool,
}

/// A request to the syncing thread: the bytes written so far, and whether
/// that is all of them.
#[derive(Clone, Copy)]
struct Request {
    written: u64,
    last: bool,
}

/// What the syncing thread did.
pub(crate) struct Synced {
    /// Syncs made while the volume was written, the last one included
    /// (what the tests check that the syncing happened by).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) syncs: u32,
    /// The SHA-256 of the volume body (all but the first [`VOLUME_PREFIX`]
    /// bytes), then of its first [`HEAD`] bytes, as read back from the
    /// medium; `None` when not read back.
    pub(crate) read_back: Option<(Hash, Hash)>,
}

impl EarlySync {
    /// Wraps `file`, whose writes this type passes on. With `read_back`, a
    /// second handle on the same volume (the file itself may be open for
    /// writing only), the body is read back through it as it is synced.
    ///
    /// Without a second handle or a thread (the process is at its limits),
    /// the volume is synced only when sealed, as before, and not read back
    /// here.
    pub(crate) fn new(file: File, read_back: Option<File>) -> EarlySync {
        let flusher = file.try_clone().ok().and_then(|handle| {
            let back = read_back.and_then(ReadingBack::new);
            let reading_back = back.is_some();
            // One request waits while a sync runs: requests made meanwhile
            // are covered by the next one, which says how far to go.
            let (requests, pending) = sync_channel::<Request>(1);
            let failed = Arc::new(Mutex::new(None));
            let slot = Arc::clone(&failed);
            std::thread::Builder::new()
                .name("volume-sync".into())
                .spawn(move || sync_as_written(&handle, back, &pending, &slot))
                .ok()
                .map(|thread| Flusher {
                    requests: Some(requests),
                    thread: Some(thread),
                    failed,
                    reading_back,
                })
        });
        EarlySync {
            file,
            written: 0,
            flusher,
        }
    }

    /// Waits for the syncing thread (which, reading back, first syncs and
    /// reads what is left) and gives the file back with what it did. A sync
    /// that failed is this call's error: the sync made when sealing could
    /// succeed after it (the kernel reports a failed writeback once), and
    /// the bytes it lost would go unnoticed.
    pub(crate) fn finish(mut self) -> io::Result<(File, Synced)> {
        let synced = match self.flusher.take() {
            Some(flusher) => flusher.finish(self.written)?,
            None => Synced {
                syncs: 0,
                read_back: None,
            },
        };
        Ok((self.file, synced))
    }
}

impl Flusher {
    fn finish(mut self, written: u64) -> io::Result<Synced> {
        if let Some(requests) = self.requests.take() {
            // Without a read-back the seal's sync covers the rest. Refused
            // only when the thread has stopped, on an error taken below.
            if self.reading_back {
                let _ = requests.send(Request {
                    written,
                    last: true,
                });
            }
        }
        let synced = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(synced)) => synced,
            Some(Err(_)) | None => {
                return Err(io::Error::other("the thread syncing the volume panicked"))
            }
        };
        match self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(synced),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The error the syncing thread met, if any, as a copy: the error itself
/// stays for [`Flusher::finish`] (should a caller retry a failed write, the
/// volume still fails).
fn copy_of_error(slot: &Mutex<Option<io::Error>>) -> Option<io::Error> {
    let failed = slot.lock().unwrap_or_else(PoisonError::into_inner);
    failed.as_ref().map(|e| match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    })
}

/// The syncing thread: for each request, syncs the file, then (reading
/// back) reads back what was synced. The first error goes to `failed` and
/// ends it.
fn sync_as_written(
    handle: &File,
    mut back: Option<ReadingBack>,
    requests: &Receiver<Request>,
    failed: &Mutex<Option<io::Error>>,
) -> Synced {
    let mut syncs = 0u32;
    // Whether the last request came: without it (the writing failed) what
    // was read back is not the whole volume.
    let mut complete = false;
    let result = (|| -> io::Result<()> {
        for Request { written, last } in requests {
            handle.sync_data()?;
            syncs = syncs.saturating_add(1);
            let Some(reader) = &mut back else { continue };
            // Nothing more is written after the last request: the rest is
            // read to the end of the file. Before it, the medium may take
            // again the unit (page, block, record) holding the end of what
            // was written, with the bytes before that end that share it:
            // those are read with the next window, once a whole
            // [`HEAD`]-aligned stretch, larger than any such unit, lies
            // behind them.
            let to = if last {
                written
            } else {
                written - written % HEAD
            };
            if !reader.read_to(to)? {
                back = None;
            }
            if last {
                complete = true;
                break;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Synced {
            syncs,
            read_back: back.filter(|_| complete).map(ReadingBack::hashes),
        },
        Err(e) => {
            *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            Synced {
                syncs,
                read_back: None,
            }
        }
    }
}

/// Reading a volume back from the medium, in order, hashing its body and
/// the first [`HEAD`] bytes of it.
struct ReadingBack {
    file: File,
    pos: u64,
    body: Sha256,
    head: Sha256,
    /// [`READ`] bytes and room to align them.
    buf: Vec<u8>,
}

impl ReadingBack {
    /// Reads through `file` with direct I/O; `None` where the system refuses it.
    fn new(file: File) -> Option<ReadingBack> {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
            let flags = fcntl_getfl(&file).ok()?;
            fcntl_setfl(&file, flags | OFlags::DIRECT).ok()?;
            Some(ReadingBack {
                file,
                pos: 0,
                body: Sha256::new(),
                head: Sha256::new(),
                buf: Vec::new(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            None
        }
    }

    /// Reads bytes `pos..end` back from the medium (`pos` is a multiple of
    /// [`ALIGN`]; `end` is too, or the end of the file). False when direct
    /// reads are refused after all (the volume is then read back whole once
    /// sealed); an error when the medium fails or holds fewer bytes.
    fn read_to(&mut self, end: u64) -> io::Result<bool> {
        if end <= self.pos {
            return Ok(true);
        }
        if self.buf.is_empty() {
            self.buf = vec![0; READ + ALIGN];
        }
        // Some file systems take `O_DIRECT` and still serve reads from the
        // cache (data journalling, compressed extents, FUSE): the synced
        // pages are dropped first, so that there too the medium is read.
        drop_cached(&self.file, self.pos, end - self.pos);
        let start = self.buf.as_ptr().align_offset(ALIGN);
        while self.pos < end {
            let left = end - self.pos;
            let want = left.min(READ as u64).div_ceil(ALIGN as u64) as usize * ALIGN;
            let Some(buf) = self.buf.get_mut(start..start + want) else {
                return Ok(false);
            };
            let n = match self.file.read_at(buf, self.pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_refused(&e) => return Ok(false),
                Err(e) => return Err(e),
            };
            // A read cut short at a block boundary goes on from there; one
            // that ends elsewhere, or reads nothing, met the end of the file
            // before `end`: the volume reads back shorter than written. A
            // file system may also cut a direct read short where the file
            // goes on (NFS, FUSE): then the volume is read back whole once
            // sealed instead.
            if n == 0 || ((n as u64) < left && n % ALIGN != 0) {
                if self.file.metadata().is_ok_and(|m| m.len() >= end) {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the volume reads back {} bytes long, {end} were written",
                        self.pos + n as u64
                    ),
                ));
            }
            let n = (n as u64).min(left);
            let read = buf.get(..n as usize).unwrap_or_default();
            let body = VOLUME_PREFIX.saturating_sub(self.pos).min(n) as usize;
            let head = (VOLUME_PREFIX + HEAD).saturating_sub(self.pos).min(n) as usize;
            sha256::update(&mut self.body, read.get(body..).unwrap_or_default());
            self.head
                .update(read.get(body..head.max(body)).unwrap_or_default());
            self.pos += n;
        }
        Ok(true)
    }

    fn hashes(self) -> (Hash, Hash) {
        (self.body.finalize().into(), self.head.finalize().into())
    }
}

/// Asks the system to forget its copy of bytes `offset..offset + len` of
/// `file` (advice: a system without it is left alone).
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

/// Whether `e` is the system refusing direct I/O (alignment, or a file
/// system without it), rather than the medium failing.
fn is_refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

impl Write for EarlySync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(flusher) = &self.flusher {
            // The syncing thread failed: stop here rather than at the end
            // of the volume.
            if let Some(e) = copy_of_error(&flusher.failed) {
                return Err(e);
            }
        }
        let n = self.file.write(buf)?;
        let before = self.written;
        self.written += n as u64;
        // This write crossed a multiple of WINDOW: ask for a sync.
        if before / WINDOW != self.written / WINDOW {
            if let Some(requests) = self.flusher.as_ref().and_then(|f| f.requests.as_ref()) {
                // Full: a request is waiting and the next one covers these
                // bytes. Gone: the thread stopped on an error, reported at
                // the next write and by `finish`.
                let request = Request {
                    written: self.written,
                    last: false,
                };
                match requests.try_send(request) {
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
    /// pieces, reading back through `reader`; returns what was written and
    /// what `finish` said.
    fn write_volume(path: &std::path::Path, reader: Option<File>) -> (Vec<u8>, Synced) {
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

    /// A directory on a file system with direct I/O, or `None` (the tests
    /// that need it then say so and pass: tmpfs has none).
    fn direct_io_dir() -> Option<tempfile::TempDir> {
        for base in [std::env::temp_dir(), std::env::current_dir().unwrap()] {
            let dir = tempfile::tempdir_in(base).unwrap();
            let probe = dir.path().join("probe");
            File::create(&probe).unwrap();
            if ReadingBack::new(File::open(&probe).unwrap()).is_some() {
                return Some(dir);
            }
        }
        eprintln!("no file system with direct I/O here: read-back not tested");
        None
    }

    #[test]
    fn every_byte_written_reaches_the_file_and_is_synced_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        File::create(&path).unwrap();
        let (expected, synced) = write_volume(&path, None);
        let mut read = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut read).unwrap();
        assert!(
            read == expected,
            "the file holds what was written, in order"
        );
        assert!(
            synced.syncs >= 2,
            "synced while written, not only at the seal: {}",
            synced.syncs
        );
        assert!(synced.read_back.is_none(), "not asked to read back");
    }

    #[test]
    fn the_body_and_its_head_are_read_back_while_written() {
        let Some(dir) = direct_io_dir() else { return };
        let path = dir.path().join("volume");
        File::create(&path).unwrap();
        let reader = File::open(&path).unwrap();
        let (expected, synced) = write_volume(&path, Some(reader));
        // The windows were read back as they were synced, and the rest at the end.
        assert!(synced.syncs >= 2, "{} syncs", synced.syncs);
        let body = expected.get(VOLUME_PREFIX as usize..).unwrap();
        let head = body.get(..HEAD as usize).unwrap();
        let want = (Sha256::digest(body).into(), Sha256::digest(head).into());
        assert_eq!(synced.read_back, Some(want));
    }

    #[test]
    fn a_volume_that_reads_back_shorter_than_written_is_an_error() {
        let Some(dir) = direct_io_dir() else { return };
        let path = dir.path().join("volume");
        std::fs::write(&path, [7u8; 5000]).unwrap();
        let mut back = ReadingBack::new(File::open(&path).unwrap()).unwrap();
        let err = back.read_to(3 * ALIGN as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string()
                .contains("5000 bytes long, 12288 were written"),
            "{err}"
        );
    }

    #[test]
    fn a_read_back_that_fails_fails_the_volume() {
        let Some(dir) = direct_io_dir() else { return };
        let path = dir.path().join("volume");
        File::create(&path).unwrap();
        // A handle that cannot read: every read back fails (EBADF).
        let reader = OpenOptions::new().write(true).open(&path).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let mut out = EarlySync::new(file, Some(reader));
        let block = vec![1u8; 1 << 20];
        let mut stopped = None;
        for _ in 0..((3 * WINDOW) >> 20) {
            if let Err(e) = out.write_all(&block) {
                stopped = Some(e);
                break;
            }
        }
        let err = match stopped {
            // The writer stopped at a write once the thread had failed ...
            Some(e) => e,
            // ... or, the thread being slow, `finish` reports it.
            None => out.finish().err().expect("finish fails"),
        };
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error()),
            "the read's own error: {err}"
        );
    }
}
