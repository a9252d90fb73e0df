//! Errors of the use cases: each names the file or endpoint, the cause, and the way out.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Stopped by a signal; what was half done has been removed.
    #[error("interrupted by {signal}; nothing was left behind")]
    Interrupted { signal: &'static str },
    /// A stored backup does not match its manifest.
    #[error(
        "backup {id} in {repo} is damaged: {object}: {finding}; restore another backup (`lifeboat backups list`)"
    )]
    BackupDamaged {
        repo: String,
        id: String,
        object: String,
        finding: String,
    },
    /// The command of `backup --stream` failed; no backup was made.
    #[error("`{command}` failed ({status}); no backup was made (its own messages are above)")]
    CommandFailed {
        command: String,
        status: std::process::ExitStatus,
    },
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] lifeboat_repo::Error),
    /// Talking to etcd failed.
    #[error(transparent)]
    Etcd(#[from] lifeboat_etcd_conn::Error),
    /// Finding, starting or stopping an etcd process failed.
    #[error(transparent)]
    Proc(#[from] lifeboat_etcd_proc::Error),
    /// The target exists and overwriting was not asked for.
    #[error("{path} already exists; choose another name or pass --force to replace it")]
    Exists { path: PathBuf },
    /// The device filled up.
    #[error(
        "no space left on the device of {path} after {written} bytes; free space there or write elsewhere"
    )]
    DiskFull { path: PathBuf, written: u64 },
    /// Another file-system failure.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A drill's own certificates could not be made.
    #[error("cannot make the drill's TLS certificates: {reason}")]
    DrillTls { reason: String },
    /// Flags that cannot work together, or a target that must not be touched.
    #[error("{message}")]
    Usage { message: String },
    /// An etcd version outside the supported window, or one etcd's policy does not boot.
    #[error(transparent)]
    EtcdVersion(lifeboat_etcd_data::Error),
    /// A snapshot file cannot be read or is damaged.
    #[error("{}", named(path, source))]
    SnapshotFile {
        path: PathBuf,
        source: lifeboat_etcd_data::Error,
    },
    /// etcd's stream did not end with a matching sha256 trailer, or its image is damaged.
    #[error("snapshot from {endpoint} is damaged or incomplete: {source}; nothing was saved, try again")]
    Snapshot {
        endpoint: String,
        source: lifeboat_etcd_data::Error,
    },
}

/// `source`, prefixed with the file unless it names it already (each cause said once).
fn named(path: &std::path::Path, source: &lifeboat_etcd_data::Error) -> String {
    let message = source.to_string();
    let path = path.display().to_string();
    match message.contains(&path) {
        true => message,
        false => format!("{path}: {message}"),
    }
}
