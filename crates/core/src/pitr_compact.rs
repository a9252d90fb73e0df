//! Keeps point-in-time capture's objects bounded (docs/pitr.md, "Compaction").
//!
//! At the default 1 s period a busy cluster's capture writes up to 86,400 segments a day,
//! each a manifest and a data object. Compaction does three things:
//! - merges each run of consecutive small segments into one of up to `per_merge` captured
//!   segments (an hour's at the defaults, so 24 a day);
//! - removes segments another segment covers whole (a change of leader stores both);
//! - removes segments no base backup can reach any more (all their revisions are at or before
//!   the oldest etcd backup left).
//!
//! A merged segment is stored (data, then manifest) before the segments it replaces are
//! deleted (each manifest first), so every revision stays restorable throughout.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use lifeboat_etcd_data::pitr::{LeaseTtl, SegmentBody};
use lifeboat_repo::{Identity, Manifest, Repository, SegmentFacts, SegmentManifest, SegmentRange, timestamp};
use prost::Message;
use serde::Serialize;
use tracing::info;

use crate::pitr::{cluster_of, etcd_backups, segment_body};
use crate::{Cancel, Result};

/// How segments are merged.
#[derive(Debug, Clone, Copy)]
pub struct CompactOptions {
    /// Captured segments merged into one at most (a merged segment counts those it holds).
    pub per_merge: u64,
    /// Plain bytes of one merged segment at most: a restore holds one segment at a time.
    pub max_bytes: u64,
    pub dry_run: bool,
}

/// 3600 one-second segments (an hour), 64 MiB.
pub const DEFAULT_PER_MERGE: u64 = 3600;
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// Manifests read, and segments merged, at once.
const PARALLEL: usize = 16;

/// One merged segment and what it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merge {
    pub first_revision: i64,
    pub last_revision: i64,
    /// Stored segments it replaced, and the captured segments those held.
    pub replaced: usize,
    pub captured: u64,
}

/// What compaction did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    pub cluster_id: String,
    pub segments_before: usize,
    pub segments_after: usize,
    pub merges: Vec<Merge>,
    /// Segments whole inside another one.
    pub removed_covered: usize,
    /// Segments at or before the oldest etcd backup's revision.
    pub removed_unreachable: usize,
    pub dry_run: bool,
}

/// Compacts the segments of `cluster` (or of the repository's only cluster).
pub async fn compact(
    repo: &Repository,
    cluster: Option<u64>,
    identities: &[Identity],
    options: &CompactOptions,
    cancel: &Cancel,
) -> Result<CompactReport> {
    let listing = cancel.run(async { Ok(repo.list().await?) }).await?;
    let cluster_id = cluster_of(repo, cluster, &listing.backups).await?;
    let segments = repo.segments(cluster_id).await?.ranges;
    let mut report = CompactReport {
        cluster_id: format!("{cluster_id:x}"),
        segments_before: segments.len(),
        dry_run: options.dry_run,
        ..CompactReport::default()
    };
    let (useless, kept) = split_useless(&segments, &listing.backups, cluster_id);
    report.removed_unreachable = useless.unreachable.len();
    report.removed_covered = useless.covered.len();
    // Each read owns what it uses: futures that borrow into a buffered stream are not `Send`
    // for every lifetime, which the agent's tasks need.
    let manifests: Vec<SegmentManifest> = futures::stream::iter(kept.iter().copied())
        .map(|range| {
            let repo = repo.clone();
            async move { Ok::<_, crate::Error>(repo.segment_manifest(cluster_id, range).await?) }
        })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    let runs = runs_to_merge(&manifests, options);
    report.merges = runs.iter().map(|run| merge_of(run)).collect();
    let replaced: usize = runs.iter().map(Vec::len).sum();
    report.segments_after = kept.len() - replaced + runs.len();
    if options.dry_run {
        return Ok(report);
    }
    for run in &runs {
        cancel.check()?;
        merge(repo, cluster_id, run, identities).await?;
    }
    for range in useless.unreachable.iter().chain(&useless.covered) {
        cancel.check()?;
        repo.delete_segment(cluster_id, *range).await?;
    }
    info!(
        cluster = %report.cluster_id,
        before = report.segments_before,
        after = report.segments_after,
        "segments compacted"
    );
    Ok(report)
}

/// Removes (or with `dry_run` counts) the segments of every cluster of `before` that no
/// backup of `staying` can reach: what `forget` leaves behind when it removed old bases.
pub(crate) async fn remove_unreachable(
    repo: &Repository,
    before: &[Manifest],
    staying: &[Manifest],
    dry_run: bool,
    cancel: &Cancel,
) -> Result<usize> {
    let clusters: std::collections::BTreeSet<u64> = before
        .iter()
        .filter_map(|m| u64::from_str_radix(&m.etcd.as_ref()?.cluster_id, 16).ok())
        .collect();
    let mut removed = 0;
    for cluster_id in clusters {
        let segments = repo.segments(cluster_id).await?.ranges;
        let (useless, _) = split_useless(&segments, staying, cluster_id);
        removed += useless.unreachable.len();
        if dry_run {
            continue;
        }
        for range in useless.unreachable {
            cancel.check()?;
            repo.delete_segment(cluster_id, range).await?;
        }
    }
    Ok(removed)
}

