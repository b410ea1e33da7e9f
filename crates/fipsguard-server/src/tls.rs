//! The server's TLS configuration in force. Built at start and, when it
//! was read from files (not in development, whose certificate lives only
//! in memory), built again from them on SIGHUP: a renewed certificate, a
//! new client CA or a newer revocation list is put in place without a
//! restart. New connections take the configuration in force; an open
//! connection whose client certificate it refuses (revoked, expired, or no
//! longer from a trusted CA) is closed, and every other one keeps going. A
//! reload that fails, or that the audit log cannot record, keeps the
//! configuration in force and says why.

use std::sync::Arc;

use fipsguard_audit::{AuditLog, Event};
use fipsguard_crypto::digest::{digest, HashAlgorithm};
use fipsguard_crypto::tls::rustls::pki_types::CertificateDer;
use fipsguard_crypto::tls::rustls::ServerConfig;
use fipsguard_crypto::tls::{self, ClientAuth, ClientVerifier, Identity, TlsError};
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::TlsConfig;
use crate::metrics;

/// A TLS configuration for new connections, and what it checks client
/// certificates with.
pub struct ServerTls {
    /// Under the shared policy, offering HTTP/2 and HTTP/1.1.
    pub config: Arc<ServerConfig>,
    /// SHA-256 (hex) of the server's own certificate.
    certificate: String,
    clients: Option<ClientVerifier>,
    /// When the first client revocation list passes its nextUpdate.
    crls_next_update: Option<i64>,
}

impl ServerTls {
    /// Checks `identity` and the client trust against the policy.
    pub fn new(identity: Identity, client_auth: ClientAuth) -> Result<Self, TlsError> {
        let crls_next_update = match &client_auth {
            ClientAuth::Optional(trust) | ClientAuth::Required(trust) => trust.crls_next_update(),
            ClientAuth::None => None,
        };
        let certificate = fingerprint(&identity.chain()[0])?;
        let (mut config, clients) = tls::server_config_and_verifier(identity, client_auth)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            certificate,
            clients,
            crls_next_update,
        })
    }

    /// Why a client whose certificate chain (`chain`, its own first) was
    /// accepted under an earlier configuration, or earlier, is refused by
    /// this one now (revoked, expired, no longer from a trusted CA); `None`
    /// while it is accepted.
    pub fn refuses_client(&self, chain: &[CertificateDer<'static>]) -> Option<tls::ClientRefused> {
        let verifier = self.clients.as_ref()?;
        tls::refuses_established_client(verifier, chain)
    }

    /// SHA-256 (hex) of the server's own certificate.
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// Publishes when the client revocation lists pass their nextUpdate.
    pub fn record_crls_next_update(&self) {
        if let Some(next_update) = self.crls_next_update {
            metrics::record_client_crl_next_update(next_update);
        }
    }
}

/// A certificate's SHA-256 in hex: how logs and the audit log name one.
pub fn fingerprint(der: &[u8]) -> Result<String, fipsguard_crypto::Error> {
    digest(HashAlgorithm::Sha256, der).map(hex::encode)
}

/// Reads the TLS files again on each SIGHUP.
pub struct Reloader {
    /// `None` in development, whose certificate lives only in memory.
    files: Option<TlsConfig>,
    publish: watch::Sender<Arc<ServerTls>>,
    hangups: Signal,
}

impl Reloader {
    /// Reloads from `files` on each of `hangups`, publishing to `publish`.
    pub fn new(
        files: Option<TlsConfig>,
        publish: watch::Sender<Arc<ServerTls>>,
        hangups: Signal,
    ) -> Self {
        Self {
            files,
            publish,
            hangups,
        }
    }

    /// Reloads on each SIGHUP until aborted, recording each in `audit`.
    pub fn spawn(mut self, audit: Option<AuditLog>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while self.hangups.recv().await.is_some() {
                let Some(files) = &self.files else {
                    tracing::info!(
                        "SIGHUP: nothing to reload: a development server's certificate lives only in memory"
                    );
                    continue;
                };
                self.reload(files.clone(), audit.as_ref()).await;
            }
        })
    }

    /// Puts the files' configuration in force if they pass and the audit
    /// log has recorded it: no trust changes without evidence.
    async fn reload(&self, files: TlsConfig, audit: Option<&AuditLog>) {
        // Files and certificate checks: off the workers that serve.
        let read = tokio::task::spawn_blocking(move || {
            let (identity, client_auth) = files.read()?;
            ServerTls::new(identity, client_auth).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reload stopped: {e}")));
        let event = Event::TlsReload {
            loaded: read.is_ok(),
            certificate: read.as_ref().ok().map(|tls| tls.certificate.clone()),
            error: read.as_ref().err().cloned(),
        };
        let recorded = match audit {
            Some(audit) => audit.record(event).await,
            None => Ok(()),
        };
        match (read, recorded) {
            (Ok(tls), Ok(())) => {
                tls.record_crls_next_update();
                tracing::info!(certificate = %tls.certificate, "TLS configuration reloaded (SIGHUP)");
                self.publish.send_replace(Arc::new(tls));
                metrics::record_tls_reload("ok");
            }
            (Ok(_), Err(e)) => {
                metrics::record_tls_reload("failed");
                tracing::error!(error = %e, "TLS reload refused: it could not be recorded in the audit log; the configuration in force stays");
            }
            (Err(e), recorded) => {
                metrics::record_tls_reload("failed");
                tracing::error!(error = %e, "TLS reload failed: the configuration in force stays");
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "the failed TLS reload could not be recorded in the audit log");
                }
            }
        }
    }
}
