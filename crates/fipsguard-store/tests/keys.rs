//! The key management core on real stores: every test here runs on SQLite
//! and on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::Backend;
use fipsguard_core::kms::{
    ConfigureKey, CreateKey, DestructionOutcome, KmsConfig, LifecycleWitness, RotationOutcome,
    SignInput, MAX_PAGE,
};
use fipsguard_core::{DecryptError, EncryptionContext, KeyState, KeyType, Kms, KmsError};
use fipsguard_crypto::digest::{digest, HashAlgorithm};
use fipsguard_crypto::mac::MacAlgorithm;
use fipsguard_crypto::sign::{SignatureScheme, SigningKeyType};
use fipsguard_crypto::SecretBytes;

const AES: KeyType = KeyType::Aes256Gcm;

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EncryptionContext::new(map).unwrap()
}

fn decrypt_error(result: Result<fipsguard_crypto::SecretBytes, KmsError>) -> DecryptError {
    match result {
        Err(KmsError::Decrypt(e)) => e,
        other => panic!("expected a decrypt error, got {other:?}"),
    }
}

on_both_stores!(
    encrypt_decrypt_round_trip_binds_key_and_context,
    each_decrypt_failure_has_its_own_error,
    rotation_keeps_old_versions_decryptable_down_to_the_minimum,
    lifecycle_states_allow_only_what_they_should,
    scheduled_destruction_waits_for_its_window_and_can_be_cancelled,
    a_due_destruction_is_witnessed_first_and_held_while_its_witness_refuses,
    a_due_destruction_runs_to_its_end_when_the_request_that_found_it_goes,
    a_rotation_at_the_encryption_limit_is_witnessed_held_and_run_to_its_end,
    encryptions_that_reach_the_limit_together_add_one_version_each_rotation_heard_to_its_end,
    forced_destruction_shreds_material_and_keeps_metadata,
    listing_is_paginated_in_name_order,
    data_keys_round_trip,
    signing_keys_sign_verify_and_export_public_keys,
    mac_keys_generate_and_verify,
    batches_carry_per_item_results,
    encryption_counts_force_rotation_and_survive_restarts,
    requests_that_find_the_allowance_empty_together_reserve_one_block,
    the_next_block_is_reserved_before_the_allowance_runs_out,
    requests_that_stop_waiting_for_a_slow_store_reserve_only_their_own,
    requests_queued_for_a_reservation_reserve_the_next_block_ahead,
    two_nodes_rotating_one_key_lose_no_version,
    a_key_destroyed_through_another_node_leaves_this_nodes_memory,
    a_node_with_a_stale_record_gives_a_deactivated_key_no_version,
    a_wrong_root_key_is_refused_before_anything_changes,
    passphrase_root_keys_reopen_with_the_same_passphrase,
    a_refused_passphrase_leaves_a_new_store_as_it_was,
    no_secret_appears_in_errors_or_debug_output,
    destroyed_and_compromised_keys_get_no_new_versions,
    a_key_at_the_last_version_number_gets_no_more,
    a_key_with_a_destruction_pending_cannot_be_activated,
    root_key_sources_refuse_the_wrong_store,
    audit_anchors_are_kept_per_node_and_replaced,
    the_root_key_changes_and_every_key_and_token_follows,
    a_root_key_change_that_meets_damaged_material_changes_nothing,
    material_moved_to_another_key_is_refused,
    a_value_moved_between_a_setting_and_a_key_or_to_another_type_is_refused,
    a_public_key_put_into_the_store_verifies_nothing,
    a_store_an_earlier_release_wrote_is_bound_by_a_root_key_change,
    an_unbound_value_in_a_bound_store_is_refused,
    an_earlier_releases_value_that_is_no_key_is_not_bound,
    a_node_left_running_after_a_root_key_change_writes_nothing,
);

async fn encrypt_decrypt_round_trip_binds_key_and_context(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("payments", AES))
        .await
        .unwrap();
    let ctx = context(&[("tenant", "acme"), ("purpose", "card")]);
    let ciphertext = kms
        .encrypt("payments", b"4111 1111 1111 1111", &ctx)
        .await
        .unwrap();
    assert!(ciphertext.starts_with("fg:v1:"), "{ciphertext}");
    let info = fipsguard_core::ciphertext::describe(&ciphertext).unwrap();
    assert_eq!(
        (info.key_name.as_str(), info.version, info.plaintext_len),
        ("payments", 1, 19)
    );
    let plaintext = kms.decrypt("payments", &ciphertext, &ctx).await.unwrap();
    assert_eq!(plaintext.expose_secret(), b"4111 1111 1111 1111");
    assert_ne!(
        ciphertext,
        kms.encrypt("payments", b"4111 1111 1111 1111", &ctx)
            .await
            .unwrap(),
        "fresh IV each time"
    );

    let empty = kms
        .encrypt("payments", b"", &EncryptionContext::empty())
        .await
        .unwrap();
    assert!(kms
        .decrypt("payments", &empty, &EncryptionContext::empty())
        .await
        .unwrap()
        .is_empty());

    let too_big = vec![0u8; 64 * 1024 + 1];
    let err = kms.encrypt("payments", &too_big, &ctx).await.unwrap_err();
    assert!(
        matches!(err, KmsError::InvalidRequest(ref m) if m.contains("data key")),
        "{err}"
    );
}

async fn each_decrypt_failure_has_its_own_error(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("a", AES)).await.unwrap();
    kms.create_key(CreateKey::new("b", AES)).await.unwrap();
    let ctx = context(&[("order", "17")]);
    let ciphertext = kms.encrypt("a", b"secret order", &ctx).await.unwrap();

    let wrong_key = decrypt_error(kms.decrypt("b", &ciphertext, &ctx).await);
    assert_eq!(
        wrong_key,
        DecryptError::WrongKey {
            expected: "b".into(),
            actual: "a".into()
        }
    );
    let wrong_context = decrypt_error(
        kms.decrypt("a", &ciphertext, &context(&[("order", "18")]))
            .await,
    );
    assert_eq!(wrong_context, DecryptError::ContextMismatch);

    let truncated = &ciphertext[..ciphertext.len() - 12];
    assert!(matches!(
        decrypt_error(kms.decrypt("a", truncated, &ctx).await),
        DecryptError::Malformed(_)
    ));
    assert!(matches!(
        decrypt_error(kms.decrypt("a", "not a ciphertext", &ctx).await),
        DecryptError::Malformed(_)
    ));

    use base64::Engine;
    let (prefix, payload) = ciphertext.rsplit_once(':').unwrap();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let flipped = format!(
        "{prefix}:{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    assert_eq!(
        decrypt_error(kms.decrypt("a", &flipped, &ctx).await),
        DecryptError::Tampered
    );
    bytes[last] ^= 0x01;
    bytes[0] = 9;
    let future = format!(
        "{prefix}:{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    assert_eq!(
        decrypt_error(kms.decrypt("a", &future, &ctx).await),
        DecryptError::UnsupportedFormat(9)
    );

    // The version in the prefix is authenticated too.
    kms.rotate_key("a").await.unwrap();
    let relabelled = ciphertext.replacen("fg:v1:", "fg:v2:", 1);
    assert_eq!(
        decrypt_error(kms.decrypt("a", &relabelled, &ctx).await),
        DecryptError::Tampered
    );

    kms.configure_key(
        "a",
        ConfigureKey {
            min_decryption_version: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        decrypt_error(kms.decrypt("a", &ciphertext, &ctx).await),
        DecryptError::VersionTooOld { version: 1, min: 2 }
    );

    kms.destroy_key_now("a").await.unwrap();
    assert_eq!(
        decrypt_error(kms.decrypt("a", &ciphertext, &ctx).await),
        DecryptError::VersionDestroyed(1)
    );
    assert!(matches!(
        kms.decrypt("missing", &ciphertext, &ctx).await,
        Err(KmsError::Decrypt(DecryptError::WrongKey { .. }))
    ));
}

