//! `capture`: one watch over the whole key space, from the newest backup's revision (or the
//! last stored segment's) on, sealed into segments every `segment` period (docs/pitr.md).
//!
//! Each segment covers a contiguous range of revisions: from the revision after the previous
//! one's last to the last revision it holds events of (every revision has at least one event).
//! A watch that cannot start because its revision was compacted takes a full backup at once
//! and records the gap; nothing is ever dropped silently.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lifeboat_etcd_conn::{ConnectOptions, Member, WatchBatch, WatchedRevision, connect_first_healthy};
use lifeboat_etcd_data::KeyValue;
use lifeboat_etcd_data::pitr::{CapturedEvent, CapturedRevision, LeaseTtl, SegmentBody};
use lifeboat_repo::{
    BackupId, GapRecord, HashKvRecord, Repository, SegmentFacts, SegmentManifest, SegmentRange, timestamp,
};
use prost::Message;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::backup::{BackupOptions, Labels};
use crate::capture_upload::{PendingSegment, UploadQueue};
use crate::{Cancel, Error, NoProgress, Result};

/// How a capture runs.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub connect: ConnectOptions,
    pub labels: Labels,
    /// A segment is sealed this often (when it holds anything)...
    pub segment: Duration,
    /// ...or as soon as its plain events reach this many bytes.
    pub segment_bytes: usize,
    /// The member's HashKV at a segment's last revision is asked at most this often (zero: for
    /// every segment). It makes the member hash its whole key space.
    pub hash_every: Duration,
    /// Plain bytes of sealed segments held while the storage does not take them; past it the
    /// watch pauses (etcd keeps the history until it compacts).
    pub buffer_bytes: usize,
}

/// Defaults: 1 s segments of at most 8 MiB, HashKV every 5 minutes, 256 MiB buffered.
pub const DEFAULT_SEGMENT: Duration = Duration::from_secs(1);
pub const DEFAULT_SEGMENT_BYTES: usize = 8 << 20;
pub const DEFAULT_HASH_EVERY: Duration = Duration::from_secs(300);
pub const DEFAULT_BUFFER_BYTES: usize = 256 << 20;

/// What a capture has done so far, for metrics and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStatus {
    pub cluster_id: u64,
    /// The last revision stored in a segment (or the base backup's, before the first).
    pub stored_revision: i64,
    /// Every write etcd acknowledged before this time is stored: now less this is the capture's
    /// lag, what a loss of the cluster now would lose at most.
    pub stored_until: Option<SystemTime>,
    pub segments_stored: u64,
    pub gaps: u64,
    /// Plain bytes waiting for the storage.
    pub buffered_bytes: u64,
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The revisions held for the next segment.
#[derive(Default)]
struct Open {
    revisions: Vec<CapturedRevision>,
    bytes: usize,
    leases: HashSet<i64>,
    /// The watch said it had sent everything up to this time: this segment and those before
    /// it hold every write acknowledged before it.
    covers: Option<SystemTime>,
}

/// Where a capture continues.
struct ResumePoint {
    base: BackupId,
    /// The last revision stored.
    revision: i64,
    /// Writes before this time are stored (the base backup's time, or when the last stored
    /// segment's last revision was received).
    stored_until: SystemTime,
}

