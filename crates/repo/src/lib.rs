//! Lifeboat's backup repository (format v1, docs/repository.md): plain objects on a local path or
//! an S3-compatible bucket, one manifest per backup written last, artefacts compressed with zstd
//! and encrypted with age. The `backup`/`restore` commands that use it are still to come.
//!
//! Overview of the main types:
//! - [`Repository`]: init/open, list, manifests (written last, deleted first), orphans.
//! - [`Storage`], [`Location`]: a local directory or `s3://bucket/prefix` through object_store.
//! - [`RepoConfig`], [`Manifest`], [`Artefact`]: the JSON files of the format.
//! - [`BackupId`]: IDs that sort by creation time and need no coordination.
//! - [`Sealer`]: the synchronous write stack plain → sha256 → zstd → age → sha256 → sink.

mod artefact;
mod error;
mod format;
mod id;
mod repository;
mod seal;
mod store;

pub use artefact::ArtefactWriter;
pub use error::{Error, Result};
pub use format::{Artefact, Compression, Encryption, EtcdFacts, FORMAT, Manifest, RepoConfig};
pub use id::BackupId;
pub use repository::{CONFIG_KEY, Repository, timestamp};
pub use seal::{Sealed, Sealer, open_sealed};
pub use store::{Location, PART_SIZE, S3Settings, Storage, Upload};
