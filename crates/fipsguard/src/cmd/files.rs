//! `fipsguard encrypt` and `fipsguard decrypt`: envelope encryption of
//! files. The server makes one data key per file and wraps it under a
//! server key; the file itself is sealed here, in chunks, and never leaves
//! the machine (format: `fipsguard_core::file_format`, docs/file-format.md).

use std::ffi::c_int;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use fipsguard_core::ciphertext;
use fipsguard_core::file_format::{decrypt_stream, encrypt_stream, FileHeader, DEFAULT_CHUNK_SIZE};
use fipsguard_core::EncryptionContext;
use fipsguard_crypto::aead::Aes256GcmKey;
use indicatif::{ProgressBar, ProgressStyle};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tempfile::NamedTempFile;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::client::{context_pair, context_pairs, key_name, ServerArgs};

/// Files smaller than this finish before a progress bar would be read.
const PROGRESS_THRESHOLD: u64 = 8 << 20;

/// Flags of `fipsguard encrypt`.
#[derive(clap::Args)]
pub struct EncryptArgs {
    /// The server key that wraps the file's data key.
    #[arg(long, value_parser = key_name)]
    key: String,
    /// Encryption context, bound to the data key (key=value; repeat). Not
    /// secret: it is stored in the file's header.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = context_pair)]
    context: Vec<(String, String)>,
    #[command(flatten)]
    files: FileArgs,
}

/// Flags of `fipsguard decrypt`.
#[derive(clap::Args)]
pub struct DecryptArgs {
    /// The server key the file must be encrypted under [default: the one
    /// its header names]. Give it for files from elsewhere: the header
    /// otherwise decides which of your keys is asked to unwrap.
    #[arg(long, value_parser = key_name)]
    key: Option<String>,
    /// The encryption context the file must have been encrypted with
    /// [default: the one in its header].
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = context_pair)]
    context: Vec<(String, String)>,
    /// The file must have been encrypted without a context: pins the
    /// empty one, as --context pins others.
    #[arg(long, conflicts_with = "context")]
    no_context: bool,
    #[command(flatten)]
    files: FileArgs,
}

/// Input, output, and what to show.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The file to read, or - for stdin.
    input: String,
    /// The file to write, or - for stdout. It appears only once complete.
    output: String,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Encrypts a file under a new data key from the server.
pub fn encrypt(args: &EncryptArgs) -> ExitCode {
    let result = (|| {
        refuse_special(&args.files.output)?;
        let context = context_pairs(&args.context)?;
        // Opened first: a wrong path costs no data key (and no audit record).
        let (input, size) = open_input(&args.files.input)?;
        let context = EncryptionContext::new(context).map_err(|e| e.to_string())?;
        let client = args.files.server.client().map_err(|e| e.to_string())?;
        let (data_key, wrapped_key) = super::runtime()
            .block_on(client.data_key(&args.key, context.pairs()))
            .map_err(|e| e.to_string())?;
        let header = FileHeader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            key_name: args.key.clone(),
            key_version: ciphertext::key_version(&wrapped_key)
                .ok_or("the server's data key is not a fipsguard ciphertext")?,
            wrapped_key,
            context,
        };
        let data_key = Aes256GcmKey::new(data_key.expose_secret()).map_err(|e| e.to_string())?;
        let progress = progress_bar(&args.files, size);
        write_output(&args.files.output, |output| {
            encrypt_stream(&header, &data_key, input, output, &|n| progress.inc(n))
                .map_err(|e| e.to_string())
        })?;
        progress.finish_and_clear();
        Ok::<_, String>(())
    })();
    done(result, "encrypt", &args.files.input)
}

