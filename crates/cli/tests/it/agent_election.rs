//! Leadership among agents by etcd's election, on a real three-member cluster: exactly one
//! agent leads whatever endpoints they were given, and another takes over within a lease TTL
//! when the leader's member dies, when its process dies, and when it is paused; a paused
//! leader's job commits nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_etcd_proc::{EtcdBinary, EtcdProcess, InitialCluster, Launch, free_port};
use lifeboat_test_support::EtcdVersion;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::agent::{Agent, backups_of, listen, sample};
use crate::common::*;
use crate::repository::{Backend, Repo};

/// A three-member cluster on loopback, with loopback election timings.
fn three_members(dir: &Path) -> Vec<EtcdProcess> {
    let binary = EtcdBinary::at(&EtcdVersion::V3_5.etcd()).unwrap();
    let names = ["m1", "m2", "m3"];
    let urls: Vec<(String, String)> = names
        .iter()
        .map(|_| {
            (
                format!("http://127.0.0.1:{}", free_port().unwrap()),
                format!("http://127.0.0.1:{}", free_port().unwrap()),
            )
        })
        .collect();
    let initial = names
        .iter()
        .zip(&urls)
        .map(|(name, (_, peer))| format!("{name}={peer}"))
        .collect::<Vec<_>>()
        .join(",");
    names
        .iter()
        .zip(urls)
        .map(|(name, (client_url, peer_url))| {
            EtcdProcess::spawn(Launch {
                binary: binary.clone(),
                name: name.to_string(),
                data_dir: dir.join(name),
                client_url,
                peer_url,
                initial: Some(InitialCluster {
                    members: initial.clone(),
                    token: "agent-test".into(),
                }),
                tls: None,
                log: dir.join(format!("{name}.log")),
                loopback_timing: true,
                die_with_parent: false,
                quota_bytes: None,
            })
            .unwrap()
        })
        .collect()
}

/// Every agent of the cluster, each given the same endpoint list.
fn agents_on(members: &[EtcdProcess], repo: &Repo, dir: &Path, marks: &Path) -> Vec<Agent> {
    let endpoints: Vec<&str> = members.iter().map(|m| m.endpoint()).collect();
    (1..=3)
        .map(|n| {
            // A stream job that marks its start, then takes a while: a job running when its
            // agent is paused.
            let config = format!(
                "repository: {}\nlisten: {}\nleader: etcd\nleader_check: 200ms\nleader_ttl: {}s\nhost: agent-{n}\n\
                 etcd: {{endpoints: [{}]}}\njobs:\n\
                 \x20 - {{name: slow, kind: stream, every: 1s, artifact: a.txt, command: [sh, -c, 'touch {}/agent-{n}-$$; sleep 2; echo data']}}\n",
                repo.location(),
                listen(),
                TTL.as_secs(),
                endpoints.join(", "),
                marks.display(),
            );
            Agent::start(repo.lifeboat(), dir, &format!("agent-{n}"), &config)
        })
        .collect()
}

const TTL: Duration = Duration::from_secs(3);

/// The agents (of those given, by index) that report leading, sampled twice to see it settled.
fn leaders(agents: &[Agent], among: &[usize]) -> Vec<usize> {
    among
        .iter()
        .copied()
        .filter(|&i| sample(&agents[i].metrics(), "lifeboat_leader") == 1.0)
        .collect()
}

