//! Repair requests (FORMAT.md §13.8): when repair from parity is impossible,
//! the destination's signed statement of which data volumes of a parcel it
//! lacks, with what the headers it holds say about the index pieces, so that
//! the source can rebuild exactly those volumes (`resend.rs`).
//!
//! Like a receipt (§9), a request is short UTF-8 text of `key: value` lines
//! whose signature covers the domain string `parcel-format/v1/repair-request\0`
//! and every line before the `signature:` line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::header::VolumeHeader;
use crate::limits::MAX_VOLUMES;
use crate::manifest::{check_site_code, hex, Hash, ParcelId};
use crate::read::authenticate_volume;
use crate::sign::{self, TrustedKeys};
use crate::signed_text::{unhex, SignedText};

/// Domain string of a repair request's signature.
pub const DOMAIN_REPAIR_REQUEST: &[u8] = b"parcel-format/v1/repair-request\0";
/// Largest repair request a reader accepts (9,999 volume numbers fit).
pub const MAX_REQUEST_LEN: usize = 256 * 1024;
const FIRST_LINE: &str = "parcel-repair-request v1";

/// What the destination asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRequest {
    /// The parcel.
    pub parcel_id: ParcelId,
    /// The site that sent it.
    pub source_site: String,
    /// The site asking (and signing).
    pub destination_site: String,
    /// SHA-256 of the parcel's stored index, from its headers.
    pub index_sha256: Hash,
    /// The parcel's volume count.
    pub volume_count: u32,
    /// The data volumes asked for, increasing.
    pub missing: Vec<u32>,
    /// Index pieces of the volumes held: volume → (start, len), from their
    /// authenticated headers (FORMAT.md §2.3).
    pub pieces: BTreeMap<u32, (u64, u64)>,
    /// The repair-data layout the headers announce (FORMAT.md §13.2): parity
    /// volume count, block size, stripe rows, stripe recovery.
    pub parity: Option<(u32, u32, u32, u32)>,
    /// When it was made, Unix seconds.
    pub requested: i64,
}

/// Why a repair request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a repair request, or a malformed one.
    #[error("not a valid repair request: {0}")]
    Malformed(String),
    /// The signature does not verify under the key it names.
    #[error("the repair request's signature is invalid (forged or altered)")]
    BadSignature,
}

fn numbers<T: ToString>(list: impl Iterator<Item = T>) -> String {
    let text: Vec<String> = list.map(|n| n.to_string()).collect();
    if text.is_empty() {
        "none".into()
    } else {
        text.join(" ")
    }
}

impl RepairRequest {
    /// A request for the `missing` data volumes of parcel `chosen` (the one
    /// a reader read from `paths`, FORMAT.md §7.2 step 2), from its
    /// authenticated volumes (data or parity) among `paths`; `None` when
    /// none of them authenticates.
    pub fn for_volumes(
        paths: &[PathBuf],
        trust: &TrustedKeys,
        chosen: ParcelId,
        missing: &[u32],
        destination_site: &str,
        requested: i64,
    ) -> Option<RepairRequest> {
        let ours: Vec<VolumeHeader> = paths
            .iter()
            .filter_map(|p| authenticate_volume(p, trust).ok().map(|(h, _)| h))
            .filter(|h| h.parcel_id == chosen)
            .collect();
        let reference = ours.first()?;
        let pieces = ours
            .iter()
            .filter(|h| !h.is_parity_volume() && h.index_piece.len > 0)
            .filter(|h| !missing.contains(&h.volume))
            .map(|h| (h.volume, (h.index_piece.start, h.index_piece.len)))
            .collect();
        let mut missing = missing.to_vec();
        missing.sort_unstable();
        missing.dedup();
        Some(RepairRequest {
            parcel_id: chosen,
            source_site: reference.source_site.clone(),
            destination_site: destination_site.to_owned(),
            index_sha256: reference.index_sha256,
            volume_count: reference.volume_count,
            missing,
            pieces,
            parity: reference.parity.map(|p| p.layout()),
            requested,
        })
    }

    fn body(&self, signer: &[u8; 32]) -> String {
        let pieces = numbers(
            self.pieces
                .iter()
                .map(|(v, (start, len))| format!("{v}:{start}:{len}")),
        );
        let parity = self
            .parity
            .map_or("none".to_owned(), |(m, b, k, r)| format!("{m} {b} {k} {r}"));
        format!(
            "{FIRST_LINE}\nparcel: {}\nsource: {}\ndestination: {}\nindex: {}\nvolumes: {}\nmissing: {}\npieces: {pieces}\nparity: {parity}\nrequested: {}\nsigner: {}\n",
            self.parcel_id,
            self.source_site,
            self.destination_site,
            hex(&self.index_sha256),
            self.volume_count,
            numbers(self.missing.iter()),
            self.requested,
            hex(signer)
        )
    }

