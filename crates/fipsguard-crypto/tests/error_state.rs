//! A failed self-test puts the boundary into its error state: every
//! cryptographic service is refused with a specific error, nothing partial
//! is released, and the failed test is named. (This file is its own
//! process, so the forced failure cannot leak into other tests.)

use fipsguard_crypto::aead::Aes256GcmKey;
use fipsguard_crypto::digest::{digest, HashAlgorithm};
use fipsguard_crypto::kdf::hkdf_sha256;
use fipsguard_crypto::kem::{DecapsulationKey, KemAlgorithm};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::sign::{SigningKey, SigningKeyType};
use fipsguard_crypto::{fault, random, Error};

fn refused<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::ErrorState { ref failed_test }) if failed_test == "aes-256-gcm-seal")
}

#[test]
fn a_failed_known_answer_test_refuses_every_service() {
    // Before anything initialises the boundary: force one KAT to fail.
    std::env::set_var(fault::ENV_VAR, "aes-256-gcm-seal");
    assert_eq!(module::state(), State::NotStarted);

    // The first operation runs the power-up tests and is already refused.
    let mut buffer = vec![0x55u8; 64];
    assert!(refused(random::fill(&mut buffer)));
    assert_eq!(buffer, vec![0x55u8; 64], "no partial output");

    let report = module::power_up();
    assert!(!report.passed());
    assert_eq!(report.first_failure(), Some("aes-256-gcm-seal"));
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name)
        .collect();
    assert_eq!(failed, ["aes-256-gcm-seal"], "only the forced test fails");
    assert_eq!(
        module::state(),
        State::Error {
            failed_test: "aes-256-gcm-seal".into()
        }
    );

    assert!(refused(Aes256GcmKey::new(&[1u8; 32])));
    assert!(refused(MacKey::new(MacAlgorithm::HmacSha256, &[1u8; 32])));
    assert!(refused(SigningKey::generate(SigningKeyType::EcdsaP256)));
    assert!(refused(KeyEncryptionKey::new(&[1u8; 32])));
    assert!(refused(DecapsulationKey::generate(KemAlgorithm::MlKem768)));
    assert!(refused(digest(HashAlgorithm::Sha256, b"abc")));
    assert!(refused(hkdf_sha256(b"salt", b"ikm", b"info", 32)));
    assert!(refused(random::bytes(16)));

    let message = random::bytes(16).unwrap_err().to_string();
    assert!(
        message.contains("error state") && message.contains("aes-256-gcm-seal"),
        "{message}"
    );

    // Passing tests later does not leave the error state; only a restart does.
    std::env::remove_var(fault::ENV_VAR);
    assert!(module::run_self_tests().passed());
    assert!(refused(random::bytes(16)));
}