async fn rotation_keeps_old_versions_decryptable_down_to_the_minimum(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("rotating", AES))
        .await
        .unwrap();
    let ctx = EncryptionContext::empty();
    let v1 = kms.encrypt("rotating", b"one", &ctx).await.unwrap();
    let meta = kms.rotate_key("rotating").await.unwrap();
    assert_eq!(meta.latest_version, 2);
    let v2 = kms.encrypt("rotating", b"two", &ctx).await.unwrap();
    assert!(v2.starts_with("fg:v2:"));
    assert_eq!(
        kms.decrypt("rotating", &v1, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"one"
    );

    let rewrapped = kms.rewrap("rotating", &v1, &ctx).await.unwrap();
    assert!(rewrapped.starts_with("fg:v2:"));
    assert_eq!(
        kms.decrypt("rotating", &rewrapped, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"one"
    );

    let err = kms
        .configure_key(
            "rotating",
            ConfigureKey {
                min_decryption_version: Some(3),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(err, Err(KmsError::InvalidRequest(_))));
    kms.configure_key(
        "rotating",
        ConfigureKey {
            min_decryption_version: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(kms.decrypt("rotating", &v1, &ctx).await.is_err());
    assert_eq!(
        kms.decrypt("rotating", &v2, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"two"
    );
}

async fn lifecycle_states_allow_only_what_they_should(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let ctx = EncryptionContext::empty();
    let mut pre = CreateKey::new("staged", AES);
    pre.active = false;
    assert_eq!(
        kms.create_key(pre).await.unwrap().state,
        KeyState::PreActive
    );
    assert!(matches!(
        kms.encrypt("staged", b"x", &ctx).await,
        Err(KmsError::StateForbids { .. })
    ));
    kms.activate_key("staged").await.unwrap();
    let ciphertext = kms.encrypt("staged", b"x", &ctx).await.unwrap();

    kms.deactivate_key("staged").await.unwrap();
    let err = kms.encrypt("staged", b"x", &ctx).await.unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::StateForbids {
                state: KeyState::Deactivated,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        kms.decrypt("staged", &ciphertext, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"x",
        "deactivated keys still decrypt"
    );
    let err = kms.activate_key("staged").await.unwrap_err();
    assert!(matches!(
        err,
        KmsError::IllegalTransition {
            from: KeyState::Deactivated,
            to: KeyState::Active,
            ..
        }
    ));

    kms.compromise_key("staged").await.unwrap();
    assert!(kms.encrypt("staged", b"x", &ctx).await.is_err());
    assert!(
        kms.decrypt("staged", &ciphertext, &ctx).await.is_ok(),
        "compromised keys still decrypt to recover data"
    );
    assert!(matches!(
        kms.rotate_key("staged").await,
        Err(KmsError::StateForbids { .. })
    ));

    kms.create_key(CreateKey::new("dup", AES)).await.unwrap();
    assert!(matches!(
        kms.create_key(CreateKey::new("dup", AES)).await,
        Err(KmsError::KeyExists(_))
    ));
    assert!(matches!(
        kms.create_key(CreateKey::new("bad name!", AES)).await,
        Err(KmsError::InvalidRequest(_))
    ));
    assert!(matches!(
        kms.create_key(CreateKey::new(&"x".repeat(65), AES)).await,
        Err(KmsError::InvalidRequest(_))
    ));
    assert!(matches!(
        kms.get_key("nope").await,
        Err(KmsError::KeyNotFound(_))
    ));
}

async fn scheduled_destruction_waits_for_its_window_and_can_be_cancelled(b: Backend) {
    let (kms, clock) = b.kms_at(1_800_000_000).await;
    let ctx = EncryptionContext::empty();
    kms.create_key(CreateKey::new("old", AES)).await.unwrap();
    let ciphertext = kms.encrypt("old", b"archive", &ctx).await.unwrap();

    let err = kms.schedule_destroy("old", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            KmsError::StateForbids {
                state: KeyState::Active,
                ..
            }
        ),
        "active keys are deactivated first: {err}"
    );
    kms.deactivate_key("old").await.unwrap();
    for days in [0, 31] {
        assert!(matches!(
            kms.schedule_destroy("old", Some(days)).await,
            Err(KmsError::InvalidRequest(_))
        ));
    }
    let meta = kms.schedule_destroy("old", None).await.unwrap();
    assert_eq!(meta.destroy_at, Some(1_800_000_000 + 7 * 86_400));
    kms.cancel_destroy("old").await.unwrap();
    assert!(matches!(
        kms.cancel_destroy("old").await,
        Err(KmsError::InvalidRequest(_))
    ));

    kms.schedule_destroy("old", Some(1)).await.unwrap();
    clock.0.fetch_add(86_399, Ordering::SeqCst);
    assert!(
        kms.decrypt("old", &ciphertext, &ctx).await.is_ok(),
        "still inside the window"
    );
    // Keys stored under a name keys may no longer have (made before the
    // rule, here straight in the store), a whole page of them, due at the
    // same time as "old" and listed before it (names break the tie):
    // their failures hold up none of the others.
    let first = fipsguard_core::store::NewVersion {
        created_at: 1,
        wrapped_material: vec![0; 40],
        public_key: None,
        wrapped_under: b.root_check().await,
    };
    let mut legacy = b.store.key("old").await.unwrap().unwrap();
    for i in 0..MAX_PAGE {
        legacy.name = format!("fgt.legacy-{i:04}");
        b.store.create_key(&legacy, &first).await.unwrap();
    }
    clock.0.fetch_add(2, Ordering::SeqCst);
    let sweep = kms.destroy_due_keys().await.unwrap();
    let some_failures = || sweep.failed.iter().take(3).collect::<Vec<_>>();
    assert_eq!(sweep.destroyed, 1, "{:?}", some_failures());
    assert_eq!(sweep.failed.len(), MAX_PAGE as usize);
    assert!(
        sweep
            .failed
            .iter()
            .all(|(name, e)| name.starts_with("fgt.legacy-")
                && matches!(e, KmsError::InvalidRequest(_))),
        "{:?}",
        some_failures()
    );
    assert_eq!(kms.get_key("old").await.unwrap().state, KeyState::Destroyed);
    assert_eq!(
        decrypt_error(kms.decrypt("old", &ciphertext, &ctx).await),
        DecryptError::VersionDestroyed(1)
    );
}

/// What a witness of unattended changes heard, whether it holds them,
/// whether it makes them wait (until released) once it has heard of them,
/// and whether it takes a while to hear of one (as a log's sync does).
#[derive(Default)]
struct Witness {
    holds: std::sync::atomic::AtomicBool,
    heard: std::sync::Mutex<Vec<String>>,
    pauses: std::sync::atomic::AtomicBool,
    released: tokio::sync::Notify,
    slow: std::sync::atomic::AtomicBool,
}

impl Witness {
    async fn before(&self, heard: String) -> Result<(), String> {
        self.heard.lock().unwrap().push(heard);
        if self.pauses.load(Ordering::SeqCst) {
            self.released.notified().await;
        }
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.holds.load(Ordering::SeqCst) {
            true => Err("the log is full".into()),
            false => Ok(()),
        }
    }

    /// Releases the change it pauses once a stop of `kms` is seen to wait
    /// for it, and sees the stop end.
    async fn release_while_a_stop_waits(&self, kms: &Kms) {
        let shortly = || tokio::time::Instant::now() + Duration::from_millis(100);
        assert!(
            !kms.finish_unattended(shortly()).await,
            "a stop waits for it"
        );
        self.released.notify_one();
        assert!(
            kms.finish_unattended(shortly() + Duration::from_secs(10))
                .await,
            "it ends once released"
        );
    }

    /// Polls `request` until the witness has heard of something, then
    /// drops it (its client gone).
    async fn drop_once_heard<T: std::fmt::Debug>(
        &self,
        request: impl std::future::Future<Output = T>,
    ) {
        let mut request = std::pin::pin!(request);
        let waited = std::time::Instant::now();
        while self.heard.lock().unwrap().is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(10), "never heard");
            tokio::select! {
                answer = &mut request => panic!("answered while the witness waits: {answer:?}"),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl LifecycleWitness for Witness {
    async fn before_destruction(&self, key: &str, due_at: i64) -> Result<(), String> {
        self.before(format!("before {key} {due_at}")).await
    }

    async fn after_destruction(&self, key: &str, due_at: i64, outcome: DestructionOutcome) {
        let heard = format!("after {key} {due_at} {outcome:?}");
        self.heard.lock().unwrap().push(heard);
    }

    async fn before_rotation(&self, key: &str, limited: u32) -> Result<(), String> {
        self.before(format!("before rotation {key} {limited}"))
            .await
    }

    async fn after_rotation(&self, key: &str, limited: u32, outcome: RotationOutcome) {
        let heard = format!("after rotation {key} {limited} {outcome:?}");
        self.heard.lock().unwrap().push(heard);
    }
}

async fn a_due_destruction_is_witnessed_first_and_held_while_its_witness_refuses(b: Backend) {
    let start = 1_800_000_000;
    let (kms, clock) = b.kms_at(start).await;
    let witness = Arc::new(Witness::default());
    assert!(kms.witness_lifecycle(witness.clone()));
    let heard = || std::mem::take(&mut *witness.heard.lock().unwrap());
    let ctx = EncryptionContext::empty();
    for name in ["due", "forced"] {
        kms.create_key(CreateKey::new(name, AES)).await.unwrap();
    }
    let ciphertext = kms.encrypt("due", b"archive", &ctx).await.unwrap();
    kms.deactivate_key("due").await.unwrap();
    kms.schedule_destroy("due", Some(1)).await.unwrap();
    let due_at = start + 86_400;
    kms.destroy_key_now("forced").await.unwrap();
    assert_eq!(
        heard(),
        Vec::<String>::new(),
        "an officer's destruction is a request of its own"
    );

    // Due: carried out, never cancelled or put off.
    clock.0.store(due_at, Ordering::SeqCst);
    for refused in [
        kms.cancel_destroy("due").await,
        kms.schedule_destroy("due", Some(30)).await,
    ] {
        assert!(
            matches!(refused, Err(KmsError::StateForbids { .. })),
            "{refused:?}"
        );
    }

    // A witness that cannot record it holds it: the key is refused, its
    // material stays, the sweep reports it.
    witness.holds.store(true, Ordering::SeqCst);
    let held = kms.decrypt("due", &ciphertext, &ctx).await.unwrap_err();
    assert!(
        matches!(&held, KmsError::DestructionHeld { name, .. } if name == "due"),
        "{held}"
    );
    assert_eq!(held.code(), "destruction_held");
    let sweep = kms.destroy_due_keys().await.unwrap();
    assert_eq!(sweep.destroyed, 0);
    assert!(
        matches!(sweep.failed.as_slice(), [(name, KmsError::DestructionHeld { .. })] if name == "due")
    );
    let stored = b.store.version("due", 1).await.unwrap().unwrap();
    assert!(stored.wrapped_material.is_some(), "held: nothing shredded");
    assert_eq!(heard(), vec![format!("before due {due_at}"); 2]);

    // Once it can record it: heard before and after, and carried out.
    witness.holds.store(false, Ordering::SeqCst);
    let sweep = kms.destroy_due_keys().await.unwrap();
    assert_eq!(sweep.destroyed, 1);
    assert_eq!(
        heard(),
        [
            format!("before due {due_at}"),
            format!("after due {due_at} Destroyed")
        ]
    );
    let stored = b.store.version("due", 1).await.unwrap().unwrap();
    assert_eq!(stored.wrapped_material, None);
    assert_eq!(
        decrypt_error(kms.decrypt("due", &ciphertext, &ctx).await),
        DecryptError::VersionDestroyed(1)
    );
    assert_eq!(
        heard(),
        Vec::<String>::new(),
        "a destroyed key is not due again"
    );
    // Carried out: too late to cancel, as while it was due.
    let late = kms.cancel_destroy("due").await;
    assert!(
        matches!(
            late,
            Err(KmsError::StateForbids {
                state: KeyState::Destroyed,
                ..
            })
        ),
        "{late:?}"
    );
}

/// A request that finds a key due carries its destruction out; if the
/// request goes (its client gone, its future dropped) once the witness has
/// heard of it, the destruction still ends, the witness hears how, the
/// material this node held goes, and a stop waits for it.
async fn a_due_destruction_runs_to_its_end_when_the_request_that_found_it_goes(b: Backend) {
    let start = 1_800_000_000;
    let (kms, clock) = b.kms_at(start).await;
    let witness = Arc::new(Witness::default());
    assert!(kms.witness_lifecycle(witness.clone()));
    let heard = || std::mem::take(&mut *witness.heard.lock().unwrap());
    kms.create_key(CreateKey::new("due", AES)).await.unwrap();
    let ctx = EncryptionContext::empty();
    kms.encrypt("due", b"archive", &ctx).await.unwrap();
    assert_eq!(kms.cached_versions(), 1);
    kms.deactivate_key("due").await.unwrap();
    kms.schedule_destroy("due", Some(1)).await.unwrap();
    let due_at = start + 86_400;
    clock.0.store(due_at, Ordering::SeqCst);
    witness.pauses.store(true, Ordering::SeqCst);

    // The request runs until the witness has heard of the destruction,
    // and goes.
    witness.drop_once_heard(kms.get_key("due")).await;
    assert_eq!(heard(), [format!("before due {due_at}")]);
    witness.release_while_a_stop_waits(&kms).await;
    assert_eq!(heard(), [format!("after due {due_at} Destroyed")]);
    let stored = b.store.version("due", 1).await.unwrap().unwrap();
    assert_eq!(stored.wrapped_material, None);
    assert_eq!(kms.cached_versions(), 0, "no material left here");
}

/// A rotation at a version's encryption limit is heard of before and after,
/// as a due destruction is, and never an officer's; a witness that cannot
/// record it holds it: the key encrypts under that version while it has
/// encryptions left, and is then refused (`rotation_held`). Once heard of,
/// it runs to its end even if the request that set it off goes, and a stop
/// waits for it.
async fn a_rotation_at_the_encryption_limit_is_witnessed_held_and_run_to_its_end(b: Backend) {
    let config = KmsConfig {
        encryption_limit: 20,
        rotate_at: 10,
        reservation_block: 5,
        ..KmsConfig::default()
    };
    let kms = b.kms(config).await;
    let witness = Arc::new(Witness::default());
    assert!(kms.witness_lifecycle(witness.clone()));
    let heard = || std::mem::take(&mut *witness.heard.lock().unwrap());
    let latest = || async {
        b.store
            .key("limited")
            .await
            .unwrap()
            .unwrap()
            .latest_version
    };
    let ctx = EncryptionContext::empty();
    kms.create_key(CreateKey::new("limited", AES))
        .await
        .unwrap();
    kms.rotate_key("limited").await.unwrap();
    assert_eq!(
        heard(),
        Vec::<String>::new(),
        "an officer's rotation is a request of its own"
    );

    // Held: version 2 serves its 20 encryptions, then the key is refused.
    // The rotation is first asked for well before (reservations reach
    // `rotate_at`, 10, within the first 10 encryptions).
    witness.holds.store(true, Ordering::SeqCst);
    let mut sealed = Vec::new();
    let mut first_heard = None;
    let refused = loop {
        match kms.encrypt("limited", b"record", &ctx).await {
            Ok(ciphertext) => sealed.push(ciphertext),
            Err(e) => break e,
        }
        assert!(sealed.len() <= 20, "encrypted past the limit");
        if first_heard.is_none() && !witness.heard.lock().unwrap().is_empty() {
            first_heard = Some(sealed.len());
        }
    };
    assert!(
        first_heard.is_some_and(|n| n <= 10),
        "first heard after {first_heard:?} encryptions"
    );
    assert!(
        matches!(&refused, KmsError::RotationHeld { name, .. } if name == "limited"),
        "{refused}"
    );
    assert_eq!(refused.code(), "rotation_held");
    assert_eq!(sealed.len(), 20);
    assert_eq!(latest().await, 2, "held: no version added");
    let held = heard();
    assert!(
        !held.is_empty() && held.iter().all(|h| h == "before rotation limited 2"),
        "{held:?}"
    );

    // Once it can record it: heard before and after, and made, even though
    // the request that set it off went meanwhile.
    witness.holds.store(false, Ordering::SeqCst);
    witness.pauses.store(true, Ordering::SeqCst);
    witness
        .drop_once_heard(kms.encrypt("limited", b"record", &ctx))
        .await;
    assert_eq!(heard(), ["before rotation limited 2"]);
    witness.release_while_a_stop_waits(&kms).await;
    assert_eq!(heard(), ["after rotation limited 2 Rotated(3)"]);
    assert_eq!(latest().await, 3);
    for ciphertext in &sealed {
        kms.decrypt("limited", ciphertext, &ctx).await.unwrap();
    }
}

/// Requests that find a version at its limit while its rotation is under
/// way (its witness slow to record it) wait for their turn, and find the
/// version added: one rotation, heard of once before and once after.
async fn encryptions_that_reach_the_limit_together_add_one_version_each_rotation_heard_to_its_end(
    b: Backend,
) {
    let config = KmsConfig {
        encryption_limit: 20,
        rotate_at: 20,
        reservation_block: 5,
        ..KmsConfig::default()
    };
    let kms = Arc::new(b.kms(config).await);
    let witness = Arc::new(Witness::default());
    assert!(kms.witness_lifecycle(witness.clone()));
    witness.slow.store(true, Ordering::SeqCst);
    kms.create_key(CreateKey::new("busy", AES)).await.unwrap();
    let ctx = EncryptionContext::empty();
    // Reserved: 15 of 20. The next block (to 20) sets the rotation off,
    // and the 8th request finds the version at its limit meanwhile.
    for _ in 0..13 {
        kms.encrypt("busy", b"record", &ctx).await.unwrap();
    }
    assert_eq!(reserved(&b, "busy", 1).await, 15);
    let sealed = encrypt_at_once(&kms, "busy", 8).await;
    assert_eq!(sealed.len(), 8);
    let latest = b.store.key("busy").await.unwrap().unwrap().latest_version;
    assert_eq!(latest, 2, "one version added");
    let heard = std::mem::take(&mut *witness.heard.lock().unwrap());
    let count = |prefix: &str| heard.iter().filter(|h| h.starts_with(prefix)).count();
    assert_eq!(count("before rotation busy 1"), 1, "{heard:?}");
    assert_eq!(count("after rotation busy 1 Rotated(2)"), 1, "{heard:?}");
}

async fn forced_destruction_shreds_material_and_keeps_metadata(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("leaked", AES)).await.unwrap();
    kms.rotate_key("leaked").await.unwrap();
    let meta = kms.destroy_key_now("leaked").await.unwrap();
    assert_eq!((meta.state, meta.latest_version), (KeyState::Destroyed, 2));
    for version in 1..=2 {
        let stored = b.store.version("leaked", version).await.unwrap().unwrap();
        assert_eq!(
            stored.wrapped_material, None,
            "version {version} material deleted"
        );
    }
    assert!(matches!(
        kms.destroy_key_now("leaked").await,
        Err(KmsError::IllegalTransition { .. })
    ));
    assert!(matches!(
        kms.rotate_key("leaked").await,
        Err(KmsError::StateForbids { .. })
    ));
    assert_eq!(kms.get_key("leaked").await.unwrap().name, "leaked");
}

async fn listing_is_paginated_in_name_order(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    for i in (0..25).rev() {
        kms.create_key(CreateKey::new(
            &format!("key-{i:02}"),
            KeyType::Hmac(MacAlgorithm::HmacSha256),
        ))
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = kms.list_keys(after.as_deref(), 10).await.unwrap();
        pages += 1;
        names.extend(page.keys.iter().map(|k| k.name.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..25).map(|i| format!("key-{i:02}")).collect();
    assert_eq!(names, expected);
    assert_eq!(pages, 3);
    assert!(kms.list_keys(None, 0).await.is_err() && kms.list_keys(None, 1001).await.is_err());
}

async fn data_keys_round_trip(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("envelope", AES))
        .await
        .unwrap();
    let ctx = context(&[("file", "backup.tar")]);
    let data_key = kms.generate_data_key("envelope", 32, &ctx).await.unwrap();
    assert_eq!(data_key.plaintext.len(), 32);
    let recovered = kms
        .decrypt("envelope", &data_key.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(
        recovered.expose_secret(),
        data_key.plaintext.expose_secret()
    );
    let wrapped = kms
        .generate_wrapped_data_key("envelope", 32, &ctx)
        .await
        .unwrap();
    assert_eq!(
        kms.decrypt("envelope", &wrapped, &ctx).await.unwrap().len(),
        32
    );
    assert!(kms.generate_data_key("envelope", 8, &ctx).await.is_err());
}

async fn signing_keys_sign_verify_and_export_public_keys(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    for key_type in [
        SigningKeyType::EcdsaP256,
        SigningKeyType::EcdsaP384,
        SigningKeyType::Rsa2048,
        SigningKeyType::Ed25519,
    ] {
        let name = format!("signer-{}", key_type.name());
        kms.create_key(CreateKey::new(&name, KeyType::Signing(key_type)))
            .await
            .unwrap();
        let signature = kms
            .sign(&name, SignInput::Message(b"release 1.0"), None)
            .await
            .unwrap();
        assert_eq!(signature.version, 1);
        assert!(kms
            .verify(
                &name,
                1,
                SignInput::Message(b"release 1.0"),
                None,
                &signature.bytes
            )
            .await
            .unwrap());
        assert!(!kms
            .verify(
                &name,
                1,
                SignInput::Message(b"release 1.1"),
                None,
                &signature.bytes
            )
            .await
            .unwrap());

        let public = kms.public_key(&name, None).await.unwrap();
        assert!(
            public.pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && public.pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        assert_eq!(public.der[0], 0x30, "DER SEQUENCE");

        kms.rotate_key(&name).await.unwrap();
        assert!(
            kms.verify(
                &name,
                1,
                SignInput::Message(b"release 1.0"),
                None,
                &signature.bytes
            )
            .await
            .unwrap(),
            "old versions still verify"
        );
        assert_eq!(
            kms.sign(&name, SignInput::Message(b"x"), None)
                .await
                .unwrap()
                .version,
            2
        );
        // A version retired below the minimum neither verifies nor is
        // handed out for others to verify with.
        let retire = ConfigureKey {
            min_decryption_version: Some(2),
            ..Default::default()
        };
        kms.configure_key(&name, retire).await.unwrap();
        let too_old = DecryptError::VersionTooOld { version: 1, min: 2 };
        let verified = kms
            .verify(
                &name,
                1,
                SignInput::Message(b"release 1.0"),
                None,
                &signature.bytes,
            )
            .await;
        assert!(
            matches!(verified, Err(KmsError::Decrypt(ref e)) if *e == too_old),
            "{verified:?}"
        );
        let exported = kms.public_key(&name, Some(1)).await;
        assert!(
            matches!(exported, Err(KmsError::Decrypt(ref e)) if *e == too_old),
            "{exported:?}"
        );
        assert_eq!(kms.public_key(&name, None).await.unwrap().version, 2);
    }
    let hashed = digest(HashAlgorithm::Sha384, b"big artifact").unwrap();
    let sig = kms
        .sign(
            "signer-ecdsa-p384",
            SignInput::Digest(HashAlgorithm::Sha384, &hashed),
            None,
        )
        .await
        .unwrap();
    assert!(kms
        .verify(
            "signer-ecdsa-p384",
            2,
            SignInput::Message(b"big artifact"),
            None,
            &sig.bytes
        )
        .await
        .unwrap());
    let named_wrong = kms
        .sign(
            "signer-ecdsa-p384",
            SignInput::Digest(HashAlgorithm::Sha256, &hashed[..32]),
            None,
        )
        .await;
    assert!(
        matches!(named_wrong, Err(KmsError::InvalidRequest(ref m)) if m.contains("signs sha-384")),
        "{named_wrong:?}"
    );
    let pss = kms
        .sign(
            "signer-rsa-2048",
            SignInput::Message(b"m"),
            Some(SignatureScheme::RsaPssSha512),
        )
        .await
        .unwrap();
    assert!(kms
        .verify(
            "signer-rsa-2048",
            2,
            SignInput::Message(b"m"),
            Some(SignatureScheme::RsaPssSha512),
            &pss.bytes
        )
        .await
        .unwrap());
    assert!(kms
        .sign(
            "signer-rsa-2048",
            SignInput::Message(b"m"),
            Some(SignatureScheme::Ed25519)
        )
        .await
        .is_err());

    kms.create_key(CreateKey::new("not-a-signer", AES))
        .await
        .unwrap();
    assert!(matches!(
        kms.sign("not-a-signer", SignInput::Message(b"m"), None)
            .await,
        Err(KmsError::WrongKeyType { .. })
    ));
    assert!(matches!(
        kms.public_key("not-a-signer", None).await,
        Err(KmsError::WrongKeyType { .. })
    ));
}

async fn mac_keys_generate_and_verify(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new(
        "webhook",
        KeyType::Hmac(MacAlgorithm::HmacSha512),
    ))
    .await
    .unwrap();
    let tag = kms.mac("webhook", b"payload").await.unwrap();
    assert_eq!(tag.bytes.len(), 64);
    assert!(kms
        .mac_verify("webhook", tag.version, b"payload", &tag.bytes)
        .await
        .unwrap());
    assert!(!kms
        .mac_verify("webhook", tag.version, b"payload!", &tag.bytes)
        .await
        .unwrap());
    assert!(
        kms.mac_verify("webhook", tag.version, b"payload", &tag.bytes[..32])
            .await
            .is_err(),
        "truncated tags are refused"
    );
    assert!(matches!(
        kms.encrypt("webhook", b"x", &EncryptionContext::empty())
            .await,
        Err(KmsError::WrongKeyType { .. })
    ));
    assert_eq!(kms.random(1024).unwrap().len(), 1024);
    assert!(kms.random(0).is_err() && kms.random(1025).is_err());
}

async fn batches_carry_per_item_results(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("bulk", AES)).await.unwrap();
    let items: Vec<_> = (0..1000)
        .map(|i| {
            (
                SecretBytes::new(format!("record {i}").into_bytes()),
                context(&[("row", &i.to_string())]),
            )
        })
        .collect();
    let sealed = kms.encrypt_batch("bulk", &items).await.unwrap();
    assert!(sealed.iter().all(Result::is_ok));
    let mut to_open: Vec<_> = sealed
        .into_iter()
        .zip(&items)
        .map(|(c, (_, ctx))| (c.unwrap(), ctx.clone()))
        .collect();
    to_open[500].0 = "fg:v1:garbage".into();
    to_open[501].1 = context(&[("row", "other")]);
    let opened = kms.decrypt_batch("bulk", &to_open).await.unwrap();
    assert_eq!(opened[0].as_ref().unwrap().expose_secret(), b"record 0");
    assert!(matches!(
        opened[500],
        Err(KmsError::Decrypt(DecryptError::Malformed(_)))
    ));
    assert!(matches!(
        opened[501],
        Err(KmsError::Decrypt(DecryptError::ContextMismatch))
    ));
    assert_eq!(opened.iter().filter(|r| r.is_ok()).count(), 998);

    let too_many: Vec<_> = (0..1001)
        .map(|_| (SecretBytes::copy_from(b"x"), EncryptionContext::empty()))
        .collect();
    assert!(matches!(
        kms.encrypt_batch("bulk", &too_many).await,
        Err(KmsError::InvalidRequest(_))
    ));
    kms.create_key(CreateKey::new(
        "signer",
        KeyType::Signing(SigningKeyType::EcdsaP256),
    ))
    .await
    .unwrap();
    let signatures = kms
        .sign_batch(
            "signer",
            &[
                SignInput::Message(b"a"),
                SignInput::Digest(HashAlgorithm::Sha256, b"short"),
            ],
            None,
        )
        .await
        .unwrap();
    assert!(signatures[0].is_ok() && signatures[1].is_err());
}

async fn encryption_counts_force_rotation_and_survive_restarts(b: Backend) {
    let config = KmsConfig {
        encryption_limit: 100,
        rotate_at: 60,
        reservation_block: 10,
        ..KmsConfig::default()
    };
    let ctx = EncryptionContext::empty();
    let kms = b.kms(config.clone()).await;
    kms.create_key(CreateKey::new("counted", AES))
        .await
        .unwrap();
    let mut ciphertexts = Vec::new();
    for i in 0..150u32 {
        ciphertexts.push(
            kms.encrypt("counted", &i.to_be_bytes(), &ctx)
                .await
                .unwrap(),
        );
    }
    // Every "restart" loses the unused part of its block; none may reuse it.
    for i in 0..40u32 {
        let restarted = Kms::open(b.reopen().await, &b.key_file(), config.clone())
            .await
            .unwrap();
        ciphertexts.push(
            restarted
                .encrypt("counted", &i.to_be_bytes(), &ctx)
                .await
                .unwrap(),
        );
    }
    assert_within_reservations(&b, "counted", &ciphertexts, 100).await;
    let latest = b
        .store
        .key("counted")
        .await
        .unwrap()
        .unwrap()
        .latest_version;
    assert!(
        latest >= 3,
        "rotated automatically, now at version {latest}"
    );
    for c in &ciphertexts {
        kms.decrypt("counted", c, &ctx).await.unwrap();
    }

    // With no early rotation, the hard limit itself hands over to a new version.
    let at_limit = KmsConfig {
        encryption_limit: 30,
        rotate_at: 30,
        reservation_block: 7,
        ..KmsConfig::default()
    };
    let kms = Kms::open(b.reopen().await, &b.key_file(), at_limit.clone())
        .await
        .unwrap();
    kms.create_key(CreateKey::new("hard-limit", AES))
        .await
        .unwrap();
    let mut sealed = Vec::new();
    for i in 0..75u32 {
        sealed.push(
            kms.encrypt("hard-limit", &i.to_be_bytes(), &ctx)
                .await
                .unwrap(),
        );
    }
    assert_within_reservations(&b, "hard-limit", &sealed, 30).await;
    assert_eq!(
        b.store
            .key("hard-limit")
            .await
            .unwrap()
            .unwrap()
            .latest_version,
        3
    );

    // A limit above the SP 800-38D bound is refused outright.
    let too_high = KmsConfig {
        encryption_limit: (1 << 32) + 1,
        ..KmsConfig::default()
    };
    assert!(matches!(
        Kms::open(b.reopen().await, &b.key_file(), too_high).await,
        Err(KmsError::InvalidRequest(_))
    ));
}

async fn requests_that_find_the_allowance_empty_together_reserve_one_block(b: Backend) {
    let config = KmsConfig {
        reservation_block: 1000,
        ..KmsConfig::default()
    };
    let kms = Arc::new(b.kms(config).await);
    kms.create_key(CreateKey::new("busy", AES)).await.unwrap();
    let ciphertexts = encrypt_at_once(&kms, "busy", 64).await;
    // One store write between them, not one each: a block per request
    // would spend the version's SP 800-38D budget 1000 times too fast.
    let reserved = reserved(&b, "busy", 1).await;
    assert_eq!(
        reserved, 1000,
        "64 concurrent encryptions reserved {reserved}"
    );
    assert_within_reservations(&b, "busy", &ciphertexts, 1000).await;
}

async fn the_next_block_is_reserved_before_the_allowance_runs_out(b: Backend) {
    let config = KmsConfig {
        reservation_block: 8,
        ..KmsConfig::default()
    };
    let kms = Arc::new(b.kms(config).await);
    kms.create_key(CreateKey::new("steady", AES)).await.unwrap();
    let mut ciphertexts = Vec::new();
    for (encryptions, expected) in [(5, 8), (1, 16), (7, 16), (1, 24)] {
        for _ in 0..encryptions {
            let ctx = EncryptionContext::empty();
            ciphertexts.push(kms.encrypt("steady", b"x", &ctx).await.unwrap());
        }
        // The encryption that leaves a quarter of a block (two) reserves
        // the next block: the sixth, then the fourteenth.
        assert_eq!(
            reserved(&b, "steady", 1).await,
            expected,
            "after {} encryptions",
            ciphertexts.len()
        );
    }
    assert_within_reservations(&b, "steady", &ciphertexts, 24).await;

    // Many at once: reservations ahead and by requests that find the
    // allowance empty never overlap, so what is reserved and unused is
    // at most a block and the quarter left when it was reserved.
    kms.create_key(CreateKey::new("crowded", AES))
        .await
        .unwrap();
    let ciphertexts = encrypt_at_once(&kms, "crowded", 400).await;
    let reserved = reserved(&b, "crowded", 1).await;
    assert!(
        (400..=400 + 8 + 2).contains(&reserved),
        "reserved {reserved}"
    );
    assert_within_reservations(&b, "crowded", &ciphertexts, 410).await;
}

async fn requests_that_stop_waiting_for_a_slow_store_reserve_only_their_own(b: Backend) {
    let config = KmsConfig {
        reservation_block: 1000,
        ..KmsConfig::default()
    };
    // Held for longer than requests wait for each other's reservation
    // (200 ms).
    let hold = Duration::from_millis(700);
    let ciphertexts = encrypt_on_a_new_node_while_held(&b, config, "slow", 20, hold).await;
    // One block for the request that held the lock, one each for those
    // that stopped waiting (up to 19; not a block each, up to 20,000).
    let reserved = reserved(&b, "slow", 1).await;
    assert!((1001..=1019).contains(&reserved), "reserved {reserved}");
    assert_within_reservations(&b, "slow", &ciphertexts, 1019).await;
}

async fn requests_queued_for_a_reservation_reserve_the_next_block_ahead(b: Backend) {
    let config = KmsConfig {
        reservation_block: 8,
        ..KmsConfig::default()
    };
    // Fifteen requests find the allowance empty and queue for the lock
    // (the store answers within the 200 ms they wait). The first reserves
    // a block of 8 and the rest take from it one by one, under the lock:
    // the sixth leaves a quarter (2) and reserves the next block, and so
    // does the fourteenth. Reserving only once a block is empty would have
    // made it 16.
    let hold = Duration::from_millis(30);
    let ciphertexts = encrypt_on_a_new_node_while_held(&b, config, "queued", 15, hold).await;
    assert_eq!(reserved(&b, "queued", 1).await, 24);
    assert_within_reservations(&b, "queued", &ciphertexts, 24).await;
}

/// The encryptions reserved in the store under a version of `name`.
async fn reserved(b: &Backend, name: &str, version: u32) -> u64 {
    let stored = b.store.version(name, version).await.unwrap().unwrap();
    stored.encryptions_reserved
}

/// `count` encryptions under `name`, all at once.
async fn encrypt_at_once(kms: &Arc<Kms>, name: &'static str, count: u32) -> Vec<String> {
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..count {
        let kms = kms.clone();
        requests.spawn(async move {
            let ctx = EncryptionContext::empty();
            kms.encrypt(name, &i.to_be_bytes(), &ctx).await.unwrap()
        });
    }
    requests.join_all().await
}

/// Creates `name`, then makes `count` encryptions under it at once on
/// another node (whose allowance for the version is empty) while another
/// writer holds the store for `hold`.
async fn encrypt_on_a_new_node_while_held(
    b: &Backend,
    config: KmsConfig,
    name: &'static str,
    count: u32,
    hold: Duration,
) -> Vec<String> {
    let first = b.kms(config.clone()).await;
    first.create_key(CreateKey::new(name, AES)).await.unwrap();
    let opened = Kms::open(b.reopen().await, &b.key_file(), config).await;
    let node = Arc::new(opened.unwrap());
    node.get_key(name).await.unwrap();
    let held = hold_the_store(b, hold).await;
    let ciphertexts = encrypt_at_once(&node, name, count).await;
    held.await.unwrap();
    ciphertexts
}

/// Holds the store's write lock on the key versions (SQLite: the database;
/// PostgreSQL: the rows) from another connection for `hold`, once taken.
async fn hold_the_store(b: &Backend, hold: Duration) -> tokio::task::JoinHandle<()> {
    let (taken, is_taken) = tokio::sync::oneshot::channel();
    let held = match (b.sqlite_path(), b.postgres_url()) {
        (Some(path), _) => {
            let connection = rusqlite::Connection::open(path).unwrap();
            tokio::task::spawn_blocking(move || {
                connection.execute_batch("BEGIN IMMEDIATE").unwrap();
                taken.send(()).unwrap();
                std::thread::sleep(hold);
                connection.execute_batch("COMMIT").unwrap();
            })
        }
        (None, Some(url)) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            tokio::spawn(async move {
                client
                    .batch_execute("BEGIN; SELECT 1 FROM key_versions FOR UPDATE")
                    .await
                    .unwrap();
                taken.send(()).unwrap();
                tokio::time::sleep(hold).await;
                client.batch_execute("COMMIT").await.unwrap();
            })
        }
        (None, None) => unreachable!("a backend is SQLite or PostgreSQL"),
    };
    is_taken.await.unwrap();
    held
}

/// Every version encrypted no more than it reserved, and reserved no more
/// than the limit.
async fn assert_within_reservations(b: &Backend, name: &str, ciphertexts: &[String], limit: u64) {
    let mut used: BTreeMap<u32, u64> = BTreeMap::new();
    for c in ciphertexts {
        *used
            .entry(fipsguard_core::ciphertext::describe(c).unwrap().version)
            .or_default() += 1;
    }
    for (version, count) in used {
        let reserved = reserved(b, name, version).await;
        assert!(
            count <= reserved && reserved <= limit,
            "version {version}: used {count}, reserved {reserved}, limit {limit}"
        );
    }
}

async fn two_nodes_rotating_one_key_lose_no_version(b: Backend) {
    let first = Arc::new(b.kms(KmsConfig::default()).await);
    let second = Arc::new(
        Kms::open(b.reopen().await, &b.key_file(), KmsConfig::default())
            .await
            .unwrap(),
    );
    first
        .create_key(CreateKey::new("contended", AES))
        .await
        .unwrap();
    let rotate_100 = |kms: Arc<Kms>| {
        tokio::spawn(async move {
            for _ in 0..100 {
                kms.rotate_key("contended").await.unwrap();
            }
        })
    };
    let (a, c) = (rotate_100(first.clone()), rotate_100(second.clone()));
    a.await.unwrap();
    c.await.unwrap();
    // Read the store itself: each node's metadata cache may lag by its TTL.
    common::assert_consecutive_versions(b.store.as_ref(), "contended", 201).await;
}

async fn a_key_destroyed_through_another_node_leaves_this_nodes_memory(b: Backend) {
    let first = b.kms(KmsConfig::default()).await;
    let second = Kms::open(b.reopen().await, &b.key_file(), KmsConfig::default())
        .await
        .unwrap();
    let ctx = EncryptionContext::empty();
    for name in ["shredded", "kept"] {
        first.create_key(CreateKey::new(name, AES)).await.unwrap();
        second.encrypt(name, b"x", &ctx).await.unwrap();
    }
    assert_eq!(second.cached_versions(), 2);
    first.destroy_key_now("shredded").await.unwrap();
    let sweep = second.forget_destroyed_material().await;
    assert_eq!((sweep.forgotten, sweep.unreadable), (1, 0));
    assert_eq!(second.cached_versions(), 1, "the live key's material stays");
    assert_eq!(second.forget_destroyed_material().await.forgotten, 0);
    assert_eq!(second.cached_versions(), 1);
}

async fn a_node_with_a_stale_record_gives_a_deactivated_key_no_version(b: Backend) {
    let config = KmsConfig {
        encryption_limit: 10,
        rotate_at: 10,
        reservation_block: 5,
        ..KmsConfig::default()
    };
    let first = b.kms(config.clone()).await;
    let stale = KmsConfig {
        metadata_ttl: Duration::from_secs(3600),
        ..config
    };
    let stale = Kms::open(b.reopen().await, &b.key_file(), stale)
        .await
        .unwrap();
    let ctx = EncryptionContext::empty();
    // The second key is also rotated elsewhere before its deactivation:
    // the node's rotation at the limit finds a newer version, which a
    // deactivated key must not hand over to either.
    for (name, rotated_elsewhere) in [("retired", false), ("retired-rotated", true)] {
        first.create_key(CreateKey::new(name, AES)).await.unwrap();
        // Three of the first block of five: the next reaches the mark (a
        // quarter left) at which the block that brings the version to its
        // limit is reserved.
        for _ in 0..3 {
            stale.encrypt(name, b"x", &ctx).await.unwrap();
        }
        if rotated_elsewhere {
            first.rotate_key(name).await.unwrap();
        }
        first.deactivate_key(name).await.unwrap();
        // Within its metadata TTL the node still encrypts under the version
        // it holds (docs/keys.md), up to the limit: the rotation the limit
        // asks for is not made, nor the hand-over at the limit.
        for _ in 0..7 {
            stale.encrypt(name, b"x", &ctx).await.unwrap();
        }
        let err = stale.encrypt(name, b"x", &ctx).await.unwrap_err();
        assert!(
            matches!(
                err,
                KmsError::StateForbids {
                    state: KeyState::Deactivated,
                    operation: "encrypt",
                    ..
                }
            ),
            "{name}: {err}"
        );
        let stored = b.store.key(name).await.unwrap().unwrap();
        assert_eq!(stored.latest_version, 1 + u32::from(rotated_elsewhere));
    }
}

async fn a_wrong_root_key_is_refused_before_anything_changes(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("guarded", AES))
        .await
        .unwrap();
    let ciphertext = kms
        .encrypt("guarded", b"keep me", &EncryptionContext::empty())
        .await
        .unwrap();
    drop(kms);

    let other = b.dir.path().join("other.key");
    fipsguard_core::root::create_key_file(&other).unwrap();
    let err = Kms::open(
        b.reopen().await,
        &fipsguard_core::RootKekSource::KeyFile(other),
        KmsConfig::default(),
    )
    .await;
    assert!(
        matches!(err, Err(KmsError::RootKek(ref m)) if m.contains("not the one the store was created with"))
    );

    let loose = b.dir.path().join("loose.key");
    fipsguard_core::root::create_key_file(&loose).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = Kms::open(
        b.reopen().await,
        &fipsguard_core::RootKekSource::KeyFile(loose),
        KmsConfig::default(),
    )
    .await;
    assert!(matches!(err, Err(KmsError::RootKek(ref m)) if m.contains("wider than 0600")));

    let kms = Kms::open(b.reopen().await, &b.key_file(), KmsConfig::default())
        .await
        .unwrap();
    let plaintext = kms
        .decrypt("guarded", &ciphertext, &EncryptionContext::empty())
        .await
        .unwrap();
    assert_eq!(plaintext.expose_secret(), b"keep me");
}

async fn passphrase_root_keys_reopen_with_the_same_passphrase(b: Backend) {
    let passphrase = || passphrase_of(b"correct horse battery staple");
    let kms = Kms::open(b.store.clone(), &passphrase(), KmsConfig::default())
        .await
        .unwrap();
    kms.create_key(CreateKey::new("p", AES)).await.unwrap();
    let ciphertext = kms
        .encrypt("p", b"v", &EncryptionContext::empty())
        .await
        .unwrap();
    let reopened = Kms::open(b.reopen().await, &passphrase(), KmsConfig::default())
        .await
        .unwrap();
    assert_eq!(
        reopened
            .decrypt("p", &ciphertext, &EncryptionContext::empty())
            .await
            .unwrap()
            .expose_secret(),
        b"v"
    );
    let wrong = passphrase_of(b"incorrect horse battery staple");
    assert!(matches!(
        Kms::open(b.reopen().await, &wrong, KmsConfig::default()).await,
        Err(KmsError::RootKek(_))
    ));
    let err = refusal(b.reopen().await, &passphrase_of(b"short")).await;
    assert!(err.contains("14 bytes"), "{err}");
    assert!(!err.contains("short"), "the passphrase is never echoed");
}

async fn a_refused_passphrase_leaves_a_new_store_as_it_was(b: Backend) {
    let err = refusal(b.store.clone(), &passphrase_of(b"thirteen-char")).await;
    assert!(err.contains("14 bytes"), "{err}");
    Kms::open(b.reopen().await, &b.key_file(), KmsConfig::default())
        .await
        .unwrap();
    let long = passphrase_of(b"correct horse battery staple");
    let err = refusal(b.reopen().await, &long).await;
    assert!(err.contains("not created with a passphrase"), "{err}");
}

/// A passphrase root key source.
fn passphrase_of(text: &[u8]) -> fipsguard_core::RootKekSource {
    fipsguard_core::RootKekSource::Passphrase(fipsguard_crypto::SecretBytes::copy_from(text))
}

/// Why opening `store` with `root` is refused (it must be).
async fn refusal(
    store: Arc<dyn fipsguard_core::store::Store>,
    root: &fipsguard_core::RootKekSource,
) -> String {
    Kms::open(store, root, KmsConfig::default())
        .await
        .err()
        .expect("the open is refused")
        .to_string()
}

async fn no_secret_appears_in_errors_or_debug_output(b: Backend) {
    const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a";
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("s", AES)).await.unwrap();
    let ctx = context(&[("k", "v")]);
    let ciphertext = kms.encrypt("s", MARKER, &ctx).await.unwrap();
    let data_key = kms.generate_data_key("s", 32, &ctx).await.unwrap();
    let key_hex = common::hex(data_key.plaintext.expose_secret());

    let version = b.store.version("s", 1).await.unwrap().unwrap();
    let material_hex = common::hex(version.wrapped_material.as_ref().unwrap());
    let signed = fipsguard_core::SignInput::Message(MARKER);
    let mut texts = vec![
        format!("{version:?}"),
        format!("{signed:?}"),
        format!("{data_key:?}"),
        format!("{:?}", kms.get_key("s").await.unwrap()),
    ];
    for failure in [
        kms.decrypt("s", &ciphertext, &context(&[("k", "w")])).await,
        kms.decrypt("s", &ciphertext.replacen("fg:v1:", "fg:v2:", 1), &ctx)
            .await,
        kms.decrypt("s", &ciphertext[..40], &ctx).await,
    ] {
        let err = failure.unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    let marker = String::from_utf8_lossy(MARKER).to_string();
    for text in &texts {
        assert!(
            !text.contains(&marker)
                && !text.contains(&key_hex[..16])
                && !text.contains(&material_hex[..16]),
            "secret in {text}"
        );
    }
    assert!(texts[2].contains("redacted"));
}

/// Version numbers are 32 bits: a key at the last one is refused another,
/// and nothing is added (no version 0, no version past the range).
async fn a_key_at_the_last_version_number_gets_no_more(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("top", AES)).await.unwrap();
    b.execute("UPDATE keys SET latest_version = 4294967295 WHERE name = 'top'")
        .await;
    let refused = kms.rotate_key("top").await.unwrap_err();
    // Not a conflict to try again: this key will never take another.
    assert!(
        matches!(&refused, KmsError::VersionsExhausted(name) if name == "top"),
        "{refused:?}"
    );
    assert_eq!(refused.code(), "versions_exhausted");
    assert!(
        refused.to_string().contains("create a new key"),
        "{refused}"
    );
    let key = b.store.key("top").await.unwrap().unwrap();
    assert_eq!(key.latest_version, u32::MAX);
    for (version, stored) in [(0, false), (1, true), (2, false), (u32::MAX, false)] {
        let found = b.store.version("top", version).await.unwrap();
        assert_eq!(found.is_some(), stored, "version {version}");
    }
}

async fn destroyed_and_compromised_keys_get_no_new_versions(b: Backend) {
    use fipsguard_core::{AddedVersion, NewVersion};
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("gone", AES)).await.unwrap();
    kms.destroy_key_now("gone").await.unwrap();
    let version = NewVersion {
        created_at: 0,
        wrapped_material: vec![1; 40],
        public_key: None,
        wrapped_under: b.root_check().await,
    };
    // Even a writer that skipped every check above the store is refused.
    let added = b.store.add_version("gone", &version, None).await.unwrap();
    assert_eq!(
        added,
        AddedVersion::Refused {
            state: KeyState::Destroyed,
            latest: 1
        }
    );
    kms.create_key(CreateKey::new("leaked", AES)).await.unwrap();
    kms.compromise_key("leaked").await.unwrap();
    assert!(matches!(
        b.store.add_version("leaked", &version, None).await.unwrap(),
        AddedVersion::Refused { .. }
    ));
    // Two writers expecting the same latest version add one version between them.
    kms.create_key(CreateKey::new("raced", AES)).await.unwrap();
    assert_eq!(
        b.store
            .add_version("raced", &version, Some(1))
            .await
            .unwrap(),
        AddedVersion::Added(2)
    );
    assert!(matches!(
        b.store
            .add_version("raced", &version, Some(1))
            .await
            .unwrap(),
        AddedVersion::Refused { latest: 2, .. }
    ));
}

async fn a_key_with_a_destruction_pending_cannot_be_activated(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let mut staged = CreateKey::new("staged", AES);
    staged.active = false;
    kms.create_key(staged).await.unwrap();
    kms.schedule_destroy("staged", Some(3)).await.unwrap();
    let err = kms.activate_key("staged").await.unwrap_err();
    assert!(
        matches!(err, KmsError::StateForbids { .. }) && err.to_string().contains("cancel"),
        "{err}"
    );
    kms.cancel_destroy("staged").await.unwrap();
    assert_eq!(
        kms.activate_key("staged").await.unwrap().state,
        KeyState::Active
    );
}

async fn root_key_sources_refuse_the_wrong_store(b: Backend) {
    use fipsguard_core::RootKekSource::{Ephemeral, KeyFile};
    b.kms(KmsConfig::default()).await; // the store now belongs to the key file
    let err = refusal(b.reopen().await, &Ephemeral).await;
    assert!(err.contains("ephemeral"), "{err}");
    let passphrase = passphrase_of(b"a passphrase of some length");
    let err = refusal(b.reopen().await, &passphrase).await;
    assert!(err.contains("not created with a passphrase"), "{err}");
    assert_eq!(
        b.store.setting("root_kek_passphrase_salt").await.unwrap(),
        None,
        "no salt was written"
    );

    let KeyFile(real) = b.key_file() else {
        unreachable!()
    };
    let link = b.dir.path().join("link.key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = refusal(b.reopen().await, &KeyFile(link)).await;
    assert!(err.contains("symbolic links"), "{err}");
}

/// A new database is its owner's alone, whatever the umask, and one that
/// any user may open is refused: it holds the wrapped keys and the tokens'
/// hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_files_are_kept_from_other_users() {
    use std::os::unix::fs::PermissionsExt;
    let b = common::sqlite().await;
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("k", AES)).await.unwrap();
    let path = b.sqlite_path().unwrap();
    let shown = path.display().to_string();
    for file in [
        shown.clone(),
        format!("{shown}-wal"),
        format!("{shown}-shm"),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
    let chmod = |mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    chmod(0o644).unwrap();
    let refused = fipsguard_store::SqliteStore::open(path)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("mode 644") && refused.contains("chmod o-rwx"),
        "{refused}"
    );
    chmod(0o640).unwrap();
    let wal = format!("{shown}-wal");
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o604)).unwrap();
    let refused = fipsguard_store::SqliteStore::open(path)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(refused.contains("-wal may be opened"), "{refused}");
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o600)).unwrap();
    fipsguard_store::SqliteStore::open(path).await.unwrap();
}

