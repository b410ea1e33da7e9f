//! The structural facts of an ELF file, read with `object`: what it links
//! dynamically, the symbols that name crypto libraries, and the Go sections.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use object::elf::{
    DynamicTag, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB,
    PT_DYNAMIC, PT_LOAD,
};
use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::ReadCache;
use object::{Endianness, Object, ObjectSection, ObjectSymbol, ReadRef};

/// Symbol name prefixes that identify a crypto library. Only these symbols
/// are kept: a debug build has hundreds of thousands of others.
const SYMBOL_PREFIXES: [&[u8]; 4] = [
    b"BORINGSSL_",
    b"aws_lc_",
    b"ring_core_",
    b"_goboringcrypto_",
];

/// What the dynamic segment says about loading.
#[derive(Debug, Default, Clone)]
pub(super) struct Dynamic {
    /// The `DT_NEEDED` entries: shared libraries loaded with it.
    pub needed: Vec<String>,
    /// The `DT_SONAME` entry: the name a shared library is loaded by.
    pub soname: Option<String>,
    /// Where its libraries are looked for first: `DT_RUNPATH`, or
    /// `DT_RPATH` when there is none (`$ORIGIN` not yet expanded).
    pub runpath: Vec<String>,
}

/// What an ELF file is made of, as far as crypto detection cares.
pub(super) struct Facts<'data> {
    /// The whole file, for string searches.
    pub bytes: &'data [u8],
    /// What it loads, and how.
    pub dynamic: Dynamic,
    /// Its class and instruction set: a library of another is not what it loads.
    pub machine: Machine,
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
    pub fn parse(bytes: &'data [u8]) -> Result<Self, String> {
        let file = object::File::parse(bytes).map_err(|e| e.to_string())?;
        let (dynamic, machine) = match &file {
            object::File::Elf32(elf) => loading(elf.elf_header(), bytes)?,
            object::File::Elf64(elf) => loading(elf.elf_header(), bytes)?,
            _ => (Dynamic::default(), Machine::default()),
        };
        let (symbols, rust_crates) = defined_symbols(&file);
        Ok(Facts {
            bytes,
            dynamic,
            machine,
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

/// An ELF file's class and machine (`e_machine`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Machine {
    class_64: bool,
    machine: u16,
}

/// What the dynamic segment says, and the file's machine: all the loader
/// needs, read through the program headers alone.
fn loading<'data, Elf, R>(header: &Elf, data: R) -> Result<(Dynamic, Machine), String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let (machine, dynamic) = examine(header, data).ok_or("the ELF header names no byte order")?;
    Ok((dynamic?, machine))
}

fn machine<Elf: FileHeader<Endian = Endianness>>(header: &Elf, endian: Endianness) -> Machine {
    Machine {
        class_64: header.is_class_64(),
        machine: header.e_machine(endian).0,
    }
}

/// `DT_NEEDED`, `DT_SONAME`, `DT_RUNPATH` and `DT_RPATH`, read as the
/// loader reads them: from the `PT_DYNAMIC` segment up to its `DT_NULL`,
/// the strings found by address in a `PT_LOAD` segment. Section headers
/// are never consulted: the loader ignores them, so they may be stripped,
/// or describe a decoy table.
fn dynamic_entries<'data, Elf, R>(
    header: &Elf,
    endian: Endianness,
    data: R,
) -> Result<Dynamic, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| format!("the program headers are unreadable: {e}"))?;
    let mut dynamic = segments
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_DYNAMIC);
    // Statically linked: no library is loaded with it.
    let Some(segment) = dynamic.next() else {
        return Ok(Dynamic::default());
    };
    // Where tools and the loader could read different tables, none is read.
    if dynamic.next().is_some() {
        return Err(
            "more than one dynamic segment (the loader takes the last, other tools the first)"
                .into(),
        );
    }
    // The loader reads the table at its address: where no file bytes are
    // loaded there (a separate debug-info file), it finds nothing.
    let offset: u64 = segment.p_offset(endian).into();
    match file_offset(segments, endian, segment.p_vaddr(endian).into()) {
        None => return Ok(Dynamic::default()),
        Some(loaded) if loaded != offset => {
            return Err("the dynamic segment's address and file offset disagree (the loader reads it at its address)".into());
        }
        Some(_) => {}
    }
    if Into::<u64>::into(segment.p_filesz(endian)) > MAX_DYNAMIC_BYTES {
        return Err("a dynamic segment over 1 MiB".into());
    }
    if loads_overlap(segments, endian) {
        return Err("loaded segments overlap (the loader maps the later over the earlier)".into());
    }
    let entries = segment
        .dynamic(endian, data)
        .map_err(|e| format!("the dynamic segment is unreadable: {e}"))?
        .unwrap_or_default();
    let entries = || {
        entries
            .iter()
            .take_while(|entry| entry.d_tag(endian) != DT_NULL)
    };
    let value = |tag: DynamicTag| -> Result<Option<u64>, String> {
        let mut values = entries()
            .filter(|entry| entry.d_tag(endian) == tag)
            .map(|entry| entry.d_val(endian).into());
        let first = values.next();
        match values.next() {
            None => Ok(first),
            Some(_) => Err(format!("the dynamic segment gives {tag:?} twice")),
        }
    };
    const NAMED: [DynamicTag; 4] = [DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_RPATH];
    let named = |entry: &&Elf::Dyn| NAMED.contains(&entry.d_tag(endian));
    let mut found = Dynamic::default();
    if !entries().any(|entry| named(&entry)) {
        return Ok(found);
    }
    let (address, size) = value(DT_STRTAB)?.zip(value(DT_STRSZ)?).ok_or(
        "the dynamic segment names libraries but has no string table (DT_STRTAB, DT_STRSZ)",
    )?;
    let table = file_offset(segments, endian, address)
        .ok_or("the dynamic string table lies in no loaded segment")?;
    let end = table
        .checked_add(size)
        .ok_or("the dynamic string table's size overflows")?;
    if entries().filter(named).count() > MAX_NAMES {
        return Err(format!("more than {MAX_NAMES} library names"));
    }
    let mut rpath = Vec::new();
    for entry in entries().filter(named) {
        let offset: u64 = entry.d_val(endian).into();
        // Each name is read alone: the table's stated size is not trusted
        // with an allocation.
        let name = table
            .checked_add(offset)
            .filter(|&start| start < end)
            .and_then(|start| data.read_bytes_at_until(start..end, 0).ok())
            .ok_or_else(|| {
                format!("a library name lies outside the dynamic string table (offset {offset})")
            })?;
        let name = String::from_utf8_lossy(name).into_owned();
        match entry.d_tag(endian) {
            DT_NEEDED => found.needed.push(name),
            DT_SONAME => found.soname = Some(name),
            DT_RUNPATH => found.runpath.extend(name.split(':').map(str::to_owned)),
            _ => rpath.extend(name.split(':').map(str::to_owned)),
        }
    }
    if found.runpath.is_empty() {
        found.runpath = rpath;
    }
    found.runpath.retain(|dir| !dir.is_empty());
    if found.runpath.len() > MAX_NAMES {
        return Err(format!("more than {MAX_NAMES} run path directories"));
    }
    Ok(found)
}

