//! A backup of a cluster that has not changed since its newest backup stores nothing:
//! `backup --skip-unchanged` and an agent's backup job (by default) mark that backup current
//! instead, and freshness counts from the mark, also for an agent started afterwards; a write
//! makes the next backup a new one; `unchanged: store` stores a copy every time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lifeboat_test_support::EtcdVersion;
use serde_json::Value;

use crate::agent::{Agent, listen, sample};
use crate::common::*;
use crate::drill::kubernetes_like;
use crate::repository::{Backend, Repo};

fn ids(repo: &Repo) -> Vec<String> {
    repo.list()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// An agent of `repo` on `endpoint` with one `job`, its files in `dir`.
fn start_agent(repo: &Repo, dir: &std::path::Path, name: &str, endpoint: &str, job: &str) -> Agent {
    let config = format!(
        "repository: {repo}\nidentity_file: {identity}\nlisten: {address}\nleader: always\n\
         objectives: {{rpo: 1h, rto: 5m}}\netcd: {{endpoints: [{endpoint}]}}\njobs:\n  - {job}\n",
        repo = repo.location(),
        identity = repo.identity().display(),
        address = listen(),
    );
    Agent::start(repo.lifeboat(), dir, name, &config)
}

#[tokio::test]
async fn an_unchanged_cluster_is_not_backed_up_again_and_still_counts_as_fresh() {
    let server = kubernetes_like(EtcdVersion::V3_6).await;
    let repo = Repo::initialised(Backend::S3);
    let first = repo.backup(&server);

    // The command: nothing stored, the newest backup named and marked.
    let out = run_ok(
        repo.backup_command(&server)
            .args(["--skip-unchanged", "-w", "json"]),
    );
    let said: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(said["result"], "unchanged", "{out}");
    assert_eq!(said["same_as"], first.as_str(), "{out}");
    assert_eq!(ids(&repo), std::slice::from_ref(&first));
    let mark = repo.root().join("backups").join(&first).join(".unchanged.json");
    let recorded: Value = serde_json::from_slice(&std::fs::read(&mark).unwrap()).unwrap();
    assert_eq!(recorded["same_as"], first.as_str());
    assert_eq!(recorded["revision"], said["revision"]);
    // The mark is the repository's, not an artefact: a check finds nothing wrong.
    let check = run_ok(repo.lifeboat().args(["repo", "check", "-w", "json"]));
    let check: Value = serde_json::from_str(&check).unwrap();
    assert_eq!(check["unreferenced"].as_array().map(Vec::len), Some(0), "{check}");

    // A write: the next backup is stored.
    let mut client = server.member().await.unwrap().client();
    client
        .put("/registry/configmaps/default/moved", "v", None)
        .await
        .unwrap();
    let out = run_ok(
        repo.backup_command(&server)
            .args(["--skip-unchanged", "-w", "json"]),
    );
    let second = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    assert_eq!(ids(&repo), [first.clone(), second.clone()]);

    // An agent's backup job skips by default and counts each skip as a success.
    let work = tempfile::tempdir().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let checked_after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let fresh = |metrics: &str| {
        sample(
            metrics,
            "lifeboat_backup_last_success_timestamp_seconds{kind=\"etcd\"}",
        ) >= checked_after
    };
    let mut agent = start_agent(
        &repo,
        work.path(),
        "skipping",
        &server.endpoint,
        "{name: snap, kind: backup, every: 1s}",
    );
    agent.wait_for("two unchanged backups", Duration::from_secs(60), |m| {
        sample(m, "lifeboat_backups_unchanged_total") >= 2.0
    });
    let metrics = agent.metrics();
    assert!(
        sample(
            &metrics,
            "lifeboat_backups_total{kind=\"etcd\",result=\"success\"}"
        ) >= 2.0,
        "{metrics}"
    );
    assert!(fresh(&metrics), "{metrics}");
    assert!(
        agent.log_text().contains(&format!("unchanged, same as {second}")),
        "{}",
        agent.log_text()
    );
    assert_eq!(ids(&repo), [first.clone(), second.clone()]);
    assert_eq!(agent.terminate().0, Some(0));

    // Another agent, whose job is far away, counts freshness from the mark, not the backup.
    let mut later = start_agent(
        &repo,
        work.path(),
        "later",
        &server.endpoint,
        "{name: daily, kind: backup, every: 24h}",
    );
    later.wait_for("the repository's freshness", Duration::from_secs(30), |m| {
        sample(
            m,
            "lifeboat_repository_newest_backup_timestamp_seconds{kind=\"etcd\"}",
        ) >= checked_after
    });
    let metrics = later.metrics();
    assert!(fresh(&metrics), "{metrics}");
    assert_eq!(later.terminate().0, Some(0));

    // `unchanged: store` stores a copy although nothing changed.
    let mut storing = start_agent(
        &repo,
        work.path(),
        "storing",
        &server.endpoint,
        "{name: snap, kind: backup, every: 1s, unchanged: store}",
    );
    storing.wait_for("a stored backup", Duration::from_secs(60), |m| {
        sample(m, "lifeboat_backups_total{kind=\"etcd\",result=\"success\"}") >= 1.0
    });
    assert_eq!(
        sample(&storing.metrics(), "lifeboat_backups_unchanged_total"),
        0.0
    );
    assert_eq!(storing.terminate().0, Some(0));
    assert!(ids(&repo).len() >= 3, "{:?}", ids(&repo));
}