/// Where capture continues: after the newest etcd backup of the cluster, or after the last
/// stored segment when that is later. `None` when the cluster has no etcd backup yet.
async fn resume_point(repo: &Repository, cluster_id: u64) -> Result<Option<ResumePoint>> {
    let listing = repo.list().await?;
    let cluster = format!("{cluster_id:x}");
    let newest = listing
        .backups
        .iter()
        .filter_map(|m| m.etcd.as_ref().map(|e| (m, e)))
        .filter(|(_, e)| e.cluster_id == cluster)
        .max_by_key(|(m, e)| (e.revision, m.id.clone()));
    let Some((base, facts)) = newest else {
        return Ok(None);
    };
    let segments = repo.segments(cluster_id).await?;
    let base_point = ResumePoint {
        base: base.id.clone(),
        revision: facts.revision,
        stored_until: SystemTime::from(base.time()),
    };
    let Some(newest) = segments.ranges.iter().max_by_key(|r| r.last) else {
        return Ok(Some(base_point));
    };
    if newest.last <= facts.revision {
        return Ok(Some(base_point));
    }
    let received = repo
        .segment_manifest(cluster_id, *newest)
        .await?
        .facts
        .last_received_ms
        .map(|ms| UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    Ok(Some(ResumePoint {
        revision: newest.last,
        stored_until: received.unwrap_or(base_point.stored_until),
        ..base_point
    }))
}

/// A full backup now: the new base after a gap or for a cluster without one.
async fn full_backup(repo: &Repository, options: &CaptureOptions, cancel: &Cancel) -> Result<ResumePoint> {
    let backup = BackupOptions {
        connect: options.connect.clone(),
        labels: options.labels.clone(),
    };
    let manifest = crate::backup::backup(repo, &backup, &NoProgress, cancel).await?;
    let revision = manifest.etcd.as_ref().map_or(0, |e| e.revision);
    info!(id = %manifest.id, revision, "capture took a full backup as its base");
    Ok(ResumePoint {
        stored_until: SystemTime::from(manifest.time()),
        base: manifest.id,
        revision,
    })
}

/// Runs until `cancel`, then seals what it holds and stores what is queued (bounded by
/// `segment` ten times over). Fails when etcd or the repository cannot be reached at the start.
pub async fn capture(
    repo: &Repository,
    options: &CaptureOptions,
    status: &watch::Sender<CaptureStatus>,
    cancel: &Cancel,
) -> Result<()> {
    let mut member = connect_first_healthy(&options.connect).await?;
    let cluster_id = member.status().cluster_id;
    let start = match resume_point(repo, cluster_id).await? {
        Some(point) => point,
        None => full_backup(repo, options, cancel).await?,
    };
    status.send_modify(|s| {
        s.cluster_id = cluster_id;
        s.stored_revision = start.revision;
        s.stored_until = Some(start.stored_until);
    });
    let queue = UploadQueue::new(options.buffer_bytes);
    let stored = |manifest: &SegmentManifest, covers: Option<SystemTime>| {
        status.send_modify(|s| {
            s.stored_revision = s.stored_revision.max(manifest.last_revision);
            s.stored_until = s.stored_until.max(covers);
            s.segments_stored += 1;
        });
    };
    let uploads = Cancel::new();
    let uploading = queue.run(repo, &uploads, &stored);
    let capturing = async {
        let mut capturer = Capturer {
            repo,
            options,
            member: &mut member,
            queue: &queue,
            status,
            cancel,
            cluster_id,
            base: start.base,
            last: start.revision,
            open: Open::default(),
            leases: BTreeMap::new(),
            last_hash: None,
        };
        let outcome = capturer.run().await;
        // Whatever was sealed is stored before the capture ends, within a bound.
        let flush = options.segment.saturating_mul(10).max(Duration::from_secs(10));
        if tokio::time::timeout(flush, queue.drained()).await.is_err() {
            warn!(
                queued_bytes = queue.bytes(),
                "capture ended with segments the storage did not take"
            );
        }
        uploads.cancel("the capture's end");
        outcome
    };
    let (outcome, ()) = tokio::join!(capturing, uploading);
    outcome
}

/// One capture's state between seals.
struct Capturer<'a> {
    repo: &'a Repository,
    options: &'a CaptureOptions,
    member: &'a mut Member,
    queue: &'a UploadQueue,
    status: &'a watch::Sender<CaptureStatus>,
    cancel: &'a Cancel,
    cluster_id: u64,
    /// The backup the current chain of segments follows.
    base: BackupId,
    /// The last revision sealed (or the base's).
    last: i64,
    open: Open,
    /// Granted TTLs asked so far; `None` for a lease gone before it was asked.
    leases: BTreeMap<i64, Option<i64>>,
    last_hash: Option<std::time::Instant>,
}

