//! Production configuration (TOML, with environment overrides) and the
//! development setup. See docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fipsguard_core::root::UnboundValues;
use fipsguard_core::{Kms, KmsConfig, RootKekSource, Store};
use fipsguard_crypto::tls::{self, ClientAuth, Identity, PeerTrust};
use fipsguard_crypto::SecretBytes;
use fipsguard_store::{PoolLimits, PostgresStore, SqliteStore};
use serde::Deserialize;

use crate::listener::ConnectionLimits;
use crate::ServerOptions;

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`FIPSGUARD_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Most concurrent connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most concurrent connections from one client (an IPv4 address, an
    /// IPv6 prefix), so that one client cannot take every slot
    /// (`FIPSGUARD_MAX_CONNECTIONS_PER_CLIENT`). Unset: no such cap, as
    /// behind a load balancer, whose few addresses every connection has.
    pub max_connections_per_client: Option<usize>,
    /// The prefix IPv6 clients are told apart by, 32 to 128: 64 (the
    /// default) is what one host is commonly given; 128 counts each
    /// address alone, as the hosts of one LAN share a /64
    /// (`FIPSGUARD_CLIENT_IPV6_PREFIX`).
    #[serde(default = "default_client_ipv6_prefix")]
    pub client_ipv6_prefix: u8,
    /// Close a connection with no request in flight after this many
    /// seconds (`FIPSGUARD_IDLE_TIMEOUT_SECS`).
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Longest lifetime of a new token, in seconds; tokens asked for without
    /// one get it (`FIPSGUARD_MAX_TOKEN_TTL_SECS`). Unset: tokens may never
    /// expire.
    pub max_token_ttl_secs: Option<i64>,
    /// Most encryptions under one AES-GCM key version, which then rotates
    /// by itself (`FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION`). Unset: 2^32,
    /// the SP 800-38D bound for random IVs.
    pub max_encryptions_per_version: Option<u64>,
    /// A plain-HTTP listener for `/metrics` without a token (`FIPSGUARD_METRICS_LISTEN`).
    pub metrics_listen: Option<SocketAddr>,
    /// `text` or `json` logs (`FIPSGUARD_LOG_FORMAT`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// TLS.
    pub tls: TlsConfig,
    /// The store.
    pub store: StoreConfig,
    /// The root key-encryption key.
    pub root_key: RootKeyConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditSection,
    /// Self-tests while serving.
    #[serde(default)]
    pub self_test: SelfTestSection,
    /// SHA-256 of the file as read, recorded in the audit log at startup.
    #[serde(skip)]
    pub sha256: Option<String>,
}

/// Unauthenticated refusals recorded one by one per second, by default:
/// a misconfigured client's are all there, a flood's take at most some
/// 400 MB a day.
const DEFAULT_UNAUTHENTICATED_RECORDS_PER_SEC: u32 = 10;

/// The audit log: required, unless explicitly turned off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Directory of the log's files (`FIPSGUARD_AUDIT_DIR`).
    pub dir: Option<PathBuf>,
    /// `false` turns auditing off: for benchmarks, never in production.
    pub enabled: bool,
    /// Start a new file beyond this many bytes.
    pub max_file_bytes: u64,
    /// Start a new file after this many seconds.
    pub max_file_age_secs: u64,
    /// Also copy every event to stdout, for log shippers.
    pub copy_to_stdout: bool,
    /// The name this node's audit anchor is kept under in the store
    /// (`FIPSGUARD_AUDIT_NODE`; default: the host name and the directory);
    /// set it, one per node, where host names change, as in containers.
    pub node: Option<String>,
    /// Requests refused without an authenticated caller (no valid token)
    /// recorded one by one per second at most, across all clients; those
    /// beyond are counted by client address and the counts recorded once
    /// a minute, so that a flood cannot fill the audit disk.
    pub unauthenticated_records_per_sec: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        let defaults = fipsguard_audit::AuditConfig::new(PathBuf::new());
        Self {
            dir: None,
            enabled: true,
            max_file_bytes: defaults.max_file_bytes,
            max_file_age_secs: defaults.max_file_age.as_secs(),
            copy_to_stdout: false,
            node: None,
            unauthenticated_records_per_sec: DEFAULT_UNAUTHENTICATED_RECORDS_PER_SEC,
        }
    }
}

impl AuditSection {
    /// The writer's configuration; `None` when turned off.
    pub fn resolve(&self) -> Result<Option<fipsguard_audit::AuditConfig>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let dir = self
            .dir
            .clone()
            .ok_or("configure the audit log: [audit] dir = \"PATH\" (or FIPSGUARD_AUDIT_DIR)")?;
        Ok(Some(fipsguard_audit::AuditConfig {
            dir,
            max_file_bytes: self.max_file_bytes,
            max_file_age: std::time::Duration::from_secs(self.max_file_age_secs),
            copy_to_stdout: self.copy_to_stdout,
            ..fipsguard_audit::AuditConfig::new(PathBuf::new())
        }))
    }
}

/// Self-tests while serving.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfTestSection {
    /// Seconds between runs, jittered by a tenth either way
    /// (`FIPSGUARD_SELF_TEST_INTERVAL_SECS`).
    pub interval_secs: u64,
}

/// The default interval between self-test runs while serving: a day.
pub const DEFAULT_SELF_TEST_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for SelfTestSection {
    fn default() -> Self {
        Self {
            interval_secs: DEFAULT_SELF_TEST_INTERVAL.as_secs(),
        }
    }
}

impl SelfTestSection {
    /// The interval; periodic self-tests cannot be turned off.
    pub fn interval(&self) -> Result<Duration, String> {
        match self.interval_secs {
            0 => Err("[self_test] interval_secs must be at least 1: periodic self-tests cannot be turned off".into()),
            secs => Ok(Duration::from_secs(secs)),
        }
    }
}

/// Log line format.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (`FIPSGUARD_TLS_CERT`).
    pub cert: PathBuf,
    /// PEM private key (`FIPSGUARD_TLS_KEY`).
    pub key: PathBuf,
    /// PEM CA bundle for client certificates (`FIPSGUARD_TLS_CLIENT_CA`).
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (with `client_ca`).
    #[serde(default)]
    pub require_client_cert: bool,
    /// Certificate revocation lists (PEM or DER) client certificates are
    /// checked against, with `client_ca` (`FIPSGUARD_TLS_CRL`).
    pub crl: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key, and whom the server asks for a client
    /// certificate, read from the files and checked against the policy.
    pub fn read(&self) -> Result<(Identity, ClientAuth), String> {
        let identity =
            Identity::from_pem_files(&self.cert, &self.key).map_err(|e| e.to_string())?;
        let client_auth = match &self.client_ca {
            None => ClientAuth::None,
            Some(ca) => {
                let trust = PeerTrust::read(ca, self.crl.as_deref()).map_err(|e| e.to_string())?;
                if self.require_client_cert {
                    ClientAuth::Required(trust)
                } else {
                    ClientAuth::Optional(trust)
                }
            }
        };
        Ok((identity, client_auth))
    }
}

/// Where keys live: exactly one of `sqlite` and `postgres`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file (`FIPSGUARD_STORE_SQLITE`).
    pub sqlite: Option<PathBuf>,
    /// PostgreSQL connection string (`FIPSGUARD_STORE_POSTGRES`).
    pub postgres: Option<String>,
    /// PostgreSQL pool size.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// PostgreSQL: the deadline of each step of a store call (waiting for
    /// a connection, making one, one statement).
    #[serde(default = "default_store_timeout_secs")]
    pub timeout_secs: u64,
}

/// The longest deadline a store call may be given: beyond it a client has
/// long given up, and its request still holds a connection.
const MAX_STORE_TIMEOUT_SECS: u64 = 300;

impl StoreConfig {
    /// The PostgreSQL pool's size and deadline, checked.
    fn limits(&self) -> Result<PoolLimits, String> {
        if self.pool_size == 0 {
            return Err("[store] pool_size must be at least 1".into());
        }
        if !(1..=MAX_STORE_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!("[store] timeout_secs must be 1 to {MAX_STORE_TIMEOUT_SECS}: a store call must end while its client still waits for it"));
        }
        Ok(PoolLimits {
            size: self.pool_size,
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }
}

/// Where the root key comes from: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeyConfig {
    /// A 32-byte key file, mode 0600 (`FIPSGUARD_ROOT_KEY_FILE`).
    pub file: Option<PathBuf>,
    /// The environment variable that holds the passphrase.
    pub passphrase_env: Option<String>,
}

impl RootKeyConfig {
    /// The root key this names; a passphrase is read from its variable.
    pub fn source(&self) -> Result<RootKekSource, String> {
        match (&self.file, &self.passphrase_env) {
            (Some(file), None) => Ok(RootKekSource::KeyFile(file.clone())),
            (None, Some(var)) => passphrase_from(var).map(RootKekSource::Passphrase),
            _ => Err("configure exactly one root key: [root_key] file = \"PATH\" or passphrase_env = \"VAR\"".into()),
        }
    }
}

/// The root key passphrase the environment variable `var` holds.
pub fn passphrase_from(var: &str) -> Result<SecretBytes, String> {
    let passphrase = std::env::var(var)
        .map_err(|_| format!("the root key passphrase variable {var} is not set"))?;
    Ok(SecretBytes::new(passphrase.into_bytes()))
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_max_body() -> usize {
    1 << 20
}
fn default_max_connections() -> usize {
    1024
}
const MAX_IDLE_TIMEOUT_SECS: u64 = 24 * 60 * 60;
fn default_idle_timeout_secs() -> u64 {
    75
}
fn default_client_ipv6_prefix() -> u8 {
    fipsguard_net::ClientGrouping::DEFAULT_IPV6_PREFIX
}
fn connection_limits(
    max_connections: usize,
    per_client: Option<usize>,
    client_ipv6_prefix: u8,
    idle_timeout_secs: u64,
) -> Result<ConnectionLimits, String> {
    if !(1..=MAX_IDLE_TIMEOUT_SECS).contains(&idle_timeout_secs) {
        return Err(format!("idle_timeout_secs must be 1 to {MAX_IDLE_TIMEOUT_SECS} (a day): idle connections would otherwise hold their slots for ever"));
    }
    fipsguard_net::check_cap(per_client, max_connections)?;
    Ok(ConnectionLimits {
        max_connections,
        per_client,
        client_grouping: fipsguard_net::ClientGrouping::by_ipv6_prefix(client_ipv6_prefix)?,
        idle_timeout: Duration::from_secs(idle_timeout_secs),
        body_timeout: crate::listener::BODY_TIMEOUT,
    })
}
fn default_pool() -> usize {
    16
}

fn default_store_timeout_secs() -> u64 {
    PoolLimits::DEFAULT_TIMEOUT.as_secs()
}

impl Config {
    /// Reads the file, then applies `FIPSGUARD_*` environment overrides.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        let digest = fipsguard_crypto::digest::digest(
            fipsguard_crypto::digest::HashAlgorithm::Sha256,
            text.as_bytes(),
        );
        config.sha256 = digest.ok().map(hex::encode);
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(listen) = var("FIPSGUARD_LISTEN") {
            self.listen = listen
                .parse()
                .map_err(|e| format!("FIPSGUARD_LISTEN: {e}"))?;
        }
        if let Some(listen) = var("FIPSGUARD_METRICS_LISTEN") {
            self.metrics_listen = Some(
                listen
                    .parse()
                    .map_err(|e| format!("FIPSGUARD_METRICS_LISTEN: {e}"))?,
            );
        }
        if let Some(format) = var("FIPSGUARD_LOG_FORMAT") {
            self.log_format = match format.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => {
                    return Err(format!(
                        "FIPSGUARD_LOG_FORMAT: {other:?} is neither text nor json"
                    ))
                }
            };
        }
        let path = |name: &str| var(name).map(PathBuf::from);
        self.tls.cert = path("FIPSGUARD_TLS_CERT").unwrap_or(self.tls.cert.clone());
        self.tls.key = path("FIPSGUARD_TLS_KEY").unwrap_or(self.tls.key.clone());
        self.tls.client_ca = path("FIPSGUARD_TLS_CLIENT_CA").or(self.tls.client_ca.take());
        self.tls.crl = path("FIPSGUARD_TLS_CRL").or(self.tls.crl.take());
        self.store.sqlite = path("FIPSGUARD_STORE_SQLITE").or(self.store.sqlite.take());
        self.store.postgres = var("FIPSGUARD_STORE_POSTGRES").or(self.store.postgres.take());
        self.root_key.file = path("FIPSGUARD_ROOT_KEY_FILE").or(self.root_key.file.take());
        self.audit.dir = path("FIPSGUARD_AUDIT_DIR").or(self.audit.dir.take());
        self.audit.node = var("FIPSGUARD_AUDIT_NODE").or(self.audit.node.take());
        if let Some(max) = var("FIPSGUARD_MAX_CONNECTIONS_PER_CLIENT") {
            self.max_connections_per_client = Some(
                max.parse()
                    .map_err(|e| format!("FIPSGUARD_MAX_CONNECTIONS_PER_CLIENT: {e}"))?,
            );
        }
        if let Some(bits) = var("FIPSGUARD_CLIENT_IPV6_PREFIX") {
            self.client_ipv6_prefix = bits
                .parse()
                .map_err(|e| format!("FIPSGUARD_CLIENT_IPV6_PREFIX: {e}"))?;
        }
        if let Some(secs) = var("FIPSGUARD_IDLE_TIMEOUT_SECS") {
            self.idle_timeout_secs = secs
                .parse()
                .map_err(|e| format!("FIPSGUARD_IDLE_TIMEOUT_SECS: {e}"))?;
        }
        if let Some(secs) = var("FIPSGUARD_MAX_TOKEN_TTL_SECS") {
            self.max_token_ttl_secs = Some(
                secs.parse()
                    .map_err(|e| format!("FIPSGUARD_MAX_TOKEN_TTL_SECS: {e}"))?,
            );
        }
        if let Some(count) = var("FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION") {
            self.max_encryptions_per_version = Some(
                count
                    .parse()
                    .map_err(|e| format!("FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION: {e}"))?,
            );
        }
        if let Some(secs) = var("FIPSGUARD_SELF_TEST_INTERVAL_SECS") {
            self.self_test.interval_secs = secs
                .parse()
                .map_err(|e| format!("FIPSGUARD_SELF_TEST_INTERVAL_SECS: {e}"))?;
        }
        Ok(())
    }

    /// Refuses settings out of range, before anything is opened or created
    /// (`init` would otherwise make a root key file and a store for a
    /// configuration the server then refuses).
    fn check(&self) -> Result<(), String> {
        self.connection_limits()?;
        if self.tls.crl.is_some() && self.tls.client_ca.is_none() {
            // A list with nothing to check against would pass for
            // revocation checking that does not happen.
            return Err("[tls] crl needs [tls] client_ca: the lists are checked only for client certificates".into());
        }
        self.self_test.interval()?;
        self.store.limits()?;
        self.audit.resolve()?;
        self.kms_config().map(drop)
    }

    /// Opens the store and the key management service.
    pub async fn open_kms(&self) -> Result<(Kms, &'static str), String> {
        // Refusing unbound values, it opens as `Kms::open` does.
        self.open_kms_to_rekey(UnboundValues::Refuse).await
    }

    /// Opens the store and the key management service for `fipsguard
    /// rekey` alone, taking what an earlier release wrote where `unbound`
    /// says so.
    pub async fn open_kms_to_rekey(
        &self,
        unbound: UnboundValues,
    ) -> Result<(Kms, &'static str), String> {
        let (store, kind) = self.open_store().await?;
        let root = self.root_key.source()?;
        let kms = Kms::open_to_rekey(store, &root, self.kms_config()?, unbound).await;
        Ok((kms.map_err(|e| e.to_string())?, kind))
    }

    /// The configured store, and its kind.
    async fn open_store(&self) -> Result<(Arc<dyn Store>, &'static str), String> {
        match (&self.store.sqlite, &self.store.postgres) {
            (Some(path), None) => Ok((
                Arc::new(SqliteStore::open(path).await.map_err(|e| e.to_string())?),
                "sqlite",
            )),
            (None, Some(url)) => Ok((
                Arc::new(
                    PostgresStore::connect(url, self.store.limits()?)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                "postgres",
            )),
            _ => Err(
                "configure exactly one store: [store] sqlite = \"PATH\" or postgres = \"URL\""
                    .into(),
            ),
        }
    }

    /// The limits on clients' connections, checked.
    fn connection_limits(&self) -> Result<ConnectionLimits, String> {
        connection_limits(
            self.max_connections,
            self.max_connections_per_client,
            self.client_ipv6_prefix,
            self.idle_timeout_secs,
        )
    }

    /// The service's settings, checked.
    fn kms_config(&self) -> Result<KmsConfig, String> {
        let mut config = KmsConfig {
            max_token_ttl_secs: self.max_token_ttl_secs,
            ..KmsConfig::default()
        };
        if let Some(count) = self.max_encryptions_per_version {
            if !(1..=fipsguard_core::kms::GCM_RANDOM_IV_LIMIT).contains(&count) {
                return Err(
                    "max_encryptions_per_version must be 1 to 4294967296 (2^32, the SP 800-38D bound for random IVs)"
                        .into(),
                );
            }
            config = config.with_encryption_limit(count);
        }
        config.check().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Everything the server needs.
    pub async fn server_options(&self) -> Result<ServerOptions, String> {
        let connections = self.connection_limits()?;
        let (kms, store_kind) = self.open_kms().await?;
        let (identity, client_auth) = self.tls.read()?;
        Ok(ServerOptions {
            kms,
            store_kind,
            listen: self.listen,
            identity,
            client_auth,
            tls_files: Some(self.tls.clone()),
            hangups: None,
            max_body_bytes: self.max_body_bytes,
            connections,
            metrics_listen: self.metrics_listen,
            audit: self.audit.resolve()?,
            audit_node: self.audit.node.clone(),
            unauthenticated_records_per_sec: self.audit.unauthenticated_records_per_sec,
            config_sha256: self.sha256.clone(),
            self_test_interval: self.self_test.interval()?,
        })
    }
}

/// What a development server prints for its user.
pub struct DevInfo {
    /// The CA file for clients (the self-signed certificate).
    pub ca_file: PathBuf,
    /// An officer token.
    pub officer_token: SecretBytes,
    /// The audit log's directory.
    pub audit_dir: PathBuf,
}

/// A development server in `dir`: SQLite there, an ephemeral root key, a
/// self-signed P-256 certificate for localhost, and a first officer token.
pub async fn development(
    dir: &Path,
    listen: SocketAddr,
) -> Result<(ServerOptions, DevInfo), String> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.join("fipsguard.db"))
            .await
            .map_err(|e| e.to_string())?,
    );
    let kms = Kms::open(store, &RootKekSource::Ephemeral, KmsConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let officer = kms
        .create_first_officer_token()
        .await
        .map_err(|e| e.to_string())?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let (identity, certificate_pem) = tls::self_signed(&names).map_err(|e| e.to_string())?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, certificate_pem)
        .map_err(|e| format!("cannot write {}: {e}", ca_file.display()))?;
    let audit_dir = dir.join("audit");
    let options = ServerOptions {
        kms,
        store_kind: "sqlite",
        listen,
        identity,
        client_auth: ClientAuth::None,
        tls_files: None,
        hangups: None,
        max_body_bytes: default_max_body(),
        connections: connection_limits(
            default_max_connections(),
            None,
            default_client_ipv6_prefix(),
            default_idle_timeout_secs(),
        )?,
        metrics_listen: None,
        audit: Some(fipsguard_audit::AuditConfig::new(audit_dir.clone())),
        audit_node: None,
        unauthenticated_records_per_sec: DEFAULT_UNAUTHENTICATED_RECORDS_PER_SEC,
        config_sha256: None,
        self_test_interval: DEFAULT_SELF_TEST_INTERVAL,
    };
    let info = DevInfo {
        ca_file,
        officer_token: officer.token,
        audit_dir,
    };
    Ok((options, info))
}
