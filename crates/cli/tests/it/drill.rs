//! `lifeboat drill` against real etcd 3.4 to 3.7 and the S3 server: a clean drill on each, etcd's
//! upgrade policy (never down, one minor at a time), a damaged object, a backup whose recorded
//! HashKV no longer matches, a stale backup, a missing or too old etcd binary, an interrupted
//! drill, three members, `--keep`, the history, and a drill killed outright.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, FillSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;
use crate::repository::{Backend, Repo};

/// A cluster holding Kubernetes-like objects and the namespaces kubeadm creates.
pub(crate) async fn kubernetes_like(version: EtcdVersion) -> EtcdServer {
    kubernetes_like_with(version, &FillSpec::small()).await
}

async fn kubernetes_like_with(version: EtcdVersion, spec: &FillSpec) -> EtcdServer {
    let server = filled(EtcdConfig::new(version), spec).await;
    let mut client = server.member().await.unwrap().client();
    for namespace in ["default", "kube-system", "kube-public", "web"] {
        client
            .put(format!("/registry/namespaces/{namespace}"), "k8s\0ns", None)
            .await
            .unwrap();
    }
    server
}

/// `lifeboat drill` of the repository's backups with the identity, etcd `version` and a work dir.
fn drill_command(repo: &Repo, version: EtcdVersion, work: &Path) -> Command {
    let mut command = drill_without_etcd(repo, work);
    command.arg("--etcd").arg(version.etcd());
    command
}

fn drill_without_etcd(repo: &Repo, work: &Path) -> Command {
    let mut command = repo.lifeboat();
    command
        .env_remove("LIFEBOAT_ETCD")
        .arg("drill")
        .arg("--identity-file")
        .arg(repo.identity())
        .arg("--work-dir")
        .arg(work)
        .args(["-w", "json"]);
    command
}

fn report_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {}", String::from_utf8_lossy(&output.stderr)))
}

/// The report of a drill that must have passed (exit 0).
fn passed_report(output: &std::process::Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    report_of(output)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

fn phases(report: &Value) -> Vec<String> {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// No etcd process runs on a data directory under `work`.
fn no_etcd_under(work: &Path) -> bool {
    let needle = work.display().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().all(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|cmdline| !String::from_utf8_lossy(&cmdline).contains(&needle))
            .unwrap_or(true)
    })
}

