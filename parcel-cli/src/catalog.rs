//! The site catalog: an embedded SQLite database (`<home>/catalog.db`) holding
//! the site's identity, the trusted sites, every parcel with its status history,
//! and the packages in the store.
//!
//! Schema changes are versioned migrations keyed on `PRAGMA user_version`;
//! every change runs inside one transaction (`BEGIN IMMEDIATE`), and a busy
//! timeout lets two `parcel` processes on one home take turns instead of failing.

use std::fmt;
use std::time::{Duration, Instant};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::Serialize;

/// This site's identity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SiteRecord {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    /// Public signing key, 32 bytes.
    #[serde(skip)]
    pub public_key: [u8; 32],
    pub fingerprint: String,
    /// Unix seconds.
    pub created: i64,
}

/// A site whose key this site has been given.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrustedSite {
    pub code: String,
    pub name: String,
    #[serde(skip)]
    pub public_key: [u8; 32],
    pub fingerprint: String,
    pub trusted_at: i64,
    /// Set once the key is revoked; a revoked key stays listed so that its
    /// signatures are refused as revoked rather than unknown.
    pub revoked_at: Option<i64>,
    /// The site's age X25519 recipient (`age1…`), from a key file whose
    /// signature over it was checked; `None` for a site whose key file had
    /// none (parcels to it cannot be encrypted).
    pub encryption_key: Option<String>,
}

/// A key a trusted site had before its key was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The site it was the key of.
    pub code: String,
    /// Its fingerprint, as people read it.
    pub fingerprint: String,
    /// When it was replaced.
    pub retired_at: i64,
    /// When it had been revoked, if it had.
    pub revoked_at: Option<i64>,
}

/// Which way a parcel travels, seen from this site.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// A parcel's status. Outgoing: created → sent → confirmed. Incoming:
/// received → imported. Statuses only move forward.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Sent,
    Confirmed,
    Received,
    Imported,
}

/// One parcel as the catalog knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParcelRecord {
    /// 32 lowercase hex digits.
    pub parcel_id: String,
    pub direction: Direction,
    pub status: Status,
    pub source_site: String,
    pub origin_site: String,
    pub destination_site: String,
    pub package_id: String,
    pub package_version: u64,
    /// Unix seconds, as signed in the parcel.
    pub created: i64,
    pub comment: String,
    /// Stored bytes over all volumes.
    pub bytes: u64,
    pub volume_count: u32,
    /// Volume file paths as written (outgoing) or as imported from (incoming).
    pub volumes: Vec<String>,
    /// Digest of the package tree (hex), see `parcel_format::Manifest::tree_digest`.
    pub tree_digest: String,
    /// Whether the parcel's content and file table are encrypted to its destination.
    pub encrypted: bool,
}

/// One step in a parcel's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    pub at: i64,
    pub status: Status,
    /// Free text: carrier and tracking number, receipt file, volume paths…
    pub detail: String,
}

/// A package version held in the store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackageRecord {
    pub package_id: String,
    pub version: u64,
    pub parcel_id: String,
    pub source_site: String,
    pub origin_site: String,
    pub tree_digest: String,
    pub files: u64,
    pub bytes: u64,
    pub imported_at: i64,
}

/// What to do about a database error that means the file itself is bad.
fn advice(error: &rusqlite::Error) -> &'static str {
    use rusqlite::ffi::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "; the site's catalog is damaged: restore catalog.db from a backup of this home"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "; check that this user can read and write the home directory and catalog.db"
        }
        Some(ErrorCode::DiskFull) => "; free some space on the home's disk and run it again",
        // SQLite reports a write that failed for want of space this way too.
        Some(ErrorCode::SystemIoFailure) => {
            "; the disk failed a read or write: check that the home's disk has free space (`df`) and works, then run it again"
        }
        _ => "",
    }
}

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database {path}: {source}{}", advice(source))]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("catalog {path} has schema version {found}, newer than this parcel understands ({supported}); upgrade parcel")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("no site is set up in this home; run `parcel site init --code CODE` first")]
    NoSite,
    #[error("a site ({0}) is already set up in this home")]
    SiteExists(String),
    #[error("no parcel {0} in the catalog; `parcel list` shows the known parcels")]
    UnknownParcel(String),
    #[error("parcel id prefix {0} matches several parcels; give more digits")]
    AmbiguousParcel(String),
    #[error("parcel {parcel} is {from}; it cannot move to {to} (statuses only move forward)")]
    BadTransition {
        parcel: String,
        from: Status,
        to: Status,
    },
    #[error("parcel {0} is already in the catalog")]
    DuplicateParcel(String),
    #[error("site {0} is not trusted; `parcel key list` shows the trusted sites")]
    UnknownSite(String),
    #[error("the trusted keys changed while this ran (another `parcel key` command in this home?); nothing was changed for site {0}: run it again")]
    TrustChanged(String),
}

/// An open catalog.
pub struct Catalog {
    conn: rusqlite::Connection,
    path: String,
}

/// How long a writer waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Schema migrations; migration `i` (0-based) takes `user_version` from `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE site (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        code        TEXT    NOT NULL,
        name        TEXT    NOT NULL,
        parent      TEXT,
        public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
        fingerprint TEXT    NOT NULL,
        created     INTEGER NOT NULL
    );

    CREATE TABLE trusted_sites (
        code        TEXT    PRIMARY KEY NOT NULL,
        name        TEXT    NOT NULL,
        public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
        fingerprint TEXT    NOT NULL,
        trusted_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );

    CREATE TABLE parcels (
        parcel_id        TEXT    PRIMARY KEY NOT NULL,
        direction        TEXT    NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
        status           TEXT    NOT NULL,
        source_site      TEXT    NOT NULL,
        origin_site      TEXT    NOT NULL,
        destination_site TEXT    NOT NULL,
        package_id       TEXT    NOT NULL,
        package_version  INTEGER NOT NULL CHECK (package_version >= 0),
        created          INTEGER NOT NULL,
        comment          TEXT    NOT NULL,
        bytes            INTEGER NOT NULL CHECK (bytes >= 0),
        volume_count     INTEGER NOT NULL CHECK (volume_count >= 0),
        tree_digest      TEXT    NOT NULL,
        CHECK ((direction = 'outgoing' AND status IN ('created', 'sent', 'confirmed'))
            OR (direction = 'incoming' AND status IN ('received', 'imported')))
    );
    CREATE INDEX parcels_by_created ON parcels (created);

    CREATE TABLE parcel_volumes (
        parcel_id TEXT    NOT NULL REFERENCES parcels (parcel_id) ON DELETE CASCADE,
        seq       INTEGER NOT NULL CHECK (seq >= 0),
        path      TEXT    NOT NULL,
        PRIMARY KEY (parcel_id, seq)
    );

    CREATE TABLE parcel_events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        parcel_id TEXT    NOT NULL REFERENCES parcels (parcel_id) ON DELETE CASCADE,
        at        INTEGER NOT NULL,
        status    TEXT    NOT NULL
                  CHECK (status IN ('created', 'sent', 'confirmed', 'received', 'imported')),
        detail    TEXT    NOT NULL
    );
    CREATE INDEX parcel_events_by_parcel ON parcel_events (parcel_id, id);

    CREATE TABLE packages (
        package_id  TEXT    NOT NULL,
        version     INTEGER NOT NULL CHECK (version >= 0),
        parcel_id   TEXT    NOT NULL REFERENCES parcels (parcel_id),
        source_site TEXT    NOT NULL,
        origin_site TEXT    NOT NULL,
        tree_digest TEXT    NOT NULL,
        files       INTEGER NOT NULL CHECK (files >= 0),
        bytes       INTEGER NOT NULL CHECK (bytes >= 0),
        imported_at INTEGER NOT NULL,
        PRIMARY KEY (package_id, version)
    );
    CREATE INDEX packages_by_parcel ON packages (parcel_id);
    ",
    // 2: trusted sites' encryption keys (age X25519 recipients).
    "
    ALTER TABLE trusted_sites ADD COLUMN encryption_key TEXT;
    ",
    // 3: whether a parcel's content was encrypted (forward keeps a package
    // that arrived encrypted from going on in the clear by accident). Older
    // parcels are marked from the history their create or import wrote.
    "
    ALTER TABLE parcels ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0
        CHECK (encrypted IN (0, 1));
    UPDATE parcels SET encrypted = 1 WHERE parcel_id IN (
        SELECT parcel_id FROM parcel_events
        WHERE (status = 'created' AND detail LIKE '%, encrypted to %')
           OR (status = 'received' AND detail LIKE '%decrypted with this site''s key%'));
    ",
    // 4: keys a trusted site had before its key was replaced, and whether
    // they were revoked: a key belongs to one site for good, so an old
    // (perhaps stolen) key cannot come back under another site code, and
    // what a revoked key signed stays known as such after its replacement.
    "
    CREATE TABLE retired_keys (
        public_key  BLOB    PRIMARY KEY NOT NULL CHECK (length(public_key) = 32),
        code        TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        retired_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );
    ",
];

