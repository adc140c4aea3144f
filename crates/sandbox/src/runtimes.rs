//! Which interpreter runs which runtime identifier on this host, and our bootstraps.
//!
//! Interpreters are found once at start among the real binaries in `/usr/bin` and
//! `/usr/local/bin` (never shims: a pyenv shim costs ~100 ms per start), and their versions
//! read from the binaries themselves. A runtime asking for a version the host lacks runs on
//! the nearest installed one of its family, and says so in [`ResolvedRuntime::note`].

use std::io::Read;
use std::path::{Path, PathBuf};

use holactl_types::{Runtime, RuntimeFamily};

use crate::SandboxError;

/// Our Python bootstrap: the Runtime API loop calling `module.function(event, context)`.
pub const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python/bootstrap.py");
/// Our Node.js bootstrap: the Runtime API loop calling `file.export(event, context)`.
pub const NODE_BOOTSTRAP: &str = include_str!("../runtimes/node/bootstrap.cjs");

/// A language interpreter found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreter {
    /// Real path of the binary.
    pub path: PathBuf,
    /// (major, minor, patch).
    pub version: (u32, u32, u32),
    /// What the binary says of itself (`Python 3.11.2`, `v20.20.2`).
    pub version_string: String,
}

/// How a function's runtime starts on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRuntime {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The interpreter, for `python3.x` and `nodejs*`.
    pub interpreter: Option<Interpreter>,
    /// Set when the exact version asked for is not installed.
    pub note: Option<String>,
}

/// The interpreters of this host and where our bootstraps live.
#[derive(Clone, Debug)]
pub struct RuntimeCatalog {
    pythons: Vec<Interpreter>,
    nodes: Vec<Interpreter>,
    runtime_dir: PathBuf,
}

const SEARCH_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin"];

impl RuntimeCatalog {
    /// Writes our bootstraps under `runtime_dir` and probes the host's interpreters.
    pub fn detect(runtime_dir: &Path) -> Result<RuntimeCatalog, SandboxError> {
        write_if_changed(&runtime_dir.join("python/bootstrap.py"), PYTHON_BOOTSTRAP)?;
        write_if_changed(&runtime_dir.join("node/bootstrap.cjs"), NODE_BOOTSTRAP)?;
        let mut python_candidates = Vec::new();
        let mut node_candidates = Vec::new();
        for dir in SEARCH_DIRS {
            for minor in 6..=30 {
                python_candidates.push(Path::new(dir).join(format!("python3.{minor}")));
            }
            node_candidates.push(Path::new(dir).join("node"));
            node_candidates.push(Path::new(dir).join("nodejs"));
        }
        let (pythons, nodes) = std::thread::scope(|s| {
            let p = s.spawn(|| probe_all(python_candidates, parse_python_version));
            let n = s.spawn(|| probe_all(node_candidates, parse_node_version));
            (p.join().unwrap_or_default(), n.join().unwrap_or_default())
        });
        // Compiling the bootstrap once per interpreter saves every cold start the ~8 ms of
        // compiling it again (the code dir is read-only, so Python cannot cache it there).
        std::thread::scope(|s| {
            for python in &pythons {
                s.spawn(|| compile_bootstrap(python, runtime_dir));
            }
        });
        Ok(RuntimeCatalog {
            pythons,
            nodes,
            runtime_dir: runtime_dir.to_owned(),
        })
    }

    /// A catalog with the given interpreters (for tests).
    pub fn with_interpreters(
        runtime_dir: PathBuf,
        pythons: Vec<Interpreter>,
        nodes: Vec<Interpreter>,
    ) -> Self {
        RuntimeCatalog {
            pythons,
            nodes,
            runtime_dir,
        }
    }

    /// Where the bootstraps are.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// Every interpreter found, Python first.
    pub fn interpreters(&self) -> impl Iterator<Item = (RuntimeFamily, &Interpreter)> {
        self.pythons
            .iter()
            .map(|i| (RuntimeFamily::Python, i))
            .chain(self.nodes.iter().map(|i| (RuntimeFamily::Node, i)))
    }

