//! The agent's YAML configuration (docs/agent.md): parsed with serde_yaml_ng, every field checked
//! while parsing so that an error names its line and field.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lifeboat_core::retention::Policy;
use serde::{Deserialize, Deserializer};

use super::schedule::Schedule;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A directory, s3://, gs:// or az:// (credentials from the environment, as for the CLI,
    /// or from `credentials`).
    pub repository: String,
    #[serde(default)]
    pub credentials: Option<StorageCredentials>,
    /// Opens the backups (drills, copies that re-encrypt).
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub leader: LeaderMode,
    /// How often the election and this agent's lease are looked at.
    #[serde(default = "default_leader_check", deserialize_with = "duration")]
    pub leader_check: Duration,
    /// The leader's lease: another agent leads within this of the leader's end.
    #[serde(default = "default_leader_ttl", deserialize_with = "duration")]
    pub leader_ttl: Duration,
    /// The cluster's name on the status page.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Recorded in every manifest [default: this machine's name].
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub objectives: Objectives,
    #[serde(default)]
    pub etcd: EtcdSection,
    /// Where copies and drills keep temporary files [default: $TMPDIR or /tmp].
    #[serde(default)]
    pub temp_dir: Option<PathBuf>,
    #[serde(deserialize_with = "jobs")]
    pub jobs: Vec<Job>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9648))
}

fn default_leader_check() -> Duration {
    Duration::from_secs(5)
}

fn default_leader_ttl() -> Duration {
    Duration::from_secs(15)
}

/// Which agent runs the cluster-wide jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaderMode {
    /// The agent etcd's election (a lease-backed key under `lifeboat/leader`) elects.
    #[default]
    Etcd,
    /// This agent, whatever etcd says (one agent per cluster).
    Always,
}

impl std::fmt::Display for LeaderMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaderMode::Etcd => "etcd",
            LeaderMode::Always => "always",
        })
    }
}

/// Recovery objectives of the cluster.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    #[serde(deserialize_with = "duration")]
    pub rpo: Duration,
    #[serde(deserialize_with = "duration")]
    pub rto: Duration,
}

impl Default for Objectives {
    fn default() -> Self {
        Self {
            rpo: Duration::from_secs(3600),
            rto: Duration::from_secs(15 * 60),
        }
    }
}

/// A secret, never written inline: the name of a variable that holds it, or a file (a mounted
/// Kubernetes Secret).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value; errors name the variable or file, never the value.
    pub fn read(&self) -> anyhow::Result<String> {
        match self {
            SecretSource::Env(name) => std::env::var(name).map_err(|_| {
                anyhow::anyhow!("the configuration names variable {name} for a secret, but it is not set")
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| anyhow::anyhow!("cannot read secret file {}: {e}", path.display())),
        }
    }
}

fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretSource>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Source(SecretSource),
        Inline(serde::de::IgnoredAny),
    }
    match Given::deserialize(deserializer)? {
        Given::Source(source) => Ok(Some(source)),
        Given::Inline(_) => Err(serde::de::Error::custom(
            "secrets are not written inline: give {env: VARIABLE} or {file: PATH}",
        )),
    }
}

/// Object-storage keys, for when the standard variables are not the way in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCredentials {
    #[serde(default, deserialize_with = "secret")]
    pub access_key_id: Option<SecretSource>,
    #[serde(default, deserialize_with = "secret")]
    pub secret_access_key: Option<SecretSource>,
}

/// How to reach the local etcd member: `lifeboat snapshot save`'s flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub cacert: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<SecretSource>,
    #[serde(default)]
    pub kubeadm: bool,
    #[serde(default)]
    pub kubeadm_pki_dir: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

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
    pub timeout: Duration,
    /// Attempts after a failure, each after twice the previous wait.
    pub retries: u32,
    pub retry_backoff: Duration,
    pub tags: Vec<String>,
    pub action: Action,
}

