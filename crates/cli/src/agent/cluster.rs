//! This agent's cluster: its etcd cluster ID, learned from the members it talks to, and the view
//! of a repository several clusters may share. The view holds the cluster's own backups and
//! drills, plus this host's files and streams that name no cluster (written before backups
//! named one): another cluster's fresh backup never hides a gap of this one.

use std::time::Duration;

use lifeboat_core::drill::DrillReport;
use lifeboat_repo::{Listing, Manifest};
use tracing::{info, warn};

use super::Agent;

/// How long the agent tries to learn its cluster before it lists the repository without it.
const IDENTIFY_LIMIT: Duration = Duration::from_secs(5);

impl Agent {
    /// The etcd cluster ID (hex) this agent serves, once a member told it.
    pub(super) fn cluster_id(&self) -> Option<String> {
        self.cluster_id.borrow().clone()
    }

    /// The `cluster` label of every metric: the configured name, else the cluster ID, else empty
    /// until a member answered.
    pub(super) fn cluster_label(&self) -> String {
        self.config
            .cluster
            .clone()
            .or_else(|| self.cluster_id())
            .unwrap_or_default()
    }

    /// Takes in the cluster ID a member reported (or an etcd backup recorded); a new one
    /// changes the view, so the repository is looked at again.
    pub(super) fn learn_cluster(&self, id: u64) {
        let id = format!("{id:x}");
        let previous = self.cluster_id.send_replace(Some(id.clone()));
        match previous {
            None => info!("this agent serves etcd cluster {id}"),
            Some(old) if old != id => warn!(
                "etcd cluster ID changed from {old} to {id} (was the cluster restored?); \
                 the status page and metrics now follow {id}"
            ),
            Some(_) => return,
        }
        self.catalog_wanted.notify_one();
    }

    /// [`Agent::learn_cluster`] from a manifest's hex ID.
    pub(super) fn learn_cluster_hex(&self, id: &str) {
        if let Ok(id) = u64::from_str_radix(id, 16) {
            self.learn_cluster(id);
        }
    }

    /// Asks a member for the cluster ID when it is not known yet (bounded: a down etcd must not
    /// delay the repository's listing).
    pub(super) async fn identify(&self) {
        if self.cluster_id().is_some() || !self.config.etcd.given() {
            return;
        }
        let asked = tokio::time::timeout(IDENTIFY_LIMIT, async {
            let options = self.etcd_flags()?.resolve()?;
            let member = lifeboat_etcd_conn::connect_first_healthy(&options).await?;
            anyhow::Ok(member.status().cluster_id)
        })
        .await;
        match asked {
            Ok(Ok(id)) => self.learn_cluster(id),
            Ok(Err(error)) => warn!(
                "cannot learn this agent's etcd cluster yet: {}",
                crate::exit::one_line(&error)
            ),
            Err(_) => warn!(
                "cannot learn this agent's etcd cluster yet: no member answered within {} s",
                IDENTIFY_LIMIT.as_secs()
            ),
        }
    }

    /// An agent without etcd and without `cluster_id:` (the drill Deployment) serves the
    /// cluster of the repository's newest etcd backup, looked at again at each listing: after a
    /// restore (a new cluster ID) it follows the new cluster. When the repository holds
    /// several clusters' backups it says so: `cluster_id:` pins one.
    pub(super) fn adopt_from(&self, listing: &Listing) {
        if self.config.etcd.given() || self.config.cluster_id.is_some() {
            return;
        }
        // Oldest first: the last etcd backup is the newest.
        let Some(newest) = listing.backups.iter().rev().find_map(|m| m.etcd.as_ref()) else {
            return;
        };
        let id = newest.cluster_id.clone();
        if self.cluster_id().as_deref() == Some(id.as_str()) {
            return;
        }
        let clusters: std::collections::BTreeSet<&str> = listing
            .backups
            .iter()
            .filter_map(|m| m.etcd.as_ref().map(|e| e.cluster_id.as_str()))
            .collect();
        match clusters.len() {
            1 => info!("this agent serves etcd cluster {id}, the one the repository holds"),
            _ => warn!(
                "the repository holds backups of etcd clusters {}; this agent follows {id}, whose \
                 backup is the newest; set cluster_id: to pin the one it serves",
                clusters.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }
        self.cluster_id.send_replace(Some(id));
    }

    /// Whether `manifest` is in this agent's view.
    pub(super) fn ours(&self, manifest: &Manifest) -> bool {
        match (manifest.cluster_id(), self.cluster_id()) {
            (Some(theirs), Some(ours)) => theirs == ours,
            // Not knowing its cluster, the agent claims no cluster's backup.
            (Some(_), None) => false,
            (None, _) => manifest.host == self.host,
        }
    }

    /// The listing cut to this agent's view.
    pub(super) fn scoped(&self, listing: Listing) -> Listing {
        Listing {
            backups: listing.backups.into_iter().filter(|m| self.ours(m)).collect(),
            unreadable: listing.unreadable,
        }
    }

    /// The drills of this cluster's backups: by the cluster a report names, else (reports
    /// written before they named one) by its backup being in the view.
    pub(super) fn our_drills(&self, drills: Vec<DrillReport>, view: &Listing) -> Vec<DrillReport> {
        let ours = self.cluster_id();
        drills
            .into_iter()
            .filter(|drill| match (&drill.cluster_id, &ours) {
                (Some(theirs), Some(ours)) => theirs == ours,
                (Some(_), None) => false,
                (None, _) => view.backups.iter().any(|m| m.id.to_string() == drill.backup),
            })
            .collect()
    }
}
