//! The stored index on the volumes: where its pieces lie (FORMAT.md §7.3
//! steps 1–3), and a reader that reads them in order from the volume files,
//! hashing what it reads (step 4).
//!
//! Nothing here holds more of the index than one read's worth: a plain index
//! is hashed in one pass and decoded, once the hash matched, in a second pass
//! over the same pieces, so the stored index is never in memory beside the
//! manifest decoded from it (FORMAT.md §8.1).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::Problem;
use crate::header::VolumeHeader;
use crate::limits::{MAX_INDEX_STORED, VOLUME_PREFIX};
use crate::read::Volume;

/// One piece of the stored index: `len` bytes at `offset` in `path`.
#[derive(Debug)]
struct Piece {
    path: PathBuf,
    offset: u64,
    len: u64,
}

/// Reads the stored index from its pieces, in order, hashing every byte it
/// hands out. Made by [`IndexReader::locate`], which checks from the headers
/// alone that the pieces lie inside their volumes and join up into exactly
/// the declared length; [`IndexReader::finish`] reads what is left and gives
/// the SHA-256 of the whole.
#[derive(Debug)]
pub(crate) struct IndexReader {
    /// The pieces not yet opened, the next one last.
    pieces: Vec<Piece>,
    /// The piece being read and its bytes still to read.
    current: Option<(File, u64, PathBuf)>,
    hasher: Sha256,
    /// The volume files holding pieces, for messages.
    files: Vec<String>,
    /// The first read that failed, with the file it was reading.
    failure: Option<Problem>,
}

impl IndexReader {
    /// Finds the pieces of the stored index in `volumes` (FORMAT.md §7.3
    /// steps 1–3): the declared length within its cap, each piece inside its
    /// volume's body, the pieces starting where the one before ended and
    /// together exactly `index_stored_len` bytes. Reads nothing.
    pub(crate) fn locate(
        volumes: &BTreeMap<u32, Volume>,
        header: &VolumeHeader,
    ) -> Result<IndexReader, Problem> {
        if header.index_stored_len > MAX_INDEX_STORED {
            return Err(Problem::limit(
                "declared stored index length",
                header.index_stored_len,
                MAX_INDEX_STORED,
            ));
        }
        let total = header.index_stored_len;
        let mut holders: Vec<&Volume> = volumes
            .values()
            .filter(|v| v.header.index_piece.len > 0)
            .collect();
        holders.sort_by_key(|v| v.header.index_piece.start);
        let mut pieces = Vec::with_capacity(holders.len());
        let mut joined = 0u64;
        for v in &holders {
            let piece = v.header.index_piece;
            if piece.start != joined {
                return Err(Problem::index(format!(
                    "index piece in volume {} starts at {}, expected {} (a volume holding part of the index is missing, or the pieces overlap)",
                    v.header.volume, piece.start, joined
                )));
            }
            let end = piece.offset.checked_add(piece.len);
            if piece.offset < VOLUME_PREFIX
                || end.is_none_or(|e| e > VOLUME_PREFIX.saturating_add(v.header.body_len))
                || piece.start.saturating_add(piece.len) > total
            {
                return Err(Problem::index(format!(
                    "index piece in volume {} lies outside the volume or the index",
                    v.header.volume
                )));
            }
            joined += piece.len;
            pieces.push(Piece {
                path: v.path.clone(),
                offset: piece.offset,
                len: piece.len,
            });
        }
        if joined != total {
            return Err(Problem::index(format!(
                "only {joined} of {total} index bytes are in the volumes given (a volume holding part of the index is missing)"
            )));
        }
        pieces.reverse();
        Ok(IndexReader {
            files: holders
                .iter()
                .map(|v| v.path.display().to_string())
                .collect(),
            pieces,
            current: None,
            hasher: Sha256::new(),
            failure: None,
        })
    }

    /// The volume files holding the index, joined for a message.
    pub(crate) fn files(&self) -> String {
        self.files.join(", ")
    }

    /// Reads whatever the caller left and returns the SHA-256 of the whole
    /// stored index, or the first problem met reading it (the file could not
    /// be read, or ended before the piece its header places in it), however
    /// the caller took the error the reader returned then.
    pub(crate) fn finish(mut self) -> Result<[u8; 32], Problem> {
        let mut scratch = vec![0u8; 64 << 10];
        while self.read(&mut scratch).unwrap_or(0) > 0 {}
        match self.failure {
            Some(problem) => Err(problem),
            None => Ok(self.hasher.finalize().into()),
        }
    }

    /// Reads into `buf` from the current piece, opening the next one when
    /// it is done; the first failure is kept with its file's name.
    fn read_piece(&mut self, buf: &mut [u8]) -> Result<usize, (PathBuf, io::Error)> {
        loop {
            if let Some((file, left, path)) = &mut self.current {
                if *left > 0 {
                    let n = match Read::by_ref(file).take(*left).read(buf) {
                        Ok(0) if !buf.is_empty() => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file ends inside the index piece its header places in it",
                        )),
                        Ok(n) => Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    }
                    .map_err(|e| (path.clone(), e))?;
                    *left -= n as u64;
                    return Ok(n);
                }
            }
            let Some(piece) = self.pieces.pop() else {
                self.current = None;
                return Ok(0);
            };
            let mut file = File::open(&piece.path).map_err(|e| (piece.path.clone(), e))?;
            file.seek(SeekFrom::Start(piece.offset))
                .map_err(|e| (piece.path.clone(), e))?;
            self.current = Some((file, piece.len, piece.path));
        }
    }
}

impl Read for IndexReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(problem) = &self.failure {
            return Err(io::Error::other(problem.to_string()));
        }
        match self.read_piece(buf) {
            Ok(n) => {
                self.hasher.update(buf.get(..n).unwrap_or_default());
                Ok(n)
            }
            Err((path, source)) => {
                let message = source.to_string();
                self.failure = Some(Problem::Unreadable {
                    path,
                    source: Arc::new(source),
                });
                Err(io::Error::other(message))
            }
        }
    }
}
