//! `fipsguard encrypt-data | decrypt-data | sign | verify | mac | random`:
//! one API call each, on small data from an argument, a file or stdin.
//! Files of any size go through `fipsguard encrypt`.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fipsguard_client::HttpMethod;
use fipsguard_crypto::digest::{HashAlgorithm, Hasher};
use fipsguard_crypto::SecretBytes;
use serde_json::{json, Value};

use super::client::{
    call, call_and_show, context_pair, context_pairs, key_name, key_path, write_fields, OutputArgs,
    ServerArgs,
};

/// Most bytes sent in one request: its base64 must fit the server's
/// default body limit of 1 MiB.
const MAX_INPUT: u64 = 512 << 10;

/// Most bytes of plaintext the server encrypts in one request: refused
/// here before anything is sent.
const MAX_PLAINTEXT: u64 = fipsguard_core::kms::MAX_PLAINTEXT as u64;

/// Flags shared by the commands on one key.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// The server key.
    #[arg(long, value_parser = key_name)]
    key: String,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Flags of `fipsguard encrypt-data`.
#[derive(clap::Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Encryption context, bound to the ciphertext (key=value; repeat).
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = context_pair)]
    context: Vec<(String, String)>,
    /// The plaintext's file, or - for stdin (the server takes at most 64 KiB;
    /// `fipsguard encrypt` seals files of any size).
    #[arg(default_value = "-")]
    input: String,
}

/// Flags of `fipsguard decrypt-data`.
#[derive(clap::Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The encryption context it was encrypted with.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = context_pair)]
    context: Vec<(String, String)>,
    /// The ciphertext (fg:v…), or - to read it from stdin.
    #[arg(default_value = "-")]
    ciphertext: String,
}

/// Flags of `fipsguard sign` and `fipsguard verify`.
#[derive(clap::Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Signature scheme, e.g. rsa-pss-sha256 [default: the key type's].
    #[arg(long)]
    scheme: Option<String>,
    /// Hash the input here (sha-256, sha-384 or sha-512) and send only its
    /// digest: for inputs of any size. Not for Ed25519.
    #[arg(long, value_parser = ["sha-256", "sha-384", "sha-512"])]
    hash: Option<String>,
    /// The file to sign or verify, or - for stdin.
    #[arg(default_value = "-")]
    input: String,
}

/// Flags of `fipsguard verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    sign: SignArgs,
    /// The signature, base64.
    #[arg(long)]
    signature: String,
    /// The key version that signed.
    #[arg(long)]
    version: u32,
}

/// Flags of `fipsguard mac`.
#[derive(clap::Args)]
pub struct MacArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The data's file, or - for stdin (at most 512 KiB).
    #[arg(default_value = "-")]
    input: String,
}

/// Flags of `fipsguard random`.
#[derive(clap::Args)]
pub struct RandomArgs {
    /// How many bytes, 1-1024.
    bytes: usize,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Encrypts small data under a server key; prints the ciphertext.
pub fn encrypt(args: &EncryptArgs) -> ExitCode {
    let body = read_input(&args.input, MAX_PLAINTEXT).and_then(|plaintext| {
        Ok(json!({
            "plaintext": STANDARD.encode(plaintext.expose_secret()),
            "context": context_pairs(&args.context)?,
        }))
    });
    on_key(&args.key, "/encrypt", body, |out, answer| {
        writeln!(out, "{}", answer["ciphertext"].as_str().unwrap_or_default())
    })
}

/// Decrypts a ciphertext; writes the plaintext's bytes to stdout.
pub fn decrypt(args: &DecryptArgs) -> ExitCode {
    let body = read_text(&args.ciphertext).and_then(|ciphertext| {
        Ok(json!({
            "ciphertext": ciphertext.trim(),
            "context": context_pairs(&args.context)?,
        }))
    });
    on_key(&args.key, "/decrypt", body, |out, answer| {
        let plaintext = STANDARD
            .decode(answer["plaintext"].as_str().unwrap_or_default())
            .map(SecretBytes::new)
            .map_err(|_| io::Error::other("the server's plaintext is not base64"))?;
        out.write_all(plaintext.expose_secret())
    })
}

/// Signs; prints the signature (base64) and the version that made it.
pub fn sign(args: &SignArgs) -> ExitCode {
    let body = sign_input(args);
    on_key(&args.key, "/sign", body, write_fields)
}

/// Verifies; exit 0 when the signature is valid, 1 when it is not.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let key = &args.sign.key;
    let request = sign_input(&args.sign).and_then(|mut body| {
        body["signature"] = json!(args.signature.trim());
        body["version"] = json!(args.version);
        Ok((
            key_path(&key.key, "/verify").map_err(|e| e.to_string())?,
            body,
        ))
    });
    let (path, body) = match request {
        Ok(request) => request,
        Err(e) => return super::fail(e),
    };
    match call(&key.server, HttpMethod::POST, &path, Some(body)) {
        Ok(answer) => {
            let valid = answer["valid"] == true;
            let shown = key.output.show(&answer, |out, _| {
                writeln!(out, "{}", if valid { "valid" } else { "INVALID" })
            });
            if valid {
                shown
            } else {
                ExitCode::FAILURE
            }
        }
        Err(code) => code,
    }
}