/// Decrypts a file made by `fipsguard encrypt`, with its data key
/// unwrapped by the server.
pub fn decrypt(args: &DecryptArgs) -> ExitCode {
    let result = (|| {
        refuse_special(&args.files.output)?;
        let (mut input, size) = open_input(&args.files.input)?;
        let (header, header_bytes) =
            FileHeader::read_from(&mut input).map_err(|e| e.to_string())?;
        if let Some(key) = args.key.as_ref().filter(|key| **key != header.key_name) {
            return Err(format!(
                "the file is encrypted under key {:?}, not {key:?} (--key)",
                header.key_name
            ));
        }
        // The server checks the context: a different one does not unwrap.
        let context = match args.context.is_empty() && !args.no_context {
            true => header.context.pairs().clone(),
            false => context_pairs(&args.context)?,
        };
        let client = args.files.server.client().map_err(|e| e.to_string())?;
        let data_key = super::runtime()
            .block_on(client.unwrap_data_key(&header.key_name, &header.wrapped_key, &context))
            .map_err(|e| e.to_string())?;
        let data_key = Aes256GcmKey::new(data_key.expose_secret()).map_err(|e| e.to_string())?;
        let progress = progress_bar(&args.files, size);
        write_output(&args.files.output, |output| {
            decrypt_stream(&header, &header_bytes, &data_key, input, output, &|n| {
                progress.inc(n)
            })
            .map_err(|e| e.to_string())
        })?;
        progress.finish_and_clear();
        Ok::<_, String>(())
    })();
    done(result, "decrypt", &args.files.input)
}

fn done(result: Result<(), String>, verb: &str, input: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(format!("cannot {verb} {input}: {e}")),
    }
}

/// The input and its size, when it has one.
fn open_input(path: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if path == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), size))
}

/// Runs `write` on stdout, or on a temporary file beside `path` that
/// replaces `path` only when `write` succeeded: a failure (a tampered
/// chunk, a full disk, SIGINT, SIGTERM or SIGHUP) leaves nothing behind,
/// and no reader of `path` ever sees a partial or unauthenticated file. The
/// file reaches the disk before it takes the name, and the name before this
/// returns, so a crash right after leaves the whole file or the old one.
fn write_output<W>(
    path: &str,
    write: impl FnOnce(Box<dyn Write + Send>) -> Result<W, String>,
) -> Result<(), String> {
    if path == "-" {
        write(Box::new(io::stdout()))?;
        return Ok(());
    }
    let target = PathBuf::from(path);
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let partial = Partial::watch()?;
    // Owner-only (it holds a plaintext or a file under a key), unless it
    // replaces a file whose permissions it then takes over.
    let temp = partial.create_in(&dir)?;
    let cannot_write = |e: io::Error| format!("cannot write {}: {e}", temp.path().display());
    let filled = (|| {
        write(Box::new(temp.as_file().try_clone().map_err(cannot_write)?))?;
        if let Ok(replaced) = std::fs::metadata(&target) {
            temp.as_file()
                .set_permissions(replaced.permissions())
                .map_err(cannot_write)?;
        }
        temp.as_file().sync_all().map_err(cannot_write)
    })();
    if let Err(e) = filled {
        partial.abandon(temp);
        return Err(e);
    }
    partial.complete(temp, &target)?;
    sync_directory(&dir, path)
}

/// The output replaces `path` by a rename: one that is a link, a device or
/// a pipe would be replaced, not written to (`/dev/stdout` run as root
/// would lose its link, and the plaintext would land in `/dev`). Checked
/// before the server is asked for anything.
fn refuse_special(path: &str) -> Result<(), String> {
    if path == "-" {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(format!(
            "{path} is not a regular file (a link, directory, device or pipe): give - to write to stdout"
        )),
        _ => Ok(()),
    }
}