/// Waits (bounded) until exactly one of `among` leads; returns it and how long that took.
fn one_leader(agents: &[Agent], among: &[usize], since: Instant, limit: Duration) -> (usize, Duration) {
    loop {
        let found = leaders(agents, among);
        if found.len() == 1 {
            let took = since.elapsed();
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(
                leaders(agents, among),
                found,
                "the leadership settles on one agent"
            );
            return (found[0], took);
        }
        assert!(found.len() <= 1, "two agents lead at once: {found:?}");
        assert!(since.elapsed() < limit, "no agent leads within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hosts(repo: &Repo) -> Vec<String> {
    backups_of(repo)
        .iter()
        .map(|b| b["host"].as_str().unwrap().to_string())
        .collect()
}

/// With identical endpoint lists, etcd's election makes exactly one agent lead. When the member
/// they all talk to dies, then the leading agent's process, then the next leader is paused (it
/// stops answering, as when cut off), another leads within one lease TTL each time; the paused
/// one, resumed, commits nothing of the job it was running.
#[tokio::test]
async fn with_identical_endpoints_exactly_one_agent_leads_and_another_takes_over_within_a_ttl() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let mut members = three_members(work.path());
    for member in &mut members {
        member.wait_ready(Duration::from_secs(30)).await.unwrap();
    }
    let repo = Repo::initialised(Backend::Local);
    let mut agents = agents_on(&members, &repo, work.path(), &marks);
    let all = [0, 1, 2];
    let (first, _) = one_leader(&agents, &all, Instant::now(), Duration::from_secs(30));
    for (i, agent) in agents.iter().enumerate() {
        assert_eq!(agent.get("/readyz").0, 200, "agent {i} joined the election");
        if i != first {
            let (_, page) = agent.get("/");
            assert!(
                page.contains(&format!("standby: agent-{} (pid", first + 1)),
                "{page}"
            );
        }
    }
    agents[first].wait_for("a stream backup by the leader", Duration::from_secs(30), |m| {
        sample(m, "lifeboat_backups_total{kind=\"stream\",result=\"success\"}") >= 1.0
    });
    assert!(hosts(&repo).iter().all(|h| *h == format!("agent-{}", first + 1)));
    for i in all.into_iter().filter(|&i| i != first) {
        let metrics = agents[i].metrics();
        let skipped = "lifeboat_job_skipped_total{job_name=\"slow\",reason=\"not_leader\"}";
        assert!(sample(&metrics, skipped) >= 1.0, "{metrics}");
    }

    // The member every agent talks to (the first endpoint) dies.
    let changes = |agents: &[Agent]| -> f64 {
        all.iter()
            .map(|&i| sample(&agents[i].metrics(), "lifeboat_leader_changes_total").max(0.0))
            .sum()
    };
    let before = changes(&agents);
    let killed = Instant::now();
    members[0].kill();
    // The leader steps down (it cannot renew through that member) before anyone leads again.
    let deadline = killed + TTL * 3 + Duration::from_secs(5);
    while changes(&agents) < before + 2.0 {
        assert!(Instant::now() < deadline, "the leadership did not move on");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (after_member, took) = one_leader(&agents, &all, killed, TTL * 3 + Duration::from_secs(5));
    eprintln!(
        "after the member died, agent-{} leads after {took:?}",
        after_member + 1
    );

    // The leading agent's process dies: the lease expires and another agent leads.
    let killed = Instant::now();
    kill(Pid::from_raw(agents[after_member].pid() as i32), Signal::SIGKILL).unwrap();
    let rest: Vec<usize> = all.into_iter().filter(|&i| i != after_member).collect();
    let (after_kill, took) = one_leader(&agents, &rest, killed, TTL + Duration::from_secs(4));
    eprintln!(
        "after the leader's agent died, agent-{} leads after {took:?}",
        after_kill + 1
    );

    // The next leader stops answering in the middle of a job.
    let leader_host = format!("agent-{}", after_kill + 1);
    let mark_of = |n: usize| -> usize {
        entries(&marks)
            .iter()
            .filter(|m| m.starts_with(&format!("agent-{}-", n + 1)))
            .count()
    };
    let started = mark_of(after_kill);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mark_of(after_kill) == started {
        assert!(Instant::now() < deadline, "the leader started no job");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = Pid::from_raw(agents[after_kill].pid() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let paused = Instant::now();
    let committed = hosts(&repo).iter().filter(|h| **h == leader_host).count();
    let last: Vec<usize> = rest.into_iter().filter(|&i| i != after_kill).collect();
    let (successor, took) = one_leader(&agents, &last, paused, TTL + Duration::from_secs(4));
    eprintln!(
        "after the leader was paused, agent-{} leads after {took:?}",
        successor + 1
    );
    kill(pid, Signal::SIGCONT).unwrap();
    agents[after_kill].wait_for("the resumed agent's job to end", Duration::from_secs(20), |m| {
        sample(m, "lifeboat_backups_total{kind=\"stream\",result=\"failure\"}") >= 1.0
    });
    assert_eq!(
        hosts(&repo).iter().filter(|h| **h == leader_host).count(),
        committed,
        "the paused leader's job committed nothing"
    );
    assert!(
        agents[after_kill].log_text().contains("the loss of leadership"),
        "{}",
        agents[after_kill].log_text()
    );
    assert_eq!(leaders(&agents, &[after_kill, successor]), [successor]);
    for i in [after_kill, successor] {
        let (code, took) = agents[i].terminate();
        assert_eq!(code, Some(0), "{}", agents[i].log_text());
        assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    }
}
