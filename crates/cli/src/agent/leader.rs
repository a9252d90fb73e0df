//! Leadership without the Kubernetes API: the agent whose local etcd member is the raft leader
//! runs the cluster-wide jobs (as gardener's backup sidecars decide). The local member is asked
//! (Maintenance.Status) every `leader_check`; an unanswered question means "not leading", so two
//! agents never both back up because one lost its member. The leading agent also records the
//! cluster's revision in the repository (at most once a minute), so a recovery can size its
//! revision bump (`lifeboat_core::revision_gap`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lifeboat_core::Cancel;
use lifeboat_etcd_conn::{Member, MemberStatus};
use tracing::{info, warn};

use super::Agent;
use super::config::LeaderMode;

/// How often the leading agent records the cluster's revision.
const MARK_EVERY: Duration = Duration::from_secs(60);

/// Asks the local member (the first endpoint) how it stands: its ID, the leader's, its
/// cluster's and its revision.
async fn ask(agent: &Agent, member: &mut Option<Member>) -> anyhow::Result<MemberStatus> {
    if member.is_none() {
        let options = agent.etcd_flags()?.resolve()?;
        let endpoint = options.endpoints.first().cloned().unwrap_or_default();
        *member = Some(lifeboat_etcd_conn::connect(&options, &endpoint).await?);
    }
    let Some(connected) = member.as_mut() else {
        anyhow::bail!("no connection to the local member");
    };
    match connected.refresh_status().await {
        Ok(status) => Ok(status.clone()),
        Err(error) => {
            // Reconnect next time: the member may have restarted.
            *member = None;
            Err(error.into())
        }
    }
}

pub async fn watch(agent: Arc<Agent>, stop: Cancel) {
    if agent.config.leader == LeaderMode::Always {
        return;
    }
    let mut member = None;
    let mut marked: Option<Instant> = None;
    loop {
        let answer = tokio::select! {
            _ = stop.cancelled() => return,
            answer = tokio::time::timeout(agent.config.leader_check.max(std::time::Duration::from_secs(2)), ask(&agent, &mut member)) => answer,
        };
        let answer = answer.unwrap_or_else(|_| {
            member = None;
            Err(anyhow::anyhow!("the local member did not answer in time"))
        });
        let (leading, member_id, leader_id, error) = match &answer {
            Ok(status) => (
                status.leader != 0 && status.leader == status.member_id,
                Some(status.member_id),
                Some(status.leader),
                None,
            ),
            Err(error) => (false, None, None, Some(crate::exit::one_line(error))),
        };
        if let Ok(status) = &answer
            && leading
            && marked.is_none_or(|at| at.elapsed() >= MARK_EVERY)
        {
            marked = Some(Instant::now());
            // Off the loop: a slow repository must not delay the next look at leadership.
            let (agent, status) = (agent.clone(), status.clone());
            tokio::spawn(async move {
                if let Err(error) = mark_revision(&agent, &status).await {
                    warn!(
                        "cannot record the cluster's revision in the repository: {}",
                        crate::exit::one_line(&error)
                    );
                }
            });
        }
        let changed = {
            let mut status = agent.status();
            let state = &mut status.leadership;
            let changed = state.leading != leading;
            if changed || !state.known {
                state.since = Some(SystemTime::now());
            }
            if error.is_some() && state.error.is_none() {
                warn!(
                    "cannot ask the local etcd member who leads: {}; cluster-wide jobs wait",
                    error.as_deref().unwrap_or_default()
                );
            }
            state.leading = leading;
            state.member_id = member_id;
            state.leader_id = leader_id;
            state.error = error;
            state.known = true;
            changed
        };
        agent.metrics.leader.set(i64::from(leading));
        if changed {
            agent.metrics.leader_changes.inc();
            match leading {
                true => info!(
                    "leadership: the local member {:x} leads; this agent now runs the cluster-wide jobs",
                    member_id.unwrap_or_default()
                ),
                false => info!(
                    "leadership: the local member no longer leads (leader {:x}); cluster-wide jobs stop here",
                    leader_id.unwrap_or_default()
                ),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(agent.config.leader_check) => {}
        }
    }
}

async fn mark_revision(agent: &Agent, status: &MemberStatus) -> anyhow::Result<()> {
    let repo = agent.open_repository().await?;
    lifeboat_core::revision_gap::record(&repo, status.cluster_id, status.revision, SystemTime::now()).await?;
    Ok(())
}
