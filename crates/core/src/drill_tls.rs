//! A drill's own TLS: its throwaway members serve clients over TLS and only to the holder of a
//! client certificate made for this drill alone, so no other process on the machine can read
//! the restored Secrets through them. A CA, a server and a client certificate, generated per
//! drill into its private directory (0700, files 0600), valid for a week, gone with it.

use std::path::Path;

use lifeboat_etcd_conn::TlsFiles;
use lifeboat_etcd_proc::ServerTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result};

fn failed(error: rcgen::Error) -> Error {
    Error::DrillTls {
        reason: error.to_string(),
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let io = |source| Error::Io {
        action: "write",
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(pem.as_bytes()).map_err(io)?;
    Ok(path)
}

/// A leaf certificate for `usage`, signed by `issuer`: its PEM and its key's.
fn leaf(
    common_name: &str,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
    valid: (OffsetDateTime, OffsetDateTime),
) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(sans).map_err(failed)?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    (params.not_before, params.not_after) = valid;
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates the drill's CA, server (127.0.0.1, localhost) and client certificates in `dir`.
pub(crate) fn generate(dir: &Path) -> Result<ServerTls> {
    let now = OffsetDateTime::now_utc();
    let valid = (now - Duration::hours(1), now + Duration::days(7));
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::new()).map_err(failed)?;
    ca.distinguished_name
        .push(DnType::CommonName, "lifeboat drill CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    (ca.not_before, ca.not_after) = valid;
    let ca_pem = ca.self_signed(&ca_key).map_err(failed)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let (server_pem, server_key) = leaf(
        "lifeboat drill member",
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
        valid,
    )?;
    let (client_pem, client_key) = leaf(
        "lifeboat drill",
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        &issuer,
        valid,
    )?;
    let trusted_ca = write(dir, "ca.crt", &ca_pem)?;
    Ok(ServerTls {
        cert: write(dir, "server.crt", &server_pem)?,
        key: write(dir, "server.key", &server_key)?,
        client: TlsFiles {
            ca: Some(trusted_ca.clone()),
            cert: Some(write(dir, "client.crt", &client_pem)?),
            key: Some(write(dir, "client.key", &client_key)?),
        },
        trusted_ca,
    })
}
