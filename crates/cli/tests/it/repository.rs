//! The repository commands (`repo init`, `backup`, `backups ...`, `restore ID`) against real etcd
//! and each storage backend: a local directory and a real S3 server (s3s-fs on 127.0.0.1). Every
//! scenario runs on both, except those only S3 has (credentials, buckets, a server that dies).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lifeboat_test_support::{
    EtcdConfig, EtcdServer, EtcdVersion, FillSpec, PostgresServer, S3Server, clear_etcd_env,
    control_plane_tree,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;
use crate::restore::{dump, restore_and_boot, restore_args};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Local,
    S3,
}

/// A repository location with what the commands need to reach it.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
    pub(crate) s3: Option<S3Server>,
    pub(crate) location: String,
}

const PREFIX: &str = "cluster-a";

impl Repo {
    pub(crate) fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (s3, location) = match backend {
            Backend::Local => (None, dir.path().join("repo").display().to_string()),
            Backend::S3 => {
                let s3 = S3Server::start().unwrap();
                let location = format!("s3://{}/{PREFIX}", s3.bucket);
                (Some(s3), location)
            }
        };
        Self { dir, s3, location }
    }

    /// A new, initialised repository whose identity is [`Repo::identity`].
    pub(crate) fn initialised(backend: Backend) -> Self {
        let repo = Self::new(backend);
        run_ok(
            repo.lifeboat()
                .args(["repo", "init", "--identity-file"])
                .arg(repo.identity()),
        );
        repo
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn identity(&self) -> PathBuf {
        self.dir.path().join("identity.txt")
    }

    /// `lifeboat` with the repository and S3 settings in the environment, as an operator sets them.
    pub(crate) fn lifeboat(&self) -> Command {
        let mut command = lifeboat();
        self.configure(&mut command);
        command
    }

    /// Puts the repository and S3 settings in `command`'s environment.
    fn configure(&self, command: &mut Command) {
        command.env("LIFEBOAT_REPO", &self.location);
        for name in [
            "LIFEBOAT_IDENTITY_FILE",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_PROFILE",
            "LIFEBOAT_TO_AWS_ENDPOINT_URL",
            "LIFEBOAT_TO_AWS_REGION",
            "LIFEBOAT_TO_AWS_ACCESS_KEY_ID",
            "LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY",
        ] {
            command.env_remove(name);
        }
        if let Some(s3) = &self.s3 {
            command
                .env("AWS_ENDPOINT_URL", &s3.endpoint)
                .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
                .env("AWS_REGION", "us-east-1");
        }
    }

    /// `lifeboat backup` of `server`.
    pub(crate) fn backup_command(&self, server: &EtcdServer) -> Command {
        let mut command = self.lifeboat();
        command.arg("backup").args(server.etcdctl_args());
        command
    }

    /// Backs `server` up; returns the new backup's ID.
    pub(crate) fn backup(&self, server: &EtcdServer) -> String {
        let out = run_ok(self.backup_command(server).args(["-w", "json"]));
        let manifest: Value = serde_json::from_str(&out).unwrap();
        manifest["id"].as_str().unwrap().to_string()
    }

    pub(crate) fn list(&self) -> Vec<Value> {
        let out = run_ok(self.lifeboat().args(["backups", "list", "-w", "json"]));
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Where the repository's objects lie on disk (for S3, in the server's bucket directory).
    pub(crate) fn root(&self) -> PathBuf {
        match &self.s3 {
            None => self.dir.path().join("repo"),
            Some(s3) => s3.bucket_dir().join(PREFIX),
        }
    }

    /// Where a storage backend keeps uploads in progress: local staging files sit beside their
    /// target, s3s-fs keeps its multipart bookkeeping in its root.
    pub(crate) fn uploads_root(&self) -> PathBuf {
        match &self.s3 {
            None => self.root(),
            Some(s3) => s3.root().to_path_buf(),
        }
    }

    /// Files of the repository's objects, relative to its root.
    fn objects(&self) -> Vec<String> {
        files_under(&self.root())
    }
}

async fn round_trip(backend: Backend, version: EtcdVersion) {
    let server = filled(EtcdConfig::new(version).mtls(), &FillSpec::small()).await;
    let (expected, revision) = dump(&server).await;
    let repo = Repo::new(backend);
    let out = run_ok(
        repo.lifeboat()
            .args(["repo", "init", "--identity-file"])
            .arg(repo.identity()),
    );
    assert!(out.contains(&repo.location), "{out}");
    assert_eq!(mode(&repo.identity()), 0o600);
    let identity = std::fs::read_to_string(repo.identity()).unwrap();
    let recipient = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    let config = std::fs::read_to_string(repo.root().join("lifeboat-repo.json")).unwrap();
    assert!(config.contains(recipient), "the repository keeps the recipient");
    assert!(!config.contains("AGE-SECRET-KEY"), "and never the identity");
    let again = run_failing(
        repo.lifeboat().args(["repo", "init", "--insecure-no-encryption"]),
        1,
    );
    assert!(again.contains("already holds a lifeboat repository"), "{again}");

    let first = repo.backup(&server);
    // Simple output: the ID alone on stdout, for scripts.
    let second = run_ok(repo.backup_command(&server).args(["--tag", "nightly"]));
    let second = second.trim();
    assert_eq!(second.len(), first.len(), "{second}");
    assert!(second > first.as_str(), "IDs sort by time");

    let list = repo.list();
    assert_eq!(list.len(), 2);
    let manifest = &list[0];
    assert_eq!(manifest["id"], first.as_str());
    assert_eq!(manifest["kind"], "etcd");
    assert_eq!(manifest["etcd"]["revision"], revision);
    assert_eq!(manifest["etcd"]["live_keys"], expected.len());
    assert_eq!(manifest["etcd"]["version"], version.expected());
    let artefact = &manifest["artefacts"][0];
    assert_eq!(artefact["encryption"], "age");
    assert!(artefact["stored_size"].as_u64() < artefact["plain_size"].as_u64());
    let tagged = run_ok(
        repo.lifeboat()
            .args(["backups", "list", "--tag", "nightly", "-w", "json"]),
    );
    let tagged: Value = serde_json::from_str(&tagged).unwrap();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["id"], second);
    let table = run_ok(repo.lifeboat().args(["backups", "list", "-w", "table"]));
    assert!(table.contains("REVISION") && table.contains(&first), "{table}");
    let shown = run_ok(repo.lifeboat().args(["backups", "show", "latest", "-w", "json"]));
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["id"], second);

    let verified = run_ok(repo.lifeboat().args(["backups", "verify", "--all"]));
    assert_eq!(verified.matches(": OK").count(), 2, "{verified}");
    let without_key = run_failing(
        repo.lifeboat()
            .args(["backups", "verify", "--read-data"])
            .arg(&first),
        1,
    );
    assert!(without_key.contains("--identity-file"), "{without_key}");
    let read = run_ok(
        repo.lifeboat()
            .args(["backups", "verify", "--read-data", "--all", "-w", "json"])
            .env("LIFEBOAT_IDENTITY_FILE", repo.identity()),
    );
    let read: Value = serde_json::from_str(&read).unwrap();
    for check in read.as_array().unwrap() {
        assert_eq!(check["ok"], true, "{check}");
        assert_eq!(check["artefacts"][0]["read_data"], true);
    }

    if matches!(backend, Backend::Local) {
        for path in files_under(&repo.root()) {
            assert_eq!(mode(&repo.root().join(&path)), 0o600, "{path}");
        }
        assert_eq!(mode(&repo.root()), 0o700);
        assert_eq!(mode(&repo.root().join("backups")), 0o700);
    }

    // The first backup restores into a member etcd boots, holding exactly what was backed up.
    drop(server);
    let restore_dir = repo.dir.path().join("restores");
    std::fs::create_dir(&restore_dir).unwrap();
    let (_, servers) = restore_and_boot(version, &restore_dir, &["restored"], |plan| {
        let out = run_ok(
            repo.lifeboat()
                .arg("restore")
                .arg(&first)
                .args(restore_args(plan, &plan.members[0]))
                .arg("--identity-file")
                .arg(repo.identity()),
        );
        assert!(out.contains(&format!("backup {first}")), "{out}");
        let parent = plan.members[0].data_dir.parent().unwrap();
        assert_eq!(entries(parent), ["restored.etcd"], "the download is removed");
    })
    .await;
    let (restored, restored_revision) = dump(&servers[0]).await;
    assert_eq!(restored_revision, revision);
    assert!(restored == expected, "keys differ after restore");

    // Deleting asks first (no terminal here: refused), shows with --dry-run, then deletes.
    let refused = run_failing(repo.lifeboat().args(["backups", "delete", second]), 1);
    assert!(refused.contains("--yes"), "{refused}");
    let dry = run_ok(repo.lifeboat().args(["backups", "delete", "--dry-run", second]));
    assert!(dry.contains("Would delete"), "{dry}");
    assert_eq!(repo.list().len(), 2);
    run_ok(repo.lifeboat().args(["backups", "delete", "--yes", second]));
    assert_eq!(repo.list().len(), 1);
    assert!(
        repo.objects().iter().all(|o| !o.contains(second)),
        "{:?}",
        repo.objects()
    );
}

