//! Encrypted parcels (FORMAT.md §12, header flag 0x0001): a random parcel
//! key, wrapped to the destination's age X25519 recipients in the
//! `parcel-keys` entry of every volume, encrypts every stored pack and the
//! stored index with ChaCha20-Poly1305.
//!
//! Only the stored bytes change: their SHA-256 (bound by the signed headers
//! and the index) is over the ciphertext, so checking the media needs no
//! secret key. Nothing here is hand-made cryptography: age wraps the key,
//! the `chacha20poly1305` crate seals the units.

use std::io::{Read, Write};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{OsRng, RngCore};

pub use age::x25519::{Identity, Recipient};

use crate::error::WriteError;
use crate::limits::MAX_KEYS_ENTRY;
use crate::ParcelId;

/// Name of the tar entry holding the wrapped parcel key, right after
/// `parcel-volume` in every volume of an encrypted parcel.
pub const KEYS_ENTRY: &str = "parcel-keys";

/// Bytes ChaCha20-Poly1305 adds to every sealed unit (the Poly1305 tag).
pub const TAG_LEN: usize = 16;

/// Nonce domain of a stored pack (the nonce's first 4 bytes, little-endian).
const DOMAIN_PACK: u32 = 0;
/// Nonce domain of the stored index.
const DOMAIN_INDEX: u32 = 1;

/// The 32-byte key that encrypts one parcel's packs and index.
#[derive(Clone)]
pub struct ParcelKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for ParcelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParcelKey(…)")
    }
}

/// The 12-byte nonce of a unit: its domain (u32 LE), then its number (u64 LE).
fn nonce(domain: u32, number: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&domain.to_le_bytes());
    bytes[4..].copy_from_slice(&number.to_le_bytes());
    Nonce::from(bytes)
}

impl ParcelKey {
    fn from_bytes(bytes: [u8; 32]) -> ParcelKey {
        ParcelKey {
            cipher: ChaCha20Poly1305::new(&Key::from(bytes)),
        }
    }

    fn seal(&self, domain: u32, number: u64, parcel: &ParcelId, unit: &mut Vec<u8>) -> bool {
        self.cipher
            .encrypt_in_place(&nonce(domain, number), &parcel.0, unit)
            .is_ok()
    }

    /// Decrypts `unit` in place (the tag is removed); `false`, with `unit`
    /// in an unspecified state, when it does not authenticate.
    fn open(&self, domain: u32, number: u64, parcel: &ParcelId, unit: &mut Vec<u8>) -> bool {
        self.cipher
            .decrypt_in_place(&nonce(domain, number), &parcel.0, unit)
            .is_ok()
    }

    /// Encrypts pack `pack`'s zstd frame in place (the tag is appended).
    pub(crate) fn seal_pack(&self, parcel: &ParcelId, pack: u32, frame: &mut Vec<u8>) -> bool {
        self.seal(DOMAIN_PACK, pack.into(), parcel, frame)
    }

    /// Decrypts a stored pack, in place, into its zstd frame (FORMAT.md §8.1
    /// counts no copy); `false` when it does not authenticate under this
    /// key, parcel and pack number, and `stored` is then no longer the pack.
    pub(crate) fn open_pack(&self, parcel: &ParcelId, pack: u32, stored: &mut Vec<u8>) -> bool {
        self.open(DOMAIN_PACK, pack.into(), parcel, stored)
    }

    /// Encrypts the compressed manifest in place.
    pub(crate) fn seal_index(&self, parcel: &ParcelId, frame: &mut Vec<u8>) -> bool {
        self.seal(DOMAIN_INDEX, 0, parcel, frame)
    }

    /// Decrypts the stored index, in place, into the compressed manifest
    /// (the index can be 256 MiB: it is not copied).
    pub(crate) fn open_index(&self, parcel: &ParcelId, mut stored: Vec<u8>) -> Option<Vec<u8>> {
        self.open(DOMAIN_INDEX, 0, parcel, &mut stored)
            .then_some(stored)
    }
}

/// How a writer encrypts a parcel: a fresh parcel key and the `parcel-keys`
/// entry that wraps it to the destination's recipients.
#[derive(Clone)]
pub struct Encryption {
    key: ParcelKey,
    keys_entry: Vec<u8>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("keys_entry_len", &self.keys_entry.len())
            .finish_non_exhaustive()
    }
}

