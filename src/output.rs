//! The output folder, replaced as a whole. A conversion holds a lock (on the folder's parent,
//! so two conversions into one folder, new or not, take turns), writes its complete set of
//! files into a staging folder beside the output, and swaps the two folders in one step where
//! the system can (Linux, macOS): a reader never sees `model.py` of one conversion next to
//! `model.safetensors` of another. Elsewhere the files are renamed into place one by one,
//! still under the lock.
//!
//! The folder's [`GENERATED`] files are tf2torch's: each conversion replaces them and removes
//! those it did not write again (an old `make_reference.py` naming another model). Everything
//! else, `custom_ops.py` included, is the user's and is carried over untouched.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The files a conversion may write besides `custom_ops.py` and weight shards.
pub const GENERATED: [&str; 5] = [
    "model.py",
    "model.safetensors",
    "model.safetensors.index.json",
    "check.py",
    "make_reference.py",
];

/// Whether `name` is a file tf2torch writes: one of [`GENERATED`] or a weight shard
/// (`model-00001-of-00003.safetensors`).
pub fn is_generated(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    let shard = name
        .strip_prefix("model-")
        .and_then(|r| r.strip_suffix(".safetensors"))
        .and_then(|r| r.split_once("-of-"))
        .is_some_and(|(k, n)| {
            [k, n].iter().all(|d| d.len() == 5 && d.bytes().all(|b| b.is_ascii_digit()))
        });
    shard || GENERATED.contains(&name)
}

/// The user's file of op implementations (see `emit::render_custom_ops`).
pub const CUSTOM_OPS: &str = "custom_ops.py";

const STAGING_PREFIX: &str = ".tf2torch-";

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// An output folder being written. Dropping it without [`commit`](Self::commit) removes the
/// staging folder and leaves the output as it was.
pub struct Output {
    out: PathBuf,
    staging: PathBuf,
    /// The folders `prepare` made to hold the output, outermost first: removed again (when
    /// still empty) if the conversion fails.
    made: Vec<PathBuf>,
    /// `custom_ops.py` as it was read under the lock; it must not change before the swap.
    custom_ops: Option<Vec<u8>>,
    committed: bool,
    _lock: Option<File>,
}

impl Output {
    /// Whether `out` can name the output folder (new or existing), before any work is done.
    pub fn check(out: &Path) -> Result<()> {
        if out.exists() && !out.is_dir() {
            return Err(Error::msg(format!(
                "{}: the output path is a file; name a folder (new or existing)",
                out.display()
            )));
        }
        if out.file_name().is_none() {
            return Err(Error::msg(format!("{}: not a folder name", out.display())));
        }
        Ok(())
    }

