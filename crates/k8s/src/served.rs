//! What the API server changes between the stored object and the one it serves (kube-apiserver
//! 1.36, compared field by field with kubectl in the tests): defaults it applies on every read
//! (`SetDefaults_*` of the storage version run by its decoder), the conversion of CRDs it still
//! stores as `apiextensions.k8s.io/v1beta1`, and what converting a StatefulSet sets.

use serde_json::{Map, Value};

/// Applies the read-time changes to `object` (a decoded top-level object).
pub(crate) fn as_served(object: &mut Value) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    match (api_version.as_str(), kind.as_str()) {
        // SetDefaults_Job and SetDefaults_ReplicationController: labels from the template's.
        ("batch/v1", "Job") => labels_from_template(object, false),
        ("v1", "ReplicationController") => labels_from_template(object, true),
        ("v1", "PersistentVolumeClaim" | "PersistentVolume") => phase_default(object, "Pending"),
        ("v1", "Namespace") => phase_default(object, "Active"),
        ("apps/v1", "StatefulSet") => {
            // Conversion from the internal type names each claim template's kind.
            if let Some(templates) = object["spec"]["volumeClaimTemplates"].as_array_mut() {
                for template in templates.iter_mut().filter_map(Value::as_object_mut) {
                    template.entry("apiVersion").or_insert_with(|| "v1".into());
                    template
                        .entry("kind")
                        .or_insert_with(|| "PersistentVolumeClaim".into());
                }
            }
        }
        ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition") => crd_to_v1(object),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    value.is_null() || value.as_object().is_some_and(Map::is_empty)
}

fn labels_from_template(object: &mut Value, selector_too: bool) {
    let labels = object["spec"]["template"]["metadata"]["labels"].clone();
    if is_empty(&labels) {
        return;
    }
    if selector_too && is_empty(&object["spec"]["selector"]) {
        object["spec"]["selector"] = labels.clone();
    }
    if is_empty(&object["metadata"]["labels"])
        && let Some(metadata) = object["metadata"].as_object_mut()
    {
        metadata.insert("labels".into(), labels);
    }
}

fn phase_default(object: &mut Value, phase: &str) {
    let Some(top) = object.as_object_mut() else {
        return;
    };
    let status = top.entry("status").or_insert_with(|| Value::Object(Map::new()));
    if let Some(status) = status.as_object_mut()
        && status
            .get("phase")
            .is_none_or(|p| p.as_str().is_none_or(str::is_empty))
    {
        status.insert("phase".into(), phase.into());
    }
}

/// apiextensions v1beta1 -> v1 as the API server converts it: the spec's top-level validation,
/// subresources and printer columns move into each version, `JSONPath` is `jsonPath`, the
/// conversion webhook is nested, and `preserveUnknownFields: false` (v1's default) is left out.
fn crd_to_v1(object: &mut Value) {
    object["apiVersion"] = "apiextensions.k8s.io/v1".into();
    let Some(spec) = object["spec"].as_object_mut() else {
        return;
    };
    let validation = spec.remove("validation");
    let subresources = spec.remove("subresources");
    let columns = spec.remove("additionalPrinterColumns");
    spec.remove("version");
    if spec.get("preserveUnknownFields") == Some(&Value::Bool(false)) {
        spec.remove("preserveUnknownFields");
    }
    if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
        for version in versions.iter_mut().filter_map(Value::as_object_mut) {
            for (name, value) in [
                ("schema", &validation),
                ("subresources", &subresources),
                ("additionalPrinterColumns", &columns),
            ] {
                if let Some(value) = value.as_ref().filter(|v| !v.is_null()) {
                    version.entry(name).or_insert_with(|| value.clone());
                }
            }
            if let Some(columns) = version
                .get_mut("additionalPrinterColumns")
                .and_then(Value::as_array_mut)
            {
                for column in columns.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(path) = column.remove("JSONPath") {
                        column.insert("jsonPath".into(), path);
                    }
                }
            }
        }
    }
    if let Some(conversion) = spec.get_mut("conversion").and_then(Value::as_object_mut) {
        let client = conversion.remove("webhookClientConfig");
        let reviews = conversion.remove("conversionReviewVersions");
        if client.is_some() || reviews.is_some() {
            let mut webhook = Map::new();
            if let Some(client) = client {
                webhook.insert("clientConfig".into(), client);
            }
            if let Some(reviews) = reviews {
                webhook.insert("conversionReviewVersions".into(), reviews);
            }
            conversion.insert("webhook".into(), Value::Object(webhook));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_v1beta1_crd_is_served_as_v1() {
        let mut crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
            "spec": {"version": "v1", "preserveUnknownFields": false,
                "validation": {"openAPIV3Schema": {"type": "object"}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "JSONPath": ".spec.size"}],
                "conversion": {"strategy": "Webhook", "conversionReviewVersions": ["v1"],
                    "webhookClientConfig": {"url": "https://c.example"}},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        as_served(&mut crd);
        assert_eq!(
            crd,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "spec": {
                    "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                        "clientConfig": {"url": "https://c.example"}}},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                        "subresources": {"status": {}},
                        "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}
            })
        );
    }

    #[test]
    fn read_defaults_fill_only_what_is_missing() {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"metadata": {"labels": {"job-name": "j"}}}}});
        as_served(&mut job);
        assert_eq!(job["metadata"]["labels"], json!({"job-name": "j"}));
        let mut labelled = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {"a": "b"}},
            "spec": {"template": {"metadata": {"labels": {"job-name": "j"}}}}});
        as_served(&mut labelled);
        assert_eq!(labelled["metadata"]["labels"], json!({"a": "b"}));
        let mut claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {}});
        as_served(&mut claim);
        assert_eq!(claim["status"]["phase"], "Pending");
        let mut bound =
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}});
        as_served(&mut bound);
        assert_eq!(bound["status"]["phase"], "Bound");
        let mut set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        as_served(&mut set);
        assert_eq!(
            set["spec"]["volumeClaimTemplates"][0]["kind"],
            "PersistentVolumeClaim"
        );
    }
}
