//! Keys made before a failure stop working the moment the module enters its
//! error state: the check is on every operation, not only at key creation.

use fipsguard_crypto::aead::Aes256GcmKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::sign::{SignatureScheme, SigningKey, SigningKeyType};
use fipsguard_crypto::{fault, random, Error};

#[test]
fn a_failure_while_running_stops_existing_keys() {
    let aes = Aes256GcmKey::new(&[9u8; 32]).unwrap();
    let mac = MacKey::new(MacAlgorithm::HmacSha384, &[9u8; 48]).unwrap();
    let signer = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    let mut sealed = b"before".to_vec();
    let iv = aes.seal_in_place(b"", &mut sealed).unwrap();
    assert_eq!(module::state(), State::Operational);

    std::env::set_var(fault::ENV_VAR, "hmac-sha-384");
    let report = module::run_self_tests();
    assert_eq!(report.first_failure(), Some("hmac-sha-384"));

    let is_refusal =
        |e: Error| matches!(e, Error::ErrorState { failed_test } if failed_test == "hmac-sha-384");
    let mut plaintext = b"secret".to_vec();
    assert!(is_refusal(
        aes.seal_in_place(b"", &mut plaintext).unwrap_err()
    ));
    assert_eq!(plaintext, b"secret", "nothing sealed in place");
    let mut ciphertext = sealed.clone();
    assert!(is_refusal(
        aes.open_in_place(&iv, b"", &mut ciphertext).unwrap_err()
    ));
    assert_eq!(ciphertext, sealed, "nothing opened in place");
    assert!(is_refusal(mac.sign(b"m").unwrap_err()));
    assert!(is_refusal(
        signer
            .sign(SignatureScheme::EcdsaP256Sha256, b"m")
            .unwrap_err()
    ));
    assert!(is_refusal(random::bytes(1).unwrap_err()));
}
