//! Turns what tonic, hyper and rustls report into one [`Error`] that names the cause.
//!
//! Their errors nest several layers deep and print as "transport error"; the cause sits at the
//! bottom of the source chain, inside `std::io::Error`s that `source()` does not step into.

use std::error::Error as StdError;

use rustls::{AlertDescription, CertificateError};
use tonic::Code;

use crate::Error;

/// A failure in our connector, kept apart so the TCP and TLS stages can be told apart later.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("connect: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
}

/// What was being done when an error happened: the same symptom means different things.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Situation<'a> {
    pub endpoint: &'a str,
    /// The connection uses TLS.
    pub tls: bool,
    /// A client certificate was offered.
    pub client_cert: bool,
    /// Still connecting (auth, Status), not streaming.
    pub connecting: bool,
}

/// Every error in the chain, stepping into `io::Error` payloads too.
fn chain<'a>(top: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(top);
    while let Some(error) = next {
        out.push(error);
        next = if let Some(io) = error.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|inner| inner as &(dyn StdError + 'static))
        } else if let Some(client_error) = error.downcast_ref::<etcd_client::Error>() {
            match client_error {
                etcd_client::Error::GRpcStatus(status) => Some(status as &(dyn StdError + 'static)),
                etcd_client::Error::TransportError(transport) => Some(transport as &(dyn StdError + 'static)),
                etcd_client::Error::IoError(io) => Some(io as &(dyn StdError + 'static)),
                _ => None,
            }
        } else {
            error.source()
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

pub(crate) fn classify(situation: Situation<'_>, top: &(dyn StdError + 'static)) -> Error {
    let endpoint = situation.endpoint.to_string();
    let errors = chain(top);
    for error in &errors {
        if let Some(rustls_error) = error.downcast_ref::<rustls::Error>() {
            return from_rustls(endpoint, situation.client_cert, rustls_error);
        }
    }
    for error in &errors {
        if let Some(DialError::Tcp(io)) = error.downcast_ref::<DialError>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused { endpoint },
                _ => Error::ConnectionLost {
                    endpoint,
                    reason: io.to_string(),
                },
            };
        }
        if let Some(DialError::Tls(io)) = error.downcast_ref::<DialError>() {
            return match io.kind() {
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => Error::ProtocolMismatch {
                    endpoint,
                    reason: "the server closed the connection during the TLS handshake (is it a plain-text port?)"
                        .into(),
                },
                _ => Error::Tls { endpoint, reason: io.to_string() },
            };
        }
    }
    if let Some(alert) = alert_in_text(&errors) {
        return from_rustls(
            endpoint,
            situation.client_cert,
            &rustls::Error::AlertReceived(alert),
        );
    }
    // Go's TLS 1.3 servers (etcd 3.4 to 3.7) that refuse a client, for sending no certificate
    // or one they do not trust, may hang up as soon as it speaks, with no alert to read.
    if situation.tls && situation.connecting && closed(&errors) {
        return match situation.client_cert {
            false => Error::ClientCertRequired { endpoint },
            true => Error::ClientCertRejected {
                endpoint,
                reason: "the server hung up right after the TLS handshake".into(),
            },
        };
    }
    for error in &errors {
        if let Some(status) = error.downcast_ref::<tonic::Status>() {
            return from_status(endpoint, situation, status, &errors);
        }
    }
    if looks_like_tls_port(situation, &errors) {
        return plain_to_tls(endpoint);
    }
    let reason = errors.last().map_or_else(|| top.to_string(), |e| e.to_string());
    Error::ConnectionLost { endpoint, reason }
}

/// A TLS 1.3 server refuses a client certificate after our side of the handshake is done, so
/// its alert ends the HTTP/2 connection, and h2 keeps only the text of that I/O error.
fn alert_in_text(errors: &[&(dyn StdError + 'static)]) -> Option<AlertDescription> {
    const CERTIFICATE_ALERTS: [AlertDescription; 9] = [
        AlertDescription::BadCertificate,
        AlertDescription::UnknownCA,
        AlertDescription::CertificateExpired,
        AlertDescription::CertificateRevoked,
        AlertDescription::CertificateUnknown,
        AlertDescription::UnsupportedCertificate,
        AlertDescription::AccessDenied,
        AlertDescription::CertificateRequired,
        AlertDescription::HandshakeFailure,
    ];
    errors.iter().find_map(|error| {
        let text = error.to_string();
        let name = text.split("received fatal alert: ").nth(1)?;
        let name = name.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
        CERTIFICATE_ALERTS
            .into_iter()
            .find(|alert| format!("{alert:?}") == name)
    })
}

/// The peer hung up: an I/O error of those kinds, or h2's text of one.
fn closed(errors: &[&(dyn StdError + 'static)]) -> bool {
    errors.iter().any(|error| hung_up(*error))
}

/// The server hung up: a broken socket, or hyper's words for it. "connection was not ready" is
/// a connection the server hung up on before the first request went out (on a busy machine
/// hyper sees the hang-up first).
fn hung_up(error: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    let text = error.to_string();
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| matches!(io.kind(), BrokenPipe | ConnectionReset | UnexpectedEof))
        || text.contains("connection closed")
        || text.contains("connection was not ready")
}

/// A TLS port answers plain HTTP/2 with an HTTP/1 error page and a hang-up, which h2 reports
/// as a protocol error or a broken connection; only while connecting does that point at TLS.
fn looks_like_tls_port(situation: Situation<'_>, errors: &[&(dyn StdError + 'static)]) -> bool {
    if situation.tls || !situation.connecting {
        return false;
    }
    errors.iter().any(|error| {
        // hyper's h2 errors are not nameable without depending on h2; their text is stable.
        let text = error.to_string();
        hung_up(*error) || text.contains("frame with invalid size") || text.contains("PROTOCOL_ERROR")
    })
}

fn plain_to_tls(endpoint: String) -> Error {
    Error::ProtocolMismatch {
        endpoint,
        reason: "the server did not answer in plain HTTP/2 (does it expect TLS?)".into(),
    }
}

fn from_rustls(endpoint: String, client_cert: bool, error: &rustls::Error) -> Error {
    match error {
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::HandshakeFailure,
        ) if !client_cert => Error::ClientCertRequired { endpoint },
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Error::ServerCertWrongName { endpoint },
        rustls::Error::InvalidCertificate(
            reason @ (CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. }),
        ) => Error::ServerCertExpired {
            endpoint,
            reason: format!("{reason:?}"),
        },
        rustls::Error::InvalidCertificate(reason) => Error::ServerCertUntrusted {
            endpoint,
            reason: format!("{reason:?}"),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            Error::ClientCertRequired { endpoint }
        }
        rustls::Error::AlertReceived(alert @ AlertDescription::HandshakeFailure) => {
            Error::ClientCertRejected {
                endpoint,
                reason: format!("alert {alert:?}: no client certificate, or one the server does not accept"),
            }
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied),
        ) => Error::ClientCertRejected {
            endpoint,
            reason: format!("alert {alert:?}"),
        },
        rustls::Error::InvalidMessage(_) => Error::ProtocolMismatch {
            endpoint,
            reason: "the server did not answer in TLS (is it a plain-text port?)".into(),
        },
        other => Error::Tls {
            endpoint,
            reason: other.to_string(),
        },
    }
}

fn from_status(
    endpoint: String,
    situation: Situation<'_>,
    status: &tonic::Status,
    errors: &[&(dyn StdError + 'static)],
) -> Error {
    let message = status.message().to_string();
    if message.contains("authentication failed") {
        return Error::AuthFailed {
            endpoint,
            user: String::new(),
        };
    }
    if message.contains("user name is empty") || message.contains("invalid auth token") {
        return Error::AuthRequired { endpoint };
    }
    if message.contains("authentication is not enabled") {
        return Error::AuthNotEnabled { endpoint };
    }
    match status.code() {
        Code::PermissionDenied => Error::PermissionDenied { endpoint, message },
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled => {
            if looks_like_tls_port(situation, errors) {
                return plain_to_tls(endpoint);
            }
            let reason = errors.last().map_or(message, |e| e.to_string());
            Error::ConnectionLost { endpoint, reason }
        }
        code => Error::Rpc {
            endpoint,
            code: format!("{code:?}"),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Text(&'static str);

    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Text {}

    #[test]
    fn a_hang_up_right_after_the_handshake_asks_for_a_client_certificate_when_none_was_given() {
        let situation = |client_cert| Situation {
            endpoint: "https://127.0.0.1:2379",
            tls: true,
            client_cert,
            connecting: true,
        };
        for text in [
            "connection was not ready",
            "connection closed before message completed",
        ] {
            let error = classify(situation(false), &Text(text));
            assert!(
                matches!(error, Error::ClientCertRequired { .. }),
                "{text}: {error}"
            );
            let error = classify(situation(true), &Text(text));
            assert!(
                matches!(error, Error::ClientCertRejected { .. }),
                "{text}: {error}"
            );
        }
        let plain = Situation {
            tls: false,
            ..situation(false)
        };
        let error = classify(plain, &Text("connection was not ready"));
        assert!(
            matches!(error, Error::ProtocolMismatch { .. }),
            "plain to a TLS port: {error}"
        );
        let later = Situation {
            connecting: false,
            ..situation(false)
        };
        let error = classify(later, &Text("connection was not ready"));
        assert!(matches!(error, Error::ConnectionLost { .. }), "{error}");
    }
}
