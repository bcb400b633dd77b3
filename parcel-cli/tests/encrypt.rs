//! End-to-end tests of encrypted parcels (FORMAT.md §12): only the
//! destination can import them, any site can check their media, the volumes
//! hold no file name and no content in the clear, tampering is refused, and
//! the encryption key travels in the site key file under the site's signature.

#[allow(dead_code)] // each test crate uses part of the shared fixtures
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use predicates::prelude::*;

use common::forge::{flip_byte, resign_all, secret_key, tar_entries};
use common::{arg, random_bytes, two_sites, Created, Site, World, MEDIUM_SIZE};
use parcel_format::encrypt::{Encryption, Identity};
use parcel_format::testkit;
use sha2::{Digest, Sha256};

/// `from` creates `id` v`version` of `package` for `to` with `--encrypt`.
fn create_encrypted(
    from: &Site,
    package: &Path,
    id: &str,
    version: u64,
    to: &str,
    out: &Path,
) -> Created {
    let output = from
        .create_cmd(package, id, version, to, &[out])
        .args(["--encrypt", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&output).expect("create --json");
    assert_eq!(json["encrypted"], true);
    Created {
        parcel_id: json["parcel_id"].as_str().expect("parcel_id").to_owned(),
        volumes: json["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| PathBuf::from(v.as_str().expect("path")))
            .collect(),
        json,
    }
}

/// CEN and BXL trusting each other, and NOR trusting CEN (and trusted by CEN).
fn three_sites() -> (World, Site, Site, Site) {
    let (world, cen, bxl) = two_sites();
    // NOR is BXL's child: it takes the packages BXL forwards.
    let nor = world.site_with("NOR", &["--parent", "BXL"]);
    nor.trust(&cen);
    cen.trust(&nor);
    (world, cen, bxl, nor)
}

/// Secret names and contents: a compressible text, an incompressible blob.
const SECRET_NAME: &str = "Project-Zanzibar-plans.txt";
const SECRET_TEXT: &str = "ZANZIBAR-LAUNCH-WINDOW opens at dawn.\n";

fn secret_package(world: &World) -> PathBuf {
    let package = world.package("tools", 5);
    fs::write(
        package.join("docs").join(SECRET_NAME),
        SECRET_TEXT.repeat(500),
    )
    .expect("write secret");
    package
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn encrypted_parcel_imports_at_its_destination_and_nowhere_else() {
    let (world, cen, bxl, nor) = three_sites();
    let package = secret_package(&world);
    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    assert!(created.volumes.len() >= 3, "{:?}", created.volumes);
    // Nor do the volumes' names show what the parcel holds.
    let prefix = format!("parcel-{}.", &created.parcel_id[..8]);
    for volume in &created.volumes {
        let name = volume.file_name().expect("name").to_string_lossy();
        assert!(name.starts_with(&prefix), "{name}");
    }

    // A site it is not for can check the media, and only the media.
    nor.run(&["verify", "--media", arg(&medium)])
        .success()
        .stdout(predicate::str::contains("intact"));
    nor.run(&["verify", arg(&medium)])
        .success()
        .stdout(predicate::str::contains("encrypted to another site"));
    let before = nor.store_state();
    nor.import(&[&medium])
        .code(4)
        .stderr(
            predicate::str::contains("encrypted").and(predicate::str::contains(
                "only the destination site can read",
            )),
        )
        // The parcel is named although its index cannot be read here.
        .stderr(predicate::str::contains(format!(
            "parcel {} from CEN",
            created.parcel_id
        )));
    assert_eq!(nor.store_state(), before);

    // The destination checks everything and imports the exact tree.
    bxl.run(&["verify", arg(&medium)])
        .success()
        .stdout(predicate::str::contains(
            "every byte, pack, chunk and file checked",
        ));
    bxl.import(&[&medium]).success();
    bxl.assert_holds("tools", 1, &package);
    let shown = cen.json(&["show", &created.parcel_id, "--json"]);
    assert!(shown.to_string().contains("encrypted to BXL"), "{shown}");
    let received = bxl.json(&["show", &created.parcel_id, "--json"]);
    assert!(
        received
            .to_string()
            .contains("decrypted with this site's key"),
        "{received}"
    );
}

#[test]
fn the_receipt_of_an_encrypted_parcel_is_named_after_its_id_alone() {
    let (world, cen, bxl) = two_sites();
    let package = secret_package(&world);
    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    let short = &created.parcel_id[..8];
    let receipt = medium.join(format!("parcel-{short}.receipt"));
    let imported = bxl.json(&["import", arg(&medium), "--json"]);
    assert_eq!(imported["receipt"], arg(&receipt), "{imported}");
    // Nothing on the medium going back names the package.
    for name in common::names_in(&medium) {
        assert!(name.starts_with(&format!("parcel-{short}.")), "{name}");
    }

    // A receipt written under the package's name before is replaced by
    // one under the id when the import is run again.
    let plain = medium.join(format!("tools-v1-{short}.receipt"));
    fs::rename(&receipt, &plain).expect("rename");
    bxl.run(&["import", arg(&medium)]).success();
    assert!(receipt.is_file());
    assert!(!plain.exists());
    cen.run(&["receipt", "apply", arg(&medium)]).success();
    assert_eq!(cen.status(&created.parcel_id), "confirmed");
}

#[test]
fn volumes_hold_no_file_name_and_no_content_in_the_clear() {
    let (world, cen, bxl) = two_sites();
    let package = secret_package(&world);
    let blob = fs::read(package.join("data/blob.bin")).expect("blob");
    let blob_sample = &blob[100_000..100_064];
    let plain = cen.create(
        &package,
        "tools",
        1,
        "BXL",
        &[&world.medium(), &world.medium()],
    );
    let plain_bytes: Vec<u8> = plain
        .volumes
        .iter()
        .flat_map(|v| fs::read(v).expect("volume"))
        .collect();
    // Without --encrypt incompressible content is there as it is: the probe works.
    assert!(contains(&plain_bytes, blob_sample));

    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 2, "BXL", &medium);
    for volume in &created.volumes {
        let bytes = fs::read(volume).expect("volume");
        for needle in [
            SECRET_NAME.as_bytes(),
            b"Zanzibar",
            b"ZANZIBAR-LAUNCH",
            b"blob.bin",
            b"small.bin",
            b"README.txt",
            b"run.sh",
            b"notes.txt",
            b"empty-dir",
            "Überblick".as_bytes(),
            b"Tools, built from seed",
            b"Install with bin/run.sh",
            b"echo tools",
            blob_sample,
        ] {
            assert!(
                !contains(&bytes, needle),
                "{} holds {:?}",
                volume.display(),
                String::from_utf8_lossy(needle)
            );
        }
        let names: Vec<String> = tar_entries(volume).into_iter().map(|e| e.name).collect();
        assert_eq!(
            names.get(..2),
            Some(&["parcel-volume".to_owned(), "parcel-keys".to_owned()][..])
        );
    }
    bxl.import(&[&medium]).success();
}

/// A parcel to BXL, and BXL's store state before anything is imported.
fn refused_import(bxl: &Site, medium: &Path, code: i32, says: &str) {
    let before = bxl.store_state();
    bxl.import(&[medium])
        .code(code)
        .stderr(predicate::str::contains(says));
    assert_eq!(bxl.store_state(), before);
}

#[test]
fn damaged_keys_entry_or_ciphertext_is_refused() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 6);

    // The keys entry damaged in every volume.
    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    for volume in &created.volumes {
        let keys = tar_entries(volume)
            .into_iter()
            .find(|e| e.name == "parcel-keys")
            .expect("keys entry");
        flip_byte(volume, keys.data + 30);
    }
    refused_import(&bxl, &medium, 3, "parcel-keys");
    bxl.run(&["verify", "--media", arg(&medium)]).code(3);

    // A flipped byte in an encrypted pack.
    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 2, "BXL", &medium);
    let pack = tar_entries(&created.volumes[0])
        .into_iter()
        .find(|e| e.name.starts_with("pack-"))
        .expect("a pack");
    flip_byte(&created.volumes[0], pack.data + 5);
    refused_import(&bxl, &medium, 3, "pack");

    // A flipped byte in the encrypted index.
    let medium = world.medium();
    let created = create_encrypted(&cen, &package, "tools", 3, "BXL", &medium);
    let last = created.volumes.last().expect("a volume");
    let index = tar_entries(last)
        .into_iter()
        .find(|e| e.name.starts_with("parcel-index"))
        .expect("index piece");
    flip_byte(last, index.data + index.len / 2);
    refused_import(&bxl, &medium, 3, "index");
}

