//! Garage (crates.io `garage`, built by scripts/setup), an S3 server that implements
//! ListMultipartUploads, which s3s-fs does not: one node on 127.0.0.1 at free ports with one
//! bucket and key, its data in a temporary directory; killed and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::cloud::spawn_listening;
use crate::etcd::free_port;

/// The region Garage signs and checks requests for.
pub const GARAGE_REGION: &str = "garage";

/// A running Garage node.
#[derive(Debug)]
pub struct GarageServer {
    child: Child,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    dir: TempDir,
}

fn binary() -> PathBuf {
    let installed = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/lifeboat-tools/garage/current/bin/garage"))
        .filter(|path| path.exists());
    installed.unwrap_or_else(|| PathBuf::from("garage"))
}

impl GarageServer {
    pub const BUCKET: &str = "lifeboat-test";
    // Garage's formats: "GK" and 12 bytes in hex; 32 bytes in hex.
    pub const ACCESS_KEY_ID: &str = "GK0123456789abcdef01234567";
    pub const SECRET_ACCESS_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Starts a single-node Garage with the bucket `lifeboat-test`, writable with the key
    /// [`GarageServer::ACCESS_KEY_ID`].
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("lifeboat-garage-").tempdir()?;
        let (s3_port, rpc_port) = (free_port()?, free_port()?);
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let root = dir.path().display();
        std::fs::write(
            dir.path().join("garage.toml"),
            format!(
                "metadata_dir = \"{root}/meta\"\n\
                 data_dir = \"{root}/data\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{GARAGE_REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n"
            ),
        )?;
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", Self::ACCESS_KEY_ID)
            .env("GARAGE_DEFAULT_SECRET_KEY", Self::SECRET_ACCESS_KEY)
            .env("GARAGE_DEFAULT_BUCKET", Self::BUCKET)
            .env("RUST_LOG", "garage=warn");
        let child = spawn_listening(command, dir.path(), s3_port, "garage")?;
        Ok(Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            dir,
        })
    }

    /// How many multipart uploads of the bucket are begun and neither completed nor aborted,
    /// as Garage's admin API counts them (not through S3, so not through what is tested).
    pub fn unfinished_multipart_uploads(&self) -> anyhow::Result<u64> {
        let output = Command::new(binary())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(["json-api", "GetBucketInfo"])
            .arg(format!("{{\"globalAlias\":\"{}\"}}", Self::BUCKET))
            .output()
            .context("running garage json-api")?;
        if !output.status.success() {
            bail!(
                "garage json-api GetBucketInfo: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let info: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        info["unfinishedMultipartUploads"]
            .as_u64()
            .with_context(|| format!("no unfinishedMultipartUploads in {info}"))
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
