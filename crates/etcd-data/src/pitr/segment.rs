//! The plain body of a segment: the revisions a watch delivered, each with every one of its
//! events in delivery (sub-revision) order and the time it was received, and the TTLs of the
//! leases those events reference.

use prost::Message;

use crate::{Error, KeyValue, Result};

/// One event as the watch delivered it.
#[derive(Clone, PartialEq, Message)]
pub struct CapturedEvent {
    /// A DELETE (a tombstone); otherwise a PUT.
    #[prost(bool, tag = "1")]
    pub delete: bool,
    /// The event's `mvccpb.KeyValue`, encoded as etcd stores it (for a DELETE only the key counts).
    #[prost(bytes = "vec", tag = "2")]
    pub kv: Vec<u8>,
}

/// Every event of one revision.
#[derive(Clone, PartialEq, Message)]
pub struct CapturedRevision {
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// When the capture received it (Unix milliseconds): etcd keeps no commit time.
    #[prost(int64, tag = "2")]
    pub received_unix_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub events: Vec<CapturedEvent>,
}

/// A lease's granted TTL, asked when the capture first saw its ID.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct LeaseTtl {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

/// A segment's plain content (before zstd and age).
#[derive(Clone, PartialEq, Message)]
pub struct SegmentBody {
    #[prost(message, repeated, tag = "1")]
    pub revisions: Vec<CapturedRevision>,
    #[prost(message, repeated, tag = "2")]
    pub leases: Vec<LeaseTtl>,
}

impl CapturedEvent {
    /// The event's record, decoded.
    pub fn key_value(&self) -> Result<KeyValue> {
        KeyValue::decode(self.kv.as_slice()).map_err(|_| Error::BadSegment {
            reason: "an event does not hold a KeyValue record".into(),
        })
    }
}

impl SegmentBody {
    /// Decodes and checks a segment said to cover revisions `first..=last`: revisions strictly
    /// ascending within that range, each with at least one event, every PUT's record at its
    /// revision, every record decodable.
    pub fn decode_checked(bytes: &[u8], first: i64, last: i64) -> Result<Self> {
        let bad = |reason: String| Error::BadSegment { reason };
        let body = Self::decode(bytes).map_err(|e| bad(format!("not a segment body: {e}")))?;
        let mut previous = first - 1;
        for revision in &body.revisions {
            if revision.revision <= previous || revision.revision > last {
                return Err(bad(format!(
                    "revision {} out of order or outside {first}..={last}",
                    revision.revision
                )));
            }
            previous = revision.revision;
            if revision.events.is_empty() {
                return Err(bad(format!("revision {} has no event", revision.revision)));
            }
            for event in &revision.events {
                let kv = event.key_value()?;
                if kv.key.is_empty() {
                    return Err(bad(format!(
                        "revision {} has an event without a key",
                        revision.revision
                    )));
                }
                if !event.delete && kv.mod_revision != revision.revision {
                    return Err(bad(format!(
                        "revision {} holds a record modified at {}",
                        revision.revision, kv.mod_revision
                    )));
                }
            }
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: i64) -> CapturedEvent {
        CapturedEvent {
            delete: false,
            kv: KeyValue {
                key: key.into(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                value: b"v".to_vec(),
                lease: 0,
            }
            .encode_to_vec(),
        }
    }

    fn body(revisions: &[i64]) -> SegmentBody {
        SegmentBody {
            revisions: revisions
                .iter()
                .map(|&r| CapturedRevision {
                    revision: r,
                    received_unix_ms: 1,
                    events: vec![put("a", r)],
                })
                .collect(),
            leases: vec![],
        }
    }

    #[test]
    fn round_trips_and_checks_order() {
        let bytes = body(&[5, 6, 9]).encode_to_vec();
        assert_eq!(
            SegmentBody::decode_checked(&bytes, 5, 10).unwrap(),
            body(&[5, 6, 9])
        );
        for (first, last) in [(6, 10), (5, 8)] {
            assert!(SegmentBody::decode_checked(&bytes, first, last).is_err());
        }
        let unordered = body(&[6, 5]).encode_to_vec();
        assert!(SegmentBody::decode_checked(&unordered, 1, 10).is_err());
        let mut moved = body(&[5]);
        moved.revisions[0].events[0] = put("a", 4);
        assert!(SegmentBody::decode_checked(&moved.encode_to_vec(), 1, 10).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b"\xff\xff\xff"[..], b"\x0a\x05\x08", b"\x0a\x02\x1a\x00"] {
            assert!(SegmentBody::decode_checked(bytes, 1, 10).is_err());
        }
    }
}
