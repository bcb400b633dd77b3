//! The one error type of the `parcel` command and the exit code each error maps to.
//!
//! Every message names the thing at fault (a file, a site, a parcel) and, where
//! there is one, what the user can do about it. `main` prints the message as
//! `parcel: error: <message>` and exits with [`CliError::exit_code`].

use std::io;
use std::path::PathBuf;

use crate::catalog::CatalogError;
use crate::key::KeyFileProblem;

/// Exit code of any error that has no more specific class.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (clap uses the same code for its own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a parcel fails verification: corrupt, incomplete, bad
/// signature or untrusted signer.
pub const EXIT_VERIFICATION: u8 = 3;
/// Exit code when an operation is refused by policy: wrong destination,
/// rollback, conflict, revoked key, fingerprint mismatch, backward status move.
pub const EXIT_POLICY: u8 = 4;

/// Everything that can make a `parcel` command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is well-formed for clap but asks for something meaningless.
    #[error("{0}")]
    Usage(String),

    /// A file-system operation on a named path failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// Standard input or output could not be used.
    #[error("cannot {action} standard {stream}: {source}")]
    Stdio {
        action: &'static str,
        stream: &'static str,
        source: io::Error,
    },

    /// Neither `--home`, `PARCEL_HOME` nor the platform data directory is available.
    #[error("cannot find a data directory for parcel; give --home DIR or set PARCEL_HOME")]
    NoDefaultHome,

    /// The home has no catalog yet.
    #[error(
        "no parcel site in {}; run `parcel site init --code CODE` first, or give --home DIR / set PARCEL_HOME",
        .0.display()
    )]
    NoHome(PathBuf),

    /// `--home` (or `PARCEL_HOME`) names something that is not a directory.
    #[error(
        "{} is not a directory; give --home the directory of a site (or a new directory for `parcel site init`)",
        .0.display()
    )]
    HomeNotDirectory(PathBuf),

    /// The home or its catalog cannot be looked at (permissions, I/O).
    #[error(
        "cannot read site home {}: {source}; run parcel as the user who owns that home, or fix its permissions",
        .path.display()
    )]
    HomeUnreadable { path: PathBuf, source: io::Error },

    /// The home holds a site's secret key but its catalog is gone.
    #[error(
        "{} holds a site's secret key (site.key) but no catalog (catalog.db): the catalog, with the trusted keys, the parcels and the store's contents, was removed or lost; nothing was changed. Restore catalog.db from a backup of this home (only if this home never held a site, move site.key and site.age away and run `parcel site init`)",
        .0.display()
    )]
    CatalogMissing(PathBuf),

    /// `site init` on a home that already has a site.
    #[error(
        "home {} already holds site {code}; a home holds one site (use another --home for another site)",
        .home.display()
    )]
    SiteExists { home: PathBuf, code: String },

    /// `site init` found a secret key file without a site in the catalog.
    #[error(
        "secret key {} already exists but the catalog has no site; if it is a leftover, move it away and run `parcel site init` again",
        .0.display()
    )]
    SecretKeyExists(PathBuf),

    /// The secret key file can be read by other users.
    #[error(
        "secret key {} is readable by other users (mode {mode:04o}); run `chmod 600 {}` and try again",
        .path.display(),
        .path.display()
    )]
    SecretKeyExposed { path: PathBuf, mode: u32 },

    /// The secret key file is not a parcel secret key.
    #[error("secret key {}: {reason}; restore this site's site.key from its backup (a site with a new key must be trusted again by every other site)", .path.display())]
    SecretKeyInvalid { path: PathBuf, reason: &'static str },

    /// The encryption key file (`site.age`) is not usable.
    #[error("encryption key {}: {reason}; restore this site's site.age from its backup (parcels encrypted to this site can be read only with it)", .path.display())]
    EncryptionKeyInvalid { path: PathBuf, reason: &'static str },

    /// The secret key does not belong to the site in the catalog.
    #[error(
        "secret key {} is not the key of site {site} recorded in the catalog; restore the site's own site.key from backup",
        .path.display()
    )]
    SecretKeyMismatch { path: PathBuf, site: String },

    /// A site public key file is malformed.
    #[error("site key file {}: {problem}", .path.display())]
    KeyFile {
        path: PathBuf,
        problem: KeyFileProblem,
    },

    /// `key trust --fingerprint` was given a fingerprint that is not the key's.
    #[error(
        "the key of site {site} in {} has fingerprint {actual}, not {expected} as given; nothing was trusted. Check with site {site} that the file is theirs",
        .path.display()
    )]
    FingerprintMismatch {
        path: PathBuf,
        site: String,
        expected: String,
        actual: String,
    },

    /// A key file names this site itself, or carries this site's own key.
    #[error(
        "{} is a key of site {site}, this site itself; a site does not trust its own key",
        .path.display()
    )]
    OwnSite { path: PathBuf, site: String },

    /// The user answered no (or nothing) when asked to confirm a fingerprint.
    /// `outcome` says what stays as it was.
    #[error("the fingerprint was not confirmed: {outcome}")]
    TrustDeclined { outcome: String },

    /// `sent` on a parcel that came from another site.
    #[error(
        "parcel {parcel} is incoming (from {source_site}); only outgoing parcels are marked sent"
    )]
    NotOutgoing { parcel: String, source_site: String },

    /// An error of the catalog database.
    #[error(transparent)]
    Catalog(#[from] CatalogError),

    /// A value could not be written as JSON.
    #[error("cannot write JSON output: {0}")]
    Json(#[from] serde_json::Error),

    /// A parcel or receipt failed verification (exit 3). `subject` names the
    /// volume, parcel or file.
    #[error("{subject}: verification failed: {reason}")]
    Verification { subject: String, reason: String },

    /// An operation was refused by policy (exit 4). `subject` names the
    /// parcel, package or site.
    #[error("{subject}: refused: {reason}")]
    Refused { subject: String, reason: String },

    /// An operation on a parcel failed for a reason outside the parcel (I/O).
    #[error("{subject}: {reason}")]
    Failed { subject: String, reason: String },

    /// Writing a parcel failed.
    #[error("{0}{advice}", advice = write_advice(.0))]
    Write(#[from] parcel_format::WriteError),

    /// `create` gave its parcel up after `cause` and removed its volumes,
    /// as `removed` says; the exit code is the cause's.
    #[error("{cause}; {removed}; {advice}")]
    GivenUp {
        cause: Box<CliError>,
        removed: String,
        advice: &'static str,
    },

    /// Some of several receipts were not applied (each error printed
    /// already); the exit code is the first failure's.
    #[error(
        "{failed} of {total} receipts were not applied (see above){}",
        if failed < total { "; the others were" } else { "" }
    )]
    SomeReceipts {
        failed: usize,
        total: usize,
        code: u8,
    },

    /// Not enough free space.
    #[error("not enough space on {place}: needs {needed}, {available}; {advice}")]
    NoSpace {
        /// The directory or directories, as the user knows them.
        place: String,
        needed: String,
        available: String,
        advice: &'static str,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // A parcel id or site code that names nothing known (or several
            // parcels) is a wrong argument, as a path that does not exist is.
            CliError::Usage(_)
            | CliError::Catalog(
                CatalogError::UnknownParcel(_)
                | CatalogError::AmbiguousParcel(_)
                | CatalogError::UnknownSite(_),
            ) => EXIT_USAGE,
            CliError::Verification { .. }
            | CliError::KeyFile {
                problem: KeyFileProblem::EncryptionKeyForged { .. },
                ..
            } => EXIT_VERIFICATION,
            CliError::FingerprintMismatch { .. }
            | CliError::OwnSite { .. }
            | CliError::NotOutgoing { .. }
            | CliError::Refused { .. } => EXIT_POLICY,
            CliError::Catalog(
                CatalogError::BadTransition { .. } | CatalogError::DuplicateParcel(_),
            ) => EXIT_POLICY,
            CliError::GivenUp { cause, .. } => cause.exit_code(),
            CliError::SomeReceipts { code, .. } => *code,
            _ => EXIT_FAILURE,
        }
    }

    /// Like [`CliError::io`], for the error of creating a temporary file in
    /// `dir`: tempfile adds the random name it tried, which means nothing to
    /// the user (the directory is named already).
    pub fn temp_in(
        action: &'static str,
        dir: &std::path::Path,
    ) -> impl FnOnce(io::Error) -> CliError {
        let dir = dir.to_path_buf();
        move |err| {
            // tempfile's error type is private; its message is the OS
            // error's followed by " at path <name>".
            let text = err.to_string();
            let message = text.split(" at path ").next().unwrap_or(&text).to_owned();
            let source = io::Error::new(err.kind(), message);
            CliError::Io {
                action,
                path: dir,
                source,
            }
        }
    }

    /// An [`CliError::Io`] for `action` ("read", "create", …) on `path`;
    /// meant for `map_err(CliError::io("read", &path))`.
    pub fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> CliError {
        let path = path.to_path_buf();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    }

    /// Like [`CliError::io`] for a file named on the command line: one that
    /// does not exist is a usage error (exit 2) naming `what` it should be.
    pub fn input(
        action: &'static str,
        path: &std::path::Path,
        what: &'static str,
    ) -> impl FnOnce(io::Error) -> CliError {
        let path = path.to_path_buf();
        move |source| {
            if source.kind() == io::ErrorKind::NotFound {
                CliError::Usage(format!("{} does not exist; give {what}", path.display()))
            } else {
                CliError::Io {
                    action,
                    path,
                    source,
                }
            }
        }
    }
}

