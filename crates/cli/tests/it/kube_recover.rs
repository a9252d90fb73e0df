//! `lifeboat recover --kubeadm` on a node the real kubeadm wrote, whose etcd, kube-apiserver and
//! kube-controller-manager the fake kubelet runs: a namespace kubectl deleted (the namespace
//! controller removing what it held) comes back, the runbook confirms the API server's `/readyz`,
//! clients that watched before are not left with a silent gap, and a node that lost
//! `/etc/kubernetes` is rebuilt from its files backup into a tree the real API server starts from.

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_test_support::{KubeadmNode, NodeOptions};
use serde_json::Value;

use crate::common::*;
use crate::kube::backup_of_node;
use crate::repository::{Backend, Repo};

/// What kubectl lists in namespace `shop`, as `kind/name` lines, sorted.
fn shop_objects(node: &KubeadmNode) -> Vec<String> {
    let listed = node
        .kubectl_ok(
            &[
                "get",
                "deployments,replicasets,pods,configmaps,secrets,serviceaccounts",
                "-n",
                "shop",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    let mut names: Vec<String> = listed.lines().map(str::to_string).collect();
    names.sort();
    names
}

/// The resourceVersion of a namespace list: the revision the API server has seen.
fn list_revision(node: &KubeadmNode) -> i64 {
    let list: Value = serde_json::from_str(
        &node
            .kubectl_ok(&["get", "--raw", "/api/v1/namespaces?limit=1"], None)
            .unwrap(),
    )
    .unwrap();
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `lifeboat recover --kubeadm latest` of the node from `repo`, without questions.
fn recover(node: &KubeadmNode, repo: &Repo) -> std::process::Command {
    let mut command = repo.lifeboat();
    command
        .args(["recover", "--kubeadm", "latest", "--yes", "--identity-file"])
        .arg(repo.identity())
        .arg("--root")
        .arg(&node.root)
        .args(["--apiserver-timeout", "120s"]);
    command
}

/// Runs a recovery that must succeed and confirm the API server; its standard error.
fn recovered(command: &mut std::process::Command, node: &KubeadmNode) -> String {
    let output = run(command);
    let stderr =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let log = std::fs::read_to_string(node.root.join("kube-apiserver.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{tail:?}");
    assert!(
        stderr.contains(&format!("{}/readyz is ready", node.endpoints.apiserver)),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_namespace_kubectl_deleted_comes_back_and_a_node_without_etc_kubernetes_is_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        controller_manager: true,
        ..NodeOptions::default()
    };
    let node = KubeadmNode::start(&root.path().join("node"), &options).unwrap();
    node.kubectl_ok(&["create", "namespace", "shop"], None).unwrap();
    for args in [
        &["create", "configmap", "settings", "--from-literal=color=blue"][..],
        &[
            "create",
            "secret",
            "generic",
            "password",
            "--from-literal=value=hunter2",
        ],
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/pause:3.10",
            "--replicas=2",
        ],
    ] {
        let mut args = args.to_vec();
        args.extend(["-n", "shop"]);
        node.kubectl_ok(&args, None).unwrap();
    }
    // The controllers' part: a ReplicaSet and its two Pods, the namespace's root CA ConfigMap
    // and default ServiceAccount (no scheduler or kubelet: the Pods stay Pending).
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let objects = shop_objects(&node);
        let pods = objects.iter().filter(|o| o.starts_with("pod/")).count();
        let ready = pods == 2
            && objects.contains(&"configmap/kube-root-ca.crt".to_string())
            && objects.contains(&"serviceaccount/default".to_string());
        if ready {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "the controllers did not act: {objects:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let repo = Repo::initialised(Backend::Local);
    let backup = backup_of_node(&node, &repo);
    let backed_up = backup["etcd"]["revision"].as_i64().unwrap();
    run_ok(
        repo.lifeboat()
            .args(["backup", "--files", "--root"])
            .arg(&node.root),
    );
    let admin = std::fs::read(node.admin_conf()).unwrap();

    // A watch opened before the deletion, and the revision its client had seen.
    let watched = root.path().join("watch.out");
    let mut watch = node
        .kubectl()
        .args(["get", "namespaces", "--watch", "--output-watch-events"])
        .stdout(std::fs::File::create(&watched).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    node.kubectl_ok(&["delete", "namespace", "shop", "--timeout=90s"], None)
        .unwrap();
    let seen = list_revision(&node);
    let gone = node
        .kubectl()
        .args(["get", "namespace", "shop"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    let stderr = recovered(&mut recover(&node, &repo), &node);
    assert!(
        stderr.contains(&format!("restored {backed_up} + bump 1000000000")),
        "{stderr}"
    );
    assert_eq!(shop_objects(&node), settled, "kubectl sees what was deleted");
    let value = node
        .kubectl_ok(
            &[
                "get",
                "configmap",
                "settings",
                "-n",
                "shop",
                "-o",
                "jsonpath={.data.color}",
            ],
            None,
        )
        .unwrap();
    assert_eq!(value, "blue");

    // kubectl get --watch does not reconnect: it ended when the API server stopped, its last
    // word the deletion, nothing after it.
    let ended = wait_exit(&mut watch, Duration::from_secs(30));
    assert_eq!(ended, Some(0));
    let events = std::fs::read_to_string(&watched).unwrap();
    let last: Vec<&str> = events
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(last[..2], ["DELETED", "shop"], "{events}");
    // A client that resumes from the revision it had seen, as informers do, is told its view
    // expired (410) and relists, rather than missing the namespace's return.
    let resumed = node
        .kubectl_ok(
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces?watch=1&resourceVersion={seen}"),
                "--request-timeout=20s",
            ],
            None,
        )
        .unwrap();
    assert!(
        resumed.contains("\"code\":410") && resumed.contains("too old resource version"),
        "{resumed}"
    );
    // New writes come after the bump: past any resourceVersion a client saw.
    let created: i64 = node
        .kubectl_ok(
            &[
                "create",
                "configmap",
                "after",
                "-n",
                "shop",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
            None,
        )
        .unwrap()
        .parse()
        .unwrap();
    assert!(created > backed_up + 1_000_000_000 && created > seen, "{created}");

    // The node loses /etc/kubernetes and its etcd data: the files backup brings back a tree the
    // real API server starts from, with the backup's objects.
    std::fs::remove_dir_all(node.root.join("etc/kubernetes")).unwrap();
    std::fs::remove_dir_all(node.root.join("var/lib/etcd")).unwrap();
    let printed = recovered(
        recover(&node, &repo).args(["--with-files", "latest", "--new-run"]),
        &node,
    );
    // Without a WAL the node's cluster is unknown: it follows the one recovery pinned.
    assert!(printed.contains("pins this one recovery"), "{printed}");
    assert_eq!(std::fs::read(node.admin_conf()).unwrap(), admin);
    assert_eq!(shop_objects(&node), settled);
}
