//! The 512-byte volume header record: the only bytes a reader parses before
//! checking a signature (FORMAT.md §7.1). Any record must be refused or
//! accepted without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parcel_format::header::{VolumeHeader, RECORD_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(record) = data.get(..RECORD_LEN) else {
        return;
    };
    let record: &[u8; RECORD_LEN] = record.try_into().expect("slice of RECORD_LEN bytes");
    if let Ok(header) = VolumeHeader::decode_verified(record) {
        assert!(header.same_parcel(&header));
        assert!(header.volume >= 1 && header.volume <= header.volume_count);
    }
});
