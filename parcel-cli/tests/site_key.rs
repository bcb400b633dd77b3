//! End-to-end tests of site setup, key exchange between two sites, and the
//! catalog-only tracking commands, each run against throw-away homes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

/// `parcel --home <home> …`, with no `PARCEL_HOME` leaking in from outside.
fn parcel(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("parcel").expect("parcel binary");
    cmd.env_remove("PARCEL_HOME").arg("--home").arg(home);
    cmd
}

/// A temporary directory with a site `code` set up in `<dir>/home`.
fn site(code: &str, name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    parcel(&home)
        .args(["site", "init", "--code", code, "--name", name])
        .assert()
        .success();
    (dir, home)
}

/// Exports the site's key file into its temp dir and returns the path and fingerprint.
fn export_key(dir: &TempDir, home: &Path, code: &str) -> (PathBuf, String) {
    let file = dir.path().join(format!("{code}.pub"));
    parcel(home)
        .args(["key", "export", "--out"])
        .arg(&file)
        .assert()
        .success();
    let text = std::fs::read_to_string(&file).expect("key file");
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .expect("fingerprint line")
        .to_string();
    (file, fingerprint)
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn site_init_creates_a_private_home_and_secret_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    parcel(&home)
        .args(["site", "init", "--code", "CEN", "--name", "Central office"])
        .assert()
        .success()
        .stdout(predicate::str::contains("CEN"))
        .stdout(predicate::str::is_match(r"Fingerprint: (\d{5} ){5}\d{5}").expect("regex"))
        .stderr(predicate::str::contains(" key export --out CEN.pub"));
    let key_mode = std::fs::metadata(home.join("site.key"))
        .expect("site.key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let home_mode = std::fs::metadata(&home).expect("home").permissions().mode();
    assert_eq!(home_mode & 0o777, 0o700);
}

#[test]
fn hints_give_the_home_a_command_needs_to_be_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("my home");
    let quoted = format!(
        "`parcel --home '{}' key export --out CEN.pub`",
        home.display()
    );
    parcel(&home)
        .args(["site", "init", "--code", "CEN"])
        .assert()
        .success()
        .stderr(predicate::str::contains(quoted));
    // From PARCEL_HOME, the command runs as it is.
    let other = dir.path().join("other");
    Command::cargo_bin("parcel")
        .expect("parcel binary")
        .env("PARCEL_HOME", &other)
        .args(["site", "init", "--code", "BXL"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "run `parcel key export --out BXL.pub`",
        ));
}

#[test]
fn an_error_naming_a_bare_command_says_the_home_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("not set up");
    let note = format!(
        "(run at this site, `parcel` in the command(s) above is `parcel --home '{}'`)",
        home.display()
    );
    // A bare `parcel site init` would set up the default home, not this one.
    parcel(&home)
        .arg("list")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "run `parcel site init --code CODE` first",
        ))
        .stderr(predicate::str::contains(note));
    // From PARCEL_HOME, the bare command is the right one: no note.
    Command::cargo_bin("parcel")
        .expect("parcel binary")
        .env("PARCEL_HOME", &home)
        .arg("list")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "run `parcel site init --code CODE` first",
        ))
        .stderr(predicate::str::contains("(run at this site").not());
}

#[test]
fn site_init_refuses_a_home_inside_another_sites_home() {
    let (_dir, home) = site("CEN", "Central");
    let inner = home.join("packages").join("app");
    parcel(&inner)
        .args(["site", "init", "--code", "BXL"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "is inside the home of another site ({})",
            home.display()
        )));
    assert!(!inner.exists());
    // Through a symlink into that store, too.
    let link = home.parent().expect("dir").join("shortcut");
    std::os::unix::fs::symlink(home.join("packages"), &link).expect("symlink");
    parcel(&link.join("inner"))
        .args(["site", "init", "--code", "BXL"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is inside the home of another site",
        ));
    // A path that only passes through a site's home by `..` is not inside it.
    let beside = home.join("..").join("beside");
    parcel(&beside)
        .args(["site", "init", "--code", "BXL"])
        .assert()
        .success();
}

