//! What the courier commands share about media: finding volume files in the
//! paths a user gives, the keys this site trusts (and those it revoked), and
//! turning the library's problems into one message and exit code.

use std::fs;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use parcel_format::header::VolumeHeader;
use parcel_format::read::{authenticate_volume, check_volume_len};
use parcel_format::sign::{PublicKey, TrustedKeys};
use parcel_format::verify::body_matches;
use parcel_format::volume::looks_like_volume;
use parcel_format::{FailureClass, ParcelId, Problem};

use serde::Serialize;

use crate::catalog::{Catalog, SiteRecord};
use crate::error::CliError;
use crate::home::Context;
use crate::output;

/// A file [`choose_copies`] leaves out, and why.
#[derive(Debug, Serialize)]
pub struct LeftOut {
    /// The file, as shown (a JSON string holds any name).
    pub path: String,
    /// The data volume it is a copy of (none for a parity volume).
    pub volume: Option<u32>,
    /// `damaged copy`, `other copy` or `parity volume damaged or unreadable`.
    pub reason: &'static str,
}

/// A file authenticated as a data volume: its index among the files given,
/// its header, and whether its length is the signed one.
type VolumeCopy = (usize, VolumeHeader, bool);

/// Copies of one volume examined at most; more are left to the reader
/// (which refuses them as given twice): each is hashed whole.
const MAX_COPIES: usize = 4;

/// Leaves out of `files` the copies of a data volume that are not read: of
/// several copies of one volume with the same signed header (a volume
/// rebuilt by `create --repair` given beside its damaged or cut-short
/// original, a medium copied twice), the first whose length and bytes match
/// the signed ones is read and the others are named (a damaged one in a
/// warning: its medium may be failing); the copies after it are not read at
/// all. When no copy is intact, the first of the right length that could be
/// read (else the first) is read, for the reader (and the repair data, if
/// any) to deal with. Files whose headers differ in anything (another signer
/// reusing the parcel id…) are not copies: they are all left to the reader,
/// which refuses what does not belong, as are more than [`MAX_COPIES`]. A
/// file named as a parity volume whose header is damaged (bad signature, not
/// a volume) or cannot be read is left out too, with a warning: repair data
/// is optional (FORMAT.md §13.1) and nothing is read from it.
pub fn choose_copies(
    ctx: &Context,
    files: Vec<PathBuf>,
    trust: &TrustedKeys,
) -> (Vec<PathBuf>, Vec<LeftOut>) {
    // By parcel id and volume number: each file's index in `files`, its
    // header, and whether its length is the signed one.
    let mut copies: BTreeMap<(ParcelId, u32), Vec<VolumeCopy>> = BTreeMap::new();
    let mut left_out: Vec<Option<LeftOut>> = files.iter().map(|_| None).collect();
    for (i, file) in files.iter().enumerate() {
        match authenticate_volume(file, trust) {
            Ok((header, _)) if header.is_parity_volume() => {}
            Ok((header, len)) => {
                let length_ok = check_volume_len(file, &header, len).is_ok();
                copies
                    .entry((header.parcel_id, header.volume))
                    .or_default()
                    .push((i, header, length_ok));
            }
            Err(
                problem @ (Problem::BadSignature { .. }
                | Problem::NotAVolume { .. }
                | Problem::Unreadable { .. }),
            ) if is_parity_name(file) => {
                output::warn(&format!(
                    "{problem}; it is named as a parity volume (repair data): left out, the parcel is read without it"
                ));
                if let Some(slot) = left_out.get_mut(i) {
                    *slot = Some(LeftOut {
                        path: file.display().to_string(),
                        volume: None,
                        reason: "parity volume damaged or unreadable",
                    });
                }
            }
            Err(_) => {}
        }
    }
    for ((_, volume), group) in copies {
        let same = group
            .first()
            .is_some_and(|(_, first, _)| group.iter().all(|(_, h, _)| h == first));
        if group.len() < 2 || group.len() > MAX_COPIES || !same {
            continue;
        }
        // The first intact copy; those before it are damaged (or unreadable).
        let mut damaged = Vec::new();
        let mut read = None;
        for (i, header, length_ok) in &group {
            let Some(file) = files.get(*i) else { continue };
            let intact = if *length_ok {
                body_matches(file, header).map_err(|e| e.to_string())
            } else {
                Ok(false)
            };
            match intact {
                Ok(true) => {
                    read = Some(*i);
                    break;
                }
                Ok(false) => damaged.push((*i, None)),
                Err(error) => damaged.push((*i, Some(error))),
            }
        }
        // None intact: the first of the right length that could be read
        // (the repair data may mend a few bad blocks of it), else the first;
        // the reader finds it damaged.
        let read = read.or_else(|| {
            group
                .iter()
                .find(|(i, _, length_ok)| {
                    *length_ok && damaged.iter().any(|(d, e)| d == i && e.is_none())
                })
                .or_else(|| group.first())
                .map(|(i, _, _)| *i)
        });
        let Some(read_path) = read.and_then(|i| files.get(i)) else {
            continue;
        };
        for (i, _, _) in &group {
            if Some(*i) == read {
                continue;
            }
            let Some(file) = files.get(*i) else { continue };
            let (reason, text) = match damaged.iter().find(|(d, _)| d == i) {
                Some((_, error)) => (
                    "damaged copy",
                    format!(
                        "{} is a damaged copy of volume {volume} ({}); {} is read instead{}",
                        file.display(),
                        match error {
                            Some(error) => format!("it cannot be read: {error}"),
                            None => "its length or bytes do not match the signed ones".to_owned(),
                        },
                        read_path.display(),
                        if damaged.len() == group.len() {
                            " (no copy is intact)"
                        } else {
                            ". The medium holding the damaged copy may be failing"
                        }
                    ),
                ),
                None => (
                    "other copy",
                    format!(
                        "{} is another copy of volume {volume}, not read: {} is read",
                        file.display(),
                        read_path.display()
                    ),
                ),
            };
            if reason == "damaged copy" {
                output::warn(&text);
            } else {
                ctx.note(&text);
            }
            if let Some(slot) = left_out.get_mut(*i) {
                *slot = Some(LeftOut {
                    path: file.display().to_string(),
                    volume: Some(volume),
                    reason,
                });
            }
        }
    }
    let mut chosen = Vec::new();
    let mut out = Vec::new();
    for (file, slot) in files.into_iter().zip(left_out) {
        match slot {
            Some(left) => out.push(left),
            None => chosen.push(file),
        }
    }
    (chosen, out)
}

