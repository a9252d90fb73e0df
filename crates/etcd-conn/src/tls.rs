//! The rustls client configuration built from etcdctl's `--cacert/--cert/--key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::{Error, Result};

/// etcdctl's `--cacert`, `--cert` and `--key`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA bundle that signed the server certificate; the system roots when absent.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM, may carry its chain).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any TLS file was given.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration, checking every file before any connection is tried.
pub(crate) fn client_config(files: &TlsFiles, insecure_skip_verify: bool) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            endpoint: String::new(),
            reason: e.to_string(),
        })?;
    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(
                provider.signature_verification_algorithms,
            )))
    } else {
        builder.with_root_certificates(root_store(files.ca.as_deref())?)
    };
    let mut config = match (&files.cert, &files.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("client certificate", cert)?;
            check_validity(cert, &chain[0])?;
            let private_key = read_key(key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| Error::BadClientIdentity {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?
        }
        _ => return Err(Error::CertWithoutKey),
    };
    // etcd serves gRPC through Go's HTTP/2 server, which speaks h2 only when ALPN chose it.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn root_store(ca: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_certs("CA certificate", path)? {
                roots.add(cert).map_err(|_| Error::BadPem {
                    what: "CA certificate",
                    path: path.to_path_buf(),
                    expected: "X.509 certificate",
                })?;
            }
        }
        None => {
            // Like etcdctl without --cacert: trust the system's roots.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(Error::BadPem {
            what,
            path: path.to_path_buf(),
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file("client key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| Error::BadPem {
        what: "client key",
        path: path.to_path_buf(),
        expected: "PRIVATE KEY block",
    })
}

/// An expired client certificate fails in the server's handshake with a vague alert; saying so
/// up front names the file and the fix.
fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<()> {
    let bad_pem = || Error::BadPem {
        what: "client certificate",
        path: path.to_path_buf(),
        expected: "X.509 certificate",
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad_pem())?;
    let validity = parsed.validity();
    if !validity.is_valid() {
        return Err(Error::ClientCertExpired {
            path: path.to_path_buf(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

/// `--insecure-skip-tls-verify`: the channel is still encrypted and signatures are still
/// checked, but the server's identity is not.
#[derive(Debug)]
struct AcceptAnyServerCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
