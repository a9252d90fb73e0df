//! `snapshot save` against etcd 3.4 to 3.7: the file equals etcdctl's, the reference tools
//! accept it, and every etcdctl way of saying where etcd is works.

use std::process::Command;

use lifeboat_test_support::{EtcdConfig, EtcdVersion, FillSpec, clear_etcd_env};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn save_over_mtls_equals_etcdctl_and_reference_tools_accept_it() {
    for version in EtcdVersion::ALL {
        let server = filled(EtcdConfig::new(version).mtls(), &FillSpec::small()).await;
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.db");
        let report: Value =
            serde_json::from_str(&run_ok(save_command(&server, &ours).args(["-w", "json"]))).unwrap();

        let theirs = dir.path().join("etcdctl.db");
        let mut etcdctl = Command::new(version.etcdctl());
        clear_etcd_env(&mut etcdctl);
        if version == EtcdVersion::V3_4 {
            etcdctl.env("ETCDCTL_API", "3");
        }
        let status = etcdctl
            .args(server.etcdctl_args())
            .args(["snapshot", "save"])
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );

        // A quiescent etcd hands out the same content twice: what etcdctl saves, by the reference
        // tool's status (its hash covers every bucket's keys and values). 3.4 even hands out
        // the same bytes; later releases may commit an empty transaction in between, which
        // moves pages around.
        assert_eq!(
            reference_status(version, &ours, "json"),
            reference_status(version, &theirs, "json"),
            "etcd {version:?}"
        );
        if version == EtcdVersion::V3_4 {
            assert_eq!(sha256_hex(&ours), sha256_hex(&theirs), "etcd {version:?}");
        }
        let digest = sha256_hex(&ours);
        assert_eq!(report["sha256"], digest.as_str());
        assert_eq!(report["bytes"], std::fs::metadata(&ours).unwrap().len());
        assert_eq!(report["etcd_version"], version.expected());
        assert_eq!(report["endpoint"], server.endpoint.as_str());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ours.db.sha256")).unwrap(),
            format!("{digest}  ours.db\n"),
            "sha256sum format"
        );
        let check = Command::new("sha256sum")
            .arg("-c")
            .arg("ours.db.sha256")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(check.status.success(), "sha256sum -c accepts the companion file");
        assert_eq!(mode(&ours), 0o600);
        assert_eq!(mode(&dir.path().join("ours.db.sha256")), 0o600);

        let reference: Value = serde_json::from_str(&reference_status(version, &ours, "json")).unwrap();
        assert_eq!(
            reference["revision"], report["revision"],
            "etcd {version:?}: {reference}"
        );
        assert!(report["cluster_id"].as_str().unwrap().len() > 4);
        assert!(report["member_id"].as_str().unwrap().len() > 4);
        assert_eq!(entries(dir.path()), ["etcdctl.db", "ours.db", "ours.db.sha256"]);
    }
}

#[tokio::test]
async fn etcdctl_environment_variables_are_read() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5).mtls(), &FillSpec::small()).await;
    let pki = server.pki.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.db");
    // Set on the child only: the harness itself never exports ETCDCTL_*.
    let output = run_ok(
        lifeboat()
            .args(["snapshot", "save"])
            .arg(&file)
            .env("ETCDCTL_ENDPOINTS", &server.endpoint)
            .env("ETCDCTL_CACERT", &pki.ca)
            .env("ETCDCTL_CERT", &pki.client.cert)
            .env("ETCDCTL_KEY", &pki.client.key)
            .env("ETCDCTL_DIAL_TIMEOUT", "3s")
            .env("ETCDCTL_COMMAND_TIMEOUT", "10s"),
    );
    assert!(
        output.starts_with(&format!("Snapshot saved at {}\n", file.display())),
        "{output}"
    );
    assert!(file.exists());
}

#[tokio::test]
async fn kubeadm_flag_fills_in_endpoint_certificates() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5).mtls(), &FillSpec::small()).await;
    let pki = server.pki.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeadm.db");
    // The test's etcd cannot listen on kubeadm's 2379, so only the endpoint is overridden.
    run_ok(
        lifeboat()
            .args(["snapshot", "save", "--kubeadm", "--kubeadm-pki-dir"])
            .arg(&pki.root)
            .args(["--endpoints", &server.endpoint])
            .arg(&file),
    );
    assert!(file.exists());
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "save", "--kubeadm", "--kubeadm-pki-dir"])
            .arg(dir.path().join("no-pki"))
            .arg(dir.path().join("x.db")),
        1,
    );
    assert!(error.contains("no-pki/etcd/ca.crt does not exist"), "{error}");
}

#[tokio::test]
async fn first_healthy_endpoint_is_used_and_the_skipped_one_named() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_4), &FillSpec::small()).await;
    let dead = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("multi.db");
    let output = run(lifeboat()
        .args([
            "snapshot",
            "save",
            "-w",
            "json",
            "--endpoints",
            &format!("{dead},{}", server.endpoint),
        ])
        .arg(&file));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["endpoint"], server.endpoint.as_str());
    assert_eq!(report["etcd_version"], "3.4.23");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&dead) && stderr.contains("connection refused"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("using {}", server.endpoint)), "{stderr}");
}

#[tokio::test]
async fn user_and_password_as_etcdctl_takes_them() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    server.enable_auth("s3cret-pw").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str| save_command(&server, &dir.path().join(name));

    run_ok(save("a.db").args(["--user", "root", "--password", "s3cret-pw"]));
    run_ok(save("b.db").args(["--user", "root:s3cret-pw"]));
    run_ok(
        save("c.db")
            .env("ETCDCTL_USER", "root")
            .env("ETCDCTL_PASSWORD", "s3cret-pw"),
    );

    let error = run_failing(save("d.db").args(["--user", "root:bad-guess-pw"]), 1);
    assert!(
        error.contains("authentication failed for user \"root\""),
        "{error}"
    );
    assert!(
        !error.contains("bad-guess-pw"),
        "the password must not be echoed: {error}"
    );
    let error = run_failing(&mut save("e.db"), 1);
    assert!(error.contains("authentication enabled; give --user"), "{error}");
    let error = run_failing(save("f.db").args(["--user", "root"]), 1);
    assert!(error.contains("no password for user \"root\""), "{error}");
    assert_eq!(
        entries(dir.path()),
        [
            "a.db",
            "a.db.sha256",
            "b.db",
            "b.db.sha256",
            "c.db",
            "c.db.sha256"
        ]
    );
}

#[tokio::test]
async fn existing_file_is_refused_unless_forced() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keep.db");
    std::fs::write(&file, b"precious").unwrap();
    let error = run_failing(&mut save_command(&server, &file), 1);
    assert!(
        error.contains("keep.db already exists") && error.contains("--force"),
        "{error}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    let table = run_ok(save_command(&server, &file).args(["--force", "-w", "table"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("| etcd version | {}", EtcdVersion::V3_5.expected()))),
        "{table}"
    );
    assert_ne!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(entries(dir.path()), ["keep.db", "keep.db.sha256"]);
}
