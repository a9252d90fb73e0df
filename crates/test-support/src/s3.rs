//! A real S3-compatible server (s3s-fs 0.14.1, which checks SigV4 and Content-MD5) on
//! 127.0.0.1 at a free port, with one bucket; killed and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use tempfile::TempDir;

use crate::cloud::spawn_listening;
use crate::etcd::free_port;

/// A running s3s-fs.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    dir: TempDir,
}

fn binary() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin/s3s-fs");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("s3s-fs")
    }
}

const ACCESS_KEY_ID: &str = "lifeboat-test-key";
const SECRET_ACCESS_KEY: &str = "lifeboat-test-secret";

/// Starts s3s-fs serving `dir` on `port` and waits until it listens.
fn spawn(dir: &Path, port: u16) -> anyhow::Result<Child> {
    let mut command = Command::new(binary());
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY_ID, "--secret-key", SECRET_ACCESS_KEY])
        .arg(dir);
    spawn_listening(command, dir, port, "s3s-fs")
}

impl S3Server {
    /// Starts s3s-fs with a bucket named `lifeboat-test`.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("lifeboat-s3-").tempdir()?;
        let bucket = "lifeboat-test".to_string();
        std::fs::create_dir(dir.path().join(&bucket))?;
        let port = free_port()?;
        let child = spawn(dir.path(), port)?;
        Ok(Self {
            child: Some(child),
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            access_key_id: ACCESS_KEY_ID.to_string(),
            secret_access_key: SECRET_ACCESS_KEY.to_string(),
            dir,
        })
    }

    /// Starts the server again after [`S3Server::kill`], on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = Some(spawn(self.dir.path(), self.port)?);
        Ok(())
    }

    /// The directory s3s-fs serves (buckets and its bookkeeping of uploads).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): requests hang, as on a stalled network.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Where the bucket's objects are stored on disk.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(&self.bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
