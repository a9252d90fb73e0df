//! `lifeboat agent` against real etcd, the S3 server and a real browser (Debian's headless
//! chromium): an agent with second-level schedules makes backups, copies, retention, a drill and
//! certificate checks, and shows them in its metrics and on its page (leadership:
//! agent_election.rs); SIGTERM in the
//! middle of a backup stops the agent at once and leaves nothing partial; a bad configuration is
//! refused with its line and field.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_etcd_proc::free_port;
use lifeboat_test_support::{EtcdConfig, EtcdVersion, control_plane_tree};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;
use crate::drill::kubernetes_like;
use crate::repository::{Backend, Repo, assert_no_backup, recipient_of, upload_begun};

/// A running agent, killed if the test ends without stopping it.
pub(crate) struct Agent {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Agent {
    /// Starts `lifeboat agent` on `config` (written to `dir`) with `command`'s environment.
    pub(crate) fn start(mut command: Command, dir: &Path, name: &str, config: &str) -> Self {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config).unwrap();
        run_ok(lifeboat().arg("agent").arg("--check-config").arg(&path));
        let log = dir.join(format!("{name}.log"));
        let address = config
            .lines()
            .find_map(|l| l.strip_prefix("listen: "))
            .unwrap()
            .to_string();
        let child = command
            .env("LIFEBOAT_LOG", "info")
            .arg("agent")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, address, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.address, path)
    }

    /// The metrics as served: every sample labelled with the agent's cluster.
    pub(crate) fn labelled_metrics(&self) -> String {
        self.get("/metrics").1
    }

    /// The metrics with the `cluster` label taken out (after checking that every sample has
    /// one), so that series read as their own labels.
    pub(crate) fn metrics(&self) -> String {
        without_cluster(&self.labelled_metrics())
    }

    /// Waits (bounded) until the metrics satisfy `ready`.
    pub(crate) fn wait_for(&mut self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if ready(&self.metrics()) {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the agent exited: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{what} within {limit:?}; metrics:\n{}\nlog:\n{}",
            self.metrics(),
            self.log_text()
        );
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; returns the exit code and how long the agent took to exit.
    pub(crate) fn terminate(&mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let code = wait_exit(&mut self.child, Duration::from_secs(20));
        (code, started.elapsed())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over loopback: (status, body).
fn http_get(address: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `text` with each sample's `cluster` label removed; panics on a sample without one.
pub(crate) fn without_cluster(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else {
            let start = line
                .find("cluster=\"")
                .unwrap_or_else(|| panic!("a sample without the cluster label: {line}"));
            let value_end = line[start + 9..].find('"').map(|i| start + 9 + i + 1).unwrap();
            let rest = &line[value_end..];
            match rest.strip_prefix(',') {
                Some(rest) => out.push_str(&format!("{}{rest}", &line[..start])),
                // The only label: the braces go with it.
                None => out.push_str(&format!("{}{}", &line[..start - 1], &rest[1..])),
            }
        }
        out.push('\n');
    }
    out
}

/// The value of the first sample of `metrics` whose line starts with `series`.
pub(crate) fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// A repository at `target` that encrypts to `repo`'s key, for copies.
pub(crate) fn init_copy_target(repo: &Repo, target: &Path) {
    run_ok(
        lifeboat()
            .args(["repo", "init", "--repo"])
            .arg(target)
            .args(["--recipient", &recipient_of(&repo.identity())]),
    );
}

pub(crate) fn listen() -> String {
    format!("127.0.0.1:{}", free_port().unwrap())
}

pub(crate) fn backups_of(repo: &Repo) -> Vec<Value> {
    let out = run_ok(repo.lifeboat().args(["backups", "list", "-w", "json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Headless chromium: the page's rendered DOM, and a screenshot of it.
fn browse(url: &str, screenshot: &Path, profile: &Path) -> String {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (scripts/setup installs it)");
    let base = |command: &mut Command| {
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--window-size=1280,2200")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut dump = Command::new(chromium);
    base(&mut dump);
    let dom = dump.arg("--dump-dom").arg(url).output().unwrap();
    assert!(dom.status.success(), "chromium --dump-dom failed");
    let mut shot = Command::new(chromium);
    base(&mut shot);
    let status = shot
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium --screenshot failed");
    String::from_utf8(dom.stdout).unwrap()
}

/// The text of the section under heading `id`, up to the next heading, tags removed.
fn section(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("section {id} on the page"));
    let rest = &dom[start..];
    let end = rest[1..].find("<h2").map_or(rest.len(), |i| i + 1);
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn an_agent_backs_up_copies_forgets_drills_and_shows_it_in_metrics_and_on_its_page() {
    let server = kubernetes_like(EtcdVersion::V3_5).await;
    let repo = Repo::initialised(Backend::S3);
    let work = tempfile::tempdir().unwrap();
    // The copy target encrypts to the same key, in another repository.
    let target = work.path().join("eu");
    init_copy_target(&repo, &target);
    let node = work.path().join("node");
    control_plane_tree(&node, true).unwrap();
    let address = listen();
    let config = format!(
        "repository: {repo}\nidentity_file: {identity}\nlisten: {address}\nleader: etcd\nleader_check: 1s\n\
         cluster: test-cluster\nhost: node-1\nobjectives: {{rpo: 1h, rto: 5m}}\ntemp_dir: {temp}\n\
         etcd: {{endpoints: [{endpoint}]}}\njobs:\n\
         \x20 - {{name: snap, kind: backup, every: 2s, tags: [fast]}}\n\
         \x20 - {{name: pki, kind: files, every: 3s, root: {node}}}\n\
         \x20 - {{name: db, kind: stream, every: 3s, artifact: app.sql, command: [sh, -c, 'echo CREATE TABLE t']}}\n\
         \x20 - {{name: eu, kind: copy, every: 3s, to: {target}, keep: {{last: 2}}}}\n\
         \x20 - {{name: retention, kind: forget, every: 4s, keep: {{last: 3}}}}\n\
         \x20 - {{name: drill, kind: drill, every: 5s, etcd_binary: {etcd}, boot_timeout: 30s}}\n\
         \x20 - {{name: certs, kind: certs, every: 3s, root: {node}, warn_days: 30}}\n",
        repo = repo.location(),
        identity = repo.identity().display(),
        temp = work.path().display(),
        endpoint = server.endpoint,
        node = node.display(),
        target = target.display(),
        etcd = EtcdVersion::V3_5.etcd().display(),
    );
    let mut agent = Agent::start(repo.lifeboat(), work.path(), "agent", &config);
    agent.wait_for(
        "backups, a copy, retention, a drill and a certificate check",
        Duration::from_secs(90),
        |m| {
            sample(m, "lifeboat_backups_total{kind=\"etcd\",result=\"success\"}") >= 3.0
                && sample(m, "lifeboat_backups_total{kind=\"files\",result=\"success\"}") >= 1.0
                && sample(m, "lifeboat_backups_total{kind=\"stream\",result=\"success\"}") >= 1.0
                && sample(
                    m,
                    &format!(
                        "lifeboat_copies_total{{target=\"{}\",result=\"success\"}}",
                        target.display()
                    ),
                ) >= 1.0
                && sample(
                    m,
                    &format!(
                        "lifeboat_forget_deleted_total{{repository=\"{}\"}}",
                        repo.location()
                    ),
                ) >= 1.0
                && sample(m, "lifeboat_drills_total{result=\"success\"}") >= 1.0
                && m.contains("lifeboat_certificate_expiry_timestamp_seconds{")
        },
    );
    let metrics = agent.metrics();
    // Every label combination exists from the start; failures stayed at zero.
    for series in [
        "lifeboat_backups_total{kind=\"etcd\",result=\"failure\"} 0",
        "lifeboat_drills_total{result=\"failure\"} 0",
        "\nlifeboat_leader 1\n",
        "lifeboat_rto_objective_seconds 300.0",
        "lifeboat_rpo_objective_seconds 3600.0",
        "lifeboat_build_info{version=",
        "lifeboat_job_skipped_total{job_name=\"snap\",reason=\"not_leader\"} 0",
        "lifeboat_backup_duration_seconds_bucket{",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(
        sample(&metrics, "lifeboat_drill_last_rto_seconds") > 0.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "lifeboat_backup_last_revision") > 1.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "lifeboat_backup_last_success_timestamp_seconds{kind=\"etcd\"}"
        ) > 1.7e9,
        "{metrics}"
    );
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(agent.get("/readyz").0, 200);

    // What the agent made is in the repositories, made by this host.
    let backups = backups_of(&repo);
    assert!(backups.iter().all(|b| b["host"] == "node-1"), "{backups:?}");
    let kinds: std::collections::BTreeSet<&str> = backups.iter().filter_map(|b| b["kind"].as_str()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["etcd", "files", "stream"]);
    let etcd_backups = backups.iter().filter(|b| b["kind"] == "etcd").count();
    assert!(
        etcd_backups <= 3 + 1,
        "retention keeps the last 3 (one may be new): {etcd_backups}"
    );
    let drills = run_ok(repo.lifeboat().args(["drills", "list", "-w", "json"]));
    assert!(drills.contains("\"passed\""), "{drills}");

    // The page, rendered by a real browser: every section shows what happened.
    let screenshot = work.path().join("status.png");
    let dom = browse(
        &format!("http://{address}/"),
        &screenshot,
        &work.path().join("chromium"),
    );
    let backups_text = section(&dom, "backups");
    assert!(
        backups_text.contains("etcd cluster") && backups_text.contains("within objective"),
        "{backups_text}"
    );
    let drill_text = section(&dom, "drill");
    assert!(
        drill_text.contains("passed")
            && drill_text.contains("objective 5 min")
            && drill_text.contains(" resources, 4 namespaces"),
        "{drill_text}"
    );
    let copies_text = section(&dom, "copies");
    assert!(
        copies_text.contains(&target.display().to_string()) && copies_text.contains("failed"),
        "{copies_text}"
    );
    let retention_text = section(&dom, "retention");
    assert!(
        retention_text.contains("last 3") && retention_text.contains("removed"),
        "{retention_text}"
    );
    let certificates_text = section(&dom, "certificates");
    assert!(
        certificates_text.contains("days left") && certificates_text.contains("etc/kubernetes"),
        "{certificates_text}"
    );
    let runs_text = section(&dom, "runs");
    for job in ["snap", "pki", "db", "eu", "retention", "drill", "certs"] {
        assert!(runs_text.contains(&format!(" {job} ")), "{job} in {runs_text}");
    }
    assert!(runs_text.contains("success"), "{runs_text}");
    assert!(
        dom.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "no external assets"
    );
    let png = std::fs::metadata(&screenshot).unwrap().len();
    assert!(png > 10_000, "screenshot of {png} bytes");

    let (code, took) = agent.terminate();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    let leftovers: Vec<String> = entries(work.path())
        .into_iter()
        .filter(|e| e.starts_with(".lifeboat") || e.starts_with("lifeboat-drill"))
        .collect();
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "drills and copies leave nothing in temp_dir"
    );

    // Restarted with hourly jobs: what the repository already holds from the last seconds is not
    // made again at once, while a job with no output to go by (certs) runs at the start.
    let restarted = format!(
        "repository: {repo}\nlisten: {address}\nleader: always\nhost: node-1\netcd: {{endpoints: [{endpoint}]}}\njobs:\n\
         \x20 - {{name: snap, kind: backup, every: 1h}}\n\
         \x20 - {{name: pki, kind: files, every: 1h, root: {node}}}\n\
         \x20 - {{name: certs, kind: certs, every: 1h, root: {node}}}\n",
        repo = repo.location(),
        endpoint = server.endpoint,
        node = node.display(),
    );
    let mut again = Agent::start(repo.lifeboat(), work.path(), "restarted", &restarted);
    again.wait_for(
        "the certificate check at the start",
        Duration::from_secs(30),
        |m| {
            sample(
                m,
                "lifeboat_job_runs_total{job_name=\"certs\",kind=\"certs\",result=\"success\"}",
            ) == 1.0
        },
    );
    let metrics = again.metrics();
    for kind in ["etcd", "files"] {
        let series = format!("lifeboat_backups_total{{kind=\"{kind}\",result=\"success\"}}");
        assert_eq!(sample(&metrics, &series), 0.0, "{series}: not due for an hour");
    }
    assert_eq!(again.terminate().0, Some(0));
}

#[tokio::test]
async fn sigterm_in_the_middle_of_a_backup_stops_the_agent_at_once_and_leaves_nothing() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let repo = Repo::initialised(Backend::S3);
    let work = tempfile::tempdir().unwrap();
    let address = listen();
    let config = format!(
        "repository: {}\nlisten: {address}\nleader: always\netcd: {{endpoints: [{}]}}\njobs:\n  - {{name: snap, kind: backup, every: 1s}}\n",
        repo.location(),
        server.endpoint,
    );
    let mut agent = Agent::start(repo.lifeboat(), work.path(), "agent", &config);
    let uploads = repo.uploads_root();
    assert!(
        wait_until(&mut agent.child, Duration::from_secs(60), || {
            files_under(&uploads).iter().any(|f| upload_begun(f))
        }),
        "the backup's upload began: {}",
        agent.log_text()
    );
    let (code, took) = agent.terminate();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    assert!(
        agent.log_text().contains("SIGTERM: stopping"),
        "{}",
        agent.log_text()
    );
    assert_no_backup(&repo);
}

#[test]
fn a_bad_configuration_is_refused_with_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        "repository: /tmp/r\nleader: always\njobs:\n  - name: snap\n    kind: files\n    every: 2 fortnights\n",
    )
    .unwrap();
    let error = run_failing(lifeboat().arg("agent").arg("--check-config").arg(&path), 2);
    assert!(
        error.contains("line 6") && error.contains("every") && error.contains("2 fortnights"),
        "{error}"
    );
    let error = run_failing(lifeboat().arg("agent").arg("--config").arg(&path), 2);
    assert!(error.contains("line 6"), "{error}");

    std::fs::write(
        &path,
        "repository: s3://b/p\nleader: always\ncredentials: {secret_access_key: hunter2}\njobs:\n  - {name: f, kind: files, every: 1h}\n",
    )
    .unwrap();
    let error = run_failing(lifeboat().arg("agent").arg("--check-config").arg(&path), 2);
    assert!(error.contains("inline") && !error.contains("hunter2"), "{error}");

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agent.example.yaml");
    let out = run_ok(lifeboat().arg("agent").arg("--check-config").arg(&example));
    assert!(out.contains("valid, 10 jobs"), "{out}");
    assert!(
        out.contains("pitr (capture): continuously while leading"),
        "{out}"
    );
}

/// Whether any process runs with exactly this command line.
fn running(cmdline: &[&str]) -> bool {
    let wanted: Vec<u8> = cmdline.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|entry| std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == wanted))
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped_retried_and_counted_and_its_ticks_are_skipped() {
    let repo = Repo::initialised(Backend::Local);
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        "repository: {}\nlisten: {}\nleader: always\njobs:\n  - {{name: dump, kind: stream, every: 1s, timeout: 2s, retries: 1, retry_backoff: 1s, artifact: app.sql, command: [sleep, '29.75']}}\n",
        repo.location(),
        listen(),
    );
    let mut agent = Agent::start(repo.lifeboat(), work.path(), "agent", &config);
    agent.wait_for("two timed-out attempts", Duration::from_secs(30), |m| {
        sample(
            m,
            "lifeboat_job_runs_total{job_name=\"dump\",kind=\"stream\",result=\"failure\"}",
        ) >= 2.0
    });
    let metrics = agent.metrics();
    assert!(
        sample(
            &metrics,
            "lifeboat_job_skipped_total{job_name=\"dump\",reason=\"overlap\"}"
        ) >= 3.0,
        "the ticks during two 2 s attempts and a 1 s backoff are skipped: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "lifeboat_job_runs_total{job_name=\"dump\",kind=\"stream\",result=\"success\"}"
        ),
        0.0
    );
    assert!(
        sample(
            &metrics,
            "lifeboat_backups_total{kind=\"stream\",result=\"failure\"}"
        ) >= 2.0
    );
    let log = agent.log_text();
    assert!(
        log.contains("failed (attempt 1): ") && log.contains("failed (attempt 2): "),
        "{log}"
    );
    assert!(log.contains("interrupted by the job's timeout"), "{log}");
    let (status, page) = agent.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("failure (attempt 2)"), "{page}");
    // Nothing of the cancelled runs is left: no backup, and the command was killed.
    assert_eq!(backups_of(&repo), Vec::<Value>::new());
    let (code, _) = agent.terminate();
    assert_eq!(code, Some(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&["sleep", "29.75"]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !running(&["sleep", "29.75"]),
        "the timed-out command was left running"
    );
}