impl Encryption {
    /// A new random parcel key, wrapped with age to every one of
    /// `recipients` (the destination site's X25519 keys). Use one
    /// `Encryption` for one parcel only.
    pub fn to_recipients(recipients: &[Recipient]) -> Result<Encryption, WriteError> {
        if recipients.is_empty() {
            return Err(WriteError::Invalid(
                "an encrypted parcel needs at least one recipient".into(),
            ));
        }
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let failed = |e: &dyn std::fmt::Display| {
            WriteError::Invalid(format!("wrapping the parcel key with age: {e}"))
        };
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| failed(&e))?;
        let mut keys_entry = Vec::new();
        let mut writer = encryptor
            .wrap_output(&mut keys_entry)
            .map_err(|e| failed(&e))?;
        writer.write_all(&key).map_err(|e| failed(&e))?;
        writer.finish().map_err(|e| failed(&e))?;
        if keys_entry.len() as u64 > MAX_KEYS_ENTRY {
            return Err(WriteError::Invalid(format!(
                "the wrapped parcel key takes {} bytes, over the limit of {MAX_KEYS_ENTRY}; use fewer recipients",
                keys_entry.len()
            )));
        }
        Ok(Encryption {
            key: ParcelKey::from_bytes(key),
            keys_entry,
        })
    }

    /// A fixed parcel key and keys entry, for test vectors and fuzzing,
    /// which must come out the same every time (age's wrapping is random).
    #[cfg(feature = "testkit")]
    pub fn from_parts(key: [u8; 32], keys_entry: Vec<u8>) -> Encryption {
        Encryption {
            key: ParcelKey::from_bytes(key),
            keys_entry,
        }
    }

    /// The bytes of the `parcel-keys` entry.
    pub fn keys_entry(&self) -> &[u8] {
        &self.keys_entry
    }

    /// The parcel key.
    pub(crate) fn key(&self) -> &ParcelKey {
        &self.key
    }
}

/// Why the parcel key could not be had from a keys entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnwrapError {
    /// The entry is a well-formed age file, but not for this identity.
    NotForThisIdentity,
    /// The entry is not an age file holding a 32-byte key.
    Malformed(String),
}

/// Unwraps the parcel key from the (already hash-checked) keys entry.
pub(crate) fn unwrap_key(entry: &[u8], identity: &Identity) -> Result<ParcelKey, UnwrapError> {
    let decryptor =
        age::Decryptor::new_buffered(entry).map_err(|e| UnwrapError::Malformed(e.to_string()))?;
    let mut reader = match decryptor.decrypt(std::iter::once(identity as &dyn age::Identity)) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => return Err(UnwrapError::NotForThisIdentity),
        Err(e) => return Err(UnwrapError::Malformed(e.to_string())),
    };
    let mut key = Vec::with_capacity(32);
    reader
        .by_ref()
        .take(33)
        .read_to_end(&mut key)
        .map_err(|e| UnwrapError::Malformed(e.to_string()))?;
    let key: [u8; 32] = key.try_into().map_err(|k: Vec<u8>| {
        UnwrapError::Malformed(format!("it holds {} bytes, not a 32-byte key", k.len()))
    })?;
    Ok(ParcelKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_open_only_under_their_own_key_parcel_domain_and_number() {
        let identity = Identity::generate();
        let enc =
            Encryption::to_recipients(&[identity.to_public()]).unwrap_or_else(|e| panic!("{e}"));
        let key = unwrap_key(enc.keys_entry(), &identity).unwrap_or_else(|e| panic!("{e:?}"));
        let parcel = ParcelId([7; 16]);
        let mut unit = b"zstd frame".to_vec();
        assert!(enc.key().seal_pack(&parcel, 3, &mut unit));
        assert_eq!(unit.len(), 10 + TAG_LEN);
        let opened = |parcel: &ParcelId, pack: u32| {
            let mut copy = unit.clone();
            key.open_pack(parcel, pack, &mut copy).then_some(copy)
        };
        assert_eq!(opened(&parcel, 3).as_deref(), Some(&b"zstd frame"[..]));
        assert!(opened(&parcel, 4).is_none());
        assert!(opened(&ParcelId([8; 16]), 3).is_none());
        assert!(key.open_index(&parcel, unit.clone()).is_none());
        let other = Identity::generate();
        assert_eq!(
            unwrap_key(enc.keys_entry(), &other).err(),
            Some(UnwrapError::NotForThisIdentity)
        );
        assert!(matches!(
            unwrap_key(b"not age", &identity),
            Err(UnwrapError::Malformed(_))
        ));
    }
}
