//! `fipsguard check binary` against real binaries: fipsguard itself (with
//! and without symbols) carries its AWS-LC FIPS module and, beside it, the
//! PostgreSQL driver's Rust crypto crates; Debian's `openssl` depends on the
//! host's libcrypto; a Go program fails on standard Go crypto and passes
//! when built with `GOEXPERIMENT=boringcrypto`; plain C, C++ and Rust
//! programs carry no crypto; OpenSSL linked statically is named; a Rust
//! crate named like a crypto crate is found by its symbols (legacy and v0
//! mangling) and, stripped, by its source path.
//!
//! The programs are built here with the installed `cc`, `c++`, `rustc`,
//! `go` and `strip`. Without them a test is skipped with a message, except
//! under CI, where a missing tool fails it.
mod scan;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use scan::{check_json, finding};

const FIPSGUARD: &str = env!("CARGO_BIN_EXE_fipsguard");

/// Where fixtures are built; Go's cache stays between runs.
fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("check-binary")
}

/// Whether `tool` runs. Missing: skipped with a message, or a failure in CI.
fn available(tool: &str, probe: &str) -> bool {
    let runs = Command::new(tool)
        .arg(probe)
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required to run these tests in CI"
        );
        eprintln!("SKIPPED: `{tool}` is not installed; this test needs it");
    }
    runs
}

/// `fipsguard check binary PATHS --format json`: the exit code and the document.
fn check(paths: &[&Path]) -> (i32, Value) {
    check_json(std::iter::once(Path::new("binary")).chain(paths.iter().copied()))
}

