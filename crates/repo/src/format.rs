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
    /// The store revision when the snapshot started.
    pub revision: i64,
    /// Keys that existed at that revision.
    pub live_keys: u64,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub artefacts: Vec<Artefact>,
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
