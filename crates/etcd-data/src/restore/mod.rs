//! Restore: a snapshot's backend rewritten for a new cluster, plus the raft files a member
//! needs to boot from it (spec §5). What etcdutl does, without etcdutl.

mod backend;
mod members;
mod raft;

pub use backend::{BackendReport, rewrite_backend};
pub use members::{Cluster, Member, cluster_id, member_id, normalize_url};
pub use raft::{RaftEncoding, member_json, snap_file, v2_store_json, wal_metadata, wal_segment};