#[tokio::test]
async fn local_backup_list_verify_restore_delete_on_etcd_3_5() {
    round_trip(Backend::Local, EtcdVersion::V3_5).await;
}

#[tokio::test]
async fn s3_backup_list_verify_restore_delete_on_etcd_3_6() {
    round_trip(Backend::S3, EtcdVersion::V3_6).await;
}

#[tokio::test]
async fn local_backup_list_verify_restore_delete_on_etcd_3_7() {
    round_trip(Backend::Local, EtcdVersion::V3_7).await;
}

/// A wrong identity, a flipped byte and a missing object: each named in one line, nothing
/// restored, nothing left behind.
async fn damage_and_wrong_keys(backend: Backend) {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_4), &FillSpec::small()).await;
    let repo = Repo::initialised(backend);
    let id = repo.backup(&server);
    let sound = repo.backup(&server);
    let other = Repo::initialised(Backend::Local);
    let object = format!("backups/{id}/etcd-snapshot.db");
    let target = repo.dir.path().join("target/restored.etcd");
    let restore = |identity: &Path| {
        let mut command = repo.lifeboat();
        command
            .args(["restore", &id, "--data-dir"])
            .arg(&target)
            .arg("--identity-file")
            .arg(identity);
        command
    };

    let wrong = run_failing(&mut restore(&other.identity()), 1);
    assert!(
        wrong.contains("cannot decrypt") && wrong.contains(&object) && wrong.contains("--identity-file"),
        "{wrong}"
    );
    assert!(!target.exists());
    assert_eq!(entries(target.parent().unwrap()), Vec::<String>::new());
    let wrong = run_failing(
        repo.lifeboat()
            .args(["backups", "verify", "--read-data", &id, "--identity-file"])
            .arg(other.identity()),
        1,
    );
    assert!(wrong.contains("cannot decrypt"), "{wrong}");

    // A disk too small for the download is named, and nothing is left on it.
    let disk = SmallDisk::mount(512 * 1024);
    let full = run_failing(
        repo.lifeboat()
            .args(["restore", &id, "--identity-file"])
            .arg(repo.identity())
            .arg("--data-dir")
            .arg(disk.dir.path().join("m1.etcd")),
        1,
    );
    assert!(full.contains("no space left on the device"), "{full}");
    assert_eq!(entries(disk.dir.path()), Vec::<String>::new());
    drop(disk);

    // One byte flipped in the middle of the stored object.
    let stored = repo.root().join(&object);
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&stored, &bytes).unwrap();
    for read_data in [false, true] {
        let mut command = repo.lifeboat();
        command.args(["backups", "verify", &id]);
        if read_data {
            command
                .arg("--read-data")
                .arg("--identity-file")
                .arg(repo.identity());
        }
        let output = run(&mut command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stdout.contains(&id) && stdout.contains(&object) && stdout.contains("DAMAGED: stored sha256"),
            "{stdout}"
        );
        assert!(
            stderr.contains("1 of 1 backups") && stderr.contains(&id),
            "{stderr}"
        );
    }

    let damaged = run_failing(&mut restore(&repo.identity()), 1);
    assert!(
        damaged.contains(&format!("backup {id}")) && damaged.contains("damaged") && damaged.contains(&object),
        "{damaged}"
    );
    assert!(!target.exists());
    assert_eq!(entries(target.parent().unwrap()), Vec::<String>::new());

    std::fs::remove_file(&stored).unwrap();
    let output = run(repo.lifeboat().args(["backups", "verify", &id]));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("DAMAGED: the object is missing"));

    // A damaged manifest hides no other backup; list and verify name it and exit 1.
    let manifest = format!("backups/{id}/manifest.json");
    std::fs::write(repo.root().join(&manifest), b"{\"format\": 1, \"id\": ").unwrap();
    let output = run(repo.lifeboat().args(["backups", "list"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&manifest) && stderr.contains("not a valid manifest"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(&sound));
    let output = run(repo.lifeboat().args(["backups", "verify", "--all"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains(&format!("{sound} backups/{sound}/etcd-snapshot.db: OK")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{id} {manifest}: DAMAGED")), "{stdout}");
}

#[tokio::test]
async fn local_damage_and_wrong_identity_are_named() {
    damage_and_wrong_keys(Backend::Local).await;
}

#[tokio::test]
async fn s3_damage_and_wrong_identity_are_named() {
    damage_and_wrong_keys(Backend::S3).await;
}

#[tokio::test]
async fn s3_wrong_credentials_and_missing_bucket_are_named() {
    let repo = Repo::initialised(Backend::S3);
    let denied = run_failing(
        repo.lifeboat()
            .args(["backups", "list"])
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        1,
    );
    assert!(
        denied.contains(&repo.location) && denied.contains("access denied") && denied.contains("credentials"),
        "{denied}"
    );
    assert!(!denied.contains("not-the-secret"), "{denied}");
    for args in [
        &["backups", "list", "--repo", "s3://no-such-bucket/x"][..],
        &[
            "repo",
            "init",
            "s3://no-such-bucket/x",
            "--insecure-no-encryption",
        ],
    ] {
        let missing = run_failing(repo.lifeboat().args(args), 1);
        assert!(
            missing.contains("s3://no-such-bucket/x") && missing.contains("bucket does not exist"),
            "{missing}"
        );
    }
    let not_a_repo = run_failing(
        repo.lifeboat()
            .args(["backups", "list", "--repo"])
            .arg(format!("{}-other", repo.location)),
        1,
    );
    assert!(not_a_repo.contains("repo init"), "{not_a_repo}");
}

/// Starts a backup and stops it (SIGSTOP) once its upload has begun: `uploading` tells.
fn frozen_mid_upload(repo: &Repo, server: &EtcdServer, uploading: impl Fn(&str) -> bool) -> (Child, Pid) {
    let mut child = repo
        .backup_command(server)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let root = repo.uploads_root();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || {
            files_under(&root).iter().any(|f| uploading(f))
        }),
        "the upload started"
    );
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    (child, pid)
}

/// An upload in progress: a local staging file (`...#1`) or an s3s-fs multipart upload.
pub(crate) fn upload_begun(file: &str) -> bool {
    file.contains("etcd-snapshot.db#") || file.starts_with(".upload-")
}

/// The stopped backup, resumed, must fail with one line naming `what`.
fn resume_and_expect_failure(mut child: Child, pid: Pid, what: &[&str]) {
    kill(pid, Signal::SIGCONT).unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(120));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for needle in what {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
}

/// Nothing lists, no object is left in the repository, and the upload was aborted (no staging
/// file, no multipart upload or part left on the server).
pub(crate) fn assert_no_backup(repo: &Repo) {
    assert_eq!(repo.list(), Vec::<Value>::new());
    assert_eq!(repo.objects(), ["lifeboat-repo.json"], "no object may be left");
    let uploads: Vec<String> = files_under(&repo.uploads_root())
        .into_iter()
        .filter(|f| upload_begun(f) || f.contains(".part-"))
        .collect();
    assert_eq!(uploads, Vec::<String>::new(), "the upload must be aborted");
}

async fn etcd_killed_mid_stream(backend: Backend) {
    let mut server = filled(EtcdConfig::new(EtcdVersion::V3_5).mtls(), &big()).await;
    let repo = Repo::initialised(backend);
    let (child, pid) = frozen_mid_upload(&repo, &server, upload_begun);
    server.kill();
    resume_and_expect_failure(child, pid, &[&server.endpoint, "connection lost"]);
    assert_no_backup(&repo);
    // The repository is not wedged: the next backup (of a healthy etcd) lands.
    let healthy = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    repo.backup(&healthy);
    assert_eq!(repo.list().len(), 1);
}

#[tokio::test]
async fn local_etcd_killed_mid_stream_leaves_no_backup() {
    etcd_killed_mid_stream(Backend::Local).await;
}

#[tokio::test]
async fn s3_etcd_killed_mid_stream_leaves_no_backup() {
    etcd_killed_mid_stream(Backend::S3).await;
}

#[tokio::test]
async fn s3_server_killed_mid_upload_leaves_no_backup_and_a_rerun_succeeds() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let mut repo = Repo::initialised(Backend::S3);
    // A part has reached the server: the upload is under way, not just announced.
    let (child, pid) = frozen_mid_upload(&repo, &server, |f| f.contains(".part-"));
    repo.s3.as_mut().unwrap().kill();
    resume_and_expect_failure(child, pid, &[&repo.location, "etcd-snapshot.db"]);
    repo.s3.as_mut().unwrap().restart().unwrap();
    assert_eq!(repo.list(), Vec::<Value>::new());
    assert!(
        repo.objects().iter().all(|o| !o.ends_with("manifest.json")),
        "{:?}",
        repo.objects()
    );
    let id = repo.backup(&server);
    assert_eq!(repo.list().len(), 1);
    run_ok(repo.lifeboat().args(["backups", "verify", &id]));
}

async fn interrupted(backend: Backend) {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_4), &big()).await;
    let repo = Repo::initialised(backend);
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let (child, pid) = frozen_mid_upload(&repo, &server, upload_begun);
        interrupt_stopped(child, pid, signal);
        assert_no_backup(&repo);
    }

    // A restore interrupted while it downloads leaves neither the download nor a data directory.
    let id = repo.backup(&server);
    let target = repo.dir.path().join("restores");
    let mut child = repo
        .lifeboat()
        .args(["restore", &id, "--identity-file"])
        .arg(repo.identity())
        .arg("--data-dir")
        .arg(target.join("m1.etcd"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || {
            files_under(&target)
                .iter()
                .any(|f| f.starts_with(".lifeboat-download-"))
        }),
        "the download started"
    );
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    interrupt_stopped(child, pid, Signal::SIGINT);
    assert_eq!(entries(&target), Vec::<String>::new());
}

