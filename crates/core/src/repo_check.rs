//! `repo check` and `repo prune`, after restic's: what a repository holds that no trusted
//! manifest accounts for, and removing it once it is old enough that no running backup can
//! still be writing it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use lifeboat_repo::{BackupId, OpenUpload, Repository, SEGMENTS, StoredObject, manifest_key, unchanged_key};
use serde::Serialize;

use crate::{Cancel, Result};

/// An object or upload with its age.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub key: String,
    pub size: u64,
    pub age_seconds: u64,
}

/// A backup whose ID is ahead of when the storage received it: its node's clock runs ahead.
#[derive(Debug, Clone, Serialize)]
pub struct ClockAhead {
    pub id: BackupId,
    pub host: String,
    pub ahead_seconds: u64,
}

/// What `repo check` found.
#[derive(Debug, Clone, Serialize)]
pub struct RepoCheck {
    pub repo: String,
    /// Backups whose manifest is trusted.
    pub backups: usize,
    /// Manifests that are damaged, planted or of an unknown format (directory, reason).
    pub untrusted: Vec<(String, String)>,
    /// Objects of backups with a trusted manifest that are missing or of the wrong size.
    pub missing: Vec<(BackupId, String)>,
    /// Objects no manifest accounts for (left by interrupted backups, segment writes or
    /// deletes).
    pub unreferenced: Vec<Leftover>,
    /// Uploads begun and never completed or aborted; `None` where the storage cannot list them.
    pub open_uploads: Option<Vec<Leftover>>,
    /// Backups whose ID is ahead of the storage's time by more than
    /// [`lifeboat_repo::MAX_CLOCK_SKEW`]: ordered and kept by the storage's time instead.
    pub clock_ahead: Vec<ClockAhead>,
}

impl RepoCheck {
    pub fn is_clean(&self) -> bool {
        self.untrusted.is_empty()
            && self.missing.is_empty()
            && self.unreferenced.is_empty()
            && self.open_uploads.as_ref().is_none_or(Vec::is_empty)
            && self.clock_ahead.is_empty()
    }
}

fn age(now: SystemTime, then: SystemTime) -> u64 {
    now.duration_since(then).unwrap_or_default().as_secs()
}

/// Checks `repo`: every manifest, every object, every open upload.
pub async fn check(repo: &Repository, cancel: &Cancel) -> Result<RepoCheck> {
    Ok(cancel.run(survey(repo)).await?.0)
}

