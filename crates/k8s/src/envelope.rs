//! What kind of value etcd holds under a Kubernetes key (etcd-formats.md §6): the protobuf
//! envelope (`k8s\0` and a runtime.Unknown), JSON (custom resources, CRDs, aggregated APIs),
//! CBOR, or a value encrypted at rest (`k8s:enc:<provider>:v1:<key name>:`).

use prost::Message;

use crate::{Error, Result};

const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// CBOR's self-described tag (55799), which Kubernetes' CBOR serializer writes first.
const CBOR_MAGIC: &[u8] = &[0xd9, 0xd9, 0xf7];

/// apimachinery's runtime.TypeMeta, as protobuf.
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

/// apimachinery's runtime.Unknown: the envelope of every protobuf value.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

/// The protobuf envelope's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub api_version: String,
    pub kind: String,
    /// The object, encoded as its message (without apiVersion and kind).
    pub raw: Vec<u8>,
    pub content_encoding: String,
    pub content_type: String,
}

/// A stored value, by its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue<'a> {
    Protobuf(Envelope),
    Json(&'a [u8]),
    Cbor(&'a [u8]),
    /// Encrypted at rest: the provider (`aescbc`, `aesgcm`, `secretbox`, `kms`), the key name
    /// (the KMS provider's name for `kms`), and the whole value.
    Encrypted {
        provider: String,
        version: String,
        key_name: String,
        value: &'a [u8],
    },
    /// Nothing Kubernetes writes.
    Other(&'a [u8]),
}

/// Tells what `value` is; only the protobuf envelope is parsed here.
pub fn classify(value: &[u8]) -> Result<StoredValue<'_>> {
    if let Some(rest) = value.strip_prefix(PROTOBUF_MAGIC) {
        return Ok(StoredValue::Protobuf(envelope(rest)?));
    }
    if let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) {
        // <provider>:<version>:<key name>:<data>; the key name may not hold a colon.
        let mut parts = rest.splitn(4, |b| *b == b':');
        let mut text = || parts.next().map(printable);
        if let (Some(provider), Some(version), Some(key_name)) = (text(), text(), text()) {
            return Ok(StoredValue::Encrypted {
                provider,
                version,
                key_name,
                value,
            });
        }
        return Ok(StoredValue::Other(value));
    }
    if value.starts_with(CBOR_MAGIC) {
        return Ok(StoredValue::Cbor(value));
    }
    match value.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(StoredValue::Json(value)),
        _ => Ok(StoredValue::Other(value)),
    }
}

/// Bytes of a stored value as text for messages: control characters escaped, so a value can
/// neither break a message's one line nor send terminal escapes.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

fn envelope(bytes: &[u8]) -> Result<Envelope> {
    let unknown = Unknown::decode(bytes).map_err(|e| Error::Envelope {
        message: e.to_string(),
    })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = (
        printable(type_meta.api_version.unwrap_or_default().as_bytes()),
        printable(type_meta.kind.unwrap_or_default().as_bytes()),
    );
    if kind.is_empty() {
        return Err(Error::Envelope {
            message: "the envelope names no kind".into(),
        });
    }
    Ok(Envelope {
        api_version,
        kind,
        raw: unknown.raw.unwrap_or_default(),
        content_encoding: unknown.content_encoding.unwrap_or_default(),
        content_type: unknown.content_type.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_told_apart_by_their_first_bytes() {
        assert!(matches!(
            classify(b" {\"kind\":\"Widget\"}").unwrap(),
            StoredValue::Json(_)
        ));
        assert!(matches!(
            classify(&[0xd9, 0xd9, 0xf7, 0xa0]).unwrap(),
            StoredValue::Cbor(_)
        ));
        match classify(b"k8s:enc:aesgcm:v1:key1:\x01\x02").unwrap() {
            StoredValue::Encrypted {
                provider,
                version,
                key_name,
                ..
            } => {
                assert_eq!(
                    (provider.as_str(), version.as_str(), key_name.as_str()),
                    ("aesgcm", "v1", "key1")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(b"plain").unwrap(), StoredValue::Other(_)));
        match classify(b"k8s:enc:aes\ngcm:v1:key\x1b[31m:data").unwrap() {
            StoredValue::Encrypted {
                provider, key_name, ..
            } => {
                assert_eq!(
                    (provider.as_str(), key_name.as_str()),
                    ("aes\\ngcm", "key\\u{1b}[31m")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(classify(b"k8s\0\xff\xff").is_err());
    }
}