    /// The request as signed text.
    pub fn to_signed_text(&self, key: &SigningKey) -> String {
        let body = self.body(&key.verifying_key().to_bytes());
        let signature = sign::sign(key, DOMAIN_REPAIR_REQUEST, body.as_bytes());
        format!("{body}signature: {}\n", hex(&signature))
    }

    /// Parses a request and checks its signature under the key it names
    /// (strict: exact line order, no extra lines). Returns the request and
    /// that key; the caller checks the key is the destination site's.
    pub fn parse(bytes: &[u8]) -> Result<(RepairRequest, [u8; 32]), RequestError> {
        let bad = |why: &str| RequestError::Malformed(why.to_owned());
        let mut text = SignedText::split(bytes, MAX_REQUEST_LEN, "256 KiB", FIRST_LINE)
            .map_err(RequestError::Malformed)?;
        let mut field = |name: &str| text.field(name).map_err(RequestError::Malformed);
        let parcel_id = ParcelId::parse(field("parcel")?).ok_or_else(|| bad("bad parcel id"))?;
        let source_site = field("source")?.to_owned();
        let destination_site = field("destination")?.to_owned();
        let index_sha256 = unhex(field("index")?).ok_or_else(|| bad("bad index hash"))?;
        let volume_count: u32 = field("volumes")?
            .parse()
            .ok()
            .filter(|n| (1..=MAX_VOLUMES).contains(n))
            .ok_or_else(|| bad("bad volume count"))?;
        let in_range = |v: u32| (1..=volume_count).contains(&v);
        let missing_text = field("missing")?;
        let missing: Vec<u32> = if missing_text == "none" {
            Vec::new()
        } else {
            missing_text
                .split(' ')
                .map(|n| n.parse().ok().filter(|v| in_range(*v)))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("bad missing volume list"))?
        };
        if missing.is_empty() || missing.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("missing volumes must be listed once each, increasing"));
        }
        let pieces_text = field("pieces")?;
        let mut pieces = BTreeMap::new();
        if pieces_text != "none" {
            for item in pieces_text.split(' ') {
                let mut parts = item.split(':').map(|n| n.parse::<u64>().ok());
                let (Some(Some(v)), Some(Some(start)), Some(Some(len)), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad("bad index piece"));
                };
                let v = u32::try_from(v).ok().filter(|v| in_range(*v));
                let Some(v) = v else {
                    return Err(bad("index piece of a volume out of range"));
                };
                if pieces.insert(v, (start, len)).is_some() {
                    return Err(bad("two index pieces for one volume"));
                }
            }
        }
        let parity_text = field("parity")?;
        let parity = if parity_text == "none" {
            None
        } else {
            let n: Vec<u32> = parity_text
                .split(' ')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()
                .ok_or_else(|| bad("bad parity layout"))?;
            match n.as_slice() {
                [m, b, k, r] => Some((*m, *b, *k, *r)),
                _ => return Err(bad("bad parity layout")),
            }
        };
        let requested = field("requested")?
            .parse()
            .map_err(|_| bad("bad request time"))?;
        let signer: [u8; 32] = unhex(field("signer")?).ok_or_else(|| bad("bad signer key"))?;
        let body = text.body;
        let signature = text.signature().map_err(RequestError::Malformed)?;
        check_site_code(&source_site).map_err(RequestError::Malformed)?;
        check_site_code(&destination_site).map_err(RequestError::Malformed)?;
        let request = RepairRequest {
            parcel_id,
            source_site,
            destination_site,
            index_sha256,
            volume_count,
            missing,
            pieces,
            parity,
            requested,
        };
        let key = VerifyingKey::from_bytes(&signer).map_err(|_| RequestError::BadSignature)?;
        if request.body(&signer) != body
            || !sign::verify(&key, DOMAIN_REPAIR_REQUEST, body.as_bytes(), &signature)
        {
            return Err(RequestError::BadSignature);
        }
        Ok((request, signer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_any_change_is_refused() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let request = RepairRequest {
            parcel_id: ParcelId([3; 16]),
            source_site: "CEN".into(),
            destination_site: "BXL".into(),
            index_sha256: [7; 32],
            volume_count: 5,
            missing: vec![2, 5],
            pieces: BTreeMap::from([(4, (0, 1200))]),
            parity: Some((2, 512, 7, 9)),
            requested: 1_700_000_000,
        };
        let text = request.to_signed_text(&key);
        let (parsed, signer) = RepairRequest::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, request);
        assert_eq!(signer, key.verifying_key().to_bytes());
        let altered = text.replace("missing: 2 5", "missing: 2 4");
        assert_eq!(
            RepairRequest::parse(altered.as_bytes()),
            Err(RequestError::BadSignature)
        );
    }
}
