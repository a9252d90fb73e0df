//! `copy` with the target's retention against real local repositories: what the target's policy
//! would remove at once is left out, so copy and forget do not undo each other on every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::UNIX_EPOCH;

use lifeboat_core::backup::Labels;
use lifeboat_core::copy::copy;
use lifeboat_core::forget::{ForgetOptions, forget};
use lifeboat_core::retention::Policy;
use lifeboat_core::stream::backup_stream;
use lifeboat_core::{Cancel, NoProgress};
use lifeboat_repo::{Compression, Encryption, Location, Repository, Storage, StorageSettings};

async fn repository(dir: &std::path::Path) -> Repository {
    let storage = Storage::open(&Location::Local(dir.to_path_buf()), &StorageSettings::default()).unwrap();
    Repository::init(
        storage,
        Encryption::None,
        Compression::Zstd { level: 1 },
        UNIX_EPOCH,
    )
    .await
    .unwrap()
}

async fn stream_backup(repo: &Repository, n: usize) {
    let labels = Labels {
        host: "node-1".into(),
        tags: Vec::new(),
        cluster: None,
    };
    let command = ["sh".to_string(), "-c".into(), format!("echo dump {n}")];
    backup_stream(repo, "app.sql", &command, &labels, &NoProgress, &Cancel::new())
        .await
        .unwrap();
    // Backup IDs order by their millisecond timestamps.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

#[tokio::test]
async fn copy_leaves_out_what_the_targets_retention_would_remove_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = repository(&dir.path().join("source")).await;
    let target = repository(&dir.path().join("target")).await;
    for n in 0..5 {
        stream_backup(&source, n).await;
    }
    let keep = Policy {
        last: Some(2),
        ..Policy::default()
    };
    let temp = dir.path();
    let cancel = Cancel::new();
    let newest: Vec<_> = source.list().await.unwrap().backups[3..]
        .iter()
        .map(|m| m.id.clone())
        .collect();

    let report = copy(&source, &target, &[], temp, Some(&keep), &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!(
        (report.copied.clone(), report.left_out, report.skipped),
        (newest.clone(), 3, 0)
    );
    let forget_options = ForgetOptions {
        policy: keep.clone(),
        tags: Vec::new(),
        dry_run: false,
    };
    let forgotten = forget(&target, &forget_options, &cancel).await.unwrap();
    assert!(
        forgotten.decisions.iter().all(|d| d.keep),
        "nothing to forget right after the copy"
    );

    let again = copy(&source, &target, &[], temp, Some(&keep), &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!((again.copied.len(), again.left_out, again.skipped), (0, 3, 2));

    stream_backup(&source, 5).await;
    let next = copy(&source, &target, &[], temp, Some(&keep), &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!((next.copied.len(), next.left_out, next.skipped), (1, 3, 2));
    let forgotten = forget(&target, &forget_options, &cancel).await.unwrap();
    assert_eq!(forgotten.decisions.iter().filter(|d| !d.keep).count(), 1);
    assert_eq!(target.list().await.unwrap().backups.len(), 2);

    // Without a policy every missing backup is copied, as `lifeboat copy` does.
    let all = copy(&source, &target, &[], temp, None, &NoProgress, &cancel)
        .await
        .unwrap();
    assert_eq!((all.copied.len(), all.left_out), (4, 0));
}
