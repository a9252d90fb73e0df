//! `backup`: etcd's snapshot streamed into a repository (trailer check, zstd, age, multipart
//! upload, no local copy), then the manifest, last.

use std::time::SystemTime;

use lifeboat_etcd_conn::{ConnectOptions, connect_first_healthy};
use lifeboat_etcd_data::TrailerCheck;
use lifeboat_repo::{ArtefactWriter, BackupId, EtcdFacts, FORMAT, Manifest, Repository, timestamp};

use crate::{Error, Progress, Result};

/// The artefact name of an etcd snapshot.
pub const ETCD_ARTEFACT: &str = "etcd-snapshot.db";

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub connect: ConnectOptions,
    pub labels: Labels,
}

/// What every manifest records about where and why a backup was made.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub host: String,
    pub tags: Vec<String>,
}

/// The manifest of a backup made of `artefacts`, created at `now`.
pub(crate) fn manifest(
    id: BackupId,
    kind: &str,
    now: SystemTime,
    labels: &Labels,
    etcd: Option<EtcdFacts>,
    artefacts: Vec<lifeboat_repo::Artefact>,
) -> Manifest {
    Manifest {
        format: FORMAT,
        id,
        kind: kind.into(),
        created: timestamp(now),
        host: labels.host.clone(),
        tool: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        tags: labels.tags.clone(),
        etcd,
        artefacts,
    }
}

/// Streams a snapshot of the first healthy endpoint into `repo`; returns the new manifest.
/// When `stop` resolves (to the signal's name) before the stream ends, the upload is aborted and
/// [`Error::Interrupted`] returned: object stores do not abort an upload that is merely dropped.
pub async fn backup(
    repo: &Repository,
    options: &BackupOptions,
    progress: &dyn Progress,
    stop: impl Future<Output = &'static str>,
) -> Result<Manifest> {
    let now = SystemTime::now();
    tokio::pin!(stop);
    let mut member = tokio::select! {
        member = connect_first_healthy(&options.connect) => member?,
        signal = &mut stop => return Err(Error::Interrupted { signal }),
    };
    let status = member.status().clone();
    let id = BackupId::new(now);
    let mut stream = member.snapshot().await?;
    let mut writer = ArtefactWriter::start(repo, &id, ETCD_ARTEFACT).await?;
    let mut trailer = TrailerCheck::new();
    progress.start(Some(status.db_size + lifeboat_etcd_data::TRAILER_LEN as u64));
    let streaming = async {
        while let Some(chunk) = stream.next_chunk().await? {
            trailer.update(&chunk);
            writer.write(&chunk).await?;
            progress.advance(chunk.len() as u64);
        }
        Ok(())
    };
    let streamed: Result<()> = tokio::select! {
        streamed = streaming => streamed,
        signal = &mut stop => Err(Error::Interrupted { signal }),
    };
    progress.finish();
    // Nothing is completed unless the whole stream arrived with a matching trailer.
    let checked = streamed.and_then(|()| {
        trailer.finish().map_err(|source| Error::Snapshot {
            endpoint: status.endpoint.clone(),
            source,
        })
    });
    let verified = match checked {
        Ok(verified) => verified,
        Err(error) => {
            let _ = writer.abort().await;
            return Err(error);
        }
    };
    let artefact = writer.finish(hex::encode(verified.sha256)).await?;
    let live_keys = u64::try_from(member.count_keys(status.revision).await?).unwrap_or(0);
    let facts = EtcdFacts {
        cluster_id: format!("{:x}", status.cluster_id),
        member_id: format!("{:x}", status.member_id),
        endpoint: status.endpoint.clone(),
        version: status.version.clone(),
        revision: status.revision,
        live_keys,
    };
    let manifest = manifest(id, "etcd", now, &options.labels, Some(facts), vec![artefact]);
    repo.put_manifest(&manifest).await?;
    Ok(manifest)
}