/// What to do about a package file that could not be read.
fn write_advice(error: &parcel_format::WriteError) -> &'static str {
    match error {
        parcel_format::WriteError::Read { source, .. }
            if source.kind() == io::ErrorKind::PermissionDenied =>
        {
            "; run parcel as a user who can read the whole package, or fix the file's permissions"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_package_file_says_what_to_do() {
        let denied = CliError::Write(parcel_format::WriteError::Read {
            path: "pkg/secret.conf".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        });
        let text = denied.to_string();
        assert!(text.starts_with("pkg/secret.conf: cannot read: "), "{text}");
        assert!(text.ends_with("or fix the file's permissions"), "{text}");
    }

    #[test]
    fn policy_and_verification_errors_have_their_own_exit_codes() {
        let refused = CliError::Refused {
            subject: "parcel 0123".into(),
            reason: "addressed to NOR".into(),
        };
        assert_eq!(refused.exit_code(), EXIT_POLICY);
        let corrupt = CliError::Verification {
            subject: "volume 2".into(),
            reason: "chunk digest".into(),
        };
        assert_eq!(corrupt.exit_code(), EXIT_VERIFICATION);
        let backward = CliError::Catalog(CatalogError::BadTransition {
            parcel: "0123".into(),
            from: crate::catalog::Status::Confirmed,
            to: crate::catalog::Status::Sent,
        });
        assert_eq!(backward.exit_code(), EXIT_POLICY);
        let unknown = CliError::Catalog(CatalogError::UnknownParcel("0123".into()));
        assert_eq!(unknown.exit_code(), EXIT_USAGE);
        let io = CliError::io("read", std::path::Path::new("x"))(io::Error::other("disk"));
        assert_eq!(io.exit_code(), EXIT_FAILURE);
    }
}
