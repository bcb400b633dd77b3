//! The site home: where it is, what lives in it (catalog, secret key, package
//! store, staging, receipts, lock), and the [`Context`] every command runs in.
//!
//! A home holds exactly one site. Its directory and the secret key are private
//! to the user (0700 and 0600); the key is refused if it ever becomes readable
//! by others.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use parcel_format::encrypt::Identity;
use parcel_format::sign::{PublicKey, SecretKey};

use crate::catalog::{Catalog, SiteRecord};
use crate::error::CliError;
use crate::output;

/// What every command that works on a site gets: the site's home and the
/// global options.
pub struct Context {
    /// The resolved site home.
    pub home: Home,
    /// `--quiet`: no progress bars, hints or notes; results and warnings still show.
    pub quiet: bool,
    /// The `--home` a command in a hint needs: the home, when it came
    /// neither from `PARCEL_HOME` nor from the default.
    pub hint_home: Option<PathBuf>,
}

impl Context {
    /// The context for `--home` (already falling back to `PARCEL_HOME` through
    /// clap) or else the platform data directory.
    pub fn resolve(home: Option<&Path>, quiet: bool) -> Result<Context, CliError> {
        let from_env = std::env::var_os("PARCEL_HOME").map(PathBuf::from);
        let home = Home::resolve(home)?;
        // The home a bare `parcel` would use: PARCEL_HOME, else the default.
        let bare = match from_env.filter(|env| !env.as_os_str().is_empty()) {
            Some(env) => std::path::absolute(env).ok(),
            None => Home::resolve(None).ok().map(|default| default.root),
        };
        let hint_home = (bare.as_ref() != Some(&home.root)).then(|| home.root.clone());
        Ok(Context {
            home,
            quiet,
            hint_home,
        })
    }

    /// `parcel`, with this home's `--home` when it needs one, for a command
    /// to copy from a hint.
    pub fn parcel_command(&self) -> String {
        match &self.hint_home {
            Some(home) => format!("parcel --home {}", shell_word(&home.display().to_string())),
            None => "parcel".to_owned(),
        }
    }

    /// A hint or note on stderr, unless `--quiet`.
    pub fn note(&self, text: &str) {
        output::note(self.quiet, text);
    }
}

/// `word` as one shell word: as it is when it holds only characters no shell
/// treats specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Length of the secret key file: the raw 32-byte Ed25519 seed.
const SECRET_KEY_LEN: usize = 32;

