//! The agent's YAML configuration (docs/agent.md): parsed with serde_yaml_ng, every field checked
//! while parsing so that an error names its line and field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod job;
#[cfg(test)]
mod tests;

use job::jobs;
pub use job::{Action, Job, JobKind};

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
    /// Who may read `/metrics` and the status page.
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub leader: LeaderMode,
    /// How often the election and this agent's lease are looked at.
    #[serde(default = "default_leader_check", deserialize_with = "duration")]
    pub leader_check: Duration,
    /// The leader's lease: another agent leads within this of the leader's end.
    #[serde(default = "default_leader_ttl", deserialize_with = "duration")]
    pub leader_ttl: Duration,
    /// The cluster's name on the status page and in the metrics' `cluster` label.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The etcd cluster ID (hex) this agent serves, for an agent without access to etcd (the
    /// drill Deployment) whose repository holds backups of several clusters; agents that reach
    /// etcd learn it from the members.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Recorded in every manifest [default: this machine's name].
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub objectives: Objectives,
    #[serde(default)]
    pub etcd: EtcdSection,
    /// How long one look at the repository (its listing, for the page, the metrics and the
    /// first runs) may take before it counts as unreachable.
    #[serde(default = "default_listing_timeout", deserialize_with = "duration")]
    pub listing_timeout: Duration,
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

fn default_listing_timeout() -> Duration {
    Duration::from_secs(30)
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
    /// k3s's embedded etcd: its endpoint and client certificate.
    #[serde(default)]
    pub k3s: bool,
    /// RKE2's etcd: its endpoint and client certificate.
    #[serde(default)]
    pub rke2: bool,
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

impl EtcdSection {
    /// Whether the section says where etcd is: endpoints, or a distribution's defaults.
    pub fn given(&self) -> bool {
        !self.endpoints.is_empty() || self.kubeadm || self.k3s || self.rke2
    }
}

/// Access to `/metrics` and the status page (`/healthz` and `/readyz` stay open: probes carry
/// no credentials, and they say nothing secret).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Requests must carry `Authorization: Bearer <token>`.
    #[serde(default, deserialize_with = "secret")]
    pub bearer_token: Option<SecretSource>,
    /// Serve HTTPS with this certificate.
    #[serde(default)]
    pub tls: Option<HttpTls>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Requests must present a client certificate this CA signed (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
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

pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

pub(super) fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
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
        let distributions = [config.etcd.kubeadm, config.etcd.k3s, config.etcd.rke2];
        if distributions.iter().filter(|set| **set).count() > 1 {
            anyhow::bail!("{origin}: etcd: give one of `kubeadm`, `k3s` and `rke2`, not several");
        }
        if needs_etcd && !config.etcd.given() {
            anyhow::bail!(
                "{origin}: etcd: no endpoints and no `kubeadm: true` (or `k3s: true`, `rke2: true`); backups and `leader: etcd` need the cluster's endpoints (or set `leader: always` without backup jobs)"
            );
        }
        if let Some(id) = &config.cluster_id
            && u64::from_str_radix(id, 16).is_err()
        {
            anyhow::bail!(
                "{origin}: cluster_id: {id:?} is not an etcd cluster ID (hex, as `lifeboat backups list -w json` shows under etcd.cluster_id)"
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

    /// What is valid but unwise: one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let writers: Vec<&str> = self
            .jobs
            .iter()
            .filter(|job| job.kind.backup_kind().is_some())
            .map(|job| job.name.as_str())
            .collect();
        if self.identity_file.is_some() && !writers.is_empty() {
            warnings.push(format!(
                "identity_file is set beside backup jobs ({}): this node can read every backup, \
                 not only write them; run drills and re-encrypting copies from an agent of their \
                 own that holds the identity, and give this one only the recipient",
                writers.join(", ")
            ));
        }
        warnings
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the agent configuration {}: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }
}
