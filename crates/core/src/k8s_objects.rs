//! Kubernetes objects read offline from a snapshot file: each live key under the API server's
//! prefix, named by its key (`<prefix>/<resource>/[<namespace>/]<name>`), its value decoded.

use std::path::Path;

use lifeboat_k8s::{Decoded, EncryptionConfig, StoredValue};
use serde_json::Value;

use crate::Result;

/// The API server's default `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// What a stored value turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Object(Box<Decoded>),
    /// Encrypted at rest and not decrypted: why (no configuration given, no such key, KMS).
    Encrypted(String),
    /// Not readable as an object: why.
    Unreadable(String),
}

/// One object as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub key: String,
    /// The resource as its key names it: `pods`, `deployments`, `widgets.example.com`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    pub mod_revision: i64,
    pub size: usize,
    /// `provider:key name` when the value is encrypted at rest (decrypted or not).
    pub encrypted_with: Option<String>,
    pub content: Content,
}

impl StoredObject {
    /// `kind` and `apiVersion`, when the value says.
    pub fn kind(&self) -> (Option<&str>, Option<&str>) {
        match &self.content {
            Content::Object(decoded) => (
                decoded.object["kind"].as_str(),
                decoded.object["apiVersion"].as_str(),
            ),
            _ => (None, None),
        }
    }

    /// What a listing shows of the object (see [`Detail::Listing`]); the rest is dropped.
    pub fn listing(self) -> StoredObject {
        let content = match self.content {
            Content::Object(mut decoded) => {
                let object = &mut decoded.object;
                let mut kept = serde_json::Map::new();
                for field in ["kind", "apiVersion"] {
                    if let Some(value) = object.get_mut(field) {
                        kept.insert(field.into(), value.take());
                    }
                }
                if let Some(created) = object.pointer_mut("/metadata/creationTimestamp") {
                    kept.insert(
                        "metadata".into(),
                        serde_json::json!({"creationTimestamp": created.take()}),
                    );
                }
                Content::Object(Box::new(Decoded {
                    object: Value::Object(kept),
                    schema: decoded.schema,
                    findings: Vec::new(),
                }))
            }
            other => other,
        };
        StoredObject { content, ..self }
    }

    /// The object as `kubectl get -o json` shows it: `metadata.resourceVersion` from the key's
    /// revision (the API server sets it on read), managed fields only when asked.
    pub fn as_kubectl(&self, show_managed_fields: bool) -> Option<Value> {
        let Content::Object(decoded) = &self.content else {
            return None;
        };
        let mut object = decoded.object.clone();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(
                "resourceVersion".into(),
                Value::String(self.mod_revision.to_string()),
            );
            if !show_managed_fields {
                metadata.remove("managedFields");
            }
        }
        Some(object)
    }
}

