//! One watch over the whole key space, for point-in-time capture: every event, revision by
//! revision, from a given revision on, with progress notifications on request.
//!
//! Without fragmenting, etcd sends the events of one revision in one response and splits a
//! catch-up only between revisions (`watchableStore`'s batches), so each response holds
//! complete revisions.

use etcd_client::{EventType, WatchOptions, WatchStream};

use crate::member::{Member, Peer};
use crate::{Error, Result};

/// A catch-up response holds at most 1000 revisions; Kubernetes writes stay far below etcd's
/// 1.5 MiB request limit each, so this bounds one response's memory with room to spare.
const MAX_RESPONSE: usize = 256 << 20;

/// One event as the watch delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub delete: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// Every event of one revision, in delivery (sub-revision) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedRevision {
    pub revision: i64,
    pub events: Vec<WatchedEvent>,
}

/// What one watch response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchBatch {
    /// Complete revisions, ascending.
    Revisions(Vec<WatchedRevision>),
    /// Every event up to this revision has been delivered.
    Progress(i64),
}

/// A whole-keyspace watch.
pub struct KeyspaceWatch {
    stream: WatchStream,
    peer: Peer,
    watch_id: i64,
}

impl std::fmt::Debug for KeyspaceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyspaceWatch")
            .field("watch_id", &self.watch_id)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Watches every key from revision `from` on. A `from` at or below the member's compact
    /// revision fails with [`Error::WatchCompacted`].
    pub async fn watch_keyspace(&mut self, from: i64) -> Result<KeyspaceWatch> {
        let options = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(from)
            .with_progress_notify();
        let peer = self.peer().clone();
        let mut client = self
            .client()
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE);
        let mut stream = client
            .watch("", Some(options))
            .await
            .map_err(|e| peer.classify(&e))?;
        // The first response says whether the watch was created.
        let first = stream
            .message()
            .await
            .map_err(|e| peer.classify(&e))?
            .ok_or_else(|| lost(&peer, "the watch stream ended before it was created"))?;
        check_canceled(&peer, &first)?;
        let mut watch = KeyspaceWatch {
            stream,
            peer,
            watch_id: first.watch_id(),
        };
        if !first.created() {
            return Err(lost(
                &watch.peer,
                "the first watch response did not create the watch",
            ));
        }
        // A created response may carry no events; anything else it holds is not lost.
        if !first.events().is_empty() {
            return Err(lost(
                &watch.peer,
                "events arrived in the watch's created response",
            ));
        }
        watch.watch_id = first.watch_id();
        Ok(watch)
    }

    /// The TTL a lease was granted with; `None` when it no longer exists.
    pub async fn lease_granted_ttl(&mut self, id: i64) -> Result<Option<i64>> {
        let peer = self.peer().clone();
        let response = self
            .client()
            .lease_time_to_live(id, None)
            .await
            .map_err(|e| peer.classify(&e))?;
        // etcd answers TTL -1 for a lease that expired or was revoked.
        Ok((response.ttl() >= 0 && response.granted_ttl() > 0).then_some(response.granted_ttl()))
    }
}

fn lost(peer: &Peer, reason: &str) -> Error {
    peer.lost(reason)
}

fn check_canceled(peer: &Peer, response: &etcd_client::WatchResponse) -> Result<()> {
    if !response.canceled() {
        return Ok(());
    }
    if response.compact_revision() > 0 {
        return Err(Error::WatchCompacted {
            endpoint: peer.endpoint().to_string(),
            compact_revision: response.compact_revision(),
        });
    }
    Err(lost(
        peer,
        &format!("etcd canceled the watch: {}", response.cancel_reason()),
    ))
}

impl KeyspaceWatch {
    /// Asks etcd to say how far the watch has been delivered ([`WatchBatch::Progress`]).
    pub async fn request_progress(&mut self) -> Result<()> {
        self.stream
            .request_progress()
            .await
            .map_err(|e| self.peer.classify(&e))
    }

    /// The next response; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<WatchBatch>> {
        loop {
            let Some(response) = self.stream.message().await.map_err(|e| self.peer.classify(&e))? else {
                return Ok(None);
            };
            check_canceled(&self.peer, &response)?;
            let revision = response.header().map_or(0, |h| h.revision());
            if response.events().is_empty() {
                if response.created() || revision <= 0 {
                    continue;
                }
                return Ok(Some(WatchBatch::Progress(revision)));
            }
            let mut revisions: Vec<WatchedRevision> = Vec::new();
            for event in response.events() {
                let Some(kv) = event.kv() else {
                    return Err(lost(&self.peer, "a watch event without a key-value"));
                };
                let watched = WatchedEvent {
                    delete: event.event_type() == EventType::Delete,
                    key: kv.key().to_vec(),
                    value: kv.value().to_vec(),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                    version: kv.version(),
                    lease: kv.lease(),
                };
                match revisions.last_mut() {
                    Some(last) if last.revision == watched.mod_revision => last.events.push(watched),
                    Some(last) if last.revision > watched.mod_revision => {
                        return Err(lost(&self.peer, "watch events out of revision order"));
                    }
                    _ => revisions.push(WatchedRevision {
                        revision: watched.mod_revision,
                        events: vec![watched],
                    }),
                }
            }
            return Ok(Some(WatchBatch::Revisions(revisions)));
        }
    }
}
