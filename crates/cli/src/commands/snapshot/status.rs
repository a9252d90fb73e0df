//! `lifeboat snapshot status FILE`: etcdutl's status, computed natively, as the etcdutl of the
//! file's etcd minor prints it (or of `--etcd-version`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_etcd_data::{SnapshotStatus, StatusRules, Version};

use crate::output::{self, OutputFormat};

/// Arguments of `snapshot status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A snapshot file, or a member's `db` (no trailer).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print what this etcd version's etcdutl prints (3.4 to 3.7; 3.6 and later count live
    /// keys and add VERSION). Default: the version the file records.
    #[arg(long, value_name = "X.Y", value_parser = parse_etcd_version)]
    etcd_version: Option<Version>,
}

/// `--etcd-version`: a supported `X.Y` or `X.Y.Z`.
pub fn parse_etcd_version(text: &str) -> Result<Version, String> {
    let version =
        Version::parse(text).ok_or_else(|| format!("{text:?} is not an etcd version; write e.g. 3.6"))?;
    version
        .check_supported(&format!("--etcd-version {text}"))
        .map_err(|e| e.to_string())?;
    Ok(version)
}

pub fn run(args: StatusArgs, format: OutputFormat) -> anyhow::Result<()> {
    let status = lifeboat_core::snapshot_file::status(&args.file, args.etcd_version)?;
    print(&status, format)
}

/// etcdutl's three renderings: `%x, %d, %d, humanized size[, version]`, a table, compact JSON.
fn print(status: &SnapshotStatus, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut header = vec!["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let mut row = vec![
        format!("{:x}", status.hash),
        status.revision.to_string(),
        status.total_key.to_string(),
        output::si_bytes(status.total_size),
    ];
    if let Some(version) = &status.version {
        header.push("VERSION");
        row.push(version.clone());
    }
    match format {
        OutputFormat::Simple => writeln!(out, "{}", row.join(", "))?,
        OutputFormat::Table if status.rules == StatusRules::Etcd3_7 => {
            output::grid_boxed(&mut out, &header, &[row])?
        }
        OutputFormat::Table => output::grid(&mut out, &header, &[row])?,
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(status)?)?,
    }
    Ok(())
}
