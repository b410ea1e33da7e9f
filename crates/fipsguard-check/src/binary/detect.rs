//! Crypto in native code: the libraries a binary loads from the host, the
//! C libraries compiled into it (AWS-LC, BoringSSL, OpenSSL, ring), and
//! Rust crates that implement primitives themselves.

use super::elf::Facts;
use super::go;
use super::loader::Indirect;
use super::strings::{c_strings_from, contains, is_version, spelled};
use super::{Component, EvidenceSet, BORINGCRYPTO, BORINGCRYPTO_TITLE, HOST_REMEDIATION};
use crate::{Finding, Status};

/// Shared libraries whose module is the host's, by soname stem.
const HOST_LIBRARIES: [(&str, &str); 9] = [
    ("libcrypto", "OpenSSL"),
    ("libssl", "OpenSSL"),
    ("libgnutls", "GnuTLS"),
    ("libnettle", "Nettle, GnuTLS's crypto"),
    ("libhogweed", "Nettle, GnuTLS's crypto"),
    ("libgcrypt", "libgcrypt"),
    ("libnss3", "NSS"),
    ("libssl3", "NSS"),
    ("libwolfssl", "wolfSSL"),
];

/// Symbols that delimit and check the integrity of a BoringSSL-derived FIPS
/// module (BoringCrypto, AWS-LC FIPS): `bcm` is the module's object file.
const MODULE_SYMBOLS: [&str; 4] = [
    "BORINGSSL_bcm_text_start",
    "BORINGSSL_bcm_text_end",
    "BORINGSSL_bcm_text_hash",
    "BORINGSSL_integrity_test",
];
/// The same module's self-check messages, which survive `strip` (spelled).
const MODULE_STRINGS: [&str; 2] = [
    "FIPS_integrity_test",
    "FIPS_module_doesn't_span_expected_symbol",
];

/// Names of OpenSSL's own implementations, compiled in with its libcrypto.
const OPENSSL_MARKERS: [&str; 2] = ["Default Provider", "PKCS#1 RSA"];

/// Rust crates that implement cryptographic primitives in Rust (RustCrypto,
/// dalek, rand's ChaCha generator, orion): none is a validated module. As
/// `(package, library)`: the package names source paths, the library
/// (`-` as `_`, or renamed) names symbols and the finding's label.
const RUST_CRYPTO_CRATES: [(&str, &str); 56] = [
    ("aes", "aes"),
    ("aes-gcm", "aes_gcm"),
    ("aes-gcm-siv", "aes_gcm_siv"),
    ("aes-siv", "aes_siv"),
    ("aes-kw", "aes_kw"),
    ("ccm", "ccm"),
    ("ctr", "ctr"),
    ("cbc", "cbc"),
    ("xts-mode", "xts_mode"),
    ("des", "des"),
    ("blowfish", "blowfish"),
    ("rc4", "rc4"),
    ("chacha20", "chacha20"),
    ("chacha20poly1305", "chacha20poly1305"),
    ("xsalsa20poly1305", "xsalsa20poly1305"),
    ("poly1305", "poly1305"),
    ("salsa20", "salsa20"),
    ("ghash", "ghash"),
    ("polyval", "polyval"),
    ("sha1", "sha1"),
    ("sha-1", "sha1"),
    ("sha1_smol", "sha1_smol"),
    ("sha2", "sha2"),
    ("sha3", "sha3"),
    ("keccak", "keccak"),
    ("tiny-keccak", "tiny_keccak"),
    ("md-5", "md5"),
    ("md5", "md5"),
    ("md4", "md4"),
    ("ripemd", "ripemd"),
    ("blake2", "blake2"),
    ("blake2b_simd", "blake2b_simd"),
    ("blake2s_simd", "blake2s_simd"),
    ("blake3", "blake3"),
    ("hmac", "hmac"),
    ("hkdf", "hkdf"),
    ("pbkdf2", "pbkdf2"),
    ("scrypt", "scrypt"),
    ("argon2", "argon2"),
    ("bcrypt", "bcrypt"),
    ("p256", "p256"),
    ("p384", "p384"),
    ("p521", "p521"),
    ("k256", "k256"),
    ("ecdsa", "ecdsa"),
    ("ed25519-dalek", "ed25519_dalek"),
    ("ed25519-compact", "ed25519_compact"),
    ("x25519-dalek", "x25519_dalek"),
    ("curve25519-dalek", "curve25519_dalek"),
    ("rsa", "rsa"),
    ("ml-kem", "ml_kem"),
    ("ml-dsa", "ml_dsa"),
    ("slh-dsa", "slh_dsa"),
    ("rand_chacha", "rand_chacha"),
    ("rand_hc", "rand_hc"),
    ("orion", "orion"),
];

