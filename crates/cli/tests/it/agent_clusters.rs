//! Two etcd clusters writing to one repository, one agent each: each agent's view (first-run
//! schedule, the repository metrics, the page, the `cluster` label) holds its own cluster's
//! backups, so another cluster's fresh backup never hides a gap.

use std::time::Duration;

use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, control_plane_tree};
use serde_json::Value;

use crate::agent::{Agent, backups_of, listen, sample};
use crate::repository::{Backend, Repo};

fn created_seconds(backup: &Value) -> f64 {
    let created = backup["created"].as_str().unwrap();
    let at = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
    (at.unix_timestamp_nanos() as f64) / 1e9
}

#[tokio::test]
async fn two_clusters_in_one_repository_each_see_only_their_own_backups() {
    let a = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let b = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let repo = Repo::initialised(Backend::Local);
    let work = tempfile::tempdir().unwrap();
    let node = work.path().join("node");
    control_plane_tree(&node, true).unwrap();
    // Cluster b was backed up a moment ago; cluster a never was.
    let b_backup = repo.backup(&b);
    // Manifests record whole seconds: a's backup must be visibly the newer.
    std::thread::sleep(Duration::from_millis(1100));
    let config = |name: &str, server: &EtcdServer, address: &str| {
        format!(
            "repository: {repo}\nlisten: {address}\nleader: always\n{name}host: node-{host}\n\
             temp_dir: {temp}\netcd: {{endpoints: [{endpoint}]}}\njobs:\n\
             \x20 - {{name: hourly, kind: backup, every: 1h}}\n\
             \x20 - {{name: pki, kind: files, every: 1h, root: {node}}}\n",
            repo = repo.location(),
            host = server.endpoint.rsplit(':').next().unwrap(),
            temp = work.path().display(),
            endpoint = server.endpoint,
            node = node.display(),
        )
    };
    let (address_a, address_b) = (listen(), listen());
    let mut agent_a = Agent::start(repo.lifeboat(), work.path(), "a", &config("", &a, &address_a));
    let mut agent_b = Agent::start(
        repo.lifeboat(),
        work.path(),
        "b",
        &config("cluster: prod-b\n", &b, &address_b),
    );
    let etcd_success = "lifeboat_backups_total{kind=\"etcd\",result=\"success\"}";
    let files_success = "lifeboat_backups_total{kind=\"files\",result=\"success\"}";
    // Cluster a has no backup of its own: its agent backs it up at once, b's notwithstanding.
    let listed = "lifeboat_repository_backups";
    // The repository gauges follow the jobs by a look at the repository: waited for too.
    agent_a.wait_for("cluster a's first backup, listed", Duration::from_secs(30), |m| {
        sample(m, etcd_success) >= 1.0 && sample(m, files_success) >= 1.0 && sample(m, listed) >= 2.0
    });
    // Cluster b's backup is fresh: its agent waits an interval (files: nothing of node-b yet).
    agent_b.wait_for("node b's files backup, listed", Duration::from_secs(30), |m| {
        sample(m, files_success) >= 1.0 && sample(m, listed) >= 2.0
    });
    let metrics_b = agent_b.metrics();
    assert_eq!(sample(&metrics_b, etcd_success), 0.0, "{metrics_b}");

    let backups = backups_of(&repo);
    let etcd_of = |server: &EtcdServer| {
        let port = server.endpoint.rsplit(':').next().unwrap().to_string();
        backups
            .iter()
            .filter(|m| m["kind"] == "etcd" && m["etcd"]["endpoint"].as_str().unwrap().ends_with(&port))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (etcd_a, etcd_b) = (etcd_of(&a), etcd_of(&b));
    assert_eq!((etcd_a.len(), etcd_b.len()), (1, 1), "{backups:#?}");
    assert_eq!(etcd_b[0]["id"], b_backup.as_str());
    let cluster_a = etcd_a[0]["etcd"]["cluster_id"].as_str().unwrap().to_string();
    let cluster_b = etcd_b[0]["etcd"]["cluster_id"].as_str().unwrap().to_string();
    assert_ne!(cluster_a, cluster_b);
    // Files backups name the cluster of the agent that made them.
    for (host, cluster) in [
        (
            format!("node-{}", a.endpoint.rsplit(':').next().unwrap()),
            &cluster_a,
        ),
        (
            format!("node-{}", b.endpoint.rsplit(':').next().unwrap()),
            &cluster_b,
        ),
    ] {
        let files: Vec<&Value> = backups
            .iter()
            .filter(|m| m["kind"] == "files" && m["host"] == host.as_str())
            .collect();
        assert_eq!(files.len(), 1, "{backups:#?}");
        assert_eq!(files[0]["cluster"], cluster.as_str(), "{:#?}", files[0]);
    }

    // Each agent's newest etcd backup is its own cluster's, not the newest in the repository.
    let newest = "lifeboat_repository_newest_backup_timestamp_seconds{kind=\"etcd\"}";
    let metrics_a = agent_a.metrics();
    assert_eq!(
        sample(&metrics_a, newest),
        created_seconds(&etcd_a[0]),
        "{metrics_a}"
    );
    assert_eq!(
        sample(&metrics_b, newest),
        created_seconds(&etcd_b[0]),
        "{metrics_b}"
    );
    assert!(created_seconds(&etcd_a[0]) > created_seconds(&etcd_b[0]));
    assert_eq!(
        sample(&metrics_a, "lifeboat_repository_backups"),
        2.0,
        "{metrics_a}"
    );

    // Every series is labelled with the cluster: its name when configured, else its ID.
    assert!(
        agent_a
            .labelled_metrics()
            .contains(&format!("lifeboat_leader{{cluster=\"{cluster_a}\"}} 1"))
    );
    assert!(
        agent_b
            .labelled_metrics()
            .contains("lifeboat_leader{cluster=\"prod-b\"} 1")
    );

    // The pages show their own cluster's backups only.
    let (status_a, page_a) = agent_a.get("/");
    let (status_b, page_b) = agent_b.get("/");
    assert_eq!((status_a, status_b), (200, 200));
    let (id_a, id_b) = (
        etcd_a[0]["id"].as_str().unwrap(),
        etcd_b[0]["id"].as_str().unwrap(),
    );
    assert!(page_a.contains(id_a) && !page_a.contains(id_b), "{page_a}");
    assert!(page_b.contains(id_b) && !page_b.contains(id_a), "{page_b}");
    assert!(page_b.contains("<title>Lifeboat: prod-b</title>"), "{page_b}");
    assert!(
        page_a.contains(&format!("<title>Lifeboat: {cluster_a}</title>")),
        "{page_a}"
    );
}
