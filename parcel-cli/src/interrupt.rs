//! What Ctrl-C (SIGINT), SIGTERM and SIGHUP do: the command stops, and one
//! that is writing a parcel's volumes first removes the files it had not
//! finished, instead of leaving hidden temporary files (`.STEM.NNNN.partial`)
//! that take room on a medium until the next `create` there sweeps them.
//! That holds for the three writers: `create` (and `forward`) writing the
//! volumes, `create` copying spooled volumes onto media swapped at a
//! terminal, and `create --repair` rebuilding lost volumes.
//!
//! The signals are taken by a thread of their own (signal-hook), so the
//! clean-up runs as ordinary code, not in a signal handler. The writer makes
//! and renames its files through a [`GatedSink`], under the same lock the
//! clean-up takes and keeps until the process ends: once the clean-up has
//! started, no volume file is made or renamed any more, so nothing made
//! after it looked is left behind. Should the writer be stuck holding the
//! lock (a stalled medium), a second signal ends the process at once. The
//! process then ends by the signal itself, as a shell expects of Ctrl-C.
//! Signals ignored when parcel started (`nohup`, `&` in a script) stay
//! ignored.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use parcel_format::volume::VolumeSink;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::output;

/// A parcel being written: its volume files' stem and the directories they
/// go to.
struct Unfinished {
    dirs: Vec<PathBuf>,
    stem: String,
    job: Job,
    /// Not recorded in the catalog yet: volumes under their final names go
    /// too (nobody can ship or import a parcel the catalog does not know).
    finals: bool,
    /// Volumes of it copied onto media (swapped at a terminal): those no
    /// longer there when it is cleaned up left with an earlier medium.
    placed: Vec<PathBuf>,
    /// `parcel`, with `--home` when this home needs it, for the advice.
    command: String,
}

/// Which writer an interruption stopped: it decides what is said.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Job {
    Create,
    CopyToMedia,
    Repair,
}

/// The parcel being written, if any; its lock is the gate of [`GatedSink`].
static UNFINISHED: Mutex<Option<Unfinished>> = Mutex::new(None);

fn gate() -> MutexGuard<'static, Option<Unfinished>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes SIGINT, SIGTERM and SIGHUP from now on (those not ignored): the
/// first cleans up what [`Writing`] names, then the process ends by that
/// signal; a second one while the clean-up waits ends it at once. Without
/// the thread (it cannot be made), the signals keep their default action.
pub fn install() {
    let taken: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&signal| !ignored(signal))
        .collect();
    let Ok(mut signals) = Signals::new(&taken) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            // Kept until the end: the writer waits at its next file.
            let mut held = loop {
                match UNFINISHED.try_lock() {
                    Ok(held) => break held,
                    Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {}
                }
                if let Some(again) = signals.pending().next() {
                    die_by(again);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            if let Some(unfinished) = held.take() {
                let elsewhere = elsewhere(&unfinished);
                let removed = clean_up(&unfinished);
                say_interrupted(&unfinished, removed, &elsewhere);
            }
            die_by(signal);
        });
}

/// Whether `signal` was set to be ignored when parcel started.
fn ignored(signal: i32) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `current`,
    // which is zeroed memory of the right type.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled in by sigaction when it succeeded.
    rc == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Ends the process by `signal`'s default action (so that a shell sees a
/// command killed by Ctrl-C, and stops a loop), else exits 128 + its number.
fn die_by(signal: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal)
}

/// While alive, an interruption removes the parcel's unfinished files.
pub struct Writing;

impl Writing {
    /// The parcel whose volumes are named `stem` is being written into
    /// `dirs`; `command` is how the advice names `parcel` for this home.
    pub fn start(dirs: &[PathBuf], stem: &str, command: String) -> Writing {
        Writing::begin(dirs.to_vec(), stem, Job::Create, true, command)
    }

    /// Lost volumes of the recorded parcel `stem` are being rebuilt into
    /// `out`: only their temporary files and lock go if it is interrupted
    /// (any finished one is a good volume of a known parcel).
    pub fn start_repair(out: &Path, stem: &str) -> Writing {
        Writing::begin(
            vec![out.to_owned()],
            stem,
            Job::Repair,
            false,
            String::new(),
        )
    }

    fn begin(dirs: Vec<PathBuf>, stem: &str, job: Job, finals: bool, command: String) -> Writing {
        *gate() = Some(Unfinished {
            dirs,
            stem: stem.to_owned(),
            job,
            finals,
            placed: Vec::new(),
            command,
        });
        Writing
    }

