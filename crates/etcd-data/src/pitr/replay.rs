//! Captured revisions written into the `key` bucket after the base snapshot's, and the `lease`
//! bucket rebuilt for the keys alive at the target revision.
//!
//! Each event becomes the record etcd itself wrote: a PUT's `KeyValue` verbatim under
//! `revision_sub`, a DELETE as `revision_sub` + `t` holding only the key; sub-revisions count
//! the events of one revision in delivery order. The lease bucket keeps the base's leases and
//! adds, for every lease a live key references at the target, `Lease{ID, TTL}` with the TTL the
//! capture asked for; etcd refreshes every lease to its full TTL when a leader takes over, as it
//! does after any failover.

use std::collections::{BTreeMap, HashMap};

use prost::Message;

use super::{CapturedRevision, LeaseTtl};
use crate::{Error, KeyValue, Result};

/// Captured revisions to write after a base snapshot's, a segment's worth at a time.
#[derive(Debug, Clone, Default)]
pub struct ReplayChunk {
    /// Ascending, all after the base snapshot's revision (and the previous chunk's), up to the
    /// target.
    pub revisions: Vec<CapturedRevision>,
    /// Granted TTL (seconds) of leases the capture saw.
    pub leases: Vec<LeaseTtl>,
}

/// Where a replay's chunks come from: read afresh for each restore that asks (a drill
/// restores several members), so that only a chunk or two is ever held in memory.
pub trait Replay: Send + Sync + std::fmt::Debug {
    fn chunks(&self) -> Box<dyn Iterator<Item = Result<ReplayChunk>> + Send + '_>;
}

/// What a replay wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// The base snapshot's revision.
    pub base_revision: i64,
    /// Revisions and events written after it.
    pub revisions: u64,
    pub events: u64,
    /// When the capture received the last revision written (Unix ms).
    pub last_received_unix_ms: Option<i64>,
    /// Entries of the rebuilt `lease` bucket.
    pub leases: u64,
    /// Leases a live key references whose TTL nobody recorded (hex IDs): etcd keeps such keys
    /// without a lease.
    pub leases_unknown: Vec<String>,
}

/// Only what a replay needs of a `key`-bucket record: prost skips the rest without copying it.
#[derive(Clone, PartialEq, Message)]
struct KeyAndLease {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "6")]
    lease: i64,
}

/// `leasepb.Lease` as the `lease` bucket stores it.
#[derive(Clone, PartialEq, Message)]
struct LeaseRecord {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
}

/// A replay in progress inside the backend rewrite.
pub(crate) struct Replayer<'r> {
    replay: &'r dyn Replay,
    /// Granted TTL of each lease the capture saw, by ID.
    lease_ttls: BTreeMap<i64, i64>,
    /// The lease of every key whose latest record is a PUT with one.
    leased: HashMap<Vec<u8>, i64>,
    base_leases: BTreeMap<Vec<u8>, Vec<u8>>,
    report: ReplayReport,
}

fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut key = [&main.to_be_bytes()[..], b"_", &sub.to_be_bytes()].concat();
    if tombstone {
        key.push(b't');
    }
    key
}

impl<'r> Replayer<'r> {
    pub(crate) fn new(replay: &'r dyn Replay) -> Self {
        Self {
            replay,
            lease_ttls: BTreeMap::new(),
            leased: HashMap::new(),
            base_leases: BTreeMap::new(),
            report: ReplayReport {
                base_revision: 0,
                revisions: 0,
                events: 0,
                last_received_unix_ms: None,
                leases: 0,
                leases_unknown: Vec::new(),
            },
        }
    }

    fn track(&mut self, tombstone: bool, record: KeyAndLease) {
        match (tombstone, record.lease) {
            (false, lease) if lease != 0 => {
                self.leased.insert(record.key, lease);
            }
            _ => {
                self.leased.remove(&record.key);
            }
        }
    }

    /// Notes a base `key`-bucket entry (in key order).
    pub(crate) fn base_record(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let record = KeyAndLease::decode(value).map_err(|_| Error::BadKeyValue {
            key: hex::encode(key),
        })?;
        self.track(crate::hashkv::is_tombstone(key), record);
        Ok(())
    }

    /// Keeps a base `lease`-bucket entry.
    pub(crate) fn base_lease(&mut self, key: &[u8], value: &[u8]) {
        self.base_leases.insert(key.to_vec(), value.to_vec());
    }

    /// The records to append after the base's last revision `base`, in key order.
    pub(crate) fn records(
        &mut self,
        base: i64,
        mut put: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.report.base_revision = base;
        let mut previous = base;
        for chunk in self.replay.chunks() {
            let chunk = chunk?;
            self.lease_ttls
                .extend(chunk.leases.iter().map(|lease| (lease.id, lease.ttl)));
            for revision in &chunk.revisions {
                if revision.revision <= previous {
                    return Err(Error::ReplayOrder {
                        base: previous,
                        first: revision.revision,
                    });
                }
                previous = revision.revision;
                self.revision(revision, &mut put)?;
            }
        }
        Ok(())
    }

    /// Writes one captured revision's records.
    fn revision(
        &mut self,
        revision: &CapturedRevision,
        put: &mut impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.report.revisions += 1;
        self.report.last_received_unix_ms = Some(revision.received_unix_ms);
        for (sub, event) in revision.events.iter().enumerate() {
            let record = KeyAndLease::decode(event.kv.as_slice()).map_err(|_| Error::BadSegment {
                reason: format!("an event of revision {} holds no KeyValue", revision.revision),
            })?;
            let key = revision_key(revision.revision, sub as i64, event.delete);
            match event.delete {
                true => {
                    let tombstone = KeyValue {
                        key: record.key.clone(),
                        ..KeyValue::default()
                    };
                    put(&key, &tombstone.encode_to_vec())?;
                }
                false => put(&key, &event.kv)?,
            }
            self.report.events += 1;
            self.track(event.delete, record);
        }
        Ok(())
    }

    /// The rebuilt `lease` bucket and the report.
    pub(crate) fn finish(mut self) -> (BTreeMap<Vec<u8>, Vec<u8>>, ReplayReport) {
        let mut leases = std::mem::take(&mut self.base_leases);
        let mut unknown = std::collections::BTreeSet::new();
        for &id in self.leased.values() {
            let key = id.to_be_bytes().to_vec();
            if leases.contains_key(&key) {
                continue;
            }
            match self.lease_ttls.get(&id) {
                Some(&ttl) => {
                    leases.insert(key, LeaseRecord { id, ttl }.encode_to_vec());
                }
                None => {
                    unknown.insert(format!("{id:x}"));
                }
            }
        }
        self.report.leases = leases.len() as u64;
        self.report.leases_unknown = unknown.into_iter().collect();
        (leases, self.report)
    }
}
