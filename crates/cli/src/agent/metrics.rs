//! The agent's Prometheus metrics (docs/agent.md lists them): one `lifeboat_` prefix, base units,
//! `_total` counters, every label combination present from the start so that alerts never meet
//! an absent series, and no backup IDs as labels.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::config::{Action, Config, JobKind};

/// The kinds of backup, as manifests name them.
pub const BACKUP_KINDS: [&str; 3] = ["etcd", "files", "stream"];
pub const RESULTS: [&str; 2] = ["success", "failure"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub kind: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindStage {
    pub kind: String,
    pub stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetResult {
    pub target: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Target {
    pub target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryLabel {
    pub repository: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Certificate {
    pub path: String,
    pub subject: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobResult {
    pub job_name: String,
    pub kind: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobReason {
    pub job_name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Job {
    pub job_name: String,
}

pub type GaugeF64 = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 0.5 s to about 2.3 h.
    Histogram::new(exponential_buckets(0.5, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    pub backups: Family<KindResult, Counter>,
    pub backup_last_success: Family<Kind, GaugeF64>,
    pub backup_last_attempt: Family<Kind, GaugeF64>,
    pub backup_last_revision: Gauge,
    pub backups_unchanged: Counter,
    pub backup_last_size: Family<KindStage, Gauge>,
    pub backup_duration: HistogramFamily<KindResult>,
    pub repository_newest_backup: Family<Kind, GaugeF64>,
    pub repository_backups: Gauge,
    pub copies: Family<TargetResult, Counter>,
    pub copy_lag: Family<Target, GaugeF64>,
    pub copy_last_success: Family<Target, GaugeF64>,
    pub forget_deleted: Family<RepositoryLabel, Counter>,
    pub drills: Family<ResultLabel, Counter>,
    pub drill_last_rto: GaugeF64,
    pub drill_last_success: GaugeF64,
    pub drill_last_attempt: GaugeF64,
    pub rto_objective: GaugeF64,
    pub rpo_objective: GaugeF64,
    pub certificate_expiry: Family<Certificate, GaugeF64>,
    pub leader: Gauge,
    pub leader_changes: Counter,
    pub job_runs: Family<JobResult, Counter>,
    pub job_skipped: Family<JobReason, Counter>,
    pub job_duration: HistogramFamily<Job>,
    pub job_last_success: Family<Job, GaugeF64>,
    pub job_interval: Family<Job, GaugeF64>,
    pub backup_interval: Family<Kind, GaugeF64>,
    /// Only with a capture job: without one no agent captures, and nothing should look stopped.
    pub capture: Option<CaptureMetrics>,
}

/// The point-in-time capture's series.
#[derive(Debug, Default)]
pub struct CaptureMetrics {
    pub running: Gauge,
    pub last_revision: Gauge,
    pub lag: GaugeF64,
    pub gaps: Counter,
}

pub fn seconds_since_epoch(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    pub fn new(config: &Config, repository: &str) -> Self {
        let metrics = Metrics {
            backups: Family::default(),
            backup_last_success: Family::default(),
            backup_last_attempt: Family::default(),
            backup_last_revision: Gauge::default(),
            backups_unchanged: Counter::default(),
            backup_last_size: Family::default(),
            backup_duration: Family::new_with_constructor(duration_histogram),
            repository_newest_backup: Family::default(),
            repository_backups: Gauge::default(),
            copies: Family::default(),
            copy_lag: Family::default(),
            copy_last_success: Family::default(),
            forget_deleted: Family::default(),
            drills: Family::default(),
            drill_last_rto: GaugeF64::default(),
            drill_last_success: GaugeF64::default(),
            drill_last_attempt: GaugeF64::default(),
            rto_objective: GaugeF64::default(),
            rpo_objective: GaugeF64::default(),
            certificate_expiry: Family::default(),
            leader: Gauge::default(),
            leader_changes: Counter::default(),
            job_runs: Family::default(),
            job_skipped: Family::default(),
            job_duration: Family::new_with_constructor(duration_histogram),
            job_last_success: Family::default(),
            job_interval: Family::default(),
            backup_interval: Family::default(),
            capture: config
                .jobs
                .iter()
                .any(|job| job.kind == JobKind::Capture)
                .then(CaptureMetrics::default),
        };
        metrics.initialise(config, repository);
        metrics
    }

    /// Registers every metric (the registry shares their values) into `r`.
    fn register(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "backups",
            "Backups attempted, by kind (etcd, files, stream) and result",
            m.backups.clone(),
        );
        r.register(
            "backups_unchanged",
            "etcd backups not stored because the cluster had not changed since its newest backup (counted as successes too)",
            m.backups_unchanged.clone(),
        );
        r.register(
            "backup_last_success_timestamp_seconds",
            "When this agent last stored a backup of the kind, or found the cluster unchanged since its newest (0: never)",
            m.backup_last_success.clone(),
        );
        r.register(
            "backup_last_attempt_timestamp_seconds",
            "When this agent last tried a backup of the kind (0: never)",
            m.backup_last_attempt.clone(),
        );
        r.register(
            "backup_last_revision",
            "etcd revision of the last etcd backup this agent stored",
            m.backup_last_revision.clone(),
        );
        r.register(
            "backup_last_size_bytes",
            "Size of the last backup of the kind, plain and as stored",
            m.backup_last_size.clone(),
        );
        r.register(
            "backup_duration_seconds",
            "Duration of backups, by kind and result",
            m.backup_duration.clone(),
        );
        r.register(
            "repository_newest_backup_timestamp_seconds",
            "Until when the repository's newest backup of the kind, whoever made it, holds the cluster's data: its creation, or when a later backup found the cluster unchanged since it (0: none)",
            m.repository_newest_backup.clone(),
        );
        r.register(
            "repository_backups",
            "Backups in the repository at the last look",
            m.repository_backups.clone(),
        );
        r.register(
            "copies",
            "Backups copied to a target repository, by result",
            m.copies.clone(),
        );
        r.register(
            "copy_lag_seconds",
            "How far the target's newest backup is behind the source's, at the last copy",
            m.copy_lag.clone(),
        );
        r.register(
            "copy_last_success_timestamp_seconds",
            "When a copy to the target last succeeded (0: never)",
            m.copy_last_success.clone(),
        );
        r.register(
            "forget_deleted",
            "Backups removed by retention, per repository",
            m.forget_deleted.clone(),
        );
        r.register("drills", "Restore drills run, by result", m.drills.clone());
        r.register(
            "drill_last_rto_seconds",
            "RTO proven by the last passed drill",
            m.drill_last_rto.clone(),
        );
        r.register(
            "drill_last_success_timestamp_seconds",
            "When a drill last passed (0: never)",
            m.drill_last_success.clone(),
        );
        r.register(
            "drill_last_attempt_timestamp_seconds",
            "When a drill last ran (0: never)",
            m.drill_last_attempt.clone(),
        );
        r.register(
            "rto_objective_seconds",
            "The recovery time objective",
            m.rto_objective.clone(),
        );
        r.register(
            "rpo_objective_seconds",
            "The recovery point objective",
            m.rpo_objective.clone(),
        );
        r.register(
            "certificate_expiry_timestamp_seconds",
            "When each control-plane certificate expires",
            m.certificate_expiry.clone(),
        );
        r.register(
            "leader",
            "Whether this agent runs the cluster-wide jobs: its etcd member leads, or leader: always (1) or not (0)",
            m.leader.clone(),
        );
        r.register(
            "leader_changes",
            "Times this agent gained or lost the cluster-wide jobs",
            m.leader_changes.clone(),
        );
        r.register(
            "job_runs",
            "Job attempts, by job, kind and result",
            m.job_runs.clone(),
        );
        r.register(
            "job_skipped",
            "Ticks a job let pass: still running (overlap) or not the leader (not_leader)",
            m.job_skipped.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Duration of job attempts",
            m.job_duration.clone(),
        );
        r.register(
            "job_last_success_timestamp_seconds",
            "When the job last succeeded (0: never)",
            m.job_last_success.clone(),
        );
        r.register(
            "job_interval_seconds",
            "The job's nominal interval, for staleness alerts",
            m.job_interval.clone(),
        );
        if let Some(capture) = &m.capture {
            r.register(
                "capture_running",
                "Whether this agent captures now (1): only the leading agent does",
                capture.running.clone(),
            );
            r.register(
                "capture_last_revision",
                "The last etcd revision this agent's capture stored in a segment",
                capture.last_revision.clone(),
            );
            r.register(
                "capture_lag_seconds",
                "How long ago the newest moment is before which every acknowledged write is stored (0 while this agent does not capture)",
                capture.lag.clone(),
            );
            r.register(
                "capture_gaps",
                "Breaks in the capture (its start was compacted): a full backup was taken and the gap recorded",
                capture.gaps.clone(),
            );
        }
        r.register(
            "build",
            "The running lifeboat",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
    }

    /// Every label combination the configuration can produce, at zero.
    fn initialise(&self, config: &Config, repository: &str) {
        for kind in BACKUP_KINDS {
            let label = Kind { kind: kind.into() };
            let _ = self.backup_last_success.get_or_create(&label);
            let _ = self.backup_last_attempt.get_or_create(&label);
            let _ = self.repository_newest_backup.get_or_create(&label);
            let shortest = config
                .jobs
                .iter()
                .filter(|job| job.kind.backup_kind() == Some(kind))
                .map(|job| job.schedule.interval(SystemTime::now()).as_secs_f64())
                .reduce(f64::min)
                .unwrap_or(0.0);
            self.backup_interval.get_or_create(&label).set(shortest);
            for result in RESULTS {
                let pair = KindResult {
                    kind: kind.into(),
                    result: result.into(),
                };
                let _ = self.backups.get_or_create(&pair);
                let _ = self.backup_duration.get_or_create(&pair);
            }
            for stage in ["plain", "stored"] {
                let _ = self.backup_last_size.get_or_create(&KindStage {
                    kind: kind.into(),
                    stage: stage.into(),
                });
            }
        }
        for result in RESULTS {
            let _ = self.drills.get_or_create(&ResultLabel {
                result: result.into(),
            });
        }
        self.rto_objective.set(config.objectives.rto.as_secs_f64());
        self.rpo_objective.set(config.objectives.rpo.as_secs_f64());
        let now = SystemTime::now();
        for job in &config.jobs {
            let name = Job {
                job_name: job.name.clone(),
            };
            let _ = self.job_last_success.get_or_create(&name);
            let _ = self.job_duration.get_or_create(&name);
            self.job_interval
                .get_or_create(&name)
                .set(job.schedule.interval(now).as_secs_f64());
            for result in RESULTS {
                let _ = self.job_runs.get_or_create(&JobResult {
                    job_name: job.name.clone(),
                    kind: job.kind.as_str().into(),
                    result: result.into(),
                });
            }
            for reason in ["overlap", "not_leader"] {
                let _ = self.job_skipped.get_or_create(&JobReason {
                    job_name: job.name.clone(),
                    reason: reason.into(),
                });
            }
            match &job.action {
                Action::Copy { to, .. } => {
                    let target = Target { target: to.clone() };
                    let _ = self.copy_lag.get_or_create(&target);
                    let _ = self.copy_last_success.get_or_create(&target);
                    for result in RESULTS {
                        let _ = self.copies.get_or_create(&TargetResult {
                            target: to.clone(),
                            result: result.into(),
                        });
                    }
                }
                Action::Forget {
                    repository: other, ..
                } => {
                    let _ = self.forget_deleted.get_or_create(&RepositoryLabel {
                        repository: other.clone().unwrap_or_else(|| repository.to_string()),
                    });
                }
                _ => {}
            }
        }
    }

    /// The Prometheus (OpenMetrics) text exposition, every series labelled with `cluster`
    /// (learned after start, so the registry is built per scrape: it only holds handles).
    pub fn encode(&self, cluster: &str) -> String {
        let label = (Cow::Borrowed("cluster"), Cow::Owned(cluster.to_string()));
        let mut registry = Registry::with_prefix_and_labels("lifeboat", std::iter::once(label));
        self.register(&mut registry);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_carries_the_cluster_label() {
        let config = Config::parse(
            "test",
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, every: 1h}\n  - {name: c, kind: copy, every: 1h, to: /tmp/t}\n",
        )
        .unwrap();
        let metrics = Metrics::new(&config, "/tmp/r");
        let text = metrics.encode("prod-eu");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(samples.len() > 40, "{text}");
        for line in samples {
            assert!(line.contains("cluster=\"prod-eu\""), "{line}");
        }
    }
}
