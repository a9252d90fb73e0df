//! The only crate that talks to a live etcd.
//!
//! Overview of the main types:
//! - [`ConnectOptions`]: what etcdctl's connection flags say (endpoints, TLS files, user,
//!   timeouts), already resolved by the caller.
//! - [`connect_first_healthy`]: tries the endpoints in order and returns the first [`Member`] that
//!   answers Status, with every other endpoint's failure kept for the error.
//! - [`Member`]: one connected endpoint, its [`MemberStatus`], and its snapshot stream.
//! - [`KeyspaceWatch`]: every event of the key space from a revision on, for capture.
//! - [`Candidacy`], [`Term`]: leadership by etcd's election API over a kept-alive lease.
//! - [`Error`]: every failure named by cause (refused, timed out, untrusted server certificate,
//!   rejected client certificate, wrong password, ...), never a bare "transport error".

mod classify;
mod election;
mod error;
mod member;
mod tls;
mod watch;

pub use election::{Candidacy, Elected, Term};
pub use error::{EndpointFailure, Error, Result};
pub use member::{LiveHashKv, Member, MemberStatus, SnapshotStream, connect, connect_first_healthy};
pub use tls::TlsFiles;
pub use watch::{KeyspaceWatch, WatchBatch, WatchedEvent, WatchedRevision};

use std::time::Duration;

/// A user name and password for etcd's auth.
#[derive(Clone)]
pub struct Credentials {
    /// The etcd user.
    pub user: String,
    /// The password; never printed (see the `Debug` impl).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach etcd, as etcdctl's flags describe it.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port` or `http(s)://host:port`, tried in order.
    pub endpoints: Vec<String>,
    /// Files for TLS; an endpoint without a scheme uses TLS when any of these is set.
    pub tls: TlsFiles,
    /// Accept any server certificate (etcdctl's `--insecure-skip-tls-verify`).
    pub insecure_skip_tls_verify: bool,
    /// User and password for etcd's auth.
    pub credentials: Option<Credentials>,
    /// Limit for TCP connect plus TLS handshake.
    pub dial_timeout: Duration,
    /// Limit for each short request (auth, Status); the snapshot stream has none.
    pub command_timeout: Duration,
}
