//! Point-in-time recovery's objects: sealed segments of captured watch events and the records
//! of gaps in a capture (docs/repository.md, "Segments").
//!
//! ```text
//! segments/<cluster ID>/<first>-<last>.seg    the events of revisions first..=last, sealed
//! segments/<cluster ID>/<first>-<last>.json   its manifest, written last, deleted first
//! segments/<cluster ID>/gaps/<from>-<to>.json revisions from..to no capture holds
//! ```
//! Revisions are 20 decimal digits, so that keys sort as revisions do; a listing alone tells
//! which revisions are covered, without reading a manifest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::new_backup::encryption_name;
use crate::{Artefact, BackupId, Error, FORMAT, HashKvRecord, Repository, Result, Sealer};

/// Where segments and gap records lie.
pub const SEGMENTS: &str = "segments";
const GAPS: &str = "gaps";

/// The revisions a segment covers, as its keys name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentRange {
    pub first: i64,
    pub last: i64,
}

impl SegmentRange {
    fn stem(&self, cluster_id: u64) -> String {
        format!(
            "{SEGMENTS}/{cluster_id:016x}/{:020}-{:020}",
            self.first, self.last
        )
    }

    /// Parses `<first>-<last>` as a key names it.
    fn parse(stem: &str) -> Option<Self> {
        let (first, last) = stem.split_once('-')?;
        let number =
            |s: &str| (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?;
        let range = Self {
            first: number(first)?,
            last: number(last)?,
        };
        (range.first >= 1 && range.first <= range.last).then_some(range)
    }
}

/// `segments/<cluster>/<first>-<last>.json`: the segment exists exactly when this does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentManifest {
    pub format: u32,
    /// The etcd cluster (hex ID).
    pub cluster_id: String,
    /// Every revision of this range is in the segment: those without an event had none.
    pub first_revision: i64,
    pub last_revision: i64,
    #[serde(flatten)]
    pub facts: SegmentFacts,
    pub artefact: Artefact,
}

/// What a segment's manifest says besides where it lies and its artefact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFacts {
    /// The backup the capture started from (its chain of segments follows that backup's
    /// revision).
    pub base: BackupId,
    /// RFC 3339.
    pub created: String,
    pub host: String,
    pub tool: String,
    /// Revisions with events, and events.
    pub revisions: u64,
    pub events: u64,
    /// When the capture received the first and the last of those revisions (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_received_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_received_ms: Option<i64>,
    /// The member's HashKV at `last_revision`, when the capture asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<HashKvRecord>,
    /// How many captured segments this one merges (1 for one written by a capture).
    pub merged: u64,
}

/// Revisions no capture holds: the watch could not resume at `from` (compacted up to
/// `compact_revision`), and capture started again after backup `base` at revision `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRecord {
    pub cluster_id: String,
    /// The first revision lost.
    pub from_revision: i64,
    /// The new base backup's revision: restorable again from here.
    pub to_revision: i64,
    pub compact_revision: i64,
    pub base: BackupId,
    /// RFC 3339.
    pub detected: String,
    pub reason: String,
}

/// The segments and gaps of one cluster.
#[derive(Debug, Default)]
pub struct SegmentListing {
    /// By first revision, then last.
    pub ranges: Vec<SegmentRange>,
    pub gaps: Vec<GapRecord>,
    /// Gap records that cannot be read or do not belong where they lie, by key.
    pub unreadable: Vec<(String, Error)>,
}

fn forged(object: &str, reason: String) -> Error {
    Error::Forged {
        object: object.to_string(),
        reason,
    }
}

impl SegmentManifest {
    /// Checks that the manifest belongs where it was found.
    fn check_location(&self, object: &str, cluster_id: u64, range: SegmentRange) -> Result<()> {
        let data = format!("{}.seg", range.stem(cluster_id));
        let problem = if self.format != FORMAT {
            Some(format!("format {} is not {FORMAT}", self.format))
        } else if u64::from_str_radix(&self.cluster_id, 16).ok() != Some(cluster_id) {
            Some(format!(
                "it names cluster {}, but lies under {cluster_id:016x}",
                self.cluster_id
            ))
        } else if (self.first_revision, self.last_revision) != (range.first, range.last) {
            Some(format!(
                "it covers {}..={}, but its key says {}..={}",
                self.first_revision, self.last_revision, range.first, range.last
            ))
        } else if self.artefact.key != data {
            Some(format!("its data is {}, not {data}", self.artefact.key))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(forged(object, reason)),
            None => Ok(()),
        }
    }
}

