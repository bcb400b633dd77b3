//! Repairing a parcel from its repair data before reading it (FORMAT.md
//! §13.5): find the missing and damaged blocks of the data volumes by the
//! signed block table, rebuild them with Reed–Solomon from the parity
//! volumes, stripe by stripe, into byte-identical volume files in a scratch
//! directory, and hand those to the unchanged reader.
//!
//! Repair never vouches for anything itself: every rebuilt block must hash
//! to the signed table, and the rebuilt volumes are then checked by the
//! reader exactly as the originals would have been (§7).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use reed_solomon_simd::ReedSolomonDecoder;
use sha2::{Digest, Sha256};

use crate::error::Problem;
use crate::header::{ParityFields, VolumeHeader};
use crate::limits::MAX_VOLUMES;
use crate::parity::{BlockTable, Layout};
use crate::read::{authenticate_volume, check_volume_len};
use crate::sha256;
use crate::sign::TrustedKeys;
use crate::ParcelId;

/// What was repaired in one data volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// No usable copy of the volume was given: it was rebuilt whole.
    Rebuilt {
        /// The volume number.
        volume: u32,
        /// The parcel's volume count.
        count: u32,
        /// The rebuilt file (in the scratch directory).
        path: PathBuf,
    },
    /// The copy given had damaged blocks (or a wrong length): they were
    /// rebuilt, the intact ones kept.
    Blocks {
        /// The volume number.
        volume: u32,
        /// The parcel's volume count.
        count: u32,
        /// Blocks rebuilt.
        blocks: u64,
        /// The damaged copy given.
        damaged: PathBuf,
        /// The repaired file (in the scratch directory).
        path: PathBuf,
    },
}

impl Repaired {
    /// The data volume repaired.
    pub fn volume(&self) -> u32 {
        match self {
            Repaired::Rebuilt { volume, .. } | Repaired::Blocks { volume, .. } => *volume,
        }
    }
}

impl fmt::Display for Repaired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repaired::Rebuilt { volume, count, .. } => {
                write!(f, "volume {volume} of {count} missing: rebuilt from parity")
            }
            Repaired::Blocks {
                volume,
                blocks: 0,
                damaged,
                ..
            } => write!(
                f,
                "volume {volume}: {} has the wrong length; rebuilt at its signed length (in a scratch copy: the file itself is unchanged)",
                damaged.display()
            ),
            Repaired::Blocks {
                volume,
                blocks,
                damaged,
                ..
            } => write!(
                f,
                "volume {volume}: {blocks} damaged block{} repaired (in a scratch copy of {}: the file itself is unchanged)",
                if *blocks == 1 { "" } else { "s" },
                damaged.display()
            ),
        }
    }
}

/// What [`repair`] did.
#[derive(Debug, Default)]
pub struct Repair {
    /// The files to read the parcel from: the data volumes given, with each
    /// repaired one replaced by its rebuilt file; never a parity volume.
    pub paths: Vec<PathBuf>,
    /// What was repaired, by volume number.
    pub repaired: Vec<Repaired>,
    /// Why repair was needed but impossible (or the repair data is
    /// hostile); to be reported with the reader's own problems.
    pub problems: Vec<Problem>,
    /// Things worth saying that are not problems: parity volumes found
    /// unusable when no repair was needed, files set aside after a repair.
    pub notes: Vec<String>,
    /// The parcel's repair data, in percent of each stripe, when parity
    /// volumes of the parcel were given.
    pub percent: Option<u64>,
}

/// A volume file given, with its authenticated header and real length.
struct Given {
    path: PathBuf,
    header: VolumeHeader,
    len: u64,
}

/// What the data volumes given hold, block by block.
struct Scan {
    /// The copy used for each data volume (0-based), if any.
    candidates: Vec<Option<usize>>,
    /// For each data volume, which of its blocks are lost (missing or damaged).
    lost: Vec<Vec<bool>>,
    /// The data volumes to rebuild (lost blocks, or a copy of the wrong length).
    rebuild: Vec<bool>,
}