/// A site home directory and the paths inside it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `explicit` (from `--home` or `PARCEL_HOME`), else the
    /// platform data directory (`~/.local/share/parcel` on Linux). The path is
    /// made absolute so that messages name it unambiguously.
    pub fn resolve(explicit: Option<&Path>) -> Result<Home, CliError> {
        let root = match explicit.filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => path.to_path_buf(),
            None => directories::ProjectDirs::from("", "", "parcel")
                .ok_or(CliError::NoDefaultHome)?
                .data_dir()
                .to_path_buf(),
        };
        let root = std::path::absolute(&root).map_err(CliError::io("resolve", &root))?;
        Ok(Home { root })
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<home>/catalog.db`, the SQLite catalog.
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    /// `<home>/site.key`, this site's secret signing key (mode 0600).
    pub fn secret_key_path(&self) -> PathBuf {
        self.root.join("site.key")
    }

    /// `<home>/site.age`, this site's age X25519 identity, which decrypts the
    /// parcels encrypted to it (mode 0600; an age identity file).
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("site.age")
    }

    /// `<home>/packages/`, the store of imported package versions.
    pub fn packages_dir(&self) -> PathBuf {
        self.root.join("packages")
    }

    /// `<home>/staging/`, where imports are extracted before the atomic switch.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// `<home>/receipts/`, receipts written for parcels this site imported.
    pub fn receipts_dir(&self) -> PathBuf {
        self.root.join("receipts")
    }

    /// `<home>/sent/`, the index of every parcel this site created, so that
    /// a later delta parcel can build on what a destination holds.
    pub fn sent_dir(&self) -> PathBuf {
        self.root.join("sent")
    }

    /// `<home>/lock`, the file [`Home::lock_exclusive`] locks.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// `<home>/read-back/<id>.lock`, locked while `create` reads parcel `id`
    /// back from its media (see [`Home::reading_back`]).
    fn read_back_lock_path(&self, parcel_id: &str) -> PathBuf {
        self.root
            .join("read-back")
            .join(format!("{parcel_id}.lock"))
    }

    /// Says that parcel `parcel_id` is being read back from its media, until
    /// the guard is dropped: `sent` refuses it meanwhile (the read-back may
    /// yet find the volumes damaged and withdraw the parcel). Take it before
    /// the parcel is recorded, so that no `sent` sees the record without it.
    pub fn reading_back(&self, parcel_id: &str) -> Result<ReadingBack, CliError> {
        let path = self.read_back_lock_path(parcel_id);
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(CliError::io("create directory", dir))?;
        }
        // A killed create's files are not held: they go (the next create
        // does not wait for them). One that another create made and has not
        // locked yet may go too: that create finds it gone and makes it again.
        if let Some(dir) = path.parent() {
            for entry in fs::read_dir(dir).map_err(CliError::io("list", dir))? {
                let Ok(entry) = entry else { continue };
                // Only files (opening a FIFO would wait for ever).
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                if let Ok(stale) = File::open(entry.path()) {
                    if stale.try_lock().is_ok() && same_file(&stale, &entry.path()) {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        for _ in 0..8 {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(CliError::io("create lock file", &path))?;
            file.lock().map_err(CliError::io("lock", &path))?;
            if same_file(&file, &path) {
                return Ok(ReadingBack { path, _file: file });
            }
        }
        Err(CliError::Failed {
            subject: format!("lock file {}", path.display()),
            reason: "it keeps being removed; is another parcel command cleaning up there?".into(),
        })
    }

    /// Whether a running `create` is reading parcel `parcel_id` back (holds
    /// the lock of [`Home::reading_back`]); a lock file a killed `create`
    /// left is not held, and means nothing.
    pub fn is_being_read_back(&self, parcel_id: &str) -> Result<bool, CliError> {
        let path = self.read_back_lock_path(parcel_id);
        // A create sweeping stale lock files holds a killed one's for an
        // instant: held that briefly, it is not a read-back.
        for _ in 0..5 {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(CliError::io("open lock file", &path)(e)),
            };
            match file.try_lock_shared() {
                Ok(()) => return Ok(false),
                Err(fs::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(fs::TryLockError::Error(e)) => return Err(CliError::io("lock", &path)(e)),
            }
        }
        Ok(true)
    }

    /// Creates the home and its subdirectories, private to the user (0700).
    /// An existing home keeps its mode; a warning says so if others can enter it.
    pub fn create_dirs(&self) -> Result<(), CliError> {
        self.check_root()?;
        if self.root.is_dir() {
            let meta = fs::metadata(&self.root).map_err(CliError::io("inspect", &self.root))?;
            if meta.mode() & 0o077 != 0 {
                output::warn(&format!(
                    "home {} can be entered by other users (mode {:04o}); consider `chmod 700 {}`",
                    self.root.display(),
                    meta.mode() & 0o7777,
                    self.root.display()
                ));
            }
        }
        for dir in [
            self.root.clone(),
            self.packages_dir(),
            self.staging_dir(),
            self.receipts_dir(),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(CliError::io("create directory", &dir))?;
        }
        Ok(())
    }

    /// Opens the catalog of an existing home. A home without a catalog is an
    /// error that says to run `parcel site init` (the catalog is not created
    /// behind the user's back in a mistyped `--home`).
    pub fn open_catalog(&self) -> Result<Catalog, CliError> {
        self.check_root()?;
        let path = self.catalog_path();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Catalog::open(&path)?),
            Ok(_) => Err(self.no_catalog()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.no_catalog()),
            Err(source) => Err(CliError::HomeUnreadable {
                path: self.root.clone(),
                source,
            }),
        }
    }

    /// Tells apart the ways a home can be unusable before anything looks
    /// inside it: absent (no site yet, said by the caller), not a directory,
    /// or not readable by this user (which would otherwise read as "no site
    /// here" and send the user to `site init`).
    fn check_root(&self) -> Result<(), CliError> {
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(CliError::HomeNotDirectory(self.root.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CliError::HomeUnreadable {
                path: self.root.clone(),
                source,
            }),
        }
    }

    /// Why there is no catalog: no site here yet, or a site's catalog lost
    /// (its secret key is still there).
    pub fn no_catalog(&self) -> CliError {
        if fs::symlink_metadata(self.secret_key_path()).is_ok() {
            CliError::CatalogMissing(self.root.clone())
        } else {
            CliError::NoHome(self.root.clone())
        }
    }

    /// Opens the catalog, creating it if needed; only for `site init`.
    pub fn create_catalog(&self) -> Result<Catalog, CliError> {
        Ok(Catalog::open(&self.catalog_path())?)
    }

    /// Writes a new secret key to `site.key`. The file has mode 0600 from
    /// its creation, so it is never readable by others, not even briefly; it
    /// appears whole or not at all, and an existing key is never overwritten.
    pub fn write_secret_key(&self, key: &SecretKey) -> Result<(), CliError> {
        write_private_file(&self.secret_key_path(), key.as_bytes())
    }

    /// Reads this site's secret key. Refuses a key file that is group- or
    /// world-readable (naming the `chmod` to run), that is not a regular file,
    /// or that is not exactly 32 bytes.
    pub fn load_secret_key(&self) -> Result<SecretKey, CliError> {
        let path = self.secret_key_path();
        let file = File::open(&path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound && !self.catalog_path().exists() {
                CliError::NoHome(self.root.clone())
            } else if err.kind() == std::io::ErrorKind::NotFound {
                CliError::SecretKeyInvalid {
                    path: path.clone(),
                    reason: "missing",
                }
            } else {
                CliError::io("open secret key", &path)(err)
            }
        })?;
        check_private(&file, &path)?;
        let mut bytes = Vec::with_capacity(SECRET_KEY_LEN);
        file.take(SECRET_KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(CliError::io("read secret key", &path))?;
        let seed: [u8; SECRET_KEY_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| CliError::SecretKeyInvalid {
                    path: path.clone(),
                    reason: "not a parcel secret key (it must be exactly 32 bytes)",
                })?;
        Ok(SecretKey::from_bytes(&seed))
    }

    /// Writes a new encryption identity to `site.age` (mode 0600, never
    /// overwriting), in age's identity file format.
    pub fn write_identity(&self, identity: &Identity) -> Result<(), CliError> {
        let text = format!(
            "# parcel site encryption key (age X25519 identity): keep it secret\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        );
        write_private_file(&self.identity_path(), text.as_bytes())
    }

    /// Reads this site's encryption identity; `None` when the home has none
    /// (homes made before parcels could be encrypted). Refuses a file that
    /// others can read, or that is not one age X25519 identity.
    pub fn load_identity(&self) -> Result<Option<Identity>, CliError> {
        let path = self.identity_path();
        let invalid = |reason| CliError::EncryptionKeyInvalid {
            path: path.clone(),
            reason,
        };
        let open = || match File::open(&path) {
            Ok(file) => Ok(Some(file)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // A symbolic link to nothing is a lost key, not a home
                // without one (and a new key could not be written there).
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        Err(invalid("a symbolic link to a file that does not exist"))
                    }
                    // Made by another command since the open: read it.
                    Ok(_) => File::open(&path)
                        .map(Some)
                        .map_err(CliError::io("open encryption key", &path)),
                    Err(_) => Ok(None),
                }
            }
            Err(err) => Err(CliError::io("open encryption key", &path)(err)),
        };
        let Some(file) = open()? else {
            return Ok(None);
        };
        check_private(&file, &path).map_err(|err| match err {
            CliError::SecretKeyInvalid { reason, .. } => invalid(reason),
            other => other,
        })?;
        let mut text = String::new();
        file.take(4096)
            .read_to_string(&mut text)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::InvalidData => invalid("not text"),
                _ => CliError::io("read encryption key", &path)(err),
            })?;
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let invalid =
            invalid("not a parcel encryption key (it must hold one AGE-SECRET-KEY-1… line)");
        let (Some(line), None) = (keys.next(), keys.next()) else {
            return Err(invalid);
        };
        line.parse::<Identity>().map(Some).map_err(|_| invalid)
    }

    /// This site's encryption identity, made now if the home has none yet
    /// (a home made before parcels could be encrypted).
    pub fn identity_or_create(&self) -> Result<Identity, CliError> {
        if let Some(identity) = self.load_identity()? {
            return Ok(identity);
        }
        let identity = Identity::generate();
        match self.write_identity(&identity) {
            Ok(()) => {}
            // Another command made one since it was looked for: that one
            // is the key (it may already be exported), not this one.
            Err(CliError::SecretKeyExists(path)) => {
                return self.load_identity()?.ok_or_else(|| {
                    CliError::io("read encryption key", &path)(std::io::ErrorKind::NotFound.into())
                });
            }
            Err(err) => return Err(err),
        }
        // A home made before encryption has none; a key deleted by mistake
        // looks the same, and parcels already encrypted to it need it back.
        output::warn(&format!(
            "this home had no encryption key; a new one was made in {}. If this site had one before (parcels were encrypted to it), those parcels can be read only with the old key: put its backup in that place instead",
            self.identity_path().display()
        ));
        Ok(identity)
    }

    /// This site's record and secret key, checked to belong together. Use this
    /// before signing anything.
    pub fn site_identity(&self, catalog: &Catalog) -> Result<(SiteRecord, SecretKey), CliError> {
        let site = catalog.site()?;
        let key = self.load_secret_key()?;
        let public: PublicKey = key.verifying_key();
        if public.as_bytes() != &site.public_key {
            return Err(CliError::SecretKeyMismatch {
                path: self.secret_key_path(),
                site: site.code,
            });
        }
        Ok((site, key))
    }

    /// Takes the home-wide exclusive lock (`<home>/lock`), waiting for another
    /// `parcel` process that holds it. Held until the guard is dropped. Imports
    /// take it so that two imports never switch the store at the same time,
    /// and `key trust` and `key revoke` so that no import finishes on a trust
    /// list changed under it.
    pub fn lock_exclusive(&self, quiet: bool) -> Result<HomeLock, CliError> {
        let path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(CliError::io("open lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                output::note(
                    quiet,
                    &format!(
                        "waiting for another parcel process using {}…",
                        self.root.display()
                    ),
                );
                file.lock().map_err(CliError::io("lock", &path))?;
            }
            Err(fs::TryLockError::Error(err)) => return Err(CliError::io("lock", &path)(err)),
        }
        Ok(HomeLock { file })
    }
}

/// Whether `path` still names the file open as `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
        _ => false,
    }
}

