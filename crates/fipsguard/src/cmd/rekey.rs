//! `fipsguard rekey`: change the root key of a configuration's store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use fipsguard_audit::{AuditLog, Event, Outcome};
use fipsguard_core::root::{RootKekSource, UnboundValues};
use fipsguard_crypto::secret::constant_time_eq;
use fipsguard_crypto::SecretBytes;
use fipsguard_server::config::{Config, RootKeyConfig};

/// Flags of `fipsguard rekey`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("new").required(true).args(["new_key_file", "new_passphrase_env", "new_passphrase_prompt"])))]
pub struct Args {
    /// The server's configuration file (TOML), naming the root key in use.
    #[arg(long, env = "FIPSGUARD_CONFIG")]
    config: PathBuf,
    /// The new root key: a key file, created (mode 0600) if it does not exist.
    #[arg(long)]
    new_key_file: Option<PathBuf>,
    /// The new root key: a passphrase, read from this environment variable.
    #[arg(long)]
    new_passphrase_env: Option<String>,
    /// The new root key: a passphrase, typed twice at the terminal (not
    /// echoed).
    #[arg(long)]
    new_passphrase_prompt: bool,
    /// Bind a store an earlier release wrote, whose values are not bound
    /// to their place (once, when upgrading; docs/key-ceremony.md).
    #[arg(long)]
    bind_earlier_release: bool,
}

/// Wraps every key of the store again under the new root key, in one
/// transaction, with an `intent` audit record before and its outcome
/// after. Every node must be stopped first (docs/key-ceremony.md). A store
/// an earlier release wrote, whose values are not bound to their place,
/// is opened as it is and comes out bound.
pub async fn run(args: &Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return super::fail(e),
    };
    let (kms, store) = match config
        .open_kms_to_rekey(if args.bind_earlier_release {
            UnboundValues::AcceptToRebind
        } else {
            UnboundValues::Refuse
        })
        .await
    {
        Ok((kms, store)) => (Arc::new(kms), store),
        Err(e) => return super::fail(e),
    };
    let passphrase = match new_passphrase(args) {
        Ok(passphrase) => passphrase,
        Err(e) => return super::fail(e),
    };
    let audit = match super::open_audit(&config, &kms).await {
        Ok(Some(audit)) => Some(audit),
        Ok(None) => {
            eprintln!("the audit log is off in this configuration: the change is not recorded");
            None
        }
        Err(e) => return super::fail(e),
    };
    let source = if passphrase.is_some() {
        "passphrase"
    } else {
        "key_file"
    };
    let binds_earlier_release = kms.binds_earlier_release();
    let event = |outcome, versions, error| Event::RootKeyChange {
        store: store.to_owned(),
        source: source.to_owned(),
        binds_earlier_release,
        outcome,
        versions,
        error,
    };
    // Durable before the change, so that no change goes unrecorded.
    if let Err(e) = record(audit.as_ref(), event(Outcome::Intent, None, None)).await {
        return super::fail(format!("{e}: the root key was not changed"));
    }
    let new = match passphrase {
        Some(passphrase) => Ok(RootKekSource::Passphrase(passphrase)),
        None => {
            let key_file = RootKeyConfig {
                file: args.new_key_file.clone(),
                passphrase_env: None,
            };
            super::create_root_key_file(&key_file).and_then(|()| key_file.source())
        }
    };
    let changed = match new {
        Ok(new) => kms.change_root_key(&new).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let outcome = match &changed {
        Ok(versions) => event(Outcome::Success, Some(*versions), None),
        Err(e) => event(Outcome::Failure, None, Some(e.clone())),
    };
    let recorded = record(audit.as_ref(), outcome).await;
    let closed = match &audit {
        Some(log) => log.close().await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    if let (Ok(()), Err(e)) = (&recorded, &closed) {
        eprintln!(
            "fipsguard: the outcome is in the audit log, but the log did not close cleanly: {e}"
        );
    }
    conclude(changed, recorded)
}

/// The new passphrase, if the new root key is one: had, and checked,
/// before the audit log is opened, since entries that differ, a variable
/// not set or a passphrase too short are slips, not changes attempted.
fn new_passphrase(args: &Args) -> Result<Option<SecretBytes>, String> {
    let passphrase = match (&args.new_passphrase_env, args.new_passphrase_prompt) {
        (_, true) => passphrase_typed_twice(),
        (Some(var), false) => fipsguard_server::config::passphrase_from(var),
        (None, false) => return Ok(None),
    }
    .map_err(|e| format!("{e}: the root key was not changed"))?;
    // Its refusal says already that nothing was changed.
    fipsguard_core::root::check_passphrase(&passphrase).map_err(|e| e.to_string())?;
    Ok(Some(passphrase))
}

/// The new passphrase, typed twice at the terminal without echo: a root
/// key typed wrongly once, and never again, would lock the store for good.
/// (rpassword's own buffers, grown a character at a time, are out of
/// reach; what it returns is moved, not copied, into `SecretBytes`.)
fn passphrase_typed_twice() -> Result<SecretBytes, String> {
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(|typed| SecretBytes::new(typed.into_bytes()))
            .map_err(|e| format!("--new-passphrase-prompt reads from a terminal: {e}"))
    };
    let first = read("new root key passphrase: ")?;
    let again = read("the same again: ")?;
    if !constant_time_eq(first.expose_secret(), again.expose_secret()) {
        return Err("the two passphrases typed differ".into());
    }
    Ok(first)
}

/// What the operator is told, by whether the key changed and whether its
/// outcome reached the audit log.
fn conclude(changed: Result<u64, String>, recorded: Result<(), String>) -> ExitCode {
    match conclusion(changed, recorded) {
        Ok(said) => {
            eprintln!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(e),
    }
}

/// [`conclude`]'s words: a success, or the failure (which must say
/// whether the key changed, above all when the log missed it).
fn conclusion(
    changed: Result<u64, String>,
    recorded: Result<(), String>,
) -> Result<String, String> {
    match (changed, recorded) {
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(unrecorded)) => Err(format!(
            "{e} (and its outcome is not in the audit log: {unrecorded})"
        )),
        (Ok(_), Err(e)) => Err(format!(
            "{e}: the root key WAS changed, but its outcome is not in the audit log (its intent is)"
        )),
        (Ok(versions), Ok(())) => Ok(format!(
            "root key changed: {versions} key version(s) wrapped again under the new key. \
             Point [root_key] at the new key before starting any node; keep the old key \
             as long as copies of the store made under it are kept"
        )),
    }
}

/// Records `event` durably in the log, if there is one.
async fn record(audit: Option<&AuditLog>, event: Event) -> Result<(), String> {
    match audit {
        Some(log) => log.record(event).await.map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::conclusion;

    #[test]
    fn the_operator_is_told_whether_the_key_changed_whatever_the_log_did() {
        let failed = || Err::<u64, _>("the store refused".to_owned());
        let unlogged = || Err::<(), _>("disk full".to_owned());
        assert_eq!(
            conclusion(failed(), Ok(())),
            Err("the store refused".into())
        );
        let both = conclusion(failed(), unlogged()).unwrap_err();
        assert!(
            both.contains("the store refused") && both.contains("not in the audit log: disk full")
        );
        let changed_unlogged = conclusion(Ok(3), unlogged()).unwrap_err();
        assert!(
            changed_unlogged.contains("the root key WAS changed")
                && changed_unlogged.contains("disk full"),
            "{changed_unlogged}"
        );
        let changed = conclusion(Ok(3), Ok(())).unwrap();
        assert!(
            changed.contains("3 key version(s) wrapped again"),
            "{changed}"
        );
    }
}
