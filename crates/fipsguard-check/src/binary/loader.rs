//! The host crypto libraries a binary loads through other libraries (curl
//! loads libcurl, which loads libssl), found as the dynamic loader finds
//! them on this host: in the loading file's `DT_RUNPATH` (or `DT_RPATH`,
//! `$ORIGIN` expanded), then in the directories /etc/ld.so.conf lists, then
//! in the default ones. `LD_LIBRARY_PATH` and preloads are the running
//! process's, not the file's, and are not read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::detect::host_library;
use super::elf::{read_dynamic, Dynamic, Facts, Machine};

/// Files looked for, per binary, at most: a real one loads dozens of
/// libraries from a few directories each.
const MAX_LOOKUPS: usize = 16_384;
/// Loading chains followed this deep, at most.
const MAX_DEPTH: usize = 8;
/// Where the loader looks after every `DT_RUNPATH`, on a multiarch system.
const DEFAULT_DIRS: [&str; 4] = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"];

/// A host crypto library loaded through another library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Indirect {
    /// Its name, as the library that loads it names it.
    pub library: String,
    /// The project it comes from.
    pub project: &'static str,
    /// The library that loads it, which the binary loads (maybe in turn
    /// through others).
    pub through: String,
}

/// A file as the loader would take it: `None` when it would pass it over
/// (absent, not ELF, another machine); its dynamic segment, or why that
/// cannot be read (the loader would load it all the same).
type Library = Option<Arc<(Machine, Result<Dynamic, String>)>>;

/// Finds libraries as the loader would, remembering each file it read:
/// one is shared by a whole scan, where most binaries load the same few.
pub(crate) struct Loader {
    system: Vec<PathBuf>,
    files: Mutex<HashMap<PathBuf, Library>>,
}

impl Loader {
    /// A loader for this host's configuration.
    pub(crate) fn new() -> Self {
        Self {
            system: system_dirs(Path::new("/etc/ld.so.conf")),
            files: Mutex::default(),
        }
    }

    /// The host crypto libraries `binary` (at this path) loads only
    /// through other libraries, breadth first: those one library loads
    /// come together, in its `DT_NEEDED` order. Libraries not found here
    /// are not followed; one found but unreadable, or a search past the
    /// limits, is an error (what it loads cannot be told).
    pub(crate) fn indirect_host_libraries(
        &self,
        binary: &Path,
        facts: &Facts<'_>,
    ) -> Result<Vec<Indirect>, String> {
        let mut seen = HashSet::new();
        // One list per loading file, shared by the names it loads.
        let first_dirs: Arc<[PathBuf]> = search_dirs(&facts.dynamic.runpath, binary).into();
        let mut queue = VecDeque::new();
        for name in &facts.dynamic.needed {
            if seen.insert(name.clone()) && host_library(name).is_none() {
                queue.push_back((name.clone(), first_dirs.clone(), 1));
            }
        }
        let mut found = Vec::new();
        let mut lookups = 0;
        while let Some((name, dirs, depth)) = queue.pop_front() {
            let Some((path, dynamic)) = self.resolve(&name, &dirs, facts.machine, &mut lookups)?
            else {
                continue;
            };
            let dirs: Arc<[PathBuf]> = search_dirs(&dynamic.runpath, &path).into();
            for needed in &dynamic.needed {
                if !seen.insert(needed.clone()) {
                    continue;
                }
                match host_library(needed) {
                    Some(project) => found.push(Indirect {
                        library: needed.clone(),
                        project,
                        through: name.clone(),
                    }),
                    None if depth < MAX_DEPTH => {
                        queue.push_back((needed.clone(), dirs.clone(), depth + 1));
                    }
                    None => {}
                }
            }
        }
        Ok(found)
    }

    /// The first file named `name` in `dirs`, then in the system's, that
    /// the loader would take: an ELF file for `machine`.
    fn resolve(
        &self,
        name: &str,
        dirs: &[PathBuf],
        machine: Machine,
        lookups: &mut usize,
    ) -> Result<Option<(PathBuf, Dynamic)>, String> {
        let candidates: Vec<PathBuf> = if name.starts_with('/') {
            vec![PathBuf::from(name)]
        } else if name.contains('/') {
            Vec::new() // a path relative to the process's directory: not the file's
        } else {
            dirs.iter()
                .chain(self.system.iter())
                .map(|dir| dir.join(name))
                .collect()
        };
        for path in candidates {
            *lookups += 1;
            if *lookups > MAX_LOOKUPS {
                return Err(format!(
                    "its libraries take over {MAX_LOOKUPS} lookups: not followed to the end"
                ));
            }
            let Some(library) = self.read(&path) else {
                continue;
            };
            let (found, dynamic) = &*library;
            if *found != machine {
                continue;
            }
            return match dynamic {
                Ok(dynamic) => Ok(Some((path, dynamic.clone()))),
                Err(e) => Err(format!("{} (a library it loads): {e}", path.display())),
            };
        }
        Ok(None)
    }

