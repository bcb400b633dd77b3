//! The signed receipt `parcel import` writes for the source site: where it
//! goes (`--receipt FILE`, else beside the first volume, else the home's
//! `receipts/`), checked before anything is imported, and written whole or
//! not at all, over nothing but an earlier receipt of the same parcel.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parcel_format::read::Parcel;
use parcel_format::receipt::{Receipt, SignedReceipt};

use crate::disk::{available_space, human_bytes, sync_dir};
use crate::error::CliError;
use crate::home::Home;
use crate::media::dir_writable;
use crate::output;

/// Free space a receipt needs on its filesystem: the receipt is about 500
/// bytes; two blocks of the largest common size.
const RECEIPT_ROOM: u64 = 8 * 1024;

/// Refuses, before anything is imported, a `--receipt` path the receipt
/// could not be written to: an existing file (a receipt is never written
/// over one: it could be a volume being imported, or the catalog), a
/// directory, in a directory that does not exist, is not writable or has no
/// room. (Found only after the import, the failure would report an import
/// that in fact succeeded.)
pub(crate) fn check_receipt_path(path: &Path) -> Result<(), CliError> {
    let dir = parent_dir(path);
    let problem = if path.is_dir() {
        "is a directory; give a file in a writable directory".to_owned()
    } else if existing_at(path) == Existing::Other {
        "already exists and is no parcel receipt; a receipt is written over nothing else (it could be a volume or the catalog): give a new file name".to_owned()
    } else if !dir.is_dir() {
        "is in a directory that does not exist; give a file in a writable directory".to_owned()
    } else if !dir_writable(dir) {
        "is in a directory this user cannot write to; give a file in a writable directory"
            .to_owned()
    } else {
        match available_space(dir) {
            Ok(free) if free < RECEIPT_ROOM => format!(
                "is on a disk with {} free, less than the {} a receipt may need; give a file on another disk",
                human_bytes(free),
                human_bytes(RECEIPT_ROOM)
            ),
            _ => return Ok(()),
        }
    };
    Err(CliError::Usage(format!(
        "--receipt {} {problem} (nothing was imported)",
        path.display()
    )))
}

/// What is at a `--receipt` path before the receipt is written there.
#[derive(Debug, PartialEq)]
pub(crate) enum Existing {
    Nothing,
    /// A valid receipt (signature checked) for the parcel with this id:
    /// replaced only by the same parcel's receipt (a rerun).
    ReceiptOf(String),
    /// Anything else: never replaced.
    Other,
}

pub(crate) fn existing_at(path: &Path) -> Existing {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Existing::Nothing;
    };
    if !meta.is_file() || meta.len() > parcel_format::receipt::MAX_RECEIPT_LEN as u64 {
        return Existing::Other;
    }
    fs::read(path)
        .ok()
        .and_then(|bytes| SignedReceipt::parse(&bytes).ok())
        .map_or(Existing::Other, |r| {
            Existing::ReceiptOf(r.receipt.parcel_id.to_string())
        })
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// How this run writes receipts: as which site, and where the user asked
/// for them (`--receipt`).
pub(crate) struct ReceiptWriter<'a> {
    pub home: &'a Home,
    /// `--receipt FILE`, if given.
    pub explicit: Option<&'a Path>,
    /// This site's code, the receipt's destination site.
    pub site: &'a str,
    /// This site's signing key.
    pub key: &'a ed25519_dalek::SigningKey,
    /// When this run began: a receipt's temporary file last changed before
    /// then was left by a run that was killed while writing it.
    pub started: SystemTime,
}