#[test]
fn site_init_refuses_a_second_site_in_the_same_home() {
    let (_dir, home) = site("CEN", "Central office");
    let key_before = std::fs::read(home.join("site.key")).expect("key");
    parcel(&home)
        .args(["site", "init", "--code", "NOR"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already holds site CEN"));
    assert_eq!(
        std::fs::read(home.join("site.key")).expect("key"),
        key_before
    );
}

#[test]
fn a_home_whose_catalog_was_lost_says_to_restore_it_and_init_keeps_out() {
    let (_dir, home) = site("CEN", "Central office");
    std::fs::remove_file(home.join("catalog.db")).expect("lose the catalog");
    for args in [
        &["list"][..],
        &["site", "init", "--code", "CEN"][..],
        &["site", "show"][..],
    ] {
        parcel(&home)
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "holds a site's secret key (site.key) but no catalog",
            ))
            .stderr(predicate::str::contains(
                "Restore catalog.db from a backup of this home",
            ));
    }
    // The refused init made no empty catalog for the next command to use.
    assert!(!home.join("catalog.db").exists());
}

#[test]
fn an_empty_parcel_home_variable_is_named_as_such() {
    Command::cargo_bin("parcel")
        .expect("parcel binary")
        .env("PARCEL_HOME", "")
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("PARCEL_HOME is set but empty"));
}

#[test]
fn site_init_with_a_bad_code_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    for code in ["cen", "CENT", "C1", "C-1"] {
        parcel(&home)
            .args(["site", "init", "--code", code])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("3 characters"));
    }
    assert!(!home.exists(), "a refused init must not create the home");
}

#[test]
fn site_show_prints_the_site_as_json() {
    let (_dir, home) = site("CEN", "Central office");
    let text = stdout_of(parcel(&home).args(["site", "show", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["code"], "CEN");
    assert_eq!(json["name"], "Central office");
    assert_eq!(json["key"].as_str().map(str::len), Some(64));
}

#[test]
fn commands_on_a_home_without_a_site_say_to_run_site_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("nowhere");
    parcel(&home)
        .args(["key", "export"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("parcel site init"));
    assert!(!home.exists(), "reading commands must not create a home");
}

#[test]
fn a_home_that_is_a_file_is_named_as_such_not_as_a_missing_site() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "not a home").expect("write");
    for args in [&["list"][..], &["site", "init", "--code", "CEN"][..]] {
        parcel(&file)
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("is not a directory; give --home"))
            .stderr(predicate::str::contains("no parcel site in").not());
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"not a home");
}

#[test]
fn demo_into_a_file_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "mine").expect("write");
    let mut cmd = Command::cargo_bin("parcel").expect("parcel binary");
    cmd.env_remove("PARCEL_HOME")
        .args(["demo", "--dir"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a directory; give an empty or new directory to --dir",
        ));
    assert_eq!(std::fs::read(&file).expect("read"), b"mine");
}

#[test]
fn key_export_writes_over_nothing_but_this_sites_own_key_file() {
    let (dir, home) = site("CEN", "Central office");
    let (file, _) = export_key(&dir, &home, "CEN");
    // A rerun replaces the site's own key file.
    let (again, _) = export_key(&dir, &home, "CEN");
    assert_eq!(again, file);

    let (lux_dir, lux_home) = site("LUX", "Luxembourg");
    let (lux_file, _) = export_key(&lux_dir, &lux_home, "LUX");
    let volume = dir.path().join("CEN-v1-0011aabb.001-of-002.tar");
    std::fs::write(&volume, b"a volume on its way").expect("volume");
    for target in [
        home.join("site.key"),
        home.join("catalog.db"),
        volume,
        lux_file,
    ] {
        let before = std::fs::read(&target).expect("read before");
        parcel(&home)
            .args(["key", "export", "--out"])
            .arg(&target)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "already exists and is not a public key file of this site",
            ));
        assert_eq!(
            std::fs::read(&target).expect("read after"),
            before,
            "{} was written over",
            target.display()
        );
    }
    // The site still works: its secret key and catalog are intact.
    parcel(&home).args(["key", "export"]).assert().success();
}

