//! Errors: each names the endpoint or file, the cause, and what to do.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why talking to etcd failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint string that is not `host:port` or `http(s)://host:port`.
    #[error("endpoint {endpoint:?} is not host:port or http(s)://host:port")]
    BadEndpoint { endpoint: String },
    /// A TLS file could not be read.
    #[error("cannot read {what} {path}: {source}; check the path and its permissions")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A TLS file holds no usable PEM content.
    #[error("{what} {path} holds no usable PEM {expected}; give a PEM file")]
    BadPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    /// `--cert` without `--key` or the other way round.
    #[error("--cert and --key go together; give both or neither")]
    CertWithoutKey,
    /// The client certificate and key do not belong together, or the key type is unsupported.
    #[error("client certificate {cert} and key {key} cannot be used together: {reason}")]
    BadClientIdentity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// The client certificate is outside its validity window.
    #[error(
        "client certificate {path} is not valid now: valid from {not_before} until {not_after}; renew it (kubeadm: `kubeadm certs renew`)"
    )]
    ClientCertExpired {
        path: PathBuf,
        not_before: String,
        not_after: String,
    },
    /// Nothing listens at the endpoint.
    #[error(
        "{endpoint}: connection refused: nothing listens there; check --endpoints and that etcd is running"
    )]
    ConnectionRefused { endpoint: String },
    /// No connection within the dial timeout.
    #[error(
        "{endpoint}: no connection within the dial timeout of {timeout:?}; check --endpoints and the network, or raise --dial-timeout"
    )]
    DialTimeout { endpoint: String, timeout: Duration },
    /// A request got no answer within the command timeout.
    #[error(
        "{endpoint}: {request} got no answer within {timeout:?}; check etcd's health or raise --command-timeout"
    )]
    CommandTimeout {
        endpoint: String,
        request: &'static str,
        timeout: Duration,
    },
    /// The server certificate did not verify against the CA.
    #[error(
        "{endpoint}: the server's certificate is not trusted ({reason}); check that --cacert is the CA that signed etcd's server certificate"
    )]
    ServerCertUntrusted { endpoint: String, reason: String },
    /// The server certificate does not name the host we dialled.
    #[error(
        "{endpoint}: the server's certificate does not list this host name or IP; connect by a name or address in its SANs (kubeadm's etcd certificate lists localhost, 127.0.0.1 and the node IP)"
    )]
    ServerCertWrongName { endpoint: String },
    /// The server certificate is outside its validity window.
    #[error(
        "{endpoint}: the server's certificate is expired or not yet valid ({reason}); renew etcd's server certificate or check the clock"
    )]
    ServerCertExpired { endpoint: String, reason: String },
    /// The server wanted a client certificate and got none.
    #[error("{endpoint}: the server requires a client certificate; give --cert and --key")]
    ClientCertRequired { endpoint: String },
    /// The server refused the client certificate we sent.
    #[error(
        "{endpoint}: the server rejected our client certificate ({reason}); give --cert/--key signed by a CA etcd trusts"
    )]
    ClientCertRejected { endpoint: String, reason: String },
    /// TLS spoken to a plain-text port, or the other way round.
    #[error("{endpoint}: {reason}; use https:// with --cacert for a TLS port, http:// for a plain one")]
    ProtocolMismatch { endpoint: String, reason: String },
    /// Any other TLS failure.
    #[error("{endpoint}: TLS handshake failed: {reason}")]
    Tls { endpoint: String, reason: String },
    /// Wrong user or password.
    #[error(
        "{endpoint}: authentication failed for user {user:?}: wrong user name or password; check --user/--password"
    )]
    AuthFailed { endpoint: String, user: String },
    /// The server needs a user and none was given.
    #[error("{endpoint}: etcd has authentication enabled; give --user (and --password)")]
    AuthRequired { endpoint: String },
    /// A user was given but the server has auth off.
    #[error("{endpoint}: a user was given but etcd has authentication disabled; drop --user/--password")]
    AuthNotEnabled { endpoint: String },
    /// The user lacks the permission (snapshots need the root role).
    #[error("{endpoint}: permission denied: {message}; snapshots need a user with the root role")]
    PermissionDenied { endpoint: String, message: String },
    /// The connection broke or etcd failed while streaming.
    #[error("{endpoint}: connection lost: {reason}")]
    ConnectionLost { endpoint: String, reason: String },
    /// etcd answered with an error.
    #[error("{endpoint}: etcd answered {code}: {message}")]
    Rpc {
        endpoint: String,
        code: String,
        message: String,
    },
    /// A watch asked to start at a revision the member has compacted away.
    #[error("{endpoint}: the watch cannot start there: revisions up to {compact_revision} are compacted")]
    WatchCompacted { endpoint: String, compact_revision: i64 },
    /// No endpoint answered Status.
    #[error("no endpoint is healthy: {}", render_failures(.failures))]
    NoHealthyEndpoint { failures: Vec<EndpointFailure> },
}

/// One endpoint that did not answer, and why.
#[derive(Debug)]
pub struct EndpointFailure {
    /// The endpoint as given.
    pub endpoint: String,
    /// Why it failed.
    pub error: Error,
}

fn render_failures(failures: &[EndpointFailure]) -> String {
    let parts: Vec<String> = failures.iter().map(|f| f.error.to_string()).collect();
    parts.join("; ")
}
