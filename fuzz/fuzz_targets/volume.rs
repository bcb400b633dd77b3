//! One volume file off the media, whole: its header read and authenticated
//! against a fixed trusted key, then opened as a parcel (decrypted with the
//! fuzz site's identity when it is encrypted) and, when that works,
//! verified (content and media checks) and extracted (FORMAT.md §7). No panic, and extraction stays in
//! its directory.
//!
//! Two ways in for every input:
//! * raw: the bytes as given, so the checks in front of the signature and the
//!   signature itself are fuzzed (seeds signed by the fuzz key get past it);
//! * resealed, when the raw bytes could not be opened: body hash and length,
//!   index hash and signature made right by the fuzz key, as a compromised
//!   trusted site would, so the index, pack and chunk checks behind them are
//!   fuzzed too.
#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use parcel_format::read::{self, Parcel};

/// Opens, verifies and extracts the one volume at `root/volume.tar`; whether it opened.
fn read(root: &Path) -> bool {
    let path = root.join("volume.tar");
    let trust = parcel_fuzz::trusted();
    let _ = read::read_volume_header(&path, trust);
    let identity = Some(parcel_fuzz::encrypted::identity());
    let Ok(parcel) = Parcel::open_with(std::slice::from_ref(&path), trust, identity) else {
        return false;
    };
    let _ = parcel.verify(&mut |_, _| {});
    let _ = parcel.verify_media(&mut |_, _| {});
    let jail = parcel_fuzz::Jail::new(root);
    let _ = parcel.extract(&jail.stage, &mut |_| {});
    jail.check();
    true
}

fuzz_target!(|data: &[u8]| {
    let tmp = parcel_fuzz::scratch();
    let raw = tmp.path().join("raw");
    fs::create_dir(&raw).expect("scratch directory");
    fs::write(raw.join("volume.tar"), data).expect("scratch volume writes");
    if read(&raw) {
        return;
    }
    let resealed = tmp.path().join("resealed");
    fs::create_dir(&resealed).expect("scratch directory");
    let path = resealed.join("volume.tar");
    fs::write(&path, data).expect("scratch volume writes");
    if parcel_fuzz::reseal_volume(&path).is_ok() {
        read(&resealed);
    }
});
