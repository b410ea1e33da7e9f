//! `fipsguard audit verify` reads files that whoever can write the audit
//! directory may have altered: any bytes must end as a report or as a
//! failure naming its line, never a panic or a hang.
//!
//! The first byte picks how the rest is read: as the file itself (even),
//! or (odd) as record texts, one per line, that the harness chains with
//! their hashes as the writer does, so that the fuzzer reaches what lies
//! past the hashes (kinds, the segment rules, notes) without forging them.
#![no_main]

use std::sync::OnceLock;

use fipsguard_audit::verify;
use fipsguard_crypto::digest::{digest, HashAlgorithm};
use fipsguard_crypto::sign::{SigningKey, SigningKeyType};
use libfuzzer_sys::fuzz_target;

/// A public key to check checkpoints against (none of the fuzzer's will
/// verify under it, which is a path of its own).
fn public_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        assert!(fipsguard_crypto::module::power_up().passed());
        let key = SigningKey::generate(SigningKeyType::EcdsaP256).expect("a key");
        key.public_key_der().expect("its public key")
    })
}

/// Each line of `records` as a record line, hash-chained from the start
/// of a chain (docs/audit.md, "Integrity").
fn chained(records: &[u8]) -> Vec<u8> {
    let (mut file, mut previous) = (Vec::new(), vec![0u8; 32]);
    for record in records.split(|b| *b == b'\n') {
        let input = [&b"fipsguard-audit-v1\0"[..], &previous, record].concat();
        previous = digest(HashAlgorithm::Sha256, &input).expect("SHA-256");
        file.extend_from_slice(b"{\"record\":");
        file.extend_from_slice(record);
        file.extend_from_slice(b",\"hash\":\"");
        for byte in &previous {
            file.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        file.extend_from_slice(b"\"}\n");
    }
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 { rest.to_vec() } else { chained(rest) };
    let file = std::env::temp_dir().join(format!(
        "fipsguard-fuzz-audit-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&file, &bytes).expect("the input written");
    match verify(&file, &[public_key().to_vec()]) {
        Ok(report) => assert!(report.records as usize <= bytes.len()),
        Err(failure) => assert!(!failure.reason.is_empty()),
    }
});