/// What each kind needs.
#[derive(Debug, Clone)]
pub enum Action {
    Backup,
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!("duration {text:?} is zero; give e.g. 30s, 15m or 1h")),
        Err(e) => Err(format!(
            "{text:?} is not a duration ({e}); write e.g. 30s, 15m or 1h"
        )),
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// Jobs are checked one by one as they are read, so an error carries the job's position.
fn jobs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Job>, D::Error> {
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
        JobKind::Backup => &["tags"],
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
        (Some(every), None) => Schedule::every(every, text.jitter.unwrap_or_default()),
        (None, Some(expression)) => Schedule::cron(expression, text.jitter.unwrap_or_default())?,
        (Some(_), Some(_)) => return Err("give `every` or `cron`, not both".into()),
        (None, None) => {
            return Err("no schedule: give `every: 1h` or `cron: \"0 * * * *\"`".into());
        }
    };
    let action = match text.kind {
        JobKind::Backup => Action::Backup,
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
    };
    Ok(Job {
        name: text.name,
        kind: text.kind,
        schedule,
        timeout: text.timeout.unwrap_or(Duration::from_secs(3600)),
        retries: text.retries.unwrap_or(3),
        retry_backoff: text.retry_backoff.unwrap_or(Duration::from_secs(10)),
        tags: text.tags,
        action,
    })
}

/// The parser places an error in a value it refused (a duration, a cron expression, a job's
/// check) at the start of the mapping that holds it; those errors quote the value, so the line
/// that holds it, and its key, are found from there.
fn pinpoint(text: &str, error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    let Some(location) = error.location() else {
        return message;
    };
    let suffix = format!(" at line {} column {}", location.line(), location.column());
    let bare = message.strip_suffix(&suffix).unwrap_or(&message);
    let (path, detail) = bare.split_once(": ").unwrap_or(("", bare));
    let quoted = detail.split('"').nth(1).filter(|value| !value.is_empty());
    let found = quoted.and_then(|value| {
        text.lines()
            .enumerate()
            .skip(location.line().saturating_sub(1))
            .take(200)
            .find_map(|(index, line)| {
                let at = line.find(value)?;
                let key = line[..at]
                    .trim_end()
                    .trim_end_matches(['"', '\'', ' '])
                    .strip_suffix(':')?
                    .rsplit(['{', ',', ' ', '-'])
                    .next()?
                    .trim_matches(['"', '\'']);
                Some((index + 1, key.to_string()))
            })
    });
    match found {
        Some((line, key)) if !key.is_empty() => format!("line {line}: {path}.{key}: {detail}"),
        _ => format!("line {}: {bare}", location.line()),
    }
}

