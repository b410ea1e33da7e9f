//! OpenSSL 3's FIPS provider: installed (`fips.so` and the module
//! configuration `openssl fipsinstall` writes), and active (the system
//! configuration loads it and makes `fips=yes` the default property query,
//! so applications fetch nothing else).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};

use super::openssl_conf::{Config, Entry, DEFAULT_SECTION};
use super::root::{Root, Unreadable};
use super::{Host, Rule};
use crate::{Finding, Status};

/// The system configuration, first found wins: RHEL, Debian, a source build.
const CONFIGS: [&str; 3] = [
    "/etc/pki/tls/openssl.cnf",
    "/etc/ssl/openssl.cnf",
    "/usr/local/ssl/openssl.cnf",
];

/// Where `openssl fipsinstall` is usually told to write the module configuration.
const MODULE_CONFIGS: [&str; 4] = [
    "/etc/pki/tls/fipsmodule.cnf",
    "/etc/ssl/fipsmodule.cnf",
    "/usr/lib/ssl/fipsmodule.cnf",
    "/usr/local/ssl/fipsmodule.cnf",
];

/// Library directories of source builds, besides the distribution's own.
const LOCAL_LIBRARY_DIRS: [&str; 2] = ["/usr/local/lib64", "/usr/local/lib"];

/// `host.openssl-fips-provider`.
pub(super) const PROVIDER: Rule = Rule {
    id: "host.openssl-fips-provider",
    title: "OpenSSL FIPS provider installed",
};

/// `host.openssl-fips-active`.
pub(super) const ACTIVE: Rule = Rule {
    id: "host.openssl-fips-active",
    title: "OpenSSL FIPS provider active and required by default",
};

/// `host.openssl-fips-provider`: pass when `fips.so` is installed with its
/// module configuration; warn without one (distributions that embed the
/// module checksum, as RHEL 9 does, need none); fail without `fips.so`; not
/// applicable without OpenSSL 3.
pub(super) fn provider_installed(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(openssl) = OpenSsl::inspect(&host.root)? else {
        return Ok(absent(rule));
    };
    let settings = openssl.settings();
    let module = find_module(&host.root, &settings);
    let module_config = find_module_config(&host.root, &settings);
    let status = match (&module, &module_config) {
        (Ok(_), Ok(_)) => Status::Pass,
        (Ok(_), Err(_)) => Status::Warn,
        (Err(_), _) => Status::Fail,
    };
    let [module, module_config] = [module, module_config].map(|found| found.unwrap_or_else(|e| e));
    Ok(rule
        .finding(status)
        .evidence(module)
        .evidence(module_config)
        .remediation(match status {
            Status::Warn => {
                "run openssl fipsinstall -module <fips.so> -out <OPENSSLDIR>/fipsmodule.cnf \
                 and .include it from openssl.cnf"
            }
            _ => {
                "install the OpenSSL FIPS provider (RHEL: fips-mode-setup --enable; Ubuntu: \
                 pro enable fips; a source build: ./Configure enable-fips, make install_fips)"
            }
        }))
}

