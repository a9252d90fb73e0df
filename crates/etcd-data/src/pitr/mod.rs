//! Point-in-time recovery: what a whole-keyspace watch delivered, kept per revision in sealed
//! segments, and its replay into a restored backend with the original revisions, sub-revisions,
//! tombstones and leases (docs/pitr.md).

mod replay;
mod segment;

pub(crate) use replay::Replayer;
pub use replay::{Replay, ReplayChunk, ReplayReport};
pub use segment::{CapturedEvent, CapturedRevision, LeaseTtl, SegmentBody};
