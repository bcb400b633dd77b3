//! Hostile file tables, correctly signed: a trusted site can be compromised
//! or buggy, so extraction must stay safe whatever the signed manifest says
//! (FORMAT.md §6, §7.5).
//!
//! The input edits the file table (and a little of the chunk table) of a
//! hand-made seed parcel: paths and symlink targets from a small alphabet of
//! troublesome pieces (`.`, `..`, `/`, `\`, NUL, `é` composed and not, case
//! variants, over-long names), any entry kind, any chunk references, right or
//! wrong sizes and hashes. The result is signed by the trusted key with
//! `testkit::write_raw` (or encrypted to the fuzz site with
//! `testkit::write_raw_with`), opened, and extracted into `jail/cell/stage`.
//!
//! The property: nothing is written outside `stage`, nothing in it is setuid,
//! setgid or sticky, and no extracted symlink points outside it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use parcel_format::read::Parcel;
use parcel_format::{Entry, EntryKind};

/// Entries added per input.
const MAX_ENTRIES: usize = 12;
/// Pieces per path or link target.
const MAX_PIECES: usize = 12;
/// Chunk references per file.
const MAX_REFS: usize = 6;
/// Chunk-table edits per input.
const MAX_CHUNK_EDITS: usize = 2;

/// One piece of a path or link target.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Piece {
    LowerA,
    UpperA,
    LowerB,
    Dot,
    DotDot,
    Slash,
    Backslash,
    Nul,
    Newline,
    /// `é` as one code point (NFC).
    EComposed,
    /// `e` followed by a combining acute accent (NFD).
    EDecomposed,
    /// `É`.
    UpperEComposed,
    /// KELVIN SIGN, which lower-cases to `k`.
    Kelvin,
    LowerK,
    /// Names the seed already uses.
    Bin,
    UpperBin,
    Lib,
    Readme,
    /// A 256-byte component, one over the limit.
    Long,
}

impl Piece {
    fn text(self) -> &'static str {
        const LONG: &str = concat!(
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        );
        match self {
            Piece::LowerA => "a",
            Piece::UpperA => "A",
            Piece::LowerB => "b",
            Piece::Dot => ".",
            Piece::DotDot => "..",
            Piece::Slash => "/",
            Piece::Backslash => "\\",
            Piece::Nul => "\0",
            Piece::Newline => "\n",
            Piece::EComposed => "\u{e9}",
            Piece::EDecomposed => "e\u{301}",
            Piece::UpperEComposed => "\u{c9}",
            Piece::Kelvin => "\u{212a}",
            Piece::LowerK => "k",
            Piece::Bin => "bin",
            Piece::UpperBin => "BIN",
            Piece::Lib => "lib",
            Piece::Readme => "README",
            Piece::Long => LONG,
        }
    }
}

fn text(pieces: &[Piece]) -> String {
    pieces.iter().take(MAX_PIECES).map(|p| p.text()).collect()
}

#[derive(Arbitrary, Debug)]
enum Size {
    /// The sum of the referenced chunks' lengths.
    Exact,
    Other(u32),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Directory,
    File {
        executable: bool,
        /// Chunk indices, modulo (chunk count + 2): some are out of range.
        chunks: Vec<u8>,
        size: Size,
        /// The real content hash, or a wrong one.
        right_hash: bool,
    },
    Symlink {
        target: Vec<Piece>,
    },
}

#[derive(Arbitrary, Debug)]
struct NewEntry {
    path: Vec<Piece>,
    mtime: i64,
    kind: Kind,
}

#[derive(Arbitrary, Debug)]
enum ChunkField {
    Len,
    Offset,
    Pack,
    HashByte,
}

#[derive(Arbitrary, Debug)]
struct ChunkEdit {
    chunk: u8,
    field: ChunkField,
    value: u32,
}

#[derive(Arbitrary, Debug)]
struct Case {
    /// Write the parcel encrypted (FORMAT.md §12) and read it with the fuzz
    /// site's identity.
    encrypted: bool,
    /// How many of the seed's entries to keep in front (modulo their count + 1).
    keep: u8,
    entries: Vec<NewEntry>,
    chunk_edits: Vec<ChunkEdit>,
}

fn entry(seed: &parcel_fuzz::RawSeed, new: &NewEntry) -> Entry {
    let count = seed.chunk_data.len();
    let kind = match &new.kind {
        Kind::Directory => EntryKind::Directory,
        Kind::Symlink { target } => EntryKind::Symlink {
            target: text(target),
        },
        Kind::File {
            executable,
            chunks,
            size,
            right_hash,
        } => {
            let refs: Vec<u32> = chunks
                .iter()
                .take(MAX_REFS)
                .map(|&c| u32::from(c) % (count as u32 + 2))
                .collect();
            let content: Vec<u8> = refs
                .iter()
                .filter_map(|&c| seed.chunk_data.get(c as usize))
                .flatten()
                .copied()
                .collect();
            let mut sha256 = parcel_fuzz::sha256(&content);
            if !right_hash {
                sha256[0] ^= 1;
            }
            EntryKind::File {
                size: match size {
                    Size::Exact => content.len() as u64,
                    Size::Other(n) => u64::from(*n),
                },
                executable: *executable,
                sha256,
                chunks: refs.into(),
            }
        }
    };
    Entry {
        path: text(&new.path),
        mtime: new.mtime,
        kind,
    }
}

fuzz_target!(|case: Case| {
    let seed = parcel_fuzz::raw_seed();
    let mut manifest = seed.manifest.clone();
    let keep = usize::from(case.keep) % (manifest.entries.len() + 1);
    manifest.entries.truncate(keep);
    // Each new entry where the writer's walk puts it (readers refuse any
    // other order, FORMAT.md §7.3 step 8.9), so that the paths reach
    // extraction; the `index` target covers entries out of order.
    for new in case.entries.iter().take(MAX_ENTRIES) {
        let new = entry(seed, new);
        let at = manifest
            .entries
            .partition_point(|e| e.path.split('/').le(new.path.split('/')));
        manifest.entries.insert(at, new);
    }
    for edit in case.chunk_edits.iter().take(MAX_CHUNK_EDITS) {
        let count = manifest.chunks.len();
        let chunk = &mut manifest.chunks[usize::from(edit.chunk) % count];
        match edit.field {
            ChunkField::Len => chunk.len = edit.value,
            ChunkField::Offset => chunk.offset = edit.value,
            ChunkField::Pack => chunk.pack = edit.value,
            ChunkField::HashByte => chunk.sha256[edit.value as usize % 32] ^= 1,
        }
    }

    let tmp = parcel_fuzz::scratch();
    let media = tmp.path().join("media");
    std::fs::create_dir(&media).expect("scratch media directory");
    let (paths, identity) = if case.encrypted {
        let paths = parcel_fuzz::encrypted::write_raw_parcel(
            &mut manifest,
            &seed.stored_packs,
            parcel_fuzz::SMALL_VOLUME,
            &media,
        );
        (paths, Some(parcel_fuzz::encrypted::identity()))
    } else {
        let paths = parcel_fuzz::write_raw_parcel(
            &mut manifest,
            &seed.stored_packs,
            parcel_fuzz::SMALL_VOLUME,
            &media,
        );
        (paths, None)
    };
    let Ok(parcel) = Parcel::open_with(&paths, parcel_fuzz::trusted(), identity) else {
        return;
    };
    let jail = parcel_fuzz::Jail::new(tmp.path());
    let _ = parcel.extract(&jail.stage, &mut |_| {});
    jail.check();
});