/// `host.openssl-fips-active`: pass when the configuration activates the
/// fips provider and sets `default_properties = fips=yes`, or when Red
/// Hat's OpenSSL 3 does both by itself on the kernel flag. On the live
/// system `openssl` itself has the last word: `list -providers` on
/// "active", and what `dgst` fetches by default on "required". Fail
/// otherwise; not applicable without OpenSSL 3.
pub(super) fn provider_active(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(openssl) = OpenSsl::inspect(&host.root)? else {
        return Ok(absent(rule));
    };
    let settings = openssl.settings();
    let forced = forced_by_kernel(host, &settings)?;
    if openssl.config.is_none() && forced.is_none() {
        return Ok(rule
            .finding(Status::Fail)
            .evidence(format!(
                "no OpenSSL configuration ({}): only the default provider loads",
                CONFIGS.join(", ")
            ))
            .remediation(ACTIVATE));
    }
    let (activated, required) = (settings.activated(), settings.fips_required());
    let mut evidence = settings.evidence;
    let missing = openssl.config.iter().flat_map(|c| &c.missing_includes);
    evidence.extend(
        missing.map(|path| {
            format!("{path}: included but missing (OpenSSL refuses the configuration)")
        }),
    );
    let forced_on = forced.is_some();
    evidence.extend(forced);
    let live = host.root.is_live();
    let active = last_word(
        &mut evidence,
        live.then(running_providers).flatten(),
        activated || forced_on,
    );
    let required = last_word(
        &mut evidence,
        live.then(default_fetch).flatten(),
        required || forced_on,
    );
    let status = if active && required {
        Status::Pass
    } else {
        Status::Fail
    };
    let finding = evidence
        .into_iter()
        .fold(rule.finding(status), Finding::evidence);
    Ok(finding.remediation(if active { REQUIRE } else { ACTIVATE }))
}

const ACTIVATE: &str = "load the provider from openssl.cnf: [provider_sect] fips = fips_sect, \
     .include the fipsmodule.cnf that openssl fipsinstall wrote, activate = 1 \
     (RHEL: fips-mode-setup --enable)";

const REQUIRE: &str = "set default_properties = fips=yes in the alg_section of the \
     openssl_conf section, so applications fetch only FIPS algorithms";

/// What a live `openssl` answered, where it could be asked, over what the
/// configuration says.
fn last_word(evidence: &mut Vec<String>, asked: Option<(bool, String)>, configured: bool) -> bool {
    match asked {
        Some((answer, line)) => {
            evidence.push(line);
            answer
        }
        None => configured,
    }
}

/// The distributions whose OpenSSL 3 carries Red Hat's kernel FIPS patch:
/// with the kernel flag at 1 the library loads its fips provider and makes
/// `fips=yes` the default property query, whatever `openssl.cnf` says
/// (RHEL 9 ships it with the fips provider commented out). Named by
/// `/etc/os-release`'s `ID` or `ID_LIKE` (RHEL, Fedora, CentOS Stream,
/// Rocky, Alma, Oracle, Amazon Linux 2023).
const KERNEL_FORCED: [&str; 2] = ["rhel", "fedora"];

/// The line of evidence when this tree's OpenSSL 3 turns FIPS on from the
/// kernel flag by itself: the distribution is one of [`KERNEL_FORCED`]
/// (its `libcrypto.so.3` taken to be the distribution's own), the kernel
/// flag is 1, `fips.so` is installed, and the configuration does not set
/// default properties that leave FIPS out.
fn forced_by_kernel(host: &Host, settings: &Settings<'_>) -> Result<Option<String>, Unreadable> {
    let Some(os_release) = host.root.read("/etc/os-release")? else {
        return Ok(None);
    };
    let family = os_release.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        let value = value.trim().trim_matches(['"', '\'']);
        let named = matches!(key.trim(), "ID" | "ID_LIKE")
            && value
                .split_whitespace()
                .any(|id| KERNEL_FORCED.contains(&id));
        named.then(|| format!("{key}={value}"))
    });
    let Some(family) = family else {
        return Ok(None);
    };
    let library = host
        .root
        .find_library(|n| n.starts_with("libcrypto.so.3"))?;
    let contradicted = settings.properties.is_some() && !settings.fips_required();
    let module = find_module(&host.root, settings);
    if library.is_none() || contradicted || module.is_err() || !host.kernel_on()? {
        return Ok(None);
    }
    Ok(Some(format!(
        "/etc/os-release: {family}, with the kernel flag at 1 and fips.so installed: \
         Red Hat's OpenSSL 3 loads its fips provider and requires fips=yes by itself"
    )))
}

fn absent(rule: &Rule) -> Finding {
    rule.finding(Status::NotApplicable).evidence(
        "no OpenSSL 3 here (no libcrypto.so.3; an openssl.cnf alone may be OpenSSL 1.1's)",
    )
}

