//! Repair data (FORMAT.md §13) end to end in the library: a parcel with
//! parity loses any one volume, or random blocks within its parity, and
//! repair rebuilds byte-identical volumes that verify and extract to the
//! same tree; damage beyond the parity is refused with what it needed.

use std::fs;
use std::path::{Path, PathBuf};

use parcel_format::repair::{repair, Repaired};
use parcel_format::sign::TrustedKeys;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{
    scan, tree_digest_of_dir, write_parcel_with, Extras, ParcelInfo, WriteOptions, WriteSummary,
};
use parcel_format::{verify, ChunkParams, FailureClass, Hash, ParcelId, Problem};
use proptest::prelude::*;

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn trust() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add("CEN", key().verifying_key());
    t
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A package of incompressible files over about four 64 KiB volumes.
fn package(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("bin/tool"), noise(1, 120_000)).unwrap();
    fs::write(root.join("data.bin"), noise(2, 90_000)).unwrap();
    fs::write(root.join("README"), b"read me\n".repeat(40)).unwrap();
}

struct Written {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    summary: WriteSummary,
    tree: Hash,
}

impl Written {
    fn data(&self) -> Vec<PathBuf> {
        self.summary
            .volumes
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
    fn parity(&self) -> Vec<PathBuf> {
        self.summary
            .parity_volumes
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
    fn all(&self) -> Vec<PathBuf> {
        let mut all = self.data();
        all.extend(self.parity());
        all
    }
    fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

fn write_with_parity(percent: u8) -> Written {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let src = root.join("src");
    package(&src);
    let out = root.join("out");
    fs::create_dir(&out).unwrap();
    let options = WriteOptions {
        volume_size: 64 * 1024,
        chunking: ChunkParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        },
        pack_target: 16 * 1024,
        ..WriteOptions::default()
    };
    let info = ParcelInfo {
        parcel_id: ParcelId([7; 16]),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 3,
        created: 1_700_000_000,
        comment: String::new(),
    };
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out,
            capacity: None,
        }],
        "CEN00012-3",
        options.volume_size,
    );
    let summary = write_parcel_with(
        scan(&src).unwrap(),
        &info,
        &key(),
        &options,
        &Extras {
            base: None,
            parity_percent: Some(percent),
        },
        &mut sink,
        &mut |_| {},
    )
    .unwrap();
    let tree = tree_digest_of_dir(&src).unwrap();
    Written {
        _tmp: tmp,
        root,
        summary,
        tree,
    }
}

/// Verifies and extracts `paths`; the extracted tree's digest.
fn read_back(paths: &[PathBuf], root: &Path) -> Result<Hash, String> {
    let report = verify::verify(paths, &trust(), &mut |_, _| {});
    if !report.is_ok() {
        return Err(format!("{:?}", report.problems));
    }
    let parcel =
        parcel_format::read::Parcel::open(paths, &trust()).map_err(|p| format!("{p:?}"))?;
    let out = tempfile::tempdir_in(root).unwrap();
    parcel
        .extract(out.path(), &mut |_| {})
        .map_err(|p| p.to_string())?;
    Ok(tree_digest_of_dir(out.path()).unwrap())
}

#[test]
fn parity_parcel_reads_as_it_is_with_no_repair() {
    let w = write_with_parity(34);
    assert!(w.summary.volumes.len() >= 3, "{:?}", w.summary.volumes);
    assert!(!w.summary.parity_volumes.is_empty());
    let scratch = w.scratch("scratch");
    let repair = repair(&w.all(), &trust(), &scratch);
    assert!(
        repair.repaired.is_empty() && repair.problems.is_empty(),
        "{repair:?}"
    );
    assert_eq!(repair.paths, w.data());
    assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
}

