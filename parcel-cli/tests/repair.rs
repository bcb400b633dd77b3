//! Repair data through the command line (FORMAT.md §13): `create --parity`
//! writes parity volumes; `verify` and `import` rebuild any one lost volume
//! (the one holding the index included) or damaged blocks within the parity,
//! say what they repaired, and refuse damage beyond it, saying what it
//! needed, with the store left as it was.

#[allow(dead_code)] // each test crate uses part of the shared fixtures
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;

use common::{arg, package_view, snapshot, two_sites, Site};

/// A parcel written with `--parity`: its data and parity volumes.
struct ParityParcel {
    volumes: Vec<PathBuf>,
    parity: Vec<PathBuf>,
}

fn paths(json: &serde_json::Value, key: &str) -> Vec<PathBuf> {
    json[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {json}"))
        .iter()
        .map(|v| PathBuf::from(v.as_str().expect("path")))
        .collect()
}

/// CEN writes `package` as `tools` v`version` for BXL with `percent` parity,
/// all volumes in `out`.
fn create_with_parity(
    cen: &Site,
    package: &Path,
    version: u64,
    percent: &str,
    out: &Path,
) -> ParityParcel {
    create_with(cen, package, version, out, &["--parity", percent])
}

/// CEN writes `package` as `tools` v`version` for BXL with the options
/// `args` (which ask for parity), all volumes in `out`.
fn create_with(
    cen: &Site,
    package: &Path,
    version: u64,
    out: &Path,
    args: &[&str],
) -> ParityParcel {
    create_onto(cen, package, version, &[out], args)
}

/// Like [`create_with`], onto the media `outs` in turn.
fn create_onto(
    cen: &Site,
    package: &Path,
    version: u64,
    outs: &[&Path],
    args: &[&str],
) -> ParityParcel {
    let stdout = cen
        .create_cmd(package, "tools", version, "BXL", outs)
        .args(args)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&stdout).expect("create --json");
    ParityParcel {
        volumes: paths(&json, "volumes"),
        parity: paths(&json, "parity_volumes"),
    }
}

#[test]
fn parity_volumes_go_on_the_next_medium_and_rebuild_a_lost_first_medium() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 3);
    let (usb1, usb2) = (world.medium(), world.medium());
    let ParityParcel { volumes, parity } =
        create_onto(&cen, &package, 1, &[&usb1, &usb2], &["--parity", "100"]);
    // The data fits the first medium; the repair data goes on the second.
    assert!(volumes.iter().all(|v| v.starts_with(&usb1)), "{volumes:?}");
    assert!(
        !parity.is_empty() && parity.iter().all(|p| p.starts_with(&usb2)),
        "{parity:?}"
    );
    // The first medium lost whole (100% parity): the second alone rebuilds it.
    bxl.import(&[&usb2]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn create_warns_when_the_repair_data_shares_a_medium_with_data() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 3);
    let create = |outs: &[&Path]| {
        let output = cen
            .create_cmd(&package, "tools", 1, "BXL", outs)
            .args([
                "--parity",
                "34",
                "--medium-size",
                "256KiB",
                // The bound before compression is above 512 KiB.
                "--no-space-check",
                "--json",
            ])
            .output()
            .expect("create");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        (
            paths(&json, "volumes"),
            paths(&json, "parity_volumes"),
            stderr,
        )
    };
    // Two media: the data fills the first and spills onto the second, where
    // the repair data goes too.
    let (usb1, usb2) = (world.medium(), world.medium());
    let (volumes, parity, stderr) = create(&[&usb1, &usb2]);
    assert!(volumes.iter().any(|v| v.starts_with(&usb2)), "{volumes:?}");
    assert!(parity.iter().all(|p| p.starts_with(&usb2)), "{parity:?}");
    assert!(
        stderr.contains(&format!(
            "the repair data shares {} with data volumes",
            usb2.display()
        )),
        "{stderr}"
    );
    // One more medium: the repair data has its own, and nothing is said.
    fs::remove_dir_all(&usb1).expect("clear");
    fs::remove_dir_all(&usb2).expect("clear");
    let (usb3, usb4, usb5) = (world.medium(), world.medium(), world.medium());
    let (volumes, parity, stderr) = create(&[&usb3, &usb4, &usb5]);
    assert!(parity.iter().all(|p| p.starts_with(&usb5)), "{parity:?}");
    assert!(!stderr.contains("shares"), "{stderr}");
    // But 34% does not rebuild a whole medium of several volumes, and
    // that is said.
    let on_usb3 = volumes.iter().filter(|v| v.starts_with(&usb3)).count();
    assert!(
        on_usb3 > 1 && 34 * volumes.len() < 100 * on_usb3,
        "{volumes:?}"
    );
    assert!(
        stderr.contains(&format!(
            "{} holds {on_usb3} of the {} volumes: 34% repair data rebuilds any one lost volume, but not that whole medium lost",
            usb3.display(),
            volumes.len()
        )),
        "{stderr}"
    );
}

