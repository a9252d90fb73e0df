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
/// resource (resized later) and an encrypted Secret; and the revision before those changes.
async fn cluster() -> (EtcdServer, i64) {
    cluster_of(EtcdVersion::V3_5).await
}

async fn cluster_of(version: EtcdVersion) -> (EtcdServer, i64) {
    let server = EtcdServer::start(EtcdConfig::new(version)).await.unwrap();
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
    let resized = WIDGET.replace(r#""size":3"#, r#""size":5"#);
    client
        .put("/registry/example.com/widgets/web/w1", resized, None)
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
            "deployments.apps/api",
            "widgets.example.com/w1",
            "namespaces/web",
            "pods/api",
            "secrets/token"
        ],
        "{listed}"
    );
    // A member's own db (no snapshot trailer), copied once etcd is quiet, reads the same.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let member_db = dir.path().join("member.db");
    std::fs::copy(server.db_path(), &member_db).unwrap();
    let from_member: Value =
        serde_json::from_str(&run_ok(&mut k8s(&member_db, &["ls", "-A", "-w", "json"]))).unwrap();
    assert_eq!(from_member["objects"], listed["objects"]);
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
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells[0] == "pods");
    assert_eq!(pods_counted, Some(vec!["pods", "web", "1"]), "{counted}");

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
        widget.contains("kind: Widget") && widget.contains("  size: 5"),
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

    // diff: two revisions of one snapshot.
    let diff = run_ok(
        lifeboat()
            .args(["k8s", "diff", "--details"])
            .arg(format!("{}@{before_delete}", file.display()))
            .arg(&file),
    );
    for line in [
        "- /registry/configmaps/default/settings",
        "~ /registry/example.com/widgets/web/w1",
        "    spec.size: 3 -> 5",
        "0 added, 1 removed, 1 changed",
    ] {
        assert!(diff.lines().any(|l| l == line), "{line:?} in\n{diff}");
    }

    // export: a file per object, private; --for-apply without what the API server sets.
    let out = dir.path().join("export");
    run_ok(k8s(&file, &["export", "--for-apply"]).arg("--to").arg(&out));
    assert_eq!(
        files_under(&out),
        [
            "_cluster/namespaces/web.yaml",
            "web/deployments.apps/api.yaml",
            "web/pods/api.yaml",
            "web/widgets.example.com/w1.yaml"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&out.join("web")), mode(&out.join("web/pods/api.yaml"))),
        (0o700, 0o600)
    );
    let exported: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.join("web/pods/api.yaml")).unwrap()).unwrap();
    let metadata = &exported["metadata"];
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "generation",
    ] {
        assert!(metadata.get(gone).is_none(), "{gone} in {metadata}");
    }
    assert!(exported.get("status").is_none());
    assert_eq!(exported["kind"], "Pod");
    assert!(metadata.get("ownerReferences").is_none());
    assert_eq!(exported["spec"], got["spec"]);
    let only_pods = dir.path().join("only-pods");
    run_ok(
        k8s(&file, &["export", "po", "-n", "web"])
            .arg("--to")
            .arg(&only_pods),
    );
    assert_eq!(files_under(&only_pods), ["web/pods/api.yaml"]);
}

#[tokio::test]
async fn an_exported_config_map_of_ambiguous_strings_reads_back_the_same_in_yaml_1_1() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let tricky = [
        "on",
        "yes",
        "No",
        "~",
        "12:30",
        "1_000",
        "0x1F",
        "1e3",
        "2001-12-14",
        "",
        "- x",
        "#c",
        "a: b",
        "null",
    ];
    let data: serde_json::Map<String, Value> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i:02}"), Value::String(v.to_string())))
        .collect();
    let config_map = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ambiguous", "namespace": "web", "labels": {"on": "yes"}},
        "data": data,
    });
    let mut client = server.member().await.unwrap().client();
    client
        .put("/registry/configmaps/web/ambiguous", config_map.to_string(), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());
    let out = dir.path().join("export");
    run_ok(k8s(&file, &["export", "--for-apply"]).arg("--to").arg(&out));
    let read_back = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml, json; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(out.join("web/configmaps/ambiguous.yaml"))
        .output()
        .unwrap();
    assert!(
        read_back.status.success(),
        "{}",
        String::from_utf8_lossy(&read_back.stderr)
    );
    let back: Value = serde_json::from_slice(&read_back.stdout).unwrap();
    assert_eq!(
        back, config_map,
        "what kubectl apply would read is what was stored"
    );
}

