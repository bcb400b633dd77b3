//! End-to-end tests of the courier flow between site homes: a multi-volume
//! parcel over two media, volumes carried back shuffled, import, receipts,
//! tracking, forwarding to a third site, and every refusal with its exit code
//! and a store left exactly as it was.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;

use common::{
    arg, copy_tree, exchange_keys, names_in, package_view, random_bytes, snapshot, two_sites,
    Created, Site, World,
};

/// `from` sends `id` v`version` of `package` to `to` over two media, and `to`
/// imports it. Returns the parcel and the receipt `to` wrote.
fn deliver(
    world: &World,
    from: &Site,
    to: &Site,
    package: &Path,
    id: &str,
    version: u64,
) -> (Created, PathBuf) {
    let outs = [world.medium(), world.medium()];
    let created = from.create(package, id, version, &to.code, &[&outs[0], &outs[1]]);
    let receipt = world.medium().join("receipt.txt");
    to.run(&[
        "import",
        arg(&outs[0]),
        arg(&outs[1]),
        "--receipt",
        arg(&receipt),
    ])
    .success();
    (created, receipt)
}

/// The volume whose file name says it is number `n`.
fn volume(created: &Created, n: usize) -> &Path {
    let tag = format!(".{n:03}-of-");
    created
        .volumes
        .iter()
        .find(|v| arg(v).contains(&tag))
        .expect("volume numbered n")
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
}

#[test]
fn parcel_over_two_media_imports_the_exact_tree_from_shuffled_volumes() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (dvd1, dvd2) = (world.dir("dvd1"), world.dir("dvd2"));
    let created = cen.create(&package, "tools", 1, "BXL", &[&dvd1, &dvd2]);

    let id = &created.parcel_id;
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let volumes = &created.volumes;
    assert!(volumes.len() >= 4, "expected several volumes: {volumes:?}");
    let total: u64 = volumes
        .iter()
        .map(|v| fs::metadata(v).expect("volume").len())
        .sum();
    assert_eq!(created.json["bytes"].as_u64(), Some(total));
    // Both media are used, and hold the volumes and nothing else.
    let mut on_media: Vec<String> = names_in(&dvd1);
    assert!(!on_media.is_empty() && !names_in(&dvd2).is_empty());
    on_media.extend(names_in(&dvd2));
    on_media.sort();
    let mut named: Vec<String> = volumes.iter().map(|v| file_name(v).to_owned()).collect();
    named.sort();
    assert_eq!(on_media, named);

    // The courier brings the volumes back in another order, over other
    // directories, one of them as a loose file.
    let boxes = [world.dir("box-a"), world.dir("box-b"), world.dir("box-c")];
    let loose = world.dir("pocket").join(file_name(&volumes[0]));
    fs::rename(&volumes[0], &loose).expect("move volume");
    for (i, v) in volumes[1..].iter().rev().enumerate() {
        fs::rename(v, boxes[i % 3].join(file_name(v))).expect("move volume");
    }
    let shuffled = [arg(&boxes[2]), arg(&loose), arg(&boxes[0]), arg(&boxes[1])];
    bxl.run(&[&["verify"][..], &shuffled].concat())
        .success()
        .stdout(predicate::str::contains("intact"));
    let receipt = world.dir("mail").join("receipt-for-CEN.txt");
    let imported = bxl.json(
        &[
            &["import"][..],
            &shuffled,
            &["--receipt", arg(&receipt), "--json"],
        ]
        .concat(),
    );

    let store = bxl.store("tools", 1);
    assert_eq!(imported["parcel_id"], id.as_str());
    assert_eq!(imported["path"], arg(&store));
    assert!(receipt.is_file(), "no receipt at {}", receipt.display());
    assert_eq!(
        package_view(&snapshot(&store)),
        package_view(&snapshot(&package))
    );
    let packages = bxl.json(&["packages", "--json"]);
    assert_eq!(packages.as_array().map(Vec::len), Some(1), "{packages}");
    assert_eq!(packages[0]["package_id"], "tools");
    assert_eq!(packages[0]["version"], 1);
    assert_eq!(packages[0]["parcel_id"], id.as_str());
    assert_eq!(packages[0]["source_site"], "CEN");
    assert_eq!(packages[0]["origin_site"], "CEN");
    assert_eq!(bxl.status(id), "imported");
    assert_eq!(cen.status(id), "created");
}

#[test]
fn store_holds_empty_dir_empty_file_executable_symlink_and_non_ascii_name() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 7);
    deliver(&world, &cen, &bxl, &package, "tools", 3);
    let store = bxl.store("tools", 3);
    assert!(store.join("empty-dir").is_dir());
    assert_eq!(names_in(&store.join("empty-dir")), Vec::<String>::new());
    assert_eq!(fs::read(store.join("empty.txt")).expect("empty file"), b"");
    assert_eq!(
        fs::read_link(store.join("bin/notes")).expect("symlink"),
        Path::new("../docs/notes.txt")
    );
    assert_eq!(
        fs::read_to_string(store.join("bin/notes")).expect("through the link"),
        "Install with bin/run.sh.\n"
    );
    let run = fs::metadata(store.join("bin/run.sh")).expect("executable");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&run.permissions()) & 0o111,
        0o111
    );
    assert_eq!(
        fs::read_to_string(store.join("docs/Überblick – café ñ.txt")).expect("non-ASCII name"),
        "Grüße, 世界\n"
    );
}

#[test]
fn second_import_of_the_same_parcel_is_a_no_op_that_says_so() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, _) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let before = bxl.store_state();
    let paths: Vec<&Path> = created.volumes.iter().map(PathBuf::as_path).collect();
    bxl.import(&paths)
        .success()
        .stdout(predicate::str::contains("already imported; nothing to do"))
        .stdout(predicate::str::contains("receipt is written again"));
    let mut args = vec!["import", "--json"];
    args.extend(paths.iter().map(|p| arg(p)));
    let json = bxl.json(&args);
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["already_imported"], true, "{json}");
    assert_eq!(json["store_intact"], true, "{json}");
    assert_eq!(json["parcel_id"], created.parcel_id.as_str(), "{json}");
    assert_eq!(bxl.store_state(), before);
    assert_eq!(bxl.status(&created.parcel_id), "imported");

    // A file of the store copy changed by hand: the import says so, and
    // after the copy is moved out, restores it.
    let store = bxl.home.join("packages").join("tools").join("1");
    let changed = store.join("docs").join("Überblick – café ñ.txt");
    let mut text = fs::read_to_string(&changed).expect("read");
    text.push_str("appended by hand\n");
    fs::write(&changed, text).expect("change a store file");
    let json = bxl.json(&args);
    assert_eq!(json["store_intact"], false, "{json}");
    bxl.import(&paths)
        .success()
        .stderr(predicate::str::contains(format!(
            "the copy of tools v1 in the store ({}) is not what was imported",
            store.display()
        )));
    fs::rename(&store, world.dir("aside").join("1")).expect("move it out");
    bxl.import(&paths).success();
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn import_never_removes_store_directories_the_catalog_does_not_know() {
    let (world, cen, bxl) = two_sites();
    let (v1, _) = deliver(&world, &cen, &bxl, &world.package("tools-1", 1), "tools", 1);
    let outs = [world.medium(), world.medium()];
    let package = world.package("tools-2", 2);
    let v2 = cen.create(&package, "tools", 2, "BXL", &[&outs[0], &outs[1]]);
    let paths: Vec<&Path> = v2.volumes.iter().map(PathBuf::as_path).collect();

    // Not the catalog's: v1 moved aside by hand, a version named otherwise
    // than import names it, and a v2 (imported after the catalog's backup
    // was taken, say).
    let store = bxl.home.join("packages").join("tools");
    copy_tree(&store.join("1"), &store.join("1.old"));
    copy_tree(&store.join("1"), &store.join("02"));
    fs::create_dir(store.join("2")).expect("mkdir");
    fs::write(
        store.join("2").join("mine.txt"),
        b"an administrator's file\n",
    )
    .expect("write");
    let before = snapshot(&store);
    let catalog = bxl.json(&["list", "--json"]);
    // Refused before anything is written or recorded, each stray named in a
    // warning (shown under --quiet too); twice, and another import between:
    // nothing of theirs is removed.
    for _ in 0..2 {
        bxl.import(&paths)
            .code(1)
            .stderr(predicate::str::contains(format!(
                "{} already exists in the store, but this site's catalog does not record it; nothing was imported: move that directory out of the store",
                store.join("2").display()
            )))
            .stderr(predicate::str::contains(format!(
                "warning: {} is in the store but not in this site's catalog; it is left alone: move it out of {} (while it is there, that version cannot be imported)",
                store.join("2").display(),
                bxl.home.join("packages").display()
            )))
            .stderr(predicate::str::contains(format!(
                "warning: {} is in the store but not in this site's catalog; it is left alone: move it out of {}\n",
                store.join("1.old").display(),
                bxl.home.join("packages").display()
            )))
            .stderr(predicate::str::contains(store.join("02").display().to_string()));
        assert_eq!(snapshot(&store), before);
        assert_eq!(bxl.json(&["list", "--json"]), catalog);
        let v1_paths: Vec<&Path> = v1.volumes.iter().map(PathBuf::as_path).collect();
        bxl.import(&v1_paths).success();
    }

    // Moved out, v2 imports; the others stay as they were.
    fs::rename(store.join("2"), world.dir("mine").join("2")).expect("move out");
    bxl.import(&paths).success();
    assert_eq!(bxl.status(&v2.parcel_id), "imported");
    bxl.assert_holds("tools", 2, &package);
    assert_eq!(snapshot(&store.join("1.old")), snapshot(&store.join("1")));
    assert_eq!(snapshot(&store.join("02")), snapshot(&store.join("1")));
}