    /// The parcel, written (and read back) into `spool`, is now being
    /// copied onto the media mounted one after the other at `out`; it is not
    /// recorded yet, so its volumes in both places go if it is interrupted.
    /// The same registration changes, so there is no moment in which an
    /// interruption would leave the spooled volumes.
    pub fn into_copy(self, spool: &Path, out: &Path) -> Writing {
        if let Some(u) = gate().as_mut() {
            u.dirs = vec![spool.to_owned(), out.to_owned()];
            u.job = Job::CopyToMedia;
            u.finals = true;
        }
        self
    }

    /// A volume of the parcel was copied onto the medium now at `path`.
    pub fn placed(&self, path: &Path) {
        if let Some(u) = gate().as_mut() {
            u.placed.push(path.to_owned());
        }
    }

    /// Gives up the parcel now (its copy onto media failed or was stopped):
    /// removes its files as an interruption would, and returns a sentence
    /// that says what was removed and what is left to do.
    pub fn abandon(self) -> String {
        // The gate is held through the clean-up: a signal meanwhile waits
        // for it, then finds nothing left to do.
        let mut held = gate();
        let Some(u) = held.take() else {
            return String::new();
        };
        let elsewhere = elsewhere(&u);
        let removed = clean_up(&u);
        format!(
            "parcel {} was not made; {removed} of its file(s) removed from {}{elsewhere}",
            shown(&u.stem),
            list(&u.dirs),
        )
    }

    /// Runs `record` (which records the parcel in the catalog) where no
    /// interruption can come between it and keeping the finished volumes;
    /// they are kept only if it succeeds.
    pub fn recording<T, E>(&self, record: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut held = gate();
        let value = record()?;
        if let Some(u) = held.as_mut() {
            u.finals = false;
        }
        Ok(value)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        *gate() = None;
    }
}

/// A [`VolumeSink`] that makes, renames and removes its files only through
/// the gate (see the module's documentation).
pub struct GatedSink<'a>(pub &'a mut dyn VolumeSink);

impl VolumeSink for GatedSink<'_> {
    fn create(&mut self, number: u32) -> io::Result<File> {
        let _open = gate();
        self.0.create(number)
    }

    fn reopen(&mut self, number: u32) -> io::Result<File> {
        self.0.reopen(number)
    }

    fn commit(&mut self, count: u32) -> io::Result<Vec<PathBuf>> {
        let _open = gate();
        self.0.commit(count)
    }

    fn abort(&mut self) {
        let _open = gate();
        self.0.abort();
    }

    fn create_parity(&mut self, number: u32) -> io::Result<File> {
        let _open = gate();
        self.0.create_parity(number)
    }

    fn committed_parity(&self) -> Vec<PathBuf> {
        self.0.committed_parity()
    }
}

/// Runs `f` (which makes or renames a volume file outside a [`GatedSink`])
/// through the gate: never while a clean-up runs, nor after one.
pub fn gated<T>(f: impl FnOnce() -> T) -> T {
    let _open = gate();
    f()
}

/// Runs `f` through the gate, as [`gated`], and then, in the same hold,
/// says that nothing is being written any more: an interruption after it
/// removes nothing.
pub fn gated_last<T>(f: impl FnOnce() -> T) -> T {
    let mut held = gate();
    let value = f();
    *held = None;
    value
}

/// Removes the files of the parcel being written; returns how many.
fn clean_up(u: &Unfinished) -> usize {
    let mut removed = 0usize;
    for dir in &u.dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(kind) = file_of(&name.to_string_lossy(), &u.stem) else {
                continue;
            };
            if kind == FileOf::Volume && !u.finals {
                continue;
            }
            // The lock is the writer's, not one of the parcel's files.
            if fs::remove_file(entry.path()).is_ok() && kind != FileOf::Lock {
                removed += 1;
            }
        }
    }
    removed
}

/// What a file is to the parcel whose volumes are named after `stem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOf {
    /// `.STEM.lock`, a writer's lock.
    Lock,
    /// `.STEM.0001.partial`, `.STEM.par-0001.partial` (the writer's) or
    /// `.STEM.001-of-009.tar.partial` (a copy onto media).
    Temporary,
    /// `STEM.001-of-009.tar` or `STEM.par-001-of-002.tar`.
    Volume,
}

