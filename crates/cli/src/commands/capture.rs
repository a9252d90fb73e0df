//! `lifeboat capture --repo REPO`: point-in-time capture in the foreground, until SIGINT or
//! SIGTERM (what an agent job of kind `capture` runs while its agent leads).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use lifeboat_core::backup::Labels;
use lifeboat_core::capture::{
    CaptureOptions, CaptureStatus, DEFAULT_BUFFER_BYTES, DEFAULT_SEGMENT_BYTES, capture,
};

use crate::etcd_flags::{EtcdFlags, check_files_exist};
use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    repo: RepoFlags,
    /// Seal a segment this often (it then is in the repository: the most a crash loses).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    segment: Duration,
    /// Seal a segment early once its events reach this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SEGMENT_BYTES)]
    segment_bytes: usize,
    /// Ask the member's HashKV (which hashes its whole key space) at most this often, to
    /// prove restores; 0s: at every segment.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    hash_every: Duration,
    /// Segments held in memory while the storage does not take them; past this the watch
    /// pauses (a gap follows only if etcd compacts meanwhile).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BUFFER_BYTES)]
    buffer_bytes: usize,
    /// Host name recorded in the segments [default: this machine's].
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    #[command(flatten)]
    etcd: EtcdFlags,
}

pub async fn run(args: CaptureArgs, format: OutputFormat) -> anyhow::Result<()> {
    let connect = args.etcd.resolve()?;
    check_files_exist(&connect)?;
    let repo = args.repo.open().await?;
    let options = CaptureOptions {
        connect,
        labels: Labels {
            host: args.host.unwrap_or_else(super::host_name),
            tags: Vec::new(),
            cluster: None,
        },
        segment: args.segment,
        segment_bytes: args.segment_bytes,
        hash_every: args.hash_every,
        buffer_bytes: args.buffer_bytes,
    };
    let (status, mut seen) = tokio::sync::watch::channel(CaptureStatus::default());
    let cancel = cancel_on_signals();
    let reporting = async {
        // One line whenever what is stored moves, at most every 10 s.
        let mut shown = 0;
        while seen.changed().await.is_ok() {
            let now = seen.borrow_and_update().clone();
            if now.stored_revision != shown && format == OutputFormat::Simple {
                shown = now.stored_revision;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "capture of cluster {:x}: stored up to revision {} ({} segments, {} gaps, {} buffered)",
                    now.cluster_id,
                    now.stored_revision,
                    now.segments_stored,
                    now.gaps,
                    output::si_bytes(now.buffered_bytes)
                );
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let outcome = tokio::select! {
        outcome = capture(&repo, &options, &status, &cancel) => outcome,
        () = reporting => Ok(()),
    };
    let last = status.borrow().clone();
    let interrupted =
        matches!(outcome, Err(lifeboat_core::Error::Interrupted { .. })) || cancel.is_cancelled();
    match outcome {
        Ok(()) => {}
        Err(_) if interrupted => {}
        Err(error) => return Err(error.into()),
    }
    let mut out = std::io::stdout().lock();
    let rows = [
        ("cluster id", format!("{:x}", last.cluster_id)),
        ("stored up to revision", last.stored_revision.to_string()),
        ("segments stored", last.segments_stored.to_string()),
        ("gaps", last.gaps.to_string()),
    ];
    match format {
        OutputFormat::Json => output::json(
            &mut out,
            &serde_json::json!({
                "cluster_id": format!("{:x}", last.cluster_id),
                "stored_revision": last.stored_revision,
                "segments_stored": last.segments_stored,
                "gaps": last.gaps,
            }),
        )?,
        OutputFormat::Table => output::table(&mut out, &rows)?,
        OutputFormat::Simple => writeln!(
            out,
            "Capture of cluster {:x} stopped: stored up to revision {} ({} segments, {} gaps)",
            last.cluster_id, last.stored_revision, last.segments_stored, last.gaps
        )?,
    }
    Ok(())
}
