//! Running the binary and checking what it left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lifeboat_test_support::{EtcdServer, EtcdVersion, clear_etcd_env};
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
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::fs::metadata(path).map(|m| m.len() >= bytes).unwrap_or(false) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
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
