//! `repo check` on a real local repository: a backup named by a clock running ahead is a
//! finding that names its host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lifeboat_core::Cancel;
use lifeboat_core::repo_check::check;
use lifeboat_repo::{
    BackupId, Compression, Description, Encryption, Location, Repository, Storage, StorageSettings,
};
use sha2::{Digest, Sha256};

async fn committed_at(repo: &Repository, id_time: SystemTime, host: &str) -> BackupId {
    let mut backup = repo.begin(BackupId::new(id_time));
    backup.start_artefact("app.sql").await.unwrap();
    backup.write(&[1; 10]).await.unwrap();
    backup
        .finish_artefact(hex::encode(Sha256::digest([1; 10])))
        .await
        .unwrap();
    let description = Description {
        kind: "stream".into(),
        created: lifeboat_repo::timestamp(id_time),
        host: host.into(),
        tool: "lifeboat test".into(),
        tags: Vec::new(),
        etcd: None,
        cluster: None,
    };
    backup.commit(description).await.unwrap().id
}

#[tokio::test]
async fn a_backup_named_by_a_clock_running_ahead_is_a_finding_naming_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(
        &Location::Local(dir.path().to_path_buf()),
        &StorageSettings::default(),
    )
    .unwrap();
    let repo = Repository::init(
        storage,
        Encryption::None,
        Compression::Zstd { level: 1 },
        UNIX_EPOCH,
    )
    .await
    .unwrap();
    committed_at(&repo, SystemTime::now(), "node-1").await;
    assert!(check(&repo, &Cancel::new()).await.unwrap().is_clean());
    let ahead = committed_at(&repo, SystemTime::now() + Duration::from_secs(3 * 3600), "node-2").await;
    let found = check(&repo, &Cancel::new()).await.unwrap();
    assert!(!found.is_clean());
    assert_eq!(found.clock_ahead.len(), 1);
    assert_eq!(found.clock_ahead[0].id, ahead);
    assert_eq!(found.clock_ahead[0].host, "node-2");
    assert!(
        found.clock_ahead[0].ahead_seconds > 3 * 3600 - 60,
        "{:?}",
        found.clock_ahead
    );
}