async fn clean_drill(version: EtcdVersion) {
    let server = kubernetes_like(version).await;
    let repo = Repo::initialised(Backend::S3);
    let id = repo.backup(&server);
    let work = tempfile::tempdir().unwrap();
    let report_file = work.path().join("report.json");
    let output = run(drill_command(&repo, version, work.path())
        .arg(&id)
        .arg("--report")
        .arg(&report_file)
        .args(server.etcdctl_args()));
    let report = passed_report(&output);
    assert_eq!(report["result"], "passed", "{report}");
    assert_eq!(
        phases(&report),
        ["fetch", "verify", "restore", "boot", "check", "teardown"]
    );
    for name in [
        "integrity",
        "restore",
        "boot",
        "revision",
        "keys",
        "hashkv",
        "kubernetes",
    ] {
        assert_eq!(check(&report, name)["result"], "passed", "{name}: {report}");
    }
    for result in ["integrity", "restore", "content", "freshness"] {
        assert_eq!(report["results"][result], "passed", "{result}");
    }
    assert!(
        check(&report, "hashkv")["detail"]
            .as_str()
            .unwrap()
            .contains("equal to the member's")
    );
    assert!(report["kubernetes"]["namespaces"].as_array().unwrap().len() == 4);
    assert!(report["kubernetes"]["resources"]["pods"].as_u64().unwrap() > 0);
    // The same counts as `lifeboat k8s ls --count` of the backup.
    let counted: Value = serde_json::from_str(&run_ok(
        repo.lifeboat()
            .args([
                "k8s",
                "ls",
                "-A",
                "--count",
                "-w",
                "json",
                "--backup",
                &id,
                "--identity-file",
            ])
            .arg(repo.identity()),
    ))
    .unwrap();
    let mut per_resource = serde_json::Map::new();
    for row in counted["counts"].as_array().unwrap() {
        let resource = row["resource"].as_str().unwrap().to_string();
        let sum =
            per_resource.get(&resource).and_then(Value::as_u64).unwrap_or(0) + row["count"].as_u64().unwrap();
        per_resource.insert(resource, Value::from(sum));
    }
    assert_eq!(report["kubernetes"]["resources"], Value::Object(per_resource));
    assert!(report["rto"]["met"].as_bool().unwrap());
    assert!(report["rto"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(
        report["rpo"]["revision_lag"], 0,
        "the live cluster was given and did not move"
    );
    assert_eq!(report["etcd_version"], version.expected());
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(stored, report, "--report holds the printed report");
    assert_eq!(mode(&report_file), 0o600);
    // Nothing is left: the temporary directory is gone and no etcd runs.
    assert_eq!(entries(work.path()), ["report.json"]);
    assert!(no_etcd_under(work.path()));
    // The history: the drill is kept in the repository.
    let list: Value =
        serde_json::from_str(&run_ok(repo.lifeboat().args(["drills", "list", "-w", "json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["backup"], id.as_str());
    let shown = run_ok(repo.lifeboat().args(["drills", "show", "latest"]));
    assert!(shown.contains("RTO") && shown.contains("hashkv"), "{shown}");
}

#[tokio::test]
async fn clean_drill_on_etcd_3_4() {
    clean_drill(EtcdVersion::V3_4).await;
}

#[tokio::test]
async fn clean_drill_on_etcd_3_5() {
    clean_drill(EtcdVersion::V3_5).await;
}

#[tokio::test]
async fn clean_drill_on_etcd_3_6() {
    clean_drill(EtcdVersion::V3_6).await;
}

#[tokio::test]
async fn clean_drill_on_etcd_3_7() {
    clean_drill(EtcdVersion::V3_7).await;
}

/// etcd's upgrade policy decides which binary may drill which backup: the same minor or the
/// next (3.5.1 data on 3.6 too, with the guide's condition explained), never down, never a
/// skipped minor; a refusal names both versions, exits 2 and fetches nothing.
#[tokio::test]
async fn drills_follow_etcds_upgrade_policy() {
    let repo = Repo::initialised(Backend::Local);
    let mut ids = std::collections::BTreeMap::new();
    for version in [
        EtcdVersion::V3_4,
        EtcdVersion::V3_5_1,
        EtcdVersion::V3_6,
        EtcdVersion::V3_7,
    ] {
        let server = kubernetes_like(version).await;
        ids.insert(version, repo.backup(&server));
    }
    let work = tempfile::tempdir().unwrap();
    let refusals = [
        (
            EtcdVersion::V3_6,
            EtcdVersion::V3_5,
            "etcd cannot downgrade data); use etcd 3.6 or newer",
        ),
        (
            EtcdVersion::V3_7,
            EtcdVersion::V3_6,
            "etcd cannot downgrade data); use etcd 3.7 or newer",
        ),
        (
            EtcdVersion::V3_4,
            EtcdVersion::V3_6,
            "etcd upgrades one minor at a time; use etcd 3.5",
        ),
        (
            EtcdVersion::V3_5_1,
            EtcdVersion::V3_7,
            "etcd upgrades one minor at a time; use etcd 3.6",
        ),
    ];
    for (data, binary, reason) in refusals {
        let refused = run_failing(drill_command(&repo, binary, work.path()).arg(&ids[&data]), 2);
        let versions = format!(
            "data written by etcd {} cannot {} on etcd {}",
            data.expected(),
            if reason.contains("downgrade") {
                "run"
            } else {
                "boot"
            },
            binary.expected()
        );
        assert!(
            refused.contains(&versions) && refused.contains(reason),
            "{data:?} on {binary:?}: {refused}"
        );
        assert!(entries(work.path()).is_empty(), "nothing fetched");
    }
    for (data, binary) in [
        (EtcdVersion::V3_5_1, EtcdVersion::V3_6),
        (EtcdVersion::V3_6, EtcdVersion::V3_7),
    ] {
        let report = passed_report(&run(drill_command(&repo, binary, work.path()).arg(&ids[&data])));
        assert_eq!(report["result"], "passed", "{data:?} on {binary:?}: {report}");
        let detail = check(&report, "etcd version")["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.starts_with(&format!(
                "etcd {} data on etcd {}",
                data.expected(),
                binary.expected()
            )),
            "{detail}"
        );
        assert_eq!(
            detail.contains("etcd's guide asks for 3.5.26 or later before a rolling upgrade to 3.6"),
            data == EtcdVersion::V3_5_1,
            "{detail}"
        );
    }
}

#[tokio::test]
async fn failing_drills_say_which_check_failed() {
    let server = kubernetes_like(EtcdVersion::V3_5).await;
    let repo = Repo::initialised(Backend::S3);
    let id = repo.backup(&server);
    let work = tempfile::tempdir().unwrap();

    // Data 3.5 on etcd 3.4: could not run (exit 2), nothing fetched.
    let refused = run_failing(drill_command(&repo, EtcdVersion::V3_4, work.path()).arg(&id), 2);
    assert!(
        refused.contains(&format!(
            "data written by etcd {} cannot run on etcd 3.4.23",
            EtcdVersion::V3_5.expected()
        )),
        "{refused}"
    );
    // No etcd binary at all: exit 2, named.
    let missing = run_failing(
        drill_without_etcd(&repo, work.path())
            .arg(&id)
            .args(["--etcd", "/nonexistent/etcd"]),
        2,
    );
    assert!(missing.contains("/nonexistent/etcd does not exist"), "{missing}");
    let none = run_failing(
        drill_without_etcd(&repo, work.path())
            .env("PATH", "/nonexistent")
            .arg(&id),
        2,
    );
    assert!(none.contains("none on PATH"), "{none}");

    // An unreachable live cluster only costs the revision lag, with a warning saying why.
    let output =
        run(drill_command(&repo, EtcdVersion::V3_5, work.path()).args([&id, "--endpoints", "127.0.0.1:1"]));
    assert_eq!(output.status.code(), Some(0));
    let report = report_of(&output);
    assert_eq!(report["rpo"]["revision_lag"], Value::Null);
    assert_eq!(check(&report, "revision-lag")["result"], "warning");

    // Stale: a warning by default, a failure with --fail-on-stale.
    std::thread::sleep(Duration::from_millis(1100));
    let output = run(drill_command(&repo, EtcdVersion::V3_5, work.path()).args([&id, "--max-age", "1s"]));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(report_of(&output)["results"]["freshness"], "warning");
    let output = run(drill_command(&repo, EtcdVersion::V3_5, work.path()).args([
        &id,
        "--max-age",
        "1s",
        "--fail-on-stale",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report_of(&output)["results"]["freshness"], "failed");

    // A recorded HashKV that no longer matches the data: content fails, the rest passes.
    let manifest_path = repo.root().join(format!("backups/{id}/manifest.json"));
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: Value = serde_json::from_str(&original).unwrap();
    let hash = manifest["etcd"]["hash_kv"]["hash"].as_u64().unwrap();
    manifest["etcd"]["hash_kv"]["hash"] = (hash ^ 1).into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let output = run(drill_command(&repo, EtcdVersion::V3_5, work.path()).arg(&id));
    assert_eq!(output.status.code(), Some(1));
    let report = report_of(&output);
    assert_eq!(report["results"]["integrity"], "passed");
    assert_eq!(report["results"]["restore"], "passed");
    assert_eq!(report["results"]["content"], "failed");
    assert!(
        check(&report, "hashkv")["detail"]
            .as_str()
            .unwrap()
            .contains("not what the member held")
    );
    assert_eq!(
        report["rto"]["seconds"],
        Value::Null,
        "no RTO is proven by a failed drill"
    );
    // verify --read-data recomputes the HashKV from the stored image and names the mismatch.
    let verify_read_data = || {
        run(repo
            .lifeboat()
            .args(["backups", "verify", "--read-data", &id, "--identity-file"])
            .arg(repo.identity()))
    };
    let verify = verify_read_data();
    assert_eq!(verify.status.code(), Some(1));
    let lines = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        lines.contains("HashKV at revision") && lines.contains("DAMAGED"),
        "{lines}"
    );
    // A member that had compacted the revision away left no record: not comparable, a note.
    manifest["etcd"]["hash_kv"] = Value::Null;
    manifest["etcd"]["hash_kv_missing"] = "the member compacted revision 9 before HashKV was asked".into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let verify = verify_read_data();
    assert_eq!(verify.status.code(), Some(0));
    let lines = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        lines.contains("NOTE: HashKV not comparable: the member compacted"),
        "{lines}"
    );
    std::fs::write(&manifest_path, original).unwrap();

    // A damaged stored object: integrity fails and nothing is booted.
    let object = repo.root().join(format!("backups/{id}/etcd-snapshot.db"));
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&object, bytes).unwrap();
    let output = run(drill_command(&repo, EtcdVersion::V3_5, work.path()).arg(&id));
    assert_eq!(output.status.code(), Some(1));
    let report = report_of(&output);
    assert_eq!(report["results"]["integrity"], "failed");
    assert_eq!(report["results"]["restore"], "skipped");
    assert!(!phases(&report).contains(&"boot".to_string()), "{report}");
    assert!(
        check(&report, "integrity")["detail"]
            .as_str()
            .unwrap()
            .contains("sha256")
    );
    assert!(entries(work.path()).is_empty());
    assert!(no_etcd_under(work.path()));
}

#[tokio::test]
async fn three_members_elect_a_leader_and_agree_and_keep_leaves_them_running() {
    // More objects than one page of keys (10,000): the content check reads them in pages.
    let spec = FillSpec {
        objects: 12_000,
        value_bytes: (20, 40),
        overwrite_every: 0,
        delete_every: 0,
        leases: 0,
        compact: false,
        concurrency: 16,
    };
    let server = kubernetes_like_with(EtcdVersion::V3_5, &spec).await;
    let (work, saved) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = saved.path().join("snap.db");
    run_ok(&mut save_command(&server, &file));
    let drill_on = |version: EtcdVersion, extra: &[&str]| {
        let mut command = lifeboat();
        command
            .args(["drill", "--file"])
            .arg(&file)
            .arg("--etcd")
            .arg(version.etcd())
            .arg("--work-dir")
            .arg(work.path())
            .args(["-w", "json"])
            .args(extra);
        command
    };
    let drill = |extra: &[&str]| drill_on(EtcdVersion::V3_5, extra);
    let output = run(&mut drill(&["--members", "3"]));
    let report = passed_report(&output);
    assert_eq!(report["members"], 3);
    let quorum = check(&report, "quorum");
    assert_eq!(quorum["result"], "passed", "{report}");
    let counted: u64 = report["kubernetes"]["resources"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 12_000 + 4, "every object and namespace counted");
    // A snapshot file has no HashKV of its member: not comparable, a warning only.
    assert_eq!(check(&report, "hashkv")["result"], "warning");
    assert!(entries(work.path()).is_empty());

    // The file's cluster version (3.5.0) is more than etcd 3.4 can run: could not run.
    let refused = run_failing(&mut drill_on(EtcdVersion::V3_4, &[]), 2);
    assert!(
        refused.contains("data written by etcd 3.5.0 cannot run on etcd 3.4.23"),
        "{refused}"
    );
    assert!(entries(work.path()).is_empty());

    let output = run(&mut drill(&["--keep"]));
    assert_eq!(output.status.code(), Some(0));
    let report = report_of(&output);
    let endpoint = report["kept"]["endpoints"][0].as_str().unwrap().to_string();
    let pid = report["kept"]["pids"][0].as_i64().unwrap() as i32;
    // Kept members serve the holder of the drill's client certificate, kept beside them.
    let kept = Path::new(report["kept"]["dir"].as_str().unwrap());
    let answer = Command::new(EtcdVersion::V3_5.etcdctl())
        .arg("--cacert")
        .arg(kept.join("ca.crt"))
        .arg("--cert")
        .arg(kept.join("client.crt"))
        .arg("--key")
        .arg(kept.join("client.key"))
        .args([
            "--endpoints",
            &endpoint,
            "get",
            "/registry/namespaces/web",
            "--print-value-only",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    assert!(answer.status.success(), "the kept etcd answers");
    assert!(String::from_utf8_lossy(&answer.stdout).starts_with("k8s"));
    std::fs::remove_dir_all(report["kept"]["dir"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn an_interrupted_drill_leaves_no_process_and_no_directory() {
    let server = kubernetes_like(EtcdVersion::V3_5).await;
    let (work, saved) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = saved.path().join("snap.db");
    run_ok(&mut save_command(&server, &file));
    let mut child = lifeboat()
        .args(["drill", "--file"])
        .arg(&file)
        .arg("--etcd")
        .arg(EtcdVersion::V3_5.etcd())
        .arg("--work-dir")
        .arg(work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once etcd has been started on the restored data.
    let started = wait_until(&mut child, Duration::from_secs(30), || {
        files_under(work.path())
            .iter()
            .any(|f| f.ends_with("drill-1.log"))
    });
    assert!(started, "the drill reached the boot phase");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(130));
    assert!(entries(work.path()).is_empty());
    assert!(no_etcd_under(work.path()), "the throwaway etcd was stopped");
}

/// The processes running on data under `dir`: PID and arguments.
fn members_under(dir: &Path) -> Vec<(i32, Vec<String>)> {
    let needle = format!("--data-dir={}/", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let args: Vec<String> = std::fs::read(entry.path().join("cmdline"))
                .ok()?
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a.starts_with(&needle)).then_some((pid, args))
        })
        .collect()
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs nothing).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// The throwaway member serves clients only over TLS to the drill's own client certificate
/// (etcdctl without it is refused), dies with the drill's process even when that is SIGKILLed,
/// and the next drill in the same place removes the directory (the restored Secrets) it left.
#[tokio::test]
async fn a_killed_drill_takes_its_member_along_and_the_next_drill_removes_what_it_left() {
    let server = kubernetes_like(EtcdVersion::V3_5).await;
    let repo = Repo::initialised(Backend::Local);
    repo.backup(&server);
    let work = tempfile::tempdir().unwrap();
    let mut drill = drill_command(&repo, EtcdVersion::V3_5, work.path())
        .arg("latest")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let drill_pid = Pid::from_raw(drill.id() as i32);
    let mut found = Vec::new();
    assert!(
        wait_until(&mut drill, Duration::from_secs(60), || {
            found = members_under(work.path());
            !found.is_empty()
        }),
        "the drill started its member"
    );
    // Frozen, so the member stays up while it is looked at.
    kill(drill_pid, Signal::SIGSTOP).unwrap();
    let (member, args) = found.remove(0);
    let url = args
        .iter()
        .find_map(|a| a.strip_prefix("--listen-client-urls="))
        .unwrap()
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{args:?}");
    assert!(args.contains(&"--client-cert-auth".to_string()), "{args:?}");
    let refused = Command::new(EtcdVersion::V3_5.etcdctl())
        .args([
            "--endpoints",
            &url,
            "--insecure-skip-tls-verify",
            "--dial-timeout=2s",
        ])
        .args(["--command-timeout=3s", "get", "--prefix", "/registry"])
        .env_remove("ETCDCTL_API")
        .output()
        .unwrap();
    assert!(
        !refused.status.success() && refused.stdout.is_empty(),
        "without the drill's client certificate: {}",
        String::from_utf8_lossy(&refused.stdout)
    );

    kill(drill_pid, Signal::SIGKILL).unwrap();
    drill.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone(member) {
        assert!(
            std::time::Instant::now() < deadline,
            "the member outlived the drill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = entries(work.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("lifeboat-drill-"), "{left:?}");

    let report = passed_report(
        &drill_command(&repo, EtcdVersion::V3_5, work.path())
            .arg("latest")
            .output()
            .unwrap(),
    );
    assert_eq!(report["result"], "passed", "{report}");
    assert_eq!(
        entries(work.path()),
        Vec::<String>::new(),
        "the dead drill's directory is removed"
    );
}
