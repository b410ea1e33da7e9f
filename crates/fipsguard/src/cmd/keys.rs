//! `fipsguard key …`: a server's keys and their lifecycle (officer).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use fipsguard_client::HttpMethod;
use serde_json::{json, Value};

use super::client::{call_and_show, key_name, key_path, write_fields, OutputArgs, ServerArgs};

/// Flags of `fipsguard key`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Create a key.
    Create {
        /// 1-64 of A-Z a-z 0-9 _ . -, not . or .., not starting with fgt. (the tokens' prefix)
        #[arg(value_parser = key_name)]
        name: String,
        /// aes256-gcm, hmac-sha256|384|512, ecdsa-p256|p384, rsa-2048|3072|4096, ed25519.
        #[arg(long = "type", default_value = "aes256-gcm")]
        key_type: String,
        /// Create it pre-active; `key activate` makes it usable.
        #[arg(long)]
        pre_active: bool,
        /// Its material may be exported (fixed at creation).
        #[arg(long)]
        exportable: bool,
        /// Cryptoperiod, e.g. 90d or 12h (at least 1h).
        #[arg(long, value_parser = humantime::parse_duration)]
        rotate_every: Option<Duration>,
    },
    /// List keys (officer, auditor).
    List,
    /// Show a key's metadata.
    Show {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
    /// Add a version; new encryptions and signatures use it.
    Rotate {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
    /// Change the minimum decryption version or the cryptoperiod.
    Config {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
        /// Versions below this no longer decrypt or verify.
        #[arg(long)]
        min_decryption_version: Option<u32>,
        /// Cryptoperiod, e.g. 90d; 0s removes it.
        #[arg(long, value_parser = humantime::parse_duration)]
        rotate_every: Option<Duration>,
    },
    /// Pre-active to active.
    Activate {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
    /// Stop encrypting and signing with it; it still decrypts and verifies.
    Deactivate {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
    /// Mark it compromised: it still decrypts and verifies, to recover data.
    Compromise {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
    /// Schedule its destruction (or destroy it at once with --now).
    Destroy {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
        /// Days until destruction, 1-30 [default: 7].
        #[arg(long, conflicts_with = "now")]
        days: Option<u32>,
        /// Destroy every version's material now; it cannot be undone.
        #[arg(long)]
        now: bool,
    },
    /// Cancel a scheduled destruction.
    CancelDestroy {
        /// The key.
        #[arg(value_parser = key_name)]
        name: String,
    },
}

/// Runs a `key` subcommand.
pub fn run(args: &Args) -> ExitCode {
    if matches!(args.command, KeyCommand::List) {
        return list(args);
    }
    match request(&args.command) {
        Ok((method, path, body)) => call_and_show(
            &args.server,
            &args.output,
            method,
            &path,
            body,
            write_fields,
        ),
        Err(e) => super::fail(e),
    }
}

type Request = (HttpMethod, String, Option<Value>);

/// The API call a subcommand makes.
fn request(command: &KeyCommand) -> Result<Request, fipsguard_client::ClientError> {
    use KeyCommand::*;
    let post = |name: &str, action: &str| -> Result<Request, _> {
        Ok((HttpMethod::POST, key_path(name, action)?, None))
    };
    match command {
        Create {
            name,
            key_type,
            pre_active,
            exportable,
            rotate_every,
        } => Ok((
            HttpMethod::POST,
            "/v1/keys".to_owned(),
            Some(json!({
                "name": name,
                "type": key_type,
                "active": !pre_active,
                "exportable": exportable,
                "rotate_every_secs": rotate_every.map(|d| d.as_secs()),
            })),
        )),
        List => unreachable!("a listing is read page by page (list)"),
        Show { name } => Ok((HttpMethod::GET, key_path(name, "")?, None)),
        Rotate { name } => post(name, "/rotate"),
        Config {
            name,
            min_decryption_version,
            rotate_every,
        } => Ok((
            HttpMethod::POST,
            key_path(name, "/config")?,
            Some(json!({
                "min_decryption_version": min_decryption_version,
                "rotate_every_secs": rotate_every.map(|d| d.as_secs()),
            })),
        )),
        Activate { name } => post(name, "/activate"),
        Deactivate { name } => post(name, "/deactivate"),
        Compromise { name } => post(name, "/compromise"),
        Destroy {
            name, now: true, ..
        } => post(name, "/destroy-now"),
        Destroy { name, days, .. } => Ok((
            HttpMethod::POST,
            key_path(name, "/destroy")?,
            Some(json!({ "days": days })),
        )),
        CancelDestroy { name } => Ok((HttpMethod::DELETE, key_path(name, "/destroy")?, None)),
    }
}

/// Every page of the listing, then one table (or one JSON list).
fn list(args: &Args) -> ExitCode {
    let keys = super::runtime().block_on(async {
        let client = args.server.client()?;
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(name) => format!("/v1/keys?limit=1000&after={name}"),
                None => "/v1/keys?limit=1000".to_owned(),
            };
            let mut page = client.call(HttpMethod::GET, &path, None).await?;
            if let Some(Value::Array(batch)) = page.get_mut("keys").map(Value::take) {
                keys.extend(batch);
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok::<_, fipsguard_client::ClientError>(keys),
            }
        }
    });
    match keys {
        Ok(keys) => args.output.show(&json!({ "keys": keys }), write_table),
        Err(e) => super::fail(e),
    }
}

fn write_table(out: &mut dyn Write, answer: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{:<32} {:<12} {:<12} {:>7}  ROTATION",
        "NAME", "TYPE", "STATE", "VERSION"
    )?;
    for key in answer["keys"].as_array().into_iter().flatten() {
        let text = |field: &str| key[field].as_str().unwrap_or("-").to_owned();
        let rotation = if key["rotation_overdue"] == true {
            "overdue"
        } else {
            "ok"
        };
        writeln!(
            out,
            "{:<32} {:<12} {:<12} {:>7}  {rotation}",
            text("name"),
            text("key_type"),
            text("state"),
            key["latest_version"].to_string()
        )?;
    }
    Ok(())
}
