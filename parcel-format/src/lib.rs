//! # parcel-format
//!
//! Signed, compressed, chunked, multi-volume *parcels*: the format a courier
//! sender uses to carry a software package (a directory tree) on removable
//! media from one site to another. FORMAT.md at the repository root defines
//! the format byte by byte; this crate implements it, and knows nothing of
//! site databases, terminals or progress bars.
//!
//! * Writing: [`write::scan`] walks a package, [`write::write_parcel`] chunks
//!   (FastCDC), deduplicates (SHA-256), compresses (zstd packs on worker
//!   threads) and lays the parcel out over volume files of at most a given
//!   size through a [`volume::VolumeSink`] such as [`volume::DirSink`]. Each
//!   volume is a plain tar archive whose first entry is a signed header.
//! * Reading: [`read::Parcel::open`] authenticates the volumes' headers
//!   against [`sign::TrustedKeys`] and then the index they bind;
//!   [`verify::verify`] checks every byte, pack, chunk and file and reports
//!   each [`Problem`] with its place ([`verify::verify_media`] only every
//!   byte against the signed hashes); [`read::Parcel::extract`] materialises the package into an
//!   empty directory, checking every hash on the way.
//! * Delta parcels: [`write::write_delta_parcel`] writes only the chunks a
//!   base version lacks ([`delta::BaseIndex`]);
//!   [`read::Parcel::extract_with_base`] rebuilds the rest from the
//!   destination's copy of the base (FORMAT.md §11).
//! * Repair data (FORMAT.md §13): [`write::write_parcel_with`] with
//!   [`write::Extras::parity_percent`] adds Reed–Solomon parity volumes
//!   ([`parity`]); [`repair::repair`] rebuilds lost or damaged volumes from
//!   them, byte for byte, before the reader runs. When that is impossible,
//!   a [`repair_request::RepairRequest`] asks the source, which rebuilds
//!   the volumes with [`resend::rebuild_volumes`].
//! * Receipts: [`receipt::Receipt`] is the destination's signed statement
//!   that it imported a parcel.
//! * Hashing: [`sha256::sha256`] is the SHA-256 every content, pack and
//!   volume hash of the crate is computed with (faster than hashing
//!   directly on bytes that are not in the CPU's caches).
//!
//! ```
//! use parcel_format::{read::Parcel, sign, volume::{DirSink, OutputDir}, write};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let package = tmp.path().join("package");
//! std::fs::create_dir_all(package.join("bin"))?;
//! std::fs::write(package.join("bin/hello.sh"), "echo hello\n")?;
//!
//! // At the source site: write the parcel.
//! let key = sign::generate_secret_key();
//! let info = write::ParcelInfo {
//!     parcel_id: parcel_format::ParcelId::random(),
//!     source_site: "CEN".into(),
//!     origin_site: None,
//!     destinations: vec!["BXL".into()],
//!     package_id: "CEN00012".into(),
//!     package_version: 1,
//!     created: 1_700_000_000,
//!     comment: String::new(),
//! };
//! let options = write::WriteOptions::default();
//! let mut sink = DirSink::new(vec![OutputDir { dir: tmp.path().to_owned(), capacity: None }], "CEN00012-1", options.volume_size);
//! let scan = write::scan(&package)?;
//! let written = write::write_parcel(scan, &info, &key, &options, &mut sink, &mut |_| {})?;
//! let volumes: Vec<_> = written.volumes.iter().map(|(path, _)| path.clone()).collect();
//!
//! // At the destination site: verify, then extract.
//! let mut trusted = sign::TrustedKeys::new();
//! trusted.add("CEN", key.verifying_key());
//! let report = parcel_format::verify::verify(&volumes, &trusted, &mut |_, _| {});
//! assert!(report.is_ok());
//! let parcel = Parcel::open(&volumes, &trusted).map_err(|p| format!("{p:?}"))?;
//! parcel.check_destination("BXL")?;
//! let staging = tmp.path().join("staging");
//! std::fs::create_dir(&staging)?;
//! parcel.extract(&staging, &mut |_| {})?;
//! assert_eq!(std::fs::read_to_string(staging.join("bin/hello.sh"))?, "echo hello\n");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bounded;
mod budget;
mod buffers;
pub mod chunk;
mod content;
mod dedup;
pub mod delta;
pub mod encrypt;
pub mod error;
pub mod extract;
pub mod header;
pub mod limits;
pub mod manifest;
pub mod manifest_head;
pub mod pack;
pub mod parity;
pub mod path;
pub mod read;
pub mod receipt;
pub mod repair;
pub mod repair_request;
pub mod resend;
pub mod sha256;
pub mod sign;
mod signed_text;
mod stored_index;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod verify;
pub mod volume;
pub mod write;
mod writeback;

pub use error::{FailureClass, Problem, WriteError, MAX_LISTED_REFUSALS};
pub use manifest::{ChunkParams, ChunkRefs, Entry, EntryKind, Hash, Manifest, ParcelId};
pub use smallvec;
