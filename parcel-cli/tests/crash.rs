//! Crash safety and full disks. `parcel import` and `parcel create` killed
//! (SIGKILL) at many points, by time and by what they have written so far,
//! leave either the old state or the complete new one, never a half-written
//! package or volume, and the same command run again completes and cleans up.
//! A disk or medium too small, or one that fills while the command writes,
//! is a clear error (exit 1) naming the bytes needed and available that
//! changes nothing, and the command succeeds once there is room.

#[allow(dead_code)] // Each test file uses a part of the fixtures.
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use parcel_format::limits::VOLUME_PREFIX;
use parcel_format::read::read_volume_header;
use parcel_format::sign::TrustedKeys;
use parcel_format::write::WriteOptions;

use common::forge::{info, secret_key, small_options, write_small_package, Honest};
use common::{
    arg, copy_tree, names_in, package_view, random_bytes, snapshot, two_sites, Node, Site, World,
};

/// Writes a package of `files` incompressible files of 96 KiB each (plus a
/// few directories) at `root`: with many files, extraction and writing go
/// through many steps a kill can land between.
fn write_big_package(root: &Path, files: u64) {
    for i in 0..files {
        let path = root.join(format!("part-{}/file-{i:03}.bin", i % 4));
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(&path, random_bytes(1000 + i, 96 * 1024)).expect("write file");
    }
}

/// `parcel --home <home> --quiet`, as a plain process that can be killed.
fn parcel_cmd(site: &Site) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parcel"));
    cmd.env_remove("PARCEL_HOME")
        .arg("--home")
        .arg(&site.home)
        .arg("--quiet");
    cmd
}

/// When to kill a running command.
enum Kill {
    /// After this long.
    After(Duration),
    /// As soon as this holds (polled), named for messages.
    When(&'static str, Box<dyn Fn() -> bool>),
}

impl Kill {
    fn after_ms(ms: &[u64]) -> Vec<Kill> {
        ms.iter()
            .map(|&ms| Kill::After(Duration::from_millis(ms)))
            .collect()
    }

    fn when(name: &'static str, condition: impl Fn() -> bool + 'static) -> Kill {
        Kill::When(name, Box::new(condition))
    }
}

/// Runs `cmd` and sends it SIGKILL at `kill`. Returns its exit status when it
/// finished by itself first.
fn run_and_kill(mut cmd: Command, kill: &Kill) -> Option<ExitStatus> {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn parcel");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        let now = match kill {
            Kill::After(delay) => start.elapsed() >= *delay,
            Kill::When(_, condition) => condition(),
        };
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "parcel ran for a minute"
        );
        if now {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
            return None;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn describe(kill: &Kill) -> String {
    match kill {
        Kill::After(delay) => format!("after {delay:?}"),
        Kill::When(name, _) => format!("when {name}"),
    }
}

/// Number of files under `dir`, and their bytes (0, 0 when absent).
fn files_under(dir: &Path) -> (usize, u64) {
    snapshot(dir)
        .values()
        .filter_map(|node| match node {
            Node::File { len, .. } => Some(*len),
            _ => None,
        })
        .fold((0, 0), |(n, bytes), len| (n + 1, bytes + len))
}

/// The (package id, version) pairs of `packages --json` at `site`.
fn catalog_packages(site: &Site) -> Vec<(String, u64)> {
    site.json(&["packages", "--json"])
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["package_id"].as_str().expect("id").to_owned(),
                p["version"].as_u64().expect("version"),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// parcel import, killed.
// ---------------------------------------------------------------------------

#[test]
fn import_killed_at_any_point_leaves_the_old_store_or_the_whole_new_package() {
    let (world, cen, bxl) = two_sites();
    let key = secret_key(&cen);
    // The old state: BXL's store holds tools v1.
    let v1 = world.dir("tools-1");
    write_small_package(&v1, 1);
    let v1_medium = world.dir("v1");
    let v1_info = info("CEN", "BXL", "tools", 1);
    Honest::write(&v1, &v1_info, &key, &small_options(), &v1_medium);
    bxl.import(&[&v1_medium]).success();
    // The new package: tools v2, 9 MiB over volumes of 2 MiB.
    let package = world.dir("tools-2");
    write_big_package(&package, 96);
    let medium = world.dir("v2");
    let options = WriteOptions {
        volume_size: 2 << 20,
        ..WriteOptions::default()
    };
    let parcel = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 2),
        &key,
        &options,
        &medium,
    );
    assert!(parcel.volumes.len() >= 4, "{:?}", parcel.volumes);

    let pristine = world.dir("pristine-BXL-home");
    copy_tree(&bxl.home, &pristine);
    let old_packages = snapshot(&bxl.home.join("packages"));
    let new_package = package_view(&snapshot(&package));
    let store = bxl.store("tools", 2);
    let staging = bxl.home.join("staging");
    let staged = staging.join(parcel.manifest.parcel_id.to_string());
    let content = parcel.manifest.content_bytes();

    // The last delay outlasts any import: it ends by itself.
    let mut kills = Kill::after_ms(&[
        0, 1, 2, 3, 5, 8, 12, 17, 25, 35, 50, 70, 100, 140, 200, 30_000,
    ]);
    kills.push(Kill::when("the staging directory appears", {
        let staged = staged.clone();
        move || staged.exists()
    }));
    for (name, fraction) in [
        ("the first file is staged", 0),
        ("a quarter is staged", 4),
        ("half is staged", 2),
    ] {
        let staged = staged.clone();
        kills.push(Kill::when(name, move || {
            let (files, bytes) = files_under(&staged);
            files > 0 && (fraction == 0 || bytes >= content / fraction)
        }));
    }
    kills.push(Kill::when("the package is moved into the store", {
        let store = store.clone();
        move || store.exists()
    }));

    let mut stages: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, kill) in kills.iter().enumerate() {
        let at = describe(kill);
        fs::remove_dir_all(&bxl.home).expect("remove home");
        copy_tree(&pristine, &bxl.home);
        let receipt = world.dir("mail").join(format!("receipt-{i}.txt"));
        let mut import = parcel_cmd(&bxl);
        import
            .arg("import")
            .arg(&medium)
            .args(["--receipt", arg(&receipt)]);
        let finished = run_and_kill(import, kill);
        if let Some(status) = finished {
            assert!(status.success(), "{at}: import failed by itself: {status}");
        }

        // The old store, or the old store and the whole new package.
        let mut packages = snapshot(&bxl.home.join("packages"));
        let moved_in = store.exists();
        packages.retain(|path, _| !path.starts_with("tools/2"));
        assert_eq!(packages, old_packages, "{at}: the old store changed");
        if moved_in {
            assert_eq!(
                package_view(&snapshot(&store)),
                new_package,
                "{at}: tools v2 is in the store but incomplete"
            );
        }
        let recorded = catalog_packages(&bxl);
        let v2_recorded = recorded.contains(&("tools".to_owned(), 2));
        assert!(
            recorded.contains(&("tools".to_owned(), 1)),
            "{at}: {recorded:?}"
        );
        assert!(
            !v2_recorded || moved_in,
            "{at}: the catalog lists tools v2, the store does not hold it"
        );
        // Only this parcel's staging directory and install marker may be
        // left over.
        let id = parcel.manifest.parcel_id.to_string();
        let leftovers = names_in(&staging);
        assert!(
            leftovers
                .iter()
                .all(|name| *name == id || *name == format!("{id}.installing")),
            "{at}: {leftovers:?}"
        );
        let stage = if v2_recorded {
            "imported"
        } else if moved_in {
            "moved into the store, not recorded"
        } else if files_under(&staged).0 > 0 {
            "staged in part or whole"
        } else if staged.exists() {
            "staging directory created"
        } else {
            "nothing staged"
        };
        *stages.entry(stage).or_default() += 1;

        // Run again: it completes, and cleans up.
        let rerun = parcel_cmd(&bxl)
            .arg("import")
            .arg(&medium)
            .args(["--receipt", arg(&receipt)])
            .output()
            .expect("rerun import");
        assert!(rerun.status.success(), "{at} ({stage}): rerun: {rerun:?}");
        assert_eq!(names_in(&staging), Vec::<String>::new(), "{at} ({stage})");
        assert_eq!(package_view(&snapshot(&store)), new_package, "{at}");
        let mut packages = snapshot(&bxl.home.join("packages"));
        packages.retain(|path, _| !path.starts_with("tools/2"));
        assert_eq!(packages, old_packages, "{at}");
        let mut recorded = catalog_packages(&bxl);
        recorded.sort();
        assert_eq!(
            recorded,
            [("tools".to_owned(), 1), ("tools".to_owned(), 2)],
            "{at}"
        );
        assert_eq!(
            bxl.status(&parcel.manifest.parcel_id.to_string()),
            "imported"
        );
    }
    eprintln!("import killed: {stages:?}");
    for stage in ["nothing staged", "staged in part or whole", "imported"] {
        assert!(
            stages.contains_key(stage),
            "no kill left {stage}: {stages:?}"
        );
    }
}

