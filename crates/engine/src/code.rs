//! Code packages: validate an uploaded zip and unpack it once into a read-only,
//! content-addressed cache shared by every instance that runs it.
//!
//! A package is refused, whole and before anything is kept, when an entry's path is absolute
//! or climbs out of the root (zip-slip), a symlink points outside the root, a name repeats,
//! there are too many files, or the unpacked bytes exceed the limit — counted while
//! decompressing, so a lying header does not help a zip bomb.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use holactl_types::limits::{MAX_CODE_FILES, MAX_CODE_UNPACKED_BYTES};

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The package breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// Writing the cache failed.
    #[error("cannot unpack package: {0}")]
    Io(#[from] std::io::Error),
}

/// What a valid package contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageStats {
    /// Regular files.
    pub files: u64,
    /// Bytes once unpacked.
    pub unpacked_size: u64,
}

/// Limits applied to a package.
#[derive(Clone, Copy, Debug)]
pub struct PackageLimits {
    /// Most unpacked bytes.
    pub max_unpacked: u64,
    /// Most entries.
    pub max_files: usize,
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits {
            max_unpacked: MAX_CODE_UNPACKED_BYTES,
            max_files: MAX_CODE_FILES,
        }
    }
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Checks that `name` is a relative path that stays inside the root; returns it normalized.
fn safe_relative(name: &str) -> Result<PathBuf, CodeError> {
    let bad = |why: &str| CodeError::Invalid(format!("entry {name:?} {why}"));
    if name.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if name.starts_with('/') || name.starts_with('\\') || name.get(1..2) == Some(":") {
        return Err(bad("has an absolute path"));
    }
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("escapes the package root (..)")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("has an absolute path")),
        }
    }
    if name.contains('\\') && name.split('\\').any(|p| p == "..") {
        return Err(bad("escapes the package root (..)"));
    }
    Ok(out)
}

