//! What the log records. Identifiers, names, codes and times only: never
//! plaintext, ciphertext, key material, tokens or passphrases.

use serde::{Deserialize, Serialize};

/// One record: its place in the chain, when, and what happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1, one more than the record before.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// An API request: before a change is made (`intent`), and with its outcome.
    Request(RequestEvent),
    /// A run of the module's self-tests.
    SelfTest {
        /// `power-up`, `periodic` or `on-demand`.
        trigger: String,
        /// Every test passed.
        passed: bool,
        /// How many tests ran.
        tests: usize,
        /// The first test that failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
    /// The server started with this configuration.
    Startup {
        /// fipsguard's version.
        version: String,
        /// The module runs in FIPS mode.
        fips_mode: bool,
        /// The validated module and its certificate.
        module: String,
        /// `sqlite` or `postgres`.
        store: String,
        /// The API's address.
        listen: String,
        /// SHA-256 of the configuration file, so a change between runs shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_sha256: Option<String>,
        /// SHA-256 (hex) of the server certificate served (until a
        /// `tls_reload` says otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
    },
    /// The server read its TLS files again (SIGHUP).
    TlsReload {
        /// The files passed their checks and their configuration is in
        /// force; otherwise the previous one stays.
        loaded: bool,
        /// SHA-256 (hex) of the server certificate served from now on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
        /// Why the files were refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// `fipsguard init` created the first officer token.
    Init {
        /// `sqlite` or `postgres`.
        store: String,
        /// The first officer token's id (never the token).
        token_id: String,
    },
    /// `fipsguard rekey` changed the store's root key: recorded with
    /// outcome `intent` before the change, and again with how it ended.
    RootKeyChange {
        /// `sqlite` or `postgres`.
        store: String,
        /// Where the new root key comes from: `key_file` or `passphrase`.
        source: String,
        /// The change binds the values of a store an earlier release
        /// wrote to their place (`rekey --bind-earlier-release`, once, on
        /// upgrading): written only when it does.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binds_earlier_release: bool,
        /// `intent`, `success` or `failure`.
        outcome: Outcome,
        /// How many key versions were wrapped again (on success).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        versions: Option<u64>,
        /// Why the change was not made (on failure).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A key's scheduled destruction: recorded with outcome `intent`
    /// before it is carried out (a log that cannot take it holds it), and
    /// again with how it ended.
    KeyDestruction {
        /// The key.
        key: String,
        /// When it was due (RFC 3339).
        due: String,
        /// `intent`, `success`, `rejected` (not carried out here: cancelled
        /// meanwhile, or done by another node) or `failure`.
        outcome: Outcome,
        /// Why it was not carried out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A key's rotation at its version's encryption limit, made by the
    /// service on its own: recorded with outcome `intent` before the new
    /// version is added (a log that cannot take it holds it), and again
    /// with how it ended.
    KeyRotation {
        /// The key.
        key: String,
        /// The version that reached (or neared) its encryption limit.
        version: u32,
        /// `intent`, `success`, `rejected` (not made here: rotated
        /// meanwhile by another request or node, or the key is no longer
        /// active) or `failure`.
        outcome: Outcome,
        /// The version added (on success).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_version: Option<u32>,
        /// Why it was not made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The server stopped in order.
    Shutdown {},
    /// The log could not be written for a while; requests were refused.
    Outage {
        /// Why.
        error: String,
        /// Since when (RFC 3339).
        since: String,
        /// Requests refused meanwhile.
        refused: u64,
    },
    /// Requests refused without an authenticated caller beyond the
    /// server's budget for recording them one by one (a flood of guessed
    /// tokens, say), counted instead: from `since` to the record's time.
    UnauthenticatedRefusals {
        /// When the first of them was refused (RFC 3339).
        since: String,
        /// How many were refused.
        count: u64,
        /// The addresses most of them came from, most first (at most 16).
        clients: Vec<ClientCount>,
        /// How many came from addresses not listed.
        others: u64,
    },
    /// The first record of every file.
    Segment {
        /// The checkpoint this file continues the chain from; none for a new chain.
        #[serde(default)]
        continues: Option<Link>,
        /// `startup`, `rotation` or what forced a new file.
        reason: String,
    },
    /// A signature over the chain so far.
    Checkpoint(Checkpoint),
}

impl Event {
    /// The `kind` of every event this version knows. A verifier meets
    /// other kinds in logs a newer version wrote: it checks their place
    /// and hash like any record's, without reading them.
    pub const KINDS: &'static [&'static str] = &[
        "request",
        "self_test",
        "startup",
        "tls_reload",
        "init",
        "root_key_change",
        "key_destruction",
        "key_rotation",
        "shutdown",
        "outage",
        "unauthenticated_refusals",
        "segment",
        "checkpoint",
    ];
}

/// Requests refused from one client address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientCount {
    /// The address (without its port), or an IPv6 address's prefix
    /// (`2001:db8::/64` by default, which one host commonly holds whole;
    /// the server's `client_ipv6_prefix`).
    pub client: String,
    /// How many.
    pub count: u64,
}

/// Where a segment continues the chain from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    /// The file that holds the checkpoint.
    pub file: String,
    /// The checkpoint's sequence number.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
}

impl Link {
    /// The checkpoint it names; `None` when its hash is not hex.
    pub fn id(&self) -> Option<crate::CheckpointId> {
        Some(crate::CheckpointId {
            seq: self.seq,
            hash: crate::chain::from_hex(&self.hash)?,
        })
    }
}

/// A signed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    /// The record it covers: the one just before it.
    pub covers: u64,
    /// That record's hash (hex).
    pub chain: String,
    /// The audit key's name.
    pub key: String,
    /// The audit key's version.
    pub key_version: u32,
    /// ECDSA P-256 / SHA-256 signature (DER, base64) over the checkpoint message.
    pub signature: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A change is about to be made: recorded durably before it is.
    Intent,
    /// Done.
    Success,
    /// Refused: bad input, not allowed, not found (4xx).
    Rejected,
    /// The service failed (5xx).
    Failure,
}

