//! Go binaries: the build info the toolchain embeds (`go version -m`) and
//! the package names in the function table, which survive `strip`.
//!
//! Go's crypto is one of three things: standard Go crypto (not a validated
//! module), Go+BoringCrypto (`GOEXPERIMENT=boringcrypto`, BoringSSL's
//! validated module linked through cgo) or, from Go 1.24, the Go
//! Cryptographic Module selected with `GOFIPS140`. Toolchains patched to use
//! the host's OpenSSL (golang-fips/openssl) are a fourth.

use memchr::memmem;

use super::elf::Facts;
use super::strings::spelled;
use super::{Component, EvidenceSet, BORINGCRYPTO, BORINGCRYPTO_TITLE, HOST_REMEDIATION};
use crate::{Finding, Status};

/// `\xff Go buildinf:`, spelled (see [`spelled`]).
const BUILDINFO_MAGIC: &[u8] = b"\xff_Go_buildinf:";
/// The build info header: magic, pointer size, flags, padding.
const BUILDINFO_HEADER: usize = 32;
/// Flag: version and module info follow the header inline (Go 1.18+).
const FLAG_INLINE_STRINGS: u8 = 2;
/// `cmd/go` frames the module info with 16-byte sentinels.
const MODINFO_SENTINEL: usize = 16;

/// Linked into a binary exactly when the BoringCrypto module is present, or
/// when standard Go crypto is reachable (`crypto/internal/boring/sig`).
const BORING_SIGNATURE: &str = "crypto/internal/boring/sig.BoringCrypto";
const STANDARD_SIGNATURE: &str = "crypto/internal/boring/sig.StandardCrypto";
const FIPS_ONLY_SIGNATURE: &str = "crypto/internal/boring/sig.FIPSOnly";
/// A frozen Go Cryptographic Module is compiled under a versioned path.
const FIPS140_SNAPSHOT: &str = "crypto/internal/fips140/v";
const GOLANG_FIPS_OPENSSL: &str = "github.com/golang-fips/openssl";
/// Standard crypto packages, for the evidence (and for toolchains older than
/// Go 1.19, which lack the signatures above).
const CRYPTO_PACKAGES: [&str; 18] = [
    "crypto/aes.",
    "crypto/cipher.",
    "crypto/des.",
    "crypto/ecdh.",
    "crypto/ecdsa.",
    "crypto/ed25519.",
    "crypto/elliptic.",
    "crypto/hmac.",
    "crypto/md5.",
    "crypto/mlkem.",
    "crypto/rand.",
    "crypto/rc4.",
    "crypto/rsa.",
    "crypto/sha1.",
    "crypto/sha256.",
    "crypto/sha3.",
    "crypto/sha512.",
    "crypto/tls.",
];
/// The build settings that decide or explain the crypto of a Go binary.
const REPORTED_SETTINGS: [&str; 7] = [
    "GOEXPERIMENT",
    "GOFIPS140",
    "DefaultGODEBUG",
    "CGO_ENABLED",
    "-tags",
    "GOOS",
    "GOARCH",
];

