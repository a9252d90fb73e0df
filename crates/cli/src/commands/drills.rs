//! `lifeboat drills list|show`: the drill history kept in the repository.

use clap::{Args, Subcommand};
use lifeboat_core::drill::{DrillReport, Outcome};

use lifeboat_repo::{BackupId, Repository};

use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// `drills` subcommands.
#[derive(Debug, Subcommand)]
pub enum DrillsCommand {
    /// Every drill: when, which backup, the result, the RTO against its objective.
    List(ListArgs),
    /// One drill's whole report.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    repo: RepoFlags,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The drill's ID, or `latest`.
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    repo: RepoFlags,
}

/// Records that parse, each checked against the key it was found under; the others named.
/// The drill records of `repo` that can be trusted (their ID is their key), and what was wrong
/// with the others.
/// A drill record read from `drills/<id>.json`: it must name the drill it is stored as.
pub fn parse_record(id: &BackupId, bytes: &[u8]) -> Result<DrillReport, String> {
    match serde_json::from_slice::<DrillReport>(bytes) {
        Ok(report) if report.id == *id => Ok(report),
        Ok(_) => Err(format!("drills/{id}.json names another drill")),
        Err(error) => Err(format!("drills/{id}.json: {error}")),
    }
}

pub async fn records(repo: &Repository) -> anyhow::Result<(Vec<DrillReport>, Vec<String>)> {
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for (id, bytes) in repo.drills().await? {
        match parse_record(&id, &bytes) {
            Ok(report) => reports.push(report),
            Err(problem) => unreadable.push(problem),
        }
    }
    for problem in &unreadable {
        tracing::warn!("{problem}; `lifeboat drills list` leaves it out");
    }
    Ok((reports, unreadable))
}

impl DrillsCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            DrillsCommand::List(args) => {
                let (reports, _) = records(&args.repo.open().await?).await?;
                let mut out = std::io::stdout().lock();
                if format == OutputFormat::Json {
                    return output::json(&mut out, &reports);
                }
                let rows: Vec<Vec<String>> = reports
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.timestamp.clone(),
                            r.backup.clone(),
                            match r.result {
                                Outcome::Passed => "passed".into(),
                                _ => "FAILED".into(),
                            },
                            r.rto.seconds.map_or("-".into(), |s| format!("{s:.1} s")),
                            format!("{:.0} s", r.rto.objective_seconds),
                        ]
                    })
                    .collect();
                output::grid(
                    &mut out,
                    &["DRILL", "WHEN", "BACKUP", "RESULT", "RTO", "OBJECTIVE"],
                    &rows,
                )?;
                Ok(())
            }
            DrillsCommand::Show(args) => {
                let (reports, _) = records(&args.repo.open().await?).await?;
                let report = match args.id.as_str() {
                    "latest" => reports.last(),
                    id => reports.iter().find(|r| r.id.as_str() == id),
                };
                let Some(report) = report else {
                    anyhow::bail!(
                        "no drill {} in the repository; `lifeboat drills list` shows them",
                        args.id
                    );
                };
                crate::commands::drill::print(report, format)
            }
        }
    }
}