/// What the tree has of OpenSSL 3.
struct OpenSsl {
    config: Option<Config>,
}

impl OpenSsl {
    /// OpenSSL 3 as installed in the tree (by the distribution, or built
    /// into `/usr/local`); `None` without its library (an
    /// `openssl.cnf` alone is OpenSSL 1.1's too, as on RHEL 8, whose FIPS
    /// mode follows the kernel flag and has no provider to look for).
    fn inspect(root: &Root) -> Result<Option<OpenSsl>, Unreadable> {
        let libcrypto = |name: &str| name.starts_with("libcrypto.so.3");
        let built_locally = || {
            LOCAL_LIBRARY_DIRS
                .iter()
                .any(|dir| root.list(dir).iter().any(|name| libcrypto(name)))
        };
        if root.find_library(libcrypto)?.is_none() && !built_locally() {
            return Ok(None);
        }
        let mut config = None;
        for path in CONFIGS {
            config = Config::load(root, path)?;
            if config.is_some() {
                break;
            }
        }
        Ok(Some(OpenSsl { config }))
    }

    fn settings(&self) -> Settings<'_> {
        self.config.as_ref().map(Settings::of).unwrap_or_default()
    }
}

/// What the configuration says about the fips provider, following
/// `openssl_conf` → `providers` → the provider's section, and
/// `openssl_conf` → `alg_section` → `default_properties`.
#[derive(Default)]
struct Settings<'c> {
    activate: Option<&'c Entry>,
    module: Option<&'c Entry>,
    module_mac: Option<&'c Entry>,
    properties: Option<&'c Entry>,
    /// Each step followed, or where the chain stopped.
    evidence: Vec<String>,
}

impl<'c> Settings<'c> {
    fn of(config: &'c Config) -> Self {
        let mut settings = Settings::default();
        let main = config.files.first().map_or("openssl.cnf", String::as_str);
        let Some(init) = config.get(DEFAULT_SECTION, "openssl_conf") else {
            settings.note(format!(
                "{main}: no openssl_conf, so only the default provider loads"
            ));
            return settings;
        };
        settings.step(init);
        settings.providers(config, &init.value);
        if let Some(alg) = config.get(&init.value, "alg_section") {
            settings.step(alg);
            settings.properties = config.get(&alg.value, "default_properties");
        }
        match settings.properties {
            Some(properties) => settings.step(properties),
            None => settings.note(format!(
                "no default_properties under [{}]: applications may fetch non-FIPS algorithms",
                init.value
            )),
        }
        settings
    }

    /// Follows `providers` to the fips provider's section.
    fn providers(&mut self, config: &'c Config, init: &str) {
        let Some(providers) = config.get(init, "providers") else {
            self.note(format!(
                "no providers under [{init}]: only the default provider loads"
            ));
            return;
        };
        self.step(providers);
        let fips = config
            .section(&providers.value)
            .find(|entry| is_fips_provider(config, entry));
        let Some(fips) = fips else {
            self.note(format!("no fips provider under [{}]", providers.value));
            return;
        };
        self.step(fips);
        self.module = config.get(&fips.value, "module");
        self.module_mac = config.get(&fips.value, "module-mac");
        self.activate = config.get(&fips.value, "activate");
        match self.activate {
            Some(activate) => self.step(activate),
            None => self.note(format!("no activate under [{}]", fips.value)),
        }
    }

    fn step(&mut self, entry: &Entry) {
        self.evidence.push(format!(
            "{}: [{}] {} = {}",
            entry.file, entry.section, entry.key, entry.value
        ));
    }

    fn note(&mut self, line: String) {
        self.evidence.push(line);
    }

    /// OpenSSL 3.2+ reads `activate` as a boolean (3.0 took any value).
    fn activated(&self) -> bool {
        self.activate.is_some_and(|entry| {
            ["1", "yes", "true", "on"]
                .iter()
                .any(|yes| entry.value.eq_ignore_ascii_case(yes))
        })
    }