/// `parcel create --repair REQUEST --package PACKAGE --out OUT` at `site`.
fn answer_request(
    site: &Site,
    request: &Path,
    package: &Path,
    out: &Path,
) -> assert_cmd::assert::Assert {
    site.run(&[
        "create",
        "--repair",
        arg(request),
        "--package",
        arg(package),
        "--out",
        arg(out),
    ])
}

/// `verify --json` of `dir` at `site`: exit code and JSON.
fn verify_json(site: &Site, dir: &Path) -> (i32, serde_json::Value) {
    let out = site
        .run(&["verify", arg(dir), "--json"])
        .get_output()
        .clone();
    let json = serde_json::from_slice(&out.stdout).expect("verify --json");
    (out.status.code().unwrap_or(-1), json)
}

fn repaired(json: &serde_json::Value) -> Vec<String> {
    json["repaired"]
        .as_array()
        .expect("repaired")
        .iter()
        .map(|v| v.as_str().expect("line").to_owned())
        .collect()
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).expect("read volume");
    let at = offset % bytes.len();
    bytes[at] ^= 0xa5;
    fs::write(path, bytes).expect("write volume");
}

#[test]
fn any_one_lost_volume_is_rebuilt_by_verify_and_import() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let first = create_with_parity(&cen, &package, 1, "34", &world.medium());
    let count = first.volumes.len();
    assert!(count >= 3, "expected several volumes: {:?}", first.volumes);
    assert!(!first.parity.is_empty());
    // Each version loses another volume, the last (which holds the index) included.
    for lost in 0..count {
        let version = lost as u64 + 1;
        let out = world.medium();
        let parcel = if lost == 0 {
            for v in first.volumes.iter().chain(&first.parity) {
                fs::rename(v, out.join(v.file_name().expect("name"))).expect("move");
            }
            create_listing(&out)
        } else {
            create_with_parity(&cen, &package, version, "34", &out)
        };
        assert_eq!(parcel.volumes.len(), count);
        fs::remove_file(&parcel.volumes[lost]).expect("lose a volume");

        let (code, json) = verify_json(&bxl, &out);
        assert_eq!(code, 0, "verify without volume {}: {json}", lost + 1);
        assert_eq!(
            repaired(&json),
            [format!(
                "volume {} of {count} missing: rebuilt from parity",
                lost + 1
            )]
        );
        bxl.run(&["verify", arg(&out)])
            .success()
            .stdout(predicate::str::contains(format!(
                "repaired: volume {} of {count} missing: rebuilt from parity",
                lost + 1
            )))
            .stdout(predicate::str::contains("intact after repair from parity"));

        bxl.import(&[&out])
            .success()
            .stdout(predicate::str::contains(format!(
                "repaired: volume {} of {count} missing: rebuilt from parity",
                lost + 1
            )));
        assert_eq!(
            package_view(&snapshot(&bxl.store("tools", version))),
            package_view(&snapshot(&package)),
            "imported tree differs without volume {}",
            lost + 1
        );
        assert!(
            snapshot(&bxl.home.join("staging")).is_empty(),
            "scratch left"
        );
        assert!(
            snapshot(&bxl.home.join("repair")).is_empty(),
            "scratch left"
        );
    }
}

/// The data and parity volumes in `dir`, by name.
fn create_listing(dir: &Path) -> ParityParcel {
    let mut volumes = Vec::new();
    let mut parity = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains(".par-") {
            parity.push(path);
        } else {
            volumes.push(path);
        }
    }
    ParityParcel { volumes, parity }
}

