//! `lifeboat backups delete ID...`: asks first (or --yes); --dry-run shows what would go.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use lifeboat_repo::LockKind;

use crate::output::{self, OutputFormat};
use crate::repo_flags::{RepoFlags, resolve_id};

/// Arguments of `backups delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Backups to delete (IDs or `latest`).
    #[arg(value_name = "ID", required = true)]
    ids: Vec<String>,
    /// Delete without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    repo: RepoFlags,
}

#[derive(serde::Serialize)]
struct Deleted {
    id: String,
    created: String,
    deleted: bool,
}

pub async fn run(args: DeleteArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    // (ID, created, summary): an untrusted manifest can be deleted too, which is how it goes.
    let mut manifests = Vec::new();
    for text in &args.ids {
        let id = resolve_id(&repo, text, None).await?;
        match repo.manifest(&id).await {
            Ok(manifest) => {
                manifests.push((id, manifest.created.clone(), output::manifest_summary(&manifest)))
            }
            Err(
                error @ (lifeboat_repo::Error::Forged { .. }
                | lifeboat_repo::Error::Format { .. }
                | lifeboat_repo::Error::UnsupportedFormat { .. }),
            ) => manifests.push((id, "?".into(), format!("untrusted manifest: {error}"))),
            Err(error) => return Err(error.into()),
        }
    }
    if !args.dry_run && !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("deleting backups needs confirmation: pass --yes (or --dry-run to see what would go)");
        }
        let mut err = std::io::stderr().lock();
        for (id, _, summary) in &manifests {
            writeln!(err, "  {id} ({summary})")?;
        }
        write!(
            err,
            "Delete these {} backups from {}? [y/N] ",
            manifests.len(),
            repo.storage().repo()
        )?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("nothing deleted");
        }
    }
    let lock = match args.dry_run {
        true => None,
        false => Some(repo.lock("backups delete", LockKind::Exclusive).await?),
    };
    let deleted: anyhow::Result<()> = async {
        if let Some(lock) = &lock {
            for (id, _, _) in &manifests {
                lock.ensure_held()?;
                repo.delete(id).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    deleted?;
    let report: Vec<Deleted> = manifests
        .iter()
        .map(|(id, created, _)| Deleted {
            id: id.to_string(),
            created: created.clone(),
            deleted: !args.dry_run,
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &report)?,
        OutputFormat::Simple | OutputFormat::Table => {
            let verb = if args.dry_run { "Would delete" } else { "Deleted" };
            for item in &report {
                writeln!(out, "{verb} {} (created {})", item.id, item.created)?;
            }
        }
    }
    Ok(())
}
