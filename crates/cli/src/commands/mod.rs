//! One file per command.

mod snapshot;

use clap::Subcommand;

use crate::output::OutputFormat;

/// Lifeboat's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Single-file snapshots, etcdctl-compatible.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

impl Command {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            Command::Snapshot(command) => command.run(format).await,
        }
    }
}