#[test]
fn import_refuses_a_receipt_path_it_could_not_write_before_importing() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let outs = [world.medium(), world.medium()];
    let created = cen.create(&package, "tools", 1, "BXL", &[&outs[0], &outs[1]]);
    let before = bxl.store_state();
    let volume = fs::read(&created.volumes[0]).expect("volume");
    let nowhere = world.dir("mail").join("no-such-dir").join("receipt.txt");
    // An existing file (here the volume being imported) is never written over.
    for bad in [
        nowhere.as_path(),
        world.dir("mail").as_path(),
        created.volumes[0].as_path(),
    ] {
        bxl.run(&[
            "import",
            arg(&outs[0]),
            arg(&outs[1]),
            "--receipt",
            arg(bad),
        ])
        .code(2)
        .stderr(predicate::str::contains(format!(
            "--receipt {}",
            bad.display()
        )))
        .stderr(predicate::str::contains("nothing was imported"));
        assert_eq!(bxl.store_state(), before);
    }
    assert_eq!(fs::read(&created.volumes[0]).expect("volume"), volume);
    let receipt = world.dir("mail").join("receipt.txt");
    bxl.run(&[
        "import",
        arg(&outs[0]),
        arg(&outs[1]),
        "--receipt",
        arg(&receipt),
    ])
    .success();
    assert!(receipt.is_file());
    bxl.assert_holds("tools", 1, &package);

    // The same import again rewrites its own receipt there; another
    // parcel's import does not write over it.
    let again = |outs: &[PathBuf]| {
        let mut cmd = bxl.cmd();
        cmd.arg("import").args(outs).arg("--receipt").arg(&receipt);
        cmd.assert()
    };
    again(&outs).success();
    let first = fs::read(&receipt).expect("receipt");
    let v2 = world.package("tools-v2", 2);
    let outs2 = [world.medium(), world.medium()];
    cen.create(&v2, "tools", 2, "BXL", &[&outs2[0], &outs2[1]]);
    let before = bxl.store_state();
    again(&outs2)
        .code(2)
        .stderr(predicate::str::contains(
            "holds the receipt of another parcel",
        ))
        .stderr(predicate::str::contains("nothing was imported"));
    assert_eq!(bxl.store_state(), before);
    assert_eq!(fs::read(&receipt).expect("receipt"), first);
}

#[test]
fn verify_takes_each_file_once_names_a_cut_volume_in_a_directory_and_refuses_a_fifo() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let outs = [world.medium(), world.medium()];
    let created = cen.create(&package, "tools", 1, "BXL", &[&outs[0], &outs[1]]);
    // One volume given by two paths, and again inside its directory.
    let first = volume(&created, 1);
    let again = first
        .parent()
        .expect("dir")
        .join(".")
        .join(first.file_name().expect("name"));
    let linked = world.dir("linked").join("volume.tar");
    fs::hard_link(first, &linked).expect("hard link");
    bxl.run(&[
        "verify",
        arg(&outs[0]),
        arg(&outs[1]),
        arg(first),
        arg(&again),
        arg(&linked),
    ])
    .success();
    // A split archive that is no parcel's, beside the volumes: not taken in.
    fs::write(outs[0].join("backup.001-of-003.tar"), b"not a volume").expect("write");
    bxl.run(&["verify", arg(&outs[0]), arg(&outs[1])]).success();
    fs::remove_file(outs[0].join("backup.001-of-003.tar")).expect("remove");

    // A volume cut to less than a header, in a directory: named, not skipped.
    let cut = volume(&created, 2);
    let bytes = fs::read(cut).expect("volume");
    fs::write(cut, &bytes[..100]).expect("cut");
    bxl.run(&["verify", arg(&outs[0]), arg(&outs[1])])
        .code(3)
        .stderr(predicate::str::contains(arg(cut)))
        .stderr(predicate::str::contains(
            "copy it again from the original medium",
        ));
    fs::write(cut, &bytes).expect("restore");

    let fifo = world.dir("odd").join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    bxl.run(&["verify", arg(&fifo)])
        .code(2)
        .stderr(predicate::str::contains(
            "neither a volume file nor a directory",
        ));
}

#[test]
fn create_refuses_an_output_inside_the_package_or_a_package_that_is_no_directory() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let before = snapshot(&package);
    let inside = package.join("media");
    fs::create_dir(&inside).expect("mkdir");
    cen.create_cmd(&package, "tools", 1, "BXL", &[&inside])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is inside the package"));
    fs::remove_dir(&inside).expect("rmdir");
    assert_eq!(snapshot(&package), before);
    let missing = world.dir("elsewhere").join("no-such-package");
    cen.create_cmd(&missing, "tools", 1, "BXL", &[&world.medium()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a directory"));
    // A name that would recolour the terminal is shown escaped.
    let odd = world.dir("odd");
    fs::write(odd.join("esc\u{1b}[31mred"), b"x").expect("odd name");
    let refused = cen
        .create_cmd(&odd, "tools", 1, "BXL", &[&world.medium()])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8_lossy(&refused);
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(stderr.contains("esc\\u{1b}[31mred"), "{stderr:?}");
    // One medium given twice, by its path or through a link: its room
    // would be counted twice.
    let usb = world.medium();
    let alias = world.dir("links").join("usb");
    std::os::unix::fs::symlink(&usb, &alias).expect("symlink");
    for second in [&usb, &alias] {
        cen.create_cmd(&package, "tools", 1, "BXL", &[&usb, second])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "are the same directory; give each medium once",
            ));
    }
    assert_eq!(names_in(&usb), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn show_lists_the_volumes_by_absolute_path_wherever_create_ran() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    let created = cen
        .create_cmd(&package, "tools", 1, "BXL", &[Path::new(".")])
        .current_dir(&out)
        .arg("--json")
        .output()
        .expect("create");
    assert!(created.status.success(), "{created:?}");
    let json: serde_json::Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = json["parcel_id"].as_str().expect("id");
    let shown = cen.json(&["show", id, "--json"]);
    let volumes = shown["volumes"].as_array().expect("volumes");
    assert!(!volumes.is_empty());
    for v in volumes {
        let path = Path::new(v.as_str().expect("path"));
        assert!(path.is_absolute() && path.is_file(), "{}", path.display());
    }
}