/// Segments no restore can use.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Useless {
    pub unreachable: Vec<SegmentRange>,
    pub covered: Vec<SegmentRange>,
}

/// Splits `segments` (sorted) into those no restore can use and the rest. With no etcd backup
/// of the cluster left, none is called unreachable: that is for `forget` to decide.
pub(crate) fn split_useless(
    segments: &[SegmentRange],
    backups: &[Manifest],
    cluster_id: u64,
) -> (Useless, Vec<SegmentRange>) {
    let oldest_base = etcd_backups(backups, cluster_id)
        .first()
        .map(|(revision, _)| *revision);
    let mut useless = Useless::default();
    let mut kept = Vec::new();
    for (index, range) in segments.iter().enumerate() {
        let within = |other: &SegmentRange| other.first <= range.first && other.last >= range.last;
        if oldest_base.is_some_and(|base| range.last <= base) {
            useless.unreachable.push(*range);
        } else if segments
            .iter()
            .enumerate()
            .any(|(other, r)| other != index && within(r))
        {
            useless.covered.push(*range);
        } else {
            kept.push(*range);
        }
    }
    (useless, kept)
}

/// Runs of consecutive segments (each starting at or before the revision after the previous
/// one's last) to merge: each at most `per_merge` captured segments and `max_bytes`.
pub(crate) fn runs_to_merge(
    manifests: &[SegmentManifest],
    options: &CompactOptions,
) -> Vec<Vec<SegmentManifest>> {
    let mut runs = Vec::new();
    let mut run: Vec<SegmentManifest> = Vec::new();
    let (mut captured, mut bytes) = (0u64, 0u64);
    // A run ends when it is full or the next segment does not follow it (a gap: nothing will
    // ever follow it). Only the last run may still grow, and waits.
    let mut end_run = |run: &mut Vec<SegmentManifest>| match run.len() > 1 {
        true => runs.push(std::mem::take(run)),
        false => run.clear(),
    };
    for manifest in manifests {
        let follows = run
            .last()
            .is_some_and(|previous| manifest.first_revision <= previous.last_revision + 1);
        let fits = captured + manifest.facts.merged <= options.per_merge
            && bytes + manifest.artefact.plain_size <= options.max_bytes;
        if !(follows && fits) {
            end_run(&mut run);
            (captured, bytes) = (0, 0);
        }
        captured += manifest.facts.merged;
        bytes += manifest.artefact.plain_size;
        run.push(manifest.clone());
        if captured >= options.per_merge {
            end_run(&mut run);
            (captured, bytes) = (0, 0);
        }
    }
    runs
}

fn merge_of(run: &[SegmentManifest]) -> Merge {
    Merge {
        first_revision: run.first().map_or(0, |m| m.first_revision),
        last_revision: run.iter().map(|m| m.last_revision).max().unwrap_or(0),
        replaced: run.len(),
        captured: run.iter().map(|m| m.facts.merged).sum(),
    }
}

