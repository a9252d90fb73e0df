//! A repository: its config, and backups that exist exactly when their manifest does.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::format::{BACKUPS, FORMAT, MANIFEST, UNCHANGED, manifest_key, unchanged_key};
use crate::{BackupId, Compression, Encryption, Error, Manifest, RepoConfig, Result, Storage, StoredObject};

/// The repository config's key.
pub const CONFIG_KEY: &str = "lifeboat-repo.json";

/// RFC 3339, UTC, seconds.
pub fn timestamp(now: SystemTime) -> String {
    OffsetDateTime::from(now)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The backups of a repository.
#[derive(Debug, Default)]
pub struct Listing {
    /// Oldest first.
    pub backups: Vec<Manifest>,
    /// Manifests that exist but cannot be trusted (damaged, planted, of an unknown format, or
    /// in a directory that is not a backup ID), by directory name under `backups/`.
    pub unreadable: Vec<(String, Error)>,
}

/// Manifests a long-running reader read before, by backup ID ([`Repository::list_cached`]).
pub type ManifestCache = std::collections::HashMap<BackupId, Manifest>;

/// A repository with its config read.
#[derive(Debug, Clone)]
pub struct Repository {
    storage: Storage,
    config: RepoConfig,
}

impl Repository {
    /// Fails when `storage` already holds a repository.
    pub async fn ensure_absent(storage: &Storage) -> Result<()> {
        storage.check_reachable().await?;
        if storage.get(CONFIG_KEY).await?.is_some() {
            return Err(Error::AlreadyInitialized {
                repo: storage.repo().to_string(),
            });
        }
        Ok(())
    }

    /// Creates a repository; refuses a location that already holds one.
    pub async fn init(
        storage: Storage,
        encryption: Encryption,
        compression: Compression,
        now: SystemTime,
    ) -> Result<Self> {
        Self::ensure_absent(&storage).await?;
        let config = RepoConfig {
            format: FORMAT,
            id: format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
            created: timestamp(now),
            encryption,
            compression,
        };
        let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::Format {
            object: CONFIG_KEY.into(),
            what: "repository config",
            message: e.to_string(),
        })?;
        storage.put(CONFIG_KEY, json).await?;
        Ok(Self { storage, config })
    }

    /// Opens an existing repository.
    pub async fn open(storage: Storage) -> Result<Self> {
        let object = format!("{}/{CONFIG_KEY}", storage.repo());
        let Some(bytes) = storage.get(CONFIG_KEY).await? else {
            // A missing bucket or denied listing explains a missing config better.
            storage.check_reachable().await?;
            return Err(Error::NotARepository {
                repo: storage.repo().to_string(),
            });
        };
        let config = RepoConfig::parse(&object, &bytes)?;
        Ok(Self { storage, config })
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Every backup (those with a manifest), oldest first. A manifest that cannot be parsed
    /// does not hide the others: it is returned among `unreadable`.
    pub async fn list(&self) -> Result<Listing> {
        self.listing_of(self.storage.list_objects(BACKUPS).await?, None)
            .await
    }

    /// [`Repository::list`] that reads only the manifests `cache` does not hold: a manifest is
    /// written once and never changed, so one read before with the same modification time is
    /// taken from the cache. Each manifest read goes into the cache at once, so a listing cut
    /// short (a timeout) keeps what it read; manifests no longer listed leave it. One LIST, then
    /// one GET per new backup: what a long-running reader refreshes with.
    pub async fn list_cached(&self, cache: &mut ManifestCache) -> Result<Listing> {
        let objects = self.storage.list_objects(BACKUPS).await?;
        let listed: std::collections::HashSet<String> = objects.iter().map(|o| o.key.clone()).collect();
        cache.retain(|id, _| listed.contains(&manifest_key(id)));
        self.listing_of(objects, Some(cache)).await
    }

    /// The backups whose manifests `objects` (a listing of `backups/`) name, in the order of
    /// their [`Manifest::time`]. A manifest deleted since the listing (by a concurrent forget)
    /// is left out, not an error.
    pub(crate) async fn listing_of(
        &self,
        objects: Vec<StoredObject>,
        mut cache: Option<&mut ManifestCache>,
    ) -> Result<Listing> {
        let mut listing = Listing::default();
        // The unchanged marks first: each backup's is matched to it below.
        let unchanged: std::collections::HashMap<String, SystemTime> = objects
            .iter()
            .filter_map(|o| {
                let directory = o
                    .key
                    .strip_prefix(&format!("{BACKUPS}/"))?
                    .strip_suffix(&format!("/{UNCHANGED}"))?;
                Some((directory.to_string(), o.modified))
            })
            .collect();
        for StoredObject { key, modified, .. } in objects {
            let Some(directory) = key
                .strip_suffix(&format!("/{MANIFEST}"))
                .and_then(|k| k.strip_prefix(&format!("{BACKUPS}/")))
                .filter(|d| !d.contains('/'))
            else {
                continue;
            };
            let Some(id) = BackupId::parse(directory) else {
                listing.unreadable.push((
                    directory.to_string(),
                    Error::Forged {
                        object: format!("{}/{key}", self.storage.repo()),
                        reason: format!("{directory:?} is not a backup ID"),
                    },
                ));
                continue;
            };
            let cached = cache
                .as_deref()
                .and_then(|cache| cache.get(&id))
                .filter(|m| m.stored_at == Some(modified));
            let unchanged_at = unchanged.get(directory).copied();
            if let Some(manifest) = cached {
                listing.backups.push(Manifest {
                    unchanged_at,
                    ..manifest.clone()
                });
                continue;
            }
            match self.manifest(&id).await {
                Ok(manifest) => {
                    let manifest = Manifest {
                        stored_at: Some(modified),
                        unchanged_at,
                        ..manifest
                    };
                    if let Some(cache) = cache.as_deref_mut() {
                        cache.insert(id, manifest.clone());
                    }
                    listing.backups.push(manifest);
                }
                Err(Error::NoSuchBackup { .. }) => {}
                Err(
                    error @ (Error::Format { .. }
                    | Error::UnsupportedFormat { .. }
                    | Error::Forged { .. }
                    | Error::TooLarge { .. }),
                ) => listing.unreadable.push((directory.to_string(), error)),
                Err(error) => return Err(error),
            }
        }
        listing
            .backups
            .sort_by(|a, b| (a.time(), &a.id).cmp(&(b.time(), &b.id)));
        Ok(listing)
    }

    /// One backup's manifest, checked against where it was found before anything follows it.
    pub async fn manifest(&self, id: &BackupId) -> Result<Manifest> {
        let key = manifest_key(id);
        let Some(bytes) = self.storage.get(&key).await? else {
            return Err(Error::NoSuchBackup {
                repo: self.storage.repo().to_string(),
                id: id.to_string(),
            });
        };
        let object = format!("{}/{key}", self.storage.repo());
        let manifest = Manifest::parse(&object, &bytes)?;
        manifest
            .check_location(id, &self.config)
            .map_err(|reason| Error::Forged { object, reason })?;
        Ok(manifest)
    }

    /// Writes a manifest: the last step of a backup, which makes it exist.
    pub(crate) async fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        let key = manifest_key(&manifest.id);
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Format {
            object: key.clone(),
            what: "manifest",
            message: e.to_string(),
        })?;
        self.storage.put(&key, json).await
    }

    /// Deletes a backup: the manifest first, so no reader ever sees one naming missing data.
    pub async fn delete(&self, id: &BackupId) -> Result<()> {
        self.delete_manifest(id).await?;
        self.delete_data(id).await
    }

    /// The first half of [`Repository::delete`]: afterwards the backup no longer exists.
    pub async fn delete_manifest(&self, id: &BackupId) -> Result<()> {
        if self.storage.get(&manifest_key(id)).await?.is_none() {
            return Err(Error::NoSuchBackup {
                repo: self.storage.repo().to_string(),
                id: id.to_string(),
            });
        }
        self.storage.delete(&manifest_key(id)).await
    }

    /// The second half of [`Repository::delete`]: the objects of a backup without a manifest.
    pub async fn delete_data(&self, id: &BackupId) -> Result<()> {
        for (key, _) in self.storage.list(&format!("{BACKUPS}/{id}")).await? {
            self.storage.delete(&key).await?;
        }
        Ok(())
    }

    /// Marks backup `id` as still current: a later backup found its cluster unchanged since it.
    /// `json` says by whom and at which revision (plain: no secret is in it); the mark's storage
    /// time is what listings report as [`Manifest::unchanged_at`].
    pub async fn mark_unchanged(&self, id: &BackupId, json: Vec<u8>) -> Result<()> {
        self.storage.put(&unchanged_key(id), json).await
    }

    /// When backup `id` was last marked unchanged, if ever (one LIST, no read).
    pub async fn unchanged_at(&self, id: &BackupId) -> Result<Option<SystemTime>> {
        let key = unchanged_key(id);
        let objects = self.storage.list_objects(&format!("{BACKUPS}/{id}")).await?;
        Ok(objects.into_iter().find(|o| o.key == key).map(|o| o.modified))
    }

    /// Backup directories without a manifest: left by an interrupted backup or delete.
    pub async fn orphans(&self) -> Result<Vec<String>> {
        let mut with_manifest = std::collections::BTreeSet::new();
        let mut all = std::collections::BTreeSet::new();
        for (key, _) in self.storage.list(BACKUPS).await? {
            let mut parts = key.splitn(3, '/').skip(1);
            if let (Some(id), Some(rest)) = (parts.next(), parts.next()) {
                all.insert(id.to_string());
                if rest == MANIFEST {
                    with_manifest.insert(id.to_string());
                }
            }
        }
        Ok(all.difference(&with_manifest).cloned().collect())
    }

    /// Stores a drill's record as `drills/<ID>.json` (no secret is in it: it is stored plain).
    pub async fn put_drill(&self, id: &BackupId, json: Vec<u8>) -> Result<()> {
        self.storage.put(&drill_key(id), json).await
    }

    /// Every drill record, oldest first, as stored bytes with the ID its key names. Keys that
    /// are not `drills/<ID>.json` are left out.
    pub async fn drills(&self) -> Result<Vec<(BackupId, Vec<u8>)>> {
        let mut records = Vec::new();
        for id in self.drill_ids().await? {
            if let Some(bytes) = self.drill(&id).await? {
                records.push((id, bytes));
            }
        }
        Ok(records)
    }

    /// The IDs of the stored drill records, oldest first (one LIST, no record read).
    pub async fn drill_ids(&self) -> Result<Vec<BackupId>> {
        let mut ids: Vec<BackupId> = self
            .storage
            .list(DRILLS)
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                key.strip_prefix(&format!("{DRILLS}/"))
                    .and_then(|k| k.strip_suffix(".json"))
                    .and_then(BackupId::parse)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// One drill record's bytes, if it (still) exists.
    pub async fn drill(&self, id: &BackupId) -> Result<Option<Vec<u8>>> {
        self.storage.get(&drill_key(id)).await
    }

    /// Stores the newest revision a cluster was seen at as `revisions/<cluster ID>.json` (plain:
    /// no secret is in it).
    pub async fn put_revision_mark(&self, cluster_id: u64, json: Vec<u8>) -> Result<()> {
        self.storage.put(&revision_key(cluster_id), json).await
    }

    /// The stored revision mark of a cluster, if any.
    pub async fn revision_mark(&self, cluster_id: u64) -> Result<Option<Vec<u8>>> {
        self.storage.get(&revision_key(cluster_id)).await
    }
}

