//! Packaging a function directory into a zip, as `deploy` and `test --local` send it.

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

/// Names never packaged.
const SKIPPED: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules/.cache",
    "__pycache__",
    ".DS_Store",
];

/// Zips `dir` (recursively, keeping unix modes and relative symlinks), in a stable order so the
/// same tree always gives the same bytes and therefore the same sha256.
pub fn zip_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
            !SKIPPED.iter().any(|s| rel == Path::new(s))
        });
    // A fixed timestamp keeps the archive's bytes independent of file times.
    let base = SimpleFileOptions::default()
        .last_modified_time(zip::DateTime::default())
        .compression_method(zip::CompressionMethod::Deflated);
    for entry in walker {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let rel = entry.path().strip_prefix(dir)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel.to_string_lossy().replace('\\', "/");
        let meta = entry.path().symlink_metadata()?;
        let mode = meta.permissions().mode() & 0o777;
        let opts = base.unix_permissions(mode);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            writer.add_symlink(name, target.to_string_lossy(), opts)?;
        } else if meta.is_dir() {
            writer.add_directory(format!("{name}/"), opts)?;
        } else {
            writer.start_file(name, opts)?;
            let bytes = std::fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            writer.write_all(&bytes)?;
        }
    }
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/a.py"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        let a = zip_dir(dir.path()).unwrap();
        let b = zip_dir(dir.path()).unwrap();
        assert_eq!(a, b);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        assert!(names.contains(&"lib/a.py".to_owned()));
        assert!(!names.iter().any(|n| n.starts_with(".git")));
        let mode = archive.by_name("bootstrap").unwrap().unix_mode().unwrap();
        assert_eq!(mode & 0o777, 0o755);
    }
}
