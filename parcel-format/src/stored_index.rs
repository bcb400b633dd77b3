//! The stored index on the volumes: where its pieces lie (FORMAT.md §7.3
//! steps 1–3), and a reader that reads them in order from the volume files,
//! hashing what it reads (step 4).
//!
//! A plain index is hashed in one pass and decoded, once the hash matched,
//! in a second pass over the same pieces, so the stored index is never
//! whole in memory beside the manifest decoded from it (FORMAT.md §8.1).

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
use crate::sha256;

/// One piece of the stored index: `len` bytes at `offset` in `path`.
#[derive(Debug)]
struct Piece {
    path: PathBuf,
    offset: u64,
    len: u64,
}

/// The piece being read: its file, positioned, and the bytes still to read.
#[derive(Debug)]
struct Open {
    file: File,
    left: u64,
    path: PathBuf,
}

/// Reads the stored index from its pieces, in order, hashing every byte it
/// hands out. Made by [`IndexReader::locate`], which checks from the headers
/// alone that the pieces lie inside their volumes and join up into exactly
/// the declared length; [`IndexReader::finish`] reads what is left and gives
/// the SHA-256 of the whole.
#[derive(Debug)]
pub(crate) struct IndexReader {
    /// The pieces not yet opened, in order.
    pieces: std::vec::IntoIter<Piece>,
    current: Option<Open>,
    /// `index_stored_len`: what the pieces add up to.
    len: u64,
    hasher: Sha256,
    /// The volume files holding pieces, for messages.
    files: String,
    /// The first read that failed: no read after it succeeds.
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
        Ok(IndexReader {
            files: holders
                .iter()
                .map(|v| v.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            pieces: pieces.into_iter(),
            current: None,
            len: total,
            hasher: Sha256::new(),
            failure: None,
        })
    }

    /// The volume files holding the index, for a message.
    pub(crate) fn files(&self) -> &str {
        &self.files
    }

    /// Reads whatever the caller left and returns the SHA-256 of the whole
    /// stored index, or the first problem met reading it (a file could not
    /// be read, or ended inside the piece its header places in it), whatever
    /// the caller made of the error [`Read::read`] returned then.
    pub(crate) fn finish(mut self) -> Result<[u8; 32], Problem> {
        if let Some(problem) = self.failure.take() {
            return Err(problem);
        }
        let mut scratch = vec![0u8; 64 << 10];
        while self.fill(&mut scratch)? > 0 {}
        Ok(self.hasher.finalize().into())
    }

    /// The whole stored index in one buffer of exactly its length, and its
    /// SHA-256: for an encrypted index, which is decrypted whole. Its length
    /// is at most `MAX_INDEX_STORED`, and no more than the volume files hold
    /// (the pieces lie inside volumes whose length was checked).
    pub(crate) fn read_all(mut self) -> Result<(Vec<u8>, [u8; 32]), Problem> {
        let mut all = vec![0u8; usize::try_from(self.len).unwrap_or(0)];
        let mut at = 0usize;
        while let Some(rest) = all.get_mut(at..).filter(|rest| !rest.is_empty()) {
            match self.fill(rest)? {
                0 => break,
                n => at += n,
            }
        }
        all.truncate(at);
        let digest = self.finish()?;
        Ok((all, digest))
    }

    /// Reads into `buf` from the current piece, opening the next one when it
    /// is done, and hashes what it read; 0 at the end of the last piece.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, Problem> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(open) = self.current.as_mut().filter(|open| open.left > 0) {
                let n = match Read::by_ref(&mut open.file).take(open.left).read(buf) {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ends inside the index piece its header places in it",
                    )),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                }
                .map_err(|e| unreadable(&open.path, e))?;
                open.left -= n as u64;
                sha256::update(&mut self.hasher, buf.get(..n).unwrap_or_default());
                return Ok(n);
            }
            let Some(piece) = self.pieces.next() else {
                self.current = None;
                return Ok(0);
            };
            let mut file = File::open(&piece.path).map_err(|e| unreadable(&piece.path, e))?;
            file.seek(SeekFrom::Start(piece.offset))
                .map_err(|e| unreadable(&piece.path, e))?;
            self.current = Some(Open {
                file,
                left: piece.len,
                path: piece.path,
            });
        }
    }
}

fn unreadable(path: &std::path::Path, source: io::Error) -> Problem {
    Problem::Unreadable {
        path: path.to_owned(),
        source: Arc::new(source),
    }
}

/// The problem as an I/O error of the same kind, for a caller of
/// [`Read::read`] (the decoder); the problem itself is kept for `finish`.
fn as_io_error(problem: &Problem) -> io::Error {
    let kind = match problem {
        Problem::Unreadable { source, .. } => source.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, problem.to_string())
}

impl Read for IndexReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(problem) = &self.failure {
            return Err(as_io_error(problem));
        }
        self.fill(buf).map_err(|problem| {
            let error = as_io_error(&problem);
            self.failure = Some(problem);
            error
        })
    }
}