#[test]
fn exported_key_file_has_the_documented_format() {
    let (dir, home) = site("CEN", "Central office");
    let to_stdout = stdout_of(parcel(&home).args(["key", "export"]));
    let (file, fingerprint) = export_key(&dir, &home, "CEN");
    let text = std::fs::read_to_string(file).expect("read");
    assert_eq!(text, to_stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0], "parcel-site-key v1");
    assert_eq!(lines[1], "site: CEN");
    assert_eq!(lines[2], "name: Central office");
    let key = lines[3].strip_prefix("key: ").expect("key line");
    assert!(key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(lines[4], format!("fingerprint: {fingerprint}"));
    let recipient = lines[5]
        .strip_prefix("encryption-key: ")
        .expect("encryption-key line");
    assert!(recipient.starts_with("age1"), "{recipient}");
    let signature = lines[6]
        .strip_prefix("encryption-key-signature: ")
        .expect("encryption-key-signature line");
    assert!(
        signature.len() == 128
            && signature
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
}

#[test]
fn key_trust_with_the_right_fingerprint_trusts_the_site() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, fingerprint) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .args(["--fingerprint", &fingerprint.replace(' ', "-")])
        .assert()
        .success()
        .stdout(predicate::str::contains("Trusted site CEN"));
    let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json[0]["code"], "CEN");
    assert_eq!(json[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(json[0]["state"], "trusted");
}

#[test]
fn key_trust_with_a_wrong_fingerprint_is_refused_and_trusts_nothing() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, _) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .args(["--fingerprint", "11111 22222 33333 44444 55555 66666"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("CEN"))
        .stderr(predicate::str::contains("nothing was trusted"));
    // A fingerprint mistyped (too few digits) is a usage error.
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .args(["--fingerprint", "43489 48900"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a fingerprint is 30 digits"));
    parcel(&nor)
        .args(["key", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("No trusted sites"));
}

#[test]
fn key_trust_without_a_terminal_trusts_and_prints_the_fingerprint() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, fingerprint) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains(fingerprint));
}

#[test]
fn key_trust_keeps_the_recorded_name_of_a_trusted_key_unless_told_otherwise() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, fingerprint) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .success();
    let before = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    // A copy of the file with its (unsigned) name line edited.
    let edited = cen_dir.path().join("CEN-edited.pub");
    let text = std::fs::read_to_string(&file).expect("key file");
    std::fs::write(
        &edited,
        text.replace("name: Central office", "name: Head quarters"),
    )
    .expect("edited key file");
    // The trust date must stay too: let the clock move on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&edited)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Already trusted: site CEN (Central office)",
        ))
        .stderr(predicate::str::contains(
            "names site CEN \"Head quarters\", but this site knows it as \"Central office\"",
        ))
        .stderr(predicate::str::contains("--fingerprint"));
    assert_eq!(
        stdout_of(parcel(&nor).args(["key", "list", "--json"])),
        before
    );
    // Confirmed with the fingerprint, the new name is recorded (and the
    // site stays trusted since it was first trusted).
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&edited)
        .args(["--fingerprint", &fingerprint])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Renamed the already trusted site CEN (Head quarters)",
        ));
    let after: serde_json::Value =
        serde_json::from_str(&stdout_of(parcel(&nor).args(["key", "list", "--json"])))
            .expect("json");
    let before: serde_json::Value = serde_json::from_str(&before).expect("json");
    assert_eq!(after[0]["name"], "Head quarters");
    assert_eq!(after[0]["trusted_at"], before[0]["trusted_at"]);
}

#[test]
fn key_trust_refuses_this_sites_own_key() {
    let (dir, home) = site("CEN", "Central office");
    let (file, fingerprint) = export_key(&dir, &home, "CEN");
    parcel(&home)
        .args(["key", "trust"])
        .arg(&file)
        .args(["--fingerprint", &fingerprint])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("does not trust its own key"));
}

