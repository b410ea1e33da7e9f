//! What a tunnel is: one struct, read from a TOML file (`[[tunnel]]`) or
//! from command-line flags, so the two never drift.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fipsguard_net::ClientGrouping;

use crate::identity::parse_subject;

/// The most connections a tunnel may be configured to hold.
const MAX_CONNECTIONS: usize = 1_000_000;

/// The most threads a tunnel may be configured to run.
const MAX_WORKERS: usize = 256;

/// Which side of the TLS a tunnel is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Accept TLS on `listen`, forward plain TCP to `target`.
    Server,
    /// Accept plain TCP on `listen`, forward over TLS to `target`.
    Client,
}

/// One tunnel.
#[derive(Debug, Clone, serde::Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// A name for logs and metric labels.
    #[arg(long, default_value = "tunnel")]
    #[serde(default = "default_name")]
    pub name: String,
    /// Server or client.
    #[arg(skip = Mode::Server)]
    pub mode: Mode,
    /// Where to accept connections.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward them: host:port, or unix:/path for a Unix socket
    /// (server mode).
    #[arg(long)]
    pub target: String,
    /// Certificate chain (PEM): the server's, or the client's for mTLS.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server mode: CA bundle (PEM) that client certificates must chain to
    /// (mTLS; a certificate is then required).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Client mode: CA bundle (PEM) the server's certificate must chain to.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client mode: the name the server's certificate must carry [default:
    /// the host of --target].
    #[arg(long)]
    pub server_name: Option<String>,
    /// Revocation lists (PEM) for the peer's certificate.
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// Server mode: allow only client certificates with this DNS SAN (repeat).
    #[arg(long = "allow-dns")]
    #[serde(default, deserialize_with = "allow_list")]
    pub allow_dns: Vec<String>,
    /// Server mode: allow only client certificates with this URI SAN, e.g. a
    /// SPIFFE ID (repeat).
    #[arg(long = "allow-uri")]
    #[serde(default, deserialize_with = "allow_list")]
    pub allow_uri: Vec<String>,
    /// Server mode: allow only client certificates with this subject, as
    /// `CN=…, O=…` (repeat).
    #[arg(long = "allow-subject")]
    #[serde(default, deserialize_with = "allow_list")]
    pub allow_subject: Vec<String>,
    /// Server mode with client_ca: let in every client certificate the CA
    /// verifies, with no allow-list (one of the two must be given).
    #[arg(long)]
    #[serde(default)]
    pub allow_all: bool,
    /// Server mode: accept clients without certificates (no client_ca):
    /// anyone who reaches the port reaches the target.
    #[arg(long)]
    #[serde(default)]
    pub disable_authentication: bool,
    /// Client mode: listen on an address other than loopback, lending the
    /// tunnel's TLS identity to anyone who can reach it.
    #[arg(long)]
    #[serde(default)]
    pub unsafe_listen: bool,
    /// Server mode: send a PROXY protocol v2 header to the target, with the
    /// client's address and verified identity.
    #[arg(long)]
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Seconds a peer has to complete its TLS handshake (and a target to accept).
    #[arg(long, default_value_t = DEFAULT_HANDSHAKE_TIMEOUT_SECS)]
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may stay idle both ways before it is closed
    /// (0: never, the default: database pools and distribution links idle
    /// for long).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub idle_timeout_secs: u64,
    /// Most connections open at once; more are refused.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections one client (an IPv4 address, or an IPv6 prefix,
    /// `--client-ipv6-prefix`) holds at once; more from it are refused [default: no cap; leave it
    /// so behind a load balancer, whose few addresses carry everyone].
    #[arg(long)]
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
    /// The prefix IPv6 clients are told apart by for that cap, 32 to 128:
    /// 64 is what one host is commonly given; 128 counts each address
    /// alone, as the hosts of one LAN share a /64 (but then a host given
    /// a whole /64 can spread its connections over it).
    #[arg(long, default_value_t = ClientGrouping::DEFAULT_IPV6_PREFIX)]
    #[serde(default = "default_client_ipv6_prefix")]
    pub client_ipv6_prefix: u8,
    /// Threads that carry this tunnel's connections, each with its own
    /// event loop; a connection stays on the thread that accepted it
    /// [default: one per core, at most 256].
    #[arg(long)]
    pub workers: Option<usize>,
}

