//! Who may do what: roles (FIPS 140-3 requires a Crypto Officer and a User
//! role), per-key grants for users, and bearer tokens.
//!
//! A token is `fgt.<id>.<secret>`: the id is public (it names the token in
//! listings and audit records), the secret is 256 random bits. Only an
//! HMAC-SHA-256 under the token key of the secret with everything the token
//! is (id, role, grants, description, creation, expiry) is stored, so a row
//! changed in the database authenticates no one; the token key is random,
//! kept wrapped under the root KEK, and the stored hash is compared in
//! constant time. A token is shown once, when it is created.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::secret::constant_time_eq;
use fipsguard_crypto::{random, SecretBytes};
use fipsguard_crypto::{Error as CryptoError, Refusal};
use zeroize::Zeroize;

use crate::error::{KmsError, Result};

/// The roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Crypto Officer: manages keys, tokens and grants; reads audit and status.
    Officer,
    /// User: cryptographic operations on the keys and operations granted.
    User,
    /// Auditor: reads audit, status, metrics and key metadata; no key use.
    Auditor,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::User => "user",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = KmsError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "officer" => Ok(Self::Officer),
            "user" => Ok(Self::User),
            "auditor" => Ok(Self::Auditor),
            // What was sent is not repeated: it may be a pasted token.
            _ => Err(KmsError::InvalidRequest(
                "unknown role; roles are officer, user, auditor".into(),
            )),
        }
    }
}

/// Operations a user can be granted on keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
    /// Re-encrypt under the newest version.
    Rewrap,
    /// Generate data keys.
    Datakey,
    /// Sign.
    Sign,
    /// Verify signatures (and read public keys).
    Verify,
    /// Generate MACs.
    Mac,
    /// Verify MACs.
    MacVerify,
    /// Read the key's metadata.
    Read,
}

impl Operation {
    /// The name used in grants and messages, e.g. `mac-verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::Rewrap => "rewrap",
            Self::Datakey => "datakey",
            Self::Sign => "sign",
            Self::Verify => "verify",
            Self::Mac => "mac",
            Self::MacVerify => "mac-verify",
            Self::Read => "read",
        }
    }
}

/// Operations on keys whose names match: `*` (any key), `prefix*`, or an
/// exact name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Key name, `prefix*` or `*`.
    pub keys: String,
    /// The operations allowed.
    pub operations: Vec<Operation>,
}

impl Grant {
    fn matches(&self, key: &str, operation: Operation) -> bool {
        let key_matches = match self.keys.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => self.keys == key,
        };
        key_matches && self.operations.contains(&operation)
    }
}

/// Who is calling: the record of the token presented (its id, role and
/// grants; never the token), shared with the token cache, so that
/// authenticating copies nothing.
#[derive(Clone)]
pub struct Principal(Arc<TokenRecord>);

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Principal({}, {})",
            self.token_id(),
            self.role().as_str()
        )
    }
}

impl Principal {
    /// The holder of the token `record` describes (once its secret matched).
    pub(crate) fn new(record: Arc<TokenRecord>) -> Self {
        Self(record)
    }

    /// The token id.
    pub fn token_id(&self) -> &str {
        &self.0.info.id
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.0.info.role
    }

    /// The token's description: role, grants, lifetime.
    pub fn info(&self) -> &TokenInfo {
        &self.0.info
    }

    /// Whether this principal may perform `operation` on `key`: users by
    /// grant; officers and auditors may read metadata; nobody else uses keys.
    pub fn may(&self, operation: Operation, key: &str) -> bool {
        let info = &self.0.info;
        match info.role {
            Role::User => info.grants.iter().any(|g| g.matches(key, operation)),
            Role::Officer | Role::Auditor => operation == Operation::Read,
        }
    }
}

/// A token as stored: its description and its hash, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// What the token is.
    pub info: TokenInfo,
    /// The bound hash of the secret and `info` (see `TokenHasher::bind`);
    /// empty once revoked.
    pub hash: Vec<u8>,
}

/// A token record as a node keeps it in memory: shared, so never changed,
/// with the tag of the secret it was found to match in full, against which
/// later requests are checked alone (one HMAC, not two: the bound hash
/// covers every field).
pub(crate) struct KnownToken {
    pub record: Arc<TokenRecord>,
    matched: OnceLock<[u8; TAG_LEN]>,
}

impl KnownToken {
    pub fn new(record: TokenRecord) -> Self {
        Self {
            record: Arc::new(record),
            matched: OnceLock::new(),
        }
    }
}

impl Drop for KnownToken {
    // The matched tag stands in for the secret: a cache's evicted entry
    // leaves nothing of it behind.
    fn drop(&mut self) {
        if let Some(matched) = self.matched.get_mut() {
            matched.zeroize();
        }
    }
}

