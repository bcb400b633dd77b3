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
/// Flag 0x0002: the parcel carries repair data (FORMAT.md §13); header bytes
/// 236–319 hold its [`ParityFields`].
pub const FLAG_PARITY: u16 = 0x0002;
/// The header flags this reader knows (FORMAT.md §3.1); a version-3 header
/// with any other bit set is refused ("upgrade parcel"). Versions 1 and 2 have
/// no flags.
pub const KNOWN_FLAGS: u16 = FLAG_ENCRYPTED | FLAG_PARITY;
/// Flag bit 0: the parcel is encrypted to its destination (FORMAT.md §12);
/// the header's `keys_len` and `keys_sha256` (record bytes 196..236) bind the
/// `parcel-keys` entry.
pub const FLAG_ENCRYPTED: u16 = 0x0001;
/// Record bytes that [`FLAG_ENCRYPTED`] gives a meaning to; zero without it.
const KEYS_FIELDS: std::ops::Range<usize> = 196..236;
/// Record bytes `PARITY_FIELDS` hold the [`ParityFields`] when
/// [`FLAG_PARITY`] is set; zero otherwise.
pub const PARITY_FIELDS: std::ops::Range<usize> = 236..320;
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
    /// The repair-data fields, when [`FLAG_PARITY`] is set (FORMAT.md §13).
    pub parity: Option<ParityFields>,
}

/// The header fields of flag 0x0002 (FORMAT.md §13.2), at record bytes
/// 236–319. A *data volume* (one of the parcel's volumes 1 to
/// `volume_count`) has `parity_volume` 0 and the table and recovery fields 0;
/// a *parity volume* has `parity_volume` ≥ 1, `volume` 0 and no index piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParityFields {
    /// 0 in a data volume; this parity volume's number, 1-based.
    pub parity_volume: u32,
    /// Number of parity volumes.
    pub parity_volume_count: u32,
    /// Bytes per block: a power of two, at least 512.
    pub block_size: u32,
    /// Rows of blocks per stripe (*k*).
    pub stripe_rows: u32,
    /// Recovery blocks per stripe (*R*).
    pub stripe_recovery: u32,
    /// Offset of the block table in this parity volume file; 0 in a data volume.
    pub table_offset: u64,
    /// Length of the block table; 0 in a data volume.
    pub table_len: u64,
    /// SHA-256 of the block table; zeros in a data volume.
    pub table_sha256: [u8; 32],
    /// Offset of this parity volume's first recovery block; 0 in a data volume.
    pub recovery_offset: u64,
    /// Recovery blocks this parity volume holds: recovery blocks *p* − 1,
    /// *p* − 1 + *M*, *p* − 1 + 2*M*, … (*M* parity volumes); 0 in a data volume.
    pub recovery_count: u64,
}

impl ParityFields {
    /// Whether these fields describe a parity volume rather than a data volume.
    pub fn is_parity_volume(&self) -> bool {
        self.parity_volume != 0
    }

    /// The parcel-wide part: equal in every volume, data or parity.
    pub fn layout(&self) -> (u32, u32, u32, u32) {
        (
            self.parity_volume_count,
            self.block_size,
            self.stripe_rows,
            self.stripe_recovery,
        )
    }

    fn encode(&self, b: &mut [u8; RECORD_LEN]) {
        b[236..240].copy_from_slice(&self.parity_volume.to_le_bytes());
        b[240..244].copy_from_slice(&self.parity_volume_count.to_le_bytes());
        b[244..248].copy_from_slice(&self.block_size.to_le_bytes());
        b[248..252].copy_from_slice(&self.stripe_rows.to_le_bytes());
        b[252..256].copy_from_slice(&self.stripe_recovery.to_le_bytes());
        b[256..264].copy_from_slice(&self.table_offset.to_le_bytes());
        b[264..272].copy_from_slice(&self.table_len.to_le_bytes());
        b[272..304].copy_from_slice(&self.table_sha256);
        b[304..312].copy_from_slice(&self.recovery_offset.to_le_bytes());
        b[312..320].copy_from_slice(&self.recovery_count.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8; RECORD_LEN]) -> ParityFields {
        ParityFields {
            parity_volume: le_u32(b, 236),
            parity_volume_count: le_u32(b, 240),
            block_size: le_u32(b, 244),
            stripe_rows: le_u32(b, 248),
            stripe_recovery: le_u32(b, 252),
            table_offset: le_u64(b, 256),
            table_len: le_u64(b, 264),
            table_sha256: bytes32(b, 272),
            recovery_offset: le_u64(b, 304),
            recovery_count: le_u64(b, 312),
        }
    }

