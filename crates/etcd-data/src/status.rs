//! `snapshot status`: hash, revision, total keys and size, exactly as etcdutl 3.5 and etcdctl
//! 3.4 compute them, in one pass that also runs the bbolt consistency check.

use lifeboat_bbolt::{Db, Entry, Finding, Source};

use crate::{Error, Result};

/// The bucket holding MVCC revisions.
pub const KEY_BUCKET: &[u8] = b"key";

/// What `etcdutl snapshot status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket name, key and value in order.
    pub hash: u32,
    /// Main revision of the last entry of the `key` bucket.
    pub revision: i64,
    /// Entries summed over all buckets (3.4/3.5 semantics).
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    /// Pages in use times page size: the image without trailer or slack.
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Accumulates the status from the entries of a walk.
#[derive(Debug, Default)]
pub(crate) struct StatusBuilder {
    hash: u32,
    total_key: u64,
    in_key_bucket: bool,
    last_revision_key: Option<Vec<u8>>,
    non_bucket_at_root: Option<Vec<u8>>,
}

impl StatusBuilder {
    pub fn entry(&mut self, entry: &Entry<'_>) {
        match entry.depth {
            0 => {
                if !entry.is_bucket && self.non_bucket_at_root.is_none() {
                    self.non_bucket_at_root = Some(entry.key.to_vec());
                }
                self.hash = crc32c::crc32c_append(self.hash, entry.key);
                self.in_key_bucket = entry.key == KEY_BUCKET;
            }
            1 => {
                self.hash = crc32c::crc32c_append(self.hash, entry.key);
                // etcd's ForEach hands nested buckets over with a nil value.
                if !entry.is_bucket {
                    self.hash = crc32c::crc32c_append(self.hash, entry.value);
                }
                self.total_key += 1;
                if self.in_key_bucket {
                    let last = self.last_revision_key.get_or_insert_with(Vec::new);
                    last.clear();
                    last.extend_from_slice(entry.key);
                }
            }
            _ => {}
        }
    }

    pub fn finish<S: Source + ?Sized>(self, db: &Db<'_, S>) -> Result<SnapshotStatus> {
        if let Some(name) = self.non_bucket_at_root {
            return Err(Error::NotABucket {
                name: String::from_utf8_lossy(&name).into_owned(),
            });
        }
        let revision = match self.last_revision_key {
            None => 0,
            Some(key) => main_revision(&key).ok_or_else(|| Error::BadRevisionKey {
                key: hex::encode(key),
            })?,
        };
        Ok(SnapshotStatus {
            hash: self.hash,
            revision,
            total_key: self.total_key,
            total_size: db.size(),
        })
    }
}

/// The main revision: the first 8 bytes of a `key`-bucket key, big-endian.
pub fn main_revision(key: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// Computes the status; like etcdutl, any consistency finding makes it fail.
pub fn status<S: Source + ?Sized>(db: &Db<'_, S>) -> Result<SnapshotStatus> {
    let mut builder = StatusBuilder::default();
    let findings = db.check(|entry| builder.entry(&entry));
    if !findings.is_empty() {
        return Err(integrity_error(findings));
    }
    builder.finish(db)
}

pub(crate) fn integrity_error(findings: Vec<Finding>) -> Error {
    Error::Integrity {
        count: findings.len(),
        first: findings.first().map(ToString::to_string).unwrap_or_default(),
    }
}