/// An allow-list from a file: one left empty (a template with nothing
/// filled in) would admit no one, yet read as no list at all.
fn allow_list<'de, D: serde::Deserializer<'de>>(list: D) -> Result<Vec<String>, D::Error> {
    let list = <Vec<String> as serde::Deserialize>::deserialize(list)?;
    match list.is_empty() {
        true => Err(serde::de::Error::custom(
            "an empty allow-list admits no one and is refused: name who may connect, or remove it (allow_all lets in every client the CA verifies)",
        )),
        false => Ok(list),
    }
}

fn default_name() -> String {
    "tunnel".to_owned()
}

const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
const MAX_IDLE_TIMEOUT_SECS: u64 = 30 * 24 * 3600;
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

fn default_handshake_timeout() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_SECS
}

fn default_client_ipv6_prefix() -> u8 {
    ClientGrouping::DEFAULT_IPV6_PREFIX
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

/// Where a tunnel forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// host:port.
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl TunnelConfig {
    /// The target, parsed.
    pub fn target(&self) -> Target {
        match self.target.strip_prefix("unix:") {
            Some(path) => Target::Unix(PathBuf::from(path)),
            None => Target::Tcp(self.target.clone()),
        }
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// The idle deadline, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    /// How clients are told apart for `max_connections_per_client`
    /// (checked by [`validate`](Self::validate)).
    pub fn client_grouping(&self) -> ClientGrouping {
        ClientGrouping::by_ipv6_prefix(self.client_ipv6_prefix).unwrap_or_default()
    }

    /// How many threads carry connections.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(MAX_WORKERS)
        })
    }

    /// Whether an allow-list restricts who may connect.
    pub fn has_allow_list(&self) -> bool {
        !(self.allow_dns.is_empty() && self.allow_uri.is_empty() && self.allow_subject.is_empty())
    }

    /// The name the server's certificate must carry (client mode).
    pub fn expected_server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            let host = self
                .target
                .rsplit_once(':')
                .map_or(self.target.as_str(), |(host, _)| host);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
    }

    /// The files whose change means the TLS configuration must be rebuilt.
    pub fn watched_files(&self) -> Vec<&Path> {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.cacert,
            &self.crl,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
    }

    /// Refuses configurations that would not do what they say.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let refuse = |why: &str| Err(format!("tunnel {name:?}: {why}"));
        if self.handshake_timeout_secs == 0 {
            return refuse("handshake_timeout_secs must be at least 1");
        }
        if self.idle_timeout_secs > MAX_IDLE_TIMEOUT_SECS {
            return refuse("idle_timeout_secs must be at most 2,592,000 (30 days; 0 for none)");
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return refuse("max_connections must be 1 to 1,000,000");
        }
        if let Err(why) =
            fipsguard_net::check_cap(self.max_connections_per_client, self.max_connections)
                .and(ClientGrouping::by_ipv6_prefix(self.client_ipv6_prefix))
        {
            return refuse(why);
        }
        if self
            .workers
            .is_some_and(|n| !(1..=MAX_WORKERS).contains(&n))
        {
            return refuse("workers must be 1 to 256");
        }
        if self.cert.is_some() != self.key.is_some() {
            return refuse("cert and key go together: give both, or neither");
        }
        if let Some(Err(e)) = self
            .allow_subject
            .iter()
            .map(|s| parse_subject(s))
            .find(Result::is_err)
        {
            return refuse(&format!("allow_subject: {e}"));
        }
        match self.mode {
            Mode::Server => {
                if self.cert.is_none() {
                    return refuse("a server tunnel needs cert and key");
                }
                if self.cacert.is_some() || self.server_name.is_some() {
                    return refuse("cacert and server_name are for client tunnels (a server tunnel verifies clients with client_ca)");
                }
                if self.unsafe_listen {
                    return refuse("unsafe_listen is for client tunnels");
                }
                if let Err(why) = self.validate_authentication() {
                    return refuse(why);
                }
            }
            Mode::Client => {
                if self.cacert.is_none() {
                    return refuse("a client tunnel needs cacert to verify the server");
                }
                if self.client_ca.is_some()
                    || self.has_allow_list()
                    || self.allow_all
                    || self.disable_authentication
                    || self.proxy_protocol
                {
                    return refuse(
                        "client_ca, allow-lists, allow_all, disable_authentication and proxy_protocol are for server tunnels",
                    );
                }
                if !self.listen.ip().is_loopback() && !self.unsafe_listen {
                    return refuse("a client tunnel listening off loopback lends its TLS identity to anyone who can reach it: listen on loopback, or set unsafe_listen (--unsafe-listen)");
                }
                if self.listen.ip().is_loopback() && self.max_connections_per_client.is_some() {
                    return refuse("max_connections_per_client counts clients by address, and every client of a tunnel on loopback has the same one: use max_connections");
                }
                if matches!(self.target(), Target::Unix(_)) {
                    return refuse("a client tunnel's target is the TLS server's host:port");
                }
            }
        }
        Ok(())
    }
}

