//! The key space of a file as etcd would serve it at a revision: each live key's record (what
//! `etcdctl get --prefix --rev R` returns), read natively from the `key` bucket.

use std::collections::BTreeMap;

use lifeboat_bbolt::{Db, Source};
use prost::Message;

use crate::hashkv::walk_keys_past_damage;
use crate::kv::{KeyValue, Revision};
use crate::{Error, Result, StoreFacts};

/// The live keys under a prefix at one revision: each key's record, or what a reader kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpace<T = KeyValue> {
    /// The revision read.
    pub revision: i64,
    pub facts: StoreFacts,
    /// Each live key's latest record at `revision` (as the reader kept it), in key order.
    pub entries: Vec<T>,
    /// Structural damage met on the way, one line each: what the damaged pages held is
    /// missing from `entries`. Empty for a sound file.
    pub findings: Vec<String>,
}

/// The live keys starting with `prefix` at `revision` (the current one when `None` or 0) that
/// `select` takes, each as `keep` makes of its record. A revision below the compact revision or
/// past the current one is refused, as etcd's Range refuses it. Damaged pages are gone past and
/// named in `findings`: the rest is still read.
///
/// `select` is asked once per record of a key under `prefix`; the records of keys it refuses are
/// neither kept nor returned, and `keep` is given each record of a selected key up to `revision`
/// as it is met (older ones too, the latest wins; not deletions), so memory holds what is kept,
/// never every value.
pub fn key_space<S: Source + ?Sized, T>(
    db: &Db<'_, S>,
    prefix: &[u8],
    revision: Option<i64>,
    select: &mut dyn FnMut(&[u8]) -> bool,
    keep: &mut dyn FnMut(KeyValue) -> T,
) -> Result<KeySpace<T>> {
    // 0 asks for the current revision, as in etcd's Range.
    let revision = revision.filter(|r| *r > 0);
    let upper = revision.unwrap_or(i64::MAX);
    // Each user key's latest record at `upper` as kept, or none when that is a deletion.
    let mut latest: BTreeMap<Vec<u8>, (Revision, Option<T>)> = BTreeMap::new();
    let mut wanted = |user_key: &[u8]| user_key.starts_with(prefix) && select(user_key);
    let (facts, findings) = walk_keys_past_damage(db, |key, value| {
        let Some(at) = Revision::parse(key) else {
            return Err(Error::BadRevisionKey {
                key: hex::encode(key),
            });
        };
        if at.main > upper {
            return Ok(());
        }
        // Most records are of keys not asked for: judged by their key alone, their values are
        // neither decoded nor copied. A key is judged once, unless the decode finds another.
        let leading = leading_key(value);
        if leading.is_some_and(|user_key| !wanted(user_key)) {
            return Ok(());
        }
        let record = KeyValue::decode(value).map_err(|_| Error::BadKeyValue {
            key: hex::encode(key),
        })?;
        if leading != Some(record.key.as_slice()) && !wanted(&record.key) {
            return Ok(());
        }
        let newer = latest.get(&record.key).is_none_or(|(seen, _)| at >= *seen);
        if newer {
            let key = record.key.clone();
            latest.insert(key, (at, (!at.tombstone).then(|| keep(record))));
        }
        Ok(())
    })?;
    let revision = revision.unwrap_or(facts.current);
    if revision < facts.compact {
        return Err(Error::Compacted {
            revision,
            compact: facts.compact,
        });
    }
    if revision > facts.current {
        return Err(Error::FutureRevision {
            revision,
            current: facts.current,
        });
    }
    Ok(KeySpace {
        revision,
        facts,
        entries: latest.into_values().filter_map(|(_, record)| record).collect(),
        findings: findings.iter().map(ToString::to_string).collect(),
    })
}

/// The user key of a stored `KeyValue`: its field 1, which etcd writes first, read without
/// decoding the rest; `None` when the record does not start so (it is then decoded whole).
fn leading_key(mut record: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = record.split_first()?;
    // Field 1, length-delimited.
    if tag != 0x0a {
        return None;
    }
    record = rest;
    let length = usize::try_from(prost::encoding::decode_varint(&mut record).ok()?).ok()?;
    record.get(..length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_key_is_the_decoded_key() {
        let record = KeyValue {
            key: b"/registry/pods/default/web".to_vec(),
            create_revision: 5,
            mod_revision: 9,
            version: 2,
            value: vec![7; 300],
            lease: 3,
        };
        let bytes = record.encode_to_vec();
        assert_eq!(leading_key(&bytes), Some(record.key.as_slice()));
        // Cut short, or not starting with the key: left to the whole decode.
        assert_eq!(leading_key(&bytes[..10]), None);
        assert_eq!(leading_key(&bytes[2..]), None);
        assert_eq!(leading_key(&[]), None);
        assert_eq!(
            leading_key(&[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            None
        );
    }
}
