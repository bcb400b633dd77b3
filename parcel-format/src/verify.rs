//! Verifying media without importing, with a report naming each missing
//! volume and each bad volume, pack, chunk and file (FORMAT.md §7). Needs no
//! destination store.
//!
//! Two depths. [`verify_media`] proves the media hold exactly what the signer
//! wrote: every byte of every volume present is hashed against its signed
//! SHA-256 (volumes in parallel), of the index only the head is kept, to
//! name the parcel (and a delta's base version), and a damaged volume is then searched pack by pack to
//! name the damaged packs. [`verify`] also decompresses every pack
//! and checks every chunk and file hash, which catches what the media check
//! cannot: a trusted signer that wrote content inconsistent with its own file
//! table. Import makes the content checks as it extracts.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::content::PackCache;
use crate::encrypt::Identity;
use crate::error::{FailureClass, Problem};
use crate::header::{VolumeHeader, FLAG_ENCRYPTED};
use crate::limits::VOLUME_PREFIX;
use crate::manifest::EntryKind;
use crate::read::{
    body_bytes, check_index, open_volumes, read_index_head, read_keys_entry, worst_class, Parcel,
    Volume,
};
use crate::sha256;
use crate::sign::TrustedKeys;
use crate::volume::{ReadBack, READ_BACK_HEAD};
use crate::ParcelId;

/// What verifying a set of volumes found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// The parcel read: the one whose volumes FORMAT.md §7.2 chose, when
    /// any volume header authenticated (its index may still have failed).
    pub parcel_id: Option<ParcelId>,
    /// The trusted signer's label.
    pub signer: Option<String>,
    /// The site the parcel says it comes from (its signed headers'
    /// `source_site`). A reader that knows keys by site code expects it to be
    /// [`VerifyReport::signer`]; the format leaves that policy to it
    /// (FORMAT.md §7.6).
    pub source_site: Option<String>,
    /// Package id and version.
    pub package: Option<(String, u64)>,
    /// The sites the parcel is addressed to (from its authenticated
    /// manifest; empty when it could not be read).
    pub destinations: Vec<String>,
    /// The parcel's volume count.
    pub volume_count: Option<u32>,
    /// Authenticated volumes present: number and path.
    pub volumes: Vec<(u32, PathBuf)>,
    /// Bytes of package content checked.
    pub content_bytes: u64,
    /// For a delta parcel (FORMAT.md §11), the base version whose chunks it
    /// takes from the destination's store: files using them are checked at
    /// import, not here. The media check reads it past the tables of the
    /// index without keeping them ([`crate::manifest_head`]).
    pub base_version: Option<u64>,
    /// Whether the parcel is encrypted to its destination (FORMAT.md §12).
    pub encrypted: bool,
    /// Whether only the media were checked because the parcel is encrypted
    /// and the reader cannot decrypt it: no index, pack, chunk or file was
    /// read, and the package is unknown.
    pub media_only: bool,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the parcel is complete and intact.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The class of the most fundamental problem, `None` when intact.
    pub fn class(&self) -> Option<FailureClass> {
        worst_class(&self.problems)
    }
}

/// How deep [`verify_with`] checks (FORMAT.md §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every byte of every volume against its signed hash.
    Media,
    /// The media, and every pack, chunk and file hash.
    Content,
}

/// Opens the parcel in `paths` and checks everything: the media
/// ([`verify_media`]) and every pack, chunk and file hash.
/// `progress(done, total)` reports bytes checked. An encrypted parcel needs
/// [`verify_with`] and the destination's identity.
pub fn verify(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    verify_with(paths, trust, None, Depth::Content, progress)
}

/// Opens the parcel in `paths`, decrypting it with `identity` if it is
/// encrypted (FORMAT.md §12), and checks it to `depth`.
///
/// An encrypted parcel the reader cannot decrypt (no identity, or not one of
/// its recipients) is still checked as far as needs no key: headers, the
/// set of volumes, the stored index's and the keys entry's signed hashes and
/// every byte of every volume; the report then has `media_only` set, and a
/// content check adds [`Problem::CannotDecrypt`] (a policy failure).
pub fn verify_with(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    identity: Option<&Identity>,
    depth: Depth,
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    match depth {
        Depth::Content => verify_to(paths, trust, identity, true, &[], progress),
        Depth::Media => verify_media_named(paths, trust, identity, progress),
    }
}