/// The check, and the open uploads it found (to abort them).
async fn survey(repo: &Repository) -> Result<(RepoCheck, Vec<OpenUpload>)> {
    let now = SystemTime::now();
    let listing = repo.list().await?;
    let objects: BTreeMap<String, StoredObject> = repo
        .storage()
        .list_objects("backups")
        .await?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let mut accounted = BTreeSet::new();
    let mut missing = Vec::new();
    for manifest in &listing.backups {
        accounted.insert(manifest_key(&manifest.id));
        accounted.insert(unchanged_key(&manifest.id));
        for artefact in &manifest.artefacts {
            accounted.insert(artefact.key.clone());
            match objects.get(&artefact.key) {
                Some(object) if object.size == artefact.stored_size => {}
                Some(object) => missing.push((
                    manifest.id.clone(),
                    format!(
                        "{} is {} bytes, the manifest says {}",
                        artefact.key, object.size, artefact.stored_size
                    ),
                )),
                None => missing.push((manifest.id.clone(), format!("{} is missing", artefact.key))),
            }
        }
    }
    // An untrusted manifest's directory is left for the operator to look at, not pruned.
    let untrusted_dirs: Vec<String> = listing
        .unreadable
        .iter()
        .map(|(dir, _)| format!("backups/{dir}/"))
        .collect();
    let leftover = |o: &StoredObject| Leftover {
        key: o.key.clone(),
        size: o.size,
        age_seconds: age(now, o.modified),
    };
    let mut unreferenced: Vec<Leftover> = objects
        .values()
        .filter(|o| !accounted.contains(&o.key) && !untrusted_dirs.iter().any(|d| o.key.starts_with(d)))
        .map(leftover)
        .collect();
    // A segment's data without its manifest: a capture or merge cut off between the two puts.
    let segment_objects = repo.storage().list_objects(SEGMENTS).await?;
    let segment_keys: BTreeSet<&str> = segment_objects.iter().map(|o| o.key.as_str()).collect();
    unreferenced.extend(
        segment_objects
            .iter()
            .filter(|o| {
                o.key
                    .strip_suffix(".seg")
                    .is_some_and(|stem| !segment_keys.contains(format!("{stem}.json").as_str()))
            })
            .map(leftover),
    );
    let uploads = repo.storage().open_uploads().await?;
    let open_uploads = uploads.as_ref().map(|uploads| {
        uploads
            .iter()
            .map(|u| Leftover {
                key: u.key.clone(),
                size: 0,
                age_seconds: age(now, u.started),
            })
            .collect()
    });
    let found = RepoCheck {
        repo: repo.storage().repo().to_string(),
        backups: listing.backups.len(),
        untrusted: listing
            .unreadable
            .iter()
            .map(|(dir, error)| (dir.clone(), error.to_string()))
            .collect(),
        missing,
        unreferenced,
        open_uploads,
        clock_ahead: listing
            .backups
            .iter()
            .filter_map(|m| {
                Some(ClockAhead {
                    id: m.id.clone(),
                    host: m.host.clone(),
                    ahead_seconds: m.clock_ahead()?.as_secs(),
                })
            })
            .collect(),
    };
    Ok((found, uploads.unwrap_or_default()))
}

/// What `repo prune` removed (or, dry, would remove) and what it left because it is recent.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub removed: Vec<Leftover>,
    pub aborted_uploads: Vec<Leftover>,
    /// Leftovers younger than the threshold: possibly a backup still running.
    pub kept_recent: usize,
    pub dry_run: bool,
}

/// Removes unreferenced objects and open uploads older than `older_than`.
pub async fn prune(
    repo: &Repository,
    older_than: Duration,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<PruneReport> {
    // Exclusive: a leftover may be a backup still being written, whose writer holds a lock.
    let lock = match dry_run {
        true => None,
        false => {
            Some(crate::backup::lock(repo, "repo prune", lifeboat_repo::LockKind::Exclusive, cancel).await?)
        }
    };
    let pruned = prune_locked(repo, older_than, dry_run, lock.as_ref(), cancel).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    pruned
}

async fn prune_locked(
    repo: &Repository,
    older_than: Duration,
    dry_run: bool,
    lock: Option<&lifeboat_repo::RepoLock>,
    cancel: &Cancel,
) -> Result<PruneReport> {
    let (found, uploads) = cancel.run(survey(repo)).await?;
    let old = |l: &Leftover| l.age_seconds >= older_than.as_secs();
    let (removed, recent): (Vec<Leftover>, Vec<Leftover>) = found.unreferenced.into_iter().partition(old);
    let (aborted, recent_uploads): (Vec<(Leftover, OpenUpload)>, Vec<_>) = found
        .open_uploads
        .unwrap_or_default()
        .into_iter()
        .zip(uploads)
        .partition(|(leftover, _)| old(leftover));
    if !dry_run {
        for leftover in &removed {
            if let Some(lock) = lock {
                lock.ensure_held()?;
            }
            cancel
                .run(async { Ok(repo.storage().delete(&leftover.key).await?) })
                .await?;
        }
        for (_, upload) in &aborted {
            if let Some(lock) = lock {
                lock.ensure_held()?;
            }
            cancel
                .run(async { Ok(repo.storage().abort_open_upload(upload).await?) })
                .await?;
        }
    }
    let aborted = aborted.into_iter().map(|(leftover, _)| leftover).collect();
    Ok(PruneReport {
        removed,
        aborted_uploads: aborted,
        kept_recent: recent.len() + recent_uploads.len(),
        dry_run,
    })
}
