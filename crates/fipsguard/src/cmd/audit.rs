//! `fipsguard audit verify`: checks an audit log with the audit public key
//! alone. Exit 0 when it verifies, 1 at the first bad record, 2 when the
//! command cannot run (unreadable key, bad flags).

use std::path::PathBuf;
use std::process::ExitCode;

use fipsguard_audit::CheckpointId;
use fipsguard_crypto::tls::rustls::pki_types::pem::PemObject;
use fipsguard_crypto::tls::rustls::pki_types::SubjectPublicKeyInfoDer;

/// Flags of `fipsguard audit`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Verify the hash chain and checkpoint signatures of an audit log.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// A segment file (audit-*.jsonl), or the directory that holds them.
    #[arg(long)]
    log: PathBuf,
    /// The audit public key, PEM (`GET /v1/keys/fipsguard-audit/public-key`);
    /// repeat it for each version of a rotated audit key.
    #[arg(long = "public-key", required = true)]
    public_keys: Vec<PathBuf>,
    /// Fail unless the log holds this checkpoint, SEQ:HASH as `GET
    /// /v1/status` showed it (`audit.checkpoint`) and you kept it elsewhere:
    /// shows that no records were removed since.
    #[arg(long, value_name = "SEQ:HASH")]
    expect_checkpoint: Option<CheckpointId>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `fipsguard audit …`.
pub fn run(args: &Args) -> ExitCode {
    let Command::Verify(args) = &args.command;
    let mut keys = Vec::new();
    for path in &args.public_keys {
        match SubjectPublicKeyInfoDer::from_pem_file(path) {
            Ok(key) => keys.push(key.as_ref().to_vec()),
            Err(e) => {
                eprintln!(
                    "fipsguard: cannot read the public key {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    let result = match &args.expect_checkpoint {
        None => fipsguard_audit::verify(&args.log, &keys),
        Some(checkpoint) => fipsguard_audit::verify_holding(&args.log, &keys, checkpoint),
    };
    let code = if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    super::emit(
        |out| match (&result, args.json) {
            (Ok(report), true) => super::write_json(out, &serde_json::json!({ "ok": report })),
            (Err(failure), true) => {
                super::write_json(out, &serde_json::json!({ "failed": failure }))
            }
            (Ok(report), false) => {
                writeln!(
                    out,
                    "audit log verified: {} file(s), {} records ({}-{}), {} signed checkpoints",
                    report.files.len(),
                    report.records,
                    report.first_seq,
                    report.last_seq,
                    report.checkpoints
                )?;
                for note in &report.notes {
                    writeln!(out, "note: {note}")?;
                }
                Ok(())
            }
            (Err(failure), false) => writeln!(out, "audit log FAILED verification at {failure}"),
        },
        code,
    )
}
