//! Receipts: the destination's signed statement that it imported a parcel,
//! carried back to the source by any channel (FORMAT.md §9).
//!
//! A receipt is a short UTF-8 text of `key: value` lines; its signature covers
//! the domain string `parcel-format/v1/receipt\0` followed by every line
//! before the `signature:` line, so it can never be taken for a volume header.

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::manifest::{check_package_id, check_site_code, hex, Hash, ParcelId};
use crate::sign::{self, DOMAIN_RECEIPT};
use crate::signed_text::{unhex, SignedText};

/// Largest receipt file a reader accepts.
pub const MAX_RECEIPT_LEN: usize = 4096;
const FIRST_LINE: &str = "parcel-receipt v1";

/// What the destination states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The parcel imported.
    pub parcel_id: ParcelId,
    /// The site that sent it.
    pub source_site: String,
    /// The site that imported it (and signs the receipt).
    pub destination_site: String,
    /// Package id.
    pub package_id: String,
    /// Package version.
    pub package_version: u64,
    /// Tree digest of what was imported.
    pub tree_digest: Hash,
    /// SHA-256 of the parcel's stored index.
    pub index_sha256: Hash,
    /// Import time, Unix seconds.
    pub imported: i64,
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt, or a malformed one.
    #[error("not a valid parcel receipt: {0}")]
    Malformed(String),
    /// The signature does not verify under the key it names.
    #[error("the receipt's signature is invalid (forged or altered)")]
    BadSignature,
}

/// A parsed receipt whose signature verified under the key it names. The
/// caller still checks that this key is the destination site's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The statement.
    pub receipt: Receipt,
    /// The signing key.
    pub signer: [u8; 32],
}

impl Receipt {
    fn body(&self, signer: &[u8; 32]) -> String {
        format!(
            "{FIRST_LINE}\nparcel: {}\nsource: {}\ndestination: {}\npackage: {}\nversion: {}\ntree: {}\nindex: {}\nimported: {}\nsigner: {}\n",
            self.parcel_id,
            self.source_site,
            self.destination_site,
            self.package_id,
            self.package_version,
            hex(&self.tree_digest),
            hex(&self.index_sha256),
            self.imported,
            hex(signer)
        )
    }

    /// The receipt as signed text.
    pub fn to_signed_text(&self, key: &SigningKey) -> String {
        let body = self.body(&key.verifying_key().to_bytes());
        let signature = sign::sign(key, DOMAIN_RECEIPT, body.as_bytes());
        format!("{body}signature: {}\n", hex(&signature))
    }
}

impl SignedReceipt {
    /// Parses a receipt and checks its signature (strict: exact line order, no extra lines).
    pub fn parse(bytes: &[u8]) -> Result<SignedReceipt, ReceiptError> {
        let bad = |why: &str| ReceiptError::Malformed(why.to_owned());
        let mut text = SignedText::split(bytes, MAX_RECEIPT_LEN, "4096 bytes", FIRST_LINE)
            .map_err(ReceiptError::Malformed)?;
        let mut field = |name: &str| text.field(name).map_err(ReceiptError::Malformed);
        let parcel_id = ParcelId::parse(field("parcel")?).ok_or_else(|| bad("bad parcel id"))?;
        let source_site = field("source")?.to_owned();
        let destination_site = field("destination")?.to_owned();
        let package_id = field("package")?.to_owned();
        let package_version = field("version")?.parse().map_err(|_| bad("bad version"))?;
        let tree_digest = unhex(field("tree")?).ok_or_else(|| bad("bad tree digest"))?;
        let index_sha256 = unhex(field("index")?).ok_or_else(|| bad("bad index hash"))?;
        let imported = field("imported")?
            .parse()
            .map_err(|_| bad("bad import time"))?;
        let signer: [u8; 32] = unhex(field("signer")?).ok_or_else(|| bad("bad signer key"))?;
        let body = text.body;
        // FORMAT.md §9 steps 4 and 5, in that order.
        check_site_code(&source_site).map_err(ReceiptError::Malformed)?;
        check_site_code(&destination_site).map_err(ReceiptError::Malformed)?;
        check_package_id(&package_id).map_err(ReceiptError::Malformed)?;
        let signature = text.signature().map_err(ReceiptError::Malformed)?;
        let receipt = Receipt {
            parcel_id,
            source_site,
            destination_site,
            package_id,
            package_version,
            tree_digest,
            index_sha256,
            imported,
        };
        // The signed bytes must be exactly what this reader would write.
        if receipt.body(&signer) != body {
            return Err(bad("not in canonical form"));
        }
        let key = VerifyingKey::from_bytes(&signer).map_err(|_| ReceiptError::BadSignature)?;
        if !sign::verify(&key, DOMAIN_RECEIPT, body.as_bytes(), &signature) {
            return Err(ReceiptError::BadSignature);
        }
        Ok(SignedReceipt { receipt, signer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            parcel_id: ParcelId([7; 16]),
            source_site: "CEN".into(),
            destination_site: "BXL".into(),
            package_id: "CEN00012".into(),
            package_version: 3,
            tree_digest: [1; 32],
            index_sha256: [2; 32],
            imported: 1_700_000_000,
        }
    }

    #[test]
    fn receipt_round_trips_and_alteration_is_refused() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let text = sample().to_signed_text(&key);
        let parsed = SignedReceipt::parse(text.as_bytes());
        assert_eq!(
            parsed,
            Ok(SignedReceipt {
                receipt: sample(),
                signer: key.verifying_key().to_bytes()
            })
        );
        let altered = text.replace("version: 3", "version: 4");
        assert_eq!(
            SignedReceipt::parse(altered.as_bytes()),
            Err(ReceiptError::BadSignature)
        );
        assert!(SignedReceipt::parse(b"garbage").is_err());
    }

    #[test]
    fn volume_header_signature_is_not_a_receipt_signature() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let body = sample().body(&key.verifying_key().to_bytes());
        let wrong = sign::sign(&key, sign::DOMAIN_VOLUME_HEADER, body.as_bytes());
        let forged = format!("{body}signature: {}\n", hex(&wrong));
        assert_eq!(
            SignedReceipt::parse(forged.as_bytes()),
            Err(ReceiptError::BadSignature)
        );
    }
}
