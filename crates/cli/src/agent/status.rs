//! What the agent knows between runs: the last job runs, the repository's newest backups, the
//! last drill, copies, retention, certificates and leadership. The status page renders it.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use lifeboat_core::capture::CaptureStatus;
use lifeboat_core::certs::CertInfo;
use lifeboat_core::drill::DrillReport;
use lifeboat_core::pitr::RestorableRange;
use lifeboat_repo::{Listing, Manifest};

/// Runs kept for the page.
pub const RUNS_KEPT: usize = 50;

#[derive(Debug, Clone)]
pub struct Run {
    pub job: String,
    pub kind: &'static str,
    pub attempt: u32,
    pub started: SystemTime,
    pub seconds: f64,
    pub ok: bool,
    pub detail: String,
}

/// The newest backup of one group (an etcd cluster, a host's files, a stream).
#[derive(Debug, Clone)]
pub struct Newest {
    pub group: String,
    pub kind: String,
    pub host: String,
    pub artefacts: Vec<String>,
    pub id: String,
    pub created: SystemTime,
    /// When a later backup last found the cluster unchanged since this one.
    pub unchanged_at: Option<SystemTime>,
    /// Until when it is known to hold the cluster's data (what freshness counts).
    pub current_until: SystemTime,
    pub revision: Option<i64>,
    pub plain_bytes: u64,
    pub stored_bytes: u64,
    pub count: usize,
}

#[derive(Debug, Clone)]
pub struct CopyStatus {
    pub last_run: SystemTime,
    pub ok: bool,
    pub copied: usize,
    pub failed: usize,
    pub lag_seconds: Option<f64>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct RetentionStatus {
    pub job: String,
    pub last_run: SystemTime,
    pub kept: usize,
    pub deleted: usize,
    pub policy: String,
}

#[derive(Debug, Clone, Default)]
pub struct Leadership {
    /// Whether this agent runs the cluster-wide jobs.
    pub leading: bool,
    /// The leading agent as it names itself (`host (pid N)`), when known.
    pub leader: Option<String>,
    pub since: Option<SystemTime>,
    /// Why the leader is unknown, when it is.
    pub error: Option<String>,
    /// Whether this agent has taken part in the election at least once.
    pub known: bool,
}

#[derive(Debug, Default)]
pub struct Status {
    pub runs: VecDeque<Run>,
    pub newest: Vec<Newest>,
    pub repository_backups: usize,
    pub repository_unreadable: usize,
    /// When the repository was last listed, or why it could not be.
    pub repository_checked: Option<Result<SystemTime, String>>,
    pub last_drill: Option<DrillReport>,
    pub copies: BTreeMap<String, CopyStatus>,
    pub retention: BTreeMap<String, RetentionStatus>,
    pub certificates: Vec<CertInfo>,
    pub certificates_checked: Option<SystemTime>,
    pub leadership: Leadership,
    /// Next firing per job, and whether it is running now.
    pub next_run: BTreeMap<String, SystemTime>,
    pub running: BTreeMap<String, SystemTime>,
    pub capture: CaptureView,
}

/// Point-in-time capture as this agent sees it.
#[derive(Debug, Default)]
pub struct CaptureView {
    /// Whether this agent captures now.
    pub running: bool,
    /// When its capture last started.
    pub since: Option<SystemTime>,
    /// What its capture last reported (while it runs or since it ended).
    pub live: Option<CaptureStatus>,
    /// The cluster's restorable ranges at the last look at the repository, or why unknown.
    pub windows: Option<Result<Vec<RestorableRange>, String>>,
}

impl CaptureView {
    /// The capture's lag at `now`: how long ago the newest moment is before which every
    /// acknowledged write is stored. `None` while this agent does not capture.
    pub fn lag(&self, now: SystemTime) -> Option<std::time::Duration> {
        if !self.running {
            return None;
        }
        let since = self
            .live
            .as_ref()
            .and_then(|live| live.stored_until)
            .or(self.since)?;
        Some(now.duration_since(since).unwrap_or_default())
    }
}

impl Status {
    pub fn record(&mut self, run: Run) {
        if self.runs.len() == RUNS_KEPT {
            self.runs.pop_front();
        }
        self.runs.push_back(run);
    }

    /// Takes in a fresh listing of the repository and its drills.
    pub fn catalog(&mut self, listing: &Listing, drills: Vec<DrillReport>) {
        let mut newest: BTreeMap<String, Newest> = BTreeMap::new();
        for manifest in &listing.backups {
            let group = lifeboat_core::forget::group(manifest);
            let entry = newest
                .entry(group.clone())
                .or_insert_with(|| summary(&group, manifest));
            entry.count += 1;
            let candidate = summary(&group, manifest);
            if candidate.created >= entry.created {
                *entry = Newest {
                    count: entry.count,
                    ..candidate
                };
            }
        }
        self.newest = newest.into_values().collect();
        self.repository_backups = listing.backups.len();
        self.repository_unreadable = listing.unreadable.len();
        self.repository_checked = Some(Ok(SystemTime::now()));
        if let Some(drill) = drills.into_iter().max_by(|a, b| a.timestamp.cmp(&b.timestamp)) {
            self.last_drill = Some(drill);
        }
    }
}

pub fn created(manifest: &Manifest) -> SystemTime {
    time::OffsetDateTime::parse(&manifest.created, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Until when a backup is known to hold its cluster's data: when it was made, or when a later
/// backup last found the cluster unchanged since it. What freshness (RPO) counts from.
pub fn current_until(manifest: &Manifest) -> SystemTime {
    let made = created(manifest);
    manifest.unchanged_at.map_or(made, |checked| checked.max(made))
}

fn summary(group: &str, manifest: &Manifest) -> Newest {
    Newest {
        group: group.to_string(),
        kind: manifest.kind.clone(),
        host: manifest.host.clone(),
        artefacts: manifest.artefacts.iter().map(|a| a.name.clone()).collect(),
        id: manifest.id.to_string(),
        created: created(manifest),
        unchanged_at: manifest.unchanged_at,
        current_until: current_until(manifest),
        revision: manifest.etcd.as_ref().map(|e| e.revision),
        plain_bytes: manifest.artefacts.iter().map(|a| a.plain_size).sum(),
        stored_bytes: manifest.artefacts.iter().map(|a| a.stored_size).sum(),
        count: 0,
    }
}