/// Snapshots of every other supported etcd read the same way (the full walk-through above runs
/// on 3.5): the same objects now, and a deleted one at an earlier revision.
#[tokio::test]
async fn snapshots_of_every_etcd_version_read_the_same_way() {
    for version in [EtcdVersion::V3_4, EtcdVersion::V3_6, EtcdVersion::V3_7] {
        let (server, before_delete) = cluster_of(version).await;
        let dir = tempfile::tempdir().unwrap();
        let file = snapshot_of(&server, dir.path());
        let listed: Value =
            serde_json::from_str(&run_ok(&mut k8s(&file, &["ls", "-A", "-w", "json"]))).unwrap();
        assert_eq!(
            listed["objects"].as_array().unwrap().len(),
            5,
            "{version:?}: {listed}"
        );
        let earlier = before_delete.to_string();
        let then: Value = serde_json::from_str(&run_ok(&mut k8s(
            &file,
            &["get", "cm", "settings", "--revision", &earlier, "-o", "json"],
        )))
        .unwrap();
        assert_eq!(then["kind"], "ConfigMap", "{version:?}");
        assert_eq!(then["metadata"]["name"], "nameValue", "{version:?}");
        let gone = run_failing(&mut k8s(&file, &["get", "cm", "settings"]), 1);
        assert!(
            gone.contains("\"settings\" is not in namespace default"),
            "{version:?}: {gone}"
        );
    }
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
    for cell in [
        "deployment.apps/api",
        "widget.example.com/w1",
        "namespace/web",
        "aescbc:key1",
    ] {
        assert!(listed.contains(cell), "{cell} in\n{listed}");
    }
    // diff between two backups with known changes.
    let first = repo.backup(&server);
    let mut client = server.member().await.unwrap().client();
    client.delete("/registry/pods/web/api", None).await.unwrap();
    client
        .put(
            "/registry/example.com/widgets/web/w2",
            WIDGET.replace("w1", "w2"),
            None,
        )
        .await
        .unwrap();
    repo.backup(&server);
    let diff: Value = serde_json::from_str(&run_ok(
        repo.lifeboat()
            .args([
                "k8s",
                "diff",
                first.trim(),
                "latest",
                "-w",
                "json",
                "--identity-file",
            ])
            .arg(repo.identity()),
    ))
    .unwrap();
    assert_eq!(
        diff["added"],
        serde_json::json!(["/registry/example.com/widgets/web/w2"]),
        "{diff}"
    );
    assert_eq!(
        diff["removed"],
        serde_json::json!(["/registry/pods/web/api"]),
        "{diff}"
    );
    assert_eq!(diff["changed"], serde_json::json!([]), "{diff}");

    // Without the key, refused: the objects are encrypted in the repository.
    let error = run_failing(repo.lifeboat().args(["k8s", "ls"]), 1);
    assert!(error.contains("identity"), "{error}");
}

