//! Project Wycheproof's vectors, run through the boundary's own API. Every
//! "valid" vector must be accepted with the right output, every "invalid"
//! one rejected, and every vector whose parameters fipsguard's policy does
//! not offer (short keys, short tags, SHA-1, non-standard IV sizes...) must
//! be refused by the boundary with a named rule.

use fipsguard_crypto::aead::{Aes256GcmKey, GcmIv};
use fipsguard_crypto::kdf::{hkdf_sha256, pbkdf2_hmac_sha512};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::registry;
use fipsguard_crypto::sign::{verify, SignatureScheme};
use fipsguard_crypto::Error;
use wycheproof::{HashFunction, TestResult};

/// What the boundary did with one vector: `Ok(true)` accepted with the
/// expected output, `Ok(false)` or `Err(_)` rejected, `Err(NotApproved)` refused.
type Outcome = Result<bool, Error>;

#[derive(Default)]
struct Tally {
    checked: usize,
    matched: usize,
    refused: usize,
    cross_checked: usize,
    mismatches: Vec<String>,
}

impl Tally {
    /// Records one vector. `refused_by` names the rule fipsguard's policy
    /// must refuse it by, if its parameters are not offered.
    fn record(
        &mut self,
        id: String,
        verdict: TestResult,
        refused_by: Option<&str>,
        outcome: Outcome,
    ) {
        self.checked += 1;
        let problem = match (&outcome, refused_by) {
            (Err(Error::NotApproved(r)), Some(rule)) if r.rule_id() == rule => {
                self.refused += 1;
                None
            }
            (Err(Error::NotApproved(r)), Some(rule)) => {
                Some(format!("refused by {} instead of {rule}", r.rule_id()))
            }
            (Err(Error::NotApproved(r)), None) => Some(format!(
                "refused ({}) but the policy allows it",
                r.rule_id()
            )),
            (_, Some(rule)) => Some(format!("accepted parameters the policy refuses ({rule})")),
            (Ok(true), _) if verdict == TestResult::Invalid => {
                Some("accepted an invalid vector".to_owned())
            }
            (Ok(false) | Err(_), _) if verdict == TestResult::Valid => {
                Some(format!("rejected a valid vector: {outcome:?}"))
            }
            _ => None,
        };
        match problem {
            Some(p) => self.mismatches.push(format!("{id}: {p}")),
            None => self.matched += 1,
        }
    }

    /// Cross-checks a vector with parameters the API cannot express: pushed
    /// through the nearest offered service, it must never be accepted.
    fn must_not_accept(&mut self, id: String, outcome: Outcome) {
        self.cross_checked += 1;
        if matches!(outcome, Ok(true)) {
            self.mismatches.push(format!(
                "{id}: accepted through the nearest offered service"
            ));
        }
    }

    fn finish(self, family: &str) {
        println!(
            "wycheproof {family:<10} checked {:>5}  matched {:>5}  refused by policy {:>5}  cross-checked {:>5}",
            self.checked, self.matched, self.refused, self.cross_checked
        );
        assert!(self.checked > 0, "{family}: no vectors ran");
        assert!(
            self.mismatches.is_empty(),
            "{family}: {:#?}",
            self.mismatches
        );
    }
}

/// Looks a signature scheme up in the registry by name, as a caller would.
fn scheme(name: &str) -> Result<SignatureScheme, Error> {
    let approved = registry::lookup(name)?;
    Ok(SignatureScheme::ALL
        .into_iter()
        .find(|s| s.name() == approved.name)
        .expect("registry names match schemes"))
}

fn hash_name(hash: HashFunction) -> &'static str {
    match hash {
        HashFunction::Sha1 => "sha1",
        HashFunction::Sha2_224 => "sha224",
        HashFunction::Sha2_256 => "sha256",
        HashFunction::Sha2_384 => "sha384",
        HashFunction::Sha2_512 => "sha512",
        HashFunction::Sha2_512_224 => "sha512-224",
        HashFunction::Sha2_512_256 => "sha512-256",
        HashFunction::Sha3_224 => "sha3-224",
        HashFunction::Sha3_256 => "sha3-256",
        HashFunction::Sha3_384 => "sha3-384",
        HashFunction::Sha3_512 => "sha3-512",
        HashFunction::Shake128 => "shake128",
        HashFunction::Shake256 => "shake256",
    }
}