impl Capturer<'_> {
    async fn run(&mut self) -> Result<()> {
        'watch: loop {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            self.open = Open::default();
            let from = self.last + 1;
            let member = &mut *self.member;
            let mut watch = match self
                .cancel
                .run(async { Ok(member.watch_keyspace(from).await?) })
                .await
            {
                Ok(watch) => watch,
                Err(Error::Interrupted { .. }) => return Ok(()),
                Err(Error::Etcd(lifeboat_etcd_conn::Error::WatchCompacted { compact_revision, .. })) => {
                    self.record_gap(compact_revision).await?;
                    continue 'watch;
                }
                Err(error) => {
                    // etcd restarting or unreachable: the history waits in etcd until it compacts.
                    warn!(%error, "the watch could not start; retrying");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => continue 'watch,
                    }
                }
            };
            let mut tick = tokio::time::interval(self.options.segment);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let batch = tokio::select! {
                    _ = self.cancel.cancelled() => return self.seal().await,
                    _ = tick.tick() => {
                        self.seal().await?;
                        self.status.send_modify(|s| s.buffered_bytes = self.queue.bytes() as u64);
                        if self.queue.is_full() {
                            warn!(queued_bytes = self.queue.bytes(), "the storage is not taking segments: the watch pauses until it does");
                            drop(watch);
                            tokio::select! {
                                _ = self.cancel.cancelled() => return Ok(()),
                                _ = self.queue.drained_to_half() => {}
                            }
                            continue 'watch;
                        }
                        // Asked after each seal: its answer proves the capture current.
                        if let Err(error) = watch.request_progress().await {
                            warn!(%error, "the watch broke; resuming after the last sealed revision");
                            continue 'watch;
                        }
                        continue;
                    }
                    batch = watch.next() => batch,
                };
                let batch = match batch {
                    Ok(Some(batch)) => batch,
                    Ok(None) => {
                        warn!("the watch ended; resuming after the last sealed revision");
                        self.seal().await?;
                        continue 'watch;
                    }
                    // etcd creates the watch, then cancels it when its start was compacted.
                    Err(lifeboat_etcd_conn::Error::WatchCompacted { compact_revision, .. }) => {
                        self.seal().await?;
                        self.record_gap(compact_revision).await?;
                        continue 'watch;
                    }
                    Err(error) => {
                        warn!(%error, "the watch broke; resuming after the last sealed revision");
                        self.seal().await?;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue 'watch;
                    }
                };
                let now = SystemTime::now();
                match batch {
                    WatchBatch::Progress(revision) => {
                        let held = self.open.revisions.last().map_or(self.last, |r| r.revision);
                        if revision <= held {
                            self.caught_up(now);
                        }
                    }
                    WatchBatch::Revisions(revisions) => {
                        for revision in revisions {
                            self.add(revision, unix_ms(now)).await;
                        }
                        if self.open.bytes >= self.options.segment_bytes {
                            self.seal().await?;
                        }
                    }
                }
            }
        }
    }

    /// The history after `last` is gone: a full backup becomes the new base and the gap
    /// between is recorded, so no restore is ever offered inside it.
    async fn record_gap(&mut self, compact_revision: i64) -> Result<()> {
        let from = self.last + 1;
        warn!(
            from,
            compact_revision, "the capture's start was compacted: taking a full backup, recording a gap"
        );
        let ResumePoint {
            base: id,
            revision,
            stored_until,
        } = full_backup(self.repo, self.options, self.cancel).await?;
        let gap = GapRecord {
            cluster_id: format!("{:016x}", self.cluster_id),
            from_revision: from,
            to_revision: revision.max(from),
            compact_revision,
            base: id.clone(),
            detected: timestamp(SystemTime::now()),
            reason: format!(
                "the watch could not resume at revision {from}: the member had compacted up to {compact_revision}"
            ),
        };
        self.repo.put_gap(self.cluster_id, &gap).await?;
        self.status.send_modify(|s| {
            s.gaps += 1;
            s.stored_revision = revision;
            s.stored_until = s.stored_until.max(Some(stored_until));
        });
        (self.base, self.last) = (id, revision);
        Ok(())
    }

    /// The watch has sent every revision up to the member's current one, as of `now`: what is
    /// held covers every write acknowledged before `now`, stored once it is.
    fn caught_up(&mut self, now: SystemTime) {
        if !self.open.revisions.is_empty() {
            self.open.covers = Some(now);
        } else if !self.queue.cover_newest(now) {
            self.status
                .send_modify(|s| s.stored_until = s.stored_until.max(Some(now)));
        }
    }

    /// Adds one revision; a lease seen for the first time has its TTL asked.
    async fn add(&mut self, revision: WatchedRevision, received_unix_ms: i64) {
        let mut events = Vec::with_capacity(revision.events.len());
        for event in revision.events {
            if event.lease != 0 && !event.delete {
                self.learn_lease(event.lease).await;
                self.open.leases.insert(event.lease);
            }
            let kv = match event.delete {
                true => KeyValue {
                    key: event.key,
                    ..KeyValue::default()
                },
                false => KeyValue {
                    key: event.key,
                    create_revision: event.create_revision,
                    mod_revision: event.mod_revision,
                    version: event.version,
                    value: event.value,
                    lease: event.lease,
                },
            };
            let kv = kv.encode_to_vec();
            self.open.bytes += kv.len() + 8;
            events.push(CapturedEvent {
                delete: event.delete,
                kv,
            });
        }
        self.open.revisions.push(CapturedRevision {
            revision: revision.revision,
            received_unix_ms,
            events,
        });
    }

    async fn learn_lease(&mut self, id: i64) {
        let std::collections::btree_map::Entry::Vacant(unseen) = self.leases.entry(id) else {
            return;
        };
        match self.member.lease_granted_ttl(id).await {
            Ok(ttl) => {
                if ttl.is_none() {
                    warn!(
                        lease = format!("{id:x}"),
                        "a lease expired before its TTL could be asked; a restore keeps its keys without it"
                    );
                }
                unseen.insert(ttl);
            }
            // Asked again at the lease's next event.
            Err(error) => warn!(%error, lease = format!("{id:x}"), "a lease's TTL could not be asked"),
        }
    }

    /// The member's HashKV at `revision`, when one is due.
    async fn hash_kv_if_due(&mut self, revision: i64) -> Option<HashKvRecord> {
        if self
            .last_hash
            .is_some_and(|at| at.elapsed() < self.options.hash_every)
        {
            return None;
        }
        match self.member.hash_kv(revision).await {
            Ok(Some(live)) => {
                self.last_hash = Some(std::time::Instant::now());
                Some(HashKvRecord {
                    hash: live.hash,
                    revision: live.revision,
                    compact_revision: live.compact_revision,
                })
            }
            Ok(None) => None,
            Err(error) => {
                warn!(%error, "HashKV at the segment's last revision could not be asked");
                None
            }
        }
    }

    /// Seals what is open into a segment after `last` and queues it.
    async fn seal(&mut self) -> Result<()> {
        let Some(newest) = self.open.revisions.last().map(|r| r.revision) else {
            return Ok(());
        };
        let open = std::mem::take(&mut self.open);
        let range = SegmentRange {
            first: self.last + 1,
            last: newest,
        };
        let hash_kv = self.hash_kv_if_due(newest).await;
        let body = SegmentBody {
            leases: open
                .leases
                .iter()
                .filter_map(|id| {
                    Some(LeaseTtl {
                        id: *id,
                        ttl: (*self.leases.get(id)?)?,
                    })
                })
                .collect(),
            revisions: open.revisions,
        };
        let facts = SegmentFacts {
            base: self.base.clone(),
            created: timestamp(SystemTime::now()),
            host: self.options.labels.host.clone(),
            tool: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            revisions: body.revisions.len() as u64,
            events: body.revisions.iter().map(|r| r.events.len() as u64).sum(),
            first_received_ms: body.revisions.first().map(|r| r.received_unix_ms),
            last_received_ms: body.revisions.last().map(|r| r.received_unix_ms),
            hash_kv,
            merged: 1,
        };
        self.queue.push(PendingSegment {
            cluster_id: self.cluster_id,
            range,
            facts,
            plain: body.encode_to_vec(),
            covers: open.covers,
        });
        self.last = newest;
        Ok(())
    }
}
