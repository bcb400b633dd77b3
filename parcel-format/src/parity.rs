//! Repair data (FORMAT.md §13): the stripe layout both sides share, the
//! signed block table, and the writer that computes Reed–Solomon recovery
//! blocks over the sealed data volumes and puts them in parity volumes.
//!
//! The data volumes are sealed exactly as without parity (their headers only
//! announce the layout); the recovery data is computed over the finished
//! volume files, so that a reader rebuilds byte-identical volume files and
//! then reads them with the unchanged reader (see `repair.rs`).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use ed25519_dalek::SigningKey;
use reed_solomon_simd::ReedSolomonEncoder;
use sha2::{Digest, Sha256};

use crate::error::WriteError;
use crate::header::{ParityFields, VolumeHeader, RECORD_LEN};
use crate::limits::{
    BLOCK, MAX_PARITY_BLOCK, MAX_PARITY_STRIPE, MAX_PARITY_TABLE, MAX_PARITY_VOLUME_LEN,
    MAX_STRIPE_BLOCKS, MAX_VOLUMES, VOLUME_PREFIX, VOLUME_TRAILER,
};
use crate::sha256;
use crate::volume::{tar_header, VolumeSink, HEADER_ENTRY};

/// The smallest block a writer uses, and the smallest a reader accepts.
pub const MIN_BLOCK: u32 = 512;
/// The writer aims at about this many data blocks over the whole parcel
/// (FORMAT.md §13.6): small enough for a small block table, fine enough that
/// a scratch or a bad sector costs little parity.
const TARGET_DATA_BLOCKS: u64 = 1 << 20;
/// The writer makes stripes of at least this many data blocks, so that
/// rounding the recovery count up costs little.
const TARGET_STRIPE_BLOCKS: u32 = 32;
/// Offset of the first recovery block in a parity volume: the prefix and the
/// tar header of the `parity-blocks` entry.
pub const RECOVERY_OFFSET: u64 = VOLUME_PREFIX + BLOCK;

/// How the data volumes are cut into blocks and stripes (FORMAT.md §13.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Each data volume file's length, volume 1 first.
    pub lengths: Vec<u64>,
    /// Bytes per block (*B*).
    pub block_size: u32,
    /// Rows of blocks per stripe (*k*).
    pub stripe_rows: u32,
    /// Recovery blocks per stripe (*R*).
    pub stripe_recovery: u32,
    /// Number of parity volumes (*M*).
    pub parity_volumes: u32,
    /// Where each volume's block hashes start in the table's data list.
    first_block: Vec<u64>,
}

/// Where an original shard of a stripe comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlace {
    /// Data volume, 0-based.
    pub volume: usize,
    /// Block number within that volume (its row).
    pub row: u64,
}

impl Layout {
    /// A layout from the volume lengths and the stripe parameters; `None`
    /// when the numbers overflow.
    pub fn new(
        lengths: Vec<u64>,
        block_size: u32,
        stripe_rows: u32,
        stripe_recovery: u32,
        parity_volumes: u32,
    ) -> Option<Layout> {
        let mut first_block = Vec::with_capacity(lengths.len());
        let mut total = 0u64;
        for len in &lengths {
            first_block.push(total);
            total = total.checked_add(len.div_ceil(u64::from(block_size.max(1))))?;
        }
        let layout = Layout {
            lengths,
            block_size,
            stripe_rows,
            stripe_recovery,
            parity_volumes,
            first_block,
        };
        layout.table_len()?;
        Some(layout)
    }

    /// Number of data volumes (*N*).
    pub fn volumes(&self) -> usize {
        self.lengths.len()
    }

    /// Blocks of data volume `v` (0-based): its length over *B*, rounded up.
    pub fn blocks_of(&self, v: usize) -> u64 {
        self.lengths
            .get(v)
            .map_or(0, |len| len.div_ceil(u64::from(self.block_size.max(1))))
    }

    /// Rows: the most blocks any data volume has.
    pub fn rows(&self) -> u64 {
        (0..self.volumes())
            .map(|v| self.blocks_of(v))
            .max()
            .unwrap_or(0)
    }

    /// Number of stripes.
    pub fn stripes(&self) -> u64 {
        self.rows().div_ceil(u64::from(self.stripe_rows.max(1)))
    }

