//! The chart's alerts (rendered by helm from ci/all-options.yaml, judged by promtool) against
//! what a real agent exposes at its first scrape, gauges at their initial values: after a first
//! deployment only the truthful alert fires (the repository holds no etcd backup), and after a
//! rollout (the repository holds this node's backups and a passed drill) none does. Each alert
//! in the failure it exists for: ci/alerts-test.yaml.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use lifeboat_test_support::{EtcdVersion, control_plane_tree};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::agent::{Agent, init_copy_target, listen};
use crate::common::*;
use crate::drill::kubernetes_like;
use crate::repository::{Backend, Repo};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/helm/lifeboat");
/// How far before the scrape "never" (a gauge at zero) lies in promtool's time, which starts at
/// zero: farther than any alert's threshold.
const HISTORY: u64 = 10 * 86_400;
/// When the alerts are looked at: past every alert's `for`.
const LOOK_AFTER: u64 = 9_000;

/// The PrometheusRule's spec, written to `dir/rules.yaml`; returns its alert names.
fn render_rules(dir: &Path) -> Vec<String> {
    let helm = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lifeboat-tools/helm/helm");
    let rendered = run_ok(
        Command::new(helm)
            .args(["template", "lifeboat", CHART, "--namespace", "lifeboat", "-f"])
            .arg(format!("{CHART}/ci/all-options.yaml")),
    );
    let rule = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|document| serde_yaml_ng::Value::deserialize(document).unwrap())
        .find(|object| object["kind"].as_str() == Some("PrometheusRule"))
        .expect("the chart renders a PrometheusRule");
    std::fs::write(
        dir.join("rules.yaml"),
        serde_yaml_ng::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let spec: Value = serde_json::to_value(&rule["spec"]).unwrap();
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .filter_map(|rule| rule["alert"].as_str().map(String::from))
        .collect()
}

/// The scrape as promtool input series, constant from promtool's time zero, which stands for
/// [`HISTORY`] before the scrape: timestamps other than zero move with it.
fn series(scrape: &str, scraped_at: u64) -> Vec<Value> {
    let shift = scraped_at as f64 - HISTORY as f64;
    let samples = (HISTORY + LOOK_AFTER) / 60 + 10;
    let target = "namespace=\"lifeboat\",instance=\"node-1:9648\",job=\"lifeboat\"";
    let mut found: Vec<Value> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let mut value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite())?;
            if name.contains("_timestamp_seconds") && value != 0.0 {
                value -= shift;
            }
            let series = match name.split_once('{') {
                Some((metric, labels)) => format!("{metric}{{{},{target}}}", labels.trim_end_matches('}')),
                None => format!("{name}{{{target}}}"),
            };
            Some(json!({"series": series, "values": format!("{value}+0x{samples}")}))
        })
        .collect();
    found.push(json!({"series": format!("up{{{target}}}"), "values": format!("1+0x{samples}")}));
    found
}