impl TokenRecord {
    /// Whether the record is one no node of this release writes: not
    /// revoked, yet without a bound hash (a revocation lifted in the
    /// database, a hash put back from an earlier release's row, or a node
    /// of an earlier release still running). It authenticates no one.
    pub fn is_altered(&self) -> bool {
        self.info.revoked_at.is_none() && bound_tag(&self.hash).is_none()
    }
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenRecord({:?}, hash [redacted])", self.info)
    }
}

/// A token's public description (what listings show).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Grants.
    pub grants: Vec<Grant>,
    /// What it is for.
    pub description: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
}

impl TokenInfo {
    /// Whether the token works at `now` (Unix seconds): neither revoked
    /// nor expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A token as an officer lists it: its description, and whether its stored
/// row is one the service did not write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedToken {
    /// What the row says the token is.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The row was changed outside the service (see
    /// [`TokenRecord::is_altered`]: a revocation lifted, an earlier
    /// release's hash put back): the token authenticates no one, whatever
    /// the row says. Shown only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub altered: bool,
}

/// A new token: the secret text, shown once, and its description.
pub struct NewToken {
    /// `fgt.<id>.<secret>`: give it to its holder; it is not stored.
    pub token: SecretBytes,
    /// What the token is.
    pub info: TokenInfo,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewToken({:?}, [redacted])", self.info)
    }
}

/// What every token starts with: `fgt.<id>.<secret>`.
pub const TOKEN_PREFIX: &str = "fgt.";
/// A token id's length: 8 random bytes in hex.
const ID_LEN: usize = 16;
/// A token secret's length: 32 random bytes in unpadded base64url.
const SECRET_LEN: usize = 43;

/// The key that hashes token secrets.
pub(crate) struct TokenHasher(MacKey);

/// A stored hash that binds what the token authorizes starts with this
/// byte; an earlier release stored the bare tag of the secret.
const BOUND_HASH: u8 = 1;

/// An HMAC-SHA-256 tag's length.
const TAG_LEN: usize = 32;

impl TokenHasher {
    pub fn new(key: &SecretBytes) -> Result<Self> {
        Ok(Self(MacKey::new(
            MacAlgorithm::HmacSha256,
            key.expose_secret(),
        )?))
    }

    /// Makes a new token: its text, and the record to store, which
    /// `describe` fills in given the token's id.
    pub fn issue(
        &self,
        describe: impl FnOnce(String) -> TokenInfo,
    ) -> Result<(SecretBytes, TokenRecord)> {
        let id = crate::hex(&random::bytes(8)?);
        let secret = random::secret(32)?;
        let encoded = SecretBytes::new(URL_SAFE_NO_PAD.encode(secret.expose_secret()).into_bytes());
        let mut token = Vec::with_capacity(TOKEN_PREFIX.len() + id.len() + 1 + encoded.len());
        token.extend_from_slice(format!("{TOKEN_PREFIX}{id}.").as_bytes());
        token.extend_from_slice(encoded.expose_secret());
        let token = SecretBytes::new(token);
        let info = describe(id);
        let secret_tag = SecretBytes::new(self.0.sign(encoded.expose_secret())?);
        let hash = self.bind(secret_tag.expose_secret(), &info)?;
        Ok((token, TokenRecord { info, hash }))
    }

    /// The hash to store for a token whose secret's tag is `secret_tag`:
    /// the tag of everything the token is and may do (but its revocation)
    /// with that tag, so that whoever can write to the database, without
    /// the token key, cannot widen a token's role, grants or lifetime, or
    /// give its secret another id.
    fn bind(&self, secret_tag: &[u8], info: &TokenInfo) -> Result<Vec<u8>> {
        let tag = self
            .0
            .sign(bound_fields(info, secret_tag).expose_secret())?;
        let mut hash = Vec::with_capacity(1 + TAG_LEN);
        hash.push(BOUND_HASH);
        hash.extend_from_slice(&tag);
        Ok(hash)
    }

