//! Write → open → verify → extract round trips over real directory trees.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use parcel_format::sign::TrustedKeys;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{scan, write_parcel, ParcelInfo, WriteOptions};
use parcel_format::{ChunkParams, FailureClass, ParcelId};
use sha2::{Digest, Sha256};

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn info() -> ParcelInfo {
    ParcelInfo {
        parcel_id: ParcelId([1; 16]),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "CEN00012".into(),
        package_version: 3,
        created: 1_700_000_000,
        comment: "test".into(),
    }
}

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("empty/dir")).unwrap();
    fs::create_dir_all(root.join("données")).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("données/café.txt"), "crème brûlée\n".repeat(100)).unwrap();
    let big = noise(0x9E37_79B9_7F4A_7C15, 300_000);
    fs::write(root.join("bin/tool"), &big).unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("bin/tool-copy"), &big).unwrap();
    std::os::unix::fs::symlink("tool", root.join("bin/link")).unwrap();
}

fn small_options(volume_size: u64) -> WriteOptions {
    WriteOptions {
        volume_size,
        chunking: ChunkParams {
            min: 1024,
            avg: 4096,
            max: 16384,
        },
        pack_target: 32 * 1024,
        ..WriteOptions::default()
    }
}

fn write(src: &Path, out: &Path, options: &WriteOptions) -> Vec<PathBuf> {
    write_as(src, out, options, info())
}

fn write_as(src: &Path, out: &Path, options: &WriteOptions, info: ParcelInfo) -> Vec<PathBuf> {
    let summary = write_summary(src, out, options, info);
    summary.volumes.into_iter().map(|(p, _)| p).collect()
}

fn write_summary(
    src: &Path,
    out: &Path,
    options: &WriteOptions,
    info: ParcelInfo,
) -> parcel_format::write::WriteSummary {
    let scan = scan(src).unwrap();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out.to_owned(),
            capacity: None,
        }],
        "CEN00012-3",
        options.volume_size,
    );
    write_parcel(scan, &info, &key(), options, &mut sink, &mut |_| {}).unwrap()
}

fn trust() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add("CEN", key().verifying_key());
    t
}

#[test]
fn multi_volume_round_trip_is_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    sample_tree(&src);
    let mut volumes = write(&src, &out, &small_options(64 * 1024));
    assert!(
        volumes.len() >= 3,
        "expected several volumes, got {}",
        volumes.len()
    );
    volumes.reverse();
    let report = parcel_format::verify::verify(&volumes, &trust(), &mut |_, _| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    let parcel = parcel_format::read::Parcel::open(&volumes, &trust()).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    parcel.extract(&dest, &mut |_| {}).unwrap();
    let again = scan(&dest).unwrap();
    let original = scan(&src).unwrap();
    assert_eq!(again.entries(), original.entries());
    assert_eq!(
        fs::read(dest.join("bin/tool")).unwrap(),
        fs::read(src.join("bin/tool")).unwrap()
    );
    assert_eq!(
        fs::read_link(dest.join("bin/link")).unwrap(),
        PathBuf::from("tool")
    );
    assert_eq!(
        fs::metadata(dest.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(fs::metadata(dest.join("empty.txt")).unwrap().len(), 0);
    assert!(dest.join("empty/dir").is_dir());
}

#[test]
fn missing_volume_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    sample_tree(&src);
    let mut volumes = write(&src, &out, &small_options(64 * 1024));
    volumes.remove(1);
    let report = parcel_format::verify::verify(&volumes, &trust(), &mut |_, _| {});
    assert_eq!(report.class(), Some(FailureClass::Volume));
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, parcel_format::Problem::MissingVolume { volume: 2, .. })),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_truncated_volume_of_another_parcel_does_not_hide_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(&out_a).unwrap();
    fs::create_dir_all(&out_b).unwrap();
    sample_tree(&src);
    let mut given = write(&src, &out_a, &small_options(64 * 1024));
    assert!(given.len() > 2);
    given.remove(1);
    let other = ParcelInfo {
        parcel_id: ParcelId([2; 16]),
        ..info()
    };
    let b = write_as(&src, &out_b, &small_options(64 * 1024), other);
    let truncated = &b[1];
    let len = fs::metadata(truncated).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(truncated)
        .and_then(|f| f.set_len(len - 1000))
        .unwrap();
    given.push(truncated.clone());
    let report = parcel_format::verify::verify(&given, &trust(), &mut |_, _| {});
    assert_eq!(report.class(), Some(FailureClass::Volume));
    let missing = |p: &parcel_format::Problem| {
        matches!(p, parcel_format::Problem::MissingVolume { volume: 2, .. })
    };
    assert!(report.problems.iter().any(missing), "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, parcel_format::Problem::VolumeLength { volume: 2, .. })),
        "{:?}",
        report.problems
    );
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

