//! Tokens, roles and grants on real stores.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TableLock};
use fipsguard_core::auth::{Grant, Operation, Role};
use fipsguard_core::kms::{CreateKey, CreateToken, KmsConfig, MAX_GRANTS};
use fipsguard_core::{EncryptionContext, KeyType, Kms, KmsError};
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};

fn text(token: &fipsguard_crypto::SecretBytes) -> String {
    String::from_utf8(token.expose_secret().to_vec()).unwrap()
}

on_both_stores!(
    tokens_authenticate_until_revoked_or_expired,
    grants_decide_what_users_may_do,
    a_lifetime_policy_bounds_every_token_but_the_first,
    a_token_row_changed_in_the_database_authenticates_no_one,
    an_earlier_releases_token_hash_in_a_bound_store_is_refused
);

/// A user token for keys `app-*` that encrypts, valid an hour: its id and text.
async fn app_token(kms: &Kms) -> (String, String) {
    let user = kms
        .create_token(CreateToken {
            role: Role::User,
            grants: vec![Grant {
                keys: "app-*".into(),
                operations: vec![Operation::Encrypt],
            }],
            ttl_secs: Some(3600),
            description: "app".into(),
        })
        .await
        .unwrap();
    (user.info.id.clone(), text(&user.token))
}

/// Whether `token` authenticates on a node that has nothing cached.
async fn authenticates(b: &Backend, token: &str) -> bool {
    let kms = b.kms(KmsConfig::default()).await;
    match kms.authenticate(token).await {
        Ok(principal) => {
            assert_eq!(principal.role(), Role::User);
            true
        }
        Err(KmsError::Unauthenticated) => false,
        Err(e) => panic!("{e}"),
    }
}

/// Changes that whoever can write to the database, without the token key,
/// could make to give a token more than it was issued with.
const WIDENINGS: [(&str, &str); 5] = [
    ("role", "role = 'officer', grants = '[]'"),
    (
        "grants",
        r#"grants = '[{"keys":"*","operations":["encrypt","decrypt","sign","read"]}]'"#,
    ),
    ("expiry", "expires_at = NULL"),
    ("creation", "created_at = created_at + 86400"),
    ("description", "description = 'deploy'"),
];

async fn a_token_row_changed_in_the_database_authenticates_no_one(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let first = kms.create_first_officer_token().await.unwrap();
    let (id, token) = app_token(&kms).await;
    let issued = b.store.token(&id).await.unwrap().unwrap().info;
    let restore = format!(
        "UPDATE tokens SET role = 'user', grants = '{}', expires_at = {}, created_at = {}, \
         description = 'app' WHERE id = '{id}'",
        serde_json::to_string(&issued.grants).unwrap(),
        issued.expires_at.unwrap(),
        issued.created_at,
    );
    assert!(authenticates(&b, &token).await);
    for (what, change) in WIDENINGS {
        b.execute(&format!("UPDATE tokens SET {change} WHERE id = '{id}'"))
            .await;
        assert!(!authenticates(&b, &token).await, "{what} changed");
        b.execute(&restore).await;
        assert!(authenticates(&b, &token).await, "{what} restored");
    }
    // Its hash given to another token of the same secret's holder does
    // not carry it over either.
    let (other, _) = app_token(&kms).await;
    b.execute(&format!(
        "UPDATE tokens SET hash = (SELECT hash FROM tokens WHERE id = '{id}') WHERE id = '{other}'"
    ))
    .await;
    let moved = format!("fgt.{other}.{}", &token[4 + 16 + 1..]);
    assert!(!authenticates(&b, &moved).await);

    // A revocation lifted in the database: revoking cleared the hash.
    kms.revoke_token(&id).await.unwrap();
    b.execute(&format!(
        "UPDATE tokens SET revoked_at = NULL WHERE id = '{id}'"
    ))
    .await;
    assert!(!authenticates(&b, &token).await, "revocation lifted");
    // An officer's listing shows it for what it is.
    let listed = kms.list_tokens().await.unwrap();
    let altered = |id: &str| listed.iter().find(|t| t.info.id == id).unwrap().altered;
    assert!(altered(&id), "a lifted revocation is listed as altered");
    assert!(!altered(&first.info.id));

    // Nor does such a token count as the live officer that lets the last
    // real one be revoked (which would leave no way in).
    let second = kms
        .create_token(common::token_request(Role::Officer, None, "second officer"))
        .await
        .unwrap();
    kms.revoke_token(&second.info.id).await.unwrap();
    b.execute(&format!(
        "UPDATE tokens SET revoked_at = NULL WHERE id = '{}'",
        second.info.id
    ))
    .await;
    assert!(matches!(
        kms.revoke_token(&first.info.id).await,
        Err(KmsError::LastOfficerToken)
    ));
}

