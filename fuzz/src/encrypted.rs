//! Encrypted seed parcels (FORMAT.md §12): the fuzz site's fixed age
//! identity (the test vectors' destination identity, so that encrypted
//! vectors given to the fuzzers decrypt too), a fixed parcel key and keys
//! entry, and the encrypted counterparts of the plain seeds.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parcel_format::encrypt::{Encryption, Identity};
use parcel_format::manifest::EXTENDED_FORMAT_VERSION;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::WriteOptions;
use parcel_format::Manifest;

use crate::{fuzz_key, scratch, small_options, write_package, write_seed_package, SeedParcel};

/// The identity every reader in the fuzz targets decrypts with (the one of
/// testdata/README.md).
const IDENTITY: &str = "AGE-SECRET-KEY-1D28AVQXN5SWL2FK37GYNZHNR2XZ2FXUT7F3F4L3CJ4NE8M9TCU8Q6ZUVPV";

/// The parcel key (32 × 0x44) wrapped by age to [`IDENTITY`]'s recipient,
/// made once: age's wrapping is random, the seeds must not be.
const KEYS_ENTRY: &str = "6167652d656e6372797074696f6e2e6f72672f76310a2d3e20583235353139203939687470536b584a663738704d75504c645236506d6c667264326236386531446a6e672f687a416b51550a7242354a4c3255705452647249436b66576c4b614c6a4477612f74577553767551724d676e34796d5166380a2d3e203d717337265e722d677265617365203d437948570a766f686b4a47343647416457436d7a614778732b766b340a2d2d2d2031344c563763556b4333314c6a7453664c664c5a685678385376614d4736454e796265327252675a4668770acda66cca80a68cf91a65f3cfbc46d7063c8704049a31ab21600b0d58af3f7fd2b376d58686ebce0669cf548171714e31a2acf02103b52e2244ab3ce0feeb137b";

/// The fuzz site's identity.
pub fn identity() -> &'static Identity {
    static IDENTITY_CELL: OnceLock<Identity> = OnceLock::new();
    IDENTITY_CELL.get_or_init(|| IDENTITY.parse().expect("the fixed identity parses"))
}

/// The fixed parcel key and keys entry every encrypted seed uses.
pub fn encryption() -> Encryption {
    let entry = (0..KEYS_ENTRY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEYS_ENTRY[i..i + 2], 16).expect("hex"))
        .collect();
    Encryption::from_parts([0x44; 32], entry)
}

/// [`crate::seed_parcel`]'s package as an encrypted 2–3 volume parcel.
pub fn seed_parcel() -> &'static SeedParcel {
    static SEED: OnceLock<SeedParcel> = OnceLock::new();
    SEED.get_or_init(|| {
        let tmp = scratch();
        let package = tmp.path().join("package");
        write_seed_package(&package, 100 * 1024).expect("seed package writes");
        let options = WriteOptions {
            encryption: Some(encryption()),
            ..small_options()
        };
        let seed = write_package(&package, &options);
        assert!(
            (2..=3).contains(&seed.volumes.len()),
            "the encrypted seed parcel has {} volumes, expected 2 or 3",
            seed.volumes.len()
        );
        seed
    })
}

/// Like [`crate::write_raw_parcel`], encrypted: `stored_packs` (zstd frames)
/// sealed as packs 0, 1, …, the manifest made version 3.
pub fn write_raw_parcel(
    manifest: &mut Manifest,
    stored_packs: &[Vec<u8>],
    volume_size: u64,
    dir: &Path,
) -> Vec<PathBuf> {
    let encryption = encryption();
    manifest.format_version = EXTENDED_FORMAT_VERSION;
    let sealed: Vec<Vec<u8>> = stored_packs
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            parcel_format::testkit::seal_pack(&encryption, &manifest.parcel_id, i as u32, frame)
        })
        .collect();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: dir.to_owned(),
            capacity: None,
        }],
        "raw",
        volume_size,
    );
    parcel_format::testkit::write_raw_with(
        manifest,
        &sealed,
        fuzz_key(),
        volume_size,
        true,
        Some(&encryption),
        &mut sink,
    )
    .expect("testkit writes an encrypted raw parcel")
}
