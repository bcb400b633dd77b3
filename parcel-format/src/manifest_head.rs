//! The head of a manifest: its fields up to `volume_count` (FORMAT.md §5.3),
//! which say which parcel it is, who sends which package, and to whom.
//!
//! The media check (FORMAT.md §7.4) decodes only these, to name the parcel
//! and its destinations in its report. The rest of the index is checked
//! against its signed hash but not decoded, so the check's memory does not
//! grow with the package: decoded, the chunk table alone takes 44 bytes a
//! chunk (2.5 MB for a 4 GiB package, a quarter of all a `verify --media`
//! held). The content check decodes and validates the whole manifest.

use serde::Deserialize;

use crate::error::Problem;
use crate::header::VolumeHeader;
use crate::limits::{MAX_COMMENT, MAX_DESTINATIONS};
use crate::manifest::{check_package_id, check_site_code, ParcelId};

/// The first fields of a [`crate::Manifest`], decoded alone: postcard
/// writes a struct's fields one after the other with nothing between them,
/// so these are the manifest's first ten fields, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ManifestHead {
    /// Format version; equals the headers'.
    pub format_version: u16,
    /// The parcel's id; equals the headers'.
    pub parcel_id: ParcelId,
    /// The site that made and signed this parcel.
    pub source_site: String,
    /// The site where the package was first made.
    pub origin_site: String,
    /// The site(s) this parcel is addressed to.
    #[serde(deserialize_with = "crate::bounded::vec")]
    pub destinations: Vec<String>,
    /// Package id.
    pub package_id: String,
    /// Package version.
    pub package_version: u64,
    /// Creation time, Unix seconds; equals the headers'.
    pub created: i64,
    /// Free text from the sender.
    pub comment: String,
    /// Number of volumes; equals the headers'.
    pub volume_count: u32,
}

impl ManifestHead {
    /// Decodes the head of an authenticated stored index read from
    /// `stored`, decompressing only as far as the head goes: what follows
    /// it is neither decompressed nor decoded.
    pub fn decode_from(stored: impl std::io::Read, raw_len: u64) -> Result<ManifestHead, Problem> {
        crate::manifest::decode_stream(
            stored,
            raw_len,
            crate::manifest::Rest::Unread,
            |reader, scratch| Ok(postcard::from_io::<ManifestHead, _>((reader, scratch))?.0),
        )
    }

    /// FORMAT.md §7.3 step 8, items 1–5, on the head alone.
    pub fn validate(&self, header: &VolumeHeader) -> Result<(), Problem> {
        Fields {
            format_version: self.format_version,
            parcel_id: self.parcel_id,
            source_site: &self.source_site,
            origin_site: &self.origin_site,
            destinations: &self.destinations,
            package_id: &self.package_id,
            created: self.created,
            comment: &self.comment,
            volume_count: self.volume_count,
        }
        .validate(header)
    }
}

/// The head's fields as a manifest or a head decoded alone holds them, for
/// the one check both make of them.
pub(crate) struct Fields<'a> {
    pub(crate) format_version: u16,
    pub(crate) parcel_id: ParcelId,
    pub(crate) source_site: &'a str,
    pub(crate) origin_site: &'a str,
    pub(crate) destinations: &'a [String],
    pub(crate) package_id: &'a str,
    pub(crate) created: i64,
    pub(crate) comment: &'a str,
    pub(crate) volume_count: u32,
}