impl ReceiptWriter<'_> {
    /// Writes this site's signed receipt for `parcel` at `explicit`, else
    /// next to the first volume when that directory is writable, else in
    /// `<home>/receipts/`; atomically, and durably before it returns.
    pub(crate) fn write(
        &self,
        volumes: &[PathBuf],
        parcel: &Parcel,
        imported: i64,
    ) -> Result<PathBuf, CliError> {
        let manifest = parcel.manifest();
        let receipt = Receipt {
            parcel_id: manifest.parcel_id,
            source_site: manifest.source_site.clone(),
            destination_site: self.site.to_owned(),
            package_id: manifest.package_id.clone(),
            package_version: manifest.package_version,
            tree_digest: manifest.tree_digest(),
            index_sha256: parcel.index_sha256(),
            imported,
        };
        let text = receipt.to_signed_text(self.key);
        let id = receipt.parcel_id.to_string();
        let name = receipt_file_name(manifest, parcel.is_encrypted());
        if let Some(path) = self.explicit {
            // Checked before the import; no-clobber against a file made since.
            let rerun = existing_at(path) == Existing::ReceiptOf(id.clone());
            self.save(path, &text, rerun)?;
            return Ok(path.to_path_buf());
        }
        // Beside the volumes (a full or read-only medium, or another file
        // under that name, falls back to the home), where an earlier receipt
        // of this parcel is replaced.
        let ours = |path: &Path| match existing_at(path) {
            Existing::Nothing => Some(false),
            Existing::ReceiptOf(other) if other == id => Some(true),
            _ => None,
        };
        // An encrypted parcel's receipt was once named as a plain one's, which
        // shows its package and version: this one replaces it.
        let unname_older = |dir: &Path| {
            if parcel.is_encrypted() {
                let older = dir.join(receipt_file_name(manifest, false));
                if existing_at(&older) == Existing::ReceiptOf(id.clone()) {
                    let _ = fs::remove_file(&older);
                }
            }
        };
        if let Some(dir) = volumes.first().map(|v| parent_dir(v)) {
            let path = dir.join(&name);
            let room = available_space(dir).is_ok_and(|free| free >= RECEIPT_ROOM);
            if let (true, Some(replace)) = (room, ours(&path)) {
                if self.save(&path, &text, replace).is_ok() {
                    unname_older(dir);
                    return Ok(path);
                }
            }
        }
        let dir = self.home.receipts_dir();
        fs::create_dir_all(&dir).map_err(CliError::io("create", &dir))?;
        let path = dir.join(&name);
        let replace = ours(&path).ok_or_else(|| {
            CliError::Usage(format!(
                "{} is in the way of this parcel's receipt and is no receipt of it; move it away and run the import again",
                path.display()
            ))
        })?;
        self.save(&path, &text, replace)?;
        unname_older(&dir);
        Ok(path)
    }

    /// Writes `text` at `path` through a synced temporary file, readable by
    /// all (a receipt is no secret, and whoever carries the medium back reads
    /// it); over an existing file only if `replace`. The directory is synced
    /// after the rename: the catalog then notes where the receipt is, and a
    /// medium pulled out right after must still hold it. The temporary files
    /// that killed runs left there go first.
    fn save(&self, path: &Path, text: &str, replace: bool) -> Result<(), CliError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = parent_dir(path);
        sweep_receipt_temps(dir, self.started);
        let tmp = tempfile::Builder::new()
            .prefix(RECEIPT_TEMP_PREFIX)
            .rand_bytes(RECEIPT_TEMP_RANDOM)
            .tempfile_in(dir)
            .map_err(CliError::temp_in("write a receipt in", dir))?;
        // Through the `File`: `NamedTempFile`'s own errors name its random name.
        let mut file = tmp.as_file();
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.set_permissions(fs::Permissions::from_mode(0o644)))
            .and_then(|()| file.sync_all())
            .map_err(CliError::io("write", path))?;
        let saved = if replace {
            tmp.persist(path).map(drop)
        } else {
            tmp.persist_noclobber(path).map(drop)
        };
        saved.map_err(|e| CliError::io("write", path)(e.error))?;
        // The receipt is in place, synced: a directory that cannot be synced
        // may lose its name on a power loss, which is said, but it was
        // written (an error here would write a second one elsewhere, or
        // report an import that succeeded as failed).
        if let Err(e) = sync_dir(dir) {
            output::warn(&format!(
                "the receipt {} is written, but its directory could not be synced ({e}): check that it is still there before the medium goes back",
                path.display()
            ));
        }
        Ok(())
    }
}

/// The receipt's file name: `PACKAGE-vVERSION-XXXXXXXX.receipt`, or
/// `parcel-XXXXXXXX.receipt` for an encrypted parcel, whose volumes are
/// named so that the medium going back does not show the package id and
/// version (FORMAT.md §2.5); `XXXXXXXX` the parcel id's first 8 hex digits.
fn receipt_file_name(manifest: &parcel_format::Manifest, encrypted: bool) -> String {
    let id = manifest.parcel_id.to_string();
    let short = id.get(..8).unwrap_or(&id);
    if encrypted {
        format!("parcel-{short}.receipt")
    } else {
        format!(
            "{}-v{}-{short}.receipt",
            manifest.package_id, manifest.package_version
        )
    }
}

/// How the temporary file of a receipt being written is named: this
/// prefix and [`RECEIPT_TEMP_RANDOM`] random letters and digits, so that
/// one a killed run left is told from anything else in the directory.
const RECEIPT_TEMP_PREFIX: &str = ".parcel-receipt-";
const RECEIPT_TEMP_RANDOM: usize = 6;

/// Removes from `dir` the temporary files of receipts that killed runs
/// left: regular files named as [`RECEIPT_TEMP_PREFIX`] says, last changed
/// before `before` (one that a run started since is writing is left
/// alone). Best effort: one left over does no harm but take room.
fn sweep_receipt_temps(dir: &Path, before: SystemTime) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix(RECEIPT_TEMP_PREFIX))
            .is_some_and(|random| {
                random.len() == RECEIPT_TEMP_RANDOM
                    && random.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        // `DirEntry::metadata` does not follow a symbolic link.
        let stale = ours
            && entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t < before));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_stale_receipt_temporary_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        let file_at = |name: &str, modified: SystemTime| {
            let file = fs::File::create(dir.path().join(name)).expect("create");
            file.set_modified(modified).expect("set mtime");
        };
        file_at(".parcel-receipt-a1B2c3", started - hour);
        // Written by a run that started since.
        file_at(".parcel-receipt-d4E5f6", started + hour);
        // Not of this shape, or not a regular file.
        file_at(".parcel-receipt-notes.txt", started - hour);
        file_at(".tmp3dOdF9", started - hour);
        file_at("tools-v1-0123abcd.receipt", started - hour);
        fs::create_dir(dir.path().join(".parcel-receipt-g7H8i9")).expect("dir");
        std::os::unix::fs::symlink(
            "tools-v1-0123abcd.receipt",
            dir.path().join(".parcel-receipt-j0K1l2"),
        )
        .expect("symlink");

        sweep_receipt_temps(dir.path(), started);

        let mut left: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".parcel-receipt-d4E5f6",
                ".parcel-receipt-g7H8i9",
                ".parcel-receipt-j0K1l2",
                ".parcel-receipt-notes.txt",
                ".tmp3dOdF9",
                "tools-v1-0123abcd.receipt",
            ]
        );
    }
}
