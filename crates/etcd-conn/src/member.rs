//! Connecting to one endpoint, asking its Status, streaming its snapshot.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions as ClientOptions};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::Endpoint;
use tracing::{debug, warn};

use crate::classify::{DialError, Situation, classify};
use crate::{ConnectOptions, EndpointFailure, Error, Result};

/// What an endpoint's Status said, with the header's cluster facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The endpoint as given on the command line.
    pub endpoint: String,
    /// The cluster ID from the response header.
    pub cluster_id: u64,
    /// The answering member's ID.
    pub member_id: u64,
    /// The store revision when Status was answered.
    pub revision: i64,
    /// The etcd server version, e.g. "3.5.1".
    pub version: String,
    /// The backend database size in bytes (what a snapshot of it will about weigh).
    pub db_size: u64,
    /// The member ID of the leader, 0 when there is none.
    pub leader: u64,
}

/// A member's HashKV answer: the hash of its key space up to `revision`, compacted at
/// `compact_revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveHashKv {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

/// One connected, answering endpoint.
pub struct Member {
    client: Client,
    status: MemberStatus,
    peer: Peer,
}

/// What error classification needs to know about an established connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    endpoint: String,
    tls: bool,
    client_cert: bool,
}

impl Peer {
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn lost(&self, reason: &str) -> Error {
        Error::ConnectionLost {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn classify(&self, error: &(dyn std::error::Error + 'static)) -> Error {
        let situation = Situation {
            endpoint: &self.endpoint,
            tls: self.tls,
            client_cert: self.client_cert,
            connecting: false,
        };
        classify(situation, error)
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// etcd's snapshot: the bbolt image in chunks of up to 32 KiB, then its SHA-256.
pub struct SnapshotStream {
    peer: Peer,
    inner: etcd_client::SnapshotStreaming,
}

/// A parsed endpoint.
#[derive(Debug, Clone)]
struct Target {
    /// As given by the user, for messages.
    given: String,
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    fn parse(given: &str, tls_by_default: bool) -> Result<Self> {
        let bad = || Error::BadEndpoint {
            endpoint: given.to_string(),
        };
        let (tls, authority) = if let Some(rest) = given.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = given.strip_prefix("http://") {
            (false, rest)
        } else {
            (tls_by_default, given)
        };
        let authority = authority.trim_end_matches('/');
        let uri: http::Uri = format!("http://{authority}").parse().map_err(|_| bad())?;
        let host = uri.host().ok_or_else(bad)?;
        let port = uri.port_u16().ok_or_else(bad)?;
        if uri.path() != "/" || authority.contains('@') {
            return Err(bad());
        }
        Ok(Self {
            given: given.to_string(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            tls,
        })
    }
}

/// Tries each endpoint in order and returns the first that answers Status.
pub async fn connect_first_healthy(options: &ConnectOptions) -> Result<Member> {
    let mut failures: Vec<EndpointFailure> = Vec::new();
    for endpoint in &options.endpoints {
        match connect(options, endpoint).await {
            Ok(member) => {
                if !failures.is_empty() {
                    let skipped: Vec<String> = failures.iter().map(|f| f.error.to_string()).collect();
                    warn!(skipped = %skipped.join("; "), "using {endpoint}, the first healthy endpoint");
                }
                return Ok(member);
            }
            // A local mistake is the same for every endpoint: say it once.
            Err(
                error @ (Error::ReadFile { .. }
                | Error::BadPem { .. }
                | Error::CertWithoutKey
                | Error::BadClientIdentity { .. }
                | Error::ClientCertExpired { .. }
                | Error::BadEndpoint { .. }),
            ) => return Err(error),
            Err(error) => {
                debug!(endpoint = %endpoint, %error, "endpoint unhealthy");
                failures.push(EndpointFailure {
                    endpoint: endpoint.clone(),
                    error,
                });
            }
        }
    }
    match failures.len() {
        1 => Err(failures.remove(0).error),
        _ => Err(Error::NoHealthyEndpoint { failures }),
    }
}

/// Connects to one endpoint, authenticates if asked, and asks its Status.
pub async fn connect(options: &ConnectOptions, endpoint: &str) -> Result<Member> {
    let tls_by_default = options.tls.any() || options.insecure_skip_tls_verify;
    let target = Target::parse(endpoint, tls_by_default)?;
    let tls = if target.tls {
        Some(Arc::new(crate::tls::client_config(
            &options.tls,
            options.insecure_skip_tls_verify,
        )?))
    } else {
        None
    };
    let situation = Situation {
        endpoint: &target.given,
        tls: target.tls,
        client_cert: options.tls.cert.is_some(),
        connecting: true,
    };
    let dial = open_channel(&target, tls);
    let channel = tokio::time::timeout(options.dial_timeout, dial)
        .await
        .map_err(|_| Error::DialTimeout {
            endpoint: target.given.clone(),
            timeout: options.dial_timeout,
        })?
        .map_err(|e| classify(situation, &e))?;

    let mut client_options = ClientOptions::new();
    if let Some(credentials) = &options.credentials {
        client_options = client_options.with_user(credentials.user.clone(), credentials.password.clone());
    }
    let user = options.credentials.as_ref().map(|c| c.user.as_str());
    let mut client = with_timeout(
        situation,
        "authentication",
        options.command_timeout,
        Client::from_channel(etcd_client::Channel::Tonic(channel), Some(client_options)),
    )
    .await
    .map_err(|e| with_user(e, user))?;
    let response = with_timeout(situation, "Status", options.command_timeout, client.status())
        .await
        .map_err(|e| with_user(e, user))?;
    let status = member_status(&target.given, &response);
    debug!(endpoint = %target.given, version = %status.version, db_size = status.db_size, "endpoint healthy");
    let peer = Peer {
        endpoint: target.given.clone(),
        tls: target.tls,
        client_cert: situation.client_cert,
    };
    Ok(Member { client, status, peer })
}

fn member_status(endpoint: &str, response: &etcd_client::StatusResponse) -> MemberStatus {
    let header = response.header();
    MemberStatus {
        endpoint: endpoint.to_string(),
        cluster_id: header.map_or(0, |h| h.cluster_id()),
        member_id: header.map_or(0, |h| h.member_id()),
        revision: header.map_or(0, |h| h.revision()),
        version: response.version().to_string(),
        db_size: u64::try_from(response.db_size()).unwrap_or(0),
        leader: response.leader(),
    }
}

fn with_user(error: Error, user: Option<&str>) -> Error {
    match error {
        Error::AuthFailed { endpoint, .. } => Error::AuthFailed {
            endpoint,
            user: user.unwrap_or_default().to_string(),
        },
        other => other,
    }
}

async fn with_timeout<T>(
    situation: Situation<'_>,
    request: &'static str,
    timeout: Duration,
    call: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(situation, &error)),
        Err(_) => Err(Error::CommandTimeout {
            endpoint: situation.endpoint.to_string(),
            request,
            timeout,
        }),
    }
}

async fn open_channel(
    target: &Target,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::result::Result<tonic::transport::Channel, tonic::transport::Error> {
    // The URI only labels the channel: the connector below dials the target itself, so TLS is
    // ours to configure (tonic's own TLS cannot skip verification or say why a handshake failed).
    let endpoint = Endpoint::from_static("http://etcd.invalid")
        // Large windows keep the 32 KiB snapshot messages flowing without a round trip each.
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(8 << 20))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .tcp_nodelay(true);
    let (host, port) = (target.host.clone(), target.port);
    match tls {
        None => {
            let connector = tower::service_fn(move |_: http::Uri| {
                let host = host.clone();
                async move { dial(&host, port).await.map(TokioIo::new) }
            });
            endpoint.connect_with_connector(connector).await
        }
        Some(config) => {
            let connector = tower::service_fn(move |_: http::Uri| {
                let (host, config) = (host.clone(), config.clone());
                async move {
                    let tcp = dial(&host, port).await?;
                    let name = rustls_pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| DialError::Tls(std::io::Error::other(e)))?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(DialError::Tls)?;
                    Ok::<_, DialError>(TokioIo::new(stream))
                }
            });
            endpoint.connect_with_connector(connector).await
        }
    }
}

async fn dial(host: &str, port: u16) -> std::result::Result<TcpStream, DialError> {
    let stream = TcpStream::connect((host, port)).await.map_err(DialError::Tcp)?;
    stream.set_nodelay(true).map_err(DialError::Tcp)?;
    Ok(stream)
}

impl Member {
    /// What the endpoint said when it was connected.
    pub fn status(&self) -> &MemberStatus {
        &self.status
    }

    /// Starts etcd's snapshot stream.
    pub async fn snapshot(&mut self) -> Result<SnapshotStream> {
        let inner = self.client.snapshot().await.map_err(|e| self.peer.classify(&e))?;
        Ok(SnapshotStream {
            peer: self.peer.clone(),
            inner,
        })
    }

    /// Keys that exist at `revision` (0: now), counted by etcd without sending them.
    pub async fn count_keys(&mut self, revision: i64) -> Result<i64> {
        let options = etcd_client::GetOptions::new()
            .with_all_keys()
            .with_count_only()
            .with_revision(revision);
        let response = self
            .client
            .get("", Some(options))
            .await
            .map_err(|e| self.peer.classify(&e))?;
        Ok(response.count())
    }

    /// etcd's HashKV at `revision` (0: the current one); `None` when the member has compacted
    /// that revision away.
    pub async fn hash_kv(&mut self, revision: i64) -> Result<Option<LiveHashKv>> {
        match self.client.hash_kv(revision).await {
            Ok(response) => Ok(Some(LiveHashKv {
                hash: response.hash(),
                revision: match revision {
                    0 => response.header().map_or(0, |h| h.revision()),
                    asked => asked,
                },
                compact_revision: response.compact_version(),
            })),
            Err(etcd_client::Error::GRpcStatus(status))
                if status.code() == tonic::Code::OutOfRange && status.message().contains("compacted") =>
            {
                Ok(None)
            }
            Err(error) => Err(self.peer.classify(&error)),
        }
    }

    /// Every key under `prefix` (keys only, linearizable), read in pages at one revision so
    /// that no answer exceeds gRPC's message limit however many keys there are.
    pub async fn keys(&mut self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        const PAGE: i64 = 10_000;
        let end = prefix_end(prefix);
        let mut keys = Vec::new();
        let mut from = prefix.to_vec();
        let mut revision = 0;
        loop {
            let options = etcd_client::GetOptions::new()
                .with_range(end.clone())
                .with_keys_only()
                .with_limit(PAGE)
                .with_revision(revision);
            let response = self
                .client
                .get(from.clone(), Some(options))
                .await
                .map_err(|e| self.peer.classify(&e))?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            keys.extend(response.kvs().iter().map(|kv| kv.key().to_vec()));
            match (response.more(), response.kvs().last()) {
                (true, Some(last)) => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(keys),
            }
        }
    }

    /// The cluster's revision now, by a linearizable read (Status answers from the member's
    /// own state, which may lag).
    pub async fn current_revision(&mut self) -> Result<i64> {
        let options = etcd_client::GetOptions::new().with_count_only();
        let response = self
            .client
            .get(vec![0u8], Some(options))
            .await
            .map_err(|e| self.peer.classify(&e))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Asks the member's Status again (its leader, 0 for none, and its revision now).
    pub async fn refresh_status(&mut self) -> Result<&MemberStatus> {
        let response = self.client.status().await.map_err(|e| self.peer.classify(&e))?;
        self.status = member_status(&self.status.endpoint, &response);
        Ok(&self.status)
    }

    pub(crate) fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The underlying client, for test harnesses that write data.
    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`): the prefix
/// with its last byte below 0xff incremented and what follows dropped; `\0` (to the end of the
/// key space) when every byte is 0xff.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("endpoint", &self.peer.endpoint)
            .finish_non_exhaustive()
    }
}

impl SnapshotStream {
    /// The next chunk of the stream, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        match self.inner.message().await {
            Ok(Some(message)) => Ok(Some(message.blob().to_vec())),
            Ok(None) => Ok(None),
            Err(error) => Err(self.peer.classify(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcdctl_endpoint_forms() {
        let t = Target::parse("127.0.0.1:2379", false).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 2379, false));
        let t = Target::parse("127.0.0.1:2379", true).unwrap();
        assert!(t.tls);
        let t = Target::parse("https://etcd-0.example:2379", false).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("etcd-0.example", 2379, true));
        let t = Target::parse("http://[::1]:2379/", true).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 2379, false));
    }

    #[test]
    fn prefix_ends_as_etcd_computes_them() {
        assert_eq!(prefix_end(b"/registry/"), b"/registry0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn rejects_malformed_endpoints() {
        for bad in [
            "",
            "127.0.0.1",
            "https://",
            "http://a:b",
            "a:1/path",
            "user@host:1",
            "a b:1",
        ] {
            assert!(
                matches!(Target::parse(bad, false), Err(Error::BadEndpoint { .. })),
                "{bad:?}"
            );
        }
    }
}
