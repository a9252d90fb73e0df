//! A backup being written: the one way objects enter `backups/<ID>/`. Keys are derived from the
//! ID and the artefact name, never taken from input; the manifest is written last, on commit;
//! an uncommitted backup aborts its open upload and deletes what it completed, whether it is
//! given up, fails or is dropped. It never writes into a backup that exists (a concurrent copy of
//! the same ID committed first), and its cleanup deletes only objects it wrote, never a manifest
//! nor anything a committed manifest names.

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::format::{artefact_key, check_artefact_name, manifest_key};
use crate::store::Upload;
use crate::{Artefact, BackupId, Encryption, Error, EtcdFacts, FORMAT, Manifest, Repository, Result, Sealer};

/// Plain bytes gathered before each hand-over to a blocking thread (zstd, age and hashing must
/// not run on the async workers), and the size of the sealed chunks handed to the upload.
const BATCH: usize = 1 << 20;

/// What a manifest says besides its ID and artefacts, which the backup itself supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `etcd`, `files` or `stream`.
    pub kind: String,
    /// RFC 3339.
    pub created: String,
    pub host: String,
    pub tool: String,
    pub tags: Vec<String>,
    pub etcd: Option<EtcdFacts>,
    /// The etcd cluster a files or stream backup belongs to (hex ID), when known.
    pub cluster: Option<String>,
}

/// The sealer's sink: full chunks go to the receiver the async side drains.
struct ChunkSink {
    buffer: Vec<u8>,
    sender: Sender<Vec<u8>>,
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A chunk never grows past its capacity: the upload holds chunks until their part is
        // sent, and a grown one would hold twice its bytes.
        let take = buf.len().min(BATCH - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..take]);
        if self.buffer.len() >= BATCH {
            self.flush()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(BATCH));
            self.sender
                .send(chunk)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
}

enum Mode {
    /// Plain bytes in, compressed and encrypted for this repository.
    Sealing {
        sealer: Option<Sealer<ChunkSink>>,
        sealed: Receiver<Vec<u8>>,
    },
    /// Another repository's stored bytes, unchanged (both encrypt to the same recipients).
    Verbatim {
        source: Artefact,
        sha256: Option<Sha256>,
        size: u64,
    },
}

/// One artefact on its way into storage.
struct ArtefactUpload {
    name: String,
    key: String,
    mode: Mode,
    batch: Vec<u8>,
    upload: Upload,
}

fn joined<T>(key: &str, joined: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    joined.map_err(|e| Error::Io {
        object: key.to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

impl ArtefactUpload {
    /// Hands the gathered batch to a blocking thread and uploads what comes out.
    async fn flush_batch(&mut self) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let key = self.key.clone();
        match &mut self.mode {
            Mode::Sealing { sealer, sealed } => {
                let Some(mut taken) = sealer.take() else {
                    return Ok(());
                };
                let done = tokio::task::spawn_blocking(move || taken.write(&batch).map(|()| taken)).await;
                *sealer = Some(joined(&key, done)??);
                while let Ok(chunk) = sealed.try_recv() {
                    self.upload.write(chunk).await?;
                }
            }
            Mode::Verbatim { sha256, size, .. } => {
                let Some(mut hasher) = sha256.take() else {
                    return Ok(());
                };
                *size += batch.len() as u64;
                let done = tokio::task::spawn_blocking(move || {
                    hasher.update(&batch);
                    (hasher, batch)
                })
                .await;
                let (hasher, batch) = joined(&key, done)?;
                *sha256 = Some(hasher);
                self.upload.write(batch).await?;
            }
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.batch.extend_from_slice(bytes);
        if self.batch.len() >= BATCH {
            self.flush_batch().await?;
        }
        Ok(())
    }

    /// Completes the object and returns its manifest entry.
    async fn finish(mut self, plain_sha256: String, encryption: &Encryption) -> Result<Artefact> {
        let finished: Result<(u64, u64, String)> = async {
            self.flush_batch().await?;
            match &mut self.mode {
                Mode::Sealing { sealer, sealed } => {
                    let Some(taken) = sealer.take() else {
                        return Err(Error::Io {
                            object: self.key.clone(),
                            source: std::io::Error::other("artefact already finished"),
                        });
                    };
                    let object = self.key.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        let mut sealed = taken.finish()?;
                        sealed
                            .sink
                            .flush()
                            .map_err(|source| Error::Io { object, source })?;
                        Ok::<_, Error>((sealed.plain_size, sealed.stored_size, sealed.stored_sha256))
                    })
                    .await;
                    let sizes = joined(&self.key, done)??;
                    while let Ok(chunk) = sealed.try_recv() {
                        self.upload.write(chunk).await?;
                    }
                    Ok(sizes)
                }
                Mode::Verbatim { source, sha256, size } => {
                    let hash = sha256
                        .take()
                        .map(|h| hex::encode(h.finalize()))
                        .unwrap_or_default();
                    Ok((source.plain_size, *size, hash))
                }
            }
        }
        .await;
        let (plain_size, stored_size, stored_sha256) = match finished {
            Ok(sizes) => sizes,
            Err(error) => {
                let _ = self.upload.abort().await;
                return Err(error);
            }
        };
        // A failed completion is aborted by the upload itself.
        self.upload.finish().await?;
        Ok(Artefact {
            name: self.name,
            key: self.key,
            plain_size,
            plain_sha256,
            stored_size,
            stored_sha256,
            compression: "zstd".into(),
            encryption: encryption_name(encryption).into(),
        })
    }
}

pub(crate) fn encryption_name(encryption: &Encryption) -> &'static str {
    match encryption {
        Encryption::Age { .. } => "age",
        Encryption::None => "none",
    }
}

