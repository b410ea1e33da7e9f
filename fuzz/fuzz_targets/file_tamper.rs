//! Files the writer made, then damaged as a fuzzer likes (bits flipped,
//! cut short, spans removed or repeated): decryption must give back
//! exactly the original plaintext, or an error; never anything else, such
//! as a cut at a chunk boundary taken for the end or a repeated chunk that
//! opens. The `file` target cannot reach this: under its fixed key no
//! chunk ever authenticates.
#![no_main]

use std::io::Cursor;

use fipsguard_core::file_format::{decrypt_stream, encrypt_stream, FileHeader, MIN_CHUNK_SIZE};
use fipsguard_core::EncryptionContext;
use fipsguard_crypto::aead::Aes256GcmKey;
use libfuzzer_sys::fuzz_target;

/// One damage: what (byte 0), where (bytes 1-4), how much (byte 5).
const EDIT_LEN: usize = 6;

fuzz_target!(|data: &[u8]| {
    let Some((shape, edits)) = data.split_first_chunk::<3>() else {
        return;
    };
    // Chunks of 1-4 KiB and up to 16 KiB of plaintext: several chunks,
    // every boundary case, and fast runs.
    let chunk_size = MIN_CHUNK_SIZE * (1 + u32::from(shape[0] % 4));
    let plaintext_len = usize::from(u16::from_be_bytes([shape[1], shape[2]])) % (16 << 10);
    let plaintext: Vec<u8> = (0..plaintext_len).map(|i| (i % 251) as u8).collect();
    let header = FileHeader {
        chunk_size,
        key_name: "fuzz".into(),
        key_version: 1,
        wrapped_key: "fg:v1:fuzz".into(),
        context: EncryptionContext::empty(),
    };
    let key = Aes256GcmKey::new(&[7u8; 32]).expect("the module is operational");
    let mut file = encrypt_stream(&header, &key, Cursor::new(plaintext.clone()), Vec::new(), &|_| {})
        .expect("the writer seals");
    let record = 12 + chunk_size as usize + 16;
    for edit in edits.chunks_exact(EDIT_LEN) {
        if file.is_empty() {
            break;
        }
        let at = u32::from_be_bytes([edit[1], edit[2], edit[3], edit[4]]) as usize % file.len();
        let amount = usize::from(edit[5]);
        match edit[0] % 4 {
            0 => file[at] ^= edit[5] | 1,
            1 => file.truncate(at),
            2 => {
                file.drain(at..(at + amount * 16).min(file.len()));
            }
            _ => {
                let span = file[at..(at + record).min(file.len())].to_vec();
                let to = (at + amount * 64).min(file.len());
                file.splice(to..to, span);
            }
        }
    }
    let mut input = Cursor::new(file);
    let Ok((read, header_bytes)) = FileHeader::read_from(&mut input) else {
        return;
    };
    match decrypt_stream(&read, &header_bytes, &key, input, Vec::new(), &|_| {}) {
        Ok(out) => assert!(out == plaintext, "damaged file opened to other plaintext"),
        Err(_) => assert!(edits.len() >= EDIT_LEN, "an undamaged file did not open"),
    }
});
