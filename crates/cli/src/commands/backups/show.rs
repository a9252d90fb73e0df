//! `lifeboat backups show ID`

use clap::Args;

use crate::output::{self, OutputFormat};
use crate::repo_flags::{RepoFlags, resolve_id};

/// Arguments of `backups show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The backup's ID, or `latest`.
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: ShowArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let id = resolve_id(&repo, &args.id, None).await?;
    let manifest = repo.manifest(&id).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &manifest),
        OutputFormat::Simple | OutputFormat::Table => {
            Ok(output::table(&mut out, &output::manifest_rows(&manifest))?)
        }
    }
}