/// Makes the output's new name durable. Failing to sync a directory that
/// could be opened is an error (the name may not survive a crash); a
/// directory that cannot be opened (write-only drop boxes) or a file
/// system that cannot sync directories leaves only a warning.
fn sync_directory(dir: &Path, path: &str) -> Result<(), String> {
    let warn = |e: io::Error| {
        eprintln!(
            "fipsguard: warning: {path} is complete, but its directory cannot be synced: {e}"
        );
        Ok(())
    };
    let directory = match File::open(dir) {
        Ok(directory) => directory,
        Err(e) => return warn(e),
    };
    match directory.sync_all() {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
            ) =>
        {
            warn(e)
        }
        Err(e) => Err(format!(
            "{path} is complete, but its name may not survive a crash: cannot sync {}: {e}",
            dir.display()
        )),
    }
}

/// The partial output an interrupted run removes. The signals are watched
/// before the file exists, and the file leaves this watch (under its lock)
/// as it takes its name, so a signal at any moment leaves either no file or
/// the finished one. The process then dies of the signal it received, as
/// it would have without the watch: a shell sees 128 + its number. A
/// signal ignored when the command started (`nohup`, a background job)
/// stays ignored.
struct Partial(Arc<Mutex<Option<PathBuf>>>);

const INTERRUPTS: [c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

impl Partial {
    fn watch() -> Result<Self, String> {
        let runtime = super::control_runtime();
        let ignored = ignored_at_start();
        let mut watched = Vec::new();
        for signo in INTERRUPTS
            .into_iter()
            .filter(|&signo| ignored & bit(signo) == 0)
        {
            let stream = {
                let _context = runtime.enter();
                signal(SignalKind::from_raw(signo))
            };
            let stream = stream.map_err(|e| format!("cannot watch signal {signo}: {e}"))?;
            watched.push((signo, stream));
        }
        let partial = Arc::new(Mutex::new(None::<PathBuf>));
        let shared = partial.clone();
        std::thread::spawn(move || {
            let signo = runtime.block_on(first_of(watched));
            let held = shared.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(path) = held.as_ref() {
                let _ = std::fs::remove_file(path);
            }
            die_of(signo);
        });
        Ok(Self(partial))
    }

    fn create_in(&self, dir: &Path) -> Result<NamedTempFile, String> {
        let mut held = self.lock();
        let temp = tempfile::Builder::new()
            .prefix(".fipsguard-")
            .tempfile_in(dir)
            .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
        *held = Some(temp.path().to_owned());
        Ok(temp)
    }

    /// Renames the finished file over `target` (on failure, removes it).
    fn complete(&self, temp: NamedTempFile, target: &Path) -> Result<(), String> {
        let mut held = self.lock();
        let renamed = temp.persist(target).map(drop).map_err(|e| {
            let target = target.display();
            format!("cannot move the output to {target}: {}", e.error)
        });
        *held = None;
        renamed
    }

    /// Removes the file after a failure and stops guarding its name.
    fn abandon(&self, temp: NamedTempFile) {
        let mut held = self.lock();
        drop(temp);
        *held = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<PathBuf>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first of `watched` to arrive.
async fn first_of(mut watched: Vec<(c_int, Signal)>) -> c_int {
    std::future::poll_fn(|cx| {
        for (signo, stream) in &mut watched {
            if stream.poll_recv(cx).is_ready() {
                return Poll::Ready(*signo);
            }
        }
        Poll::Pending
    })
    .await
}

/// The signals this process started with ignored, as a mask of [`bit`]s
/// (`SigIgn` in /proc/self/status); none if that cannot be read.
fn ignored_at_start() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// `signo`'s place in a kernel signal mask.
fn bit(signo: c_int) -> u64 {
    1 << (signo - 1)
}

/// Ends the process by `signo` with its default action.
fn die_of(signo: c_int) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signo);
    // Reached only for a signal the emulation does not know.
    std::process::exit(128 + signo)
}

/// A progress bar on a terminal, for inputs large enough to want one.
fn progress_bar(files: &FileArgs, size: Option<u64>) -> ProgressBar {
    let wanted = !files.quiet
        && io::stderr().is_terminal()
        && size.is_none_or(|size| size >= PROGRESS_THRESHOLD);
    if !wanted {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                .expect("a valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