/// Whether a volume file name is a parity volume's (`….par-NNN-of-MMM.tar`,
/// FORMAT.md §2.5).
fn is_parity_name(path: &Path) -> bool {
    named_like_volume(path)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_ascii_lowercase)
            .and_then(|n| {
                n.rsplit_once('.').and_then(|(rest, _)| {
                    rest.rsplit_once('.').map(|(_, number)| number.to_owned())
                })
            })
            .is_some_and(|number| number.starts_with("par-"))
}

/// Tells files already seen from new ones by device and inode, whatever
/// the path (links too): the same file given twice counts once.
#[derive(Default)]
pub struct SameFile(std::collections::HashSet<(u64, u64)>);

impl SameFile {
    /// Whether `path` is a file not seen before (a path that cannot be
    /// looked up counts as new: its reader reports it).
    pub fn first_time(&mut self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).map_or(true, |m| self.0.insert((m.dev(), m.ino())))
    }
}

/// Most problems listed in one message; the rest are counted.
const LISTED_PROBLEMS: usize = 20;

/// Volume files from the paths given: files as they are, and in each
/// directory the files that start like a parcel volume or are named like one
/// (`….NNN-of-MMM.tar`: a damaged volume is then reported by name rather
/// than passed over), not recursing. The same file given twice (by two paths,
/// or as a file and inside its directory) counts once. Anything but a
/// regular file or a directory is refused: reading a FIFO or a device would
/// wait for ever or never end.
pub fn volume_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        // Mistyped, or the medium not mounted: a usage error, as for
        // `create --package`.
        let meta = fs::metadata(path).map_err(CliError::input(
            "read",
            path,
            "the volume files or the directories that hold them (is the medium mounted?)",
        ))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = fs::read_dir(path)
                .map_err(CliError::io("list", path))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && (named_like_volume(p) || looks_like_volume(p)))
                .collect();
            if found.is_empty() && paths.len() > 1 {
                output::warn(&format!("{} holds no parcel volume", path.display()));
            }
            found.sort();
            files.append(&mut found);
        } else if meta.is_file() {
            files.push(path.clone());
        } else {
            return Err(CliError::Usage(format!(
                "{} is neither a volume file nor a directory of volumes (a device, FIFO or socket); give the volume files or the directories that hold them",
                path.display()
            )));
        }
    }
    // Nothing to read at all: most often a medium not mounted (its mount
    // point is an empty directory) or the wrong directory; a usage error, as
    // a path that does not exist is, not a verification failure.
    if files.is_empty() {
        let given: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        // Directories are not searched below their own level (a medium may
        // hold older parcels in folders); one level down is only looked at
        // to say where the volumes are.
        let below: Vec<String> = paths
            .iter()
            .filter(|p| p.is_dir())
            .flat_map(|p| fs::read_dir(p).into_iter().flatten().filter_map(Result::ok))
            .map(|e| e.path())
            .filter(|sub| {
                sub.is_dir()
                    && fs::read_dir(sub).is_ok_and(|mut entries| {
                        entries.any(|e| e.is_ok_and(|e| named_like_volume(&e.path())))
                    })
            })
            .map(|sub| sub.display().to_string())
            .collect();
        let hint = if below.is_empty() {
            String::new()
        } else {
            let (hold, that) = match below.len() {
                1 => ("holds", "that directory"),
                _ => ("hold", "those directories"),
            };
            format!(
                " ({} {hold} volume files: give {that}; directories are not searched below their own level)",
                below.join(", ")
            )
        };
        return Err(CliError::Usage(format!(
            "no parcel volume in {}{hint}: is the medium mounted? Give the volume files (….001-of-NNN.tar) or the directories that hold them (a file given by its own path is read whatever its name, so a renamed volume whose first bytes are damaged is reported)",
            given.join(", ")
        )));
    }
    let mut seen = SameFile::default();
    files.retain(|f| seen.first_time(f));
    Ok(files)
}