#[tokio::test]
async fn local_interrupted_backup_leaves_nothing() {
    interrupted(Backend::Local).await;
}

#[tokio::test]
async fn s3_interrupted_backup_leaves_nothing() {
    interrupted(Backend::S3).await;
}

#[tokio::test]
async fn init_with_a_recipient_or_without_encryption() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let keys = Repo::initialised(Backend::Local);
    let recipient = std::fs::read_to_string(keys.identity())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap();

    // An existing key: no identity file is written, backups open with that key's identity.
    let repo = Repo::new(Backend::Local);
    run_ok(repo.lifeboat().args(["repo", "init", "--recipient", &recipient]));
    assert!(!repo.identity().exists());
    let id = repo.backup(&server);
    run_ok(
        repo.lifeboat()
            .args(["backups", "verify", "--read-data", &id, "--identity-file"])
            .arg(keys.identity()),
    );
    let bad = run_failing(
        Repo::new(Backend::Local)
            .lifeboat()
            .args(["repo", "init", "--recipient", "age1notakey"]),
        1,
    );
    assert!(bad.contains("age1notakey") && bad.contains("recipient"), "{bad}");

    // An existing identity file is never overwritten, and no repository is created.
    let fresh = Repo::new(Backend::Local);
    let taken = run_failing(
        fresh
            .lifeboat()
            .args(["repo", "init", "--identity-file"])
            .arg(keys.identity()),
        1,
    );
    assert!(taken.contains("already exists"), "{taken}");
    assert!(!fresh.root().exists());

    // Unencrypted only when asked: restore needs no identity then.
    let plain = Repo::new(Backend::Local);
    let out = run_ok(
        plain
            .lifeboat()
            .args(["repo", "init", "--insecure-no-encryption"]),
    );
    assert!(out.contains("NONE"), "{out}");
    let id = plain.backup(&server);
    let listed = plain.list();
    assert_eq!(listed[0]["artefacts"][0]["encryption"], "none");
    let target = plain.dir.path().join("plain.etcd");
    run_ok(plain.lifeboat().args(["restore", &id, "--data-dir"]).arg(&target));
    assert!(target.join("member/snap/db").exists());
}

