//! Streaming one artefact into a repository: plain chunks go through the [`Sealer`] (zstd, age,
//! stored hash) and its output straight into a multipart upload, so no full copy is ever held.

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::store::Upload;
use crate::{Artefact, BackupId, Encryption, Error, Repository, Result, Sealer};

/// Bytes the sealer's output is gathered into before each hand-over to the upload.
const CHUNK: usize = 1 << 20;

/// The sealer's sink: full chunks go to the receiver the async side drains.
struct ChunkSink {
    buffer: Vec<u8>,
    sender: Sender<Vec<u8>>,
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
            self.sender
                .send(chunk)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
}

/// One artefact being written; call [`ArtefactWriter::abort`] on every error path.
pub struct ArtefactWriter {
    name: String,
    key: String,
    encryption: Encryption,
    sealer: Sealer<ChunkSink>,
    sealed: Receiver<Vec<u8>>,
    upload: Upload,
}

impl std::fmt::Debug for ArtefactWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtefactWriter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ArtefactWriter {
    /// Starts artefact `name` of backup `id`.
    pub async fn start(repo: &Repository, id: &BackupId, name: &str) -> Result<Self> {
        let key = format!("backups/{id}/{name}");
        let config = repo.config();
        let crate::Compression::Zstd { level } = config.compression;
        let (sender, sealed) = channel();
        let sink = ChunkSink {
            buffer: Vec::with_capacity(CHUNK),
            sender,
        };
        let sealer = Sealer::new(&key, sink, &config.encryption, level)?;
        let upload = repo.storage().upload(&key).await?;
        Ok(Self {
            name: name.to_string(),
            key,
            encryption: config.encryption.clone(),
            sealer,
            sealed,
            upload,
        })
    }

    async fn drain(&mut self) -> Result<()> {
        while let Ok(chunk) = self.sealed.try_recv() {
            self.upload.write(chunk).await?;
        }
        Ok(())
    }

    /// Adds plain bytes.
    pub async fn write(&mut self, plain: &[u8]) -> Result<()> {
        self.sealer.write(plain)?;
        self.drain().await
    }

    /// Seals and completes the object; returns its manifest entry. `plain_sha256` (hex) is the
    /// producer's hash of every byte given to [`ArtefactWriter::write`].
    pub async fn finish(mut self, plain_sha256: String) -> Result<Artefact> {
        let sealed = match self.sealer.finish() {
            Ok(sealed) => sealed,
            Err(error) => {
                let _ = self.upload.abort().await;
                return Err(error);
            }
        };
        let mut sink = sealed.sink;
        sink.flush().map_err(|source| Error::Io {
            object: self.key.clone(),
            source,
        })?;
        drop(sink);
        while let Ok(chunk) = self.sealed.try_recv() {
            if let Err(error) = self.upload.write(chunk).await {
                let _ = self.upload.abort().await;
                return Err(error);
            }
        }
        self.upload.finish().await?;
        Ok(Artefact {
            name: self.name,
            key: self.key,
            plain_size: sealed.plain_size,
            plain_sha256,
            stored_size: sealed.stored_size,
            stored_sha256: sealed.stored_sha256,
            compression: "zstd".into(),
            encryption: match self.encryption {
                Encryption::Age { .. } => "age".into(),
                Encryption::None => "none".into(),
            },
        })
    }

    /// Gives the artefact up; nothing appears in the repository.
    pub async fn abort(self) -> Result<()> {
        self.upload.abort().await
    }
}
