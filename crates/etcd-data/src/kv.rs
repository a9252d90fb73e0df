//! `mvccpb.KeyValue`, the value of every `key`-bucket entry.

/// etcd's `mvccpb.KeyValue` (proto3; zero fields omitted).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// A `key`-bucket key: `main (u64 BE) '_' sub (u64 BE)`, plus `'t'` for a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
}

impl Revision {
    /// Parses a key strictly (as etcd 3.6 does); `None` if it is not a revision.
    pub fn parse(key: &[u8]) -> Option<Self> {
        let tombstone = match key.len() {
            17 => false,
            18 if key[17] == b't' => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(key[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(key[9..17].try_into().ok()?);
        (main >= 0 && sub >= 0).then_some(Self { main, sub, tombstone })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// Observed 3.5.1 records (spec §3.2).
    #[test]
    fn decodes_observed_records() {
        let put =
            KeyValue::decode(&unhex("0a03666f6f100218032002 2a0462617232".replace(' ', "").as_str())[..])
                .unwrap();
        assert_eq!(
            put,
            KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                value: b"bar2".to_vec(),
                lease: 0
            }
        );
        let revision = Revision::parse(&unhex("00000000000000035f0000000000000000")).unwrap();
        assert_eq!(
            revision,
            Revision {
                main: 3,
                sub: 0,
                tombstone: false
            }
        );
        let tombstone = Revision::parse(&unhex("00000000000000075f000000000000000074")).unwrap();
        assert!(tombstone.tombstone);
        let deleted = KeyValue::decode(&unhex("0a08746f64656c657465")[..]).unwrap();
        assert_eq!(deleted.key, b"todelete");
        assert_eq!(deleted.mod_revision, 0);
    }

    #[test]
    fn rejects_malformed_revision_keys() {
        let good = unhex("00000000000000035f0000000000000000");
        assert!(Revision::parse(&good[..16]).is_none());
        let mut separator = good.clone();
        separator[8] = b'-';
        assert!(Revision::parse(&separator).is_none());
        let mut marker = good.clone();
        marker.push(b'x');
        assert!(Revision::parse(&marker).is_none());
        let mut negative = good;
        negative[0] = 0x80;
        assert!(Revision::parse(&negative).is_none());
    }
}
