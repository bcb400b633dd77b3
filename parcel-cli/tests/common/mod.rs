//! Fixtures shared by the end-to-end tests: throw-away site homes that trust
//! each other, package trees grown from a seed, and snapshots of directory
//! trees to compare a store before and after a command.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub mod forge;

/// Largest volume in the tests: the smallest parcel allows, so that a package
/// of a few hundred KiB spreads over several volumes.
pub const VOLUME_SIZE: &str = "64KiB";
/// Capacity of each `--out` medium: three volumes.
pub const MEDIUM_SIZE: &str = "192KiB";

/// One temporary directory holding every site home, package and medium of a test.
pub struct World {
    dir: TempDir,
    media: Cell<u32>,
}

impl World {
    /// An empty world.
    pub fn new() -> World {
        World {
            dir: tempfile::tempdir().expect("tempdir"),
            media: Cell::new(0),
        }
    }

    /// A new, empty medium directory `<world>/medium-N`.
    pub fn medium(&self) -> PathBuf {
        let n = self.media.get() + 1;
        self.media.set(n);
        self.dir(&format!("medium-{n}"))
    }

    /// `<world>/<name>`, created empty (a medium, a courier's box…).
    pub fn dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).expect("create dir");
        path
    }

    /// A site `code` set up in `<world>/<code>-home`.
    pub fn site(&self, code: &str) -> Site {
        self.site_with(code, &[])
    }

    /// A site `code` set up with more `site init` arguments (`--parent`…).
    pub fn site_with(&self, code: &str, args: &[&str]) -> Site {
        let site = Site {
            code: code.to_owned(),
            home: self.dir.path().join(format!("{code}-home")),
            world: self.dir.path().to_owned(),
        };
        let mut init = vec!["site", "init", "--code", code];
        init.extend_from_slice(args);
        site.run(&init).success();
        site
    }

    /// A package tree in `<world>/<name>`, see [`write_package`].
    pub fn package(&self, name: &str, seed: u64) -> PathBuf {
        let path = self.dir.path().join(name);
        write_package(&path, seed);
        path
    }
}

/// Two sites, CEN and BXL, that trust each other's keys.
pub fn two_sites() -> (World, Site, Site) {
    let world = World::new();
    let cen = world.site("CEN");
    let bxl = world.site("BXL");
    exchange_keys(&cen, &bxl);
    (world, cen, bxl)
}

/// Each of `a` and `b` trusts the other's key.
pub fn exchange_keys(a: &Site, b: &Site) {
    a.trust(b);
    b.trust(a);
}

/// A site home of a test.
pub struct Site {
    /// The site code.
    pub code: String,
    /// The `--home` directory.
    pub home: PathBuf,
    world: PathBuf,
}

/// A parcel as `create --json` reported it.
#[derive(Debug)]
pub struct Created {
    pub parcel_id: String,
    pub volumes: Vec<PathBuf>,
    pub json: serde_json::Value,
}