impl Fields<'_> {
    /// FORMAT.md §7.3 step 8, items 1–5, in that order.
    pub(crate) fn validate(&self, header: &VolumeHeader) -> Result<(), Problem> {
        if self.format_version != header.version
            || self.parcel_id != header.parcel_id
            || self.volume_count != header.volume_count
            || self.created != header.created
            || self.source_site != header.source_site
        {
            return Err(Problem::index(
                "contradicts the volume headers (id, version, count, time or source)",
            ));
        }
        for site in
            std::iter::once(self.origin_site).chain(self.destinations.iter().map(String::as_str))
        {
            check_site_code(site).map_err(Problem::index)?;
        }
        if self.destinations.is_empty() || self.destinations.len() > MAX_DESTINATIONS {
            return Err(Problem::index("needs between 1 and 64 destinations"));
        }
        check_package_id(self.package_id).map_err(Problem::index)?;
        if self.comment.len() > MAX_COMMENT {
            return Err(Problem::limit(
                "comment length",
                self.comment.len() as u64,
                MAX_COMMENT as u64,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::DEFAULT_CHUNKING;
    use crate::manifest::{ChunkRecord, Manifest, PackRecord};

    /// A manifest whose chunk table (random-looking hashes, which do not
    /// compress) makes its stored index several zstd blocks long.
    fn manifest(chunks: u32) -> Manifest {
        Manifest {
            format_version: 1,
            parcel_id: ParcelId([7; 16]),
            source_site: "CEN".into(),
            origin_site: "ORG".into(),
            destinations: vec!["BXL".into(), "LUX".into()],
            package_id: "CEN00012".into(),
            package_version: 42,
            created: 1_700_000_000,
            comment: "for the clinic".into(),
            volume_count: 3,
            compression_level: 3,
            chunking: DEFAULT_CHUNKING,
            packs: vec![PackRecord {
                volume: 1,
                offset: 1024,
                stored_len: 100,
                raw_len: chunks,
                stored_sha256: [0; 32],
            }],
            chunks: (0..chunks)
                .map(|i| ChunkRecord {
                    sha256: crate::sha256::sha256(&i.to_le_bytes()),
                    len: 1,
                    pack: 0,
                    offset: i,
                })
                .collect(),
            entries: Vec::new(),
            base: None,
        }
    }

    fn header_of(m: &Manifest) -> VolumeHeader {
        VolumeHeader {
            version: m.format_version,
            flags: 0,
            volume: 1,
            volume_count: m.volume_count,
            parcel_id: m.parcel_id,
            created: m.created,
            source_site: m.source_site.clone(),
            signer: [0; 32],
            body_len: 1 << 20,
            body_sha256: [0; 32],
            index_stored_len: 0,
            index_raw_len: 0,
            index_sha256: [0; 32],
            index_piece: crate::header::IndexPiece::default(),
            keys_len: 0,
            keys_sha256: [0; 32],
            parity: None,
        }
    }

    #[test]
    fn the_head_is_the_manifest_s_first_fields_and_nothing_after_it_is_read() {
        let m = manifest(20_000);
        let (stored, raw_len) = m.encode(3).expect("encodes");
        assert!(stored.len() > 400_000, "{} bytes", stored.len());
        // Cut short far past the head: what follows it is not read, so the
        // head still decodes (the whole manifest does not).
        let front = stored.get(..stored.len() / 4).expect("front");
        assert!(Manifest::decode(front, raw_len).is_err());
        let head = ManifestHead::decode_from(front, raw_len).expect("head decodes");
        assert_eq!(
            head,
            ManifestHead {
                format_version: 1,
                parcel_id: ParcelId([7; 16]),
                source_site: "CEN".into(),
                origin_site: "ORG".into(),
                destinations: vec!["BXL".into(), "LUX".into()],
                package_id: "CEN00012".into(),
                package_version: 42,
                created: 1_700_000_000,
                comment: "for the clinic".into(),
                volume_count: 3,
            }
        );
        assert!(head.validate(&header_of(&m)).is_ok());
    }

    #[test]
    fn the_head_is_refused_where_the_whole_manifest_is() {
        type Change = fn(&mut Manifest);
        let cases: [(&str, Change); 10] = [
            ("another format version", |m| m.format_version = 3),
            ("another parcel id", |m| m.parcel_id = ParcelId([8; 16])),
            ("another source site", |m| m.source_site = "LUX".into()),
            ("another creation time", |m| m.created += 1),
            ("another volume count", |m| m.volume_count = 4),
            ("an origin that is no site code", |m| {
                m.origin_site = String::new()
            }),
            ("no destination", |m| m.destinations.clear()),
            ("a destination that is no site code", |m| {
                m.destinations = vec!["bx l".into()]
            }),
            ("a package id that is none", |m| {
                m.package_id = "../x".into()
            }),
            ("a comment over 4,096 bytes", |m| {
                m.comment = "x".repeat(MAX_COMMENT + 1)
            }),
        ];
        let honest = manifest(1);
        let header = header_of(&honest);
        for (what, change) in cases {
            let mut m = honest.clone();
            change(&mut m);
            let (stored, raw_len) = m.encode(3).expect("encodes");
            let head = ManifestHead::decode_from(&stored[..], raw_len).expect("decodes");
            let whole = m
                .validate(&header, &Default::default())
                .map_err(|p| p.to_string());
            assert!(whole.is_err(), "{what}: the manifest passes");
            let alone = head.validate(&header).map_err(|p| p.to_string());
            assert_eq!(alone, whole, "{what}");
        }
    }
}
