//! Ed25519 keys, the domain-separated messages parcel signs, key fingerprints
//! and the set of keys a reader trusts.
//!
//! Every signed message starts with a domain string naming what it is
//! (FORMAT.md §4), so that a volume-header signature can never be replayed as a
//! receipt signature or the other way round. Signatures are checked with
//! `verify_strict`, which refuses small-order keys and non-canonical signatures.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Domain prefix of a volume-header signature.
pub const DOMAIN_VOLUME_HEADER: &[u8] = b"parcel-format/v1/volume-header\0";
/// Domain prefix of a receipt signature.
pub const DOMAIN_RECEIPT: &[u8] = b"parcel-format/v1/receipt\0";

/// A secret key a site signs parcels and receipts with.
pub use ed25519_dalek::SigningKey as SecretKey;
/// A public key that checks a site's signatures.
pub use ed25519_dalek::VerifyingKey as PublicKey;

/// Creates a fresh secret key from the operating system's random source.
pub fn generate_secret_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Signs `message` under `domain`: the signature covers `domain || message`.
pub fn sign(key: &SigningKey, domain: &[u8], message: &[u8]) -> [u8; 64] {
    let mut full = Vec::with_capacity(domain.len() + message.len());
    full.extend_from_slice(domain);
    full.extend_from_slice(message);
    key.sign(&full).to_bytes()
}

/// Checks a signature made by [`sign`] with `verify_strict`.
pub fn verify(key: &VerifyingKey, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
    let mut full = Vec::with_capacity(domain.len() + message.len());
    full.extend_from_slice(domain);
    full.extend_from_slice(message);
    key.verify_strict(&full, &Signature::from_bytes(signature))
        .is_ok()
}

/// A public key's fingerprint as people read it over the phone: the first 15
/// bytes of SHA-256 of the key, as 6 groups of 5 decimal digits
/// (`12345 67890 …`), about 99 bits. FORMAT.md §4.3 gives the exact encoding.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut groups = Vec::with_capacity(6);
    for part in digest[..15].chunks_exact(5) {
        // 5 bytes = 40 bits; two groups of 5 digits each from 20 bits, kept below 100000.
        let mut value = 0u64;
        for byte in part {
            value = (value << 8) | u64::from(*byte);
        }
        let high = (value >> 20) % 100_000;
        let low = (value & 0xF_FFFF) % 100_000;
        groups.push(format!("{high:05}"));
        groups.push(format!("{low:05}"));
    }
    groups.join(" ")
}

/// Whether two fingerprints are the same, ignoring spaces and dashes people add.
pub fn fingerprints_match(a: &str, b: &str) -> bool {
    let clean = |s: &str| -> String { s.chars().filter(|c| c.is_ascii_digit()).collect() };
    let a = clean(a);
    !a.is_empty() && a == clean(b)
}

/// The keys a reader accepts signatures from, each with the label (a site
/// code) the caller knows it by.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl TrustedKeys {
    /// An empty set: every signature is untrusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under a label.
    pub fn add(&mut self, label: impl Into<String>, key: VerifyingKey) {
        self.keys.push((label.into(), key));
    }

    /// The label of a trusted key, or `None` when the key is not trusted.
    pub fn label_of(&self, key: &VerifyingKey) -> Option<&str> {
        self.label_of_bytes(key.as_bytes())
    }

    /// The label of the trusted key whose encoding is `key`, or `None`.
    ///
    /// For a key already named by a verified signature (a volume header's
    /// signer): comparing the 32 bytes spares decoding the point again, which
    /// costs about as much as a third of a signature check.
    pub fn label_of_bytes(&self, key: &[u8; 32]) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, k)| k.as_bytes() == key)
            .map(|(label, _)| label.as_str())
    }

    /// Whether a key is trusted under `label`.
    pub fn has_label(&self, label: &str) -> bool {
        self.keys.iter().any(|(l, _)| l == label)
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_under_one_domain_fails_under_another() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let sig = sign(&key, DOMAIN_VOLUME_HEADER, b"message");
        assert!(verify(
            &key.verifying_key(),
            DOMAIN_VOLUME_HEADER,
            b"message",
            &sig
        ));
        assert!(!verify(
            &key.verifying_key(),
            DOMAIN_RECEIPT,
            b"message",
            &sig
        ));
        assert!(!verify(
            &key.verifying_key(),
            DOMAIN_VOLUME_HEADER,
            b"messagf",
            &sig
        ));
    }

    #[test]
    fn fingerprint_is_six_groups_of_five_digits_and_matches_loosely() {
        let key = SigningKey::from_bytes(&[1u8; 32]).verifying_key();
        let fp = fingerprint(&key);
        assert_eq!(fp.len(), 6 * 5 + 5);
        assert!(fp
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        assert!(fingerprints_match(&fp, &fp.replace(' ', "-")));
        let other = SigningKey::from_bytes(&[2u8; 32]).verifying_key();
        assert!(!fingerprints_match(&fp, &fingerprint(&other)));
    }
}
