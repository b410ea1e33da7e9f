//! Which files a scan covers: every file named, and every regular file under
//! a named directory, each once however many names it has.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::{DirEntry, WalkDir};

use super::verdict;
use crate::Report;

/// A file to inspect.
pub(super) struct Target {
    /// The name it is reported under.
    pub path: PathBuf,
    /// Named on the command line: a non-ELF file is then an error, not noise.
    pub named: bool,
}

/// A file found under some name.
struct Candidate {
    /// Device and inode: the file itself, whatever its name.
    id: (u64, u64),
    via_link: bool,
    target: Target,
}

impl Candidate {
    fn new(path: PathBuf, metadata: &Metadata, via_link: bool, named: bool) -> Self {
        Candidate {
            id: (metadata.dev(), metadata.ino()),
            via_link,
            target: Target { path, named },
        }
    }
}

/// The files to inspect, and an error report for each path that could not
/// be read (a scan with holes must not pass as complete).
pub(super) fn targets(paths: &[PathBuf]) -> (Vec<Target>, Vec<Report>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => walk(path, &mut found, &mut errors),
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
    (unique(found), errors)
}

fn walk(root: &Path, found: &mut Vec<Candidate>, errors: &mut Vec<Report>) {
    for entry in WalkDir::new(root).sort_by_file_name() {
        match entry {
            Ok(entry) => found.extend(discovered(&entry)),
            Err(err) => errors.push(error(
                err.path().unwrap_or(root),
                format!("cannot read: {err}"),
            )),
        }
    }
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
        (a.id, a.via_link, &a.target.path).cmp(&(b.id, b.via_link, &b.target.path))
    });
    let mut targets: Vec<Target> = Vec::new();
    let mut previous = None;
    for candidate in found {
        if previous == Some(candidate.id) {
            if let Some(kept) = targets.last_mut() {
                kept.named |= candidate.target.named;
            }
            continue;
        }
        previous = Some(candidate.id);
        targets.push(candidate.target);
    }
    targets
}

/// When a scan made no report at all, an error for each named directory:
/// a gate over `dist/` must not pass when the build put nothing there.
/// (Per directory it could err: a file found under two named directories
/// is reported under one name only.)
pub(super) fn without_binaries(paths: &[PathBuf], reports: &[Report]) -> Vec<Report> {
    if !reports.is_empty() {
        return Vec::new();
    }
    paths
        .iter()
        .filter(|path| path.is_dir())
        .map(|dir| error(dir, "no ELF file under it: nothing was checked".to_owned()))
        .collect()
}

fn error(path: &Path, reason: String) -> Report {
    verdict::error(path.display().to_string(), reason)
}