async fn an_earlier_releases_token_hash_in_a_bound_store_is_refused(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    kms.create_first_officer_token().await.unwrap();
    let (id, token) = app_token(&kms).await;
    // The hash an earlier release stored (HMAC-SHA-256 of the secret alone
    // under the token key), with a wider role: whoever kept a copy of
    // such a row could put it back.
    let wrapped = b.store.setting("token_hmac_key").await.unwrap().unwrap();
    let bound = b.root_kek().unwrap(&wrapped).unwrap();
    let token_key = &bound.expose_secret()[bound.len() - 32..];
    let older = MacKey::new(MacAlgorithm::HmacSha256, token_key)
        .unwrap()
        .sign(&token.as_bytes()[4 + 16 + 1..])
        .unwrap();
    b.execute(&format!(
        "UPDATE tokens SET hash = {}, role = 'officer', grants = '[]' WHERE id = '{id}'",
        b.blob(&older)
    ))
    .await;
    let kms = b.kms(KmsConfig::default()).await;
    assert!(matches!(
        kms.authenticate(&token).await,
        Err(KmsError::Unauthenticated)
    ));
    // Nor does a change of root key bind it, asked to or not.
    let err = b.rekey_refusal().await;
    assert!(
        err.contains(&format!("token {id} has a hash of its secret alone"))
            && err.contains("the root key was not changed"),
        "{err}"
    );
}