/// Refuses files that hold two or more whole parcels (every volume of each):
/// that is several parcels given at once, not a parcel with a stray volume
/// of another mixed in (which verification reports as a foreign volume).
/// Only headers that authenticate count.
pub fn one_parcel(files: &[PathBuf], trust: &TrustedKeys) -> Result<(), CliError> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut parcels: BTreeMap<String, (u32, BTreeSet<u32>, Vec<&Path>)> = BTreeMap::new();
    for file in files {
        let Ok((header, _)) = parcel_format::read::authenticate_volume(file, trust) else {
            continue;
        };
        if header.is_parity_volume() {
            continue;
        }
        let entry = parcels
            .entry(header.parcel_id.to_string())
            .or_insert_with(|| (header.volume_count, BTreeSet::new(), Vec::new()));
        entry.1.insert(header.volume);
        entry.2.push(file);
    }
    let whole: Vec<String> = parcels
        .iter()
        .filter(|(_, (count, numbers, _))| numbers.len() as u64 == u64::from(*count))
        .map(|(id, (count, _, paths))| {
            let first = paths
                .first()
                .map_or(String::new(), |p| p.display().to_string());
            format!("parcel {id} ({count} volume(s), {first}…)")
        })
        .collect();
    if whole.len() < 2 {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "the paths given hold {} whole parcels: {}; give the volume files of one parcel at a time",
        whole.len(),
        whole.join("; ")
    )))
}