/// A backup being written into a repository; see the module documentation.
pub struct NewBackup {
    repo: Repository,
    id: BackupId,
    artefacts: Vec<Artefact>,
    open: Option<ArtefactUpload>,
    /// Starting and completing an upload run as tasks: a caller cancelled while one is in flight
    /// must still learn the upload (to abort it) or the object (to delete it).
    starting: Option<JoinHandle<Result<Upload>>>,
    finishing: Option<JoinHandle<Result<Artefact>>>,
    settled: bool,
}

impl std::fmt::Debug for NewBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewBackup")
            .field("id", &self.id)
            .field("artefacts", &self.artefacts.len())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Starts backup `id`; nothing of it is listed until [`NewBackup::commit`].
    pub fn begin(&self, id: BackupId) -> NewBackup {
        NewBackup {
            repo: self.clone(),
            id,
            artefacts: Vec::new(),
            open: None,
            starting: None,
            finishing: None,
            settled: false,
        }
    }
}

impl NewBackup {
    pub fn id(&self) -> &BackupId {
        &self.id
    }

    async fn open(&mut self, name: &str, mode: impl FnOnce(&str) -> Result<Mode>) -> Result<()> {
        check_artefact_name(name)?;
        if self.artefacts.iter().any(|a| a.name == name) {
            return Err(Error::ArtefactName {
                name: name.to_string(),
                reason: "the backup already has an artefact of that name",
            });
        }
        if let Some(previous) = self.open.take() {
            let _ = previous.upload.abort().await;
        }
        if self.repo.storage().get(&manifest_key(&self.id)).await?.is_some() {
            return Err(Error::BackupExists {
                repo: self.repo.storage().repo().to_string(),
                id: self.id.to_string(),
            });
        }
        let key = artefact_key(&self.id, name);
        let mode = mode(&key)?;
        let (storage, starting_key) = (self.repo.storage().clone(), key.clone());
        let starting = self
            .starting
            .insert(tokio::spawn(async move { storage.upload(&starting_key).await }));
        let started = joined(&key, starting.await);
        self.starting = None;
        let upload = started??;
        self.open = Some(ArtefactUpload {
            name: name.to_string(),
            key,
            mode,
            batch: Vec::with_capacity(BATCH),
            upload,
        });
        Ok(())
    }

    /// Starts artefact `name`: plain bytes given to [`NewBackup::write`] are compressed and
    /// encrypted as the repository says.
    pub async fn start_artefact(&mut self, name: &str) -> Result<()> {
        let config = self.repo.config().clone();
        let crate::Compression::Zstd { level } = config.compression;
        self.open(name, |key| {
            let (sender, sealed) = channel();
            let sink = ChunkSink {
                buffer: Vec::with_capacity(BATCH),
                sender,
            };
            let sealer = Sealer::new(key, sink, &config.encryption, level)?;
            Ok(Mode::Sealing {
                sealer: Some(sealer),
                sealed,
            })
        })
        .await
    }

    /// Starts a copy of `source`, another repository's artefact whose stored bytes this one can
    /// keep as they are: [`NewBackup::write`] then takes those stored bytes.
    pub async fn start_verbatim(&mut self, source: &Artefact) -> Result<()> {
        self.open(&source.name, |_| {
            Ok(Mode::Verbatim {
                source: source.clone(),
                sha256: Some(Sha256::new()),
                size: 0,
            })
        })
        .await
    }