fn hash_len(hash: HashFunction) -> usize {
    match hash {
        HashFunction::Sha2_384 | HashFunction::Sha3_384 => 48,
        HashFunction::Sha2_512 | HashFunction::Sha3_512 => 64,
        HashFunction::Sha1 => 20,
        HashFunction::Sha2_224 | HashFunction::Sha2_512_224 | HashFunction::Sha3_224 => 28,
        _ => 32,
    }
}

#[test]
fn aes_256_gcm() {
    use wycheproof::aead::{TestName, TestSet};
    let mut tally = Tally::default();
    for group in TestSet::load(TestName::AesGcm).unwrap().test_groups {
        let refused_by = match (group.key_size, group.nonce_size) {
            (256, 96) => None,
            (256, _) => Some("gcm-iv-length"),
            _ => Some("aes-key-size-not-offered"),
        };
        for t in group.tests {
            let id = format!("aes_gcm tcId {}", t.tc_id);
            let open = || -> Outcome {
                let key = Aes256GcmKey::new(&t.key)?;
                let iv = GcmIv::try_from(&t.nonce[..])?;
                let mut buffer = [&t.ct[..], &t.tag[..]].concat();
                Ok(key.open_in_place(&iv, &t.aad, &mut buffer)? == &t.pt[..])
            };
            match group.tag_size {
                // The API has no truncated-tag service: such a vector can only
                // be pushed through the full-tag open, which must reject it.
                128 => tally.record(id, t.result, refused_by, open()),
                _ => tally.must_not_accept(id, open()),
            }
        }
    }
    tally.finish("aes-gcm");
}

#[test]
fn aes_256_kwp() {
    use wycheproof::keywrap::{TestName, TestSet};
    let mut tally = Tally::default();
    for group in TestSet::load(TestName::AesKeyWrapWithPadding)
        .unwrap()
        .test_groups
    {
        let refused_by = (group.key_size != 256).then_some("aes-key-size-not-offered");
        for t in group.tests {
            let outcome = (|| {
                let kek = KeyEncryptionKey::new(&t.key)?;
                let unwrapped = kek.unwrap(&t.ct)?;
                Ok(unwrapped.expose_secret() == &t.pt[..] && kek.wrap(&t.pt)? == t.ct[..])
            })();
            tally.record(
                format!("aes_kwp tcId {}", t.tc_id),
                t.result,
                refused_by,
                outcome,
            );
        }
    }
    tally.finish("aes-kwp");
}

#[test]
fn hmac() {
    use wycheproof::mac::{TestName, TestSet};
    let families = [
        (
            TestName::HmacSha256,
            "hmac-sha256",
            Some(MacAlgorithm::HmacSha256),
        ),
        (
            TestName::HmacSha384,
            "hmac-sha384",
            Some(MacAlgorithm::HmacSha384),
        ),
        (
            TestName::HmacSha512,
            "hmac-sha512",
            Some(MacAlgorithm::HmacSha512),
        ),
        (TestName::HmacSha1, "hmac-sha1", None),
        (TestName::HmacSha3_256, "hmac-sha3-256", None),
    ];
    let mut tally = Tally::default();
    for (name, registry_name, algorithm) in families {
        for group in TestSet::load(name).unwrap().test_groups {
            let refused_by = match algorithm {
                None => Some("hash-not-offered"),
                Some(_) if group.key_size < 112 => Some("hmac-key-too-short"),
                Some(a) if group.tag_size < a.tag_len() * 8 => Some("truncated-tag"),
                Some(_) => None,
            };
            for t in group.tests {
                let outcome = (|| {
                    registry::lookup(registry_name)?;
                    let key = MacKey::new(algorithm.expect("looked up"), &t.key)?;
                    key.verify(&t.msg, &t.tag)?;
                    Ok(key.sign(&t.msg)? == t.tag[..])
                })();
                tally.record(
                    format!("{registry_name} tcId {}", t.tc_id),
                    t.result,
                    refused_by,
                    outcome,
                );
            }
        }
    }
    tally.finish("hmac");
}

