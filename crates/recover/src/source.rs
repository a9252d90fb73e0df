//! The etcd backup a node's recovery restores: one of this node's cluster (a node never takes
//! another cluster's data by accident), and the same one on every member. The first member's run
//! pins the backup it resolved in the repository (`recoveries/<cluster>.json`, beside the
//! revision marks); later members' `latest` resolves to the pinned backup, even if the old
//! cluster's agent made a newer one meanwhile, and another ID is refused naming it. A
//! point-in-time recovery pins its revision too, so every member restores the same point. A pin also
//! records the cluster the recovery makes, so that backups of the old cluster still count as
//! this node's once it is recovered.

use std::path::Path;
use std::time::SystemTime;

use lifeboat_repo::{BackupId, Manifest, Repository};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, Result};

/// The backup a recovery of a cluster restores on every member (`recoveries/<cluster>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPin {
    /// The recovered cluster's ID in hex, as backups name it.
    pub cluster_id: String,
    /// The ID of the cluster the recovery makes, in hex.
    pub new_cluster_id: String,
    pub backup: String,
    /// A point-in-time recovery's revision: the backup with captured revisions replayed to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The run that pinned it, and where.
    pub run: String,
    pub host: String,
    /// RFC 3339.
    pub created: String,
}

/// The cluster ID this node's etcd member belongs to, from its WAL's metadata record
/// (`<data dir>/member/wal/`, first segment); `None` when there is no readable WAL (a node whose
/// data directory is lost).
pub fn node_cluster_id(data_dir: &Path) -> Option<u64> {
    use std::io::Read;
    let wal_dir = data_dir.join("member/wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(segments.first()?)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    lifeboat_etcd_data::restore::wal_metadata(&head).map(|(_, cluster)| cluster)
}

/// Every readable pin of `repo`; unreadable ones are skipped (a pin only narrows a choice).
async fn pins(repo: &Repository) -> Result<Vec<RecoveryPin>> {
    Ok(repo
        .recovery_pins()
        .await?
        .iter()
        .filter_map(|(cluster_id, bytes)| {
            serde_json::from_slice::<RecoveryPin>(bytes)
                .ok()
                .map(|pin| (cluster_id, pin))
        })
        // A pin holds only for the cluster its name gives.
        .filter(|(cluster_id, pin)| u64::from_str_radix(&pin.cluster_id, 16).ok() == Some(**cluster_id))
        .map(|(_, pin)| pin)
        .collect())
}

/// What a recovery restores, and why that one.
#[derive(Debug, Clone)]
pub struct ChosenBackup {
    pub manifest: Manifest,
    /// The point-in-time revision every member restores (from the request or the pin).
    pub revision: Option<i64>,
    /// How `latest` or the ID given was resolved, for the plan.
    pub why: String,
    /// The pin this run writes when it begins (none when one holds already).
    pub pin: Option<RecoveryPin>,
}

/// The recovery's request, as the operator gave it.
#[derive(Debug, Clone)]
pub struct SourceRequest<'a> {
    /// A backup ID or `latest`.
    pub wanted: &'a str,
    /// With a backup ID: the point-in-time revision replayed after it.
    pub revision: Option<i64>,
    /// This node's member's cluster, if known ([`node_cluster_id`]).
    pub node_cluster: Option<u64>,
    /// Restore a backup of another cluster.
    pub force_cluster: bool,
    /// Start another recovery of the cluster, replacing its pin.
    pub replace_pin: bool,
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// Chooses the etcd backup for this node's recovery (see the module documentation).
pub async fn choose_etcd_backup(repo: &Repository, request: &SourceRequest<'_>) -> Result<ChosenBackup> {
    let usage = |message: String| Error::Refused { message };
    let name = repo.storage().repo().to_string();
    let backups: Vec<Manifest> = repo
        .list()
        .await?
        .backups
        .into_iter()
        .filter(|m| m.kind == "etcd" && m.etcd.is_some())
        .collect();
    let cluster_of = |m: &Manifest| m.etcd.as_ref().map(|e| e.cluster_id.clone()).unwrap_or_default();
    let pins = pins(repo).await?;
    // This node's cluster, and those it was recovered from.
    let mut lineage: Vec<String> = request.node_cluster.map(hex).into_iter().collect();
    for _ in 0..pins.len() {
        let older: Vec<String> = pins
            .iter()
            .filter(|p| lineage.contains(&p.new_cluster_id) && !lineage.contains(&p.cluster_id))
            .map(|p| p.cluster_id.clone())
            .collect();
        if older.is_empty() {
            break;
        }
        lineage.extend(older);
    }
    let pinned = match request.node_cluster {
        Some(cluster) => pins
            .iter()
            .find(|p| p.cluster_id == hex(cluster))
            .filter(|_| !request.replace_pin),
        // A member whose data directory is gone joins the one recovery in progress, as the
        // other members' `latest` does; among several it cannot tell which is its own.
        None if request.wanted == "latest" && !request.force_cluster => match pins.as_slice() {
            [] => None,
            [only] => Some(only),
            several => {
                let clusters: Vec<&str> = several.iter().map(|p| p.cluster_id.as_str()).collect();
                return Err(usage(format!(
                    "this node's etcd cluster is not known (its data directory has no WAL) and {name} pins recoveries of clusters {}: give the backup ID the other members restore (their plans name it), or pass --force-cluster to take the newest etcd backup of any cluster",
                    clusters.join(", ")
                )));
            }
        },
        None => None,
    };
    let of_this_cluster =
        |m: &Manifest| lineage.is_empty() || request.force_cluster || lineage.contains(&cluster_of(m));
    let manifest = match (request.wanted, pinned) {
        ("latest", Some(pin)) => {
            let id = BackupId::parse(&pin.backup)
                .ok_or_else(|| usage(format!("the recovery pin of cluster {} names {:?}, not a backup ID; remove recoveries/{}.json from {name}", pin.cluster_id, pin.backup, pin.cluster_id)))?;
            let manifest = repo.manifest(&id).await?;
            return Ok(ChosenBackup {
                manifest,
                revision: pin.revision,
                why: format!(
                    "latest is the backup run {} pinned on host {} at {} for every member of cluster {}{}{}",
                    pin.run,
                    pin.host,
                    pin.created,
                    pin.cluster_id,
                    match pin.revision {
                        Some(revision) => format!(", replayed to revision {revision}"),
                        None => String::new(),
                    },
                    if request.node_cluster.is_none() {
                        " (this node's cluster is not known: its data directory has no WAL; the repository pins this one recovery)"
                    } else {
                        ""
                    }
                ),
                pin: None,
            });
        }
        ("latest", None) => match backups.iter().rev().find(|m| of_this_cluster(m)) {
            Some(newest) => newest.clone(),
            None => {
                return Err(usage(match (backups.last(), request.node_cluster) {
                    (None, _) => format!("{name} has no etcd backups yet; run `lifeboat backup` first"),
                    (Some(other), node) => format!(
                        "{name} has no etcd backup of cluster {} (this node's member); the newest is {} of cluster {}: give its ID with --force-cluster if it is meant for this node",
                        node.map(hex).unwrap_or_default(),
                        other.id,
                        cluster_of(other)
                    ),
                }));
            }
        },
        (text, pinned) => {
            let id = BackupId::parse(text).ok_or_else(|| {
                usage(format!(
                    "{text:?} is not a backup ID (like 20261124T220000.000Z-0123456789abcdef) or `latest`; `lifeboat backups list` shows them"
                ))
            })?;
            if let Some(pin) = pinned.filter(|p| p.backup != text || p.revision != request.revision) {
                let at =
                    |revision: Option<i64>| revision.map(|r| format!(" at revision {r}")).unwrap_or_default();
                return Err(usage(format!(
                    "run {} on host {} began recovering cluster {} from backup {}{}: every member must restore the same point; give latest, or pass --replace-pin to start another recovery from {text}{}",
                    pin.run,
                    pin.host,
                    pin.cluster_id,
                    pin.backup,
                    at(pin.revision),
                    at(request.revision)
                )));
            }
            let manifest = repo.manifest(&id).await?;
            if manifest.kind != "etcd" || manifest.etcd.is_none() {
                return Err(usage(format!(
                    "backup {text} holds no etcd snapshot; choose an etcd backup (`lifeboat backups list`)"
                )));
            }
            if !of_this_cluster(&manifest) {
                return Err(usage(format!(
                    "backup {text} is of etcd cluster {}, but this node's member belongs to cluster {}; choose a backup of this cluster (`lifeboat backups list`), or pass --force-cluster if it is meant for this node",
                    cluster_of(&manifest),
                    lineage.join(", recovered from ")
                )));
            }
            manifest
        }
    };
    let why = match (request.wanted, request.node_cluster) {
        ("latest", Some(cluster)) if !request.force_cluster => {
            format!("latest is the newest etcd backup of cluster {}", hex(cluster))
        }
        ("latest", _) => "latest is the newest etcd backup of any cluster (this node's cluster is not known: its data directory has no WAL)".to_string(),
        (_, _) => format!("backup {} of cluster {}", manifest.id, cluster_of(&manifest)),
    };
    let revision = match request.wanted {
        "latest" => None,
        _ => request.revision,
    };
    Ok(ChosenBackup {
        revision,
        pin: request
            .node_cluster
            .filter(|_| pinned.is_none())
            .map(|cluster| RecoveryPin {
                cluster_id: hex(cluster),
                new_cluster_id: String::new(),
                backup: manifest.id.to_string(),
                revision,
                run: String::new(),
                host: String::new(),
                created: String::new(),
            }),
        manifest,
        why,
    })
}

/// The ID of the cluster a restore with `initial_cluster` (`name=peer-url,...`) and `token` makes.
pub fn new_cluster_id(initial_cluster: &str, token: &str) -> Option<u64> {
    lifeboat_etcd_data::restore::Cluster::from_initial_cluster(initial_cluster, token)
        .ok()
        .map(|cluster| cluster.id)
}

/// Removes the pins run `run` wrote (its `--abort`: the recovery did not happen).
pub async fn remove_pins_of_run(repo: &Repository, run: &str) -> Result<usize> {
    let mut removed = 0;
    for pin in pins(repo).await?.iter().filter(|p| p.run == run) {
        if let Ok(cluster) = u64::from_str_radix(&pin.cluster_id, 16) {
            repo.remove_recovery_pin(cluster).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Pins `pin` (its run, host and new cluster filled in by the caller) for the other members.
pub async fn write_pin(repo: &Repository, pin: &RecoveryPin, cluster_id: u64, now: SystemTime) -> Result<()> {
    let pin = RecoveryPin {
        created: OffsetDateTime::from(now).format(&Rfc3339).unwrap_or_default(),
        ..pin.clone()
    };
    let json = serde_json::to_vec_pretty(&pin).map_err(|e| Error::Refused {
        message: format!("the recovery pin cannot be written: {e}"),
    })?;
    repo.put_recovery_pin(cluster_id, json).await?;
    Ok(())
}
