//! Errors of a recovery: each names the step or file, the cause, and the way out.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a recovery, or the choice of what it restores, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A step could not be carried out; the journal says where the run stands.
    #[error("recover: {step}: {message}")]
    Recovery { step: &'static str, message: String },
    /// A backup that is not for this node, or flags that cannot work together.
    #[error("{message}")]
    Refused { message: String },
    /// A use case of the core (snapshot save and restore, files, cancellation) or a file of
    /// the node failed.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] lifeboat_repo::Error),
    /// The node's kubeadm files cannot be read as a recovery needs them.
    #[error(transparent)]
    Kubeadm(#[from] lifeboat_kubeadm::Error),
}

impl Error {
    /// The signal that interrupted the run, if one did.
    pub fn interrupted_by(&self) -> Option<&'static str> {
        match self {
            Error::Core(lifeboat_core::Error::Interrupted { signal }) => Some(signal),
            _ => None,
        }
    }
}
