//! Reading artefacts back: the stored bytes hashed as they stream in, and, with an identity, the
//! plain bytes (age → zstd) streamed into a sink on a blocking thread. Nothing is held whole.

use std::io::{Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::seal::Hashing;
use crate::{Artefact, Error, Repository, Result, open_sealed};

/// Stored chunks in flight between the download and the decrypting thread.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Plain buffers in flight between the decompressing and the hashing thread.
const PLAIN_IN_FLIGHT: usize = 8;

/// A [`Hashing`] writer on a thread of its own: bytes written here are hashed and written there.
struct HashingThread<W> {
    sender: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<std::io::Result<Hashing<W>>>>,
}

impl<W: Write + Send + 'static> HashingThread<W> {
    fn start(sink: W) -> Self {
        let (sender, buffers) = std::sync::mpsc::sync_channel::<Vec<u8>>(PLAIN_IN_FLIGHT);
        let worker = std::thread::spawn(move || {
            let mut hashing = Hashing::new(sink);
            for buffer in buffers {
                hashing.write_all(&buffer)?;
            }
            hashing.flush()?;
            Ok(hashing)
        });
        Self {
            sender: Some(sender),
            worker: Some(worker),
        }
    }

    /// The worker's outcome once it has stopped (its error, when it stopped early).
    fn join(&mut self) -> std::io::Result<Hashing<W>> {
        self.sender = None;
        match self.worker.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(std::io::Error::other("the hashing thread already ended")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let sent = self.sender.as_ref().map(|s| s.send(buf.to_vec()));
        match sent {
            Some(Ok(())) => Ok(()),
            // The worker stopped: its own error says why.
            _ => self
                .join()
                .and_then(|_| Err(std::io::Error::other("the hashing thread ended early"))),
        }
    }

    /// The sink, the byte count and the hex SHA-256, once everything is written.
    fn finish(mut self) -> std::io::Result<(W, u64, String)> {
        self.join().map(Hashing::finish)
    }
}

/// What reading an artefact back measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub stored_size: u64,
    pub stored_sha256: String,
    /// Set when the plain bytes were read too.
    pub plain: Option<(u64, String)>,
}

impl Artefact {
    /// How `read` differs from what the manifest records; empty when it matches.
    pub fn mismatches(&self, read: &ReadBack) -> Vec<String> {
        let mut found = Vec::new();
        if read.stored_size != self.stored_size {
            found.push(format!(
                "stored size is {} bytes, the manifest says {}",
                read.stored_size, self.stored_size
            ));
        }
        if read.stored_sha256 != self.stored_sha256 {
            found.push(format!(
                "stored sha256 is {}, the manifest says {}",
                read.stored_sha256, self.stored_sha256
            ));
        }
        if let Some((size, sha256)) = &read.plain {
            if *size != self.plain_size {
                found.push(format!(
                    "plain size is {size} bytes, the manifest says {}",
                    self.plain_size
                ));
            }
            if *sha256 != self.plain_sha256 {
                found.push(format!(
                    "plain sha256 is {sha256}, the manifest says {}",
                    self.plain_sha256
                ));
            }
        }
        found
    }
}

/// The decrypting thread's input: stored chunks from the download.
struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl Repository {
    async fn download(&self, artefact: &Artefact) -> Result<crate::store::Download> {
        self.storage()
            .download(&artefact.key)
            .await?
            .ok_or_else(|| Error::MissingObject {
                repo: self.storage().repo().to_string(),
                key: artefact.key.clone(),
            })
    }

    /// Refuses to read past the stored size the manifest records.
    fn within_stored_size(&self, artefact: &Artefact, read: u64) -> Result<()> {
        match read > artefact.stored_size {
            true => Err(Error::TooLarge {
                object: format!("{}/{}", self.storage().repo(), artefact.key),
                what: "stored size",
                limit: artefact.stored_size,
            }),
            false => Ok(()),
        }
    }

    /// Reads an artefact's stored bytes and hashes them; `progress` gets each chunk's length.
    pub async fn read_stored(
        &self,
        artefact: &Artefact,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ReadBack> {
        let mut download = self.download(artefact).await?;
        let (mut size, mut sha256) = (0u64, Sha256::new());
        while let Some(chunk) = download.next_chunk().await? {
            sha256.update(&chunk);
            size += chunk.len() as u64;
            self.within_stored_size(artefact, size)?;
            progress(chunk.len() as u64);
        }
        Ok(ReadBack {
            stored_size: size,
            stored_sha256: hex::encode(sha256.finalize()),
            plain: None,
        })
    }

    /// Reads an artefact, decrypts and decompresses it into `sink`, hashing both sides.
    pub async fn read_plain<W: Write + Send + 'static>(
        &self,
        artefact: &Artefact,
        identities: Vec<age::x25519::Identity>,
        sink: W,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(W, ReadBack)> {
        let mut download = self.download(artefact).await?;
        let (sender, chunks) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let object = format!("{}/{}", self.storage().repo(), artefact.key);
        let encryption = self.config().encryption.clone();
        let plain_size = artefact.plain_size;
        let opening = tokio::task::spawn_blocking(move || -> Result<(W, u64, String)> {
            let reader = ChannelReader {
                chunks,
                current: Bytes::new(),
            };
            let mut plain = open_sealed(&object, reader, &encryption, &identities)?;
            // Decrypting and decompressing here, hashing and writing on a second core.
            let mut hashing = HashingThread::start(sink);
            // Not io::copy: a failure to read (decryption) and to write (a full disk) must not
            // be mistaken for each other.
            let mut buffer = vec![0u8; 256 << 10];
            let written = |source| Error::Io {
                object: format!("the plain copy of {object}"),
                source,
            };
            let mut plain_read = 0u64;
            loop {
                let n = match plain.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::Decrypt {
                            object: object.clone(),
                            message: e.to_string(),
                        });
                    }
                };
                // A decompression bomb stops at the size the manifest records.
                plain_read += n as u64;
                if plain_read > plain_size {
                    return Err(Error::TooLarge {
                        object: object.clone(),
                        what: "plain (decompressed) size",
                        limit: plain_size,
                    });
                }
                hashing.write_all(&buffer[..n]).map_err(written)?;
            }
            let (sink, size, sha256) = hashing.finish().map_err(written)?;
            Ok((sink, size, sha256))
        });
        let (mut size, mut sha256) = (0u64, Sha256::new());
        let downloaded: Result<()> = async {
            while let Some(chunk) = download.next_chunk().await? {
                sha256.update(&chunk);
                size += chunk.len() as u64;
                self.within_stored_size(artefact, size)?;
                progress(chunk.len() as u64);
                if sender.send(chunk).await.is_err() {
                    // The opening side stopped early; its error says why.
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(sender);
        let opened = opening.await.map_err(|e| Error::Io {
            object: artefact.key.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // A failed download explains a failed decryption, not the other way round.
        downloaded?;
        let (sink, plain_size, plain_sha256) = opened?;
        Ok((
            sink,
            ReadBack {
                stored_size: size,
                stored_sha256: hex::encode(sha256.finalize()),
                plain: Some((plain_size, plain_sha256)),
            },
        ))
    }
}