/// Repairs the parcel in `paths` (volume files, any order, parity volumes
/// among them) into the directory `scratch`, which is created when a
/// volume is rebuilt (and which the caller removes afterwards). Without
/// parity volumes, or when nothing is lost, the paths come back as given
/// (less parity volumes) and nothing is written.
pub fn repair(paths: &[PathBuf], trust: &TrustedKeys, scratch: &Path) -> Repair {
    let mut data: Vec<Given> = Vec::new();
    let mut parity: Vec<Given> = Vec::new();
    let mut unusable: Vec<(PathBuf, Problem)> = Vec::new();
    for path in paths {
        match authenticate_volume(path, trust) {
            Ok((header, len)) => {
                let given = Given {
                    path: path.clone(),
                    header,
                    len,
                };
                if given.header.is_parity_volume() {
                    parity.push(given);
                } else {
                    data.push(given);
                }
            }
            Err(problem) => unusable.push((path.clone(), problem)),
        }
    }
    let parity_paths: HashSet<&PathBuf> = parity.iter().map(|g| &g.path).collect();
    let unchanged: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !parity_paths.contains(p))
        .cloned()
        .collect();
    let mut outcome = Repair {
        paths: unchanged,
        ..Repair::default()
    };
    let Some(chosen) = chosen_parcel(&data, &parity) else {
        return outcome;
    };
    let ours: Vec<&Given> = parity
        .iter()
        .filter(|g| g.header.parcel_id == chosen)
        .collect();
    // The reference is the parity volume of the right length whose counts
    // are within the caps (§7.1 steps 8–9) that agrees with the most data
    // volumes of the parcel, the first of them on a tie: a parity volume
    // another trusted site signed with this parcel's id (or with other
    // counts) must not become the measure the genuine volumes fail.
    let agreeing = |g: &Given| {
        data.iter()
            .filter(|d| d.header.parcel_id == chosen && d.header.same_parcel(&g.header))
            .count()
    };
    let Some(reference) = ours
        .iter()
        .filter(|g| check_volume_len(&g.path, &g.header, g.len).is_ok())
        .enumerate()
        .max_by_key(|(i, g)| (agreeing(g), std::cmp::Reverse(*i)))
        .map(|(_, g)| g.header.clone())
    else {
        outcome.notes.extend(ours.iter().filter_map(|g| {
            check_volume_len(&g.path, &g.header, g.len)
                .err()
                .map(|p| format!("parity volume unusable: {p}"))
        }));
        // Volumes are missing, and the repair data that could rebuild them
        // was left behind: say it exists.
        let ours_data: Vec<&Given> = data
            .iter()
            .filter(|g| g.header.parcel_id == chosen)
            .collect();
        if let Some(first) = ours_data.first() {
            let numbers: std::collections::BTreeSet<u32> =
                ours_data.iter().map(|g| g.header.volume).collect();
            let m = first.header.parity.map_or(0, |p| p.parity_volume_count);
            if ours.is_empty()
                && m > 0
                && (numbers.len() as u64) < u64::from(first.header.volume_count)
            {
                outcome.notes.push(format!(
                    "this parcel has repair data in {m} parity volume(s) (`….par-NNN-of-{m:03}.tar`), none of them among the files given (or none authentic): add them to rebuild what is missing"
                ));
            }
        }
        return outcome;
    };
    let Some(fields) = reference.parity else {
        return outcome;
    };
    let n = reference.volume_count;
    // The parity volumes consistent with the first one, by number.
    let mut parity_files: HashMap<u32, &Given> = HashMap::new();
    let mut parity_problems = Vec::new();
    for g in &ours {
        let p = g.header.parity.unwrap_or_default();
        let consistent = g.header.same_parcel(&reference)
            && p.table_len == fields.table_len
            && p.table_sha256 == fields.table_sha256;
        if !consistent {
            parity_problems.push(Problem::ParityUnusable {
                path: g.path.clone(),
                reason: "its fields differ from the other parity volumes'".into(),
            });
        } else if let Err(problem) = check_volume_len(&g.path, &g.header, g.len) {
            parity_problems.push(Problem::ParityUnusable {
                path: g.path.clone(),
                reason: problem.to_string(),
            });
        } else {
            parity_files.entry(p.parity_volume).or_insert(g);
        }
    }
    // A data volume is a candidate when it is of this parcel and agrees
    // with the parity volumes on every parcel-wide field.
    let mut candidates: Vec<Option<usize>> = vec![None; n.min(MAX_VOLUMES) as usize];
    for (i, g) in data.iter().enumerate() {
        if g.header.parcel_id == chosen && g.header.same_parcel(&reference) {
            if let Some(slot @ None) =
                candidates.get_mut((g.header.volume as usize).wrapping_sub(1))
            {
                *slot = Some(i);
            }
        }
    }
    let table = load_table(&reference, fields, &mut parity_files, &mut parity_problems);
    let (layout, table) = match table {
        Ok(found) => found,
        Err(limit) => {
            // Without a usable table no block can be checked or rebuilt.
            let missing: Vec<u32> = (1..=n.min(MAX_VOLUMES))
                .filter(|v| {
                    candidates
                        .get(*v as usize - 1)
                        .copied()
                        .flatten()
                        .and_then(|i| data.get(i))
                        .is_none_or(|g| check_volume_len(&g.path, &g.header, g.len).is_err())
                })
                .collect();
            if missing.is_empty() && limit.is_none() {
                outcome
                    .notes
                    .extend(parity_problems.iter().map(|p| p.to_string()));
            } else {
                outcome.problems.extend(limit);
                outcome.problems.append(&mut parity_problems);
                if !missing.is_empty() {
                    outcome.problems.push(Problem::ParityUnusable {
                        path: ours.first().map(|g| g.path.clone()).unwrap_or_default(),
                        reason: format!(
                            "no parity volume holds an intact block table, so volume{} {} cannot be rebuilt",
                            if missing.len() == 1 { "" } else { "s" },
                            missing
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
            return outcome;
        }
    };
    outcome.percent = Some(layout.percent());
    // A data volume whose header disagrees with the table cannot be rebuilt
    // from it: the table is damaged or the parcel is not what it says.
    for (v, candidate) in candidates.iter().enumerate() {
        if let Some(g) = candidate.and_then(|i| data.get(i)) {
            if Some(
                &(g.header
                    .body_len
                    .saturating_add(crate::limits::VOLUME_PREFIX)),
            ) != layout.lengths.get(v)
            {
                outcome.problems.push(Problem::ParityUnusable {
                    path: ours.first().map(|g| g.path.clone()).unwrap_or_default(),
                    reason: format!(
                        "the block table gives volume {} another length than its header",
                        v + 1
                    ),
                });
                return outcome;
            }
        }
    }
    // A copy whose header was damaged does not authenticate, but its other
    // blocks may be intact: a file whose first blocks hash to those of a
    // volume with no copy is taken as that volume's damaged copy (only its
    // blocks that hash right are used).
    // Each such file's first blocks are hashed once, however many volumes
    // are missing (a medium may hold any number of files named as volumes).
    let mut first_blocks: Vec<Option<FirstBlocks>> = Vec::new();
    for (v, candidate) in candidates.iter_mut().enumerate() {
        if candidate.is_some() {
            continue;
        }
        first_blocks.resize_with(unusable.len(), || None);
        let found =
            unusable
                .iter()
                .zip(first_blocks.iter_mut())
                .position(|((path, problem), blocks)| {
                    matches!(
                        problem,
                        Problem::BadSignature { .. } | Problem::NotAVolume { .. }
                    ) && blocks
                        .get_or_insert_with(|| FirstBlocks::read(path, &layout))
                        .match_volume(&layout, &table, v)
                });
        if let (Some(i), Some(len)) = (found, layout.lengths.get(v)) {
            let (path, _) = unusable.remove(i);
            if i < first_blocks.len() {
                first_blocks.remove(i);
            }
            let file_len = std::fs::metadata(&path).map_or(0, |m| m.len());
            data.push(Given {
                path,
                header: VolumeHeader {
                    volume: v as u32 + 1,
                    body_len: len.saturating_sub(crate::limits::VOLUME_PREFIX),
                    ..reference.clone()
                },
                len: file_len,
            });
            *candidate = Some(data.len() - 1);
        }
    }
    let scan = match scan_blocks(&layout, &table, &data, candidates) {
        Ok(scan) => scan,
        Err(problem) => {
            outcome.problems.push(problem);
            return outcome;
        }
    };
    if !scan.rebuild.iter().any(|&r| r) {
        outcome
            .notes
            .extend(parity_problems.iter().map(|p| p.to_string()));
        return outcome;
    }
    match rebuild(&layout, &table, &data, &parity_files, &scan, scratch) {
        Ok(repaired) => {
            let rebuilt: HashMap<u32, PathBuf> = repaired
                .iter()
                .map(|r| match r {
                    Repaired::Rebuilt { volume, path, .. }
                    | Repaired::Blocks { volume, path, .. } => (*volume, path.clone()),
                })
                .collect();
            let mut paths = Vec::new();
            for (v, candidate) in scan.candidates.iter().enumerate() {
                let number = v as u32 + 1;
                if let Some(path) = rebuilt.get(&number) {
                    paths.push(path.clone());
                } else if let Some(g) = candidate.and_then(|i| data.get(i)) {
                    paths.push(g.path.clone());
                }
            }
            // Volumes of other parcels, second copies and the like stay for
            // the reader to report; files that are not intact volumes at all
            // are set aside, since the parcel is now complete without them.
            let used: HashSet<&PathBuf> = scan
                .candidates
                .iter()
                .filter_map(|c| c.and_then(|i| data.get(i)).map(|g| &g.path))
                .collect();
            for g in &data {
                if !used.contains(&&g.path) {
                    paths.push(g.path.clone());
                }
            }
            for (path, problem) in unusable {
                if matches!(
                    problem,
                    Problem::BadSignature { .. }
                        | Problem::NotAVolume { .. }
                        | Problem::Unreadable { .. }
                ) {
                    outcome.notes.push(format!(
                        "{} set aside ({problem}); the parcel is complete without it",
                        path.display()
                    ));
                } else {
                    paths.push(path);
                }
            }
            outcome
                .notes
                .extend(parity_problems.iter().map(|p| p.to_string()));
            outcome.paths = paths;
            outcome.repaired = repaired;
        }
        Err(mut problems) => {
            outcome.problems.append(&mut parity_problems);
            outcome.problems.append(&mut problems);
        }
    }
    outcome
}

/// The parcel to repair: the one with the most data volumes given (the
/// first on a tie), as the reader chooses (§7.2); else that of the first
/// parity volume.
fn chosen_parcel(data: &[Given], parity: &[Given]) -> Option<ParcelId> {
    let mut counts: HashMap<ParcelId, (usize, usize)> = HashMap::new();
    for (i, g) in data.iter().enumerate() {
        counts.entry(g.header.parcel_id).or_insert((0, i)).0 += 1;
    }
    counts
        .iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
        .map(|(id, _)| *id)
        .or_else(|| parity.first().map(|g| g.header.parcel_id))
}

/// Reads the block table from the first parity volume holding an intact
/// copy, after checking the caps its header declares. `Err(Some(limit))`
/// when a cap is exceeded, `Err(None)` when no copy is usable (the reasons
/// are added to `problems`). Parity volumes whose recovery blocks do not
/// match the table are taken out of `parity`, with a problem each.
fn load_table(
    reference: &VolumeHeader,
    fields: ParityFields,
    parity: &mut HashMap<u32, &Given>,
    problems: &mut Vec<Problem>,
) -> Result<(Layout, BlockTable), Option<Problem>> {
    if reference.volume_count > MAX_VOLUMES {
        return Err(Some(Problem::Limit {
            what: "volume count".into(),
            value: reference.volume_count.into(),
            limit: MAX_VOLUMES.into(),
        }));
    }
    let n = reference.volume_count as usize;
    // Caps first, on the header's numbers alone (a layout with empty volumes).
    let draft = Layout::new(
        vec![0; n],
        fields.block_size,
        fields.stripe_rows,
        fields.stripe_recovery,
        fields.parity_volume_count,
    )
    .ok_or(None)?;
    let limit = |what: String, value: u64, limit: u64| Problem::Limit { what, value, limit };
    if let Err((what, value, cap)) = draft.check_caps() {
        return Err(Some(limit(what, value, cap)));
    }
    if fields.table_len > crate::limits::MAX_PARITY_TABLE {
        return Err(Some(limit(
            "bytes of block table".into(),
            fields.table_len,
            crate::limits::MAX_PARITY_TABLE,
        )));
    }
    let mut numbers: Vec<u32> = parity.keys().copied().collect();
    numbers.sort_unstable();
    for number in numbers {
        let Some(g) = parity.get(&number).copied() else {
            continue;
        };
        let unusable = |reason: String| Problem::ParityUnusable {
            path: g.path.clone(),
            reason,
        };
        let p = g.header.parity.unwrap_or_default();
        let end = p.table_offset.checked_add(p.table_len);
        if p.table_offset < crate::limits::VOLUME_PREFIX || end.is_none_or(|e| e > g.len) {
            problems.push(unusable("its block table lies outside the file".into()));
            continue;
        }
        let mut bytes = vec![0u8; p.table_len as usize];
        let read = File::open(&g.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(p.table_offset))?;
            f.read_exact(&mut bytes)
        });
        if let Err(e) = read {
            problems.push(unusable(format!("cannot read its block table: {e}")));
            continue;
        }
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != p.table_sha256 {
            problems.push(unusable(
                "its block table does not match its signed SHA-256 (damaged)".into(),
            ));
            continue;
        }
        let Some(lengths) = BlockTable::lengths(&bytes, n) else {
            problems.push(unusable("its block table is too short".into()));
            continue;
        };
        let possible = crate::limits::VOLUME_PREFIX + crate::limits::VOLUME_TRAILER
            ..=crate::limits::MAX_PARITY_VOLUME_LEN;
        if let Some(bad) = lengths.iter().position(|len| !possible.contains(len)) {
            problems.push(unusable(format!(
                "its block table gives volume {} an impossible length",
                bad + 1
            )));
            continue;
        }
        let layout = Layout::new(
            lengths,
            fields.block_size,
            fields.stripe_rows,
            fields.stripe_recovery,
            fields.parity_volume_count,
        );
        let table = layout
            .as_ref()
            .and_then(|layout| BlockTable::decode(bytes, layout));
        let (Some(layout), Some(table)) = (layout, table) else {
            problems.push(unusable(
                "its block table's length does not fit the volume lengths it lists".into(),
            ));
            continue;
        };
        // Each parity volume must hold exactly its share of recovery blocks;
        // one that does not is unusable, the others serve (§13.5 step 5).
        let mut mismatched: Vec<u32> = parity
            .iter()
            .filter(|(number, g)| {
                let p = g.header.parity.unwrap_or_default();
                let share = layout.recovery_count_of(number.saturating_sub(1));
                let block = u64::from(layout.block_size);
                p.recovery_count != share
                    || p.recovery_offset < crate::limits::VOLUME_PREFIX
                    || share
                        .checked_mul(block)
                        .and_then(|b| b.checked_add(p.recovery_offset))
                        .is_none_or(|end| end > g.len)
            })
            .map(|(number, _)| *number)
            .collect();
        mismatched.sort_unstable();
        for number in mismatched {
            if let Some(g) = parity.remove(&number) {
                problems.push(Problem::ParityUnusable {
                    path: g.path.clone(),
                    reason: "its recovery blocks do not match the block table".into(),
                });
            }
        }
        return Ok((layout, table));
    }
    Err(None)
}

/// Blocks of a data volume copy read to recognise a copy whose header is
/// damaged (§13.5 step 6).
const RECOGNISED_ROWS: u64 = 8;

/// Short last blocks whose hash each such file remembers.
const SHORT_BLOCKS_CACHED: usize = 8;

/// A short last block read from a file: its (row, volume length), and its
/// hash (`None` when the file does not hold it whole).
type ShortBlock = ((u64, u64), Option<[u8; 32]>);

/// The first blocks of a file that failed §7.1, hashed once: the hash of
/// each of its first eight whole blocks (`None` where the file does not hold
/// the block whole), to be compared with the table's hashes of a volume
/// with no copy.
struct FirstBlocks {
    path: PathBuf,
    len: u64,
    whole: Vec<Option<[u8; 32]>>,
    /// The hashes of the last few short last blocks read, by row and
    /// volume length: each read once for the many volumes of one length (an
    /// honest parcel has at most two lengths), in bounded memory whatever a
    /// hostile table lists.
    short: VecDeque<ShortBlock>,
}

impl FirstBlocks {
    fn read(path: &Path, layout: &Layout) -> FirstBlocks {
        let mut blocks = FirstBlocks {
            path: path.to_owned(),
            len: 0,
            whole: Vec::new(),
            short: VecDeque::new(),
        };
        let Ok(mut file) = File::open(path) else {
            return blocks;
        };
        blocks.len = file.metadata().map_or(0, |m| m.len());
        let block = u64::from(layout.block_size);
        let rows = (blocks.len / block.max(1)).min(RECOGNISED_ROWS);
        let mut buf = vec![0u8; layout.block_size as usize];
        for _ in 0..rows {
            let hash = file
                .read_exact(&mut buf)
                .ok()
                .map(|()| sha256::sha256(&buf));
            blocks.whole.push(hash);
        }
        blocks
    }

    /// Whether one of the first eight blocks of data volume `v` (0-based),
    /// held whole by this file, hashes to the table's hash of that block.
    fn match_volume(&mut self, layout: &Layout, table: &BlockTable, v: usize) -> bool {
        let block = u64::from(layout.block_size);
        let volume_len = layout.lengths.get(v).copied().unwrap_or(0);
        (0..layout.blocks_of(v).min(RECOGNISED_ROWS)).any(|row| {
            let Some(expected) = table.data(layout.data_index(v, row)) else {
                return false;
            };
            let end = (row + 1) * block;
            if end <= volume_len {
                // A whole block of the volume: hashed once with the file.
                return self
                    .whole
                    .get(row as usize)
                    .copied()
                    .flatten()
                    .is_some_and(|h| h == *expected);
            }
            // The volume's last block, shorter than B and padded with zeros:
            // its hash depends on the volume's length, so it is read here
            // (once per length), and only from a file that holds it whole.
            if self.len < volume_len {
                return false;
            }
            let key = (row, volume_len);
            let cached = self.short.iter().find(|(k, _)| *k == key).map(|(_, h)| *h);
            let hash = cached.unwrap_or_else(|| {
                let mut buf = vec![0u8; layout.block_size as usize];
                let hash = File::open(&self.path).ok().and_then(|mut file| {
                    read_block(&mut file, layout, v, row, self.len, &mut buf)
                        .is_ok_and(|held| held)
                        .then(|| sha256::sha256(&buf))
                });
                if self.short.len() == SHORT_BLOCKS_CACHED {
                    self.short.pop_front();
                }
                self.short.push_back((key, hash));
                hash
            });
            hash == Some(*expected)
        })
    }
}

/// Reads block `row` of a data volume copy into `buf` (`block` bytes, zero
/// past the volume's signed length). `Ok(false)` when the copy, `file_len`
/// bytes long, does not hold the block whole: such a block is lost (§13.5
/// step 7), however its missing bytes would hash.
fn read_block(
    file: &mut File,
    layout: &Layout,
    v: usize,
    row: u64,
    file_len: u64,
    buf: &mut [u8],
) -> io::Result<bool> {
    buf.fill(0);
    let block = u64::from(layout.block_size);
    let len = layout.lengths.get(v).copied().unwrap_or(0);
    let start = row * block;
    let end = (start + block).min(len);
    if end > file_len {
        return Ok(false);
    }
    if end > start {
        file.seek(SeekFrom::Start(start))?;
        let slot = buf.get_mut(..(end - start) as usize).unwrap_or_default();
        file.read_exact(slot)?;
    }
    Ok(true)
}

/// Hashes every block of every data volume copy against the table.
fn scan_blocks(
    layout: &Layout,
    table: &BlockTable,
    data: &[Given],
    candidates: Vec<Option<usize>>,
) -> Result<Scan, Problem> {
    let mut buf = vec![0u8; layout.block_size as usize];
    let mut lost = Vec::with_capacity(layout.volumes());
    let mut rebuild = Vec::with_capacity(layout.volumes());
    for (v, candidate) in candidates.iter().enumerate() {
        let blocks = layout.blocks_of(v) as usize;
        let Some(g) = candidate.and_then(|i| data.get(i)) else {
            lost.push(vec![true; blocks]);
            rebuild.push(true);
            continue;
        };
        let mut file = File::open(&g.path).map_err(|source| Problem::Unreadable {
            path: g.path.clone(),
            source: source.into(),
        })?;
        let mut bad = vec![false; blocks];
        for (row, slot) in bad.iter_mut().enumerate() {
            let ok = read_block(&mut file, layout, v, row as u64, g.len, &mut buf)
                .is_ok_and(|held| held)
                && table
                    .data(layout.data_index(v, row as u64))
                    .is_some_and(|h| *h == sha256::sha256(&buf));
            *slot = !ok;
        }
        rebuild.push(bad.iter().any(|&b| b) || Some(&g.len) != layout.lengths.get(v));
        lost.push(bad);
    }
    Ok(Scan {
        candidates,
        lost,
        rebuild,
    })
}

/// A stripe that could not be rebuilt: its number, lost data blocks and
/// usable recovery blocks.
struct FailedStripe {
    stripe: u64,
    erased: u64,
    usable: u64,
}

/// Rebuilds the data volumes `scan` marks into `scratch`, stripe by stripe.
fn rebuild(
    layout: &Layout,
    table: &BlockTable,
    data: &[Given],
    parity: &HashMap<u32, &Given>,
    scan: &Scan,
    scratch: &Path,
) -> Result<Vec<Repaired>, Vec<Problem>> {
    let block = layout.block_size as usize;
    let k = layout.stripe_rows as u64;
    let r = layout.stripe_recovery as usize;
    let originals = layout.originals();
    let count = layout.volumes() as u32;
    let io_problem = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| {
            vec![Problem::Write {
                path,
                source: source.into(),
            }]
        }
    };
    let unreadable = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| {
            vec![Problem::Unreadable {
                path,
                source: source.into(),
            }]
        }
    };
    // Open what is read, and create what is written.
    let mut copies: Vec<Option<(File, u64)>> = Vec::with_capacity(layout.volumes());
    for candidate in &scan.candidates {
        match candidate.and_then(|i| data.get(i)) {
            Some(g) => copies.push(Some((
                File::open(&g.path).map_err(unreadable(&g.path))?,
                g.len,
            ))),
            None => copies.push(None),
        }
    }
    let mut parity_files: HashMap<u32, File> = HashMap::new();
    for (number, g) in parity {
        parity_files.insert(*number, File::open(&g.path).map_err(unreadable(&g.path))?);
    }
    std::fs::create_dir_all(scratch).map_err(io_problem(scratch))?;
    let mut outputs: Vec<Option<(PathBuf, BufWriter<File>)>> = Vec::new();
    let mut created = Vec::new();
    let cleanup = |created: &[PathBuf]| {
        for path in created {
            let _ = std::fs::remove_file(path);
        }
    };
    // Write buffers share 64 MiB, 1 MiB each at most: a parcel may have
    // thousands of volumes to rebuild.
    let rebuilding = scan.rebuild.iter().filter(|&&w| w).count().max(1);
    let buffer = ((64usize << 20) / rebuilding).clamp(64 << 10, 1 << 20);
    for (v, &wanted) in scan.rebuild.iter().enumerate() {
        if !wanted {
            outputs.push(None);
            continue;
        }
        let path = scratch.join(format!("volume-{:04}.tar", v + 1));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_problem(&path));
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                cleanup(&created);
                return Err(e);
            }
        };
        created.push(path.clone());
        outputs.push(Some((path, BufWriter::with_capacity(buffer, file))));
    }
    let mut shards = vec![0u8; originals * block];
    let mut present = vec![false; originals];
    let mut recovery = vec![0u8; r * block];
    let mut decoder = None::<ReedSolomonDecoder>;
    let mut failed: Vec<FailedStripe> = Vec::new();
    let mut repaired_blocks = vec![0u64; layout.volumes()];
    let result = (|| -> Result<(), Vec<Problem>> {
        for stripe in 0..layout.stripes() {
            let rows = stripe * k..(stripe + 1) * k;
            let erased: Vec<usize> = (0..originals)
                .filter(|&shard| {
                    let place = layout.place_of(stripe, shard);
                    scan.lost
                        .get(place.volume)
                        .and_then(|lost| lost.get(place.row as usize))
                        .copied()
                        .unwrap_or(false)
                })
                .collect();
            let touched = scan
                .rebuild
                .iter()
                .enumerate()
                .any(|(v, &w)| w && layout.blocks_of(v) > rows.start);
            if !touched {
                continue;
            }
            // Gather the stripe: intact originals (virtual blocks are zero)
            // and, when something is lost, the intact recovery blocks.
            present.fill(false);
            let mut is_erased = vec![false; originals];
            for &shard in &erased {
                if let Some(e) = is_erased.get_mut(shard) {
                    *e = true;
                }
            }
            for shard in 0..originals {
                let place = layout.place_of(stripe, shard);
                let slot = shards
                    .get_mut(shard * block..(shard + 1) * block)
                    .unwrap_or_default();
                if place.row >= layout.blocks_of(place.volume) {
                    slot.fill(0);
                    if let Some(p) = present.get_mut(shard) {
                        *p = true;
                    }
                    continue;
                }
                if is_erased.get(shard).copied().unwrap_or(false) {
                    continue;
                }
                if let Some(Some((file, len))) = copies.get_mut(place.volume) {
                    let path = scan
                        .candidates
                        .get(place.volume)
                        .copied()
                        .flatten()
                        .and_then(|i| data.get(i))
                        .map(|g| g.path.clone())
                        .unwrap_or_default();
                    // A block the copy does not hold whole was lost in the
                    // scan, with the same length, so it is erased here.
                    let held = read_block(file, layout, place.volume, place.row, *len, slot)
                        .map_err(unreadable(&path))?;
                    if let Some(p) = present.get_mut(shard) {
                        *p = held;
                    }
                }
            }
            let mut restored: HashMap<usize, Vec<u8>> = HashMap::new();
            if !erased.is_empty() {
                let mut usable = Vec::new();
                for i in 0..r {
                    let g = stripe * r as u64 + i as u64;
                    let (p, position) = layout.recovery_place(g);
                    let (Some(file), Some(given)) =
                        (parity_files.get_mut(&(p + 1)), parity.get(&(p + 1)))
                    else {
                        continue;
                    };
                    let fields = given.header.parity.unwrap_or_default();
                    let slot = recovery
                        .get_mut(i * block..(i + 1) * block)
                        .unwrap_or_default();
                    let read = file
                        .seek(SeekFrom::Start(
                            fields.recovery_offset + position * block as u64,
                        ))
                        .and_then(|_| file.read_exact(slot));
                    let intact = read.is_ok()
                        && table
                            .recovery(g)
                            .is_some_and(|h| *h == sha256::sha256(slot));
                    if intact {
                        usable.push(i);
                    }
                }
                if usable.len() < erased.len() {
                    failed.push(FailedStripe {
                        stripe,
                        erased: erased.len() as u64,
                        usable: usable.len() as u64,
                    });
                    continue;
                }
                let decode_error = |e: reed_solomon_simd::Error| {
                    vec![Problem::ParityUnusable {
                        path: parity
                            .values()
                            .next()
                            .map(|g| g.path.clone())
                            .unwrap_or_default(),
                        reason: format!("Reed–Solomon decoding of stripe {stripe} failed: {e}"),
                    }]
                };
                let decoder = match decoder.as_mut() {
                    Some(d) => {
                        d.reset(originals, r, block).map_err(decode_error)?;
                        d
                    }
                    None => decoder.insert(
                        ReedSolomonDecoder::new(originals, r, block).map_err(decode_error)?,
                    ),
                };
                for (shard, bytes) in shards.chunks_exact(block).enumerate() {
                    if present.get(shard).copied().unwrap_or(false) {
                        decoder
                            .add_original_shard(shard, bytes)
                            .map_err(decode_error)?;
                    }
                }
                for &i in &usable {
                    let bytes = recovery.get(i * block..(i + 1) * block).unwrap_or_default();
                    decoder.add_recovery_shard(i, bytes).map_err(decode_error)?;
                }
                let result = decoder.decode().map_err(decode_error)?;
                for &shard in &erased {
                    let bytes = result.restored_original(shard).ok_or_else(|| {
                        decode_error(reed_solomon_simd::Error::NotEnoughShards {
                            original_count: originals,
                            original_received_count: 0,
                            recovery_received_count: usable.len(),
                        })
                    })?;
                    let place = layout.place_of(stripe, shard);
                    let expected = table.data(layout.data_index(place.volume, place.row));
                    if expected != Some(&sha256::sha256(bytes)) {
                        return Err(vec![Problem::ParityUnusable {
                            path: parity.values().next().map(|g| g.path.clone()).unwrap_or_default(),
                            reason: format!(
                                "block {} of volume {} rebuilt from parity does not match the block table (the repair data is inconsistent)",
                                place.row,
                                place.volume + 1
                            ),
                        }]);
                    }
                    restored.insert(shard, bytes.to_vec());
                }
            }
            if !failed.is_empty() {
                continue;
            }
            // Write this stripe's rows of every volume being rebuilt.
            for (v, output) in outputs.iter_mut().enumerate() {
                let Some((path, out)) = output else {
                    continue;
                };
                let len = layout.lengths.get(v).copied().unwrap_or(0);
                for row in rows.clone() {
                    if row >= layout.blocks_of(v) {
                        break;
                    }
                    let shard = layout.shard_of(v, row);
                    let bytes = match restored.get(&shard) {
                        Some(bytes) => {
                            if let Some(n) = repaired_blocks.get_mut(v) {
                                *n += 1;
                            }
                            bytes.as_slice()
                        }
                        None => shards
                            .get(shard * block..(shard + 1) * block)
                            .unwrap_or_default(),
                    };
                    let take = (len - row * block as u64).min(block as u64) as usize;
                    out.write_all(bytes.get(..take).unwrap_or_default())
                        .map_err(io_problem(path))?;
                }
            }
        }
        Ok(())
    })();
    if let Err(problems) = result {
        cleanup(&created);
        return Err(problems);
    }
    if let Some(first) = failed.first() {
        cleanup(&created);
        let worst = failed.iter().map(|f| f.erased).max().unwrap_or(0);
        let lost = scan
            .lost
            .iter()
            .enumerate()
            .filter(|(_, lost)| lost.iter().any(|&l| l))
            .map(|(v, lost)| {
                if scan.candidates.get(v).copied().flatten().is_none() {
                    format!("volume {} of {count} missing", v + 1)
                } else {
                    let n = lost.iter().filter(|&&l| l).count();
                    format!(
                        "volume {} of {count}: {n} damaged block{}",
                        v + 1,
                        if n == 1 { "" } else { "s" }
                    )
                }
            })
            .chain(
                // The recovery blocks that were not there to use.
                (1..=layout.parity_volumes)
                    .filter(|p| !parity.contains_key(p))
                    .map(|p| {
                        format!(
                            "parity volume {p} of {} missing or unusable",
                            layout.parity_volumes
                        )
                    }),
            )
            .collect::<Vec<_>>()
            .join(", ");
        return Err(vec![Problem::RepairImpossible {
            lost,
            stripes_failed: failed.len() as u64,
            stripes: layout.stripes(),
            stripe: first.stripe,
            erased: first.erased,
            usable: first.usable,
            needed_percent: (worst * 100).div_ceil(originals as u64),
            percent: layout.percent(),
        }]);
    }
    let mut repaired = Vec::new();
    for (v, output) in outputs.into_iter().enumerate() {
        let Some((path, out)) = output else {
            continue;
        };
        let file = out
            .into_inner()
            .map_err(|e| io_problem(&path)(e.into_error()))
            .and_then(|f| f.sync_all().map_err(io_problem(&path)));
        if let Err(e) = file {
            cleanup(&created);
            return Err(e);
        }
        let volume = v as u32 + 1;
        match scan
            .candidates
            .get(v)
            .copied()
            .flatten()
            .and_then(|i| data.get(i))
        {
            None => repaired.push(Repaired::Rebuilt {
                volume,
                count,
                path,
            }),
            Some(g) => repaired.push(Repaired::Blocks {
                volume,
                count,
                blocks: repaired_blocks.get(v).copied().unwrap_or(0),
                damaged: g.path.clone(),
                path,
            }),
        }
    }
    Ok(repaired)
}