/// Lookups use indexes, so they stay O(log n) however many keys there are.
#[tokio::test]
async fn sqlite_lookups_use_indexes() {
    let b = common::sqlite().await;
    b.kms(KmsConfig::default()).await;
    let connection = rusqlite::Connection::open(b.sqlite_path().unwrap()).unwrap();
    let plan = |sql: &str| -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = statement.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    for (sql, index) in [
        (
            "SELECT * FROM keys WHERE name = 'k'",
            "USING INDEX sqlite_autoindex_keys_1",
        ),
        (
            "SELECT * FROM key_versions WHERE key_name = 'k' AND version = 3",
            "USING INDEX sqlite_autoindex_key_versions_1",
        ),
        (
            "SELECT * FROM keys WHERE name > 'k' ORDER BY name LIMIT 10",
            "USING INDEX sqlite_autoindex_keys_1",
        ),
        (
            "SELECT name FROM keys WHERE destroy_at <= 5 ORDER BY destroy_at LIMIT 10",
            "USING INDEX keys_destroy_at",
        ),
    ] {
        let plan = plan(sql);
        assert!(
            plan.contains("SEARCH") && plan.contains(index),
            "{sql}: {plan}"
        );
    }
}

#[test]
fn ciphertext_versions_have_one_spelling() {
    for text in [
        "fg:v01:AQ==",
        "fg:v+1:AQ==",
        "fg:v0:AQ==",
        "fg:v:AQ==",
        "fg:v4294967296:AQ==",
    ] {
        assert!(
            matches!(
                fipsguard_core::ciphertext::describe(text),
                Err(DecryptError::Malformed(_))
            ),
            "{text}"
        );
    }
}

