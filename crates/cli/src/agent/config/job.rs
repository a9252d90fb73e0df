//! The jobs of the agent's configuration: what each kind takes, checked while parsing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use lifeboat_core::retention::Policy;
use lifeboat_core::{capture, pitr_compact};
use serde::{Deserialize, Deserializer};

use super::super::schedule::Schedule;
use super::{StorageCredentials, optional_duration};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Files,
    Stream,
    Copy,
    Forget,
    Drill,
    Certs,
    Capture,
    Compact,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Files => "files",
            JobKind::Stream => "stream",
            JobKind::Copy => "copy",
            JobKind::Forget => "forget",
            JobKind::Drill => "drill",
            JobKind::Certs => "certs",
            JobKind::Capture => "capture",
            JobKind::Compact => "compact",
        }
    }

    /// The kind of backup the job makes, as manifests name it.
    pub fn backup_kind(self) -> Option<&'static str> {
        match self {
            JobKind::Backup => Some("etcd"),
            JobKind::Files => Some("files"),
            JobKind::Stream => Some("stream"),
            _ => None,
        }
    }

    /// Node-local jobs run on every agent; the others only on the leader's.
    pub fn node_local(self) -> bool {
        matches!(self, JobKind::Files | JobKind::Certs)
    }
}

/// One scheduled job, checked.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    pub schedule: Schedule,
    /// `None`: the job runs until its agent stops or stops leading (a capture).
    pub timeout: Option<Duration>,
    /// Attempts after a failure, each after twice the previous wait.
    pub retries: u32,
    pub retry_backoff: Duration,
    pub tags: Vec<String>,
    pub action: Action,
}

/// What each kind needs.
#[derive(Debug, Clone)]
pub enum Action {
    Backup {
        /// Store a copy even when the cluster has not changed since its newest backup.
        store_unchanged: bool,
    },
    Files {
        root: PathBuf,
        include: Vec<String>,
        exclude: Vec<String>,
    },
    Stream {
        artefact: String,
        command: Vec<String>,
    },
    Copy {
        to: String,
        credentials: Option<StorageCredentials>,
        keep: Option<Policy>,
    },
    Forget {
        /// Another repository than the agent's (a copy target), when given.
        repository: Option<String>,
        credentials: Option<StorageCredentials>,
        keep: Policy,
    },
    Drill {
        etcd_binary: Option<PathBuf>,
        members: usize,
        max_age: Option<Duration>,
        fail_on_stale: bool,
        boot_timeout: Duration,
    },
    Certs {
        root: PathBuf,
        warn_days: i64,
    },
    Capture {
        segment: Duration,
        segment_bytes: usize,
        hash_every: Duration,
        buffer_bytes: usize,
    },
    Compact {
        per_merge: u64,
        max_bytes: u64,
    },
}

/// A job as written; [`Job`] is what survives the checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobText {
    name: String,
    kind: JobKind,
    #[serde(default, deserialize_with = "optional_duration")]
    every: Option<Duration>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default, deserialize_with = "optional_duration")]
    jitter: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default, deserialize_with = "optional_duration")]
    retry_backoff: Option<Duration>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    unchanged: Option<Unchanged>,
    #[serde(default)]
    root: Option<PathBuf>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    artifact: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    credentials: Option<StorageCredentials>,
    #[serde(default)]
    keep: Option<Keep>,
    #[serde(default)]
    etcd_binary: Option<PathBuf>,
    #[serde(default)]
    members: Option<usize>,
    #[serde(default, deserialize_with = "optional_duration")]
    max_age: Option<Duration>,
    #[serde(default)]
    fail_on_stale: bool,
    #[serde(default, deserialize_with = "optional_duration")]
    boot_timeout: Option<Duration>,
    #[serde(default)]
    warn_days: Option<i64>,
    #[serde(default, deserialize_with = "optional_duration")]
    segment: Option<Duration>,
    #[serde(default)]
    segment_bytes: Option<usize>,
    #[serde(default, deserialize_with = "optional_duration")]
    hash_every: Option<Duration>,
    #[serde(default)]
    buffer_bytes: Option<usize>,
    #[serde(default)]
    per_merge: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
}

/// What a backup job does when the cluster has not changed since its newest backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unchanged {
    /// Mark that backup current and store nothing (the default).
    Skip,
    /// Store another copy.
    Store,
}