#[test]
fn media_holding_two_whole_parcels_are_refused_naming_both_and_each_parcel_alone_verifies() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let outs = [world.medium(), world.medium()];
    let first = cen.create(&package, "tools", 1, "BXL", &[&outs[0], &outs[1]]);
    let second = cen.create(&package, "tools", 2, "BXL", &[&outs[0], &outs[1]]);
    let before = bxl.store_state();
    for command in ["verify", "import"] {
        bxl.run(&[command, arg(&outs[0]), arg(&outs[1])])
            .code(2)
            .stderr(predicate::str::contains("hold 2 whole parcels"))
            .stderr(predicate::str::contains(first.parcel_id.as_str()))
            .stderr(predicate::str::contains(second.parcel_id.as_str()));
    }
    assert_eq!(bxl.store_state(), before);
    for created in [&first, &second] {
        let mut args = vec!["verify"];
        args.extend(created.volumes.iter().map(|v| arg(v)));
        bxl.run(&args).success();
    }
}

#[test]
fn create_warns_when_this_site_already_made_the_version_with_other_content() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let first = cen.create(
        &package,
        "tools",
        1,
        "BXL",
        &[&world.medium(), &world.medium()],
    );
    // The same content again: no warning.
    cen.create_cmd(
        &package,
        "tools",
        1,
        "BXL",
        &[&world.medium(), &world.medium()],
    )
    .assert()
    .success()
    .stderr(predicate::str::contains("other content").not());
    fs::write(package.join("CHANGED"), b"new\n").expect("change");
    cen.create_cmd(
        &package,
        "tools",
        1,
        "BXL",
        &[&world.medium(), &world.medium()],
    )
    .assert()
    .success()
    .stderr(predicate::str::contains(
        "already made tools v1 with other content",
    ))
    .stderr(predicate::str::contains(first.parcel_id.as_str()));
}

#[test]
fn the_default_receipt_never_replaces_another_file_beside_the_volumes() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let outs = [world.medium(), world.medium()];
    let created = cen.create(&package, "tools", 1, "BXL", &[&outs[0], &outs[1]]);
    let name = format!("tools-v1-{}.receipt", &created.parcel_id[..8]);
    let first_dir = created.volumes[0].parent().expect("medium");
    fs::write(first_dir.join(&name), b"notes of the courier\n").expect("write");
    let out = bxl
        .run(&["import", arg(&outs[0]), arg(&outs[1]), "--json"])
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("JSON");
    assert_eq!(
        json["receipt"].as_str().map(PathBuf::from),
        Some(bxl.home.join("receipts").join(&name))
    );
    assert_eq!(
        fs::read(first_dir.join(&name)).expect("kept"),
        b"notes of the courier\n"
    );
}

#[test]
fn volumes_given_by_bare_file_names_get_their_receipt_beside_them() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (medium, other) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 1, "BXL", &[&medium, &other]);
    // The volumes on the medium in the current directory by their bare
    // names, the others by their medium.
    let names = names_in(&medium);
    assert!(!names.is_empty());
    let out = bxl
        .cmd()
        .current_dir(&medium)
        .arg("import")
        .args(&names)
        .arg(&other)
        .arg("--json")
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("JSON");
    let receipt = format!("tools-v1-{}.receipt", &created.parcel_id[..8]);
    assert_eq!(
        json["receipt"].as_str().map(PathBuf::from),
        Some(Path::new(".").join(&receipt)),
        "{json}"
    );
    assert!(medium.join(&receipt).is_file());
    assert_eq!(names_in(&bxl.home.join("receipts")), Vec::<String>::new());
}

#[test]
fn a_receipt_written_on_a_medium_removes_the_temporary_files_of_killed_runs() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (medium, other) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 1, "BXL", &[&medium, &other]);
    let volumes = names_in(&medium);
    // What a run killed while writing its receipt left, an hour ago.
    let stale = medium.join(".parcel-receipt-Xq7Rz2");
    fs::write(&stale, b"parcel-receipt v1\n").expect("stale temporary file");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age it");
    // Not a receipt's temporary file: left alone.
    fs::write(medium.join(".parcel-receipt-notes.txt"), b"mine\n").expect("write");

    bxl.import(&[&medium, &other]).success();

    let mut expected = volumes;
    expected.push(".parcel-receipt-notes.txt".to_owned());
    expected.push(format!("tools-v1-{}.receipt", &created.parcel_id[..8]));
    expected.sort();
    let mut left = names_in(&medium);
    left.sort();
    assert_eq!(left, expected);
}

#[test]
fn a_second_import_reports_the_package_files_and_bytes_as_the_first_did() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let outs = [world.medium(), world.medium()];
    cen.create(&package, "tools", 1, "BXL", &[&outs[0], &outs[1]]);
    let args = ["import", arg(&outs[0]), arg(&outs[1]), "--json"];
    let first = bxl.json(&args);
    let again = bxl.json(&args);
    assert_eq!(again["already_imported"], true, "{again}");
    let (files, bytes) = snapshot(&package)
        .values()
        .filter_map(|node| match node {
            common::Node::File { len, .. } => Some(*len),
            _ => None,
        })
        .fold((0u64, 0u64), |(n, sum), len| (n + 1, sum + len));
    assert!(files > 0 && bytes > 0);
    for json in [&first, &again] {
        assert_eq!(json["files"].as_u64(), Some(files), "{json}");
        assert_eq!(json["bytes"].as_u64(), Some(bytes), "{json}");
    }
}

#[test]
fn a_failed_command_asked_for_json_prints_json() {
    let (world, cen, bxl) = two_sites();
    // An empty directory (a medium not mounted) is a usage error.
    let empty = world.medium();
    let output = bxl.run(&["import", arg(&empty), "--json"]).code(2);
    let json: serde_json::Value =
        serde_json::from_slice(&output.get_output().stdout).expect("JSON on stdout");
    assert_eq!(json["ok"], false);
    assert_eq!(json["exit_code"], 2);
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("is the medium mounted?")),
        "{json}"
    );
    // verify prints its own report; it is the only JSON document.
    let damaged = world.medium();
    fs::write(
        damaged.join("tools-v1-0123abcd.001-of-002.tar"),
        [0u8; 2048],
    )
    .expect("junk volume");
    let output = bxl.run(&["verify", arg(&damaged), "--json"]).code(3);
    let report: serde_json::Value =
        serde_json::from_slice(&output.get_output().stdout).expect("one JSON document");
    assert_eq!(report["ok"], false);
    assert!(report.get("exit_code").is_none(), "{report}");
    drop(cen);
}

#[test]
fn receipt_apply_marks_the_outgoing_parcel_confirmed() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, receipt) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let id = &created.parcel_id;
    cen.run(&["sent", id, "--via", "DHL Express"]).success();
    cen.run(&["receipt", "apply", arg(&receipt)])
        .success()
        .stdout(predicate::str::contains("confirmed"));
    assert_eq!(cen.status(id), "confirmed");
    cen.run(&["receipt", "apply", arg(&receipt)])
        .success()
        .stdout(predicate::str::contains("already confirmed"));
    assert_eq!(cen.status(id), "confirmed");
}