/// The single report of a one-file scan.
fn check_one(path: &Path) -> (i32, Value) {
    let (code, document) = check(&[path]);
    let reports = document["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 1, "{document:#}");
    (code, reports[0].clone())
}

fn evidence(finding: &Value) -> Vec<String> {
    finding["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .map(|line| line.as_str().expect("text").to_owned())
        .collect()
}

fn has_line(lines: &[String], part: &str) -> bool {
    lines.iter().any(|line| line.contains(part))
}

fn run(command: &mut Command) {
    let output = command.output().expect("the build tool starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stripped_copy(original: &Path, into: &Path) -> PathBuf {
    let copy = into.join(format!(
        "{}-stripped",
        original.file_name().unwrap().to_string_lossy()
    ));
    run(Command::new("strip").arg("-o").arg(&copy).arg(original));
    copy
}

/// The C fixtures: a hello world and a program with OpenSSL's libcrypto
/// linked statically, and one loading it as a shared library.
struct CPrograms {
    hello: PathBuf,
    static_openssl: PathBuf,
    dynamic_openssl: PathBuf,
    /// Loads libcrypto only through a library of its own (in `lib/`, found
    /// by its `$ORIGIN` run path).
    through_library: PathBuf,
    /// The same, naming that library by its absolute path.
    through_absolute_path: PathBuf,
}

fn c_programs() -> Option<&'static CPrograms> {
    static BUILT: OnceLock<Option<CPrograms>> = OnceLock::new();
    BUILT
        .get_or_init(|| available("cc", "--version").then(build_c_programs))
        .as_ref()
}

const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";
const SHA256_C: &str = "#include <stdio.h>\n#include <openssl/evp.h>\n\
int main(void) {\n\
    unsigned char md[32]; unsigned int len = 0;\n\
    EVP_Digest(\"abc\", 3, md, &len, EVP_sha256(), NULL);\n\
    printf(\"%u\\n\", len);\n\
    return 0;\n\
}\n";
const NAMES_CPP: &str = "#include <cstdio>\n\
namespace sha2 { __attribute__((noinline)) unsigned compress(unsigned s) { return s << 5 | s >> 27; } }\n\
namespace md5 { __attribute__((noinline)) unsigned init(unsigned s) { return s * 0x67452301u; } }\n\
int main(int argc, char **) { std::printf(\"%u\\n\", sha2::compress(argc) + md5::init(argc)); }\n";

fn build_c_programs() -> CPrograms {
    let dir = work_dir().join("c");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hello.c"), HELLO_C).unwrap();
    fs::write(dir.join("sha256.c"), SHA256_C).unwrap();
    let hello = dir.join("hello");
    run(Command::new("cc")
        .arg("-o")
        .arg(&hello)
        .arg(dir.join("hello.c")));
    let static_openssl = dir.join("sha256-static-openssl");
    run(Command::new("cc")
        .arg("-o")
        .arg(&static_openssl)
        .arg(dir.join("sha256.c"))
        .args([
            "-Wl,-Bstatic",
            "-lcrypto",
            "-Wl,-Bdynamic",
            "-lpthread",
            "-ldl",
        ]));
    let dynamic_openssl = dir.join("sha256-dynamic-openssl");
    run(Command::new("cc")
        .arg("-o")
        .arg(&dynamic_openssl)
        .arg(dir.join("sha256.c"))
        .arg("-lcrypto"));
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    fs::write(
        dir.join("wrap.c"),
        SHA256_C.replace("int main(void)", "int sha256_main(void)"),
    )
    .unwrap();
    fs::write(
        dir.join("main.c"),
        "int sha256_main(void);\nint main(void) { return sha256_main(); }\n",
    )
    .unwrap();
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(lib.join("libsha256wrap.so"))
        .arg(dir.join("wrap.c"))
        .arg("-lcrypto"));
    let through_library = dir.join("sha256-through-library");
    run(Command::new("cc")
        .arg("-o")
        .arg(&through_library)
        .arg(dir.join("main.c"))
        .arg("-L")
        .arg(&lib)
        .args(["-lsha256wrap", "-Wl,-rpath,$ORIGIN/lib"]));
    // A library without a soname, linked by its path: DT_NEEDED is the path.
    let through_absolute_path = dir.join("sha256-through-absolute-path");
    run(Command::new("cc")
        .arg("-o")
        .arg(&through_absolute_path)
        .arg(dir.join("main.c"))
        .arg(lib.join("libsha256wrap.so")));
    CPrograms {
        hello,
        static_openssl,
        dynamic_openssl,
        through_library,
        through_absolute_path,
    }
}

/// Turns the `PT_GNU_STACK` program header of a 64-bit little-endian ELF
/// file into a second `PT_DYNAMIC`.
fn second_dynamic_segment(elf: &mut [u8]) {
    let word = |at: usize, len: usize| {
        elf[at..at + len]
            .iter()
            .rev()
            .fold(0usize, |n, &b| n << 8 | usize::from(b))
    };
    let (phoff, entsize, count) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    let stack = (0..count)
        .map(|i| phoff + i * entsize)
        .find(|&at| word(at, 4) == 0x6474_e551)
        .expect("a PT_GNU_STACK header");
    elf[stack..stack + 4].copy_from_slice(&2u32.to_le_bytes());
}

/// A copy of a 64-bit ELF file with its section headers gone, as `sstrip`
/// leaves it: the loader reads only the program headers.
fn without_section_headers(original: &Path, into: &Path) -> PathBuf {
    let mut bytes = fs::read(original).unwrap();
    assert_eq!(bytes[4], 2, "a 64-bit ELF file");
    bytes[0x28..0x30].fill(0); // e_shoff
    bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    let copy = into.join(format!(
        "{}-sectionless",
        original.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&copy, bytes).unwrap();
    copy
}

/// A C++ program with functions in namespaces named like Rust crypto
/// crates (`sha2::compress`, `md5::init`).
fn cpp_names_program() -> Option<&'static PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            available("c++", "--version").then(|| {
                let dir = work_dir().join("cpp");
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join("names.cpp"), NAMES_CPP).unwrap();
                let program = dir.join("names");
                run(Command::new("c++")
                    .args(["-O2", "-o"])
                    .arg(&program)
                    .arg(dir.join("names.cpp")));
                program
            })
        })
        .as_ref()
}

