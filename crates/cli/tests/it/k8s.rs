//! `lifeboat k8s` on snapshots of a real etcd 3.5 holding what kube-apiserver writes: values of
//! Kubernetes' serializer fixtures (the bytes the API server stores) under their /registry keys,
//! a JSON custom resource, and a value encrypted at rest; listed, read as kubectl prints them, at
//! the current revision and an earlier one, from a file and from a backup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion};
use serde_json::Value;

use crate::common::*;
use crate::repository::{Backend, Repo};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/k8s-api-serializer/v1.33.0")
        .join(name)
}

const WIDGET: &str = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"web"},"spec":{"size":3}}"#;

/// An etcd holding a ConfigMap (deleted later), a Pod, a Namespace, a Deployment, a custom
/// resource and an encrypted Secret; and the revision at which the ConfigMap still existed.
async fn cluster() -> (EtcdServer, i64) {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    let puts: Vec<(&str, Vec<u8>)> = vec![
        (
            "/registry/configmaps/default/settings",
            read("core.v1.ConfigMap.pb"),
        ),
        ("/registry/pods/web/api", read("core.v1.Pod.pb")),
        ("/registry/namespaces/web", read("core.v1.Namespace.pb")),
        ("/registry/deployments/web/api", read("apps.v1.Deployment.pb")),
        ("/registry/example.com/widgets/web/w1", WIDGET.as_bytes().to_vec()),
        (
            "/registry/secrets/web/token",
            b"k8s:enc:aescbc:v1:key1:\x8f\x01\x02\x03".to_vec(),
        ),
        ("/registry/ranges/serviceips", b"k8s\0ranges".to_vec()),
    ];
    for (key, value) in puts {
        client.put(key, value, None).await.unwrap();
    }
    let before_delete = client.status().await.unwrap().header().unwrap().revision();
    client
        .delete("/registry/configmaps/default/settings", None)
        .await
        .unwrap();
    (server, before_delete)
}

fn snapshot_of(server: &EtcdServer, dir: &Path) -> PathBuf {
    let file = dir.join("etcd.db");
    run_ok(
        lifeboat()
            .args(["snapshot", "save"])
            .arg(&file)
            .args(["--endpoints", &server.endpoint]),
    );
    file
}

fn k8s(file: &Path, args: &[&str]) -> Command {
    let mut command = lifeboat();
    command.arg("k8s").args(args).arg("--file").arg(file);
    command
}

#[tokio::test]
async fn objects_are_listed_and_read_as_kubectl_prints_them() {
    let (server, before_delete) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());

    let listed: Value = serde_json::from_str(&run_ok(&mut k8s(&file, &["ls", "-A", "-w", "json"]))).unwrap();
    let rows = listed["objects"].as_array().unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resource"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "deployments/api",
            "widgets.example.com/w1",
            "namespaces/web",
            "pods/api",
            "ranges/serviceips",
            "secrets/token"
        ],
        "{listed}"
    );
    let pod = rows.iter().find(|r| r["resource"] == "pods").unwrap();
    assert_eq!(
        (pod["kind"].as_str(), pod["apiVersion"].as_str()),
        (Some("Pod"), Some("v1"))
    );
    let secret = rows.iter().find(|r| r["resource"] == "secrets").unwrap();
    assert_eq!(secret["encrypted"], true);

    // kubectl's names: plural, singular, short, resource.group; namespaces as kubectl scopes them.
    for (word, expected) in [
        ("pods", 1),
        ("pod", 1),
        ("po", 1),
        ("deployments.apps", 1),
        ("deploy", 1),
        ("widgets.example.com", 1),
        ("ns", 1),
    ] {
        let listed: Value =
            serde_json::from_str(&run_ok(&mut k8s(&file, &["ls", word, "-n", "web", "-w", "json"]))).unwrap();
        assert_eq!(
            listed["objects"].as_array().unwrap().len(),
            expected,
            "{word}: {listed}"
        );
    }
    let in_default: Value =
        serde_json::from_str(&run_ok(&mut k8s(&file, &["ls", "pods", "-w", "json"]))).unwrap();
    assert_eq!(
        in_default["objects"].as_array().unwrap().len(),
        0,
        "pods of namespace default"
    );

    // The state at an earlier revision: the ConfigMap deleted since is there.
    let earlier = format!("{before_delete}");
    let then: Value = serde_json::from_str(&run_ok(&mut k8s(
        &file,
        &["ls", "configmaps", "-A", "--revision", &earlier, "-w", "json"],
    )))
    .unwrap();
    assert_eq!(then["revision"], before_delete);
    assert_eq!(then["objects"][0]["name"], "settings");
    let counted = run_ok(&mut k8s(&file, &["ls", "-A", "--count"]));
    let pods_counted = counted
        .lines()
        .find(|l| l.contains(" pods "))
        .unwrap_or_default()
        .to_string();
    assert!(
        pods_counted.contains(" web ") && pods_counted.contains(" 1 "),
        "{counted}"
    );

    // get: the object as kubectl shows it, resourceVersion from the key's revision.
    let got: Value = serde_json::from_str(&run_ok(&mut k8s(
        &file,
        &["get", "pod", "api", "-n", "web", "-o", "json"],
    )))
    .unwrap();
    let mut expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("core.v1.Pod.json")).unwrap()).unwrap();
    assert_eq!(got["metadata"]["resourceVersion"], pod["revision"].to_string());
    assert!(
        got["metadata"].get("managedFields").is_none(),
        "hidden as kubectl hides them"
    );
    expected["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"].clone();
    expected["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(got["spec"], expected["spec"]);
    assert_eq!(got["status"]["phase"], expected["status"]["phase"]);

    let widget = run_ok(&mut k8s(
        &file,
        &["get", "widgets.example.com", "w1", "-n", "web"],
    ));
    assert!(
        widget.contains("kind: Widget") && widget.contains("  size: 3"),
        "{widget}"
    );
    let error = run_failing(&mut k8s(&file, &["get", "secret", "token", "-n", "web"]), 1);
    assert!(error.contains("encrypted at rest (aescbc, key key1)"), "{error}");
    let error = run_failing(&mut k8s(&file, &["get", "pod", "nope", "-n", "web"]), 1);
    assert!(error.contains("\"nope\" is not in namespace web"), "{error}");

    // decode: a value as etcdctl prints it reads as get prints it (but resourceVersion).
    let value = Command::new(EtcdVersion::V3_5.etcdctl())
        .args([
            "--endpoints",
            &server.endpoint,
            "get",
            "/registry/pods/web/api",
            "--print-value-only",
        ])
        .output()
        .unwrap()
        .stdout;
    let mut decode = lifeboat()
        .args(["k8s", "decode", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    decode.stdin.take().unwrap().write_all(&value).unwrap();
    let decoded: Value = serde_json::from_slice(&decode.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(decoded["spec"], got["spec"]);
    assert_eq!(decoded["kind"], "Pod");
}

#[tokio::test]
async fn a_backup_is_read_the_same_way() {
    let (server, _) = cluster().await;
    let repo = Repo::initialised(Backend::Local);
    repo.backup(&server);
    let listed = run_ok(
        repo.lifeboat()
            .args(["k8s", "ls", "-A", "--identity-file"])
            .arg(repo.identity()),
    );
    for cell in ["api", "Deployment", "apps/v1", "Widget", "aescbc:key1"] {
        assert!(listed.contains(cell), "{cell} in\n{listed}");
    }
    // Without the key, refused: the objects are encrypted in the repository.
    let error = run_failing(repo.lifeboat().args(["k8s", "ls"]), 1);
    assert!(error.contains("identity"), "{error}");
}
