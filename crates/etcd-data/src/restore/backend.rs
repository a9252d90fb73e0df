//! The restored `db`: every bucket of the snapshot copied into a fresh compact file, except
//! membership (replaced by the new cluster's), `meta/consistent_index` and `meta/term` (set to
//! the new raft log's), and, with `--bump-revision N --mark-compacted`, one empty marker past
//! the last revision plus a scheduled compaction at it. With a [`Replay`], captured revisions
//! follow the snapshot's in the `key` bucket and the `lease` bucket is rebuilt for them.

use std::collections::BTreeMap;
use std::fs::File;

use lifeboat_bbolt::{BucketRoot, BucketWriter, BulkWriter, Db, Entry, Source};

use super::members::Cluster;
use super::raft::{TERM, member_json};
use crate::pitr::{Replay, ReplayReport, Replayer};
use crate::status::{KEY_BUCKET, integrity_error, main_revision};
use crate::{Error, Result, Version};

const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const CLUSTER: &[u8] = b"cluster";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";
const STORAGE_VERSION: &[u8] = b"storageVersion";

/// What the rewrite did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendReport {
    /// The snapshot's revision (main revision of its last `key` entry).
    pub revision: i64,
    /// With `--bump-revision`: the revision of the marker, where the compaction is scheduled.
    pub bumped_to: Option<i64>,
    /// Entries of the `key` bucket copied.
    pub revisions: u64,
    /// Bytes of the new file.
    pub size: u64,
    /// The etcd version the snapshot records (its storage version, else its cluster version).
    pub snapshot_version: Option<String>,
    /// What a point-in-time restore replayed after the snapshot's revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<ReplayReport>,
}

/// How a source bucket is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    Copy,
    /// Gathered, edited, written at the end.
    Edit,
    /// Dropped and rebuilt.
    Replace,
}

fn treatment(name: &[u8], replaying: bool) -> Treatment {
    match name {
        META => Treatment::Edit,
        LEASE if replaying => Treatment::Edit,
        MEMBERS | MEMBERS_REMOVED => Treatment::Replace,
        _ => Treatment::Copy,
    }
}

struct Rewrite<'f, 'r> {
    writer: BulkWriter<'f>,
    replayer: Option<Replayer<'r>>,
    roots: Vec<(Vec<u8>, BucketRoot)>,
    current: Option<(Vec<u8>, Treatment, BucketWriter)>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    last_revision_key: Option<Vec<u8>>,
    revisions: u64,
    bump: Option<i64>,
    cluster_version: Option<Vec<u8>>,
    error: Option<Error>,
}

/// The revision key etcd writes: main and sub big-endian around `'_'`.
fn revision_key(main: i64, sub: i64) -> Vec<u8> {
    [&main.to_be_bytes()[..], b"_", &sub.to_be_bytes()].concat()
}

