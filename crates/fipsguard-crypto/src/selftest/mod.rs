//! The self-test suite: one known-answer test (KAT) per exposed service,
//! run through this crate's own API, at power-up and on demand.
//!
//! Every test compares against a published vector (see [`vectors`]) except
//! where the output is randomized (ECDSA and RSA-PSS signing, ML-KEM
//! encapsulation, the DRBG); those sign-then-verify or round-trip, next to a
//! fixed-vector test of the same key type.

mod vectors;

use std::time::Instant;

use vectors::*;

use crate::aead::{Aes256GcmKey, GcmIv};
use crate::digest::{digest, HashAlgorithm};
use crate::error::Error;
use crate::fault;
use crate::kdf::{hkdf_sha256, pbkdf2_hmac_sha512};
use crate::kem::{DecapsulationKey, KemAlgorithm};
use crate::keywrap::KeyEncryptionKey;
use crate::mac::{MacAlgorithm, MacKey};
use crate::module::{self, ModuleInfo};
use crate::random;
use crate::sign::{verify, SignatureScheme, SigningKey, SigningKeyType};

/// One self-test: a name (also the fault-injection name) and its check.
struct SelfTest {
    name: &'static str,
    check: fn() -> Result<(), Failure>,
}

/// Why a self-test failed.
enum Failure {
    /// The output differed from the expected value.
    Mismatch,
    /// The operation itself failed.
    Operation(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Operation(e)
    }
}

/// The result of one self-test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelfTestResult {
    /// The test's name, e.g. `aes-256-gcm-seal`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// How long it took, in microseconds.
    pub micros: u64,
}

/// The results of one run of the suite, with the module they ran on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelfTestReport {
    /// The module the tests ran on.
    pub module: ModuleInfo,
    /// Whether this build can force test failures (test builds only).
    pub fault_injection_compiled_in: bool,
    /// One result per test, FIPS mode first.
    pub results: Vec<SelfTestResult>,
    /// Wall time of the whole run, in microseconds.
    pub total_micros: u64,
}

impl SelfTestReport {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// Whether AWS-LC reported FIPS mode in this run.
    pub fn fips_mode(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.name == "fips-mode" && r.passed)
    }

    /// The first failed test, if any.
    pub fn first_failure(&self) -> Option<&'static str> {
        self.results.iter().find(|r| !r.passed).map(|r| r.name)
    }
}

/// The names of every self-test, in the order they run.
pub fn test_names() -> impl Iterator<Item = &'static str> {
    SUITE.iter().map(|t| t.name)
}

/// Runs every test, even after a failure, so the report is complete. Called
/// by [`module::run_self_tests`], which owns the state change.
pub(crate) fn run_suite() -> SelfTestReport {
    let started = Instant::now();
    let results = SUITE.iter().map(run_one).collect();
    SelfTestReport {
        module: module::info(),
        fault_injection_compiled_in: fault::ENABLED,
        results,
        total_micros: elapsed_micros(started),
    }
}

fn run_one(test: &SelfTest) -> SelfTestResult {
    let started = Instant::now();
    // A test that panics has failed; it must not take the run down with it.
    let outcome = match std::panic::catch_unwind(test.check) {
        Ok(Ok(())) if fault::injected(test.name) => {
            Err("forced to fail by fault injection".to_owned())
        }
        Ok(Ok(())) => Ok(()),
        Ok(Err(Failure::Mismatch)) => Err("output differs from the known answer".to_owned()),
        Ok(Err(Failure::Operation(e))) => Err(e.to_string()),
        Err(_) => Err("the test panicked".to_owned()),
    };
    SelfTestResult {
        name: test.name,
        passed: outcome.is_ok(),
        failure: outcome.err(),
        micros: elapsed_micros(started),
    }
}

fn elapsed_micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn expect(actual: &[u8], expected: &[u8]) -> Result<(), Failure> {
    (actual == expected).then_some(()).ok_or(Failure::Mismatch)
}

