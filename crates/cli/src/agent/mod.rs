//! `lifeboat agent`: one process per control-plane node that keeps its own schedule (backups,
//! files, streams, copies, retention, drills, certificate checks) and reports continuously
//! (Prometheus metrics, health, a status page). Thin over `lifeboat-core`, like the commands.

mod capture;
mod cluster;
pub mod config;
mod http;
mod http_access;
mod jobs;
mod leader;
mod metrics;
mod page;
mod schedule;
mod status;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use lifeboat_core::Cancel;
use lifeboat_repo::Repository;
use tracing::{info, warn};

use crate::etcd_flags::EtcdFlags;
use crate::repo_flags::{IdentityFlags, S3Flags};
use config::{Config, Job, LeaderMode, StorageCredentials};
use metrics::Metrics;
use status::{Run, Status};

/// How long a stopping agent waits for its running jobs to abort before it exits anyway (the
/// whole stop stays within 10 s: the runtime's own shutdown allows 5 s more).
const STOP_GRACE: Duration = Duration::from_secs(4);
/// How often the repository is listed for the page when no job asked for it.
const CATALOG_REFRESH: Duration = Duration::from_secs(60);
/// How long a cancelled job has to abort what it started before it is dropped (a job stuck on
/// storage that does not answer); within the agent's stop bound.
const ABORT_GRACE: Duration = Duration::from_secs(3);

/// Everything the jobs, the leader loop and the HTTP handlers share.
pub struct Agent {
    config: Config,
    host: String,
    source_s3: S3Flags,
    target_s3: S3Flags,
    identity: IdentityFlags,
    metrics: Metrics,
    status: Mutex<Status>,
    /// While this agent leads: the lease its cluster-wide jobs are fenced by.
    term: tokio::sync::watch::Sender<Option<lifeboat_etcd_conn::Term>>,
    /// Forget holds it alone; copies and drills share it: a backup must not be removed while
    /// this agent copies or drills it.
    repository_lock: tokio::sync::RwLock<()>,
    /// The etcd cluster ID (hex) this agent serves, once a member told it.
    cluster_id: tokio::sync::watch::Sender<Option<String>>,
    /// What the last look at the repository read (all clusters'): the next one reads only
    /// what is new.
    catalog: tokio::sync::Mutex<Catalog>,
    /// Asks the catalog refresher for a look now (after a job changed the repository).
    catalog_wanted: tokio::sync::Notify,
    /// Set once the repository has been looked at (listed, or found unreachable).
    catalog_ready: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Agent {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let (environment, targets) = S3Flags::from_environment()?;
        let source_s3 = with_credentials(&environment, config.credentials.as_ref())?;
        let target_s3 = targets.over(&environment);
        let host = config.host.clone().unwrap_or_else(crate::commands::host_name);
        let metrics = Metrics::new(&config, &config.repository);
        if config.leader == LeaderMode::Always {
            metrics.leader.set(1);
        }
        Ok(Self {
            identity: IdentityFlags::at(config.identity_file.clone()),
            host,
            source_s3,
            target_s3,
            metrics,
            repository_lock: tokio::sync::RwLock::new(()),
            catalog_ready: tokio::sync::watch::Sender::new(false),
            catalog: tokio::sync::Mutex::new(Catalog::default()),
            catalog_wanted: tokio::sync::Notify::new(),
            cluster_id: tokio::sync::watch::Sender::new(
                config.cluster_id.as_ref().map(|id| id.to_ascii_lowercase()),
            ),
            term: tokio::sync::watch::Sender::new(None),
            status: Mutex::new(Status {
                leadership: status::Leadership {
                    leading: config.leader == LeaderMode::Always,
                    known: config.leader == LeaderMode::Always,
                    ..Default::default()
                },
                ..Default::default()
            }),
            config,
        })
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        // A panic while holding the lock cannot leave the status inconsistent enough to matter.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn open_repository(&self) -> anyhow::Result<Repository> {
        Ok(Repository::open(self.source_s3.storage(&self.config.repository)?).await?)
    }