/// The Rust fixtures, built with the toolchain that builds fipsguard: a
/// program on std alone, and one that links a crate named `sha2` (a small
/// stand-in with the real crate's name and its registry-style source path
/// `sha2-0.10.9/src/`), with legacy and with v0 symbol mangling.
struct RustPrograms {
    plain: PathBuf,
    sha2_legacy: PathBuf,
    sha2_v0: PathBuf,
    /// The same stand-in named `ring` (`ring-0.17.14/src/`).
    ring: PathBuf,
}

fn rust_programs() -> Option<&'static RustPrograms> {
    static BUILT: OnceLock<Option<RustPrograms>> = OnceLock::new();
    BUILT
        .get_or_init(|| available("rustc", "--version").then(build_rust_programs))
        .as_ref()
}

const CRATE_RS: &str = "#[inline(never)]\n\
pub fn compress(state: &mut [u32; 8], block: &[u8]) {\n\
    assert_eq!(block.len(), 64, \"a block is 64 bytes\");\n\
    for (i, word) in block.chunks(4).enumerate() {\n\
        let word = u32::from_le_bytes(word.try_into().unwrap());\n\
        state[i % 8] = state[i % 8].rotate_left(5) ^ word;\n\
    }\n\
}\n";
const PLAIN_RS: &str = "use std::collections::HashMap;\n\
fn main() {\n\
    let mut seen = HashMap::new();\n\
    for arg in std::env::args() { *seen.entry(arg).or_insert(0) += 1; }\n\
    println!(\"{}\", seen.len());\n\
}\n";
fn build_rust_programs() -> RustPrograms {
    let dir = work_dir().join("rust");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("plain.rs"), PLAIN_RS).unwrap();
    let plain = dir.join("plain");
    run(rustc(&plain, Mangling::Legacy).arg(dir.join("plain.rs")));
    let [sha2_legacy, sha2_v0] = [Mangling::Legacy, Mangling::V0]
        .map(|mangling| program_with_crate(&dir, "sha2", "0.10.9", mangling));
    let ring = program_with_crate(&dir, "ring", "0.17.14", Mangling::Legacy);
    RustPrograms {
        plain,
        sha2_legacy,
        sha2_v0,
        ring,
    }
}

/// A program calling `CRATE_RS` built as crate `name` from the
/// registry-style directory `name-version/src/`.
fn program_with_crate(dir: &Path, name: &str, version: &str, mangling: Mangling) -> PathBuf {
    let source = dir
        .join("registry")
        .join(format!("{name}-{version}"))
        .join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("lib.rs"), CRATE_RS).unwrap();
    let main = dir.join(format!("with_{name}.rs"));
    let call = format!(
        "fn main() {{ let mut state = [0u32; 8]; {name}::compress(&mut state, &[std::env::args().count() as u8; 64]); println!(\"{{state:?}}\"); }}\n"
    );
    fs::write(&main, call).unwrap();
    let library = dir.join(format!("lib{name}-{mangling:?}.rlib"));
    run(rustc(&library, mangling)
        .args(["--crate-type", "rlib", "--crate-name", name])
        .arg(source.join("lib.rs")));
    let program = dir.join(format!("with-{name}-{mangling:?}"));
    run(rustc(&program, mangling)
        .arg("--extern")
        .arg(format!("{name}={}", library.display()))
        .arg(&main));
    program
}

#[derive(Clone, Copy, Debug)]
enum Mangling {
    /// The default (naming it needs unstable options).
    Legacy,
    V0,
}

/// `rustc` for an optimized build with the given symbol mangling.
fn rustc(output: &Path, mangling: Mangling) -> Command {
    let mut command = Command::new("rustc");
    command
        .args(["--edition", "2021", "-C", "opt-level=2", "-o"])
        .arg(output);
    if let Mangling::V0 = mangling {
        command.arg("-Csymbol-mangling-version=v0");
    }
    command
}

/// The Go fixtures: one program using crypto/sha256 and crypto/tls, built
/// with standard Go crypto, with Go+BoringCrypto, and with BoringCrypto
/// asked for without cgo (which quietly builds standard crypto).
struct GoPrograms {
    standard: PathBuf,
    boring: PathBuf,
    boring_without_cgo: PathBuf,
}

