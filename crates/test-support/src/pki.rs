//! A kubeadm-shaped etcd PKI generated for each test: CA, server and client certificates, plus
//! the bad ones fault tests need (an expired client certificate, a foreign CA and its client).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Certificate and key files of one identity.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files of a generated PKI, laid out as kubeadm does under `<root>/etcd/`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The directory kubeadm calls `/etc/kubernetes/pki`.
    pub root: PathBuf,
    /// `etcd/ca.crt`.
    pub ca: PathBuf,
    /// `etcd/server.{crt,key}`: SANs localhost and 127.0.0.1.
    pub server: CertFiles,
    /// `etcd/healthcheck-client.{crt,key}`: a valid client of this CA.
    pub client: CertFiles,
    /// A client of this CA whose validity ended yesterday.
    pub expired_client: CertFiles,
    /// A CA that signed nothing etcd trusts.
    pub foreign_ca: PathBuf,
    /// A client signed by the foreign CA.
    pub foreign_client: CertFiles,
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn new_ca(common_name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

struct Leaf<'a> {
    common_name: &'a str,
    sans: &'a [&'a str],
    usage: ExtendedKeyUsagePurpose,
    valid: (OffsetDateTime, OffsetDateTime),
}

fn leaf(dir: &Path, name: &str, spec: Leaf<'_>, issuer: &Issuer<'_, KeyPair>) -> anyhow::Result<CertFiles> {
    let key = KeyPair::generate()?;
    let sans: Vec<String> = spec.sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name);
    params.extended_key_usages = vec![spec.usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    (params.not_before, params.not_after) = spec.valid;
    let cert = params.signed_by(&key, issuer)?;
    let files = CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    write_private(&files.cert, &cert.pem())?;
    write_private(&files.key, &key.serialize_pem())?;
    Ok(files)
}

impl Pki {
    /// Generates a fresh PKI under `root`.
    pub fn generate(root: &Path) -> anyhow::Result<Self> {
        let etcd = root.join("etcd");
        std::fs::create_dir_all(&etcd)?;
        let now = OffsetDateTime::now_utc();
        let current = (now - Duration::hours(1), now + Duration::days(365));

        let (ca_pem, issuer) = new_ca("etcd-ca")?;
        let ca = etcd.join("ca.crt");
        write_private(&ca, &ca_pem)?;
        let server = leaf(
            &etcd,
            "server",
            Leaf {
                common_name: "etcd-server",
                sans: &["localhost", "127.0.0.1"],
                usage: ExtendedKeyUsagePurpose::ServerAuth,
                valid: current,
            },
            &issuer,
        )?;
        let client_spec = |valid| Leaf {
            common_name: "kube-etcd-healthcheck-client",
            sans: &[],
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            valid,
        };
        let client = leaf(&etcd, "healthcheck-client", client_spec(current), &issuer)?;
        let expired = (now - Duration::days(30), now - Duration::days(1));
        let expired_client = leaf(root, "expired-client", client_spec(expired), &issuer)?;

        let (foreign_pem, foreign_issuer) = new_ca("some-other-ca")?;
        let foreign_ca = root.join("foreign-ca.crt");
        write_private(&foreign_ca, &foreign_pem)?;
        let foreign_client = leaf(root, "foreign-client", client_spec(current), &foreign_issuer)?;
        Ok(Self {
            root: root.to_path_buf(),
            ca,
            server,
            client,
            expired_client,
            foreign_ca,
            foreign_client,
        })
    }
}

