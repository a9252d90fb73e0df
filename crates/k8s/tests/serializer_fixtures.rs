//! Kubernetes' own serializer fixtures (kubernetes/api testdata, v1.33.0, in ../shared/fixtures):
//! every `.pb` (the bytes kube-apiserver writes into etcd) decodes to an object semantically equal
//! to its `.json`. The one tolerated difference: a zero value (`""`, 0, false, empty list or
//! object) that the decoder shows and Go's `omitempty` leaves out. Two kinds of fixture are
//! checked otherwise: WatchEvent is a wire type, never stored, and its envelope names no kind
//! (a clear error); `*.after_roundtrip` were written by newer code than the 1.30–1.36 schemas,
//! and the fields no schema knows must be reported as findings, not dropped silently.

use std::path::PathBuf;

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/k8s-api-serializer/v1.33.0")
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Where `ours` differs from `expected`, one line each.
fn differences(ours: &Value, expected: &Value, path: &str, found: &mut Vec<String>) {
    match (ours, expected) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => differences(value, other, &format!("{path}.{key}"), found),
                    None if is_zero(value) => {}
                    None => found.push(format!("{path}.{key}: extra {value}")),
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                found.push(format!("{path}.{key}: missing {}", b[key]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{index}]"), found);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => found.push(format!("{path}: {a} instead of {b}")),
    }
}

#[test]
fn every_serializer_fixture_decodes_to_its_json() {
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pb"))
        .collect();
    names.sort();
    assert!(names.len() > 150, "{} fixtures", names.len());
    let mut failures = Vec::new();
    let mut decoded_count = 0;
    for name in &names {
        let stem = name.trim_end_matches(".pb");
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{stem}.json"))) else {
            continue;
        };
        let expected: Value = serde_json::from_str(&text).unwrap();
        match lifeboat_k8s::decode_stored(&bytes) {
            Err(error) if stem == "core.v1.WatchEvent" => {
                assert!(error.to_string().contains("names no kind"), "{error}");
            }
            Ok(decoded) => {
                decoded_count += 1;
                let mut found = Vec::new();
                differences(&decoded.object, &expected, "", &mut found);
                let newer_than_schemas = stem.ends_with(".after_roundtrip")
                    && !decoded.findings.is_empty()
                    && found.iter().all(|d| d.contains(": missing "));
                if newer_than_schemas {
                    continue;
                }
                found.extend(decoded.findings.iter().map(|f| format!("finding: {f}")));
                if !found.is_empty() {
                    failures.push(format!(
                        "{stem} (schema {:?}):\n  {}",
                        decoded.schema,
                        found.join("\n  ")
                    ));
                }
            }
            Err(error) => failures.push(format!("{stem}: {error}")),
        }
    }
    assert!(decoded_count > 170, "{decoded_count} fixtures decoded");
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ ({decoded_count} decoded):\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