fn go_programs() -> Option<&'static GoPrograms> {
    static BUILT: OnceLock<Option<GoPrograms>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // BoringCrypto is linked through cgo, so it needs a C compiler.
            let tools = available("go", "version") && available("cc", "--version");
            tools.then(build_go_programs)
        })
        .as_ref()
}

const MAIN_GO: &str = "package main\n\n\
import (\n\t\"crypto/sha256\"\n\t\"crypto/tls\"\n\t\"fmt\"\n)\n\n\
func main() {\n\
\tsum := sha256.Sum256([]byte(\"fipsguard\"))\n\
\tfmt.Printf(\"%x %d\\n\", sum, len(tls.CipherSuites()))\n\
}\n";

fn build_go_programs() -> GoPrograms {
    let root = work_dir().join("go");
    let source = root.join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("main.go"), MAIN_GO).unwrap();
    fs::write(
        source.join("go.mod"),
        "module example.com/fipsguardtest\n\ngo 1.19\n",
    )
    .unwrap();
    let standard = root.join("standard-crypto");
    let boring = root.join("boringcrypto");
    let boring_without_cgo = root.join("boringcrypto-without-cgo");
    run(go_build(&root, &standard).env("CGO_ENABLED", "0"));
    run(go_build(&root, &boring)
        .env("CGO_ENABLED", "1")
        .env("GOEXPERIMENT", "boringcrypto"));
    run(go_build(&root, &boring_without_cgo)
        .env("CGO_ENABLED", "0")
        .env("GOEXPERIMENT", "boringcrypto"));
    GoPrograms {
        standard,
        boring,
        boring_without_cgo,
    }
}

/// `go build` with nothing from the user's environment or the network.
fn go_build(root: &Path, output: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .args(["build", "-o"])
        .arg(output)
        .arg(".")
        .current_dir(root.join("src"))
        .env("HOME", root)
        .env("GOPATH", root.join("gopath"))
        .env("GOCACHE", root.join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOEXPERIMENT");
    command
}

/// fipsguard carries AWS-LC FIPS, and beside it the PostgreSQL driver's
/// RustCrypto (SCRAM), which the scanner reports as a warning.
#[test]
fn fipsguard_carries_the_validated_module() {
    let (code, report) = check_one(Path::new(FIPSGUARD));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["kind"], "binary");
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains(" beside validated module: AWS-LC FIPS "),
        "{summary}"
    );
    let rust = finding(&report, "binary.rust-crypto");
    assert_eq!(rust["status"], "warn");
    let lines = evidence(rust);
    for symbols in [
        "symbols of crate sha2, e.g. ",
        "symbols of crate hmac, e.g. ",
    ] {
        assert!(has_line(&lines, symbols), "{lines:?}");
    }
    let module = finding(&report, "binary.aws-lc-fips");
    assert_eq!(module["status"], "pass");
    let lines = evidence(module);
    assert!(has_line(&lines, "string \"AWS-LC FIPS "), "{lines:?}");
    assert!(
        has_line(&lines, "symbol BORINGSSL_bcm_text_start"),
        "{lines:?}"
    );
    assert!(has_line(&lines, "_FIPS_mode"), "{lines:?}");
    assert_eq!(finding(&report, "binary.crypto-module")["status"], "warn");
}

#[test]
fn stripped_fipsguard_is_judged_on_its_strings() {
    if !available("strip", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stripped = stripped_copy(Path::new(FIPSGUARD), dir.path());
    let (code, report) = check_one(&stripped);
    assert_eq!(code, 0, "{report:#}");
    // Rust crates are seen by their panic messages' paths: a debug build
    // (the one tests run) keeps them for the driver's sha2; an optimized
    // one may have none left.
    let rust = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "binary.rust-crypto");
    if cfg!(debug_assertions) {
        assert_eq!(report["verdict"], "warn", "{report:#}");
        let lines = evidence(rust.unwrap());
        assert!(has_line(&lines, "source path \"sha2-"), "{lines:?}");
        assert!(
            lines.iter().all(|l| l.starts_with("source path ")),
            "strip removed the symbols: {lines:?}"
        );
    } else if rust.is_none() {
        assert_eq!(report["verdict"], "pass", "{report:#}");
    }
    let lines = evidence(finding(&report, "binary.aws-lc-fips"));
    let symbol_lines = lines
        .iter()
        .filter(|line| line.starts_with("symbol") || line.contains(" symbols "));
    assert_eq!(symbol_lines.count(), 0, "strip removed them: {lines:?}");
    assert!(has_line(&lines, "string \"AWS-LC FIPS "), "{lines:?}");
    assert!(
        has_line(&lines, "string \"FIPS integrity test\""),
        "{lines:?}"
    );
}

