//! Errors of the repository: each names the repository or object, the cause and the way out.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JSON file of the format is malformed.
    #[error("{object}: not a valid {what}: {message}")]
    Format {
        object: String,
        what: &'static str,
        message: String,
    },
    /// A repository of a format version this build does not know.
    #[error(
        "{object}: repository format {found} is not supported (this lifeboat reads format {supported}); upgrade lifeboat"
    )]
    UnsupportedFormat {
        object: String,
        found: u32,
        supported: u32,
    },
    /// An age recipient or identity that does not parse.
    #[error("{what} is not a valid age {kind}; expected {expected}")]
    BadKey {
        what: String,
        kind: &'static str,
        expected: &'static str,
    },
    /// Encryption or decryption failed (wrong identity, damaged or truncated object).
    #[error("cannot decrypt {object}: {message}; check --identity-file is the key of this repository")]
    Decrypt { object: String, message: String },
    /// Compression or decompression failed.
    #[error("{object}: zstd: {message}")]
    Compression { object: String, message: String },
    /// The repository location cannot be used.
    #[error("repository {repo}: {reason}")]
    Location { repo: String, reason: String },
    /// A storage request failed.
    #[error("repository {repo}, object {key}: {message}")]
    Storage {
        repo: String,
        key: String,
        message: String,
    },
    /// `repo init` on a location that has a repository.
    #[error("{repo} already holds a lifeboat repository; use it, or init another location")]
    AlreadyInitialized { repo: String },
    /// No repository at the location.
    #[error(
        "{repo} is not a lifeboat repository (no lifeboat-repo.json); run `lifeboat repo init {repo}` first"
    )]
    NotARepository { repo: String },
    /// No backup with that ID.
    #[error("{repo} has no backup {id}; `lifeboat backups list` shows the IDs")]
    NoSuchBackup { repo: String, id: String },
    /// Another process holds a lock in the way.
    #[error(
        "{repo} is locked by {holder}; wait for it to finish, or run `lifeboat repo unlock` if that process is gone"
    )]
    Locked { repo: String, holder: String },
    /// A held lock stopped holding; what it guarded was not committed.
    #[error("the lock on {repo} was lost: {reason}; nothing more was committed, run the command again")]
    LockLost { repo: String, reason: String },
    /// A backup of that ID exists already (a concurrent copy committed it first).
    #[error("{repo} already has backup {id}; nothing of it was written again")]
    BackupExists { repo: String, id: String },
    /// An object a manifest names is not in the repository.
    #[error("repository {repo}: object {key} is missing; the backup that names it is damaged")]
    MissingObject { repo: String, key: String },
    /// A manifest that does not belong where it was found (planted or damaged); never followed.
    #[error(
        "{object} is not trusted: {reason}; it is ignored (`lifeboat repo check` lists such manifests; remove it)"
    )]
    Forged { object: String, reason: String },
    /// An artefact name that cannot be used.
    #[error("{name:?} cannot name an artefact: {reason}")]
    ArtefactName { name: String, reason: &'static str },
    /// An object, or what it decompresses to, passes the size its manifest records (or, for a
    /// manifest or record, [`crate::SMALL_OBJECT_MAX`]): damaged or crafted, it is not read on.
    #[error(
        "{object}: its {what} passes {limit} bytes, the most it may have; it is damaged or crafted and is not read further (`lifeboat repo check` checks the repository)"
    )]
    TooLarge {
        object: String,
        what: &'static str,
        limit: u64,
    },
    /// Writing to the sink failed.
    #[error("{object}: {source}")]
    Io { object: String, source: std::io::Error },
}
