//! One way to stop every long operation: the caller cancels (a signal handler, an agent's
//! shutdown or job timeout), the operation aborts what it started and returns
//! [`Error::Interrupted`] with the reason given. A cancellation may also be fenced by a
//! leadership [`Term`]: once the term is no longer surely held, every check fails, whether or
//! not anyone has noticed yet, so work that ran on past its leadership commits nothing.

use std::sync::{Arc, OnceLock};

use lifeboat_etcd_conn::Term;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// A cancellation shared by an operation and whoever may stop it. Clones cancel together.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
    fence: Option<Term>,
}

/// The reason an operation fenced by a lost term stops with.
pub const LEADERSHIP_LOST: &str = "the loss of leadership (its etcd lease was not renewed in time)";

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every operation holding this (or a clone) to stop; `reason` (e.g. "SIGTERM") is
    /// what [`Error::Interrupted`] will name. The first reason given stays.
    pub fn cancel(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// The same cancellation, failing every check once `term` is no longer held.
    pub fn fenced_by(mut self, term: Term) -> Self {
        self.fence = Some(term);
        self
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled() || self.fence.as_ref().is_some_and(|term| !term.held())
    }

    /// Resolves once cancelled, to the reason.
    pub async fn cancelled(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason()
    }

    fn reason(&self) -> &'static str {
        match self.reason.get() {
            Some(reason) => reason,
            None if self.fence.as_ref().is_some_and(|term| !term.held()) => LEADERSHIP_LOST,
            None => "cancellation",
        }
    }

    /// `Err(Interrupted)` once cancelled: for checks between steps.
    pub fn check(&self) -> Result<()> {
        match self.is_cancelled() {
            true => Err(Error::Interrupted {
                signal: self.reason(),
            }),
            false => Ok(()),
        }
    }

    /// Runs `work` unless cancelled first; then `work` is dropped (what it owns cleans up on drop)
    /// and [`Error::Interrupted`] returned.
    pub async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.check()?;
        tokio::select! {
            biased;
            signal = self.cancelled() => Err(Error::Interrupted { signal }),
            result = work => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_interrupts_with_the_first_reason() {
        let cancel = Cancel::new();
        assert!(cancel.check().is_ok());
        assert_eq!(cancel.run(async { Ok(7) }).await.unwrap(), 7);
        let clone = cancel.clone();
        clone.cancel("SIGTERM");
        cancel.cancel("SIGINT");
        let error = cancel
            .run(std::future::pending::<Result<()>>())
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Interrupted { signal: "SIGTERM" }),
            "{error}"
        );
        assert!(cancel.check().is_err());
    }
}
