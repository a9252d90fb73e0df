//! Who may read the agent: with `http.tls.client_ca` and `http.bearer_token`, `/metrics` and the
//! page need a client certificate the CA signed and the token (curl is the client); `/healthz`
//! and `/readyz` stay open to probes; a certificate of another CA fails the handshake. Neither
//! the page, the metrics nor `/readyz` show the storage credentials, even when the storage fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::agent::{Agent, listen};
use crate::repository::{Backend, Repo};

const TOKEN: &str = "t0ken-of-the-metrics-scraper-0123456789";
const SECRET_KEY: &str = "storage-secret-key-never-shown-4711";

/// Writes `name.crt` and `name.key` into `dir`: signed by `issuer`, or by itself.
fn certificate(
    dir: &Path,
    name: &str,
    ca: bool,
    issuer: Option<&rcgen::Issuer<'_, KeyPair>>,
) -> rcgen::Issuer<'static, KeyPair> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    // Names of their own: a leaf named like its issuer reads as self-signed.
    params
        .distinguished_name
        .push(DnType::CommonName, format!("lifeboat test {name}"));
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    }
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    rcgen::Issuer::new(params, key)
}

/// curl's answer: (HTTP status, body), or status 0 when no HTTP answer came (the handshake
/// failed).
fn curl(dir: &Path, url: &str, client: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args([
            "--silent",
            "--max-time",
            "10",
            "--write-out",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(dir.join("ca.crt"));
    if let Some(client) = client {
        command
            .arg("--cert")
            .arg(dir.join(format!("{client}.crt")))
            .arg("--key")
            .arg(dir.join(format!("{client}.key")));
    }
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let out = command
        .arg(url)
        .output()
        .expect("curl is installed (scripts/setup)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn metrics_and_page_need_the_client_certificate_and_the_token_and_show_no_secret() {
    let repo = Repo::initialised(Backend::Local);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = certificate(dir, "ca", true, None);
    certificate(dir, "server", false, Some(&ca));
    certificate(dir, "client", false, Some(&ca));
    certificate(dir, "rogue", false, None);
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let address = listen();
    // The storage fails (nothing listens there), so its error is on the page and in /readyz.
    let config = format!(
        "repository: s3://backups/prod\nlisten: {address}\nleader: always\nhost: node-1\n\
         http:\n  bearer_token: {{file: {d}/token}}\n  tls: {{cert: {d}/server.crt, key: {d}/server.key, client_ca: {d}/ca.crt}}\n\
         jobs:\n  - {{name: certs, kind: certs, every: 1h, root: {d}}}\n",
        d = dir.display(),
    );
    let dead = crate::agent::listen();
    let mut command = repo.lifeboat();
    command
        .env("AWS_ENDPOINT_URL", format!("http://{dead}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDLIFEBOATTEST")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1");
    let agent = Agent::start(command, dir, "agent", &config);
    let url = |path: &str| format!("https://{address}{path}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(dir, &url("/healthz"), None, None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the agent never answered /healthz over TLS: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Probes need nothing.
    let (status, ready) = curl(dir, &url("/readyz"), None, None);
    assert!(status == 503 || status == 200, "{status} {ready}");

    for path in ["/metrics", "/"] {
        assert_eq!(
            curl(dir, &url(path), None, Some(TOKEN)).0,
            401,
            "{path}: no client certificate"
        );
        assert_eq!(
            curl(dir, &url(path), Some("client"), None).0,
            401,
            "{path}: no token"
        );
        assert_eq!(
            curl(
                dir,
                &url(path),
                Some("client"),
                Some("t0ken-of-the-metrics-scraper-012345678X")
            )
            .0,
            401,
            "{path}: wrong token"
        );
        assert_eq!(
            curl(dir, &url(path), Some("rogue"), Some(TOKEN)).0,
            0,
            "{path}: another CA's certificate fails the handshake"
        );
        assert_eq!(
            curl(dir, &url(path), Some("client"), Some(TOKEN)).0,
            200,
            "{path}: certificate and token"
        );
    }
    // Plain HTTP gets no answer from the TLS port.
    let plain = Command::new("curl")
        .args(["--silent", "--max-time", "5", "--write-out", "%{http_code}"])
        .arg(format!("http://{address}/healthz"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // The storage's failure is shown, its credentials are not.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ready) = curl(dir, &url("/readyz"), None, None);
        if ready.contains("unreachable") {
            assert!(!ready.contains(SECRET_KEY), "{ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the repository's failure never reached /readyz: {ready}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, page) = curl(dir, &url("/"), Some("client"), Some(TOKEN));
    let (_, metrics) = curl(dir, &url("/metrics"), Some("client"), Some(TOKEN));
    assert!(page.contains("unreachable") || page.contains("cannot"), "{page}");
    for shown in [&page, &metrics] {
        assert!(!shown.contains(SECRET_KEY) && !shown.contains(TOKEN), "{shown}");
        assert!(
            !shown.contains("BEGIN"),
            "no certificate or key contents: {shown}"
        );
    }
    assert!(metrics.contains("lifeboat_leader{cluster=\"\"} 1"), "{metrics}");
}
