//! Receipts come back from the destination by any channel (FORMAT.md §9).
//! Parsing must never panic, and whatever it accepts must be a receipt this
//! library can write again and read back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parcel_format::receipt::SignedReceipt;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = SignedReceipt::parse(data) else {
        return;
    };
    let text = signed.receipt.to_signed_text(parcel_fuzz::fuzz_key());
    let again = SignedReceipt::parse(text.as_bytes()).expect("a re-signed accepted receipt parses");
    assert_eq!(again.receipt, signed.receipt);
});
