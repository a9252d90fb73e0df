//! `lifeboat backups ...`: the backups in a repository.

mod delete;
mod list;
mod show;
mod verify;

use clap::Subcommand;

use crate::output::OutputFormat;

/// `backups` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// List the backups, oldest first (needs no identity).
    List(list::ListArgs),
    /// Show one backup's manifest.
    Show(show::ShowArgs),
    /// Re-read stored objects and check their sha256; --read-data also decrypts and verifies.
    Verify(verify::VerifyArgs),
    /// Delete backups: the manifest first, then the data.
    Delete(delete::DeleteArgs),
}

impl BackupsCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            BackupsCommand::List(args) => list::run(args, format).await,
            BackupsCommand::Show(args) => show::run(args, format).await,
            BackupsCommand::Verify(args) => verify::run(args, format).await,
            BackupsCommand::Delete(args) => delete::run(args, format).await,
        }
    }
}
