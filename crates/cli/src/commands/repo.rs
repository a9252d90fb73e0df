//! `lifeboat repo init REPO`: a new repository, with an age identity kept away from it.
//! (`repo check`, `repo prune` and `repo unlock` have their own files.)

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::{Args, Subcommand};
use lifeboat_repo::{Compression, Encryption, Repository, generate_identity, parse_recipient, timestamp};

use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Where `repo init` writes the new identity unless told otherwise.
const DEFAULT_IDENTITY_FILE: &str = "lifeboat-identity.txt";

/// `repo` subcommands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository on a local path, s3://, gs:// or az://.
    Init(InitArgs),
    /// Check the whole repository: untrusted manifests, missing objects, leftovers.
    Check(super::repo_check::CheckArgs),
    /// Remove leftovers of interrupted backups and deletes (objects no manifest names, open
    /// uploads) older than --older-than.
    Prune(super::repo_prune::PruneArgs),
    /// Remove stale locks (their holder died or lost the storage); --remove-all removes every lock.
    Unlock(super::repo_unlock::UnlockArgs),
}

/// Arguments of `repo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository: a directory, s3://, gs:// or az:// [default: --repo, LIFEBOAT_REPO].
    #[arg(value_name = "REPO")]
    location: Option<String>,
    /// Encrypt to this age public key (age1...) instead of generating an identity; repeatable.
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    recipient: Vec<String>,
    /// Where to write the generated identity (0600); it must not exist.
    #[arg(
        long,
        value_name = "FILE",
        default_value = DEFAULT_IDENTITY_FILE,
        conflicts_with_all = ["recipient", "insecure_no_encryption"]
    )]
    identity_file: PathBuf,
    /// Store backups unencrypted (they hold every Secret of the cluster): say so explicitly.
    #[arg(long, conflicts_with = "recipient")]
    insecure_no_encryption: bool,
    /// zstd level: 1 keeps pace with etcd on small machines; higher is smaller and slower.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression_level: i32,
    #[command(flatten)]
    repo: RepoFlags,
}

impl RepoCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            RepoCommand::Init(args) => init(args, format).await,
            RepoCommand::Check(args) => super::repo_check::run(args, format).await,
            RepoCommand::Prune(args) => super::repo_prune::run(args, format).await,
            RepoCommand::Unlock(args) => super::repo_unlock::run(args, format).await,
        }
    }
}

/// Writes `text` to a new file, 0600, durably; refuses to replace anything.
fn write_identity(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            if path.exists() {
                format!(
                    "{} already exists; it may be the key of another repository: choose another --identity-file",
                    path.display()
                )
            } else {
                format!("cannot create identity file {}", path.display())
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write identity file {}", path.display()))
}

#[derive(serde::Serialize)]
struct InitReport {
    repo: String,
    id: String,
    encryption: Encryption,
    compression: Compression,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_file: Option<PathBuf>,
}

async fn init(args: InitArgs, format: OutputFormat) -> anyhow::Result<()> {
    let storage = args.repo.storage(args.location.as_deref())?;
    Repository::ensure_absent(&storage).await?;
    let now = SystemTime::now();
    // The identity is written before the repository exists, so no repository ever outlives its key.
    let (encryption, identity_file) = if args.insecure_no_encryption {
        (Encryption::None, None)
    } else if !args.recipient.is_empty() {
        let recipients = args
            .recipient
            .iter()
            .map(|r| parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()?;
        (Encryption::Age { recipients }, None)
    } else {
        let (text, recipient) = generate_identity(&timestamp(now));
        write_identity(&args.identity_file, &text)?;
        (
            Encryption::Age {
                recipients: vec![recipient],
            },
            Some(args.identity_file.clone()),
        )
    };
    let compression = Compression::Zstd {
        level: args.compression_level,
    };
    let repo = match Repository::init(storage, encryption, compression, now).await {
        Ok(repo) => repo,
        Err(error) => {
            if let Some(path) = &identity_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(error.into());
        }
    };
    let config = repo.config();
    let report = InitReport {
        repo: repo.storage().repo().to_string(),
        id: config.id.clone(),
        encryption: config.encryption.clone(),
        compression: config.compression.clone(),
        identity_file,
    };
    print(&report, format)
}

fn print(report: &InitReport, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let encryption = match &report.encryption {
        Encryption::Age { recipients } => format!("age to {}", recipients.join(", ")),
        Encryption::None => "NONE (--insecure-no-encryption)".to_string(),
    };
    let Compression::Zstd { level } = report.compression;
    match format {
        OutputFormat::Json => output::json(&mut out, report)?,
        OutputFormat::Table => output::table(
            &mut out,
            &[
                ("repository", report.repo.clone()),
                ("id", report.id.clone()),
                ("encryption", encryption),
                ("compression", format!("zstd level {level}")),
                (
                    "identity file",
                    report
                        .identity_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
            ],
        )?,
        OutputFormat::Simple => {
            writeln!(
                out,
                "Created repository {} (id {}), encryption: {encryption}, compression: zstd level {level}",
                report.repo, report.id
            )?;
            if let Some(path) = &report.identity_file {
                writeln!(
                    out,
                    "Identity written to {} (0600). Keep a copy somewhere safe and off the nodes that write backups: without it no backup can be read.",
                    path.display()
                )?;
            }
        }
    }
    Ok(())
}