/// Opens the parcel in `paths` and checks that the media hold exactly what
/// the signer wrote: headers, index, and every byte of every volume against
/// its signed hash. `progress(done, total)` reports bytes read.
pub fn verify_media(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    verify_media_named(paths, trust, None, progress)
}

/// The read-back after writing: [`verify_media`], where a volume whose body
/// was already read back from the medium as it was written
/// ([`crate::write::WriteOptions::read_back`]) is judged by the SHA-256 read
/// back then, and only the head of its body, which sealing wrote again, is
/// read again ([`ReadBack::head_sha256`]). Headers and the stored index are
/// read from the media (a caller drops the volumes from the system's cache
/// first, as the `parcel` command does); a volume not in `read_back` is
/// read whole.
///
/// The index is not decoded, not even its head as [`verify_media`] does to
/// name the parcel: its stored bytes are checked against their
/// signed hash, which proves the media hold what was written as well (a
/// toolchain's index took 0.1 s to decode and check again, a million
/// files' several seconds). Only when something is wrong is the parcel
/// opened whole, to name the damaged packs.
pub fn verify_written(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    read_back: &[ReadBack],
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    let report = verify_index_unread(paths, trust, Index::HashOnly, read_back, progress);
    if report.is_ok() {
        return report;
    }
    verify_to(paths, trust, None, false, read_back, progress)
}

/// The media check (FORMAT.md §7.4): [`verify_index_unread`], naming the
/// parcel from the head of its index (decrypted with `identity` when it is
/// encrypted and can be) and, of a delta, its base version; the rest of the
/// index is hashed and not kept.
/// Only when a volume is damaged is the whole index decoded, to name the
/// damaged packs from the pack table (§7.4 step 2); the volumes are not
/// hashed again.
fn verify_media_named(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    identity: Option<&Identity>,
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    let mut report = verify_index_unread(paths, trust, Index::Head(identity), &[], progress);
    let damaged: Vec<u32> = report
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::VolumeCorrupt { volume, .. } => Some(*volume),
            _ => None,
        })
        .collect();
    // Without a head the index failed or cannot be decrypted (a problem or
    // `media_only` says which): its pack table cannot be had either.
    if damaged.is_empty() || report.package.is_none() {
        return report;
    }
    // An index that contradicts itself past its head does not open; the
    // damaged volumes are then reported without their packs.
    if let Ok(parcel) = Parcel::open_with(paths, trust, identity) {
        for number in damaged {
            if let Some(volume) = parcel.volumes().get(&number) {
                report.problems.extend(parcel.damaged_packs(number, volume));
            }
        }
    }
    report
}