async fn tokens_authenticate_until_revoked_or_expired(b: Backend) {
    let (kms, clock) = b.kms_at(1_900_000_000).await;
    let first = kms.create_first_officer_token().await.unwrap();
    assert!(matches!(
        kms.create_first_officer_token().await,
        Err(KmsError::InvalidRequest(_))
    ));
    let officer = text(&first.token);
    assert!(officer.starts_with(&format!("fgt.{}.", first.info.id)));
    assert_eq!(
        kms.authenticate(&officer).await.unwrap().role(),
        Role::Officer
    );
    assert!(
        !format!("{first:?}").contains(&officer[25..]),
        "Debug never shows the secret"
    );

    // Only the keyed hash is stored.
    let stored = b.store.token(&first.info.id).await.unwrap().unwrap();
    assert!(!stored
        .hash
        .windows(8)
        .any(|w| officer.as_bytes().windows(8).any(|t| t == w)));

    let mut forged = officer.clone();
    forged.pop();
    forged.push(if officer.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        forged.as_str(),
        "",
        "Bearer",
        "fgt.0123456789abcdef.short",
        &officer[..officer.len() - 1],
    ] {
        assert!(
            matches!(kms.authenticate(bad).await, Err(KmsError::Unauthenticated)),
            "{bad:?}"
        );
    }

    let request = common::token_request(Role::Auditor, Some(3600), "quarterly audit");
    let auditor = kms.create_token(request).await.unwrap();
    assert!(kms.authenticate(&text(&auditor.token)).await.is_ok());
    clock.0.fetch_add(3600, Ordering::SeqCst);
    assert!(
        matches!(
            kms.authenticate(&text(&auditor.token)).await,
            Err(KmsError::Unauthenticated)
        ),
        "expired"
    );

    // The last live officer token stays, whatever other tokens there are:
    // an officer token that has expired does not count.
    let brief = kms
        .create_token(common::token_request(
            Role::Officer,
            Some(60),
            "brief officer",
        ))
        .await
        .unwrap();
    clock.0.fetch_add(60, Ordering::SeqCst);
    assert!(matches!(
        kms.revoke_token(&first.info.id).await,
        Err(KmsError::LastOfficerToken)
    ));
    let second = kms
        .create_token(common::token_request(
            Role::Officer,
            Some(3600),
            "named officer",
        ))
        .await
        .unwrap();
    kms.revoke_token(&first.info.id).await.unwrap();
    assert!(
        matches!(
            kms.authenticate(&officer).await,
            Err(KmsError::Unauthenticated)
        ),
        "revoked"
    );
    for (gone, why) in [
        (first.info.id.as_str(), "already revoked"),
        ("0123456789abcdef", "unknown"),
    ] {
        assert!(
            matches!(
                kms.revoke_token(gone).await,
                Err(KmsError::TokenNotFound(_))
            ),
            "{why}"
        );
    }
    assert!(matches!(
        kms.revoke_token(&second.info.id).await,
        Err(KmsError::LastOfficerToken)
    ));
    // Once it has expired it is no longer the way in, and may be revoked.
    clock.0.fetch_add(3600, Ordering::SeqCst);
    kms.revoke_token(&second.info.id).await.unwrap();
    let listed = kms.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().any(|t| t.info.id == brief.info.id));
    let revoked = listed.iter().find(|t| t.info.id == first.info.id).unwrap();
    assert!(revoked.info.revoked_at.is_some() && !revoked.altered);

    // Two officers revoking each other's tokens at once, on two nodes (the
    // store's own connections each): one token stays.
    let other_node = Kms::open_with_clock(
        b.reopen().await,
        &b.key_file(),
        KmsConfig::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    let officer = || common::token_request(Role::Officer, None, "named officer");
    let mut kept = kms.create_token(officer()).await.unwrap().info.id;
    for _ in 0..10 {
        let other = kms.create_token(officer()).await.unwrap().info.id;
        let (a, b) = tokio::join!(kms.revoke_token(&kept), other_node.revoke_token(&other));
        kept = match (&a, &b) {
            (Ok(_), Err(KmsError::LastOfficerToken)) => other,
            (Err(KmsError::LastOfficerToken), Ok(_)) => kept,
            _ => panic!("{a:?} {b:?}"),
        };
        let live: Vec<_> = (kms.list_tokens().await.unwrap().into_iter())
            .map(|t| t.info)
            .filter(|t| t.role == Role::Officer && t.is_live(clock.0.load(Ordering::SeqCst)))
            .map(|t| t.id)
            .collect();
        assert_eq!(live, [kept.clone()]);
    }
    // Revoking a user's token takes the same turn, and is not refused.
    let user = kms
        .create_token(common::token_request(Role::User, None, "service"))
        .await
        .unwrap();
    kms.revoke_token(&user.info.id).await.unwrap();
}

async fn grants_decide_what_users_may_do(b: Backend) {
    let kms = b.kms(KmsConfig::default()).await;
    let grants = vec![
        Grant {
            keys: "payments".into(),
            operations: vec![Operation::Encrypt, Operation::Decrypt],
        },
        Grant {
            keys: "sign-*".into(),
            operations: vec![Operation::Sign],
        },
    ];
    let request = CreateToken {
        role: Role::User,
        grants,
        ttl_secs: None,
        description: "checkout service".into(),
    };
    let user = kms.create_token(request).await.unwrap();
    let principal = kms.authenticate(&text(&user.token)).await.unwrap();
    assert!(principal.may(Operation::Encrypt, "payments"));
    assert!(!principal.may(Operation::Rewrap, "payments"));
    assert!(!principal.may(Operation::Encrypt, "payments-archive"));
    assert!(principal.may(Operation::Sign, "sign-releases"));
    assert!(!principal.may(Operation::Verify, "sign-releases"));

    let bad = CreateToken {
        role: Role::Officer,
        grants: vec![Grant {
            keys: "*".into(),
            operations: vec![Operation::Encrypt],
        }],
        ttl_secs: None,
        description: String::new(),
    };
    assert!(
        matches!(
            kms.create_token(bad).await,
            Err(KmsError::InvalidRequest(_))
        ),
        "officers take no grants"
    );
    let too_long = common::token_request(Role::Auditor, Some(10), "");
    assert!(kms.create_token(too_long).await.is_err());
    // At most MAX_GRANTS grants: each request is checked against them all.
    let many = |n| CreateToken {
        role: Role::User,
        grants: (0..n)
            .map(|i| Grant {
                keys: format!("key-{i}"),
                operations: vec![Operation::Encrypt],
            })
            .collect(),
        ttl_secs: None,
        description: String::new(),
    };
    assert!(kms.create_token(many(MAX_GRANTS)).await.is_ok());
    let refused = kms.create_token(many(MAX_GRANTS + 1)).await.unwrap_err();
    assert!(
        matches!(&refused, KmsError::InvalidRequest(m) if m.contains("at most 100 grants")),
        "{refused}"
    );
    // Each operation once in a grant: its list is scanned on every request.
    let repeated = CreateToken {
        role: Role::User,
        grants: vec![Grant {
            keys: "key".into(),
            operations: vec![Operation::Encrypt, Operation::Decrypt, Operation::Encrypt],
        }],
        ttl_secs: None,
        description: String::new(),
    };
    let refused = kms.create_token(repeated).await.unwrap_err();
    assert!(
        matches!(&refused, KmsError::InvalidRequest(m) if m.contains("each operation at most once")),
        "{refused}"
    );
}

