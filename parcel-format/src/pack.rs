//! Packs: consecutive chunks compressed together as one zstd frame
//! (FORMAT.md §5.2), and the bounded decompression every stored unit goes
//! through.
//!
//! A reader decompresses only bytes whose SHA-256 it has already checked, and
//! only into a buffer of the declared raw length (itself capped), so a frame
//! that claims a huge window or size cannot make it allocate more.

use std::io::{self, Read};

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
        let mut out = Vec::new();
        self.compress_into(raw, &mut out)?;
        Ok(out)
    }

    /// Compresses `raw` into `out` (emptied first), reusing its allocation.
    pub(crate) fn compress_into(&mut self, raw: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        out.reserve_exact(zstd::zstd_safe::compress_bound(raw.len()));
        self.inner.compress_to_buffer(raw, out).map(drop)
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
    let mut out = Vec::new();
    decompress_exact_into(stored, raw_len, &mut out)?;
    Ok(out)
}

/// [`decompress_exact`] into `out` (emptied first), reusing its allocation.
pub(crate) fn decompress_exact_into(
    stored: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    out.clear();
    check_frame(stored, raw_len as u64)?;
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| DecompressError::Zstd(e.to_string()))?;
    decompressor
        .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
            ZSTD_WINDOW_LOG_MAX,
        ))
        .map_err(|e| DecompressError::Zstd(e.to_string()))?;
    out.reserve_exact(raw_len);
    let n = decompressor
        .decompress_to_buffer(stored, out)
        .map_err(|e| DecompressError::Zstd(e.to_string()))?;
    if n != raw_len {
        return Err(DecompressError::Length {
            actual: n as u64,
            expected: raw_len as u64,
        });
    }
    Ok(())
}

/// Checks that `stored` is exactly one zstd frame declaring `raw_len` bytes
/// of content (FORMAT.md §5.2, rules 1 and 2).
fn check_frame(stored: &[u8], raw_len: u64) -> Result<(), DecompressError> {
    if !starts_data_frame(stored) {
        return Err(DecompressError::NotOneFrame);
    }
    match zstd::zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => {}
        _ => return Err(DecompressError::NotOneFrame),
    }
    match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n == raw_len => Ok(()),
        Ok(declared) => Err(DecompressError::ContentSize {
            declared,
            expected: raw_len,
        }),
        Err(_) => Err(DecompressError::NotOneFrame),
    }
}

/// Whether `stored` starts with a zstd data frame's magic number. zstd's
/// frame functions also take a *skippable* frame (magic 0x184D2A5?), which
/// declares no content and decompresses to nothing: for a reader of this
/// format that is not a frame of content at all (FORMAT.md §5.2, rule 1).
fn starts_data_frame(stored: &[u8]) -> bool {
    stored.get(..4) == Some(&ZSTD_MAGIC.to_le_bytes()[..])
}

/// The magic number that opens a zstd data frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// Reads one zstd frame as a stream, by the same rules as
/// [`decompress_exact`] but without holding the input or the output whole:
/// for the index, which is decoded as it is decompressed and whose stored
/// bytes are released as they are consumed (FORMAT.md §8.1). The frame
/// header is checked first (one frame, declared content size equal to
/// `raw_len`), output past the declared length is an error, and
/// [`ExactReader::finish`] checks that the frame ends exactly there and that
/// nothing follows it. zstd's own error, if any, is kept for the report,
/// since the decoder reading from this sees only a failed read.
pub(crate) struct ExactReader<R: io::Read> {
    inner: zstd::stream::read::Decoder<'static, io::BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>>,
    left: u64,
    raw_len: u64,
    failure: Option<DecompressError>,
}