/// Checks that a symlink at `link` (relative to the root) pointing to `target` stays inside.
fn symlink_stays_inside(link: &Path, target: &str) -> bool {
    if target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for component in Path::new(target).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Validates `zip` and unpacks it into `dest` (which must not exist). On any error `dest` is
/// left absent.
pub fn unpack(zip: &[u8], dest: &Path, limits: PackageLimits) -> Result<PackageStats, CodeError> {
    let result = unpack_inner(zip, dest, limits);
    if result.is_err() {
        let _ = make_writable(dest);
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn unpack_inner(zip: &[u8], dest: &Path, limits: PackageLimits) -> Result<PackageStats, CodeError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| CodeError::Invalid(format!("not a valid zip archive: {e}")))?;
    if archive.len() > limits.max_files {
        return Err(CodeError::Invalid(format!(
            "{} entries; the limit is {}",
            archive.len(),
            limits.max_files
        )));
    }
    // First pass over the central directory: names, links and declared sizes.
    let mut seen = HashSet::new();
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| CodeError::Invalid(format!("corrupt entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| CodeError::Invalid(format!("entry {i} has a bad name: {e}")))?
            .into_owned();
        let path = safe_relative(&name)?;
        if path.as_os_str().is_empty() {
            continue;
        }
        if !seen.insert(path.clone()) {
            return Err(CodeError::Invalid(format!("entry {name:?} appears twice")));
        }
        declared = declared.saturating_add(entry.size());
        if declared > limits.max_unpacked {
            return Err(CodeError::Invalid(format!(
                "unpacks to more than {} bytes",
                limits.max_unpacked
            )));
        }
    }

    std::fs::create_dir_all(dest)?;
    let mut stats = PackageStats {
        files: 0,
        unpacked_size: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| CodeError::Invalid(format!("corrupt entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| CodeError::Invalid(format!("entry {i} has a bad name: {e}")))?
            .into_owned();
        let rel = safe_relative(&name)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        let mode = entry.unix_mode().unwrap_or(0);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if mode & S_IFMT == S_IFLNK {
            let mut link = String::new();
            entry
                .take(4096)
                .read_to_string(&mut link)
                .map_err(|_| CodeError::Invalid(format!("symlink {rel:?} is not UTF-8")))?;
            if !symlink_stays_inside(&rel, &link) {
                return Err(CodeError::Invalid(format!(
                    "symlink {:?} points outside the package ({link:?})",
                    rel
                )));
            }
            std::os::unix::fs::symlink(&link, &target)?;
            continue;
        }
        let mut out = std::fs::File::create(&target)?;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| CodeError::Invalid(format!("corrupt entry {rel:?}: {e}")))?;
            if n == 0 {
                break;
            }
            stats.unpacked_size += n as u64;
            if stats.unpacked_size > limits.max_unpacked {
                return Err(CodeError::Invalid(format!(
                    "unpacks to more than {} bytes",
                    limits.max_unpacked
                )));
            }
            out.write_all(&buf[..n])?;
        }
        let executable = mode & 0o111 != 0;
        use std::os::unix::fs::PermissionsExt;
        let perm = if executable { 0o555 } else { 0o444 };
        out.set_permissions(std::fs::Permissions::from_mode(perm))?;
        stats.files += 1;
    }
    Ok(stats)
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(dir)? {
        let meta = std::fs::symlink_metadata(&entry)?;
        if meta.is_dir() {
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            for e in std::fs::read_dir(&p)? {
                out.push(e?.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Unpacked packages under one directory, named by sha256.
#[derive(Clone, Debug)]
pub struct CodeCache {
    dir: PathBuf,
    limits: PackageLimits,
}

impl CodeCache {
    /// A cache rooted at `dir` (created if missing).
    pub fn open(dir: PathBuf, limits: PackageLimits) -> std::io::Result<CodeCache> {
        std::fs::create_dir_all(&dir)?;
        // Leftovers of unpacks interrupted by a crash.
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = make_writable(&entry.path());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(CodeCache { dir, limits })
    }

    /// Where package `sha256` is (or will be) unpacked.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Whether `sha256` is unpacked.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).is_dir()
    }

    /// Validates and unpacks `zip` as `sha256`, atomically: a temporary directory renamed into
    /// place. Unpacking a package that is already there only validates it.
    pub fn insert(&self, sha256: &str, zip: &[u8]) -> Result<PackageStats, CodeError> {
        let tmp = self
            .dir
            .join(format!(".tmp-{sha256}-{}", uuid::Uuid::new_v4().simple()));
        let stats = unpack(zip, &tmp, self.limits)?;
        let final_path = self.path(sha256);
        if final_path.exists() {
            let _ = make_writable(&tmp);
            let _ = std::fs::remove_dir_all(&tmp);
        } else if let Err(err) = std::fs::rename(&tmp, &final_path) {
            let _ = make_writable(&tmp);
            let _ = std::fs::remove_dir_all(&tmp);
            if !final_path.exists() {
                return Err(err.into());
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    /// Builds a zip from (name, unix mode, content) entries.
    pub(crate) fn make_zip(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, content) in entries {
            let opts = SimpleFileOptions::default().unix_permissions(*mode);
            if mode & S_IFMT == S_IFLNK {
                w.add_symlink(*name, std::str::from_utf8(content).unwrap(), opts)
                    .unwrap();
            } else if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(content).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn try_unpack(zip: &[u8]) -> (tempfile::TempDir, Result<PackageStats, CodeError>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let r = unpack(zip, &dest, PackageLimits::default());
        if r.is_err() {
            assert!(
                !dest.exists(),
                "a refused package must leave nothing behind"
            );
        }
        (dir, r)
    }

    #[test]
    fn unpacks_files_dirs_modes_and_inner_links() {
        let zip = make_zip(&[
            ("lib/", 0o755, b""),
            ("lib/util.py", 0o644, b"x = 1\n"),
            ("bootstrap", 0o755, b"#!/bin/sh\n"),
            ("link", S_IFLNK | 0o777, b"lib/util.py"),
        ]);
        let (dir, r) = try_unpack(&zip);
        let stats = r.unwrap();
        assert_eq!(stats.files, 2);
        assert_eq!(stats.unpacked_size, 16);
        let out = dir.path().join("out");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        assert_eq!(
            std::fs::read_to_string(out.join("link")).unwrap(),
            "x = 1\n"
        );
    }

    #[test]
    fn refuses_escapes() {
        for (name, mode, content) in [
            ("../evil.py", 0o644, &b"x"[..]),
            ("a/../../evil.py", 0o644, b"x"),
            ("/etc/evil", 0o644, b"x"),
            ("C:/evil", 0o644, b"x"),
            ("link", S_IFLNK | 0o777, b"/etc/passwd"),
            ("dir/link", S_IFLNK | 0o777, b"../../etc/passwd"),
        ] {
            let zip = make_zip(&[("ok.txt", 0o644, b"fine"), (name, mode, content)]);
            let (_dir, r) = try_unpack(&zip);
            assert!(matches!(r, Err(CodeError::Invalid(_))), "{name}: {r:?}");
        }
    }

    #[test]
    fn refuses_bombs_and_junk() {
        let big = vec![0u8; 2 * 1024 * 1024];
        let zip = make_zip(&[("zeros", 0o644, &big)]);
        assert!(zip.len() < 64 * 1024, "zeros compress well");
        let dir = tempfile::tempdir().unwrap();
        let limits = PackageLimits {
            max_unpacked: 1024 * 1024,
            max_files: 10,
        };
        let r = unpack(&zip, &dir.path().join("out"), limits);
        assert!(matches!(r, Err(CodeError::Invalid(m)) if m.contains("more than")));
        assert!(!dir.path().join("out").exists());

        let many: Vec<(String, u32, &[u8])> = (0..11)
            .map(|i| (format!("f{i}"), 0o644, &b"x"[..]))
            .collect();
        let refs: Vec<(&str, u32, &[u8])> =
            many.iter().map(|(n, m, c)| (n.as_str(), *m, *c)).collect();
        let r = unpack(&make_zip(&refs), &dir.path().join("out2"), limits);
        assert!(matches!(r, Err(CodeError::Invalid(m)) if m.contains("entries")));

        let (_d, r) = try_unpack(b"this is not a zip");
        assert!(matches!(r, Err(CodeError::Invalid(_))));
    }

    #[test]
    fn cache_insert_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::open(dir.path().to_owned(), PackageLimits::default()).unwrap();
        let zip = make_zip(&[("a.py", 0o644, b"x")]);
        cache.insert("abc", &zip).unwrap();
        cache.insert("abc", &zip).unwrap();
        assert!(cache.contains("abc"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
