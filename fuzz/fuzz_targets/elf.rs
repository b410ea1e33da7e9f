//! `check binary` parses any file it is pointed at (ELF headers, dynamic
//! sections, symbol tables, Go build info). Malformed bytes must give a
//! report, never a panic.
#![no_main]

use fipsguard_check::binary::scan_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = scan_bytes("fuzz-input", data);
    assert_eq!(report.subject, "fuzz-input");
    assert!(!report.findings.is_empty());
});