    /// Checks `out`, takes the lock, reads `custom_ops.py` and makes the staging folder.
    pub fn prepare(out: &Path) -> Result<Output> {
        Output::check(out)?;
        let out = match fs::symlink_metadata(out) {
            // A link to a folder: write into the folder, keep the link.
            Ok(m) if m.file_type().is_symlink() => fs::canonicalize(out).map_err(io_error(out))?,
            _ => out.to_path_buf(),
        };
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let made: Vec<PathBuf> =
            parent.ancestors().take_while(|a| !a.exists()).map(Path::to_path_buf).collect();
        fs::create_dir_all(&parent).map_err(io_error(&parent))?;
        let lock = lock(&parent)?;
        let staging = make_staging(&parent)?;
        let custom_ops = match fs::read(out.join(CUSTOM_OPS)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&out.join(CUSTOM_OPS))(e)),
        };
        Ok(Output { out, staging, made, custom_ops, committed: false, _lock: lock })
    }

    /// The existing `custom_ops.py`, read under the lock.
    pub fn custom_ops(&self) -> Option<&[u8]> {
        self.custom_ops.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.out
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let p = self.staging.join(name);
        fs::write(&p, contents).map_err(io_error(&p))
    }

    /// Puts the staged files in place of the output's: the whole folder swapped at once where
    /// the system can. Returns notes for the user (files kept aside, see [`Swap::finish`]).
    pub fn commit(self) -> Result<Vec<String>> {
        self.commit_with(exchange)
    }

    fn commit_with(mut self, exchange: fn(&Path, &Path) -> io::Result<()>) -> Result<Vec<String>> {
        self.normalize_permissions()?;
        if !self.out.exists() {
            fs::rename(&self.staging, &self.out).map_err(io_error(&self.out))?;
            self.committed = true;
            return Ok(Vec::new());
        }
        self.carry_user_files()?;
        // The folder keeps its permissions.
        let permissions = fs::metadata(&self.out).map_err(io_error(&self.out))?.permissions();
        fs::set_permissions(&self.staging, permissions).map_err(io_error(&self.staging))?;
        let notes = match exchange(&self.staging, &self.out) {
            Ok(()) => {
                self.committed = true;
                // The staging path now holds the previous output.
                let read = self.custom_ops.as_deref();
                Swap { old: &self.staging, out: &self.out, custom_ops: read }.finish()?
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                self.rename_one_by_one()?;
                Vec::new()
            }
            Err(e) => return Err(io_error(&self.out)(e)),
        };
        Ok(notes)
    }

    /// Files written through a temporary file (safetensors does) get mode 0600; every file
    /// gets what a plain create gives here instead (0666 less the umask).
    fn normalize_permissions(&self) -> Result<()> {
        let probe = self.staging.join(".permissions");
        File::create(&probe).map_err(io_error(&probe))?;
        let permissions = fs::metadata(&probe).map_err(io_error(&probe))?.permissions();
        fs::remove_file(&probe).map_err(io_error(&probe))?;
        for entry in fs::read_dir(&self.staging).map_err(io_error(&self.staging))? {
            let path = entry.map_err(io_error(&self.staging))?.path();
            fs::set_permissions(&path, permissions.clone()).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Links every user file of the output into the staging folder (user folders move after
    /// the swap, see [`Swap::finish`]). `custom_ops.py` is carried unless this conversion
    /// wrote a new one, and must still be what was read: an edit made meanwhile is not lost.
    fn carry_user_files(&self) -> Result<()> {
        let now = fs::read(self.out.join(CUSTOM_OPS)).ok();
        if now != self.custom_ops {
            return Err(Error::msg(format!(
                "{}: changed during the conversion; run it again",
                self.out.join(CUSTOM_OPS).display()
            )));
        }
        for entry in fs::read_dir(&self.out).map_err(io_error(&self.out))? {
            let entry = entry.map_err(io_error(&self.out))?;
            let name = entry.file_name();
            let kind = entry.file_type().map_err(io_error(&entry.path()))?;
            let ours = is_generated(&name);
            let staged = self.staging.join(&name);
            if ours || kind.is_dir() || staged.exists() {
                continue;
            }
            // Where links cannot be made the file moves after the swap instead.
            let _ = fs::hard_link(entry.path(), &staged);
        }
        Ok(())
    }

    /// Without a folder swap: each file this conversion wrote renamed over its old self, then
    /// the generated files it did not write removed (the staging folder, left with the links
    /// to user files, goes when `self` drops).
    fn rename_one_by_one(&mut self) -> Result<()> {
        let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>> {
            let mut v = Vec::new();
            for entry in fs::read_dir(dir).map_err(io_error(dir))? {
                v.push(entry.map_err(io_error(dir))?.file_name());
            }
            Ok(v)
        };
        let ours: Vec<std::ffi::OsString> = names(&self.staging)?
            .into_iter()
            .filter(|n| (is_generated(n) || n == CUSTOM_OPS) && self.wrote(n))
            .collect();
        for name in &ours {
            let to = self.out.join(name);
            fs::rename(self.staging.join(name), &to).map_err(io_error(&to))?;
        }
        for stale in names(&self.out)?.iter().filter(|g| is_generated(g) && !ours.contains(g)) {
            let path = self.out.join(stale);
            if path.is_file() {
                fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Whether this conversion wrote `name` (a carried `custom_ops.py` is a link to the old).
    fn wrote(&self, name: impl AsRef<Path>) -> bool {
        let name = name.as_ref();
        let staged = self.staging.join(name);
        staged.is_file() && !same_file(&staged, &self.out.join(name))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
            // Innermost first; `remove_dir` leaves a folder someone put something in.
            for dir in &self.made {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

/// The previous output, swapped out to `old`, and the new one at `out`.
struct Swap<'a> {
    old: &'a Path,
    out: &'a Path,
    /// `custom_ops.py` as the conversion read it: the new one supersedes exactly that.
    custom_ops: Option<&'a [u8]>,
}

impl Swap<'_> {
    /// Moves the user's folders into the new output and deletes what is left of the old one:
    /// generated files, the `custom_ops.py` the new one extends, and files that are also in the
    /// new output (linked there before the swap). Anything else (a file the user made during the conversion) moves over too; if it
    /// cannot, the old folder is kept under its staging name and a note says so.
    fn finish(self) -> Result<Vec<String>> {
        let mut kept = Vec::new();
        for entry in fs::read_dir(self.old).map_err(io_error(self.old))? {
            let entry = entry.map_err(io_error(self.old))?;
            let (name, path) = (entry.file_name(), entry.path());
            let generated = is_generated(&name);
            let superseded =
                name == CUSTOM_OPS && fs::read(&path).ok().as_deref() == self.custom_ops;
            let new = self.out.join(&name);
            if generated || superseded || same_file(&path, &new) {
                fs::remove_file(&path).map_err(io_error(&path))?;
            } else if fs::symlink_metadata(&new).is_err() {
                fs::rename(&path, &new).map_err(io_error(&new))?;
            } else {
                kept.push(name.to_string_lossy().to_string());
            }
        }
        if kept.is_empty() {
            fs::remove_dir(self.old).map_err(io_error(self.old))?;
            return Ok(Vec::new());
        }
        Ok(vec![format!(
            "{} changed during the conversion: the previous copies are kept in {}",
            kept.join(", "),
            self.old.display()
        )])
    }
}

/// Whether `a` and `b` are one file (hard links of each other).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino() && !x.is_dir(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// An exclusive lock on folder `dir`, released when the file is closed. Where folders cannot
/// be locked, none.
fn lock(dir: &Path) -> Result<Option<File>> {
    let file = match File::open(dir) {
        Ok(f) => f,
        Err(e) if cfg!(not(unix)) => {
            let _ = e;
            return Ok(None);
        }
        Err(e) => return Err(io_error(dir)(e)),
    };
    match file.lock() {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(None),
        Err(e) => Err(io_error(dir)(e)),
    }
}

/// A new folder `.tf2torch-<n>` in `parent`, made like any other (the umask applies).
fn make_staging(parent: &Path) -> Result<PathBuf> {
    let pid = std::process::id();
    for attempt in 0..1000u32 {
        let path = parent.join(format!("{STAGING_PREFIX}{pid}-{attempt}"));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
    Err(Error::msg(format!("{}: no free name for a staging folder", parent.display())))
}

/// Swaps two folders in one step.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        // Old kernels and some file systems do not swap.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            Err(io::ErrorKind::Unsupported.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsupported(_: &Path, _: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// An output folder as a previous conversion left it, with the user's files in it.
    fn previous(root: &Path) -> PathBuf {
        let out = root.join("out");
        fs::create_dir(&out).unwrap();
        for name in GENERATED {
            fs::write(out.join(name), "old").unwrap();
        }
        fs::write(out.join(CUSTOM_OPS), "def mine(x):\n    return x\n").unwrap();
        fs::write(out.join("notes.txt"), "mine").unwrap();
        fs::create_dir(out.join("data")).unwrap();
        fs::write(out.join("data/inputs.txt"), "mine too").unwrap();
        out
    }

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (e.file_name().to_string_lossy().into(), fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    fn convert_into(out: &Path, swap: fn(&Path, &Path) -> io::Result<()>) -> Vec<String> {
        let output = Output::prepare(out).unwrap();
        output.write("model.py", b"new").unwrap();
        output.write("model.safetensors", b"new").unwrap();
        output.write("check.py", b"new").unwrap();
        output.commit_with(swap).unwrap()
    }

    fn expected() -> Vec<(String, String)> {
        [
            ("check.py", "new"),
            ("custom_ops.py", "def mine(x):\n    return x\n"),
            ("model.py", "new"),
            ("model.safetensors", "new"),
            ("notes.txt", "mine"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn the_new_set_replaces_the_old_and_the_users_files_stay() {
        for swap in [exchange, unsupported] {
            let root = tempfile::tempdir().unwrap();
            let out = previous(root.path());
            assert!(convert_into(&out, swap).is_empty());
            // make_reference.py was not written again: gone.
            assert_eq!(listing(&out), expected());
            assert_eq!(fs::read_to_string(out.join("data/inputs.txt")).unwrap(), "mine too");
            let names: Vec<_> =
                fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, ["out"], "staging left behind");
        }
    }

    #[test]
    fn custom_ops_edited_during_the_conversion_stops_it() {
        let root = tempfile::tempdir().unwrap();
        let out = previous(root.path());
        let output = Output::prepare(&out).unwrap();
        output.write("model.py", b"new").unwrap();
        fs::write(out.join(CUSTOM_OPS), "def mine(x):\n    return 2 * x\n").unwrap();
        let err = output.commit().unwrap_err().to_string();
        assert!(err.contains("changed during the conversion"), "{err}");
        assert_eq!(fs::read_to_string(out.join("model.py")).unwrap(), "old");
        let names: Vec<_> =
            fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out"], "staging left behind");
    }

    #[test]
    fn a_failed_conversion_removes_the_folders_it_made() {
        let root = tempfile::tempdir().unwrap();
        let output = Output::prepare(&root.path().join("a/b/out")).unwrap();
        output.write("model.py", b"new").unwrap();
        drop(output);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_the_user_makes_while_the_old_folder_is_cleaned_moves_over() {
        let root = tempfile::tempdir().unwrap();
        let out = previous(root.path());
        let old = root.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::write(old.join("model.py"), "old").unwrap();
        fs::write(old.join("late.txt"), "made meanwhile").unwrap();
        fs::write(old.join("notes.txt"), "edited meanwhile").unwrap();
        let notes = Swap { old: &old, out: &out, custom_ops: None }.finish().unwrap();
        assert_eq!(fs::read_to_string(out.join("late.txt")).unwrap(), "made meanwhile");
        // `notes.txt` exists in both and differs: the old copy is kept, and said so.
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("notes.txt changed during the conversion"), "{notes:?}");
        assert_eq!(fs::read_to_string(old.join("notes.txt")).unwrap(), "edited meanwhile");
        assert!(!old.join("model.py").exists());
    }
}