#[test]
fn damaged_blocks_within_the_parity_are_repaired() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 2);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "25", &out);
    flip_byte(&parcel.volumes[0], 5000);
    flip_byte(&parcel.volumes[0], 30_000);
    flip_byte(&parcel.volumes[1], 2000);

    let (code, json) = verify_json(&bxl, &out);
    assert_eq!(code, 0, "{json}");
    let lines = repaired(&json);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("volume 1: 2 damaged blocks repaired")
            && lines[0].ends_with("the file itself is unchanged)"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("volume 2: 1 damaged block repaired"),
        "{lines:?}"
    );
    // The rebuilt volumes were read from scratch files that are gone: the
    // JSON gives no path for them, and the media's path for the others.
    let volumes = json["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), parcel.volumes.len(), "{json}");
    assert!(volumes.len() > 2, "{json}");
    for v in volumes {
        let rebuilt = v["volume"] == 1 || v["volume"] == 2;
        assert_eq!(v["rebuilt"], rebuilt, "{v}");
        assert_eq!(v["path"].is_null(), rebuilt, "{v}");
        if !rebuilt {
            assert!(
                Path::new(v["path"].as_str().expect("path")).is_file(),
                "{v}"
            );
        }
    }

    bxl.import(&[&out])
        .success()
        .stdout(predicate::str::contains(
            "volume 1: 2 damaged blocks repaired",
        ));
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_lost_parity_volume_alone_needs_no_repair() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 3);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "34", &out);
    for p in &parcel.parity {
        fs::remove_file(p).expect("lose the parity");
    }
    let (code, json) = verify_json(&bxl, &out);
    assert_eq!(code, 0, "{json}");
    assert!(repaired(&json).is_empty());
    bxl.import(&[&out])
        .success()
        .stdout(predicate::str::contains("repaired").not());
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn damage_beyond_the_parity_is_refused_and_the_store_is_unchanged() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 4);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "10", &out);
    fs::remove_file(&parcel.volumes[1]).expect("lose a volume");
    let before = bxl.store_state();

    bxl.run(&["verify", arg(&out)])
        .code(3)
        .stderr(predicate::str::contains("repair impossible: volume 2 of"))
        .stderr(predicate::str::contains("missing"))
        .stderr(predicate::str::contains("needs at least"))
        .stderr(
            predicate::str::is_match("needs at least 20% parity.* the parcel has 11%")
                .expect("regex"),
        );
    bxl.import(&[&out])
        .code(3)
        .stderr(predicate::str::contains("repair impossible"));
    assert_eq!(bxl.store_state(), before);
    assert!(
        snapshot(&bxl.home.join("repair")).is_empty(),
        "scratch left"
    );
}

#[test]
fn repair_impossible_names_the_parity_volumes_that_were_missing() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 4);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "34", &out);
    let m = parcel.parity.len();
    assert!(m >= 2, "{:?}", parcel.parity);
    fs::remove_file(&parcel.parity[0]).expect("lose a parity volume");
    fs::remove_file(&parcel.volumes[1]).expect("lose a volume");
    fs::remove_file(&parcel.volumes[2]).expect("lose another");
    bxl.run(&["verify", arg(&out)])
        .code(3)
        .stderr(predicate::str::contains("repair impossible: volume 2 of"))
        .stderr(predicate::str::contains(format!(
            "parity volume 1 of {m} missing or unusable"
        )));
    // None of them given, and a volume missing: a note says they exist.
    for p in &parcel.parity[1..] {
        fs::remove_file(p).expect("lose the other parity volumes");
    }
    let (code, json) = verify_json(&bxl, &out);
    assert_eq!(code, 3, "{json}");
    let notes = json["repair_notes"].to_string();
    assert!(
        notes.contains(&format!("repair data in {m} parity volume(s)"))
            && notes.contains("none of them among the files given"),
        "{json}"
    );
}

#[test]
fn nonsense_parity_is_a_usage_error() {
    let (world, cen, _bxl) = two_sites();
    let package = world.package("tools", 5);
    let out = world.medium();
    for bad in ["0", "101", "-5", "half"] {
        cen.create_cmd(&package, "tools", 1, "BXL", &[&out])
            .args(["--parity", bad])
            .assert()
            .code(2);
    }
    assert!(fs::read_dir(&out).expect("list").next().is_none());
}

