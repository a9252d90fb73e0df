//! Real etcd processes: find the binary and its version, start a member on loopback at free
//! ports, wait for its first linearizable read, and stop it (also when dropped).
//!
//! Overview of the main types:
//! - [`EtcdBinary`]: an `etcd` executable with the version it reports; applies etcd's upgrade
//!   policy to the data it would boot (never down, one minor at a time).
//! - [`Launch`]: everything one member needs on its command line.
//! - [`EtcdProcess`]: a running member, killed and reaped on drop; its log is kept for errors.
//!
//! Never passes the caller's `ETCD_*`/`ETCDCTL_*` variables on: etcd reads every `ETCD_*` as a
//! flag (and 3.5 aborts on a clash).

mod binary;
mod error;
mod process;

pub use binary::EtcdBinary;
pub use error::{Error, Result};
pub use lifeboat_etcd_data::Version;
pub use process::{EtcdProcess, InitialCluster, Launch, ServerTls, clear_etcd_env, free_port};