/// The states a kill leaves between an import's rename into the store and
/// the catalog's record, and during the next import's clean-up, made by hand
/// (the kills above reach them only by chance): each next import removes
/// exactly the unrecorded package its marker names and completes.
#[test]
fn import_after_a_kill_between_rename_and_record_removes_only_what_the_marker_names() {
    let (world, cen, bxl) = two_sites();
    let key = secret_key(&cen);
    let package = world.dir("tools-1");
    write_small_package(&package, 1);
    let medium = world.dir("v1");
    let parcel = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 1),
        &key,
        &small_options(),
        &medium,
    );
    let id = parcel.manifest.parcel_id.to_string();
    let pristine = world.dir("pristine-BXL-home");
    copy_tree(&bxl.home, &pristine);
    let store = bxl.store("tools", 1);
    let staging = bxl.home.join("staging");
    let marker = staging.join(format!("{id}.installing"));
    let stray = bxl.home.join("packages").join("tools").join("7");

    for state in [
        "renamed in",
        "half removed by a killed clean-up",
        "marker of nothing",
        "marker outside the store",
        "recorded, marker left",
    ] {
        fs::remove_dir_all(&bxl.home).expect("remove home");
        copy_tree(&pristine, &bxl.home);
        fs::create_dir_all(&staging).expect("staging");
        fs::create_dir_all(&stray).expect("stray");
        fs::write(stray.join("mine.txt"), b"kept\n").expect("write");
        match state {
            "renamed in" => {
                copy_tree(&package, &store);
                fs::write(&marker, "tools/1\n").expect("marker");
            }
            "half removed by a killed clean-up" => {
                copy_tree(&package, &staging.join(format!("{id}.removing")));
                fs::write(&marker, "tools/1\n").expect("marker");
            }
            "marker of nothing" => fs::write(&marker, "tools/12\n").expect("marker"),
            "marker outside the store" => {
                // `<home>/packages/../7` would be `<home>/7`.
                fs::create_dir_all(bxl.home.join("7")).expect("outside");
                fs::write(bxl.home.join("7").join("mine.txt"), b"kept\n").expect("write");
                fs::write(&marker, "../7\n").expect("marker");
            }
            _ => {
                // Killed after the record, before the marker went: the
                // recorded package stays (the import below is a no-op).
                let done = parcel_cmd(&bxl).arg("import").arg(&medium).output();
                assert!(done.expect("import").status.success(), "{state}");
                fs::write(&marker, "tools/1\n").expect("marker");
                fs::write(store.join("added-after.txt"), b"mark\n").expect("write");
            }
        }
        let output = parcel_cmd(&bxl)
            .arg("import")
            .arg(&medium)
            .output()
            .expect("import");
        assert!(output.status.success(), "{state}: {}", stderr_of(&output));
        assert_eq!(names_in(&staging), Vec::<String>::new(), "{state}");
        if state == "recorded, marker left" {
            assert!(
                store.join("added-after.txt").exists(),
                "{state}: the recorded copy was removed"
            );
            fs::remove_file(store.join("added-after.txt")).expect("remove");
        }
        if state == "marker outside the store" {
            assert_eq!(names_in(&bxl.home.join("7")), ["mine.txt"], "{state}");
        }
        assert_eq!(
            package_view(&snapshot(&store)),
            package_view(&snapshot(&package)),
            "{state}"
        );
        assert_eq!(bxl.status(&id), "imported", "{state}");
        assert_eq!(names_in(&stray), ["mine.txt"], "{state}");
    }
}

// ---------------------------------------------------------------------------
// parcel create, killed.
// ---------------------------------------------------------------------------

/// A volume's final name: `STEM.NNN-of-MMM.tar`. Returns the stem.
fn final_name_stem(name: &str) -> Option<&str> {
    let rest = name.strip_suffix(".tar")?;
    let (stem, numbers) = rest.rsplit_once('.')?;
    let (n, count) = numbers.split_once("-of-")?;
    let digits = |s: &str| s.len() >= 3 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(n) && digits(count) && !stem.starts_with('.')).then_some(stem)
}

/// Whether `volume` is whole: its header is authentic, its length right and
/// its body hashes to the signed value.
fn is_whole(volume: &Path, trust: &TrustedKeys) -> Result<(), String> {
    let header = read_volume_header(volume, trust).map_err(|p| p.to_string())?;
    let bytes = fs::read(volume).map_err(|e| e.to_string())?;
    let body = &bytes[VOLUME_PREFIX as usize..];
    if <[u8; 32]>::from(Sha256::digest(body)) != header.body_sha256 {
        return Err(format!("{}: body does not match", volume.display()));
    }
    Ok(())
}

/// `parcel verify --json` at `site` over `volumes`.
fn verify_json(site: &Site, volumes: &[PathBuf]) -> (Output, serde_json::Value) {
    let output = parcel_cmd(site)
        .args(["verify", "--json"])
        .args(volumes)
        .output()
        .expect("verify");
    let json = serde_json::from_slice(&output.stdout).expect("verify --json");
    (output, json)
}

/// Starts `parcel create` of `package` onto `out` with `signal` ignored (or
/// not), and waits until its first volume file is there.
fn create_until_writing(cen: &Site, package: &Path, out: &Path, ignore: Option<i32>) -> Child {
    let mut cmd = parcel_cmd(cen);
    cmd.args(["create", "--package", arg(package), "--package-id", "tools"])
        .args(["--version", "1", "--to", "BXL", "--volume-size", "1MiB"])
        .args(["--out", arg(out)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    signals_as_at_a_terminal(&mut cmd, ignore);
    let mut child = cmd.spawn().expect("spawn parcel");
    let start = Instant::now();
    while !names_in(out).iter().any(|n| n.ends_with(".partial")) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "create ended first"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no volume started"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    child
}

/// Gives `cmd` the signals a terminal's foreground command has, whatever
/// this test inherited (a shell's `&` ignores SIGINT), but `ignore`.
fn signals_as_at_a_terminal(cmd: &mut Command, ignore: Option<i32>) {
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                let action = if Some(signal) == ignore {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::signal(signal, action);
            }
            Ok(())
        });
    }
}

/// A child process killed when dropped (a test that fails while parcel is
/// stopped or waiting must not leave it behind).
struct KillOnDrop(Child);

