//! The structural facts of an ELF file, read with `object`: what it links
//! dynamically, the symbols that name crypto libraries, and the Go sections.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use object::elf::{DynamicTag, DT_NEEDED, DT_SONAME, DT_STRSZ, DT_STRTAB, PT_LOAD};
use object::read::elf::{Dyn, ElfFile, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol};

/// Symbol name prefixes that identify a crypto library. Only these symbols
/// are kept: a debug build has hundreds of thousands of others.
const SYMBOL_PREFIXES: [&[u8]; 4] = [
    b"BORINGSSL_",
    b"aws_lc_",
    b"ring_core_",
    b"_goboringcrypto_",
];

/// What an ELF file is made of, as far as crypto detection cares.
pub(super) struct Facts<'data> {
    /// The whole file, for string searches.
    pub bytes: &'data [u8],
    /// The `DT_NEEDED` entries: shared libraries loaded with it.
    pub needed: Vec<String>,
    /// The `DT_SONAME` entry: the name a shared library is loaded by.
    pub soname: Option<String>,
    /// Defined symbols (static and dynamic) starting with one of
    /// [`SYMBOL_PREFIXES`], sorted and without duplicates.
    symbols: Vec<&'data [u8]>,
    /// The Rust crates whose code has defined symbols here (mangled names
    /// carry the crate), each with one of its symbols as an example.
    pub rust_crates: BTreeMap<&'data str, &'data str>,
    /// The `.go.buildinfo` section.
    pub go_buildinfo: Option<&'data [u8]>,
    /// Go's function name table (`.gopclntab`; inside `.data.rel.ro` in
    /// position-independent builds, hence optional even in Go binaries).
    pub go_pclntab: Option<&'data [u8]>,
}

impl<'data> Facts<'data> {
    /// Parses `bytes` as ELF.
    pub fn parse(bytes: &'data [u8]) -> object::Result<Self> {
        let file = object::File::parse(bytes)?;
        let (needed, soname) = match &file {
            object::File::Elf32(elf) => dynamic_names(elf)?,
            object::File::Elf64(elf) => dynamic_names(elf)?,
            _ => (Vec::new(), None),
        };
        let (symbols, rust_crates) = defined_symbols(&file);
        Ok(Facts {
            bytes,
            needed,
            soname,
            symbols,
            rust_crates,
            go_buildinfo: section(&file, ".go.buildinfo"),
            go_pclntab: section(&file, ".gopclntab"),
        })
    }

    /// Whether a symbol of exactly this name is defined.
    pub fn has_symbol(&self, name: &str) -> bool {
        self.symbols.binary_search(&name.as_bytes()).is_ok()
    }

    /// The defined symbols whose names start with `prefix`, in name order.
    pub fn symbols_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'data str> + 'a {
        let prefix = prefix.as_bytes();
        let start = self.symbols.partition_point(|name| *name < prefix);
        self.symbols[start..]
            .iter()
            .take_while(move |name| name.starts_with(prefix))
            .filter_map(|name| std::str::from_utf8(name).ok())
    }
}

/// `DT_NEEDED` and `DT_SONAME`, from the dynamic section, or from the
/// dynamic segment when the section headers were removed (the loader reads
/// only segments, so such a file still loads its libraries).
fn dynamic_names<'data, Elf>(
    elf: &ElfFile<'data, Elf>,
) -> object::Result<(Vec<String>, Option<String>)>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let table = elf.elf_dynamic_table()?;
    if table.is_empty() {
        return Ok(segment_dynamic_names(elf).unwrap_or_default());
    }
    let mut needed = Vec::new();
    let mut soname = None;
    for entry in table.iter() {
        let name = || {
            table
                .string(entry)
                .map(|name| String::from_utf8_lossy(name).into_owned())
        };
        if entry.tag == DT_NEEDED {
            needed.push(name()?);
        } else if entry.tag == DT_SONAME {
            soname = Some(name()?);
        }
    }
    Ok((needed, soname))
}

