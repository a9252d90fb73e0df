//! Errors of this crate: facts a caller can act on, with the numbers that prove them.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with etcd data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream is too short or of a size that cannot hold an image plus trailer.
    #[error(
        "no sha256 trailer: {len} bytes is not a bbolt image plus 32 bytes (size % 512 = {remainder}, expected 32)"
    )]
    TrailerMissing { len: u64, remainder: u64 },
    /// The trailer does not match the image: the snapshot was damaged in transit or at rest.
    #[error("sha256 trailer mismatch: trailer says {expected}, image hashes to {actual}")]
    TrailerMismatch { expected: String, actual: String },
    /// The file is not readable as bbolt.
    #[error(transparent)]
    Bbolt(#[from] lifeboat_bbolt::Error),
    /// A streamed image whose tree could not be followed.
    #[error(transparent)]
    StreamTail(#[from] lifeboat_bbolt::StreamTailError),
    /// The bbolt consistency check found problems.
    #[error(
        "integrity check failed: {count} findings (first: {first}); `lifeboat snapshot verify` lists them all"
    )]
    Integrity { count: usize, first: String },
    /// An entry of the root bucket is not a bucket.
    #[error("top-level entry {name:?} is not a bucket")]
    NotABucket { name: String },
    /// A peer URL etcd would refuse.
    #[error("peer URL {url:?} is not usable: {reason}")]
    BadPeerUrl { url: String, reason: String },
    /// An `--initial-cluster` entry that is not `name=url`.
    #[error("--initial-cluster entry {part:?} is not name=scheme://host:port")]
    BadInitialCluster { part: String },
    /// Two members with the same peer URLs.
    #[error("member {name:?} has the same peer URLs as another member; each member needs its own")]
    DuplicateMember { name: String },
    /// `--name` missing from `--initial-cluster`.
    #[error("--name {name:?} does not appear in --initial-cluster")]
    NameNotInCluster { name: String },
    /// `--initial-advertise-peer-urls` differ from the member's URLs in `--initial-cluster`.
    #[error(
        "--initial-advertise-peer-urls {advertised} differ from {cluster}, the URLs --initial-cluster gives member {name:?}"
    )]
    AdvertisedUrlsDiffer {
        name: String,
        advertised: String,
        cluster: String,
    },
    /// The snapshot holds buckets inside buckets, which etcd never writes.
    #[error("bucket {bucket:?} holds nested buckets; this is not an etcd snapshot")]
    NestedBucket { bucket: String },
    /// Writing the new data directory failed.
    #[error(transparent)]
    Write(#[from] lifeboat_bbolt::WriteError),
    /// A `key`-bucket key too short to hold a revision.
    #[error("key bucket entry {key} is not a revision")]
    BadRevisionKey { key: String },
    /// A `key`-bucket value that is not a `mvccpb.KeyValue`.
    #[error("key bucket entry {key} does not hold a KeyValue record")]
    BadKeyValue { key: String },
    /// A HashKV asked at or below the compact revision, as etcd refuses it.
    #[error("revision {revision} is compacted (compact revision {compact}); ask for a later revision")]
    Compacted { revision: i64, compact: i64 },
    /// A HashKV asked beyond the data.
    #[error("revision {revision} is beyond the data (current revision {current})")]
    FutureRevision { revision: i64, current: i64 },
    /// A compact revision below the file's own: the file no longer holds what it would hash.
    #[error("compact revision {given} is below the file's own ({file}); give {file} or more")]
    CompactBelowFile { given: i64, file: i64 },
    /// A version outside the window Lifeboat was built and tested for.
    #[error(
        "{what} is etcd {version}, outside the versions Lifeboat supports (3.4 to 3.7); use a Lifeboat release that supports it"
    )]
    UnsupportedVersion { what: String, version: String },
    /// Data of a newer minor than the binary that would boot it.
    #[error(
        "data written by etcd {data} cannot run on etcd {binary} (etcd cannot downgrade data); use etcd {data_minor} or newer"
    )]
    DowngradeRefused {
        data: String,
        binary: String,
        data_minor: String,
    },
    /// Data two or more minors older than the binary.
    #[error(
        "data written by etcd {data} cannot boot on etcd {binary}: etcd upgrades one minor at a time; use etcd {next_minor}"
    )]
    MinorSkipRefused {
        data: String,
        binary: String,
        next_minor: String,
    },
    /// A bbolt file without etcd's `key` bucket.
    #[error(
        "a bbolt file, but not an etcd database: it has no \"key\" bucket; give an etcd snapshot or a member's member/snap/db"
    )]
    NotEtcd,
    /// A segment of captured events that cannot be replayed.
    #[error("segment is damaged: {reason}")]
    BadSegment { reason: String },
    /// The captured segments a replay reads could not be read.
    #[error("the captured segments could not be read: {message}")]
    ReplaySource { message: String },
    /// Captured events that do not follow the base snapshot.
    #[error(
        "the replay starts at revision {first}, but the base snapshot is at revision {base}; events must follow the base"
    )]
    ReplayOrder { base: i64, first: i64 },
    /// `snapshot status` cannot tell which etcdutl's figures to give.
    #[error("cannot tell which etcd's status to reproduce: {reason}; give --etcd-version")]
    StatusRulesUnknown { reason: String },
}