/// A volume path as the catalog keeps it: absolute, since `parcel show` is
/// not run from where the path was given (symlinks resolved when it exists).
pub fn catalog_path(path: &Path) -> String {
    fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// What to call the volumes in a message when no manifest could be read:
/// the parcel the first authentic header names, else "the volumes given".
pub fn subject_of(files: &[PathBuf], trust: &TrustedKeys) -> String {
    files
        .iter()
        .find_map(|f| parcel_format::read::authenticate_volume(f, trust).ok())
        .map_or_else(
            || "the volumes given".to_owned(),
            |(h, _)| format!("parcel {} from {}", h.parcel_id, h.source_site),
        )
}

/// Whether the file's name is a volume's as `parcel create` names them:
/// `PACKAGE-vVERSION-XXXXXXXX.NNN-of-MMM.tar`, or `parcel-XXXXXXXX.…` for an
/// encrypted parcel, or `….par-NNN-of-MMM.tar`, `XXXXXXXX` the first 8 hex
/// digits of the parcel id (an unrelated split archive is not taken for one).
fn named_like_volume(path: &Path) -> bool {
    let digits = |s: &str| s.len() >= 3 && s.bytes().all(|b| b.is_ascii_digit());
    let parse = || -> Option<bool> {
        // Discs may hold names upper-cased.
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".tar")?;
        let (rest, count) = name.rsplit_once("-of-")?;
        let (stem, number) = rest.rsplit_once('.')?;
        let number = number.strip_prefix("par-").unwrap_or(number);
        let (stem, id) = stem.rsplit_once('-')?;
        let package = stem == "parcel"
            || stem
                .rsplit_once("-v")
                .is_some_and(|(_, v)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        Some(
            digits(number)
                && digits(count)
                && id.len() == 8
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && package,
        )
    };
    parse().unwrap_or(false)
}

/// The keys this site accepts signatures from, and those it revoked.
pub struct Trust {
    /// Trusted, unrevoked keys labelled by site code, this site's own included
    /// (so a source can verify the media it wrote).
    pub keys: TrustedKeys,
    revoked: Vec<(String, [u8; 32])>,
    /// This site's code.
    own: String,
}

impl Trust {
    /// Reads the trusted sites from the catalog.
    pub fn load(catalog: &Catalog, own: &SiteRecord) -> Result<Trust, CliError> {
        let mut keys = TrustedKeys::new();
        let mut revoked = Vec::new();
        if let Ok(key) = PublicKey::from_bytes(&own.public_key) {
            keys.add(own.code.clone(), key);
        }
        for site in catalog.trusted_sites()? {
            if site.revoked_at.is_some() {
                revoked.push((site.code, site.public_key));
            } else if let Ok(key) = PublicKey::from_bytes(&site.public_key) {
                keys.add(site.code, key);
            }
        }
        Ok(Trust {
            keys,
            revoked,
            own: own.code.clone(),
        })
    }

    /// The site whose revoked key this is.
    pub fn revoked_site(&self, key: &[u8; 32]) -> Option<&str> {
        self.revoked
            .iter()
            .find(|(_, k)| k == key)
            .map(|(code, _)| code.as_str())
    }
}

/// The error for a parcel with problems: a revoked signer or a policy problem
/// is a refusal (exit 4), an I/O problem a plain failure (exit 1), anything
/// else a verification failure (exit 3). The message lists the problems.
/// `volumes` maps volume numbers to the files read, to name the file of a
/// problem that gives only a volume number.
pub fn problems_error(
    subject: &str,
    problems: &[Problem],
    trust: &Trust,
    volumes: &[(u32, PathBuf)],
) -> CliError {
    let revoked = problems.iter().find_map(|p| match p {
        Problem::UntrustedSigner { key, .. } => trust.revoked_site(key),
        _ => None,
    });
    if let Some(site) = revoked {
        return CliError::Refused {
            subject: subject.to_owned(),
            reason: format!("signed with the revoked key of site {site}; ask {site} for a parcel signed with its new key"),
        };
    }
    // Signed by a key other than the one trusted for the site it names: a
    // key changed without notice, or a forgery. Either way, ask that site
    // (this site's own code: not its current key, so not made here now).
    let impostor = problems.iter().find_map(|p| match p {
        Problem::UntrustedSigner {
            fingerprint,
            claimed_site,
            ..
        } if trust.keys.has_label(claimed_site) => Some((claimed_site, fingerprint)),
        _ => None,
    });
    if let Some((site, fingerprint)) = impostor {
        let advice = if *site == trust.own {
            format!("it names this site ({site}) as its source, but this site's key did not sign it (fingerprint {fingerprint}): it was not made here with this site's key. Do not import it")
        } else {
            format!("it says it comes from site {site}, but it is signed with a key this site does not trust for {site} (fingerprint {fingerprint}). Do not import it: ask site {site} by another channel whether it changed its key; if it did, trust its new key file with `parcel key trust`")
        };
        return CliError::Verification {
            subject: subject.to_owned(),
            reason: format!("{advice}.{}", describe(problems, volumes)),
        };
    }
    let reason = describe(problems, volumes);
    // A file this site could not write (the repair's scratch, the staging
    // area) is this site's disk, not the media: whatever else that left
    // unread is no finding about them.
    let worst = problems.iter().map(Problem::class).min();
    if problems.iter().any(|p| matches!(p, Problem::Write { .. }))
        && !matches!(
            worst,
            Some(FailureClass::Signature) | Some(FailureClass::Policy)
        )
    {
        return CliError::Failed {
            subject: subject.to_owned(),
            reason: format!(
                "stopped: this site could not write what it needed (its own disk, not the media):{reason}"
            ),
        };
    }
    match worst {
        Some(FailureClass::Policy) => CliError::Refused {
            subject: subject.to_owned(),
            reason,
        },
        Some(FailureClass::Io) => CliError::Failed {
            subject: subject.to_owned(),
            reason: format!("cannot be read whole:{reason}"),
        },
        _ => CliError::Verification {
            subject: subject.to_owned(),
            reason,
        },
    }
}

/// The problems as an indented list, the most fundamental class first.
pub fn describe(problems: &[Problem], volumes: &[(u32, PathBuf)]) -> String {
    // The chunks a missing or damaged volume held are one line per volume:
    // listed one by one they buried the line saying what is wrong.
    let mut unavailable: std::collections::BTreeMap<u32, u64> = Default::default();
    // Every volume of a parcel signed by a key not trusted here says so: one
    // line for the key, counting the other volumes, rather than one each.
    let mut signed_by: std::collections::HashMap<&str, u32> = Default::default();
    let mut sorted: Vec<&Problem> = problems
        .iter()
        .filter(|p| match p {
            Problem::ChunkUnavailable { volume, count, .. } => {
                *unavailable.entry(*volume).or_default() += u64::from(*count);
                false
            }
            Problem::UntrustedSigner { fingerprint, .. } => {
                let seen = signed_by.entry(fingerprint.as_str()).or_default();
                *seen += 1;
                *seen == 1
            }
            _ => true,
        })
        .collect();
    sorted.sort_by_key(|p| p.class());
    let mut text = String::new();
    for (volume, count) in &unavailable {
        text.push_str(&format!(
            "\n  - {count} chunk(s) of volume {volume} cannot be read, as that volume is missing or damaged; the files made of them are not checked ({})",
            FailureClass::Chunk
        ));
    }
    let summary = std::mem::take(&mut text);
    for p in sorted.iter().take(LISTED_PROBLEMS) {
        let file = p
            .volume_without_path()
            .and_then(|n| volumes.iter().find(|(v, _)| *v == n))
            .map(|(_, path)| format!("{}: ", path.display()))
            .unwrap_or_default();
        let others = match p {
            Problem::UntrustedSigner { fingerprint, .. } => {
                match signed_by.get(fingerprint.as_str()).map_or(0, |n| n - 1) {
                    0 => String::new(),
                    n => format!(" [and {n} more volume(s) given, signed by that key]"),
                }
            }
            _ => String::new(),
        };
        text.push_str(&format!("\n  - {file}{}{others} ({})", hint(p), p.class()));
    }
    if sorted.len() > LISTED_PROBLEMS {
        text.push_str(&format!(
            "\n  … and {} more problems",
            sorted.len() - LISTED_PROBLEMS
        ));
    }
    text.push_str(&summary);
    text
}

/// A problem with what the user can do about it.
fn hint(problem: &Problem) -> String {
    let advice = match problem {
        Problem::MissingVolume { .. } => {
            "; if that medium is lost, `parcel verify --repair-request FILE` on the volumes at hand writes a request the sender answers with the lost volumes (for an encrypted parcel, whose source cannot rebuild volumes, ask the sender for a new parcel)"
        }
        Problem::UntrustedSigner { .. } => {
            "; if that site is to be trusted, trust its key with `parcel key trust` after checking its fingerprint"
        }
        Problem::VolumeLength { .. }
        | Problem::VolumeCorrupt { .. }
        | Problem::PackCorrupt { .. }
        | Problem::ChunkCorrupt { .. } => {
            "; copy the volume again from the original medium, or ask the sender for a new copy (`parcel verify --repair-request FILE` writes the request; for an encrypted parcel, ask for a new parcel)"
        }
        Problem::ForeignVolume { .. } | Problem::DuplicateVolume { .. } => "",
        Problem::BaseModified { .. } => {
            "; the package in this store changed since it was imported: move its directory out of the store and import its parcel again to restore it, or ask the sender for a full parcel"
        }
        Problem::BaseMissing { .. } => "; ask the sender for a full parcel",
        Problem::CannotDecrypt { .. } => {
            "; import it at the site it is addressed to (`parcel verify --media` checks the media anywhere)"
        }
        Problem::RepairImpossible { .. } => {
            "; find another copy of the lost volumes, or ask the sender to send them again"
        }
        Problem::BadSignature { .. } => {
            "; the medium may have been tampered with: do not import it"
        }
        Problem::Write { .. } => {
            "; free space on that disk or let this user write there, then run the command again"
        }
        Problem::Unreadable { .. } => {
            "; check that the medium is in and readable by this user (run parcel as a user who can read it, or fix the file's permissions), then run the command again; if the medium itself fails, copy the volume again from another copy"
        }
        Problem::NotAVolume { .. } => {
            "; leave it out, or if it should be a volume, copy it again from the original medium"
        }
        _ => "",
    };
    format!("{problem}{advice}")
}

/// A scratch directory under `parent` for volumes rebuilt from parity
/// (FORMAT.md §13), named for this process: the repair creates it only when
/// it rebuilds a volume, and it is removed when this value is dropped.
pub struct RepairScratch(PathBuf);

impl RepairScratch {
    /// A scratch directory name under `parent`, not yet created.
    pub fn new(parent: &Path) -> RepairScratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        RepairScratch(parent.join(format!("repair-{}-{nanos}", std::process::id())))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Removes the scratch directories under `parent` left by a command that
    /// was killed while repairing (rebuilt volumes can be gigabytes): those
    /// named after a process that no longer exists. A directory of a running
    /// process (or of one whose number was reused) is left alone.
    pub fn sweep_stale(parent: &Path) {
        let Ok(listing) = fs::read_dir(parent) else {
            return;
        };
        for item in listing.flatten() {
            let name = item.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix("repair-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok());
            if let Some(pid) = pid {
                if pid > 0 && !process_exists(pid) {
                    let _ = fs::remove_dir_all(item.path());
                }
            }
        }
    }
}

/// Whether a process with this number exists (signal 0 checks without sending).
fn process_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only reports whether the
    // process exists (ESRCH when it does not).
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

impl Drop for RepairScratch {
    fn drop(&mut self) {
        // Only its own directory: the parent (`<home>/repair/`) stays, since
        // removing it when empty could pull it from under a second command
        // that is about to make its scratch there.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether the directory of `path` accepts a new file.
pub fn dir_writable(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_of_plain_and_encrypted_parcels_are_recognised() {
        for name in [
            "CEN00012-v24-3c4ea301.001-of-002.tar",
            "tools-v1-0011aabb.par-001-of-002.tar",
            "parcel-3c4ea301.001-of-002.tar",
            "parcel-3c4ea301.par-002-of-002.tar",
        ] {
            assert!(named_like_volume(Path::new(name)), "{name}");
        }
        for name in [
            "backup.tar.001-of-002.tar",
            "parcel-3c4ea30.001-of-002.tar",
            "parcel-3c4ea301.01-of-002.tar",
            "CEN00012-vX-3c4ea301.001-of-002.tar",
            "notes-3c4ea301.001-of-002.tar",
            "parcel-3c4ea301.001-of-002.zip",
        ] {
            assert!(!named_like_volume(Path::new(name)), "{name}");
        }
    }
}
