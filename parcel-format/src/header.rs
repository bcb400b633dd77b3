//! The volume header: the fixed-layout, 512-byte signed record at bytes
//! 512..1024 of every volume (FORMAT.md §3).
//!
//! It is the only thing a reader parses before checking a signature. It names
//! the parcel and the volume, binds the volume's body by length and SHA-256,
//! and binds the index (wherever it is stored) by length and SHA-256.

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::sign::{self, DOMAIN_VOLUME_HEADER};
use crate::ParcelId;

/// First 8 bytes of a header record.
pub const MAGIC: [u8; 8] = *b"PRCL-VOL";
/// The format version of a full parcel. A delta parcel is version 2
/// ([`crate::manifest::DELTA_FORMAT_VERSION`]), a parcel using a header flag
/// version 3 ([`crate::manifest::EXTENDED_FORMAT_VERSION`]); this library
/// reads all three.
pub const FORMAT_VERSION: u16 = 1;
/// The header flags this reader knows (FORMAT.md §3.1); a version-3 header
/// with any other bit set is refused ("upgrade parcel"). Versions 1 and 2 have
/// no flags.
pub const KNOWN_FLAGS: u16 = FLAG_ENCRYPTED;
/// Flag bit 0: the parcel is encrypted to its destination (FORMAT.md §12);
/// the header's `keys_len` and `keys_sha256` (record bytes 196..236) bind the
/// `parcel-keys` entry.
pub const FLAG_ENCRYPTED: u16 = 0x0001;
/// Record bytes that [`FLAG_ENCRYPTED`] gives a meaning to; zero without it.
const KEYS_FIELDS: std::ops::Range<usize> = 196..236;
/// Size of the record.
pub const RECORD_LEN: usize = 512;
/// Offset of the signature within the record; the signature covers bytes `..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 448;

/// Where a piece of the index lies in one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexPiece {
    /// Offset of the piece's bytes in the volume file; 0 when the volume holds none.
    pub offset: u64,
    /// Length of the piece.
    pub len: u64,
    /// Where the piece starts within the stored index.
    pub start: u64,
}

/// A decoded volume header record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Format version (1, 2 or 3).
    pub version: u16,
    /// Header flags; 0 unless `version` is 3 (FORMAT.md §3.1).
    pub flags: u16,
    /// This volume's number, 1-based.
    pub volume: u32,
    /// Number of volumes in the parcel.
    pub volume_count: u32,
    /// The parcel this volume belongs to.
    pub parcel_id: ParcelId,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Source site code (ASCII, at most 8 bytes).
    pub source_site: String,
    /// The signer's public key.
    pub signer: [u8; 32],
    /// Length of the volume body (everything after byte 1024).
    pub body_len: u64,
    /// SHA-256 of the volume body.
    pub body_sha256: [u8; 32],
    /// Length of the stored (compressed) index.
    pub index_stored_len: u64,
    /// Length of the decoded index.
    pub index_raw_len: u64,
    /// SHA-256 of the stored index.
    pub index_sha256: [u8; 32],
    /// The piece of the index this volume holds.
    pub index_piece: IndexPiece,
    /// Length of the `parcel-keys` entry's data; 0 unless [`FLAG_ENCRYPTED`] is set.
    pub keys_len: u64,
    /// SHA-256 of the `parcel-keys` entry's data; zeros unless [`FLAG_ENCRYPTED`] is set.
    pub keys_sha256: [u8; 32],
}

/// Why a header record was refused, before or at its signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Wrong magic, reserved bytes set, bad field value.
    Malformed(String),
    /// A version this reader does not know.
    UnknownVersion(u16),
    /// The signature does not verify under the key the header names.
    BadSignature,
}

