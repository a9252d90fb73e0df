//! `lifeboat pitr ranges`: the revisions and times a point-in-time restore can reach.

use std::io::Write;

use clap::{Args, Subcommand};
use lifeboat_core::pitr::ranges;

use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Point-in-time recovery.
#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// The restorable ranges (revisions and times) of a cluster: a base backup and the captured
    /// segments after it; nothing between ranges can be restored.
    Ranges(RangesArgs),
}

/// Arguments of `pitr ranges`.
#[derive(Debug, Args)]
pub struct RangesArgs {
    #[command(flatten)]
    repo: RepoFlags,
    /// The etcd cluster (hex ID) when the repository holds several.
    #[arg(long, value_name = "ID", value_parser = parse_cluster)]
    cluster: Option<u64>,
}

/// A cluster ID as Lifeboat prints it (hex).
pub fn parse_cluster(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{text:?} is not a cluster ID (hex, as `lifeboat backups list` shows it)"))
}

impl PitrCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        let PitrCommand::Ranges(args) = self;
        let repo = args.repo.open().await?;
        let ranges = ranges(&repo, args.cluster).await?;
        let mut out = std::io::stdout().lock();
        match format {
            OutputFormat::Json => output::json(&mut out, &ranges)?,
            _ => {
                let rows: Vec<Vec<String>> = ranges
                    .iter()
                    .map(|r| {
                        vec![
                            r.cluster_id.clone(),
                            r.from_revision.to_string(),
                            r.to_revision.to_string(),
                            r.from_time.clone(),
                            r.to_time.clone(),
                            r.backups.to_string(),
                            r.segments.to_string(),
                        ]
                    })
                    .collect();
                let header = [
                    "CLUSTER", "FROM REV", "TO REV", "FROM", "TO", "BACKUPS", "SEGMENTS",
                ];
                match format {
                    OutputFormat::Table => output::grid_boxed(&mut out, &header, &rows)?,
                    _ => output::columns(&mut out, &header, &rows)?,
                }
                if ranges.is_empty() {
                    writeln!(out, "nothing is restorable: no etcd backup of the cluster")?;
                }
            }
        }
        Ok(())
    }
}
