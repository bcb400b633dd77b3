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
pub(crate) fn chunk_stream<R: Read, E: From<io::Error>>(
    mut source: R,
    params: ChunkParams,
    buffer: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let window = WINDOW.max(2 * params.max as usize);
    buffer.resize(window, 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(data: &[u8], p: ChunkParams) -> Vec<usize> {
        let mut lens = Vec::new();
        let mut buf = Vec::new();
        chunk_stream::<_, io::Error>(data, p, &mut buf, |c| {
            lens.push(c.len());
            Ok(())
        })
        .unwrap_or_default();
        lens
    }

    #[test]
    fn windowed_chunking_matches_whole_file_chunking() {
        let mut state = 12345u64;
        let data: Vec<u8> = (0..10_000_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect();
        let p = DEFAULT_CHUNKING;
        let whole: Vec<usize> = FastCDC::new(&data, p.min, p.avg, p.max)
            .map(|c| c.length)
            .collect();
        assert_eq!(cuts(&data, p), whole);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(cuts(&[], DEFAULT_CHUNKING).is_empty());
    }
}
