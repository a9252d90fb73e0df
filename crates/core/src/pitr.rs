//! Point-in-time recovery from a repository: which revisions are restorable (a base backup and
//! the contiguous segments after it), which base and segments reach a target revision or time,
//! and the restore itself (docs/pitr.md).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lifeboat_etcd_data::pitr::{Replay, ReplayChunk, SegmentBody};
use lifeboat_etcd_data::{HashRules, Version};
use lifeboat_repo::{HashKvRecord, Identity, Manifest, Repository, SegmentManifest, SegmentRange};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::snapshot_restore::{RestoreOptions, RestoreReport};
use crate::{Cancel, Error, Progress, Result};

/// What to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointTarget {
    Revision(i64),
    /// The last revision received at or before this time.
    Time(SystemTime),
}

/// Revisions restorable without a break: from a base backup's revision to the last revision of
/// the segments that follow it contiguously.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorableRange {
    pub cluster_id: String,
    pub from_revision: i64,
    pub to_revision: i64,
    /// When the first base backup was made and the last captured revision received (RFC 3339).
    pub from_time: String,
    pub to_time: String,
    pub backups: usize,
    pub segments: usize,
}

/// How a time target became a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeResolution {
    pub asked: String,
    pub revision: i64,
    /// When the capture received that revision (or the base backup was made).
    pub received: String,
    /// The next change, received after the time asked: the state asked for lasted until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_received: Option<String>,
}

/// The base and segments a point-in-time restore uses.
#[derive(Debug, Clone)]
pub struct PointPlan {
    pub cluster_id: u64,
    pub revision: i64,
    pub base: Manifest,
    pub segments: Vec<SegmentManifest>,
    pub time: Option<TimeResolution>,
}

/// What the restored data was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PointProof {
    /// The restored data's HashKV at `recorded.revision` equals the live member's.
    Equal {
        recorded: HashKvRecord,
    },
    Differs {
        recorded: HashKvRecord,
        computed: u32,
    },
    NotComparable {
        reason: String,
    },
}

pub fn rfc3339_ms(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix_ms.to_string())
}

fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The segments that carry revision `from` on as far as they reach without a break: at each
/// step the one starting at or before the next revision that reaches furthest. `ranges` sorted.
pub fn chain_from(from: i64, ranges: &[SegmentRange]) -> Vec<SegmentRange> {
    let mut chain = Vec::new();
    let mut cursor = from;
    loop {
        let next = ranges
            .iter()
            .filter(|r| r.first <= cursor + 1 && r.last > cursor)
            .max_by_key(|r| (r.last, std::cmp::Reverse(r.first)));
        match next {
            Some(range) => {
                cursor = range.last;
                chain.push(*range);
            }
            None => return chain,
        }
    }
}

fn reach(from: i64, ranges: &[SegmentRange]) -> i64 {
    chain_from(from, ranges).last().map_or(from, |r| r.last)
}

/// The etcd backups of `cluster_id`, by revision.
pub(crate) fn etcd_backups(backups: &[Manifest], cluster_id: u64) -> Vec<(i64, &Manifest)> {
    let cluster = format!("{cluster_id:x}");
    let mut found: Vec<(i64, &Manifest)> = backups
        .iter()
        .filter_map(|m| {
            let etcd = m.etcd.as_ref()?;
            (etcd.cluster_id == cluster).then_some((etcd.revision, m))
        })
        .collect();
    found.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    found
}

