//! What the operating system says about disks: free space on a file system,
//! the largest file it takes, one `syncfs` to make a whole staged tree
//! durable at once, and dropping a written file from the page cache so that
//! reading it back reads the medium.
//!
//! These are the only calls into libc; std has no portable equivalent of
//! `statvfs`, `statfs`, `syncfs` or `posix_fadvise`, and crates that wrap them would
//! add more than these small, checked calls.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Bytes available to an unprivileged user on the file system holding `path`.
pub fn available_space(path: &Path) -> io::Result<u64> {
    let stat = statvfs(path)?;
    // The field types vary by platform (u32 or u64); widen whatever they are.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// The size of the file system holding `path`, used or not.
pub fn total_space(path: &Path) -> io::Result<u64> {
    let stat = statvfs(path)?;
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_blocks).saturating_mul(u64::from(stat.f_frsize)))
}

fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to
    // writable memory of the right type; statvfs initialises it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so `stat` is initialised.
    Ok(unsafe { stat.assume_init() })
}

/// The largest file the file system holding `path` takes, where it is less
/// than a volume may be: FAT (vfat, as USB sticks come formatted) holds files
/// of at most 4 GiB − 1 bytes. `None` for file systems without such a limit
/// that matters here (ext4, XFS, exFAT, NTFS, …).
pub fn largest_file(path: &Path) -> io::Result<Option<u64>> {
    /// FAT's limit: a file's length is a 32-bit field.
    const FAT_LARGEST_FILE: u64 = (4 << 30) - 1;
    #[cfg(target_os = "linux")]
    {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points
        // to writable memory of the right type; statfs initialises it on
        // success.
        let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statfs returned 0, so `stat` is initialised.
        let stat = unsafe { stat.assume_init() };
        // The field's type varies by platform; widen both sides.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        let fat = i64::from(stat.f_type) == libc::MSDOS_SUPER_MAGIC as i64;
        Ok(fat.then_some(FAT_LARGEST_FILE))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, FAT_LARGEST_FILE);
        Ok(None)
    }
}

/// Flushes every written byte of the file system holding `path` to stable
/// storage: one call for a whole staged package instead of one fsync per file.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    // SAFETY: the descriptor is valid for the life of `dir`.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to forget the cached pages of a file already synced, so
/// that the next read of it comes from the medium, not from memory. Only a
/// hint: a kernel may keep the pages, and reading back still works.
pub fn drop_cached(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: the descriptor is valid for the life of `file`; offset 0 and
    // length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Makes a directory's entries (a rename into it) durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Bytes as people read them: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
