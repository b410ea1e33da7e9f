//! The fipsguard HTTPS service: the key management core behind a REST API
//! on TLS from the validated module, with roles, metrics and health.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod layers;
pub mod listener;
pub mod metrics;
pub mod selftest;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fipsguard_core::name::KeyName;
use fipsguard_core::Kms;
use fipsguard_crypto::tls::{ClientAuth, Identity};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::state::{AppState, StoreProbe};
use crate::tls::ServerTls;

/// Everything a server needs, resolved.
pub struct ServerOptions {
    /// The key management service over its store.
    pub kms: Kms,
    /// `sqlite` or `postgres`, for status.
    pub store_kind: &'static str,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The server's certificate and key.
    pub identity: Identity,
    /// Client certificates (mTLS).
    pub client_auth: ClientAuth,
    /// The files `identity` and `client_auth` were read from, read again
    /// on SIGHUP; `None` when they live only in memory (development).
    pub tls_files: Option<config::TlsConfig>,
    /// SIGHUP, taken by the caller as early as it can (until a handler
    /// exists, the signal ends the process); `None`: not handled here.
    pub hangups: Option<tokio::signal::unix::Signal>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// What clients' connections may hold.
    pub connections: listener::ConnectionLimits,
    /// A separate plain-HTTP listener for `/metrics` without a token, for
    /// Prometheus on a private network; it keeps answering in the error
    /// state, when token checks (which need the module) are refused.
    pub metrics_listen: Option<SocketAddr>,
    /// The audit log; `None` turns auditing off (benchmarks only: the
    /// server then warns at startup and health says so).
    pub audit: Option<fipsguard_audit::AuditConfig>,
    /// The name this node's audit anchor is kept under in the store
    /// (default: the host name and the audit directory).
    pub audit_node: Option<String>,
    /// Requests refused without an authenticated caller recorded one by
    /// one per second at most; those beyond are counted.
    pub unauthenticated_records_per_sec: u32,
    /// SHA-256 of the configuration file, recorded at startup.
    pub config_sha256: Option<String>,
    /// How often the self-tests run again while serving (jittered).
    pub self_test_interval: Duration,
}

/// A started server.
pub struct Running {
    /// Where it listens.
    pub local_addr: SocketAddr,
    /// Where the separate metrics listener listens, if there is one.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, and returns when done.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }

    /// Waits until the server stops (on `stop` or a signal handled by the caller).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds and starts serving; returns once the listener is bound.
pub async fn start(
    options: ServerOptions,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<Running> {
    let first = startup_events(&options);
    let server_tls =
        ServerTls::new(options.identity, options.client_auth).map_err(std::io::Error::other)?;
    let (publish, in_force) = watch::channel(Arc::new(server_tls));
    let tls_files = options.tls_files;
    let reloader = options
        .hangups
        .map(|hangups| tls::Reloader::new(tls_files, publish, hangups));
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let local_addr = listener.local_addr()?;
    // Bound now, so a taken port stops the start; served only once nothing
    // else can fail, so a failed start leaves no listener behind.
    let metrics_listener = match options.metrics_listen {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    metrics::handle(); // installs the recorder before anything records (the audit log does at once)
    metrics::init_self_test_runs();
    metrics::record_self_test_run("power-up", &fipsguard_crypto::module::latest_report());
    in_force.borrow().record_crls_next_update();
    metrics::init_tls_reloads();
    let kms = Arc::new(options.kms);
    let lifecycle_records = Arc::new(audit::LifecycleRecords::default());
    if options.audit.is_some() {
        kms.witness_lifecycle(lifecycle_records.clone());
    }
    let audit = match options.audit {
        Some(config) => {
            let first = first(local_addr, &in_force.borrow());
            Some(
                audit::open(&kms, config, options.audit_node, first)
                    .await
                    .map_err(std::io::Error::other)?,
            )
        }
        None => {
            tracing::warn!("the audit log is OFF: requests leave no evidence (benchmarks only)");
            None
        }
    };
    let state = Arc::new(AppState {
        kms,
        store_kind: options.store_kind,
        started: Instant::now(),
        audit,
        unauthenticated: Arc::new(audit::unauthenticated::Budget::new(
            options.unauthenticated_records_per_sec,
            options.connections.client_grouping,
        )),
        store_probe: StoreProbe::default(),
        changes: tokio_util::task::TaskTracker::new(),
    });
    lifecycle_records.serve(&state);
    let stop_counting = tokio_util::sync::CancellationToken::new();
    let counting = audit::spawn_counted_refusals(state.clone(), stop_counting.clone());
    let background: Vec<JoinHandle<()>> = [
        spawn_housekeeping(state.clone()),
        selftest::spawn_periodic(state.clone(), options.self_test_interval),
        metrics::spawn_upkeep(metrics::UPKEEP_EVERY),
    ]
    .into_iter()
    .chain(metrics_listener.map(|listener| metrics::serve_plain(listener, &state)))
    .chain(reloader.map(|reloader| reloader.spawn(state.audit.clone())))
    .collect();
    let app = api::router(state.clone(), options.max_body_bytes);
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = stopped => {}
            () = shutdown_signal => {}
        }
    };
    let serving = listener::serve(listener, in_force, app, options.connections, shutdown);
    let task = tokio::spawn(async move {
        serving.await;
        // Changes whose clients went away, and destructions and rotations
        // under way (of the sweep's or a request's): ended, and recorded,
        // before the log closes; one more drain timeout in all.
        let deadline = tokio::time::Instant::now() + listener::DRAIN_TIMEOUT;
        state.changes.close();
        if tokio::time::timeout_at(deadline, state.changes.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: changes still under way after the drain timeout");
        }
        // Awaited, so that a stopped server holds no port and runs no task.
        for task in background {
            task.abort();
            let _ = task.await;
        }
        stop_counting.cancel();
        let _ = counting.await;
        if !state.kms.finish_unattended(deadline).await {
            tracing::warn!(
                "shutdown: scheduled destructions or rotations still under way after the drain timeout"
            );
        }
        // After the drain, so every answered request's event is in the log.
        audit::record_counted_refusals(&state).await;
        if let Some(audit) = &state.audit {
            if let Err(e) = audit.close().await {
                tracing::error!(error = %e, "the audit log could not be closed in order");
            }
        }
    });
    tracing::info!(%local_addr, "serving");
    Ok(Running {
        local_addr,
        metrics_addr,
        shutdown: stop,
        task,
    })
}

/// What the log records when a server starts: the power-up self-tests and
/// the configuration it runs with, on the address it is bound to, with
/// the certificate it serves.
fn startup_events(
    options: &ServerOptions,
) -> impl FnOnce(SocketAddr, &ServerTls) -> Vec<fipsguard_audit::Event> {
    use fipsguard_audit::Event;
    let (store, config_sha256) = (options.store_kind, options.config_sha256.clone());
    move |listen, tls| {
        let report = fipsguard_crypto::module::latest_report();
        let module = &report.module;
        vec![
            Event::SelfTest {
                trigger: "power-up".into(),
                passed: report.passed(),
                tests: report.results.len(),
                failed: report.first_failure().map(str::to_owned),
            },
            Event::Startup {
                version: env!("CARGO_PKG_VERSION").into(),
                fips_mode: report.fips_mode(),
                module: format!(
                    "{} {} (CMVP {})",
                    module.name, module.library_version, module.certificate
                ),
                store: store.into(),
                listen: listen.to_string(),
                config_sha256,
                certificate: Some(tls.certificate().to_owned()),
            },
        ]
    }
}

/// Once a minute: carry out due destructions, drop the material of keys
/// destroyed by other nodes, refresh key gauges (and the store's, which
/// scrapes refresh too: so that they have a value before the first).
fn spawn_housekeeping(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        // A round that overran starts the next a minute later, not at once.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.kms.destroy_due_keys().await {
                Ok(sweep) => {
                    for (key, e) in &sweep.failed {
                        // A stored name that is no key name may be a pasted token.
                        let key = if KeyName::is_valid(key) {
                            key
                        } else {
                            "(not a key name)"
                        };
                        tracing::warn!(key, error = %e, "a due destruction failed; tried again at the next sweep");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduled destruction sweep failed"),
            }
            let sweep = state.kms.forget_destroyed_material().await;
            if sweep.forgotten > 0 {
                tracing::info!(
                    keys = sweep.forgotten,
                    "dropped the material of keys destroyed elsewhere"
                );
            }
            if sweep.unreadable > 0 {
                tracing::warn!(
                    keys = sweep.unreadable,
                    "keys whose material is held could not be read again; their material is kept"
                );
            }
            metrics::record_cached_versions(&state.kms);
            if let Err(e) = metrics::record_keys(&state.kms).await {
                tracing::warn!(error = %e, "key inventory for metrics failed");
            }
            metrics::record_module();
            metrics::record_availability(&state).await;
        }
    })
}