    /// What `rekey` stores for `record`, if anything. In a store an earlier
    /// release wrote (`earlier_release`), a hash of the secret alone
    /// becomes the bound hash (cleared for a token revoked, which such a
    /// release left as it was), and a bound hash cannot be there. In a
    /// store whose values are bound, a hash of the secret alone was put
    /// there by someone else.
    /// `Err` says why not, to follow the token's id.
    pub fn rebind(
        &self,
        record: &TokenRecord,
        earlier_release: bool,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let refused = |why: &str| Err(why.to_owned());
        match (record.hash.len(), earlier_release) {
            (0, _) => Ok(None),
            (TAG_LEN, true) if record.info.revoked_at.is_some() => Ok(Some(Vec::new())),
            (TAG_LEN, true) => match self.bind(&record.hash, &record.info) {
                Ok(hash) => Ok(Some(hash)),
                Err(e) => Err(format!("cannot be bound: {e}")),
            },
            (TAG_LEN, false) => refused(
                "has a hash of its secret alone in a store whose values are bound: the store was changed outside fipsguard, \
                 or a node of an earlier release still runs (stop it, then revoke the token)",
            ),
            (_, true) => refused(
                "has a bound hash in a store an earlier release wrote, so the store was changed outside fipsguard",
            ),
            (_, false) => Ok(None),
        }
    }

    /// Splits a presented token into its id and secret; `None` if it is not
    /// shaped like one.
    pub fn split(presented: &str) -> Option<(&str, &str)> {
        let rest = presented.strip_prefix(TOKEN_PREFIX)?;
        let (id, secret) = rest.split_once('.')?;
        let well_formed = is_token_id(id) && secret.len() == SECRET_LEN;
        well_formed.then_some((id, secret))
    }

