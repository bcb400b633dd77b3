//! The head of a manifest: its fields up to `volume_count` (FORMAT.md §5.3),
//! which say which parcel it is, who sends which package, and to whom.
//!
//! The media check (FORMAT.md §7.4) decodes only these, to name the parcel
//! and its destinations in its report, and of a version 2 or 3 index the
//! base version at its end, read past the tables without keeping them. The
//! rest of the index is checked against its signed hash but not kept, so
//! the check's memory does not grow with the package: decoded, the chunk
//! table alone takes 44 bytes a chunk (2.5 MB for a 4 GiB package, a
//! quarter of all a `verify --media` held). The content check decodes and
//! validates the whole manifest.

use serde::Deserialize;

use crate::bounded::Skipped;
use crate::error::Problem;
use crate::header::VolumeHeader;
use crate::limits::{MAX_COMMENT, MAX_DESTINATIONS};
use crate::manifest::{
    check_package_id, check_site_code, BaseChunk, ChunkParams, ChunkRecord, Entry, Hash,
    PackRecord, ParcelId, Rest, DELTA_FORMAT_VERSION, EXTENDED_FORMAT_VERSION,
};

/// What follows the head in every version (FORMAT.md §5.3.2 fields 11–15),
/// read past: compression level, chunking, packs, chunks, file table.
type Tables = (
    i32,
    ChunkParams,
    Skipped<PackRecord>,
    Skipped<ChunkRecord>,
    Skipped<Entry>,
);

/// A delta's base (§11.1) read for its version alone: the version, the
/// tree digest, and its three lists read past.
type BaseVersion = (u64, Hash, Skipped<u32>, Skipped<String>, Skipped<BaseChunk>);

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
    /// For a delta parcel, the version it builds on (§11.1), read past the
    /// tables; `None` for a full parcel.
    #[serde(skip)]
    pub base_version: Option<u64>,
}

impl ManifestHead {
    /// Decodes the head of an authenticated stored index read from
    /// `stored`. A version 1 index is decompressed only as far as the head
    /// goes: what follows it is neither decompressed nor decoded. A version
    /// 2 or 3 index, which may end with a delta's base, is decoded to its
    /// end, one element at a time, each dropped once decoded, for the base
    /// version: what does not decode, or bytes after the base, fail as they
    /// fail the whole manifest's decoding.
    pub fn decode_from(stored: impl std::io::Read, raw_len: u64) -> Result<ManifestHead, Problem> {
        crate::manifest::decode_stream(stored, raw_len, |reader, scratch| {
            let (mut head, (reader, scratch)) =
                postcard::from_io::<ManifestHead, _>((reader, scratch))?;
            let tail = match head.format_version {
                DELTA_FORMAT_VERSION | EXTENDED_FORMAT_VERSION => (reader, scratch),
                _ => return Ok((head, Rest::Unread)),
            };
            let (_, tail) = postcard::from_io::<Tables, _>(tail)?;
            head.base_version = match head.format_version {
                DELTA_FORMAT_VERSION => Some(postcard::from_io::<BaseVersion, _>(tail)?.0 .0),
                _ => postcard::from_io::<Option<BaseVersion>, _>(tail)?
                    .0
                    .map(|base| base.0),
            };
            Ok((head, Rest::Refused))
        })
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
    use crate::manifest::{Base, ChunkRecord, Manifest, PackRecord};

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
                base_version: None,
            }
        );
        assert!(head.validate(&header_of(&m)).is_ok());
    }

    /// A delta on version 41 of `manifest(chunks)`'s package, whose base
    /// lists are long enough to span zstd blocks too.
    fn delta(version: u16, chunks: u32) -> Manifest {
        let mut m = manifest(chunks);
        m.format_version = version;
        m.base = Some(Base {
            package_version: 41,
            tree_digest: [9; 32],
            whole: (0..chunks).collect(),
            files: vec!["bin/tool".into(), "lib/libtool.so".into()],
            chunks: (0..chunks)
                .map(|i| BaseChunk {
                    sha256: crate::sha256::sha256(&(i + chunks).to_le_bytes()),
                    len: 100,
                    file: i % 2,
                    offset: u64::from(i) * 100,
                })
                .collect(),
        });
        m
    }

    #[test]
    fn a_delta_s_base_version_is_read_past_the_tables_of_versions_2_and_3() {
        let full_v3 = Manifest {
            format_version: EXTENDED_FORMAT_VERSION,
            ..manifest(20_000)
        };
        for (m, base_version) in [
            (delta(DELTA_FORMAT_VERSION, 20_000), Some(41)),
            (delta(EXTENDED_FORMAT_VERSION, 20_000), Some(41)),
            (full_v3, None),
            (manifest(20_000), None),
        ] {
            let (stored, raw_len) = m.encode(3).expect("encodes");
            let head = ManifestHead::decode_from(&stored[..], raw_len).expect("decodes");
            let version = m.format_version;
            assert_eq!(head.base_version, base_version, "version {version}");
            assert_eq!(
                (head.package_version, head.destinations.len()),
                (42, 2),
                "version {version}"
            );
            // Version 1 is read only as far as its head; the others to their
            // end, so a cut one fails.
            let front = stored.get(..stored.len() / 2).expect("front");
            let cut = ManifestHead::decode_from(front, raw_len);
            assert_eq!(cut.is_ok(), version == 1, "version {version}: {cut:?}");
        }
    }

    #[test]
    fn a_version_2_or_3_index_that_the_whole_decoding_refuses_past_its_head_is_refused() {
        // Bytes after the base, and a base that ends early: the whole
        // decoding refuses both, and so does the head's reading.
        for version in [DELTA_FORMAT_VERSION, EXTENDED_FORMAT_VERSION] {
            let m = delta(version, 3);
            let (stored, raw_len) = m.encode(3).expect("encodes");
            let raw = zstd::bulk::decompress(&stored, raw_len as usize).expect("decompresses");
            let longer = [raw.as_slice(), &[0]].concat();
            let shorter = raw.get(..raw.len() - 1).expect("shorter");
            for (what, raw) in [
                ("a byte after the base", &longer[..]),
                ("a byte short", shorter),
            ] {
                let stored = zstd::bulk::compress(raw, 3).expect("compresses");
                let raw_len = raw.len() as u64;
                let whole = Manifest::decode(&stored, raw_len).map(drop);
                let head = ManifestHead::decode_from(&stored[..], raw_len).map(drop);
                assert!(whole.is_err(), "version {version}, {what}");
                assert_eq!(
                    head.map_err(|p| p.class()),
                    whole.map_err(|p| p.class()),
                    "version {version}, {what}"
                );
            }
        }
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