/// Built-in resources whose keys do not start with their name as kubectl gives it
/// (`kubectl api-resources -o name`: `plural` in the core group, else `plural.group`): the
/// API server's storage prefix, then that name. Kubernetes 1.30 to 1.36; any other key is
/// named by its first component.
const KEY_RESOURCES: &[(&str, &str)] = &[
    ("services/specs", "services"),
    ("services/endpoints", "endpoints"),
    ("minions", "nodes"),
    ("controllers", "replicationcontrollers"),
    ("ingress", "ingresses.networking.k8s.io"),
    ("podsecuritypolicy", "podsecuritypolicies.policy"),
    (
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicies.admissionregistration.k8s.io",
    ),
    (
        "mutatingadmissionpolicybindings",
        "mutatingadmissionpolicybindings.admissionregistration.k8s.io",
    ),
    (
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    ),
    (
        "validatingadmissionpolicies",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
    ),
    (
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    ),
    (
        "validatingwebhookconfigurations",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ),
    ("storageversions", "storageversions.internal.apiserver.k8s.io"),
    ("controllerrevisions", "controllerrevisions.apps"),
    ("daemonsets", "daemonsets.apps"),
    ("deployments", "deployments.apps"),
    ("replicasets", "replicasets.apps"),
    ("statefulsets", "statefulsets.apps"),
    ("horizontalpodautoscalers", "horizontalpodautoscalers.autoscaling"),
    ("cronjobs", "cronjobs.batch"),
    ("jobs", "jobs.batch"),
    (
        "certificatesigningrequests",
        "certificatesigningrequests.certificates.k8s.io",
    ),
    ("clustertrustbundles", "clustertrustbundles.certificates.k8s.io"),
    (
        "podcertificaterequests",
        "podcertificaterequests.certificates.k8s.io",
    ),
    ("leases", "leases.coordination.k8s.io"),
    ("leasecandidates", "leasecandidates.coordination.k8s.io"),
    ("endpointslices", "endpointslices.discovery.k8s.io"),
    ("flowschemas", "flowschemas.flowcontrol.apiserver.k8s.io"),
    (
        "prioritylevelconfigurations",
        "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
    ),
    ("ingressclasses", "ingressclasses.networking.k8s.io"),
    ("ipaddresses", "ipaddresses.networking.k8s.io"),
    ("networkpolicies", "networkpolicies.networking.k8s.io"),
    ("servicecidrs", "servicecidrs.networking.k8s.io"),
    ("runtimeclasses", "runtimeclasses.node.k8s.io"),
    ("poddisruptionbudgets", "poddisruptionbudgets.policy"),
    (
        "clusterrolebindings",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ),
    ("clusterroles", "clusterroles.rbac.authorization.k8s.io"),
    ("rolebindings", "rolebindings.rbac.authorization.k8s.io"),
    ("roles", "roles.rbac.authorization.k8s.io"),
    ("deviceclasses", "deviceclasses.resource.k8s.io"),
    ("devicetaintrules", "devicetaintrules.resource.k8s.io"),
    ("resourceclaims", "resourceclaims.resource.k8s.io"),
    ("resourceclaimtemplates", "resourceclaimtemplates.resource.k8s.io"),
    ("resourceslices", "resourceslices.resource.k8s.io"),
    ("priorityclasses", "priorityclasses.scheduling.k8s.io"),
    ("workloads", "workloads.scheduling.k8s.io"),
    ("csidrivers", "csidrivers.storage.k8s.io"),
    ("csinodes", "csinodes.storage.k8s.io"),
    ("csistoragecapacities", "csistoragecapacities.storage.k8s.io"),
    ("storageclasses", "storageclasses.storage.k8s.io"),
    ("volumeattachments", "volumeattachments.storage.k8s.io"),
    (
        "volumeattributesclasses",
        "volumeattributesclasses.storage.k8s.io",
    ),
    (
        "storageversionmigrations",
        "storageversionmigrations.storagemigration.k8s.io",
    ),
];

/// What the API server keeps under its prefix for itself, not API objects: each API server's
/// endpoint lease and the Service IP and port allocation maps.
const INTERNAL_KEYS: &[&str] = &["masterleases", "peerserverleases", "ranges"];

/// The resource, namespace and name a key under `prefix` names (`None` for the API server's
/// own keys and for keys of no known layout).
pub fn parse_key(prefix: &str, key: &str) -> Option<(String, Option<String>, String)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    let (resource, rest) = match KEY_RESOURCES
        .iter()
        .find_map(|(path, resource)| Some((*resource, rest.strip_prefix(path)?.strip_prefix('/')?)))
    {
        Some((resource, rest)) => (resource.to_string(), rest),
        None => {
            let (first, rest) = rest.split_once('/')?;
            if INTERNAL_KEYS.contains(&first) {
                return None;
            }
            // Custom and aggregated resources: <group>/<plural>/...
            if first.contains('.') {
                let (plural, rest) = rest.split_once('/')?;
                (format!("{plural}.{first}"), rest)
            } else {
                (first.to_string(), rest)
            }
        }
    };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) if !name.is_empty() => Some((resource, None, name.to_string())),
        (Some(namespace), Some(name), None) if !namespace.is_empty() && !name.is_empty() => {
            Some((resource, Some(namespace.to_string()), name.to_string()))
        }
        _ => None,
    }
}

/// Whether `key` is one of the API server's own keys under `prefix`.
fn is_internal(prefix: &str, key: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(first, _)| INTERNAL_KEYS.contains(&first))
}

/// Keys under the prefix that name no object: how many, and a few of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnknownKeys {
    pub count: u64,
    /// Up to five keys, for the warning.
    pub examples: Vec<String>,
}

impl UnknownKeys {
    fn add(&mut self, key: &str) {
        self.count += 1;
        if self.examples.len() < 5 {
            // Shown in a warning: no terminal control characters.
            let shown = key
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            self.examples.push(shown);
        }
    }

    /// The `--etcd-prefix` that would read them, when they look like an aggregated API
    /// server's own prefix (`<prefix>/<group>/registry/...`, as its `--etcd-prefix` nests).
    pub fn suggested_prefix(&self, prefix: &str) -> Option<String> {
        let key = self.examples.first()?;
        let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
        let (first, rest) = rest.split_once('/')?;
        let (second, _) = rest.split_once('/')?;
        (second == "registry").then(|| format!("{prefix}/{first}/registry"))
    }
}