    /// Whether `secret` is the secret of `known`'s record, compared in
    /// constant time.
    pub fn matches(&self, secret: &str, known: &KnownToken) -> Result<bool> {
        // First, so that a token with no hash to check takes as long.
        let secret_tag = SecretBytes::new(self.0.sign(secret.as_bytes())?);
        let secret_tag = secret_tag.expose_secret();
        // A damaged row, an earlier release's hash or a revoked token's
        // cleared one matches no token.
        let Some(tag) = bound_tag(&known.record.hash) else {
            return Ok(false);
        };
        // Another secret has another tag, which no bound hash made with
        // this one's covers.
        if let Some(matched) = known.matched.get() {
            return Ok(constant_time_eq(matched, secret_tag));
        }
        match self.0.verify(
            bound_fields(&known.record.info, secret_tag).expose_secret(),
            tag,
        ) {
            Ok(()) => {
                if let Ok(matched) = <[u8; TAG_LEN]>::try_from(secret_tag) {
                    let _ = known.matched.set(matched);
                }
                Ok(true)
            }
            Err(
                CryptoError::VerificationFailed | CryptoError::NotApproved(Refusal::TruncatedTag),
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The tag in a stored hash of the bound form, if it is one.
fn bound_tag(hash: &[u8]) -> Option<&[u8]> {
    match hash.split_first() {
        Some((&BOUND_HASH, tag)) if tag.len() == TAG_LEN => Some(tag),
        _ => None,
    }
}

/// What a bound hash is the tag of: each field preceded by its length, so
/// that no two tokens encode alike, the secret's tag last (which, a
/// stand-in for the secret, is wiped with them).
fn bound_fields(info: &TokenInfo, secret_tag: &[u8]) -> SecretBytes {
    let mut fields = Vec::with_capacity(256);
    let mut field = |bytes: &[u8]| {
        fields.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        fields.extend_from_slice(bytes);
    };
    field(b"fipsguard token hash v1");
    field(info.id.as_bytes());
    field(info.role.as_str().as_bytes());
    field(&(info.grants.len() as u64).to_be_bytes());
    for grant in &info.grants {
        field(grant.keys.as_bytes());
        field(&(grant.operations.len() as u64).to_be_bytes());
        for operation in &grant.operations {
            field(operation.as_str().as_bytes());
        }
    }
    field(info.description.as_bytes());
    field(&info.created_at.to_be_bytes());
    match info.expires_at {
        Some(at) => field(&at.to_be_bytes()),
        None => field(&[]),
    }
    field(secret_tag);
    SecretBytes::new(fields)
}

/// Whether `text` holds a token, with or without its `fgt.`, anywhere in
/// it, whatever stands before or after (a sentence's full stop, a prefix):
/// text written where a name or description belongs that must never be
/// stored, listed or repeated.
pub fn holds_token(text: &str) -> bool {
    text.as_bytes()
        .windows(ID_LEN + 1 + SECRET_LEN)
        .any(|window| {
            let (id, rest) = window.split_at(ID_LEN);
            id.iter().copied().all(is_lower_hex)
                && rest[0] == b'.'
                && rest[1..]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        })
}

/// Whether `text` is shaped like a token id (the public part of a token,
/// between `fgt.` and the secret).
pub fn is_token_id(text: &str) -> bool {
    text.len() == ID_LEN && text.bytes().all(is_lower_hex)
}

/// Ids are issued in lower-case hex; accepting upper case too would give
/// one token two names (and two cache entries).
fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> TokenHasher {
        TokenHasher::new(&SecretBytes::new(vec![0x42; 32])).unwrap()
    }

    fn user_token(tokens: &TokenHasher) -> (String, TokenRecord) {
        let (token, record) = tokens
            .issue(|id| TokenInfo {
                id,
                role: Role::User,
                grants: vec![Grant {
                    keys: "app-*".into(),
                    operations: vec![Operation::Encrypt, Operation::Decrypt],
                }],
                description: "app".into(),
                created_at: 1_000,
                expires_at: Some(2_000),
                revoked_at: None,
            })
            .unwrap();
        let token = std::str::from_utf8(token.expose_secret()).unwrap();
        let (_, secret) = TokenHasher::split(token).unwrap();
        (secret.to_owned(), record)
    }

    #[test]
    fn a_secret_matches_only_its_own_whole_stored_hash() {
        let tokens = hasher();
        let (secret, record) = user_token(&tokens);
        assert!(tokens
            .matches(&secret, &KnownToken::new(record.clone()))
            .unwrap());
        let (other, _) = user_token(&tokens);
        assert!(!tokens
            .matches(&other, &KnownToken::new(record.clone()))
            .unwrap());
        // A damaged row, shorter or longer than the hash, matches nothing
        // and is no error a caller could tell apart from a wrong secret.
        let mut longer = record.hash.clone();
        longer.push(0);
        for damaged in [&[][..], &record.hash[..1], &record.hash[..32], &longer[..]] {
            let damaged = TokenRecord {
                hash: damaged.to_vec(),
                ..record.clone()
            };
            let matched = tokens
                .matches(&secret, &KnownToken::new(damaged.clone()))
                .unwrap();
            assert!(!matched, "{}", damaged.hash.len());
        }
    }

    #[test]
    fn a_record_found_to_match_checks_the_next_secret_alone() {
        let tokens = hasher();
        let (secret, record) = user_token(&tokens);
        let (other, _) = user_token(&tokens);
        let known = KnownToken::new(record);
        assert!(known.matched.get().is_none());
        assert!(tokens.matches(&secret, &known).unwrap());
        assert!(known.matched.get().is_some());
        assert!(tokens.matches(&secret, &known).unwrap());
        assert!(!tokens.matches(&other, &known).unwrap());
    }

    #[test]
    fn a_bound_hash_matches_no_other_authority() {
        let tokens = hasher();
        let (secret, record) = user_token(&tokens);
        type Change = fn(&mut TokenInfo);
        let changes: [(&str, Change); 8] = [
            ("id", |i| i.id = "0123456789abcdef".into()),
            ("role", |i| i.role = Role::Officer),
            ("grant keys", |i| i.grants[0].keys = "*".into()),
            ("operations", |i| {
                i.grants[0].operations.push(Operation::Sign)
            }),
            ("another grant", |i| i.grants.push(i.grants[0].clone())),
            ("description", |i| i.description = "ops".into()),
            ("created", |i| i.created_at += 1),
            ("expiry", |i| i.expires_at = None),
        ];
        for (what, change) in changes {
            let mut changed = record.clone();
            change(&mut changed.info);
            let matched = tokens.matches(&secret, &KnownToken::new(changed)).unwrap();
            assert!(!matched, "{what}");
        }
        // Revocation is not bound: revoking clears the hash.
        let mut revoked = record.clone();
        revoked.info.revoked_at = Some(1_500);
        assert!(tokens.matches(&secret, &KnownToken::new(revoked)).unwrap());
    }

    #[test]
    fn an_earlier_releases_hash_matches_only_once_rebound() {
        let tokens = hasher();
        let (secret, record) = user_token(&tokens);
        let older = TokenRecord {
            hash: tokens.0.sign(secret.as_bytes()).unwrap(),
            ..record.clone()
        };
        assert!(!tokens
            .matches(&secret, &KnownToken::new(older.clone()))
            .unwrap());
        let rebound = TokenRecord {
            hash: tokens.rebind(&older, true).unwrap().expect("rebound"),
            ..older.clone()
        };
        assert_eq!(rebound.hash, record.hash);
        assert!(tokens
            .matches(&secret, &KnownToken::new(rebound.clone()))
            .unwrap());
        // Only in a store an earlier release wrote, and only that form.
        assert!(tokens.rebind(&older, false).is_err());
        assert!(tokens.rebind(&rebound, true).is_err());
        assert_eq!(tokens.rebind(&rebound, false).unwrap(), None);
        // Such a release kept a revoked token's hash: it is cleared.
        let revoked = TokenRecord {
            info: TokenInfo {
                revoked_at: Some(1_500),
                ..older.info.clone()
            },
            ..older
        };
        assert_eq!(tokens.rebind(&revoked, true).unwrap(), Some(vec![]));
    }
}
