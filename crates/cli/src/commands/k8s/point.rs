//! Objects at a point in time: a base backup with the captured segments replayed (docs/pitr.md)
//! into a private temporary data directory, removed as soon as the restore is done (its database
//! is read through an open handle), as it holds every Secret.

use anyhow::Context;
use lifeboat_core::k8s_objects::{Detail, ObjectsRead, read_objects};
use lifeboat_core::pitr::{PointProof, PointTarget, restore_to_point};
use lifeboat_core::snapshot_restore::RestoreOptions;
use lifeboat_k8s::EncryptionConfig;
use lifeboat_repo::{Identity, Repository};

use crate::exit::cancel_on_signals;

/// What a read of objects takes: the key prefix, the encryption at rest, the selection and how
/// much of each object to keep.
pub(super) struct Reading<'a> {
    pub prefix: &'a str,
    pub encryption: Option<EncryptionConfig>,
    pub select: super::Select,
    pub detail: Detail,
}

impl Reading<'_> {
    /// The selected objects of the snapshot file at `path`, at `revision`, read off the async
    /// workers.
    pub async fn read(self, path: std::path::PathBuf, revision: Option<i64>) -> anyhow::Result<ObjectsRead> {
        let Reading {
            prefix,
            encryption,
            select,
            detail,
        } = self;
        let prefix = prefix.to_string();
        let read = tokio::task::spawn_blocking(move || {
            read_objects(&path, &prefix, revision, encryption.as_ref(), &*select, detail)
        })
        .await??;
        Ok(read)
    }
}

/// Reads the objects of `cluster` at `target`; the proof must not say the replay differs.
pub(super) async fn read_at_point(
    repo: &Repository,
    identities: &[Identity],
    cluster: Option<u64>,
    target: PointTarget,
    reading: Reading<'_>,
) -> anyhow::Result<ObjectsRead> {
    let plan = crate::commands::pitr::point_plan(repo, cluster, target, identities).await?;
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-k8s-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let peer = "http://127.0.0.1:2380".to_string();
    let options = RestoreOptions {
        snapshot: Default::default(),
        data_dir: dir.path().join("data"),
        wal_dir: None,
        name: "k8s".into(),
        initial_cluster: format!("k8s={peer}"),
        initial_cluster_token: "lifeboat-k8s".into(),
        initial_advertise_peer_urls: vec![peer],
        skip_hash_check: false,
        bump_revision: 0,
        mark_compacted: false,
        replay: None,
    };
    let bar = crate::progress::TerminalBar::new("fetch");
    let (_, proof) = restore_to_point(repo, &plan, identities, &options, &bar, &cancel_on_signals()).await?;
    if let PointProof::Differs { recorded, computed } = proof {
        anyhow::bail!(
            "the replayed data differs from the live member at revision {} (HashKV {computed:08x}, recorded {:08x}): a segment is missing an event",
            recorded.revision,
            recorded.hash
        );
    }
    // Held open, the data is read after its directory is gone: named no longer than the restore.
    let db_path = options.data_dir.join("member/snap/db");
    let db = std::fs::File::open(&db_path).with_context(|| format!("cannot open {}", db_path.display()))?;
    drop(dir);
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&db)));
    let read = reading.read(path, None).await?;
    drop(db);
    Ok(read)
}