#[test]
fn debian_openssl_depends_on_the_host() {
    let openssl = Path::new("/usr/bin/openssl");
    if !available("/usr/bin/openssl", "version") {
        return;
    }
    let (code, report) = check_one(openssl);
    assert_eq!(code, 0, "a warning is not a failure: {report:#}");
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let host = finding(&report, "binary.dynamic-crypto");
    let lines = evidence(host);
    assert!(has_line(&lines, "DT_NEEDED libcrypto.so.3"), "{lines:?}");
    assert!(has_line(&lines, "DT_NEEDED libssl.so.3"), "{lines:?}");
    assert!(has_line(&lines, "string \"OpenSSL 3."), "{lines:?}");
    let remediation = host["remediation"].as_str().unwrap();
    assert!(
        remediation.contains("fipsguard check host"),
        "{remediation}"
    );
}

#[test]
fn go_with_standard_crypto_fails() {
    let Some(go) = go_programs() else { return };
    let (code, report) = check_one(&go.standard);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "fail", "{report:#}");
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Go native crypto (go1.") && summary.ends_with("no validated module"),
        "{summary}"
    );
    let lines = evidence(finding(&report, "binary.go-crypto"));
    assert!(has_line(&lines, "crypto/sha256"), "{lines:?}");
    assert!(has_line(&lines, "crypto/tls"), "{lines:?}");
    let build = evidence(finding(&report, "binary.go-build"));
    assert!(
        has_line(&build, "path example.com/fipsguardtest"),
        "{build:?}"
    );
    assert!(has_line(&build, "build CGO_ENABLED=0"), "{build:?}");
}

#[test]
fn go_with_boringcrypto_passes() {
    let Some(go) = go_programs() else { return };
    let (code, report) = check_one(&go.boring);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "pass", "{report:#}");
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("validated module: Go BoringCrypto (go1."),
        "{summary}"
    );
    let lines = evidence(finding(&report, "binary.boringcrypto"));
    assert!(
        has_line(&lines, "build setting GOEXPERIMENT=boringcrypto"),
        "{lines:?}"
    );
    assert!(has_line(&lines, "symbols _goboringcrypto_"), "{lines:?}");
    let build = evidence(finding(&report, "binary.go-build"));
    assert!(
        has_line(&build, "build GOEXPERIMENT=boringcrypto"),
        "{build:?}"
    );
}

#[test]
fn go_boringcrypto_asked_for_but_not_linked_fails() {
    let Some(go) = go_programs() else { return };
    let (code, report) = check_one(&go.boring_without_cgo);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "fail", "{report:#}");
    let lines = evidence(finding(&report, "binary.go-crypto"));
    assert!(
        has_line(
            &lines,
            "GOEXPERIMENT=boringcrypto, yet BoringCrypto is not linked"
        ),
        "{lines:?}"
    );
}