#[test]
fn receipt_apply_of_a_returned_medium_applies_every_receipt_on_it() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (first, receipt1) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (second, receipt2) = deliver(&world, &cen, &bxl, &package, "tools", 2);
    let back = world.dir("back");
    fs::copy(&receipt1, back.join("a.receipt")).expect("copy");
    fs::copy(&receipt2, back.join("b.receipt")).expect("copy");
    let text = fs::read_to_string(&receipt1).expect("receipt");
    let imported = text
        .lines()
        .find(|l| l.starts_with("imported: "))
        .expect("imported line");
    fs::write(
        back.join("c.receipt"),
        text.replace(imported, "imported: 1700000000"),
    )
    .expect("forged receipt");
    fs::write(back.join("notes.txt"), "not a receipt").expect("other file");
    // Another source's receipt on the same medium is passed over.
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let (_, for_lux) = deliver(&world, &lux, &bxl, &package, "gadgets", 1);
    fs::copy(&for_lux, back.join("d.receipt")).expect("copy");
    // Every receipt is tried, each once (a.receipt is given twice: by the
    // directory and by its path); the forged one fails (exit 3) without
    // keeping the others from being applied.
    let a = back.join("a.receipt");
    cen.run(&["receipt", "apply", arg(&back), arg(&a)])
        .code(3)
        .stdout(predicate::str::contains(format!(
            "parcel {} confirmed",
            first.parcel_id
        )))
        .stdout(predicate::str::contains(format!(
            "parcel {} confirmed",
            second.parcel_id
        )))
        .stderr(predicate::str::contains("c.receipt"))
        .stderr(predicate::str::contains("is site LUX's receipt"))
        .stderr(predicate::str::contains(
            "1 of 4 receipts were not applied (see above); the others were",
        ));
    assert_eq!(cen.status(&first.parcel_id), "confirmed");
    assert_eq!(cen.status(&second.parcel_id), "confirmed");
    // With --json, one document says what became of each (exit code kept).
    let again = cen.run(&["receipt", "apply", arg(&back), "--json"]).code(3);
    let json: serde_json::Value =
        serde_json::from_slice(&again.get_output().stdout).expect("one JSON document");
    assert_eq!(json["ok"], false);
    let results: Vec<(String, String)> = json["receipts"]
        .as_array()
        .expect("receipts")
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap_or_default();
            let name = Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            (
                name.unwrap_or_default(),
                r["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("a.receipt", "already confirmed"),
        ("b.receipt", "already confirmed"),
        ("c.receipt", "not applied"),
        ("d.receipt", "passed over"),
    ]
    .iter()
    .map(|(f, r)| (f.to_string(), r.to_string()))
    .collect();
    assert_eq!(results, expected, "{json}");
    assert_eq!(json["receipts"][0]["parcel_id"], first.parcel_id.as_str());
    assert_eq!(json["receipts"][2]["exit_code"], 3);
    assert_eq!(json["exit_code"], 3);
    // One receipt that fails is listed too.
    let one = cen
        .run(&["receipt", "apply", arg(&back.join("c.receipt")), "--json"])
        .code(3);
    let json: serde_json::Value =
        serde_json::from_slice(&one.get_output().stdout).expect("one JSON document");
    assert_eq!(json["receipts"][0]["result"], "not applied", "{json}");
    assert_eq!(json["exit_code"], 3);
    // A medium holding only another site's receipt confirms nothing here:
    // refused (exit 4), not a success a script would count.
    let theirs = world.dir("theirs");
    fs::copy(&for_lux, theirs.join("d.receipt")).expect("copy");
    cen.run(&["receipt", "apply", arg(&theirs)])
        .code(4)
        .stderr(predicate::str::contains("is site LUX's receipt"))
        .stderr(predicate::str::contains(
            "no receipt given is for a parcel of this site (CEN); they are site LUX's: apply them there",
        ));
    // A directory without a receipt is a usage error.
    let empty = world.dir("empty");
    cen.run(&["receipt", "apply", arg(&empty)])
        .code(2)
        .stderr(predicate::str::contains("holds no receipt"));
}

#[test]
fn sent_to_a_revoked_destination_and_a_missing_store_copy_are_warned_of() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, _) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    cen.run(&["key", "revoke", "BXL"]).success();
    cen.run(&["sent", &created.parcel_id, "--via", "post"])
        .success()
        .stderr(predicate::str::contains(
            "the key of site BXL (this parcel's destination) is revoked here",
        ));
    // At the destination, the store copy moved away by hand.
    bxl.run(&["packages"])
        .success()
        .stderr(predicate::str::contains("missing").not());
    let moved = world.dir("moved").join("1");
    fs::rename(bxl.store("tools", 1), &moved).expect("move the copy away");
    bxl.run(&["packages"])
        .success()
        .stderr(predicate::str::contains(format!(
            "the store copy of tools v1 ({}) is missing: import parcel {} again",
            bxl.store("tools", 1).display(),
            created.parcel_id
        )));
}

#[test]
fn json_output_names_volume_files_whose_names_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    let odd = out1.join(std::ffi::OsStr::from_bytes(b"vol-\xff.tar"));
    fs::rename(&created.volumes[0], &odd).expect("rename");
    let mut paths: Vec<&Path> = vec![&odd];
    paths.extend(created.volumes.iter().skip(1).map(PathBuf::as_path));
    let mut cmd = bxl.cmd();
    cmd.args(["verify", "--json"]).args(&paths);
    let output = cmd.assert().success().get_output().stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&output).expect("JSON");
    assert_eq!(report["ok"], true, "{report}");
    let mut cmd = bxl.cmd();
    cmd.args(["import", "--json"]).args(&paths);
    let output = cmd.assert().success().get_output().stdout.clone();
    let imported: serde_json::Value = serde_json::from_slice(&output).expect("JSON");
    assert_eq!(imported["ok"], true, "{imported}");
}

#[test]
fn receipt_edited_after_signing_is_refused_as_forged() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, receipt) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let text = fs::read_to_string(&receipt).expect("receipt");
    let imported = text
        .lines()
        .find(|l| l.starts_with("imported: "))
        .expect("imported line");
    let forged = world.dir("forger").join("receipt.txt");
    fs::write(&forged, text.replace(imported, "imported: 1700000000")).expect("write");
    cen.run(&["receipt", "apply", arg(&forged)])
        .code(3)
        .stderr(predicate::str::contains("receipt.txt"))
        .stderr(predicate::str::contains("signature"))
        .stderr(predicate::str::contains("ask that site to send it again"));
    assert_eq!(cen.status(&created.parcel_id), "created");
}

#[test]
fn receipt_converted_to_crlf_says_so_and_one_from_a_revoked_key_says_revoked() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, receipt) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let text = fs::read_to_string(&receipt).expect("receipt");
    let mailed = world.dir("mail").join("receipt.txt");
    fs::write(&mailed, text.replace('\n', "\r\n")).expect("write");
    cen.run(&["receipt", "apply", arg(&mailed)])
        .code(3)
        .stderr(predicate::str::contains("CR LF"));
    cen.run(&["key", "revoke", "BXL"]).success();
    cen.run(&["receipt", "apply", arg(&receipt)])
        .code(4)
        .stderr(predicate::str::contains("whose key is revoked here"));
    assert_eq!(cen.status(&created.parcel_id), "created");
}

#[test]
fn receipt_applied_twice_at_once_confirms_once_and_both_succeed() {
    let (world, cen, bxl) = two_sites();
    for version in 1..=4 {
        let package = world.package(&format!("tools-{version}"), version);
        let (created, receipt) = deliver(&world, &cen, &bxl, &package, "tools", version);
        let apply = || {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("parcel"))
                .env_remove("PARCEL_HOME")
                .arg("--home")
                .arg(&cen.home)
                .args(["--quiet", "receipt", "apply", arg(&receipt)])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        };
        let (mut a, mut b) = (apply(), apply());
        assert!(a.wait().expect("wait").success() && b.wait().expect("wait").success());
        assert_eq!(cen.status(&created.parcel_id), "confirmed");
        let history = cen.json(&["show", &created.parcel_id, "--json"])["history"].clone();
        let confirmed = history
            .as_array()
            .expect("history")
            .iter()
            .filter(|e| e["status"] == "confirmed")
            .count();
        assert_eq!(confirmed, 1, "{history}");
    }
}

