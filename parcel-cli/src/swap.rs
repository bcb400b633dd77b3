//! Copying a parcel's spooled volumes onto media swapped at a terminal: one
//! `--out` that cannot hold the whole parcel, the user inserting the next
//! medium at the same place when asked. Each copy is checked against the
//! spooled volume it came from, read back from the medium itself, before it
//! takes its final name.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parcel_format::volume::WriterLock;

use crate::disk::{available_space, drop_cached, human_bytes, sync_dir};
use crate::error::CliError;
use crate::interrupt::{gated, Writing};
use crate::output;

/// Copies spooled volumes (`what`: "volume", "parity volume") onto the
/// medium mounted at `out`, one after the other, asking for the next medium
/// whenever the next volume does not fit, `out` is gone, `out` is no longer
/// a mounted medium when it was one at the start (a medium removed leaves
/// the bare directory of the disk beneath, which must not take the parcel),
/// or the medium turns out full, read-only or failing as it is written. A
/// volume larger than the file system takes (FAT32) stops the copy: the
/// spooled volumes' size is fixed. Each copy is written under a temporary name and synced; with
/// `read_back`, it is then read back past the page cache and compared with
/// the spooled volume (which was itself read back after writing), and a
/// copy that differs is removed and another medium asked for; then it is
/// renamed. Files are made and renamed through the interruption gate, and
/// `copying` learns of each volume placed (it removes them if the copy is
/// interrupted, and says how many left on media swapped out since).
pub fn copy_to_media(
    spooled: &[PathBuf],
    out: &Path,
    stem: &str,
    what: &str,
    read_back: bool,
    copying: &Writing,
) -> Result<Vec<PathBuf>, CliError> {
    let mounted = is_mount_point(out);
    let mut placed = Vec::with_capacity(spooled.len());
    for (i, volume) in spooled.iter().enumerate() {
        let len = fs::metadata(volume)
            .map_err(CliError::io("read", volume))?
            .len();
        let which = format!("{} {} of {}", capitalized(what), i + 1, spooled.len());
        let name = volume.file_name().map(PathBuf::from).unwrap_or_default();
        let target = out.join(&name);
        let temp = out.join(format!(".{}.partial", name.display()));
        let stop = |reason: String| CliError::Failed {
            subject: "create".into(),
            reason,
        };
        // Why the medium in the drive cannot take this volume, said before
        // asking for another; `None` once the volume is on it.
        let mut why: Option<String> = None;
        loop {
            if let Some(why) = why.take() {
                if !ask_for_medium(&why, out)? {
                    return Err(stop(format!(
                        "stopped at {what} {} of {}",
                        i + 1,
                        spooled.len()
                    )));
                }
            }
            let free = match medium_at(out, mounted) {
                Ok(free) => free,
                Err(problem) => {
                    why = Some(format!("{which}: {problem}."));
                    continue;
                }
            };
            if free < len {
                why = Some(format!(
                    "{which} needs {}; {} has {} free.",
                    human_bytes(len),
                    out.display(),
                    human_bytes(free)
                ));
                continue;
            }
            // Under the writer's lock, as the writer's own temporary files
            // are, so that another create's clean-up leaves the copy alone.
            let lock = match gated(|| WriterLock::acquire(out, stem)) {
                Ok(lock) => lock,
                Err(e) if medium_at_fault(&e) => {
                    why = Some(format!(
                        "{which}: the medium at {} cannot be written ({e}).",
                        out.display()
                    ));
                    continue;
                }
                Err(e) => return Err(CliError::io("lock in", out)(e)),
            };
            let copied = copy_synced(volume, &temp).and_then(|()| {
                if read_back {
                    same_on_medium(volume, &temp)
                } else {
                    Ok(true)
                }
            });
            if !matches!(copied, Ok(true)) {
                let _ = fs::remove_file(&temp);
            }
            match copied {
                Ok(true) => {}
                Ok(false) => {
                    why = Some(format!(
                        "{which} did not read back from the medium at {} as it was written (the medium may be faulty); the copy was removed.",
                        out.display()
                    ));
                    continue;
                }
                // The spooled volume's size is fixed: no other medium of
                // that file system takes it either.
                Err(e) if e.raw_os_error() == Some(libc::EFBIG) => {
                    return Err(stop(format!(
                        "{which} is larger than the file system at {} takes ({e}); run create again with a smaller --volume-size (fat32 for a FAT32 medium)",
                        out.display()
                    )));
                }
                Err(e) if medium_at_fault(&e) => {
                    why = Some(format!(
                        "{which} could not be written to or read back from the medium at {} ({e}): it may be full, read-only or faulty; the copy was removed.",
                        out.display()
                    ));
                    continue;
                }
                Err(e) => return Err(CliError::io("copy a volume to", &temp)(e)),
            }
            gated(|| fs::rename(&temp, &target)).map_err(CliError::io("rename", &target))?;
            copying.placed(&target);
            drop(lock);
            sync_dir(out).map_err(CliError::io("sync", out))?;
            break;
        }
        fs::remove_file(volume).map_err(CliError::io("remove", volume))?;
        eprintln!(
            "{what} {} of {} written to {}{}",
            i + 1,
            spooled.len(),
            target.display(),
            if read_back { " and read back" } else { "" }
        );
        placed.push(target);
    }
    Ok(placed)
}