/// What `go version -m` shows: the toolchain, the main package and the
/// build settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BuildInfo {
    /// e.g. `go1.19.8`, or `go1.19.8 X:boringcrypto` with experiments.
    pub version: String,
    /// The main package's import path.
    pub path: Option<String>,
    /// `build` lines: key and value, in file order.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// Parses a build info blob that starts with the magic. `None` for
    /// anything else, including the pointer-based format of Go before 1.18.
    pub fn parse(blob: &[u8]) -> Option<Self> {
        let header = blob.get(..BUILDINFO_HEADER)?;
        if header[..14] != spelled(BUILDINFO_MAGIC) || header[15] & FLAG_INLINE_STRINGS == 0 {
            return None;
        }
        let (version, rest) = length_prefixed(&blob[BUILDINFO_HEADER..])?;
        let (modinfo, _) = length_prefixed(rest)?;
        let version = std::str::from_utf8(version).ok()?;
        if !(version.starts_with("go") || version.starts_with("devel")) {
            return None;
        }
        let modinfo = String::from_utf8_lossy(strip_sentinels(modinfo));
        Some(Self::from_lines(version, &modinfo))
    }

    fn from_lines(version: &str, modinfo: &str) -> Self {
        let mut info = BuildInfo {
            version: version.to_owned(),
            path: None,
            settings: Vec::new(),
        };
        for line in modinfo.lines() {
            match line.split_once('\t') {
                Some(("path", path)) => info.path = Some(path.to_owned()),
                Some(("build", setting)) => {
                    let (key, value) = setting.split_once('=').unwrap_or((setting, ""));
                    info.settings
                        .push((key.to_owned(), unquote(value).to_owned()));
                }
                _ => {}
            }
        }
        info
    }

    /// The value of a build setting.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The toolchain version without the experiments suffix.
    pub fn go_version(&self) -> &str {
        self.version.split(' ').next().unwrap_or_default()
    }

    /// Whether a `GOEXPERIMENT` is on, from the setting or the version's
    /// ` X:` suffix.
    pub fn has_experiment(&self, name: &str) -> bool {
        let from_version = self.version.split_once(" X:").map(|(_, list)| list);
        [self.setting("GOEXPERIMENT"), from_version]
            .into_iter()
            .flatten()
            .any(|list| list.split(',').any(|experiment| experiment == name))
    }

    /// `GOFIPS140`, unless off (the default, which is not recorded).
    pub fn gofips140(&self) -> Option<&str> {
        self.setting("GOFIPS140").filter(|value| *value != "off")
    }
}

/// `cmd/go` quotes values with spaces or quotes (strconv.Quote).
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value)
}

/// The same test `debug/buildinfo` makes before removing the framing.
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let framed = modinfo.len() > 2 * MODINFO_SENTINEL
        && modinfo[modinfo.len() - MODINFO_SENTINEL - 1] == b'\n';
    if framed {
        &modinfo[MODINFO_SENTINEL..modinfo.len() - MODINFO_SENTINEL]
    } else {
        modinfo
    }
}

/// A uvarint length, then that many bytes.
fn length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, used) = uvarint(bytes)?;
    let end = used.checked_add(length)?;
    Some((bytes.get(used..end)?, &bytes[end..]))
}

fn uvarint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, index + 1));
        }
    }
    None
}

/// Where a Go binary's facts were found.
struct GoBinary<'data> {
    build: Option<BuildInfo>,
    /// Where the build info sits, for the evidence.
    located: String,
    /// The function names: `.gopclntab`, or the whole file without it.
    names: &'data [u8],
}

impl GoBinary<'_> {
    fn has_name(&self, needle: &str) -> bool {
        memmem::find(self.names, needle.as_bytes()).is_some()
    }

    fn go_version(&self) -> &str {
        self.build.as_ref().map_or("Go", BuildInfo::go_version)
    }

    fn has_experiment(&self, name: &str) -> bool {
        self.build
            .as_ref()
            .is_some_and(|build| build.has_experiment(name))
    }

    fn gofips140(&self) -> Option<&str> {
        self.build.as_ref().and_then(BuildInfo::gofips140)
    }

    /// The version in `crypto/internal/fips140/v1.0.0-c2097c7c/...`.
    fn fips140_snapshot(&self) -> Option<String> {
        memmem::find_iter(self.names, FIPS140_SNAPSHOT.as_bytes()).find_map(|at| {
            let rest = &self.names[at + FIPS140_SNAPSHOT.len() - 1..];
            let end = rest.iter().take(40).position(|byte| *byte == b'/')?;
            let version = std::str::from_utf8(&rest[..end]).ok()?;
            version[1..]
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| version.to_owned())
        })
    }
}

/// The Go findings of a binary: its crypto (what serves the standard
/// library's, and golang.org/x/crypto beside it) and its build info.
/// `None` when it is not a Go binary. `boring_module` is the evidence of a
/// BoringSSL-derived FIPS module, which Go+BoringCrypto claims.
pub(super) fn inspect(
    facts: &Facts<'_>,
    boring_module: &EvidenceSet,
) -> Option<(Vec<Component>, Finding)> {
    let go = locate(facts)?;
    let standard = boringcrypto(&go, facts, boring_module)
        .or_else(|| fips140_module(&go))
        .or_else(|| host_openssl(&go))
        .or_else(|| standard_crypto(&go));
    let crypto = standard.into_iter().chain(x_crypto(&go)).collect();
    Some((crypto, build_finding(&go)))
}