/// Every kind of crypto the binary carries or loads, plus the Go build info
/// finding when it is a Go binary. `indirect`: the host crypto libraries
/// it loads through other libraries (none when not read from this host).
pub(super) fn components(
    facts: &Facts<'_>,
    indirect: &[Indirect],
) -> (Vec<Component>, Option<Finding>) {
    let module = boring_module(facts);
    let aws_lc = AwsLcStrings::find(facts.bytes);
    let openssl = OpenSslStrings::find(facts.bytes);
    let go = go::inspect(facts, &module);
    let paths = crate_source_paths(facts.bytes);
    let mut found: Vec<Component> = [
        host_libraries(facts, indirect, &openssl),
        aws_lc_fips(facts, &aws_lc, &module),
        aws_lc_plain(facts, &aws_lc),
        openssl_built_in(facts, &openssl),
        ring(facts, &paths),
        rust_crypto(facts, &paths),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (go_crypto, go_build) = go.unzip();
    found.extend(go_crypto.into_iter().flatten());
    found.extend(boringssl(&found, &module, &openssl));
    (found, go_build)
}

/// Evidence of a BoringSSL-derived FIPS module, whoever linked it: AWS-LC
/// FIPS or Go+BoringCrypto claim it, or it stands as BoringCrypto.
fn boring_module(facts: &Facts<'_>) -> EvidenceSet {
    let mut evidence = EvidenceSet::default();
    for symbol in MODULE_SYMBOLS.iter().filter(|name| facts.has_symbol(name)) {
        evidence.push(format!("symbol {symbol}"));
    }
    for text in MODULE_STRINGS.map(spelled) {
        if contains(facts.bytes, &text) {
            evidence.push(format!("string \"{}\"", String::from_utf8_lossy(&text)));
        }
    }
    evidence
}

fn host_libraries(
    facts: &Facts<'_>,
    indirect: &[Indirect],
    openssl: &OpenSslStrings,
) -> Option<Component> {
    let mut evidence = EvidenceSet::default();
    let mut names = Vec::new();
    let own = facts
        .dynamic
        .soname
        .iter()
        .filter_map(|name| Some((name, host_library(name)?)));
    for (name, project) in own {
        evidence.push(format!(
            "DT_SONAME {name} ({project}): this file is the host's library"
        ));
        names.push(name.clone());
    }
    let loaded = facts
        .dynamic
        .needed
        .iter()
        .filter_map(|name| Some((name, host_library(name)?)));
    for (name, project) in loaded {
        evidence.push(format!("DT_NEEDED {name} ({project})"));
        names.push(name.clone());
    }
    for library in indirect {
        evidence.push(format!(
            "DT_NEEDED {} ({}) of {}, which this file loads (as found on this host)",
            library.library, library.project, library.through
        ));
    }
    // The loader lists those one library loads together (breadth first).
    for group in indirect.chunk_by(|a, b| a.through == b.through) {
        let libraries: Vec<&str> = group.iter().map(|i| i.library.as_str()).collect();
        names.push(format!(
            "{} (through {})",
            libraries.join(", "),
            group[0].through
        ));
    }
    if names.is_empty() {
        return None;
    }
    if let Some(version) = &openssl.version {
        evidence.push(format!("string \"{version}\""));
    }
    let label = format!("crypto from the host's {}", names.join(", "));
    let finding = Finding::new(
        "binary.dynamic-crypto",
        "Crypto from the host's shared libraries",
        Status::Warn,
    )
    .remediation(HOST_REMEDIATION);
    Some(Component::new(finding, evidence, label))
}

/// The project behind a host crypto library's file name, e.g. `libssl.so.3`.
pub(super) fn host_library(name: &str) -> Option<&'static str> {
    let stem = name.split(".so").next().unwrap_or(name);
    HOST_LIBRARIES
        .iter()
        .find(|(library, _)| *library == stem)
        .map(|(_, project)| *project)
}

