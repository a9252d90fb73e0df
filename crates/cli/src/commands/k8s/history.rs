//! `lifeboat k8s history RESOURCE NAME`: every change of one object, from a base backup and the
//! segments point-in-time capture stored after it, with revision, time and the fields changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use clap::Args;
use lifeboat_core::k8s_objects::{Detail, StoredObject, parse_key, stored_object};
use lifeboat_core::pitr::{ReplayReader, history_plan, rfc3339_ms};
use serde::Serialize;
use serde_json::Value;

use super::{Reading, names_resource};
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The resource: plural, singular or short name, or `resource.group`.
    resource: String,
    name: String,
    /// The object's namespace (default: `default`; ignored for cluster-scoped resources).
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,
    /// Start at this time (RFC 3339, or a duration ago: `2h`): the object as it was then, and
    /// every change since. Default: from the oldest backup of the newest restorable range.
    #[arg(long, value_name = "TIME", value_parser = crate::commands::pitr::parse_point_time)]
    since: Option<SystemTime>,
    /// The etcd cluster (hex ID) when the repository holds several.
    #[arg(long, value_name = "ID", value_parser = crate::commands::pitr::parse_cluster)]
    cluster: Option<u64>,
    #[command(flatten)]
    reading: Reading,
}

/// One field that differs between two versions (`None`: absent).
#[derive(Debug, Serialize)]
struct FieldChange {
    path: String,
    before: Option<String>,
    after: Option<String>,
}

/// One change of the object.
#[derive(Debug, Serialize)]
struct Change {
    revision: i64,
    /// When the capture received the revision (RFC 3339), or the base backup's time.
    time: String,
    change: &'static str,
    fields: Vec<FieldChange>,
}

/// Every leaf of `value` by its path (`spec.template.spec.containers[0].image`), as JSON text.
fn flatten(path: &str, value: &Value, leaves: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&path, child, leaves);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                flatten(&format!("{path}[{index}]"), child, leaves);
            }
        }
        leaf => {
            leaves.insert(path.to_string(), leaf.to_string());
        }
    }
}

/// The fields that differ; the resourceVersion always does (it is the key's revision).
fn field_changes(before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
    let leaves = |value: Option<&Value>| {
        let mut leaves = BTreeMap::new();
        if let Some(value) = value {
            flatten("", value, &mut leaves);
        }
        leaves.remove("metadata.resourceVersion");
        leaves
    };
    let (before, after) = (leaves(before), leaves(after));
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| FieldChange {
            path: path.clone(),
            before: before.get(path).cloned(),
            after: after.get(path).cloned(),
        })
        .collect()
}

pub(super) async fn history(args: HistoryArgs, format: OutputFormat) -> anyhow::Result<()> {
    let reading = &args.reading;
    let repo = reading.repo.open().await?;
    let identities = reading.identity.require_for(&repo)?;
    let encryption = reading.encryption.load()?;
    let prefix = reading.etcd_prefix.trim_end_matches('/').to_string();
    let plan = history_plan(&repo, args.cluster, args.since, &identities).await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| "default".into());
    let wanted = |object: &StoredObject| {
        names_resource(&args.resource, object)
            && object.name == args.name
            && object.namespace.as_deref().is_none_or(|ns| ns == namespace)
    };

    // The object in the base backup, fetched into a private temporary file.
    let private = super::fetch_private(&repo, &plan.base, &identities).await?;
    let base = super::point::Reading {
        prefix: &prefix,
        encryption: encryption.clone(),
        select: super::one_object(&args.resource, &namespace, &args.name),
        detail: Detail::Whole,
    }
    .read(private.path().to_path_buf(), None)
    .await?;
    drop(private);
    let found = base.objects.into_iter().find(|o| wanted(o));
    let mut key = found.as_ref().map(|o| o.key.clone());
    let mut state = found.and_then(|o| o.as_kubectl(false));
    let mut changes = vec![Change {
        revision: base.revision,
        time: plan.base.created.clone(),
        change: if state.is_some() {
            "in backup"
        } else {
            "absent in backup"
        },
        fields: Vec::new(),
    }];
    let start = plan.time.as_ref().map_or(base.revision, |t| t.revision);

    let mut present_at_start = state.is_some();
    // A segment at a time: the history holds one segment's revisions, not all since the base.
    let mut replay = ReplayReader::new(&repo, &plan, &identities);
    while let Some(chunk) = replay.next_chunk().await? {
        for revision in &chunk.revisions {
            for event in &revision.events {
                let record = event.key_value()?;
                let event_key = String::from_utf8_lossy(&record.key).into_owned();
                let stored = || {
                    stored_object(
                        &prefix,
                        &event_key,
                        &record.value,
                        record.mod_revision,
                        encryption.as_ref(),
                    )
                };
                // Only a key naming the object is decoded: this runs for every captured event.
                let ours = match &key {
                    Some(key) => *key == event_key,
                    None if event.delete => false,
                    None => {
                        parse_key(&prefix, &event_key).is_some_and(|(_, ns, name)| {
                            name == args.name && ns.is_none_or(|ns| ns == namespace)
                        }) && stored().is_some_and(|object| wanted(&object))
                    }
                };
                if !ours {
                    continue;
                }
                key = Some(event_key.clone());
                let after = match event.delete {
                    true => None,
                    false => stored().and_then(|object| object.as_kubectl(false)),
                };
                let change = match (&state, event.delete) {
                    (_, true) => "deleted",
                    (None, false) => "created",
                    (Some(_), false) => "updated",
                };
                // A whole object created or deleted is not listed field by field: `k8s get
                // --revision` shows it.
                let fields = match change {
                    "updated" => field_changes(state.as_ref(), after.as_ref()),
                    _ => Vec::new(),
                };
                state = after;
                if revision.revision <= start {
                    present_at_start = state.is_some();
                    continue;
                }
                changes.push(Change {
                    revision: revision.revision,
                    time: rfc3339_ms(revision.received_unix_ms),
                    change,
                    fields,
                });
            }
        }
    }
    if let Some(time) = &plan.time {
        // Changes up to `since` were folded into the starting state.
        changes[0] = Change {
            revision: time.revision,
            time: time.received.clone(),
            change: if present_at_start {
                "as of --since"
            } else {
                "absent as of --since"
            },
            fields: Vec::new(),
        };
    }
    print(&changes, &args, format)
}

fn print(changes: &[Change], args: &HistoryArgs, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        return output::json(&mut out, &changes);
    }
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "(absent)".into());
    for change in changes {
        writeln!(
            out,
            "revision {}  {}  {}",
            change.revision, change.time, change.change
        )?;
        for field in &change.fields {
            writeln!(
                out,
                "  {}: {} -> {}",
                field.path,
                shown(&field.before),
                shown(&field.after)
            )?;
        }
    }
    if changes.len() == 1 {
        writeln!(
            out,
            "no change of {} {:?} was captured after revision {}",
            args.resource, args.name, changes[0].revision
        )?;
    }
    Ok(())
}