#[test]
fn a_revoked_key_that_was_replaced_is_not_taken_back() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (other_dir, other_cen) = site("CEN", "Central office, new machine");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (old_file, old_fp) = export_key(&cen_dir, &cen, "CEN");
    let (new_file, new_fp) = export_key(&other_dir, &other_cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&old_file)
        .assert()
        .success();
    parcel(&nor)
        .args(["key", "revoke", "CEN"])
        .assert()
        .success();
    parcel(&nor)
        .args(["key", "trust", "--fingerprint", &new_fp])
        .arg(&new_file)
        .assert()
        .success();
    // The stolen key offered again for CEN, fingerprint and all: refused.
    parcel(&nor)
        .args(["key", "trust", "--fingerprint", &old_fp])
        .arg(&old_file)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "a revoked key that was replaced is not taken back",
        ));
    let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json[0]["fingerprint"], new_fp.as_str());
}

#[test]
fn key_trust_of_a_new_key_for_a_known_site_replaces_it_loudly() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (other_dir, other_cen) = site("CEN", "Central office, new machine");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (old_file, _) = export_key(&cen_dir, &cen, "CEN");
    let (new_file, new_fp) = export_key(&other_dir, &other_cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&old_file)
        .assert()
        .success();
    // Without a terminal to confirm at, a replacement needs the fingerprint.
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&new_file)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "site CEN is already trusted with another key",
        ))
        .stderr(predicate::str::contains(format!(
            "The key in this file has fingerprint {new_fp}"
        )))
        // Not a command ready to paste: the fingerprint to give is the one
        // the site reads out, not the file's.
        .stderr(predicate::str::contains("--fingerprint '").not());
    let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_ne!(
        json[0]["fingerprint"],
        new_fp.as_str(),
        "nothing was changed"
    );
    parcel(&nor)
        .args(["key", "trust", "--fingerprint", &new_fp])
        .arg(&new_file)
        .assert()
        .success()
        .stderr(predicate::str::contains("DIFFERENT KEY"));
    let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(json[0]["fingerprint"], new_fp.as_str());
    // The replaced key stays CEN's for good: a copy of its file naming
    // another site (the site line is not signed) is refused, even unseen.
    let renamed = cen_dir.path().join("ZZZ.pub");
    // (Without its encryption key, whose signature names the site: a file
    // from before encryption, which is still taken.)
    let text: String = std::fs::read_to_string(&old_file)
        .expect("old key file")
        .lines()
        .filter(|l| !l.starts_with("encryption-key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&renamed, text.replace("site: CEN", "site: ZZZ")).expect("write");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&renamed)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("it names site ZZZ but its key"))
        .stderr(predicate::str::contains(
            "was the key of site CEN until it was replaced on",
        ));
    let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(1));
}

#[test]
fn key_trust_refuses_a_key_already_trusted_under_another_site_code() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, fp) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .success();
    // The same key under another code (the encryption lines, bound to the
    // site code, left out).
    let text = std::fs::read_to_string(&file).expect("key file");
    let renamed: String = text
        .lines()
        .filter(|l| !l.starts_with("encryption"))
        .map(|l| l.replace("site: CEN", "site: XYZ") + "\n")
        .collect();
    assert!(renamed.contains("site: XYZ"), "{renamed}");
    let other = cen_dir.path().join("XYZ.pub");
    std::fs::write(&other, renamed).expect("write");
    for revoked in [false, true] {
        if revoked {
            parcel(&nor)
                .args(["key", "revoke", "CEN"])
                .assert()
                .success();
        }
        parcel(&nor)
            .args(["key", "trust", "--fingerprint", &fp])
            .arg(&other)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("is already the key of site CEN"));
        let text = stdout_of(parcel(&nor).args(["key", "list", "--json"]));
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
        assert_eq!(json[0]["code"], "CEN", "{json}");
    }
    // Undoing the revocation without a terminal needs the fingerprint too.
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .code(4)
        .stderr(predicate::str::contains("site CEN had this key revoked"));
    parcel(&nor)
        .args(["key", "trust", "--fingerprint", &fp])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("Trusted again"));
}

#[test]
fn key_trust_refuses_an_edited_key_file_naming_it() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, _) = export_key(&cen_dir, &cen, "CEN");
    let text = std::fs::read_to_string(&file).expect("read");
    let edited = text.replace("fingerprint: ", "fingerprint: 9");
    std::fs::write(&file, edited).expect("write");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CEN.pub"))
        .stderr(predicate::str::contains("fingerprint does not match"));

    std::fs::write(&file, vec![b'x'; 70 * 1024]).expect("write");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("larger than"));
}

