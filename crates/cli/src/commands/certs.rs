//! `lifeboat certs [--root DIR | --backup ID] [--warn-days N]`: every control-plane certificate
//! with its expiry; exit 1 when any is expired or expires within the window.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use lifeboat_core::certs::{CertInfo, Expiry, read_tar, read_tree, scan};
use lifeboat_core::files::fetch_files;

use crate::exit::cancel_on_signals;

use crate::exit::Failure;
use crate::output::{self, OutputFormat};
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// The tree to read (a node's `/`, or a copy of one).
    #[arg(long, value_name = "DIR", default_value = "/", conflicts_with = "backup")]
    root: PathBuf,
    /// Read the certificates of this files backup (ID or `latest`) instead of a tree.
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Warn about certificates that expire within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    warn_days: i64,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: CertsArgs, format: OutputFormat) -> anyhow::Result<()> {
    let (files, origin) = match &args.backup {
        Some(text) => {
            let repo = args.repo.open().await?;
            let identities = args.identity.require_for(&repo)?;
            let id = resolve_id(&repo, text, Some("files")).await?;
            (
                read_tar(&fetch_files(&repo, &id, &identities, &cancel_on_signals()).await?),
                format!("backup {id}"),
            )
        }
        None => (read_tree(&args.root), args.root.display().to_string()),
    };
    let now = time::OffsetDateTime::from(SystemTime::now());
    let (certs, unreadable) = scan(&files, now, args.warn_days);
    if certs.is_empty() && unreadable.is_empty() {
        anyhow::bail!(
            "no certificates under {origin} (looked in etc/kubernetes, var/lib/rancher/k3s|rke2/server and etc/rancher: *.crt, *.pem, kubeconfigs); check --root"
        );
    }
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(
            &mut out,
            &serde_json::json!({ "certificates": certs, "unreadable": unreadable }),
        )?,
        OutputFormat::Table | OutputFormat::Simple => {
            output::grid(
                &mut out,
                &["CERTIFICATE", "SUBJECT", "EXPIRES", "DAYS LEFT", "CA", "STATUS"],
                &certs.iter().map(row).collect::<Vec<_>>(),
            )?;
            for item in &unreadable {
                writeln!(out, "unreadable: {}: {}", item.source, item.reason)?;
            }
        }
    }
    let attention: Vec<&CertInfo> = certs.iter().filter(|c| c.status != Expiry::Ok).collect();
    if attention.is_empty() && unreadable.is_empty() {
        return Ok(());
    }
    let expired = attention.iter().filter(|c| c.status == Expiry::Expired).count();
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!(
            "{expired} certificates expired and {} expire within {} days ({}){}; renew them (kubeadm certs renew)",
            attention.len() - expired,
            args.warn_days,
            attention.iter().map(|c| c.source.as_str()).collect::<Vec<_>>().join(", "),
            if unreadable.is_empty() { String::new() } else { format!(", {} unreadable", unreadable.len()) }
        ),
    }
    .into())
}

fn row(cert: &CertInfo) -> Vec<String> {
    vec![
        cert.source.clone(),
        cert.subject.clone(),
        cert.not_after.clone(),
        cert.days_left.to_string(),
        if cert.is_ca { "yes".into() } else { "no".into() },
        match cert.status {
            Expiry::Ok => "ok".into(),
            Expiry::Expiring => "EXPIRING".into(),
            Expiry::Expired => "EXPIRED".into(),
        },
    ]
}
