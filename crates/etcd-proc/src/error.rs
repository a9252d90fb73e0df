//! Why an etcd process could not be found, started or reached.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with an etcd process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No etcd binary where it was looked for.
    #[error("no etcd binary: {looked}; give --etcd PATH or set LIFEBOAT_ETCD")]
    NotFound { looked: String },
    /// The binary does not run or does not say its version.
    #[error("{path} is not a usable etcd binary: {reason}; give the etcd server binary with --etcd")]
    NotEtcd { path: PathBuf, reason: String },
    /// etcd's version rules refuse this binary: outside the supported window, or the data's
    /// version may not boot on it (a downgrade, a skipped minor).
    #[error("{path}: {source}; give another etcd binary with --etcd")]
    VersionRule {
        path: PathBuf,
        #[source]
        source: lifeboat_etcd_data::Error,
    },
    /// Starting the process failed.
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Creating or reading a file the process needs.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The process exited while starting.
    #[error("etcd member {name} exited with {status} while starting: {log}")]
    Exited {
        name: String,
        status: String,
        log: String,
    },
    /// The process did not answer a linearizable read in time.
    #[error("etcd member {name} did not serve a linearizable read within {timeout:?}: {log}")]
    NotReady {
        name: String,
        timeout: Duration,
        log: String,
    },
    /// Another server answers on the port picked for this member.
    #[error("another server answers at {url}")]
    PortTaken { url: String },
    /// Reaching the member failed after it started.
    #[error(transparent)]
    Connect(#[from] lifeboat_etcd_conn::Error),
}
