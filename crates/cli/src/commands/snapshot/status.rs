//! `lifeboat snapshot status FILE`: etcdutl's status, computed natively.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_core::snapshot_file::Access;
use lifeboat_etcd_data::SnapshotStatus;

use crate::output::{self, OutputFormat};

/// Arguments of `snapshot status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A snapshot file, or a member's `db` (no trailer).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: StatusArgs, format: OutputFormat) -> anyhow::Result<()> {
    let status = lifeboat_core::snapshot_file::status(&args.file, Access::Mapped)?;
    print(&status, format)
}

/// etcdutl's three renderings: `%x, %d, %d, humanized size`, a table, compact JSON.
fn print(status: &SnapshotStatus, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let size = output::si_bytes(status.total_size);
    match format {
        OutputFormat::Simple => {
            writeln!(
                out,
                "{:x}, {}, {}, {size}",
                status.hash, status.revision, status.total_key
            )?;
        }
        OutputFormat::Table => output::grid(
            &mut out,
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                format!("{:x}", status.hash),
                status.revision.to_string(),
                status.total_key.to_string(),
                size,
            ]],
        )?,
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(status)?)?,
    }
    Ok(())
}