    /// Whether the default property query requires (not merely prefers,
    /// `?fips=yes`) the fips property.
    fn fips_required(&self) -> bool {
        self.properties.is_some_and(|entry| {
            entry.value.split(',').map(str::trim).any(|clause| {
                clause.eq_ignore_ascii_case("fips") || clause.eq_ignore_ascii_case("fips=yes")
            })
        })
    }
}

/// A provider is the fips one by name, or by the module its section loads.
fn is_fips_provider(config: &Config, entry: &Entry) -> bool {
    entry.key == "fips"
        || config
            .get(&entry.value, "module")
            .is_some_and(|module| module.value.ends_with("/fips.so"))
        || config
            .get(&entry.value, "identity")
            .is_some_and(|identity| identity.value == "fips")
}

/// `fips.so`: where the configuration points, else the `ossl-modules`
/// directories. The error is the evidence of where it was looked for.
fn find_module(root: &Root, settings: &Settings<'_>) -> Result<String, String> {
    let configured = settings
        .module
        .map(|entry| entry.value.clone())
        .filter(|path| path.starts_with('/'));
    let library_dirs = root
        .library_dirs()
        .map_err(|e| format!("no fips.so found: {}: cannot be read: {}", e.path, e.error))?;
    let module_dirs: Vec<String> = library_dirs
        .into_iter()
        .chain(LOCAL_LIBRARY_DIRS.map(String::from))
        .map(|dir| format!("{dir}/ossl-modules"))
        .collect();
    let mut candidates = configured
        .into_iter()
        .chain(module_dirs.iter().map(|dir| format!("{dir}/fips.so")));
    if let Some(path) = candidates.find(|path| root.exists(path)) {
        return Ok(format!("{path}: present"));
    }
    let present: Vec<String> = module_dirs
        .into_iter()
        .filter(|dir| root.is_dir(dir))
        .map(|dir| format!("{dir} ({})", root.list(&dir).join(", ")))
        .collect();
    Err(if present.is_empty() {
        "no fips.so: no ossl-modules directory".to_string()
    } else {
        format!("no fips.so in {}", present.join("; "))
    })
}

/// The module configuration: a `module-mac` in the provider's section (what
/// `openssl fipsinstall` writes), else a `fipsmodule.cnf` in a usual place.
fn find_module_config(root: &Root, settings: &Settings<'_>) -> Result<String, String> {
    if let Some(mac) = settings.module_mac {
        return Ok(format!(
            "{}: [{}] module-mac set (by openssl fipsinstall)",
            mac.file, mac.section
        ));
    }
    match MODULE_CONFIGS.into_iter().find(|path| root.exists(path)) {
        Some(path) => Ok(format!("{path}: present")),
        None => Err(format!(
            "no module configuration: no module-mac in the provider's section, no {}",
            MODULE_CONFIGS.join(", ")
        )),
    }
}

/// How long `openssl list -providers` may take: a provider that hangs
/// (a hardware module that never answers) must not hang a CI gate.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `openssl list -providers` shows the fips provider active, with
/// the line of evidence; `None` when there is no `openssl` command to ask.
fn running_providers() -> Option<(bool, String)> {
    let output = match ask_openssl(&["list", "-providers"])? {
        Ok(output) => output,
        Err(line) => return Some((false, line)),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().next().unwrap_or("no message");
        return Some((false, format!("openssl list -providers failed: {reason}")));
    }
    let providers = parse_providers(&String::from_utf8_lossy(&output.stdout));
    let listed: Vec<String> = providers
        .iter()
        .map(|(name, status)| format!("{name} ({status})"))
        .collect();
    let active = providers
        .iter()
        .any(|(name, status)| name == "fips" && status == "active");
    Some((
        active,
        format!("openssl list -providers: {}", listed.join(", ")),
    ))
}

