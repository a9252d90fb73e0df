//! `recover --abort`: the node as it was before the run.

use super::*;

/// Rolls the run of `journal` back: the control plane is stopped again (a restored etcd may
/// already run), the restored data directory goes aside, the old one returns, every manifest
/// goes back. Returns what was done, for the caller to show.
pub async fn abort(
    node: Option<&Node>,
    journal: &mut Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
) -> Result<Vec<String>> {
    let root = options.root.as_path();
    let mut done = Vec::new();
    match node {
        Some(node) => stop(node, journal, options, narrator).await?,
        // A node without static Pods: only the files backup's could have started anything.
        None if journal.with_files.is_some() && !journal.is_done("files") => {}
        None => {
            return Err(failed(
                "abort",
                format!(
                    "the node has no etcd static Pod in {} or {}; check the node by hand",
                    journal.static_pod_dir.display(),
                    journal.manifests_aside.display()
                ),
            ));
        }
    }
    done.extend(data_back(journal, root)?);
    let before = under(root, &journal.run_dir(options)).join("before-files.tar");
    if journal.with_files.is_some()
        && before.exists()
        && (journal.is_done("files") || journal.is_done("data-aside"))
    {
        let tar = std::fs::read(&before).map_err(io("read", &before))?;
        remove_added_files(journal, options)?;
        put_files(journal, options, &tar)?;
        done.push(format!(
            "the node's files are back as they were (from {})",
            before.display()
        ));
    }
    let names = aside_names(root, journal);
    put_back(root, journal, &names)?;
    if !names.is_empty() {
        done.push(format!(
            "{} manifests are back in {}",
            names.len(),
            journal.static_pod_dir.display()
        ));
    }
    journal.finish(OUTCOME_ABORTED, options)?;
    Ok(done)
}