#[test]
fn a_repair_request_is_written_over_nothing_but_a_repair_request() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    assert!(volumes.len() >= 3, "{volumes:?}");
    fs::remove_file(&volumes[1]).expect("lose a volume");
    // A mistyped path naming a volume of the set, or the catalog: refused
    // before anything is checked, and left as it was.
    for target in [volumes[0].clone(), bxl.home.join("catalog.db")] {
        let before = fs::read(&target).expect("read before");
        bxl.run(&["verify", arg(&out), "--repair-request", arg(&target)])
            .code(2)
            .stderr(predicate::str::contains(
                "already exists and is not a repair request",
            ));
        assert_eq!(fs::read(&target).expect("read after"), before);
    }
    // An earlier request is replaced: asking again is a rerun.
    let request = world.dir("mail").join("request.txt");
    for _ in 0..2 {
        bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
            .code(3)
            .stderr(predicate::str::contains(
                "repair request for volume(s) 2 written to",
            ));
    }
    // Answered at the site that wrote it: it says where it goes.
    let answer = world.medium();
    answer_request(&bxl, &request, &package, &answer)
        .code(4)
        .stderr(predicate::str::contains(
            "this is site BXL: send it to site CEN; there, run `parcel create --repair FILE",
        ))
        // The command is for the other site: no note giving it this home.
        .stderr(predicate::str::contains("(run at this site").not());
}

#[test]
fn a_repair_request_brings_back_the_lost_volumes_and_the_import_completes() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    // No parity: only the source can help.
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    let count = volumes.len();
    assert!(count >= 3, "{volumes:?}");
    let lost = [1, count - 1]; // the index volume among them
    let kept = world.dir("kept");
    for &v in &lost {
        let name = volumes[v].file_name().expect("name");
        fs::rename(&volumes[v], kept.join(name)).expect("lose a volume");
    }
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3)
        .stderr(predicate::str::contains(format!(
            "repair request for volume(s) 2, {count} written to"
        )));
    let text = fs::read_to_string(&request).expect("request written");
    assert!(text.starts_with("parcel-repair-request v1\n"), "{text}");

    // At the source: a request not signed by BXL is refused.
    let forged = world.dir("mail").join("forged.txt");
    fs::write(&forged, text.replace("missing: 2", "missing: 1")).expect("forge");
    let answer = world.medium();
    answer_request(&cen, &forged, &package, &answer).code(3);
    // A package that changed since is refused, naming the file.
    let changed = world.dir("changed");
    common::write_package(&changed, 7);
    answer_request(&cen, &request, &changed, &answer)
        .failure()
        .stderr(predicate::str::contains("the parcel was made from"));
    assert!(fs::read_dir(&answer).expect("list").next().is_none());
    // Another directory altogether (the parcel's files are not there).
    let elsewhere = world.dir("elsewhere");
    answer_request(&cen, &request, &elsewhere, &answer)
        .failure()
        .stderr(predicate::str::contains(
            "is missing, and the parcel carried it",
        ))
        .stderr(predicate::str::contains("the parcel was made from"));
    assert!(fs::read_dir(&answer).expect("list").next().is_none());

    answer_request(&cen, &request, &package, &answer)
        .success()
        .stdout(predicate::str::contains(format!(
            "rebuilt volume(s) 2, {count} of parcel"
        )));
    for &v in &lost {
        let name = volumes[v].file_name().expect("name");
        assert_eq!(
            fs::read(answer.join(name)).expect("rebuilt volume"),
            fs::read(kept.join(name)).expect("kept copy"),
            "volume {} rebuilt at the source differs from the original",
            v + 1
        );
    }
    // Asked again into the same directory, or into one holding the lost
    // volumes themselves: refused, naming the file, and nothing there is
    // replaced or removed (it may be the intact original).
    for dir in [&answer, &kept] {
        let before = snapshot(dir);
        cen.run(&[
            "create",
            "--repair",
            arg(&request),
            "--package",
            arg(&package),
            "--out",
            arg(dir),
        ])
        .code(1)
        .stderr(predicate::str::contains("already exists; move it away"));
        assert_eq!(snapshot(dir), before, "{}", dir.display());
    }
    bxl.import(&[&out, &answer]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_delta_whose_files_mix_base_and_new_chunks_is_rebuilt_on_request() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let first = world.medium();
    create_onto(&cen, &package, 1, &[&first], &[]);
    bxl.import(&[&first]).success();
    // v2 appends to a file: its chunks are v1's (from the base) then new ones.
    let blob = package.join("data/blob.bin");
    let mut bytes = fs::read(&blob).expect("blob");
    bytes.extend(common::random_bytes(99, 300 * 1024));
    fs::write(&blob, &bytes).expect("append");
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 2, &[&out], &["--base", "1", "--force-base"]).volumes;
    assert!(volumes.len() >= 2, "{volumes:?}");
    let kept = world.dir("kept");
    let name = volumes[0].file_name().expect("name").to_owned();
    fs::rename(&volumes[0], kept.join(&name)).expect("lose volume 1");
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3);
    // It failed: "chunk N of pack P is in no file of the package".
    let answer = world.medium();
    answer_request(&cen, &request, &package, &answer).success();
    assert_eq!(
        fs::read(answer.join(&name)).expect("rebuilt volume"),
        fs::read(kept.join(&name)).expect("kept copy"),
        "the rebuilt volume differs from the original"
    );
    bxl.import(&[&out, &answer]).success();
    bxl.assert_holds("tools", 2, &package);
}

