//! C strings in a binary's bytes: the evidence that survives `strip`.

use memchr::memmem;

/// Longest C string worth reading: version strings and markers are short,
/// and a bound keeps a stray prefix in binary data from costing a long scan.
const MAX_C_STRING: usize = 256;

/// A needle spelled with `_` for each space, built at run time. fipsguard
/// carries this scanner, so a needle stored verbatim would sit in fipsguard's
/// own read-only data and the scanner would find its own needles there.
pub(super) fn spelled(text: impl AsRef<[u8]>) -> Vec<u8> {
    text.as_ref()
        .iter()
        .map(|&byte| if byte == b'_' { b' ' } else { byte })
        .collect()
}

/// Whether `needle` occurs anywhere in `bytes`.
pub(super) fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    memmem::find(bytes, needle).is_some()
}

/// Every C string (printable ASCII up to a NUL) that begins with `prefix`,
/// in file order. Requiring the NUL rejects text that merely continues into
/// other data, such as Rust string literals, which are not terminated.
pub(super) fn c_strings_from<'a>(
    bytes: &'a [u8],
    prefix: &'a [u8],
) -> impl Iterator<Item = &'a str> + 'a {
    memmem::find_iter(bytes, prefix).filter_map(move |at| c_string_at(bytes, at))
}

fn c_string_at(bytes: &[u8], at: usize) -> Option<&str> {
    let rest = &bytes[at..];
    let window = &rest[..rest.len().min(MAX_C_STRING)];
    let end = memchr::memchr(0, window)?;
    let text = std::str::from_utf8(&window[..end]).ok()?;
    text.bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ')
        .then_some(text)
}

/// Whether `text` is a dotted version number such as `3.6.0`.
pub(super) fn is_version(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit())
        && text.contains('.')
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_needles_are_not_stored_verbatim() {
        assert_eq!(spelled("AWS-LC_FIPS_"), b"AWS-LC FIPS ");
    }

    #[test]
    fn c_strings_need_their_terminating_nul() {
        let bytes = b"xxAWS-LC FIPS 3.6.0\0AWS-LC FIPS 9.9.9 continues into other data";
        let found: Vec<&str> = c_strings_from(bytes, b"AWS-LC FIPS ").collect();
        assert_eq!(found, ["AWS-LC FIPS 3.6.0"]);
    }

    #[test]
    fn c_strings_are_printable_text() {
        assert_eq!(
            c_strings_from(b"OpenSSL \x01\x02\0", b"OpenSSL ").count(),
            0
        );
    }

    #[test]
    fn versions_are_dotted_numbers() {
        assert!(is_version("3.6.0"));
        assert!(!is_version("3.0, static)"));
        assert!(!is_version("KEM method"));
        assert!(!is_version("30"));
    }
}
