//! `fipsguard init`: create a configuration's store and its first officer token.

use std::path::PathBuf;
use std::process::ExitCode;

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
    if let Some(file) = config.root_key.file.as_ref().filter(|f| !f.exists()) {
        if let Err(e) = fipsguard_core::root::create_key_file(file) {
            return super::fail(e);
        }
        eprintln!(
            "created root key file {} (mode 0600): back it up; without it the keys are lost",
            file.display()
        );
    }
    let kms = match config.open_kms().await {
        Ok((kms, _)) => kms,
        Err(e) => return super::fail(e),
    };
    match kms.create_first_officer_token().await {
        Ok(token) => {
            eprintln!("first officer token (shown once, store it safely):");
            println!("{}", String::from_utf8_lossy(token.token.expose_secret()));
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(e),
    }
}
