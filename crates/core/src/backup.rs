//! `backup`: etcd's snapshot streamed into a repository (trailer check, zstd, age, multipart
//! upload, no local copy), then the manifest, last.

use std::time::SystemTime;

use lifeboat_etcd_conn::Member;
use lifeboat_etcd_conn::{ConnectOptions, connect_first_healthy};
use lifeboat_etcd_data::{StreamedRevision, TrailerCheck};
use lifeboat_repo::{
    BackupId, Description, EtcdFacts, HashKvRecord, LockKind, Manifest, NewBackup, RepoLock, Repository,
    timestamp,
};
use tracing::warn;

use crate::blocking::Batched;
use crate::{Cancel, Error, Progress, Result};

/// The artefact name of an etcd snapshot.
pub const ETCD_ARTEFACT: &str = "etcd-snapshot.db";

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub connect: ConnectOptions,
    pub labels: Labels,
}

/// What every manifest records about where and why a backup was made.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub host: String,
    pub tags: Vec<String>,
    /// The etcd cluster (hex ID) a files or stream backup belongs to, when known.
    pub cluster: Option<String>,
}

/// The description of a backup of `kind` created at `now`.
pub(crate) fn description(
    kind: &str,
    now: SystemTime,
    labels: &Labels,
    etcd: Option<EtcdFacts>,
) -> Description {
    Description {
        kind: kind.into(),
        created: timestamp(now),
        host: labels.host.clone(),
        tool: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        tags: labels.tags.clone(),
        // An etcd backup names its cluster in its facts.
        cluster: labels.cluster.clone().filter(|_| etcd.is_none()),
        etcd,
    }
}

/// Takes a `kind` lock on `repo` for `operation` unless cancelled first.
pub(crate) async fn lock(
    repo: &Repository,
    operation: &str,
    kind: LockKind,
    cancel: &Cancel,
) -> Result<RepoLock> {
    cancel.run(async { Ok(repo.lock(operation, kind).await?) }).await
}

/// Runs `produce` into new backup `id` of `repo` unless cancelled, then commits it (manifest last);
/// on an error or a cancellation everything it wrote is removed. `operation` holds a shared lock
/// claiming `id` meanwhile; it and `cancel` are checked before the commit.
pub(crate) async fn write_backup(
    repo: &Repository,
    id: BackupId,
    operation: &str,
    cancel: &Cancel,
    produce: impl AsyncFnOnce(&mut NewBackup) -> Result<Description>,
) -> Result<Manifest> {
    let lock = lock(repo, operation, LockKind::Writing(id.clone()), cancel).await?;
    let mut backup = repo.begin(id);
    let outcome = cancel.run(produce(&mut backup)).await.and_then(|description| {
        // The last look before the manifest: a cancellation (or a lost leadership) since
        // the work ended still commits nothing.
        cancel.check()?;
        Ok(lock.ensure_held().map(|()| description)?)
    });
    let settled = backup.settle(outcome).await;
    lock.release().await;
    settled
}

