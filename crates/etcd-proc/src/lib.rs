//! Real etcd processes: find the binary and its version, start a member on loopback at free
//! ports, wait for its first linearizable read, and stop it (also when dropped).
//!
//! Overview of the main types:
//! - [`EtcdBinary`]: an `etcd` executable with the version it reports; refuses to run data of a
//!   newer minor version (etcd cannot downgrade its storage).
//! - [`Launch`]: everything one member needs on its command line.
//! - [`EtcdProcess`]: a running member, killed and reaped on drop; its log is kept for errors.
//!
//! Never passes the caller's `ETCD_*`/`ETCDCTL_*` variables on: etcd reads every `ETCD_*` as a
//! flag (and 3.5 aborts on a clash).

mod binary;
mod error;
mod process;

pub use binary::{EtcdBinary, Version};
pub use error::{Error, Result};
pub use process::{EtcdProcess, InitialCluster, Launch, ServerTls, clear_etcd_env, free_port};