/// What the file `name` is to the parcel of `stem`, if anything: its names
/// exactly, so that another parcel's whose stem begins with this one (a
/// package id may hold dots) is never taken for it.
fn file_of(name: &str, stem: &str) -> Option<FileOf> {
    let (hidden, rest) = match name.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let rest = rest.strip_prefix(stem)?.strip_prefix('.')?;
    // The rest with each run of digits written '#'.
    let mut shape = String::with_capacity(rest.len());
    for c in rest.chars() {
        if !c.is_ascii_digit() {
            shape.push(c);
        } else if !shape.ends_with('#') {
            shape.push('#');
        }
    }
    match (hidden, shape.as_str()) {
        (true, "lock") => Some(FileOf::Lock),
        (true, "#.partial" | "par-#.partial" | "#-of-#.tar.partial" | "par-#-of-#.tar.partial") => {
            Some(FileOf::Temporary)
        }
        (false, "#-of-#.tar" | "par-#-of-#.tar") => Some(FileOf::Volume),
        _ => None,
    }
}

/// Says on stderr what an interruption stopped and what [`clean_up`] removed.
fn say_interrupted(u: &Unfinished, removed: usize, elsewhere: &str) {
    let dirs = list(&u.dirs);
    // Off the line a progress bar or a prompt may have left unfinished.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let text = match (u.job, u.finals) {
        (Job::Repair, _) => format!(
            "interrupted: the lost volumes of parcel {} were not all rebuilt; {removed} unfinished file(s) removed from {dirs}; run the same `create --repair` again into an empty directory",
            shown(&u.stem)
        ),
        (_, true) => format!(
            "interrupted: parcel {} was not made; {removed} of its file(s) removed from {dirs}{elsewhere}",
            shown(&u.stem),
        ),
        (Job::CopyToMedia, false) => format!(
            "interrupted: parcel {} is made and recorded, its volumes copied onto the media",
            shown(&u.stem)
        ),
        (Job::Create, false) => format!(
            "interrupted while reading back parcel {}: it is recorded, but its volumes in {dirs} were not checked; run `{} verify` on them before they are shipped",
            shown(&u.stem), u.command
        ),
    };
    output::warn(&text);
}

/// What to do with volumes copied onto media swapped out since (looked at
/// before [`clean_up`], which removes those still here).
fn elsewhere(u: &Unfinished) -> String {
    let gone = u
        .placed
        .iter()
        .filter(|p| p.symlink_metadata().is_err())
        .count();
    match gone {
        0 => String::new(),
        n => format!(
            "; {n} of its volume(s) were copied onto earlier media: they belong to no parcel, delete them there"
        ),
    }
}

fn list(dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// A parcel's file stem as messages name it: `tools-v1-3c4ea301`, or for an
/// encrypted parcel (`parcel-3c4ea301`) just its short id.
fn shown(stem: &str) -> &str {
    stem.strip_prefix("parcel-").unwrap_or(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_parcel_are_known_by_their_exact_names() {
        let stem = "tools.x-v2-0123abcd";
        for (name, kind) in [
            (".tools.x-v2-0123abcd.lock", Some(FileOf::Lock)),
            (".tools.x-v2-0123abcd.0003.partial", Some(FileOf::Temporary)),
            (
                ".tools.x-v2-0123abcd.par-0001.partial",
                Some(FileOf::Temporary),
            ),
            (
                ".tools.x-v2-0123abcd.003-of-010.tar.partial",
                Some(FileOf::Temporary),
            ),
            (
                ".tools.x-v2-0123abcd.par-001-of-002.tar.partial",
                Some(FileOf::Temporary),
            ),
            ("tools.x-v2-0123abcd.003-of-010.tar", Some(FileOf::Volume)),
            (
                "tools.x-v2-0123abcd.par-001-of-002.tar",
                Some(FileOf::Volume),
            ),
            ("tools.x-v2-0123abcd.1000-of-1200.tar", Some(FileOf::Volume)),
            // Another parcel whose package id begins with this one's stem.
            ("tools.x-v2-0123abcd.y-v1-99999999.001-of-001.tar", None),
            (".tools.x-v2-0123abcd.y-v1-99999999.lock", None),
            (".tools.x-v2-0123abcd.y-v1-99999999.0001.partial", None),
            // Other parcels, and files that only look alike.
            ("tools.x-v2-0123abce.001-of-001.tar", None),
            ("tools.x-v2-0123abcd.001-of-001.tar.bak", None),
            (".tools.x-v2-0123abcd.001-of-001.tar", None),
            ("tools.x-v2-0123abcd.lock", None),
            ("tools.x-v2-0123abcd.0001.partial", None),
            ("tools.x-v2-0123abcd", None),
            ("notes.txt", None),
        ] {
            assert_eq!(file_of(name, stem), kind, "{name}");
        }
    }
}
