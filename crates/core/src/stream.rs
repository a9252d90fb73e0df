//! `backup --stream NAME -- CMD ARGS...`: a command's standard output (pg_dump and the like)
//! stored as an artefact beside the cluster's backups. The backup exists only if the command
//! succeeded: a non-zero exit aborts the upload and writes no manifest.

use std::process::Stdio;
use std::time::SystemTime;

use lifeboat_repo::{ArtefactWriter, BackupId, Manifest, Repository};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::backup::{Labels, manifest};
use crate::{Error, Progress, Result};

/// Whether `name` can name an artefact: a plain file name, not the manifest's.
pub fn check_artefact_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name != "manifest.json"
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "{name:?} cannot name an artefact: use letters, digits, '.', '-', '_' (not manifest.json)"
        ),
    })
}

/// Runs `command` and streams its stdout into a new backup of kind `stream`.
pub async fn backup_stream(
    repo: &Repository,
    name: &str,
    command: &[String],
    labels: &Labels,
    progress: &dyn Progress,
    stop: impl Future<Output = &'static str>,
) -> Result<Manifest> {
    check_artefact_name(name)?;
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Usage {
            message: "no command given: put it after --, e.g. -- pg_dump -h db mydb".into(),
        });
    };
    let now = SystemTime::now();
    let id = BackupId::new(now);
    let described = command.join(" ");
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Usage {
            message: format!("cannot run {program:?}: {e}; check the command after --"),
        })?;
    let Some(mut stdout) = child.stdout.take() else {
        return Err(Error::Usage {
            message: format!("no output from {program:?}"),
        });
    };
    let mut writer = ArtefactWriter::start(repo, &id, name).await?;
    progress.start(None);
    let mut plain = Sha256::new();
    let streaming = async {
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            let n = stdout.read(&mut buffer).await.map_err(|source| Error::Io {
                action: "read the output of",
                path: program.into(),
                source,
            })?;
            if n == 0 {
                break;
            }
            plain.update(&buffer[..n]);
            writer.write(&buffer[..n]).await?;
            progress.advance(n as u64);
        }
        let status = child.wait().await.map_err(|source| Error::Io {
            action: "wait for",
            path: program.into(),
            source,
        })?;
        if !status.success() {
            return Err(Error::CommandFailed {
                command: described.clone(),
                status,
            });
        }
        Ok(())
    };
    tokio::pin!(stop);
    let streamed: Result<()> = tokio::select! {
        streamed = streaming => streamed,
        signal = &mut stop => Err(Error::Interrupted { signal }),
    };
    progress.finish();
    if let Err(error) = streamed {
        let _ = writer.abort().await;
        return Err(error);
    }
    let artefact = writer.finish(hex::encode(plain.finalize())).await?;
    let manifest = manifest(id, "stream", now, labels, None, vec![artefact]);
    repo.put_manifest(&manifest).await?;
    Ok(manifest)
}