/// Where golang.org/x/crypto's functions are named.
const X_CRYPTO: &str = "golang.org/x/crypto/";

/// Packages of golang.org/x/crypto the binary holds functions of: crypto
/// that neither Go's module nor BoringCrypto serves (ChaCha20-Poly1305,
/// Argon2, bcrypt, SSH...), whatever module the binary carries beside it.
/// The standard library's own copy (`vendor/golang.org/x/crypto`, which
/// crypto/tls uses only where the FIPS policy lets it) is not counted.
fn x_crypto(go: &GoBinary<'_>) -> Option<Component> {
    const VENDORED: &[u8] = b"vendor/";
    let mut packages = std::collections::BTreeSet::new();
    for at in memmem::find_iter(go.names, X_CRYPTO.as_bytes()) {
        if go.names[..at].ends_with(VENDORED) {
            continue;
        }
        let rest = &go.names[at + X_CRYPTO.len()..];
        // The package path ends at its function's `.` (or a file's).
        let len = rest
            .iter()
            .take(64)
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-')))
            .unwrap_or(rest.len().min(64));
        if let Ok(package) = std::str::from_utf8(&rest[..len]) {
            if !package.is_empty() && packages.len() < 16 {
                packages.insert(package.trim_end_matches('/').to_owned());
            }
        }
    }
    if packages.is_empty() {
        return None;
    }
    let packages: Vec<String> = packages.into_iter().collect();
    let mut evidence = EvidenceSet::default();
    for package in &packages {
        evidence.push(format!("functions of package {X_CRYPTO}{package}"));
    }
    let finding = Finding::new(
        "binary.go-x-crypto",
        "Crypto from golang.org/x/crypto, not a validated module",
        Status::Warn,
    )
    .remediation(
        "A package that protects data or authenticates (chacha20poly1305, argon2, bcrypt, ssh, \
         nacl) must give way to the standard library's crypto under GOFIPS140 or BoringCrypto; \
         some x/crypto packages (hkdf, pbkdf2, sha3 in recent versions) only forward to the \
         standard library, and one that serves no security function may stay, documented as such.",
    );
    let label = format!(
        "golang.org/x/crypto {} (unvalidated crypto)",
        packages.join(", ")
    );
    Some(Component::new(finding, evidence, label))
}

fn locate<'data>(facts: &Facts<'data>) -> Option<GoBinary<'data>> {
    let names = facts.go_pclntab.unwrap_or(facts.bytes);
    if let Some(section) = facts.go_buildinfo {
        let located = "section .go.buildinfo".to_owned();
        return Some(GoBinary {
            build: BuildInfo::parse(section),
            located,
            names,
        });
    }
    if let Some((offset, build)) = find_by_magic(facts.bytes) {
        let located = format!("build info at file offset {offset:#x} (no .go.buildinfo section)");
        return Some(GoBinary {
            build: Some(build),
            located,
            names,
        });
    }
    let located = "section .gopclntab (no build info)".to_owned();
    facts.go_pclntab.map(|names| GoBinary {
        build: None,
        located,
        names,
    })
}

/// As `debug/buildinfo` does without section headers: the magic, 16-byte
/// aligned, followed by a well-formed header.
fn find_by_magic(bytes: &[u8]) -> Option<(usize, BuildInfo)> {
    memmem::find_iter(bytes, &spelled(BUILDINFO_MAGIC))
        .filter(|offset| offset % 16 == 0)
        .find_map(|offset| Some((offset, BuildInfo::parse(&bytes[offset..])?)))
}