/// The one cluster the repository's etcd backups belong to, or the one given.
pub(crate) async fn cluster_of(repo: &Repository, given: Option<u64>, backups: &[Manifest]) -> Result<u64> {
    if let Some(cluster) = given {
        return Ok(cluster);
    }
    let clusters: BTreeSet<u64> = backups
        .iter()
        .filter_map(|m| u64::from_str_radix(&m.etcd.as_ref()?.cluster_id, 16).ok())
        .collect();
    match clusters.len() {
        1 => Ok(clusters.into_iter().next().unwrap_or_default()),
        0 => Err(Error::Usage {
            message: format!(
                "{} holds no etcd backup: point-in-time recovery starts from one (run `lifeboat backup` and `lifeboat capture`)",
                repo.storage().repo()
            ),
        }),
        n => Err(Error::Usage {
            message: format!(
                "{} holds backups of {n} etcd clusters ({}); give --cluster with one of them",
                repo.storage().repo(),
                clusters
                    .iter()
                    .map(|c| format!("{c:x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The restorable ranges of one cluster (or of the only one).
pub async fn ranges(repo: &Repository, cluster: Option<u64>) -> Result<Vec<RestorableRange>> {
    let listing = repo.list().await?;
    let cluster_id = cluster_of(repo, cluster, &listing.backups).await?;
    ranges_of(repo, cluster_id, &listing.backups).await
}

/// The restorable ranges of `cluster_id`, from `backups` (a listing already read) and the
/// repository's segments.
pub async fn ranges_of(
    repo: &Repository,
    cluster_id: u64,
    backups: &[Manifest],
) -> Result<Vec<RestorableRange>> {
    let segments = repo.segments(cluster_id).await?;
    let backups = etcd_backups(backups, cluster_id);
    let mut merged: Vec<(i64, i64, Vec<&Manifest>)> = Vec::new();
    for (revision, manifest) in backups {
        let end = reach(revision, &segments.ranges);
        match merged.last_mut() {
            Some(last) if revision <= last.1 => {
                last.1 = last.1.max(end);
                last.2.push(manifest);
            }
            _ => merged.push((revision, end, vec![manifest])),
        }
    }
    let mut ranges = Vec::new();
    for (from, to, bases) in merged {
        let chain = chain_from(from, &segments.ranges);
        let used: Vec<&SegmentRange> = chain.iter().filter(|r| r.last <= to).collect();
        let to_time = match used.last() {
            Some(range) => repo
                .segment_manifest(cluster_id, **range)
                .await?
                .facts
                .last_received_ms
                .map(rfc3339_ms)
                .unwrap_or_default(),
            None => bases.last().map(|m| m.created.clone()).unwrap_or_default(),
        };
        ranges.push(RestorableRange {
            cluster_id: format!("{cluster_id:x}"),
            from_revision: from,
            to_revision: to,
            from_time: bases.first().map(|m| m.created.clone()).unwrap_or_default(),
            to_time,
            backups: bases.len(),
            segments: segments
                .ranges
                .iter()
                .filter(|r| r.first > from && r.last <= to)
                .count(),
        });
    }
    Ok(ranges)
}

/// Reads and checks one segment's body.
pub(crate) async fn segment_body(
    repo: &Repository,
    manifest: &SegmentManifest,
    identities: &[Identity],
) -> Result<SegmentBody> {
    let plain = repo.read_segment(manifest, identities).await?;
    let (first, last) = (manifest.first_revision, manifest.last_revision);
    crate::blocking::blocking(move || {
        SegmentBody::decode_checked(&plain, first, last).map_err(|source| Error::SnapshotFile {
            path: format!("segment {first}-{last}").into(),
            source,
        })
    })
    .await
}

/// Resolves a time to the last revision received at or before it.
async fn resolve_time(
    repo: &Repository,
    cluster_id: u64,
    backups: &[(i64, &Manifest)],
    ranges: &[SegmentRange],
    asked: SystemTime,
    identities: &[Identity],
) -> Result<TimeResolution> {
    let asked_ms = unix_ms(asked);
    let backup = backups
        .iter()
        .filter(|(_, m)| unix_ms(m.time().into()) <= asked_ms)
        .max_by_key(|(revision, _)| *revision);
    // Receive times grow with revisions: binary search for the last segment that starts at or
    // before the time asked, reading O(log n) manifests.
    let (mut low, mut high) = (0usize, ranges.len());
    let mut found: Option<SegmentManifest> = None;
    while low < high {
        let middle = (low + high) / 2;
        let manifest = repo.segment_manifest(cluster_id, ranges[middle]).await?;
        if manifest.facts.first_received_ms.is_some_and(|t| t <= asked_ms) {
            found = Some(manifest);
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let mut resolution = backup.map(|(revision, m)| TimeResolution {
        asked: rfc3339_ms(asked_ms),
        revision: *revision,
        received: m.created.clone(),
        next_revision: None,
        next_received: None,
    });
    if let Some(manifest) = found {
        let body = segment_body(repo, &manifest, identities).await?;
        let at = body
            .revisions
            .iter()
            .rposition(|r| r.received_unix_ms <= asked_ms);
        if let Some(at) = at
            && resolution
                .as_ref()
                .is_none_or(|r| body.revisions[at].revision > r.revision)
        {
            let next = body.revisions.get(at + 1);
            let next = match next {
                Some(next) => Some((next.revision, next.received_unix_ms)),
                None => match ranges.get(low) {
                    Some(range) => {
                        let following = repo.segment_manifest(cluster_id, *range).await?;
                        following
                            .facts
                            .first_received_ms
                            .map(|t| (following.first_revision, t))
                    }
                    None => None,
                },
            };
            resolution = Some(TimeResolution {
                asked: rfc3339_ms(asked_ms),
                revision: body.revisions[at].revision,
                received: rfc3339_ms(body.revisions[at].received_unix_ms),
                next_revision: next.map(|n| n.0),
                next_received: next.map(|n| rfc3339_ms(n.1)),
            });
        }
    }
    resolution.ok_or_else(|| Error::Usage {
        message: format!(
            "nothing of cluster {cluster_id:x} is restorable at {}: the oldest backup is newer; `lifeboat pitr ranges` lists what is",
            rfc3339_ms(asked_ms)
        ),
    })
}

/// The repository's backups, and the cluster's ID and segments.
struct ClusterView {
    listing: lifeboat_repo::Listing,
    cluster_id: u64,
    segments: lifeboat_repo::SegmentListing,
}

impl ClusterView {
    async fn read(repo: &Repository, cluster: Option<u64>) -> Result<Self> {
        let listing = repo.list().await?;
        let cluster_id = cluster_of(repo, cluster, &listing.backups).await?;
        let segments = repo.segments(cluster_id).await?;
        Ok(Self {
            listing,
            cluster_id,
            segments,
        })
    }
}

/// Finds the base backup and segments that reach `target`.
pub async fn plan(
    repo: &Repository,
    cluster: Option<u64>,
    target: PointTarget,
    identities: &[Identity],
) -> Result<PointPlan> {
    let view = ClusterView::read(repo, cluster).await?;
    let (listing, cluster_id, segments) = (&view.listing, view.cluster_id, &view.segments);
    let backups = etcd_backups(&listing.backups, cluster_id);
    let (revision, time) = match target {
        PointTarget::Time(asked) => {
            let resolution =
                resolve_time(repo, cluster_id, &backups, &segments.ranges, asked, identities).await?;
            (resolution.revision, Some(resolution))
        }
        PointTarget::Revision(revision) => (revision, None),
    };
    // The newest base from which the segments reach the target.
    let base = backups
        .iter()
        .rev()
        .filter(|(r, _)| *r <= revision)
        .find(|(r, _)| reach(*r, &segments.ranges) >= revision);
    let Some((base_revision, base)) = base else {
        let ranges = ranges(repo, Some(cluster_id)).await?;
        let listed: Vec<String> = ranges
            .iter()
            .map(|r| format!("{}..={}", r.from_revision, r.to_revision))
            .collect();
        return Err(Error::Usage {
            message: format!(
                "revision {revision} of cluster {cluster_id:x} is not restorable (restorable: {}); choose a revision in a range",
                match listed.is_empty() {
                    true => "nothing".to_string(),
                    false => listed.join(", "),
                }
            ),
        });
    };
    let mut chain = Vec::new();
    for range in chain_from(*base_revision, &segments.ranges) {
        if range.first > revision {
            break;
        }
        chain.push(repo.segment_manifest(cluster_id, range).await?);
    }
    Ok(PointPlan {
        cluster_id,
        revision,
        base: (*base).clone(),
        segments: chain,
        time,
    })
}

/// What the history of an object reads: the base backup at or before `since` (or the first of
/// the newest range) and the segments after it to the newest captured revision. `time` is
/// `since` resolved.
pub async fn history_plan(
    repo: &Repository,
    cluster: Option<u64>,
    since: Option<SystemTime>,
    identities: &[Identity],
) -> Result<PointPlan> {
    let view = ClusterView::read(repo, cluster).await?;
    let (listing, cluster_id, segments) = (&view.listing, view.cluster_id, &view.segments);
    let backups = etcd_backups(&listing.backups, cluster_id);
    let newest = ranges_of(repo, cluster_id, &listing.backups).await?.pop();
    let Some(newest) = newest else {
        return Err(Error::Usage {
            message: format!("cluster {cluster_id:x} has no etcd backup to start a history from"),
        });
    };
    let (start, time) = match since {
        Some(asked) => {
            let resolution =
                resolve_time(repo, cluster_id, &backups, &segments.ranges, asked, identities).await?;
            (resolution.revision.max(newest.from_revision), Some(resolution))
        }
        None => (newest.from_revision, None),
    };
    let base = backups
        .iter()
        .rev()
        .find(|(r, _)| *r <= start && reach(*r, &segments.ranges) >= newest.to_revision)
        .map(|(_, m)| (*m).clone())
        .ok_or_else(|| Error::Usage {
            message: format!("no backup of cluster {cluster_id:x} starts a range through revision {start}"),
        })?;
    let base_revision = base.etcd.as_ref().map_or(0, |e| e.revision);
    let mut chain = Vec::new();
    for range in chain_from(base_revision, &segments.ranges) {
        chain.push(repo.segment_manifest(cluster_id, range).await?);
    }
    Ok(PointPlan {
        cluster_id,
        revision: newest.to_revision,
        base,
        segments: chain,
        time,
    })
}

/// Reads a plan's captured revisions after its base, up to its target, a segment at a time.
pub struct ReplayReader<'a> {
    repo: &'a Repository,
    plan: &'a PointPlan,
    identities: &'a [Identity],
    next: usize,
    /// The last revision read: overlapping segments hold some revisions twice.
    cursor: i64,
}

impl std::fmt::Debug for ReplayReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayReader")
            .field("next", &self.next)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a> ReplayReader<'a> {
    pub fn new(repo: &'a Repository, plan: &'a PointPlan, identities: &'a [Identity]) -> Self {
        Self {
            repo,
            plan,
            identities,
            next: 0,
            cursor: plan.base.etcd.as_ref().map_or(0, |e| e.revision),
        }
    }

    /// The next segment's revisions not read yet (`None` after the last segment).
    pub async fn next_chunk(&mut self) -> Result<Option<ReplayChunk>> {
        let Some(manifest) = self.plan.segments.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let body = segment_body(self.repo, manifest, self.identities).await?;
        let mut revisions = Vec::new();
        for revision in body.revisions {
            if revision.revision > self.cursor && revision.revision <= self.plan.revision {
                self.cursor = revision.revision;
                revisions.push(revision);
            }
        }
        Ok(Some(ReplayChunk {
            revisions,
            leases: body.leases,
        }))
    }
}

/// A plan's replay, read from the repository while a restore writes it: a task fetches the
/// next segment while the restore writes the current one, so a restore holds two or three
/// segments (a merged one is at most 64 MiB plain), not every revision since its base.
pub struct SegmentFeed {
    repo: Repository,
    plan: PointPlan,
    identities: Vec<Identity>,
    runtime: tokio::runtime::Handle,
}

impl SegmentFeed {
    /// The feed of `plan`; called inside the runtime its fetches run on.
    pub fn new(repo: &Repository, plan: &PointPlan, identities: &[Identity]) -> Arc<Self> {
        Arc::new(Self {
            repo: repo.clone(),
            plan: plan.clone(),
            identities: identities.to_vec(),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl std::fmt::Debug for SegmentFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFeed")
            .field("base", &self.plan.base.id)
            .field("segments", &self.plan.segments.len())
            .field("revision", &self.plan.revision)
            .finish_non_exhaustive()
    }
}

impl Replay for SegmentFeed {
    /// Called on a blocking thread (a restore's), never on the runtime's workers.
    fn chunks(&self) -> Box<dyn Iterator<Item = lifeboat_etcd_data::Result<ReplayChunk>> + Send + '_> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        let (repo, plan, identities) = (self.repo.clone(), self.plan.clone(), self.identities.clone());
        // Ends when the segments do, at the first error, or when the restore stops reading.
        self.runtime.spawn(async move {
            let mut reader = ReplayReader::new(&repo, &plan, &identities);
            while let Some(next) = reader.next_chunk().await.transpose() {
                let failed = next.is_err();
                if sender.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        Box::new(std::iter::from_fn(move || {
            receiver.blocking_recv().map(|next| {
                next.map_err(|error| lifeboat_etcd_data::Error::ReplaySource {
                    message: error.to_string(),
                })
            })
        }))
    }
}

/// The newest HashKV recorded at or below the target: the base's or a segment's.
pub(crate) fn newest_proof(plan: &PointPlan) -> Option<(HashKvRecord, HashRules)> {
    let version = plan.base.etcd.as_ref().and_then(|e| Version::parse(&e.version));
    let rules = HashRules::of(version);
    plan.segments
        .iter()
        .filter_map(|s| s.facts.hash_kv)
        .chain(plan.base.etcd.as_ref().and_then(|e| e.hash_kv))
        .filter(|h| h.revision <= plan.revision)
        .max_by_key(|h| h.revision)
        .map(|h| (h, rules))
}

/// Restores `target` into `options.data_dir`: the base backup with the segments replayed
/// natively, then the restored data's HashKV compared with the newest one the live member
/// answered at or below the target.
pub async fn restore_to_point(
    repo: &Repository,
    plan: &PointPlan,
    identities: &[Identity],
    options: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(RestoreReport, PointProof)> {
    let options = RestoreOptions {
        replay: Some(SegmentFeed::new(repo, plan, identities)),
        ..options.clone()
    };
    let (_, report) =
        crate::backups::restore_backup(repo, &plan.base.id, identities, &options, progress, cancel).await?;
    let proof = match newest_proof(plan) {
        None => PointProof::NotComparable {
            reason: "no HashKV was recorded at or below the target".into(),
        },
        Some((recorded, rules)) => {
            let db = options.data_dir.join("member/snap/db");
            let computed = crate::blocking::blocking(move || {
                crate::snapshot_file::hash_kv(
                    &db,
                    Some(recorded.revision),
                    Some(recorded.compact_revision),
                    rules,
                )
            })
            .await;
            match computed {
                Ok(computed) if computed.hash == recorded.hash => PointProof::Equal { recorded },
                Ok(computed) => PointProof::Differs {
                    recorded,
                    computed: computed.hash,
                },
                Err(error) => PointProof::NotComparable {
                    reason: error.to_string(),
                },
            }
        }
    };
    Ok((report, proof))
}

/// A time given as RFC 3339 or as a duration ago (`90s`, `15m`).
pub fn parse_time(text: &str, now: SystemTime) -> Option<SystemTime> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(time.into());
    }
    let ago: Duration = humantime::parse_duration(text.strip_suffix(" ago").unwrap_or(text)).ok()?;
    now.checked_sub(ago)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: i64, last: i64) -> SegmentRange {
        SegmentRange { first, last }
    }

    #[test]
    fn chains_follow_contiguous_and_overlapping_segments() {
        let ranges = [r(11, 20), r(15, 30), r(21, 25), r(31, 31), r(33, 40)];
        assert_eq!(chain_from(10, &ranges), vec![r(11, 20), r(15, 30), r(31, 31)]);
        assert_eq!(reach(10, &ranges), 31);
        assert_eq!(reach(32, &ranges), 40);
        assert_eq!(reach(9, &ranges), 9, "a segment after a hole is not reached");
        assert_eq!(reach(40, &ranges), 40);
    }

    #[test]
    fn times_parse_as_rfc3339_or_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("1970-01-12T13:46:40Z", now),
            Some(UNIX_EPOCH + Duration::from_secs(1_000_000))
        );
        assert_eq!(parse_time("90s", now), Some(now - Duration::from_secs(90)));
        assert_eq!(parse_time("15m ago", now), Some(now - Duration::from_secs(900)));
        assert_eq!(parse_time("yesterday", now), None);
    }
}
