//! An agent whose storage hangs (a proxy in front of the S3 server stops passing bytes, with no
//! error): jobs end at their timeout and are counted as failures, `/readyz` says the repository
//! did not answer, and SIGTERM still stops the agent within 10 s.

use std::time::{Duration, Instant};

use lifeboat_test_support::{StallingProxy, control_plane_tree};

use crate::agent::{Agent, listen, sample};
use crate::repository::{Backend, Repo};

#[test]
fn a_hanging_storage_times_jobs_out_says_why_and_does_not_hold_up_the_stop() {
    let repo = Repo::initialised(Backend::S3);
    let s3 = repo.s3.as_ref().unwrap();
    let upstream: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = StallingProxy::start(upstream).unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = work.path().join("node");
    control_plane_tree(&node, true).unwrap();
    let address = listen();
    let config = format!(
        "repository: {repo}\nlisten: {address}\nleader: always\nhost: node-1\nlisting_timeout: 2s\n\
         temp_dir: {temp}\njobs:\n\
         \x20 - {{name: pki, kind: files, every: 1s, timeout: 3s, retries: 0, root: {node}}}\n",
        repo = repo.location(),
        temp = work.path().display(),
        node = node.display(),
    );
    let mut command = repo.lifeboat();
    command.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let mut agent = Agent::start(command, work.path(), "agent", &config);
    let success = "lifeboat_job_runs_total{job_name=\"pki\",kind=\"files\",result=\"success\"}";
    let failure = "lifeboat_job_runs_total{job_name=\"pki\",kind=\"files\",result=\"failure\"}";
    agent.wait_for("a files backup through the proxy", Duration::from_secs(30), |m| {
        sample(m, success) >= 1.0
    });
    assert_eq!(agent.get("/readyz").0, 200, "{}", agent.log_text());

    proxy.stall(true);
    let before = sample(&agent.metrics(), failure);
    let backup_failure = "lifeboat_backups_total{kind=\"files\",result=\"failure\"}";
    // Counted where the alerts look too, although the stuck backup was cut off.
    agent.wait_for("a job ended by its timeout", Duration::from_secs(20), |m| {
        sample(m, failure) >= before + 1.0 && sample(m, backup_failure) >= 1.0
    });
    assert!(
        agent.log_text().contains("the job's timeout"),
        "{}",
        agent.log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        let (status, body) = agent.get("/readyz");
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        reason.contains("unreachable") && reason.contains("did not answer within 2s"),
        "{reason}"
    );
    // The HTTP side answers throughout.
    assert_eq!(agent.get("/healthz").0, 200);

    let (code, took) = agent.terminate();
    assert_eq!(code, Some(0), "{}", agent.log_text());
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
}