/// Each node's audit anchor survives a restart (another handle on the
/// store) and is replaced by the next save; nodes do not share one.
async fn audit_anchors_are_kept_per_node_and_replaced(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    assert_eq!(kms.audit_anchor("node-a").await.unwrap(), None);
    kms.save_audit_anchor("node-a", b"first").await.unwrap();
    kms.save_audit_anchor("node-a", b"second").await.unwrap();
    kms.save_audit_anchor("node-b", b"other").await.unwrap();
    let restarted = Kms::open(b.reopen().await, &b.key_file(), KmsConfig::default())
        .await
        .unwrap();
    assert_eq!(
        restarted.audit_anchor("node-a").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(
        restarted.audit_anchor("node-b").await.unwrap().as_deref(),
        Some(&b"other"[..])
    );
}

/// What a store holds under its root key: two versions of an AES key with
/// a ciphertext under each, a signing key, a destroyed key and a token.
struct Holdings {
    ciphertexts: Vec<String>,
    officer: String,
}

async fn hold_keys_and_a_token(kms: &Kms) -> Holdings {
    let officer = kms.create_first_officer_token().await.unwrap();
    kms.create_key(CreateKey::new("kept", AES)).await.unwrap();
    let mut ciphertexts = vec![];
    for rotate in [false, true] {
        if rotate {
            kms.rotate_key("kept").await.unwrap();
        }
        let ciphertext = kms
            .encrypt("kept", b"kept secret", &EncryptionContext::empty())
            .await
            .unwrap();
        ciphertexts.push(ciphertext);
    }
    let signer = KeyType::Signing(SigningKeyType::EcdsaP256);
    kms.create_key(CreateKey::new("signer", signer))
        .await
        .unwrap();
    kms.create_key(CreateKey::new("gone", AES)).await.unwrap();
    kms.destroy_key_now("gone").await.unwrap();
    Holdings {
        ciphertexts,
        officer: String::from_utf8(officer.token.expose_secret().to_vec()).unwrap(),
    }
}

/// Opens the store with `root` (nothing cached) and uses everything in
/// `held`: both ciphertexts decrypt, the signing key signs, the token
/// authenticates.
async fn assert_holdings_open(b: &Backend, root: &fipsguard_core::RootKekSource, held: &Holdings) {
    let kms = Kms::open(b.reopen().await, root, KmsConfig::default())
        .await
        .unwrap();
    for ciphertext in &held.ciphertexts {
        let plaintext = kms
            .decrypt("kept", ciphertext, &EncryptionContext::empty())
            .await
            .unwrap();
        assert_eq!(plaintext.expose_secret(), b"kept secret");
    }
    let signature = kms
        .sign("signer", SignInput::Message(b"m"), None)
        .await
        .unwrap();
    assert!(kms
        .verify(
            "signer",
            1,
            SignInput::Message(b"m"),
            None,
            &signature.bytes
        )
        .await
        .unwrap());
    assert_eq!(
        kms.authenticate(&held.officer).await.unwrap().role(),
        fipsguard_core::Role::Officer
    );
}

async fn the_root_key_changes_and_every_key_and_token_follows(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let held = hold_keys_and_a_token(&kms).await;
    let old = b.key_file();
    let err = kms.change_root_key(&old).await.unwrap_err().to_string();
    assert!(err.contains("the one in use; nothing was changed"), "{err}");

    let new = b.new_key_file();
    // Versions of "kept" and "signer"; the destroyed key has no material.
    assert_eq!(kms.change_root_key(&new).await.unwrap(), 3);
    drop(kms);
    let err = refusal(b.reopen().await, &old).await;
    assert!(
        err.contains("not the one the store was created with"),
        "{err}"
    );
    assert_holdings_open(&b, &new, &held).await;

    // To a passphrase: a salt of its own, and the key file no longer opens.
    let passphrase = passphrase_of(b"correct horse battery staple");
    let kms = Kms::open(b.reopen().await, &new, KmsConfig::default())
        .await
        .unwrap();
    assert_eq!(kms.change_root_key(&passphrase).await.unwrap(), 3);
    assert!(refusal(b.reopen().await, &new)
        .await
        .contains("not the one"));
    assert_holdings_open(&b, &passphrase, &held).await;

    // Back to a key file: the salt goes, so the passphrase is not taken
    // for a wrong one.
    let kms = Kms::open(b.reopen().await, &passphrase, KmsConfig::default())
        .await
        .unwrap();
    let short = passphrase_of(b"short");
    let err = kms.change_root_key(&short).await.unwrap_err().to_string();
    assert!(err.contains("14 bytes") && !err.contains("short"), "{err}");
    let err = kms
        .change_root_key(&fipsguard_core::RootKekSource::Ephemeral)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ephemeral"), "{err}");
    assert_eq!(kms.change_root_key(&old).await.unwrap(), 3);
    let err = refusal(b.reopen().await, &passphrase).await;
    assert!(err.contains("not created with a passphrase"), "{err}");
    assert_holdings_open(&b, &old, &held).await;
}

async fn a_root_key_change_that_meets_damaged_material_changes_nothing(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let held = hold_keys_and_a_token(&kms).await;
    let signer = KeyType::Signing(SigningKeyType::EcdsaP256);
    kms.create_key(CreateKey::new("zz-damaged", signer))
        .await
        .unwrap();
    // A public key where the wrapped material belongs: it does not unwrap.
    b.execute(
        "UPDATE key_versions SET wrapped_material = public_key WHERE key_name = 'zz-damaged'",
    )
    .await;
    let new = b.new_key_file();
    let err = kms.change_root_key(&new).await.unwrap_err().to_string();
    assert!(
        err.contains(
            "the material of zz-damaged version 1 does not unwrap under the root key in use"
        ) && err.contains("the root key was not changed"),
        "{err}"
    );
    drop(kms);
    // The versions met before the damaged one are as they were.
    assert!(refusal(b.reopen().await, &new)
        .await
        .contains("not the one"));
    assert_holdings_open(&b, &b.key_file(), &held).await;
}

/// Two signing keys, "mine" and "theirs", with `column` of theirs put in
/// mine's version 1, as a database writer without the root key could; and
/// a node that has nothing cached.
async fn theirs_put_in_mine(b: &Backend, column: &str) -> Kms {
    let kms = b.kms(KmsConfig::default()).await;
    let signer = KeyType::Signing(SigningKeyType::EcdsaP256);
    for name in ["mine", "theirs"] {
        kms.create_key(CreateKey::new(name, signer)).await.unwrap();
    }
    b.execute(&format!(
        "UPDATE key_versions SET {column} = \
         (SELECT {column} FROM key_versions WHERE key_name = 'theirs' AND version = 1) \
         WHERE key_name = 'mine' AND version = 1"
    ))
    .await;
    b.kms(KmsConfig::default()).await
}

async fn material_moved_to_another_key_is_refused(b: Backend) {
    // To sign with a key through grants that name only another.
    let kms = theirs_put_in_mine(&b, "wrapped_material").await;
    let err = kms
        .sign("mine", SignInput::Message(b"m"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the material of mine version 1 is bound to another place in the store"),
        "{err}"
    );
    kms.sign("theirs", SignInput::Message(b"m"), None)
        .await
        .unwrap();
    // Nor does a change of root key carry it over.
    let err = kms
        .change_root_key(&b.new_key_file())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the material of mine version 1 is bound to another place")
            && err.contains("the root key was not changed"),
        "{err}"
    );
}

async fn a_public_key_put_into_the_store_verifies_nothing(b: Backend) {
    // To have the service vouch for their signatures under another key's
    // name.
    let kms = theirs_put_in_mine(&b, "public_key").await;
    let theirs = kms
        .sign("theirs", SignInput::Message(b"m"), None)
        .await
        .unwrap();
    let verified = kms
        .verify("mine", 1, SignInput::Message(b"m"), None, &theirs.bytes)
        .await;
    let exported = kms.public_key("mine", None).await;
    for err in [verified.unwrap_err(), exported.unwrap_err()] {
        let err = err.to_string();
        assert!(
            err.contains("the stored public key of key mine version 1 is not its own"),
            "{err}"
        );
    }
    let theirs_verified = kms
        .verify("theirs", 1, SignInput::Message(b"m"), None, &theirs.bytes)
        .await;
    assert!(theirs_verified.unwrap());
}

async fn a_value_moved_between_a_setting_and_a_key_or_to_another_type_is_refused(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let hmac = KeyType::Hmac(MacAlgorithm::HmacSha256);
    // A key whose type is changed: an HMAC key's material taken for AES.
    kms.create_key(CreateKey::new("typed", hmac)).await.unwrap();
    b.execute("UPDATE keys SET key_type = 'aes256-gcm' WHERE name = 'typed'")
        .await;
    let err = b
        .kms(KmsConfig::default())
        .await
        .encrypt("typed", b"p", &EncryptionContext::empty())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the material of typed version 1 is bound to another place"),
        "{err}"
    );

    // The token key as a key's material would make the service a MAC
    // oracle for it, and so a maker of tokens.
    kms.create_key(CreateKey::new("tagger", hmac))
        .await
        .unwrap();
    b.execute(
        "UPDATE key_versions SET wrapped_material = \
         (SELECT value FROM settings WHERE name = 'token_hmac_key') WHERE key_name = 'tagger'",
    )
    .await;
    let err = b
        .kms(KmsConfig::default())
        .await
        .mac("tagger", b"fields")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the material of tagger version 1 is bound to another place in the store"),
        "{err}"
    );
    // A key's material as the token key, or as the check value (which is
    // read first).
    for setting in ["token_hmac_key", "root_kek_check"] {
        b.execute(&format!(
            "UPDATE settings SET value = \
             (SELECT wrapped_material FROM key_versions WHERE key_name = 'typed') \
             WHERE name = '{setting}'"
        ))
        .await;
        let err = b.open_refusal().await;
        let refusal = format!("the setting {setting} is bound to another place in the store");
        assert!(err.contains(&refusal), "{err}");
    }
}