#[test]
fn stripped_go_binaries_keep_their_verdicts() {
    let Some(go) = go_programs() else { return };
    if !available("strip", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let standard = stripped_copy(&go.standard, dir.path());
    let boring = stripped_copy(&go.boring, dir.path());
    let (_, report) = check_one(&standard);
    assert_eq!(report["verdict"], "fail", "{report:#}");
    let (_, report) = check_one(&boring);
    assert_eq!(report["verdict"], "pass", "{report:#}");
    let lines = evidence(finding(&report, "binary.boringcrypto"));
    assert!(
        has_line(&lines, "crypto/internal/boring/sig.BoringCrypto"),
        "{lines:?}"
    );
}

/// A program loading libcrypto, with and without its section headers:
/// the libraries it loads are read from its dynamic segment either way
/// (read from sections only, the copy passed as carrying no crypto).
#[test]
fn a_program_without_section_headers_still_shows_what_it_loads() {
    let Some(c) = c_programs() else { return };
    let sectionless = without_section_headers(&c.dynamic_openssl, &work_dir());
    for program in [&c.dynamic_openssl, &sectionless] {
        let (code, report) = check_one(program);
        assert_eq!(code, 0, "a warning is not a failure: {report:#}");
        assert_eq!(report["verdict"], "warn", "{report:#}");
        let lines = evidence(finding(&report, "binary.dynamic-crypto"));
        assert!(has_line(&lines, "DT_NEEDED libcrypto.so.3"), "{lines:?}");
    }
}

/// A program that loads libcrypto only through a library of its own (curl
/// through libcurl): the library is found by the program's run path, as
/// the loader finds it, and what it loads is the program's too.
#[test]
fn crypto_loaded_through_another_library_is_found() {
    let Some(c) = c_programs() else { return };
    let (code, report) = check_one(&c.through_library);
    assert_eq!(code, 0, "a warning is not a failure: {report:#}");
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let lines = evidence(finding(&report, "binary.dynamic-crypto"));
    assert!(
        has_line(
            &lines,
            "DT_NEEDED libcrypto.so.3 (OpenSSL) of libsha256wrap.so, which this file loads"
        ),
        "{lines:?}"
    );
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains("libcrypto.so.3 (through libsha256wrap.so)"),
        "{summary}"
    );

    let (_, report) = check_one(&c.through_absolute_path);
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let lines = evidence(finding(&report, "binary.dynamic-crypto"));
    assert!(
        has_line(&lines, "lib/libsha256wrap.so, which this file loads"),
        "{lines:?}"
    );

    // Beside a library the loader would load but no tool reads alike (a
    // second dynamic segment), what it loads cannot be told: an error.
    let bad = work_dir().join("through-a-bad-library");
    fs::create_dir_all(bad.join("lib")).unwrap();
    fs::copy(&c.through_library, bad.join("program")).unwrap();
    let mut library = fs::read(
        c.through_library
            .with_file_name("lib")
            .join("libsha256wrap.so"),
    )
    .unwrap();
    second_dynamic_segment(&mut library);
    fs::write(bad.join("lib/libsha256wrap.so"), library).unwrap();
    let (code, report) = check_one(&bad.join("program"));
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "error", "{report:#}");
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains("a library it loads") && summary.contains("more than one dynamic segment"),
        "{summary}"
    );

    // Moved away from its library, it loads nothing this host can show.
    let alone = work_dir().join("sha256-through-library-alone");
    fs::copy(&c.through_library, &alone).unwrap();
    let (code, report) = check_one(&alone);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "not-applicable", "{report:#}");
}

#[test]
fn plain_c_carries_no_crypto() {
    let Some(c) = c_programs() else { return };
    let (code, report) = check_one(&c.hello);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "not-applicable", "{report:#}");
    assert_eq!(report["summary"], "no crypto");
}

#[test]
fn plain_rust_and_cpp_carry_no_crypto() {
    let Some(rust) = rust_programs() else { return };
    let Some(cpp) = cpp_names_program() else {
        return;
    };
    // C++ names in namespaces called sha2 and md5 are mangled like Rust's
    // legacy names but lack their hash: not Rust crates.
    let bytes = fs::read(cpp).unwrap();
    assert!(
        memchr::memmem::find(&bytes, b"_ZN4sha28compressEj").is_some(),
        "the fixture keeps its C++ symbol"
    );
    for program in [&rust.plain, cpp] {
        let (code, report) = check_one(program);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["verdict"], "not-applicable", "{report:#}");
        assert_eq!(report["summary"], "no crypto");
    }
}

