//! Files written where the user says (`key export --out`, `verify
//! --repair-request`): whole or not at all, and never over a file that is
//! not one of their own kind (a mistyped path could name a volume, the
//! catalog or the site's secret key).

use std::io::Write;
use std::path::Path;

use crate::error::CliError;

/// Refuses `path`, given as `option`, when something is there that is not
/// `what` (`is_kind` says whether the file there is), or when it is a
/// directory. A file of the same kind is replaced: writing again is a rerun.
pub fn check_replaceable(
    path: &Path,
    option: &str,
    what: &str,
    is_kind: impl FnOnce(&Path) -> bool,
) -> Result<(), CliError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let problem = if meta.is_dir() {
        "is a directory; give a file name".to_owned()
    } else if !meta.is_file() || !is_kind(path) {
        format!(
            "already exists and is not {what}; {what} is written over nothing else (it could be a volume, the catalog or a key): give a new file name"
        )
    } else {
        return Ok(());
    };
    Err(CliError::Usage(format!(
        "{option} {} {problem}",
        path.display()
    )))
}

/// Writes `bytes` to `path` through a synced temporary file in the same
/// directory, readable by everyone (these files are public: they travel to
/// other sites), so that a crash never leaves half a file under its name.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).map_err(CliError::temp_in("write a file in", dir))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(CliError::io("write", path))?;
    // Set after creation: a mode given at creation would be cut by the umask.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(CliError::io("set permissions of", temp.path()))?;
    temp.persist(path)
        .map_err(|err| CliError::io("write", path)(err.error))?;
    Ok(())
}