/// Whether an API request of `method` on the route template `route` is a
/// change to keys or tokens: one whose intent is recorded before it is
/// made, and whose closing record `audit verify` looks for.
pub fn is_change(method: &str, route: &str) -> bool {
    const CHANGES: [&str; 8] = [
        "/rotate",
        "/config",
        "/activate",
        "/deactivate",
        "/compromise",
        "/destroy",
        "/destroy-now",
        "/v1/keys",
    ];
    // HEAD is answered by the GET routes, and changes nothing either.
    !matches!(method, "GET" | "HEAD")
        && (route.starts_with("/v1/tokens") || CHANGES.iter().any(|c| route.ends_with(c)))
}

/// An API request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestEvent {
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP method.
    pub method: String,
    /// The route template, e.g. `/v1/keys/{name}/encrypt`.
    pub route: String,
    /// The key it named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key version it used (for a rewrap, the one it encrypted under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// The key version a rewrap's ciphertext was under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u32>,
    /// The caller's token id (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The caller's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// SHA-256 of the client's verified certificate (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error code, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time spent, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micros: Option<u64>,
    /// The token (by id) a token change created or revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A batch's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u32>,
    /// How many of a batch's items failed (`error` is the first one's code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_items: Option<u32>,
}

/// Now, as records write it.
pub fn now() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// A time given in Unix seconds, as records write times.
pub fn unix_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Event;

    /// Each listed kind is an event's: a record of it with no fields is
    /// refused for a missing field, not as an unknown kind.
    #[test]
    fn the_known_kinds_are_the_events() {
        for kind in Event::KINDS {
            let refused = serde_json::from_str::<Event>(&format!(r#"{{"kind":"{kind}"}}"#));
            let why = refused.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!why.contains("unknown variant"), "{kind}: {why}");
        }
        // And every event is listed: serde names them all when it meets
        // one it does not know.
        let why = serde_json::from_str::<Event>(r#"{"kind":"from_the_future"}"#)
            .unwrap_err()
            .to_string();
        let expected = why.split("expected one of ").nth(1).unwrap_or_default();
        let mut named: Vec<_> = expected
            .split(", ")
            .map(|name| name.trim_matches(|c: char| c == '`' || !c.is_ascii() || c.is_whitespace()))
            .map(|name| name.split('`').next().unwrap_or_default())
            .collect();
        let mut known = Event::KINDS.to_vec();
        named.sort_unstable();
        known.sort_unstable();
        assert_eq!(named, known, "{why}");
    }
}
