//! The YAML output read back by a YAML 1.1 parser (PyYAML, as go-yaml and kubectl read YAML)
//! is the object it came from: strings YAML 1.1 would take for booleans, numbers, times or null
//! stay strings, and every serializer fixture (decoded) comes back whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Every document of `stream`, as PyYAML's safe loader reads it, in JSON.
fn read_by_pyyaml(stream: &str) -> Vec<Value> {
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml, json; print(json.dumps(list(yaml.safe_load_all(sys.stdin)), default=str))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (scripts/setup installs it)");
    python.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success(), "PyYAML read the stream");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_config_map_of_ambiguous_strings_round_trips_through_yaml_1_1() {
    let tricky = [
        "on",
        "off",
        "yes",
        "No",
        "y",
        "N",
        "true",
        "False",
        "~",
        "null",
        "12:30",
        "1_000",
        "0x1F",
        "0o17",
        "017",
        "1e3",
        ".5",
        "-.inf",
        ".NaN",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "",
        " padded ",
        "a: b",
        "# not a comment",
        "- not a list",
        "[1, 2]",
        "{a: 1}",
        "*alias",
        "&anchor",
        "!tag",
        "|",
        ">",
        "'quoted'",
        "\"double\"",
        "multi\nline\n",
        "tab\there",
        "café",
        "100m",
        "1Gi",
    ];
    let data: serde_json::Map<String, Value> = tricky
        .iter()
        .enumerate()
        .map(|(index, value)| (format!("key{index:02}"), Value::String(value.to_string())))
        .collect();
    let mut config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ambiguous", "namespace": "default", "labels": {"on": "yes"}},
    });
    config_map["data"] = Value::Object(data);
    let yaml = lifeboat_k8s::to_yaml(&config_map);
    assert_eq!(read_by_pyyaml(&yaml), vec![config_map], "{yaml}");
}

#[test]
fn every_decoded_serializer_fixture_round_trips_through_yaml_1_1() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/k8s-api-serializer/v1.33.0");
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pb")
            && let Ok(decoded) = lifeboat_k8s::decode(&std::fs::read(&path).unwrap())
        {
            objects.push(decoded.object);
        }
    }
    assert!(objects.len() > 170, "{} objects", objects.len());
    let stream: String = objects
        .iter()
        .map(|object| format!("---\n{}", lifeboat_k8s::to_yaml(object)))
        .collect();
    let read = read_by_pyyaml(&stream);
    assert_eq!(read.len(), objects.len());
    for (back, object) in read.iter().zip(&objects) {
        assert_eq!(back, object, "{}", lifeboat_k8s::to_yaml(object));
    }
}