/// A retention policy, as `forget --keep-*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keep {
    last: Option<u32>,
    hourly: Option<u32>,
    daily: Option<u32>,
    weekly: Option<u32>,
    monthly: Option<u32>,
    yearly: Option<u32>,
    #[serde(default, deserialize_with = "optional_duration")]
    within: Option<Duration>,
}

impl From<Keep> for Policy {
    fn from(keep: Keep) -> Self {
        Policy {
            last: keep.last,
            hourly: keep.hourly,
            daily: keep.daily,
            weekly: keep.weekly,
            monthly: keep.monthly,
            yearly: keep.yearly,
            within: keep.within,
        }
    }
}

/// Jobs are checked one by one as they are read, so an error carries the job's position.
pub(super) fn jobs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Job>, D::Error> {
    struct Checked(Job);
    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let text = JobText::deserialize(deserializer)?;
            let name = text.name.clone();
            check_job(text)
                .map(Checked)
                .map_err(|e| serde::de::Error::custom(format!("job {name}: {e}")))
        }
    }
    let jobs: Vec<Checked> = Vec::deserialize(deserializer)?;
    let mut names = BTreeSet::new();
    for Checked(job) in &jobs {
        if !names.insert(job.name.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "two jobs are named {:?}; job names must be unique (they label metrics)",
                job.name
            )));
        }
    }
    if jobs.is_empty() {
        return Err(serde::de::Error::custom("no jobs: add at least one under jobs:"));
    }
    Ok(jobs.into_iter().map(|Checked(job)| job).collect())
}

/// The fields each kind takes; any other kind's field is refused rather than ignored.
fn allowed_fields(kind: JobKind) -> &'static [&'static str] {
    match kind {
        JobKind::Backup => &["tags", "unchanged"],
        JobKind::Files => &["tags", "root", "include", "exclude"],
        JobKind::Stream => &["tags", "artifact", "command"],
        JobKind::Copy => &["to", "credentials", "keep"],
        JobKind::Forget => &["keep", "tags", "repository", "credentials"],
        JobKind::Drill => &[
            "etcd_binary",
            "members",
            "max_age",
            "fail_on_stale",
            "boot_timeout",
        ],
        JobKind::Certs => &["root", "warn_days"],
        JobKind::Capture => &["segment", "segment_bytes", "hash_every", "buffer_bytes"],
        JobKind::Compact => &["per_merge", "max_bytes"],
    }
}