/// The schema version this code writes and understands.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Shortest accepted parcel id prefix.
const MIN_PREFIX: usize = 6;

/// `SELECT` of every `parcels` column, in the order [`parcel_from_row`] reads them.
macro_rules! select_parcels {
    ($($tail:literal)?) => {
        concat!(
            "SELECT parcel_id, direction, status, source_site, origin_site, destination_site,
                    package_id, package_version, created, comment, bytes, volume_count, tree_digest,
                    encrypted
             FROM parcels ",
            $($tail)?
        )
    };
}

/// `SELECT` of every `packages` column, in the order [`package_from_row`] reads them.
macro_rules! select_packages {
    ($tail:literal) => {
        concat!(
            "SELECT package_id, version, parcel_id, source_site, origin_site, tree_digest,
                    files, bytes, imported_at
             FROM packages ",
            $tail
        )
    };
}

/// Attaches the database path to a rusqlite error.
trait At<T> {
    fn at(self, path: &str) -> Result<T, CatalogError>;
}

impl<T> At<T> for rusqlite::Result<T> {
    fn at(self, path: &str) -> Result<T, CatalogError> {
        self.map_err(|source| CatalogError::Sqlite {
            path: path.to_owned(),
            source,
        })
    }
}

fn direction_str(direction: Direction) -> &'static str {
    match direction {
        Direction::Outgoing => "outgoing",
        Direction::Incoming => "incoming",
    }
}

/// A status as the catalog, the JSON output and the messages spell it.
pub(crate) fn status_str(status: Status) -> &'static str {
    match status {
        Status::Created => "created",
        Status::Sent => "sent",
        Status::Confirmed => "confirmed",
        Status::Received => "received",
        Status::Imported => "imported",
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(status_str(*self))
    }
}

/// The direction whose lifecycle a status belongs to.
fn status_direction(status: Status) -> Direction {
    match status {
        Status::Created | Status::Sent | Status::Confirmed => Direction::Outgoing,
        Status::Received | Status::Imported => Direction::Incoming,
    }
}

fn bad_text(idx: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        format!("invalid {what} {value:?} in catalog").into(),
    )
}

fn get_direction(row: &Row<'_>, idx: usize) -> rusqlite::Result<Direction> {
    let text: String = row.get(idx)?;
    match text.as_str() {
        "outgoing" => Ok(Direction::Outgoing),
        "incoming" => Ok(Direction::Incoming),
        other => Err(bad_text(idx, "direction", other)),
    }
}

fn get_status(row: &Row<'_>, idx: usize) -> rusqlite::Result<Status> {
    let text: String = row.get(idx)?;
    match text.as_str() {
        "created" => Ok(Status::Created),
        "sent" => Ok(Status::Sent),
        "confirmed" => Ok(Status::Confirmed),
        "received" => Ok(Status::Received),
        "imported" => Ok(Status::Imported),
        other => Err(bad_text(idx, "status", other)),
    }
}

/// A parcel row without its volumes (filled in by [`load_volumes`]).
fn parcel_from_row(row: &Row<'_>) -> rusqlite::Result<ParcelRecord> {
    Ok(ParcelRecord {
        parcel_id: row.get(0)?,
        direction: get_direction(row, 1)?,
        status: get_status(row, 2)?,
        source_site: row.get(3)?,
        origin_site: row.get(4)?,
        destination_site: row.get(5)?,
        package_id: row.get(6)?,
        package_version: row.get(7)?,
        created: row.get(8)?,
        comment: row.get(9)?,
        bytes: row.get(10)?,
        volume_count: row.get(11)?,
        volumes: Vec::new(),
        tree_digest: row.get(12)?,
        encrypted: row.get(13)?,
    })
}

fn package_from_row(row: &Row<'_>) -> rusqlite::Result<PackageRecord> {
    Ok(PackageRecord {
        package_id: row.get(0)?,
        version: row.get(1)?,
        parcel_id: row.get(2)?,
        source_site: row.get(3)?,
        origin_site: row.get(4)?,
        tree_digest: row.get(5)?,
        files: row.get(6)?,
        bytes: row.get(7)?,
        imported_at: row.get(8)?,
    })
}

/// `TrustChanged` unless site `seen.code` still has the keys and the
/// revocation state of `seen` (its name and trust time may change: `key
/// trust` of the same file again rewrites them).
fn still_trusted(tx: &Transaction<'_>, path: &str, seen: &TrustedSite) -> Result<(), CatalogError> {
    let same = trusted_site_in(tx, &seen.code)
        .at(path)?
        .is_some_and(|now| {
            now.public_key == seen.public_key
                && now.revoked_at == seen.revoked_at
                && now.encryption_key == seen.encryption_key
        });
    if !same {
        return Err(CatalogError::TrustChanged(seen.code.clone()));
    }
    Ok(())
}

