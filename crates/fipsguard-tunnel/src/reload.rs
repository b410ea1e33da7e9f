//! A tunnel's TLS side, rebuilt from its files on SIGHUP or when they
//! change. New connections take the current configuration; connections
//! already open keep the one they started with, so a reload drops nothing,
//! except a client the new trust refuses (a certificate on a new
//! revocation list, or one that has since expired): its connection is cut.
//! A reload that fails (a bad certificate, a key that does not match)
//! keeps the previous configuration and says so.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fipsguard_crypto::certificate::not_after;
use fipsguard_crypto::tls::rustls::pki_types::{CertificateDer, ServerName};
use fipsguard_crypto::tls::{self, ClientAuth, ClientVerifier, Identity, PeerTrust};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Mode, TunnelConfig};
use crate::metrics;

/// The TLS end of a tunnel.
pub enum Side {
    /// Server mode: accepts TLS.
    Server {
        /// The configured acceptor.
        acceptor: TlsAcceptor,
        /// What its handshakes check client certificates with (with a
        /// client CA).
        clients: Option<ClientVerifier>,
    },
    /// Client mode: originates TLS to a server that must carry `name`.
    Client {
        /// The configured connector.
        connector: TlsConnector,
        /// The name the server's certificate must carry.
        name: ServerName<'static>,
    },
}

impl Side {
    /// Why a client whose handshake passed under an earlier side is
    /// refused under this one: see [`tls::refuses_established_client`].
    pub fn refuses_client(&self, chain: &[CertificateDer<'static>]) -> Option<tls::ClientRefused> {
        match self {
            Side::Server {
                clients: Some(verifier),
                ..
            } => tls::refuses_established_client(verifier, chain),
            _ => None,
        }
    }
}

/// The current TLS side of a tunnel, and what it was built from.
pub struct TlsState {
    tunnel: Arc<TunnelConfig>,
    current: watch::Sender<Arc<Side>>,
    stamps: Mutex<Vec<Option<FileStamp>>>,
}

impl TlsState {
    /// Builds the TLS side; a failure here stops the tunnel from starting.
    pub fn load(tunnel: Arc<TunnelConfig>) -> Result<Self, String> {
        let stamps = file_stamps(&tunnel);
        let side = build(&tunnel)?;
        metrics::init_reloads(&tunnel.name);
        Ok(Self {
            tunnel,
            current: watch::Sender::new(Arc::new(side)),
            stamps: Mutex::new(stamps),
        })
    }

    /// The configuration in use, for a new connection to take, and then
    /// each one a reload puts in place.
    pub fn changes(&self) -> watch::Receiver<Arc<Side>> {
        self.current.subscribe()
    }

    /// Rebuilds from the files; on failure the current side stays.
    pub fn reload(&self, why: &str) {
        let name = &self.tunnel.name;
        *self.stamps.lock().expect("not poisoned") = file_stamps(&self.tunnel);
        match build(&self.tunnel) {
            Ok(side) => {
                self.current.send_replace(Arc::new(side));
                metrics::reload(name, "ok");
                tracing::info!(tunnel = %name, why, "TLS configuration reloaded");
            }
            Err(e) => {
                metrics::reload(name, "failed");
                tracing::error!(tunnel = %name, why, error = %e, "TLS reload failed: the previous configuration stays in use");
            }
        }
    }

    /// Reloads if a file changed since the last load.
    pub fn reload_if_changed(&self) {
        let now = file_stamps(&self.tunnel);
        if *self.stamps.lock().expect("not poisoned") != now {
            self.reload("a certificate, key, CA or CRL file changed");
        }
    }
}

/// What tells one version of a file from the next: the file (device and
/// inode, new when a file is renamed into place), its size, and its
/// modification and change times. The change time catches a copy that
/// keeps the old modification time (`cp -p`, `rsync -t`), which no one
/// can set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    file: (u64, u64),
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

fn file_stamps(tunnel: &TunnelConfig) -> Vec<Option<FileStamp>> {
    tunnel
        .watched_files()
        .into_iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|m| FileStamp {
                file: (m.dev(), m.ino()),
                size: m.size(),
                modified: (m.mtime(), m.mtime_nsec()),
                changed: (m.ctime(), m.ctime_nsec()),
            })
        })
        .collect()
}

/// A TLS side, and the dates its files run out at (Unix seconds).
struct Built {
    side: Side,
    /// The tunnel's own certificate's notAfter.
    expiry: Option<i64>,
    /// The first nextUpdate of its revocation lists.
    crls_next_update: Option<i64>,
}

/// Builds the TLS side and, once it is built, reports when its certificate
/// expires and its revocation lists pass their nextUpdate.
fn build(tunnel: &TunnelConfig) -> Result<Side, String> {
    let built = build_side(tunnel)?;
    if let Some(expiry) = built.expiry {
        metrics::certificate_expiry(&tunnel.name, expiry);
    }
    if let Some(next_update) = built.crls_next_update {
        metrics::crl_next_update(&tunnel.name, next_update);
    }
    Ok(built.side)
}

fn build_side(tunnel: &TunnelConfig) -> Result<Built, String> {
    let fail = |e: tls::TlsError| format!("tunnel {:?}: {e}", tunnel.name);
    let identity = match (&tunnel.cert, &tunnel.key) {
        (Some(cert), Some(key)) => Some(Identity::from_pem_files(cert, key).map_err(fail)?),
        _ => None,
    };
    let expiry = identity
        .as_ref()
        .and_then(|identity| not_after(identity.chain()[0].as_ref()));
    let mut crls_next_update = None;
    let mut trust = |ca: &Path| {
        let trust = PeerTrust::read(ca, tunnel.crl.as_deref()).map_err(fail)?;
        crls_next_update = trust.crls_next_update();
        Ok::<_, String>(trust)
    };
    let side = match tunnel.mode {
        Mode::Server => {
            let identity = identity.ok_or("a server tunnel needs cert and key")?;
            let client_auth = match &tunnel.client_ca {
                Some(ca) => ClientAuth::Required(trust(ca)?),
                None => ClientAuth::None,
            };
            let (config, clients) =
                tls::server_config_and_verifier(identity, client_auth).map_err(fail)?;
            let acceptor = TlsAcceptor::from(Arc::new(config));
            Side::Server { acceptor, clients }
        }
        Mode::Client => {
            let ca = tunnel
                .cacert
                .as_deref()
                .ok_or("a client tunnel needs cacert")?;
            let config = tls::client_config(trust(ca)?, identity).map_err(fail)?;
            let name = ServerName::try_from(tunnel.expected_server_name())
                .map_err(|e| format!("tunnel {:?}: server name: {e}", tunnel.name))?;
            let connector = TlsConnector::from(Arc::new(config));
            Side::Client { connector, name }
        }
    };
    Ok(Built {
        side,
        expiry,
        crls_next_update,
    })
}