#[tokio::test]
async fn backup_draws_a_progress_bar_on_a_terminal_only() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let repo = Repo::initialised(Backend::Local);
    let program = env!("CARGO_BIN_EXE_lifeboat");
    let endpoint = &server.endpoint;
    // `script` runs the command on a pseudo-terminal and copies what it draws to stdout.
    let mut shell = Command::new("sh");
    clear_etcd_env(&mut shell);
    repo.configure(&mut shell);
    let drawn = run_ok(shell.env("TERM", "xterm").args([
        "-c",
        &format!("script -qefc '{program} backup --endpoints {endpoint}' /dev/null"),
    ]));
    assert!(drawn.contains("backup [") && drawn.contains("MiB"), "{drawn}");
    let output = run(&mut repo.backup_command(&server));
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("backup ["));
}

/// `forget`: the verdict on every backup, a dry run that removes nothing, then manifests and data
/// gone for exactly the forgotten ones; `--tag` limits what is judged.
async fn retention(backend: Backend) {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let repo = Repo::initialised(backend);
    let mut ids: Vec<String> = (0..4)
        .map(|_| {
            run_ok(repo.backup_command(&server).args(["--tag", "nightly"]))
                .trim()
                .to_string()
        })
        .collect();
    let manual = run_ok(repo.backup_command(&server).args(["--tag", "manual"]))
        .trim()
        .to_string();
    ids.sort();

    let none = run_failing(repo.lifeboat().arg("forget"), 1);
    assert!(none.contains("nothing was removed"), "{none}");

    let dry = run_ok(
        repo.lifeboat()
            .args(["forget", "--keep-last", "2", "--tag", "nightly", "--dry-run"]),
    );
    assert!(dry.contains("2 kept, would remove 2"), "{dry}");
    assert!(
        dry.contains(&format!("keep         {}", ids[3])) && dry.contains("(last)"),
        "{dry}"
    );
    assert!(dry.contains(&format!("would remove {}", ids[0])), "{dry}");
    assert_eq!(repo.list().len(), 5);

    let out = run_ok(
        repo.lifeboat()
            .args(["forget", "--keep-last", "2", "--tag", "nightly", "-w", "json"]),
    );
    let decisions: Value = serde_json::from_str(&out).unwrap();
    let removed: Vec<&str> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [ids[0].as_str(), ids[1].as_str()]);
    let left: Vec<String> = repo
        .list()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, [ids[2].clone(), ids[3].clone(), manual.clone()]);
    for id in &ids[..2] {
        assert!(repo.objects().iter().all(|o| !o.contains(id.as_str())), "{id}");
    }
}

#[tokio::test]
async fn local_forget_keeps_by_policy_and_removes_the_rest() {
    retention(Backend::Local).await;
}

#[tokio::test]
async fn s3_forget_keeps_by_policy_and_removes_the_rest() {
    retention(Backend::S3).await;
}

pub(crate) fn recipient_of(identity: &Path) -> String {
    std::fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap()
}

#[tokio::test]
async fn copy_to_other_repositories_verifies_and_copies_only_what_is_missing() {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &FillSpec::small()).await;
    let source = Repo::initialised(Backend::Local);
    let first = source.backup(&server);
    source.backup(&server);
    // Same recipients on S3 (bytes copied as they are); other keys on disk (re-encrypted).
    let same_key = Repo::new(Backend::S3);
    run_ok(
        same_key
            .lifeboat()
            .args(["repo", "init", "--recipient", &recipient_of(&source.identity())]),
    );
    let other_key = Repo::initialised(Backend::Local);
    // The targets' provider has its own settings (LIFEBOAT_TO_AWS_*); the source needs none.
    let s3 = same_key.s3.as_ref().unwrap();
    let copy = |extra: &[&str]| {
        let mut command = source.lifeboat();
        command
            .args(["copy", "--from", &source.location, "--to", &same_key.location])
            .args(["--to", &other_key.location])
            .env("LIFEBOAT_TO_AWS_ENDPOINT_URL", &s3.endpoint)
            .env("LIFEBOAT_TO_AWS_REGION", "us-east-1")
            .env("LIFEBOAT_TO_AWS_ACCESS_KEY_ID", &s3.access_key_id)
            .env("LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
            .args(extra);
        command
    };

    let refused = run_failing(&mut copy(&[]), 1);
    assert!(refused.contains("--identity-file"), "{refused}");
    let identity = source.identity().display().to_string();
    let out = run_ok(&mut copy(&["--identity-file", &identity, "-w", "json"]));
    let reports: Value = serde_json::from_str(&out).unwrap();
    for (report, reencrypted) in reports.as_array().unwrap().iter().zip([false, true]) {
        assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report}");
        assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");
        assert_eq!(report["reencrypted"], reencrypted, "{report}");
        assert!(report["lag_seconds"].as_u64().unwrap() < 600, "{report}");
    }
    let object = format!("backups/{first}/etcd-snapshot.db");
    assert_eq!(
        std::fs::read(same_key.root().join(&object)).unwrap(),
        std::fs::read(source.root().join(&object)).unwrap(),
        "same recipients: the stored bytes are copied unchanged"
    );
    run_ok(
        other_key
            .lifeboat()
            .args(["backups", "verify", "--all", "--read-data", "--identity-file"])
            .arg(other_key.identity()),
    );
    // Re-encrypted artefacts keep the backup's identity and plain bytes; only what is stored differs.
    for (same, other) in same_key.list().iter().zip(other_key.list()) {
        assert_eq!(same["id"], other["id"]);
        assert_eq!(same["etcd"], other["etcd"]);
        let (same, other) = (&same["artefacts"][0], &other["artefacts"][0]);
        assert_eq!(same["plain_sha256"], other["plain_sha256"]);
        assert_ne!(same["stored_sha256"], other["stored_sha256"]);
    }

    // A rerun copies nothing; a new backup is the only one copied next time.
    let again = run_ok(&mut copy(&["--identity-file", &identity]));
    assert_eq!(
        again.matches("copied 0, skipped 2, failed 0").count(),
        2,
        "{again}"
    );
    let third = source.backup(&server);
    let next = run_ok(&mut copy(&["--identity-file", &identity]));
    assert_eq!(next.matches(&format!("copied {third}")).count(), 2, "{next}");

    // A damaged source object is not copied: named, exit 1, nothing of it in the target.
    let fresh = Repo::new(Backend::Local);
    run_ok(
        fresh
            .lifeboat()
            .args(["repo", "init", "--recipient", &recipient_of(&source.identity())]),
    );
    let stored = source.root().join(format!("backups/{third}/etcd-snapshot.db"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let output = run(fresh
        .lifeboat()
        .args(["copy", "--from", &source.location, "--to", &fresh.location]));
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("FAILED {third}")) && stdout.contains("stored sha256"),
        "{stdout}"
    );
    assert_eq!(fresh.list().len(), 2);
    assert!(
        fresh.objects().iter().all(|o| !o.contains(&third)),
        "{:?}",
        fresh.objects()
    );
}

