//! A tunnel's TLS side, rebuilt from its files on SIGHUP or when they
//! change. New connections take the current configuration; connections
//! already open keep the one they started with, so a reload drops nothing.
//! A reload that fails (a bad certificate, a key that does not match)
//! keeps the previous configuration and says so.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use fipsguard_crypto::tls::rustls::pki_types::ServerName;
use fipsguard_crypto::tls::{self, ClientAuth, Identity, PeerTrust};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Mode, TunnelConfig};
use crate::identity::not_after;
use crate::metrics;

/// The TLS end of a tunnel.
pub enum Side {
    /// Server mode: accepts TLS.
    Server(TlsAcceptor),
    /// Client mode: originates TLS to a server that must carry `name`.
    Client {
        /// The configured connector.
        connector: TlsConnector,
        /// The name the server's certificate must carry.
        name: ServerName<'static>,
    },
}

/// The current TLS side of a tunnel, and what it was built from.
pub struct TlsState {
    tunnel: Arc<TunnelConfig>,
    current: RwLock<Arc<Side>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl TlsState {
    /// Builds the TLS side; a failure here stops the tunnel from starting.
    pub fn load(tunnel: Arc<TunnelConfig>) -> Result<Self, String> {
        let stamps = modification_times(&tunnel);
        let side = build(&tunnel)?;
        Ok(Self {
            tunnel,
            current: RwLock::new(Arc::new(side)),
            stamps: Mutex::new(stamps),
        })
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<Side> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Rebuilds from the files; on failure the current side stays.
    pub fn reload(&self, why: &str) {
        let name = &self.tunnel.name;
        *self.stamps.lock().expect("not poisoned") = modification_times(&self.tunnel);
        match build(&self.tunnel) {
            Ok(side) => {
                *self.current.write().expect("not poisoned") = Arc::new(side);
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
        let now = modification_times(&self.tunnel);
        if *self.stamps.lock().expect("not poisoned") != now {
            self.reload("a certificate, key, CA or CRL file changed");
        }
    }
}

fn modification_times(tunnel: &TunnelConfig) -> Vec<Option<SystemTime>> {
    tunnel
        .watched_files()
        .into_iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

/// Builds the TLS side and, once it is built, reports its certificate's expiry.
fn build(tunnel: &TunnelConfig) -> Result<Side, String> {
    let (side, expiry) = build_side(tunnel)?;
    if let Some(expiry) = expiry {
        metrics::certificate_expiry(&tunnel.name, expiry);
    }
    Ok(side)
}

fn build_side(tunnel: &TunnelConfig) -> Result<(Side, Option<i64>), String> {
    let fail = |e: tls::TlsError| format!("tunnel {:?}: {e}", tunnel.name);
    let identity = match (&tunnel.cert, &tunnel.key) {
        (Some(cert), Some(key)) => Some(Identity::from_pem_files(cert, key).map_err(fail)?),
        _ => None,
    };
    let expiry = identity
        .as_ref()
        .and_then(|identity| not_after(identity.chain()[0].as_ref()));
    let trust = |ca: &Path| -> Result<PeerTrust, String> {
        Ok(PeerTrust {
            roots: tls::read_roots(ca).map_err(fail)?,
            crls: match &tunnel.crl {
                Some(crl) => tls::read_crls(crl).map_err(fail)?,
                None => Vec::new(),
            },
        })
    };
    match tunnel.mode {
        Mode::Server => {
            let identity = identity.ok_or("a server tunnel needs cert and key")?;
            let client_auth = match &tunnel.client_ca {
                Some(ca) => ClientAuth::Required(trust(ca)?),
                None => ClientAuth::None,
            };
            let config = tls::server_config(identity, client_auth).map_err(fail)?;
            Ok((Side::Server(TlsAcceptor::from(Arc::new(config))), expiry))
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
            Ok((Side::Client { connector, name }, expiry))
        }
    }
}
