//! How far a cluster went past its backups. The agent records in the repository the newest
//! revision it saw each cluster at (a revision mark); a recovery sizes its revision bump from it
//! instead of the blind 1,000,000,000 (docs/recover.md, "Why the revision bump").

use std::time::SystemTime;

use lifeboat_repo::{Manifest, Repository};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Result;

/// Added to every measured bump: far more writes than a cluster makes between two looks.
pub const BUMP_MARGIN: u64 = 1_000_000;

/// The newest revision a cluster was seen at, and when (stored as `revisions/<cluster>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionMark {
    /// The cluster's ID in hex, as backups name it.
    pub cluster_id: String,
    pub revision: i64,
    /// RFC 3339.
    pub observed: String,
}

/// Records that cluster `cluster_id` was at `revision` at `now`.
pub async fn record(repo: &Repository, cluster_id: u64, revision: i64, now: SystemTime) -> Result<()> {
    let mark = RevisionMark {
        cluster_id: format!("{cluster_id:x}"),
        revision,
        observed: OffsetDateTime::from(now).format(&Rfc3339).unwrap_or_default(),
    };
    let json = serde_json::to_vec_pretty(&mark).unwrap_or_default();
    repo.put_revision_mark(cluster_id, json).await?;
    Ok(())
}

/// A bump measured from a revision mark, and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredBump {
    pub bump: u64,
    pub mark: RevisionMark,
    /// Revisions seen past the snapshot.
    pub seen: u64,
    /// Revisions allowed for between the mark and now, at twice the rate seen.
    pub unseen: u64,
}

impl std::fmt::Display for MeasuredBump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the agent saw cluster {} at revision {} at {}, {} past the snapshot; {} more allowed for since then at twice that rate, plus {BUMP_MARGIN}",
            self.bump, self.mark.cluster_id, self.mark.revision, self.mark.observed, self.seen, self.unseen
        )
    }
}

/// The bump for restoring `backup` at `now`: the revisions the cluster was seen to go past the
/// snapshot, those it may have made since it was last seen (at twice the rate seen between the
/// snapshot and the mark), and [`BUMP_MARGIN`]. `None` when nothing was recorded after the
/// snapshot: then nothing is known. A mark that does not name the backup's cluster is ignored.
pub async fn measured_bump(
    repo: &Repository,
    backup: &Manifest,
    now: SystemTime,
) -> Result<Option<MeasuredBump>> {
    let Some(etcd) = &backup.etcd else {
        return Ok(None);
    };
    let Ok(cluster_id) = u64::from_str_radix(&etcd.cluster_id, 16) else {
        return Ok(None);
    };
    let Some(bytes) = repo.revision_mark(cluster_id).await? else {
        return Ok(None);
    };
    let Ok(mark) = serde_json::from_slice::<RevisionMark>(&bytes) else {
        return Ok(None);
    };
    Ok(bump_from(&mark, cluster_id, etcd.revision, &backup.created, now))
}

fn bump_from(
    mark: &RevisionMark,
    cluster_id: u64,
    snapshot_revision: i64,
    snapshot_created: &str,
    now: SystemTime,
) -> Option<MeasuredBump> {
    // Checked against where it was found: the key names the cluster the mark must name.
    if u64::from_str_radix(&mark.cluster_id, 16).ok()? != cluster_id || mark.revision <= snapshot_revision {
        return None;
    }
    let observed = OffsetDateTime::parse(&mark.observed, &Rfc3339).ok()?;
    let created = OffsetDateTime::parse(snapshot_created, &Rfc3339).ok()?;
    let now = OffsetDateTime::from(now);
    if observed <= created || observed > now {
        return None;
    }
    let seen = u64::try_from(mark.revision - snapshot_revision).ok()?;
    let seen_over = (observed - created).as_seconds_f64();
    let since = (now - observed).as_seconds_f64();
    let unseen = (2.0 * seen as f64 / seen_over * since).ceil();
    let unseen = if unseen.is_finite() && unseen < 1e15 {
        unseen as u64
    } else {
        return None;
    };
    Some(MeasuredBump {
        bump: seen.saturating_add(unseen).saturating_add(BUMP_MARGIN),
        mark: mark.clone(),
        seen,
        unseen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(cluster: &str, revision: i64, observed: &str) -> RevisionMark {
        RevisionMark {
            cluster_id: cluster.into(),
            revision,
            observed: observed.into(),
        }
    }

    fn at(text: &str) -> SystemTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap().into()
    }

    #[test]
    fn the_bump_covers_what_was_seen_and_twice_the_rate_since() {
        // 1,000 revisions in the 100 s from the snapshot to the mark; 50 s later: 2 × 10/s × 50 s.
        let measured = bump_from(
            &mark("ab", 11_000, "2026-01-01T00:01:40Z"),
            0xab,
            10_000,
            "2026-01-01T00:00:00Z",
            at("2026-01-01T00:02:30Z"),
        )
        .unwrap();
        assert_eq!((measured.seen, measured.unseen), (1_000, 1_000));
        assert_eq!(measured.bump, 2_000 + BUMP_MARGIN);
    }

    #[test]
    fn a_mark_of_another_cluster_an_older_revision_or_a_bad_time_is_no_measure() {
        let created = "2026-01-01T00:00:00Z";
        let now = at("2026-01-02T00:00:00Z");
        let cases = [
            mark("cd", 11_000, "2026-01-01T00:01:40Z"),
            mark("ab", 10_000, "2026-01-01T00:01:40Z"),
            mark("ab", 11_000, "2025-12-31T00:00:00Z"),
            mark("ab", 11_000, "2026-01-03T00:00:00Z"),
            mark("ab", 11_000, "yesterday"),
            mark("not hex", 11_000, "2026-01-01T00:01:40Z"),
        ];
        for case in cases {
            assert_eq!(bump_from(&case, 0xab, 10_000, created, now), None, "{case:?}");
        }
    }
}
