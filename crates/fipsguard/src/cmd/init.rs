//! `fipsguard init`: create a configuration's store and its first officer token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use fipsguard_server::config::Config;

/// Flags of `fipsguard init`.
#[derive(clap::Args)]
pub struct Args {
    /// The server's configuration file (TOML).
    #[arg(long, env = "FIPSGUARD_CONFIG")]
    config: PathBuf,
}

/// Creates the root key file if the configuration names one that does not
/// exist yet, opens (creating) the store, and prints the first officer
/// token, once.
pub async fn run(args: &Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return super::fail(e),
    };
    if let Err(e) = super::create_root_key_file(&config.root_key) {
        return super::fail(e);
    }
    let (kms, store) = match config.open_kms().await {
        Ok((kms, store)) => (Arc::new(kms), store),
        Err(e) => return super::fail(e),
    };
    // The log opens first, so a token is never made where it cannot be audited.
    let audit = match super::open_audit(&config, &kms).await {
        Ok(audit) => audit,
        Err(e) => return super::fail(e),
    };
    let token = match kms.create_first_officer_token().await {
        Ok(token) => token,
        Err(e) => return super::fail(e),
    };
    if let Some(log) = audit {
        let event = fipsguard_audit::Event::Init {
            store: store.to_owned(),
            token_id: token.info.id.clone(),
        };
        let recorded = log.record(event).await.and(log.close().await);
        if let Err(e) = recorded {
            return super::fail(format!(
                "{e}: the first officer token was created but not audited; it is not shown"
            ));
        }
    }
    eprintln!("first officer token (shown once, store it safely):");
    println!("{}", String::from_utf8_lossy(token.token.expose_secret()));
    ExitCode::SUCCESS
}