impl KillOnDrop {
    fn wait_with_output(mut self) -> Output {
        // Read to the end first: a child blocked on a full pipe never ends.
        let mut err = Vec::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_end(&mut stderr, &mut err);
        }
        let status = self.0.wait().expect("wait");
        Output {
            status,
            stdout: Vec::new(),
            stderr: err,
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn send_signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill has no memory effects; `pid` is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn create_interrupted_while_writing_removes_its_files_and_ends_by_the_signal() {
    let (world, cen, _bxl) = two_sites();
    let package = world.dir("tools");
    write_big_package(&package, 96);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let out = world.medium();
        let child = create_until_writing(&cen, &package, &out, None);
        send_signal(&child, signal);
        let output = child.wait_with_output().expect("wait");
        let stderr = stderr_of(&output);
        // Ended by the signal, as a shell expects (a loop stops on Ctrl-C).
        assert_eq!(output.status.signal(), Some(signal), "{stderr}");
        assert!(stderr.contains("interrupted: parcel tools-v1-"), "{stderr}");
        assert!(stderr.contains("was not made"), "{stderr}");
        assert_eq!(names_in(&out), Vec::<String>::new(), "{stderr}");
        assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
    }
    // A hangup ignored from the start (nohup) stays ignored.
    let out = world.medium();
    let child = create_until_writing(&cen, &package, &out, Some(libc::SIGHUP));
    send_signal(&child, libc::SIGHUP);
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        cen.json(&["list", "--json"]).as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn create_killed_at_any_point_leaves_no_half_written_volume_and_a_rerun_cleans_up_and_succeeds() {
    let (world, cen, bxl) = two_sites();
    let package = world.dir("tools");
    write_big_package(&package, 96);
    let mut trust = TrustedKeys::new();
    trust.add("CEN", secret_key(&cen).verifying_key());

    let create = |version: u64, out: &Path| {
        let mut cmd = parcel_cmd(&cen);
        cmd.args([
            "create",
            "--package",
            arg(&package),
            "--package-id",
            "tools",
        ])
        .args(["--version", &version.to_string(), "--to", "BXL"])
        .args(["--volume-size", "1MiB", "--out", arg(out)]);
        cmd
    };
    let volumes_in = |out: &Path, partial: bool| -> Vec<String> {
        names_in(out)
            .into_iter()
            .filter(|n| {
                if partial {
                    n.ends_with(".partial")
                } else {
                    final_name_stem(n).is_some()
                }
            })
            .collect()
    };

    // The last delay outlasts any create: it ends by itself.
    let mut kills = Kill::after_ms(&[0, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 450, 30_000]);
    let mut stages: BTreeMap<&str, usize> = BTreeMap::new();
    let outs: Vec<PathBuf> = (0..kills.len() + 3).map(|_| world.medium()).collect();
    for (name, partials) in [
        ("the first volume is started", 1),
        ("the fourth volume is started", 4),
    ] {
        let out = outs[kills.len()].clone();
        kills.push(Kill::when(name, move || {
            names_in(&out)
                .iter()
                .filter(|n| n.ends_with(".partial"))
                .count()
                >= partials
        }));
    }
    let out = outs[kills.len()].clone();
    kills.push(Kill::when(
        "the first volume gets its final name",
        move || names_in(&out).iter().any(|n| final_name_stem(n).is_some()),
    ));

    for (i, kill) in kills.iter().enumerate() {
        let at = describe(kill);
        let out = &outs[i];
        let version = i as u64 + 1;
        let finished = run_and_kill(create(version, out), kill);
        if let Some(status) = finished {
            assert!(status.success(), "{at}: create failed by itself: {status}");
        }

        // Every file under a final volume name is whole; a set may lack
        // volumes not yet renamed, nothing else.
        let finals = volumes_in(out, false);
        let mut sets: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        for name in &finals {
            let volume = out.join(name);
            is_whole(&volume, &trust).unwrap_or_else(|e| panic!("{at}: {name}: {e}"));
            let stem = final_name_stem(name).expect("final name");
            sets.entry(stem).or_default().push(volume);
        }
        assert!(sets.len() <= 1, "{at}: {finals:?}");
        let mut complete = false;
        for volumes in sets.values() {
            let (output, json) = verify_json(&bxl, volumes);
            complete = output.status.success();
            if !complete {
                assert_eq!(output.status.code(), Some(3), "{at}: {output:?}");
                for problem in json["problems"].as_array().expect("problems") {
                    let message = problem["message"].as_str().expect("message");
                    assert!(message.contains("is missing"), "{at}: {message}");
                }
            }
        }
        // A parcel the catalog records is complete on the medium.
        for recorded in cen.json(&["list", "--json"]).as_array().expect("list") {
            let volumes: Vec<PathBuf> = recorded["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .map(|v| PathBuf::from(v.as_str().expect("path")))
                .collect();
            let (output, _) = verify_json(&bxl, &volumes);
            assert!(output.status.success(), "{at}: recorded but {output:?}");
        }
        let stage = if complete {
            "complete"
        } else if !finals.is_empty() {
            "some volumes renamed"
        } else if !volumes_in(out, true).is_empty() {
            "volumes being written"
        } else {
            "nothing written"
        };
        *stages.entry(stage).or_default() += 1;

        // Run again onto the same medium: it succeeds.
        let rerun = create(version, out).arg("--json").output().expect("rerun");
        assert!(rerun.status.success(), "{at} ({stage}): rerun: {rerun:?}");
        // ... and removes the unfinished volume files the killed one left.
        assert_eq!(volumes_in(out, true), Vec::<String>::new(), "{at}");
        let locks: Vec<String> = names_in(out)
            .into_iter()
            .filter(|n| n.ends_with(".lock"))
            .collect();
        assert_eq!(locks, Vec::<String>::new(), "{at}: writer locks left");
        let json: serde_json::Value = serde_json::from_slice(&rerun.stdout).expect("json");
        let volumes: Vec<PathBuf> = json["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| PathBuf::from(v.as_str().expect("path")))
            .collect();
        let (output, _) = verify_json(&bxl, &volumes);
        assert!(output.status.success(), "{at}: {output:?}");
    }
    eprintln!("create killed: {stages:?}");
    for stage in ["volumes being written", "complete"] {
        assert!(
            stages.contains_key(stage),
            "no kill left {stage}: {stages:?}"
        );
    }
}

#[test]
fn sent_waits_for_the_read_back_of_the_create_that_made_the_parcel() {
    let (world, cen, _bxl) = two_sites();
    let package = world.dir("tools");
    write_big_package(&package, 96);
    let out = world.medium();
    let mut cmd = parcel_cmd(&cen);
    cmd.args([
        "create",
        "--package",
        arg(&package),
        "--package-id",
        "tools",
    ])
    .args(["--version", "1", "--to", "BXL", "--volume-size", "1MiB"])
    .args(["--out", arg(&out)])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // Killed should the test fail while parcel is stopped.
    let mut child = KillOnDrop(cmd.spawn().expect("spawn parcel"));
    // Caught (SIGSTOP) recorded, with its read-back not over.
    let locks = cen.home.join("read-back");
    let start = Instant::now();
    let id = loop {
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "create ended before it was caught reading back"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "never caught");
        let lock = if locks.is_dir() {
            names_in(&locks)
        } else {
            Vec::new()
        };
        // Stopped only once the volumes have their final names (they are
        // renamed together, just before the record): stopping it over and
        // over while it writes would slow the write to a crawl.
        let written = names_in(&out)
            .iter()
            .any(|n| n.ends_with(".tar") && !n.starts_with('.'));
        if let (Some(name), true) = (lock.first(), written) {
            send_signal(&child.0, libc::SIGSTOP);
            let id = name.trim_end_matches(".lock").to_owned();
            let shown = parcel_cmd(&cen)
                .args(["show", &id, "--json"])
                .output()
                .expect("show");
            if shown.status.success() && locks.join(name).exists() {
                break id;
            }
            send_signal(&child.0, libc::SIGCONT);
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let sent = |site: &Site| {
        parcel_cmd(site)
            .args(["sent", &id, "--via", "post"])
            .output()
            .expect("sent")
    };
    let early = sent(&cen);
    let stderr = stderr_of(&early);
    assert_eq!(early.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("is still reading its volumes back from the media"),
        "{stderr}"
    );
    assert_eq!(cen.status(&id), "created");

    send_signal(&child.0, libc::SIGCONT);
    let output = child.wait_with_output();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(names_in(&locks), Vec::<String>::new());
    let later = sent(&cen);
    assert!(later.status.success(), "{}", stderr_of(&later));
    assert_eq!(cen.status(&id), "sent");
}

#[test]
fn a_key_revoked_while_a_create_writes_gives_the_parcel_up_and_one_revoked_during_an_import_waits()
{
    let (world, cen, bxl) = two_sites();
    let package = world.dir("tools");
    write_big_package(&package, 96);

    // CEN revokes BXL's key while a parcel to BXL is being written: the
    // parcel is not recorded, its volumes go.
    let out = world.medium();
    let create = KillOnDrop(create_until_writing(&cen, &package, &out, None));
    send_signal(&create.0, libc::SIGSTOP);
    cen.run(&["key", "revoke", "BXL"]).success();
    send_signal(&create.0, libc::SIGCONT);
    let output = create.wait_with_output();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the trusted keys changed while this ran"),
        "{stderr}"
    );
    assert_eq!(names_in(&out), Vec::<String>::new(), "{stderr}");
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));

    // BXL revokes CEN's key while importing a parcel from CEN: the revocation
    // waits for the import, which checked the signature while it was trusted.
    let lux = world.site("LUX");
    let lux_key = world.dir("mail").join("LUX.pub");
    lux.run(&["key", "export", "--out", arg(&lux_key)])
        .success();
    let key = secret_key(&cen);
    let medium = world.dir("v1");
    let parcel = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 1),
        &key,
        &WriteOptions {
            volume_size: 2 << 20,
            ..WriteOptions::default()
        },
        &medium,
    );
    let staged = bxl
        .home
        .join("staging")
        .join(parcel.manifest.parcel_id.to_string());
    let mut cmd = parcel_cmd(&bxl);
    cmd.arg("import")
        .arg(&medium)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut import = KillOnDrop(cmd.spawn().expect("spawn import"));
    let start = Instant::now();
    while !staged.exists() {
        assert!(
            import.0.try_wait().expect("wait").is_none(),
            "import ended before staging"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "never staged");
        std::thread::sleep(Duration::from_micros(100));
    }
    send_signal(&import.0, libc::SIGSTOP);
    let mut revoke = parcel_cmd(&bxl);
    revoke
        .args(["key", "revoke", "CEN"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut revoke = KillOnDrop(revoke.spawn().expect("spawn revoke"));
    // And a new site trusted meanwhile: it waits too.
    let mut trust = parcel_cmd(&bxl);
    trust
        .args(["key", "trust", arg(&lux_key)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut trust = KillOnDrop(trust.spawn().expect("spawn trust"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        revoke.0.try_wait().expect("wait").is_none(),
        "revoke did not wait for the import"
    );
    assert!(
        trust.0.try_wait().expect("wait").is_none(),
        "trust did not wait for the import"
    );
    send_signal(&import.0, libc::SIGCONT);
    let imported = import.wait_with_output();
    assert!(imported.status.success(), "{}", stderr_of(&imported));
    let revoked = revoke.wait_with_output();
    assert!(revoked.status.success(), "{}", stderr_of(&revoked));
    let trusted = trust.wait_with_output();
    assert!(trusted.status.success(), "{}", stderr_of(&trusted));
    assert_eq!(
        bxl.status(&parcel.manifest.parcel_id.to_string()),
        "imported"
    );
    let keys = bxl.json(&["key", "list", "--json"]);
    assert!(keys.to_string().contains("revoked"), "{keys}");
}

/// Writes a big package to `package`, sends it from CEN to BXL in 1 MiB
/// volumes, loses all but the last two, and has BXL's `verify` write a
/// repair request: the medium, the request and how many volumes were lost.
fn lose_volumes_and_ask_for_them(
    world: &World,
    cen: &Site,
    bxl: &Site,
    package: &Path,
) -> (PathBuf, PathBuf, usize) {
    write_big_package(package, 96);
    let out = world.medium();
    let created = parcel_cmd(cen)
        .args(["create", "--package", arg(package), "--package-id", "tools"])
        .args(["--version", "1", "--to", "BXL", "--volume-size", "1MiB"])
        .args(["--out", arg(&out), "--json"])
        .output()
        .expect("create");
    assert!(created.status.success(), "{}", stderr_of(&created));
    let json: serde_json::Value = serde_json::from_slice(&created.stdout).expect("create --json");
    let volumes: Vec<PathBuf> = json["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| PathBuf::from(v.as_str().expect("path")))
        .collect();
    // All but the last two volumes are lost on the way: many to rebuild.
    let lost = volumes.len() - 2;
    assert!(lost >= 6, "{volumes:?}");
    for volume in &volumes[..lost] {
        fs::remove_file(volume).expect("lose a volume");
    }
    let request = world.dir("mail").join("request.txt");
    let asked = parcel_cmd(bxl)
        .args(["verify", arg(&out), "--repair-request", arg(&request)])
        .output()
        .expect("verify");
    assert_eq!(asked.status.code(), Some(3), "{}", stderr_of(&asked));

    (out, request, lost)
}

/// Starts `create --repair` at CEN and waits until it writes a volume.
fn repair_until_writing(cen: &Site, request: &Path, package: &Path, answer: &Path) -> Child {
    let mut cmd = parcel_cmd(cen);
    cmd.args([
        "create",
        "--repair",
        arg(request),
        "--package",
        arg(package),
    ])
    .args(["--out", arg(answer)])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    signals_as_at_a_terminal(&mut cmd, None);
    let mut child = cmd.spawn().expect("spawn parcel");
    let start = Instant::now();
    while !names_in(answer).iter().any(|n| n.ends_with(".partial")) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "create --repair ended first"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no volume started"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    child
}

#[test]
fn create_repair_interrupted_removes_its_unfinished_volumes_and_a_rerun_succeeds() {
    let (world, cen, bxl) = two_sites();
    let package = world.dir("tools");
    let (out, request, lost) = lose_volumes_and_ask_for_them(&world, &cen, &bxl, &package);

    let answer = world.medium();
    let child = repair_until_writing(&cen, &request, &package, &answer);
    send_signal(&child, libc::SIGINT);
    let output = child.wait_with_output().expect("wait");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.signal(), Some(libc::SIGINT), "{stderr}");
    assert!(
        stderr.contains("interrupted: the lost volumes of parcel tools-v1-"),
        "{stderr}"
    );
    // Neither a temporary file nor the lock is left.
    let left = names_in(&answer);
    assert!(left.iter().all(|n| !n.starts_with('.')), "{left:?}");

    let rerun = parcel_cmd(&cen)
        .args([
            "create",
            "--repair",
            arg(&request),
            "--package",
            arg(&package),
        ])
        .args(["--out", arg(&answer)])
        .output()
        .expect("rerun");
    assert!(rerun.status.success(), "{}", stderr_of(&rerun));
    assert_eq!(names_in(&answer).len(), lost, "{:?}", names_in(&answer));
    let imported = parcel_cmd(&bxl)
        .arg("import")
        .arg(&out)
        .arg(&answer)
        .output()
        .expect("import");
    assert!(imported.status.success(), "{}", stderr_of(&imported));
}

#[test]
fn create_repair_for_a_site_revoked_while_it_rebuilt_answers_nothing() {
    let (world, cen, bxl) = two_sites();
    let package = world.dir("tools");
    let (_out, request, _lost) = lose_volumes_and_ask_for_them(&world, &cen, &bxl, &package);
    let answer = world.medium();
    let repair = KillOnDrop(repair_until_writing(&cen, &request, &package, &answer));
    send_signal(&repair.0, libc::SIGSTOP);
    cen.run(&["key", "revoke", "BXL"]).success();
    send_signal(&repair.0, libc::SIGCONT);
    let output = repair.wait_with_output();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("whose key is revoked here (it changed while the volumes were rebuilt: they were removed)"),
        "{stderr}"
    );
    assert_eq!(names_in(&answer), Vec::<String>::new(), "{stderr}");
}

// ---------------------------------------------------------------------------
// Media swapped at a terminal.
// ---------------------------------------------------------------------------

/// `parcel create` at a terminal: its standard input and error are a
/// pseudo-terminal's (create asks for the next medium only at one), and
/// what it prints there is gathered in `screen`. Dropped, it kills parcel
/// if it still runs.
struct AtTerminal {
    child: Child,
    keyboard: fs::File,
    screen: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A new pseudo-terminal: its master and its slave, both close-on-exec, so
/// that no process another test starts meanwhile holds them open.
fn open_pty() -> (fs::File, OwnedFd) {
    // SAFETY: posix_openpt only opens a new master; the flags are valid.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a descriptor just opened, owned by nothing else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt and unlockpt act on the master just opened.
    unsafe {
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
    }
    let mut name: [libc::c_char; 128] = [0; 128];
    // SAFETY: the buffer is writable for the length given.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    assert!(
        slave >= 0,
        "open slave: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a descriptor just opened, owned by nothing else.
    (fs::File::from(master), unsafe {
        OwnedFd::from_raw_fd(slave)
    })
}

impl AtTerminal {
    fn create(cen: &Site, package: &Path, out: &Path) -> AtTerminal {
        AtTerminal::run(
            cen,
            &[
                "create",
                "--package",
                arg(package),
                "--package-id",
                "tools",
                "--version",
                "1",
                "--to",
                "BXL",
                "--volume-size",
                "1MiB",
                "--out",
                arg(out),
            ],
        )
    }

    /// `parcel ARGS` at `site`, at a terminal.
    fn run(site: &Site, args: &[&str]) -> AtTerminal {
        let (master, slave) = open_pty();
        let mut cmd = parcel_cmd(site);
        cmd.args(args)
            .stdin(slave.try_clone().expect("dup pty"))
            .stdout(Stdio::null())
            .stderr(slave);
        signals_as_at_a_terminal(&mut cmd, None);
        let child = cmd.spawn().expect("spawn parcel");
        // This process's copies of the slave close with `cmd`: reading the
        // master ends (EIO) once parcel has ended.
        drop(cmd);
        let screen = Arc::new(Mutex::new(String::new()));
        let mut display = master.try_clone().expect("dup pty");
        let shown = Arc::clone(&screen);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut display, &mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                shown.lock().expect("screen").push_str(&text);
            }
        });
        AtTerminal {
            child,
            keyboard: master,
            screen,
            reader: Some(reader),
        }
    }

    fn screen(&self) -> String {
        self.screen.lock().expect("screen").clone()
    }

    /// Waits until the screen shows `text` `times` times.
    fn wait_for(&mut self, text: &str, times: usize) {
        let start = Instant::now();
        while self.screen().matches(text).count() < times {
            assert!(
                self.child.try_wait().expect("wait").is_none(),
                "create ended before showing {text:?} {times} time(s): {}",
                self.screen()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{text:?} not shown {times} time(s) in a minute: {}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn type_line(&mut self, line: &str) {
        self.keyboard
            .write_all(format!("{line}\n").as_bytes())
            .expect("type");
    }

    /// Waits for parcel to end, and for the screen to show all it printed.
    fn finish(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "parcel did not end in a minute: {}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(reader) = self.reader.take() {
            let start = Instant::now();
            while !reader.is_finished() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the terminal stayed open after parcel ended"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            reader.join().expect("terminal reader");
        }
        (status, self.screen())
    }
}

impl Drop for AtTerminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const NEXT_MEDIUM: &str = "Insert the next medium";

/// CEN and BXL; a package of 9 MiB of volumes at CEN (96 incompressible
/// files) and a medium (a tmpfs) that holds 4 MiB of them. `None` where a
/// tmpfs cannot be mounted (not root). The tmpfs comes last, so that it is
/// unmounted before the world's directories go.
fn swap_media_setup() -> Option<(World, Site, Site, PathBuf, PathBuf, Tmpfs)> {
    let (world, cen, bxl) = two_sites();
    let package = world.dir("tools");
    write_big_package(&package, 96);
    let medium = world.dir("usb");
    let tmpfs = Tmpfs::mount(&medium, "4m")?;
    Some((world, cen, bxl, package, medium, tmpfs))
}

/// The full medium at `medium` into the post bag: what it holds is copied
/// into a new directory `medium-N` of `world` and taken off the medium.
fn take_out(world: &World, medium: &Path, bag: &mut Vec<PathBuf>) {
    let sent = world.dir(&format!("medium-{}", bag.len() + 1));
    for name in names_in(medium) {
        fs::copy(medium.join(&name), sent.join(&name)).expect("copy out");
        fs::remove_file(medium.join(&name)).expect("take out");
    }
    bag.push(sent);
}

/// Answers each prompt of `create` for the next medium after the first
/// `answered` with an empty medium, the full one going into `bag`, until
/// `create` ends.
fn swap_until_done(
    create: &mut AtTerminal,
    world: &World,
    medium: &Path,
    bag: &mut Vec<PathBuf>,
    mut answered: usize,
) {
    while create.child.try_wait().expect("wait").is_none() {
        if create.screen().matches(NEXT_MEDIUM).count() > answered {
            take_out(world, medium, bag);
            create.type_line("");
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Files of parcel `stem` in `dir` (volumes, temporary files, locks).
fn files_of(dir: &Path, stem: &str) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(stem) || n.starts_with(&format!(".{stem}")))
        .collect()
}

#[test]
fn create_onto_media_swapped_at_the_prompt_records_the_parcel_and_its_volumes_import() {
    let Some((world, cen, bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    let mut create = AtTerminal::create(&cen, &package, &medium);
    // Each full medium goes into the post bag; an empty one takes its place.
    let mut bag: Vec<PathBuf> = Vec::new();
    swap_until_done(&mut create, &world, &medium, &mut bag, 0);
    let (status, screen) = create.finish();
    assert!(status.success(), "{screen}");
    assert!(bag.len() >= 2, "{screen}");
    take_out(&world, &medium, &mut bag);
    // No hidden file is left on any medium, nor anything in the spool.
    for dir in &bag {
        let names = names_in(dir);
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
    assert_eq!(names_in(&cen.home.join("spool")), Vec::<String>::new());
    // Recorded with its volumes where they were copied, and it imports from
    // the media together.
    let list = cen.json(&["list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let id = list[0]["parcel_id"].as_str().expect("parcel id").to_owned();
    assert_eq!(cen.status(&id), "created");
    let paths: Vec<&Path> = bag.iter().map(PathBuf::as_path).collect();
    bxl.import(&paths).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn a_medium_taken_out_and_not_replaced_is_asked_for_again_not_written_beneath() {
    let Some((world, cen, bxl, package, medium, tmpfs)) = swap_media_setup() else {
        return;
    };
    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    let first = world.dir("medium-1");
    for name in names_in(&medium) {
        fs::copy(medium.join(&name), first.join(&name)).expect("copy out");
    }
    // The medium is taken out and Enter pressed before another is mounted:
    // the mount point is a bare directory of the disk beneath.
    drop(tmpfs);
    assert_eq!(names_in(&medium), Vec::<String>::new());
    create.type_line("");
    create.wait_for(NEXT_MEDIUM, 2);
    assert!(
        create
            .screen()
            .contains(&format!("no medium is mounted at {} now", medium.display())),
        "{}",
        create.screen()
    );
    assert_eq!(names_in(&medium), Vec::<String>::new(), "written beneath");
    // Another medium, and on with the copy.
    let Some(_again) = Tmpfs::mount(&medium, "4m") else {
        return;
    };
    create.type_line("");
    let mut bag = vec![first];
    swap_until_done(&mut create, &world, &medium, &mut bag, 2);
    let (status, screen) = create.finish();
    assert!(status.success(), "{screen}");
    // Each copy was read back from its medium.
    assert!(screen.contains(" and read back"), "{screen}");
    take_out(&world, &medium, &mut bag);
    let paths: Vec<&Path> = bag.iter().map(PathBuf::as_path).collect();
    bxl.import(&paths).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn volumes_for_swapped_media_are_sized_for_a_whole_medium_not_the_room_left_on_the_first() {
    let Some((_world, cen, _bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    // The medium in the drive is mostly full: 512 KiB free of 4 MiB.
    fs::write(medium.join("old-files"), vec![7u8; 3584 << 10]).expect("fill");
    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    let screen = create.screen();
    // About 9 MiB of 1 MiB volumes (--volume-size 1MiB): not volumes of
    // the 512 KiB left, twice as many.
    let count: usize = screen
        .split("Volume 1 of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("volume count on the screen");
    assert!((8..=12).contains(&count), "{count} volumes: {screen}");
    assert!(screen.contains("Volume 1 of "), "{screen}");
    create.type_line("q");
    let (status, screen) = create.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
}

#[test]
fn a_read_only_medium_inserted_at_the_prompt_is_asked_to_be_replaced() {
    let Some((world, cen, _bxl, package, medium, tmpfs)) = swap_media_setup() else {
        return;
    };
    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    take_out(&world, &medium, &mut Vec::new());
    // The next medium is write-protected.
    tmpfs.remount("ro");
    create.type_line("");
    create.wait_for(NEXT_MEDIUM, 2);
    let screen = create.screen();
    assert!(
        screen.contains(&format!(
            "the medium at {} cannot be written",
            medium.display()
        )),
        "{screen}"
    );
    tmpfs.remount("rw");
    create.type_line("q");
    let (status, screen) = create.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(screen.contains("stopped at volume "), "{screen}");
}

#[test]
fn create_onto_swapped_media_interrupted_at_the_prompt_removes_the_unrecorded_parcel() {
    let Some((world, cen, _bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    let spool = cen.home.join("spool");
    let first_medium = world.dir("first-medium");

    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    // The full medium is taken out (its volumes kept elsewhere), an empty one
    // put in, and Enter pressed.
    let on_first = names_in(&medium);
    assert!(!on_first.is_empty(), "{}", create.screen());
    for name in &on_first {
        fs::copy(medium.join(name), first_medium.join(name)).expect("copy out");
        fs::remove_file(medium.join(name)).expect("take out");
    }
    create.type_line("");
    create.wait_for(NEXT_MEDIUM, 2);
    let on_second = names_in(&medium);
    assert!(!on_second.is_empty(), "{}", create.screen());
    let stem = on_second[0]
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(stem.starts_with("tools-v1-"), "{on_second:?}");
    assert!(!files_of(&spool, &stem).is_empty());

    // Ctrl-C at the second prompt.
    send_signal(&create.child, libc::SIGINT);
    let (status, screen) = create.finish();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{screen}");
    for words in [
        format!("interrupted: parcel {stem} was not made"),
        format!(
            "{} of its volume(s) were copied onto earlier media: they belong to no parcel, delete them there",
            on_first.len()
        ),
    ] {
        assert!(screen.contains(&words), "no {words:?} in {screen}");
    }
    // Neither the spool nor the medium in the drive keeps any of it, and
    // the catalog never knew it.
    assert_eq!(files_of(&medium, &stem), Vec::<String>::new(), "{screen}");
    assert_eq!(files_of(&spool, &stem), Vec::<String>::new(), "{screen}");
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn create_onto_swapped_media_stopped_at_the_prompt_removes_the_unrecorded_parcel() {
    let Some((_world, cen, _bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    let spool = cen.home.join("spool");

    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    let copied = names_in(&medium);
    assert!(!copied.is_empty(), "{}", create.screen());
    let stem = copied[0].split('.').next().unwrap_or_default().to_owned();
    let spooled = files_of(&spool, &stem).len();
    assert!(spooled > 0);
    create.type_line("q");
    let (status, screen) = create.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    for words in [
        format!("stopped at volume {} of ", copied.len() + 1),
        format!(
            "parcel {stem} was not made; {} of its file(s) removed from {}, {}",
            spooled + copied.len(),
            spool.display(),
            medium.display()
        ),
        "run create again when the media to hold it are at hand".to_owned(),
    ] {
        assert!(screen.contains(&words), "no {words:?} in {screen}");
    }
    assert!(!screen.contains("earlier media"), "{screen}");
    assert_eq!(files_of(&medium, &stem), Vec::<String>::new(), "{screen}");
    assert_eq!(files_of(&spool, &stem), Vec::<String>::new(), "{screen}");
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn end_of_input_at_the_prompt_stops_as_q_does() {
    let Some((_world, cen, _bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    let mut create = AtTerminal::create(&cen, &package, &medium);
    create.wait_for(NEXT_MEDIUM, 1);
    // Ctrl-D at the start of a line: the read ends with nothing.
    create.keyboard.write_all(b"\x04").expect("type");
    let (status, screen) = create.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(screen.contains("stopped at volume "), "{screen}");
    assert_eq!(screen.matches(NEXT_MEDIUM).count(), 1, "{screen}");
    assert_eq!(names_in(&cen.home.join("spool")), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn what_a_killed_create_left_in_the_spool_goes_with_the_next_one() {
    let Some((_world, cen, _bxl, package, medium, _tmpfs)) = swap_media_setup() else {
        return;
    };
    let spool = cen.home.join("spool");
    let mut killed = AtTerminal::create(&cen, &package, &medium);
    killed.wait_for(NEXT_MEDIUM, 1);
    killed.child.kill().expect("SIGKILL");
    let _ = killed.finish();
    let stem_of = |names: &[String]| {
        names
            .first()
            .and_then(|n| n.split('.').next())
            .unwrap_or_default()
            .to_owned()
    };
    let left = names_in(&spool);
    let old = stem_of(&left);
    assert!(!files_of(&spool, &old).is_empty(), "{left:?}");
    for name in names_in(&medium) {
        fs::remove_file(medium.join(name)).expect("empty the medium");
    }

    // The next create onto swapped media empties the spool first.
    let mut next = AtTerminal::create(&cen, &package, &medium);
    next.wait_for(NEXT_MEDIUM, 1);
    let new = stem_of(&names_in(&medium));
    assert_ne!(new, old);
    assert_eq!(files_of(&spool, &old), Vec::<String>::new());
    assert!(!files_of(&spool, &new).is_empty());
    next.type_line("q");
    let (status, screen) = next.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert_eq!(names_in(&spool), Vec::<String>::new(), "{screen}");
}

// ---------------------------------------------------------------------------
// Full disks and media.
// ---------------------------------------------------------------------------

/// A tmpfs mounted on a directory for one test, unmounted when dropped.
/// Declare it after the [`World`] it lies in, so that it is dropped first.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`4m`…) at `dir`; `None`, saying why, when
    /// this process may not mount (not root, or no mount in a container).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "skipped: mounting a small tmpfs needs root, and this test runs as another user"
            );
            return None;
        }
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            other => {
                eprintln!(
                    "skipped: cannot mount a tmpfs at {}: {other:?}",
                    dir.display()
                );
                None
            }
        }
    }

    /// Changes the size of the mounted tmpfs.
    fn resize(&self, size: &str) {
        self.remount(&format!("size={size}"));
    }

    /// Mounts the tmpfs again with `options` (`ro`, `rw`, `size=…`).
    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .expect("mount -o remount");
        assert!(status.success(), "remount {}", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Bytes as the CLI writes them (`6.1 MiB`).
fn human(bytes: u64) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < 4 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", ["B", "KiB", "MiB", "GiB", "TiB"][unit]),
    }
}

/// CEN, and BXL whose home is a tmpfs of `size`; they trust each other.
fn sites_with_home_on_tmpfs(world: &World, size: &str) -> Option<(Site, Site, Tmpfs)> {
    let cen = world.site("CEN");
    let tmpfs = Tmpfs::mount(&world.dir("BXL-home"), size)?;
    let bxl = world.site("BXL");
    cen.trust(&bxl);
    bxl.trust(&cen);
    Some((cen, bxl, tmpfs))
}

/// What a failed import must leave: the store and staging trees and the
/// catalog's package list.
fn store_files(site: &Site) -> (BTreeMap<PathBuf, Node>, BTreeMap<PathBuf, Node>) {
    (
        snapshot(&site.home.join("packages")),
        snapshot(&site.home.join("staging")),
    )
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn import_refuses_a_parcel_larger_than_the_free_space_and_succeeds_once_there_is_room() {
    let world = World::new();
    let Some((cen, bxl, tmpfs)) = sites_with_home_on_tmpfs(&world, "4m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 64);
    let medium = world.medium();
    let parcel = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 1),
        &secret_key(&cen),
        &WriteOptions::default(),
        &medium,
    );
    let manifest = &parcel.manifest;
    let needed = manifest.content_bytes() + manifest.entries.len() as u64 * 4096;

    let files = store_files(&bxl);
    let catalog = bxl.json(&["packages", "--json"]);
    let output = parcel_cmd(&bxl)
        .arg("import")
        .arg(&medium)
        .output()
        .expect("import");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let staging = bxl.home.join("staging");
    for words in [
        format!("not enough space on {}", staging.display()),
        format!("needs {}, ", human(needed)),
        " available; free some space and run the import again".to_owned(),
    ] {
        assert!(stderr.contains(&words), "no {words:?} in {stderr}");
    }
    assert_eq!(store_files(&bxl), files);
    assert_eq!(bxl.json(&["packages", "--json"]), catalog);

    tmpfs.resize("32m");
    bxl.import(&[&medium]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn import_that_fills_the_disk_while_extracting_writes_nothing_and_succeeds_once_there_is_room() {
    let world = World::new();
    let Some((cen, bxl, _tmpfs)) = sites_with_home_on_tmpfs(&world, "24m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 128);
    let medium = world.medium();
    let parcel = Honest::write(
        &package,
        &info("CEN", "BXL", "tools", 1),
        &secret_key(&cen),
        &WriteOptions::default(),
        &medium,
    );
    let files = store_files(&bxl);
    let catalog = bxl.json(&["packages", "--json"]);

    // The free-space check passes (12 MiB of 24); once extraction has
    // begun, another writer takes every byte left.
    let staged = bxl
        .home
        .join("staging")
        .join(parcel.manifest.parcel_id.to_string());
    let mut child = parcel_cmd(&bxl)
        .arg("import")
        .arg(&medium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    let start = Instant::now();
    while !staged.exists() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "import ended before extracting"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no staging");
        std::thread::sleep(Duration::from_micros(100));
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child, not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let (staged_files, staged_bytes) = files_under(&staged);
    assert!(
        staged_bytes < parcel.manifest.content_bytes(),
        "extraction ended before the disk could fill ({staged_files} files)"
    );
    let filler = bxl.home.join("filler");
    let mut file = fs::File::create(&filler).expect("filler");
    let block = vec![0u8; 1 << 20];
    while file.write_all(&block).is_ok() {}
    drop(file);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let output = child.wait_with_output().expect("wait");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in [
        "not enough space on ",
        "needs ",
        " available; the disk filled during the import; nothing was imported",
    ] {
        assert!(stderr.contains(words), "no {words:?} in {stderr}");
    }
    assert_eq!(store_files(&bxl), files, "{stderr}");

    fs::remove_file(&filler).expect("remove filler");
    assert_eq!(bxl.json(&["packages", "--json"]), catalog);
    bxl.import(&[&medium]).success();
    bxl.assert_holds("tools", 1, &package);
    assert_eq!(names_in(&bxl.home.join("staging")), Vec::<String>::new());
}

/// CEN and BXL, and a medium for CEN's parcels that is a tmpfs of `size`.
fn sites_with_medium_on_tmpfs(world: &World, size: &str) -> Option<(Site, Site, Tmpfs)> {
    let (cen, bxl) = (world.site("CEN"), world.site("BXL"));
    cen.trust(&bxl);
    bxl.trust(&cen);
    let tmpfs = Tmpfs::mount(&world.dir("usb"), size)?;
    fs::set_permissions(&tmpfs.dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    Some((cen, bxl, tmpfs))
}

/// `parcel create` at CEN of `package` as tools v1 for BXL onto `out`, in
/// volumes of 1 MiB.
fn create_onto(cen: &Site, package: &Path, out: &Path) -> Command {
    let mut cmd = parcel_cmd(cen);
    cmd.args(["create", "--package", arg(package), "--package-id", "tools"])
        .args(["--version", "1", "--to", "BXL", "--volume-size", "1MiB"])
        .args(["--out", arg(out), "--json"]);
    cmd
}

/// Runs a successful create and checks BXL finds its volumes intact.
fn create_and_verify(cen: &Site, bxl: &Site, package: &Path, out: &Path) {
    let output = create_onto(cen, package, out).output().expect("create");
    assert!(output.status.success(), "{}", stderr_of(&output));
    bxl.run(&["verify", arg(out)]).success();
}

#[test]
fn create_refuses_a_medium_too_small_and_succeeds_once_there_is_room() {
    let world = World::new();
    let Some((cen, bxl, tmpfs)) = sites_with_medium_on_tmpfs(&world, "4m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 64);

    let output = create_onto(&cen, &package, &tmpfs.dir)
        .output()
        .expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in [
        format!("not enough space on {}: needs up to ", tmpfs.dir.display()),
        "MiB (the parcel's size before compression), ".to_owned(),
        "4.0 MiB available;".to_owned(),
    ] {
        assert!(stderr.contains(&words), "no {words:?} in {stderr}");
    }
    // Room for 4 whole volumes of 1 MiB in 4.5 MiB: the rest is no room.
    tmpfs.resize("4608k");
    let output = create_onto(&cen, &package, &tmpfs.dir)
        .output()
        .expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let words = "4.0 MiB available as whole volumes of 1.0 MiB (4.5 MiB free);";
    assert!(stderr.contains(words), "no {words:?} in {stderr}");
    assert_eq!(names_in(&tmpfs.dir), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));

    // Two folders on that one medium share its room: it is counted once.
    let (a, b) = (tmpfs.dir.join("a"), tmpfs.dir.join("b"));
    fs::create_dir(&a).expect("mkdir");
    fs::create_dir(&b).expect("mkdir");
    let output = create_onto(&cen, &package, &a)
        .args(["--out", arg(&b), "--no-space-check"])
        .output()
        .expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let free = stderr
        .split(" available on the 2 --out media together")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .unwrap_or_default()
        .to_owned();
    // The tmpfs's 4.5 MiB, once (it read 9.0 MiB).
    assert_eq!(free, "4.5 MiB", "{stderr}");
    assert!(
        stderr.contains("the media filled while the volumes were written"),
        "{stderr}"
    );
    fs::remove_dir(&a).expect("rmdir");
    fs::remove_dir(&b).expect("rmdir");

    tmpfs.resize("32m");
    create_and_verify(&cen, &bxl, &package, &tmpfs.dir);
}

#[test]
fn a_volume_larger_than_the_medium_takes_says_to_choose_a_smaller_volume_size() {
    let world = World::new();
    let cen = world.site("CEN");
    cen.trust(&world.site("BXL"));
    let package = world.dir("tools");
    write_big_package(&package, 8);
    let out = world.dir("stick");
    let mut create = create_onto(&cen, &package, &out);
    // Files of at most 256 KiB, as a file system with a small file size
    // limit takes them (FAT32's is 4 GiB − 1): writing past it is EFBIG.
    // SAFETY: between fork and exec only async-signal-safe calls: signal
    // and setrlimit.
    unsafe {
        create.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 256 << 10,
                rlim_max: 256 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = create.output().expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in [
        format!("writing volume 1 in {}: File too large", out.display()),
        "give a smaller --volume-size (fat32 for a FAT32 medium)".to_owned(),
    ] {
        assert!(stderr.contains(&words), "no {words:?} in {stderr}");
    }
    assert_eq!(names_in(&out), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn import_from_a_full_medium_writes_its_receipt_in_the_home() {
    let world = World::new();
    let Some((cen, bxl, tmpfs)) = sites_with_medium_on_tmpfs(&world, "4m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 4);
    create_and_verify(&cen, &bxl, &package, &tmpfs.dir);
    // The medium as create leaves it when the parcel fills it: no byte free.
    let mut filler = fs::File::create(tmpfs.dir.join("filler")).expect("filler");
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    drop(filler);

    let output = parcel_cmd(&bxl)
        .args(["import", arg(&tmpfs.dir), "--json"])
        .output()
        .expect("import");
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let receipt = PathBuf::from(json["receipt"].as_str().expect("receipt path"));
    assert!(
        receipt.starts_with(bxl.home.join("receipts")),
        "{receipt:?}"
    );
    assert!(receipt.is_file());
    // Said, --quiet as it is: the user would look for it on the medium.
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!(
            "warning: the receipt could not go beside the volumes (the medium is read-only, full, or a file is in the way): it is {}; copy it onto the medium going back to site CEN",
            receipt.display()
        )),
        "{stderr}"
    );
    bxl.assert_holds("tools", 1, &package);
    assert!(!names_in(&tmpfs.dir).iter().any(|n| n.ends_with(".receipt")));
}

#[test]
fn create_onto_a_read_only_medium_names_it_and_leaves_nothing() {
    let world = World::new();
    let Some((cen, _bxl, tmpfs)) = sites_with_medium_on_tmpfs(&world, "32m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 4);
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&tmpfs.dir)
        .status()
        .expect("mount -o remount,ro");
    assert!(status.success());
    let output = create_onto(&cen, &package, &tmpfs.dir)
        .output()
        .expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in [
        format!("in {}", tmpfs.dir.display()),
        "check that the medium is mounted and writable".to_owned(),
    ] {
        assert!(stderr.contains(&words), "no {words:?} in {stderr}");
    }
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn create_that_fills_the_medium_removes_its_volumes_and_succeeds_once_there_is_room() {
    let world = World::new();
    let Some((cen, bxl, tmpfs)) = sites_with_medium_on_tmpfs(&world, "4m") else {
        return;
    };
    let package = world.dir("tools");
    write_big_package(&package, 64);

    let output = create_onto(&cen, &package, &tmpfs.dir)
        .arg("--no-space-check")
        .output()
        .expect("create");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for words in [
        format!("not enough space on {}: needs up to ", tmpfs.dir.display()),
        "MiB (the parcel's size before compression), ".to_owned(),
        " available; the medium filled while the volumes were written, and they were removed"
            .to_owned(),
    ] {
        assert!(stderr.contains(&words), "no {words:?} in {stderr}");
    }
    assert_eq!(names_in(&tmpfs.dir), Vec::<String>::new());
    assert_eq!(cen.json(&["list", "--json"]), serde_json::json!([]));

    tmpfs.resize("32m");
    create_and_verify(&cen, &bxl, &package, &tmpfs.dir);
}

#[test]
fn a_key_replacement_declined_at_a_terminal_leaves_the_old_key_trusted() {
    let (world, _cen, bxl) = two_sites();
    let before = bxl.json(&["key", "list", "--json"]);
    // CEN set up again elsewhere: the same code, a new key.
    let elsewhere = World::new();
    let new_cen = elsewhere.site("CEN");
    let file = world.dir("mail").join("new-CEN.pub");
    new_cen.export_key(&file);
    let mut trust = AtTerminal::run(&bxl, &["key", "trust", arg(&file)]);
    trust.wait_for("[y/N]", 1);
    trust.type_line("n");
    let (status, screen) = trust.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(
        screen.contains("the key of site CEN was not replaced; it stays trusted with its old key"),
        "{screen}"
    );
    assert_eq!(bxl.json(&["key", "list", "--json"]), before);
}

// ---------------------------------------------------------------------------
// Failures injected into single system calls (strace).

/// `cmd` under strace, which logs to `log` the `fsync` calls made on
/// `paths` (and only those: strace counts them alone) and makes the
/// `fail`-th of them fail with EIO. `None` where strace is not installed or
/// may not trace here.
fn with_failing_fsync(
    cmd: &Command,
    paths: &[&Path],
    log: &Path,
    fail: Option<u32>,
) -> Option<Command> {
    let usable = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("strace cannot run here: test skipped");
        return None;
    }
    let mut strace = Command::new("strace");
    strace.args(["-qq", "-y", "-e", "trace=fsync", "-o", arg(log)]);
    if let Some(n) = fail {
        strace.args(["-e", &format!("inject=fsync:error=EIO:when={n}")]);
    }
    for path in paths {
        strace.arg("-P").arg(path);
    }
    strace.arg(cmd.get_program()).args(cmd.get_args());
    strace.env_remove("PARCEL_HOME");
    Some(strace)
}

/// The `fsync` calls of a [`with_failing_fsync`] log, in order: the file
/// each was made on, and whether it was the one made to fail.
fn fsyncs_in(log: &Path) -> Vec<(PathBuf, bool)> {
    fs::read_to_string(log)
        .expect("strace log")
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("fsync(")?;
            let (_, rest) = rest.split_once('<')?;
            let (path, _) = rest.split_once(">)")?;
            Some((PathBuf::from(path), line.contains("(INJECTED)")))
        })
        .collect()
}

/// BXL's import of CEN's parcel of tools v1 (over two media, the receipt
/// going on the first) under [`with_failing_fsync`] of `paths`.
struct TracedImport {
    _world: World,
    bxl: Site,
    package: PathBuf,
    media: [PathBuf; 2],
    before: common::StoreState,
    output: Output,
    fsyncs: Vec<(PathBuf, bool)>,
}

fn import_traced(
    paths: impl Fn(&Site, &[PathBuf; 2]) -> Vec<PathBuf>,
    fail: Option<u32>,
) -> Option<TracedImport> {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 1);
    let media = [world.medium(), world.medium()];
    cen.create(&package, "tools", 1, "BXL", &[&media[0], &media[1]]);
    let before = bxl.store_state();
    let log = world.dir("trace").join("fsync.log");
    let mut import = parcel_cmd(&bxl);
    import.args(["import", arg(&media[0]), arg(&media[1])]);
    let paths = paths(&bxl, &media);
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let output = with_failing_fsync(&import, &paths, &log, fail)?
        .output()
        .expect("import under strace");
    let fsyncs = fsyncs_in(&log);
    Some(TracedImport {
        _world: world,
        bxl,
        package,
        media,
        before,
        output,
        fsyncs,
    })
}

/// The number strace gives the `fsync` right after the first one on
/// `anchor`, among those a run of `import_traced` with `paths` makes.
fn fsync_after(
    paths: impl Fn(&Site, &[PathBuf; 2]) -> Vec<PathBuf>,
    anchor: impl Fn(&Site, &[PathBuf; 2]) -> PathBuf,
) -> Option<u32> {
    let run = import_traced(&paths, None)?;
    assert!(run.output.status.success(), "{}", stderr_of(&run.output));
    let anchor = anchor(&run.bxl, &run.media);
    let at = run
        .fsyncs
        .iter()
        .position(|(path, _)| *path == anchor)
        .unwrap_or_else(|| panic!("no fsync on {}: {:?}", anchor.display(), run.fsyncs));
    // strace counts from 1; the one after.
    Some(u32::try_from(at + 2).expect("a few calls"))
}

/// Asserts that the one failed `fsync` of `run` was on `path`.
#[track_caller]
fn assert_failed_on(run: &TracedImport, path: &Path) {
    let failed: Vec<&PathBuf> = run.fsyncs.iter().filter(|f| f.1).map(|f| &f.0).collect();
    assert_eq!(failed, [path], "{}", stderr_of(&run.output));
}

fn package_dir(bxl: &Site) -> PathBuf {
    bxl.home.join("packages").join("tools")
}

fn catalog_wal(bxl: &Site) -> PathBuf {
    bxl.home.join("catalog.db-wal")
}

/// Asserts that `run` failed (exit 1) saying `words` and that the store and
/// catalog are as before it, and that the import then succeeds.
#[track_caller]
fn assert_nothing_imported_then_imports(run: &TracedImport, words: &[String]) {
    let stderr = stderr_of(&run.output);
    assert_eq!(run.output.status.code(), Some(1), "{stderr}");
    for words in words {
        assert!(stderr.contains(words.as_str()), "no {words:?} in {stderr}");
    }
    assert_eq!(run.bxl.store_state(), run.before);
    let [one, two] = &run.media;
    let json = run.bxl.json(&["import", arg(one), arg(two), "--json"]);
    assert_eq!(json["already_imported"], false, "{json}");
    run.bxl.assert_holds("tools", 1, &run.package);
}

#[test]
fn import_whose_store_fails_after_the_switch_leaves_the_store_as_it_was() {
    // The sync of the package's directory right after the rename into it.
    let Some(run) = import_traced(|bxl, _| vec![package_dir(bxl)], Some(1)) else {
        return;
    };
    assert_failed_on(&run, &package_dir(&run.bxl));
    assert_nothing_imported_then_imports(
        &run,
        &[
            format!("cannot sync {}: ", package_dir(&run.bxl).display()),
            "nothing was imported (the package was taken out of the store again)".to_owned(),
        ],
    );
}

#[test]
fn import_whose_catalog_fails_to_record_it_leaves_the_store_as_it_was() {
    // The catalog's sync that records the import: the first after the
    // package's directory was synced.
    let paths = |bxl: &Site, _: &[PathBuf; 2]| vec![package_dir(bxl), catalog_wal(bxl)];
    let Some(record) = fsync_after(paths, |bxl, _| package_dir(bxl)) else {
        return;
    };
    let run = import_traced(paths, Some(record)).expect("strace");
    assert_failed_on(&run, &catalog_wal(&run.bxl));
    assert_nothing_imported_then_imports(
        &run,
        &["nothing was imported (the package was taken out of the store again): run the same import again once the catalog can be written".to_owned()],
    );
}

#[test]
fn import_whose_last_history_note_fails_still_succeeds_and_says_so() {
    // The catalog's sync of the note that the receipt was written: the
    // first after the medium it went to was synced.
    let paths = |bxl: &Site, media: &[PathBuf; 2]| vec![catalog_wal(bxl), media[0].clone()];
    let Some(note) = fsync_after(paths, |_, media| media[0].clone()) else {
        return;
    };
    let run = import_traced(paths, Some(note)).expect("strace");
    assert_failed_on(&run, &catalog_wal(&run.bxl));
    let stderr = stderr_of(&run.output);
    assert!(run.output.status.success(), "{stderr}");
    for words in [
        "parcel: warning: parcel ",
        " was imported and its receipt written to ",
        "only the note \"receipt written to ",
        "nothing needs doing about it",
    ] {
        assert!(stderr.contains(words), "no {words:?} in {stderr}");
    }
    run.bxl.assert_holds("tools", 1, &run.package);
    assert!(names_in(&run.media[0])
        .iter()
        .any(|n| n.ends_with(".receipt")));
}
