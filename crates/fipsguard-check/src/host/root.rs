//! A directory tree read as if it were `/`. Every path a check reads goes
//! through here, so a fake `/proc` and `/etc` (or a mounted image) answer
//! exactly like the live system, and nothing outside the tree is ever read:
//! symbolic links are followed by hand, with `/` meaning the tree's root and
//! `..` stopping there.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// How many symbolic links one lookup may follow, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// The largest file read as configuration: real ones are a few KiB, and a
/// scanned tree may hold anything.
const MAX_FILE: u64 = 1 << 20;

/// Library directories, relative to the root, where a distribution puts
/// shared libraries; multiarch directories (`usr/lib/x86_64-linux-gnu`) are
/// found under the first two.
const LIBRARY_DIRS: [&str; 4] = ["usr/lib", "lib", "usr/lib64", "lib64"];

/// A file that exists but could not be read: the check cannot decide.
#[derive(Debug)]
pub(super) struct Unreadable {
    /// The path inside the root.
    pub path: String,
    /// Why it could not be read.
    pub error: io::Error,
}

impl Unreadable {
    /// The same failure, for another finding that rests on the same file.
    pub fn again(&self) -> Unreadable {
        Unreadable {
            path: self.path.clone(),
            error: io::Error::new(self.error.kind(), self.error.to_string()),
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.error)
    }
}

/// The tree a host scan reads.
pub(super) struct Root {
    dir: PathBuf,
}

impl Root {
    /// The tree rooted at `dir`.
    pub fn new(dir: &Path) -> Self {
        Root {
            dir: dir.to_path_buf(),
        }
    }

    /// Whether this is the running system's own root, where commands and the
    /// environment describe the same system as the files.
    pub fn is_live(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// The text of the file at `path` (absolute, as seen inside the root);
    /// `None` when it does not exist.
    pub fn read(&self, path: &str) -> Result<Option<String>, Unreadable> {
        let unreadable = |error| Unreadable {
            path: path.to_string(),
            error,
        };
        let real = self.resolve(path).map_err(unreadable)?;
        match fs::metadata(&real) {
            Err(error) if is_absent(&error) => return Ok(None),
            Err(error) => return Err(unreadable(error)),
            // A FIFO or device would block or never end; only files are config.
            Ok(meta) if !meta.is_file() => return Err(unreadable(not_a_file(&meta))),
            Ok(_) => {}
        }
        let mut bytes = Vec::new();
        let file = fs::File::open(&real).map_err(unreadable)?;
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(unreadable(io::Error::other(
                "over 1 MiB: too large for a configuration file",
            )));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| unreadable(io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Whether anything exists at `path` (absolute, as seen inside the root).
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path)
            .is_ok_and(|real| fs::symlink_metadata(real).is_ok())
    }

    /// Whether `path` (absolute, as seen inside the root) is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(path)
            .is_ok_and(|real| fs::metadata(real).is_ok_and(|meta| meta.is_dir()))
    }

    /// The names in the directory at `path`, sorted; empty when it does not
    /// exist or is not a directory (or cannot be read: for evidence only).
    pub fn list(&self, path: &str) -> Vec<String> {
        self.entries(path).unwrap_or_default()
    }