    /// The file at `path` as the loader would take it, read once per scan.
    fn read(&self, path: &Path) -> Library {
        let known = self.files.lock().expect("not poisoned").get(path).cloned();
        if let Some(known) = known {
            return known;
        }
        let read = read_dynamic(path).map(Arc::new);
        self.files
            .lock()
            .expect("not poisoned")
            .insert(path.to_owned(), read.clone());
        read
    }
}

/// A file's `DT_RUNPATH` directories, `$ORIGIN` (and `${ORIGIN}`) being
/// the directory the file is in.
fn search_dirs(runpath: &[String], file: &Path) -> Vec<PathBuf> {
    let origin = runpath
        .iter()
        .any(|dir| dir.contains("ORIGIN"))
        .then(|| {
            Some(
                file.canonicalize()
                    .ok()?
                    .parent()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .flatten();
    runpath
        .iter()
        .filter_map(|dir| match &origin {
            Some(origin) => Some(dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)),
            // Where the file's directory is unknown, such an entry means nothing.
            None => (!dir.contains("ORIGIN")).then(|| dir.clone()),
        })
        .map(PathBuf::from)
        // A relative one is relative to the running process's directory.
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// The directories `conf` lists (following its `include` lines, whose
/// last component may hold one `*`), then the default ones.
fn system_dirs(conf: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    read_conf(conf, &mut dirs, 0);
    dirs.extend(DEFAULT_DIRS.iter().map(PathBuf::from));
    dirs
}

fn read_conf(conf: &Path, dirs: &mut Vec<PathBuf>, depth: usize) {
    let Ok(text) = std::fs::read_to_string(conf) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        match line.strip_prefix("include") {
            Some(pattern) if depth < 4 && pattern.starts_with(char::is_whitespace) => {
                for included in matching(pattern.trim()) {
                    read_conf(&included, dirs, depth + 1);
                }
            }
            _ if line.starts_with('/') => dirs.push(PathBuf::from(line)),
            _ => {}
        }
    }
}

/// The files a pattern such as `/etc/ld.so.conf.d/*.conf` names, sorted
/// (as the loader's cache builder reads them).
fn matching(pattern: &str) -> Vec<PathBuf> {
    let pattern = Path::new(pattern);
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.to_owned()];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            path.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| {
                    n.len() >= prefix.len() + suffix.len()
                        && n.starts_with(prefix)
                        && n.ends_with(suffix)
                })
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_so_conf_includes_are_followed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("ld.so.conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(conf_d.join("b.conf"), "/opt/b/lib\n").unwrap();
        std::fs::write(
            conf_d.join("a.conf"),
            "# a comment\n/opt/a/lib # trailing\n",
        )
        .unwrap();
        std::fs::write(conf_d.join("a.conf.orig"), "/opt/not-included\n").unwrap();
        let conf = dir.path().join("ld.so.conf");
        std::fs::write(
            &conf,
            format!(
                "/opt/first\ninclude {}/*.conf\nincluded-not\n",
                conf_d.display()
            ),
        )
        .unwrap();
        let dirs = system_dirs(&conf);
        let expected: Vec<PathBuf> = ["/opt/first", "/opt/a/lib", "/opt/b/lib"]
            .iter()
            .chain(&DEFAULT_DIRS)
            .map(PathBuf::from)
            .collect();
        assert_eq!(dirs, expected);
    }

    #[test]
    fn a_fifo_in_place_of_a_library_is_passed_over_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("libfifo.so.1");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(Loader::new().read(&fifo).is_none());
    }

    #[test]
    fn origin_is_the_directory_of_the_loading_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("program");
        std::fs::write(&file, b"").unwrap();
        let real = dir.path().canonicalize().unwrap();
        let runpath = [
            "$ORIGIN/../lib".to_owned(),
            "${ORIGIN}".to_owned(),
            "/opt/x".to_owned(),
            "relative/lib".to_owned(),
        ];
        assert_eq!(
            search_dirs(&runpath, &file),
            [real.join("../lib"), real.clone(), PathBuf::from("/opt/x")]
        );
    }
}