/// `backup --stream` of a real pg_dump and `dump` into psql: the same rows in a fresh database.
/// A failing command makes no backup.
async fn streams(backend: Backend) {
    let postgres = PostgresServer::start().unwrap();
    postgres.psql("postgres", "CREATE DATABASE app").unwrap();
    postgres
        .psql(
            "app",
            "CREATE TABLE orders (id serial PRIMARY KEY, customer text, total numeric(10,2));
             INSERT INTO orders (customer, total)
               SELECT 'customer-' || i, i * 1.25 FROM generate_series(1, 5000) AS i;",
        )
        .unwrap();
    let repo = Repo::initialised(backend);
    let dump_command: Vec<String> = ["pg_dump".to_string()]
        .into_iter()
        .chain(postgres.client_args())
        .chain(["app".to_string()])
        .collect();
    let out = run_ok(
        repo.lifeboat()
            .args([
                "backup", "--stream", "app.sql", "--tag", "postgres", "-w", "json", "--",
            ])
            .args(&dump_command),
    );
    let manifest: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["kind"], "stream");
    assert_eq!(manifest["artefacts"][0]["name"], "app.sql");
    let id = manifest["id"].as_str().unwrap();

    let dumped = repo.dir.path().join("app.sql");
    let output = repo
        .lifeboat()
        .args(["dump", id, "--identity-file"])
        .arg(repo.identity())
        .stdout(std::fs::File::create(&dumped).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    postgres.psql("postgres", "CREATE DATABASE restored").unwrap();
    let loaded = Command::new("psql")
        .args(postgres.client_args())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "restored", "-f"])
        .arg(&dumped)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let rows =
        "SELECT count(*), sum(total), md5(string_agg(id || customer || total, ',' ORDER BY id)) FROM orders";
    assert_eq!(
        postgres.psql("restored", rows).unwrap(),
        postgres.psql("app", rows).unwrap()
    );
    assert!(postgres.psql("restored", rows).unwrap().starts_with("5000|"));

    // The command fails (no such database): one line, exit 1, no backup, nothing stored.
    let before = repo.objects();
    // The command's own messages pass through; lifeboat's is the last line.
    let output = run(repo
        .lifeboat()
        .args(["backup", "--stream", "missing.sql", "--"])
        .args(&dump_command[..dump_command.len() - 1])
        .arg("no_such_database"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"no_such_database\" does not exist"), "{stderr}");
    let failed = stderr.trim().lines().last().unwrap();
    assert!(
        failed.starts_with("Error: `pg_dump") && failed.contains("no backup was made"),
        "{failed}"
    );
    assert_eq!(repo.list().len(), 1);
    assert_eq!(repo.objects(), before);
    let bad_name = run_failing(
        repo.lifeboat().args(["backup", "--stream", "../x", "--", "true"]),
        1,
    );
    assert!(bad_name.contains("cannot name an artefact"), "{bad_name}");
}

#[tokio::test]
async fn local_stream_backup_of_pg_dump_restores_the_same_rows() {
    streams(Backend::Local).await;
}

#[tokio::test]
async fn s3_stream_backup_of_pg_dump_restores_the_same_rows() {
    streams(Backend::S3).await;
}

/// (mode, owner, mtime, contents) of every file under `root`, by relative path.
type Tree = std::collections::BTreeMap<String, (u32, (u32, u32), i64, Vec<u8>)>;

fn snapshot_of(root: &Path) -> Tree {
    use std::os::unix::fs::MetadataExt;
    files_under(root)
        .into_iter()
        .map(|path| {
            let full = root.join(&path);
            let metadata = std::fs::metadata(&full).unwrap();
            let owner = (metadata.uid(), metadata.gid());
            let contents = std::fs::read(&full).unwrap();
            (path, (metadata.mode() & 0o777, owner, metadata.mtime(), contents))
        })
        .collect()
}