    /// Adds bytes to the open artefact.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.open {
            Some(open) => open.write(bytes).await,
            None => Err(not_open(&self.id)),
        }
    }

    /// Completes the open artefact. `plain_sha256` (hex) is the producer's hash of every plain
    /// byte (for a verbatim copy, the source's).
    pub async fn finish_artefact(&mut self, plain_sha256: String) -> Result<Artefact> {
        let Some(open) = self.open.take() else {
            return Err(not_open(&self.id));
        };
        let encryption = self.repo.config().encryption.clone();
        let key = open.key.clone();
        let finishing = self.finishing.insert(tokio::spawn(async move {
            open.finish(plain_sha256, &encryption).await
        }));
        let finished = joined(&key, finishing.await);
        self.finishing = None;
        let artefact = finished??;
        self.artefacts.push(artefact.clone());
        Ok(artefact)
    }

    /// Makes the backup exist: its manifest, written after every artefact. On failure the
    /// backup is given up.
    pub async fn commit(mut self, description: Description) -> Result<Manifest> {
        if self.open.is_some() || self.artefacts.is_empty() {
            let error = Error::ArtefactName {
                name: self.id.to_string(),
                reason: "a backup needs at least one finished artefact and none open",
            };
            self.abort().await;
            return Err(error);
        }
        let manifest = Manifest {
            format: FORMAT,
            id: self.id.clone(),
            kind: description.kind,
            created: description.created,
            host: description.host,
            tool: description.tool,
            tags: description.tags,
            etcd: description.etcd,
            cluster: description.cluster,
            artefacts: std::mem::take(&mut self.artefacts),
            stored_at: None,
            unchanged_at: None,
        };
        let written = match manifest.check_location(&self.id, self.repo.config()) {
            Ok(()) => self.repo.put_manifest(&manifest).await,
            Err(reason) => Err(Error::Forged {
                object: self.id.to_string(),
                reason,
            }),
        };
        if let Err(error) = written {
            self.artefacts = manifest.artefacts;
            self.abort().await;
            return Err(error);
        }
        self.settled = true;
        Ok(manifest)
    }

    /// Gives the backup up: the open upload is aborted and completed objects deleted.
    pub async fn abort(mut self) {
        self.settled = true;
        cleanup(self.leftovers()).await;
    }

    fn leftovers(&mut self) -> Leftovers {
        Leftovers {
            repo: self.repo.clone(),
            id: self.id.clone(),
            written: self.artefacts.iter().map(|a| a.key.clone()).collect(),
            open: self.open.take(),
            starting: self.starting.take(),
            finishing: self.finishing.take(),
        }
    }

    /// Commits when `outcome` holds a description, gives the backup up when it holds an error.
    pub async fn settle<E: From<Error>>(
        self,
        outcome: std::result::Result<Description, E>,
    ) -> std::result::Result<Manifest, E> {
        match outcome {
            Ok(description) => Ok(self.commit(description).await?),
            Err(error) => {
                self.abort().await;
                Err(error)
            }
        }
    }
}

fn not_open(id: &BackupId) -> Error {
    Error::ArtefactName {
        name: id.to_string(),
        reason: "no artefact is open (start one first)",
    }
}

/// What an unfinished backup may have in storage.
struct Leftovers {
    repo: Repository,
    id: BackupId,
    /// Keys of the artefacts it completed.
    written: Vec<String>,
    open: Option<ArtefactUpload>,
    starting: Option<JoinHandle<Result<Upload>>>,
    finishing: Option<JoinHandle<Result<Artefact>>>,
}

async fn cleanup(mut leftovers: Leftovers) {
    if let Some(open) = leftovers.open {
        leftovers.written.push(open.key.clone());
        let _ = open.upload.abort().await;
    }
    if let Some(starting) = leftovers.starting
        && let Ok(Ok(upload)) = starting.await
    {
        let _ = upload.abort().await;
    }
    if let Some(finishing) = leftovers.finishing
        && let Ok(Ok(artefact)) = finishing.await
    {
        leftovers.written.push(artefact.key);
    }
    let repo = &leftovers.repo;
    // A manifest of this ID was committed meanwhile by another writer (a concurrent copy): what
    // it names is that backup's, whoever wrote it last.
    let kept: Vec<String> = match repo.storage().get(&manifest_key(&leftovers.id)).await {
        Ok(None) => Vec::new(),
        Ok(Some(_)) => match repo.manifest(&leftovers.id).await {
            Ok(manifest) => manifest.artefacts.into_iter().map(|a| a.key).collect(),
            // Unreadable: leave everything for `repo check` to report.
            Err(_) => return,
        },
        Err(_) => return,
    };
    for key in leftovers.written.iter().filter(|k| !kept.contains(k)) {
        let _ = repo.storage().delete(key).await;
    }
}

impl Drop for NewBackup {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped half-way (a cancelled task): clean up in the background if a runtime is
        // still there; otherwise `repo prune` finds what is left.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cleanup(self.leftovers()));
        }
    }
}