/// Errors quote what they refused, which may span lines of the file: one line, and a short one.
fn one_line(message: &str) -> String {
    const LIMIT: usize = 300;
    let flat: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

impl Config {
    /// Parses and checks `text` read from `origin`; the error names the file, the line and the
    /// field.
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Self> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{origin}: {}; see docs/agent.md for every key",
                one_line(&pinpoint(text, &e))
            )
        })?;
        lifeboat_repo::Location::parse(&config.repository)
            .map_err(|e| anyhow::anyhow!("{origin}: repository: {e}"))?;
        let needs_etcd =
            config.jobs.iter().any(|j| j.kind == JobKind::Backup) || config.leader == LeaderMode::Etcd;
        if needs_etcd && config.etcd.endpoints.is_empty() && !config.etcd.kubeadm {
            anyhow::bail!(
                "{origin}: etcd: no endpoints and no `kubeadm: true`; backups and `leader: etcd` need the cluster's endpoints (or set `leader: always` without backup jobs)"
            );
        }
        // etcd refuses leases much shorter than its election timeout.
        if config.leader_ttl < Duration::from_secs(3) {
            anyhow::bail!(
                "{origin}: leader_ttl: {:?} is too short for an etcd lease; give 3s or more (15s by default)",
                config.leader_ttl
            );
        }
        Ok(config)
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the agent configuration {}: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../../deploy/agent.example.yaml");

    fn error(text: &str) -> String {
        format!("{:#}", Config::parse("agent.yaml", text).unwrap_err())
    }

    #[test]
    fn the_example_file_parses_with_every_kind() {
        let config = Config::parse("example", EXAMPLE).unwrap();
        assert_eq!(config.leader_ttl, Duration::from_secs(15));
        let kinds: BTreeSet<&str> = config.jobs.iter().map(|j| j.kind.as_str()).collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        assert_eq!(config.objectives.rpo, Duration::from_secs(3600));
        assert_eq!(config.leader, LeaderMode::Etcd);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "repository: /tmp/r\nleader: always\njobs:\n  - {name: a, kind: certs, every: 1h}\n  - name: b\n    kind: backup\n    every: 10 parsecs\n";
        let message = error(text);
        assert!(message.contains("line 7"), "{message}");
        assert!(
            message.contains("every") || message.contains("jobs[1]"),
            "{message}"
        );
        assert!(message.contains("10 parsecs"), "{message}");

        let message = error(
            "repository: /tmp/r\nleader: always\nleader_ttl: 1s\njobs:\n  - {name: c, kind: certs, every: 1h}\n",
        );
        assert!(
            message.contains("leader_ttl") && message.contains("3s or more"),
            "{message}"
        );

        let message = error("repository: /tmp/r\nleader: always\nlisten: nowhere\njobs: []\n");
        assert!(
            message.contains("line 3") && message.contains("listen"),
            "{message}"
        );

        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: a, kind: certs, every: 1h, colour: red}\n",
        );
        assert!(
            message.contains("colour") && message.contains("line 4"),
            "{message}"
        );
    }

    #[test]
    fn fields_of_another_kind_and_missing_ones_are_refused() {
        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: c, kind: certs, every: 1h, to: /x}\n",
        );
        assert!(message.contains("`to` does not apply to kind certs"), "{message}");
        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: s, kind: stream, every: 1h, artifact: a.sql}\n",
        );
        assert!(message.contains("needs `command`"), "{message}");
        let message =
            error("repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: forget, every: 1h}\n");
        assert!(message.contains("needs `keep`"), "{message}");
        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, every: 1h, cron: '* * * * *'}\n",
        );
        assert!(message.contains("not both"), "{message}");
        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, cron: 'every tuesday'}\n",
        );
        assert!(message.contains("every tuesday"), "{message}");
        let message = error(
            "repository: /tmp/r\nleader: always\njobs:\n  - {name: f, kind: files, every: 1h}\n  - {name: f, kind: certs, every: 1h}\n",
        );
        assert!(message.contains("two jobs are named \"f\""), "{message}");
        let message = error("repository: /tmp/r\njobs:\n  - {name: b, kind: backup, every: 1h}\n");
        assert!(message.contains("etcd: no endpoints"), "{message}");
    }

    #[test]
    fn no_prefix_or_mangled_copy_of_the_example_panics() {
        // Every prefix (cut at each character), and copies with one character replaced by
        // characters YAML and the error locator treat specially: each parses or is one error.
        let chars: Vec<(usize, char)> = EXAMPLE.char_indices().collect();
        for &(at, _) in &chars {
            let _ = Config::parse("cut", &EXAMPLE[..at]);
        }
        for (index, &(at, c)) in chars.iter().enumerate().step_by(7) {
            for replacement in ['"', ':', '{', '-', '\n', 'x', '\'', '#'] {
                let mut text = EXAMPLE.to_string();
                text.replace_range(at..at + c.len_utf8(), &replacement.to_string());
                if let Err(error) = Config::parse("mangled", &text) {
                    let line = format!("{error:#}");
                    assert!(!line.contains('\n'), "one line at {index}: {line}");
                }
            }
        }
    }

    #[test]
    fn secrets_are_never_inline() {
        let message = error(
            "repository: s3://b/p\nleader: always\ncredentials: {secret_access_key: hunter2}\njobs:\n  - {name: f, kind: files, every: 1h}\n",
        );
        assert!(message.contains("not written inline"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let config = Config::parse(
            "x",
            "repository: s3://b/p\nleader: always\ncredentials: {secret_access_key: {file: /run/secret}}\njobs:\n  - {name: f, kind: files, every: 1h}\n",
        )
        .unwrap();
        assert!(matches!(
            config.credentials.unwrap().secret_access_key,
            Some(SecretSource::File(_))
        ));
    }
}
