//! `forget`: applies a retention policy to a repository's backups, group by group; removes the
//! manifests of the forgotten backups first (they stop existing at once), then their data.

use lifeboat_repo::{BackupId, Manifest, Repository};
use serde::Serialize;

use crate::retention::{Policy, Rule, apply};
use crate::{Cancel, Error, Result};

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

/// The verdict of `policy` on each of `backups` (oldest first), judged within their groups.
pub fn decide(policy: &Policy, backups: &[Manifest]) -> Vec<Decision> {
    let mut groups: std::collections::BTreeMap<String, Vec<&Manifest>> = Default::default();
    for manifest in backups {
        groups.entry(group(manifest)).or_default().push(manifest);
    }
    let mut decisions = Vec::new();
    for (name, members) in groups {
        let times: Vec<_> = members.iter().map(|m| m.time()).collect();
        for (manifest, rules) in members.iter().zip(apply(policy, &times)) {
            decisions.push(Decision {
                id: manifest.id.clone(),
                created: manifest.created.clone(),
                group: name.clone(),
                keep: !rules.is_empty(),
                rules,
            });
        }
    }
    decisions
}

/// What `forget` decided and found.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub decisions: Vec<Decision>,
    /// Manifests that cannot be trusted (by directory name, with the reason): judged by no
    /// rule and left alone.
    pub damaged: Vec<(String, String)>,
    /// Captured segments (point-in-time recovery) no backup that stays can reach: all their
    /// revisions are at or before the oldest etcd backup left of their cluster.
    pub segments_removed: usize,
}

/// Decides every backup's fate and, unless `dry_run`, removes the forgotten ones: all their
/// manifests first (they stop existing at once), then their data. Cancelled half-way, it stops
/// removing manifests but still removes the data of those it removed, so nothing is orphaned.
pub async fn forget(repo: &Repository, options: &ForgetOptions, cancel: &Cancel) -> Result<ForgetReport> {
    if options.policy.is_empty() {
        return Err(Error::Usage {
            message:
                "no --keep-* rule given, so nothing would be kept; give at least one (nothing was removed)"
                    .into(),
        });
    }
    // Exclusive: nothing else reads or writes while backups go (a dry run deletes nothing).
    let lock = match options.dry_run {
        true => None,
        false => Some(crate::backup::lock(repo, "forget", lifeboat_repo::LockKind::Exclusive, cancel).await?),
    };
    let forgotten = forget_locked(repo, options, lock.as_ref(), cancel).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    forgotten
}

async fn forget_locked(
    repo: &Repository,
    options: &ForgetOptions,
    lock: Option<&lifeboat_repo::RepoLock>,
    cancel: &Cancel,
) -> Result<ForgetReport> {
    let listing = cancel.run(async { Ok(repo.list().await?) }).await?;
    let damaged = listing
        .unreadable
        .iter()
        .map(|(name, error)| (name.clone(), error.to_string()))
        .collect();
    let all = listing.backups;
    let backups: Vec<Manifest> = all
        .iter()
        .filter(|m| options.tags.iter().all(|t| m.tags.contains(t)))
        .cloned()
        .collect();
    let decisions = decide(&options.policy, &backups);
    // Judged against every backup that stays, the untagged ones included.
    let staying: Vec<Manifest> = listing_all_but(&all, &decisions);
    if !options.dry_run {
        let forgotten: Vec<&BackupId> = decisions.iter().filter(|d| !d.keep).map(|d| &d.id).collect();
        let mut removed = Vec::new();
        let mut stopped = Ok(());
        // Checked between deletions, never in the middle of one: a delete the server carried out
        // but whose answer was dropped would leave data no manifest names.
        for id in forgotten {
            if let Err(error) = cancel.check() {
                stopped = Err(error);
                break;
            }
            // A lost lock stops the manifests, but the data of those removed still goes.
            if let Some(Err(error)) = lock.map(lifeboat_repo::RepoLock::ensure_held) {
                stopped = Err(error.into());
                break;
            }
            repo.delete_manifest(id).await?;
            removed.push(id);
        }
        for id in removed {
            repo.delete_data(id).await?;
        }
        stopped?;
    }
    // Only once the bases they served are gone (a forget cut off before keeps them).
    let segments_removed =
        crate::pitr_compact::remove_unreachable(repo, &all, &staying, options.dry_run, cancel).await?;
    Ok(ForgetReport {
        decisions,
        damaged,
        segments_removed,
    })
}

/// `all` less the backups `decisions` forget.
fn listing_all_but(all: &[Manifest], decisions: &[Decision]) -> Vec<Manifest> {
    let forgotten: std::collections::BTreeSet<&BackupId> =
        decisions.iter().filter(|d| !d.keep).map(|d| &d.id).collect();
    all.iter()
        .filter(|m| !forgotten.contains(&m.id))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn stored(id_time: SystemTime, stored_at: SystemTime) -> Manifest {
        Manifest {
            format: lifeboat_repo::FORMAT,
            id: BackupId::new(id_time),
            kind: "files".into(),
            created: String::new(),
            host: "node-1".into(),
            tool: "test".into(),
            tags: Vec::new(),
            etcd: None,
            cluster: None,
            artefacts: Vec::new(),
            stored_at: Some(stored_at),
            unchanged_at: None,
        }
    }

    #[test]
    fn a_backup_named_by_a_clock_running_ahead_is_not_kept_as_the_newest() {
        let now = SystemTime::now();
        // Listed in the storage's order: the one named a day ahead was received first.
        let ahead = stored(now + Duration::from_secs(86_400), now - Duration::from_secs(60));
        let newest = stored(now, now);
        let policy = Policy {
            last: Some(1),
            ..Policy::default()
        };
        let decisions = decide(&policy, &[ahead.clone(), newest.clone()]);
        let kept: Vec<&BackupId> = decisions.iter().filter(|d| d.keep).map(|d| &d.id).collect();
        assert_eq!(kept, [&newest.id]);
    }
}
