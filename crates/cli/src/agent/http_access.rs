//! Who may read `/metrics` and the status page: a bearer token, a client certificate (mTLS), or
//! anyone who reaches the address when neither is configured. `/healthz` and `/readyz` stay open
//! to the kubelet's probes, which carry no credentials.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{HttpSection, HttpTls};

/// What a request to a guarded endpoint must show.
#[derive(Debug)]
pub struct Access {
    token: Option<String>,
    client_certificate: bool,
}

/// Whether this connection's client presented a certificate the configured CA signed (the
/// handshake refuses any other certificate).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub certified: bool,
}

impl Access {
    /// Reads the token and builds the TLS configuration once, at start, so that a missing file
    /// stops the agent with its name instead of failing every request.
    pub fn load(http: &HttpSection) -> anyhow::Result<(Arc<Self>, Option<tokio_rustls::TlsAcceptor>)> {
        let token = http
            .bearer_token
            .as_ref()
            .map(|source| source.read())
            .transpose()?;
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            anyhow::bail!(
                "http.bearer_token: the token is empty; put a random string of 32 or more characters there"
            );
        }
        let acceptor = http
            .tls
            .as_ref()
            .map(|tls| server_config(tls).map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config))))
            .transpose()?;
        let access = Access {
            token,
            client_certificate: http.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some()),
        };
        Ok((Arc::new(access), acceptor))
    }

    /// Why `request` may not read a guarded endpoint, if it may not.
    fn refusal(&self, request: &Request) -> Option<&'static str> {
        if self.client_certificate {
            let certified = request
                .extensions()
                .get::<Peer>()
                .is_some_and(|peer| peer.certified);
            if !certified {
                return Some("a client certificate signed by http.tls.client_ca is required\n");
            }
        }
        if let Some(expected) = &self.token {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !same(given.as_bytes(), expected.as_bytes()) {
                return Some("a bearer token is required (Authorization: Bearer <http.bearer_token>)\n");
            }
        }
        None
    }
}

/// Compares in time that depends on the length only, so the token cannot be guessed byte by
/// byte from response times.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The middleware in front of `/metrics` and the page.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    match access.refusal(&request) {
        None => next.run(request).await,
        Some(reason) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            reason,
        )
            .into_response(),
    }
}

fn server_config(tls: &HttpTls) -> anyhow::Result<ServerConfig> {
    let read_certificates = |path: &std::path::Path, what: &str| {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|all| all.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow::anyhow!(
                    "http.tls.{what} {}: not readable PEM certificates ({e})",
                    path.display()
                )
            })?;
        if certificates.is_empty() {
            anyhow::bail!("http.tls.{what} {}: holds no certificate", path.display());
        }
        anyhow::Ok(certificates)
    };
    let chain = read_certificates(&tls.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        anyhow::anyhow!(
            "http.tls.key {}: not a readable PEM private key ({e})",
            tls.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(ca, "client_ca")? {
                roots
                    .add(certificate)
                    .map_err(|e| anyhow::anyhow!("http.tls.client_ca {}: {e}", ca.display()))?;
            }
            // Unauthenticated clients complete the handshake so that probes reach /healthz and
            // /readyz; the guard refuses them everything else.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow::anyhow!("http.tls.client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        anyhow::anyhow!(
            "http.tls: the key does not fit the certificate {} ({e})",
            tls.cert.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secreT", b"secret"));
        assert!(!same(b"secret", b"secret-longer"));
        assert!(!same(b"", b"secret"));
    }
}