impl Repository {
    /// Stores the backup a recovery of a cluster restores on every member, as
    /// `recoveries/<cluster ID>.json` (plain: no secret is in it).
    pub async fn put_recovery_pin(&self, cluster_id: u64, json: Vec<u8>) -> Result<()> {
        self.storage
            .put(&format!("{RECOVERIES}/{cluster_id:x}.json"), json)
            .await
    }

    /// Removes the recovery pin of a cluster.
    pub async fn remove_recovery_pin(&self, cluster_id: u64) -> Result<()> {
        self.storage
            .delete(&format!("{RECOVERIES}/{cluster_id:x}.json"))
            .await
    }

    /// Every stored recovery pin: the cluster ID its name gives, and its stored bytes (which
    /// the caller checks against that ID). Objects named otherwise are not pins.
    pub async fn recovery_pins(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut pins = Vec::new();
        for (key, _) in self.storage.list(RECOVERIES).await? {
            let Some(cluster_id) = key
                .strip_prefix(&format!("{RECOVERIES}/"))
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            else {
                continue;
            };
            if let Some(bytes) = self.storage.get(&key).await? {
                pins.push((cluster_id, bytes));
            }
        }
        Ok(pins)
    }
}

/// Where recovery pins live.
const RECOVERIES: &str = "recoveries";