#[test]
fn any_one_lost_volume_is_rebuilt_byte_identical() {
    let w = write_with_parity(34);
    let data = w.data();
    for (lost, lost_path) in data.iter().enumerate() {
        let given: Vec<PathBuf> = w.all().into_iter().filter(|p| p != lost_path).collect();
        let scratch = w.scratch(&format!("scratch-{lost}"));
        let repair = repair(&given, &trust(), &scratch);
        assert!(repair.problems.is_empty(), "{:?}", repair.problems);
        assert_eq!(repair.repaired.len(), 1, "{:?}", repair.repaired);
        let Repaired::Rebuilt { volume, path, .. } = &repair.repaired[0] else {
            panic!("{:?}", repair.repaired)
        };
        assert_eq!(*volume as usize, lost + 1);
        assert_eq!(fs::read(path).unwrap(), fs::read(lost_path).unwrap());
        assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
    }
}

#[test]
fn a_parity_volume_whose_recovery_count_is_wrong_is_left_out_and_the_others_serve() {
    let w = write_with_parity(50);
    let parity = w.parity();
    assert!(parity.len() >= 2, "{parity:?}");
    // Signed by the source, but claiming one recovery block more than its
    // share: that copy is unusable (§13.5 step 5), not the whole table.
    parcel_format::testkit::resign_header(&parity[1], &key(), |h| {
        if let Some(p) = h.parity.as_mut() {
            p.recovery_count += 1;
        }
    })
    .unwrap();
    let data = w.data();
    let mut bytes = fs::read(&data[0]).unwrap();
    bytes[5000] ^= 1;
    fs::write(&data[0], &bytes).unwrap();
    let repair = repair(&w.all(), &trust(), &w.scratch("s"));
    assert!(repair.problems.is_empty(), "{:?}", repair.problems);
    assert!(
        matches!(
            repair.repaired.as_slice(),
            [Repaired::Blocks { volume: 1, .. }]
        ),
        "{:?}",
        repair.repaired
    );
    assert!(
        repair
            .notes
            .iter()
            .any(|n| n.contains("recovery blocks do not match the block table")),
        "{:?}",
        repair.notes
    );
    assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
}

#[test]
fn a_lost_parity_volume_alone_needs_no_repair() {
    let w = write_with_parity(50);
    for lost in w.parity() {
        let given: Vec<PathBuf> = w.all().into_iter().filter(|p| *p != lost).collect();
        let repair = repair(&given, &trust(), &w.scratch("s"));
        assert!(repair.repaired.is_empty() && repair.problems.is_empty());
        assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
    }
}

#[test]
fn damage_beyond_the_parity_is_refused_with_what_it_needed() {
    let w = write_with_parity(10);
    let data = w.data();
    let given: Vec<PathBuf> = w.all().into_iter().filter(|p| *p != data[1]).collect();
    let scratch = w.scratch("scratch");
    let repair = repair(&given, &trust(), &scratch);
    assert!(repair.repaired.is_empty());
    let [Problem::RepairImpossible {
        needed_percent,
        percent,
        lost,
        ..
    }] = repair.problems.as_slice()
    else {
        panic!("{:?}", repair.problems)
    };
    assert!(needed_percent > percent, "{needed_percent} {percent}");
    assert!(lost.contains("volume 2 of"), "{lost}");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0, "scratch left");
    let class = verify::verify(&repair.paths, &trust(), &mut |_, _| {}).class();
    assert_eq!(class, Some(FailureClass::Volume));
}

#[test]
fn a_truncated_copy_keeps_its_intact_blocks() {
    let w = write_with_parity(34);
    let data = w.data();
    let bytes = fs::read(&data[0]).unwrap();
    fs::write(&data[0], &bytes[..bytes.len() - 5000]).unwrap();
    let repair = repair(&w.all(), &trust(), &w.scratch("s"));
    assert!(repair.problems.is_empty(), "{:?}", repair.problems);
    let [Repaired::Blocks {
        volume: 1, blocks, ..
    }] = repair.repaired.as_slice()
    else {
        panic!("{:?}", repair.repaired)
    };
    assert!(*blocks >= 8, "{blocks}");
    assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
}