/// BXL's encryption identity, read from its home.
fn identity(site: &Site) -> Identity {
    fs::read_to_string(site.home.join("site.age"))
        .expect("site.age")
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("identity line")
        .parse()
        .expect("an age identity")
}

#[test]
fn keys_entry_of_another_parcel_is_refused() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 7);
    // Another parcel key wrapped to BXL, of the same length as the parcel's
    // own keys entry: age adds a "grease" stanza of random length, so wrap
    // many, and make parcels until one's keys entry has a length among them.
    let recipient = identity(&bxl).to_public();
    let mut wrappings: std::collections::HashMap<u64, Encryption> = Default::default();
    for _ in 0..2000 {
        let e = Encryption::to_recipients(std::slice::from_ref(&recipient)).expect("wrap");
        wrappings.entry(e.keys_entry().len() as u64).or_insert(e);
    }
    let (medium, created, keys, foreign) = (1..=20)
        .find_map(|version| {
            let medium = world.medium();
            let created = create_encrypted(&cen, &package, "tools", version, "BXL", &medium);
            let keys = tar_entries(&created.volumes[0])
                .into_iter()
                .find(|e| e.name == "parcel-keys")
                .expect("keys entry");
            let foreign = wrappings.remove(&keys.len)?;
            Some((medium, created, keys, foreign))
        })
        .expect("a parcel whose keys entry has a common length");
    let header = testkit::read_header_unchecked(&created.volumes[0]).expect("header");
    assert_eq!(keys.len, header.keys_len);
    let foreign = foreign.keys_entry();
    let splice = |volume: &Path| {
        let mut bytes = fs::read(volume).expect("volume");
        let at = keys.data as usize;
        bytes[at..at + foreign.len()].copy_from_slice(foreign);
        fs::write(volume, &bytes).expect("write");
    };

    // A courier swapping it: the signed hash of the keys entry refuses it.
    for volume in &created.volumes {
        splice(volume);
    }
    refused_import(&bxl, &medium, 3, "parcel-keys");

    // A compromised CEN signing the swap: the index does not decrypt.
    let key = secret_key(&cen);
    for volume in &created.volumes {
        testkit::reseal_body(volume, &key).expect("reseal");
    }
    let sha: [u8; 32] = Sha256::digest(foreign).into();
    resign_all(&created.volumes, &key, |h| h.keys_sha256 = sha);
    refused_import(&bxl, &medium, 3, "does not decrypt");
}