async fn a_lifetime_policy_bounds_every_token_but_the_first(b: Backend) {
    let now = 1_900_000_000;
    let policy = |max| KmsConfig {
        max_token_ttl_secs: Some(max),
        ..KmsConfig::default()
    };
    let clock = Arc::new(common::ManualClock(AtomicI64::new(now)));
    let kms = Kms::open_with_clock(b.store.clone(), &b.key_file(), policy(3600), clock)
        .await
        .unwrap();
    let first = kms.create_first_officer_token().await.unwrap();
    assert_eq!(
        first.info.expires_at, None,
        "the first officer token is exempt"
    );
    let auditor = |ttl_secs| CreateToken {
        role: Role::Auditor,
        grants: vec![],
        ttl_secs,
        description: String::new(),
    };
    for (asked, expires_at) in [
        (None, now + 3600),
        (Some(600), now + 600),
        (Some(3600), now + 3600),
    ] {
        let created = kms.create_token(auditor(asked)).await.unwrap();
        assert_eq!(
            created.info.expires_at,
            Some(expires_at),
            "asked for {asked:?}"
        );
    }
    let refused = kms.create_token(auditor(Some(3601))).await.unwrap_err();
    assert!(
        matches!(&refused, KmsError::InvalidRequest(m) if m.contains("max_token_ttl_secs")),
        "{refused}"
    );
    assert_eq!(kms.list_tokens().await.unwrap().len(), 4, "nothing stored");

    for max in [59, 366 * 86_400 + 1] {
        let opened = Kms::open(b.store.clone(), &b.key_file(), policy(max)).await;
        assert!(matches!(opened, Err(KmsError::InvalidRequest(_))), "{max}");
    }
}

/// Lookups of token ids this node has never seen take a few store reads
/// at a time, a quarter of the store's connections; while those are
/// slow, the rest are refused after the short wait for a turn, never read
/// (the limit holds under a flood of guesses), and the other connections
/// serve everything else: a key no one has used on this node yet
/// encrypts while the guesses wait.
/// On PostgreSQL only, where another connection can keep the readers of a
/// table out (SQLite in WAL mode lets none do that); the rule is the
/// core's, whatever the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_tokens_reads_the_store_a_few_at_a_time() {
    let Some(g) = Guessed::set_up().await else {
        return;
    };
    let lock = TableLock::take(&g.url, "tokens").await;
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let kms = g.kms.clone();
            tokio::spawn(async move { kms.authenticate(&guess()).await.unwrap_err().code() })
        })
        .collect();
    g.wait_for_readers(g.reads).await;
    g.encrypts_while_the_guesses_wait().await;
    // Held until every guess without a turn has been refused.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while flood.iter().filter(|check| check.is_finished()).count() < 40 - g.reads {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    refused.await.expect("the guesses without a turn answered");
    lock.release().await;
    let mut codes = Vec::new();
    for check in flood {
        codes.push(check.await.unwrap());
    }
    let count = |code| codes.iter().filter(|c| **c == code).count();
    assert_eq!(
        count("unauthenticated"),
        g.reads,
        "one read per turn: {codes:?}"
    );
    assert_eq!(count("token_lookups_busy"), 40 - g.reads, "{codes:?}");
    g.every_guess_is_read_again().await;
}