#[test]
fn a_repair_this_site_cannot_write_is_its_own_failure_not_the_medias() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "34", &out);
    fs::remove_file(&parcel.volumes[0]).expect("lose a volume");
    // The repair's scratch directory cannot be made: a file is in the way.
    fs::write(bxl.home.join("repair"), b"in the way").expect("block the scratch");
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(1)
        .stderr(predicate::str::contains(
            "stopped: this site could not write what it needed (its own disk, not the media)",
        ))
        .stderr(predicate::str::contains(
            "free space on that disk or let this user write there",
        ))
        .stderr(predicate::str::contains(
            "no repair request written: what failed is this site's own disk",
        ));
    // Parity could rebuild it here: nothing is asked of the source.
    assert!(!request.exists());
    fs::remove_file(bxl.home.join("repair")).expect("unblock");
    bxl.run(&["verify", arg(&out)]).success();
}

#[test]
fn volumes_rebuilt_from_a_request_with_altered_parity_fields_are_not_handed_out() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "50", &out);
    fs::remove_file(&parcel.volumes[0]).expect("lose volume 1");
    for parity in &parcel.parity {
        fs::remove_file(parity).expect("and the repair data");
    }
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3);
    // BXL (or whoever holds its key) signs the request again with parity
    // fields no writer makes: a block size that is no power of two.
    let (mut asked, _) =
        parcel_format::repair_request::RepairRequest::parse(&fs::read(&request).expect("request"))
            .expect("a valid request");
    let (m, _, k, r) = asked.parity.expect("parity fields");
    asked.parity = Some((m, 3, k, r));
    let forged = world.dir("mail").join("forged.txt");
    fs::write(
        &forged,
        asked.to_signed_text(&common::forge::secret_key(&bxl)),
    )
    .expect("write");
    let answer = world.medium();
    answer_request(&cen, &forged, &package, &answer)
        .code(3)
        .stderr(predicate::str::contains(
            "a rebuilt volume does not read back as a good volume",
        ));
    assert!(fs::read_dir(&answer).expect("list").next().is_none());
    // The request as BXL wrote it is answered.
    answer_request(&cen, &request, &package, &answer).success();
}