/// A key "older" with a ciphertext, a signing key "older-signer" with a
/// signature of "m", and the first officer token's text.
async fn older_holdings(kms: &Kms) -> (String, fipsguard_core::kms::Signature, String) {
    let officer = kms.create_first_officer_token().await.unwrap();
    kms.create_key(CreateKey::new("older", AES)).await.unwrap();
    let ciphertext = kms
        .encrypt("older", b"older secret", &EncryptionContext::empty())
        .await
        .unwrap();
    let signer = KeyType::Signing(SigningKeyType::EcdsaP256);
    kms.create_key(CreateKey::new("older-signer", signer))
        .await
        .unwrap();
    let signature = kms
        .sign("older-signer", SignInput::Message(b"m"), None)
        .await
        .unwrap();
    let officer = String::from_utf8(officer.token.expose_secret().to_vec()).unwrap();
    (ciphertext, signature, officer)
}

async fn a_store_an_earlier_release_wrote_is_bound_by_a_root_key_change(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let (ciphertext, signature, officer) = older_holdings(&kms).await;
    // Such a release kept a revoked token's hash.
    let revoked = kms
        .create_token(common::token_request(
            fipsguard_core::Role::Auditor,
            None,
            "revoked",
        ))
        .await
        .unwrap();
    kms.revoke_token(&revoked.info.id).await.unwrap();
    let revoked = String::from_utf8(revoked.token.expose_secret().to_vec()).unwrap();
    b.as_an_earlier_release_wrote_it(&[&officer, &revoked])
        .await;
    let err = b.open_refusal().await;
    assert!(
        err.contains("the setting root_kek_check was wrapped by a release that did not bind")
            && err.contains("`fipsguard rekey --bind-earlier-release`"),
        "{err}"
    );

    let kms = b.rekeying_kms().await;
    let new = b.new_key_file();
    assert_eq!(kms.change_root_key(&new).await.unwrap(), 2);
    drop(kms);

    let kms = Kms::open(b.reopen().await, &new, KmsConfig::default())
        .await
        .unwrap();
    let plaintext = kms
        .decrypt("older", &ciphertext, &EncryptionContext::empty())
        .await
        .unwrap();
    assert_eq!(plaintext.expose_secret(), b"older secret");
    let verified = kms
        .verify(
            "older-signer",
            1,
            SignInput::Message(b"m"),
            None,
            &signature.bytes,
        )
        .await;
    assert!(verified.unwrap());
    let officer_id = &officer[4..20];
    assert_eq!(
        kms.authenticate(&officer).await.unwrap().role(),
        fipsguard_core::Role::Officer
    );
    let hash = b.store.token(officer_id).await.unwrap().unwrap().hash;
    assert_eq!((hash.len(), hash[0]), (33, 1), "bound");
    b.execute(&format!(
        "UPDATE tokens SET revoked_at = NULL WHERE id = '{}'",
        &revoked[4..20]
    ))
    .await;
    let kms = Kms::open(b.reopen().await, &new, KmsConfig::default())
        .await
        .unwrap();
    assert!(
        kms.authenticate(&revoked).await.is_err(),
        "revocation lifted"
    );
}

