//! `snapshot save`: etcd's snapshot stream into a local file, trailer-checked before the file
//! takes its name, with a `sha256sum`-format companion.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_etcd_conn::{ConnectOptions, MemberStatus, connect_first_healthy};
use lifeboat_etcd_data::{SnapshotStatus, TRAILER_LEN, TrailerCheck};
use tracing::info;

use crate::blocking::{Batched, blocking};
use crate::fsio::{PendingFile, part_path};
use crate::{Cancel, Error, Progress, Result};

/// What to save and where.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// How to reach etcd.
    pub connect: ConnectOptions,
    /// The snapshot file to write.
    pub path: PathBuf,
    /// Replace `path` if it exists.
    pub force: bool,
}

/// What was saved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SaveReport {
    /// The snapshot file.
    pub file: PathBuf,
    /// Its `sha256sum`-format companion.
    pub sha256_file: PathBuf,
    /// Size of the file, trailer included.
    pub bytes: u64,
    /// SHA-256 of the whole file (what `sha256sum FILE` prints).
    pub sha256: String,
    /// The endpoint that served the snapshot.
    pub endpoint: String,
    /// Revision of the saved data (main revision of its last `key` entry).
    pub revision: i64,
    /// TOTAL KEYS of the saved file, as `etcdutl snapshot status` of its etcd counts them
    /// (every bucket entry up to 3.5, live user keys from 3.6).
    pub total_key: u64,
    /// etcdutl's status hash of the saved file.
    pub hash: u32,
    /// Cluster ID, hex as etcdctl prints it.
    pub cluster_id: String,
    /// Member ID of the endpoint, hex.
    pub member_id: String,
    /// etcd server version.
    pub etcd_version: String,
    /// Wall time from connecting to the file's rename.
    pub seconds: f64,
}

/// `FILE` → `FILE.sha256`.
pub fn sha256_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// Refuses a member whose etcd is outside the versions whose snapshot format Lifeboat knows.
pub(crate) fn check_server_version(status: &MemberStatus) -> Result<()> {
    match lifeboat_etcd_data::Version::parse(&status.version) {
        Some(version) => version
            .check_supported(&format!("etcd at {}", status.endpoint))
            .map_err(Error::EtcdVersion),
        None => Ok(()),
    }
}

/// Saves a snapshot from the first healthy endpoint. Once `cancel` fires, the partial file is
/// removed and [`Error::Interrupted`] returned.
pub async fn save(options: &SaveOptions, progress: &dyn Progress, cancel: &Cancel) -> Result<SaveReport> {
    cancel.run(save_uncancelled(options, progress)).await
}

async fn save_uncancelled(options: &SaveOptions, progress: &dyn Progress) -> Result<SaveReport> {
    let started = Instant::now();
    if !options.force && std::fs::symlink_metadata(&options.path).is_ok() {
        return Err(Error::Exists {
            path: options.path.clone(),
        });
    }
    let mut member = connect_first_healthy(&options.connect).await?;
    let status = member.status().clone();
    check_server_version(&status)?;
    info!(endpoint = %status.endpoint, version = %status.version, db_size = status.db_size, "saving snapshot");

    let mut stream = member.snapshot().await?;
    let pending = PendingFile::create(&options.path)?;
    // Writing and hashing run on the blocking pool, a batch at a time.
    let mut sink = Batched::new((pending, TrailerCheck::new()), |(pending, trailer), bytes| {
        pending.write_all(bytes)?;
        trailer.update(bytes);
        Ok(())
    });
    progress.start(Some(status.db_size + TRAILER_LEN as u64));
    let streamed: Result<()> = async {
        while let Some(chunk) = stream.next_chunk().await? {
            sink.push(&chunk).await?;
            progress.advance(chunk.len() as u64);
            // When etcd sends faster than we write, every poll finds data ready; yielding now
            // and then lets a cancellation (SIGINT) in.
            tokio::task::coop::consume_budget().await;
        }
        Ok(())
    }
    .await;
    progress.finish();
    streamed?;
    let ((pending, trailer), _) = sink.finish().await?;
    let damaged = |source| Error::Snapshot {
        endpoint: status.endpoint.clone(),
        source,
    };
    let verified = trailer.finish().map_err(damaged)?;
    // The trailer proves the bytes arrived as sent; reading the image proves etcd sent a
    // sound one, and gives the revision and key count of what was actually saved.
    // Read page by page: mapping would count the whole file in our memory use.
    let part = part_path(&options.path);
    let contents = blocking(move || crate::snapshot_file::status(&part, None))
        .await
        .map_err(|e| match e {
            Error::SnapshotFile { source, .. } => damaged(source),
            other => other,
        })?;

    let bytes = pending.written();
    let sha256 = hex::encode(verified.sha256);
    // Both files are complete before either is renamed, so a full disk leaves neither.
    let sha256_file = sha256_path(&options.path);
    let name = options
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut companion = PendingFile::create(&sha256_file)?;
    companion.write_all(format!("{sha256}  {name}\n").as_bytes())?;
    let file = pending.commit()?;
    companion.commit()?;
    Ok(report(
        status,
        contents,
        file,
        sha256_file,
        bytes,
        sha256,
        started,
    ))
}

fn report(
    status: MemberStatus,
    contents: SnapshotStatus,
    file: PathBuf,
    sha256_file: PathBuf,
    bytes: u64,
    sha256: String,
    started: Instant,
) -> SaveReport {
    SaveReport {
        file,
        sha256_file,
        bytes,
        sha256,
        endpoint: status.endpoint,
        revision: contents.revision,
        total_key: contents.total_key,
        hash: contents.hash,
        cluster_id: format!("{:x}", status.cluster_id),
        member_id: format!("{:x}", status.member_id),
        etcd_version: status.version,
        seconds: started.elapsed().as_secs_f64(),
    }
}
