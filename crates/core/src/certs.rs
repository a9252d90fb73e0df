//! Certificate expiry: every certificate of the control plane (PEM files under the PKI and the
//! ones embedded in kubeconfigs, as `kubeadm certs check-expiration` lists them), with the days
//! left. Pure over (path, bytes) pairs with the time injected, so it is tested on chosen expiries.

use std::path::Path;

use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Whether a certificate needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    Ok,
    /// Expires within the warning window.
    Expiring,
    Expired,
}

/// One certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// The file, with `#user-name` or `#cluster-name` for one embedded in a kubeconfig.
    pub source: String,
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days until it expires (negative once expired).
    pub days_left: i64,
    pub is_ca: bool,
    pub status: Expiry,
}

/// What could not be read as a certificate, though it looked like one.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub source: String,
    pub reason: String,
}

/// The certificates found in `files`, and the ones that could not be parsed.
pub fn scan(
    files: &[(String, Vec<u8>)],
    now: OffsetDateTime,
    warn_days: i64,
) -> (Vec<CertInfo>, Vec<Unreadable>) {
    let mut certs = Vec::new();
    let mut unreadable = Vec::new();
    for (path, bytes) in files {
        let extension = Path::new(path).extension().and_then(|e| e.to_str());
        let found = match extension {
            Some("crt" | "pem" | "cert") => pem_certs(bytes)
                .into_iter()
                .map(|der| (path.clone(), der))
                .collect(),
            Some("conf" | "kubeconfig") => kubeconfig_certs(path, bytes),
            _ => Vec::new(),
        };
        for (source, der) in found {
            match describe(&source, &der, now, warn_days) {
                Ok(info) => certs.push(info),
                Err(reason) => unreadable.push(Unreadable { source, reason }),
            }
        }
    }
    certs.sort_by(|a, b| a.source.cmp(&b.source));
    (certs, unreadable)
}

fn pem_certs(bytes: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .filter_map(|pem| pem.ok())
        .filter(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
        .collect()
}

/// `client-certificate-data` of each user and `certificate-authority-data` of each cluster.
fn kubeconfig_certs(path: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    struct Named<T> {
        name: String,
        #[serde(alias = "user", alias = "cluster")]
        inner: Option<T>,
    }
    #[derive(serde::Deserialize)]
    struct User {
        #[serde(rename = "client-certificate-data")]
        data: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Cluster {
        #[serde(rename = "certificate-authority-data")]
        data: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Kubeconfig {
        #[serde(default)]
        users: Vec<Named<User>>,
        #[serde(default)]
        clusters: Vec<Named<Cluster>>,
    }
    let Ok(config) = serde_yaml_ng::from_slice::<Kubeconfig>(bytes) else {
        return Vec::new();
    };
    let users = config
        .users
        .into_iter()
        .filter_map(|u| Some((u.name, u.inner?.data?)));
    let clusters = config
        .clusters
        .into_iter()
        .filter_map(|c| Some((c.name, c.inner?.data?)));
    users
        .chain(clusters)
        .filter_map(|(name, data)| {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()?;
            Some(
                pem_certs(&pem)
                    .into_iter()
                    .map(move |der| (format!("{path}#{name}"), der))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

fn describe(source: &str, der: &[u8], now: OffsetDateTime, warn_days: i64) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.to_datetime();
    let days_left = (not_after - now).whole_days();
    let status = if not_after <= now {
        Expiry::Expired
    } else if days_left < warn_days {
        Expiry::Expiring
    } else {
        Expiry::Ok
    };
    Ok(CertInfo {
        source: source.to_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: lifeboat_repo::timestamp(not_after.into()),
        days_left,
        is_ca: cert.is_ca(),
        status,
    })
}

/// Where control planes keep certificates and kubeconfigs: kubeadm's, and k3s's and RKE2's
/// (server certificates, and the kubeconfigs under `cred/` and `/etc/rancher`).
const CERTIFICATE_DIRS: [&str; 5] = [
    "etc/kubernetes",
    "var/lib/rancher/k3s/server",
    "var/lib/rancher/rke2/server",
    "etc/rancher/k3s",
    "etc/rancher/rke2",
];

/// The files of a tree's control-plane directories that exist: `(path relative to root,
/// bytes)`; [`scan`] picks the certificates and kubeconfigs among them.
pub fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    // k3s's db/ holds the datastore, never a certificate (and can be large).
    let skipped = [
        root.join("var/lib/rancher/k3s/server/db"),
        root.join("var/lib/rancher/rke2/server/db"),
    ];
    let mut stack: Vec<_> = CERTIFICATE_DIRS.iter().map(|dir| root.join(dir)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !skipped.contains(&path) {
                    stack.push(path);
                }
            } else if let Ok(bytes) = std::fs::read(&path) {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                files.push((relative.display().to_string(), bytes));
            }
        }
    }
    files
}

/// The files of a control-plane tar (as `files` backups hold it).
pub fn read_tar(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return files;
    };
    for mut entry in entries.flatten() {
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        let mut bytes = Vec::new();
        if entry.read_to_end(&mut bytes).is_ok() {
            files.push((path, bytes));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_and_rke2_server_certificates_are_found() {
        let root = tempfile::tempdir().unwrap();
        let pem = rcgen::generate_simple_self_signed(vec!["k3s".into()])
            .unwrap()
            .cert
            .pem();
        for dir in [
            "var/lib/rancher/k3s/server/tls/etcd",
            "var/lib/rancher/rke2/server/tls",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
            std::fs::write(root.path().join(dir).join("server-ca.crt"), &pem).unwrap();
        }
        std::fs::create_dir_all(root.path().join("var/lib/rancher/k3s/server/db")).unwrap();
        std::fs::write(
            root.path().join("var/lib/rancher/k3s/server/db/skipped.crt"),
            &pem,
        )
        .unwrap();
        let (found, unreadable) = scan(&read_tree(root.path()), OffsetDateTime::now_utc(), 30);
        let sources: Vec<&str> = found.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "var/lib/rancher/k3s/server/tls/etcd/server-ca.crt",
                "var/lib/rancher/rke2/server/tls/server-ca.crt"
            ]
        );
        assert!(unreadable.is_empty());
    }
}