#[test]
fn bytes_a_copy_does_not_hold_are_rebuilt_from_parity_not_taken_as_zeros() {
    // The volume ends in its tar trailer, 1,024 zero bytes: cut off, they
    // would hash as the table says if the missing bytes were read as zeros.
    // They are lost instead (FORMAT.md §13.5 step 7), so a copy cut short
    // can never stand for more bytes than it holds.
    let w = write_with_parity(34);
    let data = w.data();
    let bytes = fs::read(&data[0]).unwrap();
    let (kept, trailer) = bytes.split_at(bytes.len() - 1024);
    assert!(trailer.iter().all(|&b| b == 0));
    fs::write(&data[0], kept).unwrap();
    let repair = repair(&w.all(), &trust(), &w.scratch("s"));
    assert!(repair.problems.is_empty(), "{:?}", repair.problems);
    let [Repaired::Blocks {
        volume: 1, blocks, ..
    }] = repair.repaired.as_slice()
    else {
        panic!("{:?}", repair.repaired)
    };
    assert!(
        *blocks >= 1,
        "the cut-off blocks were not rebuilt: {blocks}"
    );
    assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
}

#[test]
fn a_copy_whose_header_is_damaged_is_found_among_many_files_named_as_volumes() {
    let w = write_with_parity(34);
    let data = w.data();
    // A byte of the signed header of volume 2 flipped: the copy no longer
    // authenticates, but its other blocks are intact.
    let mut bytes = fs::read(&data[1]).unwrap();
    bytes[600] ^= 0x40;
    fs::write(&data[1], &bytes).unwrap();
    // Volume 3 lost, and a medium full of files that only look like
    // volumes: empty, short, and as long as a volume but of zeros.
    let mut given: Vec<PathBuf> = w.all().into_iter().filter(|p| *p != data[2]).collect();
    let junk = w.scratch("junk");
    for i in 0..200 {
        let path = junk.join(format!("CEN00012-3.{:03}-of-003.tar", i % 3 + 1));
        let path = path.with_extension(format!("{i}.tar"));
        let len = [0, 700, bytes.len()][i % 3];
        fs::write(&path, vec![0u8; len]).unwrap();
        given.push(path);
    }
    let repair = repair(&given, &trust(), &w.scratch("s"));
    assert!(repair.problems.is_empty(), "{:?}", repair.problems);
    let volumes: Vec<u32> = repair
        .repaired
        .iter()
        .map(|r| match r {
            Repaired::Rebuilt { volume, .. } | Repaired::Blocks { volume, .. } => *volume,
        })
        .collect();
    assert_eq!(volumes, [2, 3], "{:?}", repair.repaired);
    assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random flipped bytes over the data volumes, as long as no stripe
    /// loses more blocks than it has recovery blocks, are all repaired.
    #[test]
    fn random_damage_within_the_parity_is_repaired(
        flips in proptest::collection::vec((0usize..8, 0u64..u64::MAX), 1..6),
        drop_parity in any::<bool>(),
    ) {
        let w = write_with_parity(50);
        let data = w.data();
        let mut given = w.all();
        if drop_parity && w.parity().len() > 1 {
            given.retain(|p| *p != w.parity()[0]);
        }
        for (v, at) in &flips {
            let path = &data[v % data.len()];
            let mut bytes = fs::read(path).unwrap();
            let at = (at % bytes.len() as u64) as usize;
            bytes[at] ^= 0x5a;
            fs::write(path, bytes).unwrap();
        }
        let repair = repair(&given, &trust(), &w.scratch("s"));
        // At most 5 damaged blocks out of 32+ per stripe with 50% parity,
        // even with one parity volume of two gone.
        prop_assert!(repair.problems.is_empty(), "{:?}", repair.problems);
        prop_assert!(!repair.repaired.is_empty());
        prop_assert_eq!(read_back(&repair.paths, &w.root), Ok(w.tree));
    }
}
