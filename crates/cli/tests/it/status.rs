//! `snapshot status` and `snapshot verify` against real snapshots of etcd 3.4 to 3.7 at every
//! stage of a cluster's life: our status equals the reference tool of the file's version
//! (etcdctl 3.4, etcdutl 3.5 to 3.7), and with `--etcd-version` that of every other version.

use std::path::Path;

use lifeboat_test_support::{
    EtcdConfig, EtcdServer, EtcdVersion, FillSpec, fill, fill_large_values, fill_small_keys,
};
use serde_json::Value;

use crate::common::*;

const PASSWORD: &str = "root-pw";

/// Our status equals the reference tool's in every format (of the file's own version without
/// `--etcd-version`, of each version with it), and verify finds nothing.
fn assert_status_matches(version: EtcdVersion, file: &Path, stage: &str) -> Value {
    for reference in EtcdVersion::ALL {
        for format in ["json", "simple", "table"] {
            let mut command = lifeboat();
            command.args(["snapshot", "status", "-w", format]).arg(file);
            if reference != version {
                command.args(["--etcd-version", reference.minor()]);
            }
            let ours = run_ok(&mut command);
            let theirs = reference_status(reference, file, format);
            let context = format!("{version:?} {stage}: status -w {format} as {reference:?}");
            if format == "json" {
                let (ours, theirs): (Value, Value) = (
                    serde_json::from_str(&ours).unwrap(),
                    serde_json::from_str(&theirs).unwrap(),
                );
                assert_eq!(ours, theirs, "{context}");
            } else {
                assert_eq!(ours, theirs, "{context}");
            }
        }
    }
    let report: Value = serde_json::from_str(&run_ok(
        lifeboat().args(["snapshot", "verify", "-w", "json"]).arg(file),
    ))
    .unwrap();
    assert_eq!(report["ok"], true, "{version:?} {stage}: {report}");
    report
}

fn save(server: &EtcdServer, dir: &Path, stage: &str, auth: bool) -> std::path::PathBuf {
    let file = dir.join(format!("{stage}.db"));
    let mut command = save_command(server, &file);
    if auth {
        command.args(["--user", &format!("root:{PASSWORD}")]);
    }
    run_ok(&mut command);
    file
}

/// Page headers by raw scan: (flags, overflow) of every page that names itself.
fn page_kinds(file: &Path) -> Vec<(u16, u32)> {
    let bytes = std::fs::read(file).unwrap();
    bytes
        .chunks_exact(4096)
        .enumerate()
        .filter(|(i, page)| u64::from_le_bytes(page[..8].try_into().unwrap()) == *i as u64)
        .map(|(_, page)| {
            (
                u16::from_le_bytes(page[8..10].try_into().unwrap()),
                u32::from_le_bytes(page[12..16].try_into().unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_equals_reference_tools_through_a_clusters_life() {
    for version in EtcdVersion::ALL {
        let mut server = EtcdServer::start(EtcdConfig::new(version)).await.unwrap();
        let client = server.member().await.unwrap().client();
        let dir = tempfile::tempdir().unwrap();

        let empty = save(&server, dir.path(), "empty", false);
        assert_status_matches(version, &empty, "empty");

        // History, tombstones, leases, a compaction, and values larger than a page.
        fill(&client, &FillSpec::small()).await.unwrap();
        fill_large_values(&client, 6, 20_000).await.unwrap();
        let mixed = save(&server, dir.path(), "mixed", false);
        assert!(
            page_kinds(&mixed)
                .iter()
                .any(|&(flags, overflow)| flags == 0x02 && overflow > 0),
            "overflow pages"
        );
        assert_status_matches(version, &mixed, "mixed");

        // Enough keys that branch pages point to branch pages.
        fill_small_keys(&client, 100_000).await.unwrap();
        let many = save(&server, dir.path(), "many", false);
        let branches = page_kinds(&many)
            .iter()
            .filter(|&&(flags, _)| flags == 0x01)
            .count();
        assert!(branches > 2, "nested branch pages expected, found {branches}");
        assert_status_matches(version, &many, "many");

        server.enable_auth(PASSWORD).await.unwrap();
        let auth = save(&server, dir.path(), "auth", true);
        assert_status_matches(version, &auth, "auth");

        // A running member's db is refused, not read half-written.
        let error = run_failing(lifeboat().args(["snapshot", "status"]).arg(server.db_path()), 1);
        assert!(
            error.contains("is locked by a running etcd"),
            "{version:?}: {error}"
        );

        // A db copied out of a stopped member's data directory: no trailer.
        server.kill();
        let copied = dir.path().join("member-db");
        std::fs::copy(server.db_path(), &copied).unwrap();
        let report = assert_status_matches(version, &copied, "member db");
        assert_eq!(report["trailer"]["state"], "absent");
    }
}

#[tokio::test]
async fn verify_names_every_finding_and_uses_documented_exit_codes() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    fill(&server.member().await.unwrap().client(), &FillSpec::small())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = save(&server, dir.path(), "good", false);
    let text = run_ok(lifeboat().args(["snapshot", "verify"]).arg(&file));
    assert!(
        text.contains("trailer:   valid") && text.contains("result:    OK"),
        "{text}"
    );

    // Two independent faults: a flipped byte near the end (trailer) and leaf pages whose type
    // is no type at all (structure). Every leaf page: a freed page keeps its old flags, so one
    // alone may be one no tree reaches.
    let mut bytes = std::fs::read(&file).unwrap();
    let leaves: Vec<usize> = page_kinds(&file)
        .iter()
        .enumerate()
        .skip(2)
        .filter(|(_, (flags, _))| *flags == 0x02)
        .map(|(page, _)| page)
        .collect();
    assert!(!leaves.is_empty());
    for leaf in &leaves {
        bytes[leaf * 4096 + 8] = 0x20;
    }
    let last_page = bytes.len() / 4096 - 1;
    bytes[last_page * 4096 - 100] ^= 0x01;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let output = run(lifeboat()
        .args(["snapshot", "verify", "-w", "json"])
        .arg(&damaged));
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["trailer"]["state"], "mismatch");
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("sha256 trailer says")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| leaves
            .iter()
            .any(|leaf| *m == format!("page {leaf}: invalid type: 0x20"))),
        "{messages:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("damaged.db: ") && stderr.contains("findings"),
        "{stderr}"
    );

    // status names the first structural finding (the trailer is not its concern).
    let error = run_failing(lifeboat().args(["snapshot", "status"]).arg(&damaged), 1);
    assert!(
        error.contains("integrity check failed: ")
            && error.contains("findings (first: page ")
            && error.contains(": invalid type: 0x20"),
        "{error}"
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let error = run_failing(lifeboat().args(["snapshot", "verify"]).arg(&garbage), 2);
    assert!(error.contains("garbage.db: not a bbolt file"), "{error}");
    let error = run_failing(
        lifeboat()
            .args(["snapshot", "status"])
            .arg(dir.path().join("missing.db")),
        1,
    );
    assert!(
        error.contains("missing.db") && error.contains("No such file"),
        "{error}"
    );
}
