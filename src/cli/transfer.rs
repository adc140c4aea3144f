//! `holactl lambda export` and `import`: a whole store to an archive and back, to move a
//! platform between backends (an embedded data dir into a NATS cluster, or back) or keep a
//! copy. Both open the store directly, not through a server: an embedded data dir must not
//! be served meanwhile (its lock says so).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use holactl_store::nats::NatsStore;
use holactl_store::transfer::{self, Counts, ExportOptions, ImportOptions, Step};
use holactl_store::Stores;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{datadir, output, GlobalOpts, Outcome, OutputFormat};

/// Which store to read or write.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The embedded store's data dir (default: the per-user data dir, as `serve`).
    #[arg(long, env = "HOLACTL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: super::nats::NatsArgs,
}

/// `export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The archive to write (gzip-compressed tar).
    #[arg(default_value = "holactl-export.tar.gz")]
    pub file: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Leave out execution records and logs (the history): a smaller archive of the
    /// platform's definitions, code and queued work.
    #[arg(long)]
    pub no_executions: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive `holactl lambda export` wrote.
    pub file: PathBuf,
    /// Write into a store that already holds a platform (the archive's keys replace its
    /// keys; finishes an import that stopped halfway).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// An open store and what keeps it to this process.
struct Opened {
    stores: Stores,
    /// Where it is, for messages.
    describe: String,
    _lock: Option<datadir::DataDirLock>,
}

async fn open(args: &StoreArgs, creating: bool) -> anyhow::Result<Opened> {
    if let Some((url, options)) = args.cluster.options()? {
        let namespace = options.namespace.clone();
        let stores = NatsStore::connect(&url, options)
            .await
            .with_context(|| format!("store_unavailable: cannot open the NATS store at {url}"))?;
        return Ok(Opened {
            stores,
            describe: format!("NATS {url} (namespace {namespace})"),
            _lock: None,
        });
    }
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(super::default_data_dir);
    let store_dir = dir.join(holactl_engine::STORE_DIR);
    let db = holactl_store::embedded::EmbeddedStore::database_path(&store_dir);
    if !creating && !db.is_file() {
        anyhow::bail!(
            "store_not_found: {} holds no embedded store (no {}); pass the data dir with \
             --data-dir, or --nats for a cluster",
            dir.display(),
            db.display()
        );
    }
    let lock = datadir::prepare(&dir)?;
    let stores = holactl_store::embedded::EmbeddedStore::open(&store_dir)
        .with_context(|| format!("store_unavailable: {}", store_dir.display()))?;
    Ok(Opened {
        stores,
        describe: format!("data dir {}", dir.display()),
        _lock: Some(lock),
    })
}

/// What describes the nodes running now, not the platform: never carried.
fn transient() -> Vec<String> {
    holactl_engine::cluster::TRANSIENT_PREFIXES
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

/// Progress on stderr: a bar per section on a terminal, else one line per section.
struct Progress {
    verb: &'static str,
    bar: Option<ProgressBar>,
    section: &'static str,
    last: Option<Step>,
}

impl Progress {
    fn new(verb: &'static str) -> Self {
        Progress {
            verb,
            bar: None,
            section: "",
            last: None,
        }
    }

    fn finish_section(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        } else if let Some(step) = self.last.take() {
            eprintln!("{} {}: {}", self.verb, step.section, done(&step));
        }
    }

    fn step(&mut self, step: Step) {
        if step.section != self.section {
            self.finish_section();
            self.section = step.section;
            if std::io::stderr().is_terminal() {
                let bar = match step.total {
                    Some(total) => ProgressBar::new(total).with_style(
                        ProgressStyle::with_template("{msg:>20} {bar:30} {pos}/{len}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    ),
                    None => ProgressBar::new_spinner().with_style(
                        ProgressStyle::with_template("{msg:>20} {spinner} {pos}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
                };
                bar.set_message(format!("{} {}", self.verb, step.section));
                self.bar = Some(bar);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(step.done);
        }
        self.last = Some(step);
    }
}

fn done(step: &Step) -> String {
    match step.total {
        Some(total) => format!("{}/{total}", step.done),
        None => format!("{} entries", step.done),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    file: &'a Path,
    bytes: u64,
    source: &'a str,
    target: Option<&'a str>,
    counts: Counts,
}

/// `holactl lambda export`.
pub async fn export(g: &GlobalOpts, args: ExportArgs) -> anyhow::Result<Outcome> {
    if args.file.exists() && !args.overwrite {
        anyhow::bail!(
            "file_exists: {} exists; pass --overwrite to replace it",
            args.file.display()
        );
    }
    let opened = open(&args.store, false).await?;
    // Written beside the target and renamed when whole: a failed export leaves no archive.
    let dir = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("io_error: cannot write in {}", dir.display()))?;
    let mut progress = Progress::new("export");
    let exported = transfer::export(
        &opened.stores,
        std::io::BufWriter::new(tmp),
        ExportOptions {
            executions: !args.no_executions,
            transient: transient(),
        },
        &mut |s| progress.step(s),
    )
    .await;
    progress.finish_section();
    let (file, counts) = exported?;
    let tmp = file
        .into_inner()
        .map_err(|e| e.into_error())
        .context("io_error: writing the archive")?;
    tmp.as_file()
        .sync_all()
        .context("io_error: writing the archive")?;
    // Without --overwrite, a file that appeared meanwhile is not replaced either.
    let persisted = if args.overwrite {
        tmp.persist(&args.file)
    } else {
        tmp.persist_noclobber(&args.file)
    };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "file_exists: {} exists; pass --overwrite to replace it",
            args.file.display()
        ),
        _ => anyhow::anyhow!("io_error: {}: {}", args.file.display(), e.error),
    })?;
    let bytes = std::fs::metadata(&args.file).map_or(0, |m| m.len());
    if g.output == OutputFormat::Json {
        output::json(&Report {
            file: &args.file,
            bytes,
            source: &opened.describe,
            target: None,
            counts,
        })?;
    } else {
        println!(
            "Exported {} to {} ({}): {counts}.",
            opened.describe,
            args.file.display(),
            output::bytes(bytes)
        );
        println!(
            "Secrets stay encrypted under this platform's master key: start the nodes that \
             import it with the same key (HOLACTL_MASTER_KEY, or its master.key file)."
        );
    }
    Ok(Outcome::Success)
}

/// `holactl lambda import`.
pub async fn import(g: &GlobalOpts, args: ImportArgs) -> anyhow::Result<Outcome> {
    if !args.file.is_file() {
        anyhow::bail!("file_not_found: {} is not a file", args.file.display());
    }
    let opened = open(&args.store, true).await?;
    let mut progress = Progress::new("import");
    let result = transfer::import(
        &opened.stores,
        &args.file,
        ImportOptions {
            force: args.force,
            transient: transient(),
        },
        &mut |s| progress.step(s),
    )
    .await;
    progress.finish_section();
    let (manifest, counts) = result?;
    let bytes = std::fs::metadata(&args.file).map_or(0, |m| m.len());
    if g.output == OutputFormat::Json {
        output::json(&Report {
            file: &args.file,
            bytes,
            source: &manifest.source,
            target: Some(&opened.describe),
            counts,
        })?;
    } else {
        println!(
            "Imported {} (exported from the {} store on {}) into {}: {counts}.",
            args.file.display(),
            manifest.source,
            output::time(manifest.created_at),
            opened.describe
        );
    }
    let _ = std::io::stdout().flush();
    Ok(Outcome::Success)
}