    /// How `runtime` starts, given where the instance sees its code (`task_root`) and our
    /// runtime files (`runtime_dir`).
    pub fn resolve(
        &self,
        runtime: &Runtime,
        task_root: &Path,
        runtime_dir: &Path,
    ) -> Result<ResolvedRuntime, SandboxError> {
        let (family_name, installed, bootstrap) = match runtime.family() {
            RuntimeFamily::Provided => {
                return Ok(ResolvedRuntime {
                    argv: vec![task_root.join("bootstrap").to_string_lossy().into_owned()],
                    interpreter: None,
                    note: None,
                })
            }
            RuntimeFamily::Python => ("Python", &self.pythons, "python/bootstrap.py"),
            RuntimeFamily::Node => ("Node.js", &self.nodes, "node/bootstrap.cjs"),
        };
        let want = runtime.version();
        let matches = |i: &&Interpreter| match runtime.family() {
            RuntimeFamily::Python => (i.version.0, i.version.1) == want,
            _ => i.version.0 == want.0,
        };
        let (interp, note) = match installed.iter().find(matches) {
            Some(i) => (i, None),
            None => {
                let nearest = installed.iter().max_by_key(|i| i.version).ok_or_else(|| {
                    SandboxError::RuntimeUnavailable {
                        runtime: runtime.id().to_owned(),
                        reason: format!("no {family_name} interpreter is installed"),
                    }
                })?;
                let note = format!(
                    "{} is not installed on this host; running {}",
                    runtime.id(),
                    nearest.version_string
                );
                (nearest, Some(note))
            }
        };
        let mut argv = vec![interp.path.to_string_lossy().into_owned()];
        if runtime.family() == RuntimeFamily::Python {
            // No user site-packages: instances must not depend on the host user's files.
            argv.push("-s".into());
        }
        let compiled = match runtime.family() {
            RuntimeFamily::Python => Some(bytecode_name(interp)),
            _ => None,
        }
        .filter(|pyc| self.runtime_dir.join(pyc).is_file());
        let script = compiled.as_deref().unwrap_or(bootstrap);
        argv.push(runtime_dir.join(script).to_string_lossy().into_owned());
        Ok(ResolvedRuntime {
            argv,
            interpreter: Some(interp.clone()),
            note,
        })
    }
}

/// The bootstrap's bytecode file for one interpreter (bytecode is per minor version).
fn bytecode_name(python: &Interpreter) -> String {
    format!(
        "python/bootstrap.cpython-{}{}.pyc",
        python.version.0, python.version.1
    )
}

fn compile_bootstrap(python: &Interpreter, runtime_dir: &Path) {
    let src = runtime_dir.join("python/bootstrap.py");
    let dst = runtime_dir.join(bytecode_name(python));
    let code = "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], \
                dfile='/var/runtime/python/bootstrap.py', doraise=True)";
    let ok = std::process::Command::new(&python.path)
        .args(["-s", "-c", code])
        .arg(&src)
        .arg(&dst)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        // The plain script still works, only slower to start.
        let _ = std::fs::remove_file(&dst);
    }
}