/// BoringCrypto when it is linked. The build setting alone proves nothing:
/// with `CGO_ENABLED=0` the toolchain quietly builds standard Go crypto.
fn boringcrypto(go: &GoBinary<'_>, facts: &Facts<'_>, module: &EvidenceSet) -> Option<Component> {
    let mut linked = EvidenceSet::default();
    if go.has_name(BORING_SIGNATURE) {
        linked.push(format!(
            "function {BORING_SIGNATURE} (BoringCrypto is linked)"
        ));
    }
    linked.symbols(facts, "_goboringcrypto_");
    if linked.is_empty() {
        return None;
    }
    let mut evidence = EvidenceSet::default();
    if go.has_experiment("boringcrypto") {
        evidence.push("build setting GOEXPERIMENT=boringcrypto");
    }
    evidence.extend(&linked);
    if go.has_name(FIPS_ONLY_SIGNATURE) {
        evidence.push(format!(
            "function {FIPS_ONLY_SIGNATURE} (crypto/tls/fipsonly restricts TLS)"
        ));
    }
    evidence.extend(module);
    let label = format!("Go BoringCrypto ({})", go.go_version());
    let finding = Finding::new(BORINGCRYPTO, BORINGCRYPTO_TITLE, Status::Pass);
    Some(Component::new(finding, evidence, label))
}

fn fips140_module(go: &GoBinary<'_>) -> Option<Component> {
    let setting = go.gofips140().map(str::to_owned);
    let snapshot = go.fips140_snapshot();
    if setting.is_none() && snapshot.is_none() {
        return None;
    }
    let mut evidence = EvidenceSet::default();
    if let Some(value) = &setting {
        evidence.push(format!("build setting GOFIPS140={value}"));
    }
    let title = "Go Cryptographic Module (GOFIPS140)";
    let (finding, label) = match &snapshot {
        Some(version) => {
            evidence.push(format!("package path {FIPS140_SNAPSHOT}{}/", &version[1..]));
            let label = format!("Go Cryptographic Module {version} ({})", go.go_version());
            let finding = match fips140_off_by_default(go) {
                None => Finding::new("binary.go-fips140", title, Status::Pass),
                Some(godebug) => {
                    evidence.push(format!(
                        "build setting DefaultGODEBUG={godebug}: FIPS 140 mode is off unless \
                         GODEBUG=fips140=on is set where it runs"
                    ));
                    Finding::new("binary.go-fips140", title, Status::Warn).remediation(
                        "Drop `//go:debug fips140=off` (or `godebug fips140=off` in go.mod), or \
                         set GODEBUG=fips140=on (or only) wherever the binary runs.",
                    )
                }
            };
            (finding, label)
        }
        None => {
            evidence.push(
                "packages compiled from the in-tree crypto/internal/fips140, not a frozen version",
            );
            let label = format!(
                "Go Cryptographic Module, in-tree copy ({})",
                go.go_version()
            );
            let finding = Finding::new("binary.go-fips140", title, Status::Warn).remediation(
                "Build with GOFIPS140 set to a frozen module version under validation or validated \
                 (e.g. GOFIPS140=v1.0.0), not `latest`.",
            );
            (finding, label)
        }
    };
    Some(Component::new(finding, evidence, label))
}

/// The build's default GODEBUG when it turns FIPS 140 mode off.
fn fips140_off_by_default(go: &GoBinary<'_>) -> Option<String> {
    let godebug = go.build.as_ref()?.setting("DefaultGODEBUG")?;
    godebug
        .split(',')
        .any(|setting| setting.trim() == "fips140=off")
        .then(|| godebug.to_owned())
}

