//! Leadership by etcd's own election: every agent of a cluster campaigns under
//! [`ELECTION`] with a lease it keeps alive; the cluster, not the endpoint an agent happens to
//! ask, decides who leads, so exactly one agent runs the cluster-wide jobs whatever endpoints
//! each was given. The leader's jobs are fenced by its [`Term`]: once the lease is not surely
//! held (the agent was paused, cut off, or its renewals refused), every check in them fails and
//! nothing more is committed. Another agent leads within one lease TTL of the leader's end.
//!
//! Tie-break: an agent whose answering member is the raft leader campaigns at once, the others
//! a quarter TTL later, so at start the leader's agent usually wins (the snapshot is then taken
//! without a network hop). The leading agent also records the cluster's revision in the
//! repository (at most once a minute), so a recovery can size its revision bump
//! (`lifeboat_core::revision_gap`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lifeboat_core::Cancel;
use lifeboat_etcd_conn::{Candidacy, Elected, Member, Term, connect_first_healthy};
use tracing::{info, warn};

use super::Agent;
use super::config::LeaderMode;

/// The election's name: its keys are `lifeboat/leader/<lease>` in the cluster's own etcd.
pub const ELECTION: &str = "lifeboat/leader";
/// How often the leading agent records the cluster's revision.
const MARK_EVERY: Duration = Duration::from_secs(60);

pub async fn watch(agent: Arc<Agent>, stop: Cancel) {
    if agent.config.leader == LeaderMode::Always {
        return;
    }
    loop {
        if let Err(error) = stand(&agent, &stop).await {
            let error = crate::exit::one_line(&error);
            if agent.status().leadership.error.is_none() {
                warn!("leadership: {error}; cluster-wide jobs wait until this agent is elected again");
            }
            agent.settle(false, None, Some(error));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(agent.config.leader_check) => {}
        }
    }
}

/// One candidacy: campaign, then lead until the term ends or the agent stops (Ok).
async fn stand(agent: &Arc<Agent>, stop: &Cancel) -> anyhow::Result<()> {
    let options = agent.etcd_flags()?.resolve()?;
    let ttl = agent.config.leader_ttl;
    let mut member = connect_first_healthy(&options).await?;
    agent.learn_cluster(member.status().cluster_id);
    let candidacy = member.stand(ELECTION, ttl).await?;
    let term = candidacy.term();
    let status = member.status().clone();
    if status.leader != status.member_id {
        tokio::select! {
            _ = stop.cancelled() => return resign(candidacy, None).await,
            _ = tokio::time::sleep(ttl / 4) => {}
        }
    }
    let me = format!("{} (pid {})", agent.host, std::process::id());
    let outcome = {
        let campaign = candidacy.campaign(&me);
        tokio::pin!(campaign);
        loop {
            tokio::select! {
                elected = &mut campaign => break Some(elected?),
                _ = stop.cancelled() => break None,
                _ = tokio::time::sleep(check_every(agent)) => {
                    if !term.held() {
                        anyhow::bail!("the lease on {} was not renewed in time", status.endpoint);
                    }
                    let leader = tokio::time::timeout(ttl / 4, candidacy.leader()).await;
                    agent.settle(false, leader.ok().and_then(Result::ok).flatten(), None);
                }
            }
        }
    };
    let Some(elected) = outcome else {
        return resign(candidacy, None).await;
    };
    agent.lead(term.clone(), &me);
    let mut marked: Option<Instant> = None;
    loop {
        if marked.is_none_or(|at| at.elapsed() >= MARK_EVERY) {
            marked = Some(Instant::now());
            mark_revision(agent, &mut member).await;
        }
        tokio::select! {
            _ = stop.cancelled() => return resign(candidacy, Some(elected)).await,
            _ = tokio::time::sleep(check_every(agent)) => {}
        }
        if !term.held() {
            agent.settle(false, None, None);
            anyhow::bail!(
                "the lease on {} was not renewed in time; another agent may lead now",
                status.endpoint
            );
        }
    }
}

/// How often the term and the election are looked at: often enough to notice a lost lease
/// well within its TTL.
fn check_every(agent: &Agent) -> Duration {
    agent.config.leader_check.min(agent.config.leader_ttl / 4)
}

async fn resign(candidacy: Candidacy, elected: Option<Elected>) -> anyhow::Result<()> {
    // Bounded: a cluster that does not answer lets the lease expire instead.
    let _ = tokio::time::timeout(Duration::from_secs(2), candidacy.resign(elected)).await;
    Ok(())
}

/// Records the cluster's revision in the repository, off the leadership loop's path: a slow
/// repository must not delay the next look at the term.
async fn mark_revision(agent: &Arc<Agent>, member: &mut Member) {
    let status = match tokio::time::timeout(Duration::from_secs(5), member.refresh_status()).await {
        Ok(Ok(status)) => status.clone(),
        _ => return,
    };
    let agent = agent.clone();
    tokio::spawn(async move {
        let recorded = async {
            let repo = agent.open_repository().await?;
            lifeboat_core::revision_gap::record(&repo, status.cluster_id, status.revision, SystemTime::now())
                .await?;
            anyhow::Ok(())
        };
        // Bounded: on a storage that hangs, marks must not pile up a minute at a time.
        let recorded = async {
            tokio::time::timeout(MARK_EVERY / 2, recorded)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the repository did not answer")))
        };
        if let Err(error) = recorded.await {
            warn!(
                "cannot record the cluster's revision in the repository: {}",
                crate::exit::one_line(&error)
            );
        }
    });
}

impl Agent {
    /// This agent leads from now, for as long as `term` holds.
    fn lead(&self, term: Term, me: &str) {
        self.term.send_replace(Some(term));
        self.settle(true, Some(me.to_string()), None);
    }

    /// Records whether this agent leads, who does (as that agent names itself), or why it is
    /// unknown; logs and counts changes.
    pub(super) fn settle(&self, leading: bool, leader: Option<String>, error: Option<String>) {
        if !leading {
            self.term.send_replace(None);
        }
        let changed = {
            let mut status = self.status();
            let state = &mut status.leadership;
            let changed = state.leading != leading;
            if changed || !state.known {
                state.since = Some(SystemTime::now());
            }
            state.leading = leading;
            if leader.is_some() || leading || error.is_some() {
                state.leader = leader;
            }
            state.error = error;
            state.known = true;
            changed
        };
        self.metrics.leader.set(i64::from(leading));
        if changed {
            self.metrics.leader_changes.inc();
            match leading {
                true => info!("leadership: elected; this agent now runs the cluster-wide jobs"),
                false => info!("leadership: no longer leading; cluster-wide jobs stop here"),
            }
        }
    }

    /// The term a cluster-wide job runs under: `None` when this agent does not lead now.
    pub(super) fn current_term(&self) -> Option<Term> {
        self.term.borrow().clone().filter(Term::held)
    }
}