fn check_job(text: JobText) -> Result<Job, String> {
    let valid_name = !text.name.is_empty()
        && text.name.len() <= 63
        && text
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !valid_name {
        return Err("a job name is 1 to 63 letters, digits, '-' or '_'".into());
    }
    let given = [
        ("tags", !text.tags.is_empty()),
        ("unchanged", text.unchanged.is_some()),
        ("root", text.root.is_some()),
        ("include", !text.include.is_empty()),
        ("exclude", !text.exclude.is_empty()),
        ("artifact", text.artifact.is_some()),
        ("command", !text.command.is_empty()),
        ("to", text.to.is_some()),
        ("repository", text.repository.is_some()),
        ("credentials", text.credentials.is_some()),
        ("keep", text.keep.is_some()),
        ("etcd_binary", text.etcd_binary.is_some()),
        ("members", text.members.is_some()),
        ("max_age", text.max_age.is_some()),
        ("fail_on_stale", text.fail_on_stale),
        ("boot_timeout", text.boot_timeout.is_some()),
        ("warn_days", text.warn_days.is_some()),
        ("segment", text.segment.is_some()),
        ("segment_bytes", text.segment_bytes.is_some()),
        ("hash_every", text.hash_every.is_some()),
        ("buffer_bytes", text.buffer_bytes.is_some()),
        ("per_merge", text.per_merge.is_some()),
        ("max_bytes", text.max_bytes.is_some()),
    ];
    let allowed = allowed_fields(text.kind);
    if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
        return Err(format!(
            "field `{field}` does not apply to kind {} (it takes: {})",
            text.kind.as_str(),
            allowed.join(", ")
        ));
    }
    let schedule = match (text.every, text.cron.as_deref()) {
        _ if text.kind == JobKind::Capture => {
            let timing = [
                ("every", text.every.is_some()),
                ("cron", text.cron.is_some()),
                ("jitter", text.jitter.is_some()),
                ("timeout", text.timeout.is_some()),
            ];
            if let Some((field, _)) = timing.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "field `{field}` does not apply to kind capture: it runs continuously while its agent leads (its segments are cut by `segment`)"
                ));
            }
            Schedule::continuous()
        }
        (Some(every), None) => Schedule::every(every, text.jitter.unwrap_or_default()),
        (None, Some(expression)) => Schedule::cron(expression, text.jitter.unwrap_or_default())?,
        (Some(_), Some(_)) => return Err("give `every` or `cron`, not both".into()),
        (None, None) => {
            return Err("no schedule: give `every: 1h` or `cron: \"0 * * * *\"`".into());
        }
    };
    let action = match text.kind {
        JobKind::Backup => Action::Backup {
            store_unchanged: text.unchanged == Some(Unchanged::Store),
        },
        JobKind::Files => Action::Files {
            root: text.root.unwrap_or_else(|| PathBuf::from("/")),
            include: text.include,
            exclude: text.exclude,
        },
        JobKind::Stream => {
            let artefact = text
                .artifact
                .ok_or("kind stream needs `artifact` (the stored name, e.g. app.sql)")?;
            lifeboat_repo::check_artefact_name(&artefact).map_err(|e| e.to_string())?;
            if text.command.is_empty() {
                return Err("kind stream needs `command`, e.g. [pg_dump, -h, db, app]".into());
            }
            Action::Stream {
                artefact,
                command: text.command,
            }
        }
        JobKind::Copy => {
            let to = text.to.ok_or("kind copy needs `to` (the target repository)")?;
            lifeboat_repo::Location::parse(&to).map_err(|e| e.to_string())?;
            let keep = text.keep.map(Policy::from);
            if keep.as_ref().is_some_and(Policy::is_empty) {
                return Err("`keep` sets no rule, so the target would keep nothing".into());
            }
            Action::Copy {
                to,
                credentials: text.credentials,
                keep,
            }
        }
        JobKind::Forget => {
            let keep = text.keep.map(Policy::from).unwrap_or_default();
            if keep.is_empty() {
                return Err(
                    "kind forget needs `keep` with at least one rule, e.g. {last: 24, daily: 7}".into(),
                );
            }
            if let Some(repository) = &text.repository {
                lifeboat_repo::Location::parse(repository).map_err(|e| e.to_string())?;
            }
            Action::Forget {
                repository: text.repository,
                credentials: text.credentials,
                keep,
            }
        }
        JobKind::Drill => {
            let members = text.members.unwrap_or(1);
            if !(1..=7).contains(&members) {
                return Err(format!("members: {members} is not between 1 and 7"));
            }
            Action::Drill {
                etcd_binary: text.etcd_binary,
                members,
                max_age: text.max_age,
                fail_on_stale: text.fail_on_stale,
                boot_timeout: text.boot_timeout.unwrap_or(Duration::from_secs(60)),
            }
        }
        JobKind::Certs => Action::Certs {
            root: text.root.unwrap_or_else(|| PathBuf::from("/")),
            warn_days: text.warn_days.unwrap_or(30),
        },
        JobKind::Capture => {
            let segment = text.segment.unwrap_or(capture::DEFAULT_SEGMENT);
            if segment < Duration::from_millis(100) {
                return Err(format!(
                    "segment: {} is below 100ms; each segment is an object in the repository",
                    humantime::format_duration(segment)
                ));
            }
            Action::Capture {
                segment,
                segment_bytes: text
                    .segment_bytes
                    .unwrap_or(capture::DEFAULT_SEGMENT_BYTES)
                    .max(1),
                hash_every: text.hash_every.unwrap_or(capture::DEFAULT_HASH_EVERY),
                buffer_bytes: text.buffer_bytes.unwrap_or(capture::DEFAULT_BUFFER_BYTES),
            }
        }
        JobKind::Compact => {
            let per_merge = text.per_merge.unwrap_or(pitr_compact::DEFAULT_PER_MERGE);
            if per_merge < 2 {
                return Err(format!("per_merge: {per_merge} merges nothing; give 2 or more"));
            }
            Action::Compact {
                per_merge,
                max_bytes: text.max_bytes.unwrap_or(pitr_compact::DEFAULT_MAX_BYTES),
            }
        }
    };
    Ok(Job {
        name: text.name,
        kind: text.kind,
        schedule,
        timeout: match text.kind {
            JobKind::Capture => None,
            _ => Some(text.timeout.unwrap_or(Duration::from_secs(3600))),
        },
        retries: text.retries.unwrap_or(3),
        retry_backoff: text.retry_backoff.unwrap_or(Duration::from_secs(10)),
        tags: text.tags,
        action,
    })
}