/// The version strings AWS-LC carries: `AWS-LC FIPS 3.6.0` in the FIPS
/// module, `AWS-LC 1.48.0` otherwise.
#[derive(Default)]
struct AwsLcStrings {
    fips: Option<String>,
    plain: Option<String>,
}

impl AwsLcStrings {
    fn find(bytes: &[u8]) -> Self {
        let mut found = AwsLcStrings::default();
        for text in c_strings_from(bytes, &spelled("AWS-LC_")) {
            let rest = &text["AWS-LC ".len()..];
            match rest.strip_prefix("FIPS ") {
                Some(version) if is_version(version) => {
                    found.fips.get_or_insert_with(|| text.to_owned())
                }
                None if is_version(rest) => found.plain.get_or_insert_with(|| text.to_owned()),
                _ => continue,
            };
        }
        found
    }
}

fn aws_lc_fips(
    facts: &Facts<'_>,
    strings: &AwsLcStrings,
    module: &EvidenceSet,
) -> Option<Component> {
    let crate_prefix = symbol_crate_prefix(facts, "aws_lc_fips_");
    let label = match (&strings.fips, &crate_prefix) {
        (Some(version), _) => format!("{version} (static)"),
        (None, Some((_, version))) => format!("AWS-LC FIPS (static, aws-lc-fips-sys {version})"),
        (None, None) => return None,
    };
    let mut evidence = EvidenceSet::default();
    if let Some(version) = &strings.fips {
        evidence.push(format!("string \"{version}\""));
    }
    if let Some((prefix, version)) = &crate_prefix {
        evidence.symbols(facts, prefix);
        evidence.push(format!("symbol prefix of aws-lc-fips-sys {version}"));
        for function in ["FIPS_mode", "awslc_version_string"] {
            let name = format!("{prefix}{function}");
            if facts.has_symbol(&name) {
                evidence.push(format!("symbol {name}"));
            }
        }
    }
    evidence.extend(module);
    let finding = Finding::new(
        "binary.aws-lc-fips",
        "AWS-LC FIPS, a validated module",
        Status::Pass,
    );
    Some(Component::new(finding, evidence, label))
}

fn aws_lc_plain(facts: &Facts<'_>, strings: &AwsLcStrings) -> Option<Component> {
    // "aws_lc_" then digits: the plain crate's prefix is never spelt out
    // whole here, or fipsguard itself would carry it (and a test proves
    // fipsguard's binary has no such bytes).
    let crate_prefix = symbol_crate_prefix(facts, "aws_lc_");
    if strings.plain.is_none() && crate_prefix.is_none() {
        return None;
    }
    let mut evidence = EvidenceSet::default();
    if let Some(version) = &strings.plain {
        evidence.push(format!("string \"{version}\""));
    }
    if let Some((prefix, version)) = &crate_prefix {
        evidence.symbols(facts, prefix);
        evidence.push(format!("symbol prefix of aws-lc-sys {version}"));
    }
    let label = format!(
        "{} (not the FIPS module)",
        strings.plain.as_deref().unwrap_or("AWS-LC")
    );
    let finding = Finding::new(
        "binary.aws-lc",
        "AWS-LC without its FIPS module",
        Status::Fail,
    )
    .remediation(
        "Build against the FIPS module (aws-lc-rs with its `fips` feature) and remove the \
         non-FIPS aws-lc-sys from the dependency tree (`cargo tree -i aws-lc-sys`).",
    );
    Some(Component::new(finding, evidence, label))
}

/// A BoringSSL-derived FIPS module that neither AWS-LC FIPS nor Go claimed
/// is BoringCrypto linked by other means; plain BoringSSL has no module.
fn boringssl(
    found: &[Component],
    module: &EvidenceSet,
    openssl: &OpenSslStrings,
) -> Option<Component> {
    let claimed = found.iter().any(|component| {
        matches!(
            component.finding.id.as_str(),
            "binary.aws-lc-fips" | "binary.aws-lc" | BORINGCRYPTO
        )
    });
    if claimed {
        return None;
    }
    let mut evidence = module.clone();
    if let Some(text) = &openssl.boringssl {
        evidence.push(format!("string \"{text}\""));
    }
    if !module.is_empty() {
        let finding = Finding::new(BORINGCRYPTO, BORINGCRYPTO_TITLE, Status::Pass);
        return Some(Component::new(
            finding,
            evidence,
            "BoringCrypto (BoringSSL FIPS module, static)".into(),
        ));
    }
    openssl.boringssl.as_ref()?;
    let finding = Finding::new(
        "binary.boringssl",
        "BoringSSL without its FIPS module",
        Status::Fail,
    )
    .remediation(
        "Build BoringSSL in FIPS mode from a validated release (BoringCrypto), or use AWS-LC FIPS.",
    );
    Some(Component::new(
        finding,
        evidence,
        "BoringSSL (no FIPS module)".into(),
    ))
}