    /// Original shards per stripe: *N* × *k*.
    pub fn originals(&self) -> usize {
        self.volumes() * self.stripe_rows as usize
    }

    /// Data blocks over all volumes.
    pub fn data_blocks(&self) -> u64 {
        (0..self.volumes()).map(|v| self.blocks_of(v)).sum()
    }

    /// Recovery blocks over all stripes.
    pub fn recovery_blocks(&self) -> u64 {
        self.stripes()
            .saturating_mul(u64::from(self.stripe_recovery))
    }

    /// The block table's exact length: 8 bytes per data volume, then 32 per
    /// data block and per recovery block. `None` on overflow.
    pub fn table_len(&self) -> Option<u64> {
        let blocks = self.data_blocks().checked_add(
            self.stripes()
                .checked_mul(u64::from(self.stripe_recovery))?,
        )?;
        (self.volumes() as u64)
            .checked_mul(8)?
            .checked_add(blocks.checked_mul(32)?)
    }

    /// Position of block (`v`, `row`) in the table's list of data hashes.
    pub fn data_index(&self, v: usize, row: u64) -> u64 {
        self.first_block.get(v).copied().unwrap_or(0) + row
    }

    /// The original shard index of block row `row` of volume `v` within its
    /// stripe: shards go row by row, volume 1 to *N* within a row.
    pub fn shard_of(&self, v: usize, row: u64) -> usize {
        let in_stripe = row % u64::from(self.stripe_rows.max(1));
        in_stripe as usize * self.volumes() + v
    }

    /// Where original shard `shard` of stripe `stripe` comes from.
    pub fn place_of(&self, stripe: u64, shard: usize) -> BlockPlace {
        let n = self.volumes().max(1);
        BlockPlace {
            volume: shard % n,
            row: stripe * u64::from(self.stripe_rows) + (shard / n) as u64,
        }
    }

    /// The parity volume (0-based) and position within it of recovery block `g`.
    pub fn recovery_place(&self, g: u64) -> (u32, u64) {
        let m = u64::from(self.parity_volumes.max(1));
        ((g % m) as u32, g / m)
    }

    /// Recovery blocks in parity volume `p` (0-based).
    pub fn recovery_count_of(&self, p: u32) -> u64 {
        let m = u64::from(self.parity_volumes.max(1));
        let total = self.recovery_blocks();
        total / m + u64::from(u64::from(p) < total % m)
    }

    /// Bytes of one stripe in memory: its data and recovery blocks.
    pub fn stripe_bytes(&self) -> u64 {
        (self.originals() as u64 + u64::from(self.stripe_recovery))
            .saturating_mul(u64::from(self.block_size))
    }

    /// The percentage of parity this layout holds per stripe, rounded down.
    pub fn percent(&self) -> u64 {
        u64::from(self.stripe_recovery) * 100 / (self.originals() as u64).max(1)
    }

    /// The header fields a data volume of this layout carries.
    pub fn data_fields(&self) -> ParityFields {
        ParityFields {
            parity_volume: 0,
            parity_volume_count: self.parity_volumes,
            block_size: self.block_size,
            stripe_rows: self.stripe_rows,
            stripe_recovery: self.stripe_recovery,
            ..ParityFields::default()
        }
    }

    /// Checks the caps of FORMAT.md §8 that bound what a reader allocates
    /// for this layout; the message names the cap.
    pub fn check_caps(&self) -> Result<(), (String, u64, u64)> {
        let table = self.table_len().unwrap_or(u64::MAX);
        let caps = [
            (
                "parity block size",
                u64::from(self.block_size),
                u64::from(MAX_PARITY_BLOCK),
            ),
            (
                "data blocks per stripe",
                self.originals() as u64,
                u64::from(MAX_STRIPE_BLOCKS),
            ),
            (
                "recovery blocks per stripe",
                u64::from(self.stripe_recovery),
                u64::from(MAX_STRIPE_BLOCKS),
            ),
            ("bytes per stripe", self.stripe_bytes(), MAX_PARITY_STRIPE),
            ("bytes of block table", table, MAX_PARITY_TABLE),
            (
                "parity volumes",
                u64::from(self.parity_volumes),
                u64::from(MAX_VOLUMES),
            ),
        ];
        for (what, value, limit) in caps {
            if value > limit {
                return Err((what.to_owned(), value, limit));
            }
        }
        Ok(())
    }
}

