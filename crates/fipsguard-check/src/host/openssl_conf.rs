//! Just enough of OpenSSL's configuration syntax (config(5)) to follow what
//! decides the FIPS provider: sections, `key = value`, comments, line
//! continuations and `.include` of files and directories. Variable expansion
//! (`$var`) is not needed for the provider keys and is left as written.

use std::collections::HashSet;
use std::path::PathBuf;

use super::root::{Root, Unreadable};

/// How deep `.include`s may nest; OpenSSL itself refuses loops, this stops them.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The section keys outside any `[section]` belong to.
pub(super) const DEFAULT_SECTION: &str = "default";

/// One `key = value` line, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The section it is in.
    pub section: String,
    /// The key, as written.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// The file (inside the root) it was read from.
    pub file: String,
}

/// A configuration file with its includes, flattened in reading order.
#[derive(Debug, Default)]
pub(super) struct Config {
    /// Every assignment; a later one for the same section and key wins.
    pub entries: Vec<Entry>,
    /// Files read, the main one first.
    pub files: Vec<String>,
    /// Includes that named nothing, as OpenSSL would report them.
    pub missing_includes: Vec<String>,
}

impl Config {
    /// Reads `path` and everything it includes from `root`; `None` when the
    /// main file does not exist.
    pub fn load(root: &Root, path: &str) -> Result<Option<Config>, Unreadable> {
        let Some(text) = root.read(path)? else {
            return Ok(None);
        };
        let mut reader = Reader {
            root,
            config: Config::default(),
            section: DEFAULT_SECTION.to_string(),
            read: HashSet::new(),
        };
        reader.file(path, &text, 0)?;
        Ok(Some(reader.config))
    }

    /// The value of `key` in `section`, the last assignment winning.
    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.section == section && entry.key == key)
    }

    /// The assignments of `section`, in order.
    pub fn section<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |entry| entry.section == section)
    }
}

/// Reading state: the current section carries across included files, as in
/// OpenSSL, so an included `[fips_sect]` stays open after the include.
struct Reader<'a> {
    root: &'a Root,
    config: Config,
    section: String,
    /// The files read, as the root resolves them: however an include
    /// spells a path (`conf.d/`, `./conf.d`, a link), a file is read once.
    read: HashSet<PathBuf>,
}