    /// Another repository (a copy target, or one a forget job names), with its own credentials.
    async fn open_other(
        &self,
        location: &str,
        credentials: Option<&StorageCredentials>,
    ) -> anyhow::Result<Repository> {
        let settings = with_credentials(&self.target_s3, credentials)?;
        Ok(Repository::open(settings.storage(location)?).await?)
    }

    /// The etcd flags the configuration gives, as `snapshot save` would take them.
    fn etcd_flags(&self) -> anyhow::Result<EtcdFlags> {
        let etcd = &self.config.etcd;
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if !etcd.endpoints.is_empty() {
            args.push("--endpoints".into());
            args.push(etcd.endpoints.join(",").into());
        }
        for (flag, path) in [
            ("--cacert", &etcd.cacert),
            ("--cert", &etcd.cert),
            ("--key", &etcd.key),
        ] {
            if let Some(path) = path {
                args.push(flag.into());
                args.push(path.into());
            }
        }
        if let Some(user) = &etcd.user {
            args.push("--user".into());
            args.push(user.into());
        }
        if let Some(password) = &etcd.password {
            args.push("--password".into());
            args.push(password.read()?.into());
        }
        if etcd.kubeadm {
            args.push("--kubeadm".into());
            if let Some(dir) = &etcd.kubeadm_pki_dir {
                args.push("--kubeadm-pki-dir".into());
                args.push(dir.into());
            }
        }
        if etcd.k3s {
            args.push("--k3s".into());
        }
        if etcd.rke2 {
            args.push("--rke2".into());
        }
        if etcd.insecure_skip_tls_verify {
            args.push("--insecure-skip-tls-verify".into());
        }
        EtcdFlags::from_args(args)
    }

