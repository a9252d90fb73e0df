//! `lifeboat snapshot ...`

mod save;

use clap::Subcommand;

use crate::output::OutputFormat;

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from etcd into FILE, checking etcd's sha256 trailer.
    Save(save::SaveArgs),
}

impl SnapshotCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            SnapshotCommand::Save(args) => save::run(args, format).await,
        }
    }
}