#[test]
fn hkdf() {
    use wycheproof::hkdf::{TestName, TestSet};
    let mut tally = Tally::default();
    for (name, registry_name) in [
        (TestName::HkdfSha256, "hkdf-sha256"),
        (TestName::HkdfSha1, "hkdf-sha1"),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            for t in group.tests {
                let refused_by = match (registry_name, t.salt.is_empty()) {
                    ("hkdf-sha256", false) => None,
                    ("hkdf-sha256", true) => Some("hkdf-empty-salt"),
                    _ => Some("hash-not-offered"),
                };
                let outcome = (|| {
                    registry::lookup(registry_name)?;
                    Ok(
                        hkdf_sha256(&t.salt, &t.ikm, &t.info, t.size)?.expose_secret()
                            == &t.okm[..],
                    )
                })();
                tally.record(
                    format!("{registry_name} tcId {}", t.tc_id),
                    t.result,
                    refused_by,
                    outcome,
                );
            }
        }
    }
    tally.finish("hkdf");
}

#[test]
fn pbkdf2_hmac_sha512_vectors() {
    use wycheproof::pbkdf2::{TestName, TestSet};
    let mut tally = Tally::default();
    for group in TestSet::load(TestName::Pbkdf2HmacSha512)
        .unwrap()
        .test_groups
    {
        for t in group.tests {
            // The checks run in this order in the boundary; the first broken rule is named.
            let refused_by = if t.iteration_count < 1000 {
                Some("pbkdf2-iterations")
            } else if t.salt.len() < 16 {
                Some("pbkdf2-salt-too-short")
            } else if t.password.len() < 14 {
                Some("pbkdf2-password-too-short")
            } else if t.dk_len < 14 {
                Some("pbkdf2-output-too-short")
            } else {
                None
            };
            let outcome = (|| {
                let iterations = u32::try_from(t.iteration_count)
                    .map_err(|_| Error::InvalidInput("iterations"))?;
                Ok(
                    pbkdf2_hmac_sha512(&t.password, &t.salt, iterations, t.dk_len)?.expose_secret()
                        == &t.dk[..],
                )
            })();
            tally.record(
                format!("pbkdf2 tcId {}", t.tc_id),
                t.result,
                refused_by,
                outcome,
            );
        }
    }
    tally.finish("pbkdf2");
}

#[test]
fn ecdsa_p256_p384() {
    use wycheproof::ecdsa::{TestName, TestSet};
    // (file, the scheme name a caller would ask for, the rule that refuses
    // it, the offered scheme for the same curve)
    let families = [
        (
            TestName::EcdsaSecp256r1Sha256,
            "ecdsa-p256-sha256",
            None,
            SignatureScheme::EcdsaP256Sha256,
        ),
        (
            TestName::EcdsaSecp384r1Sha384,
            "ecdsa-p384-sha384",
            None,
            SignatureScheme::EcdsaP384Sha384,
        ),
        (
            TestName::EcdsaSecp256r1Sha512,
            "ecdsa-p256-sha512",
            Some("unknown-algorithm"),
            SignatureScheme::EcdsaP256Sha256,
        ),
        (
            TestName::EcdsaSecp384r1Sha256,
            "ecdsa-p384-sha256",
            Some("unknown-algorithm"),
            SignatureScheme::EcdsaP384Sha384,
        ),
        (
            TestName::EcdsaSecp192r1Sha256,
            "ecdsa-p192-sha256",
            Some("p192"),
            SignatureScheme::EcdsaP256Sha256,
        ),
    ];
    let mut tally = Tally::default();
    for (name, scheme_name, refused_by, nearest) in families {
        for group in TestSet::load(name).unwrap().test_groups {
            for t in group.tests {
                let id = format!("{scheme_name} tcId {}", t.tc_id);
                let outcome = scheme(scheme_name)
                    .and_then(|s| verify(s, &group.der, &t.msg, &t.sig).map(|()| true));
                if refused_by.is_some() && t.result == TestResult::Valid {
                    tally.must_not_accept(
                        id.clone(),
                        verify(nearest, &group.der, &t.msg, &t.sig).map(|()| true),
                    );
                }
                tally.record(id, t.result, refused_by, outcome);
            }
        }
    }
    tally.finish("ecdsa");
}

