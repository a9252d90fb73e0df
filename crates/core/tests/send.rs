//! Every long operation's future is `Send`, so an agent can `tokio::spawn` it. This is checked
//! when the test compiles: the futures are built and never polled.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use lifeboat_core::backup::{BackupOptions, Labels, backup};
use lifeboat_core::backups::{dump, restore_backup, verify_backup};
use lifeboat_core::copy::copy;
use lifeboat_core::drill::{DrillOptions, DrillSource, drill};
use lifeboat_core::files::{FilesOptions, backup_files, fetch_files, restore_files};
use lifeboat_core::forget::{ForgetOptions, forget};
use lifeboat_core::repo_check::{check, prune};
use lifeboat_core::snapshot_restore::RestoreOptions;
use lifeboat_core::snapshot_save::{SaveOptions, save};
use lifeboat_core::stream::backup_stream;
use lifeboat_core::{Cancel, NoProgress};
use lifeboat_repo::{BackupId, Identity, Manifest, Repository};

fn send<T: Send>(_: T) {}

#[allow(clippy::too_many_arguments)]
fn operations(
    drill_options: &DrillOptions,
    repo: &Repository,
    manifest: &Manifest,
    id: &BackupId,
    identities: &[Identity],
    save_options: &SaveOptions,
    backup_options: &BackupOptions,
    files_options: &FilesOptions,
    restore_options: &RestoreOptions,
    forget_options: &ForgetOptions,
) {
    let (progress, cancel, labels, temp) =
        (&NoProgress, &Cancel::new(), &Labels::default(), Path::new("/tmp"));
    send(save(save_options, progress, cancel));
    send(backup(repo, backup_options, progress, cancel));
    send(backup_stream(repo, "a", &[], labels, progress, cancel));
    send(backup_files(repo, files_options, labels, progress, cancel));
    send(fetch_files(repo, id, identities, cancel));
    send(restore_files(repo, id, identities, temp, cancel));
    send(copy(repo, repo, identities, temp, None, progress, cancel));
    send(verify_backup(
        repo,
        manifest,
        Some(identities),
        temp,
        progress,
        cancel,
    ));
    send(restore_backup(
        repo,
        id,
        identities,
        restore_options,
        progress,
        cancel,
    ));
    send(dump(repo, id, None, identities, Vec::new(), cancel));
    send(forget(repo, forget_options, cancel));
    send(check(repo, cancel));
    send(prune(repo, std::time::Duration::ZERO, true, cancel));
    let source = DrillSource::Backup {
        repo,
        id: id.clone(),
        identities: identities.to_vec(),
    };
    send(drill(source, drill_options, progress, cancel));
}

#[test]
fn every_operation_future_is_send() {
    // The assertion is that `operations` compiles.
    let _: fn(_, _, _, _, _, _, _, _, _, _) = operations;
}