const SUITE: &[SelfTest] = &[
    SelfTest {
        name: "fips-mode",
        check: fips_mode,
    },
    SelfTest {
        name: "drbg-health",
        check: drbg_health,
    },
    SelfTest {
        name: "sha-256",
        check: || hash_kat(HashAlgorithm::Sha256, &SHA256_ABC),
    },
    SelfTest {
        name: "sha-384",
        check: || hash_kat(HashAlgorithm::Sha384, &SHA384_ABC),
    },
    SelfTest {
        name: "sha-512",
        check: || hash_kat(HashAlgorithm::Sha512, &SHA512_ABC),
    },
    SelfTest {
        name: "sha3-256",
        check: || hash_kat(HashAlgorithm::Sha3_256, &SHA3_256_ABC),
    },
    SelfTest {
        name: "hmac-sha-256",
        check: || hmac_kat(MacAlgorithm::HmacSha256, &HMAC_SHA256_TAG),
    },
    SelfTest {
        name: "hmac-sha-384",
        check: || hmac_kat(MacAlgorithm::HmacSha384, &HMAC_SHA384_TAG),
    },
    SelfTest {
        name: "hmac-sha-512",
        check: || hmac_kat(MacAlgorithm::HmacSha512, &HMAC_SHA512_TAG),
    },
    SelfTest {
        name: "aes-256-gcm-seal",
        check: aes_gcm_seal,
    },
    SelfTest {
        name: "aes-256-gcm-open",
        check: aes_gcm_open,
    },
    SelfTest {
        name: "aes-256-kwp",
        check: aes_kwp,
    },
    SelfTest {
        name: "hkdf-sha-256",
        check: hkdf,
    },
    SelfTest {
        name: "pbkdf2-hmac-sha-512",
        check: pbkdf2,
    },
    SelfTest {
        name: "ecdsa-p256-verify",
        check: || {
            verify_kat(
                SignatureScheme::EcdsaP256Sha256,
                &ECDSA_P256_PUBLIC,
                ECDSA_MESSAGE,
                &ECDSA_P256_SHA256_SIGNATURE,
            )
        },
    },
    SelfTest {
        name: "ecdsa-p256-sign",
        check: || {
            sign_kat(
                SigningKeyType::EcdsaP256,
                SignatureScheme::EcdsaP256Sha256,
                &ECDSA_P256_PKCS8,
            )
        },
    },
    SelfTest {
        name: "ecdsa-p384-verify",
        check: || {
            verify_kat(
                SignatureScheme::EcdsaP384Sha384,
                &ECDSA_P384_PUBLIC,
                ECDSA_MESSAGE,
                &ECDSA_P384_SHA384_SIGNATURE,
            )
        },
    },
    SelfTest {
        name: "ecdsa-p384-sign",
        check: || {
            sign_kat(
                SigningKeyType::EcdsaP384,
                SignatureScheme::EcdsaP384Sha384,
                &ECDSA_P384_PKCS8,
            )
        },
    },
    SelfTest {
        name: "rsa-3072-pss-verify",
        check: || {
            verify_kat(
                SignatureScheme::RsaPssSha256,
                &RSA_PSS_PUBLIC,
                &RSA_PSS_MESSAGE,
                &RSA_PSS_SHA256_SIGNATURE,
            )
        },
    },
    SelfTest {
        name: "rsa-3072-pss-sign",
        check: || {
            sign_kat(
                SigningKeyType::Rsa3072,
                SignatureScheme::RsaPssSha256,
                &RSA_3072_PKCS8,
            )
        },
    },
    SelfTest {
        name: "rsa-3072-pkcs1-verify",
        check: || {
            verify_kat(
                SignatureScheme::RsaPkcs1Sha256,
                &RSA_PKCS1_PUBLIC,
                &RSA_PKCS1_MESSAGE,
                &RSA_PKCS1_SHA256_SIGNATURE,
            )
        },
    },
    SelfTest {
        name: "ed25519",
        check: ed25519,
    },
    SelfTest {
        name: "ml-kem-768",
        check: || {
            ml_kem(
                KemAlgorithm::MlKem768,
                &ML_KEM_768_DECAPSULATION_KEY,
                &ML_KEM_768_ENCAPSULATION_KEY,
                &ML_KEM_768_CIPHERTEXT,
                &ML_KEM_768_SHARED_SECRET,
            )
        },
    },
    SelfTest {
        name: "ml-kem-1024",
        check: || {
            ml_kem(
                KemAlgorithm::MlKem1024,
                &ML_KEM_1024_DECAPSULATION_KEY,
                &ML_KEM_1024_ENCAPSULATION_KEY,
                &ML_KEM_1024_CIPHERTEXT,
                &ML_KEM_1024_SHARED_SECRET,
            )
        },
    },
];

fn fips_mode() -> Result<(), Failure> {
    aws_lc_rs::try_fips_mode().map_err(|_| {
        Failure::Operation(Error::Module(
            "FIPS mode check: AWS-LC reports it is not in FIPS mode",
        ))
    })
}