#[test]
fn a_rust_crypto_crate_is_named_by_its_symbols_in_either_mangling() {
    let Some(rust) = rust_programs() else { return };
    for (program, symbol) in [
        (&rust.sha2_legacy, "e.g. _ZN4sha28compress17h"),
        (&rust.sha2_v0, "e.g. _RNvCs"),
    ] {
        let (code, report) = check_one(program);
        assert_eq!(code, 0, "a warning is not a failure: {report:#}");
        assert_eq!(report["verdict"], "warn", "{report:#}");
        let lines = evidence(finding(&report, "binary.rust-crypto"));
        assert!(has_line(&lines, "symbols of crate sha2, "), "{lines:?}");
        assert!(has_line(&lines, symbol), "{lines:?}");
        assert!(
            has_line(&lines, "source path \"sha2-0.10.9/src/\""),
            "{lines:?}"
        );
    }
}

#[test]
fn a_stripped_rust_crypto_crate_is_named_by_its_source_path() {
    let Some(rust) = rust_programs() else { return };
    if !available("strip", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stripped = stripped_copy(&rust.sha2_legacy, dir.path());
    let (code, report) = check_one(&stripped);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let lines = evidence(finding(&report, "binary.rust-crypto"));
    assert_eq!(
        lines,
        ["source path \"sha2-0.10.9/src/\" (a panic message)"],
        "strip removed the symbols"
    );
}

#[test]
fn ring_is_named_by_its_symbols_or_in_a_stripped_binary_by_its_source_path() {
    let Some(rust) = rust_programs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut programs = vec![(rust.ring.clone(), "symbols of crate ring, ")];
    if available("strip", "--version") {
        let stripped = stripped_copy(&rust.ring, dir.path());
        programs.push((stripped, "source path \"ring-0.17.14/src/\""));
    }
    for (program, line) in programs {
        let (code, report) = check_one(&program);
        assert_eq!(code, 1, "ring is not a validated module: {report:#}");
        let lines = evidence(finding(&report, "binary.ring"));
        assert!(has_line(&lines, line), "{lines:?}");
    }
}

#[test]
fn static_openssl_3_needs_the_hosts_provider() {
    let Some(c) = c_programs() else { return };
    let (code, report) = check_one(&c.static_openssl);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "warn", "{report:#}");
    let lines = evidence(finding(&report, "binary.openssl-static"));
    assert!(
        has_line(&lines, "string \"OpenSSL Default Provider\""),
        "{lines:?}"
    );
}

#[test]
fn a_directory_gives_one_report_per_elf_file_in_path_order() {
    let (Some(c), Some(go)) = (c_programs(), go_programs()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("go")).unwrap();
    fs::copy(&c.hello, root.join("hello")).unwrap();
    fs::copy(&go.standard, root.join("go/standard")).unwrap();
    fs::copy(&go.boring, root.join("go/boring")).unwrap();
    fs::write(root.join("README.txt"), "not a binary\n").unwrap();
    // A second name for a file, and a loop: each file once, no recursion forever.
    symlink(root.join("hello"), root.join("also-hello")).unwrap();
    symlink(root, root.join("go/loop")).unwrap();

    let (code, document) = check(&[root]);
    assert_eq!(code, 1, "one program fails: {document:#}");
    assert_eq!(document["verdict"], "fail");
    let reports: Vec<(String, String)> = document["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|report| {
            let subject = report["subject"].as_str().unwrap();
            let relative = Path::new(subject).strip_prefix(root).unwrap();
            (
                relative.display().to_string(),
                report["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("go/boring", "pass"),
        ("go/standard", "fail"),
        ("hello", "not-applicable"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(path, verdict)| (path.to_string(), verdict.to_string()))
        .collect();
    assert_eq!(reports, expected);
}

#[test]
fn a_named_file_that_is_not_elf_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(&text, "#!/bin/sh\necho not ELF\n").unwrap();
    let (code, report) = check_one(&text);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "error");
    assert!(has_line(
        &evidence(finding(&report, "binary.crypto-module")),
        "not an ELF file"
    ));
}

#[test]
fn a_missing_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = check_one(&dir.path().join("absent"));
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "error");
}

