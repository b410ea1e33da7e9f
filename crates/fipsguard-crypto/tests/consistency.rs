//! Every generated asymmetric key passes a pairwise consistency test before
//! it is returned; a failing test discards the key and stops the module.
//! Each key type is checked in its own process, since the first failure
//! puts that process's module into its error state for good.

use std::process::Command;

use fipsguard_crypto::kem::{DecapsulationKey, KemAlgorithm};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::sign::{SigningKey, SigningKeyType};
use fipsguard_crypto::{fault, Error};

const CHILD: &str = "FIPSGUARD_PCT_CHILD";
const KEY_TYPES: [&str; 7] = [
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-2048",
    "rsa-3072",
    "ed25519",
    "ml-kem-768",
    "ml-kem-1024",
];

#[test]
fn every_key_type_runs_its_pairwise_consistency_test() {
    for key_type in KEY_TYPES {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "pct_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, key_type)
            .env(fault::ENV_VAR, "pct")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{key_type}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("pct-{key_type} failed as forced")),
            "{key_type}: {stdout}"
        );
    }
}

#[test]
#[ignore = "run in a child process by every_key_type_runs_its_pairwise_consistency_test"]
fn pct_child() {
    let key_type = std::env::var(CHILD).expect("started by the parent test");
    assert!(
        module::power_up().passed(),
        "the known-answer tests do not depend on the PCT fault"
    );
    let error = match key_type.as_str() {
        "ecdsa-p256" => SigningKey::generate(SigningKeyType::EcdsaP256).map(drop),
        "ecdsa-p384" => SigningKey::generate(SigningKeyType::EcdsaP384).map(drop),
        "rsa-2048" => SigningKey::generate(SigningKeyType::Rsa2048).map(drop),
        "rsa-3072" => SigningKey::generate(SigningKeyType::Rsa3072).map(drop),
        "ed25519" => SigningKey::generate(SigningKeyType::Ed25519).map(drop),
        "ml-kem-768" => DecapsulationKey::generate(KemAlgorithm::MlKem768).map(drop),
        "ml-kem-1024" => DecapsulationKey::generate(KemAlgorithm::MlKem1024).map(drop),
        other => panic!("unknown key type {other}"),
    }
    .unwrap_err();
    let name: &'static str = KEY_TYPES.into_iter().find(|k| *k == key_type).unwrap();
    assert_eq!(error, Error::PairwiseConsistency { algorithm: name });
    assert!(error
        .to_string()
        .contains("pairwise consistency test failed"));
    let failed_test = format!("pct-{key_type}");
    assert_eq!(
        module::state(),
        State::Error {
            failed_test: failed_test.clone()
        }
    );
    // From now on nothing is offered, including more key generation.
    assert!(matches!(
        SigningKey::generate(SigningKeyType::Ed25519),
        Err(Error::ErrorState { .. })
    ));
    println!("{failed_test} failed as forced");
}
