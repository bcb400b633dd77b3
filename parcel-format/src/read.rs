//! Opening a set of volumes: identify each file, authenticate its header,
//! group the volumes of one parcel, then read, authenticate, decode and
//! validate the index (FORMAT.md §7.1–§7.3).
//!
//! Nothing unsigned is parsed beyond the fixed 512-byte header record, and the
//! index is decoded only after its bytes hash to the signed value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::encrypt::{unwrap_key, Identity, ParcelKey, UnwrapError, KEYS_ENTRY};
use crate::error::{FailureClass, Problem};
use crate::header::{HeaderError, VolumeHeader, RECORD_LEN};
use crate::limits::{BLOCK, MAX_VOLUMES, VOLUME_PREFIX};
use crate::manifest::Manifest;
use crate::manifest_head::ManifestHead;
use crate::sign::{fingerprint, TrustedKeys};
use crate::stored_index::IndexReader;
use crate::volume::{tar_header, HEADER_ENTRY};
use crate::ParcelId;

/// One authenticated volume of the parcel being read.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its authenticated header.
    pub header: VolumeHeader,
}

/// An opened parcel: its authenticated volumes and validated manifest, plus
/// the problems found with the set of volumes (missing, foreign, duplicate…).
#[derive(Debug)]
pub struct Parcel {
    volumes: BTreeMap<u32, Volume>,
    manifest: Manifest,
    signer: String,
    header: VolumeHeader,
    problems: Vec<Problem>,
    /// The key of an encrypted parcel (FORMAT.md §12); `None` when not encrypted.
    key: Option<ParcelKey>,
}

/// The authenticated volumes of one parcel (FORMAT.md §7.1–§7.2), before
/// its index is read.
pub(crate) struct VolumeSet {
    /// The volumes present, by number.
    pub(crate) volumes: BTreeMap<u32, Volume>,
    /// The reference header.
    pub(crate) header: VolumeHeader,
    /// Problems with the set (missing, foreign, duplicate, damaged).
    pub(crate) problems: Vec<Problem>,
}

/// Reads and authenticates one volume's header; checks the file's length.
pub fn read_volume_header(path: &Path, trust: &TrustedKeys) -> Result<VolumeHeader, Problem> {
    let (header, len) = authenticate_volume(path, trust)?;
    check_volume_len(path, &header, len)?;
    Ok(header)
}

