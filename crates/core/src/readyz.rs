//! The Kubernetes API server's `/readyz`, asked over TLS verified against the cluster CA: the
//! last proof a recovery gives that the control plane is back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name every kubeadm API server certificate carries (its IP SANs vary by node).
const SERVER_NAME: &str = "kubernetes";

/// Whether `url` (`https://127.0.0.1:PORT/readyz`) answers 200, its certificate checked against
/// the CA bundle `ca`. Any failure (refused, untrusted, not ready) is `false`: the caller waits.
pub async fn ready(url: &str, ca: &Path) -> bool {
    tokio::time::timeout(Duration::from_secs(5), ask(url, ca))
        .await
        .ok()
        .flatten()
        .is_some_and(|status| status == 200)
}

async fn ask(url: &str, ca: &Path) -> Option<u16> {
    let rest = url.strip_prefix("https://")?;
    let (address, path) = rest.split_once('/').map_or((rest, "/"), |(a, p)| (a, p));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).ok()? {
        roots.add(cert.ok()?).ok()?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
    let mut tls = connector
        .connect(ServerName::try_from(SERVER_NAME).ok()?, tcp)
        .await
        .ok()?;
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        path.trim_start_matches('/')
    );
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut head = vec![0u8; 64];
    let n = tls.read(&mut head).await.ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ').nth(1)?.parse().ok()
}
