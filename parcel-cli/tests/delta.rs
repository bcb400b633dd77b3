//! Delta parcels through the command line (FORMAT.md §11): `create --base`
//! refuses a base the destination has not confirmed, the delta carries a
//! small part of the package, and the destination rebuilds exactly the new
//! version from its store — or refuses when the base is missing or modified.

#[allow(dead_code)] // each test crate uses part of the shared fixtures
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::assert::Assert;
use predicates::prelude::*;

use common::{arg, names_in, random_bytes, two_sites, Site, World};

/// Version 2 of a package: a copy of `v1` with a region of the large binary
/// rewritten, one file replaced, one removed and one added.
fn next_version(world: &World, v1: &Path) -> PathBuf {
    let v2 = world.dir("tools-v2");
    copy_tree(v1, &v2);
    let blob = v2.join("data/blob.bin");
    let mut bytes = fs::read(&blob).expect("blob");
    bytes[100_000..102_000].copy_from_slice(&random_bytes(4242, 2000));
    fs::write(&blob, bytes).expect("write blob");
    fs::write(
        v2.join("docs/notes.txt"),
        b"Install with bin/run.sh --prefix.\n",
    )
    .expect("notes");
    fs::remove_file(v2.join("empty.txt")).expect("remove");
    fs::write(v2.join("CHANGES"), b"2: faster\n").expect("add");
    v2
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            let link = fs::read_link(entry.path()).expect("link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else {
            // As `cp -a` copies: content, mode and modification time.
            fs::copy(entry.path(), &target).expect("copy");
            set_mtime(&target, mtime(&entry.path()));
        }
    }
}

/// CEN sends v1 to BXL, BXL imports it, and CEN applies BXL's receipt.
fn v1_delivered_and_confirmed(world: &World, cen: &Site, bxl: &Site) -> PathBuf {
    let v1 = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&v1, "tools", 1, "BXL", &[&out1, &out2]);
    let receipt = world.medium().join("receipt.txt");
    bxl.run(&["import", arg(&out1), arg(&out2), "--receipt", arg(&receipt)])
        .success();
    cen.run(&["receipt", "apply", arg(&receipt)]).success();
    v1
}