/// The cluster CA (`<pki>/ca.crt`) and an API server serving certificate signed by it
/// (`<pki>/apiserver.{crt,key}`, SANs `kubernetes`, `localhost`, `127.0.0.1`), as kubeadm lays
/// them out, for a fake API server.
pub fn apiserver_pki(pki: &Path) -> anyhow::Result<CertFiles> {
    std::fs::create_dir_all(pki)?;
    let now = OffsetDateTime::now_utc();
    let (ca_pem, issuer) = new_ca("kubernetes")?;
    write_private(&pki.join("ca.crt"), &ca_pem)?;
    leaf(
        pki,
        "apiserver",
        Leaf {
            common_name: "kube-apiserver",
            sans: &["kubernetes", "localhost", "127.0.0.1"],
            usage: ExtendedKeyUsagePurpose::ServerAuth,
            valid: (now - Duration::hours(1), now + Duration::days(365)),
        },
        &issuer,
    )
}

/// Writes a kubeadm control-plane tree under `root` (`etc/kubernetes/pki`, kubeconfigs, static
/// Pod manifests, kubelet configuration and drop-in, plus a file outside kubeadm's set), with
/// certificates of chosen expiries. Unless `healthy`, `pki/apiserver.crt` expires in 10 days and
/// `pki/front-proxy-client.crt` expired 2 days ago; all others are valid for 200 days or more.
/// Keys and kubeconfigs are 0600, certificates and configuration 0644; every mtime is
/// 2026-01-02T03:04:05Z.
pub fn control_plane_tree(root: &Path, healthy: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let now = OffsetDateTime::now_utc();
    let valid = |days| (now - Duration::hours(1), now + Duration::days(days));
    let pki = root.join("etc/kubernetes/pki");
    std::fs::create_dir_all(pki.join("etcd"))?;
    let (ca_pem, ca) = new_ca("kubernetes")?;
    write_private(&pki.join("ca.crt"), &ca_pem)?;
    write_private(
        &pki.join("ca.key"),
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    )?;
    let server = |common_name, valid| Leaf {
        common_name,
        sans: &["127.0.0.1"],
        usage: ExtendedKeyUsagePurpose::ServerAuth,
        valid,
    };
    let soon = if healthy { valid(400) } else { valid(10) };
    let gone = if healthy {
        valid(400)
    } else {
        (now - Duration::days(30), now - Duration::days(2))
    };
    leaf(&pki, "apiserver", server("kube-apiserver", soon), &ca)?;
    leaf(
        &pki,
        "front-proxy-client",
        server("front-proxy-client", gone),
        &ca,
    )?;
    let (etcd_ca_pem, etcd_ca) = new_ca("etcd-ca")?;
    write_private(&pki.join("etcd/ca.crt"), &etcd_ca_pem)?;
    leaf(
        &pki.join("etcd"),
        "server",
        server("etcd-server", valid(200)),
        &etcd_ca,
    )?;

    let admin = leaf(&pki, "admin-client", server("kubernetes-admin", valid(300)), &ca)?;
    let base64 = |path: &Path| -> anyhow::Result<String> {
        let output = std::process::Command::new("base64")
            .arg("-w0")
            .arg(path)
            .output()?;
        Ok(String::from_utf8(output.stdout)?)
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:6443\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: c2VjcmV0\ncontexts: []\n",
        base64(&pki.join("ca.crt"))?,
        base64(&admin.cert)?
    );
    std::fs::remove_file(&admin.cert)?;
    std::fs::remove_file(&admin.key)?;
    let kubernetes = root.join("etc/kubernetes");
    write_private(&kubernetes.join("admin.conf"), &kubeconfig)?;
    std::fs::create_dir_all(kubernetes.join("manifests"))?;
    write_private(
        &kubernetes.join("manifests/etcd.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n",
    )?;
    let public = [
        ("etc/kubernetes/unrelated.txt", "not part of kubeadm's set\n"),
        ("var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n"),
        (
            "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
            "[Service]\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf\"\n",
        ),
    ];
    for (path, contents) in public {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().context("a parent")?)?;
        std::fs::write(&path, contents)?;
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_323_045);
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            continue;
        }
        let name = path.to_string_lossy();
        let mode = if name.ends_with(".key") || name.ends_with("admin.conf") || name.contains("manifests") {
            0o600
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(mtime)?;
    }
    Ok(())
}
