//! Building parcels that no honest writer would make — for test vectors,
//! hostile-input tests and fuzzing only (feature `testkit`).
//!
//! A trusted site can be compromised or buggy, so readers must refuse bad
//! manifests even when they are correctly signed. [`write_raw`] lays out
//! caller-made stored packs and a caller-made manifest over volumes and signs
//! them, filling in only where each pack landed; [`resign_header`] rewrites a
//! volume's header record with any field changed and a valid signature.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::encrypt::Encryption;
use crate::error::WriteError;
use crate::header::{IndexPiece, VolumeHeader, FLAG_ENCRYPTED, RECORD_LEN};
use crate::limits::BLOCK;
use crate::manifest::Manifest;
use crate::volume::{VolumeSink, VolumeWriter};

/// Writes `stored_packs` (one per entry of `manifest.packs`, any bytes) and
/// `manifest` as a signed parcel. Each pack record's `volume`, `offset` and
/// `stored_len` are set from where it landed and, when `fill_hashes` is true,
/// its `stored_sha256`; everything else in the manifest is written as given.
/// `manifest.volume_count` is set to the real count unless `keep_count`.
pub fn write_raw(
    manifest: &mut Manifest,
    stored_packs: &[Vec<u8>],
    key: &SigningKey,
    volume_size: u64,
    fill_hashes: bool,
    sink: &mut dyn VolumeSink,
) -> Result<Vec<PathBuf>, WriteError> {
    write_raw_with(
        manifest,
        stored_packs,
        key,
        volume_size,
        fill_hashes,
        None,
        sink,
    )
}

