//! `lifeboat agent --config FILE`: the long-running agent (docs/agent.md);
//! `--check-config FILE` only checks a configuration (exit 2 when it is invalid).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::agent::config::Config;
use crate::exit::{Failure, cancel_on_signals};
use crate::output::OutputFormat;

/// A configuration that does not parse or check.
pub const INVALID_CONFIG: u8 = 2;

/// Arguments of `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's YAML configuration (deploy/agent.example.yaml shows every key).
    #[arg(
        long,
        value_name = "FILE",
        env = "LIFEBOAT_AGENT_CONFIG",
        required_unless_present = "check_config"
    )]
    config: Option<PathBuf>,
    /// Serve HTTP here instead of the configuration's `listen` (e.g. the node's address from the
    /// Kubernetes downward API).
    #[arg(long, value_name = "ADDRESS:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Check FILE and exit: 0 when valid, 2 with the line and field when not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|error| {
        Failure {
            code: INVALID_CONFIG,
            message: crate::exit::one_line(&error),
        }
        .into()
    })
}

pub async fn run(args: AgentArgs, _format: OutputFormat) -> anyhow::Result<()> {
    if let Some(path) = &args.check_config {
        let config = load(path)?;
        for warning in config.warnings() {
            writeln!(std::io::stderr().lock(), "warning: {}: {warning}", path.display())?;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}: valid, {} jobs", path.display(), config.jobs.len())?;
        for job in &config.jobs {
            writeln!(
                out,
                "  {} ({}): {}",
                job.name,
                job.kind.as_str(),
                job.schedule.describe()
            )?;
        }
        return Ok(());
    }
    let Some(path) = &args.config else {
        anyhow::bail!("give --config FILE");
    };
    let mut config = load(path)?;
    for warning in config.warnings() {
        tracing::warn!("{}: {warning}", path.display());
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    crate::agent::run(config, cancel_on_signals()).await
}