fn write_if_changed(path: &Path, content: &str) -> Result<(), SandboxError> {
    if std::fs::read(path).ok().as_deref() == Some(content.as_bytes()) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn probe_all(
    candidates: Vec<PathBuf>,
    parse: fn(&str) -> Option<(u32, u32, u32)>,
) -> Vec<Interpreter> {
    let mut found: Vec<Interpreter> = Vec::new();
    for candidate in candidates {
        let Ok(real) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        if !is_elf(&real) || found.iter().any(|i| i.path == real) {
            continue;
        }
        let Ok(out) = std::process::Command::new(&real)
            .arg("--version")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_owned();
        if let Some(version) = parse(&text) {
            found.push(Interpreter {
                // Keep the conventional name when it points at the same binary, so the
                // mapping users see reads /usr/bin/python3.11, not a versioned file.
                path: if candidate.parent() == real.parent() {
                    candidate
                } else {
                    real
                },
                version,
                version_string: text,
            });
        }
    }
    found
}

fn parse_triplet(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

fn parse_python_version(s: &str) -> Option<(u32, u32, u32)> {
    parse_triplet(s.strip_prefix("Python ")?)
}

fn parse_node_version(s: &str) -> Option<(u32, u32, u32)> {
    parse_triplet(s.strip_prefix('v')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(path: &str, version: (u32, u32, u32), s: &str) -> Interpreter {
        Interpreter {
            path: path.into(),
            version,
            version_string: s.into(),
        }
    }

    fn catalog() -> RuntimeCatalog {
        RuntimeCatalog::with_interpreters(
            "/rt".into(),
            vec![
                interp("/usr/bin/python3.11", (3, 11, 2), "Python 3.11.2"),
                interp("/usr/bin/python3.9", (3, 9, 1), "Python 3.9.1"),
            ],
            vec![interp("/usr/bin/node", (20, 20, 2), "v20.20.2")],
        )
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_python_version("Python 3.11.2"), Some((3, 11, 2)));
        assert_eq!(parse_python_version("Python 3.13.0rc1"), Some((3, 13, 0)));
        assert_eq!(parse_node_version("v20.20.2"), Some((20, 20, 2)));
        assert_eq!(parse_node_version("20"), None);
    }

    #[test]
    fn exact_and_nearest() {
        let c = catalog();
        let py = Runtime::parse("python3.11").unwrap();
        let r = c
            .resolve(&py, Path::new("/task"), Path::new("/rt"))
            .unwrap();
        assert_eq!(
            r.argv,
            vec!["/usr/bin/python3.11", "-s", "/rt/python/bootstrap.py"]
        );
        assert!(r.note.is_none());

        let py12 = Runtime::parse("python3.12").unwrap();
        let r = c
            .resolve(&py12, Path::new("/task"), Path::new("/rt"))
            .unwrap();
        assert_eq!(r.argv[0], "/usr/bin/python3.11");
        assert!(r.note.unwrap().contains("Python 3.11.2"));

        let node = Runtime::parse("node18").unwrap();
        let r = c
            .resolve(&node, Path::new("/task"), Path::new("/rt"))
            .unwrap();
        assert_eq!(r.argv, vec!["/usr/bin/node", "/rt/node/bootstrap.cjs"]);
        assert!(r.note.unwrap().contains("v20.20.2"));

        let provided = Runtime::parse("provided.al2").unwrap();
        let r = c
            .resolve(&provided, Path::new("/task"), Path::new("/rt"))
            .unwrap();
        assert_eq!(r.argv, vec!["/task/bootstrap"]);
    }

    #[test]
    fn missing_family_is_unavailable() {
        let c = RuntimeCatalog::with_interpreters("/rt".into(), vec![], vec![]);
        let err = c
            .resolve(
                &Runtime::parse("nodejs20.x").unwrap(),
                Path::new("/t"),
                Path::new("/rt"),
            )
            .unwrap_err();
        assert!(matches!(err, SandboxError::RuntimeUnavailable { .. }));
    }

    #[test]
    fn detects_host_interpreters() {
        let dir = tempfile::tempdir().unwrap();
        let c = RuntimeCatalog::detect(dir.path()).unwrap();
        assert!(dir.path().join("python/bootstrap.py").is_file());
        // Whatever is found must be a real binary with a parsed version.
        for (family, i) in c.interpreters() {
            assert!(i.path.is_absolute());
            assert!(i.version.0 > 0, "{i:?}");
            if family == RuntimeFamily::Python {
                assert!(dir.path().join(bytecode_name(i)).is_file(), "{i:?}");
                let runtime =
                    Runtime::parse(&format!("python{}.{}", i.version.0, i.version.1)).unwrap();
                let r = c
                    .resolve(&runtime, Path::new("/t"), Path::new("/rt"))
                    .unwrap();
                assert!(r.argv.last().unwrap().ends_with(".pyc"), "{:?}", r.argv);
            }
        }
    }
}