/// Whether two loaded segments claim the same addresses.
fn loads_overlap<P: ProgramHeader<Endian = Endianness>>(
    segments: &[P],
    endian: Endianness,
) -> bool {
    let mut ranges: Vec<(u64, u64)> = segments
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_LOAD)
        .map(|segment| {
            let start: u64 = segment.p_vaddr(endian).into();
            (start, start.saturating_add(segment.p_memsz(endian).into()))
        })
        .collect();
    ranges.sort_unstable();
    ranges.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

/// Where in the file the byte loaded at `address` comes from.
fn file_offset<P: ProgramHeader<Endian = Endianness>>(
    segments: &[P],
    endian: Endianness,
    address: u64,
) -> Option<u64> {
    segments
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_LOAD)
        .find_map(|segment| {
            let start: u64 = segment.p_vaddr(endian).into();
            let size: u64 = segment.p_filesz(endian).into();
            let into = address.checked_sub(start).filter(|&into| into < size)?;
            Into::<u64>::into(segment.p_offset(endian)).checked_add(into)
        })
}

/// The machine of the ELF file at `path` and what its dynamic segment
/// says, reading only the headers, the dynamic segment and the names (a
/// library may be large); `None` for a file that is no ELF file at all.
pub(super) fn read_dynamic(path: &Path) -> Option<(Machine, Result<Dynamic, String>)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Opened without waiting (a FIFO would block), then known a regular file.
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let file = File::options()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let cache = ReadCache::new(file);
    let ident = cache.read_bytes_at(0, 16).ok()?;
    match (&ident[..4], ident[4]) {
        (b"\x7fELF", 1) => examine(FileHeader32::<Endianness>::parse(&cache).ok()?, &cache),
        (b"\x7fELF", 2) => examine(FileHeader64::<Endianness>::parse(&cache).ok()?, &cache),
        _ => None,
    }
}

