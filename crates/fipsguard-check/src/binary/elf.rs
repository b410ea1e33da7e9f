//! The structural facts of an ELF file, read with `object`: what it links
//! dynamically, the symbols that name crypto libraries, and the Go sections.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use object::elf::{DT_NEEDED, DT_SONAME};
use object::read::elf::{ElfFile, FileHeader};
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
        Ok(Facts {
            bytes,
            needed,
            soname,
            symbols: crypto_symbols(&file),
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

/// `DT_NEEDED` and `DT_SONAME`, from the dynamic section.
fn dynamic_names<'data, Elf>(
    elf: &ElfFile<'data, Elf>,
) -> object::Result<(Vec<String>, Option<String>)>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let table = elf.elf_dynamic_table()?;
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

fn crypto_symbols<'data>(file: &object::File<'data>) -> Vec<&'data [u8]> {
    let mut names: Vec<&[u8]> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|symbol| !symbol.is_undefined())
        .filter_map(|symbol| symbol.name_bytes().ok())
        .filter(|name| {
            SYMBOL_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn section<'data>(file: &object::File<'data>, name: &str) -> Option<&'data [u8]> {
    file.section_by_name(name)?.data().ok()
}

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
    let size = usize::try_from(file.metadata()?.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&magic);
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}
