//! The module boundary as a build fact: only `fipsguard-crypto` touches
//! crypto primitives, and the primitives are AWS-LC's validated FIPS 3.0
//! module, nothing else.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that implement cryptographic primitives. None may be a direct
/// dependency of any workspace crate but the boundary.
#[rustfmt::skip]
const PRIMITIVE_CRATES: &[&str] = &[
    "aws-lc-rs", "aws-lc-sys", "aws-lc-fips-sys", "ring", "openssl", "openssl-sys", "boring",
    "boring-sys", "aes", "aes-gcm", "aes-gcm-siv", "aes-kw", "aes-siv", "ccm", "ctr", "cbc",
    "cipher", "des", "rc4", "chacha20", "chacha20poly1305", "poly1305", "salsa20", "md-5", "md5",
    "md4", "sha1", "sha-1", "sha2", "sha3", "blake2", "blake3", "hmac", "hkdf", "pbkdf2", "scrypt",
    "argon2", "p192", "p224", "p256", "p384", "p521", "k256", "ecdsa", "elliptic-curve",
    "ed25519-dalek", "x25519-dalek", "curve25519-dalek", "rsa", "ml-kem", "ml-dsa", "kyber",
    "pqcrypto",
];

/// Crypto implementations that must not be built into fipsguard at all.
/// (The non-FIPS `aws-lc-sys` is in the graph because rustls' provider
/// feature names it, but nothing links it: the binary test checks that.)
const FORBIDDEN_ANYWHERE: &[&str] = &["ring", "openssl-sys", "boring-sys"];

fn metadata() -> Value {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this platform's dependencies: the others are never downloaded.
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
            &host_triple(),
        ])
        .current_dir(workspace)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata JSON")
}

fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn packages(meta: &Value) -> &Vec<Value> {
    meta["packages"].as_array().unwrap()
}

fn resolved_version<'a>(meta: &'a Value, name: &str) -> Vec<&'a str> {
    packages(meta)
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| p["version"].as_str().unwrap())
        .collect()
}

#[test]
fn only_the_boundary_crate_depends_on_crypto_primitives() {
    let meta = metadata();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut offenders = Vec::new();
    for package in packages(&meta)
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
    {
        let name = package["name"].as_str().unwrap();
        if name == "fipsguard-crypto" {
            continue;
        }
        for dependency in package["dependencies"].as_array().unwrap() {
            let dep = dependency["name"].as_str().unwrap();
            if PRIMITIVE_CRATES.contains(&dep) {
                offenders.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "crypto primitives outside the boundary: {offenders:?}"
    );
}

/// Names of the packages the workspace builds into its binaries and
/// libraries on this platform, with features resolved as a build resolves
/// them (`cargo tree`; `cargo metadata` over-approximates optional ones).
fn built_packages() -> Vec<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--workspace",
            "--locked",
            "--offline",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(["--target", &host_triple()])
        .current_dir(workspace)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_other_crypto_implementation_is_in_the_build() {
    let built = built_packages();
    assert!(
        built.iter().any(|p| p == "aws-lc-fips-sys"),
        "the FIPS module is built"
    );
    for name in FORBIDDEN_ANYWHERE {
        assert!(
            !built.iter().any(|p| p == name),
            "{name} is built into fipsguard"
        );
    }
}

#[test]
fn the_binary_links_only_the_validated_module() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_fipsguard")).unwrap();
    let contains = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    // AWS-LC prefixes every C symbol with its crate and version.
    assert!(
        contains(b"aws_lc_fips_0_13_"),
        "no AWS-LC FIPS 0.13 symbols in the binary"
    );
    assert!(
        !contains(b"aws_lc_0_"),
        "the non-FIPS AWS-LC is linked into the binary"
    );
}

#[test]
fn the_resolved_module_is_aws_lc_fips_3_0() {
    let meta = metadata();
    let fips_sys = resolved_version(&meta, "aws-lc-fips-sys");
    assert_eq!(
        fips_sys.len(),
        1,
        "exactly one aws-lc-fips-sys: {fips_sys:?}"
    );
    assert!(
        fips_sys[0].starts_with("0.13."),
        "aws-lc-fips-sys {} is not the validated 0.13.x (AWS-LC FIPS 3.0)",
        fips_sys[0]
    );
    let rs = resolved_version(&meta, "aws-lc-rs");
    assert_eq!(rs.len(), 1);
    let minor_patch: Vec<u32> = rs[0].split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        minor_patch[0] == 1 && minor_patch[1] == 17 && minor_patch[2] >= 1,
        "aws-lc-rs {} is outside >=1.17.1, <1.18",
        rs[0]
    );

    let boundary = packages(&meta)
        .iter()
        .find(|p| p["name"] == "fipsguard-crypto")
        .unwrap();
    let aws_lc = boundary["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "aws-lc-rs")
        .unwrap();
    assert_eq!(aws_lc["req"], ">=1.17.1, <1.18");
    assert_eq!(aws_lc["uses_default_features"], false);
    assert!(aws_lc["features"]
        .as_array()
        .unwrap()
        .contains(&"fips".into()));
}