#[test]
fn a_damaged_index_asks_for_the_volume_that_holds_it() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    let last = volumes.last().expect("a volume");
    let number = volumes.len();
    let kept = world.dir("kept").join(last.file_name().expect("name"));
    fs::copy(last, &kept).expect("keep a copy");
    let index = common::forge::tar_entries(last)
        .into_iter()
        .find(|e| e.name.starts_with("parcel-index"))
        .expect("an index piece");
    flip_byte(last, (index.data + index.len / 2) as usize);
    // The reader stops at the index, before it names a damaged volume: the
    // request still asks for the one whose body is not what was signed.
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3)
        .stderr(predicate::str::contains(format!(
            "repair request for volume(s) {number} written to"
        )));
    let answer = world.medium();
    answer_request(&cen, &request, &package, &answer).success();
    assert_eq!(
        fs::read(answer.join(last.file_name().expect("name"))).expect("rebuilt"),
        fs::read(&kept).expect("kept")
    );
    bxl.import(&[&out, &answer]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_repair_request_asks_only_for_the_volumes_of_the_parcel_read() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    assert!(volumes.len() >= 3, "{volumes:?}");
    fs::remove_file(&volumes[1]).expect("lose volume 2");
    // A truncated volume 3 of another parcel lies on the same medium.
    let other = world.medium();
    let stray = create_onto(&cen, &package, 2, &[&other], &[]).volumes;
    let name = stray[2].file_name().expect("name");
    let bytes = fs::read(&stray[2]).expect("stray volume");
    fs::write(out.join(name), &bytes[..bytes.len() - 1000]).expect("truncated copy");
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3)
        .stderr(predicate::str::contains(
            "repair request for volume(s) 2 written to",
        ));
    let text = fs::read_to_string(&request).expect("request written");
    assert!(text.contains("\nmissing: 2\n"), "{text}");
}

#[test]
fn a_repair_request_asks_for_the_whole_parcel_when_every_volume_was_cut_short() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    let count = volumes.len();
    for volume in &volumes {
        let len = fs::metadata(volume).expect("volume").len();
        fs::OpenOptions::new()
            .write(true)
            .open(volume)
            .and_then(|f| f.set_len(len - 100))
            .expect("cut short");
    }
    let request = world.dir("mail").join("request.txt");
    let all: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3)
        .stderr(predicate::str::contains(format!(
            "repair request for volume(s) {} written to",
            all.join(", ")
        )));
    let text = fs::read_to_string(&request).expect("request written");
    assert!(
        text.contains(&format!("\nmissing: {}\n", all.join(" "))),
        "{text}"
    );
}

