//! `lifeboat snapshot ...`

mod hashkv;
pub mod restore;
mod save;
mod status;
mod verify;

use clap::Subcommand;

use crate::output::OutputFormat;

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from etcd into FILE, checking etcd's sha256 trailer.
    Save(Box<save::SaveArgs>),
    /// Write a member data directory from a snapshot, as etcdutl does (etcd 3.4 and 3.5 boot it).
    Restore(Box<restore::RestoreArgs>),
    /// etcd's HashKV of a snapshot file (what `etcdctl endpoint hashkv` says of the member), natively.
    Hashkv(hashkv::HashkvArgs),
    /// Hash, revision, total keys and size of a snapshot file, as etcdutl computes them.
    Status(status::StatusArgs),
    /// Check a snapshot file: sha256 trailer, bbolt structure, etcd structure; every finding.
    Verify(verify::VerifyArgs),
}

impl SnapshotCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            SnapshotCommand::Save(args) => save::run(*args, format).await,
            SnapshotCommand::Restore(args) => restore::run(*args, format),
            SnapshotCommand::Status(args) => status::run(args, format),
            SnapshotCommand::Hashkv(args) => hashkv::run(args, format),
            SnapshotCommand::Verify(args) => verify::run(args, format),
        }
    }
}
