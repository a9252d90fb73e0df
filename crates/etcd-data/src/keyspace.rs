//! The key space of a file as etcd would serve it at a revision: each live key's record (what
//! `etcdctl get --prefix --rev R` returns), read natively from the `key` bucket.

use std::collections::BTreeMap;

use lifeboat_bbolt::{Db, Source};
use prost::Message;

use crate::hashkv::walk_keys_past_damage;
use crate::kv::{KeyValue, Revision};
use crate::{Error, Result, StoreFacts};

/// The live keys under a prefix at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpace {
    /// The revision read.
    pub revision: i64,
    pub facts: StoreFacts,
    /// Each live key's latest record at `revision`, in key order.
    pub entries: Vec<KeyValue>,
    /// Structural damage met on the way, one line each: what the damaged pages held is
    /// missing from `entries`. Empty for a sound file.
    pub findings: Vec<String>,
}

/// The live keys starting with `prefix` at `revision` (the current one when `None` or 0). A
/// revision below the compact revision or past the current one is refused, as etcd's Range
/// refuses it. Damaged pages are gone past and named in `findings`: the rest is still read.
pub fn key_space<S: Source + ?Sized>(
    db: &Db<'_, S>,
    prefix: &[u8],
    revision: Option<i64>,
) -> Result<KeySpace> {
    key_space_selected(db, prefix, revision, &mut |_| true)
}

/// [`key_space`] of the keys `select` takes: it is asked once per record of a key under
/// `prefix`, and the records of keys it refuses are neither kept nor returned, so memory grows
/// with what is selected rather than with the file.
pub fn key_space_selected<S: Source + ?Sized>(
    db: &Db<'_, S>,
    prefix: &[u8],
    revision: Option<i64>,
    select: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<KeySpace> {
    // 0 asks for the current revision, as in etcd's Range.
    let revision = revision.filter(|r| *r > 0);
    let upper = revision.unwrap_or(i64::MAX);
    // Each user key's latest record at `upper`, or none when that is a deletion.
    let mut latest: BTreeMap<Vec<u8>, (Revision, Option<KeyValue>)> = BTreeMap::new();
    let (facts, findings) = walk_keys_past_damage(db, |key, value| {
        let Some(at) = Revision::parse(key) else {
            return Err(Error::BadRevisionKey {
                key: hex::encode(key),
            });
        };
        if at.main > upper {
            return Ok(());
        }
        let record = KeyValue::decode(value).map_err(|_| Error::BadKeyValue {
            key: hex::encode(key),
        })?;
        if !record.key.starts_with(prefix) || !select(&record.key) {
            return Ok(());
        }
        let newer = latest.get(&record.key).is_none_or(|(seen, _)| at >= *seen);
        if newer {
            latest.insert(record.key.clone(), (at, (!at.tombstone).then_some(record)));
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