fn verify_to(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    identity: Option<&Identity>,
    content: bool,
    read_back: &[ReadBack],
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    match Parcel::open_with(paths, trust, identity) {
        Err(problems)
            if problems
                .iter()
                .any(|p| matches!(p, Problem::CannotDecrypt { .. })) =>
        {
            let why = problems
                .into_iter()
                .filter(|p| matches!(p, Problem::CannotDecrypt { .. }))
                .take(1)
                .collect();
            let index = match content {
                true => Index::Undecryptable(why),
                false => Index::HashOnly,
            };
            verify_index_unread(paths, trust, index, read_back, progress)
        }
        Err(problems) => {
            // The set of volumes may have been found, and the index failed
            // after (§7.3): the report still says which parcel was read, so
            // that the reader can ask its sender for what is missing.
            let set = open_volumes(paths, trust).ok();
            VerifyReport {
                parcel_id: set.as_ref().map(|s| s.header.parcel_id),
                signer: set
                    .as_ref()
                    .and_then(|s| trust.label_of_bytes(&s.header.signer))
                    .map(str::to_owned),
                source_site: set.as_ref().map(|s| s.header.source_site.clone()),
                volume_count: set.as_ref().map(|s| s.header.volume_count),
                volumes: set
                    .as_ref()
                    .map(|s| {
                        s.volumes
                            .iter()
                            .map(|(n, v)| (*n, v.path.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                problems,
                ..VerifyReport::default()
            }
        }
        Ok(mut parcel) => {
            let mut report = VerifyReport {
                parcel_id: Some(parcel.manifest().parcel_id),
                signer: Some(parcel.signer().to_owned()),
                source_site: Some(parcel.manifest().source_site.clone()),
                package: Some((
                    parcel.manifest().package_id.clone(),
                    parcel.manifest().package_version,
                )),
                destinations: parcel.manifest().destinations.clone(),
                volume_count: Some(parcel.manifest().volume_count),
                volumes: parcel
                    .volumes()
                    .iter()
                    .map(|(n, v)| (*n, v.path.clone()))
                    .collect(),
                content_bytes: if content {
                    parcel.manifest().content_bytes()
                } else {
                    0
                },
                base_version: parcel.manifest().base.as_ref().map(|b| b.package_version),
                encrypted: parcel.is_encrypted(),
                media_only: false,
                problems: Vec::new(),
            };
            let mut found = if content {
                parcel.verify(progress)
            } else {
                parcel.verify_media_read_back(read_back, progress)
            };
            report.problems = parcel.take_problems();
            report.problems.append(&mut found);
            report
        }
    }
}

/// What [`verify_index_unread`] reads of the index beyond checking its
/// stored bytes against their signed hash.
enum Index<'a> {
    /// Nothing more. The report names no package and says `media_only`.
    HashOnly,
    /// Its head (FORMAT.md §7.4, the media check), to name the package and
    /// its destinations, decrypting it with the identity if it is
    /// encrypted. When it cannot be decrypted, the report says
    /// `media_only` as with [`Index::HashOnly`]; when the index fails, a
    /// problem says so and `media_only` is false.
    Head(Option<&'a Identity>),
    /// Nothing, for a content check of an encrypted parcel this reader
    /// cannot decrypt: these problems say why it could not be done.
    Undecryptable(Vec<Problem>),
}

/// The media check without decoding the whole index: headers, the set of
/// volumes, the stored index's and (encrypted) the keys entry's signed
/// hashes, and every byte of every volume (FORMAT.md §7.4, §12.5); and, as
/// `index` says, its head. It is all that can be checked of an encrypted
/// parcel this reader cannot decrypt.
fn verify_index_unread(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    index: Index<'_>,
    read_back: &[ReadBack],
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    let set = match open_volumes(paths, trust) {
        Ok(set) => set,
        Err(problems) => {
            return VerifyReport {
                problems,
                ..VerifyReport::default()
            }
        }
    };
    let signer = trust.label_of_bytes(&set.header.signer).map(str::to_owned);
    let volumes: Vec<(&u32, &Volume)> = set.volumes.iter().collect();
    let mut problems = set.problems.clone();
    let indexed = check_index(&set.volumes, &set.header);
    let encrypted = set.header.flags & FLAG_ENCRYPTED != 0;
    let keys = match encrypted {
        true => read_keys_entry(&set.volumes, &set.header).map(drop),
        false => Ok(()),
    };
    let mut head = None;
    let mut undecryptable = Vec::new();
    // Whether the media are all that was checked because the index is not
    // read (or cannot be decrypted): not when it failed (a problem says so).
    let media_only = match (indexed, keys, index) {
        (Ok(()), Ok(()), Index::Head(identity)) => match read_index_head(&set, identity) {
            Ok(h) => {
                head = Some(h);
                false
            }
            // Encrypted to another site, or no key.
            Err(Problem::CannotDecrypt { .. }) => true,
            Err(p) => {
                problems.push(p);
                false
            }
        },
        (indexed, keys, index) => {
            problems.extend(indexed.err());
            problems.extend(keys.err());
            match index {
                Index::Head(_) => false,
                Index::HashOnly => true,
                Index::Undecryptable(why) => {
                    undecryptable = why;
                    true
                }
            }
        }
    };
    let total = body_bytes(set.volumes.values());
    problems.extend(hash_bodies(&volumes, read_back, &mut |done| {
        progress(done, total)
    }));
    // A content check cannot be done: say why.
    problems.append(&mut undecryptable);
    let (package, destinations, base_version) = match head {
        Some(h) => (
            Some((h.package_id, h.package_version)),
            h.destinations,
            h.base_version,
        ),
        None => (None, Vec::new(), None),
    };
    VerifyReport {
        parcel_id: Some(set.header.parcel_id),
        signer,
        source_site: Some(set.header.source_site.clone()),
        package,
        destinations,
        volume_count: Some(set.header.volume_count),
        volumes: set
            .volumes
            .iter()
            .map(|(n, v)| (*n, v.path.clone()))
            .collect(),
        content_bytes: 0,
        base_version,
        encrypted,
        media_only,
        problems,
    }
}

impl Parcel {
    /// Checks every byte of the volumes present: each volume body against its
    /// signed hash, each pack's stored hash, each chunk's and each file's
    /// hash. Returns the problems found (the set-level ones are in
    /// [`Parcel::problems`]).
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Vec<Problem> {
        let stored = body_bytes(self.volumes().values());
        // Saturating: a delta's files taken whole from its base are not
        // capped by the manifest's checks (their base is checked later).
        let total = stored.saturating_add(self.manifest().content_bytes());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        // The volume bodies are hashed beside the content check rather than
        // before it: a parcel of one large volume otherwise hashes it on one
        // core while the other waits. The content check reads the same bytes
        // a little behind the hashing, from the page cache.
        let hashed = AtomicU64::new(0);
        let (mut problems, mut content) = std::thread::scope(|scope| {
            let media = scope
                .spawn(|| self.hash_bodies(&[], &mut |done| hashed.store(done, Ordering::Relaxed)));
            let mut checked = 0u64;
            let mut cache = PackCache::with_workers(self, scope, workers);
            let mut found = Vec::new();
            self.check_files(&mut cache, &mut found, &mut |n| {
                checked = checked.saturating_add(n);
                progress(
                    hashed.load(Ordering::Relaxed).saturating_add(checked),
                    total,
                );
            });
            // Pack and chunk problems come before the file problems they cause.
            cache.problems.append(&mut found);
            let content = std::mem::take(&mut cache.problems);
            drop(cache);
            let media = match media.join() {
                Ok(problems) => problems,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            progress(stored.saturating_add(checked), total);
            (media, content)
        });
        problems.append(&mut content);
        problems
    }

    /// Checks every byte of the volumes present against their signed hashes,
    /// and names the damaged packs of each damaged volume. Returns the
    /// problems found (the set-level ones are in [`Parcel::problems`]).
    pub fn verify_media(&self, progress: &mut dyn FnMut(u64, u64)) -> Vec<Problem> {
        self.verify_media_read_back(&[], progress)
    }

    /// [`Parcel::verify_media`], judging the volumes in `read_back` by the
    /// SHA-256 of their body as read back while written (see
    /// [`verify_written`]).
    fn verify_media_read_back(
        &self,
        read_back: &[ReadBack],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Vec<Problem> {
        let total = body_bytes(self.volumes().values());
        let mut problems = self.hash_bodies(read_back, &mut |done| progress(done, total));
        let damaged: Vec<u32> = problems
            .iter()
            .filter_map(|p| match p {
                Problem::VolumeCorrupt { volume, .. } => Some(*volume),
                _ => None,
            })
            .collect();
        for number in damaged {
            if let Some(volume) = self.volumes().get(&number) {
                problems.extend(self.damaged_packs(number, volume));
            }
        }
        problems
    }

    /// Hashes each volume body not in `read_back` (volumes in parallel, one
    /// reader each) and compares it with the signed hash. `progress` gets
    /// bytes hashed so far.
    fn hash_bodies(&self, read_back: &[ReadBack], progress: &mut dyn FnMut(u64)) -> Vec<Problem> {
        let volumes: Vec<(&u32, &Volume)> = self.volumes().iter().collect();
        hash_bodies(&volumes, read_back, progress)
    }

    /// The packs of a damaged volume whose stored bytes do not match their
    /// signed hash, or are cut off; an io problem instead if the file cannot
    /// be read.
    fn damaged_packs(&self, number: u32, volume: &Volume) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut file = match File::open(&volume.path) {
            Ok(file) => file,
            Err(source) => {
                return vec![Problem::Unreadable {
                    path: volume.path.clone(),
                    source: source.into(),
                }]
            }
        };
        let mut stored = Vec::new();
        // The pack table is in volume order (Manifest::validate): this
        // volume's packs are one run of it, found without walking the rest
        // (once per damaged volume, there may be thousands of each).
        let packs = &self.manifest().packs;
        let first = packs.partition_point(|r| r.volume < number);
        let last = packs.partition_point(|r| r.volume <= number);
        let ours = packs.get(first..last).unwrap_or_default();
        for (p, record) in (first..).zip(ours) {
            // stored_len is at most MAX_PACK_STORED (Manifest::validate).
            stored.resize(record.stored_len as usize, 0);
            let read = file
                .seek(SeekFrom::Start(record.offset))
                .and_then(|_| file.read_exact(&mut stored));
            let reason = match read {
                Ok(()) if sha256::sha256(&stored) == record.stored_sha256 => continue,
                Ok(()) => "stored bytes do not match their SHA-256",
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "the volume ends inside its stored bytes"
                }
                // The file itself failed: an io failure, not damage to name.
                Err(source) => {
                    problems.push(Problem::Unreadable {
                        path: volume.path.clone(),
                        source: source.into(),
                    });
                    return problems;
                }
            };
            problems.push(Problem::PackCorrupt {
                volume: number,
                offset: record.offset,
                pack: p as u32,
                reason: reason.into(),
            });
        }
        problems
    }

    /// Checks every file's content, chunk by chunk, through `cache`.
    fn check_files(
        &self,
        cache: &mut PackCache<'_>,
        problems: &mut Vec<Problem>,
        progress: &mut dyn FnMut(u64),
    ) {
        // Files checked whole and found right whose first chunk is read
        // again, by that chunk: a later file with the same chunks and hash
        // (the same content met twice) needs none of its bytes read again.
        let mut checked_files: HashMap<u32, usize> = HashMap::new();
        let entries = &self.manifest().entries;
        for (index, entry) in entries.iter().enumerate() {
            if cache.exhausted() {
                // The cap on packs decoded again was reached (a limit
                // failure, in `cache.problems`): the rest is not read.
                return;
            }
            let EntryKind::File {
                sha256,
                chunks,
                size,
                ..
            } = &entry.kind
            else {
                continue;
            };
            let mut hasher = Sha256::new();
            // A delta parcel's unchanged file is checked at import, against the base.
            let mut complete = !self.manifest().is_whole_from_base(index);
            let one_chunk = self.manifest().one_chunk_hash(index);
            // A file of one chunk already checked (its hash is the chunk's)
            // needs no bytes: §7.4 step 3 loads a pack only once.
            if let (Some(hash), [c]) = (one_chunk, &chunks[..]) {
                if let Some(good) = cache.checked(*c) {
                    if good && complete && hash != sha256 {
                        problems.push(Problem::FileCorrupt {
                            path: entry.path.clone(),
                        });
                    }
                    progress(*size);
                    continue;
                }
            }
            let first = chunks.first().copied();
            let same_as_checked = first
                .and_then(|c| checked_files.get(&c))
                .and_then(|&j| entries.get(j))
                .is_some_and(|earlier| match &earlier.kind {
                    EntryKind::File {
                        sha256: s,
                        chunks: cs,
                        ..
                    } => s == sha256 && cs == chunks,
                    _ => false,
                });
            if same_as_checked && complete {
                for &c in chunks {
                    cache.checked(c);
                }
                progress(*size);
                continue;
            }
            for &c in chunks {
                match cache.chunk(c) {
                    Some(bytes) => {
                        if one_chunk.is_none() {
                            sha256::update(&mut hasher, bytes.bytes());
                        }
                        progress(bytes.bytes().len() as u64);
                    }
                    None => complete = false,
                }
            }
            let actual = one_chunk
                .copied()
                .unwrap_or_else(|| hasher.finalize().into());
            if complete && actual != *sha256 {
                problems.push(Problem::FileCorrupt {
                    path: entry.path.clone(),
                });
            } else if let Some(c) = first.filter(|&c| complete && cache.read_again(c)) {
                checked_files.entry(c).or_insert(index);
            }
        }
        // Packs no file uses are still checked.
        for p in 0..self.manifest().packs.len() as u32 {
            if !cache.loaded.get(p as usize).copied().unwrap_or(true) {
                cache.touch(p);
            }
        }
    }
}

/// Progress of one volume's hashing, from a worker thread.
enum Hashed {
    Bytes(u64),
    /// Whether the body matched its signed hash.
    Done(std::io::Result<bool>),
}

/// Whether the body of the volume file at `path` hashes to the signed
/// `body_sha256` of its (authenticated) `header`: the media check of one
/// volume (FORMAT.md §7.4 step 1), for a reader choosing among copies of it.
pub fn body_matches(path: &Path, header: &VolumeHeader) -> std::io::Result<bool> {
    Ok(hash_body(path, &mut |_| {})? == header.body_sha256)
}

/// Whether a volume read back while written matches: the body's hash read
/// back then is the signed one, and the head of the body, read again now
/// that sealing wrote the header record beside it, hashes as it did then.
fn head_matches(volume: &Volume, back: &ReadBack) -> std::io::Result<bool> {
    if back.body_sha256 != volume.header.body_sha256 {
        return Ok(false);
    }
    let mut file = File::open(&volume.path)?;
    file.seek(SeekFrom::Start(VOLUME_PREFIX))?;
    let mut hasher = Sha256::new();
    let len = volume.header.body_len.min(READ_BACK_HEAD);
    // sha2's hasher is an io::Write.
    let copied = std::io::copy(&mut file.take(len), &mut hasher)?;
    Ok(copied == len && <[u8; 32]>::from(hasher.finalize()) == back.head_sha256)
}

fn hash_body(path: &Path, progress: &mut dyn FnMut(u64)) -> std::io::Result<[u8; 32]> {
    const READ: u64 = 1 << 20;
    let mut file = File::open(path)?;
    let body = file.metadata()?.len().saturating_sub(VOLUME_PREFIX);
    file.seek(SeekFrom::Start(VOLUME_PREFIX))?;
    let mut hasher = Sha256::new();
    // Reads of 1 MiB, or a buffer the size of a smaller body: a check of
    // many small volumes does not zero 1 MiB for each.
    let mut buf = vec![0u8; body.clamp(4096, READ) as usize];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        sha256::update(&mut hasher, buf.get(..n).unwrap_or_default());
        progress(n as u64);
    }
}

/// Hashes each volume body (volumes in parallel, one reader each) and
/// compares it with the signed hash. A volume in `read_back` is judged by
/// the hash read back while it was written, and only the head of its body
/// is read again. `progress` gets bytes hashed so far (all of a volume read
/// back, once its head is checked).
fn hash_bodies(
    volumes: &[(&u32, &Volume)],
    read_back: &[ReadBack],
    progress: &mut dyn FnMut(u64),
) -> Vec<Problem> {
    let known: HashMap<&Path, &ReadBack> =
        read_back.iter().map(|r| (r.path.as_path(), r)).collect();
    let mut results: Vec<Option<std::io::Result<bool>>> =
        (0..volumes.len()).map(|_| None).collect();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(volumes.len())
        .max(1);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Hashed)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            let known = &known;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, volume)) = volumes.get(i) else {
                    return;
                };
                let result = match known.get(volume.path.as_path()) {
                    Some(back) => head_matches(volume, back).inspect(|_| {
                        let _ = tx.send((i, Hashed::Bytes(volume.header.body_len)));
                    }),
                    None => hash_body(&volume.path, &mut |n| {
                        let _ = tx.send((i, Hashed::Bytes(n)));
                    })
                    .map(|digest| digest == volume.header.body_sha256),
                };
                if tx.send((i, Hashed::Done(result))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        for (i, message) in rx {
            match message {
                Hashed::Bytes(n) => {
                    done += n;
                    progress(done);
                }
                Hashed::Done(result) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(result);
                    }
                }
            }
        }
    });
    let mut problems = Vec::new();
    for ((number, volume), result) in volumes.iter().zip(results) {
        match result {
            Some(Ok(true)) => {}
            Some(Ok(false)) => problems.push(Problem::VolumeCorrupt {
                path: volume.path.clone(),
                volume: **number,
            }),
            Some(Err(source)) => problems.push(Problem::Unreadable {
                path: volume.path.clone(),
                source: source.into(),
            }),
            None => problems.push(Problem::Unreadable {
                path: volume.path.clone(),
                source: std::io::Error::other("the volume was not read").into(),
            }),
        }
    }
    problems
}
