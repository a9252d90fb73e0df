//! The bbolt file format (version 2, magic `0xED0CDAED`), read-only, as etcd writes it.
//!
//! Overview of the main types:
//! - [`Db`]: a bbolt image read from a [`Source`]: bytes in memory or mapped from a file
//!   ([`MappedFile`], fastest), or a [`FileSource`] read page by page (smallest); page size taken
//!   from the file, both meta pages validated (FNV-1a) and the current one chosen as bbolt does.
//! - [`Db::walk`]: one depth-first pass over every bucket in key order that calls back with each
//!   entry *and* collects every structural [`Finding`] on the way (pages out of bounds or
//!   reached twice, bad page types, keys out of order, elements outside their page).
//! - [`Db::check`]: [`Db::walk`] plus the freelist rules: the equivalent of bbolt's `Tx.Check`.
//! - [`BucketTail`]: the last key of a bucket, from an image streaming past in page order.
//! - [`BulkWriter`]: writes a fresh, compact file from buckets given in key order.
//!
//! Every integer is decoded explicitly little-endian from bounds-checked slices; a big-endian
//! file is refused by name. Recursion depth, allocations and page visits are bounded by the
//! file's own size, so no input can panic, hang or exhaust memory.
//!
//! ```
//! let err = lifeboat_bbolt::Db::open(&[0u8; 100][..]).unwrap_err();
//! assert!(matches!(err, lifeboat_bbolt::Error::NotBbolt { .. }));
//! ```

mod bytes;
mod check;
mod db;
mod error;
mod file;
mod meta;
mod page;
mod source;
mod stream_tail;
mod walk;
mod write;

pub use check::{Finding, FindingKind};
pub use db::Db;
pub use error::{Error, Result};
pub use file::MappedFile;
pub use meta::{FREELIST_NOT_PERSISTED, MAGIC, Meta};
pub use page::{PAGE_HEADER_SIZE, PageKind};
pub use source::{FileSource, Source};
pub use stream_tail::{BucketTail, StreamTailError};
pub use walk::Entry;
pub use write::{BucketRoot, BucketWriter, BulkWriter, WriteError};

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
