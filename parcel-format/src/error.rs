//! Errors: what went wrong, where, and which failure class it belongs to.
//!
//! Reading reports [`Problem`]s: each names the volume, offset, pack, chunk or
//! path at fault and belongs to exactly one [`FailureClass`]. The classes are
//! the outcomes the test vectors state (`expect: chunk failure`, …), kept apart
//! so that one kind of error never hides another. Writing fails with a
//! [`WriteError`].

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The class of a reading failure, from most to least fundamental
/// (FORMAT.md §7): a parcel's class is that of its most fundamental problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureClass {
    /// A volume header's signature is invalid, or its signer is not trusted.
    Signature,
    /// A file is not a parcel volume, is truncated or damaged as a whole, or
    /// volumes are missing, duplicated or belong to another parcel.
    Volume,
    /// A declared size is over a cap of FORMAT.md §8.
    Limit,
    /// The index is corrupt, does not decode, or contradicts itself or the headers.
    Index,
    /// A path in the file table is unsafe or collides with another.
    Path,
    /// A pack, chunk or file does not hash to what the index says.
    Chunk,
    /// The parcel is intact but not for this reader (e.g. another destination).
    Policy,
    /// Reading a volume or writing the extracted tree failed at the operating system.
    Io,
}

impl FailureClass {
    /// The name test vectors use, e.g. `chunk failure`.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Signature => "signature failure",
            FailureClass::Volume => "volume failure",
            FailureClass::Limit => "limit failure",
            FailureClass::Index => "index failure",
            FailureClass::Path => "path failure",
            FailureClass::Chunk => "chunk failure",
            FailureClass::Policy => "policy failure",
            FailureClass::Io => "io failure",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing wrong with a set of volumes, with its place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Problem {
    /// A file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
    /// No file was given, or none was a volume.
    #[error("no parcel volume among the files given")]
    NoVolumes,
    /// A file does not start with a parcel volume header.
    #[error("{path}: not a parcel volume: {reason}")]
    NotAVolume {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A volume was written by a newer format version.
    #[error("{path}: volume uses format version {version}; this reader knows versions 1, 2 and 3 only, upgrade parcel")]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        version: u16,
    },
    /// A volume header's signature does not verify.
    #[error("{path}: the volume header signature is invalid (tampered or damaged header)")]
    BadSignature {
        /// The file.
        path: PathBuf,
    },
    /// A volume is signed by a key the reader does not trust.
    #[error("{path}: signed by an untrusted key (fingerprint {fingerprint}); it says it comes from site {claimed_site}")]
    UntrustedSigner {
        /// The file.
        path: PathBuf,
        /// The signer's public key.
        key: [u8; 32],
        /// The signer's fingerprint.
        fingerprint: String,
        /// The source site its header names (signed by that untrusted key,
        /// so only a claim).
        claimed_site: String,
    },
    /// A volume belongs to another parcel than the one being read.
    #[error("{path}: volume {volume} of another parcel ({parcel}); remove it from the set")]
    ForeignVolume {
        /// The file.
        path: PathBuf,
        /// Its volume number.
        volume: u32,
        /// The parcel it belongs to.
        parcel: String,
    },
    /// The same volume was given twice.
    #[error("{path}: volume {volume} given twice (also {first}); remove one copy")]
    DuplicateVolume {
        /// The second file.
        path: PathBuf,
        /// The volume number.
        volume: u32,
        /// The first file with that number.
        first: PathBuf,
    },
    /// A volume of the parcel was not among the files given.
    #[error("volume {volume} of {count} is missing; add the medium that holds it")]
    MissingVolume {
        /// The missing volume number (1-based).
        volume: u32,
        /// The parcel's volume count.
        count: u32,
    },
    /// A volume's length differs from what its header declares (truncated or extended).
    #[error("{path}: {} is {actual} bytes, its header says {expected}; the copy {}", volume_name(*.volume), if actual < expected { "is cut short" } else { "has bytes added at its end (a tool or file system that pads files, or another file written over it)" })]
    VolumeLength {
        /// The file.
        path: PathBuf,
        /// The volume number (0 for a parity volume, FORMAT.md §13.2).
        volume: u32,
        /// Declared length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A volume's body does not hash to its signed value.
    #[error("{path}: volume {volume} is damaged (its contents do not match the signed hash)")]
    VolumeCorrupt {
        /// The file.
        path: PathBuf,
        /// The volume number.
        volume: u32,
    },
    /// A size declared in a header or the index is over a cap.
    #[error("{what} is {value}, over the limit of {limit}")]
    Limit {
        /// What was declared.
        what: String,
        /// Declared value.
        value: u64,
        /// The cap.
        limit: u64,
    },
    /// The index is damaged, does not decode, or contradicts the headers.
    #[error("index: {reason}")]
    Index {
        /// What is wrong.
        reason: String,
    },
    /// A file-table path is unsafe or collides with another.
    #[error("path {path:?}: {reason}")]
    Path {
        /// The path as written in the file table.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A stored pack does not hash to its recorded value.
    #[error("volume {volume} offset {offset}: pack {pack} is corrupt ({reason})")]
    PackCorrupt {
        /// Volume number.
        volume: u32,
        /// Byte offset of the pack in the volume file.
        offset: u64,
        /// Pack number in the index.
        pack: u32,
        /// What failed: stored hash, decompression, length.
        reason: String,
    },
    /// Chunks of one pack do not hash to their recorded values: the first
    /// of them, and how many more (one problem per pack, however many).
    #[error("volume {volume} offset {offset}: chunk {chunk} is corrupt (pack {pack}){}", and_more(*.more))]
    ChunkCorrupt {
        /// Volume number.
        volume: u32,
        /// Byte offset of its pack in the volume file.
        offset: u64,
        /// Chunk number in the index (the pack's first bad one).
        chunk: u32,
        /// Pack number.
        pack: u32,
        /// Other chunks of the pack that are corrupt too.
        more: u32,
    },
    /// The chunks of one pack cannot be read because their volume is
    /// missing (one problem per pack).
    #[error("{count} chunk(s) from chunk {chunk} are unavailable (volume {volume}, pack {pack} missing or corrupt)")]
    ChunkUnavailable {
        /// The pack's first chunk number.
        chunk: u32,
        /// The pack's chunks, from `chunk` on.
        count: u32,
        /// Volume that should hold it.
        volume: u32,
        /// Pack that should hold it.
        pack: u32,
    },
    /// A file's content does not hash to its recorded value.
    #[error("file {path:?}: content does not match its recorded SHA-256")]
    FileCorrupt {
        /// The file's path in the package.
        path: String,
    },
    /// The parcel is not addressed to the reader's site.
    #[error("parcel is addressed to {destinations}, not to {site}")]
    WrongDestination {
        /// The reader's site.
        site: String,
        /// The parcel's destinations, comma-separated.
        destinations: String,
    },
    /// The parcel is encrypted to its destination (FORMAT.md §12) and this
    /// reader has no identity it is encrypted to.
    #[error("the parcel is encrypted to its destination and {}: only the destination site can read its file table and content (checking the media needs no key)", if *identity_given { "this site's encryption key is not among its recipients" } else { "no decryption key was given" })]
    CannotDecrypt {
        /// Whether an identity was tried (and is not a recipient).
        identity_given: bool,
    },
    /// A delta parcel's base version is not available to take chunks from.
    #[error("this delta parcel builds on version {version} of the package, which is not available: {reason}")]
    BaseMissing {
        /// The base version.
        version: u64,
        /// Why it is not available.
        reason: String,
    },
    /// A chunk read from the base does not match its hash: the base copy
    /// differs from the version the sender built on.
    #[error("{path}: the base version's copy does not hold what the parcel names ({what}): it was modified since its import, or the parcel is faulty")]
    BaseModified {
        /// The base file read.
        path: PathBuf,
        /// What does not match: a chunk at an offset, or the whole file.
        what: String,
    },
    /// A parity volume cannot be used for repair (FORMAT.md §13.5): damaged,
    /// inconsistent with the others, or its block table does not match.
    #[error("{path}: parity volume unusable: {reason}")]
    ParityUnusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Data volumes are missing or damaged beyond what the repair data can
    /// rebuild (FORMAT.md §13.5).
    #[error("repair impossible: {lost}; {stripes_failed} of {stripes} stripes cannot be rebuilt (stripe {stripe} lost {erased} data blocks and has {usable} usable recovery blocks): this damage needs at least {needed_percent}% parity, every parity volume readable, and the parcel has {percent}%")]
    RepairImpossible {
        /// Which data volumes lost what, e.g. "volume 2 of 3 missing, volume 3 of 3: 4 damaged blocks".
        lost: String,
        /// Stripes that cannot be rebuilt.
        stripes_failed: u64,
        /// Stripes in the parcel.
        stripes: u64,
        /// The first stripe that cannot be rebuilt.
        stripe: u64,
        /// Data blocks lost in that stripe.
        erased: u64,
        /// Recovery blocks of that stripe that could be read intact.
        usable: u64,
        /// The parity, in percent of each stripe, the worst stripe needed.
        needed_percent: u64,
        /// The parity the parcel has, in percent of each stripe.
        percent: u64,
    },
    /// Writing the extracted tree failed.
    #[error("{path}: {source}")]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
}

impl Problem {
    /// The volume number a problem names without naming its file (a pack,
    /// chunk or unavailable chunk), so that a caller can name the file.
    pub fn volume_without_path(&self) -> Option<u32> {
        match self {
            Problem::PackCorrupt { volume, .. }
            | Problem::ChunkCorrupt { volume, .. }
            | Problem::ChunkUnavailable { volume, .. } => Some(*volume),
            _ => None,
        }
    }

    /// The failure class this problem belongs to.
    pub fn class(&self) -> FailureClass {
        match self {
            Problem::BadSignature { .. } | Problem::UntrustedSigner { .. } => {
                FailureClass::Signature
            }
            Problem::NotAVolume { .. }
            | Problem::NoVolumes
            | Problem::UnknownVersion { .. }
            | Problem::ForeignVolume { .. }
            | Problem::DuplicateVolume { .. }
            | Problem::MissingVolume { .. }
            | Problem::VolumeLength { .. }
            | Problem::VolumeCorrupt { .. }
            | Problem::ParityUnusable { .. }
            | Problem::RepairImpossible { .. } => FailureClass::Volume,
            Problem::Limit { .. } => FailureClass::Limit,
            Problem::Index { .. } => FailureClass::Index,
            Problem::Path { .. } => FailureClass::Path,
            Problem::PackCorrupt { .. }
            | Problem::ChunkCorrupt { .. }
            | Problem::ChunkUnavailable { .. }
            | Problem::FileCorrupt { .. } => FailureClass::Chunk,
            Problem::WrongDestination { .. }
            | Problem::CannotDecrypt { .. }
            | Problem::BaseMissing { .. }
            | Problem::BaseModified { .. } => FailureClass::Policy,
            Problem::Unreadable { .. } | Problem::Write { .. } => FailureClass::Io,
        }
    }

    pub(crate) fn index(reason: impl Into<String>) -> Problem {
        Problem::Index {
            reason: reason.into(),
        }
    }

    pub(crate) fn limit(what: impl Into<String>, value: u64, limit: u64) -> Problem {
        Problem::Limit {
            what: what.into(),
            value,
            limit,
        }
    }

    pub(crate) fn path(path: &str, reason: impl Into<String>) -> Problem {
        Problem::Path {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// How many of the things a package holds that parcel does not carry are
/// named, one line each ([`WriteError::UnsupportedEntries`]).
pub const MAX_LISTED_REFUSALS: usize = 50;

/// The lines of [`WriteError::UnsupportedEntries`].
fn refusal_list(listed: &[(PathBuf, String)], unlisted: u64) -> String {
    let mut text: String = listed
        .iter()
        .map(|(path, reason)| format!("\n  - {}: {reason}", path.display()))
        .collect();
    if unlisted > 0 {
        text.push_str(&format!("\n  … and {unlisted} more"));
    }
    text
}

/// Why writing a parcel failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A package file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The package path.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The package holds something parcel does not carry (device, socket, FIFO,
    /// non-UTF-8 name, symlink leaving the tree, …).
    #[error("{path}: {reason}")]
    Unsupported {
        /// The package path.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The package holds several things parcel does not carry: each is named
    /// with what to do (the first [`MAX_LISTED_REFUSALS`] of them), so that
    /// a tree is mended in one pass, not one refusal per run.
    #[error("the package holds {} things parcel does not carry:{}", .listed.len() as u64 + .unlisted, refusal_list(.listed, *.unlisted))]
    UnsupportedEntries {
        /// Package paths and what is wrong with each, in walk order.
        listed: Vec<(PathBuf, String)>,
        /// How many more were found and not listed.
        unlisted: u64,
    },
    /// The parcel description or options are invalid.
    #[error("{0}")]
    Invalid(String),
    /// A package file changed while it was being read.
    #[error("{path}: changed while being read (size was {expected}, read {actual}); retry when it is stable")]
    Changed {
        /// The package path.
        path: PathBuf,
        /// Size when the tree was walked.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A package file was written to while it was being read (its size
    /// stayed the same, but its modification time moved): what was read may
    /// be half old, half new.
    #[error("{path}: modified while being read; retry when nothing writes to the package")]
    Modified {
        /// The package path.
        path: PathBuf,
    },
    /// Writing a volume failed.
    #[error("writing volume {volume}: {source}")]
    Volume {
        /// Volume number (1-based).
        volume: u32,
        /// What the operating system said.
        source: io::Error,
    },
    /// The volume size is too small for this parcel.
    #[error("{0}")]
    TooSmall(String),
    /// The output would need more volumes than the format allows.
    #[error("the parcel needs more than {max} volumes; choose a larger --volume-size", max = crate::limits::MAX_VOLUMES)]
    TooManyVolumes,
}

/// "volume N", or "a parity volume" for number 0 (FORMAT.md §13.2).
fn volume_name(volume: u32) -> String {
    if volume == 0 {
        "a parity volume".to_owned()
    } else {
        format!("volume {volume}")
    }
}

/// ", and N more chunk(s) of that pack" when N > 0.
fn and_more(more: u32) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(", and {more} more chunk(s) of that pack")
    }
}
