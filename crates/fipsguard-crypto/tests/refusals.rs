//! Asking the boundary for anything not approved is refused, and the error
//! names the rule and the standard behind it.

use fipsguard_crypto::aead::{Aes256GcmKey, GcmIv};
use fipsguard_crypto::kdf::{hkdf_sha256, pbkdf2_hmac_sha512};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::registry::lookup;
use fipsguard_crypto::sign::{SignatureScheme, SigningKey, SigningKeyType};
use fipsguard_crypto::{Error, Refusal};

const PASSWORD: &[u8] = b"correct horse battery staple";
const SALT: &[u8] = &[7u8; 16];

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> Refusal {
    match result {
        Err(Error::NotApproved(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// (what is asked, the refusal, text the message must contain)
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Refusal, &'static str)> {
    let rsa_1024 = include_bytes!("fixtures/rsa-1024.pk8.der");
    let rsa_1536 = include_bytes!("fixtures/rsa-1536.pk8.der");
    let mac = MacKey::new(MacAlgorithm::HmacSha256, &[1u8; 32]).unwrap();
    vec![
        ("md5", refusal(lookup("md5")), "FIPS 180-4"),
        ("hmac-md5", refusal(lookup("hmac-md5")), "MD5"),
        ("ecdsa-p256-sha1", refusal(lookup("ecdsa-p256-sha1")), "SP 800-131A"),
        ("rsa-pkcs1-sha1", refusal(lookup("rsa-pkcs1-sha1")), "SHA-1"),
        ("generate RSA-1024", refusal(SigningKeyType::rsa(1024)), "2048"),
        ("generate RSA-1536", refusal(SigningKeyType::rsa(1536)), "SP 800-131A"),
        ("import RSA-1024", refusal(SigningKey::from_pkcs8(SigningKeyType::Rsa2048, rsa_1024)), "2048"),
        ("import RSA-1536", refusal(SigningKey::from_pkcs8(SigningKeyType::Rsa2048, rsa_1536)), "2048"),
        ("rsa-1024 by name", refusal(lookup("rsa-1024")), "2048"),
        ("rsa-oaep-sha256", refusal(lookup("rsa-oaep-sha256")), "not an approved service of this module"),
        ("3des", refusal(lookup("3des")), "Triple-DES"),
        ("des-ede3-cbc", refusal(lookup("des-ede3-cbc")), "SP 800-131A"),
        ("des", refusal(lookup("des")), "DES"),
        ("rc4", refusal(lookup("rc4")), "RC4"),
        ("chacha20-poly1305", refusal(lookup("chacha20-poly1305")), "SP 800-38D"),
        ("ecdsa-p192-sha256", refusal(lookup("ecdsa-p192-sha256")), "SP 800-186"),
        ("x25519", refusal(lookup("x25519")), "SP 800-56A"),
        ("HMAC key of 104 bits", refusal(MacKey::new(MacAlgorithm::HmacSha256, &[1u8; 13])), "112 bits"),
        ("aes-128-ecb", refusal(lookup("aes-128-ecb")), "ECB"),
        ("AES-128 key for GCM", refusal(Aes256GcmKey::new(&[1u8; 16])), "256-bit"),
        ("AES-192 key-encryption key", refusal(KeyEncryptionKey::new(&[1u8; 24])), "256-bit"),
        ("GCM IV of 64 bits", refusal(GcmIv::try_from(&[0u8; 8][..])), "96 bits"),
        ("PBKDF2 with 999 iterations", refusal(pbkdf2_hmac_sha512(PASSWORD, SALT, 999, 32)), "1000 iterations"),
        ("PBKDF2 with a 120-bit salt", refusal(pbkdf2_hmac_sha512(PASSWORD, &[7u8; 15], 1000, 32)), "128 bits"),
        ("PBKDF2 with a 13-byte password", refusal(pbkdf2_hmac_sha512(b"thirteen-char", SALT, 1000, 32)), "14 bytes"),
        ("PBKDF2 with a 104-bit output", refusal(pbkdf2_hmac_sha512(PASSWORD, SALT, 1000, 13)), "112 bits"),
        ("HKDF with an empty salt", refusal(hkdf_sha256(b"", b"input keying material", b"info", 32)), "SP 800-56C"),
        ("truncated HMAC tag", refusal(mac.verify(b"m", &[0u8; 16])), "truncated"),
        ("Ed25519 over a digest", refusal(ed25519_digest()), "Ed25519ph"),
        ("sha-224", refusal(lookup("sha-224")), "not offered"),
        ("rsa-8192", refusal(lookup("rsa-8192")), "2048, 3072 or 4096"),
        ("an unknown name", refusal(lookup("rot13")), "registry"),
    ]
}

fn ed25519_digest() -> Result<Vec<u8>, Error> {
    let key = SigningKey::generate(SigningKeyType::Ed25519).unwrap();
    key.sign_digest(SignatureScheme::Ed25519, &[0u8; 32])
}

#[test]
fn every_non_approved_request_is_refused_by_a_named_rule() {
    let cases = cases();
    assert!(cases.len() >= 14);
    for (asked, refusal, must_mention) in &cases {
        let message = Error::NotApproved(*refusal).to_string();
        assert!(
            message.contains(must_mention),
            "refusal of {asked} ({}) should mention {must_mention:?}: {message}",
            refusal.rule_id()
        );
    }
    println!("{} refusals checked", cases.len());
}

#[test]
fn refusals_map_to_the_expected_rules() {
    let expected = [
        ("md5", Refusal::Md5),
        ("ecdsa-p256-sha1", Refusal::Sha1Signatures),
        ("rsa-1536", Refusal::RsaKeyTooSmall),
        ("rsa-8192", Refusal::RsaKeySizeNotOffered { bits: 8192 }),
        ("rsa-oaep-sha256", Refusal::RsaEncryption),
        ("3des", Refusal::TripleDes),
        ("rc4", Refusal::Rc4),
        ("chacha20-poly1305", Refusal::ChaCha20Poly1305),
        ("ecdsa-p192-sha256", Refusal::P192),
        ("x25519", Refusal::X25519),
        ("aes-128-ecb", Refusal::AesEcb),
        ("aes-128-gcm", Refusal::AesKeySizeNotOffered),
        ("hmac-sha1", Refusal::HashNotOffered),
    ];
    for (name, rule) in expected {
        assert_eq!(refusal(lookup(name)), rule, "{name}");
    }
}

#[test]
fn every_approved_name_is_found_and_covered_by_a_self_test() {
    let tests: Vec<_> = fipsguard_crypto::selftest::test_names().collect();
    for algorithm in fipsguard_crypto::registry::APPROVED {
        assert_eq!(
            lookup(&algorithm.name.to_uppercase()).unwrap().name,
            algorithm.name
        );
        assert!(
            !algorithm.self_tests.is_empty(),
            "{} has no self-test",
            algorithm.name
        );
        for t in algorithm.self_tests {
            assert!(
                tests.contains(t),
                "{}: self-test {t} does not exist",
                algorithm.name
            );
        }
    }
}

#[test]
fn every_algorithm_the_api_names_is_in_the_registry() {
    use fipsguard_crypto::digest::HashAlgorithm;
    use fipsguard_crypto::kem::KemAlgorithm;
    let key_types = [
        SigningKeyType::EcdsaP256,
        SigningKeyType::EcdsaP384,
        SigningKeyType::Rsa2048,
        SigningKeyType::Rsa3072,
        SigningKeyType::Rsa4096,
        SigningKeyType::Ed25519,
    ];
    let hashes = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha3_256,
    ];
    let names = SignatureScheme::ALL
        .iter()
        .map(|s| s.name())
        .chain(key_types.iter().map(|t| t.name()))
        .chain(
            [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024]
                .iter()
                .map(|k| k.name()),
        )
        .chain(hashes.iter().map(|h| h.name()));
    for name in names {
        assert!(
            lookup(name).is_ok(),
            "{name} is offered by the API but missing from the registry"
        );
    }
}

#[test]
fn rsa_sizes_are_limited_to_the_offered_ones() {
    assert_eq!(SigningKeyType::rsa(3072).unwrap(), SigningKeyType::Rsa3072);
    assert_eq!(
        refusal(SigningKeyType::rsa(2049)),
        Refusal::RsaKeySizeNotOffered { bits: 2049 }
    );
}
