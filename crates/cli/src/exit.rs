//! Exit codes (docs/exit-codes.md) and the one-line error report.

use std::process::ExitCode;

/// The operation failed.
pub const FAILURE: u8 = 1;
/// Interrupted by SIGINT (128 + 2, as shells report it).
pub const INTERRUPTED_SIGINT: u8 = 130;
/// Interrupted by SIGTERM (128 + 15).
pub const INTERRUPTED_SIGTERM: u8 = 143;

/// A failure with its own exit code (e.g. `snapshot verify`: 1 findings, 2 unreadable).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// Prints the error as one line on stderr and picks the exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    // `lifeboat ... | head` closing the pipe early is not a failure (as in ripgrep).
    let broken_pipe = error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("Error: {error:#}");
    }
    let code = match (
        error.downcast_ref::<lifeboat_core::Error>(),
        error.downcast_ref::<Failure>(),
    ) {
        (Some(lifeboat_core::Error::Interrupted { signal: "SIGINT" }), _) => INTERRUPTED_SIGINT,
        (Some(lifeboat_core::Error::Interrupted { .. }), _) => INTERRUPTED_SIGTERM,
        (_, Some(failure)) => failure.code,
        _ => FAILURE,
    };
    ExitCode::from(code)
}

/// A future that resolves with the signal's name when SIGINT or SIGTERM arrives. The handlers are
/// installed now, not when the future is first polled: a signal that arrives while the work
/// runs without polling it yet is kept for it instead of killing the process half-way. (If they
/// cannot be installed, the default action, dying, remains.)
pub fn shutdown_signal() -> impl Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first; then `work` is dropped, which removes what it
/// had half written (temporary files and directories clean up on drop), and the interruption is
/// returned.
pub async fn unless_interrupted<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let stop = shutdown_signal();
    tokio::select! {
        result = work => result,
        signal = stop => Err(lifeboat_core::Error::Interrupted { signal }.into()),
    }
}