    fn temp_dir(&self) -> PathBuf {
        self.config.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    fn leading(&self) -> bool {
        match self.config.leader {
            LeaderMode::Always => true,
            LeaderMode::Etcd => self.current_term().is_some(),
        }
    }

    /// Lists the repository and its drills for the page and the repository metrics, in this
    /// agent's view (its cluster's).
    /// Bounded by `listing_timeout`: a storage that hangs makes the repository unreachable (and
    /// /readyz say so), it never holds the agent up.
    async fn refresh_catalog(&self) {
        let limit = self.config.listing_timeout;
        // Bounded on its own: a slow etcd is not the repository's fault.
        self.identify().await;
        let look = async {
            let repo = self.open_repository().await?;
            let mut previous = self.catalog.lock().await;
            let listing = repo.list_cached(&mut previous.manifests).await?;
            let drills = previous.drills_after(&repo).await?;
            drop(previous);
            self.adopt_from(&listing);
            let listing = self.scoped(listing);
            let drills = self.our_drills(drills, &listing);
            let windows = self.capture_windows(&repo, &listing).await;
            anyhow::Ok((listing, drills, windows))
        };
        let outcome = match tokio::time::timeout(limit, look).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!(
                "it did not answer within {} (listing_timeout)",
                humantime::format_duration(limit)
            )),
        };
        match outcome {
            Ok((listing, drills, windows)) => {
                self.status().capture.windows = windows;
                self.metrics.repository_backups.set(listing.backups.len() as i64);
                for kind in metrics::BACKUP_KINDS {
                    if let Some(newest) = listing
                        .backups
                        .iter()
                        .filter(|m| m.kind == kind)
                        .map(status::current_until)
                        .max()
                    {
                        self.metrics
                            .repository_newest_backup
                            .get_or_create(&metrics::Kind { kind: kind.into() })
                            .set(metrics::seconds_since_epoch(newest));
                    }
                }
                self.carry_over_successes(&listing, drills.iter());
                self.status().catalog(&listing, drills);
            }
            Err(error) => {
                let line = crate::exit::one_line(&error);
                warn!("cannot list the repository {}: {line}", self.config.repository);
                self.status().repository_checked = Some(Err(line));
            }
        }
        self.catalog_ready.send_replace(true);
    }

    /// After a restart (a rollout) this process's "last success" gauges would start at zero and
    /// the alerts on them fire for nothing: the repository says when this host last succeeded.
    /// A drill's only while a drill job is configured, so disabled drills never look overdue.
    fn carry_over_successes<'a>(
        &self,
        listing: &lifeboat_repo::Listing,
        drills: impl Iterator<Item = &'a lifeboat_core::drill::DrillReport>,
    ) {
        let raise = |gauge: &metrics::GaugeF64, at: SystemTime| {
            let seconds = metrics::seconds_since_epoch(at);
            if seconds > gauge.get() {
                gauge.set(seconds);
            }
        };
        for kind in metrics::BACKUP_KINDS {
            let newest = listing
                .backups
                .iter()
                .filter(|m| m.kind == kind && m.host == self.host && self.ours(m))
                .map(status::current_until)
                .max();
            if let Some(newest) = newest {
                raise(
                    &self
                        .metrics
                        .backup_last_success
                        .get_or_create(&metrics::Kind { kind: kind.into() }),
                    newest,
                );
            }
        }
        if self
            .config
            .jobs
            .iter()
            .any(|job| job.kind == config::JobKind::Drill)
        {
            let passed = drills
                .filter(|d| d.result != lifeboat_core::drill::Outcome::Failed)
                .filter_map(|d| {
                    time::OffsetDateTime::parse(&d.timestamp, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .max();
            if let Some(passed) = passed {
                raise(&self.metrics.drill_last_success, passed.into());
            }
        }
    }

    /// When the job's output was last made, as the repository shows it (for the first firing).
    fn last_output(&self, job: &Job) -> Option<SystemTime> {
        let status = self.status();
        let made = |kind: &str, host: Option<&str>, artefact: Option<&str>| {
            status
                .newest
                .iter()
                .filter(|n| n.kind == kind && host.is_none_or(|h| n.host == h))
                .filter(|n| artefact.is_none_or(|a| n.artefacts.iter().any(|x| x == a)))
                .map(|n| n.current_until)
                .max()
        };
        match &job.action {
            config::Action::Backup { .. } => made("etcd", None, None),
            config::Action::Files { .. } => made("files", Some(&self.host), None),
            // Streams run on whichever agent leads: any of this cluster's counts.
            config::Action::Stream { artefact, .. } => made("stream", None, Some(artefact)),
            config::Action::Drill { .. } => status.last_drill.as_ref().and_then(|d| {
                time::OffsetDateTime::parse(&d.timestamp, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(SystemTime::from)
            }),
            _ => None,
        }
    }

    /// One job's loop: wait for the schedule, run (with retries), count the ticks it let pass.
    async fn job_loop(self: Arc<Self>, job: Job, stop: Cancel) {
        // The first firing depends on what the repository already holds.
        let mut listed = self.catalog_ready.subscribe();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::timeout(Duration::from_secs(60), listed.wait_for(|ready| *ready)) => {}
        }
        // Until the cluster is known none of its backups is in the view: a job whose first run
        // goes by them waits (bounded) for the members to answer and a look that knows it.
        let goes_by_output = job.kind.backup_kind().is_some() || job.kind == config::JobKind::Drill;
        if goes_by_output && self.config.etcd.given() && self.cluster_id().is_none() {
            let mut known = self.cluster_id.subscribe();
            let learned = async {
                let _ = known.wait_for(Option::is_some).await;
                listed.mark_unchanged();
                self.catalog_wanted.notify_one();
                let _ = listed.changed().await;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::timeout(Duration::from_secs(60), learned) => {}
            }
        }
        // A first drill waits one interval: right after a deployment there is nothing to drill.
        let last = self
            .last_output(&job)
            .or_else(|| (job.kind == config::JobKind::Drill).then(SystemTime::now));
        let mut first = Some(job.schedule.first(SystemTime::now(), last));
        loop {
            let now = SystemTime::now();
            let next = first.take().unwrap_or_else(|| job.schedule.next(now));
            self.status().next_run.insert(job.name.clone(), next);
            let wait = next.duration_since(now).unwrap_or_default();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if !job.kind.node_local() && !self.leading() {
                tracing::debug!("job {}: not the leader, skipped", job.name);
                self.metrics
                    .job_skipped
                    .get_or_create(&metrics::JobReason {
                        job_name: job.name.clone(),
                        reason: "not_leader".into(),
                    })
                    .inc();
                continue;
            }
            self.run_with_retries(&job, &stop).await;
            let missed = job.schedule.ticks_between(next, SystemTime::now());
            if missed > 0 {
                warn!(
                    "job {} ran past {missed} of its ticks; they were skipped",
                    job.name
                );
                self.metrics
                    .job_skipped
                    .get_or_create(&metrics::JobReason {
                        job_name: job.name.clone(),
                        reason: "overlap".into(),
                    })
                    .inc_by(missed);
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }

    async fn run_with_retries(&self, job: &Job, stop: &Cancel) {
        let mut backoff = job.retry_backoff;
        for attempt in 0..=job.retries {
            let started = SystemTime::now();
            self.status().running.insert(job.name.clone(), started);
            let clock = Instant::now();
            let result = self.attempt(job, stop).await;
            let seconds = clock.elapsed().as_secs_f64();
            self.status().running.remove(&job.name);
            let ok = result.is_ok();
            let detail = match &result {
                Ok(summary) => summary.clone(),
                Err(error) => crate::exit::one_line(error),
            };
            let label = metrics::Job {
                job_name: job.name.clone(),
            };
            self.metrics.job_duration.get_or_create(&label).observe(seconds);
            self.metrics
                .job_runs
                .get_or_create(&metrics::JobResult {
                    job_name: job.name.clone(),
                    kind: job.kind.as_str().into(),
                    result: if ok { "success" } else { "failure" }.into(),
                })
                .inc();
            match ok {
                true => {
                    info!(
                        "job {} ({}): {detail} in {seconds:.1} s",
                        job.name,
                        job.kind.as_str()
                    );
                    self.metrics
                        .job_last_success
                        .get_or_create(&label)
                        .set(metrics::seconds_since_epoch(SystemTime::now()));
                }
                false => warn!(
                    "job {} ({}) failed (attempt {}): {detail}",
                    job.name,
                    job.kind.as_str(),
                    attempt + 1
                ),
            }
            self.status().record(Run {
                job: job.name.clone(),
                kind: job.kind.as_str(),
                attempt: attempt + 1,
                started,
                seconds,
                ok,
                detail,
            });
            if !matches!(job.kind, config::JobKind::Certs | config::JobKind::Capture) {
                self.catalog_wanted.notify_one();
            }
            if ok || stop.is_cancelled() || attempt == job.retries {
                return;
            }
            self.status()
                .next_run
                .insert(job.name.clone(), SystemTime::now() + backoff);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = backoff.saturating_mul(2);
        }
    }

    /// One attempt, cancelled by the agent's stop or by the job's timeout; a cluster-wide job
    /// also by the end of this agent's leadership, and fenced by its term so that it commits
    /// nothing once the term is not surely held, even before anyone noticed.
    async fn attempt(&self, job: &Job, stop: &Cancel) -> anyhow::Result<String> {
        let term =
            match (job.kind.node_local(), self.config.leader) {
                (false, LeaderMode::Etcd) => Some(self.current_term().ok_or_else(|| {
                    anyhow::anyhow!("this agent no longer leads; the leader's agent runs it")
                })?),
                _ => None,
            };
        let cancel = match &term {
            Some(term) => Cancel::new().fenced_by(term.clone()),
            None => Cancel::new(),
        };
        let watcher = {
            let cancel = cancel.clone();
            let stop = stop.clone();
            let timeout = job.timeout;
            tokio::spawn(async move {
                let lost = async {
                    match term {
                        Some(term) => {
                            while term.held() {
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                        }
                        None => std::future::pending().await,
                    }
                };
                let timed_out = async {
                    match timeout {
                        Some(timeout) => tokio::time::sleep(timeout).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    reason = stop.cancelled() => cancel.cancel(reason),
                    _ = timed_out => cancel.cancel("the job's timeout"),
                    _ = lost => cancel.cancel(lifeboat_core::LEADERSHIP_LOST),
                }
            })
        };
        let result = jobs::bounded(self.execute(job, &cancel), &cancel).await;
        watcher.abort();
        result
    }
}

/// What the agent read of the repository at its last look.
#[derive(Debug, Default)]
struct Catalog {
    manifests: lifeboat_repo::ManifestCache,
    /// Drill records that did not parse: read (and reported) once.
    unparsable: std::collections::BTreeSet<lifeboat_repo::BackupId>,
    drills: std::collections::BTreeMap<lifeboat_repo::BackupId, lifeboat_core::drill::DrillReport>,
}

impl Catalog {
    /// The repository's drill records, reading only those not read before (a record is written
    /// once); records that went away are forgotten.
    async fn drills_after(
        &mut self,
        repo: &Repository,
    ) -> anyhow::Result<Vec<lifeboat_core::drill::DrillReport>> {
        let ids = repo.drill_ids().await?;
        self.drills.retain(|id, _| ids.binary_search(id).is_ok());
        self.unparsable.retain(|id| ids.binary_search(id).is_ok());
        for id in ids {
            if self.drills.contains_key(&id) || self.unparsable.contains(&id) {
                continue;
            }
            let Some(bytes) = repo.drill(&id).await? else {
                continue;
            };
            match crate::commands::drills::parse_record(&id, &bytes) {
                Ok(report) => {
                    self.drills.insert(id, report);
                }
                Err(problem) => {
                    warn!("{problem}; the page leaves it out");
                    self.unparsable.insert(id);
                }
            }
        }
        Ok(self.drills.values().cloned().collect())
    }
}

fn with_credentials(base: &S3Flags, credentials: Option<&StorageCredentials>) -> anyhow::Result<S3Flags> {
    let Some(credentials) = credentials else {
        return Ok(base.clone());
    };
    let read = |source: &Option<config::SecretSource>| source.as_ref().map(|s| s.read()).transpose();
    Ok(base.with_keys(
        read(&credentials.access_key_id)?,
        read(&credentials.secret_access_key)?,
    ))
}

/// Runs the agent until `stop` is cancelled (SIGTERM, SIGINT): starts the HTTP server and the
/// leader and job loops, then lets the running jobs abort cleanly.
pub async fn run(config: Config, stop: Cancel) -> anyhow::Result<()> {
    let listen = config.listen;
    let access = http_access::Access::load(&config.http)?;
    let scheme = if access.1.is_some() { "https" } else { "http" };
    let agent = Arc::new(Agent::new(config)?);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}; change `listen:` or stop what uses it")
    })?;
    info!(
        "agent on {} ({} jobs, leader: {}); status page {scheme}://{listen}/",
        agent.host,
        agent.config.jobs.len(),
        agent.config.leader
    );
    let server = tokio::spawn(http::serve(agent.clone(), listener, access, stop.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(leader::watch(agent.clone(), stop.clone()));
    for job in agent.config.jobs.clone() {
        match job.kind {
            config::JobKind::Capture => tasks.spawn(agent.clone().capture_loop(job, stop.clone())),
            _ => tasks.spawn(agent.clone().job_loop(job, stop.clone())),
        };
    }
    let refresher = agent.clone();
    let refresh_stop = stop.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = refresh_stop.cancelled() => return,
                _ = refresher.refresh_catalog() => {}
            }
            tokio::select! {
                _ = refresh_stop.cancelled() => return,
                _ = refresher.catalog_wanted.notified() => {}
                _ = tokio::time::sleep(CATALOG_REFRESH) => {}
            }
        }
    });
    let reason = stop.cancelled().await;
    info!("{reason}: stopping; running jobs abort and remove what they started");
    let drained =
        tokio::time::timeout(STOP_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            "jobs still aborting after {} s; exiting anyway",
            STOP_GRACE.as_secs()
        );
        tasks.abort_all();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    Ok(())
}
