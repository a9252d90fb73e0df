//! What each kind of job does: the same use cases the commands run, with the agent's metrics.

use std::time::{Instant, SystemTime};

use anyhow::bail;
use lifeboat_core::Cancel;
use lifeboat_core::NoProgress;
use lifeboat_core::backup::{BackupOptions, BackupOutcome, Labels, backup, backup_if_changed};
use lifeboat_core::certs::{Expiry, read_tree, scan};
use lifeboat_core::drill::{DrillOptions, Outcome};
use lifeboat_core::files::{FilesOptions, KUBEADM_SET, backup_files};
use lifeboat_core::forget::{ForgetOptions, forget};
use lifeboat_core::pitr_compact::{CompactOptions, compact};
use lifeboat_core::stream::backup_stream;
use lifeboat_etcd_proc::EtcdBinary;
use lifeboat_repo::Repository;
use tracing::warn;

use super::config::{Action, Job};
use super::metrics::{self, seconds_since_epoch};
use super::status::{CopyStatus, RetentionStatus};
use super::{ABORT_GRACE, Agent};
use crate::etcd_flags::check_files_exist;

fn size_text(bytes: u64) -> String {
    crate::output::si_bytes(bytes)
}

impl Agent {
    /// Runs `job` once; the summary goes to the log and the page.
    pub(super) async fn execute(&self, job: &Job, cancel: &Cancel) -> anyhow::Result<String> {
        let labels = Labels {
            host: self.host.clone(),
            tags: job.tags.clone(),
            cluster: self.cluster_id(),
        };
        match &job.action {
            Action::Backup { store_unchanged } => {
                self.backup("etcd", cancel, async {
                    let connect = self.etcd_flags()?.resolve()?;
                    check_files_exist(&connect)?;
                    let repo = self.open_repository().await?;
                    let options = BackupOptions { connect, labels };
                    Ok(match store_unchanged {
                        true => BackupOutcome::Stored(backup(&repo, &options, &NoProgress, cancel).await?),
                        false => backup_if_changed(&repo, &options, &NoProgress, cancel).await?,
                    })
                })
                .await
            }
            Action::Files {
                root,
                include,
                exclude,
            } => {
                self.backup("files", cancel, async {
                    let repo = self.open_repository().await?;
                    let options = FilesOptions {
                        root: root.clone(),
                        include: KUBEADM_SET
                            .iter()
                            .map(|p| p.to_string())
                            .chain(include.iter().cloned())
                            .collect(),
                        exclude: exclude.clone(),
                    };
                    Ok(BackupOutcome::Stored(
                        backup_files(&repo, &options, &labels, &NoProgress, cancel)
                            .await?
                            .0,
                    ))
                })
                .await
            }
            Action::Stream { artefact, command } => {
                self.backup("stream", cancel, async {
                    let repo = self.open_repository().await?;
                    Ok(BackupOutcome::Stored(
                        backup_stream(&repo, artefact, command, &labels, &NoProgress, cancel).await?,
                    ))
                })
                .await
            }
            Action::Copy {
                to,
                credentials,
                keep,
            } => {
                let _shared = waited(self.repository_lock.read(), cancel).await?;
                self.copy(to, credentials.as_ref(), keep.as_ref(), &job.name, cancel)
                    .await
            }
            Action::Forget {
                repository,
                credentials,
                keep,
            } => {
                // Nothing else of this agent reads the repository while backups are removed.
                let _exclusive = waited(self.repository_lock.write(), cancel).await?;
                let repo = match repository {
                    Some(location) => self.open_other(location, credentials.as_ref()).await?,
                    None => self.open_repository().await?,
                };
                self.forget(&repo, keep, &job.name, cancel).await
            }
            Action::Drill {
                etcd_binary,
                members,
                max_age,
                fail_on_stale,
                boot_timeout,
            } => {
                let binary = EtcdBinary::locate(etcd_binary.as_deref(), std::env::var_os("PATH").as_deref())?;
                let live = match self.config.etcd.given() {
                    true => Some(self.etcd_flags()?.resolve()?),
                    false => None,
                };
                let options = DrillOptions {
                    binary,
                    members: *members,
                    max_age: max_age.unwrap_or(self.config.objectives.rpo),
                    fail_on_stale: *fail_on_stale,
                    rto_objective: self.config.objectives.rto,
                    keep: false,
                    work_dir: self.temp_dir(),
                    live,
                    boot_timeout: *boot_timeout,
                };
                let _shared = waited(self.repository_lock.read(), cancel).await?;
                self.drill(&options, cancel).await
            }
            Action::Certs { root, warn_days } => self.certs(root, *warn_days).await,
            Action::Capture { .. } => self.capture(job, cancel).await,
            Action::Compact { per_merge, max_bytes } => {
                let _shared = waited(self.repository_lock.read(), cancel).await?;
                let repo = self.open_repository().await?;
                let identities = self.identity.require_for(&repo)?;
                let cluster = self.cluster_id().and_then(|id| u64::from_str_radix(&id, 16).ok());
                let options = CompactOptions {
                    per_merge: *per_merge,
                    max_bytes: *max_bytes,
                    dry_run: false,
                };
                let report = compact(&repo, cluster, &identities, &options, cancel).await?;
                Ok(crate::commands::pitr::compact_summary(&report))
            }
        }
    }

