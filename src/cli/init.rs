//! `holactl lambda init NAME --runtime R --template http|blank`: scaffold a function.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use holactl_types::{Runtime, RuntimeFamily};

use super::Outcome;

/// Templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// A handler for API Gateway HTTP events (payload format 2.0).
    Http,
    /// A handler that returns a JSON object.
    Blank,
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Function name (also the directory created).
    pub name: String,
    /// Runtime: python3.X, nodejsNN.x, nodeNN, provided.
    #[arg(long)]
    pub runtime: String,
    /// Template.
    #[arg(long, value_enum, default_value = "http")]
    pub template: Template,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

type Files = &'static [(&'static str, &'static str, bool)];

macro_rules! template {
    ($family:literal, $kind:literal, [$(($file:literal, $exec:expr)),*]) => {
        &[$(($file, include_str!(concat!("templates/", $family, "/", $kind, "/", $file)), $exec)),*]
    };
}

const PYTHON_HTTP: Files = template!(
    "python",
    "http",
    [
        ("lambda_function.py", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);
const PYTHON_BLANK: Files = template!(
    "python",
    "blank",
    [
        ("lambda_function.py", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);
const NODE_HTTP: Files = template!(
    "node",
    "http",
    [
        ("index.mjs", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);
const NODE_BLANK: Files = template!(
    "node",
    "blank",
    [
        ("index.mjs", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);
const PROVIDED_HTTP: Files = template!(
    "provided",
    "http",
    [
        ("bootstrap", true),
        ("function.sh", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);
const PROVIDED_BLANK: Files = template!(
    "provided",
    "blank",
    [
        ("bootstrap", true),
        ("function.sh", false),
        ("hola.toml", false),
        ("event.json", false)
    ]
);

/// The files of a template.
pub fn files(family: RuntimeFamily, template: Template) -> Files {
    match (family, template) {
        (RuntimeFamily::Python, Template::Http) => PYTHON_HTTP,
        (RuntimeFamily::Python, Template::Blank) => PYTHON_BLANK,
        (RuntimeFamily::Node, Template::Http) => NODE_HTTP,
        (RuntimeFamily::Node, Template::Blank) => NODE_BLANK,
        (RuntimeFamily::Provided, Template::Http) => PROVIDED_HTTP,
        (RuntimeFamily::Provided, Template::Blank) => PROVIDED_BLANK,
    }
}

/// Scaffolds the function.
pub fn run(args: InitArgs) -> anyhow::Result<Outcome> {
    holactl_types::function::validate_function_name(&args.name)
        .map_err(|e| anyhow::anyhow!("INVALID_INPUT: {e}"))?;
    let runtime =
        Runtime::parse(&args.runtime).map_err(|e| anyhow::anyhow!("INVALID_INPUT: {e}"))?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "CONFLICT: {} already exists and is not empty",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, content, executable) in files(runtime.family(), args.template) {
        let text = content
            .replace("{{name}}", &args.name)
            .replace("{{runtime}}", runtime.id());
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        println!("  created {}", path.display());
    }
    println!(
        "Function {} ({}) scaffolded in {}.\nDeploy it with: holactl lambda deploy {} --source {}",
        args.name,
        runtime,
        dir.display(),
        args.name,
        dir.display()
    );
    if args.template == Template::Http {
        println!(
            "Serve it over HTTP with: holactl lambda route create --method POST --path /{} --function {}",
            args.name, args.name
        );
    }
    Ok(Outcome::Success)
}
