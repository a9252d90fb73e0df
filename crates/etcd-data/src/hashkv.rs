//! etcd's `HashKV` (what `etcdctl endpoint hashkv` prints), computed from a bbolt file.
//!
//! etcd 3.4 to 3.7 (`mvcc.store.HashByRev`) hash the `key` bucket's name, then the key and value
//! of every entry up to revision R, with CRC-32C. Entries at or below the compact revision are
//! included only if compaction at R would keep them (each user key's latest revision at R, unless
//! that is a tombstone), and all of them when it would keep none. Since 3.4.34 and 3.5.16 (and in
//! every 3.6+) a tombstone at exactly the compact revision is never hashed: those releases keep
//! it on disk where older ones deleted it at compaction ([`HashRules`]).

use std::collections::HashMap;

use lifeboat_bbolt::{BucketTail, Db, Source};
use serde::{Deserialize, Serialize};

use crate::status::{KEY_BUCKET, integrity_error};
use crate::version::Version;
use crate::{Error, Result};

/// The bucket holding the compaction marks.
const META_BUCKET: &[u8] = b"meta";

/// Whose HashKV: the rules changed within 3.4 and 3.5 (etcd commit 8d98510e).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashRules {
    /// 3.4.34+, 3.5.16+, 3.6 and later: a tombstone at the compact revision is left out.
    SkipsTombstoneAtCompaction,
    /// Older releases: such a tombstone (found only in a file a newer release wrote) is hashed.
    HashesTombstoneAtCompaction,
}

impl HashRules {
    /// The rules of the member running `version`; `None` (unknown) takes the current rules,
    /// which agree with the old ones on every file an old release wrote.
    pub fn of(version: Option<Version>) -> Self {
        let Some(version) = version else {
            return Self::SkipsTombstoneAtCompaction;
        };
        let first_with_rule = match version.minor_version() {
            (3, 4) => Version::new(3, 4, 34),
            (3, 5) => Version::new(3, 5, 16),
            (3, minor) if minor < 4 => return Self::HashesTombstoneAtCompaction,
            _ => return Self::SkipsTombstoneAtCompaction,
        };
        match version >= first_with_rule {
            true => Self::SkipsTombstoneAtCompaction,
            false => Self::HashesTombstoneAtCompaction,
        }
    }
}

/// A HashKV answer: the hash, the revision it covers and the compact revision it assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKv {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

/// What etcd sees of a file's key space when it opens it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreFacts {
    /// The store's current revision: the last `key` entry's, or the compact revision if higher,
    /// and at least 1.
    pub current: i64,
    /// The compaction etcd completes at startup (the scheduled one when it did not finish); -1
    /// when there was none, as etcd reports it.
    pub compact: i64,
    /// The cluster version the file records (`cluster/clusterVersion`, e.g. "3.5.0").
    pub cluster_version: Option<String>,
}

/// `(main, sub)` of a `key`-bucket key, read as etcd's `bytesToRev` reads it.
fn revision_of(key: &[u8]) -> Result<(i64, i64)> {
    let bad = || Error::BadRevisionKey {
        key: hex::encode(key),
    };
    let main = key.get(..8).ok_or_else(bad)?;
    let sub = key.get(9..17).ok_or_else(bad)?;
    let as_i64 = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or_default());
    Ok((as_i64(main), as_i64(sub)))
}

pub(crate) fn is_tombstone(key: &[u8]) -> bool {
    key.len() == 18 && key[17] == b't'
}

