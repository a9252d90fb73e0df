//! etcd's meaning of the bytes it hands out and keeps.
//!
//! Overview of the main types:
//! - [`TrailerCheck`]: consumes a snapshot stream chunk by chunk and, at the end, proves that
//!   etcd's 32-byte SHA-256 trailer matches the bbolt image before it (etcdctl only checks that a
//!   trailer is there).
//!
//! Synchronous and pure: no I/O, no network.

mod error;
mod trailer;

pub use error::{Error, Result};
pub use trailer::{SNAPSHOT_SECTOR_SIZE, TRAILER_LEN, TrailerCheck, VerifiedSnapshot};
