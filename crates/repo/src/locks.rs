//! Repository locks, as restic's: an operation that writes or reads backups holds a shared lock,
//! one that deletes them (forget, prune, delete) an exclusive one, and a writer of one backup ID
//! (a backup, a copy) also claims that ID, so two copies of one backup never write it at once.
//!
//! A lock is the object `locks/<random>.json` (plain: no secret is in it) naming its host, PID,
//! operation and expiry. Its holder rewrites it every [`LOCK_REFRESH`]; a lock whose expiry
//! passed, or one of this host whose process is gone, is stale: ignored by others and removed by
//! `repo unlock`. Taking one is write, then look: write ours, list the others, and on a conflict
//! delete ours and refuse, so two racing takers may both refuse but never both hold.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::{BackupId, Error, Repository, Result, timestamp};

/// Where locks live.
const LOCKS: &str = "locks";
/// How long a lock holds without being refreshed.
pub const LOCK_VALIDITY: Duration = Duration::from_secs(300);
/// How often a holder refreshes its lock.
pub const LOCK_REFRESH: Duration = Duration::from_secs(60);

/// How long a lock holds and how often its holder refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    pub validity: Duration,
    /// Well under `validity`: a refresh that fails is retried until the lock would expire.
    pub refresh: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        Self {
            validity: LOCK_VALIDITY,
            refresh: LOCK_REFRESH,
        }
    }
}

/// What a lock allows others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKind {
    /// Others may read and write backups, not delete them.
    Shared,
    /// Shared, and nobody else writes backup ID.
    Writing(BackupId),
    /// Nobody else holds any lock.
    Exclusive,
}

/// A lock as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub exclusive: bool,
    /// The backup ID its holder writes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The command or job, e.g. `copy`, `forget`.
    pub operation: String,
    pub host: String,
    pub pid: u32,
    /// The PID namespace `pid` is in (`pid:[inode]`): a process of the same host name in
    /// another namespace (a container) cannot be looked up by PID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; refreshed while held.
    pub expires: String,
}

impl LockRecord {
    fn expiry(&self) -> Option<SystemTime> {
        let parsed =
            time::OffsetDateTime::parse(&self.expires, &time::format_description::well_known::Rfc3339)
                .ok()?;
        Some(SystemTime::from(parsed))
    }

    /// Expired, or of this host and PID namespace and a process that is gone.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        let expired = self.expiry().is_none_or(|expiry| expiry < now);
        let here =
            self.host == this_host() && self.pid_namespace.is_some() && self.pid_namespace == pid_namespace();
        let gone = here && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        expired || gone
    }

    fn conflicts_with(&self, other: &LockRecord) -> bool {
        self.exclusive || other.exclusive || (self.backup.is_some() && self.backup == other.backup)
    }

    /// One line for an error or a listing: `forget on host H (PID P) since T, held until E`.
    pub fn describe(&self) -> String {
        let writing = match &self.backup {
            Some(id) => format!(" writing {id}"),
            None => String::new(),
        };
        format!(
            "{}{writing} on host {} (PID {}) since {}, held until {}",
            self.operation, self.host, self.pid, self.created, self.expires
        )
    }
}

/// This process's PID namespace, as `/proc/self/ns/pid` names it.
fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.display().to_string())
}

/// The host name locks carry; the same on every call.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

fn lock_key(name: &str) -> String {
    format!("{LOCKS}/{name}.json")
}

/// A stored lock as [`Repository::locks`] lists it: its key, and its record if it parses.
#[derive(Debug)]
pub struct StoredLock {
    pub key: String,
    pub record: Option<LockRecord>,
}

impl Repository {
    /// Takes a lock of `kind` for `operation`, or refuses naming the holder of a lock in the way.
    pub async fn lock(&self, operation: &str, kind: LockKind) -> Result<RepoLock> {
        self.lock_timed(operation, kind, LockTiming::default()).await
    }

    /// [`Repository::lock`] with another validity and refresh period.
    pub async fn lock_timed(&self, operation: &str, kind: LockKind, timing: LockTiming) -> Result<RepoLock> {
        let now = SystemTime::now();
        let record = LockRecord {
            exclusive: kind == LockKind::Exclusive,
            backup: match &kind {
                LockKind::Writing(id) => Some(id.to_string()),
                LockKind::Shared | LockKind::Exclusive => None,
            },
            operation: operation.to_string(),
            host: this_host(),
            pid: std::process::id(),
            pid_namespace: pid_namespace(),
            created: timestamp(now),
            expires: timestamp(now + timing.validity),
        };
        let key = lock_key(&format!("{:016x}", rand::random::<u64>()));
        self.put_lock(&key, &record).await?;
        let mut lock = RepoLock {
            repo: self.clone(),
            key,
            state: Arc::new(Mutex::new(Held {
                record,
                valid_until: now + timing.validity,
                lost: None,
            })),
            stopped: Arc::new(tokio::sync::Mutex::new(false)),
            refresher: None,
        };
        let in_the_way = match self.locks().await {
            Ok(locks) => locks
                .into_iter()
                .filter(|other| other.key != lock.key)
                .filter_map(|other| other.record)
                .find(|other| !other.is_stale(SystemTime::now()) && lock.record().conflicts_with(other)),
            Err(error) => {
                lock.release().await;
                return Err(error);
            }
        };
        if let Some(holder) = in_the_way {
            lock.release().await;
            return Err(Error::Locked {
                repo: self.storage().repo().to_string(),
                holder: holder.describe(),
            });
        }
        lock.refresher = Some(tokio::spawn(refresh(
            self.clone(),
            lock.key.clone(),
            lock.state.clone(),
            lock.stopped.clone(),
            timing,
        )));
        Ok(lock)
    }