/// Only the user key of a `mvccpb.KeyValue`: prost skips the rest without copying it.
#[derive(Clone, PartialEq, prost::Message)]
struct UserKey {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

pub(crate) fn user_key(value: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    <UserKey as prost::Message>::decode(value)
        .map(|k| k.key)
        .map_err(|_| Error::BadKeyValue {
            key: hex::encode(key),
        })
}

/// Walks the file once, calling `on_key_entry` for every `key`-bucket entry; fails on any
/// structural finding, as etcd's reads would.
pub(crate) fn walk_keys<S: Source + ?Sized>(
    db: &Db<'_, S>,
    on_key_entry: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<StoreFacts> {
    let (facts, findings) = walk_keys_past_damage(db, on_key_entry)?;
    match findings.is_empty() {
        true => Ok(facts),
        false => Err(integrity_error(findings)),
    }
}

/// [`walk_keys`] that goes past damaged pages (skipping what they hold) and returns the
/// structural findings with what it read.
pub(crate) fn walk_keys_past_damage<S: Source + ?Sized>(
    db: &Db<'_, S>,
    mut on_key_entry: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<(StoreFacts, Vec<lifeboat_bbolt::Finding>)> {
    let mut bucket = Vec::new();
    // etcd says -1 for a store that was never compacted.
    let (mut last_main, mut finished, mut scheduled) = (0, -1, -1);
    let mut cluster_version = None;
    let mut failure = None;
    let mut has_key_bucket = false;
    let findings = db.walk(|entry| {
        if failure.is_some() {
            return;
        }
        if entry.depth == 0 {
            bucket.clear();
            bucket.extend_from_slice(entry.key);
            has_key_bucket |= entry.key == KEY_BUCKET;
            return;
        }
        let outcome = match (bucket.as_slice(), entry.key) {
            (KEY_BUCKET, key) if entry.depth == 1 => revision_of(key).and_then(|(main, _)| {
                last_main = main;
                on_key_entry(key, entry.value)
            }),
            (META_BUCKET, b"finishedCompactRev") => revision_of(entry.value).map(|(m, _)| finished = m),
            (META_BUCKET, b"scheduledCompactRev") => revision_of(entry.value).map(|(m, _)| scheduled = m),
            (b"cluster", b"clusterVersion") => {
                cluster_version = Some(String::from_utf8_lossy(entry.value).into_owned());
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            failure = Some(error);
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    if !has_key_bucket {
        return Err(Error::NotEtcd);
    }
    let compact = finished.max(scheduled);
    let facts = StoreFacts {
        // etcd's store starts at revision 1: an empty key space is served at revision 1.
        current: last_main.max(compact).max(1),
        compact,
        cluster_version,
    };
    Ok((facts, findings))
}

/// The current and compact revisions and the cluster version of a file.
pub fn store_facts<S: Source + ?Sized>(db: &Db<'_, S>) -> Result<StoreFacts> {
    walk_keys(db, |_, _| Ok(()))
}

/// HashKV at `revision` (`None`: the current one), as a member following `rules` answers it for
/// this file. `compact_revision` overrides the file's (a member that compacted further since
/// the file was taken answers as if it had been compacted there); it may not be below the file's.
pub fn hash_kv<S: Source + ?Sized>(
    db: &Db<'_, S>,
    revision: Option<i64>,
    compact_revision: Option<i64>,
    rules: HashRules,
) -> Result<HashKv> {
    let asked = revision.filter(|r| *r > 0);
    let upper = asked.unwrap_or(i64::MAX);
    // Each user key's latest record at `upper`: what compaction there would keep.
    let mut latest: HashMap<Vec<u8>, ((i64, i64), bool)> = HashMap::new();
    let file = walk_keys(db, |key, value| {
        let rev = revision_of(key)?;
        if rev.0 <= upper {
            latest.insert(user_key(value, key)?, (rev, is_tombstone(key)));
        }
        Ok(())
    })?;
    let compact = compact_revision.unwrap_or(file.compact);
    if compact < file.compact {
        return Err(Error::CompactBelowFile {
            given: compact,
            file: file.compact,
        });
    }
    let current = file.current.max(compact);
    let revision = asked.unwrap_or(current);
    if asked.is_some() && revision <= compact {
        return Err(Error::Compacted { revision, compact });
    }
    if revision > current {
        return Err(Error::FutureRevision { revision, current });
    }
    let keeps_any = latest.values().any(|(_, tombstone)| !tombstone);
    let mut hash = crc32c::crc32c_append(0, KEY_BUCKET);
    walk_keys(db, |key, value| {
        let rev = revision_of(key)?;
        if rev.0 > revision {
            return Ok(());
        }
        if rev.0 <= compact && keeps_any {
            let kept = latest.get(&user_key(value, key)?) == Some(&(rev, false));
            if !kept {
                return Ok(());
            }
        }
        if rules == HashRules::SkipsTombstoneAtCompaction && rev.0 == compact && is_tombstone(key) {
            return Ok(());
        }
        hash = crc32c::crc32c_append(hash, key);
        hash = crc32c::crc32c_append(hash, value);
        Ok(())
    })?;
    Ok(HashKv {
        hash,
        revision,
        compact_revision: compact,
    })
}

/// The revision of a snapshot streaming past (its last `key` entry's), found without keeping it.
#[derive(Debug)]
pub struct StreamedRevision(BucketTail);

impl Default for StreamedRevision {
    fn default() -> Self {
        Self(BucketTail::new(KEY_BUCKET))
    }
}

impl StreamedRevision {
    /// Keeps its page sketches in `file` (an empty file of the caller's), not in memory: memory
    /// then stays the same whatever the snapshot's size.
    pub fn spilling_to(file: std::fs::File) -> Self {
        Self(BucketTail::spilling_to(KEY_BUCKET, file))
    }

    /// Feeds the next bytes of the stream (the trailer may follow the image).
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The snapshot's revision (0 for an empty key space).
    pub fn finish(self) -> Result<i64> {
        match self.0.finish()? {
            None => Ok(0),
            Some(key) => Ok(revision_of(&key)?.0),
        }
    }
}
