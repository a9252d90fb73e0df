//! The `lifeboat` binary: parse, resolve, run, render, exit. Thin by design: the work happens
//! in `lifeboat-core`.

mod agent;
mod commands;
mod etcd_flags;
mod exit;
mod output;
mod progress;
mod repo_flags;

use clap::Parser;

use crate::commands::Command;
use crate::output::OutputFormat;

/// Back up, verify and restore Kubernetes control planes, centred on etcd.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, max_term_width = 100)]
struct Cli {
    /// Output format: simple, json or table.
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    write_out: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Everything lifeboat creates holds secrets: files 0600, directories 0700, whichever library
    // creates them (object_store's local store uses the process umask).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    init_tracing(cli.command.is_service());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return exit::report(&anyhow::Error::new(error).context("cannot start the async runtime"));
        }
    };
    let result = runtime.block_on(cli.command.run(cli.write_out));
    // Blocking work of a cancelled operation (removing its temporary files) gets a moment to end;
    // one stuck on a reader that stopped reading (dump's stdout) does not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}

/// Logs go to stderr; `LIFEBOAT_LOG` takes an `EnvFilter`. Commands log warnings; a service
/// (the agent) logs what each job did (info), with the time, since its log is read later.
fn init_tracing(service: bool) {
    let default = if service { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match service {
        true => builder.init(),
        false => builder.without_time().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument a conflict or requirement names exists in its command (clap panics at run
    /// time otherwise, only for the command line that reaches it).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