/// Values encrypted at rest as the API server writes them, made independently by Python's
/// cryptography (AES-CBC, AES-GCM with the etcd key as additional data) and PyNaCl (secretbox):
/// provider, key name, base64 secret, etcd key → the stored value.
fn encrypted_by_python(plain: &Path, cases: &[(&str, &str, &str, &str)]) -> Vec<Vec<u8>> {
    let script = r#"
import base64, json, os, sys
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import nacl.secret
plain = open(sys.argv[1], "rb").read()
out = []
for provider, name, secret, key in json.loads(sys.argv[2]):
    secret = base64.b64decode(secret)
    prefix = f"k8s:enc:{provider}:v1:{name}:".encode()
    if provider == "aescbc":
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
        data = iv + encryptor.update(padded) + encryptor.finalize()
    elif provider == "aesgcm":
        nonce = os.urandom(12)
        data = nonce + AESGCM(secret).encrypt(nonce, plain, key.encode())
    else:
        data = bytes(nacl.secret.SecretBox(secret).encrypt(plain))
    out.append((prefix + data).hex())
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(plain)
        .arg(serde_json::to_string(cases).unwrap())
        .output()
        .expect("python3 with cryptography and PyNaCl (scripts/setup installs them)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hex: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    hex.iter().map(|h| hex::decode(h).unwrap()).collect()
}

#[tokio::test]
async fn secrets_encrypted_at_rest_are_decrypted_with_the_api_servers_configuration() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    // 16-, 24- and 32-byte AES keys and a 32-byte secretbox key, as the configuration holds them.
    let (cbc, gcm, sbox, other) = (
        "MTIzNDU2Nzg5MDEyMzQ1Ng==",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
        "YWJjZGVmZ2hpamtsbW5vcA==",
    );
    let cases = [
        ("aescbc", "key1", cbc, "/registry/secrets/web/cbc"),
        ("aesgcm", "key1", gcm, "/registry/secrets/web/gcm"),
        ("secretbox", "key1", sbox, "/registry/secrets/web/box"),
        // Written with a key the configuration names alike but holds another secret of.
        ("aescbc", "key1", other, "/registry/secrets/web/wrong"),
        ("aesgcm", "retired", gcm, "/registry/secrets/web/retired"),
    ];
    let values = encrypted_by_python(&fixture("core.v1.Secret.pb"), &cases);
    for ((_, _, _, key), value) in cases.iter().zip(values) {
        client.put(*key, value, None).await.unwrap();
    }
    client
        .put(
            "/registry/secrets/web/kms",
            b"k8s:enc:kms:v2:vault:\x0a\x01x".to_vec(),
            None,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());
    let config = dir.path().join("encryption.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - {{name: key1, secret: {gcm}}}\n  - aescbc:\n      keys:\n      - {{name: key1, secret: {cbc}}}\n  - secretbox:\n      keys:\n      - {{name: key1, secret: {sbox}}}\n  - kms: {{apiVersion: v2, name: vault, endpoint: unix:///var/run/kms.sock}}\n  - identity: {{}}\n"
        ),
    )
    .unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("core.v1.Secret.json")).unwrap()).unwrap();
    for name in ["cbc", "gcm", "box"] {
        let got: Value = serde_json::from_str(&run_ok(
            k8s(&file, &["get", "secret", name, "-n", "web", "-o", "json"])
                .arg("--encryption-config")
                .arg(&config),
        ))
        .unwrap();
        assert_eq!(got["data"], expected["data"], "{name}");
        assert_eq!(got["kind"], "Secret");
    }
    for (name, message) in [
        ("kms", "encrypted by KMS provider vault, not decryptable offline"),
        (
            "wrong",
            "aescbc key key1 of the encryption configuration does not decrypt it",
        ),
        (
            "retired",
            "aesgcm key retired, which the encryption configuration does not have",
        ),
    ] {
        let error = run_failing(
            k8s(&file, &["get", "secret", name, "-n", "web"])
                .arg("--encryption-config")
                .arg(&config),
            1,
        );
        assert!(
            error.contains(message) && error.contains("secrets"),
            "{name}: {error}"
        );
        assert!(
            !error.contains(cbc) && !error.contains(gcm),
            "no secret in an error"
        );
    }
    // Without the configuration, encrypted values are listed as such, never printed as garbage.
    let listed = run_ok(&mut k8s(&file, &["ls", "secrets", "-n", "web"]));
    assert!(
        listed.contains("aesgcm:key1") && listed.contains("kms:vault"),
        "{listed}"
    );
    let error = run_failing(&mut k8s(&file, &["get", "secret", "gcm", "-n", "web"]), 1);
    assert!(error.contains("give --encryption-config"), "{error}");
}