async fn an_earlier_releases_value_that_is_no_key_is_not_bound(b: Backend) {
    let (_, _, officer) = older_holdings(&b.kms(KmsConfig::default()).await).await;
    b.as_an_earlier_release_wrote_it(&[&officer]).await;
    // The signing key's material replaced by 32 random bytes, wrapped as
    // such a release wrapped values.
    let random = b.root_kek().wrap(&[0x5a; 32]).unwrap();
    b.execute(&format!(
        "UPDATE key_versions SET wrapped_material = {} WHERE key_name = 'older-signer'",
        b.blob(&random)
    ))
    .await;
    let err = b.rekey_refusal().await;
    assert!(
        err.contains("the material of older-signer version 1 does not load as a")
            && err.contains("the root key was not changed"),
        "{err}"
    );
}

async fn an_unbound_value_in_a_bound_store_is_refused(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let (ciphertext, _, _) = older_holdings(&kms).await;
    // An earlier release's form of one key's material, which whoever kept
    // a copy could put back: in a store whose values are bound, no release
    // wrote it.
    let kek = b.root_kek();
    let bound = kek
        .unwrap(
            &b.store
                .version("older", 1)
                .await
                .unwrap()
                .unwrap()
                .wrapped_material
                .unwrap(),
        )
        .unwrap();
    let raw = &bound.expose_secret()[bound.len() - 32..];
    b.execute(&format!(
        "UPDATE key_versions SET wrapped_material = {} WHERE key_name = 'older'",
        b.blob(&kek.wrap(raw).unwrap())
    ))
    .await;
    let err = b
        .kms(KmsConfig::default())
        .await
        .decrypt("older", &ciphertext, &EncryptionContext::empty())
        .await
        .unwrap_err()
        .to_string();
    let refusal =
        "the material of older version 1 is bound to no place in a store whose values are bound";
    assert!(err.contains(refusal), "{err}");
    // Nor does a change of root key bind it, asked to or not.
    let err = b.rekey_refusal().await;
    assert!(
        err.contains(refusal) && err.contains("the root key was not changed"),
        "{err}"
    );
}

