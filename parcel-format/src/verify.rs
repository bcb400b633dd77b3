//! Verifying media without importing: every check a reader can make, with a
//! report naming each missing volume and each bad volume, pack, chunk and file
//! (FORMAT.md §7). Needs no destination store.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::content::PackCache;
use crate::error::{FailureClass, Problem};
use crate::limits::VOLUME_PREFIX;
use crate::manifest::EntryKind;
use crate::read::{worst_class, Parcel};
use crate::sign::TrustedKeys;
use crate::ParcelId;

/// What verifying a set of volumes found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// The parcel read, when a manifest could be authenticated.
    pub parcel_id: Option<ParcelId>,
    /// The trusted signer's label.
    pub signer: Option<String>,
    /// Package id and version.
    pub package: Option<(String, u64)>,
    /// The parcel's volume count.
    pub volume_count: Option<u32>,
    /// Authenticated volumes present: number and path.
    pub volumes: Vec<(u32, PathBuf)>,
    /// Bytes of package content checked.
    pub content_bytes: u64,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the parcel is complete and intact.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The class of the most fundamental problem, `None` when intact.
    pub fn class(&self) -> Option<FailureClass> {
        worst_class(&self.problems)
    }
}

/// Opens and fully verifies the parcel in `paths`. `progress(done, total)`
/// reports bytes read.
pub fn verify(
    paths: &[PathBuf],
    trust: &TrustedKeys,
    progress: &mut dyn FnMut(u64, u64),
) -> VerifyReport {
    match Parcel::open(paths, trust) {
        Err(problems) => VerifyReport {
            problems,
            ..VerifyReport::default()
        },
        Ok(mut parcel) => {
            let mut report = VerifyReport {
                parcel_id: Some(parcel.manifest().parcel_id),
                signer: Some(parcel.signer().to_owned()),
                package: Some((
                    parcel.manifest().package_id.clone(),
                    parcel.manifest().package_version,
                )),
                volume_count: Some(parcel.manifest().volume_count),
                volumes: parcel
                    .volumes()
                    .iter()
                    .map(|(n, v)| (*n, v.path.clone()))
                    .collect(),
                content_bytes: parcel.manifest().content_bytes(),
                problems: Vec::new(),
            };
            let mut content = parcel.verify(progress);
            report.problems = parcel.take_problems();
            report.problems.append(&mut content);
            report
        }
    }
}

impl Parcel {
    /// Checks every byte of the volumes present: each volume body against its
    /// signed hash, each pack's stored hash, each chunk's and each file's
    /// hash. Returns the problems found (the set-level ones are in
    /// [`Parcel::problems`]).
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Vec<Problem> {
        let stored: u64 = self.volumes().values().map(|v| v.header.body_len).sum();
        let total = stored + self.manifest().content_bytes();
        let mut done = 0u64;
        let mut problems = Vec::new();
        for (number, volume) in self.volumes() {
            match hash_body(&volume.path, &mut |n| {
                done += n;
                progress(done, total);
            }) {
                Ok(digest) if digest == volume.header.body_sha256 => {}
                Ok(_) => problems.push(Problem::VolumeCorrupt {
                    path: volume.path.clone(),
                    volume: *number,
                }),
                Err(source) => problems.push(Problem::Unreadable {
                    path: volume.path.clone(),
                    source: source.into(),
                }),
            }
        }
        let mut cache = PackCache::new(self);
        for entry in &self.manifest().entries {
            let EntryKind::File { sha256, chunks, .. } = &entry.kind else {
                continue;
            };
            let mut hasher = Sha256::new();
            let mut complete = true;
            for &c in chunks {
                match cache.chunk(c) {
                    Some(bytes) => {
                        hasher.update(bytes.bytes());
                        done += bytes.bytes().len() as u64;
                    }
                    None => complete = false,
                }
            }
            progress(done, total);
            if complete && <[u8; 32]>::from(hasher.finalize()) != *sha256 {
                problems.push(Problem::FileCorrupt {
                    path: entry.path.clone(),
                });
            }
        }
        for p in 0..self.manifest().packs.len() as u32 {
            if !cache.loaded.get(p as usize).copied().unwrap_or(true) {
                cache.touch(p);
            }
        }
        // Pack and chunk problems come before the file problems they cause.
        cache.problems.append(&mut problems);
        cache.problems
    }
}

fn hash_body(path: &std::path::Path, progress: &mut dyn FnMut(u64)) -> std::io::Result<[u8; 32]> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    std::io::copy(&mut (&mut file).take(VOLUME_PREFIX), &mut std::io::sink())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        progress(n as u64);
    }
}