#[test]
fn receipt_for_a_parcel_this_site_did_not_send_is_refused() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    let (created, receipt) = deliver(&world, &lux, &bxl, &package, "tools", 1);
    let before = cen.json(&["list", "--json"]);
    cen.run(&["receipt", "apply", arg(&receipt)])
        .code(4)
        .stderr(predicate::str::contains(&created.parcel_id))
        // Applied at the wrong site: it says where it belongs.
        .stderr(predicate::str::contains(
            "which site LUX sent to site BXL; apply it at site LUX",
        ));
    assert_eq!(cen.json(&["list", "--json"]), before);
}

#[test]
fn sent_warns_about_a_parcel_never_read_back() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let (medium_a, medium_b) = (world.medium(), world.medium());
    let output = cen
        .create_cmd(&package, "tools", 1, "BXL", &[&medium_a, &medium_b])
        .args([
            "--no-verify",
            "--medium-size",
            common::MEDIUM_SIZE,
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&output).expect("create --json");
    let id = json["parcel_id"].as_str().expect("parcel id");
    cen.run(&["sent", id, "--via", "DHL"])
        .success()
        .stderr(predicate::str::contains(
            "was never read back from its media",
        ))
        .stderr(predicate::str::contains(format!(
            "run `parcel --home {} verify` on its media",
            cen.home.display()
        )));
    assert_eq!(cen.status(id), "sent");
}

#[test]
fn sent_moves_created_to_sent_once_and_never_backward() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (created, receipt) = deliver(&world, &cen, &bxl, &package, "tools", 1);
    let id = &created.parcel_id;
    assert_eq!(cen.status(id), "created");
    let marked = cen
        .run(&["sent", id, "--via", "DHL", "--tracking", "JD0001", "--json"])
        .success()
        .stderr(predicate::str::contains("never read back").not());
    let json: serde_json::Value =
        serde_json::from_slice(&marked.get_output().stdout).expect("JSON");
    assert_eq!(json["parcel_id"], id.as_str());
    assert_eq!(json["status"], "sent");
    assert_eq!(json["tracking"], "JD0001");
    assert_eq!(cen.status(id), "sent");
    // Refused with --json: the error as JSON, the exit code kept.
    let refused = cen.run(&["sent", id, "--via", "DHL", "--json"]).code(4);
    let json: serde_json::Value =
        serde_json::from_slice(&refused.get_output().stdout).expect("JSON");
    assert_eq!(json["ok"], false);
    cen.run(&["sent", id, "--via", "DHL"])
        .code(4)
        .stderr(predicate::str::contains(id.as_str()))
        .stderr(predicate::str::contains("already marked sent"));
    assert_eq!(cen.status(id), "sent");

    cen.run(&["receipt", "apply", arg(&receipt)]).success();
    assert_eq!(cen.status(id), "confirmed");
    cen.run(&["sent", id, "--via", "UPS"])
        .code(4)
        .stderr(predicate::str::contains("already confirmed by its receipt"));
    assert_eq!(cen.status(id), "confirmed");
    // Not a parcel id, or no carrier: usage errors, nothing changes.
    for bad in ["zz", "", "89", &"a".repeat(33)] {
        cen.run(&["show", bad])
            .code(2)
            .stderr(predicate::str::contains("a parcel id is 32 hex digits"));
    }
    cen.run(&["sent", id, "--via", " "]).code(2);
    let history = cen.json(&["show", id, "--json"])["history"].clone();
    let statuses: Vec<&str> = history
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    // Created, then the read-back noted under the same status.
    assert_eq!(
        statuses,
        ["created", "created", "sent", "confirmed"],
        "{history}"
    );
    assert_eq!(
        history[1]["detail"], "read back from the media and verified",
        "{history}"
    );
}

#[test]
fn forward_refuses_a_package_whose_signer_was_revoked_since() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site_with("LUX", &["--parent", "BXL"]);
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    bxl.run(&["key", "revoke", "CEN"]).success();
    let out = world.medium();
    let forward = || {
        bxl.run(&[
            "forward",
            "--package-id",
            "tools",
            "--to",
            "LUX",
            "--out",
            arg(&out),
        ])
    };
    let refused = "site CEN sent it here, and the key it had then was revoked here on";
    forward().code(4).stderr(predicate::str::contains(refused));
    assert_eq!(names_in(&out), Vec::<String>::new());
    // CEN's new key trusted: what the revoked one signed stays refused.
    let elsewhere = World::new();
    let new_cen = elsewhere.site("CEN");
    let file = world.dir("mail").join("new-CEN.pub");
    new_cen
        .run(&["key", "export", "--out", arg(&file)])
        .success();
    let fingerprint = fs::read_to_string(&file)
        .expect("key file")
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: ").map(str::to_owned))
        .expect("fingerprint");
    bxl.run(&["key", "trust", arg(&file), "--fingerprint", &fingerprint])
        .success();
    forward().code(4).stderr(predicate::str::contains(refused));
    assert_eq!(names_in(&out), Vec::<String>::new());
}

#[test]
fn forward_sends_an_imported_package_on_with_its_origin_site() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);

    let out = world.medium();
    let forwarded = bxl.json(&[
        "forward",
        "--package-id",
        "tools",
        "--to",
        "LUX",
        "--out",
        arg(&out),
        "--volume-size",
        common::VOLUME_SIZE,
        "--json",
    ]);
    let id = forwarded["parcel_id"].as_str().expect("parcel_id");
    let shown = bxl.json(&["show", id, "--json"]);
    assert_eq!(shown["origin_site"], "CEN");
    assert_eq!(shown["source_site"], "BXL");

    // LUX trusts BXL only, never CEN. It has no parent: a relay is taken
    // only when it names the site it takes it from.
    let before = lux.store_state();
    lux.run(&["import", arg(&out)])
        .code(4)
        .stderr(predicate::str::contains(
            "site BXL relays package tools of site CEN, and this site has no parent to take other sites' packages from; nothing was imported",
        ))
        .stderr(predicate::str::contains("import with --relayed-by BXL"));
    assert_eq!(lux.store_state(), before);
    lux.run(&["import", arg(&out), "--relayed-by", "BXL"])
        .success();
    let packages = lux.json(&["packages", "--json"]);
    assert_eq!(packages.as_array().map(Vec::len), Some(1), "{packages}");
    assert_eq!(packages[0]["package_id"], "tools");
    assert_eq!(packages[0]["version"], 1);
    assert_eq!(packages[0]["origin_site"], "CEN");
    assert_eq!(packages[0]["source_site"], "BXL");
    lux.assert_holds("tools", 1, &package);

    // Never back to where it came from: LUX got it from BXL, made at CEN.
    cen.trust(&lux);
    lux.trust(&cen);
    for (to, why) in [("BXL", "BXL sent it here"), ("CEN", "CEN made it")] {
        let out = world.medium();
        lux.run(&[
            "forward",
            "--package-id",
            "tools",
            "--to",
            to,
            "--out",
            arg(&out),
        ])
        .code(4)
        .stderr(predicate::str::contains(why));
        assert_eq!(common::names_in(&out), Vec::<String>::new());
    }
}