/// `DT_NEEDED` and `DT_SONAME` read through the program headers: the
/// `PT_DYNAMIC` entries, their string table found by address in a
/// `PT_LOAD` segment. `None` when there is no dynamic segment or its
/// strings cannot be found.
fn segment_dynamic_names<'data, Elf>(
    elf: &ElfFile<'data, Elf>,
) -> Option<(Vec<String>, Option<String>)>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let (endian, data) = (elf.endian(), elf.data());
    let segments = elf.elf_program_headers();
    let entries = segments
        .iter()
        .find_map(|segment| segment.dynamic(endian, data).ok().flatten())?;
    let value = |tag: DynamicTag| -> Option<u64> {
        entries
            .iter()
            .find(|entry| entry.d_tag(endian) == tag)
            .map(|entry| entry.d_val(endian).into())
    };
    let (address, size) = (value(DT_STRTAB)?, value(DT_STRSZ)?);
    let strings = segments
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_LOAD)
        .find_map(|segment| segment.data_range(endian, data, address, size).ok()?)?;
    let string = |offset: u64| -> Option<String> {
        let rest = strings.get(usize::try_from(offset).ok()?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut needed = Vec::new();
    let mut soname = None;
    for entry in entries {
        let tag = entry.d_tag(endian);
        if tag == DT_NEEDED {
            needed.push(string(entry.d_val(endian).into())?);
        } else if tag == DT_SONAME {
            soname = Some(string(entry.d_val(endian).into())?);
        }
    }
    Some((needed, soname))
}

/// The defined symbols that name crypto libraries, and the Rust crates
/// that defined symbols belong to.
fn defined_symbols<'data>(
    file: &object::File<'data>,
) -> (Vec<&'data [u8]>, BTreeMap<&'data str, &'data str>) {
    let mut crypto = Vec::new();
    let mut rust_crates = BTreeMap::new();
    let defined = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|symbol| !symbol.is_undefined())
        .filter_map(|symbol| symbol.name_bytes().ok());
    for name in defined {
        if SYMBOL_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            crypto.push(name);
        } else if !(name.starts_with(b"_ZN") || name.starts_with(b"_R")) {
            continue;
        } else if let Ok(text) = std::str::from_utf8(name) {
            if let Some(krate) = rust_crate(text) {
                rust_crates.entry(krate).or_insert(text);
            }
        }
    }
    crypto.sort_unstable();
    crypto.dedup();
    (crypto, rust_crates)
}

/// The crate of a mangled Rust symbol: the first path segment of the
/// legacy scheme (`_ZN4sha26sha256...17h0123456789abcdefE`; the hash at the
/// end tells it from C++), or the crate root of the v0 scheme
/// (`_RNvCs1a2b_4sha2...`).
fn rust_crate(symbol: &str) -> Option<&str> {
    if let Some(path) = symbol.strip_prefix("_ZN") {
        let hash = path.len().checked_sub(20).and_then(|at| path.get(at..))?;
        let is_hash = hash.starts_with("17h")
            && hash.ends_with('E')
            && hash[3..19].bytes().all(|b| b.is_ascii_hexdigit());
        return is_hash.then(|| identifier(path)).flatten();
    }
    let path = symbol.strip_prefix("_R")?;
    let root = path.find("Cs")?;
    let rest = &path[root + 2..];
    let (disambiguator, rest) = rest.split_once('_')?;
    disambiguator
        .bytes()
        .all(|b| b.is_ascii_alphanumeric())
        .then(|| identifier(rest))
        .flatten()
}

/// The length-prefixed identifier at the start of `text` (`4sha2…`).
fn identifier(text: &str) -> Option<&str> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let len: usize = text[..digits].parse().ok()?;
    let ident = text[digits..].get(..len)?;
    ident
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then_some(ident)
}

fn section<'data>(file: &object::File<'data>, name: &str) -> Option<&'data [u8]> {
    file.section_by_name(name)?.data().ok()
}

/// The largest ELF file read whole: up to four are held at once, and a
/// core dump or a sparse file of many gigabytes must not exhaust memory.
const MAX_ELF_BYTES: u64 = 2 << 30;

/// The whole file when it starts with the ELF magic, `None` (after reading
/// four bytes) when it does not: most files in a directory are not ELF.
pub(super) fn read_if_elf(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    if magic != *b"\x7fELF" {
        return Ok(None);
    }
    let size = file.metadata()?.len();
    if size > MAX_ELF_BYTES {
        return Err(io::Error::other(format!(
            "an ELF file of {size} bytes, over the 2 GiB this scanner reads: not scanned (scan a stripped copy)"
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    bytes.extend_from_slice(&magic);
    // The size can grow while it is read: never past the limit.
    (&mut file).take(MAX_ELF_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::rust_crate;

    #[test]
    fn mangled_rust_symbols_name_their_crate() {
        assert_eq!(
            rust_crate("_ZN4sha26sha25612compress25617h0123456789abcdefE"),
            Some("sha2")
        );
        assert_eq!(
            rust_crate("_ZN7aes_gcm4Aes35encrypt17hfedcba9876543210E"),
            Some("aes_gcm")
        );
        assert_eq!(rust_crate("_RNvCs1a2B_4sha29compress"), Some("sha2"));
        assert_eq!(rust_crate("_RNvCs_3md54init"), Some("md5"));
        // C++ names have no Rust hash at the end; C names are not mangled.
        assert_eq!(rust_crate("_ZN3aes7encryptEPKhPh"), None);
        assert_eq!(rust_crate("aws_lc_fips_0_13_17_SHA256"), None);
        assert_eq!(rust_crate("_ZN99short17h0123456789abcdefE"), None);
        assert_eq!(
            rust_crate("_ZN18446744073709551615x17h0123456789abcdefE"),
            None
        );
        assert_eq!(rust_crate("_RCs_18446744073709551615x"), None);
    }
}
