//! etcd's meaning of the bytes it hands out and keeps.
//!
//! Overview of the main types:
//! - [`TrailerCheck`]: consumes a snapshot stream chunk by chunk and, at the end, proves that
//!   etcd's 32-byte SHA-256 trailer matches the bbolt image before it (etcdctl only checks that a
//!   trailer is there).
//! - [`status()`]: hash, revision, total keys, size and storage version exactly as
//!   `etcdutl snapshot status` of the file's etcd minor (3.5 to 3.7; etcdctl for 3.4) computes
//!   them.
//! - [`Version`], [`boot_rule`]: etcd versions, the supported window (3.4 to 3.7) and etcd's
//!   upgrade policy for restored data.
//! - [`verify()`]: trailer, bbolt check and etcd's structure, every finding in a
//!   [`VerifyReport`].
//! - [`hash_kv()`]: etcd's `HashKV` at a revision, compaction rules included.
//! - [`KeyValue`], [`Revision`]: the MVCC records of the `key` bucket.
//! - [`restore`]: a snapshot's backend rewritten for a new cluster (membership, consistent
//!   index, optional revision bump), the WAL segment, the `.snap` file, member and cluster IDs.
//! - [`pitr`]: captured watch events in segments, replayed into a restore at their original
//!   revisions.
//!
//! Synchronous and pure: no I/O, no network.

mod error;
mod hashkv;
mod keyspace;
mod kv;
pub mod pitr;
pub mod restore;
mod status;
mod trailer;
mod verify;
mod version;

pub use error::{Error, Result};
pub use hashkv::{HashKv, HashRules, StoreFacts, StreamedRevision, hash_kv, store_facts};
pub use keyspace::{KeySpace, key_space};
pub use kv::{KeyValue, Revision};
pub use lifeboat_bbolt as bbolt;
pub use status::{SnapshotStatus, StatusRules, main_revision, status};
pub use trailer::{SNAPSHOT_SECTOR_SIZE, TRAILER_LEN, TrailerCheck, VerifiedSnapshot, has_trailer};
pub use verify::{
    Area, REQUIRED_BUCKETS, Trailer, VerifyFinding, VerifyReport, trailer, trusted_trailer, verify,
    verify_structure,
};
pub use version::{NEWEST_SUPPORTED, OLDEST_SUPPORTED, Version, boot_rule};