impl Repository {
    /// Seals `plain` (a segment body) and stores it, then its manifest.
    pub async fn put_segment(
        &self,
        cluster_id: u64,
        range: SegmentRange,
        facts: SegmentFacts,
        plain: Vec<u8>,
    ) -> Result<SegmentManifest> {
        let stem = range.stem(cluster_id);
        let data_key = format!("{stem}.seg");
        let config = self.config().clone();
        let crate::Compression::Zstd { level } = config.compression;
        let object = data_key.clone();
        let sealed = tokio::task::spawn_blocking(move || {
            let plain_sha256 = hex::encode(Sha256::digest(&plain));
            let mut sealer = Sealer::new(&object, Vec::new(), &config.encryption, level)?;
            sealer.write(&plain)?;
            sealer.finish().map(|sealed| (sealed, plain_sha256))
        })
        .await
        .map_err(|e| Error::Io {
            object: data_key.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let (sealed, plain_sha256) = sealed?;
        let artefact = Artefact {
            name: "segment".into(),
            key: data_key.clone(),
            plain_size: sealed.plain_size,
            plain_sha256,
            stored_size: sealed.stored_size,
            stored_sha256: sealed.stored_sha256,
            compression: "zstd".into(),
            encryption: encryption_name(&self.config().encryption).into(),
        };
        self.storage().put(&data_key, sealed.sink).await?;
        let manifest = SegmentManifest {
            format: FORMAT,
            cluster_id: format!("{cluster_id:016x}"),
            first_revision: range.first,
            last_revision: range.last,
            facts,
            artefact,
        };
        let key = format!("{stem}.json");
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Format {
            object: key.clone(),
            what: "segment manifest",
            message: e.to_string(),
        })?;
        self.storage().put(&key, json).await?;
        Ok(manifest)
    }

    /// The segments (by the keys of their manifests) and gaps of a cluster; one listing, plus
    /// one read per gap record.
    pub async fn segments(&self, cluster_id: u64) -> Result<SegmentListing> {
        let root = format!("{SEGMENTS}/{cluster_id:016x}");
        let mut listing = SegmentListing::default();
        for (key, _) in self.storage().list(&root).await? {
            let Some(name) = key.strip_prefix(&format!("{root}/")) else {
                continue;
            };
            if let Some(stem) = name.strip_suffix(".json")
                && let Some(range) = SegmentRange::parse(stem)
            {
                listing.ranges.push(range);
            } else if let Some(stem) = name
                .strip_prefix(&format!("{GAPS}/"))
                .and_then(|n| n.strip_suffix(".json"))
            {
                match self.gap(&key, cluster_id, stem).await {
                    Ok(Some(gap)) => listing.gaps.push(gap),
                    Ok(None) => {}
                    Err(error) => listing.unreadable.push((key.clone(), error)),
                }
            }
        }
        listing.ranges.sort();
        listing.gaps.sort_by_key(|g| g.from_revision);
        Ok(listing)
    }

    async fn gap(&self, key: &str, cluster_id: u64, stem: &str) -> Result<Option<GapRecord>> {
        let Some(bytes) = self.storage().get(key).await? else {
            return Ok(None);
        };
        let gap: GapRecord = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
            object: key.to_string(),
            what: "gap record",
            message: e.to_string(),
        })?;
        let range = SegmentRange::parse(stem);
        if u64::from_str_radix(&gap.cluster_id, 16).ok() != Some(cluster_id)
            || range
                != Some(SegmentRange {
                    first: gap.from_revision,
                    last: gap.to_revision,
                })
        {
            return Err(forged(
                key,
                "its cluster or revisions differ from its key's".into(),
            ));
        }
        Ok(Some(gap))
    }

    /// The manifest of one segment, checked against where it lies.
    pub async fn segment_manifest(&self, cluster_id: u64, range: SegmentRange) -> Result<SegmentManifest> {
        let key = format!("{}.json", range.stem(cluster_id));
        let bytes = self
            .storage()
            .get(&key)
            .await?
            .ok_or_else(|| Error::MissingObject {
                repo: self.storage().repo().to_string(),
                key: key.clone(),
            })?;
        let manifest: SegmentManifest = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
            object: key.clone(),
            what: "segment manifest",
            message: e.to_string(),
        })?;
        manifest.check_location(&key, cluster_id, range)?;
        Ok(manifest)
    }

    /// A segment's plain body, decrypted and checked against its manifest.
    pub async fn read_segment(
        &self,
        manifest: &SegmentManifest,
        identities: &[age::x25519::Identity],
    ) -> Result<Vec<u8>> {
        let (plain, read) = self
            .read_plain(&manifest.artefact, identities.to_vec(), Vec::new(), &|_| {})
            .await?;
        let mismatches = manifest.artefact.mismatches(&read);
        match mismatches.is_empty() {
            true => Ok(plain),
            false => Err(forged(&manifest.artefact.key, mismatches.join("; "))),
        }
    }

    /// Deletes a segment: its manifest first.
    pub async fn delete_segment(&self, cluster_id: u64, range: SegmentRange) -> Result<()> {
        let stem = range.stem(cluster_id);
        self.storage().delete(&format!("{stem}.json")).await?;
        self.storage().delete(&format!("{stem}.seg")).await
    }

    /// Records a gap.
    pub async fn put_gap(&self, cluster_id: u64, gap: &GapRecord) -> Result<()> {
        let key = format!(
            "{SEGMENTS}/{cluster_id:016x}/{GAPS}/{:020}-{:020}.json",
            gap.from_revision, gap.to_revision
        );
        let json = serde_json::to_vec_pretty(gap).map_err(|e| Error::Format {
            object: key.clone(),
            what: "gap record",
            message: e.to_string(),
        })?;
        self.storage().put(&key, json).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_only_as_written() {
        let range = SegmentRange { first: 7, last: 1234 };
        let stem = range.stem(0xab);
        assert_eq!(
            stem,
            "segments/00000000000000ab/00000000000000000007-00000000000000001234"
        );
        assert_eq!(SegmentRange::parse(stem.rsplit('/').next().unwrap()), Some(range));
        for bad in [
            "7-1234",
            "00000000000000000009-00000000000000000008",
            "00000000000000000000-00000000000000000008",
            "0000000000000000000a-00000000000000000008",
            "00000000000000000007_00000000000000001234",
        ] {
            assert_eq!(SegmentRange::parse(bad), None, "{bad}");
        }
    }
}
