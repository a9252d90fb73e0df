//! The `capture` job: point-in-time capture for as long as this agent leads (docs/pitr.md).
//!
//! Only the leading agent captures. A new leader's capture continues after the last segment
//! in the repository, so a change of leader loses nothing etcd still holds. Segments that the
//! old leader stores after that point overlap the new leader's. A restore replays each
//! revision once, whichever segment holds it, so the overlap doubles nothing.

use std::sync::Arc;
use std::time::SystemTime;

use lifeboat_core::Cancel;
use lifeboat_core::backup::Labels;
use lifeboat_core::capture::{CaptureOptions, CaptureStatus, capture};
use lifeboat_etcd_conn::Term;
use tracing::info;

use super::Agent;
use lifeboat_core::pitr::RestorableRange;
use lifeboat_repo::{Listing, Repository};

use super::config::{Action, Job, JobKind, LeaderMode};
use crate::etcd_flags::check_files_exist;

impl Agent {
    /// Runs the capture job whenever this agent leads, restarting it after it ends.
    pub(super) async fn capture_loop(self: Arc<Self>, job: Job, stop: Cancel) {
        let mut terms = self.term.subscribe();
        loop {
            if self.config.leader == LeaderMode::Etcd {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = terms.wait_for(|term| term.as_ref().is_some_and(Term::held)) => {}
                }
            }
            self.run_with_retries(&job, &stop).await;
            // Whether it ended with the leadership or failed past its retries: a moment before
            // the next start, so that a cluster that refuses it is not asked in a tight loop.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(job.retry_backoff) => {}
            }
        }
    }

    /// One capture, until cancelled (the agent's stop or the end of its leadership: then what
    /// it holds is sealed and stored, and the run counts as a success).
    pub(super) async fn capture(&self, job: &Job, cancel: &Cancel) -> anyhow::Result<String> {
        let Action::Capture {
            segment,
            segment_bytes,
            hash_every,
            buffer_bytes,
        } = &job.action
        else {
            anyhow::bail!("job {} is not a capture", job.name);
        };
        let connect = self.etcd_flags()?.resolve()?;
        check_files_exist(&connect)?;
        let repo = self.open_repository().await?;
        let options = CaptureOptions {
            connect,
            labels: Labels {
                host: self.host.clone(),
                tags: job.tags.clone(),
                cluster: self.cluster_id(),
            },
            segment: *segment,
            segment_bytes: *segment_bytes,
            hash_every: *hash_every,
            buffer_bytes: *buffer_bytes,
        };
        let (sender, mut seen) = tokio::sync::watch::channel(CaptureStatus::default());
        self.capture_started();
        let mut counted_gaps = 0;
        let forwarding = async {
            while seen.changed().await.is_ok() {
                let now = seen.borrow_and_update().clone();
                self.capture_progress(&now, &mut counted_gaps);
            }
        };
        let outcome = tokio::select! {
            outcome = capture(&repo, &options, &sender, cancel) => outcome,
            () = forwarding => Ok(()),
        };
        let last = sender.borrow().clone();
        self.capture_progress(&last, &mut counted_gaps);
        self.capture_stopped();
        let summary = format!(
            "capture of cluster {:x} stored up to revision {} ({} segments, {} gaps)",
            last.cluster_id, last.stored_revision, last.segments_stored, last.gaps
        );
        match outcome {
            // It ends only when cancelled: the agent's stop or the end of its leadership.
            Ok(()) | Err(lifeboat_core::Error::Interrupted { .. }) => {
                let reason = match cancel.check() {
                    Err(lifeboat_core::Error::Interrupted { signal }) => signal,
                    _ => "its end",
                };
                info!("{summary}; stopped by {reason}");
                Ok(format!("{summary}; stopped by {reason}"))
            }
            Err(error) => Err(anyhow::Error::from(error).context(summary)),
        }
    }

    fn capture_started(&self) {
        if let Some(metrics) = &self.metrics.capture {
            metrics.running.set(1);
        }
        let mut status = self.status();
        status.capture.running = true;
        status.capture.since = Some(SystemTime::now());
    }

    fn capture_stopped(&self) {
        if let Some(metrics) = &self.metrics.capture {
            metrics.running.set(0);
            metrics.lag.set(0.0);
        }
        self.status().capture.running = false;
    }

    /// Takes in what the running capture reports; `counted_gaps` is how many of its gaps the
    /// counter already holds.
    fn capture_progress(&self, now: &CaptureStatus, counted_gaps: &mut u64) {
        if now.cluster_id != 0 {
            self.learn_cluster(now.cluster_id);
        }
        let new_gaps = now.gaps.saturating_sub(*counted_gaps);
        *counted_gaps = (*counted_gaps).max(now.gaps);
        if let Some(metrics) = &self.metrics.capture {
            metrics.last_revision.set(now.stored_revision);
            metrics.gaps.inc_by(new_gaps);
        }
        let previous = self.status().capture.live.replace(now.clone());
        // The restorable window changed shape (a new base, or the first segment after one):
        // the page's look at the repository should not wait for its next round.
        let first_segment = now.segments_stored > 0
            && previous.is_none_or(|p| p.segments_stored == 0 || p.cluster_id != now.cluster_id);
        if new_gaps > 0 || first_segment {
            self.catalog_wanted.notify_one();
        }
    }

    /// The cluster's restorable ranges, when a capture job is configured and the cluster is
    /// known; a failure is kept as the page's text, it does not fail the look.
    pub(super) async fn capture_windows(
        &self,
        repo: &Repository,
        listing: &Listing,
    ) -> Option<Result<Vec<RestorableRange>, String>> {
        let configured = self.config.jobs.iter().any(|job| job.kind == JobKind::Capture);
        let cluster = self
            .cluster_id()
            .and_then(|id| u64::from_str_radix(&id, 16).ok())
            .filter(|_| configured)?;
        Some(
            lifeboat_core::pitr::ranges_of(repo, cluster, &listing.backups)
                .await
                .map_err(|error| crate::exit::one_line(&anyhow::Error::from(error))),
        )
    }

    /// Sets the lag gauge for a scrape (it grows between the capture's reports).
    pub(super) fn refresh_capture_lag(&self) {
        if let Some(metrics) = &self.metrics.capture {
            let lag = self.status().capture.lag(SystemTime::now()).unwrap_or_default();
            metrics.lag.set(lag.as_secs_f64());
        }
    }
}
