//! Point-in-time reads of objects the real kube-apiserver wrote (a node written by the real
//! kubeadm; its etcd and API server run by the fake kubelet). A Deployment is created, scaled,
//! given a new image and deleted with kubectl while `lifeboat capture` runs. Then
//! `k8s history` lists each change with the fields kubectl changed, and `k8s get --time` shows
//! the object as kubectl showed it then.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use lifeboat_test_support::{KubeadmNode, NodeOptions};
use serde_json::Value;

use crate::common::*;
use crate::kube::{backup_of_node, etcd_flags};
use crate::repository::{Backend, Repo};

#[test]
fn the_history_of_a_deployment_kubectl_changed_is_listed_field_by_field() {
    let root = tempfile::tempdir().unwrap();
    let node = KubeadmNode::start(&root.path().join("node"), &NodeOptions::default()).unwrap();
    let kubectl = |args: &[&str]| node.kubectl_ok(args, None).unwrap();
    kubectl(&["create", "namespace", "web"]);
    let repo = Repo::initialised(Backend::Local);
    backup_of_node(&node, &repo);
    let mut capture = Spawned(
        repo.lifeboat()
            .args(["capture", "--segment", "200ms", "--hash-every", "1s"])
            .args(etcd_flags(&node))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(1));

    kubectl(&[
        "-n",
        "web",
        "create",
        "deployment",
        "api",
        "--image=registry.k8s.io/pause:3.10",
    ]);
    kubectl(&["-n", "web", "scale", "deployment", "api", "--replicas=3"]);
    std::thread::sleep(Duration::from_millis(600));
    let scaled = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let live: Value =
        serde_json::from_str(&kubectl(&["-n", "web", "get", "deployment", "api", "-o", "json"])).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    kubectl(&[
        "-n",
        "web",
        "set",
        "image",
        "deployment/api",
        "pause=registry.k8s.io/pause:3.9",
    ]);
    kubectl(&["-n", "web", "delete", "deployment", "api"]);

    let history = || {
        run_ok(
            repo.lifeboat()
                .args(["k8s", "history", "deploy", "api", "-n", "web", "--identity-file"])
                .arg(repo.identity()),
        )
    };
    let deleted = wait_until(&mut capture, Duration::from_secs(30), || {
        history().lines().last().is_some_and(|l| l.ends_with("deleted"))
    });
    assert!(deleted, "the deletion was not captured: {}", history());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(capture.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_exit(&mut capture, Duration::from_secs(20)), Some(0));

    let history = history();
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].ends_with("absent in backup"), "{history}");
    assert!(lines[1].ends_with("created"), "{history}");
    let changed = |field: &str| lines.contains(&field);
    assert!(changed("  spec.replicas: 1 -> 3"), "{history}");
    assert!(
        changed(
            "  spec.template.spec.containers[0].image: \"registry.k8s.io/pause:3.10\" -> \"registry.k8s.io/pause:3.9\""
        ),
        "{history}"
    );
    assert!(changed("  metadata.generation: 2 -> 3"), "{history}");

    // kubectl's view at the time asked, read back from the backup and the segments.
    let then: Value = serde_json::from_str(&run_ok(
        repo.lifeboat()
            .args([
                "k8s", "get", "deploy", "api", "-n", "web", "-o", "json", "--time", &scaled,
            ])
            .arg("--identity-file")
            .arg(repo.identity()),
    ))
    .unwrap();
    for field in ["spec", "metadata"] {
        let mut ours = then[field].clone();
        let mut theirs = live[field].clone();
        for object in [&mut ours, &mut theirs] {
            if let Some(map) = object.as_object_mut() {
                map.remove("managedFields");
            }
        }
        assert_eq!(ours, theirs, "{field} at {scaled}");
    }
}