#[test]
fn key_revoke_keeps_the_site_listed_as_revoked() {
    let (cen_dir, cen) = site("CEN", "Central office");
    let (_nor_dir, nor) = site("NOR", "North depot");
    let (file, _) = export_key(&cen_dir, &cen, "CEN");
    parcel(&nor)
        .args(["key", "trust"])
        .arg(&file)
        .assert()
        .success();
    parcel(&nor)
        .args(["key", "revoke", "CEN"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Revoked"));
    parcel(&nor)
        .args(["key", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("CEN").and(predicate::str::contains("revoked")));
    parcel(&nor)
        .args(["key", "revoke", "SUD"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SUD"));
    parcel(&nor)
        .args(["key", "revoke", "NOR"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NOR is this site"));
}

#[test]
fn every_subcommand_help_contains_an_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commands: &[&[&str]] = &[
        &[],
        &["site"],
        &["site", "init"],
        &["site", "show"],
        &["key"],
        &["key", "export"],
        &["key", "trust"],
        &["key", "list"],
        &["key", "revoke"],
        &["create"],
        &["verify"],
        &["import"],
        &["receipt"],
        &["receipt", "apply"],
        &["forward"],
        &["list"],
        &["show"],
        &["sent"],
        &["packages"],
        &["demo"],
    ];
    for command in commands {
        parcel(dir.path())
            .args(*command)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains("Example:"));
    }
}

#[test]
fn list_and_packages_on_an_empty_catalog_say_so() {
    let (_dir, home) = site("CEN", "Central office");
    parcel(&home)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("No parcels"));
    let text = stdout_of(parcel(&home).args(["list", "--outgoing", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("json"),
        serde_json::json!([])
    );
    let text = stdout_of(parcel(&home).args(["packages", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("json"),
        serde_json::json!([])
    );
    parcel(&home)
        .args(["list", "--incoming", "--outgoing"])
        .assert()
        .code(2);
}

#[test]
fn show_and_sent_of_an_unknown_parcel_fail_naming_it() {
    let (_dir, home) = site("CEN", "Central office");
    parcel(&home)
        .args(["show", "0123456789abcdef"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("0123456789abcdef"));
    parcel(&home)
        .args(["sent", "0123456789abcdef", "--via", "DHL"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("parcel: error: "))
        .stderr(predicate::str::contains("0123456789abcdef"))
        .stderr(predicate::str::contains("parcel list"));
}

#[test]
fn unimplemented_commands_fail_cleanly_not_with_a_panic() {
    let (_dir, home) = site("CEN", "Central office");
    parcel(&home)
        .args(["receipt", "apply", "nothing.txt"])
        .assert()
        .failure()
        .stderr(predicate::str::starts_with("parcel: error: "));
}

#[test]
fn a_missing_secret_key_or_a_damaged_catalog_is_named_with_what_to_do() {
    let (dir, home) = site("CEN", "Central office");
    let key = home.join("site.key");
    std::fs::rename(&key, dir.path().join("kept.key")).expect("move key");
    parcel(&home)
        .args(["key", "export"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("site.key: missing; restore"));
    std::fs::rename(dir.path().join("kept.key"), &key).expect("restore key");
    std::fs::write(home.join("catalog.db"), vec![0x5a; 8192]).expect("damage");
    parcel(&home)
        .args(["site", "show"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "restore catalog.db from a backup of this home",
        ));
}

#[test]
fn demo_runs_the_whole_flow_and_quiet_keeps_its_steps_from_printing_hints() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (quiet, run) in [(false, "loud"), (true, "quiet")] {
        let mut cmd = Command::cargo_bin("parcel").expect("parcel binary");
        cmd.env_remove("PARCEL_HOME");
        if quiet {
            cmd.arg("--quiet");
        }
        let output = cmd
            .args(["demo", "--dir"])
            .arg(dir.path().join(run))
            .output()
            .expect("demo");
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("$ parcel"), "{stdout}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.contains("next:"), !quiet, "{stderr}");
    }
}