#[test]
fn forward_refuses_a_store_copy_changed_or_gone_since_its_import() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let forward = |out: &Path| {
        let mut cmd = bxl.cmd();
        cmd.args(["forward", "--package-id", "tools", "--to", "LUX", "--out"])
            .arg(out)
            .args(["--volume-size", common::VOLUME_SIZE]);
        cmd
    };

    // A file changed in the store: refused, nothing left on the medium.
    let stored = bxl.store("tools", 1);
    let readme = fs::read_dir(&stored)
        .expect("store")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_file())
        .expect("a file in the store");
    let original = fs::read(&readme).expect("read");
    fs::write(&readme, b"tampered\n").expect("tamper");
    let out = world.medium();
    forward(&out)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("changed since it was imported"));
    assert_eq!(names_in(&out), Vec::<String>::new());
    assert_eq!(
        bxl.json(&["list", "--outgoing", "--json"]),
        serde_json::json!([])
    );
    fs::write(&readme, &original).expect("restore");

    // Volumes are never written into the site home (its store included).
    for inside in [bxl.home.clone(), bxl.home.join("packages")] {
        forward(&inside)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is inside the site home"));
    }

    // The store copy gone: says to import it again.
    fs::rename(&stored, world.dir("away").join("1")).expect("move");
    forward(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is missing; import its parcel again",
        ));
    assert_eq!(names_in(&out), Vec::<String>::new());
}

#[test]
fn a_version_beyond_what_the_catalog_holds_or_repair_with_options_it_ignores_is_a_usage_error() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    cen.create_cmd(&package, "tools", 9_223_372_036_854_775_808, "BXL", &[&out])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a version is a whole number"));
    let request = world.dir("mail").join("request.txt");
    fs::write(&request, "parcel-repair-request v1\n").expect("write");
    let other = world.medium();
    for extra in [
        &["--encrypt"][..],
        &["--comment", "x"],
        &["--level", "9"],
        &["--no-verify"],
        &["--out", arg(&other)],
    ] {
        let mut args = vec![
            "create",
            "--repair",
            arg(&request),
            "--package",
            arg(&package),
            "--out",
            arg(&out),
        ];
        args.extend_from_slice(extra);
        cen.run(&args).code(2).stderr(
            predicate::str::contains("cannot be used with")
                .or(predicate::str::contains("give only one")),
        );
    }
    assert_eq!(names_in(&out), Vec::<String>::new());
}

#[test]
fn create_refuses_a_destination_this_site_does_not_trust() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create_cmd(&package, "tools", 1, "LUX", &[&out1, &out2])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("LUX"))
        .stderr(predicate::str::contains("not a trusted site"));
    assert_eq!(names_in(&out1), Vec::<String>::new());
    assert_eq!(names_in(&out2), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn create_with_a_comment_over_the_cap_is_a_usage_error_that_writes_nothing() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    let long = "x".repeat(4097);
    cen.create_cmd(&package, "tools", 1, "BXL", &[&out])
        .args(["--comment", &long])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--comment is at most 4096 bytes; this one is 4097",
        ));
    assert_eq!(names_in(&out), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn create_refuses_media_too_small_and_writes_nothing() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 1);

    // Found before writing: two media of one volume each cannot hold it.
    let (out1, out2) = (world.medium(), world.medium());
    cen.create_cmd(&package, "tools", 1, "BXL", &[&out1, &out2])
        .args(["--medium-size", "64KiB"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not enough space"))
        .stderr(predicate::str::contains(format!(
            "not enough space on {}, {}:",
            out1.display(),
            out2.display()
        )))
        .stderr(predicate::str::contains(
            "128.0 KiB available on the 2 --out media together",
        ));
    assert_eq!(names_in(&out1), Vec::<String>::new());
    assert_eq!(names_in(&out2), Vec::<String>::new());

    // Found while writing, the space check skipped: the volumes written so
    // far are removed, temporaries included.
    let (out1, out2) = (world.medium(), world.medium());
    cen.create_cmd(&package, "tools", 1, "BXL", &[&out1, &out2])
        .args(["--medium-size", "64KiB", "--no-space-check"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(format!(
            "parcel: error: not enough space on {}, {}:",
            out1.display(),
            out2.display()
        )))
        .stderr(predicate::str::contains(
            "128.0 KiB available on the 2 --out media together; the media filled while the volumes were written, and they were removed",
        ));
    assert_eq!(names_in(&out1), Vec::<String>::new());
    assert_eq!(names_in(&out2), Vec::<String>::new());

    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn a_parcel_larger_than_one_medium_is_cut_into_volumes_that_fit_the_media() {
    let (world, cen, bxl) = two_sites();
    let package = world.dir("blobs");
    for i in 0..3u64 {
        fs::write(package.join(format!("blob{i}")), random_bytes(i, 100_000)).expect("write");
    }
    // Four media of 128 KiB, the default volume size (dvd) far larger: the
    // volumes are cut to the media (they were as large as the parcel, and
    // no medium could take one).
    let outs: Vec<PathBuf> = (0..4).map(|_| world.medium()).collect();
    let out_refs: Vec<&Path> = outs.iter().map(PathBuf::as_path).collect();
    cen.create_cmd(&package, "blobs", 1, "BXL", &out_refs)
        .args(["--medium-size", "128KiB"])
        .assert()
        .success();
    let mut volumes = 0;
    for out in &outs {
        let used: u64 = names_in(out)
            .iter()
            .map(|n| fs::metadata(out.join(n)).expect("volume").len())
            .sum();
        assert!(used <= 128 << 10, "{} holds {used} bytes", out.display());
        volumes += names_in(out).len();
    }
    assert!(volumes >= 3, "{volumes} volumes");
    bxl.import(&out_refs).success();
    bxl.assert_holds("blobs", 1, &package);
}

#[test]
fn a_path_that_does_not_exist_is_a_usage_error() {
    let (world, _cen, bxl) = two_sites();
    let nowhere = world.dir("media").join("usb9");
    for command in ["verify", "import"] {
        bxl.run(&[command, arg(&nowhere)])
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{} does not exist; give the volume files or the directories that hold them",
                nowhere.display()
            )));
    }
    let mail = world.dir("mail");
    let (package, out) = (world.package("tools", 1), world.medium());
    for args in [
        vec!["key", "trust", "NOR.pub"],
        vec!["receipt", "apply", "receipt.txt"],
        vec![
            "create",
            "--repair",
            "request.txt",
            "--package",
            arg(&package),
            "--out",
            arg(&out),
        ],
    ] {
        bxl.cmd()
            .current_dir(&mail)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("does not exist; give the"));
    }
}

