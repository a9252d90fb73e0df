//! The backup use case against a real etcd and a local repository: the stored artefact decrypts
//! to a sound snapshot of what etcd held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::UNIX_EPOCH;

use lifeboat_core::NoProgress;
use lifeboat_core::backup::{BackupOptions, ETCD_ARTEFACT, Labels, backup};
use lifeboat_repo::{Compression, Encryption, Location, Repository, Storage, StorageSettings, open_sealed};
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, FillSpec, fill};

#[tokio::test]
async fn backup_stores_a_sound_encrypted_snapshot_and_a_manifest() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5).mtls())
        .await
        .unwrap();
    let summary = fill(&server.member().await.unwrap().client(), &FillSpec::small())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(
        &Location::Local(dir.path().join("repo")),
        &StorageSettings::default(),
    )
    .unwrap();
    let identity = age::x25519::Identity::generate();
    let encryption = Encryption::Age {
        recipients: vec![identity.to_public().to_string()],
    };
    let repo = Repository::init(
        storage.clone(),
        encryption.clone(),
        Compression::Zstd { level: 1 },
        UNIX_EPOCH,
    )
    .await
    .unwrap();
    let options = BackupOptions {
        connect: server.connect_options(),
        labels: Labels {
            host: "node-1".into(),
            tags: vec!["test".into()],
            cluster: None,
        },
    };

    let manifest = backup(&repo, &options, &NoProgress, &lifeboat_core::Cancel::new())
        .await
        .unwrap();
    assert_eq!(
        repo.list().await.unwrap().backups,
        std::slice::from_ref(&manifest)
    );
    let etcd = manifest.etcd.as_ref().unwrap();
    assert_eq!(etcd.version, EtcdVersion::V3_5.expected());
    assert_eq!(etcd.revision, summary.revision);
    assert_eq!(etcd.live_keys, summary.live_keys as u64);

    let artefact = &manifest.artefacts[0];
    assert_eq!(artefact.name, ETCD_ARTEFACT);
    let stored = storage.get(&artefact.key).await.unwrap().unwrap();
    let mut plain = Vec::new();
    open_sealed(&artefact.key, &stored[..], &encryption, &[identity])
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    let report = lifeboat_etcd_data::verify(&plain).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.status.unwrap().revision, etcd.revision);
    assert_eq!(plain.len() as u64, artefact.plain_size);

    // etcd gone: no manifest, no object left behind.
    drop(server);
    assert!(
        backup(&repo, &options, &NoProgress, &lifeboat_core::Cancel::new())
            .await
            .is_err()
    );
    assert_eq!(repo.list().await.unwrap().backups.len(), 1);
    assert!(repo.orphans().await.unwrap().is_empty());
}
