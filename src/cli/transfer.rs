//! `scriptd export` and `scriptd import`: against the server's database (as `rotate-master-key`
//! and `backup` are), or, with `--url`, through a running server's API.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::client::Client;
use super::{Connection, Output};
use crate::catalog::transfer::{self, ImportOptions, ImportPlan, ScriptFile};
use crate::catalog::{file, Catalog};
use crate::config::Settings;
use crate::domain::Author;

/// Where the scripts are: the server's API when `--url` is given, else its database.
#[derive(Args)]
pub struct Target {
    /// Go through the running server at this URL (admin credentials as for the client:
    /// SCRIPTD_ADMIN_USER, SCRIPTD_ADMIN_PASSWORD or --password-file) instead of opening the
    /// database
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The admin user, with --url
    #[arg(long, env = "SCRIPTD_ADMIN_USER", default_value = "admin")]
    user: String,
    /// A file holding the admin password, with --url
    #[arg(long, env = "SCRIPTD_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// A file holding the passphrase that seals (export --with-secrets) or opens (import)
    /// secret values; else SCRIPTD_EXPORT_PASSPHRASE
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

impl Target {
    fn client(&self) -> anyhow::Result<Option<Client>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        Client::admin(&Connection {
            url: url.clone(),
            user: self.user.clone(),
            password_file: self.password_file.clone(),
            token_file: None,
            output: Output::Text,
        })
        .map(Some)
    }

    fn passphrase(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.passphrase_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
            if line.is_empty() {
                bail!("{} is empty", path.display());
            }
            return Ok(Some(line));
        }
        Ok(std::env::var("SCRIPTD_EXPORT_PASSPHRASE")
            .ok()
            .filter(|p| !p.is_empty()))
    }
}

#[derive(Args)]
#[command(after_help = "Examples:
  scriptd export --data-dir /var/lib/scriptd --out scripts/
  scriptd export --url http://127.0.0.1:8080 --script nightly-backup --out .
  SCRIPTD_EXPORT_PASSPHRASE=… scriptd export --out scripts/ --with-secrets")]
pub struct ExportArgs {
    #[command(flatten)]
    target: Target,
    /// The directory to write `<codeIdentifier>.toml` files in (created if missing)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Only this script (codeIdentifier); repeat for more
    #[arg(long = "script", value_name = "CODE")]
    scripts: Vec<String>,
    /// Seal secret values with the passphrase (--passphrase-file or SCRIPTD_EXPORT_PASSPHRASE)
    /// instead of leaving them out
    #[arg(long)]
    with_secrets: bool,
}

#[derive(Args)]
#[command(after_help = "Examples:
  scriptd import --data-dir /var/lib/scriptd scripts/ --dry-run
  scriptd import --url http://127.0.0.1:8080 scripts/ --prune
  scriptd import scripts/nightly-backup.toml --passphrase-file pass.txt")]
pub struct ImportArgs {
    #[command(flatten)]
    target: Target,
    /// `.toml` files, or directories whose `.toml` files are read
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// Print what would change, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Delete the scripts no file names
    #[arg(long)]
    prune: bool,
}

async fn catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    let store = crate::app::open_store(settings).await?;
    Ok(Catalog {
        store,
        keep_versions: i64::from(settings.keep_versions),
        allowed_runners: settings.allowed_runners.clone(),
    })
}

pub async fn export(settings: Settings, args: ExportArgs) -> anyhow::Result<()> {
    let passphrase = match args.with_secrets {
        true => Some(args.target.passphrase()?.context(
            "--with-secrets needs a passphrase: --passphrase-file FILE or SCRIPTD_EXPORT_PASSPHRASE",
        )?),
        false => None,
    };
    let files = match args.target.client()? {
        Some(client) => {
            let body = json!({ "scripts": args.scripts, "passphrase": passphrase });
            let resp = client
                .send(
                    client
                        .request(Method::POST, "/api/admin/scripts/export")
                        .json(&body),
                )
                .await?;
            untar(&resp.bytes().await?)?
        }
        None => {
            let catalog = catalog(&settings).await?;
            transfer::export(&catalog, &args.scripts, passphrase.as_deref()).await?
        }
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for f in &files {
        let path = args.out.join(&f.name);
        std::fs::write(&path, &f.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "exported {} script(s) to {}{}",
        files.len(),
        args.out.display(),
        if args.with_secrets {
            " (secret values sealed with the passphrase)"
        } else {
            " (secret values left out)"
        }
    );
    Ok(())
}

/// The `.toml` files of a tar archive from the server; any other entry is refused.
fn untar(bytes: &[u8]) -> anyhow::Result<Vec<ScriptFile>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name.contains('/') || !name.ends_with(file::EXTENSION) {
            bail!("the server's archive holds an unexpected entry {name:?}");
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)?;
        files.push(ScriptFile { name, text });
    }
    Ok(files)
}

fn read_files(paths: &[PathBuf]) -> anyhow::Result<Vec<ScriptFile>> {
    let mut found: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.to_string_lossy().ends_with(file::EXTENSION))
                .collect();
            inside.sort();
            found.extend(inside);
        } else {
            found.push(path.clone());
        }
    }
    found
        .iter()
        .map(|p: &PathBuf| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok(ScriptFile {
                name: file_name(p),
                text,
            })
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub async fn import(settings: Settings, args: ImportArgs) -> anyhow::Result<()> {
    let files = read_files(&args.paths)?;
    let passphrase = args.target.passphrase()?;
    let plan: ImportPlan = match args.target.client()? {
        Some(client) => {
            let body = json!({
                "files": files.iter().map(|f| json!({"name": f.name, "content": f.text})).collect::<Vec<_>>(),
                "dryRun": args.dry_run,
                "prune": args.prune,
                "passphrase": passphrase,
            });
            let value = client
                .post_json("/api/admin/scripts/import", Some(&body))
                .await?;
            serde_json::from_value(value).context("the server's answer is not an import plan")?
        }
        None => {
            let catalog = catalog(&settings).await?;
            let options = ImportOptions {
                dry_run: args.dry_run,
                prune: args.prune,
                passphrase,
            };
            transfer::import(&catalog, &files, options, &Author::command_line()).await?
        }
    };
    for code in &plan.create {
        println!("create    {code}");
    }
    for u in &plan.update {
        println!("update    {} ({})", u.code, u.fields.join(", "));
    }
    for code in &plan.unchanged {
        println!("unchanged {code}");
    }
    for code in &plan.delete {
        println!("delete    {code}");
    }
    println!(
        "{}: {} to create, {} to update, {} unchanged, {} to delete",
        if plan.applied {
            "imported"
        } else {
            "dry run, nothing changed"
        },
        plan.create.len(),
        plan.update.len(),
        plan.unchanged.len(),
        plan.delete.len()
    );
    Ok(())
}
