//! The JSON files of the format: `lifeboat-repo.json` and each backup's `manifest.json`.

use serde::{Deserialize, Serialize};

use crate::{BackupId, Error, Result};

/// The format version this build writes and reads.
pub const FORMAT: u32 = 1;

/// How artefacts are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Encryption {
    /// age, to these X25519 recipients (`age1...`); the identities stay with the operator.
    Age { recipients: Vec<String> },
    /// None: chosen explicitly with `--insecure-no-encryption`.
    None,
}

/// How artefacts are compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Compression {
    Zstd { level: i32 },
}

/// `lifeboat-repo.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: u32,
    /// 32 hex digits, random.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    pub encryption: Encryption,
    pub compression: Compression,
}

/// etcd facts of a backup, from the saved snapshot itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdFacts {
    pub cluster_id: String,
    pub member_id: String,
    pub endpoint: String,
    pub version: String,
    /// The snapshot's revision (its last `key` entry's; before 0.2, the store's when it started).
    pub revision: i64,
    /// Keys that existed at that revision.
    pub live_keys: u64,
    /// The member's HashKV at `revision`, asked right after the snapshot: what proves a restore
    /// of this backup equal to the member it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<HashKvRecord>,
    /// Why `hash_kv` is missing (e.g. the member compacted past the snapshot's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_kv_missing: Option<String>,
}

/// A member's HashKV: the hash of its key space up to `revision`, compacted at `compact_revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvRecord {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

/// One stored object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artefact {
    /// Name within the backup, e.g. `etcd-snapshot.db`.
    pub name: String,
    /// Object key relative to the repository root.
    pub key: String,
    pub plain_size: u64,
    pub plain_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
    pub compression: String,
    pub encryption: String,
}

/// `backups/<ID>/manifest.json`: the backup exists exactly when this does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: BackupId,
    /// `etcd`, `files` or `stream`.
    pub kind: String,
    /// RFC 3339.
    pub created: String,
    pub host: String,
    pub tool: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdFacts>,
    /// The etcd cluster (its ID, hex) a files or stream backup belongs to, when its writer knew
    /// it; an etcd backup's is `etcd.cluster_id`. Views of one cluster ([`Manifest::cluster_id`])
    /// need it when several clusters share a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub artefacts: Vec<Artefact>,
    /// When the storage received the manifest, as a listing reports it (not stored in it).
    #[serde(skip)]
    pub stored_at: Option<std::time::SystemTime>,
    /// When a scheduled backup last found the cluster unchanged since this one (the storage's
    /// time of the backup's unchanged mark, as a listing reports it; not stored in the manifest).
    #[serde(skip)]
    pub unchanged_at: Option<std::time::SystemTime>,
}

/// Two manifests are equal when they say the same: when the storage received them is not part
/// of what they say.
impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a field added later cannot be left out of the comparison.
        let Manifest {
            format,
            id,
            kind,
            created,
            host,
            tool,
            tags,
            etcd,
            cluster,
            artefacts,
            stored_at: _,
            unchanged_at: _,
        } = self;
        (
            format, id, kind, created, host, tool, tags, etcd, cluster, artefacts,
        ) == (
            &other.format,
            &other.id,
            &other.kind,
            &other.created,
            &other.host,
            &other.tool,
            &other.tags,
            &other.etcd,
            &other.cluster,
            &other.artefacts,
        )
    }
}

impl Eq for Manifest {}

/// How far ahead of the storage's clock a backup's ID may be (the ID is taken before the
/// upload, so a correct clock is never ahead by more than the clocks' drift).
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The artefact names a backup may have: plain file names, never the manifest's.
pub fn check_artefact_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name != MANIFEST
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    match valid {
        true => Ok(()),
        false => Err(Error::ArtefactName {
            name: name.to_string(),
            reason: "use letters, digits, '.', '-', '_' (not manifest.json)",
        }),
    }
}

/// The manifest's name in a backup's directory.
pub(crate) const MANIFEST: &str = "manifest.json";
/// The mark a backup's directory gets when a later backup found its cluster unchanged since it
/// (a leading '.': no artefact can be named so).
pub(crate) const UNCHANGED: &str = ".unchanged.json";
/// The directory of every backup.
pub(crate) const BACKUPS: &str = "backups";

/// Where artefact `name` of backup `id` is stored: the only key a manifest may name for it.
pub fn artefact_key(id: &BackupId, name: &str) -> String {
    format!("{BACKUPS}/{id}/{name}")
}

/// Where the manifest of backup `id` is stored.
pub fn manifest_key(id: &BackupId) -> String {
    format!("{BACKUPS}/{id}/{MANIFEST}")
}

/// Where the unchanged mark of backup `id` is stored.
pub fn unchanged_key(id: &BackupId) -> String {
    format!("{BACKUPS}/{id}/{UNCHANGED}")
}

/// The kinds of backup this build writes and reads.
pub const KINDS: &[&str] = &["etcd", "files", "stream"];