fn cert_statuses(json: &str) -> Vec<(String, String)> {
    let report: Value = serde_json::from_str(json).unwrap();
    report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["source"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `backup --files`, `restore-files` and `certs` on a generated kubeadm tree.
async fn control_plane_files(backend: Backend) {
    let repo = Repo::initialised(backend);
    let node = repo.dir.path().join("node");
    control_plane_tree(&node, false).unwrap();
    // An owner other than root's (the tests run as root, as CI does).
    std::os::unix::fs::chown(node.join("var/lib/kubelet/config.yaml"), Some(4242), Some(4343)).unwrap();
    let out = run_ok(
        repo.lifeboat()
            .args(["backup", "--files", "--root"])
            .arg(&node)
            .args(["-w", "json"]),
    );
    let manifest: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["kind"], "files");
    let id = manifest["id"].as_str().unwrap().to_string();

    let target = repo.dir.path().join("restored");
    run_ok(
        repo.lifeboat()
            .args(["restore-files", &id, "--identity-file"])
            .arg(repo.identity())
            .arg("--target")
            .arg(&target),
    );
    let mut expected = snapshot_of(&node);
    assert!(expected.remove("etc/kubernetes/unrelated.txt").is_some());
    assert_eq!(
        snapshot_of(&target),
        expected,
        "contents, modes and mtimes come back"
    );
    assert_eq!(mode(&target.join("etc/kubernetes/pki/ca.key")), 0o600);
    assert_eq!(mode(&target.join("etc/kubernetes/pki/ca.crt")), 0o644);
    let again = run_failing(
        repo.lifeboat()
            .args(["restore-files", &id, "--identity-file"])
            .arg(repo.identity())
            .arg("--target")
            .arg(&target),
        1,
    );
    assert!(again.contains("not empty"), "{again}");

    // The set is configurable: keys left out, another file taken in.
    let out = run_ok(
        repo.lifeboat()
            .args(["backup", "--files", "-w", "json", "--root"])
            .arg(&node)
            .args(["--exclude", "etc/kubernetes/pki/**/*.key"])
            .args(["--include", "etc/kubernetes/unrelated.txt"]),
    );
    let keyless: Value = serde_json::from_str(&out).unwrap();
    let keyless_target = repo.dir.path().join("keyless");
    run_ok(
        repo.lifeboat()
            .args([
                "restore-files",
                keyless["id"].as_str().unwrap(),
                "--identity-file",
            ])
            .arg(repo.identity())
            .arg("--target")
            .arg(&keyless_target),
    );
    let restored = files_under(&keyless_target);
    assert!(restored.iter().all(|f| !f.ends_with(".key")), "{restored:?}");
    assert!(restored.contains(&"etc/kubernetes/unrelated.txt".to_string()));
    assert!(restored.contains(&"etc/kubernetes/pki/etcd/server.crt".to_string()));

    // Certificates: the tree and the backup give the same report; exit 1 names the two.
    let output = run(repo
        .lifeboat()
        .args(["certs", "--root"])
        .arg(&node)
        .args(["-w", "json"]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 certificates expired and 1 expire within 30 days")
            && stderr.contains("etc/kubernetes/pki/apiserver.crt")
            && stderr.contains("etc/kubernetes/pki/front-proxy-client.crt"),
        "{stderr}"
    );
    let from_tree = cert_statuses(&String::from_utf8_lossy(&output.stdout));
    let status = |source: &str| {
        from_tree
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, status)| status.as_str())
    };
    assert_eq!(status("etc/kubernetes/pki/apiserver.crt"), Some("expiring"));
    assert_eq!(
        status("etc/kubernetes/pki/front-proxy-client.crt"),
        Some("expired")
    );
    assert_eq!(status("etc/kubernetes/pki/ca.crt"), Some("ok"));
    assert_eq!(status("etc/kubernetes/pki/etcd/server.crt"), Some("ok"));
    assert_eq!(status("etc/kubernetes/admin.conf#kubernetes-admin"), Some("ok"));
    assert_eq!(status("etc/kubernetes/admin.conf#kubernetes"), Some("ok"));
    assert_eq!(from_tree.len(), 7, "{from_tree:?}");
    let output = run(repo
        .lifeboat()
        .args(["certs", "--backup", &id, "-w", "json", "--identity-file"])
        .arg(repo.identity()));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(cert_statuses(&String::from_utf8_lossy(&output.stdout)), from_tree);
    let narrow = run(repo
        .lifeboat()
        .args(["certs", "--warn-days", "5", "--root"])
        .arg(&node));
    assert!(String::from_utf8_lossy(&narrow.stderr).contains("1 certificates expired and 0 expire"));

    let healthy = repo.dir.path().join("healthy");
    control_plane_tree(&healthy, true).unwrap();
    let table = run_ok(repo.lifeboat().args(["certs", "--root"]).arg(&healthy));
    assert!(
        table.contains("DAYS LEFT") && !table.contains("EXPIRED") && !table.contains("EXPIRING"),
        "{table}"
    );

    let empty = repo.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let nothing = run_failing(
        repo.lifeboat().args(["backup", "--files", "--root"]).arg(&empty),
        1,
    );
    assert!(nothing.contains("no control-plane files"), "{nothing}");
}

#[tokio::test]
async fn local_control_plane_files_and_certificates() {
    control_plane_files(Backend::Local).await;
}

#[tokio::test]
async fn s3_control_plane_files_and_certificates() {
    control_plane_files(Backend::S3).await;
}

/// A copy of `manifest` (JSON) planted under `id`: it claims `id`, and its one artefact points
/// at `key`.
fn plant(repo: &Repo, manifest: &Value, id: &str, key: &str) {
    let mut planted = manifest.clone();
    planted["id"] = Value::from(id);
    planted["artefacts"][0]["key"] = Value::from(key);
    let dir = repo.root().join("backups").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&planted).unwrap(),
    )
    .unwrap();
}

/// Someone who can write the source bucket plants manifests whose artefact keys point at the
/// target's `lifeboat-repo.json` or at another backup's object: `copy` names and refuses them,
/// writes nothing of them, and copies the honest backup; `restore`, `dump` and `restore-files`
/// refuse them too.
#[tokio::test]
async fn planted_manifests_are_never_followed() {
    let source = Repo::initialised(Backend::Local);
    let out = run_ok(source.lifeboat().args([
        "backup", "--stream", "app.sql", "-w", "json", "--", "echo", "hello",
    ]));
    let honest: Value = serde_json::from_str(&out).unwrap();
    let honest_id = honest["id"].as_str().unwrap().to_string();
    let honest_object = format!("backups/{honest_id}/app.sql");
    let to_config = "20300101T000000.000Z-00000000000000aa";
    let to_other = "20300101T000000.000Z-00000000000000bb";
    plant(&source, &honest, to_config, "lifeboat-repo.json");
    plant(&source, &honest, to_other, &honest_object);

    // Same recipients, so stored bytes would be copied as they are: the dangerous case.
    let target = Repo::new(Backend::S3);
    run_ok(
        target
            .lifeboat()
            .args(["repo", "init", "--recipient", &recipient_of(&source.identity())]),
    );
    let config = std::fs::read(target.root().join("lifeboat-repo.json")).unwrap();
    let s3 = target.s3.as_ref().unwrap();
    let output = run(source
        .lifeboat()
        .args(["copy", "--from", &source.location, "--to", &target.location])
        .env("LIFEBOAT_TO_AWS_ENDPOINT_URL", &s3.endpoint)
        .env("LIFEBOAT_TO_AWS_REGION", "us-east-1")
        .env("LIFEBOAT_TO_AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY", &s3.secret_access_key));
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for planted in [to_config, to_other] {
        assert!(
            stdout.contains(&format!("FAILED {planted}")) && stdout.contains("not trusted"),
            "{stdout}"
        );
    }
    assert_eq!(
        std::fs::read(target.root().join("lifeboat-repo.json")).unwrap(),
        config,
        "the target's config is untouched"
    );
    let listed: Vec<String> = target
        .list()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, [honest_id.as_str()], "the honest backup is copied");
    assert_eq!(
        target.objects(),
        [
            format!("backups/{honest_id}/app.sql"),
            format!("backups/{honest_id}/manifest.json"),
            "lifeboat-repo.json".to_string(),
        ]
    );

    // The source's list and verify name them; restore, dump and restore-files refuse them.
    let listed = run_failing(source.lifeboat().args(["backups", "list"]), 1);
    assert!(
        listed.contains(to_config) && listed.contains(to_other),
        "{listed}"
    );
    let identity = source.identity().display().to_string();
    for planted in [to_config, to_other] {
        let target_dir = source.dir.path().join(format!("out-{planted}"));
        let target_dir = target_dir.display().to_string();
        for args in [
            vec![
                "restore",
                planted,
                "--data-dir",
                &target_dir,
                "--identity-file",
                &identity,
            ],
            vec!["dump", planted, "--identity-file", &identity],
            vec![
                "restore-files",
                planted,
                "--target",
                &target_dir,
                "--identity-file",
                &identity,
            ],
            vec!["backups", "verify", planted],
            vec!["backups", "show", planted],
        ] {
            let mut command = source.lifeboat();
            command.args(&args).stdout(Stdio::piped());
            let error = run_failing(&mut command, 1);
            assert!(
                error.contains("not trusted") && error.contains(planted),
                "{args:?}: {error}"
            );
        }
        assert!(!Path::new(&target_dir).exists());
    }
}

