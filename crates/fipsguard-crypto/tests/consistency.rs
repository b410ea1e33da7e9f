//! Every generated asymmetric key passes a pairwise consistency test before
//! it is returned; a failing test discards the key and stops the module.

use fipsguard_crypto::kem::{DecapsulationKey, KemAlgorithm};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::sign::{SigningKey, SigningKeyType};
use fipsguard_crypto::{fault, Error};

#[test]
fn generation_runs_the_pairwise_consistency_test() {
    // Power up cleanly first, then make every consistency test fail.
    assert!(module::power_up().passed());
    std::env::set_var(fault::ENV_VAR, "pct");

    let err = SigningKey::generate(SigningKeyType::Ed25519).unwrap_err();
    assert_eq!(
        err,
        Error::PairwiseConsistency {
            algorithm: "ed25519"
        }
    );
    assert!(err.to_string().contains("pairwise consistency test failed"));
    assert_eq!(
        module::state(),
        State::Error {
            failed_test: "pct-ed25519".into()
        }
    );

    // From now on nothing is offered, including more key generation.
    assert!(matches!(
        DecapsulationKey::generate(KemAlgorithm::MlKem768),
        Err(Error::ErrorState { .. })
    ));
}
