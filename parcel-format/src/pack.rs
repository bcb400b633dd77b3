//! Packs: consecutive chunks compressed together as one zstd frame
//! (FORMAT.md §5.2), and the bounded decompression every stored unit goes
//! through.
//!
//! A reader decompresses only bytes whose SHA-256 it has already checked, and
//! only into a buffer of the declared raw length (itself capped), so a frame
//! that claims a huge window or size cannot make it allocate more.

use std::io;

use crate::limits::ZSTD_WINDOW_LOG_MAX;

/// A reusable pack compressor (one per worker thread).
pub(crate) struct PackCompressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl PackCompressor {
    pub(crate) fn new(level: i32) -> io::Result<Self> {
        let mut inner = zstd::bulk::Compressor::new(level)?;
        inner.include_contentsize(true)?;
        inner.include_checksum(false)?;
        // Keep the window within what readers accept, whatever the level.
        inner.window_log(ZSTD_WINDOW_LOG_MAX.min(24))?;
        Ok(Self { inner })
    }

    pub(crate) fn compress(&mut self, raw: &[u8]) -> io::Result<Vec<u8>> {
        self.inner.compress(raw)
    }
}

/// Why a stored unit would not decompress to its declared length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The bytes are not exactly one zstd frame.
    #[error("not exactly one zstd frame")]
    NotOneFrame,
    /// The frame does not declare its content size, or declares another one.
    #[error("frame declares content size {declared:?}, expected {expected}")]
    ContentSize {
        /// What the frame header says.
        declared: Option<u64>,
        /// The length from the index or header.
        expected: u64,
    },
    /// zstd refused the data (corrupt, window too large, output too long).
    #[error("zstd: {0}")]
    Zstd(String),
    /// Decompressed to a length other than declared.
    #[error("decompressed to {actual} bytes, expected {expected}")]
    Length {
        /// Bytes produced.
        actual: u64,
        /// Bytes declared.
        expected: u64,
    },
}

/// Decompresses one zstd frame into exactly `raw_len` bytes, refusing
/// anything else: trailing frames or bytes, a missing or different declared
/// content size, more or fewer bytes.
pub fn decompress_exact(stored: &[u8], raw_len: usize) -> Result<Vec<u8>, DecompressError> {
    match zstd::zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => {}
        _ => return Err(DecompressError::NotOneFrame),
    }
    match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n == raw_len as u64 => {}
        Ok(declared) => {
            return Err(DecompressError::ContentSize {
                declared,
                expected: raw_len as u64,
            })
        }
        Err(_) => return Err(DecompressError::NotOneFrame),
    }
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| DecompressError::Zstd(e.to_string()))?;
    decompressor
        .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
            ZSTD_WINDOW_LOG_MAX,
        ))
        .map_err(|e| DecompressError::Zstd(e.to_string()))?;
    let mut out = Vec::with_capacity(raw_len);
    let n = decompressor
        .decompress_to_buffer(stored, &mut out)
        .map_err(|e| DecompressError::Zstd(e.to_string()))?;
    if n != raw_len {
        return Err(DecompressError::Length {
            actual: n as u64,
            expected: raw_len as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_refuses_wrong_lengths_and_extra_frames() {
        let raw = b"hello hello hello hello".repeat(10);
        let stored = PackCompressor::new(3)
            .and_then(|mut c| c.compress(&raw))
            .unwrap_or_default();
        assert_eq!(
            decompress_exact(&stored, raw.len()).as_deref(),
            Ok(&raw[..])
        );
        assert!(matches!(
            decompress_exact(&stored, raw.len() - 1),
            Err(DecompressError::ContentSize { .. })
        ));
        assert!(matches!(
            decompress_exact(&stored, raw.len() + 1),
            Err(DecompressError::ContentSize { .. })
        ));
        let mut two = stored.clone();
        two.extend_from_slice(&stored);
        assert_eq!(
            decompress_exact(&two, raw.len()),
            Err(DecompressError::NotOneFrame)
        );
        assert!(decompress_exact(&stored[..stored.len() - 1], raw.len()).is_err());
    }
}
