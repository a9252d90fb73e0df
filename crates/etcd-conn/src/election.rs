//! Leadership by etcd's own election (the concurrency API's Campaign, as `etcdctl elect` uses
//! it): each candidate puts a key under the election's name, bound to a lease it keeps alive;
//! the oldest key leads. Whatever endpoints the candidates were given, the cluster decides, so
//! exactly one leads; a candidate that stops renewing its lease (dead, partitioned, paused)
//! loses its key when the lease expires, and the next one leads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, ElectionClient, LeaderKey, ResignOptions};

use crate::member::Peer;
use crate::{Member, Result};

/// A candidate's standing in one election, over one lease.
pub struct Candidacy {
    client: Client,
    election: ElectionClient,
    peer: Peer,
    name: String,
    lease: i64,
    term: Term,
    keeper: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Candidacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidacy")
            .field("name", &self.name)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Proof of a won campaign.
#[derive(Debug)]
pub struct Elected {
    key: Option<LeaderKey>,
}

/// Whether a lease still surely holds, judged by this process's monotonic clock alone, so a
/// process that was paused or cut off knows it has lost without asking anyone.
#[derive(Debug, Clone)]
pub struct Term {
    state: Arc<TermState>,
}

#[derive(Debug)]
struct TermState {
    ttl: Duration,
    /// When the last renewal that etcd confirmed was sent (the lease runs from no earlier).
    renewed: Mutex<Instant>,
    lost: AtomicBool,
}

impl Term {
    fn new(ttl: Duration) -> Self {
        Self {
            state: Arc::new(TermState {
                ttl,
                renewed: Mutex::new(Instant::now()),
                lost: AtomicBool::new(false),
            }),
        }
    }

    /// True while the lease was renewed less than half its TTL ago and never refused: others
    /// can take over only once a whole TTL has passed without a renewal, so a holder that
    /// sees this true is still the only one.
    pub fn held(&self) -> bool {
        let renewed = *self.state.renewed.lock().unwrap_or_else(|e| e.into_inner());
        !self.state.lost.load(Ordering::SeqCst) && renewed.elapsed() < self.state.ttl / 2
    }

    fn renewed_at(&self, sent: Instant) {
        *self.state.renewed.lock().unwrap_or_else(|e| e.into_inner()) = sent;
    }

    fn lose(&self) {
        self.state.lost.store(true, Ordering::SeqCst);
    }
}

/// Renews `lease` every quarter of `ttl` until a renewal is refused or unanswered.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, term: Term) {
    let interval = ttl / 4;
    let Ok((mut keeper, mut answers)) = client.lease_keep_alive(lease).await else {
        term.lose();
        return;
    };
    loop {
        let sent = Instant::now();
        let renewed = async {
            keeper.keep_alive().await.ok()?;
            answers.message().await.ok()?
        };
        match tokio::time::timeout(interval, renewed).await {
            Ok(Some(answer)) if answer.ttl() > 0 => term.renewed_at(sent),
            _ => {
                term.lose();
                return;
            }
        }
        tokio::time::sleep(interval.saturating_sub(sent.elapsed())).await;
    }
}

impl Member {
    /// Joins election `name` with a new lease of `ttl`, kept alive from now on; nothing is
    /// written until [`Candidacy::campaign`].
    pub async fn stand(&self, name: &str, ttl: Duration) -> Result<Candidacy> {
        let mut client = self.client();
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = client
            .lease_grant(seconds, None)
            .await
            .map_err(|e| self.peer().classify(&e))?;
        let term = Term::new(ttl);
        let keeper = tokio::spawn(keep_alive(client.clone(), granted.id(), ttl, term.clone()));
        Ok(Candidacy {
            election: client.election_client(),
            client,
            peer: self.peer().clone(),
            name: name.to_string(),
            lease: granted.id(),
            term,
            keeper,
        })
    }
}

impl Candidacy {
    /// Puts this candidate's `value` in the election and waits until it leads.
    /// Returns the key that proves it, for [`Candidacy::resign`].
    pub async fn campaign(&self, value: &str) -> Result<Elected> {
        let elected = self
            .election
            .clone()
            .campaign(self.name.as_str(), value, self.lease)
            .await
            .map_err(|e| self.peer.classify(&e))?;
        Ok(Elected {
            key: elected.leader().cloned(),
        })
    }

    /// The lease's standing, for whoever must stop when it is lost.
    pub fn term(&self) -> Term {
        self.term.clone()
    }

    /// The value of the candidate that leads now, if any.
    pub async fn leader(&self) -> Result<Option<String>> {
        match self.election.clone().leader(self.name.as_str()).await {
            Ok(answer) => Ok(answer
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
            // etcd answers "election: no leader" as an error when nobody campaigns.
            Err(e) if e.to_string().contains("no leader") => Ok(None),
            Err(e) => Err(self.peer.classify(&e)),
        }
    }

    /// Gives the leadership and the lease up at once, so the next candidate leads without
    /// waiting for the lease to expire. Best effort: an unreachable cluster lets it expire.
    pub async fn resign(mut self, elected: Option<Elected>) {
        self.keeper.abort();
        self.term.lose();
        if let Some(key) = elected.and_then(|e| e.key) {
            let _ = self
                .election
                .resign(Some(ResignOptions::new().with_leader(key)))
                .await;
        }
        let _ = self.client.lease_revoke(self.lease).await;
    }
}

impl Drop for Candidacy {
    fn drop(&mut self) {
        self.keeper.abort();
        self.term.lose();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_is_held_for_half_its_ttl_after_a_renewal_and_never_once_lost() {
        let term = Term::new(Duration::from_secs(10));
        assert!(term.held());
        term.renewed_at(Instant::now() - Duration::from_secs(6));
        assert!(!term.held(), "past half the TTL");
        term.renewed_at(Instant::now());
        assert!(term.held());
        term.lose();
        term.renewed_at(Instant::now());
        assert!(!term.held(), "a refused renewal is final");
    }
}
