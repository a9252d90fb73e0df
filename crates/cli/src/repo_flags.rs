//! Where the repository is (`--repo`, `LIFEBOAT_REPO`), how to reach cloud storage (the `AWS_*`,
//! `GOOGLE_*` and `AZURE_*` variables, or flags), and the age identity that opens backups
//! (`--identity-file`, `LIFEBOAT_IDENTITY_FILE`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use lifeboat_repo::{BackupId, Identity, Location, Repository, Storage, StorageSettings, parse_identities};

/// The repository and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct RepoFlags {
    /// The repository: a local directory, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix.
    #[arg(long, env = "LIFEBOAT_REPO", value_name = "REPO")]
    repo: Option<String>,
    #[command(flatten)]
    s3: S3Flags,
}

/// How to reach S3-compatible storage.
#[derive(Debug, Clone, Args)]
pub struct S3Flags {
    /// S3 endpoint URL for S3-compatible stores (path-style addressing is used with it).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// S3 access key ID.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "ID", hide_env_values = true)]
    s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the variable: flags show in the process list).
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    s3_secret_access_key: Option<String>,
    /// Allow plain http to an S3 endpoint that is not on this host (loopback is always allowed).
    #[arg(long)]
    s3_allow_http: bool,
    /// Every other `AWS_*`, `GOOGLE_*` and `AZURE_*` variable (session token, web identity,
    /// container credentials, service accounts, account keys, workload identity, endpoints),
    /// handed to object_store as each provider's tools would read them.
    #[arg(skip = cloud_environment())]
    s3_config: Vec<(String, String)>,
}

/// Cloud variables as object_store configuration keys (`AWS_SESSION_TOKEN` →
/// `aws_session_token`, `GOOGLE_SERVICE_ACCOUNT` → `google_service_account`, ...).
fn cloud_environment() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(key, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| key.starts_with(p)))
        .map(|(key, value)| (key.to_ascii_lowercase(), value))
        .collect()
}

impl RepoFlags {
    /// The storage of `positional` (a command's REPO argument) or of `--repo`.
    pub fn storage(&self, positional: Option<&str>) -> anyhow::Result<Storage> {
        let Some(repo) = positional.or(self.repo.as_deref()) else {
            bail!(
                "no repository given: pass --repo REPO (a directory, s3://, gs:// or az://) or set LIFEBOAT_REPO"
            );
        };
        self.s3.storage(repo)
    }

    /// Opens the repository of `--repo`.
    pub async fn open(&self) -> anyhow::Result<Repository> {
        Ok(Repository::open(self.storage(None)?).await?)
    }
}

/// The settings the CLI would read from the environment alone (for the agent).
#[derive(Debug, clap::Parser)]
struct EnvironmentOnly {
    #[command(flatten)]
    s3: S3Flags,
    #[command(flatten)]
    to_s3: TargetS3Flags,
}

impl S3Flags {
    /// The source and target settings the environment gives, read exactly as the CLI reads them.
    pub fn from_environment() -> anyhow::Result<(S3Flags, TargetS3Flags)> {
        let parsed = <EnvironmentOnly as clap::Parser>::try_parse_from(["lifeboat"])
            .context("the AWS_* or LIFEBOAT_TO_AWS_* environment variables are not valid")?;
        Ok((parsed.s3, parsed.to_s3))
    }

    /// These settings with the keys replaced where given.
    pub fn with_keys(&self, access_key_id: Option<String>, secret_access_key: Option<String>) -> Self {
        let replaced = access_key_id.is_some();
        S3Flags {
            s3_access_key_id: access_key_id.or_else(|| self.s3_access_key_id.clone()),
            s3_secret_access_key: secret_access_key.or_else(|| self.s3_secret_access_key.clone()),
            // A session token of other keys must not sign for these.
            s3_config: match replaced {
                true => Vec::new(),
                false => self.s3_config.clone(),
            },
            ..self.clone()
        }
    }

    /// The storage at `repo` (a directory, s3://, gs:// or az://).
    pub fn storage(&self, repo: &str) -> anyhow::Result<Storage> {
        let location = Location::parse(repo)?;
        let settings = StorageSettings {
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            region: self.s3_region.clone(),
            endpoint: self.s3_endpoint.clone(),
            allow_http: self.s3_allow_http,
            config: self.s3_config.clone(),
        };
        Ok(Storage::open(&location, &settings)?)
    }
}