/// Reads and authenticates one volume's header (FORMAT.md §7.1 steps 1–7),
/// data or parity volume, and returns it with the file's length, which is
/// not checked yet: a repairing reader still uses the intact blocks of a
/// truncated copy (FORMAT.md §13).
pub fn authenticate_volume(
    path: &Path,
    trust: &TrustedKeys,
) -> Result<(VolumeHeader, u64), Problem> {
    let unreadable = |source: std::io::Error| Problem::Unreadable {
        path: path.to_owned(),
        source: source.into(),
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    let not_volume = |reason: &str| Problem::NotAVolume {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if len < VOLUME_PREFIX {
        return Err(not_volume("shorter than a volume header"));
    }
    let mut prefix = [0u8; VOLUME_PREFIX as usize];
    file.read_exact(&mut prefix).map_err(unreadable)?;
    let mut record = [0u8; RECORD_LEN];
    record.copy_from_slice(&prefix[BLOCK as usize..]);
    let header = VolumeHeader::decode_verified(&record).map_err(|e| match e {
        HeaderError::Malformed(reason) => Problem::NotAVolume {
            path: path.to_owned(),
            reason,
        },
        HeaderError::UnknownVersion(version) => Problem::UnknownVersion {
            path: path.to_owned(),
            version,
        },
        HeaderError::BadSignature => Problem::BadSignature {
            path: path.to_owned(),
        },
    })?;
    // The tar header block in front of the record must be the one parcel writes.
    let expected = tar_header(HEADER_ENTRY, BLOCK, header.created).map_err(unreadable)?;
    if expected.as_bytes()[..] != prefix[..BLOCK as usize] {
        return Err(not_volume(
            "the tar header of its first entry is not the one parcel writes",
        ));
    }
    if trust.label_of_bytes(&header.signer).is_none() {
        // decode_verified has checked the signature with this very key, so
        // it decodes.
        let key = ed25519_dalek::VerifyingKey::from_bytes(&header.signer).map_err(|_| {
            Problem::BadSignature {
                path: path.to_owned(),
            }
        })?;
        return Err(Problem::UntrustedSigner {
            path: path.to_owned(),
            key: header.signer,
            fingerprint: fingerprint(&key),
            claimed_site: header.source_site.clone(),
        });
    }
    Ok((header, len))
}

/// FORMAT.md §7.1 steps 8–9: the file's length is the one its header
/// declares, and the counts it declares are within the caps.
pub fn check_volume_len(path: &Path, header: &VolumeHeader, len: u64) -> Result<(), Problem> {
    let expected_len = header.body_len.checked_add(VOLUME_PREFIX);
    if expected_len != Some(len) {
        return Err(Problem::VolumeLength {
            path: path.to_owned(),
            volume: header.volume,
            expected: expected_len.unwrap_or(u64::MAX),
            actual: len,
        });
    }
    // Every volume number up to the count is looked for: bound the count.
    if header.volume_count > MAX_VOLUMES {
        return Err(Problem::limit(
            format!("{}: volume count", path.display()),
            header.volume_count.into(),
            MAX_VOLUMES.into(),
        ));
    }
    if let Some(parity) = &header.parity {
        if parity.parity_volume_count > MAX_VOLUMES {
            return Err(Problem::limit(
                format!("{}: parity volume count", path.display()),
                parity.parity_volume_count.into(),
                MAX_VOLUMES.into(),
            ));
        }
    }
    Ok(())
}

impl Parcel {
    /// Opens the parcel in `paths` (volume files, any order).
    ///
    /// Succeeds when a manifest could be authenticated and validated; the
    /// problems with the set of volumes are then in [`Parcel::problems`].
    /// Fails with every problem found when no manifest can be had.
    ///
    /// An encrypted parcel (FORMAT.md §12) cannot be opened this way: use
    /// [`Parcel::open_with`] with the destination's identity.
    pub fn open(paths: &[PathBuf], trust: &TrustedKeys) -> Result<Parcel, Vec<Problem>> {
        Parcel::open_with(paths, trust, None)
    }

    /// Like [`Parcel::open`], decrypting an encrypted parcel (FORMAT.md §12)
    /// with `identity`, this site's age X25519 identity. A parcel that is not
    /// encrypted opens as with [`Parcel::open`]. Without an identity, or with
    /// one the parcel is not encrypted to, an encrypted parcel fails with
    /// [`Problem::CannotDecrypt`] (a policy failure).
    pub fn open_with(
        paths: &[PathBuf],
        trust: &TrustedKeys,
        identity: Option<&Identity>,
    ) -> Result<Parcel, Vec<Problem>> {
        let mut set = open_volumes(paths, trust)?;
        let opened =
            check_index(&set.volumes, &set.header).and_then(|()| decode_index(&set, identity));
        let (manifest, key) = match opened {
            Ok(opened) => opened,
            Err(p) => {
                set.problems.push(p);
                return Err(set.problems);
            }
        };
        let VolumeSet {
            volumes,
            header,
            mut problems,
        } = set;
        let body_lens: HashMap<u32, u64> = volumes
            .iter()
            .map(|(n, v)| (*n, v.header.body_len))
            .collect();
        let version = versions_disagree(&volumes, manifest.format_version);
        if let Some(p) = version.or_else(|| manifest.validate(&header, &body_lens).err()) {
            problems.push(p);
            return Err(problems);
        }
        let signer = trust
            .label_of_bytes(&header.signer)
            .unwrap_or_default()
            .to_owned();
        Ok(Parcel {
            volumes,
            manifest,
            signer,
            header,
            problems,
            key,
        })
    }
}

/// Authenticates each file's header and groups the volumes of one parcel
/// (FORMAT.md §7.1–§7.2). Fails with every problem found when no volume of
/// any parcel is left.
pub(crate) fn open_volumes(
    paths: &[PathBuf],
    trust: &TrustedKeys,
) -> Result<VolumeSet, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut good: Vec<Volume> = Vec::new();
    // Volumes of a parcel set aside for their length (§7.1 step 8): named
    // damaged, not missing, if that parcel is the one read.
    let mut damaged: HashSet<(ParcelId, u32)> = HashSet::new();
    for path in paths {
        // Parity volumes carry repair data, not the parcel: the repairing
        // reader (`repair.rs`) uses them before this one runs.
        let header = match authenticate_volume(path, trust) {
            Ok((header, _)) if header.is_parity_volume() => continue,
            Ok((header, len)) => match check_volume_len(path, &header, len) {
                Ok(()) => header,
                Err(problem) => {
                    if matches!(problem, Problem::VolumeLength { .. }) {
                        damaged.insert((header.parcel_id, header.volume));
                    }
                    problems.push(problem);
                    continue;
                }
            },
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        good.push(Volume {
            path: path.clone(),
            header,
        });
    }
    // The parcel read is the one with the most volumes given (the first on a tie).
    let mut counts: HashMap<ParcelId, (usize, usize)> = HashMap::new();
    for (i, v) in good.iter().enumerate() {
        counts.entry(v.header.parcel_id).or_insert((0, i)).0 += 1;
    }
    let Some(chosen) = counts
        .iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
        .map(|(id, _)| *id)
    else {
        if problems.is_empty() {
            problems.push(Problem::NoVolumes);
        }
        return Err(problems);
    };
    let mut volumes: BTreeMap<u32, Volume> = BTreeMap::new();
    let mut reference: Option<VolumeHeader> = None;
    for v in good {
        let consistent = reference.as_ref().is_none_or(|r| r.same_parcel(&v.header));
        if v.header.parcel_id != chosen || !consistent {
            problems.push(Problem::ForeignVolume {
                path: v.path,
                volume: v.header.volume,
                parcel: v.header.parcel_id.to_string(),
            });
            continue;
        }
        if let Some(first) = volumes.get(&v.header.volume) {
            problems.push(Problem::DuplicateVolume {
                path: v.path,
                volume: v.header.volume,
                first: first.path.clone(),
            });
            continue;
        }
        reference.get_or_insert_with(|| v.header.clone());
        volumes.insert(v.header.volume, v);
    }
    let Some(header) = reference else {
        return Err(problems);
    };
    for n in 1..=header.volume_count {
        if !volumes.contains_key(&n) && !damaged.contains(&(header.parcel_id, n)) {
            problems.push(Problem::MissingVolume {
                volume: n,
                count: header.volume_count,
            });
        }
    }
    Ok(VolumeSet {
        volumes,
        header,
        problems,
    })
}

impl Parcel {
    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The label (site code) of the trusted key that signed the parcel.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// The signer's public key.
    pub fn signer_key(&self) -> [u8; 32] {
        self.header.signer
    }

    /// SHA-256 of the stored index, as every header binds it.
    pub fn index_sha256(&self) -> [u8; 32] {
        self.header.index_sha256
    }

    /// The authenticated volumes present, by number.
    pub fn volumes(&self) -> &BTreeMap<u32, Volume> {
        &self.volumes
    }

    /// Problems with the set of volumes (missing, foreign, duplicate, damaged).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the set-level problems out of the parcel (leaving none).
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Refuses a parcel not addressed to `site` (a policy failure).
    pub fn check_destination(&self, site: &str) -> Result<(), Problem> {
        if self.manifest.destinations.iter().any(|d| d == site) {
            Ok(())
        } else {
            Err(Problem::WrongDestination {
                site: site.to_owned(),
                destinations: self.manifest.destinations.join(","),
            })
        }
    }

    /// Whether the parcel is encrypted to its destination (FORMAT.md §12).
    pub fn is_encrypted(&self) -> bool {
        self.header.is_encrypted()
    }

    /// The parcel key of an encrypted parcel.
    pub(crate) fn key(&self) -> Option<&ParcelKey> {
        self.key.as_ref()
    }

    /// Stored bytes over all volumes of the parcel that are present.
    pub fn stored_bytes(&self) -> u64 {
        self.volumes.values().fold(0u64, |sum, v| {
            sum.saturating_add(v.header.body_len.saturating_add(VOLUME_PREFIX))
        })
    }
}

/// The signed body lengths of `volumes` added up. Saturating: each is the
/// length of a file present, but several sparse files on a large file
/// system can still add up past 2^64.
pub(crate) fn body_bytes<'a>(volumes: impl Iterator<Item = &'a Volume>) -> u64 {
    volumes.fold(0u64, |sum, v| sum.saturating_add(v.header.body_len))
}

/// Checks the stored index (FORMAT.md §7.3 steps 1–4): where its pieces
/// lie, that they join up, and their signed SHA-256, reading them once
/// without keeping them.
pub(crate) fn check_index(
    volumes: &BTreeMap<u32, Volume>,
    header: &VolumeHeader,
) -> Result<(), Problem> {
    let reader = IndexReader::locate(volumes, header)?;
    let files = reader.files().to_owned();
    if reader.finish()? != header.index_sha256 {
        return Err(Problem::index(format!(
            "the index read from {files} does not match its signed SHA-256 (damaged)"
        )));
    }
    Ok(())
}

/// Reads and decodes the index once [`check_index`] passed: decoded as it
/// is read from the volumes and decompressed, or, when the parcel is
/// encrypted (FORMAT.md §12), read whole and decrypted with the key
/// unwrapped from its keys entry, which is done first.
///
/// Reading the pieces a second time rather than keeping them from the check
/// means a plain index is never whole in memory, stored or raw (FORMAT.md
/// §8.1). The second reading is hashed too, and a manifest is returned only
/// when it matched again: bytes that changed on the medium in between are
/// refused, never used.
fn decode_index(
    set: &VolumeSet,
    identity: Option<&Identity>,
) -> Result<(Manifest, Option<ParcelKey>), Problem> {
    read_index(set, identity, |stored, raw_len| {
        Manifest::decode_from(stored, raw_len)
    })
}

/// §7.3 step 8.1 for the version of every volume, not only the one whose
/// header a manifest is validated against: §7.2 leaves the version out of
/// the fields volumes must share.
fn versions_disagree(volumes: &BTreeMap<u32, Volume>, format_version: u16) -> Option<Problem> {
    volumes
        .iter()
        .find(|(_, v)| v.header.version != format_version)
        .map(|(n, v)| {
            Problem::index(format!(
                "says format version {format_version}, but volume {n} ({}) declares version {}",
                v.path.display(),
                v.header.version
            ))
        })
}

/// Reads and validates the head of the index once [`check_index`] passed,
/// for the media check (FORMAT.md §7.4), as [`decode_index`] reads the
/// whole: a plain index is decompressed only as far as its head, and the
/// rest of its stored bytes read on and hashed, so that a head read from
/// bytes that changed on the medium since the check is refused. The head is
/// then checked as §7.3 step 8 items 1–5 check a manifest's.
pub(crate) fn read_index_head(
    set: &VolumeSet,
    identity: Option<&Identity>,
) -> Result<ManifestHead, Problem> {
    let (head, _) = read_index(set, identity, |stored, raw_len| {
        ManifestHead::decode_from(stored, raw_len)
    })?;
    if let Some(p) = versions_disagree(&set.volumes, head.format_version) {
        return Err(p);
    }
    head.validate(&set.header)?;
    Ok(head)
}

/// The second reading of the index that [`decode_index`] and
/// [`read_index_head`] make, handing the stored (plain) or decrypted
/// bytes and the declared raw length to `decode`.
fn read_index<T>(
    set: &VolumeSet,
    identity: Option<&Identity>,
    decode: impl FnOnce(&mut dyn Read, u64) -> Result<T, Problem>,
) -> Result<(T, Option<ParcelKey>), Problem> {
    let header = &set.header;
    // §12.4: an encrypted index is read again only with a key to open it.
    let key = if header.is_encrypted() {
        Some(parcel_key(set, identity)?)
    } else {
        None
    };
    let reader = IndexReader::locate(&set.volumes, header)?;
    let changed = Problem::index(format!(
        "the index in {} changed while it was read (it matched its signed SHA-256 a moment before); check that nothing else writes to the medium, and read it again",
        reader.files()
    ));
    let Some(key) = key else {
        let mut reader = reader;
        let decoded = decode(&mut reader, header.index_raw_len);
        // A failed read is the problem, whatever the decoder made of it.
        if reader.finish()? != header.index_sha256 {
            return Err(changed);
        }
        return Ok((decoded?, None));
    };
    let (stored, digest) = reader.read_all()?;
    if digest != header.index_sha256 {
        return Err(changed);
    }
    let frame = key.open_index(&header.parcel_id, stored).ok_or_else(|| {
        Problem::index(
            "the index does not decrypt under the parcel key (the keys entry belongs to another parcel, or the index was forged)",
        )
    })?;
    Ok((decode(&mut &frame[..], header.index_raw_len)?, Some(key)))
}

/// The parcel key of an encrypted parcel, unwrapped with `identity` from
/// the first intact keys entry (FORMAT.md §12.4 steps 1–3).
fn parcel_key(set: &VolumeSet, identity: Option<&Identity>) -> Result<ParcelKey, Problem> {
    let entry = read_keys_entry(&set.volumes, &set.header)?;
    let identity = identity.ok_or(Problem::CannotDecrypt {
        identity_given: false,
    })?;
    unwrap_key(&entry, identity).map_err(|e| match e {
        UnwrapError::NotForThisIdentity => Problem::CannotDecrypt {
            identity_given: true,
        },
        UnwrapError::Malformed(reason) => Problem::index(format!(
            "the {KEYS_ENTRY} entry does not give the parcel key: {reason}"
        )),
    })
}

/// Reads the `parcel-keys` entry of an encrypted parcel from the first
/// present volume whose copy lies in its body and matches the signed length
/// and SHA-256 (FORMAT.md §12); any one intact copy suffices.
pub(crate) fn read_keys_entry(
    volumes: &BTreeMap<u32, Volume>,
    header: &VolumeHeader,
) -> Result<Vec<u8>, Problem> {
    // keys_len is at most MAX_KEYS_ENTRY (VolumeHeader::decode_verified).
    let len = header.keys_len;
    let offset = VOLUME_PREFIX + BLOCK;
    let mut damaged = Vec::new();
    for (number, volume) in volumes {
        if offset + len > VOLUME_PREFIX + volume.header.body_len {
            damaged.push(format!("volume {number}: outside the volume"));
            continue;
        }
        let mut entry = vec![0u8; len as usize];
        let read = File::open(&volume.path).and_then(|mut file| {
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut entry)
        });
        match read {
            Err(e) => damaged.push(format!("{}: cannot read: {e}", volume.path.display())),
            Ok(()) if <[u8; 32]>::from(Sha256::digest(&entry)) == header.keys_sha256 => {
                return Ok(entry)
            }
            Ok(()) => damaged.push(format!("volume {number}: damaged")),
        }
    }
    Err(Problem::index(format!(
        "no volume given holds an intact {KEYS_ENTRY} entry (one matching its signed SHA-256): {}; copy a volume again from the original medium",
        damaged.join("; ")
    )))
}