async fn a_node_left_running_after_a_root_key_change_writes_nothing(b: Backend) {
    let stale = b.kms(KmsConfig::default()).await;
    stale
        .create_key(CreateKey::new("cached", AES))
        .await
        .unwrap();
    stale
        .encrypt("cached", b"v", &EncryptionContext::empty())
        .await
        .unwrap();
    let rekeying = b.kms(KmsConfig::default()).await;
    rekeying
        .create_key(CreateKey::new("elsewhere", AES))
        .await
        .unwrap();
    let ciphertext = rekeying
        .encrypt("elsewhere", b"v", &EncryptionContext::empty())
        .await
        .unwrap();
    let new = b.new_key_file();
    rekeying.change_root_key(&new).await.unwrap();

    let changed = "root key was changed (fipsguard rekey) after this node started";
    let err = stale
        .create_key(CreateKey::new("late", AES))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(changed), "{err}");
    let err = stale.rotate_key("cached").await.unwrap_err();
    assert!(err.to_string().contains(changed), "{err}");
    let err = stale
        .decrypt("elsewhere", &ciphertext, &EncryptionContext::empty())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(changed), "{err}");
    // What it holds in memory it still uses: the material is the same.
    stale
        .encrypt("cached", b"v", &EncryptionContext::empty())
        .await
        .unwrap();

    let kms = Kms::open(b.reopen().await, &new, KmsConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        kms.get_key("late").await,
        Err(KmsError::KeyNotFound(_))
    ));
    assert_eq!(kms.get_key("cached").await.unwrap().latest_version, 1);
}