/// Breaks the page of the `key` bucket's second leaf (its page ID no longer matches): bbolt
/// parsed by hand, independently of the code under test.
fn break_a_key_bucket_leaf(file: &Path) {
    let script = r#"
import struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
size = struct.unpack_from("<I", b, 16 + 8)[0]
metas = [struct.unpack_from("<IIIIQQQQQ", b, m * size + 16) for m in (0, 1)]
root = max(metas, key=lambda m: m[8])[4]
def header(page):
    return struct.unpack_from("<QHHI", b, page * size)
key_root = None
for e in range(header(root)[2]):
    at = root * size + 16 + e * 16
    flags, pos, ksize, vsize = struct.unpack_from("<IIII", b, at)
    if bytes(b[at + pos: at + pos + ksize]) == b"key":
        key_root = struct.unpack_from("<Q", b, at + pos + ksize)[0]
assert key_root, "a key bucket with its own pages"
assert header(key_root)[1] & 0x01, "a key bucket of several leaves"
pos, ksize, child = struct.unpack_from("<IIQ", b, key_root * size + 16 + 16)
struct.pack_into("<Q", b, child * size, 0xDEADBEEF)
open(path, "wb").write(b)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_damaged_snapshot_is_read_past_the_damage_which_is_reported() {
    let (server, _) = cluster().await;
    let mut client = server.member().await.unwrap().client();
    for n in 0..300 {
        let value = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"filler-{n:03}","namespace":"web"}},"data":{{"padding":"{}"}}}}"#,
            "x".repeat(100)
        );
        client
            .put(format!("/registry/configmaps/web/filler-{n:03}"), value, None)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());
    let whole: Value = serde_json::from_str(&run_ok(&mut k8s(&file, &["ls", "-A", "-w", "json"]))).unwrap();
    let all = whole["objects"].as_array().unwrap().len();
    break_a_key_bucket_leaf(&file);

    let output = run(&mut k8s(&file, &["ls", "-A", "-w", "json"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the snapshot is damaged, objects in damaged pages are missing"),
        "{stderr}"
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    let left = read["objects"].as_array().unwrap().len();
    assert!(
        left > 0 && left < all,
        "{left} of {all} objects read past the damage"
    );
}

#[tokio::test]
async fn bad_input_is_one_line_naming_it_and_exit_1() {
    let (server, _) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());
    let future = run_failing(&mut k8s(&file, &["ls", "-A", "--revision", "999999"]), 1);
    assert!(future.contains("999999"), "{future}");
    let config = dir.path().join("enc.yaml");
    std::fs::write(&config, "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - {name: k1, secret: not-base64!}\n").unwrap();
    let bad_config = run_failing(k8s(&file, &["ls"]).arg("--encryption-config").arg(&config), 1);
    assert!(
        bad_config.contains("enc.yaml") && bad_config.contains("\"k1\"") && bad_config.contains("not base64"),
        "{bad_config}"
    );
    let missing = run_failing(
        lifeboat().args(["k8s", "diff", "/nonexistent/etcd.db", "latest"]),
        1,
    );
    assert!(
        missing.contains("/nonexistent/etcd.db: no such snapshot file"),
        "{missing}"
    );
    let garbage = dir.path().join("value");
    std::fs::write(&garbage, b"plain bytes").unwrap();
    let undecodable = run_failing(lifeboat().args(["k8s", "decode"]).arg(&garbage), 1);
    assert!(undecodable.contains("not a Kubernetes value"), "{undecodable}");
    assert_eq!(
        files_under(dir.path()),
        ["enc.yaml", "etcd.db", "etcd.db.sha256", "value"],
        "nothing left behind"
    );
}

#[tokio::test]
async fn keys_of_no_known_layout_are_counted_and_named_with_the_prefix_that_reads_them() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    // An aggregated API server started with --etcd-prefix /registry/metrics.example.com/registry.
    let nested = "/registry/metrics.example.com/registry/metrics.example.com/samples/web/";
    for name in ["a", "b", "c"] {
        client
            .put(format!("{nested}{name}"), WIDGET.replace("w1", name), None)
            .await
            .unwrap();
    }
    client
        .put("/registry/ranges/serviceips", "k8s\0ranges", None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_of(&server, dir.path());

    let output = run(&mut k8s(&file, &["ls", "-A"]));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("3 keys under /registry/ fit no object layout")
            && stderr.contains(&format!("{nested}a"))
            && stderr.contains("--etcd-prefix /registry/metrics.example.com/registry"),
        "{stderr}"
    );
    // The API server's own keys (allocation maps) are not objects and not warned of.
    assert!(!stderr.contains("ranges"), "{stderr}");
    let listed: Value = serde_json::from_str(&run_ok(&mut k8s(
        &file,
        &[
            "ls",
            "-A",
            "-w",
            "json",
            "--etcd-prefix",
            "/registry/metrics.example.com/registry",
        ],
    )))
    .unwrap();
    let names: Vec<&str> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(listed["objects"][0]["resource"], "samples.metrics.example.com");
}
