//! Open multipart uploads on a server that lists them (Garage): a backup killed mid-upload
//! leaves one; `repo check` names it, `repo prune` keeps it while it is recent and aborts it
//! once older than `--older-than`, after which the server counts none.

use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_test_support::{EtcdConfig, EtcdVersion, GARAGE_REGION, GarageServer};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;

fn on(garage: &GarageServer, command: &mut Command) {
    command
        .env(
            "LIFEBOAT_REPO",
            format!("s3://{}/cluster-a", GarageServer::BUCKET),
        )
        .env("AWS_ENDPOINT_URL", &garage.endpoint)
        .env("AWS_ACCESS_KEY_ID", GarageServer::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", GarageServer::SECRET_ACCESS_KEY)
        .env("AWS_REGION", GARAGE_REGION)
        .env_remove("LIFEBOAT_IDENTITY_FILE");
}

fn lifeboat_on(garage: &GarageServer) -> Command {
    let mut command = lifeboat();
    on(garage, &mut command);
    command
}

#[tokio::test]
async fn garage_check_and_prune_abort_a_killed_backups_upload() {
    let garage = GarageServer::start().unwrap();
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.txt");
    run_ok(
        lifeboat_on(&garage)
            .args(["repo", "init", "--identity-file"])
            .arg(&identity),
    );

    let mut backup = lifeboat_on(&garage);
    let mut child = backup
        .arg("backup")
        .args(server.etcdctl_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || {
            garage.unfinished_multipart_uploads().unwrap() == 1
        }),
        "the backup's upload began"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();

    let output = run(lifeboat_on(&garage).args(["repo", "check", "-w", "json"]));
    assert_eq!(output.status.code(), Some(1), "an open upload is a finding");
    let found: Value = serde_json::from_slice(&output.stdout).unwrap();
    let open = found["open_uploads"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{found}");
    let key = open[0]["key"].as_str().unwrap();
    assert!(
        key.starts_with("backups/") && key.ends_with("/etcd-snapshot.db"),
        "{found}"
    );
    let output = run(lifeboat_on(&garage).args(["repo", "check"]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("open upload of {key}")), "{text}");

    let recent = run_ok(lifeboat_on(&garage).args(["repo", "prune", "-w", "json"]));
    let recent: Value = serde_json::from_str(&recent).unwrap();
    assert_eq!(
        recent["kept_recent"], 1,
        "a recent upload may be a running backup: {recent}"
    );
    assert_eq!(garage.unfinished_multipart_uploads().unwrap(), 1);

    let pruned = run_ok(lifeboat_on(&garage).args(["repo", "prune", "--older-than", "0s", "-w", "json"]));
    let pruned: Value = serde_json::from_str(&pruned).unwrap();
    assert_eq!(pruned["aborted_uploads"][0]["key"], key, "{pruned}");
    assert_eq!(garage.unfinished_multipart_uploads().unwrap(), 0);
    let clean = run_ok(lifeboat_on(&garage).args(["repo", "check"]));
    assert!(clean.contains("no findings"), "{clean}");
}
