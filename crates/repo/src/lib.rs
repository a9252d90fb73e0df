//! Lifeboat's backup repository (format v1, docs/repository.md): plain objects on a local path or
//! an S3-compatible bucket, one manifest per backup written last, artefacts compressed with zstd
//! and encrypted with age.
//!
//! Overview of the main types:
//! - [`Repository`]: init/open, list, manifests (written last, deleted first), orphans.
//! - [`Storage`], [`Location`]: a local directory or `s3://bucket/prefix` through object_store.
//! - [`RepoConfig`], [`Manifest`], [`Artefact`]: the JSON files of the format.
//! - [`BackupId`]: IDs that sort by creation time and need no coordination.
//! - [`NewBackup`]: the write transaction every backup goes through (keys derived, uploads
//!   aborted unless committed, manifest last).
//! - [`RepoLock`]: shared and exclusive repository locks (restic's protocol), refreshed while held.
//! - [`SegmentManifest`], [`GapRecord`]: point-in-time recovery's captured segments and gaps.
//! - [`Sealer`]: the synchronous write stack plain → sha256 → zstd → age → sha256 → sink.

mod error;
mod format;
mod id;
mod keys;
mod locks;
mod new_backup;
mod open_uploads;
mod read;
mod repository;
mod seal;
mod segments;
mod store;

pub use age::x25519::Identity;
pub use error::{Error, Result};
pub use format::{
    Artefact, Compression, Encryption, EtcdFacts, FORMAT, HashKvRecord, KINDS, MAX_CLOCK_SKEW, Manifest,
    RepoConfig, artefact_key, check_artefact_name, manifest_key, unchanged_key,
};
pub use id::BackupId;
pub use keys::{generate_identity, parse_identities, parse_recipient};
pub use locks::{LOCK_REFRESH, LOCK_VALIDITY, LockKind, LockRecord, LockTiming, RepoLock, StoredLock};
pub use new_backup::{Description, NewBackup};
pub use open_uploads::OpenUpload;
pub use read::ReadBack;
pub use repository::{CONFIG_KEY, Listing, ManifestCache, Repository, timestamp};
pub use seal::{Sealed, Sealer, open_sealed};
pub use segments::{GapRecord, SEGMENTS, SegmentFacts, SegmentListing, SegmentManifest, SegmentRange};
pub use store::{
    Download, Location, PART_SIZE, SMALL_OBJECT_MAX, Storage, StorageSettings, StoredObject, Upload,
};