/// The free space of the medium at `out`, or why there is no usable medium
/// there: `out` missing (a medium not yet mounted, or one without the folder
/// `--out` names), or, when `out` was a mount point at the start, `out` now
/// a directory of the file system beneath it (the medium removed).
fn medium_at(out: &Path, mounted: bool) -> Result<u64, String> {
    match fs::metadata(out) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", out.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "there is nothing at {} (a medium not mounted yet, or one without that folder: create it)",
                out.display()
            ))
        }
        Err(e) => return Err(format!("cannot look at {}: {e}", out.display())),
    }
    if mounted && !is_mount_point(out) {
        return Err(format!(
            "no medium is mounted at {} now (it is a directory of the disk beneath)",
            out.display()
        ));
    }
    available_space(out)
        .map_err(|e| format!("cannot read the free space of {}: {e}", out.display()))
}

/// Whether a file system is mounted at `dir`: `dir` and its parent are on
/// different devices (the root directory counts as one).
fn is_mount_point(dir: &Path) -> bool {
    let parent = dir.join("..");
    match (fs::metadata(dir), fs::metadata(&parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev() || d.ino() == p.ino(),
        _ => false,
    }
}

/// Full, read-only or failing: another medium may take the volume.
fn medium_at_fault(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EROFS) | Some(libc::EIO) | Some(libc::EDQUOT)
    ) || e.kind() == std::io::ErrorKind::StorageFull
}

/// Says why the medium at `out` cannot take the next volume and waits for
/// the user to insert another (Enter: true) or stop (q, or the end of
/// input: false).
fn ask_for_medium(why: &str, out: &Path) -> Result<bool, CliError> {
    eprint!(
        "{why}\nInsert the next medium at {} and press Enter (or type q and Enter to stop): ",
        out.display()
    );
    let _ = std::io::stderr().flush();
    let answer = output::read_answer()?;
    Ok(!answer.is_none_or(|a| a.eq_ignore_ascii_case("q")))
}

/// Copies `from` to a new file `to` and syncs it.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut file = gated(|| File::create_new(to))?;
    std::io::copy(&mut File::open(from)?, &mut file)?;
    file.sync_all()
}

/// Whether `copy` (synced) holds the same bytes as `original`, reading the
/// copy after asking the kernel to drop it from the page cache, so that what
/// is compared is what the medium holds. Compared byte for byte rather than
/// by hash: both files are at hand, and a comparison is cheaper.
fn same_on_medium(original: &Path, copy: &Path) -> std::io::Result<bool> {
    // Only a hint (see drop_cached): where it is not taken, the comparison
    // still catches a copy that differs in the cache.
    let _ = drop_cached(copy);
    let mut a = File::open(original)?;
    let mut b = File::open(copy)?;
    let mut left = vec![0u8; 1 << 20];
    let mut right = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&mut a, &mut left)?;
        let m = read_full(&mut b, &mut right)?;
        if left.get(..n) != right.get(..m) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `word` with its first letter a capital.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_compared_with_its_original_to_the_last_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = dir.path().join("a");
        let copy = dir.path().join("b");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&original, &bytes).expect("write");
        copy_synced(&original, &copy).expect("copy");
        assert!(same_on_medium(&original, &copy).expect("compare"));
        // One byte changed in the second MiB, then one byte missing at the end.
        let mut changed = bytes.clone();
        changed[1_500_000] ^= 1;
        fs::write(&copy, &changed).expect("write");
        assert!(!same_on_medium(&original, &copy).expect("compare"));
        fs::write(&copy, &bytes[..bytes.len() - 1]).expect("write");
        assert!(!same_on_medium(&original, &copy).expect("compare"));
        let mut longer = bytes.clone();
        longer.push(0);
        fs::write(&copy, &longer).expect("write");
        assert!(!same_on_medium(&original, &copy).expect("compare"));
    }

    #[test]
    fn a_medium_removed_from_its_mount_point_is_not_taken_for_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("usb");
        // Missing: said, with what to do.
        let why = medium_at(&out, false).expect_err("missing");
        assert!(why.contains("there is nothing at"), "{why}");
        // A plain directory where a mount point was: refused.
        fs::create_dir(&out).expect("mkdir");
        assert!(!is_mount_point(&out));
        let why = medium_at(&out, true).expect_err("not mounted");
        assert!(why.contains("no medium is mounted at"), "{why}");
        // A plain directory that was one from the start: its free space.
        assert!(medium_at(&out, false).is_ok());
        // The root of the file system counts as mounted.
        assert!(is_mount_point(Path::new("/")));
    }
}