/// Streams a snapshot of the first healthy endpoint into `repo`; returns the new manifest.
pub async fn backup(
    repo: &Repository,
    options: &BackupOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Manifest> {
    let now = SystemTime::now();
    write_backup(repo, BackupId::new(now), "backup", cancel, async |backup| {
        let mut member = connect_first_healthy(&options.connect).await?;
        let status = member.status().clone();
        crate::snapshot_save::check_server_version(&status)?;
        let mut stream = member.snapshot().await?;
        backup.start_artefact(ETCD_ARTEFACT).await?;
        // The trailer is checked (and the stream hashed) on the blocking pool, a batch at a time;
        // the snapshot's own revision is read from its pages on the way.
        // The revision's page sketches go to an unlinked temporary file: memory stays flat
        // whatever the snapshot's size.
        let revision = match tempfile::tempfile() {
            Ok(file) => StreamedRevision::spilling_to(file),
            Err(error) => {
                warn!("no temporary file for the snapshot's page sketches ({error}): keeping them in memory");
                StreamedRevision::default()
            }
        };
        let mut trailer = Batched::new((TrailerCheck::new(), revision), |(trailer, revision), bytes| {
            trailer.update(bytes);
            revision.update(bytes);
            Ok(())
        });
        progress.start(Some(status.db_size + lifeboat_etcd_data::TRAILER_LEN as u64));
        let streamed: Result<()> = async {
            while let Some(chunk) = stream.next_chunk().await? {
                trailer.push_into(&chunk, backup).await?;
                progress.advance(chunk.len() as u64);
            }
            Ok(())
        }
        .await;
        progress.finish();
        streamed?;
        let (trailer, revision) = trailer.finish_into(backup).await?;
        // Nothing is completed unless the whole stream arrived with a matching trailer.
        let damaged = |source| Error::Snapshot {
            endpoint: status.endpoint.clone(),
            source,
        };
        let verified = trailer.finish().map_err(damaged)?;
        let revision = revision.finish().map_err(damaged)?;
        // Asked before anything else, so a compaction has the least time to get in between.
        let (hash_kv, hash_kv_missing) = live_hash_kv(&mut member, revision).await?;
        backup.finish_artefact(hex::encode(verified.sha256)).await?;
        let live_keys = u64::try_from(member.count_keys(revision).await?).unwrap_or(0);
        let facts = EtcdFacts {
            cluster_id: format!("{:x}", status.cluster_id),
            member_id: format!("{:x}", status.member_id),
            endpoint: status.endpoint.clone(),
            version: status.version.clone(),
            revision,
            live_keys,
            hash_kv,
            hash_kv_missing,
        };
        Ok(description("etcd", now, &options.labels, Some(facts)))
    })
    .await
}

/// What [`backup_if_changed`] did.
#[derive(Debug, Clone)]
pub enum BackupOutcome {
    /// A new backup was stored.
    Stored(Manifest),
    /// Nothing was stored: the cluster has not changed since backup `same_as` (same revision,
    /// same HashKV there), which is now marked current.
    Unchanged { same_as: Manifest, revision: i64 },
}

/// [`backup`], unless the cluster has not changed since its newest backup in `repo`: its
/// revision is the one that backup recorded and etcd's HashKV there is the recorded one (a
/// cluster restored from an older backup and written up to the same revision differs there).
/// Then that backup is marked unchanged ([`Manifest::unchanged_at`]) instead of stored again.
pub async fn backup_if_changed(
    repo: &Repository,
    options: &BackupOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<BackupOutcome> {
    match cancel.run(unchanged_since_newest(repo, options, cancel)).await {
        Ok(Some((same_as, revision))) => return Ok(BackupOutcome::Unchanged { same_as, revision }),
        Ok(None) => {}
        Err(error @ Error::Interrupted { .. }) => return Err(error),
        // The check only saves a copy: when it cannot be made, the backup is.
        Err(error) => warn!(
            "cannot tell whether the cluster changed since its newest backup ({error}); storing a backup"
        ),
    }
    Ok(BackupOutcome::Stored(
        backup(repo, options, progress, cancel).await?,
    ))
}

/// The newest backup of the cluster when the cluster has not changed since it, marked so.
/// Under a shared lock taken before the check: no forget removes the backup meanwhile, and the
/// mark (whose storage time is what freshness counts from) is written right after the check.
async fn unchanged_since_newest(
    repo: &Repository,
    options: &BackupOptions,
    cancel: &Cancel,
) -> Result<Option<(Manifest, i64)>> {
    let lock = lock(repo, "backup", LockKind::Shared, cancel).await?;
    let marked = check_and_mark(repo, options, cancel, &lock).await;
    lock.release().await;
    marked
}

async fn check_and_mark(
    repo: &Repository,
    options: &BackupOptions,
    cancel: &Cancel,
    lock: &RepoLock,
) -> Result<Option<(Manifest, i64)>> {
    let mut member = connect_first_healthy(&options.connect).await?;
    let status = member.status().clone();
    let cluster = format!("{:x}", status.cluster_id);
    let newest = repo
        .list()
        .await?
        .backups
        .into_iter()
        .filter(|m| m.etcd.as_ref().is_some_and(|e| e.cluster_id == cluster))
        .max_by_key(|m| (m.time(), m.id.clone()));
    let Some((newest, recorded)) = newest.and_then(|m| {
        let facts = m.etcd.clone()?;
        // Without a recorded HashKV at its revision the backup cannot be shown equal.
        let recorded = facts.hash_kv.filter(|h| h.revision == facts.revision)?;
        Some((m, recorded))
    }) else {
        return Ok(None);
    };
    // Linearizable: a lagging or cut-off member does not pass for the cluster.
    let revision = member.current_revision().await?;
    if revision != recorded.revision {
        return Ok(None);
    }
    let same = member
        .hash_kv(revision)
        .await?
        .is_some_and(|live| live.hash == recorded.hash && live.compact_revision == recorded.compact_revision);
    if !same {
        return Ok(None);
    }
    let mark = serde_json::json!({
        "same_as": newest.id.to_string(),
        "checked": timestamp(SystemTime::now()),
        "host": options.labels.host,
        "endpoint": status.endpoint,
        "cluster_id": cluster,
        "revision": revision,
    });
    // As before a manifest: a cancellation (or a lost leadership) since the check marks nothing.
    cancel.check()?;
    lock.ensure_held()?;
    repo.mark_unchanged(&newest.id, format!("{mark:#}").into_bytes())
        .await?;
    Ok(Some((newest, revision)))
}

/// The member's HashKV at the snapshot's revision, or why there is none.
async fn live_hash_kv(member: &mut Member, revision: i64) -> Result<(Option<HashKvRecord>, Option<String>)> {
    match member.hash_kv(revision).await? {
        Some(live) => Ok((
            Some(HashKvRecord {
                hash: live.hash,
                revision: live.revision,
                compact_revision: live.compact_revision,
            }),
            None,
        )),
        None => {
            let reason = format!("the member compacted revision {revision} before HashKV was asked");
            warn!("{reason}; the backup cannot be compared with the member");
            Ok((None, Some(reason)))
        }
    }
}