/// The strings that begin `OpenSSL `: its version (`OpenSSL 3.0.19 27 Jan
/// 2026`), names of its implementations, and BoringSSL's compatible version.
#[derive(Default)]
struct OpenSslStrings {
    version: Option<String>,
    markers: Vec<String>,
    boringssl: Option<String>,
}

impl OpenSslStrings {
    fn find(bytes: &[u8]) -> Self {
        let mut found = OpenSslStrings::default();
        for text in c_strings_from(bytes, &spelled("OpenSSL_")) {
            let rest = &text["OpenSSL ".len()..];
            if is_openssl_version(rest) {
                found.version.get_or_insert_with(|| text.to_owned());
            } else if OPENSSL_MARKERS.contains(&rest)
                && !found.markers.iter().any(|seen| seen == text)
            {
                found.markers.push(text.to_owned());
            } else if rest.ends_with("(compatible; BoringSSL)") {
                found.boringssl.get_or_insert_with(|| text.to_owned());
            }
        }
        found
    }

    /// 3 for OpenSSL 3.x; a default provider means 3.x even without a version.
    fn major(&self) -> Option<u32> {
        let from_version = self.version.as_ref().and_then(|text| {
            let version = text["OpenSSL ".len()..].split('.').next()?;
            version.parse().ok()
        });
        let has_provider = self
            .markers
            .iter()
            .any(|text| text.ends_with("Default Provider"));
        from_version.or(has_provider.then_some(3))
    }
}

