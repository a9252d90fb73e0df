//! Running the binary and checking what it left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use lifeboat_test_support::Tmpfs;
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, FillSpec, clear_etcd_env, fill};
use sha2::{Digest, Sha256};

/// `lifeboat` with a clean environment: no `ETCDCTL_*` from the caller, quiet logs.
pub fn lifeboat() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    clear_etcd_env(&mut command);
    command.env_remove("LIFEBOAT_LOG").stdin(Stdio::null());
    command
}

/// `lifeboat snapshot save FILE` with flags that reach `server`.
pub fn save_command(server: &EtcdServer, file: &Path) -> Command {
    let mut command = lifeboat();
    command
        .args(["snapshot", "save"])
        .arg(file)
        .args(server.etcdctl_args());
    command
}

/// Runs and captures, with the failure printed for the test log.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("lifeboat runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "lifeboat panicked: {stderr}");
    output
}

/// Runs a command that must fail with `code`, and returns its one-line error.
pub fn run_failing(command: &mut Command, code: i32) -> String {
    let output = run(command);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        stderr.starts_with("Error: "),
        "one error line expected, got: {stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one error line expected, got: {stderr}"
    );
    stderr
}

/// Runs a command that must succeed, returning stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn part_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", file.display()))
}

/// Waits (bounded) until `path` holds at least `bytes`; false on timeout or if `child` ended.
pub fn wait_for_size(child: &mut Child, path: &Path, bytes: u64, limit: Duration) -> bool {
    wait_until(child, limit, || {
        std::fs::metadata(path).map(|m| m.len() >= bytes).unwrap_or(false)
    })
}

/// A child process killed (and reaped) when the test ends without stopping it, as on a panic:
/// nothing a test started outlives it.
pub struct Spawned(pub Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `ready` every 2 ms until it holds (true), `child` ends or `limit` passes (false).
pub fn wait_until(child: &mut Child, limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Every file under `root`, as paths relative to it, sorted (empty if `root` is absent).
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

/// Waits (bounded) for a child to exit; kills it if it does not.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("lifeboat did not exit within {limit:?}");
}

/// Runs the reference snapshot tool (etcdutl 3.5, etcdctl 3.4) with `args`; returns stdout.
pub fn reference_tool<S: AsRef<std::ffi::OsStr>>(version: EtcdVersion, args: &[S]) -> String {
    let mut command = Command::new(version.snapshot_tool());
    clear_etcd_env(&mut command);
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The reference tool's `snapshot status -w FORMAT` output.
pub fn reference_status(version: EtcdVersion, file: &Path, format: &str) -> String {
    let file = file.display().to_string();
    reference_tool(version, &["snapshot", "status", "-w", format, &file])
}

/// An etcd started with `config` and filled as `spec` says.
pub async fn filled(config: EtcdConfig, spec: &FillSpec) -> EtcdServer {
    let server = EtcdServer::start(config).await.unwrap();
    fill(&server.member().await.unwrap().client(), spec)
        .await
        .unwrap();
    server
}

/// Large enough that the stream cannot finish from what sits in socket buffers and HTTP/2
/// windows while lifeboat is stopped, and that an upload needs several parts.
pub fn big() -> FillSpec {
    FillSpec {
        overwrite_every: 0,
        delete_every: 0,
        compact: false,
        ..FillSpec::sized(48 << 20)
    }
}

/// Sends `signal` to a stopped lifeboat, resumes it, and expects the exit code of that signal
/// and a message saying it was interrupted.
pub fn interrupt_stopped(mut child: Child, pid: nix::unistd::Pid, signal: nix::sys::signal::Signal) {
    use nix::sys::signal::{Signal, kill};
    let code = match signal {
        Signal::SIGINT => 130,
        _ => 143,
    };
    kill(pid, signal).unwrap();
    kill(pid, Signal::SIGCONT).unwrap();
    let exit = wait_exit(&mut child, Duration::from_secs(60));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(exit, Some(code), "{signal}: {stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {}", signal.as_str())),
        "{stderr}"
    );
}

/// A tmpfs too small for the snapshot, unmounted when dropped.
pub struct SmallDisk {
    _mount: Tmpfs,
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            _mount: Tmpfs::mount_at(dir.path(), bytes).unwrap(),
            dir,
        }
    }
}
