//! A production-style server for the binary's tests: an openssl
//! certificate, a configuration file with SQLite (or PostgreSQL), a root
//! key file and an audit directory, `fipsguard init`, and `fipsguard
//! serve` as a child; and a second host in a network namespace.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FIPSGUARD: &str = env!("CARGO_BIN_EXE_fipsguard");

/// A configured (and initialised) server directory.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub officer: String,
    /// What `init` wrote on stderr.
    pub init_stderr: String,
}

/// A running server and everything it has logged so far.
pub struct Server {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    /// Collects stderr until the server closes it (taken by `stop`).
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A test that fails before it stops its server does not leave it running.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The PostgreSQL server the tests use (`FIPSGUARD_TEST_POSTGRES`, by
/// default the local one).
pub fn postgres_base() -> String {
    std::env::var("FIPSGUARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// psql on the tests' PostgreSQL server, stopping at the first error.
pub fn psql() -> Command {
    let mut psql = Command::new("psql");
    psql.arg(postgres_base())
        .args(["-v", "ON_ERROR_STOP=1", "-At"]);
    psql
}

/// A schema of its own for a test on PostgreSQL, dropped with it.
pub struct Schema(pub String);

impl Drop for Schema {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        let _ = psql().args(["-c", &drop]).output();
    }
}

/// An ACCESS EXCLUSIVE lock on one table of a test's schema, held by a
/// psql session of its own (which keeps everyone else from the table)
/// until released, or until dropped when a test fails.
pub struct TableLock {
    session: Child,
    sql: Option<std::process::ChildStdin>,
}

impl TableLock {
    /// Takes the lock, and returns once PostgreSQL has granted it.
    pub fn take(schema: &Schema, table: &str) -> Self {
        let mut session = psql()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut sql = session.stdin.take().unwrap();
        let lock = format!(
            "BEGIN; LOCK TABLE {}.{table} IN ACCESS EXCLUSIVE MODE;",
            schema.0
        );
        writeln!(sql, "{lock}").unwrap();
        let taken = Self {
            session,
            sql: Some(sql),
        };
        let held = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{}' AND c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            schema.0
        );
        wait_until(Duration::from_secs(10), "the lock granted", || {
            let out = psql().args(["-c", &held]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "1"
        });
        taken
    }

    /// Commits, letting everyone in again.
    pub fn release(mut self) {
        if let Some(mut sql) = self.sql.take() {
            writeln!(sql, "COMMIT;").unwrap();
        }
        self.session.wait().unwrap();
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.session.kill();
        let _ = self.session.wait();
    }
}

impl Setup {
    /// Certificate, configuration and `fipsguard init`, on SQLite.
    pub fn new() -> Self {
        Self::with_store(|dir| format!("sqlite = {:?}", dir.join("fipsguard.db")))
    }

    /// The same on a schema of its own (named beside it) on the tests'
    /// PostgreSQL server;
    /// `None` (the tests that need it skipped) where there is none, except
    /// under CI, which must have one.
    pub fn on_postgres() -> Option<(Self, Schema)> {
        static SETUPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SETUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let schema = Schema(format!("fg_cli_{}_{n}", std::process::id()));
        let create = format!("CREATE SCHEMA {}", schema.0);
        let created = psql().args(["-c", &create]).output();
        let why = match &created {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => Some(format!("psql: {e}")),
        };
        if let Some(why) = why {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required under CI: {why}"
            );
            eprintln!("SKIPPED: no PostgreSQL ({why})");
            return None;
        }
        let url = format!("{} options='-c search_path={}'", postgres_base(), schema.0);
        Some((Self::with_store(|_| format!("postgres = {url:?}")), schema))
    }

    /// Certificate, configuration with `store` as its store line, and
    /// `fipsguard init`.
    fn with_store(store: impl FnOnce(&std::path::Path) -> String) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let path = |name: &str| dir.path().join(name);
        make_certificate(&path("server.pem"), &path("server.key"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nlog_format = \"json\"\n[tls]\ncert = {:?}\nkey = {:?}\n[store]\n{}\n[root_key]\nfile = {:?}\n[audit]\ndir = {:?}\n",
            path("server.pem"),
            path("server.key"),
            store(dir.path()),
            path("root.key"),
            path("audit"),
        );
        std::fs::write(path("fipsguard.toml"), config).unwrap();
        let init = Command::new(FIPSGUARD)
            .args(["init", "--config"])
            .arg(path("fipsguard.toml"))
            .output()
            .unwrap();
        let init_stderr = String::from_utf8_lossy(&init.stderr).into_owned();
        assert!(init.status.success(), "{init_stderr}");
        let officer = String::from_utf8(init.stdout).unwrap().trim().to_owned();
        Self {
            dir,
            port,
            officer,
            init_stderr,
        }
    }

    /// Adds `setting` (a `key = value` line) to the configuration's
    /// `[section]`, for the servers started after.
    pub fn set(&self, section: &str, setting: &str) {
        let config = self.path("fipsguard.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let header = format!("[{section}]\n");
        assert!(text.contains(&header), "no [{section}] in {text}");
        let with_setting = text.replace(&header, &format!("{header}{setting}\n"));
        std::fs::write(&config, with_setting).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Starts `fipsguard serve` and returns once it serves; its stderr is
    /// collected (all of it, at debug level) for tests that read the logs.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// As [`Setup::serve`], with more environment (fault injection, say).
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Server {
        self.serve_with_args(&[], env)
    }

    /// As [`Setup::serve_with`], with more arguments after the configuration.
    pub fn serve_with_args(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(FIPSGUARD)
            .args(["serve", "--config"])
            .arg(self.path("fipsguard.toml"))
            .args(args)
            .env("FIPSGUARD_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (serving, started) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = log.clone();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("\"serving\"") {
                    let _ = serving.send(());
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        if started.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            panic!("the server did not start: {}", log.lock().unwrap());
        }
        Server {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// An HTTPS client that trusts the server's certificate (FIPS TLS policy).
    pub fn client(&self) -> reqwest::Client {
        let roots = fipsguard_crypto::tls::read_roots(&self.path("server.pem")).unwrap();
        reqwest::Client::builder()
            .resolve("localhost", ([127, 0, 0, 1], self.port).into())
            .use_preconfigured_tls(fipsguard_crypto::tls::client_config(roots, None).unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Every audit file's text.
    pub fn audit_text(&self) -> String {
        let mut text = String::new();
        for file in std::fs::read_dir(self.path("audit")).unwrap() {
            text.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
        }
        text
    }

    /// Every audit record, in the log's order (a line the server is still
    /// writing is left out).
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let mut records: Vec<serde_json::Value> = self
            .audit_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|mut line| line["record"].take())
            .collect();
        records.sort_by_key(|record| record["seq"].as_u64());
        records
    }

    /// The audit records of one kind, in sequence order.
    pub fn audit_records_of(&self, kind: &str) -> Vec<serde_json::Value> {
        let mut records = self.audit_records();
        records.retain(|record| record["kind"] == kind);
        records
    }

    /// `fipsguard audit verify` on the audit directory with the PEM at
    /// `audit.pem`, which must verify: its report.
    pub fn verify_audit(&self) -> String {
        let verified = Command::new(FIPSGUARD)
            .args(["audit", "verify", "--log"])
            .arg(self.path("audit"))
            .arg("--public-key")
            .arg(self.path("audit.pem"))
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&verified.stdout).into_owned();
        assert!(
            verified.status.success(),
            "the audit log verifies: {report}{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        report
    }
}

impl Server {
    /// SIGTERM, and waits for a clean exit and the last line of its log:
    /// the whole log.
    pub fn stop(mut self) -> String {
        signal(&self.child, "TERM");
        let status = exit_within(
            &mut self.child,
            Duration::from_secs(30),
            "the server did not stop",
        );
        assert!(status.success(), "SIGTERM drains and exits cleanly");
        self.reader.take().expect("stopped once").join().unwrap();
        self.log()
    }

    /// SIGHUP: the TLS files are read again.
    pub fn hangup(&self) {
        signal(&self.child, "HUP");
    }

    /// SIGKILL: no drain, no shutdown record.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A self-signed P-256 certificate for localhost, made by openssl.
pub fn make_certificate(cert: &std::path::Path, key: &std::path::Path) {
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
        ])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
}

/// Sends `child` the signal named `name` (`TERM`, `HUP`).
pub fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Polls `done` until it holds, failing with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit, failing with `what` after `limit`; a child
/// still running then is killed, so that it holds no port or pipe the
/// test's runner waits on.
pub fn exit_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The readable, writable memory of process `pid` (heap, stacks and
/// anonymous mappings), region by region.
pub fn writable_memory(pid: u32) -> Vec<Vec<u8>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut regions = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        if !perms.starts_with("rw") || line.ends_with("[vvar]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut region = vec![0; (end - start) as usize];
        // A region unmapped since the maps were read is skipped.
        if mem.seek(SeekFrom::Start(start)).is_ok() && mem.read_exact(&mut region).is_ok() {
            regions.push(region);
        }
    }
    regions
}

/// Whether the peer closes `stream` (end of stream, or a reset) within
/// `wait`, rather than keeping it open.
pub fn closed_within(mut stream: &std::net::TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    match stream.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Two hosts on one machine: this one, and a network namespace joined to
/// it by a veth pair. Removed on drop.
pub struct Namespace {
    pub name: String,
    /// The namespace's address on the link.
    pub address: String,
    /// This host's address on the link.
    pub outer_address: String,
}

impl Namespace {
    pub fn new() -> Self {
        // Names apart for each namespace of each test process (interface
        // names hold up to 15 bytes); the link's /30 one of 25,600, apart
        // for those of one process.
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = u64::from(std::process::id());
        let id = pid * 1000 + n;
        let name = format!("fg-test-{id}");
        let (outer, inner) = (format!("fgo{id}"), format!("fgi{id}"));
        let link = (pid + n) % 25_600;
        let subnet = format!("10.{}.{}", 100 + link / 256, link % 256);
        let ip = |args: &str| {
            let status = Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .unwrap();
            assert!(status.success(), "ip {args}");
        };
        // A namespace, and its files, left by a killed run of this process id.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&name));
        ip(&format!("netns add {name}"));
        let namespace = Self {
            name: name.clone(),
            address: format!("{subnet}.2"),
            outer_address: format!("{subnet}.1"),
        };
        ip(&format!("link add {outer} type veth peer name {inner}"));
        ip(&format!("link set {inner} netns {name}"));
        ip(&format!("addr add {subnet}.1/30 dev {outer}"));
        ip(&format!("link set {outer} up"));
        ip(&format!(
            "netns exec {name} ip addr add {subnet}.2/30 dev {inner}"
        ));
        ip(&format!("netns exec {name} ip link set {inner} up"));
        ip(&format!("netns exec {name} ip link set lo up"));
        namespace
    }

    /// Gives the namespace its own `/etc/NAME` (`ip netns exec` mounts it
    /// over the host's: `resolv.conf`, say).
    pub fn etc_file(&self, name: &str, contents: &str) {
        let dir = Path::new("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), contents).unwrap();
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Namespace {
    /// Ends every process still in it (a failed test's), then removes it.
    fn drop(&mut self) {
        if let Ok(pids) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
        // Deleting the namespace deletes its end of the veth pair, and so both.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
