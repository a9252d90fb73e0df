//! Two lifeboat processes on one repository on the S3 server: the lock protocol keeps a forget
//! from deleting what a copy reads, two copies of one backup from writing it at once, and a prune
//! from removing a backup still being written; a dead holder's lock is stale and `repo unlock`
//! removes it.

use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_test_support::{EtcdConfig, EtcdVersion};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;
use crate::repository::{Backend, Repo, frozen_when, recipient_of, upload_begun};

/// `copy` from `source` into `target` (on its own S3 server).
fn copy_command(source: &Repo, target: &Repo) -> Command {
    let mut copy = source.lifeboat();
    copy.args(["copy", "--from", source.location(), "--to", target.location()]);
    if let Some(s3) = &target.s3 {
        copy.env("LIFEBOAT_TO_AWS_ENDPOINT_URL", &s3.endpoint)
            .env("LIFEBOAT_TO_AWS_REGION", "us-east-1")
            .env("LIFEBOAT_TO_AWS_ACCESS_KEY_ID", &s3.access_key_id)
            .env("LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY", &s3.secret_access_key);
    }
    copy
}

fn resumed_ok(mut child: std::process::Child, pid: Pid) {
    kill(pid, Signal::SIGCONT).unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(120));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(0), "{stderr}");
}

fn ids(repo: &Repo) -> Vec<String> {
    repo.list()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_forget_during_a_copy_is_refused_and_the_copy_lands_whole() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let source = Repo::initialised(Backend::S3);
    let older = source.backup(&server);
    let newer = source.backup(&server);
    let target = Repo::new(Backend::S3);
    run_ok(
        target
            .lifeboat()
            .args(["repo", "init", "--recipient", &recipient_of(&source.identity())]),
    );
    let (copy, pid) = frozen_when(
        copy_command(&source, &target),
        &target.uploads_root(),
        upload_begun,
    );
    // The copy reads `older`: forget must not delete it under the copy's feet.
    let refused = run_failing(source.lifeboat().args(["forget", "--keep-last", "1"]), 1);
    assert!(
        refused.contains("is locked by copy on host") && refused.contains("repo unlock"),
        "{refused}"
    );
    assert_eq!(ids(&source), [older.clone(), newer.clone()], "nothing forgotten");
    resumed_ok(copy, pid);
    assert_eq!(ids(&target), [older.clone(), newer.clone()]);
    for id in [&older, &newer] {
        run_ok(target.lifeboat().args([
            "backups",
            "verify",
            id,
            "--read-data",
            "--identity-file",
            &source.identity().display().to_string(),
        ]));
    }
    // Once the copy is done, the forget goes through and leaves no lock behind.
    run_ok(source.lifeboat().args(["forget", "--keep-last", "1"]));
    assert_eq!(ids(&source), [newer]);
    for repo in [&source, &target] {
        assert_eq!(files_under(&repo.root().join("locks")), Vec::<String>::new());
    }
}

#[tokio::test]
async fn two_copies_of_one_backup_never_write_it_at_once() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let source = Repo::initialised(Backend::S3);
    let id = source.backup(&server);
    // Another key: each copy seals the artefact again, so their stored bytes differ.
    let target = Repo::initialised(Backend::S3);
    let identity = source.identity().display().to_string();
    let mut first = copy_command(&source, &target);
    first.args(["--identity-file", &identity]);
    let (first, pid) = frozen_when(first, &target.uploads_root(), upload_begun);
    let second = run(copy_command(&source, &target).args(["--identity-file", &identity]));
    assert_eq!(second.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains(&format!("FAILED {id}")) && stdout.contains(&format!("copy writing {id}")),
        "{stdout}"
    );
    assert_eq!(ids(&target), Vec::<String>::new());
    resumed_ok(first, pid);
    assert_eq!(ids(&target), std::slice::from_ref(&id));
    run_ok(target.lifeboat().args([
        "backups",
        "verify",
        &id,
        "--read-data",
        "--identity-file",
        &target.identity().display().to_string(),
    ]));
    // Run again, the second copy finds it there.
    run_ok(copy_command(&source, &target).args(["--identity-file", &identity]));
    assert_eq!(ids(&target), [id]);
}

#[tokio::test]
async fn a_prune_during_a_backup_is_refused_and_a_dead_holders_lock_is_stale() {
    let repo = Repo::initialised(Backend::S3);
    let go = tempfile::tempdir().unwrap();
    let gate = go.path().join("go");
    let stream = |name: &str| {
        let mut command = repo.lifeboat();
        command
            .args(["backup", "--stream", name, "--", "sh", "-c"])
            // Bounded: a killed backup's command ends by itself.
            .arg(format!(
                "for i in $(seq 600); do [ -e {} ] && break; sleep 0.05; done; echo data",
                gate.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let locks = repo.root().join("locks");
    let mut backup = stream("app.sql").spawn().unwrap();
    assert!(
        wait_until(&mut backup, Duration::from_secs(30), || !files_under(&locks)
            .is_empty()),
        "the backup took its lock"
    );
    let refused = run_failing(repo.lifeboat().args(["repo", "prune", "--older-than", "0s"]), 1);
    assert!(
        refused.contains("is locked by backup --stream writing"),
        "{refused}"
    );
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_exit(&mut backup, Duration::from_secs(60)), Some(0));
    let listed = repo.list();
    assert_eq!(listed.len(), 1);
    run_ok(repo.lifeboat().args(["repo", "prune", "--older-than", "0s"]));
    assert_eq!(repo.list(), listed, "the backup is whole");

    // Killed while holding its lock: on this host, a lock whose process is gone is stale. It
    // does not stand in a forget's way, and `repo unlock` removes it.
    std::fs::remove_file(&gate).unwrap();
    let mut killed = stream("other.sql").spawn().unwrap();
    assert!(wait_until(&mut killed, Duration::from_secs(30), || !files_under(
        &locks
    )
    .is_empty()));
    killed.kill().unwrap();
    killed.wait().unwrap();
    let listing = run_ok(repo.lifeboat().args(["repo", "unlock", "--dry-run"]));
    assert!(
        listing.contains("stale lock") && listing.contains("removed 0 locks; 1 left"),
        "{listing}"
    );
    run_ok(repo.lifeboat().args(["forget", "--keep-last", "1"]));
    let unlocked = run_ok(repo.lifeboat().args(["repo", "unlock"]));
    assert!(unlocked.contains("removed stale lock"), "{unlocked}");
    assert_eq!(files_under(&locks), Vec::<String>::new());
}
