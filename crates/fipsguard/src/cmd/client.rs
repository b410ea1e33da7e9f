//! What every command that talks to a server takes: its address, the CA
//! to trust and a token (from flags, the environment, or a client
//! configuration file, in that order), and how to show the answer.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fipsguard_client::{Client, ClientError, HttpMethod};
use fipsguard_crypto::SecretBytes;
use serde_json::Value;

/// The server used when neither a flag, the environment nor a
/// configuration file names one: a local development server.
const DEFAULT_ADDR: &str = "https://127.0.0.1:8443";

/// How to reach a fipsguard server.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// The server's URL [default: from the client configuration, else https://127.0.0.1:8443].
    #[arg(long = "addr", env = "FIPSGUARD_ADDR", global = true)]
    addr: Option<String>,
    /// PEM file of the CA that signed the server's certificate [default: the system's CAs].
    #[arg(long = "cacert", env = "FIPSGUARD_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// The bearer token (prefer the environment or a token file: a flag shows in the process list).
    #[arg(
        long = "token",
        env = "FIPSGUARD_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Client configuration (TOML: addr, cacert, token_file) [default: ~/.config/fipsguard/client.toml if present].
    #[arg(long = "client-config", env = "FIPSGUARD_CLIENT_CONFIG", global = true)]
    client_config: Option<PathBuf>,
}

/// The client configuration file: defaults for the flags above.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClientConfig {
    addr: Option<String>,
    cacert: Option<PathBuf>,
    /// A file holding the token (kept out of the configuration itself, so
    /// the configuration can be shared).
    token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// A client for the server.
    pub fn client(&self) -> Result<Client, ClientError> {
        let config = self.config()?;
        let addr = self
            .addr
            .clone()
            .or(config.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let cacert = self.cacert.clone().or(config.cacert);
        let token = match (&self.token, &config.token_file) {
            (Some(token), _) => Some(SecretBytes::copy_from(token.trim().as_bytes())),
            (None, Some(file)) => Some(read_token_file(file)?),
            (None, None) => None,
        };
        Client::new(&addr, cacert.as_deref(), token)
    }

    fn config(&self) -> Result<ClientConfig, ClientError> {
        let path = match &self.client_config {
            Some(path) => path.clone(),
            None => match default_config_path().filter(|p| p.exists()) {
                Some(path) => path,
                None => return Ok(ClientConfig::default()),
            },
        };
        let setup = |why: String| ClientError::Setup(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| setup(e.to_string()))?;
        toml::from_str(&text).map_err(|e| setup(e.message().to_owned()))
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("fipsguard/client.toml"))
}

fn read_token_file(path: &Path) -> Result<SecretBytes, ClientError> {
    let bytes = SecretBytes::new(std::fs::read(path).map_err(|e| {
        ClientError::Setup(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| {
        ClientError::Setup(format!("the token file {} is not text", path.display()))
    })?;
    Ok(SecretBytes::copy_from(text.trim().as_bytes()))
}

/// How a command shows what the server answered.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Print the server's answer as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl OutputArgs {
    /// Prints `answer`: as JSON, or for people through `human`.
    pub fn show(
        &self,
        answer: &Value,
        human: impl FnOnce(&mut dyn Write, &Value) -> io::Result<()>,
    ) -> ExitCode {
        super::emit(
            |out| match self.json {
                true => super::write_json(out, answer),
                false => human(out, answer),
            },
            ExitCode::SUCCESS,
        )
    }
}

/// Runs one API call; a refusal goes to stderr with the server's code and
/// message, and becomes exit 1.
pub fn call(
    server: &ServerArgs,
    method: HttpMethod,
    path: &str,
    body: Option<Value>,
) -> Result<Value, ExitCode> {
    super::runtime()
        .block_on(async { server.client()?.call(method, path, body.as_ref()).await })
        .map_err(super::fail)
}

/// Runs one API call and shows its answer.
pub fn call_and_show(
    server: &ServerArgs,
    output: &OutputArgs,
    method: HttpMethod,
    path: &str,
    body: Option<Value>,
    human: impl FnOnce(&mut dyn Write, &Value) -> io::Result<()>,
) -> ExitCode {
    match call(server, method, path, body) {
        Ok(answer) => output.show(&answer, human),
        Err(code) => code,
    }
}

/// One `--context key=value` (a clap value parser: a malformed one is a
/// usage error, exit 2).
pub fn context_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("--context takes key=value, not {text:?}"))
}

/// A key name (a clap value parser: exit 2 before anything is sent).
pub fn key_name(text: &str) -> Result<String, String> {
    fipsguard_client::path_segment(text)
        .map(str::to_owned)
        .map_err(|e| e.to_string())
}

/// The `--context` pairs as one context; a key named twice is refused.
pub fn context_pairs(pairs: &[(String, String)]) -> Result<BTreeMap<String, String>, String> {
    let mut context = BTreeMap::new();
    for (key, value) in pairs {
        if context.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("--context names {key:?} twice"));
        }
    }
    Ok(context)
}

/// The `/v1/keys/NAME…` path of a key, with the name checked.
pub fn key_path(name: &str, rest: &str) -> Result<String, ClientError> {
    Ok(format!(
        "/v1/keys/{}{rest}",
        fipsguard_client::path_segment(name)?
    ))
}

/// Writes an answer for people: one `field: value` line per field,
/// nested objects indented, lists one item after another.
pub fn write_fields(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    write_indented(out, value, 0)
}

fn write_indented(out: &mut dyn Write, value: &Value, depth: usize) -> io::Result<()> {
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match field {
                    Value::Object(_) | Value::Array(_) if !is_flat(field) => {
                        writeln!(out, "{pad}{name}:")?;
                        write_indented(out, field, depth + 1)?;
                    }
                    _ => writeln!(out, "{pad}{name}: {}", scalar(field))?,
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 && depth == 0 {
                    writeln!(out)?;
                }
                match item {
                    Value::Object(_) => write_indented(out, item, depth)?,
                    _ => writeln!(out, "{pad}- {}", scalar(item))?,
                }
            }
            Ok(())
        }
        _ => writeln!(out, "{pad}{}", scalar(value)),
    }
}

/// Empty containers and lists of plain values fit on one line.
fn is_flat(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|i| !i.is_object() && !i.is_array()),
        Value::Object(fields) => fields.is_empty(),
        _ => true,
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(_) => "{}".to_owned(),
        other => other.to_string(),
    }
}