/// The media check of parity volumes (as [`crate::verify::verify_media`]
/// does for data volumes): each file must authenticate as a parity volume of
/// the right length whose body hashes to its signed SHA-256. Used to read
/// back parity volumes just written.
pub fn check_parity_volumes(paths: &[PathBuf], trust: &TrustedKeys) -> Vec<Problem> {
    let mut problems = Vec::new();
    for path in paths {
        let checked = authenticate_volume(path, trust).and_then(|(header, len)| {
            check_volume_len(path, &header, len)?;
            Ok(header)
        });
        let header = match checked {
            Ok(header) if header.is_parity_volume() => header,
            Ok(_) => {
                problems.push(Problem::ParityUnusable {
                    path: path.clone(),
                    reason: "it is a data volume, not a parity volume".into(),
                });
                continue;
            }
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let digest = File::open(path).and_then(|mut file| {
            file.seek(SeekFrom::Start(crate::limits::VOLUME_PREFIX))?;
            let mut hasher = Sha256::new();
            io::copy(
                &mut io::BufReader::with_capacity(1 << 20, file),
                &mut hasher,
            )?;
            Ok(<[u8; 32]>::from(hasher.finalize()))
        });
        match digest {
            Ok(digest) if digest == header.body_sha256 => {}
            Ok(_) => problems.push(Problem::ParityUnusable {
                path: path.clone(),
                reason: "its contents do not match the signed hash (damaged)".into(),
            }),
            Err(source) => problems.push(Problem::Unreadable {
                path: path.clone(),
                source: source.into(),
            }),
        }
    }
    problems
}
