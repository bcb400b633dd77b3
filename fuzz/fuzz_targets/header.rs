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
        // A parity volume (FORMAT.md §13.2) is numbered 0 among the data
        // volumes and 1..=count among the parity volumes.
        match header.parity.filter(|p| p.is_parity_volume()) {
            Some(p) => assert!(header.volume == 0 && p.parity_volume <= p.parity_volume_count),
            None => assert!(header.volume >= 1 && header.volume <= header.volume_count),
        }
        assert_eq!(VolumeHeader::decode_verified(record).ok(), Some(header));
    }
});