#[test]
fn an_import_that_cannot_reach_the_store_extracts_nothing_and_leaves_nothing() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    let staging = bxl.home.join("staging");
    let staged = || {
        fs::read_dir(&staging)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    };

    // The package's place in the store taken by a file: found only at the
    // switch, after extraction; the staged copy goes at once.
    let packages = bxl.home.join("packages");
    fs::create_dir_all(&packages).expect("packages");
    fs::write(packages.join("tools"), b"not a directory").expect("file");
    bxl.import(&[&out1, &out2])
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot create {}",
            packages.join("tools").display()
        )));
    assert_eq!(staged(), Vec::<std::ffi::OsString>::new());
    fs::remove_file(packages.join("tools")).expect("remove");

    // The store on another file system than staging (a RAM disk, if this
    // machine has one apart from the test's): refused before extracting.
    let shm = Path::new("/dev/shm");
    let device = |p: &Path| std::os::unix::fs::MetadataExt::dev(&fs::metadata(p).expect("meta"));
    if shm.is_dir() && device(shm) != device(&bxl.home) {
        let elsewhere = tempfile::tempdir_in(shm).expect("tempdir in /dev/shm");
        fs::remove_dir(&packages).expect("rmdir");
        std::os::unix::fs::symlink(elsewhere.path(), &packages).expect("symlink");
        bxl.import(&[&out1, &out2])
            .code(1)
            .stderr(predicate::str::contains(
                "is on another file system than the staging directory",
            ))
            .stderr(predicate::str::contains("nothing was imported"));
        assert_eq!(staged(), Vec::<std::ffi::OsString>::new());
        assert!(fs::read_dir(elsewhere.path())
            .expect("list")
            .next()
            .is_none());
        fs::remove_file(&packages).expect("unlink");
    }
    bxl.import(&[&out1, &out2]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn an_import_whose_paths_would_be_too_long_in_this_store_is_refused_before_extracting() {
    let (world, cen, bxl) = two_sites();
    // 20 directories of 200 bytes and a file: a 4,060-byte path, within the
    // format's 4,096, but over the system's limit under any home. Made by a
    // shell walking down (an absolute path that long cannot be opened).
    let package = world.dir("deep");
    if package.as_os_str().len() > 40 {
        // Under a long TMPDIR the package itself would be out of reach.
        eprintln!("skipped: the temporary directory's path is too long for this test");
        return;
    }
    let dir = "d".repeat(200);
    let script = format!(
        "for i in $(seq 20); do mkdir {dir} && cd {dir} || exit 1; done; echo deep > {}",
        "f".repeat(40)
    );
    let made = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(&package)
        .status()
        .expect("sh");
    assert!(made.success());
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "deep", 1, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(1)
        .stderr(predicate::str::contains("it is 4060 bytes"))
        .stderr(predicate::str::contains(
            "over the system's limit of 4095; nothing was imported",
        ))
        .stderr(predicate::str::contains(
            "no home on this system can hold it",
        ));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn import_refuses_a_parcel_for_another_site() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    cen.trust(&lux);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "tools", 2, "LUX", &[&out1, &out2]);
    // Verify finds it intact, and says it is not for here, --quiet or not.
    let verified = bxl
        .cmd()
        .args(["verify", arg(&out1), arg(&out2), "--json"])
        .output()
        .expect("verify");
    assert!(verified.status.success());
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(
        stderr.contains(
            "warning: it is addressed to site LUX, not to this site (BXL): only that site can import it"
        ),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&verified.stdout).expect("verify --json");
    assert_eq!(json["destinations"], serde_json::json!(["LUX"]));
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains("addressed to LUX"));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn import_refuses_a_parcel_signed_by_an_untrusted_key() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    lux.trust(&bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    lux.create(&package, "tools", 2, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    let refused = bxl
        .import(&[&out1, &out2])
        .code(3)
        .stderr(predicate::str::contains("untrusted key"))
        .stderr(predicate::str::contains("it says it comes from site LUX"));
    // One line for the key, whatever the number of volumes it signed.
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    let volumes = names_in(&out1).len() + names_in(&out2).len();
    assert!(volumes >= 2, "{volumes}");
    assert_eq!(
        stderr.matches("signed by an untrusted key").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "[and {} more volume(s) given, signed by that key]",
            volumes - 1
        )),
        "{stderr}"
    );
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn volumes_one_directory_down_are_pointed_to_not_searched() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let medium = world.medium();
    let (sub1, sub2) = (medium.join("part1"), medium.join("part2"));
    fs::create_dir(&sub1).expect("mkdir");
    fs::create_dir(&sub2).expect("mkdir");
    cen.create(&package, "tools", 1, "BXL", &[&sub1, &sub2]);
    let refused = bxl.run(&["verify", arg(&medium)]).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("no parcel volume in {} (", medium.display())),
        "{stderr}"
    );
    for sub in [&sub1, &sub2] {
        assert!(stderr.contains(&sub.display().to_string()), "{stderr}");
    }
    assert!(
        stderr.contains("hold volume files: give those directories; directories are not searched below their own level"),
        "{stderr}"
    );
    bxl.run(&["verify", arg(&sub1), arg(&sub2)]).success();
}

#[test]
fn a_parcel_from_a_trusted_site_code_under_another_key_is_named_as_such() {
    let (world, _cen, bxl) = two_sites();
    // Another "CEN" (a reinstalled machine, or an impostor) with a new key.
    let elsewhere = World::new();
    let other_cen = elsewhere.site("CEN");
    other_cen.trust(&bxl);
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    other_cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    for command in ["verify", "import"] {
        bxl.run(&[command, arg(&out1), arg(&out2)])
            .code(3)
            .stderr(predicate::str::contains(
                "it says it comes from site CEN, but it is signed with a key this site does not trust for CEN",
            ))
            .stderr(predicate::str::contains("Do not import it"))
            // And which files, as every other failure lists them.
            .stderr(predicate::str::contains(arg(&out1)));
    }
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn import_refuses_a_parcel_signed_by_a_revoked_key() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "tools", 2, "BXL", &[&out1, &out2]);
    bxl.run(&["key", "revoke", "CEN"]).success();
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains("revoked key of site CEN"));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn import_refuses_an_older_version_than_the_store_holds() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 2);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains("rollback refused"))
        .stderr(predicate::str::contains(
            "ask the sender for a newer version",
        ));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn a_site_with_a_parent_takes_packages_of_other_sites_only_from_it() {
    // CEN publishes `tools`; BXL is NOR's parent and forwards it; ANT, also
    // trusted by NOR, holds it too. Whose package a parcel carries is its
    // signer's claim: a relaying site other than the parent could push any
    // "version" of CEN's package.
    let (world, cen, bxl) = two_sites();
    let nor = world.site_with("NOR", &["--parent", "BXL"]);
    let ant = world.site("ANT");
    exchange_keys(&bxl, &nor);
    exchange_keys(&cen, &ant);
    exchange_keys(&ant, &nor);
    deliver(&world, &cen, &bxl, &world.package("tools", 1), "tools", 1);
    deliver(&world, &cen, &ant, &world.package("tools-2", 2), "tools", 2);
    let forward = |from: &Site| {
        let out = world.medium();
        from.run(&[
            "forward",
            "--package-id",
            "tools",
            "--to",
            "NOR",
            "--out",
            arg(&out),
        ])
        .success();
        out
    };
    let from_ant = forward(&ant);
    let before = nor.store_state();
    nor.import(&[&from_ant])
        .code(4)
        .stderr(predicate::str::contains(
            "site ANT relays package tools of site CEN, but this site takes packages of other sites only from its parent, BXL",
        ))
        .stderr(predicate::str::contains("--relayed-by ANT"));
    assert_eq!(nor.store_state(), before);
    nor.run(&["import", arg(&from_ant), "--relayed-by", "LUX"])
        .code(2)
        .stderr(predicate::str::contains("relayed by site ANT"));
    assert_eq!(nor.store_state(), before);
    // From the parent, a relayed package is taken as ever.
    nor.import(&[&forward(&bxl)]).success();
    // A package of the relaying site's own is not a relay.
    let own = [world.medium(), world.medium()];
    ant.create(
        &world.package("ant-tools", 3),
        "ant-tools",
        1,
        "NOR",
        &[&own[0], &own[1]],
    );
    nor.import(&[&own[0], &own[1]]).success();
    // Told, NOR takes ANT's relay.
    nor.run(&["import", arg(&from_ant), "--relayed-by", "ANT"])
        .success();
    let packages = nor.json(&["packages", "--json"]);
    let held: Vec<(&str, u64, &str)> = packages
        .as_array()
        .expect("list")
        .iter()
        .map(|p| {
            (
                p["package_id"].as_str().expect("id"),
                p["version"].as_u64().expect("version"),
                p["source_site"].as_str().expect("source"),
            )
        })
        .collect();
    assert!(held.contains(&("tools", 1, "BXL")), "{held:?}");
    assert!(held.contains(&("tools", 2, "ANT")), "{held:?}");
    assert!(held.contains(&("ant-tools", 1, "ANT")), "{held:?}");
}

