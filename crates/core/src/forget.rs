//! `forget`: applies a retention policy to a repository's backups, group by group; removes the
//! manifests of the forgotten backups first (they stop existing at once), then their data.

use lifeboat_repo::{BackupId, Manifest, Repository};
use serde::Serialize;

use crate::retention::{Policy, Rule, apply};
use crate::{Error, Result};

/// What to forget.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    pub policy: Policy,
    /// Only backups carrying all these tags are considered; the others are left alone.
    pub tags: Vec<String>,
    pub dry_run: bool,
}

/// The verdict on one backup.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: BackupId,
    pub created: String,
    /// Backups are judged within their group: one etcd cluster, or one host's other backups.
    pub group: String,
    pub keep: bool,
    /// The rules that keep it (empty when forgotten).
    pub rules: Vec<Rule>,
}

/// The group a backup is judged in, as restic groups snapshots by host and paths.
pub fn group(manifest: &Manifest) -> String {
    match &manifest.etcd {
        Some(etcd) => format!("etcd cluster {}", etcd.cluster_id),
        None => {
            let names: Vec<&str> = manifest.artefacts.iter().map(|a| a.name.as_str()).collect();
            format!("{} {} on {}", manifest.kind, names.join("+"), manifest.host)
        }
    }
}

/// Decides every backup's fate and, unless `dry_run`, removes the forgotten ones.
pub async fn forget(repo: &Repository, options: &ForgetOptions) -> Result<Vec<Decision>> {
    if options.policy.is_empty() {
        return Err(Error::Usage {
            message:
                "no --keep-* rule given, so nothing would be kept; give at least one (nothing was removed)"
                    .into(),
        });
    }
    let backups: Vec<Manifest> = repo
        .list()
        .await?
        .backups
        .into_iter()
        .filter(|m| options.tags.iter().all(|t| m.tags.contains(t)))
        .collect();
    let mut groups: std::collections::BTreeMap<String, Vec<&Manifest>> = Default::default();
    for manifest in &backups {
        groups.entry(group(manifest)).or_default().push(manifest);
    }
    let mut decisions = Vec::new();
    for (name, members) in groups {
        let times: Vec<_> = members.iter().map(|m| m.id.time()).collect();
        for (manifest, rules) in members.iter().zip(apply(&options.policy, &times)) {
            decisions.push(Decision {
                id: manifest.id.clone(),
                created: manifest.created.clone(),
                group: name.clone(),
                keep: !rules.is_empty(),
                rules,
            });
        }
    }
    if !options.dry_run {
        let forgotten: Vec<&BackupId> = decisions.iter().filter(|d| !d.keep).map(|d| &d.id).collect();
        for id in &forgotten {
            repo.delete_manifest(id).await?;
        }
        for id in &forgotten {
            repo.delete_data(id).await?;
        }
    }
    Ok(decisions)
}
