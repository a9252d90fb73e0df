//! Exit codes (docs/exit-codes.md) and the one-line error report.

use std::process::ExitCode;

use lifeboat_core::Cancel;

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

/// The error and its causes in one line, each cause once: our errors often name their source in
/// their own message already, and anyhow's `{:#}` would repeat it.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
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
        eprintln!("Error: {}", one_line(error));
    }
    let interrupted = match (
        error.downcast_ref::<lifeboat_core::Error>(),
        error.downcast_ref::<lifeboat_recover::Error>(),
    ) {
        (Some(lifeboat_core::Error::Interrupted { signal }), _) => Some(*signal),
        (_, Some(recovery)) => recovery.interrupted_by(),
        _ => None,
    };
    let code = match (interrupted, error.downcast_ref::<Failure>()) {
        (Some("SIGINT"), _) => INTERRUPTED_SIGINT,
        (Some(_), _) => INTERRUPTED_SIGTERM,
        (_, Some(failure)) => failure.code,
        _ => FAILURE,
    };
    ExitCode::from(code)
}

/// A cancellation that SIGINT or SIGTERM fires, for the operation about to start. The handlers
/// are installed now, not when something first waits: a signal that arrives while the work runs
/// is kept for it instead of killing the process half-way. (If they cannot be installed, the
/// default action, dying, remains.)
pub fn cancel_on_signals() -> Cancel {
    use tokio::signal::unix::{SignalKind, signal};
    let cancel = Cancel::new();
    if let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    {
        let fired = cancel.clone();
        tokio::spawn(async move {
            let reason = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            fired.cancel(reason);
        });
    }
    cancel
}