    async fn put_lock(&self, key: &str, record: &LockRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Format {
            object: key.to_string(),
            what: "lock",
            message: e.to_string(),
        })?;
        self.storage().put(key, json).await
    }

    /// Every lock object; one that does not parse has no record (`repo unlock --remove-all`
    /// removes it). A lock removed while listing is left out.
    pub async fn locks(&self) -> Result<Vec<StoredLock>> {
        let mut locks = Vec::new();
        for (key, _) in self.storage().list(LOCKS).await? {
            let bytes = match self.storage().get(&key).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(Error::TooLarge { .. }) => Vec::new(),
                Err(error) => return Err(error),
            };
            let record = serde_json::from_slice(&bytes).ok();
            locks.push(StoredLock { key, record });
        }
        Ok(locks)
    }

    /// Removes the lock object `key` (one [`Repository::locks`] listed).
    pub async fn remove_lock(&self, key: &str) -> Result<()> {
        self.storage().delete(key).await
    }
}

struct Held {
    record: LockRecord,
    /// Until when the stored lock holds, by this process's clock.
    valid_until: SystemTime,
    /// Why it no longer holds.
    lost: Option<String>,
}

/// A held lock: refreshed in the background, removed by [`RepoLock::release`] (or, dropped, in
/// the background). Check [`RepoLock::ensure_held`] before each commit or delete.
pub struct RepoLock {
    repo: Repository,
    key: String,
    state: Arc<Mutex<Held>>,
    /// Set, under this async mutex, when the lock is released: a refresh holds it while it
    /// writes, so no refresh lands after the removal.
    stopped: Arc<tokio::sync::Mutex<bool>>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RepoLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RepoLock {
    fn record(&self) -> LockRecord {
        self.state
            .lock()
            .map(|held| held.record.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().record.clone())
    }

    /// `Ok` while the lock holds: refreshed in time and not removed by someone else.
    pub fn ensure_held(&self) -> Result<()> {
        let held = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reason = match &held.lost {
            Some(reason) => reason.clone(),
            None if held.valid_until <= SystemTime::now() => "it was not refreshed in time".to_string(),
            None => return Ok(()),
        };
        Err(Error::LockLost {
            repo: self.repo.storage().repo().to_string(),
            reason,
        })
    }

    /// Removes the lock, once a refresh in flight has landed.
    pub async fn release(mut self) {
        let key = std::mem::take(&mut self.key);
        remove(
            self.repo.clone(),
            key,
            self.stopped.clone(),
            self.refresher.take(),
        )
        .await;
    }
}

/// Stops the refresher (waiting for a write in flight), then removes the lock object.
async fn remove(
    repo: Repository,
    key: String,
    stopped: Arc<tokio::sync::Mutex<bool>>,
    refresher: Option<JoinHandle<()>>,
) {
    *stopped.lock().await = true;
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    let _ = repo.remove_lock(&key).await;
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if self.key.is_empty() {
            return;
        }
        // Dropped without release (a cancelled task): removed in the background if a runtime is
        // still there; otherwise it goes stale when it expires.
        let (repo, key, stopped, refresher) = (
            self.repo.clone(),
            std::mem::take(&mut self.key),
            self.stopped.clone(),
            self.refresher.take(),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(remove(repo, key, stopped, refresher));
            }
            Err(_) => {
                if let Some(refresher) = refresher {
                    refresher.abort();
                }
            }
        }
    }
}

/// Keeps the lock `key` alive; marks it lost when it was removed or cannot be refreshed in time.
async fn refresh(
    repo: Repository,
    key: String,
    state: Arc<Mutex<Held>>,
    stopped: Arc<tokio::sync::Mutex<bool>>,
    timing: LockTiming,
) {
    loop {
        tokio::time::sleep(timing.refresh).await;
        let stopping = stopped.lock().await;
        if *stopping {
            return;
        }
        let now = SystemTime::now();
        let mut record = match state.lock() {
            // Expired: others may have taken it as stale meanwhile; it is never revived.
            Ok(mut held) if held.valid_until <= now => {
                held.lost = Some("it was not refreshed in time".to_string());
                return;
            }
            Ok(held) => held.record.clone(),
            Err(_) => return,
        };
        let removed = matches!(repo.storage().get(&key).await, Ok(None));
        record.expires = timestamp(now + timing.validity);
        let outcome = match removed {
            true => Err("it was removed (`repo unlock`?)".to_string()),
            false => repo.put_lock(&key, &record).await.map_err(|e| e.to_string()),
        };
        let Ok(mut held) = state.lock() else { return };
        match outcome {
            Ok(()) => {
                held.record = record;
                held.valid_until = now + timing.validity;
            }
            Err(reason) if removed => {
                held.lost = Some(reason);
                return;
            }
            // A failed refresh is retried until the lock would expire.
            Err(_) => {}
        }
        drop(held);
        drop(stopping);
    }
}