/// Stores one segment holding every revision of `run` (each once), then deletes the run.
async fn merge(
    repo: &Repository,
    cluster_id: u64,
    run: &[SegmentManifest],
    identities: &[Identity],
) -> Result<()> {
    let bodies: Vec<SegmentBody> = futures::stream::iter(run.iter().cloned())
        .map(|manifest| {
            let (repo, identities) = (repo.clone(), identities.to_vec());
            async move { segment_body(&repo, &manifest, &identities).await }
        })
        .buffered(PARALLEL)
        .try_collect()
        .await?;
    let shape = merge_of(run);
    let mut merged = SegmentBody::default();
    let mut leases = BTreeMap::new();
    let mut cursor = shape.first_revision - 1;
    for body in bodies {
        for revision in body.revisions {
            if revision.revision > cursor {
                cursor = revision.revision;
                merged.revisions.push(revision);
            }
        }
        leases.extend(body.leases.iter().map(|l| (l.id, l.ttl)));
    }
    merged.leases = leases.into_iter().map(|(id, ttl)| LeaseTtl { id, ttl }).collect();
    let first = &run[0];
    let facts = SegmentFacts {
        base: first.facts.base.clone(),
        created: timestamp(SystemTime::now()),
        host: first.facts.host.clone(),
        tool: format!("lifeboat {} (compact)", env!("CARGO_PKG_VERSION")),
        revisions: merged.revisions.len() as u64,
        events: merged.revisions.iter().map(|r| r.events.len() as u64).sum(),
        first_received_ms: merged.revisions.first().map(|r| r.received_unix_ms),
        last_received_ms: merged.revisions.last().map(|r| r.received_unix_ms),
        hash_kv: run
            .iter()
            .filter_map(|m| m.facts.hash_kv)
            .max_by_key(|h| h.revision),
        merged: shape.captured,
    };
    let range = SegmentRange {
        first: shape.first_revision,
        last: shape.last_revision,
    };
    repo.put_segment(cluster_id, range, facts, merged.encode_to_vec())
        .await?;
    for manifest in run {
        let replaced = SegmentRange {
            first: manifest.first_revision,
            last: manifest.last_revision,
        };
        // Never the merged one's own key: a segment covering the whole run would have been
        // removed as covered.
        if replaced != range {
            repo.delete_segment(cluster_id, replaced).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lifeboat_repo::{Artefact, BackupId, FORMAT};

    use super::*;

    fn range(first: i64, last: i64) -> SegmentRange {
        SegmentRange { first, last }
    }

    fn segment(first: i64, last: i64, merged: u64, plain_size: u64) -> SegmentManifest {
        SegmentManifest {
            format: FORMAT,
            cluster_id: "00000000000000ab".into(),
            first_revision: first,
            last_revision: last,
            facts: SegmentFacts {
                base: BackupId::new(SystemTime::UNIX_EPOCH),
                created: String::new(),
                host: "h".into(),
                tool: "t".into(),
                revisions: 1,
                events: 1,
                first_received_ms: None,
                last_received_ms: None,
                hash_kv: None,
                merged,
            },
            artefact: Artefact {
                name: "segment".into(),
                key: String::new(),
                plain_size,
                plain_sha256: String::new(),
                stored_size: 0,
                stored_sha256: String::new(),
                compression: "zstd".into(),
                encryption: "age".into(),
            },
        }
    }

    fn shapes(runs: &[Vec<SegmentManifest>]) -> Vec<(i64, i64, usize)> {
        runs.iter()
            .map(|run| {
                let merge = merge_of(run);
                (merge.first_revision, merge.last_revision, merge.replaced)
            })
            .collect()
    }

    #[test]
    fn covered_and_unreachable_segments_are_useless_and_nothing_is_without_a_backup() {
        let segments = [
            range(5, 9),
            range(10, 20),
            range(10, 14),
            range(15, 30),
            range(31, 31),
        ];
        let base = Manifest {
            format: FORMAT,
            id: BackupId::new(SystemTime::UNIX_EPOCH),
            kind: "etcd".into(),
            created: String::new(),
            host: "h".into(),
            tool: "t".into(),
            tags: Vec::new(),
            etcd: Some(lifeboat_repo::EtcdFacts {
                cluster_id: "ab".into(),
                member_id: "1".into(),
                endpoint: String::new(),
                version: "3.6.0".into(),
                revision: 9,
                live_keys: 1,
                hash_kv: None,
                hash_kv_missing: None,
            }),
            cluster: None,
            artefacts: Vec::new(),
            stored_at: None,
            unchanged_at: None,
        };
        let (useless, kept) = split_useless(&segments, std::slice::from_ref(&base), 0xab);
        assert_eq!(useless.unreachable, [range(5, 9)]);
        assert_eq!(useless.covered, [range(10, 14)]);
        assert_eq!(kept, [range(10, 20), range(15, 30), range(31, 31)]);
        let (useless, kept) = split_useless(&segments, &[], 0xab);
        assert!(
            useless.unreachable.is_empty(),
            "no backup of the cluster: nothing judged unreachable"
        );
        assert_eq!(kept.len(), 4);
    }

    #[test]
    fn runs_end_when_full_or_broken_and_the_newest_waits() {
        let options = CompactOptions {
            per_merge: 3,
            max_bytes: 100,
            dry_run: false,
        };
        let manifests = [
            segment(1, 2, 1, 10),
            segment(3, 3, 1, 10),
            segment(3, 5, 1, 10), // overlaps the one before (two leaders): follows it
            segment(6, 6, 1, 10),
            segment(7, 8, 1, 10),
            // A gap: 9 is in no segment. The run before it ends there, unfilled.
            segment(10, 10, 1, 10),
            segment(11, 11, 3, 10), // already merged: fills no run
            segment(12, 12, 1, 95),
            segment(13, 13, 1, 10), // would pass max_bytes with the one before
            segment(14, 14, 1, 10),
        ];
        let runs = runs_to_merge(&manifests, &options);
        assert_eq!(
            shapes(&runs),
            [(1, 5, 3), (6, 8, 2)],
            "the newest (13, 14) waits to fill"
        );
        let merged = runs_to_merge(
            &manifests[..2],
            &CompactOptions {
                per_merge: 2,
                ..options
            },
        );
        assert_eq!(shapes(&merged), [(1, 3, 2)]);
    }
}
