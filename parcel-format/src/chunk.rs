//! Content-defined chunking of file contents (FastCDC 2020, FORMAT.md §5.1).
//!
//! Files are read in large windows and cut with `fastcdc::v2020::FastCDC` on
//! each window; the bytes after the window's last certain cut point are
//! carried to the next window, so the cuts are exactly those of chunking the
//! whole file at once, with memory bounded by the window. (fastcdc's own
//! `StreamCDC` does the same but moves its whole buffer for every chunk.)

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;
pub(crate) use fastcdc::v2020::{AVERAGE_MIN, MAXIMUM_MIN, MINIMUM_MIN};

use crate::limits::MAX_CHUNK;
use crate::manifest::ChunkParams;

/// The chunking parameters parcel writes with by default (FORMAT.md §5.1
/// gives the measurements behind them).
pub const DEFAULT_CHUNKING: ChunkParams = ChunkParams {
    min: 16 * 1024,
    avg: 64 * 1024,
    max: 256 * 1024,
};

/// Bytes read from a file at a time.
const WINDOW: usize = 4 * 1024 * 1024;

/// Checks chunking parameters against fastcdc's and the format's bounds.
pub fn check_params(p: ChunkParams) -> Result<(), String> {
    if p.min < MINIMUM_MIN
        || p.avg < AVERAGE_MIN
        || p.max < MAXIMUM_MIN
        || p.max > MAX_CHUNK
        || p.min > p.avg
        || p.avg > p.max
    {
        return Err(format!(
            "chunking parameters min {} avg {} max {} are out of range (min >= {MINIMUM_MIN}, avg >= {AVERAGE_MIN}, max >= {MAXIMUM_MIN}, max <= {MAX_CHUNK}, min <= avg <= max)",
            p.min, p.avg, p.max
        ));
    }
    Ok(())
}

/// Reads `source` to its end and calls `emit` with each chunk in order.
/// `params` must have passed [`check_params`]. Returns the bytes read.
///
/// `size_hint` is the size the source is expected to have (a file's size
/// when it was listed): the window is no larger than needed to hold that
/// whole, plus a byte to see the end, so a small file does not cost a
/// 4 MiB buffer. `buffer` is reused across calls and only ever grows; a
/// source longer than its hint is still read whole, in windows.
pub(crate) fn chunk_stream<R: Read, E: From<io::Error>>(
    mut source: R,
    params: ChunkParams,
    size_hint: u64,
    buffer: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let window = window_for(params, size_hint);
    if buffer.len() < window {
        buffer.resize(window, 0);
    }
    let mut len = 0usize;
    let mut total = 0u64;
    let mut eof = false;
    while !eof || len > 0 {
        while !eof && len < window {
            match source.read(&mut buffer[len..window]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    len += n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut consumed = 0usize;
        for chunk in FastCDC::new(&buffer[..len], params.min, params.avg, params.max) {
            let end = chunk.offset + chunk.length;
            if !eof && end == len {
                break; // this cut may only be the window's end: carry it over
            }
            emit(&buffer[chunk.offset..end])?;
            consumed = end;
        }
        buffer.copy_within(consumed..len, 0);
        len -= consumed;
    }
    Ok(total)
}

/// The window [`chunk_stream`] reads a source of `size_hint` bytes in:
/// longer than the largest chunk, so a full window always holds a certain
/// cut and every pass makes progress; at most [`WINDOW`] (or two largest
/// chunks, if more).
fn window_for(params: ChunkParams, size_hint: u64) -> usize {
    let max = params.max as usize;
    let whole = usize::try_from(size_hint.saturating_add(1)).unwrap_or(usize::MAX);
    whole.clamp(max + 1, WINDOW.max(2 * max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` pseudo-random bytes from `seed` (an LCG: deterministic, and
    /// incompressible enough that chunk cuts fall where FastCDC puts them).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    fn cuts(data: &[u8], p: ChunkParams) -> Vec<usize> {
        cuts_with_hint(data, p, data.len() as u64, &mut Vec::new())
    }

    fn cuts_with_hint(data: &[u8], p: ChunkParams, hint: u64, buf: &mut Vec<u8>) -> Vec<usize> {
        let mut lens = Vec::new();
        chunk_stream::<_, io::Error>(data, p, hint, buf, |c| {
            lens.push(c.len());
            Ok(())
        })
        .unwrap_or_default();
        lens
    }

    #[test]
    fn windowed_chunking_matches_whole_file_chunking() {
        let data = noise(12345, 10_000_000);
        let p = DEFAULT_CHUNKING;
        let whole: Vec<usize> = FastCDC::new(&data, p.min, p.avg, p.max)
            .map(|c| c.length)
            .collect();
        assert_eq!(cuts(&data, p), whole);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
    }

    #[test]
    fn cuts_do_not_depend_on_the_size_hint_or_the_reused_buffer() {
        let data = noise(99, 3_000_000);
        for p in [
            DEFAULT_CHUNKING,
            ChunkParams {
                min: 64,
                avg: 256,
                max: 1024,
            },
        ] {
            let whole: Vec<usize> = FastCDC::new(&data, p.min, p.avg, p.max)
                .map(|c| c.length)
                .collect();
            // A hint of 0 gives the smallest window (one byte over the largest
            // chunk); a hint far too small or too large changes nothing.
            let mut buf = Vec::new();
            for hint in [0, 1000, data.len() as u64 - 1, u64::MAX] {
                assert_eq!(
                    cuts_with_hint(&data, p, hint, &mut buf),
                    whole,
                    "hint {hint}"
                );
            }
            assert_eq!(window_for(p, 0), p.max as usize + 1);
            assert_eq!(window_for(p, 10), p.max as usize + 1);
            assert_eq!(window_for(p, u64::MAX), WINDOW.max(2 * p.max as usize));
        }
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(cuts(&[], DEFAULT_CHUNKING).is_empty());
    }
}