    /// Runs a backup of `kind` and keeps its metrics.
    async fn backup(
        &self,
        kind: &str,
        cancel: &Cancel,
        work: impl Future<Output = anyhow::Result<BackupOutcome>>,
    ) -> anyhow::Result<String> {
        let label = metrics::Kind { kind: kind.into() };
        self.metrics
            .backup_last_attempt
            .get_or_create(&label)
            .set(seconds_since_epoch(SystemTime::now()));
        let clock = Instant::now();
        // A forget job of this agent waits for it (the repository's lock would refuse one).
        let outcome = bounded(
            async {
                let _shared = waited(self.repository_lock.read(), cancel).await?;
                work.await
            },
            cancel,
        )
        .await;
        let result = if outcome.is_ok() { "success" } else { "failure" };
        let pair = metrics::KindResult {
            kind: kind.into(),
            result: result.into(),
        };
        self.metrics.backups.get_or_create(&pair).inc();
        self.metrics
            .backup_duration
            .get_or_create(&pair)
            .observe(clock.elapsed().as_secs_f64());
        let outcome = outcome?;
        // An unchanged cluster is as fresh as a new backup would have made it (the RPO clock).
        self.metrics
            .backup_last_success
            .get_or_create(&label)
            .set(seconds_since_epoch(SystemTime::now()));
        let manifest = match outcome {
            BackupOutcome::Stored(manifest) => manifest,
            BackupOutcome::Unchanged { same_as, revision } => {
                self.metrics.backups_unchanged.inc();
                self.metrics.backup_last_revision.set(revision);
                return Ok(format!(
                    "unchanged, same as {} (revision {revision}): nothing stored",
                    same_as.id
                ));
            }
        };
        let plain: u64 = manifest.artefacts.iter().map(|a| a.plain_size).sum();
        let stored: u64 = manifest.artefacts.iter().map(|a| a.stored_size).sum();
        for (stage, bytes) in [("plain", plain), ("stored", stored)] {
            self.metrics
                .backup_last_size
                .get_or_create(&metrics::KindStage {
                    kind: kind.into(),
                    stage: stage.into(),
                })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Some(etcd) = &manifest.etcd {
            self.metrics.backup_last_revision.set(etcd.revision);
            // Also where an agent with `leader: always` sees a restored cluster's new ID.
            self.learn_cluster_hex(&etcd.cluster_id);
        }
        Ok(format!(
            "backup {} stored ({} plain, {} stored{})",
            manifest.id,
            size_text(plain),
            size_text(stored),
            manifest
                .etcd
                .as_ref()
                .map(|e| format!(", revision {}", e.revision))
                .unwrap_or_default()
        ))
    }

    async fn copy(
        &self,
        to: &str,
        credentials: Option<&super::config::StorageCredentials>,
        keep: Option<&lifeboat_core::retention::Policy>,
        job: &str,
        cancel: &Cancel,
    ) -> anyhow::Result<String> {
        let started = async {
            let source = self.open_repository().await?;
            let target = self.open_other(to, credentials).await?;
            let identities = match source.config().encryption != target.config().encryption {
                true => self.identity.require_for(&source)?,
                false => self.identity.load()?,
            };
            let report = lifeboat_core::copy::copy(
                &source,
                &target,
                &identities,
                &self.temp_dir(),
                keep,
                &NoProgress,
                cancel,
            )
            .await?;
            anyhow::Ok((source, target, report))
        }
        .await;
        let (source, target, report) = match started {
            Ok(done) => done,
            Err(error) => {
                self.copy_failed(to, crate::exit::one_line(&error));
                return Err(error);
            }
        };
        for (result, count) in [("success", report.copied.len()), ("failure", report.failed.len())] {
            self.metrics
                .copies
                .get_or_create(&metrics::TargetResult {
                    target: to.to_string(),
                    result: result.into(),
                })
                .inc_by(count as u64);
        }
        // The target is behind by the age of its newest backup less that of the source's.
        let source_newest = source
            .list()
            .await?
            .backups
            .iter()
            .map(super::status::created)
            .max();
        let lag = match (report.lag_seconds, source_newest) {
            (Some(target_age), Some(newest)) => {
                let source_age = SystemTime::now()
                    .duration_since(newest)
                    .unwrap_or_default()
                    .as_secs_f64();
                Some((target_age as f64 - source_age).max(0.0))
            }
            (None, Some(newest)) => Some(
                SystemTime::now()
                    .duration_since(newest)
                    .unwrap_or_default()
                    .as_secs_f64(),
            ),
            (_, None) => Some(0.0),
        };
        let target_label = metrics::Target {
            target: to.to_string(),
        };
        if let Some(lag) = lag {
            self.metrics.copy_lag.get_or_create(&target_label).set(lag);
        }
        let mut summary = format!(
            "copied {} to {to}, {} already there, {} failed",
            report.copied.len(),
            report.skipped,
            report.failed.len()
        );
        if report.left_out > 0 {
            summary.push_str(&format!(
                ", {} left out (the target's retention would remove them)",
                report.left_out
            ));
        }
        if let Some(policy) = keep {
            summary.push_str("; ");
            summary.push_str(&self.forget(&target, policy, job, cancel).await?);
        }
        let ok = report.failed.is_empty();
        self.status().copies.insert(
            to.to_string(),
            CopyStatus {
                last_run: SystemTime::now(),
                ok,
                copied: report.copied.len(),
                failed: report.failed.len(),
                lag_seconds: lag,
                detail: summary.clone(),
            },
        );
        if !ok {
            let reasons: Vec<String> = report
                .failed
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect();
            bail!("{summary}: {}", reasons.join("; "));
        }
        self.metrics
            .copy_last_success
            .get_or_create(&target_label)
            .set(seconds_since_epoch(SystemTime::now()));
        Ok(summary)
    }

    /// A copy that could not run: one failure, and the target's last known lag kept.
    fn copy_failed(&self, to: &str, detail: String) {
        self.metrics
            .copies
            .get_or_create(&metrics::TargetResult {
                target: to.to_string(),
                result: "failure".into(),
            })
            .inc();
        let mut status = self.status();
        let lag_seconds = status.copies.get(to).and_then(|c| c.lag_seconds);
        status.copies.insert(
            to.to_string(),
            CopyStatus {
                last_run: SystemTime::now(),
                ok: false,
                copied: 0,
                failed: 0,
                lag_seconds,
                detail,
            },
        );
    }

    async fn forget(
        &self,
        repo: &Repository,
        policy: &lifeboat_core::retention::Policy,
        job: &str,
        cancel: &Cancel,
    ) -> anyhow::Result<String> {
        let options = ForgetOptions {
            policy: policy.clone(),
            tags: Vec::new(),
            dry_run: false,
        };
        let report = forget(repo, &options, cancel).await?;
        let deleted = report.decisions.iter().filter(|d| !d.keep).count();
        let kept = report.decisions.len() - deleted;
        let location = repo.storage().repo().to_string();
        self.metrics
            .forget_deleted
            .get_or_create(&metrics::RepositoryLabel {
                repository: location.clone(),
            })
            .inc_by(deleted as u64);
        self.status().retention.insert(
            location.clone(),
            RetentionStatus {
                job: job.to_string(),
                last_run: SystemTime::now(),
                kept,
                deleted,
                policy: describe_policy(policy),
            },
        );
        for (name, reason) in &report.damaged {
            warn!("{location}: {name} cannot be trusted and was left alone: {reason}");
        }
        Ok(format!(
            "{location}: kept {kept}, removed {deleted}{}",
            match report.segments_removed {
                0 => String::new(),
                n => format!(" and {n} captured segments no backup left can reach"),
            }
        ))
    }

    async fn drill(&self, options: &DrillOptions, cancel: &Cancel) -> anyhow::Result<String> {
        self.metrics
            .drill_last_attempt
            .set(seconds_since_epoch(SystemTime::now()));
        let outcome = bounded(async {
            let repo = self.open_repository().await?;
            let identities = self.identity.require_for(&repo)?;
            // The newest of this cluster's: another cluster's backup in a shared repository
            // proves nothing about this one.
            self.identify().await;
            let listing = repo.list().await?;
            self.adopt_from(&listing);
            let id = self
                .scoped(listing)
                .backups
                .into_iter()
                .rev()
                .find(|m| m.kind == "etcd")
                .map(|m| m.id)
                .ok_or_else(|| match self.cluster_id() {
                    Some(cluster) => anyhow::anyhow!("the repository holds no etcd backup of cluster {cluster} to drill"),
                    None => anyhow::anyhow!("this agent's etcd cluster is not known (no member answered, or the repository holds several clusters' backups: set cluster_id:), so no backup is known to be its own"),
                })?;
            let source = lifeboat_core::drill::DrillSource::Backup { repo: &repo, id, identities };
            crate::commands::drill::drill_and_record(&repo, source, options, &NoProgress, cancel).await
        }
        , cancel)
        .await;
        let passed = matches!(&outcome, Ok(report) if report.result != Outcome::Failed);
        self.metrics
            .drills
            .get_or_create(&metrics::ResultLabel {
                result: if passed { "success" } else { "failure" }.into(),
            })
            .inc();
        let report = outcome?;
        if let Some(rto) = report.rto.seconds.filter(|_| passed) {
            self.metrics.drill_last_rto.set(rto);
            self.metrics
                .drill_last_success
                .set(seconds_since_epoch(SystemTime::now()));
        }
        let summary = format!(
            "drill of {}: {}, RTO {} (objective {:.0} s)",
            report.backup,
            crate::commands::drill::outcome(report.result),
            report
                .rto
                .seconds
                .map_or("not proven".into(), |s| format!("{s:.1} s")),
            report.rto.objective_seconds
        );
        self.status().last_drill = Some(report.clone());
        match passed {
            true => Ok(summary),
            false => bail!("{summary}: {}", crate::commands::drill::failed_checks(&report)),
        }
    }

    async fn certs(&self, root: &std::path::Path, warn_days: i64) -> anyhow::Result<String> {
        let tree = root.to_path_buf();
        // Reading the files blocks: off the async workers.
        let (certificates, unreadable) = tokio::task::spawn_blocking(move || {
            let now = time::OffsetDateTime::from(SystemTime::now());
            scan(&read_tree(&tree), now, warn_days)
        })
        .await?;
        if certificates.is_empty() && unreadable.is_empty() {
            bail!(
                "no certificates under {} (looked in etc/kubernetes, var/lib/rancher/k3s|rke2/server and etc/rancher: *.crt, *.pem, kubeconfigs); check the job's root",
                root.display()
            );
        }
        for cert in &certificates {
            let expiry =
                time::OffsetDateTime::parse(&cert.not_after, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp() as f64)
                    .unwrap_or_default();
            self.metrics
                .certificate_expiry
                .get_or_create(&metrics::Certificate {
                    path: cert.source.clone(),
                    subject: cert.subject.clone(),
                })
                .set(expiry);
        }
        let attention = certificates.iter().filter(|c| c.status != Expiry::Ok).count();
        for item in &unreadable {
            warn!("certificate {} unreadable: {}", item.source, item.reason);
        }
        if attention > 0 {
            warn!(
                "{attention} certificates expire within {warn_days} days or have expired; renew them (kubeadm certs renew)"
            );
        }
        let summary = format!(
            "{} certificates, {attention} expiring within {warn_days} days, {} unreadable",
            certificates.len(),
            unreadable.len()
        );
        let mut status = self.status();
        status.certificates = certificates;
        status.certificates_checked = Some(SystemTime::now());
        Ok(summary)
    }
}

pub fn describe_policy(policy: &lifeboat_core::retention::Policy) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("last", policy.last),
        ("hourly", policy.hourly),
        ("daily", policy.daily),
        ("weekly", policy.weekly),
        ("monthly", policy.monthly),
        ("yearly", policy.yearly),
    ] {
        if let Some(n) = value {
            parts.push(format!("{name} {n}"));
        }
    }
    if let Some(within) = policy.within {
        parts.push(format!("within {}", humantime::format_duration(within)));
    }
    parts.join(", ")
}

/// Waits for this agent's repository lock, unless the job is cancelled first (its timeout, the
/// agent's stop, the loss of leadership): a job stuck behind a hung one ends with it.
async fn waited<G>(lock: impl Future<Output = G>, cancel: &Cancel) -> anyhow::Result<G> {
    tokio::select! {
        guard = lock => Ok(guard),
        reason = cancel.cancelled() => Err(anyhow::anyhow!(
            "interrupted by {reason} while waiting for another job of this agent on the repository"
        )),
    }
}

/// `work`, cut off [`ABORT_GRACE`] after `cancel` fires: a job stuck on storage that does not
/// answer cannot finish aborting, and what counts its result must still run.
pub(super) async fn bounded<T>(
    work: impl Future<Output = anyhow::Result<T>>,
    cancel: &Cancel,
) -> anyhow::Result<T> {
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => result,
        reason = cancel.cancelled() => match tokio::time::timeout(ABORT_GRACE, &mut work).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "interrupted by {reason}; it did not finish aborting within {} s and was dropped",
                ABORT_GRACE.as_secs()
            )),
        },
    }
}