impl Manifest {
    /// The etcd cluster the backup belongs to: an etcd backup's own, or the one its writer
    /// recorded.
    pub fn cluster_id(&self) -> Option<&str> {
        match &self.etcd {
            Some(etcd) => Some(&etcd.cluster_id),
            None => self.cluster.as_deref(),
        }
    }

    /// Checks that this manifest belongs where it was found, `backups/<id>/manifest.json` of a
    /// repository configured as `config`: a manifest is data from storage and is followed only
    /// when its ID, kind, artefact names and keys are its own. Returns why not.
    pub fn check_location(&self, id: &BackupId, config: &RepoConfig) -> std::result::Result<(), String> {
        if self.id != *id {
            return Err(format!("it names backup {}, but lies in backups/{id}/", self.id));
        }
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(format!(
                "unknown kind {:?} (expected one of {})",
                self.kind,
                KINDS.join(", ")
            ));
        }
        if self.artefacts.is_empty() {
            return Err("it names no artefact".into());
        }
        let encryption = crate::new_backup::encryption_name(&config.encryption);
        let mut names = std::collections::BTreeSet::new();
        for artefact in &self.artefacts {
            if check_artefact_name(&artefact.name).is_err() {
                return Err(format!(
                    "artefact name {:?} is not a plain file name",
                    artefact.name
                ));
            }
            if !names.insert(artefact.name.as_str()) {
                return Err(format!("artefact {:?} appears twice", artefact.name));
            }
            let expected = artefact_key(id, &artefact.name);
            if artefact.key != expected {
                return Err(format!(
                    "artefact {:?} points at {:?}, not at {expected:?}",
                    artefact.name, artefact.key
                ));
            }
            if artefact.compression != "zstd" || artefact.encryption != encryption {
                return Err(format!(
                    "artefact {:?} says {}/{}, the repository stores zstd/{encryption}",
                    artefact.name, artefact.compression, artefact.encryption
                ));
            }
        }
        Ok(())
    }
}

/// Parses a format file, refusing unknown versions by name.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    object: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let malformed = |e: serde_json::Error| Error::Format {
        object: object.to_string(),
        what,
        message: e.to_string(),
    };
    let version: Version = serde_json::from_slice(bytes).map_err(malformed)?;
    if version.format != FORMAT {
        return Err(Error::UnsupportedFormat {
            object: object.to_string(),
            found: version.format,
            supported: FORMAT,
        });
    }
    serde_json::from_slice(bytes).map_err(malformed)
}

impl RepoConfig {
    /// Parses `lifeboat-repo.json`.
    pub fn parse(object: &str, bytes: &[u8]) -> Result<Self> {
        parse(object, "repository config", bytes)
    }
}

impl Manifest {
    /// When the backup was made, for ordering, `latest` and retention: its ID's time, unless the
    /// ID is ahead of when the storage received the manifest by more than [`MAX_CLOCK_SKEW`]
    /// (a node whose clock runs ahead), then the storage's time. An ID behind it is kept: a
    /// copy stores an old backup late.
    pub fn time(&self) -> time::OffsetDateTime {
        match (self.clock_ahead(), self.stored_at) {
            (Some(_), Some(stored)) => time::OffsetDateTime::from(stored),
            _ => self.id.time(),
        }
    }

    /// How far the ID is ahead of when the storage received the manifest, when by more than
    /// [`MAX_CLOCK_SKEW`].
    pub fn clock_ahead(&self) -> Option<std::time::Duration> {
        let stored = self.stored_at?;
        let ahead = std::time::SystemTime::from(self.id.time())
            .duration_since(stored)
            .ok()?;
        (ahead > MAX_CLOCK_SKEW).then_some(ahead)
    }

    /// Parses a `manifest.json`.
    pub fn parse(object: &str, bytes: &[u8]) -> Result<Self> {
        parse(object, "manifest", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_unknown_formats_are_refused() {
        let config = RepoConfig {
            format: FORMAT,
            id: "00".repeat(16),
            created: "2026-11-24T00:00:00Z".into(),
            encryption: Encryption::Age {
                recipients: vec!["age1xyz".into()],
            },
            compression: Compression::Zstd { level: 1 },
        };
        let json = serde_json::to_vec(&config).unwrap();
        assert!(
            String::from_utf8_lossy(&json)
                .contains(r#""encryption":{"scheme":"age","recipients":["age1xyz"]}"#)
        );
        assert_eq!(RepoConfig::parse("x", &json).unwrap(), config);
        let future = String::from_utf8(json)
            .unwrap()
            .replace(r#""format":1"#, r#""format":2"#);
        assert!(matches!(
            RepoConfig::parse("r/lifeboat-repo.json", future.as_bytes()),
            Err(Error::UnsupportedFormat { found: 2, .. })
        ));
        assert!(matches!(RepoConfig::parse("x", b"{}"), Err(Error::Format { .. })));
    }
}