#[test]
fn a_directory_without_binaries_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("build.log"), "the build put nothing here\n").unwrap();
    let (code, report) = check_one(dir.path());
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "error");
    assert!(has_line(
        &evidence(finding(&report, "binary.crypto-module")),
        "no ELF file under it"
    ));
}

/// Beside a directory that holds binaries, one that holds none is still
/// an error: a gate over `dist/ plugins/` must not pass when the build put
/// nothing in one of them. A file under both counts for both.
#[test]
fn each_named_directory_without_binaries_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let (full, empty) = (root.path().join("dist"), root.path().join("plugins"));
    fs::create_dir_all(full.join("bin")).unwrap();
    fs::create_dir(&empty).unwrap();
    fs::copy("/bin/true", full.join("bin/tool")).unwrap();
    fs::write(empty.join("build.log"), "nothing was built\n").unwrap();
    let (code, document) = check(&[&full, &empty]);
    assert_eq!(code, 2, "{document:#}");
    let reports = document["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{document:#}");
    let refused = reports
        .iter()
        .find(|r| r["subject"] == empty.display().to_string().as_str())
        .unwrap_or_else(|| panic!("no report on {}: {document:#}", empty.display()));
    assert!(has_line(
        &evidence(finding(refused, "binary.crypto-module")),
        "no ELF file under it"
    ));
    // The inner directory named too: its binary is checked once, for both.
    let (code, document) = check(&[&full, &full.join("bin")]);
    assert_ne!(code, 2, "{document:#}");
    assert_eq!(
        document["reports"].as_array().unwrap().len(),
        1,
        "{document:#}"
    );
}

/// A named directory this user cannot read (the scan runs as `nobody`
/// where the tests run as root, who reads everything) is one error that says why, not also a
/// directory without binaries; the readable one beside it is judged.
#[test]
fn a_named_directory_that_cannot_be_read_is_one_error() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let at = |name: &str| root.path().join(name);
    let mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(root.path(), 0o755);
    // A copy nobody may run, wherever this checkout lies.
    fs::copy(FIPSGUARD, at("fipsguard")).unwrap();
    fs::create_dir(at("open")).unwrap();
    fs::copy("/bin/true", at("open/tool")).unwrap();
    fs::create_dir(at("locked")).unwrap();
    fs::copy("/bin/true", at("locked/tool")).unwrap();
    mode(&at("locked"), 0o000);
    let mut command = scan::as_nobody(&at("fipsguard"));
    command
        .args(["check", "binary"])
        .args([at("open"), at("locked")]);
    let (code, document) = scan::json_of(command);
    mode(&at("locked"), 0o755); // for the temporary directory's removal
    assert_eq!(code, 2, "{document:#}");
    let reports = document["reports"].as_array().unwrap();
    let locked = at("locked").display().to_string();
    let on_locked: Vec<_> = reports
        .iter()
        .filter(|r| r["subject"] == locked.as_str())
        .collect();
    assert_eq!(on_locked.len(), 1, "{document:#}");
    let evidence = evidence(finding(on_locked[0], "binary.crypto-module"));
    assert!(
        has_line(&evidence, "cannot read") && has_line(&evidence, "Permission denied"),
        "{evidence:?}"
    );
    assert!(!has_line(&evidence, "no ELF file under it"), "{evidence:?}");
    let tool = at("open/tool").display().to_string();
    assert!(
        reports.iter().any(|r| r["subject"] == tool.as_str()),
        "{document:#}"
    );
}

#[test]
fn an_elf_file_too_large_to_read_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("core");
    let file = fs::File::create(&huge).unwrap();
    std::io::Write::write_all(&mut &file, b"\x7fELF").unwrap();
    file.set_len((2 << 30) + 1).unwrap(); // sparse: no disk, no memory
    let (code, report) = check_one(&huge);
    assert_eq!(code, 2, "{report:#}");
    assert!(has_line(
        &evidence(finding(&report, "binary.crypto-module")),
        "over the 2 GiB"
    ));
}
