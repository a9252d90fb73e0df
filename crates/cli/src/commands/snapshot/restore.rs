//! `lifeboat snapshot restore FILE`: a member data directory, natively, with etcdutl's flags.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_core::snapshot_restore::{RestoreOptions, RestoreReport, restore};

use crate::output::{self, OutputFormat};

/// Arguments of `snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file (or, with --skip-hash-check, a member's db).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    flags: RestoreFlags,
}

/// etcdutl's restore flags and defaults (shared with `lifeboat restore ID`).
#[derive(Debug, Args)]
pub struct RestoreFlags {
    /// The new member's data directory; must be absent or empty [default: <name>.etcd].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Put the WAL here instead of <data-dir>/member/wal; must not exist.
    #[arg(long, value_name = "DIR")]
    wal_dir: Option<PathBuf>,
    /// This member's name; must appear in --initial-cluster.
    #[arg(long, default_value = "default")]
    name: String,
    /// Every member of the new cluster: name=peer-url, comma-separated.
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// The new cluster's token; every member must be restored with the same one.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs, comma-separated, as in --initial-cluster.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    initial_advertise_peer_urls: Vec<String>,
    /// Restore without checking the sha256 trailer (needed for a db copied from a data dir).
    #[arg(long)]
    skip_hash_check: bool,
    /// Add N to the last revision so clients see revisions only grow (with --mark-compacted).
    #[arg(long, default_value_t = 0, value_name = "N")]
    bump_revision: u64,
    /// Compact at the bumped revision so watchers of old revisions are told to re-list.
    #[arg(long)]
    mark_compacted: bool,
}

impl RestoreFlags {
    /// The options of a restore from `snapshot`.
    pub fn options(self, snapshot: PathBuf) -> RestoreOptions {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        RestoreOptions {
            snapshot,
            data_dir,
            wal_dir: self.wal_dir,
            name: self.name,
            initial_cluster: self.initial_cluster,
            initial_cluster_token: self.initial_cluster_token,
            initial_advertise_peer_urls: self.initial_advertise_peer_urls,
            skip_hash_check: self.skip_hash_check,
            bump_revision: self.bump_revision,
            mark_compacted: self.mark_compacted,
            replay: None,
        }
    }
}

pub fn run(args: RestoreArgs, format: OutputFormat) -> anyhow::Result<()> {
    let options = args.flags.options(args.file);
    let report = restore(&options)?;
    print(&options.snapshot.display().to_string(), &report, format)
}

/// Prints what was restored from `source` (a file, or a backup).
pub fn print(source: &str, report: &RestoreReport, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let bumped = report
        .backend
        .bumped_to
        .map(|r| r.to_string())
        .unwrap_or_else(|| "-".into());
    match format {
        OutputFormat::Json => output::json(&mut out, report)?,
        OutputFormat::Table => output::table(
            &mut out,
            &[
                ("source", source.to_string()),
                ("data dir", report.data_dir.display().to_string()),
                ("wal dir", report.wal_dir.display().to_string()),
                ("member", format!("{} ({})", report.name, report.member_id)),
                ("cluster id", report.cluster_id.clone()),
                ("members", report.members.to_string()),
                ("revision", report.backend.revision.to_string()),
                ("bumped to", bumped),
                ("revisions kept", report.backend.revisions.to_string()),
                ("db size", output::si_bytes(report.backend.size)),
                ("seconds", format!("{:.2}", report.seconds)),
            ],
        )?,
        OutputFormat::Simple => writeln!(
            out,
            "Restored {} into {}: member {} ({}) of cluster {} ({} members), revision {}{}, db {}, {:.2}s",
            source,
            report.data_dir.display(),
            report.name,
            report.member_id,
            report.cluster_id,
            report.members,
            report.backend.revision,
            report
                .backend
                .bumped_to
                .map(|r| format!(" bumped to {r}"))
                .unwrap_or_default(),
            output::si_bytes(report.backend.size),
            report.seconds
        )?,
    }
    Ok(())
}