fn host_openssl(go: &GoBinary<'_>) -> Option<Component> {
    let mut evidence = EvidenceSet::default();
    for experiment in ["opensslcrypto", "systemcrypto"] {
        if go.has_experiment(experiment) {
            evidence.push(format!("build setting GOEXPERIMENT={experiment}"));
        }
    }
    if go.has_name(GOLANG_FIPS_OPENSSL) {
        evidence.push(format!(
            "package {GOLANG_FIPS_OPENSSL} (loads the host's libcrypto)"
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    let finding = Finding::new(
        "binary.go-openssl",
        "Go crypto through the host's OpenSSL",
        Status::Warn,
    )
    .remediation(HOST_REMEDIATION);
    let label = format!("Go crypto through the host's OpenSSL ({})", go.go_version());
    Some(Component::new(finding, evidence, label))
}

fn standard_crypto(go: &GoBinary<'_>) -> Option<Component> {
    let mut evidence = EvidenceSet::default();
    if go.has_name(STANDARD_SIGNATURE) {
        evidence.push(format!(
            "function {STANDARD_SIGNATURE} (standard Go crypto is linked)"
        ));
    }
    let packages: Vec<&str> = CRYPTO_PACKAGES
        .iter()
        .filter(|package| go.has_name(package))
        .map(|package| package.trim_end_matches('.'))
        .collect();
    if evidence.is_empty() && packages.is_empty() {
        return None;
    }
    if !packages.is_empty() {
        evidence.push(format!("packages {}", packages.join(", ")));
    }
    if go.has_experiment("boringcrypto") {
        evidence.push(
            "build setting GOEXPERIMENT=boringcrypto, yet BoringCrypto is not linked \
             (it needs CGO_ENABLED=1 on linux/amd64 or arm64)",
        );
    } else if go.build.is_some() {
        evidence.push("build info: no GOEXPERIMENT=boringcrypto, no GOFIPS140");
    }
    let finding = Finding::new(
        "binary.go-crypto",
        "Go crypto outside a validated module",
        Status::Fail,
    )
    .remediation(
        "Rebuild with Go 1.24+ and GOFIPS140=v1.0.0 (the Go Cryptographic Module), or with \
         GOEXPERIMENT=boringcrypto and CGO_ENABLED=1 (Go+BoringCrypto, linux/amd64 and arm64).",
    );
    let label = format!("Go native crypto ({})", go.go_version());
    Some(Component::new(finding, evidence, label))
}

fn build_finding(go: &GoBinary<'_>) -> Finding {
    let mut finding = Finding::new("binary.go-build", "Go build info", Status::NotApplicable)
        .evidence(go.located.clone());
    let Some(build) = &go.build else {
        return finding
            .evidence("build info not readable (a toolchain before Go 1.18, or damaged)");
    };
    finding = finding.evidence(build.version.clone());
    if let Some(path) = &build.path {
        finding = finding.evidence(format!("path {path}"));
    }
    for (key, value) in &build.settings {
        if REPORTED_SETTINGS.contains(&key.as_str()) {
            finding = finding.evidence(format!("build {key}={value}"));
        }
    }
    finding
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    /// A build info blob as Go 1.18+ writes it.
    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut blob = b"\xff Go buildinf:".to_vec();
        blob.extend([8, FLAG_INLINE_STRINGS]);
        blob.resize(BUILDINFO_HEADER, 0);
        let mut framed = START.to_vec();
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(END);
        for field in [version.as_bytes(), &framed] {
            push_uvarint(&mut blob, field.len());
            blob.extend_from_slice(field);
        }
        blob
    }

    fn push_uvarint(out: &mut Vec<u8>, mut value: usize) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    #[test]
    fn golang_x_crypto_is_found_beside_whatever_module_serves_the_standard_library() {
        let names = b"crypto/internal/fips140/v1.0.0-c2097c7c/aes.New\0\
            golang.org/x/crypto/chacha20poly1305.(*chacha20poly1305).Seal\0\
            golang.org/x/crypto/argon2.IDKey\0\
            golang.org/x/crypto/chacha20poly1305.New\0\
            vendor/golang.org/x/crypto/cryptobyte.(*String).ReadASN1\0";
        let go = GoBinary {
            build: None,
            located: String::new(),
            names,
        };
        let found = x_crypto(&go).unwrap();
        assert_eq!(found.finding.status, Status::Warn);
        assert_eq!(
            found.label,
            "golang.org/x/crypto argon2, chacha20poly1305 (unvalidated crypto)"
        );
        assert!(fips140_module(&go).is_some(), "the module is found too");
        let without = GoBinary {
            names: b"crypto/internal/fips140/v1.0.0-c2097c7c/aes.New\0\
                vendor/golang.org/x/crypto/chacha20poly1305.New\0",
            ..go
        };
        assert!(x_crypto(&without).is_none());
    }

    const FIPS_MODINFO: &str = "path\texample.com/server\n\
        mod\texample.com/server\t(devel)\t\n\
        build\t-ldflags=\"-s -w\"\n\
        build\tCGO_ENABLED=0\n\
        build\tGOFIPS140=v1.0.0-c2097c7c\n\
        build\tDefaultGODEBUG=fips140=on,tlsmlkem=0\n";

    #[test]
    fn reads_the_go_1_24_fips_settings() {
        let info = BuildInfo::parse(&blob("go1.24.1", FIPS_MODINFO)).expect("parses");
        assert_eq!(info.go_version(), "go1.24.1");
        assert_eq!(info.path.as_deref(), Some("example.com/server"));
        assert_eq!(info.gofips140(), Some("v1.0.0-c2097c7c"));
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(
            info.setting("DefaultGODEBUG"),
            Some("fips140=on,tlsmlkem=0")
        );
        assert!(!info.has_experiment("boringcrypto"));
    }

    #[test]
    fn a_frozen_module_switched_off_by_default_warns() {
        let go = |modinfo: &str| GoBinary {
            build: BuildInfo::parse(&blob("go1.24.1", modinfo)),
            located: String::new(),
            names: b"crypto/internal/fips140/v1.0.0-c2097c7c/aes.New\0",
        };
        let on = fips140_module(&go(FIPS_MODINFO)).unwrap();
        assert_eq!(on.finding.status, Status::Pass);
        let off = FIPS_MODINFO.replace("fips140=on", "fips140=off");
        let off = fips140_module(&go(&off)).unwrap();
        assert_eq!(off.finding.status, Status::Warn);
        assert!(
            off.finding
                .evidence
                .iter()
                .any(|line| line.contains("FIPS 140 mode is off")),
            "{:?}",
            off.finding.evidence
        );
    }

    #[test]
    fn gofips140_off_is_no_module() {
        let info = BuildInfo::parse(&blob("go1.24.1", "build\tGOFIPS140=off\n")).expect("parses");
        assert_eq!(info.gofips140(), None);
    }

    #[test]
    fn experiments_come_from_the_setting_or_the_version() {
        let modinfo = "path\tx\nbuild\tGOEXPERIMENT=arenas,boringcrypto\n";
        let info = BuildInfo::parse(&blob("go1.19.8", modinfo)).expect("parses");
        assert!(info.has_experiment("boringcrypto"));
        let info = BuildInfo::parse(&blob("go1.19.8 X:boringcrypto", "path\tx\n")).expect("parses");
        assert!(info.has_experiment("boringcrypto"));
        assert_eq!(info.go_version(), "go1.19.8");
    }

    #[test]
    fn a_long_module_info_needs_a_multi_byte_length() {
        let modinfo = format!(
            "path\tx\n{}",
            "dep\texample.com/dependency\tv1.0.0\t\n".repeat(20)
        );
        assert!(BuildInfo::parse(&blob("go1.22.0", &modinfo)).is_some());
    }

    #[test]
    fn rejects_what_is_not_go_1_18_build_info() {
        let mut pointers = blob("go1.17", "path\tx\n");
        pointers[15] = 0;
        assert_eq!(BuildInfo::parse(&pointers), None);
        assert_eq!(BuildInfo::parse(&blob("not a version", "path\tx\n")), None);
        let whole = blob("go1.22.0", "path\tx\n");
        assert_eq!(BuildInfo::parse(&whole[..whole.len() - 5]), None);
        assert_eq!(BuildInfo::parse(b"\xff Go buildinf:"), None);
    }

    #[test]
    fn finds_build_info_without_a_section_only_when_aligned() {
        let mut bytes = vec![0u8; 48];
        bytes.extend(blob("go1.21.0", "path\tx\n"));
        assert_eq!(find_by_magic(&bytes).map(|(offset, _)| offset), Some(48));
        let mut misaligned = vec![0u8; 49];
        misaligned.extend(blob("go1.21.0", "path\tx\n"));
        assert_eq!(find_by_magic(&misaligned), None);
    }

    #[test]
    fn the_snapshot_version_comes_from_package_paths() {
        let names = b"\0crypto/internal/fips140/v1.0.0-c2097c7c/aes.(*Block).Encrypt\0";
        let go = GoBinary {
            build: None,
            located: String::new(),
            names,
        };
        assert_eq!(go.fips140_snapshot().as_deref(), Some("v1.0.0-c2097c7c"));
        let in_tree = GoBinary {
            build: None,
            located: String::new(),
            names: b"crypto/internal/fips140/aes.New\0",
        };
        assert_eq!(in_tree.fips140_snapshot(), None);
    }
}