/// The block table (FORMAT.md §13.4), in memory as it is stored: the data
/// volume lengths, then the hash of each data block and of each recovery
/// block. Held encoded, and read in place: a second, decoded copy of a
/// million-block table would take another 32 MB beside it, on top of the
/// file table the writer still holds when it writes the repair data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTable {
    bytes: Vec<u8>,
    volumes: usize,
    data_blocks: u64,
}

impl BlockTable {
    /// A table for `layout` with every hash zero, to be filled in by the
    /// writer; `None` when its length overflows.
    fn empty(layout: &Layout) -> Option<BlockTable> {
        let mut bytes = vec![0u8; usize::try_from(layout.table_len()?).ok()?];
        for (len, place) in layout.lengths.iter().zip(bytes.chunks_exact_mut(8)) {
            place.copy_from_slice(&len.to_le_bytes());
        }
        Some(BlockTable {
            bytes,
            volumes: layout.volumes(),
            data_blocks: layout.data_blocks(),
        })
    }

    /// The table's bytes as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where in the table's bytes the hash in place `i` of its list of
    /// hashes would be (past the volume lengths); not checked against the
    /// table's length.
    fn place(&self, i: u64) -> Option<std::ops::Range<usize>> {
        let at = usize::try_from(i.checked_mul(32)?)
            .ok()?
            .checked_add(self.volumes.checked_mul(8)?)?;
        Some(at..at.checked_add(32)?)
    }

    /// The hash in place `i` of the table's list of hashes.
    fn hash(&self, i: u64) -> Option<&[u8; 32]> {
        self.bytes.get(self.place(i)?)?.try_into().ok()
    }

    fn hash_mut(&mut self, i: u64) -> Option<&mut [u8; 32]> {
        let place = self.place(i)?;
        self.bytes.get_mut(place)?.try_into().ok()
    }

    /// SHA-256 of data block `i` (its [`Layout::data_index`]).
    pub fn data(&self, i: u64) -> Option<&[u8; 32]> {
        (i < self.data_blocks).then(|| self.hash(i)).flatten()
    }

    /// SHA-256 of recovery block `g`, stripe 0's first.
    pub fn recovery(&self, g: u64) -> Option<&[u8; 32]> {
        self.hash(self.data_blocks.checked_add(g)?)
    }

    fn data_mut(&mut self, i: u64) -> Option<&mut [u8; 32]> {
        (i < self.data_blocks).then(|| self.hash_mut(i)).flatten()
    }

    fn recovery_mut(&mut self, g: u64) -> Option<&mut [u8; 32]> {
        self.hash_mut(self.data_blocks.checked_add(g)?)
    }

    /// Decodes the data volume lengths at the start of a table of `volumes`
    /// volumes.
    pub fn lengths(bytes: &[u8], volumes: usize) -> Option<Vec<u64>> {
        let lens = bytes.get(..volumes.checked_mul(8)?)?;
        Some(
            lens.chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    u64::from_le_bytes(b)
                })
                .collect(),
        )
    }

    /// Takes the bytes of a table whose lengths gave `layout`; `None`
    /// unless they are exactly the table's length.
    pub fn decode(bytes: Vec<u8>, layout: &Layout) -> Option<BlockTable> {
        (Some(bytes.len() as u64) == layout.table_len()).then(|| BlockTable {
            bytes,
            volumes: layout.volumes(),
            data_blocks: layout.data_blocks(),
        })
    }
}

fn next_power_of_two(x: u64) -> u64 {
    x.checked_next_power_of_two().unwrap_or(1 << 63)
}

