//! The encrypted file reader takes files from anywhere: whatever the bytes,
//! it must refuse them with an error, never panic, and never hand out
//! plaintext that did not authenticate.
#![no_main]

use std::io::Cursor;

use fipsguard_core::file_format::{decrypt_stream, FileHeader};
use fipsguard_crypto::aead::Aes256GcmKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor::new(data.to_vec());
    let Ok((header, header_bytes)) = FileHeader::read_from(&mut input) else {
        return;
    };
    assert_eq!(header.encode().ok().as_deref(), Some(&header_bytes[..]));
    // A fixed key: no chunk a fuzzer makes authenticates under it, so
    // nothing may come out.
    let key = Aes256GcmKey::new(&[7u8; 32]).expect("the module is operational");
    let out = decrypt_stream(&header, &header_bytes, &key, input, Vec::new(), &|_| {});
    assert!(out.is_err());
});
