//! Lifeboat's backup repository (format v1, docs/repository.md): plain objects on a local path or
//! an S3-compatible bucket, one manifest per backup written last, artefacts compressed with zstd
//! and encrypted with age. This crate holds the format and the artefact pipeline; the storage
//! side (object_store) and the commands come with the repository issue.
//!
//! Overview of the main types:
//! - [`RepoConfig`], [`Manifest`], [`Artefact`]: the JSON files of the format.
//! - [`BackupId`]: IDs that sort by creation time and need no coordination.
//! - [`Sealer`]: the synchronous write stack plain → sha256 → zstd → age → sha256 → sink.

mod error;
mod format;
mod id;
mod seal;
mod store;

pub use error::{Error, Result};
pub use format::{Artefact, Compression, Encryption, EtcdFacts, FORMAT, Manifest, RepoConfig};
pub use id::BackupId;
pub use seal::{Sealed, Sealer, open_sealed};
pub use store::{Location, S3Settings, Storage};
