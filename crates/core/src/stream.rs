//! `backup --stream NAME -- CMD ARGS...`: a command's standard output (pg_dump and the like)
//! stored as an artefact beside the cluster's backups. The backup exists only if the command
//! succeeded: a non-zero exit aborts the upload and writes no manifest.

use std::process::Stdio;
use std::time::SystemTime;

use lifeboat_repo::{BackupId, Manifest, Repository, check_artefact_name};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::backup::{Labels, description, write_backup};
use crate::blocking::Batched;
use crate::{Cancel, Error, Progress, Result};

/// Runs `command` and streams its stdout into a new backup of kind `stream`. On cancellation
/// the command is killed and nothing is stored.
pub async fn backup_stream(
    repo: &Repository,
    name: &str,
    command: &[String],
    labels: &Labels,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Manifest> {
    check_artefact_name(name).map_err(|e| Error::Usage {
        message: e.to_string(),
    })?;
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Usage {
            message: "no command given: put it after --, e.g. -- pg_dump -h db mydb".into(),
        });
    };
    let now = SystemTime::now();
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
    write_backup(
        repo,
        BackupId::new(now),
        "backup --stream",
        cancel,
        async |backup| {
            backup.start_artefact(name).await?;
            progress.start(None);
            let mut plain = Batched::new(Sha256::new(), |plain, bytes| {
                plain.update(bytes);
                Ok(())
            });
            let streamed: Result<()> = async {
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
                    plain.push_into(&buffer[..n], backup).await?;
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
            }
            .await;
            progress.finish();
            streamed?;
            let plain = plain.finish_into(backup).await?;
            backup.finish_artefact(hex::encode(plain.finalize())).await?;
            Ok(description("stream", now, labels, None))
        },
    )
    .await
}
