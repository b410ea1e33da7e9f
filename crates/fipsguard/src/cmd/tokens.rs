//! `fipsguard token …`: bearer tokens and their grants (officer), and the
//! caller's own token (anyone).

use std::process::ExitCode;
use std::time::Duration;

use fipsguard_client::HttpMethod;
use serde_json::{json, Value};

use super::client::{call_and_show, write_fields, OutputArgs, ServerArgs};

/// Flags of `fipsguard token`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a token; it is shown this once.
    Create {
        /// officer, user or auditor.
        #[arg(long)]
        role: String,
        /// For users: KEYS:OP,OP…, where KEYS is a key name, prefix* or *
        /// (e.g. payments:encrypt,decrypt). Repeat for several.
        #[arg(long = "grant", value_parser = parse_grant)]
        grants: Vec<Value>,
        /// Lifetime, e.g. 30d or 12h [default: the server's
        /// max_token_ttl_secs, or never expires if it sets none].
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id (officer), or the token in use (any role).
    Revoke {
        /// The token's id (from `token list`).
        #[arg(required_unless_present = "own")]
        id: Option<String>,
        /// Revoke the token in use, e.g. at the end of the job it was made for.
        #[arg(long = "self", conflicts_with = "id")]
        own: bool,
    },
    /// Show the token in use (any role): its id, role, grants and expiry.
    #[command(name = "self")]
    Own,
}

/// Runs a `token` subcommand.
pub fn run(args: &Args) -> ExitCode {
    let (method, path, body) = match &args.command {
        TokenCommand::Create {
            role,
            grants,
            ttl,
            description,
        } => (
            HttpMethod::POST,
            "/v1/tokens".to_owned(),
            Some(json!({
                "role": role,
                "grants": grants,
                "ttl_secs": ttl.map(|d| d.as_secs()),
                "description": description,
            })),
        ),
        TokenCommand::List => (HttpMethod::GET, "/v1/tokens".to_owned(), None),
        TokenCommand::Own => (HttpMethod::GET, "/v1/tokens/self".to_owned(), None),
        TokenCommand::Revoke { id: None, .. } => {
            (HttpMethod::DELETE, "/v1/tokens/self".to_owned(), None)
        }
        TokenCommand::Revoke { id: Some(id), .. } => {
            if !fipsguard_core::auth::is_token_id(id) {
                // Not repeated: it may be a whole token, pasted by mistake.
                return super::fail(format!(
                    "not a token id: a token id is the 16 hex characters after \"{}\" (not the whole token)",
                    fipsguard_core::auth::TOKEN_PREFIX
                ));
            }
            (HttpMethod::DELETE, format!("/v1/tokens/{id}"), None)
        }
    };
    call_and_show(
        &args.server,
        &args.output,
        method,
        &path,
        body,
        write_fields,
    )
}

/// `KEYS:OP,OP` into the API's grant object.
fn parse_grant(text: &str) -> Result<Value, String> {
    let (keys, operations) = text
        .split_once(':')
        .ok_or("a grant is KEYS:OP,OP (e.g. payments:encrypt,decrypt)")?;
    let operations: Vec<&str> = operations.split(',').filter(|op| !op.is_empty()).collect();
    if keys.is_empty() || operations.is_empty() {
        return Err("a grant names keys and at least one operation".into());
    }
    Ok(json!({ "keys": keys, "operations": operations }))
}