#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let files = [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPss2048Sha1Mgf1SaltLen20,
        TestName::RsaPss2048Sha256Mgf1SaltLen0,
        TestName::RsaPss4096Sha512Mgf1SaltLen32,
        TestName::RsaPss2048Sha256Mgf1Sha1_20,
        TestName::RsaPssmisc,
    ];
    let mut tally = Tally::default();
    for file in files {
        for group in TestSet::load(file).unwrap().test_groups {
            // fipsguard offers PSS with MGF1 over the same hash and a salt
            // as long as the hash; anything else is a different scheme name.
            let hash = hash_name(group.hash);
            let standard =
                group.mgf_hash == Some(group.hash) && group.salt_size == hash_len(group.hash);
            let scheme_name = match standard {
                true => format!("rsa-pss-{hash}"),
                false => format!(
                    "rsa-pss-{hash}-mgf1-{}-salt{}",
                    group.mgf_hash.map_or("none", hash_name),
                    group.salt_size
                ),
            };
            let offered = |h: HashFunction| {
                matches!(
                    h,
                    HashFunction::Sha2_256 | HashFunction::Sha2_384 | HashFunction::Sha2_512
                )
            };
            let refused_by = if scheme_name.contains("sha1") {
                Some("sha1-signatures")
            } else if !offered(group.hash) || group.mgf_hash.is_some_and(|h| !offered(h)) {
                Some("hash-not-offered")
            } else if !standard {
                Some("unknown-algorithm")
            } else {
                None
            };
            let nearest = scheme(&format!("rsa-pss-{hash}")).ok();
            for t in group.tests {
                let id = format!("{scheme_name} tcId {}", t.tc_id);
                let outcome = scheme(&scheme_name)
                    .and_then(|s| verify(s, &group.der, &t.msg, &t.sig).map(|()| true));
                if let (Some(_), Some(nearest), TestResult::Valid) = (refused_by, nearest, t.result)
                {
                    tally.must_not_accept(
                        id.clone(),
                        verify(nearest, &group.der, &t.msg, &t.sig).map(|()| true),
                    );
                }
                tally.record(id, t.result, refused_by, outcome);
            }
        }
    }
    tally.finish("rsa-pss");
}

#[test]
fn rsa_pkcs1() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let files = [
        TestName::Rsa2048Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa4096Sha512,
        TestName::Rsa2048Sha224,
    ];
    let mut tally = Tally::default();
    for file in files {
        for group in TestSet::load(file).unwrap().test_groups {
            let scheme_name = format!("rsa-pkcs1-{}", hash_name(group.hash));
            let refused_by = match group.hash {
                HashFunction::Sha2_256 | HashFunction::Sha2_384 | HashFunction::Sha2_512 => None,
                _ => Some("hash-not-offered"),
            };
            for t in group.tests {
                let outcome = scheme(&scheme_name)
                    .and_then(|s| verify(s, &group.der, &t.msg, &t.sig).map(|()| true));
                tally.record(
                    format!("{scheme_name} tcId {}", t.tc_id),
                    t.result,
                    refused_by,
                    outcome,
                );
            }
        }
    }
    tally.finish("rsa-pkcs1");
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let mut tally = Tally::default();
    for group in TestSet::load(TestName::Ed25519).unwrap().test_groups {
        for t in group.tests {
            let outcome =
                verify(SignatureScheme::Ed25519, &group.der, &t.msg, &t.sig).map(|()| true);
            tally.record(format!("ed25519 tcId {}", t.tc_id), t.result, None, outcome);
        }
    }
    tally.finish("ed25519");
}
