//! Token management and authentication.

use std::sync::Arc;

use fipsguard_crypto::random;

use super::lifecycle::joined;
use super::Kms;
use crate::auth::{
    Grant, KnownToken, ListedToken, NewToken, Principal, Role, TokenHasher, TokenInfo, TOKEN_PREFIX,
};
use crate::cache::{within_refresh_wait, Lookup};
use crate::error::{KmsError, Result};
use crate::name::KeyName;
use crate::root::{TOKEN_KEY, TOKEN_KEY_SETTING};
use crate::store::{Revocation, StoreError};

/// Shortest and longest token lifetimes, in seconds.
pub const TOKEN_TTL_SECS: std::ops::RangeInclusive<i64> = 60..=366 * 86_400;

/// What `create_token` needs.
#[derive(Debug, Clone)]
pub struct CreateToken {
    /// The role.
    pub role: Role,
    /// Grants (users only; officers and auditors take none).
    pub grants: Vec<Grant>,
    /// Lifetime in seconds; `None` takes the service's longest
    /// ([`KmsConfig::max_token_ttl_secs`](super::KmsConfig)), or never
    /// expires where it sets none.
    pub ttl_secs: Option<i64>,
    /// What the token is for (shown in listings and audit).
    pub description: String,
}

/// Most grants one token carries.
pub const MAX_GRANTS: usize = 100;

impl Kms {
    /// Loads (creating on first use) the key that hashes token secrets.
    pub(super) async fn token_hasher(
        store: &dyn crate::store::Store,
        root: &crate::root::RootKek,
    ) -> Result<TokenHasher> {
        let wrapped = store
            .init_setting(
                TOKEN_KEY_SETTING,
                &root.wrap(TOKEN_KEY, &random::secret(32)?)?,
            )
            .await?;
        TokenHasher::new(&root.unwrap(TOKEN_KEY, &wrapped)?)
    }

    /// Creates a token; its text is returned once and never stored. Its
    /// lifetime is held to the service's longest, which a token asked for
    /// without one gets.
    pub async fn create_token(&self, request: CreateToken) -> Result<NewToken> {
        let ttl_secs = match (request.ttl_secs, self.config.max_token_ttl_secs) {
            (Some(ttl), Some(max)) if ttl > max => {
                return Err(KmsError::InvalidRequest(format!(
                    "this service's token policy allows lifetimes of at most {max} seconds \
                     (max_token_ttl_secs)"
                )))
            }
            (None, max) => max,
            (ttl, _) => ttl,
        };
        self.issue_token(CreateToken {
            ttl_secs,
            ..request
        })
        .await
    }

