//! `fipsguard audit verify` reads files that whoever can write the audit
//! directory may have altered: any bytes must end as a report or as a
//! failure naming its line, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

use fipsguard_audit::verify;
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

fuzz_target!(|data: &[u8]| {
    let file = std::env::temp_dir().join(format!(
        "fipsguard-fuzz-audit-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&file, data).expect("the input written");
    match verify(&file, &[public_key().to_vec()]) {
        Ok(report) => assert!(report.records as usize <= data.len()),
        Err(failure) => assert!(!failure.reason.is_empty()),
    }
});