    /// The field rules of FORMAT.md §13.2 that need nothing but the record.
    fn check(&self, header_volume: u32, index_piece: IndexPiece) -> Result<(), String> {
        if self.parity_volume_count == 0 || self.parity_volume > self.parity_volume_count {
            return Err(format!(
                "parity volume {} of {} is impossible",
                self.parity_volume, self.parity_volume_count
            ));
        }
        if self.block_size < 512 || !self.block_size.is_power_of_two() {
            return Err(format!(
                "parity block size {} is not a power of two of at least 512",
                self.block_size
            ));
        }
        if self.stripe_rows == 0 || self.stripe_recovery == 0 {
            return Err("a parity stripe needs at least one row and one recovery block".into());
        }
        if self.is_parity_volume() {
            if header_volume != 0 || index_piece != IndexPiece::default() {
                return Err("a parity volume has volume number 0 and no index piece".into());
            }
        } else if self.table_offset != 0
            || self.table_len != 0
            || self.table_sha256 != [0; 32]
            || self.recovery_offset != 0
            || self.recovery_count != 0
        {
            return Err("a data volume's block-table and recovery fields must be 0".into());
        }
        Ok(())
    }
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
        if let Some(parity) = &self.parity {
            parity.encode(&mut b);
        }
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
        // Bytes 196..236 belong to FLAG_ENCRYPTED, 236..320 to FLAG_PARITY,
        // 320..448 to no flag.
        let parity_set = flags & FLAG_PARITY != 0;
        let reserved_set = |range: std::ops::Range<usize>| b[range].iter().any(|&x| x != 0);
        if (!encrypted && reserved_set(KEYS_FIELDS))
            || (!parity_set && reserved_set(PARITY_FIELDS))
            || reserved_set(PARITY_FIELDS.end..SIGNED_LEN)
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
            parity: parity_set.then(|| ParityFields::decode(b)),
        };
        if let Some(parity) = &header.parity {
            parity
                .check(header.volume, header.index_piece)
                .map_err(HeaderError::Malformed)?;
        }
        let parity_volume = header.parity.is_some_and(|p| p.is_parity_volume());
        if header.volume_count == 0
            || (header.volume == 0 && !parity_volume)
            || header.volume > header.volume_count
        {
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
            && self.parity.map(|p| p.layout()) == other.parity.map(|p| p.layout())
    }

    /// Whether the parcel is encrypted to its destination (FORMAT.md §12).
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }

    /// Whether this is a parity volume (FORMAT.md §13), which carries
    /// recovery data rather than part of the parcel.
    pub fn is_parity_volume(&self) -> bool {
        self.parity.is_some_and(|p| p.is_parity_volume())
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
            parity: None,
        }
    }

    fn parity_volume() -> VolumeHeader {
        VolumeHeader {
            version: 3,
            flags: FLAG_PARITY,
            volume: 0,
            index_piece: IndexPiece::default(),
            parity: Some(ParityFields {
                parity_volume: 1,
                parity_volume_count: 2,
                block_size: 512,
                stripe_rows: 11,
                stripe_recovery: 12,
                table_offset: 9728,
                table_len: 1000,
                table_sha256: [5; 32],
                recovery_offset: 1536,
                recovery_count: 16,
            }),
            ..sample()
        }
    }

    #[test]
    fn parity_fields_round_trip_and_their_rules_hold() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let parity = parity_volume();
        let rec = parity.encode_signed(&key);
        assert_eq!(VolumeHeader::decode_verified(&rec), Ok(parity.clone()));
        assert!(VolumeHeader::decode_verified(&rec)
            .unwrap()
            .is_parity_volume());
        let refused = |change: &dyn Fn(&mut VolumeHeader)| {
            let mut h = parity_volume();
            change(&mut h);
            VolumeHeader::decode_verified(&h.encode_signed(&key)).is_err()
        };
        // Without the flag, the fields are reserved bytes.
        assert!(refused(&|h| h.flags = 0));
        // Version 1 has no flags.
        assert!(refused(&|h| h.version = 1));
        // A parity volume has volume 0 and no index piece.
        assert!(refused(&|h| h.volume = 1));
        assert!(refused(&|h| h.index_piece.len = 5));
        let fields = |f: fn(&mut ParityFields)| {
            move |h: &mut VolumeHeader| {
                if let Some(p) = h.parity.as_mut() {
                    f(p)
                }
            }
        };
        assert!(refused(&fields(|p| p.block_size = 1000)));
        assert!(refused(&fields(|p| p.block_size = 256)));
        assert!(refused(&fields(|p| p.stripe_rows = 0)));
        assert!(refused(&fields(|p| p.stripe_recovery = 0)));
        assert!(refused(&fields(|p| p.parity_volume = 3)));
        // A data volume carries no table or recovery fields.
        assert!(refused(&|h| {
            h.volume = 1;
            if let Some(p) = h.parity.as_mut() {
                p.parity_volume = 0;
            }
        }));
        // Reserved bytes past the parity fields stay zero.
        let mut rec = parity_volume().encode_signed(&key);
        rec[PARITY_FIELDS.end] = 1;
        let sig = sign::sign(&key, DOMAIN_VOLUME_HEADER, &rec[..SIGNED_LEN]);
        rec[SIGNED_LEN..].copy_from_slice(&sig);
        assert!(VolumeHeader::decode_verified(&rec).is_err());
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