/// Guesses whose clients hang up at once (each request dropped while it
/// waits) do not free their turns while their reads still wait on their
/// connections: however many come, the store's other connections stay
/// free for keys, and the turns come back once the reads end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_that_hang_up_keep_their_turns_until_their_reads_end() {
    let Some(g) = Guessed::set_up().await else {
        return;
    };
    let lock = TableLock::take(&g.url, "tokens").await;
    for _ in 0..10 {
        let hung_up = (0..8).map(|_| {
            let kms = g.kms.clone();
            // Dropped well within the wait for a turn (REFRESH_WAIT,
            // 200 ms), so that those without one hang up too.
            let hang_up = Duration::from_millis(50);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(hang_up, kms.authenticate(&guess())).await;
            })
        });
        for request in hung_up.collect::<Vec<_>>() {
            request.await.unwrap();
        }
    }
    g.wait_for_readers(g.reads).await;
    g.encrypts_while_the_guesses_wait().await;
    assert_eq!(g.readers().await, g.reads, "one read per turn");
    lock.release().await;
    g.every_guess_is_read_again().await;
}

/// A PostgreSQL store with the key `untouched`, made by another node, so
/// that this one's core has never read it; a core on it; a connection
/// that watches who waits for the tokens table; and how many reads a
/// quarter of the pool gives guesses.
struct Guessed {
    /// Kept for its files (the root key).
    _backend: Backend,
    url: String,
    kms: Arc<Kms>,
    watcher: tokio_postgres::Client,
    reads: usize,
}

impl Guessed {
    async fn set_up() -> Option<Self> {
        let b = common::postgres().await?;
        let url = b.postgres_url().unwrap().to_owned();
        b.kms(KmsConfig::default())
            .await
            .create_key(CreateKey::new("untouched", KeyType::Aes256Gcm))
            .await
            .unwrap();
        let (watcher, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        Some(Self {
            kms: Arc::new(b.kms(KmsConfig::default()).await),
            reads: b.store.concurrency().expect("a pool") / 4,
            url,
            watcher,
            _backend: b,
        })
    }

    /// How many connections wait to read the tokens table.
    async fn readers(&self) -> usize {
        let waiting =
            "SELECT count(*) FROM pg_locks WHERE relation = 'tokens'::regclass AND NOT granted";
        let row = self.watcher.query_one(waiting, &[]).await.unwrap();
        row.get::<_, i64>(0) as usize
    }

    /// Waits until at least `readers` connections wait to read the tokens
    /// table.
    async fn wait_for_readers(&self, readers: usize) {
        for _ in 0..1000 {
            if self.readers().await >= readers {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("fewer than {readers} readers wait for the tokens table");
    }

    /// `untouched` encrypts, which takes a connection of the store's own.
    async fn encrypts_while_the_guesses_wait(&self) {
        let context = EncryptionContext::empty();
        let untouched = self
            .kms
            .encrypt("untouched", b"while guesses wait", &context);
        tokio::time::timeout(Duration::from_secs(5), untouched)
            .await
            .expect("the encrypt waited behind the guesses")
            .unwrap();
    }

    /// Once the store answers again, every guess is read (one after
    /// another, so none waits for a turn): no turn was lost.
    async fn every_guess_is_read_again(&self) {
        for _ in 0..8 {
            let refused = self.kms.authenticate(&guess()).await.unwrap_err();
            assert_eq!(refused.code(), "unauthenticated");
        }
    }
}

/// A token as a guess would have it: a random id, a well-formed secret.
fn guess() -> String {
    let id = common::hex(&fipsguard_crypto::random::bytes(8).unwrap());
    format!("fgt.{id}.{}", "A".repeat(43))
}