/// Objects per (resource, namespace; empty for cluster-scoped) among `keys`: the counts of
/// `lifeboat k8s ls --count`, the drill's content check and the agent's page. Keys that name no
/// object are left out.
pub fn count_objects<'a>(
    prefix: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<(String, String), u64> {
    let mut counts = std::collections::BTreeMap::new();
    for key in keys {
        if let Some((resource, namespace, _)) = parse_key(prefix, key) {
            *counts
                .entry((resource, namespace.unwrap_or_default()))
                .or_insert(0) += 1;
        }
    }
    counts
}

/// What a snapshot file holds under the API server's prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectsRead {
    /// The revision read.
    pub revision: i64,
    pub objects: Vec<StoredObject>,
    /// Damage in the file gone past: objects in damaged pages are missing.
    pub findings: Vec<String>,
    /// Keys of no known layout (an aggregated API server's own prefix, say).
    pub unknown: UnknownKeys,
}

/// Which objects a read keeps, judged by (resource, namespace, name) as the key names them,
/// before the value is decoded or kept: a read's memory and time follow what it selects, not the
/// database's size. Keys that name no object are always kept (they are only counted).
pub type Selection<'a> = &'a (dyn Fn(&str, Option<&str>, &str) -> bool + Sync);

/// Selects every object.
pub fn every_object(_: &str, _: Option<&str>, _: &str) -> bool {
    true
}

/// How much of each object a read keeps: memory follows it, not the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The whole object: to show, export or compare it.
    Whole,
    /// What a listing shows: `kind`, `apiVersion` and `metadata.creationTimestamp`, with the
    /// key's names, revision, size and encryption.
    Listing,
}

/// What a read keeps of a record during the walk.
enum Kept {
    Record(lifeboat_etcd_data::KeyValue),
    /// The object as [`Detail`] keeps it, or the key when it fits no object layout.
    Decoded(std::result::Result<StoredObject, String>),
}

/// The objects under `prefix` that `select` takes, in the snapshot file at `revision` (`None`:
/// its current one), each kept as `detail` says; values encrypted at rest are decrypted with
/// `encryption` when given. Keys that name no object are left out.
pub fn read_objects(
    path: &Path,
    prefix: &str,
    revision: Option<i64>,
    encryption: Option<&EncryptionConfig>,
    select: Selection<'_>,
    detail: Detail,
) -> Result<ObjectsRead> {
    let prefix = prefix.trim_end_matches('/');
    let mut wanted = |key: &[u8]| {
        let key = String::from_utf8_lossy(key);
        parse_key(prefix, &key)
            .is_none_or(|(resource, namespace, name)| select(&resource, namespace.as_deref(), &name))
    };
    // A key of no object layout is kept as its name, to be counted.
    let decode = |record: lifeboat_etcd_data::KeyValue| {
        let key = String::from_utf8_lossy(&record.key).into_owned();
        stored_object(prefix, &key, &record.value, record.mod_revision, encryption).ok_or(key)
    };
    // A listing decodes each record as it is met and keeps its row's fields, so memory follows
    // the rows (older versions of a key are decoded too); a whole read keeps the records and
    // decodes only the latest of each key.
    let mut keep = |record| match detail {
        Detail::Listing => Kept::Decoded(decode(record).map(StoredObject::listing)),
        Detail::Whole => Kept::Record(record),
    };
    let space = crate::snapshot_file::key_space(
        path,
        format!("{prefix}/").as_bytes(),
        revision,
        &mut wanted,
        &mut keep,
    )?;
    let mut unknown = UnknownKeys::default();
    let objects = space
        .entries
        .into_iter()
        .filter_map(|kept| {
            let decoded = match kept {
                Kept::Decoded(decoded) => decoded,
                Kept::Record(record) => decode(record),
            };
            decoded
                .map_err(|key| {
                    if !is_internal(prefix, &key) {
                        unknown.add(&key);
                    }
                })
                .ok()
        })
        .collect();
    Ok(ObjectsRead {
        revision: space.revision,
        objects,
        findings: space.findings,
        unknown,
    })
}

/// The object stored under `key` (modified at `mod_revision`), decoded; `None` when the key
/// fits no object layout under `prefix`.
pub fn stored_object(
    prefix: &str,
    key: &str,
    value: &[u8],
    mod_revision: i64,
    encryption: Option<&EncryptionConfig>,
) -> Option<StoredObject> {
    let (resource, namespace, name) = parse_key(prefix, key)?;
    let (encrypted_with, content) = content(key, &resource, value, encryption);
    Some(StoredObject {
        key: key.to_string(),
        resource,
        namespace,
        name,
        mod_revision,
        size: value.len(),
        encrypted_with,
        content,
    })
}

