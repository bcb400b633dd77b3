//! parcel-format: signed, compressed, chunked, multi-volume parcels.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
mod content;
pub mod error;
pub mod extract;
pub mod header;
pub mod limits;
pub mod manifest;
pub mod pack;
pub mod path;
pub mod read;
pub mod receipt;
pub mod sign;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod verify;
pub mod volume;
pub mod write;

pub use error::{FailureClass, Problem, WriteError};
pub use manifest::{ChunkParams, Entry, EntryKind, Hash, Manifest, ParcelId};