#[test]
fn volumes_rebuilt_on_request_are_read_instead_of_their_damaged_originals() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let volumes = create_onto(&cen, &package, 1, &[&out], &[]).volumes;
    assert!(volumes.len() >= 3, "{volumes:?}");
    // Volume 2 damaged in the middle and volume 3 cut short, on a medium
    // that cannot be written (a disc): the damaged copies stay where they are.
    let len = fs::metadata(&volumes[1]).expect("volume").len();
    flip_byte(&volumes[1], (len / 2) as usize);
    let len = fs::metadata(&volumes[2]).expect("volume").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&volumes[2])
        .and_then(|f| f.set_len(len - 100))
        .expect("cut short");
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3);
    let answer = world.medium();
    answer_request(&cen, &request, &package, &answer).success();
    // As the hint says: the rebuilt volumes together with those held.
    bxl.run(&["import", arg(&out), arg(&answer)])
        .success()
        .stderr(predicate::str::contains(format!(
            "{} is a damaged copy of volume 2",
            volumes[1].display()
        )))
        .stderr(predicate::str::contains(format!(
            "{} is a damaged copy of volume 3",
            volumes[2].display()
        )));
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_parity_volume_whose_header_is_damaged_is_left_out_of_an_intact_parcel() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "50", &out);
    let parity = parcel.parity.first().expect("a parity volume");
    let mut bytes = fs::read(parity).expect("parity volume");
    bytes[600..800].fill(0);
    fs::write(parity, bytes).expect("damage its header");
    for command in ["verify", "import"] {
        bxl.run(&[command, arg(&out)])
            .success()
            .stderr(predicate::str::contains(
                "it is named as a parity volume (repair data): left out",
            ));
    }
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_parity_volume_signed_by_another_trusted_site_does_not_fail_an_intact_parcel() {
    let (world, cen, bxl) = two_sites();
    let lux = world.site("LUX");
    bxl.trust(&lux);
    let package = world.package("tools", 6);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "50", &out);
    // LUX, trusted at BXL, signs a copy of the first parity volume: same
    // parcel id, another signer. Given first, it was taken as the measure
    // of the parcel, and every genuine volume failed it.
    let parity = parcel.parity.first().expect("a parity volume");
    let hostile = world.medium();
    let forged = hostile.join(parity.file_name().expect("name"));
    fs::copy(parity, &forged).expect("copy");
    parcel_format::testkit::resign_header(&forged, &common::forge::secret_key(&lux), |_| {})
        .expect("re-sign");
    for command in ["verify", "import"] {
        bxl.run(&[command, arg(&forged), arg(&out)])
            .success()
            .stderr(predicate::str::contains("repair impossible").not());
    }
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_repair_request_is_answered_only_for_its_destination_and_a_parcel_sent_there() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 8);
    let out = world.medium();
    let parcel = create_with_parity(&cen, &package, 1, "10", &out);
    fs::remove_file(&parcel.volumes[0]).expect("lose a volume");
    fs::remove_file(&parcel.volumes[1]).expect("lose another");
    let request = world.dir("mail").join("request.txt");
    bxl.run(&["verify", arg(&out), "--repair-request", arg(&request)])
        .code(3)
        .stderr(predicate::str::contains("repair impossible"))
        .stderr(predicate::str::contains(
            "repair request for volume(s) 1, 2",
        ));
    let text = fs::read_to_string(&request).expect("request");
    assert!(text.contains("\nparity: "), "{text}");
    // A third site that trusts CEN, and whose key CEN trusts, but to which
    // the parcel did not go: its own request is refused.
    let ant = world.site("ANT");
    ant.trust(&cen);
    cen.trust(&ant);
    let ant_request = world.dir("mail").join("ant-request.txt");
    ant.run(&["verify", arg(&out), "--repair-request", arg(&ant_request)])
        .code(3);
    cen.run(&[
        "create",
        "--repair",
        arg(&ant_request),
        "--package",
        arg(&package),
        "--out",
        arg(&world.medium()),
    ])
    .code(4)
    .stderr(predicate::str::contains("went to site BXL, not to ANT"));
    let answer = world.medium();
    // BXL's request, answered: the rebuilt volumes come with the parity
    // layout, and the import takes them with the rest.
    answer_request(&cen, &request, &package, &answer).success();
    bxl.import(&[&out, &answer]).success();
    bxl.assert_holds("tools", 1, &package);
    // A request from a site the parcel did not go to is refused.
    let theirs = world.dir("mail").join("theirs.txt");
    let forged = text.replace("destination: BXL", "destination: ANT");
    fs::write(&theirs, forged).expect("write");
    cen.run(&[
        "create",
        "--repair",
        arg(&theirs),
        "--package",
        arg(&package),
        "--out",
        arg(&world.medium()),
    ])
    .code(3);
}

#[test]
fn an_encrypted_parcel_with_parity_is_rebuilt_then_decrypted() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    let parcel = create_with(&cen, &package, 1, &out, &["--parity", "34", "--encrypt"]);
    let count = parcel.volumes.len();
    assert!(
        count >= 3 && !parcel.parity.is_empty(),
        "{:?} {:?}",
        parcel.volumes,
        parcel.parity
    );
    // The last volume holds the index; losing it loses the encrypted index too.
    fs::remove_file(&parcel.volumes[count - 1]).expect("lose a volume");

    bxl.import(&[&out])
        .success()
        .stdout(predicate::str::contains(format!(
            "repaired: volume {count} of {count} missing: rebuilt from parity"
        )));
    assert_eq!(
        package_view(&snapshot(&bxl.store("tools", 1))),
        package_view(&snapshot(&package)),
    );
}

#[test]
fn verify_sweeps_the_repair_scratch_of_a_killed_verify() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let out = world.medium();
    create_with_parity(&cen, &package, 1, "34", &out);
    // What a verify killed while rebuilding leaves: a scratch directory named
    // after its process, which no longer exists (pids stay below 2^22).
    let stale = bxl.home.join("repair").join("repair-4194305-1");
    fs::create_dir_all(&stale).expect("stale scratch");
    fs::write(stale.join("rebuilt.tar"), b"a rebuilt volume").expect("stale file");
    bxl.run(&["verify", arg(&out)]).success();
    assert!(
        !stale.exists(),
        "the stale scratch directory is still there"
    );
    assert!(
        snapshot(&bxl.home.join("repair")).is_empty(),
        "the repair directory is not empty"
    );
}
