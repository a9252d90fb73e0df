//! The agent's `capture` job against real etcd 3.6: only the leading agent captures, with its
//! lag and window on /metrics and the page. When the leading agent is paused, then the next
//! one killed, each mid-segment while writes go on, the next leader continues from the last
//! stored segment, and the paused one's late segments overlap it. Every acknowledged revision
//! up to the end is then restorable, with etcd's own HashKV, and no event is lost or doubled,
//! while a compact job merges the segments beside the capture.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::agent::{Agent, listen, sample};
use crate::pitr::{ranges, restore_revision, restored_hash};
use crate::repository::{Backend, Repo};

const TTL: Duration = Duration::from_secs(3);

fn capturing(agent: &Agent) -> bool {
    sample(&agent.metrics(), "lifeboat_capture_running") == 1.0
}

/// Waits (bounded) until exactly one of `among` captures.
fn the_capturing_one(agents: &[Agent], among: &[usize], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let found: Vec<usize> = among.iter().copied().filter(|&i| capturing(&agents[i])).collect();
        assert!(found.len() <= 1, "two agents capture at once: {found:?}");
        if let [one] = found[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no agent captures within {limit:?}: {}",
            agents[among[0]].log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded by a lease TTL and an election) until agent `next` captures after `event`.
fn takes_over(agents: &[Agent], next: usize, event: &str) {
    let since = Instant::now();
    the_capturing_one(agents, &[next], TTL * 3 + Duration::from_secs(10));
    eprintln!("agent-{} captures {:?} after {event}", next + 1, since.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leading_agent_captures_and_the_next_leader_continues_with_no_lost_or_doubled_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
        .await
        .unwrap();
    let endpoints = server.etcdctl_args()[0]
        .strip_prefix("--endpoints=")
        .unwrap()
        .to_string();
    let mut client = server.member().await.unwrap().client();
    client.put("/registry/seed", "1", None).await.unwrap();
    // No backup yet: the first capture takes its base.
    let repo = Repo::initialised(Backend::Local);
    let mut agents: Vec<Agent> = (1..=2)
        .map(|n| {
            let config = format!(
                "repository: {}\nidentity_file: {}\nlisten: {}\nleader: etcd\nleader_check: 200ms\nleader_ttl: {}s\nhost: agent-{n}\n\
                 objectives: {{rpo: 1m, rto: 15m}}\netcd: {{endpoints: [{endpoints}]}}\njobs:\n\
                 \x20 - {{name: pitr, kind: capture, segment: 1s, hash_every: 1s, retry_backoff: 1s}}\n\
                 \x20 - {{name: compact, kind: compact, every: 2s, per_merge: 3}}\n",
                repo.location(),
                repo.identity().display(),
                listen(),
                TTL.as_secs(),
            );
            Agent::start(repo.lifeboat(), dir.path(), &format!("agent-{n}"), &config)
        })
        .collect();

    // Kubernetes-sized writes every 20 ms, each acknowledged revision kept.
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (acked, writing) = (acked.clone(), writing.clone());
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while writing.load(Ordering::SeqCst) {
                let key = format!("/registry/configmaps/default/c{}", n % 150);
                let put = client.put(key, vec![b'v'; 1500], None).await.unwrap();
                acked.lock().unwrap().push(put.header().unwrap().revision());
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let newest_acked = || *acked.lock().unwrap().last().unwrap_or(&0);

    let first = the_capturing_one(&agents, &[0, 1], Duration::from_secs(40));
    let standby = 1 - first;
    let target = newest_acked() + 20;
    agents[first].wait_for("the capture stores segments", Duration::from_secs(30), |m| {
        sample(m, "lifeboat_capture_last_revision") >= target as f64
    });
    let metrics = agents[first].metrics();
    let lag = sample(&metrics, "lifeboat_capture_lag_seconds");
    assert!((0.0..5.0).contains(&lag), "lag {lag} at 1 s segments: {metrics}");
    let standing_by = agents[standby].metrics();
    assert_eq!(sample(&standing_by, "lifeboat_capture_running"), 0.0);
    assert_eq!(sample(&standing_by, "lifeboat_capture_lag_seconds"), 0.0);
    assert_eq!(sample(&standing_by, "lifeboat_capture_gaps_total"), 0.0);
    let (_, page) = agents[first].get("/");
    assert!(page.contains("Capturing on this agent since"), "{page}");
    assert!(page.contains("From revision"), "the restorable window: {page}");
    let (_, page) = agents[standby].get("/");
    assert!(page.contains("The leading agent captures"), "{page}");

    // The leading agent stops answering in the middle of a segment, writes going on: the other
    // takes over; resumed, the first stores what it held late (overlapping the new leader's
    // segments) and stands by.
    let mut points = vec![newest_acked()];
    let signal = |agent: &Agent, signal| kill(Pid::from_raw(agent.pid() as i32), signal).unwrap();
    signal(&agents[first], Signal::SIGSTOP);
    takes_over(&agents, standby, "the pause");
    points.push(newest_acked());
    signal(&agents[first], Signal::SIGCONT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        the_capturing_one(&agents, &[first, standby], Duration::from_secs(10)),
        standby
    );
    let log = agents[first].log_text();
    assert!(log.contains("stopped by the loss of leadership"), "{log}");

    // Then the new leader dies in the middle of a segment: the first leads and captures again.
    points.push(newest_acked());
    signal(&agents[standby], Signal::SIGKILL);
    takes_over(&agents, first, "the kill");
    points.push(newest_acked());
    tokio::time::sleep(Duration::from_secs(2)).await;
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    let last = newest_acked();
    points.push(last);
    agents[first].wait_for("the last write stored", Duration::from_secs(30), |m| {
        sample(m, "lifeboat_capture_last_revision") >= last as f64
    });
    assert_eq!(
        sample(&agents[first].metrics(), "lifeboat_capture_gaps_total"),
        0.0
    );

    // Compaction ran beside the capture and merged segments while both leaders stored them.
    agents[first].wait_for("a compaction", Duration::from_secs(20), |m| {
        sample(
            m,
            "lifeboat_job_runs_total{job_name=\"compact\",kind=\"compact\",result=\"success\"}",
        ) >= 1.0
    });
    let (code, _) = agents[first].terminate();
    assert_eq!(code, Some(0));
    let logs = format!("{}{}", agents[0].log_text(), agents[1].log_text());
    let merged = logs
        .lines()
        .filter(|l| l.contains("(compact): cluster") && !l.contains(": 0 merged into 0"))
        .count();
    assert!(merged >= 1, "no compaction merged anything: {logs}");
    let overlapping = overlaps(&repo);
    eprintln!("{overlapping} segments overlap the one before them after compaction");

    // One unbroken range from the base through the last acknowledged write.
    let ranges = ranges(&repo);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert!(ranges[0]["to_revision"].as_i64().unwrap() >= last, "{ranges:?}");
    for (n, point) in points.into_iter().enumerate() {
        let name = format!("r{n}");
        let (report, _) = restore_revision(&repo, dir.path(), &name, point);
        assert_eq!(report["proof"]["result"], "equal", "at {point}: {report}");
        let db = dir.path().join(&name).join("member/snap/db");
        let theirs = client.hash_kv(point).await.unwrap().hash();
        assert_eq!(restored_hash(&db, point), u64::from(theirs), "HashKV at {point}");
    }
}

/// How many segments start at or before the end of an earlier one (both leaders stored them).
fn overlaps(repo: &Repo) -> usize {
    let root = std::path::Path::new(repo.location()).join("segments");
    let mut ranges: Vec<(i64, i64)> = std::fs::read_dir(root)
        .unwrap()
        .flat_map(|cluster| std::fs::read_dir(cluster.unwrap().path()).unwrap())
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let (first, last) = name.strip_suffix(".json")?.split_once('-')?;
            Some((first.parse().ok()?, last.parse().ok()?))
        })
        .collect();
    ranges.sort();
    ranges.windows(2).filter(|w| w[1].0 <= w[0].1).count()
}
