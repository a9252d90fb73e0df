//! `recover --abort`: the node as it was before the run.

use super::*;

/// Rolls the run of `journal` back: every step it began undone, last first (a restored etcd is
/// stopped again, the restored data directory goes aside, the old one and the node's files
/// return, every manifest goes back). Safe to repeat after a crash in its middle. Returns what
/// was done, for the caller to show.
pub async fn abort(node: Option<&Node>, journal: &mut Journal, setting: Setting<'_>) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for step in journal.begun() {
        done.extend(step.undo(node, journal, setting.at(step)).await?);
        journal.mark_undone(step, setting.options)?;
    }
    journal.finish(OUTCOME_ABORTED, setting.options)?;
    Ok(done)
}