/// See [`Catalog::add_parcel`].
fn add_parcel_in(
    tx: &Transaction<'_>,
    path: &str,
    record: &ParcelRecord,
    at: i64,
    detail: &str,
) -> Result<(), CatalogError> {
    let exists = tx
        .query_row(
            "SELECT 1 FROM parcels WHERE parcel_id = ?1",
            params![record.parcel_id],
            |_| Ok(()),
        )
        .optional()
        .at(path)?
        .is_some();
    if exists {
        return Err(CatalogError::DuplicateParcel(record.parcel_id.clone()));
    }
    tx.execute(
        "INSERT INTO parcels
                 (parcel_id, direction, status, source_site, origin_site, destination_site,
                  package_id, package_version, created, comment, bytes, volume_count,
                  tree_digest, encrypted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            record.parcel_id,
            direction_str(record.direction),
            status_str(record.status),
            record.source_site,
            record.origin_site,
            record.destination_site,
            record.package_id,
            record.package_version,
            record.created,
            record.comment,
            record.bytes,
            record.volume_count,
            record.tree_digest,
            record.encrypted
        ],
    )
    .at(path)?;
    {
        let mut stmt = tx
            .prepare_cached("INSERT INTO parcel_volumes (parcel_id, seq, path) VALUES (?1, ?2, ?3)")
            .at(path)?;
        for (seq, volume) in record.volumes.iter().enumerate() {
            stmt.execute(params![record.parcel_id, seq, volume])
                .at(path)?;
        }
    }
    insert_event(tx, &record.parcel_id, at, record.status, detail).at(path)?;
    Ok(())
}

/// The trusted site `code`, if any (in `conn`'s current transaction).
fn trusted_site_in(conn: &Connection, code: &str) -> rusqlite::Result<Option<TrustedSite>> {
    conn.prepare_cached(
        "SELECT code, name, public_key, fingerprint, trusted_at, revoked_at, encryption_key
         FROM trusted_sites WHERE code = ?1",
    )
    .and_then(|mut stmt| stmt.query_row(params![code], trusted_from_row).optional())
}

fn trusted_from_row(row: &Row<'_>) -> rusqlite::Result<TrustedSite> {
    Ok(TrustedSite {
        code: row.get(0)?,
        name: row.get(1)?,
        public_key: row.get(2)?,
        fingerprint: row.get(3)?,
        trusted_at: row.get(4)?,
        revoked_at: row.get(5)?,
        encryption_key: row.get(6)?,
    })
}

fn load_volumes(conn: &Connection, record: &mut ParcelRecord) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare_cached("SELECT path FROM parcel_volumes WHERE parcel_id = ?1 ORDER BY seq")?;
    let volumes = stmt
        .query_map(params![record.parcel_id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    record.volumes = volumes;
    Ok(())
}

fn find_parcel_in(conn: &Connection, parcel_id: &str) -> rusqlite::Result<Option<ParcelRecord>> {
    let record = conn
        .prepare_cached(select_parcels!("WHERE parcel_id = ?1"))?
        .query_row(params![parcel_id], parcel_from_row)
        .optional()?;
    match record {
        Some(mut record) => {
            load_volumes(conn, &mut record)?;
            Ok(Some(record))
        }
        None => Ok(None),
    }
}

/// The direction and status of a parcel, `UnknownParcel` if absent.
fn parcel_state(
    conn: &Connection,
    path: &str,
    parcel_id: &str,
) -> Result<(Direction, Status), CatalogError> {
    conn.prepare_cached("SELECT direction, status FROM parcels WHERE parcel_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![parcel_id], |row| {
                Ok((get_direction(row, 0)?, get_status(row, 1)?))
            })
            .optional()
        })
        .at(path)?
        .ok_or_else(|| CatalogError::UnknownParcel(parcel_id.to_owned()))
}

fn insert_event(
    conn: &Connection,
    parcel_id: &str,
    at: i64,
    status: Status,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO parcel_events (parcel_id, at, status, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![parcel_id, at, status_str(status), detail])?;
    Ok(())
}

/// The body of [`Catalog::advance`], inside the caller's transaction.
fn advance_in(
    tx: &Transaction<'_>,
    path: &str,
    parcel_id: &str,
    to: Status,
    at: i64,
    detail: &str,
) -> Result<(), CatalogError> {
    let (direction, from) = parcel_state(tx, path, parcel_id)?;
    if status_direction(to) != direction || to <= from {
        return Err(CatalogError::BadTransition {
            parcel: parcel_id.to_owned(),
            from,
            to,
        });
    }
    tx.prepare_cached("UPDATE parcels SET status = ?1 WHERE parcel_id = ?2")
        .and_then(|mut stmt| stmt.execute(params![status_str(to), parcel_id]))
        .at(path)?;
    insert_event(tx, parcel_id, at, to, detail).at(path)?;
    Ok(())
}

