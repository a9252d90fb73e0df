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

/// Resolves with the signal's name when SIGINT or SIGTERM arrives (never, if the handlers cannot
/// be installed: the default action, dying, remains).
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first; then `work` is dropped, which removes what it
/// had half written (temporary files and directories clean up on drop), and the interruption is
/// returned.
pub async fn unless_interrupted<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::select! {
        result = work => result,
        signal = shutdown_signal() => Err(lifeboat_core::Error::Interrupted { signal }.into()),
    }
}