/// How `copy` reaches its targets when they live with another provider; each setting not given
/// falls back to the source's (`AWS_*`, `--s3-*`).
#[derive(Debug, Clone, Args)]
pub struct TargetS3Flags {
    /// S3 endpoint URL of the targets.
    #[arg(long, env = "LIFEBOAT_TO_AWS_ENDPOINT_URL", value_name = "URL")]
    to_s3_endpoint: Option<String>,
    /// S3 region of the targets.
    #[arg(long, env = "LIFEBOAT_TO_AWS_REGION", value_name = "REGION")]
    to_s3_region: Option<String>,
    /// S3 access key ID for the targets.
    #[arg(
        long,
        env = "LIFEBOAT_TO_AWS_ACCESS_KEY_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    to_s3_access_key_id: Option<String>,
    /// S3 secret access key for the targets (prefer the variable).
    #[arg(
        long,
        env = "LIFEBOAT_TO_AWS_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    to_s3_secret_access_key: Option<String>,
}

impl TargetS3Flags {
    /// The targets' settings: these flags over the source's.
    pub fn over(&self, source: &S3Flags) -> S3Flags {
        S3Flags {
            s3_endpoint: self.to_s3_endpoint.clone().or_else(|| source.s3_endpoint.clone()),
            s3_region: self.to_s3_region.clone().or_else(|| source.s3_region.clone()),
            s3_access_key_id: self
                .to_s3_access_key_id
                .clone()
                .or_else(|| source.s3_access_key_id.clone()),
            s3_secret_access_key: self
                .to_s3_secret_access_key
                .clone()
                .or_else(|| source.s3_secret_access_key.clone()),
            s3_allow_http: source.s3_allow_http,
            // Other credentials of the source (a session token, say) must not sign for the
            // targets' own keys.
            s3_config: match self.to_s3_access_key_id {
                Some(_) => Vec::new(),
                None => source.s3_config.clone(),
            },
        }
    }
}

/// The key that decrypts backups.
#[derive(Debug, Clone, Args)]
pub struct IdentityFlags {
    /// age identity file that decrypts the repository's backups (written by `repo init`).
    #[arg(long, env = "LIFEBOAT_IDENTITY_FILE", value_name = "FILE")]
    identity_file: Option<PathBuf>,
}

impl IdentityFlags {
    pub fn at(identity_file: Option<PathBuf>) -> Self {
        Self { identity_file }
    }

    /// The identities, or an empty list when none was given (enough for an unencrypted repository).
    pub fn load(&self) -> anyhow::Result<Vec<Identity>> {
        let Some(path) = &self.identity_file else {
            return Ok(Vec::new());
        };
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "identity file {} is readable by others (mode {mode:04o}); it opens every backup: chmod 600 it",
                    path.display()
                );
            }
        }
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read identity file {}; give the file `lifeboat repo init` wrote",
                path.display()
            )
        })?;
        Ok(parse_identities(&path.display().to_string(), &text)?)
    }

    /// Like [`IdentityFlags::load`], but an encrypted repository without an identity is refused
    /// before anything is read.
    pub fn require_for(&self, repo: &Repository) -> anyhow::Result<Vec<Identity>> {
        let identities = self.load()?;
        let encrypted = matches!(repo.config().encryption, lifeboat_repo::Encryption::Age { .. });
        if encrypted && identities.is_empty() {
            bail!(
                "{} is encrypted: give --identity-file FILE (or LIFEBOAT_IDENTITY_FILE), the identity `lifeboat repo init` wrote",
                repo.storage().repo()
            );
        }
        Ok(identities)
    }
}

/// A backup ID as given on the command line, or `latest`: the newest backup of `kind` (`etcd`,
/// `files`, `stream`), or of any kind when `None`.
pub async fn resolve_id(repo: &Repository, text: &str, kind: Option<&str>) -> anyhow::Result<BackupId> {
    if text == "latest" {
        let backups = repo.list().await?.backups;
        let Some(newest) = backups.iter().rev().find(|m| kind.is_none_or(|k| m.kind == k)) else {
            bail!(
                "{} has no {}backups yet; run `lifeboat backup{}` first",
                repo.storage().repo(),
                kind.map(|k| format!("{k} ")).unwrap_or_default(),
                if kind == Some("files") { " --files" } else { "" }
            );
        };
        return Ok(newest.id.clone());
    }
    BackupId::parse(text).with_context(|| {
        format!(
            "{text:?} is not a backup ID (like 20261124T220000.000Z-0123456789abcdef) or `latest`; `lifeboat backups list` shows them"
        )
    })
}