#[test]
fn media_check_names_the_damaged_pack_of_a_damaged_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    sample_tree(&src);
    let volumes = write(&src, &out, &small_options(16 << 20));
    assert_eq!(volumes.len(), 1);
    let report = parcel_format::verify::verify_media(&volumes, &trust(), &mut |_, _| {});
    assert!(report.is_ok(), "{:?}", report.problems);

    let parcel = parcel_format::read::Parcel::open(&volumes, &trust()).unwrap();
    let packs = &parcel.manifest().packs;
    assert!(packs.len() >= 3, "{} packs", packs.len());
    let damaged = packs.len() / 2;
    let at = packs[damaged].offset as usize + packs[damaged].stored_len as usize / 2;
    let mut bytes = fs::read(&volumes[0]).unwrap();
    bytes[at] ^= 0x10;
    fs::write(&volumes[0], &bytes).unwrap();

    // The volume is hashed once: naming its damaged packs does not read it
    // whole again (progress would start over, or reach the total twice).
    let mut reported: Vec<(u64, u64)> = Vec::new();
    let report = parcel_format::verify::verify_media(&volumes, &trust(), &mut |done, total| {
        reported.push((done, total))
    });
    assert!(
        reported.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress went back: {reported:?}"
    );
    assert_eq!(
        reported
            .iter()
            .filter(|(done, total)| done == total)
            .count(),
        1,
        "the volume was not hashed exactly once: {reported:?}"
    );
    assert_eq!(report.package, Some(("CEN00012".to_owned(), 3)));
    assert_eq!(report.class(), Some(FailureClass::Volume));
    let named: Vec<(u32, u32)> = report
        .problems
        .iter()
        .filter_map(|p| match p {
            parcel_format::Problem::PackCorrupt { volume, pack, .. } => Some((*volume, *pack)),
            _ => None,
        })
        .collect();
    assert_eq!(named, vec![(1, damaged as u32)], "{:?}", report.problems);
}

#[test]
fn volumes_read_back_while_written_are_judged_by_what_was_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    sample_tree(&src);
    fs::write(src.join("noise.bin"), noise(7, 300_000)).unwrap();
    let options = WriteOptions {
        read_back: true,
        ..small_options(128 * 1024)
    };
    let summary = write_summary(&src, &out, &options, info());
    let volumes: Vec<PathBuf> = summary.volumes.iter().map(|(p, _)| p.clone()).collect();
    assert!(volumes.len() >= 3, "{} volumes", volumes.len());
    if summary.read_back.is_empty() {
        // No direct I/O here: the volumes are read back whole instead.
        eprintln!("no direct I/O where the test writes: read-back while writing not tested");
        return;
    }
    // Every volume was read back, and what was read back is its body.
    let read_back: Vec<&PathBuf> = summary.read_back.iter().map(|r| &r.path).collect();
    assert_eq!(read_back, volumes.iter().collect::<Vec<_>>());
    for r in &summary.read_back {
        let bytes = fs::read(&r.path).unwrap();
        let body: [u8; 32] = Sha256::digest(&bytes[1024..]).into();
        assert_eq!(r.body_sha256, body, "{}", r.path.display());
    }
    // The volumes `verify_written` finds damaged, given `read_back`.
    let damaged = |read_back: &[parcel_format::volume::ReadBack]| -> Vec<u32> {
        let report =
            parcel_format::verify::verify_written(&volumes, &trust(), read_back, &mut |_, _| {});
        report
            .problems
            .iter()
            .filter_map(|p| match p {
                parcel_format::Problem::VolumeCorrupt { volume, .. } => Some(*volume),
                _ => None,
            })
            .collect()
    };
    let report = parcel_format::verify::verify_written(
        &volumes,
        &trust(),
        &summary.read_back,
        &mut |_, _| {},
    );
    assert!(report.is_ok(), "{:?}", report.problems);

    // A volume whose read-back differs from its signed hash fails, by
    // number, and the damaged volume is searched for its packs as usual.
    let mut wrong = summary.read_back.clone();
    wrong[1].body_sha256[0] ^= 1;
    assert_eq!(damaged(&wrong), vec![2]);

    // The head of a body, which sealing writes again, is read again: a
    // byte of it changed after the read-back is found.
    let mut bytes = fs::read(&volumes[2]).unwrap();
    bytes[1024 + 3000] ^= 0x10;
    fs::write(&volumes[2], &bytes).unwrap();
    assert_eq!(damaged(&summary.read_back), vec![3]);
    bytes[1024 + 3000] ^= 0x10;
    fs::write(&volumes[2], &bytes).unwrap();

    // A volume left out of the read-back is read whole: damage made after
    // the writing is found in it, not in the ones judged by their read-back.
    let mut bytes = fs::read(&volumes[0]).unwrap();
    let last = bytes.len() - 2000;
    bytes[last] ^= 0x10;
    fs::write(&volumes[0], &bytes).unwrap();
    assert_eq!(damaged(&summary.read_back[1..]), vec![1]);
}