/// Runs promtool on the scrape: every alert but those in `firing` stays silent, and those
/// fire as given (labels and summary).
fn judge(dir: &Path, alerts: &[String], scrape: &str, scraped_at: u64, firing: &[(&str, Value)]) {
    let at = format!("{}s", HISTORY + LOOK_AFTER);
    let checks: Vec<Value> = alerts
        .iter()
        .map(|alert| {
            let expected: Vec<Value> = firing
                .iter()
                .filter(|(name, _)| name == alert)
                .map(|(_, expected)| expected.clone())
                .collect();
            json!({"eval_time": at, "alertname": alert, "exp_alerts": expected})
        })
        .collect();
    let test = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "name": "a real agent's first scrape",
            "interval": "1m",
            "input_series": series(scrape, scraped_at),
            "alert_rule_test": checks,
        }],
    });
    std::fs::write(dir.join("test.yaml"), test.to_string()).unwrap();
    let output = run(Command::new("promtool")
        .args(["test", "rules"])
        .arg(dir.join("test.yaml")));
    assert!(
        output.status.success(),
        "{}\n{}\nscrape:\n{scrape}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts an agent of every job kind on `repo` and returns its first scrape once it is ready
/// and has read its certificates, with the Unix time of the scrape.
fn first_scrape(repo: &Repo, work: &Path, name: &str, endpoint: &str, target: &Path) -> (String, u64) {
    let node = work.join("node");
    // Jobs that would run at once on an empty repository keep to a yearly time instead, so the
    // scrape shows the gauges as a new agent has them.
    let config = format!(
        "repository: {repo}\nidentity_file: {identity}\nlisten: {address}\nleader: always\nhost: node-1\n\
         temp_dir: {work}\netcd: {{endpoints: [{endpoint}]}}\njobs:\n\
         \x20 - {{name: snap, kind: backup, cron: '0 0 1 1 *'}}\n\
         \x20 - {{name: pki, kind: files, every: 6h, root: {node}}}\n\
         \x20 - {{name: eu, kind: copy, cron: '0 0 1 1 *', to: {target}}}\n\
         \x20 - {{name: drill, kind: drill, every: 1d, etcd_binary: {etcd}}}\n\
         \x20 - {{name: certs, kind: certs, every: 6h, root: {node}, warn_days: 30}}\n",
        repo = repo.location(),
        identity = repo.identity().display(),
        address = listen(),
        work = work.display(),
        node = node.display(),
        target = target.display(),
        etcd = EtcdVersion::V3_5.etcd().display(),
    );
    let mut agent = Agent::start(repo.lifeboat(), work, name, &config);
    agent.wait_for(
        "ready, with its certificates read",
        Duration::from_secs(60),
        |m| m.contains("lifeboat_certificate_expiry_timestamp_seconds{"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "not ready: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let scraped_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let scrape = agent.metrics();
    let (code, _) = agent.terminate();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    (scrape, scraped_at)
}

#[tokio::test]
async fn a_fresh_agent_and_one_after_a_rollout_raise_no_alert_that_is_not_true() {
    let work = tempfile::tempdir().unwrap();
    let rules_dir = work.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let alerts = render_rules(&rules_dir);
    assert!(alerts.len() >= 10, "{alerts:?}");
    control_plane_tree(&work.path().join("node"), true).unwrap();
    let server = kubernetes_like(EtcdVersion::V3_5).await;
    let repo = Repo::initialised(Backend::Local);
    let target = work.path().join("eu");
    init_copy_target(&repo, &target);

    // A first deployment: the repository holds nothing yet, which is all that may be said.
    let (scrape, at) = first_scrape(&repo, work.path(), "fresh", &server.endpoint, &target);
    let missing = json!({
        "exp_labels": {"severity": "critical", "namespace": "lifeboat"},
        "exp_annotations": {"summary": "The repository holds no etcd backup"},
    });
    judge(
        &rules_dir,
        &alerts,
        &scrape,
        at,
        &[("LifeboatBackupMissing", missing)],
    );

    // The previous agent's work is in the repository: an etcd backup, this node's files and
    // a passed drill. The new agent, at its first scrape, raises nothing.
    run_ok(repo.backup_command(&server).args(["--host", "node-1"]));
    run_ok(
        repo.lifeboat()
            .args(["backup", "--files", "--host", "node-1", "--root"])
            .arg(work.path().join("node")),
    );
    run_ok(
        repo.lifeboat()
            .env_remove("LIFEBOAT_ETCD")
            .arg("drill")
            .arg("--identity-file")
            .arg(repo.identity())
            .arg("--etcd")
            .arg(EtcdVersion::V3_5.etcd())
            .arg("--work-dir")
            .arg(work.path())
            .arg("latest"),
    );
    let (scrape, at) = first_scrape(&repo, work.path(), "rolled", &server.endpoint, &target);
    // What this node last did is carried over from the repository, so the files and drill
    // alerts keep watching across the rollout.
    for carried in [
        "lifeboat_backup_last_success_timestamp_seconds{kind=\"files\"}",
        "lifeboat_drill_last_success_timestamp_seconds",
    ] {
        let value = crate::agent::sample(&scrape, carried);
        assert!(value > (at - 3_600) as f64, "{carried} {value}\n{scrape}");
    }
    judge(&rules_dir, &alerts, &scrape, at, &[]);
}
