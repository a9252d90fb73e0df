//! A real PostgreSQL (Debian's packages) on 127.0.0.1 at a free port, in a temporary data
//! directory; stopped and removed on drop. PostgreSQL refuses to run as root, so as root the
//! server runs as the `postgres` user the Debian package creates.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::etcd::free_port;

/// A running PostgreSQL with trust authentication for user `postgres` over TCP on 127.0.0.1.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

/// The directory of the newest installed server binaries (`/usr/lib/postgresql/N/bin`).
fn server_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql; scripts/setup does)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

/// `program` run as the `postgres` user when we are root.
fn as_server_user(program: PathBuf) -> Command {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// Initialises a cluster and starts it.
    pub fn start() -> anyhow::Result<Self> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new().prefix("lifeboat-pg-").tempdir()?;
        // The server user must own its directory (and reach it).
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status();
        let data = dir.path().join("data");
        let status = as_server_user(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running initdb")?;
        if !status.success() {
            bail!("initdb failed ({status})");
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        let mut child = as_server_user(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("postgres exited with {status} while starting");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("postgres did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            child: Some(child),
            port,
            dir,
        })
    }

    /// The connection flags of the client tools (`psql`, `pg_dump`).
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    /// Runs `psql -v ON_ERROR_STOP=1 -d DATABASE -c SQL` and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let output = Command::new("psql")
            .args(self.client_args())
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Where the log is (for failing tests).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The postmaster, not runuser (which forwards no signal): SIGINT is a fast shutdown.
            let postmaster = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
                .ok()
                .and_then(|text| text.lines().next().map(str::to_string))
                .unwrap_or_else(|| child.id().to_string());
            let _ = Command::new("kill").arg("-INT").arg(postmaster).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