impl TunnelConfig {
    /// Who a server tunnel lets in is always said, never a default: client
    /// certificates with an allow-list (a file's empty one is refused when
    /// read) or allow_all, or else disable_authentication.
    fn validate_authentication(&self) -> Result<(), &'static str> {
        match (self.client_ca.is_some(), self.has_allow_list()) {
            (true, _) if self.disable_authentication => {
                Err("disable_authentication contradicts client_ca")
            }
            (true, true) if self.allow_all => Err("allow_all contradicts the allow-list"),
            (true, false) if !self.allow_all => Err("a server tunnel with client_ca needs an allow-list (allow_dns, allow_uri, allow_subject) or allow_all (--allow-all) to let in every client the CA verifies"),
            (true, _) => Ok(()),
            (false, true) => Err("an allow-list needs client_ca: identities come from verified client certificates"),
            (false, false) if self.allow_all => Err("allow_all needs client_ca: identities come from verified client certificates"),
            (false, false) if self.crl.is_some() => Err("crl needs client_ca in a server tunnel"),
            (false, false) if !self.disable_authentication => Err("a server tunnel needs client_ca (mTLS) to know its clients, or disable_authentication (--disable-authentication) to accept anyone who reaches it"),
            (false, false) => Ok(()),
        }
    }
}

/// A configuration file: several tunnels and one metrics listener.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Plain-HTTP address for `/metrics` and `/health` (keep it private).
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds shutdown waits for open connections to finish.
    #[serde(default = "default_drain")]
    pub drain_timeout_secs: u64,
    /// The tunnels.
    #[serde(rename = "tunnel")]
    pub tunnels: Vec<TunnelConfig>,
}

/// Seconds shutdown waits for open connections unless told otherwise.
pub const DEFAULT_DRAIN_SECS: u64 = 30;

fn default_drain() -> u64 {
    DEFAULT_DRAIN_SECS
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let config: Self =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses an empty file, clashing names and each tunnel's own faults.
    pub fn validate(&self) -> Result<(), String> {
        if self.tunnels.is_empty() {
            return Err("no [[tunnel]] is configured".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for tunnel in &self.tunnels {
            tunnel.validate()?;
            if !names.insert(&tunnel.name) {
                return Err(format!("two tunnels are named {:?}", tunnel.name));
            }
        }
        Ok(())
    }

    /// How long shutdown waits for open connections.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}
