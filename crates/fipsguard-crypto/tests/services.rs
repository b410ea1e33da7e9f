//! The services behave as their types promise: module-generated IVs, no
//! release of unauthenticated data, keys that sign and verify, secrets that
//! never print.

use fipsguard_crypto::aead::{Aes256GcmKey, GcmIv, IV_LEN, TAG_LEN};
use fipsguard_crypto::kem::{encapsulate, DecapsulationKey, KemAlgorithm};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::sign::{verify, SignatureScheme, SigningKey, SigningKeyType};
use fipsguard_crypto::{random, Error, SecretBytes};

const KEY: [u8; 32] = [0xA7; 32];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn gcm_draws_a_fresh_iv_for_every_seal_and_round_trips() {
    let key = Aes256GcmKey::new(&KEY).unwrap();
    let (mut a, mut b) = (b"same plaintext".to_vec(), b"same plaintext".to_vec());
    let iv_a = key.seal_in_place(b"context", &mut a).unwrap();
    let iv_b = key.seal_in_place(b"context", &mut b).unwrap();
    assert_ne!(iv_a, iv_b, "each seal uses a new module-generated IV");
    assert_ne!(a, b);
    assert_eq!(a.len(), b"same plaintext".len() + TAG_LEN);
    let plaintext = key.open_in_place(&iv_a, b"context", &mut a).unwrap();
    assert_eq!(plaintext, b"same plaintext");
}

#[test]
fn gcm_in_a_frame_writes_a_fresh_iv_into_its_place_and_the_tag_behind() {
    let key = Aes256GcmKey::new(&KEY).unwrap();
    let frame = [&b"head"[..], &[0; IV_LEN], b"same plaintext"].concat();
    let (mut a, mut b) = (frame.clone(), frame.clone());
    key.seal_in_frame(b"context", &mut a, 4).unwrap();
    key.seal_in_frame(b"context", &mut b, 4).unwrap();
    assert_eq!(a.len(), frame.len() + TAG_LEN);
    assert_eq!(&a[..4], b"head", "what comes before the IV is left alone");
    let (iv_a, iv_b) = (&a[4..4 + IV_LEN], &b[4..4 + IV_LEN]);
    assert_ne!(iv_a, iv_b, "each seal uses a new module-generated IV");
    assert_ne!(iv_a, [0; IV_LEN]);
    assert_ne!(
        &a[4 + IV_LEN..frame.len()],
        b"same plaintext",
        "sealed in place"
    );
    let iv = GcmIv::try_from(iv_a).unwrap();
    let mut sealed = a[4 + IV_LEN..].to_vec();
    let plaintext = key.open_in_place(&iv, b"context", &mut sealed).unwrap();
    assert_eq!(plaintext, b"same plaintext");
}

/// Opening must fail with `AuthenticationFailed` and leave nothing readable
/// in the buffer (AWS-LC decrypts in place before it checks the tag).
fn assert_rejected(key: &Aes256GcmKey, iv: &GcmIv, aad: &[u8], mut buffer: Vec<u8>) {
    let result = key.open_in_place(iv, aad, &mut buffer).map(|p| p.to_vec());
    assert_eq!(result.unwrap_err(), Error::AuthenticationFailed);
    assert!(
        buffer.iter().all(|&b| b == 0),
        "plaintext left in the buffer"
    );
}

#[test]
fn gcm_releases_nothing_on_tampering_wrong_context_or_truncation() {
    let key = Aes256GcmKey::new(&KEY).unwrap();
    let mut sealed = b"attack at dawn, bring the whole army".to_vec();
    let iv = key.seal_in_place(b"ctx", &mut sealed).unwrap();

    let mut flipped = sealed.clone();
    flipped[3] ^= 0x80;
    assert_rejected(&key, &iv, b"ctx", flipped);
    assert_rejected(&key, &iv, b"other", sealed.clone());
    assert_rejected(&key, &iv, b"ctx", sealed[..sealed.len() - 1].to_vec());
    assert_rejected(&key, &iv, b"ctx", sealed[..TAG_LEN - 1].to_vec());
    assert_rejected(
        &Aes256GcmKey::new(&[0x11; 32]).unwrap(),
        &iv,
        b"ctx",
        sealed.clone(),
    );
    assert_rejected(
        &key,
        &GcmIv::try_from(&[0u8; 12][..]).unwrap(),
        b"ctx",
        sealed,
    );
}

