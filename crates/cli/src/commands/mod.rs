//! One file per command.

mod agent;
mod backup;
mod backups;
mod capture;
mod certs;
mod copy;
pub(crate) mod drill;
pub(crate) mod drills;
mod dump;
mod forget;
mod k8s;
pub mod pitr;
mod recover;
mod repo;
mod repo_check;
mod repo_prune;
mod repo_unlock;
pub mod restore;
mod restore_files;
mod snapshot;

use clap::Subcommand;

use crate::output::OutputFormat;

/// Lifeboat's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Single-file snapshots, etcdctl-compatible.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Backup repositories on a local path, S3, Google Cloud Storage or Azure Blob Storage.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Back up etcd into a repository (checked, compressed, encrypted); --files: the control
    /// plane's files; --stream: a command's output.
    Backup(Box<backup::BackupArgs>),
    /// The backups in a repository: list, show, verify, delete.
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
    /// Restore a backup into a member data directory, or with --to-revision/--to-time a point
    /// in time (a base backup plus captured segments).
    Restore(Box<restore::RestoreArgs>),
    /// Capture every change of etcd into the repository, sealed every second, for point-in-time
    /// recovery (until SIGINT/SIGTERM).
    Capture(Box<capture::CaptureArgs>),
    /// Point-in-time recovery: the restorable ranges.
    #[command(subcommand)]
    Pitr(pitr::PitrCommand),
    /// Remove backups a retention policy does not keep (restic's --keep-* rules).
    Forget(Box<forget::ForgetArgs>),
    /// Copy the backups other repositories lack (other regions or providers), checked there.
    Copy(Box<copy::CopyArgs>),
    /// Write one artefact of a backup (a pg_dump, say) to stdout.
    Dump(Box<dump::DumpArgs>),
    /// Put a files backup (PKI, kubeconfigs, manifests) into a directory, modes intact.
    RestoreFiles(Box<restore_files::RestoreFilesArgs>),
    /// Prove a backup restores: fetch, verify, restore and boot it on a throwaway etcd, check it
    /// against the member it came from, and measure the recovery time (exit 1 failed, 2 could not
    /// run).
    Drill(Box<drill::DrillArgs>),
    /// The drills run so far, kept in the repository: list, show.
    #[command(subcommand)]
    Drills(drills::DrillsCommand),
    /// Every control-plane certificate with its expiry; exit 1 if any needs renewing.
    Certs(Box<certs::CertsArgs>),
    /// Recover a kubeadm control-plane node from a backup: the restore runbook as one resumable
    /// command (plan, preflight, safety copies, stop, restore with a revision bump, start in
    /// order; --abort rolls back; exit 3 when the API server is not confirmed).
    Recover(Box<recover::RecoverArgs>),
    /// Kubernetes objects read offline from a backup or a snapshot file: ls, get, decode.
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
    /// Run the agent: scheduled backups, copies, retention, drills and certificate checks, with
    /// Prometheus metrics and a status page (docs/agent.md).
    Agent(Box<agent::AgentArgs>),
}

impl Command {
    /// Whether this command runs as a long-lived service (its logs differ).
    pub fn is_service(&self) -> bool {
        matches!(self, Command::Agent(_))
    }

    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            Command::Snapshot(command) => command.run(format).await,
            Command::Repo(command) => command.run(format).await,
            Command::Backup(args) => backup::run(*args, format).await,
            Command::Backups(command) => command.run(format).await,
            Command::Restore(args) => restore::run(*args, format).await,
            Command::Capture(args) => capture::run(*args, format).await,
            Command::Pitr(command) => command.run(format).await,
            Command::Forget(args) => forget::run(*args, format).await,
            Command::Copy(args) => copy::run(*args, format).await,
            Command::Dump(args) => dump::run(*args, format).await,
            Command::RestoreFiles(args) => restore_files::run(*args, format).await,
            Command::Certs(args) => certs::run(*args, format).await,
            Command::Drill(args) => drill::run(*args, format).await,
            Command::Drills(command) => command.run(format).await,
            Command::K8s(command) => command.run(format).await,
            Command::Agent(args) => agent::run(*args, format).await,
            Command::Recover(args) => recover::run_command(*args, format).await,
        }
    }
}

/// This machine's name, as manifests record it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