/// A continuous health check on top of AWS-LC's own DRBG tests: two outputs
/// must differ and neither may be constant.
fn drbg_health() -> Result<(), Failure> {
    let (a, b) = (random::bytes(32)?, random::bytes(32)?);
    let constant = |v: &[u8]| v.iter().all(|&x| x == v[0]);
    (a != b && !constant(&a) && !constant(&b))
        .then_some(())
        .ok_or(Failure::Mismatch)
}

fn hash_kat(algorithm: HashAlgorithm, expected: &[u8]) -> Result<(), Failure> {
    expect(&digest(algorithm, DIGEST_MESSAGE)?, expected)
}

fn hmac_kat(algorithm: MacAlgorithm, expected: &[u8]) -> Result<(), Failure> {
    let key = MacKey::new(algorithm, &HMAC_KEY)?;
    expect(&key.sign(HMAC_MESSAGE)?, expected)?;
    Ok(key.verify(HMAC_MESSAGE, expected)?)
}

fn aes_gcm_seal() -> Result<(), Failure> {
    let sealed = Aes256GcmKey::seal_with_fixed_iv_for_self_test(
        &GCM_KEY,
        &GCM_IV,
        &GCM_AAD,
        &GCM_PLAINTEXT,
    )?;
    expect(&sealed, &GCM_CIPHERTEXT_AND_TAG)
}

fn aes_gcm_open() -> Result<(), Failure> {
    let key = Aes256GcmKey::new(&GCM_KEY)?;
    let mut buffer = GCM_CIPHERTEXT_AND_TAG.to_vec();
    expect(
        key.open_in_place(&GcmIv::try_from(&GCM_IV[..])?, &GCM_AAD, &mut buffer)?,
        &GCM_PLAINTEXT,
    )
}

fn aes_kwp() -> Result<(), Failure> {
    let kek = KeyEncryptionKey::new(&KWP_KEK)?;
    expect(&kek.wrap(&KWP_PLAINTEXT)?, &KWP_WRAPPED)?;
    expect(kek.unwrap(&KWP_WRAPPED)?.expose_secret(), &KWP_PLAINTEXT)
}

fn hkdf() -> Result<(), Failure> {
    let okm = hkdf_sha256(&HKDF_SALT, &HKDF_IKM, &HKDF_INFO, HKDF_OKM.len())?;
    expect(okm.expose_secret(), &HKDF_OKM)
}

fn pbkdf2() -> Result<(), Failure> {
    let derived = pbkdf2_hmac_sha512(
        &PBKDF2_PASSWORD,
        &PBKDF2_SALT,
        PBKDF2_ITERATIONS,
        PBKDF2_DERIVED.len(),
    )?;
    expect(derived.expose_secret(), &PBKDF2_DERIVED)
}

fn verify_kat(
    scheme: SignatureScheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Failure> {
    verify(scheme, public_key, message, signature)?;
    // A verifier that accepts everything would pass the line above.
    let mut tampered = signature.to_vec();
    *tampered.last_mut().expect("signatures are not empty") ^= 1;
    match verify(scheme, public_key, message, &tampered) {
        Err(Error::VerificationFailed) => Ok(()),
        _ => Err(Failure::Mismatch),
    }
}

fn sign_kat(
    key_type: SigningKeyType,
    scheme: SignatureScheme,
    pkcs8: &[u8],
) -> Result<(), Failure> {
    const MESSAGE: &[u8] = b"fipsguard signature self-test";
    let key = SigningKey::from_pkcs8(key_type, pkcs8)?;
    let signature = key.sign(scheme, MESSAGE)?;
    Ok(verify(scheme, &key.public_key_der()?, MESSAGE, &signature)?)
}

fn ed25519() -> Result<(), Failure> {
    let key = SigningKey::from_ed25519_seed_for_self_test(&ED25519_SEED)?;
    let signature = key.sign(SignatureScheme::Ed25519, b"")?;
    expect(&signature, &ED25519_SIGNATURE)?;
    verify_kat(
        SignatureScheme::Ed25519,
        &ED25519_PUBLIC,
        b"",
        &ED25519_SIGNATURE,
    )
}

/// Decapsulates the published ciphertext; importing the pair has already
/// round-tripped a fresh encapsulation through it (the consistency test).
fn ml_kem(
    algorithm: KemAlgorithm,
    dk: &[u8],
    ek: &[u8],
    ciphertext: &[u8],
    shared_secret: &[u8],
) -> Result<(), Failure> {
    let key = DecapsulationKey::from_bytes(algorithm, dk, ek)?;
    expect(key.decapsulate(ciphertext)?.expose_secret(), shared_secret)
}
