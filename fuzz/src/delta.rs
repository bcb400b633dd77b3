//! The delta seed (FORMAT.md §11) for the `delta` target: the seed package as
//! a base, and a delta parcel of its next version — a region of the large
//! file rewritten, a file added, one removed, the rest unchanged (whole
//! entries) — with the base's files as bytes to lay out per execution.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use parcel_format::delta::BaseIndex;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::{write, Hash, ParcelId};

use crate::{fuzz_key, noise, parcel_info, scratch, small_options, write_package, SeedParcel};

/// A delta parcel and the base it builds on.
pub struct DeltaSeed {
    /// The delta parcel (version 2 of the seed package).
    pub delta: SeedParcel,
    /// The base's regular files: path within the package, content.
    pub base_files: Vec<(String, Vec<u8>)>,
    /// The tree digest of version 2: what a good extraction gives.
    pub new_tree: Hash,
}

/// The delta seed, made once per process.
pub fn seed() -> &'static DeltaSeed {
    static SEED: OnceLock<DeltaSeed> = OnceLock::new();
    SEED.get_or_init(|| {
        let tmp = scratch();
        let base = tmp.path().join("base");
        crate::write_seed_package(&base, 100 * 1024).expect("base package writes");
        let base_parcel = write_package(&base, &small_options());
        let index = BaseIndex::from_manifest(&base_parcel.manifest);

        let next = tmp.path().join("next");
        copy_tree(&base, &next);
        let blob = next.join("data/blob.bin");
        let mut bytes = fs::read(&blob).expect("blob reads");
        let middle = bytes.len() / 2;
        let region = noise(99, 2048);
        bytes[middle..middle + region.len()].copy_from_slice(&region);
        fs::write(&blob, bytes).expect("blob writes");
        fs::write(next.join("data/new.txt"), b"added in version 2\n").expect("new file writes");
        fs::remove_file(next.join("README")).expect("README removed");

        let out = tmp.path().join("out");
        fs::create_dir(&out).expect("out directory");
        let options = small_options();
        let mut sink = DirSink::new(
            vec![OutputDir {
                dir: out,
                capacity: None,
            }],
            "delta",
            options.volume_size,
        );
        let mut info = parcel_info();
        info.parcel_id = ParcelId([0x22; 16]);
        info.package_version = base_parcel.manifest.package_version + 1;
        let scan = write::scan(&next).expect("version 2 scans");
        let written = write::write_delta_parcel(
            scan,
            &info,
            &index,
            fuzz_key(),
            &options,
            &mut sink,
            &mut |_| {},
        )
        .expect("delta parcel writes");
        assert!(written.manifest.base.is_some(), "the delta seed has a base");
        let volumes = written
            .volumes
            .iter()
            .map(|(path, _)| fs::read(path).expect("delta volume reads"))
            .collect();
        DeltaSeed {
            delta: SeedParcel {
                volumes,
                manifest: written.manifest,
            },
            base_files: files_of(&base, ""),
            new_tree: write::tree_digest_of_dir(&next).expect("version 2 digests"),
        }
    })
}

/// Copies a tree of directories and regular files, keeping modes and times.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("copy directory");
    for item in fs::read_dir(from).expect("list") {
        let item = item.expect("entry");
        let target = to.join(item.file_name());
        if item.file_type().expect("type").is_dir() {
            copy_tree(&item.path(), &target);
        } else {
            fs::copy(item.path(), &target).expect("copy file");
        }
        let meta = fs::metadata(item.path()).expect("stat");
        let file = fs::File::open(&target).expect("open copy");
        file.set_modified(meta.modified().expect("mtime"))
            .expect("set mtime");
    }
}

/// Every regular file under `dir`, as (path relative to the package, bytes).
fn files_of(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry"))
        .collect();
    names.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    for item in names {
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if item.file_type().expect("type").is_dir() {
            files.extend(files_of(&item.path(), &rel));
        } else {
            files.push((rel, fs::read(item.path()).expect("read")));
        }
    }
    files
}
