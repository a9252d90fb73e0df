//! The Kubernetes API schemas, one descriptor set per minor (compiled by build.rs from the
//! vendored `generated.proto` files), and which message holds an (apiVersion, kind).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// The schema versions this build knows, newest first.
pub const SCHEMA_VERSIONS: [&str; 7] = ["1.36", "1.35", "1.34", "1.33", "1.32", "1.31", "1.30"];

/// Every schema's descriptor set, in the order of [`SCHEMA_VERSIONS`], each after its length
/// (u32, little-endian), in one zstd frame (build.rs).
const SCHEMA_BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/schemas.zst"));

/// The descriptor sets of the bundle, in order. Built by build.rs: a bundle that does not unpack
/// is a build defect, and yields no schema rather than failing every read.
fn descriptor_sets() -> Vec<Vec<u8>> {
    let Ok(bundle) = zstd::decode_all(SCHEMA_BUNDLE) else {
        return Vec::new();
    };
    let mut sets = Vec::new();
    let mut rest = bundle.as_slice();
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length) as usize;
        let Some((set, tail)) = tail.split_at_checked(length) else {
            break;
        };
        sets.push(set.to_vec());
        rest = tail;
    }
    sets
}

/// Every schema, newest first.
#[derive(Debug)]
pub struct Schemas {
    pools: Vec<(&'static str, DescriptorPool)>,
}

impl Schemas {
    /// The embedded schemas, loaded once.
    pub fn embedded() -> &'static Schemas {
        static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
        SCHEMAS.get_or_init(|| Schemas {
            pools: SCHEMA_VERSIONS
                .iter()
                .zip(descriptor_sets())
                // Built from the vendored files by build.rs: a set that does not load is a build
                // defect, and leaves that version out rather than failing every read.
                .filter_map(|(version, bytes)| {
                    Some((*version, DescriptorPool::decode(bytes.as_slice()).ok()?))
                })
                .collect(),
        })
    }

    /// The message of `api_version`/`kind` in each schema that has it, newest first.
    pub fn messages(&self, api_version: &str, kind: &str) -> Vec<(&'static str, MessageDescriptor)> {
        let names = message_names(api_version, kind);
        self.pools
            .iter()
            .filter_map(|(version, pool)| {
                let message = names.iter().find_map(|name| pool.get_message_by_name(name))?;
                Some((*version, message))
            })
            .collect()
    }
}

/// The protobuf message names that may hold `kind` of `api_version`, in order of preference.
fn message_names(api_version: &str, kind: &str) -> Vec<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let packages: Vec<String> = match group {
        // Status, WatchEvent and the *Options kinds live in meta, not core.
        "" => vec![
            format!("api.core.{version}"),
            "apimachinery.pkg.apis.meta.v1".into(),
        ],
        "meta.k8s.io" => vec![format!("apimachinery.pkg.apis.meta.{version}")],
        "internal.apiserver.k8s.io" => vec![format!("api.apiserverinternal.{version}")],
        "apiextensions.k8s.io" => vec![format!(
            "apiextensions_apiserver.pkg.apis.apiextensions.{version}"
        )],
        "apiregistration.k8s.io" => vec![format!("kube_aggregator.pkg.apis.apiregistration.{version}")],
        "metrics.k8s.io" => vec![format!("metrics.pkg.apis.metrics.{version}")],
        "custom.metrics.k8s.io" => vec![format!("metrics.pkg.apis.custom_metrics.{version}")],
        "external.metrics.k8s.io" => vec![format!("metrics.pkg.apis.external_metrics.{version}")],
        group => {
            let label = group.split('.').next().unwrap_or(group);
            vec![format!("api.{label}.{version}")]
        }
    };
    packages
        .into_iter()
        .map(|package| format!("{package}.{kind}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_loads_and_finds_kinds_by_api_version() {
        let schemas = Schemas::embedded();
        assert_eq!(schemas.pools.len(), SCHEMA_VERSIONS.len());
        let found = |api_version, kind| {
            schemas
                .messages(api_version, kind)
                .first()
                .map(|(_, m)| m.full_name().to_string())
        };
        assert_eq!(found("v1", "Pod").as_deref(), Some("api.core.v1.Pod"));
        assert_eq!(
            found("apps/v1", "Deployment").as_deref(),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(
            found("rbac.authorization.k8s.io/v1", "Role").as_deref(),
            Some("api.rbac.v1.Role")
        );
        assert_eq!(
            found("apiextensions.k8s.io/v1", "CustomResourceDefinition").as_deref(),
            Some("apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        );
        assert_eq!(
            found("v1", "Status").as_deref(),
            Some("apimachinery.pkg.apis.meta.v1.Status")
        );
        assert_eq!(found("example.com/v1", "Widget"), None);
        // GA in 1.36: only the schema from the 1.36 Go modules has it.
        let policy = schemas.messages("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy");
        assert_eq!(
            policy.iter().map(|(version, _)| *version).collect::<Vec<_>>(),
            ["1.36"]
        );
    }
}