/// Where the newest revision each cluster was seen at lives.
const REVISIONS: &str = "revisions";

fn revision_key(cluster_id: u64) -> String {
    format!("{REVISIONS}/{cluster_id:x}.json")
}

/// Where drill records live.
const DRILLS: &str = "drills";

fn drill_key(id: &BackupId) -> String {
    format!("{DRILLS}/{id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn in_memory() -> Repository {
        Repository::init(
            Storage::in_memory(),
            crate::Encryption::None,
            crate::Compression::Zstd { level: 1 },
            std::time::UNIX_EPOCH,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_backup_deleted_while_listing_is_left_out() {
        let repo = in_memory().await;
        // Listed, then deleted by a concurrent forget before its manifest was read.
        let gone = BackupId::new(std::time::UNIX_EPOCH);
        let listing = repo
            .listing_of(
                vec![StoredObject {
                    key: manifest_key(&gone),
                    size: 100,
                    modified: std::time::SystemTime::now(),
                }],
                None,
            )
            .await
            .unwrap();
        assert!(listing.backups.is_empty() && listing.unreadable.is_empty());
    }

    #[tokio::test]
    async fn a_listing_after_another_reads_only_new_manifests_and_drops_deleted_ones() {
        let repo = in_memory().await;
        let backup = |seconds: u64| {
            let repo = repo.clone();
            async move {
                let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + seconds);
                let mut new = repo.begin(BackupId::new(now));
                new.start_artefact("a.txt").await.unwrap();
                new.write(b"x").await.unwrap();
                new.finish_artefact(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"x")))
                    .await
                    .unwrap();
                new.commit(crate::Description {
                    kind: "files".into(),
                    created: crate::timestamp(now),
                    host: "node-1".into(),
                    tool: "test".into(),
                    tags: Vec::new(),
                    etcd: None,
                    cluster: None,
                })
                .await
                .unwrap()
            }
        };
        let (first, second) = (backup(1).await, backup(2).await);
        let mut cache = ManifestCache::new();
        assert_eq!(repo.list_cached(&mut cache).await.unwrap().backups.len(), 2);
        assert_eq!(cache.len(), 2);
        // What the earlier listing read is taken as it was, not read again.
        cache.get_mut(&first.id).unwrap().host = "as listed before".into();
        repo.storage().delete(&manifest_key(&second.id)).await.unwrap();
        let third = backup(3).await;
        let listing = repo.list_cached(&mut cache).await.unwrap();
        assert_eq!(cache.len(), 2, "the deleted backup left the cache");
        let ids: Vec<&BackupId> = listing.backups.iter().map(|m| &m.id).collect();
        assert_eq!(ids, [&first.id, &third.id]);
        assert_eq!(listing.backups[0].host, "as listed before");
        assert_eq!(listing.backups[1].host, "node-1");
    }
}