impl<R: io::Read> ExactReader<R> {
    pub(crate) fn new(mut stored: R, raw_len: u64) -> Result<Self, DecompressError> {
        // The frame header is at most 18 bytes; read that much (or all there
        // is) to check it before decompressing anything.
        let mut prefix = Vec::with_capacity(18);
        stored
            .by_ref()
            .take(18)
            .read_to_end(&mut prefix)
            .map_err(|e| DecompressError::Zstd(e.to_string()))?;
        if !starts_data_frame(&prefix) {
            return Err(DecompressError::NotOneFrame);
        }
        match zstd::zstd_safe::get_frame_content_size(&prefix) {
            Ok(Some(n)) if n == raw_len => {}
            Ok(declared) => {
                return Err(DecompressError::ContentSize {
                    declared,
                    expected: raw_len,
                })
            }
            Err(_) => return Err(DecompressError::NotOneFrame),
        }
        let input = io::Cursor::new(prefix).chain(stored);
        let mut inner = zstd::stream::read::Decoder::new(input)
            .map_err(|e| DecompressError::Zstd(e.to_string()))?
            .single_frame();
        // This writer gives the index at most a 1 MiB window at levels 3 to
        // 8 (INDEX_WINDOW_LOG) and zstd's default for the level otherwise (at
        // most 8 MiB up to level 19), as writers before it did. The streaming decoder's
        // own limit (128 MiB) bounds a hostile frame, and the window never
        // exceeds the declared content size, itself capped (FORMAT.md §8.1).
        inner
            .window_log_max(27)
            .map_err(|e| DecompressError::Zstd(e.to_string()))?;
        Ok(ExactReader {
            inner,
            left: raw_len,
            raw_len,
            failure: None,
        })
    }

    /// The decompression problem a failed read came from, if any.
    pub(crate) fn failure(&self) -> Option<&DecompressError> {
        self.failure.as_ref()
    }

    /// Reads the rest of the frame. Fails unless the frame ends exactly at
    /// the declared length and no byte follows it. Returns how many declared
    /// bytes the caller left unread.
    pub(crate) fn finish(mut self) -> Result<u64, DecompressError> {
        let unread = self.left;
        let mut sink = [0u8; 4096];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(self
                        .failure
                        .take()
                        .unwrap_or_else(|| DecompressError::Zstd(e.to_string())))
                }
            }
        }
        if self.left != 0 {
            return Err(DecompressError::Length {
                actual: self.raw_len - self.left,
                expected: self.raw_len,
            });
        }
        let mut rest = self.inner.finish();
        match io::BufRead::fill_buf(&mut rest) {
            Ok([]) => Ok(unread),
            Ok(_) => Err(DecompressError::NotOneFrame),
            Err(e) => Err(DecompressError::Zstd(e.to_string())),
        }
    }
}

impl<R: io::Read> io::Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // At the declared end: the frame must end here too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => {
                    self.failure = Some(DecompressError::Zstd(format!(
                        "frame decompresses to more than the declared {} bytes",
                        self.raw_len
                    )));
                    Err(io::Error::other("output longer than declared"))
                }
                Err(e) => {
                    self.failure = Some(DecompressError::Zstd(e.to_string()));
                    Err(e)
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..want]) {
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failure = Some(DecompressError::Zstd(e.to_string()));
                Err(e)
            }
        }
    }
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

    #[test]
    fn a_skippable_frame_is_not_a_frame_of_content() {
        // zstd itself reads a skippable frame as one frame of size 0.
        let mut skippable = 0x184D_2A50_u32.to_le_bytes().to_vec();
        skippable.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&skippable),
            Ok(Some(0))
        ));
        assert_eq!(
            decompress_exact(&skippable, 0),
            Err(DecompressError::NotOneFrame)
        );
        assert!(matches!(
            ExactReader::new(&skippable[..], 0),
            Err(DecompressError::NotOneFrame)
        ));
        // An empty pack as the writer stores it is a data frame.
        let empty = PackCompressor::new(3)
            .and_then(|mut c| c.compress(&[]))
            .unwrap_or_default();
        assert_eq!(decompress_exact(&empty, 0).as_deref(), Ok(&[][..]));
    }
}