/// What a value stored under `key` holds, and how it was encrypted at rest.
pub fn content(
    key: &str,
    resource: &str,
    value: &[u8],
    encryption: Option<&EncryptionConfig>,
) -> (Option<String>, Content) {
    let decoded = |plain: &[u8]| match lifeboat_k8s::decode(plain) {
        Ok(decoded) => Content::Object(Box::new(decoded)),
        Err(error) => Content::Unreadable(error.to_string()),
    };
    let Ok(StoredValue::Encrypted {
        provider, key_name, ..
    }) = lifeboat_k8s::classify(value)
    else {
        return (None, decoded(value));
    };
    let with = Some(format!("{provider}:{key_name}"));
    match encryption.map(|config| config.decrypt(key.as_bytes(), resource, value)) {
        None => (
            with,
            Content::Encrypted(format!(
                "{key} is encrypted at rest ({provider}, key {key_name}); give --encryption-config FILE, the API server's --encryption-provider-config"
            )),
        ),
        Some(Ok(plain)) => (with, decoded(&plain)),
        Some(Err(error)) => (with, Content::Encrypted(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_keeps_what_a_row_shows_and_drops_the_rest() {
        let object = serde_json::json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        });
        let stored = StoredObject {
            key: "/registry/pods/default/web".into(),
            resource: "pods".into(),
            namespace: Some("default".into()),
            name: "web".into(),
            mod_revision: 7,
            size: 300,
            encrypted_with: None,
            content: Content::Object(Box::new(Decoded {
                object,
                schema: Some("1.34"),
                findings: vec!["field 99 unknown".into()],
            })),
        };
        let listing = stored.clone().listing();
        assert_eq!(listing.kind(), (Some("Pod"), Some("v1")));
        assert_eq!(
            (listing.mod_revision, listing.size, &listing.name),
            (7, 300, &stored.name)
        );
        let Content::Object(kept) = &listing.content else {
            panic!("the object is still there: {:?}", listing.content)
        };
        assert_eq!(
            kept.object,
            serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"creationTimestamp": "2026-01-02T03:04:05Z"}})
        );
        assert!(kept.findings.is_empty());
        // What is not an object stays as it was.
        let encrypted = StoredObject {
            content: Content::Encrypted("no key".into()),
            ..stored
        };
        assert_eq!(encrypted.clone().listing(), encrypted);
    }

    #[test]
    fn keys_name_resource_namespace_and_name() {
        let parsed = |key| parse_key("/registry", key);
        let named = |resource: &str, namespace: Option<&str>, name: &str| {
            Some((
                resource.to_string(),
                namespace.map(String::from),
                name.to_string(),
            ))
        };
        assert_eq!(
            parsed("/registry/pods/default/web-1"),
            named("pods", Some("default"), "web-1")
        );
        assert_eq!(
            parsed("/registry/namespaces/kube-system"),
            named("namespaces", None, "kube-system")
        );
        assert_eq!(
            parsed("/registry/services/specs/default/kubernetes"),
            named("services", Some("default"), "kubernetes")
        );
        assert_eq!(parsed("/registry/minions/node-1"), named("nodes", None, "node-1"));
        assert_eq!(
            parsed("/registry/controllers/web/legacy"),
            named("replicationcontrollers", Some("web"), "legacy")
        );
        assert_eq!(
            parsed("/registry/ingress/web/front"),
            named("ingresses.networking.k8s.io", Some("web"), "front")
        );
        assert_eq!(
            parsed("/registry/example.com/widgets/default/w"),
            named("widgets.example.com", Some("default"), "w")
        );
        assert_eq!(
            parsed("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"),
            named(
                "customresourcedefinitions.apiextensions.k8s.io",
                None,
                "widgets.example.com"
            )
        );
        assert_eq!(parsed("/registry/ranges/serviceips"), None);
        assert_eq!(parsed("/registry/masterleases/192.0.2.10"), None);
        assert_eq!(
            parsed("/registry/deployments/web/api"),
            named("deployments.apps", Some("web"), "api")
        );
        assert_eq!(
            parsed("/registry/leases/kube-system/apiserver-x"),
            named("leases.coordination.k8s.io", Some("kube-system"), "apiserver-x")
        );
        assert_eq!(
            parsed("/registry/metrics.example.com/registry/metrics.example.com/things/ns/a"),
            None
        );
        assert_eq!(parsed("/other/pods/a/b"), None);
        let mut unknown = UnknownKeys::default();
        unknown.add("/registry/metrics.example.com/registry/metrics.example.com/things/ns/a");
        assert_eq!(
            unknown.suggested_prefix("/registry").as_deref(),
            Some("/registry/metrics.example.com/registry")
        );
        assert_eq!(parsed("/registry/pods/a/b/c"), None);
    }
}