/// Ciphertexts naming a version the key's cached record lacks (made up,
/// or from a rotation on another node) re-read the key, but a batch's
/// items share one read made since the batch came: a batch of made-up
/// versions is not a thousand store reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_made_up_versions_reads_its_key_once() {
    let Some(b) = common::postgres().await else {
        return;
    };
    let kms = Arc::new(b.kms(KmsConfig::default()).await);
    kms.create_key(CreateKey::new("k", AES)).await.unwrap();
    let ctx = EncryptionContext::empty();
    let made_up = kms
        .encrypt("k", b"x", &ctx)
        .await
        .unwrap()
        .replacen("fg:v1:", "fg:v9:", 1);
    let url = b.postgres_url().unwrap();
    let first = common::TableLock::take(url, "keys").await;
    let second = common::TableLock::connect(url).await;
    let batch = tokio::spawn({
        let kms = kms.clone();
        let items = vec![(made_up, ctx); 1000];
        async move { kms.decrypt_batch("k", &items).await }
    });
    let mut waited = 0;
    while first.waiting(url).await == 0 {
        waited += 1;
        assert!(waited < 500, "the first item reads the key");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first item's read goes through; the table is locked again
    // behind it: another read would wait for as long as the test does.
    first.release().await;
    second.lock("keys").await;
    let answers = tokio::time::timeout(Duration::from_secs(20), batch).await;
    second.release().await;
    let answers = answers
        .expect("the batch ended without reading the key again")
        .unwrap()
        .unwrap();
    assert_eq!(answers.len(), 1000);
    for answer in answers {
        assert!(
            matches!(answer, Err(KmsError::VersionNotFound { version: 9, .. })),
            "{answer:?}"
        );
    }
}