fn create_json(
    site: &Site,
    package: &Path,
    to: &str,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let output = site
        .create_cmd(package, "tools", 2, to, &[out])
        .args(["--json"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).expect("create --json")
}

#[test]
fn delta_parcel_is_small_and_imports_exactly_the_new_version() {
    let (world, cen, bxl) = two_sites();
    let v1 = v1_delivered_and_confirmed(&world, &cen, &bxl);
    let v2 = next_version(&world, &v1);

    let full = create_json(&cen, &v2, "BXL", &world.medium(), &["--no-verify"]);
    let out = world.medium();
    let delta = create_json(&cen, &v2, "BXL", &out, &["--base", "1"]);
    assert_eq!(delta["base_version"], 1);
    let (delta_bytes, full_bytes) = (
        delta["bytes"].as_u64().expect("bytes"),
        full["bytes"].as_u64().expect("bytes"),
    );
    assert!(
        delta_bytes * 4 < full_bytes,
        "delta {delta_bytes} bytes, full {full_bytes}"
    );

    bxl.run(&["verify", arg(&out)])
        .success()
        .stdout(predicate::str::contains("a delta on v1"));
    // The media check reads the base version past the index's tables.
    bxl.run(&["verify", "--media", arg(&out)])
        .success()
        .stdout(predicate::str::contains(
            "a delta on v1: it imports only over v1",
        ));
    let media = bxl
        .run(&["verify", "--media", "--json", arg(&out)])
        .success()
        .get_output()
        .stdout
        .clone();
    let media: serde_json::Value = serde_json::from_slice(&media).expect("verify --json");
    assert_eq!(
        (&media["depth"], &media["base_version"]),
        (&serde_json::json!("media"), &serde_json::json!(1))
    );
    bxl.run(&["import", arg(&out)]).success();
    bxl.assert_holds("tools", 2, &v2);
    // v1 is untouched.
    bxl.assert_holds("tools", 1, &v1);
}

#[test]
fn a_delta_on_a_version_whose_kept_index_is_gone_is_refused_asking_for_a_full_parcel() {
    let (world, cen, bxl) = two_sites();
    let v1 = v1_delivered_and_confirmed(&world, &cen, &bxl);
    let v2 = next_version(&world, &v1);
    let sent = cen.home.join("sent");
    for name in names_in(&sent) {
        fs::remove_file(sent.join(name)).expect("remove kept index");
    }
    let out = world.medium();
    cen.create_cmd(&v2, "tools", 2, "BXL", &[&out])
        .args(["--base", "1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "is unusable (the file is missing); send a full parcel",
        ));
    assert_eq!(names_in(&out), Vec::<String>::new());
}

/// `create` of v2 onto `outs`, media of 160 KiB (less than the 200 KiB blob
/// alone) and the default volume size, so that the volume size follows the
/// room check; `extra` adds `--base 1` and the like.
fn create_on_small_media(site: &Site, package: &Path, outs: &[&Path], extra: &[&str]) -> Assert {
    let mut cmd = site.cmd();
    cmd.args(["create", "--package", arg(package), "--package-id", "tools"])
        .args([
            "--version",
            "2",
            "--to",
            "BXL",
            "--medium-size",
            "160KiB",
            "--json",
        ]);
    for out in outs {
        cmd.args(["--out", arg(out)]);
    }
    cmd.args(extra).assert()
}

/// v1 delivered and confirmed, and v2: v1 copied with sizes and
/// modification times kept (as `cp -a` copies), plus one file.
fn v1_confirmed_and_a_copy(world: &World, cen: &Site, bxl: &Site) -> PathBuf {
    let v1 = v1_delivered_and_confirmed(world, cen, bxl);
    let v2 = world.dir("tools-v2");
    copy_tree(&v1, &v2);
    fs::write(v2.join("CHANGES"), b"2: packaging only\n").expect("add");
    v2
}

/// The modification time of `path`.
fn mtime(path: &Path) -> std::time::SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

/// Sets the modification time of `path`, keeping its content.
fn set_mtime(path: &Path, time: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .expect("set mtime");
}

#[test]
fn a_delta_needs_room_only_for_what_the_base_lacks() {
    let (world, cen, bxl) = two_sites();
    let v2 = v1_confirmed_and_a_copy(&world, &cen, &bxl);

    let out = world.medium();
    create_on_small_media(&cen, &v2, &[&out], &[])
        .code(1)
        .stderr(predicate::str::contains("not enough space"))
        .stderr(predicate::str::contains(
            "the parcel's size before compression",
        ));
    assert_eq!(names_in(&out), Vec::<String>::new());

    // The same blob with another modification time may have changed: counted.
    let blob = v2.join("data/blob.bin");
    let modified = mtime(&blob);
    set_mtime(&blob, modified + std::time::Duration::from_secs(3600));
    create_on_small_media(&cen, &v2, &[&out], &["--base", "1"])
        .code(1)
        .stderr(predicate::str::contains("files that differ from v1"));
    assert_eq!(names_in(&out), Vec::<String>::new());

    set_mtime(&blob, modified);
    create_on_small_media(&cen, &v2, &[&out], &["--base", "1"]).success();
    bxl.run(&["import", arg(&out)]).success();
    bxl.assert_holds("tools", 2, &v2);
}

#[test]
fn a_delta_whose_room_estimate_comes_out_low_fills_the_medium_cleanly_or_fits_on_two() {
    let (world, cen, bxl) = two_sites();
    let v2 = v1_confirmed_and_a_copy(&world, &cen, &bxl);
    // New content of the same size, the time put back: the estimate misses it.
    let blob = v2.join("data/blob.bin");
    let modified = mtime(&blob);
    fs::write(&blob, random_bytes(777, 200 * 1024)).expect("rewrite blob");
    set_mtime(&blob, modified);

    let out = world.medium();
    create_on_small_media(&cen, &v2, &[&out], &["--base", "1"])
        .code(1)
        .stderr(predicate::str::contains("the medium filled"))
        .stderr(predicate::str::contains("more than the"))
        .stderr(predicate::str::contains("160.0 KiB available"));
    assert_eq!(names_in(&out), Vec::<String>::new());
    assert_eq!(
        cen.json(&["list", "--json"]).as_array().map(Vec::len),
        Some(1)
    );

    // Two such media hold it, in volumes as large as a medium allows rather
    // than as small as the estimate.
    let (out1, out2) = (world.medium(), world.medium());
    let created = create_on_small_media(&cen, &v2, &[&out1, &out2], &["--base", "1"]).success();
    let json: serde_json::Value =
        serde_json::from_slice(&created.get_output().stdout).expect("create --json");
    assert_eq!(json["volumes"].as_array().map(Vec::len), Some(2), "{json}");
    bxl.run(&["import", arg(&out1), arg(&out2)]).success();
    bxl.assert_holds("tools", 2, &v2);
}

#[test]
fn create_refuses_a_base_the_destination_has_not_confirmed_unless_forced() {
    let (world, cen, bxl) = two_sites();
    let v1 = world.package("tools", 1);
    cen.create(&v1, "tools", 1, "BXL", &[&world.medium(), &world.medium()]);
    let v2 = next_version(&world, &v1);
    let out = world.medium();
    cen.create_cmd(&v2, "tools", 2, "BXL", &[&out])
        .args(["--base", "1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("has not confirmed"))
        .stderr(predicate::str::contains("--force-base"));
    assert_eq!(common::names_in(&out), Vec::<String>::new());
    let forced = create_json(&cen, &v2, "BXL", &out, &["--base", "1", "--force-base"]);
    assert_eq!(forced["base_version"], 1);
    // A base this site never sent is refused, forced or not, and says so
    // first (--force-base would not help).
    for force in [&["--force-base"][..], &[]] {
        cen.create_cmd(&v2, "tools", 5, "BXL", &[&world.medium()])
            .args(["--base", "4"])
            .args(force)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("never sent"))
            .stderr(predicate::str::contains("--force-base").not());
    }
    drop(bxl);
}

#[test]
fn import_refuses_a_delta_whose_base_is_missing_or_modified() {
    let (world, cen, bxl) = two_sites();
    let v1 = v1_delivered_and_confirmed(&world, &cen, &bxl);
    let v2 = next_version(&world, &v1);
    let out = world.medium();
    let created = create_json(&cen, &v2, "BXL", &out, &["--base", "1"]);

    // Modified base: a byte of v1's large file changed in the store.
    let stored = bxl.store("tools", 1).join("data/blob.bin");
    let mut bytes = fs::read(&stored).expect("stored blob");
    bytes[10] ^= 1;
    fs::write(&stored, &bytes).expect("write");
    let before = bxl.store_state();
    bxl.import(&[&out])
        .code(4)
        .stderr(predicate::str::contains("data/blob.bin"))
        .stderr(predicate::str::contains("modified"));
    assert_eq!(bxl.store_state(), before);
    // The parcel stays received, its history saying why it was not imported.
    let id = created["parcel_id"].as_str().expect("parcel id");
    let shown = bxl.json(&["show", id, "--json"]);
    assert_eq!(shown["status"], "received", "{shown}");
    assert!(
        shown["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|e| e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("not imported: ") && d.contains("modified"))),
        "{shown}"
    );

    // Missing base: a third site holding no v1.
    let lux = world.site("LUX");
    lux.trust(&cen);
    cen.trust(&lux);
    let out = world.medium();
    create_json(&cen, &v2, "LUX", &out, &["--base", "1", "--force-base"]);
    let before = lux.store_state();
    lux.import(&[&out])
        .code(4)
        .stderr(predicate::str::contains("does not hold"));
    assert_eq!(lux.store_state(), before);
}

#[test]
fn a_store_copy_gone_missing_is_installed_again_by_importing_its_parcel_and_a_delta_then_applies() {
    let (world, cen, bxl) = two_sites();
    let v1 = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&v1, "tools", 1, "BXL", &[&out1, &out2]);
    bxl.import(&[&out1, &out2]).success();
    let v2 = next_version(&world, &v1);
    let delta = world.medium();
    create_json(&cen, &v2, "BXL", &delta, &["--base", "1", "--force-base"]);

    // The base changed in the store: the delta says how to restore it.
    let stored = bxl.store("tools", 1).join("data/blob.bin");
    let bytes = fs::read(&stored).expect("stored blob");
    let mut changed = bytes.clone();
    changed[10] ^= 1;
    fs::write(&stored, &changed).expect("write");
    bxl.import(&[&delta])
        .code(4)
        .stderr(predicate::str::contains(
            "move its directory out of the store and import its parcel again",
        ));

    // Done as it says: v1 comes back exactly, with the same catalog record.
    // (The delta first, while v1 is away: it names the missing copy.)
    fs::rename(bxl.store("tools", 1), world.dir("moved-away").join("1")).expect("move");
    bxl.import(&[&delta])
        .code(4)
        .stderr(predicate::str::contains("whose copy in this store"))
        .stderr(predicate::str::contains(
            "is missing; import v1's parcel again",
        ));
    bxl.import(&[&out1, &out2])
        .success()
        .stdout(predicate::str::contains(
            "its copy in the store was missing: installed again",
        ));
    bxl.assert_holds("tools", 1, &v1);
    // Imported and complete again: a second run is the usual no-op.
    bxl.import(&[&out1, &out2])
        .success()
        .stdout(predicate::str::contains("already imported; nothing to do"));

    bxl.import(&[&delta]).success();
    bxl.assert_holds("tools", 2, &v2);
}
