//! CPU-heavy and blocking work (hashing, file writes, bbolt walks, restore writing) runs on
//! tokio's blocking pool, never on the async workers an agent's other tasks need.

use lifeboat_repo::NewBackup;

use crate::{Error, Result};

/// Bytes gathered on the async side before each hand-over to the blocking pool.
pub(crate) const BATCH: usize = 1 << 20;

/// Runs `work` on the blocking pool. A panic there is a panic here.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    joined(start_blocking(work)).await
}

/// Starts `work` on the blocking pool now, to overlap with what follows; [`joined`] awaits it.
pub(crate) fn start_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> tokio::task::JoinHandle<Result<T>> {
    tokio::task::spawn_blocking(work)
}

/// The result of work started with [`start_blocking`]. A panic there is a panic here.
pub(crate) async fn joined<T>(handle: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match handle.await {
        Ok(result) => result,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(shut_down()),
        },
    }
}

/// The state a consumer lost when its blocking task could not finish.
fn shut_down() -> Error {
    Error::Interrupted {
        signal: "runtime shutdown",
    }
}

/// A consumer of a byte stream (`state`, fed by `apply`) that runs on the blocking pool in
/// batches of [`BATCH`] bytes.
pub(crate) struct Batched<S> {
    state: Option<S>,
    batch: Vec<u8>,
    apply: fn(&mut S, &[u8]) -> Result<()>,
}

impl<S: Send + 'static> Batched<S> {
    pub(crate) fn new(state: S, apply: fn(&mut S, &[u8]) -> Result<()>) -> Self {
        Self {
            state: Some(state),
            batch: Vec::with_capacity(BATCH),
            apply,
        }
    }

    /// Adds bytes; returns the batch just consumed, if one was.
    pub(crate) async fn push(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        self.batch.extend_from_slice(bytes);
        if self.batch.len() < BATCH {
            return Ok(None);
        }
        self.flush().await.map(Some)
    }

    async fn flush(&mut self) -> Result<Vec<u8>> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let Some(mut state) = self.state.take() else {
            return Ok(batch);
        };
        let apply = self.apply;
        let (state, batch) = blocking(move || apply(&mut state, &batch).map(|()| (state, batch))).await?;
        self.state = Some(state);
        Ok(batch)
    }

    /// Adds bytes; each full batch goes to the consumer and into the open artefact of `backup`
    /// at once, so the consumer and the artefact's sealing run side by side on two threads.
    pub(crate) async fn push_into(&mut self, bytes: &[u8], backup: &mut NewBackup) -> Result<()> {
        self.batch.extend_from_slice(bytes);
        if self.batch.len() < BATCH {
            return Ok(());
        }
        self.flush_into(backup).await
    }

    async fn flush_into(&mut self, backup: &mut NewBackup) -> Result<()> {
        let batch = std::sync::Arc::new(std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH)));
        let Some(mut state) = self.state.take() else {
            return Ok(backup.write(&batch).await?);
        };
        let apply = self.apply;
        let consuming = start_blocking({
            let batch = std::sync::Arc::clone(&batch);
            move || apply(&mut state, &batch).map(|()| state)
        });
        let written = backup.write(&batch).await;
        self.state = Some(joined(consuming).await?);
        Ok(written?)
    }

    /// Consumes what is left into `backup` too; returns the state.
    pub(crate) async fn finish_into(mut self, backup: &mut NewBackup) -> Result<S> {
        self.flush_into(backup).await?;
        self.state.ok_or_else(shut_down)
    }

    /// Consumes what is left; returns the state and that last batch.
    pub(crate) async fn finish(mut self) -> Result<(S, Vec<u8>)> {
        let last = self.flush().await?;
        Ok((self.state.ok_or_else(shut_down)?, last))
    }
}
