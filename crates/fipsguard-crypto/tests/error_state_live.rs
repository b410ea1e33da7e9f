//! Keys made before a failure stop working the moment the module enters its
//! error state: the check is on every operation, not only at key creation.

use fipsguard_crypto::aead::{Aes256GcmKey, IV_LEN};
use fipsguard_crypto::kdf::pbkdf2_hmac_sha512;
use fipsguard_crypto::kem::{encapsulate, DecapsulationKey, KemAlgorithm};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::sign::{verify, SignatureScheme, SigningKey, SigningKeyType};
use fipsguard_crypto::{fault, random, Error};

#[test]
fn a_failure_while_running_stops_existing_keys() {
    let aes = Aes256GcmKey::new(&[9u8; 32]).unwrap();
    let mac = MacKey::new(MacAlgorithm::HmacSha384, &[9u8; 48]).unwrap();
    let signer = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    let public = signer.public_key_der().unwrap();
    let signature = signer.sign(SignatureScheme::EcdsaP256Sha256, b"m").unwrap();
    let tag = mac.sign(b"m").unwrap();
    let kek = KeyEncryptionKey::new(&[3u8; 32]).unwrap();
    let wrapped = kek.wrap(&[4u8; 32]).unwrap();
    let kem = DecapsulationKey::generate(KemAlgorithm::MlKem768).unwrap();
    let encapsulation_key = kem.encapsulation_key().unwrap().to_vec();
    let (kem_ciphertext, _) = encapsulate(KemAlgorithm::MlKem768, &encapsulation_key).unwrap();
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
    let mut frame = [&[0; IV_LEN][..], b"secret"].concat();
    assert!(is_refusal(
        aes.seal_in_frame(b"", &mut frame, 0).unwrap_err()
    ));
    assert_eq!(
        frame,
        [0; IV_LEN + 6],
        "the frame's copy of the plaintext is wiped, nothing appended"
    );
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

    // No data leaves the module in its error state, not even public data.
    assert!(is_refusal(signer.to_pkcs8().unwrap_err()));
    assert!(is_refusal(signer.public_key_der().unwrap_err()));
    assert!(is_refusal(
        verify(SignatureScheme::EcdsaP256Sha256, &public, b"m", &signature).unwrap_err()
    ));
    assert!(is_refusal(mac.verify(b"m", &tag).unwrap_err()));
    assert!(is_refusal(kek.wrap(&[1u8; 32]).unwrap_err()));
    assert!(is_refusal(kek.unwrap(&wrapped).unwrap_err()));
    assert!(is_refusal(kem.decapsulate(&kem_ciphertext).unwrap_err()));
    assert!(is_refusal(kem.to_bytes().unwrap_err()));
    assert!(is_refusal(kem.encapsulation_key().unwrap_err()));
    assert!(is_refusal(
        encapsulate(KemAlgorithm::MlKem768, &encapsulation_key).unwrap_err()
    ));
    assert!(is_refusal(
        pbkdf2_hmac_sha512(b"a long enough password", &[1u8; 16], 1000, 32).unwrap_err()
    ));
}