#[test]
fn digests_sign_like_messages() {
    use fipsguard_crypto::digest::{digest, HashAlgorithm};
    use fipsguard_crypto::sign::verify_digest;
    let cases = [
        (
            SigningKeyType::EcdsaP384,
            SignatureScheme::EcdsaP384Sha384,
            HashAlgorithm::Sha384,
        ),
        (
            SigningKeyType::Rsa2048,
            SignatureScheme::RsaPssSha512,
            HashAlgorithm::Sha512,
        ),
        (
            SigningKeyType::Rsa2048,
            SignatureScheme::RsaPkcs1Sha256,
            HashAlgorithm::Sha256,
        ),
    ];
    for (key_type, scheme, hash) in cases {
        let key = SigningKey::generate(key_type).unwrap();
        let public = key.public_key_der().unwrap();
        let message = b"a large document, hashed by the caller";
        let hashed = digest(hash, message).unwrap();
        let signature = key.sign_digest(scheme, &hashed).unwrap();
        verify(scheme, &public, message, &signature).unwrap();
        verify_digest(
            scheme,
            &public,
            &hashed,
            &key.sign(scheme, message).unwrap(),
        )
        .unwrap();
        assert!(
            matches!(
                key.sign_digest(scheme, &hashed[1..]),
                Err(Error::InvalidInput(_))
            ),
            "wrong digest length"
        );
    }
}

#[test]
fn key_wrap_round_trips_and_detects_the_wrong_kek() {
    let kek = KeyEncryptionKey::new(&KEY).unwrap();
    for len in [1, 7, 8, 9, 32, 33, 1200] {
        let material = random::secret(len).unwrap();
        let wrapped = kek.wrap(material.expose_secret()).unwrap();
        assert_eq!(
            kek.unwrap(&wrapped).unwrap().expose_secret(),
            material.expose_secret()
        );
    }
    let wrapped = kek.wrap(&[5u8; 32]).unwrap();
    let wrong = KeyEncryptionKey::new(&[0x11; 32]).unwrap();
    assert_eq!(
        wrong.unwrap(&wrapped).unwrap_err(),
        Error::AuthenticationFailed
    );
    assert_eq!(
        kek.unwrap(&wrapped[..wrapped.len() - 8]).unwrap_err(),
        Error::AuthenticationFailed
    );
}

#[test]
fn every_signing_key_type_generates_signs_verifies_and_exports() {
    let cases = [
        (SigningKeyType::EcdsaP256, SignatureScheme::EcdsaP256Sha256),
        (SigningKeyType::EcdsaP384, SignatureScheme::EcdsaP384Sha384),
        (SigningKeyType::Rsa2048, SignatureScheme::RsaPssSha384),
        (SigningKeyType::Rsa2048, SignatureScheme::RsaPkcs1Sha512),
        (SigningKeyType::Ed25519, SignatureScheme::Ed25519),
    ];
    for (key_type, scheme) in cases {
        let key = SigningKey::generate(key_type).unwrap();
        let public = key.public_key_der().unwrap();
        let signature = key.sign(scheme, b"message").unwrap();
        verify(scheme, &public, b"message", &signature).unwrap();
        assert_eq!(
            verify(scheme, &public, b"massage", &signature).unwrap_err(),
            Error::VerificationFailed
        );

        let reimported =
            SigningKey::from_pkcs8(key_type, key.to_pkcs8().unwrap().expose_secret()).unwrap();
        assert_eq!(
            reimported.public_key_der().unwrap(),
            public,
            "{key_type:?} survives a PKCS#8 round trip"
        );
    }
}