/// Switches the database to WAL (persistent, so usually a no-op after the first
/// open). SQLite does not consult the busy handler when the switch races another
/// connection (typically two processes creating the catalog at once), so
/// `SQLITE_BUSY` is retried here until [`BUSY_TIMEOUT`].
///
/// A filesystem without WAL support keeps its rollback journal, which is still
/// correct, just less concurrent.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let result = conn
            .pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                }
            });
        match result {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A string that may be a parcel id prefix: at least [`MIN_PREFIX`] hex digits.
/// Returned lowercased (parcel ids are lowercase hex).
fn hex_prefix(input: &str) -> Option<String> {
    (input.len() >= MIN_PREFIX && input.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| input.to_ascii_lowercase())
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and runs pending migrations.
    pub fn open(path: &std::path::Path) -> Result<Catalog, CatalogError> {
        let display = path.display().to_string();
        let conn = Connection::open(path).at(&display)?;
        // The busy timeout goes first: switching to WAL and migrating take locks.
        conn.busy_timeout(BUSY_TIMEOUT).at(&display)?;
        enable_wal(&conn).at(&display)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .at(&display)?;
        let mut catalog = Catalog {
            conn,
            path: display,
        };
        catalog.migrate()?;
        Ok(catalog)
    }

    fn too_new(&self, found: i64) -> Result<(), CatalogError> {
        if found > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Applies the pending migrations in one immediate transaction.
    fn migrate(&mut self) -> Result<(), CatalogError> {
        let user_version = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.pragma_query_value(None, "user_version", |row| row.get(0))
        };
        // Fast path without taking the write lock.
        let found = user_version(&self.conn).at(&self.path)?;
        self.too_new(found)?;
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path.as_str();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(path)?;
        // Another process may have migrated while we waited for the lock.
        let found = user_version(&tx).at(path)?;
        if found > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let done = usize::try_from(found).unwrap_or(0);
        for sql in MIGRATIONS.iter().skip(done) {
            tx.execute_batch(sql).at(path)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .at(path)?;
        tx.commit().at(path)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing when it succeeds
    /// and rolling back when it fails.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>, &str) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let path = self.path.as_str();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(path)?;
        let value = f(&tx, path)?;
        tx.commit().at(path)?;
        Ok(value)
    }

    /// Runs `f` in one read transaction, so that several queries see one snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection, &str) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let path = self.path.as_str();
        let tx = self.conn.unchecked_transaction().at(path)?;
        let value = f(&tx, path)?;
        tx.commit().at(path)?;
        Ok(value)
    }

    /// Records this site's identity; refuses when one exists.
    pub fn init_site(&mut self, site: &SiteRecord) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            let existing: Option<String> = tx
                .query_row("SELECT code FROM site WHERE id = 1", [], |row| row.get(0))
                .optional()
                .at(path)?;
            if let Some(code) = existing {
                return Err(CatalogError::SiteExists(code));
            }
            tx.execute(
                "INSERT INTO site (id, code, name, parent, public_key, fingerprint, created)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    site.code,
                    site.name,
                    site.parent,
                    site.public_key,
                    site.fingerprint,
                    site.created
                ],
            )
            .at(path)?;
            Ok(())
        })
    }

    /// This site's identity, or `NoSite`.
    pub fn site(&self) -> Result<SiteRecord, CatalogError> {
        self.conn
            .query_row(
                "SELECT code, name, parent, public_key, fingerprint, created
                 FROM site WHERE id = 1",
                [],
                |row| {
                    Ok(SiteRecord {
                        code: row.get(0)?,
                        name: row.get(1)?,
                        parent: row.get(2)?,
                        public_key: row.get(3)?,
                        fingerprint: row.get(4)?,
                        created: row.get(5)?,
                    })
                },
            )
            .optional()
            .at(&self.path)?
            .ok_or(CatalogError::NoSite)
    }

    /// Trusts a site's key: inserts, or replaces the key of a site (clearing a revocation).
    ///
    /// The row is replaced by `site` as given, so `revoked_at: None` clears a
    /// revocation.
    ///
    /// `seen` is the record of `site.code` the caller decided on (`None`: no
    /// record); should it have changed since, or should another site hold
    /// the key by now, nothing is written and the answer is `TrustChanged`:
    /// the check and the write are one transaction, so two `key trust`
    /// commands cannot both pass the one-key-one-site check.
    pub fn trust_site(
        &mut self,
        site: &TrustedSite,
        seen: Option<&TrustedSite>,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            let now = trusted_site_in(tx, &site.code).at(path)?;
            let key_elsewhere = tx
                .query_row(
                    "SELECT 1 FROM trusted_sites WHERE public_key = ?1 AND code <> ?2
                     UNION ALL
                     SELECT 1 FROM retired_keys WHERE public_key = ?1 AND code <> ?2",
                    params![site.public_key, site.code],
                    |_| Ok(()),
                )
                .optional()
                .at(path)?
                .is_some();
            if now.as_ref() != seen || key_elsewhere {
                return Err(CatalogError::TrustChanged(site.code.clone()));
            }
            // The key it replaces stays this site's, retired.
            if let Some(old) = now.as_ref().filter(|old| old.public_key != site.public_key) {
                tx.execute(
                    "INSERT OR IGNORE INTO retired_keys
                         (public_key, code, fingerprint, retired_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        old.public_key,
                        old.code,
                        old.fingerprint,
                        site.trusted_at,
                        old.revoked_at
                    ],
                )
                .at(path)?;
            }
            tx.execute(
                "INSERT INTO trusted_sites
                     (code, name, public_key, fingerprint, trusted_at, revoked_at,
                      encryption_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (code) DO UPDATE SET
                     name = excluded.name,
                     public_key = excluded.public_key,
                     fingerprint = excluded.fingerprint,
                     trusted_at = excluded.trusted_at,
                     revoked_at = excluded.revoked_at,
                     encryption_key = excluded.encryption_key",
                params![
                    site.code,
                    site.name,
                    site.public_key,
                    site.fingerprint,
                    site.trusted_at,
                    site.revoked_at,
                    site.encryption_key
                ],
            )
            .at(path)?;
            Ok(())
        })
    }

    /// Marks a trusted site's key revoked (kept listed). `UnknownSite` if absent.
    ///
    /// Revoking an already revoked key keeps the first revocation time.
    pub fn revoke_site(&mut self, code: &str, at: i64) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            let changed = tx
                .execute(
                    "UPDATE trusted_sites SET revoked_at = coalesce(revoked_at, ?1)
                     WHERE code = ?2",
                    params![at, code],
                )
                .at(path)?;
            if changed == 0 {
                return Err(CatalogError::UnknownSite(code.to_owned()));
            }
            Ok(())
        })
    }

    /// All trusted sites, revoked ones included, ordered by code.
    pub fn trusted_sites(&self) -> Result<Vec<TrustedSite>, CatalogError> {
        self.conn
            .prepare_cached(
                "SELECT code, name, public_key, fingerprint, trusted_at, revoked_at, encryption_key
                 FROM trusted_sites ORDER BY code",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], trusted_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(&self.path)
    }

    /// One trusted site by code.
    pub fn trusted_site(&self, code: &str) -> Result<Option<TrustedSite>, CatalogError> {
        trusted_site_in(&self.conn, code).at(&self.path)
    }

    /// The site whose key `public_key` was until it was replaced, with the
    /// key's fingerprint, when, and when it had been revoked (if it had): a
    /// key belongs to one site for good.
    pub fn retired_key(&self, public_key: &[u8; 32]) -> Result<Option<RetiredKey>, CatalogError> {
        self.conn
            .query_row(
                "SELECT code, fingerprint, retired_at, revoked_at FROM retired_keys
                 WHERE public_key = ?1",
                params![public_key],
                |row| {
                    Ok(RetiredKey {
                        code: row.get(0)?,
                        fingerprint: row.get(1)?,
                        retired_at: row.get(2)?,
                        revoked_at: row.get(3)?,
                    })
                },
            )
            .optional()
            .at(&self.path)
    }

    /// When the latest of site `code`'s keys, current or replaced, was
    /// revoked, if any was.
    pub fn last_revocation(&self, code: &str) -> Result<Option<i64>, CatalogError> {
        self.conn
            .query_row(
                "SELECT max(r) FROM (
                     SELECT revoked_at AS r FROM trusted_sites WHERE code = ?1
                     UNION ALL
                     SELECT revoked_at AS r FROM retired_keys WHERE code = ?1)",
                params![code],
                |row| row.get(0),
            )
            .at(&self.path)
    }

    /// Adds a parcel with its first event (status = record.status); `DuplicateParcel` if present.
    ///
    /// The status must belong to the record's direction (the schema refuses an
    /// outgoing parcel that is `Received`, for instance).
    pub fn add_parcel(
        &mut self,
        record: &ParcelRecord,
        at: i64,
        detail: &str,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| add_parcel_in(tx, path, record, at, detail))
    }

    /// [`Catalog::add_parcel`], only while the trusted record of site
    /// `seen.code` is still `seen`, the one the caller decided on (a `key
    /// revoke` or `key trust` may have run meanwhile): else `TrustChanged`,
    /// and nothing is written. The check and the write are one transaction.
    pub fn add_parcel_trusting(
        &mut self,
        record: &ParcelRecord,
        at: i64,
        detail: &str,
        seen: &TrustedSite,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            still_trusted(tx, path, seen)?;
            add_parcel_in(tx, path, record, at, detail)
        })
    }

    /// Moves a parcel to a later status, recording an event. Refuses backward or
    /// cross-direction moves with `BadTransition`.
    pub fn advance(
        &mut self,
        parcel_id: &str,
        to: Status,
        at: i64,
        detail: &str,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| advance_in(tx, path, parcel_id, to, at, detail))
    }

    /// Records parcel `parcel_id` imported, its content being in the store
    /// already as `package_id` v`version`, whose origin becomes `origin`
    /// (`import --new-origin`): both in one transaction.
    pub fn record_handover(
        &mut self,
        parcel_id: &str,
        at: i64,
        detail: &str,
        (package_id, version): (&str, u64),
        origin: &str,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            advance_in(tx, path, parcel_id, Status::Imported, at, detail)?;
            tx.execute(
                "UPDATE packages SET origin_site = ?3 WHERE package_id = ?1 AND version = ?2",
                params![package_id, version, origin],
            )
            .at(path)?;
            Ok(())
        })
    }

    /// [`Catalog::advance`], only while the trusted record of site
    /// `seen.code` is still `seen` (see [`Catalog::add_parcel_trusting`]).
    pub fn advance_trusting(
        &mut self,
        parcel_id: &str,
        to: Status,
        at: i64,
        detail: &str,
        seen: &TrustedSite,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            still_trusted(tx, path, seen)?;
            advance_in(tx, path, parcel_id, to, at, detail)
        })
    }

    /// Records an event without changing the status (e.g. "re-import: no-op").
    pub fn note(&mut self, parcel_id: &str, at: i64, detail: &str) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            let (_, status) = parcel_state(tx, path, parcel_id)?;
            insert_event(tx, parcel_id, at, status, detail).at(path)
        })
    }

    /// Forgets an outgoing parcel that is still `created`, as if it had never
    /// been made: for one whose volumes failed their read-back and were
    /// removed before they could be shipped. Anything else is left alone.
    pub fn forget_unshipped(&mut self, parcel_id: &str) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            let (direction, status) = parcel_state(tx, path, parcel_id)?;
            if direction != Direction::Outgoing || status != Status::Created {
                return Ok(());
            }
            for table in ["parcel_events", "parcel_volumes", "parcels"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE parcel_id = ?1"),
                    params![parcel_id],
                )
                .at(path)?;
            }
            Ok(())
        })
    }

    /// A parcel by full id, or by a unique prefix of at least 6 hex digits.
    pub fn parcel(&self, id_or_prefix: &str) -> Result<ParcelRecord, CatalogError> {
        self.read(|conn, path| {
            if let Some(record) = find_parcel_in(conn, id_or_prefix).at(path)? {
                return Ok(record);
            }
            let unknown = || CatalogError::UnknownParcel(id_or_prefix.to_owned());
            let prefix = hex_prefix(id_or_prefix).ok_or_else(unknown)?;
            // At most two ids: enough to tell unique from ambiguous.
            let ids = conn
                .prepare_cached(
                    "SELECT parcel_id FROM parcels
                     WHERE substr(parcel_id, 1, ?1) = ?2 ORDER BY parcel_id LIMIT 2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![prefix.len(), prefix], |row| row.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .at(path)?;
            match ids.as_slice() {
                [] => Err(unknown()),
                [id] => find_parcel_in(conn, id).at(path)?.ok_or_else(unknown),
                _ => Err(CatalogError::AmbiguousParcel(id_or_prefix.to_owned())),
            }
        })
    }

    /// A parcel by full id, `None` if unknown.
    pub fn find_parcel(&self, parcel_id: &str) -> Result<Option<ParcelRecord>, CatalogError> {
        self.read(|conn, path| find_parcel_in(conn, parcel_id).at(path))
    }

    /// Parcels, newest first, optionally of one direction.
    ///
    /// Newest means latest `created`; parcels created in the same second come
    /// latest-added first.
    pub fn parcels(&self, direction: Option<Direction>) -> Result<Vec<ParcelRecord>, CatalogError> {
        self.read(|conn, path| {
            let mut records = conn
                .prepare_cached(select_parcels!(
                    "WHERE ?1 IS NULL OR direction = ?1 ORDER BY created DESC, rowid DESC"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(params![direction.map(direction_str)], parcel_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .at(path)?;
            for record in &mut records {
                load_volumes(conn, record).at(path)?;
            }
            Ok(records)
        })
    }

    /// A parcel's history, oldest first.
    ///
    /// Events are listed in the order they were recorded. `UnknownParcel` if
    /// the parcel is not in the catalog.
    pub fn history(&self, parcel_id: &str) -> Result<Vec<Event>, CatalogError> {
        self.read(|conn, path| {
            parcel_state(conn, path, parcel_id)?;
            conn.prepare_cached(
                "SELECT at, status, detail FROM parcel_events WHERE parcel_id = ?1 ORDER BY id",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![parcel_id], |row| {
                    Ok(Event {
                        at: row.get(0)?,
                        status: get_status(row, 1)?,
                        detail: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(path)
        })
    }

    /// Records an imported package version and moves its parcel to `Imported`, in one transaction.
    ///
    /// The parcel is `package.parcel_id`; if it cannot move to `Imported`
    /// (unknown, outgoing, or already imported) nothing is recorded. An existing
    /// row for the same package id and version is replaced.
    pub fn record_import(
        &mut self,
        package: &PackageRecord,
        at: i64,
        detail: &str,
    ) -> Result<(), CatalogError> {
        self.write(|tx, path| {
            advance_in(tx, path, &package.parcel_id, Status::Imported, at, detail)?;
            tx.execute(
                "INSERT OR REPLACE INTO packages
                     (package_id, version, parcel_id, source_site, origin_site, tree_digest,
                      files, bytes, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    package.package_id,
                    package.version,
                    package.parcel_id,
                    package.source_site,
                    package.origin_site,
                    package.tree_digest,
                    package.files,
                    package.bytes,
                    package.imported_at
                ],
            )
            .at(path)?;
            Ok(())
        })
    }

    /// Every package version in the store, by id then version.
    pub fn packages(&self) -> Result<Vec<PackageRecord>, CatalogError> {
        self.conn
            .prepare_cached(select_packages!("ORDER BY package_id, version"))
            .and_then(|mut stmt| {
                stmt.query_map([], package_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .at(&self.path)
    }

    /// One package version.
    pub fn package(
        &self,
        package_id: &str,
        version: u64,
    ) -> Result<Option<PackageRecord>, CatalogError> {
        // Versions above i64::MAX cannot be stored, so they are never present.
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        self.conn
            .prepare_cached(select_packages!("WHERE package_id = ?1 AND version = ?2"))
            .and_then(|mut stmt| {
                stmt.query_row(params![package_id, version], package_from_row)
                    .optional()
            })
            .at(&self.path)
    }

    /// The highest version of a package in the store.
    pub fn latest_package(&self, package_id: &str) -> Result<Option<PackageRecord>, CatalogError> {
        self.conn
            .prepare_cached(select_packages!(
                "WHERE package_id = ?1 ORDER BY version DESC LIMIT 1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![package_id], package_from_row)
                    .optional()
            })
            .at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn db(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("catalog.db")
    }

    fn site_record(code: &str) -> SiteRecord {
        SiteRecord {
            code: code.to_owned(),
            name: format!("Site {code}"),
            parent: Some("HQ".to_owned()),
            public_key: [7; 32],
            fingerprint: "ab:cd".to_owned(),
            created: 1_700_000_000,
        }
    }

    fn trusted(code: &str, key: u8) -> TrustedSite {
        TrustedSite {
            code: code.to_owned(),
            name: format!("Site {code}"),
            public_key: [key; 32],
            fingerprint: format!("fp-{code}-{key}"),
            trusted_at: 1_700_000_100,
            revoked_at: None,
            encryption_key: None,
        }
    }

    #[test]
    fn catalog_of_schema_1_opens_and_gains_encryption_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute(
                "INSERT INTO trusted_sites (code, name, public_key, fingerprint, trusted_at)
                 VALUES ('NOR', 'North', ?1, 'fp', 1)",
                params![[7u8; 32]],
            )
            .expect("insert");
        }
        let mut catalog = Catalog::open(&path).expect("migrates");
        let nor = catalog.trusted_site("NOR").expect("read").expect("kept");
        assert_eq!(nor.encryption_key, None);
        let with_key = TrustedSite {
            encryption_key: Some("age1example".into()),
            ..nor.clone()
        };
        catalog.trust_site(&with_key, Some(&nor)).expect("update");
        assert_eq!(catalog.trusted_site("NOR").expect("read"), Some(with_key));
    }

    #[test]
    fn catalog_of_schema_2_marks_encrypted_parcels_from_their_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
            conn.execute_batch(MIGRATIONS[1]).expect("schema 2");
            conn.pragma_update(None, "user_version", 2)
                .expect("version");
            // What create and import wrote before schema 3.
            let parcels = [
                (
                    "a1",
                    "incoming",
                    "received",
                    "volumes authenticated, decrypted with this site's key",
                ),
                ("a2", "incoming", "received", "volumes authenticated"),
                (
                    "b1",
                    "outgoing",
                    "created",
                    "written as 2 volume(s), encrypted to BXL, verified",
                ),
                (
                    "b2",
                    "outgoing",
                    "created",
                    "written as 2 volume(s), verified",
                ),
            ];
            for (id, direction, status, detail) in parcels {
                conn.execute(
                    "INSERT INTO parcels VALUES (?1, ?2, ?3, 'AAA', 'AAA', 'BBB', 'tools', 1, 0, '', 0, 1, 'ff')",
                    params![id, direction, status],
                )
                .expect("parcel");
                conn.execute(
                    "INSERT INTO parcel_events (parcel_id, at, status, detail) VALUES (?1, 0, ?2, ?3)",
                    params![id, status, detail],
                )
                .expect("event");
            }
        }
        let catalog = Catalog::open(&path).expect("migrates");
        let encrypted = |id| catalog.parcel(id).expect("parcel").encrypted;
        assert!(encrypted("a1") && encrypted("b1"));
        assert!(!encrypted("a2") && !encrypted("b2"));
    }

    fn parcel_record(id: &str, direction: Direction, created: i64) -> ParcelRecord {
        ParcelRecord {
            parcel_id: id.to_owned(),
            direction,
            status: match direction {
                Direction::Outgoing => Status::Created,
                Direction::Incoming => Status::Received,
            },
            source_site: "AAA".to_owned(),
            origin_site: "AAA".to_owned(),
            destination_site: "BBB".to_owned(),
            package_id: "tools".to_owned(),
            package_version: 3,
            created,
            comment: "a comment".to_owned(),
            bytes: 123_456,
            volume_count: 2,
            volumes: vec!["/media/a/p.001".to_owned(), "/media/b/p.002".to_owned()],
            tree_digest: "00ff".to_owned(),
            encrypted: false,
        }
    }

    fn id(n: u32) -> String {
        format!("{n:032x}")
    }

    fn package_record(package_id: &str, version: u64, parcel_id: &str) -> PackageRecord {
        PackageRecord {
            package_id: package_id.to_owned(),
            version,
            parcel_id: parcel_id.to_owned(),
            source_site: "AAA".to_owned(),
            origin_site: "AAA".to_owned(),
            tree_digest: format!("digest-{version}"),
            files: 10,
            bytes: 2048,
            imported_at: 1_700_000_500,
        }
    }

    fn user_version(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn open_creates_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        {
            let mut catalog = Catalog::open(&path).unwrap();
            catalog.init_site(&site_record("AAA")).unwrap();
        }
        assert!(path.exists());
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let catalog = Catalog::open(&path).unwrap();
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        assert_eq!(catalog.site().unwrap(), site_record("AAA"));
        let mode: String = catalog
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = catalog
            .conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        drop(Catalog::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        match Catalog::open(&path) {
            Err(CatalogError::TooNew {
                found, supported, ..
            }) => {
                assert_eq!(found, SCHEMA_VERSION + 1);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            Err(other) => panic!("expected TooNew, got {other}"),
            Ok(_) => panic!("expected TooNew, got a catalog"),
        }
    }

    #[test]
    fn site_is_set_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        assert!(matches!(catalog.site(), Err(CatalogError::NoSite)));
        let mut site = site_record("AAA");
        site.parent = None;
        catalog.init_site(&site).unwrap();
        assert_eq!(catalog.site().unwrap(), site);
        match catalog.init_site(&site_record("ZZZ")) {
            Err(CatalogError::SiteExists(code)) => assert_eq!(code, "AAA"),
            other => panic!("expected SiteExists, got {other:?}"),
        }
        assert_eq!(catalog.site().unwrap(), site);
    }

    #[test]
    fn trust_revoke_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        assert!(catalog.trusted_sites().unwrap().is_empty());
        assert_eq!(catalog.trusted_site("BBB").unwrap(), None);

        catalog.trust_site(&trusted("CCC", 3), None).unwrap();
        catalog.trust_site(&trusted("BBB", 2), None).unwrap();
        let codes: Vec<String> = catalog
            .trusted_sites()
            .unwrap()
            .into_iter()
            .map(|s| s.code)
            .collect();
        assert_eq!(codes, ["BBB", "CCC"]);
        assert_eq!(
            catalog.trusted_site("BBB").unwrap(),
            Some(trusted("BBB", 2))
        );

        catalog.revoke_site("BBB", 1_700_000_200).unwrap();
        // Revoking again keeps the first revocation time.
        catalog.revoke_site("BBB", 1_700_000_300).unwrap();
        let bbb = catalog.trusted_site("BBB").unwrap().unwrap();
        assert_eq!(bbb.revoked_at, Some(1_700_000_200));
        assert_eq!(
            catalog.trusted_sites().unwrap().len(),
            2,
            "revoked stays listed"
        );

        assert!(matches!(
            catalog.revoke_site("XXX", 1),
            Err(CatalogError::UnknownSite(code)) if code == "XXX"
        ));

        // Trusting again replaces the key and clears the revocation.
        catalog.trust_site(&trusted("BBB", 9), Some(&bbb)).unwrap();
        assert_eq!(
            catalog.trusted_site("BBB").unwrap(),
            Some(trusted("BBB", 9))
        );
        assert_eq!(catalog.trusted_sites().unwrap().len(), 2);
    }

    #[test]
    fn trust_is_refused_when_the_record_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog.trust_site(&trusted("BBB", 2), None).unwrap();
        let bbb = catalog.trusted_site("BBB").unwrap().unwrap();
        let changed = |r: Result<(), CatalogError>, site: &str| matches!(r, Err(CatalogError::TrustChanged(code)) if code == site);
        // Two commands read "no CCC"; the first to write wins.
        catalog.trust_site(&trusted("CCC", 3), None).unwrap();
        assert!(changed(catalog.trust_site(&trusted("CCC", 4), None), "CCC"));
        // BBB was revoked after it was read.
        catalog.revoke_site("BBB", 1_700_000_200).unwrap();
        assert!(changed(
            catalog.trust_site(&trusted("BBB", 5), Some(&bbb)),
            "BBB"
        ));
        // One key, one site, checked in the write itself: CCC holds key 3.
        assert!(changed(catalog.trust_site(&trusted("DDD", 3), None), "DDD"));
        assert_eq!(
            catalog.trusted_site("CCC").unwrap(),
            Some(trusted("CCC", 3))
        );
        assert_eq!(catalog.trusted_site("DDD").unwrap(), None);
    }

    #[test]
    fn a_parcel_is_added_or_confirmed_trusting_only_the_record_the_caller_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog.trust_site(&trusted("BBB", 2), None).unwrap();
        let seen = catalog.trusted_site("BBB").unwrap().unwrap();
        let mut record = parcel_record(&id(1), Direction::Outgoing, 100);
        record.destination_site = "BBB".into();
        catalog
            .add_parcel_trusting(&record, 1000, "written", &seen)
            .unwrap();
        // The same key trusted again (a new trust time) is no change.
        catalog
            .trust_site(
                &TrustedSite {
                    trusted_at: seen.trusted_at + 60,
                    ..seen.clone()
                },
                Some(&seen),
            )
            .unwrap();
        catalog
            .advance_trusting(&id(1), Status::Sent, 1001, "post", &seen)
            .unwrap();
        // Revoked after it was read: nothing written.
        catalog.revoke_site("BBB", 1002).unwrap();
        let changed = |r: Result<(), CatalogError>| matches!(r, Err(CatalogError::TrustChanged(code)) if code == "BBB");
        assert!(changed(catalog.advance_trusting(
            &id(1),
            Status::Confirmed,
            1003,
            "receipt",
            &seen
        )));
        assert_eq!(
            catalog.find_parcel(&id(1)).unwrap().unwrap().status,
            Status::Sent
        );
        let mut other = parcel_record(&id(2), Direction::Outgoing, 100);
        other.destination_site = "BBB".into();
        assert!(changed(
            catalog.add_parcel_trusting(&other, 1004, "written", &seen)
        ));
        assert_eq!(catalog.find_parcel(&id(2)).unwrap(), None);
    }

    #[test]
    fn add_and_find_parcel() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        let record = parcel_record(&id(1), Direction::Outgoing, 100);
        catalog.add_parcel(&record, 1000, "written").unwrap();
        assert_eq!(catalog.find_parcel(&id(1)).unwrap(), Some(record.clone()));
        assert_eq!(catalog.parcel(&id(1)).unwrap(), record);
        assert_eq!(catalog.find_parcel(&id(2)).unwrap(), None);
        assert!(matches!(
            catalog.add_parcel(&record, 1001, "again"),
            Err(CatalogError::DuplicateParcel(p)) if p == id(1)
        ));
        assert_eq!(
            catalog.history(&id(1)).unwrap(),
            [Event {
                at: 1000,
                status: Status::Created,
                detail: "written".to_owned()
            }]
        );

        // A status outside the parcel's direction is refused by the schema.
        let mut wrong = parcel_record(&id(3), Direction::Outgoing, 100);
        wrong.status = Status::Received;
        assert!(matches!(
            catalog.add_parcel(&wrong, 1, ""),
            Err(CatalogError::Sqlite { .. })
        ));
        assert_eq!(catalog.find_parcel(&id(3)).unwrap(), None);
    }

    #[test]
    fn outgoing_moves_only_forward() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog
            .add_parcel(&parcel_record(&id(1), Direction::Outgoing, 1), 10, "")
            .unwrap();
        let bad = |r: Result<(), CatalogError>, from: Status, to: Status| match r {
            Err(CatalogError::BadTransition {
                parcel,
                from: f,
                to: t,
            }) => {
                assert_eq!(parcel, id(1));
                assert_eq!((f, t), (from, to));
            }
            other => panic!("expected BadTransition, got {other:?}"),
        };
        bad(
            catalog.advance(&id(1), Status::Created, 11, ""),
            Status::Created,
            Status::Created,
        );
        catalog.advance(&id(1), Status::Sent, 12, "post").unwrap();
        bad(
            catalog.advance(&id(1), Status::Sent, 13, ""),
            Status::Sent,
            Status::Sent,
        );
        bad(
            catalog.advance(&id(1), Status::Created, 13, ""),
            Status::Sent,
            Status::Created,
        );
        bad(
            catalog.advance(&id(1), Status::Received, 13, ""),
            Status::Sent,
            Status::Received,
        );
        bad(
            catalog.advance(&id(1), Status::Imported, 13, ""),
            Status::Sent,
            Status::Imported,
        );
        catalog
            .advance(&id(1), Status::Confirmed, 14, "receipt")
            .unwrap();
        bad(
            catalog.advance(&id(1), Status::Confirmed, 15, ""),
            Status::Confirmed,
            Status::Confirmed,
        );
        assert_eq!(catalog.parcel(&id(1)).unwrap().status, Status::Confirmed);
        // Refused moves left no events.
        let statuses: Vec<Status> = catalog
            .history(&id(1))
            .unwrap()
            .into_iter()
            .map(|e| e.status)
            .collect();
        assert_eq!(statuses, [Status::Created, Status::Sent, Status::Confirmed]);

        // Skipping forward: a receipt may arrive before `sent` was recorded.
        catalog
            .add_parcel(&parcel_record(&id(2), Direction::Outgoing, 1), 10, "")
            .unwrap();
        catalog.advance(&id(2), Status::Confirmed, 11, "").unwrap();
        assert_eq!(catalog.parcel(&id(2)).unwrap().status, Status::Confirmed);

        assert!(matches!(
            catalog.advance(&id(9), Status::Sent, 1, ""),
            Err(CatalogError::UnknownParcel(p)) if p == id(9)
        ));
    }

    #[test]
    fn incoming_moves_only_forward() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog
            .add_parcel(&parcel_record(&id(1), Direction::Incoming, 1), 10, "")
            .unwrap();
        for to in [
            Status::Created,
            Status::Sent,
            Status::Confirmed,
            Status::Received,
        ] {
            assert!(
                matches!(
                    catalog.advance(&id(1), to, 11, ""),
                    Err(CatalogError::BadTransition {
                        from: Status::Received,
                        ..
                    })
                ),
                "{to:?}"
            );
        }
        catalog.advance(&id(1), Status::Imported, 12, "").unwrap();
        for to in [Status::Confirmed, Status::Received, Status::Imported] {
            assert!(matches!(
                catalog.advance(&id(1), to, 13, ""),
                Err(CatalogError::BadTransition {
                    from: Status::Imported,
                    ..
                })
            ));
        }
        assert_eq!(catalog.parcel(&id(1)).unwrap().status, Status::Imported);
    }

    #[test]
    fn history_is_oldest_first_and_notes_keep_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog
            .add_parcel(
                &parcel_record(&id(1), Direction::Outgoing, 1),
                100,
                "written",
            )
            .unwrap();
        catalog
            .advance(&id(1), Status::Sent, 200, "DHL 123")
            .unwrap();
        catalog.note(&id(1), 300, "volume 2 rewritten").unwrap();
        catalog
            .advance(&id(1), Status::Confirmed, 400, "receipt r.json")
            .unwrap();
        let history = catalog.history(&id(1)).unwrap();
        let expected = [
            (100, Status::Created, "written"),
            (200, Status::Sent, "DHL 123"),
            (300, Status::Sent, "volume 2 rewritten"),
            (400, Status::Confirmed, "receipt r.json"),
        ];
        assert_eq!(history.len(), expected.len());
        for (event, (at, status, detail)) in history.iter().zip(expected) {
            assert_eq!(
                (event.at, event.status, event.detail.as_str()),
                (at, status, detail)
            );
        }
        assert!(matches!(
            catalog.note(&id(2), 1, ""),
            Err(CatalogError::UnknownParcel(_))
        ));
        assert!(matches!(
            catalog.history(&id(2)),
            Err(CatalogError::UnknownParcel(_))
        ));
    }

    #[test]
    fn parcels_newest_first_by_direction() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        catalog
            .add_parcel(&parcel_record(&id(1), Direction::Outgoing, 100), 1, "")
            .unwrap();
        catalog
            .add_parcel(&parcel_record(&id(2), Direction::Incoming, 300), 1, "")
            .unwrap();
        catalog
            .add_parcel(&parcel_record(&id(3), Direction::Outgoing, 200), 1, "")
            .unwrap();
        let ids = |d| -> Vec<String> {
            catalog
                .parcels(d)
                .unwrap()
                .into_iter()
                .map(|p| p.parcel_id)
                .collect()
        };
        assert_eq!(ids(None), [id(2), id(3), id(1)]);
        assert_eq!(ids(Some(Direction::Outgoing)), [id(3), id(1)]);
        assert_eq!(ids(Some(Direction::Incoming)), [id(2)]);
        let all = catalog.parcels(None).unwrap();
        assert!(all.iter().all(|p| p.volumes.len() == 2));
    }

    #[test]
    fn parcel_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        let a = "abcdef0100000000000000000000000a";
        let b = "abcdef0200000000000000000000000b";
        let c = "123456789abcdef0123456789abcdef0";
        for p in [a, b, c] {
            catalog
                .add_parcel(&parcel_record(p, Direction::Outgoing, 1), 1, "")
                .unwrap();
        }
        assert_eq!(catalog.parcel(a).unwrap().parcel_id, a);
        assert_eq!(catalog.parcel("abcdef01").unwrap().parcel_id, a);
        assert_eq!(catalog.parcel("abcdef02").unwrap().parcel_id, b);
        assert_eq!(catalog.parcel("ABCDEF02").unwrap().parcel_id, b);
        assert_eq!(catalog.parcel("123456").unwrap().parcel_id, c);
        assert!(matches!(
            catalog.parcel("abcdef"),
            Err(CatalogError::AmbiguousParcel(p)) if p == "abcdef"
        ));
        for unknown in [
            "12345",
            "abcdef03",
            "zzzzzzzz",
            "",
            "%%%%%%",
            "abcd%_",
            "abcdef0100000000000000000000000a0",
        ] {
            assert!(
                matches!(
                    catalog.parcel(unknown),
                    Err(CatalogError::UnknownParcel(p)) if p == unknown
                ),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn record_import_and_latest_package() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&db(&dir)).unwrap();
        for n in 1..=3 {
            catalog
                .add_parcel(&parcel_record(&id(n), Direction::Incoming, 1), 10, "read")
                .unwrap();
        }
        catalog
            .record_import(&package_record("tools", 1, &id(1)), 20, "imported v1")
            .unwrap();
        catalog
            .record_import(&package_record("tools", 3, &id(2)), 21, "imported v3")
            .unwrap();
        catalog
            .record_import(&package_record("other", 7, &id(3)), 22, "imported other")
            .unwrap();

        assert_eq!(catalog.parcel(&id(1)).unwrap().status, Status::Imported);
        let history = catalog.history(&id(1)).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].status, Status::Imported);
        assert_eq!(history[1].detail, "imported v1");

        assert_eq!(
            catalog.latest_package("tools").unwrap(),
            Some(package_record("tools", 3, &id(2)))
        );
        assert_eq!(catalog.latest_package("none").unwrap(), None);
        assert_eq!(
            catalog.package("tools", 1).unwrap(),
            Some(package_record("tools", 1, &id(1)))
        );
        assert_eq!(catalog.package("tools", 2).unwrap(), None);
        assert_eq!(catalog.package("tools", u64::MAX).unwrap(), None);
        let all: Vec<(String, u64)> = catalog
            .packages()
            .unwrap()
            .into_iter()
            .map(|p| (p.package_id, p.version))
            .collect();
        assert_eq!(
            all,
            [
                ("other".to_owned(), 7),
                ("tools".to_owned(), 1),
                ("tools".to_owned(), 3)
            ]
        );

        // A parcel already imported: refused, and the package row is not written.
        assert!(matches!(
            catalog.record_import(&package_record("tools", 9, &id(1)), 30, ""),
            Err(CatalogError::BadTransition {
                from: Status::Imported,
                to: Status::Imported,
                ..
            })
        ));
        assert_eq!(catalog.package("tools", 9).unwrap(), None);
        assert!(matches!(
            catalog.record_import(&package_record("tools", 9, &id(8)), 30, ""),
            Err(CatalogError::UnknownParcel(_))
        ));
        // An outgoing parcel cannot be imported.
        catalog
            .add_parcel(&parcel_record(&id(5), Direction::Outgoing, 1), 10, "")
            .unwrap();
        assert!(matches!(
            catalog.record_import(&package_record("tools", 9, &id(5)), 30, ""),
            Err(CatalogError::BadTransition { .. })
        ));
        assert_eq!(catalog.latest_package("tools").unwrap().unwrap().version, 3);
    }

    #[test]
    fn two_connections_write_concurrently() {
        // Several rounds, each on a fresh file, so that creation and migration race too.
        for round in 0..5u32 {
            let dir = tempfile::tempdir().unwrap();
            let path = db(&dir);
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = (0..2u32)
                .map(|t| {
                    let path = path.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        let mut catalog = Catalog::open(&path).unwrap();
                        for i in 0..50u32 {
                            let n = round * 10_000 + t * 1000 + i;
                            catalog
                                .add_parcel(
                                    &parcel_record(&id(n), Direction::Outgoing, i64::from(i)),
                                    0,
                                    "",
                                )
                                .unwrap();
                            catalog.advance(&id(n), Status::Sent, 1, "").unwrap();
                            // Reads interleaved with the other writer.
                            assert!(catalog.parcels(None).unwrap().len() > i as usize);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let catalog = Catalog::open(&path).unwrap();
            let parcels = catalog.parcels(None).unwrap();
            assert_eq!(parcels.len(), 100);
            assert!(parcels.iter().all(|p| p.status == Status::Sent));
        }
    }
}
