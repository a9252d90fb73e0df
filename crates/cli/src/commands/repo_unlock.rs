//! `lifeboat repo unlock [REPO]`: removes stale locks (their holder died or lost the storage), or
//! with `--remove-all` every lock, and names the live ones it left.

use std::io::Write;
use std::time::SystemTime;

use clap::Args;
use lifeboat_repo::Repository;
use serde::Serialize;

use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `repo unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The repository [default: --repo, LIFEBOAT_REPO].
    #[arg(value_name = "REPO")]
    location: Option<String>,
    /// Remove live locks too: only when their holders are known to be gone (another host's
    /// process that was killed, whose lock has not expired yet).
    #[arg(long)]
    remove_all: bool,
    /// List the locks and what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    repo: RepoFlags,
}

/// One lock and what became of it.
#[derive(Debug, Serialize)]
struct Unlocked {
    key: String,
    /// The holder, or why the object is not a lock.
    holder: String,
    stale: bool,
    removed: bool,
}

pub async fn run(args: UnlockArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = Repository::open(args.repo.storage(args.location.as_deref())?).await?;
    let now = SystemTime::now();
    let mut report: Vec<Unlocked> = Vec::new();
    for lock in repo.locks().await? {
        let (holder, stale) = match &lock.record {
            Some(record) => (record.describe(), record.is_stale(now)),
            None => ("not a valid lock".to_string(), true),
        };
        let removed = (stale || args.remove_all) && !args.dry_run;
        if removed {
            repo.remove_lock(&lock.key).await?;
        }
        report.push(Unlocked {
            key: lock.key,
            holder,
            stale,
            removed,
        });
    }
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        return output::json(&mut out, &report);
    }
    for lock in &report {
        let state = match (lock.removed, lock.stale) {
            (true, true) => "removed stale lock",
            (true, false) => "removed live lock",
            (false, true) => "stale lock",
            (false, false) => "live lock",
        };
        writeln!(out, "{state} {}: {}", lock.key, lock.holder)?;
    }
    let removed = report.iter().filter(|l| l.removed).count();
    writeln!(out, "removed {removed} locks; {} left", report.len() - removed)?;
    Ok(())
}