/// Whether the library's default fetch takes only FIPS algorithms, asked of
/// `openssl dgst` itself: SHA-256 is served and MD5 refused as unsupported.
/// (With `fips=yes` and no provider to serve it, both are refused.) `None`
/// when there is no `openssl` command to ask.
fn default_fetch() -> Option<(bool, String)> {
    // (served, refused as unsupported)
    let outcome = |output: &Output| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        (output.status.success(), stderr.contains(":unsupported:"))
    };
    let digest = |name| ask_openssl(&["dgst", name]).map(|asked| asked.map(|o| outcome(&o)));
    let md5 = match digest("-md5")? {
        Ok(md5) => md5,
        Err(line) => return Some((false, line)),
    };
    let sha256 = match digest("-sha256")? {
        Ok(sha256) => sha256,
        Err(line) => return Some((false, line)),
    };
    let (fips_only, what) = match (md5, sha256) {
        ((false, true), (true, _)) => (true, "refuses MD5 (unsupported) and serves SHA-256"),
        ((true, _), _) => (
            false,
            "serves MD5: applications may fetch non-FIPS algorithms",
        ),
        (_, (false, _)) => (
            false,
            "refuses SHA-256 too: no provider serves the default fetch",
        ),
        _ => (false, "refuses MD5, but not as an unsupported algorithm"),
    };
    Some((
        fips_only,
        format!("openssl dgst (the default fetch): {what}"),
    ))
}

/// The system's own `openssl`: the one its packages install, beside the
/// `libcrypto` applications load (not another build earlier in `PATH`).
const SYSTEM_OPENSSL: &str = "/usr/bin/openssl";

