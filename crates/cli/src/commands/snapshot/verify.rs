//! `lifeboat snapshot verify FILE`: trailer, bbolt check, etcd structure; every finding.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_etcd_data::{Trailer, VerifyReport};

use crate::exit::Failure;
use crate::output::{self, OutputFormat};

/// Exit code when findings were reported.
const FINDINGS: u8 = 1;
/// Exit code when the file cannot be read as a bbolt file at all.
const UNREADABLE: u8 = 2;

/// Arguments of `snapshot verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A snapshot file, or a member's `db` (no trailer).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: VerifyArgs, format: OutputFormat) -> anyhow::Result<()> {
    let report = lifeboat_core::snapshot_file::verify(&args.file).map_err(|e| Failure {
        code: UNREADABLE,
        message: e.to_string(),
    })?;
    print(&args, &report, format)?;
    if report.is_clean() {
        return Ok(());
    }
    Err(Failure {
        code: FINDINGS,
        message: format!(
            "{}: {} findings; the snapshot is damaged",
            args.file.display(),
            report.findings.len()
        ),
    }
    .into())
}

fn print(args: &VerifyArgs, report: &VerifyReport, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            file: &'a std::path::Path,
            ok: bool,
            #[serde(flatten)]
            report: &'a VerifyReport,
        }
        return output::json(
            &mut out,
            &Json {
                file: &args.file,
                ok: report.is_clean(),
                report,
            },
        );
    }
    let trailer = match &report.trailer {
        Trailer::Valid { sha256 } => format!("valid (sha256 {sha256})"),
        Trailer::Mismatch { .. } => "MISMATCH".to_string(),
        Trailer::Absent => "absent (a db copied from a data directory?)".to_string(),
    };
    writeln!(out, "file:      {}", args.file.display())?;
    writeln!(out, "trailer:   {trailer}")?;
    writeln!(
        out,
        "bbolt:     {} pages of {} bytes, meta page {} (txid {})",
        report.pages, report.page_size, report.meta_page, report.txid
    )?;
    if let Some(status) = &report.status {
        writeln!(
            out,
            "etcd:      revision {}, {} keys, hash {:x}",
            status.revision, status.total_key, status.hash
        )?;
    }
    for finding in &report.findings {
        writeln!(out, "finding:   {finding}")?;
    }
    let verdict = match report.findings.len() {
        0 => "OK".to_string(),
        n => format!("{n} findings"),
    };
    writeln!(out, "result:    {verdict}")?;
    Ok(())
}
