//! Which objects a `k8s` command reads: resource words as kubectl takes them, namespaces, and
//! the selection by key that a read applies before decoding anything.

use lifeboat_core::k8s_objects::StoredObject;

/// kubectl's short names of built-in resources.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("cm", "configmaps"),
    ("cj", "cronjobs"),
    ("crd", "customresourcedefinitions"),
    ("crds", "customresourcedefinitions"),
    ("csr", "certificatesigningrequests"),
    ("deploy", "deployments"),
    ("ds", "daemonsets"),
    ("ep", "endpoints"),
    ("ev", "events"),
    ("hpa", "horizontalpodautoscalers"),
    ("ing", "ingresses"),
    ("limits", "limitranges"),
    ("netpol", "networkpolicies"),
    ("no", "nodes"),
    ("ns", "namespaces"),
    ("pc", "priorityclasses"),
    ("pdb", "poddisruptionbudgets"),
    ("po", "pods"),
    ("pv", "persistentvolumes"),
    ("pvc", "persistentvolumeclaims"),
    ("quota", "resourcequotas"),
    ("rc", "replicationcontrollers"),
    ("rs", "replicasets"),
    ("sa", "serviceaccounts"),
    ("sc", "storageclasses"),
    ("sts", "statefulsets"),
    ("svc", "services"),
];

/// Whether `word` (as kubectl takes a resource name) names `object`'s resource.
pub(super) fn names_resource(word: &str, object: &StoredObject) -> bool {
    let (kind, api_version) = object.kind();
    let group = api_version.and_then(|v| v.rsplit_once('/')).map(|(g, _)| g);
    resource_named(word, &object.resource, kind, group)
}

/// [`names_resource`] by the key alone, before the value says its kind and group: what a read
/// selects by (the decoded objects are then judged by [`names_resource`]). A superset: besides the
/// plural, short and regular singular names, any word that begins the plural once both are
/// reduced to letters and digits (`networkattachmentdefinition` for
/// `network-attachment-definitions`), since a kind's singular is known only from its value.
pub(super) fn may_name_resource(word: &str, resource: &str) -> bool {
    let letters = |text: &str| -> String {
        text.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let plural = resource.split_once('.').map_or(resource, |(p, _)| p);
    let (name, _) = word.split_once('.').unwrap_or((word, ""));
    let stem = letters(name);
    let stem = stem.strip_suffix('y').unwrap_or(&stem);
    resource_named(word, resource, None, None) || (!stem.is_empty() && letters(plural).starts_with(stem))
}

/// Whether `word` names `resource` (as its key names it), of `kind` in `group` when known.
pub(super) fn resource_named(word: &str, resource: &str, kind: Option<&str>, group: Option<&str>) -> bool {
    let word = word.to_ascii_lowercase();
    let word = SHORT_NAMES
        .iter()
        .find(|(short, _)| *short == word)
        .map_or(word.as_str(), |(_, plural)| plural);
    let plural = resource.split_once('.').map_or(resource, |(p, _)| p);
    let singular = kind.map(str::to_ascii_lowercase);
    // The singular of a plural, where the value does not say its kind (encrypted, say).
    let singular_of = |name: &str| {
        [format!("{name}s"), format!("{name}es")].contains(&plural.to_string())
            || name
                .strip_suffix('y')
                .is_some_and(|stem| format!("{stem}ies") == plural)
    };
    let names = |name: &str| {
        name == resource || name == plural || Some(name) == singular.as_deref() || singular_of(name)
    };
    match word.split_once('.') {
        Some((name, wanted_group)) if !names(word) => names(name) && group.is_none_or(|g| g == wanted_group),
        _ => names(word),
    }
}

/// Which objects a read keeps, by (resource, namespace, name) as their keys name them
/// ([`lifeboat_core::k8s_objects::Selection`]): a command selects what it shows, so that reading
/// a large database decodes and holds only that.
pub(super) type Select = std::sync::Arc<dyn Fn(&str, Option<&str>, &str) -> bool + Send + Sync>;

/// Every object.
pub(super) fn every_object() -> Select {
    std::sync::Arc::new(lifeboat_core::k8s_objects::every_object)
}

pub(super) fn in_namespace(object: &StoredObject, namespace: Option<&str>, all: bool) -> bool {
    namespace_shown(object.namespace.as_deref(), namespace, all)
}

/// Whether an object of namespace `of` (none: cluster-scoped) is shown for `-n namespace`/`-A`.
pub(super) fn namespace_shown(of: Option<&str>, namespace: Option<&str>, all: bool) -> bool {
    all || of.is_none_or(|of| of == namespace.unwrap_or("default"))
}

/// The objects `get` and `history` look at: `name` of `resource` in `namespace`, or
/// cluster-scoped.
pub(super) fn one_object(resource: &str, namespace: &str, name: &str) -> Select {
    let (resource, namespace, name) = (resource.to_string(), namespace.to_string(), name.to_string());
    std::sync::Arc::new(move |r, ns, n| {
        n == name && ns.is_none_or(|ns| ns == namespace) && may_name_resource(&resource, r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_selected_by_every_word_that_can_name_its_resource() {
        for (word, resource) in [
            ("pods", "pods"),
            ("po", "pods"),
            ("pod", "pods"),
            ("ingress", "ingresses"),
            ("networkpolicy", "networkpolicies"),
            ("deployments.apps", "deployments"),
            (
                "networkattachmentdefinition",
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
            (
                "network-attachment-definitions",
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
        ] {
            assert!(may_name_resource(word, resource), "{word} names {resource}");
        }
        for (word, resource) in [("pods", "configmaps"), ("secret", "services"), ("svc", "secrets")] {
            assert!(
                !may_name_resource(word, resource),
                "{word} does not name {resource}"
            );
        }
        let get = one_object("pod", "web", "api");
        assert!(get("pods", Some("web"), "api"));
        assert!(!get("pods", Some("default"), "api"));
        assert!(!get("pods", Some("web"), "api-2"));
        assert!(!get("configmaps", Some("web"), "api"));
        assert!(namespace_shown(None, Some("web"), false));
        assert!(namespace_shown(Some("default"), None, false));
        assert!(!namespace_shown(Some("web"), None, false));
        assert!(namespace_shown(Some("web"), None, true));
    }
}