    /// Creates a token as asked, under no lifetime policy.
    async fn issue_token(&self, request: CreateToken) -> Result<NewToken> {
        if request.role != Role::User && !request.grants.is_empty() {
            return Err(KmsError::InvalidRequest(
                "only user tokens carry grants".into(),
            ));
        }
        // Every request the token makes is checked against all of them.
        if request.grants.len() > MAX_GRANTS {
            return Err(KmsError::InvalidRequest(format!(
                "a token carries at most {MAX_GRANTS} grants (a key-name prefix ending in * covers many keys)"
            )));
        }
        // A pattern is held to a key name's rules (a prefix too): it is
        // stored, listed and recorded, so it must not carry a pasted token.
        let names_keys = |keys: &str| match keys.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => KeyName::is_valid_prefix(prefix),
            None => KeyName::is_valid(keys),
        };
        if request
            .grants
            .iter()
            .any(|g| g.operations.is_empty() || !names_keys(&g.keys))
        {
            return Err(KmsError::InvalidRequest(
                "a grant names a key, a key-name prefix ending in *, or *, and at least one operation"
                    .into(),
            ));
        }
        // Each operation once: a list is scanned on every request.
        let repeats = |g: &Grant| {
            g.operations
                .iter()
                .enumerate()
                .any(|(i, op)| g.operations[..i].contains(op))
        };
        if request.grants.iter().any(repeats) {
            return Err(KmsError::InvalidRequest(
                "a grant names each operation at most once".into(),
            ));
        }
        if request
            .ttl_secs
            .is_some_and(|ttl| !TOKEN_TTL_SECS.contains(&ttl))
        {
            return Err(KmsError::InvalidRequest(
                "token lifetimes are 60 seconds to 366 days".into(),
            ));
        }
        if request.description.len() > 200 {
            return Err(KmsError::InvalidRequest(
                "token descriptions are at most 200 bytes".into(),
            ));
        }
        // Every officer lists descriptions: a pasted token would be shown
        // to all of them, and control characters would drive their terminals.
        if crate::auth::holds_token(&request.description)
            || request.description.chars().any(char::is_control)
        {
            return Err(KmsError::InvalidRequest(
                "a token description holds no token and no control characters".into(),
            ));
        }
        let now = self.now();
        let (token, record) = self.tokens.issue(|id| TokenInfo {
            id,
            role: request.role,
            grants: request.grants,
            description: request.description,
            created_at: now,
            expires_at: request.ttl_secs.map(|ttl| now + ttl),
            revoked_at: None,
        })?;
        self.store.create_token(&record).await?;
        self.unknown_tokens.forget(&record.info.id);
        Ok(NewToken {
            token,
            info: record.info,
        })
    }

    /// Creates the first officer token of a new store; refused once any
    /// token exists.
    pub async fn create_first_officer_token(&self) -> Result<NewToken> {
        if !self.store.list_tokens().await?.is_empty() {
            return Err(KmsError::InvalidRequest(
                "this store already has tokens; an officer creates more".into(),
            ));
        }
        let request = CreateToken {
            role: Role::Officer,
            grants: vec![],
            ttl_secs: None,
            description: "first officer (fipsguard init)".into(),
        };
        // Exempt from the lifetime policy: a key ceremony revokes it once
        // named officers exist, and until then it is the only way in.
        self.issue_token(request).await
    }

    /// Every token's description, and whether its row was altered outside
    /// the service.
    pub async fn list_tokens(&self) -> Result<Vec<ListedToken>> {
        Ok(self
            .store
            .list_tokens()
            .await?
            .into_iter()
            .map(|t| ListedToken {
                altered: t.is_altered(),
                info: t.info,
            })
            .collect())
    }

    /// Revokes a token; it stops working at once on this node and within
    /// the metadata TTL on others. The only officer token live at the time
    /// is kept: without one no key or token could be managed again, as
    /// `init` refuses a store that has tokens.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        if !crate::auth::is_token_id(id) {
            // Not repeated: it may be a whole token, pasted by mistake.
            return Err(KmsError::InvalidRequest(
                format!("a token id is the 16 hex characters after \"{TOKEN_PREFIX}\" (not the whole token)"),
            ));
        }
        match self.store.revoke_token(id, self.now()).await? {
            Revocation::Revoked => {}
            Revocation::NotFound => return Err(KmsError::TokenNotFound(id.to_owned())),
            Revocation::LastOfficer => return Err(KmsError::LastOfficerToken),
        }
        self.token_records.forget(id);
        let record = self
            .store
            .token(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("token {id} vanished")))?;
        Ok(record.info)
    }

    /// Who presents `token`: an unexpired, unrevoked token whose secret
    /// matches. Every failure is the same `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let (id, secret) = TokenHasher::split(token).ok_or(KmsError::Unauthenticated)?;
        let known = self
            .token_record(id)
            .await?
            .ok_or(KmsError::Unauthenticated)?;
        let live = known.record.info.is_live(self.now());
        if !(self.tokens.matches(secret, &known)? && live) {
            return Err(KmsError::Unauthenticated);
        }
        Ok(Principal::new(known.record.clone()))
    }

    /// A token record, from memory while fresh (no store read per request).
    /// Unknown ids are remembered too, so callers guessing ids cost one
    /// store read per id and TTL, not one per request.
    async fn token_record(&self, id: &str) -> Result<Option<Arc<KnownToken>>> {
        let known = match self.token_records.get(id) {
            Lookup::Fresh(record) => return Ok(Some(record)),
            Lookup::Stale(_) => true,
            Lookup::Absent if self.unknown_tokens.fresh(id).is_some() => return Ok(None),
            Lookup::Absent => false,
        };
        // Real tokens seen before wait for each other's reads; ids never
        // seen (most of them guesses) take a few reads at a time apart, and
        // so never queue in front of a known token. One that gets no turn
        // in time is refused, not read: a real token new to this node may
        // be among them, and is told to try again.
        let (_refresh, turn) = match known {
            true => (self.token_refreshes.lock(id).await, None),
            false => {
                let turns = self.unknown_token_reads.clone();
                match within_refresh_wait(turns.acquire_owned()).await {
                    Some(Ok(turn)) => (None, Some(turn)),
                    _ => return Err(KmsError::TokenLookupsBusy),
                }
            }
        };
        // Another request may have read it meanwhile.
        if let Some(record) = self.token_records.fresh(id) {
            return Ok(Some(record));
        }
        if !known && self.unknown_tokens.fresh(id).is_some() {
            return Ok(None);
        }
        let tickets = (self.token_records.ticket(), self.unknown_tokens.ticket());
        let record = match turn {
            None => self.store.token(id).await?,
            // Read on a task that keeps the turn until the store answers:
            // a guess whose client goes away would otherwise free its turn
            // while its read still holds a connection, and guesses that
            // hang up at once could take every one.
            Some(turn) => {
                let (store, id) = (self.store.clone(), id.to_owned());
                let read = tokio::spawn(async move {
                    let _turn = turn;
                    Ok(store.token(&id).await?)
                });
                joined(read.await)?
            }
        }
        .map(|record| Arc::new(KnownToken::new(record)));
        match &record {
            Some(record) => self
                .token_records
                .put(tickets.0, id.to_owned(), record.clone()),
            None => {
                self.token_records.evict(id); // gone from the store (a restore)
                self.unknown_tokens.put(tickets.1, id.to_owned(), ());
            }
        }
        Ok(record)
    }
}
