//! `lifeboat backups list`

use std::io::Write;

use clap::Args;
use lifeboat_repo::Manifest;

use crate::exit::Failure;
use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `backups list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only backups with this tag; repeatable (all must match).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    #[command(flatten)]
    repo: RepoFlags,
}

const HEADER: [&str; 9] = [
    "ID",
    "CREATED",
    "KIND",
    "HOST",
    "REVISION",
    "LIVE KEYS",
    "SIZE",
    "STORED",
    "TAGS",
];

fn cells(manifest: &Manifest) -> Vec<String> {
    let (plain, stored) = manifest
        .artefacts
        .iter()
        .fold((0, 0), |(p, s), a| (p + a.plain_size, s + a.stored_size));
    let etcd = manifest.etcd.as_ref();
    vec![
        manifest.id.to_string(),
        manifest.created.clone(),
        manifest.kind.clone(),
        manifest.host.clone(),
        etcd.map(|e| e.revision.to_string()).unwrap_or_default(),
        etcd.map(|e| e.live_keys.to_string()).unwrap_or_default(),
        output::si_bytes(plain),
        output::si_bytes(stored),
        manifest.tags.join(","),
    ]
}

/// For each cluster with captured segments, what a point-in-time restore reaches (as
/// `pitr ranges` shows it).
async fn point_in_time(
    repo: &lifeboat_repo::Repository,
    backups: &[Manifest],
) -> anyhow::Result<Vec<String>> {
    let clusters: std::collections::BTreeSet<u64> = backups
        .iter()
        .filter_map(|m| u64::from_str_radix(&m.etcd.as_ref()?.cluster_id, 16).ok())
        .collect();
    let mut lines = Vec::new();
    for cluster in clusters {
        let ranges = lifeboat_core::pitr::ranges_of(repo, cluster, backups).await?;
        if ranges.iter().all(|r| r.segments == 0) {
            continue;
        }
        let spans: Vec<String> = ranges
            .iter()
            .map(|r| {
                format!(
                    "{} ({}) to {} ({})",
                    r.from_revision, r.from_time, r.to_revision, r.to_time
                )
            })
            .collect();
        lines.push(format!(
            "point in time, cluster {cluster:x}: any revision from {}",
            spans.join("; from ")
        ));
    }
    Ok(lines)
}

pub async fn run(args: ListArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let listing = repo.list().await?;
    let backups: Vec<Manifest> = listing
        .backups
        .into_iter()
        .filter(|m| args.tag.iter().all(|t| m.tags.contains(t)))
        .collect();
    let windows = match format {
        OutputFormat::Json => Vec::new(),
        _ => point_in_time(&repo, &backups).await?,
    };
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &backups)?,
        OutputFormat::Table => {
            output::grid(&mut out, &HEADER, &backups.iter().map(cells).collect::<Vec<_>>())?
        }
        OutputFormat::Simple => {
            for manifest in &backups {
                writeln!(out, "{}", cells(manifest).join(", "))?;
            }
        }
    }
    for line in windows {
        writeln!(out, "{line}")?;
    }
    // The readable backups are listed; the others fail the command, each named.
    if listing.unreadable.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = listing.unreadable.iter().map(|(_, e)| e.to_string()).collect();
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!(
            "{} manifests cannot be read (those backups are not listed): {}",
            named.len(),
            named.join("; ")
        ),
    }
    .into())
}