#[test]
fn a_scheme_must_fit_its_key() {
    let key = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    assert!(matches!(
        key.sign(SignatureScheme::RsaPssSha256, b"m"),
        Err(Error::InvalidInput(_))
    ));
    let der = key.to_pkcs8().unwrap();
    assert!(matches!(
        SigningKey::from_pkcs8(SigningKeyType::EcdsaP384, der.expose_secret()),
        Err(Error::InvalidKey(_))
    ));
    let rsa = SigningKey::generate(SigningKeyType::Rsa2048).unwrap();
    assert!(matches!(
        SigningKey::from_pkcs8(
            SigningKeyType::Rsa3072,
            rsa.to_pkcs8().unwrap().expose_secret()
        ),
        Err(Error::InvalidKey(_))
    ));
}

#[test]
fn ml_kem_agrees_on_a_shared_secret() {
    for algorithm in [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024] {
        let key = DecapsulationKey::generate(algorithm).unwrap();
        let (ciphertext, sent) = encapsulate(algorithm, key.encapsulation_key().unwrap()).unwrap();
        assert_eq!(
            key.decapsulate(&ciphertext).unwrap().expose_secret(),
            sent.expose_secret()
        );

        let stored = key.to_bytes().unwrap();
        let reloaded = DecapsulationKey::from_bytes(
            algorithm,
            stored.expose_secret(),
            key.encapsulation_key().unwrap(),
        )
        .unwrap();
        assert_eq!(
            reloaded.decapsulate(&ciphertext).unwrap().expose_secret(),
            sent.expose_secret()
        );
    }
    let a = DecapsulationKey::generate(KemAlgorithm::MlKem768).unwrap();
    let b = DecapsulationKey::generate(KemAlgorithm::MlKem768).unwrap();
    let mismatched = DecapsulationKey::from_bytes(
        KemAlgorithm::MlKem768,
        a.to_bytes().unwrap().expose_secret(),
        b.encapsulation_key().unwrap(),
    );
    assert!(
        mismatched.is_err(),
        "a pair that does not belong together is not imported"
    );
}

#[test]
fn mac_verifies_in_full_and_rejects_a_wrong_tag() {
    let key = MacKey::new(MacAlgorithm::HmacSha512, &KEY).unwrap();
    let tag = key.sign(b"data").unwrap();
    assert_eq!(tag.len(), 64);
    key.verify(b"data", &tag).unwrap();
    let mut wrong = tag.clone();
    wrong[63] ^= 1;
    assert_eq!(
        key.verify(b"data", &wrong).unwrap_err(),
        Error::VerificationFailed
    );
}

#[test]
fn no_key_type_or_secret_prints_its_bytes() {
    let needle = hex(&KEY);
    let signing = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    let kem = DecapsulationKey::generate(KemAlgorithm::MlKem768).unwrap();
    let pkcs8 = signing.to_pkcs8().unwrap();
    let printed = [
        format!("{:?}", Aes256GcmKey::new(&KEY).unwrap()),
        format!("{:?}", KeyEncryptionKey::new(&KEY).unwrap()),
        format!("{:?}", MacKey::new(MacAlgorithm::HmacSha256, &KEY).unwrap()),
        format!("{:?}", SecretBytes::copy_from(&KEY)),
        format!("{signing:?}"),
        format!("{kem:?}"),
        format!("{pkcs8:?}"),
    ];
    let secret_hex = [
        needle,
        hex(pkcs8.expose_secret()),
        hex(kem.to_bytes().unwrap().expose_secret()),
    ];
    for text in &printed {
        assert!(text.contains("redacted"), "{text}");
        for secret in &secret_hex {
            assert!(!text.contains(&secret[..16]), "{text} shows secret bytes");
        }
        assert!(
            !text.contains("167, 167"),
            "{text} shows key bytes in decimal"
        );
    }
}

#[test]
fn random_bytes_differ() {
    let (a, b) = (random::bytes(32).unwrap(), random::bytes(32).unwrap());
    assert_ne!(a, b);
    assert_eq!(random::secret(1024).unwrap().len(), 1024);
}