/// The machine of a parsed header, and its dynamic segment.
fn examine<'data, Elf, R>(header: &Elf, data: R) -> Option<(Machine, Result<Dynamic, String>)>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let endian = header.endian().ok()?;
    let machine = machine(header, endian);
    Some((machine, dynamic_entries(header, endian, data)))
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

/// The largest dynamic segment read: real ones hold a few dozen entries.
const MAX_DYNAMIC_BYTES: u64 = 1 << 20;
/// The most library names, and run path directories, one file may give.
const MAX_NAMES: usize = 1024;

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
    use super::{rust_crate, Facts};

    /// This test program's own dynamic entries: (file offset, tag, value).
    #[cfg(all(
        target_os = "linux",
        target_pointer_width = "64",
        target_endian = "little"
    ))]
    fn dynamic_entries(elf: &[u8]) -> Vec<(usize, u64, u64)> {
        use object::read::elf::{FileHeader, ProgramHeader};
        let header = object::elf::FileHeader64::<object::LittleEndian>::parse(elf).unwrap();
        let endian = object::LittleEndian;
        let segment = header
            .program_headers(endian, elf)
            .unwrap()
            .iter()
            .find(|s| s.p_type(endian) == object::elf::PT_DYNAMIC)
            .unwrap();
        let start = segment.p_offset(endian) as usize;
        let end = start + segment.p_filesz(endian) as usize;
        let word = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
        (start..end)
            .step_by(16)
            .map(|at| (at, word(at), word(at + 8)))
            .collect()
    }

    #[test]
    #[cfg(all(
        target_os = "linux",
        target_pointer_width = "64",
        target_endian = "little"
    ))]
    fn libraries_are_read_as_the_loader_reads_them_or_the_file_is_refused() {
        use object::elf::{DT_NEEDED, DT_NULL, DT_STRSZ, DT_STRTAB};
        use object::read::elf::{FileHeader, ProgramHeader};
        let original = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needed = Facts::parse(&original).unwrap().dynamic.needed;
        assert!(
            needed.iter().any(|n| n.starts_with("libc.so")),
            "{needed:?}"
        );
        let entries = dynamic_entries(&original);
        let entry =
            |tag: object::elf::DynamicTag| *entries.iter().find(|e| e.1 == tag.0 as u64).unwrap();
        let patched = |at: usize, value: u64| {
            let mut bytes = original.clone();
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            bytes
        };

        // An unreadable name is an error, never "loads no library".
        let strings = entry(DT_STRTAB);
        let error = Facts::parse(&patched(strings.0 + 8, 0xdead_0000_0000))
            .err()
            .unwrap();
        assert!(error.contains("in no loaded segment"), "{error}");
        let first = entry(DT_NEEDED);
        let error = Facts::parse(&patched(first.0 + 8, u64::from(u32::MAX)))
            .err()
            .unwrap();
        assert!(
            error.contains("outside the dynamic string table"),
            "{error}"
        );

        // Two string tables, or a table read elsewhere than the loader
        // reads it: the file is refused, not read one of the ways.
        let error = Facts::parse(&patched(first.0, DT_STRSZ.0 as u64))
            .err()
            .unwrap();
        assert!(error.contains("twice"), "{error}");
        let header = object::elf::FileHeader64::<object::LittleEndian>::parse(&*original).unwrap();
        let endian = object::LittleEndian;
        let phoff = header.e_phoff.get(endian) as usize;
        let index = header
            .program_headers(endian, &*original)
            .unwrap()
            .iter()
            .position(|s| s.p_type(endian) == object::elf::PT_DYNAMIC)
            .unwrap();
        let vaddr_at = phoff + index * usize::from(header.e_phentsize.get(endian)) + 16;
        let vaddr = u64::from_le_bytes(original[vaddr_at..vaddr_at + 8].try_into().unwrap());
        let error = Facts::parse(&patched(vaddr_at, vaddr + 16)).err().unwrap();
        assert!(
            error.contains("address and file offset disagree"),
            "{error}"
        );
        // At an address no file bytes are loaded to (as in a separate
        // debug-info file), the loader finds no table: nothing is loaded.
        let unloaded = patched(vaddr_at, 0x7fff_0000_0000);
        let needed = Facts::parse(&unloaded).unwrap().dynamic.needed;
        assert!(needed.is_empty(), "{needed:?}");

        // The loader stops at DT_NULL: what follows it is not loaded.
        let ended = patched(first.0, DT_NULL.0 as u64);
        let needed = Facts::parse(&ended).unwrap().dynamic.needed;
        assert!(needed.is_empty(), "{needed:?}");
    }

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