/// Chooses the layout for data volumes of `lengths` with `percent` parity
/// and parity volumes of at most `volume_size` bytes (FORMAT.md §13.6).
pub fn plan(lengths: Vec<u64>, percent: u8, volume_size: u64) -> Result<Layout, WriteError> {
    let invalid = |why: String| WriteError::Invalid(why);
    if !(1..=100).contains(&percent) {
        return Err(invalid(format!("parity of {percent}% is outside 1..=100")));
    }
    // A reader refuses a block table listing a longer data volume (§13.5).
    if let Some(&longest) = lengths.iter().max() {
        if longest > MAX_PARITY_VOLUME_LEN {
            return Err(invalid(format!(
                "a volume of {longest} bytes is over the {MAX_PARITY_VOLUME_LEN} bytes repair data can cover; choose a smaller volume size or no parity"
            )));
        }
    }
    let n = lengths.len() as u64;
    let total: u64 = lengths.iter().sum();
    let mut block = next_power_of_two(total.div_ceil(TARGET_DATA_BLOCKS))
        .clamp(u64::from(MIN_BLOCK), u64::from(MAX_PARITY_BLOCK));
    let rows = u64::from(TARGET_STRIPE_BLOCKS).div_ceil(n.max(1)).max(1);
    let originals = n * rows;
    let recovery = (originals * u64::from(percent)).div_ceil(100);
    while (originals + recovery) * block > MAX_PARITY_STRIPE && block > u64::from(MIN_BLOCK) {
        block /= 2;
    }
    // Parity volumes: as few as hold every recovery block next to a copy of
    // the table, each within the volume size.
    let draft = Layout::new(
        lengths.clone(),
        block as u32,
        rows as u32,
        recovery as u32,
        1,
    )
    .ok_or_else(|| invalid("the parity layout overflows".into()))?;
    let table = draft.table_len().unwrap_or(u64::MAX);
    let fixed = RECOVERY_OFFSET + BLOCK + table.div_ceil(BLOCK) * BLOCK + VOLUME_TRAILER;
    let per_volume = volume_size.saturating_sub(fixed) / block;
    if per_volume == 0 {
        return Err(WriteError::TooSmall(format!(
            "a parity volume of {volume_size} bytes cannot hold the {table}-byte block table and one {block}-byte block; choose a larger volume size or less parity"
        )));
    }
    let parity_volumes = draft.recovery_blocks().div_ceil(per_volume);
    let parity_volumes = u32::try_from(parity_volumes).unwrap_or(u32::MAX);
    let layout = Layout {
        parity_volumes,
        ..draft
    };
    layout.check_caps().map_err(|(what, value, limit)| {
        invalid(format!(
            "the parcel is too large for {percent}% parity: {value} {what}, over the format's limit of {limit}; use less parity or split the package"
        ))
    })?;
    Ok(layout)
}

/// One parity volume being written.
struct ParityOut {
    file: BufWriter<File>,
    hasher: Sha256,
}

impl ParityOut {
    fn body(&mut self, bytes: &[u8]) -> io::Result<()> {
        sha256::update(&mut self.hasher, bytes);
        self.file.write_all(bytes)
    }
}

