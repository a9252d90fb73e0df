//! `snapshot save` when things go wrong: every failure is one line naming the cause, a non-zero
//! exit, no panic, and neither FILE nor FILE.part left behind.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, FillSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;

fn assert_nothing_left(dir: &Path) {
    assert_eq!(entries(dir), Vec::<String>::new(), "nothing may be left behind");
}

/// On every etcd version: their TLS stacks (Go 1.16 to 1.26) refuse at different moments.
#[tokio::test]
async fn connection_failures_name_their_cause() {
    for version in EtcdVersion::ALL {
        connection_failures_of(version).await;
    }
}

async fn connection_failures_of(version: EtcdVersion) {
    let server = EtcdServer::start(EtcdConfig::new(version).mtls()).await.unwrap();
    let pki = server.pki.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.db");
    let with_tls = |ca: &Path, cert: &Path, key: &Path| {
        let mut command = lifeboat();
        command
            .args(["snapshot", "save", "--endpoints", &server.endpoint, "--cacert"])
            .arg(ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(&file);
        command
    };

    let error = run_failing(
        &mut with_tls(&pki.foreign_ca, &pki.client.cert, &pki.client.key),
        1,
    );
    assert!(
        error.contains("server's certificate is not trusted") && error.contains("--cacert"),
        "{version:?}: {error}"
    );

    // The same server by an address its certificate does not list (IPv4-mapped IPv6).
    let port = server.endpoint.rsplit(':').next().unwrap();
    let error = run_failing(
        lifeboat()
            .args([
                "snapshot",
                "save",
                "--endpoints",
                &format!("https://[::ffff:127.0.0.1]:{port}"),
                "--cacert",
            ])
            .arg(&pki.ca)
            .arg("--cert")
            .arg(&pki.client.cert)
            .arg("--key")
            .arg(&pki.client.key)
            .arg(&file),
        1,
    );
    assert!(
        error.contains("does not list this host name or IP"),
        "{version:?}: {error}"
    );

    let error = run_failing(
        &mut with_tls(&pki.ca, &pki.expired_client.cert, &pki.expired_client.key),
        1,
    );
    assert!(
        error.contains("expired-client.crt is not valid now") && error.contains("renew"),
        "{version:?}: {error}"
    );

    let error = run_failing(
        &mut with_tls(&pki.ca, &pki.foreign_client.cert, &pki.foreign_client.key),
        1,
    );
    assert!(
        error.contains("rejected our client certificate"),
        "{version:?}: {error}"
    );

    let error = run_failing(
        lifeboat()
            .args(["snapshot", "save", "--endpoints", &server.endpoint, "--cacert"])
            .arg(&pki.ca)
            .arg(&file),
        1,
    );
    assert!(
        error.contains("requires a client certificate; give --cert and --key"),
        "{version:?}: {error}"
    );

    let plain = server.endpoint.replace("https://", "http://");
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "save", "--endpoints", &plain])
            .arg(&file),
        1,
    );
    assert!(error.contains("does it expect TLS?"), "{version:?}: {error}");

    let error = run_failing(
        with_tls(&pki.ca, &pki.client.cert, &dir.path().join("missing.key")).arg("--force"),
        1,
    );
    assert!(
        error.contains("--key") && error.contains("missing.key does not exist"),
        "{version:?}: {error}"
    );

    let unused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "save", "--endpoints", &format!("127.0.0.1:{unused}")])
            .arg(&file),
        1,
    );
    assert!(
        error.contains(&format!("127.0.0.1:{unused}: connection refused")),
        "{version:?}: {error}"
    );

    // A port that accepts TCP but never answers TLS: the dial timeout, named as such.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_endpoint = format!("https://{}", silent.local_addr().unwrap());
    let error = run_failing(
        lifeboat()
            .args([
                "snapshot",
                "save",
                "--dial-timeout",
                "300ms",
                "--endpoints",
                &silent_endpoint,
                "--cacert",
            ])
            .arg(&pki.ca)
            .arg(&file),
        1,
    );
    assert!(
        error.contains("no connection within the dial timeout of 300ms"),
        "{version:?}: {error}"
    );

    let error = run_failing(
        lifeboat()
            .args(["snapshot", "save", "--endpoints", "not a url"])
            .arg(&file),
        1,
    );
    assert!(
        error.contains("\"not a url\" is not host:port"),
        "{version:?}: {error}"
    );
    assert_nothing_left(dir.path());
}

/// Starts a save, waits until bytes arrive, and freezes lifeboat (SIGSTOP) so that whatever
/// the test does next lands mid-stream however fast the machine is.
fn frozen_mid_stream(server: &EtcdServer, file: &Path) -> (std::process::Child, Pid) {
    let mut child = save_command(server, file).stderr(Stdio::piped()).spawn().unwrap();
    assert!(
        wait_for_size(&mut child, &part_of(file), 1, Duration::from_secs(30)),
        "the stream started"
    );
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    (child, pid)
}

#[tokio::test]
async fn etcd_killed_mid_stream_leaves_nothing() {
    let mut server = filled(EtcdConfig::new(EtcdVersion::V3_5).mtls(), &big()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killed.db");
    let (mut child, pid) = frozen_mid_stream(&server, &file);
    server.kill();
    kill(pid, Signal::SIGCONT).unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(30));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&server.endpoint) && stderr.contains("connection lost"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn interrupt_or_terminate_during_save_leaves_nothing() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_4), &big()).await;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("interrupted.db");
        let (child, pid) = frozen_mid_stream(&server, &file);
        interrupt_stopped(child, pid, signal);
        assert_nothing_left(dir.path());
    }
}

#[tokio::test]
async fn full_disk_is_reported_and_leaves_nothing() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let disk = SmallDisk::mount(512 * 1024);
    let file = disk.dir.path().join("full.db");
    let error = run_failing(&mut save_command(&server, &file), 1);
    assert!(
        error.contains("no space left on the device of") && error.contains("full.db.part"),
        "{error}"
    );
    assert!(error.contains("free space there or write elsewhere"), "{error}");
    assert_nothing_left(disk.dir.path());
}