impl Rewrite<'_, '_> {
    fn entry(&mut self, entry: &Entry<'_>) -> Result<()> {
        match entry.depth {
            0 => {
                self.end_bucket()?;
                let mode = treatment(entry.key, self.replayer.is_some());
                self.current = Some((entry.key.to_vec(), mode, self.writer.bucket()));
            }
            1 => {
                let Some((name, mode, bucket)) = self.current.as_mut() else {
                    return Ok(());
                };
                if entry.is_bucket {
                    return Err(Error::NestedBucket {
                        bucket: String::from_utf8_lossy(name).into_owned(),
                    });
                }
                if name == CLUSTER && entry.key == CLUSTER_VERSION {
                    self.cluster_version = Some(entry.value.to_vec());
                }
                match mode {
                    Treatment::Copy => self.writer.put(bucket, entry.key, entry.value, false)?,
                    Treatment::Edit if name == LEASE => {
                        if let Some(replayer) = self.replayer.as_mut() {
                            replayer.base_lease(entry.key, entry.value);
                        }
                    }
                    Treatment::Edit => {
                        self.meta.insert(entry.key.to_vec(), entry.value.to_vec());
                    }
                    Treatment::Replace => {}
                }
                if name == KEY_BUCKET {
                    if let Some(replayer) = self.replayer.as_mut() {
                        replayer.base_record(entry.key, entry.value)?;
                    }
                    self.revisions += 1;
                    let last = self.last_revision_key.get_or_insert_with(Vec::new);
                    last.clear();
                    last.extend_from_slice(entry.key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The last revision in the snapshot.
    fn revision(&self) -> Result<i64> {
        match &self.last_revision_key {
            None => Ok(0),
            Some(key) => main_revision(key).ok_or_else(|| Error::BadRevisionKey {
                key: hex::encode(key),
            }),
        }
    }

    fn end_bucket(&mut self) -> Result<()> {
        let Some((name, mode, mut bucket)) = self.current.take() else {
            return Ok(());
        };
        if mode != Treatment::Copy {
            return Ok(());
        }
        if name == KEY_BUCKET
            && let Some(mut replayer) = self.replayer.take()
        {
            let base = self.revision()?;
            let (writer, last, revisions) =
                (&mut self.writer, &mut self.last_revision_key, &mut self.revisions);
            replayer.records(base, |key, value| {
                writer.put(&mut bucket, key, value, false)?;
                *revisions += 1;
                *last = Some(key.to_vec());
                Ok(())
            })?;
            self.replayer = Some(replayer);
        }
        if name == KEY_BUCKET
            && let Some(n) = self.bump
        {
            let marker = self.revision()?.saturating_add(n);
            self.writer
                .put(&mut bucket, &revision_key(marker, 0), &[], false)?;
        }
        let root = self.writer.finish_bucket(bucket)?;
        self.roots.push((name, root));
        Ok(())
    }

    fn write_bucket(
        &mut self,
        name: &[u8],
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let mut bucket = self.writer.bucket();
        for (key, value) in entries {
            self.writer.put(&mut bucket, &key, &value, false)?;
        }
        let root = self.writer.finish_bucket(bucket)?;
        self.roots.push((name.to_vec(), root));
        Ok(())
    }
}

/// Rewrites `source` into `out` for `cluster`, with `replay`'s revisions after the source's.
/// `bump` is `--bump-revision` (with `--mark-compacted`), counted from the last revision
/// written. The source's consistency check must be clean.
pub fn rewrite_backend<S: Source + ?Sized>(
    source: &Db<'_, S>,
    out: &File,
    cluster: &Cluster,
    bump: Option<u64>,
    replay: Option<&dyn Replay>,
) -> Result<BackendReport> {
    let mut rewrite = Rewrite {
        writer: BulkWriter::new(out, source.page_size()),
        replayer: replay.map(Replayer::new),
        roots: Vec::new(),
        current: None,
        meta: BTreeMap::new(),
        last_revision_key: None,
        revisions: 0,
        bump: bump.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        cluster_version: None,
        error: None,
    };
    let findings = source.check(|entry| {
        if rewrite.error.is_none()
            && let Err(error) = rewrite.entry(&entry)
        {
            rewrite.error = Some(error);
        }
    });
    if !findings.is_empty() {
        return Err(integrity_error(findings));
    }
    if let Some(error) = rewrite.error.take() {
        return Err(error);
    }
    rewrite.end_bucket()?;
    let revision = rewrite.revision()?;
    if !rewrite.roots.iter().any(|(name, _)| name == KEY_BUCKET) {
        return Err(Error::NotEtcd);
    }
    // A 3.6+ server records its storage version too; a restore keeps it, as etcdutl does.
    let snapshot_version = [
        rewrite.meta.get(STORAGE_VERSION),
        rewrite.cluster_version.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|value| Version::parse(std::str::from_utf8(value).ok()?));
    if let Some(version) = snapshot_version {
        version.check_supported("the snapshot")?;
    }
    let bumped_to = rewrite.bump.map(|n| revision.saturating_add(n));

    // The new raft log's position: index = member count, term 1 (what etcdutl writes).
    let commit = cluster.members.len() as u64;
    let mut meta = std::mem::take(&mut rewrite.meta);
    meta.insert(b"consistent_index".to_vec(), commit.to_be_bytes().to_vec());
    meta.insert(b"term".to_vec(), TERM.to_be_bytes().to_vec());
    if let Some(marker) = bumped_to {
        meta.insert(b"scheduledCompactRev".to_vec(), revision_key(marker, 0));
    }
    rewrite.write_bucket(META, meta)?;
    let members: BTreeMap<Vec<u8>, Vec<u8>> = cluster
        .members
        .iter()
        .map(|m| (format!("{:x}", m.id).into_bytes(), member_json(m)))
        .collect();
    rewrite.write_bucket(MEMBERS, members)?;
    rewrite.write_bucket(MEMBERS_REMOVED, [])?;
    let replayed = match rewrite.replayer.take() {
        Some(replayer) => {
            let (leases, report) = replayer.finish();
            rewrite.write_bucket(LEASE, leases)?;
            Some(report)
        }
        None => None,
    };

    let Rewrite {
        writer,
        mut roots,
        revisions,
        ..
    } = rewrite;
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    let size = writer.finish(roots)?;
    Ok(BackendReport {
        revision,
        bumped_to,
        revisions,
        size,
        snapshot_version: snapshot_version.map(|v| v.to_string()),
        replayed,
    })
}
