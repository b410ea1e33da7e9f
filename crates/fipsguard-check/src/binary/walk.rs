//! Which files a scan covers: every file named, and every regular file under
//! a named directory, each once however many names it has.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::{DirEntry, WalkDir};

use super::verdict;
use crate::Report;

/// Device and inode: a file itself, whatever its name.
pub(super) type FileId = (u64, u64);

/// A file to inspect.
pub(super) struct Target {
    /// The name it is reported under.
    pub path: PathBuf,
    /// Named on the command line: a non-ELF file is then an error, not noise.
    pub named: bool,
    /// The file itself, for the directories it was found under.
    pub id: FileId,
}

/// A file found under some name.
struct Candidate {
    via_link: bool,
    target: Target,
}

impl Candidate {
    fn new(path: PathBuf, metadata: &Metadata, via_link: bool, named: bool) -> Self {
        Candidate {
            via_link,
            target: Target {
                path,
                named,
                id: (metadata.dev(), metadata.ino()),
            },
        }
    }
}

/// A directory named on the command line, and the files found under it.
pub(super) struct NamedDir {
    path: PathBuf,
    files: HashSet<FileId>,
}

/// What a scan covers: the files to inspect, the directories named, and
/// an error report for each path that could not be read (a scan with
/// holes must not pass as complete).
pub(super) struct Coverage {
    pub targets: Vec<Target>,
    pub dirs: Vec<NamedDir>,
    pub errors: Vec<Report>,
}

pub(super) fn targets(paths: &[PathBuf]) -> Coverage {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut dirs = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                let before = found.len();
                // One that could not be read at all is reported so already.
                if walk(path, &mut found, &mut errors) {
                    dirs.push(NamedDir {
                        path: path.clone(),
                        files: found[before..].iter().map(|c| c.target.id).collect(),
                    });
                }
            }
            Ok(metadata) if metadata.is_file() => {
                found.push(Candidate::new(
                    path.clone(),
                    &metadata,
                    path.is_symlink(),
                    true,
                ));
            }
            Ok(_) => errors.push(error(path, "not a regular file or directory".to_owned())),
            Err(err) => errors.push(error(path, format!("cannot read: {err}"))),
        }
    }
    Coverage {
        targets: unique(found),
        dirs,
        errors,
    }
}

/// Whether `root` itself could be read.
fn walk(root: &Path, found: &mut Vec<Candidate>, errors: &mut Vec<Report>) -> bool {
    let mut read = true;
    for entry in WalkDir::new(root).sort_by_file_name() {
        match entry {
            Ok(entry) => found.extend(discovered(&entry)),
            Err(err) => {
                read &= err.depth() > 0;
                errors.push(error(
                    err.path().unwrap_or(root),
                    format!("cannot read: {err}"),
                ));
            }
        }
    }
    read
}

/// Regular files, and links to them. Links to directories are not followed
/// (they could loop); devices and pipes are skipped (reading could block).
fn discovered(entry: &DirEntry) -> Option<Candidate> {
    let file_type = entry.file_type();
    if file_type.is_dir() {
        return None;
    }
    let via_link = file_type.is_symlink();
    let metadata = if via_link {
        fs::metadata(entry.path()).ok()?
    } else {
        entry.metadata().ok()?
    };
    metadata
        .is_file()
        .then(|| Candidate::new(entry.path().to_path_buf(), &metadata, via_link, false))
}

/// One target per file: its own name before a link's, then the first name
/// in path order. Named if any of its names was.
fn unique(mut found: Vec<Candidate>) -> Vec<Target> {
    found.sort_by(|a, b| {
        (a.target.id, a.via_link, &a.target.path).cmp(&(b.target.id, b.via_link, &b.target.path))
    });
    let mut targets: Vec<Target> = Vec::new();
    let mut previous = None;
    for candidate in found {
        if previous == Some(candidate.target.id) {
            if let Some(kept) = targets.last_mut() {
                kept.named |= candidate.target.named;
            }
            continue;
        }
        previous = Some(candidate.target.id);
        targets.push(candidate.target);
    }
    targets
}

/// An error for each named directory under which no file was checked (a
/// file reported under another name counts for every directory it is
/// under): a gate over `dist/` must not pass when the build put nothing
/// there, even beside a directory that holds binaries.
pub(super) fn without_binaries(dirs: &[NamedDir], checked: &HashSet<FileId>) -> Vec<Report> {
    dirs.iter()
        .filter(|dir| dir.files.is_disjoint(checked))
        .map(|dir| {
            error(
                &dir.path,
                "no ELF file under it: nothing was checked".to_owned(),
            )
        })
        .collect()
}

fn error(path: &Path, reason: String) -> Report {
    verdict::error(path.display().to_string(), reason)
}