/// `openssl ARGS`'s output once it succeeded or failed on its own terms;
/// `Err` with the line of evidence when it hung or could not be run;
/// `None` when there is no `openssl` command. It is the system's, run
/// with an empty environment: it reads the system configuration with the
/// system library, whatever this process's `PATH`, `OPENSSL_CONF` or
/// `LD_PRELOAD` say.
fn ask_openssl(args: &[&str]) -> Option<Result<Output, String>> {
    let shown = args.join(" ");
    let mut command = Command::new(SYSTEM_OPENSSL);
    command.args(args).env_clear();
    Some(match output_within(&mut command, OPENSSL_TIMEOUT) {
        Ok(Some(output)) => Ok(output),
        Ok(None) => {
            let seconds = OPENSSL_TIMEOUT.as_secs();
            Err(format!(
                "openssl {shown} did not answer within {seconds} s (stopped)"
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => Err(format!("openssl {shown} could not be run: {e}")),
    })
}

/// The output of `command`, or `None` if it did not finish within
/// `limit`. It runs in a process group of its own, killed whole when time
/// is up (a wrapper script's children too), and its pipes are read on
/// threads of their own, so that neither a long output nor a descendant
/// holding them open can stretch the wait beyond `limit`.
fn output_within(command: &mut Command, limit: Duration) -> std::io::Result<Option<Output>> {
    let deadline = Instant::now() + limit;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = read_on_thread(child.stdout.take());
    let stderr = read_on_thread(child.stderr.take());
    // The child is reaped only after its group is killed: until then its
    // pid, the group's id, cannot pass to another process.
    let group = Pid::from_child(&child);
    let ended = ended_by(group, deadline);
    let output = match ended {
        Ok(true) => {
            let left = || deadline.saturating_duration_since(Instant::now());
            let stdout = stdout.recv_timeout(left()).ok();
            stdout.zip(stderr.recv_timeout(left()).ok())
        }
        _ => None,
    };
    if output.is_none() {
        let _ = kill_process_group(group, Signal::KILL);
    }
    // One stuck in a driver call is left behind rather than waited for.
    let status = reaped_by(&mut child, Instant::now() + Duration::from_secs(1))?;
    ended?;
    Ok(output.zip(status).map(|((stdout, stderr), status)| Output {
        status,
        stdout,
        stderr,
    }))
}

/// Whether child `pid` has ended by `deadline`; it is left unreaped.
fn ended_by(pid: Pid, deadline: Instant) -> std::io::Result<bool> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let ended = poll_until(deadline, || {
        Ok(waitid(WaitId::Pid(pid), options)?.map(|_| ()))
    })?;
    Ok(ended.is_some())
}

/// The exit status of `child`, reaped, or `None` if it is still running
/// at `deadline`.
fn reaped_by(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    poll_until(deadline, || child.try_wait())
}

/// Asks `ready` every 10 ms until it answers or `deadline` passes.
fn poll_until<T>(
    deadline: Instant,
    mut ready: impl FnMut() -> std::io::Result<Option<T>>,
) -> std::io::Result<Option<T>> {
    loop {
        if let Some(answer) = ready()? {
            return Ok(Some(answer));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything `pipe` gives until it closes, read on a thread of its own.
fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        });
    }
    receiver
}

/// `(name, status)` of each provider `openssl list -providers` printed:
/// a name indented by two spaces, then its indented `key: value` lines.
fn parse_providers(text: &str) -> Vec<(String, String)> {
    let mut providers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && !trimmed.contains(':') {
            providers.push((trimmed.to_string(), "listed".to_string()));
        } else if let (Some(last), Some(status)) =
            (providers.last_mut(), trimmed.strip_prefix("status:"))
        {
            last.1 = status.trim().to_string();
        }
    }
    providers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const LISTING: &str = "Providers:\n  default\n    name: OpenSSL Default Provider\n    \
                           version: 3.0.19\n    status: active\n  fips\n    name: OpenSSL FIPS \
                           Provider\n    version: 3.0.9\n    status: inactive\n";

    #[test]
    fn provider_listing_gives_each_name_and_status() {
        assert_eq!(
            parse_providers(LISTING),
            [
                ("default".to_string(), "active".to_string()),
                ("fips".to_string(), "inactive".to_string())
            ]
        );
    }

    fn settings_of(text: &str) -> (bool, bool) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc/ssl")).unwrap();
        fs::write(dir.path().join("etc/ssl/openssl.cnf"), text).unwrap();
        let root = Root::new(dir.path());
        let config = Config::load(&root, "/etc/ssl/openssl.cnf")
            .unwrap()
            .unwrap();
        let settings = Settings::of(&config);
        (settings.activated(), settings.fips_required())
    }

    const CHAIN: &str = "openssl_conf = init\n[init]\nproviders = p\nalg_section = a\n\
                         [p]\nfips = f\nbase = b\n[b]\nactivate = 1\n";

    #[test]
    fn activation_and_the_fips_property_are_both_read_through_the_chain() {
        let config = format!("{CHAIN}[f]\nactivate = 1\n[a]\ndefault_properties = fips=yes\n");
        assert_eq!(settings_of(&config), (true, true));
    }

    #[test]
    fn a_preferred_fips_property_is_not_a_required_one() {
        let config = format!("{CHAIN}[f]\nactivate = yes\n[a]\ndefault_properties = ?fips=yes\n");
        assert_eq!(settings_of(&config), (true, false));
    }

    #[test]
    fn an_activate_of_zero_or_a_missing_chain_loads_nothing() {
        let config = format!("{CHAIN}[f]\nactivate = 0\n[a]\ndefault_properties = fips\n");
        assert_eq!(settings_of(&config), (false, true));
        assert_eq!(settings_of("[f]\nactivate = 1\n"), (false, false));
    }

    #[test]
    fn a_provider_named_otherwise_is_fips_by_its_module() {
        let config = "openssl_conf = init\n[init]\nproviders = p\n[p]\nvalidated = v\n\
                      [v]\nmodule = /usr/lib64/ossl-modules/fips.so\nactivate = 1\n";
        assert_eq!(settings_of(config), (true, false));
    }
}
