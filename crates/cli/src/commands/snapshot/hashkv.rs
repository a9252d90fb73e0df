//! `lifeboat snapshot hashkv FILE [--revision R]`: etcd's HashKV, computed from the file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::output::{self, OutputFormat};

/// Arguments of `snapshot hashkv`.
#[derive(Debug, Args)]
pub struct HashkvArgs {
    /// A snapshot file, or a member's `db`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The revision to hash up to, as `etcdctl endpoint hashkv --rev` [default: the file's
    /// current revision].
    #[arg(long, value_name = "R")]
    revision: Option<i64>,
    /// Hash as a member compacted at C would (C at least the file's own compact revision).
    #[arg(long, value_name = "C")]
    compact_revision: Option<i64>,
    /// Hash as a member of this etcd version does: releases before 3.4.34 and 3.5.16 also hash a
    /// tombstone at the compact revision [default: the current rules].
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_member_version)]
    etcd_version: Option<lifeboat_etcd_data::Version>,
}

/// `--etcd-version` of hashkv: the rules changed within a minor, so the patch is needed.
fn parse_member_version(text: &str) -> Result<lifeboat_etcd_data::Version, String> {
    if text
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .count()
        != 3
    {
        return Err(format!(
            "{text:?}: give the member's full version, e.g. 3.5.1 (the rules changed in 3.5.16)"
        ));
    }
    super::status::parse_etcd_version(text)
}

#[derive(serde::Serialize)]
struct Report {
    file: PathBuf,
    hash: u32,
    revision: i64,
    compact_revision: i64,
}

pub fn run(args: HashkvArgs, format: OutputFormat) -> anyhow::Result<()> {
    let rules = lifeboat_etcd_data::HashRules::of(args.etcd_version);
    let hash =
        lifeboat_core::snapshot_file::hash_kv(&args.file, args.revision, args.compact_revision, rules)?;
    let report = Report {
        file: args.file,
        hash: hash.hash,
        revision: hash.revision,
        compact_revision: hash.compact_revision,
    };
    let mut out = std::io::stdout().lock();
    match format {
        // etcdctl's simple form: `ENDPOINT, HASH` (decimal).
        OutputFormat::Simple => writeln!(out, "{}, {}", report.file.display(), report.hash)?,
        OutputFormat::Table => output::grid(
            &mut out,
            &["FILE", "HASH", "REVISION", "COMPACT REVISION"],
            &[vec![
                report.file.display().to_string(),
                report.hash.to_string(),
                report.revision.to_string(),
                report.compact_revision.to_string(),
            ]],
        )?,
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
    }
    Ok(())
}
