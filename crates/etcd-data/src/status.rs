//! `snapshot status`: hash, revision, total keys, size and (3.6+) storage version, exactly as
//! `etcdutl snapshot status` of the file's etcd minor computes them (etcdctl for 3.4), in one
//! pass that also runs the bbolt consistency check.
//!
//! 3.4/3.5 count every entry of every bucket; 3.6 and 3.7 count the distinct user keys whose
//! last record is not a tombstone (etcd PR #19344) and add meta `storageVersion`.

use lifeboat_bbolt::{Db, Entry, Finding, Source};

use crate::version::Version;
use crate::{Error, Result};

/// The bucket holding MVCC revisions.
pub const KEY_BUCKET: &[u8] = b"key";
const META_BUCKET: &[u8] = b"meta";
const CLUSTER_BUCKET: &[u8] = b"cluster";
const STORAGE_VERSION: &[u8] = b"storageVersion";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// Whose `snapshot status` a [`SnapshotStatus`] reproduces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusRules {
    /// etcdctl 3.4 and etcdutl 3.5: every bucket entry counted, no version field.
    #[default]
    Etcd3_5,
    /// etcdutl 3.6: live user keys counted, storage version printed.
    Etcd3_6,
    /// etcdutl 3.7: 3.6's figures, its table drawn with box characters.
    Etcd3_7,
}

impl StatusRules {
    /// The rules of the etcdutl of `version`'s minor (3.4 and older read as 3.5).
    pub fn of(version: Version) -> Self {
        match version.minor_version() {
            (3, 6) => Self::Etcd3_6,
            (major, minor) if (major, minor) >= (3, 7) => Self::Etcd3_7,
            _ => Self::Etcd3_5,
        }
    }

    fn counts_live_keys(self) -> bool {
        self >= Self::Etcd3_6
    }
}

/// What `etcdutl snapshot status` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket name, key and value in order.
    pub hash: u32,
    /// Main revision of the last entry of the `key` bucket.
    pub revision: i64,
    /// 3.4/3.5: entries summed over all buckets; 3.6+: live user keys.
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    /// Pages in use times page size: the image without trailer or slack.
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    /// 3.6+: meta `storageVersion` as etcdutl prints it (`3.6.0`), empty when the file has
    /// none; absent in the 3.4/3.5 output, which has no such field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whose output this is (decides the table's drawing too).
    #[serde(skip)]
    pub rules: StatusRules,
}

/// Accumulates the status from the entries of a walk.
#[derive(Debug, Default)]
pub(crate) struct StatusBuilder {
    /// Rules given by the caller (`--etcd-version`), over the file's own.
    forced: Option<StatusRules>,
    hash: u32,
    bucket_entries: u64,
    bucket: Vec<u8>,
    last_revision_key: Option<Vec<u8>>,
    non_bucket_at_root: Option<Vec<u8>>,
    has_key_bucket: bool,
    cluster_version: Option<Vec<u8>>,
    storage_version: Option<Vec<u8>>,
    /// Distinct user keys whose last record is live, each as its 128-bit XXH3 digest (16 bytes
    /// a key, whatever its length; two keys alike in 128 bits are not to be expected by chance);
    /// `None` while not counted (a file whose cluster version is below 3.6 needs no set).
    live_keys: Option<rustc_hash::FxHashSet<u128>>,
    /// The first record etcdutl 3.6+ would fail on (its count decodes every record).
    live_key_error: Option<Error>,
}

impl StatusBuilder {
    pub fn new(forced: Option<Version>) -> Self {
        Self {
            forced: forced.map(StatusRules::of),
            ..Self::default()
        }
    }

