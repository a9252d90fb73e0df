//! Errors that make a file unreadable as bbolt. Damage inside a readable file is reported as
//! [`crate::Finding`]s instead, all of them.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a file cannot be read as bbolt at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Reading or mapping the file failed.
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    /// A running etcd (or another bbolt writer) holds the file.
    #[error(
        "{path} is locked by a running etcd: reading it now could see a half-written state; take `lifeboat snapshot save` from the live member, or stop it first"
    )]
    Locked { path: String },
    /// No bbolt magic at either meta page.
    #[error("not a bbolt file: no valid meta page ({len} bytes; bbolt files start with magic 0xED0CDAED)")]
    NotBbolt { len: u64 },
    /// The file was written on a big-endian machine (bbolt uses host byte order).
    #[error("bbolt file written on a big-endian machine (s390x?): only little-endian files are supported")]
    BigEndian,
    /// Both meta pages fail validation.
    #[error("both meta pages are invalid: page 0: {meta0}; page 1: {meta1}")]
    NoValidMeta { meta0: String, meta1: String },
    /// The file is shorter than the meta page says.
    #[error("file is truncated: {len} bytes, but the meta page says {pages} pages of {page_size} bytes")]
    Truncated { len: u64, pages: u64, page_size: u32 },
}