impl Reader<'_> {
    fn file(&mut self, path: &str, text: &str, depth: usize) -> Result<(), Unreadable> {
        self.config.files.push(path.to_string());
        self.read
            .insert(self.root.resolve(path).unwrap_or_else(|_| path.into()));
        for line in logical_lines(text) {
            match parse_line(&line) {
                Line::Blank => {}
                Line::Section(name) => self.section = name,
                Line::Include(target) => self.include(path, &target, depth)?,
                Line::Assign(key, value) => self.config.entries.push(Entry {
                    section: self.section.clone(),
                    key,
                    value,
                    file: path.to_string(),
                }),
            }
        }
        Ok(())
    }

    /// Follows an include. A relative one is taken from the including file's
    /// directory: OpenSSL would use its working directory (or
    /// OPENSSL_CONF_INCLUDE), which a scan of a tree cannot know.
    fn include(&mut self, from: &str, target: &str, depth: usize) -> Result<(), Unreadable> {
        let path = if target.starts_with('/') {
            target.to_string()
        } else {
            let dir = from.rsplit_once('/').map_or("", |(dir, _)| dir);
            format!("{dir}/{target}")
        };
        if depth >= MAX_INCLUDE_DEPTH || self.read_before(&path) {
            return Ok(());
        }
        if self.root.is_dir(&path) {
            return self.include_dir(&path, depth);
        }
        match self.root.read(&path)? {
            Some(text) => self.file(&path, &text, depth + 1),
            None => {
                self.config.missing_includes.push(path);
                Ok(())
            }
        }
    }

    fn read_before(&self, path: &str) -> bool {
        let real = self.root.resolve(path).unwrap_or_else(|_| path.into());
        self.read.contains(&real)
    }

    /// A directory include reads its `.cnf` and `.conf` files in name order,
    /// each once: files that include their own directory would otherwise be
    /// read again at every level, their number to the power of the depth.
    fn include_dir(&mut self, dir: &str, depth: usize) -> Result<(), Unreadable> {
        for name in self.root.list(dir) {
            if name.ends_with(".cnf") || name.ends_with(".conf") {
                let path = format!("{dir}/{name}");
                if self.read_before(&path) {
                    continue;
                }
                if let Some(text) = self.root.read(&path)? {
                    self.file(&path, &text, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// What one logical line says.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Blank,
    Section(String),
    Include(String),
    Assign(String, String),
}

/// Lines with `\`-newline continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        match raw.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(raw);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn parse_line(line: &str) -> Line {
    let line = strip_comment(line).trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(name) = line
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return Line::Section(name.trim().to_string());
    }
    if let Some(rest) = line.strip_prefix(".include") {
        let target = rest.trim_start().trim_start_matches('=').trim();
        return Line::Include(unquote(target).to_string());
    }
    if line.starts_with('.') {
        // `.pragma` and other directives change no provider setting.
        return Line::Blank;
    }
    match line.split_once('=') {
        Some((key, value)) => {
            Line::Assign(key.trim().to_string(), unquote(value.trim()).to_string())
        }
        None => Line::Blank,
    }
}

/// The line up to a `#` that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '#') => return &line[..at],
            _ => {}
        }
    }
    line
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lines_are_sections_assignments_includes_or_nothing() {
        assert_eq!(parse_line("  # .include fipsmodule.cnf"), Line::Blank);
        assert_eq!(
            parse_line("[ provider_sect ]  # providers"),
            Line::Section("provider_sect".into())
        );
        assert_eq!(
            parse_line(".include = /etc/ssl/fipsmodule.cnf"),
            Line::Include("/etc/ssl/fipsmodule.cnf".into())
        );
        assert_eq!(
            parse_line(".include fipsmodule.cnf"),
            Line::Include("fipsmodule.cnf".into())
        );
        assert_eq!(
            parse_line("default_properties = \"fips=yes\" # required"),
            Line::Assign("default_properties".into(), "fips=yes".into())
        );
        assert_eq!(parse_line(".pragma dollarid:on"), Line::Blank);
    }

    #[test]
    fn continuations_join_lines() {
        assert_eq!(logical_lines("a = 1\\\n2\nb = 3"), ["a = 12", "b = 3"]);
    }

    #[test]
    fn includes_are_followed_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        let ssl = dir.path().join("etc/ssl");
        fs::create_dir_all(ssl.join("conf.d")).unwrap();
        fs::write(
            ssl.join("openssl.cnf"),
            "openssl_conf = init\n.include fipsmodule.cnf\n.include conf.d\n\
             .include missing.cnf\n.include openssl.cnf\n[init]\nproviders = p\n",
        )
        .unwrap();
        fs::write(ssl.join("fipsmodule.cnf"), "[fips_sect]\nactivate = 1\n").unwrap();
        fs::write(ssl.join("conf.d/10-late.cnf"), "activate = 0\n").unwrap();
        fs::write(ssl.join("conf.d/ignored.txt"), "activate = 2\n").unwrap();

        let root = Root::new(dir.path());
        let config = Config::load(&root, "/etc/ssl/openssl.cnf")
            .unwrap()
            .unwrap();
        assert_eq!(
            config.files,
            [
                "/etc/ssl/openssl.cnf",
                "/etc/ssl/fipsmodule.cnf",
                "/etc/ssl/conf.d/10-late.cnf"
            ]
        );
        assert_eq!(config.missing_includes, ["/etc/ssl/missing.cnf"]);
        // The section opened in the include stays open, and the last value wins.
        let activate = config.get("fips_sect", "activate").unwrap();
        assert_eq!(activate.value, "0");
        assert_eq!(activate.file, "/etc/ssl/conf.d/10-late.cnf");
        assert_eq!(config.get("init", "providers").unwrap().value, "p");
        assert_eq!(
            config.get(DEFAULT_SECTION, "openssl_conf").unwrap().value,
            "init"
        );
    }

    #[test]
    fn files_that_include_their_own_directory_are_read_once_however_it_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let ssl = dir.path().join("etc/ssl");
        fs::create_dir_all(ssl.join("conf.d")).unwrap();
        fs::write(ssl.join("openssl.cnf"), ".include conf.d\n").unwrap();
        let spellings = [
            "/etc/ssl/conf.d",
            "/etc/ssl/conf.d/",
            "/etc/ssl/./conf.d",
            "/etc/ssl/../ssl/conf.d",
        ];
        for (n, spelling) in spellings.iter().enumerate() {
            let file = ssl.join(format!("conf.d/{n}.cnf"));
            fs::write(file, format!(".include {spelling}\nkey{n} = {n}\n")).unwrap();
        }
        let root = Root::new(dir.path());
        let config = Config::load(&root, "/etc/ssl/openssl.cnf")
            .unwrap()
            .unwrap();
        assert_eq!(config.files.len(), 5, "{:?}", config.files);
        assert_eq!(config.entries.len(), 4);
    }
}