#[test]
fn key_file_with_a_swapped_encryption_key_is_refused_by_trust() {
    let world = World::new();
    let cen = world.site("CEN");
    let bxl = world.site("BXL");
    let mallory = world.site("MAL");
    let bxl_file = world.dir("mail").join("BXL.pub");
    let mal_file = world.dir("mail").join("MAL.pub");
    bxl.run(&["key", "export", "--out", arg(&bxl_file)])
        .success();
    mallory
        .run(&["key", "export", "--out", arg(&mal_file)])
        .success();
    let field = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("encryption-key: "))
            .expect("encryption-key line")
            .to_owned()
    };
    let text = fs::read_to_string(&bxl_file).expect("key file");
    let theirs = field(&fs::read_to_string(&mal_file).expect("key file"));
    fs::write(&bxl_file, text.replace(&field(&text), &theirs)).expect("swap");
    cen.run(&["key", "trust", arg(&bxl_file)])
        .code(3)
        .stderr(predicate::str::contains("not signed by the site's key"));
    assert_eq!(cen.json(&["key", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn encrypt_to_a_site_without_an_encryption_key_is_refused() {
    let world = World::new();
    let cen = world.site("CEN");
    let old = world.site("OLD");
    let file = world.dir("mail").join("OLD.pub");
    old.run(&["key", "export", "--out", arg(&file)]).success();
    // A key file from before parcels could be encrypted.
    let text: String = fs::read_to_string(&file)
        .expect("key file")
        .lines()
        .filter(|l| !l.starts_with("encryption-key"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&file, text).expect("write");
    cen.run(&["key", "trust", arg(&file)]).success();
    let package = world.package("tools", 8);
    let medium = world.medium();
    cen.create_cmd(&package, "tools", 1, "OLD", &[&medium])
        .args(["--encrypt", "--medium-size", MEDIUM_SIZE])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("no encryption key")
                .and(predicate::str::contains("parcel key export")),
        );
    assert!(fs::read_dir(&medium).expect("medium").next().is_none());
    // Without --encrypt it still goes.
    cen.create(&package, "tools", 1, "OLD", &[&medium, &world.medium()]);
}

#[test]
fn an_old_key_file_given_again_does_not_put_back_an_encryption_key_the_site_left() {
    let world = World::new();
    let cen = world.site("CEN");
    let bxl = world.site("BXL");
    let (old_file, new_file) = (
        world.dir("mail").join("old.pub"),
        world.dir("mail").join("new.pub"),
    );
    bxl.run(&["key", "export", "--out", arg(&old_file)])
        .success();
    cen.run(&["key", "trust", arg(&old_file)]).success();
    // BXL's encryption key is made anew (site.age lost).
    fs::remove_file(bxl.home.join("site.age")).expect("remove site.age");
    let fingerprint = bxl.export_key(&new_file);
    let recorded = || cen.json(&["key", "list", "--json"])[0]["encryption_key"].clone();
    let before = recorded();
    // Unseen (no terminal), another encryption key is not taken...
    cen.run(&["key", "trust", arg(&new_file)])
        .code(4)
        .stderr(predicate::str::contains(
            "is trusted with another encryption key",
        ));
    assert_eq!(recorded(), before);
    // ...but with the fingerprint read over the phone it is.
    cen.run(&[
        "key",
        "trust",
        arg(&new_file),
        "--fingerprint",
        &fingerprint,
    ])
    .success()
    .stdout(predicate::str::contains("Recorded the new encryption key"));
    let after = recorded();
    assert_ne!(after, before);
    // The old file, given again unseen, does not put the old one back.
    cen.run(&["key", "trust", arg(&old_file)]).code(4);
    assert_eq!(recorded(), after);
}

#[test]
fn home_made_before_encryption_gets_its_key_at_export() {
    let world = World::new();
    let cen = world.site("CEN");
    let bxl = world.site("BXL");
    bxl.trust(&cen);
    fs::remove_file(bxl.home.join("site.age")).expect("remove site.age");
    let file = world.dir("mail").join("BXL.pub");
    bxl.run(&["key", "export", "--out", arg(&file)])
        .success()
        .stderr(predicate::str::contains(
            "warning: this home had no encryption key; a new one was made",
        ));
    let identity = bxl.home.join("site.age");
    assert!(identity.is_file());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&identity)
            .expect("site.age")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    cen.run(&["key", "trust", arg(&file)])
        .success()
        .stdout(predicate::str::contains("Trusted site BXL"));
    let package = world.package("tools", 9);
    fs::write(package.join("extra.bin"), random_bytes(99, 3000)).expect("write");
    let medium = world.medium();
    create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    bxl.import(&[&medium]).success();
}

#[test]
fn a_lost_or_damaged_encryption_key_is_named_at_verify_and_import_and_its_backup_mends_it() {
    let (world, cen, bxl) = two_sites();
    let package = world.package("tools", 12);
    let medium = world.medium();
    create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    let identity = bxl.home.join("site.age");
    let backup = world.dir("backup").join("site.age");
    fs::rename(&identity, &backup).expect("lose site.age");

    // Lost: said so, not "encrypted to another site".
    bxl.run(&["verify", arg(&medium)])
        .success()
        .stderr(predicate::str::contains(
            "this parcel is encrypted and this site has no usable encryption key",
        ))
        .stderr(predicate::str::contains("put site.age back"));
    let before = bxl.store_state();
    bxl.import(&[&medium])
        .code(4)
        .stderr(predicate::str::contains(format!(
            "this site has no encryption key ({} does not exist); nothing was imported",
            identity.display()
        )))
        .stderr(predicate::str::contains(
            "put site.age back from this site's backup",
        ));
    assert_eq!(bxl.store_state(), before);

    // Damaged: named as the encryption key, with its own advice.
    fs::write(&identity, "not a key\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    bxl.import(&[&medium])
        .code(1)
        .stderr(predicate::str::contains(format!(
            "encryption key {}: not a parcel encryption key",
            identity.display()
        )))
        .stderr(predicate::str::contains(
            "restore this site's site.age from its backup",
        ));
    assert_eq!(bxl.store_state(), before);
    // A plain parcel needs no encryption key: it imports all the same.
    let plain = world.package("notes", 13);
    let outs = [world.medium(), world.medium()];
    cen.create(&plain, "notes", 1, "BXL", &[&outs[0], &outs[1]]);
    bxl.import(&[&outs[0], &outs[1]]).success();
    bxl.assert_holds("notes", 1, &plain);

    fs::copy(&backup, &identity).expect("restore site.age");
    bxl.import(&[&medium]).success();
    bxl.assert_holds("tools", 1, &package);
}

#[test]
fn encrypted_delta_parcel_imports_over_its_base() {
    let (world, cen, bxl) = two_sites();
    let v1 = world.package("tools", 11);
    let medium = world.medium();
    create_encrypted(&cen, &v1, "tools", 1, "BXL", &medium);
    let receipt = world.medium().join("receipt.txt");
    bxl.run(&["import", arg(&medium), "--receipt", arg(&receipt)])
        .success();
    cen.run(&["receipt", "apply", arg(&receipt)]).success();

    // Version 2: the same tree and one new file.
    let v2 = world.package("tools-v2", 11);
    fs::write(v2.join("CHANGES"), SECRET_TEXT).expect("add");
    let medium = world.medium();
    let output = cen
        .create_cmd(&v2, "tools", 2, "BXL", &[&medium])
        .args(["--base", "1", "--encrypt", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&output).expect("create --json");
    assert_eq!(json["base_version"], 1);
    assert_eq!(json["encrypted"], true);
    for volume in json["volumes"].as_array().expect("volumes") {
        let bytes = fs::read(volume.as_str().expect("path")).expect("volume");
        assert!(!contains(&bytes, b"ZANZIBAR") && !contains(&bytes, b"CHANGES"));
    }
    bxl.import(&[&medium]).success();
    bxl.assert_holds("tools", 2, &v2);
}

/// CEN, BXL and NOR (BXL and NOR trusting each other too), and the secret
/// package that CEN sent BXL encrypted, imported there.
fn encrypted_package_at_bxl() -> (World, Site, Site, Site, PathBuf) {
    let (world, cen, bxl, nor) = three_sites();
    bxl.trust(&nor);
    nor.trust(&bxl);
    let package = secret_package(&world);
    let medium = world.medium();
    create_encrypted(&cen, &package, "tools", 1, "BXL", &medium);
    bxl.import(&[&medium]).success();
    (world, cen, bxl, nor, package)
}

#[test]
fn forward_of_a_package_that_arrived_encrypted_needs_encrypt_or_clear() {
    let (world, _cen, bxl, nor, package) = encrypted_package_at_bxl();
    let shown = bxl.run(&["list", "--incoming", "--json"]).success();
    let listed: serde_json::Value =
        serde_json::from_slice(&shown.get_output().stdout).expect("list --json");
    assert_eq!(listed[0]["encrypted"], true);

    let forward = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "forward",
            "--package-id",
            "tools",
            "--to",
            "NOR",
            "--out",
            arg(out),
            "--volume-size",
            common::VOLUME_SIZE,
        ];
        args.extend_from_slice(extra);
        bxl.run(&args)
    };
    // Neither --encrypt nor --clear: refused before anything is written.
    let out = world.medium();
    let refused = forward(&[], &out).code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("tools v1 arrived encrypted") && stderr.contains("--clear"),
        "{stderr}"
    );
    assert_eq!(fs::read_dir(&out).expect("out").count(), 0);

    // --clear: sent unencrypted, as asked.
    let sent = forward(&["--clear", "--json"], &out).success();
    let json: serde_json::Value =
        serde_json::from_slice(&sent.get_output().stdout).expect("forward --json");
    assert_eq!(json["encrypted"], false);
    // Incompressible content is there as it is (see the test above).
    let blob = fs::read(package.join("data/blob.bin")).expect("blob");
    let sent_bytes: Vec<u8> = json["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .flat_map(|v| fs::read(v.as_str().expect("path")).expect("volume"))
        .collect();
    assert!(contains(&sent_bytes, &blob[100_000..100_064]));
    nor.import(&[&out]).success();
    nor.assert_holds("tools", 1, &package);
    forward(&["--clear", "--encrypt"], &world.medium()).code(2);
}

#[test]
fn forward_encrypts_to_the_next_site() {
    let (world, cen, bxl, nor, package) = encrypted_package_at_bxl();

    let out = world.medium();
    let forwarded = bxl.json(&[
        "forward",
        "--package-id",
        "tools",
        "--to",
        "NOR",
        "--out",
        arg(&out),
        "--volume-size",
        common::VOLUME_SIZE,
        "--encrypt",
        "--json",
    ]);
    assert_eq!(forwarded["encrypted"], true);
    for volume in forwarded["volumes"].as_array().expect("volumes") {
        let bytes = fs::read(volume.as_str().expect("path")).expect("volume");
        assert!(!contains(&bytes, SECRET_NAME.as_bytes()));
    }
    // CEN trusts BXL's key but is not the destination.
    cen.import(&[&out]).code(4);
    nor.import(&[&out]).success();
    nor.assert_holds("tools", 1, &package);
}