/// Computes the recovery blocks over the sealed data volumes in `sink`
/// (opened with [`VolumeSink::reopen`]) and writes, signs and syncs the
/// parity volumes through [`VolumeSink::create_parity`]. `template` holds
/// the parcel-wide header fields (with the layout's fields).
pub(crate) fn write_parity(
    sink: &mut dyn VolumeSink,
    layout: &Layout,
    template: &VolumeHeader,
    key: &SigningKey,
) -> Result<(), WriteError> {
    let block = layout.block_size as usize;
    let n = layout.volumes();
    let k = layout.stripe_rows as usize;
    let r = layout.stripe_recovery as usize;
    let volume_err = |volume: u32| move |source| WriteError::Volume { volume, source };
    let parity_err = |p: u32| {
        move |source: io::Error| WriteError::Volume {
            volume: 0,
            source: io::Error::new(source.kind(), format!("parity volume {p}: {source}")),
        }
    };
    let mut outs = Vec::with_capacity(layout.parity_volumes as usize);
    for p in 1..=layout.parity_volumes {
        let file = sink.create_parity(p).map_err(parity_err(p))?;
        let mut out = ParityOut {
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        let head = tar_header(HEADER_ENTRY, BLOCK, template.created).map_err(parity_err(p))?;
        out.file
            .write_all(head.as_bytes())
            .and_then(|_| out.file.write_all(&[0u8; RECORD_LEN]))
            .map_err(parity_err(p))?;
        let size = layout.recovery_count_of(p - 1) * block as u64;
        let blocks = tar_header(&format!("parity-blocks.{p:04}"), size, template.created)
            .map_err(parity_err(p))?;
        out.body(blocks.as_bytes()).map_err(parity_err(p))?;
        outs.push(out);
    }
    let mut table = BlockTable::empty(layout)
        .ok_or_else(|| WriteError::Invalid("the block table's length overflows".into()))?;
    let mut recovered = 0u64;
    let mut encoder = ReedSolomonEncoder::new(layout.originals(), r, block)
        .map_err(|e| WriteError::Invalid(format!("Reed–Solomon encoder: {e}")))?;
    let mut shards = vec![0u8; layout.originals() * block];
    let mut files = Vec::with_capacity(n);
    for v in 0..n {
        let number = v as u32 + 1;
        files.push(sink.reopen(number).map_err(volume_err(number))?);
    }
    for stripe in 0..layout.stripes() {
        shards.fill(0);
        for (v, file) in files.iter_mut().enumerate() {
            let number = v as u32 + 1;
            let first_row = stripe * k as u64;
            let rows = layout.blocks_of(v).saturating_sub(first_row).min(k as u64);
            let len = layout.lengths.get(v).copied().unwrap_or(0);
            file.seek(SeekFrom::Start(first_row * block as u64))
                .map_err(volume_err(number))?;
            for row in 0..rows {
                let at = first_row + row;
                let take = (len - at * block as u64).min(block as u64) as usize;
                let shard = layout.shard_of(v, at);
                let slot = shards
                    .get_mut(shard * block..(shard + 1) * block)
                    .ok_or_else(|| WriteError::Invalid("parity shard out of range".into()))?;
                file.read_exact(slot.get_mut(..take).unwrap_or_default())
                    .map_err(volume_err(number))?;
                let i = layout.data_index(v, at);
                *table.data_mut(i).ok_or_else(|| {
                    WriteError::Invalid(format!("data block {i} is outside the block table"))
                })? = sha256::sha256(slot);
            }
        }
        encoder
            .reset(layout.originals(), r, block)
            .map_err(|e| WriteError::Invalid(format!("Reed–Solomon encoder: {e}")))?;
        for shard in shards.chunks_exact(block) {
            encoder
                .add_original_shard(shard)
                .map_err(|e| WriteError::Invalid(format!("Reed–Solomon encoder: {e}")))?;
        }
        let result = encoder
            .encode()
            .map_err(|e| WriteError::Invalid(format!("Reed–Solomon encoder: {e}")))?;
        for recovery in result.recovery_iter() {
            let g = recovered;
            recovered += 1;
            *table.recovery_mut(g).ok_or_else(|| {
                WriteError::Invalid(format!("recovery block {g} is outside the block table"))
            })? = sha256::sha256(recovery);
            let (p, _) = layout.recovery_place(g);
            let out = outs
                .get_mut(p as usize)
                .ok_or_else(|| WriteError::Invalid("parity volume out of range".into()))?;
            out.body(recovery).map_err(parity_err(p + 1))?;
        }
    }
    drop(files);
    if recovered != layout.recovery_blocks() {
        return Err(WriteError::Invalid(format!(
            "{recovered} recovery blocks made where the layout has {}",
            layout.recovery_blocks()
        )));
    }
    let table_bytes = table.as_bytes();
    let table_len = table_bytes.len() as u64;
    let table_sha256: [u8; 32] = Sha256::digest(table_bytes).into();
    let pad = vec![0u8; (table_len.div_ceil(BLOCK) * BLOCK - table_len) as usize];
    for (i, mut out) in outs.into_iter().enumerate() {
        let p = i as u32 + 1;
        let count = layout.recovery_count_of(i as u32);
        let head = tar_header(&format!("parity-table.{p:04}"), table_len, template.created)
            .map_err(parity_err(p))?;
        out.body(head.as_bytes())
            .and_then(|_| out.body(table_bytes))
            .and_then(|_| out.body(&pad))
            .and_then(|_| out.body(&[0u8; VOLUME_TRAILER as usize]))
            .map_err(parity_err(p))?;
        let body_len = count * block as u64
            + BLOCK
            + table_len.div_ceil(BLOCK) * BLOCK
            + BLOCK
            + VOLUME_TRAILER;
        let header = VolumeHeader {
            volume: 0,
            body_len,
            body_sha256: out.hasher.finalize().into(),
            parity: Some(ParityFields {
                parity_volume: p,
                table_offset: RECOVERY_OFFSET + count * block as u64 + BLOCK,
                table_len,
                table_sha256,
                recovery_offset: RECOVERY_OFFSET,
                recovery_count: count,
                ..layout.data_fields()
            }),
            ..template.clone()
        };
        let mut file = out
            .file
            .into_inner()
            .map_err(|e| parity_err(p)(e.into_error()))?;
        let record = header.encode_signed(key);
        file.seek(SeekFrom::Start(BLOCK))
            .and_then(|_| file.write_all(&record))
            .and_then(|_| file.sync_all())
            .map_err(parity_err(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_one_volume_loses_at_most_k_blocks_per_stripe() {
        let layout = plan(vec![70_000, 70_000, 30_000], 34, 65_536).unwrap();
        let k = layout.stripe_rows;
        assert!(layout.stripe_recovery >= k, "{layout:?}");
        for stripe in 0..layout.stripes() {
            let mut per_volume = [0u32; 3];
            for shard in 0..layout.originals() {
                let place = layout.place_of(stripe, shard);
                assert_eq!(layout.shard_of(place.volume, place.row), shard);
                per_volume[place.volume] += 1;
            }
            assert!(per_volume.iter().all(|&c| c == k));
        }
    }

    #[test]
    fn recovery_blocks_are_dealt_over_the_parity_volumes() {
        let layout = Layout::new(vec![10_000; 4], 512, 8, 13, 3).unwrap();
        let total: u64 = (0..3).map(|p| layout.recovery_count_of(p)).sum();
        assert_eq!(total, layout.recovery_blocks());
        assert_eq!(layout.recovery_place(4), (1, 1));
    }

    #[test]
    fn the_block_table_is_the_lengths_then_the_data_hashes_then_the_recovery_hashes() {
        let layout = Layout::new(vec![10_000, 10_000, 3_000], 512, 8, 3, 2).unwrap();
        let (data, recovery) = (layout.data_blocks(), layout.recovery_blocks());
        let mut table = BlockTable::empty(&layout).unwrap();
        for i in 0..data {
            *table.data_mut(i).unwrap() = [i as u8; 32];
        }
        for g in 0..recovery {
            *table.recovery_mut(g).unwrap() = [200 - g as u8; 32];
        }
        assert!(table.data_mut(data).is_none() && table.recovery_mut(recovery).is_none());
        // FORMAT.md §13.4, byte by byte.
        let bytes = table.as_bytes().to_vec();
        assert_eq!(Some(bytes.len() as u64), layout.table_len());
        assert_eq!(
            BlockTable::lengths(&bytes, 3),
            Some(vec![10_000, 10_000, 3_000])
        );
        let hashes = bytes.get(24..).unwrap();
        assert_eq!(hashes.get(..32), Some(&[0u8; 32][..]));
        let last_data = (data as usize - 1) * 32;
        assert_eq!(
            hashes.get(last_data..last_data + 32),
            Some(&[data as u8 - 1; 32][..])
        );
        let first_recovery = data as usize * 32;
        assert_eq!(
            hashes.get(first_recovery..first_recovery + 32),
            Some(&[200; 32][..])
        );
        assert_eq!(hashes.len(), (data + recovery) as usize * 32);
        // Read back in place: data and recovery hashes each in their range.
        let read = BlockTable::decode(bytes.clone(), &layout).unwrap();
        assert_eq!(read.data(data - 1), Some(&[data as u8 - 1; 32]));
        assert_eq!(read.data(data), None);
        assert_eq!(read.recovery(0), Some(&[200; 32]));
        assert_eq!(
            read.recovery(recovery - 1),
            Some(&[200 - (recovery as u8 - 1); 32])
        );
        assert_eq!(read.recovery(recovery), None);
        // One byte more or less is no table of this layout.
        assert!(BlockTable::decode(bytes[1..].to_vec(), &layout).is_none());
        assert!(BlockTable::decode([&bytes[..], &[0]].concat(), &layout).is_none());
    }

    #[test]
    fn nonsense_percentages_are_refused() {
        assert!(plan(vec![70_000; 3], 0, 65_536).is_err());
        assert!(plan(vec![70_000; 3], 101, 65_536).is_err());
    }

    #[test]
    fn a_data_volume_longer_than_repair_data_covers_is_refused() {
        let over = MAX_PARITY_VOLUME_LEN + 1;
        match plan(vec![70_000, over], 10, 1 << 30) {
            Err(WriteError::Invalid(why)) => assert!(why.contains(&over.to_string()), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(plan(vec![70_000, MAX_PARITY_VOLUME_LEN], 10, 1 << 30).is_ok());
    }
}