fn le_u16(b: &[u8; RECORD_LEN], at: usize) -> u16 {
    let mut x = [0u8; 2];
    x.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(x)
}
fn le_u32(b: &[u8; RECORD_LEN], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}
fn le_u64(b: &[u8; RECORD_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
fn bytes32(b: &[u8; RECORD_LEN], at: usize) -> [u8; 32] {
    let mut x = [0u8; 32];
    x.copy_from_slice(&b[at..at + 32]);
    x
}

impl VolumeHeader {
    /// Encodes the record and signs it.
    pub fn encode_signed(&self, key: &SigningKey) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.volume.to_le_bytes());
        b[16..20].copy_from_slice(&self.volume_count.to_le_bytes());
        b[20..36].copy_from_slice(&self.parcel_id.0);
        b[36..44].copy_from_slice(&self.created.to_le_bytes());
        let site = self.source_site.as_bytes();
        let n = site.len().min(8);
        b[44..44 + n].copy_from_slice(&site[..n]);
        b[52..84].copy_from_slice(&self.signer);
        b[84..92].copy_from_slice(&self.body_len.to_le_bytes());
        b[92..124].copy_from_slice(&self.body_sha256);
        b[124..132].copy_from_slice(&self.index_stored_len.to_le_bytes());
        b[132..140].copy_from_slice(&self.index_raw_len.to_le_bytes());
        b[140..172].copy_from_slice(&self.index_sha256);
        b[172..180].copy_from_slice(&self.index_piece.offset.to_le_bytes());
        b[180..188].copy_from_slice(&self.index_piece.len.to_le_bytes());
        b[188..196].copy_from_slice(&self.index_piece.start.to_le_bytes());
        b[196..204].copy_from_slice(&self.keys_len.to_le_bytes());
        b[204..236].copy_from_slice(&self.keys_sha256);
        let sig = sign::sign(key, DOMAIN_VOLUME_HEADER, &b[..SIGNED_LEN]);
        b[SIGNED_LEN..].copy_from_slice(&sig);
        b
    }

    /// Decodes a record and checks its signature against the key it names.
    ///
    /// Order (FORMAT.md §7.1): magic, version, signature, then field checks.
    /// Nothing but fixed-offset integers is read before the signature check.
    pub fn decode_verified(b: &[u8; RECORD_LEN]) -> Result<VolumeHeader, HeaderError> {
        if b[0..8] != MAGIC {
            return Err(HeaderError::Malformed("bad magic".into()));
        }
        let version = le_u16(b, 8);
        if !matches!(
            version,
            FORMAT_VERSION
                | crate::manifest::DELTA_FORMAT_VERSION
                | crate::manifest::EXTENDED_FORMAT_VERSION
        ) {
            return Err(HeaderError::UnknownVersion(version));
        }
        let signer = bytes32(b, 52);
        let key = VerifyingKey::from_bytes(&signer).map_err(|_| HeaderError::BadSignature)?;
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&b[SIGNED_LEN..]);
        if !sign::verify(&key, DOMAIN_VOLUME_HEADER, &b[..SIGNED_LEN], &sig) {
            return Err(HeaderError::BadSignature);
        }
        let flags = le_u16(b, 10);
        if version != crate::manifest::EXTENDED_FORMAT_VERSION && flags != 0 {
            return Err(HeaderError::Malformed(format!(
                "flags set (none exist in version {version})"
            )));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(HeaderError::Malformed(format!(
                "unknown flags {:#06x}: this reader knows {KNOWN_FLAGS:#06x} only, upgrade parcel",
                flags & !KNOWN_FLAGS
            )));
        }
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        let keys_len = le_u64(b, 196);
        if encrypted && (keys_len == 0 || keys_len > crate::limits::MAX_KEYS_ENTRY) {
            return Err(HeaderError::Malformed(format!(
                "encrypted, but its keys entry length {keys_len} is outside 1..={}",
                crate::limits::MAX_KEYS_ENTRY
            )));
        }
        if (!encrypted && b[KEYS_FIELDS].iter().any(|&x| x != 0))
            || b[KEYS_FIELDS.end..SIGNED_LEN].iter().any(|&x| x != 0)
        {
            return Err(HeaderError::Malformed(
                "reserved bytes set (no flag gives them a meaning)".into(),
            ));
        }
        let site_bytes = &b[44..52];
        let site_len = site_bytes.iter().position(|&x| x == 0).unwrap_or(8);
        if site_bytes[site_len..].iter().any(|&x| x != 0)
            || site_len == 0
            || !site_bytes[..site_len]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(HeaderError::Malformed("bad source site code".into()));
        }
        let source_site = String::from_utf8_lossy(&site_bytes[..site_len]).into_owned();
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[20..36]);
        let header = VolumeHeader {
            version,
            flags,
            volume: le_u32(b, 12),
            volume_count: le_u32(b, 16),
            parcel_id: ParcelId(id),
            created: i64::from_le_bytes(le_u64(b, 36).to_le_bytes()),
            source_site,
            signer,
            body_len: le_u64(b, 84),
            body_sha256: bytes32(b, 92),
            index_stored_len: le_u64(b, 124),
            index_raw_len: le_u64(b, 132),
            index_sha256: bytes32(b, 140),
            index_piece: IndexPiece {
                offset: le_u64(b, 172),
                len: le_u64(b, 180),
                start: le_u64(b, 188),
            },
            keys_len,
            keys_sha256: bytes32(b, 204),
        };
        if header.volume_count == 0 || header.volume == 0 || header.volume > header.volume_count {
            return Err(HeaderError::Malformed(format!(
                "volume number {} of {} is impossible",
                header.volume, header.volume_count
            )));
        }
        Ok(header)
    }

    /// Whether two headers describe the same parcel (all parcel-wide fields equal).
    pub fn same_parcel(&self, other: &VolumeHeader) -> bool {
        self.parcel_id == other.parcel_id
            && self.volume_count == other.volume_count
            && self.created == other.created
            && self.source_site == other.source_site
            && self.signer == other.signer
            && self.index_stored_len == other.index_stored_len
            && self.index_raw_len == other.index_raw_len
            && self.index_sha256 == other.index_sha256
            && self.flags == other.flags
            && self.keys_len == other.keys_len
            && self.keys_sha256 == other.keys_sha256
    }

    /// Whether the parcel is encrypted to its destination (FORMAT.md §12).
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> VolumeHeader {
        VolumeHeader {
            version: 1,
            flags: 0,
            volume: 2,
            volume_count: 3,
            parcel_id: ParcelId([9; 16]),
            created: 1_700_000_000,
            source_site: "CEN".into(),
            signer: SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes(),
            body_len: 4096,
            body_sha256: [1; 32],
            index_stored_len: 100,
            index_raw_len: 300,
            index_sha256: [2; 32],
            index_piece: IndexPiece {
                offset: 2048,
                len: 100,
                start: 0,
            },
            keys_len: 0,
            keys_sha256: [0; 32],
        }
    }

    #[test]
    fn encrypted_header_round_trips_and_its_keys_fields_need_the_flag() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let encrypted = VolumeHeader {
            version: 3,
            flags: FLAG_ENCRYPTED,
            keys_len: 280,
            keys_sha256: [5; 32],
            ..sample()
        };
        let rec = encrypted.encode_signed(&key);
        assert_eq!(VolumeHeader::decode_verified(&rec), Ok(encrypted.clone()));
        assert!(!encrypted.same_parcel(&VolumeHeader {
            keys_sha256: [6; 32],
            ..encrypted.clone()
        }));
        for bad in [
            VolumeHeader {
                flags: 0,
                ..encrypted.clone()
            },
            VolumeHeader {
                keys_len: 0,
                ..encrypted.clone()
            },
            VolumeHeader {
                keys_len: crate::limits::MAX_KEYS_ENTRY + 1,
                ..encrypted.clone()
            },
            VolumeHeader {
                version: 1,
                ..encrypted.clone()
            },
        ] {
            let rec = bad.encode_signed(&key);
            assert!(
                matches!(
                    VolumeHeader::decode_verified(&rec),
                    Err(HeaderError::Malformed(_))
                ),
                "{bad:?} accepted"
            );
        }
        let mut rec = encrypted.encode_signed(&key);
        rec[240] = 1;
        let sig = sign::sign(&key, DOMAIN_VOLUME_HEADER, &rec[..SIGNED_LEN]);
        rec[SIGNED_LEN..].copy_from_slice(&sig);
        assert!(
            VolumeHeader::decode_verified(&rec).is_err(),
            "byte 240 is reserved"
        );
    }

    #[test]
    fn header_round_trips_and_any_flipped_bit_is_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let rec = sample().encode_signed(&key);
        assert_eq!(VolumeHeader::decode_verified(&rec), Ok(sample()));
        for i in 0..RECORD_LEN {
            let mut bad = rec;
            bad[i] ^= 0x10;
            assert!(
                VolumeHeader::decode_verified(&bad).is_err(),
                "flip at byte {i} accepted"
            );
        }
    }
}
