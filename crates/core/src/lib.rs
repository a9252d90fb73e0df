//! Lifeboat's use cases, shared by the CLI and (later) the agent.
//!
//! Overview of the main types:
//! - [`snapshot_save::save`] with [`snapshot_save::SaveOptions`]: stream etcd's snapshot into a
//!   file that exists only once complete and hash-checked; returns a [`snapshot_save::SaveReport`].
//! - [`snapshot_file`]: status and verify of a snapshot file, mapped read-only.
//! - [`snapshot_restore`]: a member data directory etcd 3.4/3.5 boot, without etcdutl.
//! - [`backup::backup`]: a snapshot streamed into a repository, manifest last.
//! - [`backups`]: verify stored backups, restore one into a member data directory.
//! - [`drill::drill`]: a backup fetched, verified, restored and booted on a throwaway etcd, checked
//!   against the member it came from, with each phase timed and the RTO measured.
//! - [`retention`] (pure, restic's rules) and [`forget`]: which backups a policy keeps.
//! - [`repo_check`]: what a repository holds that no manifest accounts for, and pruning it.
//! - [`copy`]: the backups another repository lacks, checked there before they exist.
//! - [`stream`]: a command's output (pg_dump and the like) as a backup.
//! - [`files`]: the control plane's files (PKI, kubeconfigs, manifests) as a tar backup, and back;
//!   [`certs`]: every certificate among them with its days left.
//! - [`capture::capture`]: a whole-keyspace watch sealed into segments; [`pitr`]: restorable
//!   ranges, and a restore to any revision or time in them.
//! - [`Progress`]: how long operations report bytes done; the CLI draws a bar from it.
//! - [`Cancel`]: how every long operation is stopped; it then removes what it started.
//! - [`fsio`]: the temp-name, fsync, rename discipline every written artefact follows.
//!
//! Nothing here prints, reads the environment or exits. Every operation's future is `Send` (an
//! agent spawns them as tasks); CPU-heavy work runs on tokio's blocking pool.

pub mod backup;
pub mod backups;
pub mod blocking;
mod cancel;
pub mod capture;
mod capture_upload;
pub mod certs;
pub mod copy;
pub mod drill;
mod drill_report;
mod drill_sweep;
mod drill_tls;
mod error;
pub mod files;
pub mod forget;
pub mod fsio;
pub mod k8s_objects;
pub mod pitr;
pub mod pitr_compact;
pub mod private_file;
mod progress;
pub mod readyz;
pub mod repo_check;
pub mod retention;
pub mod revision_gap;
pub mod snapshot_file;
pub mod snapshot_restore;
pub mod snapshot_save;
pub mod stream;

pub use cancel::{Cancel, LEADERSHIP_LOST};
pub use error::{Error, Result};
pub use progress::{NoProgress, Progress};
