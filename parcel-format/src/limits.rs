//! Hard caps a reader enforces on everything it reads off media (FORMAT.md §8).
//!
//! Every number here bounds an allocation or a loop in the reader, so that no
//! input — however hostile, and even when signed by a trusted key — can make
//! it allocate without bound or run for longer than its size warrants.

/// Size of a tar block, and of the fixed volume header record.
pub const BLOCK: u64 = 512;
/// Bytes at the start of every volume before its body: the tar header block of
/// the `parcel-volume` entry and the 512-byte header record.
pub const VOLUME_PREFIX: u64 = 2 * BLOCK;
/// The tar end-of-archive marker: two zero blocks.
pub const VOLUME_TRAILER: u64 = 2 * BLOCK;

/// Largest number of volumes in one parcel.
pub const MAX_VOLUMES: u32 = 9_999;
/// Smallest volume size a writer accepts.
pub const MIN_VOLUME_SIZE: u64 = 64 * 1024;
/// Largest stored (compressed) index, in bytes.
pub const MAX_INDEX_STORED: u64 = 256 * 1024 * 1024;
/// Largest decoded index, in bytes.
pub const MAX_INDEX_RAW: u64 = 256 * 1024 * 1024;
/// Largest memory the lists of a decoded index may take, in bytes: the
/// elements of the file, chunk and pack tables, of every file's chunk list, of
/// the destinations and of a delta's base lists, each counted at its
/// in-memory size (FORMAT.md §8.1).
/// A million-file package needs about a third of it.
pub const MAX_INDEX_MEMORY: usize = 384 * 1024 * 1024;
/// Longest string (path, symlink target, site code, comment) the index
/// decoder reads (FORMAT.md §7.3 step 7): it decodes the manifest as it is
/// decompressed, reading each string through a buffer of this size. Every
/// valid string is far shorter (paths and comments are at most 4,096 bytes).
pub const MAX_INDEX_STRING: usize = 64 * 1024;
/// Largest number of file-table entries (files, directories and symlinks).
pub const MAX_ENTRIES: usize = 4_000_000;
/// Largest number of distinct chunks.
pub const MAX_CHUNKS: usize = 16_000_000;
/// Largest number of packs.
pub const MAX_PACKS: usize = 4_000_000;
/// Largest raw chunk, in bytes.
pub const MAX_CHUNK: u32 = 1024 * 1024;
/// Largest raw (decompressed) pack, in bytes.
pub const MAX_PACK_RAW: u32 = 16 * 1024 * 1024;
/// Largest stored (compressed) pack, in bytes: a raw pack plus zstd's worst-case overhead.
pub const MAX_PACK_STORED: u32 = MAX_PACK_RAW + 128 * 1024;
/// The zstd window log the writer gives packs (16 MiB, the largest pack), and
/// the limit the pack reader passes to zstd, whose one-shot decoding into a
/// buffer of the declared size needs no window (FORMAT.md §5.2). The streamed
/// index is read with a limit of 27 (`pack.rs`).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Longest entry path, in bytes of UTF-8.
pub const MAX_PATH: usize = 4096;
/// Longest single path component, in bytes of UTF-8.
pub const MAX_COMPONENT: usize = 255;
/// Deepest directory nesting of an entry path, in components.
pub const MAX_DEPTH: usize = 256;
/// Longest comment, in bytes of UTF-8.
pub const MAX_COMMENT: usize = 4096;
/// Longest package id, in bytes.
pub const MAX_PACKAGE_ID: usize = 64;
/// Longest site code, in bytes.
pub const MAX_SITE_CODE: usize = 8;
/// Largest `parcel-keys` entry of an encrypted parcel, in bytes (FORMAT.md
/// §12): an age file wrapping a 32-byte key takes about 200 bytes plus about
/// 100 per recipient.
pub const MAX_KEYS_ENTRY: u64 = 64 * 1024;
/// Largest number of destination sites of one parcel.
pub const MAX_DESTINATIONS: usize = 64;
/// Largest parity block, in bytes (FORMAT.md §13).
pub const MAX_PARITY_BLOCK: u32 = 16 * 1024 * 1024;
/// Largest stripe, in bytes: (data blocks + recovery blocks per stripe) ×
/// block size. A reader holds one stripe in memory while it repairs.
pub const MAX_PARITY_STRIPE: u64 = 64 * 1024 * 1024;
/// Largest number of blocks (data or recovery) in one stripe: what
/// reed-solomon-simd supports for any mix of originals and recovery.
pub const MAX_STRIPE_BLOCKS: u32 = 32_768;
/// Largest block table, in bytes: the buffer a reader reads it into.
pub const MAX_PARITY_TABLE: u64 = 128 * 1024 * 1024;
/// Largest data volume a block table may declare, in bytes (1 TiB).
pub const MAX_PARITY_VOLUME_LEN: u64 = 1 << 40;