    /// The names in the directory at `path`, sorted; empty when it does not
    /// exist or is not a directory; `Err` when it exists and cannot be
    /// read, which no check may take for a directory without what it
    /// looks for.
    fn entries(&self, path: &str) -> Result<Vec<String>, Unreadable> {
        let unreadable = |error| Unreadable {
            path: path.to_string(),
            error,
        };
        let real = self.resolve(path).map_err(unreadable)?;
        let entries = match fs::read_dir(&real) {
            Err(error) if is_absent(&error) => return Ok(Vec::new()),
            Err(error) => return Err(unreadable(error)),
            Ok(entries) => entries,
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The first file in the library directories whose name satisfies
    /// `wanted`, as a path inside the root.
    pub fn find_library(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, Unreadable> {
        for dir in self.library_dirs()? {
            if let Some(name) = self.entries(&dir)?.into_iter().find(|name| wanted(name)) {
                return Ok(Some(format!("{dir}/{name}")));
            }
        }
        Ok(None)
    }

    /// The library directories present in the tree, multiarch ones
    /// included, each once: with a merged `/usr`, `/lib` is `/usr/lib`.
    pub fn library_dirs(&self) -> Result<Vec<String>, Unreadable> {
        let mut candidates = Vec::new();
        for base in LIBRARY_DIRS {
            let base = format!("/{base}");
            for name in self.entries(&base)? {
                if name.contains("-linux-") {
                    candidates.push(format!("{base}/{name}"));
                }
            }
            candidates.push(base);
        }
        let mut seen = Vec::new();
        candidates.retain(|dir| {
            let real = self.resolve(dir).ok().filter(|real| real.is_dir());
            match real {
                Some(real) if !seen.contains(&real) => {
                    seen.push(real);
                    true
                }
                _ => false,
            }
        });
        Ok(candidates)
    }

    /// The real path of `path` (absolute, as seen inside the root), with
    /// every symbolic link resolved inside the root. Past a component that
    /// does not exist the rest is joined by name, so opening the result
    /// fails as the lookup would have, still inside the root.
    pub(super) fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let mut pending: Vec<OsString> = components(Path::new(path));
        pending.reverse();
        let mut inside: Vec<OsString> = Vec::new();
        let mut links = 0;
        let mut missing = false;
        while let Some(name) = pending.pop() {
            if name == ".." {
                inside.pop();
                continue;
            }
            inside.push(name);
            if missing {
                continue;
            }
            let real = self.join(&inside);
            let Ok(meta) = fs::symlink_metadata(&real) else {
                missing = true;
                continue;
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = fs::read_link(&real)?;
            inside.pop();
            if target.is_absolute() {
                inside.clear();
            }
            pending.extend(components(&target).into_iter().rev());
        }
        Ok(self.join(&inside))
    }

    fn join(&self, inside: &[OsString]) -> PathBuf {
        let mut real = self.dir.clone();
        real.extend(inside);
        real
    }
}

/// The names and `..`s of a path; the root and `.` add nothing.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// A missing file, or a file where a directory was expected on the way.
fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn not_a_file(meta: &fs::Metadata) -> io::Error {
    if meta.is_dir() {
        io::Error::new(io::ErrorKind::IsADirectory, "a directory, not a file")
    } else {
        io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc/ssl")).unwrap();
        fs::write(dir.path().join("etc/ssl/openssl.cnf"), "inside\n").unwrap();
        dir
    }

    #[test]
    fn absolute_links_resolve_inside_the_root() {
        let dir = tree();
        fs::create_dir_all(dir.path().join("usr/lib/ssl")).unwrap();
        std::os::unix::fs::symlink(
            "/etc/ssl/openssl.cnf",
            dir.path().join("usr/lib/ssl/openssl.cnf"),
        )
        .unwrap();
        let root = Root::new(dir.path());
        let text = root.read("/usr/lib/ssl/openssl.cnf").unwrap();
        assert_eq!(text.as_deref(), Some("inside\n"));
    }

    #[test]
    fn dot_dot_and_links_cannot_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "outside\n").unwrap();
        let dir = tree();
        let escape = dir.path().join("etc/escape");
        std::os::unix::fs::symlink(outside.path().join("secret"), &escape).unwrap();
        let root = Root::new(dir.path());
        assert_eq!(root.read("/etc/escape").unwrap(), None);
        let climb = format!("/../../../..{}/secret", outside.path().display());
        assert_eq!(root.read(&climb).unwrap(), None);
        let relative = "/etc/ssl/../../../etc/ssl/openssl.cnf";
        assert_eq!(root.read(relative).unwrap().as_deref(), Some("inside\n"));
    }

    #[test]
    fn missing_files_are_none_and_directories_are_unreadable() {
        let dir = tree();
        let root = Root::new(dir.path());
        assert_eq!(root.read("/etc/missing").unwrap(), None);
        assert_eq!(root.read("/etc/ssl/openssl.cnf/below").unwrap(), None);
        let error = root.read("/etc/ssl").unwrap_err();
        assert_eq!(error.path, "/etc/ssl");
        assert_eq!(error.error.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn files_over_a_mebibyte_are_unreadable_not_read_whole() {
        let dir = tree();
        let file = fs::File::create(dir.path().join("etc/huge.cnf")).unwrap();
        file.set_len(MAX_FILE + 1).unwrap();
        fs::write(
            dir.path().join("etc/fits.cnf"),
            vec![b'#'; MAX_FILE as usize],
        )
        .unwrap();
        // A character split at the limit is still a file too large.
        let mut split = vec![b'#'; MAX_FILE as usize];
        split.extend_from_slice("é".as_bytes());
        fs::write(dir.path().join("etc/split.cnf"), split).unwrap();
        let root = Root::new(dir.path());
        for name in ["/etc/huge.cnf", "/etc/split.cnf"] {
            let error = root.read(name).unwrap_err();
            assert!(error.error.to_string().contains("over 1 MiB"), "{error}");
        }
        assert_eq!(
            root.read("/etc/fits.cnf").unwrap().unwrap().len(),
            MAX_FILE as usize
        );
    }

    #[test]
    fn link_loops_are_errors_not_hangs() {
        let dir = tree();
        std::os::unix::fs::symlink("/etc/b", dir.path().join("etc/a")).unwrap();
        std::os::unix::fs::symlink("/etc/a", dir.path().join("etc/b")).unwrap();
        let root = Root::new(dir.path());
        assert!(root.read("/etc/a").is_err());
    }

    #[test]
    fn libraries_are_found_in_multiarch_directories() {
        let dir = tree();
        let multiarch = dir.path().join("usr/lib/aarch64-linux-gnu");
        fs::create_dir_all(&multiarch).unwrap();
        fs::write(multiarch.join("libgcrypt.so.20"), "placeholder\n").unwrap();
        let root = Root::new(dir.path());
        let found = root
            .find_library(|name| name.starts_with("libgcrypt.so"))
            .unwrap();
        assert_eq!(
            found.as_deref(),
            Some("/usr/lib/aarch64-linux-gnu/libgcrypt.so.20")
        );
    }
}
