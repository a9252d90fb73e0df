//! Point-in-time capture when the repository's storage is down, against s3s-fs and etcd 3.6.
//! Within the buffer's bound, segments wait in memory for 30 s and are then stored: one
//! unbroken range, every point restorable with etcd's own HashKV. Past the bound the watch
//! pauses. If etcd compacts meanwhile, the gap is recorded and the capture starts again from
//! a full backup: nothing is lost silently.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::Client;
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion};

use crate::common::*;
use crate::pitr::{ranges, restore_revision, restored_hash, stop};
use crate::repository::{Backend, Repo};

fn capture(repo: &Repo, server: &EtcdServer, buffer_bytes: &str, log: &std::path::Path) -> Spawned {
    Spawned(
        repo.lifeboat()
            .env("LIFEBOAT_LOG", "warn")
            .args(["capture", "--segment", "200ms", "--hash-every", "1s"])
            .args(["--buffer-bytes", buffer_bytes])
            .args(server.etcdctl_args())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Writes every 50 ms until stopped; the acknowledged revisions, in order.
struct Writer {
    acked: Arc<Mutex<Vec<i64>>>,
    writing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(client: &Client) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writing = Arc::new(AtomicBool::new(true));
        let task = {
            let (acked, writing, mut client) = (acked.clone(), writing.clone(), client.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while writing.load(Ordering::SeqCst) {
                    let key = format!("/registry/pods/default/p{}", n % 40);
                    let put = client.put(key, vec![b'p'; 2000], None).await.unwrap();
                    acked.lock().unwrap().push(put.header().unwrap().revision());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Self { acked, writing, task }
    }

    fn newest(&self) -> i64 {
        *self.acked.lock().unwrap().last().unwrap_or(&0)
    }

    async fn stop(self) -> i64 {
        self.writing.store(false, Ordering::SeqCst);
        self.task.await.unwrap();
        *self.acked.lock().unwrap().last().unwrap_or(&0)
    }
}

fn restorable_through(repo: &Repo, child: &mut Child, revision: i64, limit: Duration) -> bool {
    wait_until(child, limit, || {
        ranges(repo)
            .iter()
            .any(|r| r["to_revision"].as_i64().unwrap() >= revision)
    })
}

/// etcd 3.6, an S3 repository with one backup, a capture buffering up to `buffer_bytes` and a
/// writer, once a first written revision is restorable.
struct Capturing {
    dir: tempfile::TempDir,
    /// Runs until the test ends.
    _server: EtcdServer,
    client: Client,
    repo: Repo,
    log: std::path::PathBuf,
    child: Spawned,
    writer: Writer,
    before: i64,
}

impl Capturing {
    async fn start(buffer_bytes: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
            .await
            .unwrap();
        let client = server.member().await.unwrap().client();
        let repo = Repo::initialised(Backend::S3);
        run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
        let log = dir.path().join("capture.log");
        let mut child = capture(&repo, &server, buffer_bytes, &log);
        let writer = Writer::start(&client);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = writer.newest();
        assert!(restorable_through(
            &repo,
            &mut child,
            before,
            Duration::from_secs(20)
        ));
        Self {
            dir,
            _server: server,
            client,
            repo,
            log,
            child,
            writer,
            before,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_for_30_s_within_the_bound_loses_nothing() {
    let mut c = Capturing::start("268435456").await;

    // 30 s without storage: about 600 writes of 2 kB, about 1.2 MB waiting in memory.
    c.repo.s3.as_mut().unwrap().kill();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = c.writer.newest();
    tokio::time::sleep(Duration::from_secs(15)).await;
    c.repo.s3.as_mut().unwrap().restart().unwrap();
    let last = c.writer.stop().await;
    assert!(
        restorable_through(&c.repo, &mut c.child, last, Duration::from_secs(30)),
        "{}",
        std::fs::read_to_string(&c.log).unwrap()
    );
    stop(c.child);
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("could not be stored; retrying"), "{log}");
    assert!(!log.contains("the watch pauses"), "within the bound: {log}");

    let ranges = ranges(&c.repo);
    assert_eq!(ranges.len(), 1, "no gap: {ranges:?}");
    for (n, point) in [c.before, during, last].into_iter().enumerate() {
        let (report, _) = restore_revision(&c.repo, c.dir.path(), &format!("s{n}"), point);
        assert_eq!(report["proof"]["result"], "equal", "at {point}: {report}");
        let db = c.dir.path().join(format!("s{n}")).join("member/snap/db");
        let theirs = c.client.hash_kv(point).await.unwrap().hash();
        assert_eq!(restored_hash(&db, point), u64::from(theirs), "at {point}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bound_the_watch_pauses_and_a_compaction_meanwhile_is_a_recorded_gap() {
    // A bound one segment fills.
    let mut c = Capturing::start("4096").await;

    c.repo.s3.as_mut().unwrap().kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The history the paused watch would resume from goes.
    let compacted = c.writer.newest();
    c.client.compact(compacted, None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.repo.s3.as_mut().unwrap().restart().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = c.writer.stop().await;
    assert!(
        restorable_through(&c.repo, &mut c.child, last, Duration::from_secs(30)),
        "{}",
        std::fs::read_to_string(&c.log).unwrap()
    );
    stop(c.child);
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(log.contains("the watch pauses"), "{log}");
    assert!(log.contains("recording a gap"), "{log}");

    // Two ranges around the gap, each restorable at its end; nothing inside the gap.
    let ranges = ranges(&c.repo);
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let first_end = ranges[0]["to_revision"].as_i64().unwrap();
    let second_start = ranges[1]["from_revision"].as_i64().unwrap();
    assert!(first_end >= c.before && first_end < compacted, "{ranges:?}");
    assert!(second_start >= compacted, "{ranges:?}");
    for (n, point) in [first_end, last].into_iter().enumerate() {
        let (report, _) = restore_revision(&c.repo, c.dir.path(), &format!("g{n}"), point);
        assert_eq!(report["proof"]["result"], "equal", "at {point}: {report}");
    }
    let inside = (first_end + 1).to_string();
    let error = run_failing(
        c.repo
            .lifeboat()
            .args(["restore", "--to-revision", &inside, "--identity-file"])
            .arg(c.repo.identity())
            .arg(format!("--data-dir={}", c.dir.path().join("inside").display())),
        1,
    );
    assert!(error.contains("not restorable"), "{error}");
}
