//! `lifeboat k8s ls`: the objects of a snapshot or backup as kubectl lists them (left-aligned
//! columns, NAME first, AGE from creationTimestamp), as a bordered table with `-w table`,
//! counted per resource and namespace with `--count`, or as JSON.

use lifeboat_core::k8s_objects::{Content, Detail, StoredObject, count_objects};
use serde_json::Value;

use super::{LsArgs, Select, in_namespace, may_name_resource, names_resource, namespace_shown, objects};
use crate::output::{self, OutputFormat};

pub(super) async fn ls(args: LsArgs, format: OutputFormat) -> anyhow::Result<()> {
    let (resource, namespace, all) = (args.resource.clone(), args.namespace.clone(), args.all_namespaces);
    let select: Select = std::sync::Arc::new(move |r, ns, _| {
        resource.as_deref().is_none_or(|w| may_name_resource(w, r))
            && namespace_shown(ns, namespace.as_deref(), all)
    });
    // A listing keeps of each object what its row shows: memory follows the rows.
    let (revision, objects) = objects(&args.source, select, Detail::Listing).await?;
    let chosen: Vec<&StoredObject> = objects
        .iter()
        .filter(|o| args.resource.as_deref().is_none_or(|r| names_resource(r, o)))
        .filter(|o| in_namespace(o, args.namespace.as_deref(), args.all_namespaces))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.count {
        let counts = count_objects(
            &args.source.reading.etcd_prefix,
            chosen.iter().map(|o| o.key.as_str()),
        );
        if format == OutputFormat::Json {
            let rows: Vec<Value> = counts
                .iter()
                .map(|((resource, namespace), count)| {
                    serde_json::json!({"resource": resource, "namespace": namespace, "count": count})
                })
                .collect();
            return output::json(
                &mut out,
                &serde_json::json!({"revision": revision, "counts": rows}),
            );
        }
        let rows: Vec<Vec<String>> = counts
            .into_iter()
            .map(|((resource, namespace), count)| vec![resource, namespace, count.to_string()])
            .collect();
        let header = ["RESOURCE", "NAMESPACE", "COUNT"];
        match format {
            OutputFormat::Table => output::grid(&mut out, &header, &rows)?,
            _ => output::columns(&mut out, &header, &rows)?,
        }
        return Ok(());
    }
    if format == OutputFormat::Json {
        let rows: Vec<Value> = chosen
            .iter()
            .map(|o| {
                serde_json::json!({
                    "key": o.key, "resource": o.resource, "namespace": o.namespace, "name": o.name,
                    "kind": o.kind().0, "apiVersion": o.kind().1, "revision": o.mod_revision,
                    "size": o.size, "encrypted": o.encrypted_with.is_some(),
                })
            })
            .collect();
        return output::json(
            &mut out,
            &serde_json::json!({"revision": revision, "objects": rows}),
        );
    }
    // kubectl's columns: NAMESPACE first across namespaces, NAME as `kind.group/name` when more
    // than one resource is listed, AGE last.
    let one_resource = args.resource.is_some();
    let now = chrono::Utc::now();
    let row = |o: &StoredObject| {
        let mut cells = Vec::new();
        if args.all_namespaces {
            cells.push(o.namespace.clone().unwrap_or_default());
        }
        cells.push(match one_resource {
            true => o.name.clone(),
            false => format!("{}/{}", kind_name(o), o.name),
        });
        cells.push(o.mod_revision.to_string());
        cells.push(o.size.to_string());
        cells.push(o.encrypted_with.clone().unwrap_or_else(|| "no".into()));
        cells.push(age(o, now));
        cells
    };
    let rows: Vec<Vec<String>> = chosen.iter().map(|o| row(o)).collect();
    let mut header = vec!["NAME", "REVISION", "SIZE", "ENCRYPTED", "AGE"];
    if args.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    match format {
        OutputFormat::Table => output::grid(&mut out, &header, &rows)?,
        _ => output::columns(&mut out, &header, &rows)?,
    }
    Ok(())
}

/// How kubectl names an object's type when it lists several: the kind in lower case with its
/// group (`deployment.apps`, `pod`); the resource when the value does not say (encrypted).
fn kind_name(object: &StoredObject) -> String {
    match object.kind() {
        (Some(kind), Some(api_version)) => match api_version.rsplit_once('/') {
            Some((group, _)) => format!("{}.{group}", kind.to_ascii_lowercase()),
            None => kind.to_ascii_lowercase(),
        },
        _ => object.resource.clone(),
    }
}

/// The object's age as kubectl prints it, from its creationTimestamp (`<unknown>` without).
fn age(object: &StoredObject, now: chrono::DateTime<chrono::Utc>) -> String {
    // Read in place: a copy of the object per row would cost its whole size.
    let created = match &object.content {
        Content::Object(decoded) => decoded.object["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
        _ => None,
    };
    match created {
        Some(created) => lifeboat_k8s::human_age((now - created.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}
