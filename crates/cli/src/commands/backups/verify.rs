//! `lifeboat backups verify ID...|--all [--read-data]`

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use lifeboat_core::backups::{BackupCheck, unreadable_manifest, verify_backup};
use lifeboat_repo::Manifest;

use crate::exit::{Failure, cancel_on_signals};
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `backups verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Backups to verify (IDs or `latest`).
    #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<String>,
    /// Verify every backup.
    #[arg(long)]
    all: bool,
    /// Also decrypt and decompress each artefact, check its plain sha256, and verify an etcd
    /// snapshot natively (needs the identity, and room for one snapshot in --temp-dir).
    #[arg(long)]
    read_data: bool,
    /// Where --read-data puts the snapshot while checking it (a private file, removed after).
    #[arg(long, value_name = "DIR", env = "TMPDIR", default_value = "/tmp")]
    temp_dir: PathBuf,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: VerifyArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let identities = match args.read_data {
        true => Some(args.identity.require_for(&repo)?),
        false => None,
    };
    let mut checks: Vec<BackupCheck> = Vec::new();
    let manifests: Vec<Manifest> = if args.all {
        let listing = repo.list().await?;
        checks.extend(
            listing
                .unreadable
                .iter()
                .map(|(id, error)| unreadable_manifest(id, error)),
        );
        listing.backups
    } else {
        let mut manifests = Vec::new();
        for text in &args.ids {
            manifests.push(repo.manifest(&resolve_id(&repo, text, None).await?).await?);
        }
        manifests
    };
    if manifests.is_empty() && checks.is_empty() {
        bail!("{} has no backups to verify", repo.storage().repo());
    }
    if format == OutputFormat::Simple {
        for check in &checks {
            print_line(check)?;
        }
    }
    let bar = TerminalBar::new("verify");
    let cancel = cancel_on_signals();
    for manifest in &manifests {
        let check = verify_backup(
            &repo,
            manifest,
            identities.as_deref(),
            &args.temp_dir,
            &bar,
            &cancel,
        )
        .await?;
        if format == OutputFormat::Simple {
            print_line(&check)?;
        }
        checks.push(check);
    }
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &checks)?,
        OutputFormat::Table => output::grid(
            &mut out,
            &["ID", "OBJECT", "READ DATA", "RESULT"],
            &checks
                .iter()
                .flat_map(|c| {
                    c.artefacts.iter().map(|a| {
                        vec![
                            c.id.to_string(),
                            a.key.clone(),
                            a.read_data.to_string(),
                            if a.findings.is_empty() {
                                std::iter::once("OK".to_string())
                                    .chain(a.notes.iter().cloned())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            } else {
                                a.findings.join("; ")
                            },
                        ]
                    })
                })
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Simple => {}
    }
    let damaged: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.id.to_string())
        .collect();
    if damaged.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!(
            "{} of {} backups in {} are damaged: {}",
            damaged.len(),
            checks.len(),
            repo.storage().repo(),
            damaged.join(", ")
        ),
    }
    .into())
}

fn print_line(check: &BackupCheck) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for artefact in &check.artefacts {
        let what = if artefact.read_data {
            "stored and plain sha256, data verified"
        } else {
            "stored sha256"
        };
        if artefact.findings.is_empty() {
            writeln!(out, "{} {}: OK ({what})", check.id, artefact.key)?;
        }
        for note in &artefact.notes {
            writeln!(out, "{} {}: NOTE: {note}", check.id, artefact.key)?;
        }
        for finding in &artefact.findings {
            writeln!(out, "{} {}: DAMAGED: {finding}", check.id, artefact.key)?;
        }
    }
    Ok(())
}
