//! The ciphertext parser takes text from anyone who can call decrypt: it
//! must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(info) = fipsguard_core::ciphertext::describe(text) {
            assert!(info.version >= 1);
            assert!(info.key_name.len() <= 255);
        }
    }
});