/// `3.0.19 27 Jan 2026`, `1.1.1w  11 Sep 2023`, `1.0.2k-fips  26 Jan 2017`.
fn is_openssl_version(text: &str) -> bool {
    let Some((version, date)) = text.split_once(' ') else {
        return false;
    };
    version.starts_with(|c: char| c.is_ascii_digit())
        && version.contains('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && date.trim_start().starts_with(|c: char| c.is_ascii_digit())
}

/// OpenSSL compiled in. A binary that loads libcrypto (or is libcrypto) is
/// reported as the host's library instead, with the version of its headers.
fn openssl_built_in(facts: &Facts<'_>, openssl: &OpenSslStrings) -> Option<Component> {
    let loads_openssl = facts
        .dynamic
        .needed
        .iter()
        .chain(&facts.dynamic.soname)
        .any(|name| host_library(name) == Some("OpenSSL"));
    // A version string alone may come from headers, in a binary that gets
    // libcrypto through another library: only OpenSSL's own code counts.
    if loads_openssl || openssl.markers.is_empty() {
        return None;
    }
    let mut evidence = EvidenceSet::default();
    for text in openssl.version.iter().chain(&openssl.markers) {
        evidence.push(format!("string \"{text}\""));
    }
    evidence.push("no DT_NEEDED libcrypto: the library is compiled in");
    let name = openssl
        .version
        .as_deref()
        .map_or_else(|| "OpenSSL".to_owned(), trim_date);
    let title = "OpenSSL compiled into the binary";
    let (finding, label) = if openssl.major() >= Some(3) {
        let finding = Finding::new("binary.openssl-static", title, Status::Warn).remediation(
            "OpenSSL 3 is validated only through its FIPS provider, loaded at run time: configure the \
             host's validated provider (`fipsguard check host`) or link the system libcrypto dynamically.",
        );
        (
            finding,
            format!("{name} (static, FIPS only with the host's provider)"),
        )
    } else {
        let finding = Finding::new("binary.openssl-static", title, Status::Fail).remediation(
            "OpenSSL before 3.0 has no validated module in use: rebuild against OpenSSL 3 with \
             its FIPS provider, or against AWS-LC FIPS.",
        );
        (finding, format!("{name} (static, no FIPS provider)"))
    };
    Some(Component::new(finding, evidence, label))
}

/// `OpenSSL 3.0.19 27 Jan 2026` → `OpenSSL 3.0.19`.
fn trim_date(text: &str) -> String {
    text.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// ring by any trace it leaves: its C symbols (`ring_core_<version>_`, or
/// `GFp_` before 0.17), its Rust symbols, or in a stripped binary its
/// source path (`ring-0.17.8/src/`).
fn ring(facts: &Facts<'_>, paths: &SourcePaths) -> Option<Component> {
    let mut evidence = EvidenceSet::default();
    let versioned = symbol_crate_prefix(facts, "ring_core_");
    if let Some((prefix, _)) = &versioned {
        evidence.symbols(facts, prefix);
    }
    evidence.symbols(facts, "GFp_");
    if let Some(symbol) = facts.rust_crates.get("ring") {
        evidence.push(format!("symbols of crate ring, e.g. {symbol}"));
    }
    if let Some(path) = paths.get(RING) {
        evidence.push(format!("source path \"{path}\" (a panic message)"));
    }
    if evidence.is_empty() {
        return None;
    }
    let label = versioned.map_or_else(
        || "ring".to_owned(),
        |(_, version)| format!("ring {version}"),
    );
    let finding = Finding::new("binary.ring", "ring, not a validated module", Status::Fail).remediation(
        "Use a validated provider instead (rustls with aws-lc-rs and its `fips` feature) and remove \
         ring from the dependency tree (`cargo tree -i ring`).",
    );
    Some(Component::new(finding, evidence, label))
}

/// ring's package name, found by its source paths like the crypto crates.
const RING: &str = "ring";

/// Rust crates that implement primitives, by their symbols or, in a
/// stripped binary, by their source paths in panic messages
/// (`…/sha2-0.10.9/src/…`). A warning, not a failure: such a crate may serve
/// no security function (a checksum, a cache key), which a reviewer decides.
fn rust_crypto(facts: &Facts<'_>, paths: &SourcePaths) -> Option<Component> {
    let mut evidence = EvidenceSet::default();
    let mut libraries: Vec<&str> = Vec::new();
    for (package, library) in RUST_CRYPTO_CRATES {
        let by_symbol = facts.rust_crates.get(library);
        let by_path = paths.get(package);
        let new = !libraries.contains(&library);
        if let Some(symbol) = by_symbol.filter(|_| new) {
            evidence.push(format!("symbols of crate {library}, e.g. {symbol}"));
        }
        if let Some(path) = by_path {
            evidence.push(format!("source path \"{path}\" (a panic message)"));
        }
        if new && (by_symbol.is_some() || by_path.is_some()) {
            libraries.push(library);
        }
    }
    if libraries.is_empty() {
        return None;
    }
    let finding = Finding::new(
        "binary.rust-crypto",
        "Crypto implemented in Rust crates, not a validated module",
        Status::Warn,
    )
    .remediation(
        "A crate that protects data or authenticates (encryption, signatures, password hashing, \
         a TLS or SCRAM handshake) must give way to the validated module (aws-lc-rs with its \
         `fips` feature) or leave the dependency tree (`cargo tree -i CRATE`); one that serves \
         no security function (a checksum, a cache key) may stay, documented as such.",
    );
    let label = format!("Rust crates {} (unvalidated crypto)", libraries.join(", "));
    Some(Component::new(finding, evidence, label))
}

/// The crypto crates whose `<package>-<version>/src/` a panic message's
/// location carries, by package: one pass over the file for `/src/`, each
/// hit read backwards to the start of its directory name.
/// Crypto packages by name, each with the first source path seen.
type SourcePaths = std::collections::BTreeMap<&'static str, String>;

fn crate_source_paths(bytes: &[u8]) -> SourcePaths {
    let mut found = std::collections::BTreeMap::new();
    for at in memchr::memmem::find_iter(bytes, b"/src/") {
        let start = bytes[..at]
            .iter()
            .rev()
            .take(MAX_PACKAGE_DIR)
            .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
            .count();
        let Ok(directory) = std::str::from_utf8(&bytes[at - start..at]) else {
            continue;
        };
        if let Some(package) = crypto_package(directory) {
            found
                .entry(package)
                .or_insert_with(|| format!("{directory}/src/"));
        }
    }
    found
}

/// Longest `<package>-<version>` directory name read.
const MAX_PACKAGE_DIR: usize = 96;

/// The crypto package a `<package>-<version>` directory name is of.
fn crypto_package(directory: &str) -> Option<&'static str> {
    directory.match_indices('-').find_map(|(at, _)| {
        let (name, version) = (&directory[..at], &directory[at + 1..]);
        let is_version = version.starts_with(|c: char| c.is_ascii_digit());
        RUST_CRYPTO_CRATES
            .iter()
            .map(|(package, _)| *package)
            .chain([RING])
            .find(|package| is_version && *package == name)
    })
}

/// Rust `-sys` crates prefix their C symbols with the crate version, e.g.
/// `aws_lc_fips_0_13_17_FIPS_mode`: the full prefix and the version `0.13.17`.
fn symbol_crate_prefix(facts: &Facts<'_>, prefix: &str) -> Option<(String, String)> {
    facts.symbols_with_prefix(prefix).find_map(|name| {
        let numbers: Vec<&str> = name[prefix.len()..]
            .split('_')
            .take_while(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
            .collect();
        if numbers.is_empty() {
            return None;
        }
        let full = format!("{prefix}{}_", numbers.join("_"));
        Some((full, numbers.join(".")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_versions_have_a_date() {
        assert!(is_openssl_version("3.0.19 27 Jan 2026"));
        assert!(is_openssl_version("1.1.1w  11 Sep 2023"));
        assert!(is_openssl_version("1.0.2k-fips  26 Jan 2017"));
        assert!(!is_openssl_version("1.1.1 (compatible; BoringSSL)"));
        assert!(!is_openssl_version("RSA method"));
    }

    #[test]
    fn openssl_strings_are_sorted_by_kind() {
        let bytes = b"\0OpenSSL 1.1.1w  11 Sep 2023\0OpenSSL PKCS#1 RSA\0OpenSSL 1.1.1 (compatible; BoringSSL)\0";
        let found = OpenSslStrings::find(bytes);
        assert_eq!(
            found.version.as_deref(),
            Some("OpenSSL 1.1.1w  11 Sep 2023")
        );
        assert_eq!(found.markers, ["OpenSSL PKCS#1 RSA"]);
        assert_eq!(
            found.boringssl.as_deref(),
            Some("OpenSSL 1.1.1 (compatible; BoringSSL)")
        );
        assert_eq!(found.major(), Some(1));
    }

    #[test]
    fn a_default_provider_means_openssl_3() {
        let found = OpenSslStrings::find(b"\0OpenSSL Default Provider\0");
        assert_eq!(found.major(), Some(3));
    }

    #[test]
    fn aws_lc_versions_tell_fips_from_plain() {
        let found =
            AwsLcStrings::find(b"\0AWS-LC FIPS 3.6.0\0AWS-LC 1.48.0\0AWS-LC FIPS 3.0, static)\0");
        assert_eq!(found.fips.as_deref(), Some("AWS-LC FIPS 3.6.0"));
        assert_eq!(found.plain.as_deref(), Some("AWS-LC 1.48.0"));
    }

    #[test]
    fn host_libraries_are_known_by_soname_stem() {
        assert_eq!(host_library("libssl.so.3"), Some("OpenSSL"));
        assert_eq!(host_library("libssl3.so"), Some("NSS"));
        assert_eq!(host_library("libgcrypt.so.20"), Some("libgcrypt"));
        assert_eq!(host_library("libsslx.so.1"), None);
        assert_eq!(host_library("libc.so.6"), None);
    }

    #[test]
    fn crate_sources_are_found_by_package_and_version() {
        let bytes = b"xx/registry/src/index.crates.io-1949cf8c6b5b557f/sha2-0.10.9/src/sha256.rs\0\
            /vendor/aes-gcm-siv-0.11.1/src/lib.rs\0md-5-0.11.0-rc.1/src/lib.rs\
            /home/me/aes-notes/src/x.rs /x/sha2/src/lib.rs /x/des-tools-1.0/src/";
        let found = crate_source_paths(bytes);
        let found: Vec<(&str, &str)> = found.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            found,
            [
                ("aes-gcm-siv", "aes-gcm-siv-0.11.1/src/"),
                ("md-5", "md-5-0.11.0-rc.1/src/"),
                ("sha2", "sha2-0.10.9/src/"),
            ]
        );
    }

    #[test]
    fn dates_are_trimmed_from_labels() {
        assert_eq!(trim_date("OpenSSL 3.0.19 27 Jan 2026"), "OpenSSL 3.0.19");
    }
}
