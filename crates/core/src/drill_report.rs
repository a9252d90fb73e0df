//! What a drill reports (`drills/<ID>.json` in the repository, `drill -w json`): its checks,
//! phases, RTO and RPO, as the drill fills them and readers parse them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lifeboat_etcd_data::SnapshotStatus;
use lifeboat_repo::BackupId;
use serde::{Deserialize, Serialize};

/// The outcome of a check or of a group of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Warning,
    /// Not run, because an earlier step failed.
    Skipped,
}

/// One named check with what it saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub result: Outcome,
    pub detail: String,
}

/// One timed phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// The guide's four results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub integrity: Outcome,
    pub restore: Outcome,
    pub content: Outcome,
    pub freshness: Outcome,
}

/// Kubernetes objects found under `/registry/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubernetesContent {
    pub namespaces: Vec<String>,
    /// Objects per resource, as `lifeboat k8s ls --count` names and counts them.
    pub resources: BTreeMap<String, u64>,
}

/// The recovery time the drill proved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rto {
    /// Start to checks passed; `None` when they did not pass.
    pub seconds: Option<f64>,
    pub objective_seconds: f64,
    pub met: bool,
}

/// The data loss a restore of this backup would mean now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rpo {
    pub backup_age_seconds: f64,
    pub max_age_seconds: f64,
    /// Live revision minus the backup's, when the live cluster was given.
    pub revision_lag: Option<i64>,
}

/// The throwaway cluster left running by `--keep`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub endpoints: Vec<String>,
    pub pids: Vec<u32>,
    pub dir: PathBuf,
}

/// Everything a drill found; stored in the repository as `drills/<ID>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    pub id: BackupId,
    pub timestamp: String,
    /// The backup ID, or the snapshot file.
    pub backup: String,
    /// The drilled backup's etcd cluster (hex ID), so that each cluster's view of a shared
    /// repository finds its own drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub repository: Option<String>,
    /// Bytes of the snapshot.
    pub size: u64,
    pub backup_time: Option<String>,
    pub etcd_binary: String,
    pub etcd_version: String,
    pub members: usize,
    pub result: Outcome,
    pub results: Results,
    /// `etcdutl snapshot status` of the drilled snapshot.
    pub etcd: Option<SnapshotStatus>,
    /// A point-in-time drill's revision: the snapshot's revision with captured ones replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_revision: Option<i64>,
    pub checks: Vec<Check>,
    pub kubernetes: Option<KubernetesContent>,
    pub phases: Vec<Phase>,
    pub rto: Rto,
    pub rpo: Rpo,
    pub kept: Option<Kept>,
}
