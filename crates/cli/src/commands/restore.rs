//! `lifeboat restore ID --data-dir DIR`: fetch, decrypt, verify, restore natively; with
//! `--to-revision R` or `--to-time T`, the base backup and captured segments that reach that
//! point, replayed natively.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use lifeboat_core::backups::restore_backup;
use lifeboat_core::pitr::{PointProof, restore_to_point};

use crate::commands::pitr::{PointArgs, point_plan};
use crate::commands::snapshot::restore::{RestoreFlags, print};
use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's ID, or `latest` (the newest etcd backup); not with --to-revision/--to-time,
    /// which choose their base.
    #[arg(value_name = "ID", required_unless_present_any = ["to_revision", "to_time"])]
    id: Option<String>,
    #[command(flatten)]
    point: PointArgs,
    #[command(flatten)]
    flags: RestoreFlags,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: RestoreArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    // The snapshot is fetched into a private temporary file beside the data directory.
    let options = args.flags.options(PathBuf::new());
    let bar = TerminalBar::new("fetch");
    let cancel = cancel_on_signals();
    let Some(target) = args.point.target() else {
        let id = resolve_id(&repo, args.id.as_deref().unwrap_or("latest"), Some("etcd")).await?;
        let (manifest, report) = restore_backup(&repo, &id, &identities, &options, &bar, &cancel).await?;
        return print(&format!("backup {}", manifest.id), &report, format);
    };
    lifeboat_core::snapshot_restore::preflight(&options)?;
    let plan = point_plan(&repo, args.point.cluster, target, &identities).await?;
    let (report, proof) = restore_to_point(&repo, &plan, &identities, &options, &bar, &cancel).await?;
    let source = format!(
        "backup {} + {} segments to revision {}",
        plan.base.id,
        plan.segments.len(),
        plan.revision
    );
    match format {
        OutputFormat::Json => output::json(
            &mut std::io::stdout().lock(),
            &serde_json::json!({
                "restore": report,
                "base": plan.base.id,
                "segments": plan.segments.len(),
                "revision": plan.revision,
                "time": plan.time,
                "proof": proof,
            }),
        )?,
        _ => {
            print(&source, &report, format)?;
            let line = match &proof {
                PointProof::Equal { recorded } => format!(
                    "HashKV at revision {} equals the live member's ({:08x})",
                    recorded.revision, recorded.hash
                ),
                PointProof::Differs { recorded, computed } => format!(
                    "HashKV at revision {} is {computed:08x}, the live member's was {:08x}",
                    recorded.revision, recorded.hash
                ),
                PointProof::NotComparable { reason } => format!("HashKV not compared: {reason}"),
            };
            writeln!(std::io::stdout().lock(), "{line}")?;
        }
    }
    if let PointProof::Differs { recorded, computed } = proof {
        bail!(
            "the restored data in {} differs from the live member at revision {} (HashKV {computed:08x}, recorded {:08x}): a segment is missing an event; keep the old data and report this",
            report.data_dir.display(),
            recorded.revision,
            recorded.hash
        );
    }
    Ok(())
}

/// Says on stderr which revision a time resolved to, and how long that state lasted.
pub fn say_resolution(time: &lifeboat_core::pitr::TimeResolution) {
    let next = match (&time.next_revision, &time.next_received) {
        (Some(revision), Some(received)) => {
            format!("; the next change (revision {revision}) was received {received}")
        }
        _ => "; no later change was captured".into(),
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "{} resolves to revision {}, received {}{next}",
        time.asked,
        time.revision,
        time.received
    );
}