impl Site {
    /// `parcel --home <home> --quiet`, with no `PARCEL_HOME` leaking in from outside.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("parcel").expect("parcel binary");
        cmd.env_remove("PARCEL_HOME")
            .arg("--home")
            .arg(&self.home)
            .arg("--quiet");
        cmd
    }

    /// Runs `parcel` with `args` at this site.
    pub fn run(&self, args: &[&str]) -> Assert {
        self.cmd().args(args).assert()
    }

    /// Runs `parcel` with `args`, expecting success, and parses its stdout as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args).success().get_output().stdout.clone();
        serde_json::from_slice(&out).expect("JSON on stdout")
    }

    /// Trusts `other`'s key, exported to `<world>/<code>.pub` (non-interactive:
    /// without a terminal `key trust` trusts and prints the fingerprint).
    pub fn trust(&self, other: &Site) {
        let file = self.world.join(format!("{}.pub", other.code));
        other.run(&["key", "export", "--out", arg(&file)]).success();
        self.run(&["key", "trust", arg(&file)]).success();
    }

    /// Exports this site's key file to `file`; its fingerprint, as the
    /// file gives it (what the site would read out over the phone).
    #[allow(dead_code)] // Used by the courier, crash and encrypt tests.
    pub fn export_key(&self, file: &Path) -> String {
        self.run(&["key", "export", "--out", arg(file)]).success();
        fs::read_to_string(file)
            .expect("key file")
            .lines()
            .find_map(|l| l.strip_prefix("fingerprint: ").map(str::to_owned))
            .expect("fingerprint line")
    }

    /// `parcel create` of `package` as `id` v`version` for site `to`, in
    /// volumes of [`VOLUME_SIZE`] over the `outs` media.
    pub fn create_cmd(
        &self,
        package: &Path,
        id: &str,
        version: u64,
        to: &str,
        outs: &[&Path],
    ) -> Command {
        let mut cmd = self.cmd();
        cmd.args(["create", "--package", arg(package), "--package-id", id])
            .args(["--version", &version.to_string(), "--to", to])
            .args(["--volume-size", VOLUME_SIZE]);
        for out in outs {
            cmd.args(["--out", arg(out)]);
        }
        cmd
    }

    /// Like [`Site::create_cmd`] with media of [`MEDIUM_SIZE`] and `--json`,
    /// expecting success.
    pub fn create(
        &self,
        package: &Path,
        id: &str,
        version: u64,
        to: &str,
        outs: &[&Path],
    ) -> Created {
        let out = self
            .create_cmd(package, id, version, to, outs)
            .args(["--medium-size", MEDIUM_SIZE, "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let json: serde_json::Value = serde_json::from_slice(&out).expect("create --json");
        let parcel_id = json["parcel_id"].as_str().expect("parcel_id").to_owned();
        let volumes = json["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| PathBuf::from(v.as_str().expect("volume path")))
            .collect();
        Created {
            parcel_id,
            volumes,
            json,
        }
    }

    /// `parcel import` of `paths` at this site.
    pub fn import(&self, paths: &[&Path]) -> Assert {
        let mut cmd = self.cmd();
        cmd.arg("import");
        for path in paths {
            cmd.arg(path);
        }
        cmd.assert()
    }

    /// Asserts that the store holds `id` v`version` exactly as the tree at
    /// `package`: contents, executable bits and symlinks.
    #[track_caller]
    pub fn assert_holds(&self, id: &str, version: u64, package: &Path) {
        assert_eq!(
            package_view(&snapshot(&self.store(id, version))),
            package_view(&snapshot(package)),
            "{} v{version} in {}'s store differs from {}",
            id,
            self.code,
            package.display()
        );
    }

    /// `<home>/packages/<id>/<version>`.
    pub fn store(&self, id: &str, version: u64) -> PathBuf {
        self.home
            .join("packages")
            .join(id)
            .join(version.to_string())
    }

    /// What a refused import must leave as it was: the package store and
    /// staging trees, and the catalog's `packages --json`.
    pub fn store_state(&self) -> StoreState {
        StoreState {
            packages: snapshot(&self.home.join("packages")),
            staging: snapshot(&self.home.join("staging")),
            catalog: self.json(&["packages", "--json"]),
        }
    }

    /// Everything in the world outside this site's home, by path relative to
    /// the world: media, packages, other sites. A command at this site must
    /// leave it as it was, except where it is told to write.
    #[allow(dead_code)] // Used by the hostile-input and crash tests.
    pub fn outside_home(&self) -> BTreeMap<PathBuf, Node> {
        let home = Path::new(self.home.file_name().expect("home name"));
        snapshot(&self.world)
            .into_iter()
            .filter(|(path, _)| !path.starts_with(home))
            .collect()
    }

    /// `show PARCEL --json`'s `status`.
    pub fn status(&self, parcel_id: &str) -> String {
        self.json(&["show", parcel_id, "--json"])["status"]
            .as_str()
            .expect("status")
            .to_owned()
    }
}

/// See [`Site::store_state`].
#[derive(Debug, PartialEq)]
pub struct StoreState {
    pub packages: BTreeMap<PathBuf, Node>,
    pub staging: BTreeMap<PathBuf, Node>,
    pub catalog: serde_json::Value,
}

/// A path as a command-line argument (temporary paths are UTF-8).
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// One entry of a [`snapshot`]. File contents are kept as length and SHA-256
/// so that a failed comparison prints something readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, len: u64, sha256: String },
    Symlink { target: PathBuf },
}

/// Every entry under `root` (not `root` itself) by relative path: directories
/// and files with their permission bits, files with their content, symlinks
/// with their target. An absent `root` is an empty snapshot.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        // Paths in the messages: a test once failed here, once, with a bare
        // "not found" (a path gone between read_dir and symlink_metadata).
        let entries = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("snapshot: read dir {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("snapshot: entry of {}: {e}", dir.display()))
                .path();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("snapshot: metadata of {}: {e}", path.display()));
            let rel = path.strip_prefix(root).expect("under root").to_owned();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path)
                    .unwrap_or_else(|e| panic!("snapshot: read link {}: {e}", path.display()));
                out.insert(rel, Node::Symlink { target });
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir { mode });
                walk(root, &path, out);
            } else {
                let bytes = fs::read(&path)
                    .unwrap_or_else(|e| panic!("snapshot: read {}: {e}", path.display()));
                let sha256 = format!("{:x}", Sha256::digest(&bytes));
                let len = bytes.len() as u64;
                out.insert(rel, Node::File { mode, len, sha256 });
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// A snapshot reduced to what a package carries: file contents and exec
/// bits, symlink targets, and which directories exist.
pub fn package_view(snapshot: &BTreeMap<PathBuf, Node>) -> BTreeMap<PathBuf, Node> {
    snapshot
        .iter()
        .map(|(path, node)| {
            let node = match node {
                Node::Dir { .. } => Node::Dir { mode: 0 },
                Node::File { mode, len, sha256 } => Node::File {
                    mode: mode & 0o111,
                    len: *len,
                    sha256: sha256.clone(),
                },
                Node::Symlink { target } => Node::Symlink {
                    target: target.clone(),
                },
            };
            (path.clone(), node)
        })
        .collect()
}

/// `len` pseudo-random bytes from xorshift64 seeded with `seed`: they do not
/// compress, so parcel sizes are predictable.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Writes a package tree of about 220 KiB at `root`: incompressible data
/// from `seed`, text files, an empty directory, an empty file, a non-ASCII
/// name, an executable and a relative symlink. Another seed gives other
/// content under the same names.
pub fn write_package(root: &Path, seed: u64) {
    let file = |rel: &str, bytes: &[u8], mode: u32| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(&path, bytes).expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    file("data/blob.bin", &random_bytes(seed, 200 * 1024), 0o644);
    file("data/small.bin", &random_bytes(seed + 1, 5000), 0o644);
    let readme = format!("Tools, built from seed {seed}.\n").repeat(40);
    file("README.txt", readme.as_bytes(), 0o644);
    file("docs/notes.txt", b"Install with bin/run.sh.\n", 0o644);
    file(
        "docs/Überblick – café ñ.txt",
        "Grüße, 世界\n".as_bytes(),
        0o644,
    );
    file("empty.txt", b"", 0o644);
    file("bin/run.sh", b"#!/bin/sh\necho tools\n", 0o755);
    fs::create_dir_all(root.join("empty-dir")).expect("empty dir");
    std::os::unix::fs::symlink("../docs/notes.txt", root.join("bin/notes")).expect("symlink");
}

/// Copies a directory tree: directories, files with their modes, symlinks.
#[allow(dead_code)] // Used by the courier and crash tests.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    fs::set_permissions(to, fs::metadata(from).expect("meta").permissions()).expect("chmod");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let link = fs::read_link(&source).expect("read link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            fs::copy(&source, &target).expect("copy file");
        }
    }
}

/// Names of every entry in `dir`, hidden ones included, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