#[test]
fn a_large_volume_is_read_back_in_windows_and_only_its_head_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&out).unwrap();
    // 40 MiB that do not compress: one volume, several 16 MiB sync windows.
    for i in 0..5 {
        fs::write(src.join(format!("part{i}.bin")), noise(2 * i + 1, 8 << 20)).unwrap();
    }
    let options = WriteOptions {
        read_back: true,
        ..WriteOptions::default()
    };
    let summary = write_summary(&src, &out, &options, info());
    let volumes: Vec<PathBuf> = summary.volumes.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(volumes.len(), 1);
    if summary.read_back.is_empty() {
        eprintln!("no direct I/O where the test writes: read-back while writing not tested");
        return;
    }
    let bytes = fs::read(&volumes[0]).unwrap();
    assert!(bytes.len() > 40 << 20, "{} bytes", bytes.len());
    let body: [u8; 32] = Sha256::digest(&bytes[1024..]).into();
    assert_eq!(summary.read_back[0].body_sha256, body);
    let written = |v: &[PathBuf]| {
        parcel_format::verify::verify_written(v, &trust(), &summary.read_back, &mut |_, _| {})
    };
    assert!(
        written(&volumes).is_ok(),
        "{:?}",
        written(&volumes).problems
    );

    let head = parcel_format::volume::READ_BACK_HEAD as usize;
    let flip = |at: usize| {
        let mut b = fs::read(&volumes[0]).unwrap();
        b[1024 + at] ^= 0x10;
        fs::write(&volumes[0], &b).unwrap();
    };
    // The last byte of the head is read again after sealing: changed, found.
    flip(head - 1);
    assert_eq!(written(&volumes).class(), Some(FailureClass::Volume));
    flip(head - 1);
    // Past the head, the body is judged by what was read back while it was
    // written: a change made after the writing is not seen by the read-back
    // (the media check, which reads everything, finds it).
    flip(head + 1);
    assert!(
        written(&volumes).is_ok(),
        "{:?}",
        written(&volumes).problems
    );
    let media = parcel_format::verify::verify_media(&volumes, &trust(), &mut |_, _| {});
    assert_eq!(media.class(), Some(FailureClass::Volume));
}

#[test]
fn a_writer_keeps_the_destinations_within_the_format_s_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let sites: Vec<String> = (0..65).map(|i| format!("S{i:02}")).collect();
    for (count, accepted) in [(0, false), (64, true), (65, false)] {
        let out = tmp.path().join(format!("out-{count}"));
        fs::create_dir_all(&out).unwrap();
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out.clone(),
                capacity: None,
            }],
            "CEN00012-3",
            16 << 20,
        );
        let info = ParcelInfo {
            destinations: sites[..count].to_vec(),
            ..info()
        };
        let options = small_options(16 << 20);
        let written = write_parcel(
            scan(&src).unwrap(),
            &info,
            &key(),
            &options,
            &mut sink,
            &mut |_| {},
        );
        match written {
            Ok(summary) => {
                assert!(accepted, "{count} destinations were written");
                let volumes: Vec<PathBuf> = summary.volumes.into_iter().map(|(p, _)| p).collect();
                let parcel = parcel_format::read::Parcel::open(&volumes, &trust()).unwrap();
                assert_eq!(parcel.manifest().destinations.len(), count);
            }
            Err(e) => {
                assert!(!accepted, "{count} destinations were refused: {e}");
                assert!(e.to_string().contains("destination"), "{e}");
                assert_eq!(
                    fs::read_dir(&out).unwrap().count(),
                    0,
                    "nothing is left behind"
                );
            }
        }
    }
}

#[test]
fn extract_reloads_a_pack_that_left_the_cache_for_a_repeated_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&out).unwrap();
    // "a" fills the first packs; twenty other files push them out of the
    // cache; "z" repeats "a", so its chunks come from the first packs again.
    let first = noise(7, 200_000);
    fs::write(src.join("a"), &first).unwrap();
    for i in 0..20u64 {
        fs::write(src.join(format!("m{i:02}")), noise(100 + i, 40_000)).unwrap();
    }
    fs::write(src.join("z"), &first).unwrap();
    let volumes = write(&src, &out, &small_options(16 << 20));
    let parcel = parcel_format::read::Parcel::open(&volumes, &trust()).unwrap();
    let packs = parcel.manifest().packs.len();
    assert!(packs >= 10, "{packs} packs");
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    parcel.extract(&dest, &mut |_| {}).unwrap();
    assert_eq!(fs::read(dest.join("z")).unwrap(), first);
    for i in 0..20u64 {
        assert_eq!(
            fs::read(dest.join(format!("m{i:02}"))).unwrap(),
            noise(100 + i, 40_000)
        );
    }
}