/// Like [`write_raw`], for an encrypted parcel when `encryption` is given
/// (FORMAT.md §12): every volume gets the `parcel-keys` entry, the index is
/// sealed, and the headers carry the encrypted flag and the keys entry's
/// length and hash. `stored_packs` are written as they are: seal them with
/// [`seal_pack`] (or do not). The headers' version is
/// `manifest.format_version` as given (a reader wants 3 with a flag).
pub fn write_raw_with(
    manifest: &mut Manifest,
    stored_packs: &[Vec<u8>],
    key: &SigningKey,
    volume_size: u64,
    fill_hashes: bool,
    encryption: Option<&Encryption>,
    sink: &mut dyn VolumeSink,
) -> Result<Vec<PathBuf>, WriteError> {
    let mut volumes = VolumeWriter::new(sink, volume_size, manifest.created);
    if let Some(e) = encryption {
        volumes = volumes.with_keys_entry(e.keys_entry());
    }
    for (i, stored) in stored_packs.iter().enumerate() {
        let (volume, offset) = volumes.append(&format!("pack-{i:08}.zst"), stored)?;
        if let Some(record) = manifest.packs.get_mut(i) {
            record.volume = volume;
            record.offset = offset;
            record.stored_len = stored.len() as u32;
            if fill_hashes {
                record.stored_sha256 = Sha256::digest(stored).into();
            }
        }
    }
    let mut guess = volumes.current_number().max(1);
    let stored = loop {
        manifest.volume_count = guess;
        let (mut stored, raw_len) = manifest
            .encode(3)
            .map_err(|e| WriteError::Invalid(e.to_string()))?;
        if let Some(e) = encryption {
            if !e.key().seal_index(&manifest.parcel_id, &mut stored) {
                return Err(WriteError::Invalid("sealing the index".into()));
            }
        }
        let needed = volumes.count_after_index(stored.len() as u64);
        if needed == guess {
            break (stored, raw_len);
        }
        guess = needed;
    };
    volumes.append_index(&stored.0)?;
    let keys_entry = encryption.map(Encryption::keys_entry);
    let template = VolumeHeader {
        version: manifest.format_version,
        flags: if encryption.is_some() {
            FLAG_ENCRYPTED
        } else {
            0
        },
        volume: 0,
        volume_count: 0,
        parcel_id: manifest.parcel_id,
        created: manifest.created,
        source_site: manifest.source_site.clone(),
        signer: key.verifying_key().to_bytes(),
        body_len: 0,
        body_sha256: [0; 32],
        index_stored_len: stored.0.len() as u64,
        index_raw_len: stored.1,
        index_sha256: Sha256::digest(&stored.0).into(),
        index_piece: IndexPiece::default(),
        keys_len: keys_entry.map_or(0, |k| k.len() as u64),
        keys_sha256: keys_entry.map_or([0; 32], |k| Sha256::digest(k).into()),
        parity: None,
    };
    Ok(volumes
        .seal(&template, key, None)?
        .volumes
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// `frame` encrypted as pack `number` of parcel `parcel` under
/// `encryption`'s parcel key (FORMAT.md §12).
pub fn seal_pack(
    encryption: &Encryption,
    parcel: &crate::ParcelId,
    number: u32,
    frame: &[u8],
) -> Vec<u8> {
    let mut sealed = frame.to_vec();
    // Sealing a buffer in memory cannot fail for lengths a pack can have.
    let _ = encryption.key().seal_pack(parcel, number, &mut sealed);
    sealed
}

/// Reads a volume's header record without checking it (for tests that alter it).
pub fn read_header_unchecked(path: &Path) -> std::io::Result<VolumeHeader> {
    let mut file = std::fs::File::open(path)?;
    let mut record = [0u8; RECORD_LEN];
    file.seek(SeekFrom::Start(BLOCK))?;
    file.read_exact(&mut record)?;
    Ok(decode_fields(&record))
}

fn decode_fields(record: &[u8; RECORD_LEN]) -> VolumeHeader {
    let u32_at = |at: usize| {
        u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
    };
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&record[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let b32 = |at: usize| {
        let mut b = [0u8; 32];
        b.copy_from_slice(&record[at..at + 32]);
        b
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&record[20..36]);
    let site_end = record[44..52].iter().position(|&b| b == 0).unwrap_or(8);
    VolumeHeader {
        version: u16::from_le_bytes([record[8], record[9]]),
        flags: u16::from_le_bytes([record[10], record[11]]),
        volume: u32_at(12),
        volume_count: u32_at(16),
        parcel_id: crate::ParcelId(id),
        created: u64_at(36) as i64,
        source_site: String::from_utf8_lossy(&record[44..44 + site_end]).into_owned(),
        signer: b32(52),
        body_len: u64_at(84),
        body_sha256: b32(92),
        index_stored_len: u64_at(124),
        index_raw_len: u64_at(132),
        index_sha256: b32(140),
        index_piece: IndexPiece {
            offset: u64_at(172),
            len: u64_at(180),
            start: u64_at(188),
        },
        keys_len: u64_at(196),
        keys_sha256: b32(204),
        parity: (u16::from_le_bytes([record[10], record[11]]) & crate::header::FLAG_PARITY != 0)
            .then(|| crate::header::ParityFields::decode(record)),
    }
}

/// Rewrites a volume's header record after `change`, signed with `key`.
pub fn resign_header(
    path: &Path,
    key: &SigningKey,
    change: impl FnOnce(&mut VolumeHeader),
) -> std::io::Result<()> {
    let mut header = read_header_unchecked(path)?;
    change(&mut header);
    header.signer = key.verifying_key().to_bytes();
    let record = header.encode_signed(key);
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(BLOCK))?;
    file.write_all(&record)
}

/// Recomputes a volume's body hash and length after its body was edited on
/// purpose, and re-signs its header, so that only deeper checks can find the edit.
pub fn reseal_body(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let body = bytes
        .get(crate::limits::VOLUME_PREFIX as usize..)
        .unwrap_or_default();
    let digest: [u8; 32] = Sha256::digest(body).into();
    let len = body.len() as u64;
    resign_header(path, key, |h| {
        h.body_sha256 = digest;
        h.body_len = len;
    })
}