/// The class of the most fundamental of several problems (FORMAT.md §7:
/// signature before volume before limit before index before path before chunk
/// before policy), or `None` when there is none.
pub fn worst_class(problems: &[Problem]) -> Option<FailureClass> {
    problems.iter().map(Problem::class).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encrypt::Encryption;
    use crate::volume::{DirSink, OutputDir};
    use crate::write::{scan, write_parcel, ParcelInfo, WriteOptions};
    use std::io::Write;

    /// A one-volume parcel of a small tree, encrypted when `encryption` is
    /// given, and the keys that trust it.
    fn parcel(dir: &Path, encryption: Option<Encryption>) -> (Vec<PathBuf>, TrustedKeys) {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..50 {
            std::fs::write(src.join(format!("file-{i}")), format!("content {i}\n")).unwrap();
        }
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let info = ParcelInfo {
            parcel_id: ParcelId([3; 16]),
            source_site: "CEN".into(),
            origin_site: None,
            destinations: vec!["BXL".into()],
            package_id: "CEN00001".into(),
            package_version: 1,
            created: 1_700_000_000,
            comment: String::new(),
        };
        let options = WriteOptions {
            encryption,
            ..WriteOptions::default()
        };
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out,
                capacity: None,
            }],
            "CEN00001-1",
            options.volume_size,
        );
        let summary = write_parcel(
            scan(&src).unwrap(),
            &info,
            &key,
            &options,
            &mut sink,
            &mut |_| {},
        )
        .unwrap();
        let mut trust = TrustedKeys::new();
        trust.add("CEN", key.verifying_key());
        (summary.volumes.into_iter().map(|(p, _)| p).collect(), trust)
    }

    /// Flips one bit in the middle of the volume's index piece.
    fn damage_index(path: &Path, header: &VolumeHeader) {
        let piece = header.index_piece;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let at = piece.offset + piece.len / 2;
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(at)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&[byte[0] ^ 0x40]).unwrap();
    }

    #[test]
    fn an_index_changed_on_the_medium_after_its_hash_was_checked_is_refused() {
        let identity = Identity::generate();
        let plain = None;
        let encrypted = Some(Encryption::to_recipients(&[identity.to_public()]).unwrap());
        for encryption in [plain, encrypted] {
            let tmp = tempfile::tempdir().unwrap();
            let (paths, trust) = parcel(tmp.path(), encryption);
            let set = open_volumes(&paths, &trust).unwrap();
            check_index(&set.volumes, &set.header).unwrap();
            assert!(decode_index(&set, Some(&identity)).is_ok());
            assert!(read_index_head(&set, Some(&identity)).is_ok());
            // Between the check and the decoding, something writes to the
            // medium: whatever the decoders make of the bytes, the second
            // reading does not match (the head's reads on to the end).
            damage_index(&paths[0], &set.header);
            for problem in [
                decode_index(&set, Some(&identity)).unwrap_err(),
                read_index_head(&set, Some(&identity)).unwrap_err(),
            ] {
                assert_eq!(problem.class(), FailureClass::Index);
                assert!(
                    problem.to_string().contains("changed while it was read"),
                    "{problem}"
                );
            }
            // And a fresh check finds the damage as such.
            let problem = check_index(&set.volumes, &set.header).unwrap_err();
            assert!(problem.to_string().contains("damaged"), "{problem}");
        }
    }

    #[test]
    fn a_volume_cut_inside_the_index_after_its_header_was_read_is_unreadable_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (paths, trust) = parcel(tmp.path(), None);
        let set = open_volumes(&paths, &trust).unwrap();
        let piece = set.header.index_piece;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&paths[0])
            .unwrap();
        file.set_len(piece.offset + piece.len / 2).unwrap();
        drop(file);
        for problem in [
            check_index(&set.volumes, &set.header).unwrap_err(),
            decode_index(&set, None).unwrap_err(),
            read_index_head(&set, None).unwrap_err(),
        ] {
            match &problem {
                Problem::Unreadable { path, .. } => assert_eq!(path, &paths[0]),
                other => panic!("expected the volume to be unreadable, got {other}"),
            }
        }
    }
}
