//! `snapshot restore`: a member data directory that stock etcd boots, written natively.
//!
//! Safety: the snapshot is checked (trailer unless skipped, bbolt structure) before anything is
//! written; a non-empty data directory is refused; everything is built in a sibling temporary
//! directory (0700, files 0600), fsynced, and renamed into place; on any error nothing is left.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_bbolt::{Db, FileSource, Source};
use lifeboat_etcd_data::Trailer;
use lifeboat_etcd_data::pitr::Replay;
use lifeboat_etcd_data::restore::{
    BackendReport, Cluster, Member, RaftEncoding, rewrite_backend, snap_file, wal_segment,
};

use crate::fsio::{PendingDir, commit_together, io, sync_dir};
use crate::{Error, Result};

/// The flags of `etcdutl snapshot restore`, resolved.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    /// `--wal-dir`; `<data-dir>/member/wal` when absent.
    pub wal_dir: Option<PathBuf>,
    pub name: String,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
    pub skip_hash_check: bool,
    /// `--bump-revision N` (with `--mark-compacted`); 0 for none.
    pub bump_revision: u64,
    pub mark_compacted: bool,
    /// Point-in-time recovery: captured revisions written after the snapshot's.
    pub replay: Option<std::sync::Arc<dyn Replay>>,
}

/// What was restored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
    pub name: String,
    pub member_id: String,
    pub cluster_id: String,
    pub members: usize,
    #[serde(flatten)]
    pub backend: BackendReport,
    pub seconds: f64,
}

/// Why the flags cannot work, said before anything is read or written.
fn usage(message: String) -> Error {
    Error::Usage { message }
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// A new file only its owner can read (0600); an existing one is never opened.
pub(crate) fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = create_private(path)?;
    file.write_all(bytes).map_err(io("write", path))?;
    file.sync_all().map_err(io("fsync", path))
}

/// Checks the flags and the target before anything is read or written; returns the new cluster
/// and this member.
fn check_target(options: &RestoreOptions) -> Result<(Cluster, Member)> {
    if options.mark_compacted != (options.bump_revision > 0) {
        return Err(usage(
            "--mark-compacted and --bump-revision N (N > 0) go together: give both or neither".into(),
        ));
    }
    let cluster = Cluster::from_initial_cluster(&options.initial_cluster, &options.initial_cluster_token)
        .map_err(|e| usage(e.to_string()))?;
    let member = cluster
        .member(&options.name, &options.initial_advertise_peer_urls)
        .map_err(|e| usage(e.to_string()))?
        .clone();
    if !is_empty_dir(&options.data_dir)? {
        return Err(usage(format!(
            "data directory {} is not empty; restore into a new directory (and keep the old data until the restored member works)",
            options.data_dir.display()
        )));
    }
    if let Some(wal) = &options.wal_dir
        && wal.exists()
    {
        return Err(usage(format!(
            "--wal-dir {} already exists; give a path that does not",
            wal.display()
        )));
    }
    Ok((cluster, member))
}

/// Fails, before any work, when a restore with `options` could not succeed (flags, target).
pub fn preflight(options: &RestoreOptions) -> Result<()> {
    check_target(options).map(|_| ())
}

/// Restores `options.snapshot` into a new member data directory.
pub fn restore(options: &RestoreOptions) -> Result<RestoreReport> {
    let started = Instant::now();
    let (cluster, member) = check_target(options)?;

    // Read page by page, and hashed by a sequential read: memory stays at a few pages whatever
    // the snapshot's size (a mapping would count the whole file in the process's RSS).
    let snapshot = FileSource::open(&options.snapshot).map_err(|e| Error::SnapshotFile {
        path: options.snapshot.clone(),
        source: e.into(),
    })?;
    let damaged = |source| Error::SnapshotFile {
        path: options.snapshot.clone(),
        source,
    };
    let has_trailer = lifeboat_etcd_data::has_trailer(snapshot.len());
    if !has_trailer && !options.skip_hash_check {
        return Err(usage(format!(
            "{} has no sha256 trailer (a db copied from a data directory?); pass --skip-hash-check to restore it anyway",
            options.snapshot.display()
        )));
    }

    let data = PendingDir::create(&options.data_dir)?;
    let snap_dir = data.dir("member/snap")?;
    let db_path = snap_dir.join("db");
    let db_file = create_private(&db_path)?;
    let bump = options.mark_compacted.then_some(options.bump_revision);
    // The trailer is hashed on a second core while the backend is rewritten (the bbolt check
    // runs in the same pass as the copy), and written pages are flushed to disk as they come;
    // any finding aborts before a rename, and the hidden directory goes with it. Skipped, it
    // is not hashed at all.
    let writing = std::sync::atomic::AtomicBool::new(true);
    let (trailer_state, backend) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| match options.skip_hash_check {
            true => Ok(Trailer::Absent),
            false => crate::snapshot_file::trailer(&options.snapshot, &snapshot),
        });
        let flushing = scope.spawn(|| {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = db_file.sync_data();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let backend = Db::open(&snapshot)
            .map_err(Into::into)
            .and_then(|db| rewrite_backend(&db, &db_file, &cluster, bump, options.replay.as_deref()));
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = flushing.join();
        let trailer_state = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (trailer_state, backend)
    });
    if let Trailer::Mismatch { expected, actual } = trailer_state.map_err(damaged)?
        && !options.skip_hash_check
    {
        return Err(damaged(lifeboat_etcd_data::Error::TrailerMismatch {
            expected,
            actual,
        }));
    }
    let backend = backend.map_err(damaged)?;
    db_file.sync_all().map_err(io("fsync", &db_path))?;
    let encoding = RaftEncoding::of(
        backend
            .snapshot_version
            .as_deref()
            .and_then(lifeboat_etcd_data::Version::parse),
    );
    let (snap_name, snap_bytes) = snap_file(&cluster, encoding);
    write_private(&snap_dir.join(snap_name), &snap_bytes)?;
    sync_dir(&snap_dir)?;

    let wal_bytes = wal_segment(&cluster, &member, encoding);
    const WAL_NAME: &str = "0000000000000000-0000000000000000.wal";
    let separate_wal = match &options.wal_dir {
        Some(target) => {
            let wal = PendingDir::create(target)?;
            write_private(&wal.temp.join(WAL_NAME), &wal_bytes)?;
            sync_dir(&wal.temp)?;
            Some((wal, target.clone()))
        }
        None => {
            let wal_dir = data.dir("member/wal")?;
            write_private(&wal_dir.join(WAL_NAME), &wal_bytes)?;
            sync_dir(&wal_dir)?;
            None
        }
    };
    sync_dir(&data.temp.join("member"))?;
    sync_dir(&data.temp)?;

    let wal_dir = options
        .wal_dir
        .clone()
        .unwrap_or_else(|| options.data_dir.join("member/wal"));
    // The data and WAL directories become visible together or not at all.
    let mut renames = Vec::from_iter(separate_wal);
    renames.push((data, options.data_dir.clone()));
    commit_together(renames)?;
    Ok(RestoreReport {
        data_dir: options.data_dir.clone(),
        wal_dir,
        name: options.name.clone(),
        member_id: format!("{:x}", member.id),
        cluster_id: format!("{:x}", cluster.id),
        members: cluster.members.len(),
        backend,
        seconds: started.elapsed().as_secs_f64(),
    })
}