/// A sink whose medium fills up: volumes from `full_from` on cannot be created.
struct FillingSink {
    inner: DirSink,
    full_from: u32,
}

impl parcel_format::volume::VolumeSink for FillingSink {
    fn create(&mut self, number: u32) -> std::io::Result<fs::File> {
        if number >= self.full_from {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "medium full",
            ));
        }
        self.inner.create(number)
    }
    fn reopen(&mut self, number: u32) -> std::io::Result<fs::File> {
        self.inner.reopen(number)
    }
    fn commit(&mut self, count: u32) -> std::io::Result<Vec<PathBuf>> {
        self.inner.commit(count)
    }
    fn abort(&mut self) {
        self.inner.abort();
    }
}

/// A package `src` in `dir` of `count` files of `len` bytes that do not
/// compress.
fn noise_package(dir: &Path, count: u64, len: usize, seed: u64) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..count {
        fs::write(src.join(format!("noise-{i}")), noise(seed ^ i, len)).unwrap();
    }
    src
}

#[test]
fn a_panic_while_packing_reaches_the_caller_instead_of_hanging_the_file_readers() {
    let tmp = tempfile::tempdir().unwrap();
    // Files larger than a reader's 8 MiB read-ahead: while the packer is
    // held up, each reader fills its budget and waits for room.
    let src = noise_package(tmp.path(), 2, 12 << 20, 0x9E37_79B9_7F4A_7C15);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out,
                capacity: None,
            }],
            "panicking",
            64 << 20,
        );
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_parcel(
                scan(&src).unwrap(),
                &info(),
                &key(),
                // Default chunks: 256 messages of them are more than 8 MiB,
                // so the budget, not the channel, stops the readers.
                &WriteOptions {
                    volume_size: 64 << 20,
                    ..WriteOptions::default()
                },
                &mut sink,
                &mut |_| {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    panic!("progress callback gives up");
                },
            )
        }));
        let _ = tx.send(written.is_err());
    });
    let panicked = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the write returned (readers waiting for room in their budget used to hang it)");
    assert!(panicked, "the callback's panic reached the caller");
}

#[test]
fn a_medium_filling_up_mid_write_fails_the_write_instead_of_hanging_it() {
    let tmp = tempfile::tempdir().unwrap();
    // About 2 MB that does not compress: dozens of packs, many volumes.
    let src = noise_package(tmp.path(), 8, 256 * 1024, 0x2545_F491_4F6C_DD1D);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let package = src.clone();
    let dir = out.clone();
    std::thread::spawn(move || {
        let mut sink = FillingSink {
            inner: DirSink::new(
                vec![OutputDir {
                    dir,
                    capacity: None,
                }],
                "filling",
                128 * 1024,
            ),
            full_from: 3,
        };
        let options = WriteOptions {
            threads: 1,
            ..small_options(128 * 1024)
        };
        let written = write_parcel(
            scan(&package).unwrap(),
            &info(),
            &key(),
            &options,
            &mut sink,
            &mut |_| {},
        );
        let _ = tx.send(written.map(|_| ()).map_err(|e| e.to_string()));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the write returned (it used to hang once the medium was full)");
    let error = result.expect_err("no room for volume 3");
    assert!(error.contains("volume 3"), "{error}");
    assert!(
        fs::read_dir(&out).unwrap().next().is_none(),
        "temporary volumes removed"
    );
}

#[test]
fn a_file_rewritten_in_place_while_it_is_read_is_refused_not_sent_torn() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // Large enough that reading it spans many clock ticks of the file
    // system's timestamps, while another thread keeps rewriting bytes in
    // place (the size never changes).
    let big = src.join("database.img");
    fs::write(&big, noise(0x1234_5678_9ABC_DEF1, 96 << 20)).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let done = AtomicBool::new(false);
    // Set however the writer ends (a panic too), so the rewriter stops.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let file = fs::OpenOptions::new().write(true).open(&big).unwrap();
            let mut at = 0u64;
            while !done.load(Ordering::Relaxed) {
                file.write_at(&[at as u8], at % (96 << 20)).unwrap();
                at = at.wrapping_add(7_919);
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        let _stop = Stop(&done);
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out.clone(),
                capacity: None,
            }],
            "torn",
            1 << 30,
        );
        let written = write_parcel(
            scan(&src).unwrap(),
            &info(),
            &key(),
            &WriteOptions::default(),
            &mut sink,
            &mut |_| {},
        );
        written.map(|_| ())
    });
    match result {
        Err(parcel_format::WriteError::Modified { path }) => assert_eq!(path, big),
        other => panic!("expected the file refused as modified, got {other:?}"),
    }
    // Nothing is left on the medium.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
}