/// Computes a MAC; prints the tag (base64) and the version.
pub fn mac(args: &MacArgs) -> ExitCode {
    let body = read_input(&args.input, MAX_INPUT)
        .map(|data| json!({ "data": STANDARD.encode(data.expose_secret()) }));
    on_key(&args.key, "/mac", body, write_fields)
}

/// Random bytes from the server's DRBG, base64.
pub fn random(args: &RandomArgs) -> ExitCode {
    call_and_show(
        &args.server,
        &args.output,
        HttpMethod::POST,
        "/v1/random",
        Some(json!({ "bytes": args.bytes })),
        |out, answer| writeln!(out, "{}", answer["random"].as_str().unwrap_or_default()),
    )
}

/// POSTs `body` to one of the key's operations and shows the answer.
fn on_key(
    key: &KeyArgs,
    operation: &str,
    body: Result<Value, String>,
    human: impl FnOnce(&mut dyn Write, &Value) -> io::Result<()>,
) -> ExitCode {
    let path = key_path(&key.key, operation).map_err(|e| e.to_string());
    match body.and_then(|body| Ok((path?, body))) {
        Ok((path, body)) => call_and_show(
            &key.server,
            &key.output,
            HttpMethod::POST,
            &path,
            Some(body),
            human,
        ),
        Err(e) => super::fail(e),
    }
}

/// The message to sign or verify, or with `--hash` its digest.
fn sign_input(args: &SignArgs) -> Result<Value, String> {
    let mut body = json!({ "scheme": args.scheme });
    match &args.hash {
        None => {
            let message = read_input(&args.input, MAX_INPUT)?;
            body["message"] = json!(STANDARD.encode(message.expose_secret()));
        }
        Some(hash) => {
            let algorithm = HashAlgorithm::for_signing(hash)
                .ok_or_else(|| format!("--hash takes sha-256, sha-384 or sha-512, not {hash:?}"))?;
            body["digest"] = json!(STANDARD.encode(hash_input(&args.input, algorithm)?));
            body["hash"] = json!(hash);
        }
    }
    Ok(body)
}

/// A file, or stdin for `-`.
fn open_input(path: &str) -> Result<Box<dyn Read>, String> {
    match path {
        "-" => Ok(Box::new(io::stdin().lock())),
        _ => std::fs::File::open(Path::new(path))
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| format!("cannot read {path}: {e}")),
    }
}

/// The digest of a file (or stdin), read in pieces.
fn hash_input(path: &str, algorithm: HashAlgorithm) -> Result<Vec<u8>, String> {
    let mut hasher = Hasher::new(algorithm).map_err(|e| e.to_string())?;
    io::copy(&mut open_input(path)?, &mut hasher)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    hasher.finish().map_err(|e| e.to_string())
}

/// The bytes of a file, or of stdin for `-`, refused above `limit`.
fn read_input(path: &str, limit: u64) -> Result<SecretBytes, String> {
    let mut bytes = Vec::new();
    open_input(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let bytes = SecretBytes::new(bytes);
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{path} is larger than {} KiB, the most this request carries; use `fipsguard encrypt` for files, or --hash to sign a digest",
            limit >> 10
        ));
    }
    Ok(bytes)
}

/// A short text argument, or stdin for `-`.
fn read_text(value: &str) -> Result<String, String> {
    match value {
        "-" => {
            let bytes = read_input("-", MAX_INPUT)?;
            String::from_utf8(bytes.expose_secret().to_vec())
                .map_err(|_| "the ciphertext on stdin is not text".to_owned())
        }
        text => Ok(text.to_owned()),
    }
}
