//! The capture's uploader: sealed segments go to the repository in order, each retried until
//! the storage takes it, while the watch goes on. The queue is bounded in bytes: past the bound
//! the capture stops reading the watch (etcd keeps the history) instead of dropping anything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lifeboat_repo::{Repository, SegmentFacts, SegmentManifest, SegmentRange};
use tokio::sync::Notify;
use tracing::warn;

use crate::Cancel;

/// One segment waiting for the storage.
pub(crate) struct PendingSegment {
    pub cluster_id: u64,
    pub range: SegmentRange,
    pub facts: SegmentFacts,
    pub plain: Vec<u8>,
    /// Once stored, every write acknowledged before this time is (see `CaptureStatus`).
    pub covers: Option<SystemTime>,
}

/// The queue between the watch and the storage.
#[derive(Clone)]
pub(crate) struct UploadQueue {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<VecDeque<PendingSegment>>,
    bytes: AtomicUsize,
    changed: Notify,
    limit: usize,
}

/// Waits after a failed put, doubling up to the last.
const RETRY: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

impl UploadQueue {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(VecDeque::new()),
                bytes: AtomicUsize::new(0),
                changed: Notify::new(),
                limit,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<PendingSegment>> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn push(&self, segment: PendingSegment) {
        self.inner.bytes.fetch_add(segment.plain.len(), Ordering::SeqCst);
        self.lock().push_back(segment);
        self.inner.changed.notify_waiters();
    }

    /// Marks the newest queued segment as covering writes up to `time`; false when nothing
    /// is queued.
    pub(crate) fn cover_newest(&self, time: SystemTime) -> bool {
        match self.lock().back_mut() {
            Some(newest) => {
                newest.covers = newest.covers.max(Some(time));
                true
            }
            None => false,
        }
    }

    /// Plain bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.bytes() >= self.inner.limit
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Resolves once the queue holds at most half its bound (or nothing).
    pub(crate) async fn drained_to_half(&self) {
        loop {
            let changed = self.inner.changed.notified();
            if self.bytes() <= self.inner.limit / 2 {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once the queue is empty.
    pub(crate) async fn drained(&self) {
        loop {
            let changed = self.inner.changed.notified();
            if self.is_empty() {
                return;
            }
            changed.await;
        }
    }

    /// Puts queued segments in order until `cancel`; each stored one goes to `stored`. The
    /// segment at the head leaves the queue only once stored.
    pub(crate) async fn run(
        &self,
        repo: &Repository,
        cancel: &Cancel,
        stored: &(dyn Fn(&SegmentManifest, Option<SystemTime>) + Sync),
    ) {
        let mut failures = 0usize;
        loop {
            let changed = self.inner.changed.notified();
            let head = self
                .lock()
                .front()
                .map(|s| (s.cluster_id, s.range, s.facts.clone(), s.plain.clone()));
            let Some((cluster_id, range, facts, plain)) = head else {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changed => continue,
                }
            };
            if cancel.is_cancelled() {
                return;
            }
            let size = plain.len();
            let put = tokio::select! {
                _ = cancel.cancelled() => return,
                put = repo.put_segment(cluster_id, range, facts, plain) => put,
            };
            match put {
                Ok(manifest) => {
                    failures = 0;
                    // Read now: a progress answer may have extended it during the put.
                    let covers = self.lock().pop_front().and_then(|s| s.covers);
                    self.inner.bytes.fetch_sub(size, Ordering::SeqCst);
                    self.inner.changed.notify_waiters();
                    stored(&manifest, covers);
                }
                Err(error) => {
                    let wait = RETRY[failures.min(RETRY.len() - 1)];
                    failures += 1;
                    warn!(%error, queued_bytes = self.bytes(), "a segment could not be stored; retrying in {wait:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}