#[test]
fn import_refuses_a_package_id_another_origin_brings_unless_told_its_new_origin() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    // A trusted site (compromised, or mistaken) sends CEN's package id
    // under a version above CEN's.
    let (out1, out2) = (world.medium(), world.medium());
    let other = world.package("tools-lux", 2);
    lux.create(&other, "tools", 99, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains(
            "the store holds tools from site CEN (v1",
        ))
        .stderr(predicate::str::contains(
            "brings a package of that id from site LUX",
        ))
        .stderr(predicate::str::contains("--new-origin LUX"));
    assert_eq!(bxl.store_state(), before);
    // Naming another site is a usage error, and changes nothing either.
    bxl.run(&["import", arg(&out1), arg(&out2), "--new-origin", "ANT"])
        .code(2)
        .stderr(predicate::str::contains("comes from site LUX"));
    assert_eq!(bxl.store_state(), before);
    // CEN's next version still goes in as before.
    deliver(&world, &cen, &bxl, &package, "tools", 2);
    // Told, the administrator hands the package over to LUX.
    bxl.run(&["import", arg(&out1), arg(&out2), "--new-origin", "LUX"])
        .success();
    bxl.assert_holds("tools", 99, &other);
    let packages = bxl.json(&["packages", "--json"]);
    let origins: Vec<(u64, &str)> = packages
        .as_array()
        .expect("package list")
        .iter()
        .map(|p| {
            (
                p["version"].as_u64().expect("version"),
                p["origin_site"].as_str().expect("origin"),
            )
        })
        .collect();
    assert!(origins.contains(&(99, "LUX")), "{origins:?}");
    // And from then on CEN is the other origin.
    let (out3, out4) = (world.medium(), world.medium());
    cen.create(&package, "tools", 100, "BXL", &[&out3, &out4]);
    bxl.import(&[&out3, &out4])
        .code(4)
        .stderr(predicate::str::contains(
            "the store holds tools from site LUX",
        ));
}

#[test]
fn new_origin_hands_over_a_version_already_in_the_store_with_the_same_content() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    exchange_keys(&lux, &bxl);
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    lux.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains(
            "the store holds tools from site CEN",
        ));
    let imported = bxl.json(&[
        "import",
        arg(&out1),
        arg(&out2),
        "--new-origin",
        "LUX",
        "--json",
    ]);
    assert_eq!(imported["already_in_store"], true, "{imported}");
    // The package's, though this import wrote none of them.
    assert!(
        imported["files"].as_u64().is_some_and(|n| n > 0),
        "{imported}"
    );
    assert_eq!(imported["origin_handed_over_from"], "CEN", "{imported}");
    let packages = bxl.json(&["packages", "--json"]);
    assert_eq!(packages[0]["origin_site"], "LUX", "{packages}");
    // LUX's next version goes in without the option, and CEN's no longer.
    deliver(&world, &lux, &bxl, &package, "tools", 2);
    let (out3, out4) = (world.medium(), world.medium());
    cen.create(&package, "tools", 3, "BXL", &[&out3, &out4]);
    bxl.import(&[&out3, &out4])
        .code(4)
        .stderr(predicate::str::contains(
            "the store holds tools from site LUX",
        ));
}

#[test]
fn create_warns_before_writing_a_version_older_than_the_destination_confirmed() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (_, receipt) = deliver(&world, &cen, &bxl, &package, "tools", 2);
    // Unconfirmed, nothing is known of the destination's store yet.
    let out = world.medium();
    cen.create_cmd(&package, "tools", 1, "BXL", &[&out])
        .assert()
        .success()
        .stderr(predicate::str::contains("rollback").not());
    cen.run(&["receipt", "apply", arg(&receipt)]).success();
    let out = world.medium();
    cen.create_cmd(&package, "tools", 1, "BXL", &[&out])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "site BXL confirmed tools v2 already",
        ))
        .stderr(predicate::str::contains(
            "refuses this parcel as a rollback",
        ));
}

#[test]
fn import_refuses_the_same_version_with_other_content() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let changed = world.package("tools-changed", 2);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&changed, "tools", 1, "BXL", &[&out1, &out2]);
    let before = bxl.store_state();
    bxl.import(&[&out1, &out2])
        .code(4)
        .stderr(predicate::str::contains("other content"));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn verify_and_import_refuse_a_corrupted_volume_naming_it() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 2, "BXL", &[&out1, &out2]);
    let damaged = volume(&created, 2);
    let mut bytes = fs::read(damaged).expect("volume");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(damaged, bytes).expect("write");

    let before = bxl.store_state();
    bxl.run(&["verify", arg(&out1), arg(&out2)])
        .code(3)
        .stderr(predicate::str::contains(file_name(damaged)))
        .stderr(predicate::str::contains("volume 2"));
    bxl.import(&[&out1, &out2])
        .code(3)
        .stderr(predicate::str::contains(file_name(damaged)))
        .stderr(predicate::str::contains("volume 2"));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn verify_and_import_report_a_missing_volume() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    deliver(&world, &cen, &bxl, &package, "tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 2, "BXL", &[&out1, &out2]);
    let count = created.volumes.len();
    let aside = world.dir("aside");

    let before = bxl.store_state();
    for n in [1, 2, count] {
        let missing = volume(&created, n);
        let moved = aside.join(file_name(missing));
        fs::rename(missing, &moved).expect("take volume out");
        let message = format!("volume {n} of {count} is missing");
        let output = bxl
            .run(&["verify", arg(&out1), arg(&out2)])
            .code(3)
            .stderr(predicate::str::contains(message.as_str()))
            .get_output()
            .clone();
        // The chunks it held are one line, not one each.
        let stderr = String::from_utf8_lossy(&output.stderr);
        if n == 2 {
            assert_eq!(
                stderr
                    .matches("chunk(s) of volume 2 cannot be read")
                    .count(),
                1,
                "{stderr}"
            );
        }
        assert!(!stderr.contains("is unavailable"), "{stderr}");
        if n == 2 {
            // And what to do if the medium is lost for good.
            bxl.import(&[&out1, &out2])
                .code(3)
                .stderr(predicate::str::contains(message.as_str()))
                .stderr(predicate::str::contains(
                    "if that medium is lost, `parcel verify --repair-request FILE`",
                ));
        }
        fs::rename(&moved, missing).expect("put volume back");
    }
    assert_eq!(bxl.store_state(), before);
    bxl.import(&[&out1, &out2]).success();
}

#[test]
fn two_imports_of_one_parcel_at_once_import_it_exactly_once() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    // Both processes start together; the home's lock lets one import while
    // the other waits, then finds the parcel imported.
    let spawn = || {
        bxl.cmd()
            .args(["import", arg(&out1), arg(&out2)])
            .output()
            .expect("run parcel import")
    };
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().expect("join"), b.join().expect("join"))
    });
    assert!(first.status.success(), "{first:?}");
    assert!(second.status.success(), "{second:?}");
    let said: Vec<String> = [&first, &second]
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert_eq!(
        said.iter()
            .filter(|s| s.contains("already imported; nothing to do"))
            .count(),
        1,
        "exactly one of the two imports is the no-op: {said:?}"
    );
    bxl.assert_holds("tools", 1, &package);
    let packages = bxl.json(&["packages", "--json"]);
    assert_eq!(packages.as_array().map(Vec::len), Some(1), "{packages}");
}

#[test]
fn verify_media_checks_every_byte_and_names_the_damaged_pack() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let (out1, out2) = (world.medium(), world.medium());
    let created = cen.create(&package, "tools", 1, "BXL", &[&out1, &out2]);
    bxl.run(&["verify", "--media", arg(&out1), arg(&out2)])
        .success()
        .stdout(predicate::str::contains(
            "every byte matches the signed hashes",
        ));

    // A byte inside the first pack of volume 1 (the tar entry after the
    // 1,024-byte volume header and the pack's own 512-byte tar header).
    let damaged = volume(&created, 1);
    let mut bytes = fs::read(damaged).expect("volume");
    bytes[1024 + 512 + 100] ^= 0x01;
    fs::write(damaged, bytes).expect("write");
    bxl.run(&["verify", "--media", arg(&out1), arg(&out2)])
        .code(3)
        .stderr(predicate::str::contains(file_name(damaged)))
        .stderr(predicate::str::contains("pack 0 is corrupt"));
}
