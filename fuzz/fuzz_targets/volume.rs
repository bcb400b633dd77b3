//! One volume file off the media, whole: its header read and authenticated
//! against a fixed trusted key, then opened as a parcel and, when that works,
//! verified and extracted (FORMAT.md §7). No panic, and extraction stays in
//! its directory.
#![no_main]

use std::fs;

use libfuzzer_sys::fuzz_target;
use parcel_format::read::{self, Parcel};

fuzz_target!(|data: &[u8]| {
    let tmp = parcel_fuzz::scratch();
    let path = tmp.path().join("volume.tar");
    fs::write(&path, data).expect("scratch volume writes");
    let trust = parcel_fuzz::trusted();
    let _ = read::read_volume_header(&path, trust);
    let Ok(parcel) = Parcel::open(std::slice::from_ref(&path), trust) else {
        return;
    };
    let _ = parcel.verify(&mut |_, _| {});
    let jail = parcel_fuzz::Jail::new(tmp.path());
    let _ = parcel.extract(&jail.stage, &mut |_| {});
    jail.check();
});