    pub fn entry(&mut self, entry: &Entry<'_>) {
        match entry.depth {
            0 => {
                if !entry.is_bucket && self.non_bucket_at_root.is_none() {
                    self.non_bucket_at_root = Some(entry.key.to_vec());
                }
                self.hash = crc32c::crc32c_append(self.hash, entry.key);
                self.bucket.clear();
                self.bucket.extend_from_slice(entry.key);
                if entry.key == KEY_BUCKET {
                    self.has_key_bucket = true;
                    // `cluster` sorts before `key`: its version is known by now.
                    if self.may_count_live_keys() {
                        self.live_keys = Some(rustc_hash::FxHashSet::default());
                    }
                }
            }
            1 => {
                self.hash = crc32c::crc32c_append(self.hash, entry.key);
                // etcd's ForEach hands nested buckets over with a nil value.
                if !entry.is_bucket {
                    self.hash = crc32c::crc32c_append(self.hash, entry.value);
                }
                self.bucket_entries += 1;
                match (self.bucket.as_slice(), entry.key) {
                    (KEY_BUCKET, key) => {
                        let last = self.last_revision_key.get_or_insert_with(Vec::new);
                        last.clear();
                        last.extend_from_slice(key);
                        self.count_live_key(key, entry.value);
                    }
                    (META_BUCKET, STORAGE_VERSION) => self.storage_version = Some(entry.value.to_vec()),
                    (CLUSTER_BUCKET, CLUSTER_VERSION) => self.cluster_version = Some(entry.value.to_vec()),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn may_count_live_keys(&self) -> bool {
        match (
            self.forced,
            self.cluster_version.as_deref().and_then(parse_version),
        ) {
            (Some(forced), _) => forced.counts_live_keys(),
            (None, Some(cluster)) => StatusRules::of(cluster).counts_live_keys(),
            // No cluster version yet: the storage version, read later, decides.
            (None, None) => true,
        }
    }

    /// etcdutl 3.6's count: each record's user key added, or removed on a tombstone.
    fn count_live_key(&mut self, key: &[u8], value: &[u8]) {
        let Some(live) = self.live_keys.as_mut() else {
            return;
        };
        if self.live_key_error.is_some() {
            return;
        }
        // etcdutl reads the revision first (failing on a short key), then the record.
        if key.len() < 17 {
            self.live_key_error = Some(Error::BadRevisionKey {
                key: hex::encode(key),
            });
            return;
        }
        let user_key = match crate::hashkv::user_key(value, key) {
            Ok(user_key) => user_key,
            Err(error) => {
                self.live_key_error = Some(error);
                return;
            }
        };
        let digest = xxhash_rust::xxh3::xxh3_128(&user_key);
        if crate::hashkv::is_tombstone(key) {
            live.remove(&digest);
        } else {
            live.insert(digest);
        }
    }

    /// The version the file records, and which: its cluster version, else its storage version
    /// (a 3.6+ server writes both).
    fn recorded_version(&self) -> Option<(&'static str, Version)> {
        [
            ("cluster version", self.cluster_version.as_deref()),
            ("storage version", self.storage_version.as_deref()),
        ]
        .into_iter()
        .find_map(|(what, value)| Some((what, value.and_then(parse_version)?)))
    }

    /// Whose rules apply: the caller's, else the recorded version's, else 3.5's.
    fn rules(&self) -> StatusRules {
        match (self.forced, self.recorded_version()) {
            (Some(forced), _) => forced,
            (None, Some((_, version))) => StatusRules::of(version),
            (None, None) => StatusRules::Etcd3_5,
        }
    }

    /// Refuses a file of a version outside the supported window when the caller chose no
    /// rules: whose etcdutl it would mimic is unknown.
    fn check_recorded_version(&self) -> Result<()> {
        match (self.forced, self.recorded_version()) {
            (None, Some((what, version))) => {
                version
                    .check_supported(&format!("the file's {what}"))
                    .map_err(|error| Error::StatusRulesUnknown {
                        reason: error.to_string(),
                    })
            }
            _ => Ok(()),
        }
    }

    pub fn finish<S: Source + ?Sized>(self, db: &Db<'_, S>) -> Result<SnapshotStatus> {
        if let Some(name) = self.non_bucket_at_root {
            return Err(Error::NotABucket {
                name: String::from_utf8_lossy(&name).into_owned(),
            });
        }
        if !self.has_key_bucket {
            return Err(Error::NotEtcd);
        }
        let rules = self.rules();
        let revision = match &self.last_revision_key {
            None => 0,
            Some(key) => main_revision(key).ok_or_else(|| Error::BadRevisionKey {
                key: hex::encode(key),
            })?,
        };
        let (total_key, version) = if rules.counts_live_keys() {
            if let Some(error) = self.live_key_error {
                return Err(error);
            }
            // Counted whenever these rules can apply (see `may_count_live_keys`).
            let live = self.live_keys.unwrap_or_default();
            let version = self
                .storage_version
                .as_deref()
                .and_then(semver_text)
                .unwrap_or_default();
            (live.len() as u64, Some(version))
        } else {
            (self.bucket_entries, None)
        };
        Ok(SnapshotStatus {
            hash: self.hash,
            revision,
            total_key,
            total_size: db.size(),
            version,
            rules,
        })
    }
}

fn parse_version(value: &[u8]) -> Option<Version> {
    Version::parse(std::str::from_utf8(value).ok()?)
}

/// A storage version as etcdutl prints it (go-semver: `X.Y.Z[-pre][+meta]`), `None` where
/// go-semver refuses it (etcdutl then prints nothing).
fn semver_text(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let (rest, metadata) = match text.split_once('+') {
        Some((rest, metadata)) => (rest, Some(metadata)),
        None => (text, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<u64> = core.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [major, minor, patch] = numbers.as_slice() else {
        return None;
    };
    let mut printed = format!("{major}.{minor}.{patch}");
    if let Some(pre) = pre {
        printed.push('-');
        printed.push_str(pre);
    }
    if let Some(metadata) = metadata {
        printed.push('+');
        printed.push_str(metadata);
    }
    Some(printed)
}

/// The main revision: the first 8 bytes of a `key`-bucket key, big-endian.
pub fn main_revision(key: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// Computes the status by the rules of `as_version`'s etcdutl (`None`: the file's own
/// version's); like etcdutl, any consistency finding makes it fail.
pub fn status<S: Source + ?Sized>(db: &Db<'_, S>, as_version: Option<Version>) -> Result<SnapshotStatus> {
    let mut builder = StatusBuilder::new(as_version);
    let findings = db.check(|entry| builder.entry(&entry));
    if !findings.is_empty() {
        return Err(integrity_error(findings));
    }
    builder.check_recorded_version()?;
    builder.finish(db)
}

pub(crate) fn integrity_error(findings: Vec<Finding>) -> Error {
    Error::Integrity {
        count: findings.len(),
        first: findings.first().map(ToString::to_string).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_versions_print_as_go_semver_prints_them() {
        assert_eq!(semver_text(b"3.6.0").as_deref(), Some("3.6.0"));
        assert_eq!(semver_text(b"3.7.0-rc.0+x").as_deref(), Some("3.7.0-rc.0+x"));
        assert_eq!(semver_text(b"3.6"), None);
        assert_eq!(semver_text(b"v3.6.0"), None);
        assert_eq!(semver_text(b"\xff"), None);
    }

    #[test]
    fn rules_follow_the_minor() {
        let rules = |s| StatusRules::of(Version::parse(s).unwrap());
        assert_eq!(rules("3.4.23"), StatusRules::Etcd3_5);
        assert_eq!(rules("3.5.0"), StatusRules::Etcd3_5);
        assert_eq!(rules("3.6.0"), StatusRules::Etcd3_6);
        assert_eq!(rules("3.7.4"), StatusRules::Etcd3_7);
    }
}