/// Parcel being read back by this process (see [`Home::reading_back`]):
/// dropping it removes the lock file, then releases the lock.
#[derive(Debug)]
pub struct ReadingBack {
    path: PathBuf,
    _file: File,
}

impl Drop for ReadingBack {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The home-wide exclusive lock; released when dropped.
#[derive(Debug)]
pub struct HomeLock {
    file: File,
}

impl Drop for HomeLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first makes the
        // release explicit and immediate.
        let _ = self.file.unlock();
    }
}

/// Checks an opened secret file (signing key or encryption identity): a
/// regular file that neither its group nor others can read.
fn check_private(file: &File, path: &Path) -> Result<(), CliError> {
    let meta = file
        .metadata()
        .map_err(CliError::io("inspect secret file", path))?;
    if !meta.is_file() {
        return Err(CliError::SecretKeyInvalid {
            path: path.to_owned(),
            reason: "not a regular file",
        });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(CliError::SecretKeyExposed {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Writes a secret file: mode 0600 from its creation, so it is never
/// readable by others, not even briefly; synced, then put in place only if
/// nothing is there ([`CliError::SecretKeyExists`] otherwise, leaving both
/// alone), and its directory synced.
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Whole or not at all: written and synced under a temporary name (0600
    // from the start), then moved into place only if nothing is there, so a
    // crash never leaves a key cut short and two commands making one at the
    // same time never see each other's half-written file.
    let mut temp = tempfile::Builder::new()
        .prefix(".key-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(CliError::temp_in("write a key in", dir))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(CliError::io("write", path))?;
    temp.persist_noclobber(path).map_err(|err| {
        if err.error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::SecretKeyExists(path.to_owned())
        } else {
            CliError::io("create", path)(err.error)
        }
    })?;
    crate::disk::sync_dir(dir).map_err(CliError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_in(dir: &tempfile::TempDir) -> Home {
        Home::resolve(Some(&dir.path().join("home"))).expect("resolve")
    }

    #[test]
    fn a_read_back_is_seen_while_held_and_a_killed_ones_file_is_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = home_in(&dir);
        home.create_dirs().expect("dirs");
        let (a, b, stale) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        assert!(!home.is_being_read_back(&a).expect("check"));
        let held = home.reading_back(&a).expect("lock a");
        assert!(home.is_being_read_back(&a).expect("check"));
        // A killed create's file: there, but held by nobody.
        let stale_path = home.read_back_lock_path(&stale);
        fs::write(&stale_path, b"").expect("stale lock file");
        assert!(!home.is_being_read_back(&stale).expect("check"));
        let other = home.reading_back(&b).expect("lock b");
        assert!(!stale_path.exists(), "the unheld file was not swept");
        assert!(
            home.is_being_read_back(&a).expect("check"),
            "a held one was"
        );
        drop(held);
        assert!(!home.is_being_read_back(&a).expect("check"));
        assert!(!home.read_back_lock_path(&a).exists());
        drop(other);
    }

    #[test]
    fn commands_making_the_encryption_key_at_once_all_get_the_one_kept() {
        // Homes made before encryption get their key from the first `key
        // export`; several at once must agree on one key, and none may read
        // another's file half-written.
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let home = home_in(&dir);
            home.create_dirs().expect("dirs");
            let start = std::sync::Barrier::new(4);
            let keys: Vec<String> = std::thread::scope(|scope| {
                let makers: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            home.identity_or_create()
                                .map(|id| id.to_public().to_string())
                        })
                    })
                    .collect();
                makers
                    .into_iter()
                    .map(|m| {
                        m.join()
                            .expect("thread")
                            .unwrap_or_else(|e| panic!("a key: {e}"))
                    })
                    .collect()
            });
            let kept = home.load_identity().expect("load").expect("a key file");
            for key in &keys {
                assert_eq!(key, &kept.to_public().to_string());
            }
            let names: Vec<_> = fs::read_dir(home.root())
                .expect("list")
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().starts_with(".key-"))
                .collect();
            assert!(names.is_empty(), "temporary key files left: {names:?}");
        }
    }

    #[test]
    fn an_existing_key_file_is_left_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = home_in(&dir);
        home.create_dirs().expect("dirs");
        fs::write(home.secret_key_path(), b"someone else's").expect("existing file");
        assert!(matches!(
            home.write_secret_key(&parcel_format::sign::generate_secret_key()),
            Err(CliError::SecretKeyExists(_))
        ));
        assert_eq!(
            fs::read(home.secret_key_path()).expect("read"),
            b"someone else's"
        );
    }

    #[test]
    fn secret_key_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = home_in(&dir);
        home.create_dirs().expect("dirs");
        let key = parcel_format::sign::generate_secret_key();
        home.write_secret_key(&key).expect("write");
        let mode = fs::metadata(home.secret_key_path()).expect("meta").mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = home.load_secret_key().expect("load");
        assert_eq!(back.as_bytes(), key.as_bytes());
        assert!(matches!(
            home.write_secret_key(&key),
            Err(CliError::SecretKeyExists(_))
        ));
    }

    #[test]
    fn readable_secret_key_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = home_in(&dir);
        home.create_dirs().expect("dirs");
        home.write_secret_key(&parcel_format::sign::generate_secret_key())
            .expect("write");
        fs::set_permissions(home.secret_key_path(), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = home.load_secret_key().expect_err("must refuse");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    #[allow(clippy::incompatible_msrv)]
    fn lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = home_in(&dir);
        home.create_dirs().expect("dirs");
        let guard = home.lock_exclusive(true).expect("lock");
        let other = File::open(home.lock_path()).expect("open");
        assert!(matches!(
            other.try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
        drop(guard);
        assert!(other.try_lock().is_ok());
    }
}