/// Starts `command` and stops it (SIGSTOP) once `begun` holds for a file under `root`.
pub(crate) fn frozen_when(mut command: Command, root: &Path, begun: impl Fn(&str) -> bool) -> (Child, Pid) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || {
            files_under(root).iter().any(|f| begun(f))
        }),
        "the operation got under way"
    );
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    (child, pid)
}

/// SIGINT/SIGTERM during `copy`, `backup --files`, `verify --read-data` and `dump`: each stops
/// at once, exits 130/143, and leaves no backup, manifest, open upload or temporary file.
async fn interrupted_operations(backend: Backend) {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let repo = Repo::initialised(backend);
    let id = repo.backup(&server);
    let identity = repo.identity().display().to_string();

    // verify --read-data: the private download is removed.
    let temp = repo.dir.path().join("verify-temp");
    std::fs::create_dir(&temp).unwrap();
    let mut verify = repo.lifeboat();
    verify
        .args([
            "backups",
            "verify",
            &id,
            "--read-data",
            "--identity-file",
            &identity,
            "--temp-dir",
        ])
        .arg(&temp);
    let (child, pid) = frozen_when(verify, &temp, |f| f.starts_with(".lifeboat-download-"));
    interrupt_stopped(child, pid, Signal::SIGTERM);
    assert_eq!(entries(&temp), Vec::<String>::new());

    // copy: the target gets nothing, not even an open upload.
    let target = Repo::new(backend);
    run_ok(
        target
            .lifeboat()
            .args(["repo", "init", "--recipient", &recipient_of(&repo.identity())]),
    );
    let mut copy = repo.lifeboat();
    copy.args(["copy", "--from", &repo.location, "--to", &target.location]);
    if let Some(s3) = &target.s3 {
        copy.env("LIFEBOAT_TO_AWS_ENDPOINT_URL", &s3.endpoint)
            .env("LIFEBOAT_TO_AWS_REGION", "us-east-1")
            .env("LIFEBOAT_TO_AWS_ACCESS_KEY_ID", &s3.access_key_id)
            .env("LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY", &s3.secret_access_key);
    }
    let (child, pid) = frozen_when(copy, &target.uploads_root(), upload_begun);
    interrupt_stopped(child, pid, Signal::SIGINT);
    assert_no_backup(&target);

    // backup --files: no files backup appears.
    let tree = repo.dir.path().join("node");
    control_plane_tree(&tree, true).unwrap();
    let big_file: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("etc/kubernetes/pki/bulk.bin"), big_file).unwrap();
    let mut files = repo.lifeboat();
    files.args(["backup", "--files", "--root"]).arg(&tree);
    let (child, pid) = frozen_when(files, &repo.uploads_root(), |f| {
        f.contains("control-plane-files.tar#") || f.starts_with(".upload-")
    });
    interrupt_stopped(child, pid, Signal::SIGINT);
    let listed: Vec<Value> = repo.list();
    assert_eq!(listed.len(), 1, "only the etcd backup: {listed:?}");
    assert!(
        repo.objects()
            .iter()
            .all(|o| o == "lifeboat-repo.json" || o.contains(&id)),
        "{:?}",
        repo.objects()
    );
    let uploads: Vec<String> = files_under(&repo.uploads_root())
        .into_iter()
        .filter(|f| f.contains('#') || f.starts_with(".upload-") || f.contains(".part-"))
        .collect();
    assert_eq!(uploads, Vec::<String>::new(), "the upload must be aborted");

    // dump: stops while its reader is slow; nothing else to leave.
    let mut dump = repo
        .lifeboat()
        .args(["dump", &id, "--identity-file", &identity])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = dump.stdout.take().unwrap();
    let mut first = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    kill(Pid::from_raw(dump.id() as i32), Signal::SIGINT).unwrap();
    let drained = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()).unwrap());
    let code = wait_exit(&mut dump, Duration::from_secs(30));
    let stderr = std::io::read_to_string(dump.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let drained = drained.join().unwrap() + first.len() as u64;
    let plain = repo.list()[0]["artefacts"][0]["plain_size"].as_u64().unwrap();
    assert!(drained < plain, "dump stopped early ({drained} of {plain} bytes)");
}

#[tokio::test]
async fn local_interrupted_operations_leave_nothing() {
    interrupted_operations(Backend::Local).await;
}

#[tokio::test]
async fn s3_interrupted_operations_leave_nothing() {
    interrupted_operations(Backend::S3).await;
}

/// `forget` interrupted while the storage stalls: the manifests it removed lose their data too,
/// the others stay whole; no backup is left half there.
#[tokio::test]
async fn s3_interrupted_forget_leaves_whole_backups() {
    let repo = Repo::initialised(Backend::S3);
    const BACKUPS: usize = 12;
    for n in 0..BACKUPS {
        run_ok(
            repo.lifeboat()
                .args(["backup", "--stream", "n.txt", "--", "echo", &n.to_string()]),
        );
    }
    let manifests = |repo: &Repo| {
        repo.objects()
            .iter()
            .filter(|o| o.ends_with("manifest.json"))
            .count()
    };
    assert_eq!(manifests(&repo), BACKUPS);
    let mut child = repo
        .lifeboat()
        .args(["forget", "--keep-last", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || manifests(&repo) < BACKUPS),
        "forget started removing"
    );
    let s3 = repo.s3.as_ref().unwrap();
    s3.pause();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s3.resume();
    let code = wait_exit(&mut child, Duration::from_secs(60));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    let left = repo.list().len();
    // Under heavy load forget may finish before the signal lands; then all but one are gone.
    assert!(
        code == Some(130) && (1..BACKUPS).contains(&left) || code == Some(0) && left == 1,
        "exit {code:?}, {left} backups left: {stderr}"
    );
    // Every backup directory is whole: a manifest and its data, or nothing.
    let objects = repo.objects();
    let dirs: std::collections::BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o.strip_prefix("backups/"))
        .filter_map(|o| o.split('/').next())
        .collect();
    assert_eq!(dirs.len(), left, "no orphaned data: {objects:?}");
    for dir in dirs {
        assert!(objects.contains(&format!("backups/{dir}/manifest.json")), "{dir}");
        assert!(objects.contains(&format!("backups/{dir}/n.txt")), "{dir}");
    }
}

/// Sets a file's modification time `age` into the past.
fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options().append(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age).unwrap();
}

/// `repo check` names an untrusted manifest, an object no manifest names and (where the storage
/// lists them) an upload left open by a killed backup; `repo prune` removes the leftovers old
/// enough, keeps recent ones, and `--dry-run` removes nothing.
async fn check_and_prune(backend: Backend) {
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let repo = Repo::initialised(backend);
    let kept = repo.backup(&server);
    let clean = run_ok(repo.lifeboat().args(["repo", "check"]));
    assert!(
        clean.contains("1 backups") && clean.contains("no findings"),
        "{clean}"
    );

    // A backup killed outright mid-upload; an object of no backup; a planted manifest.
    let (mut child, pid) = frozen_mid_upload(&repo, &server, upload_begun);
    kill(pid, Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let orphan = "backups/20200101T000000.000Z-0000000000000001/etcd-snapshot.db";
    std::fs::create_dir_all(repo.root().join(orphan).parent().unwrap()).unwrap();
    std::fs::write(repo.root().join(orphan), b"left by a killed delete").unwrap();
    age_file(&repo.root().join(orphan), Duration::from_secs(2 * 86_400));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(repo.root().join(format!("backups/{kept}/manifest.json"))).unwrap(),
    )
    .unwrap();
    let planted = "20300101T000000.000Z-00000000000000cc";
    plant(&repo, &manifest, planted, "lifeboat-repo.json");

    let output = run(repo.lifeboat().args(["repo", "check", "-w", "json"]));
    assert_eq!(output.status.code(), Some(1));
    let found: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(found["backups"], 1, "{found}");
    assert_eq!(found["untrusted"][0][0], planted, "{found}");
    let unreferenced: Vec<&str> = found["unreferenced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(unreferenced, [orphan], "{found}");
    match backend {
        Backend::Local => {
            let open = found["open_uploads"].as_array().unwrap();
            assert_eq!(open.len(), 1, "{found}");
            assert!(open[0]["key"].as_str().unwrap().ends_with("/etcd-snapshot.db"));
        }
        Backend::S3 => assert!(found["open_uploads"].is_null(), "{found}"),
    }

    let dry = run_ok(repo.lifeboat().args(["repo", "prune", "--dry-run"]));
    assert!(dry.contains(&format!("would remove {orphan}")), "{dry}");
    assert!(repo.root().join(orphan).exists(), "a dry run removes nothing");
    let pruned = run_ok(repo.lifeboat().args(["repo", "prune", "-w", "json"]));
    let pruned: Value = serde_json::from_str(&pruned).unwrap();
    assert_eq!(pruned["removed"][0]["key"], orphan, "{pruned}");
    assert!(!repo.root().join(orphan).exists());
    if let Backend::Local = backend {
        assert_eq!(
            pruned["kept_recent"], 1,
            "the recent open upload is kept: {pruned}"
        );
        run_ok(repo.lifeboat().args(["repo", "prune", "--older-than", "0s"]));
        let staging: Vec<String> = repo.objects().into_iter().filter(|o| o.contains('#')).collect();
        assert_eq!(staging, Vec::<String>::new());
    }

    // Only the planted manifest is left to report; once deleted, the repository is clean.
    let left = run_failing(repo.lifeboat().args(["repo", "check"]).stdout(Stdio::null()), 1);
    assert!(left.contains("findings"), "{left}");
    run_ok(repo.lifeboat().args(["backups", "delete", planted, "--yes"]));
    let clean = run_ok(repo.lifeboat().args(["repo", "check"]));
    assert!(clean.contains("no findings"), "{clean}");
    run_ok(repo.lifeboat().args(["backups", "verify", &kept]));
}

#[tokio::test]
async fn local_check_and_prune_find_and_remove_leftovers() {
    check_and_prune(Backend::Local).await;
}

#[tokio::test]
async fn s3_check_and_prune_find_and_remove_leftovers() {
    check_and_prune(Backend::S3).await;
}

/// With no credentials anywhere, S3 access fails with one line that says so and names where it
/// looked; the instance metadata service it tries last is on loopback here.
#[tokio::test]
async fn s3_without_credentials_names_where_it_looked() {
    let s3 = S3Server::start().unwrap();
    let closed = lifeboat_test_support::free_port().unwrap();
    let metadata = format!("http://127.0.0.1:{closed}");
    let mut command = lifeboat();
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
        command.env_remove(name);
    }
    command
        .args(["backups", "list", "--repo", &format!("s3://{}/p", s3.bucket)])
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_METADATA_ENDPOINT", &metadata);
    let line = run_failing(&mut command, 1);
    for needle in [
        "no S3 credentials found",
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        metadata.as_str(),
    ] {
        assert!(line.contains(needle), "{needle:?} in {line}");
    }
}

/// An Azure Blob Storage repository (Azurite on 127.0.0.1) from the command line, with the
/// settings operators give in `AZURE_*` variables: init, a backup, list, dump, verify.
#[tokio::test]
async fn azure_repository_from_the_command_line() {
    let azure = lifeboat_test_support::AzureServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.txt");
    let location = format!("az://{}/cluster-a", lifeboat_test_support::cloud::BUCKET);
    let command = || {
        let mut command = lifeboat();
        command.env("LIFEBOAT_REPO", &location);
        for (key, value) in azure.config() {
            command.env(key.to_ascii_uppercase(), value);
        }
        command
    };
    run_ok(command().args(["repo", "init", "--identity-file"]).arg(&identity));
    let id = run_ok(command().args(["backup", "--stream", "app.sql", "--", "echo", "rows"]));
    let listed = run_ok(command().args(["backups", "list"]));
    assert!(listed.contains(id.trim()), "{listed}");
    let dumped = run_ok(
        command()
            .args(["dump", "latest", "--identity-file"])
            .arg(&identity),
    );
    assert_eq!(dumped, "rows\n");
    run_ok(
        command()
            .args(["backups", "verify", "--all", "--read-data", "--identity-file"])
            .arg(&identity),
    );
}

/// Temporary credentials (`AWS_SESSION_TOKEN`, as STS, IRSA and instance roles hand out) go
/// with every request, signed; seen on the wire through a pass-through proxy to s3s-fs.
#[tokio::test]
async fn s3_session_tokens_are_sent_with_every_request() {
    let repo = Repo::initialised(Backend::S3);
    let s3 = repo.s3.as_ref().unwrap();
    let upstream: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = lifeboat_test_support::FaultyProxy::start(upstream, 0).unwrap();
    let listed = run_ok(
        repo.lifeboat()
            .args(["backups", "list", "-w", "json"])
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .env("AWS_SESSION_TOKEN", "lifeboat-session-token-7"),
    );
    assert_eq!(listed.trim(), "[]");
    let sent = proxy.sent().to_ascii_lowercase();
    assert!(
        sent.contains("x-amz-security-token: lifeboat-session-token-7"),
        "{sent}"
    );
    let signatures: Vec<&str> = sent.lines().filter(|l| l.starts_with("authorization:")).collect();
    assert!(!signatures.is_empty(), "{sent}");
    for signature in signatures {
        assert!(
            signature.contains(";x-amz-security-token"),
            "the token is signed: {signature}"
        );
    }
}
